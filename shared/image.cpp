// image.cpp: the OpenImageIO shim behind image.h. The only C++ file in
// Tessera: it turns OpenImageIO's classes and exceptions into plain C calls
// that return TSR_E* codes with a message in the caller's buffer.
//
// Every reader goes through s_open, which reads the header only and refuses
// an image past the caller's limits before a single pixel is allocated; the
// pixel count is computed with overflow checks. Every public function catches
// every exception: a corrupt file costs its caller an error code, never the
// process. Pieces of a frame are EXR images whose data window sits inside a
// display window whose origin is 0,0; the assembler checks that the pieces'
// data windows tile the display window exactly before it reads any pixels.
#include <OpenImageIO/imageio.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <memory>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

extern "C" {
#include "tessera/error.h"
#include "tessera/image.h"
}

using namespace OIIO;

// Contact sheet layout; image.h states it so callers can predict the size.
static const int SHEET_PAD = 8;        // pixels around and between cells
static const uint8_t SHEET_BG = 32;    // dark grey background
static const uint8_t SHEET_INK = 220;  // label colour
static const int SHEET_MAX_ASPECT = 4; // thumbnails at most 4x taller than wide

// An image opened for reading: OpenImageIO's reader and our view of its header.
struct opened {
    std::unique_ptr<ImageInput> in; // the reader, positioned at subimage 0
    struct tsr_image_info info;     // geometry as image.h describes it
    size_t nfloats;                 // width * height * nchannels, overflow-checked
};

static void s_err(char *err, size_t errlen, const std::string &msg)
{
    if (err && errlen > 0)
        snprintf(err, errlen, "%s", msg.c_str());
}

static void s_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void s_errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

// OpenImageIO's messages may span lines; ours are one line.
static std::string s_oneline(std::string s)
{
    for (char &c : s)
        if (c == '\n' || c == '\r')
            c = ' ';
    while (!s.empty() && s.back() == ' ')
        s.pop_back();
    return s.empty() ? std::string("unknown error") : s;
}

// A temporary name beside path that no other thread or process uses, ending
// in ext so that OpenImageIO's writers accept it.
static std::string s_tmpname(const char *path, const char *ext)
{
    static std::atomic<unsigned> counter{0};
    return std::string(path) + ".tmp." + std::to_string(getpid()) + "." +
           std::to_string(counter.fetch_add(1)) + ext;
}

// Flushes tmp to disk and renames it to path, so that a reader sees the old
// file or the whole new one, also after a crash. Removes tmp on failure.
static int s_commit(const std::string &tmp, const char *path, char *err, size_t errlen)
{
    int fd = open(tmp.c_str(), O_RDONLY);
    if (fd < 0 || fsync(fd) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        unlink(tmp.c_str());
        s_errf(err, errlen, "'%s': sync failed: %s", path, strerror(e));
        return TSR_EIO;
    }
    close(fd);
    if (rename(tmp.c_str(), path) != 0) {
        s_errf(err, errlen, "'%s': rename failed: %s", path, strerror(errno));
        unlink(tmp.c_str());
        return TSR_EIO;
    }
    return 0;
}

static int s_width(const struct tsr_region &r)
{
    return r.x1 - r.x0;
}

static int s_height(const struct tsr_region &r)
{
    return r.y1 - r.y0;
}

static const struct tsr_image_limits *s_limits(const struct tsr_image_limits *lim,
                                               struct tsr_image_limits *storage)
{
    if (lim)
        return lim;
    tsr_image_limits_default(storage);
    return storage;
}

extern "C" void tsr_image_limits_default(struct tsr_image_limits *lim)
{
    lim->max_width = 32768;
    lim->max_height = 32768;
    lim->max_channels = 16;
}

// True when the file at path starts with OpenEXR's magic number.
static bool s_is_exr(const char *path)
{
    unsigned char magic[4];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, magic, sizeof magic);
    close(fd);
    return n == 4 && magic[0] == 0x76 && magic[1] == 0x2f && magic[2] == 0x31 &&
           magic[3] == 0x01;
}

#define S_EXR_HEADER_MAX (1 << 20) // an OpenEXR header must end within this
#define S_EXR_ATTRS_MAX 1024       // attributes in one header

static int32_t s_le32(const unsigned char *p)
{
    return (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                     (uint32_t)p[3] << 24);
}

// Walks an OpenEXR header ourselves before OpenEXR does. The library trusts
// the sizes a header declares: a 400-byte file can declare a string
// attribute of 800 MB, or a data window whose table of chunk offsets takes
// gigabytes, and OpenEXR allocates them before anything can object (found by
// fuzz_image). Here every attribute must fit in the file and in the first
// S_EXR_HEADER_MAX bytes, multi-part and deep files are refused (pieces are
// neither), and the data and display windows and the channel count must be
// within lim, so that what OpenEXR then allocates is bounded by the limits.
static int s_exr_precheck(const char *path, const struct tsr_image_limits *lim, char *err,
                          size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        s_errf(err, errlen, "'%s': cannot open: %s", path, strerror(errno));
        return TSR_EIO;
    }
    std::vector<unsigned char> buf(S_EXR_HEADER_MAX);
    size_t len = 0;
    while (len < buf.size()) {
        ssize_t n = read(fd, buf.data() + len, buf.size() - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    const unsigned char *p = buf.data();
    if (len < 8) {
        s_errf(err, errlen, "'%s': OpenEXR header truncated", path);
        return TSR_EIMAGE;
    }
    uint32_t version = (uint32_t)s_le32(p + 4);
    // Bits of the version field: 0x200 tiled, 0x400 long names, 0x800 deep
    // data, 0x1000 multi-part; no other bit is defined.
    if ((version & 0xff) != 2 || (version & ~0x6ffu) != 0) {
        s_errf(err, errlen, "'%s': OpenEXR version field 0x%x is not a single-part "
               "flat image", path, version);
        return TSR_EIMAGE;
    }
    size_t name_max = (version & 0x400) ? 255 : 31;
    size_t pos = 8;
    int64_t dw[4] = {0, 0, -1, -1}, disp[4] = {0, 0, -1, -1};
    bool have_dw = false, have_disp = false;
    long nchannels = -1;
    for (int nattr = 0;; nattr++) {
        if (nattr > S_EXR_ATTRS_MAX) {
            s_errf(err, errlen, "'%s': OpenEXR header has more than %d attributes", path,
                   S_EXR_ATTRS_MAX);
            return TSR_ELIMIT;
        }
        const char *name = (const char *)p + pos;
        size_t nlen = strnlen(name, len - pos);
        if (pos + nlen >= len) {
            s_errf(err, errlen, "'%s': OpenEXR header truncated or past %d bytes", path,
                   S_EXR_HEADER_MAX);
            return TSR_EIMAGE;
        }
        if (nlen == 0)
            break; // the end of the header
        const char *type = name + nlen + 1;
        size_t tpos = pos + nlen + 1;
        size_t tlen = tpos < len ? strnlen(type, len - tpos) : len;
        if (nlen > name_max || tpos + tlen + 1 + 4 > len || tlen > name_max) {
            s_errf(err, errlen, "'%s': OpenEXR attribute name or type too long or "
                   "truncated", path);
            return TSR_EIMAGE;
        }
        size_t vpos = tpos + tlen + 1 + 4;
        int32_t size = s_le32(p + vpos - 4);
        if (size < 0 || (size_t)size > len - vpos) {
            s_errf(err, errlen, "'%s': OpenEXR attribute '%.31s' declares %d bytes; the "
                   "header has %zu left", path, name, size, len - vpos);
            return TSR_EIMAGE;
        }
        const unsigned char *v = p + vpos;
        if ((!strcmp(name, "dataWindow") || !strcmp(name, "displayWindow")) &&
            !strcmp(type, "box2i") && size == 16) {
            int64_t *box = !strcmp(name, "dataWindow") ? dw : disp;
            for (int i = 0; i < 4; i++)
                box[i] = s_le32(v + 4 * i);
            (!strcmp(name, "dataWindow") ? have_dw : have_disp) = true;
        } else if (!strcmp(name, "channels") && !strcmp(type, "chlist")) {
            // Each channel: a name, its NUL and 16 bytes; then one NUL.
            nchannels = 0;
            size_t c = 0;
            while (c < (size_t)size && v[c] != 0 && nchannels <= lim->max_channels) {
                size_t cl = strnlen((const char *)v + c, (size_t)size - c);
                c += cl + 1 + 16;
                nchannels++;
            }
        }
        pos = vpos + (size_t)size;
    }
    if (!have_dw || !have_disp || nchannels < 1) {
        s_errf(err, errlen, "'%s': OpenEXR header lacks its data window, display window "
               "or channels", path);
        return TSR_EIMAGE;
    }
    int64_t w = dw[2] - dw[0] + 1, h = dw[3] - dw[1] + 1;
    int64_t fw = disp[2] - disp[0] + 1, fh = disp[3] - disp[1] + 1;
    if (w < 1 || h < 1 || fw < 1 || fh < 1 || w > lim->max_width || h > lim->max_height ||
        fw > lim->max_width || fh > lim->max_height || nchannels > lim->max_channels) {
        s_errf(err, errlen, "'%s': declares data %lldx%lld, display %lldx%lld, %ld "
               "channels; the limit is %dx%d, %d channels", path, (long long)w,
               (long long)h, (long long)fw, (long long)fh, nchannels, lim->max_width,
               lim->max_height, lim->max_channels);
        return TSR_ELIMIT;
    }
    return 0;
}

// Opens path and checks its header against lim. On success o->in is open
// and o->info, o->nfloats describe it; nothing of the pixels is read yet.
// An OpenEXR file's header is walked first (s_exr_precheck). With exr_only, only OpenEXR's reader is given the file: images that come
// from workers and renderers are OpenEXR, and the decoders of every other
// format OpenImageIO knows stay out of reach of their bytes.
static int s_open(const char *path, const struct tsr_image_limits *lim, struct opened *o,
                  char *err, size_t errlen, bool exr_only = false)
{
    if (!path) {
        s_err(err, errlen, "no image path");
        return TSR_EINVAL;
    }
    struct stat st;
    if (stat(path, &st) != 0) {
        s_errf(err, errlen, "'%s': cannot open: %s", path, strerror(errno));
        return TSR_EIO;
    }
    if (!S_ISREG(st.st_mode)) {
        s_errf(err, errlen, "'%s': not a regular file", path);
        return TSR_EIMAGE;
    }
    if (access(path, R_OK) != 0) {
        s_errf(err, errlen, "'%s': cannot read: %s", path, strerror(errno));
        return TSR_EIO;
    }
    bool exr = s_is_exr(path);
    if (exr) {
        int rc = s_exr_precheck(path, lim, err, errlen);
        if (rc != 0)
            return rc;
    }
    if (exr_only) {
        if (!exr) {
            s_errf(err, errlen, "'%s': not an OpenEXR image", path);
            return TSR_EIMAGE;
        }
        o->in = ImageInput::create("openexr");
        ImageSpec spec;
        if (o->in && !o->in->open(path, spec)) {
            s_errf(err, errlen, "'%s': not a decodable image: %s", path,
                   s_oneline(o->in->geterror()).c_str());
            o->in.reset();
            return TSR_EIMAGE;
        }
    } else {
        o->in = ImageInput::open(path);
    }
    if (!o->in) {
        s_errf(err, errlen, "'%s': not a decodable image: %s", path,
               s_oneline(OIIO::geterror()).c_str());
        return TSR_EIMAGE;
    }
    const ImageSpec &s = o->in->spec();
    if (s.deep || s.depth != 1 || s.width <= 0 || s.height <= 0 || s.nchannels <= 0) {
        s_errf(err, errlen, "'%s': unsupported image layout (%dx%dx%d, %d channels%s)",
               path, s.width, s.height, s.depth, s.nchannels, s.deep ? ", deep" : "");
        return TSR_EIMAGE;
    }
    if (s.width > lim->max_width || s.full_width > lim->max_width ||
        s.height > lim->max_height || s.full_height > lim->max_height ||
        s.nchannels > lim->max_channels) {
        s_errf(err, errlen,
               "'%s': declares data %dx%d, display %dx%d, %d channels; "
               "the limit is %dx%d, %d channels",
               path, s.width, s.height, s.full_width, s.full_height, s.nchannels,
               lim->max_width, lim->max_height, lim->max_channels);
        return TSR_ELIMIT;
    }
    if (s.full_x != 0 || s.full_y != 0 || s.full_width <= 0 || s.full_height <= 0) {
        s_errf(err, errlen, "'%s': display window (%d,%d) %dx%d does not start at 0,0",
               path, s.full_x, s.full_y, s.full_width, s.full_height);
        return TSR_EIMAGE;
    }
    // The region's far corner must fit in an int, whatever the offsets.
    int64_t x1 = (int64_t)s.x + s.width, y1 = (int64_t)s.y + s.height;
    if (x1 > INT32_MAX || y1 > INT32_MAX) {
        s_errf(err, errlen, "'%s': data window offset (%d,%d) out of range", path, s.x,
               s.y);
        return TSR_EIMAGE;
    }
    size_t n;
    if (__builtin_mul_overflow((size_t)s.width, (size_t)s.height, &n) ||
        __builtin_mul_overflow(n, (size_t)s.nchannels, &n) ||
        n > SIZE_MAX / sizeof(float)) {
        s_errf(err, errlen, "'%s': %dx%d with %d channels does not fit in memory", path,
               s.width, s.height, s.nchannels);
        return TSR_ELIMIT;
    }
    o->info.data.x0 = s.x;
    o->info.data.y0 = s.y;
    o->info.data.x1 = (int)x1;
    o->info.data.y1 = (int)y1;
    o->info.full_width = s.full_width;
    o->info.full_height = s.full_height;
    o->info.nchannels = s.nchannels;
    o->nfloats = n;
    return 0;
}

// Decodes the whole of o's first subimage as float into dst, whose rows are
// ystride bytes apart (pixels packed within a row), then closes the reader.
static int s_decode(const char *path, struct opened *o, float *dst, stride_t ystride,
                    char *err, size_t errlen)
{
    int nc = o->info.nchannels;
    stride_t xstride = (stride_t)nc * (stride_t)sizeof(float);
    bool ok = o->in->read_image(0, 0, 0, nc, TypeDesc::FLOAT, dst, xstride, ystride);
    if (!ok || o->in->has_error()) {
        s_errf(err, errlen, "'%s': cannot decode pixels: %s", path,
               s_oneline(o->in->geterror()).c_str());
        o->in->close();
        return TSR_EIMAGE;
    }
    o->in->close();
    return 0;
}

// Reads a whole image into a malloc'd buffer; the caller frees *pixels.
static int s_read(const char *path, const struct tsr_image_limits *lim,
                  struct tsr_image_info *info, float **pixels, char *err, size_t errlen,
                  bool exr_only = false)
{
    struct opened o;
    int rc = s_open(path, lim, &o, err, errlen, exr_only);
    if (rc != 0)
        return rc;
    // Owned here until handed over, also when the decoder throws.
    std::unique_ptr<float, void (*)(void *)> buf(
        (float *)malloc(o.nfloats * sizeof(float)), free);
    if (!buf) {
        s_errf(err, errlen, "'%s': out of memory for %zu samples", path, o.nfloats);
        return TSR_ENOMEM;
    }
    stride_t ystride = (stride_t)s_width(o.info.data) * o.info.nchannels * sizeof(float);
    rc = s_decode(path, &o, buf.get(), ystride, err, errlen);
    if (rc != 0)
        return rc;
    *info = o.info;
    *pixels = buf.release();
    return 0;
}

extern "C" int tsr_image_write_exr(const char *path, const struct tsr_image_info *info,
                                   const float *pixels, char *err, size_t errlen)
{
    if (!path || !info || !pixels) {
        s_err(err, errlen, "no path, geometry or pixels to write");
        return TSR_EINVAL;
    }
    const tsr_region &r = info->data;
    int w = s_width(r), h = s_height(r);
    if (w <= 0 || h <= 0 || info->nchannels < 1 || info->nchannels > 4 ||
        info->full_width <= 0 || info->full_height <= 0) {
        s_err(err, errlen, "invalid image geometry");
        return TSR_EINVAL;
    }
    try {
        ImageSpec spec(w, h, info->nchannels, TypeDesc::FLOAT);
        spec.x = r.x0;
        spec.y = r.y0;
        spec.full_x = 0;
        spec.full_y = 0;
        spec.full_width = info->full_width;
        spec.full_height = info->full_height;
        spec.attribute("compression", "zip");
        // OpenImageIO stamps the write time into the header (capDate) unless
        // told a date: with none, the same pixels always give the same bytes,
        // so the same frame has the same sha256 however and whenever it was
        // rendered, and identical pieces are stored once.
        spec.attribute("DateTime", "");
        std::string tmp = s_tmpname(path, ".exr");
        auto out = ImageOutput::create("openexr");
        if (!out) {
            s_err(err, errlen, "openexr writer unavailable: " + s_oneline(geterror()));
            return TSR_EIO;
        }
        if (!out->open(tmp, spec) || !out->write_image(TypeDesc::FLOAT, pixels) ||
            !out->close()) {
            s_err(err, errlen,
                  std::string("'") + path + "': " + s_oneline(out->geterror()));
            unlink(tmp.c_str());
            return TSR_EIO;
        }
        return s_commit(tmp, path, err, errlen);
    } catch (const std::exception &e) {
        s_errf(err, errlen, "'%s': %s", path, e.what());
        return TSR_EIO;
    } catch (...) {
        s_errf(err, errlen, "'%s': unexpected exception while writing", path);
        return TSR_EIO;
    }
}

extern "C" int tsr_image_probe(const char *path, const struct tsr_image_limits *lim,
                               struct tsr_image_info *info, char *err, size_t errlen)
{
    if (!info) {
        s_err(err, errlen, "no place for the image geometry");
        return TSR_EINVAL;
    }
    struct tsr_image_limits deflim;
    try {
        struct opened o;
        int rc = s_open(path, s_limits(lim, &deflim), &o, err, errlen);
        if (rc != 0)
            return rc;
        o.in->close();
        *info = o.info;
        return 0;
    } catch (const std::exception &e) {
        s_errf(err, errlen, "'%s': %s", path, e.what());
        return TSR_EIMAGE;
    } catch (...) {
        s_errf(err, errlen, "'%s': unexpected exception while probing", path);
        return TSR_EIMAGE;
    }
}

extern "C" int tsr_image_read(const char *path, const struct tsr_image_limits *lim,
                              struct tsr_image_info *info, float **pixels, char *err,
                              size_t errlen)
{
    if (!info || !pixels) {
        s_err(err, errlen, "no place for the image");
        return TSR_EINVAL;
    }
    *pixels = NULL;
    struct tsr_image_limits deflim;
    try {
        return s_read(path, s_limits(lim, &deflim), info, pixels, err, errlen);
    } catch (const std::exception &e) {
        s_errf(err, errlen, "'%s': %s", path, e.what());
        return TSR_EIMAGE;
    } catch (...) {
        s_errf(err, errlen, "'%s': unexpected exception while reading", path);
        return TSR_EIMAGE;
    }
}

// Statistics of n pixels of nc channels. min, max and mean are taken over
// the finite samples only (0 when a channel has none); NaN and Inf are counted
// over all channels, also those past the fourth.
static void s_stats(const float *px, size_t npixels, int nc, struct tsr_image_stats *st)
{
    int ns = std::min(nc, 4);
    double sum[4] = {0, 0, 0, 0};
    uint64_t finite[4] = {0, 0, 0, 0};
    memset(st, 0, sizeof *st);
    st->nchannels = ns;
    for (int c = 0; c < 4; c++) {
        st->min[c] = INFINITY;
        st->max[c] = -INFINITY;
    }
    for (size_t i = 0; i < npixels; i++) {
        const float *p = px + i * (size_t)nc;
        for (int c = 0; c < nc; c++) {
            float v = p[c];
            if (std::isnan(v)) {
                st->nan_count++;
                continue;
            }
            if (std::isinf(v)) {
                st->inf_count++;
                continue;
            }
            if (c >= 4)
                continue;
            st->min[c] = std::min(st->min[c], (double)v);
            st->max[c] = std::max(st->max[c], (double)v);
            sum[c] += v;
            finite[c]++;
        }
    }
    for (int c = 0; c < 4; c++) {
        if (c < ns && finite[c] > 0) {
            st->mean[c] = sum[c] / (double)finite[c];
        } else {
            st->min[c] = st->max[c] = st->mean[c] = 0;
        }
    }
}

// Checks the geometry a header declares against what is expected of it.
static int s_check_window(const char *path, const struct tsr_image_info &info,
                          const struct tsr_region *expect, int full_width, int full_height,
                          char *err, size_t errlen)
{
    const tsr_region &d = info.data;
    if (info.full_width != full_width || info.full_height != full_height) {
        s_errf(err, errlen, "'%s': display window is %dx%d, expected %dx%d", path,
               info.full_width, info.full_height, full_width, full_height);
        return TSR_EIMAGE;
    }
    if (d.x0 != expect->x0 || d.y0 != expect->y0 || d.x1 != expect->x1 ||
        d.y1 != expect->y1) {
        s_errf(err, errlen, "'%s': data window is [%d,%d)x[%d,%d), expected [%d,%d)x[%d,%d)",
               path, d.x0, d.x1, d.y0, d.y1, expect->x0, expect->x1, expect->y0,
               expect->y1);
        return TSR_EIMAGE;
    }
    return 0;
}

// The header is checked against expect before a single pixel is allocated:
// a piece that declares 8192x8192 for a 64x64 tile costs a header read, not
// the gigabyte its pixels would take.
static int s_verify(const char *path, const struct tsr_image_limits *lim,
                    const struct tsr_region *expect, int full_width, int full_height,
                    struct tsr_image_stats *stats, char *err, size_t errlen)
{
    struct opened o;
    int rc = s_open(path, lim, &o, err, errlen, true);
    if (rc != 0)
        return rc;
    if (expect &&
        (rc = s_check_window(path, o.info, expect, full_width, full_height, err, errlen)) != 0) {
        o.in->close();
        return rc;
    }
    std::unique_ptr<float, void (*)(void *)> px((float *)malloc(o.nfloats * sizeof(float)),
                                                 free);
    if (!px) {
        s_errf(err, errlen, "'%s': out of memory for %zu samples", path, o.nfloats);
        return TSR_ENOMEM;
    }
    stride_t ystride = (stride_t)s_width(o.info.data) * o.info.nchannels * sizeof(float);
    if ((rc = s_decode(path, &o, px.get(), ystride, err, errlen)) != 0)
        return rc;
    struct tsr_image_stats st;
    size_t npixels = (size_t)s_width(o.info.data) * (size_t)s_height(o.info.data);
    s_stats(px.get(), npixels, o.info.nchannels, &st);
    px.reset();
    if (stats)
        *stats = st;
    if (st.nan_count > 0 || st.inf_count > 0) {
        s_errf(err, errlen, "'%s': piece has %llu NaN and %llu Inf samples", path,
               (unsigned long long)st.nan_count, (unsigned long long)st.inf_count);
        return TSR_EIMAGE;
    }
    return 0;
}

extern "C" int tsr_image_verify(const char *path, const struct tsr_image_limits *lim,
                                const struct tsr_region *expect, int full_width,
                                int full_height, struct tsr_image_stats *stats, char *err,
                                size_t errlen)
{
    struct tsr_image_limits deflim;
    try {
        return s_verify(path, s_limits(lim, &deflim), expect, full_width, full_height,
                        stats, err, errlen);
    } catch (const std::exception &e) {
        s_errf(err, errlen, "'%s': %s", path, e.what());
        return TSR_EIMAGE;
    } catch (...) {
        s_errf(err, errlen, "'%s': unexpected exception while verifying", path);
        return TSR_EIMAGE;
    }
}

// One piece of a frame as the assembler sees it.
struct piece {
    const char *path;           // borrowed from the caller
    struct tsr_image_info info; // geometry from its header
};

// Checks that the pieces' data windows tile [0,fw)x[0,fh) with no gap and no
// overlap. It sweeps the bands between consecutive distinct row edges; within
// a band every piece either spans all its rows or none, so one sorted pass
// over the spanning pieces' columns finds any gap or overlap. Memory is
// O(number of pieces), whatever the frame size. The pieces must already lie
// inside the display window.
static int s_check_coverage(const std::vector<piece> &pcs, int fw, int fh, char *err,
                            size_t errlen)
{
    std::vector<int> ys;
    ys.reserve(pcs.size() * 2 + 2);
    ys.push_back(0);
    ys.push_back(fh);
    for (const piece &p : pcs) {
        ys.push_back(p.info.data.y0);
        ys.push_back(p.info.data.y1);
    }
    std::sort(ys.begin(), ys.end());
    ys.erase(std::unique(ys.begin(), ys.end()), ys.end());

    std::vector<size_t> by_top(pcs.size());
    for (size_t i = 0; i < pcs.size(); i++)
        by_top[i] = i;
    std::sort(by_top.begin(), by_top.end(), [&](size_t a, size_t b) {
        return pcs[a].info.data.y0 < pcs[b].info.data.y0;
    });

    std::vector<size_t> active;
    size_t next = 0;
    for (size_t band = 0; band + 1 < ys.size(); band++) {
        int y = ys[band];
        active.erase(std::remove_if(active.begin(), active.end(),
                                    [&](size_t i) { return pcs[i].info.data.y1 <= y; }),
                     active.end());
        while (next < by_top.size() && pcs[by_top[next]].info.data.y0 <= y)
            active.push_back(by_top[next++]);
        std::sort(active.begin(), active.end(), [&](size_t a, size_t b) {
            const tsr_region &ra = pcs[a].info.data, &rb = pcs[b].info.data;
            return ra.x0 != rb.x0 ? ra.x0 < rb.x0 : a < b;
        });
        int x = 0;              // first column not yet covered in this band
        size_t last = SIZE_MAX; // the piece that ends at x
        for (size_t i : active) {
            const tsr_region &r = pcs[i].info.data;
            if (r.x0 > x) {
                s_errf(err, errlen, "pieces leave a gap at pixel (%d,%d)", x, y);
                return TSR_EIMAGE;
            }
            if (r.x0 < x) {
                s_errf(err, errlen, "pieces '%s' and '%s' overlap at pixel (%d,%d)",
                       pcs[last].path, pcs[i].path, r.x0, y);
                return TSR_EIMAGE;
            }
            x = r.x1;
            last = i;
        }
        if (x < fw) {
            s_errf(err, errlen, "pieces leave a gap at pixel (%d,%d)", x, y);
            return TSR_EIMAGE;
        }
    }
    return 0;
}

static int s_assemble(const char *const *paths, size_t n,
                      const struct tsr_image_limits *lim, const char *out, char *err,
                      size_t errlen)
{
    // First every header: geometry and coverage are settled before any pixel
    // memory is taken.
    std::vector<piece> pcs(n);
    for (size_t i = 0; i < n; i++) {
        struct opened o;
        int rc = s_open(paths[i], lim, &o, err, errlen, true);
        if (rc != 0)
            return rc;
        o.in->close();
        pcs[i].path = paths[i];
        pcs[i].info = o.info;
        const tsr_image_info &a = pcs[0].info, &b = o.info;
        if (b.full_width != a.full_width || b.full_height != a.full_height) {
            s_errf(err, errlen, "'%s': display window %dx%d differs from '%s' (%dx%d)",
                   paths[i], b.full_width, b.full_height, paths[0], a.full_width,
                   a.full_height);
            return TSR_EIMAGE;
        }
        if (b.nchannels != a.nchannels) {
            s_errf(err, errlen, "'%s': %d channels, but '%s' has %d", paths[i],
                   b.nchannels, paths[0], a.nchannels);
            return TSR_EIMAGE;
        }
        const tsr_region &d = b.data;
        if (d.x0 < 0 || d.y0 < 0 || d.x1 > b.full_width || d.y1 > b.full_height) {
            s_errf(err, errlen,
                   "'%s': data window [%d,%d)x[%d,%d) lies outside the display "
                   "window %dx%d",
                   paths[i], d.x0, d.x1, d.y0, d.y1, b.full_width, b.full_height);
            return TSR_EIMAGE;
        }
    }
    const int fw = pcs[0].info.full_width, fh = pcs[0].info.full_height;
    const int nc = pcs[0].info.nchannels;
    if (nc > 4) {
        s_errf(err, errlen, "'%s': %d channels; frames hold at most 4", paths[0], nc);
        return TSR_EIMAGE;
    }
    int rc = s_check_coverage(pcs, fw, fh, err, errlen);
    if (rc != 0)
        return rc;

    size_t nfloats; // fw, fh and nc are within the limits, which s_open checked
    if (__builtin_mul_overflow((size_t)fw, (size_t)fh, &nfloats) ||
        __builtin_mul_overflow(nfloats, (size_t)nc, &nfloats) ||
        nfloats > SIZE_MAX / sizeof(float)) {
        s_errf(err, errlen, "frame %dx%d with %d channels does not fit in memory", fw, fh,
               nc);
        return TSR_ELIMIT;
    }
    std::unique_ptr<float, void (*)(void *)> frame(
        (float *)malloc(nfloats * sizeof(float)), free);
    if (!frame) {
        s_errf(err, errlen, "out of memory for a %dx%d frame", fw, fh);
        return TSR_ENOMEM;
    }
    // Each piece decodes straight into its place in the frame: float to float
    // is a copy, so the bits are the renderer's.
    const stride_t ystride = (stride_t)fw * nc * (stride_t)sizeof(float);
    for (const piece &p : pcs) {
        struct opened o;
        rc = s_open(p.path, lim, &o, err, errlen, true);
        if (rc != 0)
            return rc;
        const tsr_image_info &a = p.info, &b = o.info;
        if (memcmp(&a.data, &b.data, sizeof a.data) != 0 ||
            a.full_width != b.full_width || a.full_height != b.full_height ||
            a.nchannels != b.nchannels) {
            s_errf(err, errlen, "'%s': changed while being assembled", p.path);
            return TSR_EIMAGE;
        }
        float *dst = frame.get() +
                     ((size_t)a.data.y0 * (size_t)fw + (size_t)a.data.x0) * (size_t)nc;
        rc = s_decode(p.path, &o, dst, ystride, err, errlen);
        if (rc != 0)
            return rc;
    }
    struct tsr_image_info whole;
    whole.data.x0 = 0;
    whole.data.y0 = 0;
    whole.data.x1 = fw;
    whole.data.y1 = fh;
    whole.full_width = fw;
    whole.full_height = fh;
    whole.nchannels = nc;
    return tsr_image_write_exr(out, &whole, frame.get(), err, errlen);
}

extern "C" int tsr_image_assemble(const char *const *pieces, size_t npieces,
                                  const struct tsr_image_limits *lim, const char *out,
                                  char *err, size_t errlen)
{
    if (!pieces || npieces == 0 || !out) {
        s_err(err, errlen, "nothing to assemble");
        return TSR_EINVAL;
    }
    struct tsr_image_limits deflim;
    try {
        return s_assemble(pieces, npieces, s_limits(lim, &deflim), out, err, errlen);
    } catch (const std::bad_alloc &) {
        s_errf(err, errlen, "'%s': out of memory while assembling", out);
        return TSR_ENOMEM;
    } catch (const std::exception &e) {
        s_errf(err, errlen, "'%s': %s", out, e.what());
        return TSR_EIMAGE;
    } catch (...) {
        s_errf(err, errlen, "'%s': unexpected exception while assembling", out);
        return TSR_EIMAGE;
    }
}

// A 5x7 bitmap font for contact-sheet labels. OpenImageIO's render_text needs
// FreeType and a font file it can find (on Debian 12 it finds none even with
// fonts-dejavu-core installed), so labels use this built-in font: it works on
// a bare machine and draws the same pixels everywhere. Each row's five low
// bits are the pixels, bit 4 leftmost. Lower case is drawn as upper case;
// any other character missing here is drawn as '?'.
struct glyph {
    char c;                // the character
    unsigned char rows[7]; // top to bottom
};

static const struct glyph GLYPHS[] = {
    {' ', {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}},
    {'0', {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E}},
    {'1', {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E}},
    {'2', {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F}},
    {'3', {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E}},
    {'4', {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02}},
    {'5', {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E}},
    {'6', {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E}},
    {'7', {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08}},
    {'8', {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E}},
    {'9', {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C}},
    {'A', {0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11}},
    {'B', {0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E}},
    {'C', {0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E}},
    {'D', {0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C}},
    {'E', {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F}},
    {'F', {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10}},
    {'G', {0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F}},
    {'H', {0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11}},
    {'I', {0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E}},
    {'J', {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C}},
    {'K', {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11}},
    {'L', {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F}},
    {'M', {0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11}},
    {'N', {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11}},
    {'O', {0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}},
    {'P', {0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10}},
    {'Q', {0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D}},
    {'R', {0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11}},
    {'S', {0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E}},
    {'T', {0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04}},
    {'U', {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}},
    {'V', {0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04}},
    {'W', {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A}},
    {'X', {0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11}},
    {'Y', {0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04}},
    {'Z', {0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F}},
    {'-', {0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00}},
    {'_', {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F}},
    {'.', {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C}},
    {',', {0x00, 0x00, 0x00, 0x00, 0x0C, 0x04, 0x08}},
    {':', {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00}},
    {'/', {0x01, 0x01, 0x02, 0x04, 0x08, 0x10, 0x10}},
    {'#', {0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A}},
    {'(', {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02}},
    {')', {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08}},
    {'[', {0x0E, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0E}},
    {']', {0x0E, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0E}},
    {'+', {0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00}},
    {'=', {0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00}},
    {'%', {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03}},
    {'*', {0x00, 0x04, 0x15, 0x0E, 0x15, 0x04, 0x00}},
    {'!', {0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x04}},
    {'\'', {0x04, 0x04, 0x08, 0x00, 0x00, 0x00, 0x00}},
    {'?', {0x0E, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04}},
};

static const struct glyph *s_glyph(char c)
{
    if (c >= 'a' && c <= 'z')
        c = (char)(c - 'a' + 'A');
    const struct glyph *unknown = NULL;
    for (const struct glyph &g : GLYPHS) {
        if (g.c == c)
            return &g;
        if (g.c == '?')
            unknown = &g;
    }
    return unknown;
}

// An 8-bit RGB canvas, row major.
struct canvas {
    int w;                    // width in pixels
    int h;                    // height in pixels
    std::vector<uint8_t> rgb; // w * h * 3 bytes
};

// Draws text with its top-left corner at (x,y), each font pixel a scale x
// scale square, clipped to max_width pixels of text and to the canvas.
static void s_draw_text(struct canvas *cv, int x, int y, int scale, int max_width,
                        const char *text)
{
    int advance = 6 * scale;
    for (int i = 0; text[i] && (i + 1) * advance - scale <= max_width; i++) {
        const struct glyph *g = s_glyph(text[i]);
        for (int row = 0; row < 7; row++)
            for (int col = 0; col < 5; col++) {
                if (!(g->rows[row] & (0x10 >> col)))
                    continue;
                for (int dy = 0; dy < scale; dy++)
                    for (int dx = 0; dx < scale; dx++) {
                        int px = x + i * advance + col * scale + dx;
                        int py = y + row * scale + dy;
                        if (px < 0 || py < 0 || px >= cv->w || py >= cv->h)
                            continue;
                        uint8_t *p = &cv->rgb[((size_t)py * cv->w + px) * 3];
                        p[0] = p[1] = p[2] = SHEET_INK;
                    }
            }
    }
}

// Linear light in [0,1] to an 8-bit sRGB code value.
static uint8_t s_srgb8(double v)
{
    v = v <= 0.0031308 ? 12.92 * v : 1.055 * std::pow(v, 1.0 / 2.4) - 0.055;
    long q = std::lround(v * 255.0);
    return (uint8_t)std::min(255L, std::max(0L, q));
}

// Samples clamped to [0,1] before filtering, so NaN shows black and Inf white
// instead of spreading over the thumbnail.
static double s_clamp01(float v)
{
    if (!(v > 0.0f)) // also NaN
        return 0.0;
    return v >= 1.0f ? 1.0 : (double)v;
}

// Box-filters the image's display window (pixels outside the data window are
// black) to tw x th, tone-maps it and draws it at (ox,oy).
static void s_draw_thumb(struct canvas *cv, int ox, int oy, int tw, int th,
                         const struct tsr_image_info &info, const float *px)
{
    const int fw = info.full_width, fh = info.full_height, nc = info.nchannels;
    const tsr_region &d = info.data;
    const int dw = s_width(d);
    for (int ty = 0; ty < th; ty++) {
        int sy0 = (int)((int64_t)ty * fh / th);
        int sy1 = std::max(sy0 + 1, (int)((int64_t)(ty + 1) * fh / th));
        for (int tx = 0; tx < tw; tx++) {
            int sx0 = (int)((int64_t)tx * fw / tw);
            int sx1 = std::max(sx0 + 1, (int)((int64_t)(tx + 1) * fw / tw));
            double sum[3] = {0, 0, 0};
            int y0 = std::max(sy0, d.y0), y1 = std::min(sy1, d.y1);
            int x0 = std::max(sx0, d.x0), x1 = std::min(sx1, d.x1);
            for (int y = y0; y < y1; y++)
                for (int x = x0; x < x1; x++) {
                    const float *p =
                        px + ((size_t)(y - d.y0) * dw + (size_t)(x - d.x0)) * nc;
                    for (int c = 0; c < 3; c++)
                        sum[c] += s_clamp01(p[nc >= 3 ? c : 0]);
                }
            double area = (double)(sy1 - sy0) * (sx1 - sx0);
            uint8_t *q = &cv->rgb[((size_t)(oy + ty) * cv->w + (ox + tx)) * 3];
            for (int c = 0; c < 3; c++)
                q[c] = s_srgb8(sum[c] / area);
        }
    }
}

// Thumbnail size for a display window of fw x fh: thumb_width wide keeping
// the aspect, unless that would be over SHEET_MAX_ASPECT times taller than
// wide; then that tall, and narrower.
static void s_thumb_size(int fw, int fh, int thumb_width, int *tw, int *th)
{
    int64_t h = ((int64_t)thumb_width * fh + fw / 2) / fw;
    int64_t hmax = (int64_t)thumb_width * SHEET_MAX_ASPECT;
    if (h > hmax) {
        h = hmax;
        *tw = (int)std::max<int64_t>(1, (hmax * fw + fh / 2) / fh);
    } else {
        *tw = thumb_width;
    }
    *th = (int)std::max<int64_t>(1, h);
}

// How big label letters are drawn: image.h states it, as part of the layout.
static int s_label_scale(int thumb_width)
{
    return std::min(4, 1 + thumb_width / 256);
}

static int s_write_png(const char *path, const struct canvas &cv, char *err,
                       size_t errlen)
{
    ImageSpec spec(cv.w, cv.h, 3, TypeDesc::UINT8);
    std::string tmp = s_tmpname(path, ".png");
    auto out = ImageOutput::create("png");
    if (!out) {
        s_err(err, errlen, "png writer unavailable: " + s_oneline(geterror()));
        return TSR_EIO;
    }
    if (!out->open(tmp, spec) || !out->write_image(TypeDesc::UINT8, cv.rgb.data()) ||
        !out->close()) {
        s_errf(err, errlen, "'%s': %s", path, s_oneline(out->geterror()).c_str());
        unlink(tmp.c_str());
        return TSR_EIO;
    }
    return s_commit(tmp, path, err, errlen);
}

// A contact sheet drawn in steps (tsr_image_sheet_*): the headers first,
// so the sheet's size is known, and refused if too big, before any image is
// decoded; then one thumbnail after another; then the PNG.
struct tsr_image_sheet {
    const char *const *images;         // borrowed from the caller
    const char *const *labels;         // borrowed, may be NULL
    size_t n;                          // how many
    int columns, thumb_width;          // layout asked for
    struct tsr_image_limits lim;       // limits, copied
    std::vector<tsr_image_info> infos; // headers read so far
    std::vector<int> tws, ths;         // thumbnail sizes
    std::vector<int> row_y, row_h;     // top and height of each row
    int cols, scale;                   // columns used, label scale
    struct canvas cv;                  // the sheet once laid out
    size_t next;                       // next header, then next thumbnail
    bool laid_out;                     // headers all read, canvas made
};

static int64_t s_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int s_sheet_layout(struct tsr_image_sheet *sh, const char *out_png, char *err,
                          size_t errlen)
{
    const size_t n = sh->n;
    sh->cols = (int)std::min<size_t>((size_t)sh->columns, n);
    const size_t rows = (n + (size_t)sh->cols - 1) / (size_t)sh->cols;
    sh->scale = s_label_scale(sh->thumb_width);
    const int label_h = 7 * sh->scale + 4;
    sh->row_y.assign(rows, 0);
    sh->row_h.assign(rows, 0);
    int64_t sheet_w = SHEET_PAD + (int64_t)sh->cols * (sh->thumb_width + SHEET_PAD);
    int64_t sheet_h = SHEET_PAD;
    for (size_t r = 0; r < rows; r++) {
        sh->row_y[r] = (int)std::min<int64_t>(sheet_h, INT32_MAX);
        for (size_t i = r * sh->cols; i < std::min(n, (r + 1) * sh->cols); i++)
            sh->row_h[r] = std::max(sh->row_h[r], sh->ths[i]);
        sheet_h += sh->row_h[r] + label_h + SHEET_PAD;
    }
    if (sheet_w > sh->lim.max_width || sheet_h > sh->lim.max_height) {
        s_errf(err, errlen,
               "'%s': contact sheet would be %lldx%lld, past the limit %dx%d", out_png,
               (long long)sheet_w, (long long)sheet_h, sh->lim.max_width,
               sh->lim.max_height);
        return TSR_ELIMIT;
    }
    sh->cv.w = (int)sheet_w;
    sh->cv.h = (int)sheet_h;
    sh->cv.rgb.assign((size_t)sh->cv.w * (size_t)sh->cv.h * 3, SHEET_BG);
    sh->laid_out = true;
    sh->next = 0;
    return 0;
}

// One unit of work: a header, or a thumbnail, or the PNG. *done set after
// the PNG.
static int s_sheet_unit(struct tsr_image_sheet *sh, const char *out_png, int *done,
                        char *err, size_t errlen)
{
    const struct tsr_image_limits *lim = &sh->lim;
    if (!sh->laid_out) {
        if (sh->next == sh->n)
            return s_sheet_layout(sh, out_png, err, errlen);
        size_t i = sh->next;
        struct opened o;
        int rc = s_open(sh->images[i], lim, &o, err, errlen, true);
        if (rc != 0)
            return rc;
        o.in->close();
        sh->infos[i] = o.info;
        s_thumb_size(o.info.full_width, o.info.full_height, sh->thumb_width, &sh->tws[i],
                     &sh->ths[i]);
        sh->next++;
        return 0;
    }
    if (sh->next == sh->n) {
        int rc = s_write_png(out_png, sh->cv, err, errlen);
        if (rc == 0)
            *done = 1;
        return rc;
    }
    size_t i = sh->next;
    struct tsr_image_info info;
    float *raw = NULL;
    int rc = s_read(sh->images[i], lim, &info, &raw, err, errlen);
    if (rc != 0)
        return rc;
    std::unique_ptr<float, void (*)(void *)> px(raw, free);
    if (info.full_width != sh->infos[i].full_width ||
        info.full_height != sh->infos[i].full_height) {
        s_errf(err, errlen, "'%s': changed while the sheet was drawn", sh->images[i]);
        return TSR_EIMAGE;
    }
    size_t r = i / (size_t)sh->cols, c = i % (size_t)sh->cols;
    int x = SHEET_PAD + (int)c * (sh->thumb_width + SHEET_PAD);
    int y = sh->row_y[r];
    s_draw_thumb(&sh->cv, x, y, sh->tws[i], sh->ths[i], info, px.get());
    if (sh->labels && sh->labels[i])
        s_draw_text(&sh->cv, x, y + sh->row_h[r] + 2, sh->scale, sh->thumb_width,
                    sh->labels[i]);
    sh->next++;
    return 0;
}

extern "C" int tsr_image_sheet_new(const char *const *images, const char *const *labels,
                                   size_t nimages, int columns, int thumb_width,
                                   const struct tsr_image_limits *lim,
                                   struct tsr_image_sheet **out, char *err, size_t errlen)
{
    struct tsr_image_limits deflim;
    lim = s_limits(lim, &deflim);
    if (out)
        *out = NULL;
    if (!out || !images || nimages == 0 || columns < 1 || thumb_width < 1 ||
        thumb_width > lim->max_width) {
        s_errf(err, errlen,
               "contact sheet needs images, columns >= 1 and a thumbnail width "
               "of 1 to %d",
               lim->max_width);
        return TSR_EINVAL;
    }
    try {
        std::unique_ptr<tsr_image_sheet> sh(new tsr_image_sheet());
        sh->images = images;
        sh->labels = labels;
        sh->n = nimages;
        sh->columns = columns;
        sh->thumb_width = thumb_width;
        sh->lim = *lim;
        sh->infos.resize(nimages);
        sh->tws.resize(nimages);
        sh->ths.resize(nimages);
        sh->next = 0;
        sh->laid_out = false;
        *out = sh.release();
        return 0;
    } catch (...) {
        s_err(err, errlen, "out of memory for a contact sheet");
        return TSR_ENOMEM;
    }
}

extern "C" int tsr_image_sheet_step(struct tsr_image_sheet *sh, int budget_ms,
                                    const char *out_png, int *done, char *err,
                                    size_t errlen)
{
    *done = 0;
    if (!sh || !out_png) {
        s_err(err, errlen, "no contact sheet or no file to write");
        return TSR_EINVAL;
    }
    try {
        int64_t end = s_mono_ms() + budget_ms;
        do {
            int rc = s_sheet_unit(sh, out_png, done, err, errlen);
            if (rc != 0 || *done)
                return rc;
        } while (budget_ms <= 0 || s_mono_ms() < end);
        return 0;
    } catch (const std::bad_alloc &) {
        s_errf(err, errlen, "'%s': out of memory while drawing", out_png);
        return TSR_ENOMEM;
    } catch (const std::exception &e) {
        s_errf(err, errlen, "'%s': %s", out_png, e.what());
        return TSR_EIMAGE;
    } catch (...) {
        s_errf(err, errlen, "'%s': unexpected exception while drawing", out_png);
        return TSR_EIMAGE;
    }
}

extern "C" void tsr_image_sheet_destroy(struct tsr_image_sheet **sh)
{
    if (!sh || !*sh)
        return;
    delete *sh;
    *sh = NULL;
}

extern "C" int tsr_image_contact_sheet(const char *const *images,
                                       const char *const *labels, size_t nimages,
                                       int columns, int thumb_width,
                                       const struct tsr_image_limits *lim,
                                       const char *out_png, char *err, size_t errlen)
{
    struct tsr_image_sheet *sh = NULL;
    int rc = tsr_image_sheet_new(images, labels, nimages, columns, thumb_width, lim, &sh,
                                 err, errlen);
    if (rc != 0)
        return rc;
    if (!out_png) {
        tsr_image_sheet_destroy(&sh);
        s_err(err, errlen, "no file to write the contact sheet to");
        return TSR_EINVAL;
    }
    int done = 0;
    rc = tsr_image_sheet_step(sh, 0, out_png, &done, err, errlen);
    tsr_image_sheet_destroy(&sh);
    return rc;
}
