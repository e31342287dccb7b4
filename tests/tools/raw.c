/*
 * raw.c: tsr-raw, a ZeroMQ peer for the integration tests that says what
 * the real programs never would.
 *
 *   tsr-raw [--key FILE --master-key FILE] [--timeout MS] ENDPOINT send CMD JSON
 *       sends one message (a DEALER, like the CLI or a worker) and prints the
 *       reply as "CMD JSON" on one line; exit 0 on a reply, 3 on silence.
 *   tsr-raw [keys] ENDPOINT abuse N
 *       sends N rounds of hostile messages (garbage frames, wrong signatures
 *       and versions, oversize and truncated headers, too many frames,
 *       bodies where none belong, replies and commands out of order,
 *       unknown commands, an oversize frame that must cut the connection)
 *       and then checks, on a fresh connection, that the peer still answers
 *       HEARTBEAT or STATUS with something well-formed. Exit 0 when it does.
 *   tsr-raw [keys] ENDPOINT liar NAME CLASS
 *       plays a worker named NAME (one slot) that answers every TASK with a
 *       failed RESULT of class CLASS ("missing_asset") at once, heartbeats,
 *       and runs until killed.
 *
 * It links only the core library: the codec (to read replies) and the key
 * files.
 */
#include "tessera/curve.h"
#include "tessera/error.h"
#include "tessera/proto.h"
#include "tessera/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

/* How to connect. */
struct s_opts {
    const char *endpoint; /* where */
    int timeout_ms;       /* how long to wait for a reply */
    int curve;            /* with keys */
    char pub[TSR_KEY_Z85], sec[TSR_KEY_Z85], server[TSR_KEY_Z85]; /* the keys */
};

static void *s_connect(void *ctx, const struct s_opts *o)
{
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    if (o->curve)
        tsr_curve_client(s, o->pub, o->sec, o->server);
    if (zmq_connect(s, o->endpoint) != 0) {
        fprintf(stderr, "tsr-raw: cannot connect to %s: %s\n", o->endpoint,
                zmq_strerror(zmq_errno()));
        exit(2);
    }
    return s;
}

/* Sends frames (n of them, lengths given) as one message. */
static void s_frames(void *s, const void *const *data, const size_t *len, size_t n)
{
    for (size_t i = 0; i < n; i++)
        zmq_send(s, data[i], len[i], i + 1 < n ? ZMQ_SNDMORE : 0);
}

/* Waits for one message; prints it; returns 0, or 3 on silence. */
static int s_reply(void *s, int timeout_ms, int print)
{
    zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
    int64_t end = tsr_now_ms() + timeout_ms;
    for (;;) {
        int64_t left = end - tsr_now_ms();
        if (left <= 0 || zmq_poll(&it, 1, (long)left) <= 0)
            return 3;
        struct tsr_msg m;
        char err[256];
        int rc = tsr_msg_recv(s, 0, 1, &m, err, sizeof err);
        if (rc == TSR_ETIMEOUT)
            continue;
        if (rc != 0) {
            if (print)
                printf("MALFORMED %s\n", err);
            return 1;
        }
        if (print) {
            char *text = cJSON_PrintUnformatted(m.hdr);
            printf("%s %s\n", m.cmd, text ? text : "{}");
            free(text);
        }
        tsr_msg_clear(&m);
        return 0;
    }
}

/* Drains whatever answers arrived, without waiting long. */
static void s_drain(void *s, int ms)
{
    while (s_reply(s, ms, 0) != 3)
        ;
}

#define Z64 "0000000000000000000000000000000000000000000000000000000000000000"
#define O64 "1111111111111111111111111111111111111111111111111111111111111111"

/* One round of abuse on socket s. */
static void s_abuse(void *s, int round)
{
    static unsigned char big[TSR_PROTO_MAX_HEADER + 16];
    memset(big, '{', sizeof big);
    char garbage[64];
    for (size_t i = 0; i < sizeof garbage; i++)
        garbage[i] = (char)((i * 131 + (size_t)round * 17) & 0xff);
    const char *hdr = "{\"rid\":1}";
    /* A length of 0 means strlen: only the binary frames give theirs. */
    struct {
        const void *d[6]; /* frames */
        size_t l[6];      /* their lengths */
        size_t n;         /* how many */
    } cases[] = {
        {{garbage}, {sizeof garbage}, 1},                                   /* one frame */
        {{garbage, garbage, garbage}, {3, 9, 40}, 3},                       /* junk */
        {{"TSR9", "HELLO", "{}"}, {0}, 3},                                  /* version */
        {{"XYZ1", "JOBS", "{}"}, {0}, 3},                                   /* signature */
        {{"TSR1", "jobs", "{}"}, {0}, 3},                                   /* lower case */
        {{"TSR1", "", "{}"}, {0}, 3},                                       /* no command */
        {{"TSR1", "JOBS", "[1,2]"}, {0}, 3},                                /* not an object */
        {{"TSR1", "JOBS", "{\"rid\":"}, {0}, 3},                            /* truncated */
        {{"TSR1", "JOBS", "{}\0{}"}, {4, 4, 5}, 3},                         /* trailing */
        {{"TSR1", "JOBS", big}, {4, 4, sizeof big}, 3},                     /* oversize */
        {{"TSR1", "JOBS", hdr, "x", "y", "z"}, {0}, 6},                     /* frames */
        {{"TSR1", "STATUS", "{\"job\":\"x\"}"}, {0}, 3},                    /* type */
        {{"TSR1", "STATUS", "{\"job\":1e300}"}, {0}, 3},                    /* range */
        {{"TSR1", "CHUNK", "{\"hash\":\"00\",\"offset\":0}", "b"}, {0}, 4},  /* no PUT */
        {{"TSR1", "PUT_END", "{\"hash\":\"" Z64 "\"}"}, {0}, 3},              /* no PUT */
        {{"TSR1", "RESULT", "{\"attempt\":12345,\"ok\":true}"}, {0}, 3},    /* order */
        {{"TSR1", "READY", "{\"credit\":5}"}, {0}, 3},                      /* no HELLO */
        {{"TSR1", "WELCOME", "{}"}, {0}, 3},                                /* m -> w */
        {{"TSR1", "DATA", "{}", "xx"}, {0}, 4},                             /* a reply */
        {{"TSR1", "NOPE", "{}"}, {0}, 3},                                   /* unknown */
        {{"TSR1", "GET", "{\"hash\":\"" O64 "\",\"offset\":0,\"len\":99999999}"}, {0}, 3},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (size_t k = 0; k < cases[i].n; k++)
            if (cases[i].l[k] == 0)
                cases[i].l[k] = strlen(cases[i].d[k]);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        s_frames(s, cases[i].d, cases[i].l, cases[i].n);
    /* A worker that registers, asks for tasks, answers nonsense and
     * vanishes with whatever it was given: the master must requeue it. */
    char hello[160], msgs[3][200];
    snprintf(hello, sizeof hello, "{\"name\":\"raw-%d\",\"hub\":\"raw\",\"slots\":2,"
             "\"renderers\":[\"builtin\",\"command\"],\"running\":[1,2,3]}", round);
    snprintf(msgs[0], sizeof msgs[0], "{\"credit\":2}");
    snprintf(msgs[1], sizeof msgs[1], "{\"attempt\":1,\"ok\":true,\"files\":"
             "[{\"frame\":\"x\",\"hash\":7}],\"render_ms\":-5}");
    snprintf(msgs[2], sizeof msgs[2], "{\"attempt\":%d,\"percent\":900}", round + 1);
    const char *cmds[3] = {"READY", "RESULT", "PROGRESS"};
    const void *d[3] = {"TSR1", "HELLO", hello};
    size_t l[3] = {4, 5, strlen(hello)};
    s_frames(s, d, l, 3);
    for (int k = 0; k < 3; k++) {
        d[1] = cmds[k];
        l[1] = strlen(cmds[k]);
        d[2] = msgs[k];
        l[2] = strlen(msgs[k]);
        s_frames(s, d, l, 3);
    }
}

/* A fresh connection asks something every peer answers, and expects a
 * well-formed reply. Returns 0 or 3. */
static int s_alive(void *ctx, const struct s_opts *o)
{
    void *s = s_connect(ctx, o);
    const void *d[3] = {"TSR1", "JOBS", "{\"rid\":7}"};
    size_t l[3] = {4, 4, 9};
    s_frames(s, d, l, 3);
    int rc = s_reply(s, o->timeout_ms, 1);
    zmq_close(s);
    return rc;
}

/* Sends CMD with header text hdr on s. */
static void s_send_text(void *s, const char *cmd, const char *hdr)
{
    const void *d[3] = {"TSR1", cmd, hdr};
    size_t l[3] = {4, strlen(cmd), strlen(hdr)};
    s_frames(s, d, l, 3);
}

/* The liar: a worker whose every task "fails" with class cls. */
static int s_liar(void *ctx, const struct s_opts *o, const char *name, const char *cls)
{
    void *s = s_connect(ctx, o);
    char hdr[512];
    snprintf(hdr, sizeof hdr, "{\"name\":\"%s\",\"hub\":\"local\",\"slots\":1}", name);
    s_send_text(s, "HELLO", hdr);
    s_send_text(s, "READY", "{\"credit\":1}");
    int64_t beat = tsr_now_ms();
    for (;;) {
        zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 100) < 0)
            return 1;
        if (tsr_now_ms() - beat >= 200) {
            s_send_text(s, "HEARTBEAT", "{}");
            beat = tsr_now_ms();
        }
        if (!(it.revents & ZMQ_POLLIN))
            continue;
        struct tsr_msg m;
        char err[256];
        if (tsr_msg_recv(s, 0, 1, &m, err, sizeof err) != 0)
            continue;
        if (strcmp(m.cmd, "TASK") == 0) {
            const cJSON *a = cJSON_GetObjectItemCaseSensitive(m.hdr, "attempt");
            snprintf(hdr, sizeof hdr,
                     "{\"attempt\":%.0f,\"ok\":false,\"class\":\"%s\","
                     "\"error\":\"missing file: (a lie)\",\"files\":[]}",
                     cJSON_IsNumber(a) ? a->valuedouble : 0, cls);
            s_send_text(s, "RESULT", hdr);
        } else if (strcmp(m.cmd, "RESULT_ACK") == 0) {
            s_send_text(s, "READY", "{\"credit\":1}");
        } else if (strcmp(m.cmd, "RECONNECT") == 0) {
            snprintf(hdr, sizeof hdr, "{\"name\":\"%s\",\"hub\":\"local\",\"slots\":1}",
                     name);
            s_send_text(s, "HELLO", hdr);
            s_send_text(s, "READY", "{\"credit\":1}");
        }
        tsr_msg_clear(&m);
    }
}

int main(int argc, char **argv)
{
    struct s_opts o = {.timeout_ms = 5000};
    int i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
        if (i + 1 >= argc)
            break;
        char err[512];
        if (strcmp(argv[i], "--key") == 0) {
            if (tsr_key_load_secret(argv[i + 1], o.pub, o.sec, err, sizeof err) != 0) {
                fprintf(stderr, "tsr-raw: %s\n", err);
                return 2;
            }
            o.curve = 1;
        } else if (strcmp(argv[i], "--master-key") == 0) {
            if (tsr_key_load_public(argv[i + 1], o.server, err, sizeof err) != 0) {
                fprintf(stderr, "tsr-raw: %s\n", err);
                return 2;
            }
        } else if (strcmp(argv[i], "--timeout") == 0) {
            o.timeout_ms = atoi(argv[i + 1]);
        } else {
            break;
        }
    }
    if (argc - i < 2) {
        fprintf(stderr, "usage: tsr-raw [--key F --master-key F] [--timeout MS] ENDPOINT "
                        "send CMD JSON | abuse N | liar NAME CLASS\n");
        return 2;
    }
    o.endpoint = argv[i];
    void *ctx = zmq_ctx_new();
    int rc = 2;
    if (strcmp(argv[i + 1], "send") == 0 && argc - i == 4) {
        void *s = s_connect(ctx, &o);
        const void *d[3] = {"TSR1", argv[i + 2], argv[i + 3]};
        size_t l[3] = {4, strlen(argv[i + 2]), strlen(argv[i + 3])};
        s_frames(s, d, l, 3);
        rc = s_reply(s, o.timeout_ms, 1);
        zmq_close(s);
    } else if (strcmp(argv[i + 1], "abuse") == 0 && argc - i == 3) {
        int rounds = atoi(argv[i + 2]);
        for (int r = 0; r < rounds; r++) {
            void *s = s_connect(ctx, &o);
            s_abuse(s, r);
            s_drain(s, 50);
            /* A frame past ZMQ_MAXMSGSIZE: the master drops this connection
             * at the transport, and only this one. */
            size_t n = (size_t)TSR_PROTO_MAXMSGSIZE + 1024;
            char *huge = calloc(1, n);
            const void *d[4] = {"TSR1", "CHUNK", "{}", huge};
            size_t l[4] = {4, 5, 2, n};
            s_frames(s, d, l, 4);
            free(huge);
            zmq_close(s);
        }
        rc = s_alive(ctx, &o);
        if (rc != 0)
            fprintf(stderr, "tsr-raw: the peer at %s stopped answering\n", o.endpoint);
    } else if (strcmp(argv[i + 1], "liar") == 0 && argc - i == 4) {
        rc = s_liar(ctx, &o, argv[i + 2], argv[i + 3]);
    } else {
        fprintf(stderr, "tsr-raw: unknown mode '%s'\n", argv[i + 1]);
    }
    zmq_ctx_term(ctx);
    return rc;
}
