/* test_hello.c: what a worker may announce in HELLO (master/hello.c): the
 * bounds of every list and string, refusals that name the field, and a kept
 * copy that holds the known fields only. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "master.h"
#include "tessera/error.h"

/* Checks the HELLO in text; returns hello_check's code, err filled. */
static int s_check(const char *text, struct hello *h, char *err)
{
    cJSON *hdr = cJSON_Parse(text);
    assert_non_null(hdr);
    err[0] = '\0';
    int rc = hello_check(hdr, h, err, 256);
    if (rc == 0) {
        /* h borrows from hdr: keep what the tests look at in caps only. */
        h->name = h->hub = h->instance = NULL;
        h->running = NULL;
    }
    cJSON_Delete(hdr);
    return rc;
}

static void test_good_kept_fields(void **state)
{
    (void)state;
    struct hello h;
    char err[256];
    assert_int_equal(s_check("{\"name\":\"n1\",\"hub\":\"h\",\"instance\":\"abc\",\"slots\":4,"
                             "\"cores\":8,\"memory_mb\":1024,\"renderers\":[\"builtin\"],"
                             "\"features\":[\"gpu\"],\"gpus\":[{\"name\":\"H100\","
                             "\"memory_mb\":80000,\"extra\":\"dropped\"}],\"gpu_slots\":1,"
                             "\"blender\":{\"version\":\"4.1\",\"devices\":[{\"type\":\"CPU\","
                             "\"name\":\"x\"}],\"features\":[\"cycles\"]},\"version\":\"1\","
                             "\"sandbox\":\"bwrap\",\"running\":[3,4],\"junk\":[1,2,3]}",
                             &h, err),
                     0);
    assert_int_equal(h.slots, 4);
    assert_int_equal(h.cores, 8);
    assert_int_equal(h.gpu_slots, 1);
    assert_null(cJSON_GetObjectItem(h.caps, "junk"));
    assert_null(cJSON_GetObjectItem(h.caps, "running"));
    const cJSON *g = cJSON_GetArrayItem(cJSON_GetObjectItem(h.caps, "gpus"), 0);
    assert_string_equal(cJSON_GetObjectItem(g, "name")->valuestring, "H100");
    assert_null(cJSON_GetObjectItem(g, "extra"));
    const cJSON *b = cJSON_GetObjectItem(h.caps, "blender");
    assert_string_equal(cJSON_GetObjectItem(b, "version")->valuestring, "4.1");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(b, "devices")), 1);
    assert_string_equal(cJSON_GetObjectItem(h.caps, "sandbox")->valuestring, "bwrap");
    cJSON_Delete(h.caps);
}

/* A HELLO with `field` set to n strings of len bytes each. */
static char *s_list(const char *field, int n, int len)
{
    size_t cap = 128 + (size_t)n * ((size_t)len + 3);
    char *s = malloc(cap);
    size_t k = (size_t)snprintf(s, cap, "{\"name\":\"n\",\"slots\":1,\"%s\":[", field);
    for (int i = 0; i < n; i++) {
        s[k++] = i ? ',' : ' ';
        s[k++] = '"';
        memset(s + k, 'a' + i % 26, (size_t)len);
        k += (size_t)len;
        s[k++] = '"';
    }
    snprintf(s + k, cap - k, "]}");
    return s;
}

static void test_bounds(void **state)
{
    (void)state;
    struct hello h;
    char err[256];
    char *t = s_list("features", HELLO_MAX_FEATURES, HELLO_MAX_FEATURE_LEN);
    assert_int_equal(s_check(t, &h, err), 0);
    cJSON_Delete(h.caps);
    free(t);
    t = s_list("features", HELLO_MAX_FEATURES + 1, 8);
    assert_int_equal(s_check(t, &h, err), TSR_ELIMIT);
    assert_non_null(strstr(err, "field 'features' lists more than 64 entries"));
    free(t);
    t = s_list("features", 1, HELLO_MAX_FEATURE_LEN + 1);
    assert_int_equal(s_check(t, &h, err), TSR_ELIMIT);
    assert_non_null(strstr(err, "'features' is longer than 63 bytes"));
    free(t);
    t = s_list("renderers", HELLO_MAX_RENDERERS + 1, 4);
    assert_int_equal(s_check(t, &h, err), TSR_ELIMIT);
    assert_non_null(strstr(err, "'renderers'"));
    free(t);
}

static void test_refusals(void **state)
{
    (void)state;
    struct hello h;
    char err[256];
    static const struct {
        const char *text; /* the HELLO */
        const char *says; /* part of the reason */
    } cases[] = {
        {"{\"slots\":1}", "'name' is missing"},
        {"{\"name\":\"\",\"slots\":1}", "'name' is empty"},
        {"{\"name\":\"a\\u0007b\",\"slots\":1}", "printable"},
        {"{\"name\":\"n\",\"slots\":1025}", "'slots' is out of range"},
        {"{\"name\":\"n\",\"slots\":1,\"gpu_slots\":65}", "'gpu_slots' is out of range"},
        {"{\"name\":\"n\",\"slots\":1,\"running\":[\"x\"]}", "'running'"},
        {"{\"name\":\"n\",\"slots\":1,\"running\":[0]}", "'running'"},
        {"{\"name\":\"n\",\"slots\":1,\"features\":\"gpu\"}", "array of strings"},
        {"{\"name\":\"n\",\"slots\":1,\"features\":[7]}", "printable strings"},
        {"{\"name\":\"n\",\"slots\":1,\"gpus\":[1]}", "array of objects"},
        {"{\"name\":\"n\",\"slots\":1,\"blender\":{\"devices\":[{\"name\":7}]}}", "devices"},
        {"{\"name\":\"n\",\"slots\":1,\"instance\":\"0123456789012345678901234567890123456789"
         "01234567890123456789012345\"}",
         "'instance' is too long"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = s_check(cases[i].text, &h, err);
        if (rc == 0 || !strstr(err, cases[i].says))
            fail_msg("case %zu: rc %d, err '%s', wanted '%s'", i, rc, err, cases[i].says);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_kept_fields),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
