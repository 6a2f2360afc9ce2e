/* The CPU backend's shared plumbing: the oneDNN engine and per-thread stream, per-thread
 * scratch buffers, the prepared-op helper that wraps a oneDNN primitive with the reorders
 * between the user's plain layouts and the primitive's layouts, and the per-node cache
 * kinds. The public entry point is acv_backend_cpu() in nn/backend.h; this header also
 * exposes the convolution layout switch so benchmarks can compare layouts. */
#ifndef ACV_NN_CPU_CPU_H
#define ACV_NN_CPU_CPU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <dnnl.h>

#include "nn/kernels.h"

/* Memory layout oneDNN convolutions run in. The user's tensors are always plain NCHW /
 * OIHW; BLOCKED lets oneDNN pick its layout (nChw16c, ...) and reorders in and out.
 * AUTO (the default) picks per convolution from measured rules (see cpu_conv.c). */
typedef enum acv_cpu_layout {
    ACV_CPU_LAYOUT_AUTO,
    ACV_CPU_LAYOUT_PLAIN,
    ACV_CPU_LAYOUT_BLOCKED,
} acv_cpu_layout;

/* Sets the layout for convolutions prepared from now on (caches keyed on the old layout
 * are rebuilt on their next call). Process-wide; meant for benchmarks and tests. */
void acv_cpu_set_conv_layout(acv_cpu_layout layout);
acv_cpu_layout acv_cpu_get_conv_layout(void);
/* The oneDNN implementation the node cache chose for a convolution's forward pass
 * ("jit:avx512_core", "gemm:jit", ... or "acv_ref" when it fell back to the reference
 * kernel; "" when the forward pass has not run). Valid until the cache changes. */
const char *acv_cpu_conv_impl(void *cache);
/* How many of the forward pass's activations (source and destination) the node cache
 * converts between the caller's layout and the kernel's on every call: 0 when the kernel
 * runs on the caller's layout, -1 when the forward pass has not run or runs the reference. */
int acv_cpu_conv_activation_reorders(void *cache);
/* How many times the node cache threw its prepared kernels away because the call's
 * parameters, layout setting or thread count changed (0 in a steady training loop). */
int acv_cpu_conv_resets(void *cache);

/* ---- internal ------------------------------------------------------------------------ */

/* The backend's kernel slots (contracts as the acv_ref_* kernels and acv_backend). */
void acv__cpu_conv2d_forward(void **cache, float *out, const float *in, const float *w,
                             const float *b, const acv_conv_params *p);
void acv__cpu_conv2d_backward(void **cache, float *d_in, float *d_w, float *d_b,
                              const float *d_out, const float *in, const float *w,
                              const acv_conv_params *p);
void acv__cpu_convt2d_forward(void **cache, float *out, const float *in, const float *w,
                              const float *b, const acv_conv_params *p);
void acv__cpu_convt2d_backward(void **cache, float *d_in, float *d_w, float *d_b,
                               const float *d_out, const float *in, const float *w,
                               const acv_conv_params *p);

/* Inference: a 1x1 convolution (p1; weights w1, bias b1 or NULL, its post_act) whose output
 * only feeds a depthwise 3x3 convolution (pd; weights wd, bias bd or NULL, its post_act) in
 * one oneDNN pass that never writes the 1x1's output; the cache is the depthwise node's.
 * _ok says whether oneDNN takes the pair (checked when the graph is compiled). */
bool acv__cpu_conv2d_pw_dw_ok(const acv_conv_params *p1, const acv_conv_params *pd);
void acv__cpu_conv2d_pw_dw_forward(void **cache, float *out, const float *in, const float *w1, const float *b1,
                                   const acv_conv_params *p1, const float *wd, const float *bd,
                                   const acv_conv_params *pd);

/* Training-mode batch norm (cpu_norm.c; eval mode runs the reference kernel) and pointwise
 * activations (cpu_act.c), same contracts as acv_ref_batchnorm_* and acv_ref_act_*. */
void acv__cpu_batchnorm_forward(void **cache, float *out, float *save_mean, float *save_rstd,
                                const float *in, const float *gamma, const float *beta,
                                float *running_mean, float *running_var, int N, int C, int HW,
                                float eps, float momentum, bool training);
void acv__cpu_batchnorm_backward(void **cache, float *d_in, float *d_gamma, float *d_beta,
                                 const float *d_out, const float *in, const float *gamma,
                                 const float *save_mean, const float *save_rstd,
                                 const float *running_var, int N, int C, int HW, float eps,
                                 bool training);
/* Batch norm forward that also writes act_out = act(out) (act an acv_act, alpha its
 * slope) in the same pass when act_out is not NULL. */
void acv__cpu_batchnorm_act_forward(void **cache, float *out, float *act_out, int act,
                                    float alpha, float *save_mean, float *save_rstd, const float *in,
                                    const float *gamma, const float *beta, float *running_mean,
                                    float *running_var, int N, int C, int HW, float eps,
                                    float momentum, bool training);
void acv__cpu_act_forward(float *out, const float *in, int64_t n, acv_act kind, float alpha);
void acv__cpu_act_backward(float *d_in, const float *d_out, const float *in, const float *out,
                           int64_t n, acv_act kind, float alpha);
/* acv__cpu_act_forward on the calling thread only (for use inside a parallel region). */
void acv__cpu_act_forward_serial(float *out, const float *in, int64_t n, acv_act kind,
                                 float alpha);

/* Per-node cache kinds; every cache struct starts with an int kind. */
enum { ACV__CPU_CACHE_CONV = 0x434f4e56 };

/* The process-wide CPU engine, created on first use; NULL if oneDNN failed to start. */
dnnl_engine_t acv__cpu_engine(void);
/* The calling thread's stream (created on first use, destroyed at thread exit); NULL on
 * failure. A stream is never shared between threads. */
dnnl_stream_t acv__cpu_stream(void);
/* The calling thread's scratch buffer number slot (0 <= slot < ACV__CPU_SCRATCH_SLOTS),
 * grown to at least bytes and 64-byte aligned; NULL when out of memory. The contents are
 * undefined on return and the buffer stays valid until the next call for the same slot. */
#define ACV__CPU_SCRATCH_SLOTS 9
/* The slot prepared ops lend their primitive as its scratchpad. oneDNN's own ("library")
 * scratchpad is one buffer for the whole process in Debian's build, so two threads running
 * primitives at once (a server's replicas) would overwrite each other's: every primitive is
 * created with a user-managed scratchpad instead. */
#define ACV__CPU_SCRATCHPAD_SLOT 8
/* Sets attr (created when *attr is NULL) to the user-managed scratchpad mode; 0 or -1. */
int acv__attr_user_scratchpad(dnnl_primitive_attr_t *attr);
void *acv__cpu_scratch(int slot, size_t bytes);
/* Makes the calling thread's OpenMP team size match acv_get_threads(), so kernels called
 * from a thread that never called acv_set_threads still use the chosen count. */
void acv__cpu_sync_threads(void);
/* Releases any cache the CPU backend made (the backend's cache_free); and a conv cache. */
void acv__cpu_cache_free(void *cache);
void acv__cpu_conv_cache_free(void *cache);

/* How an argument of a prepared op moves between the user's buffer and the primitive. */
typedef enum acv__arg_dir {
    ACV__ARG_IN,      /* read: reordered from the user's layout when they differ */
    ACV__ARG_IN_CONST,/* read, constant while its address is: reordered once into a buffer
                         the op owns, again only when the address changes */
    ACV__ARG_OUT,     /* written: the user's buffer is overwritten */
    ACV__ARG_OUT_ADD, /* written: the result is ADDED into the user's buffer */
} acv__arg_dir;

#define ACV__OP_MAX_ARGS 8

typedef struct acv__op_arg {
    int arg;                  /* DNNL_ARG_* */
    acv__arg_dir dir;
    dnnl_memory_t user;       /* the user's buffer in the user's layout (handle set per call) */
    dnnl_memory_t prim;       /* what the primitive reads/writes; == user when no copy */
    dnnl_primitive_t reorder; /* user->prim for inputs, prim->user for outputs; or NULL */
    dnnl_memory_t reorder_scratch; /* the reorder's scratchpad (slot ACV__CPU_SCRATCHPAD_SLOT) */
    size_t reorder_scratch_bytes;
    size_t prim_bytes;        /* scratch bytes when prim != user */
    int64_t nelem;            /* elements of the user buffer (for the plain add) */
    void *const_buf;          /* ACV__ARG_IN_CONST: the op's reordered copy */
    const void *const_src;    /* ... and the user address it was made from */
} acv__op_arg;

/* One oneDNN primitive with its arguments. Zero-initialized = empty. */
typedef struct acv__op {
    dnnl_primitive_t prim;
    int nargs;
    acv__op_arg a[ACV__OP_MAX_ARGS];
    dnnl_memory_t scratch; /* the primitive's scratchpad (user-managed: the calling thread's
                              scratch slot ACV__CPU_SCRATCHPAD_SLOT), or NULL when it needs none */
    size_t scratch_bytes;
    char impl[64]; /* implementation name, for benchmarks and diagnostics */
} acv__op;

/* Prepares op from pd (which it takes ownership of, also on failure): for each of the
 * nargs arguments (args[i] a DNNL_ARG_*, dirs[i] its direction, user_mds[i] the layout of
 * the user's buffer) creates the memory objects and the reorders that are needed. Returns
 * 0, or -1 on any oneDNN failure (op is then left empty). */
int acv__op_init(acv__op *op, dnnl_primitive_desc_t pd, int nargs, const int *args,
                 const acv__arg_dir *dirs, const dnnl_memory_desc_t *user_mds);
/* Runs op on the user's buffers ptrs[i] (one per argument, in acv__op_init's order): input
 * reorders, the primitive, then output reorders or accumulation. Returns 0 or -1. An
 * ACV__ARG_OUT_ADD result goes through scratch and is added into the user's buffer only in
 * the last step, after the primitive succeeded, so a failure before it leaves the user's
 * gradients untouched (callers then fall back to the reference kernel). */
int acv__op_exec(acv__op *op, void *const *ptrs);
void acv__op_free(acv__op *op);
/* True when pd's implementation is oneDNN's naive reference ("ref:..."), which is slower
 * than our own reference kernels. */
bool acv__pd_is_naive(const_dnnl_primitive_desc_t pd);
/* dst[i] += src[i] for n elements, OpenMP-parallel when large. */
void acv__cpu_add(float *dst, const float *src, int64_t n);

#endif
