/*
 * cache.c: scene archives by hash, their downloads and their extraction
 * (cache.h).
 *
 * A download is a table of chunks, each wanted, asked (a GET in flight,
 * with its request id) or had. DATA may come in any order and more than
 * once (a GET asked again after a stall or a reconnect): a chunk is written
 * where its offset says, once, and the whole file is hashed at the end, so
 * nothing depends on the master's order or on a chunk being sent once.
 * The hash runs along with the download over the chunks had in order (a
 * chunk that arrives early is read back when its turn comes), so finishing
 * a large archive does not stall the worker's loop for a whole pass.
 */
#include "cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tessera/archive.h"
#include "tessera/error.h"
#include "tessera/log.h"
#include "tessera/util.h"

#define S_LOG "cache"

/* A chunk's state in a download. */
enum s_chunk {
    S_WANT = 0, /* not asked for (or to be asked again) */
    S_ASKED,    /* a GET is in flight */
    S_HAVE,     /* written to the temporary file */
};

/* One download in progress. */
struct s_fetch {
    char hash[TSR_HASH_HEX]; /* the archive */
    uint64_t size;           /* its size in bytes */
    uint32_t nchunks;        /* chunks of TSR_PROTO_CHUNK bytes (the last shorter) */
    uint8_t *state;          /* enum s_chunk per chunk */
    int64_t *rid;            /* request id of the GET in flight, per chunk */
    uint32_t cursor;         /* no chunk before this one is S_WANT */
    uint32_t inflight;       /* chunks S_ASKED */
    uint32_t have;           /* chunks S_HAVE */
    int fd;                  /* the temporary file */
    char tmp[PATH_MAX];      /* its path */
    int64_t last_ms;         /* last DATA taken, or last (re)request */
    int stalls;              /* rounds without an answer, in a row */
    struct tsr_hash hash_st; /* sha256 of chunks [0, hashed) */
    uint32_t hashed;         /* chunks fed to hash_st, in order */
    struct s_fetch *next;    /* next download */
};

struct tsr_cache {
    char dir[PATH_MAX];      /* the cache folder, absolute */
    int lock_fd;             /* holds the flock on <dir>/lock */
    struct s_fetch *fetches; /* downloads in progress */
};

static void s_fetch_free(struct s_fetch *f)
{
    if (f->fd >= 0)
        close(f->fd);
    if (f->tmp[0])
        unlink(f->tmp);
    free(f->state);
    free(f->rid);
    free(f);
}

/* Removes entries of folder dir whose names are not hashes: staging folders
 * and partial files a killed worker left behind. */
static void s_sweep_non_hashes(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
            tsr_hash_valid(e->d_name))
            continue;
        char path[PATH_MAX];
        if (tsr_fmt(path, sizeof path, "%s/%s", dir, e->d_name) == 0)
            tsr_rm_rf(path);
    }
    closedir(d);
}

int tsr_cache_open(const char *dir, struct tsr_cache **out, char *err, size_t errlen)
{
    *out = NULL;
    struct tsr_cache *c = calloc(1, sizeof *c);
    if (!c)
        return TSR_ENOMEM;
    c->lock_fd = -1;
    char path[PATH_MAX];
    int rc = tsr_mkdir_p(dir);
    if (rc != 0 || !realpath(dir, c->dir)) {
        snprintf(err, errlen, "cannot create cache folder '%s': %s", dir,
                 strerror(errno));
        free(c);
        return rc == TSR_ELIMIT ? TSR_ELIMIT : TSR_EIO;
    }
    static const char *const subdirs[] = {"blobs", "scenes", "tmp"};
    for (size_t i = 0; i < 3; i++) {
        if (tsr_fmt(path, sizeof path, "%s/%s", c->dir, subdirs[i]) != 0 ||
            tsr_mkdir_p(path) != 0) {
            snprintf(err, errlen, "cannot create '%s/%s'", c->dir, subdirs[i]);
            free(c);
            return TSR_EIO;
        }
    }
    if (tsr_fmt(path, sizeof path, "%s/lock", c->dir) != 0 ||
        (c->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) < 0) {
        snprintf(err, errlen, "cannot open '%s/lock': %s", c->dir, strerror(errno));
        free(c);
        return TSR_EIO;
    }
    if (flock(c->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        snprintf(err, errlen, "cache folder '%s' is in use by another tessera-worker",
                 c->dir);
        close(c->lock_fd);
        free(c);
        return TSR_ESTATE;
    }
    /* We hold the lock: nothing in tmp/ or half-extracted is anyone's. */
    if (tsr_fmt(path, sizeof path, "%s/tmp", c->dir) == 0) {
        tsr_rm_rf(path);
        tsr_mkdir_p(path);
    }
    if (tsr_fmt(path, sizeof path, "%s/scenes", c->dir) == 0)
        s_sweep_non_hashes(path);
    *out = c;
    return 0;
}

void tsr_cache_destroy(struct tsr_cache **cp)
{
    struct tsr_cache *c = cp ? *cp : NULL;
    if (!c)
        return;
    while (c->fetches) {
        struct s_fetch *f = c->fetches;
        c->fetches = f->next;
        s_fetch_free(f);
    }
    if (c->lock_fd >= 0)
        close(c->lock_fd);
    free(c);
    *cp = NULL;
}

const char *tsr_cache_dir(const struct tsr_cache *c)
{
    return c->dir;
}

int tsr_cache_scene_dir(const struct tsr_cache *c, const char *hash, char *buf,
                        size_t size)
{
    return tsr_fmt(buf, size, "%s/scenes/%s", c->dir, hash);
}

static int s_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Extracts blobs/<hash> into scenes/<hash> unless that exists. A blob that
 * was not just verified is hashed again first: a file on disk can rot or be
 * replaced. */
static int s_extract(struct tsr_cache *c, const char *hash, int verified, char *err,
                     size_t errlen)
{
    char blob[PATH_MAX], scene[PATH_MAX];
    if (tsr_fmt(blob, sizeof blob, "%s/blobs/%s", c->dir, hash) != 0 ||
        tsr_cache_scene_dir(c, hash, scene, sizeof scene) != 0) {
        snprintf(err, errlen, "cache path too long");
        return TSR_ELIMIT;
    }
    if (s_is_dir(scene))
        return 0;
    char got[TSR_HASH_HEX];
    int rc = verified ? 0 : tsr_hash_file(blob, got, NULL);
    if (rc != 0) {
        snprintf(err, errlen, "cannot read cached archive %.12s: %s", hash,
                 tsr_strerror(rc));
        return rc;
    }
    if (!verified && strcmp(got, hash) != 0) {
        unlink(blob);
        snprintf(err, errlen, "cached archive %.12s does not match its hash; removed",
                 hash);
        return TSR_EHASH;
    }
    struct tsr_archive_limits lim;
    tsr_archive_limits_default(&lim);
    char why[400] = "";
    rc = tsr_archive_extract(blob, &lim, scene, why, sizeof why);
    if (rc != 0) {
        snprintf(err, errlen, "archive %.12s refused: %s", hash,
                 why[0] ? why : tsr_strerror(rc));
        return rc;
    }
    tsr_log(TSR_LOG_INFO, S_LOG, "archive %.12s extracted", hash);
    return 0;
}

static struct s_fetch *s_find(struct tsr_cache *c, const char *hash)
{
    for (struct s_fetch *f = c->fetches; f; f = f->next)
        if (strcmp(f->hash, hash) == 0)
            return f;
    return NULL;
}

static void s_unlink_fetch(struct tsr_cache *c, struct s_fetch *f)
{
    for (struct s_fetch **p = &c->fetches; *p; p = &(*p)->next) {
        if (*p == f) {
            *p = f->next;
            break;
        }
    }
    s_fetch_free(f);
}

/* Ends a download with rc and err into *done, and forgets it. */
static void s_fail(struct tsr_cache *c, struct s_fetch *f, int rc,
                   struct tsr_cache_done *done, const char *err)
{
    memcpy(done->hash, f->hash, TSR_HASH_HEX);
    done->rc = rc;
    snprintf(done->err, sizeof done->err, "%s", err);
    tsr_log(TSR_LOG_WARN, S_LOG, "download of archive %.12s failed: %s", f->hash, err);
    s_unlink_fetch(c, f);
}

/* Asks for wanted chunks of f while fewer than TSR_CACHE_INFLIGHT GETs of
 * all downloads together are in flight (the master's credit is per
 * connection, doc/protocol.md); *total counts them. */
static void s_pump_one(struct s_fetch *f, struct tsr_agent *a, uint32_t *total)
{
    while (*total < TSR_CACHE_INFLIGHT && f->cursor < f->nchunks) {
        uint32_t i = f->cursor;
        if (f->state[i] != S_WANT) {
            f->cursor++;
            continue;
        }
        uint64_t off = (uint64_t)i * TSR_PROTO_CHUNK;
        uint64_t len = f->size - off < TSR_PROTO_CHUNK ? f->size - off : TSR_PROTO_CHUNK;
        int64_t rid = tsr_agent_rid(a);
        cJSON *h = cJSON_CreateObject();
        if (!h)
            return;
        cJSON_AddNumberToObject(h, "rid", (double)rid);
        cJSON_AddStringToObject(h, "hash", f->hash);
        cJSON_AddNumberToObject(h, "offset", (double)off);
        cJSON_AddNumberToObject(h, "len", (double)len);
        int rc = tsr_agent_send(a, "GET", h, NULL, 0);
        cJSON_Delete(h);
        if (rc != 0)
            return; /* not registered: tsr_cache_resume asks again */
        f->state[i] = S_ASKED;
        f->rid[i] = rid;
        f->inflight++;
        (*total)++;
        f->cursor++;
    }
}

/* Fills the window, the oldest download first. */
static void s_pump(struct tsr_cache *c, struct tsr_agent *a)
{
    uint32_t total = 0;
    for (struct s_fetch *f = c->fetches; f; f = f->next)
        total += f->inflight;
    for (struct s_fetch *f = c->fetches; f && total < TSR_CACHE_INFLIGHT; f = f->next)
        s_pump_one(f, a, &total);
}

/* Marks every chunk in flight as wanted again and asks for them anew. */
static void s_reask(struct tsr_cache *c, struct s_fetch *f, struct tsr_agent *a,
                    int64_t now)
{
    for (uint32_t i = 0; i < f->nchunks; i++)
        if (f->state[i] == S_ASKED)
            f->state[i] = S_WANT;
    f->inflight = 0;
    f->cursor = 0;
    f->last_ms = now;
    s_pump(c, a);
}

/* Marks an archive as just used: its blob's mtime orders the LRU. */
static void s_touch(const struct tsr_cache *c, const char *hash)
{
    char blob[PATH_MAX];
    if (tsr_fmt(blob, sizeof blob, "%s/blobs/%s", c->dir, hash) == 0)
        utimensat(AT_FDCWD, blob, NULL, 0);
}

static uint64_t s_du_total; /* nftw has no context argument */

static int s_du_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)path;
    (void)type;
    (void)ftw;
    s_du_total += (uint64_t)st->st_blocks * 512;
    return 0;
}

/* Bytes a folder tree takes on disk, without following links. */
static uint64_t s_du(const char *path)
{
    s_du_total = 0;
    nftw(path, s_du_one, 16, FTW_PHYS);
    return s_du_total;
}

struct s_entry {
    char hash[TSR_HASH_HEX]; /* the archive */
    uint64_t bytes;          /* its blob and extracted scene */
    struct timespec used;    /* its last use */
};

static int s_by_use(const void *a, const void *b)
{
    const struct s_entry *x = a, *y = b;
    if (x->used.tv_sec != y->used.tv_sec)
        return x->used.tv_sec < y->used.tv_sec ? -1 : 1;
    return x->used.tv_nsec < y->used.tv_nsec ? -1 : x->used.tv_nsec > y->used.tv_nsec;
}

int tsr_cache_trim(struct tsr_cache *c, uint64_t max_bytes,
                   int (*in_use)(void *ctx, const char *hash), void *ctx)
{
    if (max_bytes == 0)
        return 0;
    char dir[PATH_MAX], path[PATH_MAX];
    if (tsr_fmt(dir, sizeof dir, "%s/blobs", c->dir) != 0)
        return 0;
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    struct s_entry *e = NULL;
    size_t n = 0, cap = 0;
    uint64_t total = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        struct stat st;
        if (!tsr_hash_valid(de->d_name) ||
            tsr_fmt(path, sizeof path, "%s/%s", dir, de->d_name) != 0 ||
            lstat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 32;
            struct s_entry *ne = realloc(e, cap * sizeof *e);
            if (!ne)
                break;
            e = ne;
        }
        struct s_entry *x = &e[n++];
        memcpy(x->hash, de->d_name, TSR_HASH_HEX); /* 64 hex digits and the NUL */
        x->used = st.st_mtim;
        x->bytes = (uint64_t)st.st_blocks * 512;
        if (tsr_cache_scene_dir(c, x->hash, path, sizeof path) == 0 && s_is_dir(path))
            x->bytes += s_du(path);
        total += x->bytes;
    }
    closedir(d);
    if (n > 0) /* qsort of NULL, even of nothing, is undefined */
        qsort(e, n, sizeof *e, s_by_use);
    int gone = 0;
    for (size_t i = 0; i < n && total > max_bytes; i++) {
        if ((in_use && in_use(ctx, e[i].hash)) || s_find(c, e[i].hash))
            continue;
        if (tsr_cache_scene_dir(c, e[i].hash, path, sizeof path) == 0)
            tsr_rm_rf(path);
        if (tsr_fmt(path, sizeof path, "%s/%s", dir, e[i].hash) == 0)
            unlink(path);
        total -= e[i].bytes;
        gone++;
        tsr_log(TSR_LOG_INFO, S_LOG, "archive %.12s evicted (least recently used)",
                e[i].hash);
    }
    free(e);
    return gone;
}

int tsr_cache_ensure(struct tsr_cache *c, struct tsr_agent *a, const char *hash,
                     uint64_t size, int *ready, char *err, size_t errlen)
{
    *ready = 0;
    char path[PATH_MAX];
    if (tsr_cache_scene_dir(c, hash, path, sizeof path) != 0) {
        snprintf(err, errlen, "cache path too long");
        return TSR_ELIMIT;
    }
    if (s_is_dir(path)) {
        s_touch(c, hash);
        *ready = 1;
        return 0;
    }
    if (tsr_fmt(path, sizeof path, "%s/blobs/%s", c->dir, hash) != 0) {
        snprintf(err, errlen, "cache path too long");
        return TSR_ELIMIT;
    }
    if (tsr_path_exists(path)) {
        int rc = s_extract(c, hash, 0, err, errlen);
        if (rc == 0)
            *ready = 1;
        if (rc != TSR_EHASH)
            return rc;
        /* A rotten blob was removed: download it again. */
    }
    struct s_fetch *f = s_find(c, hash);
    if (f) {
        if (f->size != size) {
            snprintf(err, errlen,
                     "archive %.12s is being fetched as %llu bytes, not %llu", hash,
                     (unsigned long long)f->size, (unsigned long long)size);
            return TSR_EINVAL;
        }
        return 0;
    }
    if (size == 0 || size > TSR_CACHE_MAX_ARCHIVE) {
        snprintf(err, errlen, "archive size %llu is past the limit of %llu bytes",
                 (unsigned long long)size, (unsigned long long)TSR_CACHE_MAX_ARCHIVE);
        return TSR_ELIMIT;
    }
    f = calloc(1, sizeof *f);
    if (!f)
        return TSR_ENOMEM;
    f->fd = -1;
    memcpy(f->hash, hash, TSR_HASH_HEX);
    f->size = size;
    f->nchunks = (uint32_t)((size + TSR_PROTO_CHUNK - 1) / TSR_PROTO_CHUNK);
    f->state = calloc(f->nchunks, 1);
    f->rid = calloc(f->nchunks, sizeof *f->rid);
    if (!f->state || !f->rid) {
        s_fetch_free(f);
        return TSR_ENOMEM;
    }
    if (tsr_fmt(f->tmp, sizeof f->tmp, "%s/tmp/%s.part", c->dir, hash) != 0 ||
        (f->fd = open(f->tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0) {
        snprintf(err, errlen, "cannot create '%s': %s", f->tmp, strerror(errno));
        f->tmp[0] = '\0';
        s_fetch_free(f);
        return TSR_EIO;
    }
    tsr_hash_begin(&f->hash_st);
    f->last_ms = tsr_now_ms();
    f->next = c->fetches;
    c->fetches = f;
    tsr_log(TSR_LOG_INFO, S_LOG, "fetching archive %.12s (%llu bytes)", hash,
            (unsigned long long)size);
    s_pump(c, a);
    return 0;
}

/* All chunks are in and hashed: verify, keep, extract. Fills *done. */
static void s_complete(struct tsr_cache *c, struct s_fetch *f,
                       struct tsr_cache_done *done)
{
    char err[512] = "";
    char blob[PATH_MAX];
    char got[TSR_HASH_HEX] = "";
    int rc = 0;
    if (fsync(f->fd) != 0)
        rc = errno == ENOSPC ? TSR_EFULL : TSR_EIO;
    close(f->fd);
    f->fd = -1;
    if (rc != 0) {
        s_fail(c, f, rc, done, "cannot write the downloaded archive");
        return;
    }
    tsr_hash_end(&f->hash_st, got);
    if (strcmp(got, f->hash) != 0) {
        snprintf(err, sizeof err, "downloaded archive hashes to %.12s, not %.12s", got,
                 f->hash);
        s_fail(c, f, TSR_EHASH, done, err);
        return;
    }
    if (tsr_fmt(blob, sizeof blob, "%s/blobs/%s", c->dir, f->hash) != 0 ||
        rename(f->tmp, blob) != 0) {
        s_fail(c, f, TSR_EIO, done, "cannot keep the downloaded archive");
        return;
    }
    f->tmp[0] = '\0'; /* renamed: nothing to unlink */
    memcpy(done->hash, f->hash, TSR_HASH_HEX);
    tsr_log(TSR_LOG_INFO, S_LOG, "archive %.12s downloaded", f->hash);
    s_unlink_fetch(c, f);
    done->rc = s_extract(c, done->hash, 1, done->err, sizeof done->err);
    if (done->rc == 0)
        done->err[0] = '\0';
}

/* Feeds the hash every chunk that is now next in order: chunk i from data,
 * later ones (which came early) read back from the file. */
static int s_hash_along(struct s_fetch *f, uint32_t i, const void *data, size_t len)
{
    if (i != f->hashed)
        return 0;
    tsr_hash_update(&f->hash_st, data, len);
    f->hashed++;
    unsigned char *buf = NULL;
    while (f->hashed < f->nchunks && f->state[f->hashed] == S_HAVE) {
        uint64_t off = (uint64_t)f->hashed * TSR_PROTO_CHUNK;
        size_t n =
            f->size - off < TSR_PROTO_CHUNK ? (size_t)(f->size - off) : TSR_PROTO_CHUNK;
        if (!buf && !(buf = malloc(TSR_PROTO_CHUNK)))
            return TSR_ENOMEM;
        size_t got = 0;
        while (got < n) {
            ssize_t r = pread(f->fd, buf + got, n - got, (off_t)(off + got));
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                free(buf);
                return TSR_EIO;
            }
            got += (size_t)r;
        }
        tsr_hash_update(&f->hash_st, buf, n);
        f->hashed++;
    }
    free(buf);
    return 0;
}

int tsr_cache_on_data(struct tsr_cache *c, struct tsr_agent *a, const struct tsr_msg *m,
                      struct tsr_cache_done *done, char *err, size_t errlen)
{
    const char *hash = NULL;
    int64_t offset = 0, size = 0;
    int rc;
    if ((rc = tsr_hdr_hash(m->hdr, "hash", &hash, err, errlen)) != 0 ||
        (rc = tsr_hdr_int(m->hdr, "offset", 0, INT64_C(1) << 53, &offset, err, errlen)) !=
            0 ||
        (rc = tsr_hdr_int(m->hdr, "size", 0, INT64_C(1) << 53, &size, err, errlen)) != 0)
        return rc;
    struct s_fetch *f = s_find(c, hash);
    if (!f)
        return 0; /* a late answer for a download that is over */
    if ((uint64_t)size != f->size) {
        char why[256];
        snprintf(why, sizeof why,
                 "master has archive %.12s as %lld bytes, the task said %llu", hash,
                 (long long)size, (unsigned long long)f->size);
        s_fail(c, f, TSR_EPROTO, done, why);
        return 1;
    }
    if ((uint64_t)offset >= f->size || offset % TSR_PROTO_CHUNK != 0) {
        snprintf(err, errlen, "DATA offset %lld is not a chunk of archive %.12s",
                 (long long)offset, hash);
        return TSR_EPROTO;
    }
    uint32_t i = (uint32_t)(offset / TSR_PROTO_CHUNK);
    uint64_t want = f->size - (uint64_t)offset;
    if (want > TSR_PROTO_CHUNK)
        want = TSR_PROTO_CHUNK;
    if (f->state[i] == S_HAVE)
        return 0; /* asked twice, answered twice */
    if (m->body_len != want) {
        if (f->state[i] == S_ASKED) {
            f->state[i] = S_WANT;
            f->inflight--;
            if (i < f->cursor)
                f->cursor = i;
            s_pump(c, a);
        }
        snprintf(err, errlen,
                 "DATA at offset %lld of archive %.12s has %zu bytes, not %llu",
                 (long long)offset, hash, m->body_len, (unsigned long long)want);
        return TSR_EPROTO;
    }
    const char *p = m->body;
    size_t left = m->body_len;
    off_t at = (off_t)offset;
    while (left > 0) {
        ssize_t n = pwrite(f->fd, p, left, at);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int full = errno == ENOSPC || errno == EDQUOT;
            char why[256];
            snprintf(why, sizeof why, "cannot write the download: %s", strerror(errno));
            s_fail(c, f, full ? TSR_EFULL : TSR_EIO, done, why);
            return 1;
        }
        p += n;
        left -= (size_t)n;
        at += n;
    }
    if (f->state[i] == S_ASKED)
        f->inflight--;
    f->state[i] = S_HAVE;
    f->have++;
    if ((rc = s_hash_along(f, i, m->body, m->body_len)) != 0) {
        s_fail(c, f, rc, done, "cannot read back the download to hash it");
        return 1;
    }
    f->last_ms = tsr_now_ms();
    f->stalls = 0;
    if (f->have == f->nchunks) {
        s_complete(c, f, done);
        s_pump(c, a); /* the window it held goes to the next download */
        return 1;
    }
    s_pump(c, a);
    return 0;
}

int tsr_cache_on_error(struct tsr_cache *c, int64_t rid, int code, const char *message,
                       struct tsr_cache_done *done)
{
    for (struct s_fetch *f = c->fetches; f; f = f->next) {
        for (uint32_t i = 0; i < f->nchunks; i++) {
            if (f->state[i] != S_ASKED || f->rid[i] != rid)
                continue;
            if (code == TSR_EBUSY) {
                /* Past the master's credit (a GET asked again after a
                 * stall while the first was still queued): ask again when
                 * the next DATA comes back. */
                f->state[i] = S_WANT;
                f->inflight--;
                if (i < f->cursor)
                    f->cursor = i;
                tsr_log(TSR_LOG_INFO, S_LOG, "archive %.12s: %s; asking again later",
                        f->hash, message);
                return 2;
            }
            char why[400];
            snprintf(why, sizeof why, "master refused GET of archive %.12s: %s", f->hash,
                     message);
            s_fail(c, f, code < 0 && code >= TSR_EFULL ? code : TSR_EPROTO, done, why);
            return 1;
        }
    }
    return 0;
}

void tsr_cache_resume(struct tsr_cache *c, struct tsr_agent *a)
{
    int64_t now = tsr_now_ms();
    for (struct s_fetch *f = c->fetches; f; f = f->next) {
        f->stalls = 0;
        s_reask(c, f, a, now);
    }
}

int tsr_cache_tick(struct tsr_cache *c, struct tsr_agent *a, int64_t now,
                   struct tsr_cache_done *done, int64_t *next)
{
    *next = INT64_MAX;
    if (!tsr_agent_welcomed(a))
        return 0; /* paused; tsr_cache_resume restarts the clocks */
    for (struct s_fetch *f = c->fetches; f; f = f->next) {
        if (now - f->last_ms < TSR_CACHE_STALL_MS) {
            if (f->last_ms + TSR_CACHE_STALL_MS < *next)
                *next = f->last_ms + TSR_CACHE_STALL_MS;
            continue;
        }
        if (++f->stalls >= TSR_CACHE_STALLS) {
            s_fail(c, f, TSR_ETIMEOUT, done,
                   "download stalled: the master stopped answering");
            *next = now;
            return 1;
        }
        tsr_log(TSR_LOG_WARN, S_LOG, "download of archive %.12s stalled; asking again",
                f->hash);
        s_reask(c, f, a, now);
        if (f->last_ms + TSR_CACHE_STALL_MS < *next)
            *next = f->last_ms + TSR_CACHE_STALL_MS;
    }
    return 0;
}
