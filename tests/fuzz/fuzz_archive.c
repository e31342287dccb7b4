/*
 * fuzz_archive.c: libFuzzer target for scene archives: the check the master
 * runs on every upload (tsr_archive_check), then, for what passes, the read
 * of the scene file and the extraction a worker does (tsr_archive_extract).
 *
 * The input is written to a file in a private folder. Limits are small (a
 * few MiB expanded) so that a bomb costs the fuzzer milliseconds, as it
 * costs the master a refusal. Beyond memory errors the target checks what
 * archive.h promises, and aborts when it is broken:
 *   - extraction writes nothing beside its destination (a canary folder
 *     next to it stays empty, and no other name appears);
 *   - the extracted tree holds only folders, regular files and symbolic
 *     links, no setuid/setgid bits, no link whose target leaves the tree
 *     (as written, or once resolved through other links), and no file
 *     hard-linked to anything outside it.
 */
#define _GNU_SOURCE
#include "tessera/archive.h"
#include "tessera/util.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char s_work[256], s_in[300], s_parent[300], s_dest[320], s_canary[320];
static char s_real_dest[PATH_MAX];

/* Regular files seen in the tree: inode and link count. */
static struct {
    ino_t ino;
    nlink_t nlink;
} s_files[4096];
static size_t s_nfiles;

static void s_init(void)
{
    if (s_work[0])
        return;
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(s_work, sizeof s_work, "%s/fuzz-archive.XXXXXX", tmp);
    if (!mkdtemp(s_work))
        abort();
    snprintf(s_in, sizeof s_in, "%s/in.arc", s_work);
    snprintf(s_parent, sizeof s_parent, "%s/x", s_work);
    snprintf(s_dest, sizeof s_dest, "%s/dest", s_parent);
    snprintf(s_canary, sizeof s_canary, "%s/canary", s_work);
    if (mkdir(s_parent, 0755) != 0 || mkdir(s_canary, 0755) != 0)
        abort();
}

/* Number of entries in a folder other than "." and "..". */
static int s_count_entries(const char *dir, const char *except)
{
    DIR *d = opendir(dir);
    if (!d)
        abort();
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
            !(except && strcmp(e->d_name, except) == 0))
            n++;
    closedir(d);
    return n;
}

/* Checks the tree under dir (rel is its path below the destination, depth
 * its number of components) against archive.h's promises. */
static void s_walk(const char *dir, int depth)
{
    DIR *d = opendir(dir);
    if (!d)
        abort();
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char path[PATH_MAX];
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path)
            abort();
        struct stat st;
        if (lstat(path, &st) != 0)
            abort();
        if (st.st_mode & (S_ISUID | S_ISGID))
            abort();
        if (S_ISDIR(st.st_mode)) {
            s_walk(path, depth + 1);
        } else if (S_ISLNK(st.st_mode)) {
            char target[PATH_MAX];
            ssize_t n = readlink(path, target, sizeof target - 1);
            if (n < 0)
                abort();
            target[n] = '\0';
            if (target[0] == '/')
                abort();
            char real[PATH_MAX];
            if (realpath(path, real) &&
                (strncmp(real, s_real_dest, strlen(s_real_dest)) != 0 ||
                 (real[strlen(s_real_dest)] && real[strlen(s_real_dest)] != '/')))
                abort(); /* resolves, through other links, outside the tree */
            /* Textually: the target may never climb above the root. (The
             * check resolves chains through other links; a target that
             * stays inside textually is what the extraction must keep.) */
            int level = depth;
            for (char *c = strtok(target, "/"); c; c = strtok(NULL, "/")) {
                if (!strcmp(c, ".."))
                    level--;
                else if (strcmp(c, "."))
                    level++;
                if (level < 0)
                    abort();
            }
        } else if (S_ISREG(st.st_mode)) {
            if (s_nfiles < sizeof s_files / sizeof s_files[0]) {
                s_files[s_nfiles].ino = st.st_ino;
                s_files[s_nfiles++].nlink = st.st_nlink;
            }
        } else {
            abort(); /* a device, FIFO or socket */
        }
    }
    closedir(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    s_init();
    FILE *f = fopen(s_in, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0)
        abort();
    struct tsr_archive_limits lim;
    tsr_archive_limits_default(&lim);
    lim.max_entries = 2000;
    lim.max_total_size = 4 << 20;
    lim.max_entry_size = 2 << 20;
    lim.max_ratio = 200;
    struct tsr_archive_report rep;
    char err[1024];
    if (tsr_archive_check(s_in, &lim, NULL, &rep, err, sizeof err) != 0) {
        if (!err[0] || strchr(err, '\n'))
            abort(); /* every refusal says why, in one line */
        return 0;
    }
    char *text = NULL;
    size_t len = 0;
    if (tsr_archive_read_file(s_in, "scene.json", 1 << 20, &text, &len, err, sizeof err) == 0)
        free(text);
    int rc = tsr_archive_extract(s_in, &lim, s_dest, err, sizeof err);
    /* Nothing beside the destination, before or after it is removed. */
    if (s_count_entries(s_canary, NULL) != 0 || s_count_entries(s_work, "x") != 2 ||
        s_count_entries(s_parent, "dest") != 0)
        abort();
    if (rc == 0) {
        if (!realpath(s_dest, s_real_dest))
            abort();
        s_nfiles = 0;
        s_walk(s_dest, 0);
        /* Every link of every file is inside the tree. */
        for (size_t i = 0; i < s_nfiles && s_nfiles < sizeof s_files / sizeof s_files[0];
             i++) {
            nlink_t seen = 0;
            for (size_t k = 0; k < s_nfiles; k++)
                seen += s_files[k].ino == s_files[i].ino;
            if (seen != s_files[i].nlink)
                abort();
        }
    }
    tsr_rm_rf(s_dest);
    return 0;
}
