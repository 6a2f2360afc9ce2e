/* The engine's network graph: a static graph of ops on float32 NCHW tensors.
 *
 * Build a graph with the builder functions below; each returns the new node's id, or a
 * negative error code. Errors are sticky: once a builder call fails, every later call
 * returns the same error, so construction code stays a straight line and is checked once
 * with acv_graph_status(). Shapes are inferred as nodes are added.
 *
 * Parameters are named as PyTorch names them ("layer1.0.conv1.weight", "bn1.running_mean")
 * so that weights line up with torchvision and ONNX files. All trainable parameters live
 * in one allocation, their gradients in another, and non-trainable buffers (batch-norm
 * running statistics) in a third; see acv_graph_params().
 *
 * acv_graph_compile() plans activation memory once for a maximum batch size; every
 * forward/backward then reuses it. In inference mode, buffers whose values are dead are
 * shared between nodes; in training mode every activation the backward pass needs is kept.
 */
#ifndef AUTOCV_GRAPH_H
#define AUTOCV_GRAPH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "autocv/tensor.h"

typedef struct acv_graph acv_graph;
typedef struct acv_backend acv_backend;
typedef int acv_id;

typedef enum acv_op {
    ACV_OP_INPUT, ACV_OP_PARAM,
    ACV_OP_CONV2D, ACV_OP_CONVT2D, ACV_OP_BATCHNORM,
    ACV_OP_ACT,                       /* attrs.act: relu, relu6, leaky, silu, ... */
    ACV_OP_MAXPOOL, ACV_OP_AVGPOOL, ACV_OP_GAP,
    ACV_OP_UPSAMPLE,
    ACV_OP_BINARY,                    /* add, sub, mul, div with broadcasting */
    ACV_OP_CONCAT, ACV_OP_SLICE, ACV_OP_RESHAPE,
    ACV_OP_LINEAR, ACV_OP_SOFTMAX, ACV_OP_DROPOUT,
    ACV_OP_LAYERNORM,                 /* normalization over one axis (attrs.axis), gamma/beta */
    ACV_OP_CROSS_ENTROPY, ACV_OP_BCE_LOGITS, ACV_OP_FOCAL,   /* losses last */
    ACV_OP_COUNT
} acv_op;

/* How a parameter is initialised by acv_graph_init_params(). */
typedef enum acv_init {
    ACV_INIT_ZERO, ACV_INIT_ONE,
    ACV_INIT_KAIMING_OUT,   /* normal(0, sqrt(2/fan_out)): torchvision's conv init */
    ACV_INIT_UNIFORM_FAN_IN,/* uniform(+-1/sqrt(fan_in)): PyTorch's default linear/conv init */
    ACV_INIT_NORMAL_001,    /* normal(0, 0.01): torchvision's classifier init (MobileNet) */
} acv_init;

acv_graph *acv_graph_new(void);
void acv_graph_free(acv_graph *g);
/* 0, or the first error any builder call met (its message is in acv_errmsg()). */
int acv_graph_status(const acv_graph *g);
int acv_graph_node_count(const acv_graph *g);

/* ---- builder --------------------------------------------------------------------- */
/* An input; shape[0] is the batch dimension. */
acv_id acv_input(acv_graph *g, const char *name, int ndim, const int64_t *shape);
acv_id acv_param(acv_graph *g, const char *name, int ndim, const int64_t *shape, acv_init init,
                 bool trainable);

typedef struct acv_conv_attrs {
    int kh, kw, stride_h, stride_w;
    int pad_t, pad_l, pad_b, pad_r;
    int dil_h, dil_w, groups;
    int out_pad_h, out_pad_w;   /* transposed only */
} acv_conv_attrs;
/* Square-kernel convolution creating NAME.weight (K, C/groups, k, k) and NAME.bias. */
acv_id acv_conv2d(acv_graph *g, const char *name, acv_id x, int out_c, int k, int stride, int pad,
                  int dilation, int groups, bool bias);
/* Convolution over existing weight/bias nodes (bias < 0: none). */
acv_id acv_conv2d_ex(acv_graph *g, const char *name, acv_id x, acv_id w, acv_id b,
                     const acv_conv_attrs *a);
acv_id acv_convt2d(acv_graph *g, const char *name, acv_id x, int out_c, int k, int stride, int pad,
                   int out_pad, int groups, bool bias);
acv_id acv_convt2d_ex(acv_graph *g, const char *name, acv_id x, acv_id w, acv_id b,
                      const acv_conv_attrs *a);
/* Batch norm creating NAME.weight, NAME.bias (trainable), NAME.running_mean, NAME.running_var. */
acv_id acv_batchnorm(acv_graph *g, const char *name, acv_id x, float eps, float momentum);
acv_id acv_batchnorm_ex(acv_graph *g, const char *name, acv_id x, acv_id gamma, acv_id beta,
                        acv_id mean, acv_id var, float eps, float momentum);
/* Layer normalization over one axis: every slice along `axis` (the other indices fixed) is
 * normalized to mean 0 and variance 1 (biased, + eps), then scaled by gamma and shifted by
 * beta (axis values each). The last axis is PyTorch's LayerNorm over one dim (x of any rank);
 * axis 1 of NCHW is ConvNeXt's LayerNorm2d (a LayerNorm of the channels-last tensor).
 * acv_layernorm creates NAME.weight (ones) and NAME.bias (zeros), trainable. */
acv_id acv_layernorm(acv_graph *g, const char *name, acv_id x, int axis, float eps);
acv_id acv_layernorm_ex(acv_graph *g, const char *name, acv_id x, acv_id gamma, acv_id beta, int axis,
                        float eps);
/* kind is an acv_act from the kernels (ACV_ACT_RELU = 0, ...); alpha for leaky ReLU. */
acv_id acv_activation(acv_graph *g, acv_id x, int kind, float alpha);
acv_id acv_relu(acv_graph *g, acv_id x);

typedef struct acv_pool_attrs {
    int kh, kw, stride_h, stride_w, pad_t, pad_l, pad_b, pad_r, dil_h, dil_w;
    bool ceil_mode, count_include_pad;
} acv_pool_attrs;
acv_id acv_maxpool(acv_graph *g, acv_id x, int k, int stride, int pad, bool ceil_mode);
acv_id acv_avgpool(acv_graph *g, acv_id x, int k, int stride, int pad, bool ceil_mode,
                   bool count_include_pad);
acv_id acv_pool_ex(acv_graph *g, acv_op op, acv_id x, const acv_pool_attrs *a);
/* (N, C, H, W) -> (N, C, 1, 1). */
acv_id acv_global_avgpool(acv_graph *g, acv_id x);
/* Resize to (OH, OW); bilinear or nearest. */
acv_id acv_upsample(acv_graph *g, acv_id x, int oh, int ow, bool bilinear, bool align_corners);

/* Broadcasting arithmetic; op is an acv_binop (ADD = 0, SUB, MUL, DIV). */
acv_id acv_binary(acv_graph *g, int op, acv_id a, acv_id b);
acv_id acv_add(acv_graph *g, acv_id a, acv_id b);
acv_id acv_mul(acv_graph *g, acv_id a, acv_id b);
acv_id acv_concat(acv_graph *g, int n, const acv_id *xs, int axis);
/* Elements [start, end) with step along axis; end is clamped to the dim. */
acv_id acv_slice(acv_graph *g, acv_id x, int axis, int64_t start, int64_t end, int64_t step);
/* Reshape with ONNX rules: 0 copies the input dim, -1 is inferred (once). */
acv_id acv_reshape(acv_graph *g, acv_id x, int ndim, const int64_t *spec);
/* (d0, ..., d_{axis-1}, rest) -> (d0*...*d_{axis-1}, rest) as ONNX Flatten; axis 1 keeps batch. */
acv_id acv_flatten(acv_graph *g, acv_id x, int axis);
/* x (N, IN) -> (N, OUT); creates NAME.weight (OUT, IN) and NAME.bias. */
acv_id acv_linear(acv_graph *g, const char *name, acv_id x, int out, bool bias);
acv_id acv_linear_ex(acv_graph *g, const char *name, acv_id x, acv_id w, acv_id b);
acv_id acv_softmax(acv_graph *g, acv_id x, int axis, bool log);
acv_id acv_dropout(acv_graph *g, acv_id x, float p);

/* Losses: scalar outputs (shape [1]). targets for cross-entropy hold class indices as
 * floats, shape (N); weights (K floats, copied) or NULL. */
acv_id acv_cross_entropy(acv_graph *g, acv_id logits, acv_id targets, float label_smoothing,
                         const float *class_weights);
acv_id acv_bce_logits(acv_graph *g, acv_id logits, acv_id targets);
acv_id acv_focal_loss(acv_graph *g, acv_id logits, acv_id targets, float alpha, float gamma);

/* ---- inspection ------------------------------------------------------------------ */
acv_op acv_graph_op(const acv_graph *g, acv_id id);
const char *acv_graph_name(const acv_graph *g, acv_id id);
const acv_shape *acv_graph_shape(const acv_graph *g, acv_id id);
/* Finds a node by name (inputs, params and named ops); -1 when absent. */
acv_id acv_graph_find(const acv_graph *g, const char *name);
/* Changes an input's shape (e.g. another image size) and re-infers every shape; the graph
 * must be compiled again afterwards. Fails (leaving the old shapes) when an op cannot take
 * the new shape. */
int acv_graph_reshape_input(acv_graph *g, acv_id input, int ndim, const int64_t *shape);
/* Marks the graph's output (what inference returns and what is serialised). */
void acv_graph_set_output(acv_graph *g, acv_id id);
acv_id acv_graph_output(const acv_graph *g);
/* The first input node. */
acv_id acv_graph_input(const acv_graph *g);

/* ---- parameters -------------------------------------------------------------------- */
typedef struct acv_param_info {
    const char *name;
    acv_id id;
    acv_shape shape;
    float *data;        /* into the graph's parameter or buffer storage */
    float *grad;        /* NULL for buffers or before compile(training) */
    bool trainable;
    int64_t offset;     /* offset into the flat trainable storage (trainable only) */
} acv_param_info;
int acv_graph_param_count(const acv_graph *g);
/* Fills *out for the i-th parameter (0 <= i < count); allocates storage on first use. */
int acv_graph_param(acv_graph *g, int i, acv_param_info *out);
/* Flat trainable parameters and their gradients (n floats each; grads NULL before a
 * training compile). */
float *acv_graph_params(acv_graph *g, int64_t *n);
float *acv_graph_grads(acv_graph *g, int64_t *n);
/* Flat non-trainable buffers (batch-norm running statistics), n floats. */
float *acv_graph_buffers(acv_graph *g, int64_t *n);
/* Initialises every parameter by its acv_init from seed. */
int acv_graph_init_params(acv_graph *g, uint64_t seed);
/* Total trainable parameter count. */
int64_t acv_graph_num_params(const acv_graph *g);
/* Multiply-accumulate count of one forward pass per sample, in GFLOPs (2 * MACs / 1e9). */
double acv_graph_gflops(const acv_graph *g);

/* ---- execution ----------------------------------------------------------------------- */
/* Plans memory for batches up to max_batch on backend be (NULL: the CPU backend). With
 * training=true, gradients are allocated and all activations kept for backward. Can be
 * called again (e.g. to switch mode); it re-plans. */
int acv_graph_compile(acv_graph *g, const acv_backend *be, int max_batch, bool training);
/* Runs with batch n <= max_batch (re-infers shapes; no allocation). */
int acv_graph_set_batch(acv_graph *g, int n);
int acv_graph_batch(const acv_graph *g);
/* Activation buffer of a node (write inputs here before forward); valid after compile.
 * Inputs and the output are always plain NCHW. After an inference compile on a backend
 * with a blocked layout, an intermediate node that no plain reader needs may hold its
 * values blocked (NCHW{B}c, see nn/kernels.h); read intermediates from a training compile
 * or mark them as the output. */
float *acv_graph_data(acv_graph *g, acv_id id);
/* Gradient buffer of a node (training compile only; NULL otherwise). */
float *acv_graph_grad(acv_graph *g, acv_id id);
/* Forward pass up to and including node `upto` (-1: every node). training selects batch
 * statistics and active dropout; `seed` drives dropout masks. */
int acv_graph_forward(acv_graph *g, acv_id upto, bool training, uint64_t seed);
/* Backward from the scalar node `loss`: zeroes all gradients, then computes the gradient
 * of every trainable parameter (and of inputs marked with acv_graph_want_input_grad). */
int acv_graph_backward(acv_graph *g, acv_id loss);
/* Backward from any node with a gradient computed outside the graph (a loss evaluated on the
 * host from the node's values): as acv_graph_backward, but the node's gradient is seeded with
 * grad, d(loss)/d(node), numel of the node's shape at the current batch, plain NCHW order
 * (copied). The node must lie downstream of what needs gradients (else nothing happens). */
int acv_graph_backward_from(acv_graph *g, acv_id node, const float *grad);
void acv_graph_want_input_grad(acv_graph *g, acv_id input, bool want);

/* Prints the time spent per operator type in forward and backward passes so far, when the
 * process runs with ACV_PROFILE set (nothing otherwise). */
void acv_graph_profile_print(FILE *f);
/* With ACV_PROFILE=nodes: the forward and backward time of each of g's nodes so far, with its shapes and,
 * for convolutions, the kernel implementation (nothing otherwise). */
void acv_graph_profile_nodes(const acv_graph *g, FILE *f);

/* ---- serialisation --------------------------------------------------------------------- */
/* The architecture as a JSON string (malloc'd): nodes, attributes and parameter shapes, up
 * to the output node (losses are not serialised). */
char *acv_graph_to_json(const acv_graph *g);
/* Rebuilds a graph from acv_graph_to_json()'s text; parameters are allocated but not set. */
int acv_graph_from_json(const char *json, acv_graph **out);

/* Adds the nodes of graph JSON `text` (acv_graph_to_json's form) to g, a graph still being
 * built, as acv_graph_from_json would: the JSON's one input node stands for node `input` of g;
 * every other node's name gets `prefix` in front; with `frozen`, its parameters are not
 * trainable. keep (one flag per JSON node, or NULL) selects the nodes to add, and every input
 * of a selected node must be selected or be the input; with keep NULL the nodes are added in
 * order until one cannot be (its shape does not infer at g's input size: g then carries that
 * error). ids (room for n_ids) receives each JSON node's id in g, -1 where not added. Returns
 * the number of nodes added, or a negative error. Parameters are allocated but not set. */
int acv_graph_append_json(acv_graph *g, const char *text, acv_id input, const char *prefix, bool frozen,
                          const unsigned char *keep, int *ids, int n_ids);

#endif
