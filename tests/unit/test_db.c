/* Tests for platform/db: migrations (applied once, in order, atomically; a newer database is
 * refused), bind/row helpers, nested transactions, the connection pool under concurrent
 * writers, and the platform schema's label search index. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "autocv/error.h"
#include "base/file.h"
#include "platform/db.h"

static char g_dir[64];

static char *db_path(const char *name)
{
    static char p[256];
    snprintf(p, sizeof p, "%s/%s", g_dir, name);
    return p;
}

static int setup(void **state)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/acv-test-db-XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state)
{
    acv_remove_tree(g_dir);
    return 0;
}

static const acv_migration M3[] = {
    {1, "first", "CREATE TABLE a(x INTEGER); INSERT INTO a VALUES (1);"},
    {2, "second", "CREATE TABLE b(y TEXT NOT NULL UNIQUE);"},
    {3, "third", "CREATE TABLE c(z INTEGER); INSERT INTO a VALUES (3);"},
};

static int open_with(const char *path, const acv_migration *m, int n, acv_db **db)
{
    acv_db_options o = {.migrations = m, .nmigrations = n};
    return acv_db_open(path, &o, db);
}

static int64_t count(acv_db *db, const char *sql)
{
    acv_dbconn *c;
    assert_int_equal(acv_db_acquire(db, &c), 0);
    int64_t n = -1;
    assert_int_equal(acv_db_query_int(c, &n, -1, sql, NULL), 0);
    acv_db_release(c);
    return n;
}

static void test_migrations_apply_in_order_once(void **state)
{
    const char *p = db_path("mig.db");
    acv_db *db;
    assert_int_equal(open_with(p, M3, 2, &db), 0);
    int v;
    assert_int_equal(acv_db_version(db, &v), 0);
    assert_int_equal(v, 2);
    assert_int_equal(count(db, "SELECT COUNT(*) FROM a"), 1);
    acv_db_close(db);

    /* Reopening with one more migration applies only the new one. */
    assert_int_equal(open_with(p, M3, 3, &db), 0);
    assert_int_equal(acv_db_version(db, &v), 0);
    assert_int_equal(v, 3);
    assert_int_equal(count(db, "SELECT COUNT(*) FROM a"), 2); /* 1 from v1 (not re-run) + 1 from v3 */
    assert_int_equal(count(db, "SELECT COUNT(*) FROM schema_version"), 3);
    acv_dbconn *c;
    assert_int_equal(acv_db_acquire(db, &c), 0);
    char *mode;
    assert_int_equal(acv_db_query_text(c, &mode, "PRAGMA journal_mode", NULL), 0);
    assert_string_equal(mode, "wal");
    free(mode);
    int64_t fk;
    assert_int_equal(acv_db_query_int(c, &fk, 0, "PRAGMA foreign_keys", NULL), 0);
    assert_int_equal(fk, 1);
    acv_db_release(c);
    acv_db_close(db);
}

static void test_failed_migration_rolls_back(void **state)
{
    const char *p = db_path("fail.db");
    acv_migration bad[3] = {M3[0], M3[1], {3, "broken", "CREATE TABLE c(z INTEGER); INSERT INTO nowhere VALUES (1);"}};
    acv_db *db;
    assert_int_equal(open_with(p, bad, 2, &db), 0);
    acv_db_close(db);
    int rc = open_with(p, bad, 3, &db);
    assert_true(rc < 0);
    assert_null(db);
    assert_non_null(strstr(acv_errmsg(), "migration 3 (broken) failed"));
    assert_non_null(strstr(acv_errmsg(), "stays at version 2"));
    /* The database is still at version 2 and table c from the broken step does not exist. */
    assert_int_equal(open_with(p, M3, 2, &db), 0);
    int v;
    assert_int_equal(acv_db_version(db, &v), 0);
    assert_int_equal(v, 2);
    assert_int_equal(count(db, "SELECT COUNT(*) FROM sqlite_master WHERE name = 'c'"), 0);
    acv_db_close(db);
}

static void test_newer_database_is_refused(void **state)
{
    const char *p = db_path("newer.db");
    acv_db *db;
    assert_int_equal(open_with(p, M3, 3, &db), 0);
    acv_db_close(db);
    int rc = open_with(p, M3, 2, &db);
    assert_int_equal(rc, ACV_EUNSUPPORTED);
    assert_null(db);
    assert_non_null(strstr(acv_errmsg(), "schema version 3"));
    assert_non_null(strstr(acv_errmsg(), "newer autocv"));
    /* Nothing was changed: the newer binary still opens it at version 3. */
    assert_int_equal(open_with(p, M3, 3, &db), 0);
    int v;
    assert_int_equal(acv_db_version(db, &v), 0);
    assert_int_equal(v, 3);
    acv_db_close(db);
}

static void test_migration_list_must_be_sequential(void **state)
{
    acv_migration gap[2] = {{1, "one", "SELECT 1;"}, {3, "three", "SELECT 1;"}};
    acv_db *db;
    assert_int_equal(open_with(db_path("gap.db"), gap, 2, &db), ACV_EINVAL);
    assert_null(db);
}

static void test_helpers_and_row_json(void **state)
{
    acv_migration m[1] = {{1, "t", "CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT UNIQUE, score REAL, "
                                   "tags_json TEXT, ok INTEGER, blob BLOB);"}};
    acv_db *db;
    assert_int_equal(open_with(db_path("helpers.db"), m, 1, &db), 0);
    acv_dbconn *c;
    assert_int_equal(acv_db_acquire(db, &c), 0);
    json_t *tags = json_pack("[s,s]", "a", "b");
    assert_int_equal(acv_db_exec(c, "INSERT INTO t(name, score, tags_json, ok) VALUES(?, ?, ?, ?)", "sdjb", "x", 0.5,
                                 tags, 1),
                     0);
    assert_int_equal(acv_db_last_id(c), 1);
    assert_int_equal(acv_db_exec(c, "INSERT INTO t(name, score, tags_json, ok) VALUES(?, ?, ?, ?)", "snni", "y", 0),
                     0);
    /* A UNIQUE violation is ACV_EEXIST. */
    assert_int_equal(acv_db_exec(c, "INSERT INTO t(name) VALUES(?)", "s", "x"), ACV_EEXIST);
    /* The format must match the statement's parameters. */
    assert_int_equal(acv_db_exec(c, "INSERT INTO t(name) VALUES(?)", "ss", "z", "w"), ACV_EINVAL);

    json_t *row;
    assert_int_equal(acv_db_query_row(c, &row, "SELECT id, name, score, tags_json, ok AS ok_bool FROM t WHERE id = ?",
                                      "I", (int64_t)1),
                     0);
    assert_non_null(row);
    assert_int_equal(json_integer_value(json_object_get(row, "id")), 1);
    assert_string_equal(json_string_value(json_object_get(row, "name")), "x");
    assert_true(json_real_value(json_object_get(row, "score")) == 0.5);
    assert_true(json_equal(json_object_get(row, "tags"), tags));
    assert_true(json_is_true(json_object_get(row, "ok")));
    json_decref(row);
    json_decref(tags);
    assert_int_equal(acv_db_query_row(c, &row, "SELECT * FROM t WHERE id = 99", NULL), 0);
    assert_null(row);

    json_t *rows;
    assert_int_equal(acv_db_query(c, &rows, "SELECT name, tags_json FROM t ORDER BY id", NULL), 0);
    assert_int_equal(json_array_size(rows), 2);
    assert_true(json_is_null(json_object_get(json_array_get(rows, 1), "tags")));
    json_decref(rows);
    int64_t n;
    assert_int_equal(acv_db_query_int(c, &n, 42, "SELECT score FROM t WHERE name = 'none'", NULL), 0);
    assert_int_equal(n, 42);
    char *s;
    assert_int_equal(acv_db_query_text(c, &s, "SELECT name FROM t WHERE id = ?", "i", 2), 0);
    assert_string_equal(s, "y");
    free(s);
    /* More distinct statements than the cache holds still work. */
    for (int i = 0; i < 100; i++) {
        char sql[64];
        snprintf(sql, sizeof sql, "SELECT %d + ?", i);
        assert_int_equal(acv_db_query_int(c, &n, -1, sql, "i", 1), 0);
        assert_int_equal(n, i + 1);
    }
    acv_db_release(c);
    acv_db_close(db);
}

static void test_nested_transactions(void **state)
{
    acv_migration m[1] = {{1, "t", "CREATE TABLE t(x INTEGER);"}};
    acv_db *db;
    assert_int_equal(open_with(db_path("tx.db"), m, 1, &db), 0);
    acv_dbconn *c;
    assert_int_equal(acv_db_acquire(db, &c), 0);
    assert_int_equal(acv_db_begin(c), 0);
    assert_int_equal(acv_db_exec(c, "INSERT INTO t VALUES(1)", NULL), 0);
    assert_int_equal(acv_db_begin(c), 0); /* a savepoint */
    assert_int_equal(acv_db_exec(c, "INSERT INTO t VALUES(2)", NULL), 0);
    acv_db_rollback(c);
    assert_int_equal(acv_db_begin(c), 0);
    assert_int_equal(acv_db_exec(c, "INSERT INTO t VALUES(3)", NULL), 0);
    assert_int_equal(acv_db_end(c, 0), 0);
    assert_int_equal(acv_db_commit(c), 0);
    int64_t sum;
    assert_int_equal(acv_db_query_int(c, &sum, 0, "SELECT SUM(x) FROM t", NULL), 0);
    assert_int_equal(sum, 4);
    /* acv_db_end with an error rolls back and passes the error on. */
    assert_int_equal(acv_db_begin(c), 0);
    assert_int_equal(acv_db_exec(c, "INSERT INTO t VALUES(100)", NULL), 0);
    assert_int_equal(acv_db_end(c, ACV_EINVAL), ACV_EINVAL);
    /* A connection released inside a transaction is rolled back. */
    assert_int_equal(acv_db_begin(c), 0);
    assert_int_equal(acv_db_exec(c, "INSERT INTO t VALUES(1000)", NULL), 0);
    acv_db_release(c);
    assert_int_equal(count(db, "SELECT SUM(x) FROM t"), 4);
    acv_db_close(db);
}

typedef struct writer_arg {
    acv_db *db;
    int id, rows, errors;
} writer_arg;

static void *writer(void *p)
{
    writer_arg *a = p;
    for (int i = 0; i < a->rows; i++) {
        acv_dbconn *c;
        if (acv_db_acquire(a->db, &c)) {
            a->errors++;
            continue;
        }
        int rc = acv_db_begin(c);
        if (!rc) rc = acv_db_exec(c, "INSERT INTO t(w, i) VALUES(?, ?)", "ii", a->id, i);
        if (!rc) rc = acv_db_commit(c);
        if (rc) a->errors++;
        int64_t n;
        if (acv_db_query_int(c, &n, -1, "SELECT COUNT(*) FROM t WHERE w = ?", "i", a->id) || n != i + 1) a->errors++;
        acv_db_release(c);
    }
    return NULL;
}

static void test_pool_concurrent_writers(void **state)
{
    acv_migration m[1] = {{1, "t", "CREATE TABLE t(w INTEGER, i INTEGER);"}};
    acv_db_options o = {.migrations = m, .nmigrations = 1, .max_conns = 4};
    acv_db *db;
    assert_int_equal(acv_db_open(db_path("pool.db"), &o, &db), 0);
    enum { NT = 8, ROWS = 100 };
    pthread_t th[NT];
    writer_arg args[NT];
    for (int i = 0; i < NT; i++) {
        args[i] = (writer_arg){db, i, ROWS, 0};
        pthread_create(&th[i], NULL, writer, &args[i]);
    }
    for (int i = 0; i < NT; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < NT; i++) assert_int_equal(args[i].errors, 0);
    assert_int_equal(count(db, "SELECT COUNT(*) FROM t"), NT * ROWS);
    acv_db_close(db);
}

static void test_platform_schema_and_label_index(void **state)
{
    acv_db *db;
    assert_int_equal(acv_db_open(db_path("platform.db"), NULL, &db), 0);
    int n, v;
    acv_schema_migrations(&n);
    assert_int_equal(acv_db_version(db, &v), 0);
    assert_int_equal(v, n);
    acv_dbconn *c;
    assert_int_equal(acv_db_acquire(db, &c), 0);
    const char *t = "2024-01-01T00:00:00Z";
    assert_int_equal(acv_db_exec(c, "INSERT INTO projects(name, created_at, updated_at) VALUES('p', ?, ?)", "ss", t, t), 0);
    assert_int_equal(acv_db_exec(c,
                                 "INSERT INTO labels(project_id, name, color, aliases_json, created_at, updated_at) "
                                 "VALUES(1, 'Scratch', '#ff0000', '[\"kratzer\",\"mark\"]', ?, ?)",
                                 "ss", t, t),
                     0);
    int64_t hit;
    assert_int_equal(acv_db_query_int(c, &hit, 0, "SELECT rowid FROM label_search WHERE label_search MATCH '\"ratc\"'", NULL), 0);
    assert_int_equal(hit, 1);
    assert_int_equal(acv_db_query_int(c, &hit, 0, "SELECT rowid FROM label_search WHERE label_search MATCH '\"KRATZ\"'", NULL), 0);
    assert_int_equal(hit, 1);
    /* Renaming re-indexes; deleting the project cascades to labels and the index. */
    assert_int_equal(acv_db_exec(c, "UPDATE labels SET name = 'Dent' WHERE id = 1", NULL), 0);
    assert_int_equal(acv_db_query_int(c, &hit, 0, "SELECT COUNT(*) FROM label_search WHERE label_search MATCH '\"ratc\"'", NULL), 0);
    assert_int_equal(hit, 0);
    assert_int_equal(acv_db_exec(c, "DELETE FROM projects WHERE id = 1", NULL), 0);
    assert_int_equal(acv_db_query_int(c, &hit, 0, "SELECT COUNT(*) FROM labels", NULL), 0);
    assert_int_equal(hit, 0);
    assert_int_equal(acv_db_query_int(c, &hit, 0, "SELECT COUNT(*) FROM label_search WHERE label_search MATCH '\"dent\"'", NULL), 0);
    assert_int_equal(hit, 0);
    /* Foreign keys are enforced. */
    assert_int_equal(acv_db_exec(c,
                                 "INSERT INTO labels(project_id, name, color, created_at, updated_at) "
                                 "VALUES(99, 'x', '#000000', ?, ?)",
                                 "ss", t, t),
                     ACV_EINVAL);
    acv_db_release(c);
    acv_db_close(db);
}

static void test_time_format(void **state)
{
    char buf[ACV_DB_TIME_LEN];
    acv_db_time(0, buf);
    assert_string_equal(buf, "1970-01-01T00:00:00Z");
    acv_db_time(1714564800, buf);
    assert_string_equal(buf, "2024-05-01T12:00:00Z");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_migrations_apply_in_order_once),
        cmocka_unit_test(test_failed_migration_rolls_back),
        cmocka_unit_test(test_newer_database_is_refused),
        cmocka_unit_test(test_migration_list_must_be_sequential),
        cmocka_unit_test(test_helpers_and_row_json),
        cmocka_unit_test(test_nested_transactions),
        cmocka_unit_test(test_pool_concurrent_writers),
        cmocka_unit_test(test_platform_schema_and_label_index),
        cmocka_unit_test(test_time_format),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
