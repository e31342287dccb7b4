/*
 * pool.c: the master's heavy-work threads.
 *
 * The reactor must never block on a disk, an archive or an image, so those
 * jobs (struct pool_req, master.h) go to a few threads. Requests wait in a
 * mutex-guarded queue (so a free thread takes the next one, whatever the
 * others are doing); each finished request goes back as a pointer over the
 * thread's own PUSH socket to the reactor's PULL socket (inproc), which the
 * reactor polls with everything else. A request belongs to whoever holds it:
 * the reactor until pool_submit, then the pool, then the reactor again.
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

struct pool {
    pthread_t threads[POOL_MAX_THREADS]; /* the workers */
    int nthreads;                        /* how many run */
    pthread_mutex_t lock;                /* guards the queue and stopping */
    pthread_cond_t cond;                 /* signalled on a new request */
    struct qnode *head, *tail;           /* requests waiting */
    int stopping;                        /* threads exit when set */
    void *zctx;                          /* for the threads' PUSH sockets */
    struct tsr_image_limits limits;      /* image limits for verification */
    struct tsr_archive_limits alimits;   /* archive limits */
};

struct qnode {
    struct pool_req *req; /* the request */
    struct qnode *next;   /* next in the queue */
};

void pool_req_free(struct pool_req *req)
{
    if (!req)
        return;
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

static void s_read_chunk(struct pool_req *r)
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
        char got[TSR_HASH_HEX];
        r->rc = tsr_hash_file(r->pieces[i], got, NULL);
        if (r->rc == 0 && strcmp(got, r->piece_hashes[i]) != 0)
            r->rc = TSR_EHASH;
        if (r->rc != 0) {
            snprintf(r->err, sizeof r->err, "piece %.12s: %s", r->piece_hashes[i],
                     r->rc == TSR_EHASH ? "content does not match its hash"
                                        : tsr_strerror(r->rc));
            return;
        }
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
    /* Each piece must still be what was verified: one that is gone or has
     * changed is named, and its tile is rendered again. */
    r->bad_piece = -1;
    for (size_t i = 0; i < r->npieces; i++) {
        char got[TSR_HASH_HEX];
        int rc = tsr_hash_file(r->pieces[i], got, NULL);
        if (rc == 0 && strcmp(got, r->piece_hashes[i]) == 0)
            continue;
        if (rc != 0 && rc != TSR_ENOTFOUND && access(r->pieces[i], F_OK) == 0) {
            r->rc = rc; /* it is there but could not be read: transient */
            snprintf(r->err, sizeof r->err, "cannot read piece %.12s: %s",
                     r->piece_hashes[i], tsr_strerror(rc));
            return;
        }
        r->rc = rc == 0 ? TSR_EHASH : TSR_ENOTFOUND;
        r->bad_piece = (int)i;
        snprintf(r->err, sizeof r->err, "piece %.12s %s", r->piece_hashes[i],
                 rc == 0 ? "does not match its hash" : "is missing");
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

static void s_contact_sheet(struct pool *p, struct pool_req *r)
{
    const char **paths = calloc(r->npieces, sizeof *paths);
    const char **labels = calloc(r->npieces, sizeof *labels);
    for (size_t i = 0; paths && labels && i < r->npieces; i++) {
        paths[i] = r->pieces[i];
        labels[i] = r->labels[i];
    }
    int cols = r->npieces < SHEET_COLUMNS ? (int)r->npieces : SHEET_COLUMNS;
    r->rc = paths && labels ? tsr_image_contact_sheet(paths, labels, r->npieces, cols,
                                                      SHEET_THUMB, &p->limits, r->path2,
                                                      r->err, sizeof r->err)
                            : TSR_ENOMEM;
    free(paths);
    free(labels);
    if (r->rc != 0) {
        unlink(r->path2);
        return;
    }
    s_store_blob(r);
}

static void *s_thread(void *arg)
{
    struct pool *p = arg;
    void *push = zmq_socket(p->zctx, ZMQ_PUSH);
    zmq_connect(push, POOL_ENDPOINT);
    for (;;) {
        pthread_mutex_lock(&p->lock);
        while (!p->head && !p->stopping)
            pthread_cond_wait(&p->cond, &p->lock);
        if (p->stopping && !p->head) {
            pthread_mutex_unlock(&p->lock);
            break;
        }
        struct qnode *n = p->head;
        p->head = n->next;
        if (!p->head)
            p->tail = NULL;
        pthread_mutex_unlock(&p->lock);
        struct pool_req *r = n->req;
        free(n);
        r->rc = 0;
        switch (r->kind) {
        case POOL_CHECK_ARCHIVE: s_check_archive(p, r); break;
        case POOL_HASH_UPLOAD: s_hash_upload(r); break;
        case POOL_WRITE_CHUNK: s_write_chunk(r); break;
        case POOL_READ_CHUNK: s_read_chunk(r); break;
        case POOL_VERIFY_PIECES: s_verify_pieces(p, r); break;
        case POOL_ASSEMBLE: s_assemble(p, r); break;
        case POOL_CONTACT_SHEET: s_contact_sheet(p, r); break;
        default: r->rc = TSR_EINVAL; break;
        }
        zmq_send(push, &r, sizeof r, 0);
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

void pool_submit(struct master *m, struct pool_req *req)
{
    struct pool *p = m->pool;
    struct qnode *n = malloc(sizeof *n);
    n->req = req;
    n->next = NULL;
    pthread_mutex_lock(&p->lock);
    if (p->tail)
        p->tail->next = n;
    else
        p->head = n;
    p->tail = n;
    pthread_cond_signal(&p->cond);
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
    while (p->head) {
        struct qnode *n = p->head;
        p->head = n->next;
        pool_req_free(n->req);
        free(n);
    }
    zmq_close(m->pool_done);
    m->pool_done = NULL;
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->cond);
    free(p);
    m->pool = NULL;
}
