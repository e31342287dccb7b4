/* test_proto.c: the wire codec (shared/proto.c): framing checks, the header
 * field readers, and a real round trip over a ZeroMQ ROUTER/DEALER pair. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <zmq.h>

#include "tessera/error.h"
#include "tessera/proto.h"

static int s_decode(const char *sig, const char *cmd, const char *hdr, struct tsr_msg *m,
                    char *err)
{
    struct tsr_frame f[3] = {{sig, strlen(sig)}, {cmd, strlen(cmd)}, {hdr, strlen(hdr)}};
    return tsr_proto_decode(f, 3, m, err, 256);
}

static void test_decode_good(void **state)
{
    (void)state;
    struct tsr_msg m;
    char err[256];
    assert_int_equal(s_decode("TSR1", "STATUS", "{\"rid\":3,\"job\":7}", &m, err), 0);
    assert_string_equal(m.cmd, "STATUS");
    int64_t v = 0;
    assert_int_equal(tsr_hdr_int(m.hdr, "job", 1, 100, &v, err, sizeof err), 0);
    assert_int_equal(v, 7);
    tsr_msg_clear(&m);
}

static void test_decode_refusals(void **state)
{
    (void)state;
    struct tsr_msg m;
    char err[256];
    assert_int_equal(s_decode("XYZ1", "STATUS", "{}", &m, err), TSR_EPROTO);
    assert_non_null(strstr(err, "signature"));
    assert_int_equal(s_decode("TSR2", "STATUS", "{}", &m, err), TSR_EVERSION);
    assert_non_null(strstr(err, "version '2'"));
    assert_int_equal(s_decode("TSR1", "st atus", "{}", &m, err), TSR_EPROTO);
    assert_int_equal(s_decode("TSR1", "", "{}", &m, err), TSR_EPROTO);
    assert_int_equal(s_decode("TSR1", "STATUS", "[1,2]", &m, err), TSR_EPROTO);
    assert_non_null(strstr(err, "JSON object"));
    assert_int_equal(s_decode("TSR1", "STATUS", "{\"a\":", &m, err), TSR_EPROTO);
    assert_null(m.hdr);
    struct tsr_frame two[2] = {{"TSR1", 4}, {"X", 1}};
    assert_int_equal(tsr_proto_decode(two, 2, &m, err, sizeof err), TSR_EPROTO);
    /* A header frame with an embedded NUL and trailing bytes is not read
     * past its length. */
    struct tsr_frame f[3] = {{"TSR1", 4}, {"A", 1}, {"{}\0garbage", 10}};
    assert_int_equal(tsr_proto_decode(f, 3, &m, err, sizeof err), TSR_EPROTO);
}

static void test_field_readers(void **state)
{
    (void)state;
    char err[256];
    cJSON *h = cJSON_Parse("{\"s\":\"abc\",\"n\":2.5,\"big\":1e300,\"neg\":-4,\"b\":true,"
                           "\"h\":\"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\","
                           "\"bad\":\"../etc\"}");
    const char *s = NULL;
    int64_t v = 0;
    int b = 0;
    assert_int_equal(tsr_hdr_str(h, "s", 10, &s, err, sizeof err), 0);
    assert_string_equal(s, "abc");
    assert_int_equal(tsr_hdr_str(h, "s", 2, &s, err, sizeof err), TSR_EPROTO);
    assert_string_equal(err, "field 's' is too long");
    assert_int_equal(tsr_hdr_str(h, "n", 10, &s, err, sizeof err), TSR_EPROTO);
    assert_int_equal(tsr_hdr_str(h, "missing", 10, &s, err, sizeof err), TSR_EPROTO);
    assert_string_equal(err, "field 'missing' is missing");
    assert_int_equal(tsr_hdr_int(h, "n", 0, 10, &v, err, sizeof err), TSR_EPROTO);
    assert_int_equal(tsr_hdr_int(h, "big", 0, INT64_MAX, &v, err, sizeof err), TSR_EPROTO);
    assert_int_equal(tsr_hdr_int(h, "neg", 0, 10, &v, err, sizeof err), TSR_EPROTO);
    assert_int_equal(tsr_hdr_int(h, "neg", -10, 10, &v, err, sizeof err), 0);
    assert_int_equal(v, -4);
    v = 99;
    assert_int_equal(tsr_hdr_int_opt(h, "absent", 0, 10, &v, err, sizeof err), 0);
    assert_int_equal(v, 99);
    assert_int_equal(tsr_hdr_bool_opt(h, "b", &b, err, sizeof err), 0);
    assert_true(b);
    assert_int_equal(tsr_hdr_bool_opt(h, "s", &b, err, sizeof err), TSR_EPROTO);
    assert_int_equal(tsr_hdr_hash(h, "h", &s, err, sizeof err), 0);
    assert_int_equal(tsr_hdr_hash(h, "bad", &s, err, sizeof err), TSR_EPROTO);
    cJSON_Delete(h);
}

static void test_socket_round_trip(void **state)
{
    (void)state;
    void *ctx = zmq_ctx_new();
    void *router = zmq_socket(ctx, ZMQ_ROUTER);
    void *dealer = zmq_socket(ctx, ZMQ_DEALER);
    assert_int_equal(tsr_socket_setup(router), 0);
    assert_int_equal(tsr_socket_setup(dealer), 0);
    char ep[128];
    snprintf(ep, sizeof ep, "inproc://proto-test");
    assert_int_equal(zmq_bind(router, ep), 0);
    assert_int_equal(zmq_connect(dealer, ep), 0);

    cJSON *h = cJSON_CreateObject();
    cJSON_AddNumberToObject(h, "rid", 5);
    unsigned char body[3000];
    for (size_t i = 0; i < sizeof body; i++)
        body[i] = (unsigned char)i;
    assert_int_equal(tsr_msg_send(dealer, NULL, 0, "CHUNK", h, body, sizeof body), 0);
    cJSON_Delete(h);

    struct tsr_msg m;
    char err[256];
    assert_int_equal(tsr_msg_recv(router, 1, 0, &m, err, sizeof err), 0);
    assert_string_equal(m.cmd, "CHUNK");
    assert_true(m.peer_len > 0);
    assert_int_equal(m.body_len, sizeof body);
    assert_memory_equal(m.body, body, sizeof body);

    /* The reply reaches the dealer through the routing id. */
    assert_int_equal(tsr_msg_send_error(router, m.peer, m.peer_len, "CHUNK", 5, TSR_EINVAL,
                                        "bad chunk"), 0);
    tsr_msg_clear(&m);
    assert_int_equal(tsr_msg_recv(dealer, 0, 0, &m, err, sizeof err), 0);
    assert_string_equal(m.cmd, "ERROR");
    const char *msg = NULL;
    assert_int_equal(tsr_hdr_str(m.hdr, "message", 100, &msg, err, sizeof err), 0);
    assert_string_equal(msg, "bad chunk");
    tsr_msg_clear(&m);

    /* Garbage of many frames is consumed whole and refused, and the socket
     * still works afterwards. */
    for (int i = 0; i < 12; i++)
        zmq_send(dealer, "x", 1, i < 11 ? ZMQ_SNDMORE : 0);
    assert_int_equal(tsr_msg_recv(router, 1, 0, &m, err, sizeof err), TSR_EPROTO);
    assert_true(m.peer_len > 0);
    assert_int_equal(tsr_msg_send(dealer, NULL, 0, "HEARTBEAT", NULL, NULL, 0), 0);
    assert_int_equal(tsr_msg_recv(router, 1, 0, &m, err, sizeof err), 0);
    assert_string_equal(m.cmd, "HEARTBEAT");
    tsr_msg_clear(&m);
    assert_int_equal(tsr_msg_recv(router, 1, 1, &m, err, sizeof err), TSR_ETIMEOUT);

    zmq_close(router);
    zmq_close(dealer);
    zmq_ctx_term(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_good),
        cmocka_unit_test(test_decode_refusals),
        cmocka_unit_test(test_field_readers),
        cmocka_unit_test(test_socket_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
