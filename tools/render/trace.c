/*
 * trace.c: the path tracer of trace.h: a frame's camera, lights, emitters
 * and world prepared on the host, and its pixels rendered by the per-pixel
 * code of kernel.h, which the CUDA path (trace_cuda.cu) shares.
 *
 * A unidirectional path tracer: camera rays scatter off diffuse, metal and
 * glass surfaces up to the scene's max_bounces times. At each diffuse hit it
 * samples the lights directly (next-event estimation): every point and sun
 * light with a shadow ray, and one emissive sphere chosen at random within
 * the cone it subtends. Once a path has met a diffuse surface, hitting such a
 * sphere adds nothing: its light there was counted by the direct sample, and
 * what is left are caustics (diffuse, then glass or mirror, then the light),
 * which at a few samples per pixel are only speckle. Emissive boxes, planes
 * and meshes are found by paths alone and always count. Rays that leave the
 * scene see the sky gradient.
 *
 * Determinism (see trace.h): randomness comes from splitmix64 run over a
 * counter that starts at a hash of (seed, frame, x, y, sample); every draw
 * a sample makes is a function of those alone. Samples of a pixel are summed
 * in order, in double. Firefly control (the scene's clamp) and the
 * replacement of non-finite values by 0 are per sample, so they too depend on
 * nothing but the pixel.
 */
#include "trace.h"

#include "geom.h"
#include "tessera/error.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

struct tsr_trace {
    const struct tsr_scene *scene;  /* borrowed */
    struct tsr_geom *geom;          /* the world at the frame, owned */
    struct tsr_klight *lights;      /* the frame's point and sun lights, owned */
    struct tsr_kemitter *emitters;  /* the frame's emissive spheres, owned */
    unsigned char *sampled;         /* per object: 1 when an emitter above, owned */
    struct tsr_vec3 *offset;        /* per object: its translation at the frame, owned */
    int *obj_material;              /* per object: its material's index, owned */
    struct tsr_kframe k;            /* the view of all this that pixels read */
};

/* --- public functions -------------------------------------------------- */

int tsr_trace_new(const struct tsr_scene *s, int frame, struct tsr_trace **out, char *err,
                  size_t errlen)
{
    *out = NULL;
    double f = frame;
    struct tsr_vec3 eye = tsr_track3_eval(&s->camera.position, f);
    struct tsr_vec3 at = tsr_track3_eval(&s->camera.look_at, f);
    struct tsr_vec3 fwd = v3_sub(at, eye), right = v3(0, 0, 0);
    double flen = v3_len(fwd);
    if (flen > 1e-9) {
        fwd = v3_scale(fwd, 1.0 / flen);
        right = v3_cross(fwd, s->camera.up);
    }
    if (!(flen > 1e-9) || !(v3_len(right) > 1e-9)) {
        if (err && errlen)
            snprintf(
                err, errlen,
                "frame %d: the camera's look_at is at its position or straight along "
                "its up vector",
                frame);
        return TSR_ESCENE;
    }
    struct tsr_trace *t = calloc(1, sizeof *t);
    if (!t)
        return TSR_ENOMEM;
    t->scene = s;
    struct tsr_kframe *k = &t->k;
    /* The one transcendental function of a frame runs here, on the host,
     * so that the CUDA path starts from the same camera (kernel.h). */
    double half_h = tan(tsr_track1_eval(&s->camera.fov, f) * TSR_K_PI / 360.0);
    double half_w = half_h * (double)s->width / (double)s->height;
    right = v3_norm(right);
    k->width = s->width;
    k->height = s->height;
    k->max_bounces = s->max_bounces;
    k->clamp = s->clamp;
    k->sky = s->sky;
    k->eye = eye;
    k->fwd = fwd;
    k->right = v3_scale(right, half_w);
    k->up = v3_scale(v3_cross(right, fwd), half_h);
    k->key = tsr_k_mix(tsr_k_mix(s->seed ^ 0x7E55E7A5ULL) ^ (uint64_t)(int64_t)frame);

    t->lights = calloc((size_t)s->nlights + 1, sizeof *t->lights);
    t->emitters = calloc((size_t)s->nobjects + 1, sizeof *t->emitters);
    t->sampled = calloc((size_t)s->nobjects + 1, 1);
    t->offset = calloc((size_t)s->nobjects + 1, sizeof *t->offset);
    t->obj_material = calloc((size_t)s->nobjects + 1, sizeof *t->obj_material);
    int rc = t->lights && t->emitters && t->sampled && t->offset && t->obj_material
                 ? 0
                 : TSR_ENOMEM;
    if (!rc)
        rc = tsr_geom_build(s, f, &t->geom);
    if (rc) {
        tsr_trace_destroy(&t);
        return rc;
    }
    for (int i = 0; i < s->nlights; i++) {
        const struct tsr_light *l = &s->lights[i];
        struct tsr_klight *o = &t->lights[k->nlights++];
        o->sun = l->kind == TSR_LIGHT_SUN;
        o->at = o->sun ? l->direction : tsr_track3_eval(&l->position, f);
        o->power = v3_scale(l->color, l->intensity);
    }
    for (int i = 0; i < s->nobjects; i++) {
        const struct tsr_object *o = &s->objects[i];
        const struct tsr_material *m = &s->materials[o->material];
        t->obj_material[i] = o->material;
        t->offset[i] = tsr_track3_eval(&o->translate, f);
        if (o->kind != TSR_OBJ_SPHERE || m->kind != TSR_MAT_EMISSIVE || m->strength <= 0)
            continue;
        struct tsr_kemitter *e = &t->emitters[k->nemitters++];
        e->object = i;
        e->center = v3_add(o->center, t->offset[i]);
        e->radius = o->radius;
        e->radiance = v3_scale(m->color, m->strength);
        t->sampled[i] = 1;
    }
    k->materials = s->materials;
    k->nmaterials = s->nmaterials;
    k->nobjects = s->nobjects;
    k->obj_material = t->obj_material;
    k->sampled = t->sampled;
    k->offset = t->offset;
    k->lights = t->lights;
    k->emitters = t->emitters;
    tsr_geom_view(t->geom, &k->geom);
    *out = t;
    return 0;
}

void tsr_trace_destroy(struct tsr_trace **trace)
{
    if (!trace || !*trace)
        return;
    struct tsr_trace *t = *trace;
    tsr_geom_destroy(&t->geom);
    free(t->lights);
    free(t->emitters);
    free(t->sampled);
    free(t->offset);
    free(t->obj_material);
    free(t);
    *trace = NULL;
}

const struct tsr_kframe *tsr_trace_frame(const struct tsr_trace *t)
{
    return &t->k;
}

void tsr_trace_pixel(const struct tsr_trace *t, int x, int y, int samples, float rgba[4])
{
    tsr_k_pixel(&t->k, x, y, samples, rgba);
}
