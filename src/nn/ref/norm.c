/* Reference batch normalization over (N, H, W) per channel, PyTorch semantics.
 * Each channel is handled by one thread and its sums run in a fixed order in double, so
 * results do not depend on the thread count. */
#include "nn/kernels.h"

#include <math.h>
#include <stddef.h>

#include "autocv/error.h"

/* Sums of one plane in 8 double lanes (fixed lane per index, so the order, and the result,
 * does not depend on threads); the compiler vectorises these loops. */
#define LANES 8
static inline void plane_sum(const float *x, int64_t n, double *acc)
{
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; j++) acc[j] += (double)x[i + j];
    for (; i < n; i++) acc[i % LANES] += (double)x[i];
}

static inline void plane_sqdev(const float *x, int64_t n, double mean, double *acc)
{
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; j++) {
            double d = (double)x[i + j] - mean;
            acc[j] += d * d;
        }
    for (; i < n; i++) {
        double d = (double)x[i] - mean;
        acc[i % LANES] += d * d;
    }
}

/* sum(dy) and sum(dy * (x - mean)) of one plane. */
static inline void plane_dy(const float *dy, const float *x, int64_t n, double mean, double *a1, double *a2)
{
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; j++) {
            a1[j] += (double)dy[i + j];
            a2[j] += (double)dy[i + j] * ((double)x[i + j] - mean);
        }
    for (; i < n; i++) {
        a1[i % LANES] += (double)dy[i];
        a2[i % LANES] += (double)dy[i] * ((double)x[i] - mean);
    }
}

static inline double lanes_total(const double *acc)
{
    double s = 0;
    for (int j = 0; j < LANES; j++) s += acc[j];
    return s;
}

/* Training: per channel c, mean and biased variance over the N*HW values; out =
 * (x - mean) * rstd * gamma + beta with rstd = 1/sqrt(var + eps). save_mean/save_rstd (C),
 * when not NULL, receive mean and rstd; running_mean/running_var, when not NULL, become
 * (1-m)*old + m*batch with the unbiased variance (the biased one when N*HW == 1).
 * Eval: uses running_mean/running_var (required); save_mean/save_rstd, when not NULL,
 * receive the running mean and 1/sqrt(running_var + eps), which the eval-mode backward
 * needs for d_gamma. gamma/beta NULL mean 1/0. out may alias in. */
void acv_ref_batchnorm_forward(float *out, float *save_mean, float *save_rstd, const float *in,
                               const float *gamma, const float *beta, float *running_mean,
                               float *running_var, int N, int C, int HW, float eps,
                               float momentum, bool training)
{
    ACV_ASSERT(N >= 0 && C >= 0 && HW >= 0);
    ACV_ASSERT(training || (running_mean && running_var));
    const int64_t cnt = (int64_t)N * HW;
    const int64_t plane = HW, nstride = (int64_t)C * HW;
#pragma omp parallel for schedule(static) if ((int64_t)C * cnt >= 16384)
    for (int c = 0; c < C; c++) {
        double mean, rstd;
        if (training) {
            double acc[LANES] = {0};
            for (int n = 0; n < N; n++) plane_sum(in + n * nstride + c * plane, HW, acc);
            mean = cnt > 0 ? lanes_total(acc) / (double)cnt : 0.0;
            double acc2[LANES] = {0};
            for (int n = 0; n < N; n++) plane_sqdev(in + n * nstride + c * plane, HW, mean, acc2);
            double ss = lanes_total(acc2);
            double var = cnt > 0 ? ss / (double)cnt : 0.0;
            rstd = 1.0 / sqrt(var + (double)eps);
            if (running_mean) running_mean[c] = (float)((1.0 - momentum) * running_mean[c] + momentum * mean);
            if (running_var) {
                double unbiased = cnt > 1 ? ss / (double)(cnt - 1) : var;
                running_var[c] = (float)((1.0 - momentum) * running_var[c] + momentum * unbiased);
            }
        } else {
            mean = running_mean[c];
            rstd = 1.0 / sqrt((double)running_var[c] + (double)eps);
        }
        if (save_mean) save_mean[c] = (float)mean;
        if (save_rstd) save_rstd[c] = (float)rstd;
        /* Subtract the mean first (folding it into one shift loses digits when
         * |mean| >> std); the mean's float rounding error is put back in the shift. */
        double sc = (gamma ? gamma[c] : 1.0) * rstd;
        float m = (float)mean, scale = (float)sc;
        float shift = (float)((beta ? beta[c] : 0.0) - (mean - (double)m) * sc);
        for (int n = 0; n < N; n++) {
            const float *x = in + n * nstride + c * plane;
            float *y = out + n * nstride + c * plane;
            for (int64_t i = 0; i < HW; i++) y[i] = (x[i] - m) * scale + shift;
        }
    }
}

/* Training (through batch statistics), with xhat = (x - mean) * rstd and g = d_out*gamma:
 *   d_in += rstd * (g - mean(g) - xhat * mean(g * xhat)),
 *   d_gamma += sum(d_out * xhat), d_beta += sum(d_out);
 * save_mean/save_rstd are those of the training forward.
 * Eval (affine map with running statistics): d_in += d_out * gamma * rstd with rstd from
 * running_var and eps (save_rstd when running_var is NULL); d_gamma needs the mean, taken
 * from save_mean as written by the eval forward. Any NULL gradient is skipped. */
void acv_ref_batchnorm_backward(float *d_in, float *d_gamma, float *d_beta, const float *d_out,
                                const float *in, const float *gamma, const float *save_mean,
                                const float *save_rstd, const float *running_var, int N, int C,
                                int HW, float eps, bool training)
{
    ACV_ASSERT(N >= 0 && C >= 0 && HW >= 0);
    if (!d_in && !d_gamma && !d_beta) return;
    const int64_t cnt = (int64_t)N * HW;
    const int64_t plane = HW, nstride = (int64_t)C * HW;
    if (training || d_gamma) ACV_ASSERT(save_mean != NULL);
    if (training) ACV_ASSERT(save_rstd != NULL);
    else ACV_ASSERT(running_var != NULL || save_rstd != NULL);
#pragma omp parallel for schedule(static) if ((int64_t)C * cnt >= 16384)
    for (int c = 0; c < C; c++) {
        double rstd;
        if (training || !running_var) rstd = save_rstd[c];
        else rstd = 1.0 / sqrt((double)running_var[c] + (double)eps);
        double mean = save_mean ? save_mean[c] : 0.0;
        double g = gamma ? gamma[c] : 1.0;
        double sdy = 0.0, sdyx = 0.0; /* sum(d_out), sum(d_out * xhat) */
        if (d_gamma || d_beta || training) {
            double a1[LANES] = {0}, a2[LANES] = {0};
            for (int n = 0; n < N; n++)
                plane_dy(d_out + n * nstride + c * plane, in + n * nstride + c * plane, HW, mean, a1, a2);
            sdy = lanes_total(a1);
            sdyx = lanes_total(a2) * rstd;
        }
        if (d_gamma) d_gamma[c] += (float)sdyx;
        if (d_beta) d_beta[c] += (float)sdy;
        if (!d_in) continue;
        if (training) {
            float mdy = cnt > 0 ? (float)(sdy / (double)cnt) : 0.0f;   /* mean(d_out) */
            float mdyx = cnt > 0 ? (float)(sdyx / (double)cnt) : 0.0f; /* mean(d_out*xhat) */
            float a = (float)(g * rstd), m = (float)mean, r = (float)rstd;
            for (int n = 0; n < N; n++) {
                const float *x = in + n * nstride + c * plane;
                const float *dy = d_out + n * nstride + c * plane;
                float *dx = d_in + n * nstride + c * plane;
                for (int64_t i = 0; i < HW; i++)
                    dx[i] += a * (dy[i] - mdy - (x[i] - m) * r * mdyx);
            }
        } else {
            float a = (float)(g * rstd);
            for (int n = 0; n < N; n++) {
                const float *dy = d_out + n * nstride + c * plane;
                float *dx = d_in + n * nstride + c * plane;
                for (int64_t i = 0; i < HW; i++) dx[i] += a * dy[i];
            }
        }
    }
}
