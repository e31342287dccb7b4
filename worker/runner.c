/*
 * runner.c: renderer child processes (runner.h).
 *
 * posix_spawn, not fork: glibc's posix_spawn creates the child with
 * CLONE_VM|CLONE_VFORK, so it does not copy the page tables of a worker
 * that maps OpenImageIO's two hundred libraries (fork cost ~5 ms of system
 * time per task here). Everything the child needs before exec is an
 * attribute or a file action: a new process group, default signal
 * dispositions and an empty mask, output joined into one pipe, stdin from
 * /dev/null, every other descriptor closed, and the task's folder as the
 * working folder.
 */
#include "runner.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tessera/error.h"
#include "tessera/log.h"
#include "tessera/util.h"

#define S_READ_BUDGET (256 * 1024) /* most bytes read per tsr_child_read call */

struct tsr_child {
    pid_t pid;                 /* the group leader; also the group id */
    int fd;                    /* read end of the output pipe, -1 once closed */
    int reaped;                /* waitpid collected the leader */
    int64_t started_ms;        /* monotonic start time */
    int64_t ended_ms;          /* monotonic time it was reaped, 0 before */
    int64_t kill_at_ms;        /* when SIGKILL is due; 0 when not armed */
    int killed;                /* SIGKILL was sent */
    char ring[TSR_CHILD_LOG];  /* the last output bytes */
    size_t ring_head;          /* where the next byte goes */
    size_t ring_len;           /* bytes held, at most TSR_CHILD_LOG */
    char line[TSR_CHILD_LINE]; /* the line being assembled */
    size_t line_len;           /* bytes in line */
    int line_cut;              /* the current line overflowed: drop until '\n' */
};

int tsr_child_spawn(char *const argv[], char *const envp[], const char *cwd,
                    struct tsr_child **out, char *err, size_t errlen)
{
    *out = NULL;
    struct tsr_child *c = calloc(1, sizeof *c);
    if (!c)
        return TSR_ENOMEM;
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
        snprintf(err, errlen, "cannot make a pipe: %s", strerror(errno));
        free(c);
        return TSR_EIO;
    }
    posix_spawnattr_t attr;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_init(&fa);
    sigset_t all, none;
    sigfillset(&all);
    sigemptyset(&none);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF |
                                        POSIX_SPAWN_SETSIGMASK);
    posix_spawnattr_setpgroup(&attr, 0);
    /* Dispositions set to SIG_IGN survive exec; a renderer must get the
     * defaults (SIGPIPE in particular) and an empty mask. */
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawn_file_actions_adddup2(&fa, p[1], 1);
    posix_spawn_file_actions_adddup2(&fa, p[1], 2);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    /* Every other descriptor (the ZeroMQ sockets, other tasks' pipes) must
     * not leak into the renderer. */
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    posix_spawn_file_actions_addchdir_np(&fa, cwd);
    pid_t pid = -1;
    int e = posix_spawn(&pid, argv[0], &fa, &attr, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (e != 0) {
        snprintf(err, errlen, "cannot start '%s': %s", argv[0], strerror(e));
        close(p[0]);
        close(p[1]);
        free(c);
        return e == ENOENT || e == EACCES ? TSR_ENOTFOUND : TSR_EIO;
    }
    /* Also here, so the group exists before we might signal it. */
    setpgid(pid, pid);
    close(p[1]);
    int fl = fcntl(p[0], F_GETFL);
    fcntl(p[0], F_SETFL, fl | O_NONBLOCK);
    c->pid = pid;
    c->fd = p[0];
    c->started_ms = tsr_now_ms();
    *out = c;
    return 0;
}

void tsr_child_last_line(const char *log, char *buf, size_t size)
{
    const char *text = log ? log : "";
    const char *end = text + strlen(text);
    while (end > text && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' '))
        end--;
    const char *start = end;
    while (start > text && start[-1] != '\n' && start[-1] != '\r')
        start--;
    snprintf(buf, size, "%.*s", (int)(end - start), start);
}

int tsr_child_fd(const struct tsr_child *c)
{
    return c->fd;
}

static void s_keep(struct tsr_child *c, const char *data, size_t n)
{
    if (n >= TSR_CHILD_LOG) {
        data += n - TSR_CHILD_LOG;
        n = TSR_CHILD_LOG;
    }
    size_t first = TSR_CHILD_LOG - c->ring_head;
    if (first > n)
        first = n;
    memcpy(c->ring + c->ring_head, data, first);
    memcpy(c->ring, data + first, n - first);
    c->ring_head = (c->ring_head + n) % TSR_CHILD_LOG;
    c->ring_len = c->ring_len + n > TSR_CHILD_LOG ? TSR_CHILD_LOG : c->ring_len + n;
}

static void s_lines(struct tsr_child *c, const char *data, size_t n, tsr_child_line_fn fn,
                    void *ctx)
{
    for (size_t i = 0; i < n; i++) {
        char ch = data[i];
        if (ch == '\n' || ch == '\r') {
            if (!c->line_cut && c->line_len > 0 && fn) {
                c->line[c->line_len] = '\0';
                fn(ctx, c->line);
            }
            c->line_len = 0;
            c->line_cut = 0;
        } else if (c->line_len + 1 < TSR_CHILD_LINE) {
            c->line[c->line_len++] = ch;
        } else if (!c->line_cut) {
            /* Hand over what we have; the rest of this line is only logged. */
            c->line[c->line_len] = '\0';
            if (fn)
                fn(ctx, c->line);
            c->line_cut = 1;
        }
    }
}

/* Reads up to budget bytes; returns 1 at end of file or error, else 0. */
static int s_read(struct tsr_child *c, size_t budget, tsr_child_line_fn fn, void *ctx)
{
    char buf[16384];
    size_t got = 0;
    while (c->fd >= 0 && got < budget) {
        ssize_t n = read(c->fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (n <= 0)
            return 1;
        s_keep(c, buf, (size_t)n);
        s_lines(c, buf, (size_t)n, fn, ctx);
        got += (size_t)n;
    }
    return 0;
}

static void s_close_pipe(struct tsr_child *c, tsr_child_line_fn fn, void *ctx)
{
    if (c->fd < 0)
        return;
    close(c->fd);
    c->fd = -1;
    if (c->line_len > 0 && !c->line_cut && fn) {
        c->line[c->line_len] = '\0';
        fn(ctx, c->line);
    }
    c->line_len = 0;
}

void tsr_child_read(struct tsr_child *c, tsr_child_line_fn fn, void *ctx)
{
    /* At end of file the pipe is closed; the child may still run, and
     * tsr_child_reap (woken by SIGCHLD) notices when it ends. */
    if (c->fd >= 0 && s_read(c, S_READ_BUDGET, fn, ctx) == 1)
        s_close_pipe(c, fn, ctx);
}

int tsr_child_reap(struct tsr_child *c, tsr_child_line_fn fn, void *ctx, int *status)
{
    if (c->reaped)
        return 0;
    siginfo_t si;
    memset(&si, 0, sizeof si);
    /* WNOWAIT keeps the leader a zombie, so its group id cannot be reused
     * while we kill the rest of the group. */
    if (waitid(P_PID, (id_t)c->pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0 ||
        si.si_pid == 0)
        return 0;
    kill(-c->pid, SIGKILL);
    /* The group is dead or dying: what is left in the pipe is all there is.
     * Stragglers may still hold the write end, so read only what is there. */
    if (c->fd >= 0) {
        s_read(c, (size_t)-1, fn, ctx);
        s_close_pipe(c, fn, ctx);
    }
    int st = 0;
    while (waitpid(c->pid, &st, 0) < 0 && errno == EINTR)
        ;
    c->reaped = 1;
    c->ended_ms = tsr_now_ms();
    *status = st;
    return 1;
}

void tsr_child_terminate(struct tsr_child *c, int64_t now_ms)
{
    if (c->reaped || c->kill_at_ms)
        return;
    kill(-c->pid, SIGTERM);
    c->kill_at_ms = now_ms + TSR_CHILD_GRACE_MS;
}

int64_t tsr_child_tick(struct tsr_child *c, int64_t now_ms)
{
    if (c->reaped || !c->kill_at_ms || c->killed)
        return INT64_MAX;
    if (now_ms >= c->kill_at_ms) {
        kill(-c->pid, SIGKILL);
        c->killed = 1;
        return INT64_MAX;
    }
    return c->kill_at_ms;
}

int64_t tsr_child_elapsed_ms(const struct tsr_child *c, int64_t now_ms)
{
    return (c->reaped ? c->ended_ms : now_ms) - c->started_ms;
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0. */
static size_t s_utf8_len(const unsigned char *s, size_t n)
{
    size_t len;
    unsigned min;
    unsigned cp;
    if (s[0] < 0x80)
        return 1;
    if ((s[0] & 0xe0) == 0xc0) {
        len = 2;
        min = 0x80;
        cp = s[0] & 0x1f;
    } else if ((s[0] & 0xf0) == 0xe0) {
        len = 3;
        min = 0x800;
        cp = s[0] & 0x0f;
    } else if ((s[0] & 0xf8) == 0xf0) {
        len = 4;
        min = 0x10000;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

void tsr_text_sanitize(char *text, size_t len)
{
    unsigned char *s = (unsigned char *)text;
    size_t i = 0;
    while (i < len) {
        if (s[i] < 0x20 && s[i] != '\n' && s[i] != '\t') {
            s[i++] = '?';
            continue;
        }
        if (s[i] == 0x7f) {
            s[i++] = '?';
            continue;
        }
        size_t n = s_utf8_len(s + i, len - i);
        if (n == 0) {
            s[i++] = '?';
            continue;
        }
        i += n;
    }
}

char *tsr_child_log(const struct tsr_child *c)
{
    char *out = malloc(c->ring_len + 1);
    if (!out)
        return NULL;
    size_t start = (c->ring_head + TSR_CHILD_LOG - c->ring_len) % TSR_CHILD_LOG;
    size_t first = TSR_CHILD_LOG - start;
    if (first > c->ring_len)
        first = c->ring_len;
    memcpy(out, c->ring + start, first);
    memcpy(out + first, c->ring, c->ring_len - first);
    out[c->ring_len] = '\0';
    tsr_text_sanitize(out, c->ring_len);
    return out;
}

void tsr_child_destroy(struct tsr_child **cp)
{
    struct tsr_child *c = cp ? *cp : NULL;
    if (!c)
        return;
    if (!c->reaped) {
        kill(-c->pid, SIGKILL);
        int st;
        while (waitpid(c->pid, &st, 0) < 0 && errno == EINTR)
            ;
    }
    if (c->fd >= 0)
        close(c->fd);
    free(c);
    *cp = NULL;
}
