/* The content-addressed blob store: atomic writes, pins that keep files a writer still
 * needs, reference counts in the `blobs` table and collection of unreferenced files (see
 * blobs.h). */
#include "platform/blobs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "autocv/error.h"
#include "base/file.h"
#include "base/log.h"

#define NBUCKETS 4096

/* A blob someone holds: pinned by batches, or within the grace period of a plain put.
 * doomed: a failed writer created it and someone else still held it, so the last holder to
 * let go checks whether it is referenced. */
typedef struct hold {
    struct hold *next;
    char hash[65];
    int pins;
    time_t grace_until;
    bool doomed;
} hold;

struct acv_blobs {
    char *root, *tmp;
    pthread_mutex_t mu;
    hold *buckets[NBUCKETS];
};

typedef struct batch_item {
    char hash[65];
    bool created;
} batch_item;

struct acv_blob_batch {
    acv_blobs *b;
    batch_item *items;
    size_t n, cap;
    bool unsynced; /* blobs were stored since the last acv_blobs_batch_sync */
};

/* ---- hashing ---------------------------------------------------------------------------- */

static void hex_of(const unsigned char *h, char out[65])
{
    static const char HEX[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = HEX[h[i] >> 4];
        out[2 * i + 1] = HEX[h[i] & 15];
    }
    out[64] = 0;
}

bool acv_blobs_hash_ok(const char *hash)
{
    if (!hash) return false;
    for (int i = 0; i < 64; i++)
        if (!((hash[i] >= '0' && hash[i] <= '9') || (hash[i] >= 'a' && hash[i] <= 'f'))) return false;
    return hash[64] == 0;
}

void acv_blobs_hash_mem(const void *data, size_t len, char hash[65])
{
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, data, len);
    hex_of(h, hash);
}

int acv_blobs_hash_file(const char *path, char hash[65], int64_t *size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return acv_error(errno == ENOENT ? ACV_ENOTFOUND : ACV_EIO, "%s: %s", path, strerror(errno));
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    enum { CHUNK = 1 << 20 };
    unsigned char *buf = malloc(CHUNK);
    if (!buf) {
        close(fd);
        return acv_error(ACV_ENOMEM, "out of memory");
    }
    int64_t total = 0;
    int rc = 0;
    for (;;) {
        ssize_t n = read(fd, buf, CHUNK);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            rc = acv_error(ACV_EIO, "%s: %s", path, strerror(errno));
            break;
        }
        if (n == 0) break;
        crypto_hash_sha256_update(&st, buf, (unsigned long long)n);
        total += n;
    }
    free(buf);
    close(fd);
    if (rc) return rc;
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_final(&st, h);
    hex_of(h, hash);
    if (size) *size = total;
    return 0;
}

/* ---- holds (under b->mu) ------------------------------------------------------------------ */

static unsigned bucket_of(const char *hash)
{
    unsigned v = 0;
    for (int i = 0; i < 6; i++) v = v * 16 + (unsigned)(hash[i] <= '9' ? hash[i] - '0' : hash[i] - 'a' + 10);
    return v % NBUCKETS;
}

static hold *hold_find(acv_blobs *b, const char *hash, bool create)
{
    hold **pp = &b->buckets[bucket_of(hash)];
    time_t now = time(NULL);
    hold *found = NULL;
    while (*pp) {
        hold *h = *pp;
        if (!strcmp(h->hash, hash)) {
            found = h;
            pp = &h->next;
        } else if (h->pins == 0 && h->grace_until <= now) {
            *pp = h->next; /* an expired plain-put grace: forget it */
            free(h);
        } else {
            pp = &h->next;
        }
    }
    if (found || !create) return found;
    hold *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    memcpy(h->hash, hash, 65);
    h->next = b->buckets[bucket_of(hash)];
    b->buckets[bucket_of(hash)] = h;
    return h;
}

static bool held(const hold *h) { return h && (h->pins > 0 || h->grace_until > time(NULL)); }

static void hold_drop_if_idle(acv_blobs *b, hold *h)
{
    if (held(h)) return;
    for (hold **pp = &b->buckets[bucket_of(h->hash)]; *pp; pp = &(*pp)->next)
        if (*pp == h) {
            *pp = h->next;
            free(h);
            return;
        }
}

/* ---- paths ------------------------------------------------------------------------------ */

static void blob_file(const acv_blobs *b, const char *hash, char *out, size_t n)
{
    snprintf(out, n, "%s/%.2s/%s", b->root, hash, hash);
}

char *acv_blobs_path(const acv_blobs *b, const char *hash)
{
    if (!acv_blobs_hash_ok(hash)) {
        acv_error(ACV_ENOTFOUND, "'%.80s' is not a blob hash (64 lowercase hex digits)", hash ? hash : "(null)");
        return NULL;
    }
    size_t n = strlen(b->root) + 70;
    char *p = malloc(n);
    if (!p) {
        acv_error(ACV_ENOMEM, "out of memory");
        return NULL;
    }
    blob_file(b, hash, p, n);
    struct stat st;
    if (stat(p, &st) || !S_ISREG(st.st_mode)) {
        acv_error(ACV_ENOTFOUND, "blob %s is not in the store", hash);
        free(p);
        return NULL;
    }
    return p;
}

int acv_blobs_open(const char *data_dir, acv_blobs **out)
{
    *out = NULL;
    acv_blobs *b = calloc(1, sizeof *b);
    if (!b) return acv_error(ACV_ENOMEM, "out of memory");
    b->root = acv_path_join(data_dir, "blobs");
    b->tmp = acv_path_join(data_dir, "tmp");
    int rc = (!b->root || !b->tmp) ? acv_error(ACV_ENOMEM, "out of memory") : 0;
    if (!rc) rc = acv_mkdirs(b->root);
    if (!rc) rc = acv_mkdirs(b->tmp);
    if (rc || sodium_init() < 0) {
        if (!rc) rc = acv_error(ACV_EIO, "libsodium failed to initialize");
        free(b->root);
        free(b->tmp);
        free(b);
        return rc;
    }
    pthread_mutex_init(&b->mu, NULL);
    *out = b;
    return 0;
}

void acv_blobs_close(acv_blobs *b)
{
    if (!b) return;
    for (int i = 0; i < NBUCKETS; i++)
        for (hold *h = b->buckets[i], *next; h; h = next) {
            next = h->next;
            free(h);
        }
    pthread_mutex_destroy(&b->mu);
    free(b->root);
    free(b->tmp);
    free(b);
}

/* ---- writes ----------------------------------------------------------------------------- */

/* Copies src to a new temporary file in the store's tmp dir (for a source on another
 * filesystem); *out is its malloc'd path. */
static int copy_to_tmp(acv_blobs *b, const char *src, char **out)
{
    size_t n = strlen(b->tmp) + 32;
    char *tmp = malloc(n);
    if (!tmp) return acv_error(ACV_ENOMEM, "out of memory");
    snprintf(tmp, n, "%s/blob-XXXXXX", b->tmp);
    int in = open(src, O_RDONLY | O_CLOEXEC), fd = in < 0 ? -1 : mkstemp(tmp);
    int rc = 0;
    if (in < 0) rc = acv_error(ACV_EIO, "%s: %s", src, strerror(errno));
    else if (fd < 0) rc = acv_error(ACV_EIO, "%s: %s", tmp, strerror(errno));
    char buf[65536];
    while (!rc) {
        ssize_t r = read(in, buf, sizeof buf);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) rc = acv_error(ACV_EIO, "%s: %s", src, strerror(errno));
        if (r <= 0) break;
        for (ssize_t off = 0; !rc && off < r;) {
            ssize_t w = write(fd, buf + off, (size_t)(r - off));
            if (w < 0 && errno == EINTR) continue;
            if (w < 0) rc = acv_error(ACV_EIO, "%s: %s", tmp, strerror(errno));
            else off += w;
        }
    }
    if (in >= 0) close(in);
    if (fd >= 0) {
        close(fd);
        if (rc) unlink(tmp);
    }
    if (rc) {
        free(tmp);
        return rc;
    }
    *out = tmp;
    return 0;
}

static int fsync_path(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return acv_error(ACV_EIO, "%s: %s", path, strerror(errno));
    int rc = fsync(fd) ? acv_error(ACV_EIO, "fsync %s: %s", path, strerror(errno)) : 0;
    close(fd);
    return rc;
}

/* Moves tmp_path into the store. pin: pin it (batch) rather than give it the plain grace; a
 * pinned blob is made durable later by acv_blobs_batch_sync (one syncfs for the whole batch),
 * a plain one now (fsync of the file and its directory). *created: this call put the file
 * there (it was absent). tmp_path is gone afterwards. */
static int store(acv_blobs *b, const char *tmp_path, bool pin, char hash[65], int64_t *size, bool *created)
{
    *created = false;
    int64_t sz = 0;
    int rc = acv_blobs_hash_file(tmp_path, hash, &sz);
    if (!rc && !pin) rc = fsync_path(tmp_path);
    char dir[4200], dst[4300];
    snprintf(dir, sizeof dir, "%s/%.2s", b->root, hash);
    blob_file(b, hash, dst, sizeof dst);
    bool new_dir = false;
    if (!rc && mkdir(dir, 0755) == 0) new_dir = true;
    else if (!rc && errno != EEXIST) rc = acv_error(ACV_EIO, "%s: %s", dir, strerror(errno));
    if (rc) {
        unlink(tmp_path);
        return rc;
    }
    char *copy = NULL;
    pthread_mutex_lock(&b->mu);
    hold *h = hold_find(b, hash, true);
    struct stat st;
    if (!h) {
        rc = acv_error(ACV_ENOMEM, "out of memory");
        unlink(tmp_path);
    } else if (lstat(dst, &st) == 0 && S_ISREG(st.st_mode)) {
        unlink(tmp_path);
    } else if (rename(tmp_path, dst) == 0) {
        *created = true;
    } else if (errno == EXDEV) {
        /* Another filesystem: copy next to the store first, then rename. */
        pthread_mutex_unlock(&b->mu);
        rc = copy_to_tmp(b, tmp_path, &copy);
        if (!rc && !pin) rc = fsync_path(copy);
        pthread_mutex_lock(&b->mu);
        h = rc ? NULL : hold_find(b, hash, true);
        if (!rc && !h) rc = acv_error(ACV_ENOMEM, "out of memory");
        if (!rc && lstat(dst, &st) == 0 && S_ISREG(st.st_mode)) unlink(copy);
        else if (!rc && rename(copy, dst) == 0) *created = true;
        else if (!rc) rc = acv_error(ACV_EIO, "%s -> %s: %s", copy, dst, strerror(errno));
        if (rc && copy) unlink(copy);
        unlink(tmp_path);
    } else {
        rc = acv_error(ACV_EIO, "%s -> %s: %s", tmp_path, dst, strerror(errno));
        unlink(tmp_path);
    }
    if (!rc) {
        if (pin) h->pins++;
        else if (h->grace_until < time(NULL) + ACV_BLOBS_GRACE_S) h->grace_until = time(NULL) + ACV_BLOBS_GRACE_S;
    } else if (h) {
        hold_drop_if_idle(b, h);
    }
    pthread_mutex_unlock(&b->mu);
    free(copy);
    if (!rc && *created && !pin) {
        rc = acv_fsync_dir(dir);
        if (!rc && new_dir) rc = acv_fsync_dir(b->root);
        if (rc) acv_warn("blob %s stored but its directory could not be synced: %s", hash, acv_errmsg());
        rc = 0; /* the file is in place; a failed directory sync only weakens durability */
    }
    if (!rc && size) *size = sz;
    return rc;
}

/* Writes data to a new temporary file in the store's tmp dir (fsynced); *out its path. */
static int mem_to_tmp(acv_blobs *b, const void *data, size_t len, char **out)
{
    size_t n = strlen(b->tmp) + 32;
    char *tmp = malloc(n);
    if (!tmp) return acv_error(ACV_ENOMEM, "out of memory");
    snprintf(tmp, n, "%s/blob-XXXXXX", b->tmp);
    int fd = mkstemp(tmp), rc = 0;
    if (fd < 0) rc = acv_error(ACV_EIO, "%s: %s", tmp, strerror(errno));
    for (size_t off = 0; !rc && off < len;) {
        ssize_t w = write(fd, (const char *)data + off, len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) rc = acv_error(ACV_EIO, "%s: %s", tmp, strerror(errno));
        else off += (size_t)w;
    }
    if (fd >= 0) {
        close(fd);
        if (rc) unlink(tmp);
    }
    if (rc) {
        free(tmp);
        return rc;
    }
    *out = tmp;
    return 0;
}

int acv_blobs_put_file(acv_blobs *b, const char *tmp_path, char hash[65], int64_t *size)
{
    bool created;
    return store(b, tmp_path, false, hash, size, &created);
}

int acv_blobs_put_mem(acv_blobs *b, const void *data, size_t len, char hash[65])
{
    char *tmp;
    bool created;
    int rc = mem_to_tmp(b, data, len, &tmp);
    if (rc) return rc;
    rc = store(b, tmp, false, hash, NULL, &created);
    free(tmp);
    return rc;
}

/* ---- batches ---------------------------------------------------------------------------- */

int acv_blobs_batch_new(acv_blobs *b, acv_blob_batch **out)
{
    *out = calloc(1, sizeof **out);
    if (!*out) return acv_error(ACV_ENOMEM, "out of memory");
    (*out)->b = b;
    return 0;
}

static int batch_add(acv_blob_batch *t, const char *hash, bool created)
{
    if (t->n == t->cap) {
        size_t nc = t->cap ? t->cap * 2 : 16;
        batch_item *ni = realloc(t->items, nc * sizeof *ni);
        if (!ni) return acv_error(ACV_ENOMEM, "out of memory");
        t->items = ni;
        t->cap = nc;
    }
    memcpy(t->items[t->n].hash, hash, 65);
    t->items[t->n++].created = created;
    return 0;
}

/* After store() pinned hash: records it, or (out of memory) unpins it again. */
static int batch_record(acv_blob_batch *t, const char *hash, bool created)
{
    int rc = batch_add(t, hash, created);
    if (rc) {
        pthread_mutex_lock(&t->b->mu);
        hold *h = hold_find(t->b, hash, false);
        if (h) {
            h->pins--;
            if (created) h->doomed = true;
            hold_drop_if_idle(t->b, h);
        }
        pthread_mutex_unlock(&t->b->mu);
    }
    return rc;
}

int acv_blobs_batch_put_file(acv_blob_batch *t, const char *tmp_path, char hash[65], int64_t *size)
{
    bool created;
    int rc = store(t->b, tmp_path, true, hash, size, &created);
    t->unsynced |= rc == 0;
    return rc ? rc : batch_record(t, hash, created);
}

int acv_blobs_batch_put_mem(acv_blob_batch *t, const void *data, size_t len, char hash[65])
{
    char *tmp;
    bool created;
    int rc = mem_to_tmp(t->b, data, len, &tmp);
    if (rc) return rc;
    rc = store(t->b, tmp, true, hash, NULL, &created);
    free(tmp);
    t->unsynced |= rc == 0;
    return rc ? rc : batch_record(t, hash, created);
}

int acv_blobs_batch_sync(acv_blob_batch *t)
{
    if (!t->unsynced) return 0;
    /* One flush of the filesystem holding the store: the batch's files and directory
     * entries, and any not yet durable blob it found already there (another batch's). */
    int fd = open(t->b->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return acv_error(ACV_EIO, "%s: %s", t->b->root, strerror(errno));
    int rc = syncfs(fd) ? acv_error(ACV_EIO, "syncing %s: %s", t->b->root, strerror(errno)) : 0;
    close(fd);
    if (!rc) t->unsynced = false;
    return rc;
}

/* Under b->mu: removes the file of hash when no `blobs` row names it. */
static void remove_if_unreferenced(acv_blobs *b, acv_dbconn *c, const char *hash)
{
    int64_t n = 1;
    if (acv_db_query_int(c, &n, 0, "SELECT count(*) FROM blobs WHERE hash = ?", "s", hash)) {
        acv_warn("blob %s: cannot check its references (%s); kept", hash, acv_errmsg());
        return;
    }
    if (n) return;
    char path[4300];
    blob_file(b, hash, path, sizeof path);
    if (unlink(path) && errno != ENOENT) acv_warn("%s: cannot remove: %s", path, strerror(errno));
}

void acv_blobs_batch_end(acv_blob_batch *t, acv_dbconn *c)
{
    if (!t) return;
    acv_blobs *b = t->b;
    pthread_mutex_lock(&b->mu);
    for (size_t i = 0; i < t->n; i++) {
        hold *h = hold_find(b, t->items[i].hash, false);
        if (!h) continue;
        h->pins--;
        bool check = t->items[i].created || h->doomed;
        if (check && held(h)) {
            h->doomed = true; /* someone else still holds it: they check when they let go */
        } else if (check) {
            remove_if_unreferenced(b, c, h->hash);
        }
        hold_drop_if_idle(b, h);
    }
    pthread_mutex_unlock(&b->mu);
    free(t->items);
    free(t);
}

/* ---- references --------------------------------------------------------------------------- */

int acv_blobs_ref(acv_dbconn *c, const char *hash, int64_t size)
{
    if (!acv_blobs_hash_ok(hash)) return acv_error(ACV_EINVAL, "'%.80s' is not a blob hash", hash);
    char now[ACV_DB_TIME_LEN];
    acv_db_time(acv_db_now(), now);
    return acv_db_exec(c,
                       "INSERT INTO blobs(hash, size, refs, created_at) VALUES(?, ?, 1, ?) "
                       "ON CONFLICT(hash) DO UPDATE SET refs = refs + 1",
                       "sIs", hash, size, now);
}

int acv_blobs_unref(acv_dbconn *c, const char *hash)
{
    int rc = acv_db_exec(c, "UPDATE blobs SET refs = refs - 1 WHERE hash = ? AND refs > 0", "s", hash);
    if (rc) return rc;
    /* A row some table still points at without holding a ref (a foreign key violation) stays;
     * acv_blobs_gc recounts at the next start. */
    if ((rc = acv_db_begin(c))) return rc;
    int del = acv_db_exec(c, "DELETE FROM blobs WHERE hash = ? AND refs <= 0", "s", hash);
    if (del == ACV_EINVAL) {
        acv_db_rollback(c);
        return 0;
    }
    return acv_db_end(c, del);
}

int acv_blobs_collect(acv_blobs *b, acv_dbconn *c, const char *hash)
{
    if (!acv_blobs_hash_ok(hash)) return acv_error(ACV_EINVAL, "'%.80s' is not a blob hash", hash);
    pthread_mutex_lock(&b->mu);
    hold *h = hold_find(b, hash, false);
    if (held(h)) h->doomed = true;
    else remove_if_unreferenced(b, c, hash);
    if (h) hold_drop_if_idle(b, h);
    pthread_mutex_unlock(&b->mu);
    return 0;
}

/* ---- disk usage and collection ------------------------------------------------------------ */

/* Calls fn for every file under blobs/xx/ (name is the file name). */
static void walk(const acv_blobs *b, void (*fn)(void *ud, const char *dir, const char *name, const struct stat *st),
                 void *ud)
{
    DIR *top = opendir(b->root);
    if (!top) return;
    struct dirent *e;
    while ((e = readdir(top))) {
        if (e->d_name[0] == '.') continue;
        char dir[4200];
        snprintf(dir, sizeof dir, "%s/%s", b->root, e->d_name);
        DIR *sub = opendir(dir);
        if (!sub) continue;
        struct dirent *f;
        while ((f = readdir(sub))) {
            if (f->d_name[0] == '.') continue;
            char path[4500];
            snprintf(path, sizeof path, "%s/%s", dir, f->d_name);
            struct stat st;
            if (lstat(path, &st) == 0 && S_ISREG(st.st_mode)) fn(ud, dir, f->d_name, &st);
        }
        closedir(sub);
    }
    closedir(top);
}

typedef struct usage {
    int64_t bytes, files;
} usage;

static void add_usage(void *ud, const char *dir, const char *name, const struct stat *st)
{
    usage *u = ud;
    u->bytes += st->st_size;
    u->files++;
}

int64_t acv_blobs_disk_bytes(const acv_blobs *b)
{
    usage u = {0, 0};
    walk(b, add_usage, &u);
    return u.bytes;
}

int64_t acv_blobs_disk_files(const acv_blobs *b)
{
    usage u = {0, 0};
    walk(b, add_usage, &u);
    return u.files;
}

typedef struct gc_ctx {
    acv_blobs *b;
    acv_dbconn *c;
    int64_t removed;
    int rc;
} gc_ctx;

static void gc_file(void *ud, const char *dir, const char *name, const struct stat *st)
{
    gc_ctx *g = ud;
    if (g->rc) return;
    if (!acv_blobs_hash_ok(name) || strncmp(name, dir + strlen(dir) - 2, 2)) {
        acv_warn("%s/%s: not a blob; left alone", dir, name);
        return;
    }
    int64_t n = 0;
    if ((g->rc = acv_db_query_int(g->c, &n, 0, "SELECT count(*) FROM blobs WHERE hash = ?", "s", name))) return;
    if (n) return;
    hold *h = hold_find(g->b, name, false);
    if (held(h)) return;
    char path[4500];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (unlink(path) == 0) g->removed++;
    else acv_warn("%s: cannot remove: %s", path, strerror(errno));
}

int acv_blobs_gc(acv_blobs *b, acv_dbconn *c, int64_t *removed)
{
    if (removed) *removed = 0;
    int rc = acv_db_begin(c);
    if (rc) return rc;
    rc = acv_db_exec(c, "CREATE TEMP TABLE IF NOT EXISTS acv_blob_refs(hash TEXT PRIMARY KEY, n INTEGER NOT NULL)", "");
    if (!rc) rc = acv_db_exec(c, "DELETE FROM temp.acv_blob_refs", "");
    if (!rc)
        rc = acv_db_exec(c,
                         "INSERT INTO temp.acv_blob_refs SELECT hash, count(*) FROM ("
                         "SELECT blob_hash AS hash FROM images UNION ALL "
                         "SELECT thumb_hash FROM images WHERE thumb_hash IS NOT NULL UNION ALL "
                         "SELECT blob_hash FROM dataset_version_items) GROUP BY hash",
                         "");
    if (!rc)
        rc = acv_db_exec(c,
                         "UPDATE blobs SET refs = coalesce((SELECT n FROM temp.acv_blob_refs r WHERE r.hash = "
                         "blobs.hash), 0) WHERE refs IS NOT coalesce((SELECT n FROM temp.acv_blob_refs r WHERE "
                         "r.hash = blobs.hash), 0)",
                         "");
    if (!rc) rc = acv_db_exec(c, "DELETE FROM blobs WHERE refs = 0", "");
    if (!rc) rc = acv_db_exec(c, "DELETE FROM temp.acv_blob_refs", "");
    rc = acv_db_end(c, rc);
    if (rc) return acv_error_prefix(rc, "recounting blob references: ");
    gc_ctx g = {b, c, 0, 0};
    pthread_mutex_lock(&b->mu);
    walk(b, gc_file, &g);
    pthread_mutex_unlock(&b->mu);
    if (removed) *removed = g.removed;
    return g.rc;
}
