/*
 * scene.c: the scene parser of scene.h, filling the model of scene_model.h.
 *
 * cJSON does the parsing; this file checks the document against the scene
 * format (doc/scene-format.md) and builds the model. Every error names the
 * offending value two ways: "NAME:LINE:COL: objects[3].radius: message".
 * cJSON keeps no source positions, so for errors found after parsing we walk
 * the text (already known to be valid JSON) along the value's path of
 * member and element indexes, skipping over strings and brackets; that walk
 * recognises nothing cJSON did not already accept. A syntax error takes its
 * position from cJSON's parse end pointer.
 *
 * Unknown keys are refused, so that a typo ("radus") is an error rather than
 * a silently default value; keys that begin with '_' are ignored everywhere
 * and serve as comments. Duplicate keys are refused.
 */
#include "tessera/scene.h"
#include "tessera/error.h"
#include "tessera/scene_model.h"
#include "tessera/util.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_MAX_DEPTH 16

/* One step of the path from the document's root to the value in hand. */
struct s_step {
    const char *key; /* member name (borrowed from cJSON), or NULL for an element */
    int index;       /* element index; for members, the member's position */
};

/* Parsing state shared by the checkers; the first error wins. */
struct s_ctx {
    const char *text;                /* the NUL-terminated document */
    size_t len;                      /* its length without the NUL */
    const char *name;                /* the name used in messages */
    char *err;                       /* the caller's message buffer */
    size_t errlen;                   /* its size */
    struct s_step path[S_MAX_DEPTH]; /* root .. current value */
    int depth;                       /* steps in path */
};

/* --- locating a value in the text -------------------------------------- */

static size_t s_skip_ws(const struct s_ctx *c, size_t i)
{
    /* cJSON treats every byte <= 32 as white space; so must we. */
    while (i < c->len && (unsigned char)c->text[i] <= 32)
        i++;
    return i;
}

/* At a '"': returns the index just past the closing quote. */
static size_t s_skip_string(const struct s_ctx *c, size_t i)
{
    for (i++; i < c->len; i++) {
        if (c->text[i] == '\\')
            i++;
        else if (c->text[i] == '"')
            return i + 1;
    }
    return c->len;
}

/* At the first byte of a value: returns the index just past it. */
static size_t s_skip_value(const struct s_ctx *c, size_t i)
{
    if (i >= c->len)
        return c->len;
    if (c->text[i] == '"')
        return s_skip_string(c, i);
    if (c->text[i] == '{' || c->text[i] == '[') {
        int depth = 0;
        while (i < c->len) {
            char ch = c->text[i];
            if (ch == '"') {
                i = s_skip_string(c, i);
                continue;
            }
            if (ch == '{' || ch == '[')
                depth++;
            else if ((ch == '}' || ch == ']') && --depth == 0)
                return i + 1;
            i++;
        }
        return c->len;
    }
    while (i < c->len && !strchr(",]} \t\r\n", c->text[i]))
        i++;
    return i;
}

/* Byte offset of the value at c->path[0 .. depth), or -1 if lost. */
static long s_locate(const struct s_ctx *c, int depth)
{
    size_t i = 0;
    if (depth > S_MAX_DEPTH)
        return -1;
    if (c->len >= 3 && memcmp(c->text, "\xEF\xBB\xBF", 3) == 0)
        i = 3; /* cJSON skips a UTF-8 byte order mark */
    i = s_skip_ws(c, i);
    for (int d = 0; d < depth; d++) {
        if (i >= c->len || (c->text[i] != '{' && c->text[i] != '['))
            return -1;
        int is_obj = c->text[i] == '{';
        i++;
        for (int n = 0;; n++) {
            i = s_skip_ws(c, i);
            if (is_obj) {
                if (i >= c->len || c->text[i] != '"')
                    return -1;
                i = s_skip_ws(c, s_skip_string(c, i));
                if (i >= c->len || c->text[i] != ':')
                    return -1;
                i = s_skip_ws(c, i + 1);
            }
            if (n == c->path[d].index)
                break;
            i = s_skip_ws(c, s_skip_value(c, i));
            if (i >= c->len || c->text[i] != ',')
                return -1;
            i++;
        }
    }
    return i < c->len ? (long)i : -1;
}

static void s_line_col(const char *text, size_t off, int *line, int *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off; i++) {
        if (text[i] == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

/* Writes "NAME:L:C: PATH: message" for the value at the current path and
 * returns code (TSR_ESCENE or TSR_ELIMIT). */
static int s_fail(struct s_ctx *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int s_fail(struct s_ctx *c, int code, const char *fmt, ...)
{
    char where[64] = "";
    long off = s_locate(c, c->depth);
    if (off >= 0) {
        int line, col;
        s_line_col(c->text, (size_t)off, &line, &col);
        snprintf(where, sizeof where, ":%d:%d", line, col);
    }
    char path[512];
    size_t n = 0;
    path[0] = '\0';
    for (int d = 0; d < c->depth && d < S_MAX_DEPTH && n < sizeof path; d++) {
        int w;
        if (c->path[d].key)
            w = snprintf(path + n, sizeof path - n, "%s%s", d ? "." : "", c->path[d].key);
        else
            w = snprintf(path + n, sizeof path - n, "[%d]", c->path[d].index);
        if (w < 0)
            break;
        n += (size_t)w;
    }
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->err && c->errlen)
        snprintf(c->err, c->errlen, "%s%s: %s%s%s", c->name, where, c->depth ? path : "",
                 c->depth ? ": " : "", msg);
    return code;
}

/* --- walking the document ---------------------------------------------- */

static void s_push(struct s_ctx *c, const char *key, int index)
{
    /* The format nests at most 6 levels; deeper means a bug here. */
    if (c->depth < S_MAX_DEPTH) {
        c->path[c->depth].key = key;
        c->path[c->depth].index = index;
    }
    c->depth++;
}

static void s_pop(struct s_ctx *c)
{
    c->depth--;
}

/* Finds member key of obj and enters it (push); NULL when absent. */
static cJSON *s_enter(struct s_ctx *c, const cJSON *obj, const char *key)
{
    int i = 0;
    for (cJSON *it = obj->child; it; it = it->next, i++) {
        if (it->string && strcmp(it->string, key) == 0) {
            s_push(c, it->string, i);
            return it;
        }
    }
    return NULL;
}

/* Refuses members of obj not in allowed (NULL-terminated) and duplicates;
 * members whose name begins with '_' are comments and pass. */
static int s_check_keys(struct s_ctx *c, const cJSON *obj, const char *const *allowed)
{
    int i = 0;
    for (cJSON *it = obj->child; it; it = it->next, i++) {
        if (it->string[0] == '_')
            continue;
        int known = 0;
        for (const char *const *a = allowed; *a && !known; a++)
            known = strcmp(*a, it->string) == 0;
        int dup = 0;
        for (cJSON *p = obj->child; p != it && !dup; p = p->next)
            dup = strcmp(p->string, it->string) == 0;
        if (!known || dup) {
            s_push(c, it->string, i);
            int rc = s_fail(c, TSR_ESCENE, dup ? "duplicate key" : "unknown key");
            s_pop(c);
            return rc;
        }
    }
    return 0;
}

static int s_need_object(struct s_ctx *c, const cJSON *item)
{
    return cJSON_IsObject(item) ? 0 : s_fail(c, TSR_ESCENE, "expected an object");
}

static int s_number(struct s_ctx *c, const cJSON *item, double lo, double hi, double *out)
{
    if (!cJSON_IsNumber(item))
        return s_fail(c, TSR_ESCENE, "expected a number");
    double v = item->valuedouble;
    if (!isfinite(v) || v < lo || v > hi)
        return s_fail(c, TSR_ESCENE, "expected a number from %g to %g", lo, hi);
    *out = v;
    return 0;
}

/* An integer in lo..hi; past hi it is TSR_ELIMIT when hi_is_limit. */
static int s_int(struct s_ctx *c, const cJSON *item, double lo, double hi,
                 int hi_is_limit, double *out)
{
    if (!cJSON_IsNumber(item) || !isfinite(item->valuedouble) ||
        item->valuedouble != floor(item->valuedouble))
        return s_fail(c, TSR_ESCENE, "expected an integer");
    double v = item->valuedouble;
    if (v > hi && hi_is_limit)
        return s_fail(c, TSR_ELIMIT, "%.0f is past the limit of %.0f", v, hi);
    if (v < lo || v > hi)
        return s_fail(c, TSR_ESCENE, "expected an integer from %.0f to %.0f", lo, hi);
    *out = v;
    return 0;
}

static int s_vec3(struct s_ctx *c, const cJSON *item, double lo, double hi,
                  struct tsr_vec3 *out)
{
    if (!cJSON_IsArray(item) || cJSON_GetArraySize(item) != 3)
        return s_fail(c, TSR_ESCENE, "expected an array of 3 numbers");
    double v[3];
    int i = 0;
    for (cJSON *it = item->child; it; it = it->next, i++) {
        s_push(c, NULL, i);
        int rc = s_number(c, it, lo, hi, &v[i]);
        s_pop(c);
        if (rc)
            return rc;
    }
    out->x = v[0];
    out->y = v[1];
    out->z = v[2];
    return 0;
}

static int s_nonzero(struct s_ctx *c, struct tsr_vec3 *v)
{
    double n = sqrt(v->x * v->x + v->y * v->y + v->z * v->z);
    if (!(n > 1e-9))
        return s_fail(c, TSR_ESCENE, "expected a non-zero direction");
    v->x /= n;
    v->y /= n;
    v->z /= n;
    return 0;
}

/* Parses the keys of an animated value: [{"frame": F, "value": V}, ...].
 * dim is 3 (vectors, into k3) or 1 (numbers, into k1). */
static int s_keys(struct s_ctx *c, const cJSON *item, int dim, double lo, double hi,
                  struct tsr_key3 **k3, struct tsr_key1 **k1, int *nkeys)
{
    int n = cJSON_GetArraySize(item);
    if (n > TSR_SCENE_MAX_KEYS)
        return s_fail(c, TSR_ELIMIT, "%d keys, past the limit of %d", n,
                      TSR_SCENE_MAX_KEYS);
    void *keys = calloc((size_t)n, dim == 3 ? sizeof **k3 : sizeof **k1);
    if (!keys)
        return TSR_ENOMEM;
    static const char *const allowed[] = {"frame", "value", NULL};
    int i = 0, rc = 0;
    double prev = 0;
    for (cJSON *it = item->child; it && !rc; it = it->next, i++) {
        s_push(c, NULL, i);
        rc = s_need_object(c, it);
        if (!rc)
            rc = s_check_keys(c, it, allowed);
        double frame = 0;
        cJSON *f = rc ? NULL : s_enter(c, it, "frame");
        if (!rc && !f)
            rc = s_fail(c, TSR_ESCENE, "missing 'frame'");
        if (f) {
            rc = s_number(c, f, -TSR_SCENE_MAX_COORD, TSR_SCENE_MAX_COORD, &frame);
            if (!rc && i > 0 && !(frame > prev))
                rc = s_fail(c, TSR_ESCENE, "key frames must increase");
            s_pop(c);
        }
        cJSON *v = rc ? NULL : s_enter(c, it, "value");
        if (!rc && !v)
            rc = s_fail(c, TSR_ESCENE, "missing 'value'");
        if (v) {
            if (dim == 3) {
                struct tsr_key3 *k = (struct tsr_key3 *)keys + i;
                k->frame = frame;
                rc = s_vec3(c, v, lo, hi, &k->value);
            } else {
                struct tsr_key1 *k = (struct tsr_key1 *)keys + i;
                k->frame = frame;
                rc = s_number(c, v, lo, hi, &k->value);
            }
            s_pop(c);
        }
        prev = frame;
        s_pop(c);
    }
    if (rc) {
        free(keys);
        return rc;
    }
    if (dim == 3)
        *k3 = keys;
    else
        *k1 = keys;
    *nkeys = n;
    return 0;
}

/* True when item is a non-empty array of objects (an animated value). */
static int s_is_keyed(const cJSON *item)
{
    return cJSON_IsArray(item) && item->child && cJSON_IsObject(item->child);
}

static int s_track3(struct s_ctx *c, const cJSON *item, double lo, double hi,
                    struct tsr_track3 *out)
{
    if (s_is_keyed(item))
        return s_keys(c, item, 3, lo, hi, &out->keys, NULL, &out->nkeys);
    if (!cJSON_IsArray(item))
        return s_fail(
            c, TSR_ESCENE,
            "expected [x, y, z] or keys [{\"frame\": F, \"value\": [x, y, z]}, ...]");
    struct tsr_vec3 v;
    int rc = s_vec3(c, item, lo, hi, &v);
    if (rc)
        return rc;
    out->keys = calloc(1, sizeof *out->keys);
    if (!out->keys)
        return TSR_ENOMEM;
    out->keys[0].value = v;
    out->nkeys = 1;
    return 0;
}

static int s_track1(struct s_ctx *c, const cJSON *item, double lo, double hi,
                    struct tsr_track1 *out)
{
    if (s_is_keyed(item))
        return s_keys(c, item, 1, lo, hi, NULL, &out->keys, &out->nkeys);
    double v;
    if (!cJSON_IsNumber(item))
        return s_fail(c, TSR_ESCENE,
                      "expected a number or keys [{\"frame\": F, \"value\": N}, ...]");
    int rc = s_number(c, item, lo, hi, &v);
    if (rc)
        return rc;
    out->keys = calloc(1, sizeof *out->keys);
    if (!out->keys)
        return TSR_ENOMEM;
    out->keys[0].value = v;
    out->nkeys = 1;
    return 0;
}

/* --- member getters: optional unless `need`; absent leaves *out alone --- */

static int s_missing(struct s_ctx *c, const char *key)
{
    return s_fail(c, TSR_ESCENE, "missing '%s'", key);
}

static int s_get_number(struct s_ctx *c, const cJSON *obj, const char *key, int need,
                        double lo, double hi, double *out)
{
    cJSON *it = s_enter(c, obj, key);
    if (!it)
        return need ? s_missing(c, key) : 0;
    int rc = s_number(c, it, lo, hi, out);
    s_pop(c);
    return rc;
}

static int s_get_int(struct s_ctx *c, const cJSON *obj, const char *key, double lo,
                     double hi, int hi_is_limit, int *out)
{
    cJSON *it = s_enter(c, obj, key);
    if (!it)
        return 0;
    double v;
    int rc = s_int(c, it, lo, hi, hi_is_limit, &v);
    if (!rc)
        *out = (int)v;
    s_pop(c);
    return rc;
}

static int s_get_vec3(struct s_ctx *c, const cJSON *obj, const char *key, int need,
                      double lo, double hi, struct tsr_vec3 *out)
{
    cJSON *it = s_enter(c, obj, key);
    if (!it)
        return need ? s_missing(c, key) : 0;
    int rc = s_vec3(c, it, lo, hi, out);
    s_pop(c);
    return rc;
}

static int s_get_dir(struct s_ctx *c, const cJSON *obj, const char *key, int need,
                     struct tsr_vec3 *out)
{
    cJSON *it = s_enter(c, obj, key);
    if (!it)
        return need ? s_missing(c, key) : 0;
    int rc = s_vec3(c, it, -TSR_SCENE_MAX_COORD, TSR_SCENE_MAX_COORD, out);
    if (!rc)
        rc = s_nonzero(c, out);
    s_pop(c);
    return rc;
}

/* A track; when absent and not needed it becomes the constant def. */
static int s_get_track3(struct s_ctx *c, const cJSON *obj, const char *key, int need,
                        struct tsr_vec3 def, struct tsr_track3 *out)
{
    cJSON *it = s_enter(c, obj, key);
    if (!it) {
        if (need)
            return s_missing(c, key);
        out->keys = calloc(1, sizeof *out->keys);
        if (!out->keys)
            return TSR_ENOMEM;
        out->keys[0].value = def;
        out->nkeys = 1;
        return 0;
    }
    int rc = s_track3(c, it, -TSR_SCENE_MAX_COORD, TSR_SCENE_MAX_COORD, out);
    s_pop(c);
    return rc;
}

/* A string member, borrowed from the document. */
static int s_get_string(struct s_ctx *c, const cJSON *obj, const char *key, int need,
                        const char **out)
{
    cJSON *it = s_enter(c, obj, key);
    if (!it)
        return need ? s_missing(c, key) : 0;
    int rc = 0;
    if (!cJSON_IsString(it) || !it->valuestring[0])
        rc = s_fail(c, TSR_ESCENE, "expected a non-empty string");
    else if (strlen(it->valuestring) > 255)
        rc = s_fail(c, TSR_ELIMIT, "longer than 255 bytes");
    else
        *out = it->valuestring;
    s_pop(c);
    return rc;
}

/* Enters an array member; returns its size through *n. */
static cJSON *s_enter_array(struct s_ctx *c, const cJSON *obj, const char *key, int limit,
                            const char *what, int *n, int *rc)
{
    cJSON *it = s_enter(c, obj, key);
    *rc = 0;
    if (!it)
        return NULL;
    if (!cJSON_IsArray(it)) {
        *rc = s_fail(c, TSR_ESCENE, "expected an array");
    } else {
        *n = cJSON_GetArraySize(it);
        if (*n > limit)
            *rc = s_fail(c, TSR_ELIMIT, "%d %s, past the limit of %d", *n, what, limit);
    }
    if (*rc) {
        s_pop(c);
        return NULL;
    }
    return it;
}

/* --- the parts of a scene ---------------------------------------------- */

static char *s_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

static int s_material(struct s_ctx *c, const cJSON *obj, struct tsr_material *m)
{
    static const char *const allowed[] = {"type",     "color",   "roughness", "ior",
                                          "strength", "checker", NULL};
    int rc = s_need_object(c, obj);
    if (!rc)
        rc = s_check_keys(c, obj, allowed);
    const char *type = NULL;
    if (!rc)
        rc = s_get_string(c, obj, "type", 1, &type);
    if (rc)
        return rc;
    static const char *const kinds[] = {"diffuse", "metal", "glass", "emissive"};
    int kind = -1;
    for (int i = 0; i < 4; i++)
        if (strcmp(type, kinds[i]) == 0)
            kind = i;
    if (kind < 0) {
        s_enter(c, obj, "type");
        rc = s_fail(c, TSR_ESCENE,
                    "unknown material type '%s' (diffuse, metal, glass, emissive)", type);
        s_pop(c);
        return rc;
    }
    m->kind = (enum tsr_material_kind)kind;
    double cmax = 1.0;
    m->color = (struct tsr_vec3){0.8, 0.8, 0.8};
    if (m->kind == TSR_MAT_GLASS)
        m->color = (struct tsr_vec3){1, 1, 1};
    if (m->kind == TSR_MAT_EMISSIVE) {
        m->color = (struct tsr_vec3){1, 1, 1};
        cmax = TSR_SCENE_MAX_COORD;
    }
    m->ior = 1.5;
    m->strength = 1.0;
    rc = s_get_vec3(c, obj, "color", 0, 0, cmax, &m->color);
    /* A field meant for another kind is an error, not a silent no-op. */
    const char *only[] = {"roughness", "ior", "strength", "checker"};
    const enum tsr_material_kind owner[] = {TSR_MAT_METAL, TSR_MAT_GLASS,
                                            TSR_MAT_EMISSIVE, TSR_MAT_DIFFUSE};
    for (int i = 0; i < 4 && !rc; i++) {
        if (owner[i] != m->kind && s_enter(c, obj, only[i])) {
            rc = s_fail(c, TSR_ESCENE, "not a field of a %s material", type);
            s_pop(c);
        }
    }
    if (!rc)
        rc = s_get_number(c, obj, "roughness", 0, 0, 1, &m->roughness);
    if (!rc)
        rc = s_get_number(c, obj, "ior", 0, 1, 3, &m->ior);
    if (!rc)
        rc = s_get_number(c, obj, "strength", 0, 0, TSR_SCENE_MAX_COORD, &m->strength);
    cJSON *ck = rc ? NULL : s_enter(c, obj, "checker");
    if (ck) {
        static const char *const ck_allowed[] = {"color", "scale", NULL};
        m->checker = 1;
        m->color2 = (struct tsr_vec3){0.2, 0.2, 0.2};
        m->checker_scale = 1.0;
        rc = s_need_object(c, ck);
        if (!rc)
            rc = s_check_keys(c, ck, ck_allowed);
        if (!rc)
            rc = s_get_vec3(c, ck, "color", 0, 0, 1, &m->color2);
        if (!rc)
            rc = s_get_number(c, ck, "scale", 0, 1e-6, TSR_SCENE_MAX_COORD,
                              &m->checker_scale);
        s_pop(c);
    }
    return rc;
}

static int s_materials(struct s_ctx *c, const cJSON *root, struct tsr_scene *s)
{
    cJSON *mats = s_enter(c, root, "materials");
    if (!mats)
        return 0;
    int rc = s_need_object(c, mats);
    int n = rc ? 0 : cJSON_GetArraySize(mats);
    if (!rc && n > TSR_SCENE_MAX_MATERIALS)
        rc = s_fail(c, TSR_ELIMIT, "%d materials, past the limit of %d", n,
                    TSR_SCENE_MAX_MATERIALS);
    if (!rc) {
        s->materials = calloc((size_t)n + 1, sizeof *s->materials);
        if (!s->materials)
            rc = TSR_ENOMEM;
    }
    int i = 0;
    for (cJSON *it = rc ? NULL : mats->child; it && !rc; it = it->next, i++) {
        if (it->string[0] == '_')
            continue;
        s_push(c, it->string, i);
        for (int j = 0; j < s->nmaterials && !rc; j++)
            if (strcmp(s->materials[j].name, it->string) == 0)
                rc = s_fail(c, TSR_ESCENE, "duplicate key");
        struct tsr_material *m = &s->materials[s->nmaterials];
        if (!rc)
            rc = s_material(c, it, m);
        if (!rc) {
            m->name = s_strdup(it->string);
            rc = m->name ? 0 : TSR_ENOMEM;
        }
        if (!rc)
            s->nmaterials++;
        s_pop(c);
    }
    s_pop(c);
    return rc;
}

static int s_mesh(struct s_ctx *c, const cJSON *obj, struct tsr_object *o, long *nvert,
                  long *ntri)
{
    int nv = 0, nt = 0, rc;
    cJSON *va =
        s_enter_array(c, obj, "vertices", TSR_SCENE_MAX_VERTICES, "vertices", &nv, &rc);
    if (!va)
        return rc ? rc : s_missing(c, "vertices");
    *nvert += nv;
    if (*nvert > TSR_SCENE_MAX_VERTICES)
        rc = s_fail(c, TSR_ELIMIT, "more than %d vertices in all meshes",
                    TSR_SCENE_MAX_VERTICES);
    else if (nv < 3)
        rc = s_fail(c, TSR_ESCENE, "a mesh needs at least 3 vertices");
    if (!rc) {
        o->vertices = calloc((size_t)nv, sizeof *o->vertices);
        rc = o->vertices ? 0 : TSR_ENOMEM;
    }
    int i = 0;
    for (cJSON *it = rc ? NULL : va->child; it && !rc; it = it->next, i++) {
        s_push(c, NULL, i);
        rc = s_vec3(c, it, -TSR_SCENE_MAX_COORD, TSR_SCENE_MAX_COORD, &o->vertices[i]);
        s_pop(c);
    }
    o->nvertices = rc ? 0 : nv;
    s_pop(c);
    if (rc)
        return rc;

    cJSON *ta = s_enter_array(c, obj, "triangles", TSR_SCENE_MAX_TRIANGLES, "triangles",
                              &nt, &rc);
    if (!ta)
        return rc ? rc : s_missing(c, "triangles");
    *ntri += nt;
    if (*ntri > TSR_SCENE_MAX_TRIANGLES)
        rc = s_fail(c, TSR_ELIMIT, "more than %d triangles in all meshes",
                    TSR_SCENE_MAX_TRIANGLES);
    else if (nt < 1)
        rc = s_fail(c, TSR_ESCENE, "a mesh needs at least 1 triangle");
    if (!rc) {
        o->triangles = calloc((size_t)nt * 3, sizeof *o->triangles);
        rc = o->triangles ? 0 : TSR_ENOMEM;
    }
    i = 0;
    for (cJSON *it = rc ? NULL : ta->child; it && !rc; it = it->next, i++) {
        s_push(c, NULL, i);
        if (!cJSON_IsArray(it) || cJSON_GetArraySize(it) != 3)
            rc = s_fail(c, TSR_ESCENE, "expected an array of 3 vertex indexes");
        int j = 0;
        for (cJSON *v = rc ? NULL : it->child; v && !rc; v = v->next, j++) {
            double d = 0;
            s_push(c, NULL, j);
            rc = s_int(c, v, 0, nv - 1, 0, &d);
            o->triangles[i * 3 + j] = (int)d;
            s_pop(c);
        }
        s_pop(c);
    }
    o->ntriangles = rc ? 0 : nt;
    s_pop(c);
    return rc;
}

static int s_object(struct s_ctx *c, const cJSON *obj, const struct tsr_scene *s,
                    struct tsr_object *o, long *nvert, long *ntri)
{
    static const char *const allowed[] = {
        "type",   "name", "material", "translate", "center",    "radius", "point",
        "normal", "min",  "max",      "vertices",  "triangles", NULL};
    static const char *const kinds[] = {"sphere", "plane", "box", "mesh"};
    /* Which geometry fields belong to which kind (index by kind). */
    static const char *const fields[4][2] = {{"center", "radius"},
                                             {"point", "normal"},
                                             {"min", "max"},
                                             {"vertices", "triangles"}};
    const double M = TSR_SCENE_MAX_COORD;
    int rc = s_need_object(c, obj);
    if (!rc)
        rc = s_check_keys(c, obj, allowed);
    const char *type = NULL, *mat = NULL, *name = NULL;
    if (!rc)
        rc = s_get_string(c, obj, "type", 1, &type);
    if (rc)
        return rc;
    int kind = -1;
    for (int i = 0; i < 4; i++)
        if (strcmp(type, kinds[i]) == 0)
            kind = i;
    if (kind < 0) {
        s_enter(c, obj, "type");
        rc = s_fail(c, TSR_ESCENE, "unknown object type '%s' (sphere, plane, box, mesh)",
                    type);
        s_pop(c);
        return rc;
    }
    o->kind = (enum tsr_object_kind)kind;
    for (int k = 0; k < 4 && !rc; k++) {
        for (int f = 0; f < 2 && !rc && k != kind; f++) {
            if (s_enter(c, obj, fields[k][f])) {
                rc = s_fail(c, TSR_ESCENE, "not a field of a %s", type);
                s_pop(c);
            }
        }
    }
    if (!rc)
        rc = s_get_string(c, obj, "name", 0, &name);
    if (!rc && name) {
        o->name = s_strdup(name);
        rc = o->name ? 0 : TSR_ENOMEM;
    }
    if (!rc)
        rc = s_get_string(c, obj, "material", 1, &mat);
    if (!rc) {
        o->material = -1;
        for (int i = 0; i < s->nmaterials; i++)
            if (strcmp(s->materials[i].name, mat) == 0)
                o->material = i;
        if (o->material < 0) {
            s_enter(c, obj, "material");
            rc = s_fail(c, TSR_ESCENE, "no material named '%s'", mat);
            s_pop(c);
        }
    }
    if (!rc)
        rc = s_get_track3(c, obj, "translate", 0, (struct tsr_vec3){0, 0, 0},
                          &o->translate);
    if (rc)
        return rc;
    switch (o->kind) {
    case TSR_OBJ_SPHERE:
        rc = s_get_vec3(c, obj, "center", 0, -M, M, &o->center);
        if (!rc)
            rc = s_get_number(c, obj, "radius", 1, 1e-6, M, &o->radius);
        break;
    case TSR_OBJ_PLANE:
        o->normal = (struct tsr_vec3){0, 1, 0};
        rc = s_get_vec3(c, obj, "point", 0, -M, M, &o->point);
        if (!rc)
            rc = s_get_dir(c, obj, "normal", 0, &o->normal);
        break;
    case TSR_OBJ_BOX:
        rc = s_get_vec3(c, obj, "min", 1, -M, M, &o->lo);
        if (!rc)
            rc = s_get_vec3(c, obj, "max", 1, -M, M, &o->hi);
        if (!rc && !(o->lo.x < o->hi.x && o->lo.y < o->hi.y && o->lo.z < o->hi.z)) {
            s_enter(c, obj, "max");
            rc = s_fail(c, TSR_ESCENE, "each component must be larger than in 'min'");
            s_pop(c);
        }
        break;
    case TSR_OBJ_MESH:
        rc = s_mesh(c, obj, o, nvert, ntri);
        break;
    }
    return rc;
}

static int s_objects(struct s_ctx *c, const cJSON *root, struct tsr_scene *s)
{
    int n = 0, rc;
    cJSON *arr =
        s_enter_array(c, root, "objects", TSR_SCENE_MAX_OBJECTS, "objects", &n, &rc);
    if (!arr)
        return rc ? rc : s_missing(c, "objects");
    s->objects = calloc((size_t)n + 1, sizeof *s->objects);
    if (!s->objects)
        rc = TSR_ENOMEM;
    long nvert = 0, ntri = 0;
    int i = 0;
    for (cJSON *it = rc ? NULL : arr->child; it && !rc; it = it->next, i++) {
        s_push(c, NULL, i);
        s->nobjects++; /* counted first so that destroy frees a half-built one */
        rc = s_object(c, it, s, &s->objects[i], &nvert, &ntri);
        s_pop(c);
    }
    s_pop(c);
    return rc;
}

static int s_light(struct s_ctx *c, const cJSON *obj, struct tsr_light *l)
{
    static const char *const allowed[] = {"type",  "position",  "direction",
                                          "color", "intensity", NULL};
    int rc = s_need_object(c, obj);
    if (!rc)
        rc = s_check_keys(c, obj, allowed);
    const char *type = NULL;
    if (!rc)
        rc = s_get_string(c, obj, "type", 1, &type);
    if (rc)
        return rc;
    l->color = (struct tsr_vec3){1, 1, 1};
    l->intensity = 1.0;
    const char *wrong = NULL;
    if (strcmp(type, "point") == 0) {
        l->kind = TSR_LIGHT_POINT;
        wrong = "direction";
        rc =
            s_get_track3(c, obj, "position", 1, (struct tsr_vec3){0, 0, 0}, &l->position);
    } else if (strcmp(type, "sun") == 0) {
        l->kind = TSR_LIGHT_SUN;
        wrong = "position";
        rc = s_get_dir(c, obj, "direction", 1, &l->direction);
    } else {
        s_enter(c, obj, "type");
        rc = s_fail(c, TSR_ESCENE, "unknown light type '%s' (point, sun)", type);
        s_pop(c);
        return rc;
    }
    if (!rc && s_enter(c, obj, wrong)) {
        rc = s_fail(c, TSR_ESCENE, "not a field of a %s light", type);
        s_pop(c);
    }
    if (!rc)
        rc = s_get_vec3(c, obj, "color", 0, 0, TSR_SCENE_MAX_COORD, &l->color);
    if (!rc)
        rc = s_get_number(c, obj, "intensity", 0, 0, TSR_SCENE_MAX_COORD, &l->intensity);
    return rc;
}

static int s_lights(struct s_ctx *c, const cJSON *root, struct tsr_scene *s)
{
    int n = 0, rc;
    cJSON *arr =
        s_enter_array(c, root, "lights", TSR_SCENE_MAX_LIGHTS, "lights", &n, &rc);
    if (!arr)
        return rc;
    s->lights = calloc((size_t)n + 1, sizeof *s->lights);
    if (!s->lights)
        rc = TSR_ENOMEM;
    int i = 0;
    for (cJSON *it = rc ? NULL : arr->child; it && !rc; it = it->next, i++) {
        s_push(c, NULL, i);
        s->nlights++;
        rc = s_light(c, it, &s->lights[i]);
        s_pop(c);
    }
    s_pop(c);
    return rc;
}

static int s_camera(struct s_ctx *c, const cJSON *root, struct tsr_scene *s)
{
    static const char *const allowed[] = {"position", "look_at", "up", "fov", NULL};
    struct tsr_camera *cam = &s->camera;
    cJSON *obj = s_enter(c, root, "camera");
    if (!obj)
        return s_missing(c, "camera");
    int rc = s_need_object(c, obj);
    if (!rc)
        rc = s_check_keys(c, obj, allowed);
    if (!rc)
        rc = s_get_track3(c, obj, "position", 1, (struct tsr_vec3){0, 0, 0},
                          &cam->position);
    if (!rc)
        rc =
            s_get_track3(c, obj, "look_at", 0, (struct tsr_vec3){0, 0, 0}, &cam->look_at);
    cam->up = (struct tsr_vec3){0, 1, 0};
    if (!rc)
        rc = s_get_dir(c, obj, "up", 0, &cam->up);
    cJSON *fov = rc ? NULL : s_enter(c, obj, "fov");
    if (fov) {
        rc = s_track1(c, fov, 1, 179, &cam->fov);
        s_pop(c);
    } else if (!rc) {
        cam->fov.keys = calloc(1, sizeof *cam->fov.keys);
        rc = cam->fov.keys ? 0 : TSR_ENOMEM;
        if (!rc) {
            cam->fov.keys[0].value = 40;
            cam->fov.nkeys = 1;
        }
    }
    s_pop(c);
    return rc;
}

static int s_background(struct s_ctx *c, const cJSON *root, struct tsr_scene *s)
{
    static const char *const allowed[] = {"zenith", "horizon", "ground", NULL};
    const double M = TSR_SCENE_MAX_COORD;
    cJSON *bg = s_enter(c, root, "background");
    if (!bg)
        return 0;
    int rc;
    if (cJSON_IsArray(bg)) {
        rc = s_vec3(c, bg, 0, M, &s->sky.zenith);
        s->sky.horizon = s->sky.ground = s->sky.zenith;
    } else if (cJSON_IsObject(bg)) {
        rc = s_check_keys(c, bg, allowed);
        if (!rc)
            rc = s_get_vec3(c, bg, "horizon", 1, 0, M, &s->sky.horizon);
        s->sky.zenith = s->sky.ground = s->sky.horizon;
        if (!rc)
            rc = s_get_vec3(c, bg, "zenith", 0, 0, M, &s->sky.zenith);
        if (!rc)
            rc = s_get_vec3(c, bg, "ground", 0, 0, M, &s->sky.ground);
    } else {
        rc = s_fail(
            c, TSR_ESCENE,
            "expected [r, g, b] or {\"zenith\": .., \"horizon\": .., \"ground\": ..}");
    }
    s_pop(c);
    return rc;
}

/* Reads a member that is an array of two integers (resolution, frames). */
static int s_pair(struct s_ctx *c, const cJSON *root, const char *key, int need,
                  double lo, double hi, int hi_is_limit, int out[2])
{
    cJSON *it = s_enter(c, root, key);
    if (!it)
        return need ? s_missing(c, key) : 0;
    int rc = 0;
    if (!cJSON_IsArray(it) || cJSON_GetArraySize(it) != 2)
        rc = s_fail(c, TSR_ESCENE, "expected an array of 2 integers");
    int i = 0;
    for (cJSON *e = rc ? NULL : it->child; e && !rc; e = e->next, i++) {
        double v = 0;
        s_push(c, NULL, i);
        rc = s_int(c, e, lo, hi, hi_is_limit, &v);
        out[i] = (int)v;
        s_pop(c);
    }
    s_pop(c);
    return rc;
}

static int s_root(struct s_ctx *c, const cJSON *root, struct tsr_scene *s)
{
    static const char *const allowed[] = {
        "version", "resolution", "samples",    "max_bounces", "clamp",
        "seed",    "frames",     "background", "camera",      "materials",
        "objects", "lights",     NULL};
    if (!cJSON_IsObject(root))
        return s_fail(c, TSR_ESCENE, "expected an object at the top level");
    int rc = s_check_keys(c, root, allowed);
    int version = 1, res[2] = {0, 0}, frames[2] = {1, 1};
    double seed = 0;
    s->samples = 16;
    s->max_bounces = 4;
    s->clamp = 16;
    if (!rc)
        rc = s_get_int(c, root, "version", 1, 1, 0, &version);
    if (!rc)
        rc = s_pair(c, root, "resolution", 1, 1, TSR_SCENE_MAX_SIDE, 1, res);
    if (!rc)
        rc = s_get_int(c, root, "samples", 1, TSR_SCENE_MAX_SAMPLES, 1, &s->samples);
    if (!rc)
        rc = s_get_int(c, root, "max_bounces", 0, TSR_SCENE_MAX_BOUNCES, 1,
                       &s->max_bounces);
    if (!rc)
        rc = s_get_number(c, root, "clamp", 0, 0, TSR_SCENE_MAX_COORD, &s->clamp);
    cJSON *sd = rc ? NULL : s_enter(c, root, "seed");
    if (sd) {
        rc = s_int(c, sd, 0, 9007199254740991.0, 0, &seed); /* 2^53 - 1: exact */
        s_pop(c);
    }
    if (!rc)
        rc = s_pair(c, root, "frames", 0, -TSR_SCENE_MAX_COORD, TSR_SCENE_MAX_COORD, 0,
                    frames);
    if (!rc && frames[1] < frames[0]) {
        s_enter(c, root, "frames");
        rc = s_fail(c, TSR_ESCENE, "the last frame comes before the first");
        s_pop(c);
    }
    if (!rc)
        rc = s_camera(c, root, s);
    if (!rc)
        rc = s_background(c, root, s);
    if (!rc)
        rc = s_materials(c, root, s); /* before the objects that name them */
    if (!rc)
        rc = s_objects(c, root, s);
    if (!rc)
        rc = s_lights(c, root, s);
    s->width = res[0];
    s->height = res[1];
    s->seed = (uint64_t)seed;
    s->frame_start = frames[0];
    s->frame_end = frames[1];
    return rc;
}

/* --- public functions -------------------------------------------------- */

int tsr_scene_parse(const char *text, size_t len, const char *name,
                    struct tsr_scene **out, char *err, size_t errlen)
{
    *out = NULL;
    if (err && errlen)
        err[0] = '\0';
    if (!name)
        name = "scene";
    if (len > TSR_SCENE_MAX_BYTES) {
        if (err && errlen)
            snprintf(err, errlen, "%s: larger than the limit of %d bytes", name,
                     TSR_SCENE_MAX_BYTES);
        return TSR_ELIMIT;
    }
    char *buf = malloc(len + 1);
    if (!buf)
        return TSR_ENOMEM;
    memcpy(buf, text, len);
    buf[len] = '\0';
    struct s_ctx c = {
        .text = buf, .len = len, .name = name, .err = err, .errlen = errlen};

    /* cJSON stops at a NUL; one inside the text would hide what follows. */
    const char *nul = memchr(buf, '\0', len);
    const char *end = NULL;
    cJSON *root = NULL;
    if (!nul)
        root = cJSON_ParseWithLengthOpts(buf, len + 1, &end, 1);
    if (!root) {
        size_t off = nul ? (size_t)(nul - buf) : end ? (size_t)(end - buf) : len;
        if (off > len)
            off = len;
        int line, col;
        s_line_col(buf, off, &line, &col);
        if (err && errlen)
            snprintf(err, errlen, "%s:%d:%d: %s", name, line, col,
                     nul          ? "NUL byte in the text"
                     : off >= len ? "unexpected end of the text"
                                  : "JSON syntax error");
        free(buf);
        return TSR_ESCENE;
    }
    struct tsr_scene *s = calloc(1, sizeof *s);
    int rc = s ? s_root(&c, root, s) : TSR_ENOMEM;
    cJSON_Delete(root);
    free(buf);
    if (rc) {
        if (rc == TSR_ENOMEM && err && errlen)
            snprintf(err, errlen, "%s: out of memory", name);
        tsr_scene_destroy(&s);
        return rc;
    }
    *out = s;
    return 0;
}

int tsr_scene_load(const char *path, struct tsr_scene **out, char *err, size_t errlen)
{
    char *data = NULL;
    size_t len = 0;
    *out = NULL;
    int rc = tsr_read_file(path, TSR_SCENE_MAX_BYTES, &data, &len);
    if (rc) {
        if (err && errlen)
            snprintf(err, errlen, "%s: %s", path,
                     rc == TSR_ELIMIT ? "larger than the limit of 64 MiB"
                                      : tsr_strerror(rc));
        return rc;
    }
    rc = tsr_scene_parse(data, len, path, out, err, errlen);
    free(data);
    return rc;
}

void tsr_scene_destroy(struct tsr_scene **scene)
{
    if (!scene || !*scene)
        return;
    struct tsr_scene *s = *scene;
    for (int i = 0; i < s->nmaterials; i++)
        free(s->materials[i].name);
    free(s->materials);
    for (int i = 0; i < s->nobjects; i++) {
        free(s->objects[i].name);
        free(s->objects[i].translate.keys);
        free(s->objects[i].vertices);
        free(s->objects[i].triangles);
    }
    free(s->objects);
    for (int i = 0; i < s->nlights; i++)
        free(s->lights[i].position.keys);
    free(s->lights);
    free(s->camera.position.keys);
    free(s->camera.look_at.keys);
    free(s->camera.fov.keys);
    free(s);
    *scene = NULL;
}

void tsr_scene_resolution(const struct tsr_scene *scene, int *width, int *height)
{
    *width = scene->width;
    *height = scene->height;
}

/* Index of the last key at or before frame; -1 before the first key. */
static int s_key_before(const double *frames, size_t stride, int n, double frame)
{
    int lo = -1, hi = n - 1; /* invariant: frames[lo] <= frame < frames[hi + 1] */
    while (lo < hi) {
        int mid = lo + (hi - lo + 1) / 2;
        if (*(const double *)((const char *)frames + (size_t)mid * stride) <= frame)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

struct tsr_vec3 tsr_track3_eval(const struct tsr_track3 *t, double frame)
{
    int i = s_key_before(&t->keys[0].frame, sizeof t->keys[0], t->nkeys, frame);
    if (i < 0)
        return t->keys[0].value;
    if (i >= t->nkeys - 1)
        return t->keys[t->nkeys - 1].value;
    const struct tsr_key3 *a = &t->keys[i], *b = &t->keys[i + 1];
    double u = (frame - a->frame) / (b->frame - a->frame);
    return (struct tsr_vec3){a->value.x + (b->value.x - a->value.x) * u,
                             a->value.y + (b->value.y - a->value.y) * u,
                             a->value.z + (b->value.z - a->value.z) * u};
}

double tsr_track1_eval(const struct tsr_track1 *t, double frame)
{
    int i = s_key_before(&t->keys[0].frame, sizeof t->keys[0], t->nkeys, frame);
    if (i < 0)
        return t->keys[0].value;
    if (i >= t->nkeys - 1)
        return t->keys[t->nkeys - 1].value;
    const struct tsr_key1 *a = &t->keys[i], *b = &t->keys[i + 1];
    double u = (frame - a->frame) / (b->frame - a->frame);
    return a->value + (b->value - a->value) * u;
}
