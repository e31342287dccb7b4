/*
 * fuzz_image.c: libFuzzer target for the verification of rendered pieces
 * (tsr_image_verify), which the master runs on every image a worker sends
 * and the worker on every image a renderer writes.
 *
 * The input is written to a file and verified with small limits, without
 * and with an expected window. OpenImageIO itself is not instrumented; the
 * shim around it is, and any crash in either is a crash of the master.
 */
#include "tessera/image.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char s_path[300];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!s_path[0]) {
        const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
        char dir[256];
        snprintf(dir, sizeof dir, "%s/fuzz-image.XXXXXX", tmp);
        if (!mkdtemp(dir))
            abort();
        /* OpenImageIO picks a reader by extension first, then by content. */
        snprintf(s_path, sizeof s_path, "%s/piece.exr", dir);
    }
    FILE *f = fopen(s_path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0)
        abort();
    struct tsr_image_limits lim = {.max_width = 512, .max_height = 512, .max_channels = 8};
    struct tsr_image_stats st;
    char err[512];
    tsr_image_verify(s_path, &lim, NULL, 0, 0, &st, err, sizeof err);
    struct tsr_region r = {0, 0, 4, 4};
    tsr_image_verify(s_path, &lim, &r, 4, 4, &st, err, sizeof err);
    return 0;
}
