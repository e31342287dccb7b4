/*
 * adapters.h: how each renderer is invoked (doc/renderers.md).
 *
 * An adapter turns a checked task into a command line and an environment for
 * the runner: the builtin tessera-render, a shell command template with
 * placeholders, or Blender (blender.h). Every renderer writes one image per
 * frame into the task folder, named by tsr_adapter_output_name.
 */
#ifndef TESSERA_WORKER_ADAPTERS_H
#define TESSERA_WORKER_ADAPTERS_H

#include <stddef.h>
#include <stdint.h>

#include "task.h"

/* The longest command line after substitution: Linux refuses a single
 * argument of 128 KiB or more (MAX_ARG_STRLEN). */
#define TSR_ADAPTER_MAX_EXPANDED (128 * 1024 - 1)

/* A command line and environment for execve; every string is owned. */
struct tsr_cmdline {
    char **argv; /* NULL-terminated arguments; argv[0] is a path */
    char **envp; /* NULL-terminated "NAME=value" entries */
};

/* Where a task runs. Paths are absolute and borrowed. */
struct tsr_adapter_ctx {
    const char *scene_dir; /* the extracted scene archive */
    const char *task_dir;  /* the task's working folder (cwd, HOME, TMPDIR) */
    int threads;           /* render threads the task may use */
    int gpu;               /* GPU index the task holds (CUDA_VISIBLE_DEVICES), or -1 */
    int has_gpus;          /* this worker has GPUs: a CPU task is shown none */
    const char *blender;   /* Blender's path; NULL when this worker has none */
    const char *device;    /* Cycles device of a Blender task: CPU, CUDA, OPTIX */
};

/*
 * Builds the command line and environment for spec into *out (which the
 * caller frees with tsr_cmdline_clear, also after a failure).
 * Returns 0, TSR_ENOTFOUND (tessera-render or Blender is nowhere to be found),
 * TSR_ELIMIT (the command grew past TSR_ADAPTER_MAX_EXPANDED), TSR_ENOMEM;
 * err says why.
 */
int tsr_adapter_build(const struct tsr_task_spec *spec, const struct tsr_adapter_ctx *ctx,
                      struct tsr_cmdline *out, char *err, size_t errlen);

/* Frees what cl holds and empties it. */
void tsr_cmdline_clear(struct tsr_cmdline *cl);

/*
 * Substitutes the placeholders of a command template (doc/renderers.md):
 * {frame} {frame_end} {x0} {y0} {x1} {y1} {width} {height} as numbers,
 * {out} {scene} {scene_dir} {taskdir} as single-quoted paths. Anything else
 * in braces is left as written. *out is malloc'd, caller owns.
 * Returns 0, TSR_ELIMIT, TSR_ENOMEM.
 */
int tsr_adapter_expand(const char *tmpl, const struct tsr_task_spec *spec,
                       const struct tsr_adapter_ctx *ctx, char **out, char *err,
                       size_t errlen);

/* Writes the file name a renderer gives frame F's image: "out_0001.exr"
 * (printf "out_%04d.exr"). Returns 0 or TSR_ELIMIT. */
int tsr_adapter_output_name(int64_t frame, char *buf, size_t size);

/* Finds tessera-render beside this executable, else on PATH; writes its
 * absolute path. Returns 0 or TSR_ENOTFOUND. */
int tsr_adapter_find_render(char *buf, size_t size);

/* Finds the executable name in the absolute entries of this process's PATH
 * (the default PATH when unset); writes its path. Returns 0 or
 * TSR_ENOTFOUND. */
int tsr_adapter_which(const char *name, char *buf, size_t size);

#endif
