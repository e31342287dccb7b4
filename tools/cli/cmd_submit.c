/*
 * cmd_submit.c: `tessera submit PATH [flags]`: send a scene and start a job.
 *
 * PATH is an archive (tar, tar.gz, tar.zst, zip) or a folder, which is packed
 * into a temporary tar.zst first (removed afterwards, also on Ctrl-C). Every
 * flag is checked here before anything goes over the network, the frame set
 * included, so a typo costs no upload. The archive is then named by its
 * sha256 and offered to the master with PUT; the master may already hold it
 * (a resubmit sends no bytes), else it goes in chunks under the master's
 * credit window, then SUBMIT names it. With --wait the command follows the
 * job to its end and its exit code says whether it was done.
 */
#include "cli.h"
#include "client.h"
#include "format.h"

#include "tessera/archive.h"
#include "tessera/error.h"
#include "tessera/frameset.h"
#include "tessera/hash.h"
#include "tessera/proto.h"
#include "tessera/util.h"

#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define S_MAX_TILES 64           /* most columns or rows of tiles */
#define S_MAX_SIZE 32768         /* widest or tallest frame */
#define S_MAX_ATTEMPTS 100       /* most attempts per task */
#define S_MAX_TASK_S (7 * 86400) /* longest task timeout */
#define S_POLL_MS 100            /* --wait polls STATUS this often: cheap for the master */
#define S_MAX_NAME 63            /* longest job name the master keeps, bytes */
#define S_MAX_REQUIRES 16        /* most --require features the master keeps */
#define S_MAX_FEATURE 31         /* longest feature name, bytes */

/* What the flags asked for. */
struct s_args {
    const char *path;          /* PATH: archive or folder */
    const char *renderer;      /* "builtin", "command" or "blender" */
    const char *scene;         /* scene file inside the archive, or NULL */
    const char *frames;        /* frame set as typed */
    int64_t tiles[2];          /* columns, rows */
    int64_t chunk;             /* frames per task */
    char name[S_MAX_NAME + 1]; /* job name */
    int64_t priority;          /* 0..100 */
    const char *command;       /* command template, or NULL */
    const char *outputs;       /* "image" or "none" */
    int64_t size[2];           /* width, height; 0 when not given */
    int64_t max_attempts;      /* 0 when not given */
    int64_t timeout_s;         /* per-task timeout; 0 when not given */
    int gpu;                   /* tasks run on GPU slots */
    const char *requires[S_MAX_REQUIRES]; /* features a worker must announce */
    int nrequires;                        /* entries in requires */
    const char *cycles_device;            /* "CPU", "CUDA", "OPTIX", or NULL */
    int64_t stall_s;           /* longest renderer silence; -1 when not given */
    int wait;                  /* follow the job to its end */
    int json;                  /* machine output */
};

/* The temporary archive of a packed folder: static so that the signal
 * handler can remove it. Empty when there is none. */
static char s_tmp_dir[4096];
static char s_tmp_file[4160];

static void s_on_signal(int sig)
{
    /* unlink and rmdir are async-signal-safe; then die of the signal. */
    if (s_tmp_file[0])
        unlink(s_tmp_file);
    if (s_tmp_dir[0])
        rmdir(s_tmp_dir);
    signal(sig, SIG_DFL);
    raise(sig);
}

static void s_cleanup_tmp(void)
{
    if (s_tmp_dir[0])
        tsr_rm_rf(s_tmp_dir);
    s_tmp_file[0] = '\0';
    s_tmp_dir[0] = '\0';
}

/* Parses "AxB" with both numbers in [1, max]. */
static int s_parse_pair(const char *s, int64_t max, int64_t out[2])
{
    const char *x = strpbrk(s, "xX");
    char first[32];
    if (!x || (size_t)(x - s) >= sizeof first)
        return TSR_EINVAL;
    memcpy(first, s, (size_t)(x - s));
    first[x - s] = '\0';
    if (tsr_cli_parse_int(first, 1, max, &out[0]) != 0 ||
        tsr_cli_parse_int(x + 1, 1, max, &out[1]) != 0)
        return TSR_EINVAL;
    return 0;
}

/* A feature name as workers announce them: 1..S_MAX_FEATURE printable
 * characters, no blanks. */
static int s_feature_ok(const char *f)
{
    size_t n = strlen(f);
    if (n == 0 || n > S_MAX_FEATURE)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)f[i] <= 0x20 || (unsigned char)f[i] >= 0x7f)
            return 0;
    return 1;
}

/* The default job name: PATH's last component without archive extensions
 * ("shots/orbit.tar.zst" -> "orbit"). */
static void s_default_name(const char *path, int is_dir, char *out, size_t size)
{
    static const char *const exts[] = {".tar", ".gz",  ".tgz", ".zst",  ".tzst", ".zip",
                                       ".xz",  ".txz", ".bz2", ".tbz2", ".lz4"};
    char copy[4096];
    snprintf(copy, sizeof copy, "%s", path);
    size_t len = strlen(copy);
    while (len > 1 && copy[len - 1] == '/')
        copy[--len] = '\0';
    char *base = basename(copy);
    char resolved[4096];
    if (is_dir && (strcmp(base, ".") == 0 || strcmp(base, "..") == 0) &&
        realpath(path, resolved)) {
        base = basename(resolved);
    }
    char full[4096];
    snprintf(full, sizeof full, "%s", base);
    for (int again = 1; !is_dir && again;) {
        again = 0;
        size_t n = strlen(full);
        for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++) {
            size_t e = strlen(exts[i]);
            if (n > e && strcasecmp(full + n - e, exts[i]) == 0) {
                full[n - e] = '\0';
                again = 1;
                break;
            }
        }
    }
    /* A long file name still makes a name the master takes: cut it, but not
     * inside a UTF-8 character. */
    size_t n = strlen(full);
    if (n >= size) {
        n = size - 1;
        while (n > 0 && ((unsigned char)full[n] & 0xC0) == 0x80)
            n--;
    }
    memcpy(out, full, n);
    out[n] = '\0';
}

static int s_parse(int argc, char **argv, struct s_args *a)
{
    enum {
        O_MAX_ATTEMPTS = 256,
        O_TIMEOUT_TASK,
        O_STALL,
        O_WAIT,
        O_JSON,
        O_GPU,
        O_REQUIRE,
        O_CYCLES_DEVICE
    };
    static const struct option opts[] = {
        {"renderer", required_argument, NULL, 'r'},
        {"scene", required_argument, NULL, 's'},
        {"frames", required_argument, NULL, 'f'},
        {"tiles", required_argument, NULL, 't'},
        {"chunk", required_argument, NULL, 'c'},
        {"name", required_argument, NULL, 'n'},
        {"priority", required_argument, NULL, 'p'},
        {"command", required_argument, NULL, 'C'},
        {"outputs", required_argument, NULL, 'o'},
        {"size", required_argument, NULL, 'S'},
        {"max-attempts", required_argument, NULL, O_MAX_ATTEMPTS},
        {"timeout-task", required_argument, NULL, O_TIMEOUT_TASK},
        {"stall", required_argument, NULL, O_STALL},
        {"wait", no_argument, NULL, O_WAIT},
        {"json", no_argument, NULL, O_JSON},
        {"gpu", no_argument, NULL, O_GPU},
        {"require", required_argument, NULL, O_REQUIRE},
        {"cycles-device", required_argument, NULL, O_CYCLES_DEVICE},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const struct tsr_cli_cmd *me = &tsr_cmd_submit;
    const char *name = NULL;
    int scene_given = 0;
    double secs;
    int ch;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (ch) {
        case 'r':
            if (strcmp(optarg, "builtin") != 0 && strcmp(optarg, "command") != 0 &&
                strcmp(optarg, "blender") != 0)
                return tsr_cli_error(
                    TSR_CLI_USAGE,
                    "submit: --renderer '%s': must be builtin, blender or "
                    "command",
                    optarg);
            a->renderer = optarg;
            break;
        case 's':
            if (!*optarg)
                return tsr_cli_error(TSR_CLI_USAGE, "submit: --scene: empty file name");
            a->scene = optarg;
            scene_given = 1;
            break;
        case 'f':
            a->frames = optarg;
            break;
        case 't':
            if (s_parse_pair(optarg, S_MAX_TILES, a->tiles) != 0)
                return tsr_cli_error(TSR_CLI_USAGE,
                                     "submit: --tiles '%s': want COLSxROWS, each 1..%d",
                                     optarg, S_MAX_TILES);
            break;
        case 'c':
            if (tsr_cli_parse_int(optarg, 1, TSR_FRAMESET_MAX, &a->chunk) != 0)
                return tsr_cli_error(TSR_CLI_USAGE,
                                     "submit: --chunk '%s': want frames per task, 1..%d",
                                     optarg, TSR_FRAMESET_MAX);
            break;
        case 'n':
            name = optarg;
            break;
        case 'p':
            if (tsr_cli_parse_int(optarg, 0, 100, &a->priority) != 0)
                return tsr_cli_error(TSR_CLI_USAGE,
                                     "submit: --priority '%s': want a number 0..100",
                                     optarg);
            break;
        case 'C':
            if (!*optarg)
                return tsr_cli_error(TSR_CLI_USAGE, "submit: --command: empty template");
            a->command = optarg;
            break;
        case 'o':
            if (strcmp(optarg, "image") != 0 && strcmp(optarg, "none") != 0)
                return tsr_cli_error(TSR_CLI_USAGE,
                                     "submit: --outputs '%s': must be image or none",
                                     optarg);
            a->outputs = optarg;
            break;
        case 'S':
            if (s_parse_pair(optarg, S_MAX_SIZE, a->size) != 0)
                return tsr_cli_error(TSR_CLI_USAGE,
                                     "submit: --size '%s': want WIDTHxHEIGHT, each 1..%d",
                                     optarg, S_MAX_SIZE);
            break;
        case O_MAX_ATTEMPTS:
            if (tsr_cli_parse_int(optarg, 1, S_MAX_ATTEMPTS, &a->max_attempts) != 0)
                return tsr_cli_error(TSR_CLI_USAGE,
                                     "submit: --max-attempts '%s': want a number 1..%d",
                                     optarg, S_MAX_ATTEMPTS);
            break;
        case O_TIMEOUT_TASK:
            if (tsr_cli_parse_seconds(optarg, S_MAX_TASK_S, &secs) != 0)
                return tsr_cli_error(
                    TSR_CLI_USAGE,
                    "submit: --timeout-task '%s': want seconds, at most %d", optarg,
                    S_MAX_TASK_S);
            a->timeout_s = (int64_t)ceil(secs);
            break;
        case O_STALL:
            if (tsr_cli_parse_seconds(optarg, S_MAX_TASK_S, &secs) != 0)
                return tsr_cli_error(TSR_CLI_USAGE,
                                     "submit: --stall '%s': want seconds, at most %d "
                                     "(0: no limit)", optarg, S_MAX_TASK_S);
            a->stall_s = (int64_t)ceil(secs);
            break;
        case O_WAIT:
            a->wait = 1;
            break;
        case O_GPU:
            a->gpu = 1;
            break;
        case O_REQUIRE:
            if (!s_feature_ok(optarg))
                return tsr_cli_error(
                    TSR_CLI_USAGE,
                    "submit: --require '%s': want a feature name of 1..%d "
                    "printable characters without spaces",
                    optarg, S_MAX_FEATURE);
            if (a->nrequires == S_MAX_REQUIRES)
                return tsr_cli_error(TSR_CLI_USAGE,
                                     "submit: at most %d --require features",
                                     S_MAX_REQUIRES);
            a->requires[a->nrequires++] = optarg;
            break;
        case O_CYCLES_DEVICE:
            if (strcasecmp(optarg, "CPU") == 0)
                a->cycles_device = "CPU";
            else if (strcasecmp(optarg, "CUDA") == 0)
                a->cycles_device = "CUDA";
            else if (strcasecmp(optarg, "OPTIX") == 0)
                a->cycles_device = "OPTIX";
            else
                return tsr_cli_error(TSR_CLI_USAGE,
                                     "submit: --cycles-device '%s': must be CPU, CUDA or "
                                     "OPTIX",
                                     optarg);
            break;
        case O_JSON:
            a->json = 1;
            break;
        case 'h':
            return -1;
        default:
            return tsr_cli_bad_option(me, ch, argv);
        }
    }
    if (optind >= argc)
        return tsr_cli_error(TSR_CLI_USAGE,
                             "submit: missing PATH (an archive or a folder; see "
                             "'tessera submit --help')");
    if (optind + 1 < argc)
        return tsr_cli_error(TSR_CLI_USAGE, "submit: unexpected argument '%s'",
                             argv[optind + 1]);
    a->path = argv[optind];

    int command = strcmp(a->renderer, "command") == 0;
    int blender = strcmp(a->renderer, "blender") == 0;
    if (blender && !scene_given)
        return tsr_cli_error(
            TSR_CLI_USAGE,
            "submit: --renderer blender needs --scene FILE.blend (the .blend "
            "file in the archive)");
    if (blender && strcmp(a->outputs, "image") == 0 && !a->size[0])
        return tsr_cli_error(
            TSR_CLI_USAGE, "submit: --renderer blender needs --size WxH (the frame size "
                           "the tasks render at)");
    if (a->cycles_device && !blender)
        return tsr_cli_error(TSR_CLI_USAGE,
                             "submit: --cycles-device is only for --renderer blender");
    if (a->cycles_device && strcmp(a->cycles_device, "CPU") != 0 && !a->gpu)
        return tsr_cli_error(TSR_CLI_USAGE,
                             "submit: --cycles-device %s renders on a GPU: add --gpu",
                             a->cycles_device);
    if (command && !a->command)
        return tsr_cli_error(TSR_CLI_USAGE,
                             "submit: --renderer command needs --command 'TEMPLATE'");
    if (!command && a->command)
        return tsr_cli_error(TSR_CLI_USAGE,
                             "submit: --command is only for --renderer command");
    if (!scene_given)
        a->scene = command ? NULL : "scene.json";

    /* The frame set is checked here, so that a typo costs no upload. */
    int *frames = NULL;
    size_t nframes = 0;
    char why[256] = "";
    int rc = tsr_frameset_parse(a->frames, &frames, &nframes, why, sizeof why);
    free(frames);
    if (rc != 0)
        return tsr_cli_error(TSR_CLI_USAGE, "submit: --frames: %s",
                             why[0] ? why : tsr_strerror(rc));

    struct stat st;
    if (stat(a->path, &st) != 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return tsr_cli_error(TSR_CLI_USAGE, "submit: '%s': no such file or folder",
                                 a->path);
        return tsr_cli_error(TSR_CLI_USAGE, "submit: '%s': %s", a->path, strerror(errno));
    }
    if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
        return tsr_cli_error(TSR_CLI_USAGE,
                             "submit: '%s': not an archive file or a folder", a->path);
    if (name) {
        if (!*name || strlen(name) >= sizeof a->name)
            return tsr_cli_error(TSR_CLI_USAGE, "submit: --name: want 1..%zu characters",
                                 sizeof a->name - 1);
        snprintf(a->name, sizeof a->name, "%s", name);
    } else {
        s_default_name(a->path, S_ISDIR(st.st_mode), a->name, sizeof a->name);
    }
    return 0;
}

/* Packs a folder into a fresh temporary tar.zst; *out is its path. */
static int s_pack(const char *dir, const char **out)
{
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp)
        tmp = "/tmp";
    char templ[4096];
    if (tsr_fmt(templ, sizeof templ, "%s/tessera-submit-XXXXXX", tmp) != 0 ||
        !mkdtemp(templ))
        return tsr_cli_error(TSR_CLI_FAIL,
                             "submit: cannot make a temporary folder in %s: %s", tmp,
                             strerror(errno));
    snprintf(s_tmp_file, sizeof s_tmp_file, "%s/scene.tar.zst", templ);
    snprintf(s_tmp_dir, sizeof s_tmp_dir, "%s", templ);
    struct sigaction sa = {0};
    sa.sa_handler = s_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);

    char why[512] = "";
    int rc = tsr_archive_pack_dir(dir, s_tmp_file, why, sizeof why);
    if (rc != 0)
        return tsr_cli_error(TSR_CLI_USAGE, "submit: cannot pack '%s': %s", dir,
                             why[0] ? why : tsr_strerror(rc));
    *out = s_tmp_file;
    return 0;
}

/* Shows upload progress on a terminal's stderr. */
static void s_progress(uint64_t done, uint64_t total, void *arg)
{
    const char *name = arg;
    char t[32];
    tsr_fmt_bytes(t, sizeof t, total);
    fprintf(stderr, "\r\033[2Ktessera: uploading %s: %3.0f%% of %s", name,
            total ? 100.0 * (double)done / (double)total : 100.0, t);
    fflush(stderr);
}

static cJSON *s_submit_header(const struct s_args *a, const char *hash)
{
    cJSON *h = cJSON_CreateObject();
    if (!h)
        return NULL;
    int ok =
        cJSON_AddStringToObject(h, "archive", hash) &&
        cJSON_AddStringToObject(h, "name", a->name) &&
        cJSON_AddStringToObject(h, "renderer", a->renderer) &&
        (!a->scene || cJSON_AddStringToObject(h, "scene", a->scene)) &&
        cJSON_AddStringToObject(h, "frames", a->frames) &&
        cJSON_AddNumberToObject(h, "chunk", (double)a->chunk) &&
        cJSON_AddNumberToObject(h, "priority", (double)a->priority) &&
        (!a->command || cJSON_AddStringToObject(h, "command", a->command)) &&
        cJSON_AddStringToObject(h, "outputs", a->outputs) &&
        (!a->max_attempts ||
         cJSON_AddNumberToObject(h, "max_attempts", (double)a->max_attempts)) &&
        (!a->timeout_s ||
         cJSON_AddNumberToObject(h, "timeout_s", (double)a->timeout_s)) &&
        (a->stall_s < 0 || cJSON_AddNumberToObject(h, "stall_s", (double)a->stall_s)) &&
        (!a->gpu || cJSON_AddBoolToObject(h, "gpu", 1)) &&
        (!a->cycles_device ||
         cJSON_AddStringToObject(h, "cycles_device", a->cycles_device));
    double tiles[2] = {(double)a->tiles[0], (double)a->tiles[1]};
    cJSON *t = cJSON_CreateDoubleArray(tiles, 2);
    ok = ok && t && cJSON_AddItemToObject(h, "tiles", t);
    if (!ok && t && !cJSON_GetObjectItemCaseSensitive(h, "tiles"))
        cJSON_Delete(t);
    if (ok && a->size[0]) {
        double size[2] = {(double)a->size[0], (double)a->size[1]};
        cJSON *s = cJSON_CreateDoubleArray(size, 2);
        ok = s && cJSON_AddItemToObject(h, "size", s);
        if (!ok)
            cJSON_Delete(s);
    }
    if (ok && a->nrequires) {
        cJSON *r = cJSON_CreateStringArray(a->requires, a->nrequires);
        ok = r && cJSON_AddItemToObject(h, "requires", r);
        if (!ok)
            cJSON_Delete(r);
    }
    if (!ok) {
        cJSON_Delete(h);
        return NULL;
    }
    return h;
}

/* Follows job id until it ends; prints its end and returns the exit code. */
static int s_wait(const struct tsr_cli *cli, struct tsr_client *client, int64_t id,
                  int json)
{
    for (;;) {
        struct timespec ts = {0, S_POLL_MS * 1000000L};
        nanosleep(&ts, NULL);
        cJSON *job = NULL;
        int code = tsr_cli_fetch_job(cli, client, "submit", id, &job);
        if (code != 0)
            return code;
        const char *state = tsr_json_str(job, "state", "?");
        if (!tsr_job_state_final(state)) {
            cJSON_Delete(job);
            continue;
        }
        if (json) {
            code = strcmp(state, "done") == 0 ? TSR_CLI_OK : TSR_CLI_FAIL;
            if (tsr_cli_print_json(job) != 0)
                code = TSR_CLI_FAIL;
        } else {
            code = tsr_cli_job_end(job);
        }
        cJSON_Delete(job);
        return code;
    }
}

static int s_run(const struct tsr_cli *cli, int argc, char **argv)
{
    struct s_args a = {.renderer = "builtin",
                       .frames = "1",
                       .tiles = {1, 1},
                       .chunk = 1,
                       .priority = 50,
                       .stall_s = -1,
                       .outputs = "image"};
    int code = s_parse(argc, argv, &a);
    if (code < 0)
        return tsr_cli_help(&tsr_cmd_submit);
    if (code != 0)
        return code;

    struct tsr_client *client = NULL;
    if ((code = tsr_cli_connect(cli, "submit", &client)) != 0)
        return code;

    const char *archive = a.path;
    struct stat st;
    if (stat(a.path, &st) == 0 && S_ISDIR(st.st_mode) &&
        (code = s_pack(a.path, &archive)))
        goto out;

    char hash[TSR_HASH_HEX];
    unsigned long long size = 0;
    int rc = tsr_hash_file(archive, hash, &size);
    if (rc != 0) {
        code = tsr_cli_error(TSR_CLI_USAGE, "submit: cannot read '%s': %s", archive,
                             strerror(errno));
        goto out;
    }
    int show = isatty(2) && !a.json;
    cJSON *reply = NULL;
    /* A second round only when the master set the archive aside as damaged
     * at SUBMIT (its PUT had said it held it): it takes the upload again. */
    for (int round = 0; round < 2; round++) {
        int sent = 0;
        rc = tsr_client_upload(client, archive, hash, size, &sent, show ? s_progress : NULL,
                               a.name);
        if (show && sent)
            fprintf(stderr, "\r\033[2K");
        if (rc != 0) {
            code = tsr_cli_client_error(cli, client, "submit", rc);
            goto out;
        }
        cJSON *h = s_submit_header(&a, hash);
        if (!h) {
            code = tsr_cli_error(TSR_CLI_FAIL, "submit: out of memory");
            goto out;
        }
        /* The master checks the archive before it answers: allow for its size. */
        uint64_t allow = size / 32768;
        rc = tsr_client_call(client, "SUBMIT", h, "SUBMITTED",
                             (int)(allow > 3600000 ? 3600000 : allow), &reply);
        cJSON_Delete(h);
        if (rc != TSR_ENOTFOUND || sent || round > 0 ||
            !strstr(tsr_client_error(client), "was damaged on the master"))
            break;
        if (!a.json)
            fprintf(stderr, "tessera: the master's copy of the scene was damaged; "
                            "uploading it again\n");
    }
    if (rc != 0) {
        code = tsr_cli_client_error(cli, client, "submit", rc);
        goto out;
    }
    s_cleanup_tmp(); /* the master holds it now */
    int64_t id = 0;
    char why[128];
    rc = tsr_hdr_int(reply, "id", 1, (int64_t)1 << 53, &id, why, sizeof why);
    cJSON_Delete(reply);
    if (rc != 0) {
        code = tsr_cli_error(TSR_CLI_FAIL,
                             "submit: the master's SUBMITTED is malformed: %s", why);
        goto out;
    }
    if (!a.wait) {
        if (a.json)
            printf("{\"id\": %lld}\n", (long long)id);
        else
            printf("submitted job %lld\n", (long long)id);
        goto out;
    }
    if (!a.json) {
        printf("submitted job %lld\n", (long long)id);
        fflush(stdout);
    }
    code = s_wait(cli, client, id, a.json);
out:
    s_cleanup_tmp();
    tsr_client_destroy(&client);
    return code;
}

const struct tsr_cli_cmd tsr_cmd_submit = {
    .name = "submit",
    .usage = "PATH [flags]",
    .summary = "send a scene (archive or folder) and start a job",
    .help =
        "PATH is a tar, tar.gz, tar.zst or zip archive, or a folder (packed first).\n"
        "\n"
        "  --renderer builtin|blender|command\n"
        "                              renderer (default builtin)\n"
        "  --scene FILE                scene file in the archive (default scene.json "
        "for\n"
        "                              builtin, none for command; needed for blender:\n"
        "                              the .blend file)\n"
        "  --frames SET                frames: 1-240, 1-100x5, 1,4,9-12 (default 1)\n"
        "  --tiles CxR                 split each frame into C x R tiles (default 1x1)\n"
        "  --chunk N                   frames per task (default 1)\n"
        "  --name NAME                 job name (default: PATH without extensions)\n"
        "  --priority N                0..100 (default 50)\n"
        "  --command 'TEMPLATE'        command line (needed with --renderer command)\n"
        "  --outputs image|none        what a task produces (default image)\n"
        "  --size WxH                  frame size, when the renderer cannot tell\n"
        "                              (needed for blender and command images)\n"
        "  --gpu                       run the tasks on GPU slots only (one GPU each)\n"
        "  --require FEATURE           only workers that announce FEATURE take the "
        "tasks\n"
        "                              (repeatable: blender:oidn, cycles:optix, gpu, "
        "...)\n"
        "  --cycles-device CPU|CUDA|OPTIX\n"
        "                              Blender's Cycles device (CUDA and OPTIX need "
        "--gpu;\n"
        "                              default: OPTIX or CUDA on a GPU, else CPU)\n"
        "  --max-attempts N            attempts per task before the job fails\n"
        "  --timeout-task SECONDS      longest a task may run\n"
        "  --stall SECONDS             kill a renderer silent this long (default 900,\n"
        "                              0: no limit)\n"
        "  --wait                      follow the job to its end; exit 0 only if done\n"
        "  --json                      print {\"id\": N} (with --wait: the final job)\n",
    .run = s_run,
};
