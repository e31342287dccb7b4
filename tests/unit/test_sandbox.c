/*
 * test_sandbox.c: the renderers' sandbox (worker/sandbox.c) without running
 * a renderer: which folders it refuses to show, the bubblewrap command line
 * it builds (what is shown, read-only or not, a hidden key, GPU devices
 * only for GPU tasks, setpriv for a root worker), and how bwrap's exit
 * status for a signal becomes the signal again. tests/integration/sandbox.sh
 * runs a hostile renderer in it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tessera/error.h"
#include "tessera/util.h"

#include "adapters.h"
#include "sandbox.h"

struct fx {
    char root[1024];  /* a temporary folder */
    char cache[1100]; /* root/cache, the worker's cache */
    char keys[1100];  /* root/keys, shown with --sandbox-bind */
    char key[1100];   /* root/keys/w1.key */
    char other[1100]; /* root/other.key, under no shown folder */
    char scene[1100]; /* root/cache/scenes/abc */
    char task[1100];  /* root/cache/tasks/7 */
};

static int s_have_bwrap(void)
{
    char path[PATH_MAX];
    return tsr_adapter_which("bwrap", path, sizeof path) == 0;
}

static void s_touch(const char *path)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("secret\n", f);
    fclose(f);
}

static int s_setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->root, sizeof f->root, "%s/tsr-sandbox.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    assert_non_null(mkdtemp(f->root));
    snprintf(f->cache, sizeof f->cache, "%s/cache", f->root);
    snprintf(f->keys, sizeof f->keys, "%s/keys", f->root);
    snprintf(f->key, sizeof f->key, "%s/keys/w1.key", f->root);
    snprintf(f->other, sizeof f->other, "%s/other.key", f->root);
    snprintf(f->scene, sizeof f->scene, "%s/cache/scenes/abc", f->root);
    snprintf(f->task, sizeof f->task, "%s/cache/tasks/7", f->root);
    assert_int_equal(tsr_mkdir_p(f->scene), 0);
    assert_int_equal(tsr_mkdir_p(f->task), 0);
    assert_int_equal(tsr_mkdir_p(f->keys), 0);
    s_touch(f->key);
    s_touch(f->other);
    *state = f;
    return 0;
}

static int s_teardown(void **state)
{
    struct fx *f = *state;
    tsr_rm_rf(f->root);
    free(f);
    return 0;
}

/* The index of the first argument equal to a, followed by b (and c when
 * not NULL); -1 when there is none. */
static int s_find(char **argv, const char *a, const char *b, const char *c)
{
    for (int i = 0; argv[i]; i++)
        if (strcmp(argv[i], a) == 0 &&
            (!b || (argv[i + 1] && strcmp(argv[i + 1], b) == 0)) &&
            (!c || (argv[i + 1] && argv[i + 2] && strcmp(argv[i + 2], c) == 0)))
            return i;
    return -1;
}

/* Builds the sandboxed command line of "/bin/sh -c true" for a task. */
static void s_wrap(struct tsr_sandbox *sb, const struct fx *f, int gpu,
                   const char *program, struct tsr_cmdline *cl)
{
    cl->argv = calloc(4, sizeof *cl->argv);
    cl->envp = calloc(1, sizeof *cl->envp);
    assert_non_null(cl->argv);
    cl->argv[0] = strdup(program);
    cl->argv[1] = strdup("-c");
    cl->argv[2] = strdup("true");
    struct tsr_sandbox_task t = {f->scene, f->task, gpu};
    char err[512] = "";
    assert_int_equal(tsr_sandbox_wrap(sb, &t, cl, err, sizeof err), 0);
}

static void test_command_line(void **state)
{
    if (!s_have_bwrap())
        skip();
    struct fx *f = *state;
    const char *binds[] = {f->keys};
    const char *secrets[] = {f->key, f->other};
    struct tsr_sandbox_config cfg = {TSR_SANDBOX_BWRAP, NULL, binds,   1,
                                     secrets,           2,    f->cache};
    struct tsr_sandbox *sb = NULL;
    char err[512] = "";
    assert_int_equal(tsr_sandbox_new(&cfg, &sb, err, sizeof err), 0);
    struct tsr_cmdline cl = {0};
    s_wrap(sb, f, -1, "/bin/sh", &cl);
    char **a = cl.argv;
    assert_non_null(strstr(a[0], "bwrap"));
    assert_true(s_find(a, "--unshare-net", NULL, NULL) > 0);
    assert_true(s_find(a, "--unshare-pid", NULL, NULL) > 0);
    assert_true(s_find(a, "--ro-bind", "/usr", "/usr") > 0);
    /* The scene read-only, the task folder writable and the working folder. */
    assert_true(s_find(a, "--ro-bind", f->scene, f->scene) > 0);
    assert_true(s_find(a, "--bind", f->task, f->task) > 0);
    assert_true(s_find(a, "--chdir", f->task, NULL) > 0);
    assert_true(s_find(a, "--ro-bind", f->keys, f->keys) > 0);
    /* The folders above them are made once each, open to the renderer's
     * user, before any bind. */
    char parent[1200];
    snprintf(parent, sizeof parent, "%s/cache/scenes", f->root);
    int d = s_find(a, "--dir", parent, NULL);
    assert_true(d > 0 && strcmp(a[d - 1], "0755") == 0 &&
                strcmp(a[d - 2], "--perms") == 0);
    assert_true(d < s_find(a, "--ro-bind", f->scene, f->scene));
    int ncache = 0;
    for (int i = 0; a[i]; i++)
        ncache +=
            strcmp(a[i], "--dir") == 0 && a[i + 1] && strcmp(a[i + 1], f->cache) == 0;
    assert_int_equal(ncache, 1);
    /* Never the cache as a whole. */
    assert_int_equal(s_find(a, "--ro-bind", f->cache, NULL), -1);
    assert_int_equal(s_find(a, "--bind", f->cache, NULL), -1);
    /* The key in the shown folder is covered by an empty file; the other
     * one lies in no shown folder and needs no cover. */
    char empty[PATH_MAX];
    snprintf(empty, sizeof empty, "%s/sandbox-empty", f->cache);
    int k = s_find(a, "--ro-bind", empty, f->key);
    assert_true(k > s_find(a, "--ro-bind", f->keys, f->keys));
    struct stat st;
    assert_int_equal(stat(empty, &st), 0);
    assert_int_equal(st.st_size, 0);
    for (int i = 0; a[i]; i++)
        assert_null(strstr(a[i], "other.key"));
    /* No GPU devices for a CPU task. */
    assert_int_equal(s_find(a, "--dev-bind", NULL, NULL), -1);
    /* The renderer's own command line comes last, unchanged. */
    int sep = s_find(a, "--", NULL, NULL);
    assert_true(sep > 0);
    int n = 0;
    while (a[n])
        n++;
    assert_string_equal(a[n - 3], "/bin/sh");
    assert_string_equal(a[n - 2], "-c");
    assert_string_equal(a[n - 1], "true");
    if (geteuid() == 0) {
        /* A root worker: setpriv becomes nobody inside, nothing kept. */
        int sp = sep + 1;
        assert_non_null(strstr(a[sp], "setpriv"));
        char uid[32];
        snprintf(uid, sizeof uid, "--reuid=%u", 65534u);
        assert_true(s_find(a, uid, NULL, NULL) > sp);
        assert_true(s_find(a, "--no-new-privs", NULL, NULL) > sp);
        assert_true(s_find(a, "--bounding-set=-all", NULL, NULL) > sp);
        assert_true(s_find(a, "--cap-add", "CAP_SETUID", NULL) < sep);
    } else {
        assert_string_equal(a[sep + 1], "/bin/sh");
    }
    tsr_cmdline_clear(&cl);
    tsr_sandbox_destroy(&sb);
    assert_null(sb);
}

/* A renderer whose own folder holds the cache would show it whole. */
static void test_program_folder_with_the_cache(void **state)
{
    if (!s_have_bwrap())
        skip();
    struct fx *f = *state;
    char prog[PATH_MAX];
    snprintf(prog, sizeof prog, "%s/render", f->root);
    s_touch(prog);
    chmod(prog, 0755);
    struct tsr_sandbox_config cfg = {TSR_SANDBOX_BWRAP, NULL, NULL, 0, NULL, 0, f->cache};
    struct tsr_sandbox *sb = NULL;
    char err[512] = "";
    assert_int_equal(tsr_sandbox_new(&cfg, &sb, err, sizeof err), 0);
    struct tsr_cmdline cl = {0};
    cl.argv = calloc(2, sizeof *cl.argv);
    cl.argv[0] = strdup(prog);
    struct tsr_sandbox_task t = {f->scene, f->task, -1};
    assert_int_equal(tsr_sandbox_wrap(sb, &t, &cl, err, sizeof err), TSR_EINVAL);
    assert_non_null(strstr(err, "holds the cache folder"));
    /* The command line is left as it was. */
    assert_string_equal(cl.argv[0], prog);
    assert_null(cl.argv[1]);
    tsr_cmdline_clear(&cl);
    tsr_sandbox_destroy(&sb);
}

static void test_refusals(void **state)
{
    if (!s_have_bwrap())
        skip();
    struct fx *f = *state;
    struct tsr_sandbox *sb = NULL;
    char err[512] = "";
    /* A --sandbox-bind that holds the cache. */
    const char *root[] = {f->root};
    struct tsr_sandbox_config cfg = {TSR_SANDBOX_BWRAP, NULL, root, 1, NULL, 0, f->cache};
    assert_int_equal(tsr_sandbox_new(&cfg, &sb, err, sizeof err), TSR_EINVAL);
    assert_null(sb);
    assert_non_null(strstr(err, "holds the cache folder"));
    /* A --sandbox-bind that is not a folder. */
    const char *file[] = {f->key};
    cfg.binds = file;
    err[0] = '\0';
    assert_int_equal(tsr_sandbox_new(&cfg, &sb, err, sizeof err), TSR_EINVAL);
    assert_non_null(strstr(err, "is not a folder"));
    /* A user that does not exist (root), or any user (not root). */
    cfg.binds = NULL;
    cfg.nbinds = 0;
    cfg.user = "no-such-user-here";
    err[0] = '\0';
    int rc = tsr_sandbox_new(&cfg, &sb, err, sizeof err);
    assert_int_equal(rc, geteuid() == 0 ? TSR_ENOTFOUND : TSR_EINVAL);
    assert_non_null(strstr(err, "--sandbox-user"));
    if (geteuid() == 0) {
        cfg.user = "root";
        assert_int_equal(tsr_sandbox_new(&cfg, &sb, err, sizeof err), TSR_EINVAL);
        assert_non_null(strstr(err, "unprivileged"));
    }
    /* --sandbox none takes no sandbox settings. */
    cfg.mode = TSR_SANDBOX_NONE;
    cfg.user = "nobody";
    assert_int_equal(tsr_sandbox_new(&cfg, &sb, err, sizeof err), TSR_EINVAL);
    assert_non_null(strstr(err, "--sandbox none"));
}

static void test_none(void **state)
{
    struct fx *f = *state;
    struct tsr_sandbox_config cfg = {TSR_SANDBOX_NONE, NULL, NULL, 0, NULL, 0, f->cache};
    struct tsr_sandbox *sb = NULL;
    char err[512] = "";
    assert_int_equal(tsr_sandbox_new(&cfg, &sb, err, sizeof err), 0);
    assert_string_equal(tsr_sandbox_mode_name(sb), "none");
    assert_non_null(strstr(tsr_sandbox_describe(sb), "--sandbox none"));
    struct tsr_cmdline cl = {0};
    s_wrap(sb, f, -1, "/bin/sh", &cl);
    assert_string_equal(cl.argv[0], "/bin/sh");
    tsr_cmdline_clear(&cl);
    /* Exit statuses are the renderer's own. */
    int st = 139 << 8;
    assert_int_equal(tsr_sandbox_status(sb, st), st);
    tsr_sandbox_destroy(&sb);
}

/* bwrap exits 128+N for a renderer killed by signal N. */
static void test_status(void **state)
{
    if (!s_have_bwrap())
        skip();
    struct fx *f = *state;
    struct tsr_sandbox_config cfg = {TSR_SANDBOX_BWRAP, NULL, NULL, 0, NULL, 0, f->cache};
    struct tsr_sandbox *sb = NULL;
    char err[512] = "";
    assert_int_equal(tsr_sandbox_new(&cfg, &sb, err, sizeof err), 0);
    int st = tsr_sandbox_status(sb, 139 << 8);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), 11);
    st = tsr_sandbox_status(sb, 3 << 8);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 3);
    st = tsr_sandbox_status(sb, 9); /* bwrap itself killed */
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), 9);
    tsr_sandbox_destroy(&sb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_command_line, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_program_folder_with_the_cache, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_refusals, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_none, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_status, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
