/*
 * agent.h: the worker's connection to the master (Paranoid Pirate).
 *
 * One DEALER socket to the master's worker endpoint. The agent registers
 * with HELLO, waits for WELCOME, sends HEARTBEAT every heartbeat_ms when
 * nothing else went out, and counts the master's silence: past
 * heartbeat_ms x liveness it closes the socket and connects a new one after
 * a back-off that doubles from 250 ms to 8 s (reset by the next WELCOME).
 * RECONNECT from the master ("I do not know you") re-sends HELLO on the same
 * socket; an ERROR answering HELLO (the name is held by another live
 * worker, or a field is past a bound) is logged and HELLO is tried again on
 * a new socket after the master's retry_ms. Everything else that arrives, checked for
 * framing, goes to the owner's message callback; the agent never blocks and owns no
 * timers but its own, which tsr_agent_tick drives.
 */
#ifndef TESSERA_WORKER_AGENT_H
#define TESSERA_WORKER_AGENT_H

#include <stdint.h>

#include <cjson/cJSON.h>

#include "tessera/proto.h"

#define TSR_AGENT_BACKOFF_MIN_MS 250  /* first reconnect delay */
#define TSR_AGENT_BACKOFF_MAX_MS 8000 /* longest reconnect delay */
#define TSR_AGENT_BYE_LINGER_MS 1000  /* how long BYE may take to leave */

struct tsr_agent;

/* What the owner does at the agent's turning points; ctx is passed back. */
struct tsr_agent_events {
    void *ctx; /* the owner */
    /* Builds the HELLO header (the agent sends and frees it). NULL: no memory. */
    cJSON *(*hello)(void *ctx);
    /* WELCOME arrived: the master knows us (again). Send READY, resume
     * transfers, re-send results. */
    void (*welcome)(void *ctx);
    /* The registration is gone (silence, or RECONNECT): in-flight requests
     * are lost and will be resumed at the next welcome. */
    void (*lost)(void *ctx);
    /* Any other well-framed message (TASK, CANCEL, DATA, ERROR, ...). The
     * header is unchecked beyond being an object; msg is borrowed. */
    void (*message)(void *ctx, const struct tsr_msg *msg);
};

/* Connection settings. */
struct tsr_agent_config {
    const char *endpoint; /* master's worker endpoint, "tcp://host:port"; borrowed */
    int heartbeat_ms;     /* heartbeat interval until WELCOME says otherwise */
    int liveness;         /* missed heartbeats before the master counts as lost */
    const char *curve_pub;    /* CURVE: our public key (Z85), or NULL for none */
    const char *curve_sec;    /* our secret key (Z85) */
    const char *curve_server; /* the master's public key (Z85) */
};

/*
 * Creates the agent and its ZeroMQ context; the first connection is made by
 * the first tsr_agent_tick. *out is the caller's (tsr_agent_destroy).
 * Returns 0, TSR_EINVAL (bad settings), TSR_EZMQ, TSR_ENOMEM.
 */
int tsr_agent_new(const struct tsr_agent_config *cfg, const struct tsr_agent_events *ev,
                  struct tsr_agent **out);

/* Closes the socket and the context; null-safe, sets *a to NULL. */
void tsr_agent_destroy(struct tsr_agent **a);

/* The socket to poll for input, or NULL between connections. */
void *tsr_agent_socket(const struct tsr_agent *a);

/* True between WELCOME and the loss of the registration. */
int tsr_agent_welcomed(const struct tsr_agent *a);

/* A fresh request id (for GET, PUT...), unique for this process. */
int64_t tsr_agent_rid(struct tsr_agent *a);

/*
 * Sends a message to the master; hdr and body are borrowed. Only while
 * welcomed: the master drops what an unregistered peer sends.
 * Returns 0, TSR_ESTATE (not welcomed), TSR_EZMQ, TSR_ENOMEM.
 */
int tsr_agent_send(struct tsr_agent *a, const char *cmd, const cJSON *hdr,
                   const void *body, size_t body_len);

/* Tells the master we stop cleanly (BYE), so it shows us as stopped rather
 * than lost, and closes the socket; BYE may take TSR_AGENT_BYE_LINGER_MS to
 * leave. Only when welcomed; otherwise nothing. */
void tsr_agent_bye(struct tsr_agent *a);

/* Receives every message waiting on the socket and dispatches it. Call
 * when the socket polls readable. */
void tsr_agent_on_readable(struct tsr_agent *a);

/* Runs the agent's timers (connect, heartbeat, liveness, back-off). Returns
 * the monotonic time at which it next needs to run. */
int64_t tsr_agent_tick(struct tsr_agent *a, int64_t now_ms);

#endif
