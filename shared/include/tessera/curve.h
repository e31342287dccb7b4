/*
 * curve.h: CurveZMQ keys and sockets, shared by the master, the worker and
 * the CLI (doc/security.md says how keys are made, handed out and revoked).
 *
 * A key pair is two files side by side, written by `tessera keygen NAME`:
 *
 *   NAME.key   the secret half, mode 0600:   public = <Z85>
 *                                            secret = <Z85>
 *   NAME.pub   the public half:              public = <Z85>
 *
 * Z85 is ZeroMQ's text form of a 32-byte Curve25519 key (40 characters).
 * Blank lines and lines starting with '#' are comments; a .pub file may
 * also be a bare 40-character key, so one can be pasted from a mail. A key's
 * NAME (its file name without the extension) names a studio, an operator or
 * a worker on the master: 1..TSR_KEY_NAME_MAX of A-Z a-z 0-9 . _ -, not
 * starting with a dot.
 */
#ifndef TESSERA_CURVE_H
#define TESSERA_CURVE_H

#include <stddef.h>

#define TSR_KEY_Z85 41      /* a Z85 key and its NUL */
#define TSR_KEY_NAME_MAX 48 /* "operator:" + name fits a 64-byte user id */
#define TSR_KEY_FILE_MAX 4096 /* longest key file we read */

/* True when name is a valid key name (see above). */
int tsr_key_name_ok(const char *name);

/*
 * Writes a fresh key pair to base.key (mode 0600) and base.pub (0644), where
 * base is a path whose last component is a valid key name ("keys/alice").
 * Neither file may exist yet. err receives a one-line reason.
 * Returns 0, TSR_EINVAL (bad name), TSR_EEXIST, TSR_EIO.
 */
int tsr_key_generate(const char *base, char *err, size_t errlen);

/*
 * Reads a secret key file: its public and secret halves (Z85) go to pub and
 * sec. The file must not be readable by group or others (as ssh asks of its
 * keys), and the two halves must belong together.
 * Returns 0, TSR_ENOTFOUND, TSR_EIO, TSR_EINVAL (malformed, or mode too
 * open; the reason in err).
 */
int tsr_key_load_secret(const char *path, char pub[TSR_KEY_Z85], char sec[TSR_KEY_Z85],
                        char *err, size_t errlen);

/*
 * Reads a public key from a .pub file (or the public line of a .key file).
 * Returns 0, TSR_ENOTFOUND, TSR_EIO, TSR_EINVAL (malformed; reason in err).
 */
int tsr_key_load_public(const char *path, char pub[TSR_KEY_Z85], char *err,
                        size_t errlen);

/*
 * The key name a key file's path gives: its last component without ".key"
 * or ".pub" ("keys/node17.key" -> "node17"). Returns 0, or TSR_EINVAL when
 * that is not a valid key name.
 */
int tsr_key_name_of(const char *path, char name[TSR_KEY_NAME_MAX + 1]);

/*
 * Makes sock a CURVE server with the secret key sec (Z85) whose ZAP
 * requests carry domain. Call before bind. Returns 0 or TSR_EZMQ.
 */
int tsr_curve_server(void *sock, const char *sec, const char *domain);

/*
 * Makes sock a CURVE client with the key pair pub/sec that expects the
 * server's public key server_pub (all Z85). Call before connect.
 * Returns 0 or TSR_EZMQ.
 */
int tsr_curve_client(void *sock, const char *pub, const char *sec, const char *server_pub);

/*
 * True when a ZeroMQ endpoint to bind cannot be reached from another host:
 * ipc://, inproc://, and tcp:// on 127.x.y.z, localhost or [::1]. Anything
 * else (an interface name, 0.0.0.0, '*', a host address) counts as open.
 */
int tsr_endpoint_is_loopback(const char *endpoint);

#endif
