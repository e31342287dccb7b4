/*
 * workers.c: the worker endpoint: registration, heartbeats, dispatch and
 * results.
 *
 * Workers pull: a worker's READY grants credit, and the scheduler sends at
 * most that many TASKs. Heartbeats run both ways (the Guide's Paranoid
 * Pirate): a worker silent for heartbeat_ms x liveness is lost and its
 * attempts go back to the queue. Each TASK carries a fresh attempt id; a
 * RESULT counts only for its task's live attempt, so a late, duplicate or
 * replayed result is acknowledged and dropped.
 */
#include "master.h"

#include "tessera/error.h"
#include "tessera/log.h"
#include "tessera/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RESULT_LOG_MAX (64 * 1024)

struct worker *worker_by_name(struct master *m, const char *name)
{
    for (size_t i = 0; i < m->nworkers; i++)
        if (strcmp(m->workers[i]->name, name) == 0)
            return m->workers[i];
    return NULL;
}

struct worker *worker_by_peer(struct master *m, const void *peer, size_t len)
{
    for (size_t i = 0; i < m->nworkers; i++) {
        struct worker *w = m->workers[i];
        if (w->peer_len == len && len && memcmp(w->peer, peer, len) == 0)
            return w;
    }
    return NULL;
}

void worker_remove_run(struct worker *w, uint64_t attempt)
{
    for (size_t i = 0; i < w->nrunning; i++) {
        if (w->running[i].attempt == attempt) {
            w->running[i] = w->running[--w->nrunning];
            return;
        }
    }
}

static struct run_ref *s_run(struct worker *w, uint64_t attempt)
{
    for (size_t i = 0; i < w->nrunning; i++)
        if (w->running[i].attempt == attempt)
            return &w->running[i];
    return NULL;
}

void worker_add_run(struct worker *w, uint64_t attempt, uint64_t job, uint32_t task)
{
    if (w->nrunning == w->caprunning) {
        w->caprunning = w->caprunning ? w->caprunning * 2 : 8;
        w->running = realloc(w->running, w->caprunning * sizeof *w->running);
    }
    w->running[w->nrunning++] = (struct run_ref){attempt, job, task};
}

/* A worker known by name, created (not live) when it is not. */
static struct worker *s_worker_get(struct master *m, const char *name)
{
    struct worker *w = worker_by_name(m, name);
    if (w)
        return w;
    w = calloc(1, sizeof *w);
    snprintf(w->name, sizeof w->name, "%s", name);
    if (m->nworkers == m->capworkers) {
        m->capworkers = m->capworkers ? m->capworkers * 2 : 16;
        m->workers = realloc(m->workers, m->capworkers * sizeof *m->workers);
    }
    m->workers[m->nworkers++] = w;
    return w;
}

/*
 * After a restart the tasks stored as running are the attempts their
 * workers still hold: each goes back on its worker's list, and the worker
 * claims it by naming it in HELLO's running[] (s_hello keeps what is named,
 * requeues the rest). A worker that does not come back within the recovery
 * window loses them (workers_cron). Attempt ids only grow: next_attempt is
 * stored with each dispatch, and raised here past any stored attempt in case
 * a record and the counter ever disagree.
 */
void workers_adopt_stored(struct master *m)
{
    size_t adopted = 0;
    for (size_t i = 0; i < m->njobs; i++) {
        struct job *j = m->jobs[i];
        for (uint32_t t = 0; t < j->ntasks; t++) {
            struct task *tk = &j->tasks[t];
            if (tk->attempt >= m->next_attempt)
                m->next_attempt = tk->attempt + 1;
            if (tk->state != TASK_RUNNING || !tk->attempt || !tk->worker[0])
                continue;
            worker_add_run(s_worker_get(m, tk->worker), tk->attempt, j->id, t);
            adopted++;
        }
    }
    if (adopted)
        tsr_log(TSR_LOG_INFO, "workers",
                "%zu attempts were running at the last stop; "
                "their workers may claim them",
                adopted);
}

/* Attempts w holds that still run on it (RUNNING, not being verified), of
 * GPU tasks or of CPU tasks: what counts against its slots. */
static int s_held(struct master *m, const struct worker *w, int gpu)
{
    int n = 0;
    for (size_t i = 0; i < w->nrunning; i++) {
        const struct run_ref *r = &w->running[i];
        const struct job *j = job_find(m, r->job);
        if (j && r->task < j->ntasks && j->tasks[r->task].attempt == r->attempt &&
            j->tasks[r->task].state == TASK_RUNNING && !j->gpu == !gpu)
            n++;
    }
    return n;
}

cJSON *worker_to_json(const struct master *m, const struct worker *w)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", w->name);
    cJSON_AddStringToObject(o, "hub", w->hub);
    const char *state = !w->live         ? (w->stopped ? "stopped" : "lost")
                        : w->quarantined ? "quarantined"
                        : w->draining || w->leaving
                            ? (w->nrunning ? "draining" : "drained")
                        : w->nrunning ? "busy"
                                      : "idle";
    cJSON_AddStringToObject(o, "state", state);
    if (w->quarantined)
        cJSON_AddStringToObject(o, "quarantine_reason", w->quarantine_why);
    cJSON_AddNumberToObject(o, "slots", w->slots);
    if (w->announced_slots > w->slots)
        cJSON_AddNumberToObject(o, "slots_announced", w->announced_slots);
    cJSON_AddNumberToObject(o, "gpu_slots", w->gpu_slots);
    cJSON_AddNumberToObject(o, "running", (double)w->nrunning);
    const char *keys[] = {"cores",   "memory_mb", "gpus",   "renderers",
                          "features", "blender",  "version", "sandbox"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        cJSON *v = w->caps ? cJSON_GetObjectItemCaseSensitive(w->caps, keys[i]) : NULL;
        if (v)
            cJSON_AddItemToObject(o, keys[i], cJSON_Duplicate(v, 1));
    }
    cJSON_AddNumberToObject(o, "done", (double)w->done);
    cJSON_AddNumberToObject(o, "failed", (double)w->failed);
    double seen = w->last_seen_wall_ms ? (double)(tsr_wall_ms() - w->last_seen_wall_ms) / 1000.0
                                       : -1;
    cJSON_AddNumberToObject(o, "last_seen_s", seen);
    (void)m;
    return o;
}

static void s_send(struct master *m, struct worker *w, const char *cmd, cJSON *h)
{
    master_send(m, m->workers_sock, w->peer, w->peer_len, cmd, h, NULL, 0);
    w->last_send_ms = tsr_now_ms();
}

/* Requeues every attempt the worker holds. */
static void s_lose(struct master *m, struct worker *w, const char *why)
{
    while (w->nrunning > 0) {
        struct run_ref r = w->running[w->nrunning - 1];
        struct job *j = job_find(m, r.job);
        if (j && r.task < j->ntasks && j->tasks[r.task].attempt == r.attempt)
            task_requeue(m, j, r.task, why); /* removes it from w->running */
        else
            w->nrunning--;
    }
}

/* The worker enforces each attempt's timeout; this is the backstop for a
 * worker that heartbeats but never answers (hung, or its result lost): an
 * attempt with no result a grace period past its timeout goes back to the
 * queue, and a late result is refused by its fencing token. */
#define OVERDUE_GRACE_MS (60 * 1000)

static void s_overdue(struct master *m, struct worker *w)
{
    int64_t wall = tsr_wall_ms();
    for (size_t i = 0; i < w->nrunning;) {
        struct run_ref r = w->running[i];
        struct job *j = job_find(m, r.job);
        struct task *t = j && r.task < j->ntasks ? &j->tasks[r.task] : NULL;
        /* While space is short a result may be waiting to be stored. */
        if (t && t->attempt == r.attempt && t->state == TASK_RUNNING &&
            !space_short(m, j->outputs_image) &&
            wall - t->dispatched_ms > (int64_t)j->timeout_s * 1000 + OVERDUE_GRACE_MS) {
            task_requeue(m, j, r.task, "no result long past the task's timeout");
            continue; /* task_requeue removed entry i */
        }
        i++;
    }
}

/* Refuses a HELLO for a name that a live worker holds: ERROR {code
 * TSR_EEXIST, re: "HELLO", retry_ms}. retry_ms is when the holder's lease
 * runs out if it stays silent: a worker restarted after a crash gets its
 * name back then; a clone is refused again for as long as the holder lives. */
static void s_refuse_name(struct master *m, struct tsr_msg *msg, struct worker *w,
                          int64_t left_ms)
{
    char why[400];
    snprintf(
        why, sizeof why,
        "the name '%s' is held by another live worker (hub %s%s%s, last heard %lld ms "
        "ago); each worker needs its own --name (a cloned host keeps its host name). "
        "A restarted worker gets the name back when the old one's lease ends",
        w->name, w->hub, w->key[0] ? ", key " : "", w->key,
        (long long)(tsr_now_ms() - w->last_recv_ms));
    int64_t now = tsr_now_ms();
    if (!w->refused_log_ms || now - w->refused_log_ms > 60 * 1000) {
        w->refused_log_ms = now;
        tsr_log(TSR_LOG_WARN, "workers", "HELLO refused: %s", why);
    }
    cJSON *h = cJSON_CreateObject();
    cJSON_AddNumberToObject(h, "code", TSR_EEXIST);
    cJSON_AddStringToObject(h, "error", tsr_strerror(TSR_EEXIST));
    cJSON_AddStringToObject(h, "message", why);
    cJSON_AddStringToObject(h, "re", "HELLO");
    cJSON_AddNumberToObject(h, "retry_ms", (double)(left_ms + m->cfg.heartbeat_ms));
    master_send(m, m->workers_sock, msg->peer, msg->peer_len, "ERROR", h, NULL, 0);
    cJSON_Delete(h);
}

/* The slots a worker is granted: what it announced, bounded by --max-slots
 * and by --slots-per-core times the cores it announced; GPU slots by the
 * GPUs it lists. A worker never holds more than these plus one task ahead. */
static void s_grant_slots(struct master *m, struct worker *w, const struct hello *h)
{
    int cap = h->slots < m->cfg.max_slots ? h->slots : m->cfg.max_slots;
    if (m->cfg.slots_per_core > 0 && h->cores > 0 &&
        (int64_t)h->cores * m->cfg.slots_per_core < cap)
        cap = h->cores * m->cfg.slots_per_core;
    int gcap = h->gpu_slots;
    const cJSON *gpus = cJSON_GetObjectItemCaseSensitive(h->caps, "gpus");
    if (gpus && cJSON_GetArraySize(gpus) < gcap)
        gcap = cJSON_GetArraySize(gpus);
    if (cap < h->slots || gcap < h->gpu_slots)
        tsr_log(TSR_LOG_WARN, "workers",
                "worker '%s' announced %d slots and %d GPU slots; "
                "granted %d and %d (--max-slots %d, --slots-per-core %d of %d cores, "
                "%d GPUs listed)",
                h->name, h->slots, h->gpu_slots, cap, gcap, m->cfg.max_slots,
                m->cfg.slots_per_core, h->cores, gpus ? cJSON_GetArraySize(gpus) : 0);
    w->announced_slots = h->slots;
    w->slots = cap;
    w->gpu_slots = gcap;
}

static void s_hello(struct master *m, struct tsr_msg *msg)
{
    char err[256];
    struct hello h;
    int rc = hello_check(msg->hdr, &h, err, sizeof err);
    if (rc) {
        const char *name = NULL;
        tsr_hdr_str_opt(msg->hdr, "name", MASTER_NAME_MAX, &name, NULL, 0);
        tsr_log(TSR_LOG_WARN, "workers", "HELLO%s%s%s refused: %s", name ? " of '" : "",
                name ? name : "", name ? "'" : "", err);
        master_send_error(m, m->workers_sock, msg->peer, msg->peer_len, "HELLO", -1, rc, err);
        return;
    }
    struct worker *other = worker_by_peer(m, msg->peer, msg->peer_len);
    if (other && strcmp(other->name, h.name) != 0) {
        cJSON_Delete(h.caps);
        master_send_error(m, m->workers_sock, msg->peer, msg->peer_len, "HELLO", -1,
                          TSR_ESTATE, "this connection is registered under another name");
        return;
    }
    struct worker *w = worker_by_name(m, h.name);
    /* A live holder of the name keeps it against anyone but itself: the same
     * connection, or the holder on a new connection: the same process (its
     * instance id), or the same worker restarted with its spool (it names
     * attempts of the holder, fencing tokens only the holder was given) —
     * and with keys, the same key. Past its lease the name is free. */
    int64_t now = tsr_now_ms();
    int64_t lease = (int64_t)m->cfg.heartbeat_ms * m->cfg.liveness;
    if (w && w->live && w->peer_len && now - w->last_recv_ms <= lease && other != w) {
        int holds = cJSON_GetArraySize(h.running) > 0;
        const cJSON *a;
        cJSON_ArrayForEach(a, h.running)
        {
            if (!s_run(w, (uint64_t)a->valuedouble))
                holds = 0;
        }
        int same = ((h.instance && w->instance[0] && strcmp(h.instance, w->instance) == 0) ||
                    holds) &&
                   strcmp(msg->key, w->key) == 0;
        if (!same) {
            s_refuse_name(m, msg, w, lease - (now - w->last_recv_ms));
            cJSON_Delete(h.caps);
            return;
        }
    }
    if (!w)
        w = s_worker_get(m, h.name);
    /* Attempts it no longer holds (it restarted) go back to the queue; the
     * ones it names stay its own, including those LMDB recorded as running
     * on it before a master restart (workers_adopt_stored). */
    size_t claimed = 0;
    for (size_t i = 0; i < w->nrunning;) {
        int keep = 0;
        const cJSON *a;
        cJSON_ArrayForEach(a, h.running)
        {
            if ((uint64_t)a->valuedouble == w->running[i].attempt)
                keep = 1;
        }
        if (keep) {
            claimed++;
            i++;
            continue;
        }
        struct run_ref r = w->running[i];
        struct job *j = job_find(m, r.job);
        if (j && r.task < j->ntasks && j->tasks[r.task].attempt == r.attempt)
            task_requeue(m, j, r.task, "worker restarted without it");
        else
            w->running[i] = w->running[--w->nrunning];
    }
    snprintf(w->hub, sizeof w->hub, "%s", h.hub);
    snprintf(w->instance, sizeof w->instance, "%s", h.instance ? h.instance : "");
    snprintf(w->key, sizeof w->key, "%s", msg->key);
    memcpy(w->peer, msg->peer, msg->peer_len);
    w->peer_len = msg->peer_len;
    s_grant_slots(m, w, &h);
    w->leaving = 0;
    w->stopped = 0;
    w->greedy_logged = 0;
    w->credit = 0;
    w->gpu_credit = 0;
    w->live = 1;
    w->last_recv_ms = now;
    w->last_seen_wall_ms = tsr_wall_ms();
    cJSON_Delete(w->caps);
    w->caps = h.caps;
    store_put_worker(m, w);
    cJSON *ev = cJSON_CreateObject();
    cJSON_AddStringToObject(ev, "worker", w->name);
    cJSON_AddStringToObject(ev, "hub", w->hub);
    if (claimed)
        cJSON_AddNumberToObject(ev, "claimed", (double)claimed);
    store_event(m, "worker_joined", 0, ev);
    cJSON_Delete(ev);
    if (claimed)
        tsr_log(TSR_LOG_INFO, "workers",
                "worker '%s' (hub %s, %d slots) registered; "
                "it still runs %zu attempt(s), kept",
                w->name, w->hub, w->slots, claimed);
    else
        tsr_log(TSR_LOG_INFO, "workers", "worker '%s' (hub %s, %d slots) registered",
                w->name, w->hub, w->slots);
    cJSON *rh = cJSON_CreateObject();
    cJSON_AddNumberToObject(rh, "heartbeat_ms", m->cfg.heartbeat_ms);
    cJSON_AddNumberToObject(rh, "liveness", m->cfg.liveness);
    cJSON_AddNumberToObject(rh, "slots", w->slots);
    cJSON_AddNumberToObject(rh, "gpu_slots", w->gpu_slots);
    s_send(m, w, "WELCOME", rh);
    cJSON_Delete(rh);
}

static void s_result_ack(struct master *m, struct worker *w, uint64_t attempt, int accepted,
                         const char *reason)
{
    cJSON *h = cJSON_CreateObject();
    cJSON_AddNumberToObject(h, "attempt", (double)attempt);
    cJSON_AddBoolToObject(h, "accepted", accepted);
    cJSON_AddStringToObject(h, "reason", reason ? reason : "");
    s_send(m, w, "RESULT_ACK", h);
    cJSON_Delete(h);
}

static void s_result(struct master *m, struct worker *w, struct tsr_msg *msg)
{
    char err[256];
    int64_t attempt = 0, render_ms = 0;
    int ok = 0;
    int rc = tsr_hdr_int(msg->hdr, "attempt", 1, INT64_MAX / 2, &attempt, err, sizeof err);
    if (!rc)
        rc = tsr_hdr_bool_opt(msg->hdr, "ok", &ok, err, sizeof err);
    if (!rc)
        rc = tsr_hdr_int_opt(msg->hdr, "render_ms", 0, INT64_MAX / 2, &render_ms, err,
                             sizeof err);
    if (rc) {
        master_send_error(m, m->workers_sock, msg->peer, msg->peer_len, "RESULT", -1, rc, err);
        return;
    }
    struct run_ref *ref = s_run(w, (uint64_t)attempt);
    struct job *j = ref ? job_find(m, ref->job) : NULL;
    struct task *t = j && ref->task < j->ntasks ? &j->tasks[ref->task] : NULL;
    if (!t || t->attempt != (uint64_t)attempt || t->state != TASK_RUNNING) {
        /* Not the live attempt (requeued, cancelled, or a replay): the
         * worker may forget it; nothing is counted. */
        const char *why = t && t->state == TASK_VERIFYING ? NULL : "not a live attempt";
        if (why) {
            tsr_log(TSR_LOG_INFO, "workers", "'%s': result for attempt %lld dropped: %s",
                    w->name, (long long)attempt, why);
            s_result_ack(m, w, (uint64_t)attempt, 0, why);
        }
        return; /* a duplicate of one being verified is answered when it ends */
    }
    uint32_t idx = ref->task;
    t->render_ms = (uint32_t)render_ms;
    if (!ok) {
        const char *cls = "exit", *why = "renderer failed";
        tsr_hdr_str_opt(msg->hdr, "class", 31, &cls, NULL, 0);
        tsr_hdr_str_opt(msg->hdr, "error", 1024, &why, NULL, 0);
        if (strcmp(cls, "fetch") == 0)
            scrub_suspect(m, j->archive); /* damaged on the master? (scrub.c) */
        task_fail(m, j, idx, cls, why);
        s_result_ack(m, w, (uint64_t)attempt, 1, NULL);
        return;
    }
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(msg->hdr, "files");
    if (!j->outputs_image) {
        task_verified(m, j, idx, NULL);
        s_result_ack(m, w, (uint64_t)attempt, 1, NULL);
        return;
    }
    /* One image per frame of the task, in frame order, each a blob we hold. */
    const char *why = NULL;
    if (!cJSON_IsArray(files) || (uint32_t)cJSON_GetArraySize(files) != t->frame_count)
        why = "result must list one file per frame of the task";
    struct pool_req *req = calloc(1, sizeof *req);
    req->kind = POOL_VERIFY_PIECES;
    req->to_workers = 1;
    memcpy(req->peer, msg->peer, msg->peer_len);
    req->peer_len = msg->peer_len;
    req->job = j->id;
    req->task = idx;
    req->attempt = (uint64_t)attempt;
    req->width = j->width;
    req->height = j->height;
    int tile = t->tile;
    int tx = tile % j->tiles_x, ty = tile / j->tiles_x;
    req->region.x0 = (int)((int64_t)tx * j->width / j->tiles_x);
    req->region.x1 = (int)((int64_t)(tx + 1) * j->width / j->tiles_x);
    req->region.y0 = (int)((int64_t)ty * j->height / j->tiles_y);
    req->region.y1 = (int)((int64_t)(ty + 1) * j->height / j->tiles_y);
    req->npieces = t->frame_count;
    req->pieces = calloc(t->frame_count ? t->frame_count : 1, sizeof *req->pieces);
    req->piece_hashes = calloc(t->frame_count ? t->frame_count : 1, sizeof *req->piece_hashes);
    for (uint32_t k = 0; !why && k < t->frame_count; k++) {
        const cJSON *f = cJSON_GetArrayItem(files, (int)k);
        const char *hash = NULL;
        int64_t frame = 0;
        if (tsr_hdr_hash(f, "hash", &hash, NULL, 0) != 0 ||
            tsr_hdr_int(f, "frame", INT32_MIN, INT32_MAX, &frame, NULL, 0) != 0)
            why = "each file needs a frame and a sha256 hash";
        else if (frame != j->frames[t->frame_first + k])
            why = "files are not the task's frames in order";
        else if (!store_has_blob(m, hash, NULL))
            why = "a file was not uploaded before the result";
        else {
            snprintf(req->piece_hashes[k], TSR_HASH_HEX, "%s", hash);
            blob_path(m, hash, req->pieces[k], sizeof req->pieces[k]);
        }
    }
    if (why) {
        pool_req_free(req);
        task_fail(m, j, idx, "bad_output", why);
        s_result_ack(m, w, (uint64_t)attempt, 1, why);
        return;
    }
    task_set_state(j, idx, TASK_VERIFYING);
    pool_submit(m, req);
}

/* A task's pieces came back from verification. */
void workers_on_verified(struct master *m, struct pool_req *req)
{
    struct job *j = job_find(m, req->job);
    struct task *t = j && req->task < j->ntasks ? &j->tasks[req->task] : NULL;
    struct worker *w = t ? worker_by_name(m, t->worker) : NULL;
    if (!t || t->attempt != req->attempt || t->state != TASK_VERIFYING) {
        /* Cancelled or requeued meanwhile: the result is not counted. */
        struct worker *pw = worker_by_peer(m, req->peer, req->peer_len);
        if (pw)
            s_result_ack(m, pw, req->attempt, 0, "not a live attempt");
        return;
    }
    if (req->rc != 0 && req->rotten[0]) {
        /* A piece was damaged on the master's disk after it came: nobody's
         * fault but the disk's; the task is rendered again (scrub.c). */
        task_requeue(m, j, req->task, req->err);
        if (w && w->peer_len)
            s_result_ack(m, w, req->attempt, 0, req->err);
        return;
    }
    if (req->rc != 0) {
        task_fail(m, j, req->task, "bad_output", req->err);
        if (w && w->peer_len)
            s_result_ack(m, w, req->attempt, 1, req->err);
        return;
    }
    task_verified(m, j, req->task, (const char(*)[TSR_HASH_HEX])req->piece_hashes);
    if (w && w->peer_len)
        s_result_ack(m, w, req->attempt, 1, NULL);
}

/*
 * READY grants credit, but a worker holds at most its granted slots plus one
 * task ahead (GPU: its GPU slots): the attempts it runs and the credit it
 * has together stay within that, whatever it asks. A READY past the bound is
 * ignored, and logged once per registration.
 */
static void s_ready(struct master *m, struct worker *w, int credit, int gpu_credit)
{
    int cap = w->slots + 1 - s_held(m, w, 0);
    int gcap = w->gpu_slots - s_held(m, w, 1);
    int want = w->credit + credit, gwant = w->gpu_credit + gpu_credit;
    w->credit = want < cap ? want : cap > 0 ? cap : 0;
    w->gpu_credit = gwant < gcap ? gwant : gcap > 0 ? gcap : 0;
    if ((want > w->credit || gwant > w->gpu_credit) && !w->greedy_logged) {
        w->greedy_logged = 1;
        tsr_log(TSR_LOG_WARN, "workers",
                "worker '%s' asks for more tasks than its %d slots "
                "(+1 ahead) and %d GPU slots hold; the excess is ignored (logged once)",
                w->name, w->slots, w->gpu_slots);
    }
}

/* BYE: the worker stops cleanly (drained, every result acknowledged). It is
 * shown as stopped, not lost; anything it still held goes back to the
 * queue at once rather than after its lease. */
/* w is gone (stopped cleanly or lost): its connection and credit end, its
 * attempts are requeued (why), its record is stored and an event written. */
static void s_gone(struct master *m, struct worker *w, const char *why, const char *event)
{
    w->live = 0;
    w->peer_len = 0;
    w->credit = 0;
    w->gpu_credit = 0;
    s_lose(m, w, why);
    store_put_worker(m, w);
    cJSON *ev = cJSON_CreateObject();
    cJSON_AddStringToObject(ev, "worker", w->name);
    store_event(m, event, 0, ev);
    cJSON_Delete(ev);
}

static void s_bye(struct master *m, struct worker *w)
{
    tsr_log(TSR_LOG_INFO, "workers", "worker '%s' stopped", w->name);
    w->stopped = 1;
    s_gone(m, w, "worker stopped", "worker_stopped");
}

int worker_forget(struct master *m, struct worker *w)
{
    if (w->live)
        return TSR_ESTATE;
    s_lose(m, w, "worker forgotten by an operator");
    store_del_worker(m, w->name);
    for (size_t i = 0; i < m->nworkers; i++) {
        if (m->workers[i] == w) {
            memmove(&m->workers[i], &m->workers[i + 1],
                    (m->nworkers - i - 1) * sizeof *m->workers);
            m->nworkers--;
            break;
        }
    }
    cJSON_Delete(w->caps);
    free(w->running);
    free(w);
    return 0;
}

void workers_on_message(struct master *m, struct tsr_msg *msg)
{
    if (strcmp(msg->cmd, "HELLO") == 0) {
        s_hello(m, msg);
        return;
    }
    struct worker *w = worker_by_peer(m, msg->peer, msg->peer_len);
    if (!w) {
        /* After a master restart or a lost-worker verdict: ask it to HELLO. */
        master_send(m, m->workers_sock, msg->peer, msg->peer_len, "RECONNECT", NULL, NULL, 0);
        return;
    }
    w->last_recv_ms = tsr_now_ms();
    w->last_seen_wall_ms = tsr_wall_ms();
    char err[256];
    if (strcmp(msg->cmd, "READY") == 0) {
        int64_t credit = 0, gpu_credit = 0;
        if (tsr_hdr_int(msg->hdr, "credit", 0, 1024, &credit, err, sizeof err) != 0 ||
            tsr_hdr_int_opt(msg->hdr, "gpu_credit", 0, 64, &gpu_credit, err, sizeof err)) {
            master_send_error(m, m->workers_sock, msg->peer, msg->peer_len, "READY", -1,
                              TSR_EPROTO, err);
            return;
        }
        s_ready(m, w, (int)credit, (int)gpu_credit);
    } else if (strcmp(msg->cmd, "DRAIN") == 0) {
        /* The worker is stopping (SIGTERM): no new tasks; it leaves when its
         * own are done and acknowledged. */
        if (!w->leaving) {
            w->leaving = 1;
            tsr_log(TSR_LOG_INFO, "workers", "worker '%s' is draining to stop", w->name);
        }
    } else if (strcmp(msg->cmd, "BYE") == 0) {
        s_bye(m, w);
    } else if (strcmp(msg->cmd, "HEARTBEAT") == 0) {
        /* liveness noted above */
    } else if (strcmp(msg->cmd, "PROGRESS") == 0) {
        /* Progress is live information, not state: it is not stored. */
        int64_t attempt = 0, pct = 0;
        if (tsr_hdr_int(msg->hdr, "attempt", 1, INT64_MAX / 2, &attempt, err, sizeof err) ||
            tsr_hdr_int(msg->hdr, "percent", 0, 100, &pct, err, sizeof err)) {
            master_send_error(m, m->workers_sock, msg->peer, msg->peer_len, "PROGRESS", -1,
                              TSR_EPROTO, err);
            return;
        }
        struct run_ref *ref = s_run(w, (uint64_t)attempt);
        struct job *j = ref ? job_find(m, ref->job) : NULL;
        if (j && ref->task < j->ntasks && j->tasks[ref->task].attempt == (uint64_t)attempt &&
            j->tasks[ref->task].state == TASK_RUNNING) {
            j->progress_sum += (uint64_t)pct - j->progress[ref->task];
            j->progress[ref->task] = (uint8_t)pct;
        }
    } else if (strcmp(msg->cmd, "RESULT") == 0) {
        s_result(m, w, msg);
    } else if (strcmp(msg->cmd, "PUT") == 0) {
        blobs_on_put(m, m->workers_sock, msg);
    } else if (strcmp(msg->cmd, "CHUNK") == 0) {
        blobs_on_chunk(m, m->workers_sock, msg);
    } else if (strcmp(msg->cmd, "PUT_END") == 0) {
        blobs_on_put_end(m, m->workers_sock, msg);
    } else if (strcmp(msg->cmd, "GET") == 0) {
        blobs_on_get(m, m->workers_sock, msg);
    } else {
        snprintf(err, sizeof err, "unknown command '%s' on the worker endpoint", msg->cmd);
        master_send_error(m, m->workers_sock, msg->peer, msg->peer_len, msg->cmd, -1,
                          TSR_EPROTO, err);
    }
}

void workers_cron(struct master *m)
{
    int64_t now = tsr_now_ms();
    int64_t expiry = (int64_t)m->cfg.heartbeat_ms * m->cfg.liveness;
    for (size_t i = 0; i < m->nworkers; i++) {
        struct worker *w = m->workers[i];
        if (!w->live)
            continue;
        if (now - w->last_recv_ms > expiry) {
            tsr_log(TSR_LOG_WARN, "workers", "worker '%s' silent for %lld ms: lost", w->name,
                    (long long)(now - w->last_recv_ms));
            s_gone(m, w, "worker lost (no heartbeat)", "worker_lost");
            continue;
        }
        if (now - w->last_send_ms >= m->cfg.heartbeat_ms)
            s_send(m, w, "HEARTBEAT", NULL);
        s_overdue(m, w);
    }
    /* After a restart, running tasks whose workers did not come back within
     * the grace period are requeued. */
    if (m->recover_until_ms && now > m->recover_until_ms) {
        m->recover_until_ms = 0;
        for (size_t i = 0; i < m->njobs; i++) {
            struct job *j = m->jobs[i];
            for (uint32_t t = 0; t < j->ntasks; t++) {
                struct task *tk = &j->tasks[t];
                if (tk->state != TASK_RUNNING)
                    continue;
                struct worker *w = worker_by_name(m, tk->worker);
                if (!w || !w->live || !s_run(w, tk->attempt))
                    task_requeue(m, j, t, "worker did not return after a master restart");
            }
        }
    }
}

static int s_has(const cJSON *arr, const char *name)
{
    const cJSON *v;
    cJSON_ArrayForEach(v, arr)
    {
        if (cJSON_IsString(v) && strcmp(v->valuestring, name) == 0)
            return 1;
    }
    return 0;
}

/* Whether w can ever run j's tasks: it announced j's renderer, every
 * feature j requires, and GPU slots if j needs a GPU. */
int worker_can_run(const struct worker *w, const struct job *j)
{
    if (w->draining || w->leaving || w->quarantined)
        return 0;
    const cJSON *rs = w->caps ? cJSON_GetObjectItemCaseSensitive(w->caps, "renderers") : NULL;
    if (cJSON_IsArray(rs) ? !s_has(rs, j->renderer)
                          : strcmp(j->renderer, "builtin") != 0 &&
                                strcmp(j->renderer, "command") != 0)
        return 0;
    if (j->gpu && w->gpu_slots <= 0)
        return 0;
    const cJSON *feats = w->caps ? cJSON_GetObjectItemCaseSensitive(w->caps, "features") : NULL;
    const cJSON *f;
    cJSON_ArrayForEach(f, j->requires)
    {
        if (!cJSON_IsString(f) || !s_has(feats, f->valuestring))
            return 0;
    }
    return 1;
}

/* Whether a live worker other than w could take j and is not blocked for
 * it: a block only steers work away while somewhere else can do it. */
static int s_other_unblocked(struct master *m, const struct worker *w, struct job *j,
                             int64_t now)
{
    for (size_t i = 0; i < m->nworkers; i++) {
        const struct worker *o = m->workers[i];
        if (o != w && o->live && worker_can_run(o, j) && !job_blocks(j, o->name, now))
            return 1;
    }
    return 0;
}

/* Whether w has a free slot of the kind j needs right now, and is not
 * blocked for j. */
static int s_can_run(struct master *m, const struct worker *w, struct job *j, int64_t now)
{
    return job_dispatchable(j) && j->n_queued && !space_short(m, j->outputs_image) &&
           (j->gpu ? w->gpu_credit > 0 : w->credit > 0) && worker_can_run(w, j) &&
           (!job_blocks(j, w->name, now) || !s_other_unblocked(m, w, j, now));
}

/* Whether a live worker other than w can run j: only then does a task
 * that failed on w wait for someone else. */
static int s_others_can_run(struct master *m, const struct worker *w, struct job *j,
                            int64_t now)
{
    /* A worker blocked for the job does not count: it would refuse the task
     * that w leaves for it, and the task would wait for ever. */
    for (size_t i = 0; i < m->nworkers; i++) {
        const struct worker *o = m->workers[i];
        if (o != w && o->live && !o->quarantined && worker_can_run(o, j) &&
            !job_blocks(j, o->name, now))
            return 1;
    }
    return 0;
}

/* The first queued task of j for w. A task that last failed on w goes
 * elsewhere when another worker can run the job, and to w when none can. */
static int s_pick_in(struct master *m, struct job *j, struct worker *w, int64_t now,
                     int64_t wall, uint32_t *iout)
{
    int others = -1; /* s_others_can_run, asked only when it matters */
    for (uint32_t i = j->scan; i < j->ntasks; i++) {
        struct task *t = &j->tasks[i];
        if (t->state != TASK_QUEUED || t->retry_at_ms > wall)
            continue;
        if (t->last_failed[0] && strcmp(t->last_failed, w->name) == 0) {
            if (others < 0)
                others = s_others_can_run(m, w, j, now);
            if (others)
                continue; /* another worker will take it */
        }
        *iout = i;
        return 1;
    }
    return 0;
}

/* Picks the next task for w: of the jobs w can run, the highest priority
 * first and, among equals, the oldest. */
static int s_pick(struct master *m, struct worker *w, struct job **jout, uint32_t *iout)
{
    int64_t now = tsr_now_ms(), wall = tsr_wall_ms();
    int below = INT32_MAX; /* try priorities below this, highest first */
    for (;;) {
        int prio = -1;
        for (size_t i = 0; i < m->njobs; i++) {
            struct job *j = m->jobs[i];
            if (j->priority < below && j->priority > prio && s_can_run(m, w, j, now))
                prio = j->priority;
        }
        if (prio < 0)
            return 0;
        for (size_t i = 0; i < m->njobs; i++) {
            struct job *j = m->jobs[i];
            if (j->priority == prio && s_can_run(m, w, j, now) &&
                s_pick_in(m, j, w, now, wall, iout)) {
                *jout = j;
                return 1;
            }
        }
        below = prio;
    }
}

void workers_dispatch(struct master *m)
{
    int progress = 1;
    while (progress) {
        progress = 0;
        for (size_t i = 0; i < m->nworkers; i++) {
            struct worker *w = m->workers[i];
            if (!w->live || w->draining || w->leaving || w->quarantined ||
                (w->credit <= 0 && w->gpu_credit <= 0))
                continue;
            struct job *j;
            uint32_t idx;
            if (!s_pick(m, w, &j, &idx))
                continue;
            task_dispatch(m, j, idx, w);
            /* Advance the scan mark past dispatched tasks at its front. */
            while (j->scan < j->ntasks && j->tasks[j->scan].state != TASK_QUEUED)
                j->scan++;
            progress = 1;
        }
    }
}

/* Whether a live worker could take j's tasks but for drain or quarantine. */
static int s_would_take(struct master *m, const struct job *j)
{
    for (size_t i = 0; i < m->nworkers; i++) {
        struct worker w = *m->workers[i];
        w.draining = w.leaving = w.quarantined = 0;
        if (w.live && worker_can_run(&w, j))
            return 1;
    }
    return 0;
}

/* Why j's queued tasks cannot start, when no live worker can ever run them
 * ("no live worker has the blender renderer", "... the feature 'oidn'");
 * NULL when some live worker can, or nothing is queued. */
const char *workers_waiting_reason(struct master *m, const struct job *j, char *buf,
                                   size_t size)
{
    if (!j->n_queued || (j->state != JOB_QUEUED && j->state != JOB_RUNNING))
        return NULL;
    int live = 0, renderer = 0, gpu = 0;
    for (size_t i = 0; i < m->nworkers; i++) {
        const struct worker *w = m->workers[i];
        if (!w->live)
            continue;
        live++;
        if (worker_can_run(w, j))
            return NULL;
        const cJSON *rs = w->caps ? cJSON_GetObjectItemCaseSensitive(w->caps, "renderers")
                                  : NULL;
        renderer += s_has(rs, j->renderer);
        gpu += w->gpu_slots > 0;
    }
    if (!live)
        snprintf(buf, size, "no live worker");
    else if (s_would_take(m, j))
        snprintf(buf, size, "every live worker that could run it is draining or "
                            "quarantined");
    else if (!renderer)
        snprintf(buf, size, "no live worker has the %s renderer", j->renderer);
    else if (j->gpu && !gpu)
        snprintf(buf, size, "no live worker has a GPU");
    else {
        const cJSON *f;
        cJSON_ArrayForEach(f, j->requires)
        {
            int any = 0;
            for (size_t i = 0; i < m->nworkers && !any; i++) {
                const struct worker *w = m->workers[i];
                const cJSON *feats =
                    w->caps ? cJSON_GetObjectItemCaseSensitive(w->caps, "features") : NULL;
                any = w->live && cJSON_IsString(f) && s_has(feats, f->valuestring);
            }
            if (!any) {
                snprintf(buf, size, "no live worker has the feature '%s'",
                         cJSON_IsString(f) ? f->valuestring : "?");
                return buf;
            }
        }
        snprintf(buf, size, "no live worker has all of: renderer %s%s and the features "
                 "required", j->renderer, j->gpu ? ", a GPU" : "");
    }
    return buf;
}
