/*
 * task.h: the TASK message as the worker understands it.
 *
 * tsr_task_parse is the one place where a TASK header from the master is
 * checked: every field's type, range and format, the scene path's safety and
 * the region's place inside the frame. Whatever passes it can be used to
 * build a command line and file names without further checks.
 */
#ifndef TESSERA_WORKER_TASK_H
#define TESSERA_WORKER_TASK_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "tessera/frameset.h"
#include "tessera/hash.h"
#include "tessera/image.h"

#define TSR_TASK_MAX_SCENE 1024                 /* longest scene path, bytes */
#define TSR_TASK_MAX_COMMAND (64 * 1024)        /* longest command template, bytes */
#define TSR_TASK_MAX_FRAMES 100000              /* most frames in one task */
#define TSR_TASK_FRAME_MIN TSR_FRAME_MIN        /* lowest frame number: the */
#define TSR_TASK_FRAME_MAX TSR_FRAME_MAX        /* master's, frameset.h */
#define TSR_TASK_MAX_SIZE 32768                 /* widest / tallest frame, pixels */
#define TSR_TASK_MAX_TIMEOUT_S (30 * 24 * 3600) /* longest timeout: 30 days */
#define TSR_TASK_MAX_ID ((int64_t)1 << 53)      /* ids travel as JSON numbers */
#define TSR_TASK_MAX_REQUIRES 16                /* most features a task requires */
#define TSR_TASK_MAX_FEATURE 31                 /* longest feature name, bytes */

/* Renderers this worker can run (doc/renderers.md). */
enum tsr_renderer {
    TSR_RENDERER_BUILTIN = 0, /* tessera-render */
    TSR_RENDERER_COMMAND = 1, /* a shell command template */
    TSR_RENDERER_BLENDER = 2, /* blender -b (worker/blender.c) */
};

/* Which Cycles device a Blender task asked for (TASK's cycles_device). */
enum tsr_cycles_device {
    TSR_CYCLES_DEFAULT = 0, /* none named: CPU on a CPU slot, OPTIX or CUDA on a GPU */
    TSR_CYCLES_CPU = 1,     /* "CPU" */
    TSR_CYCLES_CUDA = 2,    /* "CUDA" */
    TSR_CYCLES_OPTIX = 3,   /* "OPTIX" */
};

/* One checked TASK. Strings are owned (tsr_task_spec_clear frees them). */
struct tsr_task_spec {
    int64_t attempt;            /* fencing token; -1 when unreadable */
    int64_t job;                /* job id */
    int64_t task;               /* task index inside the job */
    enum tsr_renderer renderer; /* which adapter runs it */
    char archive[TSR_HASH_HEX]; /* sha256 of the scene archive */
    uint64_t archive_size;      /* its size in bytes */
    char *scene;                /* scene file inside the archive; "" if none */
    int64_t frame_start;        /* first frame */
    int64_t frame_end;          /* last frame (inclusive) */
    struct tsr_region region;   /* pixels to render, half-open */
    int width;                  /* full frame width; 0 when unknown */
    int height;                 /* full frame height; 0 when unknown */
    char *command;              /* command template; "" for builtin */
    int outputs_image;          /* 1: one EXR per frame expected; 0: none */
    int gpu;                    /* runs on a GPU slot (TASK's gpu) */
    enum tsr_cycles_device cycles_device; /* Blender's device asked for */
    /* Features the task needs (TASK's requires), each checked against ours. */
    char requires[TSR_TASK_MAX_REQUIRES][TSR_TASK_MAX_FEATURE + 1];
    int nrequires;              /* entries used in requires */
    int64_t timeout_s;          /* wall-clock limit; 0 = none */
    int64_t stall_s;            /* longest silence of the renderer; 0 = none */
};

/*
 * Checks a TASK header and fills *spec (which the caller clears with
 * tsr_task_spec_clear, also after a failure). On failure err names the field
 * ("field 'region' lies outside the 320x180 frame") and spec->attempt is the
 * attempt id if that much could be read, else -1.
 * Returns 0, TSR_EPROTO, TSR_ENOMEM.
 */
int tsr_task_parse(const cJSON *hdr, struct tsr_task_spec *spec, char *err,
                   size_t errlen);

/* Frees the strings of spec and empties it; spec itself is the caller's. */
void tsr_task_spec_clear(struct tsr_task_spec *spec);

/* True when path is a safe relative path: not empty, not absolute, no ".."
 * or empty components, no control characters. */
int tsr_task_path_safe(const char *path);

#endif
