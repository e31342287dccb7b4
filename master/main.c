/*
 * main.c: tessera-master: flags, the data folder, sockets, and the reactor.
 *
 *   tessera-master [--data DIR] [--clients ENDPOINT] [--workers ENDPOINT]
 *                  [--heartbeat-ms N] [--liveness N] [--map-size MIB]
 *                  [--threads N] [--log-level L]
 *                  [--key FILE --studio-keys DIR --operator-keys DIR
 *                   --worker-keys DIR] [--insecure]
 *                  [--upload-max N] [--upload-max-bytes MIB] [--upload-idle S]
 *                  [--scrub-rate MIB] [--scrub]
 */
#include "auth.h"
#include "master.h"

#include "tessera/curve.h"

#include "tessera/error.h"
#include "tessera/hash.h"
#include "tessera/log.h"
#include "tessera/util.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
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
            "                      [--max-archive-ratio N] [--max-slots N]\n"
            "                      [--slots-per-core N]\n"
            "                      [--upload-max N] [--upload-max-bytes MIB]\n"
            "                      [--upload-idle S] [--scrub-rate MIB] [--scrub]\n"
            "                      [--mutation-rate N] [--mutation-burst N]\n"
            "defaults: --data ./tessera-data --clients tcp://127.0.0.1:7400\n"
            "          --workers tcp://127.0.0.1:7401 --heartbeat-ms 1000 --liveness 5\n"
            "          --map-size 1024 --map-max 16384 --block-after 3 --quarantine-jobs 3\n"
            "          --threads 3 --max-archive-entries 100000 --max-archive-size 65536\n"
            "          --max-archive-ratio 1000 --max-slots 64 --slots-per-core 2\n"
            "          --upload-max 32 --upload-max-bytes 131072\n"
            "          --upload-idle 600 --scrub-rate 16 --mutation-rate 50\n"
            "          --mutation-burst 200\n"
            "--scrub checks every blob against its hash, sets the damaged aside, prints a\n"
            "report and exits: 0 all sound, 3 damaged or missing blobs found, 1 error.\n"
            "It refuses to run while a master serves the same --data.\n");
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

/*
 * Takes the data folder for this process: an exclusive flock on
 * <data>/master.lock, held (the descriptor left open) until the process
 * ends, whatever way it ends; the kernel drops it with the process, so a
 * kill -9 leaves no stale lock. The file holds the holder's pid for the
 * message a second master prints. Returns 0, or 1 having said why.
 */
static int s_lock_data(const char *dir)
{
    char path[MASTER_PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/master.lock", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        fprintf(stderr, "tessera-master: cannot open '%s': %s\n", path, strerror(errno));
        return 1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        char pid[32] = "";
        ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        if (e == EWOULDBLOCK)
            fprintf(stderr,
                    "tessera-master: the data folder '%s' is in use by another master "
                    "(pid %s); stop it first, or give this one its own --data\n",
                    dir, pid[0] ? pid : "unknown");
        else
            fprintf(stderr, "tessera-master: cannot lock '%s': %s\n", path, strerror(e));
        close(fd);
        return 1;
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n)
        tsr_log(TSR_LOG_WARN, "master", "cannot write the pid into '%s'", path);
    return 0; /* fd stays open: the lock lives as long as the process */
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
    m.cfg.max_slots = 64;
    m.cfg.slots_per_core = 2;
    m.cfg.mutation_rate = 50;
    m.cfg.mutation_burst = 200;

    tsr_archive_limits_default(&m.cfg.archive);
    m.cfg.upload_max = 32;
    m.cfg.upload_max_bytes = 131072ULL << 20;
    m.cfg.upload_idle_ms = 600 * 1000;
    m.cfg.scrub_rate = 16ULL << 20;
    int scrub = 0;

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
        {"max-slots", required_argument, 0, 1009},
        {"slots-per-core", required_argument, 0, 1010},
        {"upload-max", required_argument, 0, 1101},
        {"upload-max-bytes", required_argument, 0, 1102},
        {"upload-idle", required_argument, 0, 1103},
        {"scrub-rate", required_argument, 0, 1104},
        {"scrub", no_argument, 0, 1105},
        {"mutation-rate", required_argument, 0, 1111},
        {"mutation-burst", required_argument, 0, 1112},
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
        case 1009:
            if (s_int_arg("--max-slots", optarg, 1, HELLO_MAX_SLOTS, &n))
                return 2;
            m.cfg.max_slots = (int)n;
            break;
        case 1010:
            if (s_int_arg("--slots-per-core", optarg, 0, 1024, &n))
                return 2;
            m.cfg.slots_per_core = (int)n;
            break;
        case 1101:
            if (s_int_arg("--upload-max", optarg, 1, 4096, &n))
                return 2;
            m.cfg.upload_max = (int)n;
            break;
        case 1102:
            if (s_int_arg("--upload-max-bytes", optarg, 1, 1L << 30, &n))
                return 2;
            m.cfg.upload_max_bytes = (uint64_t)n << 20;
            break;
        case 1103:
            if (s_int_arg("--upload-idle", optarg, 1, 7 * 24 * 3600, &n))
                return 2;
            m.cfg.upload_idle_ms = (int64_t)n * 1000;
            break;
        case 1104:
            if (s_int_arg("--scrub-rate", optarg, 0, 1L << 20, &n))
                return 2;
            m.cfg.scrub_rate = (uint64_t)n << 20;
            break;
        case 1105: scrub = 1; break;
        case 1111:
            if (s_int_arg("--mutation-rate", optarg, 0, 1000000, &n))
                return 2;
            m.cfg.mutation_rate = (int)n;
            break;
        case 1112:
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
    if (scrub) {
        /* Offline: the state and the store, nothing else (and not the
         * staging files below, which a running master would own). */
        if (m.cfg.map_max < m.cfg.map_size)
            m.cfg.map_max = m.cfg.map_size;
        /* A running master on the same folder would race the scrub's moves. */
        if (s_lock_data(m.cfg.data_dir) != 0)
            return 1;
        if (store_open(&m) != 0) {
            fprintf(stderr, "tessera-master: cannot open the state in '%s/db'\n",
                    m.cfg.data_dir);
            return 1;
        }
        int rc = scrub_offline(&m);
        store_close(&m);
        return rc;
    }
    int code = s_check_security(&m);
    if (code != 0)
        return code;
    if (tsr_mkdir_p(m.cfg.data_dir) != 0) {
        fprintf(stderr, "tessera-master: cannot create data folder '%s'\n", m.cfg.data_dir);
        return 1;
    }
    /* Before anything in the folder is touched: a second master would
     * otherwise clear the first one's staging files and both would serve. */
    if (s_lock_data(m.cfg.data_dir) != 0)
        return 1;
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
    /* Blobs an offline --scrub set aside: their jobs wait or make them again. */
    scrub_reconcile(&m);
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
    blobs_free_uploads(&m);
    scrub_free(&m);
    return rc == 0 ? 0 : 1;
}
