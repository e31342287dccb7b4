/*
 * trace_cuda.h: tessera-render's CUDA path, the C face of trace_cuda.cu.
 *
 * It renders a region of one frame on a GPU with the same per-pixel code
 * as the CPU path (kernel.h), from the frame that trace.c prepared on the
 * host (tsr_trace_frame). It is compiled only where CMake finds nvcc
 * (TSR_HAVE_CUDA); elsewhere tessera-render has no --device cuda.
 *
 * The process sees the GPUs that CUDA_VISIBLE_DEVICES leaves it (the
 * worker gives a GPU task exactly one) and uses the first.
 */
#ifndef TESSERA_RENDER_TRACE_CUDA_H
#define TESSERA_RENDER_TRACE_CUDA_H

#include <stddef.h>

#include "kernel.h"
#include "tessera/image.h"

#ifdef __cplusplus
extern "C" {
#endif

struct tsr_cuda; /* opaque: a GPU chosen and ready */

/*
 * Picks the first visible CUDA device. *out is the caller's
 * (tsr_cuda_close); name gets the device's name.
 * Returns 0, TSR_ENOTFOUND (no driver or no device; err says which),
 * TSR_ERENDER (the device failed), TSR_ENOMEM.
 */
int tsr_cuda_open(struct tsr_cuda **out, char *name, size_t namelen, char *err,
                  size_t errlen);

/* Null-safe; sets *cuda to NULL. */
void tsr_cuda_close(struct tsr_cuda **cuda);

/* Called after each band of rows with the pixels of the region done so far. */
typedef void (*tsr_cuda_progress_fn)(void *ctx, long long pixels);

/*
 * Renders region of frame (its arrays are copied to the GPU) with samples
 * per pixel into rgba: width(region) * height(region) * 4 floats, row major,
 * as tsr_trace_pixel would. progress may be NULL.
 * Returns 0, TSR_ERENDER (a CUDA call failed; err says which), TSR_ENOMEM.
 */
int tsr_cuda_render(struct tsr_cuda *cuda, const struct tsr_kframe *frame,
                    const struct tsr_region *region, int samples, float *rgba,
                    tsr_cuda_progress_fn progress, void *ctx, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
