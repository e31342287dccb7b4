/*
 * master.h: the master's internal model, shared by its files.
 *
 * One thread (the reactor) owns everything here: the LMDB writer, both ROUTER
 * sockets and every in-memory table. The only other threads are the pool's,
 * which receive self-contained requests (struct pool_req) and give them back
 * over inproc; they never touch this state.
 *
 * In memory, jobs, tasks, frames and workers are caches of LMDB, rebuilt at
 * start (store_load). A change a peer relies on is written in the cycle's
 * write transaction, and its reply waits in the outbox until that commits.
 *
 * Task states (see tasks.c for the transition table):
 *
 *      submit         dispatch           RESULT ok        pieces verified
 *   ---------> QUEUED ---------> RUNNING ---------> VERIFYING ---------> DONE
 *                ^  ^               |                   |
 *                |  |  worker lost, |  RESULT failed,   | piece refused
 *                |  +---------------+  or refused,      |
 *                |        (retry)      failures < max   |
 *                +--------------------------------------+
 *    RUNNING/VERIFYING --(failures == max)--> FAILED
 *    QUEUED/RUNNING/VERIFYING --(cancel)--> CANCELLED
 *
 * VERIFYING is never stored: a task stored as RUNNING whose worker re-sends
 * its result after a master restart is verified again.
 */
#ifndef TESSERA_MASTER_H
#define TESSERA_MASTER_H

#include <lmdb.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "tessera/archive.h"
#include "tessera/hash.h"
#include "tessera/image.h"
#include "tessera/proto.h"

#define MASTER_NAME_MAX 63      /* worker, hub, job names */
#define MASTER_PATH_MAX 1024    /* scene paths inside an archive */
#define MASTER_COMMAND_MAX 4096 /* command templates */
#define MASTER_MAX_TASKS 1000000
#define MASTER_MAX_TILES 64     /* per axis */
#define MASTER_MAX_CHUNK 10000
#define FRAME_RETRY_MS 10000   /* retry of an assembly the disk refused */
#define FRAME_BACKOFF_MS 500   /* first wait after a transient assembly failure */
#define FRAME_BACKOFF_MAX_MS 30000 /* longest such wait */
#define FRAME_MAX_TRIES 6      /* transient failures in a row before a frame fails */
#define MASTER_DEFAULT_STALL_S 900 /* renderer silence that kills an attempt */

enum task_state {
    TASK_QUEUED = 0,
    TASK_RUNNING = 1,
    TASK_VERIFYING = 2,
    TASK_DONE = 3,
    TASK_FAILED = 4,
    TASK_CANCELLED = 5,
};

enum job_state {
    JOB_QUEUED = 0,
    JOB_RUNNING = 1,
    JOB_DONE = 2,
    JOB_FAILED = 3,
    JOB_CANCELLED = 4,
    JOB_PAUSED = 5,
};

enum frame_state {
    FRAME_PENDING = 0,
    FRAME_ASSEMBLING = 1,
    FRAME_DONE = 2,
    FRAME_FAILED = 3,
};

/* One task: a run of frames (a chunk) of one tile. Stored as-is in LMDB
 * (the `tasks` database), so it holds no pointers. */
struct task {
    uint16_t version;           /* record version, TASK_RECORD_VERSION */
    uint8_t state;              /* enum task_state */
    uint8_t failures;           /* failed attempts so far */
    uint32_t dispatches;        /* attempts started so far */
    uint64_t attempt;           /* live attempt id (fencing token), 0 if none */
    uint32_t frame_first;       /* index of its first frame in job->frames */
    uint32_t frame_count;       /* frames in this task */
    uint16_t tile;              /* tile index, row major */
    uint16_t flags;             /* TASK_F_* (was a zero "reserved" field) */
    uint32_t render_ms;         /* render time of the accepted attempt */
    int64_t dispatched_ms;      /* wall clock of the live attempt's start */
    int64_t retry_at_ms;        /* wall clock before which it is not dispatched
                                   (a "retry later" failure), 0 if none */
    char worker[MASTER_NAME_MAX + 1];     /* worker of the live/accepted attempt */
    char hub[MASTER_NAME_MAX + 1];        /* that worker's hub */
    char last_failed[MASTER_NAME_MAX + 1]; /* worker of the last failure */
    char error[192];            /* last failure, one line */
};
#define TASK_RECORD_VERSION 2

/* A fail-fast failure (missing_asset, bad_task, archive) from last_failed
 * waits to be confirmed by a second worker; it has not counted against the
 * task (tasks.c, s_policy). */
#define TASK_F_UNCONFIRMED 0x1

/* One frame of a job, in memory; its LMDB record is JSON (`frames`). */
struct frame {
    uint8_t state;              /* enum frame_state */
    uint16_t tiles_done;        /* tiles verified so far */
    char hash[TSR_HASH_HEX];    /* assembled frame's blob, "" until done */
    uint64_t size;              /* its size in bytes */
    struct tsr_image_stats stats; /* its pixel statistics */
    char worker[MASTER_NAME_MAX + 1]; /* worker of the last piece */
    char hub[MASTER_NAME_MAX + 1];    /* its hub */
    uint32_t render_ms;         /* render time summed over the pieces */
    char error[160];            /* why its assembly failed, or why it waits;
                                   "" when none */
    uint8_t tries;              /* assemblies that failed for a transient
                                   reason in a row (memory only) */
    int64_t retry_ms;           /* monotonic: not assembled again before this
                                   (memory only), 0 if no wait */
    uint8_t rotted;             /* its stored image was found damaged (scrub.c):
                                   shown by status, also once made again */
};

/* A worker's failures on one job; past the threshold it gets no more of the
 * job's tasks until `until_ms` (the forgive time). In memory only: a master
 * restart forgives. */
struct block {
    char worker[MASTER_NAME_MAX + 1]; /* worker name */
    uint32_t failures;                /* its failed attempts of this job */
    int64_t until_ms;                 /* monotonic end of the block, 0 if none */
};

/* Per-hub counters of a job, for status and watch. */
struct hub_count {
    char hub[MASTER_NAME_MAX + 1]; /* hub name */
    uint32_t done;                 /* tasks done there */
    uint32_t running;              /* tasks running there */
};

struct job {
    uint64_t id;                  /* job id, from 1 */
    uint8_t state;                /* enum job_state */
    char name[MASTER_NAME_MAX + 1]; /* shown in lists */
    char owner[64];               /* User-Id of the key that submitted it
                                     ("studio:alice"); "" on a master without keys */
    char renderer[16];            /* "builtin" or "command" */
    char scene[MASTER_PATH_MAX + 1]; /* scene file inside the archive, may be "" */
    char archive[TSR_HASH_HEX];   /* the scene archive's blob */
    uint64_t archive_size;        /* its size */
    char *frame_set;              /* the frame set as submitted (owned) */
    char *command;                /* command template, or NULL (owned) */
    int outputs_image;            /* 1: tasks produce images; 0: none */
    int gpu;                      /* tasks need a GPU slot */
    char cycles_device[16];       /* Blender's Cycles device asked for, or "" */
    cJSON *requires;              /* features a worker must announce (owned
                                     array of strings, may be NULL) */
    int tiles_x, tiles_y;         /* tile grid */
    int chunk;                    /* frames per task */
    int priority;                 /* 0..100, higher first */
    int width, height;            /* frame size, 0 when unknown (no images) */
    int max_failures;             /* failed attempts before a task fails */
    int timeout_s;                /* per-attempt time limit */
    int stall_s;                  /* longest renderer silence; 0 = no limit */
    int64_t created_ms, started_ms, finished_ms; /* wall clock */
    char error[256];              /* why it failed, if it did */

    int *frames;                  /* frame numbers (owned), nframes long */
    uint32_t *frame_group;        /* chunk group of each frame (owned) */
    uint32_t nframes;             /* frames in the job */
    struct task *tasks;           /* ntasks tasks (owned) */
    uint32_t ntasks;              /* tasks in the job */
    struct frame *frame_info;     /* nframes frames (owned) */

    uint32_t n_queued, n_running, n_done, n_failed; /* task counts by state */
    uint32_t frames_done;         /* frames delivered */
    uint32_t scan;                /* no queued task below this index */
    uint8_t *progress;            /* percent reported by each active task (owned,
                                     in memory only: live information) */
    uint64_t progress_sum;        /* sum of progress over active tasks */
    struct hub_count *hubs;       /* per-hub counts (owned) */
    size_t nhubs;                 /* entries in hubs */
    struct block *blocks;         /* workers failing this job (owned) */
    size_t nblocks;               /* entries in blocks */
    int archive_lost;             /* its archive was found damaged and set aside:
                                     nothing is dispatched until it is uploaded
                                     again (scrub.c; in memory, rebuilt at start) */
};

/* Bounds of HELLO (hello.c, doc/security.md "Limits"). */
#define HELLO_MAX_INSTANCE 64    /* bytes of the instance id */
#define HELLO_MAX_SLOTS 1024     /* announced CPU slots (then bounded, below) */
#define HELLO_MAX_GPUS 64        /* GPU slots, gpus[] and blender devices[] */
#define HELLO_MAX_RENDERERS 16   /* entries of renderers[] */
#define HELLO_MAX_FEATURES 64    /* entries of features[] */
#define HELLO_MAX_FEATURE_LEN 63 /* bytes of one feature */
#define HELLO_MAX_RUNNING 4096   /* attempt ids in running[] */

/* A checked HELLO. Strings and running are borrowed from the message. */
struct hello {
    const char *name;     /* worker name */
    const char *hub;      /* hub, "local" when absent */
    const char *instance; /* per-process id, or NULL */
    int slots;            /* announced CPU slots, 1..HELLO_MAX_SLOTS */
    int gpu_slots;        /* announced GPU slots */
    int cores;            /* announced online CPUs, -1 when absent */
    const cJSON *running; /* attempt ids it still holds (array), or NULL */
    cJSON *caps;          /* the known fields, checked (owned by the caller) */
};

/* Checks a HELLO header; on success *out holds the checked fields and the
 * caller owns out->caps. Returns 0, TSR_EPROTO (malformed) or TSR_ELIMIT
 * (past a bound), with the reason in err. */
int hello_check(const cJSON *hdr, struct hello *out, char *err, size_t errlen);

/* A worker as the master sees it. */
struct worker {
    char name[MASTER_NAME_MAX + 1]; /* its --name, unique */
    char hub[MASTER_NAME_MAX + 1];  /* its --hub */
    unsigned char peer[TSR_PROTO_MAX_ROUTING]; /* routing id while connected */
    size_t peer_len;              /* 0 when not connected */
    int live;                     /* connected and heard from recently */
    int slots;                    /* announced slots */
    int credit;                   /* CPU tasks we may still send */
    int gpu_slots;                /* announced GPU slots (one per device) */
    int gpu_credit;               /* GPU tasks we may still send */
    cJSON *caps;                  /* the HELLO header as announced (owned) */
    int64_t last_recv_ms;         /* monotonic time of its last message */
    int64_t last_send_ms;         /* monotonic time of our last message */
    int64_t last_seen_wall_ms;    /* wall clock of its last message */
    uint64_t done;                /* tasks it completed */
    uint64_t failed;              /* attempts of it that failed */
    int draining;                 /* takes no new tasks (operator's drain); stored */
    int leaving;                  /* the worker is draining itself to stop
                                     (SIGTERM); cleared by its next HELLO */
    int quarantined;              /* failed across jobs: takes no tasks until
                                     released; stored */
    int stopped;                  /* said BYE: stopped cleanly, not lost; stored */
    int announced_slots;          /* slots as announced, before the bound */
    char instance[HELLO_MAX_INSTANCE + 1]; /* HELLO's per-process random id, ""
                                     when none: tells a reconnect from a clone */
    char key[41];                 /* CURVE public key it registered with, or "" */
    int greedy_logged;            /* a READY past its bound was logged since its
                                     HELLO */
    int64_t refused_log_ms;       /* when a clone's HELLO for this name was last
                                     logged (monotonic), for rate limiting */
    char quarantine_why[160];     /* why, for `tessera workers` */
    uint64_t recent_jobs[8];      /* jobs of its last failures (quarantine) */
    int64_t recent_ms[8];         /* when they failed (monotonic) */
    struct run_ref *running;      /* its live attempts (owned) */
    size_t nrunning;              /* entries in running */
    size_t caprunning;            /* capacity of running */
};

/* A live attempt held by a worker. */
struct run_ref {
    uint64_t attempt; /* attempt id */
    uint64_t job;     /* job id */
    uint32_t task;    /* task index */
};

/* A blob upload in progress: one uploader's own staging of one blob
 * (blobs.c). Keyed by its id and its uploader, never by the hash alone. */
struct upload {
    uint64_t id;              /* its number: PUT_OK tells it, CHUNK/PUT_END name it */
    char hash[TSR_HASH_HEX];  /* the hash the sender announced */
    uint64_t size;            /* announced size */
    char user[64];            /* User-Id of the uploader ("" without keys) */
    unsigned char peer[TSR_PROTO_MAX_ROUTING]; /* the connection that sent PUT */
    size_t peer_len;          /* its length */
    char tmp[MASTER_PATH_MAX + 64]; /* staging file */
    uint32_t nchunks;         /* chunks the announced size makes */
    uint32_t received;        /* chunks accepted so far, each once */
    uint8_t *got;             /* a bit per chunk: accepted (owned) */
    int64_t last_ms;          /* PUT or the last accepted chunk (monotonic);
                                 a PUT again does not move it */
    int pending;              /* chunk writes in the pool */
    int ending;               /* PUT_END received, hashing: no more chunks */
    int aborted;              /* dropped while writes were in the pool: freed,
                                 staging file and all, when the last is back */
    int64_t reply_rid;        /* PUT_END's request id */
    int reply_workers;        /* PUT_END came on the worker endpoint */
    unsigned char reply_peer[TSR_PROTO_MAX_ROUTING]; /* who sent PUT_END */
    size_t reply_peer_len;    /* its length */
};

struct outmsg;
struct peers;
struct ratelimit;
struct pool;
struct pool_req;

/* Settings from the command line. */
struct master_config {
    const char *data_dir;        /* data folder */
    const char *client_ep;       /* client endpoint */
    const char *worker_ep;       /* worker endpoint */
    int heartbeat_ms;            /* heartbeat interval */
    int liveness;                /* missed heartbeats before a peer is lost */
    uint64_t map_size;           /* LMDB map size, bytes */
    int pool_threads;            /* heavy-work threads */
    int default_max_failures;    /* failed attempts before a task fails */
    int default_timeout_s;       /* per-attempt time limit */
    int block_after;             /* failures of one job that block a worker */
    int block_ms;                /* how long such a block lasts */
    int quarantine_jobs;         /* distinct failing jobs within the window
                                    that quarantine a worker */
    int64_t quarantine_window_ms; /* that window */
    uint64_t map_max;            /* largest the LMDB map may grow to, bytes */
    int max_slots;               /* most CPU slots one worker is granted */
    int slots_per_core;          /* and at most this many per announced core
                                    (0: no per-core bound) */
    struct tsr_archive_limits archive; /* what a submitted archive may hold */
    int upload_max;              /* uploads in progress per uploader key */
    uint64_t upload_max_bytes;   /* their announced bytes per uploader key */
    int64_t upload_idle_ms;      /* an upload without a new chunk this long goes */
    uint64_t scrub_rate;         /* background scrub, bytes per second; 0 = off */
    int mutation_rate;           /* changes a second one client may ask for
                                    (ratelimit.c); 0: no limit */
    int mutation_burst;          /* how many it may ask for at once */
};

struct master {
    struct master_config cfg;     /* settings */
    void *zctx;                   /* ZeroMQ context */
    void *clients;                /* ROUTER, client endpoint */
    void *workers_sock;           /* ROUTER, worker endpoint */
    void *pool_done;              /* PULL, pool completions */
    struct pool *pool;            /* heavy-work threads */
    struct peers *peers;          /* what each peer has queued; GET credit (peers.c) */
    struct ratelimit *rate;       /* each client's bucket of changes (ratelimit.c) */

    MDB_env *env;                 /* LMDB environment */
    MDB_dbi db_meta, db_jobs, db_tasks, db_frames, db_pieces, db_workers,
        db_blobs, db_events;      /* named databases */
    MDB_txn *txn;                 /* this cycle's write transaction or NULL */
    uint64_t map_need;            /* bytes a pending submission will write */
    int64_t frames_retry_ms;      /* when to retry assemblies the disk refused */
    int blobs_full;               /* a blob write found no space (space.c) */
    int db_full;                  /* a commit failed; changes wait (space.c) */
    int db_rolled_back;           /* memory was rolled back since space was short */
    int64_t db_retry_ms;          /* monotonic: earliest end of db_full */
    int db_backoff_ms;            /* current wait between commit retries */
    int64_t space_check_ms;       /* monotonic: next statvfs while short */
    int64_t readers_check_ms;     /* when to clear stale LMDB readers next */

    uint64_t next_job;            /* next job id */
    uint64_t next_attempt;        /* next attempt id */
    uint64_t next_event;          /* next event sequence */

    struct job **jobs;            /* all jobs by ascending id (owned) */
    size_t njobs, capjobs;        /* count and capacity */
    struct worker **workers;      /* all known workers (owned) */
    size_t nworkers, capworkers;  /* count and capacity */
    struct upload **uploads;      /* uploads in progress (owned) */
    size_t nuploads, capuploads;  /* count and capacity */
    uint64_t next_upload;         /* id of the next upload */
    struct scrub *scrub;          /* the background scrub's state (scrub.c) */

    struct outmsg *out_head, *out_tail; /* replies waiting for the commit */
    int64_t started_ms;           /* monotonic start time */
    int64_t recover_until_ms;     /* until then, running tasks wait for their
                                     workers to come back after a restart */
    volatile int stop;            /* set by SIGTERM/SIGINT */
    struct auth *auth;            /* ZAP handler and key sets; NULL without keys */
    const char *actor;            /* User-Id of the client request being handled
                                     (events record it as "by"), or NULL */
    struct access *access;        /* who may see what (access.c, auth.h) */
};

/* master.c / reactor.c */
int master_run(struct master *m);
MDB_txn *master_txn(struct master *m);
/* Queues a message to go out after this cycle's commit. hdr is borrowed;
 * body is copied. sock is m->clients or m->workers_sock. */
void master_send(struct master *m, void *sock, const void *peer, size_t peer_len,
                 const char *cmd, const cJSON *hdr, const void *body, size_t body_len);
/* Same, but takes ownership of body (malloc'd), freed after sending. */
void master_send_owned(struct master *m, void *sock, const void *peer, size_t peer_len,
                       const char *cmd, const cJSON *hdr, void *body, size_t body_len);
/* DATA answering a GET admitted by peers_get: like master_send_owned, and
 * the GET's credit returns when ZeroMQ lets go of the body. */
void master_send_data(struct master *m, void *sock, const void *peer, size_t peer_len,
                      const cJSON *hdr, void *body, size_t body_len);
void master_send_error(struct master *m, void *sock, const void *peer, size_t peer_len,
                       const char *re, int64_t rid, int code, const char *message);

/* redact.c: the master's paths never reach a peer. master_redact replaces
 * every occurrence of from (bare or quoted) in text with to; the other
 * replaces each path under data_dir (as given, and resolved) with a
 * neutral word. Both keep text NUL-terminated within size. */
void master_redact(char *text, size_t size, const char *from, const char *to);
void master_redact_data_dir(const char *data_dir, char *text, size_t size);

/* store.c: LMDB */
int store_open(struct master *m);
void store_close(struct master *m);
int store_load(struct master *m);
int store_put_job(struct master *m, const struct job *j);
int store_put_task(struct master *m, const struct job *j, uint32_t idx);
int store_put_frame(struct master *m, const struct job *j, uint32_t idx);
int store_put_piece(struct master *m, uint64_t job, uint32_t task, uint32_t k,
                    const char *hash);
int store_get_piece(struct master *m, uint64_t job, uint32_t task, uint32_t k,
                    char hash[TSR_HASH_HEX]);
int store_put_worker(struct master *m, const struct worker *w);
int store_del_worker(struct master *m, const char *name);
int store_put_blob(struct master *m, const char *hash, uint64_t size);
int store_has_blob(struct master *m, const char *hash, uint64_t *size);
/* Drops the record of a blob found gone or bad, so that the next upload of
 * that hash stores it again. */
int store_forget_blob(struct master *m, const char *hash);
/* Removes hash from the `blobs` database (a damaged blob set aside). */
int store_del_blob(struct master *m, const char *hash);
/* Calls fn(m, job, task, k, ctx) for every stored piece whose hash is hash
 * (a scan of `pieces`: for the rare damaged piece, not for the hot path). */
int store_each_piece_of(struct master *m, const char *hash,
                        void (*fn)(struct master *m, uint64_t job, uint32_t task,
                                   uint32_t k, void *ctx),
                        void *ctx);
int store_put_counters(struct master *m);
/* Appends an event; fields is borrowed and may be NULL. */
int store_event(struct master *m, const char *kind, uint64_t job, cJSON *fields);
int store_commit(struct master *m);
/* Doubles the LMDB map (up to --map-max) when it is 70% used; call between
 * transactions. */
void store_maybe_grow(struct master *m);
/* True when the map uses percent% of --map-max; why says so for a person. */
int store_nearly_full(struct master *m, int percent, char *why, size_t whylen);
/* True when need more bytes keep the map within 80% of --map-max. */
int store_fits(struct master *m, uint64_t need);

/* space.c: the data folder out of room; the farm waits, nothing fails */
/* Enters "blobs full" (db 0) or "db full" (db 1, after a failed commit). */
void space_note_full(struct master *m, int db, const char *what);
/* Whether work must wait: always while the db is full, while blobs are
 * full for work that makes images. */
int space_short(const struct master *m, int images);
/* Whether new submissions and uploads are refused for lack of space; why
 * says so for a person. */
int space_refuse(struct master *m, char *why, size_t whylen);
void space_cron(struct master *m);
/* A commit went through: the next failure backs off from the start. */
void space_committed(struct master *m);
/* store.c: rolls memory back to the last commit after a failed one. */
int store_reload(struct master *m);
/* peers.c: per-peer accounting of what is queued for it, and GET credit */
#define PEER_GET_ACTIVE 8          /* GETs read, queued or in ZeroMQ, per peer */
#define PEER_GET_HELD 64           /* more GETs waiting unread, per peer */
#define PEER_OUT_MAX (16u << 20)   /* other bytes queued for a peer before its
                                      replies are dropped */
int peers_init(struct master *m);
/* Call after zmq_ctx_term. */
void peers_destroy(struct master *m);
/* An eventfd the reactor polls: readable when a GET's credit came back. */
int peers_fd(const struct master *m);
/* Starts waiting GETs that have credit again (and clears the eventfd). */
void peers_wake(struct master *m);
/* Starts waiting GETs and forgets peers with nothing queued. */
void peers_cron(struct master *m);
/* Admits a checked GET: starts it (blobs_start_read), holds it, or answers
 * TSR_EBUSY. Returns 0 or the TSR_E* code it answered with. */
int peers_get(struct master *m, void *sock, const struct tsr_msg *msg, int64_t rid,
              const char *hash, uint64_t offset, size_t len);
/* A GET admitted by peers_get ended without DATA (an error reply). */
void peers_get_ended(struct master *m, void *sock, const void *peer, size_t peer_len);
/* Sends one message of the outbox, counted against its peer; takes hdr and
 * body (malloc'd). get: it is a GET's DATA. */
void peers_flush_one(struct master *m, void *sock, const void *peer, size_t peer_len,
                     const char *cmd, char *hdr, void *body, size_t body_len, int get);

/* ratelimit.c: a token bucket of changes per client */
/* Returns 1 when msg may go on; 0 when it was a change past its sender's
 * rate, answered with TSR_EBUSY and retry_ms. */
int ratelimit_admit(struct master *m, const struct tsr_msg *msg, int64_t rid);
void ratelimit_cron(struct master *m);
void ratelimit_destroy(struct master *m);

/* blobs.c */
/* Hands the read of an admitted GET to the pool. */
void blobs_start_read(struct master *m, void *sock, const void *peer, size_t peer_len,
                      const char *user, int64_t rid, const char *hash, uint64_t offset,
                      size_t len);
void blob_path(const struct master *m, const char *hash, char *out, size_t outlen);
void blobs_on_put(struct master *m, void *sock, struct tsr_msg *msg);
void blobs_on_chunk(struct master *m, void *sock, struct tsr_msg *msg);
void blobs_on_put_end(struct master *m, void *sock, struct tsr_msg *msg);
void blobs_on_get(struct master *m, void *sock, struct tsr_msg *msg);
void blobs_cron(struct master *m);
int blobs_on_pool_done(struct master *m, struct pool_req *r);
/* Frees every upload (at exit). */
void blobs_free_uploads(struct master *m);

/* scrub.c: damaged blobs: set aside, obtained again, and found by a scrub */
/* A blob was found damaged or missing (a pool thread set its file aside):
 * forget it and mend what needed it: jobs wait for an archive, frames and
 * pieces are made again. Idempotent. */
void scrub_blob_lost(struct master *m, const char *hash, const char *why);
/* A blob was stored again (an upload): jobs waiting for it go on. */
void scrub_blob_stored(struct master *m, const char *hash);
/* A worker could not use the archive it downloaded: check it (a pool job). */
void scrub_suspect(struct master *m, const char *hash);
/* At start: jobs whose archive or frames the blob store lost (an offline
 * --scrub set them aside) wait or are made again. */
void scrub_reconcile(struct master *m);
/* The background pass: a slice of a blob at a bounded rate. */
void scrub_cron(struct master *m);
int scrub_on_pool_done(struct master *m, struct pool_req *r);
/* Why j cannot go on for want of a blob, or NULL. */
const char *scrub_waiting_reason(struct master *m, const struct job *j, char *buf,
                                 size_t size);
/* Adds "damaged" (frames found damaged, and whether made again) to a job's
 * status object. */
void scrub_status(const struct job *j, cJSON *o);
/* tessera-master --scrub: checks every blob against its name, sets the
 * damaged aside, prints a report. Returns the exit code: 0 all sound, 3
 * damaged or missing blobs found (and set aside), 1 it could not run. */
int scrub_offline(struct master *m);
void scrub_free(struct master *m);

/* jobs.c */
struct job *job_find(struct master *m, uint64_t id);
void clients_on_submit(struct master *m, struct tsr_msg *msg);
void job_free(struct job *j);
int job_build(struct job *j, char *err, size_t errlen);
void job_recount(struct job *j);
void job_check_done(struct master *m, struct job *j);
cJSON *job_to_json(const struct job *j);
void jobs_on_archive_checked(struct master *m, struct pool_req *req);
void job_cancel(struct master *m, struct job *j);
/* Ended jobs are done, failed or cancelled; paused ones are not. */
int job_ended(const struct job *j);
/* Tasks of the job may be dispatched: queued or running, not paused, and
 * its archive on the master. */
int job_dispatchable(const struct job *j);
int job_pause(struct master *m, struct job *j, int pause);
int job_retry(struct master *m, struct job *j, const uint32_t *tasks, size_t ntasks,
              uint32_t *requeued);
int job_blocks(struct job *j, const char *worker, int64_t now_ms);
int job_note_failure(struct master *m, struct job *j, const char *worker);

/* tasks.c: the task state machine */
void task_dispatch(struct master *m, struct job *j, uint32_t idx, struct worker *w);
void task_requeue(struct master *m, struct job *j, uint32_t idx, const char *why);
void task_fail(struct master *m, struct job *j, uint32_t idx, const char *cls,
               const char *why);
void task_verified(struct master *m, struct job *j, uint32_t idx, const char (*hashes)[TSR_HASH_HEX]);
void task_set_state(struct job *j, uint32_t idx, int state);
void frame_assembled(struct master *m, struct job *j, uint32_t fidx, int rc,
                     const char *err, const char *hash, uint64_t size,
                     const struct tsr_image_stats *stats, int bad_piece);
/* Assembles the job's frames whose tiles are all in and that are not
 * waiting out a backoff. */
void frames_resume(struct master *m, struct job *j);
/* Sends done task idx back to the queue because a piece it made is gone or
 * bad: its frames not yet delivered wait for the new pieces. Uses none of
 * the task's attempts and blames no worker. */
void task_rerender(struct master *m, struct job *j, uint32_t idx, const char *why);
/* Assembles pending frame fidx, whose tiles are all verified, again (its
 * stored image was damaged: scrub.c). */
void frame_reassemble(struct master *m, struct job *j, uint32_t fidx);

/* workers.c */
void workers_on_message(struct master *m, struct tsr_msg *msg);
void workers_cron(struct master *m);
void workers_dispatch(struct master *m);
void workers_on_verified(struct master *m, struct pool_req *req);
struct worker *worker_by_name(struct master *m, const char *name);
int worker_can_run(const struct worker *w, const struct job *j);
const char *workers_waiting_reason(struct master *m, const struct job *j, char *buf,
                                   size_t size);
struct worker *worker_by_peer(struct master *m, const void *peer, size_t len);
void worker_remove_run(struct worker *w, uint64_t attempt);
void worker_add_run(struct worker *w, uint64_t attempt, uint64_t job, uint32_t task);
/* At start: gives each worker back the attempts LMDB records as running on
 * it (task.attempt, task.worker), so that it can claim them when it
 * registers again; raises next_attempt past every stored attempt. */
void workers_adopt_stored(struct master *m);
/* Removes a worker that is not live from memory and LMDB (`tessera workers
 * forget`); returns 0 or TSR_ESTATE (it is live). Frees w. */
int worker_forget(struct master *m, struct worker *w);
cJSON *worker_to_json(const struct master *m, const struct worker *w);

/* clients.c */
void clients_on_message(struct master *m, struct tsr_msg *msg);
/* events.c: EVENTS {job?, limit?, before?}, the audit trail newest last */
void events_on_request(struct master *m, struct tsr_msg *msg, int64_t rid);
void clients_on_sheet_done(struct master *m, struct pool_req *req);

/* pool.c: heavy work off the reactor */
enum pool_kind {
    POOL_CHECK_ARCHIVE, /* check an archive, read the scene's resolution */
    POOL_HASH_UPLOAD,   /* hash a staged upload, move it into the store */
    POOL_WRITE_CHUNK,   /* write an uploaded chunk */
    POOL_READ_CHUNK,    /* read a chunk for GET */
    POOL_VERIFY_PIECES, /* verify a task's rendered pieces */
    POOL_ASSEMBLE,      /* assemble and verify a frame */
    POOL_CONTACT_SHEET, /* a PNG of a job's done frames */
    POOL_VERIFY_BLOB,   /* hash a whole blob against its name (scrub.c) */
    POOL_SCRUB_SLICE,   /* hash the next slice of a blob (background scrub) */
};

struct pool_req {
    int kind;                      /* enum pool_kind */
    int to_workers;                /* reply on the worker endpoint */
    unsigned char peer[TSR_PROTO_MAX_ROUTING]; /* who asked */
    size_t peer_len;               /* its length */
    int64_t rid;                   /* the request id to echo */
    char user[64];                 /* User-Id of who asked (SUBMIT: the owner) */
    char lane[80];                 /* who the pool charges it to (pool.c); set
                                      by pool_submit when left empty */
    void *work;                    /* a sliced request's state between its
                                      slices (pool.c, owned) */
    int more;                      /* set by a slice: not finished, requeue */
    char hash[TSR_HASH_HEX];       /* blob concerned */
    char path[MASTER_PATH_MAX + 64];  /* file to read/write/check */
    char path2[MASTER_PATH_MAX + 64]; /* destination file */
    uint64_t offset;               /* chunk offset */
    uint64_t size;                 /* blob size (read/verified) */
    void *data;                    /* chunk bytes (owned by the request) */
    size_t len;                    /* chunk length */
    char scene[MASTER_PATH_MAX + 1]; /* scene to look for */
    int want_resolution;           /* read the built-in scene's resolution */
    cJSON *ctx;                    /* request header kept for the reply (owned) */
    uint64_t job;                  /* job id */
    uint32_t task;                 /* task index */
    uint64_t attempt;              /* attempt being verified */
    uint32_t frame;                /* frame index (assemble) */
    struct tsr_region region;      /* expected window of each piece */
    int width, height;             /* frame size */
    char (*pieces)[MASTER_PATH_MAX + 64]; /* files to verify/assemble (owned) */
    char (*piece_hashes)[TSR_HASH_HEX];   /* their hashes (owned) */
    char (*labels)[16];            /* captions of a contact sheet (owned) */
    size_t npieces;                /* entries in pieces */
    /* results */
    int rc;                        /* 0 or TSR_E* */
    char err[512];                 /* reason when rc != 0 */
    struct tsr_image_stats stats;  /* stats of the (last) image verified */
    char out_hash[TSR_HASH_HEX];   /* hash of what was produced */
    int bad_piece;                 /* assemble: index of a piece that is gone or
                                      does not match its hash, -1 if none */
    char rotten[TSR_HASH_HEX];     /* a blob found damaged or missing and set
                                      aside by the pool ("" if none): the
                                      reactor calls scrub_blob_lost first */
    uint64_t upload;               /* upload id (chunk writes, hashing) */
    uint64_t expect_size;          /* the blob's size in `blobs` (GET, scrub) */
    struct tsr_hash hs;            /* scrub: sha256 of the bytes before offset */
    uint64_t ino;                  /* scrub: the file's inode at the first slice */
};

int pool_start(struct master *m, int nthreads);
void pool_stop(struct master *m);
/* Hands req to a pool thread; the pool owns it until it comes back through
 * m->pool_done. */
void pool_submit(struct master *m, struct pool_req *req);
void pool_req_free(struct pool_req *req);
/* Called by the reactor for each completed request. */
void master_on_pool_done(struct master *m, struct pool_req *req);

const char *task_state_name(int s);
const char *job_state_name(int s);
const char *frame_state_name(int s);

#endif
