/*
 * blender.c: the Blender adapter (blender.h, doc/renderers.md).
 *
 * Blender is driven from the outside only: a fixed command line and a
 * setup script passed with --python-expr, whose variable part (paths, the
 * region, the device) travels as one JSON argument after "--", so no text
 * of a job is ever pasted into Python source. The .blend's own scripts
 * never run (--disable-autoexec): a scene is data, not code the farm
 * trusts. The setup script refuses to render a scene whose files are
 * missing (Blender itself would render pink textures and exit 0) and a
 * device this Blender does not have, each with its own exit status and one
 * "tessera: CLASS: why" line that the classification reads back.
 */
#include "blender.h"

#include <ctype.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tessera/error.h"
#include "tessera/image.h"
#include "tessera/log.h"
#include "tessera/util.h"

#include "adapters.h"
#include "probe.h"
#include "runner.h"

#define S_LOG "blender"
#define S_PROBE_TAG "TESSERA_BLENDER " /* the probe's output line starts so */
#define S_MARK "tessera: "             /* the setup script's lines start so */
#define S_MAX_VERSION 32               /* longest version string kept */
#define S_MAX_NAME 128                 /* longest device name kept */

/* Prints what this Blender can do as one JSON line. Device lists come from
 * the Cycles add-on's preferences (the public API); the CPU's name and
 * OpenImageDenoise from the _cycles module, which every build with Cycles
 * has. Each part is optional: a build without Cycles still answers. */
static const char s_probe_script[] =
    "import json, sys\n"
    "def _tessera_probe():\n"
    "    import bpy\n"
    "    out = {'version': bpy.app.version_string, 'devices': [], 'oidn': False,\n"
    "           'cycles': False}\n"
    "    try:\n"
    "        out['cycles'] = bool(bpy.app.build_options.cycles)\n"
    "    except Exception:\n"
    "        pass\n"
    "    try:\n"
    "        import _cycles\n"
    "        out['oidn'] = bool(getattr(_cycles, 'with_openimagedenoise', False))\n"
    "        for d in _cycles.available_devices('CPU'):\n"
    "            out['devices'].append({'type': 'CPU', 'name': str(d[0])})\n"
    "    except Exception:\n"
    "        pass\n"
    "    try:\n"
    "        prefs = bpy.context.preferences.addons['cycles'].preferences\n"
    "        for t in ('CUDA', 'OPTIX', 'HIP', 'ONEAPI', 'METAL'):\n"
    "            try:\n"
    "                for d in prefs.get_devices_for_type(t):\n"
    "                    if d.type == t:\n"
    "                        out['devices'].append({'type': t, 'name': d.name})\n"
    "            except Exception:\n"
    "                pass\n"
    "    except Exception:\n"
    "        pass\n"
    "    print('" S_PROBE_TAG "' + json.dumps(out))\n"
    "    sys.stdout.flush()\n"
    "_tessera_probe()\n";

/*
 * Runs after the .blend is loaded and before -s/-e/-a render it. Its JSON
 * argument: {"out", "width", "height", "region": [x0, y0, x1, y1], "device"}.
 *
 * - Files: every image, library, font, volume, cache file and movie clip
 *   that is used, not packed, must exist (numbered sequences and UDIM
 *   tiles: their folder). Else exit 87 after "tessera: missing_asset: ...".
 * - Device: CPU, or CUDA/OPTIX with only that type's devices in use (the
 *   worker's CUDA_VISIBLE_DEVICES leaves one GPU to see). No such device:
 *   exit 88 after "tessera: missing_feature: ...".
 * - Output: the task's frame size at 100 %, OpenEXR float RGBA into
 *   <taskdir>/out_####.exr, every frame (step 1), no placeholders, no
 *   stereo views.
 * - Tiles: a border with crop off, so Blender writes the full frame, black
 *   outside. Blender's border is a fraction of the frame, measured from the
 *   bottom, that it turns into pixels by truncating border * size; asking
 *   for the pixel edge plus half a pixel makes that truncation land on the
 *   edge whatever the float rounding, so tiles meet with no gap and no
 *   overlap.
 * The scene's engine, samples, seed and everything else stay the artist's.
 */
static const char s_setup_script[] =
    "import bpy, json, os, sys\n"
    "def _tessera_setup():\n"
    "    a = json.loads(sys.argv[sys.argv.index('--') + 1])\n"
    "    def stop(code, cls, why):\n"
    "        print('" S_MARK "%s: %s' % (cls, why))\n"
    "        sys.stdout.flush()\n"
    "        sys.stderr.flush()\n"
    "        os._exit(code)\n"
    "    missing = []\n"
    "    kinds = (('image', 'images'), ('library', 'libraries'), ('font', 'fonts'),\n"
    "             ('volume', 'volumes'), ('cache file', 'cache_files'),\n"
    "             ('movie clip', 'movieclips'))\n"
    "    for kind, name in kinds:\n"
    "        for d in getattr(bpy.data, name, ()):\n"
    "            if getattr(d, 'packed_file', None) or getattr(d, 'packed_files', "
    "None):\n"
    "                continue\n"
    "            if kind != 'library' and d.users - int(d.use_fake_user) <= 0:\n"
    "                continue\n"
    "            src = getattr(d, 'source', 'FILE')\n"
    "            if kind == 'image' and src not in ('FILE', 'SEQUENCE', 'MOVIE', "
    "'TILED'):\n"
    "                continue\n"
    "            if not d.filepath or d.filepath == '<builtin>':\n"
    "                continue\n"
    "            path = bpy.path.abspath(d.filepath, library=getattr(d, 'library', "
    "None))\n"
    "            if src in ('SEQUENCE', 'TILED') or getattr(d, 'is_sequence', False):\n"
    "                path = os.path.dirname(path)\n"
    "            if not os.path.exists(path):\n"
    "                missing.append(\"%s '%s' (%s)\" % (kind, d.name, d.filepath))\n"
    "    for m in missing:\n"
    "        print('" S_MARK "missing file: ' + m)\n"
    "    if missing:\n"
    "        more = ' and %d more' % (len(missing) - 1) if len(missing) > 1 else ''\n"
    "        stop(87, 'missing_asset', 'missing file: ' + missing[0] + more)\n"
    "    sc = bpy.context.scene\n"
    "    r = sc.render\n"
    "    dev = a['device']\n"
    "    if r.engine == 'CYCLES':\n"
    "        if dev == 'CPU':\n"
    "            sc.cycles.device = 'CPU'\n"
    "        else:\n"
    "            feat = 'cycles:' + dev.lower()\n"
    "            prefs = bpy.context.preferences.addons['cycles'].preferences\n"
    "            try:\n"
    "                prefs.compute_device_type = dev\n"
    "                found = [d for d in prefs.get_devices_for_type(dev) if d.type == "
    "dev]\n"
    "            except Exception as e:\n"
    "                stop(88, 'missing_feature', 'this Blender cannot render on %s (%s): "
    "%s'\n"
    "                     % (dev, feat, e))\n"
    "            if not found:\n"
    "                stop(88, 'missing_feature', 'Blender sees no %s device (%s)' % "
    "(dev, feat))\n"
    "            for d in prefs.devices:\n"
    "                d.use = d.type == dev\n"
    "            sc.cycles.device = 'GPU'\n"
    "            print('" S_MARK
    "rendering on %s: %s' % (dev, ', '.join(d.name for d in found)))\n"
    "    w, h = a['width'], a['height']\n"
    "    if w > 0 and h > 0:\n"
    "        r.resolution_x, r.resolution_y, r.resolution_percentage = w, h, 100\n"
    "    r.use_multiview = False\n"
    "    s = r.image_settings\n"
    "    s.file_format = 'OPEN_EXR'\n"
    "    s.color_depth = '32'\n"
    "    s.color_mode = 'RGBA'\n"
    "    s.exr_codec = 'ZIP'\n"
    "    if hasattr(s, 'use_preview'):\n"
    "        s.use_preview = False\n"
    "    r.use_file_extension = True\n"
    "    r.use_overwrite = True\n"
    "    r.use_placeholder = False\n"
    "    r.filepath = a['out']\n"
    "    sc.frame_step = 1\n"
    "    x0, y0, x1, y1 = a['region']\n"
    "    if w > 0 and h > 0 and (x0, y0, x1, y1) != (0, 0, w, h):\n"
    "        r.use_border = True\n"
    "        r.use_crop_to_border = False\n"
    "        r.border_min_x = (x0 + 0.5) / w\n"
    "        r.border_max_x = min(1.0, (x1 + 0.5) / w)\n"
    "        r.border_min_y = (h - y1 + 0.5) / h\n"
    "        r.border_max_y = min(1.0, (h - y0 + 0.5) / h)\n"
    "    else:\n"
    "        r.use_border = False\n"
    "_tessera_setup()\n";

/* ---- probe -------------------------------------------------------------- */

/* A string field of o that is 1..max printable ASCII characters, or NULL. */
static const char *s_str(const cJSON *o, const char *name, size_t max)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!cJSON_IsString(v))
        return NULL;
    size_t n = strlen(v->valuestring);
    if (n == 0 || n > max)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)v->valuestring[i] < 0x20 ||
            (unsigned char)v->valuestring[i] >= 0x7f)
            return NULL;
    return v->valuestring;
}

/* Appends feature f to arr unless it is there already. */
static void s_feature(cJSON *arr, const char *f)
{
    const cJSON *v;
    cJSON_ArrayForEach(v, arr)
    {
        if (cJSON_IsString(v) && strcmp(v->valuestring, f) == 0)
            return;
    }
    cJSON_AddItemToArray(arr, cJSON_CreateString(f));
}

cJSON *tsr_blender_probe_line(const char *line)
{
    size_t tag = strlen(S_PROBE_TAG);
    if (strncmp(line, S_PROBE_TAG, tag) != 0)
        return NULL;
    cJSON *in = cJSON_Parse(line + tag);
    if (!cJSON_IsObject(in)) {
        cJSON_Delete(in);
        return NULL;
    }
    const char *version = s_str(in, "version", S_MAX_VERSION);
    const cJSON *devs = cJSON_GetObjectItemCaseSensitive(in, "devices");
    cJSON *out = cJSON_CreateObject();
    cJSON *odevs = cJSON_CreateArray();
    cJSON *feats = cJSON_CreateArray();
    if (!version || !cJSON_IsArray(devs) || !out || !odevs || !feats) {
        cJSON_Delete(in);
        cJSON_Delete(out);
        cJSON_Delete(odevs);
        cJSON_Delete(feats);
        return NULL;
    }
    cJSON_AddStringToObject(out, "version", version);
    s_feature(feats, "blender");
    int major = 0, minor = 0;
    if (sscanf(version, "%d.%d", &major, &minor) == 2 && major >= 0 && minor >= 0) {
        char f[32];
        snprintf(f, sizeof f, "blender:%d.%d", major, minor);
        s_feature(feats, f);
    }
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(in, "oidn")))
        s_feature(feats, "blender:oidn");
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(in, "cycles")))
        s_feature(feats, "cycles");
    const cJSON *d;
    cJSON_ArrayForEach(d, devs)
    {
        if (cJSON_GetArraySize(odevs) >= TSR_BLENDER_MAX_DEVICES)
            break;
        const char *type = s_str(d, "type", 15);
        const char *name = s_str(d, "name", S_MAX_NAME);
        int upper = type != NULL;
        for (const char *p = type; upper && *p; p++)
            upper = isupper((unsigned char)*p) != 0;
        if (!upper || !name)
            continue; /* a device we cannot name is not announced */
        cJSON *o = cJSON_CreateObject();
        if (!o)
            break;
        cJSON_AddStringToObject(o, "type", type);
        cJSON_AddStringToObject(o, "name", name);
        cJSON_AddItemToArray(odevs, o);
        if (strcmp(type, "CPU") != 0) {
            char f[32];
            snprintf(f, sizeof f, "cycles:%s", type);
            for (char *p = f; *p; p++)
                *p = (char)tolower((unsigned char)*p);
            s_feature(feats, f);
        }
    }
    cJSON_AddItemToObject(out, "devices", odevs);
    cJSON_AddItemToObject(out, "features", feats);
    cJSON_Delete(in);
    return out;
}

/* Keeps the first probe line seen. */
static void s_on_probe_line(void *ctx, const char *line)
{
    cJSON **found = ctx;
    if (!*found)
        *found = tsr_blender_probe_line(line);
}

int tsr_blender_probe(const char *path, cJSON **out, char *err, size_t errlen)
{
    *out = NULL;
    char path_env[PATH_MAX + 8];
    const char *sys_path = getenv("PATH");
    snprintf(path_env, sizeof path_env, "PATH=%s", sys_path ? sys_path : "/usr/bin:/bin");
    /* Blender keeps nothing of the probe: its home and temporary folder are
     * /tmp, and --factory-startup reads no user settings. */
    char *envp[] = {
        path_env, "HOME=/tmp", "TMPDIR=/tmp", "LANG=C", "CUDA_DEVICE_ORDER=PCI_BUS_ID",
        NULL};
    char *argv[] = {
        (char *)path,           "-b", "--factory-startup", "-noaudio", "--python-expr",
        (char *)s_probe_script, NULL};
    cJSON *found = NULL;
    char *log = NULL;
    int st = 0;
    int rc = tsr_probe_run(argv, envp, "/", TSR_BLENDER_PROBE_TIMEOUT_MS, s_on_probe_line,
                           &found, &st, &log, err, errlen);
    if (rc == 0 && !found) {
        char last[256] = "";
        if (log)
            tsr_child_last_line(log, last, sizeof last);
        if (WIFSIGNALED(st))
            snprintf(err, errlen, "'%s' was killed by signal %d (last output: %s)", path,
                     WTERMSIG(st), last[0] ? last : "none");
        else
            snprintf(err, errlen,
                     "'%s' exited with status %d without the probe's answer "
                     "(last output: %s)",
                     path, WIFEXITED(st) ? WEXITSTATUS(st) : -1, last[0] ? last : "none");
        rc = TSR_ERENDER;
    }
    free(log);
    if (rc != 0) {
        cJSON_Delete(found);
        return rc;
    }
    cJSON_AddStringToObject(found, "path", path);
    *out = found;
    return 0;
}

int tsr_blender_has_device(const cJSON *info, const char *type)
{
    const cJSON *d;
    cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(info, "devices"))
    {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(d, "type");
        if (cJSON_IsString(t) && strcmp(t->valuestring, type) == 0)
            return 1;
    }
    return 0;
}

const char *tsr_blender_device(const struct tsr_task_spec *spec, int on_gpu,
                               const cJSON *info)
{
    switch (spec->cycles_device) {
    case TSR_CYCLES_CPU:
        return "CPU";
    case TSR_CYCLES_CUDA:
        return "CUDA";
    case TSR_CYCLES_OPTIX:
        return "OPTIX";
    case TSR_CYCLES_DEFAULT:
        break;
    }
    if (!on_gpu)
        return "CPU";
    return tsr_blender_has_device(info, "OPTIX") ? "OPTIX" : "CUDA";
}

/* ---- command line ------------------------------------------------------- */

int tsr_blender_argv(const struct tsr_task_spec *spec, const struct tsr_blender_run *run,
                     char ***argvp, char *err, size_t errlen)
{
    *argvp = NULL;
    char out[PATH_MAX + 16], threads[16], fs[32], fe[32], code[8];
    if (tsr_fmt(out, sizeof out, "%s/out_####", run->task_dir) != 0) {
        snprintf(err, errlen, "task path too long");
        return TSR_ELIMIT;
    }
    snprintf(threads, sizeof threads, "%d", run->threads > 0 ? run->threads : 1);
    snprintf(fs, sizeof fs, "%" PRId64, spec->frame_start);
    snprintf(fe, sizeof fe, "%" PRId64, spec->frame_end);
    snprintf(code, sizeof code, "%d", TSR_BLENDER_EXIT_SCRIPT);
    cJSON *a = cJSON_CreateObject();
    const struct tsr_region *r = &spec->region;
    int region[4] = {r->x0, r->y0, r->x1, r->y1};
    cJSON *reg = cJSON_CreateIntArray(region, 4);
    char *json = NULL;
    if (a && reg && cJSON_AddStringToObject(a, "out", out) &&
        cJSON_AddNumberToObject(a, "width", spec->width) &&
        cJSON_AddNumberToObject(a, "height", spec->height) &&
        cJSON_AddItemToObject(a, "region", reg) && (reg = NULL, 1) &&
        cJSON_AddStringToObject(a, "device", run->device))
        json = cJSON_PrintUnformatted(a);
    cJSON_Delete(reg);
    cJSON_Delete(a);
    const char *args[] = {run->blender,
                          "-b",
                          "--factory-startup",
                          "-noaudio",
                          "--disable-autoexec",
                          run->scene,
                          "--python-exit-code",
                          code,
                          "--python-expr",
                          s_setup_script,
                          "-t",
                          threads,
                          "-s",
                          fs,
                          "-e",
                          fe,
                          "-a",
                          "--",
                          json};
    size_t n = sizeof args / sizeof args[0];
    char **argv = json ? calloc(n + 1, sizeof *argv) : NULL;
    int ok = argv != NULL;
    for (size_t i = 0; ok && i < n; i++)
        ok = (argv[i] = strdup(args[i])) != NULL;
    free(json);
    if (!ok) {
        for (size_t i = 0; argv && i < n; i++)
            free(argv[i]);
        free(argv);
        snprintf(err, errlen, "out of memory building the blender command line");
        return TSR_ENOMEM;
    }
    *argvp = argv;
    return 0;
}

/* ---- progress ----------------------------------------------------------- */

/* Reads "a/b" at p into a fraction in [0, 1]; -1 if p holds none. */
static double s_fraction(const char *p)
{
    char *end = NULL;
    long a = strtol(p, &end, 10);
    if (end == p || *end != '/')
        return -1;
    const char *q = end + 1;
    long b = strtol(q, &end, 10);
    if (end == q || b <= 0 || a < 0 || a > b)
        return -1;
    return (double)a / (double)b;
}

int tsr_blender_progress(const struct tsr_task_spec *spec, const char *line)
{
    int64_t n = spec->frame_end - spec->frame_start + 1;
    int64_t frame;
    double within = -1;
    const char *p;
    if (strncmp(line, "Fra:", 4) == 0) {
        char *end = NULL;
        frame = strtoll(line + 4, &end, 10);
        if (end == line + 4)
            return -1;
        /* Cycles 3.x and later: "| Sample 12/64"; older: "Rendered 3/16
         * Tiles" or "Path Tracing Tile 3/16". */
        if ((p = strstr(line, "| Sample ")) != NULL)
            within = s_fraction(p + 9);
        else if ((p = strstr(line, "Rendered ")) != NULL)
            within = s_fraction(p + 9);
        else if ((p = strstr(line, "Path Tracing Tile ")) != NULL)
            within = s_fraction(p + 18);
        if (within < 0)
            return -1;
    } else if (strncmp(line, "Saved: '", 8) == 0 && (p = strstr(line, "out_")) != NULL) {
        char *end = NULL;
        frame = strtoll(p + 4, &end, 10);
        if (end == p + 4)
            return -1;
        within = 1.0;
    } else {
        return -1;
    }
    if (frame < spec->frame_start || frame > spec->frame_end)
        return -1;
    double pct = ((double)(frame - spec->frame_start) + within) * 100.0 / (double)n;
    return pct >= 99 ? 99 : pct <= 0 ? 0 : (int)pct;
}

/* ---- failures ----------------------------------------------------------- */

/* Case-insensitive strstr. */
static const char *s_find(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (const char *p = hay; *p; p++)
        if (strncasecmp(p, needle, n) == 0)
            return p;
    return NULL;
}

/* Copies the line of text that holds p into buf (cut to fit). */
static void s_line_at(const char *text, const char *p, char *buf, size_t size)
{
    const char *start = p, *end = p;
    while (start > text && start[-1] != '\n')
        start--;
    while (*end && *end != '\n')
        end++;
    while (start < end && (*start == ' ' || *start == '\t'))
        start++;
    snprintf(buf, size, "%.*s", (int)(end - start), start);
}

/* The first line of log that starts with prefix (after blanks); its rest
 * goes into buf. Returns 1 when found. */
static int s_marked(const char *log, const char *prefix, char *buf, size_t size)
{
    size_t n = strlen(prefix);
    for (const char *p = log; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        const char *q = p;
        while (*q == ' ' || *q == '\t')
            q++;
        if (strncmp(q, prefix, n) == 0) {
            const char *end = strchr(q + n, '\n');
            snprintf(buf, size, "%.*s",
                     (int)(end ? (size_t)(end - q - n) : strlen(q + n)), q + n);
            return 1;
        }
    }
    return 0;
}

int tsr_blender_last_error(const char *log, char *buf, size_t size)
{
    const char *last = NULL;
    for (const char *p = log; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        const char *q = p;
        while (*q == ' ' || *q == '\t')
            q++;
        if (strncmp(q, "Error: ", 7) == 0 || strncmp(q, "ERROR ", 6) == 0)
            last = q;
    }
    if (!last)
        return 0;
    s_line_at(log, last, buf, size);
    return 1;
}

const char *tsr_blender_classify(int status, const char *log, char *err, size_t errlen)
{
    char line[512] = "";
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (!log)
        log = "";
    /* The setup script's own verdicts are certain; they come first. */
    if (s_marked(log, S_MARK "missing_asset: ", line, sizeof line) ||
        code == TSR_BLENDER_EXIT_ASSET) {
        snprintf(err, errlen, "%s", line[0] ? line : "a file the scene uses is missing");
        return "missing_asset";
    }
    if (s_marked(log, S_MARK "missing_feature: ", line, sizeof line) ||
        code == TSR_BLENDER_EXIT_FEATURE) {
        snprintf(err, errlen, "%s", line[0] ? line : "a device or feature is missing");
        return "missing_feature";
    }
    /* Out of memory, on the host or the GPU, as Blender and Cycles say it. */
    static const char *const oom[] = {
        "out of memory",
        "out of gpu memory",
        "cuda_error_out_of_memory",
        "std::bad_alloc",
        "failed to allocate",
        "cannot allocate memory",
        "memory allocation failed",
    };
    for (size_t i = 0; i < sizeof oom / sizeof oom[0]; i++) {
        const char *p = s_find(log, oom[i]);
        if (p) {
            s_line_at(log, p, line, sizeof line);
            snprintf(err, errlen, "blender ran out of memory: %s", line);
            return "oom";
        }
    }
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) {
        /* The worker's own kills (timeout, cancel) never come here. */
        snprintf(err, errlen,
                 "blender was killed by SIGKILL, most likely by the kernel's "
                 "out-of-memory killer");
        return "oom";
    }
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        snprintf(err, errlen, "blender crashed: killed by signal %d (%s)", sig,
                 strsignal(sig));
        return "crash";
    }
    /* A build without the device or feature the scene asks for. */
    static const char *const feature[] = {
        "not compiled with",
        "compiled without",
        "is not supported by this build",
        "no compatible gpus found",
        "cuda binary kernel for this graphics card",
        "failed loading render kernel",
    };
    for (size_t i = 0; i < sizeof feature / sizeof feature[0]; i++) {
        const char *p = s_find(log, feature[i]);
        if (p) {
            s_line_at(log, p, line, sizeof line);
            snprintf(err, errlen, "this Blender lacks a feature the scene needs: %s",
                     line);
            return "missing_feature";
        }
    }
    /* Files Blender itself could not read: the .blend, a linked library. */
    static const char *const asset[] = {"cannot read file", "cannot open file",
                                        "unable to open"};
    for (size_t i = 0; i < sizeof asset / sizeof asset[0]; i++) {
        const char *p = s_find(log, asset[i]);
        if (p) {
            s_line_at(log, p, line, sizeof line);
            snprintf(err, errlen, "blender could not read a file: %s", line);
            return "missing_asset";
        }
    }
    return NULL;
}

/* ---- pieces ------------------------------------------------------------- */

int tsr_blender_crop(const char *path, const struct tsr_region *region, int width,
                     int height, char *err, size_t errlen)
{
    struct tsr_image_limits lim;
    tsr_image_limits_default(&lim);
    struct tsr_image_info info;
    int rc = tsr_image_probe(path, &lim, &info, err, errlen);
    if (rc != 0)
        return rc;
    const struct tsr_region *d = &info.data;
    if (d->x0 == region->x0 && d->y0 == region->y0 && d->x1 == region->x1 &&
        d->y1 == region->y1)
        return 0; /* a piece already (a whole-frame task, or crop on) */
    if (info.full_width != width || info.full_height != height || d->x0 != 0 ||
        d->y0 != 0 || d->x1 != width || d->y1 != height) {
        snprintf(err, errlen,
                 "blender wrote a %dx%d image with data window [%d,%d)x[%d,%d); expected "
                 "the %dx%d frame or the region [%d,%d)x[%d,%d)",
                 info.full_width, info.full_height, d->x0, d->x1, d->y0, d->y1, width,
                 height, region->x0, region->x1, region->y0, region->y1);
        return TSR_EIMAGE;
    }
    float *px = NULL;
    if ((rc = tsr_image_read(path, &lim, &info, &px, err, errlen)) != 0)
        return rc;
    /* Rows of the file run top to bottom, as the region's do; copy the
     * region's rows down to the front of the buffer (never overlapping
     * forwards, since the destination is never past the source). */
    size_t nc = (size_t)info.nchannels;
    size_t rw = (size_t)(region->x1 - region->x0);
    for (int y = region->y0; y < region->y1; y++) {
        const float *src = px + ((size_t)y * (size_t)width + (size_t)region->x0) * nc;
        float *dst = px + (size_t)(y - region->y0) * rw * nc;
        memmove(dst, src, rw * nc * sizeof *px);
    }
    struct tsr_image_info piece = {*region, width, height, info.nchannels};
    rc = tsr_image_write_exr(path, &piece, px, err, errlen);
    free(px);
    return rc;
}
