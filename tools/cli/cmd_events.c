/*
 * cmd_events.c: `tessera events [--json] [--job N] [--limit N]`: the
 * master's audit trail, oldest first: who submitted, cancelled, retried or
 * drained what, and what the farm did (frames done, workers lost). A studio
 * sees the events of its own jobs; an operator all of them.
 */
#include "cli.h"
#include "client.h"
#include "format.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The fields every event has, which the table shows in their own columns. */
static int s_common(const char *key)
{
    static const char *const names[] = {"seq", "ts_ms", "kind", "job", "by"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(key, names[i]) == 0)
            return 1;
    return 0;
}

/* "key=value ..." of an event's other fields, for the DETAIL column. */
static void s_detail(const cJSON *ev, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    const cJSON *f;
    cJSON_ArrayForEach(f, ev)
    {
        if (!f->string || s_common(f->string) || used + 2 >= size)
            continue;
        char *v = cJSON_IsString(f) ? NULL : cJSON_PrintUnformatted(f);
        int n = snprintf(buf + used, size - used, "%s%s=%s", used ? " " : "", f->string,
                         v ? v : f->valuestring);
        free(v);
        if (n < 0)
            break;
        used += (size_t)n < size - used ? (size_t)n : size - used - 1;
    }
}

static int s_print(const cJSON *events)
{
    static const char *const headers[] = {"SEQ", "TIME", "JOB", "BY", "EVENT", "DETAIL"};
    struct tsr_table *t = tsr_table_new(6, headers);
    if (!t)
        return tsr_cli_error(TSR_CLI_FAIL, "events: out of memory");
    const cJSON *ev;
    cJSON_ArrayForEach(ev, events)
    {
        char seq[24], when[32] = "-", job[24] = "-", detail[512];
        snprintf(seq, sizeof seq, "%.0f", tsr_json_num(ev, "seq", 0));
        double ms = tsr_json_num(ev, "ts_ms", -1);
        if (ms >= 0) {
            time_t secs = (time_t)(ms / 1000);
            struct tm tm;
            if (localtime_r(&secs, &tm))
                strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
        }
        if (tsr_json_num(ev, "job", 0) > 0)
            snprintf(job, sizeof job, "%.0f", tsr_json_num(ev, "job", 0));
        const char *by = tsr_json_str(ev, "by", "-");
        s_detail(ev, detail, sizeof detail);
        const char *cells[] = {seq, when, job, by[0] ? by : "-",
                               tsr_json_str(ev, "kind", "-"), detail};
        if (tsr_table_add(t, cells) != 0) {
            tsr_table_destroy(&t);
            return tsr_cli_error(TSR_CLI_FAIL, "events: out of memory");
        }
    }
    tsr_table_print(t, stdout);
    tsr_table_destroy(&t);
    return TSR_CLI_OK;
}

static int s_run(const struct tsr_cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"job", required_argument, NULL, 'J'},
        {"limit", required_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const struct tsr_cli_cmd *me = &tsr_cmd_events;
    int json = 0, ch;
    int64_t job = 0, limit = 100;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (ch) {
        case 'j':
            json = 1;
            break;
        case 'J': {
            int code = tsr_cli_parse_job("events", optarg, &job);
            if (code != 0)
                return code;
            break;
        }
        case 'n':
            if (tsr_cli_parse_int(optarg, 1, 500, &limit) != 0)
                return tsr_cli_error(TSR_CLI_USAGE, "events: --limit '%s' is not a number "
                                                    "from 1 to 500", optarg);
            break;
        case 'h':
            return tsr_cli_help(me);
        default:
            return tsr_cli_bad_option(me, ch, argv);
        }
    }
    if (optind < argc)
        return tsr_cli_error(TSR_CLI_USAGE, "events: unexpected argument '%s'", argv[optind]);
    cJSON *h = cJSON_CreateObject();
    if (!h || !cJSON_AddNumberToObject(h, "limit", (double)limit) ||
        (job && !cJSON_AddNumberToObject(h, "job", (double)job))) {
        cJSON_Delete(h);
        return tsr_cli_error(TSR_CLI_FAIL, "events: out of memory");
    }
    struct tsr_client *client = NULL;
    int code = tsr_cli_connect(cli, "events", &client);
    if (code != 0) {
        cJSON_Delete(h);
        return code;
    }
    cJSON *reply = NULL;
    int rc = tsr_client_call(client, "EVENTS", h, "EVENTS", 0, &reply);
    cJSON_Delete(h);
    if (rc != 0) {
        code = tsr_cli_client_error(cli, client, "events", rc);
        tsr_client_destroy(&client);
        return code;
    }
    tsr_client_destroy(&client);
    const cJSON *events = tsr_json_obj(reply, "events");
    if (!cJSON_IsArray(events))
        code = tsr_cli_error(TSR_CLI_FAIL, "events: the master's EVENTS has no 'events' "
                                           "array");
    else
        code = json ? tsr_cli_print_json(events) : s_print(events);
    cJSON_Delete(reply);
    return code;
}

const struct tsr_cli_cmd tsr_cmd_events = {
    .name = "events",
    .usage = "[--json] [--job N] [--limit N]",
    .summary = "the audit trail: who did what, and what the farm did",
    .help = "  --json      the master's events as one JSON array, oldest first\n"
            "  --job N     only the events of job N\n"
            "  --limit N   the newest N events (default 100, at most 500)\n"
            "\n"
            "A studio sees the events of its own jobs; an operator all of them.\n",
    .run = s_run,
};
