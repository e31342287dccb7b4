/* test_scene.c: the scene parser (shared/scene.c): the example parses, and
 * bad scenes are refused with the message a user would need to fix them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tessera/error.h"
#include "tessera/scene.h"
#include "tessera/scene_model.h"

static char s_err[1024];

/* Parses text as a scene named name; the error message lands in s_err. */
static int s_parse(const char *text, const char *name, struct tsr_scene **out)
{
    s_err[0] = '\0';
    return tsr_scene_parse(text, strlen(text), name, out, s_err, sizeof s_err);
}

/* Asserts that text is refused with code and a message starting with prefix. */
static void s_refused(const char *text, int code, const char *prefix)
{
    struct tsr_scene *s = NULL;
    int rc = s_parse(text, "t.json", &s);
    if (rc != code || strncmp(s_err, prefix, strlen(prefix)) != 0)
        fail_msg("expected %d '%s...', got %d '%s'", code, prefix, rc, s_err);
    assert_null(s);
}

static void test_example_parses(void **state)
{
    (void)state;
    const char *data = getenv("TSR_TEST_DATA");
    assert_non_null(data);
    char path[4096];
    snprintf(path, sizeof path, "%s/../../examples/orbit/scene.json", data);
    struct tsr_scene *s = NULL;
    int rc = tsr_scene_load(path, &s, s_err, sizeof s_err);
    if (rc)
        fail_msg("%s", s_err);
    int w = 0, h = 0;
    tsr_scene_resolution(s, &w, &h);
    assert_int_equal(w, 320);
    assert_int_equal(h, 180);
    assert_int_equal(s->samples, 16);
    assert_int_equal(s->max_bounces, 4);
    assert_int_equal(s->frame_start, 1);
    assert_int_equal(s->frame_end, 48);
    assert_true(s->nobjects >= 6);
    assert_true(s->nmaterials >= 4);
    /* The balls orbit: the first moves between frames 1 and 24. */
    int ball = -1;
    for (int i = 0; i < s->nobjects && ball < 0; i++)
        if (s->objects[i].translate.nkeys > 2)
            ball = i;
    assert_true(ball >= 0);
    struct tsr_vec3 a = tsr_track3_eval(&s->objects[ball].translate, 1);
    struct tsr_vec3 b = tsr_track3_eval(&s->objects[ball].translate, 24);
    assert_true(a.x != b.x || a.z != b.z);
    tsr_scene_destroy(&s);
    assert_null(s);
    tsr_scene_destroy(&s); /* null-safe */
}

static const char s_minimal[] =
    "{\n"
    "  \"resolution\": [64, 32],\n"
    "  \"camera\": {\"position\": [0, 1, 5]},\n"
    "  \"materials\": {\"m\": {\"type\": \"diffuse\"}},\n"
    "  \"objects\": [\n"
    "    {\"type\": \"sphere\", \"radius\": 1, \"material\": \"m\"}\n"
    "  ]\n"
    "}\n";

static void test_minimal_defaults(void **state)
{
    (void)state;
    struct tsr_scene *s = NULL;
    assert_int_equal(s_parse(s_minimal, "min.json", &s), 0);
    assert_int_equal(s->width, 64);
    assert_int_equal(s->height, 32);
    assert_int_equal(s->samples, 16);
    assert_int_equal(s->max_bounces, 4);
    assert_int_equal(s->nobjects, 1);
    assert_int_equal(s->objects[0].kind, TSR_OBJ_SPHERE);
    assert_int_equal(s->objects[0].material, 0);
    assert_true(s->materials[0].color.x == 0.8);
    assert_true(tsr_track1_eval(&s->camera.fov, 7) == 40.0);
    tsr_scene_destroy(&s);

    /* The text need not be NUL-terminated: only len bytes count. */
    char buf[sizeof s_minimal + 8];
    memcpy(buf, s_minimal, sizeof s_minimal - 1);
    memcpy(buf + sizeof s_minimal - 1, "garbage!", 8);
    assert_int_equal(
        tsr_scene_parse(buf, sizeof s_minimal - 1, "b", &s, s_err, sizeof s_err), 0);
    tsr_scene_destroy(&s);
}

static void test_syntax_error_has_line_and_column(void **state)
{
    (void)state;
    /* A missing comma after line 2: cJSON stops at line 3, column 3. */
    s_refused("{\n"
              "  \"resolution\": [64, 32]\n"
              "  \"camera\": {\"position\": [0, 1, 5]}\n"
              "}\n",
              TSR_ESCENE, "t.json:3:3: ");
    /* A bad literal, on line 4 after two spaces and a key. */
    s_refused("{\n\n  \"resolution\": [64, 32],\n  \"samples\": tru\n}", TSR_ESCENE,
              "t.json:4:14: ");
    /* Cut short: the position is the end of the text. */
    s_refused("{\n  \"resolution\": [64,", TSR_ESCENE, "t.json:2:21: unexpected end");
    s_refused("", TSR_ESCENE, "t.json:1:1: ");
    /* Trailing garbage after the document is refused, not ignored. */
    s_refused("{} x", TSR_ESCENE, "t.json:1:4: ");
}

static void test_wrong_type_names_the_field(void **state)
{
    (void)state;
    s_refused("{\n"
              "  \"resolution\": [64, 32],\n"
              "  \"camera\": {\"position\": [0, 1, 5]},\n"
              "  \"materials\": {\"m\": {\"type\": \"diffuse\"}},\n"
              "  \"objects\": [\n"
              "    {\"type\": \"sphere\", \"radius\": 1, \"material\": \"m\"},\n"
              "    {\"type\": \"sphere\", \"radius\": \"big\", \"material\": \"m\"}\n"
              "  ]\n"
              "}\n",
              TSR_ESCENE, "t.json:7:34: objects[1].radius: expected a number");
    s_refused("{\"resolution\": [64, 32.5]}", TSR_ESCENE,
              "t.json:1:21: resolution[1]: expected an integer");
    s_refused("{\"resolution\": [64, 32], \"camera\": {\"position\": [0, 1]}}",
              TSR_ESCENE, "t.json:1:49: camera.position: expected an array of 3 numbers");
    /* A missing field is reported at the object that lacks it. */
    s_refused("{\"resolution\": [64, 32],\n \"objects\": []}", TSR_ESCENE,
              "t.json:1:1: missing 'camera'");
    s_refused("{\"resolution\": [64, 32], \"camera\": {\"position\": [0, 1, 5]},\n"
              " \"objects\": [{\"type\": \"sphere\", \"material\": \"m\"}],\n"
              " \"materials\": {\"m\": {\"type\": \"metal\"}}}",
              TSR_ESCENE, "t.json:2:14: objects[0]: missing 'radius'");
}

static void test_semantic_errors(void **state)
{
    (void)state;
    const char *head = "{\"resolution\": [8, 8], \"camera\": {\"position\": [0, 1, 5]},"
                       " \"materials\": {\"m\": {\"type\": \"diffuse\"}}, ";
    char text[2048];
    struct {
        const char *tail; /* the rest of the document */
        const char *want; /* a piece of the message */
    } cases[] = {
        {"\"objects\": [], \"radus\": 1}", "radus: unknown key"},
        {"\"objects\": [{\"type\": \"cone\", \"material\": \"m\"}]}",
         "unknown object type"},
        {"\"objects\": [{\"type\": \"sphere\", \"radius\": 1, \"material\": \"x\"}]}",
         "objects[0].material: no material named 'x'"},
        {"\"objects\": [{\"type\": \"sphere\", \"radius\": -1, \"material\": \"m\"}]}",
         "objects[0].radius: expected a number from"},
        {"\"objects\": [{\"type\": \"sphere\", \"radius\": 1, \"normal\": [0, 1, 0], "
         "\"material\": \"m\"}]}",
         "objects[0].normal: not a field of a sphere"},
        {"\"objects\": [{\"type\": \"box\", \"min\": [0, 0, 0], \"max\": [1, 0, 1], "
         "\"material\": \"m\"}]}",
         "objects[0].max: each component"},
        {"\"objects\": [{\"type\": \"mesh\", \"vertices\": [[0,0,0],[1,0,0],[0,1,0]], "
         "\"triangles\": [[0, 1, 3]], \"material\": \"m\"}]}",
         "objects[0].triangles[0][2]: expected an integer from 0 to 2"},
        {"\"objects\": [{\"type\": \"sphere\", \"radius\": 1, \"material\": \"m\", "
         "\"translate\": [{\"frame\": 5, \"value\": [0,0,0]}, {\"frame\": 5, \"value\": "
         "[1,0,0]}]}]}",
         "objects[0].translate[1].frame: key frames must increase"},
        {"\"objects\": [], \"lights\": [{\"type\": \"sun\", \"direction\": [0, 0, 0]}]}",
         "lights[0].direction: expected a non-zero direction"},
        {"\"objects\": [], \"samples\": 0}", "samples: expected an integer from 1"},
        {"\"objects\": [], \"objects\": []}", "objects: duplicate key"},
        {"\"objects\": [], \"frames\": [10, 1]}", "frames: the last frame comes before"},
        {"\"objects\": [], \"clamp\": 1e999}", "clamp: expected a number from"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(text, sizeof text, "%s%s", head, cases[i].tail);
        struct tsr_scene *s = NULL;
        int rc = s_parse(text, "t.json", &s);
        if (rc != TSR_ESCENE || strncmp(s_err, "t.json:1:", 9) != 0 ||
            !strstr(s_err, cases[i].want))
            fail_msg("case %zu: got %d '%s', wanted '%s'", i, rc, s_err, cases[i].want);
        assert_null(s);
    }
    /* Keys that begin with '_' are comments. */
    snprintf(text, sizeof text, "%s\"objects\": [], \"_note\": {\"any\": 1}}", head);
    struct tsr_scene *s = NULL;
    assert_int_equal(s_parse(text, "t.json", &s), 0);
    tsr_scene_destroy(&s);
}

static void test_limits_refused(void **state)
{
    (void)state;
    s_refused("{\"resolution\": [20000, 32]}", TSR_ELIMIT,
              "t.json:1:17: resolution[0]: 20000 is past the limit of 16384");
    s_refused("{\"resolution\": [64, 32], \"samples\": 5000}", TSR_ELIMIT,
              "t.json:1:37: samples: 5000 is past the limit of 4096");
    s_refused("{\"resolution\": [64, 32], \"max_bounces\": 65}", TSR_ELIMIT,
              "t.json:1:41: max_bounces: 65 is past the limit of 64");

    /* 10001 objects. */
    size_t cap = 64 + 10001 * 64;
    char *text = malloc(cap);
    assert_non_null(text);
    size_t n = (size_t)snprintf(text, cap, "{\"resolution\": [8, 8], \"objects\": [");
    for (int i = 0; i < 10001; i++)
        n += (size_t)snprintf(
            text + n, cap - n,
            "%s{\"type\": \"sphere\", \"radius\": 1, \"material\": \"m\"}", i ? "," : "");
    snprintf(text + n, cap - n, "], \"camera\": {\"position\": [0, 0, 5]}}");
    s_refused(text, TSR_ELIMIT,
              "t.json:1:35: objects: 10001 objects, past the limit of 10000");
    free(text);

    /* Too large a text is refused before parsing. */
    struct tsr_scene *s = NULL;
    assert_int_equal(tsr_scene_parse("{}", (size_t)TSR_SCENE_MAX_BYTES + 1, "big", &s,
                                     s_err, sizeof s_err),
                     TSR_ELIMIT);
    assert_int_equal(tsr_scene_load("/nonexistent/scene.json", &s, s_err, sizeof s_err),
                     TSR_ENOTFOUND);
    assert_null(s);
}

static void test_tracks_interpolate(void **state)
{
    (void)state;
    const char *text =
        "{\"resolution\": [8, 8], \"objects\": [],\n"
        " \"camera\": {\"position\": [{\"frame\": 1, \"value\": [0, 0, 0]},\n"
        "                            {\"frame\": 11, \"value\": [10, 20, -10]},\n"
        "                            {\"frame\": 21, \"value\": [10, 20, 0]}],\n"
        "            \"fov\": [{\"frame\": 1, \"value\": 30}, {\"frame\": 3, \"value\": "
        "50}]}}";
    struct tsr_scene *s = NULL;
    if (s_parse(text, "k.json", &s) != 0)
        fail_msg("%s", s_err);
    struct tsr_vec3 v = tsr_track3_eval(&s->camera.position, -5); /* held before */
    assert_true(v.x == 0 && v.y == 0 && v.z == 0);
    v = tsr_track3_eval(&s->camera.position, 6);
    assert_true(v.x == 5 && v.y == 10 && v.z == -5);
    v = tsr_track3_eval(&s->camera.position, 11);
    assert_true(v.x == 10 && v.y == 20 && v.z == -10);
    v = tsr_track3_eval(&s->camera.position, 16);
    assert_true(v.x == 10 && v.y == 20 && v.z == -5);
    v = tsr_track3_eval(&s->camera.position, 99); /* held after */
    assert_true(v.x == 10 && v.y == 20 && v.z == 0);
    assert_true(tsr_track1_eval(&s->camera.fov, 2) == 40.0);
    tsr_scene_destroy(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example_parses),
        cmocka_unit_test(test_minimal_defaults),
        cmocka_unit_test(test_syntax_error_has_line_and_column),
        cmocka_unit_test(test_wrong_type_names_the_field),
        cmocka_unit_test(test_semantic_errors),
        cmocka_unit_test(test_limits_refused),
        cmocka_unit_test(test_tracks_interpolate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
