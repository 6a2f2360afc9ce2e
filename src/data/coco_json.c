/* COCO fields as other tools write them (see coco_json.h). */
#include "data/coco_json.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "autocv/error.h"

bool acv_coco_int(const json_t *o, const char *key, int64_t *out)
{
    json_t *v = json_object_get(o, key);
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return true;
    }
    if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)) && fabs(json_real_value(v)) < 9e15) {
        *out = (int64_t)json_real_value(v);
        return true;
    }
    return false;
}

bool acv_coco_flag(const json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_true(v) || (json_is_integer(v) && json_integer_value(v) != 0) ||
           (json_is_real(v) && json_real_value(v) != 0);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

int acv_coco_super_flags(const json_t *cats, bool **flags)
{
    size_t k = json_array_size(cats);
    *flags = NULL;
    if (!k) return 0;
    bool *f = calloc(k, sizeof *f);
    const char **sup = calloc(k, sizeof *sup);
    if (!f || !sup) {
        free(f);
        free(sup);
        return acv_error(ACV_ENOMEM, "out of memory");
    }
    /* the supercategories other than "none", sorted: a lookup per category */
    size_t ns = 0;
    for (size_t i = 0; i < k; i++) {
        const char *s = json_string_value(json_object_get(json_array_get(cats, i), "supercategory"));
        if (s && strcmp(s, "none")) sup[ns++] = s;
    }
    qsort(sup, ns, sizeof *sup, cmp_str);
    for (size_t i = 0; i < k; i++) {
        json_t *c = json_array_get(cats, i);
        const char *name = json_string_value(json_object_get(c, "name"));
        const char *s = json_string_value(json_object_get(c, "supercategory"));
        f[i] = name && s && !strcmp(s, "none") && ns && bsearch(&name, sup, ns, sizeof *sup, cmp_str);
    }
    free(sup);
    *flags = f;
    return 0;
}
