/*
 * probe.c: cores, memory and GPUs for HELLO (probe.h).
 *
 * nvidia-smi runs as any renderer does (runner.c: its own process group,
 * no inherited descriptors) and under a deadline, so a hung driver delays
 * the start by seconds, not forever.
 */
#include "probe.h"

#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tessera/error.h"
#include "tessera/log.h"
#include "tessera/util.h"

#include "adapters.h"
#include "runner.h"

#define S_LOG "probe"

int tsr_probe_cores(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (n > INT_MAX ? INT_MAX : (int)n) : 1;
}

int64_t tsr_probe_memory_mb(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    return pages > 0 && page > 0 ? (int64_t)pages * page / (1024 * 1024) : 0;
}

cJSON *tsr_probe_gpu_line(const char *line)
{
    char buf[TSR_CHILD_LINE];
    if (tsr_fmt(buf, sizeof buf, "%s", line) != 0)
        return NULL;
    char *comma = strrchr(buf, ',');
    if (!comma)
        return NULL;
    *comma = '\0';
    char *name = buf;
    while (*name == ' ' || *name == '\t')
        name++;
    size_t n = strlen(name);
    while (n > 0 && (name[n - 1] == ' ' || name[n - 1] == '\t'))
        name[--n] = '\0';
    char *end = NULL;
    long long mb = strtoll(comma + 1, &end, 10);
    while (end && (*end == ' ' || *end == '\t'))
        end++;
    if (!n || !end || end == comma + 1 || *end || mb < 0)
        return NULL; /* "[N/A]", an error message, an empty name */
    tsr_text_sanitize(name, n);
    cJSON *g = cJSON_CreateObject();
    if (!g)
        return NULL;
    cJSON_AddStringToObject(g, "name", name);
    cJSON_AddNumberToObject(g, "memory_mb", (double)mb);
    return g;
}

static void s_on_line(void *ctx, const char *line)
{
    cJSON *gpus = ctx;
    if (cJSON_GetArraySize(gpus) >= TSR_PROBE_MAX_GPUS)
        return;
    cJSON *g = tsr_probe_gpu_line(line);
    if (g)
        cJSON_AddItemToArray(gpus, g);
}

int tsr_probe_run(char *const argv[], char *const envp[], const char *cwd, int timeout_ms,
                  tsr_child_line_fn fn, void *ctx, int *status, char **log, char *err,
                  size_t errlen)
{
    struct tsr_child *c = NULL;
    if (log)
        *log = NULL;
    int rc = tsr_child_spawn(argv, envp, cwd, &c, err, errlen);
    if (rc != 0)
        return rc;
    int64_t end = tsr_now_ms() + timeout_ms;
    int done = 0;
    while (!done && tsr_now_ms() < end) {
        if (tsr_child_fd(c) >= 0) {
            struct pollfd p = {tsr_child_fd(c), POLLIN, 0};
            poll(&p, 1, 50);
            tsr_child_read(c, fn, ctx);
        } else {
            usleep(10000);
        }
        done = tsr_child_reap(c, fn, ctx, status);
    }
    if (log)
        *log = tsr_child_log(c);
    tsr_child_destroy(&c); /* kills the group if it still runs */
    if (!done) {
        snprintf(err, errlen, "'%s' did not finish within %d ms", argv[0], timeout_ms);
        return TSR_ETIMEOUT;
    }
    return 0;
}

cJSON *tsr_probe_gpus(void)
{
    cJSON *gpus = cJSON_CreateArray();
    if (!gpus)
        return NULL;
    char smi[PATH_MAX];
    if (tsr_adapter_which("nvidia-smi", smi, sizeof smi) != 0)
        return gpus;
    char path_env[PATH_MAX + 8];
    const char *path = getenv("PATH");
    snprintf(path_env, sizeof path_env, "PATH=%s", path ? path : "/usr/bin:/bin");
    char *argv[] = {smi, "--query-gpu=name,memory.total", "--format=csv,noheader,nounits",
                    NULL};
    char *envp[] = {path_env, "LANG=C", NULL};
    char err[256];
    cJSON *found = cJSON_CreateArray();
    if (!found)
        return gpus;
    int st = 0;
    int rc = tsr_probe_run(argv, envp, "/", TSR_PROBE_GPU_TIMEOUT_MS, s_on_line, found,
                           &st, NULL, err, sizeof err);
    if (rc == TSR_ENOTFOUND || rc == TSR_EIO || rc == TSR_ENOMEM) {
        tsr_log(TSR_LOG_WARN, S_LOG, "cannot run nvidia-smi: %s", err);
        cJSON_Delete(found);
        return gpus;
    }
    if (rc != 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        tsr_log(TSR_LOG_WARN, S_LOG, "nvidia-smi %s; no GPUs announced",
                rc == 0 ? "failed" : "did not answer in time");
        cJSON_Delete(found);
        return gpus;
    }
    cJSON_Delete(gpus);
    return found;
}
