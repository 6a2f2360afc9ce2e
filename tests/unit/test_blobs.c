/* Tests for platform/blobs: content addressing (SHA-256 paths, the same bytes stored once),
 * atomic puts that leave no temporary files, refusal of anything that is not a hash,
 * batches that remove what a failed transaction stored (but never a blob someone else holds
 * or references), reference counts with collection, the start-up collection of files left
 * by a crash, and concurrent writers of the same bytes. */
#include <dirent.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "autocv/error.h"
#include "base/file.h"
#include "platform/blobs.h"
#include "platform/db.h"

static char g_dir[64];

static int setup(void **state)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/acv-test-blobs-XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state)
{
    acv_remove_tree(g_dir);
    return 0;
}

/* A fresh data directory per test. */
static const char *data_dir(const char *name)
{
    static char p[128];
    snprintf(p, sizeof p, "%s/%s", g_dir, name);
    assert_int_equal(acv_mkdirs(p), 0);
    return p;
}

static int count_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

static bool blob_exists(const char *data, const char *hash)
{
    char p[256];
    snprintf(p, sizeof p, "%s/blobs/%.2s/%s", data, hash, hash);
    return acv_path_exists(p);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static acv_db *open_db(const char *data)
{
    char p[256];
    snprintf(p, sizeof p, "%s/autocv.db", data);
    acv_db *db;
    assert_int_equal(acv_db_open(p, NULL, &db), 0);
    return db;
}

static int64_t refs_of(acv_dbconn *c, const char *hash)
{
    int64_t n = -1;
    assert_int_equal(acv_db_query_int(c, &n, -1, "SELECT refs FROM blobs WHERE hash = ?", "s", hash), 0);
    return n;
}

static void test_put_get_dedupe(void **state)
{
    const char *data = data_dir("dedupe");
    acv_blobs *b;
    assert_int_equal(acv_blobs_open(data, &b), 0);
    char h1[65], h2[65], h3[65];
    assert_int_equal(acv_blobs_put_mem(b, "hello", 5, h1), 0);
    assert_string_equal(h1, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
    char *path = acv_blobs_path(b, h1);
    assert_non_null(path);
    char expect[256];
    snprintf(expect, sizeof expect, "%s/blobs/2c/%s", data, h1);
    assert_string_equal(path, expect);
    uint8_t *buf;
    size_t len;
    assert_int_equal(acv_file_read(path, 100, &buf, &len), 0);
    assert_int_equal(len, 5);
    assert_memory_equal(buf, "hello", 5);
    free(buf);
    free(path);

    /* The same bytes again, from memory and from a file: one blob; the file is consumed. */
    assert_int_equal(acv_blobs_put_mem(b, "hello", 5, h2), 0);
    assert_string_equal(h1, h2);
    char tmp[256];
    snprintf(tmp, sizeof tmp, "%s/tmp/upload-1", data);
    write_file(tmp, "hello");
    int64_t size = 0;
    assert_int_equal(acv_blobs_put_file(b, tmp, h3, &size), 0);
    assert_string_equal(h1, h3);
    assert_int_equal(size, 5);
    assert_false(acv_path_exists(tmp));
    /* Other bytes: another blob. */
    write_file(tmp, "world!");
    assert_int_equal(acv_blobs_put_file(b, tmp, h3, &size), 0);
    assert_string_not_equal(h1, h3);
    assert_int_equal(size, 6);
    assert_int_equal(acv_blobs_disk_files(b), 2);
    assert_int_equal(acv_blobs_disk_bytes(b), 11);
    /* An empty blob is a blob too. */
    assert_int_equal(acv_blobs_put_mem(b, "", 0, h2), 0);
    assert_string_equal(h2, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    /* Puts leave nothing in tmp/. */
    snprintf(tmp, sizeof tmp, "%s/tmp", data);
    assert_int_equal(count_files(tmp), 0);
    acv_blobs_close(b);
}

static void test_bad_hash_refused(void **state)
{
    const char *data = data_dir("badhash");
    acv_blobs *b;
    assert_int_equal(acv_blobs_open(data, &b), 0);
    char h[65];
    assert_int_equal(acv_blobs_put_mem(b, "x", 1, h), 0);
    char upper[65];
    for (int i = 0; i < 65; i++) upper[i] = (char)(h[i] >= 'a' && h[i] <= 'f' ? h[i] - 32 : h[i]);
    const char *bad[] = {"../../../etc/passwd", "", upper, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b982",
                         "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b98244",
                         "2c/24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
                         "zzf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        acv_error_clear();
        assert_null(acv_blobs_path(b, bad[i]));
        assert_non_null(strstr(acv_errmsg(), "not a blob hash"));
        assert_false(acv_blobs_hash_ok(bad[i]));
    }
    assert_null(acv_blobs_path(b, NULL));
    /* Well formed but absent. */
    assert_null(acv_blobs_path(b, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"));
    assert_non_null(strstr(acv_errmsg(), "not in the store"));
    assert_true(acv_blobs_hash_ok(h));
    /* References refuse non-hashes too. */
    acv_db *db = open_db(data);
    acv_dbconn *c;
    assert_int_equal(acv_db_acquire(db, &c), 0);
    assert_int_equal(acv_blobs_ref(c, "../x", 1), ACV_EINVAL);
    assert_int_equal(acv_blobs_collect(b, c, "../x"), ACV_EINVAL);
    acv_db_release(c);
    acv_db_close(db);
    /* A missing source file stores nothing. */
    char tmp[256];
    snprintf(tmp, sizeof tmp, "%s/tmp/none", data);
    int64_t size;
    assert_int_equal(acv_blobs_put_file(b, tmp, h, &size), ACV_ENOTFOUND);
    assert_int_equal(acv_blobs_disk_files(b), 1);
    acv_blobs_close(b);
}

static void test_batch_rollback_and_commit(void **state)
{
    const char *data = data_dir("batch");
    acv_blobs *b;
    assert_int_equal(acv_blobs_open(data, &b), 0);
    acv_db *db = open_db(data);
    acv_dbconn *c;
    assert_int_equal(acv_db_acquire(db, &c), 0);

    /* "kept" is referenced by a committed row before the failed batch runs. */
    acv_blob_batch *t;
    char kept[65], fresh[65];
    assert_int_equal(acv_blobs_batch_new(b, &t), 0);
    assert_int_equal(acv_blobs_batch_put_mem(t, "kept", 4, kept), 0);
    assert_int_equal(acv_blobs_batch_sync(t), 0);
    assert_int_equal(acv_blobs_batch_sync(t), 0); /* nothing new: a no-op */
    assert_int_equal(acv_db_begin(c), 0);
    assert_int_equal(acv_blobs_ref(c, kept, 4), 0);
    assert_int_equal(acv_db_commit(c), 0);
    acv_blobs_batch_end(t, c);
    assert_true(blob_exists(data, kept));
    assert_int_equal(refs_of(c, kept), 1);

    /* A failed transaction: the blob it created goes, the one another row uses stays. */
    assert_int_equal(acv_blobs_batch_new(b, &t), 0);
    assert_int_equal(acv_blobs_batch_put_mem(t, "fresh", 5, fresh), 0);
    assert_int_equal(acv_blobs_batch_put_mem(t, "kept", 4, kept), 0);
    assert_true(blob_exists(data, fresh));
    assert_int_equal(acv_db_begin(c), 0);
    assert_int_equal(acv_blobs_ref(c, fresh, 5), 0);
    assert_int_equal(acv_blobs_ref(c, kept, 4), 0);
    acv_db_rollback(c);
    acv_blobs_batch_end(t, c);
    assert_false(blob_exists(data, fresh));
    assert_true(blob_exists(data, kept));
    assert_int_equal(refs_of(c, kept), 1);
    assert_int_equal(refs_of(c, fresh), -1); /* no row */

    /* A committed one keeps its blob; dropping the last reference and collecting removes it. */
    assert_int_equal(acv_blobs_batch_new(b, &t), 0);
    assert_int_equal(acv_blobs_batch_put_mem(t, "fresh", 5, fresh), 0);
    assert_int_equal(acv_blobs_batch_sync(t), 0);
    assert_int_equal(acv_db_begin(c), 0);
    assert_int_equal(acv_blobs_ref(c, fresh, 5), 0);
    assert_int_equal(acv_blobs_ref(c, fresh, 5), 0);
    assert_int_equal(acv_db_commit(c), 0);
    acv_blobs_batch_end(t, c);
    assert_true(blob_exists(data, fresh));
    assert_int_equal(refs_of(c, fresh), 2);
    assert_int_equal(acv_blobs_unref(c, fresh), 0);
    assert_int_equal(acv_blobs_collect(b, c, fresh), 0);
    assert_true(blob_exists(data, fresh)); /* one reference left */
    assert_int_equal(acv_blobs_unref(c, fresh), 0);
    assert_int_equal(refs_of(c, fresh), -1);
    assert_int_equal(acv_blobs_collect(b, c, fresh), 0);
    assert_false(blob_exists(data, fresh));

    acv_db_release(c);
    acv_db_close(db);
    acv_blobs_close(b);
}

static void test_pins_protect_shared_blobs(void **state)
{
    const char *data = data_dir("pins");
    acv_blobs *b;
    assert_int_equal(acv_blobs_open(data, &b), 0);
    acv_db *db = open_db(data);
    acv_dbconn *c;
    assert_int_equal(acv_db_acquire(db, &c), 0);
    char h1[65], h2[65];
    /* Two writers store the same new bytes; the one that created the file fails first. */
    acv_blob_batch *t1, *t2;
    assert_int_equal(acv_blobs_batch_new(b, &t1), 0);
    assert_int_equal(acv_blobs_batch_new(b, &t2), 0);
    assert_int_equal(acv_blobs_batch_put_mem(t1, "shared", 6, h1), 0);
    assert_int_equal(acv_blobs_batch_put_mem(t2, "shared", 6, h2), 0);
    assert_string_equal(h1, h2);
    acv_blobs_batch_end(t1, c);
    assert_true(blob_exists(data, h1)); /* t2 still holds it */
    /* A collection while it is held leaves it too. */
    assert_int_equal(acv_blobs_collect(b, c, h1), 0);
    assert_true(blob_exists(data, h1));
    /* t2 fails as well: the last holder removes the unreferenced file. */
    acv_blobs_batch_end(t2, c);
    assert_false(blob_exists(data, h1));

    /* Same race, but the second writer commits a reference: the file stays. */
    assert_int_equal(acv_blobs_batch_new(b, &t1), 0);
    assert_int_equal(acv_blobs_batch_new(b, &t2), 0);
    assert_int_equal(acv_blobs_batch_put_mem(t1, "shared", 6, h1), 0);
    assert_int_equal(acv_blobs_batch_put_mem(t2, "shared", 6, h2), 0);
    acv_blobs_batch_end(t1, c);
    assert_int_equal(acv_db_begin(c), 0);
    assert_int_equal(acv_blobs_ref(c, h2, 6), 0);
    assert_int_equal(acv_db_commit(c), 0);
    acv_blobs_batch_end(t2, c);
    assert_true(blob_exists(data, h1));

    /* A plain put is protected for the grace period: collection leaves it. */
    char h3[65];
    assert_int_equal(acv_blobs_put_mem(b, "plain", 5, h3), 0);
    assert_int_equal(acv_blobs_collect(b, c, h3), 0);
    assert_true(blob_exists(data, h3));
    acv_blobs_batch_end(NULL, c); /* a no-op */
    acv_db_release(c);
    acv_db_close(db);
    acv_blobs_close(b);
}

static void test_gc_after_crash(void **state)
{
    const char *data = data_dir("gc");
    acv_blobs *b;
    assert_int_equal(acv_blobs_open(data, &b), 0);
    acv_db *db = open_db(data);
    acv_dbconn *c;
    assert_int_equal(acv_db_acquire(db, &c), 0);
    char orphan[65], used[65], stale[65];
    /* orphan: a file whose transaction never committed (a crash). */
    assert_int_equal(acv_blobs_put_mem(b, "orphan", 6, orphan), 0);
    /* used: referenced by an image; its count is wrong (as after a project cascade). */
    assert_int_equal(acv_blobs_put_mem(b, "used", 4, used), 0);
    /* stale: a row claiming references nothing holds any more. */
    assert_int_equal(acv_blobs_put_mem(b, "stale", 5, stale), 0);
    assert_int_equal(acv_db_exec(c, "INSERT INTO projects(name, created_at, updated_at) VALUES('p', 't', 't')", NULL),
                     0);
    assert_int_equal(acv_db_exec(c, "INSERT INTO blobs(hash, size, refs, created_at) VALUES(?, 4, 7, 't'), "
                                    "(?, 5, 3, 't')", "ss", used, stale),
                     0);
    assert_int_equal(acv_db_exec(c, "INSERT INTO images(project_id, blob_hash, filename, format, width, height, "
                                    "channels, size, created_at) VALUES(1, ?, 'a.png', 'png', 1, 1, 3, 4, 't')",
                                 "s", used),
                     0);
    acv_blobs_close(b); /* the process ends: the grace of the plain puts is gone */
    assert_int_equal(acv_blobs_open(data, &b), 0);
    int64_t removed = -1;
    assert_int_equal(acv_blobs_gc(b, c, &removed), 0);
    assert_int_equal(removed, 2);
    assert_false(blob_exists(data, orphan));
    assert_false(blob_exists(data, stale));
    assert_true(blob_exists(data, used));
    assert_int_equal(refs_of(c, used), 1);
    assert_int_equal(refs_of(c, stale), -1);
    /* A stray file that is not a blob is left alone. */
    char stray[256];
    snprintf(stray, sizeof stray, "%s/blobs/%.2s/notes.txt", data, used);
    write_file(stray, "keep me");
    assert_int_equal(acv_blobs_gc(b, c, &removed), 0);
    assert_int_equal(removed, 0);
    assert_true(acv_path_exists(stray));
    acv_db_release(c);
    acv_db_close(db);
    acv_blobs_close(b);
}

typedef struct writer {
    acv_blobs *b;
    char hash[65];
    int rc;
} writer;

static void *write_same(void *arg)
{
    writer *w = arg;
    static const char payload[] = "the same bytes written by many threads at once";
    for (int i = 0; i < 50 && !w->rc; i++) w->rc = acv_blobs_put_mem(w->b, payload, sizeof payload, w->hash);
    return NULL;
}

static void test_concurrent_puts(void **state)
{
    const char *data = data_dir("concurrent");
    acv_blobs *b;
    assert_int_equal(acv_blobs_open(data, &b), 0);
    pthread_t th[8];
    writer w[8];
    for (int i = 0; i < 8; i++) {
        w[i] = (writer){.b = b};
        assert_int_equal(pthread_create(&th[i], NULL, write_same, &w[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].rc, 0);
        assert_string_equal(w[i].hash, w[0].hash);
    }
    assert_int_equal(acv_blobs_disk_files(b), 1);
    char tmp[256];
    snprintf(tmp, sizeof tmp, "%s/tmp", data);
    assert_int_equal(count_files(tmp), 0);
    acv_blobs_close(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_get_dedupe),
        cmocka_unit_test(test_bad_hash_refused),
        cmocka_unit_test(test_batch_rollback_and_commit),
        cmocka_unit_test(test_pins_protect_shared_blobs),
        cmocka_unit_test(test_gc_after_crash),
        cmocka_unit_test(test_concurrent_puts),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
