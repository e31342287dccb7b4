/*
 * upload.c: one spooled result on its way to the master (upload.h).
 *
 * The state machine, per result:
 *
 *   IDLE --start, registered--> PUT --PUT_OK have:false--> CHUNKS
 *                                |                           | all CHUNK_OK
 *                                | have:true                 v
 *                                +------> next file <----- END (PUT_END sent)
 *                                            |            PUT_DONE
 *                                            v no file left
 *                                          SENT (RESULT sent; wait for ack)
 *
 * Any state but SENT goes back to IDLE when the registration is lost; an
 * ERROR, a malformed answer or a stall restarts the current file at PUT.
 * An ERROR saying the master is out of space (TSR_EFULL) is the farm's
 * fault, not the result's: the upload WAITs (backing off from 500 ms to
 * TSR_UPLOAD_WAIT_MAX_MS) and restarts the file, for as long as it takes,
 * without counting towards TSR_UPLOAD_TRIES.
 */
#include "upload.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tessera/error.h"
#include "tessera/hash.h"
#include "tessera/log.h"
#include "tessera/util.h"

#define S_LOG "upload"

enum s_state {
    S_IDLE = 0, /* waiting for a registration */
    S_PUT,      /* PUT sent, waiting for PUT_OK */
    S_CHUNKS,   /* sending chunks under credit */
    S_END,      /* PUT_END sent, waiting for PUT_DONE */
    S_SENT,     /* RESULT sent on this registration */
    S_WAIT,     /* the master is out of space: wait, then restart the file */
};

struct tsr_upload {
    struct tsr_spool *spool; /* where the files are; borrowed */
    int64_t attempt;         /* the result's attempt */
    cJSON *record;           /* the spooled record, owned */
    enum s_state state;      /* see the diagram above */
    int file;                /* index of the file in transfer */
    int nfiles;              /* files in the record */
    int64_t rid;             /* request id of the current transfer */
    char hash[TSR_HASH_HEX]; /* the current file's hash */
    uint64_t size;           /* its size */
    char name[256];          /* its name in the spool entry */
    int fd;                  /* it, open for reading; -1 when none */
    int64_t upload;          /* the master's id of this upload (PUT_OK), 0 if none */
    uint64_t chunk;          /* chunk size PUT_OK asked for */
    int credit;              /* chunks PUT_OK allows in flight */
    uint64_t next_off;       /* offset of the next chunk to send */
    int inflight;            /* chunks sent and not answered */
    unsigned char *buf;      /* one chunk, read from the file */
    int errors;              /* ERRORs and bad answers so far */
    int64_t last_ms;         /* last request sent or answer taken */
    int64_t wait_ms;         /* current backoff while the master is full */
    int64_t wake_ms;         /* S_WAIT: when to try again */
};

int tsr_upload_new(struct tsr_spool *spool, int64_t attempt, cJSON **record,
                   struct tsr_upload **out)
{
    *out = NULL;
    struct tsr_upload *u = calloc(1, sizeof *u);
    if (!u)
        return TSR_ENOMEM;
    u->spool = spool;
    u->attempt = attempt;
    u->record = *record;
    *record = NULL;
    u->fd = -1;
    u->nfiles = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(u->record, "files"));
    *out = u;
    return 0;
}

static void s_close_file(struct tsr_upload *u)
{
    if (u->fd >= 0)
        close(u->fd);
    u->fd = -1;
    free(u->buf);
    u->buf = NULL;
}

void tsr_upload_destroy(struct tsr_upload **up)
{
    struct tsr_upload *u = up ? *up : NULL;
    if (!u)
        return;
    s_close_file(u);
    cJSON_Delete(u->record);
    free(u);
    *up = NULL;
}

int64_t tsr_upload_attempt(const struct tsr_upload *u)
{
    return u->attempt;
}

int tsr_upload_done(const struct tsr_upload *u)
{
    return u->state == S_SENT;
}

/* RESULT: the record without the worker-local file names. */
static enum tsr_upload_event s_send_result(struct tsr_upload *u, struct tsr_agent *a)
{
    cJSON *h = cJSON_CreateObject();
    cJSON *files = cJSON_CreateArray();
    if (!h || !files) {
        cJSON_Delete(h);
        cJSON_Delete(files);
        return TSR_UPLOAD_TAKEN;
    }
    static const char *const keep[] = {"attempt", "ok",    "render_ms",
                                       "log",     "class", "error"};
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(u->record, keep[i]);
        if (v)
            cJSON_AddItemToObject(h, keep[i], cJSON_Duplicate(v, 1));
    }
    const cJSON *f;
    cJSON_ArrayForEach(f, cJSON_GetObjectItemCaseSensitive(u->record, "files"))
    {
        cJSON *e = cJSON_CreateObject();
        if (!e)
            break;
        static const char *const fk[] = {"frame", "hash", "size"};
        for (size_t i = 0; i < 3; i++)
            cJSON_AddItemToObject(
                e, fk[i], cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(f, fk[i]), 1));
        cJSON_AddItemToArray(files, e);
    }
    cJSON_AddItemToObject(h, "files", files);
    int rc = tsr_agent_send(a, "RESULT", h, NULL, 0);
    cJSON_Delete(h);
    u->last_ms = tsr_now_ms();
    if (rc != 0) {
        u->state = S_IDLE;
        return TSR_UPLOAD_TAKEN;
    }
    u->state = S_SENT;
    tsr_log(TSR_LOG_DEBUG, S_LOG, "result of attempt %" PRId64 " sent", u->attempt);
    return TSR_UPLOAD_SENT;
}

/* Turns the result into a failure of class "upload" and sends that. */
static enum tsr_upload_event s_give_up(struct tsr_upload *u, struct tsr_agent *a,
                                       const char *why)
{
    tsr_log(TSR_LOG_WARN, S_LOG, "attempt %" PRId64 ": upload failed: %s", u->attempt,
            why);
    s_close_file(u);
    cJSON_ReplaceItemInObject(u->record, "ok", cJSON_CreateFalse());
    cJSON_DeleteItemFromObject(u->record, "files");
    cJSON_AddItemToObject(u->record, "files", cJSON_CreateArray());
    cJSON_DeleteItemFromObject(u->record, "class");
    cJSON_DeleteItemFromObject(u->record, "error");
    cJSON_AddStringToObject(u->record, "class", "upload");
    cJSON_AddStringToObject(u->record, "error", why);
    u->nfiles = 0;
    int rc = tsr_spool_rewrite(u->spool, u->attempt, u->record);
    if (rc != 0)
        tsr_log(TSR_LOG_WARN, S_LOG,
                "attempt %" PRId64 ": cannot rewrite spooled result: %s", u->attempt,
                tsr_strerror(rc));
    u->file = 0;
    return s_send_result(u, a);
}

static int s_send_put(struct tsr_upload *u, struct tsr_agent *a, const char *cmd,
                      int with_size)
{
    cJSON *h = cJSON_CreateObject();
    if (!h)
        return TSR_ENOMEM;
    cJSON_AddNumberToObject(h, "rid", (double)u->rid);
    cJSON_AddStringToObject(h, "hash", u->hash);
    if (with_size)
        cJSON_AddNumberToObject(h, "size", (double)u->size);
    else if (u->upload)
        cJSON_AddNumberToObject(h, "upload", (double)u->upload); /* PUT_END */
    int rc = tsr_agent_send(a, cmd, h, NULL, 0);
    cJSON_Delete(h);
    u->last_ms = tsr_now_ms();
    return rc;
}

/* Starts the transfer of file u->file, or sends RESULT after the last. */
static enum tsr_upload_event s_begin_file(struct tsr_upload *u, struct tsr_agent *a)
{
    s_close_file(u);
    if (!tsr_agent_welcomed(a)) {
        u->state = S_IDLE;
        return TSR_UPLOAD_TAKEN;
    }
    if (u->file >= u->nfiles)
        return s_send_result(u, a);
    const cJSON *f =
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(u->record, "files"), u->file);
    const cJSON *hash = cJSON_GetObjectItemCaseSensitive(f, "hash");
    const cJSON *size = cJSON_GetObjectItemCaseSensitive(f, "size");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(f, "name");
    char path[PATH_MAX];
    /* The record was checked when it was made or loaded (tsr_spool_load). */
    if (!cJSON_IsString(hash) || !cJSON_IsNumber(size) || !cJSON_IsString(name) ||
        tsr_fmt(u->name, sizeof u->name, "%s", name->valuestring) != 0 ||
        tsr_spool_path(u->spool, u->attempt, u->name, path, sizeof path) != 0)
        return s_give_up(u, a, "spooled result record is damaged");
    snprintf(u->hash, sizeof u->hash, "%s", hash->valuestring);
    u->size = (uint64_t)size->valuedouble;
    u->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (u->fd < 0) {
        char why[PATH_MAX + 64];
        snprintf(why, sizeof why, "cannot open spooled file '%s': %s", path,
                 strerror(errno));
        return s_give_up(u, a, why);
    }
    u->rid = tsr_agent_rid(a);
    u->inflight = 0;
    u->next_off = 0;
    u->upload = 0;
    u->state = S_PUT;
    if (s_send_put(u, a, "PUT", 1) != 0)
        u->state = S_IDLE;
    return TSR_UPLOAD_TAKEN;
}

enum tsr_upload_event tsr_upload_start(struct tsr_upload *u, struct tsr_agent *a)
{
    u->file = 0;
    return s_begin_file(u, a);
}

void tsr_upload_pause(struct tsr_upload *u)
{
    s_close_file(u);
    u->state = S_IDLE;
}

/* Sends chunks while credit lasts; PUT_END once all are answered. */
static enum tsr_upload_event s_pump(struct tsr_upload *u, struct tsr_agent *a)
{
    while (u->inflight < u->credit && u->next_off < u->size) {
        uint64_t len = u->size - u->next_off;
        if (len > u->chunk)
            len = u->chunk;
        size_t got = 0;
        while (got < len) {
            ssize_t n = pread(u->fd, u->buf + got, (size_t)(len - got),
                              (off_t)(u->next_off + got));
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                char why[400];
                snprintf(why, sizeof why, "cannot read spooled file '%s'", u->name);
                return s_give_up(u, a, why);
            }
            got += (size_t)n;
        }
        cJSON *h = cJSON_CreateObject();
        if (!h)
            return TSR_UPLOAD_TAKEN;
        cJSON_AddNumberToObject(h, "rid", (double)u->rid);
        cJSON_AddStringToObject(h, "hash", u->hash);
        cJSON_AddNumberToObject(h, "offset", (double)u->next_off);
        if (u->upload)
            cJSON_AddNumberToObject(h, "upload", (double)u->upload);
        int rc = tsr_agent_send(a, "CHUNK", h, u->buf, (size_t)len);
        cJSON_Delete(h);
        if (rc != 0) {
            tsr_upload_pause(u);
            return TSR_UPLOAD_TAKEN;
        }
        u->last_ms = tsr_now_ms();
        u->next_off += len;
        u->inflight++;
    }
    if (u->next_off >= u->size && u->inflight == 0) {
        u->state = S_END;
        if (s_send_put(u, a, "PUT_END", 0) != 0)
            tsr_upload_pause(u);
    }
    return TSR_UPLOAD_TAKEN;
}

/* A bad answer or an ERROR: restart the file, or give up after too many. */
static enum tsr_upload_event s_retry(struct tsr_upload *u, struct tsr_agent *a,
                                     const char *why)
{
    if (++u->errors >= TSR_UPLOAD_TRIES) {
        char msg[600];
        snprintf(msg, sizeof msg, "master refused '%s': %s", u->name, why);
        return s_give_up(u, a, msg);
    }
    tsr_log(TSR_LOG_WARN, S_LOG, "attempt %" PRId64 ": upload of '%s' restarts: %s",
            u->attempt, u->name, why);
    return s_begin_file(u, a);
}

static enum tsr_upload_event s_next_file(struct tsr_upload *u, struct tsr_agent *a)
{
    if (u->wait_ms)
        tsr_log(TSR_LOG_INFO, S_LOG, "attempt %" PRId64 ": the master has room again",
                u->attempt);
    u->wait_ms = 0;
    u->file++;
    return s_begin_file(u, a);
}

enum tsr_upload_event tsr_upload_on_msg(struct tsr_upload *u, struct tsr_agent *a,
                                        const struct tsr_msg *m, int64_t rid)
{
    if (rid != u->rid || (u->state != S_PUT && u->state != S_CHUNKS && u->state != S_END))
        return TSR_UPLOAD_NONE;
    char err[256];
    const char *hash = NULL;
    if (tsr_hdr_hash(m->hdr, "hash", &hash, err, sizeof err) != 0)
        return s_retry(u, a, err);
    if (strcmp(hash, u->hash) != 0)
        return s_retry(u, a, "answer names another file");
    u->last_ms = tsr_now_ms();
    if (strcmp(m->cmd, "PUT_OK") == 0 && u->state == S_PUT) {
        int have = 0;
        int64_t chunk = TSR_PROTO_CHUNK, credit = 1;
        if (tsr_hdr_bool_opt(m->hdr, "have", &have, err, sizeof err) != 0 ||
            tsr_hdr_int_opt(m->hdr, "chunk", 1, TSR_PROTO_MAX_BODY, &chunk, err,
                            sizeof err) ||
            tsr_hdr_int_opt(m->hdr, "credit", 1, TSR_UPLOAD_MAX_CREDIT, &credit, err,
                            sizeof err) != 0 ||
            tsr_hdr_int_opt(m->hdr, "upload", 0, INT64_C(1) << 62, &u->upload, err,
                            sizeof err) != 0)
            return s_retry(u, a, err);
        if (have)
            return s_next_file(u, a);
        u->chunk = (uint64_t)chunk;
        u->credit = (int)credit;
        u->buf = malloc((size_t)chunk);
        if (!u->buf)
            return s_retry(u, a, "out of memory");
        u->state = S_CHUNKS;
        return s_pump(u, a);
    }
    if (strcmp(m->cmd, "CHUNK_OK") == 0 && u->state == S_CHUNKS) {
        int64_t off = 0;
        if (tsr_hdr_int(m->hdr, "offset", 0, INT64_C(1) << 53, &off, err, sizeof err) !=
            0)
            return s_retry(u, a, err);
        if ((uint64_t)off >= u->next_off || (uint64_t)off % u->chunk != 0 ||
            u->inflight == 0)
            return s_retry(u, a, "CHUNK_OK for a chunk not in flight");
        u->inflight--;
        return s_pump(u, a);
    }
    if (strcmp(m->cmd, "PUT_DONE") == 0 && u->state == S_END) {
        int64_t size = -1;
        if (tsr_hdr_int(m->hdr, "size", 0, INT64_C(1) << 53, &size, err, sizeof err) != 0)
            return s_retry(u, a, err);
        if ((uint64_t)size != u->size)
            return s_retry(u, a, "PUT_DONE reports another size");
        return s_next_file(u, a);
    }
    char why[64];
    snprintf(why, sizeof why, "unexpected %s", m->cmd);
    return s_retry(u, a, why);
}

enum tsr_upload_event tsr_upload_on_error(struct tsr_upload *u, struct tsr_agent *a,
                                          int64_t rid, int code, const char *message)
{
    if (rid != u->rid || (u->state != S_PUT && u->state != S_CHUNKS && u->state != S_END))
        return TSR_UPLOAD_NONE;
    if (code == TSR_EFULL) {
        if (!u->wait_ms)
            tsr_log(TSR_LOG_WARN, S_LOG,
                    "attempt %" PRId64 ": the master has no room for '%s' (%s); waiting",
                    u->attempt, u->name, message);
        u->wait_ms = u->wait_ms ? u->wait_ms * 2 : 500;
        if (u->wait_ms > TSR_UPLOAD_WAIT_MAX_MS)
            u->wait_ms = TSR_UPLOAD_WAIT_MAX_MS;
        s_close_file(u);
        u->state = S_WAIT;
        u->wake_ms = tsr_now_ms() + u->wait_ms;
        return TSR_UPLOAD_TAKEN;
    }
    char why[400];
    snprintf(why, sizeof why, "%s (%s)", message, tsr_strerror(code));
    return s_retry(u, a, why);
}

int tsr_upload_due(const struct tsr_upload *u, const struct tsr_agent *a, int64_t now)
{
    return (u->state == S_IDLE || u->state == S_SENT) && tsr_agent_welcomed(a) &&
           now - u->last_ms >= TSR_UPLOAD_STALL_MS;
}

int64_t tsr_upload_tick(struct tsr_upload *u, struct tsr_agent *a, int64_t now)
{
    if (u->state == S_WAIT) {
        if (now < u->wake_ms)
            return u->wake_ms;
        s_begin_file(u, a);
        if (u->state == S_IDLE || u->state == S_SENT)
            return INT64_MAX;
        return u->last_ms + TSR_UPLOAD_STALL_MS;
    }
    if (u->state == S_IDLE || u->state == S_SENT)
        return tsr_agent_welcomed(a) ? u->last_ms + TSR_UPLOAD_STALL_MS : INT64_MAX;
    if (u->state != S_PUT && u->state != S_CHUNKS && u->state != S_END)
        return INT64_MAX;
    if (now - u->last_ms >= TSR_UPLOAD_STALL_MS) {
        tsr_log(TSR_LOG_WARN, S_LOG,
                "attempt %" PRId64 ": upload of '%s' stalled; restarting", u->attempt,
                u->name);
        s_begin_file(u, a);
        if (u->state == S_IDLE || u->state == S_SENT)
            return INT64_MAX;
    }
    return u->last_ms + TSR_UPLOAD_STALL_MS;
}
