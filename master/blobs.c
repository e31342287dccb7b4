/*
 * blobs.c: the content-addressed blob store and its transfers.
 *
 * Blobs (scene archives, rendered pieces, assembled frames) live at
 * <data>/blobs/<first two hex digits>/<sha256>, and are listed in LMDB's
 * `blobs` database once whole and checked. Uploads land in
 * <data>/blobs/tmp/<hash>.<n>.part and move into place only after the pool
 * has hashed them and found the announced hash (PUT_END). Reading and
 * writing chunks happens on pool threads; the reactor only routes.
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
#define UPLOAD_IDLE_MS (10 * 60 * 1000)
#define BLOB_MAX_SIZE (64ULL << 30)

void blob_path(const struct master *m, const char *hash, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s/blobs/%.2s/%s", m->cfg.data_dir, hash, hash);
}

static void *s_sock(struct master *m, struct pool_req *r)
{
    return r->to_workers ? m->workers_sock : m->clients;
}

static struct upload *s_find(struct master *m, const char *hash)
{
    for (size_t i = 0; i < m->nuploads; i++)
        if (strcmp(m->uploads[i]->hash, hash) == 0)
            return m->uploads[i];
    return NULL;
}

static void s_drop(struct master *m, struct upload *u)
{
    for (size_t i = 0; i < m->nuploads; i++) {
        if (m->uploads[i] == u) {
            m->uploads[i] = m->uploads[--m->nuploads];
            break;
        }
    }
    free(u);
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
    snprintf(r->hash, sizeof r->hash, "%s", hash);
    return r;
}

void blobs_on_put(struct master *m, void *sock, struct tsr_msg *msg)
{
    char err[256];
    int64_t rid = -1, size = 0;
    const char *hash = NULL;
    tsr_hdr_int_opt(msg->hdr, "rid", 0, INT64_MAX / 2, &rid, NULL, 0);
    int rc = tsr_hdr_hash(msg->hdr, "hash", &hash, err, sizeof err);
    if (!rc)
        rc = tsr_hdr_int(msg->hdr, "size", 0, (int64_t)BLOB_MAX_SIZE, &size, err, sizeof err);
    if (rc) {
        master_send_error(m, sock, msg->peer, msg->peer_len, "PUT", rid, rc, err);
        return;
    }
    cJSON *h = cJSON_CreateObject();
    cJSON_AddNumberToObject(h, "rid", (double)rid);
    cJSON_AddStringToObject(h, "hash", hash);
    uint64_t have_size = 0;
    /* A studio without a claim on a blob the master holds sends it anyway:
     * "have" would tell it what other studios uploaded (access.c). */
    if (store_has_blob(m, hash, &have_size) && access_blob_readable(m, msg->user, hash)) {
        cJSON_AddBoolToObject(h, "have", 1);
    } else {
        /* Out of space: refused before any byte travels; a worker waits and
         * asks again (space.c). */
        if (space_refuse(m, err, sizeof err)) {
            cJSON_Delete(h);
            master_send_error(m, sock, msg->peer, msg->peer_len, "PUT", rid, TSR_EFULL, err);
            return;
        }
        struct upload *u = s_find(m, hash);
        if (u && u->size != (uint64_t)size) {
            cJSON_Delete(h);
            master_send_error(m, sock, msg->peer, msg->peer_len, "PUT", rid, TSR_EINVAL,
                              "an upload of this hash with another size is in progress");
            return;
        }
        if (!u) {
            u = calloc(1, sizeof *u);
            snprintf(u->hash, sizeof u->hash, "%s", hash);
            u->size = (uint64_t)size;
            static unsigned seq;
            snprintf(u->tmp, sizeof u->tmp, "%s/blobs/tmp/%s.%u.part", m->cfg.data_dir,
                     hash, ++seq);
            unlink(u->tmp);
            if (m->nuploads == m->capuploads) {
                m->capuploads = m->capuploads ? m->capuploads * 2 : 8;
                m->uploads = realloc(m->uploads, m->capuploads * sizeof *m->uploads);
            }
            m->uploads[m->nuploads++] = u;
        }
        u->last_ms = tsr_now_ms();
        access_upload_started(m, msg->user, hash);
        cJSON_AddBoolToObject(h, "have", 0);
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
    struct upload *u = rc ? NULL : s_find(m, hash);
    if (!rc && !u) {
        rc = TSR_ESTATE;
        snprintf(err, sizeof err, "no upload of %.12s in progress (send PUT first)", hash);
    }
    if (!rc) {
        uint64_t want = u->size - (uint64_t)offset < TSR_PROTO_CHUNK
                            ? u->size - (uint64_t)offset
                            : TSR_PROTO_CHUNK;
        if ((uint64_t)offset >= u->size || offset % TSR_PROTO_CHUNK != 0 ||
            msg->body_len != want) {
            rc = TSR_EINVAL;
            snprintf(err, sizeof err, "chunk at offset %lld of %zu bytes does not fit "
                     "a %llu-byte blob in %d-byte chunks", (long long)offset,
                     msg->body_len, (unsigned long long)u->size, TSR_PROTO_CHUNK);
        }
    }
    if (rc) {
        master_send_error(m, sock, msg->peer, msg->peer_len, "CHUNK", rid, rc, err);
        return;
    }
    struct pool_req *r = s_req(m, sock, msg, POOL_WRITE_CHUNK, rid, hash);
    snprintf(r->path, sizeof r->path, "%s", u->tmp);
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
    u->pending = 1; /* the hashing itself: no second PUT_END starts another */
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
    uint64_t size;
    if (store_has_blob(m, hash, &size) && access_blob_readable(m, msg->user, hash)) {
        cJSON *h = cJSON_CreateObject();
        cJSON_AddNumberToObject(h, "rid", (double)rid);
        cJSON_AddStringToObject(h, "hash", hash);
        cJSON_AddNumberToObject(h, "size", (double)size);
        master_send(m, sock, msg->peer, msg->peer_len, "PUT_DONE", h, NULL, 0);
        cJSON_Delete(h);
        return;
    }
    struct upload *u = s_find(m, hash);
    if (!u) {
        snprintf(err, sizeof err, "no upload of %.12s in progress", hash);
        master_send_error(m, sock, msg->peer, msg->peer_len, "PUT_END", rid, TSR_ESTATE, err);
        return;
    }
    if (u->size == 0) {
        /* An empty blob never had a chunk: create its staging file now. */
        FILE *f = fopen(u->tmp, "wb");
        if (f)
            fclose(f);
    }
    /* Remember whom to answer; if chunks are still being written, hashing
     * starts when the last one lands (blobs_on_pool_done). */
    u->ending = 1;
    u->reply_rid = rid;
    u->reply_workers = sock == m->workers_sock;
    memcpy(u->reply_peer, msg->peer, msg->peer_len);
    u->reply_peer_len = msg->peer_len;
    if (u->pending == 0)
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
    if (!rc && !store_has_blob(m, hash, NULL)) {
        rc = TSR_ENOTFOUND;
        snprintf(err, sizeof err, "blob %.12s is not on the master", hash);
    }
    if (rc) {
        master_send_error(m, sock, msg->peer, msg->peer_len, "GET", rid, rc, err);
        return;
    }
    struct pool_req *r = s_req(m, sock, msg, POOL_READ_CHUNK, rid, hash);
    blob_path(m, hash, r->path, sizeof r->path);
    r->offset = (uint64_t)offset;
    r->len = (size_t)len;
    pool_submit(m, r);
}

/* Completions of the pool's blob work. Returns 1 when req was one. */
int blobs_on_pool_done(struct master *m, struct pool_req *r)
{
    void *sock = s_sock(m, r);
    if (r->kind == POOL_READ_CHUNK) {
        if (r->rc != 0) {
            master_send_error(m, sock, r->peer, r->peer_len, "GET", r->rid, r->rc, r->err);
            return 1;
        }
        cJSON *h = cJSON_CreateObject();
        cJSON_AddNumberToObject(h, "rid", (double)r->rid);
        cJSON_AddStringToObject(h, "hash", r->hash);
        cJSON_AddNumberToObject(h, "offset", (double)r->offset);
        cJSON_AddNumberToObject(h, "size", (double)r->size);
        master_send_owned(m, sock, r->peer, r->peer_len, "DATA", h, r->data, r->len);
        r->data = NULL;
        cJSON_Delete(h);
        return 1;
    }
    if (r->kind == POOL_WRITE_CHUNK) {
        struct upload *u = s_find(m, r->hash);
        if (u)
            u->pending--;
        if (r->rc != 0) {
            master_send_error(m, sock, r->peer, r->peer_len, "CHUNK", r->rid, r->rc, r->err);
            tsr_log(TSR_LOG_ERROR, "blobs", "upload %.12s: %s", r->hash, r->err);
        } else {
            cJSON *h = cJSON_CreateObject();
            cJSON_AddNumberToObject(h, "rid", (double)r->rid);
            cJSON_AddStringToObject(h, "hash", r->hash);
            cJSON_AddNumberToObject(h, "offset", (double)r->offset);
            master_send(m, sock, r->peer, r->peer_len, "CHUNK_OK", h, NULL, 0);
            cJSON_Delete(h);
        }
        if (u && u->ending && u->pending == 0)
            s_start_hash(m, u);
        return 1;
    }
    if (r->kind == POOL_HASH_UPLOAD) {
        struct upload *u = s_find(m, r->hash);
        if (r->rc == 0) {
            store_put_blob(m, r->hash, r->size);
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
            s_drop(m, u);
        return 1;
    }
    return 0;
}

void blobs_cron(struct master *m)
{
    int64_t now = tsr_now_ms();
    for (size_t i = 0; i < m->nuploads;) {
        struct upload *u = m->uploads[i];
        if (!u->pending && !u->ending && now - u->last_ms > UPLOAD_IDLE_MS) {
            tsr_log(TSR_LOG_INFO, "blobs", "upload %.12s abandoned; staging file removed",
                    u->hash);
            unlink(u->tmp);
            s_drop(m, u);
            continue;
        }
        i++;
    }
}
