/*
 * imgcmp.c: a test helper. `tsr-imgcmp A B` exits 0 when the two images
 * have the same display window, data window and channels and every sample
 * is bit for bit the same; else it prints the first difference and exits 1.
 * Exit 2 when an image cannot be read.
 */
#include "tessera/error.h"
#include "tessera/image.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: tsr-imgcmp A B\n");
        return 2;
    }
    struct tsr_image_limits lim;
    tsr_image_limits_default(&lim);
    struct tsr_image_info a, b;
    float *pa = NULL, *pb = NULL;
    char err[512];
    if (tsr_image_read(argv[1], &lim, &a, &pa, err, sizeof err) != 0 ||
        tsr_image_read(argv[2], &lim, &b, &pb, err, sizeof err) != 0) {
        fprintf(stderr, "tsr-imgcmp: %s\n", err);
        return 2;
    }
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
    for (size_t i = 0; i < n; i++) {
        if (memcmp(&pa[i], &pb[i], sizeof(float)) != 0) {
            size_t px = i / (size_t)a.nchannels;
            printf("pixel (%zu,%zu) channel %zu differs: %.9g vs %.9g\n",
                   px % w + (size_t)a.data.x0, px / w + (size_t)a.data.y0,
                   i % (size_t)a.nchannels, pa[i], pb[i]);
            return 1;
        }
    }
    printf("identical: %zu samples\n", n);
    free(pa);
    free(pb);
    return 0;
}
