/*
 * blobs.c: the content-addressed blob store and its transfers.
 *
 * Blobs (scene archives, rendered pieces, assembled frames) live at
 * <data>/blobs/<first two hex digits>/<sha256>, and are listed in LMDB's
 * `blobs` database once whole and checked. Reading and writing chunks
 * happens on pool threads; the reactor only routes.
 *
 * An upload is its uploader's own (doc/protocol.md, PUT): each PUT that the
 * master does not answer with "have" opens a new upload with its own id and
 * its own staging file, <data>/blobs/tmp/up-<id>.part, and only its
 * uploader (the same key; without keys, the same connection) may send it
 * chunks or end it. Knowing a hash reaches nobody else's bytes. A chunk is
 * taken only in range, on the chunk grid, of the right length and once (a
 * bit per chunk); PUT_END is taken only when every chunk came, and after it
 * no chunk is; the file is hashed only when every write is back, and moves
 * into place and into `blobs` only when its hash and size are the announced
 * ones. So the store never holds bytes that are not what their name says,
 * and the uploader alone is granted the blob (access.c).
 *
 * Uploads are bounded per uploader key, in count and in announced bytes,
 * and one that gets no new chunk for --upload-idle goes (a PUT again does
 * not keep it): an abandoned upload cannot hold the master's disk.
 *
 * Flow control is the sender's: PUT_OK grants `credit` chunks in flight and
 * each CHUNK_OK returns one (doc/protocol.md).
 */
#include "auth.h"
#include "master.h"

#include "tessera/error.h"
#include "tessera/log.h"
#include "tessera/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define UPLOAD_CREDIT 8
#define UPLOADS_MAX_TOTAL 4096 /* uploads in progress, all keys together */
#define BLOB_MAX_SIZE (64ULL << 30)

void blob_path(const struct master *m, const char *hash, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s/blobs/%.2s/%s", m->cfg.data_dir, hash, hash);
}

static void *s_sock(struct master *m, struct pool_req *r)
{
    return r->to_workers ? m->workers_sock : m->clients;
}

/* Whether u is the uploader's own: the same key; without keys (User-Id
 * ""), the same connection. */
static int s_mine(const struct upload *u, const struct tsr_msg *msg)
{
    if (msg->user[0] || u->user[0])
        return strcmp(u->user, msg->user) == 0;
    return u->peer_len == msg->peer_len && memcmp(u->peer, msg->peer, msg->peer_len) == 0;
}

static struct upload *s_by_id(struct master *m, uint64_t id)
{
    for (size_t i = 0; i < m->nuploads; i++)
        if (m->uploads[i]->id == id)
            return m->uploads[i];
    return NULL;
}

/* The sender's live upload of hash: the one named by "upload" when the
 * header has it, else its newest of that hash on this connection. */
static struct upload *s_find(struct master *m, const struct tsr_msg *msg, const char *hash)
{
    int64_t id = 0;
    tsr_hdr_int_opt(msg->hdr, "upload", 1, INT64_MAX / 2, &id, NULL, 0);
    struct upload *best = NULL;
    for (size_t i = 0; i < m->nuploads; i++) {
        struct upload *u = m->uploads[i];
        if (u->aborted || strcmp(u->hash, hash) != 0 || !s_mine(u, msg))
            continue;
        if (id ? u->id == (uint64_t)id
               : u->peer_len == msg->peer_len &&
                     memcmp(u->peer, msg->peer, msg->peer_len) == 0 &&
                     (!best || u->id > best->id))
            best = u;
    }
    return best;
}

static void s_free(struct upload *u)
{
    free(u->got);
    free(u);
}

static void s_drop(struct master *m, struct upload *u)
{
    for (size_t i = 0; i < m->nuploads; i++) {
        if (m->uploads[i] == u) {
            m->uploads[i] = m->uploads[--m->nuploads];
            break;
        }
    }
    s_free(u);
}

/* Ends u and removes its staging file; at once, or when the pool has given
 * back its last write (a write still in flight would make the file again). */
static void s_abort(struct master *m, struct upload *u)
{
    u->aborted = 1;
    if (u->pending)
        return;
    unlink(u->tmp);
    s_drop(m, u);
}

void blobs_free_uploads(struct master *m)
{
    for (size_t i = 0; i < m->nuploads; i++)
        s_free(m->uploads[i]);
    free(m->uploads);
    m->uploads = NULL;
    m->nuploads = m->capuploads = 0;
}

static struct pool_req *s_req(struct master *m, void *sock, struct tsr_msg *msg, int kind,
                              int64_t rid, const char *hash)
{
    struct pool_req *r = calloc(1, sizeof *r);
    r->kind = kind;
    r->to_workers = sock == m->workers_sock;
    memcpy(r->peer, msg->peer, msg->peer_len);
    r->peer_len = msg->peer_len;
    r->rid = rid;
    snprintf(r->user, sizeof r->user, "%s", msg->user); /* the pool's lane */
    snprintf(r->hash, sizeof r->hash, "%s", hash);
    return r;
}

/* Refuses a PUT past the bounds of the sender's key: the count of its
 * uploads in progress and their announced bytes. 0 or TSR_ELIMIT. */
static int s_bounded(struct master *m, const struct tsr_msg *msg, uint64_t size, char *err,
                     size_t errlen)
{
    int count = 0;
    uint64_t bytes = 0;
    for (size_t i = 0; i < m->nuploads; i++) {
        const struct upload *u = m->uploads[i];
        if (u->aborted || !s_mine(u, msg))
            continue;
        count++;
        bytes += u->size;
    }
    long long idle_s = (long long)(m->cfg.upload_idle_ms / 1000);
    if (count >= m->cfg.upload_max) {
        snprintf(err, errlen, "too many uploads in progress for this key (%d, the limit); "
                 "finish them, or wait: an upload without a new chunk for %lld s is "
                 "dropped", count, idle_s);
        return TSR_ELIMIT;
    }
    if (bytes + size > m->cfg.upload_max_bytes) {
        snprintf(err, errlen, "uploads in progress for this key would announce %llu MiB, "
                 "past the limit of %llu MiB; finish them, or wait: an upload without a "
                 "new chunk for %lld s is dropped",
                 (unsigned long long)((bytes + size) >> 20),
                 (unsigned long long)(m->cfg.upload_max_bytes >> 20), idle_s);
        return TSR_ELIMIT;
    }
    if (m->nuploads >= UPLOADS_MAX_TOTAL) {
        snprintf(err, errlen, "the master has %d uploads in progress, its limit; try again "
                 "later", UPLOADS_MAX_TOTAL);
        return TSR_ELIMIT;
    }
    return 0;
}

void blobs_on_put(struct master *m, void *sock, struct tsr_msg *msg)
{
    char err[320];
    int64_t rid = -1, size = 0;
    const char *hash = NULL;
    tsr_hdr_int_opt(msg->hdr, "rid", 0, INT64_MAX / 2, &rid, NULL, 0);
    int rc = tsr_hdr_hash(msg->hdr, "hash", &hash, err, sizeof err);
    if (!rc)
        rc = tsr_hdr_int(msg->hdr, "size", 0, (int64_t)BLOB_MAX_SIZE, &size, err, sizeof err);
    /* A studio without a claim on a blob the master holds sends it anyway:
     * "have" would tell it what other studios uploaded (access.c). */
    int have = !rc && store_has_blob(m, hash, NULL) && access_blob_readable(m, msg->user, hash);
    /* Out of space: refused before any byte travels; a worker waits and
     * asks again (space.c). */
    if (!rc && !have && space_refuse(m, err, sizeof err))
        rc = TSR_EFULL;
    if (!rc && !have)
        rc = s_bounded(m, msg, (uint64_t)size, err, sizeof err);
    struct upload *u = NULL;
    if (!rc && !have) {
        u = calloc(1, sizeof *u);
        uint32_t nchunks = (uint32_t)(((uint64_t)size + TSR_PROTO_CHUNK - 1) / TSR_PROTO_CHUNK);
        uint8_t *got = calloc(nchunks / 8 + 1, 1);
        if (!u || !got) {
            free(u);
            free(got);
            rc = TSR_ENOMEM;
            snprintf(err, sizeof err, "out of memory");
        } else {
            u->got = got;
            u->nchunks = nchunks;
        }
    }
    if (rc) {
        master_send_error(m, sock, msg->peer, msg->peer_len, "PUT", rid, rc, err);
        return;
    }
    cJSON *h = cJSON_CreateObject();
    cJSON_AddNumberToObject(h, "rid", (double)rid);
    cJSON_AddStringToObject(h, "hash", hash);
    cJSON_AddBoolToObject(h, "have", have);
    if (u) {
        if (!m->next_upload)
            m->next_upload = (uint64_t)tsr_wall_ms() << 8; /* not reused across runs */
        u->id = m->next_upload++;
        snprintf(u->hash, sizeof u->hash, "%s", hash);
        u->size = (uint64_t)size;
        snprintf(u->user, sizeof u->user, "%s", msg->user);
        memcpy(u->peer, msg->peer, msg->peer_len);
        u->peer_len = msg->peer_len;
        snprintf(u->tmp, sizeof u->tmp, "%s/blobs/tmp/up-%llu.part", m->cfg.data_dir,
                 (unsigned long long)u->id);
        u->last_ms = tsr_now_ms();
        if (m->nuploads == m->capuploads) {
            m->capuploads = m->capuploads ? m->capuploads * 2 : 8;
            m->uploads = realloc(m->uploads, m->capuploads * sizeof *m->uploads);
        }
        m->uploads[m->nuploads++] = u;
        cJSON_AddNumberToObject(h, "upload", (double)u->id);
        cJSON_AddNumberToObject(h, "chunk", TSR_PROTO_CHUNK);
        cJSON_AddNumberToObject(h, "credit", UPLOAD_CREDIT);
    }
    master_send(m, sock, msg->peer, msg->peer_len, "PUT_OK", h, NULL, 0);
    cJSON_Delete(h);
}

void blobs_on_chunk(struct master *m, void *sock, struct tsr_msg *msg)
{
    char err[256];
    int64_t rid = -1, offset = 0;
    const char *hash = NULL;
    tsr_hdr_int_opt(msg->hdr, "rid", 0, INT64_MAX / 2, &rid, NULL, 0);
    int rc = tsr_hdr_hash(msg->hdr, "hash", &hash, err, sizeof err);
    if (!rc)
        rc = tsr_hdr_int(msg->hdr, "offset", 0, (int64_t)BLOB_MAX_SIZE, &offset, err,
                         sizeof err);
    struct upload *u = rc ? NULL : s_find(m, msg, hash);
    if (!rc && !u) {
        rc = TSR_ESTATE;
        snprintf(err, sizeof err, "no upload of %.12s in progress (send PUT first)", hash);
    } else if (!rc && u->ending) {
        rc = TSR_ESTATE;
        snprintf(err, sizeof err, "the upload of %.12s has ended (PUT_END); no chunk is "
                 "taken after it", hash);
    }
    uint32_t idx = 0;
    if (!rc) {
        uint64_t want = u->size - (uint64_t)offset < TSR_PROTO_CHUNK
                            ? u->size - (uint64_t)offset
                            : TSR_PROTO_CHUNK;
        idx = (uint32_t)((uint64_t)offset / TSR_PROTO_CHUNK);
        if ((uint64_t)offset >= u->size || offset % TSR_PROTO_CHUNK != 0 ||
            msg->body_len != want) {
            rc = TSR_EINVAL;
            snprintf(err, sizeof err, "chunk at offset %lld of %zu bytes does not fit "
                     "a %llu-byte blob in %d-byte chunks", (long long)offset,
                     msg->body_len, (unsigned long long)u->size, TSR_PROTO_CHUNK);
        } else if (u->got[idx / 8] & (1u << (idx % 8))) {
            rc = TSR_EINVAL;
            snprintf(err, sizeof err, "chunk at offset %lld of %.12s was already received; "
                     "each chunk is sent once", (long long)offset, hash);
        }
    }
    if (rc) {
        master_send_error(m, sock, msg->peer, msg->peer_len, "CHUNK", rid, rc, err);
        return;
    }
    u->got[idx / 8] |= (uint8_t)(1u << (idx % 8));
    u->received++;
    struct pool_req *r = s_req(m, sock, msg, POOL_WRITE_CHUNK, rid, hash);
    snprintf(r->path, sizeof r->path, "%s", u->tmp);
    r->upload = u->id;
    r->offset = (uint64_t)offset;
    r->data = msg->body; /* the pool writes and frees it */
    r->len = msg->body_len;
    msg->body = NULL;
    msg->body_len = 0;
    u->pending++;
    u->last_ms = tsr_now_ms();
    pool_submit(m, r);
}

static void s_start_hash(struct master *m, struct upload *u)
{
    struct pool_req *r = calloc(1, sizeof *r);
    r->kind = POOL_HASH_UPLOAD;
    r->to_workers = u->reply_workers;
    memcpy(r->peer, u->reply_peer, u->reply_peer_len);
    r->peer_len = u->reply_peer_len;
    r->rid = u->reply_rid;
    r->upload = u->id;
    snprintf(r->user, sizeof r->user, "%s", u->user); /* the pool's lane */
    u->pending = 1; /* the hashing itself: nothing else touches the file */
    snprintf(r->hash, sizeof r->hash, "%s", u->hash);
    snprintf(r->path, sizeof r->path, "%s", u->tmp);
    blob_path(m, u->hash, r->path2, sizeof r->path2);
    r->size = u->size;
    pool_submit(m, r);
}

void blobs_on_put_end(struct master *m, void *sock, struct tsr_msg *msg)
{
    char err[256];
    int64_t rid = -1;
    const char *hash = NULL;
    tsr_hdr_int_opt(msg->hdr, "rid", 0, INT64_MAX / 2, &rid, NULL, 0);
    int rc = tsr_hdr_hash(msg->hdr, "hash", &hash, err, sizeof err);
    if (rc) {
        master_send_error(m, sock, msg->peer, msg->peer_len, "PUT_END", rid, rc, err);
        return;
    }
    struct upload *u = s_find(m, msg, hash);
    uint64_t size;
    if (store_has_blob(m, hash, &size) && access_blob_readable(m, msg->user, hash)) {
        if (u && !u->ending)
            s_abort(m, u); /* the sender may read the stored one: its own is moot */
        cJSON *h = cJSON_CreateObject();
        cJSON_AddNumberToObject(h, "rid", (double)rid);
        cJSON_AddStringToObject(h, "hash", hash);
        cJSON_AddNumberToObject(h, "size", (double)size);
        master_send(m, sock, msg->peer, msg->peer_len, "PUT_DONE", h, NULL, 0);
        cJSON_Delete(h);
        return;
    }
    if (!u) {
        snprintf(err, sizeof err, "no upload of %.12s in progress", hash);
        master_send_error(m, sock, msg->peer, msg->peer_len, "PUT_END", rid, TSR_ESTATE, err);
        return;
    }
    if (!u->ending && u->received < u->nchunks) {
        /* A blob is hashed only whole: a declared size with chunks missing
         * (a sparse file, to the disk) is refused, and nothing is kept. */
        snprintf(err, sizeof err, "upload of %.12s is incomplete: %u of %u chunks received; "
                 "nothing was stored", hash, u->received, u->nchunks);
        tsr_log(TSR_LOG_WARN, "blobs", "%s", err);
        s_abort(m, u);
        master_send_error(m, sock, msg->peer, msg->peer_len, "PUT_END", rid, TSR_EINVAL, err);
        return;
    }
    if (u->size == 0 && !u->ending) {
        /* An empty blob never had a chunk: create its staging file now. */
        FILE *f = fopen(u->tmp, "wb");
        if (f)
            fclose(f);
    }
    /* Remember whom to answer (a PUT_END again only moves the answer); if
     * chunks are still being written, hashing starts when the last one
     * lands (blobs_on_pool_done). */
    int first = !u->ending;
    u->ending = 1;
    u->reply_rid = rid;
    u->reply_workers = sock == m->workers_sock;
    memcpy(u->reply_peer, msg->peer, msg->peer_len);
    u->reply_peer_len = msg->peer_len;
    if (first && u->pending == 0)
        s_start_hash(m, u);
}

void blobs_on_get(struct master *m, void *sock, struct tsr_msg *msg)
{
    char err[256];
    int64_t rid = -1, offset = 0, len = 0;
    const char *hash = NULL;
    tsr_hdr_int_opt(msg->hdr, "rid", 0, INT64_MAX / 2, &rid, NULL, 0);
    int rc = tsr_hdr_hash(msg->hdr, "hash", &hash, err, sizeof err);
    if (!rc)
        rc = tsr_hdr_int(msg->hdr, "offset", 0, (int64_t)BLOB_MAX_SIZE, &offset, err,
                         sizeof err);
    if (!rc)
        rc = tsr_hdr_int(msg->hdr, "len", 0, TSR_PROTO_MAX_BODY, &len, err, sizeof err);
    uint64_t size = 0;
    if (!rc && !store_has_blob(m, hash, &size)) {
        rc = TSR_ENOTFOUND;
        snprintf(err, sizeof err, "blob %.12s is not on the master", hash);
    }
    if (rc) {
        master_send_error(m, sock, msg->peer, msg->peer_len, "GET", rid, rc, err);
        return;
    }
    /* Credit per peer (peers.c): started, held, or refused. */
    peers_get(m, sock, msg, rid, hash, (uint64_t)offset, (size_t)len);
}

void blobs_start_read(struct master *m, void *sock, const void *peer, size_t peer_len,
                      const char *user, int64_t rid, const char *hash, uint64_t offset,
                      size_t len)
{
    /* A GET held by peers.c starts later: the blob may have been set aside
     * meanwhile (scrub.c), and its size is what the read checks against. */
    uint64_t size = 0;
    if (!store_has_blob(m, hash, &size)) {
        peers_get_ended(m, sock, peer, peer_len);
        char err[96];
        snprintf(err, sizeof err, "blob %.12s is not on the master", hash);
        master_send_error(m, sock, peer, peer_len, "GET", rid, TSR_ENOTFOUND, err);
        return;
    }
    struct pool_req *r = calloc(1, sizeof *r);
    if (!r) {
        peers_get_ended(m, sock, peer, peer_len);
        master_send_error(m, sock, peer, peer_len, "GET", rid, TSR_ENOMEM, "out of memory");
        return;
    }
    r->kind = POOL_READ_CHUNK;
    r->to_workers = sock == m->workers_sock;
    memcpy(r->peer, peer, peer_len);
    r->peer_len = peer_len;
    r->rid = rid;
    snprintf(r->user, sizeof r->user, "%s", user);
    snprintf(r->hash, sizeof r->hash, "%s", hash);
    blob_path(m, hash, r->path, sizeof r->path);
    r->offset = offset;
    r->len = len;
    r->expect_size = size; /* a file of another size is damaged (pool.c) */
    pool_submit(m, r);
}

/* Completions of the pool's blob work. Returns 1 when req was one. */
int blobs_on_pool_done(struct master *m, struct pool_req *r)
{
    void *sock = s_sock(m, r);
    if (r->kind == POOL_READ_CHUNK) {
        if (r->rc != 0) {
            peers_get_ended(m, sock, r->peer, r->peer_len);
            master_send_error(m, sock, r->peer, r->peer_len, "GET", r->rid, r->rc, r->err);
            return 1;
        }
        cJSON *h = cJSON_CreateObject();
        cJSON_AddNumberToObject(h, "rid", (double)r->rid);
        cJSON_AddStringToObject(h, "hash", r->hash);
        cJSON_AddNumberToObject(h, "offset", (double)r->offset);
        cJSON_AddNumberToObject(h, "size", (double)r->size);
        master_send_data(m, sock, r->peer, r->peer_len, h, r->data, r->len);
        r->data = NULL;
        cJSON_Delete(h);
        return 1;
    }
    if (r->kind == POOL_WRITE_CHUNK) {
        struct upload *u = s_by_id(m, r->upload);
        if (u)
            u->pending--;
        if (u && r->rc != 0) {
            /* Not written: the sender may send it again. */
            uint32_t idx = (uint32_t)(r->offset / TSR_PROTO_CHUNK);
            u->got[idx / 8] &= (uint8_t)~(1u << (idx % 8));
            u->received--;
        }
        if (r->rc != 0) {
            master_send_error(m, sock, r->peer, r->peer_len, "CHUNK", r->rid, r->rc, r->err);
            tsr_log(TSR_LOG_ERROR, "blobs", "upload %.12s: %s", r->hash, r->err);
        } else if (u && !u->aborted) {
            cJSON *h = cJSON_CreateObject();
            cJSON_AddNumberToObject(h, "rid", (double)r->rid);
            cJSON_AddStringToObject(h, "hash", r->hash);
            cJSON_AddNumberToObject(h, "offset", (double)r->offset);
            master_send(m, sock, r->peer, r->peer_len, "CHUNK_OK", h, NULL, 0);
            cJSON_Delete(h);
        }
        if (u && u->aborted && u->pending == 0)
            s_abort(m, u);
        else if (u && u->ending && u->pending == 0)
            s_start_hash(m, u);
        return 1;
    }
    if (r->kind == POOL_HASH_UPLOAD) {
        struct upload *u = s_by_id(m, r->upload);
        if (r->rc == 0) {
            store_put_blob(m, r->hash, r->size);
            /* Its uploader sent every byte: it may read the blob. Nobody
             * else gains anything from this upload. */
            if (u)
                access_grant(m, u->user, r->hash);
            scrub_blob_stored(m, r->hash);
            cJSON *h = cJSON_CreateObject();
            cJSON_AddNumberToObject(h, "rid", (double)r->rid);
            cJSON_AddStringToObject(h, "hash", r->hash);
            cJSON_AddNumberToObject(h, "size", (double)r->size);
            master_send(m, sock, r->peer, r->peer_len, "PUT_DONE", h, NULL, 0);
            cJSON_Delete(h);
        } else {
            tsr_log(TSR_LOG_WARN, "blobs", "upload %.12s refused: %s", r->hash, r->err);
            master_send_error(m, sock, r->peer, r->peer_len, "PUT_END", r->rid, r->rc,
                              r->err);
        }
        if (u)
            s_drop(m, u); /* the pool moved or removed its file */
        return 1;
    }
    return 0;
}

void blobs_cron(struct master *m)
{
    int64_t now = tsr_now_ms();
    for (size_t i = 0; i < m->nuploads;) {
        struct upload *u = m->uploads[i];
        if (!u->pending && !u->ending && now - u->last_ms > m->cfg.upload_idle_ms) {
            tsr_log(TSR_LOG_INFO, "blobs", "upload %.12s (%u of %u chunks) abandoned; "
                    "staging file removed", u->hash, u->received, u->nchunks);
            s_abort(m, u); /* removes entry i */
            continue;
        }
        i++;
    }
    scrub_cron(m);
}
