/*
 * access.c: who may see and do what on the master (auth.h), applied by the
 * reactor to requests whose sender ZAP has named.
 *
 * Jobs carry their owner's User-Id; a studio sees only its own, an operator
 * all. Blobs are content-addressed and shared, so reading one is a question
 * of whether the studio has a claim on it: it is the archive, a frame or a
 * contact sheet of one of its jobs, or the studio itself uploaded it (the
 * master hashed the bytes the studio sent, which proves it holds them).
 * Knowing a hash is not a claim: a studio's PUT of a blob the master holds
 * but the studio has no claim on is answered as for a new blob, and the
 * bytes must come; an upload in progress is its uploader's alone (blobs.c
 * keys it by uploader and id), and only the uploader whose own upload
 * completed is granted the blob (tests/integration/uploads.sh).
 *
 * The frames of a job are looked up through a sorted index of their hashes,
 * built on first use and again when the job's count of done frames moved,
 * so fetching a job of N frames costs N log N, not N squared. Claims from
 * uploads and sheets live in memory for this run of the master, in rings of
 * bounded size; after a restart a studio's claim on its archives comes from
 * its jobs, and an upload it had not yet submitted is simply sent again.
 */
#include "auth.h"
#include "master.h"

#include "tessera/error.h"
#include "tessera/log.h"
#include "tessera/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_GRANTS 8192        /* upload and sheet claims remembered */
#define S_INDEXES 64         /* per-job frame indexes kept */
#define S_INDEX_IDLE_MS (10 * 60 * 1000) /* an index unused this long goes */

/* A studio's claim on a blob. */
struct s_claim {
    char user[AUTH_USER_MAX]; /* the studio's User-Id; "" = free slot */
    char hash[TSR_HASH_HEX];  /* the blob */
};

/* The sorted frame hashes of one job. */
struct s_index {
    uint64_t job;                  /* job id; 0 = free slot */
    uint32_t frames_done;          /* the job's count when it was built */
    int64_t used_ms;               /* last lookup (monotonic) */
    size_t n;                      /* hashes */
    char (*hashes)[TSR_HASH_HEX];  /* sorted (owned) */
};

struct access {
    struct s_claim *grants;     /* ring of S_GRANTS claims (owned) */
    size_t next_grant;          /* slot the next claim takes */
    struct s_index idx[S_INDEXES]; /* frame indexes */
};

struct access *access_new(void)
{
    struct access *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->grants = calloc(S_GRANTS, sizeof *a->grants);
    if (!a->grants)
        access_destroy(&a);
    return a;
}

void access_destroy(struct access **ap)
{
    struct access *a = ap ? *ap : NULL;
    if (!a)
        return;
    for (size_t i = 0; i < S_INDEXES; i++)
        free(a->idx[i].hashes);
    free(a->grants);
    free(a);
    *ap = NULL;
}

int access_is_operator(const char *user)
{
    return !user[0] || strncmp(user, "operator:", 9) == 0;
}

static int s_is_studio(const char *user)
{
    return strncmp(user, "studio:", 7) == 0;
}

int access_can_see(const char *user, const struct job *j)
{
    return access_is_operator(user) || strcmp(user, j->owner) == 0;
}

static int s_cmp_hash(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* The index of job j, built or rebuilt as needed; NULL when out of memory. */
static struct s_index *s_index(struct access *a, const struct job *j)
{
    struct s_index *x = NULL, *lru = &a->idx[0];
    for (size_t i = 0; i < S_INDEXES; i++) {
        if (a->idx[i].job == j->id)
            x = &a->idx[i];
        if (a->idx[i].used_ms < lru->used_ms)
            lru = &a->idx[i];
    }
    if (x && x->frames_done == j->frames_done)
        return x;
    if (!x) {
        x = lru;
        free(x->hashes);
        memset(x, 0, sizeof *x);
    }
    char(*h)[TSR_HASH_HEX] = realloc(x->hashes, (j->nframes ? j->nframes : 1) * sizeof *h);
    if (!h) {
        free(x->hashes);
        memset(x, 0, sizeof *x);
        return NULL;
    }
    size_t n = 0;
    for (uint32_t f = 0; f < j->nframes; f++)
        if (j->frame_info[f].state == FRAME_DONE && j->frame_info[f].hash[0])
            memcpy(h[n++], j->frame_info[f].hash, TSR_HASH_HEX);
    qsort(h, n, sizeof *h, s_cmp_hash);
    x->job = j->id;
    x->frames_done = j->frames_done;
    x->n = n;
    x->hashes = h;
    return x;
}

static int s_claimed(const struct s_claim *ring, size_t n, const char *user,
                     const char *hash)
{
    for (size_t i = 0; i < n; i++)
        if (ring[i].user[0] && strcmp(ring[i].hash, hash) == 0 &&
            strcmp(ring[i].user, user) == 0)
            return 1;
    return 0;
}

int access_blob_readable(struct master *m, const char *user, const char *hash)
{
    if (!s_is_studio(user))
        return 1; /* operators, workers, and everyone on a master without keys */
    struct access *a = m->access;
    if (!a)
        return 0;
    if (s_claimed(a->grants, S_GRANTS, user, hash))
        return 1;
    int64_t now = tsr_now_ms();
    /* First the jobs already indexed: a fetch asks for one frame after the
     * other of the same job. */
    for (size_t i = 0; i < S_INDEXES; i++) {
        const struct job *j = a->idx[i].job ? job_find(m, a->idx[i].job) : NULL;
        if (!j || strcmp(j->owner, user) != 0)
            continue;
        struct s_index *x = s_index(a, j);
        if (!x)
            return 0;
        x->used_ms = now;
        if (bsearch(hash, x->hashes, x->n, sizeof *x->hashes, s_cmp_hash))
            return 1;
    }
    /* Then every job of the studio, looked through without building
     * anything; the job that holds the blob is indexed for what follows. */
    for (size_t i = 0; i < m->njobs; i++) {
        const struct job *j = m->jobs[i];
        if (strcmp(j->owner, user) != 0)
            continue;
        if (strcmp(j->archive, hash) == 0)
            return 1;
        for (uint32_t f = 0; f < j->nframes; f++) {
            if (j->frame_info[f].state == FRAME_DONE &&
                strcmp(j->frame_info[f].hash, hash) == 0) {
                struct s_index *x = s_index(a, j);
                if (x)
                    x->used_ms = now;
                return 1;
            }
        }
    }
    return 0;
}

/* Puts (user, hash) into the ring, unless it is there already. */
static void s_claim(struct s_claim *ring, size_t size, size_t *next, const char *user,
                    const char *hash)
{
    if (s_claimed(ring, size, user, hash))
        return;
    struct s_claim *c = &ring[*next];
    *next = (*next + 1) % size;
    snprintf(c->user, sizeof c->user, "%s", user);
    snprintf(c->hash, sizeof c->hash, "%s", hash);
}

void access_grant(struct master *m, const char *user, const char *hash)
{
    if (m->access && s_is_studio(user))
        s_claim(m->access->grants, S_GRANTS, &m->access->next_grant, user, hash);
}

int access_check_message(struct master *m, const struct tsr_msg *msg, int workers,
                         char *why, size_t whylen)
{
    if (!auth_admits(m->auth, workers, msg->user, msg->key)) {
        if (msg->user[0])
            snprintf(why, whylen, "the key of '%s' is no longer admitted", msg->user);
        else
            snprintf(why, whylen, "this connection has no admitted key");
        return TSR_EACCESS;
    }
    if (workers && strcmp(msg->cmd, "HELLO") == 0) {
        /* A worker key names one worker: it may not take over another's
         * attempts by registering under its name. */
        const char *name = NULL, *mine = msg->user + strlen("worker:");
        if (tsr_hdr_str_opt(msg->hdr, "name", MASTER_NAME_MAX, &name, NULL, 0) == 0 &&
            name && strcmp(name, mine) != 0) {
            snprintf(why, whylen, "the key of '%s' may only register the worker '%s', "
                                  "not '%.63s'", msg->user, mine, name);
            return TSR_EACCESS;
        }
    }
    return 0;
}

void access_cron(struct master *m)
{
    struct access *a = m->access;
    if (!a)
        return;
    int64_t now = tsr_now_ms();
    for (size_t i = 0; i < S_INDEXES; i++) {
        struct s_index *x = &a->idx[i];
        if (x->job && now - x->used_ms > S_INDEX_IDLE_MS) {
            free(x->hashes);
            memset(x, 0, sizeof *x);
        }
    }
}

int access_request_ok(struct master *m, struct tsr_msg *msg, int64_t rid)
{
    char err[160];
    const char *hash = NULL;
    if (strcmp(msg->cmd, "WORKER") == 0 && !access_is_operator(msg->user)) {
        master_send_error(m, m->clients, msg->peer, msg->peer_len, msg->cmd, rid,
                          TSR_EPERM, "only operators may drain, undrain or release "
                                     "workers");
        return 0;
    }
    int get = strcmp(msg->cmd, "GET") == 0;
    if (!get && strcmp(msg->cmd, "SUBMIT") != 0)
        return 1;
    /* A malformed field is the handler's to report. */
    if (tsr_hdr_hash(msg->hdr, get ? "hash" : "archive", &hash, NULL, 0) != 0 ||
        access_blob_readable(m, msg->user, hash))
        return 1;
    /* The very words of blobs.c and jobs.c for a blob that is not there. */
    if (get)
        snprintf(err, sizeof err, "blob %.12s is not on the master", hash);
    else
        snprintf(err, sizeof err, "archive %.12s is not on the master; upload it first",
                 hash);
    master_send_error(m, m->clients, msg->peer, msg->peer_len, msg->cmd, rid, TSR_ENOTFOUND,
                      err);
    return 0;
}
