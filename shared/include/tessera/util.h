/*
 * util.h: small helpers every program needs: clocks, files and folders.
 */
#ifndef TESSERA_UTIL_H
#define TESSERA_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Milliseconds on the monotonic clock (for timeouts). */
int64_t tsr_now_ms(void);
/* Milliseconds since the Unix epoch (for records shown to people). */
int64_t tsr_wall_ms(void);

/* Creates a folder and its parents (mode 0755). Returns 0 or TSR_EIO. */
int tsr_mkdir_p(const char *path);

/* Removes a file or a folder tree; a missing path is not an error.
 * Never follows symbolic links. Returns 0 or TSR_EIO. */
int tsr_rm_rf(const char *path);

/* Reads a whole file (at most max bytes) into *data (malloc'd,
 * NUL-terminated, caller owns). Returns 0, TSR_ENOTFOUND, TSR_ELIMIT,
 * TSR_EIO, TSR_ENOMEM. */
int tsr_read_file(const char *path, size_t max, char **data, size_t *len);

/* Writes data to path through a temporary file, fsync and rename.
 * Returns 0, TSR_EIO, TSR_EFULL. */
int tsr_write_file_atomic(const char *path, const void *data, size_t len);

/* Like tsr_write_file_atomic without the fsync: readers see the old or the
 * new content, never a mix, and the data survives the process but not a
 * power loss. For state that is only a cache of what a peer can redo. */
int tsr_write_file_replace(const char *path, const void *data, size_t len);

/* Copies a file (to a temporary name, then rename). Returns 0, TSR_ENOTFOUND,
 * TSR_EIO, TSR_EFULL. */
int tsr_copy_file(const char *src, const char *dst);

/* True when path exists (any type). */
int tsr_path_exists(const char *path);

/* snprintf into a fixed buffer; returns 0, or TSR_ELIMIT when truncated. */
int tsr_fmt(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
