/* test_hash.c: sha256 naming of blobs (shared/hash.c) and file helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tessera/error.h"
#include "tessera/hash.h"
#include "tessera/util.h"

static void test_known_vectors(void **state)
{
    (void)state;
    char hex[TSR_HASH_HEX];
    tsr_hash_buf("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    tsr_hash_buf("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_file_matches_buffer(void **state)
{
    (void)state;
    char dir[] = "/tmp/tsr-hash-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/a.bin", dir);
    size_t len = 300000;
    unsigned char *buf = malloc(len);
    for (size_t i = 0; i < len; i++)
        buf[i] = (unsigned char)(i * 31 + 7);
    assert_int_equal(tsr_write_file_atomic(path, buf, len), 0);
    char a[TSR_HASH_HEX], b[TSR_HASH_HEX];
    unsigned long long size = 0;
    assert_int_equal(tsr_hash_file(path, a, &size), 0);
    assert_int_equal(size, len);
    tsr_hash_buf(buf, len, b);
    assert_string_equal(a, b);
    assert_int_equal(tsr_hash_file("/nonexistent/x", a, NULL), TSR_ENOTFOUND);
    free(buf);
    assert_int_equal(tsr_rm_rf(dir), 0);
    assert_false(tsr_path_exists(dir));
}

static void test_valid_names(void **state)
{
    (void)state;
    assert_true(tsr_hash_valid("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
    assert_false(tsr_hash_valid("E3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
    assert_false(tsr_hash_valid("../../etc/passwd"));
    assert_false(tsr_hash_valid("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8550"));
    assert_false(tsr_hash_valid(""));
}

int main(void)
{
    assert_int_equal(tsr_hash_init_library(), 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_vectors),
        cmocka_unit_test(test_file_matches_buffer),
        cmocka_unit_test(test_valid_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
