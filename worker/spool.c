/*
 * spool.c: results on disk until acknowledged (spool.h).
 *
 * The rename of the finished folder is the commit point: after it, a crash
 * or a kill -9 leaves a result that the next start re-sends; before it, the
 * attempt simply never finished, and the master's timeout requeues it.
 *
 * Nothing here is fsynced, on purpose: the spool only has to outlive the
 * worker process (a restart, a master outage), which the page cache does.
 * A power loss takes the worker's heartbeats with it, so the master
 * requeues its attempts and they are rendered again: nothing the master
 * acknowledged is lost, and each task costs no fsync on the worker.
 */
#include "spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tessera/error.h"
#include "tessera/hash.h"
#include "tessera/log.h"
#include "tessera/proto.h"
#include "tessera/util.h"

#define S_LOG "spool"
#define S_RECORD "result.json"

struct tsr_spool {
    char dir[PATH_MAX]; /* the spool folder */
};

int tsr_spool_open(const char *dir, struct tsr_spool **out)
{
    *out = NULL;
    struct tsr_spool *s = calloc(1, sizeof *s);
    if (!s)
        return TSR_ENOMEM;
    if (tsr_fmt(s->dir, sizeof s->dir, "%s", dir) != 0) {
        free(s);
        return TSR_ELIMIT;
    }
    if (tsr_mkdir_p(dir) != 0) {
        free(s);
        return TSR_EIO;
    }
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            char path[PATH_MAX];
            if (strncmp(e->d_name, ".tmp-", 5) == 0 &&
                tsr_fmt(path, sizeof path, "%s/%s", dir, e->d_name) == 0)
                tsr_rm_rf(path);
        }
        closedir(d);
    }
    *out = s;
    return 0;
}

void tsr_spool_destroy(struct tsr_spool **sp)
{
    if (!sp || !*sp)
        return;
    free(*sp);
    *sp = NULL;
}

int tsr_spool_path(const struct tsr_spool *s, int64_t attempt, const char *name,
                   char *buf, size_t size)
{
    if (name)
        return tsr_fmt(buf, size, "%s/%" PRId64 "/%s", s->dir, attempt, name);
    return tsr_fmt(buf, size, "%s/%" PRId64, s->dir, attempt);
}

static int s_write_record(const char *path, const cJSON *record)
{
    char *text = cJSON_PrintUnformatted(record);
    if (!text)
        return TSR_ENOMEM;
    int rc = tsr_write_file_replace(path, text, strlen(text));
    free(text);
    return rc;
}

int tsr_spool_commit(struct tsr_spool *s, int64_t attempt, const cJSON *record,
                     const char *const *paths, const char *const *names, size_t nfiles)
{
    char tmp[PATH_MAX], dst[PATH_MAX], path[PATH_MAX];
    if (tsr_fmt(tmp, sizeof tmp, "%s/.tmp-%" PRId64, s->dir, attempt) != 0 ||
        tsr_spool_path(s, attempt, NULL, dst, sizeof dst) != 0)
        return TSR_ELIMIT;
    if (tsr_path_exists(dst))
        return TSR_EEXIST;
    tsr_rm_rf(tmp);
    if (mkdir(tmp, 0755) != 0)
        return errno == ENOSPC ? TSR_EFULL : TSR_EIO;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < nfiles; i++) {
        if (tsr_fmt(path, sizeof path, "%s/%s", tmp, names[i]) != 0)
            rc = TSR_ELIMIT;
        else if (rename(paths[i], path) != 0)
            rc = TSR_EIO;
    }
    if (rc == 0 && tsr_fmt(path, sizeof path, "%s/%s", tmp, S_RECORD) != 0)
        rc = TSR_ELIMIT;
    if (rc == 0)
        rc = s_write_record(path, record);
    if (rc == 0 && rename(tmp, dst) != 0)
        rc = TSR_EIO;
    if (rc != 0) {
        tsr_rm_rf(tmp);
        return rc;
    }
    return 0;
}

int tsr_spool_rewrite(struct tsr_spool *s, int64_t attempt, const cJSON *record)
{
    char path[PATH_MAX];
    if (tsr_spool_path(s, attempt, S_RECORD, path, sizeof path) != 0)
        return TSR_ELIMIT;
    if (!tsr_path_exists(path))
        return TSR_ENOTFOUND;
    return s_write_record(path, record);
}

static int s_cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Parses a folder name that is a plain decimal attempt id. */
static int s_attempt_name(const char *name, int64_t *out)
{
    if (!name[0] || strlen(name) > 16)
        return 0;
    int64_t v = 0;
    for (const char *p = name; *p; p++) {
        if (*p < '0' || *p > '9')
            return 0;
        v = v * 10 + (*p - '0');
    }
    if (name[0] == '0' && name[1])
        return 0; /* "007" would be a second name for 7 */
    *out = v;
    return 1;
}

int tsr_spool_list(struct tsr_spool *s, int64_t **attempts, size_t *n)
{
    *attempts = NULL;
    *n = 0;
    DIR *d = opendir(s->dir);
    if (!d)
        return TSR_EIO;
    size_t cap = 0;
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int64_t id;
        if (!s_attempt_name(e->d_name, &id))
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            int64_t *v = realloc(*attempts, cap * sizeof *v);
            if (!v) {
                rc = TSR_ENOMEM;
                break;
            }
            *attempts = v;
        }
        (*attempts)[(*n)++] = id;
    }
    closedir(d);
    if (rc != 0) {
        free(*attempts);
        *attempts = NULL;
        *n = 0;
        return rc;
    }
    if (*n)
        qsort(*attempts, *n, sizeof **attempts, s_cmp);
    return 0;
}

static int s_bad(char *err, size_t errlen, int64_t attempt, const char *what)
{
    snprintf(err, errlen, "spooled result %" PRId64 ": %s", attempt, what);
    return TSR_EPROTO;
}

/* A plain file name: no folder part, not hidden, not the record. */
static int s_plain_name(const char *name)
{
    return name[0] && name[0] != '.' && !strchr(name, '/') && strlen(name) < 256 &&
           strcmp(name, S_RECORD) != 0;
}

int tsr_spool_load(struct tsr_spool *s, int64_t attempt, cJSON **record, char *err,
                   size_t errlen)
{
    *record = NULL;
    char path[PATH_MAX];
    if (tsr_spool_path(s, attempt, S_RECORD, path, sizeof path) != 0)
        return TSR_ELIMIT;
    char *text = NULL;
    size_t len = 0;
    int rc = tsr_read_file(path, TSR_SPOOL_MAX_RECORD, &text, &len);
    if (rc == TSR_ELIMIT)
        return s_bad(err, errlen, attempt, "result.json is too large");
    if (rc != 0) {
        snprintf(err, errlen, "spooled result %" PRId64 ": cannot read result.json: %s",
                 attempt, tsr_strerror(rc));
        return rc;
    }
    cJSON *r = cJSON_ParseWithLength(text, len);
    free(text);
    if (!r || !cJSON_IsObject(r)) {
        cJSON_Delete(r);
        return s_bad(err, errlen, attempt, "result.json is not a JSON object");
    }
    int64_t id = -1;
    int ok = -1;
    char why[256];
    rc = tsr_hdr_int(r, "attempt", 0, INT64_C(1) << 53, &id, why, sizeof why);
    if (rc == 0)
        rc = tsr_hdr_bool_opt(r, "ok", &ok, why, sizeof why);
    if (rc != 0 || id != attempt || ok < 0) {
        cJSON_Delete(r);
        return s_bad(err, errlen, attempt, rc ? why : "attempt or ok missing or wrong");
    }
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(r, "files");
    if (files && !cJSON_IsArray(files)) {
        cJSON_Delete(r);
        return s_bad(err, errlen, attempt, "files is not an array");
    }
    const cJSON *f;
    cJSON_ArrayForEach(f, files)
    {
        const char *hash = NULL, *name = NULL;
        int64_t frame = 0, size = 0;
        struct stat st;
        if (!cJSON_IsObject(f) || tsr_hdr_hash(f, "hash", &hash, why, sizeof why) != 0 ||
            tsr_hdr_str(f, "name", 255, &name, why, sizeof why) != 0 ||
            tsr_hdr_int(f, "frame", -(INT64_C(1) << 53), INT64_C(1) << 53, &frame, why,
                        sizeof why) != 0 ||
            tsr_hdr_int(f, "size", 0, INT64_C(1) << 53, &size, why, sizeof why) != 0) {
            cJSON_Delete(r);
            return s_bad(err, errlen, attempt, "a file entry is malformed");
        }
        if (!s_plain_name(name) ||
            tsr_spool_path(s, attempt, name, path, sizeof path) != 0 ||
            lstat(path, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size != size) {
            cJSON_Delete(r);
            return s_bad(err, errlen, attempt, "a file it names is missing or changed");
        }
    }
    *record = r;
    return 0;
}

int tsr_spool_remove(struct tsr_spool *s, int64_t attempt)
{
    char path[PATH_MAX];
    if (tsr_spool_path(s, attempt, NULL, path, sizeof path) != 0)
        return TSR_ELIMIT;
    return tsr_rm_rf(path);
}
