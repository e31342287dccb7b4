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
 *   tsr-raw [keys] ENDPOINT greedy NAME SLOTS CORES EVERY_MS SECONDS
 *       a worker that registers with SLOTS slots and CORES cores, asks for
 *       SLOTS more tasks every EVERY_MS and never finishes one, for SECONDS;
 *       prints "welcome slots=N" and then "held N" (the TASKs it was given).
 *   tsr-raw [keys] [--timeout MS] ENDPOINT script < LINES
 *       sends one message per line of standard input, all on one connection
 *       (one uploader): "CMD JSON [BODY]", the JSON without spaces, BODY
 *       "@zero:LEN" (LEN zero bytes) or "@file:PATH:OFFSET:LEN" (a slice of a
 *       file). It waits for one reply after each line and prints it, unless
 *       the line starts with "-" (sent at once after the one before, as a
 *       peer that does not wait would); at the end it prints the replies
 *       still due. Exit 0 when every message was answered, 3 otherwise.
 *
 * In send, a JSON argument "@FILE" reads the header from FILE (a header
 * larger than one command-line argument may be).
 *   tsr-raw [keys] ENDPOINT getflood N HASH LEN GOFILE
 *       a slow reader: sends N GETs of LEN bytes of blob HASH without reading
 *       (a one-message receive queue and a small socket buffer keep the
 *       answers on the master's side), prints "sent N", waits until GOFILE
 *       exists, then reads every answer and prints "data=D busy=B other=O"
 *       and the first TSR_EBUSY message. Exit 0 when all N were answered.
 *   tsr-raw [keys] ENDPOINT burst N CMD_A JSON_A CMD_B JSON_B
 *       sends CMD_A and CMD_B in turns, N of each (rid 1..2N, added to the
 *       JSON), at once on one connection, then reads every answer and
 *       prints "ok=X busy=Y other=Z" (busy: ERROR with TSR_EBUSY) and the
 *       first TSR_EBUSY message. Exit 0 when all 2N were answered.
 *   tsr-raw [keys] ENDPOINT piece NAME FILE
 *       a worker that sends FILE as the image of the first task it gets: on
 *       the worker endpoint, HELLO as NAME (one slot), READY, and on TASK
 *       uploads FILE (PUT/CHUNK/PUT_END) and sends RESULT with it for the
 *       task's first frame; prints the RESULT_ACK. Exit 0 on an ack.
 *   tsr-raw [keys] ENDPOINT race N CMD_A JSON_A CMD_B JSON_B [KEY_B]
 *       connection A sends N requests CMD_A (rid 1..N) without waiting, then
 *       connection B (key KEY_B, else A's) sends one CMD_B and waits for it,
 *       counting A's answers meanwhile; prints "b_after_a=K of N b_ms=T
 *       a_ms=U b=CMD" once all have answered. Exit 0 when B and all of A
 *       were answered.
 *
 * It links only the core library: the codec (to read replies) and the key
 * files.
 */
#include "tessera/curve.h"
#include "tessera/error.h"
#include "tessera/hash.h"
#include "tessera/proto.h"
#include "tessera/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
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

/* The greedy worker (see the top). Returns 0, or 3 when never welcomed. */
static int s_greedy(void *ctx, const struct s_opts *o, const char *name, int slots,
                    int cores, int every_ms, int seconds)
{
    void *s = s_connect(ctx, o);
    char hello[512], ready[64];
    snprintf(hello, sizeof hello,
             "{\"name\":\"%s\",\"hub\":\"greedy\",\"slots\":%d,"
             "\"cores\":%d,\"renderers\":[\"builtin\",\"command\"],\"running\":[]}",
             name, slots, cores);
    snprintf(ready, sizeof ready, "{\"credit\":%d}", slots > 1024 ? 1024 : slots);
    const void *d[3] = {"TSR1", "HELLO", hello};
    size_t l[3] = {4, 5, strlen(hello)};
    s_frames(s, d, l, 3);
    int welcomed = 0, held = 0;
    int64_t end = tsr_now_ms() + (int64_t)seconds * 1000, next = 0;
    while (tsr_now_ms() < end) {
        int64_t now = tsr_now_ms();
        if (welcomed && now >= next) {
            d[1] = "READY";
            l[1] = 5;
            d[2] = ready;
            l[2] = strlen(ready);
            s_frames(s, d, l, 3);
            next = now + every_ms;
        }
        zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 20) <= 0)
            continue;
        struct tsr_msg m;
        char err[256];
        if (tsr_msg_recv(s, 0, 1, &m, err, sizeof err) != 0)
            continue;
        if (strcmp(m.cmd, "WELCOME") == 0) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(m.hdr, "slots");
            printf("welcome slots=%d\n", cJSON_IsNumber(v) ? v->valueint : -1);
            fflush(stdout);
            welcomed = 1;
        } else if (strcmp(m.cmd, "TASK") == 0) {
            held++;
        } else if (strcmp(m.cmd, "ERROR") == 0) {
            char *text = cJSON_PrintUnformatted(m.hdr);
            printf("ERROR %s\n", text ? text : "{}");
            free(text);
        }
        tsr_msg_clear(&m);
    }
    printf("held %d\n", held);
    zmq_close(s);
    return welcomed ? 0 : 3;
}

/* A header argument: the text itself, or "@FILE" for the file's contents
 * (caller frees *buf). */
static const char *s_header_arg(const char *arg, char **buf)
{
    *buf = NULL;
    if (arg[0] != '@')
        return arg;
    FILE *f = fopen(arg + 1, "rb");
    if (!f) {
        fprintf(stderr, "tsr-raw: cannot open '%s'\n", arg + 1);
        exit(2);
    }
    size_t cap = 1 << 16, n = 0;
    *buf = malloc(cap + 1);
    size_t r;
    while (*buf && (r = fread(*buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap)
            *buf = realloc(*buf, (cap *= 2) + 1);
    }
    fclose(f);
    if (!*buf)
        exit(2);
    (*buf)[n] = '\0';
    return *buf;
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

/* Reads BODY ("@zero:LEN" or "@file:PATH:OFFSET:LEN") into *out (owned). */
static int s_body(const char *spec, void **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    unsigned long long off = 0, n = 0;
    char path[1024];
    if (sscanf(spec, "@zero:%llu", &n) == 1) {
        *out = calloc(1, n ? n : 1);
        *len = (size_t)n;
        return *out ? 0 : -1;
    }
    const char *last = strrchr(spec, ':'), *mid = NULL;
    for (const char *p = spec; last && p < last; p++)
        if (*p == ':')
            mid = p; /* the colon before OFFSET */
    if (strncmp(spec, "@file:", 6) != 0 || !mid || mid <= spec + 6 ||
        (size_t)(mid - spec - 6) >= sizeof path ||
        sscanf(mid, ":%llu:%llu", &off, &n) != 2)
        return -1;
    memcpy(path, spec + 6, (size_t)(mid - spec - 6));
    path[mid - spec - 6] = '\0';
    FILE *f = fopen(path, "rb");
    *out = malloc(n ? n : 1);
    if (!f || !*out || fseek(f, (long)off, SEEK_SET) != 0 || fread(*out, 1, n, f) != n) {
        if (f)
            fclose(f);
        free(*out);
        *out = NULL;
        return -1;
    }
    fclose(f);
    *len = (size_t)n;
    return 0;
}

/* The script mode: see the head of the file. */
static int s_script(void *ctx, const struct s_opts *o)
{
    void *s = s_connect(ctx, o);
    char line[4096];
    int sent = 0, answered = 0, rc = 0;
    while (fgets(line, sizeof line, stdin)) {
        char *p = line, *save = NULL;
        int nowait = *p == '-';
        if (nowait)
            p++;
        char *cmd = strtok_r(p, " \t\n", &save);
        char *json = cmd ? strtok_r(NULL, " \t\n", &save) : NULL;
        char *spec = json ? strtok_r(NULL, " \t\n", &save) : NULL;
        if (!cmd || cmd[0] == '#')
            continue;
        void *body = NULL;
        size_t blen = 0;
        if (!json || (spec && s_body(spec, &body, &blen) != 0)) {
            fprintf(stderr, "tsr-raw: bad script line: %s\n", line);
            rc = 2;
            break;
        }
        const void *d[4] = {"TSR1", cmd, json, body};
        size_t l[4] = {4, strlen(cmd), strlen(json), blen};
        s_frames(s, d, l, spec ? 4 : 3);
        free(body);
        sent++;
        while (!nowait && answered < sent) {
            if (s_reply(s, o->timeout_ms, 1) != 0)
                break;
            answered++;
        }
        fflush(stdout);
    }
    while (!rc && answered < sent && s_reply(s, o->timeout_ms, 1) == 0)
        answered++;
    fflush(stdout);
    zmq_close(s);
    return rc ? rc : answered == sent ? 0 : 3;
}

/* One message on s within timeout_ms: its command (cmd, 32 bytes), its
 * header's "code" and "message" (msg, msglen). Returns 0, or 3 on silence. */
static int s_take(void *s, int timeout_ms, char *cmd, int *code, char *msg, size_t msglen)
{
    zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
    int64_t end = tsr_now_ms() + timeout_ms;
    for (;;) {
        int64_t left = end - tsr_now_ms();
        if (left < 0 || zmq_poll(&it, 1, (long)left) <= 0)
            return 3;
        struct tsr_msg m;
        char err[256];
        int rc = tsr_msg_recv(s, 0, 1, &m, err, sizeof err);
        if (rc == TSR_ETIMEOUT)
            continue;
        if (rc != 0) {
            snprintf(cmd, 32, "MALFORMED");
            return 0;
        }
        snprintf(cmd, 32, "%s", m.cmd);
        int64_t c = 0;
        const char *text = NULL;
        tsr_hdr_int_opt(m.hdr, "code", -1000, 0, &c, NULL, 0);
        tsr_hdr_str_opt(m.hdr, "message", 1024, &text, NULL, 0);
        *code = (int)c;
        snprintf(msg, msglen, "%s", text ? text : "");
        tsr_msg_clear(&m);
        return 0;
    }
}

static int s_getflood(void *ctx, const struct s_opts *o, int n, const char *hash,
                      const char *len, const char *gofile)
{
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    int one = 1, small = 4096, zero = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(s, ZMQ_RCVHWM, &one, sizeof one);
    zmq_setsockopt(s, ZMQ_RCVBUF, &small, sizeof small);
    if (o->curve)
        tsr_curve_client(s, o->pub, o->sec, o->server);
    if (zmq_connect(s, o->endpoint) != 0)
        return 2;
    for (int i = 1; i <= n; i++) {
        char hdr[256];
        snprintf(hdr, sizeof hdr, "{\"rid\":%d,\"hash\":\"%s\",\"offset\":0,\"len\":%s}", i,
                 hash, len);
        const void *d[3] = {"TSR1", "GET", hdr};
        size_t l[3] = {4, 3, strlen(hdr)};
        s_frames(s, d, l, 3);
    }
    printf("sent %d\n", n);
    fflush(stdout);
    int64_t end = tsr_now_ms() + 300000;
    while (access(gofile, F_OK) != 0 && tsr_now_ms() < end)
        zmq_poll(NULL, 0, 50);
    int data = 0, busy = 0, other = 0;
    char first_busy[1024] = "";
    while (data + busy + other < n) {
        char cmd[32], text[1024];
        int code = 0;
        if (s_take(s, o->timeout_ms, cmd, &code, text, sizeof text) != 0)
            break;
        if (strcmp(cmd, "DATA") == 0) {
            data++;
        } else if (strcmp(cmd, "ERROR") == 0 && code == TSR_EBUSY) {
            if (!busy++)
                snprintf(first_busy, sizeof first_busy, "%s", text);
        } else {
            other++;
        }
    }
    printf("data=%d busy=%d other=%d\n", data, busy, other);
    if (busy)
        printf("busy: %s\n", first_busy);
    zmq_close(s);
    return data + busy + other == n ? 0 : 3;
}

static int s_burst(void *ctx, const struct s_opts *o, int n, char **cmds)
{
    void *s = s_connect(ctx, o);
    for (int i = 1; i <= 2 * n; i++) {
        char **c = (i % 2) ? cmds : cmds + 2;
        char hdr[4096];
        snprintf(hdr, sizeof hdr, "{\"rid\":%d,%s", i, c[1] + 1);
        const void *d[3] = {"TSR1", c[0], hdr};
        size_t l[3] = {4, strlen(c[0]), strlen(hdr)};
        s_frames(s, d, l, 3);
    }
    int ok = 0, busy = 0, other = 0;
    char first_busy[1024] = "";
    while (ok + busy + other < 2 * n) {
        char cmd[32], text[1024];
        int code = 0;
        if (s_take(s, o->timeout_ms, cmd, &code, text, sizeof text) != 0)
            break;
        if (strcmp(cmd, "ERROR") != 0)
            ok++;
        else if (code == TSR_EBUSY && !busy++)
            snprintf(first_busy, sizeof first_busy, "%s", text);
        else if (code != TSR_EBUSY)
            other++;
    }
    printf("ok=%d busy=%d other=%d\n", ok, busy, other);
    if (busy)
        printf("busy: %s\n", first_busy);
    zmq_close(s);
    return ok + busy + other == 2 * n ? 0 : 3;
}

/* Waits for command want on s (answering nothing, heartbeating every
 * 100 ms); *out gets it. Returns 0, or 3 after timeout_ms. */
static int s_await(void *s, int timeout_ms, const char *want, struct tsr_msg *out)
{
    int64_t end = tsr_now_ms() + timeout_ms, beat = 0;
    for (;;) {
        int64_t now = tsr_now_ms();
        if (now >= end)
            return 3;
        if (now >= beat) {
            tsr_msg_send(s, NULL, 0, "HEARTBEAT", NULL, NULL, 0);
            beat = now + 100;
        }
        zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 50) <= 0)
            continue;
        char err[256];
        if (tsr_msg_recv(s, 0, 1, out, err, sizeof err) != 0)
            continue;
        if (strcmp(out->cmd, want) == 0)
            return 0;
        if (strcmp(out->cmd, "ERROR") == 0) {
            char *text = cJSON_PrintUnformatted(out->hdr);
            fprintf(stderr, "tsr-raw: waiting for %s: ERROR %s\n", want, text ? text : "");
            free(text);
        }
        tsr_msg_clear(out);
    }
}

static int s_piece(void *ctx, const struct s_opts *o, const char *name, const char *file)
{
    char hash[TSR_HASH_HEX];
    unsigned long long size = 0;
    if (tsr_hash_file(file, hash, &size) != 0) {
        fprintf(stderr, "tsr-raw: cannot read %s\n", file);
        return 2;
    }
    void *s = s_connect(ctx, o);
    cJSON *h = cJSON_CreateObject();
    cJSON_AddStringToObject(h, "name", name);
    cJSON_AddStringToObject(h, "hub", "raw");
    cJSON_AddNumberToObject(h, "slots", 1);
    cJSON_AddNumberToObject(h, "cores", 1);
    cJSON_AddNumberToObject(h, "memory_mb", 1024);
    cJSON_AddItemToObject(h, "gpus", cJSON_CreateArray());
    cJSON *rn = cJSON_AddArrayToObject(h, "renderers");
    cJSON_AddItemToArray(rn, cJSON_CreateString("builtin"));
    cJSON_AddItemToArray(rn, cJSON_CreateString("command"));
    cJSON_AddItemToObject(h, "running", cJSON_CreateArray());
    cJSON_AddStringToObject(h, "version", "raw");
    tsr_msg_send(s, NULL, 0, "HELLO", h, NULL, 0);
    cJSON_Delete(h);
    struct tsr_msg m;
    int rc = s_await(s, o->timeout_ms, "WELCOME", &m);
    if (rc != 0)
        goto out;
    tsr_msg_clear(&m);
    h = cJSON_CreateObject();
    cJSON_AddNumberToObject(h, "credit", 1);
    tsr_msg_send(s, NULL, 0, "READY", h, NULL, 0);
    cJSON_Delete(h);
    if ((rc = s_await(s, o->timeout_ms, "TASK", &m)) != 0)
        goto out;
    int64_t attempt = 0, frame = 0;
    tsr_hdr_int(m.hdr, "attempt", 1, INT64_MAX / 2, &attempt, NULL, 0);
    tsr_hdr_int(m.hdr, "frame_start", INT32_MIN, INT32_MAX, &frame, NULL, 0);
    tsr_msg_clear(&m);
    h = cJSON_CreateObject();
    cJSON_AddNumberToObject(h, "rid", 1);
    cJSON_AddStringToObject(h, "hash", hash);
    cJSON_AddNumberToObject(h, "size", (double)size);
    tsr_msg_send(s, NULL, 0, "PUT", h, NULL, 0);
    cJSON_Delete(h);
    if ((rc = s_await(s, o->timeout_ms, "PUT_OK", &m)) != 0)
        goto out;
    tsr_msg_clear(&m);
    FILE *f = fopen(file, "rb");
    static char chunk[TSR_PROTO_CHUNK];
    for (unsigned long long off = 0; f && off < size; off += TSR_PROTO_CHUNK) {
        size_t n = fread(chunk, 1, sizeof chunk, f);
        h = cJSON_CreateObject();
        cJSON_AddNumberToObject(h, "rid", 2);
        cJSON_AddStringToObject(h, "hash", hash);
        cJSON_AddNumberToObject(h, "offset", (double)off);
        tsr_msg_send(s, NULL, 0, "CHUNK", h, chunk, n);
        cJSON_Delete(h);
        if ((rc = s_await(s, o->timeout_ms, "CHUNK_OK", &m)) != 0)
            break;
        tsr_msg_clear(&m);
    }
    if (f)
        fclose(f);
    if (rc != 0)
        goto out;
    h = cJSON_CreateObject();
    cJSON_AddNumberToObject(h, "rid", 3);
    cJSON_AddStringToObject(h, "hash", hash);
    tsr_msg_send(s, NULL, 0, "PUT_END", h, NULL, 0);
    cJSON_Delete(h);
    if ((rc = s_await(s, o->timeout_ms, "PUT_DONE", &m)) != 0)
        goto out;
    tsr_msg_clear(&m);
    h = cJSON_CreateObject();
    cJSON_AddNumberToObject(h, "attempt", (double)attempt);
    cJSON_AddBoolToObject(h, "ok", 1);
    cJSON *files = cJSON_AddArrayToObject(h, "files");
    cJSON *fo = cJSON_CreateObject();
    cJSON_AddNumberToObject(fo, "frame", (double)frame);
    cJSON_AddStringToObject(fo, "hash", hash);
    cJSON_AddNumberToObject(fo, "size", (double)size);
    cJSON_AddItemToArray(files, fo);
    cJSON_AddNumberToObject(h, "render_ms", 1);
    cJSON_AddStringToObject(h, "log", "");
    tsr_msg_send(s, NULL, 0, "RESULT", h, NULL, 0);
    cJSON_Delete(h);
    if ((rc = s_await(s, o->timeout_ms, "RESULT_ACK", &m)) != 0)
        goto out;
    char *text = cJSON_PrintUnformatted(m.hdr);
    printf("RESULT_ACK %s\n", text ? text : "{}");
    free(text);
    tsr_msg_clear(&m);
out:
    zmq_close(s);
    return rc;
}

static int s_race(void *ctx, const struct s_opts *o, const struct s_opts *ob, int n,
                  char **a, char **b)
{
    void *sa = s_connect(ctx, o);
    void *sb = s_connect(ctx, ob);
    int64_t t0 = tsr_now_ms();
    for (int i = 1; i <= n; i++) {
        /* JSON_A with its rid: '{' + "rid":i, + the rest */
        char hdr[4096];
        snprintf(hdr, sizeof hdr, "{\"rid\":%d,%s", i, a[1] + 1);
        const void *d[3] = {"TSR1", a[0], hdr};
        size_t l[3] = {4, strlen(a[0]), strlen(hdr)};
        s_frames(sa, d, l, 3);
    }
    const void *d[3] = {"TSR1", b[0], b[1]};
    size_t l[3] = {4, strlen(b[0]), strlen(b[1])};
    s_frames(sb, d, l, 3);
    int got_a = 0, b_after = -1;
    int64_t b_ms = -1, a_ms = -1;
    char b_cmd[32] = "", b_text[1024] = "";
    zmq_pollitem_t it[2] = {{sa, 0, ZMQ_POLLIN, 0}, {sb, 0, ZMQ_POLLIN, 0}};
    int64_t end = tsr_now_ms() + o->timeout_ms;
    while ((got_a < n || b_after < 0) && tsr_now_ms() < end) {
        if (zmq_poll(it, 2, (long)(end - tsr_now_ms())) <= 0)
            break;
        char cmd[32], text[1024];
        int code = 0;
        if ((it[0].revents & ZMQ_POLLIN) && s_take(sa, 0, cmd, &code, text, sizeof text) == 0) {
            if (++got_a == n)
                a_ms = tsr_now_ms() - t0;
        }
        if ((it[1].revents & ZMQ_POLLIN) && b_after < 0 &&
            s_take(sb, 0, b_cmd, &code, b_text, sizeof b_text) == 0) {
            b_after = got_a;
            b_ms = tsr_now_ms() - t0;
        }
    }
    printf("b_after_a=%d of %d b_ms=%lld a_ms=%lld b=%s %s\n", b_after, n, (long long)b_ms,
           (long long)a_ms, b_cmd, b_text);
    zmq_close(sa);
    zmq_close(sb);
    return got_a == n && b_after >= 0 ? 0 : 3;
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
                        "send CMD JSON|@FILE | abuse N | script < LINES |\n"
                        "       greedy NAME SLOTS CORES EVERY_MS SECONDS |\n"
                        "       getflood N HASH LEN GOFILE |\n"
                        "       burst N CMD_A JSON_A CMD_B JSON_B | piece NAME FILE |\n"
                        "       race N CMD_A JSON_A CMD_B JSON_B [KEY_B] |\n"
                        "       liar NAME CLASS\n");
        return 2;
    }
    o.endpoint = argv[i];
    void *ctx = zmq_ctx_new();
    int rc = 2;
    if (strcmp(argv[i + 1], "send") == 0 && argc - i == 4) {
        void *s = s_connect(ctx, &o);
        char *buf;
        const char *hdr = s_header_arg(argv[i + 3], &buf);
        const void *d[3] = {"TSR1", argv[i + 2], hdr};
        size_t l[3] = {4, strlen(argv[i + 2]), strlen(hdr)};
        s_frames(s, d, l, 3);
        rc = s_reply(s, o.timeout_ms, 1);
        free(buf);
        zmq_close(s);
    } else if (strcmp(argv[i + 1], "greedy") == 0 && argc - i == 7) {
        rc = s_greedy(ctx, &o, argv[i + 2], atoi(argv[i + 3]), atoi(argv[i + 4]),
                      atoi(argv[i + 5]), atoi(argv[i + 6]));
    } else if (strcmp(argv[i + 1], "script") == 0 && argc - i == 2) {
        rc = s_script(ctx, &o);
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
    } else if (strcmp(argv[i + 1], "getflood") == 0 && argc - i == 6) {
        rc = s_getflood(ctx, &o, atoi(argv[i + 2]), argv[i + 3], argv[i + 4], argv[i + 5]);
    } else if (strcmp(argv[i + 1], "piece") == 0 && argc - i == 4) {
        rc = s_piece(ctx, &o, argv[i + 2], argv[i + 3]);
    } else if (strcmp(argv[i + 1], "burst") == 0 && argc - i == 7) {
        rc = s_burst(ctx, &o, atoi(argv[i + 2]), &argv[i + 3]);
    } else if (strcmp(argv[i + 1], "race") == 0 && (argc - i == 7 || argc - i == 8)) {
        struct s_opts ob = o;
        if (argc - i == 8) {
            char err[512];
            if (tsr_key_load_secret(argv[i + 7], ob.pub, ob.sec, err, sizeof err) != 0) {
                fprintf(stderr, "tsr-raw: %s\n", err);
                return 2;
            }
        }
        rc = s_race(ctx, &o, &ob, atoi(argv[i + 2]), &argv[i + 3], &argv[i + 5]);
    } else {
        fprintf(stderr, "tsr-raw: unknown mode '%s'\n", argv[i + 1]);
    }
    zmq_ctx_term(ctx);
    return rc;
}
