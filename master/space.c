/*
 * space.c: the data folder running out of room, and the farm waiting for it.
 *
 * Running out of space is the farm's fault, never a task's or a worker's:
 * nothing fails for it, work waits. Two conditions, each entered when a
 * write actually failed and left when statvfs shows room again:
 *
 *   blobs full   a chunk, an upload's hashing or an assembly found no space
 *                under <data>/blobs. Uploads (PUT) are refused with
 *                TSR_EFULL, which a worker answers by waiting and sending
 *                again (worker/upload.c); no task that makes images is
 *                dispatched; frames wait to be assembled.
 *   db full      a commit of the cycle's transaction failed (ENOSPC on the
 *                LMDB file, or its map full): the reactor rolled memory
 *                back to the last commit (store_reload). Until room returns
 *                nothing is dispatched and submissions and uploads are
 *                refused; reads (status, jobs, events, fetch) are served.
 *                It is retried with backoff, as a map can be full with the
 *                disk empty.
 *
 * When both are clear again, frames waiting to be assembled are resumed
 * and, after a failed commit, live workers are asked to register again
 * (RECONNECT), so that they re-send the results whose acknowledgements the
 * rollback dropped at once rather than after their upload stall time.
 */
#include "master.h"

#include "tessera/error.h"
#include "tessera/log.h"
#include "tessera/util.h"

#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>

#define SPACE_RESUME_FREE (1ULL << 20)  /* free bytes under which we wait */
#define SPACE_CHECK_MS 500              /* statvfs period while waiting */
#define SPACE_DB_BACKOFF_MAX_MS 30000   /* longest wait between commit retries */

/* Free bytes for an unprivileged writer under <data>/sub. */
static uint64_t s_free(const struct master *m, const char *sub)
{
    char path[MASTER_PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", m->cfg.data_dir, sub);
    struct statvfs st;
    if (statvfs(path, &st) != 0)
        return UINT64_MAX; /* cannot tell: do not hold the farm for it */
    return (uint64_t)st.f_bavail * st.f_frsize;
}

void space_note_full(struct master *m, int db, const char *what)
{
    int64_t now = tsr_now_ms();
    if (db) {
        m->db_backoff_ms = m->db_backoff_ms ? m->db_backoff_ms * 2 : 1000;
        if (m->db_backoff_ms > SPACE_DB_BACKOFF_MAX_MS)
            m->db_backoff_ms = SPACE_DB_BACKOFF_MAX_MS;
        m->db_retry_ms = now + m->db_backoff_ms;
        if (!m->db_full)
            tsr_log(TSR_LOG_ERROR, "space", "%s: the state database cannot be written; "
                    "work waits, submissions are refused, reads are served until space "
                    "returns", what);
        m->db_full = 1;
        m->db_rolled_back = 1;
    } else {
        if (!m->blobs_full)
            tsr_log(TSR_LOG_ERROR, "space", "%s: no space left for blobs; uploads and "
                    "image tasks wait until space returns", what);
        m->blobs_full = 1;
    }
    m->space_check_ms = now + SPACE_CHECK_MS;
}

int space_short(const struct master *m, int images)
{
    return m->db_full || (images && m->blobs_full);
}

int space_refuse(struct master *m, char *why, size_t whylen)
{
    uint64_t blobs = s_free(m, "blobs"), db = s_free(m, "db");
    uint64_t low = blobs < db ? blobs : db;
    /* Room now is enough: the cron ends "blobs full" within SPACE_CHECK_MS. */
    if (!m->db_full && low >= SPACE_RESUME_FREE)
        return 0;
    if (low < SPACE_RESUME_FREE)
        space_note_full(m, 0, "too little free space");
    snprintf(why, whylen, "the master's data folder is out of space (%llu KiB free); "
             "new submissions and uploads are refused until space returns",
             (unsigned long long)(low == UINT64_MAX ? 0 : low >> 10));
    return 1;
}

void space_cron(struct master *m)
{
    if (!m->db_full && !m->blobs_full)
        return;
    int64_t now = tsr_now_ms();
    if (now < m->space_check_ms)
        return;
    m->space_check_ms = now + SPACE_CHECK_MS;
    if (s_free(m, "blobs") < SPACE_RESUME_FREE || s_free(m, "db") < SPACE_RESUME_FREE)
        return;
    if (m->db_full && now < m->db_retry_ms)
        return;
    tsr_log(TSR_LOG_INFO, "space", "space returned; work resumes");
    m->blobs_full = 0;
    m->db_full = 0;
    if (m->db_rolled_back) {
        /* Their acknowledgements may have been rolled back: have every live
         * worker register again and re-send what it holds. */
        m->db_rolled_back = 0;
        for (size_t i = 0; i < m->nworkers; i++) {
            struct worker *w = m->workers[i];
            if (w->live && w->peer_len)
                master_send(m, m->workers_sock, w->peer, w->peer_len, "RECONNECT", NULL,
                            NULL, 0);
        }
    }
    for (size_t i = 0; i < m->njobs; i++)
        frames_resume(m, m->jobs[i]);
}

void space_committed(struct master *m)
{
    m->db_backoff_ms = 0;
}
