/*
 * agent.c: the Paranoid Pirate side of the worker (agent.h), after the
 * ZeroMQ Guide's ppworker.c.
 *
 * Differences from ppworker: time, not poll rounds, measures silence (the
 * worker's poll also wakes for its children), the loop is the owner's (the
 * agent only says when it next needs to run), and a reconnect never sleeps:
 * the socket is closed and a connect is scheduled after the back-off, while
 * the worker's children keep running.
 */
#include "agent.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "tessera/curve.h"
#include "tessera/error.h"
#include "tessera/log.h"
#include "tessera/util.h"

#define S_LOG "agent"

struct tsr_agent {
    void *zctx;                 /* ZeroMQ context, owned */
    void *sock;                 /* DEALER to the master; NULL between connections */
    char endpoint[512];         /* where the master listens */
    int cfg_heartbeat_ms;       /* heartbeat from the command line */
    int cfg_liveness;           /* liveness from the command line */
    int heartbeat_ms;           /* heartbeat in force (WELCOME's, else ours) */
    int liveness;               /* liveness in force */
    int welcomed;               /* registered on this socket */
    int hello_pending;          /* HELLO sent, its WELCOME not yet seen */
    int64_t last_recv_ms;       /* last time anything came from the master */
    int64_t last_send_ms;       /* last time anything went to the master */
    int64_t reconnect_at_ms;    /* when to connect again (sock == NULL) */
    int backoff_ms;             /* the next reconnect delay */
    int64_t next_rid;           /* request ids handed out so far */
    struct tsr_agent_events ev; /* the owner's callbacks */
    int curve;                  /* connect with CURVE keys */
    char curve_pub[41];         /* our public key (Z85) */
    char curve_sec[41];         /* our secret key (Z85) */
    char curve_server[41];      /* the master's public key (Z85) */
};

int tsr_agent_new(const struct tsr_agent_config *cfg, const struct tsr_agent_events *ev,
                  struct tsr_agent **out)
{
    *out = NULL;
    if (!cfg->endpoint || cfg->heartbeat_ms <= 0 || cfg->liveness <= 0)
        return TSR_EINVAL;
    struct tsr_agent *a = calloc(1, sizeof *a);
    if (!a)
        return TSR_ENOMEM;
    if (tsr_fmt(a->endpoint, sizeof a->endpoint, "%s", cfg->endpoint) != 0) {
        free(a);
        return TSR_EINVAL;
    }
    a->zctx = zmq_ctx_new();
    if (!a->zctx) {
        free(a);
        return TSR_EZMQ;
    }
    if (cfg->curve_pub) {
        a->curve = 1;
        snprintf(a->curve_pub, sizeof a->curve_pub, "%s", cfg->curve_pub);
        snprintf(a->curve_sec, sizeof a->curve_sec, "%s", cfg->curve_sec);
        snprintf(a->curve_server, sizeof a->curve_server, "%s", cfg->curve_server);
    }
    a->cfg_heartbeat_ms = a->heartbeat_ms = cfg->heartbeat_ms;
    a->cfg_liveness = a->liveness = cfg->liveness;
    a->backoff_ms = TSR_AGENT_BACKOFF_MIN_MS;
    a->reconnect_at_ms = 0; /* connect at the first tick */
    a->ev = *ev;
    *out = a;
    return 0;
}

static void s_close(struct tsr_agent *a)
{
    if (a->sock)
        zmq_close(a->sock);
    a->sock = NULL;
    a->welcomed = 0;
    a->hello_pending = 0;
}

void tsr_agent_destroy(struct tsr_agent **ap)
{
    struct tsr_agent *a = ap ? *ap : NULL;
    if (!a)
        return;
    s_close(a);
    memset(a->curve_sec, 0, sizeof a->curve_sec);
    zmq_ctx_term(a->zctx);
    free(a);
    *ap = NULL;
}

void *tsr_agent_socket(const struct tsr_agent *a)
{
    return a->sock;
}

int tsr_agent_welcomed(const struct tsr_agent *a)
{
    return a->welcomed;
}

int64_t tsr_agent_rid(struct tsr_agent *a)
{
    return ++a->next_rid;
}

static int s_send(struct tsr_agent *a, const char *cmd, const cJSON *hdr,
                  const void *body, size_t body_len)
{
    if (!a->sock)
        return TSR_ESTATE;
    int rc = tsr_msg_send(a->sock, NULL, 0, cmd, hdr, body, body_len);
    if (rc == 0)
        a->last_send_ms = tsr_now_ms();
    else
        tsr_log(TSR_LOG_WARN, S_LOG, "cannot send %s to the master: %s", cmd,
                zmq_strerror(zmq_errno()));
    return rc;
}

int tsr_agent_send(struct tsr_agent *a, const char *cmd, const cJSON *hdr,
                   const void *body, size_t body_len)
{
    if (!a->welcomed)
        return TSR_ESTATE;
    return s_send(a, cmd, hdr, body, body_len);
}

static void s_hello(struct tsr_agent *a)
{
    cJSON *h = a->ev.hello(a->ev.ctx);
    if (!h) {
        tsr_log(TSR_LOG_ERROR, S_LOG, "out of memory building HELLO");
        return;
    }
    if (s_send(a, "HELLO", h, NULL, 0) == 0)
        a->hello_pending = 1;
    cJSON_Delete(h);
}

static void s_connect(struct tsr_agent *a, int64_t now)
{
    a->heartbeat_ms = a->cfg_heartbeat_ms;
    a->liveness = a->cfg_liveness;
    a->sock = zmq_socket(a->zctx, ZMQ_DEALER);
    if (!a->sock || tsr_socket_setup(a->sock) != 0 ||
        (a->curve && tsr_curve_client(a->sock, a->curve_pub, a->curve_sec,
                                      a->curve_server) != 0) ||
        zmq_connect(a->sock, a->endpoint) != 0) {
        tsr_log(TSR_LOG_ERROR, S_LOG, "cannot connect to master '%s': %s", a->endpoint,
                zmq_strerror(zmq_errno()));
        s_close(a);
        a->reconnect_at_ms = now + a->backoff_ms;
        if (a->backoff_ms < TSR_AGENT_BACKOFF_MAX_MS)
            a->backoff_ms *= 2;
        return;
    }
    tsr_log(TSR_LOG_INFO, S_LOG, "connecting to master %s", a->endpoint);
    /* The silence clock starts now: the master has heartbeat x liveness to
     * answer HELLO. */
    a->last_recv_ms = now;
    s_hello(a);
}

static void s_on_welcome(struct tsr_agent *a, const struct tsr_msg *m)
{
    char err[256];
    int64_t hb = a->cfg_heartbeat_ms;
    int64_t lv = a->cfg_liveness;
    if (tsr_hdr_int_opt(m->hdr, "heartbeat_ms", 10, 600000, &hb, err, sizeof err) != 0 ||
        tsr_hdr_int_opt(m->hdr, "liveness", 1, 1000, &lv, err, sizeof err) != 0) {
        tsr_log(TSR_LOG_WARN, S_LOG, "malformed WELCOME from master ignored: %s", err);
        return;
    }
    if (!a->hello_pending) {
        /* A second WELCOME for one HELLO would make us grant credit twice. */
        tsr_log(TSR_LOG_DEBUG, S_LOG, "WELCOME without a pending HELLO ignored");
        return;
    }
    a->hello_pending = 0;
    a->welcomed = 1;
    a->heartbeat_ms = (int)hb;
    a->liveness = (int)lv;
    a->backoff_ms = TSR_AGENT_BACKOFF_MIN_MS;
    tsr_log(TSR_LOG_INFO, S_LOG,
            "registered with master %s (heartbeat %d ms, liveness %d)", a->endpoint,
            a->heartbeat_ms, a->liveness);
    a->ev.welcome(a->ev.ctx);
}

/*
 * The master refused our HELLO (ERROR re HELLO): most often another live
 * worker holds our name (a cloned host), or a field is past a bound. Nothing
 * we send will be taken until we register, so the socket is closed and HELLO
 * tried again after the master's retry_ms (the rest of the name holder's
 * lease), or the longest back-off: a restarted worker gets its name back when
 * its old self's lease ends, and a clone keeps trying, slowly and loudly,
 * without taking the name from the worker that has it.
 */
static void s_refused(struct tsr_agent *a, const struct tsr_msg *m)
{
    const char *message = "";
    int64_t retry = TSR_AGENT_BACKOFF_MAX_MS;
    tsr_hdr_str_opt(m->hdr, "message", 1024, &message, NULL, 0);
    tsr_hdr_int_opt(m->hdr, "retry_ms", 0, 3600 * 1000, &retry, NULL, 0);
    if (retry < TSR_AGENT_BACKOFF_MIN_MS)
        retry = TSR_AGENT_BACKOFF_MIN_MS;
    tsr_log(TSR_LOG_ERROR, S_LOG,
            "the master refused to register this worker: %s; "
            "trying again in %lld ms",
            message, (long long)retry);
    s_close(a);
    a->reconnect_at_ms = tsr_now_ms() + retry;
}

void tsr_agent_bye(struct tsr_agent *a)
{
    if (!a->sock || !a->welcomed)
        return;
    int linger = TSR_AGENT_BYE_LINGER_MS;
    zmq_setsockopt(a->sock, ZMQ_LINGER, &linger, sizeof linger);
    s_send(a, "BYE", NULL, NULL, 0);
    s_close(a);
}

static void s_dispatch(struct tsr_agent *a, const struct tsr_msg *m)
{
    if (strcmp(m->cmd, "HEARTBEAT") == 0)
        return;
    if (strcmp(m->cmd, "WELCOME") == 0) {
        s_on_welcome(a, m);
        return;
    }
    if (strcmp(m->cmd, "ERROR") == 0 && a->hello_pending && !a->welcomed) {
        const char *re = NULL;
        tsr_hdr_str_opt(m->hdr, "re", TSR_PROTO_MAX_CMD, &re, NULL, 0);
        if (re && strcmp(re, "HELLO") == 0) {
            s_refused(a, m);
            return;
        }
    }
    if (strcmp(m->cmd, "RECONNECT") == 0) {
        tsr_log(TSR_LOG_INFO, S_LOG, "master asks us to register again");
        if (a->welcomed) {
            a->welcomed = 0;
            a->ev.lost(a->ev.ctx);
        }
        s_hello(a);
        return;
    }
    a->ev.message(a->ev.ctx, m);
}

void tsr_agent_on_readable(struct tsr_agent *a)
{
    /* A callback may not close the socket, but a bounded batch keeps the
     * timers and the children served under a flood. */
    for (int i = 0; i < 1000 && a->sock; i++) {
        struct tsr_msg m;
        char err[256] = "";
        int rc = tsr_msg_recv(a->sock, 0, 1, &m, err, sizeof err);
        if (rc == TSR_ETIMEOUT)
            return;
        if (rc == TSR_EZMQ) {
            tsr_log(TSR_LOG_WARN, S_LOG, "receive from master failed: %s", err);
            return;
        }
        a->last_recv_ms = tsr_now_ms();
        if (rc != 0) {
            tsr_log(TSR_LOG_WARN, S_LOG, "malformed message from master ignored: %s",
                    err);
            continue;
        }
        s_dispatch(a, &m);
        tsr_msg_clear(&m);
    }
}

int64_t tsr_agent_tick(struct tsr_agent *a, int64_t now)
{
    if (!a->sock) {
        if (now < a->reconnect_at_ms)
            return a->reconnect_at_ms;
        s_connect(a, now);
        if (!a->sock)
            return a->reconnect_at_ms;
    }
    int64_t silence = (int64_t)a->heartbeat_ms * a->liveness;
    if (now - a->last_recv_ms >= silence) {
        int was = a->welcomed;
        tsr_log(TSR_LOG_WARN, S_LOG,
                "master %s silent for %lld ms; reconnecting in %d ms%s", a->endpoint,
                (long long)(now - a->last_recv_ms), a->backoff_ms,
                /* A refused CURVE handshake is silence too. */
                a->curve && !was ? " (with keys: does the master admit this worker's "
                                   "key, and is --master-key its key?)"
                                 : "");
        s_close(a);
        if (was)
            a->ev.lost(a->ev.ctx);
        a->reconnect_at_ms = now + a->backoff_ms;
        a->backoff_ms *= 2;
        if (a->backoff_ms > TSR_AGENT_BACKOFF_MAX_MS)
            a->backoff_ms = TSR_AGENT_BACKOFF_MAX_MS;
        return a->reconnect_at_ms;
    }
    if (a->welcomed && now - a->last_send_ms >= a->heartbeat_ms)
        s_send(a, "HEARTBEAT", NULL, NULL, 0);
    int64_t next = a->last_recv_ms + silence;
    if (a->welcomed && a->last_send_ms + a->heartbeat_ms < next)
        next = a->last_send_ms + a->heartbeat_ms;
    return next;
}
