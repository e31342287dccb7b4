/*
 * archive.h: scene archives (tar, tar.gz, tar.zst, zip) through libarchive.
 *
 * The master checks an archive before it accepts a job; the worker checks it
 * again when it extracts (defence in depth). The check refuses: unreadable or
 * non-archive files, truncated data, absolute paths, ".." components, links
 * (symbolic or hard) whose target leaves the archive root, device nodes,
 * FIFOs, sockets, setuid/setgid bits, paths or names past the length limits,
 * more entries than the limit, a total expanded size past the limit, and an
 * expansion ratio past the limit. Extraction never restores owners and never
 * follows a link out of the destination; it writes into a staging folder
 * beside the destination and renames it into place only when complete.
 */
#ifndef TESSERA_ARCHIVE_H
#define TESSERA_ARCHIVE_H

#include <stddef.h>
#include <stdint.h>

/* Limits on what an archive may hold. */
struct tsr_archive_limits {
    uint64_t max_entries;     /* most entries (files, folders, links) */
    uint64_t max_total_size;  /* most bytes once expanded */
    uint64_t max_entry_size;  /* most bytes in one file */
    size_t max_path;          /* longest entry path, bytes */
    size_t max_name;          /* longest path component, bytes */
    uint64_t max_ratio;       /* most expanded bytes per archive byte */
};

/* Defaults: 100000 entries, 64 GiB expanded, 16 GiB per entry, 1024-byte
 * paths, 255-byte names, ratio 1000. */
void tsr_archive_limits_default(struct tsr_archive_limits *lim);

/* What a successful check found. */
struct tsr_archive_report {
    uint64_t entries;     /* entries seen */
    uint64_t total_size;  /* expanded bytes of regular files */
    int has_scene;        /* the scene file was found as a regular file */
};

/*
 * Reads every entry of the archive at path and applies the limits and the
 * rules above. When scene is not NULL, it must name a regular file inside
 * the archive (a path relative to the root, "./" prefixes ignored), else the
 * check fails with TSR_ENOTFOUND. err receives a one-line reason naming the
 * entry, such as "entry '../x' escapes the scene root".
 * Returns 0, TSR_EARCHIVE, TSR_EUNSAFE, TSR_ELIMIT, TSR_ENOTFOUND, TSR_EIO.
 */
int tsr_archive_check(const char *path, const struct tsr_archive_limits *lim,
                      const char *scene, struct tsr_archive_report *report,
                      char *err, size_t errlen);

/*
 * Checks, then extracts the archive at path into the folder dest (which must
 * not exist yet; its parent must). Files get mode 0644 (0755 when any x bit
 * was set), folders 0755; owners and other bits are never restored.
 * Returns the codes of tsr_archive_check, TSR_EEXIST, TSR_EFULL.
 */
int tsr_archive_extract(const char *path, const struct tsr_archive_limits *lim,
                        const char *dest, char *err, size_t errlen);

/*
 * Reads one regular file (name as in tsr_archive_check) from the archive into
 * memory, at most max_size bytes. *data (malloc'd, NUL-terminated, caller
 * owns) and *size receive it. Returns 0, TSR_ENOTFOUND, TSR_ELIMIT,
 * TSR_EARCHIVE, TSR_EIO.
 */
int tsr_archive_read_file(const char *path, const char *name, size_t max_size,
                          char **data, size_t *size, char *err, size_t errlen);

/*
 * Packs the folder dir (recursively; regular files, folders and symlinks that
 * stay inside dir) into a zstd-compressed tar at out, with paths relative to
 * dir, sorted, and with fixed owners and times so that the same folder gives
 * the same bytes (and so the same hash) each time.
 * Returns 0, TSR_ENOTFOUND, TSR_EIO, TSR_EARCHIVE.
 */
int tsr_archive_pack_dir(const char *dir, const char *out, char *err, size_t errlen);

#endif
