/* Tests for src/nn/optim.c and src/nn/schedule.c: SGD, AdamW and gradient clipping against
 * PyTorch (tests/ref/optim_ref.py, run with /usr/bin/python3 from the repo root), decay masks,
 * bitwise resume from saved state, thread-count independence, EMA, schedules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "autocv/error.h"
#include "nn/optim.h"
#include "nn/schedule.h"

#define REF_SCRIPT "tests/ref/optim_ref.py"

/* ---- deterministic inputs, the same formulas as optim_ref.py ------------------------- */
static float *init_params(int64_t n)
{
    float *p = malloc((size_t)n * sizeof *p);
    assert_non_null(p);
    for (int64_t i = 0; i < n; i++)
        p[i] = (float)(0.8 * sin((double)i * 0.37 + 0.5));
    return p;
}

static void grad_at(float *g, int64_t n, int k)
{
    for (int64_t i = 0; i < n; i++)
        g[i] = (float)(sin((double)i * 0.1 + k) * (0.5 + 0.1 * k));
}

static float lr_at(double lr, int k, int steps) { return (float)(lr * (1.0 - 0.5 * k / steps)); }

/* Runs optim_ref.py with args and reads exactly `count` floats into out. Fails the test
 * with a clear message when python3 or torch is missing or the output is short. */
static void run_ref(const char *args, float *out, int64_t count)
{
    if (access(REF_SCRIPT, R_OK) != 0)
        fail_msg("%s not found: the unit tests must run from the repository root", REF_SCRIPT);
    if (access("/usr/bin/python3", X_OK) != 0)
        fail_msg("/usr/bin/python3 is missing: it and python3-torch are test dependencies "
                 "(make deps)");
    char cmd[512];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s %s", REF_SCRIPT, args);
    FILE *f = popen(cmd, "r");
    if (!f)
        fail_msg("cannot run '%s'", cmd);
    int64_t got = 0;
    double v;
    while (got < count && fscanf(f, "%lf", &v) == 1)
        out[got++] = (float)v;
    int status = pclose(f);
    if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("'%s' failed (exit status %d; 2 = PyTorch missing: python3-torch is a test "
                 "dependency, install it with make deps); see its message above", cmd,
                 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    if (got != count)
        fail_msg("'%s' printed %lld values, expected %lld", cmd, (long long)got,
                 (long long)count);
}

/* |a - b| <= 1e-5 * max(|a|, |b|), with a floor of 1e-5 * 1e-2 for values near zero. */
static void assert_close(const float *got, const float *want, int64_t n, const char *what)
{
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double a = got[i], b = want[i];
        double scale = fmax(fmax(fabs(a), fabs(b)), 1e-2);
        double rel = fabs(a - b) / scale;
        if (!(rel <= 1e-5))
            fail_msg("%s: element %lld is %.9g, PyTorch has %.9g (relative error %.3g)", what,
                     (long long)i, a, b, rel);
        if (rel > worst)
            worst = rel;
    }
    print_message("%s: %lld values, worst relative error %.3g\n", what, (long long)n, worst);
}

/* Runs `steps` steps of cfg on the standard inputs (maskmod as in optim_ref.py). */
static float *run_c_optim(const acv_optim_config *cfg, int64_t n, int steps, int maskmod)
{
    acv_optim *o;
    assert_int_equal(acv_optim_new(cfg, n, &o), 0);
    if (maskmod > 0) {
        uint8_t *mask = malloc((size_t)n);
        assert_non_null(mask);
        for (int64_t i = 0; i < n; i++)
            mask[i] = i % maskmod != 0;
        assert_int_equal(acv_optim_set_decay_mask(o, mask), 0);
        free(mask);
    }
    float *p = init_params(n);
    float *g = malloc((size_t)n * sizeof *g);
    assert_non_null(g);
    for (int k = 0; k < steps; k++) {
        grad_at(g, n, k);
        assert_int_equal(acv_optim_step(o, p, g, lr_at(cfg->lr, k, steps)), 0);
    }
    assert_int_equal(acv_optim_steps(o), steps);
    free(g);
    acv_optim_free(o);
    return p;
}

static void check_sgd(double lr, double momentum, double dampening, bool nesterov, double wd,
                      int maskmod, const char *what)
{
    const int64_t n = 1003;
    const int steps = 12;
    acv_optim_config c = acv_optim_defaults(ACV_OPTIM_SGD);
    c.lr = lr;
    c.momentum = momentum;
    c.dampening = dampening;
    c.nesterov = nesterov;
    c.weight_decay = wd;
    float *p = run_c_optim(&c, n, steps, maskmod);
    char args[256];
    snprintf(args, sizeof args, "sgd %d %lld %.17g %.17g %.17g %d %.17g %d", steps, (long long)n,
             lr, momentum, dampening, nesterov ? 1 : 0, wd, maskmod);
    float *want = malloc((size_t)n * sizeof *want);
    assert_non_null(want);
    run_ref(args, want, n);
    assert_close(p, want, n, what);
    free(p);
    free(want);
}

static void check_adamw(double lr, double b1, double b2, double eps, double wd, int maskmod,
                        const char *what)
{
    const int64_t n = 1003;
    const int steps = 12;
    acv_optim_config c = acv_optim_defaults(ACV_OPTIM_ADAMW);
    c.lr = lr;
    c.beta1 = b1;
    c.beta2 = b2;
    c.eps = eps;
    c.weight_decay = wd;
    float *p = run_c_optim(&c, n, steps, maskmod);
    char args[256];
    snprintf(args, sizeof args, "adamw %d %lld %.17g %.17g %.17g %.17g %.17g %d", steps,
             (long long)n, lr, b1, b2, eps, wd, maskmod);
    float *want = malloc((size_t)n * sizeof *want);
    assert_non_null(want);
    run_ref(args, want, n);
    assert_close(p, want, n, what);
    free(p);
    free(want);
}

/* ---- against PyTorch ---------------------------------------------------------------- */
static void test_sgd_plain_torch(void **state)
{
    check_sgd(0.1, 0, 0, false, 0, 0, "SGD");
}

static void test_sgd_momentum_wd_torch(void **state)
{
    check_sgd(0.05, 0.9, 0.1, false, 0.01, 0, "SGD momentum+dampening+wd");
}

static void test_sgd_nesterov_mask_torch(void **state)
{
    check_sgd(0.05, 0.9, 0, true, 0.05, 3, "SGD nesterov+wd+mask");
}

static void test_adamw_torch(void **state)
{
    check_adamw(1e-2, 0.9, 0.999, 1e-8, 0.05, 0, "AdamW");
}

static void test_adamw_mask_torch(void **state)
{
    check_adamw(3e-3, 0.8, 0.99, 1e-6, 0.1, 4, "AdamW betas+eps+mask");
}

static void check_clip(int64_t n, double scale, double max_norm, bool expect_clipped)
{
    float *g = malloc((size_t)n * sizeof *g), *orig = malloc((size_t)n * sizeof *g);
    float *want = malloc((size_t)(n + 1) * sizeof *want);
    assert_true(g && orig && want);
    for (int64_t i = 0; i < n; i++)
        orig[i] = g[i] = (float)(scale * sin((double)i * 0.1 + 1));
    float norm = acv_clip_grad_norm(g, n, (float)max_norm);
    char args[128];
    snprintf(args, sizeof args, "clip %lld %.17g %.17g", (long long)n, scale, max_norm);
    run_ref(args, want, n + 1);
    assert_close(&norm, want, 1, "clip_grad_norm_ total norm");
    assert_close(g, want + 1, n, "clip_grad_norm_ gradients");
    assert_int_equal(memcmp(g, orig, (size_t)n * sizeof *g) != 0, expect_clipped);
    free(g);
    free(orig);
    free(want);
}

static void test_clip_torch(void **state)
{
    check_clip(5001, 3.0, 10.0, true);   /* norm ~150 > 10: scaled */
}

/* ---- decay mask, resume, threads ----------------------------------------------------- */

/* A mask of zeros is the same as weight_decay 0; a mask of ones the same as no mask. */
static void test_decay_mask(void **state)
{
    const int64_t n = 777;
    const int steps = 5;
    for (int t = 0; t < 2; t++) {
        acv_optim_config c = acv_optim_defaults(t ? ACV_OPTIM_ADAMW : ACV_OPTIM_SGD);
        c.momentum = 0.9;
        c.weight_decay = 0.1;
        float *decayed = run_c_optim(&c, n, steps, 0);
        float *all_masked = run_c_optim(&c, n, steps, 1); /* i % 1 == 0: nothing decays */
        acv_optim_config c0 = c;
        c0.weight_decay = 0;
        float *no_decay = run_c_optim(&c0, n, steps, 0);
        assert_memory_equal(all_masked, no_decay, (size_t)n * sizeof(float));
        assert_memory_not_equal(decayed, no_decay, (size_t)n * sizeof(float));

        /* Explicit all-ones mask == no mask; NULL clears a mask. */
        acv_optim *o;
        assert_int_equal(acv_optim_new(&c, n, &o), 0);
        uint8_t *ones = malloc((size_t)n);
        memset(ones, 1, (size_t)n);
        assert_int_equal(acv_optim_set_decay_mask(o, ones), 0);
        float *p = init_params(n), *g = malloc((size_t)n * sizeof *g);
        for (int k = 0; k < steps; k++) {
            grad_at(g, n, k);
            if (k == 2) { /* switch to zeros then clear: still decays everywhere */
                memset(ones, 0, (size_t)n);
                assert_int_equal(acv_optim_set_decay_mask(o, ones), 0);
                assert_int_equal(acv_optim_set_decay_mask(o, NULL), 0);
            }
            assert_int_equal(acv_optim_step(o, p, g, lr_at(c.lr, k, steps)), 0);
        }
        assert_memory_equal(p, decayed, (size_t)n * sizeof(float));
        acv_optim_free(o);
        free(ones);
        free(p);
        free(g);
        free(decayed);
        free(all_masked);
        free(no_decay);
    }
}

/* Saving state + step count after 7 steps and restoring into a new optimizer continues
 * bitwise identically to the uninterrupted run. */
static void test_resume_bitwise(void **state)
{
    const int64_t n = 50000;
    const int steps = 14, cut = 7;
    acv_optim_config cfgs[3] = {acv_optim_defaults(ACV_OPTIM_SGD),
                                acv_optim_defaults(ACV_OPTIM_SGD),
                                acv_optim_defaults(ACV_OPTIM_ADAMW)};
    cfgs[1].momentum = 0.9;
    cfgs[1].nesterov = true;
    cfgs[1].weight_decay = 1e-4;
    size_t want_size[3] = {0, (size_t)n, 2 * (size_t)n};
    float *g = malloc((size_t)n * sizeof *g);
    for (int t = 0; t < 3; t++) {
        float *full = run_c_optim(&cfgs[t], n, steps, 0);

        acv_optim *a;
        assert_int_equal(acv_optim_new(&cfgs[t], n, &a), 0);
        float *p = init_params(n);
        for (int k = 0; k < cut; k++) {
            grad_at(g, n, k);
            assert_int_equal(acv_optim_step(a, p, g, lr_at(cfgs[t].lr, k, steps)), 0);
        }
        assert_int_equal(acv_optim_state_size(a), want_size[t]);
        float *saved = malloc((acv_optim_state_size(a) + 1) * sizeof(float));
        acv_optim_state_get(a, saved);
        int64_t saved_steps = acv_optim_steps(a);
        acv_optim_free(a);

        acv_optim *b;
        assert_int_equal(acv_optim_new(&cfgs[t], n, &b), 0);
        acv_optim_state_set(b, saved);
        acv_optim_set_steps(b, saved_steps);
        for (int k = cut; k < steps; k++) {
            grad_at(g, n, k);
            assert_int_equal(acv_optim_step(b, p, g, lr_at(cfgs[t].lr, k, steps)), 0);
        }
        assert_memory_equal(p, full, (size_t)n * sizeof(float));
        acv_optim_free(b);
        free(saved);
        free(p);
        free(full);
    }
    free(g);
}

/* Results do not depend on the number of OpenMP threads. */
static void test_thread_independent(void **state)
{
    const int64_t n = 300007;
    const int steps = 4;
    float *res[2], norms[2];
    int saved = omp_get_max_threads();
    for (int r = 0; r < 2; r++) {
        omp_set_num_threads(r == 0 ? 1 : 3);
        acv_optim_config c = acv_optim_defaults(ACV_OPTIM_ADAMW);
        res[r] = run_c_optim(&c, n, steps, 5);
        float *g = malloc((size_t)n * sizeof *g);
        grad_at(g, n, 3);
        norms[r] = acv_clip_grad_norm(g, n, 1.0f);
        free(g);
    }
    omp_set_num_threads(saved);
    assert_memory_equal(res[0], res[1], (size_t)n * sizeof(float));
    assert_memory_equal(&norms[0], &norms[1], sizeof(float));
    free(res[0]);
    free(res[1]);
}

/* ---- clipping and finiteness ----------------------------------------------------------- */
static void test_clip_rules(void **state)
{
    float g[4] = {3, 4, 0, 0};
    /* Below the limit: norm returned, gradients untouched. */
    assert_float_equal(acv_clip_grad_norm(g, 4, 10.0f), 5.0f, 1e-6);
    assert_float_equal(g[0], 3.0f, 0);
    assert_float_equal(g[1], 4.0f, 0);
    /* Above: scaled by max/(norm + 1e-6). */
    assert_float_equal(acv_clip_grad_norm(g, 4, 1.0f), 5.0f, 1e-6);
    assert_float_equal(g[0], 3.0f * (1.0f / (5.0f + 1e-6f)), 1e-7);
    assert_float_equal(g[1], 4.0f * (1.0f / (5.0f + 1e-6f)), 1e-7);
    /* max_norm <= 0 only measures. */
    float h[2] = {6, 8};
    assert_float_equal(acv_clip_grad_norm(h, 2, 0.0f), 10.0f, 1e-6);
    assert_float_equal(h[0], 6.0f, 0);
    /* Non-finite: norm says so, gradients left alone. */
    float bad[3] = {1, NAN, 2};
    assert_true(isnan(acv_clip_grad_norm(bad, 3, 1.0f)));
    assert_float_equal(bad[0], 1.0f, 0);
    float inf[2] = {INFINITY, 2};
    assert_true(isinf(acv_clip_grad_norm(inf, 2, 1.0f)));
    assert_float_equal(inf[1], 2.0f, 0);
    assert_float_equal(acv_clip_grad_norm(g, 0, 1.0f), 0.0f, 0);
    /* Torch-sized vector under the limit: identical to a no-clip measure. */
    check_clip(1000, 0.01, 5.0, false);
}

static void test_all_finite(void **state)
{
    const int64_t n = 100003;
    float *x = malloc((size_t)n * sizeof *x);
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)sin((double)i) * 3.4e38f;
    assert_true(acv_all_finite(x, n));
    assert_true(acv_all_finite(x, 0));
    int64_t where[3] = {0, n / 2, n - 1};
    float bads[3] = {NAN, INFINITY, -INFINITY};
    for (int w = 0; w < 3; w++) {
        for (int b = 0; b < 3; b++) {
            float keep = x[where[w]];
            x[where[w]] = bads[b];
            assert_false(acv_all_finite(x, n));
            x[where[w]] = keep;
        }
    }
    assert_true(acv_all_finite(x, n));
    free(x);
}

/* ---- EMA --------------------------------------------------------------------------- */
static void test_ema(void **state)
{
    const int64_t np = 41, nb = 9;
    float p[41], b[9];
    for (int i = 0; i < np; i++)
        p[i] = (float)i;
    for (int i = 0; i < nb; i++)
        b[i] = (float)(-i);
    acv_ema *e;
    assert_int_equal(acv_ema_new(p, np, b, nb, 0.9999, 2000, &e), 0);
    assert_memory_equal(acv_ema_params(e), p, sizeof p);
    assert_memory_equal(acv_ema_buffers(e), b, sizeof b);
    /* The ramp: d(k) = decay * (1 - exp(-k/tau)). */
    assert_float_equal(acv_ema_decay_at(e, 1), 0.9999 * (1 - exp(-1.0 / 2000)), 1e-15);
    assert_float_equal(acv_ema_decay_at(e, 2000), 0.9999 * (1 - exp(-1.0)), 1e-15);
    assert_true(acv_ema_decay_at(e, 100000) > 0.9998);

    /* Three updates against the formula, step by step in float as ultralytics. */
    float ep[41], eb[9];
    memcpy(ep, p, sizeof p);
    memcpy(eb, b, sizeof b);
    for (int k = 1; k <= 3; k++) {
        for (int i = 0; i < np; i++)
            p[i] = (float)sin(i + k);
        for (int i = 0; i < nb; i++)
            b[i] = (float)cos(i * k);
        assert_int_equal(acv_ema_update(e, p, b), 0);
        double d = 0.9999 * (1 - exp(-(double)k / 2000));
        float df = (float)d, om = (float)(1 - d);
        for (int i = 0; i < np; i++)
            ep[i] = ep[i] * df + om * p[i];
        for (int i = 0; i < nb; i++)
            eb[i] = eb[i] * df + om * b[i];
    }
    assert_int_equal(acv_ema_updates(e), 3);
    assert_memory_equal(acv_ema_params(e), ep, sizeof ep);
    assert_memory_equal(acv_ema_buffers(e), eb, sizeof eb);
    /* Early updates follow the model closely (d ~ 0.0015 after 3 updates). */
    assert_float_equal(acv_ema_params(e)[5], p[5], 0.01);

    /* State round trip: a restored EMA continues bitwise identically. */
    assert_int_equal(acv_ema_state_size(e), (size_t)(np + nb));
    float st[50];
    acv_ema_state_get(e, st);
    acv_ema *r;
    float z[41] = {0}, zb[9] = {0};
    assert_int_equal(acv_ema_new(z, np, zb, nb, 0.9999, 2000, &r), 0);
    acv_ema_state_set(r, st);
    acv_ema_set_updates(r, acv_ema_updates(e));
    assert_int_equal(acv_ema_update(e, p, b), 0);
    assert_int_equal(acv_ema_update(r, p, b), 0);
    assert_memory_equal(acv_ema_params(e), acv_ema_params(r), sizeof ep);
    assert_memory_equal(acv_ema_buffers(e), acv_ema_buffers(r), sizeof eb);
    assert_int_equal(acv_ema_updates(r), 4);
    acv_ema_free(r);
    acv_ema_free(e);

    /* tau <= 0: constant decay (timm); no buffers allowed as NULL. */
    float q[2] = {1, 1}, q2[2] = {3, 5};
    assert_int_equal(acv_ema_new(q, 2, NULL, 0, 0.5, 0, &e), 0);
    assert_float_equal(acv_ema_decay_at(e, 1), 0.5, 0);
    assert_int_equal(acv_ema_update(e, q2, NULL), 0);
    assert_float_equal(acv_ema_params(e)[0], 2.0f, 0);
    assert_float_equal(acv_ema_params(e)[1], 3.0f, 0);
    acv_ema_free(e);

    assert_int_equal(acv_ema_new(q, 2, NULL, 0, 1.5, 0, &e), ACV_EINVAL);
    assert_null(e);
    assert_int_equal(acv_ema_new(q, 2, NULL, 3, 0.9, 0, &e), ACV_EINVAL);
}

/* ---- config checks --------------------------------------------------------------------- */
static void test_config_errors(void **state)
{
    acv_optim *o = (acv_optim *)1;
    acv_optim_config c = acv_optim_defaults(ACV_OPTIM_SGD);
    c.nesterov = true; /* momentum 0 */
    assert_int_equal(acv_optim_new(&c, 10, &o), ACV_EINVAL);
    assert_null(o);
    assert_non_null(strstr(acv_errmsg(), "nesterov"));
    c.momentum = 0.9;
    c.dampening = 0.1;
    assert_int_equal(acv_optim_new(&c, 10, &o), ACV_EINVAL);
    c = acv_optim_defaults(ACV_OPTIM_SGD);
    c.lr = -1;
    assert_int_equal(acv_optim_new(&c, 10, &o), ACV_EINVAL);
    assert_non_null(strstr(acv_errmsg(), "lr"));
    c = acv_optim_defaults(ACV_OPTIM_ADAMW);
    c.beta2 = 1.0;
    assert_int_equal(acv_optim_new(&c, 10, &o), ACV_EINVAL);
    assert_non_null(strstr(acv_errmsg(), "beta2"));
    c = acv_optim_defaults(ACV_OPTIM_ADAMW);
    c.weight_decay = NAN;
    assert_int_equal(acv_optim_new(&c, 10, &o), ACV_EINVAL);
    assert_int_equal(acv_optim_new(&c, -1, &o), ACV_EINVAL);

    c = acv_optim_defaults(ACV_OPTIM_ADAMW);
    assert_float_equal(c.lr, 1e-3, 0);
    assert_float_equal(c.weight_decay, 1e-2, 0);
    assert_int_equal(acv_optim_new(&c, 4, &o), 0);
    assert_int_equal(acv_optim_size(o), 4);
    assert_float_equal(acv_optim_base_lr(o), 1e-3, 0);
    assert_int_equal(acv_optim_config_of(o)->type, ACV_OPTIM_ADAMW);
    float p[4] = {0}, g[4] = {1, 1, 1, 1};
    assert_int_equal(acv_optim_step(o, p, g, -0.1f), ACV_EINVAL);
    assert_int_equal(acv_optim_step(o, p, g, NAN), ACV_EINVAL);
    assert_int_equal(acv_optim_step(o, NULL, g, 0.1f), ACV_EINVAL);
    assert_int_equal(acv_optim_steps(o), 0);
    /* First AdamW step moves every element by -lr*sign(g) (bias-corrected m/sqrt(v) = 1). */
    assert_int_equal(acv_optim_step(o, p, g, 0.1f), 0);
    assert_float_equal(p[0], -0.1f, 1e-6);
    acv_optim_free(o);

    acv_optim_type t;
    assert_int_equal(acv_optim_type_parse("AdamW", &t), 0);
    assert_int_equal(t, ACV_OPTIM_ADAMW);
    assert_int_equal(acv_optim_type_parse("sgd", &t), 0);
    assert_int_equal(t, ACV_OPTIM_SGD);
    assert_int_equal(acv_optim_type_parse("adam", &t), ACV_EINVAL);
    assert_string_equal(acv_optim_type_name(ACV_OPTIM_ADAMW), "adamw");
}

/* ---- schedules ------------------------------------------------------------------------- */
static void test_schedule(void **state)
{
    /* Cosine with warmup: lr 0.1, min 0.001, 100 warmup steps from 0.1*lr, 1100 steps. */
    acv_schedule s = acv_schedule_defaults(ACV_SCHEDULE_COSINE, 0.1);
    s.min_lr = 0.001;
    s.warmup_steps = 100;
    s.warmup_start_factor = 0.1;
    assert_int_equal(acv_schedule_check(&s), 0);
    const int64_t total = 1100;
    assert_float_equal(acv_schedule_lr(&s, 0, total, 10), 0.01f, 1e-8);     /* warmup start */
    assert_float_equal(acv_schedule_lr(&s, 50, total, 10), 0.055f, 1e-8);   /* halfway */
    assert_float_equal(acv_schedule_lr(&s, 100, total, 10), 0.1f, 1e-8);    /* warmup end */
    assert_float_equal(acv_schedule_lr(&s, 600, total, 10), 0.0505f, 1e-8); /* cosine mid */
    assert_float_equal(acv_schedule_lr(&s, 350, total, 10),
                       (float)(0.001 + 0.099 * (1 + cos(M_PI / 4)) / 2), 1e-8);
    assert_float_equal(acv_schedule_lr(&s, 1100, total, 10), 0.001f, 1e-9); /* end */
    assert_float_equal(acv_schedule_lr(&s, 5000, total, 10), 0.001f, 1e-9); /* beyond */
    assert_float_equal(acv_schedule_lr(&s, -3, total, 10), 0.01f, 1e-8);
    float prev = 1;
    for (int64_t k = 100; k <= total; k++) { /* monotone decay after warmup */
        float v = acv_schedule_lr(&s, k, total, 10);
        assert_true(v <= prev);
        prev = v;
    }
    /* Cosine without warmup, as CosineAnnealingLR(T_max=total) at step 0 and T/2. */
    s.warmup_steps = 0;
    assert_float_equal(acv_schedule_lr(&s, 0, 200, 10), 0.1f, 1e-9);
    assert_float_equal(acv_schedule_lr(&s, 100, 200, 10), 0.0505f, 1e-8);

    /* Step: every 3 epochs of 10 steps, gamma 0.5; boundaries at steps 30 and 60. */
    s = acv_schedule_defaults(ACV_SCHEDULE_STEP, 0.2);
    s.step_size = 3;
    s.gamma = 0.5;
    assert_int_equal(acv_schedule_check(&s), 0);
    assert_float_equal(acv_schedule_lr(&s, 0, 1000, 10), 0.2f, 0);
    assert_float_equal(acv_schedule_lr(&s, 29, 1000, 10), 0.2f, 0);
    assert_float_equal(acv_schedule_lr(&s, 30, 1000, 10), 0.1f, 0);
    assert_float_equal(acv_schedule_lr(&s, 59, 1000, 10), 0.1f, 0);
    assert_float_equal(acv_schedule_lr(&s, 60, 1000, 10), 0.05f, 0);
    /* Step with warmup multiplies: step 5 of 20 warmup steps from 0 -> 0.25 * 0.2. */
    s.warmup_steps = 20;
    s.warmup_start_factor = 0;
    assert_float_equal(acv_schedule_lr(&s, 5, 1000, 10), 0.05f, 1e-8);
    assert_float_equal(acv_schedule_lr(&s, 20, 1000, 10), 0.2f, 0);

    /* Constant. */
    s = acv_schedule_defaults(ACV_SCHEDULE_CONSTANT, 0.3);
    assert_float_equal(acv_schedule_lr(&s, 0, 10, 1), 0.3f, 0);
    assert_float_equal(acv_schedule_lr(&s, 999, 10, 0), 0.3f, 0);

    /* Checks and names. */
    s = acv_schedule_defaults(ACV_SCHEDULE_STEP, 0.1);
    s.step_size = 0;
    assert_int_equal(acv_schedule_check(&s), ACV_EINVAL);
    assert_non_null(strstr(acv_errmsg(), "step_size"));
    s = acv_schedule_defaults(ACV_SCHEDULE_COSINE, 0.1);
    s.min_lr = 0.2;
    assert_int_equal(acv_schedule_check(&s), ACV_EINVAL);
    s = acv_schedule_defaults(ACV_SCHEDULE_CONSTANT, 0.1);
    s.warmup_start_factor = 1.5;
    assert_int_equal(acv_schedule_check(&s), ACV_EINVAL);
    s.warmup_start_factor = 0.5;
    s.warmup_steps = -1;
    assert_int_equal(acv_schedule_check(&s), ACV_EINVAL);
    acv_schedule_type t;
    assert_int_equal(acv_schedule_type_parse("Cosine", &t), 0);
    assert_int_equal(t, ACV_SCHEDULE_COSINE);
    assert_int_equal(acv_schedule_type_parse("step", &t), 0);
    assert_int_equal(t, ACV_SCHEDULE_STEP);
    assert_int_equal(acv_schedule_type_parse("linear", &t), ACV_EINVAL);
    assert_string_equal(acv_schedule_type_name(ACV_SCHEDULE_CONSTANT), "constant");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sgd_plain_torch),
        cmocka_unit_test(test_sgd_momentum_wd_torch),
        cmocka_unit_test(test_sgd_nesterov_mask_torch),
        cmocka_unit_test(test_adamw_torch),
        cmocka_unit_test(test_adamw_mask_torch),
        cmocka_unit_test(test_clip_torch),
        cmocka_unit_test(test_decay_mask),
        cmocka_unit_test(test_resume_bitwise),
        cmocka_unit_test(test_thread_independent),
        cmocka_unit_test(test_clip_rules),
        cmocka_unit_test(test_all_finite),
        cmocka_unit_test(test_ema),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_schedule),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
