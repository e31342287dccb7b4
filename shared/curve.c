/*
 * curve.c: key files and CURVE socket options (curve.h).
 *
 * Key files come from people's home folders and from folders an operator
 * fills by hand, so the reader is strict about what it accepts (a known
 * field name, a 40-character Z85 value that decodes, a bounded size) and
 * says exactly what is wrong and where. A secret key is read through one
 * open file descriptor, whose mode is checked with fstat, so the file that
 * was checked is the file that was read.
 */
#include "tessera/curve.h"
#include "tessera/error.h"
#include "tessera/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

static void s_err(char *err, size_t errlen, const char *fmt, const char *a, const char *b)
{
    if (err && errlen)
        snprintf(err, errlen, fmt, a, b);
}

int tsr_key_name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > TSR_KEY_NAME_MAX || name[0] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

int tsr_key_name_of(const char *path, char name[TSR_KEY_NAME_MAX + 1])
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(base);
    if (n > 4 && (strcmp(base + n - 4, ".key") == 0 || strcmp(base + n - 4, ".pub") == 0))
        n -= 4;
    if (n == 0 || n > TSR_KEY_NAME_MAX)
        return TSR_EINVAL;
    memcpy(name, base, n);
    name[n] = '\0';
    return tsr_key_name_ok(name) ? 0 : TSR_EINVAL;
}

/* A Z85 key: exactly 40 characters that decode to 32 bytes. */
static int s_z85_ok(const char *s, size_t len)
{
    if (len != TSR_KEY_Z85 - 1)
        return 0;
    char copy[TSR_KEY_Z85];
    memcpy(copy, s, len);
    copy[len] = '\0';
    uint8_t bin[32];
    return zmq_z85_decode(bin, copy) != NULL;
}

/* Reads an open key file (at most TSR_KEY_FILE_MAX bytes) into buf. */
static int s_read_fd(int fd, const char *path, char *buf, size_t size, char *err,
                     size_t errlen)
{
    size_t got = 0;
    for (;;) {
        ssize_t n = read(fd, buf + got, size - 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            s_err(err, errlen, "cannot read '%s': %s", path, strerror(errno));
            return TSR_EIO;
        }
        if (n == 0)
            break;
        got += (size_t)n;
        if (got == size - 1) {
            s_err(err, errlen, "'%s' is not a key file (larger than %s bytes)", path,
                  "4096");
            return TSR_EINVAL;
        }
    }
    buf[got] = '\0';
    if (memchr(buf, '\0', got)) {
        s_err(err, errlen, "'%s' is not a key file (it holds a NUL byte)", path, "");
        return TSR_EINVAL;
    }
    return 0;
}

/*
 * Parses key file text: "public = Z85" and "secret = Z85" lines (either may
 * be wanted or not: sec NULL means a secret line is refused), comments, and
 * when bare_ok a line that is only a Z85 key (the public one).
 */
static int s_parse(const char *path, char *text, char pub[TSR_KEY_Z85],
                   char sec[TSR_KEY_Z85], int bare_ok, char *err, size_t errlen)
{
    pub[0] = '\0';
    if (sec)
        sec[0] = '\0';
    int lineno = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        lineno++;
        size_t len = strlen(line);
        while (len && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
            line[--len] = '\0';
        while (*line == ' ' || *line == '\t')
            line++, len--;
        if (len == 0 || line[0] == '#')
            continue;
        char where[64];
        snprintf(where, sizeof where, "%d", lineno);
        /* Z85 has '=' among its characters: a field is a word of letters
         * and dashes, then '='; anything else is a bare key. */
        const char *value = line;
        char *field = NULL;
        size_t w = strspn(line, "abcdefghijklmnopqrstuvwxyz-");
        size_t sp = w + strspn(line + w, " \t");
        if (w > 0 && line[sp] == '=' && !(bare_ok && s_z85_ok(line, len))) {
            line[w] = '\0';
            field = line;
            value = line + sp + 1;
            while (*value == ' ' || *value == '\t')
                value++;
            if (value[0] == '"' && strlen(value) >= 2 && value[strlen(value) - 1] == '"') {
                ((char *)value)[strlen(value) - 1] = '\0';
                value++;
            }
        } else if (!bare_ok) {
            s_err(err, errlen, "'%s' line %s: expected 'public = KEY' or 'secret = KEY'",
                  path, where);
            return TSR_EINVAL;
        }
        char *dest;
        if (!field || strcmp(field, "public") == 0 || strcmp(field, "public-key") == 0) {
            dest = pub;
        } else if (strcmp(field, "secret") == 0 || strcmp(field, "secret-key") == 0) {
            if (!sec) {
                s_err(err, errlen, "'%s' line %s: a secret key does not belong in a "
                                   "public key file", path, where);
                return TSR_EINVAL;
            }
            dest = sec;
        } else {
            s_err(err, errlen, "'%s' line %s: unknown field (expected public or secret)",
                  path, where);
            return TSR_EINVAL;
        }
        if (!s_z85_ok(value, strlen(value))) {
            s_err(err, errlen, "'%s' line %s: not a 40-character Z85 key", path, where);
            return TSR_EINVAL;
        }
        if (dest[0]) {
            s_err(err, errlen, "'%s' line %s: the key is given twice", path, where);
            return TSR_EINVAL;
        }
        memcpy(dest, value, TSR_KEY_Z85);
    }
    if (!pub[0] && !(sec && sec[0])) {
        s_err(err, errlen, "'%s' holds no key", path, "");
        return TSR_EINVAL;
    }
    return 0;
}

static int s_open(const char *path, struct stat *st, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        s_err(err, errlen, "cannot open key file '%s': %s", path, strerror(errno));
        return errno == ENOENT ? TSR_ENOTFOUND : TSR_EIO;
    }
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
        s_err(err, errlen, "'%s' is not a regular file", path, "");
        close(fd);
        return TSR_EINVAL;
    }
    return fd;
}

int tsr_key_load_secret(const char *path, char pub[TSR_KEY_Z85], char sec[TSR_KEY_Z85],
                        char *err, size_t errlen)
{
    struct stat st;
    int fd = s_open(path, &st, err, errlen);
    if (fd < 0)
        return fd;
    if (st.st_mode & 077) {
        char mode[8];
        snprintf(mode, sizeof mode, "%04o", (unsigned)(st.st_mode & 07777));
        s_err(err, errlen, "secret key '%s' is open to others (mode %s); chmod 600 it",
              path, mode);
        close(fd);
        return TSR_EINVAL;
    }
    char text[TSR_KEY_FILE_MAX + 1];
    int rc = s_read_fd(fd, path, text, sizeof text, err, errlen);
    close(fd);
    if (rc != 0)
        return rc;
    rc = s_parse(path, text, pub, sec, 0, err, errlen);
    memset(text, 0, sizeof text); /* no copy of the secret left on the stack */
    if (rc != 0)
        return rc;
    if (!sec[0]) {
        s_err(err, errlen, "'%s' holds no secret key (is it the .pub file?)", path, "");
        return TSR_EINVAL;
    }
    char derived[TSR_KEY_Z85];
    if (zmq_curve_public(derived, sec) != 0) {
        s_err(err, errlen, "'%s': cannot derive the public key", path, "");
        return TSR_EINVAL;
    }
    if (pub[0] && strcmp(derived, pub) != 0) {
        s_err(err, errlen, "'%s': its public and secret keys do not belong together", path,
              "");
        return TSR_EINVAL;
    }
    memcpy(pub, derived, TSR_KEY_Z85);
    return 0;
}

int tsr_key_load_public(const char *path, char pub[TSR_KEY_Z85], char *err, size_t errlen)
{
    struct stat st;
    int fd = s_open(path, &st, err, errlen);
    if (fd < 0)
        return fd;
    char text[TSR_KEY_FILE_MAX + 1];
    int rc = s_read_fd(fd, path, text, sizeof text, err, errlen);
    close(fd);
    if (rc != 0)
        return rc;
    /* A .key file given where a public key is wanted is read for its public
     * line only; its secret line is skipped, not an error. */
    char sec[TSR_KEY_Z85];
    rc = s_parse(path, text, pub, sec, 1, err, errlen);
    memset(text, 0, sizeof text);
    memset(sec, 0, sizeof sec);
    if (rc == 0 && !pub[0]) {
        s_err(err, errlen, "'%s' holds no public key", path, "");
        rc = TSR_EINVAL;
    }
    return rc;
}

/* Writes text to a new file of the given mode; fails if it exists. */
static int s_write_new(const char *path, mode_t mode, const char *text, char *err,
                       size_t errlen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) {
        s_err(err, errlen, errno == EEXIST ? "'%s' exists already%s" : "cannot create '%s': %s",
              path, errno == EEXIST ? "; remove it or choose another name" : strerror(errno));
        return errno == EEXIST ? TSR_EEXIST : TSR_EIO;
    }
    /* The umask may have cleared bits we want, never added ones: set the
     * mode exactly. */
    int rc = fchmod(fd, mode) == 0 ? 0 : TSR_EIO;
    size_t len = strlen(text), put = 0;
    while (rc == 0 && put < len) {
        ssize_t n = write(fd, text + put, len - put);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            rc = TSR_EIO;
        else
            put += (size_t)n;
    }
    if (rc == 0 && fsync(fd) != 0)
        rc = TSR_EIO;
    if (close(fd) != 0)
        rc = TSR_EIO;
    if (rc != 0) {
        s_err(err, errlen, "cannot write '%s': %s", path, strerror(errno));
        unlink(path);
    }
    return rc;
}

int tsr_key_generate(const char *base, char *err, size_t errlen)
{
    char name[TSR_KEY_NAME_MAX + 1];
    const char *last = strrchr(base, '/');
    last = last ? last + 1 : base;
    if (strlen(last) > TSR_KEY_NAME_MAX || tsr_key_name_of(base, name) != 0 ||
        strcmp(name, last) != 0) {
        s_err(err, errlen, "'%s' is not a key name (1 to 48 of A-Z a-z 0-9 . _ -, "
                           "not starting with a dot)%s", last, "");
        return TSR_EINVAL;
    }
    char keypath[4096], pubpath[4096];
    if (tsr_fmt(keypath, sizeof keypath, "%s.key", base) != 0 ||
        tsr_fmt(pubpath, sizeof pubpath, "%s.pub", base) != 0) {
        s_err(err, errlen, "path '%s' is too long%s", base, "");
        return TSR_EINVAL;
    }
    if (tsr_path_exists(keypath) || tsr_path_exists(pubpath)) {
        s_err(err, errlen, "'%s' exists already; remove it or choose another name",
              tsr_path_exists(keypath) ? keypath : pubpath, "");
        return TSR_EEXIST;
    }
    char pub[TSR_KEY_Z85], sec[TSR_KEY_Z85];
    if (zmq_curve_keypair(pub, sec) != 0) {
        s_err(err, errlen, "cannot make a key pair: %s%s", zmq_strerror(zmq_errno()), "");
        return TSR_EIO;
    }
    char text[512];
    snprintf(text, sizeof text,
             "# tessera secret key '%s' (CURVE). Keep it private: whoever holds this\n"
             "# file acts as '%s'. Give out %s.pub instead.\n"
             "public = %s\nsecret = %s\n",
             name, name, name, pub, sec);
    int rc = s_write_new(keypath, 0600, text, err, errlen);
    memset(text, 0, sizeof text);
    memset(sec, 0, sizeof sec);
    if (rc != 0)
        return rc;
    snprintf(text, sizeof text, "# tessera public key '%s' (CURVE)\npublic = %s\n", name,
             pub);
    rc = s_write_new(pubpath, 0644, text, err, errlen);
    if (rc != 0)
        unlink(keypath);
    return rc;
}

int tsr_curve_server(void *sock, const char *sec, const char *domain)
{
    int one = 1;
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, sec, TSR_KEY_Z85 - 1) != 0 ||
        zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, domain, strlen(domain)) != 0)
        return TSR_EZMQ;
    return 0;
}

int tsr_curve_client(void *sock, const char *pub, const char *sec, const char *server_pub)
{
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, server_pub, TSR_KEY_Z85 - 1) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, pub, TSR_KEY_Z85 - 1) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, sec, TSR_KEY_Z85 - 1) != 0)
        return TSR_EZMQ;
    return 0;
}

/* True when s is a dotted IPv4 address of four numbers 0..255. */
static int s_ipv4(const char *s, size_t len, unsigned char out[4])
{
    int part = 0;
    unsigned v = 0, digits = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || s[i] == '.') {
            if (digits == 0 || v > 255 || part > 3)
                return 0;
            out[part++] = (unsigned char)v;
            v = digits = 0;
        } else if (s[i] >= '0' && s[i] <= '9' && digits < 3) {
            v = v * 10 + (unsigned)(s[i] - '0');
            digits++;
        } else {
            return 0;
        }
    }
    return part == 4;
}

int tsr_endpoint_is_loopback(const char *ep)
{
    if (!ep)
        return 0;
    if (strncmp(ep, "ipc://", 6) == 0 || strncmp(ep, "inproc://", 9) == 0)
        return 1;
    if (strncmp(ep, "tcp://", 6) != 0)
        return 0;
    const char *host = ep + 6;
    const char *colon = strrchr(host, ':');
    if (!colon || colon == host)
        return 0;
    size_t len = (size_t)(colon - host);
    if (len == 9 && strncmp(host, "localhost", 9) == 0)
        return 1;
    if (len == 5 && strncmp(host, "[::1]", 5) == 0)
        return 1;
    unsigned char ip[4];
    return s_ipv4(host, len, ip) && ip[0] == 127;
}
