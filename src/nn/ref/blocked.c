/* Kernels on the blocked activation layout NCHW{B}c used by inference on the CPU backend:
 * layout conversions and the pooling ops, so tensors can stay blocked from one
 * convolution to the next. Pad channels are kept zero. */
#include "nn/kernels.h"

#include <math.h>
#include <string.h>

int64_t acv_blk_numel(int N, int C, int64_t HW, int B)
{
    return (int64_t)N * ((C + B - 1) / B) * B * HW;
}

void acv_blk_from_plain(float *out, const float *in, int N, int C, int64_t HW, int B)
{
    const int CB = (C + B - 1) / B;
#pragma omp parallel for collapse(2) schedule(static) if ((int64_t)N * C * HW >= 32768)
    for (int n = 0; n < N; n++)
        for (int cb = 0; cb < CB; cb++) {
            float *o = out + ((int64_t)n * CB + cb) * HW * B;
            const int c0 = cb * B, cn = C - c0 < B ? C - c0 : B;
            if (cn < B) memset(o, 0, (size_t)(HW * B) * sizeof(float));
            for (int j = 0; j < cn; j++) {
                const float *src = in + ((int64_t)n * C + c0 + j) * HW;
                for (int64_t i = 0; i < HW; i++) o[i * B + j] = src[i];
            }
        }
}

void acv_blk_to_plain(float *out, const float *in, int N, int C, int64_t HW, int B)
{
    const int CB = (C + B - 1) / B;
#pragma omp parallel for collapse(2) schedule(static) if ((int64_t)N * C * HW >= 32768)
    for (int n = 0; n < N; n++)
        for (int cb = 0; cb < CB; cb++) {
            const float *s = in + ((int64_t)n * CB + cb) * HW * B;
            const int c0 = cb * B, cn = C - c0 < B ? C - c0 : B;
            for (int j = 0; j < cn; j++) {
                float *dst = out + ((int64_t)n * C + c0 + j) * HW;
                for (int64_t i = 0; i < HW; i++) dst[i] = s[i * B + j];
            }
        }
}

/* Window [h0, h1) x [w0, w1) of output (oh, ow) clipped to the input; for average pooling
 * also the divisor by PyTorch's rules (see acv_ref_avgpool_forward). */
static void window(const acv_pool_params *p, int oh, int ow, int *h0, int *h1, int *w0, int *w1, int *div)
{
    int hs = oh * p->stride_h - p->pad_t, ws = ow * p->stride_w - p->pad_l;
    int he = hs + (p->KH - 1) * p->dil_h + 1, we = ws + (p->KW - 1) * p->dil_w + 1;
    int hp = he < p->H + p->pad_b ? he : p->H + p->pad_b, wp = we < p->W + p->pad_r ? we : p->W + p->pad_r;
    int pool_size = (hp - hs) * (wp - ws);
    *h0 = hs < 0 ? 0 : hs;
    *w0 = ws < 0 ? 0 : ws;
    *h1 = he < p->H ? he : p->H;
    *w1 = we < p->W ? we : p->W;
    if (div) *div = p->count_include_pad ? pool_size : (*h1 - *h0) * (*w1 - *w0);
}

void acv_blk_maxpool_forward(float *out, const float *in, const acv_pool_params *p, int B)
{
    const int CB = (p->C + B - 1) / B;
    const int64_t ihw = (int64_t)p->H * p->W, ohw = (int64_t)p->OH * p->OW;
#pragma omp parallel for collapse(2) schedule(static)
    for (int n = 0; n < p->N; n++)
        for (int cb = 0; cb < CB; cb++) {
            const float *src = in + ((int64_t)n * CB + cb) * ihw * B;
            float *dst = out + ((int64_t)n * CB + cb) * ohw * B;
            for (int oh = 0; oh < p->OH; oh++)
                for (int ow = 0; ow < p->OW; ow++) {
                    float acc[64];
                    for (int j = 0; j < B; j++) acc[j] = -INFINITY;
                    int hs = oh * p->stride_h - p->pad_t, ws = ow * p->stride_w - p->pad_l;
                    for (int kh = 0; kh < p->KH; kh++) {
                        int h = hs + kh * p->dil_h;
                        if (h < 0 || h >= p->H) continue;
                        for (int kw = 0; kw < p->KW; kw++) {
                            int w = ws + kw * p->dil_w;
                            if (w < 0 || w >= p->W) continue;
                            const float *v = src + ((int64_t)h * p->W + w) * B;
                            for (int j = 0; j < B; j++) acc[j] = v[j] > acc[j] ? v[j] : acc[j];
                        }
                    }
                    float *o = dst + ((int64_t)oh * p->OW + ow) * B;
                    for (int j = 0; j < B; j++) o[j] = acc[j];
                }
        }
}

void acv_blk_avgpool_forward(float *out, const float *in, const acv_pool_params *p, int B)
{
    const int CB = (p->C + B - 1) / B;
    const int64_t ihw = (int64_t)p->H * p->W, ohw = (int64_t)p->OH * p->OW;
#pragma omp parallel for collapse(2) schedule(static)
    for (int n = 0; n < p->N; n++)
        for (int cb = 0; cb < CB; cb++) {
            const float *src = in + ((int64_t)n * CB + cb) * ihw * B;
            float *dst = out + ((int64_t)n * CB + cb) * ohw * B;
            for (int oh = 0; oh < p->OH; oh++)
                for (int ow = 0; ow < p->OW; ow++) {
                    int h0, h1, w0, w1, div;
                    window(p, oh, ow, &h0, &h1, &w0, &w1, &div);
                    float acc[64] = {0};
                    for (int h = h0; h < h1; h++)
                        for (int w = w0; w < w1; w++) {
                            const float *v = src + ((int64_t)h * p->W + w) * B;
                            for (int j = 0; j < B; j++) acc[j] += v[j];
                        }
                    float inv = div > 0 ? 1.0f / (float)div : 0.0f;
                    float *o = dst + ((int64_t)oh * p->OW + ow) * B;
                    for (int j = 0; j < B; j++) o[j] = acc[j] * inv;
                }
        }
}

void acv_blk_gap_forward(float *out, const float *in, int N, int C, int64_t HW, int B)
{
    const int CB = (C + B - 1) / B;
#pragma omp parallel for collapse(2) schedule(static) if ((int64_t)N * C * HW >= 32768)
    for (int n = 0; n < N; n++)
        for (int cb = 0; cb < CB; cb++) {
            const float *src = in + ((int64_t)n * CB + cb) * HW * B;
            double acc[64] = {0};
            for (int64_t i = 0; i < HW; i++)
                for (int j = 0; j < B; j++) acc[j] += src[i * B + j];
            const int c0 = cb * B, cn = C - c0 < B ? C - c0 : B;
            for (int j = 0; j < cn; j++) out[(int64_t)n * C + c0 + j] = (float)(acc[j] / (double)HW);
        }
}
