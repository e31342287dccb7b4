/*
 * hash.h: sha256 content hashes (libsodium), as 64 lower-case hex digits.
 * Blobs (scene archives, rendered images) are named by these.
 */
#ifndef TESSERA_HASH_H
#define TESSERA_HASH_H

#include <stddef.h>
#include <sodium.h>

#define TSR_HASH_HEX 65 /* 64 hex digits and a NUL */

/* Streaming hash; plain struct, no allocation. */
struct tsr_hash {
    crypto_hash_sha256_state st; /* libsodium state */
};

/* Calls sodium_init() once; returns 0 or TSR_EINVAL if libsodium fails. */
int tsr_hash_init_library(void);
void tsr_hash_begin(struct tsr_hash *h);
void tsr_hash_update(struct tsr_hash *h, const void *data, size_t len);
void tsr_hash_end(struct tsr_hash *h, char hex[TSR_HASH_HEX]);

/* Hashes a buffer. */
void tsr_hash_buf(const void *data, size_t len, char hex[TSR_HASH_HEX]);

/* Hashes a file; *size receives its length when not NULL.
 * Returns 0, TSR_ENOTFOUND, TSR_EIO. */
int tsr_hash_file(const char *path, char hex[TSR_HASH_HEX], unsigned long long *size);

/* True when s is exactly 64 lower-case hex digits (a safe file name). */
int tsr_hash_valid(const char *s);

#endif
