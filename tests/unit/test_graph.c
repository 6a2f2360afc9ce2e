/* The graph engine (src/nn/graph.c, exec.c, graph_json.c): shape inference for every op and
 * its sticky errors, whole-graph gradients against central finite differences, the ref and
 * CPU backends against each other, inference memory planning, set_batch, backward
 * repeatability, JSON round trips and malformed JSON, reshape_input, dropout modes and
 * bitwise determinism. White-box where it must be: the arena size comes from
 * nn/graph_internal.h. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "autocv/error.h"
#include "autocv/graph.h"
#include "base/rng.h"
#include "nn/backend.h"
#include "nn/graph_internal.h"
#include "nn/kernels.h"

#ifndef FD_VERBOSE
#define FD_VERBOSE 0 /* -DFD_VERBOSE=1 prints every finite-difference comparison */
#endif
#ifndef FD_EPS
#define FD_EPS 2e-3 /* central-difference step: 1e-2 crosses too many ReLU/max-pool kinks */
#endif

/* ---- helpers ---------------------------------------------------------------------------- */

static void fill_normal(float *v, int64_t n, acv_rng *r, float scale)
{
    for (int64_t i = 0; i < n; i++) v[i] = acv_rng_normal(r) * scale;
}

static void fill_uniform(float *v, int64_t n, acv_rng *r, float lo, float hi)
{
    for (int64_t i = 0; i < n; i++) v[i] = lo + (hi - lo) * acv_rng_uniform(r);
}

static void assert_shape(const acv_graph *g, acv_id id, int ndim, int64_t a, int64_t b, int64_t c, int64_t d)
{
    assert_true(id >= 0);
    const acv_shape *s = acv_graph_shape(g, id);
    assert_non_null(s);
    int64_t want[4] = {a, b, c, d};
    char buf[96];
    if (s->ndim != ndim) fail_msg("node %d (%s): rank %d, want %d (%s)", id, acv_graph_name(g, id), s->ndim, ndim,
                                  acv_shape_str(s, buf, sizeof buf));
    for (int i = 0; i < ndim; i++)
        if (s->d[i] != want[i])
            fail_msg("node %d: shape %s, dim %d should be %lld", id, acv_shape_str(s, buf, sizeof buf), i,
                     (long long)want[i]);
}

/* id must be the error `code`, the graph's sticky status too, and the message must name `what`. */
static void assert_graph_error(acv_graph *g, acv_id id, int code, const char *what)
{
    if (id != code) fail_msg("expected error %d, got %d (%s)", code, id, acv_errmsg());
    assert_int_equal(acv_graph_status(g), code);
    if (!strstr(acv_errmsg(), what)) fail_msg("message '%s' does not name '%s'", acv_errmsg(), what);
}

/* Adds N(0, 0.1) to every trainable parameter (so biases and BN affine terms are not 0/1)
 * and draws batch-norm running statistics away from 0/1. */
static void randomize_params(acv_graph *g, uint64_t seed)
{
    assert_int_equal(acv_graph_init_params(g, seed), 0);
    acv_rng r;
    acv_rng_seed3(&r, seed, 77, 1);
    int np = acv_graph_param_count(g);
    for (int i = 0; i < np; i++) {
        acv_param_info pi;
        assert_int_equal(acv_graph_param(g, i, &pi), 0);
        int64_t n = acv_shape_numel(&pi.shape);
        if (pi.trainable) {
            for (int64_t j = 0; j < n; j++) pi.data[j] += acv_rng_normal(&r) * 0.1f;
        } else if (strstr(pi.name, "running_var")) {
            fill_uniform(pi.data, n, &r, 0.5f, 1.5f);
        } else {
            fill_normal(pi.data, n, &r, 0.2f);
        }
    }
}

static float *dup_floats(const float *v, int64_t n)
{
    float *c = malloc((size_t)(n ? n : 1) * sizeof(float));
    assert_non_null(c);
    memcpy(c, v, (size_t)n * sizeof(float));
    return c;
}

/* max |a-b| / max(max|b|, floor) */
static double max_rel_diff(const float *a, const float *b, int64_t n, double floor_)
{
    double md = 0, mb = floor_;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > md || isnan(d)) md = isnan(d) ? INFINITY : d;
        if (fabs(b[i]) > mb) mb = fabs(b[i]);
    }
    return md / mb;
}

static int64_t numel_of(const acv_graph *g, acv_id id) { return acv_shape_numel(acv_graph_shape(g, id)); }

/* ---- shape inference -------------------------------------------------------------------- */

static void test_shapes_every_op(void **state)
{
    (void)state;
    acv_graph *g = acv_graph_new();
    int64_t xs[4] = {2, 4, 9, 11};
    acv_id x = acv_input(g, "x", 4, xs);
    assert_shape(g, x, 4, 2, 4, 9, 11);
    assert_int_equal(acv_graph_op(g, x), ACV_OP_INPUT);
    assert_int_equal(acv_graph_input(g), x);

    /* conv: stride 2, pad 1 -> floor((9+2-3)/2)+1 = 5, floor((11+2-3)/2)+1 = 6 */
    acv_id c = acv_conv2d(g, "c", x, 6, 3, 2, 1, 1, 2, true);
    assert_shape(g, c, 4, 2, 6, 5, 6);
    assert_shape(g, acv_graph_find(g, "c.weight"), 4, 6, 2, 3, 3);
    assert_shape(g, acv_graph_find(g, "c.bias"), 1, 6, 0, 0, 0);
    assert_int_equal(acv_graph_op(g, c), ACV_OP_CONV2D);
    assert_string_equal(acv_graph_name(g, c), "c");
    /* dilation 2, no pad: 9 - 4 = 5, 11 - 4 = 7 */
    acv_id cd = acv_conv2d(g, "cd", x, 3, 3, 1, 0, 2, 1, false);
    assert_shape(g, cd, 4, 2, 3, 5, 7);
    assert_true(acv_graph_find(g, "cd.bias") < 0);
    /* asymmetric attributes through the _ex form */
    int64_t ws[4] = {5, 4, 2, 3};
    acv_id w = acv_param(g, "cx.weight", 4, ws, ACV_INIT_KAIMING_OUT, true);
    acv_conv_attrs ca = {2, 3, 1, 2, 1, 0, 0, 2, 1, 1, 1, 0, 0};
    acv_id cx = acv_conv2d_ex(g, "cx", x, w, -1, &ca);
    /* OH = 9 + 1 + 0 - 2 + 1 = 9, OW = (11 + 0 + 2 - 3)/2 + 1 = 6 */
    assert_shape(g, cx, 4, 2, 5, 9, 6);
    /* transposed: (5-1)*2 - 2 + 3 + 1 = 10 */
    acv_id ct = acv_convt2d(g, "ct", c, 4, 3, 2, 1, 1, 2, true);
    assert_shape(g, ct, 4, 2, 4, 10, 12);
    assert_shape(g, acv_graph_find(g, "ct.weight"), 4, 6, 2, 3, 3);
    acv_id bn = acv_batchnorm(g, "bn", c, 1e-5f, 0.1f);
    assert_shape(g, bn, 4, 2, 6, 5, 6);
    assert_shape(g, acv_graph_find(g, "bn.running_var"), 1, 6, 0, 0, 0);
    acv_id a = acv_activation(g, bn, ACV_ACT_LEAKY_RELU, 0.1f);
    assert_shape(g, a, 4, 2, 6, 5, 6);
    /* max pool 3/2 pad 1: (5+2-3)/2+1 = 3; ceil mode: ceil((6+2-3)/2)+1 = 4 */
    assert_shape(g, acv_maxpool(g, a, 3, 2, 1, false), 4, 2, 6, 3, 3);
    assert_shape(g, acv_maxpool(g, a, 3, 2, 1, true), 4, 2, 6, 3, 4);
    /* ceil mode keeps the partial last window: 5x6, k2 s2 -> 3x3 (2x3 without) */
    assert_shape(g, acv_avgpool(g, a, 2, 2, 0, true, false), 4, 2, 6, 3, 3);
    /* ... but never one that starts in the right padding: 5, k2 s3 p1 -> 2, not 3 */
    assert_shape(g, acv_maxpool(g, a, 2, 3, 1, true), 4, 2, 6, 2, 3);
    assert_shape(g, acv_avgpool(g, a, 2, 2, 0, false, true), 4, 2, 6, 2, 3);
    acv_id gp = acv_global_avgpool(g, a);
    assert_shape(g, gp, 4, 2, 6, 1, 1);
    assert_shape(g, acv_upsample(g, a, 7, 13, true, false), 4, 2, 6, 7, 13);
    /* broadcasting: (2,6,5,6) + (6,1,1) and (1,1,5,1) * (2,6,5,6) */
    int64_t bs[3] = {6, 1, 1}, cs[4] = {1, 1, 5, 1};
    acv_id pb = acv_param(g, "pb", 3, bs, ACV_INIT_ONE, true);
    acv_id pc = acv_param(g, "pc", 4, cs, ACV_INIT_ONE, false);
    assert_shape(g, acv_add(g, a, pb), 4, 2, 6, 5, 6);
    assert_shape(g, acv_mul(g, pc, a), 4, 2, 6, 5, 6);
    assert_shape(g, acv_binary(g, ACV_BIN_DIV, pb, pc), 4, 1, 6, 5, 1);
    acv_id parts[3] = {a, bn, c};
    assert_shape(g, acv_concat(g, 3, parts, 1), 4, 2, 18, 5, 6);
    acv_id rows[2] = {a, bn};
    assert_shape(g, acv_concat(g, 2, rows, 3), 4, 2, 6, 5, 12);
    /* slices: [1, 6) step 2 -> 1,3,5; end clamped to the dim */
    assert_shape(g, acv_slice(g, a, 1, 1, 100, 2), 4, 2, 3, 5, 6);
    assert_shape(g, acv_slice(g, a, 3, 0, 4, 1), 4, 2, 6, 5, 4);
    /* reshape: 0 copies, -1 infers */
    int64_t sp1[3] = {0, -1, 6}, sp2[2] = {-1, 30}, sp3[4] = {2, 6, 30, 1};
    assert_shape(g, acv_reshape(g, a, 3, sp1), 3, 2, 30, 6, 0);
    assert_shape(g, acv_reshape(g, a, 2, sp2), 2, 12, 30, 0, 0);
    assert_shape(g, acv_reshape(g, a, 4, sp3), 4, 2, 6, 30, 1);
    acv_id fl = acv_flatten(g, a, 1);
    assert_shape(g, fl, 2, 2, 180, 0, 0);
    assert_shape(g, acv_flatten(g, a, 2), 2, 12, 30, 0, 0);
    acv_id li = acv_linear(g, "fc", fl, 7, true);
    assert_shape(g, li, 2, 2, 7, 0, 0);
    assert_shape(g, acv_graph_find(g, "fc.weight"), 2, 7, 180, 0, 0);
    assert_shape(g, acv_softmax(g, li, 1, false), 2, 2, 7, 0, 0);
    assert_shape(g, acv_softmax(g, a, 1, true), 4, 2, 6, 5, 6);
    assert_shape(g, acv_dropout(g, li, 0.5f), 2, 2, 7, 0, 0);
    int64_t ts[1] = {2}, tk[2] = {2, 7};
    acv_id t = acv_input(g, "t", 1, ts);
    acv_id tsoft = acv_input(g, "tsoft", 2, tk);
    assert_shape(g, acv_cross_entropy(g, li, t, 0.1f, NULL), 1, 1, 0, 0, 0);
    float cw[7] = {1, 2, 1, 1, 1, 1, 0.5f};
    assert_shape(g, acv_cross_entropy(g, li, tsoft, 0, cw), 1, 1, 0, 0, 0);
    assert_shape(g, acv_bce_logits(g, li, tsoft), 1, 1, 0, 0, 0);
    assert_shape(g, acv_focal_loss(g, li, tsoft, 0.25f, 2), 1, 1, 0, 0, 0);
    assert_int_equal(acv_graph_status(g), 0);
    assert_true(acv_graph_find(g, "nope") < 0);
    assert_null(acv_graph_shape(g, 100000));
    assert_int_equal(acv_graph_op(g, -3), ACV_OP_COUNT);
    /* output marking */
    assert_int_equal(acv_graph_output(g), -1);
    acv_graph_set_output(g, li);
    assert_int_equal(acv_graph_output(g), li);
    acv_graph_free(g);
}

static void test_shape_errors_sticky(void **state)
{
    (void)state;
    int64_t xs[4] = {1, 3, 8, 8};
    /* conv channel mismatch: weight made for 2 input channels on a 3-channel input */
    acv_graph *g = acv_graph_new();
    acv_id x = acv_input(g, "x", 4, xs);
    int64_t ws[4] = {4, 2, 3, 3};
    acv_id w = acv_param(g, "stem.weight", 4, ws, ACV_INIT_KAIMING_OUT, true);
    acv_conv_attrs ca = {3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0};
    int n_before = acv_graph_node_count(g);
    acv_id bad = acv_conv2d_ex(g, "stem", x, w, -1, &ca);
    assert_graph_error(g, bad, ACV_ESHAPE, "stem");
    assert_int_equal(acv_graph_node_count(g), n_before); /* the failed node is not kept */
    /* sticky: a valid call afterwards returns the same error; so do compile and reshape */
    assert_int_equal(acv_relu(g, x), ACV_ESHAPE);
    assert_int_equal(acv_conv2d(g, "ok", x, 4, 3, 1, 1, 1, 1, false), ACV_ESHAPE);
    assert_int_equal(acv_graph_status(g), ACV_ESHAPE);
    assert_int_equal(acv_graph_compile(g, acv_backend_ref(), 1, false), ACV_ESHAPE);
    assert_non_null(strstr(acv_errmsg(), "stem"));
    /* a later, different error keeps the first message */
    assert_int_equal(acv_dropout(g, x, 2.0f), ACV_ESHAPE);
    assert_int_equal(acv_graph_compile(g, acv_backend_ref(), 1, false), ACV_ESHAPE);
    assert_non_null(strstr(acv_errmsg(), "stem"));
    acv_graph_free(g);

    /* one fresh graph with x (1, 3, 8, 8) per case; each case names its node */
#define FRESH() (acv_graph_free(g), g = acv_graph_new(), x = acv_input(g, "x", 4, xs))
    g = NULL;
    FRESH(); /* groups that do not divide the channels (the builder form) */
    assert_graph_error(g, acv_conv2d(g, "grouped", x, 4, 3, 1, 1, 1, 2, false), ACV_EINVAL, "grouped");
    FRESH(); /* bad broadcast: (2,3,4) + (2,5,4) */
    int64_t as[3] = {2, 3, 4}, bs[3] = {2, 5, 4};
    acv_id a = acv_input(g, "a", 3, as), b = acv_input(g, "b", 3, bs);
    assert_graph_error(g, acv_add(g, a, b), ACV_ESHAPE, "binary #3: shapes [2, 3, 4] and [2, 5, 4] do not broadcast");
    assert_int_equal(acv_add(g, a, a), ACV_ESHAPE);
    FRESH(); /* reshape with two -1 */
    int64_t sp[3] = {-1, -1, 8}, sp2[2] = {5, 37};
    assert_graph_error(g, acv_reshape(g, x, 3, sp), ACV_EINVAL, "reshape #1: more than one -1");
    assert_int_equal(acv_flatten(g, x, 1), ACV_EINVAL);
    FRESH(); /* reshape to a different element count */
    assert_graph_error(g, acv_reshape(g, x, 2, sp2), ACV_ESHAPE, "reshape #1: cannot reshape");
    FRESH(); /* concat rank mismatch */
    int64_t ys[3] = {1, 3, 64}, x2s[4] = {1, 3, 8, 9};
    acv_id cat[2] = {x, acv_input(g, "y", 3, ys)};
    assert_graph_error(g, acv_concat(g, 2, cat, 1), ACV_ESHAPE, "concat #2: inputs differ in rank");
    assert_int_equal(acv_concat(g, 1, &x, 1), ACV_ESHAPE);
    FRESH(); /* concat: another dim off the axis differs */
    acv_id cat2[2] = {x, acv_input(g, "x2", 4, x2s)};
    assert_graph_error(g, acv_concat(g, 2, cat2, 1), ACV_ESHAPE, "concat #2: input 1 differs in dim 3");
    FRESH(); /* empty slice */
    assert_graph_error(g, acv_slice(g, x, 1, 3, 9, 1), ACV_EINVAL, "slice #1");
    FRESH(); /* linear without flatten */
    assert_graph_error(g, acv_linear(g, "head", x, 3, true), ACV_ESHAPE, "head");
    FRESH(); /* pooling window larger than the input */
    assert_graph_error(g, acv_maxpool(g, x, 9, 1, 0, false), ACV_ESHAPE, "maxpool #1");
    FRESH(); /* duplicate parameter names */
    assert_true(acv_conv2d(g, "dup", x, 4, 3, 1, 1, 1, 1, false) >= 0);
    assert_graph_error(g, acv_conv2d(g, "dup", x, 4, 3, 1, 1, 1, 1, false), ACV_EEXIST, "dup.weight");
    FRESH(); /* a bad input id */
    assert_true(acv_relu(g, 42) < 0 && acv_graph_status(g) < 0);
    assert_non_null(strstr(acv_errmsg(), "not a valid node"));
    FRESH(); /* loss targets of the wrong size */
    int64_t ls[2] = {4, 3}, tsz[1] = {5};
    acv_id l = acv_input(g, "logits", 2, ls), t = acv_input(g, "t", 1, tsz);
    assert_graph_error(g, acv_cross_entropy(g, l, t, 0, NULL), ACV_ESHAPE, "cross_entropy");
#undef FRESH
    acv_graph_free(g);
}

/* ---- parameters and FLOPs --------------------------------------------------------------- */

static void test_params_and_flops(void **state)
{
    (void)state;
    acv_graph *g = acv_graph_new();
    int64_t xs[4] = {4, 3, 10, 10};
    acv_id x = acv_input(g, "x", 4, xs);
    acv_id c = acv_conv2d(g, "conv", x, 8, 3, 1, 1, 1, 1, true);   /* 8*3*9 + 8 */
    c = acv_batchnorm(g, "bn", c, 1e-5f, 0.1f);                    /* 2*8 (+ 2*8 buffers) */
    acv_id ct = acv_convt2d(g, "up", c, 4, 2, 2, 0, 0, 1, false);  /* 8*4*4, out 20x20 */
    acv_id f = acv_flatten(g, acv_global_avgpool(g, ct), 1);
    acv_id o = acv_linear(g, "fc", f, 5, true);                    /* 5*4 + 5 */
    acv_graph_set_output(g, o);
    assert_int_equal(acv_graph_status(g), 0);
    assert_int_equal(acv_graph_param_count(g), 9);
    int64_t want_np = 8 * 27 + 8 + 16 + 128 + 25;
    assert_int_equal(acv_graph_num_params(g), want_np);
    assert_int_equal(acv_graph_init_params(g, 5), 0);
    int64_t np = 0, nb = 0;
    float *P = acv_graph_params(g, &np);
    float *B = acv_graph_buffers(g, &nb);
    assert_non_null(P);
    assert_non_null(B);
    assert_int_equal(np, want_np);
    assert_int_equal(nb, 16);
    assert_null(acv_graph_grads(g, NULL)); /* before a training compile */
    /* each parameter points into the flat storage at its offset; trainable ones tile it */
    int64_t covered = 0;
    for (int i = 0; i < acv_graph_param_count(g); i++) {
        acv_param_info pi;
        assert_int_equal(acv_graph_param(g, i, &pi), 0);
        int64_t n = acv_shape_numel(&pi.shape);
        if (pi.trainable) {
            assert_ptr_equal(pi.data, P + pi.offset);
            covered += n;
        } else {
            assert_true(pi.data >= B && pi.data + n <= B + nb);
            assert_int_equal(pi.offset, -1);
        }
        assert_int_equal(acv_graph_find(g, pi.name), pi.id);
        assert_ptr_equal(acv_graph_data(g, pi.id), pi.data);
        /* initial values by kind */
        if (!strcmp(pi.name, "bn.weight") || !strcmp(pi.name, "bn.running_var"))
            for (int64_t j = 0; j < n; j++) assert_true(pi.data[j] == 1.0f);
        if (!strcmp(pi.name, "bn.bias") || !strcmp(pi.name, "conv.bias") || !strcmp(pi.name, "bn.running_mean"))
            for (int64_t j = 0; j < n; j++) assert_true(pi.data[j] == 0.0f);
        if (!strcmp(pi.name, "conv.weight")) { /* kaiming fan_out: std sqrt(2/(8*9)) = 0.167 */
            double s2 = 0;
            for (int64_t j = 0; j < n; j++) s2 += (double)pi.data[j] * pi.data[j];
            double sd = sqrt(s2 / (double)n);
            assert_true(sd > 0.12 && sd < 0.22);
        }
        if (!strcmp(pi.name, "fc.weight") || !strcmp(pi.name, "fc.bias")) /* uniform(+-1/sqrt(4)) */
            for (int64_t j = 0; j < n; j++) assert_true(fabsf(pi.data[j]) <= 0.5f);
    }
    assert_int_equal(covered, want_np);
    acv_param_info pi;
    assert_true(acv_graph_param(g, 9, &pi) < 0);
    /* init is deterministic in the seed */
    float *p1 = dup_floats(P, np);
    assert_int_equal(acv_graph_init_params(g, 5), 0);
    assert_memory_equal(p1, acv_graph_params(g, NULL), (size_t)np * sizeof(float));
    assert_int_equal(acv_graph_init_params(g, 6), 0);
    assert_true(memcmp(p1, acv_graph_params(g, NULL), (size_t)np * sizeof(float)) != 0);
    free(p1);
    /* FLOPs per sample: 2 * (conv 8*27*100 + convT 8*4*4*100 + linear 20) */
    double want = 2.0 * (8 * 27 * 100 + 8 * 4 * 4 * 100 + 20) / 1e9;
    assert_true(fabs(acv_graph_gflops(g) - want) < 1e-12);
    acv_graph_free(g);
}

/* ---- finite-difference gradient checks ------------------------------------------------- */

typedef struct net {
    acv_graph *g;
    acv_id x, t, out, loss;
} net;

/* conv -> bn -> relu -> maxpool -> conv(groups) -> add(residual) -> gap -> flatten -> linear
 * -> cross-entropy */
static net build_net1(int N)
{
    net m;
    acv_graph *g = m.g = acv_graph_new();
    int64_t xs[4] = {N, 3, 6, 6}, ts[1] = {N};
    m.x = acv_input(g, "x", 4, xs);
    m.t = acv_input(g, "t", 1, ts);
    acv_id c = acv_conv2d(g, "conv1", m.x, 4, 3, 1, 1, 1, 1, false);
    c = acv_batchnorm(g, "bn1", c, 1e-5f, 0.1f);
    c = acv_relu(g, c);
    acv_id p = acv_maxpool(g, c, 2, 2, 0, false);
    acv_id c2 = acv_conv2d(g, "conv2", p, 4, 3, 1, 1, 1, 2, true);
    acv_id s = acv_add(g, c2, p);
    acv_id f = acv_flatten(g, acv_global_avgpool(g, s), 1);
    m.out = acv_linear(g, "fc", f, 3, true);
    m.loss = acv_cross_entropy(g, m.out, m.t, 0, NULL);
    acv_graph_set_output(g, m.out);
    assert_int_equal(acv_graph_status(g), 0);
    return m;
}

/* conv -> bilinear upsample, nearest upsample -> concat -> slice -> softmax -> dropout(0),
 * times sigmoid(conv) minus a broadcast parameter -> avgpool -> reshape -> linear -> BCE */
static net build_net2(int N)
{
    net m;
    acv_graph *g = m.g = acv_graph_new();
    int64_t xs[4] = {N, 2, 4, 4}, ts[2] = {N, 6}, ss[4] = {1, 2, 1, 1};
    m.x = acv_input(g, "x", 4, xs);
    m.t = acv_input(g, "t", 2, ts);
    acv_id c1 = acv_conv2d(g, "c1", m.x, 3, 3, 1, 1, 1, 1, true);
    acv_id u1 = acv_upsample(g, c1, 8, 8, true, false);
    acv_id u2 = acv_upsample(g, m.x, 8, 8, false, false);
    acv_id parts[2] = {u1, u2};
    acv_id cat = acv_concat(g, 2, parts, 1);
    acv_id sl = acv_slice(g, cat, 1, 1, 5, 2);
    acv_id sm = acv_dropout(g, acv_softmax(g, sl, 1, false), 0.0f);
    acv_id sg = acv_activation(g, acv_conv2d(g, "c2", u2, 2, 1, 1, 0, 1, 1, true), ACV_ACT_SIGMOID, 0);
    acv_id shift = acv_param(g, "shift", 4, ss, ACV_INIT_UNIFORM_FAN_IN, true);
    acv_id y = acv_binary(g, ACV_BIN_SUB, acv_mul(g, sm, sg), shift);
    acv_id ap = acv_avgpool(g, y, 2, 2, 0, false, true);
    int64_t sp[2] = {0, -1};
    acv_id r = acv_reshape(g, ap, 2, sp);
    m.out = acv_linear(g, "fc", r, 6, true);
    m.loss = acv_bce_logits(g, m.out, m.t);
    acv_graph_set_output(g, m.out);
    assert_int_equal(acv_graph_status(g), 0);
    return m;
}

/* convT(stride 2, out pad) -> bn -> silu -> grouped convT -> focal */
static net build_net3(int N)
{
    net m;
    acv_graph *g = m.g = acv_graph_new();
    int64_t xs[4] = {N, 3, 3, 3}, ts[4] = {N, 2, 7, 7};
    m.x = acv_input(g, "x", 4, xs);
    m.t = acv_input(g, "t", 4, ts);
    acv_id u = acv_convt2d(g, "up1", m.x, 4, 3, 2, 1, 1, 1, true); /* 6x6 */
    u = acv_batchnorm(g, "bn", u, 1e-5f, 0.1f);
    u = acv_activation(g, u, ACV_ACT_SILU, 0);
    m.out = acv_convt2d(g, "up2", u, 2, 2, 1, 0, 0, 2, true);      /* 7x7 */
    m.loss = acv_focal_loss(g, m.out, m.t, 0.25f, 2.0f);
    acv_graph_set_output(g, m.out);
    assert_int_equal(acv_graph_status(g), 0);
    return m;
}

/* strided conv -> ceil-mode avgpool -> tanh / broadcast parameter -> log-softmax over
 * channels -> flatten -> linear -> cross-entropy with label smoothing and class weights */
static net build_net4(int N)
{
    net m;
    acv_graph *g = m.g = acv_graph_new();
    int64_t xs[4] = {N, 2, 5, 5}, ts[1] = {N}, ds[3] = {3, 1, 1};
    m.x = acv_input(g, "x", 4, xs);
    m.t = acv_input(g, "t", 1, ts);
    acv_id c = acv_conv2d(g, "c", m.x, 3, 3, 2, 1, 1, 1, true);    /* 3x3 */
    acv_id p = acv_avgpool(g, c, 2, 2, 0, true, false);            /* 2x2 */
    acv_id d = acv_param(g, "div", 3, ds, ACV_INIT_ONE, true);
    acv_id q = acv_binary(g, ACV_BIN_DIV, acv_activation(g, p, ACV_ACT_TANH, 0), d);
    acv_id ls = acv_softmax(g, q, 1, true);
    acv_id f = acv_flatten(g, acv_activation(g, ls, ACV_ACT_HARDSWISH, 0), 1);
    m.out = acv_linear(g, "fc", f, 4, true);
    float cw[4] = {1.0f, 2.0f, 0.5f, 1.5f};
    m.loss = acv_cross_entropy(g, m.out, m.t, 0.1f, cw);
    acv_graph_set_output(g, m.out);
    assert_int_equal(acv_graph_status(g), 0);
    return m;
}

/* Writes random inputs and valid targets for net `which`. */
static void fill_inputs(net *m, int which, uint64_t seed)
{
    acv_rng r;
    acv_rng_seed3(&r, seed, 3, 3);
    fill_normal(acv_graph_data(m->g, m->x), numel_of(m->g, m->x), &r, 1.0f);
    float *t = acv_graph_data(m->g, m->t);
    int64_t nt = numel_of(m->g, m->t);
    int K = (int)acv_graph_shape(m->g, m->out)->d[1];
    for (int64_t i = 0; i < nt; i++) {
        if (which == 1 || which == 4 || which == 6) t[i] = (float)acv_rng_below(&r, (uint32_t)K);
        else if (which == 2) t[i] = acv_rng_uniform(&r);
        else t[i] = acv_rng_uniform(&r) < 0.3f ? 1.0f : 0.0f;
    }
}

/* ConvNeXt's pieces: conv -> layer norm over the channels of NCHW -> GELU -> 1x1 conv ->
 * flatten -> layer norm over the last axis -> linear -> cross-entropy */
static net build_net6(int N)
{
    net m;
    acv_graph *g = m.g = acv_graph_new();
    int64_t xs[4] = {N, 2, 4, 4}, ts[1] = {N};
    m.x = acv_input(g, "x", 4, xs);
    m.t = acv_input(g, "t", 1, ts);
    acv_id h = acv_conv2d(g, "c0", m.x, 4, 2, 2, 0, 1, 1, true);     /* 2x2 */
    h = acv_layernorm(g, "ln0", h, 1, 1e-6f);
    h = acv_activation(g, h, ACV_ACT_GELU, 0);
    h = acv_conv2d(g, "c1", h, 3, 1, 1, 0, 1, 1, true);
    acv_id f = acv_flatten(g, h, 1);                                 /* (N, 12) */
    f = acv_layernorm(g, "ln1", f, 1, 1e-5f);
    m.out = acv_linear(g, "fc", f, 4, true);
    m.loss = acv_cross_entropy(g, m.out, m.t, 0, NULL);
    acv_graph_set_output(g, m.out);
    assert_int_equal(acv_graph_status(g), 0);
    return m;
}

static net build_net(int which, int N)
{
    switch (which) {
    case 6: return build_net6(N);
    case 1: return build_net1(N);
    case 2: return build_net2(N);
    case 3: return build_net3(N);
    default: return build_net4(N);
    }
}

static double loss_at(net *m)
{
    assert_int_equal(acv_graph_forward(m->g, -1, true, 11), 0);
    return (double)acv_graph_data(m->g, m->loss)[0];
}

/* Compares the analytic gradient `an` of n values at `data` with central differences of
 * the loss in up to 48 coordinates and returns the norm-wise relative error. ReLU and max
 * pool make the loss piecewise smooth: a coordinate whose one-sided differences disagree
 * sits within a step of a kink and is skipped (at most a quarter of them may be). */
static double fd_check(net *m, const char *what, float *data, const float *an, int64_t n, double eps, acv_rng *r)
{
    int cnt = n <= 48 ? (int)n : 48, skipped = 0;
    double dd = 0, nf = 0, na = 0, worst = 0;
    int64_t worst_j = -1;
    double l0 = loss_at(m);
    for (int k = 0; k < cnt; k++) {
        int64_t j = n <= 48 ? k : (int64_t)acv_rng_below(r, (uint32_t)n);
        float v = data[j];
        float vp = (float)(v + eps), vm = (float)(v - eps);
        data[j] = vp;
        double lp = loss_at(m);
        data[j] = vm;
        double lm = loss_at(m);
        data[j] = v;
        double fd = (lp - lm) / ((double)vp - (double)vm);
        double fwd = (lp - l0) / ((double)vp - v), bwd = (l0 - lm) / ((double)v - vm);
        if (fabs(fwd - bwd) > 2e-4 + 0.05 * fabs(fd)) {
            skipped++;
            continue;
        }
        double d = fd - an[j];
        dd += d * d;
        nf += fd * fd;
        na += (double)an[j] * an[j];
        if (fabs(d) > worst) {
            worst = fabs(d);
            worst_j = j;
        }
    }
    double scale = sqrt(nf > na ? nf : na);
    double rel = sqrt(dd) / (scale > 1e-4 ? scale : 1e-4);
    if (FD_VERBOSE || rel > 2e-2 || skipped * 4 > cnt)
        print_message("FD %s: rel err %.3g (|fd| %.3g, |an| %.3g), worst at %lld: diff %.3g; %d of %d skipped\n",
                      what, rel, sqrt(nf), sqrt(na), (long long)worst_j, worst, skipped, cnt);
    return skipped * 4 > cnt ? INFINITY : rel;
}

/* Full check of net `which` on backend be: every trainable parameter and the input. */
static void grad_check_net(int which, const acv_backend *be)
{
    net m = build_net(which, which == 1 ? 3 : 2);
    acv_graph_want_input_grad(m.g, m.x, true);
    randomize_params(m.g, 100 + (uint64_t)which);
    assert_int_equal(acv_graph_compile(m.g, be, acv_graph_shape(m.g, m.x)->d[0], true), 0);
    fill_inputs(&m, which, 200 + (uint64_t)which);
    assert_int_equal(acv_graph_forward(m.g, -1, true, 11), 0);
    assert_int_equal(acv_graph_backward(m.g, m.loss), 0);
    int64_t np;
    float *grads = acv_graph_grads(m.g, &np);
    assert_non_null(grads);
    assert_int_equal(np, acv_graph_num_params(m.g));
    float *an = dup_floats(grads, np);
    float *anx = dup_floats(acv_graph_grad(m.g, m.x), numel_of(m.g, m.x));
    acv_rng r;
    acv_rng_seed3(&r, 9, (uint64_t)which, 0);
    double gsum = 0;
    for (int64_t i = 0; i < np; i++) gsum += fabs(an[i]);
    assert_true(gsum > 1e-3); /* a non-trivial gradient */
    int failures = 0;
    for (int i = 0; i < acv_graph_param_count(m.g); i++) {
        acv_param_info pi;
        assert_int_equal(acv_graph_param(m.g, i, &pi), 0);
        if (!pi.trainable) {
            assert_null(pi.grad);
            continue;
        }
        assert_ptr_equal(pi.grad, grads + pi.offset);
        char what[128];
        snprintf(what, sizeof what, "net%d %s", which, pi.name);
        if (fd_check(&m, what, pi.data, an + pi.offset, acv_shape_numel(&pi.shape), FD_EPS, &r) > 2e-2) failures++;
    }
    char what[64];
    snprintf(what, sizeof what, "net%d input", which);
    if (fd_check(&m, what, acv_graph_data(m.g, m.x), anx, numel_of(m.g, m.x), FD_EPS, &r) > 2e-2) failures++;
    assert_int_equal(failures, 0);
    free(an);
    free(anx);
    acv_graph_free(m.g);
}

static void test_grad_net1(void **state) { (void)state; grad_check_net(1, acv_backend_ref()); grad_check_net(1, acv_backend_cpu()); }
static void test_grad_net2(void **state) { (void)state; grad_check_net(2, acv_backend_ref()); }
static void test_grad_net3(void **state) { (void)state; grad_check_net(3, acv_backend_ref()); grad_check_net(3, acv_backend_cpu()); }
static void test_grad_net4(void **state) { (void)state; grad_check_net(4, acv_backend_ref()); }
static void test_grad_net6(void **state) { (void)state; grad_check_net(6, acv_backend_ref()); grad_check_net(6, acv_backend_cpu()); }

/* ---- ref vs CPU backend ----------------------------------------------------------------- */

typedef struct run_result {
    float *out, *grads, *dx, loss, *eval_out, *buffers;
    int64_t n_out, n_grads, n_dx, n_buffers;
    int fused; /* batch norms computing their activation in their own pass */
} run_result;

/* One training forward/backward and one eval forward on backend be, from the same
 * parameters and buffers (restored first). */
static run_result run_on(net *m, int which, const acv_backend *be, const float *params, const float *buffers)
{
    run_result rr;
    int64_t np, nb;
    int N = (int)acv_graph_shape(m->g, m->x)->d[0];
    acv_graph_want_input_grad(m->g, m->x, true);
    assert_int_equal(acv_graph_compile(m->g, be, N, true), 0);
    float *P = acv_graph_params(m->g, &np), *B = acv_graph_buffers(m->g, &nb);
    memcpy(P, params, (size_t)np * sizeof(float));
    memcpy(B, buffers, (size_t)nb * sizeof(float));
    fill_inputs(m, which, 55);
    assert_int_equal(acv_graph_forward(m->g, -1, false, 1), 0);
    rr.n_out = numel_of(m->g, m->out);
    rr.eval_out = dup_floats(acv_graph_data(m->g, m->out), rr.n_out);
    assert_int_equal(acv_graph_forward(m->g, -1, true, 1), 0);
    assert_int_equal(acv_graph_backward(m->g, m->loss), 0);
    rr.n_buffers = nb;
    rr.buffers = dup_floats(acv_graph_buffers(m->g, &nb), nb); /* running statistics updated */
    rr.fused = 0;
    for (int i = 0; i < m->g->n; i++) rr.fused += m->g->nodes[i].fused_act >= 0;
    rr.out = dup_floats(acv_graph_data(m->g, m->out), rr.n_out);
    rr.loss = acv_graph_data(m->g, m->loss)[0];
    float *gr = acv_graph_grads(m->g, &rr.n_grads);
    rr.grads = dup_floats(gr, rr.n_grads);
    rr.n_dx = numel_of(m->g, m->x);
    rr.dx = dup_floats(acv_graph_grad(m->g, m->x), rr.n_dx);
    return rr;
}

static void free_rr(run_result *r)
{
    free(r->out);
    free(r->grads);
    free(r->dx);
    free(r->eval_out);
    free(r->buffers);
}

static void compare_backends(net *m, int which)
{
    randomize_params(m->g, 31);
    int64_t np, nb;
    float *pp = acv_graph_params(m->g, &np), *bb = acv_graph_buffers(m->g, &nb);
    float *p = dup_floats(pp, np), *b = dup_floats(bb, nb);
    run_result a = run_on(m, which, acv_backend_ref(), p, b);
    run_result c = run_on(m, which, acv_backend_cpu(), p, b);
    double e1 = max_rel_diff(c.out, a.out, a.n_out, 1e-3);
    double e2 = max_rel_diff(c.eval_out, a.eval_out, a.n_out, 1e-3);
    double e3 = max_rel_diff(c.grads, a.grads, a.n_grads, 1e-3);
    double e4 = max_rel_diff(c.dx, a.dx, a.n_dx, 1e-3);
    double e5 = fabs((double)c.loss - a.loss) / fmax(fabs(a.loss), 1e-3);
    double e6 = max_rel_diff(c.buffers, a.buffers, a.n_buffers, 1e-3);
    if (e1 > 1e-4 || e2 > 1e-4 || e3 > 1e-4 || e4 > 1e-4 || e5 > 1e-4 || e6 > 1e-5)
        fail_msg("net %d: ref vs cpu: out %.3g eval %.3g grads %.3g dx %.3g loss %.3g buffers %.3g", which, e1, e2, e3,
                 e4, e5, e6);
    /* the CPU backend runs each batch norm -> activation pair in one pass; the reference never */
    assert_int_equal(a.fused, 0);
    int bn_act = 0;
    for (int i = 0; i < m->g->n; i++) {
        const acv_node *nd = &m->g->nodes[i];
        bn_act += nd->op == ACV_OP_ACT && m->g->nodes[nd->in[0]].op == ACV_OP_BATCHNORM;
    }
    assert_int_equal(c.fused, bn_act);
    free_rr(&a);
    free_rr(&c);
    free(p);
    free(b);
}

/* A wider conv stack with shapes that exercise oneDNN's blocked paths. */
static net build_net5(int N)
{
    net m;
    acv_graph *g = m.g = acv_graph_new();
    int64_t xs[4] = {N, 3, 20, 20}, ts[1] = {N};
    m.x = acv_input(g, "x", 4, xs);
    m.t = acv_input(g, "t", 1, ts);
    acv_id h = acv_relu(g, acv_batchnorm(g, "bn0", acv_conv2d(g, "c0", m.x, 16, 3, 2, 1, 1, 1, false), 1e-5f, 0.1f));
    acv_id h2 = acv_relu(g, acv_batchnorm(g, "bn1", acv_conv2d(g, "c1", h, 16, 3, 1, 1, 1, 16, false), 1e-5f, 0.1f));
    h2 = acv_conv2d(g, "c2", h2, 16, 1, 1, 0, 1, 1, true);
    h = acv_add(g, h, h2);
    h = acv_maxpool(g, h, 3, 2, 1, true);
    h = acv_convt2d(g, "ct", h, 8, 2, 2, 0, 0, 1, true);
    h = acv_conv2d(g, "c3", h, 32, 3, 2, 1, 1, 1, true);
    acv_id f = acv_flatten(g, acv_global_avgpool(g, h), 1);
    m.out = acv_linear(g, "fc", f, 10, true);
    m.loss = acv_cross_entropy(g, m.out, m.t, 0, NULL);
    acv_graph_set_output(g, m.out);
    assert_int_equal(acv_graph_status(g), 0);
    return m;
}

static void test_ref_vs_cpu(void **state)
{
    (void)state;
    acv_set_threads(2);
    for (int which = 1; which <= 4; which++) {
        net m = build_net(which, 4);
        compare_backends(&m, which);
        acv_graph_free(m.g);
    }
    net m = build_net5(4);
    compare_backends(&m, 1);
    acv_graph_free(m.g);
    m = build_net6(4);
    compare_backends(&m, 6);
    acv_graph_free(m.g);
    acv_set_threads(1);
}

/* ---- memory planning -------------------------------------------------------------------- */

/* A deep chain (conv -> bn -> relu) x depth with residual adds every 3 blocks, a concat with
 * the stem (a long-lived activation) and a flatten alias as the output. */
static acv_graph *build_chain(int depth, acv_id *xo, acv_id *out)
{
    acv_graph *g = acv_graph_new();
    int64_t xs[4] = {2, 3, 12, 12};
    acv_id x = *xo = acv_input(g, "x", 4, xs);
    acv_id stem = acv_conv2d(g, "stem", x, 8, 3, 1, 1, 1, 1, true);
    acv_id h = stem, blk = stem;
    char a[32], b[32];
    for (int i = 0; i < depth; i++) {
        snprintf(a, sizeof a, "c%d", i);
        snprintf(b, sizeof b, "bn%d", i);
        h = acv_relu(g, acv_batchnorm(g, b, acv_conv2d(g, a, h, 8, 3, 1, 1, 1, 1, false), 1e-5f, 0.1f));
        if (i % 3 == 2) {
            h = acv_add(g, h, blk);
            blk = h;
        }
    }
    acv_id parts[2] = {h, stem};
    h = acv_concat(g, 2, parts, 1);
    h = acv_conv2d(g, "head", h, 4, 1, 1, 0, 1, 1, true);
    *out = acv_flatten(g, h, 1);
    acv_graph_set_output(g, *out);
    assert_int_equal(acv_graph_status(g), 0);
    return g;
}

static void test_memory_planning(void **state)
{
    (void)state;
    acv_id x, out;
    acv_graph *g = build_chain(18, &x, &out);
    randomize_params(g, 3);
    int64_t nb;
    float *bb = acv_graph_buffers(g, &nb);
    float *buf0 = dup_floats(bb, nb);
    /* training compile: every activation kept */
    assert_int_equal(acv_graph_compile(g, acv_backend_ref(), 2, true), 0);
    int64_t train_arena = g->arena_floats;
    acv_rng r;
    acv_rng_seed(&r, 4);
    int64_t nx = numel_of(g, x);
    float *xin = malloc((size_t)nx * sizeof(float));
    fill_normal(xin, nx, &r, 1.0f);
    memcpy(acv_graph_data(g, x), xin, (size_t)nx * sizeof(float));
    assert_int_equal(acv_graph_forward(g, -1, false, 0), 0);
    int64_t no = numel_of(g, out);
    assert_int_equal(no, 2 * 4 * 144);
    float *ref = dup_floats(acv_graph_data(g, out), no);
    /* inference compile: buffers shared */
    assert_int_equal(acv_graph_compile(g, acv_backend_ref(), 2, false), 0);
    int64_t sum = 0;
    for (int i = 0; i < acv_graph_node_count(g); i++) {
        acv_op op = acv_graph_op(g, i);
        if (op != ACV_OP_PARAM && op != ACV_OP_RESHAPE) sum += numel_of(g, i);
    }
    print_message("arena: inference %lld floats, training %lld, sum of activations %lld\n",
                  (long long)g->arena_floats, (long long)train_arena, (long long)sum);
    assert_true(g->arena_floats * 4 < sum);
    assert_true(train_arena >= sum);
    /* some nodes really share storage */
    int shared = 0;
    for (int i = 0; i < acv_graph_node_count(g); i++)
        for (int j = i + 1; j < acv_graph_node_count(g); j++)
            if (acv_graph_op(g, i) != ACV_OP_PARAM && acv_graph_op(g, i) != ACV_OP_RESHAPE &&
                acv_graph_op(g, j) != ACV_OP_PARAM && acv_graph_op(g, j) != ACV_OP_RESHAPE &&
                acv_graph_data(g, i) == acv_graph_data(g, j))
                shared++;
    assert_true(shared > 10);
    /* the output alias points at its input's storage */
    assert_ptr_equal(acv_graph_data(g, out), acv_graph_data(g, out - 1));
    assert_int_equal(acv_graph_forward(g, -1, true, 0), ACV_EINVAL); /* not a training compile */
    assert_null(acv_graph_grad(g, out));
    memcpy(acv_graph_buffers(g, NULL), buf0, (size_t)nb * sizeof(float));
    memcpy(acv_graph_data(g, x), xin, (size_t)nx * sizeof(float));
    /* inference folds batch norm into the convolutions: equal up to rounding */
    assert_int_equal(acv_graph_forward(g, -1, false, 0), 0);
    float *first = dup_floats(acv_graph_data(g, out), no);
    assert_true(max_rel_diff(first, ref, no, 1e-6) < 1e-5);
    /* and again: the input survives a forward, and the result is bitwise repeatable */
    assert_memory_equal(acv_graph_data(g, x), xin, (size_t)nx * sizeof(float));
    assert_int_equal(acv_graph_forward(g, -1, false, 0), 0);
    assert_memory_equal(acv_graph_data(g, out), first, (size_t)no * sizeof(float));
    free(first);
    assert_int_equal(acv_graph_backward(g, out), ACV_EINVAL);
    free(ref);
    free(xin);
    free(buf0);
    acv_graph_free(g);
}

/* ---- set_batch ---------------------------------------------------------------------------- */

static void set_batch_on(const acv_backend *be)
{
    acv_id x, out;
    acv_graph *g = build_chain(4, &x, &out);
    randomize_params(g, 8);
    for (int training = 0; training <= 1; training++) {
        assert_int_equal(acv_graph_compile(g, be, 4, training), 0);
        assert_int_equal(acv_graph_batch(g), 4);
        int64_t per = numel_of(g, x) / 4, po = numel_of(g, out) / 4;
        acv_rng r;
        acv_rng_seed(&r, 12);
        float *xin = malloc((size_t)(4 * per) * sizeof(float));
        fill_normal(xin, 4 * per, &r, 1.0f);
        memcpy(acv_graph_data(g, x), xin, (size_t)(4 * per) * sizeof(float));
        assert_int_equal(acv_graph_forward(g, -1, false, 0), 0);
        float *full = dup_floats(acv_graph_data(g, out), 4 * po);
        assert_int_equal(acv_graph_set_batch(g, 2), 0);
        assert_int_equal(acv_graph_batch(g), 2);
        assert_shape(g, x, 4, 2, 3, 12, 12);
        assert_shape(g, out, 2, 2, 4 * 144, 0, 0);
        memcpy(acv_graph_data(g, x), xin + 2 * per, (size_t)(2 * per) * sizeof(float));
        assert_int_equal(acv_graph_forward(g, -1, false, 0), 0);
        double e = max_rel_diff(acv_graph_data(g, out), full + 2 * po, 2 * po, 1e-3);
        if (e > 1e-5) fail_msg("%s training=%d: batch 2 differs from the full batch by %.3g", be->name, training, e);
        assert_int_equal(acv_graph_set_batch(g, 1), 0);
        memcpy(acv_graph_data(g, x), xin + 3 * per, (size_t)per * sizeof(float));
        assert_int_equal(acv_graph_forward(g, -1, false, 0), 0);
        e = max_rel_diff(acv_graph_data(g, out), full + 3 * po, po, 1e-3);
        if (e > 1e-5) fail_msg("%s: batch 1 differs from the full batch by %.3g", be->name, e);
        assert_int_equal(acv_graph_set_batch(g, 5), ACV_EINVAL);
        assert_int_equal(acv_graph_set_batch(g, 0), ACV_EINVAL);
        assert_int_equal(acv_graph_batch(g), 1);
        /* back to the full batch */
        assert_int_equal(acv_graph_set_batch(g, 4), 0);
        memcpy(acv_graph_data(g, x), xin, (size_t)(4 * per) * sizeof(float));
        assert_int_equal(acv_graph_forward(g, -1, false, 0), 0);
        assert_true(max_rel_diff(acv_graph_data(g, out), full, 4 * po, 1e-3) <= 1e-5);
        free(full);
        free(xin);
    }
    acv_graph_free(g);
    /* not compiled */
    g = acv_graph_new();
    assert_int_equal(acv_graph_set_batch(g, 1), ACV_EINVAL);
    acv_graph_free(g);
}

static void test_set_batch(void **state)
{
    (void)state;
    set_batch_on(acv_backend_ref());
    set_batch_on(acv_backend_cpu());
}

/* Training with a smaller batch: the loss and gradients of a half batch equal those of a
 * graph built for that batch size. */
static void test_set_batch_training(void **state)
{
    (void)state;
    net big = build_net1(4), small = build_net1(2);
    randomize_params(big.g, 17);
    randomize_params(small.g, 17);
    assert_int_equal(acv_graph_compile(big.g, acv_backend_cpu(), 4, true), 0);
    assert_int_equal(acv_graph_compile(small.g, acv_backend_cpu(), 2, true), 0);
    assert_int_equal(acv_graph_set_batch(big.g, 2), 0);
    fill_inputs(&small, 1, 5);
    memcpy(acv_graph_data(big.g, big.x), acv_graph_data(small.g, small.x), (size_t)numel_of(small.g, small.x) * 4);
    memcpy(acv_graph_data(big.g, big.t), acv_graph_data(small.g, small.t), 2 * sizeof(float));
    for (int k = 0; k < 2; k++) {
        net *m = k ? &small : &big;
        assert_int_equal(acv_graph_forward(m->g, -1, true, 3), 0);
        assert_int_equal(acv_graph_backward(m->g, m->loss), 0);
    }
    assert_true(fabsf(acv_graph_data(big.g, big.loss)[0] - acv_graph_data(small.g, small.loss)[0]) < 1e-6f);
    int64_t n1, n2;
    float *g1 = acv_graph_grads(big.g, &n1), *g2 = acv_graph_grads(small.g, &n2);
    assert_int_equal(n1, n2);
    assert_true(max_rel_diff(g1, g2, n1, 1e-3) < 1e-5);
    acv_graph_free(big.g);
    acv_graph_free(small.g);
}

/* ---- backward twice, determinism -------------------------------------------------------- */

static void test_backward_twice(void **state)
{
    (void)state;
    for (int which = 1; which <= 3; which++) {
        net m = build_net(which, 3);
        acv_graph_want_input_grad(m.g, m.x, true);
        randomize_params(m.g, 41);
        assert_int_equal(acv_graph_compile(m.g, acv_backend_cpu(), 3, true), 0);
        fill_inputs(&m, which, 6);
        assert_int_equal(acv_graph_forward(m.g, -1, true, 2), 0);
        assert_int_equal(acv_graph_backward(m.g, m.loss), 0);
        int64_t n;
        float *gg = acv_graph_grads(m.g, &n);
        float *g1 = dup_floats(gg, n);
        float *dx1 = dup_floats(acv_graph_grad(m.g, m.x), numel_of(m.g, m.x));
        assert_int_equal(acv_graph_backward(m.g, m.loss), 0);
        assert_memory_equal(g1, acv_graph_grads(m.g, NULL), (size_t)n * sizeof(float));
        assert_memory_equal(dx1, acv_graph_grad(m.g, m.x), (size_t)numel_of(m.g, m.x) * sizeof(float));
        /* a forward in between (same data, same seed) changes nothing either */
        assert_int_equal(acv_graph_forward(m.g, -1, true, 2), 0);
        assert_int_equal(acv_graph_backward(m.g, m.loss), 0);
        assert_memory_equal(g1, acv_graph_grads(m.g, NULL), (size_t)n * sizeof(float));
        /* backward from a non-scalar node is refused */
        assert_int_equal(acv_graph_backward(m.g, m.out), ACV_EINVAL);
        free(g1);
        free(dx1);
        acv_graph_free(m.g);
    }
}

static void test_determinism(void **state)
{
    (void)state;
    acv_set_threads(2); /* bitwise identical with several threads too */
    float *first_g = NULL, *first_o = NULL, first_loss = 0;
    int64_t n = 0, no = 0;
    for (int rep = 0; rep < 2; rep++) {
        net m = build_net5(6);
        acv_graph_want_input_grad(m.g, m.x, true);
        randomize_params(m.g, 77);
        assert_int_equal(acv_graph_compile(m.g, acv_backend_cpu(), 6, true), 0);
        fill_inputs(&m, 1, 78);
        for (int step = 0; step < 2; step++) { /* BN running stats evolve identically too */
            assert_int_equal(acv_graph_forward(m.g, -1, true, 5), 0);
            assert_int_equal(acv_graph_backward(m.g, m.loss), 0);
        }
        float *gr = acv_graph_grads(m.g, &n);
        no = numel_of(m.g, m.out);
        int64_t nb;
        float *bufs = acv_graph_buffers(m.g, &nb);
        if (rep == 0) {
            first_g = malloc((size_t)(n + numel_of(m.g, m.x) + nb) * sizeof(float));
            memcpy(first_g, gr, (size_t)n * sizeof(float));
            memcpy(first_g + n, acv_graph_grad(m.g, m.x), (size_t)numel_of(m.g, m.x) * sizeof(float));
            memcpy(first_g + n + numel_of(m.g, m.x), bufs, (size_t)nb * sizeof(float));
            first_o = dup_floats(acv_graph_data(m.g, m.out), no);
            first_loss = acv_graph_data(m.g, m.loss)[0];
        } else {
            assert_memory_equal(first_g, gr, (size_t)n * sizeof(float));
            assert_memory_equal(first_g + n, acv_graph_grad(m.g, m.x), (size_t)numel_of(m.g, m.x) * sizeof(float));
            assert_memory_equal(first_g + n + numel_of(m.g, m.x), bufs, (size_t)nb * sizeof(float));
            assert_memory_equal(first_o, acv_graph_data(m.g, m.out), (size_t)no * sizeof(float));
            assert_true(first_loss == acv_graph_data(m.g, m.loss)[0]);
        }
        acv_graph_free(m.g);
    }
    free(first_g);
    free(first_o);
    acv_set_threads(1);
}

/* ---- dropout ------------------------------------------------------------------------------ */

static void test_dropout_modes(void **state)
{
    (void)state;
    acv_graph *g = acv_graph_new();
    int64_t xs[2] = {4, 1000};
    acv_id x = acv_input(g, "x", 2, xs);
    acv_id t = acv_input(g, "t", 2, xs);
    acv_id d = acv_dropout(g, x, 0.3f);
    acv_id loss = acv_bce_logits(g, d, t);
    acv_graph_want_input_grad(g, x, true);
    assert_int_equal(acv_graph_compile(g, acv_backend_cpu(), 4, true), 0);
    int64_t n = 4000;
    acv_rng r;
    acv_rng_seed(&r, 1);
    float *xv = acv_graph_data(g, x);
    fill_uniform(xv, n, &r, 0.5f, 1.5f);
    fill_uniform(acv_graph_data(g, t), n, &r, 0, 1);
    /* eval: identity */
    assert_int_equal(acv_graph_forward(g, -1, false, 1), 0);
    assert_memory_equal(acv_graph_data(g, d), xv, (size_t)n * sizeof(float));
    /* training: ~30% zeros, the rest scaled by 1/0.7 */
    assert_int_equal(acv_graph_forward(g, -1, true, 1), 0);
    float *m1 = dup_floats(acv_graph_data(g, d), n);
    int zeros = 0;
    for (int64_t i = 0; i < n; i++) {
        if (m1[i] == 0) zeros++;
        else assert_true(fabsf(m1[i] - xv[i] / 0.7f) < 1e-5f);
    }
    assert_true(zeros > 1000 && zeros < 1400);
    /* same seed, same mask; another seed, another mask */
    assert_int_equal(acv_graph_forward(g, -1, true, 1), 0);
    assert_memory_equal(acv_graph_data(g, d), m1, (size_t)n * sizeof(float));
    assert_int_equal(acv_graph_forward(g, -1, true, 2), 0);
    assert_true(memcmp(acv_graph_data(g, d), m1, (size_t)n * sizeof(float)) != 0);
    /* backward goes through the mask of the last training forward */
    assert_int_equal(acv_graph_forward(g, -1, true, 1), 0);
    assert_int_equal(acv_graph_backward(g, loss), 0);
    const float *dx = acv_graph_grad(g, x), *dd = acv_graph_grad(g, d);
    for (int64_t i = 0; i < n; i++) {
        if (m1[i] == 0) assert_true(dx[i] == 0);
        else assert_true(fabsf(dx[i] - dd[i] / 0.7f) <= 1e-6f * fabsf(dd[i] / 0.7f) + 1e-12f);
    }
    free(m1);
    acv_graph_free(g);
}

/* ---- reshape_input ------------------------------------------------------------------------- */

static void test_reshape_input(void **state)
{
    (void)state;
    acv_graph *g = acv_graph_new();
    int64_t xs[4] = {1, 3, 32, 32};
    acv_id x = acv_input(g, "x", 4, xs);
    acv_id c = acv_relu(g, acv_batchnorm(g, "bn", acv_conv2d(g, "conv", x, 8, 3, 2, 1, 1, 1, false), 1e-5f, 0.1f));
    acv_id p = acv_maxpool(g, c, 2, 2, 0, false);
    acv_id out = acv_linear(g, "fc", acv_flatten(g, acv_global_avgpool(g, p), 1), 5, true);
    acv_graph_set_output(g, out);
    randomize_params(g, 2);
    assert_int_equal(acv_graph_compile(g, acv_backend_cpu(), 1, false), 0);
    int64_t ns[4] = {2, 3, 48, 40};
    assert_int_equal(acv_graph_reshape_input(g, x, 4, ns), 0);
    assert_shape(g, x, 4, 2, 3, 48, 40);
    assert_shape(g, c, 4, 2, 8, 24, 20);
    assert_shape(g, p, 4, 2, 8, 12, 10);
    assert_shape(g, out, 2, 2, 5, 0, 0);
    /* the old plan is gone; compile again and run */
    assert_int_equal(acv_graph_forward(g, -1, false, 0), ACV_EINVAL);
    assert_int_equal(acv_graph_compile(g, acv_backend_cpu(), 2, false), 0);
    acv_rng r;
    acv_rng_seed(&r, 3);
    fill_normal(acv_graph_data(g, x), numel_of(g, x), &r, 1);
    assert_int_equal(acv_graph_forward(g, -1, false, 0), 0);
    for (int i = 0; i < 10; i++) assert_true(isfinite(acv_graph_data(g, out)[i]));
    float *before = dup_floats(acv_graph_data(g, out), 10);
    /* too small for the pooling: refused, old shapes kept, the compiled plan still usable */
    int64_t tiny[4] = {1, 3, 2, 2};
    int rc = acv_graph_reshape_input(g, x, 4, tiny);
    assert_int_equal(rc, ACV_ESHAPE);
    assert_non_null(strstr(acv_errmsg(), "cannot take that input shape"));
    assert_non_null(strstr(acv_errmsg(), "maxpool"));
    assert_int_equal(acv_graph_status(g), 0);
    assert_shape(g, x, 4, 2, 3, 48, 40);
    assert_shape(g, p, 4, 2, 8, 12, 10);
    /* wrong channel count: the conv names itself */
    int64_t ch[4] = {1, 4, 32, 32};
    assert_int_equal(acv_graph_reshape_input(g, x, 4, ch), ACV_ESHAPE);
    assert_non_null(strstr(acv_errmsg(), "conv"));
    assert_shape(g, c, 4, 2, 8, 24, 20);
    /* bad arguments */
    int64_t zero[4] = {1, 3, 0, 32};
    assert_int_equal(acv_graph_reshape_input(g, x, 4, zero), ACV_EINVAL);
    assert_shape(g, x, 4, 2, 3, 48, 40);
    assert_int_equal(acv_graph_reshape_input(g, c, 4, xs), ACV_EINVAL);
    assert_int_equal(acv_graph_forward(g, -1, false, 0), 0); /* no compile needed */
    assert_memory_equal(acv_graph_data(g, out), before, 10 * sizeof(float));
    free(before);
    acv_graph_free(g);
}

/* ---- JSON --------------------------------------------------------------------------------- */

static void copy_params_by_name(acv_graph *dst, acv_graph *src)
{
    int n = acv_graph_param_count(src);
    assert_int_equal(acv_graph_param_count(dst), n);
    for (int i = 0; i < n; i++) {
        acv_param_info pi;
        assert_int_equal(acv_graph_param(src, i, &pi), 0);
        acv_id id = acv_graph_find(dst, pi.name);
        if (id < 0) fail_msg("parameter %s missing after the round trip", pi.name);
        assert_int_equal(acv_graph_op(dst, id), ACV_OP_PARAM);
        const acv_shape *s = acv_graph_shape(dst, id);
        assert_int_equal(s->ndim, pi.shape.ndim);
        assert_memory_equal(s->d, pi.shape.d, (size_t)s->ndim * sizeof(int64_t));
        memcpy(acv_graph_data(dst, id), pi.data, (size_t)acv_shape_numel(s) * sizeof(float));
    }
}

/* Field by field (the struct has padding). */
static void assert_attrs_equal(const acv_attrs *a, const acv_attrs *b)
{
    assert_memory_equal(&a->conv, &b->conv, sizeof a->conv); /* ints only */
    const acv_pool_attrs *p = &a->pool, *q = &b->pool;
    assert_true(p->kh == q->kh && p->kw == q->kw && p->stride_h == q->stride_h && p->stride_w == q->stride_w);
    assert_true(p->pad_t == q->pad_t && p->pad_l == q->pad_l && p->pad_b == q->pad_b && p->pad_r == q->pad_r);
    assert_true(p->dil_h == q->dil_h && p->dil_w == q->dil_w && p->ceil_mode == q->ceil_mode &&
                p->count_include_pad == q->count_include_pad);
    assert_true(a->eps == b->eps && a->momentum == b->momentum && a->act == b->act && a->alpha == b->alpha);
    assert_true(a->oh == b->oh && a->ow == b->ow && a->bilinear == b->bilinear && a->align_corners == b->align_corners);
    assert_true(a->binop == b->binop && a->axis == b->axis && a->start == b->start && a->end == b->end &&
                a->step == b->step);
    assert_int_equal(a->spec_ndim, b->spec_ndim);
    for (int i = 0; i < a->spec_ndim; i++) assert_int_equal(a->spec[i], b->spec[i]);
    assert_true(a->log == b->log && a->p == b->p);
}

static void json_round_trip(net *m, int which)
{
    randomize_params(m->g, 9);
    char *js = acv_graph_to_json(m->g);
    assert_non_null(js);
    assert_null(strstr(js, "cross_entropy")); /* losses and their targets are not written */
    assert_null(strstr(js, "\"t\""));
    acv_graph *g2 = NULL;
    int rc = acv_graph_from_json(js, &g2);
    if (rc) fail_msg("from_json: %s", acv_errmsg());
    assert_int_equal(acv_graph_node_count(g2), acv_graph_node_count(m->g) - 2);
    assert_int_equal(acv_graph_num_params(g2), acv_graph_num_params(m->g));
    /* the same text again */
    char *js2 = acv_graph_to_json(g2);
    assert_string_equal(js, js2);
    copy_params_by_name(g2, m->g);
    acv_id x2 = acv_graph_input(g2), o2 = acv_graph_output(g2);
    assert_string_equal(acv_graph_name(g2, x2), "x");
    const acv_shape *s1 = acv_graph_shape(m->g, m->out), *s2 = acv_graph_shape(g2, o2);
    assert_memory_equal(s1, s2, sizeof *s1);
    int N = (int)acv_graph_shape(m->g, m->x)->d[0];
    assert_int_equal(acv_graph_compile(m->g, acv_backend_cpu(), N, false), 0);
    assert_int_equal(acv_graph_compile(g2, acv_backend_cpu(), N, false), 0);
    fill_inputs(m, which, 4);
    memcpy(acv_graph_data(g2, x2), acv_graph_data(m->g, m->x), (size_t)numel_of(m->g, m->x) * sizeof(float));
    assert_int_equal(acv_graph_forward(m->g, m->out, false, 0), 0);
    assert_int_equal(acv_graph_forward(g2, -1, false, 0), 0);
    assert_memory_equal(acv_graph_data(m->g, m->out), acv_graph_data(g2, o2), (size_t)numel_of(g2, o2) * sizeof(float));
    free(js);
    free(js2);
    acv_graph_free(g2);
}

static void test_json_round_trip(void **state)
{
    (void)state;
    for (int which = 1; which <= 6; which++) {
        if (which == 5) continue;
        net m = build_net(which, 2);
        json_round_trip(&m, which);
        acv_graph_free(m.g);
    }
    /* a graph with every remaining attribute: leaky alpha, maxpool ceil/dilation, asymmetric
     * conv, reshape spec, log-softmax, dropout p, align_corners */
    acv_graph *g = acv_graph_new();
    int64_t xs[4] = {1, 4, 9, 9};
    acv_id x = acv_input(g, "x", 4, xs);
    int64_t ws[4] = {6, 2, 2, 3};
    acv_id w = acv_param(g, "cx.weight", 4, ws, ACV_INIT_UNIFORM_FAN_IN, true);
    acv_conv_attrs ca = {2, 3, 2, 1, 1, 0, 0, 2, 1, 2, 2, 0, 0};
    acv_id h = acv_conv2d_ex(g, "cx", x, w, -1, &ca);
    h = acv_activation(g, h, ACV_ACT_LEAKY_RELU, 0.2f);
    acv_pool_attrs pa = {2, 2, 1, 1, 1, 1, 1, 1, 2, 2, true, false};
    h = acv_pool_ex(g, ACV_OP_MAXPOOL, h, &pa);
    h = acv_upsample(g, h, 11, 7, true, true);
    h = acv_dropout(g, h, 0.25f);
    int64_t sp[3] = {0, 6, -1};
    h = acv_reshape(g, h, 3, sp);
    h = acv_softmax(g, h, 2, true);
    h = acv_layernorm(g, "lnx", acv_activation(g, h, ACV_ACT_GELU, 0), 1, 1e-6f);
    acv_graph_set_output(g, h);
    assert_int_equal(acv_graph_status(g), 0);
    char *js = acv_graph_to_json(g);
    assert_non_null(js);
    acv_graph *g2;
    assert_int_equal(acv_graph_from_json(js, &g2), 0);
    assert_int_equal(acv_graph_node_count(g2), acv_graph_node_count(g));
    for (int i = 0; i < acv_graph_node_count(g); i++) {
        assert_int_equal(acv_graph_op(g2, i), acv_graph_op(g, i));
        assert_memory_equal(acv_graph_shape(g2, i), acv_graph_shape(g, i), sizeof(acv_shape));
        assert_attrs_equal(&g2->nodes[i].a, &g->nodes[i].a);
        assert_int_equal(g2->nodes[i].init, g->nodes[i].init);
        assert_int_equal(g2->nodes[i].trainable, g->nodes[i].trainable);
    }
    char *js2 = acv_graph_to_json(g2);
    assert_string_equal(js, js2);
    free(js);
    free(js2);
    acv_graph_free(g2);
    acv_graph_free(g);
    /* no output: refused */
    g = acv_graph_new();
    acv_input(g, "x", 4, xs);
    assert_null(acv_graph_to_json(g));
    assert_non_null(strstr(acv_errmsg(), "output"));
    acv_graph_free(g);
}

/* acv_graph_append_json: a classifier's layers added into another graph under a prefix, at
 * another input size, frozen or not, all nodes or a kept subset; stops at the first node that
 * does not fit when no subset is given. */
static void test_json_append(void **state)
{
    (void)state;
    /* the source: conv 3->4 s2 -> relu -> conv 4->6 s2 -> gap -> flatten -> linear(6->2) */
    acv_graph *s = acv_graph_new();
    int64_t xs[4] = {1, 3, 16, 16};
    acv_id x = acv_input(s, "in", 4, xs);
    acv_id c1 = acv_conv2d(s, "c1", x, 4, 3, 2, 1, 1, 1, true);
    acv_id r1 = acv_activation(s, c1, ACV_ACT_RELU, 0);
    acv_id c2 = acv_conv2d(s, "c2", r1, 6, 3, 2, 1, 1, 1, false);
    int64_t fl[2] = {0, -1};
    acv_id h = acv_linear(s, "fc", acv_reshape(s, acv_global_avgpool(s, c2), 2, fl), 2, true);
    acv_graph_set_output(s, h);
    assert_int_equal(acv_graph_status(s), 0);
    char *js = acv_graph_to_json(s);
    assert_non_null(js);
    int n = acv_graph_node_count(s), ids[32];
    assert_true(n <= 32);

    /* everything, at 32x32 behind a node of the target, prefixed and frozen */
    acv_graph *g = acv_graph_new();
    int64_t gs[4] = {1, 3, 32, 32};
    acv_id gx = acv_input(g, "images", 4, gs);
    acv_id pre = acv_activation(g, gx, ACV_ACT_SIGMOID, 0);
    int added = acv_graph_append_json(g, js, pre, "bb.", true, NULL, ids, 32);
    assert_int_equal(added, n - 1); /* all but the input */
    assert_int_equal(acv_graph_status(g), 0);
    assert_int_equal(ids[0], pre);
    for (int i = n; i < 32; i++) assert_int_equal(ids[i], -1);
    acv_id w1 = acv_graph_find(g, "bb.c1.weight"), cc2 = acv_graph_find(g, "bb.c2");
    assert_true(w1 >= 0 && cc2 >= 0);
    assert_int_equal(acv_graph_find(g, "c1.weight"), -1);
    assert_false(g->nodes[w1].trainable);
    assert_shape(g, cc2, 4, 1, 6, 8, 8); /* 32 / 4: the new size */
    assert_shape(g, acv_graph_find(g, "bb.fc"), 2, 1, 2, 0, 0);
    acv_graph_free(g);

    /* a subset: the convolutions only (c2 and what it reads), trainable as the source says */
    unsigned char keep[32] = {0};
    for (int i = 0; i < n; i++) {
        const char *nm = acv_graph_name(s, i);
        acv_op op = acv_graph_op(s, i);
        keep[i] = op != ACV_OP_GAP && op != ACV_OP_RESHAPE && !(nm && !strncmp(nm, "fc", 2)) && op != ACV_OP_LINEAR;
    }
    g = acv_graph_new();
    gx = acv_input(g, "images", 4, gs);
    added = acv_graph_append_json(g, js, gx, "", false, keep, ids, 32);
    assert_int_equal(acv_graph_status(g), 0);
    assert_int_equal(acv_graph_find(g, "fc.weight"), -1);
    assert_true(acv_graph_find(g, "c2.weight") >= 0);
    assert_true(g->nodes[acv_graph_find(g, "c2.weight")].trainable);
    assert_int_equal(added, acv_graph_node_count(g) - 1);
    acv_graph_free(g);

    /* a kept node whose input is not kept: refused, naming the node */
    memset(keep, 0, sizeof keep);
    keep[acv_graph_find(s, "c2")] = 1;
    g = acv_graph_new();
    gx = acv_input(g, "images", 4, gs);
    added = acv_graph_append_json(g, js, gx, "", false, keep, ids, 32);
    assert_true(added < 0);
    assert_non_null(strstr(acv_errmsg(), "graph JSON"));
    acv_graph_free(g);

    /* no subset: the nodes up to the first that does not fit are added (a 1-channel input
     * cannot feed c1), and the target carries that error */
    g = acv_graph_new();
    int64_t one[4] = {1, 1, 32, 32};
    gx = acv_input(g, "images", 4, one);
    added = acv_graph_append_json(g, js, gx, "", false, NULL, ids, 32);
    assert_true(added >= 0 && added < n - 1);
    assert_int_not_equal(acv_graph_status(g), 0);
    assert_int_equal(ids[acv_graph_find(s, "c2")], -1);
    acv_graph_free(g);

    /* too little room for the ids, and JSON that is not a graph */
    g = acv_graph_new();
    gx = acv_input(g, "images", 4, gs);
    assert_true(acv_graph_append_json(g, js, gx, "", false, NULL, ids, 2) < 0);
    assert_true(acv_graph_append_json(g, "[1]", gx, "", false, NULL, ids, 32) < 0);
    acv_graph_free(g);
    free(js);
    acv_graph_free(s);
}

static void expect_bad_json(const char *js, int code, const char *what)
{
    acv_graph *g = (acv_graph *)1;
    int rc = acv_graph_from_json(js, &g);
    if (rc != code) fail_msg("expected %d for %s, got %d (%s)", code, js, rc, acv_errmsg());
    assert_null(g);
    if (!strstr(acv_errmsg(), what)) fail_msg("message '%s' should mention '%s'", acv_errmsg(), what);
}

#define IN_X "{\"op\":\"input\",\"name\":\"x\",\"shape\":[1,3,8,8]}"
#define W_C "{\"op\":\"param\",\"name\":\"c.weight\",\"shape\":[4,3,3,3],\"trainable\":true,\"init\":\"kaiming_out\"}"
#define CONV_ATTRS "\"attrs\":{\"kernel\":[3,3],\"stride\":[1,1],\"pads\":[1,1,1,1],\"dilation\":[1,1],\"groups\":1}"

static void test_json_malformed(void **state)
{
    (void)state;
    /* sanity: the good form loads */
    acv_graph *g;
    const char *good = "{\"nodes\":[" IN_X "," W_C ",{\"op\":\"conv2d\",\"name\":\"c\",\"inputs\":[0,1]," CONV_ATTRS
                       "}],\"output\":2}";
    assert_int_equal(acv_graph_from_json(good, &g), 0);
    assert_shape(g, 2, 4, 1, 4, 8, 8);
    assert_int_equal(acv_graph_output(g), 2);
    acv_graph_free(g);

    expect_bad_json("{\"nodes\":[", ACV_EFORMAT, "graph JSON");
    expect_bad_json("[1,2]", ACV_EFORMAT, "\"nodes\"");
    expect_bad_json("{\"nodes\":[" IN_X "],\"output\":3}", ACV_EFORMAT, "output 3");
    expect_bad_json("{\"nodes\":[" IN_X ",{\"op\":\"warp\",\"inputs\":[0]}],\"output\":1}", ACV_EFORMAT,
                    "unknown op 'warp'");
    expect_bad_json("{\"nodes\":[" IN_X ",{\"inputs\":[0]}],\"output\":1}", ACV_EFORMAT, "unknown op");
    /* losses are not architecture */
    expect_bad_json("{\"nodes\":[" IN_X "," IN_X ",{\"op\":\"bce_logits\",\"inputs\":[0,1]}],\"output\":2}",
                    ACV_EFORMAT, "unknown op 'bce_logits'");
    /* input indices: forward reference, self, negative, not an integer */
    expect_bad_json("{\"nodes\":[" IN_X ",{\"op\":\"act\",\"inputs\":[2],\"attrs\":{\"kind\":0}}," IN_X "],\"output\":1}",
                    ACV_EFORMAT, "node 1: input 0 refers to node 2");
    expect_bad_json("{\"nodes\":[" IN_X ",{\"op\":\"act\",\"inputs\":[1],\"attrs\":{\"kind\":0}}],\"output\":1}",
                    ACV_EFORMAT, "refers to node 1");
    expect_bad_json("{\"nodes\":[" IN_X ",{\"op\":\"act\",\"inputs\":[-1],\"attrs\":{\"kind\":0}}],\"output\":1}",
                    ACV_EFORMAT, "refers to node -1");
    expect_bad_json("{\"nodes\":[" IN_X ",{\"op\":\"act\",\"inputs\":[\"x\"],\"attrs\":{\"kind\":0}}],\"output\":1}",
                    ACV_EFORMAT, "node 1");
    /* missing attributes */
    expect_bad_json("{\"nodes\":[" IN_X "," W_C ",{\"op\":\"conv2d\",\"name\":\"c\",\"inputs\":[0,1]}],\"output\":2}",
                    ACV_EFORMAT, "'kernel'");
    expect_bad_json("{\"nodes\":[" IN_X "," W_C ",{\"op\":\"conv2d\",\"name\":\"c\",\"inputs\":[0,1],\"attrs\":"
                    "{\"kernel\":[3,3],\"stride\":[1,1],\"pads\":[1,1],\"dilation\":[1,1]}}],\"output\":2}",
                    ACV_EFORMAT, "'pads' must be 4 integers");
    expect_bad_json("{\"nodes\":[" IN_X ",{\"op\":\"maxpool\",\"inputs\":[0],\"attrs\":{\"kernel\":[2,2]}}],\"output\":1}",
                    ACV_EFORMAT, "'stride'");
    expect_bad_json("{\"nodes\":[" IN_X ",{\"op\":\"act\",\"inputs\":[0]}],\"output\":1}", ACV_EFORMAT,
                    "unknown activation");
    expect_bad_json("{\"nodes\":[" IN_X ",{\"op\":\"upsample\",\"inputs\":[0]}],\"output\":1}", ACV_EFORMAT, "'size'");
    expect_bad_json("{\"nodes\":[" IN_X "," IN_X ",{\"op\":\"binary\",\"inputs\":[0,1]}],\"output\":2}", ACV_EFORMAT,
                    "unknown binary op");
    expect_bad_json("{\"nodes\":[" IN_X ",{\"op\":\"reshape\",\"inputs\":[0]}],\"output\":1}", ACV_EFORMAT,
                    "bad reshape");
    /* a bad parameter or input shape */
    expect_bad_json("{\"nodes\":[{\"op\":\"input\",\"name\":\"x\"}],\"output\":0}", ACV_EFORMAT, "bad shape");
    expect_bad_json("{\"nodes\":[{\"op\":\"param\",\"name\":\"p\",\"shape\":[3,\"a\"]}],\"output\":0}", ACV_EINVAL, "p");
    /* wrong input counts */
    expect_bad_json("{\"nodes\":[" IN_X ",{\"op\":\"act\",\"inputs\":[0,0],\"attrs\":{\"kind\":0}}],\"output\":1}",
                    ACV_EFORMAT, "wrong number of inputs");
    expect_bad_json("{\"nodes\":[" IN_X ",{\"op\":\"batchnorm\",\"name\":\"bn\",\"inputs\":[0]}],\"output\":1}",
                    ACV_EFORMAT, "batchnorm needs 5 inputs");
    expect_bad_json("{\"nodes\":[" IN_X ",{\"op\":\"conv2d\",\"name\":\"c\",\"inputs\":[0]," CONV_ATTRS "}],\"output\":1}",
                    ACV_EFORMAT, "conv needs 2 or 3 inputs");
    /* well-formed but inconsistent: shape inference names the node */
    expect_bad_json("{\"nodes\":[{\"op\":\"input\",\"name\":\"x\",\"shape\":[1,5,8,8]}," W_C
                    ",{\"op\":\"conv2d\",\"name\":\"stem\",\"inputs\":[0,1]," CONV_ATTRS "}],\"output\":2}",
                    ACV_ESHAPE, "stem");
    /* dropout p outside [0, 1) */
    expect_bad_json("{\"nodes\":[" IN_X ",{\"op\":\"dropout\",\"inputs\":[0],\"attrs\":{\"p\":1.5}}],\"output\":1}",
                    ACV_EFORMAT, "dropout");
}

/* ---- robustness: sizes that would overflow, kernels that do not fit ----------------------- */

/* Element counts are checked products with a cap of 2^31 - 1 per tensor: a model.json
 * upsample of 33554432^2 after a 16384-channel convolution wrapped numel to 0 (a 0-float
 * buffer the kernel then wrote past); upsample sizes are capped at 65536 as the ONNX
 * importer does; a reshape spec whose product wraps to the input's count; parameters;
 * batches. */
static void test_numel_limits(void **state)
{
    (void)state;
#define IN_S "{\"op\":\"input\",\"name\":\"x\",\"shape\":[1,3,2,2]}"
#define W_BIG "{\"op\":\"param\",\"name\":\"c.weight\",\"shape\":[16384,3,1,1]}"
#define CONV1 "{\"op\":\"conv2d\",\"name\":\"wide\",\"inputs\":[0,1],\"attrs\":{\"kernel\":[1,1],\"stride\":[1,1]," \
              "\"pads\":[0,0,0,0],\"dilation\":[1,1],\"groups\":1}}"
    expect_bad_json("{\"nodes\":[" IN_S "," W_BIG "," CONV1 ",{\"op\":\"upsample\",\"inputs\":[2],\"attrs\":"
                    "{\"size\":[33554432,33554432]}}],\"output\":3}",
                    ACV_EINVAL, "output size 33554432x33554432 is not in 1..65536");
    expect_bad_json("{\"nodes\":[" IN_S "," W_BIG "," CONV1 ",{\"op\":\"upsample\",\"inputs\":[2],\"attrs\":"
                    "{\"size\":[65536,65536]}}],\"output\":3}",
                    ACV_ERANGE, "[1, 16384, 65536, 65536] has more than 2147483647 elements");
    /* a size past int is refused, not truncated (2^32 + 4 would read as 4) */
    expect_bad_json("{\"nodes\":[" IN_S ",{\"op\":\"upsample\",\"inputs\":[0],\"attrs\":{\"size\":[4294967300,4]}}],"
                    "\"output\":1}",
                    ACV_EFORMAT, "'size' value 4294967300 is out of range");
    /* 7 * 7905747460161236407 = 1 (mod 2^64): the product wrapped to exactly 3 * 64 = 192 */
    expect_bad_json("{\"nodes\":[" IN_X ",{\"op\":\"reshape\",\"inputs\":[0],\"attrs\":{\"spec\":"
                    "[7,7905747460161236407,3,64]}}],\"output\":1}",
                    ACV_ERANGE, "reshape dims multiply past");
    /* an input or parameter whose dims each pass but whose product does not */
    expect_bad_json("{\"nodes\":[{\"op\":\"input\",\"name\":\"x\",\"shape\":[1,65536,65536,65536]}],\"output\":0}",
                    ACV_ERANGE, "x: shape [1, 65536, 65536, 65536] has more than");
    acv_graph *g = acv_graph_new();
    int64_t huge[4] = {1LL << 31, 1LL << 31, 1LL << 31, 1LL << 31};
    assert_int_equal(acv_param(g, "p", 4, huge, ACV_INIT_ZERO, true), ACV_ERANGE);
    assert_non_null(strstr(acv_errmsg(), "p: shape"));
    acv_graph_free(g);
    /* a batch too large for the model is refused at compile, and the graph stays usable */
    g = acv_graph_new();
    int64_t xs[2] = {1, 65536};
    acv_id x = acv_input(g, "x", 2, xs);
    acv_id y = acv_relu(g, x);
    acv_graph_set_output(g, y);
    assert_true(y >= 0);
    assert_int_equal(acv_graph_compile(g, acv_backend_cpu(), 1 << 30, false), ACV_ERANGE);
    assert_non_null(strstr(acv_errmsg(), "batch 1073741824"));
    assert_non_null(strstr(acv_errmsg(), "more than 2147483647 elements"));
    assert_int_equal(acv_graph_status(g), 0);
    assert_shape(g, x, 2, 1, 65536, 0, 0);
    assert_int_equal(acv_graph_compile(g, acv_backend_cpu(), 4, false), 0);
    assert_shape(g, y, 2, 4, 65536, 0, 0);
    acv_graph_free(g);
#undef IN_S
#undef W_BIG
#undef CONV1
}

/* A transposed convolution's weight kernel must match its kernel attribute (the kernels
 * read kh x kw weights per channel pair), as a convolution's must. */
static void test_convt_kernel_mismatch(void **state)
{
    (void)state;
    acv_graph *g = acv_graph_new();
    int64_t xs[4] = {1, 2, 4, 4}, ws[4] = {2, 3, 1, 1};
    acv_id x = acv_input(g, "x", 4, xs);
    acv_id w = acv_param(g, "up.weight", 4, ws, ACV_INIT_ZERO, true);
    acv_conv_attrs a = {3, 3, 2, 2, 0, 0, 0, 0, 1, 1, 1, 0, 0};
    assert_int_equal(acv_convt2d_ex(g, "up", x, w, -1, &a), ACV_ESHAPE);
    assert_non_null(strstr(acv_errmsg(), "up: weight kernel 1x1 does not match the kernel attribute 3x3"));
    acv_graph_free(g);
    /* through model.json as well */
    expect_bad_json("{\"nodes\":[" IN_X ",{\"op\":\"param\",\"name\":\"up.weight\",\"shape\":[3,2,1,1]},"
                    "{\"op\":\"convt2d\",\"name\":\"up\",\"inputs\":[0,1],\"attrs\":{\"kernel\":[3,3],\"stride\":[2,2],"
                    "\"pads\":[0,0,0,0],\"dilation\":[1,1],\"groups\":1,\"output_padding\":[0,0]}}],\"output\":2}",
                    ACV_ESHAPE, "up: weight kernel 1x1");
    /* the matching kernel builds */
    g = acv_graph_new();
    x = acv_input(g, "x", 4, xs);
    ws[2] = ws[3] = 3;
    w = acv_param(g, "up.weight", 4, ws, ACV_INIT_ZERO, true);
    assert_shape(g, acv_convt2d_ex(g, "up", x, w, -1, &a), 4, 1, 3, 9, 9);
    acv_graph_free(g);
}

/* Pooling pads: 0 <= pad <= kernel / 2 on all four sides (PyTorch's rule), dilation >= 1;
 * anything else used to reach an assertion (abort) or out-of-bounds reads in the kernels. */
static void test_pool_pads_checked(void **state)
{
    (void)state;
    static const struct { int k, pt, pl, pb, pr, dh, dw; } BAD[] = {
        {3, 0, 0, -1, 0, 1, 1}, {3, 0, 0, 0, -1, 1, 1}, {3, -1, 0, 0, 0, 1, 1}, {3, 0, -1, 0, 0, 1, 1},
        {3, 0, 0, 2, 0, 1, 1},  {3, 0, 0, 0, 2, 1, 1},  {2, 0, 0, 0, 2, 1, 1},  {3, 1, 1, 1, 1, 0, 1},
        {3, 1, 1, 1, 1, 1, -2},
    };
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++)
        for (int op = ACV_OP_MAXPOOL; op <= ACV_OP_AVGPOOL; op++) {
            acv_graph *g = acv_graph_new();
            int64_t xs[4] = {1, 2, 6, 6};
            acv_id x = acv_input(g, "x", 4, xs);
            acv_attrs a = {0};
            a.pool = (acv_pool_attrs){BAD[i].k, BAD[i].k, 1, 1, BAD[i].pt, BAD[i].pl, BAD[i].pb, BAD[i].pr,
                                      BAD[i].dh, BAD[i].dw, false, false};
            /* acv__graph_add: what a model.json node reaches (acv_pool_ex mends dilation < 1) */
            int rc = acv__graph_add(g, (acv_op)op, NULL, 1, &x, &a);
            if (rc != ACV_EINVAL) fail_msg("case %zu op %d: got %d (%s)", i, op, rc, acv_errmsg());
            assert_non_null(strstr(acv_errmsg(), BAD[i].dh < 1 || BAD[i].dw < 1 ? "dilation must be >= 1" : "pads"));
            acv_graph_free(g);
        }
    expect_bad_json("{\"nodes\":[" IN_X ",{\"op\":\"maxpool\",\"inputs\":[0],\"attrs\":{\"kernel\":[3,3],\"stride\":[1,1],"
                    "\"pads\":[1,1,-1,1],\"dilation\":[1,1]}}],\"output\":1}",
                    ACV_EINVAL, "pads (top 1, left 1, bottom -1, right 1)");
    /* the extremes PyTorch allows still build: pad = kernel / 2 on every side */
    acv_graph *g = acv_graph_new();
    int64_t xs[4] = {1, 2, 6, 6};
    acv_id x = acv_input(g, "x", 4, xs);
    acv_pool_attrs pa = {2, 3, 2, 1, 1, 1, 1, 1, 1, 2, false, false};
    assert_shape(g, acv_pool_ex(g, ACV_OP_MAXPOOL, x, &pa), 4, 1, 2, 4, 4);
    acv_graph_free(g);
}

int main(void)
{
    /* One thread: the finite differences run thousands of tiny forwards, where OpenMP
     * barriers on a loaded machine cost milliseconds each; the tests that compare or repeat
     * whole runs switch to two threads themselves. */
    acv_set_threads(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shapes_every_op),
        cmocka_unit_test(test_shape_errors_sticky),
        cmocka_unit_test(test_params_and_flops),
        cmocka_unit_test(test_grad_net1),
        cmocka_unit_test(test_grad_net2),
        cmocka_unit_test(test_grad_net3),
        cmocka_unit_test(test_grad_net4),
        cmocka_unit_test(test_grad_net6),
        cmocka_unit_test(test_ref_vs_cpu),
        cmocka_unit_test(test_memory_planning),
        cmocka_unit_test(test_set_batch),
        cmocka_unit_test(test_set_batch_training),
        cmocka_unit_test(test_backward_twice),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_dropout_modes),
        cmocka_unit_test(test_reshape_input),
        cmocka_unit_test(test_json_round_trip),
        cmocka_unit_test(test_json_malformed),
        cmocka_unit_test(test_json_append),
        cmocka_unit_test(test_numel_limits),
        cmocka_unit_test(test_convt_kernel_mismatch),
        cmocka_unit_test(test_pool_pads_checked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
