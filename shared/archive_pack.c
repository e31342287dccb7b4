/*
 * archive_pack.c: tsr_archive_pack_dir of archive.h: a folder into a
 * zstd-compressed tar whose bytes depend only on the folder's names,
 * contents, x bits and links.
 *
 * The same scene packed twice, on two machines, by two processes, must give
 * the same hash, so that the blob store and the workers' caches see one
 * scene. Hence: names sorted bytewise (not by locale), owners 0 and no
 * names, times 0, modes reduced to 0644/0755 as extraction would set them,
 * restricted pax (extended headers only where ustar cannot hold a name).
 * A link is kept only when it stays inside the folder by the same
 * resolution the check applies (arcpath.h), special files are left out, and
 * names the check would refuse fail the pack, so a packed scene passes the
 * check with the default limits (short of the size and ratio limits: a
 * folder of 100 MB of zeros packs past a ratio of 1000).
 */
#include "arcpath.h"
#include "tessera/archive.h"
#include "tessera/error.h"
#include "tessera/hash.h"
#include "tessera/log.h"
#include "tessera/util.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_CHUNK (64 * 1024) /* bytes read from the archive at a time */

__attribute__((format(printf, 3, 4))) static void s_errf(char *err, size_t errlen,
                                                         const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* libarchive's message for ar, on one line. */
static const char *s_arerr(struct archive *ar, char out[TSR_ARCPATH_QUOTE + 4])
{
    const char *m = ar ? archive_error_string(ar) : NULL;
    return tsr_arcpath_quote(m ? m : "unknown error", out);
}

/* One thing found under the folder being packed. */
struct s_pent {
    char *rel;    /* path relative to the folder */
    int kind;     /* TSR_ARCPATH_DIR, _FILE or _LINK; _GONE when left out */
    int exec;     /* a file with some x bit set */
    char *target; /* a link's target */
};

/* The things found, in archive order. */
struct s_plist {
    struct s_pent *v; /* entries */
    size_t n;         /* entries used */
    size_t cap;       /* entries allocated */
};

static int s_cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int s_plist_add(struct s_plist *l, const char *rel, int kind, int exec,
                       char *target)
{
    if (l->n == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 64;
        struct s_pent *nv = realloc(l->v, ncap * sizeof *nv);
        if (!nv)
            return TSR_ENOMEM;
        l->v = nv;
        l->cap = ncap;
    }
    char *r = strdup(rel);
    if (!r)
        return TSR_ENOMEM;
    l->v[l->n++] = (struct s_pent){r, kind, exec, target};
    return 0;
}

static void s_plist_free(struct s_plist *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].rel);
        free(l->v[i].target);
    }
    free(l->v);
}

/* Lists the folder top/rel depth first, names sorted bytewise (not by
 * locale), so the same tree always gives the same order. skip is the
 * output file, in case it lies inside the folder. */
static int s_walk(const char *top, const char *rel, const struct stat *skip,
                  const struct tsr_archive_limits *lim, struct s_plist *l, char *err,
                  size_t errlen)
{
    char full[4096], q[TSR_ARCPATH_QUOTE + 4];
    if (tsr_fmt(full, sizeof full, "%s%s%s", top, rel[0] ? "/" : "", rel) != 0) {
        s_errf(err, errlen, "'%s': path too long", tsr_arcpath_quote(rel, q));
        return TSR_EIO;
    }
    DIR *d = opendir(full);
    if (!d) {
        s_errf(err, errlen, "'%s': cannot list (%s)", tsr_arcpath_quote(full, q),
               strerror(errno));
        return TSR_EIO;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 32;
            char **nn = realloc(names, cap * sizeof *nn);
            if (!nn) {
                rc = TSR_ENOMEM;
                break;
            }
            names = nn;
        }
        if (!(names[n] = strdup(de->d_name))) {
            rc = TSR_ENOMEM;
            break;
        }
        n++;
    }
    closedir(d);
    if (rc == 0 && n > 1) /* an empty folder has no array to sort (UBSan) */
        qsort(names, n, sizeof *names, s_cmp_name);
    for (size_t i = 0; i < n && rc == 0; i++) {
        char crel[4096], cfull[4096];
        if (tsr_fmt(crel, sizeof crel, "%s%s%s", rel, rel[0] ? "/" : "", names[i]) != 0 ||
            tsr_fmt(cfull, sizeof cfull, "%s/%s", top, crel) != 0) {
            s_errf(err, errlen, "'%s': path too long", tsr_arcpath_quote(names[i], q));
            rc = TSR_EIO;
            break;
        }
        /* What the check would refuse fails here, with the reason. */
        if (tsr_arcpath_has_control(names[i])) {
            s_errf(err, errlen, "'%s': name has a control character",
                   tsr_arcpath_quote(crel, q));
            rc = TSR_EARCHIVE;
            break;
        }
        if (strlen(names[i]) > lim->max_name || strlen(crel) > lim->max_path) {
            s_errf(err, errlen,
                   "'%s': name longer than %zu or path longer than %zu bytes",
                   tsr_arcpath_quote(crel, q), lim->max_name, lim->max_path);
            rc = TSR_EARCHIVE;
            break;
        }
        struct stat st;
        if (lstat(cfull, &st) != 0) {
            s_errf(err, errlen, "'%s': %s", tsr_arcpath_quote(cfull, q), strerror(errno));
            rc = TSR_EIO;
            break;
        }
        if (skip && st.st_dev == skip->st_dev && st.st_ino == skip->st_ino)
            continue;
        if (S_ISDIR(st.st_mode)) {
            rc = s_plist_add(l, crel, TSR_ARCPATH_DIR, 0, NULL);
            if (rc == 0)
                rc = s_walk(top, crel, skip, lim, l, err, errlen);
        } else if (S_ISREG(st.st_mode)) {
            rc = s_plist_add(l, crel, TSR_ARCPATH_FILE, (st.st_mode & 0111) != 0, NULL);
        } else if (S_ISLNK(st.st_mode)) {
            char *t = malloc(4096);
            ssize_t tl = t ? readlink(cfull, t, 4096) : -1;
            if (tl <= 0 || tl >= 4096) {
                free(t);
                s_errf(err, errlen, "'%s': cannot read link",
                       tsr_arcpath_quote(cfull, q));
                rc = TSR_EIO;
                break;
            }
            t[tl] = '\0';
            rc = s_plist_add(l, crel, TSR_ARCPATH_LINK, 0, t);
            if (rc != 0)
                free(t);
        } else {
            tsr_log(TSR_LOG_DEBUG, "archive", "pack: skipping special file '%s'",
                    tsr_arcpath_quote(cfull, q));
        }
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}

/* Leaves out the links that would leave the folder, directly or through
 * other links, until the rest all stay inside (leaving one out can change
 * where another resolves, hence the loop). */
static int s_prune_links(struct s_plist *l, size_t max_path)
{
    struct tsr_arcpath_table t;
    int rc = tsr_arcpath_init(&t, l->n + 16);
    /* The folder is ours, and the loop below may resolve a link many times. */
    t.steps_left = UINT64_MAX;
    for (size_t i = 0; i < l->n && rc == 0; i++) {
        uint32_t link = 0;
        int kind = l->v[i].kind;
        /* Targets the check would refuse whatever they point at. */
        if (kind == TSR_ARCPATH_LINK && (tsr_arcpath_has_control(l->v[i].target) ||
                                         strlen(l->v[i].target) > max_path))
            kind = TSR_ARCPATH_GONE;
        if (kind == TSR_ARCPATH_LINK)
            rc = tsr_arcpath_add_link(&t, l->v[i].rel, l->v[i].target, &link);
        if (rc == 0)
            rc = tsr_arcpath_add(&t, l->v[i].rel, strlen(l->v[i].rel), kind, link);
    }
    for (int changed = 1; changed && rc == 0;) {
        changed = 0;
        for (size_t i = 0; i < t.nlinks && rc == 0; i++) {
            struct tsr_arcpath_node *n =
                tsr_arcpath_find(&t, t.links[i].path, strlen(t.links[i].path));
            if (n->kind != TSR_ARCPATH_LINK)
                continue;
            int r = tsr_arcpath_resolve_link(&t, i, max_path);
            if (r < 0)
                rc = r;
            else if (r > 0) {
                n->kind = TSR_ARCPATH_GONE;
                changed = 1;
            }
        }
    }
    for (size_t i = 0; i < l->n && rc == 0; i++) {
        if (l->v[i].kind != TSR_ARCPATH_LINK)
            continue;
        if (tsr_arcpath_find(&t, l->v[i].rel, strlen(l->v[i].rel))->kind ==
            TSR_ARCPATH_GONE) {
            char q[TSR_ARCPATH_QUOTE + 4], g[TSR_ARCPATH_QUOTE + 4];
            tsr_log(TSR_LOG_DEBUG, "archive", "pack: leaving out link '%s' to '%s'",
                    tsr_arcpath_quote(l->v[i].rel, q),
                    tsr_arcpath_quote(l->v[i].target, g));
            l->v[i].kind = TSR_ARCPATH_GONE;
        }
    }
    tsr_arcpath_free(&t);
    return rc;
}

/* Writes the data of the regular file at full into w, exactly as many bytes
 * as its header says. */
static int s_pack_file(struct archive *w, struct archive_entry *e, const char *full,
                       char *buf, char *err, size_t errlen)
{
    char q[TSR_ARCPATH_QUOTE + 4], m[TSR_ARCPATH_QUOTE + 4];
    int fd = open(full, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        s_errf(err, errlen, "'%s': cannot read (%s)", tsr_arcpath_quote(full, q),
               fd < 0 ? strerror(errno) : "changed while packing");
        if (fd >= 0)
            close(fd);
        return TSR_EIO;
    }
    archive_entry_set_size(e, st.st_size);
    if (archive_write_header(w, e) != ARCHIVE_OK) {
        s_errf(err, errlen, "'%s': %s", tsr_arcpath_quote(full, q), s_arerr(w, m));
        close(fd);
        return TSR_EARCHIVE;
    }
    uint64_t left = (uint64_t)st.st_size;
    while (left > 0) {
        ssize_t n = read(fd, buf, left < S_CHUNK ? (size_t)left : S_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            s_errf(err, errlen, "'%s': %s", tsr_arcpath_quote(full, q),
                   n < 0 ? strerror(errno) : "shrank while packing");
            close(fd);
            return TSR_EIO;
        }
        if (archive_write_data(w, buf, (size_t)n) != n) {
            s_errf(err, errlen, "'%s': %s", tsr_arcpath_quote(full, q), s_arerr(w, m));
            close(fd);
            return TSR_EIO;
        }
        left -= (uint64_t)n;
    }
    close(fd);
    return 0;
}

/* Writes the listed entries into w with fixed owners, times and modes. */
static int s_pack_write(struct archive *w, const char *dir, const struct s_plist *l,
                        char *err, size_t errlen)
{
    char *buf = malloc(S_CHUNK);
    struct archive_entry *e = archive_entry_new();
    int rc = buf && e ? 0 : TSR_ENOMEM;
    for (size_t i = 0; i < l->n && rc == 0; i++) {
        const struct s_pent *p = &l->v[i];
        if (p->kind == TSR_ARCPATH_GONE)
            continue;
        archive_entry_clear(e);
        archive_entry_set_pathname(e, p->rel);
        archive_entry_set_uid(e, 0);
        archive_entry_set_gid(e, 0);
        archive_entry_set_mtime(e, 0, 0);
        char full[4096], q[TSR_ARCPATH_QUOTE + 4], m[TSR_ARCPATH_QUOTE + 4];
        if (p->kind == TSR_ARCPATH_FILE) {
            archive_entry_set_filetype(e, AE_IFREG);
            archive_entry_set_perm(e, p->exec ? 0755 : 0644);
            if (tsr_fmt(full, sizeof full, "%s/%s", dir, p->rel) != 0) {
                s_errf(err, errlen, "'%s': path too long", tsr_arcpath_quote(p->rel, q));
                rc = TSR_EIO;
            } else {
                rc = s_pack_file(w, e, full, buf, err, errlen);
            }
            continue;
        }
        if (p->kind == TSR_ARCPATH_DIR) {
            archive_entry_set_filetype(e, AE_IFDIR);
            archive_entry_set_perm(e, 0755);
        } else {
            archive_entry_set_filetype(e, AE_IFLNK);
            archive_entry_set_perm(e, 0777);
            archive_entry_set_symlink(e, p->target);
        }
        archive_entry_set_size(e, 0);
        if (archive_write_header(w, e) != ARCHIVE_OK) {
            s_errf(err, errlen, "'%s': %s", tsr_arcpath_quote(p->rel, q), s_arerr(w, m));
            rc = TSR_EARCHIVE;
        }
    }
    if (e)
        archive_entry_free(e);
    free(buf);
    return rc;
}

int tsr_archive_pack_dir(const char *dir, const char *out, char *err, size_t errlen)
{
    char q[TSR_ARCPATH_QUOTE + 4], m[TSR_ARCPATH_QUOTE + 4], tmp[4200];
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        s_errf(err, errlen, "'%s': no such folder", tsr_arcpath_quote(dir, q));
        return TSR_ENOTFOUND;
    }
    if (tsr_fmt(tmp, sizeof tmp, "%s.tmp.%ld", out, (long)getpid()) != 0) {
        s_errf(err, errlen, "'%s': path too long", tsr_arcpath_quote(out, q));
        return TSR_EIO;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        s_errf(err, errlen, "'%s': cannot create (%s)", tsr_arcpath_quote(tmp, q),
               strerror(errno));
        return TSR_EIO;
    }
    struct stat self;
    struct s_plist l = {0};
    /* The packed scene must pass a check with the default limits. */
    struct tsr_archive_limits lim;
    tsr_archive_limits_default(&lim);
    struct archive *w = NULL;
    int rc = fstat(fd, &self) == 0 ? 0 : TSR_EIO;
    if (rc == 0)
        rc = s_walk(dir, "", &self, &lim, &l, err, errlen);
    if (rc == 0 && tsr_hash_init_library() != 0)
        rc = TSR_EIO;
    if (rc == 0)
        rc = s_prune_links(&l, lim.max_path);
    if (rc == 0) {
        w = archive_write_new();
        if (!w || archive_write_set_format_pax_restricted(w) != ARCHIVE_OK ||
            archive_write_add_filter_zstd(w) != ARCHIVE_OK ||
            archive_write_open_fd(w, fd) != ARCHIVE_OK) {
            s_errf(err, errlen, "'%s': cannot start the archive (%s)",
                   tsr_arcpath_quote(out, q), s_arerr(w, m));
            rc = TSR_EARCHIVE;
        }
    }
    if (rc == 0)
        rc = s_pack_write(w, dir, &l, err, errlen);
    if (w) {
        if (archive_write_close(w) != ARCHIVE_OK && rc == 0) {
            s_errf(err, errlen, "'%s': %s", tsr_arcpath_quote(out, q), s_arerr(w, m));
            rc = TSR_EIO;
        }
        archive_write_free(w);
    }
    if (rc == 0 && fsync(fd) != 0) {
        s_errf(err, errlen, "'%s': %s", tsr_arcpath_quote(out, q), strerror(errno));
        rc = TSR_EIO;
    }
    if (close(fd) != 0 && rc == 0) {
        s_errf(err, errlen, "'%s': %s", tsr_arcpath_quote(out, q), strerror(errno));
        rc = TSR_EIO;
    }
    if (rc == 0 && rename(tmp, out) != 0) {
        s_errf(err, errlen, "'%s': %s", tsr_arcpath_quote(out, q), strerror(errno));
        rc = TSR_EIO;
    }
    if (rc != 0)
        unlink(tmp);
    s_plist_free(&l);
    return rc;
}
