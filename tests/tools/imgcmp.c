/*
 * imgcmp.c: a test helper. `tsr-imgcmp A B` exits 0 when the two images
 * have the same display window, data window and channels and every sample
 * is bit for bit the same; else it prints the first difference and exits 1.
 * Exit 2 when an image cannot be read or the arguments are wrong.
 *
 * `tsr-imgcmp --max-abs M --mean-abs N A B` compares within tolerances
 * instead (renderers whose tiles or devices may round differently: Blender
 * border renders, tessera-render's CUDA path): the geometry must still
 * match exactly, every sample must differ by at most M and the mean
 * absolute difference over all samples must be at most N. It prints the
 * largest and the mean difference either way.
 */
#include "tessera/error.h"
#include "tessera/image.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int s_usage(void)
{
    fprintf(stderr, "usage: tsr-imgcmp [--max-abs M --mean-abs N] A B\n");
    return 2;
}

/* Parses a finite, non-negative number. */
static int s_num(const char *s, double *out)
{
    char *end = NULL;
    *out = strtod(s, &end);
    return end != s && !*end && isfinite(*out) && *out >= 0 ? 0 : -1;
}

/* Compares the two decoded images as main's comment says; returns the exit
 * status (0 same or within the tolerance, 1 different). */
static int s_compare(const struct tsr_image_info *ai, const float *pa,
                     const struct tsr_image_info *bi, const float *pb, int tolerant,
                     double max_abs, double mean_abs)
{
    const struct tsr_image_info a = *ai, b = *bi;
    if (a.full_width != b.full_width || a.full_height != b.full_height ||
        memcmp(&a.data, &b.data, sizeof a.data) != 0 || a.nchannels != b.nchannels) {
        printf("geometry differs: %dx%d [%d,%d-%d,%d] %dch vs %dx%d [%d,%d-%d,%d] %dch\n",
               a.full_width, a.full_height, a.data.x0, a.data.y0, a.data.x1, a.data.y1,
               a.nchannels, b.full_width, b.full_height, b.data.x0, b.data.y0, b.data.x1,
               b.data.y1, b.nchannels);
        return 1;
    }
    size_t w = (size_t)(a.data.x1 - a.data.x0), n = w * (size_t)(a.data.y1 - a.data.y0) *
                                                    (size_t)a.nchannels;
    size_t nc = (size_t)a.nchannels;
    if (!tolerant) {
        for (size_t k = 0; k < n; k++) {
            if (memcmp(&pa[k], &pb[k], sizeof(float)) != 0) {
                size_t px = k / nc;
                printf("pixel (%zu,%zu) channel %zu differs: %.9g vs %.9g\n",
                       px % w + (size_t)a.data.x0, px / w + (size_t)a.data.y0, k % nc,
                       pa[k], pb[k]);
                return 1;
            }
        }
        printf("identical: %zu samples\n", n);
        return 0;
    }
    double worst = 0, sum = 0;
    size_t at = 0;
    for (size_t k = 0; k < n; k++) {
        double d = fabs((double)pa[k] - (double)pb[k]);
        if (!(d <= worst)) { /* NaN counts as the worst */
            worst = isnan(d) ? INFINITY : d;
            at = k;
        }
        sum += isnan(d) ? INFINITY : d;
    }
    double mean = n ? sum / (double)n : 0;
    size_t px = at / nc;
    printf("max |diff| %.6g at pixel (%zu,%zu) channel %zu (%.9g vs %.9g), mean |diff| "
           "%.6g over %zu samples\n",
           worst, px % w + (size_t)a.data.x0, px / w + (size_t)a.data.y0, at % nc,
           n ? pa[at] : 0.0, n ? pb[at] : 0.0, mean, n);
    if (worst > max_abs || mean > mean_abs) {
        printf("outside the tolerance: max %.6g, mean %.6g\n", max_abs, mean_abs);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    double max_abs = -1, mean_abs = -1;
    int i = 1;
    for (; i + 1 < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
        double *slot = strcmp(argv[i], "--max-abs") == 0    ? &max_abs
                       : strcmp(argv[i], "--mean-abs") == 0 ? &mean_abs
                                                            : NULL;
        if (!slot || s_num(argv[i + 1], slot) != 0)
            return s_usage();
    }
    int tolerant = max_abs >= 0 || mean_abs >= 0;
    if (argc - i != 2 || (tolerant && (max_abs < 0 || mean_abs < 0)))
        return s_usage();
    const char *fa = argv[i], *fb = argv[i + 1];
    struct tsr_image_limits lim;
    tsr_image_limits_default(&lim);
    struct tsr_image_info a, b;
    float *pa = NULL, *pb = NULL;
    char err[512];
    if (tsr_image_read(fa, &lim, &a, &pa, err, sizeof err) != 0 ||
        tsr_image_read(fb, &lim, &b, &pb, err, sizeof err) != 0) {
        fprintf(stderr, "tsr-imgcmp: %s\n", err);
        free(pa);
        return 2;
    }
    int rc = s_compare(&a, pa, &b, pb, tolerant, max_abs, mean_abs);
    free(pa);
    free(pb);
    return rc;
}
