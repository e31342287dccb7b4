/*
 * blender.h: the Blender adapter (doc/renderers.md, "blender").
 *
 * Everything the worker knows about Blender lives here: the probe that runs
 * once at start (version, Cycles devices, features), the `blender -b`
 * command line of a task with the setup script that fixes its render
 * settings, the reading of Blender's status lines as progress, the
 * classification of a failed run from its exit status and log, and the
 * crop that turns a border render (a full frame, black outside the border)
 * into a piece whose data window is exactly the task's region.
 *
 * Nothing here keeps state between calls; the probe's result is a cJSON
 * object that the worker keeps and announces in HELLO.
 */
#ifndef TESSERA_WORKER_BLENDER_H
#define TESSERA_WORKER_BLENDER_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "task.h"

#define TSR_BLENDER_PROBE_TIMEOUT_MS 30000 /* longest wait for the probe */
#define TSR_BLENDER_MAX_DEVICES 64         /* most Cycles devices announced */

/* Exit statuses of the setup script (and Blender's own for a Python error);
 * the log says more, and the classification reads both. */
#define TSR_BLENDER_EXIT_SCRIPT 86  /* the setup script raised an exception */
#define TSR_BLENDER_EXIT_ASSET 87   /* a file the scene uses is missing */
#define TSR_BLENDER_EXIT_FEATURE 88 /* the device asked for is not there */

/*
 * Runs `PATH -b --factory-startup -noaudio --python-expr PROBE` under
 * TSR_BLENDER_PROBE_TIMEOUT_MS (through runner.c, like any renderer) and
 * reads the one JSON line the probe prints. *out becomes
 *   {"path", "version": "3.4.1", "devices": [{"type": "CPU"|"CUDA"|..., "name"}],
 *    "features": ["blender", "blender:3.4", "blender:oidn", "cycles:cuda", ...]}
 * owned by the caller. Returns 0, TSR_ENOTFOUND (not executable),
 * TSR_ETIMEOUT, TSR_ERENDER (it failed or printed no probe line; err says
 * what it printed last), TSR_ENOMEM.
 */
int tsr_blender_probe(const char *path, cJSON **out, char *err, size_t errlen);

/*
 * Reads the probe's output line ("TESSERA_BLENDER {json}") into the object
 * described above (without "path"); NULL when the line is not one or its
 * fields are malformed. Exposed for the tests; the caller owns the result.
 */
cJSON *tsr_blender_probe_line(const char *line);

/* Whether a probe result lists a Cycles device of type ("CUDA", "OPTIX"). */
int tsr_blender_has_device(const cJSON *info, const char *type);

/*
 * The Cycles device a task renders on: its cycles_device when it named
 * one; else on a GPU slot OPTIX when the probe found an OptiX device, CUDA
 * otherwise; else CPU. A static string.
 */
const char *tsr_blender_device(const struct tsr_task_spec *spec, int on_gpu,
                               const cJSON *info);

/* Where and how a Blender task runs. Paths are absolute and borrowed. */
struct tsr_blender_run {
    const char *blender;  /* the Blender executable */
    const char *scene;    /* the .blend file */
    const char *task_dir; /* output folder (out_####.exr) */
    const char *device;   /* "CPU", "CUDA" or "OPTIX" */
    int threads;          /* render threads (-t) */
};

/*
 * Builds the argv of a task (NULL-terminated, every string malloc'd, the
 * caller frees them and the array):
 *   blender -b --factory-startup -noaudio --disable-autoexec SCENE
 *           --python-exit-code 86 --python-expr SETUP -t T -s F -e G -a -- JSON
 * Returns 0, TSR_ENOMEM.
 */
int tsr_blender_argv(const struct tsr_task_spec *spec, const struct tsr_blender_run *run,
                     char ***argv, char *err, size_t errlen);

/*
 * Progress of a task from one line of Blender's output: "Fra:F ... Sample
 * a/b", "Fra:F ... Rendered a/b Tiles" and "Saved: '.../out_F.exr'" count;
 * the percent is over the task's frames, at most 99 (100 is the worker's to
 * say, once the files are checked). Returns -1 for any other line.
 */
int tsr_blender_progress(const struct tsr_task_spec *spec, const char *line);

/*
 * Classifies a Blender run that failed (a non-zero exit, a signal the worker
 * did not send, or missing images) from its wait status and its log:
 * "missing_asset", "missing_feature", "oom", "crash", or NULL when nothing
 * specific was found (the caller keeps its generic class). err gets the
 * sentence to report (the setup script's own line, Blender's error line).
 */
const char *tsr_blender_classify(int status, const char *log, char *err, size_t errlen);

/* Writes Blender's last "Error: ..." line of log into buf (cut to size);
 * returns 1 when there was one. */
int tsr_blender_last_error(const char *log, char *buf, size_t size);

/*
 * Makes the image at path a piece of exactly region inside a width x height
 * frame: an image that is one already is left alone; a full frame (Blender's
 * border render without crop) is cut to the region and rewritten in place.
 * Returns 0, TSR_EIMAGE (neither; err says what it is), TSR_EIO, TSR_ENOMEM,
 * TSR_ELIMIT.
 */
int tsr_blender_crop(const char *path, const struct tsr_region *region, int width,
                     int height, char *err, size_t errlen);

#endif
