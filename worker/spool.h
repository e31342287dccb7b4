/*
 * spool.h: finished results, kept on disk until the master acknowledges
 * them (RESULT_ACK), across reconnects and worker restarts.
 *
 * Each result is a folder <cache>/spool/<attempt>/ holding result.json (the
 * record: attempt, ok, files [{frame, hash, size, name}], render_ms, log,
 * class, error) and the rendered files it names. An entry appears whole or
 * not at all: it is built in spool/.tmp-<attempt>/ and renamed into place.
 * Leftover .tmp-* folders are a crash's debris and are removed at open.
 */
#ifndef TESSERA_WORKER_SPOOL_H
#define TESSERA_WORKER_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#define TSR_SPOOL_MAX_RECORD (1024 * 1024) /* largest result.json read back */

struct tsr_spool;

/* Opens (creating) the spool folder dir and sweeps leftovers.
 * Returns 0, TSR_EIO, TSR_ELIMIT, TSR_ENOMEM. */
int tsr_spool_open(const char *dir, struct tsr_spool **out);

/* Frees the handle (the entries stay on disk); null-safe. */
void tsr_spool_destroy(struct tsr_spool **s);

/*
 * Stores a result: moves the nfiles files at paths[i] (on the same file
 * system) into the entry under names[i], and writes record (borrowed).
 * The entry is complete when this returns 0. Returns 0, TSR_EEXIST (an entry
 * for attempt exists), TSR_EIO, TSR_EFULL, TSR_ELIMIT, TSR_ENOMEM.
 */
int tsr_spool_commit(struct tsr_spool *s, int64_t attempt, const cJSON *record,
                     const char *const *paths, const char *const *names, size_t nfiles);

/* Replaces an entry's record (written atomically).
 * Returns 0, TSR_ENOTFOUND, TSR_EIO, TSR_EFULL, TSR_ENOMEM. */
int tsr_spool_rewrite(struct tsr_spool *s, int64_t attempt, const cJSON *record);

/* Lists the attempts that have entries, in ascending order. *attempts is
 * malloc'd (caller owns; NULL when none). Returns 0, TSR_EIO, TSR_ENOMEM. */
int tsr_spool_list(struct tsr_spool *s, int64_t **attempts, size_t *n);

/*
 * Reads an entry's record and checks it: the attempt matches, ok is a
 * boolean, each file has a frame, a hash, a size and a plain name, and the
 * file is there with that size. *record is the caller's.
 * Returns 0, TSR_ENOTFOUND, TSR_EPROTO (damaged; err says why), TSR_EIO,
 * TSR_ENOMEM.
 */
int tsr_spool_load(struct tsr_spool *s, int64_t attempt, cJSON **record, char *err,
                   size_t errlen);

/* Writes the path of file name in the entry of attempt. Returns 0 or
 * TSR_ELIMIT. */
int tsr_spool_path(const struct tsr_spool *s, int64_t attempt, const char *name,
                   char *buf, size_t size);

/* Deletes an entry; a missing one is not an error. Returns 0 or TSR_EIO. */
int tsr_spool_remove(struct tsr_spool *s, int64_t attempt);

#endif
