/*
 * redact.c: the master's own paths never leave it.
 *
 * Errors go to studios and workers as text (ERROR replies, a task's or a
 * job's reason in `tessera status`, events), and the libraries under the
 * master (OpenImageIO, libarchive, the C library) name the files they
 * failed on. A studio has no business with the master's folders, and a
 * hostile one learns from them where to aim. So every reason that crosses
 * the pool's boundary has its paths replaced with what they stand for
 * ("piece 1f3a...", "archive 9c0d...", "the upload"), and ERROR replies get a
 * last pass that replaces whatever still names the data folder.
 */
#include "master.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Replaces every occurrence of from in text (size bytes) with to, the
 * quoted form ('from') first so that no stray quotes remain. */
void master_redact(char *text, size_t size, const char *from, const char *to)
{
    if (!text || !from || !from[0] || !to || size == 0)
        return;
    char quoted[PATH_MAX + 8];
    snprintf(quoted, sizeof quoted, "'%s'", from);
    const char *forms[2] = {quoted, from};
    for (int f = 0; f < 2; f++) {
        size_t flen = strlen(forms[f]), tlen = strlen(to);
        char *at = text;
        while ((at = strstr(at, forms[f])) != NULL) {
            size_t off = (size_t)(at - text);
            char *rest = strdup(at + flen);
            if (!rest) {
                /* Out of memory: cut the text here rather than let the
                 * path through. */
                *at = '\0';
                return;
            }
            snprintf(at, size - off, "%s%s", to, rest);
            free(rest);
            at = off + tlen < size ? text + off + tlen : text + size - 1;
        }
    }
}

/* Replaces each path under dir ("dir/..." up to the next blank, quote,
 * colon or comma, with its quotes) with a neutral word. */
static void s_redact_under(char *text, size_t size, const char *dir)
{
    char prefix[PATH_MAX + 2];
    if (!dir || !dir[0] ||
        snprintf(prefix, sizeof prefix, "%s/", dir) >= (int)sizeof prefix)
        return;
    static const char word[] = "a file of the master";
    char *at = text;
    while ((at = strstr(at, prefix)) != NULL) {
        char *start = at, *end = at + strlen(prefix);
        while (*end && !strchr(" \t'\":,", *end))
            end++;
        if (start > text && start[-1] == '\'' && *end == '\'') {
            start--;
            end++;
        }
        size_t off = (size_t)(start - text);
        char *rest = strdup(end);
        if (!rest) {
            *start = '\0';
            return;
        }
        snprintf(start, size - off, "%s%s", word, rest);
        free(rest);
        at =
            off + sizeof word - 1 < size ? text + off + sizeof word - 1 : text + size - 1;
    }
}

void master_redact_data_dir(const char *data_dir, char *text, size_t size)
{
    if (!text || size == 0)
        return;
    char real[PATH_MAX];
    if (data_dir && realpath(data_dir, real))
        s_redact_under(text, size, real);
    s_redact_under(text, size, data_dir);
}
