/*
 * cmd_status.c: the read-only views of the farm: `tessera status [JOB]`,
 * `tessera jobs` and `tessera workers`.
 *
 * Each prints a table for people, or with --json the master's own JSON
 * (the job object, the jobs array, the workers array) as it was sent, one
 * line, for scripts and jq. The tables never fail on a missing field; they
 * show "-" (format.h).
 */
#include "cli.h"
#include "client.h"
#include "format.h"

#include "tessera/util.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The flags these three commands share. */
struct s_args {
    int json;        /* print the master's JSON */
    const char *job; /* JOB argument (status only), or NULL */
};

/* Parses [--json] and at most max_pos positional arguments. Returns 0, -1
 * for --help, or an exit code. */
static int s_parse(const struct tsr_cli_cmd *me, int argc, char **argv, int max_pos,
                   struct s_args *a)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (ch) {
        case 'j':
            a->json = 1;
            break;
        case 'h':
            return -1;
        default:
            return tsr_cli_bad_option(me, ch, argv);
        }
    }
    if (argc - optind > max_pos)
        return tsr_cli_error(TSR_CLI_USAGE, "%s: unexpected argument '%s'", me->name,
                             argv[optind + max_pos]);
    if (optind < argc)
        a->job = argv[optind];
    return 0;
}

/* Sends cmd and takes the array field `field` of its reply (caller owns). */
/* The array `field` of the master's reply to cmd; *left_out (when not
 * NULL) gets the reply's "left_out" count, 0 when absent. */
static int s_list(const struct tsr_cli *cli, const char *what, const char *cmd,
                  const char *field, cJSON **out, double *left_out)
{
    *out = NULL;
    struct tsr_client *client = NULL;
    int code = tsr_cli_connect(cli, what, &client);
    if (code != 0)
        return code;
    cJSON *reply = NULL;
    int rc = tsr_client_call(client, cmd, NULL, cmd, 0, &reply);
    if (rc != 0) {
        code = tsr_cli_client_error(cli, client, what, rc);
        tsr_client_destroy(&client);
        return code;
    }
    tsr_client_destroy(&client);
    cJSON *arr = cJSON_DetachItemFromObjectCaseSensitive(reply, field);
    if (left_out)
        *left_out = tsr_json_num(reply, "left_out", 0);
    cJSON_Delete(reply);
    if (!cJSON_IsArray(arr)) {
        cJSON_Delete(arr);
        return tsr_cli_error(TSR_CLI_FAIL, "%s: the master's %s has no '%s' array", what,
                             cmd, field);
    }
    *out = arr;
    return 0;
}

/* "12/48" from obj[name].done and .total. */
static void s_ratio(char *buf, size_t size, const cJSON *obj, const char *name)
{
    const cJSON *o = tsr_json_obj(obj, name);
    if (!o) {
        snprintf(buf, size, "-");
        return;
    }
    snprintf(buf, size, "%.0f/%.0f", tsr_json_num(o, "done", 0),
             tsr_json_num(o, "total", 0));
}

/* How long ago the wall-clock time ms was. */
static void s_age(char *buf, size_t size, double ms)
{
    if (ms <= 0) {
        snprintf(buf, size, "-");
        return;
    }
    double s = (double)(tsr_wall_ms() - (int64_t)ms) / 1000.0;
    tsr_fmt_duration(buf, size, s < 0 ? 0 : s);
}

static int s_print_jobs(const cJSON *jobs)
{
    static const char *const head[] = {"ID",    "NAME", "STATE", "FRAMES",
                                       "TASKS", "PRIO", "AGE"};
    struct tsr_table *t = tsr_table_new(7, head);
    if (!t)
        return tsr_cli_error(TSR_CLI_FAIL, "jobs: out of memory");
    const cJSON *job;
    cJSON_ArrayForEach(job, jobs)
    {
        char id[32], frames[64], tasks[64], prio[16], age[32];
        snprintf(id, sizeof id, "%.0f", tsr_json_num(job, "id", 0));
        s_ratio(frames, sizeof frames, job, "frames");
        s_ratio(tasks, sizeof tasks, job, "tasks");
        snprintf(prio, sizeof prio, "%.0f", tsr_json_num(job, "priority", 0));
        s_age(age, sizeof age, tsr_json_num(job, "created_ms", 0));
        const char *row[] = {id,
                             tsr_json_str(job, "name", "-"),
                             tsr_json_str(job, "state", "-"),
                             frames,
                             tasks,
                             prio,
                             age};
        if (tsr_table_add(t, row) != 0) {
            tsr_table_destroy(&t);
            return tsr_cli_error(TSR_CLI_FAIL, "jobs: out of memory");
        }
    }
    tsr_table_print(t, stdout);
    tsr_table_destroy(&t);
    return TSR_CLI_OK;
}

static int s_jobs(const struct tsr_cli *cli, const char *what, int json)
{
    cJSON *jobs = NULL;
    int code = s_list(cli, what, "JOBS", "jobs", &jobs, NULL);
    if (code != 0)
        return code;
    code = json ? tsr_cli_print_json(jobs) : s_print_jobs(jobs);
    cJSON_Delete(jobs);
    return code;
}

/* One "label  value" line of the job view. */
static void s_kv(const char *label, const char *value)
{
    char clean[1024];
    tsr_fmt_clean(clean, sizeof clean, value);
    printf("%-10s %s\n", label, clean);
}

static void s_print_job(const cJSON *job)
{
    char line[1024], a[64], b[64];
    const cJSON *arr;

    tsr_fmt_clean(a, sizeof a, tsr_json_str(job, "name", "-"));
    printf("job %.0f  %s\n", tsr_json_num(job, "id", 0), a);
    s_kv("state", tsr_json_str(job, "state", "-"));
    const char *waiting = tsr_json_str(job, "waiting", "");
    if (*waiting)
        s_kv("waiting", waiting); /* why no worker takes its queued tasks */
    const char *error = tsr_json_str(job, "error", "");
    if (*error)
        s_kv("error", error);
    const char *damaged = tsr_json_str(job, "damaged", "");
    if (*damaged)
        s_kv("damaged", damaged); /* frames the master found damaged (scrub) */
    snprintf(line, sizeof line, "%s  %s", tsr_json_str(job, "renderer", "-"),
             tsr_json_str(job, "scene", ""));
    s_kv("renderer", line);
    const cJSON *fr = tsr_json_obj(job, "frames");
    snprintf(line, sizeof line, "%.0f/%.0f done  (set %s)", tsr_json_num(fr, "done", 0),
             tsr_json_num(fr, "total", 0), tsr_json_str(job, "frame_set", "-"));
    s_kv("frames", line);
    const cJSON *tk = tsr_json_obj(job, "tasks");
    snprintf(line, sizeof line, "%.0f/%.0f done, %.0f running, %.0f queued, %.0f failed",
             tsr_json_num(tk, "done", 0), tsr_json_num(tk, "total", 0),
             tsr_json_num(tk, "running", 0), tsr_json_num(tk, "queued", 0),
             tsr_json_num(tk, "failed", 0));
    s_kv("tasks", line);
    arr = tsr_json_obj(job, "tiles");
    if (cJSON_GetArraySize(arr) == 2) {
        snprintf(line, sizeof line, "%.0fx%.0f, %.0f frame(s) per task",
                 cJSON_GetArrayItem(arr, 0)->valuedouble,
                 cJSON_GetArrayItem(arr, 1)->valuedouble, tsr_json_num(job, "chunk", 1));
        s_kv("tiles", line);
    }
    if (tsr_json_num(job, "width", 0) > 0) {
        snprintf(line, sizeof line, "%.0fx%.0f", tsr_json_num(job, "width", 0),
                 tsr_json_num(job, "height", 0));
        s_kv("size", line);
    }
    snprintf(line, sizeof line, "%.0f", tsr_json_num(job, "priority", 0));
    s_kv("priority", line);
    tsr_fmt_duration(a, sizeof a, tsr_json_num(job, "elapsed_s", -1));
    tsr_fmt_duration(b, sizeof b, tsr_json_num(job, "eta_s", -1));
    snprintf(line, sizeof line, "%s elapsed, eta %s", a, b);
    s_kv("time", line);
    const cJSON *hubs = tsr_json_obj(job, "hubs");
    const cJSON *hub;
    cJSON_ArrayForEach(hub, hubs)
    {
        snprintf(line, sizeof line, "%s: %.0f done, %.0f running",
                 hub->string ? hub->string : "?", tsr_json_num(hub, "done", 0),
                 tsr_json_num(hub, "running", 0));
        s_kv(hub == hubs->child ? "hubs" : "", line);
    }
}

static int s_status(const struct tsr_cli *cli, int argc, char **argv)
{
    struct s_args a = {0};
    int code = s_parse(&tsr_cmd_status, argc, argv, 1, &a);
    if (code < 0)
        return tsr_cli_help(&tsr_cmd_status);
    if (code != 0)
        return code;
    if (!a.job)
        return s_jobs(cli, "status", a.json);
    int64_t id;
    if ((code = tsr_cli_parse_job("status", a.job, &id)) != 0)
        return code;
    struct tsr_client *client = NULL;
    if ((code = tsr_cli_connect(cli, "status", &client)) != 0)
        return code;
    cJSON *job = NULL;
    code = tsr_cli_fetch_job(cli, client, "status", id, &job);
    tsr_client_destroy(&client);
    if (code != 0)
        return code;
    if (a.json)
        code = tsr_cli_print_json(job);
    else
        s_print_job(job);
    cJSON_Delete(job);
    return code;
}

static int s_jobs_cmd(const struct tsr_cli *cli, int argc, char **argv)
{
    struct s_args a = {0};
    int code = s_parse(&tsr_cmd_jobs, argc, argv, 0, &a);
    if (code < 0)
        return tsr_cli_help(&tsr_cmd_jobs);
    if (code != 0)
        return code;
    return s_jobs(cli, "jobs", a.json);
}

static int s_print_workers(const cJSON *workers)
{
    static const char *const head[] = {"NAME",   "HUB",  "STATE",   "SLOTS",
                                       "RUNNING", "DONE", "FAILED", "GPUS",
                                       "SANDBOX", "LAST-SEEN"};
    struct tsr_table *t = tsr_table_new(10, head);
    if (!t)
        return tsr_cli_error(TSR_CLI_FAIL, "workers: out of memory");
    const cJSON *w;
    cJSON_ArrayForEach(w, workers)
    {
        char slots[16], running[16], done[16], failed[16], gpus[16], seen[32];
        snprintf(slots, sizeof slots, "%.0f", tsr_json_num(w, "slots", 0));
        snprintf(running, sizeof running, "%.0f", tsr_json_num(w, "running", 0));
        snprintf(done, sizeof done, "%.0f", tsr_json_num(w, "done", 0));
        snprintf(failed, sizeof failed, "%.0f", tsr_json_num(w, "failed", 0));
        snprintf(gpus, sizeof gpus, "%d", cJSON_GetArraySize(tsr_json_obj(w, "gpus")));
        double ago = tsr_json_num(w, "last_seen_s", -1);
        tsr_fmt_duration(seen, sizeof seen, ago);
        if (ago >= 0)
            strncat(seen, " ago", sizeof seen - strlen(seen) - 1);
        const char *row[] = {tsr_json_str(w, "name", "-"),
                             tsr_json_str(w, "hub", "-"),
                             tsr_json_str(w, "state", "-"),
                             slots,
                             running,
                             done,
                             failed,
                             gpus,
                             tsr_json_str(w, "sandbox", "-"),
                             seen};
        if (tsr_table_add(t, row) != 0) {
            tsr_table_destroy(&t);
            return tsr_cli_error(TSR_CLI_FAIL, "workers: out of memory");
        }
    }
    tsr_table_print(t, stdout);
    tsr_table_destroy(&t);
    return TSR_CLI_OK;
}

static int s_workers(const struct tsr_cli *cli, int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "drain") == 0 || strcmp(argv[1], "undrain") == 0 ||
                      strcmp(argv[1], "release") == 0 || strcmp(argv[1], "forget") == 0))
        return tsr_cli_worker_action(cli, argc, argv);
    struct s_args a = {0};
    int code = s_parse(&tsr_cmd_workers, argc, argv, 0, &a);
    if (code < 0)
        return tsr_cli_help(&tsr_cmd_workers);
    if (code != 0)
        return code;
    cJSON *workers = NULL;
    double left_out = 0;
    if ((code = s_list(cli, "workers", "WORKERS", "workers", &workers, &left_out)) != 0)
        return code;
    code = a.json ? tsr_cli_print_json(workers) : s_print_workers(workers);
    cJSON_Delete(workers);
    if (!a.json && left_out > 0)
        printf("(%.0f more workers not listed: the reply would be too large)\n",
               left_out);
    return code;
}

const struct tsr_cli_cmd tsr_cmd_status = {
    .name = "status",
    .usage = "[JOB] [--json]",
    .summary = "show one job in detail (without JOB: all jobs)",
    .help = "  --json   print the master's job object (or jobs array) as JSON\n",
    .run = s_status,
};

const struct tsr_cli_cmd tsr_cmd_jobs = {
    .name = "jobs",
    .usage = "[--json]",
    .summary = "list jobs: ID NAME STATE FRAMES TASKS PRIO AGE",
    .help = "  --json   print the master's jobs array as JSON\n",
    .run = s_jobs_cmd,
};

const struct tsr_cli_cmd tsr_cmd_workers = {
    .name = "workers",
    .usage = "[--json]",
    .summary = "list workers: NAME HUB STATE SLOTS RUNNING DONE FAILED GPUS LAST-SEEN",
    .help =
        "  --json   print the master's workers array as JSON\n"
        "\n"
        "  tessera workers drain NAME     finish its tasks, take no more\n"
        "  tessera workers undrain NAME   take work again\n"
        "  tessera workers release NAME   end a quarantine\n"
        "  tessera workers forget NAME    remove a worker that is gone (stopped or\n"
        "                                 lost) from the list and the master's state\n",
    .run = s_workers,
};
