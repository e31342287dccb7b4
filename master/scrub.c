/*
 * scrub.c: damaged blobs: set aside, obtained again, and found before a
 * studio finds them.
 *
 * A blob's name is the sha256 of its bytes; a disk can still flip a bit.
 * Wherever the master reads a blob whole (an archive at SUBMIT, pieces at
 * verification and assembly, the background scrub below, the archive a
 * worker says it could not use) it checks the bytes against the name, and
 * a pool thread sets a damaged or missing one aside into
 * <data>/blobs/damaged/ (pool.c). Then, on the reactor, scrub_blob_lost
 * forgets it (the `blobs` record goes, so the next PUT of that hash is a
 * real upload and a re-submission is accepted) and mends what needed it:
 *
 * | what the blob was            | what follows                                |
 * |------------------------------|---------------------------------------------|
 * | a job's archive              | the job waits (nothing dispatched; status   |
 * |                              | says why) until the archive is uploaded     |
 * |                              | again (scrub_blob_stored); "fetch" failures |
 * |                              | it caused are not counted                   |
 * | a delivered frame            | the frame is marked damaged (status says    |
 * |                              | so) and made again: re-assembled from its   |
 * |                              | pieces, or its task rendered again; a done  |
 * |                              | job runs again until it is whole            |
 * | a piece a frame still needs  | its task is rendered again                  |
 * | a piece being verified       | the task is rendered again, no worker blamed|
 *                                  (workers_on_verified)
 *
 * The scrub: `tessera-master --scrub` checks every blob offline and prints a
 * report; the running master checks them too, one slice of one blob at a
 * time on the pool at --scrub-rate bytes a second, and starts a new pass an
 * hour after the last ended. doc/reliability.md lists what tests show it.
 */
#include "master.h"

#include "tessera/error.h"
#include "tessera/log.h"
#include "tessera/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SCRUB_PASS_PAUSE_MS (60LL * 60 * 1000) /* between background passes */
#define SCRUB_SUSPECTS 16                      /* archives recently checked */
#define SCRUB_SUSPECT_MS (60 * 1000)           /* one check of an archive a minute */

/* The background scrub's state. */
struct scrub {
    char cur[TSR_HASH_HEX];         /* blob being checked; "" between blobs */
    char last[TSR_HASH_HEX];        /* last blob checked in this pass; "" at its start */
    struct pool_req *held;          /* the next slice, waiting for its time (owned) */
    int busy;                       /* a slice is in the pool */
    int64_t next_ms;                /* when the next slice may start (monotonic) */
    int64_t pass_ms;                /* when this pass started (monotonic), 0 if none */
    uint64_t blobs, bytes, damaged; /* this pass's counts */
    char suspect[SCRUB_SUSPECTS][TSR_HASH_HEX]; /* archives checked lately */
    int64_t suspect_ms[SCRUB_SUSPECTS];         /* when */
};

static struct scrub *s_state(struct master *m)
{
    if (!m->scrub)
        m->scrub = calloc(1, sizeof *m->scrub);
    return m->scrub;
}

void scrub_free(struct master *m)
{
    if (m->scrub)
        pool_req_free(m->scrub->held);
    free(m->scrub);
    m->scrub = NULL;
}

/* ---- what follows from a lost blob ---- */

static void s_event(struct master *m, const char *kind, uint64_t job, const char *key,
                    double num, const char *detail)
{
    cJSON *ev = cJSON_CreateObject();
    if (key)
        cJSON_AddNumberToObject(ev, key, num);
    if (detail)
        cJSON_AddStringToObject(ev, "detail", detail);
    store_event(m, kind, job, ev);
    cJSON_Delete(ev);
}

/* A done job that lost part of what it delivered runs again. */
static void s_reopen(struct master *m, struct job *j)
{
    if (j->state != JOB_DONE)
        return;
    j->state = JOB_RUNNING;
    j->finished_ms = 0;
    if (!store_has_blob(m, j->archive, NULL))
        j->archive_lost = 1;
    store_put_job(m, j);
    s_event(m, "job_reopened", j->id, NULL, 0, "a delivered frame was damaged");
    tsr_log(TSR_LOG_WARN, "scrub", "job %llu runs again: a delivered frame was damaged",
            (unsigned long long)j->id);
}

/* Whether the job may still make frames: not cancelled or failed. */
static int s_mendable(const struct job *j)
{
    return j->state != JOB_CANCELLED && j->state != JOB_FAILED;
}

static void s_frame_lost(struct master *m, struct job *j, uint32_t fidx)
{
    struct frame *f = &j->frame_info[fidx];
    f->state = FRAME_PENDING;
    f->rotted = 1;
    f->hash[0] = '\0';
    f->size = 0;
    if (j->frames_done)
        j->frames_done--;
    store_put_frame(m, j, fidx);
    s_event(m, "frame_damaged", j->id, "frame", j->frames[fidx], NULL);
    tsr_log(TSR_LOG_WARN, "scrub", "job %llu frame %d: its stored image was damaged",
            (unsigned long long)j->id, j->frames[fidx]);
    if (s_mendable(j))
        s_reopen(m, j);
}

/* A done task goes back to the queue: a piece it made is gone, and a frame
 * still needs it. Its frames count it again when it is verified again. */
static void s_rerender(struct master *m, struct job *j, uint32_t idx)
{
    struct task *t = &j->tasks[idx];
    for (uint32_t k = 0; k < t->frame_count; k++) {
        uint32_t fidx = t->frame_first + k;
        struct frame *f = &j->frame_info[fidx];
        if (f->state == FRAME_DONE) { /* made again with the others of the task */
            f->state = FRAME_PENDING;
            f->hash[0] = '\0';
            if (j->frames_done)
                j->frames_done--;
        }
        if (f->tiles_done)
            f->tiles_done--;
        store_put_frame(m, j, fidx);
    }
    task_set_state(j, idx, TASK_QUEUED);
    t->attempt = 0;
    t->worker[0] = t->hub[0] = '\0';
    snprintf(t->error, sizeof t->error,
             "a piece it made was damaged on the master; "
             "rendering it again");
    store_put_task(m, j, idx);
    cJSON *ev = cJSON_CreateObject();
    cJSON_AddNumberToObject(ev, "task", idx);
    cJSON_AddStringToObject(ev, "detail", t->error);
    store_event(m, "task_requeued", j->id, ev);
    cJSON_Delete(ev);
    s_reopen(m, j);
}

static void s_piece_lost(struct master *m, uint64_t job, uint32_t task, uint32_t k,
                         void *ctx)
{
    (void)ctx;
    struct job *j = job_find(m, job);
    if (!j || task >= j->ntasks || !s_mendable(j))
        return;
    struct task *t = &j->tasks[task];
    if (t->state != TASK_DONE || k >= t->frame_count ||
        j->frame_info[t->frame_first + k].state == FRAME_DONE)
        return; /* not made yet, or its frame no longer needs it */
    s_rerender(m, j, task);
}

/* Failures of class "fetch" that a damaged archive caused are not the
 * task's: they are given back, and a task they failed is queued again. */
static void s_refund_fetch(struct master *m, struct job *j)
{
    int requeued = 0;
    for (uint32_t i = 0; i < j->ntasks; i++) {
        struct task *t = &j->tasks[i];
        if (strncmp(t->error, "fetch:", 6) != 0 || !t->failures)
            continue;
        if (t->state == TASK_QUEUED) {
            t->failures--;
        } else if (t->state == TASK_FAILED && j->state != JOB_CANCELLED) {
            t->failures = 0;
            task_set_state(j, i, TASK_QUEUED);
            requeued = 1;
        } else {
            continue;
        }
        store_put_task(m, j, i);
    }
    if (requeued && j->state == JOB_FAILED) {
        j->state = JOB_RUNNING;
        j->finished_ms = 0;
        j->error[0] = '\0';
        store_put_job(m, j);
    }
}

void scrub_blob_lost(struct master *m, const char *hash, const char *why)
{
    if (store_has_blob(m, hash, NULL)) {
        store_del_blob(m, hash);
        cJSON *ev = cJSON_CreateObject();
        cJSON_AddStringToObject(ev, "hash", hash);
        cJSON_AddStringToObject(ev, "detail", why);
        store_event(m, "blob_damaged", 0, ev);
        cJSON_Delete(ev);
        tsr_log(TSR_LOG_WARN, "scrub",
                "blob %.12s forgotten, to be uploaded or made again: %s", hash, why);
    }
    for (size_t i = 0; i < m->njobs; i++) {
        struct job *j = m->jobs[i];
        if (strcmp(j->archive, hash) == 0 && j->state != JOB_CANCELLED &&
            j->state != JOB_DONE && !j->archive_lost) {
            s_refund_fetch(m, j); /* may run a job they failed again */
            if (!job_ended(j)) {
                j->archive_lost = 1;
                tsr_log(TSR_LOG_WARN, "scrub",
                        "job %llu waits for its archive %.12s to be "
                        "uploaded again",
                        (unsigned long long)j->id, hash);
            }
        }
        for (uint32_t f = 0; f < j->nframes; f++)
            if (j->frame_info[f].state == FRAME_DONE &&
                strcmp(j->frame_info[f].hash, hash) == 0)
                s_frame_lost(m, j, f);
    }
    store_each_piece_of(m, hash, s_piece_lost, NULL);
    /* Damaged frames whose pieces are all verified are assembled again
     * (the assembly checks each piece in turn). */
    for (size_t i = 0; i < m->njobs; i++) {
        struct job *j = m->jobs[i];
        for (uint32_t f = 0; f < j->nframes && s_mendable(j); f++)
            if (j->frame_info[f].rotted && j->frame_info[f].state == FRAME_PENDING)
                frame_reassemble(m, j, f);
    }
}

void scrub_blob_stored(struct master *m, const char *hash)
{
    for (size_t i = 0; i < m->njobs; i++) {
        struct job *j = m->jobs[i];
        if (j->archive_lost && strcmp(j->archive, hash) == 0) {
            j->archive_lost = 0;
            s_event(m, "job_archive_back", j->id, NULL, 0, NULL);
            tsr_log(TSR_LOG_INFO, "scrub",
                    "job %llu: its archive was uploaded again; going on",
                    (unsigned long long)j->id);
        }
    }
}

/* A pool request to check the blob hash (size bytes) in the store, or NULL
 * without memory. */
static struct pool_req *s_blob_req(struct master *m, int kind, const char *hash,
                                   uint64_t size)
{
    struct pool_req *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->kind = kind;
    snprintf(r->hash, sizeof r->hash, "%s", hash);
    blob_path(m, hash, r->path, sizeof r->path);
    r->expect_size = size;
    return r;
}

void scrub_suspect(struct master *m, const char *hash)
{
    struct scrub *s = s_state(m);
    uint64_t size = 0;
    if (!s || !store_has_blob(m, hash, &size))
        return;
    int64_t now = tsr_now_ms();
    int slot = 0;
    for (int i = 0; i < SCRUB_SUSPECTS; i++) {
        if (strcmp(s->suspect[i], hash) == 0 && now - s->suspect_ms[i] < SCRUB_SUSPECT_MS)
            return; /* checked a moment ago */
        if (s->suspect_ms[i] < s->suspect_ms[slot])
            slot = i;
    }
    snprintf(s->suspect[slot], sizeof s->suspect[slot], "%s", hash);
    s->suspect_ms[slot] = now;
    struct pool_req *r = s_blob_req(m, POOL_VERIFY_BLOB, hash, size);
    if (r)
        pool_submit(m, r);
}

void scrub_reconcile(struct master *m)
{
    for (size_t i = 0; i < m->njobs; i++) {
        struct job *j = m->jobs[i];
        if (!job_ended(j) && !store_has_blob(m, j->archive, NULL))
            j->archive_lost = 1;
        for (uint32_t f = 0; f < j->nframes; f++) {
            const struct frame *fr = &j->frame_info[f];
            if (fr->state == FRAME_DONE && fr->hash[0] &&
                !store_has_blob(m, fr->hash, NULL)) {
                char hash[TSR_HASH_HEX];
                memcpy(hash, fr->hash, sizeof hash);
                scrub_blob_lost(m, hash, "frame missing from the blob store");
            }
        }
    }
}

const char *scrub_waiting_reason(struct master *m, const struct job *j, char *buf,
                                 size_t size)
{
    (void)m;
    if (!j->archive_lost || job_ended(j))
        return NULL;
    snprintf(buf, size,
             "its archive %.12s was damaged on the master and set aside; "
             "nothing runs until it is uploaded again (tessera submit the same scene)",
             j->archive);
    return buf;
}

/* Appends frame number n to list (", "-separated), up to 10 of them. */
static void s_list_add(char *list, size_t size, int *count, int n)
{
    size_t len = strlen(list);
    if (++*count <= 10)
        snprintf(list + len, size - len, "%s%d", len ? ", " : "", n);
    else if (*count == 11)
        snprintf(list + len, size - len, ", ...");
}

void scrub_status(const struct job *j, cJSON *o)
{
    char lost[160] = "", made[160] = "", text[400] = "";
    int nlost = 0, nmade = 0;
    for (uint32_t f = 0; f < j->nframes; f++) {
        const struct frame *fr = &j->frame_info[f];
        if (!fr->rotted)
            continue;
        if (fr->state == FRAME_DONE)
            s_list_add(made, sizeof made, &nmade, j->frames[f]);
        else
            s_list_add(lost, sizeof lost, &nlost, j->frames[f]);
    }
    if (nlost)
        snprintf(text, sizeof text,
                 "frame%s %s damaged on the master (stored bytes no "
                 "longer match their hash)%s",
                 nlost > 1 ? "s" : "", lost, s_mendable(j) ? "; being made again" : "");
    if (nmade) {
        size_t len = strlen(text);
        snprintf(text + len, sizeof text - len,
                 "%sframe%s %s made again after damage on "
                 "the master",
                 len ? "; " : "", nmade > 1 ? "s" : "", made);
    }
    cJSON_AddStringToObject(o, "damaged", text);
}

/* ---- the background pass ---- */

/* The first blob after s->last in `blobs`, or 0 when the pass is over. */
static int s_next_blob(struct master *m, struct scrub *s, char hash[TSR_HASH_HEX],
                       uint64_t *size)
{
    MDB_cursor *cur;
    if (mdb_cursor_open(master_txn(m), m->db_blobs, &cur) != 0)
        return 0;
    MDB_val k = {strlen(s->last), s->last}, v;
    int rc = s->last[0] ? mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE)
                        : mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (rc == 0 &&
           (k.mv_size != 64 || (s->last[0] && memcmp(k.mv_data, s->last, 64) <= 0)))
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    int found = rc == 0;
    if (found) {
        memcpy(hash, k.mv_data, 64);
        hash[64] = '\0';
        cJSON *o = cJSON_ParseWithLength(v.mv_data, v.mv_size);
        cJSON *n = cJSON_GetObjectItem(o, "size");
        *size = cJSON_IsNumber(n) ? (uint64_t)n->valuedouble : 0;
        cJSON_Delete(o);
    }
    mdb_cursor_close(cur);
    return found;
}

/* Bytes a slice hashes: a quarter second's worth, within bounds. */
static uint64_t s_slice(const struct master *m)
{
    uint64_t n = m->cfg.scrub_rate / 4;
    return n < (256u << 10) ? (256u << 10) : n > (16u << 20) ? (16u << 20) : n;
}

void scrub_cron(struct master *m)
{
    if (!m->cfg.scrub_rate)
        return;
    struct scrub *s = s_state(m);
    int64_t now = tsr_now_ms();
    if (!s || s->busy || now < s->next_ms)
        return;
    struct pool_req *r = s->held;
    s->held = NULL;
    if (!r) {
        char hash[TSR_HASH_HEX];
        uint64_t size = 0;
        if (!s->pass_ms)
            s->pass_ms = now;
        if (!s_next_blob(m, s, hash, &size)) {
            if (s->blobs)
                tsr_log(TSR_LOG_INFO, "scrub",
                        "pass over: %llu blobs, %llu MiB checked, %llu "
                        "damaged, in %lld s",
                        (unsigned long long)s->blobs,
                        (unsigned long long)(s->bytes >> 20),
                        (unsigned long long)s->damaged,
                        (long long)((now - s->pass_ms) / 1000));
            s->last[0] = '\0';
            s->blobs = s->bytes = s->damaged = 0;
            s->pass_ms = 0;
            s->next_ms = now + SCRUB_PASS_PAUSE_MS;
            return;
        }
        r = s_blob_req(m, POOL_SCRUB_SLICE, hash, size);
        if (!r)
            return;
        tsr_hash_begin(&r->hs);
        snprintf(s->cur, sizeof s->cur, "%s", hash);
    }
    r->len = (size_t)s_slice(m);
    s->busy = 1;
    s->next_ms = now + (int64_t)(r->len * 1000 / m->cfg.scrub_rate);
    pool_submit(m, r);
}

int scrub_on_pool_done(struct master *m, struct pool_req *r)
{
    if (r->kind == POOL_VERIFY_BLOB) {
        if (r->rc == 0)
            tsr_log(TSR_LOG_INFO, "scrub",
                    "blob %.12s checked after a worker's report: "
                    "sound",
                    r->hash);
        else if (!r->rotten[0])
            tsr_log(TSR_LOG_WARN, "scrub", "%s", r->err);
        return 1;
    }
    if (r->kind != POOL_SCRUB_SLICE)
        return 0;
    struct scrub *s = s_state(m);
    if (!s)
        return 1;
    s->busy = 0;
    if (r->rc == TSR_ESTATE) {
        /* Replaced meanwhile (set aside and uploaded again): from the top. */
        s->cur[0] = '\0';
        return 1;
    }
    if (r->rc == 0 && !r->out_hash[0]) {
        /* More to come: the next slice waits for its time (scrub_cron). */
        struct pool_req *next = calloc(1, sizeof *next);
        if (next) {
            *next = *r; /* owns no memory: path, hash and hash state are inline */
            next->err[0] = '\0';
            s->held = next;
        }
        return 1;
    }
    s->blobs++;
    s->bytes += r->offset;
    if (r->rotten[0])
        s->damaged++;
    else if (r->rc != 0)
        tsr_log(TSR_LOG_WARN, "scrub", "%s", r->err);
    snprintf(s->last, sizeof s->last, "%s", r->hash);
    s->cur[0] = '\0';
    return 1;
}

/* ---- tessera-master --scrub ---- */

int scrub_offline(struct master *m)
{
    MDB_cursor *cur;
    MDB_txn *txn = master_txn(m);
    if (mdb_cursor_open(txn, m->db_blobs, &cur) != 0) {
        fprintf(stderr, "tessera-master: --scrub: cannot read the blob records\n");
        return 1;
    }
    struct item {
        char hash[TSR_HASH_HEX]; /* the blob */
        uint64_t size;           /* its recorded size */
    } *items = NULL;
    size_t n = 0, cap = 0;
    MDB_val k, v;
    int op = MDB_FIRST;
    while (mdb_cursor_get(cur, &k, &v, op) == 0) {
        op = MDB_NEXT;
        if (k.mv_size != 64)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            void *more = realloc(items, cap * sizeof *items);
            if (!more) {
                mdb_cursor_close(cur);
                free(items);
                fprintf(stderr, "tessera-master: --scrub: out of memory\n");
                return 1;
            }
            items = more;
        }
        memcpy(items[n].hash, k.mv_data, 64);
        items[n].hash[64] = '\0';
        cJSON *o = cJSON_ParseWithLength(v.mv_data, v.mv_size);
        cJSON *sz = cJSON_GetObjectItem(o, "size");
        items[n].size = cJSON_IsNumber(sz) ? (uint64_t)sz->valuedouble : 0;
        cJSON_Delete(o);
        n++;
    }
    mdb_cursor_close(cur);
    char aside[MASTER_PATH_MAX + 64];
    snprintf(aside, sizeof aside, "%s/blobs/damaged", m->cfg.data_dir);
    uint64_t sound = 0, damaged = 0, missing = 0, unreadable = 0, bytes = 0;
    for (size_t i = 0; i < n; i++) {
        char path[MASTER_PATH_MAX + 64], got[TSR_HASH_HEX];
        unsigned long long size = 0;
        blob_path(m, items[i].hash, path, sizeof path);
        int rc = tsr_hash_file(path, got, &size);
        bytes += size;
        if (rc == TSR_ENOTFOUND) {
            printf("missing   %s  recorded, but not in the store\n", items[i].hash);
            store_del_blob(m, items[i].hash);
            missing++;
        } else if (rc != 0) {
            printf("unreadable %s  %s (left alone)\n", items[i].hash, tsr_strerror(rc));
            unreadable++;
        } else if (strcmp(got, items[i].hash) != 0 || size != items[i].size) {
            char dst[sizeof aside + 96];
            snprintf(dst, sizeof dst, "%s/%s.%lld", aside, items[i].hash,
                     (long long)tsr_wall_ms());
            int moved = tsr_mkdir_p(aside) == 0 && rename(path, dst) == 0;
            if (!moved)
                unlink(path);
            printf(
                "damaged   %s  %llu bytes hash to %.12s (recorded %llu bytes); %s %s\n",
                items[i].hash, size, got, (unsigned long long)items[i].size,
                moved ? "set aside as" : "removed:", moved ? dst : strerror(errno));
            store_del_blob(m, items[i].hash);
            damaged++;
        } else {
            sound++;
        }
    }
    free(items);
    int rc = store_commit(m);
    printf("scrub: %zu blobs, %llu MiB read: %llu sound, %llu damaged, %llu missing, "
           "%llu unreadable\n",
           n, (unsigned long long)(bytes >> 20), (unsigned long long)sound,
           (unsigned long long)damaged, (unsigned long long)missing,
           (unsigned long long)unreadable);
    if (damaged || missing)
        printf(
            "scrub: the damaged and missing blobs are forgotten; at its next start the "
            "master makes their frames again and jobs wait for their archives to be "
            "uploaded again\n");
    if (rc != 0) {
        fprintf(stderr, "tessera-master: --scrub: cannot record what it found\n");
        return 1;
    }
    return damaged || missing ? 3 : unreadable ? 1 : 0;
}
