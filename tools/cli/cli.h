/*
 * cli.h: what the `tessera` subcommands share: the global options, the
 * command table entry, exit codes, and the one way of reporting an error.
 *
 * Each subcommand lives in its own cmd_*.c file (tmux cmd-*.c / git
 * builtin style) and exports one entry; main.c holds the table, parses the
 * global options and dispatches. A subcommand parses its own flags with
 * getopt_long, talks to the master through client.h, and returns an exit
 * code. Every failure is reported exactly once, as one line on stderr:
 *
 *   tessera: <what failed>: <why>
 */
#ifndef TESSERA_CLI_H
#define TESSERA_CLI_H

#include <stdint.h>

#include <cjson/cJSON.h>

struct tsr_client;

/* Exit codes: scripts tell these apart. */
#define TSR_CLI_OK 0          /* success (and, for a job, it is done) */
#define TSR_CLI_FAIL 1        /* the master refused, or a job failed */
#define TSR_CLI_USAGE 2       /* bad flags, arguments or local input */
#define TSR_CLI_UNREACHABLE 3 /* no reply from the master in time */

#define TSR_CLI_DEFAULT_MASTER "tcp://127.0.0.1:7400"
#define TSR_CLI_DEFAULT_TIMEOUT_MS 5000

/* Global options, set by main.c before a subcommand runs. */
struct tsr_cli {
    const char *master;     /* the master's client endpoint */
    int timeout_ms;         /* how long to wait for any one reply */
    const char *key;        /* our secret key file (--key, $TESSERA_KEY), or NULL */
    const char *master_key; /* the master's public key file (--master-key,
                               $TESSERA_MASTER_KEY), or NULL */
};

/* One entry of the command table. */
struct tsr_cli_cmd {
    const char *name;    /* what the user types: "submit" */
    const char *usage;   /* arguments after the name, for --help */
    const char *summary; /* one line for `tessera --help` */
    const char *help;    /* flag descriptions for `tessera NAME --help` */
    /* Runs the command; argv[0] is the command name. Returns an exit code. */
    int (*run)(const struct tsr_cli *cli, int argc, char **argv);
};

extern const struct tsr_cli_cmd tsr_cmd_submit;
extern const struct tsr_cli_cmd tsr_cmd_status;
extern const struct tsr_cli_cmd tsr_cmd_jobs;
extern const struct tsr_cli_cmd tsr_cmd_workers;
extern const struct tsr_cli_cmd tsr_cmd_watch;
extern const struct tsr_cli_cmd tsr_cmd_cancel;
extern const struct tsr_cli_cmd tsr_cmd_fetch;
extern const struct tsr_cli_cmd tsr_cmd_keygen;
extern const struct tsr_cli_cmd tsr_cmd_events;
extern const struct tsr_cli_cmd tsr_cmd_pause;
extern const struct tsr_cli_cmd tsr_cmd_resume;
extern const struct tsr_cli_cmd tsr_cmd_retry;

/* `tessera workers drain|undrain|release NAME` (cmd_drain.c); argv[1] is
 * the action. */
int tsr_cli_worker_action(const struct tsr_cli *cli, int argc, char **argv);

/*
 * The error reporter: prints "tessera: " and the formatted text as one line
 * on stderr and returns code, so that a command can `return
 * tsr_cli_error(TSR_CLI_USAGE, "submit: ...")`.
 */
int tsr_cli_error(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints a warning line ("tessera: warning: ...") on stderr. */
void tsr_cli_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Reports a failed exchange with the master (rc from client.h) for the
 * command `what` and returns the exit code that fits: the master's own
 * message and TSR_CLI_FAIL for an ERROR reply, the "cannot reach master"
 * line and TSR_CLI_UNREACHABLE for a timeout, TSR_CLI_FAIL otherwise.
 */
int tsr_cli_client_error(const struct tsr_cli *cli, struct tsr_client *client,
                         const char *what, int rc);

/*
 * Helpers for getopt_long loops. tsr_cli_bad_option reports the option that
 * getopt refused (ch is getopt's '?' or ':'; getopt must run with opterr 0
 * and an optstring that starts with ':') for command cmd (NULL: the global
 * options) and returns
 * TSR_CLI_USAGE. tsr_cli_help prints cmd's usage and help to stdout and
 * returns TSR_CLI_OK.
 */
int tsr_cli_bad_option(const struct tsr_cli_cmd *cmd, int ch, char **argv);
int tsr_cli_help(const struct tsr_cli_cmd *cmd);

/* For a command whose only option is --help: parses it. Sets *done and
 * returns the exit code when the command should end here (help printed, or
 * a bad option reported); else *done is 0 and optind is at the first
 * argument. */
int tsr_cli_only_help(const struct tsr_cli_cmd *cmd, int argc, char **argv, int *done);

/*
 * Parses a job id argument ("7"); on a bad one reports it for command name
 * and returns TSR_CLI_USAGE, else 0.
 */
int tsr_cli_parse_job(const char *name, const char *arg, int64_t *job);

/*
 * Parses a decimal integer in [min, max] with nothing after it.
 * Returns 0 or TSR_EINVAL.
 */
int tsr_cli_parse_int(const char *s, int64_t min, int64_t max, int64_t *out);

/*
 * Parses a number of seconds (decimals allowed) in (0, max].
 * Returns 0 or TSR_EINVAL.
 */
int tsr_cli_parse_seconds(const char *s, double max, double *out);

/*
 * Connects a client to cli->master. On failure reports it (for command
 * name) and returns the exit code; on success returns 0 and *out is the
 * caller's (tsr_client_destroy).
 */
int tsr_cli_connect(const struct tsr_cli *cli, const char *name, struct tsr_client **out);

/*
 * Fetches one job's object with STATUS. On success *job is the caller's
 * (cJSON_Delete) and 0 is returned; else the failure is reported for
 * command name and its exit code returned.
 */
int tsr_cli_fetch_job(const struct tsr_cli *cli, struct tsr_client *client,
                      const char *name, int64_t id, cJSON **job);

/*
 * Prints the one-line end of a finished job to stdout ("job 7 done: 48
 * frames in 1m12s", "job 7 failed: <error>") and returns its exit code:
 * TSR_CLI_OK when done, TSR_CLI_FAIL when failed or cancelled.
 */
int tsr_cli_job_end(const cJSON *job);

/* Prints a JSON value on one line to stdout. Returns 0 or TSR_CLI_FAIL. */
int tsr_cli_print_json(const cJSON *value);

#endif
