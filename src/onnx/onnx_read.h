/* Reading ONNX files: the protobuf message with size limits, and tensors (raw_data, the
 * typed fields, or external data files next to the model) decoded to float or int64.
 * Internal to src/onnx/ (the importer and the exporter); the generated protobuf-c types
 * come from build/gen/onnx.pb-c.h. */
#ifndef ACV_ONNX_READ_H
#define ACV_ONNX_READ_H

#include <stdbool.h>
#include <stdint.h>

#include "autocv/tensor.h"
#include "onnx.pb-c.h"

/* The largest .onnx file read (protobuf's own limit) and the largest tensor decoded. */
#define ACV_ONNX_MAX_FILE ((size_t)2 << 30)
#define ACV_ONNX_MAX_NUMEL ((int64_t)1 << 30)

/* A decoded constant tensor: floating types become float, integer and bool types int64.
 * shape.ndim is 0 for a scalar (one value). Exactly one of f / i is set (owned). */
typedef struct acv__otensor {
    bool is_int;
    acv_shape shape;
    int64_t n;
    float *f;
    int64_t *i;
} acv__otensor;

/* Reads and parses path. On success *out is owned by the caller (free with
 * onnx__model_proto__free_unpacked(m, NULL)). ACV_ENOTFOUND / ACV_EIO when unreadable,
 * ACV_ERANGE over ACV_ONNX_MAX_FILE, ACV_EFORMAT when it is not an ONNX protobuf. */
int acv__onnx_read(const char *path, Onnx__ModelProto **out);
/* Decodes t into *out (caller frees with acv__otensor_free). model_dir resolves external
 * data (which must stay inside that folder); what names the tensor in errors. Refuses
 * data types other than float, double, float16, bfloat16, the integer types and bool
 * (ACV_EUNSUPPORTED), more than ACV_MAX_DIMS dims, negative or absurd dims (ACV_ERANGE)
 * and data whose size disagrees with the dims (ACV_EFORMAT). */
int acv__onnx_tensor_decode(const Onnx__TensorProto *t, const char *model_dir, const char *what,
                            acv__otensor *out);
void acv__otensor_free(acv__otensor *t);
/* The ONNX name of a TensorProto data type ("FLOAT", "INT64", ...). */
const char *acv__onnx_dtype_name(int dt);

#endif
