/* Convolution and transposed convolution on oneDNN for the CPU backend.
 *
 * Each node's cache holds up to three prepared ops (forward, backward-data,
 * backward-weights) for one acv_conv_params, built on first use and rebuilt when the
 * params, the thread count or the layout setting change. The user's tensors stay plain
 * (NCHW, OIHW/GOIHW for convolutions, IOHW/GIOHW for transposed ones, as in PyTorch);
 * in the blocked layout oneDNN picks its own formats and the ops reorder in and out.
 * Gradients are computed into scratch and added into the caller's buffers, honouring the
 * "backward adds" contract. Whenever oneDNN cannot do a case (or would only offer its naive
 * reference implementation) that part runs the acv_ref_* kernel instead.
 * A cache slot must not be used by two threads at once; distinct slots may. */
#include "nn/cpu/cpu.h"

#include <omp.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "autocv/error.h"
#include "nn/backend.h"

enum { STEP_FWD, STEP_BWD_DATA, STEP_BWD_WEIGHTS, STEP_COUNT };

typedef struct conv_step {
    bool built; /* tried to prepare (ok or not) */
    bool ok;    /* op is usable; otherwise this step runs the reference kernel */
    bool bias;  /* prepared with a bias (forward) or bias gradient (backward-weights) */
    acv__op op;
} conv_step;

typedef struct conv_cache {
    int kind; /* ACV__CPU_CACHE_CONV */
    acv_conv_params p;
    bool transposed;
    acv_cpu_layout layout; /* the global setting the cache was built under */
    int nthreads;
    int resets; /* times a changed key discarded the prepared steps */
    conv_step step[STEP_COUNT];
    /* a depthwise convolution computed together with the 1x1 convolution before it (p is the
     * depthwise one's key, fused_p1 the 1x1's) */
    conv_step fused;
    acv_conv_params fused_p1;
    float *zero_bias; /* K zeros: a bias for either convolution of the pair that has none */
    void *sub[2];     /* when oneDNN does not fuse the pair at this batch size: the 1x1's and
                         the depthwise convolution's own caches, */
    float *mid;       /* and the 1x1's output between them */
    int64_t mid_n;
} conv_cache;

static _Atomic int g_layout = ACV_CPU_LAYOUT_AUTO;

void acv_cpu_set_conv_layout(acv_cpu_layout layout) { atomic_store(&g_layout, (int)layout); }
acv_cpu_layout acv_cpu_get_conv_layout(void) { return (acv_cpu_layout)atomic_load(&g_layout); }

/* Whether AUTO runs step of p in the blocked layout. Measured on an AVX-512 Xeon (1 and 2
 * threads, reorders included, 28 shapes from MNIST nets to ResNet/MobileNet/U-Net layers
 * at batch 1-64): the blocked jit kernels are 2-8x faster than the plain (im2col + gemm)
 * ones for 3x3 and larger windows, grouped and depthwise convolutions; ungrouped 1x1
 * convolutions are a plain GEMM in NCHW and the reorders cost more than they save (plain
 * 1.2-1.6x faster) except on small maps (7x7: blocked 1.3x faster); and the backward-data
 * pass of a convolution with few input channels (an RGB stem) is 2x faster plain.
 * Transposed convolutions: same rules but the last (measured even there). */
static bool auto_blocked(const acv_conv_params *p, bool transposed, int step)
{
    const int cg = p->C / p->groups;
    const bool depthwise = p->groups > 1 && cg == 1;
    if (p->groups == 1 && p->KH == 1 && p->KW == 1) return p->OH * p->OW <= 64;
    if (!transposed && step == STEP_BWD_DATA && !depthwise && cg < 8) return false;
    return true;
}

static void steps_free(conv_cache *c)
{
    for (int i = 0; i < STEP_COUNT; i++) {
        acv__op_free(&c->step[i].op);
        c->step[i].built = c->step[i].ok = c->step[i].bias = false;
    }
    acv__op_free(&c->fused.op);
    c->fused.built = c->fused.ok = c->fused.bias = false;
    free(c->zero_bias);
    c->zero_bias = NULL;
    for (int i = 0; i < 2; i++) {
        acv__cpu_conv_cache_free(c->sub[i]);
        c->sub[i] = NULL;
    }
    free(c->mid);
    c->mid = NULL;
    c->mid_n = 0;
}

void acv__cpu_conv_cache_free(void *cache)
{
    conv_cache *c = cache;
    if (!c) return;
    ACV_ASSERT(c->kind == ACV__CPU_CACHE_CONV);
    steps_free(c);
    free(c);
}

const char *acv_cpu_conv_impl(void *cache)
{
    conv_cache *c = cache;
    if (c && c->kind == ACV__CPU_CACHE_CONV && c->fused.built) return c->fused.ok ? c->fused.op.impl : "1x1 then dw (not fused at this size)";
    if (!c || c->kind != ACV__CPU_CACHE_CONV || !c->step[STEP_FWD].built) return "";
    return c->step[STEP_FWD].ok ? c->step[STEP_FWD].op.impl : "acv_ref";
}

int acv_cpu_conv_resets(void *cache)
{
    conv_cache *c = cache;
    return c && c->kind == ACV__CPU_CACHE_CONV ? c->resets : 0;
}

int acv_cpu_conv_activation_reorders(void *cache)
{
    conv_cache *c = cache;
    if (c && c->kind == ACV__CPU_CACHE_CONV && c->fused.built && !c->fused.ok) { /* the pair in turn */
        int a = acv_cpu_conv_activation_reorders(c->sub[0]), b = acv_cpu_conv_activation_reorders(c->sub[1]);
        return a < 0 || b < 0 ? -1 : a + b;
    }
    if (c && c->kind == ACV__CPU_CACHE_CONV && c->fused.built && c->fused.ok) {
        const acv__op *op = &c->fused.op;
        int n = 0;
        for (int i = 0; i < op->nargs; i++)
            n += (op->a[i].arg == DNNL_ARG_SRC || op->a[i].arg == DNNL_ARG_DST) && op->a[i].reorder != NULL;
        return n;
    }
    if (!c || c->kind != ACV__CPU_CACHE_CONV || !c->step[STEP_FWD].built || !c->step[STEP_FWD].ok) return -1;
    const acv__op *op = &c->step[STEP_FWD].op;
    int n = 0;
    for (int i = 0; i < op->nargs; i++)
        n += (op->a[i].arg == DNNL_ARG_SRC || op->a[i].arg == DNNL_ARG_DST) && op->a[i].reorder != NULL;
    return n;
}

/* The node's cache for (p, transposed), reset when its key changed; NULL when out of
 * memory. */
static conv_cache *cache_get(void **slot, const acv_conv_params *p, bool transposed)
{
    conv_cache *c = *slot;
    ACV_ASSERT(!c || c->kind == ACV__CPU_CACHE_CONV);
    if (!c) {
        c = calloc(1, sizeof *c);
        if (!c) return NULL;
        c->kind = ACV__CPU_CACHE_CONV;
        c->p = *p;
        c->transposed = transposed;
        c->layout = acv_cpu_get_conv_layout();
        c->nthreads = omp_get_max_threads();
        *slot = c;
        return c;
    }
    if (memcmp(&c->p, p, sizeof *p) != 0 || c->transposed != transposed ||
        c->layout != acv_cpu_get_conv_layout() || c->nthreads != omp_get_max_threads()) {
        steps_free(c);
        c->resets++;
        c->p = *p;
        c->transposed = transposed;
        c->layout = acv_cpu_get_conv_layout();
        c->nthreads = omp_get_max_threads();
    }
    return c;
}

/* Memory descriptors and geometry of one convolution. user_* are the caller's plain
 * layouts; req_* what the primitive is asked for (plain, or "any" when blocked). */
typedef struct conv_desc_set {
    dnnl_memory_desc_t user_src, user_wei, user_bias, user_dst;
    dnnl_memory_desc_t req_src, req_wei, req_dst;
    dnnl_dims_t strides, dilates, pad_l, pad_r;
} conv_desc_set;

/* Fills d for p. pad_variant 1 (transposed only) moves the output padding out of the
 * bottom/right padding, the form oneDNN accepts when out_pad >= stride. */
static int desc_set_init(conv_desc_set *d, const acv_conv_params *p, bool transposed,
                         bool blocked, int pad_variant)
{
    const int G = p->groups;
    dnnl_dims_t src = {p->N, p->C, p->H, p->W}, dst = {p->N, p->K, p->OH, p->OW};
    dnnl_dims_t bias = {p->K};
    /* Weights are logically (G,) OC/G, IC/G, KH, KW in oneDNN; for a transposed
     * convolution OC is K and IC is C, stored PyTorch-style as (C, K/G, KH, KW). */
    dnnl_dims_t wei = {p->K, p->C / G, p->KH, p->KW};
    dnnl_dims_t gwei = {G, p->K / G, p->C / G, p->KH, p->KW};
    const bool grouped = G > 1;
    dnnl_format_tag_t wtag = transposed ? (grouped ? dnnl_giohw : dnnl_iohw)
                                        : (grouped ? dnnl_goihw : dnnl_oihw);
    const int wnd = grouped ? 5 : 4;
    const dnnl_dim_t *wdims = grouped ? gwei : wei;

    const dnnl_format_tag_t stag = p->src_block == 16 ? dnnl_nChw16c : p->src_block == 8 ? dnnl_nChw8c : dnnl_nchw;
    const dnnl_format_tag_t dtag = p->dst_block == 16 ? dnnl_nChw16c : p->dst_block == 8 ? dnnl_nChw8c : dnnl_nchw;
    if (dnnl_memory_desc_init_by_tag(&d->user_src, 4, src, dnnl_f32, stag) ||
        dnnl_memory_desc_init_by_tag(&d->user_dst, 4, dst, dnnl_f32, dtag) ||
        dnnl_memory_desc_init_by_tag(&d->user_bias, 1, bias, dnnl_f32, dnnl_x) ||
        dnnl_memory_desc_init_by_tag(&d->user_wei, wnd, wdims, dnnl_f32, wtag))
        return -1;
    if (blocked) {
        if (dnnl_memory_desc_init_by_tag(&d->req_src, 4, src, dnnl_f32, dnnl_format_tag_any) ||
            dnnl_memory_desc_init_by_tag(&d->req_dst, 4, dst, dnnl_f32, dnnl_format_tag_any) ||
            dnnl_memory_desc_init_by_tag(&d->req_wei, wnd, wdims, dnnl_f32, dnnl_format_tag_any))
            return -1;
        /* activations already blocked stay in that layout: left to choose, oneDNN's brgemm
         * kernels pick NHWC and every call would pay two reorders */
        if (p->src_block) d->req_src = d->user_src;
        if (p->dst_block) d->req_dst = d->user_dst;
    } else {
        d->req_src = d->user_src;
        d->req_dst = d->user_dst;
        d->req_wei = d->user_wei;
    }
    d->strides[0] = p->stride_h;
    d->strides[1] = p->stride_w;
    d->dilates[0] = p->dil_h - 1; /* oneDNN counts dilation from 0 */
    d->dilates[1] = p->dil_w - 1;
    d->pad_l[0] = p->pad_t;
    d->pad_l[1] = p->pad_l;
    d->pad_r[0] = p->pad_b - (pad_variant ? p->out_pad_h : 0);
    d->pad_r[1] = p->pad_r - (pad_variant ? p->out_pad_w : 0);
    return 0;
}

/* Initializes the oneDNN operation descriptor of one step. */
static int op_desc_init(dnnl_convolution_desc_t *od, int step, const conv_desc_set *d,
                        bool transposed, bool bias, bool inference, bool wino)
{
    const dnnl_prop_kind_t fwd_kind = inference ? dnnl_forward_inference : dnnl_forward_training;
    const dnnl_memory_desc_t *b = bias ? &d->user_bias : NULL;
    dnnl_status_t st;
    if (!transposed) {
        const dnnl_alg_kind_t alg = wino ? dnnl_convolution_winograd : dnnl_convolution_direct;
        if (step == STEP_FWD)
            st = dnnl_dilated_convolution_forward_desc_init(
                od, fwd_kind, alg, &d->req_src, &d->req_wei, b, &d->req_dst,
                d->strides, d->dilates, d->pad_l, d->pad_r);
        else if (step == STEP_BWD_DATA)
            st = dnnl_dilated_convolution_backward_data_desc_init(
                od, alg, &d->req_src, &d->req_wei, &d->req_dst, d->strides, d->dilates,
                d->pad_l, d->pad_r);
        else
            st = dnnl_dilated_convolution_backward_weights_desc_init(
                od, alg, &d->req_src, &d->req_wei, b, &d->req_dst, d->strides, d->dilates,
                d->pad_l, d->pad_r);
    } else {
        const dnnl_alg_kind_t alg = dnnl_deconvolution_direct;
        if (step == STEP_FWD)
            st = dnnl_dilated_deconvolution_forward_desc_init(
                od, fwd_kind, alg, &d->req_src, &d->req_wei, b, &d->req_dst,
                d->strides, d->dilates, d->pad_l, d->pad_r);
        else if (step == STEP_BWD_DATA)
            st = dnnl_dilated_deconvolution_backward_data_desc_init(
                od, alg, &d->req_src, &d->req_wei, &d->req_dst, d->strides, d->dilates,
                d->pad_l, d->pad_r);
        else
            st = dnnl_dilated_deconvolution_backward_weights_desc_init(
                od, alg, &d->req_src, &d->req_wei, b, &d->req_dst, d->strides, d->dilates,
                d->pad_l, d->pad_r);
    }
    return st == dnnl_success ? 0 : -1;
}

/* Appends p's fused activation to po as an eltwise post-op; -1 when oneDNN has no matching
 * algorithm. */
static int append_post_act(dnnl_post_ops_t po, const acv_conv_params *p)
{
    dnnl_alg_kind_t alg;
    float alpha = 0, beta = 0;
    switch (p->post_act - 1) {
    case ACV_ACT_RELU: alg = dnnl_eltwise_relu; break;
    case ACV_ACT_LEAKY_RELU: alg = dnnl_eltwise_relu; alpha = p->post_alpha; break;
    case ACV_ACT_RELU6: alg = dnnl_eltwise_clip_v2; alpha = 0; beta = 6; break;
    case ACV_ACT_SILU: alg = dnnl_eltwise_swish; alpha = 1; break;
    case ACV_ACT_SIGMOID: alg = dnnl_eltwise_logistic; break;
    case ACV_ACT_TANH: alg = dnnl_eltwise_tanh; break;
    case ACV_ACT_HARDSWISH: alg = dnnl_eltwise_hardswish; break;
    case ACV_ACT_GELU: alg = dnnl_eltwise_gelu_erf; break;
    default: return -1;
    }
    return dnnl_post_ops_append_eltwise(po, 1.0f, alg, alpha, beta) == dnnl_success ? 0 : -1;
}

/* An attribute with the forward pass's fused activation as an eltwise post-op; -1 when
 * oneDNN has no matching algorithm. */
static int make_post_act_attr(const acv_conv_params *p, dnnl_primitive_attr_t *out)
{
    dnnl_post_ops_t po = NULL;
    dnnl_primitive_attr_t attr = NULL;
    if (dnnl_post_ops_create(&po) != dnnl_success) return -1;
    int rc = -1;
    if (append_post_act(po, p) == 0 && dnnl_primitive_attr_create(&attr) == dnnl_success &&
        dnnl_primitive_attr_set_post_ops(attr, po) == dnnl_success)
        rc = 0;
    dnnl_post_ops_destroy(po);
    if (rc && attr) dnnl_primitive_attr_destroy(attr);
    *out = rc ? NULL : attr;
    return rc;
}

/* Whether an inference convolution tries oneDNN's Winograd kernels first: 3x3, stride 1,
 * no dilation or groups, at least 32 channels in and out, blocked layout. Measured on
 * ResNet-18 (2 threads, AVX-512): 1.7-2x faster than the direct kernels on 56x56 to 14x14
 * maps, the same on 7x7; the result differs from direct convolution by rounding only
 * (relative 1e-6, within the ONNX tests' 1e-4). Training keeps the direct algorithm: with
 * Winograd in all three passes ResNet-18 at 64x64 trained 15% slower (small maps). ACV_WINOGRAD=0 in the environment turns it off. */
static bool wino_ok(const acv_conv_params *p, bool transposed, bool infer, bool blocked)
{
    static int env = -1;
    if (env < 0) {
        const char *e = getenv("ACV_WINOGRAD");
        env = !(e && !strcmp(e, "0"));
    }
    return env && infer && blocked && !transposed && p->groups == 1 && p->KH == 3 && p->KW == 3 &&
           p->stride_h == 1 && p->stride_w == 1 && p->dil_h == 1 && p->dil_w == 1 && p->C >= 32 && p->K >= 32;
}

/* A primitive descriptor for one step in one layout (set receives the descriptors it was
 * made from), or NULL when oneDNN has no implementation better than its naive reference.
 * Backward steps are created against a forward-training hint in the same layout. */
static dnnl_primitive_desc_t make_pd(int step, const acv_conv_params *p, bool transposed,
                                     bool blocked, bool bias, conv_desc_set *set)
{
    dnnl_engine_t eng = acv__cpu_engine();
    if (!eng) return NULL;
    const bool infer = step == STEP_FWD && p->inference;
    /* attempt 0: Winograd when it applies (see wino_ok), then the direct algorithm; for a
     * transposed convolution, two ways of stating the output padding */
    for (int attempt = wino_ok(p, transposed, infer, blocked) ? 0 : 1; attempt < (transposed ? 3 : 2); attempt++) {
        const bool wino = attempt == 0;
        const int variant = attempt == 2;
        conv_desc_set d;
        dnnl_convolution_desc_t od;
        if (desc_set_init(&d, p, transposed, blocked, variant)) return NULL;
        if (op_desc_init(&od, step, &d, transposed, bias && step != STEP_BWD_DATA, infer, wino)) continue;
        dnnl_primitive_desc_t hint = NULL, pd = NULL;
        if (step != STEP_FWD) {
            dnnl_convolution_desc_t fd;
            if (op_desc_init(&fd, STEP_FWD, &d, transposed, false, false, false) ||
                dnnl_primitive_desc_create(&hint, &fd, NULL, eng, NULL) != dnnl_success)
                continue;
        }
        dnnl_primitive_attr_t attr = NULL;
        if (step == STEP_FWD && p->post_act && make_post_act_attr(p, &attr)) {
            if (hint) dnnl_primitive_desc_destroy(hint);
            return NULL; /* activation oneDNN cannot fuse: the reference path applies it */
        }
        if (acv__attr_user_scratchpad(&attr)) {
            if (attr) dnnl_primitive_attr_destroy(attr);
            if (hint) dnnl_primitive_desc_destroy(hint);
            return NULL;
        }
        dnnl_status_t st = dnnl_primitive_desc_create(&pd, &od, attr, eng, hint);
        if (attr) dnnl_primitive_attr_destroy(attr);
        if (hint) dnnl_primitive_desc_destroy(hint);
        if (st != dnnl_success) continue;
        if (acv__pd_is_naive(pd)) {
            dnnl_primitive_desc_destroy(pd);
            continue;
        }
        *set = d;
        return pd;
    }
    return NULL;
}

/* Prepares step in the preferred layout, else the other one; marks it failed when neither
 * has a fast implementation (the caller then runs the reference kernel). */
static void step_build(conv_cache *c, int step, bool bias)
{
    conv_step *s = &c->step[step];
    acv__op_free(&s->op);
    s->built = true;
    s->ok = false;
    s->bias = bias;
    bool blocked = c->layout == ACV_CPU_LAYOUT_AUTO ? auto_blocked(&c->p, c->transposed, step)
                                                    : c->layout == ACV_CPU_LAYOUT_BLOCKED;
    for (int attempt = 0; attempt < 2 && !s->ok; attempt++) {
        bool b = attempt == 0 ? blocked : !blocked;
        conv_desc_set d;
        dnnl_primitive_desc_t pd = make_pd(step, &c->p, c->transposed, b, bias, &d);
        if (!pd) continue;
        int args[4], n = 0;
        acv__arg_dir dirs[4];
        dnnl_memory_desc_t mds[4];
#define ARG(a_, dir_, md_) (args[n] = (a_), dirs[n] = (dir_), mds[n] = (md_), n++)
        if (step == STEP_FWD) {
            ARG(DNNL_ARG_SRC, ACV__ARG_IN, d.user_src);
            ARG(DNNL_ARG_WEIGHTS, c->p.inference ? ACV__ARG_IN_CONST : ACV__ARG_IN, d.user_wei);
            if (bias) ARG(DNNL_ARG_BIAS, ACV__ARG_IN, d.user_bias);
            ARG(DNNL_ARG_DST, ACV__ARG_OUT, d.user_dst);
        } else if (step == STEP_BWD_DATA) {
            ARG(DNNL_ARG_DIFF_DST, ACV__ARG_IN, d.user_dst);
            ARG(DNNL_ARG_WEIGHTS, ACV__ARG_IN, d.user_wei);
            ARG(DNNL_ARG_DIFF_SRC, ACV__ARG_OUT_ADD, d.user_src);
        } else {
            ARG(DNNL_ARG_SRC, ACV__ARG_IN, d.user_src);
            ARG(DNNL_ARG_DIFF_DST, ACV__ARG_IN, d.user_dst);
            ARG(DNNL_ARG_DIFF_WEIGHTS, ACV__ARG_OUT_ADD, d.user_wei);
            if (bias) ARG(DNNL_ARG_DIFF_BIAS, ACV__ARG_OUT_ADD, d.user_bias);
        }
#undef ARG
        s->ok = acv__op_init(&s->op, pd, n, args, dirs, mds) == 0;
    }
}

/* The step ready to run with this bias flag, or NULL when the reference kernel must run. */
static acv__op *step_get(conv_cache *c, int step, bool bias)
{
    if (!c) return NULL;
    conv_step *s = &c->step[step];
    if (!s->built || s->bias != bias) step_build(c, step, bias);
    return s->ok ? &s->op : NULL;
}

typedef void (*ref_fwd_fn)(float *, const float *, const float *, const float *,
                           const acv_conv_params *);
typedef void (*ref_bwd_fn)(float *, float *, float *, const float *, const float *,
                           const float *, const acv_conv_params *);

/* Runs a forward pass; cache may be NULL (then a temporary one is used). */
static void forward(void **cache, float *out, const float *in, const float *w, const float *b,
                    const acv_conv_params *p, bool transposed, ref_fwd_fn ref)
{
    acv__cpu_sync_threads();
    void *tmp = NULL;
    void **slot = cache ? cache : &tmp;
    conv_cache *c = cache_get(slot, p, transposed);
    acv__op *op = step_get(c, STEP_FWD, b != NULL);
    bool done = false;
    if (op) {
        void *ptrs[4];
        int n = 0;
        ptrs[n++] = (void *)in;
        ptrs[n++] = (void *)w;
        if (b) ptrs[n++] = (void *)b;
        ptrs[n++] = out;
        done = acv__op_exec(op, ptrs) == 0;
    }
    if (!done && (p->src_block || p->dst_block)) {
        /* the reference kernel reads and writes plain NCHW: convert around it */
        acv_conv_params q = *p;
        q.src_block = q.dst_block = 0;
        int64_t ni = (int64_t)p->N * p->C * p->H * p->W, no = (int64_t)p->N * p->K * p->OH * p->OW;
        float *pi = p->src_block ? malloc((size_t)ni * sizeof(float)) : (float *)in;
        float *po = p->dst_block ? malloc((size_t)no * sizeof(float)) : out;
        ACV_ASSERT(pi && po); /* fallback buffers for a rare shape; no way to report */
        if (p->src_block) acv_blk_to_plain(pi, in, p->N, p->C, (int64_t)p->H * p->W, p->src_block);
        ref(po, pi, w, b, &q);
        if (p->dst_block) acv_blk_from_plain(out, po, p->N, p->K, (int64_t)p->OH * p->OW, p->dst_block);
        if (p->src_block) free(pi);
        if (p->dst_block) free(po);
        done = true;
    }
    if (!done) ref(out, in, w, b, p);
    if (tmp) acv__cpu_cache_free(tmp);
}

/* Runs a backward pass: each requested gradient by its oneDNN step when there is one, by
 * the reference kernel otherwise. */
static void backward(void **cache, float *d_in, float *d_w, float *d_b, const float *d_out,
                     const float *in, const float *w, const acv_conv_params *p, bool transposed,
                     ref_bwd_fn ref)
{
    acv__cpu_sync_threads();
    void *tmp = NULL;
    void **slot = cache ? cache : &tmp;
    conv_cache *c = cache_get(slot, p, transposed);
    if (d_in) {
        acv__op *op = step_get(c, STEP_BWD_DATA, false);
        void *ptrs[3] = {(void *)d_out, (void *)w, d_in};
        if (!op || acv__op_exec(op, ptrs) != 0) ref(d_in, NULL, NULL, d_out, in, w, p);
    }
    if (d_w) {
        acv__op *op = step_get(c, STEP_BWD_WEIGHTS, d_b != NULL);
        void *ptrs[4] = {(void *)in, (void *)d_out, d_w, d_b};
        if (!op || acv__op_exec(op, ptrs) != 0) ref(NULL, d_w, d_b, d_out, in, w, p);
    } else if (d_b) {
        ref(NULL, NULL, d_b, d_out, in, w, p);
    }
    if (tmp) acv__cpu_cache_free(tmp);
}

/* Backend slots; contracts as acv_ref_conv2d_* / acv_ref_convt2d_* in nn/kernels.h, with
 * prepared state in *cache (see acv_backend in nn/backend.h; cache may be NULL). */
void acv__cpu_conv2d_forward(void **cache, float *out, const float *in, const float *w,
                             const float *b, const acv_conv_params *p)
{
    forward(cache, out, in, w, b, p, false, acv_ref_conv2d_forward);
}

void acv__cpu_conv2d_backward(void **cache, float *d_in, float *d_w, float *d_b,
                              const float *d_out, const float *in, const float *w,
                              const acv_conv_params *p)
{
    backward(cache, d_in, d_w, d_b, d_out, in, w, p, false, acv_ref_conv2d_backward);
}

void acv__cpu_convt2d_forward(void **cache, float *out, const float *in, const float *w,
                              const float *b, const acv_conv_params *p)
{
    forward(cache, out, in, w, b, p, true, acv_ref_convt2d_forward);
}

void acv__cpu_convt2d_backward(void **cache, float *d_in, float *d_w, float *d_b,
                               const float *d_out, const float *in, const float *w,
                               const acv_conv_params *p)
{
    backward(cache, d_in, d_w, d_b, d_out, in, w, p, true, acv_ref_convt2d_backward);
}

/* ---- 1x1 convolution + depthwise 3x3 in one pass (inference) ---------------------------- */

/* Whether (p1, pd) is the pattern oneDNN fuses: p1 a 1x1 stride-1 ungrouped convolution, pd
 * a depthwise 3x3 convolution of its output with padding 1 and stride 1 or 2, both on the
 * blocked layout. oneDNN then computes the depthwise convolution from rows of the 1x1's
 * output kept in cache, for the shapes its work split allows at the thread count (others
 * get its "ref_fused" path, the two convolutions one after the other, which is refused
 * here as it gains nothing). */
static bool pw_dw_shape_ok(const acv_conv_params *p1, const acv_conv_params *pd)
{
    return p1->KH == 1 && p1->KW == 1 && p1->stride_h == 1 && p1->stride_w == 1 && p1->groups == 1 &&
           !p1->pad_t && !p1->pad_l && !p1->pad_b && !p1->pad_r && p1->dil_h == 1 && p1->dil_w == 1 &&
           p1->src_block && p1->dst_block && pd->src_block == p1->dst_block && pd->dst_block &&
           pd->KH == 3 && pd->KW == 3 && pd->groups == p1->K && pd->C == p1->K && pd->K == p1->K &&
           pd->stride_h == pd->stride_w && (pd->stride_h == 1 || pd->stride_h == 2) && pd->pad_t == 1 &&
           pd->pad_l == 1 && pd->dil_h == 1 && pd->dil_w == 1 && pd->N == p1->N && pd->H == p1->OH &&
           pd->W == p1->OW && p1->inference && pd->inference;
}

/* The fused primitive's descriptor (NULL when oneDNN cannot, or only naively), with the
 * user's layouts of the final output and of the depthwise weights and bias. The 1x1
 * convolution always has a bias (zeros when the node has none): oneDNN 2.6's fused kernel
 * without one crashes. */
static dnnl_primitive_desc_t make_pw_dw_pd(const acv_conv_params *p1, const acv_conv_params *pd, conv_desc_set *d, dnnl_memory_desc_t *dst, dnnl_memory_desc_t *dw_wei,
                                           dnnl_memory_desc_t *dw_bias)
{
    dnnl_engine_t eng = acv__cpu_engine();
    if (!eng || !pw_dw_shape_ok(p1, pd) || desc_set_init(d, p1, false, true, 0)) return NULL;
    dnnl_convolution_desc_t od;
    if (op_desc_init(&od, STEP_FWD, d, false, true, true, false)) return NULL;
    dnnl_dims_t ddims = {pd->N, pd->K, pd->OH, pd->OW}, wdims = {pd->K, 1, 1, 3, 3}, bdims = {pd->K};
    const dnnl_format_tag_t dtag = pd->dst_block == 16 ? dnnl_nChw16c : dnnl_nChw8c;
    if (dnnl_memory_desc_init_by_tag(dst, 4, ddims, dnnl_f32, dtag) ||
        dnnl_memory_desc_init_by_tag(dw_wei, 5, wdims, dnnl_f32, dnnl_goihw) ||
        dnnl_memory_desc_init_by_tag(dw_bias, 1, bdims, dnnl_f32, dnnl_x))
        return NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_primitive_desc_t out = NULL;
    if (dnnl_post_ops_create(&po) != dnnl_success) return NULL;
    bool ok = (!p1->post_act || append_post_act(po, p1) == 0) &&
              (pd->stride_h == 1 ? dnnl_post_ops_append_dw_k3s1p1(po, dnnl_f32, dnnl_f32, dnnl_f32, 0, 0, NULL)
                                 : dnnl_post_ops_append_dw_k3s2p1(po, dnnl_f32, dnnl_f32, dnnl_f32, 0, 0, NULL)) ==
                  dnnl_success &&
              (!pd->post_act || append_post_act(po, pd) == 0) && acv__attr_user_scratchpad(&attr) == 0 &&
              dnnl_primitive_attr_set_post_ops(attr, po) == dnnl_success &&
              dnnl_primitive_desc_create(&out, &od, attr, eng, NULL) == dnnl_success;
    dnnl_post_ops_destroy(po);
    if (attr) dnnl_primitive_attr_destroy(attr);
    if (!ok) return NULL;
    /* the output the primitive writes must be the depthwise convolution's, padding included */
    const dnnl_memory_desc_t *q = dnnl_primitive_desc_query_md(out, dnnl_query_dst_md, 0);
    if (acv__pd_is_naive(out) || !q || q->ndims != 4 || q->dims[2] != pd->OH || q->dims[3] != pd->OW) {
        dnnl_primitive_desc_destroy(out);
        return NULL;
    }
    return out;
}

bool acv__cpu_conv2d_pw_dw_ok(const acv_conv_params *p1, const acv_conv_params *pd)
{
    acv__cpu_sync_threads(); /* oneDNN fuses natively or not depending on the thread count */
    conv_desc_set d;
    dnnl_memory_desc_t dst, ww, wb;
    dnnl_primitive_desc_t pdesc = make_pw_dw_pd(p1, pd, &d, &dst, &ww, &wb);
    if (!pdesc) return false;
    dnnl_primitive_desc_destroy(pdesc);
    return true;
}

static void fused_build(conv_cache *c, const acv_conv_params *p1)
{
    conv_step *s = &c->fused;
    acv__op_free(&s->op);
    s->built = true;
    s->ok = false;
    c->fused_p1 = *p1;
    conv_desc_set d;
    dnnl_memory_desc_t dst, ww, wb;
    dnnl_primitive_desc_t pdesc = make_pw_dw_pd(p1, &c->p, &d, &dst, &ww, &wb);
    if (!pdesc) return;
    if (!c->zero_bias && !(c->zero_bias = calloc((size_t)c->p.K, sizeof(float)))) {
        dnnl_primitive_desc_destroy(pdesc);
        return;
    }
    int args[6], n = 0;
    acv__arg_dir dirs[6];
    dnnl_memory_desc_t mds[6];
#define ARG(a_, dir_, md_) (args[n] = (a_), dirs[n] = (dir_), mds[n] = (md_), n++)
    ARG(DNNL_ARG_SRC, ACV__ARG_IN, d.user_src);
    ARG(DNNL_ARG_WEIGHTS, ACV__ARG_IN_CONST, d.user_wei);
    ARG(DNNL_ARG_BIAS, ACV__ARG_IN, d.user_bias);
    ARG(DNNL_ARG_ATTR_POST_OP_DW | DNNL_ARG_WEIGHTS, ACV__ARG_IN_CONST, ww);
    ARG(DNNL_ARG_ATTR_POST_OP_DW | DNNL_ARG_BIAS, ACV__ARG_IN, wb);
    ARG(DNNL_ARG_DST, ACV__ARG_OUT, dst);
#undef ARG
    s->ok = acv__op_init(&s->op, pdesc, n, args, dirs, mds) == 0;
}

void acv__cpu_conv2d_pw_dw_forward(void **cache, float *out, const float *in, const float *w1, const float *b1,
                                   const acv_conv_params *p1, const float *wd, const float *bd,
                                   const acv_conv_params *pd)
{
    acv__cpu_sync_threads();
    void *tmp = NULL;
    void **slot = cache ? cache : &tmp;
    conv_cache *c = cache_get(slot, pd, false);
    bool done = false;
    if (c) {
        if (c->fused.built && memcmp(&c->fused_p1, p1, sizeof *p1)) {
            acv__op_free(&c->fused.op);
            c->fused.built = c->fused.ok = false;
        }
        if (!c->fused.built) fused_build(c, p1);
        if (c->fused.ok) {
            void *ptrs[6];
            int n = 0;
            ptrs[n++] = (void *)in;
            ptrs[n++] = (void *)w1;
            ptrs[n++] = b1 ? (void *)b1 : c->zero_bias; /* K1 == K */
            ptrs[n++] = (void *)wd;
            ptrs[n++] = bd ? (void *)bd : c->zero_bias;
            ptrs[n++] = out;
            done = acv__op_exec(&c->fused.op, ptrs) == 0;
        }
    }
    if (!done) { /* oneDNN does not fuse this batch size: the two convolutions in turn */
        int64_t hw = (int64_t)p1->OH * p1->OW;
        int64_t nt = p1->dst_block ? acv_blk_numel(p1->N, p1->K, hw, p1->dst_block) : (int64_t)p1->N * p1->K * hw;
        float *t = c && c->mid_n >= nt ? c->mid : malloc((size_t)nt * sizeof(float));
        ACV_ASSERT(t); /* no way to report out of memory from a kernel */
        acv__cpu_conv2d_forward(c ? &c->sub[0] : NULL, t, in, w1, b1, p1);
        acv__cpu_conv2d_forward(c ? &c->sub[1] : NULL, out, t, wd, bd, pd);
        if (c && t != c->mid) {
            free(c->mid);
            c->mid = t;
            c->mid_n = nt;
        } else if (!c) {
            free(t);
        }
    }
    if (tmp) acv__cpu_cache_free(tmp);
}
