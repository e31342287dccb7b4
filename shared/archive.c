/*
 * archive.c: scene archives for archive.h: checking, safe extraction and
 * reading one member, through libarchive (packing is in archive_pack.c).
 *
 * Archives come from studios over the network, so every byte is hostile
 * until checked. One function, s_scan, walks an archive entry by entry and
 * applies every rule; the check is one scan, and extraction is a scan that
 * also writes, run after a full check of the same open file. Nothing trusts
 * a header's size: the data of every entry is read and counted, so a lying
 * header or a truncated stream is caught, and the scan stops the moment a
 * limit is crossed. Whether a symbolic link stays inside the root depends on
 * the other links (a link may pass through another one), so links are
 * resolved at the end of the scan against a table of every path seen
 * (arcpath.h).
 *
 * Extraction writes with our own code rather than archive_write_disk: every
 * folder is opened with O_NOFOLLOW relative to the staging folder, files are
 * created with O_EXCL, so no entry can write through a link whatever the
 * checks missed. Only the formats the header promises (tar in its variants,
 * zip) are enabled; in particular neither "raw" nor "empty" nor "mtree"
 * (whose entries name files on the local disk) can be selected.
 */
#include "tessera/archive.h"
#include "arcpath.h"
#include "tessera/error.h"
#include "tessera/hash.h"
#include "tessera/log.h"
#include "tessera/util.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_CHUNK (64 * 1024) /* bytes read from the archive at a time */

/* State of one pass over an archive. */
struct s_scan {
    const char *label;                    /* archive path, for messages */
    const struct tsr_archive_limits *lim; /* the limits applied */
    uint64_t file_size;                   /* archive bytes on disk, for the ratio */
    uint64_t entries;                     /* entries seen */
    uint64_t total;                       /* data bytes read over all entries */
    struct tsr_arcpath_table table;       /* paths seen */
    unsigned char *buf;                   /* S_CHUNK bytes of scratch */
    int root;                             /* staging folder when extracting, else -1 */
    const char *dest;                     /* destination, for messages */
    char *cache_path;                     /* folder of the last entry written */
    int cache_fd;                         /* that folder, open; -1 if none */
    char *err;                            /* caller's message buffer */
    size_t errlen;                        /* its size */
};

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

/* "64 GiB", "1 KiB" or "1000 B": limits as people wrote them. */
static const char *s_human(uint64_t v, char out[32])
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    int u = 0;
    while (u < 5 && v >= 1024 && v % 1024 == 0) {
        v /= 1024;
        u++;
    }
    snprintf(out, 32, "%llu %s", (unsigned long long)v, units[u]);
    return out;
}

static int s_errno_code(int e)
{
    return e == ENOSPC || e == EDQUOT ? TSR_EFULL : TSR_EIO;
}

/* ---- writing entries ---------------------------------------------------- */

/*
 * Opens the folder rel (normalised, relative to root) without following any
 * link, creating missing folders with mode 0755. The caller closes the
 * result. Returns an fd or a negative TSR_E* code.
 */
static int s_open_dir(int root, const char *rel, size_t len)
{
    int fd = openat(root, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return s_errno_code(errno);
    size_t i = 0;
    char name[4096];
    while (i < len) {
        size_t j = i;
        while (j < len && rel[j] != '/')
            j++;
        if (j - i >= sizeof name) {
            close(fd);
            return TSR_ELIMIT;
        }
        memcpy(name, rel + i, j - i);
        name[j - i] = '\0';
        int created = 0;
        if (mkdirat(fd, name, 0755) == 0)
            created = 1;
        else if (errno != EEXIST) {
            int e = errno;
            close(fd);
            return s_errno_code(e);
        }
        int nfd = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int e = errno;
        close(fd);
        if (nfd < 0)
            return e == ELOOP || e == ENOTDIR ? TSR_EUNSAFE : s_errno_code(e);
        if (created && fchmod(nfd, 0755) != 0) {
            close(nfd);
            return TSR_EIO;
        }
        fd = nfd;
        i = j + 1;
    }
    return fd;
}

/* The open parent folder of path, from a one-folder cache: archives list
 * the files of a folder together, so most entries reuse the last one. */
static int s_parent(struct s_scan *sc, const char *path, size_t len, const char **base)
{
    const char *slash = memrchr(path, '/', len);
    size_t plen = slash ? (size_t)(slash - path) : 0;
    *base = slash ? slash + 1 : path;
    if (sc->cache_fd >= 0 && strlen(sc->cache_path) == plen &&
        memcmp(sc->cache_path, path, plen) == 0)
        return sc->cache_fd;
    if (sc->cache_fd >= 0)
        close(sc->cache_fd);
    sc->cache_fd = -1;
    free(sc->cache_path);
    sc->cache_path = strndup(path, plen);
    if (!sc->cache_path)
        return TSR_ENOMEM;
    int fd = s_open_dir(sc->root, path, plen);
    if (fd >= 0)
        sc->cache_fd = fd;
    return fd;
}

/* Reports a failed write of entry shown into the destination. */
static int s_write_fail(struct s_scan *sc, int code, const char *shown)
{
    const char *why = code == TSR_EIO ? strerror(errno) : tsr_strerror(code);
    if (code == TSR_EFULL)
        s_errf(sc->err, sc->errlen, "'%s': no space left writing entry '%s'", sc->dest,
               shown);
    else if (code == TSR_EUNSAFE)
        s_errf(sc->err, sc->errlen, "entry '%s' would be written through a link", shown);
    else
        s_errf(sc->err, sc->errlen, "'%s': cannot write entry '%s' (%s)", sc->dest, shown,
               why);
    return code;
}

/* Creates the non-file entry path on disk. */
static int s_make(struct s_scan *sc, int kind, const char *path, size_t len,
                  const char *target, const char *shown)
{
    const char *base;
    int dfd = s_parent(sc, path, len, &base);
    if (dfd < 0)
        return s_write_fail(sc, dfd, shown);
    if (kind == TSR_ARCPATH_DIR) {
        if (mkdirat(dfd, base, 0755) != 0 && errno != EEXIST)
            return s_write_fail(sc, s_errno_code(errno), shown);
        int fd = openat(dfd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
            return s_write_fail(
                sc, errno == ELOOP || errno == ENOTDIR ? TSR_EUNSAFE : TSR_EIO, shown);
        int rc = fchmod(fd, 0755) == 0 ? 0 : TSR_EIO;
        close(fd);
        return rc == 0 ? 0 : s_write_fail(sc, rc, shown);
    }
    if (kind == TSR_ARCPATH_LINK) {
        if (symlinkat(target, dfd, base) != 0)
            return s_write_fail(sc, s_errno_code(errno), shown);
        return 0;
    }
    /* TSR_ARCPATH_HARD: the target's folder is opened without following links too. */
    const char *slash = strrchr(target, '/');
    size_t tplen = slash ? (size_t)(slash - target) : 0;
    int tfd = s_open_dir(sc->root, target, tplen);
    if (tfd < 0)
        return s_write_fail(sc, tfd, shown);
    int rc = linkat(tfd, slash ? slash + 1 : target, dfd, base, 0) == 0
                 ? 0
                 : s_errno_code(errno);
    close(tfd);
    return rc == 0 ? 0 : s_write_fail(sc, rc, shown);
}

static int s_write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return s_errno_code(errno);
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* ---- the scan ----------------------------------------------------------- */

/* Checks the size counters after n more bytes of entry shown. */
static int s_count(struct s_scan *sc, uint64_t *entry_bytes, size_t n, const char *shown)
{
    const struct tsr_archive_limits *lim = sc->lim;
    char h[32];
    *entry_bytes += n;
    sc->total += n;
    if (*entry_bytes > lim->max_entry_size) {
        s_errf(sc->err, sc->errlen, "entry '%s' is larger than the %s limit", shown,
               s_human(lim->max_entry_size, h));
        return TSR_ELIMIT;
    }
    if (sc->total > lim->max_total_size) {
        s_errf(sc->err, sc->errlen, "archive expands past %s limit",
               s_human(lim->max_total_size, h));
        return TSR_ELIMIT;
    }
    uint64_t allowed;
    if (!__builtin_mul_overflow(sc->file_size, lim->max_ratio, &allowed) &&
        sc->total > allowed) {
        s_errf(sc->err, sc->errlen,
               "archive expands more than %llu times its size of %llu bytes",
               (unsigned long long)lim->max_ratio, (unsigned long long)sc->file_size);
        return TSR_ELIMIT;
    }
    return 0;
}

/* Reads (and when fd >= 0 writes) the data of the current entry. */
static int s_data(struct s_scan *sc, struct archive *ar, int fd, const char *shown)
{
    uint64_t entry_bytes = 0;
    for (;;) {
        la_ssize_t n = archive_read_data(ar, sc->buf, S_CHUNK);
        if (n == 0)
            return 0;
        if (n < 0) {
            char m[TSR_ARCPATH_QUOTE + 4];
            s_errf(sc->err, sc->errlen, "'%s': truncated or damaged at entry '%s' (%s)",
                   sc->label, shown, s_arerr(ar, m));
            return TSR_EARCHIVE;
        }
        int rc = s_count(sc, &entry_bytes, (size_t)n, shown);
        if (rc != 0)
            return rc;
        if (fd >= 0) {
            rc = s_write_all(fd, sc->buf, (size_t)n);
            if (rc != 0)
                return s_write_fail(sc, rc, shown);
        }
    }
}

/* Classifies an entry, refusing the types a scene may not hold. */
static int s_kind_of(struct s_scan *sc, struct archive_entry *e, const char *shown)
{
    if (archive_entry_hardlink(e))
        return TSR_ARCPATH_HARD;
    switch (archive_entry_filetype(e)) {
    case AE_IFREG:
        return TSR_ARCPATH_FILE;
    case AE_IFDIR:
        return TSR_ARCPATH_DIR;
    case AE_IFLNK:
        return TSR_ARCPATH_LINK;
    case AE_IFCHR:
    case AE_IFBLK:
        s_errf(sc->err, sc->errlen, "entry '%s' is a device node", shown);
        return TSR_EUNSAFE;
    case AE_IFIFO:
        s_errf(sc->err, sc->errlen, "entry '%s' is a FIFO", shown);
        return TSR_EUNSAFE;
    case AE_IFSOCK:
        s_errf(sc->err, sc->errlen, "entry '%s' is a socket", shown);
        return TSR_EUNSAFE;
    default:
        s_errf(sc->err, sc->errlen, "entry '%s' has an unknown type", shown);
        return TSR_EUNSAFE;
    }
}

/* Checks the target of a link entry: its length and, for hard links, that
 * it names an earlier regular file. norm_target (strlen + 1 bytes) receives
 * the normalised hard-link target. */
static int s_check_target(struct s_scan *sc, int kind, const char *target,
                          char *norm_target, const char *shown)
{
    char q[TSR_ARCPATH_QUOTE + 4];
    const char *what = kind == TSR_ARCPATH_HARD ? "hard link" : "link";
    if (!target || !target[0]) {
        s_errf(sc->err, sc->errlen, "entry '%s' is a %s without a target", shown, what);
        return TSR_EARCHIVE;
    }
    if (strlen(target) > sc->lim->max_path) {
        s_errf(sc->err, sc->errlen, "entry '%s' has a %s target longer than %zu bytes",
               shown, what, sc->lim->max_path);
        return TSR_ELIMIT;
    }
    if (tsr_arcpath_has_control(target)) {
        s_errf(sc->err, sc->errlen, "entry '%s' has a control character in its target",
               shown);
        return TSR_EUNSAFE;
    }
    if (kind == TSR_ARCPATH_LINK)
        return 0; /* resolved at the end, when every link is known */
    size_t tlen;
    int rc = target[0] == '/'
                 ? TSR_EUNSAFE
                 : tsr_arcpath_normalize(target, (size_t)-1, norm_target, &tlen);
    if (rc != 0) {
        s_errf(sc->err, sc->errlen,
               "entry '%s' escapes the scene root (hard link to '%s')", shown,
               tsr_arcpath_quote(target, q));
        return TSR_EUNSAFE;
    }
    const struct tsr_arcpath_node *n = tsr_arcpath_find(&sc->table, norm_target, tlen);
    if (!n || (n->kind != TSR_ARCPATH_FILE && n->kind != TSR_ARCPATH_HARD)) {
        s_errf(sc->err, sc->errlen,
               "entry '%s' is a hard link to '%s', which is not an earlier file", shown,
               tsr_arcpath_quote(target, q));
        return TSR_EARCHIVE;
    }
    return 0;
}

/* Records path in the table: its folders must be folders, and it must not
 * be there already unless both are folders. */
static int s_record(struct s_scan *sc, const char *path, size_t len, int kind,
                    const char *target, const char *shown)
{
    struct tsr_arcpath_table *t = &sc->table;
    uint64_t key = TSR_ARCPATH_ROOT;
    int rc;
    /* Down the path one name at a time: each folder on the way must be a
     * folder, and is recorded as one when the archive does not list it. */
    for (size_t i = 0;;) {
        size_t j = i;
        while (j < len && path[j] != '/')
            j++;
        key = tsr_arcpath_child(t, key, path + i, j - i);
        if (j == len)
            break;
        const struct tsr_arcpath_node *n = tsr_arcpath_find_key(t, key);
        if (n && n->kind != TSR_ARCPATH_DIR) {
            s_errf(sc->err, sc->errlen,
                   "entry '%s' goes through '%.*s', which is not a folder", shown,
                   (int)(j < TSR_ARCPATH_QUOTE ? j : TSR_ARCPATH_QUOTE), path);
            return TSR_EUNSAFE;
        }
        if (!n && (rc = tsr_arcpath_add_key(t, key, TSR_ARCPATH_DIR, 0)) != 0)
            goto fail;
        i = j + 1;
    }
    const struct tsr_arcpath_node *n = tsr_arcpath_find_key(t, key);
    if (n) {
        if (n->kind == TSR_ARCPATH_DIR && kind == TSR_ARCPATH_DIR)
            return 0;
        s_errf(sc->err, sc->errlen, "entry '%s' appears twice", shown);
        return TSR_EUNSAFE;
    }
    uint32_t link = 0;
    if (kind == TSR_ARCPATH_LINK &&
        (rc = tsr_arcpath_add_link(t, path, target, &link)) != 0)
        goto fail;
    if ((rc = tsr_arcpath_add_key(t, key, kind, link)) != 0)
        goto fail;
    return 0;
fail:
    if (rc == TSR_ELIMIT)
        s_errf(sc->err, sc->errlen, "archive has more than %llu entries and folders",
               (unsigned long long)t->max_used);
    return rc;
}

/* Applies every per-entry rule to e, then reads (and writes) its data. */
static int s_entry(struct s_scan *sc, struct archive *ar, struct archive_entry *e)
{
    const struct tsr_archive_limits *lim = sc->lim;
    char shown[TSR_ARCPATH_QUOTE + 4];
    const char *raw = archive_entry_pathname(e);
    if (!raw) /* not representable in the locale's charset */
        raw = archive_entry_pathname_utf8(e);
    if (!raw) {
        s_errf(sc->err, sc->errlen, "'%s': entry %llu has no readable name", sc->label,
               (unsigned long long)sc->entries + 1);
        return TSR_EARCHIVE;
    }
    tsr_arcpath_quote(raw, shown);
    if (++sc->entries > lim->max_entries) {
        s_errf(sc->err, sc->errlen, "archive has more than %llu entries",
               (unsigned long long)lim->max_entries);
        return TSR_ELIMIT;
    }
    size_t rawlen = strlen(raw);
    if (rawlen > lim->max_path) {
        s_errf(sc->err, sc->errlen, "entry '%s' has a path longer than %zu bytes", shown,
               lim->max_path);
        return TSR_ELIMIT;
    }
    if (tsr_arcpath_has_control(raw)) {
        s_errf(sc->err, sc->errlen, "entry '%s' has a control character in its name",
               shown);
        return TSR_EUNSAFE;
    }
    if (raw[0] == '/') {
        s_errf(sc->err, sc->errlen, "entry '%s' has an absolute path", shown);
        return TSR_EUNSAFE;
    }
    int kind = s_kind_of(sc, e, shown);
    if (kind < 0)
        return kind;
    mode_t mode = archive_entry_mode(e);
    if (mode & (S_ISUID | S_ISGID)) {
        s_errf(sc->err, sc->errlen, "entry '%s' is %s", shown,
               (mode & S_ISUID) ? "setuid" : "setgid");
        return TSR_EUNSAFE;
    }
    const char *target = kind == TSR_ARCPATH_HARD   ? archive_entry_hardlink(e)
                         : kind == TSR_ARCPATH_LINK ? archive_entry_symlink(e)
                                                    : NULL;
    char *path = malloc(rawlen + 1);
    char *norm_target = target ? malloc(strlen(target) + 1) : NULL;
    int fd = -1;
    int rc = TSR_ENOMEM;
    if (!path || (target && !norm_target))
        goto out;
    size_t len;
    rc = tsr_arcpath_normalize(raw, lim->max_name, path, &len);
    if (rc == TSR_EUNSAFE) {
        s_errf(sc->err, sc->errlen, "entry '%s' escapes the scene root", shown);
        goto out;
    }
    if (rc == TSR_ELIMIT) {
        s_errf(sc->err, sc->errlen, "entry '%s' has a name longer than %zu bytes", shown,
               lim->max_name);
        goto out;
    }
    if (kind == TSR_ARCPATH_LINK || kind == TSR_ARCPATH_HARD) {
        rc = s_check_target(sc, kind, target, norm_target, shown);
        if (rc != 0)
            goto out;
    }
    if (len == 0) {
        /* The root itself, as "./" in many tars: nothing to record. */
        rc = kind == TSR_ARCPATH_DIR ? 0 : TSR_EUNSAFE;
        if (rc != 0)
            s_errf(sc->err, sc->errlen, "entry '%s' names the root but is not a folder",
                   shown);
    } else {
        rc = s_record(sc, path, len, kind, target, shown);
    }
    if (rc != 0)
        goto out;
    /* A declared size can only make us refuse sooner, never accept. */
    if (kind == TSR_ARCPATH_FILE && archive_entry_size_is_set(e) &&
        archive_entry_size(e) > 0 &&
        (uint64_t)archive_entry_size(e) > lim->max_entry_size) {
        char h[32];
        s_errf(sc->err, sc->errlen, "entry '%s' is larger than the %s limit", shown,
               s_human(lim->max_entry_size, h));
        rc = TSR_ELIMIT;
        goto out;
    }
    if (sc->root >= 0 && len > 0) {
        if (kind == TSR_ARCPATH_FILE) {
            const char *base;
            int dfd = s_parent(sc, path, len, &base);
            if (dfd < 0) {
                rc = s_write_fail(sc, dfd, shown);
                goto out;
            }
            fd = openat(dfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                        0600);
            if (fd < 0) {
                rc = s_write_fail(sc, s_errno_code(errno), shown);
                goto out;
            }
        } else {
            rc = s_make(sc, kind, path, len,
                        kind == TSR_ARCPATH_HARD ? norm_target : target, shown);
            if (rc != 0)
                goto out;
        }
    }
    rc = s_data(sc, ar, fd, shown);
    if (rc == 0 && fd >= 0) {
        /* Owners and special bits never come from the archive. */
        if (fchmod(fd, (mode & 0111) ? 0755 : 0644) != 0)
            rc = s_write_fail(sc, TSR_EIO, shown);
    }
out:
    if (fd >= 0 && close(fd) != 0 && rc == 0)
        rc = s_write_fail(sc, s_errno_code(errno), shown);
    free(path);
    free(norm_target);
    return rc;
}

/* Opens a reader on fd for the formats and filters scene archives use. */
static struct archive *s_reader(void)
{
    struct archive *ar = archive_read_new();
    if (!ar)
        return NULL;
    /* ARCHIVE_WARN from a filter means it runs an external program; that
     * still reads correctly, so only outright failures matter. */
    archive_read_support_filter_gzip(ar);
    archive_read_support_filter_bzip2(ar);
    archive_read_support_filter_xz(ar);
    archive_read_support_filter_lzma(ar);
    archive_read_support_filter_zstd(ar);
    archive_read_support_filter_lz4(ar);
    archive_read_support_format_tar(ar);
    archive_read_support_format_zip(ar);
    return ar;
}

/* Opens a reader on fd from its start; on failure err says why. */
static int s_open_reader(int fd, const char *label, struct archive **out, char *err,
                         size_t errlen)
{
    char m[TSR_ARCPATH_QUOTE + 4];
    *out = NULL;
    if (lseek(fd, 0, SEEK_SET) != 0) {
        s_errf(err, errlen, "'%s': cannot seek (%s)", label, strerror(errno));
        return TSR_EIO;
    }
    struct archive *ar = s_reader();
    if (!ar) {
        s_errf(err, errlen, "'%s': out of memory", label);
        return TSR_ENOMEM;
    }
    if (archive_read_open_fd(ar, fd, S_CHUNK) != ARCHIVE_OK) {
        s_errf(err, errlen, "'%s': not an archive (%s)", label, s_arerr(ar, m));
        archive_read_free(ar);
        return TSR_EARCHIVE;
    }
    *out = ar;
    return 0;
}

/* Reads the next header; *e is NULL at the end. seen is the number of
 * entries read so far, which tells "not an archive" from "damaged". */
static int s_next(struct archive *ar, struct archive_entry **e, uint64_t seen,
                  const char *label, char *err, size_t errlen)
{
    char m[TSR_ARCPATH_QUOTE + 4];
    int r = archive_read_next_header(ar, e);
    if (r == ARCHIVE_EOF) {
        *e = NULL;
        if (seen > 0)
            return 0;
        s_errf(err, errlen, "'%s': not an archive (it holds no entries)", label);
        return TSR_EARCHIVE;
    }
    if (r == ARCHIVE_OK || r == ARCHIVE_WARN)
        return 0;
    if (seen == 0)
        s_errf(err, errlen, "'%s': not an archive (%s)", label, s_arerr(ar, m));
    else
        s_errf(err, errlen, "'%s': truncated or damaged after %llu entries (%s)", label,
               (unsigned long long)seen, s_arerr(ar, m));
    return TSR_EARCHIVE;
}

/* Checks the links, which needs every path of the archive. */
static int s_check_links(struct s_scan *sc)
{
    for (size_t i = 0; i < sc->table.nlinks; i++) {
        /* A path longer than any entry may be cannot be in the archive. */
        int r = tsr_arcpath_resolve_link(&sc->table, i, sc->lim->max_path);
        if (r == 0)
            continue;
        if (r < 0)
            return r;
        char q[TSR_ARCPATH_QUOTE + 4], t[TSR_ARCPATH_QUOTE + 4];
        tsr_arcpath_quote(sc->table.links[i].path, q);
        tsr_arcpath_quote(sc->table.links[i].target, t);
        if (r == TSR_ARCPATH_ESCAPES) {
            s_errf(sc->err, sc->errlen,
                   "entry '%s' escapes the scene root (link to '%s')", q, t);
            return TSR_EUNSAFE;
        }
        if (r == TSR_ARCPATH_LOOPS) {
            s_errf(sc->err, sc->errlen,
                   "entry '%s' is a link loop or a chain of more than %d links", q,
                   TSR_ARCPATH_MAX_HOPS);
            return TSR_EUNSAFE;
        }
        if (r == TSR_ARCPATH_TOO_MUCH)
            s_errf(sc->err, sc->errlen,
                   "archive links take more than %u steps to resolve (at entry '%s')",
                   TSR_ARCPATH_MAX_STEPS, q);
        else
            s_errf(sc->err, sc->errlen,
                   "entry '%s' is a link to a path longer than %zu bytes", q,
                   sc->lim->max_path);
        return TSR_ELIMIT;
    }
    return 0;
}

static void s_scan_init(struct s_scan *sc, const char *label,
                        const struct tsr_archive_limits *lim, uint64_t file_size,
                        char *err, size_t errlen)
{
    memset(sc, 0, sizeof *sc);
    sc->label = label;
    sc->lim = lim;
    sc->file_size = file_size;
    sc->root = -1;
    sc->cache_fd = -1;
    sc->err = err;
    sc->errlen = errlen;
}

static void s_scan_free(struct s_scan *sc)
{
    tsr_arcpath_free(&sc->table);
    free(sc->buf);
    if (sc->cache_fd >= 0)
        close(sc->cache_fd);
    free(sc->cache_path);
    sc->buf = NULL;
    sc->cache_fd = -1;
    sc->cache_path = NULL;
}

/* One full pass over the archive open at fd: every entry, then the links. */
static int s_scan(struct s_scan *sc, int fd)
{
    int rc = tsr_arcpath_init(&sc->table, sc->lim->max_entries);
    if (rc != 0)
        return rc;
    sc->buf = malloc(S_CHUNK);
    if (!sc->buf)
        return TSR_ENOMEM;
    struct archive *ar;
    rc = s_open_reader(fd, sc->label, &ar, sc->err, sc->errlen);
    if (rc != 0)
        return rc;
    for (;;) {
        struct archive_entry *e;
        rc = s_next(ar, &e, sc->entries, sc->label, sc->err, sc->errlen);
        if (rc != 0 || !e)
            break;
        rc = s_entry(sc, ar, e);
        if (rc != 0)
            break;
    }
    archive_read_free(ar);
    if (rc == 0)
        rc = s_check_links(sc);
    return rc;
}

/* Opens the archive at path for a scan; *size receives its length. */
static int s_open_file(const char *path, int *fd, uint64_t *size, char *err,
                       size_t errlen)
{
    char q[TSR_ARCPATH_QUOTE + 4];
    *fd = open(path, O_RDONLY | O_CLOEXEC);
    if (*fd < 0) {
        s_errf(err, errlen, "'%s': cannot open (%s)", tsr_arcpath_quote(path, q),
               strerror(errno));
        return TSR_EIO;
    }
    struct stat st;
    if (fstat(*fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        s_errf(err, errlen, "'%s': not an archive (not a regular file)",
               tsr_arcpath_quote(path, q));
        close(*fd);
        *fd = -1;
        return TSR_EARCHIVE;
    }
    *size = (uint64_t)st.st_size;
    return 0;
}

void tsr_archive_limits_default(struct tsr_archive_limits *lim)
{
    lim->max_entries = 100000;
    lim->max_total_size = 64ULL << 30;
    lim->max_entry_size = 16ULL << 30;
    lim->max_path = 1024;
    lim->max_name = 255;
    lim->max_ratio = 1000;
}

/* The check of tsr_archive_check on an open file. */
static int s_check_fd(int fd, const char *label, uint64_t size,
                      const struct tsr_archive_limits *lim, const char *scene,
                      struct tsr_archive_report *report, char *err, size_t errlen)
{
    struct s_scan sc;
    s_scan_init(&sc, label, lim, size, err, errlen);
    int rc = s_scan(&sc, fd);
    int has_scene = 0;
    if (rc == 0 && scene) {
        char q[TSR_ARCPATH_QUOTE + 4];
        char *norm = malloc(strlen(scene) + 1);
        size_t len;
        if (!norm) {
            rc = TSR_ENOMEM;
        } else if (scene[0] == '/' ||
                   tsr_arcpath_normalize(scene, (size_t)-1, norm, &len) != 0 ||
                   len == 0) {
            s_errf(err, errlen, "scene '%s' is not a path inside the archive",
                   tsr_arcpath_quote(scene, q));
            rc = TSR_ENOTFOUND;
        } else {
            const struct tsr_arcpath_node *n = tsr_arcpath_find(&sc.table, norm, len);
            has_scene = n && (n->kind == TSR_ARCPATH_FILE || n->kind == TSR_ARCPATH_HARD);
            if (!has_scene) {
                s_errf(err, errlen,
                       n ? "scene '%s' is not a regular file"
                         : "scene '%s' is not in the archive",
                       tsr_arcpath_quote(scene, q));
                rc = TSR_ENOTFOUND;
            }
        }
        free(norm);
    }
    if (report) {
        report->entries = sc.entries;
        report->total_size = sc.total;
        report->has_scene = has_scene;
    }
    s_scan_free(&sc);
    return rc;
}

int tsr_archive_check(const char *path, const struct tsr_archive_limits *lim,
                      const char *scene, struct tsr_archive_report *report, char *err,
                      size_t errlen)
{
    struct tsr_archive_limits deflim;
    if (!lim) {
        tsr_archive_limits_default(&deflim);
        lim = &deflim;
    }
    if (report)
        memset(report, 0, sizeof *report);
    if (tsr_hash_init_library() != 0)
        return TSR_EIO;
    int fd;
    uint64_t size;
    int rc = s_open_file(path, &fd, &size, err, errlen);
    if (rc != 0)
        return rc;
    char lq[TSR_ARCPATH_QUOTE + 4];
    rc = s_check_fd(fd, tsr_arcpath_quote(path, lq), size, lim, scene, report, err,
                    errlen);
    close(fd);
    return rc;
}

/* Moves staging to dest unless dest appeared meanwhile. */
static int s_rename_noreplace(const char *staging, const char *dest)
{
    if (renameat2(AT_FDCWD, staging, AT_FDCWD, dest, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno == EEXIST)
        return TSR_EEXIST;
    if (errno != EINVAL && errno != ENOSYS)
        return TSR_EIO;
    /* A file system without RENAME_NOREPLACE: check, then rename. */
    if (tsr_path_exists(dest))
        return TSR_EEXIST;
    if (rename(staging, dest) == 0)
        return 0;
    return errno == EEXIST || errno == ENOTEMPTY ? TSR_EEXIST : TSR_EIO;
}

/* Flushes the folder holding path, so a rename into it is durable. */
static void s_sync_parent(const char *path)
{
    char dir[4096];
    if (tsr_fmt(dir, sizeof dir, "%s", path) != 0)
        return;
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        dir[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        strcpy(dir, ".");
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

int tsr_archive_extract(const char *path, const struct tsr_archive_limits *lim,
                        const char *dest, char *err, size_t errlen)
{
    struct tsr_archive_limits deflim;
    if (!lim) {
        tsr_archive_limits_default(&deflim);
        lim = &deflim;
    }
    if (tsr_hash_init_library() != 0)
        return TSR_EIO;
    char q[TSR_ARCPATH_QUOTE + 4];
    /* dest without trailing slashes, so the staging folder sits beside it. */
    char d[4096], staging[4200];
    if (tsr_fmt(d, sizeof d, "%s", dest) != 0) {
        s_errf(err, errlen, "'%s': destination path too long",
               tsr_arcpath_quote(dest, q));
        return TSR_EIO;
    }
    for (size_t n = strlen(d); n > 1 && d[n - 1] == '/'; n--)
        d[n - 1] = '\0';
    if (tsr_path_exists(d)) {
        s_errf(err, errlen, "'%s' already exists", tsr_arcpath_quote(d, q));
        return TSR_EEXIST;
    }
    snprintf(staging, sizeof staging, "%s.staging.%ld", d, (long)getpid());

    int fd;
    uint64_t size;
    int rc = s_open_file(path, &fd, &size, err, errlen);
    if (rc != 0)
        return rc;
    /* Both passes read the same open file, whatever happens to the path. */
    char lq[TSR_ARCPATH_QUOTE + 4];
    tsr_arcpath_quote(path, lq);
    rc = s_check_fd(fd, lq, size, lim, NULL, NULL, err, errlen);
    if (rc != 0) {
        close(fd);
        return rc;
    }
    /* The staging folder is ours only if we create it: one that exists
     * belongs to another extraction to dest in this process (or was left by
     * a dead one with our pid, for the cache's start-up sweep), and is never
     * touched. */
    if (mkdir(staging, 0700) != 0) {
        rc = errno == EEXIST ? TSR_EEXIST : s_errno_code(errno);
        s_errf(err, errlen, "'%s': cannot create (%s)", tsr_arcpath_quote(staging, q),
               strerror(errno));
        close(fd);
        return rc;
    }
    struct s_scan sc;
    s_scan_init(&sc, lq, lim, size, err, errlen);
    char dq[TSR_ARCPATH_QUOTE + 4];
    sc.dest = tsr_arcpath_quote(d, dq);
    sc.root = open(staging, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (sc.root < 0) {
        s_errf(err, errlen, "'%s': cannot open (%s)", tsr_arcpath_quote(staging, q),
               strerror(errno));
        rc = TSR_EIO;
        goto out;
    }
    rc = s_scan(&sc, fd);
    if (rc != 0)
        goto out;
    if (fchmod(sc.root, 0755) != 0 || syncfs(sc.root) != 0) {
        rc = s_errno_code(errno);
        s_errf(err, errlen, "'%s': cannot flush (%s)", tsr_arcpath_quote(staging, q),
               strerror(errno));
        goto out;
    }
    rc = s_rename_noreplace(staging, d);
    if (rc == TSR_EEXIST)
        s_errf(err, errlen, "'%s' already exists", tsr_arcpath_quote(d, q));
    else if (rc != 0)
        s_errf(err, errlen, "'%s': cannot rename into place (%s)",
               tsr_arcpath_quote(d, q), strerror(errno));
    else
        s_sync_parent(d);
out:
    if (sc.root >= 0)
        close(sc.root);
    s_scan_free(&sc);
    close(fd);
    if (rc != 0 && tsr_rm_rf(staging) != 0)
        tsr_log(TSR_LOG_WARN, "archive", "cannot remove staging folder '%s'",
                tsr_arcpath_quote(staging, q));
    return rc;
}

/* ---- reading one member ------------------------------------------------- */

/* Looks for the regular file norm in the archive at fd and reads it. When
 * it is a hard link, *hard receives the (normalised) target instead. */
static int s_read_member(int fd, const char *label, const char *norm, const char *shown,
                         size_t max_size, char **data, size_t *size, char **hard,
                         char *err, size_t errlen)
{
    struct archive *ar;
    int rc = s_open_reader(fd, label, &ar, err, errlen);
    if (rc != 0)
        return rc;
    char m[TSR_ARCPATH_QUOTE + 4];
    uint64_t seen = 0;
    for (;;) {
        struct archive_entry *e;
        rc = s_next(ar, &e, seen, label, err, errlen);
        if (rc != 0)
            break;
        if (!e) {
            s_errf(err, errlen, "'%s' is not in '%s'", shown, label);
            rc = TSR_ENOTFOUND;
            break;
        }
        seen++;
        const char *raw = archive_entry_pathname(e);
        if (!raw)
            raw = archive_entry_pathname_utf8(e);
        if (!raw || raw[0] == '/')
            continue;
        char *p = malloc(strlen(raw) + 1);
        size_t len;
        if (!p) {
            rc = TSR_ENOMEM;
            break;
        }
        int same =
            tsr_arcpath_normalize(raw, (size_t)-1, p, &len) == 0 && strcmp(p, norm) == 0;
        free(p);
        if (!same)
            continue;
        const char *h = archive_entry_hardlink(e);
        if (h) {
            *hard = malloc(strlen(h) + 1);
            if (!*hard) {
                rc = TSR_ENOMEM;
            } else if (h[0] == '/' ||
                       tsr_arcpath_normalize(h, (size_t)-1, *hard, &len) != 0) {
                s_errf(err, errlen, "'%s' in '%s' is a hard link out of the archive",
                       shown, label);
                rc = TSR_EARCHIVE;
            }
            break;
        }
        if (archive_entry_filetype(e) != AE_IFREG) {
            s_errf(err, errlen, "'%s' in '%s' is not a regular file", shown, label);
            rc = TSR_ENOTFOUND;
            break;
        }
        if (archive_entry_size_is_set(e) && archive_entry_size(e) > 0 &&
            (uint64_t)archive_entry_size(e) > max_size) {
            s_errf(err, errlen, "'%s' in '%s' is larger than %zu bytes", shown, label,
                   max_size);
            rc = TSR_ELIMIT;
            break;
        }
        /* Grown as data arrives, never from the declared size; one byte
         * past max_size is room enough to see that the data is too big. */
        size_t room = max_size < SIZE_MAX - 1 ? max_size + 1 : SIZE_MAX - 1;
        size_t cap = 0, n = 0;
        char *buf = NULL;
        for (;;) {
            if (n == cap) {
                size_t ncap = cap ? cap * 2 : 65536;
                if (ncap > room || ncap < cap)
                    ncap = room;
                char *nb = realloc(buf, ncap + 1);
                if (!nb) {
                    rc = TSR_ENOMEM;
                    break;
                }
                buf = nb;
                cap = ncap;
            }
            la_ssize_t r = archive_read_data(ar, buf + n, cap - n);
            if (r < 0) {
                s_errf(err, errlen, "'%s': truncated or damaged at entry '%s' (%s)",
                       label, shown, s_arerr(ar, m));
                rc = TSR_EARCHIVE;
                break;
            }
            if (r == 0)
                break;
            n += (size_t)r;
            if (n > max_size) {
                s_errf(err, errlen, "'%s' in '%s' is larger than %zu bytes", shown, label,
                       max_size);
                rc = TSR_ELIMIT;
                break;
            }
        }
        if (rc != 0) {
            free(buf);
            break;
        }
        buf[n] = '\0';
        *data = buf;
        *size = n;
        break;
    }
    archive_read_free(ar);
    return rc;
}

int tsr_archive_read_file(const char *path, const char *name, size_t max_size,
                          char **data, size_t *size, char *err, size_t errlen)
{
    *data = NULL;
    *size = 0;
    char q[TSR_ARCPATH_QUOTE + 4], lq[TSR_ARCPATH_QUOTE + 4];
    tsr_arcpath_quote(name, q);
    tsr_arcpath_quote(path, lq);
    char *norm = malloc(strlen(name) + 1);
    if (!norm)
        return TSR_ENOMEM;
    size_t len;
    if (name[0] == '/' || tsr_arcpath_normalize(name, (size_t)-1, norm, &len) != 0 ||
        len == 0) {
        s_errf(err, errlen, "'%s' is not a path inside the archive", q);
        free(norm);
        return TSR_ENOTFOUND;
    }
    int fd;
    uint64_t fsize;
    int rc = s_open_file(path, &fd, &fsize, err, errlen);
    if (rc == 0) {
        char *hard = NULL;
        rc = s_read_member(fd, lq, norm, q, max_size, data, size, &hard, err, errlen);
        /* A hard link's data sits with its target, earlier in the archive. */
        if (rc == 0 && hard) {
            char *h2 = NULL;
            rc = s_read_member(fd, lq, hard, q, max_size, data, size, &h2, err, errlen);
            if (rc == 0 && h2) {
                s_errf(err, errlen, "'%s' in '%s' is a hard link to a hard link", q, lq);
                rc = TSR_EARCHIVE;
            }
            free(h2);
        }
        free(hard);
        close(fd);
    }
    free(norm);
    return rc;
}
