/*
 * trace.c: the path tracer of trace.h.
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

#define S_PI 3.14159265358979323846

/* A point or sun light at the frame. */
struct s_light {
    int sun;               /* non-zero: parallel light from direction `at` */
    struct tsr_vec3 at;    /* point: position; sun: unit vector to the sun */
    struct tsr_vec3 power; /* colour * intensity */
};

/* An emissive sphere at the frame, sampled by next-event estimation. */
struct s_emitter {
    int object;               /* its index in the scene's objects */
    struct tsr_vec3 center;   /* center at the frame */
    double radius;            /* radius */
    struct tsr_vec3 radiance; /* colour * strength */
};

struct tsr_trace {
    const struct tsr_scene *scene; /* borrowed */
    struct tsr_geom *geom;         /* the world at the frame, owned */
    uint64_t key;                  /* hash of (seed, frame): each pixel's stream root */
    struct tsr_vec3 eye;           /* camera position */
    struct tsr_vec3 fwd;           /* unit view direction */
    struct tsr_vec3 right;      /* image right, scaled to the half width at distance 1 */
    struct tsr_vec3 up;         /* image up, scaled to the half height at distance 1 */
    struct s_light *lights;     /* nlights point and sun lights */
    int nlights;                /* count of lights */
    struct s_emitter *emitters; /* nemitters emissive spheres */
    int nemitters;              /* count of emissive spheres */
    unsigned char *sampled;     /* per object: 1 when an emitter above */
    struct tsr_vec3 *offset;    /* per object: its translation at the frame */
};

/* --- random numbers ---------------------------------------------------- */

/* splitmix64's finaliser: a bijective 64-bit mix. */
static inline uint64_t s_mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* One sample's stream: a counter run through s_mix (splitmix64). */
struct s_rng {
    uint64_t state; /* the counter */
};

/* Uniform in [0, 1). */
static inline double s_rand(struct s_rng *r)
{
    r->state += 0x9E3779B97F4A7C15ULL;
    return (double)(s_mix(r->state) >> 11) * 0x1.0p-53;
}

/* A point uniform in the unit disk, by rejection: no trigonometry, and the
 * draws it takes depend only on the stream, so it stays deterministic.
 * Returns the squared radius, itself uniform in [0, 1]. */
static double s_disk(struct s_rng *rng, double *x, double *y)
{
    for (int i = 0; i < 64; i++) {
        double a = 2 * s_rand(rng) - 1, b = 2 * s_rand(rng) - 1, r2 = a * a + b * b;
        if (r2 <= 1) {
            *x = a;
            *y = b;
            return r2;
        }
    }
    *x = *y = 0; /* 2^-64 odds: the centre is as good as any point */
    return 0;
}

/* A point uniform in the unit ball, by rejection (see s_disk). */
static struct tsr_vec3 s_ball(struct s_rng *rng)
{
    for (int i = 0; i < 64; i++) {
        struct tsr_vec3 p =
            v3(2 * s_rand(rng) - 1, 2 * s_rand(rng) - 1, 2 * s_rand(rng) - 1);
        if (v3_dot(p, p) <= 1)
            return p;
    }
    return v3(0, 0, 0);
}

/* --- shading helpers --------------------------------------------------- */

/* A unit vector in the frame whose z axis is n (Duff et al. 2017). */
static struct tsr_vec3 s_around(struct tsr_vec3 n, double x, double y, double z)
{
    double sign = copysign(1.0, n.z);
    double a = -1.0 / (sign + n.z), b = n.x * n.y * a;
    struct tsr_vec3 t = v3(1 + sign * n.x * n.x * a, sign * b, -sign * n.x);
    struct tsr_vec3 bt = v3(b, sign + n.y * n.y * a, -n.y);
    return v3_add(v3_add(v3_scale(t, x), v3_scale(bt, y)), v3_scale(n, z));
}

/* The start of a ray leaving p (on a surface with normal n) along dir. */
static struct tsr_vec3 s_offset(struct tsr_vec3 p, struct tsr_vec3 n, struct tsr_vec3 dir)
{
    double m = fmax(fabs(p.x), fmax(fabs(p.y), fabs(p.z)));
    double eps = 1e-6 * (1.0 + m);
    return v3_add(p, v3_scale(n, v3_dot(dir, n) >= 0 ? eps : -eps));
}

static struct tsr_vec3 s_sky(const struct tsr_scene *s, struct tsr_vec3 dir)
{
    const struct tsr_sky *k = &s->sky;
    if (dir.y >= 0)
        return v3_add(k->horizon, v3_scale(v3_sub(k->zenith, k->horizon), dir.y));
    return v3_add(k->horizon, v3_scale(v3_sub(k->ground, k->horizon), -dir.y));
}

/* The albedo at a hit: the colour, or the checker's cell colour in the
 * object's own space (so the pattern moves with the object). */
static struct tsr_vec3 s_albedo(const struct tsr_trace *t, const struct tsr_material *m,
                                const struct tsr_hit *h)
{
    if (!m->checker)
        return m->color;
    struct tsr_vec3 p = v3_sub(h->p, t->offset[h->object]);
    /* A bias keeps points that lie on a cell boundary (a ground plane at
     * y = 0) from flickering between the cells on either side. */
    double inv = 1.0 / m->checker_scale;
    long cell = (long)floor(p.x * inv + 1e-4) + (long)floor(p.y * inv + 1e-4) +
                (long)floor(p.z * inv + 1e-4);
    return (cell & 1) ? m->color2 : m->color;
}

/* Light arriving at a diffuse hit straight from the lights, times 1/pi
 * (the Lambertian BRDF without its albedo). */
static struct tsr_vec3 s_direct(const struct tsr_trace *t, const struct tsr_hit *h,
                                struct s_rng *rng)
{
    struct tsr_vec3 sum = v3(0, 0, 0);
    for (int i = 0; i < t->nlights; i++) {
        const struct s_light *l = &t->lights[i];
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
        struct tsr_ray sh = {s_offset(h->p, h->n, dir), dir};
        if (tsr_geom_occluded(t->geom, &sh, dist * (1 - 1e-9)))
            continue;
        sum = v3_add(sum, v3_scale(l->power, cosv * falloff / S_PI));
    }
    if (t->nemitters > 0) {
        int k = (int)(s_rand(rng) * t->nemitters);
        if (k >= t->nemitters)
            k = t->nemitters - 1;
        const struct s_emitter *e = &t->emitters[k];
        double dx, dy, u1 = s_disk(rng, &dx, &dy);
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
            struct tsr_vec3 dir = v3_norm(
                s_around(v3_scale(wc, 1.0 / sqrt(d2)), dx * scale, dy * scale, cos_t));
            double cosv = v3_dot(h->n, dir);
            struct tsr_ray sh = {s_offset(h->p, h->n, dir), dir};
            /* Where the direction meets the sphere; a shadow ray to just
             * short of it (an any-hit query) tells whether it is seen. */
            struct tsr_vec3 oc = v3_sub(sh.org, e->center);
            double b = v3_dot(oc, dir), disc = b * b - (v3_dot(oc, oc) - r2);
            double dist = disc >= 0 ? -b - sqrt(disc) : -1;
            if (cosv > 0 && dist > 0 &&
                !tsr_geom_occluded(t->geom, &sh, dist * (1 - 1e-7))) {
                double w = cosv * (2 * S_PI * one_minus) * t->nemitters / S_PI;
                sum = v3_add(sum, v3_scale(e->radiance, w));
            }
        }
    }
    return sum;
}

/* Scales c down so that no channel exceeds limit (0: no limit). */
static struct tsr_vec3 s_clamp(struct tsr_vec3 c, double limit)
{
    double m = fmax(c.x, fmax(c.y, c.z));
    return limit > 0 && m > limit ? v3_scale(c, limit / m) : c;
}

/* The radiance one camera ray brings back. */
static struct tsr_vec3 s_radiance(const struct tsr_trace *t, struct tsr_ray ray,
                                  struct s_rng *rng)
{
    const struct tsr_scene *s = t->scene;
    struct tsr_vec3 direct = v3(0, 0, 0), indirect = v3(0, 0, 0);
    struct tsr_vec3 beta = v3(1, 1, 1);
    int diffuse = 0; /* the path has met a diffuse surface */
    for (int depth = 0;; depth++) {
        struct tsr_vec3 *acc = depth == 0 ? &direct : &indirect;
        struct tsr_hit h;
        if (!tsr_geom_intersect(t->geom, &ray, INFINITY, &h)) {
            *acc = v3_add(*acc, v3_mul(beta, s_sky(s, ray.dir)));
            break;
        }
        const struct tsr_material *m = &s->materials[s->objects[h.object].material];
        if (m->kind == TSR_MAT_EMISSIVE) {
            if (h.front && (!diffuse || !t->sampled[h.object]))
                *acc = v3_add(*acc, v3_mul(beta, v3_scale(m->color, m->strength)));
            break;
        }
        struct tsr_vec3 albedo = s_albedo(t, m, &h), dir;
        if (m->kind == TSR_MAT_DIFFUSE) {
            *acc = v3_add(*acc, v3_mul(v3_mul(beta, albedo), s_direct(t, &h, rng)));
            if (depth >= s->max_bounces)
                break;
            /* Cosine-weighted: a disk point lifted onto the hemisphere. */
            double dx, dy, r2 = s_disk(rng, &dx, &dy);
            dir = v3_norm(s_around(h.n, dx, dy, sqrt(fmax(0.0, 1 - r2))));
            diffuse = 1;
        } else if (m->kind == TSR_MAT_METAL) {
            if (depth >= s->max_bounces)
                break;
            struct tsr_vec3 refl =
                v3_sub(ray.dir, v3_scale(h.n, 2 * v3_dot(ray.dir, h.n)));
            if (m->roughness > 0) /* fuzz: a random point in a ball */
                refl = v3_add(refl, v3_scale(s_ball(rng), m->roughness));
            dir = v3_norm(refl);
            if (v3_dot(dir, h.n) <= 0)
                break; /* fuzzed below the surface: absorbed */
        } else {
            if (depth >= s->max_bounces)
                break;
            double eta = h.front ? 1.0 / m->ior : m->ior;
            double cos_i = fmin(1.0, -v3_dot(ray.dir, h.n));
            double sin2_t = eta * eta * (1 - cos_i * cos_i);
            double r0 = (1 - m->ior) / (1 + m->ior);
            r0 *= r0;
            double c = 1 - cos_i, c2 = c * c;
            double fresnel = r0 + (1 - r0) * c2 * c2 * c; /* Schlick */
            if (sin2_t >= 1 || s_rand(rng) < fresnel)
                dir = v3_sub(ray.dir, v3_scale(h.n, 2 * v3_dot(ray.dir, h.n)));
            else
                dir = v3_add(v3_scale(ray.dir, eta),
                             v3_scale(h.n, eta * cos_i - sqrt(1 - sin2_t)));
            dir = v3_norm(dir);
        }
        beta = v3_mul(beta, albedo);
        if (fmax(beta.x, fmax(beta.y, beta.z)) <= 0)
            break;
        ray.org = s_offset(h.p, h.n, dir);
        ray.dir = dir;
    }
    return v3_add(direct, s_clamp(indirect, s->clamp));
}

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
    double half_h = tan(tsr_track1_eval(&s->camera.fov, f) * S_PI / 360.0);
    double half_w = half_h * (double)s->width / (double)s->height;
    right = v3_norm(right);
    t->eye = eye;
    t->fwd = fwd;
    t->right = v3_scale(right, half_w);
    t->up = v3_scale(v3_cross(right, fwd), half_h);
    t->key = s_mix(s_mix(s->seed ^ 0x7E55E7A5ULL) ^ (uint64_t)(int64_t)frame);

    t->lights = calloc((size_t)s->nlights + 1, sizeof *t->lights);
    t->emitters = calloc((size_t)s->nobjects + 1, sizeof *t->emitters);
    t->sampled = calloc((size_t)s->nobjects + 1, 1);
    t->offset = calloc((size_t)s->nobjects + 1, sizeof *t->offset);
    int rc = t->lights && t->emitters && t->sampled && t->offset ? 0 : TSR_ENOMEM;
    if (!rc)
        rc = tsr_geom_build(s, f, &t->geom);
    if (rc) {
        tsr_trace_destroy(&t);
        return rc;
    }
    for (int i = 0; i < s->nlights; i++) {
        const struct tsr_light *l = &s->lights[i];
        struct s_light *o = &t->lights[t->nlights++];
        o->sun = l->kind == TSR_LIGHT_SUN;
        o->at = o->sun ? l->direction : tsr_track3_eval(&l->position, f);
        o->power = v3_scale(l->color, l->intensity);
    }
    for (int i = 0; i < s->nobjects; i++) {
        const struct tsr_object *o = &s->objects[i];
        const struct tsr_material *m = &s->materials[o->material];
        t->offset[i] = tsr_track3_eval(&o->translate, f);
        if (o->kind != TSR_OBJ_SPHERE || m->kind != TSR_MAT_EMISSIVE || m->strength <= 0)
            continue;
        struct s_emitter *e = &t->emitters[t->nemitters++];
        e->object = i;
        e->center = v3_add(o->center, t->offset[i]);
        e->radius = o->radius;
        e->radiance = v3_scale(m->color, m->strength);
        t->sampled[i] = 1;
    }
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
    free(t);
    *trace = NULL;
}

static float s_finite(double v)
{
    /* Never write NaN or Inf: the farm refuses such pieces. */
    if (!isfinite(v))
        return 0.0f;
    return (float)fmax(-1e30, fmin(1e30, v));
}

void tsr_trace_pixel(const struct tsr_trace *t, int x, int y, int samples, float rgba[4])
{
    const struct tsr_scene *s = t->scene;
    uint64_t pixel = s_mix(t->key ^ s_mix(((uint64_t)(uint32_t)y << 32) | (uint32_t)x));
    double sum[3] = {0, 0, 0};
    for (int i = 0; i < samples; i++) {
        struct s_rng rng = {s_mix(pixel + (uint64_t)i * 0xD1B54A32D192ED03ULL)};
        double sx = ((double)x + s_rand(&rng)) / s->width * 2 - 1;
        double sy = 1 - ((double)y + s_rand(&rng)) / s->height * 2;
        struct tsr_ray ray = {
            t->eye,
            v3_norm(v3_add(t->fwd, v3_add(v3_scale(t->right, sx), v3_scale(t->up, sy))))};
        struct tsr_vec3 l = s_radiance(t, ray, &rng);
        if (!isfinite(l.x) || !isfinite(l.y) || !isfinite(l.z))
            continue; /* a sample lost to arithmetic counts as black */
        sum[0] += l.x;
        sum[1] += l.y;
        sum[2] += l.z;
    }
    for (int k = 0; k < 3; k++)
        rgba[k] = s_finite(sum[k] / samples);
    rgba[3] = 1.0f;
}
