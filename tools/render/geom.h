/*
 * geom.h: tessera-render's geometry of one frame: the scene's objects moved
 * to that frame, a bounding volume hierarchy over them, and ray queries.
 *
 * A world is built once per frame, single-threaded, from the scene and the
 * frame number alone, and is then read by every rendering thread. Building
 * is deterministic (no sorting with unstable ties, no hashing of pointers),
 * so the same frame gives the same hierarchy and the same hits whatever
 * part of the image is rendered.
 */
#ifndef TESSERA_RENDER_GEOM_H
#define TESSERA_RENDER_GEOM_H

#include <math.h>

#include "tessera/scene_model.h"

/* --- small vector helpers (struct tsr_vec3 is x, y, z doubles) ---------- */

static inline struct tsr_vec3 v3(double x, double y, double z)
{
    return (struct tsr_vec3){x, y, z};
}
static inline struct tsr_vec3 v3_add(struct tsr_vec3 a, struct tsr_vec3 b)
{
    return v3(a.x + b.x, a.y + b.y, a.z + b.z);
}
static inline struct tsr_vec3 v3_sub(struct tsr_vec3 a, struct tsr_vec3 b)
{
    return v3(a.x - b.x, a.y - b.y, a.z - b.z);
}
static inline struct tsr_vec3 v3_mul(struct tsr_vec3 a, struct tsr_vec3 b)
{
    return v3(a.x * b.x, a.y * b.y, a.z * b.z);
}
static inline struct tsr_vec3 v3_scale(struct tsr_vec3 a, double s)
{
    return v3(a.x * s, a.y * s, a.z * s);
}
static inline double v3_dot(struct tsr_vec3 a, struct tsr_vec3 b)
{
    return a.x * b.x + a.y * b.y + a.z * b.z;
}
static inline struct tsr_vec3 v3_cross(struct tsr_vec3 a, struct tsr_vec3 b)
{
    return v3(a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x);
}
static inline double v3_len(struct tsr_vec3 a)
{
    return sqrt(v3_dot(a, a));
}
/* Unit vector along a; a zero vector stays zero rather than become NaN. */
static inline struct tsr_vec3 v3_norm(struct tsr_vec3 a)
{
    double n = v3_len(a);
    return n > 0 ? v3_scale(a, 1.0 / n) : a;
}
static inline double v3_get(struct tsr_vec3 a, int axis)
{
    return axis == 0 ? a.x : axis == 1 ? a.y : a.z;
}

/* A ray; dir is always of unit length. */
struct tsr_ray {
    struct tsr_vec3 org; /* origin */
    struct tsr_vec3 dir; /* unit direction */
};

/* The closest surface a ray met. */
struct tsr_hit {
    double t;          /* distance along the ray */
    struct tsr_vec3 p; /* the point hit */
    struct tsr_vec3 n; /* unit normal, turned to face the incoming ray */
    int front;         /* non-zero when the ray hit the outside */
    int object;        /* index into the scene's objects */
};

struct tsr_geom; /* opaque: the world of one frame */

/* Builds the world of scene at frame. *out is owned by the caller
 * (tsr_geom_destroy); the scene is borrowed and must outlive it.
 * Returns 0 or TSR_ENOMEM. */
int tsr_geom_build(const struct tsr_scene *scene, double frame, struct tsr_geom **out);

/* Null-safe; sets *geom to NULL. */
void tsr_geom_destroy(struct tsr_geom **geom);

/* The closest hit along ray with distance in (0, tmax); non-zero when found.
 * Safe to call from many threads at once. */
int tsr_geom_intersect(const struct tsr_geom *geom, const struct tsr_ray *ray,
                       double tmax, struct tsr_hit *hit);

/* Non-zero when anything lies along ray at a distance in (0, tmax). */
int tsr_geom_occluded(const struct tsr_geom *geom, const struct tsr_ray *ray,
                      double tmax);

#endif
