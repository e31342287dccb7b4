/* test_curve.c: key files and endpoint checks (shared/curve.c): a generated
 * pair loads back, secret files must be private, malformed files are refused
 * with a reason, and only loopback endpoints count as loopback. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four above, which it needs */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "tessera/curve.h"
#include "tessera/error.h"
#include "tessera/util.h"

static char s_dir[256];

static int s_setup(void **state)
{
    (void)state;
    snprintf(s_dir, sizeof s_dir, "%s/tsr-curve.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    return mkdtemp(s_dir) ? 0 : -1;
}

static int s_teardown(void **state)
{
    (void)state;
    return tsr_rm_rf(s_dir);
}

static void s_write(const char *name, const char *text, mode_t mode)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", s_dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    chmod(path, mode);
}

static void test_generate_and_load(void **state)
{
    (void)state;
    char base[512], path[600], err[256] = "";
    snprintf(base, sizeof base, "%s/alice", s_dir);
    assert_int_equal(tsr_key_generate(base, err, sizeof err), 0);

    char pub[TSR_KEY_Z85], sec[TSR_KEY_Z85], pub2[TSR_KEY_Z85];
    snprintf(path, sizeof path, "%s.key", base);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(tsr_key_load_secret(path, pub, sec, err, sizeof err), 0);
    assert_int_equal(strlen(pub), 40);
    assert_int_equal(strlen(sec), 40);
    char derived[TSR_KEY_Z85];
    assert_int_equal(zmq_curve_public(derived, sec), 0);
    assert_string_equal(derived, pub);

    snprintf(path, sizeof path, "%s.pub", base);
    assert_int_equal(tsr_key_load_public(path, pub2, err, sizeof err), 0);
    assert_string_equal(pub, pub2);
    /* A secret key file read where a public key is wanted gives its public. */
    snprintf(path, sizeof path, "%s.key", base);
    assert_int_equal(tsr_key_load_public(path, pub2, err, sizeof err), 0);
    assert_string_equal(pub, pub2);

    /* Never overwrites a key. */
    assert_int_equal(tsr_key_generate(base, err, sizeof err), TSR_EEXIST);
    assert_non_null(strstr(err, "exists already"));
}

static void test_bad_names(void **state)
{
    (void)state;
    char base[512], err[256];
    const char *bad[] = {".hidden", "a:b", "sp ace", "", "x/"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(base, sizeof base, "%s/%s", s_dir, bad[i]);
        assert_int_equal(tsr_key_generate(base, err, sizeof err), TSR_EINVAL);
    }
    char long_name[60];
    memset(long_name, 'a', 49);
    long_name[49] = '\0';
    assert_false(tsr_key_name_ok(long_name));
    long_name[48] = '\0';
    assert_true(tsr_key_name_ok(long_name));
    char name[TSR_KEY_NAME_MAX + 1];
    assert_int_equal(tsr_key_name_of("keys/node17.key", name), 0);
    assert_string_equal(name, "node17");
    assert_int_equal(tsr_key_name_of("/x/studio-b.pub", name), 0);
    assert_string_equal(name, "studio-b");
    assert_int_equal(tsr_key_name_of("/x/.pub", name), TSR_EINVAL);
}

static void test_secret_must_be_private(void **state)
{
    (void)state;
    char pub[TSR_KEY_Z85], sec[TSR_KEY_Z85], err[256] = "";
    assert_int_equal(zmq_curve_keypair(pub, sec), 0);
    char text[256], path[512];
    snprintf(text, sizeof text, "public = %s\nsecret = %s\n", pub, sec);
    s_write("open.key", text, 0644);
    snprintf(path, sizeof path, "%s/open.key", s_dir);
    char p2[TSR_KEY_Z85], s2[TSR_KEY_Z85];
    assert_int_equal(tsr_key_load_secret(path, p2, s2, err, sizeof err), TSR_EINVAL);
    assert_non_null(strstr(err, "mode 0644"));
    chmod(path, 0600);
    assert_int_equal(tsr_key_load_secret(path, p2, s2, err, sizeof err), 0);
    assert_string_equal(s2, sec);
}

static void test_malformed(void **state)
{
    (void)state;
    char pub[TSR_KEY_Z85], sec[TSR_KEY_Z85], other[TSR_KEY_Z85], osec[TSR_KEY_Z85];
    assert_int_equal(zmq_curve_keypair(pub, sec), 0);
    assert_int_equal(zmq_curve_keypair(other, osec), 0);
    char text[512], path[512], err[256];
    struct {
        const char *name;  /* file */
        const char *fmt;   /* content; %s is a key */
        const char *key;   /* what goes in %s */
        int secret;        /* load as a secret key */
        const char *want;  /* part of the error */
    } cases[] = {
        {"short.pub", "public = %s\n", "abc", 0, "not a 40-character Z85 key"},
        {"junk.pub", "hello world\n%s", "", 0, "not a 40-character Z85 key"},
        {"field.pub", "colour = %s\n", pub, 0, "unknown field"},
        {"empty.pub", "# nothing\n%s", "", 0, "holds no key"},
        {"twice.pub", "public = %s\npublic = %s\n", pub, 0, "given twice"},
        {"sec.pub", "secret = %s\n", sec, 0, "holds no public key"},
        {"bare.key", "%s\n", sec, 1, "expected 'public = KEY'"},
        {"nosec.key", "public = %s\n", pub, 1, "holds no secret key"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(text, sizeof text, cases[i].fmt, cases[i].key, cases[i].key);
        s_write(cases[i].name, text, 0600);
        snprintf(path, sizeof path, "%s/%s", s_dir, cases[i].name);
        err[0] = '\0';
        char gp[TSR_KEY_Z85], gs[TSR_KEY_Z85];
        int rc = cases[i].secret ? tsr_key_load_secret(path, gp, gs, err, sizeof err)
                                 : tsr_key_load_public(path, gp, err, sizeof err);
        if (rc != TSR_EINVAL || !strstr(err, cases[i].want))
            fail_msg("%s: rc %d, err '%s', want '%s'", cases[i].name, rc, err,
                     cases[i].want);
        assert_null(strchr(err, '\n'));
    }
    /* Halves of two different pairs. */
    assert_int_equal(zmq_curve_keypair(pub, sec), 0);
    snprintf(text, sizeof text, "public = %s\nsecret = %s\n", other, sec);
    s_write("mixed.key", text, 0600);
    snprintf(path, sizeof path, "%s/mixed.key", s_dir);
    assert_int_equal(tsr_key_load_secret(path, pub, sec, err, sizeof err), TSR_EINVAL);
    assert_non_null(strstr(err, "do not belong together"));
    /* A bare key (pasted) is a public key. */
    snprintf(text, sizeof text, "%s\n", other);
    s_write("pasted.pub", text, 0644);
    snprintf(path, sizeof path, "%s/pasted.pub", s_dir);
    assert_int_equal(tsr_key_load_public(path, pub, err, sizeof err), 0);
    assert_string_equal(pub, other);
    /* Too large, and missing. */
    char big[5000];
    memset(big, '#', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    s_write("big.pub", big, 0644);
    snprintf(path, sizeof path, "%s/big.pub", s_dir);
    assert_int_equal(tsr_key_load_public(path, pub, err, sizeof err), TSR_EINVAL);
    snprintf(path, sizeof path, "%s/none.pub", s_dir);
    assert_int_equal(tsr_key_load_public(path, pub, err, sizeof err), TSR_ENOTFOUND);
}

static void test_loopback(void **state)
{
    (void)state;
    const char *yes[] = {"ipc:///tmp/x.sock", "tcp://127.0.0.1:7400", "tcp://127.8.9.1:1",
                         "tcp://localhost:7400", "tcp://[::1]:7400", "inproc://x"};
    const char *no[] = {"tcp://0.0.0.0:7400",    "tcp://*:7400",
                        "tcp://10.0.0.1:7400",   "tcp://eth0:7400",
                        "tcp://127.0.0.1.evil:1", "tcp://1270.0.0.1:1",
                        "tcp://[::]:7400",       "tcp://127.0.0:1",
                        "udp://127.0.0.1:1",     "tcp://127.0.0.256:1",
                        "tcp://:7400",           NULL};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        if (!tsr_endpoint_is_loopback(yes[i]))
            fail_msg("'%s' should be loopback", yes[i]);
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        if (tsr_endpoint_is_loopback(no[i]))
            fail_msg("'%s' should not be loopback", no[i] ? no[i] : "(null)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generate_and_load),
        cmocka_unit_test(test_bad_names),
        cmocka_unit_test(test_secret_must_be_private),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_loopback),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
