/* SQLite storage: connection pool, migrations, bind/row helpers, nested transactions
 * (see db.h). */
#include "platform/db.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "autocv/error.h"
#include "base/log.h"

#define STMT_CACHE 64

typedef struct cached_stmt {
    char *sql;
    sqlite3_stmt *st;
    bool busy;      /* handed out and not yet returned (a nested use prepares a fresh one) */
    uint64_t used;  /* last use, for eviction */
} cached_stmt;

struct acv_dbconn {
    acv_db *db;
    sqlite3 *h;
    int depth;       /* transaction nesting: 0 none, 1 BEGIN, >1 savepoints */
    uint64_t clock;
    cached_stmt cache[STMT_CACHE];
};

struct acv_db {
    char *path;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    acv_dbconn **idle;
    int nidle, nopen;
    int max_conns, max_idle, busy_ms;
};

/* ---- errors and time ---------------------------------------------------------------- */

int acv_db_error(acv_dbconn *c, int src, const char *what)
{
    const char *msg = c && c->h ? sqlite3_errmsg(c->h) : sqlite3_errstr(src);
    int code;
    switch (src) {
    case SQLITE_CONSTRAINT_UNIQUE:
    case SQLITE_CONSTRAINT_PRIMARYKEY: code = ACV_EEXIST; break;
    case SQLITE_CONSTRAINT_FOREIGNKEY:
    case SQLITE_CONSTRAINT_CHECK:
    case SQLITE_CONSTRAINT_NOTNULL:
    case SQLITE_CONSTRAINT_TRIGGER: code = ACV_EINVAL; break;
    case SQLITE_NOMEM: code = ACV_ENOMEM; break;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB: code = ACV_EFORMAT; break;
    default: code = ACV_EIO; break;
    }
    if ((src & 0xff) == SQLITE_BUSY || (src & 0xff) == SQLITE_LOCKED)
        return acv_error(ACV_EIO, "%s: database is busy (%s)", what, msg);
    return acv_error(code, "%s: %s", what, msg);
}

int64_t acv_db_now(void) { return (int64_t)time(NULL); }

void acv_db_time(int64_t unix_s, char out[ACV_DB_TIME_LEN])
{
    time_t t = (time_t)unix_s;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, ACV_DB_TIME_LEN, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ---- connections and the pool --------------------------------------------------------- */

static int conn_open(acv_db *db, acv_dbconn **out)
{
    acv_dbconn *c = calloc(1, sizeof *c);
    if (!c) return acv_error(ACV_ENOMEM, "database: out of memory");
    c->db = db;
    int rc = sqlite3_open_v2(db->path, &c->h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                             NULL);
    if (rc != SQLITE_OK) {
        rc = acv_error(ACV_EIO, "%s: cannot open database: %s", db->path,
                       c->h ? sqlite3_errmsg(c->h) : sqlite3_errstr(rc));
        sqlite3_close(c->h);
        free(c);
        return rc;
    }
    sqlite3_extended_result_codes(c->h, 1);
    sqlite3_busy_timeout(c->h, db->busy_ms);
    char *err = NULL;
    rc = sqlite3_exec(c->h, "PRAGMA foreign_keys=ON; PRAGMA synchronous=FULL; PRAGMA temp_store=MEMORY;", NULL,
                      NULL, &err);
    if (rc != SQLITE_OK) {
        rc = acv_error(ACV_EIO, "%s: cannot configure the connection: %s", db->path, err ? err : "?");
        sqlite3_free(err);
        sqlite3_close(c->h);
        free(c);
        return rc;
    }
    *out = c;
    return 0;
}

static void conn_close(acv_dbconn *c)
{
    for (int i = 0; i < STMT_CACHE; i++) {
        sqlite3_finalize(c->cache[i].st);
        free(c->cache[i].sql);
    }
    sqlite3_close(c->h);
    free(c);
}

int acv_db_acquire(acv_db *db, acv_dbconn **out)
{
    pthread_mutex_lock(&db->mu);
    for (;;) {
        if (db->nidle > 0) {
            *out = db->idle[--db->nidle];
            pthread_mutex_unlock(&db->mu);
            return 0;
        }
        if (db->nopen < db->max_conns) break;
        pthread_cond_wait(&db->cv, &db->mu);
    }
    db->nopen++;
    pthread_mutex_unlock(&db->mu);
    int rc = conn_open(db, out);
    if (rc) {
        pthread_mutex_lock(&db->mu);
        db->nopen--;
        pthread_cond_signal(&db->cv);
        pthread_mutex_unlock(&db->mu);
    }
    return rc;
}

void acv_db_release(acv_dbconn *c)
{
    if (!c) return;
    acv_db *db = c->db;
    if (c->depth > 0 || !sqlite3_get_autocommit(c->h)) {
        acv_warn("database: a connection was released inside a transaction; rolling back");
        sqlite3_exec(c->h, "ROLLBACK", NULL, NULL, NULL);
        c->depth = 0;
    }
    pthread_mutex_lock(&db->mu);
    if (db->nidle < db->max_idle) {
        db->idle[db->nidle++] = c;
        c = NULL;
    } else {
        db->nopen--;
    }
    pthread_cond_signal(&db->cv);
    pthread_mutex_unlock(&db->mu);
    if (c) conn_close(c);
}

sqlite3 *acv_db_handle(acv_dbconn *c) { return c->h; }
void acv_db_no_wait(acv_dbconn *c, bool no_wait) { sqlite3_busy_timeout(c->h, no_wait ? 0 : c->db->busy_ms); }
const char *acv_db_path(const acv_db *db) { return db->path; }

/* ---- statements ---------------------------------------------------------------------- */

/* Returns a prepared statement for sql, from the cache when possible. *slot is the cache
 * entry to give back with stmt_put (or -1 when the statement is private and must be
 * finalized). */
static int stmt_get(acv_dbconn *c, const char *sql, sqlite3_stmt **st, int *slot)
{
    c->clock++;
    int victim = -1;
    for (int i = 0; i < STMT_CACHE; i++) {
        cached_stmt *e = &c->cache[i];
        if (e->sql && !strcmp(e->sql, sql)) {
            if (e->busy) { /* nested use of the same SQL: a private statement */
                victim = -1;
                break;
            }
            e->busy = true;
            e->used = c->clock;
            *st = e->st;
            *slot = i;
            return 0;
        }
        if (!e->busy && (victim < 0 || !e->sql || (c->cache[victim].sql && e->used < c->cache[victim].used)))
            victim = i;
    }
    int rc = sqlite3_prepare_v3(c->h, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
    if (rc != SQLITE_OK) return acv_db_error(c, rc, "preparing SQL");
    if (!*st) return acv_error(ACV_EINVAL, "preparing SQL: empty statement");
    char *copy = victim >= 0 ? strdup(sql) : NULL;
    if (!copy) {
        *slot = -1;
        return 0;
    }
    cached_stmt *e = &c->cache[victim];
    sqlite3_finalize(e->st);
    free(e->sql);
    e->sql = copy;
    e->st = *st;
    e->busy = true;
    e->used = c->clock;
    *slot = victim;
    return 0;
}

static void stmt_put(acv_dbconn *c, sqlite3_stmt *st, int slot)
{
    if (slot < 0) {
        sqlite3_finalize(st);
        return;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    c->cache[slot].busy = false;
}

static int bindv(acv_dbconn *c, sqlite3_stmt *st, const char *fmt, va_list ap)
{
    int n = fmt ? (int)strlen(fmt) : 0;
    int want = sqlite3_bind_parameter_count(st);
    if (n != want)
        return acv_error(ACV_EINVAL, "SQL binding: the statement has %d parameters but the format \"%s\" has %d",
                         want, fmt ? fmt : "", n);
    for (int i = 0; i < n; i++) {
        int rc = SQLITE_OK, k = i + 1;
        switch (fmt[i]) {
        case 'i': rc = sqlite3_bind_int64(st, k, va_arg(ap, int)); break;
        case 'I': rc = sqlite3_bind_int64(st, k, va_arg(ap, int64_t)); break;
        case 'b': rc = sqlite3_bind_int(st, k, va_arg(ap, int) ? 1 : 0); break;
        case 'd': rc = sqlite3_bind_double(st, k, va_arg(ap, double)); break;
        case 'n': rc = sqlite3_bind_null(st, k); break;
        case 's': {
            const char *s = va_arg(ap, const char *);
            rc = s ? sqlite3_bind_text(st, k, s, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, k);
            break;
        }
        case 'j': {
            const json_t *j = va_arg(ap, const json_t *);
            if (!j) {
                rc = sqlite3_bind_null(st, k);
                break;
            }
            char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
            if (!s) return acv_error(ACV_ENOMEM, "SQL binding: cannot encode JSON");
            rc = sqlite3_bind_text(st, k, s, -1, free);
            break;
        }
        default: return acv_error(ACV_EINVAL, "SQL binding: unknown format character '%c' in \"%s\"", fmt[i], fmt);
        }
        if (rc != SQLITE_OK) return acv_db_error(c, rc, "SQL binding");
    }
    return 0;
}

static json_t *column_json(sqlite3_stmt *st, int i)
{
    switch (sqlite3_column_type(st, i)) {
    case SQLITE_INTEGER: return json_integer(sqlite3_column_int64(st, i));
    case SQLITE_FLOAT: return json_real(sqlite3_column_double(st, i));
    case SQLITE_TEXT: {
        const char *s = (const char *)sqlite3_column_text(st, i);
        return json_stringn(s ? s : "", (size_t)sqlite3_column_bytes(st, i));
    }
    default: return json_null();
    }
}

static bool ends_with(const char *s, const char *suf, size_t *stem)
{
    size_t n = strlen(s), m = strlen(suf);
    if (n <= m || strcmp(s + n - m, suf)) return false;
    *stem = n - m;
    return true;
}

json_t *acv_db_row_json(sqlite3_stmt *st)
{
    json_t *o = json_object();
    int n = sqlite3_column_count(st);
    for (int i = 0; o && i < n; i++) {
        const char *name = sqlite3_column_name(st, i);
        int type = sqlite3_column_type(st, i);
        if (type == SQLITE_BLOB) continue;
        size_t stem;
        char key[128];
        if (ends_with(name, "_json", &stem) && stem < sizeof key) {
            memcpy(key, name, stem);
            key[stem] = 0;
            json_t *v = NULL;
            if (type == SQLITE_TEXT)
                v = json_loadb((const char *)sqlite3_column_text(st, i), (size_t)sqlite3_column_bytes(st, i),
                               JSON_DECODE_ANY, NULL);
            json_object_set_new(o, key, v ? v : json_null());
        } else if (ends_with(name, "_bool", &stem) && stem < sizeof key) {
            memcpy(key, name, stem);
            key[stem] = 0;
            json_object_set_new(o, key, type == SQLITE_NULL ? json_null() : json_boolean(sqlite3_column_int(st, i)));
        } else {
            json_object_set_new(o, name, column_json(st, i));
        }
    }
    return o;
}

/* Prepares (cached), binds and hands back the statement; the caller steps it and gives it
 * back with stmt_put. */
static int run_prepare(acv_dbconn *c, sqlite3_stmt **st, int *slot, const char *sql, const char *fmt, va_list ap)
{
    int rc = stmt_get(c, sql, st, slot);
    if (rc) return rc;
    if ((rc = bindv(c, *st, fmt, ap))) stmt_put(c, *st, *slot);
    return rc;
}

int acv_db_exec(acv_dbconn *c, const char *sql, const char *fmt, ...)
{
    sqlite3_stmt *st;
    int slot;
    va_list ap;
    va_start(ap, fmt);
    int rc = run_prepare(c, &st, &slot, sql, fmt, ap);
    va_end(ap);
    if (rc) return rc;
    int s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {}
    if (s != SQLITE_DONE) rc = acv_db_error(c, sqlite3_extended_errcode(c->h), "database");
    stmt_put(c, st, slot);
    return rc;
}

int64_t acv_db_changes(acv_dbconn *c) { return sqlite3_changes64(c->h); }
int64_t acv_db_last_id(acv_dbconn *c) { return sqlite3_last_insert_rowid(c->h); }

/* Steps st collecting up to max rows (max < 0: all) into a new array. */
static int collect(acv_dbconn *c, sqlite3_stmt *st, int max, json_t **rows)
{
    json_t *a = json_array();
    if (!a) return acv_error(ACV_ENOMEM, "database: out of memory");
    int s = SQLITE_DONE;
    while ((max < 0 || (int)json_array_size(a) < max) && (s = sqlite3_step(st)) == SQLITE_ROW)
        json_array_append_new(a, acv_db_row_json(st));
    if ((max < 0 || (int)json_array_size(a) < max) && s != SQLITE_DONE) {
        json_decref(a);
        return acv_db_error(c, sqlite3_extended_errcode(c->h), "database");
    }
    *rows = a;
    return 0;
}

int acv_db_query(acv_dbconn *c, json_t **rows, const char *sql, const char *fmt, ...)
{
    sqlite3_stmt *st;
    int slot;
    va_list ap;
    va_start(ap, fmt);
    int rc = run_prepare(c, &st, &slot, sql, fmt, ap);
    va_end(ap);
    *rows = NULL;
    if (rc) return rc;
    rc = collect(c, st, -1, rows);
    stmt_put(c, st, slot);
    return rc;
}

int acv_db_query_row(acv_dbconn *c, json_t **row, const char *sql, const char *fmt, ...)
{
    sqlite3_stmt *st;
    int slot;
    va_list ap;
    va_start(ap, fmt);
    int rc = run_prepare(c, &st, &slot, sql, fmt, ap);
    va_end(ap);
    *row = NULL;
    if (rc) return rc;
    int s = sqlite3_step(st);
    if (s == SQLITE_ROW) *row = acv_db_row_json(st);
    else if (s != SQLITE_DONE) rc = acv_db_error(c, sqlite3_extended_errcode(c->h), "database");
    stmt_put(c, st, slot);
    return rc;
}

int acv_db_query_int(acv_dbconn *c, int64_t *out, int64_t dflt, const char *sql, const char *fmt, ...)
{
    sqlite3_stmt *st;
    int slot;
    va_list ap;
    va_start(ap, fmt);
    int rc = run_prepare(c, &st, &slot, sql, fmt, ap);
    va_end(ap);
    *out = dflt;
    if (rc) return rc;
    int s = sqlite3_step(st);
    if (s == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) *out = sqlite3_column_int64(st, 0);
    else if (s != SQLITE_ROW && s != SQLITE_DONE) rc = acv_db_error(c, sqlite3_extended_errcode(c->h), "database");
    stmt_put(c, st, slot);
    return rc;
}

int acv_db_query_text(acv_dbconn *c, char **out, const char *sql, const char *fmt, ...)
{
    sqlite3_stmt *st;
    int slot;
    va_list ap;
    va_start(ap, fmt);
    int rc = run_prepare(c, &st, &slot, sql, fmt, ap);
    va_end(ap);
    *out = NULL;
    if (rc) return rc;
    int s = sqlite3_step(st);
    if (s == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
        *out = strdup((const char *)sqlite3_column_text(st, 0));
        if (!*out) rc = acv_error(ACV_ENOMEM, "database: out of memory");
    } else if (s != SQLITE_ROW && s != SQLITE_DONE) {
        rc = acv_db_error(c, sqlite3_extended_errcode(c->h), "database");
    }
    stmt_put(c, st, slot);
    return rc;
}

int acv_db_prepare(acv_dbconn *c, sqlite3_stmt **st, const char *sql, const char *fmt, ...)
{
    int rc = sqlite3_prepare_v2(c->h, sql, -1, st, NULL);
    if (rc != SQLITE_OK) return acv_db_error(c, rc, "preparing SQL");
    va_list ap;
    va_start(ap, fmt);
    rc = bindv(c, *st, fmt, ap);
    va_end(ap);
    if (rc) {
        sqlite3_finalize(*st);
        *st = NULL;
    }
    return rc;
}

/* ---- transactions ------------------------------------------------------------------- */

static int exec_plain(acv_dbconn *c, const char *sql)
{
    int rc = sqlite3_exec(c->h, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : acv_db_error(c, sqlite3_extended_errcode(c->h), sql);
}

int acv_db_begin(acv_dbconn *c)
{
    char sql[48];
    if (c->depth == 0) snprintf(sql, sizeof sql, "BEGIN IMMEDIATE");
    else snprintf(sql, sizeof sql, "SAVEPOINT acv_sp%d", c->depth);
    int rc = exec_plain(c, sql);
    if (!rc) c->depth++;
    return rc;
}

int acv_db_commit(acv_dbconn *c)
{
    ACV_ASSERT(c->depth > 0);
    char sql[48];
    if (c->depth == 1) snprintf(sql, sizeof sql, "COMMIT");
    else snprintf(sql, sizeof sql, "RELEASE acv_sp%d", c->depth - 1);
    int rc = exec_plain(c, sql);
    if (rc) {
        acv_db_rollback(c);
        return rc;
    }
    c->depth--;
    return 0;
}

void acv_db_rollback(acv_dbconn *c)
{
    ACV_ASSERT(c->depth > 0);
    char sql[80];
    if (c->depth == 1) snprintf(sql, sizeof sql, "ROLLBACK");
    else snprintf(sql, sizeof sql, "ROLLBACK TO acv_sp%d; RELEASE acv_sp%d", c->depth - 1, c->depth - 1);
    /* A failed ROLLBACK means SQLite already rolled back (e.g. after SQLITE_FULL). */
    sqlite3_exec(c->h, sql, NULL, NULL, NULL);
    c->depth--;
}

int acv_db_end(acv_dbconn *c, int rc)
{
    if (rc) {
        acv_db_rollback(c);
        return rc;
    }
    return acv_db_commit(c);
}

/* ---- migrations ---------------------------------------------------------------------- */

static int current_version(acv_dbconn *c, int *v)
{
    int64_t x;
    int rc = acv_db_query_int(c, &x, 0, "SELECT MAX(version) FROM schema_version", NULL);
    *v = (int)x;
    return rc;
}

/* Applies the pending migrations, one transaction each; refuses a database newer than the
 * list. `path` names the database in messages. */
static int migrate(acv_dbconn *c, const acv_migration *m, int n, const char *path)
{
    for (int i = 0; i < n; i++)
        if (m[i].version != i + 1 || !m[i].sql || !m[i].name)
            return acv_error(ACV_EINVAL, "migration list: entry %d has version %d (want %d, with a name and SQL)", i,
                             m[i].version, i + 1);
    for (;;) {
        int rc = acv_db_begin(c);
        if (rc) return acv_error_prefix(rc, "%s: ", path);
        rc = acv_db_exec(c,
                         "CREATE TABLE IF NOT EXISTS schema_version(version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                         "applied_at TEXT NOT NULL)",
                         NULL);
        int v = 0;
        if (!rc) rc = current_version(c, &v);
        if (rc) {
            acv_db_rollback(c);
            return acv_error_prefix(rc, "%s: reading the schema version: ", path);
        }
        if (v > n) {
            acv_db_rollback(c);
            return acv_error(ACV_EUNSUPPORTED,
                             "%s: the database has schema version %d but this autocv knows versions up to %d; "
                             "it was written by a newer autocv (upgrade autocv, or use a copy of the data made "
                             "before the upgrade)",
                             path, v, n);
        }
        if (v == n) return acv_db_commit(c);
        const acv_migration *mg = &m[v];
        char *err = NULL;
        if (sqlite3_exec(c->h, mg->sql, NULL, NULL, &err) != SQLITE_OK) {
            rc = acv_error(ACV_EIO, "%s: migration %d (%s) failed: %s; the database stays at version %d", path,
                           mg->version, mg->name, err ? err : sqlite3_errmsg(c->h), v);
            sqlite3_free(err);
            acv_db_rollback(c);
            return rc;
        }
        char now[ACV_DB_TIME_LEN];
        acv_db_time(acv_db_now(), now);
        rc = acv_db_exec(c, "INSERT INTO schema_version(version, name, applied_at) VALUES(?, ?, ?)", "iss",
                         mg->version, mg->name, now);
        if (!rc) rc = acv_db_commit(c);
        else acv_db_rollback(c);
        if (rc) return acv_error_prefix(rc, "%s: migration %d (%s): ", path, mg->version, mg->name);
        acv_info("database %s: migrated to schema version %d (%s)", path, mg->version, mg->name);
    }
}

int acv_db_version(acv_db *db, int *version)
{
    acv_dbconn *c;
    int rc = acv_db_acquire(db, &c);
    if (rc) return rc;
    int64_t has;
    rc = acv_db_query_int(c, &has, 0,
                          "SELECT COUNT(*) FROM sqlite_master WHERE type='table' AND name='schema_version'", NULL);
    *version = 0;
    if (!rc && has) rc = current_version(c, version);
    acv_db_release(c);
    return rc;
}

int acv_db_open(const char *path, const acv_db_options *opt, acv_db **out)
{
    *out = NULL;
    acv_db *db = calloc(1, sizeof *db);
    if (!db || !(db->path = strdup(path))) {
        free(db);
        return acv_error(ACV_ENOMEM, "database: out of memory");
    }
    db->busy_ms = opt && opt->busy_timeout_ms > 0 ? opt->busy_timeout_ms : 10000;
    db->max_conns = opt && opt->max_conns > 0 ? opt->max_conns : 32;
    db->max_idle = opt && opt->max_idle > 0 ? opt->max_idle : 8;
    if (db->max_idle > db->max_conns) db->max_idle = db->max_conns;
    pthread_mutex_init(&db->mu, NULL);
    pthread_cond_init(&db->cv, NULL);
    db->idle = calloc((size_t)db->max_idle, sizeof *db->idle);
    if (!db->idle) {
        acv_db_close(db);
        return acv_error(ACV_ENOMEM, "database: out of memory");
    }
    const acv_migration *m = opt && opt->migrations ? opt->migrations : NULL;
    int n = opt && opt->migrations ? opt->nmigrations : 0;
    if (!m) m = acv_schema_migrations(&n);

    acv_dbconn *c;
    int rc = acv_db_acquire(db, &c);
    if (rc) {
        acv_db_close(db);
        return rc;
    }
    char *mode = NULL;
    rc = acv_db_query_text(c, &mode, "PRAGMA journal_mode=WAL", NULL);
    if (!rc && (!mode || strcmp(mode, "wal")))
        rc = acv_error(ACV_EIO, "%s: cannot switch the database to WAL mode (journal_mode is %s)", path,
                       mode ? mode : "unknown");
    else if (rc) acv_error_prefix(rc, "%s: ", path);
    free(mode);
    if (!rc) rc = migrate(c, m, n, path);
    acv_db_release(c);
    if (rc) {
        acv_db_close(db);
        return rc;
    }
    *out = db;
    return 0;
}

void acv_db_close(acv_db *db)
{
    if (!db) return;
    if (db->nopen != db->nidle) acv_warn("database %s: closed with %d connections still in use", db->path,
                                         db->nopen - db->nidle);
    for (int i = 0; i < db->nidle; i++) conn_close(db->idle[i]);
    pthread_mutex_destroy(&db->mu);
    pthread_cond_destroy(&db->cv);
    free(db->idle);
    free(db->path);
    free(db);
}
