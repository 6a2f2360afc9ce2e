/* Reading ONNX files and decoding their tensors (see onnx_read.h). */
#include "onnx/onnx_read.h"

#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "autocv/error.h"
#include "base/file.h"
#include "base/half.h"

const char *acv__onnx_dtype_name(int dt)
{
    static const char *const N[] = {"UNDEFINED", "FLOAT", "UINT8", "INT8", "UINT16", "INT16", "INT32", "INT64",
                                    "STRING", "BOOL", "FLOAT16", "DOUBLE", "UINT32", "UINT64", "COMPLEX64",
                                    "COMPLEX128", "BFLOAT16"};
    return dt >= 0 && dt < (int)(sizeof N / sizeof N[0]) ? N[dt] : "unknown";
}

int acv__onnx_read(const char *path, Onnx__ModelProto **out)
{
    *out = NULL;
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = acv_file_read(path, ACV_ONNX_MAX_FILE, &buf, &len);
    if (rc) return rc;
    if (len == 0) {
        free(buf);
        return acv_error(ACV_EFORMAT, "%s: empty file, not an ONNX model", path);
    }
    Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, len, buf);
    free(buf);
    if (!m) return acv_error(ACV_EFORMAT, "%s: not an ONNX model (the protobuf does not parse: truncated or another format)", path);
    if (!m->graph) {
        onnx__model_proto__free_unpacked(m, NULL);
        return acv_error(ACV_EFORMAT, "%s: not an ONNX model (no graph)", path);
    }
    *out = m;
    return 0;
}

void acv__otensor_free(acv__otensor *t)
{
    if (!t) return;
    free(t->f);
    free(t->i);
    t->f = NULL;
    t->i = NULL;
}

/* Bytes per element of a data type stored as raw_data, 0 when unsupported. */
static int elem_size(int dt)
{
    switch (dt) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: case ONNX__TENSOR_PROTO__DATA_TYPE__INT32:
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT32: return 4;
    case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: case ONNX__TENSOR_PROTO__DATA_TYPE__INT64:
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT64: return 8;
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16: case ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16:
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT16: case ONNX__TENSOR_PROTO__DATA_TYPE__UINT16: return 2;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT8: case ONNX__TENSOR_PROTO__DATA_TYPE__UINT8:
    case ONNX__TENSOR_PROTO__DATA_TYPE__BOOL: return 1;
    default: return 0;
    }
}

static bool is_float_type(int dt)
{
    return dt == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT || dt == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE ||
           dt == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16 || dt == ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16;
}

/* Converts n little-endian elements of type dt at p into out->f or out->i. */
static void convert_raw(const uint8_t *p, int64_t n, int dt, acv__otensor *o)
{
    for (int64_t k = 0; k < n; k++) {
        switch (dt) {
        case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: { float v; memcpy(&v, p + 4 * k, 4); o->f[k] = v; break; }
        case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: { double v; memcpy(&v, p + 8 * k, 8); o->f[k] = (float)v; break; }
        case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16: { uint16_t v; memcpy(&v, p + 2 * k, 2); o->f[k] = acv_half_to_float(v); break; }
        case ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16: {
            uint16_t v; memcpy(&v, p + 2 * k, 2);
            uint32_t b = (uint32_t)v << 16; float f; memcpy(&f, &b, 4); o->f[k] = f; break;
        }
        case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: { int64_t v; memcpy(&v, p + 8 * k, 8); o->i[k] = v; break; }
        case ONNX__TENSOR_PROTO__DATA_TYPE__UINT64: { uint64_t v; memcpy(&v, p + 8 * k, 8); o->i[k] = (int64_t)v; break; }
        case ONNX__TENSOR_PROTO__DATA_TYPE__INT32: { int32_t v; memcpy(&v, p + 4 * k, 4); o->i[k] = v; break; }
        case ONNX__TENSOR_PROTO__DATA_TYPE__UINT32: { uint32_t v; memcpy(&v, p + 4 * k, 4); o->i[k] = v; break; }
        case ONNX__TENSOR_PROTO__DATA_TYPE__INT16: { int16_t v; memcpy(&v, p + 2 * k, 2); o->i[k] = v; break; }
        case ONNX__TENSOR_PROTO__DATA_TYPE__UINT16: { uint16_t v; memcpy(&v, p + 2 * k, 2); o->i[k] = v; break; }
        case ONNX__TENSOR_PROTO__DATA_TYPE__INT8: o->i[k] = (int8_t)p[k]; break;
        default: o->i[k] = p[k]; break; /* UINT8, BOOL */
        }
    }
}

/* Reads an external-data tensor's bytes: location relative to model_dir, which it must
 * not leave (no absolute paths, no '..', no symlink out). */
static int read_external(const Onnx__TensorProto *t, const char *model_dir, const char *what, size_t want,
                         uint8_t **out)
{
    const char *loc = NULL;
    int64_t offset = 0, length = -1;
    for (size_t k = 0; k < t->n_external_data; k++) {
        const Onnx__StringStringEntryProto *e = t->external_data[k];
        if (!e->key || !e->value) continue;
        char *end;
        if (!strcmp(e->key, "location")) loc = e->value;
        else if (!strcmp(e->key, "offset") || !strcmp(e->key, "length")) {
            long long v = strtoll(e->value, &end, 10);
            if (*end || v < 0) return acv_error(ACV_EFORMAT, "%s: external data %s '%s' is not a number", what, e->key, e->value);
            if (e->key[0] == 'o') offset = v; else length = v;
        }
    }
    if (!loc || !*loc) return acv_error(ACV_EFORMAT, "%s: external data without a location", what);
    if (loc[0] == '/' || !strcmp(loc, "..") || !strncmp(loc, "../", 3) || strstr(loc, "/../") ||
        (strlen(loc) >= 3 && !strcmp(loc + strlen(loc) - 3, "/..")))
        return acv_error(ACV_EFORMAT, "%s: external data location '%s' leaves the model's folder", what, loc);
    if (length >= 0 && (size_t)length != want)
        return acv_error(ACV_EFORMAT, "%s: external data length %lld, the dims need %zu bytes", what, (long long)length, want);
    char *path = acv_path_join(model_dir, loc);
    char rdir[PATH_MAX], rfile[PATH_MAX];
    if (!path) return acv_error(ACV_ENOMEM, "out of memory");
    int rc = 0;
    if (!realpath(model_dir, rdir) || !realpath(path, rfile))
        rc = acv_error(ACV_ENOTFOUND, "%s: external data file %s not found", what, path);
    else if (strcmp(rdir, "/") && (strncmp(rfile, rdir, strlen(rdir)) || rfile[strlen(rdir)] != '/'))
        rc = acv_error(ACV_EFORMAT, "%s: external data file %s leaves the model's folder", what, loc);
    int fd = rc ? -1 : open(rfile, O_RDONLY | O_CLOEXEC);
    if (!rc && fd < 0) rc = acv_error(ACV_EIO, "%s: cannot open external data file %s", what, path);
    struct stat st;
    if (!rc && (fstat(fd, &st) || !S_ISREG(st.st_mode)))
        rc = acv_error(ACV_EIO, "%s: %s is not a regular file", what, path);
    if (!rc && (offset > st.st_size || (int64_t)want > st.st_size - offset))
        rc = acv_error(ACV_EFORMAT, "%s: external data file %s is too short (%lld bytes, needs %zu at offset %lld)",
                       what, path, (long long)st.st_size, want, (long long)offset);
    uint8_t *buf = NULL;
    if (!rc && !(buf = malloc(want ? want : 1))) rc = acv_error(ACV_ENOMEM, "%s: out of memory", what);
    for (size_t got = 0; !rc && got < want;) {
        ssize_t r = pread(fd, buf + got, want - got, (off_t)(offset + (int64_t)got));
        if (r <= 0) rc = acv_error(ACV_EIO, "%s: cannot read external data file %s", what, path);
        else got += (size_t)r;
    }
    if (fd >= 0) close(fd);
    free(path);
    if (rc) {
        free(buf);
        return rc;
    }
    *out = buf;
    return 0;
}

int acv__onnx_tensor_decode(const Onnx__TensorProto *t, const char *model_dir, const char *what,
                            acv__otensor *out)
{
    memset(out, 0, sizeof *out);
    int dt = t->has_data_type ? t->data_type : 0;
    int es = elem_size(dt);
    if (!es) return acv_error(ACV_EUNSUPPORTED, "%s: data type %s is not supported", what, acv__onnx_dtype_name(dt));
    if (t->n_dims > ACV_MAX_DIMS)
        return acv_error(ACV_EUNSUPPORTED, "%s: %zu dims (at most %d are supported)", what, t->n_dims, ACV_MAX_DIMS);
    int64_t n = 1;
    out->shape.ndim = (int)t->n_dims;
    for (size_t k = 0; k < t->n_dims; k++) {
        int64_t d = t->dims[k];
        if (d < 0 || d > ACV_ONNX_MAX_NUMEL || (d && n > ACV_ONNX_MAX_NUMEL / d))
            return acv_error(ACV_ERANGE, "%s: dim %zu is %lld (absurd or too large)", what, k, (long long)d);
        n *= d;
        out->shape.d[k] = d;
    }
    if (n > ACV_ONNX_MAX_NUMEL) return acv_error(ACV_ERANGE, "%s: %lld elements is too large", what, (long long)n);
    if (t->segment) return acv_error(ACV_EUNSUPPORTED, "%s: segmented tensors are not supported", what);
    /* the data must match the dims before anything is allocated from them: a header
     * declaring a billion elements over a few bytes fails here, not in malloc */
    size_t want = (size_t)n * (size_t)es;
    bool external = t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    uint8_t *ext = NULL;
    const uint8_t *raw = NULL;
    if (external) {
        int rc = read_external(t, model_dir, what, want, &ext);
        if (rc) return rc;
        raw = ext;
    } else if (t->has_raw_data) {
        if (t->raw_data.len != want)
            return acv_error(ACV_EFORMAT, "%s: raw_data holds %zu bytes, the dims and type %s need %zu", what,
                             t->raw_data.len, acv__onnx_dtype_name(dt), want);
        raw = t->raw_data.data;
    } else {
        /* typed fields: which one holds the values depends on the type */
        size_t have;
        switch (dt) {
        case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: have = t->n_float_data; break;
        case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: have = t->n_double_data; break;
        case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: have = t->n_int64_data; break;
        case ONNX__TENSOR_PROTO__DATA_TYPE__UINT32: case ONNX__TENSOR_PROTO__DATA_TYPE__UINT64: have = t->n_uint64_data; break;
        default: have = t->n_int32_data; break;
        }
        if (have != (size_t)n)
            return acv_error(ACV_EFORMAT, "%s: holds %zu values of type %s, the dims need %lld", what, have,
                             acv__onnx_dtype_name(dt), (long long)n);
    }
    out->n = n;
    out->is_int = !is_float_type(dt);
    if (out->is_int) out->i = malloc((size_t)(n ? n : 1) * sizeof(int64_t));
    else out->f = malloc((size_t)(n ? n : 1) * sizeof(float));
    if (!out->i && !out->f) {
        free(ext);
        return acv_error(ACV_ENOMEM, "%s: out of memory for %lld values", what, (long long)n);
    }
    if (raw) {
        convert_raw(raw, n, dt, out);
        free(ext);
        return 0;
    }
    for (int64_t k = 0; k < n; k++) {
        switch (dt) {
        case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: out->f[k] = t->float_data[k]; break;
        case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: out->f[k] = (float)t->double_data[k]; break;
        case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16: out->f[k] = acv_half_to_float((uint16_t)t->int32_data[k]); break;
        case ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16: {
            uint32_t b = (uint32_t)(uint16_t)t->int32_data[k] << 16;
            memcpy(&out->f[k], &b, 4);
            break;
        }
        case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: out->i[k] = t->int64_data[k]; break;
        case ONNX__TENSOR_PROTO__DATA_TYPE__UINT32: case ONNX__TENSOR_PROTO__DATA_TYPE__UINT64:
            out->i[k] = (int64_t)t->uint64_data[k]; break;
        default: out->i[k] = t->int32_data[k]; break;
        }
    }
    return 0;
}
