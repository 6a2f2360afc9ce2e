/* The CPU backend's training-mode batch normalization (forward through batch statistics,
 * and its backward), optionally with the following activation applied in the same pass.
 *
 * Same contracts and formulas as ref/norm.c; what differs is how the per-channel sums are
 * taken. The reference runs a mean pass and a squared-deviation pass, both accumulating in
 * double. Here one pass takes sum(x - k) and sum((x - k)^2) around a pivot k (the mean of
 * 16 values spread over the channel, so (mean - k)^2 is small against the variance and the
 * shifted form loses no digits), in float lanes over runs of 16 values per lane, each run
 * then added into double lanes: float-speed arithmetic with double-quality sums. The
 * backward's two sums are taken the same way. Channels are split over OpenMP threads, each
 * channel's sums run in a fixed order, so results do not depend on the thread count.
 * Eval mode (running statistics) is the reference kernel's single affine pass. */
#include "nn/cpu/cpu.h"

#include <math.h>
#include <string.h>

#include "autocv/error.h"

#define LANES 16
#define BN_PAR_MIN 16384

/* 16 float lanes (GCC/Clang vector extension: left to itself the compiler turns the lane
 * sums into in-order scalar reductions, since float addition does not associate). Vectors
 * go through pointers only: passing one by value changes the ABI between targets with and
 * without AVX-512, which GCC warns about. */
typedef float v16f __attribute__((vector_size(64)));

static inline void load16(v16f *v, const float *p) { memcpy(v, p, sizeof *v); }

/* The first len < LANES values of p, padded with pad. */
static inline void load_tail(v16f *v, const float *p, int64_t len, float pad)
{
    float t[LANES];
    for (int j = 0; j < LANES; j++) t[j] = j < len ? p[j] : pad;
    memcpy(v, t, sizeof *v);
}

/* d[0..15] += a, in double. */
static inline void add_lanes(double *d, const v16f *a)
{
    typedef float v8f __attribute__((vector_size(32)));
    typedef double v8d __attribute__((vector_size(64)));
    v8f h[2];
    memcpy(h, a, sizeof h);
    for (int k = 0; k < 2; k++) {
        v8d acc;
        memcpy(&acc, d + 8 * k, sizeof acc);
        acc += __builtin_convertvector(h[k], v8d);
        memcpy(d + 8 * k, &acc, sizeof acc);
    }
}

/* Float lane sums that move into double lanes every RUNS vector steps, so that no float
 * lane sums more than RUNS values (sums spanning planes: small planes cost no extra
 * flushes). */
#define RUNS 16
typedef struct lane_sums {
    v16f a1, a2;
    int steps;
    double d1[LANES], d2[LANES];
} lane_sums;

static inline void sums_step(lane_sums *s, const v16f *v1, const v16f *v2)
{
    s->a1 += *v1;
    s->a2 += *v2;
    if (++s->steps == RUNS) {
        add_lanes(s->d1, &s->a1);
        add_lanes(s->d2, &s->a2);
        s->a1 = (v16f){0};
        s->a2 = (v16f){0};
        s->steps = 0;
    }
}

/* The two totals, in a fixed order. */
static void sums_total(lane_sums *s, double *t1, double *t2)
{
    add_lanes(s->d1, &s->a1);
    add_lanes(s->d2, &s->a2);
    *t1 = *t2 = 0.0;
    for (int j = 0; j < LANES; j++) {
        *t1 += s->d1[j];
        *t2 += s->d2[j];
    }
}

/* Adds sum(x - k) and sum((x - k)^2) over n values into s. */
static void plane_moments(lane_sums *s, const float *x, int64_t n, float k)
{
    v16f d, d2;
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES) {
        load16(&d, x + i);
        d -= k;
        d2 = d * d;
        sums_step(s, &d, &d2);
    }
    if (i < n) {
        load_tail(&d, x + i, n - i, k);
        d -= k;
        d2 = d * d;
        sums_step(s, &d, &d2);
    }
}

/* Adds sum(dy) and sum(dy * (x - m)) over n values into s. */
static void plane_dy_moments(lane_sums *s, const float *dy, const float *x, int64_t n, float m)
{
    v16f g, v, gx;
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES) {
        load16(&g, dy + i);
        load16(&v, x + i);
        gx = g * (v - m);
        sums_step(s, &g, &gx);
    }
    if (i < n) {
        load_tail(&g, dy + i, n - i, 0.0f);
        load_tail(&v, x + i, n - i, m);
        gx = g * (v - m);
        sums_step(s, &g, &gx);
    }
}

/* Training forward for channel c: batch mean and biased variance, running statistics,
 * save_mean/save_rstd, then out (and act_out = act(out) when act_out is not NULL). */
static void channel_forward(float *out, float *act_out, int act, float alpha, float *save_mean,
                            float *save_rstd, const float *in, const float *gamma, const float *beta,
                            float *running_mean, float *running_var, int N, int c, int64_t HW,
                            int64_t nstride, float eps, float momentum)
{
    const int64_t cnt = (int64_t)N * HW, base = c * HW;
    double mean = 0.0, var = 0.0, ss = 0.0;
    if (cnt > 0) {
        int ns = cnt < 16 ? (int)cnt : 16;
        double kk = 0.0;
        for (int s = 0; s < ns; s++) {
            int64_t idx = s * cnt / ns;
            kk += in[idx / HW * nstride + base + idx % HW];
        }
        float k = (float)(kk / ns);
        lane_sums ls = {0};
        for (int n = 0; n < N; n++) plane_moments(&ls, in + n * nstride + base, HW, k);
        double s1, s2;
        sums_total(&ls, &s1, &s2);
        mean = (double)k + s1 / (double)cnt;
        ss = s2 - s1 * (s1 / (double)cnt); /* sum of squared deviations from the mean */
        if (ss < 0.0) ss = 0.0;
        var = ss / (double)cnt;
    }
    double rstd = 1.0 / sqrt(var + (double)eps);
    if (running_mean) running_mean[c] = (float)((1.0 - momentum) * running_mean[c] + momentum * mean);
    if (running_var) {
        double unbiased = cnt > 1 ? ss / (double)(cnt - 1) : var;
        running_var[c] = (float)((1.0 - momentum) * running_var[c] + momentum * unbiased);
    }
    if (save_mean) save_mean[c] = (float)mean;
    if (save_rstd) save_rstd[c] = (float)rstd;
    /* the reference's normalisation, bit for bit given the same mean and rstd */
    double sc = (gamma ? gamma[c] : 1.0) * rstd;
    float m = (float)mean, scale = (float)sc;
    float shift = (float)((beta ? beta[c] : 0.0) - (mean - (double)m) * sc);
    for (int n = 0; n < N; n++) {
        const float *x = in + n * nstride + base;
        float *y = out + n * nstride + base;
        for (int64_t i = 0; i < HW; i++) y[i] = (x[i] - m) * scale + shift;
        if (act_out) acv__cpu_act_forward_serial(act_out + n * nstride + base, y, HW, (acv_act)act, alpha);
    }
}

void acv__cpu_batchnorm_act_forward(void **cache, float *out, float *act_out, int act, float alpha,
                                    float *save_mean, float *save_rstd, const float *in, const float *gamma,
                                    const float *beta, float *running_mean, float *running_var, int N, int C,
                                    int HW, float eps, float momentum, bool training)
{
    (void)cache;
    ACV_ASSERT(N >= 0 && C >= 0 && HW >= 0);
    ACV_ASSERT(!act_out || (act >= 0 && act < ACV_ACT_COUNT));
    if (!training) {
        acv_ref_batchnorm_forward(out, save_mean, save_rstd, in, gamma, beta, running_mean, running_var, N, C,
                                  HW, eps, momentum, false);
        if (act_out) acv__cpu_act_forward(act_out, out, (int64_t)N * C * HW, (acv_act)act, alpha);
        return;
    }
    acv__cpu_sync_threads();
    const int64_t nstride = (int64_t)C * HW;
#pragma omp parallel for schedule(static) if ((int64_t)N * nstride >= BN_PAR_MIN)
    for (int c = 0; c < C; c++)
        channel_forward(out, act_out, act, alpha, save_mean, save_rstd, in, gamma, beta, running_mean,
                        running_var, N, c, HW, nstride, eps, momentum);
}

void acv__cpu_batchnorm_forward(void **cache, float *out, float *save_mean, float *save_rstd, const float *in,
                                const float *gamma, const float *beta, float *running_mean, float *running_var,
                                int N, int C, int HW, float eps, float momentum, bool training)
{
    acv__cpu_batchnorm_act_forward(cache, out, NULL, 0, 0.0f, save_mean, save_rstd, in, gamma, beta, running_mean,
                                   running_var, N, C, HW, eps, momentum, training);
}

void acv__cpu_batchnorm_backward(void **cache, float *d_in, float *d_gamma, float *d_beta, const float *d_out,
                                 const float *in, const float *gamma, const float *save_mean,
                                 const float *save_rstd, const float *running_var, int N, int C, int HW, float eps,
                                 bool training)
{
    (void)cache;
    ACV_ASSERT(N >= 0 && C >= 0 && HW >= 0);
    if (!training) {
        acv_ref_batchnorm_backward(d_in, d_gamma, d_beta, d_out, in, gamma, save_mean, save_rstd, running_var, N,
                                   C, HW, eps, false);
        return;
    }
    if (!d_in && !d_gamma && !d_beta) return;
    ACV_ASSERT(save_mean && save_rstd);
    acv__cpu_sync_threads();
    const int64_t cnt = (int64_t)N * HW, nstride = (int64_t)C * HW;
#pragma omp parallel for schedule(static) if (N * nstride >= BN_PAR_MIN)
    for (int c = 0; c < C; c++) {
        const int64_t base = c * HW;
        double rstd = save_rstd[c];
        float m = save_mean[c];
        lane_sums ls = {0};
        for (int n = 0; n < N; n++) plane_dy_moments(&ls, d_out + n * nstride + base, in + n * nstride + base, HW, m);
        double sdy, sdyx; /* sum(dy), sum(dy * xhat) */
        sums_total(&ls, &sdy, &sdyx);
        sdyx *= rstd;
        if (d_gamma) d_gamma[c] += (float)sdyx;
        if (d_beta) d_beta[c] += (float)sdy;
        if (!d_in) continue;
        /* the reference's formula */
        double g = gamma ? gamma[c] : 1.0;
        float mdy = cnt > 0 ? (float)(sdy / (double)cnt) : 0.0f;
        float mdyx = cnt > 0 ? (float)(sdyx / (double)cnt) : 0.0f;
        float a = (float)(g * rstd), r = (float)rstd;
        for (int n = 0; n < N; n++) {
            const float *x = in + n * nstride + base;
            const float *dy = d_out + n * nstride + base;
            float *dx = d_in + n * nstride + base;
            for (int64_t i = 0; i < HW; i++) dx[i] += a * (dy[i] - mdy - (x[i] - m) * r * mdyx);
        }
    }
}
