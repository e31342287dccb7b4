/* hash.c: sha256 content hashes of hash.h, through libsodium. */
#include "tessera/hash.h"
#include "tessera/error.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

int tsr_hash_init_library(void)
{
    return sodium_init() < 0 ? TSR_EINVAL : 0;
}

void tsr_hash_begin(struct tsr_hash *h)
{
    crypto_hash_sha256_init(&h->st);
}

void tsr_hash_update(struct tsr_hash *h, const void *data, size_t len)
{
    crypto_hash_sha256_update(&h->st, data, len);
}

void tsr_hash_end(struct tsr_hash *h, char hex[TSR_HASH_HEX])
{
    unsigned char out[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_final(&h->st, out);
    sodium_bin2hex(hex, TSR_HASH_HEX, out, sizeof out);
}

void tsr_hash_buf(const void *data, size_t len, char hex[TSR_HASH_HEX])
{
    struct tsr_hash h;
    tsr_hash_begin(&h);
    tsr_hash_update(&h, data, len);
    tsr_hash_end(&h, hex);
}

int tsr_hash_file(const char *path, char hex[TSR_HASH_HEX], unsigned long long *size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? TSR_ENOTFOUND : TSR_EIO;
    struct tsr_hash h;
    tsr_hash_begin(&h);
    unsigned char buf[1 << 16];
    unsigned long long total = 0;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            close(fd);
            return TSR_EIO;
        }
        if (n == 0)
            break;
        tsr_hash_update(&h, buf, (size_t)n);
        total += (unsigned long long)n;
    }
    close(fd);
    tsr_hash_end(&h, hex);
    if (size)
        *size = total;
    return 0;
}

int tsr_hash_valid(const char *s)
{
    int i = 0;
    for (; s[i]; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return 0;
        if (i >= 64)
            return 0;
    }
    return i == 64;
}
