/*
 * runner.h: renderer child processes.
 *
 * A child runs in its own process group, in its task folder, with stdin on
 * /dev/null and stdout and stderr joined into one non-blocking pipe that the
 * worker's poll loop watches. The runner keeps the last TSR_CHILD_LOG bytes
 * of that output (a ring) and hands complete lines to a callback, which is
 * how progress is read. Killing is always of the whole group, so a shell's
 * children and a renderer's helpers die with it: SIGTERM first, SIGKILL
 * TSR_CHILD_GRACE_MS later. When the group leader exits, whatever it left
 * behind in its group is killed too.
 */
#ifndef TESSERA_WORKER_RUNNER_H
#define TESSERA_WORKER_RUNNER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define TSR_CHILD_LOG (64 * 1024) /* bytes of output kept */
#define TSR_CHILD_LINE 1024       /* longest line handed to the callback */
#define TSR_CHILD_GRACE_MS 2000   /* SIGTERM to SIGKILL */

struct tsr_child;

/* Called with each complete output line (without its newline; a longer line
 * is cut at TSR_CHILD_LINE - 1 bytes). line is borrowed. */
typedef void (*tsr_child_line_fn)(void *ctx, const char *line);

/*
 * Starts argv[0] (an absolute path) with exactly the environment envp, in
 * the folder cwd. A failure to exec shows up as exit status 127 with the
 * reason in the log, as in a shell. *out is the caller's (tsr_child_destroy).
 * Returns 0, TSR_EIO (pipe or fork failed; err says why), TSR_ENOMEM.
 */
int tsr_child_spawn(char *const argv[], char *const envp[], const char *cwd,
                    struct tsr_child **out, char *err, size_t errlen);

/* Writes the last non-empty line of log (a tsr_child_log text; NULL reads
 * as empty), without its line end and cut to fit, into buf: the renderer's
 * last words, for an error message. */
void tsr_child_last_line(const char *log, char *buf, size_t size);

/* The read end of the output pipe to poll, or -1 once it was closed. */
int tsr_child_fd(const struct tsr_child *c);

/* Reads what the pipe holds now (bounded per call), keeps it in the log
 * ring and calls fn for every complete line. Never blocks. */
void tsr_child_read(struct tsr_child *c, tsr_child_line_fn fn, void *ctx);

/*
 * Checks without blocking whether the child has exited. When it has: kills
 * what is left of its process group, reads the rest of its output, reaps it
 * and returns 1 with its wait status in *status. Returns 0 while it runs.
 */
int tsr_child_reap(struct tsr_child *c, tsr_child_line_fn fn, void *ctx, int *status);

/* Sends SIGTERM to the child's group and arms SIGKILL for
 * TSR_CHILD_GRACE_MS later (tsr_child_tick sends it). Idempotent. */
void tsr_child_terminate(struct tsr_child *c, int64_t now_ms);

/* Sends the armed SIGKILL once due. Returns the time of the next thing it
 * will do, or INT64_MAX. */
int64_t tsr_child_tick(struct tsr_child *c, int64_t now_ms);

/* Milliseconds the child ran (until now, or until it was reaped). */
int64_t tsr_child_elapsed_ms(const struct tsr_child *c, int64_t now_ms);

/* The kept output as text fit for JSON: valid UTF-8, control characters
 * other than newline and tab replaced by '?'. malloc'd, caller owns; NULL
 * when out of memory. */
char *tsr_child_log(const struct tsr_child *c);

/* Kills the group with SIGKILL if the child still runs, reaps it, closes
 * the pipe and frees c; null-safe, sets *c to NULL. */
void tsr_child_destroy(struct tsr_child **c);

/* Makes text fit for JSON in place, as tsr_child_log does: invalid UTF-8
 * bytes and control characters other than '\n' and '\t' become '?'. */
void tsr_text_sanitize(char *text, size_t len);

#endif
