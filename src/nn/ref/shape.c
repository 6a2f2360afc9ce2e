/* Reference concat and slice along one axis of a tensor viewed as (outer, axis, inner). */
#include "nn/kernels.h"

#include <string.h>

#include "autocv/error.h"

#define SHAPE_PAR_MIN 16384

/* out (outer, sum(sizes), inner) = the n inputs ins[i] (outer, sizes[i], inner) side by side
 * along the axis. */
void acv_ref_concat_forward(float *out, const float *const *ins, const int *sizes, int n,
                            int64_t outer, int64_t inner)
{
    int64_t total = 0;
    for (int i = 0; i < n; i++) {
        ACV_ASSERT(sizes[i] >= 0);
        total += sizes[i];
    }
#pragma omp parallel for schedule(static) if (outer * total * inner >= SHAPE_PAR_MIN)
    for (int64_t o = 0; o < outer; o++) {
        float *dst = out + o * total * inner;
        for (int i = 0; i < n; i++) {
            int64_t len = (int64_t)sizes[i] * inner;
            if (len) memcpy(dst, ins[i] + o * len, (size_t)len * sizeof(float));
            dst += len;
        }
    }
}

/* d_ins[i] += the part of d_out that came from input i; NULL entries are skipped. */
void acv_ref_concat_backward(float *const *d_ins, const float *d_out, const int *sizes, int n,
                             int64_t outer, int64_t inner)
{
    int64_t total = 0;
    for (int i = 0; i < n; i++) total += sizes[i];
#pragma omp parallel for schedule(static) if (outer * total * inner >= SHAPE_PAR_MIN)
    for (int64_t o = 0; o < outer; o++) {
        const float *src = d_out + o * total * inner;
        for (int i = 0; i < n; i++) {
            int64_t len = (int64_t)sizes[i] * inner;
            if (d_ins[i]) {
                float *dst = d_ins[i] + o * len;
                for (int64_t j = 0; j < len; j++) dst[j] += src[j];
            }
            src += len;
        }
    }
}

/* out (outer, len, inner) = in (outer, axis_in, inner) at axis positions start + j*step. */
void acv_ref_slice_forward(float *out, const float *in, int64_t outer, int64_t axis_in,
                           int64_t inner, int64_t start, int64_t len, int64_t step)
{
    ACV_ASSERT(step >= 1 && start >= 0 && len >= 0);
    ACV_ASSERT(len == 0 || start + (len - 1) * step < axis_in);
#pragma omp parallel for schedule(static) if (outer * len * inner >= SHAPE_PAR_MIN)
    for (int64_t o = 0; o < outer; o++) {
        const float *src = in + (o * axis_in + start) * inner;
        float *dst = out + o * len * inner;
        if (step == 1) {
            if (len > 0 && inner > 0) memcpy(dst, src, (size_t)(len * inner) * sizeof(float));
            continue;
        }
        for (int64_t j = 0; j < len; j++)
            memcpy(dst + j * inner, src + j * step * inner, (size_t)inner * sizeof(float));
    }
}

/* d_in += d_out scattered back to the sliced positions (distinct since step >= 1). */
void acv_ref_slice_backward(float *d_in, const float *d_out, int64_t outer, int64_t axis_in,
                            int64_t inner, int64_t start, int64_t len, int64_t step)
{
    ACV_ASSERT(step >= 1 && start >= 0 && len >= 0);
    ACV_ASSERT(len == 0 || start + (len - 1) * step < axis_in);
    if (!d_in) return;
#pragma omp parallel for schedule(static) if (outer * len * inner >= SHAPE_PAR_MIN)
    for (int64_t o = 0; o < outer; o++) {
        float *dst = d_in + (o * axis_in + start) * inner;
        const float *src = d_out + o * len * inner;
        for (int64_t j = 0; j < len; j++) {
            float *dd = dst + j * step * inner;
            const float *ss = src + j * inner;
            for (int64_t i = 0; i < inner; i++) dd[i] += ss[i];
        }
    }
}
