/*
 * manifest.h: what an extracted scene held when it was extracted, so that a
 * change to it (an operator's edit, a renderer run with --sandbox none,
 * another process on the host) is seen before the next task renders from it.
 *
 * A manifest lists every entry under the scene folder with its type, size,
 * mtime, ctime, inode and, for files, the sha256 of its content. It is kept
 * outside the scene folder (the renderer sees only that folder). Checking it
 * costs one lstat per entry and no read of any file's content: any write or
 * chmod sets a file's ctime to now, and no user can set a ctime back, so a
 * file whose stat matches was not changed since extraction.
 */
#ifndef TSR_WORKER_MANIFEST_H
#define TSR_WORKER_MANIFEST_H

#include <stddef.h>

/* Writes the manifest of folder scene to path (atomically). Returns 0,
 * TSR_ENOMEM, TSR_ELIMIT (a path too long or with a newline), TSR_EIO; err
 * says why. */
int tsr_manifest_write(const char *scene, const char *path, char *err, size_t errlen);

/* Compares folder scene with the manifest at path, by lstat only. Returns 0
 * when every entry is as recorded, 1 when something differs (what, e.g.
 * "extracted file 'scene.json' changed", says which), or a negative TSR_E*
 * when the manifest is missing or unreadable (what says so). */
int tsr_manifest_check(const char *scene, const char *path, char *what, size_t len);

#endif
