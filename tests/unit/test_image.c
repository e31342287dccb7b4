/* test_image.c: the OpenImageIO shim (shared/image.cpp) on real files in a
 * temporary folder: round trips, limits, damaged files, verification of
 * pieces, exact assembly of uneven tiles and the contact sheet. */
/* cmocka.h needs these four before it. */
// clang-format off
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
// clang-format on

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tessera/error.h"
#include "tessera/image.h"
#include "tessera/util.h"

/* The frame every test cuts pieces from: odd sizes, so tiles are uneven. */
enum { FRAME_W = 101, FRAME_H = 67, FRAME_C = 4 };

/* Per-test state: a temporary folder that teardown removes. */
struct fixture {
    char dir[64]; /* the folder, "/tmp/tsr-image-XXXXXX" */
};

static int s_setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/tsr-image-XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int s_teardown(void **state)
{
    struct fixture *f = *state;
    int rc = tsr_rm_rf(f->dir);
    free(f);
    return rc == 0 ? 0 : -1;
}

static const char *s_path(void **state, const char *name)
{
    /* A few paths live at once in a test; a ring of buffers keeps them apart. */
    static char ring[16][256];
    static int next;
    struct fixture *f = *state;
    char *p = ring[next++ % 16];
    snprintf(p, sizeof ring[0], "%s/%s", f->dir, name);
    return p;
}

/* The value of frame pixel (x,y), channel c: the same wherever the pixel is
 * stored, with fractional bits that a resampling or rounding would change. */
static float s_value(int x, int y, int c)
{
    return (float)((x * 7 + y * 13 + c * 29) % 97) / 37.0f + (float)x * 1.0e-3f +
           (float)y * 3.0e-5f;
}

/* Pixels of region r of the frame, malloc'd, caller frees. */
static float *s_pixels(struct tsr_region r, int nc)
{
    int w = r.x1 - r.x0, h = r.y1 - r.y0;
    float *px = malloc((size_t)w * h * nc * sizeof(float));
    assert_non_null(px);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < nc; c++)
                px[((size_t)y * w + x) * nc + c] = s_value(r.x0 + x, r.y0 + y, c);
    return px;
}

/* Writes region r of a fw x fh frame as an EXR at path. */
static void s_write(const char *path, struct tsr_region r, int fw, int fh, int nc)
{
    struct tsr_image_info info = {r, fw, fh, nc};
    float *px = s_pixels(r, nc);
    char err[256] = "";
    int rc = tsr_image_write_exr(path, &info, px, err, sizeof err);
    free(px);
    if (rc != 0)
        fail_msg("write '%s': %s", path, err);
}

static void s_write_piece(const char *path, int x0, int y0, int x1, int y1)
{
    struct tsr_region r = {x0, y0, x1, y1};
    s_write(path, r, FRAME_W, FRAME_H, FRAME_C);
}

static long s_file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (long)st.st_size;
}

static void test_roundtrip_with_offset_window(void **state)
{
    const char *path = s_path(state, "piece.exr");
    struct tsr_region r = {3, 2, 10, 7};
    s_write(path, r, 16, 10, 4);

    struct tsr_image_info info;
    float *px = NULL;
    char err[256] = "";
    assert_int_equal(tsr_image_read(path, NULL, &info, &px, err, sizeof err), 0);
    assert_int_equal(info.data.x0, 3);
    assert_int_equal(info.data.y0, 2);
    assert_int_equal(info.data.x1, 10);
    assert_int_equal(info.data.y1, 7);
    assert_int_equal(info.full_width, 16);
    assert_int_equal(info.full_height, 10);
    assert_int_equal(info.nchannels, 4);
    float *want = s_pixels(r, 4);
    assert_memory_equal(px, want, 7 * 5 * 4 * sizeof(float));
    free(want);
    free(px);
}

static void test_probe_reads_geometry(void **state)
{
    const char *path = s_path(state, "p.exr");
    struct tsr_region r = {0, 5, 20, 9};
    s_write(path, r, 20, 30, 3);
    struct tsr_image_limits lim;
    tsr_image_limits_default(&lim);
    struct tsr_image_info info;
    char err[256] = "";
    assert_int_equal(tsr_image_probe(path, &lim, &info, err, sizeof err), 0);
    assert_memory_equal(&info.data, &r, sizeof r);
    assert_int_equal(info.full_width, 20);
    assert_int_equal(info.full_height, 30);
    assert_int_equal(info.nchannels, 3);
}

static void test_verify_accepts_good_piece(void **state)
{
    const char *path = s_path(state, "good.exr");
    struct tsr_region r = {34, 30, 67, 67};
    s_write_piece(path, r.x0, r.y0, r.x1, r.y1);
    struct tsr_image_stats st;
    char err[256] = "";
    int rc = tsr_image_verify(path, NULL, &r, FRAME_W, FRAME_H, &st, err, sizeof err);
    assert_int_equal(rc, 0);
    assert_int_equal(st.nchannels, 4);
    assert_int_equal(st.nan_count, 0);
    assert_int_equal(st.inf_count, 0);
    /* The statistics the test computes itself from the same values. */
    for (int c = 0; c < 4; c++) {
        double mn = INFINITY, mx = -INFINITY, sum = 0;
        for (int y = r.y0; y < r.y1; y++)
            for (int x = r.x0; x < r.x1; x++) {
                double v = s_value(x, y, c);
                mn = v < mn ? v : mn;
                mx = v > mx ? v : mx;
                sum += v;
            }
        assert_true(st.min[c] == mn);
        assert_true(st.max[c] == mx);
        assert_true(fabs(st.mean[c] - sum / (33.0 * 37.0)) < 1e-9);
    }
    /* Without an expected window only decodability and values count. */
    assert_int_equal(tsr_image_verify(path, NULL, NULL, 0, 0, NULL, err, sizeof err), 0);
}

static void test_verify_refuses_wrong_window(void **state)
{
    const char *path = s_path(state, "moved.exr");
    s_write_piece(path, 0, 0, 34, 30);
    char err[256] = "";
    struct tsr_region want = {0, 0, 34, 31};
    assert_int_equal(
        tsr_image_verify(path, NULL, &want, FRAME_W, FRAME_H, NULL, err, sizeof err),
        TSR_EIMAGE);
    assert_non_null(strstr(err, "data window is [0,34)x[0,30), expected [0,34)x[0,31)"));

    struct tsr_region right = {0, 0, 34, 30};
    assert_int_equal(
        tsr_image_verify(path, NULL, &right, FRAME_W, 68, NULL, err, sizeof err),
        TSR_EIMAGE);
    assert_non_null(strstr(err, "display window is 101x67, expected 101x68"));
}

static void test_verify_counts_nan_and_inf(void **state)
{
    const char *path = s_path(state, "nan.exr");
    struct tsr_region r = {0, 0, 10, 10};
    float *px = s_pixels(r, 3);
    for (int i = 0; i < 12; i++)
        px[i * 7] = NAN;
    px[1] = INFINITY;
    px[299] = -INFINITY;
    struct tsr_image_info info = {r, 10, 10, 3};
    char err[256] = "";
    assert_int_equal(tsr_image_write_exr(path, &info, px, err, sizeof err), 0);
    free(px);

    struct tsr_image_stats st;
    assert_int_equal(tsr_image_verify(path, NULL, &r, 10, 10, &st, err, sizeof err),
                     TSR_EIMAGE);
    assert_non_null(strstr(err, "piece has 12 NaN and 2 Inf samples"));
    assert_int_equal(st.nan_count, 12);
    assert_int_equal(st.inf_count, 2);
    assert_true(isfinite(st.min[0]) && isfinite(st.max[0]) && isfinite(st.mean[0]));
}

static void test_truncated_exr_fails_cleanly(void **state)
{
    const char *path = s_path(state, "cut.exr");
    s_write_piece(path, 0, 0, FRAME_W, FRAME_H);
    assert_int_equal(truncate(path, s_file_size(path) / 2), 0);

    struct tsr_image_info info;
    float *px = (float *)&info; /* must come back NULL */
    char err[256] = "";
    assert_int_equal(tsr_image_read(path, NULL, &info, &px, err, sizeof err), TSR_EIMAGE);
    assert_null(px);
    assert_non_null(strstr(err, "cut.exr"));
    err[0] = '\0';
    assert_int_equal(tsr_image_verify(path, NULL, NULL, 0, 0, NULL, err, sizeof err),
                     TSR_EIMAGE);
    assert_true(strlen(err) > 0);
    /* Cut inside the header, even the geometry is gone. */
    assert_int_equal(truncate(path, 40), 0);
    assert_int_equal(tsr_image_probe(path, NULL, &info, err, sizeof err), TSR_EIMAGE);
}

static void test_not_an_image(void **state)
{
    const char *path = s_path(state, "notes.exr");
    const char text[] = "these are not pixels\n";
    assert_int_equal(tsr_write_file_atomic(path, text, sizeof text - 1), 0);
    struct tsr_image_info info;
    float *px = NULL;
    char err[256] = "";
    assert_int_equal(tsr_image_probe(path, NULL, &info, err, sizeof err), TSR_EIMAGE);
    assert_non_null(strstr(err, "not a decodable image"));
    assert_int_equal(tsr_image_read(path, NULL, &info, &px, err, sizeof err), TSR_EIMAGE);
    assert_null(px);
    assert_int_equal(
        tsr_image_probe(s_path(state, "missing.exr"), NULL, &info, err, sizeof err),
        TSR_EIO);
    struct fixture *f = *state;
    assert_int_equal(tsr_image_probe(f->dir, NULL, &info, err, sizeof err), TSR_EIMAGE);
}

static void test_limits_refuse_before_reading(void **state)
{
    const char *path = s_path(state, "wide.exr");
    struct tsr_region r = {0, 0, 200, 100};
    s_write(path, r, 200, 100, 4);
    struct tsr_image_limits lim;
    tsr_image_limits_default(&lim);
    lim.max_width = 100;
    struct tsr_image_info info;
    float *px = NULL;
    char err[256] = "";
    assert_int_equal(tsr_image_probe(path, &lim, &info, err, sizeof err), TSR_ELIMIT);
    assert_non_null(strstr(err, "declares data 200x100"));
    assert_int_equal(tsr_image_read(path, &lim, &info, &px, err, sizeof err), TSR_ELIMIT);
    assert_null(px);
    assert_int_equal(tsr_image_verify(path, &lim, NULL, 0, 0, NULL, err, sizeof err),
                     TSR_ELIMIT);

    tsr_image_limits_default(&lim);
    lim.max_channels = 3;
    assert_int_equal(tsr_image_probe(path, &lim, &info, err, sizeof err), TSR_ELIMIT);
    /* A small data window inside a display window past the limit. */
    struct tsr_region small = {0, 0, 10, 10};
    s_write(path, small, 5000, 10, 3);
    tsr_image_limits_default(&lim);
    lim.max_width = 4096;
    assert_int_equal(tsr_image_probe(path, &lim, &info, err, sizeof err), TSR_ELIMIT);
    tsr_image_limits_default(&lim);
    assert_int_equal(tsr_image_probe(path, &lim, &info, err, sizeof err), 0);
}

/* Column and row edges of the 3 x 2 grid of uneven tiles. */
static const int XS[] = {0, 34, 67, FRAME_W};
static const int YS[] = {0, 30, FRAME_H};

/* Writes the six tiles as t<col><row>.exr; names[] gets their paths. */
static void s_write_tiles(void **state, const char *names[6])
{
    for (int j = 0; j < 2; j++)
        for (int i = 0; i < 3; i++) {
            char name[32];
            snprintf(name, sizeof name, "t%d%d.exr", i, j);
            const char *p = s_path(state, name);
            s_write_piece(p, XS[i], YS[j], XS[i + 1], YS[j + 1]);
            names[j * 3 + i] = p;
        }
}

static void test_assemble_equals_whole_frame(void **state)
{
    const char *whole = s_path(state, "whole.exr");
    s_write_piece(whole, 0, 0, FRAME_W, FRAME_H);
    const char *tiles[6];
    s_write_tiles(state, tiles);
    /* Order must not matter. */
    const char *shuffled[6] = {tiles[4], tiles[0], tiles[5],
                               tiles[2], tiles[1], tiles[3]};
    const char *out = s_path(state, "assembled.exr");
    char err[256] = "";
    int rc = tsr_image_assemble(shuffled, 6, NULL, out, err, sizeof err);
    if (rc != 0)
        fail_msg("assemble: %s", err);

    char *a = NULL, *b = NULL;
    size_t alen = 0, blen = 0;
    assert_int_equal(tsr_read_file(whole, 1 << 24, &a, &alen), 0);
    assert_int_equal(tsr_read_file(out, 1 << 24, &b, &blen), 0);
    assert_int_equal(alen, blen);
    assert_memory_equal(a, b, alen);
    free(a);
    free(b);

    struct tsr_image_info info;
    float *px = NULL;
    assert_int_equal(tsr_image_read(out, NULL, &info, &px, err, sizeof err), 0);
    struct tsr_region full = {0, 0, FRAME_W, FRAME_H};
    assert_memory_equal(&info.data, &full, sizeof full);
    float *want = s_pixels(full, FRAME_C);
    assert_memory_equal(px, want, (size_t)FRAME_W * FRAME_H * FRAME_C * sizeof(float));
    free(want);
    free(px);
    assert_int_equal(
        tsr_image_verify(out, NULL, &full, FRAME_W, FRAME_H, NULL, err, sizeof err), 0);
}

static void test_assemble_refuses_gap(void **state)
{
    const char *tiles[6];
    s_write_tiles(state, tiles);
    /* Leave out the middle tile of the bottom row: [34,67) x [30,67). */
    const char *some[5] = {tiles[0], tiles[1], tiles[2], tiles[3], tiles[5]};
    const char *out = s_path(state, "gap.exr");
    char err[256] = "";
    assert_int_equal(tsr_image_assemble(some, 5, NULL, out, err, sizeof err), TSR_EIMAGE);
    assert_non_null(strstr(err, "gap at pixel (34,30)"));
    assert_false(tsr_path_exists(out));
    /* One short row at the bottom of the frame is a gap too. */
    s_write_piece(tiles[3], 0, 30, 34, 66);
    assert_int_equal(tsr_image_assemble(tiles, 6, NULL, out, err, sizeof err),
                     TSR_EIMAGE);
    assert_non_null(strstr(err, "gap at pixel (0,66)"));
}

static void test_assemble_refuses_overlap(void **state)
{
    const char *tiles[6];
    s_write_tiles(state, tiles);
    const char *out = s_path(state, "overlap.exr");
    char err[512] = "";
    /* The top middle tile reaches 4 columns into the top left one. */
    s_write_piece(tiles[1], 30, 0, 67, 30);
    assert_int_equal(tsr_image_assemble(tiles, 6, NULL, out, err, sizeof err),
                     TSR_EIMAGE);
    assert_non_null(strstr(err, "overlap at pixel (30,0)"));
    assert_non_null(strstr(err, "t00.exr"));
    assert_non_null(strstr(err, "t10.exr"));
    /* The same piece twice. */
    s_write_tiles(state, tiles);
    const char *twice[7] = {tiles[0], tiles[1], tiles[2], tiles[3],
                            tiles[4], tiles[5], tiles[4]};
    assert_int_equal(tsr_image_assemble(twice, 7, NULL, out, err, sizeof err),
                     TSR_EIMAGE);
    assert_non_null(strstr(err, "overlap at pixel (34,30)"));
    assert_false(tsr_path_exists(out));
}

static void test_assemble_refuses_mismatch(void **state)
{
    const char *tiles[6];
    s_write_tiles(state, tiles);
    const char *out = s_path(state, "mismatch.exr");
    char err[512] = "";
    struct tsr_region r = {67, 30, FRAME_W, FRAME_H};
    s_write(tiles[5], r, FRAME_W, FRAME_H + 1, FRAME_C);
    assert_int_equal(tsr_image_assemble(tiles, 6, NULL, out, err, sizeof err),
                     TSR_EIMAGE);
    assert_non_null(strstr(err, "display window 101x68 differs"));
    s_write(tiles[5], r, FRAME_W, FRAME_H, 3);
    assert_int_equal(tsr_image_assemble(tiles, 6, NULL, out, err, sizeof err),
                     TSR_EIMAGE);
    assert_non_null(strstr(err, "3 channels"));
    assert_int_equal(tsr_image_assemble(tiles, 0, NULL, out, err, sizeof err),
                     TSR_EINVAL);
}

static void test_contact_sheet(void **state)
{
    /* Three 64x32 frames of flat grey 0.5 (sRGB code 188). */
    const char *imgs[3];
    for (int i = 0; i < 3; i++) {
        char name[32];
        snprintf(name, sizeof name, "f%d.exr", i);
        imgs[i] = s_path(state, name);
        float px[64 * 32 * 3];
        for (size_t k = 0; k < sizeof px / sizeof px[0]; k++)
            px[k] = 0.5f;
        struct tsr_image_info info = {{0, 0, 64, 32}, 64, 32, 3};
        char err[256] = "";
        assert_int_equal(tsr_image_write_exr(imgs[i], &info, px, err, sizeof err), 0);
    }
    const char *labels[3] = {"frame 0001", NULL, "f3"};
    const char *out = s_path(state, "sheet.png");
    char err[256] = "";
    int rc = tsr_image_contact_sheet(imgs, labels, 3, 2, 40, NULL, out, err, sizeof err);
    if (rc != 0)
        fail_msg("contact sheet: %s", err);

    /* 2 columns of 40 + padding 8; thumbnails 20 tall, label band 7 + 4. */
    struct tsr_image_info info;
    float *px = NULL;
    assert_int_equal(tsr_image_read(out, NULL, &info, &px, err, sizeof err), 0);
    int w = info.data.x1 - info.data.x0, h = info.data.y1 - info.data.y0;
    assert_int_equal(w, 8 + 2 * (40 + 8));
    assert_int_equal(h, 8 + 2 * (20 + 11 + 8));
    assert_int_equal(info.nchannels, 3);
    int nc = info.nchannels;
#define AT(x, y, c) (px[((size_t)(y)*w + (x)) * nc + (c)])
    /* Inside each thumbnail: grey 0.5 through the sRGB curve, 188/255. */
    int cx[3] = {8 + 20, 8 + 48 + 20, 8 + 20};
    int cy[3] = {8 + 10, 8 + 10, 8 + 39 + 10};
    for (int i = 0; i < 3; i++)
        for (int c = 0; c < 3; c++)
            assert_true(fabsf(AT(cx[i], cy[i], c) - 188.0f / 255.0f) < 1e-6f);
    /* Padding is the dark background. */
    assert_true(fabsf(AT(2, 2, 0) - 32.0f / 255.0f) < 1e-6f);
    /* Label ink under the first thumbnail, none under the unlabelled one. */
    int ink_first = 0, ink_second = 0;
    for (int y = 8 + 20; y < 8 + 20 + 11; y++)
        for (int x = 0; x < 40; x++) {
            ink_first += fabsf(AT(8 + x, y, 0) - 220.0f / 255.0f) < 1e-6f;
            ink_second += fabsf(AT(56 + x, y, 0) - 220.0f / 255.0f) < 1e-6f;
        }
    assert_true(ink_first > 20);
    assert_int_equal(ink_second, 0);
#undef AT
    free(px);

    /* A missing or undecodable image fails the whole sheet. */
    const char *bad[3] = {imgs[0], s_path(state, "nope.exr"), imgs[2]};
    assert_int_equal(
        tsr_image_contact_sheet(bad, NULL, 3, 2, 40, NULL, out, err, sizeof err),
        TSR_EIO);
    assert_non_null(strstr(err, "nope.exr"));
    const char *junk = s_path(state, "junk.exr");
    assert_int_equal(tsr_write_file_atomic(junk, "junk", 4), 0);
    bad[1] = junk;
    assert_int_equal(
        tsr_image_contact_sheet(bad, NULL, 3, 2, 40, NULL, out, err, sizeof err),
        TSR_EIMAGE);
    assert_int_equal(
        tsr_image_contact_sheet(imgs, NULL, 3, 0, 40, NULL, out, err, sizeof err),
        TSR_EINVAL);

    /* A piece must be OpenEXR: the sheet is a good PNG, and verification
     * refuses it before any decoder sees it (found by fuzz_image: a
     * truncated PNG leaked memory inside OpenImageIO's PNG reader), also
     * when it is named like an EXR. Its truncation too. */
    assert_int_equal(tsr_image_verify(out, NULL, NULL, 0, 0, NULL, err, sizeof err),
                     TSR_EIMAGE);
    assert_non_null(strstr(err, "not an OpenEXR image"));
    char *png = NULL;
    size_t png_len = 0;
    assert_int_equal(tsr_read_file(out, 1 << 20, &png, &png_len), 0);
    const char *disguised = s_path(state, "piece.exr");
    assert_int_equal(tsr_write_file_atomic(disguised, png, png_len / 2), 0);
    free(png);
    assert_int_equal(tsr_image_verify(disguised, NULL, NULL, 0, 0, NULL, err, sizeof err),
                     TSR_EIMAGE);
    assert_non_null(strstr(err, "not an OpenEXR image"));
    const char *pieces[1] = {out};
    assert_int_equal(tsr_image_assemble(pieces, 1, NULL, s_path(state, "a.exr"), err,
                                        sizeof err),
                     TSR_EIMAGE);
}

/* Appends an OpenEXR attribute (name, type, 4-byte size, value) to buf. */
static size_t s_attr(unsigned char *buf, size_t at, const char *name, const char *type,
                     int32_t size, const void *value, size_t vlen)
{
    memcpy(buf + at, name, strlen(name) + 1);
    at += strlen(name) + 1;
    memcpy(buf + at, type, strlen(type) + 1);
    at += strlen(type) + 1;
    for (int i = 0; i < 4; i++)
        buf[at++] = (unsigned char)((uint32_t)size >> (8 * i));
    memcpy(buf + at, value, vlen);
    return at + vlen;
}

/* Found by fuzz_image: OpenEXR allocates what a header declares before
 * anything can object (an 800 MB string in a 400-byte file). Such headers
 * are refused before OpenEXR reads them, and so are windows past the
 * limits (whose chunk tables OpenEXR would allocate). */
static void test_exr_header_checked_first(void **state)
{
    unsigned char buf[512];
    const unsigned char magic[8] = {0x76, 0x2f, 0x31, 0x01, 2, 0, 0, 0};
    memcpy(buf, magic, 8);
    size_t n = s_attr(buf, 8, "owner", "string", 825194004, "x", 1);
    buf[n++] = 0;
    const char *path = s_path(state, "huge-attr.exr");
    assert_int_equal(tsr_write_file_atomic(path, buf, n), 0);
    char err[256] = "";
    assert_int_equal(tsr_image_verify(path, NULL, NULL, 0, 0, NULL, err, sizeof err),
                     TSR_EIMAGE);
    assert_non_null(strstr(err, "declares 825194004 bytes"));

    unsigned char ch[18 + 1] = {'R', 0};
    int32_t box[4] = {0, 0, (1 << 30), (1 << 30)};
    n = s_attr(buf, 8, "channels", "chlist", sizeof ch, ch, sizeof ch);
    n = s_attr(buf, n, "compression", "compression", 1, "\0", 1);
    n = s_attr(buf, n, "dataWindow", "box2i", 16, box, 16);
    n = s_attr(buf, n, "displayWindow", "box2i", 16, box, 16);
    buf[n++] = 0;
    path = s_path(state, "huge-window.exr");
    assert_int_equal(tsr_write_file_atomic(path, buf, n), 0);
    struct tsr_image_info info;
    assert_int_equal(tsr_image_probe(path, NULL, &info, err, sizeof err), TSR_ELIMIT);
    assert_non_null(strstr(err, "declares data 1073741825x1073741825"));
    /* Multi-part and deep files are not pieces. */
    buf[5] = 0x10;
    assert_int_equal(tsr_write_file_atomic(path, buf, n), 0);
    assert_int_equal(tsr_image_verify(path, NULL, NULL, 0, 0, NULL, err, sizeof err),
                     TSR_EIMAGE);
    assert_non_null(strstr(err, "not a single-part flat image"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_roundtrip_with_offset_window, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_probe_reads_geometry, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_verify_accepts_good_piece, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_verify_refuses_wrong_window, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_verify_counts_nan_and_inf, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_truncated_exr_fails_cleanly, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_not_an_image, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_limits_refuse_before_reading, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_assemble_equals_whole_frame, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_assemble_refuses_gap, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_assemble_refuses_overlap, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_assemble_refuses_mismatch, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_contact_sheet, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_exr_header_checked_first, s_setup,
                                        s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
