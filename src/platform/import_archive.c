/* Reading an uploaded archive safely (libarchive): every entry's path is checked before
 * anything is written, links and devices are refused, sizes are counted as the bytes are
 * actually decompressed (not as the headers claim), and regular files are extracted to
 * temporary files named by their index. Also the small path helpers imports share. */
#include <archive.h>
#include <archive_entry.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "autocv/error.h"
#include "base/file.h"
#include "platform/import_internal.h"

#define PATH_MAX_BYTES 1024
#define DISK_RESERVE (256LL << 20) /* free space an import leaves on the data disk */
#define RATIO_ALLOWANCE (64LL << 20)

void acv_import_limits_default(acv_import_limits *lim)
{
    lim->max_entries = 100000;
    lim->max_entry_bytes = 1LL << 30;
    lim->max_total_bytes = 32LL << 30;
    lim->max_ratio = 100;
}

/* ---- paths ------------------------------------------------------------------------------ */

const char *acv__path_base(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

char *acv__path_dir(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? strndup(path, (size_t)(s - path)) : strdup("");
}

bool acv__has_ext(const char *path, const char *ext)
{
    const char *base = acv__path_base(path), *dot = strrchr(base, '.');
    return dot && dot != base && !strcasecmp(dot + 1, ext);
}

bool acv__is_image_name(const char *path)
{
    return acv__has_ext(path, "jpg") || acv__has_ext(path, "jpeg") || acv__has_ext(path, "png") ||
           acv__has_ext(path, "bmp");
}

bool acv__is_other_image_name(const char *path)
{
    static const char *const EXT[] = {"webp", "tif", "tiff", "gif", "heic", "heif", "avif", "dng", "mpo", "pfm",
                                      "jp2", "jxl", NULL};
    for (int i = 0; EXT[i]; i++)
        if (acv__has_ext(path, EXT[i])) return true;
    return false;
}

char *acv__path_join(const char *dir, const char *rel)
{
    size_t n = strlen(dir) + strlen(rel) + 2;
    char *in = malloc(n), *out = malloc(n);
    if (!in || !out) {
        free(in);
        free(out);
        return NULL;
    }
    snprintf(in, n, "%s%s%s", dir, *dir ? "/" : "", rel);
    for (char *p = in; *p; p++)
        if (*p == '\\') *p = '/';
    size_t len = 0;
    char *save = NULL;
    for (char *t = strtok_r(in, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
        if (!strcmp(t, ".")) continue;
        if (!strcmp(t, "..")) {
            if (len == 0) {
                free(in);
                free(out);
                return NULL;
            }
            while (len > 0 && out[len - 1] != '/') len--;
            if (len > 0) len--;
            continue;
        }
        if (len) out[len++] = '/';
        size_t k = strlen(t);
        memcpy(out + len, t, k);
        len += k;
    }
    out[len] = 0;
    free(in);
    return out;
}

/* Checks and normalizes an entry's path (see acv__entry.path); shown is the raw path made
 * printable, for messages. *out is malloc'd, "" for the
 * root; *junk is set for entries not worth importing (hidden files, __MACOSX, Thumbs.db). */
static int norm_entry_path(const char *raw, const char *shown, char **out, bool *junk)
{
    *out = NULL;
    *junk = false;
    if (!raw || !*raw) return acv_error(ACV_EINVAL, "an archive entry has no name");
    size_t n = strlen(raw);
    if (n > PATH_MAX_BYTES)
        return acv_error(ACV_EINVAL, "archive entry '%.60s...': a path longer than %d bytes", shown, PATH_MAX_BYTES);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)raw[i] < 0x20 || raw[i] == 0x7f)
            return acv_error(ACV_EINVAL, "archive entry '%.200s': a control character in the path", shown);
    if (raw[0] == '/' || raw[0] == '\\')
        return acv_error(ACV_EINVAL, "archive entry '%.200s': an absolute path (entries must be relative)", shown);
    if (n >= 2 && isalpha((unsigned char)raw[0]) && raw[1] == ':')
        return acv_error(ACV_EINVAL, "archive entry '%.200s': a drive-letter path (entries must be relative)", shown);
    char *copy = strdup(raw), *res = malloc(n + 1);
    if (!copy || !res) {
        free(copy);
        free(res);
        return acv_error(ACV_ENOMEM, "out of memory");
    }
    for (char *p = copy; *p; p++)
        if (*p == '\\') *p = '/';
    size_t len = 0;
    char *save = NULL;
    for (char *t = strtok_r(copy, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
        if (!strcmp(t, ".")) continue;
        if (!strcmp(t, "..")) {
            free(copy);
            free(res);
            return acv_error(ACV_EINVAL, "archive entry '%.200s': a '..' path component (entries must stay "
                                         "inside the archive)", shown);
        }
        if (t[0] == '.' || !strcmp(t, "__MACOSX") || !strcasecmp(t, "Thumbs.db") || !strcasecmp(t, "desktop.ini"))
            *junk = true;
        if (len) res[len++] = '/';
        size_t k = strlen(t);
        memcpy(res + len, t, k);
        len += k;
    }
    res[len] = 0;
    free(copy);
    acv_utf8_fix(res);
    *out = res;
    return 0;
}

/* ---- extraction ---------------------------------------------------------------------------- */

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const acv__entry *)a)->path, ((const acv__entry *)b)->path);
}

void acv__archive_free(acv__archive *a)
{
    if (!a) return;
    for (size_t i = 0; i < a->n; i++) {
        free(a->e[i].path);
        free(a->e[i].tmp);
    }
    free(a->e);
    free(a->by_base);
    if (a->dir) acv_remove_tree(a->dir);
    free(a->dir);
    memset(a, 0, sizeof *a);
}

/* Strips one top-level folder that holds everything, while the tree below it still has
 * folders (so a lone class folder of an ImageFolder archive is kept) and the folder is not
 * itself part of a layout (images/, labels/, annotations/, ...). */
static void strip_common_root(acv__archive *a)
{
    static const char *const KEEP[] = {"images", "labels", "annotations", "jpegimages", "imagesets", NULL};
    while (a->n) {
        const char *slash = strchr(a->e[0].path, '/');
        if (!slash) return;
        size_t k = (size_t)(slash - a->e[0].path) + 1;
        bool deeper = false;
        for (size_t i = 0; i < a->n; i++) {
            if (strncmp(a->e[i].path, a->e[0].path, k)) return;
            deeper |= strchr(a->e[i].path + k, '/') != NULL;
        }
        if (!deeper) return;
        for (int j = 0; KEEP[j]; j++)
            if (strlen(KEEP[j]) == k - 1 && !strncasecmp(a->e[0].path, KEEP[j], k - 1)) return;
        for (size_t i = 0; i < a->n; i++) memmove(a->e[i].path, a->e[i].path + k, strlen(a->e[i].path + k) + 1);
    }
}

static const char *type_name(mode_t t)
{
    switch (t) {
    case AE_IFLNK: return "a symbolic link";
    case AE_IFCHR: return "a character device";
    case AE_IFBLK: return "a block device";
    case AE_IFIFO: return "a FIFO";
    case AE_IFSOCK: return "a socket";
    default: return "a special file";
    }
}

typedef struct reader {
    struct archive *ar;
    const acv_import_limits *lim;
    acv__archive *out;
    size_t cap;
    int64_t entries, archive_bytes, disk_avail;
    char buf[64 * 1024];
} reader;

/* Writes the current entry's data to a new temporary file, counting the bytes as they are
 * decompressed. */
static int extract_entry(reader *r, const char *name, char **tmp_out, int64_t *size_out)
{
    size_t n = strlen(r->out->dir) + 24;
    char *tmp = malloc(n);
    if (!tmp) return acv_error(ACV_ENOMEM, "out of memory");
    snprintf(tmp, n, "%s/%zu", r->out->dir, r->out->n);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        int rc = acv_error(ACV_EIO, "%s: %s", tmp, strerror(errno));
        free(tmp);
        return rc;
    }
    const acv_import_limits *lim = r->lim;
    int64_t size = 0;
    int rc = 0;
    for (;;) {
        la_ssize_t got = archive_read_data(r->ar, r->buf, sizeof r->buf);
        if (got == 0) break;
        if (got < 0) {
            rc = acv_error(ACV_EFORMAT, "archive entry '%.200s': cannot be read: %s", name,
                           archive_error_string(r->ar) ? archive_error_string(r->ar) : "corrupt data");
            break;
        }
        size += got;
        r->out->bytes += got;
        if (size > lim->max_entry_bytes) {
            rc = acv_error(ACV_ERANGE, "archive entry '%.200s' decompresses to more than %lld MiB (the limit for one "
                                       "entry)", name, (long long)(lim->max_entry_bytes >> 20));
        } else if (r->out->bytes > lim->max_total_bytes) {
            rc = acv_error(ACV_ERANGE, "the archive decompresses to more than %lld MiB (the limit)",
                           (long long)(lim->max_total_bytes >> 20));
        } else if ((double)r->out->bytes > lim->max_ratio * (double)r->archive_bytes + (double)RATIO_ALLOWANCE) {
            rc = acv_error(ACV_ERANGE, "the archive decompresses to more than %.0f times its size (at entry "
                                       "'%.200s'): refused as a likely zip bomb", lim->max_ratio, name);
        } else if (r->out->bytes > r->disk_avail - DISK_RESERVE) {
            rc = acv_error(ACV_ERANGE, "not enough disk space to extract the archive (at entry '%.200s')", name);
        }
        for (la_ssize_t off = 0; !rc && off < got;) {
            ssize_t w = write(fd, r->buf + off, (size_t)(got - off));
            if (w < 0 && errno == EINTR) continue;
            if (w < 0) rc = acv_error(ACV_EIO, "%s: %s", tmp, strerror(errno));
            else off += w;
        }
        if (rc) break;
    }
    if (close(fd) && !rc) rc = acv_error(ACV_EIO, "%s: %s", tmp, strerror(errno));
    if (rc) {
        unlink(tmp);
        free(tmp);
        return rc;
    }
    *tmp_out = tmp;
    *size_out = size;
    return 0;
}

/* Handles one header: checks it, extracts a regular file or skips what is not worth it. */
static int read_entry(reader *r, struct archive_entry *ent)
{
    const acv_import_limits *lim = r->lim;
    if (++r->entries > lim->max_entries)
        return acv_error(ACV_ERANGE, "the archive has more than %lld entries (the limit)", (long long)lim->max_entries);
    const char *raw = archive_entry_pathname_utf8(ent);
    if (!raw) raw = archive_entry_pathname(ent);
    char shown[204];
    snprintf(shown, sizeof shown, "%.200s", raw ? raw : "");
    for (char *p = shown; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
    acv_utf8_fix(shown);
    char *path = NULL;
    bool junk;
    int rc = norm_entry_path(raw, shown, &path, &junk);
    if (rc) return rc;
    mode_t type = archive_entry_filetype(ent);
    if (archive_entry_hardlink(ent))
        rc = acv_error(ACV_EINVAL, "archive entry '%.200s' is a hard link (links are refused)", shown);
    else if (type != AE_IFREG && type != AE_IFDIR)
        rc = acv_error(ACV_EINVAL, "archive entry '%.200s' is %s (only files and folders are accepted)", shown,
                       type_name(type));
    else if (archive_entry_is_encrypted(ent))
        rc = acv_error(ACV_EINVAL, "archive entry '%.200s' is encrypted", shown);
    else if (type == AE_IFREG && archive_entry_size_is_set(ent) && archive_entry_size(ent) > lim->max_entry_bytes)
        rc = acv_error(ACV_ERANGE, "archive entry '%.200s' declares %lld bytes, more than the %lld MiB allowed for "
                                   "one entry", shown, (long long)archive_entry_size(ent),
                       (long long)(lim->max_entry_bytes >> 20));
    if (rc || type == AE_IFDIR || junk || !*path) {
        if (!rc) r->out->ignored++;
        free(path);
        return rc; /* the data of a skipped entry is never decompressed */
    }
    if (r->out->n == r->cap) {
        size_t nc = r->cap ? r->cap * 2 : 64;
        acv__entry *ne = realloc(r->out->e, nc * sizeof *ne);
        if (!ne) {
            free(path);
            return acv_error(ACV_ENOMEM, "out of memory");
        }
        r->out->e = ne;
        r->cap = nc;
    }
    acv__entry *e = &r->out->e[r->out->n];
    memset(e, 0, sizeof *e);
    if ((rc = extract_entry(r, path, &e->tmp, &e->size))) {
        free(path);
        return rc;
    }
    e->path = path;
    r->out->n++;
    return 0;
}

int acv__archive_extract(const char *path, const char *tmp_dir, const acv_import_limits *lim, acv__archive *out)
{
    memset(out, 0, sizeof *out);
    acv_import_limits dflt;
    if (!lim) {
        acv_import_limits_default(&dflt);
        lim = &dflt;
    }
    struct stat st;
    if (stat(path, &st)) return acv_error(ACV_EIO, "%s: %s", path, strerror(errno));
    if (st.st_size == 0) return acv_error(ACV_EINVAL, "the upload is empty: a zip or tar archive is expected");
    reader *r = calloc(1, sizeof *r);
    size_t n = strlen(tmp_dir) + 24;
    out->dir = malloc(n);
    if (!r || !out->dir) {
        free(r);
        free(out->dir);
        out->dir = NULL;
        return acv_error(ACV_ENOMEM, "out of memory");
    }
    snprintf(out->dir, n, "%s/import-XXXXXX", tmp_dir);
    if (!mkdtemp(out->dir)) {
        int rc = acv_error(ACV_EIO, "%s: %s", out->dir, strerror(errno));
        free(out->dir);
        out->dir = NULL;
        free(r);
        return rc;
    }
    struct statvfs vfs;
    r->lim = lim;
    r->out = out;
    r->archive_bytes = st.st_size;
    r->disk_avail = statvfs(tmp_dir, &vfs) == 0 ? (int64_t)vfs.f_bavail * (int64_t)vfs.f_frsize : INT64_MAX / 2;
    r->ar = archive_read_new();
    int rc = r->ar ? 0 : acv_error(ACV_ENOMEM, "out of memory");
    if (!rc) {
        /* Built-in readers only (no external decompressor programs). */
        archive_read_support_format_zip(r->ar);
        archive_read_support_format_tar(r->ar);
        archive_read_support_filter_gzip(r->ar);
        archive_read_support_filter_bzip2(r->ar);
        archive_read_support_filter_xz(r->ar);
        if (archive_read_open_filename(r->ar, path, 64 * 1024) != ARCHIVE_OK)
            rc = acv_error(ACV_EINVAL, "not a zip or tar archive (%s)",
                           archive_error_string(r->ar) ? archive_error_string(r->ar) : "unreadable");
    }
    for (bool first = true; !rc; first = false) {
        struct archive_entry *ent;
        int s = archive_read_next_header(r->ar, &ent);
        if (s == ARCHIVE_EOF) break;
        if (s != ARCHIVE_OK && s != ARCHIVE_WARN) {
            const char *m = archive_error_string(r->ar);
            if (first) rc = acv_error(ACV_EINVAL, "not a zip or tar archive (%s)", m ? m : "unrecognized format");
            else rc = acv_error(ACV_EFORMAT, "the archive is corrupt after %zu files: %s", out->n, m ? m : "?");
            break;
        }
        rc = read_entry(r, ent);
    }
    if (r->ar) archive_read_free(r->ar);
    free(r);
    if (!rc && out->n == 0) rc = acv_error(ACV_EINVAL, "the archive holds no files");
    if (!rc) {
        strip_common_root(out);
        qsort(out->e, out->n, sizeof *out->e, cmp_entry);
        for (size_t i = 1; !rc && i < out->n; i++)
            if (!strcmp(out->e[i].path, out->e[i - 1].path))
                rc = acv_error(ACV_EINVAL, "archive entry '%.200s' appears twice", out->e[i].path);
    }
    if (rc) acv__archive_free(out);
    return rc;
}

/* ---- lookups --------------------------------------------------------------------------------- */

acv__entry *acv__archive_find(const acv__archive *a, const char *path)
{
    acv__entry key = {.path = (char *)path};
    return path ? bsearch(&key, a->e, a->n, sizeof *a->e, cmp_entry) : NULL;
}

static const acv__archive *sort_ctx; /* qsort has no context argument; guarded by sort_mu */
static pthread_mutex_t sort_mu = PTHREAD_MUTEX_INITIALIZER;

static int cmp_base(const void *x, const void *y)
{
    const char *a = sort_ctx->e[*(const size_t *)x].path, *b = sort_ctx->e[*(const size_t *)y].path;
    int c = strcmp(acv__path_base(a), acv__path_base(b));
    return c ? c : strcmp(a, b);
}

acv__entry *acv__archive_find_base(acv__archive *a, const char *name)
{
    if (!a->by_base) {
        if (!(a->by_base = malloc((a->n ? a->n : 1) * sizeof *a->by_base))) return NULL;
        for (size_t i = 0; i < a->n; i++) a->by_base[i] = i;
        pthread_mutex_lock(&sort_mu);
        sort_ctx = a;
        qsort(a->by_base, a->n, sizeof *a->by_base, cmp_base);
        pthread_mutex_unlock(&sort_mu);
    }
    size_t lo = 0, hi = a->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (strcmp(acv__path_base(a->e[a->by_base[mid]].path), name) < 0) lo = mid + 1;
        else hi = mid;
    }
    if (lo == a->n || strcmp(acv__path_base(a->e[a->by_base[lo]].path), name)) return NULL;
    if (lo + 1 < a->n && !strcmp(acv__path_base(a->e[a->by_base[lo + 1]].path), name)) return NULL; /* ambiguous */
    return &a->e[a->by_base[lo]];
}

/* The index of the first entry whose path is >= key. */
static size_t lower_bound(const acv__archive *a, const char *key)
{
    size_t lo = 0, hi = a->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (strcmp(a->e[mid].path, key) < 0) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

acv__entry *acv__archive_find_stem(const acv__archive *a, const char *dir, const char *stem)
{
    static const char *const EXT[] = {"jpg", "jpeg", "png", "bmp", NULL};
    if (!stem || !*stem) return NULL;
    size_t n = strlen(dir) + strlen(stem) + 3;
    char *prefix = malloc(n);
    if (!prefix) return NULL;
    snprintf(prefix, n, "%s%s%s.", dir, *dir ? "/" : "", stem);
    size_t k = strlen(prefix);
    acv__entry *best = NULL;
    int best_rank = 99;
    for (size_t i = lower_bound(a, prefix); i < a->n && !strncmp(a->e[i].path, prefix, k); i++) {
        const char *ext = a->e[i].path + k;
        for (int r = 0; EXT[r] && r < best_rank; r++)
            if (!strcasecmp(ext, EXT[r])) {
                best = &a->e[i];
                best_rank = r;
            }
    }
    free(prefix);
    return best;
}

bool acv__archive_has_dir(const acv__archive *a, const char *dir)
{
    if (!*dir) return a->n > 0;
    size_t n = strlen(dir);
    char *prefix = malloc(n + 2);
    if (!prefix) return false;
    snprintf(prefix, n + 2, "%s/", dir);
    size_t i = lower_bound(a, prefix);
    bool yes = i < a->n && !strncmp(a->e[i].path, prefix, n + 1);
    free(prefix);
    return yes;
}

int acv__entry_read(const acv__entry *e, size_t max, char **out, size_t *len)
{
    *out = NULL;
    if (!e->tmp) return acv_error(ACV_EINVAL, "%s: already consumed", e->path);
    if ((uint64_t)e->size > max)
        return acv_error(ACV_ERANGE, "%s: %lld bytes, more than the %zu MiB allowed for an annotation file", e->path,
                         (long long)e->size, max >> 20);
    uint8_t *buf;
    int rc = acv_file_read(e->tmp, max, &buf, len);
    if (rc) return acv_error_prefix(rc, "%s: ", e->path);
    *out = (char *)buf;
    return 0;
}
