/* The engine's kernels: plain functions with explicit shapes, one family per file.
 *
 * Conventions (as in llm.c):
 *  - every tensor is float32, contiguous, NCHW (N, C, H, W) unless said otherwise;
 *  - forward functions overwrite their outputs;
 *  - backward functions ADD into the gradients they are given (d_in += ...), so a
 *    tensor used twice accumulates both contributions; a NULL gradient pointer means
 *    "not needed" and is skipped;
 *  - acv_ref_* are the plain-C reference kernels every fast kernel is tested against;
 *    they must be obviously correct first and reasonably fast second (they run in tests
 *    and as the fallback of the CPU backend).
 */
#ifndef ACV_NN_KERNELS_H
#define ACV_NN_KERNELS_H

#include <stdint.h>
#include <stdbool.h>

/* ---- convolution and transposed convolution ------------------------------------ */
/* Convolution: in (N, C, H, W), weight (K, C/groups, KH, KW), bias (K) or NULL,
 * out (N, K, OH, OW) with OH = (H + pad_t + pad_b - dil_h*(KH-1) - 1)/stride_h + 1.
 * Transposed convolution uses the same struct with the roles of input and output
 * swapped as in PyTorch: in (N, C, H, W), weight (C, K/groups, KH, KW), out (N, K, OH, OW)
 * with OH = (H-1)*stride_h - pad_t - pad_b + dil_h*(KH-1) + out_pad_h + 1. */
typedef struct acv_conv_params {
    int N, C, H, W;      /* input */
    int K, OH, OW;       /* output channels and size */
    int KH, KW;          /* kernel size */
    int stride_h, stride_w;
    int pad_t, pad_l, pad_b, pad_r;
    int dil_h, dil_w;
    int groups;
    int out_pad_h, out_pad_w; /* transposed only */
    /* Forward only (inference fusion): post_act 0 = none, else 1 + an acv_act applied to the
     * output (post_alpha for leaky ReLU). inference = true promises that the weights at the
     * given address do not change until the node's cache is freed, so a backend may keep a
     * prepared copy; backward is never called on such a node. */
    int post_act;
    float post_alpha;
    bool inference;
    /* Layouts of in/out: 0 = plain NCHW, B = blocked NCHW{B}c (forward only, from an
     * inference compile on a backend that reports blocked_channels). */
    int src_block, dst_block;
} acv_conv_params;

void acv_ref_conv2d_forward(float *out, const float *in, const float *w, const float *b,
                            const acv_conv_params *p);
void acv_ref_conv2d_backward(float *d_in, float *d_w, float *d_b, const float *d_out,
                             const float *in, const float *w, const acv_conv_params *p);
void acv_ref_convt2d_forward(float *out, const float *in, const float *w, const float *b,
                             const acv_conv_params *p);
void acv_ref_convt2d_backward(float *d_in, float *d_w, float *d_b, const float *d_out,
                              const float *in, const float *w, const acv_conv_params *p);

/* ---- batch normalization over (N, H, W) per channel ---------------------------- */
/* training: uses batch statistics, writes save_mean/save_rstd (C) for backward and updates
 * running_mean/running_var with momentum (PyTorch: new = (1-m)*old + m*batch, the running
 * variance uses the unbiased batch variance). eval: uses running statistics.
 * gamma/beta may be NULL (affine=false). */
void acv_ref_batchnorm_forward(float *out, float *save_mean, float *save_rstd, const float *in,
                               const float *gamma, const float *beta, float *running_mean,
                               float *running_var, int N, int C, int HW, float eps,
                               float momentum, bool training);
/* Backward of the training-mode forward when training=true (through batch statistics),
 * of the eval-mode affine map when training=false (save_* then unused; running stats used). */
void acv_ref_batchnorm_backward(float *d_in, float *d_gamma, float *d_beta, const float *d_out,
                                const float *in, const float *gamma, const float *save_mean,
                                const float *save_rstd, const float *running_var, int N, int C,
                                int HW, float eps, bool training);

/* ---- pointwise activations ----------------------------------------------------- */
typedef enum acv_act {
    ACV_ACT_RELU, ACV_ACT_RELU6, ACV_ACT_LEAKY_RELU, ACV_ACT_SILU, ACV_ACT_SIGMOID,
    ACV_ACT_HARDSWISH, ACV_ACT_HARDSIGMOID, ACV_ACT_TANH, ACV_ACT_GELU, ACV_ACT_COUNT
} acv_act;
/* alpha: negative slope for leaky ReLU; hard-sigmoid is relu6(x+3)/6 (PyTorch); GELU is the
 * exact form x/2 * (1 + erf(x/sqrt(2))). */
void acv_ref_act_forward(float *out, const float *in, int64_t n, acv_act kind, float alpha);
/* Needs the forward input (in) and output (out). */
void acv_ref_act_backward(float *d_in, const float *d_out, const float *in, const float *out,
                          int64_t n, acv_act kind, float alpha);

/* ---- pooling ------------------------------------------------------------------- */
typedef struct acv_pool_params {
    int N, C, H, W, OH, OW;
    int KH, KW, stride_h, stride_w, pad_t, pad_l, pad_b, pad_r;
    int dil_h, dil_w;        /* max pool only; 1 otherwise */
    bool count_include_pad;  /* avg pool: divide by the full window including padding */
    bool ceil_mode;          /* informational; OH/OW already computed by the caller */
} acv_pool_params;
/* Max pool; argmax (N*C*OH*OW, index into the input plane) is saved for backward. */
void acv_ref_maxpool_forward(float *out, int32_t *argmax, const float *in, const acv_pool_params *p);
void acv_ref_maxpool_backward(float *d_in, const float *d_out, const int32_t *argmax,
                              const acv_pool_params *p);
/* Average pool with PyTorch's divisor rules (windows clipped to the padded input in
 * ceil mode; count_include_pad counts padding but not the ceil-mode overhang). */
void acv_ref_avgpool_forward(float *out, const float *in, const acv_pool_params *p);
void acv_ref_avgpool_backward(float *d_in, const float *d_out, const acv_pool_params *p);
/* Global average pool: in (N, C, HW) -> out (N, C). */
void acv_ref_gap_forward(float *out, const float *in, int N, int C, int HW);
void acv_ref_gap_backward(float *d_in, const float *d_out, int N, int C, int HW);

/* ---- resize ------------------------------------------------------------------- */
/* Nearest (PyTorch 'nearest': src = floor(dst * in/out)) and bilinear (align_corners as
 * PyTorch; with align_corners=false, src = (dst+0.5)*in/out - 0.5 clamped at 0). */
void acv_ref_upsample_nearest_forward(float *out, const float *in, int N, int C, int H, int W,
                                      int OH, int OW);
void acv_ref_upsample_nearest_backward(float *d_in, const float *d_out, int N, int C, int H,
                                       int W, int OH, int OW);
void acv_ref_upsample_bilinear_forward(float *out, const float *in, int N, int C, int H, int W,
                                       int OH, int OW, bool align_corners);
void acv_ref_upsample_bilinear_backward(float *d_in, const float *d_out, int N, int C, int H,
                                        int W, int OH, int OW, bool align_corners);

/* ---- broadcasting binary ops ---------------------------------------------------- */
/* Shapes are given right-aligned in ACV_BCAST_DIMS dims (missing leading dims = 1);
 * each input dim equals the output dim or 1 (numpy broadcasting). */
#define ACV_BCAST_DIMS 6
typedef enum acv_binop { ACV_BIN_ADD, ACV_BIN_SUB, ACV_BIN_MUL, ACV_BIN_DIV } acv_binop;
typedef struct acv_bcast {
    int64_t a[ACV_BCAST_DIMS], b[ACV_BCAST_DIMS], out[ACV_BCAST_DIMS];
} acv_bcast;
void acv_ref_binary_forward(float *out, const float *a, const float *b, const acv_bcast *s,
                            acv_binop op);
/* d_a/d_b are reduced over their broadcast dims. */
void acv_ref_binary_backward(float *d_a, float *d_b, const float *d_out, const float *a,
                             const float *b, const acv_bcast *s, acv_binop op);

/* ---- concat and slice along one axis --------------------------------------------- */
/* The tensor is viewed as (outer, axis, inner). Concat: n inputs with axis sizes
 * sizes[i] into out with axis size sum(sizes). */
void acv_ref_concat_forward(float *out, const float *const *ins, const int *sizes, int n,
                            int64_t outer, int64_t inner);
void acv_ref_concat_backward(float *const *d_ins, const float *d_out, const int *sizes, int n,
                             int64_t outer, int64_t inner);
/* Slice [start, start + step*len) with step >= 1 along the axis of size axis_in. */
void acv_ref_slice_forward(float *out, const float *in, int64_t outer, int64_t axis_in,
                           int64_t inner, int64_t start, int64_t len, int64_t step);
void acv_ref_slice_backward(float *d_in, const float *d_out, int64_t outer, int64_t axis_in,
                            int64_t inner, int64_t start, int64_t len, int64_t step);

/* ---- linear (fully connected) ---------------------------------------------------- */
/* out (M, OUT) = in (M, IN) @ w^T (w: (OUT, IN)) + b (OUT) or no bias. */
void acv_ref_linear_forward(float *out, const float *in, const float *w, const float *b,
                            int M, int IN, int OUT);
void acv_ref_linear_backward(float *d_in, float *d_w, float *d_b, const float *d_out,
                             const float *in, const float *w, int M, int IN, int OUT);

/* ---- softmax family (outer, axis, inner) ------------------------------------------- */
void acv_ref_softmax_forward(float *out, const float *in, int64_t outer, int64_t axis,
                             int64_t inner, bool log);
/* Uses the forward output. */
void acv_ref_softmax_backward(float *d_in, const float *d_out, const float *out, int64_t outer,
                              int64_t axis, int64_t inner, bool log);

/* ---- layer normalization over the middle axis of (outer, axis, inner) ---------------- */
/* out = (in - mean) / sqrt(var + eps) * gamma + beta, mean and (biased) variance over the
 * axis for each (outer, inner) position; gamma/beta (axis values) may be NULL (1 and 0).
 * The last axis of any tensor is inner = 1; the channels of NCHW are outer = N, inner = HW. */
void acv_ref_layernorm_forward(float *out, const float *in, const float *gamma, const float *beta,
                               int64_t outer, int64_t axis, int64_t inner, float eps);
/* Recomputes the statistics from in. */
void acv_ref_layernorm_backward(float *d_in, float *d_gamma, float *d_beta, const float *d_out,
                                const float *in, const float *gamma, int64_t outer, int64_t axis,
                                int64_t inner, float eps);

/* ---- dropout ------------------------------------------------------------------------ */
/* Training: mask[i] = 1/(1-p) kept or 0 dropped, drawn from seed; out = in * mask. */
void acv_ref_dropout_forward(float *out, float *mask, const float *in, int64_t n, float p,
                             uint64_t seed);
void acv_ref_dropout_backward(float *d_in, const float *d_out, const float *mask, int64_t n);

/* ---- losses (mean reduction, scalar output) ------------------------------------------ */
/* Cross-entropy over logits (N, K) with integer targets stored as floats (N). Label
 * smoothing eps spreads eps/K over all classes (PyTorch). weights (K) or NULL: the mean is
 * sum(w[y_i] * l_i) / sum(w[y_i]) as in PyTorch. A target < 0 is ignored. Returns the loss;
 * backward adds scale * dL/dlogits into d_logits. */
float acv_ref_cross_entropy_forward(const float *logits, const float *targets, const float *weights,
                                    int N, int K, float label_smoothing);
void acv_ref_cross_entropy_backward(float *d_logits, const float *logits, const float *targets,
                                    const float *weights, int N, int K, float label_smoothing,
                                    float scale);
/* Cross-entropy with soft targets (N, K) (rows summing to 1, e.g. from mixup/cutmix):
 * mean over N of -sum_k t_k log softmax(x)_k. */
float acv_ref_cross_entropy_soft_forward(const float *logits, const float *targets, int N, int K);
void acv_ref_cross_entropy_soft_backward(float *d_logits, const float *logits, const float *targets,
                                         int N, int K, float scale);
/* BCE with logits, element-wise targets in [0,1], mean over n elements. */
float acv_ref_bce_logits_forward(const float *logits, const float *targets, int64_t n);
void acv_ref_bce_logits_backward(float *d_logits, const float *logits, const float *targets,
                                 int64_t n, float scale);
/* Sigmoid focal loss (torchvision.ops.sigmoid_focal_loss, reduction='mean'): alpha < 0
 * disables the alpha weighting. */
float acv_ref_focal_forward(const float *logits, const float *targets, int64_t n, float alpha,
                            float gamma);
void acv_ref_focal_backward(float *d_logits, const float *logits, const float *targets, int64_t n,
                            float alpha, float gamma, float scale);

/* ---- blocked activation layout (inference) ------------------------------------------ */
/* NCHW{B}c: (N, ceil(C/B), H, W, B) with the channels past C zero. Backends that prefer it
 * report B (acv_backend.blocked_channels); these kernels move between layouts and run the
 * pooling ops on blocked tensors. */
int64_t acv_blk_numel(int N, int C, int64_t HW, int B);
void acv_blk_from_plain(float *out, const float *in, int N, int C, int64_t HW, int B);
void acv_blk_to_plain(float *out, const float *in, int N, int C, int64_t HW, int B);
/* Max / average pooling (PyTorch rules as the plain kernels) on blocked in and out. */
void acv_blk_maxpool_forward(float *out, const float *in, const acv_pool_params *p, int B);
void acv_blk_avgpool_forward(float *out, const float *in, const acv_pool_params *p, int B);
/* Global average pool of a blocked input into a plain (N, C) output. */
void acv_blk_gap_forward(float *out, const float *in, int N, int C, int64_t HW, int B);

#endif
