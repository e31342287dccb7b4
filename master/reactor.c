/*
 * reactor.c: the master's one loop (after the Guide's mdbroker.c and
 * redis's ae.c).
 *
 * Each cycle: poll both ROUTER sockets and the pool's completions, with a
 * timeout that wakes the cron (heartbeats, expiry); handle every message
 * waiting; dispatch tasks to workers with credit; commit the cycle's one
 * write transaction (group commit); only then send the replies queued in the
 * outbox. So a peer never hears of a state that is not on disk, and a busy
 * master pays one fsync per cycle, not per message.
 */
#include "auth.h"
#include "master.h"

#include "tessera/error.h"
#include "tessera/log.h"
#include "tessera/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define BATCH_MAX 2000 /* messages per socket per cycle, so no side starves */

/* A message waiting for the commit. */
struct outmsg {
    void *sock;                                /* where it goes */
    unsigned char peer[TSR_PROTO_MAX_ROUTING]; /* to whom */
    size_t peer_len;                           /* routing id length */
    char cmd[TSR_PROTO_MAX_CMD + 1];           /* command */
    char *hdr;                                 /* header text (owned) */
    void *body;                                /* body (owned) or NULL */
    size_t body_len;                           /* body length */
    int get;                                   /* DATA of a GET (peers.c credit) */
    struct outmsg *next;                       /* queue order */
};

void master_send_owned(struct master *m, void *sock, const void *peer, size_t peer_len,
                       const char *cmd, const cJSON *hdr, void *body, size_t body_len)
{
    struct outmsg *o = calloc(1, sizeof *o);
    if (!o) {
        free(body);
        return;
    }
    o->sock = sock;
    memcpy(o->peer, peer, peer_len);
    o->peer_len = peer_len;
    snprintf(o->cmd, sizeof o->cmd, "%s", cmd);
    o->hdr = hdr ? cJSON_PrintUnformatted(hdr) : strdup("{}");
    o->body = body;
    o->body_len = body_len;
    if (m->out_tail)
        m->out_tail->next = o;
    else
        m->out_head = o;
    m->out_tail = o;
}

void master_send_data(struct master *m, void *sock, const void *peer, size_t peer_len,
                      const cJSON *hdr, void *body, size_t body_len)
{
    master_send_owned(m, sock, peer, peer_len, "DATA", hdr, body, body_len);
    if (m->out_tail && m->out_tail->body == body)
        m->out_tail->get = 1;
    else
        peers_get_ended(m, sock, peer, peer_len); /* not queued: out of memory */
}

void master_send(struct master *m, void *sock, const void *peer, size_t peer_len,
                 const char *cmd, const cJSON *hdr, const void *body, size_t body_len)
{
    void *copy = NULL;
    if (body) {
        copy = malloc(body_len ? body_len : 1);
        if (!copy)
            return;
        memcpy(copy, body, body_len);
    }
    master_send_owned(m, sock, peer, peer_len, cmd, hdr, copy, body_len);
}

void master_send_error(struct master *m, void *sock, const void *peer, size_t peer_len,
                       const char *re, int64_t rid, int code, const char *message)
{
    /* The last guard of doc/security.md's promise: whatever still names a
     * file under the data folder goes out as a neutral word. */
    char text[1024];
    snprintf(text, sizeof text, "%s", message ? message : tsr_strerror(code));
    master_redact_data_dir(m->cfg.data_dir, text, sizeof text);
    cJSON *h = cJSON_CreateObject();
    cJSON_AddNumberToObject(h, "code", code);
    cJSON_AddStringToObject(h, "error", tsr_strerror(code));
    cJSON_AddStringToObject(h, "message", text);
    if (re)
        cJSON_AddStringToObject(h, "re", re);
    if (rid >= 0)
        cJSON_AddNumberToObject(h, "rid", (double)rid);
    master_send(m, sock, peer, peer_len, "ERROR", h, NULL, 0);
    cJSON_Delete(h);
}

static void s_flush(struct master *m)
{
    while (m->out_head) {
        struct outmsg *o = m->out_head;
        m->out_head = o->next;
        /* Counted against its peer until ZeroMQ lets go of it (peers.c). */
        peers_flush_one(m, o->sock, o->peer, o->peer_len, o->cmd, o->hdr, o->body,
                        o->body_len, o->get);
        free(o);
    }
    m->out_tail = NULL;
}

static void s_drop_outbox(struct master *m)
{
    while (m->out_head) {
        struct outmsg *o = m->out_head;
        m->out_head = o->next;
        if (o->get)
            peers_get_ended(m, o->sock, o->peer, o->peer_len);
        free(o->hdr);
        free(o->body);
        free(o);
    }
    m->out_tail = NULL;
}

void master_on_pool_done(struct master *m, struct pool_req *req)
{
    /* A blob the pool found damaged is forgotten, and what needed it mended,
     * before the request's own handler sees the failure (scrub.c). */
    if (req->rotten[0])
        scrub_blob_lost(m, req->rotten, req->err);
    /* Claims on blobs (access.c): a sheet drawn for a job (an upload's is
     * its uploader's, in blobs.c). */
    if (req->kind == POOL_CONTACT_SHEET && req->rc == 0) {
        struct job *j = job_find(m, req->job);
        if (j)
            access_grant(m, j->owner, req->out_hash);
    }
    /* The disk, not the request: the farm waits for space (space.c). */
    if (req->rc == TSR_EFULL &&
        (req->kind == POOL_WRITE_CHUNK || req->kind == POOL_HASH_UPLOAD ||
         req->kind == POOL_ASSEMBLE))
        space_note_full(m, 0, req->err);
    if (blobs_on_pool_done(m, req) || scrub_on_pool_done(m, req)) {
    } else if (req->kind == POOL_CHECK_ARCHIVE) {
        jobs_on_archive_checked(m, req);
    } else if (req->kind == POOL_VERIFY_PIECES) {
        workers_on_verified(m, req);
    } else if (req->kind == POOL_CONTACT_SHEET) {
        clients_on_sheet_done(m, req);
    } else if (req->kind == POOL_ASSEMBLE) {
        struct job *j = job_find(m, req->job);
        if (j && req->frame < j->nframes)
            frame_assembled(m, j, req->frame, req->rc, req->err, req->out_hash, req->size,
                            &req->stats, req->bad_piece);
    }
    pool_req_free(req);
}

/*
 * The gate of a master with keys: a message whose key was revoked since its
 * connection was made (or a worker key registering another worker) is
 * answered with ERROR and dropped. A worker whose messages are all dropped
 * falls silent for the master, which declares it lost after heartbeat x
 * liveness and requeues its attempts. Returns 1 when msg was refused.
 */
static int s_refused(struct master *m, void *sock, struct tsr_msg *msg, int is_workers)
{
    static char last_user[64];
    static int64_t last_ms;
    char why[256];
    if (access_check_message(m, msg, is_workers, why, sizeof why) == 0)
        return 0;
    int64_t now = tsr_now_ms();
    if (strcmp(last_user, msg->user) != 0 || now - last_ms > 10000) {
        tsr_log(TSR_LOG_WARN, "reactor", "refused %s on the %s endpoint: %s", msg->cmd,
                is_workers ? "worker" : "client", why);
        snprintf(last_user, sizeof last_user, "%s", msg->user);
        last_ms = now;
    }
    int64_t rid = -1;
    tsr_hdr_int_opt(msg->hdr, "rid", 0, INT64_MAX / 2, &rid, NULL, 0);
    master_send_error(m, sock, msg->peer, msg->peer_len, msg->cmd, rid, TSR_EACCESS, why);
    return 1;
}

static void s_drain(struct master *m, void *sock, int is_workers)
{
    for (int n = 0; n < BATCH_MAX; n++) {
        struct tsr_msg msg;
        char err[256] = "";
        int rc = tsr_msg_recv(sock, 1, 1, &msg, err, sizeof err);
        if (rc == TSR_ETIMEOUT)
            return;
        if (rc != 0) {
            tsr_log(TSR_LOG_WARN, "reactor", "refused a message on the %s endpoint: %s",
                    is_workers ? "worker" : "client", err);
            if (msg.peer_len)
                master_send_error(m, sock, msg.peer, msg.peer_len, NULL, -1, rc, err);
            tsr_msg_clear(&msg);
            if (rc == TSR_EZMQ)
                return;
            continue;
        }
        if (m->auth && s_refused(m, sock, &msg, is_workers)) {
            tsr_msg_clear(&msg);
            continue;
        }
        if (is_workers) {
            workers_on_message(m, &msg);
        } else {
            m->actor = msg.user;
            clients_on_message(m, &msg);
            m->actor = NULL;
        }
        tsr_msg_clear(&msg);
    }
}

int master_run(struct master *m)
{
    int64_t next_cron = 0;
    while (!m->stop) {
        int64_t now = tsr_now_ms();
        long timeout = next_cron > now ? (long)(next_cron - now) : 0;
        zmq_pollitem_t items[] = {
            {m->clients, 0, ZMQ_POLLIN, 0},
            {m->workers_sock, 0, ZMQ_POLLIN, 0},
            {m->pool_done, 0, ZMQ_POLLIN, 0},
            {NULL, peers_fd(m), ZMQ_POLLIN, 0},
        };
        store_maybe_grow(m);
        int rc = zmq_poll(items, 4, timeout);
        if (rc < 0 && zmq_errno() != EINTR) {
            tsr_log(TSR_LOG_ERROR, "reactor", "poll failed: %s", zmq_strerror(zmq_errno()));
            return TSR_EZMQ;
        }
        if (rc > 0) {
            if (items[0].revents & ZMQ_POLLIN)
                s_drain(m, m->clients, 0);
            if (items[1].revents & ZMQ_POLLIN)
                s_drain(m, m->workers_sock, 1);
            struct pool_req *req;
            for (int n = 0; n < BATCH_MAX; n++) {
                if (zmq_recv(m->pool_done, &req, sizeof req, ZMQ_DONTWAIT) != sizeof req)
                    break;
                master_on_pool_done(m, req);
            }
            if (items[3].revents & ZMQ_POLLIN)
                peers_wake(m);
        }
        now = tsr_now_ms();
        if (now >= next_cron) {
            workers_cron(m);
            blobs_cron(m);
            peers_cron(m);
            ratelimit_cron(m);
            access_cron(m);
            space_cron(m);
            if (m->frames_retry_ms && now >= m->frames_retry_ms) {
                m->frames_retry_ms = 0;
                for (size_t i = 0; i < m->njobs; i++)
                    frames_resume(m, m->jobs[i]);
            }
            if (now >= m->readers_check_ms) {
                /* Readers left by processes that died (mdb_stat, a backup
                 * tool) would pin old pages and grow the map for nothing. */
                int dead = 0;
                mdb_reader_check(m->env, &dead);
                if (dead)
                    tsr_log(TSR_LOG_INFO, "reactor", "cleared %d stale lmdb readers", dead);
                m->readers_check_ms = now + 60000;
            }
            int period = m->cfg.heartbeat_ms / 4;
            next_cron = now + (period < 50 ? 50 : period);
        }
        workers_dispatch(m);
        int wrote = m->txn != NULL;
        int crc = store_commit(m);
        if (crc != 0) {
            /* Nothing of this cycle is on disk, so nothing may be announced:
             * its replies are dropped. Memory ran ahead of LMDB: roll it
             * back to the last commit, as a restart would, but keep
             * serving. A full disk or map (space.c) makes work wait until
             * room returns; peers ask again (workers re-send results). */
            s_drop_outbox(m);
            if (store_reload(m) != 0) {
                tsr_log(TSR_LOG_ERROR, "reactor", "commit failed and the last committed "
                                                   "state cannot be reloaded; stopping");
                return TSR_EDB;
            }
            space_note_full(m, 1, crc == TSR_EFULL ? "the state map is full" : "commit failed");
            continue;
        }
        if (wrote)
            space_committed(m);
        s_flush(m);
    }
    return 0;
}
