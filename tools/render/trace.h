/*
 * trace.h: tessera-render's path tracer: the radiance of one pixel of one
 * frame.
 *
 * The contract that the farm relies on: tsr_trace_pixel's result depends
 * only on (scene, frame, x, y, samples). Each pixel sample draws from its
 * own counter-based random stream keyed by (scene seed, frame, x, y,
 * sample); no state is shared between pixels and nothing is summed across
 * pixels, so any region, tiling, thread count or scheduling gives the same
 * floats bit for bit.
 */
#ifndef TESSERA_RENDER_TRACE_H
#define TESSERA_RENDER_TRACE_H

#include <stddef.h>

#include "kernel.h"
#include "tessera/scene_model.h"

struct tsr_trace; /* opaque: one frame ready to render */

/* Prepares frame of scene: camera, lights and geometry at that frame.
 * The scene is borrowed and must outlive *out, which the caller owns.
 * Returns 0, TSR_ESCENE (a camera that looks nowhere at this frame; the
 * reason in err), TSR_ENOMEM. */
int tsr_trace_new(const struct tsr_scene *scene, int frame, struct tsr_trace **out,
                  char *err, size_t errlen);

/* Null-safe; sets *trace to NULL. */
void tsr_trace_destroy(struct tsr_trace **trace);

/* Renders pixel (x, y) of the full frame (y = 0 is the top row) with
 * `samples` samples into rgba: linear radiance, alpha 1, always finite.
 * Safe to call from many threads at once. */
void tsr_trace_pixel(const struct tsr_trace *trace, int x, int y, int samples,
                     float rgba[4]);

/* The frame as the per-pixel code sees it (kernel.h), for the CUDA path to
 * copy; it belongs to trace and lives as long as it does. */
const struct tsr_kframe *tsr_trace_frame(const struct tsr_trace *trace);

#endif
