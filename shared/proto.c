/*
 * proto.c: framing and header checks of the wire protocol (proto.h).
 *
 * Everything that comes off a socket passes through tsr_proto_decode, which
 * is also the fuzz target's entry point: it never trusts a length, a type or
 * a byte it has not checked.
 */
#include "tessera/proto.h"
#include "tessera/error.h"
#include "tessera/hash.h"
#include "tessera/util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define S_MAX_FRAMES 8 /* routing id, signature, command, header, body, spare */

static void s_err(char *err, size_t errlen, const char *fmt, const char *a)
{
    if (err && errlen)
        snprintf(err, errlen, fmt, a);
}

void tsr_msg_clear(struct tsr_msg *msg)
{
    cJSON_Delete(msg->hdr);
    free(msg->body);
    msg->hdr = NULL;
    msg->body = NULL;
    msg->body_len = 0;
    msg->cmd[0] = '\0';
}

int tsr_proto_decode(const struct tsr_frame *frames, size_t nframes, struct tsr_msg *msg,
                     char *err, size_t errlen)
{
    msg->hdr = NULL;
    msg->body = NULL;
    msg->body_len = 0;
    msg->cmd[0] = '\0';
    if (nframes < 3 || nframes > 4) {
        s_err(err, errlen, "%s", "message must have 3 or 4 frames");
        return TSR_EPROTO;
    }
    const unsigned char *sig = frames[0].data;
    if (frames[0].len != 4 || memcmp(sig, "TSR", 3) != 0) {
        s_err(err, errlen, "%s", "not a tessera message (bad signature)");
        return TSR_EPROTO;
    }
    if (sig[3] != '0' + TSR_PROTO_VERSION) {
        char v[2] = {(char)(sig[3] >= 32 && sig[3] < 127 ? sig[3] : '?'), 0};
        s_err(err, errlen, "protocol version '%s' not supported (this peer speaks 1)", v);
        return TSR_EVERSION;
    }
    if (frames[1].len == 0 || frames[1].len > TSR_PROTO_MAX_CMD) {
        s_err(err, errlen, "%s", "command name empty or too long");
        return TSR_EPROTO;
    }
    const char *cmd = frames[1].data;
    for (size_t i = 0; i < frames[1].len; i++) {
        char c = cmd[i];
        if (!((c >= 'A' && c <= 'Z') || c == '_' || (c >= '0' && c <= '9'))) {
            s_err(err, errlen, "%s", "command name has characters other than A-Z, 0-9, _");
            return TSR_EPROTO;
        }
    }
    if (frames[2].len > TSR_PROTO_MAX_HEADER) {
        s_err(err, errlen, "%s", "header larger than 256 KiB");
        return TSR_ELIMIT;
    }
    if (nframes == 4 && frames[3].len > TSR_PROTO_MAX_BODY) {
        s_err(err, errlen, "%s", "body larger than 4 MiB");
        return TSR_ELIMIT;
    }
    /* cJSON_ParseWithLength reads at most len bytes: no NUL needed, and no
     * read past the frame. */
    const char *end = NULL;
    cJSON *hdr = cJSON_ParseWithLengthOpts(frames[2].data, frames[2].len, &end, 0);
    /* Trailing bytes after the object (a NUL and more, say) are refused: a
     * header is one JSON object and nothing else. */
    if (hdr && end != (const char *)frames[2].data + frames[2].len) {
        while (end < (const char *)frames[2].data + frames[2].len &&
               (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t'))
            end++;
        if (end != (const char *)frames[2].data + frames[2].len) {
            cJSON_Delete(hdr);
            hdr = NULL;
        }
    }
    if (!hdr || !cJSON_IsObject(hdr)) {
        cJSON_Delete(hdr);
        s_err(err, errlen, "%s", "header is not a JSON object");
        return TSR_EPROTO;
    }
    if (nframes == 4 && frames[3].len > 0) {
        msg->body = malloc(frames[3].len);
        if (!msg->body) {
            cJSON_Delete(hdr);
            return TSR_ENOMEM;
        }
        memcpy(msg->body, frames[3].data, frames[3].len);
        msg->body_len = frames[3].len;
    }
    memcpy(msg->cmd, cmd, frames[1].len);
    msg->cmd[frames[1].len] = '\0';
    msg->hdr = hdr;
    return 0;
}

/* Copies a metadata property of part into out; "" when it is absent or
 * does not fit (a truncated identity could name someone else). */
static void s_meta(zmq_msg_t *part, const char *name, char *out, size_t size)
{
    const char *v = zmq_msg_gets(part, name);
    size_t len = v ? strlen(v) : 0;
    if (len >= size)
        len = 0;
    memcpy(out, v ? v : "", len);
    out[len] = '\0';
}

int tsr_msg_recv(void *sock, int router, int nonblock, struct tsr_msg *msg, char *err,
                 size_t errlen)
{
    zmq_msg_t parts[S_MAX_FRAMES];
    size_t n = 0;
    int more = 1;
    int rc = 0;
    msg->peer_len = 0;
    msg->hdr = NULL;
    msg->body = NULL;
    msg->body_len = 0;
    msg->cmd[0] = '\0';
    msg->user[0] = '\0';
    msg->key[0] = '\0';
    while (more) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        int flags = (n == 0 && nonblock) ? ZMQ_DONTWAIT : 0;
        if (zmq_msg_recv(&part, sock, flags) < 0) {
            int e = zmq_errno();
            zmq_msg_close(&part);
            if (n == 0 && (e == EAGAIN || e == EINTR))
                return TSR_ETIMEOUT;
            if (e == EINTR)
                continue; /* the rest of a message that has begun is there */
            s_err(err, errlen, "receive failed: %s", zmq_strerror(e));
            rc = TSR_EZMQ;
            break;
        }
        more = zmq_msg_more(&part);
        if (n < S_MAX_FRAMES) {
            zmq_msg_init(&parts[n]);
            zmq_msg_move(&parts[n++], &part);
            zmq_msg_close(&part);
        } else {
            zmq_msg_close(&part);
            rc = TSR_EPROTO; /* keep draining the rest of the message */
        }
    }
    /* ZAP's User-Id and metadata ride on the frames the peer sent, not on
     * the routing id a ROUTER makes up. */
    size_t meta = router ? 1 : 0;
    if (n > meta) {
        s_meta(&parts[meta], "User-Id", msg->user, sizeof msg->user);
        s_meta(&parts[meta], "X-Key", msg->key, sizeof msg->key);
    }
    size_t first = 0;
    if (rc == 0 && router) {
        if (n < 1 || zmq_msg_size(&parts[0]) > TSR_PROTO_MAX_ROUTING) {
            rc = TSR_EPROTO;
        } else {
            msg->peer_len = zmq_msg_size(&parts[0]);
            memcpy(msg->peer, zmq_msg_data(&parts[0]), msg->peer_len);
            first = 1;
        }
    }
    if (rc == TSR_EPROTO) {
        if (router && n >= 1 && zmq_msg_size(&parts[0]) <= TSR_PROTO_MAX_ROUTING) {
            msg->peer_len = zmq_msg_size(&parts[0]);
            memcpy(msg->peer, zmq_msg_data(&parts[0]), msg->peer_len);
        }
        s_err(err, errlen, "%s", "message has too many frames");
    } else if (rc == 0) {
        struct tsr_frame frames[S_MAX_FRAMES];
        for (size_t i = first; i < n; i++) {
            frames[i - first].data = zmq_msg_data(&parts[i]);
            frames[i - first].len = zmq_msg_size(&parts[i]);
        }
        rc = tsr_proto_decode(frames, n - first, msg, err, errlen);
    }
    for (size_t i = 0; i < n; i++)
        zmq_msg_close(&parts[i]);
    return rc;
}

/* zmq_send, again when a signal interrupted it: a part interrupted before it
 * was queued is not queued, so sending it again is right. */
static int s_send_part(void *sock, const void *data, size_t len, int flags)
{
    for (;;) {
        if (zmq_send(sock, data, len, flags) >= 0)
            return 0;
        if (zmq_errno() != EINTR)
            return TSR_EZMQ;
    }
}

int tsr_msg_send(void *sock, const void *peer, size_t peer_len, const char *cmd,
                 const cJSON *hdr, const void *body, size_t body_len)
{
    char *text = hdr ? cJSON_PrintUnformatted(hdr) : NULL;
    if (hdr && !text)
        return TSR_ENOMEM;
    const char *h = text ? text : "{}";
    int rc = 0;
    int last_more = body ? ZMQ_SNDMORE : 0;
    if (peer && peer_len)
        rc = s_send_part(sock, peer, peer_len, ZMQ_SNDMORE);
    if (rc == 0)
        rc = s_send_part(sock, TSR_PROTO_SIGNATURE, 4, ZMQ_SNDMORE);
    if (rc == 0)
        rc = s_send_part(sock, cmd, strlen(cmd), ZMQ_SNDMORE);
    if (rc == 0)
        rc = s_send_part(sock, h, strlen(h), last_more);
    if (rc == 0 && body)
        rc = s_send_part(sock, body, body_len, 0);
    free(text);
    return rc;
}

int tsr_msg_send_error(void *sock, const void *peer, size_t peer_len, const char *re,
                       int64_t rid, int code, const char *message)
{
    cJSON *h = cJSON_CreateObject();
    if (!h)
        return TSR_ENOMEM;
    cJSON_AddNumberToObject(h, "code", code);
    cJSON_AddStringToObject(h, "error", tsr_strerror(code));
    cJSON_AddStringToObject(h, "message", message ? message : tsr_strerror(code));
    if (re)
        cJSON_AddStringToObject(h, "re", re);
    if (rid >= 0)
        cJSON_AddNumberToObject(h, "rid", (double)rid);
    int rc = tsr_msg_send(sock, peer, peer_len, "ERROR", h, NULL, 0);
    cJSON_Delete(h);
    return rc;
}

static int s_field_err(char *err, size_t errlen, const char *name, const char *what)
{
    if (err && errlen)
        snprintf(err, errlen, "field '%s' %s", name, what);
    return TSR_EPROTO;
}

int tsr_hdr_str_opt(const cJSON *hdr, const char *name, size_t maxlen, const char **out,
                    char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(hdr, name);
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsString(v) || !v->valuestring)
        return s_field_err(err, errlen, name, "must be a string");
    if (strlen(v->valuestring) > maxlen)
        return s_field_err(err, errlen, name, "is too long");
    *out = v->valuestring;
    return 0;
}

int tsr_hdr_str(const cJSON *hdr, const char *name, size_t maxlen, const char **out,
                char *err, size_t errlen)
{
    const char *s = NULL;
    int rc = tsr_hdr_str_opt(hdr, name, maxlen, &s, err, errlen);
    if (rc != 0)
        return rc;
    if (!s)
        return s_field_err(err, errlen, name, "is missing");
    *out = s;
    return 0;
}

int tsr_hdr_int_opt(const cJSON *hdr, const char *name, int64_t min, int64_t max,
                    int64_t *out, char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(hdr, name);
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsNumber(v))
        return s_field_err(err, errlen, name, "must be a number");
    double d = v->valuedouble;
    if (!isfinite(d) || d != floor(d) || d < (double)min || d > (double)max)
        return s_field_err(err, errlen, name, "is out of range");
    *out = (int64_t)d;
    return 0;
}

int tsr_hdr_int(const cJSON *hdr, const char *name, int64_t min, int64_t max,
                int64_t *out, char *err, size_t errlen)
{
    if (!cJSON_GetObjectItemCaseSensitive(hdr, name))
        return s_field_err(err, errlen, name, "is missing");
    return tsr_hdr_int_opt(hdr, name, min, max, out, err, errlen);
}

int tsr_hdr_bool_opt(const cJSON *hdr, const char *name, int *out, char *err,
                     size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(hdr, name);
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsBool(v))
        return s_field_err(err, errlen, name, "must be true or false");
    *out = cJSON_IsTrue(v);
    return 0;
}

int tsr_hdr_hash(const cJSON *hdr, const char *name, const char **out, char *err,
                 size_t errlen)
{
    const char *s = NULL;
    int rc = tsr_hdr_str(hdr, name, 64, &s, err, errlen);
    if (rc != 0)
        return rc;
    if (!tsr_hash_valid(s))
        return s_field_err(err, errlen, name, "is not a sha256 hex digest");
    *out = s;
    return 0;
}

int tsr_socket_setup(void *sock)
{
    int64_t maxsz = TSR_PROTO_MAXMSGSIZE;
    int linger = 0;
    int hwm = 100000;
    if (zmq_setsockopt(sock, ZMQ_MAXMSGSIZE, &maxsz, sizeof maxsz) != 0 ||
        zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_setsockopt(sock, ZMQ_SNDHWM, &hwm, sizeof hwm) != 0 ||
        zmq_setsockopt(sock, ZMQ_RCVHWM, &hwm, sizeof hwm) != 0)
        return TSR_EZMQ;
    return 0;
}
