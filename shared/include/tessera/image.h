/*
 * image.h: the C face of the OpenImageIO shim (shared/image.cpp).
 *
 * Images are float RGBA or RGB scanline images. A piece of a frame carries
 * its pixel region as the data window inside the display window of the full
 * frame (OpenEXR's model), so a tile knows where it belongs.
 *
 * Every reader takes limits and refuses an image whose header declares more
 * than they allow before any pixel memory is allocated. No function throws;
 * OpenImageIO's errors become TSR_EIMAGE or TSR_EIO with a message in the
 * caller's buffer.
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

/* Pixel statistics over the data window, per channel (up to 4). */
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
 * TSR_ELIMIT (declares more than lim allows), TSR_EIO.
 */
int tsr_image_probe(const char *path, const struct tsr_image_limits *lim,
                    struct tsr_image_info *info, char *err, size_t errlen);

/*
 * Reads a whole image as float. *pixels is allocated with malloc and owned by
 * the caller (width(data) * height(data) * nchannels floats).
 * Returns 0, TSR_EIMAGE, TSR_ELIMIT, TSR_ENOMEM, TSR_EIO.
 */
int tsr_image_read(const char *path, const struct tsr_image_limits *lim,
                   struct tsr_image_info *info, float **pixels, char *err,
                   size_t errlen);

/*
 * Verifies a rendered piece: it decodes completely, its data window is
 * exactly *expect inside a display window of full_width x full_height (pass
 * expect NULL to skip the window check), and it holds no NaN or Inf. Fills
 * *stats when not NULL. Returns 0, TSR_EIMAGE (with the reason in err),
 * TSR_ELIMIT, TSR_EIO.
 */
int tsr_image_verify(const char *path, const struct tsr_image_limits *lim,
                     const struct tsr_region *expect, int full_width,
                     int full_height, struct tsr_image_stats *stats, char *err,
                     size_t errlen);

/*
 * Assembles pieces into one full-frame EXR at out. The pieces' data windows
 * must cover the display window exactly, with no gap and no overlap, and
 * they must share display window and channel count. Pixels are copied, not
 * resampled, so the result equals a whole-frame render bit for bit.
 * Returns 0, TSR_EIMAGE (coverage or mismatch, reason in err), TSR_ELIMIT,
 * TSR_ENOMEM, TSR_EIO.
 */
int tsr_image_assemble(const char *const *pieces, size_t npieces,
                       const struct tsr_image_limits *lim, const char *out,
                       char *err, size_t errlen);

/*
 * Writes a contact sheet PNG: the images in a grid of `columns`, each scaled
 * to `thumb_width` pixels wide, tone-mapped to sRGB, with a small label
 * (borrowed strings, may be NULL) drawn under each thumbnail.
 * Returns 0, TSR_EIMAGE, TSR_EINVAL, TSR_EIO.
 */
int tsr_image_contact_sheet(const char *const *images, const char *const *labels,
                            size_t nimages, int columns, int thumb_width,
                            const struct tsr_image_limits *lim, const char *out_png,
                            char *err, size_t errlen);

#endif
