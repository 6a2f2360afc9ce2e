/* Reference pointwise, normalization and shape kernels (src/nn/ref/{act,binary,norm,shape,
 * linear,softmax,dropout}.c).
 *
 * Each kernel's float forward is checked against a double-precision forward written here
 * from the op's definition (PyTorch semantics), and its backward against central finite
 * differences of that double forward for L = sum(out * g) with a random g. Also checked:
 * backward adds into existing gradients (two calls give twice one call), NULL gradients are
 * skipped without changing the others, the gradients PyTorch defines at activation kinks,
 * broadcasting patterns, batch-norm running statistics, stability for logits of +-100,
 * and that results are identical for 1 and 3 OpenMP threads. */
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

/* got == 2 * once, up to float rounding of the second addition. */
static void check_doubled_(const float *got, const float *once, int64_t n, int line)
{
    double *w = DALLOC(n);
    for (int64_t i = 0; i < n; i++) w[i] = 2.0 * once[i];
    check_close_(got, w, n, 1e-6, "accumulated gradient", line);
    free(w);
}
#define CHECK_DOUBLED(got, once, n) check_doubled_((got), (once), (n), __LINE__)

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

static double dot(const double *a, const double *b, int64_t n)
{
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* ---- activations -------------------------------------------------------------------- */

static double act_d(acv_act k, double x, double alpha)
{
    switch (k) {
    case ACV_ACT_RELU: return x > 0 ? x : 0;
    case ACV_ACT_RELU6: return fmin(fmax(x, 0), 6);
    case ACV_ACT_LEAKY_RELU: return x > 0 ? x : alpha * x;
    case ACV_ACT_SILU: return x / (1 + exp(-x));
    case ACV_ACT_SIGMOID: return 1 / (1 + exp(-x));
    case ACV_ACT_HARDSWISH: return x * fmin(fmax(x + 3, 0), 6) / 6;
    case ACV_ACT_HARDSIGMOID: return fmin(fmax(x + 3, 0), 6) / 6;
    case ACV_ACT_TANH: return tanh(x);
    case ACV_ACT_GELU: return 0.5 * x * (1 + erf(x / sqrt(2.0)));
    default: return NAN;
    }
}

typedef struct act_ctx { acv_act k; double alpha; double *x; const double *g; int64_t n; } act_ctx;
static double act_loss(void *p)
{
    act_ctx *c = p;
    double s = 0;
    for (int64_t i = 0; i < c->n; i++) s += c->g[i] * act_d(c->k, c->x[i], c->alpha);
    return s;
}

static void test_act(void **state)
{
    (void)state;
    const int64_t n = 300;
    const float alpha = 0.1f;
    acv_rng r;
    acv_rng_seed(&r, 1);
    float *x = FALLOC(n), *g = FALLOC(n), *y = FALLOC(n), *dx = FALLOC(n), *dx1 = FALLOC(n);
    for (int k = 0; k < ACV_ACT_COUNT; k++) {
        /* stay 0.01 away from the kinks (0, 6, +-3) so central differences are exact */
        for (int64_t i = 0; i < n; i++) {
            float v;
            do v = -9.0f + 18.0f * acv_rng_uniform(&r);
            while (fabsf(v) < 0.01f || fabsf(v - 6) < 0.01f || fabsf(fabsf(v) - 3) < 0.01f);
            x[i] = v;
        }
        fill(g, n, &r, -1, 1);
        double *xd = to_d(x, n), *gd = to_d(g, n), *yd = DALLOC(n), *num = DALLOC(n);
        for (int64_t i = 0; i < n; i++) yd[i] = act_d(k, xd[i], alpha);
        acv_ref_act_forward(y, x, n, k, alpha);
        CHECK_CLOSE(y, yd, n, 1e-5);

        act_ctx c = {k, alpha, xd, gd, n};
        num_grad(num, xd, n, act_loss, &c);
        memset(dx, 0, n * sizeof(float));
        acv_ref_act_backward(dx, g, x, y, n, k, alpha);
        CHECK_CLOSE(dx, num, n, 1e-3);
        memcpy(dx1, dx, n * sizeof(float));
        acv_ref_act_backward(dx, g, x, y, n, k, alpha);
        CHECK_DOUBLED(dx, dx1, n);
        acv_ref_act_backward(NULL, g, x, y, n, k, alpha); /* skipped, must not crash */

        /* in place */
        memcpy(dx, x, n * sizeof(float));
        acv_ref_act_forward(dx, dx, n, k, alpha);
        assert_memory_equal(dx, y, n * sizeof(float));
        free(xd); free(gd); free(yd); free(num);
    }
    free(x); free(g); free(y); free(dx); free(dx1);
}

/* The gradient PyTorch's backward gives at each kink, for d_out = 1. */
static void test_act_kinks(void **state)
{
    (void)state;
    const float pts[4] = {0.0f, 6.0f, -3.0f, 3.0f};
    static const struct { acv_act k; float want[4]; } cases[] = {
        {ACV_ACT_RELU, {0, 1, 0, 1}},
        {ACV_ACT_RELU6, {0, 0, 0, 1}},
        {ACV_ACT_LEAKY_RELU, {0.1f, 1, 0.1f, 1}},
        {ACV_ACT_HARDSWISH, {0.5f, 1, -0.5f, 1.5f}},
        {ACV_ACT_HARDSIGMOID, {1.0f / 6, 0, 0, 0}},
    };
    const float ones[4] = {1, 1, 1, 1};
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        float y[4], d[4] = {0};
        acv_ref_act_forward(y, pts, 4, cases[c].k, 0.1f);
        acv_ref_act_backward(d, ones, pts, y, 4, cases[c].k, 0.1f);
        for (int i = 0; i < 4; i++) {
            if (fabsf(d[i] - cases[c].want[i]) > 1e-6f)
                fail_msg("act %d at %g: grad %g, PyTorch gives %g", (int)cases[c].k, pts[i], d[i],
                         cases[c].want[i]);
        }
    }
    /* saturation: finite values and exact limits at +-100 */
    const float big[2] = {-100.0f, 100.0f};
    float y[2], d[2];
    for (int k = 0; k < ACV_ACT_COUNT; k++) {
        acv_ref_act_forward(y, big, 2, k, 0.1f);
        d[0] = d[1] = 0;
        acv_ref_act_backward(d, ones, big, y, 2, k, 0.1f);
        for (int i = 0; i < 2; i++) assert_true(isfinite(y[i]) && isfinite(d[i]));
    }
    acv_ref_act_forward(y, big, 2, ACV_ACT_SIGMOID, 0);
    assert_true(y[0] >= 0.0f && y[0] < 1e-40f);
    assert_true(y[1] == 1.0f);
    acv_ref_act_forward(y, big, 2, ACV_ACT_SILU, 0);
    assert_true(fabsf(y[0]) < 1e-30f && y[1] == 100.0f);
    acv_ref_act_forward(y, big, 2, ACV_ACT_TANH, 0);
    assert_true(y[0] == -1.0f && y[1] == 1.0f);
}

/* ---- broadcasting binary ------------------------------------------------------------ */

static int64_t numel6(const int64_t *s)
{
    int64_t n = 1;
    for (int d = 0; d < ACV_BCAST_DIMS; d++) n *= s[d];
    return n;
}

/* Flat offsets into a and b of output element i. */
static void bin_offsets(const acv_bcast *s, int64_t i, int64_t *ia, int64_t *ib)
{
    int64_t t = i, a = 0, b = 0, ma = 1, mb = 1;
    for (int d = ACV_BCAST_DIMS - 1; d >= 0; d--) {
        int64_t c = t % s->out[d];
        t /= s->out[d];
        a += (s->a[d] == 1 ? 0 : c) * ma;
        b += (s->b[d] == 1 ? 0 : c) * mb;
        ma *= s->a[d];
        mb *= s->b[d];
    }
    *ia = a;
    *ib = b;
}

static double binop_d(acv_binop op, double a, double b)
{
    switch (op) {
    case ACV_BIN_ADD: return a + b;
    case ACV_BIN_SUB: return a - b;
    case ACV_BIN_MUL: return a * b;
    default: return a / b;
    }
}

typedef struct bin_ctx { const acv_bcast *s; acv_binop op; double *a, *b; const double *g; } bin_ctx;
static double bin_loss(void *p)
{
    bin_ctx *c = p;
    double sum = 0;
    for (int64_t i = 0; i < numel6(c->s->out); i++) {
        int64_t ia, ib;
        bin_offsets(c->s, i, &ia, &ib);
        sum += c->g[i] * binop_d(c->op, c->a[ia], c->b[ib]);
    }
    return sum;
}

/* Analytic double gradients (for the cases too big for finite differences). */
static void bin_grad_d(double *da, double *db, const bin_ctx *c)
{
    for (int64_t i = 0; i < numel6(c->s->out); i++) {
        int64_t ia, ib;
        bin_offsets(c->s, i, &ia, &ib);
        double a = c->a[ia], b = c->b[ib], g = c->g[i];
        switch (c->op) {
        case ACV_BIN_ADD: da[ia] += g; db[ib] += g; break;
        case ACV_BIN_SUB: da[ia] += g; db[ib] -= g; break;
        case ACV_BIN_MUL: da[ia] += g * b; db[ib] += g * a; break;
        default: da[ia] += g / b; db[ib] -= g * a / (b * b); break;
        }
    }
}

/* Runs all four ops on one broadcast case; fd: finite differences (else analytic). */
static void run_binary_case(const int64_t sa[6], const int64_t sb[6], bool fd)
{
    acv_bcast s;
    for (int d = 0; d < 6; d++) {
        s.a[d] = sa[d];
        s.b[d] = sb[d];
        s.out[d] = sa[d] > sb[d] ? sa[d] : sb[d];
    }
    const int64_t na = numel6(s.a), nb = numel6(s.b), no = numel6(s.out);
    acv_rng r;
    acv_rng_seed3(&r, 2, (uint64_t)na, (uint64_t)nb);
    float *a = FALLOC(na), *b = FALLOC(nb), *g = FALLOC(no), *y = FALLOC(no);
    float *da = FALLOC(na), *db = FALLOC(nb), *da1 = FALLOC(na), *db1 = FALLOC(nb);
    fill(a, na, &r, -2, 2);
    /* |b| in [0.5, 2] so division stays well conditioned */
    for (int64_t i = 0; i < nb; i++) b[i] = (0.5f + 1.5f * acv_rng_uniform(&r)) * (i % 2 ? -1 : 1);
    fill(g, no, &r, -1, 1);
    double *ad = to_d(a, na), *bd = to_d(b, nb), *gd = to_d(g, no), *yd = DALLOC(no);
    double *wa = DALLOC(na), *wb = DALLOC(nb);
    for (int op = ACV_BIN_ADD; op <= ACV_BIN_DIV; op++) {
        for (int64_t i = 0; i < no; i++) {
            int64_t ia, ib;
            bin_offsets(&s, i, &ia, &ib);
            yd[i] = binop_d(op, ad[ia], bd[ib]);
        }
        acv_ref_binary_forward(y, a, b, &s, op);
        CHECK_CLOSE(y, yd, no, 1e-6);

        bin_ctx c = {&s, op, ad, bd, gd};
        if (fd) {
            num_grad(wa, ad, na, bin_loss, &c);
            num_grad(wb, bd, nb, bin_loss, &c);
        } else {
            memset(wa, 0, na * sizeof(double));
            memset(wb, 0, nb * sizeof(double));
            bin_grad_d(wa, wb, &c);
        }
        memset(da, 0, na * sizeof(float));
        memset(db, 0, nb * sizeof(float));
        acv_ref_binary_backward(da, db, g, a, b, &s, op);
        CHECK_CLOSE(da, wa, na, 1e-3);
        CHECK_CLOSE(db, wb, nb, 1e-3);
        memcpy(da1, da, na * sizeof(float));
        memcpy(db1, db, nb * sizeof(float));
        acv_ref_binary_backward(da, db, g, a, b, &s, op);
        CHECK_DOUBLED(da, da1, na);
        CHECK_DOUBLED(db, db1, nb);
        /* each gradient alone: the other is skipped, this one unchanged */
        memset(da, 0, na * sizeof(float));
        acv_ref_binary_backward(da, NULL, g, a, b, &s, op);
        assert_memory_equal(da, da1, na * sizeof(float));
        memset(db, 0, nb * sizeof(float));
        acv_ref_binary_backward(NULL, db, g, a, b, &s, op);
        assert_memory_equal(db, db1, nb * sizeof(float));
        if (op == ACV_BIN_ADD || op == ACV_BIN_SUB) {
            /* the inputs are not needed */
            memset(db, 0, nb * sizeof(float));
            acv_ref_binary_backward(NULL, db, g, NULL, NULL, &s, op);
            assert_memory_equal(db, db1, nb * sizeof(float));
        }
        /* same result with 1 and 3 threads */
        int nt = omp_get_max_threads();
        omp_set_num_threads(3);
        memset(da, 0, na * sizeof(float));
        memset(db, 0, nb * sizeof(float));
        acv_ref_binary_backward(da, db, g, a, b, &s, op);
        omp_set_num_threads(1);
        memset(da1, 0, na * sizeof(float));
        memset(db1, 0, nb * sizeof(float));
        acv_ref_binary_backward(da1, db1, g, a, b, &s, op);
        omp_set_num_threads(nt);
        assert_memory_equal(da, da1, na * sizeof(float));
        assert_memory_equal(db, db1, nb * sizeof(float));
    }
    free(a); free(b); free(g); free(y); free(da); free(db); free(da1); free(db1);
    free(ad); free(bd); free(gd); free(yd); free(wa); free(wb);
}

static void test_binary_broadcast(void **state)
{
    (void)state;
    static const int64_t cases[][2][6] = {
        {{1, 1, 2, 3, 4, 5}, {1, 1, 2, 3, 4, 5}}, /* equal shapes */
        {{1, 1, 2, 3, 1, 1}, {1, 1, 2, 3, 4, 5}}, /* channel broadcast (N,C,1,1) x (N,C,H,W) */
        {{1, 1, 2, 3, 4, 5}, {1, 1, 2, 3, 1, 1}}, /* the same, other side */
        {{1, 1, 2, 3, 4, 5}, {1, 1, 1, 1, 1, 1}}, /* scalar */
        {{1, 1, 1, 1, 1, 1}, {1, 1, 2, 3, 4, 5}}, /* scalar on the left */
        {{1, 1, 1, 3, 1, 1}, {1, 1, 2, 3, 4, 5}}, /* bias (1,C,1,1) */
        {{1, 1, 2, 1, 4, 1}, {1, 1, 1, 3, 1, 5}}, /* broadcast on both sides */
        {{2, 1, 3, 1, 2, 1}, {1, 2, 1, 2, 1, 3}}, /* all six dims, alternating */
        {{1, 1, 1, 1, 1, 1}, {1, 1, 1, 1, 1, 1}}, /* one element */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        run_binary_case(cases[i][0], cases[i][1], true);
    /* big enough for the parallel paths */
    static const int64_t big[][2][6] = {
        {{1, 1, 4, 16, 32, 32}, {1, 1, 4, 16, 32, 32}},
        {{1, 1, 4, 16, 1, 1}, {1, 1, 4, 16, 32, 32}},
        {{1, 1, 1, 16, 1, 1}, {1, 1, 4, 16, 32, 32}},
        {{1, 1, 4, 16, 32, 32}, {1, 1, 1, 1, 1, 1}},
        {{1, 1, 4, 1, 32, 1}, {1, 1, 1, 16, 1, 32}},
    };
    for (size_t i = 0; i < sizeof(big) / sizeof(big[0]); i++)
        run_binary_case(big[i][0], big[i][1], false);
}

/* ---- concat and slice ------------------------------------------------------------------ */

typedef struct lin_ctx { double *x; const double *g; const double *sel; int64_t n; } lin_ctx;

static void test_concat(void **state)
{
    (void)state;
    enum { OUTER = 3, INNER = 4, NIN = 3 };
    const int sizes[NIN] = {2, 3, 1};
    const int total = 6;
    acv_rng r;
    acv_rng_seed(&r, 3);
    float *ins[NIN], *d_ins[NIN], *d1[NIN];
    for (int i = 0; i < NIN; i++) {
        ins[i] = FALLOC(OUTER * sizes[i] * INNER);
        d_ins[i] = FALLOC(OUTER * sizes[i] * INNER);
        d1[i] = FALLOC(OUTER * sizes[i] * INNER);
        fill(ins[i], OUTER * sizes[i] * INNER, &r, -1, 1);
    }
    const int64_t no = OUTER * total * INNER;
    float *y = FALLOC(no), *g = FALLOC(no);
    fill(g, no, &r, -1, 1);
    acv_ref_concat_forward(y, (const float *const *)ins, sizes, NIN, OUTER, INNER);
    /* definition: out[o, off_i + k, j] = ins[i][o, k, j] */
    int off = 0;
    for (int i = 0; i < NIN; i++) {
        for (int o = 0; o < OUTER; o++)
            for (int k = 0; k < sizes[i]; k++)
                for (int j = 0; j < INNER; j++)
                    assert_true(y[(o * total + off + k) * INNER + j] ==
                                ins[i][(o * sizes[i] + k) * INNER + j]);
        off += sizes[i];
    }
    /* backward: the gradient of sum(g * out) with respect to ins[i] is g's slice; the
     * op is linear so finite differences are the slice itself, checked exactly */
    acv_ref_concat_backward(d_ins, g, sizes, NIN, OUTER, INNER);
    off = 0;
    for (int i = 0; i < NIN; i++) {
        for (int o = 0; o < OUTER; o++)
            for (int k = 0; k < sizes[i]; k++)
                for (int j = 0; j < INNER; j++)
                    assert_true(d_ins[i][(o * sizes[i] + k) * INNER + j] ==
                                g[(o * total + off + k) * INNER + j]);
        off += sizes[i];
        memcpy(d1[i], d_ins[i], OUTER * sizes[i] * INNER * sizeof(float));
    }
    acv_ref_concat_backward(d_ins, g, sizes, NIN, OUTER, INNER);
    for (int i = 0; i < NIN; i++) CHECK_DOUBLED(d_ins[i], d1[i], OUTER * sizes[i] * INNER);
    /* a NULL entry is skipped; the others still receive their part */
    float *partial[NIN] = {NULL, d_ins[1], NULL};
    acv_ref_concat_backward(partial, g, sizes, NIN, OUTER, INNER);
    for (int j = 0; j < OUTER * sizes[1] * INNER; j++)
        assert_true(fabsf(d_ins[1][j] - 3 * d1[1][j]) <= 1e-6f * fabsf(d1[1][j]));
    for (int i = 0; i < NIN; i++) { free(ins[i]); free(d_ins[i]); free(d1[i]); }
    free(y); free(g);
}

static double slice_loss(void *p)
{
    lin_ctx *c = p; /* sel: for each out element the input index, as double */
    double s = 0;
    for (int64_t i = 0; i < c->n; i++) s += c->g[i] * c->x[(int64_t)c->sel[i]];
    return s;
}

static void test_slice(void **state)
{
    (void)state;
    enum { OUTER = 2, AX = 9, INNER = 3 };
    static const int64_t params[][3] = {{1, 3, 2}, {0, 9, 1}, {2, 4, 1}, {8, 1, 5}, {0, 3, 4}};
    acv_rng r;
    acv_rng_seed(&r, 4);
    const int64_t ni = OUTER * AX * INNER;
    float *x = FALLOC(ni), *dx = FALLOC(ni), *dx1 = FALLOC(ni);
    fill(x, ni, &r, -1, 1);
    for (size_t p = 0; p < sizeof(params) / sizeof(params[0]); p++) {
        int64_t start = params[p][0], len = params[p][1], step = params[p][2];
        int64_t no = OUTER * len * INNER;
        float *y = FALLOC(no), *g = FALLOC(no);
        double *sel = DALLOC(no), *yd = DALLOC(no), *num = DALLOC(ni);
        fill(g, no, &r, -1, 1);
        for (int64_t o = 0; o < OUTER; o++)
            for (int64_t k = 0; k < len; k++)
                for (int64_t j = 0; j < INNER; j++) {
                    int64_t oi = (o * len + k) * INNER + j;
                    sel[oi] = (double)((o * AX + start + k * step) * INNER + j);
                    yd[oi] = x[(int64_t)sel[oi]];
                }
        acv_ref_slice_forward(y, x, OUTER, AX, INNER, start, len, step);
        CHECK_CLOSE(y, yd, no, 1e-7);
        double *xd = to_d(x, ni), *gd = to_d(g, no);
        lin_ctx c = {xd, gd, sel, no};
        num_grad(num, xd, ni, slice_loss, &c);
        memset(dx, 0, ni * sizeof(float));
        acv_ref_slice_backward(dx, g, OUTER, AX, INNER, start, len, step);
        CHECK_CLOSE(dx, num, ni, 1e-3);
        memcpy(dx1, dx, ni * sizeof(float));
        acv_ref_slice_backward(dx, g, OUTER, AX, INNER, start, len, step);
        CHECK_DOUBLED(dx, dx1, ni);
        acv_ref_slice_backward(NULL, g, OUTER, AX, INNER, start, len, step);
        free(y); free(g); free(sel); free(yd); free(num); free(xd); free(gd);
    }
    free(x); free(dx); free(dx1);
}

/* ---- linear ----------------------------------------------------------------------------- */

typedef struct linear_ctx { double *x, *w, *b; const double *g; int M, IN, OUT; } linear_ctx;
static void linear_d(double *y, const linear_ctx *c)
{
    for (int m = 0; m < c->M; m++)
        for (int o = 0; o < c->OUT; o++) {
            double s = c->b ? c->b[o] : 0.0;
            for (int i = 0; i < c->IN; i++) s += c->x[m * c->IN + i] * c->w[o * c->IN + i];
            y[m * c->OUT + o] = s;
        }
}
static double linear_loss(void *p)
{
    linear_ctx *c = p;
    double *y = DALLOC(c->M * c->OUT);
    linear_d(y, c);
    double s = dot(y, c->g, c->M * c->OUT);
    free(y);
    return s;
}

static void test_linear(void **state)
{
    (void)state;
    const int M = 5, IN = 7, OUT = 4;
    acv_rng r;
    acv_rng_seed(&r, 5);
    float *x = FALLOC(M * IN), *w = FALLOC(OUT * IN), *b = FALLOC(OUT), *g = FALLOC(M * OUT);
    float *y = FALLOC(M * OUT), *dx = FALLOC(M * IN), *dw = FALLOC(OUT * IN), *db = FALLOC(OUT);
    float *dx1 = FALLOC(M * IN), *dw1 = FALLOC(OUT * IN), *db1 = FALLOC(OUT);
    fill(x, M * IN, &r, -1, 1);
    fill(w, OUT * IN, &r, -1, 1);
    fill(b, OUT, &r, -1, 1);
    fill(g, M * OUT, &r, -1, 1);
    double *xd = to_d(x, M * IN), *wd = to_d(w, OUT * IN), *bd = to_d(b, OUT), *gd = to_d(g, M * OUT);
    double *yd = DALLOC(M * OUT);
    linear_ctx c = {xd, wd, bd, gd, M, IN, OUT};
    linear_d(yd, &c);
    acv_ref_linear_forward(y, x, w, b, M, IN, OUT);
    CHECK_CLOSE(y, yd, M * OUT, 1e-5);
    c.b = NULL;
    linear_d(yd, &c);
    acv_ref_linear_forward(y, x, w, NULL, M, IN, OUT);
    CHECK_CLOSE(y, yd, M * OUT, 1e-5);
    c.b = bd;

    double *nx = DALLOC(M * IN), *nw = DALLOC(OUT * IN), *nb = DALLOC(OUT);
    num_grad(nx, xd, M * IN, linear_loss, &c);
    num_grad(nw, wd, OUT * IN, linear_loss, &c);
    num_grad(nb, bd, OUT, linear_loss, &c);
    acv_ref_linear_backward(dx, dw, db, g, x, w, M, IN, OUT);
    CHECK_CLOSE(dx, nx, M * IN, 1e-3);
    CHECK_CLOSE(dw, nw, OUT * IN, 1e-3);
    CHECK_CLOSE(db, nb, OUT, 1e-3);
    memcpy(dx1, dx, M * IN * sizeof(float));
    memcpy(dw1, dw, OUT * IN * sizeof(float));
    memcpy(db1, db, OUT * sizeof(float));
    acv_ref_linear_backward(dx, dw, db, g, x, w, M, IN, OUT);
    CHECK_DOUBLED(dx, dx1, M * IN);
    CHECK_DOUBLED(dw, dw1, OUT * IN);
    CHECK_DOUBLED(db, db1, OUT);
    /* one gradient at a time */
    memset(dw, 0, OUT * IN * sizeof(float));
    acv_ref_linear_backward(NULL, dw, NULL, g, x, w, M, IN, OUT);
    CHECK_CLOSE(dw, nw, OUT * IN, 1e-3);
    memset(db, 0, OUT * sizeof(float));
    acv_ref_linear_backward(NULL, NULL, db, g, x, w, M, IN, OUT);
    assert_memory_equal(db, db1, OUT * sizeof(float));
    memset(dx, 0, M * IN * sizeof(float));
    acv_ref_linear_backward(dx, NULL, NULL, g, NULL, w, M, IN, OUT); /* in unused for d_in */
    CHECK_CLOSE(dx, nx, M * IN, 1e-3);
    free(x); free(w); free(b); free(g); free(y); free(dx); free(dw); free(db);
    free(dx1); free(dw1); free(db1); free(xd); free(wd); free(bd); free(gd); free(yd);
    free(nx); free(nw); free(nb);
}

/* ---- softmax ------------------------------------------------------------------------- */

typedef struct sm_ctx { double *x; const double *g; int64_t outer, axis, inner; bool log; } sm_ctx;
static void softmax_d(double *y, const sm_ctx *c)
{
    for (int64_t o = 0; o < c->outer; o++)
        for (int64_t i = 0; i < c->inner; i++) {
            const double *x = c->x + o * c->axis * c->inner + i;
            double mx = -INFINITY, s = 0;
            for (int64_t k = 0; k < c->axis; k++) mx = fmax(mx, x[k * c->inner]);
            for (int64_t k = 0; k < c->axis; k++) s += exp(x[k * c->inner] - mx);
            for (int64_t k = 0; k < c->axis; k++) {
                double v = x[k * c->inner] - mx;
                y[(o * c->axis + k) * c->inner + i] = c->log ? v - log(s) : exp(v) / s;
            }
        }
}
static double softmax_loss(void *p)
{
    sm_ctx *c = p;
    int64_t n = c->outer * c->axis * c->inner;
    double *y = DALLOC(n);
    softmax_d(y, c);
    double s = dot(y, c->g, n);
    free(y);
    return s;
}

static void test_softmax(void **state)
{
    (void)state;
    static const int64_t shapes[][3] = {{3, 5, 4}, {4, 6, 1}, {1, 3, 70}, {2, 1, 3}};
    acv_rng r;
    acv_rng_seed(&r, 6);
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        for (int lg = 0; lg < 2; lg++) {
            int64_t outer = shapes[s][0], axis = shapes[s][1], inner = shapes[s][2];
            int64_t n = outer * axis * inner;
            float *x = FALLOC(n), *y = FALLOC(n), *g = FALLOC(n), *dx = FALLOC(n), *dx1 = FALLOC(n);
            fill(x, n, &r, -4, 4);
            fill(g, n, &r, -1, 1);
            double *xd = to_d(x, n), *gd = to_d(g, n), *yd = DALLOC(n), *num = DALLOC(n);
            sm_ctx c = {xd, gd, outer, axis, inner, lg};
            softmax_d(yd, &c);
            acv_ref_softmax_forward(y, x, outer, axis, inner, lg);
            CHECK_CLOSE(y, yd, n, 1e-5);
            num_grad(num, xd, n, softmax_loss, &c);
            acv_ref_softmax_backward(dx, g, y, outer, axis, inner, lg);
            CHECK_CLOSE(dx, num, n, 1e-3);
            memcpy(dx1, dx, n * sizeof(float));
            acv_ref_softmax_backward(dx, g, y, outer, axis, inner, lg);
            CHECK_DOUBLED(dx, dx1, n);
            acv_ref_softmax_backward(NULL, g, y, outer, axis, inner, lg);
            free(x); free(y); free(g); free(dx); free(dx1); free(xd); free(gd); free(yd); free(num);
        }
    }
    /* logits of +-100: no overflow; softmax sums to 1, log-softmax matches exactly */
    const float big[6] = {100, -100, 99, -100, 100, 0};
    float y[6], ly[6];
    acv_ref_softmax_forward(y, big, 2, 3, 1, false);
    acv_ref_softmax_forward(ly, big, 2, 3, 1, true);
    for (int i = 0; i < 6; i++) assert_true(isfinite(y[i]) && isfinite(ly[i]));
    assert_true(fabsf(y[0] + y[1] + y[2] - 1.0f) < 1e-6f);
    assert_true(fabsf(y[0] - (float)(1 / (1 + exp(-1.0)))) < 1e-6f);
    assert_true(fabsf(ly[1] - (float)(-200 - log1p(exp(-1.0)))) < 1e-4f);
    assert_true(fabsf(ly[4]) < 1e-6f && fabsf(ly[3] + 200) < 1e-4f);
}

/* ---- layer normalization ------------------------------------------------------------- */

typedef struct ln_ctx { double *x, *gamma, *beta; const double *g; int64_t outer, axis, inner; double eps; } ln_ctx;
static void layernorm_d(double *y, const ln_ctx *c)
{
    for (int64_t o = 0; o < c->outer; o++)
        for (int64_t i = 0; i < c->inner; i++) {
            const double *x = c->x + o * c->axis * c->inner + i;
            double m = 0, v = 0;
            for (int64_t k = 0; k < c->axis; k++) m += x[k * c->inner];
            m /= (double)c->axis;
            for (int64_t k = 0; k < c->axis; k++) v += (x[k * c->inner] - m) * (x[k * c->inner] - m);
            v /= (double)c->axis;
            for (int64_t k = 0; k < c->axis; k++)
                y[(o * c->axis + k) * c->inner + i] = (x[k * c->inner] - m) / sqrt(v + c->eps) * c->gamma[k] + c->beta[k];
        }
}
static double layernorm_loss(void *p)
{
    ln_ctx *c = p;
    int64_t n = c->outer * c->axis * c->inner;
    double *y = DALLOC(n);
    layernorm_d(y, c);
    double s = dot(y, c->g, n);
    free(y);
    return s;
}

/* Forward against a double-precision reference; input, gamma and beta gradients against
 * central differences; backward accumulates; NULL gradients are skipped. Shapes: the last
 * axis (inner 1), the channels of NCHW (inner = HW, across the 64-wide blocks), one value. */
static void test_layernorm(void **state)
{
    (void)state;
    static const int64_t shapes[][3] = {{6, 8, 1}, {2, 5, 70}, {3, 1, 4}, {1, 16, 9}};
    const float eps = 1e-5f;
    acv_rng r;
    acv_rng_seed(&r, 8);
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        int64_t outer = shapes[s][0], axis = shapes[s][1], inner = shapes[s][2];
        int64_t n = outer * axis * inner;
        float *x = FALLOC(n), *y = FALLOC(n), *g = FALLOC(n), *dx = FALLOC(n), *dx1 = FALLOC(n);
        float *ga = FALLOC(axis), *be = FALLOC(axis), *dg = FALLOC(axis), *db = FALLOC(axis);
        float *dg1 = FALLOC(axis), *db1 = FALLOC(axis);
        fill(x, n, &r, -3, 3);
        fill(g, n, &r, -1, 1);
        fill(ga, axis, &r, 0.5f, 1.5f);
        fill(be, axis, &r, -0.5f, 0.5f);
        double *xd = to_d(x, n), *gd = to_d(g, n), *gad = to_d(ga, axis), *bed = to_d(be, axis);
        double *yd = DALLOC(n), *num = DALLOC(n), *ng = DALLOC(axis), *nb = DALLOC(axis);
        ln_ctx c = {xd, gad, bed, gd, outer, axis, inner, eps};
        layernorm_d(yd, &c);
        acv_ref_layernorm_forward(y, x, ga, be, outer, axis, inner, eps);
        CHECK_CLOSE(y, yd, n, 1e-5);
        if (axis > 1) num_grad(num, xd, n, layernorm_loss, &c);
        else for (int64_t i = 0; i < n; i++) num[i] = 0; /* one value: the output is beta */
        num_grad(ng, gad, axis, layernorm_loss, &c);
        num_grad(nb, bed, axis, layernorm_loss, &c);
        acv_ref_layernorm_backward(dx, dg, db, g, x, ga, outer, axis, inner, eps);
        CHECK_CLOSE(dx, num, n, 1e-3);
        CHECK_CLOSE(dg, ng, axis, 1e-3);
        CHECK_CLOSE(db, nb, axis, 1e-3);
        memcpy(dx1, dx, n * sizeof(float));
        memcpy(dg1, dg, axis * sizeof(float));
        memcpy(db1, db, axis * sizeof(float));
        acv_ref_layernorm_backward(dx, dg, db, g, x, ga, outer, axis, inner, eps);
        CHECK_DOUBLED(dx, dx1, n);
        CHECK_DOUBLED(dg, dg1, axis);
        CHECK_DOUBLED(db, db1, axis);
        acv_ref_layernorm_backward(NULL, NULL, NULL, g, x, ga, outer, axis, inner, eps);
        /* no gamma/beta: 1 and 0 */
        for (int64_t k = 0; k < axis; k++) gad[k] = 1, bed[k] = 0;
        layernorm_d(yd, &c);
        acv_ref_layernorm_forward(y, x, NULL, NULL, outer, axis, inner, eps);
        CHECK_CLOSE(y, yd, n, 1e-5);
        free(x); free(y); free(g); free(dx); free(dx1); free(ga); free(be); free(dg); free(db); free(dg1); free(db1);
        free(xd); free(gd); free(gad); free(bed); free(yd); free(num); free(ng); free(nb);
    }
    /* a constant row: zero variance, output beta, finite */
    const float cst[4] = {2, 2, 2, 2}, gm[4] = {1, 2, 3, 4}, bt[4] = {0.5f, -1, 0, 1};
    float y[4];
    acv_ref_layernorm_forward(y, cst, gm, bt, 1, 4, 1, 1e-6f);
    for (int i = 0; i < 4; i++) assert_true(y[i] == bt[i]);
}

/* ---- dropout ------------------------------------------------------------------------- */

static void test_dropout(void **state)
{
    (void)state;
    const int64_t n = 100000;
    const float p = 0.3f;
    acv_rng r;
    acv_rng_seed(&r, 7);
    float *x = FALLOC(n), *y = FALLOC(n), *m = FALLOC(n), *y2 = FALLOC(n), *m2 = FALLOC(n);
    float *g = FALLOC(n), *dx = FALLOC(n);
    fill(x, n, &r, -1, 1);
    fill(g, n, &r, -1, 1);
    acv_ref_dropout_forward(y, m, x, n, p, 42);
    int64_t dropped = 0;
    const float keep = 1.0f / (1.0f - p);
    for (int64_t i = 0; i < n; i++) {
        assert_true(m[i] == 0.0f || m[i] == keep);
        dropped += m[i] == 0.0f;
        assert_true(y[i] == x[i] * m[i]);
    }
    /* binomial(1e5, 0.3): sd 145, so +-1000 is ~7 sd */
    assert_true(llabs(dropped - 30000) < 1000);
    /* same seed and any thread count: same mask; another seed: another mask */
    int nt = omp_get_max_threads();
    omp_set_num_threads(1);
    acv_ref_dropout_forward(y2, m2, x, n, p, 42);
    omp_set_num_threads(nt);
    assert_memory_equal(m, m2, n * sizeof(float));
    acv_ref_dropout_forward(y2, m2, x, n, p, 43);
    int64_t diff = 0;
    for (int64_t i = 0; i < n; i++) diff += m[i] != m2[i];
    assert_true(diff > n / 5);
    /* backward: out = x * mask is linear in x, so dL/dx = g * mask exactly (finite
     * differences of the double forward give the same up to rounding) */
    double *want = DALLOC(n);
    for (int64_t i = 0; i < n; i++) want[i] = (double)g[i] * m[i];
    acv_ref_dropout_backward(dx, g, m, n);
    CHECK_CLOSE(dx, want, n, 1e-6);
    acv_ref_dropout_backward(dx, g, m, n);
    for (int64_t i = 0; i < n; i++) want[i] *= 2;
    CHECK_CLOSE(dx, want, n, 1e-6);
    acv_ref_dropout_backward(NULL, g, m, n);
    /* p = 0 keeps everything; p = 1 drops everything */
    acv_ref_dropout_forward(y2, m2, x, n, 0.0f, 1);
    assert_memory_equal(y2, x, n * sizeof(float));
    acv_ref_dropout_forward(y2, m2, x, n, 1.0f, 1);
    for (int64_t i = 0; i < n; i++) assert_true(y2[i] == 0.0f && m2[i] == 0.0f);
    free(x); free(y); free(m); free(y2); free(m2); free(g); free(dx); free(want);
}

/* ---- batch normalization --------------------------------------------------------------- */

typedef struct bn_ctx {
    double *x, *gamma, *beta;
    const double *g, *rm, *rv;
    int N, C, HW;
    double eps;
    bool training;
} bn_ctx;

/* Double forward; mean/var (C) receive the batch mean and biased variance in training. */
static void bn_d(double *y, double *mean, double *var, const bn_ctx *c)
{
    for (int ch = 0; ch < c->C; ch++) {
        double mu, v;
        if (c->training) {
            double s = 0, ss = 0, cnt = (double)c->N * c->HW;
            for (int n = 0; n < c->N; n++)
                for (int i = 0; i < c->HW; i++) s += c->x[((int64_t)n * c->C + ch) * c->HW + i];
            mu = s / cnt;
            for (int n = 0; n < c->N; n++)
                for (int i = 0; i < c->HW; i++) {
                    double d = c->x[((int64_t)n * c->C + ch) * c->HW + i] - mu;
                    ss += d * d;
                }
            v = ss / cnt;
        } else {
            mu = c->rm[ch];
            v = c->rv[ch];
        }
        if (mean) mean[ch] = mu;
        if (var) var[ch] = v;
        double ga = c->gamma ? c->gamma[ch] : 1.0, be = c->beta ? c->beta[ch] : 0.0;
        for (int n = 0; n < c->N; n++)
            for (int i = 0; i < c->HW; i++) {
                int64_t k = ((int64_t)n * c->C + ch) * c->HW + i;
                y[k] = (c->x[k] - mu) / sqrt(v + c->eps) * ga + be;
            }
    }
}
static double bn_loss(void *p)
{
    bn_ctx *c = p;
    int64_t n = (int64_t)c->N * c->C * c->HW;
    double *y = DALLOC(n);
    bn_d(y, NULL, NULL, c);
    double s = dot(y, c->g, n);
    free(y);
    return s;
}

static void run_bn_case(int N, int C, int HW, bool training, bool affine, float offset)
{
    const float eps = 1e-5f, mom = 0.1f;
    const int64_t n = (int64_t)N * C * HW;
    acv_rng r;
    acv_rng_seed3(&r, 8, (uint64_t)n, training * 2 + affine);
    float *x = FALLOC(n), *y = FALLOC(n), *g = FALLOC(n), *dx = FALLOC(n), *dx1 = FALLOC(n);
    float *ga = FALLOC(C), *be = FALLOC(C), *dga = FALLOC(C), *dbe = FALLOC(C);
    float *dga1 = FALLOC(C), *dbe1 = FALLOC(C), *sm = FALLOC(C), *sr = FALLOC(C);
    float *rm = FALLOC(C), *rv = FALLOC(C), *rm0 = FALLOC(C), *rv0 = FALLOC(C);
    fill(x, n, &r, offset - 2, offset + 2);
    for (int64_t i = 0; i < n; i++) x[i] *= 1.0f + (float)((i / HW) % C); /* spread per channel */
    fill(g, n, &r, -1, 1);
    fill(ga, C, &r, 0.5f, 1.5f);
    fill(be, C, &r, -1, 1);
    fill(rm0, C, &r, -1, 1);
    fill(rv0, C, &r, 0.5f, 2);
    memcpy(rm, rm0, C * sizeof(float));
    memcpy(rv, rv0, C * sizeof(float));
    double *xd = to_d(x, n), *gd = to_d(g, n), *gad = to_d(ga, C), *bed = to_d(be, C);
    double *rmd = to_d(rm0, C), *rvd = to_d(rv0, C), *yd = DALLOC(n);
    double *mu = DALLOC(C), *var = DALLOC(C), *want = DALLOC(C);
    bn_ctx c = {xd, affine ? gad : NULL, affine ? bed : NULL, gd, rmd, rvd, N, C, HW, eps, training};
    bn_d(yd, mu, var, &c);
    acv_ref_batchnorm_forward(y, sm, sr, x, affine ? ga : NULL, affine ? be : NULL, rm, rv, N, C, HW,
                              eps, mom, training);
    CHECK_CLOSE(y, yd, n, offset != 0 ? 1e-4 : 1e-5);
    CHECK_CLOSE(sm, mu, C, 1e-5);
    for (int ch = 0; ch < C; ch++) want[ch] = 1 / sqrt(var[ch] + eps);
    CHECK_CLOSE(sr, want, C, 1e-5);
    /* running statistics: updated with the unbiased variance in training, untouched in eval */
    double cnt = (double)N * HW;
    for (int ch = 0; ch < C; ch++) want[ch] = training ? (1 - mom) * rmd[ch] + mom * mu[ch] : rmd[ch];
    CHECK_CLOSE(rm, want, C, 1e-6);
    for (int ch = 0; ch < C; ch++)
        want[ch] = training ? (1 - mom) * rvd[ch] + mom * var[ch] * cnt / (cnt - 1) : rvd[ch];
    CHECK_CLOSE(rv, want, C, 1e-6);

    /* backward against finite differences of the double forward (offset cases: forward only,
     * the differences are not accurate enough there) */
    if (offset == 0) {
        double *nx = DALLOC(n), *nga = DALLOC(C), *nbe = DALLOC(C);
        num_grad(nx, xd, n, bn_loss, &c);
        if (affine) {
            num_grad(nga, gad, C, bn_loss, &c);
            num_grad(nbe, bed, C, bn_loss, &c);
        }
        acv_ref_batchnorm_backward(dx, affine ? dga : NULL, affine ? dbe : NULL, g, x,
                                   affine ? ga : NULL, sm, sr, rv0, N, C, HW, eps, training);
        CHECK_CLOSE(dx, nx, n, 1e-3);
        if (affine) {
            CHECK_CLOSE(dga, nga, C, 1e-3);
            CHECK_CLOSE(dbe, nbe, C, 1e-3);
        }
        memcpy(dx1, dx, n * sizeof(float));
        memcpy(dga1, dga, C * sizeof(float));
        memcpy(dbe1, dbe, C * sizeof(float));
        acv_ref_batchnorm_backward(dx, affine ? dga : NULL, affine ? dbe : NULL, g, x,
                                   affine ? ga : NULL, sm, sr, rv0, N, C, HW, eps, training);
        CHECK_DOUBLED(dx, dx1, n);
        if (affine) {
            CHECK_DOUBLED(dga, dga1, C);
            CHECK_DOUBLED(dbe, dbe1, C);
            /* parameter gradients alone, input gradient skipped */
            memset(dga, 0, C * sizeof(float));
            memset(dbe, 0, C * sizeof(float));
            acv_ref_batchnorm_backward(NULL, dga, dbe, g, x, ga, sm, sr, rv0, N, C, HW, eps, training);
            assert_memory_equal(dga, dga1, C * sizeof(float));
            assert_memory_equal(dbe, dbe1, C * sizeof(float));
        }
        /* input gradient alone */
        memset(dx, 0, n * sizeof(float));
        acv_ref_batchnorm_backward(dx, NULL, NULL, g, x, affine ? ga : NULL, sm, sr, rv0, N, C, HW,
                                   eps, training);
        assert_memory_equal(dx, dx1, n * sizeof(float));
        free(nx); free(nga); free(nbe);
    }
    free(x); free(y); free(g); free(dx); free(dx1); free(ga); free(be); free(dga); free(dbe);
    free(dga1); free(dbe1); free(sm); free(sr); free(rm); free(rv); free(rm0); free(rv0);
    free(xd); free(gd); free(gad); free(bed); free(rmd); free(rvd); free(yd); free(mu); free(var);
    free(want);
}

static void test_batchnorm(void **state)
{
    (void)state;
    for (int tr = 0; tr < 2; tr++)
        for (int af = 0; af < 2; af++) {
            run_bn_case(3, 4, 5, tr, af, 0.0f);
            run_bn_case(2, 3, 1, tr, af, 0.0f); /* 1x1 spatial, as after global pooling */
        }
    /* a large common offset must not cost precision */
    run_bn_case(4, 3, 16, true, true, 1000.0f);
}

/* A worked example of the running-statistic update, numbers by hand: one channel with
 * values 1, 2, 3, 6: mean 3, biased variance 3.5, unbiased 14/3. */
static void test_batchnorm_running_numbers(void **state)
{
    (void)state;
    const float x[4] = {1, 2, 3, 6};
    float y[4], sm, sr, rm = 1.0f, rv = 2.0f;
    acv_ref_batchnorm_forward(y, &sm, &sr, x, NULL, NULL, &rm, &rv, 2, 1, 2, 0.0f, 0.25f, true);
    assert_float_equal(sm, 3.0f, 1e-6f);
    assert_float_equal(sr, (float)(1 / sqrt(3.5)), 1e-6f);
    assert_float_equal(rm, 0.75f * 1 + 0.25f * 3, 1e-6f);                /* 1.5 */
    assert_float_equal(rv, (float)(0.75 * 2 + 0.25 * 14.0 / 3.0), 1e-6f); /* 2.6667 */
    assert_float_equal(y[3], (float)(3 / sqrt(3.5)), 1e-6f);
    /* eval with those statistics: (x - 1.5) / sqrt(8/3 + eps) * 2 + 1 */
    const float ga = 2.0f, be = 1.0f;
    acv_ref_batchnorm_forward(y, &sm, &sr, x, &ga, &be, &rm, &rv, 2, 1, 2, 1e-5f, 0.25f, false);
    assert_float_equal(y[0], (float)((1 - 1.5) / sqrt(8.0 / 3 + 1e-5) * 2 + 1), 1e-5f);
    assert_float_equal(rm, 1.5f, 1e-6f);
}

/* Channels are split across threads; the result must not depend on how many. */
static void test_batchnorm_threads(void **state)
{
    (void)state;
    const int N = 4, C = 16, HW = 300;
    const int64_t n = (int64_t)N * C * HW;
    acv_rng r;
    acv_rng_seed(&r, 9);
    float *x = FALLOC(n), *g = FALLOC(n), *y1 = FALLOC(n), *y3 = FALLOC(n);
    float *d1 = FALLOC(n), *d3 = FALLOC(n), *sm = FALLOC(C), *sr = FALLOC(C);
    fill(x, n, &r, -3, 5);
    fill(g, n, &r, -1, 1);
    int nt = omp_get_max_threads();
    omp_set_num_threads(1);
    acv_ref_batchnorm_forward(y1, sm, sr, x, NULL, NULL, NULL, NULL, N, C, HW, 1e-5f, 0.1f, true);
    acv_ref_batchnorm_backward(d1, NULL, NULL, g, x, NULL, sm, sr, NULL, N, C, HW, 1e-5f, true);
    omp_set_num_threads(3);
    acv_ref_batchnorm_forward(y3, sm, sr, x, NULL, NULL, NULL, NULL, N, C, HW, 1e-5f, 0.1f, true);
    acv_ref_batchnorm_backward(d3, NULL, NULL, g, x, NULL, sm, sr, NULL, N, C, HW, 1e-5f, true);
    omp_set_num_threads(nt);
    assert_memory_equal(y1, y3, n * sizeof(float));
    assert_memory_equal(d1, d3, n * sizeof(float));
    /* the normalized output has mean 0 and variance 1 per channel */
    for (int ch = 0; ch < C; ch++) {
        double s = 0, ss = 0;
        for (int b = 0; b < N; b++)
            for (int i = 0; i < HW; i++) {
                double v = y1[((int64_t)b * C + ch) * HW + i];
                s += v;
                ss += v * v;
            }
        assert_true(fabs(s / (N * HW)) < 1e-5);
        assert_true(fabs(ss / (N * HW) - 1) < 1e-3);
    }
    free(x); free(g); free(y1); free(y3); free(d1); free(d3); free(sm); free(sr);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_act),
        cmocka_unit_test(test_act_kinks),
        cmocka_unit_test(test_binary_broadcast),
        cmocka_unit_test(test_concat),
        cmocka_unit_test(test_slice),
        cmocka_unit_test(test_linear),
        cmocka_unit_test(test_softmax),
        cmocka_unit_test(test_layernorm),
        cmocka_unit_test(test_dropout),
        cmocka_unit_test(test_batchnorm),
        cmocka_unit_test(test_batchnorm_running_numbers),
        cmocka_unit_test(test_batchnorm_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
