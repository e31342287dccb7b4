/*
 * jobs.c: jobs, from SUBMIT to their end.
 *
 * Job states:
 *
 *            first dispatch         every task done and every frame delivered
 *   QUEUED ----------------> RUNNING ------------------------------------> DONE
 *    |  ^                     |  ^  |  no task left to run, one or more failed
 *    |  |                     |  |  +------------------------------------> FAILED
 *    |  | resume       pause  |  | resume                                  |
 *    +--+-----> PAUSED <------+--+        retry (failed tasks requeued)    |
 *  (pause)                    RUNNING <-----------------------------------+
 *   QUEUED/RUNNING/PAUSED --(cancel)--> CANCELLED
 *
 * | transition                 | function          |
 * |----------------------------|-------------------|
 * | submit -> QUEUED           | s_create          |
 * | QUEUED -> RUNNING          | task_dispatch     |
 * | RUNNING -> DONE/FAILED     | job_check_done    |
 * | QUEUED/RUNNING <-> PAUSED  | job_pause         |
 * | FAILED -> RUNNING          | job_retry         |
 * | * -> CANCELLED             | job_cancel        |
 *
 * A paused job starts nothing new; what runs finishes. A job whose last
 * task ends while paused ends as it would have.
 *
 * A submission is checked in two halves: fields here on the reactor, the
 * archive (libarchive, perhaps gigabytes) on a pool thread; the job is
 * created and committed only when both pass, and SUBMITTED waits for the
 * commit.
 */
#include "master.h"

#include "tessera/error.h"
#include "tessera/frameset.h"
#include "tessera/log.h"
#include "tessera/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *job_state_name(int s)
{
    static const char *const names[] = {"queued", "running",   "done",
                                        "failed", "cancelled", "paused"};
    return s >= 0 && s <= JOB_PAUSED ? names[s] : "unknown";
}

struct job *job_find(struct master *m, uint64_t id)
{
    size_t lo = 0, hi = m->njobs;
    while (lo < hi) { /* jobs are kept in ascending id order */
        size_t mid = (lo + hi) / 2;
        if (m->jobs[mid]->id == id)
            return m->jobs[mid];
        if (m->jobs[mid]->id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

void job_free(struct job *j)
{
    if (!j)
        return;
    free(j->frame_set);
    free(j->command);
    free(j->frames);
    free(j->frame_group);
    free(j->tasks);
    free(j->frame_info);
    free(j->hubs);
    free(j->progress);
    free(j->blocks);
    cJSON_Delete(j->requires);
    free(j);
}

/* A tile grid must give every tile at least one pixel: a frame narrower
 * than its columns (or lower than its rows) would make empty regions that
 * every task of the job is refused for. Unknown sizes (0) pass: s_create
 * checks again once the archive told the size. */
static int s_check_grid(const struct job *j, char *err, size_t errlen)
{
    if ((j->width > 0 && j->tiles_x > j->width) ||
        (j->height > 0 && j->tiles_y > j->height)) {
        snprintf(err, errlen,
                 "a %dx%d tile grid has more tiles than the %dx%d frame has pixels",
                 j->tiles_x, j->tiles_y, j->width, j->height);
        return TSR_EINVAL;
    }
    return 0;
}

int job_build(struct job *j, char *err, size_t errlen)
{
    int *frames = NULL;
    size_t n = 0;
    int rc = tsr_frameset_parse(j->frame_set ? j->frame_set : "", &frames, &n, err, errlen);
    if (rc != 0)
        return rc;
    if (j->chunk < 1 || j->chunk > MASTER_MAX_CHUNK || j->tiles_x < 1 || j->tiles_y < 1 ||
        j->tiles_x > MASTER_MAX_TILES || j->tiles_y > MASTER_MAX_TILES) {
        free(frames);
        snprintf(err, errlen, "chunk or tile grid out of range");
        return TSR_EINVAL;
    }
    if ((rc = s_check_grid(j, err, errlen)) != 0) {
        free(frames);
        return rc;
    }
    /* A chunk is a run of up to `chunk` consecutive frame numbers: a
     * renderer renders F..G in one go, so a frame set with gaps or a step
     * breaks chunks at the gaps. */
    uint32_t *group_of = malloc((n ? n : 1) * sizeof *group_of);
    if (!group_of) {
        free(frames);
        return TSR_ENOMEM;
    }
    uint64_t groups = 0;
    for (size_t i = 0, run = 0; i < n; i++) {
        if (i == 0 || run == (size_t)j->chunk || frames[i] != frames[i - 1] + 1) {
            groups++;
            run = 0;
        }
        group_of[i] = (uint32_t)(groups - 1);
        run++;
    }
    uint64_t ntiles = (uint64_t)j->tiles_x * (uint64_t)j->tiles_y;
    if (groups * ntiles > MASTER_MAX_TASKS) {
        free(frames);
        free(group_of);
        snprintf(err, errlen, "job would have %llu tasks; the limit is %d",
                 (unsigned long long)(groups * ntiles), MASTER_MAX_TASKS);
        return TSR_ELIMIT;
    }
    j->frames = frames;
    j->frame_group = group_of;
    j->nframes = (uint32_t)n;
    j->ntasks = (uint32_t)(groups * ntiles);
    j->tasks = calloc(j->ntasks, sizeof *j->tasks);
    j->frame_info = calloc(j->nframes, sizeof *j->frame_info);
    j->progress = calloc(j->ntasks, sizeof *j->progress);
    if (!j->tasks || !j->frame_info || !j->progress)
        return TSR_ENOMEM;
    for (uint32_t f = 0; f < j->nframes; f++) {
        for (uint32_t t = 0; t < ntiles; t++) {
            struct task *tk = &j->tasks[group_of[f] * ntiles + t];
            if (tk->frame_count == 0)
                tk->frame_first = f;
            tk->frame_count++;
        }
    }
    for (uint32_t i = 0; i < j->ntasks; i++) {
        struct task *t = &j->tasks[i];
        t->version = TASK_RECORD_VERSION;
        t->state = TASK_QUEUED;
        t->tile = (uint16_t)(i % ntiles);
    }
    return 0;
}

static struct hub_count *s_hub(struct job *j, const char *hub)
{
    for (size_t i = 0; i < j->nhubs; i++)
        if (strcmp(j->hubs[i].hub, hub) == 0)
            return &j->hubs[i];
    struct hub_count *h = realloc(j->hubs, (j->nhubs + 1) * sizeof *h);
    if (!h)
        return NULL;
    j->hubs = h;
    h = &j->hubs[j->nhubs++];
    memset(h, 0, sizeof *h);
    snprintf(h->hub, sizeof h->hub, "%s", hub);
    return h;
}

void job_recount(struct job *j)
{
    j->n_queued = j->n_running = j->n_done = j->n_failed = 0;
    j->frames_done = 0;
    j->scan = j->ntasks;
    for (size_t i = 0; i < j->nhubs; i++)
        j->hubs[i].done = j->hubs[i].running = 0;
    uint32_t ntiles = (uint32_t)(j->tiles_x * j->tiles_y);
    for (uint32_t f = 0; f < j->nframes; f++)
        j->frame_info[f].tiles_done = 0;
    for (uint32_t i = 0; i < j->ntasks; i++) {
        struct task *t = &j->tasks[i];
        switch (t->state) {
        case TASK_QUEUED:
            j->n_queued++;
            if (i < j->scan)
                j->scan = i;
            break;
        case TASK_RUNNING:
        case TASK_VERIFYING:
            j->n_running++;
            break;
        case TASK_DONE:
            j->n_done++;
            for (uint32_t k = 0; k < t->frame_count; k++)
                j->frame_info[t->frame_first + k].tiles_done++;
            break;
        case TASK_FAILED:
            j->n_failed++;
            break;
        default:
            break;
        }
        if (t->hub[0] && (t->state == TASK_DONE || t->state == TASK_RUNNING ||
                          t->state == TASK_VERIFYING)) {
            struct hub_count *h = s_hub(j, t->hub);
            if (h && t->state == TASK_DONE)
                h->done++;
            else if (h)
                h->running++;
        }
    }
    for (uint32_t f = 0; f < j->nframes; f++) {
        struct frame *fr = &j->frame_info[f];
        if (fr->state == FRAME_DONE)
            j->frames_done++;
        else if (fr->tiles_done == ntiles && !j->outputs_image)
            fr->state = FRAME_DONE, j->frames_done++;
    }
}

static int s_active(int state)
{
    return state == TASK_RUNNING || state == TASK_VERIFYING;
}

/* Moves a task between states, keeping the job's counters in step. Every
 * change of task->state goes through here; the task's hub must be set
 * before it becomes active and cleared only after. */
void task_set_state(struct job *j, uint32_t idx, int state)
{
    struct task *t = &j->tasks[idx];
    int old = t->state;
    if (old == state)
        return;
    struct hub_count *h = t->hub[0] ? s_hub(j, t->hub) : NULL;
    uint32_t *count[] = {&j->n_queued, &j->n_running, &j->n_running, &j->n_done,
                         &j->n_failed, NULL};
    if (old <= TASK_CANCELLED && count[old])
        (*count[old])--;
    if (state <= TASK_CANCELLED && count[state])
        (*count[state])++;
    if (h && s_active(old) && !s_active(state) && h->running)
        h->running--;
    if (s_active(old) && !s_active(state)) {
        j->progress_sum -= j->progress[idx];
        j->progress[idx] = 0;
    }
    if (h && !s_active(old) && s_active(state))
        h->running++;
    if (h && old == TASK_DONE && h->done)
        h->done--;
    if (h && state == TASK_DONE)
        h->done++;
    if (state == TASK_QUEUED && idx < j->scan)
        j->scan = idx;
    t->state = (uint8_t)state;
}

static void s_finish(struct master *m, struct job *j, int state, const char *why)
{
    j->state = (uint8_t)state;
    j->finished_ms = tsr_wall_ms();
    if (why)
        snprintf(j->error, sizeof j->error, "%s", why);
    store_put_job(m, j);
    cJSON *ev = cJSON_CreateObject();
    cJSON_AddStringToObject(ev, "state", job_state_name(state));
    store_event(m, "job_ended", j->id, ev);
    cJSON_Delete(ev);
    tsr_log(TSR_LOG_INFO, "jobs", "job %llu '%s' %s", (unsigned long long)j->id, j->name,
            job_state_name(state));
}

int job_ended(const struct job *j)
{
    return j->state == JOB_DONE || j->state == JOB_FAILED || j->state == JOB_CANCELLED;
}

int job_dispatchable(const struct job *j)
{
    /* A job whose archive was found damaged waits for it (scrub.c). */
    return (j->state == JOB_QUEUED || j->state == JOB_RUNNING) && !j->archive_lost;
}

void job_check_done(struct master *m, struct job *j)
{
    if (job_ended(j))
        return;
    if (j->n_queued || j->n_running)
        return;
    /* A frame being assembled, or whose tiles are all in and that waits
     * (for space, or a backoff), is work still going on. */
    uint32_t ntiles = (uint32_t)(j->tiles_x * j->tiles_y);
    for (uint32_t f = 0; f < j->nframes; f++) {
        const struct frame *fr = &j->frame_info[f];
        if (fr->state == FRAME_ASSEMBLING ||
            (j->outputs_image && fr->state == FRAME_PENDING && fr->tiles_done == ntiles))
            return;
    }
    if (j->n_failed == 0 && j->frames_done == j->nframes) {
        s_finish(m, j, JOB_DONE, NULL);
    } else {
        /* Say why in the job itself: the first failed task's last error,
         * else the first failed frame's. */
        char first[200] = "";
        for (uint32_t i = 0; i < j->ntasks && !first[0]; i++)
            if (j->tasks[i].state == TASK_FAILED)
                snprintf(first, sizeof first, "%s", j->tasks[i].error);
        for (uint32_t f = 0; f < j->nframes && !first[0]; f++)
            if (j->frame_info[f].state == FRAME_FAILED)
                snprintf(first, sizeof first, "frame %d: %.170s", j->frames[f],
                         j->frame_info[f].error);
        char why[256];
        snprintf(why, sizeof why, "%u of %u tasks failed, %u of %u frames delivered%s%.160s",
                 j->n_failed, j->ntasks, j->frames_done, j->nframes, first[0] ? "; " : "",
                 first);
        s_finish(m, j, JOB_FAILED, why);
    }
}

void job_cancel(struct master *m, struct job *j)
{
    if (job_ended(j))
        return;
    for (uint32_t i = 0; i < j->ntasks; i++) {
        struct task *t = &j->tasks[i];
        if (t->state == TASK_RUNNING || t->state == TASK_VERIFYING) {
            struct worker *w = worker_by_name(m, t->worker);
            if (w) {
                worker_remove_run(w, t->attempt);
                if (w->peer_len) {
                    cJSON *h = cJSON_CreateObject();
                    cJSON_AddNumberToObject(h, "attempt", (double)t->attempt);
                    master_send(m, m->workers_sock, w->peer, w->peer_len, "CANCEL", h,
                                NULL, 0);
                    cJSON_Delete(h);
                }
            }
            t->attempt = 0;
        }
        if (t->state == TASK_QUEUED || t->state == TASK_RUNNING ||
            t->state == TASK_VERIFYING) {
            task_set_state(j, i, TASK_CANCELLED);
            store_put_task(m, j, i);
        }
    }
    s_finish(m, j, JOB_CANCELLED, "cancelled");
}

int job_pause(struct master *m, struct job *j, int pause)
{
    if (job_ended(j))
        return TSR_ESTATE;
    if (pause && j->state != JOB_PAUSED)
        j->state = JOB_PAUSED;
    else if (!pause && j->state == JOB_PAUSED)
        j->state = j->started_ms ? JOB_RUNNING : JOB_QUEUED;
    else
        return 0;
    store_put_job(m, j);
    store_event(m, pause ? "job_paused" : "job_resumed", j->id, NULL);
    return 0;
}

int job_retry(struct master *m, struct job *j, const uint32_t *tasks, size_t ntasks,
              uint32_t *requeued)
{
    *requeued = 0;
    if (j->state == JOB_CANCELLED || j->state == JOB_DONE)
        return TSR_ESTATE;
    for (size_t k = 0; k < ntasks; k++)
        if (tasks[k] >= j->ntasks ||
            (j->tasks[tasks[k]].state != TASK_FAILED && j->tasks[tasks[k]].state != TASK_DONE))
            return TSR_EINVAL;
    for (uint32_t i = 0; i < j->ntasks; i++) {
        int chosen = ntasks == 0;
        for (size_t k = 0; k < ntasks && !chosen; k++)
            chosen = tasks[k] == i;
        struct task *t = &j->tasks[i];
        if (!chosen || t->state != TASK_FAILED)
            continue;
        t->failures = 0;
        t->retry_at_ms = 0;
        task_set_state(j, i, TASK_QUEUED);
        store_put_task(m, j, i);
        (*requeued)++;
    }
    /* A frame whose assembly failed is rendered again: its tiles' tasks go
     * back to the queue (when the request names tasks, only those). */
    uint32_t ntiles = (uint32_t)(j->tiles_x * j->tiles_y);
    int was_failed = j->state == JOB_FAILED;
    for (uint32_t f = 0; f < j->nframes; f++) {
        struct frame *fr = &j->frame_info[f];
        if (fr->state != FRAME_FAILED)
            continue;
        fr->state = FRAME_PENDING;
        store_put_frame(m, j, f);
        uint32_t group = j->frame_group[f];
        for (uint32_t t = 0; t < ntiles; t++) {
            uint32_t tidx = group * ntiles + t;
            int chosen = ntasks == 0;
            for (size_t k = 0; k < ntasks && !chosen; k++)
                chosen = tasks[k] == tidx;
            if (chosen && j->tasks[tidx].state == TASK_DONE) {
                task_rerender(m, j, tidx, "tessera retry: its frame failed to assemble");
                (*requeued)++;
            }
        }
    }
    if (was_failed)
        j->state = JOB_FAILED; /* task_rerender reopened it; decided below */
    if (*requeued && j->state == JOB_FAILED) {
        j->state = JOB_RUNNING;
        j->finished_ms = 0;
        j->error[0] = '\0';
        frames_resume(m, j);
    }
    store_put_job(m, j);
    cJSON *ev = cJSON_CreateObject();
    cJSON_AddNumberToObject(ev, "tasks", *requeued);
    store_event(m, "job_retried", j->id, ev);
    cJSON_Delete(ev);
    job_check_done(m, j);
    return 0;
}

/* Counts a failure of worker on j; returns 1 when the worker is now
 * blocked for the job. */
static struct block *s_block(struct job *j, const char *worker)
{
    for (size_t i = 0; i < j->nblocks; i++)
        if (strcmp(j->blocks[i].worker, worker) == 0)
            return &j->blocks[i];
    struct block *b = realloc(j->blocks, (j->nblocks + 1) * sizeof *b);
    if (!b)
        return NULL;
    j->blocks = b;
    b = &j->blocks[j->nblocks++];
    memset(b, 0, sizeof *b);
    snprintf(b->worker, sizeof b->worker, "%s", worker);
    return b;
}

int job_note_failure(struct master *m, struct job *j, const char *worker)
{
    struct block *b = s_block(j, worker);
    if (!b)
        return 0;
    b->failures++;
    if (b->failures >= (uint32_t)m->cfg.block_after && !b->until_ms) {
        b->until_ms = tsr_now_ms() + m->cfg.block_ms;
        return 1;
    }
    return 0;
}

int job_blocks(struct job *j, const char *worker, int64_t now_ms)
{
    for (size_t i = 0; i < j->nblocks; i++) {
        struct block *b = &j->blocks[i];
        if (strcmp(b->worker, worker) != 0 || !b->until_ms)
            continue;
        if (now_ms < b->until_ms)
            return 1;
        b->until_ms = 0; /* forgiven: a clean slate */
        b->failures = 0;
    }
    return 0;
}

static cJSON *s_pair(int a, int b)
{
    cJSON *arr = cJSON_CreateArray();
    cJSON_AddItemToArray(arr, cJSON_CreateNumber(a));
    cJSON_AddItemToArray(arr, cJSON_CreateNumber(b));
    return arr;
}

cJSON *job_to_json(const struct job *j)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)j->id);
    cJSON_AddStringToObject(o, "name", j->name);
    cJSON_AddStringToObject(o, "owner", j->owner);
    cJSON_AddStringToObject(o, "state", job_state_name(j->state));
    cJSON_AddStringToObject(o, "renderer", j->renderer);
    cJSON_AddNumberToObject(o, "priority", j->priority);
    cJSON_AddStringToObject(o, "archive", j->archive);
    cJSON_AddStringToObject(o, "scene", j->scene);
    cJSON_AddStringToObject(o, "frame_set", j->frame_set);
    cJSON_AddItemToObject(o, "tiles", s_pair(j->tiles_x, j->tiles_y));
    cJSON_AddNumberToObject(o, "chunk", j->chunk);
    cJSON_AddNumberToObject(o, "width", j->width);
    cJSON_AddNumberToObject(o, "height", j->height);
    cJSON_AddStringToObject(o, "outputs", j->outputs_image ? "image" : "none");
    cJSON_AddBoolToObject(o, "gpu", j->gpu);
    if (j->requires)
        cJSON_AddItemToObject(o, "requires", cJSON_Duplicate(j->requires, 1));
    cJSON *fr = cJSON_AddObjectToObject(o, "frames");
    cJSON_AddNumberToObject(fr, "total", j->nframes);
    cJSON_AddNumberToObject(fr, "done", j->frames_done);
    cJSON *ts = cJSON_AddObjectToObject(o, "tasks");
    cJSON_AddNumberToObject(ts, "total", j->ntasks);
    cJSON_AddNumberToObject(ts, "done", j->n_done);
    cJSON_AddNumberToObject(ts, "running", j->n_running);
    cJSON_AddNumberToObject(ts, "queued", j->n_queued);
    cJSON_AddNumberToObject(ts, "failed", j->n_failed);
    cJSON *hubs = cJSON_AddObjectToObject(o, "hubs");
    for (size_t i = 0; i < j->nhubs; i++) {
        cJSON *h = cJSON_AddObjectToObject(hubs, j->hubs[i].hub);
        cJSON_AddNumberToObject(h, "done", j->hubs[i].done);
        cJSON_AddNumberToObject(h, "running", j->hubs[i].running);
    }
    cJSON_AddNumberToObject(o, "created_ms", (double)j->created_ms);
    cJSON_AddNumberToObject(o, "started_ms", (double)j->started_ms);
    cJSON_AddNumberToObject(o, "finished_ms", (double)j->finished_ms);
    double elapsed = 0, eta = -1;
    if (j->started_ms) {
        int64_t end = j->finished_ms ? j->finished_ms : tsr_wall_ms();
        elapsed = (double)(end - j->started_ms) / 1000.0;
        /* Progress in task units: a tiled frame counts as it fills in. */
        if (j->n_done > 0 && j->n_done < j->ntasks && elapsed > 0)
            eta = elapsed / j->n_done * (j->ntasks - j->n_done - j->n_failed);
        else if (j->n_done == j->ntasks)
            eta = 0;
    }
    /* Work done in task units, running tasks counted by their renderer's
     * own progress, so a bar moves before the first frame is in. */
    double progress = j->ntasks ? (100.0 * j->n_done + (double)j->progress_sum) / j->ntasks
                                : 0;
    cJSON_AddNumberToObject(o, "progress", progress);
    cJSON_AddNumberToObject(o, "elapsed_s", elapsed);
    cJSON_AddNumberToObject(o, "eta_s", eta);
    cJSON_AddStringToObject(o, "error", j->error);
    /* The failed tasks (the first 20) with their last error, so a person
     * sees why without reading the master's log. */
    cJSON *ft = cJSON_AddArrayToObject(o, "failed_tasks");
    for (uint32_t i = 0, n = 0; i < j->ntasks && n < 20 && j->n_failed; i++) {
        const struct task *t = &j->tasks[i];
        if (t->state != TASK_FAILED)
            continue;
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "task", i);
        cJSON_AddNumberToObject(e, "frame_start", j->frames[t->frame_first]);
        cJSON_AddNumberToObject(e, "frame_end", j->frames[t->frame_first + t->frame_count - 1]);
        cJSON_AddNumberToObject(e, "tile", t->tile);
        cJSON_AddNumberToObject(e, "attempts", t->dispatches);
        cJSON_AddStringToObject(e, "error", t->error);
        cJSON_AddItemToArray(ft, e);
        n++;
    }
    /* Frames that failed or wait (the first 20), with the reason. */
    cJSON *ff = cJSON_AddArrayToObject(o, "frame_problems");
    for (uint32_t f = 0, n = 0; f < j->nframes && n < 20; f++) {
        const struct frame *fr = &j->frame_info[f];
        if (fr->state == FRAME_DONE || !fr->error[0])
            continue;
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "frame", j->frames[f]);
        cJSON_AddStringToObject(e, "state", frame_state_name(fr->state));
        cJSON_AddStringToObject(e, "error", fr->error);
        cJSON_AddItemToArray(ff, e);
        n++;
    }
    cJSON *bl = cJSON_AddArrayToObject(o, "blocked_workers");
    int64_t now = tsr_now_ms();
    for (size_t i = 0; i < j->nblocks; i++)
        if (j->blocks[i].until_ms > now)
            cJSON_AddItemToArray(bl, cJSON_CreateString(j->blocks[i].worker));
    return o;
}

/* ---- SUBMIT ---- */

/* Checks SUBMIT's fields and fills a job that is not yet stored. */
static int s_parse_submit(struct master *m, const cJSON *h, struct job *j, char *err,
                          size_t errlen)
{
    const char *archive = NULL, *name = "job", *renderer = "builtin", *scene = NULL,
               *frames = NULL, *command = NULL, *outputs = "image";
    int64_t chunk = 1, priority = 50, maxf = m->cfg.default_max_failures,
            timeout = m->cfg.default_timeout_s, stall = MASTER_DEFAULT_STALL_S;
    int rc = tsr_hdr_hash(h, "archive", &archive, err, errlen);
    if (!rc) rc = tsr_hdr_str_opt(h, "name", MASTER_NAME_MAX, &name, err, errlen);
    if (!rc) rc = tsr_hdr_str_opt(h, "renderer", 15, &renderer, err, errlen);
    if (!rc) rc = tsr_hdr_str_opt(h, "scene", MASTER_PATH_MAX, &scene, err, errlen);
    if (!rc) rc = tsr_hdr_str(h, "frames", 4096, &frames, err, errlen);
    if (!rc) rc = tsr_hdr_str_opt(h, "command", MASTER_COMMAND_MAX, &command, err, errlen);
    if (!rc) rc = tsr_hdr_str_opt(h, "outputs", 15, &outputs, err, errlen);
    if (!rc) rc = tsr_hdr_int_opt(h, "chunk", 1, MASTER_MAX_CHUNK, &chunk, err, errlen);
    if (!rc) rc = tsr_hdr_int_opt(h, "priority", 0, 100, &priority, err, errlen);
    if (!rc) rc = tsr_hdr_int_opt(h, "max_attempts", 1, 100, &maxf, err, errlen);
    if (!rc) rc = tsr_hdr_int_opt(h, "timeout_s", 1, 7 * 24 * 3600, &timeout, err, errlen);
    if (!rc) rc = tsr_hdr_int_opt(h, "stall_s", 0, 7 * 24 * 3600, &stall, err, errlen);
    if (rc)
        return rc;
    int64_t tiles[2] = {1, 1}, size[2] = {0, 0};
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(h, "tiles");
    if (t) {
        for (int i = 0; i < 2; i++) {
            const cJSON *v = cJSON_IsArray(t) ? cJSON_GetArrayItem(t, i) : NULL;
            if (cJSON_GetArraySize(t) != 2 || !cJSON_IsNumber(v) || v->valuedouble < 1 ||
                v->valuedouble > MASTER_MAX_TILES || v->valuedouble != (int)v->valuedouble) {
                snprintf(err, errlen, "field 'tiles' must be [columns, rows], each 1..%d",
                         MASTER_MAX_TILES);
                return TSR_EPROTO;
            }
            tiles[i] = (int64_t)v->valuedouble;
        }
    }
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(h, "size");
    if (s && !cJSON_IsNull(s)) {
        for (int i = 0; i < 2; i++) {
            const cJSON *v = cJSON_IsArray(s) ? cJSON_GetArrayItem(s, i) : NULL;
            if (cJSON_GetArraySize(s) != 2 || !cJSON_IsNumber(v) || v->valuedouble < 1 ||
                v->valuedouble > 32768 || v->valuedouble != (int)v->valuedouble) {
                snprintf(err, errlen, "field 'size' must be [width, height], each 1..32768");
                return TSR_EPROTO;
            }
            size[i] = (int64_t)v->valuedouble;
        }
    }
    if (strcmp(renderer, "builtin") != 0 && strcmp(renderer, "command") != 0 &&
        strcmp(renderer, "blender") != 0) {
        snprintf(err, errlen, "unknown renderer '%s' (builtin, blender, command)", renderer);
        return TSR_EINVAL;
    }
    int gpu = 0;
    const char *cdev = "";
    if (tsr_hdr_bool_opt(h, "gpu", &gpu, err, errlen) ||
        tsr_hdr_str_opt(h, "cycles_device", 15, &cdev, err, errlen))
        return TSR_EPROTO;
    if (cdev[0] && strcmp(cdev, "CPU") != 0 && strcmp(cdev, "CUDA") != 0 &&
        strcmp(cdev, "OPTIX") != 0) {
        snprintf(err, errlen, "cycles device '%s' is not CPU, CUDA or OPTIX", cdev);
        return TSR_EINVAL;
    }
    if (cdev[0] && strcmp(renderer, "blender") != 0) {
        snprintf(err, errlen, "a cycles device is for the blender renderer");
        return TSR_EINVAL;
    }
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(h, "requires");
    if (req && !cJSON_IsNull(req)) {
        const cJSON *f;
        int n = 0;
        if (!cJSON_IsArray(req))
            n = -1;
        cJSON_ArrayForEach(f, req)
        {
            if (n < 0 || !cJSON_IsString(f) || !f->valuestring[0] ||
                strlen(f->valuestring) > 31 || ++n > 16)
                n = -1;
        }
        if (n < 0) {
            snprintf(err, errlen, "field 'requires' must be at most 16 feature names "
                                  "of 1..31 characters");
            return TSR_EPROTO;
        }
    }
    if (strcmp(outputs, "image") != 0 && strcmp(outputs, "none") != 0) {
        snprintf(err, errlen, "field 'outputs' must be 'image' or 'none'");
        return TSR_EINVAL;
    }
    if (strcmp(renderer, "command") == 0 && (!command || !command[0])) {
        snprintf(err, errlen, "the command renderer needs a command template");
        return TSR_EINVAL;
    }
    if (!scene && strcmp(renderer, "builtin") == 0)
        scene = "scene.json";
    j->outputs_image = strcmp(outputs, "image") == 0;
    if (strcmp(renderer, "builtin") != 0 && (j->outputs_image || tiles[0] * tiles[1] > 1) &&
        size[0] == 0) {
        snprintf(err, errlen, "the %s renderer needs the frame size (--size WxH) "
                              "for images or tiles", renderer);
        return TSR_EINVAL;
    }
    if (strcmp(renderer, "blender") == 0 && (!scene || !scene[0])) {
        snprintf(err, errlen, "the blender renderer needs the .blend file (--scene)");
        return TSR_EINVAL;
    }
    j->gpu = gpu;
    snprintf(j->cycles_device, sizeof j->cycles_device, "%s", cdev);
    j->requires = req && cJSON_IsArray(req) && cJSON_GetArraySize(req) > 0
                      ? cJSON_Duplicate(req, 1)
                      : NULL;
    if (scene && (scene[0] == '/' || strstr(scene, ".."))) {
        snprintf(err, errlen, "scene path '%s' must be relative, without '..'", scene);
        return TSR_EUNSAFE;
    }
    uint64_t asize = 0;
    if (!store_has_blob(m, archive, &asize)) {
        snprintf(err, errlen, "archive %.12s is not on the master; upload it first", archive);
        return TSR_ENOTFOUND;
    }
    snprintf(j->name, sizeof j->name, "%s", name);
    snprintf(j->renderer, sizeof j->renderer, "%s", renderer);
    snprintf(j->scene, sizeof j->scene, "%s", scene ? scene : "");
    snprintf(j->archive, sizeof j->archive, "%s", archive);
    j->archive_size = asize;
    j->frame_set = strdup(frames);
    j->command = command ? strdup(command) : NULL;
    j->chunk = (int)chunk;
    j->priority = (int)priority;
    j->max_failures = (int)maxf;
    j->timeout_s = (int)timeout;
    j->stall_s = (int)stall;
    j->tiles_x = (int)tiles[0];
    j->tiles_y = (int)tiles[1];
    j->width = (int)size[0];
    j->height = (int)size[1];
    /* Parse the frame set now, on the reactor: it is bounded and quick, and a
     * bad set should not cost an archive check. */
    return job_build(j, err, errlen);
}

void clients_on_submit(struct master *m, struct tsr_msg *msg)
{
    int64_t rid = -1;
    char err[512] = "";
    tsr_hdr_int_opt(msg->hdr, "rid", 0, INT64_MAX / 2, &rid, NULL, 0);
    if (store_nearly_full(m, 80, err, sizeof err) || space_refuse(m, err, sizeof err)) {
        master_send_error(m, m->clients, msg->peer, msg->peer_len, "SUBMIT", rid, TSR_EFULL,
                          err);
        return;
    }
    struct job *j = calloc(1, sizeof *j);
    int rc = j ? s_parse_submit(m, msg->hdr, j, err, sizeof err) : TSR_ENOMEM;
    if (rc != 0) {
        master_send_error(m, m->clients, msg->peer, msg->peer_len, "SUBMIT", rid, rc, err);
        job_free(j);
        return;
    }
    /* Its records go in with one commit: make room before that cycle. */
    uint64_t need = (uint64_t)j->ntasks * 700 + (uint64_t)j->nframes * 600;
    if (!store_fits(m, need)) {
        snprintf(err, sizeof err, "a job of %u tasks does not fit the master's state "
                 "database (--map-max %llu MiB)", j->ntasks,
                 (unsigned long long)(m->cfg.map_max >> 20));
        master_send_error(m, m->clients, msg->peer, msg->peer_len, "SUBMIT", rid, TSR_EFULL,
                          err);
        job_free(j);
        return;
    }
    m->map_need += need;
    struct pool_req *req = calloc(1, sizeof *req);
    req->kind = POOL_CHECK_ARCHIVE;
    memcpy(req->peer, msg->peer, msg->peer_len);
    req->peer_len = msg->peer_len;
    req->rid = rid;
    snprintf(req->hash, sizeof req->hash, "%s", j->archive);
    blob_path(m, j->archive, req->path, sizeof req->path);
    snprintf(req->scene, sizeof req->scene, "%s", j->scene);
    req->want_resolution = strcmp(j->renderer, "builtin") == 0;
    req->ctx = cJSON_Duplicate(msg->hdr, 1);
    snprintf(req->user, sizeof req->user, "%s", msg->user); /* the job's owner */
    job_free(j); /* rebuilt from ctx once the archive passes */
    pool_submit(m, req);
}

/* Creates the job once its archive passed the check; replies after commit. */
static void s_create(struct master *m, struct pool_req *req)
{
    char err[512] = "";
    struct job *j = calloc(1, sizeof *j);
    int rc = j ? s_parse_submit(m, req->ctx, j, err, sizeof err) : TSR_ENOMEM;
    if (rc == 0 && req->want_resolution) {
        j->width = req->width;
        j->height = req->height;
    }
    if (rc == 0 && (j->width < 0 || j->height < 0)) {
        rc = TSR_ESCENE;
        snprintf(err, sizeof err, "scene has no usable resolution");
    }
    if (rc == 0)
        rc = s_check_grid(j, err, sizeof err);
    if (rc != 0) {
        master_send_error(m, m->clients, req->peer, req->peer_len, "SUBMIT", req->rid, rc,
                          err);
        job_free(j);
        return;
    }
    j->id = m->next_job++;
    j->state = JOB_QUEUED;
    j->created_ms = tsr_wall_ms();
    snprintf(j->owner, sizeof j->owner, "%s", req->user);
    job_recount(j);
    if (m->njobs == m->capjobs) {
        m->capjobs = m->capjobs ? m->capjobs * 2 : 16;
        m->jobs = realloc(m->jobs, m->capjobs * sizeof *m->jobs);
    }
    m->jobs[m->njobs++] = j;
    store_put_job(m, j);
    for (uint32_t i = 0; i < j->ntasks; i++)
        store_put_task(m, j, i);
    store_put_counters(m);
    cJSON *ev = cJSON_CreateObject();
    cJSON_AddStringToObject(ev, "name", j->name);
    cJSON_AddNumberToObject(ev, "tasks", j->ntasks);
    cJSON_AddNumberToObject(ev, "frames", j->nframes);
    cJSON_AddStringToObject(ev, "by", j->owner);
    store_event(m, "job_submitted", j->id, ev);
    cJSON_Delete(ev);
    tsr_log(TSR_LOG_INFO, "jobs", "job %llu '%s': %u frames, %u tasks (%dx%d tiles, chunk %d)",
            (unsigned long long)j->id, j->name, j->nframes, j->ntasks, j->tiles_x,
            j->tiles_y, j->chunk);
    cJSON *h = cJSON_CreateObject();
    cJSON_AddNumberToObject(h, "rid", (double)req->rid);
    cJSON_AddNumberToObject(h, "id", (double)j->id);
    master_send(m, m->clients, req->peer, req->peer_len, "SUBMITTED", h, NULL, 0);
    cJSON_Delete(h);
}

void jobs_on_archive_checked(struct master *m, struct pool_req *req)
{
    if (req->rc != 0) {
        master_send_error(m, m->clients, req->peer, req->peer_len, "SUBMIT", req->rid,
                          req->rc, req->err);
        return;
    }
    s_create(m, req);
}
