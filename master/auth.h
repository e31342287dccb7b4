/*
 * auth.h: who may talk to the master (auth.c) and what each may see and do
 * (access.c). doc/security.md is the user's side of this.
 *
 * Authentication is CurveZMQ with a ZAP handler (ZeroMQ RFC 27) on a thread
 * of its own, which admits on the client endpoint (ZAP domain "clients")
 * the public keys found in the studio and operator key folders, and on the
 * worker endpoint (domain "workers") those in the worker key folder. A
 * studio is named by its key file (alice.pub -> User-Id "studio:alice");
 * operators are "operator:NAME", workers "worker:NAME". The folders are read
 * again every AUTH_RESCAN_MS and on SIGHUP; a key whose file is gone is
 * refused at its next handshake, and the reactor drops every message still
 * arriving on a connection made with it (auth_admits), so a revoked key is
 * shut out at once on every connection.
 *
 * Authorisation lives in access.c and runs on the reactor: a studio sees
 * only its own jobs (another's job is "no such job", exactly like a missing
 * one), and reads only blobs it uploaded or that belong to its jobs; an
 * operator sees everything. On a master without keys (loopback, or
 * --insecure) every peer is treated as an operator.
 */
#ifndef TESSERA_MASTER_AUTH_H
#define TESSERA_MASTER_AUTH_H

#include <stddef.h>
#include <stdint.h>

#define AUTH_RESCAN_MS 5000 /* how often the key folders are read again */
#define AUTH_USER_MAX 64    /* a User-Id and its NUL ("operator:" + name) */

struct auth;
struct access;
struct master;
struct job;
struct tsr_msg;

/* The key folders; NULL or "" leaves that kind of key out. Borrowed. */
struct auth_config {
    const char *studio_dir;   /* studios' public keys (NAME.pub) */
    const char *operator_dir; /* operators' public keys */
    const char *worker_dir;   /* workers' public keys */
};

/*
 * Reads the key folders, binds the ZAP handler to inproc://zeromq.zap.01 on
 * zctx and starts its thread, then sends it one request of its own and
 * checks the refusal that comes back: a master must not run CURVE without a
 * working handler (libzmq would then admit any key). Must run before any
 * CURVE socket of zctx binds. *out is the caller's (auth_stop).
 * Returns 0, TSR_ENOTFOUND (a folder is missing), TSR_EIO, TSR_EZMQ,
 * TSR_ENOMEM; err says why.
 */
int auth_start(void *zctx, const struct auth_config *cfg, struct auth **out, char *err,
               size_t errlen);

/* Stops the thread and frees everything; null-safe, sets *a to NULL. Call
 * before the context terminates. */
void auth_stop(struct auth **a);

/* Asks the handler to read the key folders again now. Async-signal-safe:
 * the SIGHUP handler calls it. */
void auth_request_rescan(void);

/*
 * True when the key a message came with (msg's user and key, from ZAP) is
 * still admitted, under the same name, on that endpoint (workers: the
 * worker endpoint). Thread-safe; the reactor asks for every message.
 */
int auth_admits(struct auth *a, int workers, const char *user, const char *key);

/* ---- access.c: the reactor's rules (single-threaded) ---- */

/* Creates the rules' state (grants, indexes). NULL when out of memory. */
struct access *access_new(void);
/* Null-safe; sets *a to NULL. */
void access_destroy(struct access **a);

/* True when user may see and act on every job: an operator, or anyone on a
 * master without keys (user ""). */
int access_is_operator(const char *user);

/* True when user may see job j (its owner, or an operator). */
int access_can_see(const char *user, const struct job *j);

/*
 * True when user may read blob hash: operators and workers any; a studio
 * the archives, frames and contact sheets of its jobs and what it uploaded
 * itself (every chunk, hashed and checked) during this run of the master. Also decides whether a studio's PUT
 * of a blob the master holds may skip the upload (proof of possession).
 */
int access_blob_readable(struct master *m, const char *user, const char *hash);

/* Lets user read hash: a contact sheet drawn for its job, or a blob whose
 * upload by user itself the master completed and checked (blobs.c). Only
 * that uploader: another studio uploading the same hash at the same time
 * gets its own claim only when its own bytes are in and checked. */
void access_grant(struct master *m, const char *user, const char *hash);

/*
 * The reactor's gate for every message on a master with keys: the key must
 * still be admitted (auth_admits), and a worker's HELLO must name the
 * worker its key names. Returns 0, or TSR_EACCESS with the reason in why.
 */
int access_check_message(struct master *m, const struct tsr_msg *msg, int workers,
                         char *why, size_t whylen);

/*
 * The rules of the client endpoint's requests that name a blob or act on
 * the farm: GET's "hash" and SUBMIT's "archive" must be readable by the
 * sender (else the same ERROR as a blob the master does not hold, so that
 * nothing is learnt), WORKER actions are the operators'. Jobs are checked
 * where clients.c looks them up. Returns 1 when the request may go on; 0
 * when it was answered with ERROR.
 */
int access_request_ok(struct master *m, struct tsr_msg *msg, int64_t rid);

/* Drops indexes not used for a while. Called from the reactor's cron. */
void access_cron(struct master *m);

#endif
