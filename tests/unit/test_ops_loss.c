/* Reference loss kernels (src/nn/ref/loss.c).
 *
 * Each loss is checked against a double-precision forward written here from PyTorch's
 * definition (torch.nn.functional.cross_entropy with weight / ignore_index /
 * label_smoothing, binary_cross_entropy_with_logits, torchvision.ops.sigmoid_focal_loss,
 * all with reduction='mean'), and its backward against central finite differences of that
 * double forward. Also checked: backward adds scale * gradient (two calls double it), a
 * NULL gradient is skipped, ignored targets get no gradient, a hand-computed weighted and
 * smoothed cross-entropy value, logits of +-100 stay finite and exact, and the loss does
 * not depend on the thread count. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <omp.h>
#include <cmocka.h>

#include "base/rng.h"
#include "nn/kernels.h"

/* ---- helpers ----------------------------------------------------------------------- */
#include "op_check.h"

static void check_scalar_(float got, double want, double tol, const char *what, int line)
{
    if (!(fabs(got - want) <= tol * fmax(fabs(want), 1e-30)))
        fail_msg("line %d: %s = %.9g, want %.9g", line, what, got, want);
}
#define CHECK_SCALAR(got, want, tol) check_scalar_((got), (want), (tol), #got, __LINE__)

/* Central differences of fn (which reads x through ctx) with respect to x[0..n). */
typedef double (*scalar_fn)(void *ctx);
static void num_grad(double *grad, double *x, int64_t n, scalar_fn fn, void *ctx)
{
    for (int64_t i = 0; i < n; i++) {
        double s = x[i], h = 1e-5 * fmax(1.0, fabs(s));
        x[i] = s + h;
        double fp = fn(ctx);
        x[i] = s - h;
        double fm = fn(ctx);
        x[i] = s;
        grad[i] = (fp - fm) / (2.0 * h);
    }
}

/* The backward's contract common to every loss: checks d (computed into zeros with the
 * given scale) against scale * num, then that a second call doubles it. */
typedef void (*backward_fn)(float *d, void *ctx);
static void check_backward_(backward_fn bw, void *ctx, const double *num, int64_t n, double scale,
                            int line)
{
    float *d = FALLOC(n), *d1 = FALLOC(n);
    double *want = DALLOC(n);
    for (int64_t i = 0; i < n; i++) want[i] = scale * num[i];
    bw(d, ctx);
    check_close_(d, want, n, 1e-3, "gradient", line);
    memcpy(d1, d, n * sizeof(float));
    bw(d, ctx);
    for (int64_t i = 0; i < n; i++) want[i] = 2.0 * d1[i];
    check_close_(d, want, n, 1e-6, "accumulated gradient", line);
    bw(NULL, ctx); /* skipped, must not crash */
    free(d); free(d1); free(want);
}
#define CHECK_BACKWARD(bw, ctx, num, n, scale) check_backward_((bw), (ctx), (num), (n), (scale), __LINE__)

/* ---- cross-entropy (hard targets) --------------------------------------------------- */

typedef struct ce_ctx {
    double *x;               /* (N, K) logits in double, for the reference */
    const float *xf, *t, *w; /* the kernel's inputs */
    int N, K;
    double eps, scale;
} ce_ctx;

/* PyTorch: loss = (1-eps) * nll_mean + eps/K * sum_i(-sum_k w_k logp_ik) / sum_i w_{y_i}. */
static double ce_d(void *p)
{
    ce_ctx *c = p;
    double nll = 0, smooth = 0, W = 0;
    for (int i = 0; i < c->N; i++) {
        if (c->t[i] < 0) continue;
        int y = (int)c->t[i];
        const double *x = c->x + (int64_t)i * c->K;
        double mx = x[0], s = 0;
        for (int k = 1; k < c->K; k++) mx = fmax(mx, x[k]);
        for (int k = 0; k < c->K; k++) s += exp(x[k] - mx);
        double lse = mx + log(s);
        double wy = c->w ? c->w[y] : 1;
        nll += wy * (lse - x[y]);
        W += wy;
        for (int k = 0; k < c->K; k++) smooth += (c->w ? c->w[k] : 1) * (lse - x[k]);
    }
    return ((1 - c->eps) * nll + c->eps / c->K * smooth) / W;
}
static void ce_bw(float *d, void *p)
{
    ce_ctx *c = p;
    acv_ref_cross_entropy_backward(d, c->xf, c->t, c->w, c->N, c->K, (float)c->eps, (float)c->scale);
}

static void run_ce_case(int N, int K, bool weighted, float eps, int n_ignored, float spread)
{
    acv_rng r;
    acv_rng_seed3(&r, 11, (uint64_t)N * K, weighted * 100 + n_ignored);
    float *x = FALLOC(N * K), *t = FALLOC(N), *w = FALLOC(K);
    fill(x, N * K, &r, -spread, spread);
    fill(w, K, &r, 0.2f, 3.0f);
    for (int i = 0; i < N; i++) t[i] = i < n_ignored ? -1.0f : (float)acv_rng_below(&r, K);
    double *xd = to_d(x, N * K), *num = DALLOC(N * K);
    ce_ctx c = {xd, x, t, weighted ? w : NULL, N, K, eps, 0.7};
    float loss = acv_ref_cross_entropy_forward(x, t, weighted ? w : NULL, N, K, eps);
    CHECK_SCALAR(loss, ce_d(&c), 1e-5);
    num_grad(num, xd, N * K, ce_d, &c);
    CHECK_BACKWARD(ce_bw, &c, num, N * K, 0.7);
    /* ignored rows get exactly nothing */
    float *d = FALLOC(N * K);
    ce_bw(d, &c);
    for (int i = 0; i < n_ignored * K; i++) assert_true(d[i] == 0.0f);
    free(x); free(t); free(w); free(xd); free(num); free(d);
}

static void test_cross_entropy(void **state)
{
    (void)state;
    run_ce_case(6, 5, false, 0.0f, 0, 3);  /* plain */
    run_ce_case(6, 5, true, 0.0f, 0, 3);   /* class weights */
    run_ce_case(6, 5, false, 0.1f, 0, 3);  /* label smoothing */
    run_ce_case(8, 4, true, 0.2f, 3, 3);   /* smoothing + weights + ignored targets */
    run_ce_case(5, 1, false, 0.0f, 0, 3);  /* one class: loss 0 */
    run_ce_case(300, 10, true, 0.1f, 7, 5); /* spans all chunks of the reduction */
}

/* Numbers by hand: zero logits (logp = -log 4 everywhere), K = 4, weights 1,2,3,4,
 * targets 1, ignored, 3; eps = 0.2.
 *   nll part  = (w1 + w3) log 4 = 6 log 4, W = w1 + w3 = 6,
 *   smooth    = 2 rows * (1+2+3+4) log 4 = 20 log 4,
 *   loss      = (0.8 * 6 + 0.2/4 * 20) log 4 / 6 = (5.8/6) log 4.
 * PyTorch divides the smoothing term by the target weights as well (not by the count). */
static void test_cross_entropy_numbers(void **state)
{
    (void)state;
    float x[12] = {0}, t[3] = {1, -1, 3}, w[4] = {1, 2, 3, 4};
    float loss = acv_ref_cross_entropy_forward(x, t, w, 3, 4, 0.2f);
    CHECK_SCALAR(loss, 5.8 / 6 * log(4.0), 1e-6);
    /* d/dx of row 0 (target 1, w=2): -(0.8*w1*[k==1] + 0.05*w_k)/W + p_k*(0.8*2 + 0.05*10)/W */
    float d[12] = {0};
    acv_ref_cross_entropy_backward(d, x, t, w, 3, 4, 0.2f, 1.0f);
    for (int k = 0; k < 4; k++) {
        double want = (-(k == 1 ? 1.6 : 0.0) - 0.05 * w[k] + 0.25 * 2.1) / 6;
        CHECK_SCALAR(d[k], want, 1e-5);
        assert_true(d[4 + k] == 0.0f);
    }
    /* no weights, no smoothing: log(K) */
    CHECK_SCALAR(acv_ref_cross_entropy_forward(x, t, NULL, 3, 4, 0.0f), log(4.0), 1e-6);
    /* every target ignored: 0 and no gradient (PyTorch would give NaN) */
    float none[3] = {-1, -1, -1};
    assert_true(acv_ref_cross_entropy_forward(x, none, w, 3, 4, 0.1f) == 0.0f);
    memset(d, 0, sizeof(d));
    acv_ref_cross_entropy_backward(d, x, none, w, 3, 4, 0.1f, 1.0f);
    for (int i = 0; i < 12; i++) assert_true(d[i] == 0.0f);
}

/* Logits of +-100: finite, and equal to the closed forms. */
static void test_cross_entropy_large_logits(void **state)
{
    (void)state;
    /* row 0 target is the big logit: loss ~ e^-200; row 1 target is the small one: 200 */
    float x[6] = {100, -100, -100, 100, -100, 100}, t[2] = {0, 1};
    float loss = acv_ref_cross_entropy_forward(x, t, NULL, 2, 3, 0.0f);
    assert_true(isfinite(loss));
    CHECK_SCALAR(loss, (200 + log(2.0)) / 2, 1e-6);
    float d[6] = {0};
    acv_ref_cross_entropy_backward(d, x, t, NULL, 2, 3, 0.0f, 1.0f);
    for (int i = 0; i < 6; i++) assert_true(isfinite(d[i]));
    /* row 1: p = (.5, 0, .5), target 1: grad (.5, -1, .5) / 2 */
    CHECK_SCALAR(d[4], -0.5, 1e-6);
    CHECK_SCALAR(d[5], 0.25, 1e-6);
    assert_true(fabsf(d[0]) < 1e-30f);
    loss = acv_ref_cross_entropy_forward(x, t, NULL, 2, 3, 0.1f);
    assert_true(isfinite(loss) && loss > 100.0f);
}

/* The loss does not depend on the thread count (fixed-chunk reduction). */
static void test_loss_threads(void **state)
{
    (void)state;
    const int N = 4000, K = 10;
    acv_rng r;
    acv_rng_seed(&r, 12);
    float *x = FALLOC(N * K), *t = FALLOC(N), *tb = FALLOC(N * K);
    fill(x, N * K, &r, -5, 5);
    fill(tb, N * K, &r, 0, 1);
    for (int i = 0; i < N; i++) t[i] = (float)acv_rng_below(&r, K);
    float a[4], b[4];
    int nt = omp_get_max_threads();
    for (int pass = 0; pass < 2; pass++) {
        omp_set_num_threads(pass == 0 ? 1 : 3);
        float *o = pass == 0 ? a : b;
        o[0] = acv_ref_cross_entropy_forward(x, t, NULL, N, K, 0.1f);
        o[1] = acv_ref_bce_logits_forward(x, tb, (int64_t)N * K);
        o[2] = acv_ref_focal_forward(x, tb, (int64_t)N * K, 0.25f, 2.0f);
        o[3] = acv_ref_cross_entropy_soft_forward(x, tb, N, K);
    }
    omp_set_num_threads(nt);
    assert_memory_equal(a, b, sizeof(a));
    free(x); free(t); free(tb);
}

/* ---- soft-target cross-entropy -------------------------------------------------------- */

typedef struct soft_ctx { double *x; const float *xf, *t; int N, K; double scale; } soft_ctx;
static double soft_d(void *p)
{
    soft_ctx *c = p;
    double s = 0;
    for (int i = 0; i < c->N; i++) {
        const double *x = c->x + (int64_t)i * c->K;
        double mx = x[0], e = 0;
        for (int k = 1; k < c->K; k++) mx = fmax(mx, x[k]);
        for (int k = 0; k < c->K; k++) e += exp(x[k] - mx);
        for (int k = 0; k < c->K; k++) s -= c->t[(int64_t)i * c->K + k] * (x[k] - mx - log(e));
    }
    return s / c->N;
}
static void soft_bw(float *d, void *p)
{
    soft_ctx *c = p;
    acv_ref_cross_entropy_soft_backward(d, c->xf, c->t, c->N, c->K, (float)c->scale);
}

static void test_cross_entropy_soft(void **state)
{
    (void)state;
    const int N = 6, K = 5;
    acv_rng r;
    acv_rng_seed(&r, 13);
    float *x = FALLOC(N * K), *t = FALLOC(N * K);
    fill(x, N * K, &r, -3, 3);
    /* mixup-like rows: lam on one class, 1-lam on another */
    for (int i = 0; i < N; i++) {
        float lam = acv_rng_uniform(&r);
        t[i * K + acv_rng_below(&r, K)] += lam;
        t[i * K + acv_rng_below(&r, K)] += 1 - lam;
    }
    double *xd = to_d(x, N * K), *num = DALLOC(N * K);
    soft_ctx c = {xd, x, t, N, K, 1.3};
    CHECK_SCALAR(acv_ref_cross_entropy_soft_forward(x, t, N, K), soft_d(&c), 1e-5);
    num_grad(num, xd, N * K, soft_d, &c);
    CHECK_BACKWARD(soft_bw, &c, num, N * K, 1.3);
    /* one-hot soft targets equal the hard cross-entropy, loss and gradient */
    float *oh = FALLOC(N * K), *hard = FALLOC(N), *d1 = FALLOC(N * K), *d2 = FALLOC(N * K);
    for (int i = 0; i < N; i++) {
        int y = (int)acv_rng_below(&r, K);
        hard[i] = (float)y;
        oh[i * K + y] = 1;
    }
    CHECK_SCALAR(acv_ref_cross_entropy_soft_forward(x, oh, N, K),
                 acv_ref_cross_entropy_forward(x, hard, NULL, N, K, 0.0f), 1e-6);
    acv_ref_cross_entropy_soft_backward(d1, x, oh, N, K, 1.0f);
    acv_ref_cross_entropy_backward(d2, x, hard, NULL, N, K, 0.0f, 1.0f);
    double *d2d = to_d(d2, N * K);
    CHECK_CLOSE(d1, d2d, N * K, 1e-6);
    /* logits of +-100 */
    float xb[3] = {100, -100, 0}, tb[3] = {0.5f, 0.5f, 0};
    float l = acv_ref_cross_entropy_soft_forward(xb, tb, 1, 3);
    CHECK_SCALAR(l, 0.5 * 200, 1e-6);
    free(x); free(t); free(xd); free(num); free(oh); free(hard); free(d1); free(d2); free(d2d);
}

/* ---- BCE with logits and focal loss --------------------------------------------------- */

typedef struct bin_ctx {
    double *x;
    const float *xf, *t;
    int64_t n;
    double alpha, gamma, scale;
    bool focal;
} bin_ctx;

/* The direct formulas in double: BCE = -[t log p + (1-t) log(1-p)] with log p taken as
 * -log1p(exp(-x)) (exact for the moderate logits of the finite-difference cases);
 * focal as torchvision writes it. */
static double bin_d(void *p)
{
    bin_ctx *c = p;
    double s = 0;
    for (int64_t i = 0; i < c->n; i++) {
        double x = c->x[i], t = c->t[i];
        double logp = -log1p(exp(-x)), log1mp = -log1p(exp(x));
        double ce = -(t * logp + (1 - t) * log1mp);
        if (!c->focal) {
            s += ce;
            continue;
        }
        double pr = 1 / (1 + exp(-x));
        double p_t = pr * t + (1 - pr) * (1 - t);
        double l = ce * pow(1 - p_t, c->gamma);
        if (c->alpha >= 0) l *= c->alpha * t + (1 - c->alpha) * (1 - t);
        s += l;
    }
    return s / (double)c->n;
}
static void bin_bw(float *d, void *p)
{
    bin_ctx *c = p;
    if (c->focal)
        acv_ref_focal_backward(d, c->xf, c->t, c->n, (float)c->alpha, (float)c->gamma, (float)c->scale);
    else
        acv_ref_bce_logits_backward(d, c->xf, c->t, c->n, (float)c->scale);
}
static float bin_fw(const bin_ctx *c)
{
    return c->focal ? acv_ref_focal_forward(c->xf, c->t, c->n, (float)c->alpha, (float)c->gamma)
                    : acv_ref_bce_logits_forward(c->xf, c->t, c->n);
}

static void run_bin_case(bool focal, double alpha, double gamma, bool soft_targets)
{
    const int64_t n = 64;
    acv_rng r;
    acv_rng_seed3(&r, 14, (uint64_t)(alpha * 100 + 7), (uint64_t)(gamma * 10) + soft_targets);
    float *x = FALLOC(n), *t = FALLOC(n);
    fill(x, n, &r, -6, 6);
    for (int64_t i = 0; i < n; i++)
        t[i] = soft_targets ? acv_rng_uniform(&r) : (float)acv_rng_below(&r, 2);
    double *xd = to_d(x, n), *num = DALLOC(n);
    bin_ctx c = {xd, x, t, n, alpha, gamma, 0.6, focal};
    CHECK_SCALAR(bin_fw(&c), bin_d(&c), 1e-5);
    num_grad(num, xd, n, bin_d, &c);
    CHECK_BACKWARD(bin_bw, &c, num, n, 0.6);
    free(x); free(t); free(xd); free(num);
}

static void test_bce_logits(void **state)
{
    (void)state;
    run_bin_case(false, 0, 0, false);
    run_bin_case(false, 0, 0, true);
    /* +-100 with both targets: softplus form, no overflow, no log(0) */
    const float x[4] = {100, 100, -100, -100}, t[4] = {0, 1, 0, 1};
    float l = acv_ref_bce_logits_forward(x, t, 4);
    CHECK_SCALAR(l, (100 + 0 + 0 + 100) / 4.0, 1e-6);
    float d[4] = {0};
    acv_ref_bce_logits_backward(d, x, t, 4, 1.0f);
    CHECK_SCALAR(d[0], 0.25, 1e-6);
    CHECK_SCALAR(d[3], -0.25, 1e-6);
    assert_true(fabsf(d[1]) < 1e-30f && fabsf(d[2]) < 1e-30f);
    /* +-1000 overflows exp() even in double unless the stable form is used */
    const float xh[2] = {1000, -1000}, th[2] = {0, 1};
    CHECK_SCALAR(acv_ref_bce_logits_forward(xh, th, 2), 1000.0, 1e-6);
    CHECK_SCALAR(acv_ref_focal_forward(xh, th, 2, 0.25f, 2.0f), (0.75 + 0.25) * 1000 / 2, 1e-6);
    float th2[2] = {1, 1}, xc[4] = {1000, -1000, -1000, 1000};
    CHECK_SCALAR(acv_ref_cross_entropy_forward(xc, th2, NULL, 2, 2, 0.0f), 1000.0, 1e-6);
}

static void test_focal(void **state)
{
    (void)state;
    run_bin_case(true, 0.25, 2.0, false);  /* torchvision defaults */
    run_bin_case(true, -1.0, 2.0, false);  /* alpha disabled */
    run_bin_case(true, 0.25, 0.5, false);  /* gamma < 1 */
    run_bin_case(true, 0.5, 1.5, true);    /* soft targets */
    /* gamma = 0 and no alpha: exactly BCE with logits */
    acv_rng r;
    acv_rng_seed(&r, 15);
    float x[50], t[50], d1[50] = {0}, d2[50] = {0};
    fill(x, 50, &r, -8, 8);
    for (int i = 0; i < 50; i++) t[i] = (float)(i % 2);
    CHECK_SCALAR(acv_ref_focal_forward(x, t, 50, -1.0f, 0.0f), acv_ref_bce_logits_forward(x, t, 50),
                 1e-6);
    acv_ref_focal_backward(d1, x, t, 50, -1.0f, 0.0f, 1.0f);
    acv_ref_bce_logits_backward(d2, x, t, 50, 1.0f);
    for (int i = 0; i < 50; i++) assert_true(fabsf(d1[i] - d2[i]) <= 1e-6f * fabsf(d2[i]) + 1e-12f);
    /* +-100: well-classified elements cost ~0, badly classified ones alpha_t * 100 */
    const float xb[4] = {100, -100, 100, -100}, tb[4] = {1, 0, 0, 1};
    float l = acv_ref_focal_forward(xb, tb, 4, 0.25f, 2.0f);
    CHECK_SCALAR(l, (0.75 * 100 + 0.25 * 100) / 4, 1e-6);
    float d[4] = {0};
    acv_ref_focal_backward(d, xb, tb, 4, 0.25f, 2.0f, 1.0f);
    for (int i = 0; i < 4; i++) assert_true(isfinite(d[i]));
    /* badly classified: d/dx = a_t * (p - t) / n (the focal factor is 1 and flat) */
    CHECK_SCALAR(d[2], 0.75 * 1 / 4.0, 1e-6);
    CHECK_SCALAR(d[3], 0.25 * -1 / 4.0, 1e-6);
    assert_true(fabsf(d[0]) < 1e-30f && fabsf(d[1]) < 1e-30f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cross_entropy),
        cmocka_unit_test(test_cross_entropy_numbers),
        cmocka_unit_test(test_cross_entropy_large_logits),
        cmocka_unit_test(test_cross_entropy_soft),
        cmocka_unit_test(test_bce_logits),
        cmocka_unit_test(test_focal),
        cmocka_unit_test(test_loss_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
