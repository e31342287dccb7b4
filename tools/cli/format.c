/*
 * format.c: tables and human-readable numbers for the CLI (format.h).
 */
#include "format.h"

#include "tessera/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct tsr_table {
    size_t ncols;   /* columns in every row */
    size_t nrows;   /* rows added, headers included */
    size_t cap;     /* rows allocated */
    char **cells;   /* nrows * ncols strings, owned; row 0 is the headers */
    size_t *widths; /* widest cell per column, in bytes */
};

void tsr_fmt_clean(char *buf, size_t size, const char *text)
{
    if (size == 0)
        return;
    size_t n = 0;
    for (; text && *text && n + 1 < size; text++) {
        unsigned char ch = (unsigned char)*text;
        buf[n++] = (ch < 32 || ch == 127) ? ' ' : (char)ch;
    }
    buf[n] = '\0';
}

struct tsr_table *tsr_table_new(size_t ncols, const char *const *headers)
{
    struct tsr_table *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->ncols = ncols;
    t->widths = calloc(ncols, sizeof *t->widths);
    if (!t->widths || tsr_table_add(t, headers) != 0) {
        tsr_table_destroy(&t);
        return NULL;
    }
    return t;
}

int tsr_table_add(struct tsr_table *t, const char *const *cells)
{
    if (t->nrows == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        char **grown = realloc(t->cells, cap * t->ncols * sizeof *grown);
        if (!grown)
            return TSR_ENOMEM;
        t->cells = grown;
        t->cap = cap;
    }
    char **row = t->cells + t->nrows * t->ncols;
    for (size_t i = 0; i < t->ncols; i++) {
        const char *text = cells[i] ? cells[i] : "-";
        size_t len = strlen(text);
        row[i] = malloc(len + 1);
        if (!row[i]) {
            while (i-- > 0)
                free(row[i]);
            return TSR_ENOMEM;
        }
        tsr_fmt_clean(row[i], len + 1, text);
        if (len > t->widths[i])
            t->widths[i] = len;
    }
    t->nrows++;
    return 0;
}

void tsr_table_print(const struct tsr_table *t, FILE *out)
{
    for (size_t r = 0; r < t->nrows; r++) {
        char **row = t->cells + r * t->ncols;
        for (size_t i = 0; i < t->ncols; i++) {
            if (i + 1 == t->ncols)
                fprintf(out, "%s\n", row[i]); /* no trailing blanks */
            else
                fprintf(out, "%-*s  ", (int)t->widths[i], row[i]);
        }
    }
}

void tsr_table_destroy(struct tsr_table **t)
{
    if (!t || !*t)
        return;
    for (size_t i = 0; i < (*t)->nrows * (*t)->ncols; i++)
        free((*t)->cells[i]);
    free((*t)->cells);
    free((*t)->widths);
    free(*t);
    *t = NULL;
}

void tsr_fmt_duration(char *buf, size_t size, double s)
{
    if (!isfinite(s) || s < 0) {
        snprintf(buf, size, "-");
    } else if (s < 10) {
        snprintf(buf, size, "%.1fs", s);
    } else if (s < 60) {
        snprintf(buf, size, "%.0fs", s);
    } else if (s < 3600) {
        long v = lround(s);
        snprintf(buf, size, "%ldm%02lds", v / 60, v % 60);
    } else if (s < 86400) {
        long v = lround(s / 60);
        snprintf(buf, size, "%ldh%02ldm", v / 60, v % 60);
    } else {
        long v = lround(s / 3600);
        snprintf(buf, size, "%ldd%02ldh", v / 24, v % 24);
    }
}

void tsr_fmt_bytes(char *buf, size_t size, uint64_t bytes)
{
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB"};
    if (bytes < 1024) {
        snprintf(buf, size, "%llu B", (unsigned long long)bytes);
        return;
    }
    double v = (double)bytes / 1024;
    int u = 0;
    while (v >= 1024 && u < 3) {
        v /= 1024;
        u++;
    }
    snprintf(buf, size, "%.1f %s", v, units[u]);
}

double tsr_json_num(const cJSON *obj, const char *name, double dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsNumber(v) && isfinite(v->valuedouble) ? v->valuedouble : dflt;
}

const char *tsr_json_str(const cJSON *obj, const char *name, const char *dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsString(v) && v->valuestring ? v->valuestring : dflt;
}

const cJSON *tsr_json_obj(const cJSON *obj, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    return (cJSON_IsObject(v) || cJSON_IsArray(v)) ? v : NULL;
}

int tsr_job_state_final(const char *state)
{
    return state && (strcmp(state, "done") == 0 || strcmp(state, "failed") == 0 ||
                     strcmp(state, "cancelled") == 0);
}
