/* Batch normalization on oneDNN for the CPU backend, with the reference kernel's semantics
 * (nn/kernels.h): training uses batch statistics and returns mean and 1/sqrt(var + eps)
 * for backward, and updates the running statistics PyTorch-style (unbiased variance);
 * eval uses the running statistics and still reports them in save_mean/save_rstd.
 *
 * oneDNN returns the biased batch variance; we derive rstd and the running update from it
 * here, and hand backward the variance recovered from save_rstd. Gradients are computed
 * into scratch and added into the caller's buffers. Anything oneDNN cannot do runs the
 * reference kernel. */
#include "nn/cpu/cpu.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "autocv/error.h"
#include "nn/backend.h"

typedef struct bn_key {
    int N, C, HW;
    float eps;
    bool training, gamma, beta;
    int nthreads;
} bn_key;

typedef struct bn_cache {
    int kind; /* ACV__CPU_CACHE_BN */
    bn_key key;
    bool fwd_built, fwd_ok, bwd_built, bwd_ok;
    acv__op fwd, bwd;
    float *buf; /* (4, C): mean, variance, discarded d_gamma, discarded d_beta */
} bn_cache;

void acv__cpu_bn_cache_free(void *cache)
{
    bn_cache *c = cache;
    if (!c) return;
    ACV_ASSERT(c->kind == ACV__CPU_CACHE_BN);
    acv__op_free(&c->fwd);
    acv__op_free(&c->bwd);
    free(c->buf);
    free(c);
}

static bool key_equal(const bn_key *a, const bn_key *b)
{
    return a->N == b->N && a->C == b->C && a->HW == b->HW && a->eps == b->eps &&
           a->training == b->training && a->gamma == b->gamma && a->beta == b->beta &&
           a->nthreads == b->nthreads;
}

/* The node's cache for key k (replacing one with another key or kind); NULL when out of
 * memory. */
static bn_cache *cache_get(void **slot, const bn_key *k)
{
    bn_cache *c = *slot;
    if (c && (c->kind != ACV__CPU_CACHE_BN || !key_equal(&c->key, k))) {
        acv__cpu_cache_free(c);
        *slot = c = NULL;
    }
    if (c) return c;
    c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->kind = ACV__CPU_CACHE_BN;
    c->key = *k;
    c->buf = malloc(sizeof(float) * 4 * (size_t)(k->C > 0 ? k->C : 1));
    if (!c->buf) {
        free(c);
        return NULL;
    }
    *slot = c;
    return c;
}

static unsigned bn_flags(const bn_key *k)
{
    unsigned f = 0;
    if (!k->training) f |= dnnl_use_global_stats;
    if (k->gamma) f |= dnnl_use_scale;
    if (k->beta) f |= dnnl_use_shift;
    return f;
}

/* Descriptors of the data (N, C, HW, 1) in NCHW and of the per-channel vectors. */
static int bn_mds(const bn_key *k, dnnl_memory_desc_t *data, dnnl_memory_desc_t *vec)
{
    dnnl_dims_t d = {k->N, k->C, k->HW, 1}, v = {k->C};
    return dnnl_memory_desc_init_by_tag(data, 4, d, dnnl_f32, dnnl_nchw) ||
                   dnnl_memory_desc_init_by_tag(vec, 1, v, dnnl_f32, dnnl_x)
               ? -1
               : 0;
}

/* A forward primitive descriptor (training or inference), or NULL. */
static dnnl_primitive_desc_t fwd_pd(const bn_key *k, const dnnl_memory_desc_t *data)
{
    dnnl_batch_normalization_desc_t od;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_engine_t eng = acv__cpu_engine();
    if (!eng) return NULL;
    if (dnnl_batch_normalization_forward_desc_init(
            &od, k->training ? dnnl_forward_training : dnnl_forward_inference, data, k->eps,
            bn_flags(k)) != dnnl_success)
        return NULL;
    if (dnnl_primitive_desc_create(&pd, &od, NULL, eng, NULL) != dnnl_success) return NULL;
    return pd;
}

static void fwd_build(bn_cache *c)
{
    const bn_key *k = &c->key;
    dnnl_memory_desc_t data, vec;
    c->fwd_built = true;
    c->fwd_ok = false;
    if (bn_mds(k, &data, &vec)) return;
    dnnl_primitive_desc_t pd = fwd_pd(k, &data);
    if (!pd) return;
    if (acv__pd_is_naive(pd)) {
        dnnl_primitive_desc_destroy(pd);
        return;
    }
    int args[6], n = 0;
    acv__arg_dir dirs[6];
    dnnl_memory_desc_t mds[6];
#define ARG(a_, dir_, md_) (args[n] = (a_), dirs[n] = (dir_), mds[n] = (md_), n++)
    acv__arg_dir stat_dir = k->training ? ACV__ARG_OUT : ACV__ARG_IN;
    ARG(DNNL_ARG_SRC, ACV__ARG_IN, data);
    ARG(DNNL_ARG_MEAN, stat_dir, vec);
    ARG(DNNL_ARG_VARIANCE, stat_dir, vec);
    if (k->gamma) ARG(DNNL_ARG_SCALE, ACV__ARG_IN, vec);
    if (k->beta) ARG(DNNL_ARG_SHIFT, ACV__ARG_IN, vec);
    ARG(DNNL_ARG_DST, ACV__ARG_OUT, data);
#undef ARG
    c->fwd_ok = acv__op_init(&c->fwd, pd, n, args, dirs, mds) == 0;
}

static void bwd_build(bn_cache *c)
{
    const bn_key *k = &c->key;
    dnnl_memory_desc_t data, vec;
    dnnl_engine_t eng = acv__cpu_engine();
    c->bwd_built = true;
    c->bwd_ok = false;
    if (!eng || bn_mds(k, &data, &vec)) return;
    dnnl_primitive_desc_t hint = fwd_pd(k, &data), pd = NULL;
    if (!hint) return;
    dnnl_batch_normalization_desc_t od;
    bool params = k->gamma || k->beta;
    dnnl_status_t st = dnnl_batch_normalization_backward_desc_init(
        &od, params ? dnnl_backward : dnnl_backward_data, &data, &data, k->eps, bn_flags(k));
    if (st == dnnl_success) st = dnnl_primitive_desc_create(&pd, &od, NULL, eng, hint);
    dnnl_primitive_desc_destroy(hint);
    if (st != dnnl_success) return;
    if (acv__pd_is_naive(pd)) {
        dnnl_primitive_desc_destroy(pd);
        return;
    }
    int args[8], n = 0;
    acv__arg_dir dirs[8];
    dnnl_memory_desc_t mds[8];
#define ARG(a_, dir_, md_) (args[n] = (a_), dirs[n] = (dir_), mds[n] = (md_), n++)
    ARG(DNNL_ARG_SRC, ACV__ARG_IN, data);
    ARG(DNNL_ARG_MEAN, ACV__ARG_IN, vec);
    ARG(DNNL_ARG_VARIANCE, ACV__ARG_IN, vec);
    ARG(DNNL_ARG_DIFF_DST, ACV__ARG_IN, data);
    if (k->gamma) ARG(DNNL_ARG_SCALE, ACV__ARG_IN, vec);
    ARG(DNNL_ARG_DIFF_SRC, ACV__ARG_OUT_ADD, data);
    if (k->gamma) ARG(DNNL_ARG_DIFF_SCALE, ACV__ARG_OUT_ADD, vec);
    if (k->beta) ARG(DNNL_ARG_DIFF_SHIFT, ACV__ARG_OUT_ADD, vec);
#undef ARG
    c->bwd_ok = acv__op_init(&c->bwd, pd, n, args, dirs, mds) == 0;
}

/* Backend slot; contract as acv_ref_batchnorm_forward, prepared state in *cache (may be
 * NULL). */
void acv__cpu_batchnorm_forward(void **cache, float *out, float *save_mean, float *save_rstd,
                                const float *in, const float *gamma, const float *beta,
                                float *running_mean, float *running_var, int N, int C, int HW,
                                float eps, float momentum, bool training)
{
    acv__cpu_sync_threads();
    bn_key k = {N, C, HW, eps, training, gamma != NULL, beta != NULL, omp_get_max_threads()};
    void *tmp = NULL;
    void **slot = cache ? cache : &tmp;
    bn_cache *c = (int64_t)N * C * HW > 0 ? cache_get(slot, &k) : NULL;
    bool done = false;
    if (c && !c->fwd_built) fwd_build(c);
    if (c && c->fwd_ok && (training || (running_mean && running_var))) {
        float *mean = c->buf, *var = c->buf + C;
        void *ptrs[6];
        int n = 0;
        ptrs[n++] = (void *)in;
        ptrs[n++] = training ? mean : running_mean;
        ptrs[n++] = training ? var : running_var;
        if (gamma) ptrs[n++] = (void *)gamma;
        if (beta) ptrs[n++] = (void *)beta;
        ptrs[n++] = out;
        done = acv__op_exec(&c->fwd, ptrs) == 0;
        if (done) {
            const float *m = training ? mean : running_mean, *v = training ? var : running_var;
            const int64_t cnt = (int64_t)N * HW;
            for (int i = 0; i < C; i++) {
                if (save_mean) save_mean[i] = m[i];
                if (save_rstd) save_rstd[i] = (float)(1.0 / sqrt((double)v[i] + (double)eps));
            }
            if (training) {
                for (int i = 0; i < C; i++) {
                    double unbiased = cnt > 1 ? (double)var[i] * cnt / (double)(cnt - 1) : var[i];
                    if (running_mean)
                        running_mean[i] = (float)((1.0 - momentum) * running_mean[i] +
                                                  momentum * (double)mean[i]);
                    if (running_var)
                        running_var[i] =
                            (float)((1.0 - momentum) * running_var[i] + momentum * unbiased);
                }
            }
        }
    }
    if (!done)
        acv_ref_batchnorm_forward(out, save_mean, save_rstd, in, gamma, beta, running_mean,
                                  running_var, N, C, HW, eps, momentum, training);
    if (tmp) acv__cpu_cache_free(tmp);
}

/* Backend slot; contract as acv_ref_batchnorm_backward. oneDNN runs when d_in is wanted
 * and the statistics it needs are at hand; d_gamma/d_beta alone are one cheap pass and
 * run in the reference kernel. */
void acv__cpu_batchnorm_backward(void **cache, float *d_in, float *d_gamma, float *d_beta,
                                 const float *d_out, const float *in, const float *gamma,
                                 const float *save_mean, const float *save_rstd,
                                 const float *running_var, int N, int C, int HW, float eps,
                                 bool training)
{
    acv__cpu_sync_threads();
    /* Backward shares the forward's cache, whose key also holds whether beta was given;
     * reuse that flag when the slot has one, else key on whether d_beta is wanted. */
    bn_key k = {N, C, HW, eps, training, gamma != NULL, d_beta != NULL, omp_get_max_threads()};
    void *tmp = NULL;
    void **slot = cache ? cache : &tmp;
    bn_cache *c = NULL;
    bool stats = save_mean && (save_rstd || (!training && running_var));
    if (d_in && stats && (int64_t)N * C * HW > 0) {
        const bn_cache *old = *slot;
        if (old && old->kind == ACV__CPU_CACHE_BN) k.beta = old->key.beta;
        c = cache_get(slot, &k);
    }
    bool done = false;
    if (c && !c->bwd_built) bwd_build(c);
    if (c && c->bwd_ok) {
        float *var = c->buf + C, *junk_g = c->buf + 2 * C, *junk_b = c->buf + 3 * C;
        for (int i = 0; i < C; i++) {
            if (!training && running_var) {
                var[i] = running_var[i];
            } else {
                double r = save_rstd[i];
                var[i] = (float)(1.0 / (r * r) - (double)eps);
            }
        }
        if (k.gamma) memset(junk_g, 0, sizeof(float) * (size_t)C);
        if (k.beta) memset(junk_b, 0, sizeof(float) * (size_t)C);
        void *ptrs[8];
        int n = 0;
        ptrs[n++] = (void *)in;
        ptrs[n++] = (void *)save_mean;
        ptrs[n++] = var;
        ptrs[n++] = (void *)d_out;
        if (k.gamma) ptrs[n++] = (void *)gamma;
        ptrs[n++] = d_in;
        if (k.gamma) ptrs[n++] = d_gamma ? d_gamma : junk_g;
        if (k.beta) ptrs[n++] = d_beta ? d_beta : junk_b;
        done = acv__op_exec(&c->bwd, ptrs) == 0;
        /* a shift gradient oneDNN did not produce (forward had no beta) */
        if (done && !k.beta && d_beta)
            acv_ref_batchnorm_backward(NULL, NULL, d_beta, d_out, in, gamma, save_mean,
                                       save_rstd, running_var, N, C, HW, eps, training);
        /* a scale gradient without gamma: oneDNN has none to give */
        if (done && !k.gamma && d_gamma)
            acv_ref_batchnorm_backward(NULL, d_gamma, NULL, d_out, in, gamma, save_mean,
                                       save_rstd, running_var, N, C, HW, eps, training);
    }
    if (!done)
        acv_ref_batchnorm_backward(d_in, d_gamma, d_beta, d_out, in, gamma, save_mean,
                                   save_rstd, running_var, N, C, HW, eps, training);
    if (tmp) acv__cpu_cache_free(tmp);
}
