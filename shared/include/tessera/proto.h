/*
 * proto.h: the wire protocol codec. doc/protocol.md is the catalogue of
 * commands; this file is the framing.
 *
 * A message is a ZeroMQ multipart message:
 *
 *   [routing id]   only on a ROUTER socket, added/removed by ZeroMQ
 *   "TSR" + ver    signature and protocol version, 4 bytes ("TSR1")
 *   command        upper-case ASCII, 1..31 bytes ("HELLO", "TASK", ...)
 *   header         a JSON object (cJSON), at most TSR_PROTO_MAX_HEADER bytes
 *   [body]         optional raw bytes (a file chunk), at most
 *                  TSR_PROTO_MAX_BODY bytes
 *
 * The decoder checks every frame before anything reads it; a message it
 * refuses is consumed whole and reported with a reason, so the caller can
 * answer with an ERROR and go on serving everyone else.
 */
#ifndef TESSERA_PROTO_H
#define TESSERA_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#define TSR_PROTO_VERSION 1
#define TSR_PROTO_SIGNATURE "TSR1"
#define TSR_PROTO_MAX_CMD 31
#define TSR_PROTO_MAX_HEADER (256 * 1024)
#define TSR_PROTO_CHUNK (1024 * 1024)         /* file transfer chunk size */
#define TSR_PROTO_MAX_BODY (4 * 1024 * 1024)  /* most bytes in one body */
#define TSR_PROTO_MAX_ROUTING 255             /* ZeroMQ's routing id limit */
/* ZMQ_MAXMSGSIZE bounds each frame; no frame of ours is larger than this. */
#define TSR_PROTO_MAXMSGSIZE ((int64_t)TSR_PROTO_MAX_BODY + 4096)

/* One decoded message. */
struct tsr_msg {
    unsigned char peer[TSR_PROTO_MAX_ROUTING]; /* routing id (ROUTER side) */
    size_t peer_len;                           /* 0 when not from a ROUTER */
    char cmd[TSR_PROTO_MAX_CMD + 1];           /* command name */
    cJSON *hdr;                                /* header object, owned */
    void *body;                                /* body bytes (malloc'd) or NULL */
    size_t body_len;                           /* body length */
    char user[64];                             /* the peer's ZAP User-Id ("studio:x");
                                                  "" when not authenticated */
    char key[41];                              /* the Z85 public key it authenticated
                                                  with (ZAP metadata X-Key), or "" */
};

/* A raw frame for the decoder: borrowed bytes. */
struct tsr_frame {
    const void *data; /* frame bytes */
    size_t len;       /* frame length */
};

/*
 * Decodes the frames of one message (without routing id) into *msg, which
 * the caller provides and later clears with tsr_msg_clear. On failure msg is
 * left empty and err says why ("header is not a JSON object").
 * Returns 0, TSR_EPROTO, TSR_EVERSION (signature right, version not ours),
 * TSR_ELIMIT, TSR_ENOMEM.
 */
int tsr_proto_decode(const struct tsr_frame *frames, size_t nframes,
                     struct tsr_msg *msg, char *err, size_t errlen);

/*
 * Receives one whole message from sock (ZMQ_DONTWAIT when nonblock). With
 * router set, the first frame is taken as the routing id. user and key are
 * read from the message's metadata (a ROUTER's routing id frame carries
 * none, so from the first frame after it). A malformed message is consumed
 * entirely; its routing id and user are still filled in, so the caller can
 * reply. Returns 0, TSR_ETIMEOUT (nothing waiting, nonblock), TSR_EPROTO,
 * TSR_EVERSION, TSR_ELIMIT, TSR_EZMQ.
 */
int tsr_msg_recv(void *sock, int router, int nonblock, struct tsr_msg *msg,
                 char *err, size_t errlen);

/* Frees what msg holds and empties it; msg itself is the caller's. */
void tsr_msg_clear(struct tsr_msg *msg);

/*
 * Sends one message. peer/peer_len address a ROUTER's peer (NULL/0 on a
 * DEALER). hdr is borrowed (NULL sends "{}"); body may be NULL.
 * Returns 0, TSR_EZMQ, TSR_ENOMEM.
 */
int tsr_msg_send(void *sock, const void *peer, size_t peer_len, const char *cmd,
                 const cJSON *hdr, const void *body, size_t body_len);

/* Sends ERROR {"code": code, "error": tsr_strerror(code), "message": msg,
 * "re": re (the command answered), "rid": rid (the request id, if >= 0)}. */
int tsr_msg_send_error(void *sock, const void *peer, size_t peer_len,
                       const char *re, int64_t rid, int code, const char *message);

/*
 * Header field readers: each checks presence, type and bounds, and on
 * failure writes "field 'name' ..." to err and returns TSR_EPROTO.
 * The _opt forms leave *out unchanged when the field is absent.
 */
int tsr_hdr_str(const cJSON *hdr, const char *name, size_t maxlen, const char **out,
                char *err, size_t errlen);
int tsr_hdr_str_opt(const cJSON *hdr, const char *name, size_t maxlen,
                    const char **out, char *err, size_t errlen);
int tsr_hdr_int(const cJSON *hdr, const char *name, int64_t min, int64_t max,
                int64_t *out, char *err, size_t errlen);
int tsr_hdr_int_opt(const cJSON *hdr, const char *name, int64_t min, int64_t max,
                    int64_t *out, char *err, size_t errlen);
int tsr_hdr_bool_opt(const cJSON *hdr, const char *name, int *out, char *err,
                     size_t errlen);
/* A field that must be a 64-hex-digit sha256. */
int tsr_hdr_hash(const cJSON *hdr, const char *name, const char **out, char *err,
                 size_t errlen);

/* Sets socket options every Tessera socket gets: ZMQ_MAXMSGSIZE, linger,
 * and high-water marks. Returns 0 or TSR_EZMQ. */
int tsr_socket_setup(void *sock);

#endif
