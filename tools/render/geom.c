/*
 * geom.c: the world of one frame (geom.h): primitives moved to the frame,
 * a bounding volume hierarchy (BVH) over the finite ones, and ray queries.
 *
 * Spheres, boxes and mesh triangles go into the BVH; infinite planes are
 * tested one by one beside it. The BVH splits at the middle of the widest
 * extent of the primitives' centroids, an in-place partition that depends
 * only on the primitives and their order in the scene, never on memory
 * addresses or an unstable sort, so every render of a frame gets the same
 * tree. Past a depth bound it splits by count instead, which bounds the
 * depth of any tree at S_SPLIT_DEPTH + log2(primitives).
 */
#include "geom.h"

#include "tessera/error.h"

#include <stdlib.h>
#include <string.h>

/* Primitives per leaf. */
#define S_LEAF_SIZE 4
/* Past this depth the build splits by count (see the file's comment). */
#define S_SPLIT_DEPTH 40
/* Traversal stack: S_SPLIT_DEPTH + log2(TSR_SCENE_MAX_TRIANGLES + objects) + slack. */
#define S_STACK 96
/* Hits closer than this are the surface the ray left (origins are offset). */
#define S_TMIN 1e-7

enum s_kind {
    S_SPHERE = 0, /* a = center, r = radius */
    S_BOX = 1,    /* a = smallest corner, b = largest corner */
    S_TRI = 2,    /* a = first vertex, b and c = edges to the other two */
};

/* A finite primitive at its position in this frame. */
struct s_prim {
    enum s_kind kind;  /* which of the fields apply */
    int object;        /* index into the scene's objects */
    struct tsr_vec3 a; /* see enum s_kind */
    struct tsr_vec3 b; /* see enum s_kind */
    struct tsr_vec3 c; /* see enum s_kind */
    double r;          /* sphere radius */
};

/* An infinite plane at its position in this frame. */
struct s_plane {
    struct tsr_vec3 n; /* unit normal */
    double d;          /* dot(n, p) for every point p on the plane */
    int object;        /* index into the scene's objects */
};

/* A BVH node; children of an interior node are index + 1 and `first`. */
struct s_node {
    double lo[3]; /* bounds: smallest corner */
    double hi[3]; /* bounds: largest corner */
    int first;    /* leaf: first primitive; interior: the right child */
    int count;    /* leaf: primitives (> 0); interior: 0 */
    int axis;     /* interior: the split axis, for near-first traversal */
};

struct tsr_geom {
    struct s_prim *prims;   /* nprims primitives, in BVH leaf order */
    int nprims;             /* count of finite primitives */
    struct s_node *nodes;   /* nnodes nodes, root first */
    int nnodes;             /* used nodes (at most 2 * nprims - 1) */
    struct s_plane *planes; /* nplanes planes */
    int nplanes;            /* count of planes */
};

/* Scratch for the build: bounds and centroid of each primitive. */
struct s_box {
    double lo[3]; /* smallest corner */
    double hi[3]; /* largest corner */
    double c[3];  /* centroid of the bounds */
};

/* Plain comparisons: fmin and fmax are library calls on x86-64, and the
 * ray queries keep their operands finite (see s_inv), so NaN never meets them. */
static inline double s_min(double a, double b)
{
    return a < b ? a : b;
}
static inline double s_max(double a, double b)
{
    return a > b ? a : b;
}

static void s_prim_box(const struct s_prim *p, struct s_box *b)
{
    struct tsr_vec3 lo, hi;
    if (p->kind == S_SPHERE) {
        lo = v3_sub(p->a, v3(p->r, p->r, p->r));
        hi = v3_add(p->a, v3(p->r, p->r, p->r));
    } else if (p->kind == S_BOX) {
        lo = p->a;
        hi = p->b;
    } else {
        struct tsr_vec3 v1 = v3_add(p->a, p->b), v2 = v3_add(p->a, p->c);
        lo = v3(fmin(p->a.x, fmin(v1.x, v2.x)), fmin(p->a.y, fmin(v1.y, v2.y)),
                fmin(p->a.z, fmin(v1.z, v2.z)));
        hi = v3(fmax(p->a.x, fmax(v1.x, v2.x)), fmax(p->a.y, fmax(v1.y, v2.y)),
                fmax(p->a.z, fmax(v1.z, v2.z)));
    }
    for (int k = 0; k < 3; k++) {
        b->lo[k] = v3_get(lo, k);
        b->hi[k] = v3_get(hi, k);
        b->c[k] = 0.5 * (b->lo[k] + b->hi[k]);
    }
}

/* Builds the subtree over idx[start, end); returns its node index. */
static int s_build(struct tsr_geom *g, const struct s_box *boxes, int *idx, int start,
                   int end, int depth)
{
    int ni = g->nnodes++;
    struct s_node *n = &g->nodes[ni];
    double clo[3], chi[3];
    for (int k = 0; k < 3; k++) {
        n->lo[k] = clo[k] = INFINITY;
        n->hi[k] = chi[k] = -INFINITY;
    }
    for (int i = start; i < end; i++) {
        const struct s_box *b = &boxes[idx[i]];
        for (int k = 0; k < 3; k++) {
            n->lo[k] = fmin(n->lo[k], b->lo[k]);
            n->hi[k] = fmax(n->hi[k], b->hi[k]);
            clo[k] = fmin(clo[k], b->c[k]);
            chi[k] = fmax(chi[k], b->c[k]);
        }
    }
    if (end - start <= S_LEAF_SIZE) {
        n->first = start;
        n->count = end - start;
        n->axis = 0;
        return ni;
    }
    int axis = 0;
    for (int k = 1; k < 3; k++)
        if (chi[k] - clo[k] > chi[axis] - clo[axis])
            axis = k;
    int mid = start;
    if (depth < S_SPLIT_DEPTH && chi[axis] > clo[axis]) {
        double split = 0.5 * (clo[axis] + chi[axis]);
        int j = end - 1;
        while (mid <= j) {
            if (boxes[idx[mid]].c[axis] < split) {
                mid++;
            } else {
                int t = idx[mid];
                idx[mid] = idx[j];
                idx[j--] = t;
            }
        }
    }
    if (mid == start || mid == end)
        mid = start + (end - start) / 2;
    n->count = 0;
    n->axis = axis;
    s_build(g, boxes, idx, start, mid, depth + 1);
    n->first = s_build(g, boxes, idx, mid, end, depth + 1); /* nodes never move */
    return ni;
}

/* Counts and fills the primitives of the frame; prims NULL only counts. */
static int s_collect(const struct tsr_scene *s, double frame, struct s_prim *prims,
                     struct s_plane *planes, int *nplanes)
{
    int n = 0;
    *nplanes = 0;
    for (int i = 0; i < s->nobjects; i++) {
        const struct tsr_object *o = &s->objects[i];
        struct tsr_vec3 t = tsr_track3_eval(&o->translate, frame);
        switch (o->kind) {
        case TSR_OBJ_SPHERE:
            if (prims)
                prims[n] = (struct s_prim){.kind = S_SPHERE,
                                           .object = i,
                                           .a = v3_add(o->center, t),
                                           .r = o->radius};
            n++;
            break;
        case TSR_OBJ_BOX:
            if (prims)
                prims[n] = (struct s_prim){.kind = S_BOX,
                                           .object = i,
                                           .a = v3_add(o->lo, t),
                                           .b = v3_add(o->hi, t)};
            n++;
            break;
        case TSR_OBJ_PLANE:
            if (planes)
                planes[*nplanes] =
                    (struct s_plane){.n = o->normal,
                                     .d = v3_dot(o->normal, v3_add(o->point, t)),
                                     .object = i};
            (*nplanes)++;
            break;
        case TSR_OBJ_MESH:
            for (int k = 0; k < o->ntriangles; k++, n++) {
                if (!prims)
                    continue;
                const int *tri = &o->triangles[k * 3];
                struct tsr_vec3 v0 = v3_add(o->vertices[tri[0]], t);
                struct tsr_vec3 v1 = v3_add(o->vertices[tri[1]], t);
                struct tsr_vec3 v2 = v3_add(o->vertices[tri[2]], t);
                prims[n] = (struct s_prim){.kind = S_TRI,
                                           .object = i,
                                           .a = v0,
                                           .b = v3_sub(v1, v0),
                                           .c = v3_sub(v2, v0)};
            }
            break;
        }
    }
    return n;
}

int tsr_geom_build(const struct tsr_scene *scene, double frame, struct tsr_geom **out)
{
    *out = NULL;
    struct tsr_geom *g = calloc(1, sizeof *g);
    if (!g)
        return TSR_ENOMEM;
    int np = 0;
    int n = s_collect(scene, frame, NULL, NULL, &np);
    struct s_prim *raw = calloc((size_t)n + 1, sizeof *raw);
    struct s_box *boxes = calloc((size_t)n + 1, sizeof *boxes);
    int *idx = calloc((size_t)n + 1, sizeof *idx);
    g->prims = calloc((size_t)n + 1, sizeof *g->prims);
    g->nodes = calloc((size_t)n * 2 + 1, sizeof *g->nodes);
    g->planes = calloc((size_t)np + 1, sizeof *g->planes);
    if (!raw || !boxes || !idx || !g->prims || !g->nodes || !g->planes) {
        free(raw);
        free(boxes);
        free(idx);
        tsr_geom_destroy(&g);
        return TSR_ENOMEM;
    }
    g->nprims = s_collect(scene, frame, raw, g->planes, &g->nplanes);
    for (int i = 0; i < n; i++) {
        s_prim_box(&raw[i], &boxes[i]);
        idx[i] = i;
    }
    if (n > 0)
        s_build(g, boxes, idx, 0, n, 0);
    for (int i = 0; i < n; i++)
        g->prims[i] = raw[idx[i]];
    free(raw);
    free(boxes);
    free(idx);
    *out = g;
    return 0;
}

void tsr_geom_destroy(struct tsr_geom **geom)
{
    if (!geom || !*geom)
        return;
    free((*geom)->prims);
    free((*geom)->nodes);
    free((*geom)->planes);
    free(*geom);
    *geom = NULL;
}

/* Distance to p along ray, if in (S_TMIN, tmax); else 0. */
static double s_hit_prim(const struct s_prim *p, const struct tsr_ray *r, double tmax)
{
    double t;
    if (p->kind == S_SPHERE) {
        struct tsr_vec3 oc = v3_sub(r->org, p->a);
        double b = v3_dot(oc, r->dir);
        double disc = b * b - (v3_dot(oc, oc) - p->r * p->r);
        if (disc < 0)
            return 0;
        double sq = sqrt(disc);
        t = -b - sq;
        if (t <= S_TMIN)
            t = -b + sq;
    } else if (p->kind == S_BOX) {
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
            t0 = s_max(t0, s_min(ta, tb));
            t1 = s_min(t1, s_max(ta, tb));
        }
        if (t0 > t1)
            return 0;
        t = t0 > S_TMIN ? t0 : t1;
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
    return t > S_TMIN && t < tmax ? t : 0;
}

static int s_hit_node(const struct s_node *n, const double o[3], const double inv[3],
                      double tmax)
{
    double t0 = 0, t1 = tmax;
    for (int k = 0; k < 3; k++) {
        double ta = (n->lo[k] - o[k]) * inv[k], tb = (n->hi[k] - o[k]) * inv[k];
        t0 = s_max(t0, s_min(ta, tb));
        t1 = s_min(t1, s_max(ta, tb));
    }
    return t0 <= t1;
}

/* 1/d, kept finite: a zero component becomes a huge one of the same sign,
 * so that 0 * inv is 0 rather than NaN. */
static inline double s_inv(double d)
{
    return 1.0 / (fabs(d) > 1e-300 ? d : copysign(1e-300, d));
}

/* The BVH walk shared by both queries. any: stop at the first hit.
 * Returns the closest primitive's index (or -1) and its distance in *tbest. */
static int s_walk(const struct tsr_geom *g, const struct tsr_ray *r, double *tbest,
                  int any)
{
    if (g->nprims == 0)
        return -1;
    const double inv[3] = {s_inv(r->dir.x), s_inv(r->dir.y), s_inv(r->dir.z)};
    const double org[3] = {r->org.x, r->org.y, r->org.z};
    const int neg[3] = {r->dir.x < 0, r->dir.y < 0, r->dir.z < 0};
    int stack[S_STACK], sp = 0, best = -1;
    stack[sp++] = 0;
    while (sp > 0) {
        const struct s_node *n = &g->nodes[stack[--sp]];
        if (!s_hit_node(n, org, inv, *tbest))
            continue;
        if (n->count > 0) {
            for (int i = n->first; i < n->first + n->count; i++) {
                double t = s_hit_prim(&g->prims[i], r, *tbest);
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
        if (sp + 2 > S_STACK)
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

static int s_hit_planes(const struct tsr_geom *g, const struct tsr_ray *r, double *tbest)
{
    int best = -1;
    for (int i = 0; i < g->nplanes; i++) {
        const struct s_plane *p = &g->planes[i];
        double den = v3_dot(p->n, r->dir);
        if (fabs(den) < 1e-12)
            continue;
        double t = (p->d - v3_dot(p->n, r->org)) / den;
        if (t > S_TMIN && t < *tbest) {
            *tbest = t;
            best = i;
        }
    }
    return best;
}

int tsr_geom_intersect(const struct tsr_geom *g, const struct tsr_ray *r, double tmax,
                       struct tsr_hit *hit)
{
    double t = tmax;
    int prim = s_walk(g, r, &t, 0);
    int plane = s_hit_planes(g, r, &t);
    if (prim < 0 && plane < 0)
        return 0;
    struct tsr_vec3 p = v3_add(r->org, v3_scale(r->dir, t));
    struct tsr_vec3 n;
    if (plane >= 0) {
        n = g->planes[plane].n;
        hit->object = g->planes[plane].object;
    } else {
        const struct s_prim *q = &g->prims[prim];
        hit->object = q->object;
        if (q->kind == S_SPHERE) {
            n = v3_scale(v3_sub(p, q->a), 1.0 / q->r);
        } else if (q->kind == S_BOX) {
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

int tsr_geom_occluded(const struct tsr_geom *g, const struct tsr_ray *r, double tmax)
{
    double t = tmax;
    if (s_hit_planes(g, r, &t) >= 0)
        return 1;
    return s_walk(g, r, &t, 1) >= 0;
}
