/*
 * worker.c: the worker's loop, its registration and its transfers
 * (worker.h); the life of each attempt is in attempts.c (core.h).
 *
 * One zmq_poll waits on the master's socket, the signal pipe and every
 * child's output pipe, with a timeout from the nearest timer (heartbeat,
 * liveness, task timeout, kill escalation, progress, transfer stalls). No
 * threads: hashing, verifying and extracting run inline; they are bounded
 * by the task's own files, and the heartbeat tolerates liveness x heartbeat
 * of delay.
 */
#include "adapters.h"
#include "blender.h"
#include "core.h"
#include "probe.h"

#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "tessera/error.h"
#include "tessera/log.h"
#include "tessera/util.h"

#define S_LOG "worker"
#define S_POLL_MAX_MS 1000 /* longest poll, so a missed wake costs little */

/* ---- messages from the master ------------------------------------------ */

static void s_on_transfer(struct tsr_core *w, const struct tsr_msg *m)
{
    int64_t rid = -1;
    char err[256];
    if (tsr_hdr_int(m->hdr, "rid", 0, INT64_C(1) << 53, &rid, err, sizeof err) != 0) {
        tsr_log(TSR_LOG_WARN, S_LOG, "malformed %s ignored: %s", m->cmd, err);
        return;
    }
    for (struct tsr_core_result *r = w->results; r; r = r->next) {
        enum tsr_upload_event ev = tsr_upload_on_msg(r->up, w->agent, m, rid);
        if (ev != TSR_UPLOAD_NONE) {
            tsr_core_upload_event(w, r, ev);
            return;
        }
    }
    tsr_log(TSR_LOG_DEBUG, S_LOG, "%s for no transfer of ours (rid %" PRId64 ")", m->cmd,
            rid);
}

static void s_on_data(struct tsr_core *w, const struct tsr_msg *m)
{
    struct tsr_cache_done done;
    char err[256] = "";
    int rc = tsr_cache_on_data(w->cache, w->agent, m, &done, err, sizeof err);
    if (rc < 0)
        tsr_log(TSR_LOG_WARN, S_LOG, "malformed DATA ignored: %s", err);
    else if (rc == 1)
        tsr_core_archive_done(w, &done);
}

static void s_on_error(struct tsr_core *w, const struct tsr_msg *m)
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
        int taken = tsr_cache_on_error(w->cache, rid, (int)code, message, &done);
        if (taken == 1)
            tsr_core_archive_done(w, &done);
        if (taken)
            return;
    }
    if (rid >= 0) {
        for (struct tsr_core_result *r = w->results; r; r = r->next) {
            enum tsr_upload_event ev =
                tsr_upload_on_error(r->up, w->agent, rid, (int)code, message);
            if (ev != TSR_UPLOAD_NONE) {
                tsr_core_upload_event(w, r, ev);
                return;
            }
        }
    }
    tsr_log(TSR_LOG_WARN, S_LOG, "master answered %s with an error: %s", re[0] ? re : "?",
            message);
}

static void s_on_message(void *ctx, const struct tsr_msg *m)
{
    struct tsr_core *w = ctx;
    if (strcmp(m->cmd, "TASK") == 0)
        tsr_core_on_task(w, m);
    else if (strcmp(m->cmd, "CANCEL") == 0)
        tsr_core_on_cancel(w, m);
    else if (strcmp(m->cmd, "RESULT_ACK") == 0)
        tsr_core_on_ack(w, m);
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
    struct tsr_core *w = ctx;
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
    cJSON_AddStringToObject(h, "instance", w->instance);
    cJSON_AddStringToObject(h, "hub", w->cfg->hub);
    cJSON_AddNumberToObject(h, "slots", w->cfg->slots);
    cJSON_AddNumberToObject(h, "cores", w->cores);
    cJSON_AddNumberToObject(h, "memory_mb", (double)w->memory_mb);
    cJSON_AddItemToObject(h, "gpus", gpus);
    cJSON_AddItemToArray(renderers, cJSON_CreateString("builtin"));
    cJSON_AddItemToArray(renderers, cJSON_CreateString("command"));
    if (w->blender)
        cJSON_AddItemToArray(renderers, cJSON_CreateString("blender"));
    cJSON_AddItemToObject(h, "renderers", renderers);
    cJSON_AddNumberToObject(h, "gpu_slots", w->gpu_slots);
    cJSON_AddItemToObject(h, "features", cJSON_Duplicate(w->features, 1));
    if (w->blender) {
        cJSON *b = cJSON_CreateObject();
        const char *keys[] = {"version", "devices", "features"};
        for (size_t i = 0; b && i < sizeof keys / sizeof keys[0]; i++)
            cJSON_AddItemToObject(
                b, keys[i],
                cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(w->blender, keys[i]),
                                1));
        cJSON_AddItemToObject(h, "blender", b);
    }
    cJSON_AddStringToObject(h, "version", TSR_WORKER_VERSION);
    cJSON_AddStringToObject(h, "sandbox", tsr_sandbox_mode_name(w->sandbox));
    /* Attempts the master should keep alive for us: those in progress, and
     * those whose RESULT is about to be re-sent. */
    for (struct tsr_core_task *t = w->tasks; t; t = t->next)
        if (t->state != TSR_CORE_STOPPING)
            cJSON_AddItemToArray(running, cJSON_CreateNumber((double)t->spec.attempt));
    for (struct tsr_core_result *r = w->results; r; r = r->next)
        cJSON_AddItemToArray(running,
                             cJSON_CreateNumber((double)tsr_upload_attempt(r->up)));
    cJSON_AddItemToObject(h, "running", running);
    return h;
}

/* Tells the master to send nothing new (after SIGTERM). */
static void s_send_drain(struct tsr_core *w)
{
    tsr_agent_send(w->agent, "DRAIN", NULL, NULL, 0);
}

static void s_welcome(void *ctx)
{
    struct tsr_core *w = ctx;
    if (w->draining)
        s_send_drain(w);
    tsr_core_ready(w, tsr_core_free_slots(w), tsr_core_free_gpu_slots(w));
    tsr_cache_resume(w->cache, w->agent);
    for (struct tsr_core_result *r = w->results; r; r = r->next)
        tsr_core_upload_event(w, r, tsr_upload_start(r->up, w->agent));
}

static void s_lost(void *ctx)
{
    struct tsr_core *w = ctx;
    for (struct tsr_core_result *r = w->results; r; r = r->next)
        tsr_upload_pause(r->up);
}

/* ---- start, loop, stop -------------------------------------------------- */

/* Loads the spool left by an earlier run; its results are re-sent after
 * the first WELCOME. */
static void s_load_spool(struct tsr_core *w)
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
        struct tsr_core_result *r = calloc(1, sizeof *r);
        if (!r || tsr_upload_new(w->spool, ids[i], &record, &r->up) != 0) {
            cJSON_Delete(record);
            free(r);
            continue;
        }
        r->gpu = -1; /* holds no slot: its task belonged to an earlier run */
        r->next = w->results;
        w->results = r;
    }
    if (n)
        tsr_log(TSR_LOG_INFO, S_LOG, "%zu unacknowledged result(s) in the spool", n);
    free(ids);
}

/* Finds Blender (--blender PATH, else blender on PATH; --blender none: no
 * Blender) and probes it once. An explicit --blender that does not work
 * stops the start (the operator asked for it); one merely found on PATH
 * that does not work is left out with a warning. */
static int s_find_blender(struct tsr_core *w)
{
    const char *want = w->cfg->blender;
    char path[PATH_MAX], err[700] = "";
    if (want && strcmp(want, "none") == 0)
        return 0;
    if (want) {
        char cwd[PATH_MAX];
        if (want[0] == '/')
            snprintf(path, sizeof path, "%s", want);
        else if (!getcwd(cwd, sizeof cwd) ||
                 tsr_fmt(path, sizeof path, "%s/%s", cwd, want) != 0)
            path[0] = '\0';
        if (!path[0] || access(path, X_OK) != 0) {
            tsr_log(TSR_LOG_ERROR, S_LOG, "--blender '%s' is not an executable file",
                    want);
            return TSR_ENOTFOUND;
        }
    } else if (tsr_adapter_which("blender", path, sizeof path) != 0) {
        tsr_log(TSR_LOG_INFO, S_LOG,
                "no blender on PATH: no Blender tasks for this worker");
        return 0;
    }
    int rc = tsr_blender_probe(path, &w->blender, err, sizeof err);
    if (rc != 0) {
        tsr_log(want ? TSR_LOG_ERROR : TSR_LOG_WARN, S_LOG,
                "blender '%s' failed its probe: %s%s", path, err,
                want ? "" : "; no Blender tasks for this worker");
        return want ? rc : 0;
    }
    char *feats =
        cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(w->blender, "features"));
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(w->blender, "version");
    tsr_log(TSR_LOG_INFO, S_LOG, "blender %s at %s: %d Cycles device(s), features %s",
            cJSON_IsString(v) ? v->valuestring : "?", path,
            cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(w->blender, "devices")),
            feats ? feats : "?");
    free(feats);
    return 0;
}

/* What jobs can --require of this worker: the operator's --feature names,
 * "gpu" with a GPU, and Blender's (blender.h). NULL when out of memory. */
static cJSON *s_features(const struct tsr_core *w)
{
    cJSON *f = cJSON_CreateArray();
    for (int i = 0; f && i < w->cfg->nfeatures; i++)
        cJSON_AddItemToArray(f, cJSON_CreateString(w->cfg->features[i]));
    if (f && w->gpu_slots > 0)
        cJSON_AddItemToArray(f, cJSON_CreateString("gpu"));
    const cJSON *b, *bf = cJSON_GetObjectItemCaseSensitive(w->blender, "features");
    cJSON_ArrayForEach(b, bf)
    {
        if (f && cJSON_IsString(b))
            cJSON_AddItemToArray(f, cJSON_CreateString(b->valuestring));
    }
    return f;
}

/* Prepares the renderers' sandbox and tries it once, so that a host where
 * it cannot work stops here with the reason, not at every task. */
static int s_open_sandbox(struct tsr_core *w)
{
    const struct tsr_worker_config *cfg = w->cfg;
    const char *secrets[1] = {cfg->key_path};
    struct tsr_sandbox_config sc = {(enum tsr_sandbox_mode)cfg->sandbox,
                                    cfg->sandbox_user,
                                    cfg->sandbox_binds,
                                    cfg->nsandbox_binds,
                                    secrets,
                                    cfg->key_path ? 1 : 0,
                                    tsr_cache_dir(w->cache)};
    char err[768] = "", dir[PATH_MAX];
    int rc = tsr_sandbox_new(&sc, &w->sandbox, err, sizeof err);
    if (rc == 0 && tsr_fmt(dir, sizeof dir, "%s/sandbox-check", w->tasks_dir) != 0)
        rc = TSR_ELIMIT;
    if (rc == 0)
        rc = tsr_sandbox_check(w->sandbox, dir, err, sizeof err);
    if (rc != 0) {
        tsr_log(TSR_LOG_ERROR, S_LOG, "renderer sandbox: %s",
                err[0] ? err : tsr_strerror(rc));
        return rc;
    }
    tsr_log(cfg->sandbox == TSR_SANDBOX_NONE ? TSR_LOG_WARN : TSR_LOG_INFO, S_LOG,
            "renderer sandbox: %s", tsr_sandbox_describe(w->sandbox));
    return 0;
}

static int s_open(struct tsr_core *w)
{
    char err[512] = "";
    char path[PATH_MAX];
    unsigned char id[16];
    randombytes_buf(id, sizeof id);
    sodium_bin2hex(w->instance, sizeof w->instance, id, sizeof id);
    int rc = tsr_cache_open(w->cfg->cache_dir, &w->cache, err, sizeof err);
    if (rc != 0) {
        tsr_log(TSR_LOG_ERROR, S_LOG, "%s", err);
        return rc;
    }
    const char *dir = tsr_cache_dir(w->cache);
    tsr_core_trim_cache(w); /* --cache-max may be lower than last time */
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
    if ((rc = s_open_sandbox(w)) != 0)
        return rc;
    if ((rc = tsr_spool_open(path, &w->spool)) != 0) {
        tsr_log(TSR_LOG_ERROR, S_LOG, "cannot open spool '%s': %s", path,
                tsr_strerror(rc));
        return rc;
    }
    s_load_spool(w);
    w->cores = tsr_probe_cores();
    w->memory_mb = tsr_probe_memory_mb();
    w->gpus = tsr_probe_gpus();
    if (!w->gpus)
        return TSR_ENOMEM;
    int ngpus = cJSON_GetArraySize(w->gpus);
    w->gpu_slots = ngpus > TSR_WORKER_MAX_GPU_SLOTS ? TSR_WORKER_MAX_GPU_SLOTS : ngpus;
    if ((rc = s_find_blender(w)) != 0)
        return rc;
    if (!(w->features = s_features(w)))
        return TSR_ENOMEM;
    struct tsr_agent_config acfg = {w->cfg->master, w->cfg->heartbeat_ms,
                                    w->cfg->liveness, w->cfg->curve_pub,
                                    w->cfg->curve_sec, w->cfg->curve_server};
    struct tsr_agent_events ev = {w, s_hello, s_welcome, s_lost, s_on_message};
    if ((rc = tsr_agent_new(&acfg, &ev, &w->agent)) != 0) {
        tsr_log(TSR_LOG_ERROR, S_LOG, "cannot start the connection: %s",
                tsr_strerror(rc));
        return rc;
    }
    tsr_log(TSR_LOG_INFO, S_LOG,
            "worker '%s' (hub %s): %d slot(s), %d core(s), %" PRId64
            " MiB, %d GPU(s), cache %s",
            w->cfg->name, w->cfg->hub, w->cfg->slots, w->cores, w->memory_mb,
            cJSON_GetArraySize(w->gpus), dir);
    return 0;
}

/* Every timer: connection, downloads, tasks, uploads; returns the
 * earliest next one. */
static int64_t s_tick(struct tsr_core *w, int64_t now)
{
    int64_t next = tsr_agent_tick(w->agent, now);
    struct tsr_cache_done done;
    int64_t cnext;
    while (tsr_cache_tick(w->cache, w->agent, now, &done, &cnext) == 1)
        tsr_core_archive_done(w, &done);
    if (cnext < next)
        next = cnext;
    next = tsr_core_tick(w, now, next);
    for (struct tsr_core_result *r = w->results; r; r = r->next) {
        if (tsr_upload_due(r->up, w->agent, now)) {
            tsr_log(TSR_LOG_INFO, S_LOG, "result of attempt %" PRId64 " unanswered; sending "
                    "it again", tsr_upload_attempt(r->up));
            tsr_core_upload_event(w, r, tsr_upload_start(r->up, w->agent));
        }
        int64_t u = tsr_upload_tick(r->up, w->agent, now);
        if (u < next)
            next = u;
    }
    return next;
}

static void s_loop(struct tsr_core *w)
{
    size_t cap = 0;
    zmq_pollitem_t *items = NULL;
    struct tsr_core_task **owners = NULL;
    while (!*w->cfg->stop) {
        if (w->cfg->drain && *w->cfg->drain && !w->draining) {
            w->draining = 1;
            tsr_log(TSR_LOG_INFO, S_LOG, "SIGTERM: finishing %s, taking no new tasks",
                    w->tasks || w->results ? "the tasks in hand" : "(nothing in hand)");
            s_send_drain(w);
        }
        if (w->draining && !w->tasks && !w->results) {
            tsr_log(TSR_LOG_INFO, S_LOG, "drained: every result delivered");
            tsr_agent_bye(w->agent); /* shown as stopped, not lost */
            break;
        }
        int64_t now = tsr_now_ms();
        int64_t next = s_tick(w, now);
        size_t n = 0;
        for (struct tsr_core_task *t = w->tasks; t; t = t->next)
            n++;
        if (n + 2 > cap) {
            cap = n + 2;
            zmq_pollitem_t *ni = realloc(items, cap * sizeof *ni);
            struct tsr_core_task **no = ni ? realloc(owners, cap * sizeof *no) : NULL;
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
        for (struct tsr_core_task *t = w->tasks; t; t = t->next) {
            if (t->child && tsr_child_fd(t->child) >= 0) {
                owners[k] = t;
                items[k++] =
                    (zmq_pollitem_t){NULL, tsr_child_fd(t->child), ZMQ_POLLIN, 0};
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
                tsr_core_read(owners[i]);
        tsr_core_reap(w);
        if (rc > 0 && items[0].socket && (items[0].revents & ZMQ_POLLIN))
            tsr_agent_on_readable(w->agent);
    }
    free(items);
    free(owners);
}

int tsr_worker_run(const struct tsr_worker_config *cfg)
{
    struct tsr_core w;
    memset(&w, 0, sizeof w);
    w.cfg = cfg;
    int rc = s_open(&w);
    if (rc == 0) {
        s_loop(&w);
        tsr_log(TSR_LOG_INFO, S_LOG, "stopping");
        tsr_core_stop_children(&w);
    }
    while (w.results)
        tsr_core_result_free(&w, w.results);
    tsr_agent_destroy(&w.agent);
    tsr_spool_destroy(&w.spool);
    tsr_cache_destroy(&w.cache);
    tsr_sandbox_destroy(&w.sandbox);
    cJSON_Delete(w.gpus);
    cJSON_Delete(w.blender);
    cJSON_Delete(w.features);
    return rc;
}
