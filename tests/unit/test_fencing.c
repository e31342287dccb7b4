/*
 * test_fencing.c: exactly-once results from at-least-once delivery, at the
 * protocol level, against a real tessera-master. The test plays a worker
 * over a raw DEALER socket: a duplicate RESULT, a replayed one, one for an
 * attempt that never existed, and a late one from an attempt the master
 * requeued while the worker was silent are all acknowledged and dropped;
 * each task is counted once.
 *
 * argv[1]: the folder with tessera-master and tessera.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "tessera/error.h"
#include "tessera/proto.h"
#include "tessera/util.h"

static const char *g_bin;
static char g_dir[] = "/tmp/tsr-fencing-XXXXXX";
static char g_clients[256], g_workers[256];
static pid_t g_master;
static void *g_ctx, *g_sock;

static void s_send(const char *cmd, cJSON *h)
{
    assert_int_equal(tsr_msg_send(g_sock, NULL, 0, cmd, h, NULL, 0), 0);
    cJSON_Delete(h);
}

/* The next message that is not a HEARTBEAT, within 5 s. */
static void s_recv(struct tsr_msg *m, const char *want)
{
    int64_t end = tsr_now_ms() + 5000;
    for (;;) {
        zmq_pollitem_t it = {g_sock, 0, ZMQ_POLLIN, 0};
        long left = (long)(end - tsr_now_ms());
        if (left <= 0)
            fail_msg("no %s from the master", want);
        if (zmq_poll(&it, 1, left) <= 0)
            continue;
        char err[256];
        assert_int_equal(tsr_msg_recv(g_sock, 0, 0, m, err, sizeof err), 0);
        if (strcmp(m->cmd, "HEARTBEAT") == 0) {
            tsr_msg_clear(m);
            continue;
        }
        if (strcmp(m->cmd, want) != 0)
            fail_msg("wanted %s, got %s", want, m->cmd);
        return;
    }
}

static int64_t s_num(const cJSON *h, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(h, k);
    assert_true(cJSON_IsNumber(v));
    return (int64_t)v->valuedouble;
}

static void s_hello(void)
{
    cJSON *h = cJSON_CreateObject();
    cJSON_AddStringToObject(h, "name", "fake");
    cJSON_AddStringToObject(h, "hub", "test");
    cJSON_AddNumberToObject(h, "slots", 1);
    cJSON *r = cJSON_AddArrayToObject(h, "renderers");
    cJSON_AddItemToArray(r, cJSON_CreateString("command"));
    cJSON_AddArrayToObject(h, "running");
    s_send("HELLO", h);
    struct tsr_msg m;
    s_recv(&m, "WELCOME");
    tsr_msg_clear(&m);
}

/* READY for one task; returns the TASK's attempt and its task number. */
static int64_t s_take_task(int64_t *task)
{
    cJSON *h = cJSON_CreateObject();
    cJSON_AddNumberToObject(h, "credit", 1);
    s_send("READY", h);
    struct tsr_msg m;
    s_recv(&m, "TASK");
    int64_t attempt = s_num(m.hdr, "attempt");
    *task = s_num(m.hdr, "task");
    tsr_msg_clear(&m);
    return attempt;
}

/* Sends RESULT ok for attempt and returns whether the ack accepted it. */
static int s_result(int64_t attempt)
{
    cJSON *h = cJSON_CreateObject();
    cJSON_AddNumberToObject(h, "attempt", (double)attempt);
    cJSON_AddBoolToObject(h, "ok", 1);
    cJSON_AddArrayToObject(h, "files");
    cJSON_AddNumberToObject(h, "render_ms", 1);
    cJSON_AddStringToObject(h, "log", "");
    s_send("RESULT", h);
    struct tsr_msg m;
    s_recv(&m, "RESULT_ACK");
    assert_int_equal(s_num(m.hdr, "attempt"), attempt);
    int accepted = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m.hdr, "accepted"));
    tsr_msg_clear(&m);
    return accepted;
}

static char *s_cli(const char *args)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s/tessera' --master '%s' %s", g_bin, g_clients, args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    static char out[65536];
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    assert_int_equal(pclose(p), 0);
    return out;
}

static void test_fencing(void **state)
{
    (void)state;
    char scene[512];
    snprintf(scene, sizeof scene, "%s/scene", g_dir);
    assert_int_equal(tsr_mkdir_p(scene), 0);
    char readme[600];
    snprintf(readme, sizeof readme, "%s/README", scene);
    assert_int_equal(tsr_write_file_atomic(readme, "x\n", 2), 0);
    char args[1024];
    snprintf(args, sizeof args, "submit '%s' --renderer command --command true "
             "--outputs none --frames 1-2 --json", scene);
    cJSON *sub = cJSON_Parse(s_cli(args));
    int64_t job = s_num(sub, "id");
    cJSON_Delete(sub);

    g_sock = zmq_socket(g_ctx, ZMQ_DEALER);
    tsr_socket_setup(g_sock);
    assert_int_equal(zmq_connect(g_sock, g_workers), 0);
    s_hello();

    int64_t t1, t2, t3;
    int64_t a1 = s_take_task(&t1);
    assert_true(s_result(a1));       /* the live attempt: counted */
    assert_false(s_result(a1));      /* a duplicate: acknowledged, dropped */
    assert_false(s_result(999999));  /* an attempt that never was */

    /* The second task, then silence past the lease (200 ms x 5): the
     * master requeues it and gives it a new attempt. */
    int64_t a2 = s_take_task(&t2);
    assert_int_not_equal(t1, t2);
    usleep(2500 * 1000);
    struct tsr_msg m;
    cJSON *hb = cJSON_CreateObject();
    s_send("HEARTBEAT", hb); /* the master no longer knows us */
    s_recv(&m, "RECONNECT");
    tsr_msg_clear(&m);
    s_hello(); /* running: [] — a2 is gone */
    int64_t a3 = s_take_task(&t3);
    assert_int_equal(t3, t2);
    assert_int_not_equal(a3, a2);
    assert_false(s_result(a2));      /* the late result of the requeued attempt */
    assert_true(s_result(a3));       /* the live one */
    assert_false(s_result(a3));      /* replayed */

    snprintf(args, sizeof args, "status %lld --json", (long long)job);
    cJSON *st = cJSON_Parse(s_cli(args));
    const cJSON *tasks = cJSON_GetObjectItemCaseSensitive(st, "tasks");
    assert_int_equal(s_num(tasks, "done"), 2);
    assert_int_equal(s_num(tasks, "failed"), 0);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(st, "state")->valuestring, "done");
    cJSON_Delete(st);
    zmq_close(g_sock);
}

static int s_setup(void **state)
{
    (void)state;
    if (!mkdtemp(g_dir))
        return -1;
    snprintf(g_clients, sizeof g_clients, "ipc://%s/clients.sock", g_dir);
    snprintf(g_workers, sizeof g_workers, "ipc://%s/workers.sock", g_dir);
    char data[512], master[512], log[512];
    snprintf(data, sizeof data, "%s/master", g_dir);
    snprintf(master, sizeof master, "%s/tessera-master", g_bin);
    snprintf(log, sizeof log, "%s/master.log", g_dir);
    g_master = fork();
    if (g_master == 0) {
        freopen(log, "w", stderr);
        execl(master, master, "--data", data, "--clients", g_clients, "--workers", g_workers,
              "--heartbeat-ms", "200", "--liveness", "5", (char *)NULL);
        _exit(127);
    }
    char sock[512];
    snprintf(sock, sizeof sock, "%s/clients.sock", g_dir);
    for (int i = 0; i < 100 && !tsr_path_exists(sock); i++)
        usleep(50000);
    g_ctx = zmq_ctx_new();
    return tsr_path_exists(sock) ? 0 : -1;
}

static int s_teardown(void **state)
{
    (void)state;
    kill(g_master, SIGTERM);
    waitpid(g_master, NULL, 0);
    zmq_ctx_term(g_ctx);
    tsr_rm_rf(g_dir);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test_fencing BIN_DIR\n");
        return 2;
    }
    g_bin = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fencing),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
