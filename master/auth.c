/*
 * auth.c: the master's ZAP handler (ZeroMQ RFC 27) and the key sets it
 * answers from (auth.h).
 *
 * One thread owns a REP socket bound to inproc://zeromq.zap.01 on the
 * master's context; libzmq sends it one request per CURVE handshake on
 * either endpoint and waits for the verdict. The thread also reads the key
 * folders every AUTH_RESCAN_MS and whenever SIGHUP asks, and swaps in the
 * new set under a mutex, which the reactor takes too to check that the key
 * of each message it reads is still admitted. A handshake costs one binary
 * search; so does a message.
 *
 * An admitted key gets the User-Id "studio:NAME", "operator:NAME" or
 * "worker:NAME", and its Z85 public key as the metadata property X-Key, so
 * that every message tells the reactor both who sent it and with which key
 * (a key replaced under the same name must not keep its old connections).
 */
#include "auth.h"

#include "tessera/curve.h"
#include "tessera/error.h"
#include "tessera/log.h"
#include "tessera/util.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define S_ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define S_POLL_MS 200          /* how soon a SIGHUP or a stop is noticed */
#define S_MAX_KEYS 100000      /* keys read from one folder at most */
#define S_LOG_BURST 20         /* refusals logged per S_LOG_WINDOW_MS */
#define S_LOG_WINDOW_MS 10000
#define S_SELFTEST "self-test" /* the address of auth_start's own request */

enum { S_CLIENTS = 0, S_WORKERS = 1 };

/* One admitted key. */
struct s_key {
    char z85[TSR_KEY_Z85];   /* public key, Z85 */
    char user[AUTH_USER_MAX]; /* the User-Id it is given */
    int domain;              /* S_CLIENTS or S_WORKERS */
};

/* A key folder and what the last reading of it found wrong. */
struct s_dir {
    const char *role;        /* "studio", "operator", "worker" */
    int domain;              /* the endpoint its keys open */
    char path[1024];         /* the folder, "" when not configured */
    int failed;              /* the last reading failed (logged once) */
    char bad[1024];          /* files refused last time (logged on change) */
};

struct auth {
    void *rep;               /* the ZAP REP socket (the thread's) */
    pthread_t thread;        /* the handler */
    int running;             /* thread started */
    atomic_int stop;         /* ask the thread to end */
    struct s_dir dirs[3];    /* studio, operator, worker folders */
    pthread_mutex_t lock;    /* guards keys and nkeys */
    struct s_key *keys;      /* admitted keys, sorted by (domain, z85) */
    size_t nkeys;            /* entries in keys */
    int64_t log_window_ms;   /* start of the current refusal-log window */
    int logged;              /* refusals logged in it */
    int suppressed;          /* refusals not logged in it */
};

static volatile sig_atomic_t s_rescan;

void auth_request_rescan(void)
{
    s_rescan = 1;
}

static int s_cmp(const void *a, const void *b)
{
    const struct s_key *x = a, *y = b;
    if (x->domain != y->domain)
        return x->domain - y->domain;
    return strcmp(x->z85, y->z85);
}

/* Appends one folder's keys to *keys. Returns 0, or the error of reading
 * the folder itself (a file that is not a key is reported and skipped). */
static int s_read_dir(struct s_dir *d, struct s_key **keys, size_t *n, size_t *cap,
                      char *err, size_t errlen)
{
    if (!d->path[0])
        return 0;
    DIR *dir = opendir(d->path);
    if (!dir) {
        snprintf(err, errlen, "cannot read %s key folder '%s': %s", d->role, d->path,
                 strerror(errno));
        return errno == ENOENT ? TSR_ENOTFOUND : TSR_EIO;
    }
    char bad[sizeof d->bad] = "";
    size_t count = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.' || len < 5 || strcmp(e->d_name + len - 4, ".pub") != 0)
            continue;
        char name[TSR_KEY_NAME_MAX + 1], path[2048], why[512];
        if (tsr_key_name_of(e->d_name, name) != 0) {
            snprintf(why, sizeof why, "'%s' (not a key name)", e->d_name);
        } else if (snprintf(path, sizeof path, "%s/%s", d->path, e->d_name) >=
                   (int)sizeof path) {
            snprintf(why, sizeof why, "'%s' (path too long)", e->d_name);
        } else if (count >= S_MAX_KEYS) {
            snprintf(why, sizeof why, "'%s' (more than %d keys)", e->d_name, S_MAX_KEYS);
        } else {
            char pub[TSR_KEY_Z85];
            if (tsr_key_load_public(path, pub, why, sizeof why) == 0) {
                if (*n == *cap) {
                    size_t nc = *cap ? *cap * 2 : 64;
                    struct s_key *k = realloc(*keys, nc * sizeof *k);
                    if (!k) {
                        closedir(dir);
                        snprintf(err, errlen, "out of memory reading keys");
                        return TSR_ENOMEM;
                    }
                    *keys = k;
                    *cap = nc;
                }
                struct s_key *k = &(*keys)[(*n)++];
                memcpy(k->z85, pub, sizeof k->z85);
                snprintf(k->user, sizeof k->user, "%s:%s", d->role, name);
                k->domain = d->domain;
                count++;
                continue;
            }
        }
        size_t used = strlen(bad);
        snprintf(bad + used, sizeof bad - used, "%s%s", used ? "; " : "", why);
    }
    closedir(dir);
    if (strcmp(bad, d->bad) != 0) {
        if (bad[0])
            tsr_log(TSR_LOG_WARN, "auth", "%s keys skipped: %s", d->role, bad);
        snprintf(d->bad, sizeof d->bad, "%s", bad);
    }
    return 0;
}

/* Logs the keys that came and went between two sorted sets. A key whose
 * file was renamed counts as revoked under its old name and admitted under
 * the new one. */
static void s_log_changes(const struct s_key *old, size_t nold, const struct s_key *now,
                          size_t nnow)
{
    size_t i = 0, j = 0;
    while (i < nold || j < nnow) {
        int c = i == nold ? 1 : j == nnow ? -1 : s_cmp(&old[i], &now[j]);
        int renamed = c == 0 && strcmp(old[i].user, now[j].user) != 0;
        if (c < 0 || renamed)
            tsr_log(TSR_LOG_INFO, "auth", "key of '%s' revoked (%.8s...)", old[i].user,
                    old[i].z85);
        if (c > 0 || renamed)
            tsr_log(TSR_LOG_INFO, "auth", "key of '%s' admitted (%.8s...)", now[j].user,
                    now[j].z85);
        if (c <= 0)
            i++;
        if (c >= 0)
            j++;
    }
}

/*
 * Reads every folder and swaps the new set in. At start (first) a folder
 * that cannot be read is an error; later it only empties that folder's
 * share of the set (its keys are shut out until it can be read again).
 */
static int s_scan(struct auth *a, int first, char *err, size_t errlen)
{
    struct s_key *keys = NULL;
    size_t n = 0, cap = 0;
    for (int i = 0; i < 3; i++) {
        struct s_dir *d = &a->dirs[i];
        char why[1200] = "";
        int rc = s_read_dir(d, &keys, &n, &cap, why, sizeof why);
        if (rc != 0 && (first || rc == TSR_ENOMEM)) {
            snprintf(err, errlen, "%s", why);
            free(keys);
            return rc;
        }
        if (rc != 0 && !d->failed)
            tsr_log(TSR_LOG_ERROR, "auth", "%s; its keys are shut out until it can be "
                                           "read", why);
        else if (rc == 0 && d->failed)
            tsr_log(TSR_LOG_INFO, "auth", "%s key folder '%s' readable again", d->role,
                    d->path);
        d->failed = rc != 0;
    }
    qsort(keys, n, sizeof *keys, s_cmp);
    /* One public key in two folders of one endpoint: keep the first (studio
     * before operator: the lesser right wins a doubt) and say so. */
    size_t w = 0;
    for (size_t r = 0; r < n; r++) {
        if (w > 0 && s_cmp(&keys[w - 1], &keys[r]) == 0) {
            if (first || strcmp(keys[w - 1].user, keys[r].user) != 0)
                tsr_log(TSR_LOG_WARN, "auth", "one key is both '%s' and '%s'; it is "
                                              "admitted as '%s' only",
                        keys[w - 1].user, keys[r].user, keys[w - 1].user);
            continue;
        }
        keys[w++] = keys[r];
    }
    n = w;
    pthread_mutex_lock(&a->lock);
    struct s_key *old = a->keys;
    size_t nold = a->nkeys;
    a->keys = keys;
    a->nkeys = n;
    pthread_mutex_unlock(&a->lock);
    if (first) {
        size_t count[3] = {0, 0, 0};
        for (size_t i = 0; i < n; i++)
            count[keys[i].domain == S_WORKERS ? 2 : strncmp(keys[i].user, "studio:", 7) == 0 ? 0 : 1]++;
        tsr_log(TSR_LOG_INFO, "auth", "admitting %zu studio, %zu operator and %zu worker keys",
                count[0], count[1], count[2]);
    } else {
        s_log_changes(old, nold, keys, n);
    }
    free(old);
    return 0;
}

/* Finds key z85 of domain in the current set; the caller holds the lock. */
static const struct s_key *s_find(const struct auth *a, int domain, const char *z85)
{
    struct s_key probe;
    probe.domain = domain;
    snprintf(probe.z85, sizeof probe.z85, "%s", z85);
    return bsearch(&probe, a->keys, a->nkeys, sizeof *a->keys, s_cmp);
}

int auth_admits(struct auth *a, int workers, const char *user, const char *key)
{
    if (!a || !user[0] || strlen(key) != TSR_KEY_Z85 - 1)
        return 0;
    pthread_mutex_lock(&a->lock);
    const struct s_key *k = s_find(a, workers ? S_WORKERS : S_CLIENTS, key);
    int ok = k && strcmp(k->user, user) == 0;
    pthread_mutex_unlock(&a->lock);
    return ok;
}

/* Logs a refused handshake, at most S_LOG_BURST per window: a stranger
 * knocking in a loop must not fill the log. */
static void s_log_refusal(struct auth *a, const char *domain, const char *address,
                          const char *z85, const char *why)
{
    if (strcmp(address, S_SELFTEST) == 0)
        return;
    int64_t now = tsr_now_ms();
    if (now - a->log_window_ms > S_LOG_WINDOW_MS) {
        if (a->suppressed)
            tsr_log(TSR_LOG_WARN, "auth", "%d more refused handshakes not logged",
                    a->suppressed);
        a->log_window_ms = now;
        a->logged = a->suppressed = 0;
    }
    if (a->logged >= S_LOG_BURST) {
        a->suppressed++;
        return;
    }
    a->logged++;
    tsr_log(TSR_LOG_WARN, "auth", "refused key %.8s... from %s on the %s endpoint: %s", z85,
            address[0] ? address : "?", strcmp(domain, "workers") == 0 ? "worker" : "client",
            why);
}

/* A frame's bytes as a bounded string ("" when longer than size - 1). */
static void s_frame_str(zmq_msg_t *f, char *out, size_t size)
{
    size_t len = zmq_msg_size(f);
    if (len >= size)
        len = 0;
    memcpy(out, zmq_msg_data(f), len);
    out[len] = '\0';
}

/* Answers one ZAP request waiting on the REP socket. */
static void s_handle(struct auth *a)
{
    zmq_msg_t f[8];
    size_t n = 0;
    int more = 1, extra = 0;
    while (more) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, a->rep, 0) < 0) {
            zmq_msg_close(&part);
            if (zmq_errno() == EINTR)
                continue;
            break;
        }
        more = zmq_msg_more(&part);
        if (n < 8) {
            zmq_msg_init(&f[n]);
            zmq_msg_move(&f[n++], &part);
        } else {
            extra = 1;
        }
        zmq_msg_close(&part);
    }
    char version[8] = "", domain[32] = "", address[64] = "", mech[16] = "";
    char z85[TSR_KEY_Z85] = "";
    const char *status = "400", *text = "key not admitted", *user = "";
    if (n >= 1)
        s_frame_str(&f[0], version, sizeof version);
    if (n >= 7 && !extra) {
        s_frame_str(&f[2], domain, sizeof domain);
        s_frame_str(&f[3], address, sizeof address);
        s_frame_str(&f[5], mech, sizeof mech);
    }
    struct s_key found;
    int admitted = 0;
    if (strcmp(version, "1.0") != 0 || n != 7 || extra) {
        status = "500";
        text = "malformed ZAP request";
    } else if (strcmp(mech, "CURVE") != 0 || zmq_msg_size(&f[6]) != 32) {
        text = "only CURVE keys are admitted";
    } else if (strcmp(domain, "clients") != 0 && strcmp(domain, "workers") != 0) {
        text = "unknown ZAP domain";
    } else {
        zmq_z85_encode(z85, zmq_msg_data(&f[6]), 32);
        pthread_mutex_lock(&a->lock);
        const struct s_key *k =
            s_find(a, strcmp(domain, "workers") == 0 ? S_WORKERS : S_CLIENTS, z85);
        if (k) {
            found = *k;
            admitted = 1;
        }
        pthread_mutex_unlock(&a->lock);
        if (admitted) {
            status = "200";
            text = "OK";
            user = found.user;
        } else {
            text = strcmp(domain, "workers") == 0
                       ? "not in the worker key folder"
                       : "not in the studio or operator key folders";
        }
    }
    if (!admitted)
        s_log_refusal(a, domain, address, z85[0] ? z85 : "(none)", text);
    /* Metadata (ZMTP property list): X-Key = the Z85 public key. */
    unsigned char meta[1 + 5 + 4 + TSR_KEY_Z85];
    size_t mlen = 0;
    if (admitted) {
        meta[mlen++] = 5;
        memcpy(meta + mlen, "X-Key", 5);
        mlen += 5;
        uint32_t vlen = TSR_KEY_Z85 - 1;
        meta[mlen++] = (unsigned char)(vlen >> 24);
        meta[mlen++] = (unsigned char)(vlen >> 16);
        meta[mlen++] = (unsigned char)(vlen >> 8);
        meta[mlen++] = (unsigned char)vlen;
        memcpy(meta + mlen, found.z85, vlen);
        mlen += vlen;
    }
    /* A REP must answer every request, even one it cannot read. */
    zmq_send(a->rep, "1.0", 3, ZMQ_SNDMORE);
    if (n >= 2)
        zmq_send(a->rep, zmq_msg_data(&f[1]), zmq_msg_size(&f[1]), ZMQ_SNDMORE);
    else
        zmq_send(a->rep, "", 0, ZMQ_SNDMORE);
    zmq_send(a->rep, status, 3, ZMQ_SNDMORE);
    zmq_send(a->rep, text, strlen(text), ZMQ_SNDMORE);
    zmq_send(a->rep, user, strlen(user), ZMQ_SNDMORE);
    zmq_send(a->rep, meta, mlen, 0);
    for (size_t i = 0; i < n; i++)
        zmq_msg_close(&f[i]);
}

static void *s_thread(void *arg)
{
    struct auth *a = arg;
    int64_t next_scan = tsr_now_ms() + AUTH_RESCAN_MS;
    while (!atomic_load(&a->stop)) {
        zmq_pollitem_t item = {a->rep, 0, ZMQ_POLLIN, 0};
        int rc = zmq_poll(&item, 1, S_POLL_MS);
        if (rc < 0 && zmq_errno() != EINTR)
            break;
        if (rc > 0 && (item.revents & ZMQ_POLLIN))
            s_handle(a);
        int64_t now = tsr_now_ms();
        if (s_rescan || now >= next_scan) {
            if (s_rescan)
                tsr_log(TSR_LOG_INFO, "auth", "reading the key folders again (SIGHUP)");
            s_rescan = 0;
            char err[1200];
            if (s_scan(a, 0, err, sizeof err) != 0)
                tsr_log(TSR_LOG_ERROR, "auth", "%s", err);
            next_scan = now + AUTH_RESCAN_MS;
        }
    }
    zmq_close(a->rep);
    a->rep = NULL;
    return NULL;
}

/* Sends the handler a request for an unknown key and expects "400". */
static int s_selftest(void *zctx, char *err, size_t errlen)
{
    void *req = zmq_socket(zctx, ZMQ_REQ);
    if (!req) {
        snprintf(err, errlen, "cannot open a socket: %s", zmq_strerror(zmq_errno()));
        return TSR_EZMQ;
    }
    int ms = 5000, zero = 0;
    zmq_setsockopt(req, ZMQ_RCVTIMEO, &ms, sizeof ms);
    zmq_setsockopt(req, ZMQ_SNDTIMEO, &ms, sizeof ms);
    zmq_setsockopt(req, ZMQ_LINGER, &zero, sizeof zero);
    unsigned char nobody[32];
    memset(nobody, 0, sizeof nobody);
    const char *frames[] = {"1.0", "selftest-1", "clients", S_SELFTEST, "", "CURVE"};
    int rc = zmq_connect(req, S_ZAP_ENDPOINT);
    for (int i = 0; rc == 0 && i < 6; i++)
        rc = zmq_send(req, frames[i], strlen(frames[i]), ZMQ_SNDMORE) < 0 ? -1 : 0;
    if (rc == 0)
        rc = zmq_send(req, nobody, sizeof nobody, 0) < 0 ? -1 : 0;
    char got[7][64];
    int n = 0, more = 1;
    while (rc == 0 && more && n < 7) {
        int len = zmq_recv(req, got[n], sizeof got[n] - 1, 0);
        if (len < 0) {
            rc = -1;
            break;
        }
        got[n][len < (int)sizeof got[n] ? len : (int)sizeof got[n] - 1] = '\0';
        n++;
        size_t sz = sizeof more;
        zmq_getsockopt(req, ZMQ_RCVMORE, &more, &sz);
    }
    zmq_close(req);
    if (rc != 0 || n < 3 || strcmp(got[0], "1.0") != 0 ||
        strcmp(got[1], "selftest-1") != 0 || strcmp(got[2], "400") != 0) {
        snprintf(err, errlen, "the ZAP handler did not answer its self-test");
        return TSR_EZMQ;
    }
    return 0;
}

int auth_start(void *zctx, const struct auth_config *cfg, struct auth **out, char *err,
               size_t errlen)
{
    *out = NULL;
    struct auth *a = calloc(1, sizeof *a);
    if (!a)
        return TSR_ENOMEM;
    pthread_mutex_init(&a->lock, NULL);
    atomic_init(&a->stop, 0);
    const char *paths[3] = {cfg->studio_dir, cfg->operator_dir, cfg->worker_dir};
    const char *roles[3] = {"studio", "operator", "worker"};
    for (int i = 0; i < 3; i++) {
        a->dirs[i].role = roles[i];
        a->dirs[i].domain = i == 2 ? S_WORKERS : S_CLIENTS;
        if (paths[i] && tsr_fmt(a->dirs[i].path, sizeof a->dirs[i].path, "%s", paths[i])) {
            snprintf(err, errlen, "key folder path '%s' is too long", paths[i]);
            auth_stop(&a);
            return TSR_EINVAL;
        }
    }
    int rc = s_scan(a, 1, err, errlen);
    if (rc != 0) {
        auth_stop(&a);
        return rc;
    }
    a->rep = zmq_socket(zctx, ZMQ_REP);
    int zero = 0;
    if (!a->rep || zmq_setsockopt(a->rep, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
        zmq_bind(a->rep, S_ZAP_ENDPOINT) != 0) {
        snprintf(err, errlen, "cannot bind the ZAP handler: %s", zmq_strerror(zmq_errno()));
        auth_stop(&a);
        return TSR_EZMQ;
    }
    if (pthread_create(&a->thread, NULL, s_thread, a) != 0) {
        snprintf(err, errlen, "cannot start the ZAP handler's thread");
        auth_stop(&a);
        return TSR_ENOMEM;
    }
    a->running = 1;
    if ((rc = s_selftest(zctx, err, errlen)) != 0) {
        auth_stop(&a);
        return rc;
    }
    *out = a;
    return 0;
}

void auth_stop(struct auth **ap)
{
    struct auth *a = ap ? *ap : NULL;
    if (!a)
        return;
    if (a->running) {
        atomic_store(&a->stop, 1);
        pthread_join(a->thread, NULL);
    } else if (a->rep) {
        zmq_close(a->rep);
    }
    pthread_mutex_destroy(&a->lock);
    free(a->keys);
    free(a);
    *ap = NULL;
}
