/*
 * worker.c: the worker's loop and the life of its tasks (worker.h).
 *
 * One zmq_poll waits on the master's socket, the signal pipe and every
 * child's output pipe, with a timeout from the nearest timer (heartbeat,
 * liveness, task timeout, kill escalation, progress, transfer stalls). No
 * threads: hashing, verifying and extracting run inline; they are bounded
 * by the task's own files, and the heartbeat tolerates liveness x heartbeat
 * of delay.
 */
#include "worker.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "tessera/error.h"
#include "tessera/hash.h"
#include "tessera/image.h"
#include "tessera/log.h"
#include "tessera/util.h"

#include "adapters.h"
#include "agent.h"
#include "cache.h"
#include "runner.h"
#include "spool.h"
#include "task.h"
#include "upload.h"

#define S_LOG "worker"
#define S_PROGRESS_MS 1000 /* at most one PROGRESS per task per second */
#define S_POLL_MAX_MS 1000 /* longest poll, so a missed wake costs little */

enum s_state {
    S_FETCHING, /* waiting for its scene archive */
    S_RUNNING,  /* the renderer runs */
    S_STOPPING, /* cancelled: the renderer is being killed; no result */
};

struct s_worker;

/* A task that has not produced its result yet. */
struct s_task {
    struct s_worker *w;          /* the owner */
    struct tsr_task_spec spec;   /* the checked TASK */
    enum s_state state;          /* where it is in its life */
    struct tsr_child *child;     /* the renderer while RUNNING or STOPPING */
    char dir[PATH_MAX];          /* <cache>/tasks/<attempt> */
    int64_t deadline_ms;         /* when timeout_s runs out; INT64_MAX: never */
    int timed_out;               /* the timeout killed it */
    int progress;                /* last percent the renderer printed */
    int progress_pending;        /* progress not yet sent (rate limit) */
    int64_t progress_sent_ms;    /* when PROGRESS last went out */
    struct s_task *next;         /* next task */
};

/* A spooled result: being uploaded, sent, or waiting for RESULT_ACK. */
struct s_result {
    struct tsr_upload *up;       /* its transfer */
    int holds_slot;              /* its task's slot is freed when RESULT first goes */
    struct s_result *next;       /* next result */
};

struct s_worker {
    const struct tsr_worker_config *cfg; /* settings, borrowed */
    struct tsr_agent *agent;     /* connection to the master */
    struct tsr_cache *cache;     /* scene archives */
    struct tsr_spool *spool;     /* results until acknowledged */
    struct s_task *tasks;        /* tasks without a result yet */
    struct s_result *results;    /* results not yet acknowledged */
    char tasks_dir[PATH_MAX];    /* <cache>/tasks */
    int cores;                   /* online CPUs */
    int64_t memory_mb;           /* physical memory */
    cJSON *gpus;                 /* [{name, memory_mb}] from nvidia-smi */
};

/* ---- slots and small helpers ------------------------------------------ */

static int s_free_slots(const struct s_worker *w)
{
    int used = 0;
    for (const struct s_task *t = w->tasks; t; t = t->next)
        used++;
    for (const struct s_result *r = w->results; r; r = r->next)
        used += r->holds_slot;
    return w->cfg->slots > used ? w->cfg->slots - used : 0;
}

static void s_ready(struct s_worker *w, int credit)
{
    if (credit <= 0)
        return;
    cJSON *h = cJSON_CreateObject();
    if (!h)
        return;
    cJSON_AddNumberToObject(h, "credit", credit);
    tsr_agent_send(w->agent, "READY", h, NULL, 0); /* lost now: the next WELCOME offers it */
    cJSON_Delete(h);
}

static struct s_task *s_find_task(struct s_worker *w, int64_t attempt)
{
    for (struct s_task *t = w->tasks; t; t = t->next)
        if (t->spec.attempt == attempt)
            return t;
    return NULL;
}

static struct s_result *s_find_result(struct s_worker *w, int64_t attempt)
{
    for (struct s_result *r = w->results; r; r = r->next)
        if (tsr_upload_attempt(r->up) == attempt)
            return r;
    return NULL;
}

static void s_task_free(struct s_worker *w, struct s_task *t)
{
    for (struct s_task **p = &w->tasks; *p; p = &(*p)->next) {
        if (*p == t) {
            *p = t->next;
            break;
        }
    }
    tsr_child_destroy(&t->child);
    tsr_task_spec_clear(&t->spec);
    free(t);
}

static void s_result_free(struct s_worker *w, struct s_result *r)
{
    for (struct s_result **p = &w->results; *p; p = &(*p)->next) {
        if (*p == r) {
            *p = r->next;
            break;
        }
    }
    tsr_upload_destroy(&r->up);
    free(r);
}

static void s_task_dir(const struct s_worker *w, int64_t attempt, char *buf, size_t size)
{
    if (tsr_fmt(buf, size, "%s/%" PRId64, w->tasks_dir, attempt) != 0)
        buf[0] = '\0';
}

/* ---- results ------------------------------------------------------------ */

/* The first RESULT of a task frees its slot. */
static void s_on_upload_event(struct s_worker *w, struct s_result *r, enum tsr_upload_event ev)
{
    if (ev == TSR_UPLOAD_SENT && r->holds_slot) {
        r->holds_slot = 0;
        s_ready(w, 1);
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
static void s_keep_result(struct s_worker *w, int64_t attempt, cJSON *record,
                          const char *const *paths, const char *const *names, size_t n,
                          int holds_slot)
{
    if (!record) {
        tsr_log(TSR_LOG_ERROR, S_LOG, "attempt %" PRId64 ": out of memory for its result",
                attempt);
        if (holds_slot)
            s_ready(w, 1);
        return;
    }
    int rc = tsr_spool_commit(w->spool, attempt, record, paths, names, n);
    if (rc != 0) {
        tsr_log(TSR_LOG_ERROR, S_LOG, "attempt %" PRId64 ": cannot spool its result: %s",
                attempt, tsr_strerror(rc));
        if (n > 0) {
            char why[128];
            snprintf(why, sizeof why, "cannot keep the rendered files: %s", tsr_strerror(rc));
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
    struct s_result *r = calloc(1, sizeof *r);
    if (!r || !record || tsr_upload_new(w->spool, attempt, &record, &r->up) != 0) {
        cJSON_Delete(record);
        free(r);
        tsr_log(TSR_LOG_ERROR, S_LOG, "attempt %" PRId64 ": out of memory for its result",
                attempt);
        if (holds_slot)
            s_ready(w, 1);
        return;
    }
    r->holds_slot = holds_slot;
    r->next = w->results;
    w->results = r;
    s_on_upload_event(w, r, tsr_upload_start(r->up, w->agent));
}

/* A failure without files: a bad TASK, a missing archive, a dead renderer. */
static void s_fail_attempt(struct s_worker *w, int64_t attempt, const char *cls,
                           const char *error, int64_t render_ms, const char *log,
                           int holds_slot)
{
    tsr_log(TSR_LOG_WARN, S_LOG, "attempt %" PRId64 " failed (%s): %s", attempt, cls, error);
    s_keep_result(w, attempt, s_record(attempt, 0, cls, error, render_ms, log, NULL), NULL,
                  NULL, 0, holds_slot);
}

/* Ends a task that has no child with a failure; frees it. */
static void s_task_fail(struct s_worker *w, struct s_task *t, const char *cls,
                        const char *error)
{
    int64_t attempt = t->spec.attempt;
    s_task_free(w, t);
    s_fail_attempt(w, attempt, cls, error, 0, "", 1);
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

static void s_send_progress(struct s_task *t, int64_t now)
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

/* Reads "progress: NN" (NN 0..100, decimals ignored) from a renderer line. */
static void s_on_line(void *ctx, const char *line)
{
    struct s_task *t = ctx;
    while (*line == ' ' || *line == '\t')
        line++;
    if (strncmp(line, "progress:", 9) != 0 || t->state != S_RUNNING)
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
    t->progress = (int)v;
    int64_t now = tsr_now_ms();
    if (t->progress_sent_ms == 0 || now - t->progress_sent_ms >= S_PROGRESS_MS)
        s_send_progress(t, now);
    else
        t->progress_pending = 1;
}

static void s_start(struct s_worker *w, struct s_task *t)
{
    char scene_dir[PATH_MAX], scene[PATH_MAX + TSR_TASK_MAX_SCENE], err[512] = "";
    struct stat st;
    if (tsr_cache_scene_dir(w->cache, t->spec.archive, scene_dir, sizeof scene_dir) != 0) {
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
    if (!t->dir[0] || tsr_mkdir_p(t->dir) != 0) {
        snprintf(err, sizeof err, "cannot create task folder '%.400s'", t->dir);
        s_task_fail(w, t, "internal", err);
        return;
    }
    int threads = w->cores / w->cfg->slots;
    struct tsr_adapter_ctx ctx = {scene_dir, t->dir, threads > 1 ? threads : 1};
    struct tsr_cmdline cl = {0};
    int rc = tsr_adapter_build(&t->spec, &ctx, &cl, err, sizeof err);
    if (rc == 0)
        rc = tsr_child_spawn(cl.argv, cl.envp, t->dir, &t->child, err, sizeof err);
    tsr_cmdline_clear(&cl);
    if (rc != 0) {
        s_task_fail(w, t, rc == TSR_ELIMIT ? "bad_task" : "internal", err);
        return;
    }
    t->state = S_RUNNING;
    int64_t now = tsr_now_ms();
    t->deadline_ms = t->spec.timeout_s > 0 ? now + t->spec.timeout_s * 1000 : INT64_MAX;
    tsr_log(TSR_LOG_INFO, S_LOG,
            "attempt %" PRId64 ": job %" PRId64 " task %" PRId64 " frames %" PRId64
            "-%" PRId64 " started (%s)",
            t->spec.attempt, t->spec.job, t->spec.task, t->spec.frame_start, t->spec.frame_end,
            t->spec.renderer == TSR_RENDERER_BUILTIN ? "builtin" : "command");
}

/* Checks the images of a renderer that exited 0 and spools the result. */
static void s_succeed(struct s_worker *w, struct s_task *t, int64_t render_ms, char *log)
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
            break;
        }
        int rc = tsr_image_verify(path, &lim, &s->region, s->width, s->height, NULL, why,
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
            snprintf(err, sizeof err, "frame %" PRId64 ": cannot hash %s: %s", frame, name,
                     tsr_strerror(rc));
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
        tsr_log(TSR_LOG_WARN, S_LOG, "attempt %" PRId64 " failed (%s): %s", attempt, cls, err);
        s_keep_result(w, attempt, s_record(attempt, 0, cls, err, render_ms, log, NULL), NULL,
                      NULL, 0, 1);
    } else {
        tsr_log(TSR_LOG_INFO, S_LOG, "attempt %" PRId64 " done in %" PRId64 " ms, %zu file(s)",
                attempt, render_ms, n);
        s_keep_result(w, attempt, s_record(attempt, 1, NULL, NULL, render_ms, log, files),
                      (const char *const *)paths, (const char *const *)names, n, 1);
    }
    for (size_t i = 0; i < n; i++) {
        free(paths[i]);
        free(names[i]);
    }
    free(paths);
    free(names);
}

/* The renderer of t was reaped with wait status st. */
static void s_finish(struct s_worker *w, struct s_task *t, int st)
{
    int64_t now = tsr_now_ms();
    int64_t render_ms = tsr_child_elapsed_ms(t->child, now);
    if (t->state == S_STOPPING) {
        tsr_log(TSR_LOG_INFO, S_LOG, "attempt %" PRId64 " cancelled", t->spec.attempt);
        tsr_rm_rf(t->dir);
        s_task_free(w, t);
        s_ready(w, 1);
        return;
    }
    char *log = tsr_child_log(t->child);
    tsr_child_destroy(&t->child);
    char err[256];
    const char *cls = NULL;
    if (t->timed_out) {
        cls = "timeout";
        snprintf(err, sizeof err, "renderer ran past its timeout of %" PRId64 " s",
                 t->spec.timeout_s);
    } else if (WIFSIGNALED(st)) {
        cls = "crash";
        snprintf(err, sizeof err, "renderer killed by signal %d", WTERMSIG(st));
    } else if (WIFEXITED(st) && WEXITSTATUS(st) != 0) {
        cls = "exit";
        snprintf(err, sizeof err, "renderer exited with status %d", WEXITSTATUS(st));
    }
    /* The task leaves the list before its result joins the other list, so
     * its slot is counted once, by the result. */
    struct s_task copy = *t;
    t->spec.scene = t->spec.command = NULL;
    s_task_free(w, t);
    if (cls) {
        s_fail_attempt(w, copy.spec.attempt, cls, err, render_ms, log, 1);
    } else {
        s_succeed(w, &copy, render_ms, log ? log : "");
    }
    tsr_task_spec_clear(&copy.spec);
    free(log);
}

/* ---- messages from the master ------------------------------------------ */

static void s_on_task(struct s_worker *w, const struct tsr_msg *m)
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
        tsr_log(TSR_LOG_WARN, S_LOG, "TASK for attempt %" PRId64 " that we already have ignored",
                spec.attempt);
        tsr_task_spec_clear(&spec);
        return;
    }
    int free_slots = s_free_slots(w);
    if (rc == 0 && free_slots == 0) {
        rc = TSR_ESTATE;
        snprintf(err, sizeof err, "no free slot (the master sent more tasks than credit)");
    }
    if (rc != 0) {
        int64_t attempt = spec.attempt;
        tsr_task_spec_clear(&spec);
        s_fail_attempt(w, attempt, "bad_task", err, 0, "", free_slots > 0);
        return;
    }
    struct s_task *t = calloc(1, sizeof *t);
    if (!t) {
        int64_t attempt = spec.attempt;
        tsr_task_spec_clear(&spec);
        s_fail_attempt(w, attempt, "internal", "out of memory", 0, "", 1);
        return;
    }
    t->w = w;
    t->spec = spec;
    t->state = S_FETCHING;
    t->deadline_ms = INT64_MAX;
    s_task_dir(w, spec.attempt, t->dir, sizeof t->dir);
    t->next = w->tasks;
    w->tasks = t;
    int ready = 0;
    rc = tsr_cache_ensure(w->cache, w->agent, spec.archive, spec.archive_size, &ready, err,
                          sizeof err);
    if (rc != 0)
        s_task_fail(w, t, s_cache_class(rc), err);
    else if (ready)
        s_start(w, t);
}

/* A download ended: start or fail every task that waited for it. */
static void s_archive_done(struct s_worker *w, const struct tsr_cache_done *d)
{
    struct s_task *t = w->tasks;
    while (t) {
        struct s_task *next = t->next;
        if (t->state == S_FETCHING && strcmp(t->spec.archive, d->hash) == 0) {
            if (d->rc == 0)
                s_start(w, t);
            else
                s_task_fail(w, t, s_cache_class(d->rc), d->err);
        }
        t = next;
    }
}

static int s_attempt_of(const struct tsr_msg *m, int64_t *attempt)
{
    char err[256];
    if (tsr_hdr_int(m->hdr, "attempt", 0, TSR_TASK_MAX_ID, attempt, err, sizeof err) != 0) {
        tsr_log(TSR_LOG_WARN, S_LOG, "malformed %s ignored: %s", m->cmd, err);
        return -1;
    }
    return 0;
}

static void s_on_cancel(struct s_worker *w, const struct tsr_msg *m)
{
    int64_t attempt;
    if (s_attempt_of(m, &attempt) != 0)
        return;
    struct s_task *t = s_find_task(w, attempt);
    if (t && t->state == S_FETCHING) {
        tsr_log(TSR_LOG_INFO, S_LOG, "attempt %" PRId64 " cancelled", attempt);
        s_task_free(w, t);
        s_ready(w, 1);
    } else if (t && t->state == S_RUNNING) {
        /* The slot frees when the group is dead (s_finish). */
        t->state = S_STOPPING;
        tsr_child_terminate(t->child, tsr_now_ms());
    } else if (!t) {
        struct s_result *r = s_find_result(w, attempt);
        if (r && r->holds_slot) {
            /* Finished but not yet reported: forget it. */
            tsr_log(TSR_LOG_INFO, S_LOG, "attempt %" PRId64 " cancelled", attempt);
            char dir[PATH_MAX];
            s_task_dir(w, attempt, dir, sizeof dir);
            tsr_spool_remove(w->spool, attempt);
            if (dir[0])
                tsr_rm_rf(dir);
            s_result_free(w, r);
            s_ready(w, 1);
        } else {
            /* Reported already: RESULT_ACK will clean it up. */
            tsr_log(TSR_LOG_DEBUG, S_LOG, "CANCEL for attempt %" PRId64 " with no task", attempt);
        }
    }
}

static void s_on_ack(struct s_worker *w, const struct tsr_msg *m)
{
    int64_t attempt;
    if (s_attempt_of(m, &attempt) != 0)
        return;
    struct s_result *r = s_find_result(w, attempt);
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
    int slot = r->holds_slot;
    s_result_free(w, r);
    if (slot)
        s_ready(w, 1);
}

static void s_on_transfer(struct s_worker *w, const struct tsr_msg *m)
{
    int64_t rid = -1;
    char err[256];
    if (tsr_hdr_int(m->hdr, "rid", 0, INT64_C(1) << 53, &rid, err, sizeof err) != 0) {
        tsr_log(TSR_LOG_WARN, S_LOG, "malformed %s ignored: %s", m->cmd, err);
        return;
    }
    for (struct s_result *r = w->results; r; r = r->next) {
        enum tsr_upload_event ev = tsr_upload_on_msg(r->up, w->agent, m, rid);
        if (ev != TSR_UPLOAD_NONE) {
            s_on_upload_event(w, r, ev);
            return;
        }
    }
    tsr_log(TSR_LOG_DEBUG, S_LOG, "%s for no transfer of ours (rid %" PRId64 ")", m->cmd, rid);
}

static void s_on_data(struct s_worker *w, const struct tsr_msg *m)
{
    struct tsr_cache_done done;
    char err[256] = "";
    int rc = tsr_cache_on_data(w->cache, w->agent, m, &done, err, sizeof err);
    if (rc < 0)
        tsr_log(TSR_LOG_WARN, S_LOG, "malformed DATA ignored: %s", err);
    else if (rc == 1)
        s_archive_done(w, &done);
}

static void s_on_error(struct s_worker *w, const struct tsr_msg *m)
{
    int64_t rid = -1, code = TSR_EPROTO;
    const char *re = "", *message = "";
    char err[256];
    if (tsr_hdr_int_opt(m->hdr, "rid", 0, INT64_C(1) << 53, &rid, err, sizeof err) != 0 ||
        tsr_hdr_int_opt(m->hdr, "code", -1000, 0, &code, err, sizeof err) != 0 ||
        tsr_hdr_str_opt(m->hdr, "re", TSR_PROTO_MAX_CMD, &re, err, sizeof err) != 0 ||
        tsr_hdr_str_opt(m->hdr, "message", 1024, &message, err, sizeof err) != 0) {
        tsr_log(TSR_LOG_WARN, S_LOG, "malformed ERROR ignored: %s", err);
        return;
    }
    if (rid >= 0 && strcmp(re, "GET") == 0) {
        struct tsr_cache_done done;
        if (tsr_cache_on_error(w->cache, rid, (int)code, message, &done) == 1) {
            s_archive_done(w, &done);
            return;
        }
    }
    if (rid >= 0) {
        for (struct s_result *r = w->results; r; r = r->next) {
            enum tsr_upload_event ev =
                tsr_upload_on_error(r->up, w->agent, rid, (int)code, message);
            if (ev != TSR_UPLOAD_NONE) {
                s_on_upload_event(w, r, ev);
                return;
            }
        }
    }
    tsr_log(TSR_LOG_WARN, S_LOG, "master answered %s with an error: %s", re[0] ? re : "?",
            message);
}

static void s_on_message(void *ctx, const struct tsr_msg *m)
{
    struct s_worker *w = ctx;
    if (strcmp(m->cmd, "TASK") == 0)
        s_on_task(w, m);
    else if (strcmp(m->cmd, "CANCEL") == 0)
        s_on_cancel(w, m);
    else if (strcmp(m->cmd, "RESULT_ACK") == 0)
        s_on_ack(w, m);
    else if (strcmp(m->cmd, "DATA") == 0)
        s_on_data(w, m);
    else if (strcmp(m->cmd, "PUT_OK") == 0 || strcmp(m->cmd, "CHUNK_OK") == 0 ||
             strcmp(m->cmd, "PUT_DONE") == 0)
        s_on_transfer(w, m);
    else if (strcmp(m->cmd, "ERROR") == 0)
        s_on_error(w, m);
    else
        tsr_log(TSR_LOG_WARN, S_LOG, "unexpected %s from master ignored", m->cmd);
}

/* ---- registration ------------------------------------------------------- */

static cJSON *s_hello(void *ctx)
{
    struct s_worker *w = ctx;
    cJSON *h = cJSON_CreateObject();
    cJSON *running = cJSON_CreateArray();
    cJSON *renderers = cJSON_CreateArray();
    cJSON *gpus = cJSON_Duplicate(w->gpus, 1);
    if (!h || !running || !renderers || !gpus) {
        cJSON_Delete(h);
        cJSON_Delete(running);
        cJSON_Delete(renderers);
        cJSON_Delete(gpus);
        return NULL;
    }
    cJSON_AddStringToObject(h, "name", w->cfg->name);
    cJSON_AddStringToObject(h, "hub", w->cfg->hub);
    cJSON_AddNumberToObject(h, "slots", w->cfg->slots);
    cJSON_AddNumberToObject(h, "cores", w->cores);
    cJSON_AddNumberToObject(h, "memory_mb", (double)w->memory_mb);
    cJSON_AddItemToObject(h, "gpus", gpus);
    cJSON_AddItemToArray(renderers, cJSON_CreateString("builtin"));
    cJSON_AddItemToArray(renderers, cJSON_CreateString("command"));
    cJSON_AddItemToObject(h, "renderers", renderers);
    cJSON_AddStringToObject(h, "version", TSR_WORKER_VERSION);
    /* Attempts the master should keep alive for us: those in progress, and
     * those whose RESULT is about to be re-sent. */
    for (struct s_task *t = w->tasks; t; t = t->next)
        if (t->state != S_STOPPING)
            cJSON_AddItemToArray(running, cJSON_CreateNumber((double)t->spec.attempt));
    for (struct s_result *r = w->results; r; r = r->next)
        cJSON_AddItemToArray(running, cJSON_CreateNumber((double)tsr_upload_attempt(r->up)));
    cJSON_AddItemToObject(h, "running", running);
    return h;
}

static void s_welcome(void *ctx)
{
    struct s_worker *w = ctx;
    s_ready(w, s_free_slots(w));
    tsr_cache_resume(w->cache, w->agent);
    for (struct s_result *r = w->results; r; r = r->next)
        s_on_upload_event(w, r, tsr_upload_start(r->up, w->agent));
}

static void s_lost(void *ctx)
{
    struct s_worker *w = ctx;
    for (struct s_result *r = w->results; r; r = r->next)
        tsr_upload_pause(r->up);
}

/* ---- start, loop, stop -------------------------------------------------- */

/* Asks nvidia-smi for the GPUs, if it is installed; [] otherwise. */
static cJSON *s_probe_gpus(void)
{
    cJSON *gpus = cJSON_CreateArray();
    if (!gpus)
        return NULL;
    const char *dirs[] = {"/usr/bin", "/usr/local/bin", "/bin"};
    int found = 0;
    for (size_t i = 0; i < 3 && !found; i++) {
        char path[64];
        snprintf(path, sizeof path, "%s/nvidia-smi", dirs[i]);
        found = access(path, X_OK) == 0;
    }
    if (!found)
        return gpus;
    FILE *p = popen("nvidia-smi --query-gpu=name,memory.total --format=csv,noheader,nounits "
                    "2>/dev/null",
                    "r");
    if (!p)
        return gpus;
    char line[512];
    while (fgets(line, sizeof line, p) && cJSON_GetArraySize(gpus) < 64) {
        char *comma = strrchr(line, ',');
        if (!comma)
            continue;
        *comma = '\0';
        char *name = line;
        while (*name == ' ')
            name++;
        long long mb = strtoll(comma + 1, NULL, 10);
        tsr_text_sanitize(name, strlen(name));
        cJSON *g = cJSON_CreateObject();
        if (!g)
            break;
        cJSON_AddStringToObject(g, "name", name);
        cJSON_AddNumberToObject(g, "memory_mb", (double)(mb > 0 ? mb : 0));
        cJSON_AddItemToArray(gpus, g);
    }
    pclose(p);
    return gpus;
}

/* Loads the spool left by an earlier run; its results are re-sent after
 * the first WELCOME. */
static void s_load_spool(struct s_worker *w)
{
    int64_t *ids = NULL;
    size_t n = 0;
    if (tsr_spool_list(w->spool, &ids, &n) != 0)
        return;
    for (size_t i = 0; i < n; i++) {
        cJSON *record = NULL;
        char err[512];
        if (tsr_spool_load(w->spool, ids[i], &record, err, sizeof err) != 0) {
            tsr_log(TSR_LOG_WARN, S_LOG, "%s; dropped", err);
            tsr_spool_remove(w->spool, ids[i]);
            continue;
        }
        struct s_result *r = calloc(1, sizeof *r);
        if (!r || tsr_upload_new(w->spool, ids[i], &record, &r->up) != 0) {
            cJSON_Delete(record);
            free(r);
            continue;
        }
        r->next = w->results;
        w->results = r;
    }
    if (n)
        tsr_log(TSR_LOG_INFO, S_LOG, "%zu unacknowledged result(s) in the spool", n);
    free(ids);
}

static int s_open(struct s_worker *w)
{
    char err[512] = "";
    char path[PATH_MAX];
    int rc = tsr_cache_open(w->cfg->cache_dir, &w->cache, err, sizeof err);
    if (rc != 0) {
        tsr_log(TSR_LOG_ERROR, S_LOG, "%s", err);
        return rc;
    }
    const char *dir = tsr_cache_dir(w->cache);
    if (tsr_fmt(w->tasks_dir, sizeof w->tasks_dir, "%s/tasks", dir) != 0 ||
        tsr_fmt(path, sizeof path, "%s/spool", dir) != 0)
        return TSR_ELIMIT;
    /* Tasks of an earlier run died with it; their results, if any, are in
     * the spool. */
    tsr_rm_rf(w->tasks_dir);
    if (tsr_mkdir_p(w->tasks_dir) != 0) {
        tsr_log(TSR_LOG_ERROR, S_LOG, "cannot create '%s'", w->tasks_dir);
        return TSR_EIO;
    }
    if ((rc = tsr_spool_open(path, &w->spool)) != 0) {
        tsr_log(TSR_LOG_ERROR, S_LOG, "cannot open spool '%s': %s", path, tsr_strerror(rc));
        return rc;
    }
    s_load_spool(w);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    w->cores = cores > 0 ? (int)cores : 1;
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    w->memory_mb = pages > 0 && page > 0 ? (int64_t)pages * page / (1024 * 1024) : 0;
    w->gpus = s_probe_gpus();
    if (!w->gpus)
        return TSR_ENOMEM;
    struct tsr_agent_config acfg = {w->cfg->master, w->cfg->heartbeat_ms, w->cfg->liveness};
    struct tsr_agent_events ev = {w, s_hello, s_welcome, s_lost, s_on_message};
    if ((rc = tsr_agent_new(&acfg, &ev, &w->agent)) != 0) {
        tsr_log(TSR_LOG_ERROR, S_LOG, "cannot start the connection: %s", tsr_strerror(rc));
        return rc;
    }
    tsr_log(TSR_LOG_INFO, S_LOG,
            "worker '%s' (hub %s): %d slot(s), %d core(s), %" PRId64 " MiB, %d GPU(s), cache %s",
            w->cfg->name, w->cfg->hub, w->cfg->slots, w->cores, w->memory_mb,
            cJSON_GetArraySize(w->gpus), dir);
    return 0;
}

/* Timers of tasks and uploads; returns the earliest next one. */
static int64_t s_tick(struct s_worker *w, int64_t now)
{
    int64_t next = tsr_agent_tick(w->agent, now);
    struct tsr_cache_done done;
    int64_t cnext;
    while (tsr_cache_tick(w->cache, w->agent, now, &done, &cnext) == 1)
        s_archive_done(w, &done);
    if (cnext < next)
        next = cnext;
    for (struct s_task *t = w->tasks; t; t = t->next) {
        if (t->state == S_RUNNING && !t->timed_out && now >= t->deadline_ms) {
            tsr_log(TSR_LOG_WARN, S_LOG, "attempt %" PRId64 " ran past %" PRId64 " s; killing",
                    t->spec.attempt, t->spec.timeout_s);
            t->timed_out = 1;
            tsr_child_terminate(t->child, now);
        }
        if (t->state == S_RUNNING && !t->timed_out && t->deadline_ms < next)
            next = t->deadline_ms;
        if (t->child) {
            int64_t k = tsr_child_tick(t->child, now);
            if (k < next)
                next = k;
        }
        if (t->progress_pending && t->state == S_RUNNING) {
            if (now - t->progress_sent_ms >= S_PROGRESS_MS)
                s_send_progress(t, now);
            else if (t->progress_sent_ms + S_PROGRESS_MS < next)
                next = t->progress_sent_ms + S_PROGRESS_MS;
        }
    }
    for (struct s_result *r = w->results; r; r = r->next) {
        int64_t u = tsr_upload_tick(r->up, w->agent, now);
        if (u < next)
            next = u;
    }
    return next;
}

/* Reaps every renderer that has exited. */
static void s_reap(struct s_worker *w)
{
    struct s_task *t = w->tasks;
    while (t) {
        struct s_task *next = t->next;
        int st = 0;
        if (t->child && tsr_child_reap(t->child, s_on_line, t, &st) == 1)
            s_finish(w, t, st);
        t = next;
    }
}

static void s_loop(struct s_worker *w)
{
    size_t cap = 0;
    zmq_pollitem_t *items = NULL;
    struct s_task **owners = NULL;
    while (!*w->cfg->stop) {
        int64_t now = tsr_now_ms();
        int64_t next = s_tick(w, now);
        size_t n = 0;
        for (struct s_task *t = w->tasks; t; t = t->next)
            n++;
        if (n + 2 > cap) {
            cap = n + 2;
            zmq_pollitem_t *ni = realloc(items, cap * sizeof *ni);
            struct s_task **no = ni ? realloc(owners, cap * sizeof *no) : NULL;
            if (ni)
                items = ni;
            if (no)
                owners = no;
            if (!ni || !no) {
                tsr_log(TSR_LOG_ERROR, S_LOG, "out of memory in the poll loop");
                cap = 0;
                usleep(100000);
                continue;
            }
        }
        size_t k = 0;
        items[k++] = (zmq_pollitem_t){tsr_agent_socket(w->agent), 0, ZMQ_POLLIN, 0};
        items[k++] = (zmq_pollitem_t){NULL, w->cfg->wake_fd, ZMQ_POLLIN, 0};
        for (struct s_task *t = w->tasks; t; t = t->next) {
            if (t->child && tsr_child_fd(t->child) >= 0) {
                owners[k] = t;
                items[k++] = (zmq_pollitem_t){NULL, tsr_child_fd(t->child), ZMQ_POLLIN, 0};
            }
        }
        /* An absent socket or wake fd is polled as fd -1, which never fires. */
        if (!items[0].socket)
            items[0].fd = -1;
        int64_t wait = next - now;
        if (wait < 0)
            wait = 0;
        if (wait > S_POLL_MAX_MS)
            wait = S_POLL_MAX_MS;
        int rc = zmq_poll(items, (int)k, (long)wait);
        if (rc < 0 && zmq_errno() != EINTR) {
            tsr_log(TSR_LOG_ERROR, S_LOG, "poll failed: %s", zmq_strerror(zmq_errno()));
            usleep(100000);
            continue;
        }
        if (rc > 0 && (items[1].revents & ZMQ_POLLIN)) {
            char buf[64];
            while (read(w->cfg->wake_fd, buf, sizeof buf) > 0)
                ;
        }
        /* Children first: their pointers are only valid until a message
         * from the master changes the task list. */
        for (size_t i = 2; rc > 0 && i < k; i++)
            if (items[i].revents & (ZMQ_POLLIN | ZMQ_POLLERR))
                tsr_child_read(owners[i]->child, s_on_line, owners[i]);
        s_reap(w);
        if (rc > 0 && items[0].socket && (items[0].revents & ZMQ_POLLIN))
            tsr_agent_on_readable(w->agent);
    }
    free(items);
    free(owners);
}

/* Stops every renderer: SIGTERM to each group, SIGKILL to what is left
 * after the grace time. Their task folders go; spooled results stay. */
static void s_stop_children(struct s_worker *w)
{
    int64_t now = tsr_now_ms();
    int any = 0;
    for (struct s_task *t = w->tasks; t; t = t->next) {
        if (t->child) {
            tsr_child_terminate(t->child, now);
            any = 1;
        }
    }
    while (any && tsr_now_ms() - now < TSR_CHILD_GRACE_MS) {
        any = 0;
        for (struct s_task *t = w->tasks; t; t = t->next) {
            int st;
            if (t->child && tsr_child_reap(t->child, NULL, NULL, &st) == 0)
                any = 1;
        }
        if (any)
            usleep(20000);
    }
    while (w->tasks) {
        struct s_task *t = w->tasks;
        if (t->child)
            tsr_log(TSR_LOG_INFO, S_LOG, "attempt %" PRId64 " stopped", t->spec.attempt);
        tsr_rm_rf(t->dir);
        s_task_free(w, t); /* SIGKILLs and reaps a child still there */
    }
}

int tsr_worker_run(const struct tsr_worker_config *cfg)
{
    struct s_worker w;
    memset(&w, 0, sizeof w);
    w.cfg = cfg;
    int rc = s_open(&w);
    if (rc == 0) {
        s_loop(&w);
        tsr_log(TSR_LOG_INFO, S_LOG, "stopping");
        s_stop_children(&w);
    }
    while (w.results)
        s_result_free(&w, w.results);
    tsr_agent_destroy(&w.agent);
    tsr_spool_destroy(&w.spool);
    tsr_cache_destroy(&w.cache);
    cJSON_Delete(w.gpus);
    return rc;
}
