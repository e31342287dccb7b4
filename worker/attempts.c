/*
 * attempts.c: the life of each attempt on this worker, from TASK to
 * RESULT_ACK (core.h has the diagram and the transition table): fetching
 * its scene, running its renderer, judging what the renderer left, keeping
 * the result in the spool and giving the slot back.
 */
#include "core.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tessera/error.h"
#include "tessera/hash.h"
#include "tessera/image.h"
#include "tessera/log.h"
#include "tessera/util.h"

#include "adapters.h"
#include "blender.h"

#define S_LOG "worker"
#define S_PROGRESS_MS 1000 /* at most one PROGRESS per task per second */

/* ---- slots and small helpers ------------------------------------------ */

int tsr_core_free_slots(const struct tsr_core *w)
{
    int used = 0;
    for (const struct tsr_core_task *t = w->tasks; t; t = t->next)
        used += t->gpu < 0;
    for (const struct tsr_core_result *r = w->results; r; r = r->next)
        used += r->holds_slot && r->gpu < 0;
    return w->cfg->slots > used ? w->cfg->slots - used : 0;
}

/* The GPU indexes held by tasks and unreported results, as bits. */
static uint64_t s_gpus_used(const struct tsr_core *w)
{
    uint64_t used = 0;
    for (const struct tsr_core_task *t = w->tasks; t; t = t->next)
        if (t->gpu >= 0)
            used |= UINT64_C(1) << t->gpu;
    for (const struct tsr_core_result *r = w->results; r; r = r->next)
        if (r->holds_slot && r->gpu >= 0)
            used |= UINT64_C(1) << r->gpu;
    return used;
}

int tsr_core_free_gpu_slots(const struct tsr_core *w)
{
    uint64_t used = s_gpus_used(w);
    int n = 0;
    for (int i = 0; i < w->gpu_slots; i++)
        n += !(used & (UINT64_C(1) << i));
    return n;
}

/* The lowest free GPU index, or -1. */
static int s_free_gpu(const struct tsr_core *w)
{
    uint64_t used = s_gpus_used(w);
    for (int i = 0; i < w->gpu_slots; i++)
        if (!(used & (UINT64_C(1) << i)))
            return i;
    return -1;
}

/* Offers one freed slot back: a CPU slot, or GPU gpu's. */
static void s_release(struct tsr_core *w, int gpu)
{
    tsr_core_ready(w, gpu < 0, gpu >= 0);
}

void tsr_core_ready(struct tsr_core *w, int credit, int gpu_credit)
{
    if ((credit <= 0 && gpu_credit <= 0) || w->draining)
        return;
    cJSON *h = cJSON_CreateObject();
    if (!h)
        return;
    cJSON_AddNumberToObject(h, "credit", credit > 0 ? credit : 0);
    if (gpu_credit > 0)
        cJSON_AddNumberToObject(h, "gpu_credit", gpu_credit);
    tsr_agent_send(w->agent, "READY", h, NULL,
                   0); /* lost now: the next WELCOME offers it */
    cJSON_Delete(h);
}

static struct tsr_core_task *s_find_task(struct tsr_core *w, int64_t attempt)
{
    for (struct tsr_core_task *t = w->tasks; t; t = t->next)
        if (t->spec.attempt == attempt)
            return t;
    return NULL;
}

static struct tsr_core_result *s_find_result(struct tsr_core *w, int64_t attempt)
{
    for (struct tsr_core_result *r = w->results; r; r = r->next)
        if (tsr_upload_attempt(r->up) == attempt)
            return r;
    return NULL;
}

static void s_task_free(struct tsr_core *w, struct tsr_core_task *t)
{
    for (struct tsr_core_task **p = &w->tasks; *p; p = &(*p)->next) {
        if (*p == t) {
            *p = t->next;
            break;
        }
    }
    tsr_child_destroy(&t->child);
    tsr_task_spec_clear(&t->spec);
    free(t);
}

void tsr_core_result_free(struct tsr_core *w, struct tsr_core_result *r)
{
    for (struct tsr_core_result **p = &w->results; *p; p = &(*p)->next) {
        if (*p == r) {
            *p = r->next;
            break;
        }
    }
    tsr_upload_destroy(&r->up);
    free(r);
}

static void s_task_dir(const struct tsr_core *w, int64_t attempt, char *buf, size_t size)
{
    if (tsr_fmt(buf, size, "%s/%" PRId64, w->tasks_dir, attempt) != 0)
        buf[0] = '\0';
}

/* ---- results ------------------------------------------------------------ */

/* The first RESULT of a task frees its slot. */
void tsr_core_upload_event(struct tsr_core *w, struct tsr_core_result *r,
                           enum tsr_upload_event ev)
{
    if (ev == TSR_UPLOAD_SENT && r->holds_slot) {
        r->holds_slot = 0;
        s_release(w, r->gpu);
    }
}

static cJSON *s_record(int64_t attempt, int ok, const char *cls, const char *error,
                       int64_t render_ms, const char *log, cJSON *files)
{
    cJSON *r = cJSON_CreateObject();
    if (!r) {
        cJSON_Delete(files);
        return NULL;
    }
    cJSON_AddNumberToObject(r, "attempt", (double)attempt);
    cJSON_AddBoolToObject(r, "ok", ok);
    cJSON_AddItemToObject(r, "files", files ? files : cJSON_CreateArray());
    cJSON_AddNumberToObject(r, "render_ms", (double)render_ms);
    cJSON_AddStringToObject(r, "log", log ? log : "");
    if (!ok) {
        cJSON_AddStringToObject(r, "class", cls);
        cJSON_AddStringToObject(r, "error", error);
    }
    return r;
}

/*
 * Spools a record (taking it) with its files, starts its upload and keeps it
 * until RESULT_ACK. When the spool cannot take it, the result still goes out
 * from memory (as a failure if its files could not be kept): a lost result
 * only costs the master a requeue.
 */
static void s_keep_result(struct tsr_core *w, int64_t attempt, cJSON *record,
                          const char *const *paths, const char *const *names, size_t n,
                          int holds_slot, int gpu)
{
    if (!record) {
        tsr_log(TSR_LOG_ERROR, S_LOG, "attempt %" PRId64 ": out of memory for its result",
                attempt);
        if (holds_slot)
            s_release(w, gpu);
        return;
    }
    int rc = tsr_spool_commit(w->spool, attempt, record, paths, names, n);
    if (rc != 0) {
        tsr_log(TSR_LOG_ERROR, S_LOG, "attempt %" PRId64 ": cannot spool its result: %s",
                attempt, tsr_strerror(rc));
        if (n > 0) {
            char why[128];
            snprintf(why, sizeof why, "cannot keep the rendered files: %s",
                     tsr_strerror(rc));
            const cJSON *l = cJSON_GetObjectItemCaseSensitive(record, "log");
            const cJSON *ms = cJSON_GetObjectItemCaseSensitive(record, "render_ms");
            cJSON *fail = s_record(attempt, 0, "internal", why,
                                   cJSON_IsNumber(ms) ? (int64_t)ms->valuedouble : 0,
                                   cJSON_IsString(l) ? l->valuestring : "", NULL);
            cJSON_Delete(record);
            record = fail;
            if (record)
                tsr_spool_commit(w->spool, attempt, record, NULL, NULL, 0);
        }
    }
    struct tsr_core_result *r = calloc(1, sizeof *r);
    if (!r || !record || tsr_upload_new(w->spool, attempt, &record, &r->up) != 0) {
        cJSON_Delete(record);
        free(r);
        tsr_log(TSR_LOG_ERROR, S_LOG, "attempt %" PRId64 ": out of memory for its result",
                attempt);
        if (holds_slot)
            s_release(w, gpu);
        return;
    }
    r->holds_slot = holds_slot;
    r->gpu = gpu;
    r->next = w->results;
    w->results = r;
    tsr_core_upload_event(w, r, tsr_upload_start(r->up, w->agent));
}

/* A failure without files: a bad TASK, a missing archive, a dead renderer.
 * With holds_slot, the result holds the task's slot (gpu: its GPU index, or
 * -1 for a CPU slot) until it first goes out. */
static void s_fail_attempt(struct tsr_core *w, int64_t attempt, const char *cls,
                           const char *error, int64_t render_ms, const char *log,
                           int holds_slot, int gpu)
{
    tsr_log(TSR_LOG_WARN, S_LOG, "attempt %" PRId64 " failed (%s): %s", attempt, cls,
            error);
    s_keep_result(w, attempt, s_record(attempt, 0, cls, error, render_ms, log, NULL),
                  NULL, NULL, 0, holds_slot, gpu);
}

/* Ends a task that has no child with a failure; frees it. */
static void s_task_fail(struct tsr_core *w, struct tsr_core_task *t, const char *cls,
                        const char *error)
{
    int64_t attempt = t->spec.attempt;
    int gpu = t->gpu;
    s_task_free(w, t);
    s_fail_attempt(w, attempt, cls, error, 0, "", 1, gpu);
}

/* Which failure class a cache error is (doc/renderers.md). */
static const char *s_cache_class(int rc)
{
    switch (rc) {
    case TSR_EARCHIVE:
    case TSR_EUNSAFE:
    case TSR_ELIMIT:
    case TSR_EEXIST:
        return "archive";
    case TSR_EIO:
    case TSR_EFULL:
    case TSR_ENOMEM:
        return "internal";
    default:
        return "fetch";
    }
}

/* ---- running ------------------------------------------------------------ */

static void s_send_progress(struct tsr_core_task *t, int64_t now)
{
    cJSON *h = cJSON_CreateObject();
    if (!h)
        return;
    cJSON_AddNumberToObject(h, "attempt", (double)t->spec.attempt);
    cJSON_AddNumberToObject(h, "percent", t->progress);
    tsr_agent_send(t->w->agent, "PROGRESS", h, NULL, 0); /* dropped while unregistered */
    cJSON_Delete(h);
    t->progress_sent_ms = now;
    t->progress_pending = 0;
}

/* Takes a new percent; PROGRESS goes out at most once per S_PROGRESS_MS. */
static void s_progress(struct tsr_core_task *t, int percent)
{
    t->progress = percent;
    int64_t now = tsr_now_ms();
    if (t->progress_sent_ms == 0 || now - t->progress_sent_ms >= S_PROGRESS_MS)
        s_send_progress(t, now);
    else
        t->progress_pending = 1;
}

/* Reads "progress: NN" (NN 0..100, decimals ignored) from a renderer line;
 * Blender's own status lines instead for a Blender task (blender.h). */
static void s_on_line(void *ctx, const char *line)
{
    struct tsr_core_task *t = ctx;
    t->last_output_ms = tsr_now_ms(); /* any line shows it is alive (stall_s) */
    while (*line == ' ' || *line == '\t')
        line++;
    if (t->spec.renderer == TSR_RENDERER_BLENDER) {
        int pct = tsr_blender_progress(&t->spec, line);
        if (pct > t->progress && t->state == TSR_CORE_RUNNING)
            s_progress(t, pct);
        return;
    }
    if (strncmp(line, "progress:", 9) != 0 || t->state != TSR_CORE_RUNNING)
        return;
    const char *p = line + 9;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p < '0' || *p > '9')
        return;
    long v = 0;
    while (*p >= '0' && *p <= '9' && v <= 100)
        v = v * 10 + (*p++ - '0');
    if (v > 100)
        return;
    s_progress(t, (int)v);
}

/* How the log names what runs a task: "builtin", "command", "blender on
 * GPU 1 (OPTIX)". */
static const char *s_renderer_name(const struct tsr_core_task *t)
{
    static char buf[64];
    const char *r = t->spec.renderer == TSR_RENDERER_BUILTIN   ? "builtin"
                    : t->spec.renderer == TSR_RENDERER_BLENDER ? "blender"
                                                               : "command";
    if (t->gpu < 0)
        return r;
    snprintf(buf, sizeof buf, "%s on GPU %d", r, t->gpu);
    return buf;
}

static void s_start(struct tsr_core *w, struct tsr_core_task *t)
{
    char scene_dir[PATH_MAX], scene[PATH_MAX + TSR_TASK_MAX_SCENE], err[512] = "";
    struct stat st;
    if (tsr_cache_scene_dir(w->cache, t->spec.archive, scene_dir, sizeof scene_dir) !=
        0) {
        s_task_fail(w, t, "internal", "cache path too long");
        return;
    }
    if (t->spec.scene[0]) {
        if (tsr_fmt(scene, sizeof scene, "%s/%s", scene_dir, t->spec.scene) != 0 ||
            stat(scene, &st) != 0 || !S_ISREG(st.st_mode)) {
            snprintf(err, sizeof err, "scene file '%s' is not in archive %.12s",
                     t->spec.scene, t->spec.archive);
            s_task_fail(w, t, "archive", err);
            return;
        }
    }
    tsr_rm_rf(t->dir);
    if (!t->dir[0] || tsr_mkdir_p(t->dir) != 0 ||
        tsr_sandbox_own(w->sandbox, t->dir) != 0) {
        snprintf(err, sizeof err, "cannot create task folder '%.400s'", t->dir);
        s_task_fail(w, t, "internal", err);
        return;
    }
    int threads = w->cores / w->cfg->slots;
    const char *blender = NULL;
    if (w->blender) {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(w->blender, "path");
        blender = cJSON_IsString(p) ? p->valuestring : NULL;
    }
    struct tsr_adapter_ctx ctx = {scene_dir,
                                  t->dir,
                                  threads > 1 ? threads : 1,
                                  t->gpu,
                                  w->gpu_slots > 0,
                                  blender,
                                  tsr_blender_device(&t->spec, t->gpu >= 0, w->blender)};
    struct tsr_cmdline cl = {0};
    struct tsr_sandbox_task box = {scene_dir, t->dir, t->gpu};
    int rc = tsr_adapter_build(&t->spec, &ctx, &cl, err, sizeof err);
    if (rc == 0)
        rc = tsr_sandbox_wrap(w->sandbox, &box, &cl, err, sizeof err);
    if (rc == 0)
        rc = tsr_child_spawn(cl.argv, cl.envp, t->dir, &t->child, err, sizeof err);
    tsr_cmdline_clear(&cl);
    if (rc != 0) {
        s_task_fail(w, t, rc == TSR_ELIMIT ? "bad_task" : "internal", err);
        return;
    }
    t->state = TSR_CORE_RUNNING;
    int64_t now = tsr_now_ms();
    t->deadline_ms = t->spec.timeout_s > 0 ? now + t->spec.timeout_s * 1000 : INT64_MAX;
    t->last_output_ms = now;
    tsr_log(TSR_LOG_INFO, S_LOG,
            "attempt %" PRId64 ": job %" PRId64 " task %" PRId64 " frames %" PRId64
            "-%" PRId64 " started (%s)",
            t->spec.attempt, t->spec.job, t->spec.task, t->spec.frame_start,
            t->spec.frame_end, s_renderer_name(t));
}

/* A Blender that exited 0 without an image: Blender says why in its log
 * (an "Error: ..." line; out of memory; a file it could not read), so the
 * class and the error come from there when it does. */
static const char *s_blender_missing(const char *log, const char *cls, char *err,
                                     size_t errlen)
{
    char why[512];
    const char *bc = tsr_blender_classify(0, log, why, sizeof why);
    size_t n = strlen(err);
    if (bc) {
        snprintf(err + n, errlen - n, ": %s", why);
        return bc;
    }
    if (tsr_blender_last_error(log, why, sizeof why))
        snprintf(err + n, errlen - n, " (blender: %s)", why);
    return cls;
}

/* Checks the images of a renderer that exited 0 and spools the result. */
static void s_succeed(struct tsr_core *w, struct tsr_core_task *t, int64_t render_ms,
                      char *log)
{
    const struct tsr_task_spec *s = &t->spec;
    size_t n = s->outputs_image ? (size_t)(s->frame_end - s->frame_start + 1) : 0;
    char **paths = calloc(n + 1, sizeof *paths);
    char **names = calloc(n + 1, sizeof *names);
    cJSON *files = cJSON_CreateArray();
    char err[700] = "";
    const char *cls = NULL;
    if (!paths || !names || !files) {
        cls = "internal";
        snprintf(err, sizeof err, "out of memory checking the outputs");
    }
    struct tsr_image_limits lim;
    tsr_image_limits_default(&lim);
    for (size_t i = 0; !cls && i < n; i++) {
        int64_t frame = s->frame_start + (int64_t)i;
        char name[64], path[PATH_MAX], why[400] = "";
        struct stat st;
        tsr_adapter_output_name(frame, name, sizeof name);
        if (tsr_fmt(path, sizeof path, "%s/%s", t->dir, name) != 0) {
            cls = "internal";
            snprintf(err, sizeof err, "task path too long");
            break;
        }
        if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
            cls = "bad_output";
            snprintf(err, sizeof err, "frame %" PRId64 ": %s is missing", frame, name);
            if (s->renderer == TSR_RENDERER_BLENDER)
                cls = s_blender_missing(log, cls, err, sizeof err);
            break;
        }
        int rc;
        if (s->renderer == TSR_RENDERER_BLENDER &&
            (rc = tsr_blender_crop(path, &s->region, s->width, s->height, why,
                                   sizeof why)) != 0) {
            cls = rc == TSR_EIMAGE ? "bad_output" : "internal";
            snprintf(err, sizeof err, "frame %" PRId64 ": %s: %s", frame, name,
                     why[0] ? why : tsr_strerror(rc));
            break;
        }
        rc = tsr_image_verify(path, &lim, &s->region, s->width, s->height, NULL, why,
                              sizeof why);
        if (rc != 0) {
            cls = "bad_output";
            snprintf(err, sizeof err, "frame %" PRId64 ": %s: %s", frame, name,
                     why[0] ? why : tsr_strerror(rc));
            break;
        }
        char hash[TSR_HASH_HEX];
        unsigned long long size = 0;
        if ((rc = tsr_hash_file(path, hash, &size)) != 0) {
            cls = "internal";
            snprintf(err, sizeof err, "frame %" PRId64 ": cannot hash %s: %s", frame,
                     name, tsr_strerror(rc));
            break;
        }
        cJSON *f = cJSON_CreateObject();
        paths[i] = strdup(path);
        names[i] = strdup(name);
        if (!f || !paths[i] || !names[i]) {
            cJSON_Delete(f);
            cls = "internal";
            snprintf(err, sizeof err, "out of memory checking the outputs");
            break;
        }
        cJSON_AddNumberToObject(f, "frame", (double)frame);
        cJSON_AddStringToObject(f, "hash", hash);
        cJSON_AddNumberToObject(f, "size", (double)size);
        cJSON_AddStringToObject(f, "name", name);
        cJSON_AddItemToArray(files, f);
    }
    int64_t attempt = s->attempt;
    if (cls) {
        cJSON_Delete(files);
        tsr_log(TSR_LOG_WARN, S_LOG, "attempt %" PRId64 " failed (%s): %s", attempt, cls,
                err);
        s_keep_result(w, attempt, s_record(attempt, 0, cls, err, render_ms, log, NULL),
                      NULL, NULL, 0, 1, t->gpu);
    } else {
        tsr_log(TSR_LOG_INFO, S_LOG,
                "attempt %" PRId64 " done in %" PRId64 " ms, %zu file(s)", attempt,
                render_ms, n);
        s_keep_result(w, attempt, s_record(attempt, 1, NULL, NULL, render_ms, log, files),
                      (const char *const *)paths, (const char *const *)names, n, 1,
                      t->gpu);
    }
    for (size_t i = 0; i < n; i++) {
        free(paths[i]);
        free(names[i]);
    }
    free(paths);
    free(names);
}

/* The renderer of t was reaped with wait status st. */
static void s_finish(struct tsr_core *w, struct tsr_core_task *t, int st)
{
    int64_t now = tsr_now_ms();
    int64_t render_ms = tsr_child_elapsed_ms(t->child, now);
    if (t->state == TSR_CORE_STOPPING) {
        tsr_log(TSR_LOG_INFO, S_LOG, "attempt %" PRId64 " cancelled", t->spec.attempt);
        tsr_rm_rf(t->dir);
        int gpu = t->gpu;
        s_task_free(w, t);
        s_release(w, gpu);
        return;
    }
    char *log = tsr_child_log(t->child);
    tsr_child_destroy(&t->child);
    st = tsr_sandbox_status(w->sandbox, st);
    char err[768];
    const char *cls = NULL;
    if (t->timed_out) {
        cls = "timeout";
        snprintf(err, sizeof err, "renderer ran past its timeout of %" PRId64 " s",
                 t->spec.timeout_s);
    } else if (t->stalled) {
        cls = "stall";
        snprintf(err, sizeof err, "renderer printed nothing for %" PRId64 " s",
                 t->spec.stall_s);
    } else if (WIFSIGNALED(st)) {
        cls = "crash";
        snprintf(err, sizeof err, "renderer killed by signal %d", WTERMSIG(st));
    } else if (WIFEXITED(st) && WEXITSTATUS(st) != 0) {
        /* Its last words, where it had any, say more than the number. */
        char why[512];
        tsr_child_last_line(log, why, sizeof why);
        cls = "exit";
        snprintf(err, sizeof err, "renderer exited with status %d%s%s", WEXITSTATUS(st),
                 why[0] ? ": " : "", why);
    }
    if (cls && t->spec.renderer == TSR_RENDERER_BUILTIN && !t->timed_out && !t->stalled &&
        WIFEXITED(st) && WEXITSTATUS(st) == 3) {
        /* tessera-render's "the device is not there": a GPU task on a
         * build without CUDA, or a GPU the driver does not show. */
        char why[512];
        tsr_child_last_line(log, why, sizeof why);
        cls = "missing_feature";
        snprintf(err, sizeof err, "tessera-render cannot render on this GPU: %s", why);
    }
    if (cls && t->spec.renderer == TSR_RENDERER_BLENDER && !t->timed_out && !t->stalled) {
        /* Blender's exit status says little; its log and the setup
         * script's verdict say more (doc/renderers.md, failure classes). */
        char why[512];
        const char *bc = tsr_blender_classify(st, log, why, sizeof why);
        size_t n = strlen(err);
        if (bc) {
            cls = bc;
            snprintf(err, sizeof err, "%s", why);
        } else if (tsr_blender_last_error(log, why, sizeof why)) {
            snprintf(err + n, sizeof err - n, ": %s", why);
        }
    }
    /* The task leaves the list before its result joins the other list, so
     * its slot is counted once, by the result. */
    struct tsr_core_task copy = *t;
    t->spec.scene = t->spec.command = NULL;
    s_task_free(w, t);
    if (cls) {
        s_fail_attempt(w, copy.spec.attempt, cls, err, render_ms, log, 1, copy.gpu);
    } else {
        s_succeed(w, &copy, render_ms, log ? log : "");
    }
    tsr_task_spec_clear(&copy.spec);
    free(log);
}

/* ---- messages from the master ------------------------------------------ */

/* Whether this worker can run spec at all: its renderer, the features it
 * requires (the master routes by them; this is the check of last resort),
 * a Cycles GPU device only on a GPU slot. Returns 0, or TSR_ESTATE with the
 * failure's class in *cls and its reason in err. */
static int s_can_run(const struct tsr_core *w, const struct tsr_task_spec *spec,
                     const char **cls, char *err, size_t errlen)
{
    if (spec->renderer == TSR_RENDERER_BLENDER && !w->blender) {
        *cls = "missing_feature";
        snprintf(err, errlen, "this worker has no Blender (the feature 'blender')");
        return TSR_ESTATE;
    }
    for (int i = 0; i < spec->nrequires; i++) {
        int found = 0;
        const cJSON *f;
        cJSON_ArrayForEach(f, w->features)
        {
            found |= cJSON_IsString(f) && strcmp(f->valuestring, spec->requires[i]) == 0;
        }
        if (!found) {
            *cls = "missing_feature";
            snprintf(err, errlen, "this worker lacks the feature '%s'",
                     spec->requires[i]);
            return TSR_ESTATE;
        }
    }
    if (spec->renderer == TSR_RENDERER_BLENDER && !spec->gpu &&
        (spec->cycles_device == TSR_CYCLES_CUDA ||
         spec->cycles_device == TSR_CYCLES_OPTIX)) {
        *cls = "bad_task";
        snprintf(err, errlen, "field 'cycles_device' %s needs a GPU slot (gpu: true)",
                 spec->cycles_device == TSR_CYCLES_CUDA ? "CUDA" : "OPTIX");
        return TSR_ESTATE;
    }
    return 0;
}

void tsr_core_on_task(struct tsr_core *w, const struct tsr_msg *m)
{
    struct tsr_task_spec spec;
    char err[512] = "";
    int rc = tsr_task_parse(m->hdr, &spec, err, sizeof err);
    if (spec.attempt < 0) {
        tsr_log(TSR_LOG_WARN, S_LOG, "malformed TASK ignored: %s", err);
        tsr_task_spec_clear(&spec);
        return;
    }
    if (s_find_task(w, spec.attempt) || s_find_result(w, spec.attempt)) {
        tsr_log(TSR_LOG_WARN, S_LOG,
                "TASK for attempt %" PRId64 " that we already have ignored",
                spec.attempt);
        tsr_task_spec_clear(&spec);
        return;
    }
    /* A task takes a GPU slot for gpu: true, else a CPU slot. One we cannot
     * take still gets its failure, which holds a slot of its kind (when one
     * is free) until it goes out, so that the master's credit comes back. */
    int gpu = spec.gpu ? s_free_gpu(w) : -1;
    int have_slot = spec.gpu ? gpu >= 0 : tsr_core_free_slots(w) > 0;
    const char *cls = "bad_task";
    if (rc == 0 && !have_slot) {
        rc = TSR_ESTATE;
        snprintf(err, sizeof err, "%s",
                 !spec.gpu ? "no free slot (the master sent more tasks than credit)"
                 : w->gpu_slots == 0 ? "this worker has no GPU for a task with gpu: true"
                                     : "no free GPU slot (the master sent more GPU tasks "
                                       "than gpu_credit)");
    }
    if (rc == 0)
        rc = s_can_run(w, &spec, &cls, err, sizeof err);
    if (rc != 0) {
        int64_t attempt = spec.attempt;
        tsr_task_spec_clear(&spec);
        s_fail_attempt(w, attempt, cls, err, 0, "", have_slot, gpu);
        return;
    }
    struct tsr_core_task *t = calloc(1, sizeof *t);
    if (!t) {
        int64_t attempt = spec.attempt;
        tsr_task_spec_clear(&spec);
        s_fail_attempt(w, attempt, "internal", "out of memory", 0, "", 1, gpu);
        return;
    }
    t->w = w;
    t->spec = spec;
    t->gpu = gpu;
    t->state = TSR_CORE_FETCHING;
    t->deadline_ms = INT64_MAX;
    s_task_dir(w, spec.attempt, t->dir, sizeof t->dir);
    t->next = w->tasks;
    w->tasks = t;
    int ready = 0;
    rc = tsr_cache_ensure(w->cache, w->agent, spec.archive, spec.archive_size, &ready,
                          err, sizeof err);
    if (rc != 0)
        s_task_fail(w, t, s_cache_class(rc), err);
    else if (ready)
        s_start(w, t);
}

/* A download ended: start or fail every task that waited for it. */
/* Whether a task in hand uses the archive hash (the cache keeps it). */
static int s_archive_in_use(void *ctx, const char *hash)
{
    const struct tsr_core *w = ctx;
    for (const struct tsr_core_task *t = w->tasks; t; t = t->next)
        if (strcmp(t->spec.archive, hash) == 0)
            return 1;
    return 0;
}

void tsr_core_trim_cache(struct tsr_core *w)
{
    tsr_cache_trim(w->cache, w->cfg->cache_max, s_archive_in_use, w);
}

void tsr_core_archive_done(struct tsr_core *w, const struct tsr_cache_done *d)
{
    struct tsr_core_task *t = w->tasks;
    while (t) {
        struct tsr_core_task *next = t->next;
        if (t->state == TSR_CORE_FETCHING && strcmp(t->spec.archive, d->hash) == 0) {
            if (d->rc == 0)
                s_start(w, t);
            else
                s_task_fail(w, t, s_cache_class(d->rc), d->err);
        }
        t = next;
    }
    /* A new archive is in: make room by the least recently used. */
    if (d->rc == 0)
        tsr_core_trim_cache(w);
}

static int s_attempt_of(const struct tsr_msg *m, int64_t *attempt)
{
    char err[256];
    if (tsr_hdr_int(m->hdr, "attempt", 0, TSR_TASK_MAX_ID, attempt, err, sizeof err) !=
        0) {
        tsr_log(TSR_LOG_WARN, S_LOG, "malformed %s ignored: %s", m->cmd, err);
        return -1;
    }
    return 0;
}

void tsr_core_on_cancel(struct tsr_core *w, const struct tsr_msg *m)
{
    int64_t attempt;
    if (s_attempt_of(m, &attempt) != 0)
        return;
    struct tsr_core_task *t = s_find_task(w, attempt);
    if (t && t->state == TSR_CORE_FETCHING) {
        tsr_log(TSR_LOG_INFO, S_LOG, "attempt %" PRId64 " cancelled", attempt);
        int gpu = t->gpu;
        s_task_free(w, t);
        s_release(w, gpu);
    } else if (t && t->state == TSR_CORE_RUNNING) {
        /* The slot frees when the group is dead (s_finish). */
        t->state = TSR_CORE_STOPPING;
        tsr_child_terminate(t->child, tsr_now_ms());
    } else if (!t) {
        struct tsr_core_result *r = s_find_result(w, attempt);
        if (r && r->holds_slot) {
            /* Finished but not yet reported: forget it. */
            tsr_log(TSR_LOG_INFO, S_LOG, "attempt %" PRId64 " cancelled", attempt);
            char dir[PATH_MAX];
            s_task_dir(w, attempt, dir, sizeof dir);
            tsr_spool_remove(w->spool, attempt);
            if (dir[0])
                tsr_rm_rf(dir);
            int gpu = r->gpu;
            tsr_core_result_free(w, r);
            s_release(w, gpu);
        } else {
            /* Reported already: RESULT_ACK will clean it up. */
            tsr_log(TSR_LOG_DEBUG, S_LOG, "CANCEL for attempt %" PRId64 " with no task",
                    attempt);
        }
    }
}

void tsr_core_on_ack(struct tsr_core *w, const struct tsr_msg *m)
{
    int64_t attempt;
    if (s_attempt_of(m, &attempt) != 0)
        return;
    struct tsr_core_result *r = s_find_result(w, attempt);
    if (!r) {
        tsr_log(TSR_LOG_DEBUG, S_LOG, "RESULT_ACK for unknown attempt %" PRId64, attempt);
        return;
    }
    if (!tsr_upload_done(r->up)) {
        /* An ack of a RESULT sent on an earlier registration, while this
         * one is being re-sent: the master has it all the same. */
        tsr_log(TSR_LOG_DEBUG, S_LOG, "attempt %" PRId64 " acknowledged during re-send",
                attempt);
    }
    int accepted = 1;
    const char *reason = "";
    char err[256];
    tsr_hdr_bool_opt(m->hdr, "accepted", &accepted, err, sizeof err);
    tsr_hdr_str_opt(m->hdr, "reason", 1024, &reason, err, sizeof err);
    if (accepted)
        tsr_log(TSR_LOG_INFO, S_LOG, "attempt %" PRId64 " acknowledged", attempt);
    else
        tsr_log(TSR_LOG_INFO, S_LOG, "attempt %" PRId64 " acknowledged, not accepted: %s",
                attempt, reason);
    tsr_spool_remove(w->spool, attempt);
    char dir[PATH_MAX];
    s_task_dir(w, attempt, dir, sizeof dir);
    if (dir[0])
        tsr_rm_rf(dir);
    int slot = r->holds_slot, gpu = r->gpu;
    tsr_core_result_free(w, r);
    if (slot)
        s_release(w, gpu);
}

/* ---- timers, output and reaping ----------------------------------------- */

void tsr_core_read(struct tsr_core_task *t)
{
    tsr_child_read(t->child, s_on_line, t);
}

int64_t tsr_core_tick(struct tsr_core *w, int64_t now, int64_t next)
{
    for (struct tsr_core_task *t = w->tasks; t; t = t->next) {
        if (t->state == TSR_CORE_RUNNING && !t->timed_out && now >= t->deadline_ms) {
            tsr_log(TSR_LOG_WARN, S_LOG,
                    "attempt %" PRId64 " ran past %" PRId64 " s; killing",
                    t->spec.attempt, t->spec.timeout_s);
            t->timed_out = 1;
            tsr_child_terminate(t->child, now);
        }
        if (t->state == TSR_CORE_RUNNING && !t->timed_out && t->deadline_ms < next)
            next = t->deadline_ms;
        if (t->state == TSR_CORE_RUNNING && !t->timed_out && !t->stalled &&
            t->spec.stall_s > 0) {
            int64_t due = t->last_output_ms + t->spec.stall_s * 1000;
            if (now >= due) {
                tsr_log(TSR_LOG_WARN, S_LOG,
                        "attempt %" PRId64 ": renderer silent for %" PRId64 " s; killing",
                        t->spec.attempt, t->spec.stall_s);
                t->stalled = 1;
                tsr_child_terminate(t->child, now);
            } else if (due < next) {
                next = due;
            }
        }
        if (t->child) {
            int64_t k = tsr_child_tick(t->child, now);
            if (k < next)
                next = k;
        }
        if (t->progress_pending && t->state == TSR_CORE_RUNNING) {
            if (now - t->progress_sent_ms >= S_PROGRESS_MS)
                s_send_progress(t, now);
            else if (t->progress_sent_ms + S_PROGRESS_MS < next)
                next = t->progress_sent_ms + S_PROGRESS_MS;
        }
    }
    return next;
}

/* Reaps every renderer that has exited. */
void tsr_core_reap(struct tsr_core *w)
{
    struct tsr_core_task *t = w->tasks;
    while (t) {
        struct tsr_core_task *next = t->next;
        int st = 0;
        if (t->child && tsr_child_reap(t->child, s_on_line, t, &st) == 1)
            s_finish(w, t, st);
        t = next;
    }
}

/* SIGTERM to each group, SIGKILL to what is left after the grace time.
 * Their task folders go; spooled results stay. */
void tsr_core_stop_children(struct tsr_core *w)
{
    int64_t now = tsr_now_ms();
    int any = 0;
    for (struct tsr_core_task *t = w->tasks; t; t = t->next) {
        if (t->child) {
            tsr_child_terminate(t->child, now);
            any = 1;
        }
    }
    while (any && tsr_now_ms() - now < TSR_CHILD_GRACE_MS) {
        any = 0;
        for (struct tsr_core_task *t = w->tasks; t; t = t->next) {
            int st;
            if (t->child && tsr_child_reap(t->child, NULL, NULL, &st) == 0)
                any = 1;
        }
        if (any)
            usleep(20000);
    }
    while (w->tasks) {
        struct tsr_core_task *t = w->tasks;
        if (t->child)
            tsr_log(TSR_LOG_INFO, S_LOG, "attempt %" PRId64 " stopped", t->spec.attempt);
        tsr_rm_rf(t->dir);
        s_task_free(w, t); /* SIGKILLs and reaps a child still there */
    }
}
