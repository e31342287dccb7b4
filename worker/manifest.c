/*
 * manifest.c: the record of an extracted scene and its cheap check
 * (manifest.h).
 *
 * The file is text, one entry a line, sorted by path:
 *     <type> <size> <mtime_ns> <ctime_ns> <inode> <sha256 or -> <path>
 * type is f (file), d (folder) or l (link); path is relative to the scene
 * and last, so it may hold spaces (a path with a newline is refused). A
 * folder's times are not compared: adding or removing an entry is seen as
 * that entry, and a folder's own stat changes with no effect on a render.
 */
#include "manifest.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tessera/error.h"
#include "tessera/hash.h"
#include "tessera/util.h"

/* One entry under the scene folder. */
struct s_ent {
    char *path;             /* relative to the scene, owned */
    char type;              /* 'f', 'd' or 'l' ('o' for anything else) */
    uint64_t size;          /* st_size */
    int64_t mtime_ns;       /* st_mtim in nanoseconds */
    int64_t ctime_ns;       /* st_ctim in nanoseconds */
    uint64_t ino;           /* st_ino */
    char sha[TSR_HASH_HEX]; /* content hash of a file, "-" otherwise */
};

/* A growing list of entries. */
struct s_list {
    struct s_ent *e; /* the entries */
    size_t n;        /* in use */
    size_t cap;      /* allocated */
};

static void s_list_free(struct s_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->e[i].path);
    free(l->e);
    l->e = NULL;
    l->n = l->cap = 0;
}

static struct s_ent *s_list_add(struct s_list *l)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        struct s_ent *ne = realloc(l->e, cap * sizeof *ne);
        if (!ne)
            return NULL;
        l->e = ne;
        l->cap = cap;
    }
    struct s_ent *x = &l->e[l->n++];
    memset(x, 0, sizeof *x);
    strcpy(x->sha, "-");
    return x;
}

static int64_t s_ns(struct timespec t)
{
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static void s_fill(struct s_ent *x, const struct stat *st)
{
    x->type = S_ISREG(st->st_mode)   ? 'f'
              : S_ISDIR(st->st_mode) ? 'd'
              : S_ISLNK(st->st_mode) ? 'l'
                                     : 'o';
    x->size = (uint64_t)st->st_size;
    x->mtime_ns = s_ns(st->st_mtim);
    x->ctime_ns = s_ns(st->st_ctim);
    x->ino = (uint64_t)st->st_ino;
}

/* Adds every entry under root/rel (rel "" for root itself) to l, by lstat,
 * hashing files when hash is set. Returns 0 or a negative TSR_E*. */
static int s_walk(const char *root, const char *rel, int hash, struct s_list *l,
                  int depth)
{
    char dir[PATH_MAX];
    if (depth > 64)
        return TSR_ELIMIT;
    if (tsr_fmt(dir, sizeof dir, rel[0] ? "%s/%s" : "%s%s", root, rel) != 0)
        return TSR_ELIMIT;
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? TSR_ENOTFOUND : TSR_EIO;
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char sub[PATH_MAX], full[PATH_MAX];
        struct stat st;
        if (tsr_fmt(sub, sizeof sub, rel[0] ? "%s/%s" : "%s%s", rel, de->d_name) != 0 ||
            tsr_fmt(full, sizeof full, "%s/%s", root, sub) != 0 ||
            strchr(de->d_name, '\n')) {
            rc = TSR_ELIMIT;
            break;
        }
        if (lstat(full, &st) != 0) {
            rc = TSR_EIO;
            break;
        }
        struct s_ent *x = s_list_add(l);
        if (!x || !(x->path = strdup(sub))) {
            rc = TSR_ENOMEM;
            break;
        }
        s_fill(x, &st);
        if (hash && x->type == 'f' && (rc = tsr_hash_file(full, x->sha, NULL)) != 0)
            break;
        if (x->type == 'd')
            rc = s_walk(root, sub, hash, l, depth + 1);
    }
    closedir(d);
    return rc;
}

static int s_by_path(const void *a, const void *b)
{
    return strcmp(((const struct s_ent *)a)->path, ((const struct s_ent *)b)->path);
}

int tsr_manifest_write(const char *scene, const char *path, char *err, size_t errlen)
{
    struct s_list l = {0};
    int rc = s_walk(scene, "", 1, &l, 0);
    if (rc != 0) {
        snprintf(err, errlen, "cannot list the extracted scene: %s", tsr_strerror(rc));
        s_list_free(&l);
        return rc;
    }
    if (l.n > 0)
        qsort(l.e, l.n, sizeof *l.e, s_by_path);
    char *buf = NULL;
    size_t blen = 0;
    FILE *m = open_memstream(&buf, &blen);
    if (!m) {
        s_list_free(&l);
        return TSR_ENOMEM;
    }
    for (size_t i = 0; i < l.n; i++) {
        const struct s_ent *x = &l.e[i];
        fprintf(m, "%c %" PRIu64 " %" PRId64 " %" PRId64 " %" PRIu64 " %s %s\n", x->type,
                x->size, x->mtime_ns, x->ctime_ns, x->ino, x->sha, x->path);
    }
    s_list_free(&l);
    if (fclose(m) != 0) {
        free(buf);
        return TSR_ENOMEM;
    }
    rc = tsr_write_file_replace(path, buf, blen);
    free(buf);
    if (rc != 0)
        snprintf(err, errlen, "cannot write the scene's manifest: %s", tsr_strerror(rc));
    return rc;
}

/* Reads a manifest into l (sorted as written). */
static int s_load(const char *path, struct s_list *l)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return errno == ENOENT ? TSR_ENOTFOUND : TSR_EIO;
    char line[PATH_MAX + 256];
    int rc = 0;
    while (fgets(line, sizeof line, f)) {
        size_t n = strlen(line);
        if (n == 0 || line[n - 1] != '\n') {
            rc = TSR_EINVAL;
            break;
        }
        line[n - 1] = '\0';
        struct s_ent *x = s_list_add(l);
        if (!x) {
            rc = TSR_ENOMEM;
            break;
        }
        int at = 0;
        if (sscanf(line, "%c %" SCNu64 " %" SCNd64 " %" SCNd64 " %" SCNu64 " %64s %n",
                   &x->type, &x->size, &x->mtime_ns, &x->ctime_ns, &x->ino, x->sha,
                   &at) != 6 ||
            at == 0 || !line[at] || !(x->path = strdup(line + at))) {
            rc = TSR_EINVAL;
            break;
        }
    }
    fclose(f);
    return rc;
}

/* Whether an entry is as recorded: same type; a file or link also the same
 * size, mtime, ctime and inode. */
static int s_same(const struct s_ent *a, const struct s_ent *b)
{
    if (a->type != b->type)
        return 0;
    if (a->type == 'd')
        return 1;
    return a->size == b->size && a->mtime_ns == b->mtime_ns &&
           a->ctime_ns == b->ctime_ns && a->ino == b->ino;
}

int tsr_manifest_check(const char *scene, const char *path, char *what, size_t len)
{
    struct s_list want = {0}, have = {0};
    int rc = s_load(path, &want);
    if (rc != 0) {
        snprintf(what, len, "%s",
                 rc == TSR_ENOTFOUND ? "no record of its extracted files"
                                     : "its record of extracted files is unreadable");
        goto out;
    }
    rc = s_walk(scene, "", 0, &have, 0);
    if (rc != 0) {
        snprintf(what, len, "cannot list its extracted files: %s", tsr_strerror(rc));
        goto out;
    }
    if (have.n > 0)
        qsort(have.e, have.n, sizeof *have.e, s_by_path);
    /* Both sorted by path: a merge finds the first difference. */
    size_t i = 0, j = 0;
    while (i < want.n || j < have.n) {
        int c = i == want.n   ? 1
                : j == have.n ? -1
                              : strcmp(want.e[i].path, have.e[j].path);
        if (c < 0) {
            snprintf(what, len, "extracted file '%s' removed", want.e[i].path);
            rc = 1;
            goto out;
        }
        if (c > 0) {
            snprintf(what, len, "extracted file '%s' added", have.e[j].path);
            rc = 1;
            goto out;
        }
        if (!s_same(&want.e[i], &have.e[j])) {
            snprintf(what, len, "extracted file '%s' changed", want.e[i].path);
            rc = 1;
            goto out;
        }
        i++;
        j++;
    }
out:
    s_list_free(&want);
    s_list_free(&have);
    return rc;
}
