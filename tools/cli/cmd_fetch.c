/*
 * cmd_fetch.c: `tessera fetch JOB -o DIR`: deliver a job's checked frames.
 *
 * Asks FRAMES for the list, downloads each done frame's blob (GET/DATA, 8
 * chunks in flight), checks that the sha256 of the bytes on disk is the hash
 * the master named, and only then renames the file into place as
 * DIR/frame_NNNN.exr. Then writes SHA256SUMS (`sha256sum -c` reads it),
 * manifest.json (one record per frame: hash, size, geometry, stats, where
 * and how long it rendered, and each tile's worker, hub and render time)
 * and contact_sheet.png, which the master makes
 * from the same frames.
 *
 * Every name written is made here from a frame number, never taken from the
 * master, so nothing lands outside DIR. A frame already in DIR with the
 * right hash is not downloaded again: re-running fetch on a job that is
 * still rendering only moves the new frames. Frames that are not done are
 * skipped and listed, and the exit code is 1 while any is missing; such a
 * partial fetch writes SHA256SUMS.partial and manifest.partial.json instead
 * (and removes the complete-named ones), so that `sha256sum -c SHA256SUMS`
 * never calls an incomplete delivery complete.
 */
#include "cli.h"
#include "client.h"
#include "format.h"

#include "tessera/error.h"
#include "tessera/frameset.h"
#include "tessera/hash.h"
#include "tessera/proto.h"
#include "tessera/util.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_MAX_BLOB ((int64_t)1 << 40) /* largest frame we accept, bytes */
#define S_LIST_MAX 20                 /* missing frames named in a message */

/* One frame of the master's FRAMES list. */
struct s_frame {
    int frame;               /* frame number */
    int done;                /* the master holds a checked image of it */
    char hash[TSR_HASH_HEX]; /* its blob's sha256 (done frames) */
    uint64_t size;           /* its blob's size (done frames) */
    const cJSON *rec;        /* the FRAME object (borrowed from the reply) */
    int fetched;             /* it is now in DIR under its name */
    char file[32];           /* its file name in DIR: frame_0001.exr */
};

/* The fetch under way. */
struct s_fetch {
    const struct tsr_cli *cli; /* global options */
    struct tsr_client *client; /* connection to the master */
    const char *dir;           /* output folder */
    int64_t id;                /* job id */
    struct s_frame *frames;    /* frames, sorted by number */
    size_t nframes;            /* entries in frames */
    uint64_t downloaded;       /* bytes that came over the network */
    size_t reused;             /* frames already in DIR with the right hash */
    int progress;              /* show progress on stderr (a terminal) */
    mode_t umask;              /* the process's umask, for new frames' mode */
};

static int s_cmp_frame(const void *a, const void *b)
{
    int x = ((const struct s_frame *)a)->frame, y = ((const struct s_frame *)b)->frame;
    return (x > y) - (x < y);
}

/* Reads the FRAMES reply into f->frames. */
static int s_read_frames(struct s_fetch *f, const cJSON *list)
{
    int n = cJSON_GetArraySize(list);
    f->frames = calloc(n > 0 ? (size_t)n : 1, sizeof *f->frames);
    if (!f->frames)
        return tsr_cli_error(TSR_CLI_FAIL, "fetch: out of memory");
    const cJSON *rec;
    cJSON_ArrayForEach(rec, list)
    {
        char why[128];
        int64_t frame;
        const char *state = NULL, *hash = NULL;
        if (!cJSON_IsObject(rec) ||
            tsr_hdr_int(rec, "frame", INT_MIN, INT_MAX, &frame, why, sizeof why) != 0 ||
            tsr_hdr_str(rec, "state", 32, &state, why, sizeof why) != 0)
            return tsr_cli_error(TSR_CLI_FAIL,
                                 "fetch: the master's FRAMES is malformed: %s",
                                 cJSON_IsObject(rec) ? why : "an entry is not an object");
        struct s_frame *fr = &f->frames[f->nframes];
        fr->frame = (int)frame;
        fr->rec = rec;
        snprintf(fr->file, sizeof fr->file, "frame_%04d.exr", fr->frame);
        const char *any = NULL;
        tsr_hdr_str_opt(rec, "hash", 64, &any, NULL, 0);
        /* A frame done without an image (a job of outputs none) has nothing
         * to fetch; it counts as missing. */
        if (strcmp(state, "done") == 0 && any && *any) {
            int64_t size;
            if (tsr_hdr_hash(rec, "hash", &hash, why, sizeof why) != 0 ||
                tsr_hdr_int(rec, "size", 0, S_MAX_BLOB, &size, why, sizeof why) != 0)
                return tsr_cli_error(TSR_CLI_FAIL,
                                     "fetch: frame %d: the master's record is "
                                     "malformed: %s",
                                     fr->frame, why);
            fr->done = 1;
            memcpy(fr->hash, hash, TSR_HASH_HEX);
            fr->size = (uint64_t)size;
        }
        f->nframes++;
    }
    qsort(f->frames, f->nframes, sizeof *f->frames, s_cmp_frame);
    /* One file per frame number: a repeated entry is not trusted twice. */
    for (size_t i = 1; i < f->nframes; i++)
        if (f->frames[i].frame == f->frames[i - 1].frame)
            return tsr_cli_error(TSR_CLI_FAIL, "fetch: the master listed frame %d twice",
                                 f->frames[i].frame);
    return 0;
}

/*
 * Asks FRAMES for every frame of the job: the master answers in pages
 * ("next" is where the following page starts, -1 after the last). *list
 * receives all FRAME objects in one array (caller owns).
 */
static int s_list_frames(struct s_fetch *f, cJSON **list)
{
    *list = cJSON_CreateArray();
    if (!*list)
        return tsr_cli_error(TSR_CLI_FAIL, "fetch: out of memory");
    int64_t from = 0;
    for (;;) {
        cJSON *h = cJSON_CreateObject(), *reply = NULL;
        if (!h || !cJSON_AddNumberToObject(h, "job", (double)f->id) ||
            !cJSON_AddNumberToObject(h, "from", (double)from)) {
            cJSON_Delete(h);
            return tsr_cli_error(TSR_CLI_FAIL, "fetch: out of memory");
        }
        int rc = tsr_client_call(f->client, "FRAMES", h, "FRAMES", 0, &reply);
        cJSON_Delete(h);
        if (rc != 0)
            return tsr_cli_client_error(f->cli, f->client, "fetch", rc);
        cJSON *page = cJSON_GetObjectItemCaseSensitive(reply, "frames");
        int64_t next = -1;
        char why[128];
        if (!cJSON_IsArray(page) || tsr_hdr_int_opt(reply, "next", -1, TSR_FRAMESET_MAX,
                                                    &next, why, sizeof why) != 0) {
            cJSON_Delete(reply);
            return tsr_cli_error(TSR_CLI_FAIL, "fetch: the master's FRAMES is malformed");
        }
        while (page->child)
            cJSON_AddItemToArray(*list, cJSON_DetachItemViaPointer(page, page->child));
        cJSON_Delete(reply);
        /* A page that does not move forward would never end. */
        if (next < 0 || next <= from || cJSON_GetArraySize(*list) > TSR_FRAMESET_MAX)
            return 0;
        from = next;
    }
}

static void s_progress(uint64_t done, uint64_t total, void *arg)
{
    const struct s_frame *fr = arg;
    fprintf(stderr, "\r\033[2Ktessera: fetching %s: %3.0f%%", fr->file,
            total ? 100.0 * (double)done / (double)total : 100.0);
    fflush(stderr);
}

/*
 * Downloads the blob hash (size bytes) into DIR/file through a temporary
 * name, checks its sha256, then renames it into place; what names it in
 * messages. A file already there with the right hash is kept (*reused set).
 * Returns 0, TSR_CLI_FAIL (reported) or TSR_CLI_UNREACHABLE (reported).
 */
static int s_fetch_blob(struct s_fetch *f, const char *hash, uint64_t size,
                        const char *file, const char *what, void *progress_arg,
                        int *reused)
{
    char path[4096], tmp[4096], got[TSR_HASH_HEX];
    *reused = 0;
    if (tsr_fmt(path, sizeof path, "%s/%s", f->dir, file) != 0 ||
        tsr_fmt(tmp, sizeof tmp, "%s/.%s.part-XXXXXX", f->dir, file) != 0)
        return tsr_cli_error(TSR_CLI_FAIL, "fetch: '%s': path too long", f->dir);
    unsigned long long have = 0;
    if (tsr_hash_file(path, got, &have) == 0 && strcmp(got, hash) == 0) {
        *reused = 1;
        return 0;
    }
    int fd = mkstemp(tmp);
    if (fd < 0)
        return tsr_cli_error(TSR_CLI_FAIL, "fetch: cannot create a file in '%s': %s",
                             f->dir, strerror(errno));
    /* mkstemp makes 0600; a delivered file gets the user's usual mode. */
    fchmod(fd, 0666 & ~f->umask);
    int rc = tsr_client_download(f->client, hash, size, fd,
                                 f->progress && progress_arg ? s_progress : NULL,
                                 progress_arg);
    if (f->progress && progress_arg)
        fprintf(stderr, "\r\033[2K");
    int code = 0;
    if (rc != 0) {
        char where[80];
        snprintf(where, sizeof where, "fetch: %s", what);
        code = tsr_cli_client_error(f->cli, f->client, where, rc);
    } else if (fsync(fd) != 0) {
        code = tsr_cli_error(TSR_CLI_FAIL, "fetch: cannot write '%s': %s", path,
                             strerror(errno));
    }
    if (close(fd) != 0 && code == 0)
        code = tsr_cli_error(TSR_CLI_FAIL, "fetch: cannot write '%s': %s", path,
                             strerror(errno));
    if (code == 0) {
        unsigned long long got_size = 0;
        if (tsr_hash_file(tmp, got, &got_size) != 0)
            code = tsr_cli_error(TSR_CLI_FAIL, "fetch: cannot read back '%s'", tmp);
        else if (strcmp(got, hash) != 0 || got_size != size)
            code = tsr_cli_error(
                TSR_CLI_FAIL,
                "fetch: %s: what arrived does not match its hash "
                "(sha256 %.12s..., %llu bytes; want %.12s..., %llu bytes)",
                what, got, got_size, hash, (unsigned long long)size);
    }
    if (code == 0 && rename(tmp, path) != 0)
        code = tsr_cli_error(TSR_CLI_FAIL, "fetch: cannot rename into '%s': %s", path,
                             strerror(errno));
    if (code != 0)
        unlink(tmp);
    return code;
}

/*
 * Brings one done frame into DIR. Returns 0 (fetched), TSR_CLI_FAIL (this
 * frame failed, reported; go on with the others) or TSR_CLI_UNREACHABLE
 * (reported; stop).
 */
static int s_fetch_one(struct s_fetch *f, struct s_frame *fr)
{
    char what[64];
    snprintf(what, sizeof what, "frame %d", fr->frame);
    int reused = 0;
    int code = s_fetch_blob(f, fr->hash, fr->size, fr->file, what, fr, &reused);
    if (code != 0)
        return code;
    fr->fetched = 1;
    if (reused)
        f->reused++;
    else
        f->downloaded += fr->size;
    return 0;
}

/* SHA256SUMS in the format `sha256sum -c` reads: "<hash>  <file>". */
static int s_write_sums(const struct s_fetch *f, const char *name)
{
    size_t cap = f->nframes * (TSR_HASH_HEX + 40) + 1, len = 0;
    char *text = malloc(cap);
    if (!text)
        return tsr_cli_error(TSR_CLI_FAIL, "fetch: out of memory");
    for (size_t i = 0; i < f->nframes; i++)
        if (f->frames[i].fetched)
            len += (size_t)snprintf(text + len, cap - len, "%s  %s\n", f->frames[i].hash,
                                    f->frames[i].file);
    char path[4096];
    int rc = tsr_fmt(path, sizeof path, "%s/%s", f->dir, name);
    if (rc == 0)
        rc = tsr_write_file_atomic(path, text, len);
    free(text);
    if (rc != 0)
        return tsr_cli_error(TSR_CLI_FAIL, "fetch: cannot write '%s/%s': %s", f->dir, name,
                             tsr_strerror(rc));
    return 0;
}

/* Copies rec[name] into obj when it is there. */
static int s_copy_field(cJSON *obj, const cJSON *rec, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(rec, name);
    cJSON *dup = v ? cJSON_Duplicate(v, 1) : cJSON_CreateNull();
    return dup && cJSON_AddItemToObject(obj, name, dup);
}

static int s_write_manifest(const struct s_fetch *f, const char *name, const char *file)
{
    cJSON *m = cJSON_CreateObject();
    cJSON *arr = cJSON_CreateArray();
    cJSON *missing = cJSON_CreateArray();
    int ok = m && arr && missing && cJSON_AddNumberToObject(m, "job", (double)f->id) &&
             cJSON_AddStringToObject(m, "name", name);
    ok = ok && cJSON_AddItemToObject(m, "frames", arr);
    if (!ok)
        cJSON_Delete(arr);
    ok = ok && cJSON_AddItemToObject(m, "missing", missing);
    if (!ok)
        cJSON_Delete(missing);
    for (size_t i = 0; ok && i < f->nframes; i++) {
        const struct s_frame *fr = &f->frames[i];
        if (!fr->fetched) {
            ok = cJSON_AddItemToArray(missing, cJSON_CreateNumber(fr->frame));
            continue;
        }
        cJSON *e = cJSON_CreateObject();
        ok = e && cJSON_AddItemToArray(arr, e) &&
             cJSON_AddNumberToObject(e, "frame", fr->frame) &&
             cJSON_AddStringToObject(e, "file", fr->file) &&
             cJSON_AddStringToObject(e, "sha256", fr->hash) &&
             cJSON_AddNumberToObject(e, "size", (double)fr->size) &&
             s_copy_field(e, fr->rec, "width") && s_copy_field(e, fr->rec, "height") &&
             s_copy_field(e, fr->rec, "stats") && s_copy_field(e, fr->rec, "worker") &&
             s_copy_field(e, fr->rec, "hub") && s_copy_field(e, fr->rec, "render_ms") &&
             s_copy_field(e, fr->rec, "tiles") &&
             (!cJSON_GetObjectItemCaseSensitive(fr->rec, "tiles_cut") ||
              s_copy_field(e, fr->rec, "tiles_cut"));
    }
    char *text = ok ? cJSON_Print(m) : NULL;
    cJSON_Delete(m);
    if (!text)
        return tsr_cli_error(TSR_CLI_FAIL, "fetch: out of memory");
    char path[4096];
    int rc = tsr_fmt(path, sizeof path, "%s/%s", f->dir, file);
    if (rc == 0) {
        size_t len = strlen(text);
        text[len] = '\n'; /* replaces the NUL: the file ends with a newline */
        rc = tsr_write_file_atomic(path, text, len + 1);
    }
    free(text);
    if (rc != 0)
        return tsr_cli_error(TSR_CLI_FAIL, "fetch: cannot write '%s/%s': %s", f->dir, file,
                             tsr_strerror(rc));
    return 0;
}

/*
 * contact_sheet.png: the master makes it from the frames it holds (it has
 * OpenImageIO; this client does not need to load it), and it comes down
 * like a frame, checked by its hash.
 */
static int s_write_sheet(struct s_fetch *f)
{
    char path[4096];
    if (tsr_fmt(path, sizeof path, "%s/contact_sheet.png", f->dir) != 0)
        return tsr_cli_error(TSR_CLI_FAIL, "fetch: '%s': path too long", f->dir);
    size_t n = 0;
    for (size_t i = 0; i < f->nframes; i++)
        n += f->frames[i].fetched;
    if (n == 0) {
        unlink(path); /* a sheet from an earlier fetch would show other frames */
        return 0;
    }
    cJSON *h = cJSON_CreateObject(), *reply = NULL;
    if (!h || !cJSON_AddNumberToObject(h, "job", (double)f->id)) {
        cJSON_Delete(h);
        return tsr_cli_error(TSR_CLI_FAIL, "fetch: out of memory");
    }
    /* The master decodes every frame for it: allow for the job's size. */
    int rc = tsr_client_call(f->client, "SHEET", h, "SHEET", 60000 + (int)n * 200, &reply);
    cJSON_Delete(h);
    if (rc != 0)
        return tsr_cli_client_error(f->cli, f->client, "fetch: contact sheet", rc);
    const char *hash = NULL;
    int64_t size = 0;
    char why[128];
    if (tsr_hdr_hash(reply, "hash", &hash, why, sizeof why) != 0 ||
        tsr_hdr_int(reply, "size", 1, S_MAX_BLOB, &size, why, sizeof why) != 0) {
        cJSON_Delete(reply);
        return tsr_cli_error(TSR_CLI_FAIL, "fetch: the master's SHEET is malformed: %s", why);
    }
    int reused = 0;
    int code = s_fetch_blob(f, hash, (uint64_t)size, "contact_sheet.png", "contact sheet",
                            NULL, &reused);
    cJSON_Delete(reply);
    return code;
}

/* "4, 5, 9-12" from the frames not fetched, at most S_LIST_MAX items. */
static void s_missing_list(const struct s_fetch *f, char *buf, size_t size)
{
    size_t len = 0, items = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < f->nframes; i++) {
        if (f->frames[i].fetched)
            continue;
        size_t j = i;
        while (j + 1 < f->nframes && !f->frames[j + 1].fetched &&
               f->frames[j + 1].frame == f->frames[j].frame + 1)
            j++;
        if (items == S_LIST_MAX) {
            snprintf(buf + len, size - len, ", ...");
            return;
        }
        int n = j > i ? snprintf(buf + len, size - len, "%s%d-%d", items ? ", " : "",
                                 f->frames[i].frame, f->frames[j].frame)
                      : snprintf(buf + len, size - len, "%s%d", items ? ", " : "",
                                 f->frames[i].frame);
        if (n < 0 || (size_t)n >= size - len)
            return;
        len += (size_t)n;
        items++;
        i = j;
    }
}

/*
 * The output folder, checked once before anything is asked or downloaded:
 * it is made if missing, must be a folder, and must take a new file (a
 * read-only mount, or one that is not ours, fails here with its reason,
 * not at every frame). Returns 0 or TSR_CLI_FAIL (reported).
 */
static int s_check_dir(const char *dir)
{
    struct stat st;
    if (stat(dir, &st) == 0 && !S_ISDIR(st.st_mode))
        return tsr_cli_error(TSR_CLI_FAIL, "fetch: -o '%s' is not a folder", dir);
    if (tsr_mkdir_p(dir) != 0)
        return tsr_cli_error(TSR_CLI_FAIL, "fetch: cannot make the folder '%s': %s", dir,
                             strerror(errno));
    char probe[4096];
    if (tsr_fmt(probe, sizeof probe, "%s/.tessera-fetch-XXXXXX", dir) != 0)
        return tsr_cli_error(TSR_CLI_FAIL, "fetch: '%s': path too long", dir);
    int fd = mkstemp(probe);
    if (fd < 0)
        return tsr_cli_error(TSR_CLI_FAIL, "fetch: cannot write in '%s': %s", dir,
                             strerror(errno));
    close(fd);
    unlink(probe);
    return 0;
}

static int s_run(const struct tsr_cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        {"output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const struct tsr_cli_cmd *me = &tsr_cmd_fetch;
    struct s_fetch f = {.cli = cli};
    int ch;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":o:h", opts, NULL)) != -1) {
        switch (ch) {
        case 'o':
            if (!*optarg)
                return tsr_cli_error(TSR_CLI_USAGE, "fetch: -o: empty folder name");
            f.dir = optarg;
            break;
        case 'h':
            return tsr_cli_help(me);
        default:
            return tsr_cli_bad_option(me, ch, argv);
        }
    }
    if (optind >= argc)
        return tsr_cli_error(TSR_CLI_USAGE,
                             "fetch: missing JOB (see 'tessera fetch --help')");
    if (optind + 1 < argc)
        return tsr_cli_error(TSR_CLI_USAGE, "fetch: unexpected argument '%s'",
                             argv[optind + 1]);
    if (!f.dir)
        return tsr_cli_error(TSR_CLI_USAGE,
                             "fetch: missing -o DIR (where the frames go)");
    int code = tsr_cli_parse_job("fetch", argv[optind], &f.id);
    if (code != 0)
        return code;
    if ((code = s_check_dir(f.dir)) != 0)
        return code;

    if ((code = tsr_cli_connect(cli, "fetch", &f.client)) != 0)
        return code;
    cJSON *job = NULL, *list = NULL;
    if ((code = tsr_cli_fetch_job(cli, f.client, "fetch", f.id, &job)) != 0)
        goto out;
    if (strcmp(tsr_json_str(job, "outputs", "image"), "none") == 0) {
        code =
            tsr_cli_error(TSR_CLI_FAIL, "fetch: job %lld makes no images (outputs none)",
                          (long long)f.id);
        goto out;
    }
    if ((code = s_list_frames(&f, &list)) != 0)
        goto out;
    if ((code = s_read_frames(&f, list)) != 0)
        goto out;
    if (tsr_mkdir_p(f.dir) != 0) {
        code = tsr_cli_error(TSR_CLI_FAIL, "fetch: cannot make the folder '%s': %s",
                             f.dir, strerror(errno));
        goto out;
    }

    f.progress = isatty(2);
    f.umask = umask(022);
    umask(f.umask);
    int failed = 0;
    for (size_t i = 0; i < f.nframes; i++) {
        if (!f.frames[i].done)
            continue;
        int c = s_fetch_one(&f, &f.frames[i]);
        if (c == TSR_CLI_UNREACHABLE) {
            code = c; /* no use asking for the others; keep what arrived */
            break;
        }
        failed |= c != 0;
    }
    /* The index files cover exactly the frames in DIR now. A fetch that
     * did not bring every frame of a done job (the job is not done, the
     * master went away, a frame failed) is partial, and says so in its
     * files' names: SHA256SUMS would let `sha256sum -c` call it complete.
     * The complete-named files of an earlier fetch go, as they no longer
     * describe DIR; the contact sheet is made only for a complete one. */
    char name[256];
    tsr_fmt_clean(name, sizeof name, tsr_json_str(job, "name", ""));
    size_t have = 0;
    for (size_t i = 0; i < f.nframes; i++)
        have += f.frames[i].fetched;
    double want = tsr_json_num(tsr_json_obj(job, "frames"), "total", (double)f.nframes);
    int partial = code != 0 || failed || (double)have < want || have < f.nframes ||
                  strcmp(tsr_json_str(job, "state", "?"), "done") != 0;
    static const char *const complete_names[] = {"SHA256SUMS", "manifest.json",
                                                 "contact_sheet.png"};
    static const char *const partial_names[] = {"SHA256SUMS.partial",
                                                 "manifest.partial.json"};
    const char *const *stale = partial ? complete_names : partial_names;
    for (size_t i = 0; i < (partial ? 3u : 2u); i++) {
        char path[4096];
        if (tsr_fmt(path, sizeof path, "%s/%s", f.dir, stale[i]) == 0)
            unlink(path);
    }
    int wcode = s_write_sums(&f, partial ? "SHA256SUMS.partial" : "SHA256SUMS");
    if (!wcode)
        wcode = s_write_manifest(&f, tsr_json_str(job, "name", ""),
                                 partial ? "manifest.partial.json" : "manifest.json");
    if (!wcode && !partial)
        wcode = s_write_sheet(&f);
    if (code == 0)
        code = wcode ? wcode : (failed ? TSR_CLI_FAIL : 0);

    if (code == TSR_CLI_UNREACHABLE)
        goto out; /* said already; a summary would only repeat it */
    size_t fetched = 0;
    for (size_t i = 0; i < f.nframes; i++)
        fetched += f.frames[i].fetched;
    double total = tsr_json_num(tsr_json_obj(job, "frames"), "total", (double)f.nframes);
    if (total < (double)f.nframes)
        total = (double)f.nframes;
    char bytes[32];
    tsr_fmt_bytes(bytes, sizeof bytes, f.downloaded);
    printf("fetched %zu of %.0f frames of job %lld (%s) into %s: %s downloaded", fetched,
           total, (long long)f.id, name, f.dir, bytes);
    if (f.reused)
        printf(", %zu already there", f.reused);
    printf("\n");

    size_t missing = (size_t)total - fetched;
    if (missing > 0) {
        char list_text[512];
        s_missing_list(&f, list_text, sizeof list_text);
        const char *state = tsr_json_str(job, "state", "?");
        char state_c[32];
        tsr_fmt_clean(state_c, sizeof state_c, state);
        tsr_cli_warn("fetch: job %lld: %zu frame%s not fetched: %s", (long long)f.id,
                     missing, missing == 1 ? "" : "s",
                     list_text[0] ? list_text : "(not listed)");
        if (strcmp(state, "done") != 0)
            tsr_cli_error(TSR_CLI_FAIL,
                          "fetch: job %lld is %s, not done: fetched %zu of "
                          "%.0f frames",
                          (long long)f.id, state_c, fetched, total);
        else
            tsr_cli_error(TSR_CLI_FAIL, "fetch: job %lld: %zu frame%s missing",
                          (long long)f.id, missing, missing == 1 ? "" : "s");
        if (code == 0)
            code = TSR_CLI_FAIL;
    }
out:
    cJSON_Delete(list);
    cJSON_Delete(job);
    free(f.frames);
    tsr_client_destroy(&f.client);
    return code;
}

const struct tsr_cli_cmd tsr_cmd_fetch = {
    .name = "fetch",
    .usage = "JOB -o DIR",
    .summary = "download a job's done frames, checked, with SHA256SUMS and a manifest",
    .help =
        "  -o, --output DIR   folder for frame_NNNN.exr, SHA256SUMS, manifest.json and\n"
        "                     contact_sheet.png (made if missing)\n"
        "Frames already in DIR with the right hash are not downloaded again.\n"
        "Exit 1 when any frame is missing (not done yet, failed, or not verified);\n"
        "then the sums and manifest are SHA256SUMS.partial and manifest.partial.json.\n",
    .run = s_run,
};
