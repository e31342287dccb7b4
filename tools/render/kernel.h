/*
 * kernel.h: tessera-render's per-pixel code, shared word for word by the
 * CPU path (trace.c, geom.c) and the CUDA path (trace_cuda.cu).
 *
 * Everything a pixel needs is a struct tsr_kframe: plain arrays and numbers
 * prepared on the host for one frame (the camera, the lights, the materials
 * and the BVH), which the CUDA path copies to the GPU as they are. The
 * functions here are `static inline` and, under nvcc, `__host__ __device__`;
 * they use only IEEE double arithmetic whose results the C standard and
 * CUDA both fix (+, -, *, /, sqrt, fabs, floor, fmin, fmax, copysign): no
 * transcendental function runs per pixel (the camera's tangent is taken on
 * the host), so the two paths compute the same floats, as long as neither
 * compiler fuses a multiply and an add (trace_cuda.cu is built with
 * -fmad=false; x86-64 C has no fused multiply-add without -march).
 *
 * Determinism (trace.h): randomness is splitmix64 over a counter that starts
 * at a hash of (seed, frame, x, y, sample); a pixel's value depends on
 * nothing else.
 */
#ifndef TESSERA_RENDER_KERNEL_H
#define TESSERA_RENDER_KERNEL_H

#include <math.h>
#include <stdint.h>

#include "tessera/scene_model.h"

#ifdef __CUDACC__
#define TSR_HD __host__ __device__
#else
#define TSR_HD
#endif

#define TSR_K_PI 3.14159265358979323846
/* Traversal stack: split depth bound (40) + log2(triangles + objects) + slack. */
#define TSR_K_STACK 96
/* Hits closer than this are the surface the ray left (origins are offset). */
#define TSR_K_TMIN 1e-7

/* --- small vector helpers (struct tsr_vec3 is x, y, z doubles) ---------- */

static inline TSR_HD struct tsr_vec3 v3(double x, double y, double z)
{
    struct tsr_vec3 r; /* no compound literal: this header is also C++ */
    r.x = x;
    r.y = y;
    r.z = z;
    return r;
}
static inline TSR_HD struct tsr_vec3 v3_add(struct tsr_vec3 a, struct tsr_vec3 b)
{
    return v3(a.x + b.x, a.y + b.y, a.z + b.z);
}
static inline TSR_HD struct tsr_vec3 v3_sub(struct tsr_vec3 a, struct tsr_vec3 b)
{
    return v3(a.x - b.x, a.y - b.y, a.z - b.z);
}
static inline TSR_HD struct tsr_vec3 v3_mul(struct tsr_vec3 a, struct tsr_vec3 b)
{
    return v3(a.x * b.x, a.y * b.y, a.z * b.z);
}
static inline TSR_HD struct tsr_vec3 v3_scale(struct tsr_vec3 a, double s)
{
    return v3(a.x * s, a.y * s, a.z * s);
}
static inline TSR_HD double v3_dot(struct tsr_vec3 a, struct tsr_vec3 b)
{
    return a.x * b.x + a.y * b.y + a.z * b.z;
}
static inline TSR_HD struct tsr_vec3 v3_cross(struct tsr_vec3 a, struct tsr_vec3 b)
{
    return v3(a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x);
}
static inline TSR_HD double v3_len(struct tsr_vec3 a)
{
    return sqrt(v3_dot(a, a));
}
/* Unit vector along a; a zero vector stays zero rather than become NaN. */
static inline TSR_HD struct tsr_vec3 v3_norm(struct tsr_vec3 a)
{
    double n = v3_len(a);
    return n > 0 ? v3_scale(a, 1.0 / n) : a;
}
static inline TSR_HD double v3_get(struct tsr_vec3 a, int axis)
{
    return axis == 0 ? a.x : axis == 1 ? a.y : a.z;
}

/* Plain comparisons: fmin and fmax are library calls on x86-64, and the
 * ray queries keep their operands finite (see tsr_k_inv), so NaN never
 * meets them. */
static inline TSR_HD double tsr_k_min(double a, double b)
{
    return a < b ? a : b;
}
static inline TSR_HD double tsr_k_max(double a, double b)
{
    return a > b ? a : b;
}

/* --- the world of one frame (built by geom.c) --------------------------- */

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

enum tsr_kprim_kind {
    TSR_KPRIM_SPHERE = 0, /* a = center, r = radius */
    TSR_KPRIM_BOX = 1,    /* a = smallest corner, b = largest corner */
    TSR_KPRIM_TRI = 2,    /* a = first vertex, b and c = edges to the other two */
};

/* A finite primitive at its position in this frame. */
struct tsr_kprim {
    enum tsr_kprim_kind kind; /* which of the fields apply */
    int object;               /* index into the scene's objects */
    struct tsr_vec3 a;        /* see enum tsr_kprim_kind */
    struct tsr_vec3 b;        /* see enum tsr_kprim_kind */
    struct tsr_vec3 c;        /* see enum tsr_kprim_kind */
    double r;                 /* sphere radius */
};

/* An infinite plane at its position in this frame. */
struct tsr_kplane {
    struct tsr_vec3 n; /* unit normal */
    double d;          /* dot(n, p) for every point p on the plane */
    int object;        /* index into the scene's objects */
};

/* A BVH node; children of an interior node are index + 1 and `first`. */
struct tsr_knode {
    double lo[3]; /* bounds: smallest corner */
    double hi[3]; /* bounds: largest corner */
    int first;    /* leaf: first primitive; interior: the right child */
    int count;    /* leaf: primitives (> 0); interior: 0 */
    int axis;     /* interior: the split axis, for near-first traversal */
};

/* The geometry of a frame: arrays owned elsewhere (geom.c, or the GPU). */
struct tsr_kgeom {
    const struct tsr_kprim *prims;   /* nprims primitives, in BVH leaf order */
    int nprims;                      /* count of finite primitives */
    const struct tsr_knode *nodes;   /* the BVH, root first */
    int nnodes;                      /* count of nodes */
    const struct tsr_kplane *planes; /* nplanes planes */
    int nplanes;                     /* count of planes */
};

/* A point or sun light at the frame. */
struct tsr_klight {
    int sun;               /* non-zero: parallel light from direction `at` */
    struct tsr_vec3 at;    /* point: position; sun: unit vector to the sun */
    struct tsr_vec3 power; /* colour * intensity */
};

/* An emissive sphere at the frame, sampled by next-event estimation. */
struct tsr_kemitter {
    int object;               /* its index in the scene's objects */
    struct tsr_vec3 center;   /* center at the frame */
    double radius;            /* radius */
    struct tsr_vec3 radiance; /* colour * strength */
};

/* Everything one frame's pixels read; arrays are borrowed. */
struct tsr_kframe {
    int width;             /* frame width in pixels */
    int height;            /* frame height in pixels */
    int max_bounces;       /* scattering events per path */
    double clamp;          /* largest indirect sample value; 0: none */
    uint64_t key;          /* hash of (seed, frame): each pixel's stream root */
    struct tsr_vec3 eye;   /* camera position */
    struct tsr_vec3 fwd;   /* unit view direction */
    struct tsr_vec3 right; /* image right, scaled to the half width */
    struct tsr_vec3 up;    /* image up, scaled to the half height */
    struct tsr_sky sky;    /* background radiance */
    const struct tsr_material *materials; /* the scene's materials */
    const int *obj_material;              /* per object: its material's index */
    const unsigned char *sampled;         /* per object: 1 when an emitter above */
    const struct tsr_vec3 *offset;        /* per object: its translation at the frame */
    const struct tsr_klight *lights;      /* nlights point and sun lights */
    int nlights;                          /* count of lights */
    const struct tsr_kemitter *emitters;  /* nemitters emissive spheres */
    int nemitters;                        /* count of emissive spheres */
    int nobjects;                         /* entries in the per-object arrays */
    int nmaterials;                       /* entries in materials */
    struct tsr_kgeom geom;                /* the world */
};

/* --- ray queries --------------------------------------------------------- */

/* Distance to p along ray, if in (TSR_K_TMIN, tmax); else 0. */
static inline TSR_HD double tsr_k_hit_prim(const struct tsr_kprim *p,
                                           const struct tsr_ray *r, double tmax)
{
    double t;
    if (p->kind == TSR_KPRIM_SPHERE) {
        struct tsr_vec3 oc = v3_sub(r->org, p->a);
        double b = v3_dot(oc, r->dir);
        double disc = b * b - (v3_dot(oc, oc) - p->r * p->r);
        if (disc < 0)
            return 0;
        double sq = sqrt(disc);
        t = -b - sq;
        if (t <= TSR_K_TMIN)
            t = -b + sq;
    } else if (p->kind == TSR_KPRIM_BOX) {
        double t0 = -INFINITY, t1 = INFINITY;
        for (int k = 0; k < 3; k++) {
            double o = v3_get(r->org, k), d = v3_get(r->dir, k);
            double lo = v3_get(p->a, k), hi = v3_get(p->b, k);
            if (d == 0) {
                if (o < lo || o > hi)
                    return 0;
                continue;
            }
            double inv = 1.0 / d, ta = (lo - o) * inv, tb = (hi - o) * inv;
            t0 = tsr_k_max(t0, tsr_k_min(ta, tb));
            t1 = tsr_k_min(t1, tsr_k_max(ta, tb));
        }
        if (t0 > t1)
            return 0;
        t = t0 > TSR_K_TMIN ? t0 : t1;
    } else {
        struct tsr_vec3 pv = v3_cross(r->dir, p->c);
        double det = v3_dot(p->b, pv);
        if (fabs(det) < 1e-300)
            return 0;
        double inv = 1.0 / det;
        struct tsr_vec3 tv = v3_sub(r->org, p->a);
        double u = v3_dot(tv, pv) * inv;
        if (u < 0 || u > 1)
            return 0;
        struct tsr_vec3 qv = v3_cross(tv, p->b);
        double v = v3_dot(r->dir, qv) * inv;
        if (v < 0 || u + v > 1)
            return 0;
        t = v3_dot(p->c, qv) * inv;
    }
    return t > TSR_K_TMIN && t < tmax ? t : 0;
}

static inline TSR_HD int tsr_k_hit_node(const struct tsr_knode *n, const double o[3],
                                        const double inv[3], double tmax)
{
    double t0 = 0, t1 = tmax;
    for (int k = 0; k < 3; k++) {
        double ta = (n->lo[k] - o[k]) * inv[k], tb = (n->hi[k] - o[k]) * inv[k];
        t0 = tsr_k_max(t0, tsr_k_min(ta, tb));
        t1 = tsr_k_min(t1, tsr_k_max(ta, tb));
    }
    return t0 <= t1;
}

/* 1/d, kept finite: a zero component becomes a huge one of the same sign,
 * so that 0 * inv is 0 rather than NaN. */
static inline TSR_HD double tsr_k_inv(double d)
{
    return 1.0 / (fabs(d) > 1e-300 ? d : copysign(1e-300, d));
}

/* The BVH walk shared by both queries. any: stop at the first hit.
 * Returns the closest primitive's index (or -1) and its distance in *tbest. */
static inline TSR_HD int tsr_k_walk(const struct tsr_kgeom *g, const struct tsr_ray *r,
                                    double *tbest, int any)
{
    if (g->nprims == 0)
        return -1;
    const double inv[3] = {tsr_k_inv(r->dir.x), tsr_k_inv(r->dir.y), tsr_k_inv(r->dir.z)};
    const double org[3] = {r->org.x, r->org.y, r->org.z};
    const int neg[3] = {r->dir.x < 0, r->dir.y < 0, r->dir.z < 0};
    int stack[TSR_K_STACK], sp = 0, best = -1;
    stack[sp++] = 0;
    while (sp > 0) {
        const struct tsr_knode *n = &g->nodes[stack[--sp]];
        if (!tsr_k_hit_node(n, org, inv, *tbest))
            continue;
        if (n->count > 0) {
            for (int i = n->first; i < n->first + n->count; i++) {
                double t = tsr_k_hit_prim(&g->prims[i], r, *tbest);
                if (t > 0) {
                    *tbest = t;
                    best = i;
                    if (any)
                        return best;
                }
            }
            continue;
        }
        int left = (int)(n - g->nodes) + 1, right = n->first;
        if (sp + 2 > TSR_K_STACK)
            continue; /* cannot happen with the depth bound; never overflow */
        /* Push the far child first so the near one is popped first. */
        if (neg[n->axis]) {
            stack[sp++] = left;
            stack[sp++] = right;
        } else {
            stack[sp++] = right;
            stack[sp++] = left;
        }
    }
    return best;
}

static inline TSR_HD int tsr_k_hit_planes(const struct tsr_kgeom *g,
                                          const struct tsr_ray *r, double *tbest)
{
    int best = -1;
    for (int i = 0; i < g->nplanes; i++) {
        const struct tsr_kplane *p = &g->planes[i];
        double den = v3_dot(p->n, r->dir);
        if (fabs(den) < 1e-12)
            continue;
        double t = (p->d - v3_dot(p->n, r->org)) / den;
        if (t > TSR_K_TMIN && t < *tbest) {
            *tbest = t;
            best = i;
        }
    }
    return best;
}

/* The closest hit along ray with distance in (0, tmax); non-zero when found. */
static inline TSR_HD int tsr_k_intersect(const struct tsr_kgeom *g,
                                         const struct tsr_ray *r, double tmax,
                                         struct tsr_hit *hit)
{
    double t = tmax;
    int prim = tsr_k_walk(g, r, &t, 0);
    int plane = tsr_k_hit_planes(g, r, &t);
    if (prim < 0 && plane < 0)
        return 0;
    struct tsr_vec3 p = v3_add(r->org, v3_scale(r->dir, t));
    struct tsr_vec3 n;
    if (plane >= 0) {
        n = g->planes[plane].n;
        hit->object = g->planes[plane].object;
    } else {
        const struct tsr_kprim *q = &g->prims[prim];
        hit->object = q->object;
        if (q->kind == TSR_KPRIM_SPHERE) {
            n = v3_scale(v3_sub(p, q->a), 1.0 / q->r);
        } else if (q->kind == TSR_KPRIM_BOX) {
            /* The face nearest the point is the face hit. */
            int axis = 0;
            double best = INFINITY, sign = 1;
            for (int k = 0; k < 3; k++) {
                double dl = fabs(v3_get(p, k) - v3_get(q->a, k));
                double dh = fabs(v3_get(p, k) - v3_get(q->b, k));
                if (dl < best) {
                    best = dl;
                    axis = k;
                    sign = -1;
                }
                if (dh < best) {
                    best = dh;
                    axis = k;
                    sign = 1;
                }
            }
            n = v3(axis == 0 ? sign : 0, axis == 1 ? sign : 0, axis == 2 ? sign : 0);
        } else {
            n = v3_norm(v3_cross(q->b, q->c));
        }
    }
    hit->t = t;
    hit->p = p;
    hit->front = v3_dot(r->dir, n) < 0;
    hit->n = hit->front ? n : v3_scale(n, -1);
    return 1;
}

/* Non-zero when anything lies along ray at a distance in (0, tmax). */
static inline TSR_HD int tsr_k_occluded(const struct tsr_kgeom *g,
                                        const struct tsr_ray *r, double tmax)
{
    double t = tmax;
    if (tsr_k_hit_planes(g, r, &t) >= 0)
        return 1;
    return tsr_k_walk(g, r, &t, 1) >= 0;
}

/* --- random numbers ---------------------------------------------------- */

/* splitmix64's finaliser: a bijective 64-bit mix. */
static inline TSR_HD uint64_t tsr_k_mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* One sample's stream: a counter run through tsr_k_mix (splitmix64). */
struct tsr_krng {
    uint64_t state; /* the counter */
};

/* Uniform in [0, 1). */
static inline TSR_HD double tsr_k_rand(struct tsr_krng *r)
{
    r->state += 0x9E3779B97F4A7C15ULL;
    return (double)(tsr_k_mix(r->state) >> 11) * 0x1.0p-53;
}

/* A point uniform in the unit disk, by rejection: no trigonometry, and the
 * draws it takes depend only on the stream, so it stays deterministic.
 * Returns the squared radius, itself uniform in [0, 1]. */
static inline TSR_HD double tsr_k_disk(struct tsr_krng *rng, double *x, double *y)
{
    for (int i = 0; i < 64; i++) {
        double a = 2 * tsr_k_rand(rng) - 1, b = 2 * tsr_k_rand(rng) - 1,
               r2 = a * a + b * b;
        if (r2 <= 1) {
            *x = a;
            *y = b;
            return r2;
        }
    }
    *x = *y = 0; /* 2^-64 odds: the centre is as good as any point */
    return 0;
}

/* A point uniform in the unit ball, by rejection (see tsr_k_disk). */
static inline TSR_HD struct tsr_vec3 tsr_k_ball(struct tsr_krng *rng)
{
    for (int i = 0; i < 64; i++) {
        struct tsr_vec3 p =
            v3(2 * tsr_k_rand(rng) - 1, 2 * tsr_k_rand(rng) - 1, 2 * tsr_k_rand(rng) - 1);
        if (v3_dot(p, p) <= 1)
            return p;
    }
    return v3(0, 0, 0);
}

/* --- shading ------------------------------------------------------------- */

/* A unit vector in the frame whose z axis is n (Duff et al. 2017). */
static inline TSR_HD struct tsr_vec3 tsr_k_around(struct tsr_vec3 n, double x, double y,
                                                  double z)
{
    double sign = copysign(1.0, n.z);
    double a = -1.0 / (sign + n.z), b = n.x * n.y * a;
    struct tsr_vec3 t = v3(1 + sign * n.x * n.x * a, sign * b, -sign * n.x);
    struct tsr_vec3 bt = v3(b, sign + n.y * n.y * a, -n.y);
    return v3_add(v3_add(v3_scale(t, x), v3_scale(bt, y)), v3_scale(n, z));
}

/* The start of a ray leaving p (on a surface with normal n) along dir. */
static inline TSR_HD struct tsr_vec3 tsr_k_offset(struct tsr_vec3 p, struct tsr_vec3 n,
                                                  struct tsr_vec3 dir)
{
    double m = fmax(fabs(p.x), fmax(fabs(p.y), fabs(p.z)));
    double eps = 1e-6 * (1.0 + m);
    return v3_add(p, v3_scale(n, v3_dot(dir, n) >= 0 ? eps : -eps));
}

static inline TSR_HD struct tsr_vec3 tsr_k_sky(const struct tsr_sky *k,
                                               struct tsr_vec3 dir)
{
    if (dir.y >= 0)
        return v3_add(k->horizon, v3_scale(v3_sub(k->zenith, k->horizon), dir.y));
    return v3_add(k->horizon, v3_scale(v3_sub(k->ground, k->horizon), -dir.y));
}

/* The albedo at a hit: the colour, or the checker's cell colour in the
 * object's own space (so the pattern moves with the object). */
static inline TSR_HD struct tsr_vec3 tsr_k_albedo(const struct tsr_kframe *t,
                                                  const struct tsr_material *m,
                                                  const struct tsr_hit *h)
{
    if (!m->checker)
        return m->color;
    struct tsr_vec3 p = v3_sub(h->p, t->offset[h->object]);
    /* A bias keeps points that lie on a cell boundary (a ground plane at
     * y = 0) from flickering between the cells on either side. */
    double inv = 1.0 / m->checker_scale;
    long long cell = (long long)floor(p.x * inv + 1e-4) +
                     (long long)floor(p.y * inv + 1e-4) +
                     (long long)floor(p.z * inv + 1e-4);
    return (cell & 1) ? m->color2 : m->color;
}

/* Light arriving at a diffuse hit straight from the lights, times 1/pi
 * (the Lambertian BRDF without its albedo). */
static inline TSR_HD struct tsr_vec3
tsr_k_direct(const struct tsr_kframe *t, const struct tsr_hit *h, struct tsr_krng *rng)
{
    struct tsr_vec3 sum = v3(0, 0, 0);
    for (int i = 0; i < t->nlights; i++) {
        const struct tsr_klight *l = &t->lights[i];
        struct tsr_vec3 dir = l->at;
        double dist = INFINITY, falloff = 1.0;
        if (!l->sun) {
            struct tsr_vec3 d = v3_sub(l->at, h->p);
            double d2 = v3_dot(d, d);
            if (!(d2 > 1e-12))
                continue;
            dist = sqrt(d2);
            dir = v3_scale(d, 1.0 / dist);
            falloff = 1.0 / d2;
        }
        double cosv = v3_dot(h->n, dir);
        if (cosv <= 0)
            continue;
        struct tsr_ray sh = {tsr_k_offset(h->p, h->n, dir), dir};
        if (tsr_k_occluded(&t->geom, &sh, dist * (1 - 1e-9)))
            continue;
        sum = v3_add(sum, v3_scale(l->power, cosv * falloff / TSR_K_PI));
    }
    if (t->nemitters > 0) {
        int k = (int)(tsr_k_rand(rng) * t->nemitters);
        if (k >= t->nemitters)
            k = t->nemitters - 1;
        const struct tsr_kemitter *e = &t->emitters[k];
        double dx, dy, u1 = tsr_k_disk(rng, &dx, &dy);
        struct tsr_vec3 wc = v3_sub(e->center, h->p);
        double d2 = v3_dot(wc, wc), r2 = e->radius * e->radius;
        if (d2 > r2 * (1 + 1e-9)) {
            /* Uniform in the cone the sphere subtends; 1 - cos_max written
             * so that it keeps its precision for small, far spheres. */
            double cos_max = sqrt(fmax(0.0, 1.0 - r2 / d2));
            double one_minus = (r2 / d2) / (1.0 + cos_max);
            double cos_t = 1.0 - u1 * one_minus;
            double sin_t = sqrt(fmax(0.0, 1.0 - cos_t * cos_t));
            /* The disk point's angle is uniform and independent of u1. */
            double scale = u1 > 0 ? sin_t / sqrt(u1) : 0;
            struct tsr_vec3 dir = v3_norm(tsr_k_around(v3_scale(wc, 1.0 / sqrt(d2)),
                                                       dx * scale, dy * scale, cos_t));
            double cosv = v3_dot(h->n, dir);
            struct tsr_ray sh = {tsr_k_offset(h->p, h->n, dir), dir};
            /* Where the direction meets the sphere; a shadow ray to just
             * short of it (an any-hit query) tells whether it is seen. */
            struct tsr_vec3 oc = v3_sub(sh.org, e->center);
            double b = v3_dot(oc, dir), disc = b * b - (v3_dot(oc, oc) - r2);
            double dist = disc >= 0 ? -b - sqrt(disc) : -1;
            if (cosv > 0 && dist > 0 &&
                !tsr_k_occluded(&t->geom, &sh, dist * (1 - 1e-7))) {
                double w = cosv * (2 * TSR_K_PI * one_minus) * t->nemitters / TSR_K_PI;
                sum = v3_add(sum, v3_scale(e->radiance, w));
            }
        }
    }
    return sum;
}

/* Scales c down so that no channel exceeds limit (0: no limit). */
static inline TSR_HD struct tsr_vec3 tsr_k_clamp(struct tsr_vec3 c, double limit)
{
    double m = fmax(c.x, fmax(c.y, c.z));
    return limit > 0 && m > limit ? v3_scale(c, limit / m) : c;
}

/* The radiance one camera ray brings back. */
static inline TSR_HD struct tsr_vec3
tsr_k_radiance(const struct tsr_kframe *t, struct tsr_ray ray, struct tsr_krng *rng)
{
    struct tsr_vec3 direct = v3(0, 0, 0), indirect = v3(0, 0, 0);
    struct tsr_vec3 beta = v3(1, 1, 1);
    int diffuse = 0; /* the path has met a diffuse surface */
    for (int depth = 0;; depth++) {
        struct tsr_vec3 *acc = depth == 0 ? &direct : &indirect;
        struct tsr_hit h;
        if (!tsr_k_intersect(&t->geom, &ray, INFINITY, &h)) {
            *acc = v3_add(*acc, v3_mul(beta, tsr_k_sky(&t->sky, ray.dir)));
            break;
        }
        const struct tsr_material *m = &t->materials[t->obj_material[h.object]];
        if (m->kind == TSR_MAT_EMISSIVE) {
            if (h.front && (!diffuse || !t->sampled[h.object]))
                *acc = v3_add(*acc, v3_mul(beta, v3_scale(m->color, m->strength)));
            break;
        }
        struct tsr_vec3 albedo = tsr_k_albedo(t, m, &h), dir;
        if (m->kind == TSR_MAT_DIFFUSE) {
            *acc = v3_add(*acc, v3_mul(v3_mul(beta, albedo), tsr_k_direct(t, &h, rng)));
            if (depth >= t->max_bounces)
                break;
            /* Cosine-weighted: a disk point lifted onto the hemisphere. */
            double dx, dy, r2 = tsr_k_disk(rng, &dx, &dy);
            dir = v3_norm(tsr_k_around(h.n, dx, dy, sqrt(fmax(0.0, 1 - r2))));
            diffuse = 1;
        } else if (m->kind == TSR_MAT_METAL) {
            if (depth >= t->max_bounces)
                break;
            struct tsr_vec3 refl =
                v3_sub(ray.dir, v3_scale(h.n, 2 * v3_dot(ray.dir, h.n)));
            if (m->roughness > 0) /* fuzz: a random point in a ball */
                refl = v3_add(refl, v3_scale(tsr_k_ball(rng), m->roughness));
            dir = v3_norm(refl);
            if (v3_dot(dir, h.n) <= 0)
                break; /* fuzzed below the surface: absorbed */
        } else {
            if (depth >= t->max_bounces)
                break;
            double eta = h.front ? 1.0 / m->ior : m->ior;
            double cos_i = fmin(1.0, -v3_dot(ray.dir, h.n));
            double sin2_t = eta * eta * (1 - cos_i * cos_i);
            double r0 = (1 - m->ior) / (1 + m->ior);
            r0 *= r0;
            double c = 1 - cos_i, c2 = c * c;
            double fresnel = r0 + (1 - r0) * c2 * c2 * c; /* Schlick */
            if (sin2_t >= 1 || tsr_k_rand(rng) < fresnel)
                dir = v3_sub(ray.dir, v3_scale(h.n, 2 * v3_dot(ray.dir, h.n)));
            else
                dir = v3_add(v3_scale(ray.dir, eta),
                             v3_scale(h.n, eta * cos_i - sqrt(1 - sin2_t)));
            dir = v3_norm(dir);
        }
        beta = v3_mul(beta, albedo);
        if (fmax(beta.x, fmax(beta.y, beta.z)) <= 0)
            break;
        ray.org = tsr_k_offset(h.p, h.n, dir);
        ray.dir = dir;
    }
    return v3_add(direct, tsr_k_clamp(indirect, t->clamp));
}

static inline TSR_HD float tsr_k_finite(double v)
{
    /* Never write NaN or Inf: the farm refuses such pieces. */
    if (!isfinite(v))
        return 0.0f;
    return (float)fmax(-1e30, fmin(1e30, v));
}

/* Pixel (x, y) of the frame (y = 0 is the top row) with `samples` samples
 * into rgba: linear radiance, alpha 1, always finite. */
static inline TSR_HD void tsr_k_pixel(const struct tsr_kframe *t, int x, int y,
                                      int samples, float rgba[4])
{
    uint64_t pixel =
        tsr_k_mix(t->key ^ tsr_k_mix(((uint64_t)(uint32_t)y << 32) | (uint32_t)x));
    double sum[3] = {0, 0, 0};
    for (int i = 0; i < samples; i++) {
        struct tsr_krng rng = {tsr_k_mix(pixel + (uint64_t)i * 0xD1B54A32D192ED03ULL)};
        double sx = ((double)x + tsr_k_rand(&rng)) / t->width * 2 - 1;
        double sy = 1 - ((double)y + tsr_k_rand(&rng)) / t->height * 2;
        struct tsr_ray ray = {
            t->eye,
            v3_norm(v3_add(t->fwd, v3_add(v3_scale(t->right, sx), v3_scale(t->up, sy))))};
        struct tsr_vec3 l = tsr_k_radiance(t, ray, &rng);
        if (!isfinite(l.x) || !isfinite(l.y) || !isfinite(l.z))
            continue; /* a sample lost to arithmetic counts as black */
        sum[0] += l.x;
        sum[1] += l.y;
        sum[2] += l.z;
    }
    for (int k = 0; k < 3; k++)
        rgba[k] = tsr_k_finite(sum[k] / samples);
    rgba[3] = 1.0f;
}

#endif
