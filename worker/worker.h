/*
 * worker.h: the worker's core: one single-threaded loop that owns the
 * connection to the master (agent), the scene cache, the renderer children
 * and the result spool, and moves each task through them.
 *
 * attempts.c has each attempt's life (core.h: diagram and table).
 */
#ifndef TESSERA_WORKER_WORKER_H
#define TESSERA_WORKER_WORKER_H

#include <signal.h>

#define TSR_WORKER_VERSION "0.1.0"
#define TSR_WORKER_MAX_SLOTS 256 /* most tasks at once */
#define TSR_WORKER_MAX_GPU_SLOTS 64 /* most GPU slots (GPUs) announced */
#define TSR_WORKER_MAX_FEATURES 32  /* most --feature names */

/* How the worker runs; every pointer is borrowed for the run. */
struct tsr_worker_config {
    const char *master;          /* master's worker endpoint */
    const char *hub;             /* hub this worker belongs to */
    const char *name;            /* worker name shown to operators */
    const char *cache_dir;       /* cache folder (blobs, scenes, tasks, spool) */
    int slots;                   /* tasks at once, 1..TSR_WORKER_MAX_SLOTS */
    uint64_t cache_max;          /* bytes the scene cache may hold; 0: no bound */
    const char *blender;         /* --blender: a path, "none", or NULL: look on PATH */
    const char *const *features; /* --feature names announced to jobs' requires */
    int nfeatures;               /* entries in features */
    int heartbeat_ms;            /* heartbeat until WELCOME says otherwise */
    int liveness;                /* missed heartbeats before reconnecting */
    const char *curve_pub;       /* CURVE: our public key (Z85), or NULL: no keys */
    const char *curve_sec;       /* our secret key (Z85) */
    const char *curve_server;    /* the master's public key (Z85) */
    const char *key_path;        /* the secret key's file, hidden from renderers; or NULL */
    int sandbox;                 /* enum tsr_sandbox_mode (sandbox.h) */
    const char *sandbox_user;    /* --sandbox-user, or NULL: nobody */
    const char *const *sandbox_binds; /* --sandbox-bind folders */
    int nsandbox_binds;          /* entries in sandbox_binds */
    int wake_fd;                 /* readable when a signal came in; -1 if none */
    volatile sig_atomic_t *stop; /* set (by a signal handler) to stop */
    volatile sig_atomic_t *drain; /* set (by SIGTERM) to finish what it has, take
                                     nothing new, and stop; may be NULL */
};

/*
 * Runs until *cfg->stop is set, then kills its children's process groups
 * and returns 0 (spooled results stay for the next start). Returns a
 * negative TSR_E* code, after logging why, when it cannot start (cache
 * folder unusable or locked, ZeroMQ failure).
 */
int tsr_worker_run(const struct tsr_worker_config *cfg);

#endif
