/*
 * pool.c: the master's heavy-work threads.
 *
 * The reactor must never block on a disk, an archive or an image, so those
 * jobs (struct pool_req, master.h) go to a few threads; each finished
 * request goes back as a pointer over the thread's own PUSH socket to the
 * reactor's PULL socket (inproc), which the reactor polls with everything
 * else. A request belongs to whoever holds it: the reactor until
 * pool_submit, then the pool, then the reactor again.
 *
 * Requests are shared fairly (doc/reliability.md): each is charged to a
 * lane, the studio that asked (its User-Id), else the job's owner, else
 * the connection. Light requests (chunk reads and writes, the hashing of a
 * small upload) go first and may use every thread; heavy ones (archive
 * checks, verification, assembly, contact sheets, large hashes) may use
 * all threads but one, so a GET or CHUNK of anyone never waits for heavy
 * work. Among heavy requests a free thread goes to the lane with the
 * fewest running, round-robin among equals, so a lane waits for at most
 * what runs now, never for another lane's whole queue; and a contact sheet
 * runs in slices that go back to the end of their lane (pool_req.more), so
 * what runs now is short.
 */
#include "master.h"

#include "tessera/archive.h"
#include "tessera/error.h"
#include "tessera/log.h"
#include "tessera/scene.h"
#include "tessera/util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#define POOL_ENDPOINT "inproc://pool-done"
#define POOL_MAX_THREADS 16
#define SCENE_MAX_BYTES (16 * 1024 * 1024)
#define POOL_LIGHT_HASH (16ULL << 20) /* hashing an upload up to this is light */

/* The requests of one lane, in order. */
struct lane {
    char name[sizeof ((struct pool_req *)0)->lane]; /* who is charged */
    struct qnode *head, *tail;                      /* its waiting requests */
    int running;                                    /* its requests on a thread */
    int heavy;                                      /* of which heavy */
};

struct pool {
    pthread_t threads[POOL_MAX_THREADS]; /* the workers */
    int nthreads;                        /* how many run */
    pthread_mutex_t lock;                /* guards the lanes, counters and stopping */
    pthread_cond_t cond;                 /* signalled on a new request or a free slot */
    struct lane *lanes;                  /* lanes with waiting or running requests */
    size_t nlanes, caplanes;             /* count and capacity */
    size_t next_lane;                    /* where the round-robin looks first */
    size_t waiting;                      /* requests waiting over all lanes */
    int heavy_running;                   /* heavy requests on a thread */
    int stopping;                        /* threads exit when set */
    void *zctx;                          /* for the threads' PUSH sockets */
    struct tsr_image_limits limits;      /* image limits for verification */
    struct tsr_archive_limits alimits;   /* archive limits */
    char aside[MASTER_PATH_MAX + 64];    /* <data>/blobs/damaged: blobs set aside */
};

struct qnode {
    struct pool_req *req; /* the request */
    struct qnode *next;   /* next in the lane */
};

/* Light requests cost little and a bounded time: a chunk read or written,
 * a small upload hashed. */
static int s_light(const struct pool_req *r)
{
    return r->kind == POOL_READ_CHUNK || r->kind == POOL_WRITE_CHUNK ||
           (r->kind == POOL_HASH_UPLOAD && r->size <= POOL_LIGHT_HASH);
}

/* A contact sheet between its slices. */
struct s_sheet_work {
    struct tsr_image_sheet *sheet; /* the sheet being drawn */
    const char **paths;            /* the frames (borrowed from the request) */
    const char **labels;           /* their captions (borrowed) */
};

static void s_work_free(struct pool_req *req)
{
    struct s_sheet_work *w = req->work;
    if (!w)
        return;
    tsr_image_sheet_destroy(&w->sheet);
    free(w->paths);
    free(w->labels);
    free(w);
    req->work = NULL;
}

void pool_req_free(struct pool_req *req)
{
    if (!req)
        return;
    s_work_free(req);
    free(req->data);
    cJSON_Delete(req->ctx);
    free(req->pieces);
    free(req->piece_hashes);
    free(req->labels);
    free(req);
}

static int s_errno_rc(void)
{
    return errno == ENOSPC || errno == EDQUOT ? TSR_EFULL : TSR_EIO;
}

/*
 * Sets the blob at path (named hash) aside, into <data>/blobs/damaged/, and
 * names it in r->rotten so that the reactor forgets it and mends what needed
 * it (scrub_blob_lost): a damaged blob is never served or used again, and
 * the next PUT of its hash is a real upload. A blob that is not there at
 * all is named too (missing). Called when its bytes were just found not to
 * be what its name says.
 */
static void s_set_aside(struct pool *p, struct pool_req *r, const char *path,
                        const char *hash)
{
    char dst[sizeof p->aside + 96];
    snprintf(dst, sizeof dst, "%s/%s.%lld", p->aside, hash, (long long)tsr_wall_ms());
    if (tsr_mkdir_p(p->aside) != 0 || (rename(path, dst) != 0 && errno != ENOENT)) {
        /* It cannot be moved: removed, it is at least never served. */
        tsr_log(TSR_LOG_ERROR, "pool", "cannot set damaged blob %.12s aside (%s); removing "
                "it", hash, strerror(errno));
        unlink(path);
    }
    snprintf(r->rotten, sizeof r->rotten, "%s", hash);
}

/* Hashes the blob at path against its name (and size, when size is not
 * NULL and *size is known). 0 when sound; TSR_EHASH (set aside, err says
 * why) when not; TSR_ENOTFOUND when missing (named, err says so); TSR_EIO
 * when it cannot be read (left alone: a disk error is not rot). */
static int s_check_blob(struct pool *p, struct pool_req *r, const char *path,
                        const char *hash, uint64_t size, char *err, size_t errlen)
{
    char got[TSR_HASH_HEX];
    unsigned long long n = 0;
    int rc = tsr_hash_file(path, got, &n);
    if (rc == TSR_ENOTFOUND) {
        snprintf(err, errlen, "blob %.12s is missing from the master's store", hash);
        snprintf(r->rotten, sizeof r->rotten, "%s", hash);
        return rc;
    }
    if (rc != 0) {
        snprintf(err, errlen, "cannot read blob %.12s: %s", hash, tsr_strerror(rc));
        return rc;
    }
    if (strcmp(got, hash) != 0 || (size && n != size)) {
        snprintf(err, errlen, "blob %.12s was damaged on the master (its %llu bytes hash to "
                 "%.12s); set aside", hash, n, got);
        s_set_aside(p, r, path, hash);
        return TSR_EHASH;
    }
    return 0;
}

static void s_check_archive_at(struct pool *p, struct pool_req *r)
{
    struct tsr_archive_report rep;
    r->rc = tsr_archive_check(r->path, &p->alimits, r->scene[0] ? r->scene : NULL, &rep,
                              r->err, sizeof r->err);
    if (r->rc != 0 || !r->want_resolution)
        return;
    char *text = NULL;
    size_t len = 0;
    r->rc = tsr_archive_read_file(r->path, r->scene, SCENE_MAX_BYTES, &text, &len, r->err,
                                  sizeof r->err);
    if (r->rc != 0)
        return;
    struct tsr_scene *scene = NULL;
    r->rc = tsr_scene_parse(text, len, r->scene, &scene, r->err, sizeof r->err);
    free(text);
    if (r->rc != 0)
        return;
    tsr_scene_resolution(scene, &r->width, &r->height);
    tsr_scene_destroy(&scene);
}

/* Checks a submitted archive. Its reason goes back to the studio, which
 * has no business with the master's folders: the blob's path becomes
 * "archive <first 12 digits of its hash>" wherever it appears. */
static void s_check_archive(struct pool *p, struct pool_req *r)
{
    /* The archive is read whole here anyway: its hash first, so that a
     * damaged one is set aside and uploaded again, not refused for ever. */
    char why[256];
    int rc = s_check_blob(p, r, r->path, r->hash, r->expect_size, why, sizeof why);
    if (rc == TSR_EHASH || rc == TSR_ENOTFOUND) {
        r->rc = TSR_ENOTFOUND;
        snprintf(r->err, sizeof r->err, "archive %.12s was damaged on the master and has "
                 "been set aside; upload it again", r->hash);
        return;
    }
    s_check_archive_at(p, r);
    char quoted[sizeof r->path + 2];
    snprintf(quoted, sizeof quoted, "'%s'", r->path);
    const char *forms[2] = {quoted, r->path};
    for (int f = 0; f < 2; f++) {
        char *at;
        size_t plen = strlen(forms[f]);
        while ((at = strstr(r->err, forms[f])) != NULL) {
            char rest[sizeof r->err];
            snprintf(rest, sizeof rest, "%s", at + plen);
            snprintf(at, sizeof r->err - (size_t)(at - r->err), "archive %.12s%s", r->hash,
                     rest);
        }
    }
}

static void s_hash_upload(struct pool_req *r)
{
    char got[TSR_HASH_HEX];
    unsigned long long size = 0;
    r->rc = tsr_hash_file(r->path, got, &size);
    if (r->rc != 0) {
        snprintf(r->err, sizeof r->err, "cannot read the upload: %s", tsr_strerror(r->rc));
        unlink(r->path);
        return;
    }
    if (strcmp(got, r->hash) != 0 || size != r->size) {
        r->rc = TSR_EHASH;
        snprintf(r->err, sizeof r->err, "upload has sha256 %.12s and %llu bytes, "
                 "not %.12s and %llu as announced", got, size, r->hash,
                 (unsigned long long)r->size);
        unlink(r->path);
        return;
    }
    int fd = open(r->path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    char dir[sizeof r->path2];
    snprintf(dir, sizeof dir, "%s", r->path2);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    if (tsr_mkdir_p(dir) != 0 || rename(r->path, r->path2) != 0) {
        r->rc = s_errno_rc();
        snprintf(r->err, sizeof r->err, "cannot store the blob: %s", strerror(errno));
        unlink(r->path);
    }
}

static void s_write_chunk(struct pool_req *r)
{
    int fd = open(r->path, O_WRONLY | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        r->rc = s_errno_rc();
        snprintf(r->err, sizeof r->err, "cannot open staging file: %s", strerror(errno));
        return;
    }
    size_t done = 0;
    while (done < r->len) {
        ssize_t n = pwrite(fd, (char *)r->data + done, r->len - done,
                           (off_t)(r->offset + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r->rc = s_errno_rc();
            snprintf(r->err, sizeof r->err, "cannot write chunk: %s", strerror(errno));
            break;
        }
        done += (size_t)n;
    }
    close(fd);
    free(r->data);
    r->data = NULL;
}

static void s_read_chunk(struct pool *p, struct pool_req *r)
{
    int fd = open(r->path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        r->rc = TSR_ENOTFOUND;
        snprintf(r->err, sizeof r->err, "blob %.12s is not on the master", r->hash);
        if (fd >= 0)
            close(fd);
        return;
    }
    r->size = (uint64_t)st.st_size;
    if (r->expect_size && r->size != r->expect_size) {
        /* Cut short or grown: not the blob of its name, and cheap to see. */
        close(fd);
        s_set_aside(p, r, r->path, r->hash);
        r->rc = TSR_ENOTFOUND;
        snprintf(r->err, sizeof r->err, "blob %.12s is not on the master", r->hash);
        return;
    }
    if (r->offset > r->size) {
        close(fd);
        r->rc = TSR_EINVAL;
        snprintf(r->err, sizeof r->err, "offset %llu past the end of blob %.12s",
                 (unsigned long long)r->offset, r->hash);
        return;
    }
    if (r->len > r->size - r->offset)
        r->len = (size_t)(r->size - r->offset);
    r->data = malloc(r->len ? r->len : 1);
    size_t done = 0;
    while (r->data && done < r->len) {
        ssize_t n = pread(fd, (char *)r->data + done, r->len - done,
                          (off_t)(r->offset + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        done += (size_t)n;
    }
    close(fd);
    if (!r->data || done != r->len) {
        r->rc = TSR_EIO;
        snprintf(r->err, sizeof r->err, "cannot read blob %.12s", r->hash);
    }
}

static void s_verify_pieces(struct pool *p, struct pool_req *r)
{
    for (size_t i = 0; i < r->npieces; i++) {
        /* The piece was checked against its hash when it was uploaded: a
         * mismatch now is the master's disk, not the worker (r->rotten). */
        r->rc = s_check_blob(p, r, r->pieces[i], r->piece_hashes[i], 0, r->err,
                             sizeof r->err);
        if (r->rc != 0)
            return;
        char why[400] = "";
        r->rc = tsr_image_verify(r->pieces[i], &p->limits, &r->region, r->width, r->height,
                                 &r->stats, why, sizeof why);
        if (r->rc != 0) {
            snprintf(r->err, sizeof r->err, "piece %.12s: %s", r->piece_hashes[i], why);
            return;
        }
    }
}

/* Hashes the file at path2 and moves it into the blob store under its hash
 * (path holds the blob root): out_hash and size tell the reactor. */
static void s_store_blob(struct pool_req *r)
{
    unsigned long long size = 0;
    r->rc = tsr_hash_file(r->path2, r->out_hash, &size);
    if (r->rc != 0) {
        snprintf(r->err, sizeof r->err, "cannot read back what was written: %s",
                 tsr_strerror(r->rc));
        unlink(r->path2);
        return;
    }
    r->size = size;
    char dst[sizeof r->path + 80], dir[sizeof r->path + 8];
    snprintf(dir, sizeof dir, "%s/%.2s", r->path, r->out_hash);
    snprintf(dst, sizeof dst, "%s/%s", dir, r->out_hash);
    int fd = open(r->path2, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    if (tsr_mkdir_p(dir) != 0 || rename(r->path2, dst) != 0) {
        r->rc = s_errno_rc();
        snprintf(r->err, sizeof r->err, "cannot store blob: %s", strerror(errno));
        unlink(r->path2);
    }
}

static void s_assemble(struct pool *p, struct pool_req *r)
{
    char why[400] = "";
    /* Pieces are read again here, perhaps long after they came: a damaged
     * one is set aside (r->rotten; its tile is made again), never
     * assembled into a frame that would then verify. */
    for (size_t i = 0; i < r->npieces; i++) {
        r->rc = s_check_blob(p, r, r->pieces[i], r->piece_hashes[i], 0, r->err,
                             sizeof r->err);
        if (r->rc != 0)
            return;
    }
    if (r->npieces == 1) {
        /* A whole-frame piece is the frame and already a blob: no copy,
         * only the frame's check (and its statistics for the manifest). */
        struct tsr_region full = {0, 0, r->width, r->height};
        struct stat st;
        r->rc = tsr_image_verify(r->pieces[0], &p->limits, &full, r->width, r->height,
                                 &r->stats, why, sizeof why);
        if (r->rc == 0 && stat(r->pieces[0], &st) != 0)
            r->rc = TSR_EIO;
        if (r->rc != 0) {
            snprintf(r->err, sizeof r->err, "%s", why[0] ? why : "piece is gone");
            return;
        }
        snprintf(r->out_hash, sizeof r->out_hash, "%s", r->piece_hashes[0]);
        r->size = (uint64_t)st.st_size;
        return;
    }
    const char **paths = calloc(r->npieces, sizeof *paths);
    for (size_t i = 0; i < r->npieces; i++)
        paths[i] = r->pieces[i];
    r->rc = tsr_image_assemble(paths, r->npieces, &p->limits, r->path2, why, sizeof why);
    free(paths);
    struct tsr_region full = {0, 0, r->width, r->height};
    if (r->rc == 0)
        r->rc = tsr_image_verify(r->path2, &p->limits, &full, r->width, r->height,
                                 &r->stats, why, sizeof why);
    if (r->rc != 0) {
        snprintf(r->err, sizeof r->err, "%s", why[0] ? why : tsr_strerror(r->rc));
        unlink(r->path2);
        return;
    }
    s_store_blob(r);
}

#define SHEET_COLUMNS 8   /* contact sheet: most thumbnails per row */
#define SHEET_THUMB 160   /* contact sheet: thumbnail width */
#define SHEET_SLICE_MS 50 /* contact sheet: drawing between two turns */

/* A contact sheet a slice at a time (SHEET_SLICE_MS of drawing), so that
 * a sheet of a thousand frames holds a thread for no longer than any other
 * small request: between slices the request goes back to its lane. */
static void s_contact_sheet(struct pool *p, struct pool_req *r)
{
    struct s_sheet_work *w = r->work;
    if (!w) {
        w = calloc(1, sizeof *w);
        r->work = w;
        if (w) {
            w->paths = calloc(r->npieces, sizeof *w->paths);
            w->labels = calloc(r->npieces, sizeof *w->labels);
        }
        if (!w || !w->paths || !w->labels) {
            r->rc = TSR_ENOMEM;
            snprintf(r->err, sizeof r->err, "out of memory for a contact sheet");
            s_work_free(r);
            return;
        }
        for (size_t i = 0; i < r->npieces; i++) {
            w->paths[i] = r->pieces[i];
            w->labels[i] = r->labels[i];
        }
        int cols = r->npieces < SHEET_COLUMNS ? (int)r->npieces : SHEET_COLUMNS;
        r->rc = tsr_image_sheet_new(w->paths, w->labels, r->npieces, cols, SHEET_THUMB,
                                    &p->limits, &w->sheet, r->err, sizeof r->err);
        if (r->rc != 0) {
            s_work_free(r);
            return;
        }
    }
    int done = 0;
    r->rc = tsr_image_sheet_step(w->sheet, SHEET_SLICE_MS, r->path2, &done, r->err,
                                 sizeof r->err);
    if (r->rc == 0 && !done) {
        r->more = 1;
        return;
    }
    s_work_free(r);
    if (r->rc != 0) {
        unlink(r->path2);
        return;
    }
    s_store_blob(r);
}

/*
 * The background scrub's unit of work (scrub.c): hashes up to r->len bytes
 * of the blob at r->path from r->offset on, into r->hs, which holds the
 * hash of the bytes before. At the end of the file it compares with the
 * name and r->expect_size and fills out_hash; a damaged blob is set aside.
 * A file replaced between slices (another inode: set aside and uploaded
 * again meanwhile) is TSR_ESTATE, to be started again.
 */
static void s_scrub_slice(struct pool *p, struct pool_req *r)
{
    int fd = open(r->path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        if (fd < 0 && errno == ENOENT) {
            r->rc = TSR_ENOTFOUND;
            snprintf(r->err, sizeof r->err, "blob %.12s is missing from the master's store",
                     r->hash);
            snprintf(r->rotten, sizeof r->rotten, "%s", r->hash);
        } else {
            r->rc = TSR_EIO;
            snprintf(r->err, sizeof r->err, "cannot read blob %.12s: %s", r->hash,
                     strerror(errno));
        }
        if (fd >= 0)
            close(fd);
        return;
    }
    if (r->offset == 0)
        r->ino = (uint64_t)st.st_ino;
    if ((uint64_t)st.st_ino != r->ino) {
        close(fd);
        r->rc = TSR_ESTATE;
        return;
    }
    if ((uint64_t)st.st_size != r->expect_size) {
        close(fd);
        r->rc = TSR_EHASH;
        snprintf(r->err, sizeof r->err, "blob %.12s was damaged on the master (%llu bytes, "
                 "not %llu); set aside", r->hash, (unsigned long long)st.st_size,
                 (unsigned long long)r->expect_size);
        s_set_aside(p, r, r->path, r->hash);
        return;
    }
    enum { BUF = 256 * 1024 };
    unsigned char *buf = malloc(BUF);
    uint64_t end = r->offset + r->len;
    if (end > (uint64_t)st.st_size)
        end = (uint64_t)st.st_size;
    while (buf && r->offset < end) {
        size_t want = end - r->offset < BUF ? (size_t)(end - r->offset) : BUF;
        ssize_t n = pread(fd, buf, want, (off_t)r->offset);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        tsr_hash_update(&r->hs, buf, (size_t)n);
        r->offset += (uint64_t)n;
    }
    free(buf);
    close(fd);
    if (r->offset < end) {
        r->rc = TSR_EIO;
        snprintf(r->err, sizeof r->err, "cannot read blob %.12s", r->hash);
        return;
    }
    if (r->offset < (uint64_t)st.st_size)
        return; /* more slices to come */
    tsr_hash_end(&r->hs, r->out_hash);
    if (strcmp(r->out_hash, r->hash) != 0) {
        r->rc = TSR_EHASH;
        snprintf(r->err, sizeof r->err, "blob %.12s was damaged on the master (its bytes "
                 "hash to %.12s); set aside", r->hash, r->out_hash);
        s_set_aside(p, r, r->path, r->hash);
    }
}

/* Heavy requests in all may hold every thread but one (when there is more
 * than one): that one is the light requests'. */
static int s_heavy_cap(const struct pool *p)
{
    return p->nthreads > 1 ? p->nthreads - 1 : 1;
}

/* Takes the next request to run. Each lane offers its first request that
 * may run now (a light one may pass a heavy one that must wait); of those,
 * a light one goes first, else the heavy one of the lane with the fewest
 * heavy requests running (its fair share), ties broken round-robin. Under
 * p->lock; NULL when nothing may run now. */
static struct pool_req *s_take(struct pool *p)
{
    long best = -1, best_score = 0;
    struct qnode **best_np = NULL, *best_prev = NULL;
    int heavy_ok = p->heavy_running < s_heavy_cap(p);
    for (size_t k = 0; k < p->nlanes; k++) {
        size_t li = (p->next_lane + k) % p->nlanes;
        struct lane *l = &p->lanes[li];
        struct qnode *prev = NULL;
        for (struct qnode **np = &l->head; *np; prev = *np, np = &(*np)->next) {
            int light = s_light((*np)->req);
            if (!light && !heavy_ok)
                continue;
            long score = light ? -1 : l->heavy;
            if (best < 0 || score < best_score) {
                best = (long)li;
                best_score = score;
                best_np = np;
                best_prev = prev;
            }
            break;
        }
    }
    if (best < 0)
        return NULL;
    struct lane *l = &p->lanes[best];
    struct qnode *n = *best_np;
    struct pool_req *r = n->req;
    *best_np = n->next;
    if (l->tail == n)
        l->tail = best_prev;
    free(n);
    l->running++;
    p->waiting--;
    if (!s_light(r)) {
        l->heavy++;
        p->heavy_running++;
    }
    p->next_lane = (size_t)best + 1;
    return r;
}

/* Index of the lane named name, made if new; under p->lock. */
static long s_lane(struct pool *p, const char *name)
{
    for (size_t i = 0; i < p->nlanes; i++)
        if (strcmp(p->lanes[i].name, name) == 0)
            return (long)i;
    if (p->nlanes == p->caplanes) {
        size_t cap = p->caplanes ? p->caplanes * 2 : 16;
        struct lane *nl = realloc(p->lanes, cap * sizeof *nl);
        if (!nl)
            return -1;
        p->lanes = nl;
        p->caplanes = cap;
    }
    struct lane *l = &p->lanes[p->nlanes];
    memset(l, 0, sizeof *l);
    snprintf(l->name, sizeof l->name, "%s", name);
    return (long)p->nlanes++;
}

/* Appends req to its lane; under p->lock. With no memory for the queue the
 * request fails at once (it goes back to the reactor by a thread). */
static void s_enqueue(struct pool *p, struct pool_req *req)
{
    struct qnode *n = malloc(sizeof *n);
    long li = s_lane(p, req->lane);
    if (!n || li < 0) {
        /* Out of memory: keep it anyway in the first lane, or drop it. */
        li = p->nlanes ? 0 : -1;
        if (!n || li < 0) {
            free(n);
            tsr_log(TSR_LOG_ERROR, "pool", "out of memory: a request is lost");
            pool_req_free(req);
            return;
        }
    }
    n->req = req;
    n->next = NULL;
    struct lane *l = &p->lanes[li];
    if (l->tail)
        l->tail->next = n;
    else
        l->head = n;
    l->tail = n;
    p->waiting++;
}

/* A request of lane name finished; an idle lane is forgotten. Under p->lock. */
static void s_done(struct pool *p, const char *name, int light)
{
    long li = -1;
    for (size_t i = 0; i < p->nlanes && li < 0; i++)
        if (strcmp(p->lanes[i].name, name) == 0)
            li = (long)i;
    if (!light)
        p->heavy_running--;
    if (li < 0)
        return;
    struct lane *l = &p->lanes[li];
    l->running--;
    if (!light)
        l->heavy--;
    if (l->running == 0 && !l->head) {
        p->lanes[li] = p->lanes[--p->nlanes];
        if (p->next_lane > (size_t)li)
            p->next_lane--;
    }
}

static void *s_thread(void *arg)
{
    struct pool *p = arg;
    void *push = zmq_socket(p->zctx, ZMQ_PUSH);
    zmq_connect(push, POOL_ENDPOINT);
    for (;;) {
        pthread_mutex_lock(&p->lock);
        struct pool_req *r = NULL;
        while (!p->stopping && !(r = s_take(p)))
            pthread_cond_wait(&p->cond, &p->lock);
        pthread_mutex_unlock(&p->lock);
        if (!r)
            break; /* stopping; pool_stop frees what waits */
        int light = s_light(r);
        r->rc = 0;
        switch (r->kind) {
        case POOL_CHECK_ARCHIVE: s_check_archive(p, r); break;
        case POOL_HASH_UPLOAD: s_hash_upload(r); break;
        case POOL_WRITE_CHUNK: s_write_chunk(r); break;
        case POOL_READ_CHUNK: s_read_chunk(p, r); break;
        case POOL_VERIFY_PIECES: s_verify_pieces(p, r); break;
        case POOL_ASSEMBLE: s_assemble(p, r); break;
        case POOL_CONTACT_SHEET: s_contact_sheet(p, r); break;
        case POOL_VERIFY_BLOB:
            r->rc = s_check_blob(p, r, r->path, r->hash, r->expect_size, r->err,
                                 sizeof r->err);
            break;
        case POOL_SCRUB_SLICE: s_scrub_slice(p, r); break;
        default: r->rc = TSR_EINVAL; break;
        }
        char lane[sizeof r->lane];
        memcpy(lane, r->lane, sizeof lane);
        if (r->more) {
            /* A slice is done: back to the end of its lane, so the other
             * lanes have their turn first. */
            r->more = 0;
            pthread_mutex_lock(&p->lock);
            s_done(p, lane, light);
            s_enqueue(p, r);
            pthread_cond_broadcast(&p->cond);
            pthread_mutex_unlock(&p->lock);
            continue;
        }
        zmq_send(push, &r, sizeof r, 0); /* r is the reactor's again */
        pthread_mutex_lock(&p->lock);
        s_done(p, lane, light);
        pthread_cond_broadcast(&p->cond); /* a lane or heavy slot is free */
        pthread_mutex_unlock(&p->lock);
    }
    zmq_close(push);
    return NULL;
}

int pool_start(struct master *m, int nthreads)
{
    struct pool *p = calloc(1, sizeof *p);
    if (!p)
        return TSR_ENOMEM;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    p->zctx = m->zctx;
    tsr_image_limits_default(&p->limits);
    p->alimits = m->cfg.archive;
    snprintf(p->aside, sizeof p->aside, "%s/blobs/damaged", m->cfg.data_dir);
    m->pool_done = zmq_socket(m->zctx, ZMQ_PULL);
    if (!m->pool_done || zmq_bind(m->pool_done, POOL_ENDPOINT) != 0) {
        free(p);
        return TSR_EZMQ;
    }
    if (nthreads < 1)
        nthreads = 1;
    if (nthreads > POOL_MAX_THREADS)
        nthreads = POOL_MAX_THREADS;
    for (int i = 0; i < nthreads; i++) {
        if (pthread_create(&p->threads[i], NULL, s_thread, p) != 0)
            break;
        p->nthreads++;
    }
    m->pool = p;
    return p->nthreads ? 0 : TSR_ENOMEM;
}

/* The lane a request is charged to: who asked, else the job's owner, else
 * the job, else the connection. */
static void s_lane_name(struct master *m, struct pool_req *r)
{
    if (r->lane[0])
        return;
    struct job *j = r->job ? job_find(m, r->job) : NULL;
    if (r->user[0]) {
        snprintf(r->lane, sizeof r->lane, "%s", r->user);
    } else if (j && j->owner[0]) {
        snprintf(r->lane, sizeof r->lane, "%s", j->owner);
    } else if (r->job) {
        snprintf(r->lane, sizeof r->lane, "job:%llu", (unsigned long long)r->job);
    } else if (r->peer_len) {
        size_t k = (size_t)snprintf(r->lane, sizeof r->lane, "%s:",
                                    r->to_workers ? "worker-peer" : "client-peer");
        for (size_t i = 0; i < r->peer_len && k + 3 <= sizeof r->lane; i++)
            k += (size_t)snprintf(r->lane + k, sizeof r->lane - k, "%02x", r->peer[i]);
    } else {
        snprintf(r->lane, sizeof r->lane, "master");
    }
}

void pool_submit(struct master *m, struct pool_req *req)
{
    struct pool *p = m->pool;
    s_lane_name(m, req);
    pthread_mutex_lock(&p->lock);
    s_enqueue(p, req);
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
}

void pool_stop(struct master *m)
{
    struct pool *p = m->pool;
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->stopping = 1;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    /* Threads may be blocked sending completions: drain them while joining. */
    for (int i = 0; i < p->nthreads; i++) {
        for (;;) {
            struct pool_req *r;
            while (zmq_recv(m->pool_done, &r, sizeof r, ZMQ_DONTWAIT) == sizeof r)
                pool_req_free(r);
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 50 * 1000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            if (pthread_timedjoin_np(p->threads[i], NULL, &ts) == 0)
                break;
        }
    }
    struct pool_req *r;
    while (zmq_recv(m->pool_done, &r, sizeof r, ZMQ_DONTWAIT) == sizeof r)
        pool_req_free(r);
    for (size_t i = 0; i < p->nlanes; i++) {
        while (p->lanes[i].head) {
            struct qnode *n = p->lanes[i].head;
            p->lanes[i].head = n->next;
            pool_req_free(n->req);
            free(n);
        }
    }
    free(p->lanes);
    zmq_close(m->pool_done);
    m->pool_done = NULL;
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->cond);
    free(p);
    m->pool = NULL;
}
