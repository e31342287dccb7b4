/* util.c: clocks and file helpers of util.h. */
#include "tessera/util.h"
#include "tessera/error.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int64_t tsr_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t tsr_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int tsr_fmt(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= size)
        return TSR_ELIMIT;
    return 0;
}

int tsr_mkdir_p(const char *path)
{
    char tmp[4096];
    if (tsr_fmt(tmp, sizeof tmp, "%s", path) != 0)
        return TSR_ELIMIT;
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
            return TSR_EIO;
        *p = '/';
    }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
        return TSR_EIO;
    return 0;
}

int tsr_rm_rf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : TSR_EIO;
    if (!S_ISDIR(st.st_mode))
        return unlink(path) == 0 ? 0 : TSR_EIO;
    DIR *d = opendir(path);
    if (!d)
        return TSR_EIO;
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char child[4096];
        if (tsr_fmt(child, sizeof child, "%s/%s", path, e->d_name) != 0) {
            rc = TSR_ELIMIT;
            continue;
        }
        int r = tsr_rm_rf(child);
        if (r != 0)
            rc = r;
    }
    closedir(d);
    if (rmdir(path) != 0 && rc == 0)
        rc = TSR_EIO;
    return rc;
}

int tsr_read_file(const char *path, size_t max, char **data, size_t *len)
{
    *data = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? TSR_ENOTFOUND : TSR_EIO;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return TSR_EIO;
    }
    if ((uint64_t)st.st_size > max) {
        close(fd);
        return TSR_ELIMIT;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        close(fd);
        return TSR_ENOMEM;
    }
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    buf[got] = '\0';
    *data = buf;
    if (len)
        *len = got;
    return 0;
}

static int s_write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno == ENOSPC || errno == EDQUOT ? TSR_EFULL : TSR_EIO;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int s_write_file(const char *path, const void *data, size_t len, int durable)
{
    char tmp[4096];
    if (tsr_fmt(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) != 0)
        return TSR_ELIMIT;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return errno == ENOSPC ? TSR_EFULL : TSR_EIO;
    int rc = s_write_all(fd, data, len);
    if (rc == 0 && durable && fsync(fd) != 0)
        rc = TSR_EIO;
    if (close(fd) != 0 && rc == 0)
        rc = TSR_EIO;
    if (rc == 0 && rename(tmp, path) != 0)
        rc = TSR_EIO;
    if (rc != 0)
        unlink(tmp);
    return rc;
}

int tsr_write_file_atomic(const char *path, const void *data, size_t len)
{
    return s_write_file(path, data, len, 1);
}

int tsr_write_file_replace(const char *path, const void *data, size_t len)
{
    return s_write_file(path, data, len, 0);
}

int tsr_copy_file(const char *src, const char *dst)
{
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return errno == ENOENT ? TSR_ENOTFOUND : TSR_EIO;
    char tmp[4096];
    if (tsr_fmt(tmp, sizeof tmp, "%s.tmp.%ld", dst, (long)getpid()) != 0) {
        close(in);
        return TSR_ELIMIT;
    }
    int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) {
        close(in);
        return errno == ENOSPC ? TSR_EFULL : TSR_EIO;
    }
    char buf[1 << 16];
    int rc = 0;
    for (;;) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = TSR_EIO;
            break;
        }
        if (n == 0)
            break;
        rc = s_write_all(out, buf, (size_t)n);
        if (rc != 0)
            break;
    }
    close(in);
    if (rc == 0 && fsync(out) != 0)
        rc = TSR_EIO;
    if (close(out) != 0 && rc == 0)
        rc = TSR_EIO;
    if (rc == 0 && rename(tmp, dst) != 0)
        rc = TSR_EIO;
    if (rc != 0)
        unlink(tmp);
    return rc;
}

int tsr_path_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}
