/*
 * arcpath.h: the paths of an archive, private to archive.c (checking and
 * extraction) and archive_pack.c (packing), which must agree exactly on what
 * a path means and where a link leads.
 *
 * A table holds every path of an archive by a keyed hash of its normalised
 * form, with the kind of thing there; symbolic links keep their targets so
 * that a link can be resolved through the other links, as the kernel will
 * once the archive is on disk. Nothing here touches the file system.
 */
#ifndef TESSERA_ARCPATH_H
#define TESSERA_ARCPATH_H

#include <sodium.h>
#include <stddef.h>
#include <stdint.h>

#define TSR_ARCPATH_MAX_HOPS 40 /* links followed in one resolution, as Linux's ELOOP */
#define TSR_ARCPATH_QUOTE 160   /* longest name quoted in a message */
/* Steps (path components walked) that resolving all the links of one table
 * may take: about a second of work. An honest scene uses a few per link;
 * a crafted one with long chains of long targets could otherwise cost
 * minutes of CPU. */
#define TSR_ARCPATH_MAX_STEPS (1u << 24)

/* What a path in the table is. */
enum tsr_arcpath_kind {
    TSR_ARCPATH_FREE = 0, /* empty slot */
    TSR_ARCPATH_DIR,      /* folder, listed or implied by a deeper entry */
    TSR_ARCPATH_FILE,     /* regular file with data */
    TSR_ARCPATH_HARD,     /* hard link to an earlier regular file */
    TSR_ARCPATH_LINK,     /* symbolic link; its target is in the links array */
    TSR_ARCPATH_GONE,     /* a name that will not exist (a link left out by pack) */
};

/* One path, known by a keyed hash of its normalised form. A random key per
 * table makes a collision as unlikely as guessing the key. */
struct tsr_arcpath_node {
    uint64_t key;  /* SipHash of the path */
    uint32_t kind; /* enum tsr_arcpath_kind */
    uint32_t link; /* TSR_ARCPATH_LINK: index in the table's links */
};

/* A symbolic link, kept for resolving chains once every path is known. */
struct tsr_arcpath_link {
    char *path;   /* normalised path of the link */
    char *target; /* target as written in the archive */
};

/* Every path of one archive; open addressing, grown at half full. */
struct tsr_arcpath_table {
    struct tsr_arcpath_node *slots;               /* cap slots */
    size_t cap;                                   /* power of two */
    size_t used;                                  /* slots not free */
    size_t max_used;                              /* refuse past this many paths */
    struct tsr_arcpath_link *links;               /* symbolic links, in order */
    size_t nlinks;                                /* links used */
    size_t caplinks;                              /* links allocated */
    unsigned char key[crypto_shorthash_KEYBYTES]; /* hash key, random */
    uint64_t steps_left;                          /* resolution budget left */
};

/* Results of tsr_arcpath_resolve_link besides 0. */
#define TSR_ARCPATH_ESCAPES 1  /* the target leaves the root */
#define TSR_ARCPATH_LOOPS 2    /* more than TSR_ARCPATH_MAX_HOPS links on the way */
#define TSR_ARCPATH_TOO_LONG 3 /* a path on the way is too long */
#define TSR_ARCPATH_TOO_MUCH 4 /* the table's step budget ran out */

/* An empty table that refuses to grow past about twice max_entries paths
 * (implied folders count too), with a budget of TSR_ARCPATH_MAX_STEPS.
 * Needs sodium_init(). Returns 0, TSR_ENOMEM. */
int tsr_arcpath_init(struct tsr_arcpath_table *t, uint64_t max_entries);
void tsr_arcpath_free(struct tsr_arcpath_table *t);

/* The key of the root folder. */
#define TSR_ARCPATH_ROOT 0

/* The key of the entry name (len bytes) inside the folder whose key is
 * parent. Keys of a path are built name by name, so walking down a path of
 * n bytes costs O(n), whatever its depth. */
uint64_t tsr_arcpath_child(const struct tsr_arcpath_table *t, uint64_t parent,
                           const char *name, size_t len);

/* The key of a normalised path of len bytes ("" is the root). */
uint64_t tsr_arcpath_key(const struct tsr_arcpath_table *t, const char *path, size_t len);

/* The node of key, or of path (normalised, len bytes); NULL if absent. */
struct tsr_arcpath_node *tsr_arcpath_find_key(const struct tsr_arcpath_table *t,
                                              uint64_t key);
struct tsr_arcpath_node *tsr_arcpath_find(const struct tsr_arcpath_table *t,
                                          const char *path, size_t len);

/* Adds key, or path, which must not be there. Returns 0, TSR_ELIMIT (past
 * the table's size), TSR_ENOMEM. */
int tsr_arcpath_add_key(struct tsr_arcpath_table *t, uint64_t key, int kind,
                        uint32_t link);
int tsr_arcpath_add(struct tsr_arcpath_table *t, const char *path, size_t len, int kind,
                    uint32_t link);

/* Keeps a copy of a link's path and target; *index receives its place for
 * tsr_arcpath_add. Returns 0 or TSR_ENOMEM. */
int tsr_arcpath_add_link(struct tsr_arcpath_table *t, const char *path,
                         const char *target, uint32_t *index);

/*
 * Normalises a relative archive path: "./" prefixes, empty and "."
 * components go; out (strlen(raw) + 1 bytes) receives the rest joined by
 * '/', "" for the root. A ".." component anywhere gives TSR_EUNSAFE, a
 * component longer than max_name TSR_ELIMIT. Absolute paths are the
 * caller's to refuse.
 */
int tsr_arcpath_normalize(const char *raw, size_t max_name, char *out, size_t *outlen);

/*
 * Resolves link i of the table from its own folder, following the other
 * links of the table at every step; names the table does not hold are plain
 * names. Returns 0 when it stays inside the root, else one of
 * TSR_ARCPATH_ESCAPES, TSR_ARCPATH_LOOPS, TSR_ARCPATH_TOO_LONG (a path past
 * max_len bytes on the way), TSR_ARCPATH_TOO_MUCH (spends the table's step
 * budget), or TSR_ENOMEM.
 */
int tsr_arcpath_resolve_link(struct tsr_arcpath_table *t, size_t i, size_t max_len);

/* Copies name into out for a message: control characters become '?' so
 * the message stays one line, and long names are cut with "...". */
const char *tsr_arcpath_quote(const char *name, char out[TSR_ARCPATH_QUOTE + 4]);

/* True when s holds a control character (a name no scene needs). */
int tsr_arcpath_has_control(const char *s);

#endif
