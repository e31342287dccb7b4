/*
 * probe.h: what this machine offers, for HELLO: CPU cores, memory and
 * NVIDIA GPUs; and tsr_probe_run, the bounded run of a helper program that
 * the GPU and Blender probes (blender.c) share.
 */
#ifndef TESSERA_WORKER_PROBE_H
#define TESSERA_WORKER_PROBE_H

#include <stdint.h>

#include <cjson/cJSON.h>

#include "runner.h"

#define TSR_PROBE_GPU_TIMEOUT_MS 5000 /* longest wait for nvidia-smi */
#define TSR_PROBE_MAX_GPUS 64         /* most GPUs listed */

/* Online CPUs (at least 1). */
int tsr_probe_cores(void);

/* Physical memory in MiB (0 when unknown). */
int64_t tsr_probe_memory_mb(void);

/*
 * Runs `nvidia-smi --query-gpu=name,memory.total --format=csv,noheader,nounits`
 * if it is on PATH, waiting at most TSR_PROBE_GPU_TIMEOUT_MS (a wedged
 * driver can hang it), and returns [{name, memory_mb}] for each line it
 * printed; [] when there is no nvidia-smi or it fails. The caller owns the
 * result; NULL only when out of memory.
 */
cJSON *tsr_probe_gpus(void);

/*
 * Runs argv (argv[0] an absolute path) with exactly envp in the folder cwd,
 * as runner.c runs a renderer, handing each output line to fn, and waits
 * at most timeout_ms for it to exit (then kills its group). *status gets
 * its wait status. When log is not NULL, *log gets the kept output
 * (tsr_child_log; caller frees; NULL if out of memory).
 * Returns 0 (it exited), TSR_ETIMEOUT, TSR_ENOTFOUND (cannot be started),
 * TSR_EIO, TSR_ENOMEM; err says why.
 */
int tsr_probe_run(char *const argv[], char *const envp[], const char *cwd, int timeout_ms,
                  tsr_child_line_fn fn, void *ctx, int *status, char **log, char *err,
                  size_t errlen);

/* Parses one line of that output ("NVIDIA H100 80GB HBM3, 81559") into a
 * {name, memory_mb} object; NULL when the line is not one. Exposed for the
 * parser's sake; the caller owns the result. */
cJSON *tsr_probe_gpu_line(const char *line);

#endif
