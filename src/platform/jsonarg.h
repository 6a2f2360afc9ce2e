/* Reading the fields of a JSON request object with errors that name the field.
 * Missing required fields and wrong types are ACV_EFORMAT (HTTP 400); values of the right
 * type that break a rule (too long, out of range, unknown field) are ACV_EINVAL (422). */
#ifndef ACV_PLATFORM_JSONARG_H
#define ACV_PLATFORM_JSONARG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A string field of at most maxlen bytes (0: no limit). *out points into obj, NULL when the
 * field is absent or null and not required. */
int acv_jarg_str(const json_t *obj, const char *key, bool required, size_t maxlen, const char **out);
/* An integer field in [lo, hi]. *present (may be NULL) says whether it was given; *out is
 * left alone when it was not. */
int acv_jarg_int(const json_t *obj, const char *key, bool required, int64_t lo, int64_t hi, int64_t *out,
                 bool *present);
int acv_jarg_bool(const json_t *obj, const char *key, bool *out, bool *present);
/* An array of at most maxn strings of at most maxlen bytes each; *out borrowed (NULL when
 * absent). */
int acv_jarg_strlist(const json_t *obj, const char *key, size_t maxn, size_t maxlen, json_t **out);
/* ACV_EINVAL naming the first key of obj that is not in the NULL-terminated list. */
int acv_jarg_only(const json_t *obj, const char *const *allowed);

#endif
