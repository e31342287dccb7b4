// image.cpp: the OpenImageIO shim behind image.h. The only C++ file in
// Tessera: it turns OpenImageIO's classes and exceptions into plain C calls
// that return TSR_E* codes with a message in the caller's buffer.
#include <OpenImageIO/imageio.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <unistd.h>

extern "C" {
#include "tessera/error.h"
#include "tessera/image.h"
}

using namespace OIIO;

static void s_err(char *err, size_t errlen, const std::string &msg)
{
    if (err && errlen > 0)
        snprintf(err, errlen, "%s", msg.c_str());
}

extern "C" void tsr_image_limits_default(struct tsr_image_limits *lim)
{
    lim->max_width = 32768;
    lim->max_height = 32768;
    lim->max_channels = 16;
}

extern "C" int tsr_image_write_exr(const char *path, const struct tsr_image_info *info,
                                   const float *pixels, char *err, size_t errlen)
{
    const tsr_region &r = info->data;
    int w = r.x1 - r.x0, h = r.y1 - r.y0;
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
        std::string tmp = std::string(path) + ".tmp." + std::to_string(getpid()) + ".exr";
        auto out = ImageOutput::create("openexr");
        if (!out) {
            s_err(err, errlen, "openexr writer unavailable: " + geterror());
            return TSR_EIO;
        }
        if (!out->open(tmp, spec) ||
            !out->write_image(TypeDesc::FLOAT, pixels) || !out->close()) {
            s_err(err, errlen, std::string("'") + path + "': " + out->geterror());
            unlink(tmp.c_str());
            return TSR_EIO;
        }
        if (rename(tmp.c_str(), path) != 0) {
            s_err(err, errlen, std::string("'") + path + "': rename failed");
            unlink(tmp.c_str());
            return TSR_EIO;
        }
    } catch (const std::exception &e) {
        s_err(err, errlen, std::string("'") + path + "': " + e.what());
        return TSR_EIO;
    }
    return 0;
}
