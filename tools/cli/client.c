/*
 * client.c: the DEALER connection of client.h, request/reply by rid, and
 * chunked transfers under flow control.
 *
 * Everything here is single-threaded and blocking with a deadline: the CLI
 * does one thing at a time, so a poll with a timeout per reply is all the
 * machinery it needs. A deadline is reset by every reply that belongs to the
 * transfer in progress, so a long upload over a slow link only fails when
 * the master actually goes quiet.
 */
#include "client.h"
#include "format.h"

#include "tessera/curve.h"
#include "tessera/error.h"
#include "tessera/hash.h"
#include "tessera/proto.h"
#include "tessera/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#define S_MAX_RID ((int64_t)1 << 53) /* rids travel as exact JSON numbers */
#define S_GET_INFLIGHT 8             /* GETs kept in flight (doc/protocol.md) */
#define S_MAX_CREDIT 1024            /* most chunks we keep unacknowledged */

struct tsr_client {
    void *ctx;        /* ZeroMQ context, owned */
    void *sock;       /* DEALER connected to the master, owned */
    int timeout_ms;   /* longest wait for any one reply */
    int64_t next_rid; /* id of the next request */
    int reached;      /* some message from the master has arrived */
    int remote;       /* the last failure was the master's ERROR reply */
    char err[512];    /* the last failure's reason, one line */
    void *mon;        /* PAIR receiving the socket's handshake events, owned */
    int curve;        /* the connection uses CURVE keys */
    char hint[160];   /* why the last handshake failed, when it gave no verdict */
};

#define S_MONITOR "inproc://tsr-client-monitor"
#define S_MONITOR_EVENTS                                                             \
    (ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |          \
     ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_SUCCEEDED)

/* One GET in flight. */
struct s_get {
    int64_t rid;     /* request id, -1 when the slot is free */
    uint64_t offset; /* first byte asked for */
    uint64_t len;    /* bytes asked for */
};

static int s_fail(struct tsr_client *c, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int s_fail(struct tsr_client *c, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof c->err, fmt, ap);
    va_end(ap);
    c->remote = 0;
    return rc;
}

int tsr_client_new(const char *endpoint, int timeout_ms, const struct tsr_client_keys *keys,
                   struct tsr_client **out, char *err, size_t errlen)
{
    *out = NULL;
    struct tsr_client *c = calloc(1, sizeof *c);
    if (!c)
        return TSR_ENOMEM;
    c->timeout_ms = timeout_ms;
    c->next_rid = 1;
    c->ctx = zmq_ctx_new();
    if (!c->ctx) {
        free(c);
        snprintf(err, errlen, "cannot start ZeroMQ: %s", zmq_strerror(zmq_errno()));
        return TSR_EZMQ;
    }
    c->sock = zmq_socket(c->ctx, ZMQ_DEALER);
    if (!c->sock || tsr_socket_setup(c->sock) != 0 ||
        (keys && tsr_curve_client(c->sock, keys->pub, keys->sec, keys->server) != 0)) {
        snprintf(err, errlen, "cannot open a socket: %s", zmq_strerror(zmq_errno()));
        tsr_client_destroy(&c);
        return TSR_EZMQ;
    }
    c->curve = keys != NULL;
    /* The handshake's verdict reaches us only as a monitor event. */
    c->mon = zmq_socket(c->ctx, ZMQ_PAIR);
    if (!c->mon || zmq_socket_monitor(c->sock, S_MONITOR, S_MONITOR_EVENTS) != 0 ||
        zmq_connect(c->mon, S_MONITOR) != 0) {
        snprintf(err, errlen, "cannot watch the socket: %s", zmq_strerror(zmq_errno()));
        tsr_client_destroy(&c);
        return TSR_EZMQ;
    }
    if (zmq_connect(c->sock, endpoint) != 0) {
        int e = zmq_errno();
        snprintf(err, errlen, "%s", zmq_strerror(e));
        tsr_client_destroy(&c);
        return (e == EINVAL || e == EPROTONOSUPPORT || e == ENOCOMPATPROTO) ? TSR_EINVAL
                                                                            : TSR_EZMQ;
    }
    *out = c;
    return 0;
}

void tsr_client_destroy(struct tsr_client **c)
{
    if (!c || !*c)
        return;
    if ((*c)->sock) {
        zmq_socket_monitor((*c)->sock, NULL, 0);
        zmq_close((*c)->sock);
    }
    if ((*c)->mon)
        zmq_close((*c)->mon);
    if ((*c)->ctx)
        zmq_ctx_term((*c)->ctx);
    free(*c);
    *c = NULL;
}

const char *tsr_client_error(const struct tsr_client *c)
{
    return c->err;
}

int tsr_client_remote(const struct tsr_client *c)
{
    return c->remote;
}

int tsr_client_reached(const struct tsr_client *c)
{
    return c->reached;
}

const char *tsr_client_hint(const struct tsr_client *c)
{
    return c->hint;
}

/*
 * Reads one monitor event. A refused key or a mismatch of mechanisms is a
 * verdict: the master will never answer, so the call fails now with
 * TSR_EACCESS. A handshake that failed without one (the master closed the
 * connection: with CURVE, most likely because we hold the wrong master key)
 * is kept as a hint for the timeout's message. Returns 0 or TSR_EACCESS.
 */
static int s_on_event(struct tsr_client *c)
{
    zmq_msg_t f;
    zmq_msg_init(&f);
    if (zmq_msg_recv(&f, c->mon, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&f);
        return 0;
    }
    uint16_t ev = 0;
    uint32_t value = 0;
    if (zmq_msg_size(&f) >= 6) {
        memcpy(&ev, zmq_msg_data(&f), 2);
        memcpy(&value, (char *)zmq_msg_data(&f) + 2, 4);
    }
    int more = zmq_msg_more(&f);
    zmq_msg_close(&f);
    while (more) { /* the endpoint frame */
        zmq_msg_init(&f);
        if (zmq_msg_recv(&f, c->mon, 0) < 0)
            more = 0;
        else
            more = zmq_msg_more(&f);
        zmq_msg_close(&f);
    }
    if (ev == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
        c->hint[0] = '\0';
    } else if (ev == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
        return s_fail(c, TSR_EACCESS, "the master refused this client's key (status %u)",
                      (unsigned)value);
    } else if (ev == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL &&
               value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH) {
        if (c->curve)
            return s_fail(c, TSR_EACCESS, "the master does not use keys; leave out --key "
                                          "and --master-key");
        return s_fail(c, TSR_EACCESS, "the master admits only clients with a key: give "
                                      "--key and --master-key (doc/security.md)");
    } else if (ev == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ||
               ev == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) {
        snprintf(c->hint, sizeof c->hint, "the %shandshake with the master failed",
                 c->curve ? "CURVE " : "");
    }
    return 0;
}

/* Sends cmd with a fresh rid written into hdr; *rid receives it. */
static int s_send(struct tsr_client *c, const char *cmd, cJSON *hdr, const void *body,
                  size_t body_len, int64_t *rid)
{
    *rid = c->next_rid++;
    cJSON_DeleteItemFromObjectCaseSensitive(hdr, "rid");
    if (!cJSON_AddNumberToObject(hdr, "rid", (double)*rid))
        return s_fail(c, TSR_ENOMEM, "out of memory");
    int rc = tsr_msg_send(c->sock, NULL, 0, cmd, hdr, body, body_len);
    if (rc == TSR_EZMQ)
        return s_fail(c, rc, "cannot send %s: %s", cmd, zmq_strerror(zmq_errno()));
    if (rc != 0)
        return s_fail(c, rc, "cannot send %s: %s", cmd, tsr_strerror(rc));
    return 0;
}

/*
 * Waits until deadline (tsr_now_ms clock) for the next well-formed message;
 * *rid is its rid, or -1 when it has none. Returns 0, TSR_ETIMEOUT, or the
 * decoder's error for a malformed message.
 */
static int s_recv(struct tsr_client *c, int64_t deadline, int wait_ms, struct tsr_msg *m,
                  int64_t *rid)
{
    for (;;) {
        int64_t left = deadline - tsr_now_ms();
        if (left <= 0)
            return s_fail(c, TSR_ETIMEOUT, "no reply in %g s", wait_ms / 1000.0);
        zmq_pollitem_t items[2] = {{.socket = c->sock, .events = ZMQ_POLLIN},
                                   {.socket = c->mon, .events = ZMQ_POLLIN}};
        int n = zmq_poll(items, 2, (long)left);
        if (n < 0 && zmq_errno() == EINTR)
            continue;
        if (n < 0)
            return s_fail(c, TSR_EZMQ, "poll failed: %s", zmq_strerror(zmq_errno()));
        if (items[1].revents & ZMQ_POLLIN) {
            int rc = s_on_event(c);
            if (rc != 0)
                return rc;
        }
        if (!(items[0].revents & ZMQ_POLLIN))
            continue;
        char why[256] = "";
        int rc = tsr_msg_recv(c->sock, 0, 1, m, why, sizeof why);
        if (rc == TSR_ETIMEOUT)
            continue;
        if (rc == TSR_EZMQ)
            return s_fail(c, rc, "%s", why);
        c->reached = 1;
        if (rc != 0)
            return s_fail(c, rc, "the master sent a malformed message: %s", why);
        *rid = -1;
        if (tsr_hdr_int_opt(m->hdr, "rid", 0, S_MAX_RID, rid, why, sizeof why) != 0)
            *rid = -1;
        return 0;
    }
}

/* Turns an ERROR reply into the failure it reports. */
static int s_remote_error(struct tsr_client *c, const struct tsr_msg *m)
{
    int64_t code = TSR_EPROTO;
    const char *message = NULL;
    char why[128];
    if (tsr_hdr_int_opt(m->hdr, "code", -1000, -1, &code, why, sizeof why) != 0)
        code = TSR_EPROTO;
    if (tsr_hdr_str_opt(m->hdr, "message", 4096, &message, why, sizeof why) != 0 ||
        !message || !*message)
        message = tsr_strerror((int)code);
    tsr_fmt_clean(c->err, sizeof c->err, message); /* one line, no escapes */
    c->remote = 1;
    /* A code we do not know is still a refusal; keep it negative and ours. */
    return code >= TSR_EBUSY ? (int)code : TSR_EPROTO;
}

/* True when m answers request rid: it echoes rid, or it is an ERROR the
 * master could not tie to any request (it could not read ours). */
static int s_answers(const struct tsr_msg *m, int64_t mrid, int64_t rid)
{
    return mrid == rid || (mrid < 0 && strcmp(m->cmd, "ERROR") == 0);
}

int tsr_client_call(struct tsr_client *c, const char *cmd, cJSON *hdr, const char *expect,
                    int extra_ms, cJSON **reply)
{
    *reply = NULL;
    cJSON *own = NULL;
    if (!hdr && !(hdr = own = cJSON_CreateObject()))
        return s_fail(c, TSR_ENOMEM, "out of memory");
    int64_t rid;
    int rc = s_send(c, cmd, hdr, NULL, 0, &rid);
    cJSON_Delete(own);
    if (rc != 0)
        return rc;
    int wait_ms = c->timeout_ms + (extra_ms > 0 ? extra_ms : 0);
    int64_t deadline = tsr_now_ms() + wait_ms;
    for (;;) {
        struct tsr_msg m = {0};
        int64_t mrid;
        rc = s_recv(c, deadline, wait_ms, &m, &mrid);
        if (rc != 0)
            return rc;
        if (!s_answers(&m, mrid, rid)) {
            tsr_msg_clear(&m); /* a late reply to an earlier request */
            continue;
        }
        if (strcmp(m.cmd, "ERROR") == 0) {
            rc = s_remote_error(c, &m);
        } else if (strcmp(m.cmd, expect) != 0) {
            rc = s_fail(c, TSR_EPROTO, "the master answered %s with %s, not %s", cmd,
                        m.cmd, expect);
        } else {
            *reply = m.hdr;
            m.hdr = NULL;
        }
        tsr_msg_clear(&m);
        return rc;
    }
}

/* Extra wait for work on the master that grows with a blob's size: its
 * hashing and checking run at well over 32 MiB/s. */
static int s_size_allowance_ms(uint64_t size)
{
    uint64_t ms = size / (32u * 1024u);
    return ms > 3600000 ? 3600000 : (int)ms;
}

/* Reads exactly len bytes at offset, or fails. */
static int s_pread_all(int fd, void *buf, size_t len, uint64_t offset)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = pread(fd, (char *)buf + got, len - got, (off_t)(offset + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return TSR_EIO;
        got += (size_t)n;
    }
    return 0;
}

static int s_pwrite_all(int fd, const void *buf, size_t len, uint64_t offset)
{
    size_t put = 0;
    while (put < len) {
        ssize_t n = pwrite(fd, (const char *)buf + put, len - put, (off_t)(offset + put));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno == ENOSPC ? TSR_EFULL : TSR_EIO;
        put += (size_t)n;
    }
    return 0;
}

/* Sends PUT and reads the master's terms. */
static int s_put(struct tsr_client *c, const char *hash, uint64_t size, int *have,
                 int64_t *chunk, int64_t *credit, int64_t *upload)
{
    cJSON *h = cJSON_CreateObject();
    if (!h || !cJSON_AddStringToObject(h, "hash", hash) ||
        !cJSON_AddNumberToObject(h, "size", (double)size)) {
        cJSON_Delete(h);
        return s_fail(c, TSR_ENOMEM, "out of memory");
    }
    cJSON *r = NULL;
    int rc = tsr_client_call(c, "PUT", h, "PUT_OK", 0, &r);
    cJSON_Delete(h);
    if (rc != 0)
        return rc;
    char why[128];
    *have = 0;
    rc = tsr_hdr_bool_opt(r, "have", have, why, sizeof why);
    if (rc == 0 && !*have) {
        rc = tsr_hdr_int(r, "chunk", 1, TSR_PROTO_MAX_BODY, chunk, why, sizeof why);
        if (rc == 0)
            rc = tsr_hdr_int(r, "credit", 1, INT32_MAX, credit, why, sizeof why);
        if (rc == 0) /* the master's id of this upload, named again by CHUNK and PUT_END */
            rc = tsr_hdr_int_opt(r, "upload", 0, (int64_t)1 << 62, upload, why, sizeof why);
    }
    cJSON_Delete(r);
    if (rc != 0)
        return s_fail(c, TSR_EPROTO, "the master's PUT_OK is malformed: %s", why);
    if (*credit > S_MAX_CREDIT)
        *credit = S_MAX_CREDIT;
    return 0;
}

int tsr_client_upload(struct tsr_client *c, const char *path, const char *hash,
                      uint64_t size, int *sent, tsr_client_progress_fn progress,
                      void *arg)
{
    if (sent)
        *sent = 0;
    int have = 0;
    int64_t chunk = TSR_PROTO_CHUNK, credit = 1, upload = 0;
    int rc = s_put(c, hash, size, &have, &chunk, &credit, &upload);
    if (rc != 0 || have)
        return rc;

    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return s_fail(c, TSR_EIO, "cannot open '%s': %s", path, strerror(errno));
    unsigned char *buf = malloc((size_t)chunk);
    int64_t *inflight = calloc((size_t)credit, sizeof *inflight); /* rids, 0 = free */
    cJSON *h = cJSON_CreateObject();
    if (!buf || !inflight || !h) {
        rc = s_fail(c, TSR_ENOMEM, "out of memory");
        goto out;
    }
    if (!cJSON_AddStringToObject(h, "hash", hash) ||
        !cJSON_AddNumberToObject(h, "offset", 0) ||
        (upload && !cJSON_AddNumberToObject(h, "upload", (double)upload))) {
        rc = s_fail(c, TSR_ENOMEM, "out of memory");
        goto out;
    }
    if (sent)
        *sent = 1;

    struct tsr_hash hs;
    tsr_hash_begin(&hs);
    uint64_t next = 0, acked = 0;
    int64_t outstanding = 0;
    int64_t deadline = tsr_now_ms() + c->timeout_ms;
    while (next < size || outstanding > 0) {
        /* Fill the window: at most `credit` chunks unanswered. */
        while (next < size && outstanding < credit) {
            size_t n =
                (size_t)(size - next < (uint64_t)chunk ? size - next : (uint64_t)chunk);
            if (s_pread_all(fd, buf, n, next) != 0) {
                rc = s_fail(c, TSR_EIO, "cannot read '%s' (did it shrink?)", path);
                goto out;
            }
            tsr_hash_update(&hs, buf, n);
            cJSON_SetNumberValue(cJSON_GetObjectItemCaseSensitive(h, "offset"),
                                 (double)next);
            int64_t rid;
            if ((rc = s_send(c, "CHUNK", h, buf, n, &rid)) != 0)
                goto out;
            for (int64_t i = 0; i < credit; i++) {
                if (inflight[i] == 0) {
                    inflight[i] = rid;
                    break;
                }
            }
            outstanding++;
            next += n;
        }
        if (outstanding == 0)
            break;
        struct tsr_msg m = {0};
        int64_t mrid;
        if ((rc = s_recv(c, deadline, c->timeout_ms, &m, &mrid)) != 0)
            goto out;
        int64_t slot = -1;
        for (int64_t i = 0; i < credit && mrid > 0; i++)
            if (inflight[i] == mrid)
                slot = i;
        if (slot < 0 && !(mrid < 0 && strcmp(m.cmd, "ERROR") == 0)) {
            tsr_msg_clear(&m); /* not about this upload */
            continue;
        }
        if (strcmp(m.cmd, "ERROR") == 0) {
            rc = s_remote_error(c, &m);
            tsr_msg_clear(&m);
            goto out;
        }
        if (strcmp(m.cmd, "CHUNK_OK") != 0) {
            rc = s_fail(c, TSR_EPROTO, "the master answered CHUNK with %s", m.cmd);
            tsr_msg_clear(&m);
            goto out;
        }
        tsr_msg_clear(&m);
        inflight[slot] = 0;
        outstanding--;
        acked += (uint64_t)chunk;
        deadline = tsr_now_ms() + c->timeout_ms;
        if (progress)
            progress(acked < size ? acked : size, size, arg);
    }
    char again[TSR_HASH_HEX];
    tsr_hash_end(&hs, again);
    struct stat st;
    if (strcmp(again, hash) != 0 || fstat(fd, &st) != 0 || (uint64_t)st.st_size != size) {
        rc = s_fail(c, TSR_EHASH, "'%s' changed while it was uploaded", path);
        goto out;
    }

    cJSON *end = cJSON_CreateObject();
    if (!end || !cJSON_AddStringToObject(end, "hash", hash) ||
        (upload && !cJSON_AddNumberToObject(end, "upload", (double)upload))) {
        cJSON_Delete(end);
        rc = s_fail(c, TSR_ENOMEM, "out of memory");
        goto out;
    }
    cJSON *r = NULL;
    rc = tsr_client_call(c, "PUT_END", end, "PUT_DONE", s_size_allowance_ms(size), &r);
    cJSON_Delete(end);
    if (rc == 0) {
        int64_t got = -1;
        char why[128];
        if (tsr_hdr_int_opt(r, "size", 0, S_MAX_RID, &got, why, sizeof why) != 0 ||
            (got >= 0 && (uint64_t)got != size))
            rc = s_fail(c, TSR_EPROTO, "the master stored %lld bytes of %llu",
                        (long long)got, (unsigned long long)size);
    }
    cJSON_Delete(r);
out:
    cJSON_Delete(h);
    free(inflight);
    free(buf);
    close(fd);
    return rc;
}

/* Sends GET for [offset, offset + len) from slot g. */
static int s_get(struct tsr_client *c, cJSON *h, struct s_get *g, uint64_t offset,
                 uint64_t len)
{
    cJSON_SetNumberValue(cJSON_GetObjectItemCaseSensitive(h, "offset"), (double)offset);
    cJSON_SetNumberValue(cJSON_GetObjectItemCaseSensitive(h, "len"), (double)len);
    g->offset = offset;
    g->len = len;
    return s_send(c, "GET", h, NULL, 0, &g->rid);
}

/* Checks one DATA reply against the GET of slot g and writes its body. */
static int s_take_data(struct tsr_client *c, const struct tsr_msg *m, const char *hash,
                       uint64_t size, const struct s_get *g, int fd)
{
    char why[128];
    const char *mhash = NULL;
    int64_t off = -1, total = -1;
    if (tsr_hdr_hash(m->hdr, "hash", &mhash, why, sizeof why) != 0 ||
        tsr_hdr_int(m->hdr, "offset", 0, S_MAX_RID, &off, why, sizeof why) != 0 ||
        tsr_hdr_int(m->hdr, "size", 0, S_MAX_RID, &total, why, sizeof why) != 0)
        return s_fail(c, TSR_EPROTO, "the master's DATA is malformed: %s", why);
    if (strcmp(mhash, hash) != 0 || (uint64_t)off != g->offset || (uint64_t)total != size)
        return s_fail(c, TSR_EPROTO,
                      "the master's DATA does not match the request (blob %.12s, "
                      "offset %lld, size %lld)",
                      mhash, (long long)off, (long long)total);
    if (m->body_len == 0 || m->body_len > g->len)
        return s_fail(c, TSR_EPROTO, "the master sent %zu bytes for a request of %llu",
                      m->body_len, (unsigned long long)g->len);
    int rc = s_pwrite_all(fd, m->body, m->body_len, g->offset);
    if (rc != 0)
        return s_fail(c, rc, "cannot write: %s", strerror(errno));
    return 0;
}

int tsr_client_download(struct tsr_client *c, const char *hash, uint64_t size, int fd,
                        tsr_client_progress_fn progress, void *arg)
{
    if (size == 0)
        return 0;
    cJSON *h = cJSON_CreateObject();
    if (!h || !cJSON_AddStringToObject(h, "hash", hash) ||
        !cJSON_AddNumberToObject(h, "offset", 0) ||
        !cJSON_AddNumberToObject(h, "len", 0)) {
        cJSON_Delete(h);
        return s_fail(c, TSR_ENOMEM, "out of memory");
    }
    struct s_get slots[S_GET_INFLIGHT];
    for (int i = 0; i < S_GET_INFLIGHT; i++)
        slots[i].rid = -1;
    uint64_t next = 0, done = 0;
    int busy = 0, rc = 0;
    int64_t deadline = tsr_now_ms() + c->timeout_ms;
    for (;;) {
        for (int i = 0; i < S_GET_INFLIGHT && next < size; i++) {
            if (slots[i].rid >= 0)
                continue;
            uint64_t len = size - next < TSR_PROTO_CHUNK ? size - next : TSR_PROTO_CHUNK;
            if ((rc = s_get(c, h, &slots[i], next, len)) != 0)
                goto out;
            next += len;
            busy++;
        }
        if (busy == 0)
            break;
        struct tsr_msg m = {0};
        int64_t mrid;
        if ((rc = s_recv(c, deadline, c->timeout_ms, &m, &mrid)) != 0)
            goto out;
        int slot = -1;
        for (int i = 0; i < S_GET_INFLIGHT && mrid >= 0; i++)
            if (slots[i].rid == mrid)
                slot = i;
        if (slot < 0 && !(mrid < 0 && strcmp(m.cmd, "ERROR") == 0)) {
            tsr_msg_clear(&m);
            continue;
        }
        if (strcmp(m.cmd, "ERROR") == 0)
            rc = s_remote_error(c, &m);
        else if (strcmp(m.cmd, "DATA") != 0)
            rc = s_fail(c, TSR_EPROTO, "the master answered GET with %s", m.cmd);
        else
            rc = s_take_data(c, &m, hash, size, &slots[slot], fd);
        size_t got = m.body_len;
        tsr_msg_clear(&m);
        if (rc != 0)
            goto out;
        deadline = tsr_now_ms() + c->timeout_ms;
        done += got;
        struct s_get *g = &slots[slot];
        if (got < g->len) {
            /* A short answer: ask for the rest from the same slot. */
            if ((rc = s_get(c, h, g, g->offset + got, g->len - got)) != 0)
                goto out;
        } else {
            g->rid = -1;
            busy--;
        }
        if (progress)
            progress(done, size, arg);
    }
out:
    cJSON_Delete(h);
    return rc;
}
