/* Reference softmax and log-softmax over the middle axis of (outer, axis, inner),
 * stabilized by subtracting the maximum. Work is split into (outer, block of inner)
 * pieces; each output is computed by one thread in a fixed order. */
#include "nn/kernels.h"

#include <math.h>

#include "autocv/error.h"

#define SM_BLK 64

/* The parameter named `log` hides log() inside the kernels. */
static double ln(double x) { return log(x); }

/* out = softmax(in) (log=false) or log_softmax(in) (log=true) along the axis; out may
 * alias in. */
void acv_ref_softmax_forward(float *out, const float *in, int64_t outer, int64_t axis,
                             int64_t inner, bool log)
{
    ACV_ASSERT(outer >= 0 && axis >= 0 && inner >= 0);
    if (axis == 0) return;
    const int64_t nblk = (inner + SM_BLK - 1) / SM_BLK;
#pragma omp parallel for schedule(static) if (outer * axis * inner >= 16384)
    for (int64_t q = 0; q < outer * nblk; q++) {
        int64_t o = q / nblk, lo = (q % nblk) * SM_BLK;
        int64_t bn = inner - lo < SM_BLK ? inner - lo : SM_BLK;
        const float *x = in + o * axis * inner + lo;
        float *y = out + o * axis * inner + lo;
        float mx[SM_BLK];
        double sum[SM_BLK];
        for (int64_t i = 0; i < bn; i++) {
            mx[i] = x[i];
            sum[i] = 0.0;
        }
        for (int64_t k = 1; k < axis; k++)
            for (int64_t i = 0; i < bn; i++) mx[i] = fmaxf(mx[i], x[k * inner + i]);
        for (int64_t k = 0; k < axis; k++)
            for (int64_t i = 0; i < bn; i++) sum[i] += expf(x[k * inner + i] - mx[i]);
        if (log) {
            float lse[SM_BLK];
            for (int64_t i = 0; i < bn; i++) lse[i] = mx[i] + (float)ln(sum[i]);
            for (int64_t k = 0; k < axis; k++)
                for (int64_t i = 0; i < bn; i++) y[k * inner + i] = x[k * inner + i] - lse[i];
        } else {
            float inv[SM_BLK];
            for (int64_t i = 0; i < bn; i++) inv[i] = (float)(1.0 / sum[i]);
            for (int64_t k = 0; k < axis; k++)
                for (int64_t i = 0; i < bn; i++)
                    y[k * inner + i] = expf(x[k * inner + i] - mx[i]) * inv[i];
        }
    }
}

/* softmax:     d_in += y * (g - sum_k g_k y_k)
 * log-softmax: d_in += g - exp(y) * sum_k g_k
 * with y the forward output. d_in NULL: nothing to do. */
void acv_ref_softmax_backward(float *d_in, const float *d_out, const float *out, int64_t outer,
                              int64_t axis, int64_t inner, bool log)
{
    ACV_ASSERT(outer >= 0 && axis >= 0 && inner >= 0);
    if (!d_in || axis == 0) return;
    const int64_t nblk = (inner + SM_BLK - 1) / SM_BLK;
#pragma omp parallel for schedule(static) if (outer * axis * inner >= 16384)
    for (int64_t q = 0; q < outer * nblk; q++) {
        int64_t o = q / nblk, lo = (q % nblk) * SM_BLK;
        int64_t bn = inner - lo < SM_BLK ? inner - lo : SM_BLK;
        const int64_t base = o * axis * inner + lo;
        const float *g = d_out + base, *y = out + base;
        float *dx = d_in + base;
        double acc[SM_BLK];
        float s[SM_BLK];
        for (int64_t i = 0; i < bn; i++) acc[i] = 0.0;
        if (log) {
            for (int64_t k = 0; k < axis; k++)
                for (int64_t i = 0; i < bn; i++) acc[i] += g[k * inner + i];
            for (int64_t i = 0; i < bn; i++) s[i] = (float)acc[i];
            for (int64_t k = 0; k < axis; k++)
                for (int64_t i = 0; i < bn; i++)
                    dx[k * inner + i] += g[k * inner + i] - expf(y[k * inner + i]) * s[i];
        } else {
            for (int64_t k = 0; k < axis; k++)
                for (int64_t i = 0; i < bn; i++)
                    acc[i] += (double)g[k * inner + i] * y[k * inner + i];
            for (int64_t i = 0; i < bn; i++) s[i] = (float)acc[i];
            for (int64_t k = 0; k < axis; k++)
                for (int64_t i = 0; i < bn; i++)
                    dx[k * inner + i] += y[k * inner + i] * (g[k * inner + i] - s[i]);
        }
    }
}
