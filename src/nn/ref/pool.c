/* Reference pooling kernels: max pool (with dilation and saved argmax), average pool with
 * PyTorch's divisor rules, and global average pool; forward and backward.
 *
 * Every kernel works plane by plane (one (n, c) image at a time); planes are independent,
 * so the OpenMP loops over planes are race-free and the results do not depend on the
 * thread count. */
#include "nn/kernels.h"

#include <math.h>
#include <stdbool.h>

#include "autocv/error.h"

/* Parallelize over planes only when there is enough work to pay for the threads. */
#define POOL_PAR_MIN ((int64_t)1 << 15)
/* max pool windows selected side by side (a 512-bit vector of floats) */
#define MP_LANES 16

static void check_pool(const acv_pool_params *p)
{
    ACV_ASSERT(p->N > 0 && p->C > 0 && p->H > 0 && p->W > 0 && p->OH > 0 && p->OW > 0);
    ACV_ASSERT(p->KH > 0 && p->KW > 0 && p->stride_h > 0 && p->stride_w > 0);
    ACV_ASSERT(p->pad_t >= 0 && p->pad_l >= 0 && p->pad_b >= 0 && p->pad_r >= 0);
}

/* ---- max pool ------------------------------------------------------------------------ */

/* Window (oh, ow) covers rows oh*stride_h - pad_t + kh*dil_h for kh < KH (and likewise for
 * columns); padded positions never win. Ties keep the first maximum in row-major window
 * order and NaN propagates, as in PyTorch. A window without any input position (possible
 * only for inconsistent sizes) yields -inf with argmax -1. */
void acv_ref_maxpool_forward(float *out, int32_t *argmax, const float *in, const acv_pool_params *p)
{
    check_pool(p);
    const int H = p->H, W = p->W, OH = p->OH, OW = p->OW, KH = p->KH, KW = p->KW;
    const int sh = p->stride_h, sw = p->stride_w, pt = p->pad_t, pw = p->pad_l;
    const int dh = p->dil_h > 0 ? p->dil_h : 1, dw = p->dil_w > 0 ? p->dil_w : 1;
    const int64_t planes = (int64_t)p->N * p->C, hw = (int64_t)H * W;
    const int64_t ohw = (int64_t)OH * OW;
    /* the output columns [owa, owb) whose windows lie wholly inside the input's columns */
    int owa = 0;
    while (owa < OW && owa * sw - pw < 0) owa++;
    int owb = owa;
    while (owb < OW && owb * sw - pw + (KW - 1) * dw < W) owb++;
#pragma omp parallel for schedule(static) if (planes * ohw * KH * KW >= POOL_PAR_MIN)
    for (int64_t pl = 0; pl < planes; pl++) {
        const float *x = in + pl * hw;
        float *y = out + pl * ohw;
        int32_t *am = argmax + pl * ohw;
        for (int oh = 0; oh < OH; oh++) {
            const int h0 = oh * sh - pt;
            /* the kernel rows that land inside the input */
            const int kh0 = h0 < 0 ? (-h0 + dh - 1) / dh : 0;
            const int kh1 = h0 + (KH - 1) * dh < H ? KH : h0 >= H ? 0 : (H - 1 - h0) / dh + 1;
            for (int ow = 0; ow < OW;) {
                if (ow >= owa && ow < owb && kh1 > kh0) {
                    /* up to MP_LANES windows inside the row, side by side: the selections are
                     * independent, so they run as vectors (one window at a time is a chain of
                     * dependent compares, several times slower); lanes past n repeat column
                     * ow's taps and are not stored */
                    const int n = owb - ow < MP_LANES ? owb - ow : MP_LANES;
                    float b[MP_LANES];
                    int32_t ix[MP_LANES];
                    for (int j = 0; j < MP_LANES; j++) b[j] = -INFINITY, ix[j] = -1;
                    for (int kh = kh0; kh < kh1; kh++) {
                        const int ih = h0 + kh * dh;
                        const float *row = x + (int64_t)ih * W;
                        for (int kw = 0; kw < KW; kw++) {
                            const int base = ow * sw - pw + kw * dw;
                            for (int j = 0; j < MP_LANES; j++) {
                                const int iw = base + (j < n ? j : 0) * sw;
                                const float v = row[iw];
                                const bool take = (ix[j] < 0) | (v > b[j]) | (v != v);
                                b[j] = take ? v : b[j];
                                ix[j] = take ? ih * W + iw : ix[j];
                            }
                        }
                    }
                    for (int j = 0; j < n; j++) y[oh * OW + ow + j] = b[j], am[oh * OW + ow + j] = ix[j];
                    ow += n;
                    continue;
                }
                /* a window at the border: the taps that land inside the input */
                const int w0 = ow * sw - pw;
                int kw0 = 0, kw1 = KW;
                if (w0 < 0) kw0 = (-w0 + dw - 1) / dw;
                if (w0 + (KW - 1) * dw >= W) kw1 = w0 >= W ? 0 : (W - 1 - w0) / dw + 1;
                float best = -INFINITY;
                int32_t idx = -1;
                for (int kh = kh0; kh < kh1; kh++) {
                    const int ih = h0 + kh * dh;
                    const float *row = x + (int64_t)ih * W;
                    for (int kw = kw0; kw < kw1; kw++) {
                        const int iw = w0 + kw * dw;
                        const float v = row[iw];
                        if (idx < 0 || v > best || isnan(v)) {
                            best = v;
                            idx = ih * W + iw;
                        }
                    }
                }
                y[oh * OW + ow] = best;
                am[oh * OW + ow] = idx;
                ow++;
            }
        }
    }
}

/* d_in[argmax] += d_out per output; argmax < 0 (empty window) contributes nothing. */
void acv_ref_maxpool_backward(float *d_in, const float *d_out, const int32_t *argmax,
                              const acv_pool_params *p)
{
    check_pool(p);
    if (!d_in) return;
    const int64_t planes = (int64_t)p->N * p->C, hw = (int64_t)p->H * p->W;
    const int64_t ohw = (int64_t)p->OH * p->OW;
#pragma omp parallel for schedule(static) if (planes * ohw >= POOL_PAR_MIN)
    for (int64_t pl = 0; pl < planes; pl++) {
        float *dx = d_in + pl * hw;
        const float *dy = d_out + pl * ohw;
        const int32_t *am = argmax + pl * ohw;
        for (int64_t i = 0; i < ohw; i++)
            if (am[i] >= 0) dx[am[i]] += dy[i];
    }
}

/* ---- average pool ---------------------------------------------------------------------- */

/* The clipped window [*h0, *h1) x [*w0, *w1) of output (oh, ow) and its divisor, following
 * PyTorch's avg_pool2d: the window is first clipped to the padded input (this removes the
 * ceil-mode overhang), its size there is the count_include_pad divisor; then it is clipped
 * to the input, and that size is the divisor otherwise. Returns 0 for an empty window. */
static int avg_window(const acv_pool_params *p, int oh, int ow, int *h0, int *h1, int *w0,
                      int *w1)
{
    int hs = oh * p->stride_h - p->pad_t, ws = ow * p->stride_w - p->pad_l;
    int he = hs + p->KH, we = ws + p->KW;
    if (he > p->H + p->pad_b) he = p->H + p->pad_b;
    if (we > p->W + p->pad_r) we = p->W + p->pad_r;
    const int padded = (he - hs) * (we - ws);
    if (hs < 0) hs = 0;
    if (ws < 0) ws = 0;
    if (he > p->H) he = p->H;
    if (we > p->W) we = p->W;
    *h0 = hs;
    *h1 = he;
    *w0 = ws;
    *w1 = we;
    if (he <= hs || we <= ws) return 0;
    return p->count_include_pad ? padded : (he - hs) * (we - ws);
}

void acv_ref_avgpool_forward(float *out, const float *in, const acv_pool_params *p)
{
    check_pool(p);
    const int64_t planes = (int64_t)p->N * p->C, hw = (int64_t)p->H * p->W;
    const int64_t ohw = (int64_t)p->OH * p->OW;
#pragma omp parallel for schedule(static) if (planes * ohw * p->KH * p->KW >= POOL_PAR_MIN)
    for (int64_t pl = 0; pl < planes; pl++) {
        const float *x = in + pl * hw;
        float *y = out + pl * ohw;
        for (int oh = 0; oh < p->OH; oh++) {
            for (int ow = 0; ow < p->OW; ow++) {
                int h0, h1, w0, w1;
                const int div = avg_window(p, oh, ow, &h0, &h1, &w0, &w1);
                float s = 0.0f;
                for (int ih = h0; ih < h1; ih++)
                    for (int iw = w0; iw < w1; iw++) s += x[(int64_t)ih * p->W + iw];
                y[oh * p->OW + ow] = div > 0 ? s / (float)div : 0.0f;
            }
        }
    }
}

void acv_ref_avgpool_backward(float *d_in, const float *d_out, const acv_pool_params *p)
{
    check_pool(p);
    if (!d_in) return;
    const int64_t planes = (int64_t)p->N * p->C, hw = (int64_t)p->H * p->W;
    const int64_t ohw = (int64_t)p->OH * p->OW;
#pragma omp parallel for schedule(static) if (planes * ohw * p->KH * p->KW >= POOL_PAR_MIN)
    for (int64_t pl = 0; pl < planes; pl++) {
        float *dx = d_in + pl * hw;
        const float *dy = d_out + pl * ohw;
        for (int oh = 0; oh < p->OH; oh++) {
            for (int ow = 0; ow < p->OW; ow++) {
                int h0, h1, w0, w1;
                const int div = avg_window(p, oh, ow, &h0, &h1, &w0, &w1);
                if (div <= 0) continue;
                const float g = dy[oh * p->OW + ow] / (float)div;
                for (int ih = h0; ih < h1; ih++)
                    for (int iw = w0; iw < w1; iw++) dx[(int64_t)ih * p->W + iw] += g;
            }
        }
    }
}

/* ---- global average pool ----------------------------------------------------------------- */

void acv_ref_gap_forward(float *out, const float *in, int N, int C, int HW)
{
    ACV_ASSERT(N > 0 && C > 0 && HW > 0);
    const int64_t planes = (int64_t)N * C;
#pragma omp parallel for schedule(static) if (planes * HW >= POOL_PAR_MIN)
    for (int64_t pl = 0; pl < planes; pl++) {
        const float *x = in + pl * HW;
        double s = 0.0;
        for (int i = 0; i < HW; i++) s += x[i];
        out[pl] = (float)(s / HW);
    }
}

void acv_ref_gap_backward(float *d_in, const float *d_out, int N, int C, int HW)
{
    ACV_ASSERT(N > 0 && C > 0 && HW > 0);
    if (!d_in) return;
    const int64_t planes = (int64_t)N * C;
#pragma omp parallel for schedule(static) if (planes * HW >= POOL_PAR_MIN)
    for (int64_t pl = 0; pl < planes; pl++) {
        float *dx = d_in + pl * HW;
        const float g = d_out[pl] / (float)HW;
        for (int i = 0; i < HW; i++) dx[i] += g;
    }
}
