/* Reference layer normalization over the middle axis of (outer, axis, inner): statistics
 * in double per (outer, inner) position. Work is split into (outer, block of inner) pieces,
 * each computed by one thread in a fixed order; the parameter gradients are summed per axis
 * index by one thread each, so results do not depend on the thread count. */
#include "nn/kernels.h"

#include <math.h>
#include <stdlib.h>

#include "autocv/error.h"

#define LN_BLK 64
#define LN_PAR_MIN 16384

/* mean and 1/sqrt(var + eps) of the bn positions starting at x (stride inner). */
static void stats(const float *x, int64_t axis, int64_t inner, int64_t bn, float eps, double *mean, double *rstd)
{
    for (int64_t i = 0; i < bn; i++) mean[i] = rstd[i] = 0.0;
    for (int64_t k = 0; k < axis; k++)
        for (int64_t i = 0; i < bn; i++) mean[i] += x[k * inner + i];
    for (int64_t i = 0; i < bn; i++) mean[i] /= (double)axis;
    for (int64_t k = 0; k < axis; k++)
        for (int64_t i = 0; i < bn; i++) {
            double d = x[k * inner + i] - mean[i];
            rstd[i] += d * d;
        }
    for (int64_t i = 0; i < bn; i++) rstd[i] = 1.0 / sqrt(rstd[i] / (double)axis + (double)eps);
}

void acv_ref_layernorm_forward(float *out, const float *in, const float *gamma, const float *beta,
                               int64_t outer, int64_t axis, int64_t inner, float eps)
{
    ACV_ASSERT(outer >= 0 && axis >= 0 && inner >= 0);
    if (axis == 0) return;
    const int64_t nblk = (inner + LN_BLK - 1) / LN_BLK;
#pragma omp parallel for schedule(static) if (outer * axis * inner >= LN_PAR_MIN)
    for (int64_t q = 0; q < outer * nblk; q++) {
        int64_t o = q / nblk, lo = (q % nblk) * LN_BLK;
        int64_t bn = inner - lo < LN_BLK ? inner - lo : LN_BLK;
        const float *x = in + o * axis * inner + lo;
        float *y = out + o * axis * inner + lo;
        double mean[LN_BLK], rstd[LN_BLK];
        stats(x, axis, inner, bn, eps, mean, rstd);
        for (int64_t k = 0; k < axis; k++) {
            float gk = gamma ? gamma[k] : 1.0f, bk = beta ? beta[k] : 0.0f;
            for (int64_t i = 0; i < bn; i++)
                y[k * inner + i] = (float)((x[k * inner + i] - mean[i]) * rstd[i]) * gk + bk;
        }
    }
}

/* d_in += rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = d_out * gamma;
 * d_gamma += sum d_out * xhat, d_beta += sum d_out over (outer, inner). */
void acv_ref_layernorm_backward(float *d_in, float *d_gamma, float *d_beta, const float *d_out,
                                const float *in, const float *gamma, int64_t outer, int64_t axis,
                                int64_t inner, float eps)
{
    ACV_ASSERT(outer >= 0 && axis >= 0 && inner >= 0);
    if (axis == 0 || outer * inner == 0) return;
    const int64_t nblk = (inner + LN_BLK - 1) / LN_BLK, npos = outer * inner;
    double *ms = malloc((size_t)npos * 2 * sizeof(double));
    ACV_ASSERT(ms);
    double *mean_all = ms, *rstd_all = ms + npos;
    const bool par = outer * axis * inner >= LN_PAR_MIN;
#pragma omp parallel for schedule(static) if (par)
    for (int64_t q = 0; q < outer * nblk; q++) {
        int64_t o = q / nblk, lo = (q % nblk) * LN_BLK;
        int64_t bn = inner - lo < LN_BLK ? inner - lo : LN_BLK;
        const float *x = in + o * axis * inner + lo;
        double *mean = mean_all + o * inner + lo, *rstd = rstd_all + o * inner + lo;
        stats(x, axis, inner, bn, eps, mean, rstd);
        if (!d_in) continue;
        const float *dy = d_out + o * axis * inner + lo;
        float *dx = d_in + o * axis * inner + lo;
        double sg[LN_BLK], sgx[LN_BLK];
        for (int64_t i = 0; i < bn; i++) sg[i] = sgx[i] = 0.0;
        for (int64_t k = 0; k < axis; k++) {
            double gk = gamma ? gamma[k] : 1.0;
            for (int64_t i = 0; i < bn; i++) {
                double g = dy[k * inner + i] * gk, xh = (x[k * inner + i] - mean[i]) * rstd[i];
                sg[i] += g;
                sgx[i] += g * xh;
            }
        }
        for (int64_t i = 0; i < bn; i++) {
            sg[i] /= (double)axis;
            sgx[i] /= (double)axis;
        }
        for (int64_t k = 0; k < axis; k++) {
            double gk = gamma ? gamma[k] : 1.0;
            for (int64_t i = 0; i < bn; i++) {
                double g = dy[k * inner + i] * gk, xh = (x[k * inner + i] - mean[i]) * rstd[i];
                dx[k * inner + i] += (float)(rstd[i] * (g - sg[i] - xh * sgx[i]));
            }
        }
    }
    if (d_gamma || d_beta) {
#pragma omp parallel for schedule(static) if (par)
        for (int64_t k = 0; k < axis; k++) {
            double sgm = 0.0, sb = 0.0;
            for (int64_t o = 0; o < outer; o++) {
                const float *x = in + (o * axis + k) * inner, *dy = d_out + (o * axis + k) * inner;
                const double *mean = mean_all + o * inner, *rstd = rstd_all + o * inner;
                for (int64_t i = 0; i < inner; i++) {
                    sgm += dy[i] * ((x[i] - mean[i]) * rstd[i]);
                    sb += dy[i];
                }
            }
            if (d_gamma) d_gamma[k] += (float)sgm;
            if (d_beta) d_beta[k] += (float)sb;
        }
    }
    free(ms);
}
