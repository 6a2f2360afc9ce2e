/* ONNX export: writes a model's engine graph as an ONNX ModelProto (opset 13, IR version 7).
 *
 * Every operator the zoo and the importer produce is written with its ONNX equivalent
 * (see docs/onnx.md, "Export"): parameters become initializers under their own names, the
 * batch dimension of the input and output is symbolic ("N"), and the model's class names,
 * input size, channels, normalization, task and the AutoCV version go into metadata_props.
 * Batch norm stays a BatchNormalization node in inference form; dropout is left out. */
#ifndef ACV_ONNX_EXPORT_H
#define ACV_ONNX_EXPORT_H

#include <stddef.h>
#include <stdint.h>

#include "autocv/model.h"

/* Serialises m into a new buffer (*out, *len; free with free()). A node that cannot be
 * expressed in ONNX (a loss, an attribute without an ONNX equivalent) fails with
 * ACV_EUNSUPPORTED naming the node and its operator; nothing is returned then. The model
 * is not changed (its parameter storage is read, and allocated if it never was). */
int acv_onnx_export_bytes(const acv_model *m, uint8_t **out, size_t *len);
/* acv_onnx_export_bytes, then the bytes written atomically to path (a reader never sees a
 * half-written file; on error nothing is written). */
int acv_onnx_export(const acv_model *m, const char *path);

#endif
