/* Inference compilation on the CPU backend: batch norm folded into convolutions,
 * activations fused into their epilogue, tensors kept in the blocked layout between
 * convolutions, and the prepared state refreshed when parameters change. Every variant must
 * give the reference backend's plain, unfused result. */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "autocv/graph.h"
#include "base/rng.h"
#include "nn/backend.h"
#include "nn/cpu/cpu.h"
#include "nn/graph_internal.h"
#include "nn/kernels.h"

static double rel_diff(const float *a, const float *b, int64_t n)
{
    double d = 0, m = 1e-6;
    for (int64_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        m = fmax(m, fabs((double)b[i]));
    }
    return d / m;
}

/* A network with every pattern the inference planner handles: conv+BN+ReLU, channel
 * counts that are not multiples of 16, depthwise conv + BN + ReLU6, residual add of
 * blocked tensors, max and average pooling, a conv that is the graph output's input via
 * GAP/flatten/linear, plus a sigmoid (not fusable) and a mul with broadcasting. */
static acv_graph *build(int N, acv_id *x, acv_id *y)
{
    acv_graph *g = acv_graph_new();
    int64_t xs[4] = {N, 3, 20, 20};
    *x = acv_input(g, "x", 4, xs);
    acv_id h = acv_relu(g, acv_batchnorm(g, "bn0", acv_conv2d(g, "c0", *x, 24, 3, 1, 1, 1, 1, false), 1e-5f, 0.1f));
    h = acv_maxpool(g, h, 3, 2, 1, false);
    acv_id r = h;
    h = acv_activation(g, acv_batchnorm(g, "bn1", acv_conv2d(g, "c1", h, 24, 3, 1, 1, 1, 24, false), 1e-5f, 0.1f),
                       ACV_ACT_RELU6, 0);
    h = acv_batchnorm(g, "bn2", acv_conv2d(g, "c2", h, 24, 1, 1, 0, 1, 1, false), 1e-5f, 0.1f);
    h = acv_relu(g, acv_add(g, h, r));
    h = acv_avgpool(g, h, 2, 2, 0, false, true);
    acv_id gate = acv_activation(g, acv_conv2d(g, "c3", acv_global_avgpool(g, h), 24, 1, 1, 0, 1, 1, true),
                                 ACV_ACT_SIGMOID, 0);
    h = acv_mul(g, h, gate);
    h = acv_conv2d(g, "c4", h, 40, 3, 2, 1, 1, 1, true);
    h = acv_activation(g, h, ACV_ACT_SILU, 0);
    *y = acv_linear(g, "fc", acv_flatten(g, acv_global_avgpool(g, h), 1), 7, true);
    acv_graph_set_output(g, *y);
    return g;
}

static void randomize(acv_graph *g, uint64_t seed)
{
    acv_rng r;
    acv_rng_seed(&r, seed);
    for (int i = 0; i < acv_graph_param_count(g); i++) {
        acv_param_info pi;
        assert_int_equal(acv_graph_param(g, i, &pi), 0);
        int64_t n = acv_shape_numel(&pi.shape);
        bool var = strstr(pi.name, "running_var") != NULL;
        for (int64_t k = 0; k < n; k++)
            pi.data[k] = var ? 0.5f + acv_rng_uniform(&r) : acv_rng_normal(&r) * 0.3f;
    }
}

static void run(acv_graph *g, const acv_backend *be, acv_id x, acv_id y, const float *in, int N, float *out)
{
    assert_int_equal(acv_graph_compile(g, be, 4, false), 0);
    assert_int_equal(acv_graph_set_batch(g, N), 0);
    memcpy(acv_graph_data(g, x), in, (size_t)acv_shape_numel(acv_graph_shape(g, x)) * sizeof(float));
    assert_int_equal(acv_graph_forward(g, y, false, 0), 0);
    memcpy(out, acv_graph_data(g, y), (size_t)acv_shape_numel(acv_graph_shape(g, y)) * sizeof(float));
}

static void test_inference_matches_reference(void **state)
{
    (void)state;
    acv_set_threads(2);
    acv_id x, y;
    acv_graph *g = build(4, &x, &y);
    assert_int_equal(acv_graph_status(g), 0);
    randomize(g, 1);
    int64_t nx = 4 * 3 * 20 * 20;
    float *in = malloc((size_t)nx * sizeof(float)), ref[28], out[28];
    acv_rng r;
    acv_rng_seed(&r, 2);
    for (int64_t i = 0; i < nx; i++) in[i] = acv_rng_normal(&r);
    run(g, acv_backend_ref(), x, y, in, 4, ref);
    run(g, acv_backend_cpu(), x, y, in, 4, out);
    print_message("cpu inference vs reference: %.2e\n", rel_diff(out, ref, 28));
    assert_true(rel_diff(out, ref, 28) < 1e-4);

    /* the plan really fused and blocked what it should */
    int folded = 0, fused_act = 0, blocked = 0;
    for (int i = 0; i < g->n; i++) {
        folded += g->nodes[i].fold_bn >= 0;
        fused_act += g->nodes[i].post_act != 0;
        blocked += g->nodes[i].blk != 0;
    }
    assert_int_equal(folded, 3);
    assert_true(fused_act >= 3);
    const acv_backend *cpu = acv_backend_cpu();
    if (cpu->blocked_channels && cpu->blocked_channels() > 0) assert_true(blocked >= 6);
    print_message("folded %d, fused activations %d, blocked nodes %d\n", folded, fused_act, blocked);

    /* a smaller batch on the same compile */
    float ref1[7], out1[7];
    run(g, acv_backend_ref(), x, y, in, 1, ref1);
    run(g, acv_backend_cpu(), x, y, in, 1, out1);
    assert_true(rel_diff(out1, ref1, 7) < 1e-4);
    assert_true(rel_diff(out1, ref, 7) < 1e-4);

    /* changing parameters after compiling refreshes the folded weights */
    randomize(g, 7);
    run(g, acv_backend_ref(), x, y, in, 4, ref);
    assert_int_equal(acv_graph_compile(g, acv_backend_cpu(), 4, false), 0);
    memcpy(acv_graph_data(g, x), in, (size_t)nx * sizeof(float));
    assert_int_equal(acv_graph_forward(g, y, false, 0), 0);
    randomize(g, 1); /* back to the first weights without recompiling */
    assert_int_equal(acv_graph_forward(g, y, false, 0), 0);
    run(g, acv_backend_ref(), x, y, in, 4, out); /* reference with weights 1 */
    assert_int_equal(acv_graph_compile(g, acv_backend_cpu(), 4, false), 0);
    memcpy(acv_graph_data(g, x), in, (size_t)nx * sizeof(float));
    assert_int_equal(acv_graph_forward(g, y, false, 0), 0);
    randomize(g, 7);
    assert_int_equal(acv_graph_forward(g, y, false, 0), 0);
    assert_true(rel_diff(acv_graph_data(g, y), ref, 28) < 1e-4);
    free(in);
    acv_graph_free(g);
}

static void test_blocked_layout_kernels(void **state)
{
    (void)state;
    for (int B = 8; B <= 16; B += 8) {
        int N = 2, C = 19, H = 7, W = 5;
        int64_t n = (int64_t)N * C * H * W, nb = acv_blk_numel(N, C, H * W, B);
        assert_int_equal(nb, (int64_t)N * ((C + B - 1) / B) * B * H * W);
        float *a = malloc((size_t)n * sizeof(float)), *b = malloc((size_t)nb * sizeof(float)),
              *c = malloc((size_t)n * sizeof(float));
        for (int64_t i = 0; i < n; i++) a[i] = (float)(i % 23) - 11.0f;
        acv_blk_from_plain(b, a, N, C, H * W, B);
        for (int64_t i = 0; i < nb; i++) /* pad lanes are zero */
            if ((i % B) + ((i / B / (H * W)) % ((C + B - 1) / B)) * B >= C) assert_true(b[i] == 0.0f);
        acv_blk_to_plain(c, b, N, C, H * W, B);
        assert_memory_equal(a, c, (size_t)n * sizeof(float));
        /* pooling on blocked data equals pooling on plain data */
        acv_pool_params p = {N, C, H, W, 4, 3, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, false, false};
        float *pp = malloc((size_t)N * C * 12 * sizeof(float)), *pb = malloc((size_t)acv_blk_numel(N, C, 12, B) * sizeof(float)),
              *pc = malloc((size_t)N * C * 12 * sizeof(float));
        int32_t *am = malloc((size_t)N * C * 12 * sizeof(int32_t));
        acv_ref_maxpool_forward(pp, am, a, &p);
        acv_blk_maxpool_forward(pb, b, &p, B);
        acv_blk_to_plain(pc, pb, N, C, 12, B);
        assert_memory_equal(pp, pc, (size_t)N * C * 12 * sizeof(float));
        p.count_include_pad = true;
        acv_ref_avgpool_forward(pp, a, &p);
        acv_blk_avgpool_forward(pb, b, &p, B);
        acv_blk_to_plain(pc, pb, N, C, 12, B);
        assert_true(rel_diff(pc, pp, N * C * 12) < 1e-6);
        float gp[38], gb[38];
        acv_ref_gap_forward(gp, a, N, C, H * W);
        acv_blk_gap_forward(gb, b, N, C, H * W, B);
        assert_true(rel_diff(gb, gp, N * C) < 1e-6);
        free(a); free(b); free(c); free(pp); free(pb); free(pc); free(am);
    }
}

/* A ResNet basic block and a MobileNetV2 inverted residual at sizes where the CPU backend
 * picks its fast paths: Winograd for the 3x3 convolutions with >= 32 channels, and every
 * convolution between two blocked tensors running on that layout with no reorder. */
static void test_inference_fast_paths(void **state)
{
    (void)state;
    acv_set_threads(2);
    const int N = 1, S = 56;
    acv_graph *g = acv_graph_new();
    int64_t xs[4] = {N, 3, S, S};
    acv_id x = acv_input(g, "x", 4, xs);
    acv_id h = acv_relu(g, acv_batchnorm(g, "bn0", acv_conv2d(g, "stem", x, 32, 3, 1, 1, 1, 1, false), 1e-5f, 0.1f));
    acv_id wino = acv_conv2d(g, "w1", h, 48, 3, 1, 1, 1, 1, false);
    acv_id r = acv_conv2d(g, "w2", acv_relu(g, acv_batchnorm(g, "bn1", wino, 1e-5f, 0.1f)), 32, 3, 1, 1, 1, 1, true);
    h = acv_relu(g, acv_add(g, r, h));
    acv_id expand = acv_conv2d(g, "pw1", h, 96, 1, 1, 0, 1, 1, false);
    h = acv_activation(g, acv_batchnorm(g, "bn2", expand, 1e-5f, 0.1f), ACV_ACT_RELU6, 0);
    acv_id dw = acv_conv2d(g, "dw", h, 96, 3, 2, 1, 1, 96, false);
    h = acv_activation(g, acv_batchnorm(g, "bn3", dw, 1e-5f, 0.1f), ACV_ACT_RELU6, 0);
    acv_id project = acv_conv2d(g, "pw2", h, 24, 1, 1, 0, 1, 1, true);
    acv_id y = acv_linear(g, "fc", acv_flatten(g, acv_global_avgpool(g, project), 1), 5, true);
    acv_graph_set_output(g, y);
    assert_int_equal(acv_graph_status(g), 0);
    randomize(g, 3);
    int64_t nx = (int64_t)N * 3 * S * S;
    float *in = malloc((size_t)nx * sizeof(float)), ref[5], out[5];
    acv_rng rng;
    acv_rng_seed(&rng, 4);
    for (int64_t i = 0; i < nx; i++) in[i] = acv_rng_normal(&rng);
    run(g, acv_backend_ref(), x, y, in, N, ref);
    run(g, acv_backend_cpu(), x, y, in, N, out);
    print_message("fast paths vs reference: %.2e\n", rel_diff(out, ref, 5));
    assert_true(rel_diff(out, ref, 5) < 1e-4);
    const acv_backend *cpu = acv_backend_cpu();
    if (cpu->blocked_channels && cpu->blocked_channels() == 16) {
        const acv_id convs[] = {wino, r, expand, dw, project};
        for (int i = 0; i < 5; i++) {
            const acv_node *nd = &g->nodes[convs[i]];
            void *cache = nd->fused_into >= 0 ? g->nodes[nd->fused_into].cache : nd->cache;
            print_message("conv %d: %s, %d activation reorders\n", i, acv_cpu_conv_impl(cache),
                          acv_cpu_conv_activation_reorders(cache));
            assert_int_equal(acv_cpu_conv_activation_reorders(cache), 0);
        }
        assert_non_null(strstr(acv_cpu_conv_impl(g->nodes[wino].cache), "wino"));
    }
    free(in);
    acv_graph_free(g);
}

/* A training step runs a convolution's forward and backward on the same prepared kernels:
 * the parameters the executor passes must be identical bytes both ways (a backward call
 * with stray fields made the CPU backend rebuild every kernel twice a step). */
static void test_training_keeps_prepared_kernels(void **state)
{
    (void)state;
    acv_set_threads(2);
    acv_graph *g = acv_graph_new();
    int64_t xs[4] = {4, 3, 16, 16};
    acv_id x = acv_input(g, "x", 4, xs);
    acv_id c1 = acv_conv2d(g, "c1", x, 32, 3, 1, 1, 1, 1, false);
    acv_id h = acv_relu(g, acv_batchnorm(g, "bn", c1, 1e-5f, 0.1f));
    acv_id c2 = acv_conv2d(g, "c2", h, 16, 3, 2, 1, 1, 1, true);
    acv_id y = acv_linear(g, "fc", acv_flatten(g, acv_global_avgpool(g, c2), 1), 3, true);
    int64_t ts[2] = {4, 3};
    acv_id t = acv_input(g, "t", 2, ts);
    acv_id loss = acv_bce_logits(g, y, t);
    acv_graph_set_output(g, loss);
    assert_int_equal(acv_graph_status(g), 0);
    randomize(g, 5);
    assert_int_equal(acv_graph_compile(g, acv_backend_cpu(), 4, true), 0);
    float *in = acv_graph_data(g, x);
    for (int i = 0; i < 4 * 3 * 16 * 16; i++) in[i] = (float)((i * 7919) % 13) / 13.0f - 0.5f;
    float *tg = acv_graph_data(g, t);
    for (int i = 0; i < 12; i++) tg[i] = (float)(i % 2);
    for (int step = 0; step < 3; step++) {
        assert_int_equal(acv_graph_forward(g, -1, true, (uint64_t)step), 0);
        assert_int_equal(acv_graph_backward(g, loss), 0);
    }
    assert_int_equal(acv_cpu_conv_resets(g->nodes[c1].cache), 0);
    assert_int_equal(acv_cpu_conv_resets(g->nodes[c2].cache), 0);
    acv_graph_free(g);
}

/* A server prepares a replica's kernels on one thread (which then exits) and runs it on
 * others, a new thread per connection, and several replicas at once: each run must give the
 * single-threaded result. oneDNN's own ("library") scratchpad belongs to the thread that
 * created the primitive and is freed when that thread exits, so the Winograd kernels then
 * ran on freed memory (a crash in the server); the CPU backend lends every primitive the
 * calling thread's scratchpad instead. */
typedef struct {
    acv_graph *g;
    acv_id x, y;
    const float *in;
    const float *want;
    int iters;
    int bad;
} conc_job;

static void *conc_run(void *arg)
{
    conc_job *j = arg;
    for (int it = 0; it < j->iters; it++) {
        memcpy(acv_graph_data(j->g, j->x), j->in, (size_t)acv_shape_numel(acv_graph_shape(j->g, j->x)) * sizeof(float));
        if (acv_graph_forward(j->g, j->y, false, 0) ||
            (j->want && rel_diff(acv_graph_data(j->g, j->y), j->want, 8) > 1e-4))
            j->bad++;
    }
    return NULL;
}

static acv_graph *build_wino(acv_id *x, acv_id *y)
{
    acv_graph *g = acv_graph_new();
    int64_t xs[4] = {1, 3, 224, 224};
    *x = acv_input(g, "x", 4, xs);
    acv_id h = acv_relu(g, acv_conv2d(g, "c0", *x, 32, 3, 1, 1, 1, 1, true));
    h = acv_relu(g, acv_conv2d(g, "c1", h, 64, 3, 1, 1, 1, 1, true));
    h = acv_relu(g, acv_conv2d(g, "c2", h, 64, 3, 1, 1, 1, 1, true));
    *y = acv_linear(g, "fc", acv_flatten(g, acv_global_avgpool(g, h), 1), 8, true);
    acv_graph_set_output(g, *y);
    return g;
}

static void test_concurrent_inference(void **state)
{
    (void)state;
    acv_set_threads(2);
    conc_job jobs[2];
    float *in = malloc(3 * 224 * 224 * sizeof(float)), want[8];
    for (int i = 0; i < 3 * 224 * 224; i++) in[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
    for (int t = 0; t < 2; t++) {
        jobs[t] = (conc_job){.in = in, .want = want, .iters = 20};
        jobs[t].g = build_wino(&jobs[t].x, &jobs[t].y);
        randomize(jobs[t].g, 11);
        assert_int_equal(acv_graph_compile(jobs[t].g, acv_backend_cpu(), 1, false), 0);
    }
    /* the expected output from the reference backend (no oneDNN primitive made on this thread) */
    acv_id rx, ry;
    acv_graph *ref = build_wino(&rx, &ry);
    randomize(ref, 11);
    run(ref, acv_backend_ref(), rx, ry, in, 1, want);
    acv_graph_free(ref);
    pthread_t th[2];
    /* the first run (which prepares the kernels) on a thread that exits */
    for (int t = 0; t < 2; t++) {
        conc_job first = jobs[t];
        first.iters = 1;
        first.want = NULL;
        assert_int_equal(pthread_create(&th[0], NULL, conc_run, &first), 0);
        pthread_join(th[0], NULL);
    }
    /* a new thread for every call (a server's thread per connection), then two at once */
    for (int k = 0; k < 6; k++) {
        conc_job once = jobs[k % 2];
        once.iters = 1;
        assert_int_equal(pthread_create(&th[0], NULL, conc_run, &once), 0);
        pthread_join(th[0], NULL);
        assert_int_equal(once.bad, 0);
    }
    for (int t = 0; t < 2; t++) assert_int_equal(pthread_create(&th[t], NULL, conc_run, &jobs[t]), 0);
    for (int t = 0; t < 2; t++) pthread_join(th[t], NULL);
    for (int t = 0; t < 2; t++) {
        assert_int_equal(jobs[t].bad, 0);
        acv_graph_free(jobs[t].g);
    }
    free(in);
}

/* MobileNetV2's first inverted residual at 224 (batch 1, 2 threads): the 1x1 expansion and
 * the stride-2 depthwise convolution run as one oneDNN pass (with AVX-512), and the result
 * is the reference's; at another batch size the pair still gives the right result. */
/* bare: the pair without batch norms or biases (the 1x1 without bias, the depthwise one
 * given a zero bias). */
static void check_pw_dw_fusion(bool bare)
{
    acv_set_threads(2);
    acv_graph *g = acv_graph_new();
    int64_t xs[4] = {1, 3, 224, 224};
    acv_id x = acv_input(g, "x", 4, xs);
    acv_id h = acv_activation(g, acv_batchnorm(g, "bn0", acv_conv2d(g, "stem", x, 16, 3, 2, 1, 1, 1, false), 1e-5f,
                                               0.1f), ACV_ACT_RELU6, 0);
    acv_id expand = acv_conv2d(g, "pw1", h, 96, 1, 1, 0, 1, 1, false);
    h = acv_activation(g, bare ? expand : acv_batchnorm(g, "bn1", expand, 1e-5f, 0.1f), ACV_ACT_RELU6, 0);
    acv_id dw = acv_conv2d(g, "dw", h, 96, 3, 2, 1, 1, 96, false);
    h = acv_activation(g, bare ? dw : acv_batchnorm(g, "bn2", dw, 1e-5f, 0.1f), ACV_ACT_RELU6, 0);
    acv_id y = acv_linear(g, "fc", acv_flatten(g, acv_global_avgpool(g, acv_conv2d(g, "pw2", h, 24, 1, 1, 0, 1, 1, true)), 1),
                          4, true);
    acv_graph_set_output(g, y);
    assert_int_equal(acv_graph_status(g), 0);
    randomize(g, 9);
    int64_t nx = 2 * 3 * 224 * 224;
    float *in = malloc((size_t)nx * sizeof(float)), ref[8], out[8];
    for (int64_t i = 0; i < nx; i++) in[i] = (float)((i * 131) % 97) / 48.0f - 1.0f;
    /* batch 1, compiled for 1: fused */
    assert_int_equal(acv_graph_compile(g, acv_backend_ref(), 1, false), 0);
    memcpy(acv_graph_data(g, x), in, (size_t)nx / 2 * sizeof(float));
    assert_int_equal(acv_graph_forward(g, y, false, 0), 0);
    memcpy(ref, acv_graph_data(g, y), 4 * sizeof(float));
    assert_int_equal(acv_graph_compile(g, acv_backend_cpu(), 1, false), 0);
    memcpy(acv_graph_data(g, x), in, (size_t)nx / 2 * sizeof(float));
    assert_int_equal(acv_graph_forward(g, y, false, 0), 0);
    memcpy(out, acv_graph_data(g, y), 4 * sizeof(float));
    print_message("1x1 + dw at batch 1%s: %s, vs reference %.2e\n", bare ? " (no bias)" : "",
                  acv_cpu_conv_impl(g->nodes[dw].cache), rel_diff(out, ref, 4));
    assert_true(rel_diff(out, ref, 4) < 1e-4);
    const acv_backend *cpu = acv_backend_cpu();
    if (cpu->blocked_channels && cpu->blocked_channels() == 16) {
        assert_int_equal(g->nodes[expand].fused_into, dw);
        assert_int_equal(g->nodes[dw].dw_head, expand);
        assert_null(g->nodes[expand].cache);
        assert_null(strstr(acv_cpu_conv_impl(g->nodes[dw].cache), "not fused"));
        assert_int_equal(acv_cpu_conv_activation_reorders(g->nodes[dw].cache), 0);
    }
    /* compiled for 2, run at 2 and 1: right whether oneDNN fuses those sizes or not */
    run(g, acv_backend_ref(), x, y, in, 2, ref);
    run(g, acv_backend_cpu(), x, y, in, 2, out);
    assert_true(rel_diff(out, ref, 8) < 1e-4);
    assert_int_equal(acv_graph_set_batch(g, 1), 0);
    memcpy(acv_graph_data(g, x), in, (size_t)nx / 2 * sizeof(float));
    assert_int_equal(acv_graph_forward(g, y, false, 0), 0);
    assert_true(rel_diff(acv_graph_data(g, y), ref, 4) < 1e-4);
    /* ACV_DW_FUSION=0 leaves the pair apart */
    setenv("ACV_DW_FUSION", "0", 1);
    assert_int_equal(acv_graph_compile(g, acv_backend_cpu(), 1, false), 0);
    assert_int_equal(g->nodes[dw].dw_head, -1);
    unsetenv("ACV_DW_FUSION");
    free(in);
    acv_graph_free(g);
}

static void test_pw_dw_fusion(void **state)
{
    (void)state;
    check_pw_dw_fusion(false);
    check_pw_dw_fusion(true);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inference_matches_reference),
        cmocka_unit_test(test_blocked_layout_kernels),
        cmocka_unit_test(test_inference_fast_paths),
        cmocka_unit_test(test_training_keeps_prepared_kernels),
        cmocka_unit_test(test_concurrent_inference),
        cmocka_unit_test(test_pw_dw_fusion),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
