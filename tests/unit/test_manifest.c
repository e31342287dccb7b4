/*
 * test_manifest.c: the record of an extracted scene (worker/manifest.c):
 * an untouched scene checks clean; a chmod, an in-place write with the
 * mtime put back, an added file, a removed file and a file turned into a
 * folder are each named; a missing or damaged record is an error, never a
 * clean check. tests/integration/scene_edit.sh runs it in a farm.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tessera/error.h"
#include "tessera/util.h"

#include "manifest.h"

/* A scene folder and its record, made fresh for each test. */
struct fx {
    char root[256];  /* a temporary folder */
    char scene[300]; /* root/scene: scene.json, sub/a b.txt */
    char man[300];   /* root/manifest */
};

static void s_put(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int s_setup(void **state)
{
    struct fx *x = calloc(1, sizeof *x);
    snprintf(x->root, sizeof x->root, "/tmp/tsr-manifest.XXXXXX");
    if (!mkdtemp(x->root))
        return -1;
    snprintf(x->scene, sizeof x->scene, "%s/scene", x->root);
    snprintf(x->man, sizeof x->man, "%s/manifest", x->root);
    char p[400];
    mkdir(x->scene, 0755);
    snprintf(p, sizeof p, "%s/sub", x->scene);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/scene.json", x->scene);
    s_put(p, "{\"color\": [0.6, 0.6, 0.58]}\n");
    snprintf(p, sizeof p, "%s/sub/a b.txt", x->scene);
    s_put(p, "asset\n");
    char err[256] = "";
    if (tsr_manifest_write(x->scene, x->man, err, sizeof err) != 0)
        return -1;
    *state = x;
    return 0;
}

static int s_teardown(void **state)
{
    struct fx *x = *state;
    tsr_rm_rf(x->root);
    free(x);
    return 0;
}

/* The check's answer and what it said. */
static int s_check(struct fx *x, char *what, size_t len)
{
    what[0] = '\0';
    return tsr_manifest_check(x->scene, x->man, what, len);
}

static void test_untouched(void **state)
{
    struct fx *x = *state;
    char what[512], p[400];
    assert_int_equal(s_check(x, what, sizeof what), 0);
    /* Reading a file changes nothing the check looks at. */
    snprintf(p, sizeof p, "%s/scene.json", x->scene);
    char buf[64];
    int fd = open(p, O_RDONLY);
    assert_true(fd >= 0);
    assert_true(read(fd, buf, sizeof buf) > 0);
    close(fd);
    assert_int_equal(s_check(x, what, sizeof what), 0);
}

static void test_same_size_edit_mtime_back(void **state)
{
    struct fx *x = *state;
    char what[512], p[400];
    snprintf(p, sizeof p, "%s/scene.json", x->scene);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    usleep(20000); /* a ctime the clock can tell from the first */
    int fd = open(p, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, "9", 1, 11), 1);
    close(fd);
    struct timespec t[2] = {st.st_atim, st.st_mtim};
    assert_int_equal(utimensat(AT_FDCWD, p, t, 0), 0);
    assert_int_equal(s_check(x, what, sizeof what), 1);
    assert_string_equal(what, "extracted file 'scene.json' changed");
}

static void test_chmod(void **state)
{
    struct fx *x = *state;
    char what[512], p[400];
    usleep(20000);
    snprintf(p, sizeof p, "%s/sub/a b.txt", x->scene);
    assert_int_equal(chmod(p, 0600), 0);
    assert_int_equal(s_check(x, what, sizeof what), 1);
    assert_string_equal(what, "extracted file 'sub/a b.txt' changed");
}

static void test_added_removed_retyped(void **state)
{
    struct fx *x = *state;
    char what[512], p[400];
    snprintf(p, sizeof p, "%s/sub/new.txt", x->scene);
    s_put(p, "x");
    assert_int_equal(s_check(x, what, sizeof what), 1);
    assert_string_equal(what, "extracted file 'sub/new.txt' added");
    unlink(p);
    assert_int_equal(s_check(x, what, sizeof what),
                     0); /* folders' times are not compared */
    snprintf(p, sizeof p, "%s/sub/a b.txt", x->scene);
    unlink(p);
    assert_int_equal(s_check(x, what, sizeof what), 1);
    assert_string_equal(what, "extracted file 'sub/a b.txt' removed");
    mkdir(p, 0755);
    assert_int_equal(s_check(x, what, sizeof what), 1);
    assert_string_equal(what, "extracted file 'sub/a b.txt' changed");
}

static void test_record_missing_or_damaged(void **state)
{
    struct fx *x = *state;
    char what[512];
    s_put(x->man, "f 12 garbage\n");
    assert_true(s_check(x, what, sizeof what) < 0);
    assert_string_equal(what, "its record of extracted files is unreadable");
    unlink(x->man);
    assert_int_equal(s_check(x, what, sizeof what), TSR_ENOTFOUND);
    assert_string_equal(what, "no record of its extracted files");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_untouched, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_same_size_edit_mtime_back, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_chmod, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_added_removed_retyped, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_record_missing_or_damaged, s_setup,
                                        s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
