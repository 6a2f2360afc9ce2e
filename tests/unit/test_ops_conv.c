/* Reference convolution and transposed convolution kernels (src/nn/ref/conv.c).
 *
 * The test's own reference enumerates every (output, input, weight) product of a case with
 * plain loops (the definition of the op, PyTorch semantics) and evaluates it in double.
 * Per case it checks: the float forward against that double forward; the float backward
 * against a double analytic backward (scatter over the same products) and against central
 * finite differences of the double forward for L = sum(out * r); that backward adds into
 * existing gradients (two calls double the contribution); that NULL gradients are skipped
 * without changing the others; and that repeated calls are bitwise identical. */
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

typedef struct conv_case {
    const char *name;
    bool transposed;
    int N, C, H, W, K, KH, KW;
    int sh, sw, pt, pl, pb, pr, dh, dw, groups, oph, opw;
    bool bias;
    int fd_max; /* finite-difference probes per tensor (0: all entries) */
} conv_case;

/* One product out[o] += in[i] * w[k] of the op's definition. */
typedef struct term { int64_t o, i, k; } term;

typedef struct problem {
    acv_conv_params p;
    int64_t n_in, n_w, n_out;
    term *terms;
    int64_t n_terms;
} problem;

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    assert_non_null(p);
    return p;
}

static problem make_problem(const conv_case *c)
{
    problem pr;
    memset(&pr, 0, sizeof(pr));
    acv_conv_params *p = &pr.p;
    p->N = c->N; p->C = c->C; p->H = c->H; p->W = c->W; p->K = c->K;
    p->KH = c->KH; p->KW = c->KW; p->stride_h = c->sh; p->stride_w = c->sw;
    p->pad_t = c->pt; p->pad_l = c->pl; p->pad_b = c->pb; p->pad_r = c->pr;
    p->dil_h = c->dh; p->dil_w = c->dw; p->groups = c->groups;
    p->out_pad_h = c->oph; p->out_pad_w = c->opw;
    if (!c->transposed) {
        p->OH = (c->H + c->pt + c->pb - c->dh * (c->KH - 1) - 1) / c->sh + 1;
        p->OW = (c->W + c->pl + c->pr - c->dw * (c->KW - 1) - 1) / c->sw + 1;
    } else {
        p->OH = (c->H - 1) * c->sh - c->pt - c->pb + c->dh * (c->KH - 1) + c->oph + 1;
        p->OW = (c->W - 1) * c->sw - c->pl - c->pr + c->dw * (c->KW - 1) + c->opw + 1;
    }
    assert_true(p->OH > 0 && p->OW > 0);
    const int G = c->groups, Cg = c->C / G, Kg = c->K / G;
    pr.n_in = (int64_t)c->N * c->C * c->H * c->W;
    pr.n_out = (int64_t)c->N * c->K * p->OH * p->OW;
    pr.n_w = (int64_t)c->K * Cg * c->KH * c->KW;

    /* Enumerate the products. Conv: out(n,k,oh,ow) += in(n,c,oh*s-pad+kh*d, ..) * w(k,cl,kh,kw).
     * Transposed: out(n,k,ih*s-pad+kh*d, ..) += in(n,c,ih,iw) * w(c,kl,kh,kw). */
    int64_t cap = (int64_t)c->N * c->K * Cg * c->KH * c->KW *
                  (c->transposed ? (int64_t)c->H * c->W : (int64_t)p->OH * p->OW);
    pr.terms = xmalloc(sizeof(term) * (size_t)cap);
    int64_t nt = 0;
    const int SH = c->transposed ? p->OH : c->H, SW = c->transposed ? p->OW : c->W; /* big side */
    const int DH = c->transposed ? c->H : p->OH, DW = c->transposed ? c->W : p->OW; /* grid */
    for (int n = 0; n < c->N; n++)
        for (int g = 0; g < G; g++)
            for (int kl = 0; kl < Kg; kl++)
                for (int cl = 0; cl < Cg; cl++)
                    for (int kh = 0; kh < c->KH; kh++)
                        for (int kw = 0; kw < c->KW; kw++)
                            for (int y = 0; y < DH; y++)
                                for (int x = 0; x < DW; x++) {
                                    int sy = y * c->sh - c->pt + kh * c->dh;
                                    int sx = x * c->sw - c->pl + kw * c->dw;
                                    if (sy < 0 || sy >= SH || sx < 0 || sx >= SW) continue;
                                    int k = g * Kg + kl, ch = g * Cg + cl;
                                    term t;
                                    if (!c->transposed) {
                                        t.o = (((int64_t)n * c->K + k) * p->OH + y) * p->OW + x;
                                        t.i = (((int64_t)n * c->C + ch) * c->H + sy) * c->W + sx;
                                        t.k = (((int64_t)k * Cg + cl) * c->KH + kh) * c->KW + kw;
                                    } else {
                                        t.o = (((int64_t)n * c->K + k) * p->OH + sy) * p->OW + sx;
                                        t.i = (((int64_t)n * c->C + ch) * c->H + y) * c->W + x;
                                        t.k = (((int64_t)ch * Kg + kl) * c->KH + kh) * c->KW + kw;
                                    }
                                    pr.terms[nt++] = t;
                                }
    pr.n_terms = nt;
    return pr;
}

static void ref_forward(double *out, const double *in, const double *w, const double *b,
                        const problem *pr)
{
    const int64_t ohw = (int64_t)pr->p.OH * pr->p.OW;
    for (int64_t j = 0; j < pr->n_out; j++) out[j] = b ? b[(j / ohw) % pr->p.K] : 0.0;
    for (int64_t t = 0; t < pr->n_terms; t++)
        out[pr->terms[t].o] += in[pr->terms[t].i] * w[pr->terms[t].k];
}

static void ref_backward(double *d_in, double *d_w, double *d_b, const double *d_out,
                         const double *in, const double *w, const problem *pr)
{
    const int64_t ohw = (int64_t)pr->p.OH * pr->p.OW;
    memset(d_in, 0, sizeof(double) * (size_t)pr->n_in);
    memset(d_w, 0, sizeof(double) * (size_t)pr->n_w);
    memset(d_b, 0, sizeof(double) * (size_t)pr->p.K);
    for (int64_t j = 0; j < pr->n_out; j++) d_b[(j / ohw) % pr->p.K] += d_out[j];
    for (int64_t t = 0; t < pr->n_terms; t++) {
        const term *e = &pr->terms[t];
        d_in[e->i] += d_out[e->o] * w[e->k];
        d_w[e->k] += d_out[e->o] * in[e->i];
    }
}

static double loss(const double *in, const double *w, const double *b, const double *r,
                   double *scratch, const problem *pr)
{
    ref_forward(scratch, in, w, b, pr);
    double s = 0.0;
    for (int64_t j = 0; j < pr->n_out; j++) s += scratch[j] * r[j];
    return s;
}

static void fill(float *f, double *d, int64_t n, acv_rng *rng)
{
    for (int64_t i = 0; i < n; i++) {
        f[i] = acv_rng_normal(rng);
        if (d) d[i] = f[i];
    }
}

static double max_abs(const double *a, int64_t n)
{
    double m = 0.0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs(a[i]));
    return m;
}

/* max |a - b| / max(max |b|, floor) */
static double rel_err(const float *a, const double *b, int64_t n, double floor_)
{
    double e = 0.0;
    for (int64_t i = 0; i < n; i++) e = fmax(e, fabs((double)a[i] - b[i]));
    return e / fmax(max_abs(b, n), floor_);
}

static void expect_close(const char *what, const conv_case *c, const float *a, const double *b,
                         int64_t n, double tol)
{
    double e = rel_err(a, b, n, 1e-6);
    if (!(e < tol)) print_error("%s: %s relative error %.3g >= %.3g\n", c->name, what, e, tol);
    assert_true(e < tol);
}

/* Central differences of the double loss w.r.t. x (one of in/w/b), at up to max probes
 * spread over the tensor; compares with the float gradient g there. */
static void check_fd(const char *what, const conv_case *c, double *x, int64_t n, const float *g,
                     double *in, double *w, double *b, const double *r, double *scratch,
                     const problem *pr)
{
    const double h = 1e-3;
    int64_t step = (c->fd_max > 0 && n > c->fd_max) ? n / c->fd_max : 1;
    double err = 0.0, scale = 1e-6;
    for (int64_t i = 0; i < n; i += step) {
        double keep = x[i];
        x[i] = keep + h;
        double lp = loss(in, w, b, r, scratch, pr);
        x[i] = keep - h;
        double lm = loss(in, w, b, r, scratch, pr);
        x[i] = keep;
        double fd = (lp - lm) / (2 * h);
        err = fmax(err, fabs(fd - (double)g[i]));
        scale = fmax(scale, fabs(fd));
    }
    double rel = err / scale;
    if (!(rel < 1e-3)) print_error("%s: %s finite-difference error %.3g\n", c->name, what, rel);
    assert_true(rel < 1e-3);
}

static void fwd(const conv_case *c, float *out, const float *in, const float *w, const float *b,
                const acv_conv_params *p)
{
    if (c->transposed) acv_ref_convt2d_forward(out, in, w, b, p);
    else acv_ref_conv2d_forward(out, in, w, b, p);
}

static void bwd(const conv_case *c, float *d_in, float *d_w, float *d_b, const float *d_out,
                const float *in, const float *w, const acv_conv_params *p)
{
    if (c->transposed) acv_ref_convt2d_backward(d_in, d_w, d_b, d_out, in, w, p);
    else acv_ref_conv2d_backward(d_in, d_w, d_b, d_out, in, w, p);
}

static void run_case(const conv_case *c)
{
    problem pr = make_problem(c);
    const acv_conv_params *p = &pr.p;
    acv_rng rng;
    acv_rng_seed(&rng, 1234 + (uint64_t)c->N * 31 + (uint64_t)c->C * 7 + (uint64_t)c->KH);
    const int64_t ni = pr.n_in, nw = pr.n_w, nb = pr.p.K, no = pr.n_out;

    float *in = xmalloc(sizeof(float) * ni), *w = xmalloc(sizeof(float) * nw);
    float *b = c->bias ? xmalloc(sizeof(float) * nb) : NULL;
    float *out = xmalloc(sizeof(float) * no), *out2 = xmalloc(sizeof(float) * no);
    float *r = xmalloc(sizeof(float) * no);
    double *ind = xmalloc(sizeof(double) * ni), *wd = xmalloc(sizeof(double) * nw);
    double *bd = c->bias ? xmalloc(sizeof(double) * nb) : NULL;
    double *outd = xmalloc(sizeof(double) * no), *rd = xmalloc(sizeof(double) * no);
    fill(in, ind, ni, &rng);
    fill(w, wd, nw, &rng);
    if (b) fill(b, bd, nb, &rng);
    fill(r, rd, no, &rng);

    /* (a) forward, and determinism of repeated calls */
    fwd(c, out, in, w, b, p);
    fwd(c, out2, in, w, b, p);
    assert_memory_equal(out, out2, sizeof(float) * (size_t)no);
    ref_forward(outd, ind, wd, bd, &pr);
    expect_close("forward", c, out, outd, no, 1e-5);

    /* (b) backward from zero vs double analytic backward and finite differences */
    float *gi = calloc((size_t)ni, sizeof(float)), *gw = calloc((size_t)nw, sizeof(float));
    float *gb = calloc((size_t)nb, sizeof(float));
    assert_true(gi && gw && gb);
    bwd(c, gi, gw, gb, r, in, w, p); /* d_b is defined (sum of d_out) even without a bias */
    double *gid = xmalloc(sizeof(double) * ni), *gwd = xmalloc(sizeof(double) * nw);
    double *gbd = xmalloc(sizeof(double) * nb);
    ref_backward(gid, gwd, gbd, rd, ind, wd, &pr);
    expect_close("d_in vs analytic", c, gi, gid, ni, 1e-4);
    expect_close("d_w vs analytic", c, gw, gwd, nw, 1e-4);
    expect_close("d_b vs analytic", c, gb, gbd, nb, 1e-4);
    check_fd("d_in", c, ind, ni, gi, ind, wd, bd, rd, outd, &pr);
    check_fd("d_w", c, wd, nw, gw, ind, wd, bd, rd, outd, &pr);
    if (c->bias) check_fd("d_b", c, bd, nb, gb, ind, wd, bd, rd, outd, &pr);

    /* (c) accumulation: from random starting gradients, two calls add twice the gradient */
    float *ai = xmalloc(sizeof(float) * ni), *aw = xmalloc(sizeof(float) * nw);
    float *ab = xmalloc(sizeof(float) * nb);
    double *si = xmalloc(sizeof(double) * ni), *sw = xmalloc(sizeof(double) * nw);
    double *sb = xmalloc(sizeof(double) * nb);
    fill(ai, si, ni, &rng);
    fill(aw, sw, nw, &rng);
    fill(ab, sb, nb, &rng);
    bwd(c, ai, aw, ab, r, in, w, p);
    bwd(c, ai, aw, ab, r, in, w, p);
    for (int64_t j = 0; j < ni; j++) si[j] += 2 * gid[j];
    for (int64_t j = 0; j < nw; j++) sw[j] += 2 * gwd[j];
    for (int64_t j = 0; j < nb; j++) sb[j] += 2 * gbd[j];
    expect_close("accumulated d_in", c, ai, si, ni, 1e-4);
    expect_close("accumulated d_w", c, aw, sw, nw, 1e-4);
    expect_close("accumulated d_b", c, ab, sb, nb, 1e-4);

    /* NULL gradients are skipped and do not change the others (bitwise) */
    float *xi = calloc((size_t)ni, sizeof(float)), *xw = calloc((size_t)nw, sizeof(float));
    float *xb = calloc((size_t)nb, sizeof(float));
    assert_true(xi && xw && xb);
    bwd(c, xi, NULL, NULL, r, in, w, p);
    bwd(c, NULL, xw, NULL, r, in, w, p);
    bwd(c, NULL, NULL, xb, r, in, w, p);
    bwd(c, NULL, NULL, NULL, r, in, w, p);
    assert_memory_equal(xi, gi, sizeof(float) * (size_t)ni);
    assert_memory_equal(xw, gw, sizeof(float) * (size_t)nw);
    assert_memory_equal(xb, gb, sizeof(float) * (size_t)nb);

    free(in); free(w); free(b); free(out); free(out2); free(r);
    free(ind); free(wd); free(bd); free(outd); free(rd);
    free(gi); free(gw); free(gb); free(gid); free(gwd); free(gbd);
    free(ai); free(aw); free(ab); free(si); free(sw); free(sb);
    free(xi); free(xw); free(xb);
    free(pr.terms);
}

/*                 name  T  N  C  H  W  K KH KW sh sw pt pl pb pr dh dw  g oph opw bias fd */
static const conv_case conv_cases[] = {
    {"3x3 s1 p1",     false, 2, 3, 7, 6, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, true, 0},
    {"1x1",           false, 2, 5, 4, 5, 3, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 0, 0, true, 0},
    {"1x1 s2",        false, 1, 4, 7, 6, 6, 1, 1, 2, 2, 0, 0, 0, 0, 1, 1, 1, 0, 0, false, 0},
    {"3x3 s2 p1",     false, 3, 2, 9, 8, 3, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 0, 0, true, 0},
    {"7x7 s2 p3",     false, 2, 3, 13, 11, 4, 7, 7, 2, 2, 3, 3, 3, 3, 1, 1, 1, 0, 0, true, 0},
    {"dil2 3x3 p2",   false, 2, 3, 9, 10, 2, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2, 1, 0, 0, true, 0},
    {"dil (2,3) s2",  false, 1, 2, 11, 12, 3, 3, 3, 2, 1, 1, 3, 2, 0, 2, 3, 1, 0, 0, true, 0},
    {"asym pads",     false, 2, 3, 6, 7, 2, 3, 2, 2, 1, 0, 1, 2, 1, 1, 1, 1, 0, 0, true, 0},
    {"depthwise s1",  false, 2, 4, 6, 6, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 4, 0, 0, true, 0},
    {"depthwise s2",  false, 2, 6, 9, 7, 6, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 6, 0, 0, false, 0},
    {"depthwise x2",  false, 2, 3, 7, 7, 6, 5, 5, 1, 1, 2, 2, 2, 2, 1, 1, 3, 0, 0, true, 0},
    {"dw dil2 asym",  false, 2, 3, 9, 8, 3, 3, 3, 2, 1, 0, 2, 2, 1, 2, 2, 3, 0, 0, true, 0},
    {"dw large",      false, 4, 32, 14, 13, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 32, 0, 0, true, 16},
    {"groups 4 (Cg 2)", false, 2, 8, 5, 6, 8, 3, 3, 1, 2, 1, 0, 1, 1, 1, 1, 4, 0, 0, true, 0},
    {"groups 2",      false, 2, 4, 6, 5, 6, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 2, 0, 0, false, 0},
    {"big gemm",      false, 2, 16, 12, 12, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, true, 16},
    {"big grouped",   false, 2, 32, 12, 10, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 2, 0, 0, true, 16},
    {"big 1x1",       false, 2, 64, 9, 9, 64, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 0, 0, true, 16},
    {"big s2 dil2",   false, 3, 16, 15, 14, 48, 3, 3, 2, 2, 2, 1, 1, 2, 2, 2, 1, 0, 0, true, 16},
};

static const conv_case convt_cases[] = {
    {"T 3x3 s1 p1",   true, 2, 3, 5, 6, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, true, 0},
    {"T 3x3 s2 op1",  true, 2, 3, 4, 5, 2, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, true, 0},
    {"T 4x4 s2 p1",   true, 2, 4, 4, 4, 3, 4, 4, 2, 2, 1, 1, 1, 1, 1, 1, 1, 0, 0, false, 0},
    {"T 2x2 s2",      true, 3, 2, 3, 4, 3, 2, 2, 2, 2, 0, 0, 0, 0, 1, 1, 1, 0, 0, true, 0},
    {"T 1x1",         true, 2, 4, 4, 3, 5, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 0, 0, true, 0},
    {"T 1x1 op",      true, 1, 3, 3, 3, 2, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 1, true, 0},
    {"T 7x7 s2 p3",   true, 2, 3, 5, 4, 2, 7, 7, 2, 2, 3, 3, 3, 3, 1, 1, 1, 1, 0, true, 0},
    {"T dil2",        true, 2, 2, 4, 5, 3, 3, 3, 2, 1, 1, 2, 2, 1, 2, 2, 1, 1, 0, true, 0},
    {"T asym pads",   true, 2, 3, 5, 4, 2, 3, 2, 2, 3, 0, 1, 2, 0, 1, 1, 1, 0, 2, true, 0},
    {"T depthwise",   true, 2, 4, 5, 5, 4, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 4, 1, 1, true, 0},
    {"T depthwise x2",true, 2, 3, 4, 4, 6, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 3, 0, 0, false, 0},
    {"T groups 2",    true, 2, 4, 4, 5, 6, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 2, 1, 1, true, 0},
    {"T big gemm",    true, 2, 32, 10, 10, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, true, 16},
    {"T big s2",      true, 2, 32, 8, 8, 16, 4, 4, 2, 2, 1, 1, 1, 1, 1, 1, 1, 0, 0, true, 16},
    {"T big grouped", true, 2, 64, 9, 9, 32, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 2, 1, 1, true, 16},
};

static void test_conv2d(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(conv_cases) / sizeof(conv_cases[0]); i++) run_case(&conv_cases[i]);
}

static void test_convt2d(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(convt_cases) / sizeof(convt_cases[0]); i++)
        run_case(&convt_cases[i]);
}

/* A hand-computed case: 1x1x3x3 input 1..9, 2x2 kernel of ones, stride 1, no padding:
 * sums of 2x2 blocks; its transposed convolution spreads each input over a 2x2 block. */
static void test_conv_hand(void **state)
{
    (void)state;
    float in[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, w[4] = {1, 1, 1, 1}, b[1] = {0.5f}, out[16];
    acv_conv_params p = {.N = 1, .C = 1, .H = 3, .W = 3, .K = 1, .OH = 2, .OW = 2, .KH = 2,
                         .KW = 2, .stride_h = 1, .stride_w = 1, .dil_h = 1, .dil_w = 1,
                         .groups = 1};
    acv_ref_conv2d_forward(out, in, w, b, &p);
    float want[4] = {12.5f, 16.5f, 24.5f, 28.5f};
    for (int i = 0; i < 4; i++) assert_float_equal(out[i], want[i], 1e-6);

    float tin[4] = {1, 2, 3, 4};
    acv_conv_params t = {.N = 1, .C = 1, .H = 2, .W = 2, .K = 1, .OH = 3, .OW = 3, .KH = 2,
                         .KW = 2, .stride_h = 1, .stride_w = 1, .dil_h = 1, .dil_w = 1,
                         .groups = 1};
    acv_ref_convt2d_forward(out, tin, w, NULL, &t);
    float twant[9] = {1, 3, 2, 4, 10, 6, 3, 7, 4};
    for (int i = 0; i < 9; i++) assert_float_equal(out[i], twant[i], 1e-6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_hand),
        cmocka_unit_test(test_conv2d),
        cmocka_unit_test(test_convt2d),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
