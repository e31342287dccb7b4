/*
 * events.c: EVENTS, the audit trail of the `events` LMDB database for
 * `tessera events` (doc/protocol.md).
 *
 * Every state change worth telling is an event (store_event): submissions,
 * cancels, retries, pauses and worker actions carry "by", the User-Id of the
 * key that asked. A reply lists events oldest first, the newest `limit` of
 * those the asker may see: an operator all, a studio those of its own jobs.
 * The database is read backwards from `before` (exclusive) with a bounded
 * scan, so one request costs the reactor a few milliseconds at most; `next`
 * says where to go on for older events.
 */
#include "auth.h"
#include "master.h"

#include "tessera/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_LIMIT_DEFAULT 100      /* events per reply unless asked */
#define S_LIMIT_MAX 500          /* most events per reply */
#define S_SCAN_MAX 50000         /* records read per request at most */
#define S_REPLY_BYTES (200 * 1024) /* event text per reply, under the header limit */

static uint64_t s_get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

/* True when user may see event ev (and, with job, it is about that job). */
static int s_visible(struct master *m, const char *user, uint64_t job, const cJSON *ev)
{
    const cJSON *jv = cJSON_GetObjectItemCaseSensitive(ev, "job");
    uint64_t ej = cJSON_IsNumber(jv) && jv->valuedouble >= 1 ? (uint64_t)jv->valuedouble : 0;
    if (job && ej != job)
        return 0;
    if (access_is_operator(user))
        return 1;
    const struct job *j = ej ? job_find(m, ej) : NULL;
    return j && access_can_see(user, j);
}

void events_on_request(struct master *m, struct tsr_msg *msg, int64_t rid)
{
    char err[256];
    int64_t job = 0, limit = S_LIMIT_DEFAULT, before = 0;
    int rc = tsr_hdr_int_opt(msg->hdr, "job", 1, INT64_MAX / 2, &job, err, sizeof err);
    if (!rc)
        rc = tsr_hdr_int_opt(msg->hdr, "limit", 1, S_LIMIT_MAX, &limit, err, sizeof err);
    if (!rc)
        rc = tsr_hdr_int_opt(msg->hdr, "before", 1, INT64_MAX / 2, &before, err, sizeof err);
    if (!rc && job) {
        const struct job *j = job_find(m, (uint64_t)job);
        if (!j || !access_can_see(msg->user, j)) {
            rc = TSR_ENOTFOUND;
            snprintf(err, sizeof err, "no such job %lld", (long long)job);
        }
    }
    if (rc) {
        master_send_error(m, m->clients, msg->peer, msg->peer_len, "EVENTS", rid, rc, err);
        return;
    }
    MDB_cursor *cur;
    if (mdb_cursor_open(master_txn(m), m->db_events, &cur) != 0) {
        master_send_error(m, m->clients, msg->peer, msg->peer_len, "EVENTS", rid, TSR_EDB,
                          "cannot read the events");
        return;
    }
    cJSON *found = cJSON_CreateArray(); /* newest first while scanning */
    MDB_val k, v;
    int op = MDB_LAST;
    unsigned char key[8];
    if (before) {
        for (int i = 7; i >= 0; i--)
            key[i] = (unsigned char)((uint64_t)before >> (8 * (7 - i)));
        k.mv_size = sizeof key;
        k.mv_data = key;
        /* The first key >= before, then one back: the newest before it. */
        op = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE) == 0 ? MDB_PREV : MDB_LAST;
    }
    int64_t next = -1;
    size_t bytes = 0, n = 0;
    for (int scanned = 0; mdb_cursor_get(cur, &k, &v, op) == 0; scanned++) {
        op = MDB_PREV;
        uint64_t seq = k.mv_size == 8 ? s_get64(k.mv_data) : 0;
        if (n == (size_t)limit || bytes > S_REPLY_BYTES || scanned == S_SCAN_MAX) {
            next = (int64_t)seq + 1; /* older events remain, this one included */
            break;
        }
        cJSON *ev = cJSON_ParseWithLength(v.mv_data, v.mv_size);
        if (ev && s_visible(m, msg->user, (uint64_t)job, ev)) {
            cJSON_AddItemToArray(found, ev);
            bytes += v.mv_size;
            n++;
        } else {
            cJSON_Delete(ev);
        }
    }
    mdb_cursor_close(cur);
    cJSON *h = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(h, "events");
    while (cJSON_GetArraySize(found) > 0) /* oldest first */
        cJSON_AddItemToArray(arr, cJSON_DetachItemFromArray(found, cJSON_GetArraySize(found) - 1));
    cJSON_Delete(found);
    cJSON_AddNumberToObject(h, "next", (double)next);
    cJSON_AddNumberToObject(h, "rid", (double)rid);
    master_send(m, m->clients, msg->peer, msg->peer_len, "EVENTS", h, NULL, 0);
    cJSON_Delete(h);
}
