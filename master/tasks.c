/*
 * tasks.c: the task state machine (diagram in master.h) and the frames that
 * tasks fill in.
 *
 * | transition                      | function        |
 * |---------------------------------|-----------------|
 * | QUEUED -> RUNNING               | task_dispatch   |
 * | RUNNING -> VERIFYING            | workers.c RESULT|
 * | VERIFYING -> DONE               | task_verified   |
 * | RUNNING/VERIFYING -> QUEUED     | task_requeue    |
 * | RUNNING/VERIFYING -> QUEUED or FAILED (failure) | task_fail |
 *
 * A frame's state follows its tiles: when the last tile of a frame is
 * verified the frame goes to ASSEMBLING (a pool job), then DONE.
 */
#include "master.h"

#include "tessera/error.h"
#include "tessera/log.h"
#include "tessera/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *task_state_name(int s)
{
    static const char *const names[] = {"queued", "running", "verifying",
                                        "done",   "failed",  "cancelled"};
    return s >= 0 && s <= TASK_CANCELLED ? names[s] : "unknown";
}

const char *frame_state_name(int s)
{
    static const char *const names[] = {"pending", "assembling", "done", "failed"};
    return s >= 0 && s <= FRAME_FAILED ? names[s] : "unknown";
}

/* The pixel region of a tile: columns and rows split as evenly as integer
 * division allows, so the tiles cover the frame exactly. */
static struct tsr_region s_region(const struct job *j, int tile)
{
    struct tsr_region r = {0, 0, 0, 0};
    if (j->width <= 0 || j->height <= 0)
        return r;
    int tx = tile % j->tiles_x, ty = tile / j->tiles_x;
    r.x0 = (int)((int64_t)tx * j->width / j->tiles_x);
    r.x1 = (int)((int64_t)(tx + 1) * j->width / j->tiles_x);
    r.y0 = (int)((int64_t)ty * j->height / j->tiles_y);
    r.y1 = (int)((int64_t)(ty + 1) * j->height / j->tiles_y);
    return r;
}

static void s_event(struct master *m, const char *kind, const struct job *j, uint32_t idx,
                    const char *detail)
{
    const struct task *t = &j->tasks[idx];
    cJSON *ev = cJSON_CreateObject();
    cJSON_AddNumberToObject(ev, "task", idx);
    cJSON_AddNumberToObject(ev, "attempt", (double)t->attempt);
    cJSON_AddStringToObject(ev, "worker", t->worker);
    if (detail)
        cJSON_AddStringToObject(ev, "detail", detail);
    store_event(m, kind, j->id, ev);
    cJSON_Delete(ev);
}

void task_dispatch(struct master *m, struct job *j, uint32_t idx, struct worker *w)
{
    struct task *t = &j->tasks[idx];
    t->attempt = m->next_attempt++;
    t->dispatches++;
    t->dispatched_ms = tsr_wall_ms();
    snprintf(t->worker, sizeof t->worker, "%s", w->name);
    snprintf(t->hub, sizeof t->hub, "%s", w->hub);
    task_set_state(j, idx, TASK_RUNNING);
    store_put_task(m, j, idx);
    store_put_counters(m);
    s_event(m, "task_dispatched", j, idx, NULL); /* the audit: each attempt started */
    if (j->state == JOB_QUEUED) {
        j->state = JOB_RUNNING;
        j->started_ms = tsr_wall_ms();
        store_put_job(m, j);
    }
    if (w->nrunning == w->caprunning) {
        w->caprunning = w->caprunning ? w->caprunning * 2 : 8;
        w->running = realloc(w->running, w->caprunning * sizeof *w->running);
    }
    w->running[w->nrunning++] = (struct run_ref){t->attempt, j->id, idx};
    if (j->gpu)
        w->gpu_credit--;
    else
        w->credit--;

    struct tsr_region r = s_region(j, t->tile);
    cJSON *h = cJSON_CreateObject();
    cJSON_AddNumberToObject(h, "attempt", (double)t->attempt);
    cJSON_AddNumberToObject(h, "job", (double)j->id);
    cJSON_AddNumberToObject(h, "task", idx);
    cJSON_AddStringToObject(h, "renderer", j->renderer);
    cJSON_AddStringToObject(h, "archive", j->archive);
    cJSON_AddNumberToObject(h, "archive_size", (double)j->archive_size);
    cJSON_AddStringToObject(h, "scene", j->scene);
    cJSON_AddNumberToObject(h, "frame_start", j->frames[t->frame_first]);
    cJSON_AddNumberToObject(h, "frame_end", j->frames[t->frame_first + t->frame_count - 1]);
    cJSON *reg = cJSON_AddArrayToObject(h, "region");
    cJSON_AddItemToArray(reg, cJSON_CreateNumber(r.x0));
    cJSON_AddItemToArray(reg, cJSON_CreateNumber(r.y0));
    cJSON_AddItemToArray(reg, cJSON_CreateNumber(r.x1));
    cJSON_AddItemToArray(reg, cJSON_CreateNumber(r.y1));
    cJSON_AddNumberToObject(h, "width", j->width);
    cJSON_AddNumberToObject(h, "height", j->height);
    if (j->command)
        cJSON_AddStringToObject(h, "command", j->command);
    cJSON_AddStringToObject(h, "outputs", j->outputs_image ? "image" : "none");
    cJSON_AddNumberToObject(h, "timeout_s", j->timeout_s);
    cJSON_AddNumberToObject(h, "stall_s", j->stall_s);
    cJSON_AddBoolToObject(h, "gpu", j->gpu);
    if (j->cycles_device[0])
        cJSON_AddStringToObject(h, "cycles_device", j->cycles_device);
    if (j->requires)
        cJSON_AddItemToObject(h, "requires", cJSON_Duplicate(j->requires, 1));
    master_send(m, m->workers_sock, w->peer, w->peer_len, "TASK", h, NULL, 0);
    cJSON_Delete(h);
    tsr_log(TSR_LOG_DEBUG, "tasks", "job %llu task %u attempt %llu -> %s",
            (unsigned long long)j->id, idx, (unsigned long long)t->attempt, w->name);
}

/* Takes the attempt from its worker; a worker still connected is told to
 * stop it (CANCEL), so it frees the slot instead of finishing work whose
 * result would be refused. */
static void s_drop_from_worker(struct master *m, struct task *t)
{
    struct worker *w = worker_by_name(m, t->worker);
    if (!w)
        return;
    worker_remove_run(w, t->attempt);
    if (w->live && w->peer_len) {
        cJSON *h = cJSON_CreateObject();
        cJSON_AddNumberToObject(h, "attempt", (double)t->attempt);
        master_send(m, m->workers_sock, w->peer, w->peer_len, "CANCEL", h, NULL, 0);
        cJSON_Delete(h);
    }
}

void task_requeue(struct master *m, struct job *j, uint32_t idx, const char *why)
{
    struct task *t = &j->tasks[idx];
    if (t->state != TASK_RUNNING && t->state != TASK_VERIFYING)
        return;
    s_event(m, "task_requeued", j, idx, why);
    s_drop_from_worker(m, t);
    tsr_log(TSR_LOG_INFO, "tasks", "job %llu task %u attempt %llu on '%s' requeued: %s",
            (unsigned long long)j->id, idx, (unsigned long long)t->attempt, t->worker, why);
    task_set_state(j, idx, TASK_QUEUED);
    t->attempt = 0;
    t->worker[0] = t->hub[0] = '\0';
    snprintf(t->error, sizeof t->error, "%s", why);
    store_put_task(m, j, idx);
}

/*
 * What a failure class means for the task (doc/reliability.md):
 *   retry elsewhere  the worker or its run was at fault: queue again, and
 *                    prefer another worker;
 *   retry later      a transient condition (memory, time, the network):
 *                    queue again after a delay;
 *   fail fast        the scene itself is broken: no attempt can succeed, so
 *                    the task fails once a second worker confirms it (or no
 *                    other live worker can run the job), whatever attempts
 *                    are left. Until then it is only one worker's word: the
 *                    task goes to another worker, uncounted, and if that one
 *                    renders it the first is blamed as for a worker fault.
 * worker_fault counts the failure against the worker (blocking it for the
 * job, and towards quarantine); the scene's faults do not. counts says
 * whether the failure uses one of the task's attempts: the farm's own faults
 * (the master could not store an upload) never do, they only wait.
 */
enum { RETRY_ELSEWHERE, RETRY_LATER, FAIL_FAST };

static const struct {
    const char *cls;   /* class as the worker reports it */
    int action;        /* RETRY_ELSEWHERE, RETRY_LATER or FAIL_FAST */
    int delay_s;       /* for RETRY_LATER: how long to wait */
    int worker_fault;  /* counts against the worker */
    int counts;        /* uses one of the task's attempts */
} s_policy[] = {
    {"crash", RETRY_ELSEWHERE, 0, 1, 1},      {"exit", RETRY_ELSEWHERE, 0, 1, 1},
    {"bad_output", RETRY_ELSEWHERE, 0, 1, 1}, {"stall", RETRY_ELSEWHERE, 0, 1, 1},
    {"internal", RETRY_ELSEWHERE, 0, 1, 1},   {"missing_feature", RETRY_ELSEWHERE, 0, 1, 1},
    {"timeout", RETRY_LATER, 30, 1, 1},       {"oom", RETRY_LATER, 60, 1, 1},
    {"fetch", RETRY_LATER, 10, 0, 1},         {"upload", RETRY_LATER, 10, 0, 0},
    {"missing_asset", FAIL_FAST, 0, 0, 1},    {"bad_task", FAIL_FAST, 0, 0, 1},
    {"archive", FAIL_FAST, 0, 0, 1},
};

/* Remembers that w failed a task of job that another worker then rendered
 * (so the fault was w's, not the scene's); quarantines w when such faults
 * span quarantine_jobs distinct jobs within the window. A scene that fails
 * everywhere blames no worker. */
static void s_note_worker_failure(struct master *m, struct worker *w, uint64_t job)
{
    int64_t now = tsr_now_ms();
    memmove(&w->recent_jobs[1], &w->recent_jobs[0], 7 * sizeof w->recent_jobs[0]);
    memmove(&w->recent_ms[1], &w->recent_ms[0], 7 * sizeof w->recent_ms[0]);
    w->recent_jobs[0] = job;
    w->recent_ms[0] = now;
    uint64_t seen[8];
    int distinct = 0;
    for (int i = 0; i < 8; i++) {
        if (!w->recent_jobs[i] || now - w->recent_ms[i] > m->cfg.quarantine_window_ms)
            continue;
        int dup = 0;
        for (int k = 0; k < distinct; k++)
            dup |= seen[k] == w->recent_jobs[i];
        if (!dup)
            seen[distinct++] = w->recent_jobs[i];
    }
    if (distinct >= m->cfg.quarantine_jobs && !w->quarantined) {
        w->quarantined = 1;
        snprintf(w->quarantine_why, sizeof w->quarantine_why,
                 "failed tasks of %d jobs within %lld s", distinct,
                 (long long)(m->cfg.quarantine_window_ms / 1000));
        tsr_log(TSR_LOG_WARN, "tasks", "worker '%s' quarantined: %s", w->name,
                w->quarantine_why);
        cJSON *ev = cJSON_CreateObject();
        cJSON_AddStringToObject(ev, "worker", w->name);
        cJSON_AddStringToObject(ev, "detail", w->quarantine_why);
        store_event(m, "worker_quarantined", 0, ev);
        cJSON_Delete(ev);
    }
}

/* Whether a live worker other than the one named could run j's tasks: only
 * then is one worker's fail-fast verdict worth checking elsewhere. */
static int s_other_can_run(struct master *m, const struct job *j, const char *name)
{
    for (size_t i = 0; i < m->nworkers; i++) {
        const struct worker *o = m->workers[i];
        if (o->live && strcmp(o->name, name) != 0 && worker_can_run(o, j))
            return 1;
    }
    return 0;
}

/* Counts a failure against worker w for job j, blocking w for the job past
 * --block-after. */
static void s_blame(struct master *m, struct job *j, struct worker *w)
{
    if (!job_note_failure(m, j, w->name))
        return;
    tsr_log(TSR_LOG_WARN, "tasks", "worker '%s' blocked for job %llu after %d failures",
            w->name, (unsigned long long)j->id, m->cfg.block_after);
    cJSON *ev = cJSON_CreateObject();
    cJSON_AddStringToObject(ev, "worker", w->name);
    store_event(m, "worker_blocked", j->id, ev);
    cJSON_Delete(ev);
}

void task_fail(struct master *m, struct job *j, uint32_t idx, const char *cls,
               const char *why)
{
    struct task *t = &j->tasks[idx];
    if (t->state != TASK_RUNNING && t->state != TASK_VERIFYING)
        return;
    int action = RETRY_ELSEWHERE, delay_s = 0, fault = 1, counts = 1;
    for (size_t i = 0; i < sizeof s_policy / sizeof s_policy[0]; i++) {
        if (strcmp(s_policy[i].cls, cls) == 0) {
            action = s_policy[i].action;
            delay_s = s_policy[i].delay_s;
            fault = s_policy[i].worker_fault;
            counts = s_policy[i].counts;
        }
    }
    /* A fail-fast verdict is final only when a second worker gives one too,
     * or when nobody else could try. */
    int unconfirmed = 0;
    if (action == FAIL_FAST) {
        int confirmed = (t->flags & TASK_F_UNCONFIRMED) &&
                        strcmp(t->last_failed, t->worker) != 0;
        if (!confirmed && s_other_can_run(m, j, t->worker)) {
            unconfirmed = 1;
            action = RETRY_ELSEWHERE;
            counts = 0;
        }
    }
    char line[192];
    snprintf(line, sizeof line, "%s: %s", cls, why);
    s_event(m, "task_failed", j, idx, line);
    struct worker *w = worker_by_name(m, t->worker);
    if (w) {
        w->failed++;
        worker_remove_run(w, t->attempt);
        if (fault)
            s_blame(m, j, w);
        store_put_worker(m, w);
    }
    if (counts)
        t->failures++;
    if (unconfirmed)
        t->flags |= TASK_F_UNCONFIRMED;
    else
        t->flags &= (uint16_t)~TASK_F_UNCONFIRMED;
    snprintf(t->last_failed, sizeof t->last_failed, "%s", t->worker);
    snprintf(t->error, sizeof t->error, "%s", line);
    tsr_log(TSR_LOG_WARN, "tasks", "job %llu task %u attempt %llu on '%s' failed (%d/%d%s): %s",
            (unsigned long long)j->id, idx, (unsigned long long)t->attempt, t->worker,
            t->failures, j->max_failures,
            unconfirmed ? ", to be confirmed by another worker"
            : counts    ? ""
                        : ", not counted: the farm's fault",
            line);
    if (action == FAIL_FAST || t->failures >= j->max_failures) {
        task_set_state(j, idx, TASK_FAILED);
    } else {
        task_set_state(j, idx, TASK_QUEUED);
        t->worker[0] = t->hub[0] = '\0';
        t->retry_at_ms = action == RETRY_LATER ? tsr_wall_ms() + delay_s * 1000LL : 0;
    }
    t->attempt = 0;
    store_put_task(m, j, idx);
    job_check_done(m, j);
}

/* Gathers the verified pieces of frame fidx and hands them to the pool. */
static void s_assemble(struct master *m, struct job *j, uint32_t fidx)
{
    struct frame *f = &j->frame_info[fidx];
    uint32_t ntiles = (uint32_t)(j->tiles_x * j->tiles_y);
    uint32_t group = j->frame_group[fidx];
    uint32_t k = fidx - j->tasks[group * ntiles].frame_first;
    struct pool_req *req = calloc(1, sizeof *req);
    req->kind = POOL_ASSEMBLE;
    req->job = j->id;
    req->frame = fidx;
    req->width = j->width;
    req->height = j->height;
    req->npieces = ntiles;
    req->pieces = calloc(ntiles, sizeof *req->pieces);
    req->piece_hashes = calloc(ntiles, sizeof *req->piece_hashes);
    for (uint32_t t = 0; t < ntiles; t++) {
        uint32_t tidx = group * ntiles + t;
        if (store_get_piece(m, j->id, tidx, k, req->piece_hashes[t]) != 0) {
            /* No record of the piece: its tile is rendered again. */
            pool_req_free(req);
            task_rerender(m, j, tidx, "its piece of a frame has no record");
            return;
        }
        blob_path(m, req->piece_hashes[t], req->pieces[t], sizeof req->pieces[t]);
    }
    snprintf(req->path, sizeof req->path, "%s/blobs", m->cfg.data_dir);
    snprintf(req->path2, sizeof req->path2, "%s/blobs/tmp/frame-%llu-%u.exr",
             m->cfg.data_dir, (unsigned long long)j->id, fidx);
    req->bad_piece = -1;
    f->state = FRAME_ASSEMBLING;
    pool_submit(m, req);
}

void task_rerender(struct master *m, struct job *j, uint32_t idx, const char *why)
{
    struct task *t = &j->tasks[idx];
    if (t->state != TASK_DONE)
        return;
    char line[192];
    snprintf(line, sizeof line, "rendered again: %s", why);
    s_event(m, "task_requeued", j, idx, line);
    tsr_log(TSR_LOG_WARN, "tasks", "job %llu task %u %s", (unsigned long long)j->id, idx,
            line);
    for (uint32_t k = 0; k < t->frame_count; k++) {
        struct frame *f = &j->frame_info[t->frame_first + k];
        if (f->state == FRAME_DONE)
            continue; /* delivered already; the new piece is not needed */
        if (f->tiles_done)
            f->tiles_done--;
        f->state = FRAME_PENDING;
        f->tries = 0;
        f->retry_ms = 0;
        snprintf(f->error, sizeof f->error, "waiting for tile %u, %.130s", t->tile, line);
        store_put_frame(m, j, t->frame_first + k);
    }
    task_set_state(j, idx, TASK_QUEUED);
    t->attempt = 0;
    t->retry_at_ms = 0;
    t->worker[0] = t->hub[0] = '\0';
    snprintf(t->error, sizeof t->error, "%s", line);
    store_put_task(m, j, idx);
    if (j->state == JOB_FAILED) {
        j->state = JOB_RUNNING;
        j->finished_ms = 0;
        j->error[0] = '\0';
        store_put_job(m, j);
    }
}

void task_verified(struct master *m, struct job *j, uint32_t idx,
                   const char (*hashes)[TSR_HASH_HEX])
{
    struct task *t = &j->tasks[idx];
    struct worker *w = worker_by_name(m, t->worker);
    s_event(m, "task_accepted", j, idx, NULL);
    /* The last worker that failed it was wrong: the task renders. One whose
     * fail-fast verdict was unconfirmed is blamed now, as it was not when it
     * failed. */
    int lied = (t->flags & TASK_F_UNCONFIRMED) != 0;
    struct worker *lw = (t->failures || lied) && strcmp(t->last_failed, t->worker) != 0
                            ? worker_by_name(m, t->last_failed)
                            : NULL;
    if (lw) {
        if (lied)
            s_blame(m, j, lw);
        s_note_worker_failure(m, lw, j->id);
        store_put_worker(m, lw);
    }
    t->flags &= (uint16_t)~TASK_F_UNCONFIRMED;
    if (w) {
        w->done++;
        worker_remove_run(w, t->attempt);
        store_put_worker(m, w);
    }
    task_set_state(j, idx, TASK_DONE);
    t->error[0] = '\0';
    store_put_task(m, j, idx);
    uint32_t ntiles = (uint32_t)(j->tiles_x * j->tiles_y);
    for (uint32_t k = 0; k < t->frame_count; k++) {
        uint32_t fidx = t->frame_first + k;
        struct frame *f = &j->frame_info[fidx];
        if (hashes)
            store_put_piece(m, j->id, idx, k, hashes[k]);
        if (f->state == FRAME_DONE)
            continue; /* a tile rendered again for another of its frames */
        f->tiles_done++;
        snprintf(f->worker, sizeof f->worker, "%s", t->worker);
        snprintf(f->hub, sizeof f->hub, "%s", t->hub);
        f->render_ms += t->render_ms / (t->frame_count ? t->frame_count : 1);
        if (f->tiles_done < ntiles) {
            store_put_frame(m, j, fidx);
            continue;
        }
        if (!j->outputs_image) {
            f->state = FRAME_DONE;
            j->frames_done++;
            store_put_frame(m, j, fidx);
        } else {
            store_put_frame(m, j, fidx);
            s_assemble(m, j, fidx);
        }
    }
    job_check_done(m, j);
}

/* Waits out a backoff before frame fidx is assembled again. */
static void s_frame_backoff(struct master *m, struct job *j, uint32_t fidx, int64_t ms)
{
    struct frame *f = &j->frame_info[fidx];
    f->state = FRAME_PENDING;
    f->retry_ms = ms ? tsr_now_ms() + ms : 0;
    if (ms && (!m->frames_retry_ms || f->retry_ms < m->frames_retry_ms))
        m->frames_retry_ms = f->retry_ms;
    store_put_frame(m, j, fidx);
}

/*
 * An assembly came back. What a failure means:
 *   no space         the farm's fault: the frame waits for space (space.c
 *                    resumes it), nothing counts;
 *   a bad piece      a piece that is gone or does not match its hash: its
 *                    tile is rendered again (task_rerender);
 *   transient        a piece that could not be read, memory: retried with
 *                    backoff, FRAME_MAX_TRIES times in a row;
 *   anything else    (the pieces are sound but do not assemble, or the
 *                    transient failure persists) the frame fails, with its
 *                    reason in the frame and the job's error; `tessera
 *                    retry JOB` renders its tiles again.
 */
void frame_assembled(struct master *m, struct job *j, uint32_t fidx, int rc,
                     const char *err, const char *hash, uint64_t size,
                     const struct tsr_image_stats *stats, int bad_piece)
{
    struct frame *f = &j->frame_info[fidx];
    if (f->state != FRAME_ASSEMBLING)
        return;
    uint32_t ntiles = (uint32_t)(j->tiles_x * j->tiles_y);
    if (rc == TSR_EFULL) {
        tsr_log(TSR_LOG_WARN, "tasks", "job %llu frame %d: cannot assemble (%s); waiting "
                "for space", (unsigned long long)j->id, j->frames[fidx], err);
        snprintf(f->error, sizeof f->error, "waiting for space on the master: %s", err);
        /* space.c resumes it when room returns; the timer is a fallback. */
        s_frame_backoff(m, j, fidx, 0);
        m->frames_retry_ms = tsr_now_ms() + FRAME_RETRY_MS;
        return;
    }
    if (rc != 0 && bad_piece >= 0 && (uint32_t)bad_piece < ntiles) {
        uint32_t group = j->frame_group[fidx];
        uint32_t tidx = group * ntiles + (uint32_t)bad_piece;
        char piece[TSR_HASH_HEX], path[MASTER_PATH_MAX + 64];
        if (store_get_piece(m, j->id, tidx, fidx - j->tasks[group * ntiles].frame_first,
                            piece) == 0) {
            /* Forget it and move a bad copy aside: the new render's upload
             * must store it again, not be told the master has it. */
            store_forget_blob(m, piece);
            blob_path(m, piece, path, sizeof path);
            unlink(path);
        }
        f->state = FRAME_PENDING;
        task_rerender(m, j, tidx, err);
        job_check_done(m, j);
        return;
    }
    int transient = rc == TSR_EIO || rc == TSR_ENOMEM;
    if (rc != 0 && transient && f->tries + 1 < FRAME_MAX_TRIES) {
        int64_t wait = (int64_t)FRAME_BACKOFF_MS << f->tries;
        if (wait > FRAME_BACKOFF_MAX_MS)
            wait = FRAME_BACKOFF_MAX_MS;
        f->tries++;
        tsr_log(TSR_LOG_WARN, "tasks", "job %llu frame %d: assembly failed (%s); retry %d "
                "in %lld ms", (unsigned long long)j->id, j->frames[fidx], err, f->tries,
                (long long)wait);
        snprintf(f->error, sizeof f->error, "assembly retried (%d): %s", f->tries, err);
        s_frame_backoff(m, j, fidx, wait);
        return;
    }
    f->tries = 0;
    f->retry_ms = 0;
    cJSON *ev = cJSON_CreateObject();
    cJSON_AddNumberToObject(ev, "frame", j->frames[fidx]);
    if (rc == 0) {
        f->state = FRAME_DONE;
        f->error[0] = '\0';
        snprintf(f->hash, sizeof f->hash, "%s", hash);
        f->size = size;
        f->stats = *stats;
        j->frames_done++;
        store_put_blob(m, hash, size);
        cJSON_AddStringToObject(ev, "hash", hash);
        store_event(m, "frame_done", j->id, ev);
    } else {
        /* The pieces are there and sound, yet do not make a frame: a defect
         * of ours or of the disk. Say so where a person looks. */
        f->state = FRAME_FAILED;
        snprintf(f->error, sizeof f->error, "assembly failed: %s", err);
        cJSON_AddStringToObject(ev, "error", err);
        store_event(m, "frame_failed", j->id, ev);
        tsr_log(TSR_LOG_ERROR, "tasks", "job %llu frame %d: assembly failed: %s",
                (unsigned long long)j->id, j->frames[fidx], err);
    }
    cJSON_Delete(ev);
    store_put_frame(m, j, fidx);
    job_check_done(m, j);
}

void frames_resume(struct master *m, struct job *j)
{
    if (!j->outputs_image || job_ended(j))
        return;
    uint32_t ntiles = (uint32_t)(j->tiles_x * j->tiles_y);
    int64_t now = tsr_now_ms();
    for (uint32_t f = 0; f < j->nframes; f++) {
        struct frame *fr = &j->frame_info[f];
        if (fr->state != FRAME_PENDING || fr->tiles_done != ntiles)
            continue;
        if (fr->retry_ms > now) {
            if (!m->frames_retry_ms || fr->retry_ms < m->frames_retry_ms)
                m->frames_retry_ms = fr->retry_ms;
            continue;
        }
        fr->retry_ms = 0;
        s_assemble(m, j, f);
    }
}

void frame_reassemble(struct master *m, struct job *j, uint32_t fidx)
{
    uint32_t ntiles = (uint32_t)(j->tiles_x * j->tiles_y);
    if (j->outputs_image && j->frame_info[fidx].state == FRAME_PENDING &&
        j->frame_info[fidx].tiles_done == ntiles)
        s_assemble(m, j, fidx);
}
