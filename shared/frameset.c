/*
 * frameset.c: parsing of frame sets ("1-240", "1-100x5", "1,4,9-12") for
 * frameset.h.
 *
 * A frame set comes from a user (the CLI) or the network (a job record), so
 * every number is range-checked and the size of the result is known before
 * any memory is allocated: a set such as "1-2000000000" is refused from its
 * arithmetic, not after trying to build it. Parsing is two passes over the
 * items: the first validates and counts, the second fills the array.
 *
 * The frame limit applies to the frames as written, before duplicates are
 * removed: "1-600000,1-600000" counts 1200000 and is refused even though it
 * holds 600000 distinct frames. This keeps the bound on memory simple and
 * exact; nobody writes a real set that overlaps that much.
 */
#include "tessera/frameset.h"
#include "tessera/error.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest part of the spec quoted in an error message; the rest is "...". */
#define S_QUOTE_MAX 60

/* One parsed item: frames first, first+step, ... up to last. */
struct s_item {
    long first; /* first frame */
    long last;  /* last frame (== first for a single frame) */
    long step;  /* distance between frames, > 0 */
};

/* Writes "frame set 'SPEC': " and the formatted reason into err. Long specs
 * are abbreviated so the reason (which names the item) is never cut off. */
__attribute__((format(printf, 4, 5))) static void
s_fail(char *err, size_t errlen, const char *spec, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    char why[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    size_t n = strlen(spec);
    if (n > S_QUOTE_MAX)
        snprintf(err, errlen, "frame set '%.*s...': %s", S_QUOTE_MAX, spec, why);
    else
        snprintf(err, errlen, "frame set '%s': %s", spec, why);
    /* The spec is the user's (or a peer's) text: a control character in it
     * must not break the message's one line or drive a terminal. */
    for (char *c = err; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = '?';
}

/* Length of the token starting at p, for quoting a bad number: up to the
 * next separator stop (not counting p[0]) or the end of the item. */
static int s_token_len(const char *p, char stop)
{
    size_t n = 0;
    while (p[n] && (n == 0 || p[n] != stop))
        n++;
    return n > 40 ? 40 : (int)n;
}

/*
 * Parses one number of an item at p: an optional '-' and decimal digits,
 * within TSR_FRAME_MIN..TSR_FRAME_MAX (a step too: a wider one could only
 * ever reach one frame, and frame + step stays far from INT_MAX). stop is
 * the separator that may follow (used only to quote the bad token). On
 * success *end points past the number.
 */
static int s_number(const char *spec, const char *item, const char *p, char stop,
                    long *out, const char **end, char *err, size_t errlen)
{
    const char *q = p;
    if (*q == '-')
        q++;
    if (!isdigit((unsigned char)*q)) {
        int n = s_token_len(p, stop);
        if (n == 0)
            s_fail(err, errlen, spec, "'%s' is missing a number", item);
        else
            s_fail(err, errlen, spec, "'%.*s' is not a number", n, p);
        return TSR_EFRAMES;
    }
    char *e;
    errno = 0;
    long v = strtol(p, &e, 10);
    if (errno == ERANGE || v < TSR_FRAME_MIN || v > TSR_FRAME_MAX) {
        s_fail(err, errlen, spec, "'%.*s' is out of range (frames are %d..%d)",
               (int)(e - p), p, TSR_FRAME_MIN, TSR_FRAME_MAX);
        return TSR_EFRAMES;
    }
    *out = v;
    *end = e;
    return 0;
}

/* Parses one item (already trimmed, NUL-terminated) into *it. */
static int s_item(const char *spec, const char *item, struct s_item *it, char *err,
                  size_t errlen)
{
    const char *p;
    int rc = s_number(spec, item, item, '-', &it->first, &p, err, errlen);
    if (rc != 0)
        return rc;
    it->last = it->first;
    it->step = 1;
    if (*p == '-') {
        rc = s_number(spec, item, p + 1, 'x', &it->last, &p, err, errlen);
        if (rc != 0)
            return rc;
        if (*p == 'x') {
            rc = s_number(spec, item, p + 1, '\0', &it->step, &p, err, errlen);
            if (rc != 0)
                return rc;
            if (it->step <= 0) {
                s_fail(err, errlen, spec, "'%s' has a zero or negative step", item);
                return TSR_EFRAMES;
            }
        }
        if (it->last < it->first) {
            s_fail(err, errlen, spec, "'%s' is reversed (%ld > %ld)", item, it->first,
                   it->last);
            return TSR_EFRAMES;
        }
    }
    if (*p != '\0') {
        s_fail(err, errlen, spec, "'%s' is not a frame, a range or a stepped range",
               item);
        return TSR_EFRAMES;
    }
    return 0;
}

/* Frames in one item; no overflow since first and last fit in an int. */
static uint64_t s_item_count(const struct s_item *it)
{
    return (uint64_t)((long long)it->last - it->first) / (uint64_t)it->step + 1;
}

static int s_cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/*
 * Walks the items of copy (a writable copy of spec). Pass 0 validates and
 * counts into *total; pass 1 appends the frames to out.
 */
static int s_pass(const char *spec, char *copy, int fill, int *out, uint64_t *total,
                  char *err, size_t errlen)
{
    char *p = copy;
    for (;;) {
        char *comma = strchr(p, ',');
        if (comma)
            *comma = '\0';
        char *b = p;
        while (*b == ' ' || *b == '\t')
            b++;
        char *e = b + strlen(b);
        while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        *e = '\0';
        if (*b == '\0') {
            s_fail(err, errlen, spec, "an item is empty");
            return TSR_EFRAMES;
        }
        struct s_item it;
        int rc = s_item(spec, b, &it, err, errlen);
        if (rc != 0)
            return rc;
        uint64_t n = s_item_count(&it);
        if (fill) {
            /* Stops before f + step could pass INT_MAX. */
            for (long long f = it.first;; f += it.step) {
                out[(*total)++] = (int)f;
                if ((long long)it.last - f < it.step)
                    break;
            }
        } else {
            *total += n;
            if (*total > TSR_FRAMESET_MAX) {
                s_fail(err, errlen, spec, "'%s' takes the set past %d frames", b,
                       TSR_FRAMESET_MAX);
                return TSR_ELIMIT;
            }
        }
        if (!comma)
            return 0;
        p = comma + 1;
    }
}

int tsr_frameset_parse(const char *spec, int **frames, size_t *count, char *err,
                       size_t errlen)
{
    *frames = NULL;
    *count = 0;
    if (err && errlen)
        err[0] = '\0';
    if (!spec) {
        if (err && errlen)
            snprintf(err, errlen, "frame set is missing");
        return TSR_EFRAMES;
    }
    const char *s = spec;
    while (*s == ' ' || *s == '\t')
        s++;
    if (*s == '\0') {
        s_fail(err, errlen, spec, "the set is empty");
        return TSR_EFRAMES;
    }
    char *copy = strdup(spec);
    if (!copy)
        return TSR_ENOMEM;
    uint64_t total = 0;
    int rc = s_pass(spec, copy, 0, NULL, &total, err, errlen);
    if (rc != 0) {
        free(copy);
        return rc;
    }
    int *out = malloc((size_t)total * sizeof *out);
    if (!out) {
        free(copy);
        return TSR_ENOMEM;
    }
    strcpy(copy, spec);
    uint64_t filled = 0;
    rc = s_pass(spec, copy, 1, out, &filled, err, errlen);
    free(copy);
    if (rc != 0 || filled != total) {
        free(out);
        return rc != 0 ? rc : TSR_EFRAMES;
    }
    qsort(out, (size_t)total, sizeof *out, s_cmp_int);
    size_t n = 0;
    for (size_t i = 0; i < (size_t)total; i++)
        if (n == 0 || out[n - 1] != out[i])
            out[n++] = out[i];
    *frames = out;
    *count = n;
    return 0;
}
