/* File helpers: whole-file reads with a size limit, atomic writes (temp file + fsync +
 * rename), recursive mkdir, and atomic replacement of a directory. */
#ifndef ACV_BASE_FILE_H
#define ACV_BASE_FILE_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

/* Reads all of path into a malloc'd buffer (NUL-terminated, *len excludes the NUL).
 * Refuses files larger than max_bytes with ACV_ERANGE. Caller frees *out. */
int acv_file_read(const char *path, size_t max_bytes, uint8_t **out, size_t *len);
/* Writes data to path atomically: a reader sees the old or the new file, never half. */
int acv_file_write_atomic(const char *path, const void *data, size_t len);
/* mkdir -p. */
int acv_mkdirs(const char *path);
bool acv_path_exists(const char *path);
bool acv_is_dir(const char *path);
/* Removes a file or a directory tree (like rm -rf); missing is not an error. */
int acv_remove_tree(const char *path);
/* Replaces directory dst with tmp_dir (same filesystem) so that dst is always either the
 * old or the new complete directory: dst is renamed aside, tmp renamed in, old removed. */
int acv_dir_replace(const char *tmp_dir, const char *dst);
/* fsyncs a directory so that a rename inside it is durable. */
int acv_fsync_dir(const char *dir);
/* Joins a and b with one '/'. Returns a malloc'd string. */
char *acv_path_join(const char *a, const char *b);
/* Lowercase file extension without the dot ("" when none); points into path. */
const char *acv_path_ext(const char *path);

#endif
