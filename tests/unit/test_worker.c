/*
 * test_worker.c: the real tessera-worker process against a fake master.
 *
 * The fake master is a ZeroMQ ROUTER on a loopback port of its own, driven
 * by the test: it serves scene archives (GET/DATA) and takes uploads
 * (PUT/CHUNK/PUT_END) by itself, heartbeats, and hands every other message
 * to the test, which checks what a master would see: HELLO, READY credit,
 * PROGRESS, RESULT with its class and error text, uploaded bytes and their
 * hashes, and the result re-sent after a lost master or a restarted worker.
 * Faults are real: closed sockets, renderers that exit, crash or hang.
 *
 * Usage: test_worker PATH-TO-tessera-worker (with TSR_SRC=source tree for
 * the builtin renderer's test on examples/orbit; it is skipped without it
 * or without tessera-render beside the worker).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four above, which it needs */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "tessera/archive.h"
#include "tessera/error.h"
#include "tessera/hash.h"
#include "tessera/image.h"
#include "tessera/proto.h"
#include "tessera/util.h"

#define HB_MS 100     /* heartbeat of the fake master and the worker */
#define LIVENESS 3    /* worker gives up on us after 300 ms of silence */
#define WAIT_MS 10000 /* the longest any expectation waits */
#define MAX_QUEUE 256 /* messages held for the test */

/* A blob the fake master serves: hash names data (unless lying on purpose). */
struct blob {
    char hash[TSR_HASH_HEX]; /* the name it is served under */
    unsigned char *data;     /* its bytes */
    size_t len;              /* their count */
};

/* A file uploaded to the fake master. */
struct upload {
    char hash[TSR_HASH_HEX]; /* the name the worker gave */
    unsigned char *data;     /* bytes received so far, at their offsets */
    size_t size;             /* size announced by PUT */
    int done;                /* PUT_END matched the hash */
};

/* The fake master and the worker it talks to. */
struct fm {
    void *ctx;                   /* ZeroMQ context */
    void *sock;                  /* ROUTER, or NULL while "down" */
    char endpoint[128];          /* where it listens */
    unsigned char peer[256];     /* the worker's routing id */
    size_t peer_len;             /* its length; 0 before HELLO */
    int welcomed;                /* WELCOME sent to this peer */
    int64_t hb_at;               /* next HEARTBEAT due */
    struct tsr_msg q[MAX_QUEUE]; /* messages for the test */
    int nq;                      /* their count */
    int gets;                    /* GETs answered */
    int hold_gets;               /* >0: hold this many GETs, answer them backwards */
    struct tsr_msg held[8];      /* GETs held */
    int nheld;                   /* their count */
    int puts;                    /* PUTs answered */
    int chunks;                  /* CHUNKs taken */
    int put_chunk;               /* chunk size PUT_OK asks for */
    int put_credit;              /* credit PUT_OK gives */
    int inflight_max;            /* most CHUNKs seen unanswered... */
    struct upload ups[16];       /* files uploaded */
    int nups;                    /* their count */
    pid_t pid;                   /* the worker process; 0 when none */
    const char *path_prefix;     /* put in front of the worker's PATH */
    const char *feature;         /* a --feature for the worker, or NULL */
    const char *blender;         /* the worker's --blender; NULL: none */
    char dir[256];               /* temporary folder: cache, notes */
    char cache[320];             /* the worker's --cache */
};

static const char *g_worker;   /* path of tessera-worker */
static char g_tmp[128];        /* this run's temporary folder */
static struct blob g_blobs[8]; /* archives the fake master holds */
static int g_nblobs;
static struct blob *g_small;            /* scene.json and a piece.exr */
static struct blob *g_big;              /* 2.5 MiB: three GETs */
static struct blob *g_liar;             /* served under a hash that is not its own */
static struct blob *g_orbit;            /* examples/orbit, when found */
static char g_piece_hash[TSR_HASH_HEX]; /* hash of piece.exr */
static size_t g_piece_size;

/* ---- fake master -------------------------------------------------------- */

static struct blob *s_blob(const char *hash)
{
    for (int i = 0; i < g_nblobs; i++)
        if (strcmp(g_blobs[i].hash, hash) == 0)
            return &g_blobs[i];
    return NULL;
}

static void s_send(struct fm *m, const char *cmd, cJSON *hdr, const void *body,
                   size_t len)
{
    assert_non_null(m->sock);
    assert_int_equal(tsr_msg_send(m->sock, m->peer, m->peer_len, cmd, hdr, body, len), 0);
    cJSON_Delete(hdr);
}

static cJSON *s_obj(void)
{
    cJSON *h = cJSON_CreateObject();
    assert_non_null(h);
    return h;
}

static int64_t s_int(const cJSON *h, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(h, name);
    assert_true(cJSON_IsNumber(v));
    return (int64_t)v->valuedouble;
}

static const char *s_str(const cJSON *h, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(h, name);
    assert_true(cJSON_IsString(v));
    return v->valuestring;
}

static void s_bind(struct fm *m)
{
    m->sock = zmq_socket(m->ctx, ZMQ_ROUTER);
    assert_non_null(m->sock);
    assert_int_equal(tsr_socket_setup(m->sock), 0);
    const char *at = m->endpoint[0] ? m->endpoint : "tcp://127.0.0.1:*";
    /* Rebinding a port just closed can take a moment. */
    int rc = -1;
    for (int i = 0; i < 100 && rc != 0; i++) {
        rc = zmq_bind(m->sock, at);
        if (rc != 0)
            usleep(20000);
    }
    assert_int_equal(rc, 0);
    size_t len = sizeof m->endpoint;
    assert_int_equal(zmq_getsockopt(m->sock, ZMQ_LAST_ENDPOINT, m->endpoint, &len), 0);
    m->welcomed = 0;
    m->peer_len = 0;
}

static void s_unbind(struct fm *m)
{
    zmq_close(m->sock);
    m->sock = NULL;
    m->welcomed = 0;
}

static void s_serve_get(struct fm *m, const struct tsr_msg *msg)
{
    int64_t rid = s_int(msg->hdr, "rid");
    int64_t off = s_int(msg->hdr, "offset");
    int64_t len = s_int(msg->hdr, "len");
    const struct blob *b = s_blob(s_str(msg->hdr, "hash"));
    m->gets++;
    if (!b) {
        assert_int_equal(tsr_msg_send_error(m->sock, m->peer, m->peer_len, "GET", rid,
                                            TSR_ENOTFOUND, "no such blob"),
                         0);
        return;
    }
    assert_true(off >= 0 && (size_t)off < b->len);
    assert_true(len > 0 && len <= TSR_PROTO_MAX_BODY);
    if ((size_t)(off + len) > b->len)
        len = (int64_t)b->len - off;
    cJSON *h = s_obj();
    cJSON_AddNumberToObject(h, "rid", (double)rid);
    cJSON_AddStringToObject(h, "hash", b->hash);
    cJSON_AddNumberToObject(h, "offset", (double)off);
    cJSON_AddNumberToObject(h, "size", (double)b->len);
    s_send(m, "DATA", h, b->data + off, (size_t)len);
}

static struct upload *s_upload(struct fm *m, const char *hash)
{
    for (int i = 0; i < m->nups; i++)
        if (strcmp(m->ups[i].hash, hash) == 0)
            return &m->ups[i];
    return NULL;
}

/* PUT/CHUNK/PUT_END as the master's blob store does them. */
static void s_serve_put(struct fm *m, const struct tsr_msg *msg)
{
    int64_t rid = s_int(msg->hdr, "rid");
    const char *hash = s_str(msg->hdr, "hash");
    struct upload *u = s_upload(m, hash);
    if (strcmp(msg->cmd, "PUT") == 0) {
        m->puts++;
        int64_t size = s_int(msg->hdr, "size");
        cJSON *h = s_obj();
        cJSON_AddNumberToObject(h, "rid", (double)rid);
        cJSON_AddStringToObject(h, "hash", hash);
        cJSON_AddBoolToObject(h, "have", u && u->done);
        cJSON_AddNumberToObject(h, "chunk", m->put_chunk);
        cJSON_AddNumberToObject(h, "credit", m->put_credit);
        if (!u) {
            assert_true(m->nups < 16);
            u = &m->ups[m->nups++];
            snprintf(u->hash, sizeof u->hash, "%s", hash);
        }
        if (!u->done) {
            free(u->data);
            u->data = calloc(1, (size_t)size + 1);
            u->size = (size_t)size;
        }
        s_send(m, "PUT_OK", h, NULL, 0);
    } else if (strcmp(msg->cmd, "CHUNK") == 0) {
        assert_non_null(u);
        int64_t off = s_int(msg->hdr, "offset");
        assert_int_equal(off % m->put_chunk, 0);
        assert_true((size_t)off + msg->body_len <= u->size);
        assert_true(msg->body_len <= (size_t)m->put_chunk);
        memcpy(u->data + off, msg->body, msg->body_len);
        m->chunks++;
        cJSON *h = s_obj();
        cJSON_AddNumberToObject(h, "rid", (double)rid);
        cJSON_AddStringToObject(h, "hash", hash);
        cJSON_AddNumberToObject(h, "offset", (double)off);
        s_send(m, "CHUNK_OK", h, NULL, 0);
    } else {
        assert_non_null(u);
        char got[TSR_HASH_HEX];
        tsr_hash_buf(u->data, u->size, got);
        if (strcmp(got, hash) != 0) {
            assert_int_equal(tsr_msg_send_error(m->sock, m->peer, m->peer_len, "PUT_END",
                                                rid, TSR_EHASH, "hash mismatch"),
                             0);
            return;
        }
        u->done = 1;
        cJSON *h = s_obj();
        cJSON_AddNumberToObject(h, "rid", (double)rid);
        cJSON_AddStringToObject(h, "hash", hash);
        cJSON_AddNumberToObject(h, "size", (double)u->size);
        s_send(m, "PUT_DONE", h, NULL, 0);
    }
}

/* Receives and serves for up to ms milliseconds; keeps what the test wants. */
static void s_pump(struct fm *m, int ms)
{
    int64_t end = tsr_now_ms() + ms;
    for (;;) {
        int64_t now = tsr_now_ms();
        if (m->sock && m->welcomed && now >= m->hb_at) {
            s_send(m, "HEARTBEAT", NULL, NULL, 0);
            m->hb_at = now + HB_MS;
        }
        if (now >= end)
            return;
        if (!m->sock) {
            usleep(10000);
            continue;
        }
        zmq_pollitem_t it = {m->sock, 0, ZMQ_POLLIN, 0};
        int64_t wait = end - now < HB_MS / 2 ? end - now : HB_MS / 2;
        if (zmq_poll(&it, 1, (long)wait) <= 0)
            continue;
        struct tsr_msg msg;
        char err[256];
        int rc = tsr_msg_recv(m->sock, 1, 1, &msg, err, sizeof err);
        if (rc == TSR_ETIMEOUT)
            continue;
        assert_int_equal(rc, 0);
        if (strcmp(msg.cmd, "HELLO") == 0) {
            memcpy(m->peer, msg.peer, msg.peer_len);
            m->peer_len = msg.peer_len;
        }
        if (strcmp(msg.cmd, "HEARTBEAT") == 0) {
            tsr_msg_clear(&msg);
        } else if (strcmp(msg.cmd, "GET") == 0 && m->hold_gets > 0) {
            assert_true(m->nheld < 8);
            m->held[m->nheld++] = msg;
            if (m->nheld == m->hold_gets) {
                while (m->nheld > 0) {
                    s_serve_get(m, &m->held[--m->nheld]);
                    tsr_msg_clear(&m->held[m->nheld]);
                }
                m->hold_gets = 0;
            }
        } else if (strcmp(msg.cmd, "GET") == 0) {
            s_serve_get(m, &msg);
            tsr_msg_clear(&msg);
        } else if (strcmp(msg.cmd, "PUT") == 0 || strcmp(msg.cmd, "CHUNK") == 0 ||
                   strcmp(msg.cmd, "PUT_END") == 0) {
            s_serve_put(m, &msg);
            tsr_msg_clear(&msg);
        } else {
            assert_true(m->nq < MAX_QUEUE);
            m->q[m->nq++] = msg;
        }
    }
}

/* Takes the first queued message cmd (for attempt, when >= 0) into *out. */
static int s_take(struct fm *m, const char *cmd, int64_t attempt, struct tsr_msg *out)
{
    for (int i = 0; i < m->nq; i++) {
        if (strcmp(m->q[i].cmd, cmd) != 0)
            continue;
        if (attempt >= 0 && s_int(m->q[i].hdr, "attempt") != attempt)
            continue;
        *out = m->q[i];
        memmove(&m->q[i], &m->q[i + 1], (size_t)(m->nq - i - 1) * sizeof m->q[0]);
        m->nq--;
        return 1;
    }
    return 0;
}

/* Waits (bounded) for cmd; fails the test if it does not come. */
static void s_expect(struct fm *m, const char *cmd, int64_t attempt, struct tsr_msg *out)
{
    int64_t end = tsr_now_ms() + WAIT_MS;
    while (!s_take(m, cmd, attempt, out)) {
        if (tsr_now_ms() >= end) {
            fprintf(stderr, "expected %s (attempt %lld) never came; queued:", cmd,
                    (long long)attempt);
            for (int i = 0; i < m->nq; i++)
                fprintf(stderr, " %s", m->q[i].cmd);
            fprintf(stderr, "\n");
            fail();
        }
        s_pump(m, 20);
    }
}

static void s_drop_queue(struct fm *m, const char *cmd)
{
    struct tsr_msg msg;
    while (s_take(m, cmd, -1, &msg))
        tsr_msg_clear(&msg);
}

/* READY and its credit. */
static int64_t s_expect_ready(struct fm *m)
{
    struct tsr_msg msg;
    s_expect(m, "READY", -1, &msg);
    int64_t credit = s_int(msg.hdr, "credit");
    tsr_msg_clear(&msg);
    return credit;
}

static void s_welcome(struct fm *m)
{
    cJSON *h = s_obj();
    cJSON_AddNumberToObject(h, "heartbeat_ms", HB_MS);
    cJSON_AddNumberToObject(h, "liveness", LIVENESS);
    s_send(m, "WELCOME", h, NULL, 0);
    m->welcomed = 1;
    m->hb_at = tsr_now_ms() + HB_MS;
}

static void s_start_worker(struct fm *m, int slots)
{
    char slots_s[16], hb[16], lv[16];
    snprintf(slots_s, sizeof slots_s, "%d", slots);
    snprintf(hb, sizeof hb, "%d", HB_MS);
    snprintf(lv, sizeof lv, "%d", LIVENESS);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (m->path_prefix) {
            char path[2048];
            snprintf(path, sizeof path, "%s:%s", m->path_prefix, getenv("PATH"));
            setenv("PATH", path, 1);
        }
        /* No Blender: these tests are about the worker, and a Blender
         * found on PATH would cost each start its probe. No sandbox: the
         * renderers here leave pid files and what they saw in m->dir for
         * the test to read (tests/integration/sandbox.sh tests the
         * sandbox). */
        execl(g_worker, g_worker, "--master", m->endpoint, "--hub", "testhub", "--name",
              "w1", "--slots", slots_s, "--cache", m->cache, "--heartbeat-ms", hb,
              "--liveness", lv, "--log-level", "debug", "--sandbox", "none", "--blender",
              m->blender ? m->blender : "none", m->feature ? "--feature" : (char *)NULL,
              m->feature, (char *)NULL);
        _exit(127);
    }
    m->pid = pid;
}

/* Stops the worker with sig and returns its exit status (bounded wait). */
static int s_stop_worker(struct fm *m, int sig)
{
    if (!m->pid)
        return 0;
    kill(m->pid, sig);
    int st = 0;
    int64_t end = tsr_now_ms() + 5000;
    while (waitpid(m->pid, &st, WNOHANG) == 0) {
        if (tsr_now_ms() > end) {
            kill(m->pid, SIGKILL);
            waitpid(m->pid, &st, 0);
            m->pid = 0;
            fail_msg("worker did not stop on signal %d", sig);
        }
        s_pump(m, 20);
    }
    m->pid = 0;
    return st;
}

/* HELLO, its fields, WELCOME and the first READY. Returns HELLO's header. */
static cJSON *s_handshake(struct fm *m, int slots)
{
    struct tsr_msg msg;
    s_expect(m, "HELLO", -1, &msg);
    assert_string_equal(s_str(msg.hdr, "name"), "w1");
    assert_string_equal(s_str(msg.hdr, "hub"), "testhub");
    assert_string_equal(s_str(msg.hdr, "version"), "0.1.0");
    assert_int_equal(s_int(msg.hdr, "slots"), slots);
    assert_true(s_int(msg.hdr, "cores") >= 1);
    assert_true(s_int(msg.hdr, "memory_mb") > 0);
    assert_true(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(msg.hdr, "gpus")));
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(msg.hdr, "renderers");
    assert_int_equal(cJSON_GetArraySize(r), m->blender ? 3 : 2);
    assert_string_equal(cJSON_GetArrayItem(r, 0)->valuestring, "builtin");
    assert_string_equal(cJSON_GetArrayItem(r, 1)->valuestring, "command");
    assert_true(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(msg.hdr, "running")));
    assert_true(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(msg.hdr, "features")));
    assert_int_equal(
        s_int(msg.hdr, "gpu_slots"),
        cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(msg.hdr, "gpus")));
    assert_true(!m->blender == !cJSON_GetObjectItemCaseSensitive(msg.hdr, "blender"));
    cJSON *hello = msg.hdr;
    msg.hdr = NULL;
    tsr_msg_clear(&msg);
    s_welcome(m);
    return hello;
}

static int s_setup(void **state)
{
    struct fm *m = calloc(1, sizeof *m);
    assert_non_null(m);
    m->ctx = zmq_ctx_new();
    m->put_chunk = TSR_PROTO_CHUNK;
    m->put_credit = 4;
    snprintf(m->dir, sizeof m->dir, "%s/w-XXXXXX", g_tmp);
    assert_non_null(mkdtemp(m->dir));
    snprintf(m->cache, sizeof m->cache, "%s/cache", m->dir);
    s_bind(m);
    *state = m;
    return 0;
}

static int s_teardown(void **state)
{
    struct fm *m = *state;
    if (m->pid) {
        kill(m->pid, SIGKILL);
        waitpid(m->pid, NULL, 0);
    }
    for (int i = 0; i < m->nq; i++)
        tsr_msg_clear(&m->q[i]);
    for (int i = 0; i < m->nheld; i++)
        tsr_msg_clear(&m->held[i]);
    for (int i = 0; i < m->nups; i++)
        free(m->ups[i].data);
    if (m->sock)
        zmq_close(m->sock);
    zmq_ctx_term(m->ctx);
    tsr_rm_rf(m->dir);
    free(m);
    return 0;
}

/* Starts a worker with slots and registers it. */
static void s_up(struct fm *m, int slots)
{
    s_start_worker(m, slots);
    cJSON *hello = s_handshake(m, slots);
    assert_int_equal(
        cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(hello, "running")), 0);
    cJSON_Delete(hello);
    assert_int_equal(s_expect_ready(m), slots);
}

/* ---- tasks ---------------------------------------------------------------- */

/* Options of a TASK; zero means the default. */
struct task_opts {
    const struct blob *archive; /* default g_small */
    const char *outputs;        /* default "none" */
    int timeout_s;              /* default none */
    int frame_start, frame_end; /* default 1..1 */
    int region[4];              /* default whole 8x4 frame */
    int width, height;          /* default 8x4 */
    int gpu;                    /* TASK's gpu: true */
    const char *require;        /* one feature in TASK's requires, or NULL */
    const char *renderer;       /* default "command" */
};

static void s_task(struct fm *m, int64_t attempt, const char *command,
                   const struct task_opts *o)
{
    static const struct task_opts none = {0};
    if (!o)
        o = &none;
    const struct blob *b = o->archive ? o->archive : g_small;
    cJSON *h = s_obj();
    cJSON_AddNumberToObject(h, "attempt", (double)attempt);
    cJSON_AddNumberToObject(h, "job", 7);
    cJSON_AddNumberToObject(h, "task", (double)(attempt % 100));
    cJSON_AddStringToObject(h, "renderer", o->renderer ? o->renderer : "command");
    cJSON_AddStringToObject(h, "archive", b->hash);
    cJSON_AddNumberToObject(h, "archive_size", (double)b->len);
    cJSON_AddStringToObject(h, "scene", "scene.json");
    cJSON_AddNumberToObject(h, "frame_start", o->frame_start ? o->frame_start : 1);
    cJSON_AddNumberToObject(h, "frame_end", o->frame_end ? o->frame_end : 1);
    int w = o->width ? o->width : 8, hh = o->height ? o->height : 4;
    int whole[4] = {0, 0, w, hh};
    const int *r = o->region[2] ? o->region : whole;
    cJSON_AddItemToObject(h, "region", cJSON_CreateIntArray(r, 4));
    cJSON_AddNumberToObject(h, "width", w);
    cJSON_AddNumberToObject(h, "height", hh);
    cJSON_AddStringToObject(h, "command", command);
    cJSON_AddStringToObject(h, "outputs", o->outputs ? o->outputs : "none");
    if (o->timeout_s)
        cJSON_AddNumberToObject(h, "timeout_s", o->timeout_s);
    if (o->gpu)
        cJSON_AddBoolToObject(h, "gpu", 1);
    if (o->require)
        cJSON_AddItemToObject(h, "requires", cJSON_CreateStringArray(&o->require, 1));
    s_send(m, "TASK", h, NULL, 0);
}

/* Waits for the RESULT of attempt; returns its header (caller frees). */
static cJSON *s_result(struct fm *m, int64_t attempt)
{
    struct tsr_msg msg;
    s_expect(m, "RESULT", attempt, &msg);
    cJSON *h = msg.hdr;
    msg.hdr = NULL;
    tsr_msg_clear(&msg);
    return h;
}

static void s_ack(struct fm *m, int64_t attempt, int accepted)
{
    cJSON *h = s_obj();
    cJSON_AddNumberToObject(h, "attempt", (double)attempt);
    cJSON_AddBoolToObject(h, "accepted", accepted);
    cJSON_AddStringToObject(h, "reason", accepted ? "" : "not the live attempt");
    s_send(m, "RESULT_ACK", h, NULL, 0);
}

static void s_assert_failed(const cJSON *res, const char *cls, const char *error)
{
    assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(res, "ok")));
    assert_string_equal(s_str(res, "class"), cls);
    if (error)
        assert_string_equal(s_str(res, "error"), error);
}

/* Waits until path exists (want 1) or not (want 0), bounded. */
static void s_wait_path(struct fm *m, const char *path, int want)
{
    int64_t end = tsr_now_ms() + WAIT_MS;
    while (tsr_path_exists(path) != want) {
        if (tsr_now_ms() > end)
            fail_msg("'%s' %s", path, want ? "never appeared" : "never went away");
        s_pump(m, 20);
    }
}

static void s_spool_path(struct fm *m, int64_t attempt, char *buf, size_t size)
{
    snprintf(buf, size, "%s/spool/%lld", m->cache, (long long)attempt);
}

/* The process whose pid is in pidfile is gone (or a zombie of init, which
 * in a container may never reap it) within a few seconds. */
static void s_assert_gone(struct fm *m, const char *pidfile)
{
    char *text = NULL;
    assert_int_equal(tsr_read_file(pidfile, 64, &text, NULL), 0);
    pid_t pid = (pid_t)atoi(text);
    free(text);
    assert_true(pid > 0);
    int64_t end = tsr_now_ms() + 3000;
    for (;;) {
        if (kill(pid, 0) != 0)
            return;
        char stat[64], *st = NULL;
        snprintf(stat, sizeof stat, "/proc/%d/stat", (int)pid);
        int zombie = tsr_read_file(stat, 4096, &st, NULL) == 0 && strstr(st, ") Z ");
        free(st);
        if (zombie)
            return;
        if (tsr_now_ms() > end)
            fail_msg("process %d outlived its renderer", (int)pid);
        s_pump(m, 20);
    }
}

/* ---- the tests ------------------------------------------------------------ */

/* A task that succeeds: archive fetched, progress reported, result kept in
 * the spool until acknowledged, then the slot is offered again. */
static void test_task_ok(void **state)
{
    struct fm *m = *state;
    s_up(m, 2);
    s_task(m, 101,
           "echo progress: 50; echo rendering {frame}-{frame_end} {width}x{height}; true",
           NULL);
    struct tsr_msg msg;
    s_expect(m, "PROGRESS", 101, &msg);
    assert_int_equal(s_int(msg.hdr, "percent"), 50);
    tsr_msg_clear(&msg);
    cJSON *res = s_result(m, 101);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "ok")));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(res, "files")),
                     0);
    assert_non_null(strstr(s_str(res, "log"), "progress: 50\nrendering 1-1 8x4\n"));
    assert_true(s_int(res, "render_ms") >= 0);
    assert_null(cJSON_GetObjectItemCaseSensitive(res, "class"));
    cJSON_Delete(res);
    assert_int_equal(m->gets, 1);
    assert_int_equal(s_expect_ready(m), 1);

    char spool[512], blob[512], scene[512];
    s_spool_path(m, 101, spool, sizeof spool);
    assert_true(tsr_path_exists(spool));
    s_ack(m, 101, 1);
    s_wait_path(m, spool, 0);
    /* The archive is kept by hash and extracted once. */
    snprintf(blob, sizeof blob, "%s/blobs/%s", m->cache, g_small->hash);
    snprintf(scene, sizeof scene, "%s/scenes/%s/scene.json", m->cache, g_small->hash);
    assert_true(tsr_path_exists(blob));
    assert_true(tsr_path_exists(scene));

    /* A second task on the same archive downloads nothing. */
    s_task(m, 102,
           "test -f {scene} && test \"$PWD\" = {taskdir} && test \"$HOME\" = \"$PWD\" "
           "&& test \"$TESSERA_FRAME\" = 1",
           NULL);
    res = s_result(m, 102);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "ok")));
    cJSON_Delete(res);
    assert_int_equal(m->gets, 1);
    assert_int_equal(s_expect_ready(m), 1);
    s_ack(m, 102, 0);

    /* Progress is sent at most once a second: a burst gives one PROGRESS. */
    s_task(m, 103, "for p in 10 20 30 40; do echo progress: $p; done; sleep 0.3", NULL);
    res = s_result(m, 103);
    cJSON_Delete(res);
    s_expect(m, "PROGRESS", 103, &msg);
    assert_int_equal(s_int(msg.hdr, "percent"), 10);
    tsr_msg_clear(&msg);
    assert_false(s_take(m, "PROGRESS", 103, &msg));
    assert_int_equal(WEXITSTATUS(s_stop_worker(m, SIGINT)), 0);
}

/* Renderers that fail: each failure has its class and its words. */
static void test_failures(void **state)
{
    struct fm *m = *state;
    s_up(m, 2);
    s_task(m, 201, "echo about to fail; exit 3", NULL);
    s_task(m, 202, "kill -SEGV $$", NULL);
    cJSON *res = s_result(m, 201);
    /* The error ends with the renderer's last line. */
    s_assert_failed(res, "exit", "renderer exited with status 3: about to fail");
    assert_non_null(strstr(s_str(res, "log"), "about to fail"));
    cJSON_Delete(res);
    res = s_result(m, 202);
    s_assert_failed(res, "crash", "renderer killed by signal 11");
    cJSON_Delete(res);
    assert_int_equal(s_expect_ready(m), 1);
    assert_int_equal(s_expect_ready(m), 1);
    s_ack(m, 201, 1);
    s_ack(m, 202, 1);

    /* A hang: killed at its timeout, with everything it started. */
    char pidfile[512];
    snprintf(pidfile, sizeof pidfile, "%s/sleeper.pid", m->dir);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "sleep 30 & echo $! > '%s'; wait", pidfile);
    struct task_opts o = {.timeout_s = 1};
    int64_t t0 = tsr_now_ms();
    s_task(m, 203, cmd, &o);
    res = s_result(m, 203);
    s_assert_failed(res, "timeout", "renderer ran past its timeout of 1 s");
    assert_true(tsr_now_ms() - t0 < 5000);
    cJSON_Delete(res);
    s_assert_gone(m, pidfile);
    assert_int_equal(s_expect_ready(m), 1);
    s_ack(m, 203, 1);

    /* A renderer that leaves a helper behind: the helper dies with it. */
    snprintf(pidfile, sizeof pidfile, "%s/straggler.pid", m->dir);
    snprintf(cmd, sizeof cmd, "sleep 30 & echo $! > '%s'; exit 0", pidfile);
    s_task(m, 204, cmd, NULL);
    res = s_result(m, 204);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "ok")));
    cJSON_Delete(res);
    s_assert_gone(m, pidfile);
    assert_int_equal(WEXITSTATUS(s_stop_worker(m, SIGINT)), 0);
}

/* CANCEL: the renderer dies, no RESULT, the slot comes back. */
static void test_cancel(void **state)
{
    struct fm *m = *state;
    s_up(m, 1);
    s_task(m, 301, "echo progress: 1; exec sleep 30", NULL);
    struct tsr_msg msg;
    s_expect(m, "PROGRESS", 301, &msg);
    tsr_msg_clear(&msg);
    cJSON *h = s_obj();
    cJSON_AddNumberToObject(h, "attempt", 301);
    s_send(m, "CANCEL", h, NULL, 0);
    assert_int_equal(s_expect_ready(m), 1);
    s_pump(m, 300);
    assert_false(s_take(m, "RESULT", 301, &msg));
    char dir[512];
    snprintf(dir, sizeof dir, "%s/tasks/301", m->cache);
    assert_false(tsr_path_exists(dir));
    /* The freed slot takes the next task. */
    s_task(m, 302, "true", NULL);
    cJSON *res = s_result(m, 302);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "ok")));
    cJSON_Delete(res);
    assert_int_equal(WEXITSTATUS(s_stop_worker(m, SIGINT)), 0);
}

/* Bad TASKs get a "bad_task" RESULT; malformed messages are ignored; the
 * worker keeps working. */
static void test_bad_input(void **state)
{
    struct fm *m = *state;
    s_up(m, 2);
    struct task_opts o = {.region = {0, 0, 9, 4}};
    s_task(m, 401, "true", &o);
    cJSON *res = s_result(m, 401);
    s_assert_failed(res, "bad_task",
                    "field 'region' [0, 0, 9, 4] lies outside the 8x4 frame");
    cJSON_Delete(res);
    assert_int_equal(s_expect_ready(m), 1);
    s_ack(m, 401, 1);

    /* A scene path that climbs out of the archive. */
    cJSON *h = cJSON_Parse(
        "{\"attempt\":402,\"job\":1,\"task\":0,\"renderer\":\"command\","
        "\"archive_size\":10,\"scene\":\"../../etc/passwd\",\"frame_start\":1,"
        "\"frame_end\":1,\"region\":[0,0,1,1],\"width\":1,\"height\":1,"
        "\"command\":\"true\",\"outputs\":\"none\"}");
    cJSON_AddStringToObject(h, "archive", g_small->hash);
    s_send(m, "TASK", h, NULL, 0);
    res = s_result(m, 402);
    s_assert_failed(res, "bad_task", "field 'scene' is not a safe relative path");
    cJSON_Delete(res);
    assert_int_equal(s_expect_ready(m), 1);
    s_ack(m, 402, 1);

    /* Garbage: wrong signature, a TASK without attempt, wrong types. */
    assert_int_equal(zmq_send(m->sock, m->peer, m->peer_len, ZMQ_SNDMORE),
                     (int)m->peer_len);
    assert_int_equal(zmq_send(m->sock, "XXXX", 4, 0), 4);
    s_send(m, "TASK", cJSON_Parse("{\"job\": 1}"), NULL, 0);
    s_send(m, "CANCEL", cJSON_Parse("{\"attempt\": \"x\"}"), NULL, 0);
    s_send(m, "RESULT_ACK", cJSON_Parse("{\"attempt\": -5}"), NULL, 0);
    s_send(m, "DATA", cJSON_Parse("{\"hash\": 3}"), NULL, 0);
    s_send(m, "NONSENSE", NULL, NULL, 0);

    /* An archive the master does not have. */
    struct blob missing = {.len = 100};
    memset(missing.hash, 'a', 64);
    struct task_opts om = {.archive = &missing};
    s_task(m, 403, "true", &om);
    res = s_result(m, 403);
    s_assert_failed(res, "fetch", NULL);
    assert_non_null(strstr(s_str(res, "error"), "no such blob"));
    cJSON_Delete(res);
    assert_int_equal(s_expect_ready(m), 1);
    s_ack(m, 403, 1);

    /* An archive whose bytes are not what its hash says. */
    struct task_opts ol = {.archive = g_liar};
    s_task(m, 404, "true", &ol);
    res = s_result(m, 404);
    s_assert_failed(res, "fetch", NULL);
    assert_non_null(strstr(s_str(res, "error"), "hashes to"));
    cJSON_Delete(res);
    assert_int_equal(s_expect_ready(m), 1);
    s_ack(m, 404, 1);

    /* Still alive and well. */
    s_task(m, 405, "true", NULL);
    res = s_result(m, 405);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "ok")));
    cJSON_Delete(res);
    assert_int_equal(WEXITSTATUS(s_stop_worker(m, SIGINT)), 0);
}

/* Two tasks on one big archive share one download of three chunks, which
 * the master answers last chunk first. */
static void test_shared_download(void **state)
{
    struct fm *m = *state;
    m->hold_gets = 3;
    s_up(m, 2);
    struct task_opts o = {.archive = g_big};
    s_task(m, 501, "test -s {scene_dir}/data.bin", &o);
    s_task(m, 502, "test -s {scene_dir}/data.bin", &o);
    cJSON *a = s_result(m, 501);
    cJSON *b = s_result(m, 502);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(a, "ok")));
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(b, "ok")));
    cJSON_Delete(a);
    cJSON_Delete(b);
    assert_int_equal(m->gets, 3);
    assert_int_equal(WEXITSTATUS(s_stop_worker(m, SIGINT)), 0);
}

/* Images: checked, hashed, uploaded in chunks under credit, named in
 * RESULT; a second copy is not sent again; bad images are refused. */
static void test_images(void **state)
{
    struct fm *m = *state;
    m->put_chunk = 256; /* several chunks per file, under a credit of 2 */
    m->put_credit = 2;
    s_up(m, 1);
    struct task_opts o = {
        .outputs = "image", .frame_start = 1, .frame_end = 2, .region = {0, 0, 4, 2}};
    s_task(m, 601,
           "cp {scene_dir}/piece.exr out_0001.exr && cp {scene_dir}/piece.exr "
           "{taskdir}/out_0002.exr",
           &o);
    cJSON *res = s_result(m, 601);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "ok")));
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(res, "files");
    assert_int_equal(cJSON_GetArraySize(files), 2);
    for (int i = 0; i < 2; i++) {
        const cJSON *f = cJSON_GetArrayItem(files, i);
        assert_int_equal(s_int(f, "frame"), i + 1);
        assert_string_equal(s_str(f, "hash"), g_piece_hash);
        assert_int_equal(s_int(f, "size"), (int64_t)g_piece_size);
        assert_null(cJSON_GetObjectItemCaseSensitive(f, "name"));
    }
    cJSON_Delete(res);
    /* Both frames are the same bytes: one transfer, one "have". */
    assert_int_equal(m->puts, 2);
    assert_int_equal(m->chunks, (int)((g_piece_size + 255) / 256));
    struct upload *u = s_upload(m, g_piece_hash);
    assert_non_null(u);
    assert_true(u->done);
    char got[TSR_HASH_HEX];
    tsr_hash_buf(u->data, u->size, got);
    assert_string_equal(got, g_piece_hash);
    char spooled[512];
    snprintf(spooled, sizeof spooled, "%s/spool/601/out_0002.exr", m->cache);
    assert_true(tsr_path_exists(spooled));
    assert_int_equal(s_expect_ready(m), 1);
    s_ack(m, 601, 1);
    s_wait_path(m, spooled, 0);

    /* The piece is in the wrong place for this region. */
    struct task_opts w = {.outputs = "image", .region = {4, 0, 8, 2}};
    s_task(m, 602, "cp {scene_dir}/piece.exr out_0001.exr", &w);
    res = s_result(m, 602);
    s_assert_failed(res, "bad_output", NULL);
    assert_non_null(strstr(s_str(res, "error"), "frame 1: out_0001.exr: "));
    cJSON_Delete(res);
    assert_int_equal(s_expect_ready(m), 1);
    s_ack(m, 602, 1);

    /* No image at all. */
    s_task(m, 603, "echo forgot to write", &o);
    res = s_result(m, 603);
    s_assert_failed(res, "bad_output", "frame 1: out_0001.exr is missing");
    cJSON_Delete(res);
    assert_int_equal(WEXITSTATUS(s_stop_worker(m, SIGINT)), 0);
}

/* The master goes away with a result unacknowledged: the worker reconnects,
 * registers again naming the attempt, and re-sends the result. */
static void test_reconnect_resend(void **state)
{
    struct fm *m = *state;
    s_up(m, 2);
    s_task(m, 701, "echo once", NULL);
    cJSON *res = s_result(m, 701);
    cJSON_Delete(res);
    assert_int_equal(s_expect_ready(m), 1);
    s_task(m, 702, "echo progress: 5; exec sleep 30", NULL);
    struct tsr_msg msg;
    s_expect(m, "PROGRESS", 702, &msg);
    tsr_msg_clear(&msg);

    s_unbind(m); /* the master dies */
    s_pump(m, 4 * HB_MS * LIVENESS);
    s_bind(m); /* and comes back on the same port */
    s_drop_queue(m, "READY");
    cJSON *hello = s_handshake(m, 2);
    const cJSON *running = cJSON_GetObjectItemCaseSensitive(hello, "running");
    assert_int_equal(cJSON_GetArraySize(running), 2);
    int seen = 0;
    for (int i = 0; i < 2; i++)
        seen |= cJSON_GetArrayItem(running, i)->valuedouble == 701   ? 1
                : cJSON_GetArrayItem(running, i)->valuedouble == 702 ? 2
                                                                     : 0;
    assert_int_equal(seen, 3);
    cJSON_Delete(hello);
    /* One slot is busy with 702; 701's slot was given back before. */
    assert_int_equal(s_expect_ready(m), 1);
    res = s_result(m, 701);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "ok")));
    assert_non_null(strstr(s_str(res, "log"), "once"));
    cJSON_Delete(res);
    s_ack(m, 701, 1);
    char spool[512];
    s_spool_path(m, 701, spool, sizeof spool);
    s_wait_path(m, spool, 0);

    /* A master that forgot us says RECONNECT: HELLO again, same socket. */
    m->welcomed = 0;
    s_send(m, "RECONNECT", NULL, NULL, 0);
    hello = s_handshake(m, 2);
    running = cJSON_GetObjectItemCaseSensitive(hello, "running");
    assert_int_equal(cJSON_GetArraySize(running), 1);
    assert_int_equal(cJSON_GetArrayItem(running, 0)->valuedouble, 702);
    cJSON_Delete(hello);
    assert_int_equal(s_expect_ready(m), 1);
    assert_int_equal(WEXITSTATUS(s_stop_worker(m, SIGINT)), 0);
}

/* The worker restarts with a result unacknowledged: it is re-sent from the
 * spool after the new HELLO. SIGINT kills running renderers at once. */
/* SIGTERM drains: the worker tells the master (DRAIN), asks for nothing
 * more, finishes the task in hand, delivers its result, and exits 0 once
 * the result is acknowledged. */
static void test_drain(void **state)
{
    struct fm *m = *state;
    s_up(m, 2);
    s_task(m, 851, "echo progress: 10; sleep 1; echo finished", NULL);
    struct tsr_msg msg;
    s_expect(m, "PROGRESS", 851, &msg);
    tsr_msg_clear(&msg);
    kill(m->pid, SIGTERM);
    s_expect(m, "DRAIN", -1, &msg);
    tsr_msg_clear(&msg);
    cJSON *res = s_result(m, 851);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "ok")));
    assert_non_null(strstr(s_str(res, "log"), "finished"));
    cJSON_Delete(res);
    /* Still running until the result is acknowledged. */
    int st = 0;
    assert_int_equal(waitpid(m->pid, &st, WNOHANG), 0);
    s_ack(m, 851, 1);
    int64_t end = tsr_now_ms() + WAIT_MS;
    pid_t got = 0;
    while ((got = waitpid(m->pid, &st, WNOHANG)) == 0 && tsr_now_ms() < end)
        s_pump(m, 20);
    assert_int_equal(got, m->pid);
    m->pid = 0;
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    /* No credit was offered after the drain began. */
    assert_false(s_take(m, "READY", -1, &msg));
}

static void test_restart_spool(void **state)
{
    struct fm *m = *state;
    s_up(m, 2);
    s_task(m, 801, "echo kept", NULL);
    cJSON *res = s_result(m, 801);
    cJSON_Delete(res);
    char pidfile[512], cmd[700];
    snprintf(pidfile, sizeof pidfile, "%s/r.pid", m->dir);
    snprintf(cmd, sizeof cmd, "echo $$ > '%s'; echo progress: 1; exec sleep 30", pidfile);
    s_task(m, 802, cmd, NULL);
    struct tsr_msg msg;
    s_expect(m, "PROGRESS", 802, &msg);
    tsr_msg_clear(&msg);
    char *text = NULL;
    assert_int_equal(tsr_read_file(pidfile, 64, &text, NULL), 0);
    pid_t renderer = (pid_t)atoi(text);
    free(text);

    int st = s_stop_worker(m, SIGINT);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_int_equal(kill(renderer, 0), -1); /* reaped by the worker */

    s_unbind(m);
    s_bind(m);
    s_drop_queue(m, "READY"); /* the first worker's */
    s_start_worker(m, 2);
    cJSON *hello = s_handshake(m, 2);
    const cJSON *running = cJSON_GetObjectItemCaseSensitive(hello, "running");
    assert_int_equal(cJSON_GetArraySize(running), 1);
    assert_int_equal(cJSON_GetArrayItem(running, 0)->valuedouble, 801);
    cJSON_Delete(hello);
    assert_int_equal(s_expect_ready(m), 2);
    res = s_result(m, 801);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "ok")));
    assert_non_null(strstr(s_str(res, "log"), "kept"));
    cJSON_Delete(res);
    s_ack(m, 801, 1);
    char spool[512];
    s_spool_path(m, 801, spool, sizeof spool);
    s_wait_path(m, spool, 0);
    assert_int_equal(WEXITSTATUS(s_stop_worker(m, SIGINT)), 0);
}

/* The builtin renderer, tessera-render beside the worker, on the example
 * scene: a tile of two frames, checked and uploaded. */
static void test_builtin(void **state)
{
    struct fm *m = *state;
    char render[512];
    snprintf(render, sizeof render, "%s", g_worker);
    char *slash = strrchr(render, '/');
    assert_non_null(slash);
    snprintf(slash + 1, sizeof render - (size_t)(slash + 1 - render), "tessera-render");
    if (!g_orbit || access(render, X_OK) != 0) {
        fprintf(stderr, "tessera-render or the example scene is not there; skipped\n");
        skip();
    }
    s_up(m, 1);
    cJSON *h = s_obj();
    cJSON_AddNumberToObject(h, "attempt", 901);
    cJSON_AddNumberToObject(h, "job", 9);
    cJSON_AddNumberToObject(h, "task", 0);
    cJSON_AddStringToObject(h, "renderer", "builtin");
    cJSON_AddStringToObject(h, "archive", g_orbit->hash);
    cJSON_AddNumberToObject(h, "archive_size", (double)g_orbit->len);
    cJSON_AddStringToObject(h, "scene", "scene.json");
    cJSON_AddNumberToObject(h, "frame_start", 3);
    cJSON_AddNumberToObject(h, "frame_end", 4);
    int region[4] = {160, 90, 192, 108};
    cJSON_AddItemToObject(h, "region", cJSON_CreateIntArray(region, 4));
    cJSON_AddNumberToObject(h, "width", 320);
    cJSON_AddNumberToObject(h, "height", 180);
    cJSON_AddStringToObject(h, "outputs", "image");
    cJSON_AddNumberToObject(h, "timeout_s", 60);
    s_send(m, "TASK", h, NULL, 0);
    cJSON *res = s_result(m, 901);
    if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "ok")))
        fail_msg("builtin render failed: %s\n%s", s_str(res, "error"), s_str(res, "log"));
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(res, "files");
    assert_int_equal(cJSON_GetArraySize(files), 2);
    for (int i = 0; i < 2; i++) {
        const cJSON *f = cJSON_GetArrayItem(files, i);
        assert_int_equal(s_int(f, "frame"), 3 + i);
        struct upload *u = s_upload(m, s_str(f, "hash"));
        assert_non_null(u);
        assert_true(u->done);
        assert_int_equal(u->size, s_int(f, "size"));
        /* What arrived is the tile it claims to be. */
        char path[600], err[256];
        snprintf(path, sizeof path, "%s/got%d.exr", m->dir, i);
        assert_int_equal(tsr_write_file_atomic(path, u->data, u->size), 0);
        struct tsr_image_limits lim;
        tsr_image_limits_default(&lim);
        struct tsr_region want = {160, 90, 192, 108};
        assert_int_equal(
            tsr_image_verify(path, &lim, &want, 320, 180, NULL, err, sizeof err), 0);
    }
    cJSON_Delete(res);
    s_ack(m, 901, 1);
    assert_int_equal(WEXITSTATUS(s_stop_worker(m, SIGINT)), 0);
}

/* READY's credit and gpu_credit, both. */
static void s_expect_ready2(struct fm *m, int64_t *credit, int64_t *gpu_credit)
{
    struct tsr_msg msg;
    s_expect(m, "READY", -1, &msg);
    *credit = s_int(msg.hdr, "credit");
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(msg.hdr, "gpu_credit");
    *gpu_credit = cJSON_IsNumber(g) ? (int64_t)g->valuedouble : 0;
    tsr_msg_clear(&msg);
}

/* Whether HELLO's features list f. */
static int s_has_feature(const cJSON *hello, const char *f)
{
    const cJSON *v;
    cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(hello, "features"))
    {
        if (cJSON_IsString(v) && strcmp(v->valuestring, f) == 0)
            return 1;
    }
    return 0;
}

/* Puts a fake nvidia-smi that lists two GPUs at the front of the worker's
 * PATH. */
static void s_fake_gpus(struct fm *m)
{
    static char bin[512];
    char smi[600];
    snprintf(bin, sizeof bin, "%s/bin", m->dir);
    assert_int_equal(tsr_mkdir_p(bin), 0);
    snprintf(smi, sizeof smi, "%s/nvidia-smi", bin);
    const char *script = "#!/bin/sh\n"
                         "printf 'NVIDIA H100 80GB HBM3, 81559\\nNVIDIA H100 80GB HBM3, "
                         "81559\\n'\n";
    assert_int_equal(tsr_write_file_atomic(smi, script, strlen(script)), 0);
    assert_int_equal(chmod(smi, 0755), 0);
    m->path_prefix = bin;
}

/* A GPU task holds a GPU slot of its own and sees only its GPU; CPU and
 * GPU slots are counted apart; a CPU task on a GPU host sees no GPU; more
 * GPU tasks than GPUs is the master's mistake, answered as bad_task. */
static void test_gpu_slots(void **state)
{
    struct fm *m = *state;
    s_fake_gpus(m);
    s_start_worker(m, 1);
    cJSON *hello = s_handshake(m, 1);
    assert_int_equal(s_int(hello, "gpu_slots"), 2);
    assert_true(s_has_feature(hello, "gpu"));
    cJSON_Delete(hello);
    int64_t credit, gpu_credit;
    s_expect_ready2(m, &credit, &gpu_credit);
    assert_int_equal(credit, 1);
    assert_int_equal(gpu_credit, 2);

    char cmd[700];
    snprintf(cmd, sizeof cmd,
             "echo \"[$CUDA_VISIBLE_DEVICES] $CUDA_DEVICE_ORDER\" > '%s/env{frame}'; "
             "sleep 0.5",
             m->dir);
    struct task_opts gpu = {.gpu = 1, .frame_start = 1, .frame_end = 1};
    s_task(m, 1001, cmd, &gpu);
    gpu.frame_start = gpu.frame_end = 2;
    s_task(m, 1002, cmd, &gpu);
    struct task_opts cpu = {.frame_start = 3, .frame_end = 3};
    s_task(m, 1003, cmd, &cpu);
    gpu.frame_start = gpu.frame_end = 4;
    s_task(m, 1004, cmd, &gpu);
    cJSON *res = s_result(m, 1004);
    s_assert_failed(res, "bad_task",
                    "no free GPU slot (the master sent more GPU tasks than gpu_credit)");
    cJSON_Delete(res);
    for (int64_t a = 1001; a <= 1003; a++) {
        res = s_result(m, a);
        assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "ok")));
        cJSON_Delete(res);
        s_ack(m, a, 1);
    }
    char path[600], *text = NULL;
    int seen[2] = {0, 0};
    for (int f = 1; f <= 2; f++) {
        snprintf(path, sizeof path, "%s/env%d", m->dir, f);
        assert_int_equal(tsr_read_file(path, 256, &text, NULL), 0);
        assert_true(strcmp(text, "[0] PCI_BUS_ID\n") == 0 ||
                    strcmp(text, "[1] PCI_BUS_ID\n") == 0);
        seen[text[1] - '0'] = 1;
        free(text);
    }
    assert_true(seen[0] && seen[1]); /* two tasks at once: one GPU each */
    snprintf(path, sizeof path, "%s/env3", m->dir);
    assert_int_equal(tsr_read_file(path, 256, &text, NULL), 0);
    assert_string_equal(text, "[] \n");
    free(text);
    /* Every slot came back, each as its own kind of credit. */
    int64_t cpu_back = 0, gpu_back = 0;
    while (cpu_back + gpu_back < 3) {
        s_expect_ready2(m, &credit, &gpu_credit);
        cpu_back += credit;
        gpu_back += gpu_credit;
    }
    assert_int_equal(cpu_back, 1);
    assert_int_equal(gpu_back, 2);
    assert_int_equal(WEXITSTATUS(s_stop_worker(m, SIGINT)), 0);
}

/* requires: a feature the worker lacks is missing_feature (the master
 * should not have sent it); one it announces (--feature) runs. A GPU task
 * to a worker without GPUs and a Blender task to one without Blender fail
 * with their reasons. */
static void test_requires(void **state)
{
    struct fm *m = *state;
    m->feature = "license:special";
    s_start_worker(m, 1);
    cJSON *hello = s_handshake(m, 1);
    assert_true(s_has_feature(hello, "license:special"));
    assert_false(s_has_feature(hello, "gpu"));
    cJSON_Delete(hello);
    assert_int_equal(s_expect_ready(m), 1);
    struct task_opts o = {.require = "nonexistent"};
    s_task(m, 1101, "true", &o);
    cJSON *res = s_result(m, 1101);
    s_assert_failed(res, "missing_feature",
                    "this worker lacks the feature 'nonexistent'");
    cJSON_Delete(res);
    assert_int_equal(s_expect_ready(m), 1);
    o.require = "license:special";
    s_task(m, 1102, "true", &o);
    res = s_result(m, 1102);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "ok")));
    cJSON_Delete(res);
    assert_int_equal(s_expect_ready(m), 1);
    struct task_opts g = {.gpu = 1};
    s_task(m, 1103, "true", &g);
    res = s_result(m, 1103);
    s_assert_failed(res, "bad_task", "this worker has no GPU for a task with gpu: true");
    cJSON_Delete(res);
    struct task_opts b = {.renderer = "blender"};
    s_task(m, 1104, "", &b);
    res = s_result(m, 1104);
    s_assert_failed(res, "missing_feature",
                    "this worker has no Blender (the feature 'blender')");
    cJSON_Delete(res);
    assert_int_equal(s_expect_ready(m), 1);
    assert_int_equal(WEXITSTATUS(s_stop_worker(m, SIGINT)), 0);
}

/* A builtin task on a GPU slot runs tessera-render --device cuda. Where
 * there is no GPU to render on (or tessera-render has no CUDA) it exits 3,
 * which the worker reports as missing_feature; on a real GPU it renders. */
static void test_builtin_gpu(void **state)
{
    struct fm *m = *state;
    char render[512];
    snprintf(render, sizeof render, "%s", g_worker);
    char *slash = strrchr(render, '/');
    assert_non_null(slash);
    snprintf(slash + 1, sizeof render - (size_t)(slash + 1 - render), "tessera-render");
    if (!g_orbit || access(render, X_OK) != 0) {
        fprintf(stderr, "tessera-render or the example scene is not there; skipped\n");
        skip();
    }
    s_fake_gpus(m);
    s_start_worker(m, 1);
    cJSON_Delete(s_handshake(m, 1));
    int64_t credit, gpu_credit;
    s_expect_ready2(m, &credit, &gpu_credit);
    assert_int_equal(gpu_credit, 2);
    cJSON *h = s_obj();
    cJSON_AddNumberToObject(h, "attempt", 951);
    cJSON_AddNumberToObject(h, "job", 9);
    cJSON_AddNumberToObject(h, "task", 0);
    cJSON_AddStringToObject(h, "renderer", "builtin");
    cJSON_AddStringToObject(h, "archive", g_orbit->hash);
    cJSON_AddNumberToObject(h, "archive_size", (double)g_orbit->len);
    cJSON_AddStringToObject(h, "scene", "scene.json");
    cJSON_AddNumberToObject(h, "frame_start", 3);
    cJSON_AddNumberToObject(h, "frame_end", 3);
    int region[4] = {160, 90, 192, 108};
    cJSON_AddItemToObject(h, "region", cJSON_CreateIntArray(region, 4));
    cJSON_AddNumberToObject(h, "width", 320);
    cJSON_AddNumberToObject(h, "height", 180);
    cJSON_AddStringToObject(h, "outputs", "image");
    cJSON_AddBoolToObject(h, "gpu", 1);
    s_send(m, "TASK", h, NULL, 0);
    cJSON *res = s_result(m, 951);
    if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "ok"))) {
        s_assert_failed(res, "missing_feature", NULL);
        const char *want = "tessera-render cannot render on this GPU: tessera-render: "
                           "--device cuda: ";
        if (strncmp(s_str(res, "error"), want, strlen(want)) != 0)
            fail_msg("error '%s'", s_str(res, "error"));
    }
    cJSON_Delete(res);
    s_ack(m, 951, 1);
    assert_int_equal(WEXITSTATUS(s_stop_worker(m, SIGINT)), 0);
}

/* The Blender adapter end to end with a fake Blender: it answers the probe,
 * then for a render checks its command line, prints Blender's status
 * lines and writes a full 8x4 frame as a border render without crop
 * would. The worker must announce it, send the progress it read, and cut
 * the frame to the task's tile before checking and uploading it. */
static void test_blender_fake(void **state)
{
    struct fm *m = *state;
    float px[8 * 4 * 4];
    for (int i = 0; i < 8 * 4 * 4; i++)
        px[i] = (float)i / 128.0f;
    char full[512], args[512], fake[512], err[256];
    snprintf(full, sizeof full, "%s/full.exr", m->dir);
    snprintf(args, sizeof args, "%s/args.txt", m->dir);
    snprintf(fake, sizeof fake, "%s/fake-blender", m->dir);
    struct tsr_image_info whole = {{0, 0, 8, 4}, 8, 4, 4};
    assert_int_equal(tsr_image_write_exr(full, &whole, px, err, sizeof err), 0);
    char script[2048];
    snprintf(script, sizeof script,
             "#!/bin/sh\n"
             "case \" $* \" in\n"
             "*\" -a \"*) ;;\n"
             "*) echo 'TESSERA_BLENDER {\"version\": \"9.9.0\", \"oidn\": true, "
             "\"devices\": [{\"type\": \"CPU\", \"name\": \"fake\"}]}'; exit 0 ;;\n"
             "esac\n"
             "for a; do last=$a; done\n"
             "echo \"$*\" > '%s'\n"
             "out=$(printf '%%s' \"$last\" | sed 's/.*\"out\":\"\\([^\"]*\\)\".*/\\1/')\n"
             "echo 'Fra:1 Mem:9.45M (Peak 10.22M) | Time:00:00.03 | Scene | Sample 2/4'\n"
             "sleep 1.2\n"
             "echo 'Fra:1 Mem:9.45M (Peak 10.22M) | Time:00:00.05 | Scene | Sample 4/4'\n"
             "cp '%s' \"${out%%####}0001.exr\"\n"
             "echo \"Saved: '${out%%####}0001.exr'\"\n",
             args, full);
    assert_int_equal(tsr_write_file_atomic(fake, script, strlen(script)), 0);
    assert_int_equal(chmod(fake, 0755), 0);
    m->blender = fake;
    s_start_worker(m, 1);
    cJSON *hello = s_handshake(m, 1);
    assert_true(s_has_feature(hello, "blender:9.9"));
    assert_true(s_has_feature(hello, "blender:oidn"));
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(hello, "blender");
    assert_string_equal(s_str(b, "version"), "9.9.0");
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(hello, "renderers");
    assert_int_equal(cJSON_GetArraySize(r), 3);
    assert_string_equal(cJSON_GetArrayItem(r, 2)->valuestring, "blender");
    cJSON_Delete(hello);
    assert_int_equal(s_expect_ready(m), 1);

    struct task_opts o = {
        .renderer = "blender", .outputs = "image", .region = {4, 2, 8, 4}};
    s_task(m, 1201, "", &o);
    struct tsr_msg msg;
    s_expect(m, "PROGRESS", 1201, &msg);
    assert_int_equal(s_int(msg.hdr, "percent"), 50);
    tsr_msg_clear(&msg);
    cJSON *res = s_result(m, 1201);
    if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "ok")))
        fail_msg("blender task failed: %s\n%s", s_str(res, "error"), s_str(res, "log"));
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(res, "files");
    assert_int_equal(cJSON_GetArraySize(files), 1);
    struct upload *u = s_upload(m, s_str(cJSON_GetArrayItem(files, 0), "hash"));
    assert_non_null(u);
    char got[600];
    snprintf(got, sizeof got, "%s/tile.exr", m->dir);
    assert_int_equal(tsr_write_file_atomic(got, u->data, u->size), 0);
    struct tsr_image_limits lim;
    tsr_image_limits_default(&lim);
    struct tsr_image_info info;
    float *tile = NULL;
    assert_int_equal(tsr_image_read(got, &lim, &info, &tile, err, sizeof err), 0);
    struct tsr_region want = {4, 2, 8, 4};
    assert_memory_equal(&info.data, &want, sizeof want);
    assert_int_equal(info.full_width, 8);
    for (int y = 2; y < 4; y++)
        assert_memory_equal(tile + (size_t)(y - 2) * 4 * 4, px + ((size_t)y * 8 + 4) * 4,
                            4 * 4 * sizeof(float));
    free(tile);
    cJSON_Delete(res);
    char *argline = NULL;
    assert_int_equal(tsr_read_file(args, 65536, &argline, NULL), 0);
    assert_int_equal(
        strncmp(argline, "-b --factory-startup -noaudio --disable-autoexec ", 49), 0);
    assert_non_null(strstr(argline, "-s 1 -e 1 -a -- {"));
    assert_null(strstr(argline, "--enable-autoexec"));
    free(argline);
    s_ack(m, 1201, 1);
    assert_int_equal(WEXITSTATUS(s_stop_worker(m, SIGINT)), 0);
}

/* GPUs come from nvidia-smi on PATH; lines it cannot mean are skipped. */
static void test_gpus(void **state)
{
    struct fm *m = *state;
    char bin[512], smi[600];
    snprintf(bin, sizeof bin, "%s/bin", m->dir);
    assert_int_equal(tsr_mkdir_p(bin), 0);
    snprintf(smi, sizeof smi, "%s/nvidia-smi", bin);
    const char *script = "#!/bin/sh\n"
                         "[ \"$*\" = \"--query-gpu=name,memory.total "
                         "--format=csv,noheader,nounits\" ] || exit 9\n"
                         "printf 'NVIDIA H100 80GB HBM3, 81559\\nweird line\\nTesla T4 , "
                         "15360\\nX, [N/A]\\n'\n";
    assert_int_equal(tsr_write_file_atomic(smi, script, strlen(script)), 0);
    assert_int_equal(chmod(smi, 0755), 0);
    m->path_prefix = bin;
    s_start_worker(m, 1);
    cJSON *hello = s_handshake(m, 1);
    const cJSON *gpus = cJSON_GetObjectItemCaseSensitive(hello, "gpus");
    assert_int_equal(cJSON_GetArraySize(gpus), 2);
    assert_string_equal(s_str(cJSON_GetArrayItem(gpus, 0), "name"),
                        "NVIDIA H100 80GB HBM3");
    assert_int_equal(s_int(cJSON_GetArrayItem(gpus, 0), "memory_mb"), 81559);
    assert_string_equal(s_str(cJSON_GetArrayItem(gpus, 1), "name"), "Tesla T4");
    assert_int_equal(s_int(cJSON_GetArrayItem(gpus, 1), "memory_mb"), 15360);
    cJSON_Delete(hello);
    assert_int_equal(WEXITSTATUS(s_stop_worker(m, SIGINT)), 0);
}

/* Bad flags: one line, exit 2. */
static void test_flags(void **state)
{
    (void)state;
    const char *bad[][3] = {
        {"--slots", "0", NULL},        {"--bogus", NULL, NULL},
        {"--heartbeat-ms", "x", NULL}, {"--log-level", "loud", NULL},
        {"--liveness", NULL, NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int p[2];
        assert_int_equal(pipe(p), 0);
        pid_t pid = fork();
        if (pid == 0) {
            dup2(p[1], 2);
            close(p[0]);
            execl(g_worker, g_worker, bad[i][0], bad[i][1], (char *)NULL);
            _exit(127);
        }
        close(p[1]);
        char buf[512] = "";
        ssize_t n, got = 0;
        while ((n = read(p[0], buf + got, sizeof buf - 1 - (size_t)got)) > 0)
            got += n;
        close(p[0]);
        int st;
        waitpid(pid, &st, 0);
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 2);
        assert_true(got > 0);
        assert_non_null(strstr(buf, "tessera-worker: "));
        assert_ptr_equal(strchr(buf, '\n'), buf + got - 1); /* exactly one line */
    }
}

/* ---- fixtures ------------------------------------------------------------- */

static void s_write(const char *dir, const char *name, const void *data, size_t len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    assert_int_equal(tsr_write_file_atomic(path, data, len), 0);
}

static struct blob *s_pack(const char *dir)
{
    char out[512], err[256];
    snprintf(out, sizeof out, "%s.tar.zst", dir);
    assert_int_equal(tsr_archive_pack_dir(dir, out, err, sizeof err), 0);
    struct blob *b = &g_blobs[g_nblobs++];
    char *data = NULL;
    assert_int_equal(tsr_read_file(out, 64 << 20, &data, &b->len), 0);
    b->data = (unsigned char *)data;
    tsr_hash_buf(b->data, b->len, b->hash);
    return b;
}

static int s_group_setup(void **state)
{
    (void)state;
    assert_int_equal(tsr_hash_init_library(), 0);
    snprintf(g_tmp, sizeof g_tmp, "/tmp/tsr-worker-test-XXXXXX");
    assert_non_null(mkdtemp(g_tmp));

    /* The small scene: a scene file and a 4x2 piece at the top left of 8x4. */
    char dir[256];
    snprintf(dir, sizeof dir, "%s/small", g_tmp);
    assert_int_equal(tsr_mkdir_p(dir), 0);
    s_write(dir, "scene.json", "{}\n", 3);
    float px[4 * 2 * 4];
    for (int i = 0; i < 32; i++)
        px[i] = (float)i / 32.0f;
    struct tsr_image_info info = {{0, 0, 4, 2}, 8, 4, 4};
    char piece[512], err[256];
    snprintf(piece, sizeof piece, "%s/piece.exr", dir);
    assert_int_equal(tsr_image_write_exr(piece, &info, px, err, sizeof err), 0);
    unsigned long long size = 0;
    assert_int_equal(tsr_hash_file(piece, g_piece_hash, &size), 0);
    g_piece_size = (size_t)size;
    g_small = s_pack(dir);

    /* The big scene: 2.5 MiB that zstd cannot shrink. */
    snprintf(dir, sizeof dir, "%s/big", g_tmp);
    assert_int_equal(tsr_mkdir_p(dir), 0);
    s_write(dir, "scene.json", "{}\n", 3);
    size_t n = 5 * TSR_PROTO_CHUNK / 2;
    unsigned char *rnd = malloc(n);
    assert_non_null(rnd);
    randombytes_buf(rnd, n);
    s_write(dir, "data.bin", rnd, n);
    free(rnd);
    g_big = s_pack(dir);
    assert_true(g_big->len > 2 * TSR_PROTO_CHUNK && g_big->len <= 3 * TSR_PROTO_CHUNK);

    /* The liar: the small scene's bytes with one flipped, same name. */
    g_liar = &g_blobs[g_nblobs++];
    g_liar->len = g_small->len;
    g_liar->data = malloc(g_liar->len);
    memcpy(g_liar->data, g_small->data, g_liar->len);
    g_liar->data[g_liar->len / 2] ^= 0xff;
    memset(g_liar->hash, 'b', 64);

    /* The example scene, for the builtin renderer. */
    const char *src = getenv("TSR_SRC");
    char scene[512];
    if (src && tsr_fmt(scene, sizeof scene, "%s/examples/orbit/scene.json", src) == 0 &&
        tsr_path_exists(scene)) {
        char *text = NULL;
        size_t len = 0;
        assert_int_equal(tsr_read_file(scene, 1 << 20, &text, &len), 0);
        snprintf(dir, sizeof dir, "%s/orbit", g_tmp);
        assert_int_equal(tsr_mkdir_p(dir), 0);
        s_write(dir, "scene.json", text, len);
        free(text);
        g_orbit = s_pack(dir);
    }
    return 0;
}

static int s_group_teardown(void **state)
{
    (void)state;
    for (int i = 0; i < g_nblobs; i++)
        free(g_blobs[i].data);
    tsr_rm_rf(g_tmp);
    return 0;
}

int main(int argc, char **argv)
{
    g_worker = argc > 1 ? argv[1] : getenv("TSR_WORKER_BIN");
    if (!g_worker) {
        fprintf(stderr, "usage: test_worker PATH-TO-tessera-worker\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flags),
        cmocka_unit_test_setup_teardown(test_task_ok, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_failures, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_cancel, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_bad_input, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_shared_download, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_images, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_reconnect_resend, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_drain, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_restart_spool, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_builtin, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_gpus, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_gpu_slots, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_requires, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_builtin_gpu, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_blender_fake, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, s_group_setup, s_group_teardown);
}
