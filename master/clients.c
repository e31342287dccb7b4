/*
 * clients.c: the client endpoint: what the tessera CLI asks of the master.
 *
 * Queries (STATUS, JOBS, WORKERS, FRAMES) read the in-memory caches; changes
 * (SUBMIT, CANCEL) write LMDB and answer after the commit. Every request
 * carries a `rid` that the reply echoes.
 */
#include "auth.h"
#include "master.h"

#include "tessera/error.h"
#include "tessera/log.h"
#include "tessera/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WORKERS_REPLY_MAX (192 * 1024) /* bytes of workers in one WORKERS reply */

static void s_reply(struct master *m, struct tsr_msg *msg, const char *cmd, int64_t rid,
                    cJSON *h)
{
    cJSON_AddNumberToObject(h, "rid", (double)rid);
    master_send(m, m->clients, msg->peer, msg->peer_len, cmd, h, NULL, 0);
    cJSON_Delete(h);
}

static struct job *s_job_arg(struct master *m, struct tsr_msg *msg, int64_t rid)
{
    char err[256];
    int64_t id = 0;
    if (tsr_hdr_int(msg->hdr, "job", 1, INT64_MAX / 2, &id, err, sizeof err) != 0) {
        master_send_error(m, m->clients, msg->peer, msg->peer_len, msg->cmd, rid,
                          TSR_EPROTO, err);
        return NULL;
    }
    struct job *j = job_find(m, (uint64_t)id);
    if (j && !access_can_see(msg->user, j))
        j = NULL; /* another studio's job is not there, for this one */
    if (!j) {
        snprintf(err, sizeof err, "no such job %lld", (long long)id);
        master_send_error(m, m->clients, msg->peer, msg->peer_len, msg->cmd, rid,
                          TSR_ENOTFOUND, err);
    }
    return j;
}

static cJSON *s_frame_json(const struct job *j, uint32_t i)
{
    const struct frame *f = &j->frame_info[i];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "frame", j->frames[i]);
    cJSON_AddStringToObject(o, "state", frame_state_name(f->state));
    cJSON_AddStringToObject(o, "hash", f->hash);
    cJSON_AddNumberToObject(o, "size", (double)f->size);
    cJSON_AddNumberToObject(o, "width", j->width);
    cJSON_AddNumberToObject(o, "height", j->height);
    cJSON *st = cJSON_AddObjectToObject(o, "stats");
    const char *names[] = {"min", "max", "mean"};
    const double *vals[] = {f->stats.min, f->stats.max, f->stats.mean};
    for (int k = 0; k < 3; k++) {
        cJSON *a = cJSON_AddArrayToObject(st, names[k]);
        for (int c = 0; c < f->stats.nchannels && c < 4; c++)
            cJSON_AddItemToArray(a, cJSON_CreateNumber(vals[k][c]));
    }
    cJSON_AddStringToObject(o, "worker", f->worker);
    cJSON_AddStringToObject(o, "hub", f->hub);
    cJSON_AddNumberToObject(o, "render_ms", f->render_ms);
    if (f->error[0] && f->state != FRAME_DONE)
        cJSON_AddStringToObject(o, "error", f->error);
    return o;
}

/* Bytes of FRAMES reply one page may fill (estimated): under the header
 * limit with room for the rest of the reply. */
#define FRAMES_PAGE_BYTES (160 * 1024)
#define FRAMES_FRAME_BYTES 400 /* a frame's record without its tiles */
#define FRAMES_TILE_BYTES 64   /* a tile's record without its names */

/* Adds to frame i's record o the "tiles" array: for each tile of the
 * frame, its index and the worker, hub and render time (the task's, shared
 * by the frames of its chunk) of the task that made it ("" while not
 * done). Tiles past *budget bytes are left out and "tiles_cut" says so.
 * Takes the bytes used from *budget. */
static void s_frame_tiles(const struct job *j, uint32_t i, cJSON *o, size_t *budget)
{
    uint32_t ntiles = (uint32_t)(j->tiles_x * j->tiles_y);
    uint64_t base = (uint64_t)j->frame_group[i] * ntiles;
    cJSON *arr = cJSON_AddArrayToObject(o, "tiles");
    for (uint32_t t = 0; t < ntiles && base + t < j->ntasks; t++) {
        const struct task *tk = &j->tasks[base + t];
        size_t cost = FRAMES_TILE_BYTES + strlen(tk->worker) + strlen(tk->hub);
        if (cost > *budget) {
            cJSON_AddBoolToObject(o, "tiles_cut", 1);
            return;
        }
        *budget -= cost;
        int done = tk->state == TASK_DONE;
        cJSON *e = cJSON_CreateObject();
        cJSON_AddItemToArray(arr, e);
        cJSON_AddNumberToObject(e, "tile", tk->tile);
        cJSON_AddStringToObject(e, "worker", done ? tk->worker : "");
        cJSON_AddStringToObject(e, "hub", done ? tk->hub : "");
        uint32_t ms = done ? tk->render_ms / (tk->frame_count ? tk->frame_count : 1) : 0;
        cJSON_AddNumberToObject(e, "render_ms", ms);
    }
}

/* A frame's tile records' estimated bytes. */
static size_t s_frame_tiles_bytes(const struct job *j, uint32_t i)
{
    uint32_t ntiles = (uint32_t)(j->tiles_x * j->tiles_y);
    uint64_t base = (uint64_t)j->frame_group[i] * ntiles;
    size_t n = 0;
    for (uint32_t t = 0; t < ntiles && base + t < j->ntasks; t++)
        n += FRAMES_TILE_BYTES + strlen(j->tasks[base + t].worker) +
             strlen(j->tasks[base + t].hub);
    return n;
}

static void s_sheet(struct master *m, struct tsr_msg *msg, int64_t rid, struct job *j);
static void s_retry(struct master *m, struct tsr_msg *msg, int64_t rid, struct job *j);
static void s_worker_action(struct master *m, struct tsr_msg *msg, int64_t rid);

void clients_on_message(struct master *m, struct tsr_msg *msg)
{
    int64_t rid = -1;
    char err[256];
    if (tsr_hdr_int_opt(msg->hdr, "rid", 0, INT64_MAX / 2, &rid, err, sizeof err) != 0) {
        master_send_error(m, m->clients, msg->peer, msg->peer_len, msg->cmd, -1, TSR_EPROTO,
                          err);
        return;
    }
    const char *c = msg->cmd;
    if (!access_request_ok(m, msg, rid)) {
        /* refused (auth.h); the ERROR is on its way */
    } else if (!ratelimit_admit(m, msg, rid)) {
        /* a change past the sender's rate; TSR_EBUSY is on its way */
    } else if (strcmp(c, "SUBMIT") == 0) {
        clients_on_submit(m, msg);
    } else if (strcmp(c, "PUT") == 0) {
        blobs_on_put(m, m->clients, msg);
    } else if (strcmp(c, "CHUNK") == 0) {
        blobs_on_chunk(m, m->clients, msg);
    } else if (strcmp(c, "PUT_END") == 0) {
        blobs_on_put_end(m, m->clients, msg);
    } else if (strcmp(c, "GET") == 0) {
        blobs_on_get(m, m->clients, msg);
    } else if (strcmp(c, "STATUS") == 0) {
        struct job *j = s_job_arg(m, msg, rid);
        if (j) {
            cJSON *h = cJSON_CreateObject();
            cJSON *o = job_to_json(j);
            char why[200];
            const char *waiting = scrub_waiting_reason(m, j, why, sizeof why);
            if (!waiting)
                waiting = workers_waiting_reason(m, j, why, sizeof why);
            cJSON_AddStringToObject(o, "waiting", waiting ? waiting : "");
            scrub_status(j, o);
            cJSON_AddItemToObject(h, "job", o);
            s_reply(m, msg, "STATUS", rid, h);
        }
    } else if (strcmp(c, "JOBS") == 0) {
        cJSON *h = cJSON_CreateObject();
        cJSON *arr = cJSON_AddArrayToObject(h, "jobs");
        /* Newest last; the header limit bounds how many fit, so keep the
         * newest 200. */
        size_t first = m->njobs, shown = 0;
        while (first > 0 && shown < 200)
            shown += access_can_see(msg->user, m->jobs[--first]);
        for (size_t i = first; i < m->njobs; i++)
            if (access_can_see(msg->user, m->jobs[i]))
                cJSON_AddItemToArray(arr, job_to_json(m->jobs[i]));
        s_reply(m, msg, "JOBS", rid, h);
    } else if (strcmp(c, "WORKERS") == 0) {
        cJSON *h = cJSON_CreateObject();
        cJSON *arr = cJSON_AddArrayToObject(h, "workers");
        /* Each worker's entry is bounded (hello.c); the reply as a whole
         * stays well under the header limit, and says how many it left out. */
        size_t bytes = 0, i = 0;
        for (; i < m->nworkers && bytes < WORKERS_REPLY_MAX; i++) {
            cJSON *o = worker_to_json(m, m->workers[i]);
            char *text = cJSON_PrintUnformatted(o);
            bytes += text ? strlen(text) : 0;
            free(text);
            cJSON_AddItemToArray(arr, o);
        }
        if (i < m->nworkers)
            cJSON_AddNumberToObject(h, "left_out", (double)(m->nworkers - i));
        s_reply(m, msg, "WORKERS", rid, h);
    } else if (strcmp(c, "CANCEL") == 0) {
        struct job *j = s_job_arg(m, msg, rid);
        if (j) {
            job_cancel(m, j);
            cJSON *h = cJSON_CreateObject();
            cJSON_AddNumberToObject(h, "id", (double)j->id);
            cJSON_AddStringToObject(h, "state", job_state_name(j->state));
            s_reply(m, msg, "CANCELLED", rid, h);
        }
    } else if (strcmp(c, "PAUSE") == 0 || strcmp(c, "RESUME") == 0) {
        struct job *j = s_job_arg(m, msg, rid);
        int pause = strcmp(c, "PAUSE") == 0;
        if (j && job_pause(m, j, pause) != 0) {
            snprintf(err, sizeof err, "job %llu has ended (%s)", (unsigned long long)j->id,
                     job_state_name(j->state));
            master_send_error(m, m->clients, msg->peer, msg->peer_len, c, rid, TSR_ESTATE,
                              err);
        } else if (j) {
            cJSON *h = cJSON_CreateObject();
            cJSON_AddNumberToObject(h, "id", (double)j->id);
            cJSON_AddStringToObject(h, "state", job_state_name(j->state));
            s_reply(m, msg, pause ? "PAUSED" : "RESUMED", rid, h);
        }
    } else if (strcmp(c, "RETRY") == 0) {
        struct job *j = s_job_arg(m, msg, rid);
        if (j)
            s_retry(m, msg, rid, j);
    } else if (strcmp(c, "WORKER") == 0) {
        s_worker_action(m, msg, rid);
    } else if (strcmp(c, "SHEET") == 0) {
        struct job *j = s_job_arg(m, msg, rid);
        if (j)
            s_sheet(m, msg, rid, j);
    } else if (strcmp(c, "FRAMES") == 0) {
        struct job *j = s_job_arg(m, msg, rid);
        if (j) {
            /* One frame is about 400 bytes of JSON plus its tiles; a page
             * holds at most 400 frames and FRAMES_PAGE_BYTES (estimated),
             * but always one frame (its tiles cut to fit if need be), so
             * a reply stays under the header limit and large jobs are
             * paged by "from". */
            int64_t from = 0;
            tsr_hdr_int_opt(msg->hdr, "from", 0, INT32_MAX, &from, NULL, 0);
            cJSON *h = cJSON_CreateObject();
            cJSON_AddNumberToObject(h, "job", (double)j->id);
            cJSON *arr = cJSON_AddArrayToObject(h, "frames");
            uint32_t i = (uint32_t)from;
            size_t budget = FRAMES_PAGE_BYTES;
            for (; i < j->nframes && i < (uint32_t)from + 400; i++) {
                size_t need = FRAMES_FRAME_BYTES + s_frame_tiles_bytes(j, i);
                if (i > (uint32_t)from && need > budget)
                    break;
                cJSON *o = s_frame_json(j, i);
                budget -= budget < FRAMES_FRAME_BYTES ? budget : FRAMES_FRAME_BYTES;
                s_frame_tiles(j, i, o, &budget);
                cJSON_AddItemToArray(arr, o);
            }
            cJSON_AddNumberToObject(h, "total", j->nframes);
            cJSON_AddNumberToObject(h, "next", i < j->nframes ? (double)i : -1);
            s_reply(m, msg, "FRAMES", rid, h);
        }
    } else if (strcmp(c, "EVENTS") == 0) {
        events_on_request(m, msg, rid);
    } else {
        snprintf(err, sizeof err, "unknown command '%s' on the client endpoint", c);
        master_send_error(m, m->clients, msg->peer, msg->peer_len, c, rid, TSR_EPROTO, err);
    }
}

#define SHEET_MAX_FRAMES 1024 /* thumbnails in one contact sheet */

/* SHEET: a contact sheet of the job's done frames, made on a pool thread and
 * kept as a blob. Past SHEET_MAX_FRAMES the frames are sampled evenly. */
static void s_sheet(struct master *m, struct tsr_msg *msg, int64_t rid, struct job *j)
{
    uint32_t done = 0;
    for (uint32_t i = 0; i < j->nframes; i++)
        done += j->frame_info[i].state == FRAME_DONE && j->frame_info[i].hash[0];
    if (done == 0) {
        char err[128];
        snprintf(err, sizeof err, "job %llu has no finished frames yet",
                 (unsigned long long)j->id);
        master_send_error(m, m->clients, msg->peer, msg->peer_len, "SHEET", rid,
                          TSR_ENOTFOUND, err);
        return;
    }
    uint32_t n = done < SHEET_MAX_FRAMES ? done : SHEET_MAX_FRAMES;
    struct pool_req *req = calloc(1, sizeof *req);
    req->kind = POOL_CONTACT_SHEET;
    memcpy(req->peer, msg->peer, msg->peer_len);
    req->peer_len = msg->peer_len;
    req->rid = rid;
    snprintf(req->user, sizeof req->user, "%s", msg->user); /* the pool's lane */
    req->job = j->id;
    req->npieces = n;
    req->pieces = calloc(n, sizeof *req->pieces);
    req->labels = calloc(n, sizeof *req->labels);
    for (uint32_t i = 0, seen = 0, k = 0; i < j->nframes && k < n; i++) {
        const struct frame *f = &j->frame_info[i];
        if (f->state != FRAME_DONE || !f->hash[0])
            continue;
        /* The k-th thumbnail shows the (k * done / n)-th done frame. */
        if ((uint64_t)seen++ * n / done != k)
            continue;
        blob_path(m, f->hash, req->pieces[k], sizeof req->pieces[k]);
        snprintf(req->labels[k], sizeof req->labels[k], "%d", j->frames[i]);
        k++;
    }
    snprintf(req->path, sizeof req->path, "%s/blobs", m->cfg.data_dir);
    snprintf(req->path2, sizeof req->path2, "%s/blobs/tmp/sheet-%llu.png", m->cfg.data_dir,
             (unsigned long long)j->id);
    pool_submit(m, req);
}

void clients_on_sheet_done(struct master *m, struct pool_req *req)
{
    if (req->rc != 0) {
        tsr_log(TSR_LOG_ERROR, "clients", "job %llu: contact sheet failed: %s",
                (unsigned long long)req->job, req->err);
        master_send_error(m, m->clients, req->peer, req->peer_len, "SHEET", req->rid,
                          req->rc, req->err);
        return;
    }
    store_put_blob(m, req->out_hash, req->size);
    cJSON *h = cJSON_CreateObject();
    cJSON_AddNumberToObject(h, "rid", (double)req->rid);
    cJSON_AddNumberToObject(h, "job", (double)req->job);
    cJSON_AddStringToObject(h, "hash", req->out_hash);
    cJSON_AddNumberToObject(h, "size", (double)req->size);
    cJSON_AddNumberToObject(h, "frames", (double)req->npieces);
    master_send(m, m->clients, req->peer, req->peer_len, "SHEET", h, NULL, 0);
    cJSON_Delete(h);
}

/* RETRY {job, tasks?}: failed tasks (all, or the ones named) go back to the
 * queue with a fresh count of attempts; a failed job runs again. */
static void s_retry(struct master *m, struct tsr_msg *msg, int64_t rid, struct job *j)
{
    char err[256];
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(msg->hdr, "tasks");
    uint32_t tasks[256];
    size_t n = 0;
    if (list && !cJSON_IsNull(list)) {
        const cJSON *t;
        int bad = !cJSON_IsArray(list) || cJSON_GetArraySize(list) > 256;
        cJSON_ArrayForEach(t, list)
        {
            if (bad || !cJSON_IsNumber(t) || t->valuedouble < 0 ||
                t->valuedouble >= j->ntasks || t->valuedouble != (uint32_t)t->valuedouble) {
                bad = 1;
                break;
            }
            tasks[n++] = (uint32_t)t->valuedouble;
        }
        if (bad) {
            snprintf(err, sizeof err, "field 'tasks' must list at most 256 task numbers of "
                     "job %llu (0..%u)", (unsigned long long)j->id, j->ntasks - 1);
            master_send_error(m, m->clients, msg->peer, msg->peer_len, "RETRY", rid,
                              TSR_EPROTO, err);
            return;
        }
    }
    uint32_t requeued = 0;
    int rc = job_retry(m, j, tasks, n, &requeued);
    if (rc == TSR_EINVAL) {
        snprintf(err, sizeof err, "only failed tasks can be retried");
    } else if (rc != 0) {
        snprintf(err, sizeof err, "job %llu is %s", (unsigned long long)j->id,
                 job_state_name(j->state));
    }
    if (rc != 0) {
        master_send_error(m, m->clients, msg->peer, msg->peer_len, "RETRY", rid, rc, err);
        return;
    }
    tsr_log(TSR_LOG_INFO, "clients", "job %llu: %u failed tasks requeued",
            (unsigned long long)j->id, requeued);
    cJSON *h = cJSON_CreateObject();
    cJSON_AddNumberToObject(h, "id", (double)j->id);
    cJSON_AddNumberToObject(h, "requeued", requeued);
    cJSON_AddStringToObject(h, "state", job_state_name(j->state));
    s_reply(m, msg, "RETRIED", rid, h);
}

/* WORKER {name, action}: drain (finish what it has, take nothing new),
 * undrain, release from quarantine, or forget (a worker that is gone). */
static void s_worker_action(struct master *m, struct tsr_msg *msg, int64_t rid)
{
    char err[256];
    const char *name = NULL, *action = NULL;
    int rc = tsr_hdr_str(msg->hdr, "name", MASTER_NAME_MAX, &name, err, sizeof err);
    if (!rc)
        rc = tsr_hdr_str(msg->hdr, "action", 16, &action, err, sizeof err);
    struct worker *w = rc ? NULL : worker_by_name(m, name);
    if (!rc && !w) {
        rc = TSR_ENOTFOUND;
        snprintf(err, sizeof err, "no such worker '%s'", name);
    }
    if (!rc && strcmp(action, "forget") == 0) {
        /* Only a worker that is gone: a live one would register again. */
        char wname[MASTER_NAME_MAX + 1];
        snprintf(wname, sizeof wname, "%s", w->name);
        if (worker_forget(m, w) != 0) {
            snprintf(err, sizeof err,
                     "worker '%s' is live; stop it first (SIGTERM), then "
                     "forget it",
                     wname);
            master_send_error(m, m->clients, msg->peer, msg->peer_len, "WORKER", rid,
                              TSR_ESTATE, err);
            return;
        }
        cJSON *ev = cJSON_CreateObject();
        cJSON_AddStringToObject(ev, "worker", wname);
        store_event(m, "worker_forgotten", 0, ev);
        cJSON_Delete(ev);
        tsr_log(TSR_LOG_INFO, "clients", "worker '%s' forgotten", wname);
        cJSON *h = cJSON_CreateObject();
        cJSON *o = cJSON_AddObjectToObject(h, "worker");
        cJSON_AddStringToObject(o, "name", wname);
        cJSON_AddStringToObject(o, "state", "forgotten");
        s_reply(m, msg, "WORKER", rid, h);
        return;
    }
    if (!rc) {
        if (strcmp(action, "drain") == 0)
            w->draining = 1;
        else if (strcmp(action, "undrain") == 0)
            w->draining = 0;
        else if (strcmp(action, "release") == 0) {
            w->quarantined = 0;
            w->quarantine_why[0] = '\0';
            memset(w->recent_jobs, 0, sizeof w->recent_jobs);
        } else {
            rc = TSR_EINVAL;
            snprintf(err, sizeof err,
                     "unknown action '%s' (drain, undrain, release, forget)", action);
        }
    }
    if (rc) {
        master_send_error(m, m->clients, msg->peer, msg->peer_len, "WORKER", rid, rc, err);
        return;
    }
    store_put_worker(m, w);
    cJSON *ev = cJSON_CreateObject();
    cJSON_AddStringToObject(ev, "worker", w->name);
    char kind[32];
    snprintf(kind, sizeof kind, "worker_%s", action);
    store_event(m, kind, 0, ev);
    cJSON_Delete(ev);
    tsr_log(TSR_LOG_INFO, "clients", "worker '%s': %s", w->name, action);
    cJSON *h = cJSON_CreateObject();
    cJSON_AddItemToObject(h, "worker", worker_to_json(m, w));
    s_reply(m, msg, "WORKER", rid, h);
}
