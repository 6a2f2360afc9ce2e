/* The kernel backend interface.
 *
 * The graph executor calls kernels only through an acv_backend, so that a CUDA backend can
 * be added later without touching models or tasks. Every slot is optional: a NULL slot
 * falls back to the reference kernel in kernels.h. `cache` is a per-node slot (initially
 * NULL) where a backend may keep prepared state (oneDNN primitives, reordered weights);
 * the executor calls cache_free on it when the graph is freed or its shapes change.
 * Pointers are host memory for the CPU backends. */
#ifndef ACV_NN_BACKEND_H
#define ACV_NN_BACKEND_H

#include "nn/kernels.h"

typedef struct acv_backend {
    const char *name;
    /* Sets the number of threads kernels may use. (optional) */
    void (*set_threads)(int n);
    /* Channel block B of the blocked activation layout NCHW{B}c the backend's inference
     * convolutions prefer (see kernels.h), or 0: then inference stays plain NCHW. (optional) */
    int (*blocked_channels)(void);
    /* Releases what a kernel left in a node's cache slot. (optional) */
    void (*cache_free)(void *cache);
    /* The name of the implementation a convolution's cache runs ("" when none yet), for
     * profiles. (optional) */
    const char *(*conv_impl)(void *cache);

    void (*conv2d_forward)(void **cache, float *out, const float *in, const float *w,
                           const float *b, const acv_conv_params *p);
    /* Inference (optional, both or neither): a 1x1 convolution p1 and the depthwise 3x3
     * convolution pd that is its output's only reader, in one pass (see nn/cpu/cpu.h);
     * conv2d_pw_dw_ok is asked when the graph is compiled. */
    bool (*conv2d_pw_dw_ok)(const acv_conv_params *p1, const acv_conv_params *pd);
    void (*conv2d_pw_dw_forward)(void **cache, float *out, const float *in, const float *w1, const float *b1,
                                 const acv_conv_params *p1, const float *wd, const float *bd,
                                 const acv_conv_params *pd);
    void (*conv2d_backward)(void **cache, float *d_in, float *d_w, float *d_b, const float *d_out,
                            const float *in, const float *w, const acv_conv_params *p);
    void (*convt2d_forward)(void **cache, float *out, const float *in, const float *w,
                            const float *b, const acv_conv_params *p);
    void (*convt2d_backward)(void **cache, float *d_in, float *d_w, float *d_b, const float *d_out,
                             const float *in, const float *w, const acv_conv_params *p);
    void (*linear_forward)(void **cache, float *out, const float *in, const float *w,
                           const float *b, int M, int IN, int OUT);
    void (*linear_backward)(void **cache, float *d_in, float *d_w, float *d_b, const float *d_out,
                            const float *in, const float *w, int M, int IN, int OUT);
    void (*batchnorm_forward)(void **cache, float *out, float *save_mean, float *save_rstd,
                              const float *in, const float *gamma, const float *beta,
                              float *running_mean, float *running_var, int N, int C, int HW,
                              float eps, float momentum, bool training);
    void (*batchnorm_backward)(void **cache, float *d_in, float *d_gamma, float *d_beta,
                               const float *d_out, const float *in, const float *gamma,
                               const float *save_mean, const float *save_rstd,
                               const float *running_var, int N, int C, int HW, float eps,
                               bool training);
    /* Batch norm forward (as batchnorm_forward) that also writes act_out = act(out), act an
     * acv_act with slope alpha, in the same pass. A training compile uses it for an
     * activation that reads a batch norm. (optional) */
    void (*batchnorm_act_forward)(void **cache, float *out, float *act_out, int act, float alpha,
                                  float *save_mean, float *save_rstd, const float *in,
                                  const float *gamma, const float *beta, float *running_mean,
                                  float *running_var, int N, int C, int HW, float eps,
                                  float momentum, bool training);
    /* Pointwise activations (contracts as acv_ref_act_*; no per-node state). (optional) */
    void (*act_forward)(float *out, const float *in, int64_t n, acv_act kind, float alpha);
    void (*act_backward)(float *d_in, const float *d_out, const float *in, const float *out,
                         int64_t n, acv_act kind, float alpha);
    void (*maxpool_forward)(void **cache, float *out, int32_t *argmax, const float *in,
                            const acv_pool_params *p);
    void (*maxpool_backward)(void **cache, float *d_in, const float *d_out, const int32_t *argmax,
                             const acv_pool_params *p);
} acv_backend;

/* The reference backend: every slot NULL, so every op runs its plain-C reference kernel. */
const acv_backend *acv_backend_ref(void);
/* The CPU backend: oneDNN and OpenBLAS where they are faster, reference kernels elsewhere. */
const acv_backend *acv_backend_cpu(void);
/* Looks a backend up by name ("cpu", "ref"); NULL when unknown. */
const acv_backend *acv_backend_by_name(const char *name);
/* Sets the thread count for OpenMP, OpenBLAS and oneDNN (0 = all cores). */
void acv_set_threads(int n);
/* Gives the calling thread its own compute thread count for the kernels it runs (a server
 * thread serving one replica of several); 0 returns it to the process's count. */
void acv_set_thread_threads(int n);
int acv_get_threads(void);

#endif
