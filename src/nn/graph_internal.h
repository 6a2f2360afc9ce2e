/* Internals of the graph (builder in graph.c, planning and execution in exec.c,
 * serialisation in graph_json.c). Not part of the public API. */
#ifndef ACV_NN_GRAPH_INTERNAL_H
#define ACV_NN_GRAPH_INTERNAL_H

#include "autocv/graph.h"
#include "nn/backend.h"

/* One flat attribute record per node; each op reads the fields it needs. */
typedef struct acv_attrs {
    acv_conv_attrs conv;
    acv_pool_attrs pool;
    float eps, momentum;          /* batchnorm */
    int act;                      /* activation kind */
    float alpha;                  /* leaky slope; focal alpha */
    float gamma;                  /* focal */
    int oh, ow;                   /* upsample output size */
    bool bilinear, align_corners; /* upsample */
    int binop;                    /* binary */
    int axis;                     /* concat, slice, softmax, flatten (reshape from flatten) */
    int64_t start, end, step;     /* slice */
    int spec_ndim;                /* reshape spec (0 copies, -1 infers) */
    int64_t spec[ACV_MAX_DIMS];
    bool log;                     /* log-softmax */
    float p;                      /* dropout */
    float smoothing;              /* cross-entropy */
    float *class_weights;         /* cross-entropy, owned, n_weights floats */
    int n_weights;
} acv_attrs;

typedef struct acv_node {
    acv_op op;
    char *name;                   /* owned; may be "" */
    int n_in;
    acv_id *in;                   /* owned */
    acv_shape shape;              /* at the current batch size */
    acv_attrs a;
    /* parameters */
    acv_init init;
    bool trainable;
    int64_t poff;                 /* offset into params (trainable) or buffers; -1 unplaced */
    /* execution (valid after compile) */
    float *out;                   /* activation (params: their data) */
    float *grad;                  /* gradient or NULL */
    float *aux;                   /* batchnorm: save_mean,save_rstd (2*C); dropout: mask */
    int32_t *argmax;              /* maxpool */
    void *cache;                  /* backend's per-node state */
    int64_t max_numel;            /* numel at max batch */
    bool need_grad;
    bool want_grad;               /* inputs: gradient requested */
    bool batched;                 /* shape[0] follows the batch size */
    /* inference fusion (set by an inference compile) */
    acv_id fused_into;            /* >= 0: computed by that convolution; this node aliases it */
    acv_id fold_bn;               /* conv: the batch norm folded into it, or -1 */
    int post_act;                 /* conv: 0, or 1 + the activation applied in its epilogue */
    float post_alpha;
    float *fold_w, *fold_b;       /* conv with fold_bn: folded weights and bias (owned) */
    acv_id dw_head;               /* depthwise conv: the 1x1 conv it computes in the same pass
                                     (that conv is then fused_into this one), or -1 */
    /* training fusion (set by a training compile) */
    acv_id fused_act;             /* batchnorm: the activation reading it that its forward pass
                                     also computes (backend's batchnorm_act_forward), or -1 */
    int blk;                      /* output layout: 0 plain NCHW, B blocked NCHW{B}c (inference) */
    bool needs_plain;             /* blocked output also converted to plain for its readers */
    float *plain;                 /* ... into here */
} acv_node;

struct acv_graph {
    acv_node *nodes;
    int n, cap;
    int status;                   /* sticky first error */
    char errmsg[512];
    acv_id output;
    /* parameter storage */
    float *params, *grads, *buffers;
    int64_t n_params, n_buffers;
    bool params_placed;
    /* execution */
    const acv_backend *be;
    bool compiled, training;
    bool fwd_training;            /* mode of the last forward pass (backward follows it) */
    int max_batch, batch;
    float *arena;                 /* activations (+ grads when training) */
    int64_t arena_floats;
    int32_t *idx_arena;
    int64_t idx_floats;
    /* bumped whenever parameter storage is handed out (it may be written); an inference
     * graph re-derives folded weights and backend caches when it changed */
    uint64_t param_version, prepared_version;
};

/* Recomputes node id's shape from its inputs and attributes (sticky error on failure). */
int acv__graph_infer(acv_graph *g, acv_id id);
/* Places parameters in flat storage (keeping values already set). */
int acv__graph_place_params(acv_graph *g);
/* Adds a node with the given inputs; returns its id or the sticky error. */
acv_id acv__graph_add(acv_graph *g, acv_op op, const char *name, int n_in, const acv_id *in,
                      const acv_attrs *a);
const char *acv__op_name(acv_op op);
/* Floating-point operations of node i's forward pass for one sample (multiply-adds count
 * two; convolutions and linear layers only, 0 for other ops). */
double acv__node_flops(const acv_graph *g, int i);
int acv__op_from_name(const char *s);
void acv__graph_release_exec(acv_graph *g);

#endif
