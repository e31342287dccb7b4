/*
 * main.c: tessera-worker's command line and signals.
 *
 * Flags become a tsr_worker_config; signals become bytes on a self-pipe
 * that the worker's poll loop watches (SIGCHLD: a renderer exited;
 * SIGTERM/SIGINT: stop), so no work happens inside a handler.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tessera/curve.h"
#include "tessera/error.h"
#include "tessera/hash.h"
#include "tessera/log.h"

#include "sandbox.h"
#include "worker.h"

/* Longest worker or hub name; the master keeps names of up to 63 bytes. */
#define S_NAME_MAX 63

static volatile sig_atomic_t s_stop;
static volatile sig_atomic_t s_drain;
static int s_wake[2] = {-1, -1};

static void s_on_signal(int sig)
{
    int saved = errno;
    /* SIGTERM drains: the tasks in hand finish and are delivered, then the
     * worker exits. A second SIGTERM, or SIGINT, stops at once. */
    if (sig == SIGINT || (sig == SIGTERM && s_drain))
        s_stop = 1;
    else if (sig == SIGTERM)
        s_drain = 1;
    ssize_t n = write(s_wake[1], "x", 1); /* a full pipe already wakes the loop */
    (void)n;
    errno = saved;
}

static int s_signals(void)
{
    if (pipe2(s_wake, O_NONBLOCK | O_CLOEXEC) != 0)
        return -1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0 ||
        sigaction(SIGCHLD, &sa, NULL) != 0)
        return -1;
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

static void s_usage(FILE *out)
{
    fprintf(out, "usage: tessera-worker [--master ENDPOINT] [--hub NAME] [--slots N] "
                 "[--cache DIR]\n"
                 "                      [--cache-max MIB]\n"
                 "                      [--name NAME] [--heartbeat-ms N] [--liveness N]\n"
                 "                      [--blender PATH|none] [--feature NAME]...\n"
                 "                      [--log-level error|warn|info|debug]\n"
                 "                      [--key FILE --master-key FILE]\n"
                 "                      [--sandbox bwrap|none] [--sandbox-user NAME]\n"
                 "                      [--sandbox-bind DIR]...\n"
                 "\n"
                 "  --master ENDPOINT   master's worker endpoint (tcp://127.0.0.1:7401)\n"
                 "  --hub NAME          hub this worker belongs to (local)\n"
                 "  --slots N           tasks at once (number of online CPUs)\n"
                 "  --cache DIR         scene cache, task folders, result spool "
                 "(./tessera-cache)\n"
                 "  --cache-max MIB     most the scene cache holds, least recently used\n"
                 "                      archives go first; 0: no bound (20480)\n"
                 "  --name NAME         name shown to operators (host name)\n"
                 "  --heartbeat-ms N    heartbeat interval until the master says (1000)\n"
                 "  --liveness N        missed heartbeats before reconnecting (5)\n"
                 "  --blender PATH      Blender for blender tasks (blender on PATH);\n"
                 "                      'none': take no blender tasks\n"
                 "  --feature NAME      announce NAME for jobs' --require (repeatable)\n"
                 "  --log-level L       error, warn, info or debug (info)\n"
                 "  --key FILE          this worker's secret key, for a master with keys\n"
                 "                      ($TESSERA_KEY); the worker's name is the key's\n"
                 "  --master-key FILE   the master's public key ($TESSERA_MASTER_KEY)\n"
                 "  --sandbox MODE      bwrap: each renderer in bubblewrap, without network,\n"
                 "                      seeing only its scene and task folder (default);\n"
                 "                      none: renderers run as this worker's user\n"
                 "  --sandbox-user NAME user renderers run as when the worker is root\n"
                 "                      (nobody)\n"
                 "  --sandbox-bind DIR  also show DIR, read-only, to renderers (shared\n"
                 "                      assets, a renderer installed under /opt); repeatable\n");
}

/* Parses a decimal integer in [min, max] for flag; exits 2 otherwise. */
static int s_int(const char *flag, const char *text, long min, long max)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || !*text || *end || v < min || v > max) {
        fprintf(stderr,
                "tessera-worker: %s must be an integer from %ld to %ld, not '%s'\n", flag,
                min, max, text);
        exit(2);
    }
    return (int)v;
}

/* Names travel in HELLO and show up in tables: printable, bounded. */
static const char *s_name(const char *flag, const char *text)
{
    size_t n = strlen(text);
    int ok = n > 0 && n <= S_NAME_MAX;
    for (size_t i = 0; ok && i < n; i++)
        ok = (unsigned char)text[i] > 0x20 && (unsigned char)text[i] < 0x7f;
    if (!ok) {
        fprintf(stderr,
                "tessera-worker: %s must be 1 to 63 printable characters without "
                "spaces, not '%s'\n",
                flag, text);
        exit(2);
    }
    return text;
}

/*
 * Loads the keys of a CURVE connection (key and master_key may be NULL or
 * ""). A worker key admits one worker, named by the key: the name defaults
 * to it, and another --name is refused here rather than by the master.
 * Returns 0, or -1 after saying why.
 */
static int s_keys(struct tsr_worker_config *cfg, const char *key, const char *master_key)
{
    static char pub[TSR_KEY_Z85], sec[TSR_KEY_Z85], server[TSR_KEY_Z85];
    static char name[TSR_KEY_NAME_MAX + 1];
    int have_key = key && *key, have_master = master_key && *master_key;
    if (!have_key && !have_master)
        return 0;
    if (!have_key || !have_master) {
        fprintf(stderr, "tessera-worker: %s\n",
                have_key ? "--key needs --master-key (the master's public key) too"
                         : "--master-key needs --key (this worker's secret key) too");
        return -1;
    }
    char err[512];
    if (tsr_key_load_secret(key, pub, sec, err, sizeof err) != 0) {
        fprintf(stderr, "tessera-worker: --key: %s\n", err);
        return -1;
    }
    if (tsr_key_load_public(master_key, server, err, sizeof err) != 0) {
        fprintf(stderr, "tessera-worker: --master-key: %s\n", err);
        return -1;
    }
    if (tsr_key_name_of(key, name) != 0) {
        fprintf(stderr, "tessera-worker: --key: '%s' is not named NAME.key\n", key);
        return -1;
    }
    if (cfg->name && strcmp(cfg->name, name) != 0) {
        fprintf(stderr, "tessera-worker: --name '%s' differs from the key's name '%s': a "
                        "worker key admits only the worker of its name\n",
                cfg->name, name);
        return -1;
    }
    cfg->name = name;
    cfg->curve_pub = pub;
    cfg->curve_sec = sec;
    cfg->curve_server = server;
    return 0;
}

int main(int argc, char **argv)
{
    static char host[HOST_NAME_MAX + 1];
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    struct tsr_worker_config cfg = {
        .master = "tcp://127.0.0.1:7401",
        .hub = "local",
        .name = NULL,
        .cache_dir = "./tessera-cache",
        .slots = cpus > 0
                     ? (cpus > TSR_WORKER_MAX_SLOTS ? TSR_WORKER_MAX_SLOTS : (int)cpus)
                     : 1,
        .heartbeat_ms = 1000,
        .liveness = 5,
        .cache_max = 20480ULL << 20,
    };
    static const struct option opts[] = {
        {"master", required_argument, NULL, 'm'},
        {"hub", required_argument, NULL, 'u'},
        {"slots", required_argument, NULL, 's'},
        {"cache", required_argument, NULL, 'c'},
        {"cache-max", required_argument, NULL, 'X'},
        {"name", required_argument, NULL, 'n'},
        {"heartbeat-ms", required_argument, NULL, 'b'},
        {"liveness", required_argument, NULL, 'l'},
        {"log-level", required_argument, NULL, 'L'},
        {"blender", required_argument, NULL, 'B'},
        {"feature", required_argument, NULL, 'F'},
        {"key", required_argument, NULL, 'K'},
        {"master-key", required_argument, NULL, 'P'},
        {"sandbox", required_argument, NULL, 'S'},
        {"sandbox-user", required_argument, NULL, 'U'},
        {"sandbox-bind", required_argument, NULL, 'D'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *key = getenv("TESSERA_KEY"), *master_key = getenv("TESSERA_MASTER_KEY");
    static const char *features[TSR_WORKER_MAX_FEATURES];
    int nfeatures = 0;
    static const char *binds[TSR_SANDBOX_MAX_BINDS];
    int nbinds = 0;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'm':
            if (!optarg[0] || strlen(optarg) > 256) {
                fprintf(stderr, "tessera-worker: --master needs an endpoint such as "
                                "tcp://127.0.0.1:7401\n");
                return 2;
            }
            cfg.master = optarg;
            break;
        case 'u':
            cfg.hub = s_name("--hub", optarg);
            break;
        case 's':
            cfg.slots = s_int("--slots", optarg, 1, TSR_WORKER_MAX_SLOTS);
            break;
        case 'c':
            if (!optarg[0]) {
                fprintf(stderr, "tessera-worker: --cache needs a folder\n");
                return 2;
            }
            cfg.cache_dir = optarg;
            break;
        case 'X':
            cfg.cache_max = (uint64_t)s_int("--cache-max", optarg, 0, 1 << 24) << 20;
            break;
        case 'n':
            cfg.name = s_name("--name", optarg);
            break;
        case 'b':
            cfg.heartbeat_ms = s_int("--heartbeat-ms", optarg, 10, 600000);
            break;
        case 'l':
            cfg.liveness = s_int("--liveness", optarg, 1, 1000);
            break;
        case 'B':
            if (!optarg[0] || strlen(optarg) >= PATH_MAX) {
                fprintf(stderr, "tessera-worker: --blender needs a path or 'none'\n");
                return 2;
            }
            cfg.blender = optarg;
            break;
        case 'F':
            if (nfeatures == TSR_WORKER_MAX_FEATURES) {
                fprintf(stderr, "tessera-worker: at most %d --feature names\n",
                        TSR_WORKER_MAX_FEATURES);
                return 2;
            }
            if (strlen(optarg) > 31) {
                fprintf(stderr,
                        "tessera-worker: --feature must be 1 to 31 printable "
                        "characters without spaces, not '%s'\n",
                        optarg);
                return 2;
            }
            features[nfeatures++] = s_name("--feature", optarg);
            break;
        case 'L':
            if (tsr_log_set_level(optarg) != 0) {
                fprintf(stderr,
                        "tessera-worker: --log-level must be error, warn, info or "
                        "debug, not '%s'\n",
                        optarg);
                return 2;
            }
            break;
        case 'K':
            key = optarg;
            break;
        case 'S':
            if (strcmp(optarg, "bwrap") == 0)
                cfg.sandbox = TSR_SANDBOX_BWRAP;
            else if (strcmp(optarg, "none") == 0)
                cfg.sandbox = TSR_SANDBOX_NONE;
            else {
                fprintf(stderr, "tessera-worker: --sandbox must be bwrap or none, not '%s'\n",
                        optarg);
                return 2;
            }
            break;
        case 'U':
            cfg.sandbox_user = s_name("--sandbox-user", optarg);
            break;
        case 'D':
            if (nbinds == TSR_SANDBOX_MAX_BINDS) {
                fprintf(stderr, "tessera-worker: at most %d --sandbox-bind folders\n",
                        TSR_SANDBOX_MAX_BINDS);
                return 2;
            }
            if (optarg[0] != '/' || strlen(optarg) >= PATH_MAX) {
                fprintf(stderr, "tessera-worker: --sandbox-bind needs an absolute folder, "
                                "not '%s'\n",
                        optarg);
                return 2;
            }
            binds[nbinds++] = optarg;
            break;
        case 'P':
            master_key = optarg;
            break;
        case 'h':
            s_usage(stdout);
            return 0;
        case ':':
            fprintf(stderr, "tessera-worker: %s needs a value\n", argv[optind - 1]);
            return 2;
        default:
            fprintf(stderr, "tessera-worker: unknown option '%s' (see --help)\n",
                    argv[optind - 1]);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "tessera-worker: unexpected argument '%s' (see --help)\n",
                argv[optind]);
        return 2;
    }
    if (s_keys(&cfg, key, master_key) != 0)
        return 2;
    if (!cfg.name) {
        if (gethostname(host, sizeof host) != 0 || !host[0])
            snprintf(host, sizeof host, "worker");
        host[sizeof host - 1] = '\0';
        host[S_NAME_MAX] = '\0'; /* a long FQDN still names the worker */
        cfg.name = host;
    }
    if (tsr_hash_init_library() != 0) {
        fprintf(stderr, "tessera-worker: libsodium failed to start\n");
        return 1;
    }
    if (s_signals() != 0) {
        fprintf(stderr, "tessera-worker: cannot set up signals: %s\n", strerror(errno));
        return 1;
    }
    cfg.features = features;
    cfg.nfeatures = nfeatures;
    cfg.sandbox_binds = binds;
    cfg.nsandbox_binds = nbinds;
    cfg.key_path = key && *key ? key : NULL;
    cfg.wake_fd = s_wake[0];
    cfg.stop = &s_stop;
    cfg.drain = &s_drain;
    int rc = tsr_worker_run(&cfg);
    return rc == 0 ? 0 : 1;
}
