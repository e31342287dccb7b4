/*
 * log.h: one logging macro for all programs.
 *
 * tsr_log(level, component, fmt, ...) checks the level before evaluating its
 * arguments. Messages are lower case and say what failed on what. Lines go to
 * stderr as "2026-11-23T04:30:00.123Z master  warn  message".
 */
#ifndef TESSERA_LOG_H
#define TESSERA_LOG_H

enum tsr_log_level {
    TSR_LOG_ERROR = 0,
    TSR_LOG_WARN = 1,
    TSR_LOG_INFO = 2,
    TSR_LOG_DEBUG = 3,
};

/* The current threshold; messages above it are dropped unevaluated. */
extern int tsr_log_threshold;

/* Sets the threshold from a name ("error", "warn", "info", "debug");
 * returns 0, or TSR_EINVAL for an unknown name. */
int tsr_log_set_level(const char *name);

void tsr_log_write(int level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define tsr_log(level, component, ...)                                         \
    do {                                                                       \
        if ((level) <= tsr_log_threshold)                                      \
            tsr_log_write((level), (component), __VA_ARGS__);                  \
    } while (0)

#endif
