/*
 * fuzz_proto.c: libFuzzer target for the wire codec's decoder
 * (tsr_proto_decode), the first code that touches every byte a peer sends.
 *
 * The input is a list of frames, each a 2-byte little-endian length and
 * that many bytes (a length past the end takes what is left), at most 8
 * frames as tsr_msg_recv gathers them. A decoded message is then read the
 * way handlers read headers, through the checked field readers, so that
 * they are fuzzed on every shape of header the decoder lets through.
 */
#include "tessera/proto.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tsr_frame frames[8];
    size_t n = 0, pos = 0;
    while (pos < size && n < 8) {
        size_t len = 0;
        if (pos + 2 <= size)
            len = (size_t)data[pos] | ((size_t)data[pos + 1] << 8);
        pos += pos + 2 <= size ? 2 : size - pos;
        if (len > size - pos)
            len = size - pos;
        frames[n].data = data + pos;
        frames[n].len = len;
        n++;
        pos += len;
    }
    struct tsr_msg msg;
    memset(&msg, 0, sizeof msg);
    char err[256];
    if (tsr_proto_decode(frames, n, &msg, err, sizeof err) != 0)
        return 0;
    const char *s = NULL;
    int64_t v = 0;
    int b = 0;
    tsr_hdr_str(msg.hdr, "name", 63, &s, err, sizeof err);
    tsr_hdr_str_opt(msg.hdr, "scene", 1024, &s, err, sizeof err);
    tsr_hdr_int(msg.hdr, "rid", 0, INT64_MAX / 2, &v, err, sizeof err);
    tsr_hdr_int_opt(msg.hdr, "offset", 0, (int64_t)1 << 40, &v, err, sizeof err);
    tsr_hdr_bool_opt(msg.hdr, "ok", &b, err, sizeof err);
    tsr_hdr_hash(msg.hdr, "hash", &s, err, sizeof err);
    tsr_msg_clear(&msg);
    return 0;
}
