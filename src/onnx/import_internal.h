/* Internals of the ONNX importer: the table of named values (graph nodes, constants and
 * pending pads) shared by the driver (import.c), the constant folding (import_fold.c)
 * and the operator translations (import_ops.c). */
#ifndef ACV_ONNX_IMPORT_INTERNAL_H
#define ACV_ONNX_IMPORT_INTERNAL_H

#include "autocv/graph.h"
#include "onnx/import.h"
#include "onnx/onnx_read.h"

/* NODE: a graph node; CONST: a constant; PAD: a zero Pad waiting for the convolution or
 * pool that reads it; LN, GELU: a LayerNorm or GELU decomposition being recognised node by
 * node (import_ops.c), the stage reached so far, made into a graph node only if something
 * else reads it. */
typedef enum { ACV__V_NODE, ACV__V_CONST, ACV__V_PAD, ACV__V_LN, ACV__V_GELU } acv__vkind;

/* Stages of the LayerNorm decomposition torch.onnx writes below opset 17 (x is src):
 * mean = ReduceMean(x, axis), d = Sub(x, mean), Pow(d, 2) (or Mul(d, d)), var = ReduceMean,
 * Add(var, eps), Sqrt, Div(d, std), Mul(gamma), Add(beta). */
enum { ACV__LN_MEAN = 1, ACV__LN_CENTER, ACV__LN_SQ, ACV__LN_VAR, ACV__LN_VAREPS, ACV__LN_STD, ACV__LN_NORM,
       ACV__LN_SCALED };
/* Stages of exact GELU: Div(x, sqrt 2), Erf, Add 1, Mul(x, .), Mul 0.5. */
enum { ACV__GELU_DIV = 1, ACV__GELU_ERF, ACV__GELU_ERF1, ACV__GELU_X };

/* One named ONNX value. */
typedef struct acv__oval {
    char *name;          /* owned */
    acv__vkind kind;
    acv_id id;           /* NODE: its graph node; CONST: its parameter once made, else -1 */
    bool batched;        /* NODE/PAD: dim 0 follows the batch size */
    acv__otensor c;      /* CONST */
    int src;             /* PAD: the padded value (a NODE) */
    int64_t pads[4];     /* PAD: top, left, bottom, right */
    /* NODE (and LN/GELU through src): the ONNX value is the graph node's NCHW tensor
     * permuted to channels-last (N, H, W, C) by a Transpose(0, 2, 3, 1) that was not
     * carried out; ops that understand it (LayerNorm over C, MatMul as a 1x1 convolution,
     * element-wise ops, the Transpose back) work on the NCHW node, others read the
     * transposed node made on demand (mat). */
    bool nhwc;
    acv_id mat;          /* nhwc: the transposed node once made, else -1 */
    int stage;           /* LN / GELU: ACV__LN_* / ACV__GELU_* */
    int axis;            /* LN: the normalized axis of the graph node */
    float eps;           /* LN: epsilon; GELU_DIV: the divisor */
    acv_id gamma;        /* LN_SCALED: the scale parameter */
} acv__oval;

typedef struct acv__ictx {
    const char *path;
    char *dir;                       /* the model's folder (external data) */
    int opset;
    acv_graph *g;
    acv__oval *v;
    int nv, vcap;
    int *tab;                        /* hash table of value indices by name (-1 empty) */
    int tcap;
    int64_t onnx_batch;              /* the input's declared batch (1 when dynamic) */
    struct { acv_id id; float *d; } *pd; /* parameter data, filled in after building */
    int npd, pdcap;
    const Onnx__NodeProto *node;     /* the node being translated (errors) */
} acv__ictx;

/* Error for the current node: "FILE: node 'NAME' (OP): message". */
int acv__nerr(acv__ictx *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int acv__val_find(const acv__ictx *c, const char *name);
/* Value of the current node's input k; NULL when absent (optional input left out). */
acv__oval *acv__in(acv__ictx *c, size_t k);
/* Sets output k of the current node. set_const takes ownership of *t. */
int acv__set_node(acv__ictx *c, size_t k, acv_id id, bool batched);
int acv__set_const(acv__ictx *c, size_t k, acv__otensor *t);
/* Output k as a copy of v (a constant's data copied too): aliases and pending LN / GELU values. */
int acv__set_alias(acv__ictx *c, size_t k, const acv__oval *v);
int acv__set_pad(acv__ictx *c, size_t k, int src, const int64_t pads[4]);
/* The value as a graph node: a constant becomes a (non-trainable unless said) parameter
 * named after it, a pending pad a zero-padding depthwise convolution. */
acv_id acv__node_of(acv__ictx *c, acv__oval *v, bool trainable);
/* As acv__node_of, but a channels-last value gives its NCHW graph node (no transpose). */
acv_id acv__eng_of(acv__ictx *c, acv__oval *v, bool trainable);
/* The node of a pending LN / GELU value (import_ops.c), or an error when the stage reached
 * computes nothing the engine has. */
acv_id acv__pending_node(acv__ictx *c, acv__oval *v);
/* The transposed (N, H, W, C) node of the NCHW node x (import_ops.c). */
acv_id acv__nhwc_materialize(acv__ictx *c, acv__oval *v, acv_id x);
/* A new parameter named base (made unique) holding data (n floats, taken over). */
acv_id acv__new_param(acv__ictx *c, const char *base, const acv_shape *s, float *data, bool trainable);
/* Constant's values as int64 (max n) / one float; errors when not constant. */
int acv__const_ints(acv__ictx *c, acv__oval *v, const char *what, int64_t *out, int max, int *n);
int acv__const_float(acv__ictx *c, acv__oval *v, const char *what, float *out);
/* A float copy of a constant (caller frees). */
float *acv__const_floats(const acv__otensor *t);

/* Attributes of the current node. */
const Onnx__AttributeProto *acv__attr(acv__ictx *c, const char *name);
int64_t acv__attr_i(acv__ictx *c, const char *name, int64_t def);
float acv__attr_f(acv__ictx *c, const char *name, float def);
const char *acv__attr_s(acv__ictx *c, const char *name, const char *def, char *buf, size_t cap);
/* INTS attribute into out (max values); *n = -1 when absent. */
int acv__attr_ints(acv__ictx *c, const char *name, int64_t *out, int max, int *n);
/* Refuses attributes of the current node that are not in the comma-separated list. */
int acv__check_attrs(acv__ictx *c, const char *known);

/* Constant folding (import_fold.c): returns 1 when the node was folded, 0 when it is not
 * a foldable op or its inputs are not all constant, <0 on error. */
int acv__fold(acv__ictx *c, const char *op);
/* Shape helpers shared by folding and translation (import_fold.c). */
int acv__squeeze_shape(acv__ictx *c, bool unsqueeze, const acv_shape *s, const int64_t *axes, int n,
                       bool keep_dim0, acv_shape *o);
int acv__axes_arg(acv__ictx *c, size_t input, int64_t *axes, int *n);
int acv__reshape_shape(acv__ictx *c, const acv_shape *in, const int64_t *spec, int n, bool allowzero, acv_shape *o);
int acv__slice_range(acv__ictx *c, int64_t dim, int64_t st, int64_t en, int64_t step, int64_t *o_st, int64_t *o_len);
int acv__slice_args(acv__ictx *c, int rank, int64_t *st, int64_t *en, int *axes, int64_t *steps, int *n);

/* Translation of one node into graph nodes (import_ops.c). */
int acv__translate(acv__ictx *c, const char *op);
/* 0 when the importer knows the operator, else an error naming it with what to do. */
int acv__op_check(acv__ictx *c, const char *op);
/* Reshape of a node to out (static dims) keeping the batch: batch_pos is the output dim
 * that carries the input's batch dim, or -1. */
acv_id acv__reshape_node(acv__ictx *c, acv__oval *x, const acv_shape *out, int batch_pos);

#endif
