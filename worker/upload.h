/*
 * upload.h: sending one spooled result to the master.
 *
 * For each file the record names: PUT {rid, hash, size}; if PUT_OK says
 * have: true the file is skipped, else CHUNKs go out with at most PUT_OK's
 * credit unanswered (each CHUNK_OK returns one), then PUT_END, answered by
 * PUT_DONE. When every file is stored, RESULT goes out; the entry then waits
 * for RESULT_ACK. One request id covers all requests of one file's transfer,
 * and a transfer restarts from its PUT after a lost registration or a stall,
 * so late answers to an abandoned transfer never match. An ERROR answering
 * a transfer restarts it; after TSR_UPLOAD_TRIES of them the result is
 * turned into a failure of class "upload" (rewritten in the spool) and sent
 * as that. An ERROR TSR_EFULL (the master is out of space) is not counted:
 * the transfer waits and starts again, as long as it takes.
 */
#ifndef TESSERA_WORKER_UPLOAD_H
#define TESSERA_WORKER_UPLOAD_H

#include <stdint.h>

#include <cjson/cJSON.h>

#include "tessera/proto.h"

#include "agent.h"
#include "spool.h"

#define TSR_UPLOAD_TRIES 3         /* ERRORs before the result becomes a failure */
#define TSR_UPLOAD_STALL_MS 30000  /* silence before a transfer restarts */
#define TSR_UPLOAD_WAIT_MAX_MS 5000 /* longest wait for a master out of space */
#define TSR_UPLOAD_MAX_CREDIT 1024 /* most chunks in flight we accept as credit */

struct tsr_upload;

/* What a call did to the upload, for the owner's bookkeeping. */
enum tsr_upload_event {
    TSR_UPLOAD_NONE = 0, /* the message was not for this upload */
    TSR_UPLOAD_TAKEN,    /* taken; the upload goes on */
    TSR_UPLOAD_SENT,     /* taken, and RESULT went out just now */
};

/*
 * Creates the upload of the spooled result of attempt, taking *record
 * (tsr_spool_load's or the committed one; set to NULL). Nothing is sent
 * until tsr_upload_start. spool is borrowed and must outlive the upload.
 * Returns 0, TSR_ENOMEM.
 */
int tsr_upload_new(struct tsr_spool *spool, int64_t attempt, cJSON **record,
                   struct tsr_upload **out);

/* Frees the upload (the spool entry stays); null-safe, sets *u to NULL. */
void tsr_upload_destroy(struct tsr_upload **u);

int64_t tsr_upload_attempt(const struct tsr_upload *u);

/* True once RESULT was sent on the current registration. */
int tsr_upload_done(const struct tsr_upload *u);

/* (Re)starts from the first file: at creation and after each WELCOME.
 * Returns TSR_UPLOAD_SENT when RESULT went out at once (no files, or the
 * registration is there and every file is had), else TSR_UPLOAD_TAKEN. */
enum tsr_upload_event tsr_upload_start(struct tsr_upload *u, struct tsr_agent *a);

/* The registration is gone: stop, to start again at the next WELCOME. */
void tsr_upload_pause(struct tsr_upload *u);

/* Takes PUT_OK, CHUNK_OK or PUT_DONE if its rid is this upload's. A
 * malformed answer is logged and restarts the transfer. */
enum tsr_upload_event tsr_upload_on_msg(struct tsr_upload *u, struct tsr_agent *a,
                                        const struct tsr_msg *m, int64_t rid);

/* Takes an ERROR with request id rid if it answers this upload. */
enum tsr_upload_event tsr_upload_on_error(struct tsr_upload *u, struct tsr_agent *a,
                                          int64_t rid, int code, const char *message);

/* True when a result that went unanswered for TSR_UPLOAD_STALL_MS (RESULT
 * sent but no RESULT_ACK, or a send that failed while registered) should go
 * again from the start with tsr_upload_start: the master acknowledges
 * duplicates, so sending twice is safe and a lost message costs no task. */
int tsr_upload_due(const struct tsr_upload *u, const struct tsr_agent *a, int64_t now_ms);

/* Restarts a transfer that got no answer for TSR_UPLOAD_STALL_MS. Returns
 * the next time it needs to run (INT64_MAX: nothing pending). */
int64_t tsr_upload_tick(struct tsr_upload *u, struct tsr_agent *a, int64_t now_ms);

#endif
