/*
 * image.h: the C face of the OpenImageIO shim (shared/image.cpp).
 *
 * Images are float RGBA or RGB scanline images. A piece of a frame carries
 * its pixel region as the data window inside the display window of the full
 * frame (OpenEXR's model), so a tile knows where it belongs.
 *
 * Every reader takes limits (NULL means tsr_image_limits_default) and
 * refuses an image whose header declares more than they allow before any
 * pixel memory is allocated. Readers take the first subimage of a file and
 * refuse one whose display window does not start at 0,0, whose origin
 * struct tsr_image_info cannot carry. No function throws; OpenImageIO's
 * errors become TSR_EIMAGE or TSR_EIO with a message in the caller's buffer
 * (err may be NULL). A missing or unreadable file is TSR_EIO; one that
 * exists but does not decode, also partly, is TSR_EIMAGE.
 */
#ifndef TESSERA_IMAGE_H
#define TESSERA_IMAGE_H

#include <stddef.h>
#include <stdint.h>

/* A rectangle of pixels, half-open: x0 <= x < x1, y0 <= y < y1. */
struct tsr_region {
    int x0; /* first column */
    int y0; /* first row (top is 0) */
    int x1; /* one past the last column */
    int y1; /* one past the last row */
};

/* Geometry of an image: its data window inside its display window. */
struct tsr_image_info {
    struct tsr_region data;    /* pixels stored in the file */
    int full_width;            /* display window width (the frame's) */
    int full_height;           /* display window height */
    int nchannels;             /* channels per pixel (3 or 4 for ours) */
};

/* What a reader accepts; anything past it is refused before allocation. */
struct tsr_image_limits {
    int max_width;     /* widest display or data window */
    int max_height;    /* tallest display or data window */
    int max_channels;  /* most channels */
};

/* Defaults: 32768 x 32768, 16 channels. */
void tsr_image_limits_default(struct tsr_image_limits *lim);

/* Pixel statistics over the data window, per channel (up to 4). min, max and
 * mean are over the finite samples (0 when a channel has none); the NaN and
 * Inf counts are over all channels. */
struct tsr_image_stats {
    int nchannels;      /* channels measured */
    double min[4];      /* smallest value */
    double max[4];      /* largest value */
    double mean[4];     /* average value */
    uint64_t nan_count; /* NaN samples seen */
    uint64_t inf_count; /* infinite samples seen */
};

/*
 * Writes a float image as OpenEXR (zip compressed, float channels R,G,B[,A])
 * with the data window info->data inside a display window of
 * info->full_width x info->full_height. pixels holds
 * width(data) * height(data) * nchannels floats, row major, borrowed.
 * The file is written to a temporary name and renamed into place.
 * Returns 0, TSR_EINVAL, TSR_EIO.
 */
int tsr_image_write_exr(const char *path, const struct tsr_image_info *info,
                        const float *pixels, char *err, size_t errlen);

/*
 * Reads an image's geometry only. Returns 0, TSR_EIMAGE (not decodable),
 * TSR_ELIMIT (declares more than lim allows), TSR_EIO, TSR_EINVAL.
 */
int tsr_image_probe(const char *path, const struct tsr_image_limits *lim,
                    struct tsr_image_info *info, char *err, size_t errlen);

/*
 * Reads a whole image as float. *pixels is allocated with malloc and owned by
 * the caller (width(data) * height(data) * nchannels floats); it is NULL
 * after a failure.
 * Returns 0, TSR_EIMAGE, TSR_ELIMIT, TSR_ENOMEM, TSR_EIO, TSR_EINVAL.
 */
int tsr_image_read(const char *path, const struct tsr_image_limits *lim,
                   struct tsr_image_info *info, float **pixels, char *err,
                   size_t errlen);

/*
 * Verifies a rendered piece: it is an OpenEXR file (no other format's
 * decoder is ever given the bytes), it decodes completely, its data window is
 * exactly *expect inside a display window of full_width x full_height (pass
 * expect NULL to skip the window check, full_width and full_height with it),
 * and it holds no NaN or Inf ("... piece has 12 NaN and 0 Inf samples").
 * Fills *stats when not NULL and the pixels decoded, also when the window or
 * the NaN/Inf check then fails. Returns 0, TSR_EIMAGE (with the reason in
 * err), TSR_ELIMIT, TSR_ENOMEM, TSR_EIO.
 */
int tsr_image_verify(const char *path, const struct tsr_image_limits *lim,
                     const struct tsr_region *expect, int full_width,
                     int full_height, struct tsr_image_stats *stats, char *err,
                     size_t errlen);

/*
 * Assembles pieces into one full-frame EXR at out. The pieces' data windows
 * must cover the display window exactly, with no gap and no overlap, and
 * they must share display window and channel count. Pixels are copied, not
 * resampled, so the result equals a whole-frame render bit for bit; it is
 * written with tsr_image_write_exr, data window = display window, so pieces
 * have at most 4 channels. Coverage is checked from the headers, in memory
 * proportional to npieces, before any pixel is read; err names the first gap
 * or overlap ("pieces leave a gap at pixel (x,y)", "pieces 'a' and 'b'
 * overlap at pixel (x,y)").
 * Returns 0, TSR_EIMAGE (coverage or mismatch, reason in err), TSR_ELIMIT,
 * TSR_ENOMEM, TSR_EIO, TSR_EINVAL (no pieces).
 */
int tsr_image_assemble(const char *const *pieces, size_t npieces,
                       const struct tsr_image_limits *lim, const char *out,
                       char *err, size_t errlen);

/*
 * Writes a contact sheet PNG: the images in a grid of `columns`, each scaled
 * to `thumb_width` pixels wide, tone-mapped to sRGB, with a small label
 * (borrowed strings, may be NULL) drawn under each thumbnail.
 *
 * Each thumbnail shows the display window (black outside the data window),
 * box-filtered from samples clamped to 0..1 (NaN as 0), sRGB-encoded, in
 * 8-bit RGB. It is thumb_width wide and round(thumb_width * full_height /
 * full_width) tall, unless that is over 4 * thumb_width: then that tall and
 * narrower. Layout, so callers can predict the size: c = min(columns,
 * nimages) columns, 8 pixels of padding around and between cells, a label
 * band of 7 * s + 4 pixels under each row's tallest thumbnail, s = 1 +
 * thumb_width / 256 (at most 4) being the scale of the built-in 5x7 font.
 * Width = 8 + c * (thumb_width + 8); height = 8 + the sum over rows of
 * (tallest thumbnail + 7 * s + 4 + 8). Labels are clipped to the cell.
 * A sheet past lim is refused.
 * Returns 0, TSR_EIMAGE, TSR_EINVAL, TSR_EIO, TSR_ELIMIT, TSR_ENOMEM.
 */
int tsr_image_contact_sheet(const char *const *images, const char *const *labels,
                            size_t nimages, int columns, int thumb_width,
                            const struct tsr_image_limits *lim, const char *out_png,
                            char *err, size_t errlen);

/*
 * The same contact sheet in steps, so a thread can draw it a slice at a
 * time and serve others in between (the master's pool). _new takes the
 * arguments of tsr_image_contact_sheet (images and labels stay borrowed
 * until _destroy); each _step works for about budget_ms (at least one
 * image; <= 0: to the end) and sets *done once out_png is written. Errors
 * as tsr_image_contact_sheet's; after one, only _destroy.
 */
struct tsr_image_sheet;
int tsr_image_sheet_new(const char *const *images, const char *const *labels,
                        size_t nimages, int columns, int thumb_width,
                        const struct tsr_image_limits *lim, struct tsr_image_sheet **out,
                        char *err, size_t errlen);
int tsr_image_sheet_step(struct tsr_image_sheet *sheet, int budget_ms, const char *out_png,
                         int *done, char *err, size_t errlen);
void tsr_image_sheet_destroy(struct tsr_image_sheet **sheet);

#endif
