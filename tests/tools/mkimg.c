/*
 * mkimg.c: a test helper that plays a bad renderer. `tsr-mkimg OUT W H x0 y0
 * x1 y1 VALUE` writes a float RGBA OpenEXR whose data window is the region
 * [x0,x1) x [y0,y1) inside a W x H frame, every sample VALUE ("nan", "inf"
 * or a number). Exit 0 on success, 1 on failure, 2 on bad arguments.
 */
#include "tessera/image.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc != 9) {
        fprintf(stderr, "usage: tsr-mkimg OUT W H x0 y0 x1 y1 VALUE\n");
        return 2;
    }
    int v[6];
    for (int i = 0; i < 6; i++)
        v[i] = atoi(argv[2 + i]);
    float value = strcmp(argv[8], "nan") == 0   ? NAN
                  : strcmp(argv[8], "inf") == 0 ? INFINITY
                                                : strtof(argv[8], NULL);
    struct tsr_image_info info = {
        .data = {v[2], v[3], v[4], v[5]}, .full_width = v[0], .full_height = v[1],
        .nchannels = 4};
    size_t n = (size_t)(v[4] - v[2]) * (size_t)(v[5] - v[3]) * 4;
    /* Up to 2^26 samples of any value; up to 2^28 (8192x8192 RGBA) of 0,
     * from pages the kernel shares until written, for a piece that declares
     * a huge window in a small file. */
    if (v[4] <= v[2] || v[5] <= v[3] || n > (value == 0.0f ? (1u << 28) : (1u << 26))) {
        fprintf(stderr, "tsr-mkimg: bad region\n");
        return 2;
    }
    float *px = value == 0.0f ? calloc(n, sizeof *px) : malloc(n * sizeof *px);
    if (!px) {
        fprintf(stderr, "tsr-mkimg: out of memory\n");
        return 1;
    }
    for (size_t i = 0; value != 0.0f && i < n; i++)
        px[i] = value;
    char err[256];
    int rc = tsr_image_write_exr(argv[1], &info, px, err, sizeof err);
    free(px);
    if (rc != 0) {
        fprintf(stderr, "tsr-mkimg: %s\n", err);
        return 1;
    }
    return 0;
}
