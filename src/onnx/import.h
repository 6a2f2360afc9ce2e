/* ONNX import: builds an engine graph (and a model) from a .onnx file.
 *
 * Supported: opsets 11-18 of the default domain, one float32 NCHW input, one output, the
 * operators listed in docs/onnx.md. Shape arithmetic (Shape, Gather, Cast, Constant,
 * ConstantOfShape, Unsqueeze, Squeeze, Concat, Slice, Reshape, arithmetic on constants) is
 * folded at import since every shape is static once the input size is fixed; a zero Pad is
 * merged into the convolution or average pool that follows it. Parameters take their
 * initializers' names. An unsupported operator, attribute or data type fails the import
 * with an error naming the node and its operator. */
#ifndef ACV_ONNX_IMPORT_H
#define ACV_ONNX_IMPORT_H

#include "autocv/model.h"

typedef struct acv_onnx_options {
    int imgsz;               /* input side used when the file leaves H/W dynamic (0: 224) */
    int height, width;       /* when > 0: the input height / width used instead of imgsz */
    const char *task;        /* "cls" (default), "det", "seg" */
    const char *classes_file;/* one class name per line, or NULL */
    bool has_norm;           /* mean/std below are set; else ImageNet's for 3 channels */
    float mean[4], std[4];
} acv_onnx_options;

/* Imports path into a new model (graph at batch 1, weights set). opt may be NULL. On
 * success *out is owned by the caller (acv_model_free). Errors name the file and, for a
 * node, its name and operator. */
int acv_onnx_import(const char *path, const acv_onnx_options *opt, acv_model **out);
/* Loads a model directory, or imports path when it is a .onnx file (default options). */
int acv_model_load_any(const char *path, acv_model **out);

#endif
