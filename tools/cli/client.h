/*
 * client.h: the CLI's connection to the master's client endpoint.
 *
 * One ZeroMQ DEALER socket. Every request gets a fresh `rid` and its reply
 * is the message that echoes it; anything else that arrives (a late reply
 * to an earlier request) is dropped. A request that gets no reply within
 * the timeout fails with TSR_ETIMEOUT, so an unreachable master is reported
 * instead of waited on forever (ZeroMQ itself never says "connection
 * refused"; it just keeps retrying).
 *
 * Files move as doc/protocol.md says: uploads as PUT, CHUNKs under the
 * credit window the master grants, PUT_END; downloads as GETs of one chunk
 * each, 8 in flight.
 *
 * Failures return a negative TSR_E* code; tsr_client_error then gives the
 * reason in one line, and tsr_client_remote tells whether it was the
 * master's own ERROR reply (whose message is meant for the user).
 */
#ifndef TESSERA_CLI_CLIENT_H
#define TESSERA_CLI_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

struct tsr_client;

/* A client's CURVE keys, all Z85 and borrowed (doc/security.md). */
struct tsr_client_keys {
    const char *pub;    /* the client's public key */
    const char *sec;    /* its secret key */
    const char *server; /* the master's public key */
};

/* Called as bytes move: done of total bytes. */
typedef void (*tsr_client_progress_fn)(uint64_t done, uint64_t total, void *arg);

/*
 * Connects (lazily, as ZeroMQ does) to endpoint; timeout_ms bounds the wait
 * for each reply. With keys (else NULL) the connection is CURVE. The
 * handshake is watched: when the master refuses the key, or speaks CURVE
 * and we do not (or the other way round), the next call fails at once with
 * TSR_EACCESS instead of waiting out its timeout (a refused handshake is
 * otherwise silence). *out is the caller's. Returns 0, TSR_EINVAL (bad
 * endpoint; the reason in err), TSR_EZMQ, TSR_ENOMEM.
 */
int tsr_client_new(const char *endpoint, int timeout_ms, const struct tsr_client_keys *keys,
                   struct tsr_client **out, char *err, size_t errlen);

/* Closes the connection and frees the client; null-safe, sets *c to NULL. */
void tsr_client_destroy(struct tsr_client **c);

/*
 * Sends cmd with header hdr (borrowed; may be NULL; a "rid" field is set in
 * it) and waits for the reply that echoes the rid. The reply must be the
 * command expect; its header goes to *reply (caller owns, cJSON_Delete).
 * extra_ms lengthens the wait for requests whose work grows with a file's
 * size. Returns 0, TSR_ETIMEOUT, TSR_EPROTO (an unexpected reply), TSR_EZMQ,
 * TSR_ENOMEM, or the code of the master's ERROR reply.
 */
int tsr_client_call(struct tsr_client *c, const char *cmd, cJSON *hdr, const char *expect,
                    int extra_ms, cJSON **reply);

/*
 * Uploads the file at path, whose sha256 and size the caller computed, as
 * blob hash. *sent (when not NULL) is set to 1 when bytes were sent, 0 when
 * the master already held the blob. The file is hashed again as it is read,
 * so a file that changed since it was hashed is caught here.
 * Returns 0, TSR_EIO, TSR_EHASH (the file changed), TSR_ETIMEOUT,
 * TSR_EPROTO, TSR_EZMQ, TSR_ENOMEM, or the master's ERROR code.
 */
int tsr_client_upload(struct tsr_client *c, const char *path, const char *hash,
                      uint64_t size, int *sent, tsr_client_progress_fn progress,
                      void *arg);

/*
 * Downloads blob hash of size bytes into the open file fd (written with
 * pwrite at each chunk's offset). The caller verifies the hash of what was
 * written. Returns 0, TSR_EIO, TSR_ETIMEOUT, TSR_EPROTO, TSR_EZMQ,
 * TSR_ENOMEM, or the master's ERROR code.
 */
int tsr_client_download(struct tsr_client *c, const char *hash, uint64_t size, int fd,
                        tsr_client_progress_fn progress, void *arg);

/* The last failure's reason, one line (borrowed, valid until the next call). */
const char *tsr_client_error(const struct tsr_client *c);

/* True when the last failure was an ERROR reply from the master. */
int tsr_client_remote(const struct tsr_client *c);

/* True once any reply has arrived: the master was reached at least once. */
int tsr_client_reached(const struct tsr_client *c);

/* What the handshake last said when it failed without a verdict (such as
 * "the handshake failed; is the master's key right?"), or "". Borrowed. */
const char *tsr_client_hint(const struct tsr_client *c);

#endif
