/*
 * cmd_keygen.c: `tessera keygen NAME`: a CurveZMQ key pair for a studio, an
 * operator, a worker or the master itself, as NAME.key (secret, mode 0600)
 * and NAME.pub (public). Nothing is sent anywhere: the operator copies the
 * .pub into the master's key folder of the right kind (doc/security.md).
 */
#include "cli.h"

#include "tessera/curve.h"
#include "tessera/error.h"

#include <getopt.h> /* optind */
#include <stdio.h>

static int s_run(const struct tsr_cli *cli, int argc, char **argv)
{
    (void)cli;
    const struct tsr_cli_cmd *me = &tsr_cmd_keygen;
    int handled = 0, handled_code = tsr_cli_only_help(me, argc, argv, &handled);
    if (handled)
        return handled_code;
    if (optind >= argc)
        return tsr_cli_error(TSR_CLI_USAGE,
                             "keygen: missing NAME (see 'tessera keygen --help')");
    if (optind + 1 < argc)
        return tsr_cli_error(TSR_CLI_USAGE, "keygen: unexpected argument '%s'",
                             argv[optind + 1]);
    const char *base = argv[optind];
    char err[512];
    int rc = tsr_key_generate(base, err, sizeof err);
    if (rc == TSR_EINVAL || rc == TSR_EEXIST)
        return tsr_cli_error(TSR_CLI_USAGE, "keygen: %s", err);
    if (rc != 0)
        return tsr_cli_error(TSR_CLI_FAIL, "keygen: %s", err);
    printf("wrote %s.key (secret: keep it) and %s.pub (public: give it to the master's "
           "operator)\n",
           base, base);
    return TSR_CLI_OK;
}

const struct tsr_cli_cmd tsr_cmd_keygen = {
    .name = "keygen",
    .usage = "NAME",
    .summary = "make a key pair NAME.key and NAME.pub for a master with keys",
    .help = "NAME is a key name (1 to 48 of A-Z a-z 0-9 . _ -), optionally after a\n"
            "folder: 'tessera keygen keys/alice'. Its .pub goes into one of the\n"
            "master's key folders; the name of that file names the studio, operator\n"
            "or worker. Existing files are never overwritten.\n",
    .run = s_run,
};
