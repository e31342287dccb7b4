/*
 * sandbox.h: what a renderer may see (doc/security.md, "the renderer
 * payload").
 *
 * A renderer runs code that came in a studio's archive (a .blend's drivers,
 * a command template, a crafted scene), so it is treated as hostile. With
 * the default mode every renderer runs inside bubblewrap (bwrap): its own
 * mount, PID, network, IPC and UTS namespaces, no network at all, a private
 * /tmp, and a file system made only of the system's programs and libraries
 * (/usr, /etc, /sys, read-only), its scene (read-only) and its task folder
 * (the one place it may write). The worker's cache of other jobs, its spool,
 * its secret key, the master's data and every other process on the host are
 * not there. A worker that runs as root also drops the renderer to an
 * unprivileged user (--sandbox-user, nobody by default) with no
 * capabilities and no_new_privs, so not even the visible system files that
 * only root may read (/etc/shadow) are open to it.
 *
 * --sandbox none runs renderers as the worker's own user with only a
 * scrubbed environment; an operator says so on purpose.
 */
#ifndef TESSERA_WORKER_SANDBOX_H
#define TESSERA_WORKER_SANDBOX_H

#include <sys/types.h>

#include "adapters.h"

#define TSR_SANDBOX_MAX_BINDS 16 /* most --sandbox-bind folders */

/* How renderers are confined. */
enum tsr_sandbox_mode {
    TSR_SANDBOX_BWRAP, /* bubblewrap; as root also an unprivileged user */
    TSR_SANDBOX_NONE,  /* the worker's own user, only a scrubbed environment */
};

/* What the operator asked for; strings are borrowed for the call. */
struct tsr_sandbox_config {
    enum tsr_sandbox_mode mode; /* bwrap (default) or none */
    const char *user;         /* renderers' user when the worker is root; NULL: nobody */
    const char *const *binds; /* --sandbox-bind folders, shown read-only */
    int nbinds;               /* entries in binds */
    const char *const *secrets; /* files a renderer must never see (the key) */
    int nsecrets;               /* entries in secrets */
    const char *private_dir;    /* the worker's cache folder: never shown whole */
};

/* Where one task runs; paths are absolute and borrowed. */
struct tsr_sandbox_task {
    const char *scene_dir; /* the extracted scene, shown read-only */
    const char *task_dir;  /* the task folder, writable, the working folder */
    int gpu;               /* the GPU the task holds (its devices are shown), or -1 */
};

struct tsr_sandbox;

/*
 * Prepares the sandbox: finds bwrap and setpriv, looks the user up, checks
 * that no shown folder (the system's, --sandbox-bind's) holds the cache.
 * *out is the caller's (tsr_sandbox_destroy). Returns 0, TSR_ENOTFOUND
 * (bwrap, setpriv or the user is missing), TSR_EINVAL (a folder would show
 * the cache, or a user was named to a worker that is not root), TSR_EIO
 * (the cache folder cannot be resolved, or the empty file that covers
 * secrets cannot be made in it), TSR_ENOMEM; err says why and what to do.
 */
int tsr_sandbox_new(const struct tsr_sandbox_config *cfg, struct tsr_sandbox **out,
                    char *err, size_t errlen);

/* Frees sb and sets *sb to NULL; NULL-safe. */
void tsr_sandbox_destroy(struct tsr_sandbox **sb);

/*
 * Runs a renderer-sized check in the folder dir (created, then removed): a
 * file written from inside the sandbox must land there. Catches a kernel
 * without user or mount namespaces before the first task would fail.
 * Returns 0, or TSR_EIO with bwrap's own words in err.
 */
int tsr_sandbox_check(const struct tsr_sandbox *sb, const char *dir, char *err,
                      size_t errlen);

/*
 * Gives the task folder to the renderers' user (a root worker with bwrap;
 * otherwise nothing to do). Call after creating it, before the renderer.
 * Returns 0 or TSR_EIO.
 */
int tsr_sandbox_own(const struct tsr_sandbox *sb, const char *task_dir);

/*
 * Rewrites cl so that its program runs inside the sandbox for task t: the
 * bwrap command line (and setpriv's, for a root worker) goes in front of
 * cl's argv; the environment stays. Nothing changes with --sandbox none.
 * Returns 0, TSR_EINVAL (the renderer's own folder would show the cache),
 * TSR_ENOMEM; err says why.
 */
int tsr_sandbox_wrap(const struct tsr_sandbox *sb, const struct tsr_sandbox_task *t,
                     struct tsr_cmdline *cl, char *err, size_t errlen);

/*
 * The renderer's wait status as if it had been run directly: bwrap exits
 * 128+N when what it ran died of signal N, which becomes "killed by signal
 * N" again (as a shell reports it, a renderer's own exit 128+N reads the
 * same).
 */
int tsr_sandbox_status(const struct tsr_sandbox *sb, int status);

/* One line for the log: "bubblewrap, renderers as nobody (uid 65534)". */
const char *tsr_sandbox_describe(const struct tsr_sandbox *sb);

/* The mode's name ("bwrap" or "none"), as HELLO announces it. */
const char *tsr_sandbox_mode_name(const struct tsr_sandbox *sb);

#endif
