/*
 * fuzz_frameset.c: libFuzzer target for frame-set parsing
 * (tsr_frameset_parse), which reads the --frames of every SUBMIT.
 *
 * The input is the set as text (NUL-terminated here; the master bounds it
 * at 4096 bytes, so longer inputs are cut there). A parsed set must be
 * sorted, without duplicates, and within the limit: anything else aborts,
 * so the fuzzer also checks what the parser promises, not only its memory.
 */
#include "tessera/frameset.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        size = 4096;
    char *spec = malloc(size + 1);
    if (!spec)
        return 0;
    memcpy(spec, data, size);
    spec[size] = '\0';
    int *frames = NULL;
    size_t count = 0;
    char err[256];
    if (tsr_frameset_parse(spec, &frames, &count, err, sizeof err) == 0) {
        if (count == 0 || count > TSR_FRAMESET_MAX)
            abort();
        for (size_t i = 1; i < count; i++)
            if (frames[i] <= frames[i - 1])
                abort();
    } else if (frames || count || !err[0] || strchr(err, '\n')) {
        abort(); /* a failure leaves nothing behind and says why in one line */
    }
    free(frames);
    free(spec);
    return 0;
}
