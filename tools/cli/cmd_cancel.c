/*
 * cmd_cancel.c: `tessera cancel JOB`: stop a job; its queued tasks are
 * dropped and running ones stopped by the master. Frames already done stay
 * fetchable.
 */
#include "cli.h"
#include "client.h"
#include "format.h"

#include "tessera/proto.h"

#include <getopt.h> /* optind */
#include <stdio.h>
#include <string.h>

static int s_run(const struct tsr_cli *cli, int argc, char **argv)
{
    const struct tsr_cli_cmd *me = &tsr_cmd_cancel;
    int handled = 0, handled_code = tsr_cli_only_help(me, argc, argv, &handled);
    if (handled)
        return handled_code;
    if (optind >= argc)
        return tsr_cli_error(TSR_CLI_USAGE,
                             "cancel: missing JOB (see 'tessera cancel --help')");
    if (optind + 1 < argc)
        return tsr_cli_error(TSR_CLI_USAGE, "cancel: unexpected argument '%s'",
                             argv[optind + 1]);
    int64_t id;
    int code = tsr_cli_parse_job("cancel", argv[optind], &id);
    if (code != 0)
        return code;

    struct tsr_client *client = NULL;
    if ((code = tsr_cli_connect(cli, "cancel", &client)) != 0)
        return code;
    cJSON *h = cJSON_CreateObject();
    if (!h || !cJSON_AddNumberToObject(h, "job", (double)id)) {
        cJSON_Delete(h);
        tsr_client_destroy(&client);
        return tsr_cli_error(TSR_CLI_FAIL, "cancel: out of memory");
    }
    cJSON *reply = NULL;
    int rc = tsr_client_call(client, "CANCEL", h, "CANCELLED", 0, &reply);
    cJSON_Delete(h);
    if (rc != 0) {
        code = tsr_cli_client_error(cli, client, "cancel", rc);
        tsr_client_destroy(&client);
        return code;
    }
    tsr_client_destroy(&client);
    /* A job that had already ended keeps its end; say so rather than claim
     * a cancel that did not happen. */
    const char *state = tsr_json_str(reply, "state", "cancelled");
    int done = strcmp(state, "done") == 0, failed = strcmp(state, "failed") == 0;
    cJSON_Delete(reply);
    if (done || failed)
        return tsr_cli_error(TSR_CLI_FAIL, "cancel: job %lld had already %s",
                             (long long)id, done ? "finished" : "failed");
    printf("cancelled job %lld\n", (long long)id);
    return TSR_CLI_OK;
}

const struct tsr_cli_cmd tsr_cmd_cancel = {
    .name = "cancel",
    .usage = "JOB",
    .summary = "cancel a job (frames already done stay fetchable)",
    .help = "",
    .run = s_run,
};
