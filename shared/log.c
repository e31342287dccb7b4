/* log.c: the line format and threshold behind tsr_log() in log.h. */
#include "tessera/log.h"
#include "tessera/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

int tsr_log_threshold = TSR_LOG_INFO;

static const char *const s_names[] = {"error", "warn", "info", "debug"};

int tsr_log_set_level(const char *name)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, s_names[i]) == 0) {
            tsr_log_threshold = i;
            return 0;
        }
    }
    return TSR_EINVAL;
}

void tsr_log_write(int level, const char *component, const char *fmt, ...)
{
    struct timeval tv;
    struct tm tm;
    char stamp[32];
    char line[2048];

    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    if (level < 0)
        level = 0;
    if (level > 3)
        level = 3;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    /* One fprintf per line so that lines of threads do not interleave. */
    fprintf(stderr, "%s.%03ldZ %-7s %-5s %s\n", stamp, (long)(tv.tv_usec / 1000), component,
            s_names[level], line);
}
