/*
 * ratelimit.c: how fast one client may change things.
 *
 * Each change a client asks for (SUBMIT, CANCEL, PAUSE, RESUME, RETRY,
 * WORKER) writes LMDB and the event log; a client toggling pause and resume
 * in a loop wrote 26,000 events a second. Each identity has a token bucket:
 * --mutation-burst tokens (default 200), refilled at --mutation-rate a
 * second (default 50); a change takes one, and without one it is refused
 * with TSR_EBUSY and the time after which one will be there ("retry_ms").
 * The identity is the key's User-Id; on a master without keys (loopback,
 * trusted) it is the connection. Reads (STATUS, JOBS, ...) and transfers
 * (which have their own credit, peers.c) are not counted.
 *
 * The table is the reactor's. Buckets that are full again are forgotten in
 * the cron; past RATE_MAX_IDS identities at once, the newcomers share one
 * bucket.
 */
#include "master.h"

#include "tessera/error.h"
#include "tessera/log.h"
#include "tessera/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RATE_MAX_IDS 4096

/* One identity's bucket. */
struct rate_bucket {
    char id[80];      /* User-Id, or "peer:" and the routing id in hex */
    double tokens;    /* changes it may make now */
    int64_t last_ms;  /* when tokens was last brought up to date */
    uint64_t refused; /* changes refused since it was last full */
};

struct ratelimit {
    struct rate_bucket *b; /* the buckets (owned) */
    size_t n, cap;         /* count and capacity */
};

static const char *const s_mutating[] = {"SUBMIT", "CANCEL", "PAUSE", "RESUME",
                                         "RETRY",  "WORKER", NULL};

static int s_is_mutating(const char *cmd)
{
    for (int i = 0; s_mutating[i]; i++)
        if (strcmp(cmd, s_mutating[i]) == 0)
            return 1;
    return 0;
}

static void s_identity(const struct tsr_msg *msg, char *out, size_t outlen)
{
    if (msg->user[0]) {
        snprintf(out, outlen, "%s", msg->user);
        return;
    }
    size_t k = (size_t)snprintf(out, outlen, "peer:");
    for (size_t i = 0; i < msg->peer_len && k + 3 <= outlen; i++)
        k += (size_t)snprintf(out + k, outlen - k, "%02x", msg->peer[i]);
}

static void s_refill(const struct master *m, struct rate_bucket *b, int64_t now)
{
    double burst = m->cfg.mutation_burst;
    b->tokens += (double)(now - b->last_ms) * m->cfg.mutation_rate / 1000.0;
    if (b->tokens > burst)
        b->tokens = burst;
    b->last_ms = now;
}

static struct rate_bucket *s_bucket(struct master *m, const char *id, int64_t now)
{
    struct ratelimit *r = m->rate;
    if (!r) {
        r = m->rate = calloc(1, sizeof *r);
        if (!r)
            return NULL;
    }
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->b[i].id, id) == 0)
            return &r->b[i];
    if (r->n == RATE_MAX_IDS)
        id = "(many)"; /* newcomers past the table share one bucket */
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->b[i].id, id) == 0)
            return &r->b[i];
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        struct rate_bucket *nb = realloc(r->b, cap * sizeof *nb);
        if (!nb)
            return NULL;
        r->b = nb;
        r->cap = cap;
    }
    struct rate_bucket *b = &r->b[r->n++];
    memset(b, 0, sizeof *b);
    snprintf(b->id, sizeof b->id, "%s", id);
    b->tokens = m->cfg.mutation_burst;
    b->last_ms = now;
    return b;
}

int ratelimit_admit(struct master *m, const struct tsr_msg *msg, int64_t rid)
{
    if (!s_is_mutating(msg->cmd) || m->cfg.mutation_rate <= 0)
        return 1;
    char id[80];
    s_identity(msg, id, sizeof id);
    int64_t now = tsr_now_ms();
    struct rate_bucket *b = s_bucket(m, id, now);
    if (!b)
        return 1; /* out of memory: the limit is not what fails */
    s_refill(m, b, now);
    if (b->tokens >= 1.0) {
        b->tokens -= 1.0;
        return 1;
    }
    int64_t retry_ms = (int64_t)((1.0 - b->tokens) * 1000.0 / m->cfg.mutation_rate) + 1;
    if (b->refused++ == 0)
        tsr_log(TSR_LOG_WARN, "ratelimit",
                "'%s' asks for changes faster than %d a second (burst %d); refusing "
                "until it slows down",
                id, m->cfg.mutation_rate, m->cfg.mutation_burst);
    cJSON *h = cJSON_CreateObject();
    char text[200];
    snprintf(
        text, sizeof text,
        "too many requests: at most %d changes a second (burst %d); retry in %lld ms",
        m->cfg.mutation_rate, m->cfg.mutation_burst, (long long)retry_ms);
    cJSON_AddNumberToObject(h, "code", TSR_EBUSY);
    cJSON_AddStringToObject(h, "error", tsr_strerror(TSR_EBUSY));
    cJSON_AddStringToObject(h, "message", text);
    cJSON_AddStringToObject(h, "re", msg->cmd);
    if (rid >= 0)
        cJSON_AddNumberToObject(h, "rid", (double)rid);
    cJSON_AddNumberToObject(h, "retry_ms", (double)retry_ms);
    master_send(m, m->clients, msg->peer, msg->peer_len, "ERROR", h, NULL, 0);
    cJSON_Delete(h);
    return 0;
}

void ratelimit_cron(struct master *m)
{
    struct ratelimit *r = m->rate;
    if (!r)
        return;
    int64_t now = tsr_now_ms();
    for (size_t i = 0; i < r->n;) {
        struct rate_bucket *b = &r->b[i];
        s_refill(m, b, now);
        if (b->tokens >= m->cfg.mutation_burst) {
            if (b->refused)
                tsr_log(TSR_LOG_INFO, "ratelimit",
                        "'%s' slowed down: %llu changes refused", b->id,
                        (unsigned long long)b->refused);
            r->b[i] = r->b[--r->n];
            continue;
        }
        i++;
    }
}

void ratelimit_destroy(struct master *m)
{
    if (!m->rate)
        return;
    free(m->rate->b);
    free(m->rate);
    m->rate = NULL;
}
