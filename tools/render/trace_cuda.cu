/*
 * trace_cuda.cu: tessera-render's CUDA path (trace_cuda.h).
 *
 * One thread per pixel runs tsr_k_pixel, the function the CPU path runs,
 * over a copy of the frame's arrays on the GPU. The region goes in bands of
 * rows, one launch each, so that progress moves and no launch runs long
 * enough to trip a display watchdog. Built with -fmad=false: a fused
 * multiply-add rounds once where the CPU rounds twice, which would make the
 * two paths drift apart (kernel.h).
 */
#include "trace_cuda.h"

#include <cuda_runtime.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tessera/error.h"

#define S_BLOCK 8           /* threads per block side */
#define S_BAND_PIXELS 65536 /* pixels per launch, about */

struct tsr_cuda {
    int device;     /* the CUDA device in use */
    char name[256]; /* its name */
};

/* Reports a failed CUDA call in err; returns TSR_ERENDER. */
static int s_fail(cudaError_t e, const char *what, char *err, size_t errlen)
{
    snprintf(err, errlen, "%s: %s (CUDA error %d)", what, cudaGetErrorString(e), (int)e);
    return TSR_ERENDER;
}

extern "C" int tsr_cuda_open(struct tsr_cuda **out, char *name, size_t namelen, char *err,
                             size_t errlen)
{
    *out = NULL;
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        snprintf(err, errlen, "no CUDA device: %s",
                 e != cudaSuccess ? cudaGetErrorString(e) : "none visible");
        cudaGetLastError(); /* clear it */
        return TSR_ENOTFOUND;
    }
    struct tsr_cuda *c = (struct tsr_cuda *)calloc(1, sizeof *c);
    if (!c)
        return TSR_ENOMEM;
    cudaDeviceProp prop;
    if ((e = cudaSetDevice(0)) != cudaSuccess ||
        (e = cudaGetDeviceProperties(&prop, 0)) != cudaSuccess) {
        free(c);
        return s_fail(e, "cannot use CUDA device 0", err, errlen);
    }
    snprintf(c->name, sizeof c->name, "%s", prop.name);
    if (name && namelen)
        snprintf(name, namelen, "%s", c->name);
    *out = c;
    return 0;
}

extern "C" void tsr_cuda_close(struct tsr_cuda **cuda)
{
    if (!cuda || !*cuda)
        return;
    free(*cuda);
    *cuda = NULL;
}

/* Rows row0.. of the region (x0, y0, w wide, rows tall) into out, which
 * holds the whole region. */
__global__ static void s_band(struct tsr_kframe k, int x0, int y0, int w, int row0,
                              int rows, int samples, float *out)
{
    int x = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    int y = (int)(blockIdx.y * blockDim.y + threadIdx.y);
    if (x >= w || y >= rows)
        return;
    float rgba[4];
    tsr_k_pixel(&k, x0 + x, y0 + row0 + y, samples, rgba);
    float *o = out + ((size_t)(row0 + y) * (size_t)w + (size_t)x) * 4;
    o[0] = rgba[0];
    o[1] = rgba[1];
    o[2] = rgba[2];
    o[3] = rgba[3];
}

/* The device copies of one frame's arrays. */
struct s_dev {
    void *ptr[10]; /* every allocation, freed together */
    int n;         /* allocations made */
};

/* Copies bytes at host to a new device allocation in *dst (at least one
 * byte, so that an empty array is a valid pointer too). */
static cudaError_t s_upload(struct s_dev *d, const void *host, size_t bytes, void **dst)
{
    cudaError_t e = cudaMalloc(dst, bytes ? bytes : 1);
    if (e != cudaSuccess)
        return e;
    d->ptr[d->n++] = *dst;
    return bytes ? cudaMemcpy(*dst, host, bytes, cudaMemcpyHostToDevice) : cudaSuccess;
}

extern "C" int tsr_cuda_render(struct tsr_cuda *cuda, const struct tsr_kframe *frame,
                               const struct tsr_region *region, int samples, float *rgba,
                               tsr_cuda_progress_fn progress, void *ctx, char *err,
                               size_t errlen)
{
    (void)cuda;
    struct s_dev d;
    memset(&d, 0, sizeof d);
    struct tsr_kframe k = *frame;
    const struct tsr_kgeom *g = &frame->geom;
    int w = region->x1 - region->x0, h = region->y1 - region->y0;
    size_t out_bytes = (size_t)w * (size_t)h * 4 * sizeof(float);
    void *p = NULL, *out = NULL;
    cudaError_t e = cudaSuccess;
    const char *what = "cannot copy the frame to the GPU";
#define S_UP(field, host, count, type)                                                   \
    if (e == cudaSuccess) {                                                              \
        e = s_upload(&d, host, (size_t)(count) * sizeof(type), &p);                      \
        field = (const type *)p;                                                         \
    }
    S_UP(k.materials, frame->materials, frame->nmaterials, struct tsr_material)
    S_UP(k.obj_material, frame->obj_material, frame->nobjects, int)
    S_UP(k.sampled, frame->sampled, frame->nobjects, unsigned char)
    S_UP(k.offset, frame->offset, frame->nobjects, struct tsr_vec3)
    S_UP(k.lights, frame->lights, frame->nlights, struct tsr_klight)
    S_UP(k.emitters, frame->emitters, frame->nemitters, struct tsr_kemitter)
    S_UP(k.geom.prims, g->prims, g->nprims, struct tsr_kprim)
    S_UP(k.geom.nodes, g->nodes, g->nnodes, struct tsr_knode)
    S_UP(k.geom.planes, g->planes, g->nplanes, struct tsr_kplane)
#undef S_UP
    if (e == cudaSuccess) {
        what = "cannot allocate the image on the GPU";
        e = cudaMalloc(&out, out_bytes ? out_bytes : 1);
        if (e == cudaSuccess)
            d.ptr[d.n++] = out;
    }
    int band = S_BAND_PIXELS / (w > 0 ? w : 1);
    if (band < 1)
        band = 1;
    for (int row0 = 0; e == cudaSuccess && row0 < h; row0 += band) {
        int rows = h - row0 < band ? h - row0 : band;
        dim3 block(S_BLOCK, S_BLOCK);
        dim3 grid((unsigned)((w + S_BLOCK - 1) / S_BLOCK),
                  (unsigned)((rows + S_BLOCK - 1) / S_BLOCK));
        s_band<<<grid, block>>>(k, region->x0, region->y0, w, row0, rows, samples,
                                (float *)out);
        what = "rendering on the GPU failed";
        e = cudaGetLastError();
        if (e == cudaSuccess)
            e = cudaDeviceSynchronize();
        if (e == cudaSuccess && progress)
            progress(ctx, (long long)(row0 + rows) * w);
    }
    if (e == cudaSuccess) {
        what = "cannot copy the image from the GPU";
        e = cudaMemcpy(rgba, out, out_bytes, cudaMemcpyDeviceToHost);
    }
    for (int i = 0; i < d.n; i++)
        cudaFree(d.ptr[i]);
    return e == cudaSuccess ? 0 : s_fail(e, what, err, errlen);
}
