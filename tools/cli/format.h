/*
 * format.h: how the CLI shows things to people: column tables, durations,
 * ages, byte counts, and tolerant reads of the master's JSON objects.
 *
 * Display code must never fail on an object that lacks a field it would
 * like to show (an older or newer master); it shows "-" instead. Fields
 * that a command acts on are read with the strict proto.h readers instead.
 */
#ifndef TESSERA_CLI_FORMAT_H
#define TESSERA_CLI_FORMAT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>

struct tsr_table;

/*
 * A table of ncols columns under the given headers (borrowed; copied).
 * Returns NULL when out of memory; the caller owns the table.
 */
struct tsr_table *tsr_table_new(size_t ncols, const char *const *headers);

/* Adds a row of ncols cells (copied; NULL shows as "-"). Cells are cleaned
 * of control characters. Returns 0 or TSR_ENOMEM. */
int tsr_table_add(struct tsr_table *t, const char *const *cells);

/* Prints the headers and rows, columns padded to their widest cell. */
void tsr_table_print(const struct tsr_table *t, FILE *out);

/* Frees the table; null-safe, sets *t to NULL. */
void tsr_table_destroy(struct tsr_table **t);

/* Copies text into buf as one printable line (control characters become
 * spaces): text from the master must not drive the terminal. */
void tsr_fmt_clean(char *buf, size_t size, const char *text);

/* A span of time for people: "0.4s", "12s", "3m05s", "2h07m", "3d04h".
 * Negative or not finite: "-". */
void tsr_fmt_duration(char *buf, size_t size, double seconds);

/* A byte count for people: "512 B", "1.5 KiB", "12.3 MiB", "4.0 GiB". */
void tsr_fmt_bytes(char *buf, size_t size, uint64_t bytes);

/* obj[name] as a number, or dflt when absent or not a number. */
double tsr_json_num(const cJSON *obj, const char *name, double dflt);

/* obj[name] as a string (borrowed), or dflt when absent or not a string. */
const char *tsr_json_str(const cJSON *obj, const char *name, const char *dflt);

/* obj[name] as an object or array (borrowed), or NULL. */
const cJSON *tsr_json_obj(const cJSON *obj, const char *name);

/* True when state ends a job: "done", "failed" or "cancelled". */
int tsr_job_state_final(const char *state);

#endif
