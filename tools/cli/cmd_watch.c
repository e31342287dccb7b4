/*
 * cmd_watch.c: `tessera watch JOB`: live progress of one job until it ends.
 *
 * It polls STATUS every --interval seconds (0.5 by default) and shows a
 * progress bar, frames done of total, tasks running and failed, the rate in
 * frames per minute, the ETA, and one line per hub. On a terminal the view
 * is redrawn in place (cursor up, clear); when stdout is a pipe or a file it
 * prints one plain line whenever something changed, at most once a second,
 * with no escape codes, so a log stays readable. The exit code is the job's
 * end: 0 done, 1 failed or cancelled.
 */
#include "cli.h"
#include "client.h"
#include "format.h"

#include "tessera/util.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define S_BAR 30              /* progress bar width, characters */
#define S_PLAIN_EVERY_MS 1000 /* plain output: at most one line this often */
#define S_MAX_HUBS 32         /* hub lines shown; the rest are summed up */

/* What one STATUS reply says, reduced to what the view shows. */
struct s_view {
    char name[128];  /* job name, cleaned */
    char state[32];  /* job state, cleaned */
    double frames;   /* frames in the job */
    double progress; /* percent of the job's work, running tasks included */
    double done;     /* frames done */
    double running;  /* tasks running */
    double failed;   /* tasks failed */
    double rate;     /* frames per minute, < 0 when unknown */
    double eta_s;    /* seconds left, < 0 when unknown */
    char hubs[2048]; /* "name done running" per hub, for change detection */
};

static void s_read(const cJSON *job, struct s_view *v)
{
    tsr_fmt_clean(v->name, sizeof v->name, tsr_json_str(job, "name", "-"));
    tsr_fmt_clean(v->state, sizeof v->state, tsr_json_str(job, "state", "?"));
    const cJSON *fr = tsr_json_obj(job, "frames");
    const cJSON *tk = tsr_json_obj(job, "tasks");
    v->frames = tsr_json_num(fr, "total", 0);
    v->progress = tsr_json_num(job, "progress", -1);
    v->done = tsr_json_num(fr, "done", 0);
    v->running = tsr_json_num(tk, "running", 0);
    v->failed = tsr_json_num(tk, "failed", 0);
    double elapsed = tsr_json_num(job, "elapsed_s", -1);
    v->rate = (elapsed > 0) ? v->done / elapsed * 60.0 : -1;
    v->eta_s = tsr_json_num(job, "eta_s", -1);
    if (v->eta_s <= 0 && v->rate > 0 && v->done < v->frames)
        v->eta_s = (v->frames - v->done) / v->rate * 60.0;
    if (v->done >= v->frames && v->frames > 0)
        v->eta_s = 0;
    v->hubs[0] = '\0';
    const cJSON *hub;
    size_t n = 0;
    cJSON_ArrayForEach(hub, tsr_json_obj(job, "hubs"))
    {
        char name[64];
        tsr_fmt_clean(name, sizeof name, hub->string ? hub->string : "?");
        n += (size_t)snprintf(v->hubs + n, n < sizeof v->hubs ? sizeof v->hubs - n : 0,
                              "%s%s %.0f done, %.0f running", n ? "; " : "", name,
                              tsr_json_num(hub, "done", 0),
                              tsr_json_num(hub, "running", 0));
        if (n >= sizeof v->hubs)
            break;
    }
}

/* The master's progress (running tasks count by their renderers' own
 * progress), else frames done. */
static double s_percent(const struct s_view *v)
{
    if (v->progress >= 0)
        return v->progress > 100 ? 100 : v->progress;
    return v->frames > 0 ? 100.0 * v->done / v->frames : 0;
}

/* The part of the view whose change is worth a plain line (not the rate and
 * ETA, which move with the clock). */
static void s_signature(const struct s_view *v, char *buf, size_t size)
{
    snprintf(buf, size, "%s|%.0f|%.0f|%.0f|%.0f|%.0f|%s", v->state, v->frames, v->done,
             v->running, v->failed, s_percent(v), v->hubs);
}

static void s_rate_eta(const struct s_view *v, char *buf, size_t size)
{
    char eta[32];
    tsr_fmt_duration(eta, sizeof eta, v->eta_s);
    if (v->rate >= 0)
        snprintf(buf, size, "%.1f frames/min, eta %s", v->rate, eta);
    else
        snprintf(buf, size, "- frames/min, eta %s", eta);
}


/* Terminal view: redraws the previous *lines lines in place. */
static void s_draw_tty(int64_t id, const cJSON *job, const struct s_view *v, int *lines)
{
    if (*lines > 0)
        printf("\033[%dA", *lines);
    int n = 0;
    char bar[S_BAR + 1], re[96];
    int fill = (int)(s_percent(v) / 100.0 * S_BAR + 0.5);
    for (int i = 0; i < S_BAR; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[S_BAR] = '\0';
    s_rate_eta(v, re, sizeof re);
    printf("\r\033[2Kjob %lld %s  %s\n", (long long)id, v->name, v->state);
    printf("\r\033[2K[%s] %5.1f%%  %.0f/%.0f frames\n", bar, s_percent(v), v->done,
           v->frames);
    printf("\r\033[2Ktasks: %.0f running, %.0f failed   %s\n", v->running, v->failed, re);
    n = 3;
    const cJSON *hub;
    cJSON_ArrayForEach(hub, tsr_json_obj(job, "hubs"))
    {
        if (n - 3 >= S_MAX_HUBS)
            break;
        char name[64];
        tsr_fmt_clean(name, sizeof name, hub->string ? hub->string : "?");
        printf("\r\033[2K  hub %-16s %6.0f done, %3.0f running\n", name,
               tsr_json_num(hub, "done", 0), tsr_json_num(hub, "running", 0));
        n++;
    }
    printf("\033[J"); /* a hub that went away leaves no stale line */
    fflush(stdout);
    *lines = n;
}

/* Plain view: one line. */
static void s_draw_plain(int64_t id, const struct s_view *v)
{
    char re[96];
    s_rate_eta(v, re, sizeof re);
    printf("job %lld %s: %.0f/%.0f frames (%.0f%%), %.0f running, %.0f failed, %s%s%s\n",
           (long long)id, v->state, v->done, v->frames, s_percent(v), v->running,
           v->failed, re, v->hubs[0] ? "; hubs: " : "", v->hubs);
    fflush(stdout);
}

static int s_run(const struct tsr_cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        {"interval", required_argument, NULL, 'i'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const struct tsr_cli_cmd *me = &tsr_cmd_watch;
    double interval = 0.5;
    int ch;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (ch) {
        case 'i':
            if (tsr_cli_parse_seconds(optarg, 3600, &interval) != 0 || interval < 0.01)
                return tsr_cli_error(TSR_CLI_USAGE,
                                     "watch: --interval '%s': want seconds, 0.01..3600",
                                     optarg);
            break;
        case 'h':
            return tsr_cli_help(me);
        default:
            return tsr_cli_bad_option(me, ch, argv);
        }
    }
    if (optind >= argc)
        return tsr_cli_error(TSR_CLI_USAGE,
                             "watch: missing JOB (see 'tessera watch --help')");
    if (optind + 1 < argc)
        return tsr_cli_error(TSR_CLI_USAGE, "watch: unexpected argument '%s'",
                             argv[optind + 1]);
    int64_t id;
    int code = tsr_cli_parse_job("watch", argv[optind], &id);
    if (code != 0)
        return code;

    struct tsr_client *client = NULL;
    if ((code = tsr_cli_connect(cli, "watch", &client)) != 0)
        return code;
    int tty = isatty(1);
    int lines = 0;
    char shown[2200] = "", now_sig[2200];
    int64_t last_print = 0;
    for (;;) {
        cJSON *job = NULL;
        if ((code = tsr_cli_fetch_job(cli, client, "watch", id, &job)) != 0)
            break;
        struct s_view v;
        s_read(job, &v);
        int final = tsr_job_state_final(tsr_json_str(job, "state", NULL));
        if (tty) {
            s_draw_tty(id, job, &v, &lines);
        } else {
            s_signature(&v, now_sig, sizeof now_sig);
            int64_t now = tsr_now_ms();
            /* A change waits for the next second rather than flooding a log;
             * the end is always shown. */
            if (strcmp(now_sig, shown) != 0 &&
                (final || last_print == 0 || now - last_print >= S_PLAIN_EVERY_MS)) {
                s_draw_plain(id, &v);
                snprintf(shown, sizeof shown, "%s", now_sig);
                last_print = now;
            }
        }
        if (final) {
            code = tsr_cli_job_end(job);
            cJSON_Delete(job);
            break;
        }
        cJSON_Delete(job);
        struct timespec ts = {(time_t)interval,
                              (long)((interval - (double)(time_t)interval) * 1e9)};
        nanosleep(&ts, NULL);
    }
    tsr_client_destroy(&client);
    return code;
}

const struct tsr_cli_cmd tsr_cmd_watch = {
    .name = "watch",
    .usage = "JOB [--interval SECONDS]",
    .summary = "follow a job live: progress, rate, ETA, hubs; exit 0 if it ends done",
    .help = "  --interval SECONDS   how often to ask the master (default 0.5)\n"
            "On a terminal the view is redrawn in place; otherwise one plain line is\n"
            "printed whenever something changed, at most once a second.\n",
    .run = s_run,
};
