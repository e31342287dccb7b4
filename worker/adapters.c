/*
 * adapters.c: command lines for the builtin renderer and for command
 * templates (adapters.h, doc/renderers.md).
 *
 * Nothing here runs a shell on text the worker composed itself: the builtin
 * renderer gets a plain argv; a command template is the job owner's shell
 * code, and the only text the worker adds to it is numbers and paths that
 * are single-quoted, so a scene named "a'; rm -rf ~" stays a file name.
 */
#include "adapters.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tessera/error.h"
#include "tessera/util.h"

#include "blender.h"

#define S_PATH "/usr/local/bin:/usr/bin:/bin" /* the renderer's PATH */

/* A growing string with a hard limit. */
struct s_buf {
    char *data; /* NUL-terminated text, malloc'd */
    size_t len; /* bytes used, without the NUL */
    size_t cap; /* bytes allocated */
    int over;   /* set once the limit was passed */
};

static int s_put(struct s_buf *b, const char *s, size_t n)
{
    if (b->len + n > TSR_ADAPTER_MAX_EXPANDED) {
        b->over = 1;
        return TSR_ELIMIT;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d)
            return TSR_ENOMEM;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

/* Appends s in single quotes for /bin/sh: ' becomes '\''. */
static int s_put_quoted(struct s_buf *b, const char *s)
{
    int rc = s_put(b, "'", 1);
    for (const char *p = s; rc == 0 && *p; p++)
        rc = *p == '\'' ? s_put(b, "'\\''", 4) : s_put(b, p, 1);
    if (rc == 0)
        rc = s_put(b, "'", 1);
    return rc;
}

static int s_put_int(struct s_buf *b, int64_t v)
{
    char num[32];
    snprintf(num, sizeof num, "%" PRId64, v);
    return s_put(b, num, strlen(num));
}

int tsr_adapter_output_name(int64_t frame, char *buf, size_t size)
{
    return tsr_fmt(buf, size, "out_%04" PRId64 ".exr", frame);
}

/* The absolute path of the scene file, or the scene folder if none. */
static int s_scene_path(const struct tsr_task_spec *spec,
                        const struct tsr_adapter_ctx *ctx, char *buf, size_t size)
{
    if (!spec->scene[0])
        return tsr_fmt(buf, size, "%s", ctx->scene_dir);
    return tsr_fmt(buf, size, "%s/%s", ctx->scene_dir, spec->scene);
}

int tsr_adapter_expand(const char *tmpl, const struct tsr_task_spec *spec,
                       const struct tsr_adapter_ctx *ctx, char **out, char *err,
                       size_t errlen)
{
    *out = NULL;
    char scene[PATH_MAX + TSR_TASK_MAX_SCENE];
    char pattern[PATH_MAX];
    if (s_scene_path(spec, ctx, scene, sizeof scene) != 0 ||
        tsr_fmt(pattern, sizeof pattern, "%s/out_####.exr", ctx->task_dir) != 0) {
        snprintf(err, errlen, "scene or task path too long");
        return TSR_ELIMIT;
    }
    /* Numbers first, then paths; the table keeps expand and the docs in step. */
    const struct {
        const char *name; /* placeholder without braces */
        int64_t num;      /* its value when a number */
        const char *path; /* its value when a path (quoted), else NULL */
    } vars[] = {
        {"frame", spec->frame_start, NULL},
        {"frame_end", spec->frame_end, NULL},
        {"x0", spec->region.x0, NULL},
        {"y0", spec->region.y0, NULL},
        {"x1", spec->region.x1, NULL},
        {"y1", spec->region.y1, NULL},
        {"width", spec->width, NULL},
        {"height", spec->height, NULL},
        {"out", 0, pattern},
        {"scene", 0, scene},
        {"scene_dir", 0, ctx->scene_dir},
        {"taskdir", 0, ctx->task_dir},
    };
    struct s_buf b = {0};
    int rc = s_put(&b, "", 0);
    const char *p = tmpl;
    while (rc == 0 && *p) {
        const char *open = strchr(p, '{');
        if (!open) {
            rc = s_put(&b, p, strlen(p));
            break;
        }
        rc = s_put(&b, p, (size_t)(open - p));
        if (rc != 0)
            break;
        const char *close = strchr(open + 1, '}');
        size_t i = 0, n = sizeof vars / sizeof vars[0];
        if (close) {
            size_t len = (size_t)(close - open - 1);
            for (i = 0; i < n; i++)
                if (strlen(vars[i].name) == len &&
                    memcmp(vars[i].name, open + 1, len) == 0)
                    break;
        }
        if (!close || i == n) {
            /* Not ours ("awk '{print $1}'"): keep the brace as written. */
            rc = s_put(&b, "{", 1);
            p = open + 1;
            continue;
        }
        rc = vars[i].path ? s_put_quoted(&b, vars[i].path) : s_put_int(&b, vars[i].num);
        p = close + 1;
    }
    if (rc != 0) {
        free(b.data);
        if (rc == TSR_ELIMIT)
            snprintf(err, errlen, "command is longer than %d bytes after substitution",
                     TSR_ADAPTER_MAX_EXPANDED);
        else
            snprintf(err, errlen, "out of memory expanding the command");
        return rc;
    }
    *out = b.data;
    return 0;
}

static int s_executable(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

int tsr_adapter_which(const char *name, char *buf, size_t size)
{
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = S_PATH;
    while (*path) {
        const char *colon = strchr(path, ':');
        size_t len = colon ? (size_t)(colon - path) : strlen(path);
        /* Only absolute entries: programs run in other folders. */
        if (len > 0 && path[0] == '/' &&
            tsr_fmt(buf, size, "%.*s/%s", (int)len, path, name) == 0 && s_executable(buf))
            return 0;
        path += len;
        if (*path == ':')
            path++;
    }
    return TSR_ENOTFOUND;
}

int tsr_adapter_find_render(char *buf, size_t size)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash) {
            *slash = '\0';
            if (tsr_fmt(buf, size, "%s/tessera-render", self) == 0 && s_executable(buf))
                return 0;
        }
    }
    return tsr_adapter_which("tessera-render", buf, size);
}

void tsr_cmdline_clear(struct tsr_cmdline *cl)
{
    for (char **p = cl->argv; p && *p; p++)
        free(*p);
    for (char **p = cl->envp; p && *p; p++)
        free(*p);
    free(cl->argv);
    free(cl->envp);
    cl->argv = NULL;
    cl->envp = NULL;
}

/* Allocates a NULL-terminated array with room for n strings. */
static int s_vec(char ***out, size_t n)
{
    *out = calloc(n + 1, sizeof **out);
    return *out ? 0 : TSR_ENOMEM;
}

/* Sets *slot to a malloc'd printf result: of fmt with the string a, or with
 * the number num when a is NULL. */
static int s_set(char **slot, const char *fmt, const char *a, int64_t num)
{
    int len = a ? snprintf(NULL, 0, fmt, a) : snprintf(NULL, 0, fmt, num);
    if (len < 0)
        return TSR_ENOMEM;
    *slot = malloc((size_t)len + 1);
    if (!*slot)
        return TSR_ENOMEM;
    if (a)
        snprintf(*slot, (size_t)len + 1, fmt, a);
    else
        snprintf(*slot, (size_t)len + 1, fmt, num);
    return 0;
}

/* The scrubbed environment every renderer gets: nothing of the worker's own
 * environment leaks into a job (no tokens, no proxies, no LD_PRELOAD). A
 * GPU task sees exactly its GPU, numbered as nvidia-smi numbers them
 * (CUDA_DEVICE_ORDER=PCI_BUS_ID; CUDA's own default order puts the fastest
 * first); a CPU task on a GPU host sees none, so it cannot take a GPU that
 * another task holds. */
static int s_env(const struct tsr_task_spec *spec, const struct tsr_adapter_ctx *ctx,
                 char ***envp)
{
    int rc = s_vec(envp, 8);
    char **e = *envp;
    if (rc == 0)
        rc = s_set(&e[0], "%s", "PATH=" S_PATH, 0);
    if (rc == 0)
        rc = s_set(&e[1], "HOME=%s", ctx->task_dir, 0);
    if (rc == 0)
        rc = s_set(&e[2], "%s", "LANG=C", 0);
    if (rc == 0)
        rc = s_set(&e[3], "TMPDIR=%s", ctx->task_dir, 0);
    if (rc == 0)
        rc = s_set(&e[4], "TESSERA_FRAME=%" PRId64, NULL, spec->frame_start);
    if (rc == 0)
        rc = s_set(&e[5], "TESSERA_FRAME_END=%" PRId64, NULL, spec->frame_end);
    if (rc == 0 && ctx->gpu >= 0) {
        rc = s_set(&e[6], "CUDA_VISIBLE_DEVICES=%" PRId64, NULL, (int64_t)ctx->gpu);
        if (rc == 0)
            rc = s_set(&e[7], "%s", "CUDA_DEVICE_ORDER=PCI_BUS_ID", 0);
    } else if (rc == 0 && ctx->has_gpus) {
        rc = s_set(&e[6], "%s", "CUDA_VISIBLE_DEVICES=", 0);
    }
    return rc;
}

static int s_builtin(const struct tsr_task_spec *spec, const struct tsr_adapter_ctx *ctx,
                     char ***argvp, char *err, size_t errlen)
{
    char render[PATH_MAX];
    if (tsr_adapter_find_render(render, sizeof render) != 0) {
        snprintf(err, errlen,
                 "tessera-render not found beside tessera-worker or on PATH");
        return TSR_ENOTFOUND;
    }
    char scene[PATH_MAX + TSR_TASK_MAX_SCENE];
    char region[64];
    char output[PATH_MAX];
    if (s_scene_path(spec, ctx, scene, sizeof scene) != 0 ||
        tsr_fmt(output, sizeof output, "%s/out_####.exr", ctx->task_dir) != 0) {
        snprintf(err, errlen, "scene or task path too long");
        return TSR_ELIMIT;
    }
    snprintf(region, sizeof region, "%d,%d,%d,%d", spec->region.x0, spec->region.y0,
             spec->region.x1, spec->region.y1);
    /* On a GPU slot it renders on that GPU (--device cuda; exit 3 where
     * this tessera-render has no CUDA, which the worker reports as
     * missing_feature). */
    int rc = s_vec(argvp, ctx->gpu >= 0 ? 14 : 12);
    char **a = *argvp;
    if (rc == 0)
        rc = s_set(&a[0], "%s", render, 0);
    if (rc == 0)
        rc = s_set(&a[1], "%s", scene, 0);
    if (rc == 0)
        rc = s_set(&a[2], "%s", "--frame", 0);
    if (rc == 0)
        rc = s_set(&a[3], "%" PRId64, NULL, spec->frame_start);
    if (rc == 0)
        rc = s_set(&a[4], "%s", "--frame-end", 0);
    if (rc == 0)
        rc = s_set(&a[5], "%" PRId64, NULL, spec->frame_end);
    if (rc == 0)
        rc = s_set(&a[6], "%s", "--region", 0);
    if (rc == 0)
        rc = s_set(&a[7], "%s", region, 0);
    if (rc == 0)
        rc = s_set(&a[8], "%s", "--output", 0);
    if (rc == 0)
        rc = s_set(&a[9], "%s", output, 0);
    if (rc == 0)
        rc = s_set(&a[10], "%s", "--threads", 0);
    if (rc == 0)
        rc = s_set(&a[11], "%" PRId64, NULL,
                   (int64_t)(ctx->threads > 0 ? ctx->threads : 1));
    if (rc == 0 && ctx->gpu >= 0)
        rc = s_set(&a[12], "%s", "--device", 0);
    if (rc == 0 && ctx->gpu >= 0)
        rc = s_set(&a[13], "%s", "cuda", 0);
    if (rc != 0)
        snprintf(err, errlen, "out of memory building the command line");
    return rc;
}

static int s_command(const struct tsr_task_spec *spec, const struct tsr_adapter_ctx *ctx,
                     char ***argvp, char *err, size_t errlen)
{
    char *cmd = NULL;
    int rc = tsr_adapter_expand(spec->command, spec, ctx, &cmd, err, errlen);
    if (rc != 0)
        return rc;
    rc = s_vec(argvp, 3);
    char **a = *argvp;
    if (rc == 0)
        rc = s_set(&a[0], "%s", "/bin/sh", 0);
    if (rc == 0)
        rc = s_set(&a[1], "%s", "-c", 0);
    if (rc == 0) {
        a[2] = cmd;
        cmd = NULL;
    }
    free(cmd);
    if (rc != 0)
        snprintf(err, errlen, "out of memory building the command line");
    return rc;
}

static int s_blender(const struct tsr_task_spec *spec, const struct tsr_adapter_ctx *ctx,
                     char ***argvp, char *err, size_t errlen)
{
    if (!ctx->blender) {
        snprintf(err, errlen,
                 "this worker has no Blender (--blender PATH, or blender on "
                 "PATH)");
        return TSR_ENOTFOUND;
    }
    char scene[PATH_MAX + TSR_TASK_MAX_SCENE];
    if (s_scene_path(spec, ctx, scene, sizeof scene) != 0) {
        snprintf(err, errlen, "scene path too long");
        return TSR_ELIMIT;
    }
    struct tsr_blender_run run = {ctx->blender, scene, ctx->task_dir,
                                  ctx->device ? ctx->device : "CPU", ctx->threads};
    return tsr_blender_argv(spec, &run, argvp, err, errlen);
}

int tsr_adapter_build(const struct tsr_task_spec *spec, const struct tsr_adapter_ctx *ctx,
                      struct tsr_cmdline *out, char *err, size_t errlen)
{
    out->argv = NULL;
    out->envp = NULL;
    int rc;
    switch (spec->renderer) {
    case TSR_RENDERER_BUILTIN:
        rc = s_builtin(spec, ctx, &out->argv, err, errlen);
        break;
    case TSR_RENDERER_BLENDER:
        rc = s_blender(spec, ctx, &out->argv, err, errlen);
        break;
    default:
        rc = s_command(spec, ctx, &out->argv, err, errlen);
        break;
    }
    if (rc == 0 && (rc = s_env(spec, ctx, &out->envp)) != 0)
        snprintf(err, errlen, "out of memory building the environment");
    return rc;
}
