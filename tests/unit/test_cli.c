/*
 * test_cli.c: the `tessera` command-line client (tools/cli/), run as the
 * real binary against a small fake master.
 *
 * The fake master is a ZeroMQ ROUTER in a thread of this test that speaks
 * doc/protocol.md: it keeps uploaded blobs in memory, counts chunks in
 * flight (to prove the client keeps to the credit window), answers GET with
 * short bodies (to prove the client asks again for the rest), pages FRAMES,
 * and serves a handful of fixed jobs. The tests assert what a user sees:
 * exit codes, the exact one-line errors, the files fetch writes, that
 * SHA256SUMS passes `sha256sum -c`, and that manifest.json parses.
 */
/* cmocka.h needs these four first. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "tessera/error.h"
#include "tessera/hash.h"
#include "tessera/image.h"
#include "tessera/proto.h"
#include "tessera/util.h"

#define S_CHUNK (64 * 1024) /* the fake's upload chunk: small, so files take many */
#define S_CREDIT 3          /* the fake's upload window */
#define S_SHORT 300000      /* the fake answers GET with at most this many bytes */
#define S_PAGE 2            /* FRAMES entries per page */
#define S_MAX_BLOBS 64

/* A blob the fake master holds. */
struct s_blob {
    char hash[TSR_HASH_HEX]; /* its name (for the corrupt one, not its content's) */
    unsigned char *data;     /* content, owned */
    size_t size;             /* content length */
};

/* A job submitted to the fake. */
struct s_sub {
    char name[64];    /* its name */
    int status_calls; /* STATUS asked so far */
};

/* The fake master and what it saw. */
struct s_fake {
    void *ctx;                        /* ZeroMQ context */
    void *sock;                       /* ROUTER bound to endpoint */
    char endpoint[64];                /* tcp://127.0.0.1:PORT */
    pthread_t thread;                 /* runs s_serve */
    volatile int stop;                /* set to end the thread */
    pthread_mutex_t lock;             /* guards everything below */
    struct s_blob blobs[S_MAX_BLOBS]; /* blob store */
    int nblobs;                       /* blobs held */
    unsigned char *up;                /* upload in progress */
    size_t up_size;                   /* its declared size */
    char up_hash[TSR_HASH_HEX];       /* its declared hash */
    int requests;                     /* messages received, all kinds */
    int chunks;                       /* CHUNKs received */
    int max_chunks_batch;             /* most CHUNKs waiting at once */
    int gets;                         /* GETs received */
    int sheets;                       /* SHEETs received */
    int max_gets_batch;               /* most GETs waiting at once */
    cJSON *last_submit;               /* header of the last SUBMIT */
    struct s_sub subs[32];            /* submitted jobs, id 100 + index */
    int nsubs;                        /* jobs submitted */
    int watch_calls;                  /* STATUS calls for job 10 */
};

static struct s_fake s_fk;
static char s_dir[256];                    /* this run's scratch folder */
static char s_bin[1024];                   /* the tessera binary */
static char s_env[256];                    /* VAR=value words put before the binary */
static char s_frame_hash[5][TSR_HASH_HEX]; /* blobs of the fixed jobs' frames */

/* ---- the fake master ---------------------------------------------------- */

/* A contact sheet PNG, kept as a blob: what the fake's SHEET names. */
static char s_sheet_hash[TSR_HASH_HEX];

static struct s_blob *s_blob_find(const char *hash)
{
    for (int i = 0; i < s_fk.nblobs; i++)
        if (strcmp(s_fk.blobs[i].hash, hash) == 0)
            return &s_fk.blobs[i];
    return NULL;
}

static void s_blob_add(const char *hash, const void *data, size_t size)
{
    struct s_blob *b = &s_fk.blobs[s_fk.nblobs++];
    snprintf(b->hash, sizeof b->hash, "%s", hash);
    b->data = malloc(size ? size : 1);
    memcpy(b->data, data, size);
    b->size = size;
}

static cJSON *s_pair(int a, int b)
{
    cJSON *arr = cJSON_CreateArray();
    cJSON_AddItemToArray(arr, cJSON_CreateNumber(a));
    cJSON_AddItemToArray(arr, cJSON_CreateNumber(b));
    return arr;
}

/* A JOB object as doc/protocol.md describes it. */
static cJSON *s_job(int64_t id, const char *name, const char *state, int total, int done,
                    const char *error)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)id);
    cJSON_AddStringToObject(o, "name", name);
    cJSON_AddStringToObject(o, "state", state);
    cJSON_AddStringToObject(o, "renderer", "builtin");
    cJSON_AddNumberToObject(o, "priority", 50);
    cJSON_AddStringToObject(o, "scene", "scene.json");
    cJSON_AddStringToObject(o, "frame_set", "1-3");
    cJSON_AddItemToObject(o, "tiles", s_pair(2, 2));
    cJSON_AddNumberToObject(o, "chunk", 1);
    cJSON_AddNumberToObject(o, "width", 64);
    cJSON_AddNumberToObject(o, "height", 32);
    cJSON *fr = cJSON_AddObjectToObject(o, "frames");
    cJSON_AddNumberToObject(fr, "total", total);
    cJSON_AddNumberToObject(fr, "done", done);
    cJSON *tk = cJSON_AddObjectToObject(o, "tasks");
    cJSON_AddNumberToObject(tk, "total", total * 4);
    cJSON_AddNumberToObject(tk, "done", done * 4);
    cJSON_AddNumberToObject(tk, "running", strcmp(state, "running") == 0 ? 2 : 0);
    cJSON_AddNumberToObject(tk, "queued", (total - done) * 4);
    cJSON_AddNumberToObject(tk, "failed", strcmp(state, "failed") == 0 ? 1 : 0);
    cJSON *hubs = cJSON_AddObjectToObject(o, "hubs");
    cJSON *h = cJSON_AddObjectToObject(hubs, "qingyang");
    cJSON_AddNumberToObject(h, "done", done * 4);
    cJSON_AddNumberToObject(h, "running", strcmp(state, "running") == 0 ? 2 : 0);
    cJSON_AddNumberToObject(o, "created_ms", (double)(tsr_wall_ms() - 90000));
    cJSON_AddNumberToObject(o, "started_ms", (double)(tsr_wall_ms() - 60000));
    cJSON_AddNumberToObject(o, "finished_ms", 0);
    cJSON_AddNumberToObject(o, "elapsed_s", 60.0);
    cJSON_AddNumberToObject(o, "eta_s", done < total ? 30.0 : 0.0);
    cJSON_AddStringToObject(o, "error", error ? error : "");
    return o;
}

/* The fixed jobs: 7 done (frames -1, 1, 2), 8 running (1 of 3 done),
 * 9 done but its frame's blob does not match its hash, 10 advances one frame
 * per STATUS, 11 failed. Submitted jobs are 100 and up. NULL: no such job. */
static cJSON *s_job_by_id(int64_t id, int count_status)
{
    switch (id) {
    case 7:
        return s_job(7, "orbit", "done", 3, 3, NULL);
    case 8: {
        cJSON *j = s_job(8, "partial", "running", 3, 1, NULL);
        cJSON_AddStringToObject(j, "waiting", "no live worker has the feature 'blender:oidn'");
        return j;
    }
    case 9:
        return s_job(9, "corrupt", "done", 1, 1, NULL);
    case 10: {
        int done = s_fk.watch_calls > 3 ? 3 : s_fk.watch_calls;
        if (count_status)
            s_fk.watch_calls++;
        return s_job(10, "watched", done == 3 ? "done" : "running", 3, done, NULL);
    }
    case 11:
        return s_job(11, "broken", "failed", 3, 1,
                     "task 2 failed 3 times: renderer crashed");
    default:
        break;
    }
    if (id >= 100 && id < 100 + s_fk.nsubs) {
        struct s_sub *s = &s_fk.subs[id - 100];
        int calls = s->status_calls;
        if (count_status)
            s->status_calls++;
        const char *end = strcmp(s->name, "doomed") == 0 ? "failed" : "done";
        return s_job(id, s->name, calls == 0 ? "running" : end, 3, calls == 0 ? 0 : 3,
                     strcmp(end, "failed") == 0 ? "scene has no camera" : NULL);
    }
    return NULL;
}

/* One FRAME object. */
static cJSON *s_frame(int frame, const char *state, const char *hash, size_t size)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "frame", frame);
    cJSON_AddStringToObject(o, "state", state);
    cJSON_AddStringToObject(o, "hash", hash);
    cJSON_AddNumberToObject(o, "size", (double)size);
    cJSON_AddNumberToObject(o, "width", 64);
    cJSON_AddNumberToObject(o, "height", 32);
    cJSON *st = cJSON_AddObjectToObject(o, "stats");
    double mn[] = {0, 0, 0, 1}, mx[] = {1, 1, 1, 1}, mean[] = {0.5, 0.5, 0.5, 1};
    cJSON_AddItemToObject(st, "min", cJSON_CreateDoubleArray(mn, 4));
    cJSON_AddItemToObject(st, "max", cJSON_CreateDoubleArray(mx, 4));
    cJSON_AddItemToObject(st, "mean", cJSON_CreateDoubleArray(mean, 4));
    cJSON_AddStringToObject(o, "worker", "node-3");
    cJSON_AddStringToObject(o, "hub", "qingyang");
    cJSON_AddNumberToObject(o, "render_ms", 1234);
    return o;
}

static cJSON *s_frames_of(int64_t id)
{
    cJSON *arr = cJSON_CreateArray();
    struct s_blob *b;
    if (id == 7) {
        int nums[] = {-1, 1, 2};
        for (int i = 0; i < 3; i++) {
            b = s_blob_find(s_frame_hash[i]);
            cJSON_AddItemToArray(arr, s_frame(nums[i], "done", b->hash, b->size));
        }
    } else if (id == 8) {
        b = s_blob_find(s_frame_hash[3]);
        cJSON_AddItemToArray(arr, s_frame(1, "done", b->hash, b->size));
        cJSON_AddItemToArray(arr, s_frame(2, "pending", "", 0));
        cJSON_AddItemToArray(arr, s_frame(3, "assembling", "", 0));
    } else if (id == 9) {
        b = s_blob_find(s_frame_hash[4]);
        cJSON_AddItemToArray(arr, s_frame(1, "done", b->hash, b->size));
    }
    return arr;
}

static void s_reply(const struct tsr_msg *m, const char *cmd, cJSON *h, int64_t rid,
                    const void *body, size_t len)
{
    cJSON_AddNumberToObject(h, "rid", (double)rid);
    tsr_msg_send(s_fk.sock, m->peer, m->peer_len, cmd, h, body, len);
    cJSON_Delete(h);
}

static void s_error(const struct tsr_msg *m, int64_t rid, int code, const char *text)
{
    tsr_msg_send_error(s_fk.sock, m->peer, m->peer_len, m->cmd, rid, code, text);
}

static void s_handle(struct tsr_msg *m)
{
    int64_t rid = -1, job = 0, off = 0, len = 0, size = 0, from = 0;
    const char *hash = NULL;
    tsr_hdr_int_opt(m->hdr, "rid", 0, INT64_MAX / 2, &rid, NULL, 0);
    tsr_hdr_int_opt(m->hdr, "job", 0, INT64_MAX / 2, &job, NULL, 0);
    tsr_hdr_hash(m->hdr, "hash", &hash, NULL, 0);
    s_fk.requests++;
    cJSON *h = cJSON_CreateObject();
    if (strcmp(m->cmd, "PUT") == 0) {
        tsr_hdr_int(m->hdr, "size", 0, INT64_MAX / 2, &size, NULL, 0);
        cJSON_AddStringToObject(h, "hash", hash);
        if (s_blob_find(hash)) {
            cJSON_AddBoolToObject(h, "have", 1);
        } else {
            free(s_fk.up);
            s_fk.up = calloc(1, (size_t)size + 1);
            s_fk.up_size = (size_t)size;
            snprintf(s_fk.up_hash, sizeof s_fk.up_hash, "%s", hash);
            cJSON_AddBoolToObject(h, "have", 0);
            cJSON_AddNumberToObject(h, "chunk", S_CHUNK);
            cJSON_AddNumberToObject(h, "credit", S_CREDIT);
        }
        s_reply(m, "PUT_OK", h, rid, NULL, 0);
    } else if (strcmp(m->cmd, "CHUNK") == 0) {
        tsr_hdr_int(m->hdr, "offset", 0, INT64_MAX / 2, &off, NULL, 0);
        s_fk.chunks++;
        if (!s_fk.up || off % S_CHUNK != 0 || (size_t)off + m->body_len > s_fk.up_size) {
            cJSON_Delete(h);
            s_error(m, rid, TSR_EINVAL, "chunk does not fit");
            return;
        }
        memcpy(s_fk.up + off, m->body, m->body_len);
        cJSON_AddStringToObject(h, "hash", hash);
        cJSON_AddNumberToObject(h, "offset", (double)off);
        s_reply(m, "CHUNK_OK", h, rid, NULL, 0);
    } else if (strcmp(m->cmd, "PUT_END") == 0) {
        char got[TSR_HASH_HEX];
        tsr_hash_buf(s_fk.up, s_fk.up_size, got);
        if (strcmp(got, s_fk.up_hash) != 0) {
            cJSON_Delete(h);
            s_error(m, rid, TSR_EHASH, "upload does not match its hash");
            return;
        }
        s_blob_add(got, s_fk.up, s_fk.up_size);
        cJSON_AddStringToObject(h, "hash", got);
        cJSON_AddNumberToObject(h, "size", (double)s_fk.up_size);
        s_reply(m, "PUT_DONE", h, rid, NULL, 0);
    } else if (strcmp(m->cmd, "SUBMIT") == 0) {
        const char *archive = NULL, *name = "job";
        tsr_hdr_hash(m->hdr, "archive", &archive, NULL, 0);
        tsr_hdr_str_opt(m->hdr, "name", 63, &name, NULL, 0);
        cJSON_Delete(s_fk.last_submit);
        s_fk.last_submit = cJSON_Duplicate(m->hdr, 1);
        if (!archive || !s_blob_find(archive)) {
            cJSON_Delete(h);
            s_error(m, rid, TSR_ENOTFOUND,
                    "archive is not on the master; upload it first");
            return;
        }
        struct s_sub *s = &s_fk.subs[s_fk.nsubs];
        snprintf(s->name, sizeof s->name, "%s", name);
        cJSON_AddNumberToObject(h, "id", 100 + s_fk.nsubs++);
        s_reply(m, "SUBMITTED", h, rid, NULL, 0);
    } else if (strcmp(m->cmd, "STATUS") == 0 || strcmp(m->cmd, "FRAMES") == 0 ||
               strcmp(m->cmd, "CANCEL") == 0) {
        cJSON *j = s_job_by_id(job, strcmp(m->cmd, "STATUS") == 0);
        if (!j) {
            char text[64];
            snprintf(text, sizeof text, "no such job %lld", (long long)job);
            cJSON_Delete(h);
            s_error(m, rid, TSR_ENOTFOUND, text);
            return;
        }
        if (strcmp(m->cmd, "STATUS") == 0) {
            cJSON_AddItemToObject(h, "job", j);
            s_reply(m, "STATUS", h, rid, NULL, 0);
        } else if (strcmp(m->cmd, "CANCEL") == 0) {
            cJSON_Delete(j);
            cJSON_AddNumberToObject(h, "id", (double)job);
            cJSON_AddStringToObject(h, "state", job == 7 ? "done" : "cancelled");
            s_reply(m, "CANCELLED", h, rid, NULL, 0);
        } else {
            cJSON_Delete(j);
            tsr_hdr_int_opt(m->hdr, "from", 0, INT32_MAX, &from, NULL, 0);
            cJSON *all = s_frames_of(job), *page = cJSON_CreateArray();
            int n = cJSON_GetArraySize(all);
            for (int i = (int)from; i < n && i < from + S_PAGE; i++)
                cJSON_AddItemToArray(page,
                                     cJSON_Duplicate(cJSON_GetArrayItem(all, i), 1));
            cJSON_Delete(all);
            cJSON_AddNumberToObject(h, "job", (double)job);
            cJSON_AddItemToObject(h, "frames", page);
            cJSON_AddNumberToObject(h, "total", n);
            cJSON_AddNumberToObject(h, "next", from + S_PAGE < n ? from + S_PAGE : -1);
            s_reply(m, "FRAMES", h, rid, NULL, 0);
        }
    } else if (strcmp(m->cmd, "SHEET") == 0) {
        /* The real master draws the job's frames; the fake hands out one
         * sheet it drew at setup, which is enough to test the transfer. */
        s_fk.sheets++;
        cJSON_AddNumberToObject(h, "job", (double)job);
        cJSON_AddStringToObject(h, "hash", s_sheet_hash);
        cJSON_AddNumberToObject(h, "size", (double)s_blob_find(s_sheet_hash)->size);
        cJSON_AddNumberToObject(h, "frames", 1);
        s_reply(m, "SHEET", h, rid, NULL, 0);
    } else if (strcmp(m->cmd, "JOBS") == 0) {
        cJSON *arr = cJSON_AddArrayToObject(h, "jobs");
        for (int64_t id = 7; id <= 11; id++)
            cJSON_AddItemToArray(arr, s_job_by_id(id, 0));
        s_reply(m, "JOBS", h, rid, NULL, 0);
    } else if (strcmp(m->cmd, "WORKERS") == 0) {
        cJSON *arr = cJSON_AddArrayToObject(h, "workers");
        cJSON *w = cJSON_CreateObject();
        cJSON_AddStringToObject(w, "name", "node-3");
        cJSON_AddStringToObject(w, "hub", "qingyang");
        cJSON_AddStringToObject(w, "state", "busy");
        cJSON_AddNumberToObject(w, "slots", 4);
        cJSON_AddNumberToObject(w, "running", 2);
        cJSON *gpus = cJSON_AddArrayToObject(w, "gpus");
        for (int i = 0; i < 2; i++) {
            cJSON *g = cJSON_CreateObject();
            cJSON_AddStringToObject(g, "name", "H100");
            cJSON_AddNumberToObject(g, "memory_mb", 81920);
            cJSON_AddItemToArray(gpus, g);
        }
        cJSON_AddNumberToObject(w, "done", 17);
        cJSON_AddNumberToObject(w, "failed", 1);
        cJSON_AddNumberToObject(w, "last_seen_s", 0.4);
        cJSON_AddStringToObject(w, "sandbox", "none");
        cJSON_AddItemToArray(arr, w);
        s_reply(m, "WORKERS", h, rid, NULL, 0);
    } else if (strcmp(m->cmd, "GET") == 0) {
        tsr_hdr_int(m->hdr, "offset", 0, INT64_MAX / 2, &off, NULL, 0);
        tsr_hdr_int(m->hdr, "len", 0, TSR_PROTO_MAX_BODY, &len, NULL, 0);
        s_fk.gets++;
        struct s_blob *b = hash ? s_blob_find(hash) : NULL;
        if (!b || (size_t)off >= b->size) {
            cJSON_Delete(h);
            s_error(m, rid, TSR_ENOTFOUND, "blob is not on the master");
            return;
        }
        size_t n = b->size - (size_t)off;
        if (n > (size_t)len)
            n = (size_t)len;
        if (n > S_SHORT)
            n = S_SHORT; /* the client must ask again for the rest */
        cJSON_AddStringToObject(h, "hash", b->hash);
        cJSON_AddNumberToObject(h, "offset", (double)off);
        cJSON_AddNumberToObject(h, "size", (double)b->size);
        s_reply(m, "DATA", h, rid, b->data + off, n);
    } else {
        cJSON_Delete(h);
        s_error(m, rid, TSR_EPROTO, "unknown command");
    }
}

static void *s_serve(void *arg)
{
    (void)arg;
    struct tsr_msg batch[64];
    while (!s_fk.stop) {
        zmq_pollitem_t it = {.socket = s_fk.sock, .events = ZMQ_POLLIN};
        if (zmq_poll(&it, 1, 50) <= 0)
            continue;
        /* Let the client fill its window, then take all that is waiting:
         * what arrives together is what the client had in flight. */
        usleep(20000);
        int n = 0;
        while (n < 64) {
            char err[128];
            int rc = tsr_msg_recv(s_fk.sock, 1, 1, &batch[n], err, sizeof err);
            if (rc == TSR_ETIMEOUT)
                break;
            if (rc == 0)
                n++;
        }
        pthread_mutex_lock(&s_fk.lock);
        int chunks = 0, gets = 0;
        for (int i = 0; i < n; i++) {
            chunks += strcmp(batch[i].cmd, "CHUNK") == 0;
            gets += strcmp(batch[i].cmd, "GET") == 0;
        }
        if (chunks > s_fk.max_chunks_batch)
            s_fk.max_chunks_batch = chunks;
        if (gets > s_fk.max_gets_batch)
            s_fk.max_gets_batch = gets;
        for (int i = 0; i < n; i++) {
            s_handle(&batch[i]);
            tsr_msg_clear(&batch[i]);
        }
        pthread_mutex_unlock(&s_fk.lock);
    }
    return NULL;
}

/* ---- running the client ------------------------------------------------- */

static char *s_slurp(const char *path)
{
    char *data = NULL;
    size_t len = 0;
    if (tsr_read_file(path, 64 * 1024 * 1024, &data, &len) != 0)
        return strdup("");
    return data;
}

/* Runs `tessera ARGS` through the shell (ARGS may hold redirections and
 * quotes) with stdout and stderr captured; returns the exit code. */
static int s_cli(char **out, char **err, const char *fmt, ...)
{
    char args[4096], cmd[8192], po[512], pe[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(po, sizeof po, "%s/stdout", s_dir);
    snprintf(pe, sizeof pe, "%s/stderr", s_dir);
    snprintf(cmd, sizeof cmd, "cd '%s' && TMPDIR='%s/tmp' %s '%s' %s >'%s' 2>'%s'", s_dir,
             s_dir, s_env, s_bin, args, po, pe);
    int st = system(cmd);
    *out = s_slurp(po);
    *err = s_slurp(pe);
    if (!WIFEXITED(st))
        return -1;
    return WEXITSTATUS(st);
}

/* Runs the client against the fake master. */
#define S_FAKE "--master %s "

/* Writes len bytes of a fixed pseudo-random sequence (seed picks which). */
static void s_write_noise(const char *path, size_t len, unsigned seed)
{
    unsigned char *buf = malloc(len);
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < len; i++) {
        x = x * 1664525u + 1013904223u;
        buf[i] = (unsigned char)(x >> 24);
    }
    assert_int_equal(tsr_write_file_atomic(path, buf, len), 0);
    free(buf);
}

/* Writes an EXR of w x h with noise (seed) and adds it as a blob;
 * hash receives its name. */
static void s_make_frame(int w, int h, unsigned seed, char hash[TSR_HASH_HEX])
{
    float *px = malloc((size_t)w * h * 4 * sizeof *px);
    uint32_t x = seed;
    for (size_t i = 0; i < (size_t)w * h * 4; i++) {
        x = x * 1664525u + 1013904223u;
        px[i] = (float)(x >> 8) / 16777216.0f;
    }
    struct tsr_image_info info = {
        .data = {0, 0, w, h}, .full_width = w, .full_height = h, .nchannels = 4};
    char path[512], err[256];
    snprintf(path, sizeof path, "%s/frame-%u.exr", s_dir, seed);
    assert_int_equal(tsr_image_write_exr(path, &info, px, err, sizeof err), 0);
    free(px);
    char *data = NULL;
    size_t len = 0;
    assert_int_equal(tsr_read_file(path, 1 << 30, &data, &len), 0);
    tsr_hash_buf(data, len, hash);
    s_blob_add(hash, data, len);
    free(data);
    unlink(path);
}

static void s_make_sheet(void)
{
    float px[16 * 8 * 4];
    for (size_t i = 0; i < sizeof px / sizeof px[0]; i++)
        px[i] = 0.5f;
    struct tsr_image_info info = {
        .data = {0, 0, 16, 8}, .full_width = 16, .full_height = 8, .nchannels = 4};
    char exr[512], png[512], err[256];
    snprintf(exr, sizeof exr, "%s/sheet-src.exr", s_dir);
    snprintf(png, sizeof png, "%s/sheet.png", s_dir);
    assert_int_equal(tsr_image_write_exr(exr, &info, px, err, sizeof err), 0);
    const char *paths[] = {exr}, *labels[] = {"1"};
    assert_int_equal(tsr_image_contact_sheet(paths, labels, 1, 1, 64, NULL, png, err,
                                             sizeof err), 0);
    char *data = NULL;
    size_t len = 0;
    assert_int_equal(tsr_read_file(png, 1 << 30, &data, &len), 0);
    tsr_hash_buf(data, len, s_sheet_hash);
    s_blob_add(s_sheet_hash, data, len);
    free(data);
    unlink(exr);
    unlink(png);
}

/* An unused loopback port: bind to 0, read it, close. */
static int s_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static int s_setup(void **state)
{
    (void)state;
    tsr_hash_init_library();
    const char *bin = getenv("TSR_CLI_BIN");
    const char *build = getenv("TSR_BUILD");
    if (bin)
        snprintf(s_bin, sizeof s_bin, "%s", bin);
    else
        snprintf(s_bin, sizeof s_bin, "%s/bin/tessera", build ? build : "build");
    snprintf(s_dir, sizeof s_dir, "/tmp/tsr-cli-XXXXXX");
    if (!mkdtemp(s_dir))
        return -1;
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s/tmp", s_dir);
    tsr_mkdir_p(tmp);

    pthread_mutex_init(&s_fk.lock, NULL);
    s_fk.ctx = zmq_ctx_new();
    s_fk.sock = zmq_socket(s_fk.ctx, ZMQ_ROUTER);
    tsr_socket_setup(s_fk.sock);
    if (zmq_bind(s_fk.sock, "tcp://127.0.0.1:*") != 0)
        return -1;
    size_t n = sizeof s_fk.endpoint;
    zmq_getsockopt(s_fk.sock, ZMQ_LAST_ENDPOINT, s_fk.endpoint, &n);

    /* Frames of the fixed jobs: one large enough to take several GETs. */
    s_make_frame(640, 480, 1, s_frame_hash[0]);
    s_make_frame(64, 32, 2, s_frame_hash[1]);
    s_make_frame(64, 32, 3, s_frame_hash[2]);
    s_make_frame(64, 32, 4, s_frame_hash[3]);
    /* Job 9's frame: a blob whose content is not what its name says. */
    char right[TSR_HASH_HEX];
    s_make_frame(64, 32, 5, right);
    struct s_blob *b = s_blob_find(right);
    b->data[b->size / 2] ^= 0x40;
    snprintf(s_frame_hash[4], TSR_HASH_HEX, "%s", right);
    s_make_sheet();

    return pthread_create(&s_fk.thread, NULL, s_serve, NULL) == 0 ? 0 : -1;
}

static int s_teardown(void **state)
{
    (void)state;
    s_fk.stop = 1;
    pthread_join(s_fk.thread, NULL);
    zmq_close(s_fk.sock);
    zmq_ctx_term(s_fk.ctx);
    for (int i = 0; i < s_fk.nblobs; i++)
        free(s_fk.blobs[i].data);
    free(s_fk.up);
    cJSON_Delete(s_fk.last_submit);
    tsr_rm_rf(s_dir);
    return 0;
}

static int s_requests(void)
{
    pthread_mutex_lock(&s_fk.lock);
    int n = s_fk.requests;
    pthread_mutex_unlock(&s_fk.lock);
    return n;
}

/* ---- tests -------------------------------------------------------------- */

/* Usage errors: one line, exit 2, no master needed. */
static void test_usage_errors(void **state)
{
    (void)state;
    static const struct {
        const char *args;   /* what the user typed */
        const char *stderr; /* the whole of stderr */
    } cases[] = {
        {"", "tessera: no command given (see 'tessera --help')\n"},
        {"frobnicate", "tessera: unknown command 'frobnicate' (see 'tessera --help')\n"},
        {"--bogus jobs", "tessera: unknown option '--bogus' (see 'tessera --help')\n"},
        {"--timeout abc jobs", "tessera: --timeout: 'abc' is not a number of seconds\n"},
        {"submit", "tessera: submit: missing PATH (an archive or a folder; see "
                   "'tessera submit --help')\n"},
        {"submit ./nope.tar", "tessera: submit: './nope.tar': no such file or folder\n"},
        {"submit --bogus x", "tessera: submit: unknown option '--bogus' (see "
                             "'tessera submit --help')\n"},
        {"submit x --frames", "tessera: submit: option '--frames' needs a value\n"},
        {"submit --tiles 0x2 x", "tessera: submit: --tiles '0x2': want COLSxROWS, each "
                                 "1..64\n"},
        {"submit --tiles 65x1 x", "tessera: submit: --tiles '65x1': want COLSxROWS, each "
                                  "1..64\n"},
        {"submit --priority 101 x", "tessera: submit: --priority '101': want a number "
                                    "0..100\n"},
        {"submit --renderer povray x", "tessera: submit: --renderer 'povray': must be "
                                       "builtin, blender or command\n"},
        {"submit --renderer blender x",
         "tessera: submit: --renderer blender needs --scene "
         "FILE.blend (the .blend file in the archive)\n"},
        {"submit --renderer blender --scene s.blend x",
         "tessera: submit: --renderer blender needs --size WxH (the frame size the tasks "
         "render at)\n"},
        {"submit --renderer blender --scene s.blend --size 4x4 --cycles-device cuda x",
         "tessera: submit: --cycles-device CUDA renders on a GPU: add --gpu\n"},
        {"submit --cycles-device METAL x",
         "tessera: submit: --cycles-device 'METAL': must "
         "be CPU, CUDA or OPTIX\n"},
        {"submit --cycles-device CPU x", "tessera: submit: --cycles-device is only for "
                                         "--renderer blender\n"},
        {"submit --require 'a b' x",
         "tessera: submit: --require 'a b': want a feature name "
         "of 1..31 printable characters without spaces\n"},
        {"submit --renderer command x", "tessera: submit: --renderer command needs "
                                        "--command 'TEMPLATE'\n"},
        {"submit --outputs png x", "tessera: submit: --outputs 'png': must be image or "
                                   "none\n"},
        {"submit --size 0x10 x",
         "tessera: submit: --size '0x10': want WIDTHxHEIGHT, each "
         "1..32768\n"},
        {"submit a b", "tessera: submit: unexpected argument 'b'\n"},
        {"status x7", "tessera: status: 'x7' is not a job id\n"},
        {"status 7 8", "tessera: status: unexpected argument '8'\n"},
        {"jobs extra", "tessera: jobs: unexpected argument 'extra'\n"},
        {"watch", "tessera: watch: missing JOB (see 'tessera watch --help')\n"},
        {"watch 7 --interval 0", "tessera: watch: --interval '0': want seconds, "
                                 "0.01..3600\n"},
        {"cancel", "tessera: cancel: missing JOB (see 'tessera cancel --help')\n"},
        {"fetch 7", "tessera: fetch: missing -o DIR (where the frames go)\n"},
        {"fetch -o out", "tessera: fetch: missing JOB (see 'tessera fetch --help')\n"},
        {"fetch 7 -o", "tessera: fetch: option '-o' needs a value\n"},
        {"--master bogus jobs",
         "tessera: bad master endpoint 'bogus': Invalid argument\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out, *err;
        int rc = s_cli(&out, &err, "%s", cases[i].args);
        if (rc != 2 || strcmp(err, cases[i].stderr) != 0)
            print_error("tessera %s: exit %d, stderr '%s'\n", cases[i].args, rc, err);
        assert_int_equal(rc, 2);
        assert_string_equal(err, cases[i].stderr);
        assert_string_equal(out, "");
        free(out);
        free(err);
    }
}

static void test_help(void **state)
{
    (void)state;
    char *out, *err;
    assert_int_equal(s_cli(&out, &err, "--help"), 0);
    assert_non_null(strstr(out, "usage: tessera [--master ENDPOINT]"));
    assert_non_null(strstr(out, "fetch"));
    free(out);
    free(err);
    const char *cmds[] = {"submit", "status", "jobs", "workers",
                          "watch",  "cancel", "fetch"};
    for (size_t i = 0; i < 7; i++) {
        assert_int_equal(s_cli(&out, &err, "%s --help", cmds[i]), 0);
        char want[64];
        snprintf(want, sizeof want, "usage: tessera %s", cmds[i]);
        assert_non_null(strstr(out, want));
        assert_string_equal(err, "");
        free(out);
        free(err);
    }
}

/* An unreachable master: the promised line, exit 3, within the timeout. */
static void test_unreachable(void **state)
{
    (void)state;
    int port = s_free_port();
    char *out, *err, want[256];
    int64_t t0 = tsr_now_ms();
    int rc = s_cli(&out, &err, "--master tcp://127.0.0.1:%d --timeout 1 status 7", port);
    int64_t took = tsr_now_ms() - t0;
    snprintf(want, sizeof want,
             "tessera: cannot reach master at tcp://127.0.0.1:%d (no reply in 1 s)\n",
             port);
    assert_int_equal(rc, 3);
    assert_string_equal(err, want);
    assert_true(took < 10000); /* bounded by --timeout, not hung */
    free(out);
    free(err);
    /* $TESSERA_MASTER is the default endpoint. */
    snprintf(s_env, sizeof s_env, "TESSERA_MASTER=tcp://127.0.0.1:%d", port);
    rc = s_cli(&out, &err, "--timeout 0.5 jobs");
    s_env[0] = '\0';
    snprintf(want, sizeof want,
             "tessera: cannot reach master at tcp://127.0.0.1:%d (no reply in 0.5 s)\n",
             port);
    assert_int_equal(rc, 3);
    assert_string_equal(err, want);
    free(out);
    free(err);
}

/* A frame set that parses to nothing is refused before any connection. */
static void test_bad_frames_before_upload(void **state)
{
    (void)state;
    char path[512];
    snprintf(path, sizeof path, "%s/any.tar", s_dir);
    s_write_noise(path, 1000, 9);
    int before = s_requests();
    char *out, *err;
    int rc = s_cli(&out, &err, S_FAKE "submit any.tar --frames 5-1", s_fk.endpoint);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(err, "tessera: submit: --frames: "));
    assert_string_equal(strchr(err, '\n'), "\n"); /* one line */
    free(out);
    free(err);
    rc = s_cli(&out, &err, S_FAKE "submit any.tar --frames ','", s_fk.endpoint);
    assert_int_equal(rc, 2);
    free(out);
    free(err);
    assert_int_equal(s_requests(), before);
}

static const char *s_sub_str(const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(s_fk.last_submit, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double s_sub_num(const char *name, int index)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(s_fk.last_submit, name);
    if (index >= 0)
        v = cJSON_GetArrayItem(v, index);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

/* A folder is packed, uploaded in chunks within the credit window, and
 * submitted with the defaults; the temporary archive is gone afterwards. */
static void test_submit_folder(void **state)
{
    (void)state;
    char path[512];
    snprintf(path, sizeof path, "%s/orbit", s_dir);
    tsr_mkdir_p(path);
    snprintf(path, sizeof path, "%s/orbit/scene.json", s_dir);
    assert_int_equal(tsr_write_file_atomic(path, "{}", 2), 0);
    snprintf(path, sizeof path, "%s/orbit/texture.bin", s_dir);
    s_write_noise(path, 700 * 1024, 1); /* incompressible: ~11 chunks */

    int chunks0 = s_fk.chunks;
    char *out, *err;
    int rc = s_cli(&out, &err, S_FAKE "submit orbit/ --frames 1-3 --tiles 2x2 --json",
                   s_fk.endpoint);
    assert_int_equal(rc, 0);
    assert_string_equal(err, "");
    assert_string_equal(out, "{\"id\": 100}\n");
    free(out);
    free(err);

    pthread_mutex_lock(&s_fk.lock);
    assert_true(s_fk.chunks - chunks0 >= 10);
    assert_true(s_fk.max_chunks_batch >= 2);        /* pipelined ... */
    assert_true(s_fk.max_chunks_batch <= S_CREDIT); /* ... within the window */
    assert_string_equal(s_sub_str("name"), "orbit");
    assert_string_equal(s_sub_str("renderer"), "builtin");
    assert_string_equal(s_sub_str("scene"), "scene.json");
    assert_string_equal(s_sub_str("frames"), "1-3");
    assert_string_equal(s_sub_str("outputs"), "image");
    assert_null(s_sub_str("command"));
    assert_true(s_sub_num("tiles", 0) == 2 && s_sub_num("tiles", 1) == 2);
    assert_true(s_sub_num("chunk", -1) == 1);
    assert_true(s_sub_num("priority", -1) == 50);
    assert_null(cJSON_GetObjectItemCaseSensitive(s_fk.last_submit, "size"));
    assert_null(cJSON_GetObjectItemCaseSensitive(s_fk.last_submit, "max_attempts"));
    assert_null(cJSON_GetObjectItemCaseSensitive(s_fk.last_submit, "gpu"));
    assert_null(cJSON_GetObjectItemCaseSensitive(s_fk.last_submit, "requires"));
    assert_null(cJSON_GetObjectItemCaseSensitive(s_fk.last_submit, "cycles_device"));
    /* What arrived is what was named. */
    struct s_blob *b = s_blob_find(s_sub_str("archive"));
    assert_non_null(b);
    char got[TSR_HASH_HEX];
    tsr_hash_buf(b->data, b->size, got);
    assert_string_equal(got, b->hash);
    pthread_mutex_unlock(&s_fk.lock);

    /* The packed archive was removed. */
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s/tmp", s_dir);
    DIR *d = opendir(tmp);
    struct dirent *e;
    int left = 0;
    while ((e = readdir(d)) != NULL)
        left += e->d_name[0] != '.';
    closedir(d);
    assert_int_equal(left, 0);
}

/* An archive with every flag; then the same archive again: no bytes sent. */
static void test_submit_archive_and_dedup(void **state)
{
    (void)state;
    char path[512];
    snprintf(path, sizeof path, "%s/shot.tar.gz", s_dir);
    s_write_noise(path, 200 * 1024 + 17, 2);
    char *out, *err;
    int rc =
        s_cli(&out, &err,
              S_FAKE "submit shot.tar.gz --renderer command --command 'render {frame}' "
                     "--size 320x240 --priority 70 --chunk 2 --frames 1-10x3 "
                     "--max-attempts 3 --timeout-task 60 --outputs none",
              s_fk.endpoint);
    assert_int_equal(rc, 0);
    assert_string_equal(err, "");
    assert_int_equal(strncmp(out, "submitted job ", 14), 0);
    free(out);
    free(err);
    pthread_mutex_lock(&s_fk.lock);
    assert_string_equal(s_sub_str("name"), "shot");
    assert_string_equal(s_sub_str("renderer"), "command");
    assert_string_equal(s_sub_str("command"), "render {frame}");
    assert_null(s_sub_str("scene")); /* the command renderer has no default scene */
    assert_string_equal(s_sub_str("outputs"), "none");
    assert_true(s_sub_num("size", 0) == 320 && s_sub_num("size", 1) == 240);
    assert_true(s_sub_num("priority", -1) == 70);
    assert_true(s_sub_num("chunk", -1) == 2);
    assert_true(s_sub_num("max_attempts", -1) == 3);
    assert_true(s_sub_num("timeout_s", -1) == 60);
    assert_true(s_sub_num("tiles", 0) == 1 && s_sub_num("tiles", 1) == 1);
    char want[TSR_HASH_HEX];
    assert_int_equal(tsr_hash_file(path, want, NULL), 0);
    assert_string_equal(s_sub_str("archive"), want);
    int chunks0 = s_fk.chunks;
    pthread_mutex_unlock(&s_fk.lock);

    rc = s_cli(&out, &err, S_FAKE "submit shot.tar.gz --name again", s_fk.endpoint);
    assert_int_equal(rc, 0);
    assert_string_equal(err, "");
    pthread_mutex_lock(&s_fk.lock);
    assert_int_equal(s_fk.chunks, chunks0); /* the master had it */
    assert_string_equal(s_sub_str("name"), "again");
    assert_string_equal(s_sub_str("archive"), want);
    pthread_mutex_unlock(&s_fk.lock);
    char line[64];
    snprintf(line, sizeof line, "submitted job %d\n", 100 + s_fk.nsubs - 1);
    assert_string_equal(out, line);
    free(out);
    free(err);

    /* Blender on GPUs: the device and the features travel as given. */
    rc = s_cli(&out, &err,
               S_FAKE "submit shot.tar.gz --renderer blender --scene shots/a.blend "
                      "--size 64x48 --gpu --cycles-device optix --require blender:oidn "
                      "--require cycles:optix",
               s_fk.endpoint);
    assert_int_equal(rc, 0);
    assert_string_equal(err, "");
    free(out);
    free(err);
    pthread_mutex_lock(&s_fk.lock);
    assert_string_equal(s_sub_str("renderer"), "blender");
    assert_string_equal(s_sub_str("scene"), "shots/a.blend");
    assert_string_equal(s_sub_str("cycles_device"), "OPTIX");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(s_fk.last_submit, "gpu")));
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(s_fk.last_submit, "requires");
    assert_int_equal(cJSON_GetArraySize(req), 2);
    assert_string_equal(cJSON_GetArrayItem(req, 0)->valuestring, "blender:oidn");
    assert_string_equal(cJSON_GetArrayItem(req, 1)->valuestring, "cycles:optix");
    pthread_mutex_unlock(&s_fk.lock);
}

/* --wait follows the job: exit 0 when done, 1 when it failed. */
static void test_submit_wait(void **state)
{
    (void)state;
    char *out, *err;
    int rc =
        s_cli(&out, &err, S_FAKE "submit shot.tar.gz --wait --name fine", s_fk.endpoint);
    assert_int_equal(rc, 0);
    int id = 100 + s_fk.nsubs - 1;
    char want[128];
    snprintf(want, sizeof want, "submitted job %d\njob %d done: 3 frames in 1m00s\n", id,
             id);
    assert_string_equal(out, want);
    free(out);
    free(err);

    rc = s_cli(&out, &err, S_FAKE "submit shot.tar.gz --wait --json --name doomed",
               s_fk.endpoint);
    assert_int_equal(rc, 1);
    cJSON *job = cJSON_Parse(out);
    assert_non_null(job);
    assert_true(cJSON_GetObjectItem(job, "id")->valuedouble == 100 + s_fk.nsubs - 1);
    assert_string_equal(cJSON_GetObjectItem(job, "state")->valuestring, "failed");
    cJSON_Delete(job);
    free(out);
    free(err);
}

static void test_status_jobs_workers(void **state)
{
    (void)state;
    char *out, *err;
    /* The master's own words for an unknown job. */
    int rc = s_cli(&out, &err, S_FAKE "status 99", s_fk.endpoint);
    assert_int_equal(rc, 1);
    assert_string_equal(err, "tessera: status: no such job 99\n");
    free(out);
    free(err);

    rc = s_cli(&out, &err, S_FAKE "status 7 --json", s_fk.endpoint);
    assert_int_equal(rc, 0);
    cJSON *job = cJSON_Parse(out);
    assert_non_null(job);
    assert_true(cJSON_GetObjectItem(job, "id")->valuedouble == 7);
    assert_string_equal(cJSON_GetObjectItem(job, "name")->valuestring, "orbit");
    assert_non_null(cJSON_GetObjectItem(job, "hubs"));
    cJSON_Delete(job);
    free(out);
    free(err);

    rc = s_cli(&out, &err, S_FAKE "status 8", s_fk.endpoint);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "job 8  partial\n"));
    assert_non_null(strstr(out, "1/3 done"));
    assert_non_null(strstr(out, "qingyang: 4 done, 2 running"));
    assert_non_null(
        strstr(out, "\nwaiting    no live worker has the feature 'blender:oidn'\n"));
    free(out);
    free(err);

    rc = s_cli(&out, &err, S_FAKE "jobs", s_fk.endpoint);
    assert_int_equal(rc, 0);
    assert_int_equal(strncmp(out, "ID  NAME     STATE    FRAMES  TASKS  PRIO  AGE\n", 47),
                     0);
    assert_non_null(strstr(out, "orbit"));
    assert_non_null(strstr(out, "1m30s"));
    free(out);
    free(err);

    rc = s_cli(&out, &err, S_FAKE "status", s_fk.endpoint); /* no JOB: the jobs table */
    assert_int_equal(rc, 0);
    assert_int_equal(strncmp(out, "ID  NAME", 8), 0);
    free(out);
    free(err);

    rc = s_cli(&out, &err, S_FAKE "jobs --json", s_fk.endpoint);
    assert_int_equal(rc, 0);
    cJSON *arr = cJSON_Parse(out);
    assert_true(cJSON_IsArray(arr));
    assert_int_equal(cJSON_GetArraySize(arr), 5);
    cJSON_Delete(arr);
    free(out);
    free(err);

    rc = s_cli(&out, &err, S_FAKE "workers", s_fk.endpoint);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out,
                           "NAME    HUB       STATE  SLOTS  RUNNING  DONE  FAILED  GPUS  "
                           "SANDBOX  LAST-SEEN\n"));
    assert_non_null(strstr(out,
                           "node-3  qingyang  busy   4      2        17    1       2     "
                           "none     0.4s ago\n"));
    free(out);
    free(err);

    rc = s_cli(&out, &err, S_FAKE "workers --json", s_fk.endpoint);
    assert_int_equal(rc, 0);
    arr = cJSON_Parse(out);
    assert_true(cJSON_IsArray(arr));
    cJSON_Delete(arr);
    free(out);
    free(err);
}

static void test_cancel(void **state)
{
    (void)state;
    char *out, *err;
    int rc = s_cli(&out, &err, S_FAKE "cancel 8", s_fk.endpoint);
    assert_int_equal(rc, 0);
    assert_string_equal(out, "cancelled job 8\n");
    free(out);
    free(err);
    rc = s_cli(&out, &err, S_FAKE "cancel 7", s_fk.endpoint); /* already done */
    assert_int_equal(rc, 1);
    assert_string_equal(err, "tessera: cancel: job 7 had already finished\n");
    free(out);
    free(err);
    rc = s_cli(&out, &err, S_FAKE "cancel 99", s_fk.endpoint);
    assert_int_equal(rc, 1);
    assert_string_equal(err, "tessera: cancel: no such job 99\n");
    free(out);
    free(err);
}

/* Piped, watch prints plain lines (no escape codes) and ends with the job. */
static void test_watch(void **state)
{
    (void)state;
    char *out, *err;
    int rc = s_cli(&out, &err, S_FAKE "watch 10 --interval 0.05", s_fk.endpoint);
    assert_int_equal(rc, 0);
    assert_null(strchr(out, '\033'));
    assert_non_null(strstr(out, "job 10 running: 0/3 frames (0%)"));
    assert_non_null(strstr(out, "hubs: qingyang"));
    assert_non_null(strstr(out, "job 10 done: 3/3 frames (100%)"));
    const char *last = out + strlen(out) - 1;
    while (last > out && last[-1] != '\n')
        last--;
    assert_string_equal(last, "job 10 done: 3 frames in 1m00s\n");
    free(out);
    free(err);

    /* On a terminal the view is redrawn in place. */
    pthread_mutex_lock(&s_fk.lock);
    s_fk.watch_calls = 0;
    pthread_mutex_unlock(&s_fk.lock);
    char cmd[2048], path[512];
    snprintf(path, sizeof path, "%s/tty.out", s_dir);
    snprintf(cmd, sizeof cmd,
             "script -qec \"'%s' --master %s watch 10 --interval 0.05\" /dev/null >'%s' "
             "2>&1 </dev/null",
             s_bin, s_fk.endpoint, path);
    int st = system(cmd);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
        char *tty = s_slurp(path);
        assert_non_null(strstr(tty, "\033[4A"));   /* cursor up over the last view */
        assert_non_null(strstr(tty, "\r\033[2K")); /* each line cleared */
        assert_non_null(strstr(tty, "[##########...................."));
        assert_non_null(strstr(tty, "hub qingyang"));
        assert_non_null(strstr(tty, "job 10 done: 3 frames in 1m00s"));
        free(tty);
    } else {
        print_message("script(1) failed to run; terminal view not checked\n");
    }

    rc = s_cli(&out, &err, S_FAKE "watch 11", s_fk.endpoint);
    assert_int_equal(rc, 1);
    assert_non_null(
        strstr(out, "job 11 failed: task 2 failed 3 times: renderer crashed\n"));
    free(out);
    free(err);
}

/* Checks fetch's folder: frames, sums (SHA256SUMS, or SHA256SUMS.partial
 * for a partial fetch) that sha256sum accepts, the manifest, the contact
 * sheet. */
static void s_check_fetched_as(const char *dir, int nframes, const char *sums,
                               const char *manifest)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cd '%s/%s' && sha256sum --quiet -c %s >/dev/null", s_dir,
             dir, sums);
    assert_int_equal(system(cmd), 0);
    char path[512];
    snprintf(path, sizeof path, "%s/%s/%s", s_dir, dir, manifest);
    char *text = s_slurp(path);
    cJSON *m = cJSON_Parse(text);
    free(text);
    assert_non_null(m);
    const cJSON *frames = cJSON_GetObjectItem(m, "frames");
    assert_int_equal(cJSON_GetArraySize(frames), nframes);
    const cJSON *f;
    cJSON_ArrayForEach(f, frames)
    {
        const char *file = cJSON_GetObjectItem(f, "file")->valuestring;
        char fp[512], got[TSR_HASH_HEX];
        unsigned long long size;
        snprintf(fp, sizeof fp, "%s/%s/%s", s_dir, dir, file);
        assert_int_equal(tsr_hash_file(fp, got, &size), 0);
        assert_string_equal(got, cJSON_GetObjectItem(f, "sha256")->valuestring);
        assert_true(cJSON_GetObjectItem(f, "size")->valuedouble == (double)size);
        assert_true(cJSON_GetObjectItem(f, "width")->valuedouble == 64);
        assert_true(cJSON_GetObjectItem(f, "height")->valuedouble == 32);
        assert_string_equal(cJSON_GetObjectItem(f, "worker")->valuestring, "node-3");
        assert_string_equal(cJSON_GetObjectItem(f, "hub")->valuestring, "qingyang");
        assert_true(cJSON_GetObjectItem(f, "render_ms")->valuedouble == 1234);
        assert_true(
            cJSON_IsArray(cJSON_GetObjectItem(cJSON_GetObjectItem(f, "stats"), "mean")));
    }
    cJSON_Delete(m);
    struct tsr_image_info info;
    char err[256];
    snprintf(path, sizeof path, "%s/%s/contact_sheet.png", s_dir, dir);
    if (strcmp(manifest, "manifest.json") != 0) {
        assert_false(tsr_path_exists(path)); /* a partial fetch makes no sheet */
        return;
    }
    assert_int_equal(tsr_image_probe(path, NULL, &info, err, sizeof err), 0);
    /* It is the master's sheet, brought down whole. */
    char got[TSR_HASH_HEX];
    assert_int_equal(tsr_hash_file(path, got, NULL), 0);
    assert_string_equal(got, s_sheet_hash);
}

static void s_check_fetched(const char *dir, int nframes)
{
    s_check_fetched_as(dir, nframes, "SHA256SUMS", "manifest.json");
}

static void test_fetch_done_job(void **state)
{
    (void)state;
    char *out, *err;
    int gets0 = s_fk.gets;
    int rc = s_cli(&out, &err, S_FAKE "fetch 7 -o out7", s_fk.endpoint);
    assert_int_equal(rc, 0);
    assert_string_equal(err, "");
    assert_int_equal(strncmp(out, "fetched 3 of 3 frames of job 7 (orbit) into out7", 48),
                     0);
    free(out);
    free(err);
    pthread_mutex_lock(&s_fk.lock);
    assert_true(s_fk.max_gets_batch >= 2); /* GETs are pipelined */
    assert_true(s_fk.max_gets_batch <= 8);
    int gets1 = s_fk.gets;
    pthread_mutex_unlock(&s_fk.lock);
    assert_true(gets1 - gets0 > 5); /* the large frame came in short pieces */

    char path[512];
    const char *names[] = {"frame_-001.exr", "frame_0001.exr", "frame_0002.exr"};
    for (int i = 0; i < 3; i++) {
        char got[TSR_HASH_HEX];
        snprintf(path, sizeof path, "%s/out7/%s", s_dir, names[i]);
        assert_int_equal(tsr_hash_file(path, got, NULL), 0);
        assert_string_equal(got, s_frame_hash[i]);
    }
    snprintf(path, sizeof path, "%s/out7/SHA256SUMS", s_dir);
    char *sums = s_slurp(path), want[512];
    snprintf(want, sizeof want,
             "%s  frame_-001.exr\n%s  frame_0001.exr\n%s  frame_0002.exr\n",
             s_frame_hash[0], s_frame_hash[1], s_frame_hash[2]);
    assert_string_equal(sums, want);
    free(sums);
    s_check_fetched("out7", 3);
    snprintf(path, sizeof path, "%s/out7/manifest.json", s_dir);
    char *text = s_slurp(path);
    cJSON *m = cJSON_Parse(text);
    assert_true(cJSON_GetObjectItem(m, "job")->valuedouble == 7);
    assert_string_equal(cJSON_GetObjectItem(m, "name")->valuestring, "orbit");
    assert_true(cJSON_GetObjectItem(
                    cJSON_GetArrayItem(cJSON_GetObjectItem(m, "frames"), 0), "frame")
                    ->valuedouble == -1);
    cJSON_Delete(m);
    free(text);

    /* Again: the frames are there with the right hashes; nothing moves. */
    rc = s_cli(&out, &err, S_FAKE "fetch 7 --output out7", s_fk.endpoint);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "3 already there"));
    assert_int_equal(s_fk.gets, gets1);
    free(out);
    free(err);
}

/* A job still running: what is done is fetched, the rest listed, exit 1. */
static void test_fetch_partial(void **state)
{
    (void)state;
    char *out, *err;
    int rc = s_cli(&out, &err, S_FAKE "fetch 8 -o out8", s_fk.endpoint);
    assert_int_equal(rc, 1);
    assert_string_equal(err, "tessera: warning: fetch: job 8: 2 frames not fetched: 2-3\n"
                             "tessera: fetch: job 8 is running, not done: fetched 1 of 3 "
                             "frames\n");
    char path[512];
    snprintf(path, sizeof path, "%s/out8/frame_0001.exr", s_dir);
    assert_true(tsr_path_exists(path));
    snprintf(path, sizeof path, "%s/out8/frame_0002.exr", s_dir);
    assert_false(tsr_path_exists(path));
    /* Partial: the sums and manifest say so in their names. */
    s_check_fetched_as("out8", 1, "SHA256SUMS.partial", "manifest.partial.json");
    snprintf(path, sizeof path, "%s/out8/SHA256SUMS", s_dir);
    assert_false(tsr_path_exists(path));
    free(out);
    free(err);
}

/* Bytes that do not match the hash never land under a frame's name. */
static void test_fetch_hash_mismatch(void **state)
{
    (void)state;
    char *out, *err;
    int rc = s_cli(&out, &err, S_FAKE "fetch 9 -o out9", s_fk.endpoint);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(err,
                           "tessera: fetch: frame 1: what arrived does not match its "
                           "hash"));
    char path[512];
    snprintf(path, sizeof path, "%s/out9", s_dir);
    DIR *d = opendir(path);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        assert_null(strstr(e->d_name, "frame_")); /* no frame, no leftover part file */
    }
    closedir(d);
    free(out);
    free(err);
    rc = s_cli(&out, &err, S_FAKE "fetch 99 -o out99", s_fk.endpoint);
    assert_int_equal(rc, 1);
    assert_string_equal(err, "tessera: fetch: no such job 99\n");
    free(out);
    free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_unreachable),
        cmocka_unit_test(test_bad_frames_before_upload),
        cmocka_unit_test(test_submit_folder),
        cmocka_unit_test(test_submit_archive_and_dedup),
        cmocka_unit_test(test_submit_wait),
        cmocka_unit_test(test_status_jobs_workers),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_watch),
        cmocka_unit_test(test_fetch_done_job),
        cmocka_unit_test(test_fetch_partial),
        cmocka_unit_test(test_fetch_hash_mismatch),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
