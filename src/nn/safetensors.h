/* safetensors files: the weights half of a model directory (weights.safetensors).
 *
 * Layout: an 8-byte little-endian header length N, N bytes of JSON
 *   {"__metadata__": {"key": "value", ...},
 *    "name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...}
 * then the data buffer; offsets are relative to the buffer's start. The writer stores
 * float32 tensors in name order, contiguously, with the header padded by spaces to a
 * multiple of 8 so that every tensor is aligned. The reader maps the file read-only,
 * validates the whole header up front (the same rules as the reference implementation:
 * tensors cover the buffer exactly, without gaps or overlaps, and each one's byte size
 * matches its shape and dtype) and hands out pointers into the mapping. */
#ifndef ACV_NN_SAFETENSORS_H
#define ACV_NN_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "autocv/tensor.h"

typedef enum acv_st_dtype {
    ACV_ST_DTYPE_BOOL,
    ACV_ST_DTYPE_U8,
    ACV_ST_DTYPE_I8,
    ACV_ST_DTYPE_F8_E5M2,
    ACV_ST_DTYPE_F8_E4M3,
    ACV_ST_DTYPE_I16,
    ACV_ST_DTYPE_U16,
    ACV_ST_DTYPE_F16,
    ACV_ST_DTYPE_BF16,
    ACV_ST_DTYPE_I32,
    ACV_ST_DTYPE_U32,
    ACV_ST_DTYPE_F32,
    ACV_ST_DTYPE_F64,
    ACV_ST_DTYPE_I64,
    ACV_ST_DTYPE_U64,
    ACV_ST_DTYPE_COUNT
} acv_st_dtype;

/* "F32", "BF16", ... as written in the header. */
const char *acv_st_dtype_name(acv_st_dtype dt);
/* Bytes per element. */
int acv_st_dtype_size(acv_st_dtype dt);

typedef struct acv_safetensors acv_safetensors;

typedef struct acv_safetensors_tensor {
    const char *name;   /* owned by the handle */
    acv_st_dtype dtype;
    acv_shape shape;    /* ndim 0 is a scalar (one element) */
    int64_t numel;
    const void *data;   /* nbytes bytes in the read-only mapping; aligned for the dtype
                           when the file's offsets are (always for files written here) */
    size_t nbytes;
} acv_safetensors_tensor;

/* Writes n float32 tensors to path atomically (a reader sees the old file or the new
 * one). names[i] are unique, valid UTF-8 and not "__metadata__"; shapes[i] has
 * 0..ACV_MAX_DIMS non-negative dims; datas[i] holds numel floats (may be NULL when numel
 * is 0). meta_kv is NULL or a NULL-terminated list "key", "value", "key", "value", ...,
 * NULL stored as "__metadata__" (keys unique). Bad arguments return ACV_EINVAL naming the
 * tensor or key; write failures ACV_EIO. The arrays stay owned by the caller. */
int acv_safetensors_save(const char *path, int n, const char *const *names, const acv_shape *shapes,
                         const float *const *datas, const char *const *meta_kv);

/* Opens and validates path; on success *out is a handle to close with
 * acv_safetensors_close. Every problem is reported with the file (and tensor) named:
 * ACV_ENOTFOUND / ACV_EIO for a missing or unreadable file, ACV_EFORMAT for a header
 * length that does not fit the file, malformed JSON, duplicate names, bad dtype / shape /
 * offset fields, offsets that overlap, leave gaps, run past the end or disagree with
 * shape x dtype size; ACV_EUNSUPPORTED for an unknown dtype or more than ACV_MAX_DIMS
 * dims. On failure *out is NULL. */
int acv_safetensors_open(const char *path, acv_safetensors **out);
/* Unmaps the file; every pointer handed out by st becomes invalid. NULL is a no-op. */
void acv_safetensors_close(acv_safetensors *st);

/* The path given to open. */
const char *acv_safetensors_path(const acv_safetensors *st);
/* Tensors in the file, iterable in name order with acv_safetensors_at(st, 0..count-1). */
int acv_safetensors_count(const acv_safetensors *st);
const acv_safetensors_tensor *acv_safetensors_at(const acv_safetensors *st, int i);
/* The tensor called name, or NULL when there is none (binary search). */
const acv_safetensors_tensor *acv_safetensors_find(const acv_safetensors *st, const char *name);
/* Like find, but a missing name is an error: ACV_ENOTFOUND naming the file and tensor. */
int acv_safetensors_get(const acv_safetensors *st, const char *name, const acv_safetensors_tensor **out);
/* Zero-copy access to a float32 tensor: *data points into the mapping (valid until
 * close) and *shape receives its shape (shape may be NULL). ACV_ENOTFOUND for a missing
 * name; ACV_EUNSUPPORTED when the tensor is not F32 or not 4-byte aligned in the file
 * (use acv_safetensors_read_f32 then). */
int acv_safetensors_get_f32(const acv_safetensors *st, const char *name, acv_shape *shape, const float **data);
/* Copies tensor name into dst (n floats, n must equal its element count, else
 * ACV_ESHAPE), converting F16, BF16, F64, the integer types and BOOL to float32.
 * ACV_ENOTFOUND for a missing name, ACV_EUNSUPPORTED for the F8 types. */
int acv_safetensors_read_f32(const acv_safetensors *st, const char *name, float *dst, int64_t n);

/* The "__metadata__" value for key, or NULL when absent. Owned by st. */
const char *acv_safetensors_meta(const acv_safetensors *st, const char *key);
/* Metadata entries in key order: i in [0, meta_count). */
int acv_safetensors_meta_count(const acv_safetensors *st);
void acv_safetensors_meta_at(const acv_safetensors *st, int i, const char **key, const char **value);

#endif
