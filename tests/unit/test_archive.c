/* test_archive.c: scene archives (shared/archive.c) on real archives that
 * the tests write with libarchive (and the tar command where it is there):
 * what passes, what is refused with which code and text, what extraction
 * leaves on disk, and that packing is byte-for-byte repeatable. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four above, which it needs */

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tessera/archive.h"
#include "tessera/error.h"
#include "tessera/hash.h"
#include "tessera/util.h"

/* One entry of a test archive. */
struct ent {
    const char *name; /* path in the archive */
    int type;         /* AE_IFREG when 0, or AE_IFDIR, AE_IFLNK, AE_IFCHR, AE_IFIFO */
    unsigned mode;    /* permission bits; 0 means 0644 (0755 for folders) */
    const char *data; /* file content, or NULL */
    const char *link; /* AE_IFLNK: target */
    const char *hard; /* hard link to this earlier entry */
    size_t zeros;     /* with data NULL: this many zero bytes */
    int random;       /* with data NULL: zeros become pseudo-random bytes */
};

static char g_tmp[256]; /* this run's temporary folder */

static void s_path(char *out, size_t size, const char *name)
{
    snprintf(out, size, "%s/%s", g_tmp, name);
}

/* Writes an archive of the n entries in the given format and filter. */
static void s_make(const char *path, int format, int filter, const struct ent *e,
                   size_t n)
{
    struct archive *w = archive_write_new();
    assert_int_equal(archive_write_set_format(w, format), ARCHIVE_OK);
    if (filter != ARCHIVE_FILTER_NONE)
        assert_int_equal(archive_write_add_filter(w, filter), ARCHIVE_OK);
    assert_int_equal(archive_write_open_filename(w, path), ARCHIVE_OK);
    static unsigned char buf[65536];
    uint32_t seed = 12345;
    for (size_t i = 0; i < n; i++) {
        struct archive_entry *ae = archive_entry_new();
        archive_entry_set_pathname(ae, e[i].name);
        unsigned type = e[i].type ? (unsigned)e[i].type : (unsigned)AE_IFREG;
        archive_entry_set_filetype(ae, type);
        unsigned mode = e[i].mode ? e[i].mode : (type == AE_IFDIR ? 0755u : 0644u);
        archive_entry_set_perm(ae, mode);
        archive_entry_set_mtime(ae, 1700000000, 0);
        if (type == AE_IFCHR)
            archive_entry_set_rdev(ae, makedev(1, 3));
        if (e[i].link)
            archive_entry_set_symlink(ae, e[i].link);
        if (e[i].hard)
            archive_entry_set_hardlink(ae, e[i].hard);
        size_t size = 0;
        if (type == AE_IFREG && !e[i].hard)
            size = e[i].data ? strlen(e[i].data) : e[i].zeros;
        archive_entry_set_size(ae, (la_int64_t)size);
        assert_int_equal(archive_write_header(w, ae), ARCHIVE_OK);
        if (e[i].data) {
            assert_int_equal(archive_write_data(w, e[i].data, size), (la_ssize_t)size);
        } else {
            for (size_t done = 0; done < size;) {
                size_t k = size - done < sizeof buf ? size - done : sizeof buf;
                for (size_t j = 0; j < k; j++) {
                    seed = seed * 1103515245u + 12345u;
                    buf[j] = e[i].random ? (unsigned char)(seed >> 24) : 0;
                }
                assert_int_equal(archive_write_data(w, buf, k), (la_ssize_t)k);
                done += k;
            }
        }
        archive_entry_free(ae);
    }
    assert_int_equal(archive_write_close(w), ARCHIVE_OK);
    archive_write_free(w);
}

static void s_make_tar(const char *path, const struct ent *e, size_t n)
{
    s_make(path, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, ARCHIVE_FILTER_NONE, e, n);
}

static void s_expect_file(const char *path, const char *content, unsigned mode)
{
    char *data = NULL;
    size_t len = 0;
    if (tsr_read_file(path, 1 << 20, &data, &len) != 0)
        fail_msg("cannot read '%s'", path);
    assert_int_equal(len, strlen(content));
    assert_memory_equal(data, content, len);
    free(data);
    struct stat st;
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 07777, mode);
}

/* A fresh folder with a canary file beside where dest will go. */
static void s_fresh(const char *name, char *base, size_t size)
{
    s_path(base, size, name);
    assert_int_equal(tsr_rm_rf(base), 0);
    assert_int_equal(tsr_mkdir_p(base), 0);
    char canary[512];
    snprintf(canary, sizeof canary, "%s/canary.txt", base);
    assert_int_equal(tsr_write_file_atomic(canary, "keep me", 7), 0);
}

/* After a refused extract: neither dest nor staging exists, canary intact. */
static void s_expect_clean(const char *base, const char *dest)
{
    char staging[600], canary[512];
    snprintf(staging, sizeof staging, "%s.staging.%ld", dest, (long)getpid());
    snprintf(canary, sizeof canary, "%s/canary.txt", base);
    assert_false(tsr_path_exists(dest));
    assert_false(tsr_path_exists(staging));
    s_expect_file(canary, "keep me", 0644);
}

/* ---- a good archive ---------------------------------------------------- */

static const struct ent GOOD[] = {
    {.name = "./", .type = AE_IFDIR},
    {.name = "./scene.json", .data = "{\"frames\": \"1-10\"}\n"},
    {.name = "textures/", .type = AE_IFDIR, .mode = 0700},
    {.name = "textures/a.txt", .mode = 0600, .data = "alpha"},
    {.name = "bin/run.sh", .mode = 0700, .data = "#!/bin/sh\necho hi\n"},
    {.name = "bin/tool", .mode = 0777, .data = "tool"},
    {.name = "link", .type = AE_IFLNK, .link = "textures/a.txt"},
    {.name = "textures/up", .type = AE_IFLNK, .link = "../scene.json"},
    {.name = "hard", .hard = "textures/a.txt"},
    {.name = "empty/", .type = AE_IFDIR},
};
#define NGOOD (sizeof GOOD / sizeof GOOD[0])
#define GOOD_BYTES (19 + 5 + 18 + 4)

static void test_good_archive_checks_and_extracts(void **state)
{
    (void)state;
    char path[512], base[512], dest[600], p[700];
    s_path(path, sizeof path, "good.tar.gz");
    s_make(path, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, ARCHIVE_FILTER_GZIP, GOOD, NGOOD);

    struct tsr_archive_report rep;
    char err[256] = "";
    int rc = tsr_archive_check(path, NULL, "scene.json", &rep, err, sizeof err);
    if (rc != 0)
        fail_msg("refused: %s", err);
    assert_int_equal(rep.entries, NGOOD);
    assert_int_equal(rep.total_size, GOOD_BYTES);
    assert_int_equal(rep.has_scene, 1);
    assert_int_equal(tsr_archive_check(path, NULL, "./scene.json", &rep, err, sizeof err),
                     0);
    assert_int_equal(tsr_archive_check(path, NULL, "hard", &rep, err, sizeof err), 0);
    assert_int_equal(tsr_archive_check(path, NULL, NULL, &rep, err, sizeof err), 0);
    assert_int_equal(rep.has_scene, 0);

    s_fresh("good", base, sizeof base);
    snprintf(dest, sizeof dest, "%s/scene", base);
    rc = tsr_archive_extract(path, NULL, dest, err, sizeof err);
    if (rc != 0)
        fail_msg("extract refused: %s", err);
    snprintf(p, sizeof p, "%s/scene.json", dest);
    s_expect_file(p, "{\"frames\": \"1-10\"}\n", 0644);
    snprintf(p, sizeof p, "%s/textures/a.txt", dest);
    s_expect_file(p, "alpha", 0644);
    snprintf(p, sizeof p, "%s/bin/run.sh", dest);
    s_expect_file(p, "#!/bin/sh\necho hi\n", 0755);
    snprintf(p, sizeof p, "%s/bin/tool", dest);
    s_expect_file(p, "tool", 0755);

    struct stat st, st2;
    assert_int_equal(stat(dest, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0755);
    snprintf(p, sizeof p, "%s/textures", dest);
    assert_int_equal(lstat(p, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0755);
    snprintf(p, sizeof p, "%s/bin", dest);
    assert_int_equal(lstat(p, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0755);
    snprintf(p, sizeof p, "%s/empty", dest);
    assert_int_equal(lstat(p, &st), 0);
    assert_true(S_ISDIR(st.st_mode));

    char target[256];
    snprintf(p, sizeof p, "%s/link", dest);
    ssize_t n = readlink(p, target, sizeof target - 1);
    assert_true(n > 0);
    target[n] = '\0';
    assert_string_equal(target, "textures/a.txt");
    snprintf(p, sizeof p, "%s/textures/up", dest);
    n = readlink(p, target, sizeof target - 1);
    assert_true(n > 0);
    target[n] = '\0';
    assert_string_equal(target, "../scene.json");

    snprintf(p, sizeof p, "%s/hard", dest);
    assert_int_equal(lstat(p, &st), 0);
    snprintf(p, sizeof p, "%s/textures/a.txt", dest);
    assert_int_equal(lstat(p, &st2), 0);
    assert_int_equal(st.st_ino, st2.st_ino);

    char staging[1000];
    snprintf(staging, sizeof staging, "%s.staging.%ld", dest, (long)getpid());
    assert_false(tsr_path_exists(staging));

    /* A second extract to the same place is refused, the first one kept. */
    assert_int_equal(tsr_archive_extract(path, NULL, dest, err, sizeof err), TSR_EEXIST);
    assert_non_null(strstr(err, "already exists"));
    snprintf(p, sizeof p, "%s/scene.json", dest);
    assert_true(tsr_path_exists(p));

    /* A staging folder that exists belongs to someone else: left alone. */
    char other[700], marker[1100];
    snprintf(other, sizeof other, "%s/other", base);
    snprintf(staging, sizeof staging, "%s.staging.%ld", other, (long)getpid());
    snprintf(marker, sizeof marker, "%s/busy", staging);
    assert_int_equal(tsr_mkdir_p(staging), 0);
    assert_int_equal(tsr_write_file_atomic(marker, "busy", 4), 0);
    assert_int_equal(tsr_archive_extract(path, NULL, other, err, sizeof err), TSR_EEXIST);
    assert_false(tsr_path_exists(other));
    s_expect_file(marker, "busy", 0644);

    /* A destination whose parent is missing. */
    snprintf(p, sizeof p, "%s/no/such/parent", base);
    assert_int_equal(tsr_archive_extract(path, NULL, p, err, sizeof err), TSR_EIO);
    assert_int_equal(tsr_rm_rf(base), 0);
}

static void test_scene_missing(void **state)
{
    (void)state;
    char path[512], err[256];
    s_path(path, sizeof path, "good.tar");
    s_make_tar(path, GOOD, NGOOD);
    struct tsr_archive_report rep;
    assert_int_equal(tsr_archive_check(path, NULL, "nope.json", &rep, err, sizeof err),
                     TSR_ENOTFOUND);
    assert_string_equal(err, "scene 'nope.json' is not in the archive");
    assert_int_equal(rep.has_scene, 0);
    assert_int_equal(tsr_archive_check(path, NULL, "textures", &rep, err, sizeof err),
                     TSR_ENOTFOUND);
    assert_string_equal(err, "scene 'textures' is not a regular file");
    assert_int_equal(tsr_archive_check(path, NULL, "link", &rep, err, sizeof err),
                     TSR_ENOTFOUND);
    assert_int_equal(
        tsr_archive_check(path, NULL, "../scene.json", &rep, err, sizeof err),
        TSR_ENOTFOUND);
}

/* ---- refusals ------------------------------------------------------------ */

/* One archive that must be refused. */
struct bad {
    const char *what;     /* name of the case, also the file name */
    const struct ent *e;  /* its entries */
    size_t n;             /* how many */
    uint64_t max_entries; /* limits that differ from the defaults, 0 = default */
    uint64_t max_total;   /* ... */
    uint64_t max_entry;   /* ... */
    int code;             /* expected TSR_E* code */
    const char *msg;      /* expected message */
};

#define ENTS(...)                                                                        \
    (const struct ent[]){__VA_ARGS__},                                                   \
        sizeof((const struct ent[]){__VA_ARGS__}) / sizeof(struct ent)

static char g_long_name[301];  /* one component of 300 bytes */
static char g_long_path[1300]; /* five components of 250 bytes */

static void s_refused(const struct bad *b)
{
    char path[512], base[512], dest[600], err[512] = "";
    char file[128];
    snprintf(file, sizeof file, "bad-%s.tar", b->what);
    s_path(path, sizeof path, file);
    s_make_tar(path, b->e, b->n);
    struct tsr_archive_limits lim;
    tsr_archive_limits_default(&lim);
    if (b->max_entries)
        lim.max_entries = b->max_entries;
    if (b->max_total)
        lim.max_total_size = b->max_total;
    if (b->max_entry)
        lim.max_entry_size = b->max_entry;
    int rc = tsr_archive_check(path, &lim, NULL, NULL, err, sizeof err);
    if (rc != b->code)
        fail_msg("%s: check gave %d (%s), want %d", b->what, rc, err, b->code);
    if (strcmp(err, b->msg) != 0)
        fail_msg("%s: message '%s', want '%s'", b->what, err, b->msg);
    s_fresh(b->what, base, sizeof base);
    snprintf(dest, sizeof dest, "%s/scene", base);
    err[0] = '\0';
    rc = tsr_archive_extract(path, &lim, dest, err, sizeof err);
    if (rc != b->code)
        fail_msg("%s: extract gave %d (%s), want %d", b->what, rc, err, b->code);
    assert_string_equal(err, b->msg);
    s_expect_clean(base, dest);
    assert_int_equal(tsr_rm_rf(base), 0);
}

static void test_refusals(void **state)
{
    (void)state;
    memset(g_long_name, 'n', 300);
    for (int i = 0; i < 5; i++) {
        memset(g_long_path + i * 251, 'p', 250);
        g_long_path[i * 251 + 250] = i < 4 ? '/' : '\0';
    }
    const struct bad cases[] = {
        {"absolute", ENTS({.name = "/etc/passwd", .data = "x"}), .code = TSR_EUNSAFE,
         .msg = "entry '/etc/passwd' has an absolute path"},
        {"dotdot",
         ENTS({.name = "scene.json", .data = "{}"}, {.name = "../x", .data = "x"}),
         .code = TSR_EUNSAFE, .msg = "entry '../x' escapes the scene root"},
        {"dotdot-deep", ENTS({.name = "a/../../x", .data = "x"}), .code = TSR_EUNSAFE,
         .msg = "entry 'a/../../x' escapes the scene root"},
        {"dotdot-inside", ENTS({.name = "a/../b", .data = "x"}), .code = TSR_EUNSAFE,
         .msg = "entry 'a/../b' escapes the scene root"},
        {"symlink", ENTS({.name = "evil", .type = AE_IFLNK, .link = "../../etc/passwd"}),
         .code = TSR_EUNSAFE,
         .msg = "entry 'evil' escapes the scene root (link to '../../etc/passwd')"},
        {"symlink-abs", ENTS({.name = "d/evil", .type = AE_IFLNK, .link = "/etc"}),
         .code = TSR_EUNSAFE,
         .msg = "entry 'd/evil' escapes the scene root (link to '/etc')"},
        {"symlink-deep", ENTS({.name = "a/b/l", .type = AE_IFLNK, .link = "../../../x"}),
         .code = TSR_EUNSAFE,
         .msg = "entry 'a/b/l' escapes the scene root (link to '../../../x')"},
        /* Each link alone stays inside; together, d/up/.. is the root's parent. */
        {"symlink-chain",
         ENTS({.name = "d/up", .type = AE_IFLNK, .link = ".."},
              {.name = "esc", .type = AE_IFLNK, .link = "d/up/.."}),
         .code = TSR_EUNSAFE,
         .msg = "entry 'esc' escapes the scene root (link to 'd/up/..')"},
        {"symlink-chain-dot",
         ENTS({.name = "out", .type = AE_IFLNK, .link = "here/.."},
              {.name = "here", .type = AE_IFLNK, .link = "."}),
         .code = TSR_EUNSAFE,
         .msg = "entry 'out' escapes the scene root (link to 'here/..')"},
        {"symlink-loop",
         ENTS({.name = "a", .type = AE_IFLNK, .link = "b"},
              {.name = "b", .type = AE_IFLNK, .link = "a"}),
         .code = TSR_EUNSAFE,
         .msg = "entry 'a' is a link loop or a chain of more than 40 links"},
        {"through-link",
         ENTS({.name = "sub/", .type = AE_IFDIR},
              {.name = "l", .type = AE_IFLNK, .link = "sub"},
              {.name = "l/x", .data = "x"}),
         .code = TSR_EUNSAFE,
         .msg = "entry 'l/x' goes through 'l', which is not a folder"},
        {"twice", ENTS({.name = "f", .data = "1"}, {.name = "./f", .data = "2"}),
         .code = TSR_EUNSAFE, .msg = "entry './f' appears twice"},
        {"file-then-dir",
         ENTS({.name = "f", .data = "1"}, {.name = "f/", .type = AE_IFDIR}),
         .code = TSR_EUNSAFE, .msg = "entry 'f/' appears twice"},
        {"hardlink", ENTS({.name = "h", .hard = "../outside"}), .code = TSR_EUNSAFE,
         .msg = "entry 'h' escapes the scene root (hard link to '../outside')"},
        {"hardlink-abs", ENTS({.name = "h", .hard = "/etc/shadow"}), .code = TSR_EUNSAFE,
         .msg = "entry 'h' escapes the scene root (hard link to '/etc/shadow')"},
        {"hardlink-missing", ENTS({.name = "h", .hard = "nothere"}), .code = TSR_EARCHIVE,
         .msg = "entry 'h' is a hard link to 'nothere', which is not an earlier file"},
        {"device",
         ENTS({.name = "dev/", .type = AE_IFDIR},
              {.name = "dev/null0", .type = AE_IFCHR}),
         .code = TSR_EUNSAFE, .msg = "entry 'dev/null0' is a device node"},
        {"fifo", ENTS({.name = "pipe", .type = AE_IFIFO}), .code = TSR_EUNSAFE,
         .msg = "entry 'pipe' is a FIFO"},
        {"setuid", ENTS({.name = "bin/x", .mode = 04755, .data = "x"}),
         .code = TSR_EUNSAFE, .msg = "entry 'bin/x' is setuid"},
        {"setgid", ENTS({.name = "bin/", .type = AE_IFDIR, .mode = 02755}),
         .code = TSR_EUNSAFE, .msg = "entry 'bin/' is setgid"},
        {"control", ENTS({.name = "a\nb", .data = "x"}), .code = TSR_EUNSAFE,
         .msg = "entry 'a?b' has a control character in its name"},
        {"long-name", ENTS({.name = g_long_name, .data = "x"}), .code = TSR_ELIMIT,
         .msg = NULL /* set below: names the entry */},
        {"long-path", ENTS({.name = g_long_path, .data = "x"}), .code = TSR_ELIMIT,
         .msg = NULL},
        {"entries",
         ENTS({.name = "1", .data = "x"}, {.name = "2", .data = "x"},
              {.name = "3", .data = "x"}, {.name = "4", .data = "x"},
              {.name = "5", .data = "x"}, {.name = "6", .data = "x"},
              {.name = "7", .data = "x"}),
         .max_entries = 5, .code = TSR_ELIMIT, .msg = "archive has more than 5 entries"},
        {"total", ENTS({.name = "a", .zeros = 600}, {.name = "b", .zeros = 600}),
         .max_total = 1000, .code = TSR_ELIMIT,
         .msg = "archive expands past 1000 B limit"},
        {"entry-size",
         ENTS({.name = "small", .zeros = 10}, {.name = "big", .zeros = 2000}),
         .max_entry = 1024, .code = TSR_ELIMIT,
         .msg = "entry 'big' is larger than the 1 KiB limit"},
    };
    char msg_name[600], msg_path[600];
    snprintf(msg_name, sizeof msg_name,
             "entry '%.160s...' has a name longer than 255 bytes", g_long_name);
    snprintf(msg_path, sizeof msg_path,
             "entry '%.160s...' has a path longer than 1024 bytes", g_long_path);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct bad b = cases[i];
        if (strcmp(b.what, "long-name") == 0)
            b.msg = msg_name;
        if (strcmp(b.what, "long-path") == 0)
            b.msg = msg_path;
        s_refused(&b);
    }
}

/* Links whose chains cost far more to resolve than any scene needs are
 * refused before they cost the checker much time; many plain ones pass. */
static void test_link_budget(void **state)
{
    (void)state;
    enum { N = 2500 };
    struct ent *e = calloc(N + 2, sizeof *e);
    char(*names)[16] = calloc(N + 2, sizeof *names);
    char far[1100] = "", chain[400] = "";
    for (int i = 0; i < 200; i++)
        strcat(far, "x/../");
    strcat(far, "x");
    for (int i = 0; i < 39; i++)
        strcat(chain, "l0/../");
    strcat(chain, "x");
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "l%d", i);
        e[i] = (struct ent){.name = names[i], .type = AE_IFLNK, .link = i ? chain : far};
    }
    char path[512], err[256];
    s_path(path, sizeof path, "budget.tar");
    s_make_tar(path, e, N);
    assert_int_equal(tsr_archive_check(path, NULL, NULL, NULL, err, sizeof err),
                     TSR_ELIMIT);
    assert_non_null(
        strstr(err, "archive links take more than 16777216 steps to resolve"));

    e[0] = (struct ent){.name = "d/f", .data = "f"};
    for (int i = 1; i < N; i++)
        e[i] = (struct ent){.name = names[i], .type = AE_IFLNK, .link = "d/../d/./f"};
    s_make_tar(path, e, N);
    int rc = tsr_archive_check(path, NULL, NULL, NULL, err, sizeof err);
    if (rc != 0)
        fail_msg("plain links refused: %s", err);
    free(names);
    free(e);
}

/* 50 MB of zeros compress to about 50 KB: a ratio near 1000. */
static void test_ratio_bomb(void **state)
{
    (void)state;
    char path[512], base[512], dest[600], err[256];
    s_path(path, sizeof path, "bomb.tar.gz");
    struct ent e[] = {{.name = "scene.json", .data = "{}"},
                      {.name = "zeros.bin", .zeros = 50u << 20}};
    s_make(path, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, ARCHIVE_FILTER_GZIP, e, 2);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(st.st_size < (1 << 20));
    struct tsr_archive_limits lim;
    tsr_archive_limits_default(&lim);
    lim.max_ratio = 100;
    assert_int_equal(tsr_archive_check(path, &lim, "scene.json", NULL, err, sizeof err),
                     TSR_ELIMIT);
    char want[128];
    snprintf(want, sizeof want,
             "archive expands more than 100 times its size of %lld bytes",
             (long long)st.st_size);
    assert_string_equal(err, want);
    s_fresh("bomb", base, sizeof base);
    snprintf(dest, sizeof dest, "%s/scene", base);
    assert_int_equal(tsr_archive_extract(path, &lim, dest, err, sizeof err), TSR_ELIMIT);
    s_expect_clean(base, dest);
    /* Under the default ratio of 1000 it passes (gzip tops out near 1030
     * only for far longer runs of zeros). */
    lim.max_ratio = 5000;
    assert_int_equal(tsr_archive_check(path, &lim, "scene.json", NULL, err, sizeof err),
                     0);
    assert_int_equal(tsr_rm_rf(base), 0);
}

static void s_truncate_half(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(truncate(path, st.st_size / 2), 0);
}

static void test_truncated(void **state)
{
    (void)state;
    char path[512], base[512], dest[600], err[256];
    struct ent e[] = {{.name = "scene.json", .data = "{}"},
                      {.name = "noise.bin", .zeros = 1u << 20, .random = 1}};
    s_path(path, sizeof path, "cut.tar.gz");
    s_make(path, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, ARCHIVE_FILTER_GZIP, e, 2);
    assert_int_equal(tsr_archive_check(path, NULL, "scene.json", NULL, err, sizeof err),
                     0);
    s_truncate_half(path);
    assert_int_equal(tsr_archive_check(path, NULL, "scene.json", NULL, err, sizeof err),
                     TSR_EARCHIVE);
    assert_non_null(strstr(err, "truncated or damaged at entry 'noise.bin'"));
    s_fresh("cut", base, sizeof base);
    snprintf(dest, sizeof dest, "%s/scene", base);
    assert_int_equal(tsr_archive_extract(path, NULL, dest, err, sizeof err),
                     TSR_EARCHIVE);
    s_expect_clean(base, dest);

    /* A plain tar cut inside a file's data: the header promised more. */
    s_path(path, sizeof path, "cut.tar");
    s_make_tar(path, e, 2);
    s_truncate_half(path);
    assert_int_equal(tsr_archive_check(path, NULL, NULL, NULL, err, sizeof err),
                     TSR_EARCHIVE);
    assert_non_null(strstr(err, "truncated or damaged at entry 'noise.bin'"));

    /* The same for zstd. */
    s_path(path, sizeof path, "cut.tar.zst");
    s_make(path, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, ARCHIVE_FILTER_ZSTD, e, 2);
    s_truncate_half(path);
    assert_int_equal(tsr_archive_check(path, NULL, NULL, NULL, err, sizeof err),
                     TSR_EARCHIVE);
    assert_int_equal(tsr_rm_rf(base), 0);
}

static void test_not_an_archive(void **state)
{
    (void)state;
    char path[512], want[700], err[700], base[512], dest[600];
    s_path(path, sizeof path, "notes.txt");
    const char *text = "this is a plain text file, not an archive\n";
    assert_int_equal(tsr_write_file_atomic(path, text, strlen(text)), 0);
    assert_int_equal(tsr_archive_check(path, NULL, NULL, NULL, err, sizeof err),
                     TSR_EARCHIVE);
    snprintf(want, sizeof want, "'%s': not an archive (Unrecognized archive format)",
             path);
    assert_string_equal(err, want);
    s_fresh("text", base, sizeof base);
    snprintf(dest, sizeof dest, "%s/scene", base);
    assert_int_equal(tsr_archive_extract(path, NULL, dest, err, sizeof err),
                     TSR_EARCHIVE);
    s_expect_clean(base, dest);

    s_path(path, sizeof path, "empty.tar");
    assert_int_equal(tsr_write_file_atomic(path, "", 0), 0);
    assert_int_equal(tsr_archive_check(path, NULL, NULL, NULL, err, sizeof err),
                     TSR_EARCHIVE);
    assert_non_null(strstr(err, "not an archive"));

    /* The raw format would take any gzip'ed file as one entry: not enabled. */
    char cmd[1200];
    s_path(path, sizeof path, "notes.txt");
    snprintf(cmd, sizeof cmd, "gzip -kf '%s' 2>/dev/null", path);
    if (system(cmd) == 0) {
        s_path(path, sizeof path, "notes.txt.gz");
        assert_int_equal(tsr_archive_check(path, NULL, NULL, NULL, err, sizeof err),
                         TSR_EARCHIVE);
        assert_non_null(strstr(err, "not an archive"));
    }

    s_path(path, sizeof path, "does-not-exist.tar");
    assert_int_equal(tsr_archive_check(path, NULL, NULL, NULL, err, sizeof err), TSR_EIO);
    assert_int_equal(tsr_archive_check(g_tmp, NULL, NULL, NULL, err, sizeof err),
                     TSR_EARCHIVE);
    assert_int_equal(tsr_rm_rf(base), 0);
}

/* ---- other formats --------------------------------------------------------- */

static const struct ent SMALL[] = {
    {.name = "scene.json", .data = "{\"zip\": true}"},
    {.name = "assets/", .type = AE_IFDIR},
    {.name = "assets/run", .mode = 0755, .data = "run"},
    {.name = "assets/tex.txt", .data = "texture"},
};

static void s_check_small(const char *path, const char *name)
{
    char base[512], dest[600], p[700], err[256];
    struct tsr_archive_report rep;
    int rc = tsr_archive_check(path, NULL, "scene.json", &rep, err, sizeof err);
    if (rc != 0)
        fail_msg("%s refused: %s", name, err);
    assert_int_equal(rep.entries, 4);
    assert_int_equal(rep.total_size, 13 + 3 + 7);
    s_fresh(name, base, sizeof base);
    snprintf(dest, sizeof dest, "%s/scene", base);
    rc = tsr_archive_extract(path, NULL, dest, err, sizeof err);
    if (rc != 0)
        fail_msg("%s extract refused: %s", name, err);
    snprintf(p, sizeof p, "%s/scene.json", dest);
    s_expect_file(p, "{\"zip\": true}", 0644);
    snprintf(p, sizeof p, "%s/assets/run", dest);
    s_expect_file(p, "run", 0755);
    snprintf(p, sizeof p, "%s/assets/tex.txt", dest);
    s_expect_file(p, "texture", 0644);
    char *data = NULL;
    size_t size = 0;
    assert_int_equal(
        tsr_archive_read_file(path, "assets/tex.txt", 100, &data, &size, err, sizeof err),
        0);
    assert_string_equal(data, "texture");
    free(data);
    assert_int_equal(tsr_rm_rf(base), 0);
}

static void test_zip_and_zstd_read(void **state)
{
    (void)state;
    char path[512];
    s_path(path, sizeof path, "small.zip");
    s_make(path, ARCHIVE_FORMAT_ZIP, ARCHIVE_FILTER_NONE, SMALL, 4);
    s_check_small(path, "zip");
    s_path(path, sizeof path, "small.tar.zst");
    s_make(path, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, ARCHIVE_FILTER_ZSTD, SMALL, 4);
    s_check_small(path, "zst");
    s_path(path, sizeof path, "small.tar.gz");
    s_make(path, ARCHIVE_FORMAT_TAR_USTAR, ARCHIVE_FILTER_GZIP, SMALL, 4);
    s_check_small(path, "gz");

    /* A tar.zst made by the tar and zstd commands, when they are there. */
    char cmd[4096], dir[512];
    s_path(dir, sizeof dir, "cmd-src");
    s_path(path, sizeof path, "cmd.tar.zst");
    snprintf(cmd, sizeof cmd,
             "set -e; rm -rf '%s'; mkdir -p '%s/assets'; cd '%s';"
             " printf '{\"zip\": true}' > scene.json; printf run > assets/run;"
             " chmod 755 assets/run; printf texture > assets/tex.txt;"
             " tar -cf - scene.json assets | zstd -q -o '%s' -f",
             dir, dir, dir, path);
    if (system(cmd) != 0) {
        fprintf(stderr, "skipping tar | zstd: the commands failed\n");
        return;
    }
    s_check_small(path, "cmdzst");
    assert_int_equal(tsr_rm_rf(dir), 0);
}

/* ---- reading one member ------------------------------------------------- */

static void test_read_file(void **state)
{
    (void)state;
    char path[512], err[256];
    s_path(path, sizeof path, "read.tar.gz");
    s_make(path, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, ARCHIVE_FILTER_GZIP, GOOD, NGOOD);
    char *data = NULL;
    size_t size = 0;
    assert_int_equal(
        tsr_archive_read_file(path, "scene.json", 1024, &data, &size, err, sizeof err),
        0);
    assert_int_equal(size, 19);
    assert_string_equal(data, "{\"frames\": \"1-10\"}\n");
    free(data);
    assert_int_equal(
        tsr_archive_read_file(path, "./scene.json", 19, &data, &size, err, sizeof err),
        0);
    free(data);
    assert_int_equal(
        tsr_archive_read_file(path, "scene.json", 18, &data, &size, err, sizeof err),
        TSR_ELIMIT);
    assert_null(data);
    assert_int_equal(
        tsr_archive_read_file(path, "hard", 100, &data, &size, err, sizeof err), 0);
    assert_string_equal(data, "alpha");
    free(data);
    assert_int_equal(
        tsr_archive_read_file(path, "nope", 100, &data, &size, err, sizeof err),
        TSR_ENOTFOUND);
    assert_int_equal(
        tsr_archive_read_file(path, "textures", 100, &data, &size, err, sizeof err),
        TSR_ENOTFOUND);
    assert_int_equal(
        tsr_archive_read_file(path, "link", 100, &data, &size, err, sizeof err),
        TSR_ENOTFOUND);
    assert_int_equal(
        tsr_archive_read_file(path, "../x", 100, &data, &size, err, sizeof err),
        TSR_ENOTFOUND);

    /* A big member is refused while reading, whatever its header says. */
    struct ent big[] = {{.name = "big.bin", .zeros = 300000}};
    s_make(path, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, ARCHIVE_FILTER_GZIP, big, 1);
    assert_int_equal(
        tsr_archive_read_file(path, "big.bin", 200000, &data, &size, err, sizeof err),
        TSR_ELIMIT);
    assert_int_equal(
        tsr_archive_read_file(path, "big.bin", 300000, &data, &size, err, sizeof err), 0);
    assert_int_equal(size, 300000);
    free(data);

    s_path(path, sizeof path, "notes2.txt");
    assert_int_equal(tsr_write_file_atomic(path, "hello\n", 6), 0);
    assert_int_equal(
        tsr_archive_read_file(path, "scene.json", 100, &data, &size, err, sizeof err),
        TSR_EARCHIVE);
}

/* ---- packing ---------------------------------------------------------------- */

static void s_write(const char *dir, const char *rel, const char *data, unsigned mode)
{
    char p[700];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    char *slash = strrchr(p, '/');
    *slash = '\0';
    assert_int_equal(tsr_mkdir_p(p), 0);
    *slash = '/';
    assert_int_equal(tsr_write_file_atomic(p, data, strlen(data)), 0);
    assert_int_equal(chmod(p, mode), 0);
}

static void s_symlink(const char *dir, const char *rel, const char *target)
{
    char p[700];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    assert_int_equal(symlink(target, p), 0);
}

static void s_hash(const char *path, char hex[TSR_HASH_HEX])
{
    assert_int_equal(tsr_hash_file(path, hex, NULL), 0);
}

static void test_pack_dir(void **state)
{
    (void)state;
    char src[512], out1[512], out2[512], out3[512], err[256];
    char p[1400];
    s_path(src, sizeof src, "pack-src");
    assert_int_equal(tsr_rm_rf(src), 0);
    assert_int_equal(tsr_mkdir_p(src), 0);
    s_write(src, "scene.json", "{\"pack\": 1}", 0600);
    s_write(src, "bin/render.sh", "#!/bin/sh\n", 0700);
    s_write(src, "textures/b.txt", "bee", 0644);
    s_write(src, "textures/a.txt", "ay", 0664);
    /* A long name forces a pax extended header into the archive. */
    char longrel[300];
    snprintf(longrel, sizeof longrel, "textures/%0150d.txt", 7);
    s_write(src, longrel, "long", 0644);
    snprintf(p, sizeof p, "%s/empty", src);
    assert_int_equal(mkdir(p, 0700), 0);
    s_symlink(src, "tex", "textures");
    s_symlink(src, "textures/back", "../scene.json");
    s_symlink(src, "evil", "../../etc/passwd");
    s_symlink(src, "abs", "/etc/passwd");
    s_symlink(src, "here", ".");
    s_symlink(src, "out", "here/..");
    snprintf(p, sizeof p, "%s/pipe", src);
    assert_int_equal(mkfifo(p, 0644), 0);

    s_path(out1, sizeof out1, "pack1.tar.zst");
    s_path(out2, sizeof out2, "pack2.tar.zst");
    s_path(out3, sizeof out3, "pack3.tar.zst");
    assert_int_equal(tsr_archive_pack_dir(src, out1, err, sizeof err), 0);
    /* New times on everything, and a pack from another process (pid). */
    struct timeval tv[2] = {{1000, 0}, {1000, 0}};
    snprintf(p, sizeof p, "%s/scene.json", src);
    assert_int_equal(utimes(p, tv), 0);
    snprintf(p, sizeof p, "%s/textures", src);
    assert_int_equal(utimes(p, tv), 0);
    assert_int_equal(tsr_archive_pack_dir(src, out2, err, sizeof err), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(tsr_archive_pack_dir(src, out3, err, sizeof err) == 0 ? 0 : 1);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    char h1[TSR_HASH_HEX], h2[TSR_HASH_HEX], h3[TSR_HASH_HEX];
    s_hash(out1, h1);
    s_hash(out2, h2);
    s_hash(out3, h3);
    assert_string_equal(h1, h2);
    assert_string_equal(h1, h3);

    /* The packed archive passes the check and extracts to the same tree. */
    struct tsr_archive_report rep;
    int rc = tsr_archive_check(out1, NULL, "scene.json", &rep, err, sizeof err);
    if (rc != 0)
        fail_msg("packed archive refused: %s", err);
    /* bin, bin/render.sh, empty, here, scene.json, tex, textures, a, b,
     * back, long: 11 (evil, abs, out and pipe left out). */
    assert_int_equal(rep.entries, 11);
    char base[512], dest[600];
    s_fresh("pack", base, sizeof base);
    snprintf(dest, sizeof dest, "%s/scene", base);
    rc = tsr_archive_extract(out1, NULL, dest, err, sizeof err);
    if (rc != 0)
        fail_msg("packed archive extract refused: %s", err);
    snprintf(p, sizeof p, "%s/scene.json", dest);
    s_expect_file(p, "{\"pack\": 1}", 0644);
    snprintf(p, sizeof p, "%s/bin/render.sh", dest);
    s_expect_file(p, "#!/bin/sh\n", 0755);
    snprintf(p, sizeof p, "%s/textures/a.txt", dest);
    s_expect_file(p, "ay", 0644);
    snprintf(p, sizeof p, "%s/textures/b.txt", dest);
    s_expect_file(p, "bee", 0644);
    snprintf(p, sizeof p, "%s/%s", dest, longrel);
    s_expect_file(p, "long", 0644);
    snprintf(p, sizeof p, "%s/tex/b.txt", dest);
    s_expect_file(p, "bee", 0644); /* through the kept link */
    snprintf(p, sizeof p, "%s/textures/back", dest);
    struct stat st;
    assert_int_equal(lstat(p, &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    snprintf(p, sizeof p, "%s/empty", dest);
    assert_int_equal(lstat(p, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    const char *gone[] = {"evil", "abs", "out", "pipe"};
    for (size_t i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", dest, gone[i]);
        assert_false(tsr_path_exists(p));
    }

    /* Packing the extracted tree gives the same bytes again. */
    char out4[512], h4[TSR_HASH_HEX];
    s_path(out4, sizeof out4, "pack4.tar.zst");
    assert_int_equal(tsr_archive_pack_dir(dest, out4, err, sizeof err), 0);
    s_hash(out4, h4);
    assert_string_equal(h1, h4);

    /* An output inside the folder is not packed into itself. */
    snprintf(p, sizeof p, "%s/self.tar.zst", dest);
    assert_int_equal(tsr_archive_pack_dir(dest, p, err, sizeof err), 0);
    assert_int_equal(tsr_archive_check(p, NULL, "scene.json", &rep, err, sizeof err), 0);
    assert_int_equal(rep.entries, 11);

    s_path(p, sizeof p, "no-such-dir");
    assert_int_equal(tsr_archive_pack_dir(p, out4, err, sizeof err), TSR_ENOTFOUND);
    assert_int_equal(tsr_rm_rf(base), 0);
    assert_int_equal(tsr_rm_rf(src), 0);
}

/* ---- a full disk ------------------------------------------------------------- */

/* Needs root to mount a small tmpfs; skipped elsewhere. */
static void test_disk_full(void **state)
{
    (void)state;
    char mnt[512], path[512], dest[600], err[256];
    s_path(mnt, sizeof mnt, "small-fs");
    assert_int_equal(tsr_mkdir_p(mnt), 0);
    if (geteuid() != 0 || mount("tmpfs", mnt, "tmpfs", 0, "size=256k") != 0) {
        fprintf(stderr, "skipping the full-disk test: cannot mount a tmpfs\n");
        rmdir(mnt);
        skip();
    }
    s_path(path, sizeof path, "fill.tar.gz");
    struct ent e[] = {{.name = "scene.json", .data = "{}"},
                      {.name = "big.bin", .zeros = 2u << 20}};
    s_make(path, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, ARCHIVE_FILTER_GZIP, e, 2);
    struct tsr_archive_limits lim;
    tsr_archive_limits_default(&lim);
    lim.max_ratio = 100000;
    char canary[600];
    snprintf(canary, sizeof canary, "%s/canary.txt", mnt);
    assert_int_equal(tsr_write_file_atomic(canary, "keep me", 7), 0);
    snprintf(dest, sizeof dest, "%s/scene", mnt);
    int rc = tsr_archive_extract(path, &lim, dest, err, sizeof err);
    int clean_dest = !tsr_path_exists(dest);
    char staging[700];
    snprintf(staging, sizeof staging, "%s.staging.%ld", dest, (long)getpid());
    int clean_staging = !tsr_path_exists(staging);
    char *data = NULL;
    size_t len = 0;
    int canary_ok = tsr_read_file(canary, 100, &data, &len) == 0 && len == 7 &&
                    memcmp(data, "keep me", 7) == 0;
    free(data);
    umount(mnt);
    rmdir(mnt);
    assert_int_equal(rc, TSR_EFULL);
    assert_non_null(strstr(err, "no space left writing entry 'big.bin'"));
    assert_true(clean_dest);
    assert_true(clean_staging);
    assert_true(canary_ok);
}

static int s_setup(void **state)
{
    (void)state;
    snprintf(g_tmp, sizeof g_tmp, "/tmp/tsr-archive-XXXXXX");
    if (!mkdtemp(g_tmp))
        return -1;
    return 0;
}

static int s_teardown(void **state)
{
    (void)state;
    return tsr_rm_rf(g_tmp);
}

int main(void)
{
    assert_int_equal(tsr_hash_init_library(), 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_archive_checks_and_extracts),
        cmocka_unit_test(test_scene_missing),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_link_budget),
        cmocka_unit_test(test_ratio_bomb),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_not_an_archive),
        cmocka_unit_test(test_zip_and_zstd_read),
        cmocka_unit_test(test_read_file),
        cmocka_unit_test(test_pack_dir),
        cmocka_unit_test(test_disk_full),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
