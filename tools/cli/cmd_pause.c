/*
 * cmd_pause.c: `tessera pause JOB` and `tessera resume JOB`. A paused job
 * starts no new task; the ones running finish and are kept. Resuming lets
 * the scheduler hand out its tasks again.
 */
#include "cli.h"
#include "client.h"
#include "format.h"

#include "tessera/proto.h"

#include <getopt.h> /* optind */
#include <stdio.h>
#include <string.h>

/* One JOB argument, one request, one reply: pause and resume differ only
 * in their names. */
static int s_job_request(const struct tsr_cli *cli, const struct tsr_cli_cmd *me, int argc,
                         char **argv, const char *request, const char *reply_cmd,
                         const char *done_word)
{
    int handled = 0, handled_code = tsr_cli_only_help(me, argc, argv, &handled);
    if (handled)
        return handled_code;
    if (optind >= argc)
        return tsr_cli_error(TSR_CLI_USAGE, "%s: missing JOB (see 'tessera %s --help')",
                             me->name, me->name);
    if (optind + 1 < argc)
        return tsr_cli_error(TSR_CLI_USAGE, "%s: unexpected argument '%s'", me->name,
                             argv[optind + 1]);
    int64_t id;
    int code = tsr_cli_parse_job(me->name, argv[optind], &id);
    if (code != 0)
        return code;
    struct tsr_client *client = NULL;
    if ((code = tsr_cli_connect(cli, me->name, &client)) != 0)
        return code;
    cJSON *h = cJSON_CreateObject(), *reply = NULL;
    if (!h || !cJSON_AddNumberToObject(h, "job", (double)id)) {
        cJSON_Delete(h);
        tsr_client_destroy(&client);
        return tsr_cli_error(TSR_CLI_FAIL, "%s: out of memory", me->name);
    }
    int rc = tsr_client_call(client, request, h, reply_cmd, 0, &reply);
    cJSON_Delete(h);
    if (rc != 0)
        code = tsr_cli_client_error(cli, client, me->name, rc);
    else
        printf("%s job %lld (%s)\n", done_word, (long long)id,
               tsr_json_str(reply, "state", "?"));
    cJSON_Delete(reply);
    tsr_client_destroy(&client);
    return code;
}

static int s_pause(const struct tsr_cli *cli, int argc, char **argv)
{
    return s_job_request(cli, &tsr_cmd_pause, argc, argv, "PAUSE", "PAUSED", "paused");
}

static int s_resume(const struct tsr_cli *cli, int argc, char **argv)
{
    return s_job_request(cli, &tsr_cmd_resume, argc, argv, "RESUME", "RESUMED", "resumed");
}

const struct tsr_cli_cmd tsr_cmd_pause = {
    .name = "pause",
    .usage = "JOB",
    .summary = "start no new task of a job (running ones finish)",
    .help = "",
    .run = s_pause,
};

const struct tsr_cli_cmd tsr_cmd_resume = {
    .name = "resume",
    .usage = "JOB",
    .summary = "let a paused job's tasks run again",
    .help = "",
    .run = s_resume,
};
