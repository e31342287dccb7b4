/*
 * main.c: tessera-render, the built-in reference renderer's command line.
 *
 *   tessera-render SCENE --frame N [--frame-end M] [--region x0,y0,x1,y1]
 *                  --output PATH [--threads N] [--samples N] [--device cpu|cuda]
 *
 * It renders frames N..M of a JSON scene (doc/scene-format.md), each into
 * one float RGBA OpenEXR whose data window is the region inside a display
 * window of the full frame. Pieces of rows are shared among threads through
 * an atomic counter; since a pixel's value depends only on (scene, frame, x, y) (see
 * trace.h), the split and the thread count never change a bit of the output.
 *
 * Talking to the worker that runs it: stdout carries "progress: NN" (percent
 * of all the call's frames, flushed, at least once per percent point that
 * passes, 100 only after the last file is in place) and one "output: PATH"
 * per file written. An error is one line on stderr, "tessera-render: ...",
 * and exit status 1; a usage error exits with 2; a device that is not there
 * (--device cuda without a GPU, or a build without CUDA) exits with 3.
 *
 * --device cuda renders each frame on the GPU (trace_cuda.h) with the same
 * per-pixel code; the camera, lights and BVH are still prepared here.
 */
#include "trace.h"
#include "trace_cuda.h" /* declarations only; called where TSR_HAVE_CUDA */

#include "tessera/error.h"
#include "tessera/image.h"
#include "tessera/scene.h"
#include "tessera/scene_model.h"
#include "tessera/util.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_NAME "tessera-render"
#define S_MAX_THREADS 1024
#define S_PIECE 64 /* pixels of a row that a thread takes at a time */
#define S_EXIT_FAIL 1
#define S_EXIT_USAGE 2
#define S_EXIT_DEVICE 3 /* the device asked for is not there */

static const char s_usage[] =
    "usage: tessera-render SCENE --frame N [--frame-end M] [--region x0,y0,x1,y1]\n"
    "                      --output PATH [--threads N] [--samples N]\n"
    "                      [--device cpu|cuda]\n"
    "\n"
    "Renders frames N..M (inclusive; M defaults to N) of the JSON scene SCENE\n"
    "into float RGBA OpenEXR files.\n"
    "\n"
    "  -f, --frame N          first frame to render\n"
    "  -e, --frame-end M      last frame to render (default: N)\n"
    "  -r, --region x0,y0,x1,y1\n"
    "                         render only columns x0..x1-1 and rows y0..y1-1 of\n"
    "                         the frame (y = 0 is the top row); the file's data\n"
    "                         window is this region inside the full frame\n"
    "  -o, --output PATH      where to write; the last run of '#' becomes the\n"
    "                         zero-padded frame number (frame_####.exr); with no\n"
    "                         '#' and several frames, _NNNN goes before the\n"
    "                         extension\n"
    "  -t, --threads N        rendering threads (default: the number of CPUs)\n"
    "  -s, --samples N        samples per pixel, overriding the scene's\n"
    "  -d, --device cpu|cuda  where to render (default cpu); cuda uses the first\n"
    "                         GPU that CUDA_VISIBLE_DEVICES leaves visible and\n"
    "                         gives the CPU's pixels (doc/scene-format.md)\n"
    "  -h, --help             print this help\n"
    "\n"
    "A pixel's value depends only on the scene, the frame and its position:\n"
    "regions, tiles and thread counts never change it.\n"
    "stdout: 'progress: NN' lines and one 'output: PATH' line per file.\n"
    "Exit status: 0 done, 1 failed (one line on stderr), 2 usage error,\n"
    "3 the device is not there (no GPU, or built without CUDA).\n";

/* What the command line asked for. */
struct s_opts {
    const char *scene;        /* scene file */
    int frame;                /* first frame */
    int frame_end;            /* last frame */
    int have_frame;           /* --frame was given */
    int have_end;             /* --frame-end was given */
    struct tsr_region region; /* pixels to render */
    int have_region;          /* --region was given; else the whole frame */
    const char *output;       /* output path pattern */
    int threads;              /* rendering threads */
    int samples;              /* samples per pixel; 0: the scene's */
    int cuda;                 /* --device cuda */
};

/* Progress over the whole call, shared by the rendering threads. */
struct s_progress {
    pthread_mutex_t lock; /* guards the fields below and stdout */
    long long done;       /* pixels finished, all frames so far */
    long long total;      /* pixels to render, all frames */
    int printed;          /* last percentage printed; -1 before the first */
};

/* One frame's rendering job, shared by its threads. */
struct s_job {
    const struct tsr_trace *trace; /* the frame, read-only */
    struct tsr_region region;      /* pixels to render */
    int samples;                   /* samples per pixel */
    float *pixels;                 /* region's RGBA floats, row major */
    int nseg;                      /* pieces per row (S_PIECE pixels wide) */
    int nitems;                    /* pieces in the region: rows * nseg */
    atomic_int next;               /* next piece to hand out */
    struct s_progress *progress;   /* shared progress, borrowed */
};

static void s_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void s_error(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* One line, whatever the message holds. */
    for (char *p = msg; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    fprintf(stderr, S_NAME ": %s\n", msg);
}

/* Prints pct if it is past the last one printed; call with the lock held. */
static void s_report(struct s_progress *p, int pct)
{
    if (pct <= p->printed)
        return;
    p->printed = pct;
    printf("progress: %d\n", pct);
    fflush(stdout);
}

/* Takes pieces (up to S_PIECE pixels of one row) until none are left.
 * Pieces rather than rows keep progress fine and threads busy even for a
 * region one row tall. Which thread renders a piece changes no pixel. */
static void *s_worker(void *arg)
{
    struct s_job *job = arg;
    const struct tsr_region *r = &job->region;
    int w = r->x1 - r->x0;
    for (;;) {
        int item = atomic_fetch_add(&job->next, 1);
        if (item >= job->nitems)
            break;
        int row = item / job->nseg, x0 = (item % job->nseg) * S_PIECE;
        int x1 = x0 + S_PIECE < w ? x0 + S_PIECE : w;
        float *out = job->pixels + ((size_t)row * (size_t)w + (size_t)x0) * 4;
        for (int x = x0; x < x1; x++, out += 4)
            tsr_trace_pixel(job->trace, r->x0 + x, r->y0 + row, job->samples, out);
        struct s_progress *p = job->progress;
        pthread_mutex_lock(&p->lock);
        p->done += x1 - x0;
        /* 100 waits until the last file is written. */
        long long pct = p->done * 100 / p->total;
        s_report(p, pct > 99 ? 99 : (int)pct);
        pthread_mutex_unlock(&p->lock);
    }
    return NULL;
}

/* Renders job->region with nthreads threads (fewer if creation fails). */
static void s_render(struct s_job *job, int nthreads)
{
    pthread_t tids[S_MAX_THREADS];
    int started = 0;
    for (int i = 1; i < nthreads; i++) {
        if (pthread_create(&tids[started], NULL, s_worker, job) != 0)
            break; /* the threads we have will take the remaining rows */
        started++;
    }
    s_worker(job);
    for (int i = 0; i < started; i++)
        pthread_join(tids[i], NULL);
}

/* The file name of frame: see the usage text. Returns 0 or TSR_ELIMIT. */
static int s_output_path(const char *pattern, int frame, int several, char *out,
                         size_t outlen)
{
    const char *run_end = strrchr(pattern, '#');
    if (run_end) {
        const char *run = run_end;
        while (run > pattern && run[-1] == '#')
            run--;
        int width = (int)(run_end - run) + 1;
        return tsr_fmt(out, outlen, "%.*s%0*d%s", (int)(run - pattern), pattern, width,
                       frame, run_end + 1);
    }
    if (!several)
        return tsr_fmt(out, outlen, "%s", pattern);
    const char *slash = strrchr(pattern, '/');
    const char *dot = strrchr(pattern, '.');
    if (!dot || (slash && dot < slash) || dot == (slash ? slash + 1 : pattern))
        return tsr_fmt(out, outlen, "%s_%04d", pattern, frame);
    return tsr_fmt(out, outlen, "%.*s_%04d%s", (int)(dot - pattern), pattern, frame, dot);
}

/* Creates the folder that path is in, if it is missing. */
static int s_make_parent(const char *path)
{
    char dir[4096];
    if (tsr_fmt(dir, sizeof dir, "%s", path) != 0)
        return TSR_ELIMIT;
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return 0;
    *slash = '\0';
    return tsr_path_exists(dir) ? 0 : tsr_mkdir_p(dir);
}

/* Parses a whole decimal integer in lo..hi. */
static int s_int(const char *s, long lo, long hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

static int s_region(const char *s, struct tsr_region *r)
{
    int v[4];
    char buf[128];
    if (tsr_fmt(buf, sizeof buf, "%s", s) != 0)
        return -1;
    char *save = NULL, *tok = strtok_r(buf, ",", &save);
    for (int i = 0; i < 4; i++, tok = strtok_r(NULL, ",", &save))
        if (!tok || s_int(tok, 0, TSR_SCENE_MAX_SIDE, &v[i]) != 0)
            return -1;
    if (tok)
        return -1;
    *r = (struct tsr_region){v[0], v[1], v[2], v[3]};
    return 0;
}

/* Reads the command line; returns 0, or the exit status to leave with. */
static int s_parse_args(int argc, char **argv, struct s_opts *o)
{
    static const struct option longs[] = {{"frame", required_argument, NULL, 'f'},
                                          {"frame-end", required_argument, NULL, 'e'},
                                          {"region", required_argument, NULL, 'r'},
                                          {"output", required_argument, NULL, 'o'},
                                          {"threads", required_argument, NULL, 't'},
                                          {"samples", required_argument, NULL, 's'},
                                          {"device", required_argument, NULL, 'd'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    o->threads = ncpu < 1 ? 1 : ncpu > S_MAX_THREADS ? S_MAX_THREADS : (int)ncpu;
    const long fmax = (long)TSR_SCENE_MAX_COORD;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, ":f:e:r:o:t:s:d:h", longs, NULL)) != -1) {
        int bad = 0;
        switch (ch) {
        case 'f':
            bad = s_int(optarg, -fmax, fmax, &o->frame);
            o->have_frame = 1;
            break;
        case 'e':
            bad = s_int(optarg, -fmax, fmax, &o->frame_end);
            o->have_end = 1;
            break;
        case 'r':
            bad = s_region(optarg, &o->region);
            o->have_region = 1;
            break;
        case 'o':
            o->output = optarg;
            bad = !optarg[0];
            break;
        case 't':
            bad = s_int(optarg, 1, S_MAX_THREADS, &o->threads);
            break;
        case 's':
            bad = s_int(optarg, 1, TSR_SCENE_MAX_SAMPLES, &o->samples);
            break;
        case 'd':
            o->cuda = strcmp(optarg, "cuda") == 0;
            bad = !o->cuda && strcmp(optarg, "cpu") != 0;
            break;
        case 'h':
            fputs(s_usage, stdout);
            exit(0);
        case ':':
            s_error("option '%s' needs a value; see --help", argv[optind - 1]);
            return S_EXIT_USAGE;
        default:
            s_error("unknown option '%s'; see --help", argv[optind - 1]);
            return S_EXIT_USAGE;
        }
        if (bad) {
            const char *name = "?";
            for (const struct option *l = longs; l->name; l++)
                if (l->val == ch)
                    name = l->name;
            s_error("bad value '%s' for --%s; see --help", optarg, name);
            return S_EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        s_error(optind >= argc ? "no scene given; see --help"
                               : "exactly one scene expected; see --help");
        return S_EXIT_USAGE;
    }
    o->scene = argv[optind];
    if (!o->have_frame || !o->output) {
        s_error("--frame and --output are required; see --help");
        return S_EXIT_USAGE;
    }
    if (!o->have_end)
        o->frame_end = o->frame;
    if (o->frame_end < o->frame) {
        s_error("--frame-end %d comes before --frame %d", o->frame_end, o->frame);
        return S_EXIT_USAGE;
    }
    return 0;
}

/* Opens the GPU for --device cuda. Returns 0, S_EXIT_DEVICE (none here,
 * or a build without CUDA) or S_EXIT_FAIL, reported. */
static int s_open_gpu(struct tsr_cuda **cuda)
{
#ifdef TSR_HAVE_CUDA
    char name[256], err[512];
    int rc = tsr_cuda_open(cuda, name, sizeof name, err, sizeof err);
    if (rc) {
        s_error("--device cuda: %s", err);
        return rc == TSR_ENOTFOUND ? S_EXIT_DEVICE : S_EXIT_FAIL;
    }
    printf("device: cuda (%s)\n", name);
    return 0;
#else
    *cuda = NULL;
    s_error("--device cuda: this tessera-render was built without CUDA (CMake found "
            "no nvcc)");
    return S_EXIT_DEVICE;
#endif
}

static void s_close_gpu(struct tsr_cuda **cuda)
{
#ifdef TSR_HAVE_CUDA
    tsr_cuda_close(cuda);
#else
    *cuda = NULL;
#endif
}

#ifdef TSR_HAVE_CUDA
/* Progress of a frame on the GPU: the pixels done before it, and the shared
 * counter to move. */
struct s_gpu_progress {
    struct s_progress *p; /* the call's progress */
    long long base;       /* its pixels done before this frame */
};

static void s_on_gpu_band(void *ctx, long long pixels)
{
    struct s_gpu_progress *g = ctx;
    struct s_progress *p = g->p;
    pthread_mutex_lock(&p->lock);
    p->done = g->base + pixels;
    long long pct = p->done * 100 / p->total;
    s_report(p, pct > 99 ? 99 : (int)pct); /* 100 waits for the last file */
    pthread_mutex_unlock(&p->lock);
}
#endif

/* Renders one frame's region on the GPU. Returns 0 or S_EXIT_FAIL. */
static int s_render_gpu(struct tsr_cuda *cuda, const struct tsr_trace *trace,
                        const struct s_opts *o, int samples, float *pixels,
                        struct s_progress *progress)
{
#ifdef TSR_HAVE_CUDA
    char err[512];
    struct s_gpu_progress gp = {progress, progress->done};
    if (tsr_cuda_render(cuda, tsr_trace_frame(trace), &o->region, samples, pixels,
                        s_on_gpu_band, &gp, err, sizeof err) != 0) {
        s_error("%s", err);
        return S_EXIT_FAIL;
    }
    return 0;
#else
    (void)cuda, (void)trace, (void)o, (void)samples, (void)pixels, (void)progress;
    return S_EXIT_FAIL; /* never called: s_open_gpu refused */
#endif
}

/* Renders and writes one frame, on the GPU when cuda is not NULL. Returns 0
 * or S_EXIT_FAIL (reported). */
static int s_frame(const struct tsr_scene *scene, const struct s_opts *o, int frame,
                   float *pixels, struct s_progress *progress, struct tsr_cuda *cuda)
{
    char err[1024];
    struct tsr_trace *trace = NULL;
    int rc = tsr_trace_new(scene, frame, &trace, err, sizeof err);
    if (rc) {
        s_error("%s: %s", o->scene, rc == TSR_ENOMEM ? "out of memory" : err);
        return S_EXIT_FAIL;
    }
    int samples = o->samples ? o->samples : scene->samples;
    if (cuda) {
        rc = s_render_gpu(cuda, trace, o, samples, pixels, progress);
        tsr_trace_destroy(&trace);
        if (rc)
            return rc;
    } else {
        struct s_job job = {.trace = trace,
                            .region = o->region,
                            .pixels = pixels,
                            .samples = samples,
                            .progress = progress};
        int w = o->region.x1 - o->region.x0, h = o->region.y1 - o->region.y0;
        job.nseg = (w + S_PIECE - 1) / S_PIECE;
        job.nitems = job.nseg * h; /* <= 16384 * 256: fits an int */
        atomic_init(&job.next, 0);
        s_render(&job, o->threads < job.nitems ? o->threads : job.nitems);
        tsr_trace_destroy(&trace);
    }

    char path[4096];
    if (s_output_path(o->output, frame, o->frame_end > o->frame, path, sizeof path) !=
        0) {
        s_error("output path too long");
        return S_EXIT_FAIL;
    }
    if (s_make_parent(path) != 0) {
        s_error("'%s': cannot create its folder", path);
        return S_EXIT_FAIL;
    }
    struct tsr_image_info info = {.data = o->region,
                                  .full_width = scene->width,
                                  .full_height = scene->height,
                                  .nchannels = 4};
    rc = tsr_image_write_exr(path, &info, pixels, err, sizeof err);
    if (rc) {
        s_error("%s", err[0] ? err : tsr_strerror(rc));
        return S_EXIT_FAIL;
    }
    pthread_mutex_lock(&progress->lock);
    printf("output: %s\n", path);
    fflush(stdout);
    pthread_mutex_unlock(&progress->lock);
    return 0;
}

int main(int argc, char **argv)
{
    struct s_opts o = {0};
    int rc = s_parse_args(argc, argv, &o);
    if (rc)
        return rc;

    struct tsr_cuda *cuda = NULL;
    if (o.cuda && (rc = s_open_gpu(&cuda)) != 0)
        return rc;
    char err[1024];
    struct tsr_scene *scene = NULL;
    rc = tsr_scene_load(o.scene, &scene, err, sizeof err);
    if (rc) {
        s_error("%s", rc == TSR_ENOMEM ? "out of memory" : err);
        s_close_gpu(&cuda);
        return S_EXIT_FAIL;
    }
    int w, h;
    tsr_scene_resolution(scene, &w, &h);
    if (!o.have_region) {
        o.region = (struct tsr_region){0, 0, w, h};
    } else if (o.region.x0 >= o.region.x1 || o.region.y0 >= o.region.y1 ||
               o.region.x1 > w || o.region.y1 > h) {
        s_error("region %d,%d,%d,%d is empty or outside the %dx%d frame", o.region.x0,
                o.region.y0, o.region.x1, o.region.y1, w, h);
        tsr_scene_destroy(&scene);
        s_close_gpu(&cuda);
        return S_EXIT_USAGE;
    }
    long rw = o.region.x1 - o.region.x0, rh = o.region.y1 - o.region.y0;
    float *pixels = malloc((size_t)rw * (size_t)rh * 4 * sizeof *pixels);
    if (!pixels) {
        s_error("out of memory for a %ldx%ld region", rw, rh);
        tsr_scene_destroy(&scene);
        s_close_gpu(&cuda);
        return S_EXIT_FAIL;
    }

    struct s_progress progress = {.total = (long long)rw * rh *
                                           ((long long)o.frame_end - o.frame + 1),
                                  .printed = -1};
    pthread_mutex_init(&progress.lock, NULL);
    s_report(&progress, 0);
    rc = 0;
    for (int f = o.frame; f <= o.frame_end && !rc; f++)
        rc = s_frame(scene, &o, f, pixels, &progress, cuda);
    if (!rc)
        s_report(&progress, 100);
    pthread_mutex_destroy(&progress.lock);
    free(pixels);
    tsr_scene_destroy(&scene);
    s_close_gpu(&cuda);
    return rc;
}
