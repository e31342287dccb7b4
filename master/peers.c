/*
 * peers.c: what the master holds for each peer it answers, and the credit
 * of its downloads.
 *
 * ZeroMQ's ROUTER keeps whatever the master sends a peer until the peer
 * reads it; a peer that asks and never reads would make the master hold
 * everything it asked for (600 unread GETs of 4 MiB: 2.4 GiB). So every
 * message the reactor sends is counted against its peer (socket and routing
 * id) until ZeroMQ lets go of it: the free callback of its last frame runs,
 * on ZeroMQ's I/O thread, once the bytes went to the kernel, were encrypted
 * or were dropped. With that count:
 *
 *  - GET has a credit per peer (doc/protocol.md): at most PEER_GET_ACTIVE
 *    GETs are active (read by the pool, waiting in the outbox, or inside
 *    ZeroMQ), at most PEER_GET_HELD more wait unread (a few bytes each) and
 *    start in order as DATA leaves; past that a GET is refused with
 *    TSR_EBUSY. A peer thus costs at most PEER_GET_ACTIVE x 4 MiB of chunks.
 *  - Any other message to a peer that has PEER_OUT_MAX bytes not yet taken
 *    is dropped (as ROUTER drops at its high-water mark, but counted in
 *    bytes, so large replies cannot pile up either); logged once per peer.
 *
 * Only the counters are shared with the I/O thread (atomics); the table,
 * its entries and the waiting GETs are the reactor's. An entry is freed only
 * when nothing of its peer is active or queued, so no callback can still
 * hold it.
 */
#include "master.h"

#include "tessera/error.h"
#include "tessera/log.h"
#include "tessera/util.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <zmq.h>

#define PEERS_BUCKETS 256

/* A GET waiting for its peer's credit. */
struct peer_get {
    int64_t rid;             /* its request id */
    char hash[TSR_HASH_HEX]; /* blob asked for */
    uint64_t offset;         /* where */
    size_t len;              /* how many bytes */
    char user[64];           /* who asked (the pool's lane) */
};

/* One peer of one ROUTER socket. */
struct peer_out {
    void *sock;                              /* m->clients or m->workers_sock */
    unsigned char id[TSR_PROTO_MAX_ROUTING]; /* routing id */
    size_t id_len;                           /* its length */
    atomic_size_t queued;                    /* bytes handed to ZeroMQ, not yet let go */
    atomic_int gets;                         /* GETs active (see above) */
    struct peer_get *held;                   /* ring of waiting GETs (owned) */
    size_t held_first, nheld;                /* ring start and count */
    uint64_t dropped;                        /* replies dropped, not reading */
    uint64_t refused;                        /* GETs refused, past the credit */
    int warned;                              /* logged since it last caught up */
    struct peer_out *next;                   /* hash chain */
};

struct peers {
    struct peer_out *bucket[PEERS_BUCKETS]; /* by routing id */
    int efd;      /* eventfd: a GET's DATA left ZeroMQ (wakes the reactor) */
    size_t nheld; /* waiting GETs over all peers */
};

/* What the free callback of a message's last frame needs. */
struct s_track {
    struct peer_out *p; /* the peer it counts against */
    size_t bytes;       /* bytes counted */
    int get;            /* it is a GET's DATA: returns one credit */
    int efd;            /* where to say so */
};

static unsigned s_hash(void *sock, const unsigned char *id, size_t len)
{
    unsigned h = 2166136261u ^ (unsigned)(uintptr_t)sock;
    for (size_t i = 0; i < len; i++)
        h = (h ^ id[i]) * 16777619u;
    return h % PEERS_BUCKETS;
}

static struct peer_out *s_find(struct peers *ps, void *sock, const void *id, size_t len,
                               int create)
{
    unsigned b = s_hash(sock, id, len);
    for (struct peer_out *p = ps->bucket[b]; p; p = p->next)
        if (p->sock == sock && p->id_len == len && memcmp(p->id, id, len) == 0)
            return p;
    if (!create)
        return NULL;
    struct peer_out *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->sock = sock;
    memcpy(p->id, id, len);
    p->id_len = len;
    atomic_init(&p->queued, 0);
    atomic_init(&p->gets, 0);
    p->next = ps->bucket[b];
    ps->bucket[b] = p;
    return p;
}

static void s_hex(const struct peer_out *p, char *out, size_t outlen)
{
    size_t k = 0;
    for (size_t i = 0; i < p->id_len && k + 3 <= outlen; i++)
        k += (size_t)snprintf(out + k, outlen - k, "%02x", p->id[i]);
    out[k < outlen ? k : 0] = '\0';
}

int peers_init(struct master *m)
{
    struct peers *ps = calloc(1, sizeof *ps);
    if (!ps)
        return TSR_ENOMEM;
    ps->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (ps->efd < 0) {
        free(ps);
        return TSR_EIO;
    }
    m->peers = ps;
    return 0;
}

/* After zmq_ctx_term: ZeroMQ has let go of every message by then. */
void peers_destroy(struct master *m)
{
    struct peers *ps = m->peers;
    if (!ps)
        return;
    for (int b = 0; b < PEERS_BUCKETS; b++) {
        while (ps->bucket[b]) {
            struct peer_out *p = ps->bucket[b];
            ps->bucket[b] = p->next;
            free(p->held);
            free(p);
        }
    }
    close(ps->efd);
    free(ps);
    m->peers = NULL;
}

int peers_fd(const struct master *m)
{
    return m->peers->efd;
}

/* ZeroMQ's I/O thread (or the reactor, for a frame never sent): the last
 * frame of a counted message is let go. Touches p only through the
 * atomics, queued last: once queued is 0 the reactor may free p. */
static void s_let_go(void *data, void *hint)
{
    struct s_track t = *(struct s_track *)hint;
    free(hint);
    free(data);
    if (t.get)
        atomic_fetch_sub(&t.p->gets, 1);
    atomic_fetch_sub(&t.p->queued, t.bytes);
    if (t.get) {
        uint64_t one = 1;
        ssize_t n = write(t.efd, &one, sizeof one);
        (void)n; /* a full eventfd is awake already */
    }
}

void peers_flush_one(struct master *m, void *sock, const void *peer, size_t peer_len,
                     const char *cmd, char *hdr, void *body, size_t body_len, int get)
{
    struct peers *ps = m->peers;
    size_t hlen = hdr ? strlen(hdr) : 0;
    size_t bytes = hlen + body_len + 64;
    struct peer_out *p = s_find(ps, sock, peer, peer_len, 1);
    struct s_track *t = p && hdr ? malloc(sizeof *t) : NULL;
    if (!t) {
        if (get && p)
            atomic_fetch_sub(&p->gets, 1);
        free(hdr);
        free(body);
        return;
    }
    if (!get && atomic_load(&p->queued) + bytes > PEER_OUT_MAX) {
        /* The peer does not read what it asked for: what it would not
         * read is not kept for it. */
        p->dropped++;
        if (!p->warned) {
            char id[2 * 16 + 1];
            s_hex(p, id, sizeof id);
            tsr_log(TSR_LOG_WARN, "peers",
                    "peer %s on the %s endpoint does not read its replies (%zu bytes "
                    "waiting); dropping '%s' and what follows until it catches up",
                    id, sock == m->workers_sock ? "worker" : "client",
                    (size_t)atomic_load(&p->queued), cmd);
            p->warned = 1;
        }
        free(t);
        free(hdr);
        free(body);
        return;
    }
    *t = (struct s_track){.p = p, .bytes = bytes, .get = get, .efd = ps->efd};
    atomic_fetch_add(&p->queued, bytes);
    /* ROUTER drops messages for peers that are gone (the callback still
     * runs); a peer that comes back asks again. */
    zmq_send(sock, peer, peer_len, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(sock, TSR_PROTO_SIGNATURE, 4, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(sock, cmd, strlen(cmd), ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_msg_t part;
    if (body) {
        zmq_send(sock, hdr, hlen, ZMQ_SNDMORE | ZMQ_DONTWAIT);
        free(hdr);
        zmq_msg_init_data(&part, body, body_len, s_let_go, t);
    } else {
        zmq_msg_init_data(&part, hdr, hlen, s_let_go, t);
    }
    if (zmq_msg_send(&part, sock, ZMQ_DONTWAIT) < 0)
        zmq_msg_close(&part); /* runs s_let_go */
}

void peers_get_ended(struct master *m, void *sock, const void *peer, size_t peer_len)
{
    struct peer_out *p = s_find(m->peers, sock, peer, peer_len, 0);
    if (p)
        atomic_fetch_sub(&p->gets, 1);
    peers_wake(m);
}

int peers_get(struct master *m, void *sock, const struct tsr_msg *msg, int64_t rid,
              const char *hash, uint64_t offset, size_t len)
{
    struct peers *ps = m->peers;
    struct peer_out *p = s_find(ps, sock, msg->peer, msg->peer_len, 1);
    if (!p) {
        master_send_error(m, sock, msg->peer, msg->peer_len, "GET", rid, TSR_ENOMEM,
                          "out of memory");
        return TSR_ENOMEM;
    }
    if (p->nheld == 0 && atomic_load(&p->gets) < PEER_GET_ACTIVE) {
        atomic_fetch_add(&p->gets, 1);
        blobs_start_read(m, sock, msg->peer, msg->peer_len, msg->user, rid, hash, offset,
                         len);
        return 0;
    }
    if (p->nheld >= PEER_GET_HELD) {
        p->refused++;
        if (!p->warned) {
            char id[2 * 16 + 1];
            s_hex(p, id, sizeof id);
            tsr_log(
                TSR_LOG_WARN, "peers",
                "peer %s on the %s endpoint: GET refused, %d in flight and %d waiting "
                "unread (a downloader keeps a window, doc/protocol.md)",
                id, sock == m->workers_sock ? "worker" : "client", PEER_GET_ACTIVE,
                PEER_GET_HELD);
            p->warned = 1;
        }
        char err[200];
        snprintf(err, sizeof err,
                 "too many GETs in flight: at most %d are served and %d "
                 "wait; read the DATA already asked for, then ask again",
                 PEER_GET_ACTIVE, PEER_GET_HELD);
        master_send_error(m, sock, msg->peer, msg->peer_len, "GET", rid, TSR_EBUSY, err);
        return TSR_EBUSY;
    }
    if (!p->held) {
        p->held = calloc(PEER_GET_HELD, sizeof *p->held);
        if (!p->held) {
            master_send_error(m, sock, msg->peer, msg->peer_len, "GET", rid, TSR_ENOMEM,
                              "out of memory");
            return TSR_ENOMEM;
        }
    }
    struct peer_get *g = &p->held[(p->held_first + p->nheld) % PEER_GET_HELD];
    g->rid = rid;
    snprintf(g->hash, sizeof g->hash, "%s", hash);
    g->offset = offset;
    g->len = len;
    snprintf(g->user, sizeof g->user, "%s", msg->user);
    p->nheld++;
    ps->nheld++;
    return 0;
}

/* Starts the waiting GETs that have credit again. */
static void s_pump(struct master *m)
{
    struct peers *ps = m->peers;
    for (int b = 0; b < PEERS_BUCKETS && ps->nheld; b++) {
        for (struct peer_out *p = ps->bucket[b]; p; p = p->next) {
            while (p->nheld && atomic_load(&p->gets) < PEER_GET_ACTIVE) {
                struct peer_get g = p->held[p->held_first];
                p->held_first = (p->held_first + 1) % PEER_GET_HELD;
                p->nheld--;
                ps->nheld--;
                atomic_fetch_add(&p->gets, 1);
                blobs_start_read(m, p->sock, p->id, p->id_len, g.user, g.rid, g.hash,
                                 g.offset, g.len);
            }
        }
    }
}

void peers_wake(struct master *m)
{
    uint64_t n;
    ssize_t got = read(m->peers->efd, &n, sizeof n);
    (void)got; /* EAGAIN: nothing to clear */
    s_pump(m);
}

void peers_cron(struct master *m)
{
    struct peers *ps = m->peers;
    s_pump(m);
    for (int b = 0; b < PEERS_BUCKETS; b++) {
        for (struct peer_out **pp = &ps->bucket[b]; *pp;) {
            struct peer_out *p = *pp;
            /* queued first: a callback's last touch is its decrement of it */
            if (atomic_load(&p->queued) == 0 && atomic_load(&p->gets) == 0 &&
                p->nheld == 0) {
                if (p->dropped || p->refused) {
                    char id[2 * 16 + 1];
                    s_hex(p, id, sizeof id);
                    tsr_log(TSR_LOG_INFO, "peers",
                            "peer %s caught up: %llu replies dropped, %llu GETs refused",
                            id, (unsigned long long)p->dropped,
                            (unsigned long long)p->refused);
                }
                *pp = p->next;
                free(p->held);
                free(p);
                continue;
            }
            pp = &p->next;
        }
    }
}
