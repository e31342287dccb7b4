/*
 * main.c: tessera-master: flags, the data folder, sockets, and the reactor.
 *
 *   tessera-master [--data DIR] [--clients ENDPOINT] [--workers ENDPOINT]
 *                  [--heartbeat-ms N] [--liveness N] [--map-size MIB]
 *                  [--threads N] [--log-level L]
 *                  [--key FILE --studio-keys DIR --operator-keys DIR
 *                   --worker-keys DIR] [--insecure]
 */
#include "auth.h"
#include "master.h"

#include "tessera/curve.h"

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

/* Keys and key folders from the command line (doc/security.md). */
static struct {
    const char *key;          /* --key: the master's secret key file, or NULL */
    struct auth_config dirs;  /* --studio-keys, --operator-keys, --worker-keys */
    int insecure;             /* --insecure: plain TCP allowed off loopback */
    char pub[TSR_KEY_Z85];    /* the master's public key (with --key) */
    char sec[TSR_KEY_Z85];    /* and its secret key */
} s_sec;

static void s_on_hup(int sig)
{
    (void)sig;
    auth_request_rescan();
}

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
            "                      [--key FILE --studio-keys DIR --operator-keys DIR\n"
            "                       --worker-keys DIR] [--insecure]\n"
            "                      [--max-archive-entries N] [--max-archive-size MIB]\n"
            "                      [--max-archive-ratio N] [--mutation-rate N]\n"
            "                      [--mutation-burst N]\n"
            "defaults: --data ./tessera-data --clients tcp://127.0.0.1:7400\n"
            "          --workers tcp://127.0.0.1:7401 --heartbeat-ms 1000 --liveness 5\n"
            "          --map-size 1024 --map-max 16384 --block-after 3 --quarantine-jobs 3\n"
            "          --threads 3 --max-archive-entries 100000 --max-archive-size 65536\n"
            "          --max-archive-ratio 1000 --mutation-rate 50 --mutation-burst 200\n");
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

static int s_bind(struct master *m, void **sock, const char *ep, const char *domain)
{
    *sock = zmq_socket(m->zctx, ZMQ_ROUTER);
    if (!*sock || tsr_socket_setup(*sock) != 0)
        return TSR_EZMQ;
    if (s_sec.key && tsr_curve_server(*sock, s_sec.sec, domain) != 0) {
        fprintf(stderr, "tessera-master: cannot make '%s' a CURVE server: %s\n", ep,
                zmq_strerror(zmq_errno()));
        return TSR_EZMQ;
    }
    if (zmq_bind(*sock, ep) != 0) {
        fprintf(stderr, "tessera-master: cannot listen on '%s': %s\n", ep,
                zmq_strerror(zmq_errno()));
        return TSR_EZMQ;
    }
    return 0;
}

/*
 * Checks the security flags and loads the master's key. Off loopback the
 * master listens only with keys, or when the operator says --insecure: a
 * farm open to the network without keys runs anyone's commands on every
 * worker. Returns 0 or the exit code, having said why in one line.
 */
static int s_check_security(struct master *m)
{
    const char *dirs[] = {s_sec.dirs.studio_dir, s_sec.dirs.operator_dir,
                          s_sec.dirs.worker_dir};
    const char *flags[] = {"--studio-keys", "--operator-keys", "--worker-keys"};
    for (int i = 0; i < 3; i++) {
        if (dirs[i] && !dirs[i][0]) {
            fprintf(stderr, "tessera-master: %s needs a folder\n", flags[i]);
            return 2;
        }
        if (dirs[i] && !s_sec.key) {
            fprintf(stderr, "tessera-master: %s needs --key (the master's own key)\n",
                    flags[i]);
            return 2;
        }
    }
    if (s_sec.key) {
        if (!dirs[2] || (!dirs[0] && !dirs[1])) {
            fprintf(stderr, "tessera-master: --key needs --worker-keys DIR and "
                            "--studio-keys DIR or --operator-keys DIR: whose keys to admit\n");
            return 2;
        }
        char err[512];
        if (tsr_key_load_secret(s_sec.key, s_sec.pub, s_sec.sec, err, sizeof err) != 0) {
            fprintf(stderr, "tessera-master: --key: %s\n", err);
            return 2;
        }
        return 0;
    }
    const char *eps[] = {m->cfg.client_ep, m->cfg.worker_ep};
    for (int i = 0; i < 2; i++) {
        if (tsr_endpoint_is_loopback(eps[i]))
            continue;
        if (!s_sec.insecure) {
            fprintf(stderr, "tessera-master: refusing to listen on '%s' without keys: give "
                            "--key and key folders (doc/security.md), or --insecure\n",
                    eps[i]);
            return 2;
        }
        tsr_log(TSR_LOG_WARN, "master", "listening on '%s' without keys (--insecure): "
                                        "anyone who reaches it can submit jobs and run "
                                        "commands on the workers", eps[i]);
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
    m.cfg.pool_threads = 3; /* two for heavy work, one kept for chunks (pool.c) */
    m.cfg.default_max_failures = 3;
    m.cfg.default_timeout_s = 3600;
    m.cfg.map_max = 16384ULL << 20;
    m.cfg.block_after = 3;
    m.cfg.block_ms = 10 * 60 * 1000;
    m.cfg.quarantine_jobs = 3;
    m.cfg.quarantine_window_ms = 60 * 60 * 1000;
    m.cfg.mutation_rate = 50;
    m.cfg.mutation_burst = 200;

    tsr_archive_limits_default(&m.cfg.archive);

    static const struct option opts[] = {
        {"data", required_argument, 0, 'd'},      {"clients", required_argument, 0, 'c'},
        {"workers", required_argument, 0, 'w'},   {"heartbeat-ms", required_argument, 0, 'H'},
        {"liveness", required_argument, 0, 'L'},  {"map-size", required_argument, 0, 'M'},
        {"threads", required_argument, 0, 'T'},   {"log-level", required_argument, 0, 'l'},
        {"map-max", required_argument, 0, 'X'},   {"block-after", required_argument, 0, 'B'},
        {"quarantine-jobs", required_argument, 0, 'Q'},
        {"key", required_argument, 0, 1001},      {"studio-keys", required_argument, 0, 1002},
        {"operator-keys", required_argument, 0, 1003},
        {"worker-keys", required_argument, 0, 1004},
        {"insecure", no_argument, 0, 1005},
        {"max-archive-entries", required_argument, 0, 1006},
        {"max-archive-size", required_argument, 0, 1007},
        {"max-archive-ratio", required_argument, 0, 1008},
        {"mutation-rate", required_argument, 0, 1101},
        {"mutation-burst", required_argument, 0, 1102},
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
        case 1001: s_sec.key = optarg; break;
        case 1002: s_sec.dirs.studio_dir = optarg; break;
        case 1003: s_sec.dirs.operator_dir = optarg; break;
        case 1004: s_sec.dirs.worker_dir = optarg; break;
        case 1005: s_sec.insecure = 1; break;
        case 1006:
            if (s_int_arg("--max-archive-entries", optarg, 1, 100000000, &n))
                return 2;
            m.cfg.archive.max_entries = (uint64_t)n;
            break;
        case 1007:
            if (s_int_arg("--max-archive-size", optarg, 1, 1L << 30, &n))
                return 2;
            m.cfg.archive.max_total_size = (uint64_t)n << 20;
            if (m.cfg.archive.max_entry_size > m.cfg.archive.max_total_size)
                m.cfg.archive.max_entry_size = m.cfg.archive.max_total_size;
            break;
        case 1008:
            if (s_int_arg("--max-archive-ratio", optarg, 1, 1000000, &n))
                return 2;
            m.cfg.archive.max_ratio = (uint64_t)n;
            break;
        case 1101:
            if (s_int_arg("--mutation-rate", optarg, 0, 1000000, &n))
                return 2;
            m.cfg.mutation_rate = (int)n;
            break;
        case 1102:
            if (s_int_arg("--mutation-burst", optarg, 1, 1000000, &n))
                return 2;
            m.cfg.mutation_burst = (int)n;
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
    int code = s_check_security(&m);
    if (code != 0)
        return code;
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
    m.access = access_new();
    if (!m.zctx || !m.access) {
        fprintf(stderr, "tessera-master: out of memory\n");
        return 1;
    }
    if (s_sec.key) {
        /* Before any CURVE socket binds: without a handler libzmq would
         * admit every key. */
        char err[1300];
        if (auth_start(m.zctx, &s_sec.dirs, &m.auth, err, sizeof err) != 0) {
            fprintf(stderr, "tessera-master: %s; refusing to run with CURVE and no "
                            "working ZAP handler\n", err);
            return 1;
        }
    }
    if (s_bind(&m, &m.clients, m.cfg.client_ep, "clients") != 0 ||
        s_bind(&m, &m.workers_sock, m.cfg.worker_ep, "workers") != 0)
        return 1;
    memset(s_sec.sec, 0, sizeof s_sec.sec); /* the sockets hold it now */
    if (peers_init(&m) != 0 || pool_start(&m, m.cfg.pool_threads) != 0) {
        fprintf(stderr, "tessera-master: cannot start worker threads\n");
        return 1;
    }
    s_master = &m;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = s_on_hup;
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* Tasks stored as running wait this long for their workers to come back
     * and claim them before they are requeued. */
    m.started_ms = tsr_now_ms();
    m.recover_until_ms = m.started_ms + 2LL * m.cfg.heartbeat_ms * m.cfg.liveness;
    for (size_t i = 0; i < m.njobs; i++)
        frames_resume(&m, m.jobs[i]);
    tsr_log(TSR_LOG_INFO, "master", "listening for clients on %s and workers on %s%s%s",
            m.cfg.client_ep, m.cfg.worker_ep, s_sec.key ? " with CURVE, public key " : "",
            s_sec.key ? s_sec.pub : " without keys");
    int rc = master_run(&m);
    tsr_log(TSR_LOG_INFO, "master", "stopping");
    pool_stop(&m);
    zmq_close(m.clients);
    zmq_close(m.workers_sock);
    auth_stop(&m.auth);
    access_destroy(&m.access);
    zmq_ctx_term(m.zctx);
    peers_destroy(&m); /* after ZeroMQ let go of every message */
    ratelimit_destroy(&m);
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
