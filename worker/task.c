/*
 * task.c: checks a TASK header from the master (task.h).
 *
 * The master is trusted to be well-meaning, not to be bug-free: a TASK that
 * fails here becomes a RESULT with class "bad_task" and the reason, never a
 * crash or a command line built from unchecked text.
 */
#include "task.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tessera/error.h"
#include "tessera/proto.h"

static int s_fail(char *err, size_t errlen, const char *name, const char *what)
{
    if (err && errlen)
        snprintf(err, errlen, "field '%s' %s", name, what);
    return TSR_EPROTO;
}

int tsr_task_path_safe(const char *path)
{
    if (!path[0] || path[0] == '/')
        return 0;
    const char *p = path;
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (n == 0 || (n == 2 && p[0] == '.' && p[1] == '.'))
            return 0;
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)p[i];
            if (c < 0x20 || c == 0x7f)
                return 0;
        }
        if (!slash)
            break;
        p = slash + 1;
        if (!*p)
            return 0; /* trailing slash: a folder, not a file */
    }
    return 1;
}

/* Reads "region": [x0, y0, x1, y1], four integers. */
static int s_region(const cJSON *hdr, struct tsr_region *r, char *err, size_t errlen)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(hdr, "region");
    if (!a)
        return s_fail(err, errlen, "region", "is missing");
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != 4)
        return s_fail(err, errlen, "region", "must be an array [x0, y0, x1, y1]");
    int v[4];
    for (int i = 0; i < 4; i++) {
        const cJSON *e = cJSON_GetArrayItem(a, i);
        if (!cJSON_IsNumber(e))
            return s_fail(err, errlen, "region", "must hold four integers");
        double d = e->valuedouble;
        if (!isfinite(d) || d != floor(d) || d < 0 || d > TSR_TASK_MAX_SIZE)
            return s_fail(err, errlen, "region", "holds a value out of range");
        v[i] = (int)d;
    }
    r->x0 = v[0];
    r->y0 = v[1];
    r->x1 = v[2];
    r->y1 = v[3];
    return 0;
}

/* A feature name: 1..TSR_TASK_MAX_FEATURE printable characters, no blanks
 * (the same rule as the worker's own --feature). */
static int s_feature_ok(const char *f)
{
    size_t n = strlen(f);
    if (n == 0 || n > TSR_TASK_MAX_FEATURE)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)f[i] <= 0x20 || (unsigned char)f[i] >= 0x7f)
            return 0;
    return 1;
}

/* Reads gpu, cycles_device and requires, all optional. */
static int s_devices(const cJSON *hdr, struct tsr_task_spec *spec, char *err,
                     size_t errlen)
{
    int rc = tsr_hdr_bool_opt(hdr, "gpu", &spec->gpu, err, errlen);
    if (rc != 0)
        return rc;
    const char *dev = NULL;
    if ((rc = tsr_hdr_str_opt(hdr, "cycles_device", 15, &dev, err, errlen)) != 0)
        return rc;
    if (!dev || !dev[0])
        spec->cycles_device = TSR_CYCLES_DEFAULT;
    else if (strcmp(dev, "CPU") == 0)
        spec->cycles_device = TSR_CYCLES_CPU;
    else if (strcmp(dev, "CUDA") == 0)
        spec->cycles_device = TSR_CYCLES_CUDA;
    else if (strcmp(dev, "OPTIX") == 0)
        spec->cycles_device = TSR_CYCLES_OPTIX;
    else
        return s_fail(err, errlen, "cycles_device", "must be CPU, CUDA or OPTIX");
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(hdr, "requires");
    if (!req || cJSON_IsNull(req))
        return 0;
    if (!cJSON_IsArray(req) || cJSON_GetArraySize(req) > TSR_TASK_MAX_REQUIRES)
        return s_fail(err, errlen, "requires", "must be an array of at most 16 features");
    const cJSON *f;
    cJSON_ArrayForEach(f, req)
    {
        if (!cJSON_IsString(f) || !s_feature_ok(f->valuestring))
            return s_fail(err, errlen, "requires",
                          "holds a feature that is not 1..31 printable characters");
        memcpy(spec->requires[spec->nrequires++], f -> valuestring,
               strlen(f->valuestring) + 1);
    }
    return 0;
}

static int s_strdup(const char *s, char **out)
{
    *out = strdup(s ? s : "");
    return *out ? 0 : TSR_ENOMEM;
}

int tsr_task_parse(const cJSON *hdr, struct tsr_task_spec *spec, char *err, size_t errlen)
{
    memset(spec, 0, sizeof *spec);
    spec->attempt = -1;
    int64_t v = 0;
    int rc;
    const char *s = NULL;

    if ((rc = tsr_hdr_int(hdr, "attempt", 0, TSR_TASK_MAX_ID, &v, err, errlen)) != 0)
        return rc;
    spec->attempt = v;
    if ((rc = tsr_hdr_int(hdr, "job", 0, TSR_TASK_MAX_ID, &spec->job, err, errlen)) != 0)
        return rc;
    if ((rc = tsr_hdr_int(hdr, "task", 0, TSR_TASK_MAX_ID, &spec->task, err, errlen)) !=
        0)
        return rc;

    if ((rc = tsr_hdr_str(hdr, "renderer", 32, &s, err, errlen)) != 0)
        return rc;
    if (strcmp(s, "builtin") == 0)
        spec->renderer = TSR_RENDERER_BUILTIN;
    else if (strcmp(s, "command") == 0)
        spec->renderer = TSR_RENDERER_COMMAND;
    else if (strcmp(s, "blender") == 0)
        spec->renderer = TSR_RENDERER_BLENDER;
    else
        return s_fail(err, errlen, "renderer",
                      "names a renderer this worker does not have");

    if ((rc = tsr_hdr_hash(hdr, "archive", &s, err, errlen)) != 0)
        return rc;
    memcpy(spec->archive, s, TSR_HASH_HEX);
    if ((rc = tsr_hdr_int(hdr, "archive_size", 1, TSR_TASK_MAX_ID, &v, err, errlen)) != 0)
        return rc;
    spec->archive_size = (uint64_t)v;

    s = NULL;
    if ((rc = tsr_hdr_str_opt(hdr, "scene", TSR_TASK_MAX_SCENE, &s, err, errlen)) != 0)
        return rc;
    while (s && s[0] == '.' && s[1] == '/')
        s += 2; /* "./scene.json" names the same file as "scene.json" */
    if (s && s[0] && !tsr_task_path_safe(s))
        return s_fail(err, errlen, "scene", "is not a safe relative path");
    if (spec->renderer == TSR_RENDERER_BUILTIN && (!s || !s[0]))
        return s_fail(err, errlen, "scene",
                      "is missing (the builtin renderer needs one)");
    if (spec->renderer == TSR_RENDERER_BLENDER && (!s || !s[0]))
        return s_fail(err, errlen, "scene",
                      "is missing (the blender renderer needs the .blend file)");
    if ((rc = s_strdup(s, &spec->scene)) != 0)
        return rc;

    if ((rc = tsr_hdr_int(hdr, "frame_start", TSR_TASK_FRAME_MIN, TSR_TASK_FRAME_MAX,
                          &spec->frame_start, err, errlen)) != 0)
        return rc;
    if ((rc = tsr_hdr_int(hdr, "frame_end", TSR_TASK_FRAME_MIN, TSR_TASK_FRAME_MAX,
                          &spec->frame_end, err, errlen)) != 0)
        return rc;
    if (spec->frame_end < spec->frame_start)
        return s_fail(err, errlen, "frame_end", "is before frame_start");
    if (spec->frame_end - spec->frame_start >= TSR_TASK_MAX_FRAMES)
        return s_fail(err, errlen, "frame_end",
                      "makes the task longer than 100000 frames");

    if ((rc = tsr_hdr_int(hdr, "width", 0, TSR_TASK_MAX_SIZE, &v, err, errlen)) != 0)
        return rc;
    spec->width = (int)v;
    if ((rc = tsr_hdr_int(hdr, "height", 0, TSR_TASK_MAX_SIZE, &v, err, errlen)) != 0)
        return rc;
    spec->height = (int)v;

    if ((rc = tsr_hdr_str(hdr, "outputs", 16, &s, err, errlen)) != 0)
        return rc;
    if (strcmp(s, "image") == 0)
        spec->outputs_image = 1;
    else if (strcmp(s, "none") == 0)
        spec->outputs_image = 0;
    else
        return s_fail(err, errlen, "outputs", "must be \"image\" or \"none\"");

    if ((rc = s_region(hdr, &spec->region, err, errlen)) != 0)
        return rc;
    const struct tsr_region *r = &spec->region;
    if (r->x0 > r->x1 || r->y0 > r->y1 || r->x1 > spec->width || r->y1 > spec->height) {
        if (err && errlen)
            snprintf(err, errlen,
                     "field 'region' [%d, %d, %d, %d] lies outside the %dx%d frame",
                     r->x0, r->y0, r->x1, r->y1, spec->width, spec->height);
        return TSR_EPROTO;
    }
    /* An image needs pixels; a task without outputs may not know the frame
     * size (a command template with outputs "none"), so 0x0 is allowed there. */
    int need_pixels = spec->outputs_image || spec->renderer == TSR_RENDERER_BUILTIN;
    if (need_pixels && (r->x0 == r->x1 || r->y0 == r->y1))
        return s_fail(err, errlen, "region", "is empty");

    s = NULL;
    if ((rc = tsr_hdr_str_opt(hdr, "command", TSR_TASK_MAX_COMMAND, &s, err, errlen)) !=
        0)
        return rc;
    if (spec->renderer == TSR_RENDERER_COMMAND && (!s || !s[0]))
        return s_fail(err, errlen, "command",
                      "is missing (the command renderer needs one)");
    if ((rc = s_strdup(spec->renderer == TSR_RENDERER_COMMAND ? s : "",
                       &spec->command)) != 0)
        return rc;

    if ((rc = s_devices(hdr, spec, err, errlen)) != 0)
        return rc;

    spec->timeout_s = 0;
    if ((rc = tsr_hdr_int_opt(hdr, "timeout_s", 0, TSR_TASK_MAX_TIMEOUT_S,
                              &spec->timeout_s, err, errlen)) != 0)
        return rc;
    spec->stall_s = 0;
    if ((rc = tsr_hdr_int_opt(hdr, "stall_s", 0, TSR_TASK_MAX_TIMEOUT_S, &spec->stall_s, err,
                              errlen)) != 0)
        return rc;
    return 0;
}

void tsr_task_spec_clear(struct tsr_task_spec *spec)
{
    free(spec->scene);
    free(spec->command);
    spec->scene = NULL;
    spec->command = NULL;
}
