/* Reference pooling and resize kernels (src/nn/ref/pool.c, src/nn/ref/resize.c).
 *
 * Each kernel's forward is checked against a naive double-precision loop written here from
 * PyTorch's definition (max pool: padding never wins, first maximum on ties; avg pool:
 * divisor rules for count_include_pad and ceil mode; nearest and bilinear: PyTorch's source
 * index formulas), plus hand-computed PyTorch values. Backward is checked against a double
 * analytic backward and against central finite differences of the double forward for
 * L = sum(out * r) (max pool inputs are distinct values spaced far apart, so no tie can
 * flip inside the finite-difference step), for accumulation (two calls add twice) and for
 * NULL gradients being skipped. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "base/rng.h"
#include "nn/kernels.h"

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    assert_non_null(p);
    return p;
}

static double max_abs(const double *a, int64_t n)
{
    double m = 0.0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs(a[i]));
    return m;
}

static void expect_close(const char *name, const char *what, const float *a, const double *b,
                         int64_t n, double tol)
{
    double e = 0.0;
    for (int64_t i = 0; i < n; i++) e = fmax(e, fabs((double)a[i] - b[i]));
    e /= fmax(max_abs(b, n), 1e-6);
    if (!(e < tol)) print_error("%s: %s relative error %.3g >= %.3g\n", name, what, e, tol);
    assert_true(e < tol);
}

static void fill_normal(float *f, double *d, int64_t n, acv_rng *rng)
{
    for (int64_t i = 0; i < n; i++) {
        f[i] = acv_rng_normal(rng);
        if (d) d[i] = f[i];
    }
}

/* ---- a generic single-input op harness ------------------------------------------------ */

/* A single-input op in double precision (the test's reference), and the float kernels. */
typedef struct op_desc {
    const char *name;
    int64_t n_in, n_out;
    void (*ref_fwd)(double *out, const double *in, const void *ctx);
    void (*ref_bwd)(double *d_in, const double *d_out, const double *in, const void *ctx);
    void (*fwd)(float *out, const float *in, void *ctx);   /* also saves state (argmax) */
    void (*bwd)(float *d_in, const float *d_out, void *ctx);
    const void *ctx;
} op_desc;

static double ref_loss(const op_desc *op, const double *in, const double *r, double *scratch)
{
    op->ref_fwd(scratch, in, op->ctx);
    double s = 0.0;
    for (int64_t j = 0; j < op->n_out; j++) s += scratch[j] * r[j];
    return s;
}

/* Runs the forward, backward, finite-difference, accumulation and NULL checks of one op on
 * the input in (float and its double copy ind). */
static void check_op(const op_desc *op, const float *in, double *ind, acv_rng *rng)
{
    const int64_t ni = op->n_in, no = op->n_out;
    float *out = xmalloc(sizeof(float) * no), *out2 = xmalloc(sizeof(float) * no);
    float *r = xmalloc(sizeof(float) * no);
    double *outd = xmalloc(sizeof(double) * no), *rd = xmalloc(sizeof(double) * no);
    fill_normal(r, rd, no, rng);

    op->fwd(out2, in, (void *)op->ctx);
    op->fwd(out, in, (void *)op->ctx);
    assert_memory_equal(out, out2, sizeof(float) * (size_t)no);
    op->ref_fwd(outd, ind, op->ctx);
    expect_close(op->name, "forward", out, outd, no, 1e-5);

    float *g = calloc((size_t)ni, sizeof(float));
    double *gd = xmalloc(sizeof(double) * ni);
    assert_non_null(g);
    op->bwd(g, r, (void *)op->ctx);
    op->ref_bwd(gd, rd, ind, op->ctx);
    expect_close(op->name, "backward vs analytic", g, gd, ni, 1e-4);

    /* central differences, every input entry */
    const double h = 1e-4;
    double err = 0.0, scale = 1e-6;
    for (int64_t i = 0; i < ni; i++) {
        double keep = ind[i];
        ind[i] = keep + h;
        double lp = ref_loss(op, ind, rd, outd);
        ind[i] = keep - h;
        double lm = ref_loss(op, ind, rd, outd);
        ind[i] = keep;
        double fd = (lp - lm) / (2 * h);
        err = fmax(err, fabs(fd - (double)g[i]));
        scale = fmax(scale, fabs(fd));
    }
    if (!(err / scale < 1e-3))
        print_error("%s: finite-difference error %.3g\n", op->name, err / scale);
    assert_true(err / scale < 1e-3);

    /* accumulation from a random start; NULL skipped */
    float *a = xmalloc(sizeof(float) * ni);
    double *ad = xmalloc(sizeof(double) * ni);
    fill_normal(a, ad, ni, rng);
    op->bwd(a, r, (void *)op->ctx);
    op->bwd(a, r, (void *)op->ctx);
    for (int64_t i = 0; i < ni; i++) ad[i] += 2 * gd[i];
    expect_close(op->name, "accumulated backward", a, ad, ni, 1e-4);
    op->bwd(NULL, r, (void *)op->ctx);

    free(out); free(out2); free(r); free(outd); free(rd); free(g); free(gd); free(a); free(ad);
}

/* ---- max pool --------------------------------------------------------------------------- */

typedef struct pool_ctx {
    acv_pool_params p;
    int32_t *argmax; /* saved by the float forward */
} pool_ctx;

/* PyTorch's output size (floor or ceil mode; a ceil-mode last window must start inside the
 * input or the left padding). */
static int pool_out(int in, int k, int s, int p0, int p1, int d, bool ceil_mode)
{
    int num = in + p0 + p1 - d * (k - 1) - 1;
    int o = (ceil_mode ? (num + s - 1) / s : num / s) + 1;
    if (ceil_mode && (o - 1) * s >= in + p0) o--;
    return o;
}

static acv_pool_params pool_params(int N, int C, int H, int W, int KH, int KW, int sh, int sw,
                                   int pt, int pl, int pb, int pr, int dh, int dw, bool cip,
                                   bool ceil_mode)
{
    acv_pool_params p = {.N = N, .C = C, .H = H, .W = W, .KH = KH, .KW = KW, .stride_h = sh,
                         .stride_w = sw, .pad_t = pt, .pad_l = pl, .pad_b = pb, .pad_r = pr,
                         .dil_h = dh, .dil_w = dw, .count_include_pad = cip,
                         .ceil_mode = ceil_mode};
    p.OH = pool_out(H, KH, sh, pt, pb, dh, ceil_mode);
    p.OW = pool_out(W, KW, sw, pl, pr, dw, ceil_mode);
    return p;
}

/* Index of the maximum of window (n,c,oh,ow) in the input plane, -1 if empty: the first tap
 * inside the input, then each later one that is greater or NaN (PyTorch's rule: ties keep the
 * first maximum, NaN propagates). */
static int64_t ref_max_index(const double *in, const acv_pool_params *p, int64_t plane, int oh,
                             int ow)
{
    int64_t best = -1;
    for (int kh = 0; kh < p->KH; kh++)
        for (int kw = 0; kw < p->KW; kw++) {
            int ih = oh * p->stride_h - p->pad_t + kh * p->dil_h;
            int iw = ow * p->stride_w - p->pad_l + kw * p->dil_w;
            if (ih < 0 || ih >= p->H || iw < 0 || iw >= p->W) continue;
            int64_t idx = (int64_t)ih * p->W + iw;
            if (best < 0 || in[plane + idx] > in[plane + best] || isnan(in[plane + idx])) best = idx;
        }
    return best;
}

static void ref_maxpool_fwd(double *out, const double *in, const void *ctx)
{
    const acv_pool_params *p = &((const pool_ctx *)ctx)->p;
    int64_t j = 0;
    for (int64_t pl = 0; pl < (int64_t)p->N * p->C; pl++)
        for (int oh = 0; oh < p->OH; oh++)
            for (int ow = 0; ow < p->OW; ow++) {
                int64_t plane = pl * p->H * p->W, b = ref_max_index(in, p, plane, oh, ow);
                out[j++] = b < 0 ? -INFINITY : in[plane + b];
            }
}

static void ref_maxpool_bwd(double *d_in, const double *d_out, const double *in, const void *ctx)
{
    const acv_pool_params *p = &((const pool_ctx *)ctx)->p;
    memset(d_in, 0, sizeof(double) * (size_t)p->N * p->C * p->H * p->W);
    int64_t j = 0;
    for (int64_t pl = 0; pl < (int64_t)p->N * p->C; pl++)
        for (int oh = 0; oh < p->OH; oh++)
            for (int ow = 0; ow < p->OW; ow++, j++) {
                int64_t plane = pl * p->H * p->W, b = ref_max_index(in, p, plane, oh, ow);
                if (b >= 0) d_in[plane + b] += d_out[j];
            }
}

static void maxpool_fwd(float *out, const float *in, void *ctx)
{
    pool_ctx *c = ctx;
    acv_ref_maxpool_forward(out, c->argmax, in, &c->p);
}

static void maxpool_bwd(float *d_in, const float *d_out, void *ctx)
{
    pool_ctx *c = ctx;
    acv_ref_maxpool_backward(d_in, d_out, c->argmax, &c->p);
}

/* Distinct values: a shuffled ramp with spacing 0.01, all negative (so a kernel that lets
 * zero padding win would be caught). */
static void fill_distinct(float *f, double *d, int64_t n, acv_rng *rng)
{
    int *perm = xmalloc(sizeof(int) * (size_t)n);
    for (int64_t i = 0; i < n; i++) perm[i] = (int)i;
    acv_rng_shuffle(rng, perm, (int)n);
    for (int64_t i = 0; i < n; i++) {
        f[i] = -0.01f * (float)(perm[i] + 1);
        d[i] = f[i];
    }
    free(perm);
}

static void test_maxpool(void **state)
{
    (void)state;
    struct { const char *name; acv_pool_params p; } cases[] = {
        {"2x2 s2", pool_params(2, 3, 6, 8, 2, 2, 2, 2, 0, 0, 0, 0, 1, 1, false, false)},
        {"3x3 s2 p1", pool_params(2, 2, 7, 9, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, false, false)},
        {"3x3 s2 p1 ceil", pool_params(1, 2, 8, 7, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, false, true)},
        {"2x2 s2 ceil odd", pool_params(2, 1, 7, 5, 2, 2, 2, 2, 0, 0, 0, 0, 1, 1, false, true)},
        {"3x3 s1 p2 dil2", pool_params(2, 2, 7, 8, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2, false, false)},
        {"dil (2,1) s2", pool_params(1, 3, 9, 8, 3, 2, 2, 1, 1, 0, 1, 1, 2, 1, false, true)},
        {"asym pads", pool_params(2, 2, 6, 7, 3, 2, 2, 1, 0, 1, 1, 0, 1, 1, false, false)},
        {"7x7 s1 p3", pool_params(1, 2, 9, 9, 7, 7, 1, 1, 3, 3, 3, 3, 1, 1, false, false)},
        {"1x1 s2", pool_params(2, 2, 5, 6, 1, 1, 2, 2, 0, 0, 0, 0, 1, 1, false, false)},
        {"large", pool_params(4, 16, 32, 32, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, false, false)},
    };
    acv_rng rng;
    acv_rng_seed(&rng, 42);
    for (size_t t = 0; t < sizeof(cases) / sizeof(cases[0]); t++) {
        pool_ctx c = {.p = cases[t].p};
        const acv_pool_params *p = &c.p;
        int64_t ni = (int64_t)p->N * p->C * p->H * p->W, no = (int64_t)p->N * p->C * p->OH * p->OW;
        c.argmax = xmalloc(sizeof(int32_t) * no);
        float *in = xmalloc(sizeof(float) * ni);
        double *ind = xmalloc(sizeof(double) * ni);
        fill_distinct(in, ind, ni, &rng);
        op_desc op = {cases[t].name, ni, no, ref_maxpool_fwd, ref_maxpool_bwd, maxpool_fwd,
                      maxpool_bwd, &c};
        if (ni <= 4096) {
            check_op(&op, in, ind, &rng);
        } else { /* large: forward and backward against the reference only */
            float *out = xmalloc(sizeof(float) * no);
            double *outd = xmalloc(sizeof(double) * no);
            maxpool_fwd(out, in, &c);
            ref_maxpool_fwd(outd, ind, &c);
            expect_close(op.name, "forward", out, outd, no, 1e-6);
            free(out);
            free(outd);
        }
        /* the saved argmax is the reference's index into the input plane */
        for (int64_t pl = 0, j = 0; pl < (int64_t)p->N * p->C; pl++)
            for (int oh = 0; oh < p->OH; oh++)
                for (int ow = 0; ow < p->OW; ow++, j++)
                    assert_int_equal(c.argmax[j],
                                     ref_max_index(ind, p, pl * p->H * p->W, oh, ow));
        free(c.argmax);
        free(in);
        free(ind);
    }
}

/* Ties keep the first maximum (row-major in the window); NaN propagates. */
static void test_maxpool_ties_nan(void **state)
{
    (void)state;
    acv_pool_params p = pool_params(1, 1, 2, 4, 2, 2, 2, 2, 0, 0, 0, 0, 1, 1, false, false);
    float in[8] = {1, 5, 2, 2, 5, 0, NAN, 2};
    float out[2];
    int32_t am[2];
    acv_ref_maxpool_forward(out, am, in, &p);
    assert_float_equal(out[0], 5.0f, 0);
    assert_int_equal(am[0], 1);
    assert_true(isnan(out[1]));
    assert_int_equal(am[1], 6);
}

/* Wide rows (the kernel selects up to 16 windows side by side, then the rest one by one):
 * ties and NaNs everywhere, every window's value and argmax against ref_max_index, the rule
 * applied one window at a time. */
static void test_maxpool_wide_ties_nan(void **state)
{
    (void)state;
    acv_pool_params cases[] = {
        pool_params(1, 3, 5, 53, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, false, false),
        pool_params(2, 2, 9, 70, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, false, false),
        pool_params(1, 2, 8, 61, 2, 3, 1, 1, 1, 2, 1, 2, 2, 2, false, false),
        pool_params(1, 2, 11, 64, 5, 5, 3, 3, 2, 2, 2, 2, 1, 1, false, true),
        pool_params(1, 1, 4, 40, 1, 4, 1, 2, 0, 0, 0, 0, 1, 1, false, false),
        pool_params(1, 2, 6, 70, 2, 2, 2, 2, 0, 0, 0, 0, 1, 1, false, false),
    };
    acv_rng rng;
    acv_rng_seed(&rng, 7);
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        const acv_pool_params *p = &cases[t];
        int64_t ni = (int64_t)p->N * p->C * p->H * p->W, no = (int64_t)p->N * p->C * p->OH * p->OW;
        float *in = xmalloc(sizeof(float) * ni), *out = xmalloc(sizeof(float) * no);
        double *ind = xmalloc(sizeof(double) * ni);
        int32_t *am = xmalloc(sizeof(int32_t) * no);
        for (int64_t i = 0; i < ni; i++) {
            uint32_t r = acv_rng_below(&rng, 16);
            in[i] = r == 0 ? NAN : r == 1 ? -INFINITY : (float)(r % 3);
            ind[i] = in[i];
        }
        acv_ref_maxpool_forward(out, am, in, p);
        for (int64_t pl = 0, j = 0; pl < (int64_t)p->N * p->C; pl++)
            for (int oh = 0; oh < p->OH; oh++)
                for (int ow = 0; ow < p->OW; ow++, j++) {
                    const int64_t plane = pl * p->H * p->W, idx = ref_max_index(ind, p, plane, oh, ow);
                    const float best = idx < 0 ? -INFINITY : in[plane + idx];
                    if (am[j] != idx || (isnan(best) ? !isnan(out[j]) : out[j] != best))
                        fail_msg("case %zu, plane %lld, window (%d, %d): got %g at %d, want %g at %lld", t,
                                 (long long)pl, oh, ow, (double)out[j], am[j], (double)best, (long long)idx);
                }
        free(ind);
        free(in);
        free(out);
        free(am);
    }
}

/* ---- average pool ---------------------------------------------------------------------------- */

/* Direct PyTorch definition: a window position counts for count_include_pad when it lies in
 * the padded input (ceil-mode overhang beyond the padding does not count); the sum and the
 * other divisor use the positions inside the input. */
static double ref_avg_window(const double *in, const acv_pool_params *p, int64_t plane, int oh,
                             int ow, int64_t *idx, int *n_idx, int *div)
{
    int in_padded = 0, inside = 0;
    double s = 0.0;
    for (int kh = 0; kh < p->KH; kh++)
        for (int kw = 0; kw < p->KW; kw++) {
            int ih = oh * p->stride_h - p->pad_t + kh, iw = ow * p->stride_w - p->pad_l + kw;
            if (ih < p->H + p->pad_b && iw < p->W + p->pad_r) in_padded++;
            if (ih < 0 || ih >= p->H || iw < 0 || iw >= p->W) continue;
            idx[inside++] = plane + (int64_t)ih * p->W + iw;
            if (in) s += in[plane + (int64_t)ih * p->W + iw];
        }
    *n_idx = inside;
    *div = p->count_include_pad ? in_padded : inside;
    return s;
}

static void ref_avgpool_fwd(double *out, const double *in, const void *ctx)
{
    const acv_pool_params *p = ctx;
    int64_t *idx = xmalloc(sizeof(int64_t) * (size_t)p->KH * p->KW), j = 0;
    for (int64_t pl = 0; pl < (int64_t)p->N * p->C; pl++)
        for (int oh = 0; oh < p->OH; oh++)
            for (int ow = 0; ow < p->OW; ow++) {
                int n, div;
                double s = ref_avg_window(in, p, pl * p->H * p->W, oh, ow, idx, &n, &div);
                out[j++] = s / div;
            }
    free(idx);
}

static void ref_avgpool_bwd(double *d_in, const double *d_out, const double *in, const void *ctx)
{
    const acv_pool_params *p = ctx;
    memset(d_in, 0, sizeof(double) * (size_t)p->N * p->C * p->H * p->W);
    int64_t *idx = xmalloc(sizeof(int64_t) * (size_t)p->KH * p->KW), j = 0;
    for (int64_t pl = 0; pl < (int64_t)p->N * p->C; pl++)
        for (int oh = 0; oh < p->OH; oh++)
            for (int ow = 0; ow < p->OW; ow++, j++) {
                int n, div;
                ref_avg_window(NULL, p, pl * p->H * p->W, oh, ow, idx, &n, &div);
                for (int i = 0; i < n; i++) d_in[idx[i]] += d_out[j] / div;
            }
    free(idx);
}

static void avgpool_fwd(float *out, const float *in, void *ctx)
{
    acv_ref_avgpool_forward(out, in, ctx);
}

static void avgpool_bwd(float *d_in, const float *d_out, void *ctx)
{
    acv_ref_avgpool_backward(d_in, d_out, ctx);
}

static void test_avgpool(void **state)
{
    (void)state;
    struct { const char *name; acv_pool_params p; } cases[] = {
        {"2x2 s2", pool_params(2, 3, 6, 8, 2, 2, 2, 2, 0, 0, 0, 0, 1, 1, false, false)},
        {"3x3 s2 p1 incl", pool_params(2, 2, 7, 9, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, true, false)},
        {"3x3 s2 p1 excl", pool_params(2, 2, 7, 9, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, false, false)},
        {"3x3 s2 p1 ceil incl", pool_params(1, 2, 8, 8, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, true, true)},
        {"3x3 s2 p1 ceil excl", pool_params(1, 2, 8, 8, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, false, true)},
        {"2x2 s2 ceil odd", pool_params(2, 1, 7, 5, 2, 2, 2, 2, 0, 0, 0, 0, 1, 1, true, true)},
        {"asym pads incl", pool_params(2, 2, 6, 7, 3, 2, 2, 1, 0, 1, 2, 0, 1, 1, true, true)},
        {"asym pads excl", pool_params(2, 2, 6, 7, 3, 2, 2, 1, 0, 1, 2, 0, 1, 1, false, false)},
        {"7x7 s1 p3 incl", pool_params(1, 2, 9, 8, 7, 7, 1, 1, 3, 3, 3, 3, 1, 1, true, false)},
        {"5x5 s3 p2 ceil", pool_params(2, 1, 10, 11, 5, 5, 3, 3, 2, 2, 2, 2, 1, 1, true, true)},
        {"global-like", pool_params(2, 3, 4, 4, 4, 4, 1, 1, 0, 0, 0, 0, 1, 1, false, false)},
    };
    acv_rng rng;
    acv_rng_seed(&rng, 7);
    for (size_t t = 0; t < sizeof(cases) / sizeof(cases[0]); t++) {
        acv_pool_params *p = &cases[t].p;
        int64_t ni = (int64_t)p->N * p->C * p->H * p->W, no = (int64_t)p->N * p->C * p->OH * p->OW;
        float *in = xmalloc(sizeof(float) * ni);
        double *ind = xmalloc(sizeof(double) * ni);
        fill_normal(in, ind, ni, &rng);
        op_desc op = {cases[t].name, ni, no, ref_avgpool_fwd, ref_avgpool_bwd, avgpool_fwd,
                      avgpool_bwd, p};
        check_op(&op, in, ind, &rng);
        free(in);
        free(ind);
    }
}

/* PyTorch values: avg_pool2d(ones(1,1,4,4), 3, stride=2, padding=1, ceil_mode=True) gives a
 * 3x3 output; the last row/column window starts at 3 and is clipped to the padded input
 * (rows 3..4), so with count_include_pad its divisor is 3*2 or 2*2, without it 3*1 or 1. */
static void test_avgpool_hand(void **state)
{
    (void)state;
    float in[16], out[9];
    for (int i = 0; i < 16; i++) in[i] = 1.0f;
    acv_pool_params p = pool_params(1, 1, 4, 4, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, true, true);
    assert_int_equal(p.OH, 3);
    assert_int_equal(p.OW, 3);
    acv_ref_avgpool_forward(out, in, &p);
    const float incl[9] = {4.f / 9, 6.f / 9, 2.f / 6, 6.f / 9, 9.f / 9, 3.f / 6,
                           2.f / 6, 3.f / 6, 1.f / 4};
    for (int i = 0; i < 9; i++) assert_float_equal(out[i], incl[i], 1e-6);
    p.count_include_pad = false;
    acv_ref_avgpool_forward(out, in, &p);
    for (int i = 0; i < 9; i++) assert_float_equal(out[i], 1.0f, 1e-6);

    /* 1..16 with a 2x2 window, stride 2: block means */
    for (int i = 0; i < 16; i++) in[i] = (float)(i + 1);
    acv_pool_params q = pool_params(1, 1, 4, 4, 2, 2, 2, 2, 0, 0, 0, 0, 1, 1, false, false);
    acv_ref_avgpool_forward(out, in, &q);
    const float blocks[4] = {3.5f, 5.5f, 11.5f, 13.5f};
    for (int i = 0; i < 4; i++) assert_float_equal(out[i], blocks[i], 1e-6);
}

/* ---- global average pool ------------------------------------------------------------------- */

typedef struct gap_ctx { int N, C, HW; } gap_ctx;

static void ref_gap_fwd(double *out, const double *in, const void *ctx)
{
    const gap_ctx *g = ctx;
    for (int64_t pl = 0; pl < (int64_t)g->N * g->C; pl++) {
        double s = 0.0;
        for (int i = 0; i < g->HW; i++) s += in[pl * g->HW + i];
        out[pl] = s / g->HW;
    }
}

static void ref_gap_bwd(double *d_in, const double *d_out, const double *in, const void *ctx)
{
    const gap_ctx *g = ctx;
    for (int64_t pl = 0; pl < (int64_t)g->N * g->C; pl++)
        for (int i = 0; i < g->HW; i++) d_in[pl * g->HW + i] = d_out[pl] / g->HW;
}

static void gap_fwd(float *out, const float *in, void *ctx)
{
    gap_ctx *g = ctx;
    acv_ref_gap_forward(out, in, g->N, g->C, g->HW);
}

static void gap_bwd(float *d_in, const float *d_out, void *ctx)
{
    gap_ctx *g = ctx;
    acv_ref_gap_backward(d_in, d_out, g->N, g->C, g->HW);
}

static void test_gap(void **state)
{
    (void)state;
    const gap_ctx cases[] = {{2, 3, 49}, {1, 5, 1}, {3, 4, 17}};
    acv_rng rng;
    acv_rng_seed(&rng, 9);
    for (size_t t = 0; t < sizeof(cases) / sizeof(cases[0]); t++) {
        const gap_ctx *g = &cases[t];
        int64_t ni = (int64_t)g->N * g->C * g->HW, no = (int64_t)g->N * g->C;
        float *in = xmalloc(sizeof(float) * ni);
        double *ind = xmalloc(sizeof(double) * ni);
        fill_normal(in, ind, ni, &rng);
        op_desc op = {"gap", ni, no, ref_gap_fwd, ref_gap_bwd, gap_fwd, gap_bwd, g};
        check_op(&op, in, ind, &rng);
        free(in);
        free(ind);
    }
}

/* ---- resize --------------------------------------------------------------------------------- */

typedef struct rs_ctx { int N, C, H, W, OH, OW; bool align_corners; } rs_ctx;

/* PyTorch nearest (size given): scale = in/out as float, src = min(floor(dst*scale), in-1). */
static int ref_nearest(int dst, int in, int out)
{
    float scale = (float)in / (float)out;
    int s = (int)floorf((float)dst * scale);
    return s < in - 1 ? s : in - 1;
}

static void ref_nearest_fwd(double *out, const double *in, const void *ctx)
{
    const rs_ctx *r = ctx;
    int64_t j = 0;
    for (int64_t pl = 0; pl < (int64_t)r->N * r->C; pl++)
        for (int y = 0; y < r->OH; y++)
            for (int x = 0; x < r->OW; x++)
                out[j++] = in[(pl * r->H + ref_nearest(y, r->H, r->OH)) * r->W +
                              ref_nearest(x, r->W, r->OW)];
}

static void ref_nearest_bwd(double *d_in, const double *d_out, const double *in, const void *ctx)
{
    const rs_ctx *r = ctx;
    memset(d_in, 0, sizeof(double) * (size_t)r->N * r->C * r->H * r->W);
    int64_t j = 0;
    for (int64_t pl = 0; pl < (int64_t)r->N * r->C; pl++)
        for (int y = 0; y < r->OH; y++)
            for (int x = 0; x < r->OW; x++)
                d_in[(pl * r->H + ref_nearest(y, r->H, r->OH)) * r->W +
                     ref_nearest(x, r->W, r->OW)] += d_out[j++];
}

/* PyTorch linear source position and its two taps, in double. */
static void ref_linear(int dst, int in, int out, bool ac, int *i0, int *i1, double *l1)
{
    double real;
    if (in == out) real = dst;
    else if (ac) real = out > 1 ? (double)(in - 1) / (out - 1) * dst : 0.0;
    else real = fmax(((double)dst + 0.5) * in / out - 0.5, 0.0);
    int f = (int)floor(real);
    if (f > in - 1) f = in - 1;
    *i0 = f;
    *i1 = f < in - 1 ? f + 1 : f;
    *l1 = fmin(fmax(real - f, 0.0), 1.0);
}

/* Visits the four weighted taps of every output; mode 0 forward, 1 backward. */
static void ref_bilinear(double *out, double *d_in, const double *in, const double *d_out,
                         const rs_ctx *r)
{
    int64_t j = 0;
    for (int64_t pl = 0; pl < (int64_t)r->N * r->C; pl++)
        for (int y = 0; y < r->OH; y++)
            for (int x = 0; x < r->OW; x++, j++) {
                int y0, y1, x0, x1;
                double ly, lx;
                ref_linear(y, r->H, r->OH, r->align_corners, &y0, &y1, &ly);
                ref_linear(x, r->W, r->OW, r->align_corners, &x0, &x1, &lx);
                int64_t idx[4] = {(pl * r->H + y0) * r->W + x0, (pl * r->H + y0) * r->W + x1,
                                  (pl * r->H + y1) * r->W + x0, (pl * r->H + y1) * r->W + x1};
                double wt[4] = {(1 - ly) * (1 - lx), (1 - ly) * lx, ly * (1 - lx), ly * lx};
                if (out) {
                    out[j] = 0.0;
                    for (int k = 0; k < 4; k++) out[j] += wt[k] * in[idx[k]];
                } else {
                    for (int k = 0; k < 4; k++) d_in[idx[k]] += wt[k] * d_out[j];
                }
            }
}

static void ref_bilinear_fwd(double *out, const double *in, const void *ctx)
{
    ref_bilinear(out, NULL, in, NULL, ctx);
}

static void ref_bilinear_bwd(double *d_in, const double *d_out, const double *in, const void *ctx)
{
    const rs_ctx *r = ctx;
    memset(d_in, 0, sizeof(double) * (size_t)r->N * r->C * r->H * r->W);
    ref_bilinear(NULL, d_in, NULL, d_out, r);
}

static void nearest_fwd(float *out, const float *in, void *ctx)
{
    rs_ctx *r = ctx;
    acv_ref_upsample_nearest_forward(out, in, r->N, r->C, r->H, r->W, r->OH, r->OW);
}

static void nearest_bwd(float *d_in, const float *d_out, void *ctx)
{
    rs_ctx *r = ctx;
    acv_ref_upsample_nearest_backward(d_in, d_out, r->N, r->C, r->H, r->W, r->OH, r->OW);
}

static void bilinear_fwd(float *out, const float *in, void *ctx)
{
    rs_ctx *r = ctx;
    acv_ref_upsample_bilinear_forward(out, in, r->N, r->C, r->H, r->W, r->OH, r->OW,
                                      r->align_corners);
}

static void bilinear_bwd(float *d_in, const float *d_out, void *ctx)
{
    rs_ctx *r = ctx;
    acv_ref_upsample_bilinear_backward(d_in, d_out, r->N, r->C, r->H, r->W, r->OH, r->OW,
                                       r->align_corners);
}

static const rs_ctx resize_cases[] = {
    {2, 3, 4, 5, 8, 10, false}, {1, 2, 3, 4, 7, 5, false},  {2, 1, 5, 6, 3, 4, false},
    {1, 2, 4, 4, 4, 4, false},  {2, 2, 1, 3, 4, 7, false},  {1, 1, 6, 5, 1, 1, false},
    {2, 3, 4, 5, 8, 10, true},  {1, 2, 3, 4, 7, 5, true},   {2, 1, 5, 6, 3, 4, true},
    {1, 2, 4, 4, 4, 4, true},   {2, 2, 1, 3, 4, 7, true},   {1, 1, 6, 5, 1, 1, true},
    {1, 2, 7, 9, 16, 13, false},
};

static void test_resize(void **state)
{
    (void)state;
    acv_rng rng;
    acv_rng_seed(&rng, 11);
    char name[96];
    for (size_t t = 0; t < sizeof(resize_cases) / sizeof(resize_cases[0]); t++) {
        const rs_ctx *r = &resize_cases[t];
        int64_t ni = (int64_t)r->N * r->C * r->H * r->W, no = (int64_t)r->N * r->C * r->OH * r->OW;
        float *in = xmalloc(sizeof(float) * ni);
        double *ind = xmalloc(sizeof(double) * ni);
        fill_normal(in, ind, ni, &rng);
        snprintf(name, sizeof(name), "bilinear %dx%d->%dx%d ac=%d", r->H, r->W, r->OH, r->OW,
                 r->align_corners);
        op_desc bl = {name, ni, no, ref_bilinear_fwd, ref_bilinear_bwd, bilinear_fwd,
                      bilinear_bwd, r};
        check_op(&bl, in, ind, &rng);
        if (!r->align_corners) {
            snprintf(name, sizeof(name), "nearest %dx%d->%dx%d", r->H, r->W, r->OH, r->OW);
            op_desc nn = {name, ni, no, ref_nearest_fwd, ref_nearest_bwd, nearest_fwd,
                          nearest_bwd, r};
            check_op(&nn, in, ind, &rng);
        }
        free(in);
        free(ind);
    }
}

/* PyTorch values: F.interpolate(x, size=..., mode='nearest') source indices, and bilinear
 * on [1, 2] (align_corners False: [1, 1.25, 1.75, 2]; True, 3 outputs: [1, 1.5, 2]). */
static void test_resize_hand(void **state)
{
    (void)state;
    float in[5] = {10, 20, 30, 40, 50}, out[10];
    acv_ref_upsample_nearest_forward(out, in, 1, 1, 1, 3, 1, 5); /* 3 -> 5 */
    const float n35[5] = {10, 10, 20, 20, 30};
    for (int i = 0; i < 5; i++) assert_float_equal(out[i], n35[i], 0);
    acv_ref_upsample_nearest_forward(out, in, 1, 1, 1, 5, 1, 3); /* 5 -> 3 */
    const float n53[3] = {10, 20, 40};
    for (int i = 0; i < 3; i++) assert_float_equal(out[i], n53[i], 0);
    acv_ref_upsample_nearest_forward(out, in, 1, 1, 1, 4, 1, 8); /* 4 -> 8 */
    const float n48[8] = {10, 10, 20, 20, 30, 30, 40, 40};
    for (int i = 0; i < 8; i++) assert_float_equal(out[i], n48[i], 0);

    float two[2] = {1, 2};
    acv_ref_upsample_bilinear_forward(out, two, 1, 1, 1, 2, 1, 4, false);
    const float b24[4] = {1.0f, 1.25f, 1.75f, 2.0f};
    for (int i = 0; i < 4; i++) assert_float_equal(out[i], b24[i], 1e-6);
    acv_ref_upsample_bilinear_forward(out, two, 1, 1, 1, 2, 1, 3, true);
    const float b23[3] = {1.0f, 1.5f, 2.0f};
    for (int i = 0; i < 3; i++) assert_float_equal(out[i], b23[i], 1e-6);
    /* 2x2 -> 3x3 align_corners: the centre is the mean of the four corners */
    float sq[4] = {1, 2, 3, 4};
    acv_ref_upsample_bilinear_forward(out, sq, 1, 1, 2, 2, 3, 3, true);
    assert_float_equal(out[4], 2.5f, 1e-6);
    assert_float_equal(out[8], 4.0f, 1e-6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_maxpool),
        cmocka_unit_test(test_maxpool_ties_nan),
        cmocka_unit_test(test_maxpool_wide_ties_nan),
        cmocka_unit_test(test_avgpool),
        cmocka_unit_test(test_avgpool_hand),
        cmocka_unit_test(test_gap),
        cmocka_unit_test(test_resize),
        cmocka_unit_test(test_resize_hand),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
