/*
 * geom.c: the world of one frame (geom.h): primitives moved to the frame
 * and a bounding volume hierarchy (BVH) over the finite ones; the ray
 * queries that walk it are in kernel.h.
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

struct tsr_geom {
    struct tsr_kprim *prims;   /* nprims primitives, in BVH leaf order */
    int nprims;                /* count of finite primitives */
    struct tsr_knode *nodes;   /* nnodes nodes, root first */
    int nnodes;                /* used nodes (at most 2 * nprims - 1) */
    struct tsr_kplane *planes; /* nplanes planes */
    int nplanes;               /* count of planes */
};

/* Scratch for the build: bounds and centroid of each primitive. */
struct s_box {
    double lo[3]; /* smallest corner */
    double hi[3]; /* largest corner */
    double c[3];  /* centroid of the bounds */
};

static void s_prim_box(const struct tsr_kprim *p, struct s_box *b)
{
    struct tsr_vec3 lo, hi;
    if (p->kind == TSR_KPRIM_SPHERE) {
        lo = v3_sub(p->a, v3(p->r, p->r, p->r));
        hi = v3_add(p->a, v3(p->r, p->r, p->r));
    } else if (p->kind == TSR_KPRIM_BOX) {
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
    struct tsr_knode *n = &g->nodes[ni];
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
static int s_collect(const struct tsr_scene *s, double frame, struct tsr_kprim *prims,
                     struct tsr_kplane *planes, int *nplanes)
{
    int n = 0;
    *nplanes = 0;
    for (int i = 0; i < s->nobjects; i++) {
        const struct tsr_object *o = &s->objects[i];
        struct tsr_vec3 t = tsr_track3_eval(&o->translate, frame);
        switch (o->kind) {
        case TSR_OBJ_SPHERE:
            if (prims)
                prims[n] = (struct tsr_kprim){.kind = TSR_KPRIM_SPHERE,
                                           .object = i,
                                           .a = v3_add(o->center, t),
                                           .r = o->radius};
            n++;
            break;
        case TSR_OBJ_BOX:
            if (prims)
                prims[n] = (struct tsr_kprim){.kind = TSR_KPRIM_BOX,
                                           .object = i,
                                           .a = v3_add(o->lo, t),
                                           .b = v3_add(o->hi, t)};
            n++;
            break;
        case TSR_OBJ_PLANE:
            if (planes)
                planes[*nplanes] =
                    (struct tsr_kplane){.n = o->normal,
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
                prims[n] = (struct tsr_kprim){.kind = TSR_KPRIM_TRI,
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
    struct tsr_kprim *raw = calloc((size_t)n + 1, sizeof *raw);
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

void tsr_geom_view(const struct tsr_geom *g, struct tsr_kgeom *out)
{
    out->prims = g->prims;
    out->nprims = g->nprims;
    out->nodes = g->nodes;
    out->nnodes = g->nnodes;
    out->planes = g->planes;
    out->nplanes = g->nplanes;
}
