/* The CPU backend against the reference kernels: every convolution and transposed
 * convolution slot (forward, d_in, d_w, d_b) over groups, depthwise, stride, dilation,
 * asymmetric and output padding, batch 1 and 8, 1x1/3x3/7x7 and ResNet-like sizes, in the
 * plain, blocked and automatic layouts; the "backward adds" contract (gradients pre-filled
 * with random values), NULL gradients, cache reuse across calls, batch-size, thread-count,
 * layout and op-kind changes; batch norm (training forward, alone and fused with each
 * activation, backward, eval) and every activation forward and backward on odd and large
 * shapes; the backend lookup and the thread-count plumbing. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "base/rng.h"
#include "nn/backend.h"
#include "nn/cpu/cpu.h"
#include "nn/kernels.h"

#define TOL 1e-4

static float *randv(acv_rng *r, int64_t n)
{
    float *x = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    assert_non_null(x);
    for (int64_t i = 0; i < n; i++) x[i] = acv_rng_normal(r);
    return x;
}

static float *dup(const float *x, int64_t n)
{
    float *y = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    assert_non_null(y);
    memcpy(y, x, sizeof(float) * (size_t)n);
    return y;
}

/* max |got - want| / max |want| (absolute when want is all zeros). */
static double rel_err(const float *got, const float *want, int64_t n)
{
    double d = 0.0, m = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - want[i]);
        if (!(e <= d)) d = e; /* also catches NaN */
        if (fabs(want[i]) > m) m = fabs(want[i]);
    }
    return m > 0.0 ? d / m : d;
}

#define CHECK_CLOSE(got, want, n, what, cfg)                                                   \
    do {                                                                                       \
        double e_ = rel_err(got, want, n);                                                     \
        if (!(e_ < TOL)) fail_msg("%s: %s relative error %g", cfg, what, e_);                  \
    } while (0)

/* ---- convolution configurations --------------------------------------------------------- */

typedef struct conv_case {
    const char *name;
    bool transposed;
    int N, C, H, W, K, KH, KW, sh, sw, pt, pl, pb, pr, dh, dw, groups, oph, opw;
    bool bias;
    bool expect_dnnl; /* oneDNN must take this case (no silent fallback) */
} conv_case;

static acv_conv_params case_params(const conv_case *c, int N)
{
    acv_conv_params p = {
        .N = N, .C = c->C, .H = c->H, .W = c->W, .K = c->K, .KH = c->KH, .KW = c->KW,
        .stride_h = c->sh, .stride_w = c->sw, .pad_t = c->pt, .pad_l = c->pl, .pad_b = c->pb,
        .pad_r = c->pr, .dil_h = c->dh, .dil_w = c->dw, .groups = c->groups,
        .out_pad_h = c->oph, .out_pad_w = c->opw,
    };
    if (!c->transposed) {
        p.OH = (c->H + c->pt + c->pb - c->dh * (c->KH - 1) - 1) / c->sh + 1;
        p.OW = (c->W + c->pl + c->pr - c->dw * (c->KW - 1) - 1) / c->sw + 1;
    } else {
        p.OH = (c->H - 1) * c->sh - c->pt - c->pb + c->dh * (c->KH - 1) + c->oph + 1;
        p.OW = (c->W - 1) * c->sw - c->pl - c->pr + c->dw * (c->KW - 1) + c->opw + 1;
    }
    return p;
}

static const conv_case CONV_CASES[] = {
    /* name                 T  N  C   H   W   K  KH KW sh sw pt pl pb pr dh dw  g op op bias dnnl */
    {"1x1 s1",              0, 1, 16, 14, 14, 32, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 0, 0, 1, 1},
    {"1x1 s2 downsample",   0, 8, 64, 28, 28, 128, 1, 1, 2, 2, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 1},
    {"3x3 s1 batch 8",      0, 8, 32, 16, 16, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1},
    {"3x3 s2 resnet down",  0, 8, 64, 28, 28, 128, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1},
    {"resnet 64x56x56",     0, 1, 64, 56, 56, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1},
    {"resnet 128x14 b8",    0, 8, 128, 14, 14, 128, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1},
    {"7x7 s2 stem",         0, 2, 3, 64, 64, 64, 7, 7, 2, 2, 3, 3, 3, 3, 1, 1, 1, 0, 0, 0, 1},
    {"depthwise 3x3",       0, 8, 32, 20, 20, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 32, 0, 0, 1, 1},
    {"depthwise s2 odd",    0, 1, 24, 17, 17, 24, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 24, 0, 0, 1, 1},
    {"depthwise mult 2",    0, 2, 8, 9, 9, 16, 5, 5, 1, 1, 2, 2, 2, 2, 1, 1, 8, 0, 0, 1, 1},
    {"groups 4",            0, 8, 16, 12, 12, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 4, 0, 0, 1, 1},
    {"dilation 2",          0, 1, 8, 15, 15, 16, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2, 1, 0, 0, 1, 1},
    {"asym pads odd ch",    0, 8, 5, 11, 13, 7, 3, 3, 2, 2, 0, 1, 2, 0, 1, 1, 1, 0, 0, 1, 1},
    {"5x3 s(2,1) d(1,2)",   0, 2, 6, 13, 10, 10, 5, 3, 2, 1, 2, 1, 1, 2, 1, 2, 2, 0, 0, 1, 1},
    {"3 to 17 channels",    0, 8, 3, 10, 10, 17, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1},
    {"1x1 image",           0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 0, 0, 1, 0},
    {"window > image",      0, 8, 4, 3, 3, 8, 5, 5, 1, 1, 2, 2, 2, 2, 1, 1, 1, 0, 0, 1, 0},
    {"tiny rgb 6x6",        0, 3, 3, 6, 6, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1},
    {"tiny groups 2 3x3",   0, 3, 4, 3, 3, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 2, 0, 0, 1, 1},
    /* transposed */
    {"T k4 s2 p1",          1, 8, 32, 8, 8, 16, 4, 4, 2, 2, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1},
    {"T k3 s2 p1 op1",      1, 1, 16, 7, 7, 8, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1},
    {"T k2 s2 unet",        1, 8, 64, 14, 14, 32, 2, 2, 2, 2, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 1},
    {"T groups 2",          1, 1, 8, 9, 9, 12, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 2, 0, 0, 1, 1},
    {"T depthwise k4 s2",   1, 8, 16, 6, 6, 16, 4, 4, 2, 2, 1, 1, 1, 1, 1, 1, 16, 0, 0, 1, 1},
    {"T d2 asym op1",       1, 2, 6, 5, 7, 4, 3, 3, 2, 2, 1, 0, 0, 1, 2, 2, 1, 1, 1, 1, 1},
    {"T s3 op2",            1, 8, 4, 5, 5, 6, 3, 3, 3, 3, 0, 0, 0, 0, 1, 1, 1, 2, 2, 1, 1},
    {"T op >= stride",      1, 1, 4, 6, 6, 4, 3, 3, 1, 1, 1, 1, 0, 0, 2, 2, 1, 1, 1, 1, 0},
    {"T op >= stride, pad", 1, 2, 4, 6, 5, 6, 3, 3, 1, 1, 1, 1, 1, 1, 2, 2, 1, 1, 1, 1, 1},
    {"T resnet-ish b8",     1, 8, 64, 14, 14, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1},
};
#define N_CONV_CASES (int)(sizeof CONV_CASES / sizeof CONV_CASES[0])

typedef struct conv_sizes {
    int64_t in, out, w, b;
} conv_sizes;

static conv_sizes sizes_of(const acv_conv_params *p, bool transposed)
{
    conv_sizes s;
    s.in = (int64_t)p->N * p->C * p->H * p->W;
    s.out = (int64_t)p->N * p->K * p->OH * p->OW;
    s.w = transposed ? (int64_t)p->C * (p->K / p->groups) * p->KH * p->KW
                     : (int64_t)p->K * (p->C / p->groups) * p->KH * p->KW;
    s.b = p->K;
    return s;
}

typedef void (*fwd_slot)(void **, float *, const float *, const float *, const float *,
                         const acv_conv_params *);
typedef void (*bwd_slot)(void **, float *, float *, float *, const float *, const float *,
                         const float *, const acv_conv_params *);

/* One case's inputs and reference results, computed once and compared against every
 * layout. Two forward inputs check that a prepared cache follows new buffers; gradients
 * start from random values (g0) so that "backward adds" is checked. */
typedef struct conv_data {
    const conv_case *cc;
    acv_conv_params p;
    conv_sizes sz;
    float *w, *b, *in[2], *want[2];      /* forward */
    float *d_out, *din0, *dw0, *db0;     /* backward inputs and initial gradients */
    float *din_r, *dw_r, *db_r;          /* reference: g0 + gradient */
} conv_data;

static void conv_data_init(conv_data *d, const conv_case *cc, int N, uint64_t seed)
{
    memset(d, 0, sizeof *d);
    d->cc = cc;
    d->p = case_params(cc, N);
    d->sz = sizes_of(&d->p, cc->transposed);
    const conv_sizes *sz = &d->sz;
    acv_rng r;
    acv_rng_seed(&r, seed);
    d->w = randv(&r, sz->w);
    d->b = cc->bias ? randv(&r, sz->b) : NULL;
    for (int i = 0; i < 2; i++) {
        d->in[i] = randv(&r, sz->in);
        d->want[i] = randv(&r, sz->out);
        if (cc->transposed) acv_ref_convt2d_forward(d->want[i], d->in[i], d->w, d->b, &d->p);
        else acv_ref_conv2d_forward(d->want[i], d->in[i], d->w, d->b, &d->p);
    }
    d->d_out = randv(&r, sz->out);
    d->din0 = randv(&r, sz->in);
    d->dw0 = randv(&r, sz->w);
    d->db0 = randv(&r, sz->b);
    d->din_r = dup(d->din0, sz->in);
    d->dw_r = dup(d->dw0, sz->w);
    d->db_r = dup(d->db0, sz->b);
    if (cc->transposed)
        acv_ref_convt2d_backward(d->din_r, d->dw_r, d->db_r, d->d_out, d->in[0], d->w, &d->p);
    else
        acv_ref_conv2d_backward(d->din_r, d->dw_r, d->db_r, d->d_out, d->in[0], d->w, &d->p);
}

static void conv_data_free(conv_data *d)
{
    free(d->w), free(d->b);
    for (int i = 0; i < 2; i++) free(d->in[i]), free(d->want[i]);
    free(d->d_out), free(d->din0), free(d->dw0), free(d->db0);
    free(d->din_r), free(d->dw_r), free(d->db_r);
}

/* Checks the CPU backend's forward and every gradient (together and one at a time) against
 * d's reference results, on the given cache slot (NULL: no cache). */
static void check_conv(const conv_data *d, void **cache, const char *label)
{
    const acv_backend *be = acv_backend_cpu();
    const conv_case *cc = d->cc;
    const acv_conv_params *p = &d->p;
    const conv_sizes *sz = &d->sz;
    char cfg[160];
    snprintf(cfg, sizeof cfg, "%s (N=%d, %s)", cc->name, p->N, label);
    fwd_slot fwd = cc->transposed ? be->convt2d_forward : be->conv2d_forward;
    bwd_slot bwd = cc->transposed ? be->convt2d_backward : be->conv2d_backward;
    assert_non_null(fwd);
    assert_non_null(bwd);

    float *got = malloc(sizeof(float) * (size_t)sz->out);
    assert_non_null(got);
    for (int rep = 0; rep < 2; rep++) {
        for (int64_t i = 0; i < sz->out; i++) got[i] = 1e3f; /* garbage: must be overwritten */
        fwd(cache, got, d->in[rep], d->w, d->b, p);
        CHECK_CLOSE(got, d->want[rep], sz->out, rep ? "forward (cached)" : "forward", cfg);
    }
    free(got);
    if (cc->expect_dnnl && cache && strcmp(acv_cpu_conv_impl(*cache), "acv_ref") == 0)
        fail_msg("%s: oneDNN did not take the case", cfg);

    float *din = dup(d->din0, sz->in), *dw = dup(d->dw0, sz->w), *db = dup(d->db0, sz->b);
    bwd(cache, din, dw, db, d->d_out, d->in[0], d->w, p);
    CHECK_CLOSE(din, d->din_r, sz->in, "d_in", cfg);
    CHECK_CLOSE(dw, d->dw_r, sz->w, "d_w", cfg);
    CHECK_CLOSE(db, d->db_r, sz->b, "d_b", cfg);

    /* each gradient alone, the others NULL */
    memcpy(din, d->din0, sizeof(float) * (size_t)sz->in);
    memcpy(dw, d->dw0, sizeof(float) * (size_t)sz->w);
    memcpy(db, d->db0, sizeof(float) * (size_t)sz->b);
    bwd(cache, din, NULL, NULL, d->d_out, d->in[0], d->w, p);
    bwd(cache, NULL, dw, NULL, d->d_out, d->in[0], d->w, p);
    bwd(cache, NULL, NULL, db, d->d_out, d->in[0], d->w, p);
    CHECK_CLOSE(din, d->din_r, sz->in, "d_in alone", cfg);
    CHECK_CLOSE(dw, d->dw_r, sz->w, "d_w alone", cfg);
    CHECK_CLOSE(db, d->db_r, sz->b, "d_b alone", cfg);
    free(din), free(dw), free(db);
}

/* Builds the case at batch N and checks it on cache. */
static void check_conv_case(const conv_case *cc, int N, void **cache, uint64_t seed,
                            const char *label)
{
    conv_data d;
    conv_data_init(&d, cc, N, seed);
    check_conv(&d, cache, label);
    conv_data_free(&d);
}

static const struct {
    acv_cpu_layout layout;
    const char *name;
} LAYOUTS[] = {
    {ACV_CPU_LAYOUT_AUTO, "auto"},
    {ACV_CPU_LAYOUT_PLAIN, "plain"},
    {ACV_CPU_LAYOUT_BLOCKED, "blocked"},
};

static void run_cases(bool transposed)
{
    const acv_backend *be = acv_backend_cpu();
    for (int i = 0; i < N_CONV_CASES; i++) {
        const conv_case *cc = &CONV_CASES[i];
        if (cc->transposed != transposed) continue;
        conv_data d;
        conv_data_init(&d, cc, cc->N, 1000 + i);
        for (int l = 0; l < 3; l++) {
            acv_cpu_set_conv_layout(LAYOUTS[l].layout);
            void *cache = NULL;
            check_conv(&d, &cache, LAYOUTS[l].name);
            be->cache_free(cache);
        }
        conv_data_free(&d);
    }
    acv_cpu_set_conv_layout(ACV_CPU_LAYOUT_AUTO);
}

static void test_conv_cases(void **state)
{
    (void)state;
    run_cases(false);
}

static void test_convt_cases(void **state)
{
    (void)state;
    run_cases(true);
}

/* One cache slot through batch-size changes (8 -> 1 -> 8), a thread-count change, a layout
 * change and a switch between a convolution and a transposed convolution. */
static void test_cache_rebuilds(void **state)
{
    (void)state;
    const acv_backend *be = acv_backend_cpu();
    const conv_case *conv = &CONV_CASES[2], *convt = &CONV_CASES[19];
    assert_false(conv->transposed);
    assert_true(convt->transposed);
    void *cache = NULL;
    check_conv_case(conv, 8, &cache, 1, "batch 8");
    assert_non_null(cache);
    check_conv_case(conv, 1, &cache, 2, "batch 1 after 8");
    check_conv_case(conv, 8, &cache, 3, "batch 8 again");
    int saved = acv_get_threads();
    acv_set_threads(1);
    check_conv_case(conv, 8, &cache, 4, "1 thread");
    acv_set_threads(saved);
    acv_cpu_set_conv_layout(ACV_CPU_LAYOUT_PLAIN);
    check_conv_case(conv, 8, &cache, 5, "plain after auto");
    acv_cpu_set_conv_layout(ACV_CPU_LAYOUT_AUTO);
    check_conv_case(convt, 8, &cache, 6, "convt in a conv slot");
    check_conv_case(conv, 1, &cache, 7, "conv in a convt slot");
    be->cache_free(cache);
    be->cache_free(NULL);
    /* no cache slot at all: a temporary one is used */
    check_conv_case(conv, 8, NULL, 8, "no cache");
    check_conv_case(convt, 1, NULL, 9, "no cache");
}

/* A second backward call adds again: g0 + 2 * grad. */
static void test_conv_accumulates_twice(void **state)
{
    (void)state;
    const acv_backend *be = acv_backend_cpu();
    const conv_case *cc = &CONV_CASES[5];
    acv_conv_params p = case_params(cc, cc->N);
    conv_sizes sz = sizes_of(&p, false);
    acv_rng r;
    acv_rng_seed(&r, 77);
    float *in = randv(&r, sz.in), *w = randv(&r, sz.w), *d_out = randv(&r, sz.out);
    float *din = calloc((size_t)sz.in, sizeof(float)), *dw = calloc((size_t)sz.w, sizeof(float));
    float *db = calloc((size_t)sz.b, sizeof(float));
    float *din2 = randv(&r, sz.in), *dw2 = randv(&r, sz.w), *db2 = randv(&r, sz.b);
    float *din0 = dup(din2, sz.in), *dw0 = dup(dw2, sz.w), *db0 = dup(db2, sz.b);
    acv_ref_conv2d_backward(din, dw, db, d_out, in, w, &p);
    void *cache = NULL;
    be->conv2d_backward(&cache, din2, dw2, db2, d_out, in, w, &p);
    be->conv2d_backward(&cache, din2, dw2, db2, d_out, in, w, &p);
    for (int64_t i = 0; i < sz.in; i++) din0[i] += 2 * din[i];
    for (int64_t i = 0; i < sz.w; i++) dw0[i] += 2 * dw[i];
    for (int64_t i = 0; i < sz.b; i++) db0[i] += 2 * db[i];
    CHECK_CLOSE(din2, din0, sz.in, "d_in twice", cc->name);
    CHECK_CLOSE(dw2, dw0, sz.w, "d_w twice", cc->name);
    CHECK_CLOSE(db2, db0, sz.b, "d_b twice", cc->name);
    be->cache_free(cache);
    free(in), free(w), free(d_out), free(din), free(dw), free(db);
    free(din2), free(dw2), free(db2), free(din0), free(dw0), free(db0);
}

/* ---- batch norm ------------------------------------------------------------------------ */

#define BN_TOL 1e-5
/* normwise, as CHECK_CLOSE, at the batch norm tolerance; cfg is the caller's label */
#define CHECK_BN(got, want, n, what)                                                           \
    do {                                                                                       \
        double e_ = rel_err(got, want, n);                                                     \
        if (!(e_ < BN_TOL)) fail_msg("%s: %s relative error %g", cfg, what, e_);               \
    } while (0)


typedef struct bn_case {
    const char *name;
    int N, C, HW;
    float mean, std; /* of the input values */
} bn_case;

static const bn_case BN_CASES[] = {
    {"odd 3x5x7x9", 3, 5, 7 * 9, 0.0f, 1.0f},
    {"large 8x32x40x40", 8, 32, 40 * 40, 0.5f, 2.0f},
    {"mean >> std 4x6x11x13", 4, 6, 11 * 13, 100.0f, 0.01f},
    {"plane < 16 values 16x3x3x3", 16, 3, 9, -1.0f, 3.0f},
    {"one value per channel", 1, 3, 1, 0.0f, 1.0f},
    {"spatial 1x1 batch 7", 7, 4, 1, 2.0f, 1.0f},
    {"empty batch", 0, 3, 5, 0.0f, 1.0f},
};
#define N_BN_CASES (int)(sizeof BN_CASES / sizeof BN_CASES[0])

/* |got - want| <= rtol * |want| + atol for every element (NaN fails). */
static void check_elem(const float *got, const float *want, int64_t n, double rtol, double atol,
                       const char *what, const char *cfg)
{
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - want[i]);
        if (!(e <= rtol * fabs(want[i]) + atol))
            fail_msg("%s: %s[%lld]: got %.9g want %.9g", cfg, what, (long long)i, got[i], want[i]);
    }
}

/* Batch norm inputs of one case and the reference's training forward and backward. */
typedef struct bn_data {
    const bn_case *bc;
    bool affine;
    int64_t n;
    float *in, *gamma, *beta, *rm0, *rv0, *d_out, *din0, *dg0, *db0;
    float *out, *sm, *sr, *rm, *rv; /* reference forward */
    float *din, *dg, *db;           /* reference: initial gradients + backward */
} bn_data;

static void bn_data_init(bn_data *d, const bn_case *bc, bool affine, uint64_t seed)
{
    memset(d, 0, sizeof *d);
    d->bc = bc;
    d->affine = affine;
    d->n = (int64_t)bc->N * bc->C * bc->HW;
    int C = bc->C;
    acv_rng r;
    acv_rng_seed(&r, seed);
    d->in = randv(&r, d->n);
    for (int64_t i = 0; i < d->n; i++) d->in[i] = bc->mean + bc->std * d->in[i];
    if (affine) {
        d->gamma = randv(&r, C);
        d->beta = randv(&r, C);
    }
    d->rm0 = randv(&r, C);
    d->rv0 = randv(&r, C);
    for (int c = 0; c < C; c++) d->rv0[c] = 0.5f + fabsf(d->rv0[c]);
    d->d_out = randv(&r, d->n);
    d->din0 = randv(&r, d->n);
    d->dg0 = randv(&r, C);
    d->db0 = randv(&r, C);
    d->out = randv(&r, d->n);
    d->sm = randv(&r, C);
    d->sr = randv(&r, C);
    d->rm = dup(d->rm0, C);
    d->rv = dup(d->rv0, C);
    acv_ref_batchnorm_forward(d->out, d->sm, d->sr, d->in, d->gamma, d->beta, d->rm, d->rv, bc->N, C, bc->HW,
                              1e-5f, 0.1f, true);
    d->din = dup(d->din0, d->n);
    d->dg = dup(d->dg0, C);
    d->db = dup(d->db0, C);
    acv_ref_batchnorm_backward(d->din, d->dg, d->db, d->d_out, d->in, d->gamma, d->sm, d->sr, d->rv, bc->N, C,
                               bc->HW, 1e-5f, true);
}

static void bn_data_free(bn_data *d)
{
    free(d->in), free(d->gamma), free(d->beta), free(d->rm0), free(d->rv0), free(d->d_out);
    free(d->din0), free(d->dg0), free(d->db0), free(d->out), free(d->sm), free(d->sr);
    free(d->rm), free(d->rv), free(d->din), free(d->dg), free(d->db);
}

/* The CPU backend's training forward (fused with act when act >= 0) into out/act_out and
 * fresh statistics, checked against d's reference; returns out (caller frees). */
static float *check_bn_forward(const bn_data *d, int act, const char *cfg)
{
    const acv_backend *be = acv_backend_cpu();
    const bn_case *bc = d->bc;
    int C = bc->C;
    float *out = randv(&(acv_rng){0}, d->n), *act_out = act >= 0 ? randv(&(acv_rng){0}, d->n) : NULL;
    float *sm = calloc((size_t)C, sizeof(float)), *sr = calloc((size_t)C, sizeof(float));
    float *rm = dup(d->rm0, C), *rv = dup(d->rv0, C);
    assert_true(sm && sr && out);
    if (act < 0)
        be->batchnorm_forward(NULL, out, sm, sr, d->in, d->gamma, d->beta, rm, rv, bc->N, C, bc->HW, 1e-5f, 0.1f,
                              true);
    else
        be->batchnorm_act_forward(NULL, out, act_out, act, 0.1f, sm, sr, d->in, d->gamma, d->beta, rm, rv, bc->N,
                                  C, bc->HW, 1e-5f, 0.1f, true);
    CHECK_BN(out, d->out, d->n, "out");
    /* the mean to a fraction of a standard deviation; rstd and variances relatively */
    check_elem(sm, d->sm, C, BN_TOL, BN_TOL * bc->std, "save_mean", cfg);
    check_elem(sr, d->sr, C, BN_TOL, 0.0, "save_rstd", cfg);
    check_elem(rm, d->rm, C, BN_TOL, BN_TOL * bc->std, "running_mean", cfg);
    check_elem(rv, d->rv, C, BN_TOL, 0.0, "running_var", cfg);
    if (act >= 0) {
        float *want = malloc(sizeof(float) * (size_t)(d->n > 0 ? d->n : 1));
        assert_non_null(want);
        acv_ref_act_forward(want, d->out, d->n, (acv_act)act, 0.1f);
        CHECK_BN(act_out, want, d->n, "act_out");
        free(want);
    }
    free(act_out), free(sm), free(sr), free(rm), free(rv);
    return out;
}

static void check_bn_backward(const bn_data *d, const char *cfg)
{
    const acv_backend *be = acv_backend_cpu();
    const bn_case *bc = d->bc;
    int C = bc->C;
    float *din = dup(d->din0, d->n), *dg = dup(d->dg0, C), *db = dup(d->db0, C);
    be->batchnorm_backward(NULL, din, d->affine ? dg : NULL, d->affine ? db : NULL, d->d_out, d->in, d->gamma,
                           d->sm, d->sr, d->rv, bc->N, C, bc->HW, 1e-5f, true);
    CHECK_BN(din, d->din, d->n, "d_in");
    if (d->affine) {
        CHECK_BN(dg, d->dg, C, "d_gamma");
        CHECK_BN(db, d->db, C, "d_beta");
        /* each gradient alone */
        memcpy(din, d->din0, sizeof(float) * (size_t)d->n);
        memcpy(dg, d->dg0, sizeof(float) * (size_t)C);
        memcpy(db, d->db0, sizeof(float) * (size_t)C);
        be->batchnorm_backward(NULL, din, NULL, NULL, d->d_out, d->in, d->gamma, d->sm, d->sr, d->rv, bc->N, C,
                               bc->HW, 1e-5f, true);
        be->batchnorm_backward(NULL, NULL, dg, NULL, d->d_out, d->in, d->gamma, d->sm, d->sr, d->rv, bc->N, C,
                               bc->HW, 1e-5f, true);
        be->batchnorm_backward(NULL, NULL, NULL, db, d->d_out, d->in, d->gamma, d->sm, d->sr, d->rv, bc->N, C,
                               bc->HW, 1e-5f, true);
        CHECK_BN(din, d->din, d->n, "d_in alone");
        CHECK_BN(dg, d->dg, C, "d_gamma alone");
        CHECK_BN(db, d->db, C, "d_beta alone");
    }
    be->batchnorm_backward(NULL, NULL, NULL, NULL, d->d_out, d->in, d->gamma, d->sm, d->sr, d->rv, bc->N, C,
                           bc->HW, 1e-5f, true); /* nothing to do */
    free(din), free(dg), free(db);
}

/* Training forward (plain and fused with every activation) and backward against the
 * reference, with and without affine parameters; results independent of the thread count. */
static void test_batchnorm_cases(void **state)
{
    (void)state;
    int saved = acv_get_threads();
    for (int i = 0; i < N_BN_CASES; i++)
        for (int affine = 0; affine < 2; affine++) {
            const bn_case *bc = &BN_CASES[i];
            char cfg[160];
            snprintf(cfg, sizeof cfg, "batchnorm %s%s", bc->name, affine ? " affine" : "");
            bn_data d;
            bn_data_init(&d, bc, affine, 500 + (uint64_t)i);
            acv_set_threads(2);
            float *out2 = check_bn_forward(&d, -1, cfg);
            for (int a = 0; a < ACV_ACT_COUNT; a++) free(check_bn_forward(&d, a, cfg));
            check_bn_backward(&d, cfg);
            acv_set_threads(1);
            float *out1 = check_bn_forward(&d, -1, cfg);
            if (d.n && memcmp(out1, out2, sizeof(float) * (size_t)d.n) != 0)
                fail_msg("%s: 1 and 2 threads differ", cfg);
            free(out1), free(out2);
            bn_data_free(&d);
        }
    acv_set_threads(saved);
}

/* Eval mode (running statistics) gives the reference's result exactly. */
static void test_batchnorm_eval(void **state)
{
    (void)state;
    const acv_backend *be = acv_backend_cpu();
    const bn_case *bc = &BN_CASES[0];
    bn_data d;
    bn_data_init(&d, bc, true, 9);
    int C = bc->C;
    float *want = dup(d.out, d.n), *got = dup(d.out, d.n), *act = dup(d.out, d.n), *wact = dup(d.out, d.n);
    float *sm = dup(d.sm, C), *sr = dup(d.sr, C), *sm2 = dup(d.sm, C), *sr2 = dup(d.sr, C);
    acv_ref_batchnorm_forward(want, sm, sr, d.in, d.gamma, d.beta, d.rm0, d.rv0, bc->N, C, bc->HW, 1e-5f, 0.1f,
                              false);
    acv_ref_act_forward(wact, want, d.n, ACV_ACT_SILU, 0.0f);
    be->batchnorm_act_forward(NULL, got, act, ACV_ACT_SILU, 0.0f, sm2, sr2, d.in, d.gamma, d.beta, d.rm0, d.rv0,
                              bc->N, C, bc->HW, 1e-5f, 0.1f, false);
    assert_memory_equal(got, want, sizeof(float) * (size_t)d.n);
    assert_memory_equal(sm2, sm, sizeof(float) * (size_t)C);
    assert_memory_equal(sr2, sr, sizeof(float) * (size_t)C);
    CHECK_CLOSE(act, wact, d.n, "eval act_out", "batchnorm eval");
    float *din = dup(d.din0, d.n), *dg = dup(d.dg0, C), *db = dup(d.db0, C);
    float *din2 = dup(d.din0, d.n), *dg2 = dup(d.dg0, C), *db2 = dup(d.db0, C);
    acv_ref_batchnorm_backward(din, dg, db, d.d_out, d.in, d.gamma, sm, sr, d.rv0, bc->N, C, bc->HW, 1e-5f, false);
    be->batchnorm_backward(NULL, din2, dg2, db2, d.d_out, d.in, d.gamma, sm, sr, d.rv0, bc->N, C, bc->HW, 1e-5f,
                           false);
    assert_memory_equal(din2, din, sizeof(float) * (size_t)d.n);
    assert_memory_equal(dg2, dg, sizeof(float) * (size_t)C);
    assert_memory_equal(db2, db, sizeof(float) * (size_t)C);
    free(want), free(got), free(act), free(wact), free(sm), free(sr), free(sm2), free(sr2);
    free(din), free(dg), free(db), free(din2), free(dg2), free(db2);
    bn_data_free(&d);
}

/* ---- activations ------------------------------------------------------------------------ */

static const char *const ACT_NAMES[ACV_ACT_COUNT] = {"relu", "relu6", "leaky_relu", "silu",
                                                     "sigmoid", "hardswish", "hardsigmoid", "tanh", "gelu"};

/* Inputs over [-12, 12] with the kinks, the branch points of the fast exp and tanh, values
 * far in both tails, infinities and NaN planted among them. */
static float *act_inputs(int64_t n, uint64_t seed)
{
    static const float special[] = {0.0f, -0.0f, 6.0f, -3.0f, 3.0f, 0.625f, -0.625f, 0.62499994f, 1e-3f,
                                    -1e-3f, 1e-30f, -2.4f, -87.3f, -87.4f, -100.0f, -200.0f, 100.0f, 88.0f,
                                    INFINITY, -INFINITY, NAN};
    int ns = (int)(sizeof special / sizeof special[0]);
    acv_rng r;
    acv_rng_seed(&r, seed);
    float *x = randv(&r, n);
    for (int64_t i = 0; i < n; i++) x[i] *= 4.0f;
    for (int64_t i = 0; i < n; i += 37) x[i] = special[(i / 37) % ns];
    return x;
}

/* Fast forward and backward of every activation against the reference: the piecewise
 * linear ones bit for bit, the others within 1e-6 relative per element (the backward
 * relative to |d_out| too, since the reference itself cancels where SiLU' crosses zero);
 * NaN where the reference has NaN. Sizes: the serial path (3x5x7x9) and the parallel one. */
static void test_act_cases(void **state)
{
    (void)state;
    const acv_backend *be = acv_backend_cpu();
    assert_non_null(be->act_forward);
    assert_non_null(be->act_backward);
    static const int64_t sizes[] = {3 * 5 * 7 * 9, 200003};
    for (int si = 0; si < 2; si++)
        for (int k = 0; k < ACV_ACT_COUNT; k++) {
            int64_t n = sizes[si];
            char cfg[96];
            snprintf(cfg, sizeof cfg, "%s n=%lld", ACT_NAMES[k], (long long)n);
            float *x = act_inputs(n, 40 + (uint64_t)k);
            acv_rng r;
            acv_rng_seed(&r, 3);
            float *want = randv(&r, n), *got = randv(&r, n), *d_out = randv(&r, n), *g0 = randv(&r, n);
            float *gw = dup(g0, n), *gg = dup(g0, n);
            acv_ref_act_forward(want, x, n, (acv_act)k, 0.1f);
            be->act_forward(got, x, n, (acv_act)k, 0.1f);
            /* backward from the same forward output */
            acv_ref_act_backward(gw, d_out, x, want, n, (acv_act)k, 0.1f);
            be->act_backward(gg, d_out, x, want, n, (acv_act)k, 0.1f);
            bool exact = k != ACV_ACT_SILU && k != ACV_ACT_SIGMOID && k != ACV_ACT_TANH;
            for (int64_t i = 0; i < n; i++) {
                bool fn = isnan(got[i]) != 0, wn = isnan(want[i]) != 0;
                bool bn_ = isnan(gg[i]) != 0, bw = isnan(gw[i]) != 0;
                if (fn != wn || bn_ != bw)
                    fail_msg("%s: NaN mismatch at %lld (x = %g): fwd %g/%g bwd %g/%g", cfg, (long long)i, x[i],
                             got[i], want[i], gg[i], gw[i]);
                /* equal (infinities included), or close */
                double tf = exact ? 0.0 : 1e-6 * fabs(want[i]) + 1e-30;
                double tb = exact ? 0.0 : 1e-6 * (fabs(gw[i] - g0[i]) + fabs(d_out[i])) + 1e-6 * fabs(g0[i]);
                if (!wn && got[i] != want[i] && !(fabs((double)got[i] - want[i]) <= tf))
                    fail_msg("%s: forward at x = %.9g: got %.9g want %.9g", cfg, x[i], got[i], want[i]);
                if (!bw && gg[i] != gw[i] && !(fabs((double)gg[i] - gw[i]) <= tb))
                    fail_msg("%s: backward at x = %.9g: got %.9g want %.9g", cfg, x[i], gg[i], gw[i]);
            }
            be->act_backward(NULL, d_out, x, want, n, (acv_act)k, 0.1f); /* no gradient: nothing */
            free(x), free(want), free(got), free(d_out), free(g0), free(gw), free(gg);
        }
}

/* out may alias in, as for the reference. */
static void test_act_in_place(void **state)
{
    (void)state;
    const acv_backend *be = acv_backend_cpu();
    int64_t n = 100000;
    for (int k = 0; k < ACV_ACT_COUNT; k++) {
        float *x = act_inputs(n, 7), *want = randv(&(acv_rng){0}, n);
        acv_ref_act_forward(want, x, n, (acv_act)k, 0.2f);
        be->act_forward(x, x, n, (acv_act)k, 0.2f);
        CHECK_CLOSE(x, want, n, "in place", ACT_NAMES[k]);
        free(x), free(want);
    }
}

/* ---- lookup and threads ---------------------------------------------------------------- */

static void test_lookup(void **state)
{
    (void)state;
    const acv_backend *ref = acv_backend_ref(), *cpu = acv_backend_cpu();
    assert_non_null(ref);
    assert_non_null(cpu);
    assert_ptr_equal(acv_backend_by_name("cpu"), cpu);
    assert_ptr_equal(acv_backend_by_name("ref"), ref);
    assert_null(acv_backend_by_name("cuda"));
    assert_null(acv_backend_by_name(NULL));
    assert_string_equal(cpu->name, "cpu");
    assert_string_equal(ref->name, "ref");
    /* the reference backend leaves every slot NULL */
    assert_null(ref->set_threads);
    assert_null(ref->cache_free);
    assert_null(ref->conv2d_forward);
    assert_null(ref->conv2d_backward);
    assert_null(ref->convt2d_forward);
    assert_null(ref->convt2d_backward);
    assert_null(ref->linear_forward);
    assert_null(ref->linear_backward);
    assert_null(ref->batchnorm_forward);
    assert_null(ref->batchnorm_backward);
    assert_null(ref->maxpool_forward);
    assert_null(ref->maxpool_backward);
    assert_null(ref->batchnorm_act_forward);
    assert_null(ref->act_forward);
    assert_null(ref->act_backward);
    assert_non_null(cpu->cache_free);
    assert_non_null(cpu->set_threads);
    assert_non_null(cpu->batchnorm_forward);
    assert_non_null(cpu->batchnorm_backward);
    assert_non_null(cpu->batchnorm_act_forward);
}

static void *thread_conv(void *arg)
{
    int *seen = arg;
    const conv_case *cc = &CONV_CASES[0];
    acv_conv_params p = case_params(cc, cc->N);
    conv_sizes sz = sizes_of(&p, false);
    float *in = calloc((size_t)sz.in, sizeof(float)), *w = calloc((size_t)sz.w, sizeof(float));
    float *out = calloc((size_t)sz.out, sizeof(float));
    acv_backend_cpu()->conv2d_forward(NULL, out, in, w, NULL, &p);
    *seen = omp_get_max_threads();
    free(in), free(w), free(out);
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    int saved = acv_get_threads();
    acv_set_threads(1);
    assert_int_equal(acv_get_threads(), 1);
    assert_int_equal(omp_get_max_threads(), 1);
    /* a thread that never called acv_set_threads follows the count once it runs a kernel */
    int seen = -1;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, thread_conv, &seen), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(seen, 1);
    acv_backend_cpu()->set_threads(0);
    assert_int_equal(acv_get_threads(), omp_get_num_procs());
    assert_int_equal(omp_get_max_threads(), omp_get_num_procs());
    acv_set_threads(saved);
    assert_int_equal(acv_get_threads(), saved);
}

int main(void)
{
    acv_set_threads(2);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lookup),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_conv_cases),
        cmocka_unit_test(test_convt_cases),
        cmocka_unit_test(test_cache_rebuilds),
        cmocka_unit_test(test_conv_accumulates_twice),
        cmocka_unit_test(test_batchnorm_cases),
        cmocka_unit_test(test_batchnorm_eval),
        cmocka_unit_test(test_act_cases),
        cmocka_unit_test(test_act_in_place),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
