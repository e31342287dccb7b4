/*
 * cmd_drain.c: `tessera workers drain|undrain|release|forget NAME`: an
 * operator's hold on a worker. A drained worker finishes its tasks and takes
 * no more; undrain lets it take work again; release ends a quarantine;
 * forget removes a worker that is gone (not live) from the master's state.
 */
#include "cli.h"
#include "client.h"
#include "format.h"

#include "tessera/proto.h"

#include <stdio.h>
#include <string.h>

int tsr_cli_worker_action(const struct tsr_cli *cli, int argc, char **argv)
{
    const char *action = argv[1];
    if (argc != 3 || !argv[2][0])
        return tsr_cli_error(TSR_CLI_USAGE, "workers %s: want exactly one worker NAME",
                             action);
    struct tsr_client *client = NULL;
    int code = tsr_cli_connect(cli, "workers", &client);
    if (code != 0)
        return code;
    cJSON *h = cJSON_CreateObject(), *reply = NULL;
    if (!h || !cJSON_AddStringToObject(h, "name", argv[2]) ||
        !cJSON_AddStringToObject(h, "action", action)) {
        cJSON_Delete(h);
        tsr_client_destroy(&client);
        return tsr_cli_error(TSR_CLI_FAIL, "workers: out of memory");
    }
    int rc = tsr_client_call(client, "WORKER", h, "WORKER", 0, &reply);
    cJSON_Delete(h);
    if (rc != 0) {
        char what[64];
        snprintf(what, sizeof what, "workers %s", action);
        code = tsr_cli_client_error(cli, client, what, rc);
    } else {
        const cJSON *w = tsr_json_obj(reply, "worker");
        char name[80];
        tsr_fmt_clean(name, sizeof name, tsr_json_str(w, "name", argv[2]));
        printf("worker %s: %s\n", name, tsr_json_str(w, "state", "?"));
    }
    cJSON_Delete(reply);
    tsr_client_destroy(&client);
    return code;
}
