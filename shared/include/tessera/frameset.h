/*
 * frameset.h: parsing frame sets such as "1-240", "1-100x5", "1,4,9-12".
 *
 * Grammar: items separated by commas; an item is N, N-M or N-MxS (step S>0),
 * with optional spaces around items. Frames may be negative ("-5--1").
 * The result is sorted and without duplicates. A set that parses to nothing,
 * a reversed range, a zero step, a frame number outside
 * TSR_FRAME_MIN..TSR_FRAME_MAX, a step wider than that range or more than
 * TSR_FRAMESET_MAX frames is refused. The frame range is the one every
 * worker accepts in a task, so a set that parses is one the farm can
 * render: a job is refused at submit, not by each of its tasks.
 */
#ifndef TESSERA_FRAMESET_H
#define TESSERA_FRAMESET_H

#include <stddef.h>

#define TSR_FRAMESET_MAX 1000000 /* most frames in one job */
#define TSR_FRAME_MIN (-1000000)  /* lowest frame number (a worker's too) */
#define TSR_FRAME_MAX 10000000    /* highest frame number (a worker's too) */

/*
 * Parses spec. On success *frames (malloc'd, caller owns) holds *count > 0
 * sorted unique frame numbers. On failure err holds a one-line reason that
 * names the offending item. Returns 0, TSR_EFRAMES, TSR_ELIMIT, TSR_ENOMEM.
 */
int tsr_frameset_parse(const char *spec, int **frames, size_t *count, char *err,
                       size_t errlen);

#endif
