/*
 * hello.c: what a worker may announce in HELLO, checked field by field.
 *
 * A HELLO is the one message whose contents the master keeps and shows to
 * everyone (`tessera workers`), so every field has a bound: a count for each
 * list and a length for each string (doc/security.md, "Limits"). A HELLO past
 * any bound is refused whole with a reply that names the field; nothing of it
 * is kept. What is kept is a copy of the known fields only (caps), rebuilt
 * from what was checked, so an unknown or oversized field never reaches the
 * worker table, LMDB or a WORKERS reply.
 */
#include "master.h"

#include "tessera/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Whether s is printable: a name shown in tables and logs holds no control
 * characters. */
static int s_printable(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return 0;
    return 1;
}

static int s_err(char *err, size_t errlen, const char *fmt, const char *field, int n)
{
    snprintf(err, errlen, fmt, field, n);
    return TSR_ELIMIT;
}

/* Copies the optional array of printable strings `field` into caps:
 * at most max_n entries of at most max_len bytes each. */
static int s_strings(const cJSON *hdr, cJSON *caps, const char *field, int max_n,
                     size_t max_len, char *err, size_t errlen)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(hdr, field);
    if (!a || cJSON_IsNull(a))
        return 0;
    if (!cJSON_IsArray(a)) {
        snprintf(err, errlen, "field '%s' must be an array of strings", field);
        return TSR_EPROTO;
    }
    if (cJSON_GetArraySize(a) > max_n)
        return s_err(err, errlen, "field '%s' lists more than %d entries", field, max_n);
    cJSON *out = cJSON_AddArrayToObject(caps, field);
    const cJSON *v;
    cJSON_ArrayForEach(v, a)
    {
        if (!cJSON_IsString(v) || !v->valuestring[0] || !s_printable(v->valuestring)) {
            snprintf(err, errlen, "field '%s' must list non-empty printable strings",
                     field);
            return TSR_EPROTO;
        }
        if (strlen(v->valuestring) > max_len)
            return s_err(err, errlen, "an entry of field '%s' is longer than %d bytes",
                         field, (int)max_len);
        cJSON_AddItemToArray(out, cJSON_CreateString(v->valuestring));
    }
    return 0;
}

/* Copies the optional array of objects `field` into caps, keeping of each
 * entry only the string keys skeys (at most max_len bytes) and the numeric
 * keys nkeys (0..2^40). */
static int s_objects(const cJSON *from, cJSON *to, const char *field, int max_n,
                     const char *const *skeys, size_t max_len, const char *const *nkeys,
                     char *err, size_t errlen)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(from, field);
    if (!a || cJSON_IsNull(a))
        return 0;
    if (!cJSON_IsArray(a)) {
        snprintf(err, errlen, "field '%s' must be an array of objects", field);
        return TSR_EPROTO;
    }
    if (cJSON_GetArraySize(a) > max_n)
        return s_err(err, errlen, "field '%s' lists more than %d entries", field, max_n);
    cJSON *out = cJSON_AddArrayToObject(to, field);
    const cJSON *v;
    cJSON_ArrayForEach(v, a)
    {
        if (!cJSON_IsObject(v)) {
            snprintf(err, errlen, "field '%s' must be an array of objects", field);
            return TSR_EPROTO;
        }
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToArray(out, o);
        for (const char *const *k = skeys; *k; k++) {
            const char *s = NULL;
            char ferr[128];
            if (tsr_hdr_str_opt(v, *k, max_len, &s, ferr, sizeof ferr) != 0 ||
                (s && !s_printable(s))) {
                snprintf(err, errlen,
                         "field '%s': entries' '%s' must be printable strings "
                         "of at most %d bytes",
                         field, *k, (int)max_len);
                return TSR_ELIMIT;
            }
            if (s)
                cJSON_AddStringToObject(o, *k, s);
        }
        for (const char *const *k = nkeys; k && *k; k++) {
            int64_t n = -1;
            if (tsr_hdr_int_opt(v, *k, 0, INT64_C(1) << 40, &n, NULL, 0) != 0) {
                snprintf(err, errlen,
                         "field '%s': entries' '%s' must be a number in "
                         "0..2^40",
                         field, *k);
                return TSR_EPROTO;
            }
            if (n >= 0)
                cJSON_AddNumberToObject(o, *k, (double)n);
        }
    }
    return 0;
}

int hello_check(const cJSON *hdr, struct hello *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    out->hub = "local";
    int64_t slots = 1, gpu_slots = 0, cores = -1, memory_mb = -1;
    const char *sandbox = NULL, *version = NULL;
    int rc = tsr_hdr_str(hdr, "name", MASTER_NAME_MAX, &out->name, err, errlen);
    if (!rc)
        rc = tsr_hdr_str_opt(hdr, "hub", MASTER_NAME_MAX, &out->hub, err, errlen);
    if (!rc)
        rc = tsr_hdr_str_opt(hdr, "instance", HELLO_MAX_INSTANCE, &out->instance, err,
                             errlen);
    if (!rc)
        rc = tsr_hdr_int(hdr, "slots", 1, HELLO_MAX_SLOTS, &slots, err, errlen);
    if (!rc)
        rc =
            tsr_hdr_int_opt(hdr, "gpu_slots", 0, HELLO_MAX_GPUS, &gpu_slots, err, errlen);
    if (!rc)
        rc = tsr_hdr_int_opt(hdr, "cores", 0, 1 << 20, &cores, err, errlen);
    if (!rc)
        rc = tsr_hdr_int_opt(hdr, "memory_mb", 0, INT64_C(1) << 40, &memory_mb, err,
                             errlen);
    if (!rc)
        rc = tsr_hdr_str_opt(hdr, "sandbox", 15, &sandbox, err, errlen);
    if (!rc)
        rc = tsr_hdr_str_opt(hdr, "version", 31, &version, err, errlen);
    if (rc)
        return rc;
    const char *strs[] = {out->name, out->hub, out->instance, sandbox, version};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        if (strs[i] && !s_printable(strs[i])) {
            snprintf(err, errlen,
                     "fields 'name', 'hub', 'instance', 'sandbox' and "
                     "'version' must be printable");
            return TSR_EPROTO;
        }
    }
    if (!out->name[0] || !out->hub[0]) {
        snprintf(err, errlen, "field '%s' is empty", out->name[0] ? "hub" : "name");
        return TSR_EPROTO;
    }
    const cJSON *running = cJSON_GetObjectItemCaseSensitive(hdr, "running");
    if (running && !cJSON_IsArray(running)) {
        snprintf(err, errlen, "field 'running' must be an array of attempt ids");
        return TSR_EPROTO;
    }
    if (cJSON_GetArraySize(running) > HELLO_MAX_RUNNING)
        return s_err(err, errlen, "field '%s' lists more than %d attempts", "running",
                     HELLO_MAX_RUNNING);
    const cJSON *a;
    cJSON_ArrayForEach(a, running)
    {
        if (!cJSON_IsNumber(a) || a->valuedouble < 1 ||
            a->valuedouble > 9007199254740992.0 ||
            a->valuedouble != (double)(uint64_t)a->valuedouble) {
            snprintf(err, errlen, "field 'running' must be an array of attempt ids");
            return TSR_EPROTO;
        }
    }
    out->running = running;
    out->slots = (int)slots;
    out->gpu_slots = (int)gpu_slots;
    out->cores = (int)cores;

    /* The kept copy: known fields only, each within its bound. */
    cJSON *caps = cJSON_CreateObject();
    if (!caps) {
        snprintf(err, errlen, "out of memory");
        return TSR_ENOMEM;
    }
    cJSON_AddStringToObject(caps, "name", out->name);
    cJSON_AddStringToObject(caps, "hub", out->hub);
    cJSON_AddNumberToObject(caps, "slots", (double)slots);
    cJSON_AddNumberToObject(caps, "gpu_slots", (double)gpu_slots);
    if (cores >= 0)
        cJSON_AddNumberToObject(caps, "cores", (double)cores);
    if (memory_mb >= 0)
        cJSON_AddNumberToObject(caps, "memory_mb", (double)memory_mb);
    if (sandbox)
        cJSON_AddStringToObject(caps, "sandbox", sandbox);
    if (version)
        cJSON_AddStringToObject(caps, "version", version);
    static const char *const gpu_s[] = {"name", NULL}, *const gpu_n[] = {"memory_mb",
                                                                         NULL};
    static const char *const dev_s[] = {"type", "name", NULL};
    rc = s_strings(hdr, caps, "renderers", HELLO_MAX_RENDERERS, 15, err, errlen);
    if (!rc)
        rc = s_strings(hdr, caps, "features", HELLO_MAX_FEATURES, HELLO_MAX_FEATURE_LEN,
                       err, errlen);
    if (!rc)
        rc = s_objects(hdr, caps, "gpus", HELLO_MAX_GPUS, gpu_s, 127, gpu_n, err, errlen);
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(hdr, "blender");
    if (!rc && b && !cJSON_IsNull(b)) {
        const char *bver = NULL;
        cJSON *ob = cJSON_AddObjectToObject(caps, "blender");
        if (!cJSON_IsObject(b)) {
            snprintf(err, errlen, "field 'blender' must be an object");
            rc = TSR_EPROTO;
        }
        if (!rc)
            rc = tsr_hdr_str_opt(b, "version", 31, &bver, err, errlen);
        if (!rc && bver)
            cJSON_AddStringToObject(ob, "version", bver);
        if (!rc)
            rc = s_objects(b, ob, "devices", HELLO_MAX_GPUS, dev_s, 127, NULL, err,
                           errlen);
        if (!rc)
            rc = s_strings(b, ob, "features", HELLO_MAX_FEATURES, HELLO_MAX_FEATURE_LEN,
                           err, errlen);
    }
    if (rc) {
        cJSON_Delete(caps);
        return rc;
    }
    out->caps = caps;
    return 0;
}
