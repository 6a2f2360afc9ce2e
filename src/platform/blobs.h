/* The content-addressed blob store under DATA/blobs: a file's bytes are stored once, at
 * blobs/<first two hex digits>/<SHA-256 hex>, whatever name or project they came with.
 * Writes go to DATA/tmp first and are renamed into place (atomic, fsynced), so a blob is
 * either complete or absent. The `blobs` table (schema v2) records size and reference
 * count. Rows that point at blobs (images, dataset_version_items) take a ref with
 * acv_blobs_ref when inserted; deleting such a row drops its refs by itself (schema v3
 * triggers, whatever deletes it: one image, a version, a project's cascade), so the code that
 * deletes only collects the files afterwards.
 *
 * Lifetime of a blob file. A file is kept while a row of the `blobs` table names it, or while
 * a writer still holds it: a batch (below) pins what it stores until acv_blobs_batch_end,
 * and a plain acv_blobs_put_* protects what it stores for ACV_BLOBS_GRACE_S seconds (time to
 * commit the row that refers to it). A file neither named nor held is removed by
 * acv_blobs_batch_end (files a failed batch created), acv_blobs_collect (after the last ref
 * was dropped) or acv_blobs_gc (at server start: files left by a crash).
 *
 * Typical write (an upload or an import):
 *     acv_blobs_batch_new(b, &t);
 *     acv_blobs_batch_put_file(t, tmp, hash, &size);    // file stored and pinned
 *     acv_blobs_batch_sync(t);                          // durable before any row names it
 *     acv_db_begin(c); acv_blobs_ref(c, hash, size); INSERT ... ; rc = acv_db_end(c, rc);
 *     acv_blobs_batch_end(t, c);  // unpins; on a rollback removes the files it created
 * A crash before the commit leaves files no row names: acv_blobs_gc removes them at the next
 * start, whether complete or not.
 *
 * Threads: an acv_blobs is shared by all threads; a batch belongs to one. */
#ifndef ACV_PLATFORM_BLOBS_H
#define ACV_PLATFORM_BLOBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "platform/db.h"

#define ACV_BLOBS_GRACE_S 3600

typedef struct acv_blobs acv_blobs;

/* Opens (creating) the store rooted at data_dir/blobs; temporary files go to data_dir/tmp
 * (created when missing). *out owned by the caller. */
int acv_blobs_open(const char *data_dir, acv_blobs **out);
void acv_blobs_close(acv_blobs *b);
/* Moves the file at tmp_path (on the same filesystem, e.g. an upload in DATA/tmp) into the
 * store, computing its hash (hex, 65 bytes with the NUL) and size; when the blob already
 * exists the file is just removed. The file is gone after the call either way. */
int acv_blobs_put_file(acv_blobs *b, const char *tmp_path, char hash[65], int64_t *size);
/* Stores bytes from memory. */
int acv_blobs_put_mem(acv_blobs *b, const void *data, size_t len, char hash[65]);
/* The path of a stored blob (malloc'd), or NULL (ACV_ENOTFOUND set) when absent or when
 * hash is not 64 lowercase hex digits (never a path built from unchecked input). */
char *acv_blobs_path(const acv_blobs *b, const char *hash);
/* True when hash is 64 lowercase hex digits. */
bool acv_blobs_hash_ok(const char *hash);
/* Total bytes and files under blobs/ (for /metrics; a directory walk). */
int64_t acv_blobs_disk_bytes(const acv_blobs *b);
int64_t acv_blobs_disk_files(const acv_blobs *b);
/* The lowercase hex SHA-256 of a file / of memory. */
int acv_blobs_hash_file(const char *path, char hash[65], int64_t *size);
void acv_blobs_hash_mem(const void *data, size_t len, char hash[65]);

/* ---- batches: blobs stored for one database transaction ---- */
typedef struct acv_blob_batch acv_blob_batch;
int acv_blobs_batch_new(acv_blobs *b, acv_blob_batch **out);
/* As acv_blobs_put_file / put_mem, the blob pinned until acv_blobs_batch_end; not yet
 * durable (no fsync per file): call acv_blobs_batch_sync before committing rows that refer
 * to it. */
int acv_blobs_batch_put_file(acv_blob_batch *t, const char *tmp_path, char hash[65], int64_t *size);
int acv_blobs_batch_put_mem(acv_blob_batch *t, const void *data, size_t len, char hash[65]);
/* Makes everything the batch stored durable (one syncfs of the store's filesystem). */
int acv_blobs_batch_sync(acv_blob_batch *t);
/* Ends the batch after its transaction committed or rolled back (c must not be inside a
 * transaction): unpins every blob and removes the files this batch created that no `blobs`
 * row names and nobody else holds. Frees t (NULL is fine). */
void acv_blobs_batch_end(acv_blob_batch *t, acv_dbconn *c);

/* ---- references (inside the caller's transaction) ---- */
/* One more row points at hash (the `blobs` row is created with size when absent). */
int acv_blobs_ref(acv_dbconn *c, const char *hash, int64_t size);
/* One reference less on hash; the `blobs` row is deleted when no reference is left (its file
 * is then removed by acv_blobs_collect after the commit). For references that are not rows of
 * images or dataset_version_items: those drop theirs by trigger when deleted. */
int acv_blobs_unref(acv_dbconn *c, const char *hash);
/* After a commit that dropped references: removes the file of hash when no `blobs` row names
 * it and nobody holds it (a held one is re-checked when its holder lets go). */
int acv_blobs_collect(acv_blobs *b, acv_dbconn *c, const char *hash);
/* At start, before serving: recounts every blob's references from the tables that hold them
 * (images.blob_hash, images.thumb_hash, dataset_version_items.blob_hash), deletes `blobs`
 * rows nothing refers to, and removes files without a row (left by a crash between a write
 * and its commit). *removed (may be NULL) counts the files removed. */
int acv_blobs_gc(acv_blobs *b, acv_dbconn *c, int64_t *removed);

#endif
