/* .npy reading and writing (see npy.h). The header is a Python dict literal; rather than
 * a general evaluator, a small parser accepts exactly what numpy writes (string keys;
 * string, True/False and int-tuple values; optional trailing commas and whitespace) and
 * rejects everything else as malformed. */
#include "base/npy.h"
#include "autocv/error.h"
#include "base/half.h"
#include "base/file.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "npy.c assumes a little-endian host"
#endif

#define NPY_MAGIC "\x93NUMPY"
#define NPY_MAGIC_LEN 6
#define NPY_MAX_HEADER (1u << 20)
#define NPY_CHUNK 65536 /* elements converted per read when the dtype is not <f4 */

typedef struct npy_info {
    char kind;     /* 'f', 'i', 'u', 'b' */
    int size;      /* bytes per element */
    bool swap;     /* big-endian data */
    acv_shape shape;
    int64_t numel;
    uint64_t nbytes;
} npy_info;

/* ---- header parsing ---- */

typedef struct lexer {
    const char *p, *end, *start;
    const char *name;
} lexer;

static void skip_ws(lexer *lx)
{
    while (lx->p < lx->end && (*lx->p == ' ' || *lx->p == '\t' || *lx->p == '\n' || *lx->p == '\r')) lx->p++;
}

static bool eat(lexer *lx, char c)
{
    skip_ws(lx);
    if (lx->p < lx->end && *lx->p == c) {
        lx->p++;
        return true;
    }
    return false;
}

/* A quoted Python string without escapes into buf (cap bytes). */
static int parse_str(lexer *lx, char *buf, size_t cap)
{
    skip_ws(lx);
    if (lx->p >= lx->end || (*lx->p != '\'' && *lx->p != '"'))
        return acv_error(ACV_EFORMAT, "%s: malformed .npy header: expected a quoted string at byte %td",
                         lx->name, lx->p - lx->start);
    char q = *lx->p++;
    size_t n = 0;
    while (lx->p < lx->end && *lx->p != q) {
        if (*lx->p == '\\' || *lx->p == '\n' || n + 1 >= cap)
            return acv_error(ACV_EFORMAT, "%s: malformed .npy header: unsupported or overlong string", lx->name);
        buf[n++] = *lx->p++;
    }
    if (lx->p >= lx->end) return acv_error(ACV_EFORMAT, "%s: malformed .npy header: unterminated string", lx->name);
    lx->p++;
    buf[n] = 0;
    return 0;
}

static bool match_word(lexer *lx, const char *w)
{
    skip_ws(lx);
    size_t n = strlen(w);
    if ((size_t)(lx->end - lx->p) >= n && !memcmp(lx->p, w, n)) {
        lx->p += n;
        return true;
    }
    return false;
}

/* "(2, 3)", "(5,)", "()" -- Python 2 long suffixes ("3L") allowed. */
static int parse_shape(lexer *lx, acv_shape *shape)
{
    if (!eat(lx, '('))
        return acv_error(ACV_EFORMAT, "%s: malformed .npy header: 'shape' is not a tuple", lx->name);
    shape->ndim = 0;
    for (;;) {
        if (eat(lx, ')')) return 0;
        skip_ws(lx);
        if (lx->p >= lx->end || *lx->p < '0' || *lx->p > '9')
            return acv_error(ACV_EFORMAT, "%s: malformed .npy header: 'shape' holds something other than "
                             "non-negative integers", lx->name);
        int64_t v = 0;
        while (lx->p < lx->end && *lx->p >= '0' && *lx->p <= '9') {
            if (v > (INT64_MAX - 9) / 10)
                return acv_error(ACV_EFORMAT, "%s: malformed .npy header: absurd dimension in 'shape'", lx->name);
            v = v * 10 + (*lx->p++ - '0');
        }
        if (lx->p < lx->end && (*lx->p == 'L' || *lx->p == 'l')) lx->p++;
        if (shape->ndim == ACV_MAX_DIMS)
            return acv_error(ACV_EUNSUPPORTED, "%s: the array has more than %d dims", lx->name, ACV_MAX_DIMS);
        shape->d[shape->ndim++] = v;
        if (eat(lx, ',')) continue;
        if (eat(lx, ')')) return 0;
        return acv_error(ACV_EFORMAT, "%s: malformed .npy header: expected ',' or ')' in 'shape'", lx->name);
    }
}

/* "<f4", ">i8", "|u1", "|b1" -> kind, size, byte order. */
static int parse_descr(const char *d, const char *name, npy_info *info)
{
    char order = d[0];
    if (!order || !strchr("<>|=", order) || !d[1] || !strchr("fiub", d[1]) || !d[2])
        goto unsupported;
    char *end;
    long size = strtol(d + 2, &end, 10);
    if (*end) goto unsupported;
    info->kind = d[1];
    info->size = (int)size;
    info->swap = order == '>' && size > 1;
    if (order == '|' && size > 1) goto unsupported;
    switch (info->kind) {
    case 'f': if (size == 2 || size == 4 || size == 8) return 0; break;
    case 'i': case 'u': if (size == 1 || size == 2 || size == 4 || size == 8) return 0; break;
    case 'b': if (size == 1) return 0; break;
    }
unsupported:
    return acv_error(ACV_EUNSUPPORTED, "%s: dtype '%s' is not supported (float16/32/64, int8-64, uint8-64 or "
                     "bool only)", name, d);
}

/* Parses the dict literal h[0, len) into info (shape, dtype, sizes). */
static int parse_dict(const char *h, size_t len, const char *name, npy_info *info)
{
    lexer lx = {h, h + len, h, name};
    char key[32], descr[64] = "";
    bool have_descr = false, have_order = false, have_shape = false, fortran = false;
    int rc;
    if (!eat(&lx, '{')) return acv_error(ACV_EFORMAT, "%s: malformed .npy header: not a dict", name);
    while (!eat(&lx, '}')) {
        if ((rc = parse_str(&lx, key, sizeof key))) return rc;
        if (!eat(&lx, ':')) return acv_error(ACV_EFORMAT, "%s: malformed .npy header: expected ':' after '%s'", name, key);
        if (!strcmp(key, "descr") && !have_descr) {
            skip_ws(&lx);
            if (lx.p < lx.end && *lx.p == '[')
                return acv_error(ACV_EUNSUPPORTED, "%s: structured dtypes are not supported", name);
            if ((rc = parse_str(&lx, descr, sizeof descr))) return rc;
            have_descr = true;
        } else if (!strcmp(key, "fortran_order") && !have_order) {
            if (match_word(&lx, "True")) fortran = true;
            else if (!match_word(&lx, "False"))
                return acv_error(ACV_EFORMAT, "%s: malformed .npy header: 'fortran_order' is not True or False", name);
            have_order = true;
        } else if (!strcmp(key, "shape") && !have_shape) {
            if ((rc = parse_shape(&lx, &info->shape))) return rc;
            have_shape = true;
        } else {
            return acv_error(ACV_EFORMAT, "%s: malformed .npy header: unexpected or repeated key '%s'", name, key);
        }
        if (!eat(&lx, ',')) {
            if (eat(&lx, '}')) break;
            return acv_error(ACV_EFORMAT, "%s: malformed .npy header: expected ',' or '}' after '%s'", name, key);
        }
    }
    skip_ws(&lx);
    if (lx.p != lx.end) return acv_error(ACV_EFORMAT, "%s: malformed .npy header: text after the dict", name);
    if (!have_descr || !have_order || !have_shape)
        return acv_error(ACV_EFORMAT, "%s: malformed .npy header: missing '%s'", name,
                         !have_descr ? "descr" : !have_order ? "fortran_order" : "shape");
    if (fortran)
        return acv_error(ACV_EUNSUPPORTED, "%s: Fortran-order arrays are not supported (save with "
                         "numpy.ascontiguousarray)", name);
    if ((rc = parse_descr(descr, name, info))) return rc;
    int64_t n = 1;
    bool ovf = false;
    for (int i = 0; i < info->shape.ndim; i++) ovf = ovf || __builtin_mul_overflow(n, info->shape.d[i], &n);
    int64_t nb = 0;
    if (ovf || __builtin_mul_overflow(n, (int64_t)info->size, &nb))
        return acv_error(ACV_EFORMAT, "%s: malformed .npy header: absurd shape (element count overflows)", name);
    info->numel = n;
    info->nbytes = (uint64_t)nb;
    return 0;
}

/* Checks magic and version in the first avail bytes; gives where the header text starts
 * and how long it is. Needs at least 12 bytes, or 10 for version 1. */
static int parse_preamble(const uint8_t *p, size_t avail, const char *name, size_t *hoff, size_t *hlen)
{
    if (avail < 10 || memcmp(p, NPY_MAGIC, NPY_MAGIC_LEN))
        return acv_error(ACV_EFORMAT, "%s: not a .npy file (bad magic)", name);
    int major = p[6], minor = p[7];
    if (major == 1) {
        *hoff = 10;
        *hlen = (size_t)p[8] | (size_t)p[9] << 8;
    } else if (major == 2 || major == 3) {
        if (avail < 12) return acv_error(ACV_EFORMAT, "%s: truncated .npy preamble", name);
        *hoff = 12;
        *hlen = (size_t)p[8] | (size_t)p[9] << 8 | (size_t)p[10] << 16 | (size_t)p[11] << 24;
    } else {
        return acv_error(ACV_EFORMAT, "%s: unknown .npy format version %d.%d", name, major, minor);
    }
    if (minor != 0) return acv_error(ACV_EFORMAT, "%s: unknown .npy format version %d.%d", name, major, minor);
    if (*hlen > NPY_MAX_HEADER)
        return acv_error(ACV_EFORMAT, "%s: .npy header of %zu bytes is larger than the %u-byte limit", name, *hlen,
                         NPY_MAX_HEADER);
    return 0;
}

/* ---- conversion ---- */


#define CONV(T, EXPR)                                                   \
    for (size_t i = 0; i < count; i++) {                                \
        uint8_t b[8];                                                   \
        const uint8_t *s = src + i * sizeof(T);                         \
        if (info->swap) for (size_t j = 0; j < sizeof(T); j++) b[j] = s[sizeof(T) - 1 - j]; \
        else memcpy(b, s, sizeof(T));                                   \
        T x;                                                            \
        memcpy(&x, b, sizeof x);                                        \
        dst[i] = (EXPR);                                                \
    }

/* Converts count elements from the file's dtype to float32. */
static void convert(const uint8_t *src, size_t count, const npy_info *info, float *dst)
{
    int code = info->kind << 8 | info->size;
    switch (code) {
    case 'f' << 8 | 4: CONV(float, x); break;
    case 'f' << 8 | 2: CONV(uint16_t, acv_half_to_float(x)); break;
    case 'f' << 8 | 8: CONV(double, (float)x); break;
    case 'i' << 8 | 1: CONV(int8_t, (float)x); break;
    case 'i' << 8 | 2: CONV(int16_t, (float)x); break;
    case 'i' << 8 | 4: CONV(int32_t, (float)x); break;
    case 'i' << 8 | 8: CONV(int64_t, (float)x); break;
    case 'u' << 8 | 1: CONV(uint8_t, (float)x); break;
    case 'u' << 8 | 2: CONV(uint16_t, (float)x); break;
    case 'u' << 8 | 4: CONV(uint32_t, (float)x); break;
    case 'u' << 8 | 8: CONV(uint64_t, (float)x); break;
    case 'b' << 8 | 1: CONV(uint8_t, x ? 1.0f : 0.0f); break;
    default: ACV_ASSERT(!"dtype checked by parse_descr");
    }
}

/* ---- loading ---- */

static float *alloc_out(const npy_info *info, const char *name)
{
    float *out = malloc(info->numel > 0 ? (size_t)info->numel * sizeof(float) : 1);
    if (!out) acv_error(ACV_ENOMEM, "%s: cannot allocate %lld floats", name, (long long)info->numel);
    return out;
}

int acv_npy_load_mem(const void *buf, size_t len, const char *name, acv_shape *shape, float **data)
{
    *data = NULL;
    const uint8_t *p = buf;
    size_t hoff = 0, hlen = 0;
    int rc = parse_preamble(p, len, name, &hoff, &hlen);
    if (rc) return rc;
    if (hlen > len - hoff) return acv_error(ACV_EFORMAT, "%s: truncated .npy header", name);
    npy_info info = {0};
    if ((rc = parse_dict((const char *)p + hoff, hlen, name, &info))) return rc;
    size_t have = len - hoff - hlen;
    if (have != info.nbytes)
        return acv_error(ACV_EFORMAT, "%s: %zu bytes of array data, but the header's shape and dtype need %llu",
                         name, have, (unsigned long long)info.nbytes);
    float *out = alloc_out(&info, name);
    if (!out) return ACV_ENOMEM;
    convert(p + hoff + hlen, (size_t)info.numel, &info, out);
    *shape = info.shape;
    *data = out;
    return 0;
}

static int read_exact(FILE *f, void *dst, size_t n, const char *path, const char *what)
{
    if (n && fread(dst, 1, n, f) != n)
        return acv_error(ferror(f) ? ACV_EIO : ACV_EFORMAT, "%s: %s while reading the %s", path,
                         ferror(f) ? strerror(errno) : "unexpected end of file", what);
    return 0;
}

int acv_npy_load(const char *path, acv_shape *shape, float **data)
{
    *data = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return acv_error(errno == ENOENT ? ACV_ENOTFOUND : ACV_EIO, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return acv_error(ACV_EIO, "%s: not a regular file", path);
    }
    uint64_t fsize = (uint64_t)sb.st_size;
    uint8_t pre[12];
    size_t hoff = 0, hlen = 0;
    char *hdr = NULL;
    float *out = NULL;
    uint8_t *tmp = NULL;
    npy_info info = {0};
    size_t got = fread(pre, 1, sizeof pre, f);
    int rc = parse_preamble(pre, got, path, &hoff, &hlen);
    if (!rc && fsize < hoff + hlen) rc = acv_error(ACV_EFORMAT, "%s: truncated .npy header", path);
    if (!rc && !(hdr = malloc(hlen + 1))) rc = acv_error(ACV_ENOMEM, "%s: out of memory", path);
    if (!rc && fseek(f, (long)hoff, SEEK_SET) != 0) rc = acv_error(ACV_EIO, "%s: seek failed", path);
    if (!rc) rc = read_exact(f, hdr, hlen, path, "header");
    if (!rc) rc = parse_dict(hdr, hlen, path, &info);
    if (!rc && fsize - hoff - hlen != info.nbytes)
        rc = acv_error(ACV_EFORMAT, "%s: %llu bytes of array data, but the header's shape and dtype need %llu", path,
                       (unsigned long long)(fsize - hoff - hlen), (unsigned long long)info.nbytes);
    if (!rc && !(out = alloc_out(&info, path))) rc = ACV_ENOMEM;
    if (!rc && info.kind == 'f' && info.size == 4 && !info.swap) {
        rc = read_exact(f, out, (size_t)info.nbytes, path, "array data");
    } else if (!rc) {
        size_t chunk = NPY_CHUNK;
        if (!(tmp = malloc(chunk * (size_t)info.size))) rc = acv_error(ACV_ENOMEM, "%s: out of memory", path);
        for (size_t done = 0; !rc && done < (size_t)info.numel; done += chunk) {
            size_t c = (size_t)info.numel - done < chunk ? (size_t)info.numel - done : chunk;
            rc = read_exact(f, tmp, c * (size_t)info.size, path, "array data");
            if (!rc) convert(tmp, c, &info, out + done);
        }
    }
    fclose(f);
    free(hdr);
    free(tmp);
    if (rc) {
        free(out);
        return rc;
    }
    *shape = info.shape;
    *data = out;
    return 0;
}

/* ---- saving ---- */

int acv_npy_save(const char *path, const acv_shape *shape, const float *data)
{
    if (shape->ndim < 0 || shape->ndim > ACV_MAX_DIMS)
        return acv_error(ACV_EINVAL, "%s: cannot save an array with %d dims", path, shape->ndim);
    int64_t numel = 1;
    bool ovf = false;
    for (int i = 0; i < shape->ndim; i++) {
        if (shape->d[i] < 0) return acv_error(ACV_EINVAL, "%s: negative dimension %lld", path, (long long)shape->d[i]);
        ovf = ovf || __builtin_mul_overflow(numel, shape->d[i], &numel);
    }
    int64_t nbytes;
    if (ovf || __builtin_mul_overflow(numel, (int64_t)sizeof(float), &nbytes))
        return acv_error(ACV_ERANGE, "%s: absurd shape", path);
    if (numel > 0 && !data) return acv_error(ACV_EINVAL, "%s: NULL data for %lld elements", path, (long long)numel);

    /* Same text and padding as numpy.lib.format._write_array_header. */
    char dict[512];
    int k = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
    for (int i = 0; i < shape->ndim; i++)
        k += snprintf(dict + k, sizeof dict - (size_t)k, i ? ", %lld" : "%lld", (long long)shape->d[i]);
    k += snprintf(dict + k, sizeof dict - (size_t)k, shape->ndim == 1 ? ",), }" : "), }");
    if (shape->ndim > 0) {
        int digits = snprintf(NULL, 0, "%lld", (long long)shape->d[0]);
        for (int i = digits; i < 21; i++) dict[k++] = ' ';
        dict[k] = 0;
    }
    size_t hlen = (size_t)k + 1; /* + '\n' */
    int major = 1;
    size_t pre = 10;
    size_t pad = 64 - (pre + hlen) % 64;
    if (hlen + pad > 65535) { /* unreachable with ACV_MAX_DIMS dims, kept for the format's sake */
        major = 2;
        pre = 12;
        pad = 64 - (pre + hlen) % 64;
    }
    size_t htot = hlen + pad, total = pre + htot + (size_t)nbytes;
    uint8_t *file = malloc(total);
    if (!file) return acv_error(ACV_ENOMEM, "%s: cannot allocate %zu bytes", path, total);
    memcpy(file, NPY_MAGIC, NPY_MAGIC_LEN);
    file[6] = (uint8_t)major;
    file[7] = 0;
    for (size_t i = 0; i < pre - 8; i++) file[8 + i] = (uint8_t)(htot >> (8 * i));
    memcpy(file + pre, dict, (size_t)k);
    memset(file + pre + k, ' ', pad);
    file[pre + htot - 1] = '\n';
    if (nbytes) memcpy(file + pre + htot, data, (size_t)nbytes);
    int rc = acv_file_write_atomic(path, file, total);
    free(file);
    return rc;
}
