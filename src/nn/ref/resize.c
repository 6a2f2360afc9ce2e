/* Reference resize kernels: nearest and bilinear upsampling (any output size, also
 * downsampling), forward and backward, with PyTorch's index formulas computed in float as
 * PyTorch's CPU kernels do, so results match F.interpolate(size=(OH, OW)).
 *
 * The source indices and weights of every output row and column are computed once per
 * call; planes are independent, so the OpenMP loops over planes are race-free and the
 * backward's scatter order per plane is fixed. */
#include "nn/kernels.h"

#include <math.h>
#include <stdlib.h>

#include "autocv/error.h"

#define RESIZE_PAR_MIN ((int64_t)1 << 15)

/* PyTorch's nearest_idx for size-given interpolation: identity for equal sizes, dst/2 for
 * an exact 2x, otherwise min(floor(dst * (in/out)), in - 1) with a float scale. */
static int nearest_src(int dst, int in, int out)
{
    if (out == in) return dst;
    if (out == 2 * in) return dst >> 1;
    const float scale = (float)in / (float)out;
    int s = (int)floorf((float)dst * scale);
    return s < in - 1 ? s : in - 1;
}

static int *alloc_ints(int n)
{
    int *x = malloc(sizeof(int) * (size_t)(n > 0 ? n : 1));
    ACV_ASSERT(x != NULL);
    return x;
}

void acv_ref_upsample_nearest_forward(float *out, const float *in, int N, int C, int H, int W,
                                      int OH, int OW)
{
    ACV_ASSERT(N > 0 && C > 0 && H > 0 && W > 0 && OH > 0 && OW > 0);
    int *sh = alloc_ints(OH), *sw = alloc_ints(OW);
    for (int i = 0; i < OH; i++) sh[i] = nearest_src(i, H, OH);
    for (int j = 0; j < OW; j++) sw[j] = nearest_src(j, W, OW);
    const int64_t planes = (int64_t)N * C, hw = (int64_t)H * W, ohw = (int64_t)OH * OW;
#pragma omp parallel for schedule(static) if (planes * ohw >= RESIZE_PAR_MIN)
    for (int64_t pl = 0; pl < planes; pl++) {
        const float *x = in + pl * hw;
        float *y = out + pl * ohw;
        for (int i = 0; i < OH; i++) {
            const float *row = x + (int64_t)sh[i] * W;
            for (int j = 0; j < OW; j++) y[(int64_t)i * OW + j] = row[sw[j]];
        }
    }
    free(sh);
    free(sw);
}

void acv_ref_upsample_nearest_backward(float *d_in, const float *d_out, int N, int C, int H,
                                       int W, int OH, int OW)
{
    ACV_ASSERT(N > 0 && C > 0 && H > 0 && W > 0 && OH > 0 && OW > 0);
    if (!d_in) return;
    int *sh = alloc_ints(OH), *sw = alloc_ints(OW);
    for (int i = 0; i < OH; i++) sh[i] = nearest_src(i, H, OH);
    for (int j = 0; j < OW; j++) sw[j] = nearest_src(j, W, OW);
    const int64_t planes = (int64_t)N * C, hw = (int64_t)H * W, ohw = (int64_t)OH * OW;
#pragma omp parallel for schedule(static) if (planes * ohw >= RESIZE_PAR_MIN)
    for (int64_t pl = 0; pl < planes; pl++) {
        float *dx = d_in + pl * hw;
        const float *dy = d_out + pl * ohw;
        for (int i = 0; i < OH; i++) {
            float *row = dx + (int64_t)sh[i] * W;
            for (int j = 0; j < OW; j++) row[sw[j]] += dy[(int64_t)i * OW + j];
        }
    }
    free(sh);
    free(sw);
}

/* Source taps of one output coordinate: value = l0 * x[i0] + l1 * x[i1]. */
typedef struct lin_tap { int i0, i1; float l0, l1; } lin_tap;

/* PyTorch's compute_source_index_and_lambda for linear modes (float arithmetic). */
static lin_tap linear_tap(int dst, int in, int out, bool align_corners)
{
    lin_tap t;
    if (in == out) {
        t.i0 = t.i1 = dst;
        t.l0 = 1.0f;
        t.l1 = 0.0f;
        return t;
    }
    float scale, real;
    if (align_corners) {
        scale = out > 1 ? (float)(in - 1) / (float)(out - 1) : 0.0f;
        real = scale * (float)dst;
    } else {
        scale = (float)in / (float)out;
        real = scale * ((float)dst + 0.5f) - 0.5f;
        if (real < 0.0f) real = 0.0f;
    }
    int i0 = (int)floorf(real);
    if (i0 > in - 1) i0 = in - 1;
    float l1 = real - (float)i0;
    if (l1 < 0.0f) l1 = 0.0f;
    if (l1 > 1.0f) l1 = 1.0f;
    t.i0 = i0;
    t.i1 = i0 + (i0 < in - 1 ? 1 : 0);
    t.l1 = l1;
    t.l0 = 1.0f - l1;
    return t;
}

static lin_tap *make_taps(int in, int out, bool align_corners)
{
    lin_tap *t = malloc(sizeof(lin_tap) * (size_t)out);
    ACV_ASSERT(t != NULL);
    for (int i = 0; i < out; i++) t[i] = linear_tap(i, in, out, align_corners);
    return t;
}

void acv_ref_upsample_bilinear_forward(float *out, const float *in, int N, int C, int H, int W,
                                       int OH, int OW, bool align_corners)
{
    ACV_ASSERT(N > 0 && C > 0 && H > 0 && W > 0 && OH > 0 && OW > 0);
    lin_tap *th = make_taps(H, OH, align_corners), *tw = make_taps(W, OW, align_corners);
    const int64_t planes = (int64_t)N * C, hw = (int64_t)H * W, ohw = (int64_t)OH * OW;
#pragma omp parallel for schedule(static) if (planes * ohw >= RESIZE_PAR_MIN)
    for (int64_t pl = 0; pl < planes; pl++) {
        const float *x = in + pl * hw;
        float *y = out + pl * ohw;
        for (int i = 0; i < OH; i++) {
            const lin_tap a = th[i];
            const float *r0 = x + (int64_t)a.i0 * W, *r1 = x + (int64_t)a.i1 * W;
            for (int j = 0; j < OW; j++) {
                const lin_tap b = tw[j];
                y[(int64_t)i * OW + j] = a.l0 * (b.l0 * r0[b.i0] + b.l1 * r0[b.i1]) +
                                         a.l1 * (b.l0 * r1[b.i0] + b.l1 * r1[b.i1]);
            }
        }
    }
    free(th);
    free(tw);
}

void acv_ref_upsample_bilinear_backward(float *d_in, const float *d_out, int N, int C, int H,
                                        int W, int OH, int OW, bool align_corners)
{
    ACV_ASSERT(N > 0 && C > 0 && H > 0 && W > 0 && OH > 0 && OW > 0);
    if (!d_in) return;
    lin_tap *th = make_taps(H, OH, align_corners), *tw = make_taps(W, OW, align_corners);
    const int64_t planes = (int64_t)N * C, hw = (int64_t)H * W, ohw = (int64_t)OH * OW;
#pragma omp parallel for schedule(static) if (planes * ohw >= RESIZE_PAR_MIN)
    for (int64_t pl = 0; pl < planes; pl++) {
        float *dx = d_in + pl * hw;
        const float *dy = d_out + pl * ohw;
        for (int i = 0; i < OH; i++) {
            const lin_tap a = th[i];
            float *r0 = dx + (int64_t)a.i0 * W, *r1 = dx + (int64_t)a.i1 * W;
            for (int j = 0; j < OW; j++) {
                const lin_tap b = tw[j];
                const float g = dy[(int64_t)i * OW + j];
                r0[b.i0] += a.l0 * b.l0 * g;
                r0[b.i1] += a.l0 * b.l1 * g;
                r1[b.i0] += a.l1 * b.l0 * g;
                r1[b.i1] += a.l1 * b.l1 * g;
            }
        }
    }
    free(th);
    free(tw);
}
