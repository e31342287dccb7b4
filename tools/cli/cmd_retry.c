/*
 * cmd_retry.c: `tessera retry JOB [TASK...]`: failed tasks go back to the
 * queue with a fresh count of attempts (all of them, or the ones named); a
 * failed job runs again.
 */
#include "cli.h"
#include "client.h"
#include "format.h"

#include "tessera/proto.h"

#include <getopt.h> /* optind */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int s_run(const struct tsr_cli *cli, int argc, char **argv)
{
    const struct tsr_cli_cmd *me = &tsr_cmd_retry;
    int handled = 0, handled_code = tsr_cli_only_help(me, argc, argv, &handled);
    if (handled)
        return handled_code;
    if (optind >= argc)
        return tsr_cli_error(TSR_CLI_USAGE, "retry: missing JOB (see 'tessera retry --help')");
    int64_t id;
    int code = tsr_cli_parse_job("retry", argv[optind], &id);
    if (code != 0)
        return code;
    cJSON *h = cJSON_CreateObject();
    cJSON *tasks = h ? cJSON_AddArrayToObject(h, "tasks") : NULL;
    if (!tasks || !cJSON_AddNumberToObject(h, "job", (double)id)) {
        cJSON_Delete(h);
        return tsr_cli_error(TSR_CLI_FAIL, "retry: out of memory");
    }
    for (int i = optind + 1; i < argc; i++) {
        char *end;
        long t = strtol(argv[i], &end, 10);
        if (!*argv[i] || *end || t < 0 || t > 1000000 || i - optind > 256) {
            cJSON_Delete(h);
            return tsr_cli_error(TSR_CLI_USAGE, "retry: '%s' is not a task number", argv[i]);
        }
        cJSON_AddItemToArray(tasks, cJSON_CreateNumber((double)t));
    }
    struct tsr_client *client = NULL;
    if ((code = tsr_cli_connect(cli, "retry", &client)) != 0) {
        cJSON_Delete(h);
        return code;
    }
    cJSON *reply = NULL;
    int rc = tsr_client_call(client, "RETRY", h, "RETRIED", 0, &reply);
    cJSON_Delete(h);
    if (rc != 0)
        code = tsr_cli_client_error(cli, client, "retry", rc);
    else
        printf("job %lld: %.0f failed task(s) requeued (%s)\n", (long long)id,
               tsr_json_num(reply, "requeued", 0), tsr_json_str(reply, "state", "?"));
    cJSON_Delete(reply);
    tsr_client_destroy(&client);
    return code;
}

const struct tsr_cli_cmd tsr_cmd_retry = {
    .name = "retry",
    .usage = "JOB [TASK...]",
    .summary = "requeue a job's failed tasks (all, or the ones named)",
    .help = "Task numbers are those of 'tessera status JOB --json' and the event log.\n",
    .run = s_run,
};
