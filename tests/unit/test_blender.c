/*
 * test_blender.c: the Blender adapter (worker/blender.c) without Blender:
 * the probe's answer and a fake Blender that gives it, the command line
 * (autoexec off, the JSON after "--"), progress from Blender's status
 * lines, the failure classes, and the crop of a border render to a piece.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four above, which it needs */

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tessera/error.h"
#include "tessera/image.h"
#include "tessera/util.h"

#include "blender.h"

static char s_dir[64]; /* this run's temporary folder */

static int s_has(const cJSON *arr, const char *s)
{
    const cJSON *v;
    cJSON_ArrayForEach(v, arr)
    {
        if (cJSON_IsString(v) && strcmp(v->valuestring, s) == 0)
            return 1;
    }
    return 0;
}

/* The probe's JSON line becomes version, devices and features. */
static void test_probe_line(void **state)
{
    (void)state;
    cJSON *info = tsr_blender_probe_line(
        "TESSERA_BLENDER {\"version\": \"4.2.1\", \"oidn\": true, \"cycles\": true, "
        "\"devices\": [{\"type\": \"CPU\", \"name\": \"AMD EPYC\"}, {\"type\": \"CUDA\", "
        "\"name\": \"NVIDIA H100\"}, {\"type\": \"OPTIX\", \"name\": \"NVIDIA H100\"}, "
        "{\"type\": \"bad type\", \"name\": \"x\"}, {\"type\": \"HIP\"}]}");
    assert_non_null(info);
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(info, "features");
    assert_true(s_has(f, "blender"));
    assert_true(s_has(f, "blender:4.2"));
    assert_true(s_has(f, "blender:oidn"));
    assert_true(s_has(f, "cycles"));
    assert_true(s_has(f, "cycles:cuda"));
    assert_true(s_has(f, "cycles:optix"));
    assert_false(s_has(f, "cycles:hip")); /* a device without a name is not announced */
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(info, "devices")),
                     3);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(info, "version")->valuestring,
                        "4.2.1");
    assert_true(tsr_blender_has_device(info, "OPTIX"));
    assert_false(tsr_blender_has_device(info, "HIP"));

    /* The device a task renders on. */
    struct tsr_task_spec spec = {0};
    assert_string_equal(tsr_blender_device(&spec, 0, info), "CPU");
    assert_string_equal(tsr_blender_device(&spec, 1, info), "OPTIX");
    assert_string_equal(tsr_blender_device(&spec, 1, NULL), "CUDA");
    spec.cycles_device = TSR_CYCLES_CUDA;
    assert_string_equal(tsr_blender_device(&spec, 1, info), "CUDA");
    spec.cycles_device = TSR_CYCLES_CPU;
    assert_string_equal(tsr_blender_device(&spec, 1, info), "CPU");
    cJSON_Delete(info);

    info = tsr_blender_probe_line("TESSERA_BLENDER {\"version\": \"3.4.1\", "
                                  "\"devices\": []}");
    assert_non_null(info);
    f = cJSON_GetObjectItemCaseSensitive(info, "features");
    assert_true(s_has(f, "blender:3.4"));
    assert_false(s_has(f, "blender:oidn"));
    cJSON_Delete(info);

    const char *bad[] = {
        "Blender 3.4.1",
        "TESSERA_BLENDER not json",
        "TESSERA_BLENDER {\"devices\": []}",
        "TESSERA_BLENDER {\"version\": \"3.4\"}",
        "TESSERA_BLENDER {\"version\": \"\\u0001\", \"devices\": []}",
        "TESSERA_BLENDER [1, 2]",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_null(tsr_blender_probe_line(bad[i]));
}

/* Writes an executable shell script. */
static void s_script(const char *path, const char *text)
{
    assert_int_equal(tsr_write_file_atomic(path, text, strlen(text)), 0);
    assert_int_equal(chmod(path, 0755), 0);
}

/* The probe runs a program and reads its line; one that answers without it
 * is refused with what it said last. */
static void test_probe_fake(void **state)
{
    (void)state;
    char path[128], err[512] = "";
    snprintf(path, sizeof path, "%s/blender-ok", s_dir);
    s_script(path, "#!/bin/sh\n"
                   "[ \"$1 $2 $3 $4\" = \"-b --factory-startup -noaudio --python-expr\" ] "
                   "|| exit 9\n"
                   "echo 'Blender 9.1.0'\n"
                   "echo 'TESSERA_BLENDER {\"version\": \"9.1.0\", \"devices\": "
                   "[{\"type\": \"CPU\", \"name\": \"cpu\"}]}'\n");
    cJSON *info = NULL;
    assert_int_equal(tsr_blender_probe(path, &info, err, sizeof err), 0);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(info, "path")->valuestring, path);
    assert_true(s_has(cJSON_GetObjectItemCaseSensitive(info, "features"), "blender:9.1"));
    cJSON_Delete(info);

    snprintf(path, sizeof path, "%s/blender-mute", s_dir);
    s_script(path, "#!/bin/sh\necho 'Error: no Python here'\nexit 3\n");
    assert_int_equal(tsr_blender_probe(path, &info, err, sizeof err), TSR_ERENDER);
    assert_null(info);
    assert_non_null(strstr(err, "exited with status 3"));
    assert_non_null(strstr(err, "Error: no Python here"));

    snprintf(path, sizeof path, "%s/no-such-blender", s_dir);
    assert_int_equal(tsr_blender_probe(path, &info, err, sizeof err), TSR_ENOTFOUND);
}

/* The command line: scripts in the .blend never run, the scene is loaded
 * before the setup script, the frames are rendered with -a, and the
 * variable part is JSON after "--". */
static void test_argv(void **state)
{
    (void)state;
    struct tsr_task_spec spec = {.frame_start = 3, .frame_end = 7, .width = 64,
                                 .height = 48, .region = {21, 16, 42, 32}};
    struct tsr_blender_run run = {"/usr/bin/blender", "/c/scenes/x/shot.blend", "/c/tasks/9",
                                  "OPTIX", 4};
    char **argv = NULL, err[256];
    assert_int_equal(tsr_blender_argv(&spec, &run, &argv, err, sizeof err), 0);
    int n = 0, noexec = -1, scene = -1, setup = -1, anim = -1, dash = -1;
    for (; argv[n]; n++) {
        if (strcmp(argv[n], "--disable-autoexec") == 0)
            noexec = n;
        else if (strcmp(argv[n], run.scene) == 0)
            scene = n;
        else if (strcmp(argv[n], "--python-expr") == 0)
            setup = n;
        else if (strcmp(argv[n], "-a") == 0)
            anim = n;
        else if (strcmp(argv[n], "--") == 0)
            dash = n;
        assert_string_not_equal(argv[n], "-y");
        assert_string_not_equal(argv[n], "--enable-autoexec");
    }
    assert_string_equal(argv[0], "/usr/bin/blender");
    assert_string_equal(argv[1], "-b");
    assert_true(noexec > 0 && noexec < scene && scene < setup && setup < anim &&
                anim < dash);
    assert_int_equal(dash, n - 2);
    assert_non_null(strstr(argv[setup + 1], "use_crop_to_border = False"));
    cJSON *a = cJSON_Parse(argv[n - 1]);
    assert_non_null(a);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(a, "out")->valuestring,
                        "/c/tasks/9/out_####");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(a, "device")->valuestring, "OPTIX");
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(a, "region");
    assert_int_equal(cJSON_GetArrayItem(r, 0)->valueint, 21);
    assert_int_equal(cJSON_GetArrayItem(r, 3)->valueint, 32);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(a, "width")->valueint, 64);
    cJSON_Delete(a);
    for (int i = 0; argv[i]; i++) {
        if (strcmp(argv[i], "-s") == 0)
            assert_string_equal(argv[i + 1], "3");
        if (strcmp(argv[i], "-e") == 0)
            assert_string_equal(argv[i + 1], "7");
        if (strcmp(argv[i], "-t") == 0)
            assert_string_equal(argv[i + 1], "4");
        free(argv[i]);
    }
    free(argv);
}

/* Blender's status lines as percent of the task's frames, below 100. */
static void test_progress(void **state)
{
    (void)state;
    struct tsr_task_spec spec = {.frame_start = 3, .frame_end = 4};
    const struct {
        const char *line; /* one line of Blender's output */
        int pct;          /* what it means, or -1 */
    } cases[] = {
        {"Fra:3 Mem:9.50M (Peak 10.22M) | Time:00:00.03 | Remaining:00:00.00 | Mem:0.81M, "
         "Peak:0.81M | Scene, ViewLayer | Sample 1/4",
         12},
        {"Fra:3 Mem:9.55M | Time:00:00.04 | Scene, ViewLayer | Sample 4/4", 50},
        {"Fra:4 Mem:9.55M | Scene, ViewLayer | Sample 32/64", 75},
        {"Fra:4 Mem:12M | Scene | Rendered 8/16 Tiles", 75},
        {"Fra:3 Mem:12M | Path Tracing Tile 4/16", 12},
        {"Saved: '/c/tasks/9/out_0003.exr'", 50},
        {"Saved: '/c/tasks/9/out_0004.exr'", 99},
        {"Fra:5 Mem:9.55M | Sample 1/4", -1}, /* not this task's frame */
        {"Fra:3 Mem:9.45M | Updating Shaders", -1},
        {"Fra:3 | Sample 5/4", -1},
        {"Fra:x | Sample 1/4", -1},
        {"progress: 50", -1},
        {"", -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int got = tsr_blender_progress(&spec, cases[i].line);
        if (got != cases[i].pct)
            print_error("'%s': %d, want %d\n", cases[i].line, got, cases[i].pct);
        assert_int_equal(got, cases[i].pct);
    }
}

/* Failure classes from the wait status and the log. */
static void test_classify(void **state)
{
    (void)state;
    const struct {
        int status;        /* wait status */
        const char *log;   /* the run's output */
        const char *cls;   /* the class, or NULL */
        const char *error; /* what err must hold */
    } cases[] = {
        {87 << 8,
         "Read blend: x\ntessera: missing file: image 'wood' (//tex/wood.png)\n"
         "tessera: missing_asset: missing file: image 'wood' (//tex/wood.png)\n",
         "missing_asset", "missing file: image 'wood' (//tex/wood.png)"},
        {88 << 8, "tessera: missing_feature: Blender sees no OPTIX device (cycles:optix)\n",
         "missing_feature", "Blender sees no OPTIX device (cycles:optix)"},
        {1 << 8, "Fra:1 ...\nError: System is out of GPU memory\n", "oom",
         "blender ran out of memory: Error: System is out of GPU memory"},
        {SIGKILL, "Fra:1 | Sample 3/64\n", "oom", "out-of-memory killer"},
        {SIGSEGV, "Writing: /tmp/shot.crash.txt\n", "crash",
         "blender crashed: killed by signal 11"},
        {SIGABRT, "", "crash", "killed by signal 6"},
        {0, "Error: Cannot read file '/c/lib.blend': No such file or directory\n",
         "missing_asset", "blender could not read a file: Error: Cannot read file"},
        {1 << 8, "CUDA binary kernel for this graphics card compute capability (9.0) not found.\n",
         "missing_feature", "lacks a feature"},
        {1 << 8, "Error: Cannot render, no camera\n", NULL, NULL},
        {86 << 8, "Traceback...\nAttributeError: 'NoneType' object\n", NULL, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[512] = "";
        const char *cls = tsr_blender_classify(cases[i].status, cases[i].log, err, sizeof err);
        if (!cases[i].cls) {
            assert_null(cls);
            continue;
        }
        assert_non_null(cls);
        assert_string_equal(cls, cases[i].cls);
        if (!strstr(err, cases[i].error))
            print_error("case %zu: '%s' lacks '%s'\n", i, err, cases[i].error);
        assert_non_null(strstr(err, cases[i].error));
    }
    char buf[128];
    assert_int_equal(tsr_blender_last_error("a\nError: first\nb\n  Error: Cannot render, "
                                            "no camera\nc\n",
                                            buf, sizeof buf),
                     1);
    assert_string_equal(buf, "Error: Cannot render, no camera");
    assert_int_equal(tsr_blender_last_error("nothing\n", buf, sizeof buf), 0);
}

/* A border render (the full frame, black outside) becomes exactly the
 * region; a piece already is left alone; anything else is refused. */
static void test_crop(void **state)
{
    (void)state;
    const int w = 8, h = 4;
    float px[8 * 4 * 4];
    for (int i = 0; i < w * h * 4; i++)
        px[i] = (float)i;
    char path[128], err[256];
    snprintf(path, sizeof path, "%s/out_0001.exr", s_dir);
    struct tsr_image_info full = {{0, 0, w, h}, w, h, 4};
    assert_int_equal(tsr_image_write_exr(path, &full, px, err, sizeof err), 0);
    struct tsr_region r = {2, 1, 5, 3};
    assert_int_equal(tsr_blender_crop(path, &r, w, h, err, sizeof err), 0);
    struct tsr_image_limits lim;
    tsr_image_limits_default(&lim);
    struct tsr_image_info info;
    float *got = NULL;
    assert_int_equal(tsr_image_read(path, &lim, &info, &got, err, sizeof err), 0);
    assert_memory_equal(&info.data, &r, sizeof r);
    assert_int_equal(info.full_width, w);
    assert_int_equal(info.full_height, h);
    for (int y = r.y0; y < r.y1; y++)
        for (int x = r.x0; x < r.x1; x++)
            for (int c = 0; c < 4; c++)
                assert_true(got[((y - r.y0) * (r.x1 - r.x0) + (x - r.x0)) * 4 + c] ==
                            px[(y * w + x) * 4 + c]);
    free(got);
    /* Now a piece: left as it is. */
    unsigned long long before = 0;
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    before = (unsigned long long)st.st_mtim.tv_nsec + (unsigned long long)st.st_ino;
    assert_int_equal(tsr_blender_crop(path, &r, w, h, err, sizeof err), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_true((unsigned long long)st.st_mtim.tv_nsec + (unsigned long long)st.st_ino ==
                before);
    /* Another frame size: refused, saying what it is. */
    assert_int_equal(tsr_blender_crop(path, &(struct tsr_region){0, 0, 2, 2}, 16, 8, err,
                                      sizeof err),
                     TSR_EIMAGE);
    assert_non_null(strstr(err, "blender wrote a 8x4 image"));
    snprintf(path, sizeof path, "%s/missing.exr", s_dir);
    assert_int_equal(tsr_blender_crop(path, &r, w, h, err, sizeof err), TSR_EIO);
}

static int s_group_setup(void **state)
{
    (void)state;
    snprintf(s_dir, sizeof s_dir, "/tmp/tsr-blender-test-XXXXXX");
    return mkdtemp(s_dir) ? 0 : -1;
}

static int s_group_teardown(void **state)
{
    (void)state;
    tsr_rm_rf(s_dir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_probe_line), cmocka_unit_test(test_probe_fake),
        cmocka_unit_test(test_argv),       cmocka_unit_test(test_progress),
        cmocka_unit_test(test_classify),   cmocka_unit_test(test_crop),
    };
    return cmocka_run_group_tests(tests, s_group_setup, s_group_teardown);
}
