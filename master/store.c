/*
 * store.c: the master's LMDB state, the truth that memory caches.
 *
 * One environment in <data>/db with named databases:
 *   meta     "counters" -> {"next_job", "next_attempt", "next_event"},
 *            "schema" -> 1
 *   jobs     job id (u64 BE) -> JSON job record
 *   tasks    job id + task index (u64 BE, u32 BE) -> struct task
 *   frames   job id + frame index -> JSON frame record
 *   pieces   job id + task index + frame offset -> piece blob hash
 *   workers  name -> JSON worker record
 *   blobs    hash -> {"size"}; a blob found damaged is removed (scrub.c)
 *   events   sequence (u64 BE) -> JSON event
 *
 * Only the reactor writes. All writes of one poll cycle share one write
 * transaction (master_txn opens it lazily; store_commit ends it), so
 * durability costs one fsync per cycle, not per message.
 */
#include "master.h"

#include "tessera/error.h"
#include "tessera/frameset.h"
#include "tessera/log.h"
#include "tessera/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCHEMA_VERSION 1

static void s_be64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

static void s_be32(unsigned char *p, uint32_t v)
{
    for (int i = 3; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

static uint64_t s_get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

static uint32_t s_get32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v = (v << 8) | p[i];
    return v;
}

static int s_mdb(int rc, const char *what)
{
    if (rc == 0)
        return 0;
    tsr_log(TSR_LOG_ERROR, "store", "%s: %s", what, mdb_strerror(rc));
    return rc == MDB_MAP_FULL ? TSR_EFULL : TSR_EDB;
}

int store_open(struct master *m)
{
    char path[MASTER_PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/db", m->cfg.data_dir);
    if (tsr_mkdir_p(path) != 0) {
        tsr_log(TSR_LOG_ERROR, "store", "cannot create '%s'", path);
        return TSR_EIO;
    }
    int rc = mdb_env_create(&m->env);
    if (rc == 0)
        rc = mdb_env_set_maxdbs(m->env, 16);
    if (rc == 0)
        rc = mdb_env_set_mapsize(m->env, m->cfg.map_size);
    if (rc == 0)
        rc = mdb_env_open(m->env, path, MDB_NOTLS, 0640);
    if (rc != 0) {
        tsr_log(TSR_LOG_ERROR, "store", "cannot open lmdb at '%s': %s", path,
                mdb_strerror(rc));
        return TSR_EDB;
    }
    int dead = 0;
    mdb_reader_check(m->env, &dead);
    MDB_txn *txn;
    rc = mdb_txn_begin(m->env, NULL, 0, &txn);
    if (rc != 0)
        return s_mdb(rc, "begin");
    struct {
        const char *name;
        MDB_dbi *dbi;
    } dbs[] = {{"meta", &m->db_meta},     {"jobs", &m->db_jobs},
               {"tasks", &m->db_tasks},   {"frames", &m->db_frames},
               {"pieces", &m->db_pieces}, {"workers", &m->db_workers},
               {"blobs", &m->db_blobs},   {"events", &m->db_events}};
    for (size_t i = 0; i < sizeof dbs / sizeof dbs[0] && rc == 0; i++)
        rc = mdb_dbi_open(txn, dbs[i].name, MDB_CREATE, dbs[i].dbi);
    if (rc != 0) {
        mdb_txn_abort(txn);
        return s_mdb(rc, "open databases");
    }
    MDB_val k = {6, "schema"}, v;
    rc = mdb_get(txn, m->db_meta, &k, &v);
    if (rc == MDB_NOTFOUND) {
        unsigned char ver[4];
        s_be32(ver, SCHEMA_VERSION);
        v.mv_size = 4;
        v.mv_data = ver;
        rc = mdb_put(txn, m->db_meta, &k, &v, 0);
    } else if (rc == 0) {
        if (v.mv_size != 4 || s_get32(v.mv_data) != SCHEMA_VERSION) {
            mdb_txn_abort(txn);
            tsr_log(TSR_LOG_ERROR, "store", "'%s': schema version not supported", path);
            return TSR_EVERSION;
        }
    }
    if (rc != 0) {
        mdb_txn_abort(txn);
        return s_mdb(rc, "schema");
    }
    return s_mdb(mdb_txn_commit(txn), "commit");
}

void store_close(struct master *m)
{
    if (m->txn) {
        mdb_txn_abort(m->txn);
        m->txn = NULL;
    }
    if (m->env) {
        mdb_env_close(m->env);
        m->env = NULL;
    }
}

MDB_txn *master_txn(struct master *m)
{
    if (!m->txn) {
        int rc = mdb_txn_begin(m->env, NULL, 0, &m->txn);
        if (rc != 0) {
            /* Without a transaction nothing can be promised to anyone:
             * stop rather than answer with state that is not stored. */
            tsr_log(TSR_LOG_ERROR, "store", "cannot begin transaction: %s",
                    mdb_strerror(rc));
            abort();
        }
    }
    return m->txn;
}

/* Bytes of the map in use (pages up to the last one written; LMDB reuses
 * freed pages below it, so this errs on the high side) and the map size. */
static void s_usage(struct master *m, uint64_t *used, uint64_t *size)
{
    MDB_envinfo info;
    MDB_stat st;
    mdb_env_info(m->env, &info);
    mdb_env_stat(m->env, &st);
    *used = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
    *size = info.me_mapsize;
}

void store_maybe_grow(struct master *m)
{
    if (m->txn)
        return; /* the map may only change between transactions */
    uint64_t used, size;
    s_usage(m, &used, &size);
    /* Keep 30% headroom over what is used plus what a pending submission
     * will write in one transaction. */
    uint64_t need = used + m->map_need;
    m->map_need = 0;
    if (need * 10 < size * 7 || size >= m->cfg.map_max)
        return;
    uint64_t want = size * 2;
    while (want * 7 < need * 10)
        want *= 2;
    if (want > m->cfg.map_max)
        want = m->cfg.map_max;
    int rc = mdb_env_set_mapsize(m->env, want);
    if (rc == 0)
        tsr_log(TSR_LOG_INFO, "store", "state map grown to %llu MiB (%llu MiB used)",
                (unsigned long long)(want >> 20), (unsigned long long)(used >> 20));
    else
        tsr_log(TSR_LOG_WARN, "store", "cannot grow the state map: %s", mdb_strerror(rc));
}

int store_nearly_full(struct master *m, int percent, char *why, size_t whylen)
{
    uint64_t used, size;
    s_usage(m, &used, &size);
    if (used * 100 < m->cfg.map_max * (uint64_t)percent)
        return 0;
    if (why)
        snprintf(why, whylen, "the master's state database is full (%llu of %llu MiB); "
                 "new submissions are refused until an operator raises --map-max",
                 (unsigned long long)(used >> 20), (unsigned long long)(m->cfg.map_max >> 20));
    return 1;
}

int store_fits(struct master *m, uint64_t need)
{
    uint64_t used, size;
    s_usage(m, &used, &size);
    return (used + need) * 10 <= m->cfg.map_max * 8;
}

int store_commit(struct master *m)
{
    if (!m->txn)
        return 0;
    int rc = mdb_txn_commit(m->txn);
    m->txn = NULL;
    return s_mdb(rc, "commit");
}

static int s_put(struct master *m, MDB_dbi dbi, const void *key, size_t klen,
                 const void *val, size_t vlen)
{
    MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
    return s_mdb(mdb_put(master_txn(m), dbi, &k, &v, 0), "put");
}

static int s_put_json(struct master *m, MDB_dbi dbi, const void *key, size_t klen,
                      cJSON *obj)
{
    char *text = cJSON_PrintUnformatted(obj);
    cJSON_Delete(obj);
    if (!text)
        return TSR_ENOMEM;
    int rc = s_put(m, dbi, key, klen, text, strlen(text));
    free(text);
    return rc;
}

int store_put_counters(struct master *m)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "next_job", (double)m->next_job);
    cJSON_AddNumberToObject(o, "next_attempt", (double)m->next_attempt);
    cJSON_AddNumberToObject(o, "next_event", (double)m->next_event);
    return s_put_json(m, m->db_meta, "counters", 8, o);
}

int store_put_job(struct master *m, const struct job *j)
{
    unsigned char key[8];
    s_be64(key, j->id);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "v", 1);
    cJSON_AddNumberToObject(o, "id", (double)j->id);
    cJSON_AddNumberToObject(o, "state", j->state);
    cJSON_AddStringToObject(o, "name", j->name);
    cJSON_AddStringToObject(o, "owner", j->owner);
    cJSON_AddStringToObject(o, "renderer", j->renderer);
    cJSON_AddStringToObject(o, "scene", j->scene);
    cJSON_AddStringToObject(o, "archive", j->archive);
    cJSON_AddNumberToObject(o, "archive_size", (double)j->archive_size);
    cJSON_AddStringToObject(o, "frame_set", j->frame_set);
    if (j->command)
        cJSON_AddStringToObject(o, "command", j->command);
    cJSON_AddBoolToObject(o, "outputs_image", j->outputs_image);
    cJSON_AddBoolToObject(o, "gpu", j->gpu);
    cJSON_AddStringToObject(o, "cycles_device", j->cycles_device);
    if (j->requires)
        cJSON_AddItemToObject(o, "requires", cJSON_Duplicate(j->requires, 1));
    cJSON_AddNumberToObject(o, "tiles_x", j->tiles_x);
    cJSON_AddNumberToObject(o, "tiles_y", j->tiles_y);
    cJSON_AddNumberToObject(o, "chunk", j->chunk);
    cJSON_AddNumberToObject(o, "priority", j->priority);
    cJSON_AddNumberToObject(o, "width", j->width);
    cJSON_AddNumberToObject(o, "height", j->height);
    cJSON_AddNumberToObject(o, "max_failures", j->max_failures);
    cJSON_AddNumberToObject(o, "timeout_s", j->timeout_s);
    cJSON_AddNumberToObject(o, "stall_s", j->stall_s);
    cJSON_AddNumberToObject(o, "created_ms", (double)j->created_ms);
    cJSON_AddNumberToObject(o, "started_ms", (double)j->started_ms);
    cJSON_AddNumberToObject(o, "finished_ms", (double)j->finished_ms);
    cJSON_AddStringToObject(o, "error", j->error);
    return s_put_json(m, m->db_jobs, key, 8, o);
}

int store_put_task(struct master *m, const struct job *j, uint32_t idx)
{
    unsigned char key[12];
    s_be64(key, j->id);
    s_be32(key + 8, idx);
    struct task t = j->tasks[idx];
    t.version = TASK_RECORD_VERSION;
    if (t.state == TASK_VERIFYING)
        t.state = TASK_RUNNING; /* verification is redone after a restart */
    return s_put(m, m->db_tasks, key, sizeof key, &t, sizeof t);
}

static cJSON *s_doubles(const double *v, int n)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
    return a;
}

int store_put_frame(struct master *m, const struct job *j, uint32_t idx)
{
    unsigned char key[12];
    s_be64(key, j->id);
    s_be32(key + 8, idx);
    const struct frame *f = &j->frame_info[idx];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "v", 1);
    cJSON_AddNumberToObject(o, "state", f->state);
    cJSON_AddStringToObject(o, "hash", f->hash);
    cJSON_AddNumberToObject(o, "size", (double)f->size);
    cJSON_AddStringToObject(o, "worker", f->worker);
    cJSON_AddStringToObject(o, "hub", f->hub);
    cJSON_AddNumberToObject(o, "render_ms", f->render_ms);
    if (f->error[0])
        cJSON_AddStringToObject(o, "error", f->error);
    if (f->rotted)
        cJSON_AddNumberToObject(o, "rotted", f->rotted);
    int nc = f->stats.nchannels > 4 ? 4 : f->stats.nchannels;
    cJSON_AddNumberToObject(o, "nchannels", nc);
    cJSON_AddItemToObject(o, "min", s_doubles(f->stats.min, nc));
    cJSON_AddItemToObject(o, "max", s_doubles(f->stats.max, nc));
    cJSON_AddItemToObject(o, "mean", s_doubles(f->stats.mean, nc));
    return s_put_json(m, m->db_frames, key, sizeof key, o);
}

int store_put_piece(struct master *m, uint64_t job, uint32_t task, uint32_t k,
                    const char *hash)
{
    unsigned char key[16];
    s_be64(key, job);
    s_be32(key + 8, task);
    s_be32(key + 12, k);
    return s_put(m, m->db_pieces, key, sizeof key, hash, 64);
}

int store_get_piece(struct master *m, uint64_t job, uint32_t task, uint32_t k,
                    char hash[TSR_HASH_HEX])
{
    unsigned char key[16];
    s_be64(key, job);
    s_be32(key + 8, task);
    s_be32(key + 12, k);
    MDB_val kv = {sizeof key, key}, v;
    int rc = mdb_get(master_txn(m), m->db_pieces, &kv, &v);
    if (rc == MDB_NOTFOUND || (rc == 0 && v.mv_size != 64))
        return TSR_ENOTFOUND;
    if (rc != 0)
        return s_mdb(rc, "get piece");
    memcpy(hash, v.mv_data, 64);
    hash[64] = '\0';
    return 0;
}

int store_put_worker(struct master *m, const struct worker *w)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "v", 1);
    cJSON_AddStringToObject(o, "hub", w->hub);
    cJSON_AddNumberToObject(o, "slots", w->slots);
    cJSON_AddNumberToObject(o, "done", (double)w->done);
    cJSON_AddNumberToObject(o, "failed", (double)w->failed);
    cJSON_AddNumberToObject(o, "last_seen_ms", (double)w->last_seen_wall_ms);
    cJSON_AddBoolToObject(o, "draining", w->draining);
    cJSON_AddBoolToObject(o, "quarantined", w->quarantined);
    cJSON_AddStringToObject(o, "quarantine_why", w->quarantine_why);
    cJSON_AddBoolToObject(o, "stopped", w->stopped);
    if (w->caps)
        cJSON_AddItemToObject(o, "caps", cJSON_Duplicate(w->caps, 1));
    return s_put_json(m, m->db_workers, w->name, strlen(w->name), o);
}

int store_del_worker(struct master *m, const char *name)
{
    MDB_val k = {strlen(name), (void *)name};
    int rc = mdb_del(master_txn(m), m->db_workers, &k, NULL);
    return rc == MDB_NOTFOUND ? 0 : s_mdb(rc, "delete worker");
}

int store_put_blob(struct master *m, const char *hash, uint64_t size)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "size", (double)size);
    return s_put_json(m, m->db_blobs, hash, 64, o);
}

int store_forget_blob(struct master *m, const char *hash)
{
    MDB_val k = {64, (void *)hash};
    int rc = mdb_del(master_txn(m), m->db_blobs, &k, NULL);
    return rc == MDB_NOTFOUND ? 0 : s_mdb(rc, "forget blob");
}

int store_has_blob(struct master *m, const char *hash, uint64_t *size)
{
    MDB_val k = {64, (void *)hash}, v;
    int rc = mdb_get(master_txn(m), m->db_blobs, &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return 0;
    if (size) {
        cJSON *o = cJSON_ParseWithLength(v.mv_data, v.mv_size);
        cJSON *s = cJSON_GetObjectItem(o, "size");
        *size = cJSON_IsNumber(s) ? (uint64_t)s->valuedouble : 0;
        cJSON_Delete(o);
    }
    return 1;
}

int store_del_blob(struct master *m, const char *hash)
{
    MDB_val k = {64, (void *)hash};
    int rc = mdb_del(master_txn(m), m->db_blobs, &k, NULL);
    return rc == MDB_NOTFOUND ? 0 : s_mdb(rc, "del blob");
}

int store_each_piece_of(struct master *m, const char *hash,
                        void (*fn)(struct master *m, uint64_t job, uint32_t task,
                                   uint32_t k, void *ctx),
                        void *ctx)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(master_txn(m), m->db_pieces, &cur);
    if (rc != 0)
        return s_mdb(rc, "cursor");
    /* The matches are gathered first: fn may write pieces. */
    unsigned char (*keys)[16] = NULL;
    size_t n = 0, cap = 0;
    MDB_val k, v;
    int op = MDB_FIRST;
    while ((rc = mdb_cursor_get(cur, &k, &v, op)) == 0) {
        op = MDB_NEXT;
        if (k.mv_size != 16 || v.mv_size != 64 || memcmp(v.mv_data, hash, 64) != 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            void *more = realloc(keys, cap * sizeof *keys);
            if (!more)
                break;
            keys = more;
        }
        memcpy(keys[n++], k.mv_data, 16);
    }
    mdb_cursor_close(cur);
    for (size_t i = 0; i < n; i++)
        fn(m, s_get64(keys[i]), s_get32(keys[i] + 8), s_get32(keys[i] + 12), ctx);
    free(keys);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : s_mdb(rc, "pieces");
}

int store_event(struct master *m, const char *kind, uint64_t job, cJSON *fields)
{
    /* The log is the one record that only grows: past 95% of the largest
     * map it yields, so that the state of running jobs still fits. */
    static int warned;
    if (store_nearly_full(m, 95, NULL, 0)) {
        if (!warned++)
            tsr_log(TSR_LOG_WARN, "store", "state database nearly full: events not recorded");
        return 0;
    }
    warned = 0;
    unsigned char key[8];
    s_be64(key, m->next_event++);
    cJSON *o = fields ? cJSON_Duplicate(fields, 1) : cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "seq", (double)(m->next_event - 1));
    cJSON_AddNumberToObject(o, "ts_ms", (double)tsr_wall_ms());
    cJSON_AddStringToObject(o, "kind", kind);
    if (m->actor && !cJSON_HasObjectItem(o, "by"))
        cJSON_AddStringToObject(o, "by", m->actor); /* who asked, for the audit */
    if (job)
        cJSON_AddNumberToObject(o, "job", (double)job);
    int rc = s_put_json(m, m->db_events, key, 8, o);
    if (rc == 0)
        rc = store_put_counters(m);
    return rc;
}

/* ---- loading at start ---- */

static const char *s_jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static double s_jnum(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static void s_jdoubles(const cJSON *o, const char *k, double *out, int n)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, k);
    for (int i = 0; i < n; i++) {
        const cJSON *v = cJSON_GetArrayItem(a, i);
        out[i] = cJSON_IsNumber(v) ? v->valuedouble : 0;
    }
}

static struct job *s_job_from_json(const cJSON *o)
{
    struct job *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    j->id = (uint64_t)s_jnum(o, "id");
    j->state = (uint8_t)s_jnum(o, "state");
    snprintf(j->name, sizeof j->name, "%s", s_jstr(o, "name"));
    snprintf(j->owner, sizeof j->owner, "%s", s_jstr(o, "owner"));
    snprintf(j->renderer, sizeof j->renderer, "%s", s_jstr(o, "renderer"));
    snprintf(j->scene, sizeof j->scene, "%s", s_jstr(o, "scene"));
    snprintf(j->archive, sizeof j->archive, "%s", s_jstr(o, "archive"));
    j->archive_size = (uint64_t)s_jnum(o, "archive_size");
    j->frame_set = strdup(s_jstr(o, "frame_set"));
    const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(o, "command");
    j->command = cJSON_IsString(cmd) ? strdup(cmd->valuestring) : NULL;
    j->outputs_image = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "outputs_image"));
    j->gpu = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "gpu"));
    snprintf(j->cycles_device, sizeof j->cycles_device, "%s", s_jstr(o, "cycles_device"));
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(o, "requires");
    j->requires = cJSON_IsArray(req) ? cJSON_Duplicate(req, 1) : NULL;
    j->tiles_x = (int)s_jnum(o, "tiles_x");
    j->tiles_y = (int)s_jnum(o, "tiles_y");
    j->chunk = (int)s_jnum(o, "chunk");
    j->priority = (int)s_jnum(o, "priority");
    j->width = (int)s_jnum(o, "width");
    j->height = (int)s_jnum(o, "height");
    j->max_failures = (int)s_jnum(o, "max_failures");
    j->timeout_s = (int)s_jnum(o, "timeout_s");
    j->stall_s = (int)s_jnum(o, "stall_s");
    j->created_ms = (int64_t)s_jnum(o, "created_ms");
    j->started_ms = (int64_t)s_jnum(o, "started_ms");
    j->finished_ms = (int64_t)s_jnum(o, "finished_ms");
    snprintf(j->error, sizeof j->error, "%s", s_jstr(o, "error"));
    return j;
}

/* One record of a database at start; a record that cannot be read is
 * logged and skipped (returns 0), only a failure to keep going is an error. */
typedef int (*s_record_fn)(struct master *m, const MDB_val *k, const MDB_val *v);

/* Calls fn for every record of dbi in key order. */
static int s_each(struct master *m, MDB_txn *txn, MDB_dbi dbi, const char *what,
                  s_record_fn fn)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, dbi, &cur);
    if (rc != 0)
        return s_mdb(rc, "cursor");
    MDB_val k, v;
    int op = MDB_FIRST, r = 0;
    while (r == 0 && (rc = mdb_cursor_get(cur, &k, &v, op)) == 0) {
        op = MDB_NEXT;
        r = fn(m, &k, &v);
    }
    mdb_cursor_close(cur);
    if (r != 0)
        return r;
    return rc == MDB_NOTFOUND ? 0 : s_mdb(rc, what);
}

static int s_job_record(struct master *m, const MDB_val *k, const MDB_val *v)
{
    cJSON *o = cJSON_ParseWithLength(v->mv_data, v->mv_size);
    struct job *j = o ? s_job_from_json(o) : NULL;
    cJSON_Delete(o);
    char err[256];
    if (!j || job_build(j, err, sizeof err) != 0) {
        tsr_log(TSR_LOG_ERROR, "store", "job record %llu unreadable (%s); skipped",
                k->mv_size == 8 ? (unsigned long long)s_get64(k->mv_data) : 0ULL,
                j ? err : "malformed");
        job_free(j);
        return 0;
    }
    if (m->njobs == m->capjobs) {
        m->capjobs = m->capjobs ? m->capjobs * 2 : 16;
        m->jobs = realloc(m->jobs, m->capjobs * sizeof *m->jobs);
    }
    m->jobs[m->njobs++] = j;
    return 0;
}

static int s_task_record(struct master *m, const MDB_val *k, const MDB_val *v)
{
    if (k->mv_size != 12 || v->mv_size != sizeof(struct task))
        return 0;
    uint64_t id = s_get64(k->mv_data);
    uint32_t idx = s_get32((unsigned char *)k->mv_data + 8);
    struct job *j = job_find(m, id);
    if (!j || idx >= j->ntasks)
        return 0;
    struct task t;
    memcpy(&t, v->mv_data, sizeof t);
    if (t.version != TASK_RECORD_VERSION)
        return 0;
    j->tasks[idx] = t;
    return 0;
}

static int s_frame_record(struct master *m, const MDB_val *k, const MDB_val *v)
{
    if (k->mv_size != 12)
        return 0;
    uint64_t id = s_get64(k->mv_data);
    uint32_t idx = s_get32((unsigned char *)k->mv_data + 8);
    struct job *j = job_find(m, id);
    if (!j || idx >= j->nframes)
        return 0;
    cJSON *o = cJSON_ParseWithLength(v->mv_data, v->mv_size);
    if (!o)
        return 0;
    struct frame *f = &j->frame_info[idx];
    f->state = (uint8_t)s_jnum(o, "state");
    snprintf(f->hash, sizeof f->hash, "%s", s_jstr(o, "hash"));
    f->size = (uint64_t)s_jnum(o, "size");
    snprintf(f->worker, sizeof f->worker, "%s", s_jstr(o, "worker"));
    snprintf(f->hub, sizeof f->hub, "%s", s_jstr(o, "hub"));
    f->render_ms = (uint32_t)s_jnum(o, "render_ms");
    snprintf(f->error, sizeof f->error, "%s", s_jstr(o, "error"));
    f->rotted = (uint8_t)s_jnum(o, "rotted");
    int nc = (int)s_jnum(o, "nchannels");
    f->stats.nchannels = nc < 0 ? 0 : nc > 4 ? 4 : nc;
    s_jdoubles(o, "min", f->stats.min, f->stats.nchannels);
    s_jdoubles(o, "max", f->stats.max, f->stats.nchannels);
    s_jdoubles(o, "mean", f->stats.mean, f->stats.nchannels);
    cJSON_Delete(o);
    return 0;
}

static int s_worker_record(struct master *m, const MDB_val *k, const MDB_val *v)
{
    if (k->mv_size == 0 || k->mv_size > MASTER_NAME_MAX)
        return 0;
    cJSON *o = cJSON_ParseWithLength(v->mv_data, v->mv_size);
    if (!o)
        return 0;
    struct worker *w = calloc(1, sizeof *w);
    memcpy(w->name, k->mv_data, k->mv_size);
    snprintf(w->hub, sizeof w->hub, "%s", s_jstr(o, "hub"));
    w->slots = (int)s_jnum(o, "slots");
    w->done = (uint64_t)s_jnum(o, "done");
    w->failed = (uint64_t)s_jnum(o, "failed");
    w->last_seen_wall_ms = (int64_t)s_jnum(o, "last_seen_ms");
    w->draining = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "draining"));
    w->quarantined = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "quarantined"));
    w->stopped = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "stopped"));
    snprintf(w->quarantine_why, sizeof w->quarantine_why, "%s",
             s_jstr(o, "quarantine_why"));
    /* Checked again as HELLO is: a record written before HELLO had bounds
     * may hold anything, and every WORKERS reply shows it. */
    cJSON *caps = cJSON_GetObjectItemCaseSensitive(o, "caps");
    struct hello h;
    char err[256];
    if (caps && hello_check(caps, &h, err, sizeof err) == 0)
        w->caps = h.caps;
    else if (caps)
        tsr_log(TSR_LOG_WARN, "store", "worker '%s': stored capabilities dropped: %s",
                w->name, err);
    cJSON_Delete(o);
    if (m->nworkers == m->capworkers) {
        m->capworkers = m->capworkers ? m->capworkers * 2 : 16;
        m->workers = realloc(m->workers, m->capworkers * sizeof *m->workers);
    }
    m->workers[m->nworkers++] = w;
    return 0;
}

int store_load(struct master *m)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(m->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0)
        return s_mdb(rc, "begin read");
    m->next_job = 1;
    m->next_attempt = 1;
    m->next_event = 1;
    MDB_val k = {8, "counters"}, v;
    if (mdb_get(txn, m->db_meta, &k, &v) == 0) {
        cJSON *o = cJSON_ParseWithLength(v.mv_data, v.mv_size);
        if (o) {
            m->next_job = (uint64_t)s_jnum(o, "next_job");
            m->next_attempt = (uint64_t)s_jnum(o, "next_attempt");
            m->next_event = (uint64_t)s_jnum(o, "next_event");
            cJSON_Delete(o);
        }
    }
    int r = s_each(m, txn, m->db_jobs, "load jobs", s_job_record);
    if (r == 0)
        r = s_each(m, txn, m->db_tasks, "load tasks", s_task_record);
    if (r == 0)
        r = s_each(m, txn, m->db_frames, "load frames", s_frame_record);
    if (r == 0)
        r = s_each(m, txn, m->db_workers, "load workers", s_worker_record);
    mdb_txn_abort(txn);
    if (r != 0)
        return r;
    for (size_t i = 0; i < m->njobs; i++)
        job_recount(m->jobs[i]);
    workers_adopt_stored(m);
    tsr_log(TSR_LOG_INFO, "store", "loaded %zu jobs and %zu workers from '%s/db'",
            m->njobs, m->nworkers, m->cfg.data_dir);
    return 0;
}

/* ---- rolling back after a failed commit ---- */

static struct job *s_old_job(struct job **jobs, size_t n, uint64_t id)
{
    for (size_t i = 0; i < n; i++)
        if (jobs[i]->id == id)
            return jobs[i];
    return NULL;
}

static void s_add_run(struct worker *w, uint64_t attempt, uint64_t job, uint32_t task)
{
    if (w->nrunning == w->caprunning) {
        size_t cap = w->caprunning ? w->caprunning * 2 : 8;
        struct run_ref *r = realloc(w->running, cap * sizeof *r);
        if (!r)
            return;
        w->running = r;
        w->caprunning = cap;
    }
    w->running[w->nrunning++] = (struct run_ref){attempt, job, task};
}

/*
 * A commit failed: nothing of the cycle is on disk and its replies were
 * dropped, but memory ran ahead. Rebuild jobs, tasks, frames and workers
 * from the last commit, as a restart would, keeping what only memory knows
 * and the disk cannot contradict: the workers' connections and credit,
 * per-job blocks, and the work in the pool (a task being verified, a frame
 * being assembled, whose results will still come back). Attempts started
 * in the lost cycle were never sent: their credit returns to the worker.
 */
int store_reload(struct master *m)
{
    struct job **old_jobs = m->jobs;
    size_t old_njobs = m->njobs;
    struct worker **old_workers = m->workers;
    size_t old_nworkers = m->nworkers;
    uint64_t next_attempt = m->next_attempt, next_event = m->next_event;
    m->jobs = NULL;
    m->njobs = m->capjobs = 0;
    m->workers = NULL;
    m->nworkers = m->capworkers = 0;
    int rc = store_load(m);
    if (rc != 0) {
        tsr_log(TSR_LOG_ERROR, "store", "cannot reload the state after a failed commit");
        return rc;
    }
    /* Attempt ids stay fencing tokens: never hand one out twice. */
    if (m->next_attempt < next_attempt)
        m->next_attempt = next_attempt;
    if (m->next_event < next_event)
        m->next_event = next_event;
    for (size_t i = 0; i < m->njobs; i++) {
        struct job *j = m->jobs[i];
        struct job *o = s_old_job(old_jobs, old_njobs, j->id);
        if (!o || o->ntasks != j->ntasks || o->nframes != j->nframes)
            continue;
        for (uint32_t t = 0; t < j->ntasks; t++)
            if (o->tasks[t].state == TASK_VERIFYING && j->tasks[t].state == TASK_RUNNING &&
                o->tasks[t].attempt == j->tasks[t].attempt)
                j->tasks[t].state = TASK_VERIFYING;
        for (uint32_t f = 0; f < j->nframes; f++)
            if (o->frame_info[f].state == FRAME_ASSEMBLING &&
                j->frame_info[f].state == FRAME_PENDING)
                j->frame_info[f].state = FRAME_ASSEMBLING;
        free(j->blocks);
        j->blocks = o->blocks;
        j->nblocks = o->nblocks;
        o->blocks = NULL;
        o->nblocks = 0;
        job_recount(j);
    }
    /* Workers: the stored record, with the live connection of the old one. */
    for (size_t i = 0; i < old_nworkers; i++) {
        struct worker *o = old_workers[i];
        struct worker *w = worker_by_name(m, o->name);
        if (!w) { /* registered in the lost cycle: keep it, holding nothing */
            if (m->nworkers == m->capworkers) {
                m->capworkers = m->capworkers ? m->capworkers * 2 : 16;
                m->workers = realloc(m->workers, m->capworkers * sizeof *m->workers);
            }
            w = calloc(1, sizeof *w);
            *w = *o;
            w->running = NULL;
            w->nrunning = w->caprunning = 0;
            w->caps = cJSON_Duplicate(o->caps, 1);
            m->workers[m->nworkers++] = w;
        }
        memcpy(w->peer, o->peer, o->peer_len);
        w->peer_len = o->peer_len;
        w->live = o->live;
        w->slots = o->slots;
        w->gpu_slots = o->gpu_slots;
        w->credit = o->credit;
        w->gpu_credit = o->gpu_credit;
        w->last_recv_ms = o->last_recv_ms;
        w->last_send_ms = o->last_send_ms;
        w->leaving = o->leaving;
        /* Who holds the name (hello.c): a rollback must not hand it to a clone. */
        w->announced_slots = o->announced_slots;
        memcpy(w->instance, o->instance, sizeof w->instance);
        memcpy(w->key, o->key, sizeof w->key);
        w->greedy_logged = o->greedy_logged;
        w->refused_log_ms = o->refused_log_ms;
        memcpy(w->recent_jobs, o->recent_jobs, sizeof w->recent_jobs);
        memcpy(w->recent_ms, o->recent_ms, sizeof w->recent_ms);
        if (o->caps) {
            cJSON_Delete(w->caps);
            w->caps = cJSON_Duplicate(o->caps, 1);
        }
    }
    for (size_t i = 0; i < m->njobs; i++) {
        struct job *j = m->jobs[i];
        for (uint32_t t = 0; t < j->ntasks; t++) {
            const struct task *tk = &j->tasks[t];
            if (tk->state != TASK_RUNNING && tk->state != TASK_VERIFYING)
                continue;
            struct worker *w = worker_by_name(m, tk->worker);
            if (w && w->live)
                s_add_run(w, tk->attempt, j->id, t);
        }
    }
    /* Credit spent on attempts that never went out comes back. */
    for (size_t i = 0; i < old_nworkers; i++) {
        struct worker *o = old_workers[i];
        struct worker *w = worker_by_name(m, o->name);
        for (size_t k = 0; k < o->nrunning; k++) {
            int kept = 0;
            for (size_t n = 0; n < w->nrunning && !kept; n++)
                kept = w->running[n].attempt == o->running[k].attempt;
            struct job *j = job_find(m, o->running[k].job);
            if (kept || !j)
                continue;
            if (j->gpu)
                w->gpu_credit++;
            else
                w->credit++;
        }
        if (w->credit > w->slots + 1)
            w->credit = w->slots + 1;
        if (w->gpu_credit > w->gpu_slots)
            w->gpu_credit = w->gpu_slots;
        cJSON_Delete(o->caps);
        free(o->running);
        free(o);
    }
    free(old_workers);
    /* Running tasks that no live worker holds now (one lost in the lost
     * cycle) are requeued after the grace a restart gives. */
    m->recover_until_ms = tsr_now_ms() + 2LL * m->cfg.heartbeat_ms * m->cfg.liveness;
    for (size_t i = 0; i < old_njobs; i++)
        job_free(old_jobs[i]);
    free(old_jobs);
    return 0;
}
