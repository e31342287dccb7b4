/* test_frameset.c: frame-set parsing (shared/frameset.c): the frames a user
 * gets for each form, and the exact error text for each bad form. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four above, which it needs */

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tessera/error.h"
#include "tessera/frameset.h"

/* Parses spec, expects success and exactly the n frames of want. */
static void s_expect(const char *spec, const int *want, size_t n)
{
    int *frames = NULL;
    size_t count = 0;
    char err[256] = "";
    int rc = tsr_frameset_parse(spec, &frames, &count, err, sizeof err);
    if (rc != 0)
        fail_msg("'%s' refused: %s", spec, err);
    assert_int_equal(count, n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(frames[i], want[i]);
    free(frames);
}

/* Parses spec, expects code and, when msg is not NULL, exactly that text. */
static void s_refuse(const char *spec, int code, const char *msg)
{
    int *frames = (int *)1;
    size_t count = 7;
    char err[256] = "";
    int rc = tsr_frameset_parse(spec, &frames, &count, err, sizeof err);
    if (rc != code)
        fail_msg("'%s': got %d (%s), want %d", spec ? spec : "(null)", rc, err, code);
    assert_null(frames);
    assert_int_equal(count, 0);
    assert_true(strlen(err) > 0);
    assert_null(strchr(err, '\n'));
    if (msg)
        assert_string_equal(err, msg);
}

static void test_single_and_list(void **state)
{
    (void)state;
    s_expect("7", (int[]){7}, 1);
    s_expect("1,4,9-12", (int[]){1, 4, 9, 10, 11, 12}, 6);
    s_expect(" 3 , 1 ,2 ", (int[]){1, 2, 3}, 3);
    s_expect("\t5\t", (int[]){5}, 1);
}

static void test_ranges_and_steps(void **state)
{
    (void)state;
    int *frames = NULL;
    size_t count = 0;
    char err[128];
    assert_int_equal(tsr_frameset_parse("1-240", &frames, &count, err, sizeof err), 0);
    assert_int_equal(count, 240);
    for (size_t i = 0; i < count; i++)
        assert_int_equal(frames[i], (int)i + 1);
    free(frames);

    assert_int_equal(tsr_frameset_parse("1-100x5", &frames, &count, err, sizeof err), 0);
    assert_int_equal(count, 20);
    assert_int_equal(frames[0], 1);
    assert_int_equal(frames[1], 6);
    assert_int_equal(frames[19], 96);
    free(frames);

    s_expect("1-10x3", (int[]){1, 4, 7, 10}, 4);
    s_expect("1-10x100", (int[]){1}, 1);
    s_expect("4-4", (int[]){4}, 1);
}

static void test_sorted_unique(void **state)
{
    (void)state;
    s_expect("5,1-3,2,3", (int[]){1, 2, 3, 5}, 4);
    s_expect("10-12,1-20x5,11", (int[]){1, 6, 10, 11, 12, 16}, 6);
}

static void test_negative_frames(void **state)
{
    (void)state;
    s_expect("-5--1", (int[]){-5, -4, -3, -2, -1}, 5);
    s_expect("-2-1", (int[]){-2, -1, 0, 1}, 4);
    s_expect("-10--1x4", (int[]){-10, -6, -2}, 3);
    s_expect("-3", (int[]){-3}, 1);
}

static void test_int_edges(void **state)
{
    (void)state;
    /* Frames stay within the range every worker accepts in a task: one at
     * the 32-bit limits would pass here and fail in every task later. */
    s_expect("-1000000", (int[]){TSR_FRAME_MIN}, 1);
    s_expect("9999990-10000000x5", (int[]){9999990, 9999995, 10000000}, 3);
    s_expect("1-5x10000000", (int[]){1}, 1);
    s_refuse("2147483647", TSR_EFRAMES,
             "frame set '2147483647': '2147483647' is out of range (frames are "
             "-1000000..10000000)");
    s_refuse("-2147483648", TSR_EFRAMES,
             "frame set '-2147483648': '-2147483648' is out of range (frames are "
             "-1000000..10000000)");
    s_refuse("10000001", TSR_EFRAMES, NULL);
    s_refuse("-1000001--5", TSR_EFRAMES, NULL);
    s_refuse("2147483640-2147483647x5", TSR_EFRAMES, NULL);
    s_refuse("1-2147483647x2147483647", TSR_EFRAMES, NULL);
    s_refuse("2147483648", TSR_EFRAMES, NULL);
    s_refuse("1-99999999999999999999999", TSR_EFRAMES,
             "frame set '1-99999999999999999999999': '99999999999999999999999' is out of "
             "range (frames are -1000000..10000000)");
    s_refuse("1-5x99999999999", TSR_EFRAMES, NULL);
}

static void test_bad_items_named(void **state)
{
    (void)state;
    s_refuse("1-x", TSR_EFRAMES, "frame set '1-x': 'x' is not a number");
    s_refuse("abc", TSR_EFRAMES, "frame set 'abc': 'abc' is not a number");
    s_refuse("1,b-4", TSR_EFRAMES, "frame set '1,b-4': 'b' is not a number");
    s_refuse("1-4xz", TSR_EFRAMES, "frame set '1-4xz': 'z' is not a number");
    s_refuse("+5", TSR_EFRAMES, "frame set '+5': '+5' is not a number");
    s_refuse("1-", TSR_EFRAMES, "frame set '1-': '1-' is missing a number");
    s_refuse("1-10x", TSR_EFRAMES, "frame set '1-10x': '1-10x' is missing a number");
    s_refuse("5x2", TSR_EFRAMES,
             "frame set '5x2': '5x2' is not a frame, a range or a stepped range");
    s_refuse("1 - 5", TSR_EFRAMES,
             "frame set '1 - 5': '1 - 5' is not a frame, a range or a stepped range");
    s_refuse("1-2-3", TSR_EFRAMES,
             "frame set '1-2-3': '1-2-3' is not a frame, a range or a stepped range");
}

static void test_empty_reversed_step(void **state)
{
    (void)state;
    s_refuse("", TSR_EFRAMES, "frame set '': the set is empty");
    s_refuse("   ", TSR_EFRAMES, "frame set '   ': the set is empty");
    s_refuse(NULL, TSR_EFRAMES, "frame set is missing");
    s_refuse("1,,2", TSR_EFRAMES, "frame set '1,,2': an item is empty");
    s_refuse("1,", TSR_EFRAMES, "frame set '1,': an item is empty");
    s_refuse(",1", TSR_EFRAMES, "frame set ',1': an item is empty");
    s_refuse("10-1", TSR_EFRAMES, "frame set '10-1': '10-1' is reversed (10 > 1)");
    s_refuse("1-10x0", TSR_EFRAMES,
             "frame set '1-10x0': '1-10x0' has a zero or negative step");
    s_refuse("1-10x-2", TSR_EFRAMES,
             "frame set '1-10x-2': '1-10x-2' has a zero or negative step");
}

static void test_limit_before_allocating(void **state)
{
    (void)state;
    int *frames = NULL;
    size_t count = 0;
    char err[128];
    assert_int_equal(tsr_frameset_parse("1-1000000", &frames, &count, err, sizeof err),
                     0);
    assert_int_equal(count, TSR_FRAMESET_MAX);
    assert_int_equal(frames[TSR_FRAMESET_MAX - 1], 1000000);
    free(frames);

    s_refuse("1-1000001", TSR_ELIMIT,
             "frame set '1-1000001': '1-1000001' takes the set past 1000000 frames");
    /* Eleven million frames would be 44 MB: refused from arithmetic, at once. */
    s_refuse("-1000000-10000000", TSR_ELIMIT,
             "frame set '-1000000-10000000': '-1000000-10000000' takes the set past "
             "1000000 frames");
    s_refuse(
        "0-999999, 1000000", TSR_ELIMIT,
        "frame set '0-999999, 1000000': '1000000' takes the set past 1000000 frames");
    /* A huge range with a big step is small. */
    s_expect("1-10000000x5000000", (int[]){1, 5000001}, 2);
}

static void test_long_spec_quoted_short(void **state)
{
    (void)state;
    char spec[400];
    size_t n = 0;
    for (int i = 0; i < 50; i++)
        n += (size_t)snprintf(spec + n, sizeof spec - n, "%d,", i);
    snprintf(spec + n, sizeof spec - n, "oops");
    int *frames = NULL;
    size_t count = 0;
    char err[256];
    assert_int_equal(tsr_frameset_parse(spec, &frames, &count, err, sizeof err),
                     TSR_EFRAMES);
    assert_non_null(strstr(err, "...': 'oops' is not a number"));
}

/* Found by fuzz_frameset: a newline in the spec split the error message. */
static void test_control_characters_quoted(void **state)
{
    (void)state;
    s_refuse("1zzz\nB ,2 ", TSR_EFRAMES, NULL);
    int *frames = NULL;
    size_t count = 0;
    char err[256] = "";
    tsr_frameset_parse("1,\x1b[2J7", &frames, &count, err, sizeof err);
    assert_null(strchr(err, '\x1b'));
    assert_non_null(strstr(err, "?[2J7"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_and_list),
        cmocka_unit_test(test_ranges_and_steps),
        cmocka_unit_test(test_sorted_unique),
        cmocka_unit_test(test_negative_frames),
        cmocka_unit_test(test_int_edges),
        cmocka_unit_test(test_bad_items_named),
        cmocka_unit_test(test_empty_reversed_step),
        cmocka_unit_test(test_limit_before_allocating),
        cmocka_unit_test(test_long_spec_quoted_short),
        cmocka_unit_test(test_control_characters_quoted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
