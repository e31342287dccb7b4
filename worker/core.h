/*
 * core.h: the worker's state, shared by worker.c (the loop, the connection,
 * the transfers) and attempts.c (the life of each attempt). Internal to
 * tessera-worker; nothing outside worker/ includes it.
 *
 * The life of an attempt (named by its id):
 *
 *   TASK --> FETCHING --archive ready--> RUNNING --child reaped--> spooled
 *              |                          |  CANCEL                  |
 *              | archive failed           v                          | files uploaded,
 *              |                      STOPPING --reaped--> gone      | RESULT sent
 *              v                      (no result)                    v
 *          spooled (a failure) -----------------------------------> waiting
 *                                                                    | RESULT_ACK
 *                                                                    v
 *                                                                   gone
 *
 * | transition                      | function                 |
 * |---------------------------------|--------------------------|
 * | TASK -> FETCHING / RUNNING      | tsr_core_on_task         |
 * | FETCHING -> RUNNING or failure  | tsr_core_archive_done    |
 * | RUNNING -> STOPPING             | tsr_core_on_cancel       |
 * | RUNNING/STOPPING -> spooled/gone| tsr_core_reap            |
 * | spooled -> waiting              | upload.c, then           |
 * |                                 | tsr_core_upload_event    |
 * | waiting -> gone                 | tsr_core_on_ack          |
 *
 * A task holds one slot from TASK until its RESULT first goes out (or it is
 * cancelled); each freed slot is offered back with READY {credit: 1}. A
 * TASK with gpu: true takes a GPU slot instead (one per GPU, each its own
 * index, which becomes the renderer's CUDA_VISIBLE_DEVICES) and gives it
 * back with READY {credit: 0, gpu_credit: 1}; CPU and GPU slots are counted
 * apart, so a GPU host whose GPUs idle still fills its CPU slots.
 */
#ifndef TESSERA_WORKER_CORE_H
#define TESSERA_WORKER_CORE_H

#include <limits.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "tessera/proto.h"

#include "agent.h"
#include "cache.h"
#include "runner.h"
#include "sandbox.h"
#include "spool.h"
#include "task.h"
#include "upload.h"
#include "worker.h"

/* Where a task without a result is in its life. */
enum tsr_core_state {
    TSR_CORE_FETCHING, /* waiting for its scene archive */
    TSR_CORE_RUNNING,  /* the renderer runs */
    TSR_CORE_STOPPING, /* cancelled: the renderer is being killed; no result */
};

struct tsr_core;

/* A task that has not produced its result yet. */
struct tsr_core_task {
    struct tsr_core *w;         /* the owner */
    struct tsr_task_spec spec;  /* the checked TASK */
    enum tsr_core_state state;  /* where it is in its life */
    struct tsr_child *child;    /* the renderer while RUNNING or STOPPING */
    int gpu;                    /* GPU slot (index) it holds; -1: a CPU slot */
    char dir[PATH_MAX];         /* <cache>/tasks/<attempt> */
    int64_t deadline_ms;        /* when timeout_s runs out; INT64_MAX: never */
    int timed_out;              /* the timeout killed it */
    int64_t last_output_ms;     /* when the renderer last printed a line */
    int stalled;                /* its silence (stall_s) killed it */
    int progress;               /* last percent the renderer printed */
    int progress_pending;       /* progress not yet sent (rate limit) */
    int64_t progress_sent_ms;   /* when PROGRESS last went out */
    struct tsr_core_task *next; /* next task */
};

/* A spooled result: being uploaded, sent, or waiting for RESULT_ACK. */
struct tsr_core_result {
    struct tsr_upload *up;        /* its transfer */
    int holds_slot;               /* its task's slot frees when RESULT first goes */
    int gpu;                      /* that slot's GPU index; -1: a CPU slot */
    struct tsr_core_result *next; /* next result */
};

/* The worker. */
struct tsr_core {
    const struct tsr_worker_config *cfg; /* settings, borrowed */
    struct tsr_agent *agent;             /* connection to the master */
    struct tsr_cache *cache;             /* scene archives */
    struct tsr_sandbox *sandbox;         /* how renderers are confined */
    struct tsr_spool *spool;             /* results until acknowledged */
    struct tsr_core_task *tasks;         /* tasks without a result yet */
    struct tsr_core_result *results;     /* results not yet acknowledged */
    char tasks_dir[PATH_MAX];            /* <cache>/tasks */
    int cores;                           /* online CPUs */
    int64_t memory_mb;                   /* physical memory */
    cJSON *gpus;                         /* [{name, memory_mb}] from nvidia-smi */
    int gpu_slots;                       /* GPU slots: one per GPU, at most 64 */
    cJSON *blender;                      /* Blender's probe (blender.h); NULL: none */
    cJSON *features;                     /* ["gpu", "blender:oidn", ...] for HELLO */
    int draining;                        /* told the master: no new tasks */
    char instance[33];                   /* random id of this process (HELLO):
                                            tells the master a reconnect of
                                            ours from a clone with our name */
};

/* CPU slots not held by a task or an unreported result. */
int tsr_core_free_slots(const struct tsr_core *w);

/* GPU slots not held by a task or an unreported result. */
int tsr_core_free_gpu_slots(const struct tsr_core *w);

/* Sends READY {credit, gpu_credit} when either is > 0 (dropped while
 * unregistered: the next WELCOME offers every free slot anyway). */
void tsr_core_ready(struct tsr_core *w, int credit, int gpu_credit);

/* Takes what an upload did: the first RESULT of a task frees its slot. */
void tsr_core_upload_event(struct tsr_core *w, struct tsr_core_result *r,
                           enum tsr_upload_event ev);

/* Unlinks and frees a result (its spool entry stays). */
void tsr_core_result_free(struct tsr_core *w, struct tsr_core_result *r);

/* TASK, CANCEL and RESULT_ACK from the master; malformed ones are logged
 * and ignored. */
void tsr_core_on_task(struct tsr_core *w, const struct tsr_msg *m);
void tsr_core_on_cancel(struct tsr_core *w, const struct tsr_msg *m);
void tsr_core_on_ack(struct tsr_core *w, const struct tsr_msg *m);

/* Keeps the scene cache within --cache-max, sparing archives in use. */
void tsr_core_trim_cache(struct tsr_core *w);

/* A download ended: starts or fails every task that waited for it. */
void tsr_core_archive_done(struct tsr_core *w, const struct tsr_cache_done *d);

/* Reads a task's renderer output (its pipe polled readable). */
void tsr_core_read(struct tsr_core_task *t);

/* Reaps every renderer that has exited and ends its task. */
void tsr_core_reap(struct tsr_core *w);

/* Runs the tasks' timers (timeouts, kill escalation, progress); returns
 * the earliest next one, or next if none is earlier. */
int64_t tsr_core_tick(struct tsr_core *w, int64_t now, int64_t next);

/* Stops every renderer (SIGTERM, SIGKILL after the grace time) and frees
 * every task; spooled results stay on disk. */
void tsr_core_stop_children(struct tsr_core *w);

#endif
