/*
 * cache.h: scene archives by content hash, downloaded once, extracted once.
 *
 * Layout under the cache folder:
 *
 *   blobs/<hash>     archives, complete and checked against their hash
 *   scenes/<hash>/   each archive extracted (tsr_archive_extract, which
 *                    checks it again: defence in depth)
 *   tmp/             downloads in progress (wiped at start)
 *   lock             held (flock) by the one worker that uses this folder
 *
 * A missing archive is fetched from the master with GET/DATA: chunks of
 * TSR_PROTO_CHUNK bytes, at most TSR_CACHE_INFLIGHT GETs outstanding over
 * all downloads together (the master's credit is per connection), written
 * into a temporary file, hashed and renamed into blobs/ only when the hash
 * matches. Any number of tasks waiting for one archive share one download:
 * the cache reports when a hash is done, and the owner wakes its waiters.
 * Transfers pause when the registration is lost and resume (tsr_cache_resume)
 * at the next WELCOME; a download with no answer for TSR_CACHE_STALL_MS is
 * asked again, and given up after TSR_CACHE_STALLS such rounds.
 */
#ifndef TESSERA_WORKER_CACHE_H
#define TESSERA_WORKER_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "tessera/hash.h"
#include "tessera/proto.h"

#include "agent.h"

#define TSR_CACHE_INFLIGHT 8                       /* GETs outstanding, all downloads */
#define TSR_CACHE_MAX_ARCHIVE ((uint64_t)64 << 30) /* largest archive fetched */
#define TSR_CACHE_STALL_MS 30000                   /* silence before asking again */
#define TSR_CACHE_STALLS 5                         /* silent rounds before giving up */

struct tsr_cache;

/* How a finished download (or extraction) went; filled by the cache. */
struct tsr_cache_done {
    char hash[TSR_HASH_HEX]; /* the archive */
    int rc;                  /* 0: scenes/<hash> is ready; else a TSR_E* code */
    char err[512];           /* one line on what failed */
};

/*
 * Opens (creating) the cache folder dir, takes its lock and wipes tmp/.
 * *out is the caller's (tsr_cache_destroy).
 * Returns 0, TSR_EIO (err says why), TSR_ESTATE (another worker holds the
 * lock), TSR_ENOMEM, TSR_ELIMIT (path too long).
 */
int tsr_cache_open(const char *dir, struct tsr_cache **out, char *err, size_t errlen);

/* Closes the cache (abandoning downloads) and frees it; null-safe. */
void tsr_cache_destroy(struct tsr_cache **c);

/* The cache folder as given (borrowed). */
const char *tsr_cache_dir(const struct tsr_cache *c);

/* Writes scenes/<hash> under the cache folder. Returns 0 or TSR_ELIMIT. */
int tsr_cache_scene_dir(const struct tsr_cache *c, const char *hash, char *buf,
                        size_t size);

/*
 * Makes the scene archive hash (of size bytes) available. Sets *ready to 1
 * when scenes/<hash> exists (extracting a cached blob if needed), or to 0
 * when a download is under way (started now or shared with earlier callers);
 * its end is reported by tsr_cache_on_data, tsr_cache_on_error or
 * tsr_cache_tick. Returns 0, or the failure (err says why): TSR_ELIMIT,
 * TSR_EHASH, TSR_EIO, TSR_EFULL and the codes of tsr_archive_extract.
 */
int tsr_cache_ensure(struct tsr_cache *c, struct tsr_agent *a, const char *hash,
                     uint64_t size, int *ready, char *err, size_t errlen);

/*
 * Takes a DATA message. Returns 1 when it completed a download (*done says
 * how: the blob is verified, renamed and extracted, or the download failed),
 * 0 when it was taken or stale, TSR_EPROTO when malformed (err says why).
 */
int tsr_cache_on_data(struct tsr_cache *c, struct tsr_agent *a, const struct tsr_msg *m,
                      struct tsr_cache_done *done, char *err, size_t errlen);

/* Takes an ERROR that answers a GET with request id rid. Returns 1 when it
 * ended a download (*done says so), 2 when the GET will be asked again (the
 * master's TSR_EBUSY: past its credit), 0 when the rid is not ours. */
int tsr_cache_on_error(struct tsr_cache *c, int64_t rid, int code, const char *message,
                       struct tsr_cache_done *done);

/*
 * Keeps the cache within max_bytes (0: no bound), least recently used
 * first: removes archives and their extracted scenes, oldest use first,
 * never one in_use(ctx, hash) says a task holds, nor one being downloaded.
 * Every hit of tsr_cache_ensure counts as a use. Returns how many archives
 * went.
 */
int tsr_cache_trim(struct tsr_cache *c, uint64_t max_bytes,
                   int (*in_use)(void *ctx, const char *hash), void *ctx);

/* Sends the GETs of every download again (after a WELCOME). */
void tsr_cache_resume(struct tsr_cache *c, struct tsr_agent *a);

/* Runs the stall timers. Returns 1 when it gave a download up (*done says
 * which), else 0; *next receives the next time it needs to run. */
int tsr_cache_tick(struct tsr_cache *c, struct tsr_agent *a, int64_t now_ms,
                   struct tsr_cache_done *done, int64_t *next);

#endif
