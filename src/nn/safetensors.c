/* safetensors reader and writer (see safetensors.h). The reader trusts nothing in the
 * file: the header is parsed with duplicate keys rejected, every field is type-checked,
 * sizes are computed with overflow checks, and the tensors must tile the data buffer
 * exactly before any pointer is handed out. */
#include "nn/safetensors.h"
#include "autocv/error.h"
#include "base/half.h"
#include "base/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c reads tensor data in place and assumes a little-endian host"
#endif

/* The reference implementation refuses larger headers too. */
#define ACV_ST_MAX_HEADER 100000000ull

static const struct { const char *name; int size; } dtypes[ACV_ST_DTYPE_COUNT] = {
    [ACV_ST_DTYPE_BOOL] = {"BOOL", 1},      [ACV_ST_DTYPE_U8] = {"U8", 1},
    [ACV_ST_DTYPE_I8] = {"I8", 1},          [ACV_ST_DTYPE_F8_E5M2] = {"F8_E5M2", 1},
    [ACV_ST_DTYPE_F8_E4M3] = {"F8_E4M3", 1}, [ACV_ST_DTYPE_I16] = {"I16", 2},
    [ACV_ST_DTYPE_U16] = {"U16", 2},        [ACV_ST_DTYPE_F16] = {"F16", 2},
    [ACV_ST_DTYPE_BF16] = {"BF16", 2},      [ACV_ST_DTYPE_I32] = {"I32", 4},
    [ACV_ST_DTYPE_U32] = {"U32", 4},        [ACV_ST_DTYPE_F32] = {"F32", 4},
    [ACV_ST_DTYPE_F64] = {"F64", 8},        [ACV_ST_DTYPE_I64] = {"I64", 8},
    [ACV_ST_DTYPE_U64] = {"U64", 8},
};

const char *acv_st_dtype_name(acv_st_dtype dt)
{
    return (unsigned)dt < ACV_ST_DTYPE_COUNT ? dtypes[dt].name : "?";
}

int acv_st_dtype_size(acv_st_dtype dt)
{
    return (unsigned)dt < ACV_ST_DTYPE_COUNT ? dtypes[dt].size : 0;
}

struct acv_safetensors {
    char *path;
    uint8_t *map;                /* whole file, read-only */
    size_t map_len;
    const uint8_t *buf;          /* data buffer: map + 8 + header length */
    size_t buf_len;
    int n;
    acv_safetensors_tensor *t;   /* (n) sorted by name; names malloc'd */
    int nmeta;
    char **meta;                 /* (2 * nmeta) key, value pairs sorted by key */
};

/* ---- reading ---- */

static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const acv_safetensors_tensor *)a)->name, ((const acv_safetensors_tensor *)b)->name);
}

static int cmp_offset(const void *a, const void *b)
{
    const acv_safetensors_tensor *x = *(const acv_safetensors_tensor *const *)a;
    const acv_safetensors_tensor *y = *(const acv_safetensors_tensor *const *)b;
    if (x->data != y->data) return (const uint8_t *)x->data < (const uint8_t *)y->data ? -1 : 1;
    return x->nbytes < y->nbytes ? -1 : x->nbytes > y->nbytes;
}

static int cmp_meta(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads "__metadata__" (an object of strings) into st->meta. */
static int parse_meta(acv_safetensors *st, json_t *obj)
{
    if (!json_is_object(obj))
        return acv_error(ACV_EFORMAT, "%s: \"__metadata__\" is not a JSON object", st->path);
    size_t m = json_object_size(obj);
    st->meta = calloc(2 * m + 1, sizeof *st->meta);
    if (!st->meta) return acv_error(ACV_ENOMEM, "%s: out of memory", st->path);
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        if (!json_is_string(v))
            return acv_error(ACV_EFORMAT, "%s: metadata value of \"%s\" is not a string", st->path, key);
        char *k = strdup(key), *s = strdup(json_string_value(v));
        st->meta[2 * st->nmeta] = k;
        st->meta[2 * st->nmeta + 1] = s;
        st->nmeta++;
        if (!k || !s) return acv_error(ACV_ENOMEM, "%s: out of memory", st->path);
    }
    qsort(st->meta, (size_t)st->nmeta, 2 * sizeof *st->meta, cmp_meta);
    return 0;
}

/* Fills t from one header entry and checks it against the data buffer. */
static int parse_tensor(acv_safetensors *st, const char *name, json_t *obj, acv_safetensors_tensor *t)
{
    const char *p = st->path;
    if (!json_is_object(obj))
        return acv_error(ACV_EFORMAT, "%s: tensor '%s': header entry is not a JSON object", p, name);
    json_t *jd = json_object_get(obj, "dtype"), *js = json_object_get(obj, "shape"),
           *jo = json_object_get(obj, "data_offsets");
    if (!json_is_string(jd))
        return acv_error(ACV_EFORMAT, "%s: tensor '%s': \"dtype\" missing or not a string", p, name);
    const char *dn = json_string_value(jd);
    int dt = -1;
    for (int i = 0; i < ACV_ST_DTYPE_COUNT; i++)
        if (!strcmp(dn, dtypes[i].name)) dt = i;
    if (dt < 0) return acv_error(ACV_EUNSUPPORTED, "%s: tensor '%s': unknown dtype \"%s\"", p, name, dn);
    t->dtype = (acv_st_dtype)dt;

    if (!json_is_array(js))
        return acv_error(ACV_EFORMAT, "%s: tensor '%s': \"shape\" missing or not an array", p, name);
    size_t nd = json_array_size(js);
    if (nd > ACV_MAX_DIMS)
        return acv_error(ACV_EUNSUPPORTED, "%s: tensor '%s': %zu dims, more than the %d supported",
                         p, name, nd, ACV_MAX_DIMS);
    t->shape.ndim = (int)nd;
    int64_t numel = 1;
    bool overflow = false;
    for (size_t i = 0; i < nd; i++) {
        json_t *d = json_array_get(js, i);
        if (!json_is_integer(d) || json_integer_value(d) < 0)
            return acv_error(ACV_EFORMAT, "%s: tensor '%s': shape[%zu] is not a non-negative integer", p, name, i);
        t->shape.d[i] = json_integer_value(d);
        overflow = overflow || __builtin_mul_overflow(numel, t->shape.d[i], &numel);
    }
    int64_t nbytes = 0;
    overflow = overflow || __builtin_mul_overflow(numel, (int64_t)dtypes[dt].size, &nbytes);
    /* A zero dim makes the product 0 whatever the others are; an overflow before it still
     * means an absurd shape. */
    if (overflow)
        return acv_error(ACV_EFORMAT, "%s: tensor '%s': absurd shape (element count overflows)", p, name);
    t->numel = numel;

    if (!json_is_array(jo) || json_array_size(jo) != 2 || !json_is_integer(json_array_get(jo, 0)) ||
        !json_is_integer(json_array_get(jo, 1)))
        return acv_error(ACV_EFORMAT, "%s: tensor '%s': \"data_offsets\" is not [begin, end]", p, name);
    json_int_t b = json_integer_value(json_array_get(jo, 0)), e = json_integer_value(json_array_get(jo, 1));
    if (b < 0 || e < b)
        return acv_error(ACV_EFORMAT, "%s: tensor '%s': data_offsets [%lld, %lld] are not 0 <= begin <= end",
                         p, name, (long long)b, (long long)e);
    if ((uint64_t)e > st->buf_len)
        return acv_error(ACV_EFORMAT, "%s: tensor '%s': data_offsets [%lld, %lld] run past the end of the "
                         "%zu-byte data buffer (truncated file?)", p, name, (long long)b, (long long)e, st->buf_len);
    if (e - b != nbytes) {
        char sb[96];
        return acv_error(ACV_EFORMAT, "%s: tensor '%s': data_offsets [%lld, %lld] hold %lld bytes but shape %s "
                         "of %s needs %lld", p, name, (long long)b, (long long)e, (long long)(e - b),
                         acv_shape_str(&t->shape, sb, sizeof sb), dtypes[dt].name, (long long)nbytes);
    }
    t->data = st->buf + b;
    t->nbytes = (size_t)nbytes;
    return 0;
}

/* The tensors must tile [0, buf_len) in offset order: no overlap, no gap, no tail. */
static int check_coverage(acv_safetensors *st)
{
    acv_safetensors_tensor **order = malloc(((size_t)st->n + 1) * sizeof *order);
    if (!order) return acv_error(ACV_ENOMEM, "%s: out of memory", st->path);
    for (int i = 0; i < st->n; i++) order[i] = &st->t[i];
    qsort(order, (size_t)st->n, sizeof *order, cmp_offset);
    size_t pos = 0;
    int rc = 0;
    for (int i = 0; i < st->n && !rc; i++) {
        size_t b = (size_t)((const uint8_t *)order[i]->data - st->buf);
        if (b < pos)
            rc = acv_error(ACV_EFORMAT, "%s: tensors '%s' and '%s' overlap (bytes %zu..%zu of the data buffer)",
                           st->path, order[i - 1]->name, order[i]->name, b, pos);
        else if (b > pos)
            rc = acv_error(ACV_EFORMAT, "%s: %zu unused bytes before tensor '%s' (offset %zu, expected %zu)",
                           st->path, b - pos, order[i]->name, b, pos);
        pos = b + order[i]->nbytes;
    }
    if (!rc && pos != st->buf_len)
        rc = acv_error(ACV_EFORMAT, "%s: the data buffer has %zu bytes but the tensors cover %zu",
                       st->path, st->buf_len, pos);
    free(order);
    return rc;
}

static int parse_header(acv_safetensors *st, const char *hdr, size_t hlen)
{
    if (hlen == 0 || hdr[0] != '{')
        return acv_error(ACV_EFORMAT, "%s: the header does not start with '{' (not a safetensors file?)", st->path);
    json_error_t jerr;
    json_t *root = json_loadb(hdr, hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return acv_error(ACV_EFORMAT, "%s: malformed JSON header at byte %d: %s", st->path, jerr.position, jerr.text);
    int rc = 0;
    if (!json_is_object(root)) {
        rc = acv_error(ACV_EFORMAT, "%s: the JSON header is not an object", st->path);
        goto done;
    }
    size_t cap = json_object_size(root);
    st->t = calloc(cap + 1, sizeof *st->t);
    if (!st->t) {
        rc = acv_error(ACV_ENOMEM, "%s: out of memory", st->path);
        goto done;
    }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (!strcmp(key, "__metadata__")) {
            rc = parse_meta(st, v);
        } else {
            acv_safetensors_tensor *t = &st->t[st->n];
            t->name = strdup(key);
            if (!t->name) {
                rc = acv_error(ACV_ENOMEM, "%s: out of memory", st->path);
                break;
            }
            st->n++;
            rc = parse_tensor(st, key, v, t);
        }
        if (rc) break;
    }
    if (!rc) rc = check_coverage(st);
    if (!rc) qsort(st->t, (size_t)st->n, sizeof *st->t, cmp_name);
done:
    json_decref(root);
    return rc;
}

int acv_safetensors_open(const char *path, acv_safetensors **out)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return acv_error(errno == ENOENT ? ACV_ENOTFOUND : ACV_EIO, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return acv_error(ACV_EIO, "%s: not a regular file", path);
    }
    size_t size = (size_t)sb.st_size;
    if (size < 8) {
        close(fd);
        return acv_error(ACV_EFORMAT, "%s: %zu bytes, too short for a safetensors file", path, size);
    }
    acv_safetensors *st = calloc(1, sizeof *st);
    char *pcopy = strdup(path);
    if (!st || !pcopy) {
        close(fd);
        free(st);
        free(pcopy);
        return acv_error(ACV_ENOMEM, "%s: out of memory", path);
    }
    st->path = pcopy;
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int merr = errno;
    close(fd);
    if (map == MAP_FAILED) {
        acv_safetensors_close(st);
        return acv_error(ACV_EIO, "%s: cannot map %zu bytes: %s", path, size, strerror(merr));
    }
    st->map = map;
    st->map_len = size;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | st->map[i];
    int rc = 0;
    if (hlen > ACV_ST_MAX_HEADER)
        rc = acv_error(ACV_EFORMAT, "%s: header length %llu is larger than the %llu-byte limit", path,
                       (unsigned long long)hlen, ACV_ST_MAX_HEADER);
    else if (hlen > size - 8)
        rc = acv_error(ACV_EFORMAT, "%s: header length %llu exceeds the %zu bytes after the length field "
                       "(truncated or not a safetensors file)", path, (unsigned long long)hlen, size - 8);
    if (!rc) {
        st->buf = st->map + 8 + hlen;
        st->buf_len = size - 8 - (size_t)hlen;
        rc = parse_header(st, (const char *)st->map + 8, (size_t)hlen);
    }
    if (rc) {
        acv_safetensors_close(st);
        return rc;
    }
    *out = st;
    return 0;
}

void acv_safetensors_close(acv_safetensors *st)
{
    if (!st) return;
    if (st->map) munmap(st->map, st->map_len);
    for (int i = 0; i < st->n; i++) free((char *)st->t[i].name);
    free(st->t);
    for (int i = 0; i < 2 * st->nmeta; i++) free(st->meta[i]);
    free(st->meta);
    free(st->path);
    free(st);
}

const char *acv_safetensors_path(const acv_safetensors *st) { return st->path; }
int acv_safetensors_count(const acv_safetensors *st) { return st->n; }
int acv_safetensors_meta_count(const acv_safetensors *st) { return st->nmeta; }

const acv_safetensors_tensor *acv_safetensors_at(const acv_safetensors *st, int i)
{
    ACV_ASSERT(i >= 0 && i < st->n);
    return &st->t[i];
}

const acv_safetensors_tensor *acv_safetensors_find(const acv_safetensors *st, const char *name)
{
    acv_safetensors_tensor key = {.name = name};
    return st->n ? bsearch(&key, st->t, (size_t)st->n, sizeof *st->t, cmp_name) : NULL;
}

int acv_safetensors_get(const acv_safetensors *st, const char *name, const acv_safetensors_tensor **out)
{
    *out = acv_safetensors_find(st, name);
    if (!*out) return acv_error(ACV_ENOTFOUND, "%s: no tensor named '%s'", st->path, name);
    return 0;
}

int acv_safetensors_get_f32(const acv_safetensors *st, const char *name, acv_shape *shape, const float **data)
{
    *data = NULL;
    const acv_safetensors_tensor *t;
    int rc = acv_safetensors_get(st, name, &t);
    if (rc) return rc;
    if (t->dtype != ACV_ST_DTYPE_F32)
        return acv_error(ACV_EUNSUPPORTED, "%s: tensor '%s' is %s, not F32", st->path, name, dtypes[t->dtype].name);
    if ((uintptr_t)t->data % sizeof(float))
        return acv_error(ACV_EUNSUPPORTED, "%s: tensor '%s' is not 4-byte aligned in the file", st->path, name);
    if (shape) *shape = t->shape;
    *data = t->data;
    return 0;
}


static float bf16_to_float(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

#define CONVERT(T, EXPR)                                   \
    for (int64_t i = 0; i < n; i++) {                      \
        T x;                                               \
        memcpy(&x, src + (size_t)i * sizeof(T), sizeof x); \
        dst[i] = (EXPR);                                   \
    }

int acv_safetensors_read_f32(const acv_safetensors *st, const char *name, float *dst, int64_t n)
{
    const acv_safetensors_tensor *t;
    int rc = acv_safetensors_get(st, name, &t);
    if (rc) return rc;
    if (n != t->numel) {
        char sb[96];
        return acv_error(ACV_ESHAPE, "%s: tensor '%s' has shape %s (%lld elements), the destination %lld",
                         st->path, name, acv_shape_str(&t->shape, sb, sizeof sb), (long long)t->numel, (long long)n);
    }
    const uint8_t *src = t->data;
    switch (t->dtype) {
    case ACV_ST_DTYPE_F32: if (t->nbytes) memcpy(dst, src, t->nbytes); break;
    case ACV_ST_DTYPE_F16: CONVERT(uint16_t, acv_half_to_float(x)); break;
    case ACV_ST_DTYPE_BF16: CONVERT(uint16_t, bf16_to_float(x)); break;
    case ACV_ST_DTYPE_F64: CONVERT(double, (float)x); break;
    case ACV_ST_DTYPE_BOOL: CONVERT(uint8_t, x ? 1.0f : 0.0f); break;
    case ACV_ST_DTYPE_U8: CONVERT(uint8_t, (float)x); break;
    case ACV_ST_DTYPE_I8: CONVERT(int8_t, (float)x); break;
    case ACV_ST_DTYPE_I16: CONVERT(int16_t, (float)x); break;
    case ACV_ST_DTYPE_U16: CONVERT(uint16_t, (float)x); break;
    case ACV_ST_DTYPE_I32: CONVERT(int32_t, (float)x); break;
    case ACV_ST_DTYPE_U32: CONVERT(uint32_t, (float)x); break;
    case ACV_ST_DTYPE_I64: CONVERT(int64_t, (float)x); break;
    case ACV_ST_DTYPE_U64: CONVERT(uint64_t, (float)x); break;
    default:
        return acv_error(ACV_EUNSUPPORTED, "%s: tensor '%s': cannot convert %s to float32", st->path, name,
                         dtypes[t->dtype].name);
    }
    return 0;
}

const char *acv_safetensors_meta(const acv_safetensors *st, const char *key)
{
    if (!st->nmeta) return NULL;
    char *const *hit = bsearch(&key, st->meta, (size_t)st->nmeta, 2 * sizeof *st->meta, cmp_meta);
    return hit ? hit[1] : NULL;
}

void acv_safetensors_meta_at(const acv_safetensors *st, int i, const char **key, const char **value)
{
    ACV_ASSERT(i >= 0 && i < st->nmeta);
    *key = st->meta[2 * i];
    *value = st->meta[2 * i + 1];
}

/* ---- writing ---- */

static int cmp_index_by_name(const void *a, const void *b, void *names)
{
    const char *const *nm = names;
    return strcmp(nm[*(const int *)a], nm[*(const int *)b]);
}

/* Checks the arguments and builds the header object (tensors in name order, offsets
 * contiguous). order receives the write order; *data_len the buffer size. */
static int build_header(const char *path, int n, const char *const *names, const acv_shape *shapes,
                        const float *const *datas, const char *const *meta_kv, int *order, json_t *root,
                        size_t *data_len)
{
    if (meta_kv) {
        json_t *meta = json_object();
        if (!meta || json_object_set_new(root, "__metadata__", meta))
            return acv_error(ACV_ENOMEM, "%s: out of memory", path);
        for (int i = 0; meta_kv[i]; i += 2) {
            const char *k = meta_kv[i], *v = meta_kv[i + 1];
            if (!v) return acv_error(ACV_EINVAL, "%s: metadata key \"%s\" has no value", path, k);
            if (json_object_get(meta, k))
                return acv_error(ACV_EINVAL, "%s: metadata key \"%s\" given twice", path, k);
            json_t *js = json_string(v);
            if (!js || json_object_set_new(meta, k, js))
                return acv_error(ACV_EINVAL, "%s: metadata \"%s\" is not valid UTF-8 (or out of memory)", path, k);
        }
    }
    for (int i = 0; i < n; i++) {
        if (!names[i]) return acv_error(ACV_EINVAL, "%s: tensor %d has no name", path, i);
        if (!strcmp(names[i], "__metadata__"))
            return acv_error(ACV_EINVAL, "%s: \"__metadata__\" is reserved and cannot name a tensor", path);
        const acv_shape *s = &shapes[i];
        if (s->ndim < 0 || s->ndim > ACV_MAX_DIMS)
            return acv_error(ACV_EINVAL, "%s: tensor '%s': %d dims", path, names[i], s->ndim);
        for (int d = 0; d < s->ndim; d++)
            if (s->d[d] < 0) return acv_error(ACV_EINVAL, "%s: tensor '%s': negative dim %lld", path, names[i],
                                              (long long)s->d[d]);
        int64_t numel = 1, nbytes;
        bool ovf = false;
        for (int d = 0; d < s->ndim; d++) ovf = ovf || __builtin_mul_overflow(numel, s->d[d], &numel);
        if (ovf || __builtin_mul_overflow(numel, (int64_t)sizeof(float), &nbytes))
            return acv_error(ACV_ERANGE, "%s: tensor '%s': absurd shape", path, names[i]);
        if (numel > 0 && !datas[i])
            return acv_error(ACV_EINVAL, "%s: tensor '%s': NULL data", path, names[i]);
        order[i] = i;
    }
    qsort_r(order, (size_t)n, sizeof *order, cmp_index_by_name, (void *)names);
    size_t off = 0;
    for (int j = 0; j < n; j++) {
        int i = order[j];
        if (j > 0 && !strcmp(names[i], names[order[j - 1]]))
            return acv_error(ACV_EINVAL, "%s: tensor name '%s' given twice", path, names[i]);
        const acv_shape *s = &shapes[i];
        size_t nb = (size_t)acv_shape_numel(s) * sizeof(float);
        json_t *t = json_object(), *shape = json_array(), *offs = json_array();
        int bad = !t || !shape || !offs;
        for (int d = 0; d < s->ndim && !bad; d++) bad = json_array_append_new(shape, json_integer(s->d[d]));
        bad = bad || json_array_append_new(offs, json_integer((json_int_t)off)) ||
              json_array_append_new(offs, json_integer((json_int_t)(off + nb)));
        bad = bad || json_object_set_new(t, "dtype", json_string("F32"));
        if (!bad) { bad = json_object_set_new(t, "shape", shape); shape = NULL; }
        if (!bad) { bad = json_object_set_new(t, "data_offsets", offs); offs = NULL; }
        json_decref(shape);
        json_decref(offs);
        json_t *key_ok = json_string(names[i]);
        if (!key_ok) {
            json_decref(t);
            return acv_error(ACV_EINVAL, "%s: tensor name '%s' is not valid UTF-8", path, names[i]);
        }
        json_decref(key_ok);
        if (bad || json_object_set_new(root, names[i], t))
            return acv_error(ACV_ENOMEM, "%s: out of memory building the header", path);
        off += nb;
    }
    *data_len = off;
    return 0;
}

int acv_safetensors_save(const char *path, int n, const char *const *names, const acv_shape *shapes,
                         const float *const *datas, const char *const *meta_kv)
{
    if (n < 0) return acv_error(ACV_EINVAL, "%s: negative tensor count %d", path, n);
    int *order = malloc(((size_t)n + 1) * sizeof *order);
    json_t *root = json_object();
    if (!order || !root) {
        free(order);
        json_decref(root);
        return acv_error(ACV_ENOMEM, "%s: out of memory", path);
    }
    size_t data_len = 0;
    int rc = build_header(path, n, names, shapes, datas, meta_kv, order, root, &data_len);
    char *text = rc ? NULL : json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (!rc && !text) rc = acv_error(ACV_ENOMEM, "%s: out of memory serializing the header", path);
    uint8_t *file = NULL;
    size_t hlen = 0, total = 0;
    if (!rc) {
        size_t tl = strlen(text);
        hlen = (tl + 7) / 8 * 8;
        total = 8 + hlen + data_len;
        file = malloc(total);
        if (!file) rc = acv_error(ACV_ENOMEM, "%s: cannot allocate %zu bytes", path, total);
    }
    if (!rc) {
        for (int i = 0; i < 8; i++) file[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
        size_t tl = strlen(text);
        memcpy(file + 8, text, tl);
        memset(file + 8 + tl, ' ', hlen - tl);
        uint8_t *p = file + 8 + hlen;
        for (int j = 0; j < n; j++) {
            size_t nb = (size_t)acv_shape_numel(&shapes[order[j]]) * sizeof(float);
            if (nb) memcpy(p, datas[order[j]], nb);
            p += nb;
        }
        rc = acv_file_write_atomic(path, file, total);
    }
    free(text);
    free(file);
    free(order);
    return rc;
}
