/*
 * scene_model.h: what a parsed scene holds, for the renderer.
 *
 * scene.h is the narrow face that the master uses (it needs only the
 * resolution); this header opens struct tsr_scene for tessera-render, which
 * reads everything. The parser (shared/scene.c) fills these structs and
 * guarantees what the comments promise: every index is in range, every
 * number finite and inside its documented limits, every track holds at
 * least one key with strictly increasing frames, every direction non-zero.
 * doc/scene-format.md is the user's description of the same model.
 *
 * All memory belongs to the scene and is freed by tsr_scene_destroy; the
 * renderer only borrows it.
 */
#ifndef TESSERA_SCENE_MODEL_H
#define TESSERA_SCENE_MODEL_H

#include <stdint.h>

#include "tessera/scene.h"

/* Limits past which a scene is refused with TSR_ELIMIT. */
#define TSR_SCENE_MAX_BYTES (64 * 1024 * 1024) /* largest scene file */
#define TSR_SCENE_MAX_SIDE 16384               /* widest or tallest frame */
#define TSR_SCENE_MAX_SAMPLES 4096             /* samples per pixel */
#define TSR_SCENE_MAX_BOUNCES 64               /* scattering events per path */
#define TSR_SCENE_MAX_OBJECTS 10000            /* objects of every kind */
#define TSR_SCENE_MAX_MATERIALS 1024           /* named materials */
#define TSR_SCENE_MAX_LIGHTS 1024              /* point and sun lights */
#define TSR_SCENE_MAX_KEYS 10000               /* keys in one animated value */
#define TSR_SCENE_MAX_VERTICES 1000000         /* mesh vertices, all meshes */
#define TSR_SCENE_MAX_TRIANGLES 1000000        /* mesh triangles, all meshes */
/* Largest magnitude of a coordinate or frame number; past it a value is
 * refused with TSR_ESCENE as out of range (keeps the arithmetic sane). */
#define TSR_SCENE_MAX_COORD 1e6

/* A point, direction or RGB colour. */
struct tsr_vec3 {
    double x; /* first component (red for colours) */
    double y; /* second component (green); up in world space */
    double z; /* third component (blue) */
};

/* One key of an animated vector. */
struct tsr_key3 {
    double frame;          /* frame at which the value holds exactly */
    struct tsr_vec3 value; /* the value at that frame */
};

/* An animated vector: linear between keys, held before the first key and
 * after the last. A constant is one key. */
struct tsr_track3 {
    struct tsr_key3 *keys; /* nkeys keys, frames strictly increasing */
    int nkeys;             /* 1..TSR_SCENE_MAX_KEYS */
};

/* One key of an animated number. */
struct tsr_key1 {
    double frame; /* frame at which the value holds exactly */
    double value; /* the value at that frame */
};

/* An animated number; same rules as struct tsr_track3. */
struct tsr_track1 {
    struct tsr_key1 *keys; /* nkeys keys, frames strictly increasing */
    int nkeys;             /* 1..TSR_SCENE_MAX_KEYS */
};

enum tsr_material_kind {
    TSR_MAT_DIFFUSE = 0,  /* Lambertian, optionally a checker of two colours */
    TSR_MAT_METAL = 1,    /* mirror with a fuzzy reflection lobe */
    TSR_MAT_GLASS = 2,    /* dielectric: Fresnel reflection and refraction */
    TSR_MAT_EMISSIVE = 3, /* emits light, reflects none */
};

struct tsr_material {
    char *name;                  /* key in the scene's "materials" object */
    enum tsr_material_kind kind; /* how it scatters light */
    struct tsr_vec3 color;       /* albedo in [0,1], or emitted colour (>= 0) */
    double roughness;            /* metal: 0 (mirror) .. 1 */
    double ior;                  /* glass: index of refraction, 1..3 */
    double strength;             /* emissive: multiplies color, >= 0 */
    int checker;                 /* diffuse: non-zero for a 3D checker */
    struct tsr_vec3 color2;      /* diffuse checker: the second colour */
    double checker_scale;        /* diffuse checker: cell size, > 0 */
};

enum tsr_object_kind {
    TSR_OBJ_SPHERE = 0, /* center, radius */
    TSR_OBJ_PLANE = 1,  /* infinite plane through point with normal */
    TSR_OBJ_BOX = 2,    /* axis-aligned box lo..hi */
    TSR_OBJ_MESH = 3,   /* triangles over a vertex list */
};

/* One object. Its geometry is given at rest and moved by translate,
 * evaluated at the frame being rendered. */
struct tsr_object {
    enum tsr_object_kind kind;   /* which of the fields below apply */
    char *name;                  /* optional, for messages; NULL if none */
    int material;                /* index into tsr_scene.materials */
    struct tsr_track3 translate; /* offset added to the geometry per frame */
    struct tsr_vec3 center;      /* sphere: center at rest */
    double radius;               /* sphere: radius, > 0 */
    struct tsr_vec3 point;       /* plane: a point on it at rest */
    struct tsr_vec3 normal;      /* plane: unit normal (the lit side) */
    struct tsr_vec3 lo;          /* box: smallest corner, lo < hi per axis */
    struct tsr_vec3 hi;          /* box: largest corner */
    struct tsr_vec3 *vertices;   /* mesh: nvertices points at rest */
    int nvertices;               /* mesh: >= 3 */
    int *triangles;              /* mesh: 3 * ntriangles indexes < nvertices */
    int ntriangles;              /* mesh: >= 1 */
};

enum tsr_light_kind {
    TSR_LIGHT_POINT = 0, /* radiates from a point, falls off with distance^2 */
    TSR_LIGHT_SUN = 1,   /* parallel light from a direction */
};

struct tsr_light {
    enum tsr_light_kind kind;   /* point or sun */
    struct tsr_track3 position; /* point: where it is (animated) */
    struct tsr_vec3 direction;  /* sun: unit vector towards the sun */
    struct tsr_vec3 color;      /* colour, >= 0 */
    double intensity;           /* multiplies color, >= 0 */
};

struct tsr_camera {
    struct tsr_track3 position; /* eye position */
    struct tsr_track3 look_at;  /* the point at the image centre */
    struct tsr_vec3 up;         /* unit vector; the image's up direction */
    struct tsr_track1 fov;      /* vertical field of view in degrees, 1..179 */
};

/* Radiance seen by rays that leave the scene, by the sine of the ray's
 * elevation: horizon at 0, zenith at +1, ground at -1, linear between. */
struct tsr_sky {
    struct tsr_vec3 zenith;  /* straight up */
    struct tsr_vec3 horizon; /* level */
    struct tsr_vec3 ground;  /* straight down */
};

struct tsr_scene {
    int width;                      /* frame width in pixels, 1..16384 */
    int height;                     /* frame height in pixels, 1..16384 */
    int samples;                    /* samples per pixel, 1..4096 */
    int max_bounces;                /* scattering events per path, 0..64 */
    double clamp;                   /* largest indirect sample value; 0: none */
    uint64_t seed;                  /* mixed into every pixel's random stream */
    int frame_start;                /* frame range hint: first frame */
    int frame_end;                  /* frame range hint: last frame, >= start */
    struct tsr_camera camera;       /* the one camera */
    struct tsr_sky sky;             /* background radiance */
    struct tsr_material *materials; /* nmaterials materials, in file order */
    int nmaterials;                 /* 0..TSR_SCENE_MAX_MATERIALS */
    struct tsr_object *objects;     /* nobjects objects, in file order */
    int nobjects;                   /* 0..TSR_SCENE_MAX_OBJECTS */
    struct tsr_light *lights;       /* nlights point and sun lights */
    int nlights;                    /* 0..TSR_SCENE_MAX_LIGHTS */
};

/* The value of a track at a frame (see struct tsr_track3). */
struct tsr_vec3 tsr_track3_eval(const struct tsr_track3 *track, double frame);
double tsr_track1_eval(const struct tsr_track1 *track, double frame);

#endif
