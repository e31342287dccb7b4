/*
 * main.c: the `tessera` command-line client: global options, the command
 * table, and the helpers every subcommand shares (cli.h), above all the one
 * way of reporting an error: "tessera: <what failed>: <why>" on stderr.
 *
 *   tessera [--master ENDPOINT] [--timeout SECONDS]
 *           [--key FILE --master-key FILE] COMMAND [ARGS...]
 *
 * The master's endpoint comes from --master, else $TESSERA_MASTER, else
 * tcp://127.0.0.1:7400; the keys of a CURVE connection from --key and
 * --master-key, else $TESSERA_KEY and $TESSERA_MASTER_KEY. Exit codes (cli.h): 0 ok, 1 refused or failed,
 * 2 usage or bad input, 3 master unreachable.
 */
#include "cli.h"
#include "client.h"
#include "format.h"

#include "tessera/curve.h"
#include "tessera/error.h"
#include "tessera/hash.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_VERSION "0.1.0"

/* The command table: `tessera --help` lists it in this order. */
static const struct tsr_cli_cmd *const s_cmds[] = {
    &tsr_cmd_submit, &tsr_cmd_status, &tsr_cmd_jobs,  &tsr_cmd_workers,
    &tsr_cmd_watch,  &tsr_cmd_cancel, &tsr_cmd_fetch,  &tsr_cmd_pause,
    &tsr_cmd_resume, &tsr_cmd_retry, &tsr_cmd_events, &tsr_cmd_keygen,
};
#define S_NCMDS (sizeof s_cmds / sizeof s_cmds[0])

int tsr_cli_error(int code, const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fflush(stdout); /* keep what was printed before the error in order */
    fprintf(stderr, "tessera: %s\n", line);
    return code;
}

void tsr_cli_warn(const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fflush(stdout);
    fprintf(stderr, "tessera: warning: %s\n", line);
}

int tsr_cli_client_error(const struct tsr_cli *cli, struct tsr_client *client,
                         const char *what, int rc)
{
    const char *why = client ? tsr_client_error(client) : tsr_strerror(rc);
    /* A refused key is not the master failing a request: this client cannot
     * talk to it at all, as when it is unreachable. */
    if (rc == TSR_EACCESS)
        return tsr_cli_error(TSR_CLI_UNREACHABLE, "master at %s refused this client: %s",
                             cli->master, why);
    if (client && tsr_client_remote(client))
        return tsr_cli_error(TSR_CLI_FAIL, "%s: %s", what, why);
    if (rc == TSR_ETIMEOUT) {
        /* With CURVE, a master that does not admit our key, or a wrong
         * master key, looks exactly like silence: say which key was used. */
        const char *hint = client ? tsr_client_hint(client) : "";
        char keys[600] = "";
        if (cli->key && hint[0])
            snprintf(keys, sizeof keys, "; %s: is '%s' its public key?", hint,
                     cli->master_key);
        else if (cli->key)
            snprintf(keys, sizeof keys, "; with key '%s': does the master admit it, and "
                                        "is '%s' its public key?",
                     cli->key, cli->master_key);
        else if (hint[0])
            snprintf(keys, sizeof keys, "; %s", hint);
        if (client && tsr_client_reached(client))
            return tsr_cli_error(TSR_CLI_UNREACHABLE,
                                 "master at %s stopped answering (%s%s)", cli->master, why,
                                 keys);
        return tsr_cli_error(TSR_CLI_UNREACHABLE, "cannot reach master at %s (%s%s)",
                             cli->master, why, keys);
    }
    return tsr_cli_error(TSR_CLI_FAIL, "%s: %s", what, why);
}

int tsr_cli_bad_option(const struct tsr_cli_cmd *cmd, int ch, char **argv)
{
    /* GNU getopt leaves the offending word just before optind, for long and
     * short options alike; optopt names a short option. */
    char name[64];
    const char *word = optind > 0 ? argv[optind - 1] : NULL;
    if (word && strncmp(word, "--", 2) == 0) {
        size_t n = strcspn(word, "=");
        snprintf(name, sizeof name, "%.*s", (int)(n < 60 ? n : 60), word);
    } else if (optopt > 0 && optopt < 128 && isprint(optopt)) {
        snprintf(name, sizeof name, "-%c", optopt);
    } else {
        snprintf(name, sizeof name, "%.60s", word ? word : "?");
    }
    if (!cmd && ch == ':')
        return tsr_cli_error(TSR_CLI_USAGE, "option '%s' needs a value", name);
    if (!cmd)
        return tsr_cli_error(TSR_CLI_USAGE, "unknown option '%s' (see 'tessera --help')",
                             name);
    if (ch == ':')
        return tsr_cli_error(TSR_CLI_USAGE, "%s: option '%s' needs a value", cmd->name,
                             name);
    return tsr_cli_error(TSR_CLI_USAGE,
                         "%s: unknown option '%s' (see 'tessera %s --help')", cmd->name,
                         name, cmd->name);
}

int tsr_cli_only_help(const struct tsr_cli_cmd *cmd, int argc, char **argv, int *done)
{
    static const struct option opts[] = {
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    opterr = 0;
    *done = 1;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (ch == 'h')
            return tsr_cli_help(cmd);
        return tsr_cli_bad_option(cmd, ch, argv);
    }
    *done = 0;
    return 0;
}

int tsr_cli_help(const struct tsr_cli_cmd *cmd)
{
    printf("usage: tessera %s %s\n\n%s\n", cmd->name, cmd->usage, cmd->summary);
    if (cmd->help && *cmd->help)
        printf("\n%s", cmd->help);
    return TSR_CLI_OK;
}

int tsr_cli_parse_int(const char *s, int64_t min, int64_t max, int64_t *out)
{
    if (!s || !*s || isspace((unsigned char)*s))
        return TSR_EINVAL;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return TSR_EINVAL;
    *out = v;
    return 0;
}

int tsr_cli_parse_seconds(const char *s, double max, double *out)
{
    if (!s || !*s || isspace((unsigned char)*s))
        return TSR_EINVAL;
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || *end != '\0' || !isfinite(v) || v <= 0 || v > max)
        return TSR_EINVAL;
    *out = v;
    return 0;
}

int tsr_cli_parse_job(const char *name, const char *arg, int64_t *job)
{
    if (tsr_cli_parse_int(arg, 1, (int64_t)1 << 53, job) != 0)
        return tsr_cli_error(TSR_CLI_USAGE, "%s: '%s' is not a job id", name, arg);
    return 0;
}

int tsr_cli_connect(const struct tsr_cli *cli, const char *name, struct tsr_client **out)
{
    char why[512] = "";
    /* Keys are read here, by the commands that talk to the master, so that
     * a broken $TESSERA_KEY does not stop `tessera keygen`. */
    char pub[TSR_KEY_Z85], sec[TSR_KEY_Z85], server[TSR_KEY_Z85];
    struct tsr_client_keys keys = {pub, sec, server};
    if (!cli->key != !cli->master_key)
        return tsr_cli_error(TSR_CLI_USAGE, "%s: %s needs %s too", name,
                             cli->key ? "--key" : "--master-key",
                             cli->key ? "--master-key (the master's public key)"
                                      : "--key (this client's secret key)");
    if (cli->key && tsr_key_load_secret(cli->key, pub, sec, why, sizeof why) != 0)
        return tsr_cli_error(TSR_CLI_USAGE, "--key: %s", why);
    if (cli->master_key && tsr_key_load_public(cli->master_key, server, why, sizeof why) != 0)
        return tsr_cli_error(TSR_CLI_USAGE, "--master-key: %s", why);
    int rc = tsr_client_new(cli->master, cli->timeout_ms, cli->key ? &keys : NULL, out, why,
                            sizeof why);
    memset(sec, 0, sizeof sec);
    if (rc == TSR_EINVAL)
        return tsr_cli_error(TSR_CLI_USAGE, "bad master endpoint '%s': %s", cli->master,
                             why);
    if (rc != 0)
        return tsr_cli_error(TSR_CLI_FAIL, "%s: %s", name,
                             why[0] ? why : tsr_strerror(rc));
    return 0;
}

int tsr_cli_fetch_job(const struct tsr_cli *cli, struct tsr_client *client,
                      const char *name, int64_t id, cJSON **job)
{
    *job = NULL;
    cJSON *h = cJSON_CreateObject();
    if (!h || !cJSON_AddNumberToObject(h, "job", (double)id)) {
        cJSON_Delete(h);
        return tsr_cli_error(TSR_CLI_FAIL, "%s: out of memory", name);
    }
    cJSON *reply = NULL;
    int rc = tsr_client_call(client, "STATUS", h, "STATUS", 0, &reply);
    cJSON_Delete(h);
    if (rc != 0)
        return tsr_cli_client_error(cli, client, name, rc);
    cJSON *obj = cJSON_DetachItemFromObjectCaseSensitive(reply, "job");
    cJSON_Delete(reply);
    if (!cJSON_IsObject(obj)) {
        cJSON_Delete(obj);
        return tsr_cli_error(TSR_CLI_FAIL, "%s: the master's STATUS has no job object",
                             name);
    }
    *job = obj;
    return 0;
}

int tsr_cli_job_end(const cJSON *job)
{
    const char *state = tsr_json_str(job, "state", "?");
    char took[32], error[512], state_c[32];
    tsr_fmt_duration(took, sizeof took, tsr_json_num(job, "elapsed_s", -1));
    tsr_fmt_clean(error, sizeof error, tsr_json_str(job, "error", ""));
    tsr_fmt_clean(state_c, sizeof state_c, state);
    long long id = (long long)tsr_json_num(job, "id", 0);
    if (strcmp(state, "done") == 0) {
        printf("job %lld done: %.0f frames in %s\n", id,
               tsr_json_num(tsr_json_obj(job, "frames"), "done", 0), took);
        return TSR_CLI_OK;
    }
    printf("job %lld %s%s%s\n", id, state_c, error[0] ? ": " : "", error);
    return TSR_CLI_FAIL;
}

int tsr_cli_print_json(const cJSON *value)
{
    char *text = cJSON_PrintUnformatted(value);
    if (!text)
        return tsr_cli_error(TSR_CLI_FAIL, "cannot print JSON: out of memory");
    printf("%s\n", text);
    free(text);
    return TSR_CLI_OK;
}

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: tessera [--master ENDPOINT] [--timeout SECONDS]\n"
            "               [--key FILE --master-key FILE] COMMAND [ARGS...]\n"
            "\n"
            "The client of the Tessera render farm.\n"
            "\n"
            "commands:\n");
    for (size_t i = 0; i < S_NCMDS; i++)
        fprintf(out, "  %-9s %s\n", s_cmds[i]->name, s_cmds[i]->summary);
    fprintf(
        out,
        "\n"
        "options:\n"
        "  --master ENDPOINT   the master's client endpoint (default $TESSERA_MASTER,\n"
        "                      else " TSR_CLI_DEFAULT_MASTER ")\n"
        "  --timeout SECONDS   how long to wait for each reply (default 5)\n"
        "  --key FILE          this client's secret key, for a master with keys\n"
        "                      (default $TESSERA_KEY; see 'tessera keygen')\n"
        "  --master-key FILE   the master's public key (default $TESSERA_MASTER_KEY)\n"
        "  -h, --help          this help\n"
        "  --version           the version of this client\n"
        "\n"
        "Run 'tessera COMMAND --help' for a command's arguments.\n"
        "Exit codes: 0 ok, 1 refused or failed, 2 bad usage or input, "
        "3 master unreachable.\n");
}

static const struct tsr_cli_cmd *s_find(const char *name)
{
    for (size_t i = 0; i < S_NCMDS; i++)
        if (strcmp(s_cmds[i]->name, name) == 0)
            return s_cmds[i];
    return NULL;
}

int main(int argc, char **argv)
{
    enum { OPT_VERSION = 256, OPT_KEY, OPT_MASTER_KEY };
    static const struct option opts[] = {
        {"master", required_argument, NULL, 'm'},
        {"key", required_argument, NULL, OPT_KEY},
        {"master-key", required_argument, NULL, OPT_MASTER_KEY},
        {"timeout", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, OPT_VERSION},
        {NULL, 0, NULL, 0},
    };
    struct tsr_cli cli = {.master = TSR_CLI_DEFAULT_MASTER,
                          .timeout_ms = TSR_CLI_DEFAULT_TIMEOUT_MS};
    const char *env = getenv("TESSERA_MASTER");
    if (env && *env)
        cli.master = env;
    if ((env = getenv("TESSERA_KEY")) && *env)
        cli.key = env;
    if ((env = getenv("TESSERA_MASTER_KEY")) && *env)
        cli.master_key = env;

    opterr = 0;
    int ch;
    /* "+": stop at the command name; the command parses what follows. */
    while ((ch = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
        switch (ch) {
        case 'm':
            if (!*optarg)
                return tsr_cli_error(TSR_CLI_USAGE, "--master needs an endpoint");
            cli.master = optarg;
            break;
        case 't': {
            double s;
            if (tsr_cli_parse_seconds(optarg, 86400, &s) != 0)
                return tsr_cli_error(
                    TSR_CLI_USAGE, "--timeout: '%s' is not a number of seconds", optarg);
            cli.timeout_ms = (int)ceil(s * 1000);
            break;
        }
        case OPT_KEY:
        case OPT_MASTER_KEY:
            if (!*optarg)
                return tsr_cli_error(TSR_CLI_USAGE, "%s needs a key file",
                                     ch == OPT_KEY ? "--key" : "--master-key");
            *(ch == OPT_KEY ? &cli.key : &cli.master_key) = optarg;
            break;
        case 'h':
            s_usage(stdout);
            return TSR_CLI_OK;
        case OPT_VERSION:
            printf("tessera %s (protocol 1)\n", S_VERSION);
            return TSR_CLI_OK;
        default:
            return tsr_cli_bad_option(NULL, ch, argv);
        }
    }
    if (optind >= argc)
        return tsr_cli_error(TSR_CLI_USAGE, "no command given (see 'tessera --help')");

    const char *name = argv[optind];
    if (strcmp(name, "help") == 0) {
        if (optind + 1 >= argc) {
            s_usage(stdout);
            return TSR_CLI_OK;
        }
        const struct tsr_cli_cmd *cmd = s_find(argv[optind + 1]);
        if (!cmd)
            return tsr_cli_error(TSR_CLI_USAGE,
                                 "unknown command '%s' (see 'tessera --help')",
                                 argv[optind + 1]);
        return tsr_cli_help(cmd);
    }
    const struct tsr_cli_cmd *cmd = s_find(name);
    if (!cmd)
        return tsr_cli_error(TSR_CLI_USAGE, "unknown command '%s' (see 'tessera --help')",
                             name);
    if (tsr_hash_init_library() != 0)
        return tsr_cli_error(TSR_CLI_FAIL, "cannot start libsodium");

    int cargc = argc - optind;
    char **cargv = argv + optind;
    optind = 0; /* GNU getopt: start afresh for the command's own flags */
    int code = cmd->run(&cli, cargc, cargv);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "tessera: %s: cannot write output: %s\n", name, strerror(errno));
        return code ? code : TSR_CLI_FAIL;
    }
    return code;
}
