/*
 * sandbox.c: renderers inside bubblewrap (sandbox.h).
 *
 * The sandbox is a command line put in front of the renderer's: bwrap
 * builds the namespaces and the file system view, then (for a root worker)
 * setpriv, run inside it with only CAP_SETUID and CAP_SETGID left, becomes
 * the unprivileged user, empties the capability sets and sets no_new_privs
 * before it execs the renderer. The runner still spawns one program
 * (posix_spawn), and killing its process group still kills the renderer:
 * bwrap is the group leader, and --die-with-parent plus the PID namespace
 * take everything inside down with it.
 *
 * Paths are shown at the same place inside as outside, so a command line,
 * $HOME and $TMPDIR built for the host hold inside unchanged.
 */
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tessera/error.h"
#include "tessera/util.h"

#include "probe.h"

#define S_CHECK_TIMEOUT_MS 10000 /* longest wait for the start-up check */
#define S_CHECK_FILE "sandbox-check"
#define S_EMPTY_FILE "sandbox-empty" /* in the cache folder */

/* The system's programs, libraries and settings, shown read-only. */
static const char *const s_system[] = {"/usr", "/etc", "/sys"};
/* Top-level folders that are links into /usr on a merged-/usr system and
 * folders of their own on an older one. */
static const char *const s_compat[] = {"/bin",   "/sbin",  "/lib",
                                       "/lib32", "/lib64", "/libx32"};

struct tsr_sandbox {
    enum tsr_sandbox_mode mode; /* bwrap or none */
    char bwrap[PATH_MAX];       /* bwrap's path */
    char setpriv[PATH_MAX];     /* setpriv's path (a root worker) */
    int drop;                   /* the worker is root: renderers become uid/gid */
    uid_t uid;                  /* the renderers' user */
    gid_t gid;                  /* and its group */
    char **binds;               /* --sandbox-bind folders, resolved */
    int nbinds;                 /* entries in binds */
    char **secrets;             /* files never shown, resolved */
    int nsecrets;               /* entries in secrets */
    char private_dir[PATH_MAX]; /* the cache folder, resolved */
    char empty[PATH_MAX];       /* an empty file there, shown in place of secrets */
    char describe[256];         /* tsr_sandbox_describe's line */
};

/* True when path is root or lies under it. */
static int s_under(const char *path, const char *root)
{
    size_t n = strlen(root);
    return strncmp(path, root, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/* True when path lies under one of the folders every sandbox shows. */
static int s_system_path(const char *path)
{
    for (size_t i = 0; i < sizeof s_system / sizeof *s_system; i++)
        if (s_under(path, s_system[i]))
            return 1;
    return 0;
}

/* True when path lies under a folder every sandbox shows, or under an
 * operator's --sandbox-bind. */
static int s_shown(const struct tsr_sandbox *sb, const char *path)
{
    if (s_system_path(path))
        return 1;
    for (int i = 0; i < sb->nbinds; i++)
        if (s_under(path, sb->binds[i]))
            return 1;
    return 0;
}

/* Copies realpath(path) into *out (malloc'd). Returns 0, TSR_ENOTFOUND,
 * TSR_ENOMEM. */
static int s_resolve(const char *path, char **out)
{
    char buf[PATH_MAX];
    if (!realpath(path, buf))
        return TSR_ENOTFOUND;
    *out = strdup(buf);
    return *out ? 0 : TSR_ENOMEM;
}

static void s_who(struct tsr_sandbox *sb, const char *name)
{
    if (sb->mode == TSR_SANDBOX_NONE)
        snprintf(sb->describe, sizeof sb->describe,
                 "none (--sandbox none): renderers run as this worker's user (uid %u) "
                 "with only a scrubbed environment",
                 (unsigned)geteuid());
    else if (sb->drop)
        snprintf(sb->describe, sizeof sb->describe,
                 "bubblewrap: no network, only their scene and task folder; renderers "
                 "run as %s (uid %u)",
                 name, (unsigned)sb->uid);
    else
        snprintf(sb->describe, sizeof sb->describe,
                 "bubblewrap: no network, only their scene and task folder; renderers "
                 "run as this worker's user (uid %u)",
                 (unsigned)geteuid());
}

/* Resolves the --sandbox-bind folders; none may hold the cache. */
static int s_binds(struct tsr_sandbox *sb, const struct tsr_sandbox_config *cfg,
                   char *err, size_t errlen)
{
    if (cfg->nbinds > TSR_SANDBOX_MAX_BINDS) {
        snprintf(err, errlen, "at most %d --sandbox-bind folders", TSR_SANDBOX_MAX_BINDS);
        return TSR_EINVAL;
    }
    if (cfg->nbinds > 0 && !(sb->binds = calloc((size_t)cfg->nbinds, sizeof *sb->binds)))
        return TSR_ENOMEM;
    for (int i = 0; i < cfg->nbinds; i++) {
        struct stat st;
        char *p = NULL;
        int rc = s_resolve(cfg->binds[i], &p);
        if (rc == TSR_ENOMEM)
            return rc;
        if (rc != 0 || stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) {
            free(p);
            snprintf(err, errlen, "--sandbox-bind '%s' is not a folder", cfg->binds[i]);
            return TSR_EINVAL;
        }
        sb->binds[sb->nbinds++] = p;
    }
    if (s_system_path(sb->private_dir)) {
        snprintf(err, errlen,
                 "the cache folder '%s' lies under /usr, /etc or /sys, which every "
                 "renderer sees: put it elsewhere (--cache)",
                 sb->private_dir);
        return TSR_EINVAL;
    }
    for (int i = 0; i < sb->nbinds; i++)
        if (s_under(sb->private_dir, sb->binds[i])) {
            snprintf(err, errlen,
                     "--sandbox-bind '%s' holds the cache folder '%s': renderers would "
                     "see other jobs' scenes and results",
                     sb->binds[i], sb->private_dir);
            return TSR_EINVAL;
        }
    return 0;
}

/* Finds the user a root worker's renderers run as. */
static int s_user(struct tsr_sandbox *sb, const char *name, char *err, size_t errlen)
{
    errno = 0;
    struct passwd *pw = getpwnam(name);
    if (!pw) {
        snprintf(err, errlen, "--sandbox-user '%s': no such user", name);
        return TSR_ENOTFOUND;
    }
    if (pw->pw_uid == 0 || pw->pw_gid == 0) {
        snprintf(err, errlen,
                 "--sandbox-user '%s' is root or in group root: renderers "
                 "need an unprivileged user",
                 name);
        return TSR_EINVAL;
    }
    sb->uid = pw->pw_uid;
    sb->gid = pw->pw_gid;
    return 0;
}

int tsr_sandbox_new(const struct tsr_sandbox_config *cfg, struct tsr_sandbox **out,
                    char *err, size_t errlen)
{
    *out = NULL;
    struct tsr_sandbox *sb = calloc(1, sizeof *sb);
    if (!sb)
        return TSR_ENOMEM;
    sb->mode = cfg->mode;
    int rc = 0;
    const char *name = cfg->user ? cfg->user : "nobody";
    if (sb->mode == TSR_SANDBOX_NONE) {
        if (cfg->user || cfg->nbinds > 0) {
            snprintf(err, errlen, "%s has no meaning with --sandbox none",
                     cfg->user ? "--sandbox-user" : "--sandbox-bind");
            rc = TSR_EINVAL;
        }
        goto done;
    }
    if (tsr_adapter_which("bwrap", sb->bwrap, sizeof sb->bwrap) != 0) {
        snprintf(
            err, errlen,
            "bubblewrap (bwrap) is not on PATH: install it (apt install bubblewrap), "
            "or run renderers unconfined with --sandbox none");
        rc = TSR_ENOTFOUND;
        goto done;
    }
    sb->drop = geteuid() == 0;
    if (sb->drop) {
        if (tsr_adapter_which("setpriv", sb->setpriv, sizeof sb->setpriv) != 0) {
            snprintf(err, errlen,
                     "setpriv (util-linux) is not on PATH: a root worker "
                     "needs it to run renderers as '%s'",
                     name);
            rc = TSR_ENOTFOUND;
            goto done;
        }
        if ((rc = s_user(sb, name, err, errlen)) != 0)
            goto done;
    } else if (cfg->user) {
        snprintf(err, errlen,
                 "--sandbox-user needs a worker running as root; renderers "
                 "already run as this worker's user");
        rc = TSR_EINVAL;
        goto done;
    }
    if (!realpath(cfg->private_dir, sb->private_dir)) {
        snprintf(err, errlen, "cannot resolve the cache folder '%s': %s",
                 cfg->private_dir, strerror(errno));
        rc = TSR_EIO;
        goto done;
    }
    if ((rc = s_binds(sb, cfg, err, errlen)) != 0)
        goto done;
    /* What a renderer finds where a secret was: an empty file (a device
     * such as /dev/null cannot be opened on bwrap's nodev binds), made anew
     * at each start (the last one's is read-only to its owner too). */
    int fd = -1;
    if (tsr_fmt(sb->empty, sizeof sb->empty, "%s/" S_EMPTY_FILE, sb->private_dir) != 0 ||
        (unlink(sb->empty) != 0 && errno != ENOENT) ||
        (fd = open(sb->empty, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444)) < 0 ||
        fchmod(fd, 0444) != 0) {
        snprintf(err, errlen, "cannot create '%s': %s", sb->empty, strerror(errno));
        if (fd >= 0)
            close(fd);
        rc = TSR_EIO;
        goto done;
    }
    close(fd);
    if (cfg->nsecrets > 0 &&
        !(sb->secrets = calloc((size_t)cfg->nsecrets, sizeof *sb->secrets))) {
        rc = TSR_ENOMEM;
        goto done;
    }
    for (int i = 0; i < cfg->nsecrets; i++) {
        char *p = NULL;
        if ((rc = s_resolve(cfg->secrets[i], &p)) == TSR_ENOMEM)
            goto done;
        rc = 0;
        if (p)
            sb->secrets[sb->nsecrets++] = p;
    }
done:
    if (rc == TSR_ENOMEM)
        snprintf(err, errlen, "out of memory preparing the sandbox");
    if (rc != 0) {
        tsr_sandbox_destroy(&sb);
        return rc;
    }
    s_who(sb, name);
    *out = sb;
    return 0;
}

void tsr_sandbox_destroy(struct tsr_sandbox **sbp)
{
    if (!sbp || !*sbp)
        return;
    struct tsr_sandbox *sb = *sbp;
    for (int i = 0; i < sb->nbinds; i++)
        free(sb->binds[i]);
    for (int i = 0; i < sb->nsecrets; i++)
        free(sb->secrets[i]);
    free(sb->binds);
    free(sb->secrets);
    free(sb);
    *sbp = NULL;
}

/* A growing NULL-terminated argument vector of owned strings. */
struct s_args {
    char **v;   /* the strings, NULL-terminated */
    size_t n;   /* strings held */
    size_t cap; /* room, not counting the NULL */
    int failed; /* an allocation failed; the vector is incomplete */
};

static void s_add(struct s_args *a, const char *s)
{
    if (a->failed)
        return;
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        char **v = realloc(a->v, (cap + 1) * sizeof *v);
        if (!v) {
            a->failed = 1;
            return;
        }
        a->v = v;
        a->cap = cap;
    }
    if (!(a->v[a->n] = strdup(s))) {
        a->failed = 1;
        return;
    }
    a->v[++a->n] = NULL;
}

static void s_add3(struct s_args *a, const char *opt, const char *x, const char *y)
{
    s_add(a, opt);
    s_add(a, x);
    s_add(a, y);
}

/* The folders of a merged or a split /usr. */
static void s_compat_dirs(struct s_args *a)
{
    for (size_t i = 0; i < sizeof s_compat / sizeof *s_compat; i++) {
        const char *d = s_compat[i];
        struct stat st;
        char target[PATH_MAX];
        if (lstat(d, &st) != 0)
            continue;
        if (S_ISLNK(st.st_mode)) {
            ssize_t n = readlink(d, target, sizeof target - 1);
            if (n <= 0)
                continue;
            target[n] = '\0';
            s_add3(a, "--symlink", target, d);
        } else if (S_ISDIR(st.st_mode)) {
            s_add3(a, "--ro-bind", d, d);
        }
    }
}

/*
 * Finds the folder of the program at path when no other bind shows it
 * (tessera-render in a build folder, Blender under /opt): writes it into
 * dir, or "" when there is nothing to show. Refuses a folder that holds
 * the cache.
 */
static int s_program_dir(const struct tsr_sandbox *sb, const char *path, char *dir,
                         char *err, size_t errlen)
{
    dir[0] = '\0';
    if (!realpath(path, dir)) {
        dir[0] = '\0';
        return 0; /* not there: the renderer's exec fails and says so */
    }
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir || (*slash = '\0', s_shown(sb, dir))) {
        dir[0] = '\0';
        return 0;
    }
    if (s_under(sb->private_dir, dir)) {
        snprintf(err, errlen,
                 "the renderer's folder '%s' holds the cache folder '%s': renderers "
                 "would see other jobs' scenes and results",
                 dir, sb->private_dir);
        return TSR_EINVAL;
    }
    return 0;
}

/*
 * Creates the folders above each bind target, open to all (0755): bwrap
 * would make them 0700 and root's, which an unprivileged renderer cannot
 * cross. They are empty folders in the sandbox's own tmpfs. Each is made
 * once, before any bind could make it.
 */
static void s_parents(const struct tsr_sandbox *sb, struct s_args *a,
                      const char *const *targets, int n)
{
    for (int i = 0; i < n; i++) {
        if (!targets[i][0] || s_system_path(targets[i]))
            continue;
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s", targets[i]);
        for (char *slash = strchr(p + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
            *slash = '\0';
            int seen = strcmp(p, "/tmp") == 0 || s_shown(sb, p);
            /* Made already for an earlier target under the same folder. */
            for (int k = 0; !seen && k < i; k++)
                seen =
                    targets[k][0] && !s_system_path(targets[k]) && s_under(targets[k], p);
            if (!seen) {
                s_add(a, "--perms");
                s_add(a, "0755");
                s_add(a, "--dir");
                s_add(a, p);
            }
            *slash = '/';
        }
    }
}

/* Shows the GPU device nodes to a GPU task (CUDA_VISIBLE_DEVICES picks its
 * GPU among them); a CPU task gets none. */
static void s_gpu_devices(struct s_args *a)
{
    glob_t g;
    if (glob("/dev/nvidia*", 0, NULL, &g) != 0)
        return;
    for (size_t i = 0; i < g.gl_pathc; i++)
        s_add3(a, "--dev-bind", g.gl_pathv[i], g.gl_pathv[i]);
    globfree(&g);
}

int tsr_sandbox_wrap(const struct tsr_sandbox *sb, const struct tsr_sandbox_task *t,
                     struct tsr_cmdline *cl, char *err, size_t errlen)
{
    if (sb->mode == TSR_SANDBOX_NONE)
        return 0;
    struct s_args a = {0};
    s_add(&a, sb->bwrap);
    /* Namespaces: no network, no other process, no host IPC; --new-session
     * keeps it from pushing keystrokes into the worker's terminal. */
    s_add(&a, "--die-with-parent");
    s_add(&a, "--new-session");
    s_add(&a, "--unshare-pid");
    s_add(&a, "--unshare-net");
    s_add(&a, "--unshare-ipc");
    s_add(&a, "--unshare-uts");
    s_add(&a, "--unshare-cgroup-try");
    s_add3(&a, "--ro-bind", "/usr", "/usr");
    s_compat_dirs(&a);
    s_add3(&a, "--ro-bind", "/etc", "/etc");
    s_add3(&a, "--ro-bind-try", "/sys", "/sys");
    s_add(&a, "--proc");
    s_add(&a, "/proc");
    s_add(&a, "--dev");
    s_add(&a, "/dev");
    /* Writable by all, sticky, as on the host. */
    s_add3(&a, "--perms", "1777", "--tmpfs");
    s_add(&a, "/dev/shm");
    s_add3(&a, "--perms", "1777", "--tmpfs");
    s_add(&a, "/tmp");
    char prog[PATH_MAX], helper[PATH_MAX] = "";
    int rc = s_program_dir(sb, cl->argv[0], prog, err, errlen);
    if (rc == 0 && sb->drop)
        rc = s_program_dir(sb, sb->setpriv, helper, err, errlen);
    if (rc == 0 && strcmp(helper, prog) == 0)
        helper[0] = '\0';
    const char *targets[4 + TSR_SANDBOX_MAX_BINDS] = {prog, helper, t->scene_dir,
                                                      t->task_dir};
    int ntargets = 4;
    for (int i = 0; i < sb->nbinds && ntargets < 4 + TSR_SANDBOX_MAX_BINDS; i++)
        targets[ntargets++] = sb->binds[i];
    s_parents(sb, &a, targets, ntargets);
    if (prog[0])
        s_add3(&a, "--ro-bind", prog, prog);
    if (helper[0])
        s_add3(&a, "--ro-bind", helper, helper);
    for (int i = 0; i < sb->nbinds; i++)
        s_add3(&a, "--ro-bind", sb->binds[i], sb->binds[i]);
    s_add3(&a, "--ro-bind", t->scene_dir, t->scene_dir);
    s_add3(&a, "--bind", t->task_dir, t->task_dir);
    if (t->gpu >= 0)
        s_gpu_devices(&a);
    /* A key kept under a shown folder (/etc, a --sandbox-bind) is covered
     * by an empty file. */
    for (int i = 0; i < sb->nsecrets; i++)
        if (s_shown(sb, sb->secrets[i]))
            s_add3(&a, "--ro-bind", sb->empty, sb->secrets[i]);
    s_add(&a, "--chdir");
    s_add(&a, t->task_dir);
    if (sb->drop) {
        /* bwrap drops every capability of a root caller but these two,
         * which setpriv spends on becoming the user. */
        s_add(&a, "--cap-add");
        s_add(&a, "CAP_SETUID");
        s_add(&a, "--cap-add");
        s_add(&a, "CAP_SETGID");
    }
    s_add(&a, "--");
    if (sb->drop) {
        char id[48];
        s_add(&a, sb->setpriv);
        snprintf(id, sizeof id, "--reuid=%u", (unsigned)sb->uid);
        s_add(&a, id);
        snprintf(id, sizeof id, "--regid=%u", (unsigned)sb->gid);
        s_add(&a, id);
        s_add(&a, "--clear-groups");
        s_add(&a, "--no-new-privs");
        s_add(&a, "--inh-caps=-all");
        s_add(&a, "--bounding-set=-all");
        s_add(&a, "--");
    }
    if (rc != 0 || a.failed) {
        for (size_t i = 0; i < a.n; i++)
            free(a.v[i]);
        free(a.v);
        if (rc == 0) {
            snprintf(err, errlen, "out of memory building the sandbox's command line");
            rc = TSR_ENOMEM;
        }
        return rc;
    }
    size_t n = 0;
    while (cl->argv[n])
        n++;
    char **v = realloc(a.v, (a.n + n + 1) * sizeof *v);
    if (!v) {
        for (size_t i = 0; i < a.n; i++)
            free(a.v[i]);
        free(a.v);
        snprintf(err, errlen, "out of memory building the sandbox's command line");
        return TSR_ENOMEM;
    }
    memcpy(v + a.n, cl->argv, (n + 1) * sizeof *v); /* the strings move over */
    free(cl->argv);
    cl->argv = v;
    return 0;
}

int tsr_sandbox_own(const struct tsr_sandbox *sb, const char *task_dir)
{
    if (sb->mode == TSR_SANDBOX_NONE || !sb->drop)
        return 0;
    return chown(task_dir, sb->uid, sb->gid) == 0 && chmod(task_dir, 0700) == 0 ? 0
                                                                                : TSR_EIO;
}

int tsr_sandbox_status(const struct tsr_sandbox *sb, int status)
{
    if (sb->mode == TSR_SANDBOX_NONE || !WIFEXITED(status))
        return status;
    int code = WEXITSTATUS(status);
    if (code > 128 && code < 128 + 65)
        return code - 128; /* a wait status of death by that signal */
    return status;
}

int tsr_sandbox_check(const struct tsr_sandbox *sb, const char *dir, char *err,
                      size_t errlen)
{
    if (sb->mode == TSR_SANDBOX_NONE)
        return 0;
    char probe[PATH_MAX];
    if (tsr_fmt(probe, sizeof probe, "%s/" S_CHECK_FILE, dir) != 0) {
        snprintf(err, errlen, "sandbox check folder path too long");
        return TSR_ELIMIT;
    }
    tsr_rm_rf(dir);
    if (tsr_mkdir_p(dir) != 0 || tsr_sandbox_own(sb, dir) != 0) {
        snprintf(err, errlen, "cannot prepare '%s' for the sandbox check: %s", dir,
                 strerror(errno));
        tsr_rm_rf(dir);
        return TSR_EIO;
    }
    struct tsr_cmdline cl = {0};
    char *envp[] = {"PATH=/usr/bin:/bin", NULL};
    int rc = TSR_ENOMEM;
    if ((cl.argv = calloc(4, sizeof *cl.argv)) && (cl.argv[0] = strdup("/bin/sh")) &&
        (cl.argv[1] = strdup("-c")) && (cl.argv[2] = strdup(": > " S_CHECK_FILE)))
        rc = 0;
    struct tsr_sandbox_task t = {dir, dir, -1};
    if (rc == 0)
        rc = tsr_sandbox_wrap(sb, &t, &cl, err, errlen);
    int status = -1;
    char *log = NULL;
    if (rc == 0)
        rc = tsr_probe_run(cl.argv, envp, dir, S_CHECK_TIMEOUT_MS, NULL, NULL, &status,
                           &log, err, errlen);
    tsr_cmdline_clear(&cl);
    if (rc == 0 &&
        (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || !tsr_path_exists(probe))) {
        char why[512];
        tsr_child_last_line(log, why, sizeof why);
        snprintf(err, errlen,
                 "bubblewrap cannot run a renderer here (%s); it needs user "
                 "and mount namespaces, or run renderers unconfined with "
                 "--sandbox none",
                 why[0] ? why : "no output");
        rc = TSR_EIO;
    }
    free(log);
    tsr_rm_rf(dir);
    return rc;
}

const char *tsr_sandbox_describe(const struct tsr_sandbox *sb)
{
    return sb->describe;
}

const char *tsr_sandbox_mode_name(const struct tsr_sandbox *sb)
{
    return sb->mode == TSR_SANDBOX_NONE ? "none" : "bwrap";
}
