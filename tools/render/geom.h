/*
 * geom.h: tessera-render's geometry of one frame: the scene's objects moved
 * to that frame and a bounding volume hierarchy over them. The ray queries
 * over it are in kernel.h, shared with the CUDA path.
 *
 * A world is built once per frame, single-threaded, from the scene and the
 * frame number alone, and is then read by every rendering thread. Building
 * is deterministic (no sorting with unstable ties, no hashing of pointers),
 * so the same frame gives the same hierarchy and the same hits whatever
 * part of the image is rendered.
 */
#ifndef TESSERA_RENDER_GEOM_H
#define TESSERA_RENDER_GEOM_H

#include "kernel.h"
#include "tessera/scene_model.h"

struct tsr_geom; /* opaque: the world of one frame */

/* Builds the world of scene at frame. *out is owned by the caller
 * (tsr_geom_destroy); the scene is borrowed and must outlive it.
 * Returns 0 or TSR_ENOMEM. */
int tsr_geom_build(const struct tsr_scene *scene, double frame, struct tsr_geom **out);

/* Null-safe; sets *geom to NULL. */
void tsr_geom_destroy(struct tsr_geom **geom);

/* The world as arrays for the per-pixel code (kernel.h); they belong to
 * geom and live as long as it does. */
void tsr_geom_view(const struct tsr_geom *geom, struct tsr_kgeom *out);

#endif
