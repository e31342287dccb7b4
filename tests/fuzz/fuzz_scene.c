/*
 * fuzz_scene.c: libFuzzer target for the built-in renderer's scene parser
 * (tsr_scene_parse), which the master runs on the scene.json of every
 * submitted archive to learn the frame size.
 *
 * The input is the scene text (not NUL-terminated: the parser takes a
 * length). A parsed scene must report a resolution inside the limits.
 */
#include "tessera/scene.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tsr_scene *scene = NULL;
    char err[512];
    if (tsr_scene_parse((const char *)data, size, "fuzz.json", &scene, err, sizeof err) == 0) {
        int w = 0, h = 0;
        tsr_scene_resolution(scene, &w, &h);
        if (w <= 0 || h <= 0)
            abort();
    } else if (scene || !err[0]) {
        abort();
    }
    tsr_scene_destroy(&scene);
    return 0;
}
