/*
 * main.c: tessera-master: flags, the data folder, sockets, and the reactor.
 *
 *   tessera-master [--data DIR] [--clients ENDPOINT] [--workers ENDPOINT]
 *                  [--heartbeat-ms N] [--liveness N] [--map-size MIB]
 *                  [--threads N] [--log-level L]
 */
#include "master.h"

#include "tessera/error.h"
#include "tessera/hash.h"
#include "tessera/log.h"
#include "tessera/util.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

static struct master *s_master;

static void s_on_signal(int sig)
{
    (void)sig;
    if (s_master)
        s_master->stop = 1;
}

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: tessera-master [--data DIR] [--clients ENDPOINT] [--workers ENDPOINT]\n"
            "                      [--heartbeat-ms N] [--liveness N] [--map-size MIB]\n"
            "                      [--map-max MIB] [--block-after N] [--quarantine-jobs N]\n"
            "                      [--threads N] [--log-level error|warn|info|debug]\n"
            "defaults: --data ./tessera-data --clients tcp://127.0.0.1:7400\n"
            "          --workers tcp://127.0.0.1:7401 --heartbeat-ms 1000 --liveness 5\n"
            "          --map-size 1024 --map-max 16384 --block-after 3 --quarantine-jobs 3\n"
            "          --threads 2\n");
}

static int s_int_arg(const char *flag, const char *v, long min, long max, long *out)
{
    char *end;
    long n = strtol(v, &end, 10);
    if (!*v || *end || n < min || n > max) {
        fprintf(stderr, "tessera-master: %s: '%s' is not a number in %ld..%ld\n", flag, v,
                min, max);
        return -1;
    }
    *out = n;
    return 0;
}

static int s_bind(struct master *m, void **sock, const char *ep)
{
    *sock = zmq_socket(m->zctx, ZMQ_ROUTER);
    if (!*sock || tsr_socket_setup(*sock) != 0)
        return TSR_EZMQ;
    if (zmq_bind(*sock, ep) != 0) {
        fprintf(stderr, "tessera-master: cannot listen on '%s': %s\n", ep,
                zmq_strerror(zmq_errno()));
        return TSR_EZMQ;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct master m;
    memset(&m, 0, sizeof m);
    m.cfg.data_dir = "./tessera-data";
    m.cfg.client_ep = "tcp://127.0.0.1:7400";
    m.cfg.worker_ep = "tcp://127.0.0.1:7401";
    m.cfg.heartbeat_ms = 1000;
    m.cfg.liveness = 5;
    m.cfg.map_size = 1024ULL << 20;
    m.cfg.pool_threads = 2;
    m.cfg.default_max_failures = 3;
    m.cfg.default_timeout_s = 3600;
    m.cfg.map_max = 16384ULL << 20;
    m.cfg.block_after = 3;
    m.cfg.block_ms = 10 * 60 * 1000;
    m.cfg.quarantine_jobs = 3;
    m.cfg.quarantine_window_ms = 60 * 60 * 1000;

    static const struct option opts[] = {
        {"data", required_argument, 0, 'd'},      {"clients", required_argument, 0, 'c'},
        {"workers", required_argument, 0, 'w'},   {"heartbeat-ms", required_argument, 0, 'H'},
        {"liveness", required_argument, 0, 'L'},  {"map-size", required_argument, 0, 'M'},
        {"threads", required_argument, 0, 'T'},   {"log-level", required_argument, 0, 'l'},
        {"map-max", required_argument, 0, 'X'},   {"block-after", required_argument, 0, 'B'},
        {"quarantine-jobs", required_argument, 0, 'Q'},
        {"help", no_argument, 0, 'h'},            {0, 0, 0, 0}};
    int c;
    long n;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'd': m.cfg.data_dir = optarg; break;
        case 'c': m.cfg.client_ep = optarg; break;
        case 'w': m.cfg.worker_ep = optarg; break;
        case 'H':
            if (s_int_arg("--heartbeat-ms", optarg, 50, 600000, &n))
                return 2;
            m.cfg.heartbeat_ms = (int)n;
            break;
        case 'L':
            if (s_int_arg("--liveness", optarg, 2, 1000, &n))
                return 2;
            m.cfg.liveness = (int)n;
            break;
        case 'M':
            if (s_int_arg("--map-size", optarg, 1, 1 << 24, &n))
                return 2;
            m.cfg.map_size = (uint64_t)n << 20;
            break;
        case 'X':
            if (s_int_arg("--map-max", optarg, 1, 1 << 24, &n))
                return 2;
            m.cfg.map_max = (uint64_t)n << 20;
            break;
        case 'B':
            if (s_int_arg("--block-after", optarg, 1, 1000, &n))
                return 2;
            m.cfg.block_after = (int)n;
            break;
        case 'Q':
            if (s_int_arg("--quarantine-jobs", optarg, 1, 8, &n))
                return 2;
            m.cfg.quarantine_jobs = (int)n;
            break;
        case 'T':
            if (s_int_arg("--threads", optarg, 1, 16, &n))
                return 2;
            m.cfg.pool_threads = (int)n;
            break;
        case 'l':
            if (tsr_log_set_level(optarg) != 0) {
                fprintf(stderr, "tessera-master: --log-level: '%s' is not one of error, "
                                "warn, info, debug\n", optarg);
                return 2;
            }
            break;
        case 'h': s_usage(stdout); return 0;
        default:
            fprintf(stderr, "tessera-master: unknown or incomplete option '%s'\n",
                    argv[optind - 1]);
            s_usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "tessera-master: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (tsr_hash_init_library() != 0) {
        fprintf(stderr, "tessera-master: libsodium failed to initialise\n");
        return 1;
    }
    char tmp[MASTER_PATH_MAX + 64];
    snprintf(tmp, sizeof tmp, "%s/blobs/tmp", m.cfg.data_dir);
    /* Staging files of uploads and assemblies that a crash interrupted: no
     * record points at them, and their senders start again. */
    tsr_rm_rf(tmp);
    if (tsr_mkdir_p(tmp) != 0) {
        fprintf(stderr, "tessera-master: cannot create data folder '%s'\n", m.cfg.data_dir);
        return 1;
    }
    if (m.cfg.map_max < m.cfg.map_size)
        m.cfg.map_max = m.cfg.map_size;
    if (store_open(&m) != 0 || store_load(&m) != 0) {
        fprintf(stderr, "tessera-master: cannot open the state in '%s/db'\n", m.cfg.data_dir);
        return 1;
    }
    m.zctx = zmq_ctx_new();
    if (s_bind(&m, &m.clients, m.cfg.client_ep) != 0 ||
        s_bind(&m, &m.workers_sock, m.cfg.worker_ep) != 0)
        return 1;
    if (pool_start(&m, m.cfg.pool_threads) != 0) {
        fprintf(stderr, "tessera-master: cannot start worker threads\n");
        return 1;
    }
    s_master = &m;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* Tasks stored as running wait this long for their workers to come back
     * and claim them before they are requeued. */
    m.started_ms = tsr_now_ms();
    m.recover_until_ms = m.started_ms + 2LL * m.cfg.heartbeat_ms * m.cfg.liveness;
    for (size_t i = 0; i < m.njobs; i++)
        frames_resume(&m, m.jobs[i]);
    tsr_log(TSR_LOG_INFO, "master", "listening for clients on %s and workers on %s",
            m.cfg.client_ep, m.cfg.worker_ep);
    int rc = master_run(&m);
    tsr_log(TSR_LOG_INFO, "master", "stopping");
    pool_stop(&m);
    zmq_close(m.clients);
    zmq_close(m.workers_sock);
    zmq_ctx_term(m.zctx);
    store_commit(&m);
    store_close(&m);
    for (size_t i = 0; i < m.njobs; i++)
        job_free(m.jobs[i]);
    free(m.jobs);
    for (size_t i = 0; i < m.nworkers; i++) {
        cJSON_Delete(m.workers[i]->caps);
        free(m.workers[i]->running);
        free(m.workers[i]);
    }
    free(m.workers);
    for (size_t i = 0; i < m.nuploads; i++)
        free(m.uploads[i]);
    free(m.uploads);
    return rc == 0 ? 0 : 1;
}
