/* JSON request fields with errors that name the field (see jsonarg.h). */
#include "platform/jsonarg.h"

#include <string.h>

#include "autocv/error.h"

int acv_jarg_str(const json_t *obj, const char *key, bool required, size_t maxlen, const char **out)
{
    *out = NULL;
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return required ? acv_error(ACV_EFORMAT, "field '%s' is required", key) : 0;
    if (!json_is_string(v)) return acv_error(ACV_EFORMAT, "field '%s' must be a string", key);
    if (maxlen && json_string_length(v) > maxlen)
        return acv_error(ACV_EINVAL, "field '%s' is too long (%zu bytes, at most %zu)", key, json_string_length(v),
                         maxlen);
    if (strlen(json_string_value(v)) != json_string_length(v))
        return acv_error(ACV_EINVAL, "field '%s' contains a NUL character", key);
    *out = json_string_value(v);
    return 0;
}

int acv_jarg_int(const json_t *obj, const char *key, bool required, int64_t lo, int64_t hi, int64_t *out,
                 bool *present)
{
    if (present) *present = false;
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return required ? acv_error(ACV_EFORMAT, "field '%s' is required", key) : 0;
    if (!json_is_integer(v)) return acv_error(ACV_EFORMAT, "field '%s' must be an integer", key);
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi)
        return acv_error(ACV_EINVAL, "field '%s' is %lld, outside %lld..%lld", key, (long long)x, (long long)lo,
                         (long long)hi);
    *out = x;
    if (present) *present = true;
    return 0;
}

int acv_jarg_bool(const json_t *obj, const char *key, bool *out, bool *present)
{
    if (present) *present = false;
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_boolean(v)) return acv_error(ACV_EFORMAT, "field '%s' must be true or false", key);
    *out = json_is_true(v);
    if (present) *present = true;
    return 0;
}

int acv_jarg_strlist(const json_t *obj, const char *key, size_t maxn, size_t maxlen, json_t **out)
{
    *out = NULL;
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_array(v)) return acv_error(ACV_EFORMAT, "field '%s' must be an array of strings", key);
    if (json_array_size(v) > maxn)
        return acv_error(ACV_EINVAL, "field '%s' has %zu entries (at most %zu)", key, json_array_size(v), maxn);
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) {
        if (!json_is_string(e)) return acv_error(ACV_EFORMAT, "field '%s'[%zu] must be a string", key, i);
        if (json_string_length(e) > maxlen)
            return acv_error(ACV_EINVAL, "field '%s'[%zu] is too long (at most %zu bytes)", key, i, maxlen);
    }
    *out = v;
    return 0;
}

int acv_jarg_only(const json_t *obj, const char *const *allowed)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v) {
        bool ok = false;
        for (int i = 0; allowed[i] && !ok; i++) ok = !strcmp(allowed[i], k);
        if (!ok) {
            char list[256] = "";
            for (int i = 0; allowed[i]; i++)
                snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", allowed[i]);
            return acv_error(ACV_EINVAL, "unknown field '%s' (known: %s)", k, list);
        }
    }
    return 0;
}
