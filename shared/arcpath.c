/*
 * arcpath.c: the path table and link resolution of arcpath.h.
 *
 * Resolution is lexical but follows the archive's own links at each step,
 * so "a/up/.." where a/up is a link to ".." is seen for what it is on disk:
 * the root's parent. Names that no entry creates are taken as plain names;
 * they will not exist after extraction, so nothing can be followed through
 * them.
 */
#include "arcpath.h"
#include "tessera/error.h"

#include <stdlib.h>
#include <string.h>

const char *tsr_arcpath_quote(const char *name, char out[TSR_ARCPATH_QUOTE + 4])
{
    size_t i = 0;
    for (; name[i] && i < TSR_ARCPATH_QUOTE; i++) {
        unsigned char c = (unsigned char)name[i];
        out[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    if (name[i])
        memcpy(out + i, "...", 4);
    else
        out[i] = '\0';
    return out;
}

int tsr_arcpath_has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 1;
    return 0;
}

int tsr_arcpath_init(struct tsr_arcpath_table *t, uint64_t max_entries)
{
    memset(t, 0, sizeof *t);
    /* Implied folders count too, else deep distinct paths could make the
     * table far larger than the entry limit suggests. */
    t->max_used =
        max_entries > SIZE_MAX / 4 ? SIZE_MAX / 2 : (size_t)max_entries * 2 + 64;
    t->cap = 256;
    t->slots = calloc(t->cap, sizeof *t->slots);
    if (!t->slots)
        return TSR_ENOMEM;
    randombytes_buf(t->key, sizeof t->key);
    t->steps_left = TSR_ARCPATH_MAX_STEPS;
    return 0;
}

void tsr_arcpath_free(struct tsr_arcpath_table *t)
{
    free(t->slots);
    for (size_t i = 0; i < t->nlinks; i++) {
        free(t->links[i].path);
        free(t->links[i].target);
    }
    free(t->links);
    memset(t, 0, sizeof *t);
}

uint64_t tsr_arcpath_child(const struct tsr_arcpath_table *t, uint64_t parent,
                           const char *name, size_t len)
{
    /* SipHash of (parent key, SipHash of the name): no copy of the name and
     * no bound on its length. */
    unsigned char in[16], out[crypto_shorthash_BYTES];
    memcpy(in, &parent, 8);
    crypto_shorthash(in + 8, (const unsigned char *)name, len, t->key);
    crypto_shorthash(out, in, sizeof in, t->key);
    uint64_t k;
    memcpy(&k, out, sizeof k);
    return k;
}

uint64_t tsr_arcpath_key(const struct tsr_arcpath_table *t, const char *path, size_t len)
{
    uint64_t k = TSR_ARCPATH_ROOT;
    size_t i = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && path[j] != '/')
            j++;
        k = tsr_arcpath_child(t, k, path + i, j - i);
        i = j + 1;
    }
    return k;
}

/* The slot for key: the node holding it, or the free slot where it goes. */
static struct tsr_arcpath_node *s_slot(const struct tsr_arcpath_table *t, uint64_t key)
{
    size_t i = (size_t)key & (t->cap - 1);
    while (t->slots[i].kind != TSR_ARCPATH_FREE && t->slots[i].key != key)
        i = (i + 1) & (t->cap - 1);
    return &t->slots[i];
}

struct tsr_arcpath_node *tsr_arcpath_find_key(const struct tsr_arcpath_table *t,
                                              uint64_t key)
{
    struct tsr_arcpath_node *n = s_slot(t, key);
    return n->kind == TSR_ARCPATH_FREE ? NULL : n;
}

struct tsr_arcpath_node *tsr_arcpath_find(const struct tsr_arcpath_table *t,
                                          const char *path, size_t len)
{
    return tsr_arcpath_find_key(t, tsr_arcpath_key(t, path, len));
}

int tsr_arcpath_add_key(struct tsr_arcpath_table *t, uint64_t key, int kind,
                        uint32_t link)
{
    if (t->used >= t->max_used)
        return TSR_ELIMIT;
    if ((t->used + 1) * 2 > t->cap) {
        size_t ncap = t->cap * 2;
        struct tsr_arcpath_node *ns = calloc(ncap, sizeof *ns);
        if (!ns)
            return TSR_ENOMEM;
        struct tsr_arcpath_table nt = *t;
        nt.slots = ns;
        nt.cap = ncap;
        for (size_t i = 0; i < t->cap; i++)
            if (t->slots[i].kind != TSR_ARCPATH_FREE)
                *s_slot(&nt, t->slots[i].key) = t->slots[i];
        free(t->slots);
        t->slots = ns;
        t->cap = ncap;
    }
    struct tsr_arcpath_node *n = s_slot(t, key);
    n->key = key;
    n->kind = (uint32_t)kind;
    n->link = link;
    t->used++;
    return 0;
}

int tsr_arcpath_add(struct tsr_arcpath_table *t, const char *path, size_t len, int kind,
                    uint32_t link)
{
    return tsr_arcpath_add_key(t, tsr_arcpath_key(t, path, len), kind, link);
}

int tsr_arcpath_add_link(struct tsr_arcpath_table *t, const char *path,
                         const char *target, uint32_t *index)
{
    if (t->nlinks == t->caplinks) {
        size_t ncap = t->caplinks ? t->caplinks * 2 : 16;
        struct tsr_arcpath_link *nl = realloc(t->links, ncap * sizeof *nl);
        if (!nl)
            return TSR_ENOMEM;
        t->links = nl;
        t->caplinks = ncap;
    }
    char *p = strdup(path), *g = strdup(target);
    if (!p || !g) {
        free(p);
        free(g);
        return TSR_ENOMEM;
    }
    t->links[t->nlinks].path = p;
    t->links[t->nlinks].target = g;
    *index = (uint32_t)t->nlinks++;
    return 0;
}

int tsr_arcpath_normalize(const char *raw, size_t max_name, char *out, size_t *outlen)
{
    size_t n = 0;
    const char *p = raw;
    while (*p) {
        const char *q = strchr(p, '/');
        size_t len = q ? (size_t)(q - p) : strlen(p);
        if (len == 2 && p[0] == '.' && p[1] == '.')
            return TSR_EUNSAFE;
        if (len > max_name)
            return TSR_ELIMIT;
        if (len > 0 && !(len == 1 && p[0] == '.')) {
            if (n > 0)
                out[n++] = '/';
            memcpy(out + n, p, len);
            n += len;
        }
        p += len;
        if (*p == '/')
            p++;
    }
    out[n] = '\0';
    *outlen = n;
    return 0;
}

/* A path being resolved, as the keys of its folders from the root down:
 * going up is dropping a key, going down is one hash of the name. */
struct s_cursor {
    uint64_t *keys;   /* keys[0] is the root, keys[depth] the current path */
    size_t *lens;     /* length in bytes of the path at each depth */
    size_t depth;     /* components in the current path */
    size_t max_depth; /* room in keys and lens, less one */
    size_t max_len;   /* longest path allowed */
};

/* Goes down into name; TSR_ARCPATH_TOO_LONG past the cursor's bounds. */
static int s_down(const struct tsr_arcpath_table *t, struct s_cursor *c, const char *name,
                  size_t len)
{
    size_t n = c->lens[c->depth] + (c->depth > 0 ? 1 : 0) + len;
    if (c->depth >= c->max_depth || n > c->max_len)
        return TSR_ARCPATH_TOO_LONG;
    c->keys[c->depth + 1] = tsr_arcpath_child(t, c->keys[c->depth], name, len);
    c->lens[c->depth + 1] = n;
    c->depth++;
    return 0;
}

/*
 * Resolves target as seen from the cursor's folder, following the links of
 * the table at every step, as the kernel would once the archive is on disk.
 * Names the archive does not hold are taken as plain folders: they will not
 * exist, so nothing can follow them out. On return the cursor holds the
 * resolved path.
 */
static int s_resolve(struct tsr_arcpath_table *t, struct s_cursor *c, const char *target,
                     int *hops)
{
    if (target[0] == '/')
        return TSR_ARCPATH_ESCAPES;
    const char *p = target;
    while (*p) {
        if (t->steps_left == 0)
            return TSR_ARCPATH_TOO_MUCH;
        t->steps_left--;
        const char *q = strchr(p, '/');
        size_t len = q ? (size_t)(q - p) : strlen(p);
        if (len == 2 && p[0] == '.' && p[1] == '.') {
            if (c->depth == 0)
                return TSR_ARCPATH_ESCAPES;
            c->depth--;
        } else if (len > 0 && !(len == 1 && p[0] == '.')) {
            int rc = s_down(t, c, p, len);
            if (rc != 0)
                return rc;
            const struct tsr_arcpath_node *node =
                tsr_arcpath_find_key(t, c->keys[c->depth]);
            if (node && node->kind == TSR_ARCPATH_LINK) {
                if (++*hops > TSR_ARCPATH_MAX_HOPS)
                    return TSR_ARCPATH_LOOPS;
                c->depth--;
                rc = s_resolve(t, c, t->links[node->link].target, hops);
                if (rc != 0)
                    return rc;
            }
        }
        p += len;
        if (*p == '/')
            p++;
    }
    return 0;
}

int tsr_arcpath_resolve_link(struct tsr_arcpath_table *t, size_t i, size_t max_len)
{
    const struct tsr_arcpath_link *l = &t->links[i];
    struct s_cursor c = {0};
    /* Every component takes at least one byte and a slash. */
    c.max_depth = max_len / 2 + 1;
    c.max_len = max_len;
    c.keys = malloc((c.max_depth + 1) * sizeof *c.keys);
    c.lens = malloc((c.max_depth + 1) * sizeof *c.lens);
    int rc = TSR_ENOMEM;
    if (c.keys && c.lens) {
        c.keys[0] = TSR_ARCPATH_ROOT;
        c.lens[0] = 0;
        /* From the link's own folder: every name of the path but the last. */
        const char *slash = strrchr(l->path, '/');
        rc = 0;
        for (const char *p = l->path; slash && p < slash && rc == 0;) {
            const char *q = memchr(p, '/', (size_t)(slash - p) + 1);
            rc = s_down(t, &c, p, (size_t)(q - p));
            p = q + 1;
        }
        int hops = 0;
        if (rc == 0)
            rc = s_resolve(t, &c, l->target, &hops);
    }
    free(c.keys);
    free(c.lens);
    return rc;
}
