/* The platform's SQLite storage: one database file in WAL mode (foreign keys on, a busy
 * timeout, synchronous=FULL so an acknowledged commit survives a crash), shared by the
 * server's threads through a pool of connections; versioned migrations run when the
 * database is opened; and small helpers that keep handlers short: bind parameters from a
 * format string, read rows as JSON objects, nest transactions (BEGIN IMMEDIATE outside,
 * SAVEPOINTs inside).
 *
 * Threads: an acv_db is shared; an acv_dbconn belongs to one thread between
 * acv_db_acquire() and acv_db_release().
 *
 * Bind formats (the `fmt` argument of the query helpers), one character per `?`:
 *   i int        I int64_t      d double     b bool (int, stored 0/1)
 *   s const char * (NULL binds NULL)        j json_t * (stored as compact JSON text; NULL binds NULL)
 *   n NULL (takes no argument)
 * Row to JSON: INTEGER -> integer, REAL -> real, TEXT -> string, NULL -> null; a column whose
 * name ends in "_json" is parsed and stored under the name without the suffix
 * ("aliases_json" -> "aliases"); a column whose name ends in "_bool" becomes true/false under
 * the name without the suffix. BLOB columns are skipped. */
#ifndef ACV_PLATFORM_DB_H
#define ACV_PLATFORM_DB_H

#include <jansson.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct acv_db acv_db;
typedef struct acv_dbconn acv_dbconn;

/* One schema step. Versions start at 1 and increase by 1; `sql` may hold several
 * statements and runs inside one transaction together with the version bump. */
typedef struct acv_migration {
    int version;
    const char *name;
    const char *sql;
} acv_migration;

typedef struct acv_db_options {
    int busy_timeout_ms;             /* 0: 10000 */
    int max_conns;                   /* connections open at once; 0: 32 */
    int max_idle;                    /* idle connections kept open; 0: 8 */
    const acv_migration *migrations; /* NULL: the platform schema (acv_schema_migrations) */
    int nmigrations;
} acv_db_options;

/* The platform schema, in order (schema.c). */
const acv_migration *acv_schema_migrations(int *n);

/* Opens (creating when missing) the database at path, switches it to WAL, and applies every
 * migration newer than its schema_version, each in its own transaction. A database whose
 * version is newer than the newest migration known here is refused with ACV_EUNSUPPORTED
 * (nothing is changed). opt may be NULL. On success *out is closed with acv_db_close(). */
int acv_db_open(const char *path, const acv_db_options *opt, acv_db **out);
/* Closes every pooled connection. All acquired connections must have been released. */
void acv_db_close(acv_db *db);
const char *acv_db_path(const acv_db *db);
/* The schema version recorded in the database (0 for an empty one). */
int acv_db_version(acv_db *db, int *version);

/* Takes a connection from the pool (opening one, or waiting while max_conns are in use).
 * Release it with acv_db_release(); an open transaction left on it is rolled back. */
int acv_db_acquire(acv_db *db, acv_dbconn **out);
void acv_db_release(acv_dbconn *c);
/* The raw handle, for what the helpers below do not cover. */
sqlite3 *acv_db_handle(acv_dbconn *c);
/* no_wait true: statements fail at once with "busy" instead of waiting for a lock (for
 * best-effort writes); false restores the pool's busy timeout. */
void acv_db_no_wait(acv_dbconn *c, bool no_wait);

/* Runs one statement to completion with bound parameters (rows are ignored). */
int acv_db_exec(acv_dbconn *c, const char *sql, const char *fmt, ...);
/* Rows changed by the last INSERT/UPDATE/DELETE, and the rowid of the last INSERT. */
int64_t acv_db_changes(acv_dbconn *c);
int64_t acv_db_last_id(acv_dbconn *c);
/* All rows as a JSON array of objects (new reference in *rows). */
int acv_db_query(acv_dbconn *c, json_t **rows, const char *sql, const char *fmt, ...);
/* The first row as an object, or *row = NULL when there is none (still 0). */
int acv_db_query_row(acv_dbconn *c, json_t **row, const char *sql, const char *fmt, ...);
/* The first column of the first row as an integer; *out = dflt when there is no row or it
 * is NULL. */
int acv_db_query_int(acv_dbconn *c, int64_t *out, int64_t dflt, const char *sql, const char *fmt, ...);
/* The first column of the first row as a malloc'd string (caller frees); NULL when there is
 * no row or it is NULL. */
int acv_db_query_text(acv_dbconn *c, char **out, const char *sql, const char *fmt, ...);

/* Transactions nest: the outermost acv_db_begin() is BEGIN IMMEDIATE (the write lock is
 * taken up front, so a transaction never fails half-way on a lock upgrade), inner ones are
 * SAVEPOINTs. Every begin is closed by exactly one commit or rollback. */
int acv_db_begin(acv_dbconn *c);
int acv_db_commit(acv_dbconn *c);
void acv_db_rollback(acv_dbconn *c);
/* Commits when rc == 0, rolls back otherwise; returns rc (or the commit's error). */
int acv_db_end(acv_dbconn *c, int rc);

/* A statement the caller steps and finalizes itself (for row-by-row streaming); binds from
 * fmt like the helpers above. */
int acv_db_prepare(acv_dbconn *c, sqlite3_stmt **st, const char *sql, const char *fmt, ...);
/* The current row of st as a JSON object (new reference), converted as described above. */
json_t *acv_db_row_json(sqlite3_stmt *st);
/* Maps a SQLite result code to an ACV_E* code and records "what: sqlite message". */
int acv_db_error(acv_dbconn *c, int src, const char *what);

/* Time as stored in the database: UTC ISO 8601 with seconds ("2024-05-01T12:00:00Z"), which
 * sorts and compares as text. */
#define ACV_DB_TIME_LEN 24
int64_t acv_db_now(void);
void acv_db_time(int64_t unix_s, char out[ACV_DB_TIME_LEN]);

#endif
