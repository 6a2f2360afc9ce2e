/* Reference convolution and transposed convolution (NCHW, groups, stride, dilation,
 * asymmetric padding, output padding), forward and backward.
 *
 * Both are lowered to im2col/col2im per (sample, group) plus one cblas_sgemm, so they also
 * serve as the CPU backend's fallback kernels. Transposed convolution is the data
 * gradient of a convolution that maps its output back to its input, so both share the same
 * im2col/col2im geometry with the roles of the two images swapped.
 *
 * Threading: large GEMMs run one after another and OpenBLAS threads inside each (im2col
 * stays serial there: alternating OpenMP regions with OpenBLAS's own threads makes the two
 * pools fight over the cores); small ones (grouped or tiny convolutions) run in an OpenMP
 * loop over (sample, group), one single-threaded GEMM each. Depthwise convolution (one
 * input channel per group) uses direct loops instead of GEMMs. Every output and gradient
 * element is accumulated in a fixed order that does not depend on our thread count, so
 * results are deterministic. */
#include "nn/kernels.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "autocv/error.h"

/* GEMMs with m*n*k at least this large are threaded by OpenBLAS itself (its own
 * single-thread cut-off is 4 * 65536); below it we parallelize over (sample, group). */
#define CONV_BIG_GEMM ((int64_t)1 << 18)

/* Geometry of one im2col: a source image (C, H, W) seen through a KH x KW window sliding
 * over a destination grid (OH, OW), as in a convolution from (H, W) to (OH, OW). */
typedef struct conv_geom {
    int C, H, W, OH, OW, KH, KW;
    int stride_h, stride_w, pad_t, pad_l, dil_h, dil_w;
} conv_geom;

/* First and one-past-last output coordinate o with 0 <= o*stride - pad + off < size. */
static void valid_range(int size, int out, int stride, int pad, int off, int *lo, int *hi)
{
    int base = pad - off; /* need o*stride >= base and o*stride < size + base */
    int a = base <= 0 ? 0 : (base + stride - 1) / stride;
    int b = size + base <= 0 ? 0 : (size + base + stride - 1) / stride;
    if (a > out) a = out;
    if (b > out) b = out;
    if (b < a) b = a;
    *lo = a;
    *hi = b;
}

/* col (C*KH*KW, OH*OW) = the windows of src (C, H, W); zero where the window hits padding. */
static void im2col(float *col, const float *src, const conv_geom *g)
{
    const int64_t ohw = (int64_t)g->OH * g->OW;
    for (int c = 0; c < g->C; c++) {
        const float *plane = src + (int64_t)c * g->H * g->W;
        for (int kh = 0; kh < g->KH; kh++) {
            int oh0, oh1;
            valid_range(g->H, g->OH, g->stride_h, g->pad_t, kh * g->dil_h, &oh0, &oh1);
            for (int kw = 0; kw < g->KW; kw++) {
                int ow0, ow1;
                valid_range(g->W, g->OW, g->stride_w, g->pad_l, kw * g->dil_w, &ow0, &ow1);
                float *row = col + ((int64_t)(c * g->KH + kh) * g->KW + kw) * ohw;
                if (oh0 > 0) memset(row, 0, sizeof(float) * (size_t)oh0 * g->OW);
                for (int oh = oh0; oh < oh1; oh++) {
                    float *dst = row + (int64_t)oh * g->OW;
                    const float *s = plane + (int64_t)(oh * g->stride_h - g->pad_t +
                                                       kh * g->dil_h) * g->W;
                    int off = kw * g->dil_w - g->pad_l;
                    for (int ow = 0; ow < ow0; ow++) dst[ow] = 0.0f;
                    if (g->stride_w == 1) {
                        if (ow1 > ow0)
                            memcpy(dst + ow0, s + ow0 + off, sizeof(float) * (size_t)(ow1 - ow0));
                    } else {
                        for (int ow = ow0; ow < ow1; ow++) dst[ow] = s[ow * g->stride_w + off];
                    }
                    for (int ow = ow1; ow < g->OW; ow++) dst[ow] = 0.0f;
                }
                if (oh1 < g->OH)
                    memset(row + (int64_t)oh1 * g->OW, 0,
                           sizeof(float) * (size_t)(g->OH - oh1) * g->OW);
            }
        }
    }
}

/* dst (C, H, W) += the windows in col (C*KH*KW, OH*OW) scattered back (adjoint of im2col),
 * in a fixed order per element. */
static void col2im(float *dst, const float *col, const conv_geom *g)
{
    const int64_t ohw = (int64_t)g->OH * g->OW;
    for (int c = 0; c < g->C; c++) {
        float *plane = dst + (int64_t)c * g->H * g->W;
        for (int kh = 0; kh < g->KH; kh++) {
            int oh0, oh1;
            valid_range(g->H, g->OH, g->stride_h, g->pad_t, kh * g->dil_h, &oh0, &oh1);
            for (int kw = 0; kw < g->KW; kw++) {
                int ow0, ow1;
                valid_range(g->W, g->OW, g->stride_w, g->pad_l, kw * g->dil_w, &ow0, &ow1);
                const float *row = col + ((int64_t)(c * g->KH + kh) * g->KW + kw) * ohw;
                int off = kw * g->dil_w - g->pad_l;
                for (int oh = oh0; oh < oh1; oh++) {
                    const float *s = row + (int64_t)oh * g->OW;
                    float *d = plane + (int64_t)(oh * g->stride_h - g->pad_t + kh * g->dil_h) *
                                           g->W;
                    if (g->stride_w == 1) {
                        for (int ow = ow0; ow < ow1; ow++) d[ow + off] += s[ow];
                    } else {
                        for (int ow = ow0; ow < ow1; ow++) d[ow * g->stride_w + off] += s[ow];
                    }
                }
            }
        }
    }
}

/* True when im2col is the identity (1x1 kernel, stride 1, no padding). */
static bool geom_is_identity(const conv_geom *g)
{
    return g->KH == 1 && g->KW == 1 && g->stride_h == 1 && g->stride_w == 1 &&
           g->pad_t == 0 && g->pad_l == 0 && g->OH == g->H && g->OW == g->W;
}

/* Geometry of the convolution in p from its input (C/groups channels of H x W) to its
 * output grid. For a transposed convolution pass the output as the "source": swapped. */
static conv_geom make_geom(const acv_conv_params *p, bool transposed)
{
    conv_geom g = {
        .C = transposed ? p->K / p->groups : p->C / p->groups,
        .H = transposed ? p->OH : p->H, .W = transposed ? p->OW : p->W,
        .OH = transposed ? p->H : p->OH, .OW = transposed ? p->W : p->OW,
        .KH = p->KH, .KW = p->KW, .stride_h = p->stride_h, .stride_w = p->stride_w,
        .pad_t = p->pad_t, .pad_l = p->pad_l, .dil_h = p->dil_h, .dil_w = p->dil_w,
    };
    return g;
}

static void check_params(const acv_conv_params *p, bool transposed)
{
    ACV_ASSERT(p->N > 0 && p->C > 0 && p->K > 0 && p->groups > 0);
    ACV_ASSERT(p->C % p->groups == 0 && p->K % p->groups == 0);
    ACV_ASSERT(p->KH > 0 && p->KW > 0 && p->stride_h > 0 && p->stride_w > 0);
    ACV_ASSERT(p->dil_h > 0 && p->dil_w > 0);
    ACV_ASSERT(p->pad_t >= 0 && p->pad_l >= 0 && p->pad_b >= 0 && p->pad_r >= 0);
    if (!transposed) {
        ACV_ASSERT(p->OH == (p->H + p->pad_t + p->pad_b - p->dil_h * (p->KH - 1) - 1) /
                                    p->stride_h + 1);
        ACV_ASSERT(p->OW == (p->W + p->pad_l + p->pad_r - p->dil_w * (p->KW - 1) - 1) /
                                    p->stride_w + 1);
    } else {
        ACV_ASSERT(p->OH == (p->H - 1) * p->stride_h - p->pad_t - p->pad_b +
                                p->dil_h * (p->KH - 1) + p->out_pad_h + 1);
        ACV_ASSERT(p->OW == (p->W - 1) * p->stride_w - p->pad_l - p->pad_r +
                                p->dil_w * (p->KW - 1) + p->out_pad_w + 1);
    }
    ACV_ASSERT(p->OH > 0 && p->OW > 0);
}

static float *alloc_floats(int64_t n)
{
    float *x = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    ACV_ASSERT(x != NULL);
    return x;
}

/* d_b[k] += sum over (n, hw) of d_out[n, k, hw], summed in a fixed order. */
static void bias_backward(float *d_b, const float *d_out, int N, int K, int64_t hw)
{
#pragma omp parallel for schedule(static) if ((int64_t)N * K * hw >= (1 << 16))
    for (int k = 0; k < K; k++) {
        double s = 0.0;
        for (int n = 0; n < N; n++) {
            const float *x = d_out + ((int64_t)n * K + k) * hw;
            float part = 0.0f;
            for (int64_t i = 0; i < hw; i++) part += x[i];
            s += part;
        }
        d_b[k] += (float)s;
    }
}

static void add_bias(float *out, const float *b, int K, int64_t hw)
{
    if (!b) return;
    for (int k = 0; k < K; k++)
        for (int64_t i = 0; i < hw; i++) out[(int64_t)k * hw + i] += b[k];
}

/* ---- depthwise convolution (one input channel per group) ------------------------------ */
/* With C/groups == 1 every output channel k reads the single input channel k / (K/groups);
 * a GEMM of one row per group wastes most of its time, so these run as direct loops over
 * (sample, channel) planes. Work is split by output (forward, d_w) or by input plane (d_in),
 * so no two threads write the same element and the per-element order is fixed. */

static void dw_forward(float *out, const float *in, const float *w, const float *b,
                       const acv_conv_params *p, const conv_geom *g)
{
    const int Kg = p->K / p->groups, kk = p->KH * p->KW;
    const int64_t hw = (int64_t)p->H * p->W, ohw = (int64_t)p->OH * p->OW;
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < (int64_t)p->N * p->K; t++) {
        const int n = (int)(t / p->K), k = (int)(t % p->K);
        const float *x = in + ((int64_t)n * p->C + k / Kg) * hw, *wk = w + (int64_t)k * kk;
        float *y = out + t * ohw;
        const float bv = b ? b[k] : 0.0f;
        for (int64_t i = 0; i < ohw; i++) y[i] = bv;
        for (int kh = 0; kh < p->KH; kh++) {
            int oh0, oh1;
            valid_range(g->H, g->OH, g->stride_h, g->pad_t, kh * g->dil_h, &oh0, &oh1);
            for (int kw = 0; kw < p->KW; kw++) {
                int ow0, ow1;
                valid_range(g->W, g->OW, g->stride_w, g->pad_l, kw * g->dil_w, &ow0, &ow1);
                const float wv = wk[kh * p->KW + kw];
                const int off = kw * g->dil_w - g->pad_l;
                for (int oh = oh0; oh < oh1; oh++) {
                    const float *xr = x + (int64_t)(oh * g->stride_h - g->pad_t + kh * g->dil_h) *
                                              p->W + off;
                    float *yr = y + (int64_t)oh * p->OW;
                    if (g->stride_w == 1)
                        for (int ow = ow0; ow < ow1; ow++) yr[ow] += wv * xr[ow];
                    else
                        for (int ow = ow0; ow < ow1; ow++) yr[ow] += wv * xr[ow * g->stride_w];
                }
            }
        }
    }
}

static void dw_backward(float *d_in, float *d_w, const float *d_out, const float *in,
                        const float *w, const acv_conv_params *p, const conv_geom *g)
{
    const int Kg = p->K / p->groups, kk = p->KH * p->KW;
    const int64_t hw = (int64_t)p->H * p->W, ohw = (int64_t)p->OH * p->OW;
    if (d_w) {
        /* d_w[k, kh, kw] += sum over n, oh, ow of d_out[n, k, oh, ow] * in[n, c, ih, iw] */
#pragma omp parallel for schedule(static)
        for (int k = 0; k < p->K; k++) {
            for (int kh = 0; kh < p->KH; kh++) {
                int oh0, oh1;
                valid_range(g->H, g->OH, g->stride_h, g->pad_t, kh * g->dil_h, &oh0, &oh1);
                for (int kw = 0; kw < p->KW; kw++) {
                    int ow0, ow1;
                    valid_range(g->W, g->OW, g->stride_w, g->pad_l, kw * g->dil_w, &ow0, &ow1);
                    const int off = kw * g->dil_w - g->pad_l;
                    double acc = 0.0;
                    for (int n = 0; n < p->N; n++) {
                        const float *x = in + ((int64_t)n * p->C + k / Kg) * hw;
                        const float *dy = d_out + ((int64_t)n * p->K + k) * ohw;
                        float part = 0.0f;
                        for (int oh = oh0; oh < oh1; oh++) {
                            const float *xr = x + (int64_t)(oh * g->stride_h - g->pad_t +
                                                            kh * g->dil_h) * p->W + off;
                            const float *dr = dy + (int64_t)oh * p->OW;
                            for (int ow = ow0; ow < ow1; ow++) part += dr[ow] * xr[ow * g->stride_w];
                        }
                        acc += part;
                    }
                    d_w[(int64_t)k * kk + kh * p->KW + kw] += (float)acc;
                }
            }
        }
    }
    if (d_in) {
        /* plane (n, c) receives from its Kg output channels */
#pragma omp parallel for schedule(static)
        for (int64_t t = 0; t < (int64_t)p->N * p->C; t++) {
            const int n = (int)(t / p->C), c = (int)(t % p->C);
            float *dx = d_in + t * hw;
            for (int k = c * Kg; k < (c + 1) * Kg; k++) {
                const float *dy = d_out + ((int64_t)n * p->K + k) * ohw, *wk = w + (int64_t)k * kk;
                for (int kh = 0; kh < p->KH; kh++) {
                    int oh0, oh1;
                    valid_range(g->H, g->OH, g->stride_h, g->pad_t, kh * g->dil_h, &oh0, &oh1);
                    for (int kw = 0; kw < p->KW; kw++) {
                        int ow0, ow1;
                        valid_range(g->W, g->OW, g->stride_w, g->pad_l, kw * g->dil_w, &ow0, &ow1);
                        const float wv = wk[kh * p->KW + kw];
                        const int off = kw * g->dil_w - g->pad_l;
                        for (int oh = oh0; oh < oh1; oh++) {
                            float *xr = dx + (int64_t)(oh * g->stride_h - g->pad_t +
                                                       kh * g->dil_h) * p->W + off;
                            const float *dr = dy + (int64_t)oh * p->OW;
                            if (g->stride_w == 1)
                                for (int ow = ow0; ow < ow1; ow++) xr[ow] += wv * dr[ow];
                            else
                                for (int ow = ow0; ow < ow1; ow++) xr[ow * g->stride_w] += wv * dr[ow];
                        }
                    }
                }
            }
        }
    }
}

/* ---- convolution ------------------------------------------------------------------- */

/* out (Kg, OHW) of one (sample, group) = W_g (Kg, CKK) @ im2col(in (Cg, H, W)) + b. */
static void conv_fwd_one(float *out, const float *in, const float *w, const float *b,
                         const conv_geom *g, int Kg, float *col)
{
    const int ckk = g->C * g->KH * g->KW, ohw = g->OH * g->OW;
    const float *x = in;
    if (!geom_is_identity(g)) {
        im2col(col, in, g);
        x = col;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Kg, ohw, ckk, 1.0f, w, ckk, x, ohw,
                0.0f, out, ohw);
    add_bias(out, b, Kg, ohw);
}

/* Contract in nn/kernels.h. Depthwise -> direct loops; else per (sample, group)
 * im2col + GEMM, serial with threaded GEMMs when large, OpenMP over (n, g) when small. */
static void conv2d_forward_plain(float *out, const float *in, const float *w, const float *b,
                                 const acv_conv_params *p)
{
    check_params(p, false);
    const conv_geom g = make_geom(p, false);
    const int G = p->groups, Cg = p->C / G, Kg = p->K / G;
    const int64_t ckk = (int64_t)Cg * p->KH * p->KW, ohw = (int64_t)p->OH * p->OW;
    const int64_t hw = (int64_t)p->H * p->W, colsz = ckk * ohw;
    const bool big = (int64_t)Kg * ckk * ohw >= CONV_BIG_GEMM;

    if (Cg == 1 && G > 1) {
        dw_forward(out, in, w, b, p, &g);
        return;
    }
    if (big) {
        float *col = alloc_floats(colsz);
        for (int n = 0; n < p->N; n++)
            for (int gi = 0; gi < G; gi++)
                conv_fwd_one(out + ((int64_t)n * p->K + (int64_t)gi * Kg) * ohw,
                             in + ((int64_t)n * p->C + (int64_t)gi * Cg) * hw,
                             w + (int64_t)gi * Kg * ckk, b ? b + (int64_t)gi * Kg : NULL, &g, Kg,
                             col);
        free(col);
        return;
    }
#pragma omp parallel
    {
        float *col = alloc_floats(colsz);
#pragma omp for schedule(static)
        for (int64_t t = 0; t < (int64_t)p->N * G; t++) {
            int n = (int)(t / G), gi = (int)(t % G);
            conv_fwd_one(out + ((int64_t)n * p->K + (int64_t)gi * Kg) * ohw,
                         in + ((int64_t)n * p->C + (int64_t)gi * Cg) * hw,
                         w + (int64_t)gi * Kg * ckk, b ? b + (int64_t)gi * Kg : NULL, &g, Kg, col);
        }
        free(col);
    }
}

/* d_w_g (Kg, CKK) += d_out_g (Kg, OHW) @ im2col(in_g)^T over all samples, in sample order. */
static void conv_bwd_weight_group(float *d_w, const float *d_out, const float *in,
                                  const acv_conv_params *p, const conv_geom *g, int gi,
                                  float *col)
{
    const int G = p->groups, Cg = p->C / G, Kg = p->K / G;
    const int ckk = Cg * p->KH * p->KW, ohw = p->OH * p->OW;
    const int64_t hw = (int64_t)p->H * p->W;
    for (int n = 0; n < p->N; n++) {
        const float *x = in + ((int64_t)n * p->C + (int64_t)gi * Cg) * hw;
        if (!geom_is_identity(g)) {
            im2col(col, x, g);
            x = col;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Kg, ckk, ohw, 1.0f,
                    d_out + ((int64_t)n * p->K + (int64_t)gi * Kg) * ohw, ohw, x, ohw, 1.0f,
                    d_w + (int64_t)gi * Kg * ckk, ckk);
    }
}

/* d_in_g (Cg, H, W) += col2im(W_g^T (CKK, Kg) @ d_out_g (Kg, OHW)) for one (sample, group). */
static void conv_bwd_data_one(float *d_in, const float *d_out, const float *w,
                              const conv_geom *g, int Kg, float *dcol)
{
    const int ckk = g->C * g->KH * g->KW, ohw = g->OH * g->OW;
    if (geom_is_identity(g)) {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ckk, ohw, Kg, 1.0f, w, ckk, d_out,
                    ohw, 1.0f, d_in, ohw);
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ckk, ohw, Kg, 1.0f, w, ckk, d_out, ohw,
                0.0f, dcol, ohw);
    col2im(d_in, dcol, g);
}

/* Adds into d_in, d_w, d_b (each may be NULL). d_w accumulates samples in order per group;
 * d_in is col2im(W^T d_out) per (sample, group). */
void acv_ref_conv2d_backward(float *d_in, float *d_w, float *d_b, const float *d_out,
                             const float *in, const float *w, const acv_conv_params *p)
{
    check_params(p, false);
    const conv_geom g = make_geom(p, false);
    const int G = p->groups, Cg = p->C / G, Kg = p->K / G;
    const int64_t ckk = (int64_t)Cg * p->KH * p->KW, ohw = (int64_t)p->OH * p->OW;
    const int64_t hw = (int64_t)p->H * p->W, colsz = ckk * ohw;
    const bool big = (int64_t)Kg * ckk * ohw >= CONV_BIG_GEMM;

    if (d_b) bias_backward(d_b, d_out, p->N, p->K, ohw);
    if (!d_w && !d_in) return;

    if (Cg == 1 && G > 1) {
        dw_backward(d_in, d_w, d_out, in, w, p, &g);
        return;
    }
    if (big) {
        float *col = alloc_floats(colsz);
        if (d_w)
            for (int gi = 0; gi < G; gi++) conv_bwd_weight_group(d_w, d_out, in, p, &g, gi, col);
        if (d_in)
            for (int n = 0; n < p->N; n++)
                for (int gi = 0; gi < G; gi++)
                    conv_bwd_data_one(d_in + ((int64_t)n * p->C + (int64_t)gi * Cg) * hw,
                                      d_out + ((int64_t)n * p->K + (int64_t)gi * Kg) * ohw,
                                      w + (int64_t)gi * Kg * ckk, &g, Kg, col);
        free(col);
        return;
    }
#pragma omp parallel
    {
        float *col = alloc_floats(colsz);
        if (d_w) {
#pragma omp for schedule(static)
            for (int gi = 0; gi < G; gi++) conv_bwd_weight_group(d_w, d_out, in, p, &g, gi, col);
        }
        if (d_in) {
#pragma omp for schedule(static)
            for (int64_t t = 0; t < (int64_t)p->N * G; t++) {
                int n = (int)(t / G), gi = (int)(t % G);
                conv_bwd_data_one(d_in + ((int64_t)n * p->C + (int64_t)gi * Cg) * hw,
                                  d_out + ((int64_t)n * p->K + (int64_t)gi * Kg) * ohw,
                                  w + (int64_t)gi * Kg * ckk, &g, Kg, col);
            }
        }
        free(col);
    }
}

/* ---- transposed convolution ---------------------------------------------------------- */
/* Geometry (swapped): the "source" image is the output (Kg, OH, OW) and the window grid is
 * the input (H, W). Weight (C, Kg, KH, KW) holds, per group, a (Cg, Kg*KH*KW) matrix. */

/* out_g (Kg, OH, OW) = col2im(W_g^T (KgKK, Cg) @ in_g (Cg, HW)) + b for one (sample, group). */
static void convt_fwd_one(float *out, const float *in, const float *w, const float *b,
                          const conv_geom *g, int Cg, float *col)
{
    const int kkk = g->C * g->KH * g->KW, hw = g->OH * g->OW;
    const int64_t ohw = (int64_t)g->H * g->W;
    if (geom_is_identity(g)) {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, kkk, hw, Cg, 1.0f, w, kkk, in, hw,
                    0.0f, out, hw);
    } else {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, kkk, hw, Cg, 1.0f, w, kkk, in, hw,
                    0.0f, col, hw);
        memset(out, 0, sizeof(float) * (size_t)(g->C * ohw));
        col2im(out, col, g);
    }
    add_bias(out, b, g->C, ohw);
}

/* Contract in nn/kernels.h: out = col2im(W^T in) + b per (sample, group). */
static void convt2d_forward_plain(float *out, const float *in, const float *w, const float *b,
                                  const acv_conv_params *p)
{
    check_params(p, true);
    const conv_geom g = make_geom(p, true);
    const int G = p->groups, Cg = p->C / G, Kg = p->K / G;
    const int64_t kkk = (int64_t)Kg * p->KH * p->KW, hw = (int64_t)p->H * p->W;
    const int64_t ohw = (int64_t)p->OH * p->OW, colsz = kkk * hw;
    const bool big = (int64_t)Cg * kkk * hw >= CONV_BIG_GEMM;

    if (big) {
        float *col = alloc_floats(colsz);
        for (int n = 0; n < p->N; n++)
            for (int gi = 0; gi < G; gi++)
                convt_fwd_one(out + ((int64_t)n * p->K + (int64_t)gi * Kg) * ohw,
                              in + ((int64_t)n * p->C + (int64_t)gi * Cg) * hw,
                              w + (int64_t)gi * Cg * kkk, b ? b + (int64_t)gi * Kg : NULL, &g, Cg,
                              col);
        free(col);
        return;
    }
#pragma omp parallel
    {
        float *col = alloc_floats(colsz);
#pragma omp for schedule(static)
        for (int64_t t = 0; t < (int64_t)p->N * G; t++) {
            int n = (int)(t / G), gi = (int)(t % G);
            convt_fwd_one(out + ((int64_t)n * p->K + (int64_t)gi * Kg) * ohw,
                          in + ((int64_t)n * p->C + (int64_t)gi * Cg) * hw,
                          w + (int64_t)gi * Cg * kkk, b ? b + (int64_t)gi * Kg : NULL, &g, Cg, col);
        }
        free(col);
    }
}

/* d_w_g (Cg, KgKK) += in_g (Cg, HW) @ im2col(d_out_g)^T (HW, KgKK), in sample order. */
static void convt_bwd_weight_group(float *d_w, const float *d_out, const float *in,
                                   const acv_conv_params *p, const conv_geom *g, int gi,
                                   float *col)
{
    const int G = p->groups, Cg = p->C / G, Kg = p->K / G;
    const int kkk = Kg * p->KH * p->KW, hw = p->H * p->W;
    const int64_t ohw = (int64_t)p->OH * p->OW;
    for (int n = 0; n < p->N; n++) {
        const float *x = d_out + ((int64_t)n * p->K + (int64_t)gi * Kg) * ohw;
        if (!geom_is_identity(g)) {
            im2col(col, x, g);
            x = col;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Cg, kkk, hw, 1.0f,
                    in + ((int64_t)n * p->C + (int64_t)gi * Cg) * hw, hw, x, hw, 1.0f,
                    d_w + (int64_t)gi * Cg * kkk, kkk);
    }
}

/* d_in_g (Cg, HW) += W_g (Cg, KgKK) @ im2col(d_out_g) for one (sample, group). */
static void convt_bwd_data_one(float *d_in, const float *d_out, const float *w,
                               const conv_geom *g, int Cg, float *col)
{
    const int kkk = g->C * g->KH * g->KW, hw = g->OH * g->OW;
    const float *x = d_out;
    if (!geom_is_identity(g)) {
        im2col(col, d_out, g);
        x = col;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Cg, hw, kkk, 1.0f, w, kkk, x, hw, 1.0f,
                d_in, hw);
}

/* Adds into d_in (= W im2col(d_out)), d_w (= in im2col(d_out)^T) and d_b; NULL skipped. */
void acv_ref_convt2d_backward(float *d_in, float *d_w, float *d_b, const float *d_out,
                              const float *in, const float *w, const acv_conv_params *p)
{
    check_params(p, true);
    const conv_geom g = make_geom(p, true);
    const int G = p->groups, Cg = p->C / G, Kg = p->K / G;
    const int64_t kkk = (int64_t)Kg * p->KH * p->KW, hw = (int64_t)p->H * p->W;
    const int64_t ohw = (int64_t)p->OH * p->OW, colsz = kkk * hw;
    const bool big = (int64_t)Cg * kkk * hw >= CONV_BIG_GEMM;

    if (d_b) bias_backward(d_b, d_out, p->N, p->K, ohw);
    if (!d_w && !d_in) return;

    if (big) {
        float *col = alloc_floats(colsz);
        if (d_w)
            for (int gi = 0; gi < G; gi++)
                convt_bwd_weight_group(d_w, d_out, in, p, &g, gi, col);
        if (d_in)
            for (int n = 0; n < p->N; n++)
                for (int gi = 0; gi < G; gi++)
                    convt_bwd_data_one(d_in + ((int64_t)n * p->C + (int64_t)gi * Cg) * hw,
                                       d_out + ((int64_t)n * p->K + (int64_t)gi * Kg) * ohw,
                                       w + (int64_t)gi * Cg * kkk, &g, Cg, col);
        free(col);
        return;
    }
#pragma omp parallel
    {
        float *col = alloc_floats(colsz);
        if (d_w) {
#pragma omp for schedule(static)
            for (int gi = 0; gi < G; gi++)
                convt_bwd_weight_group(d_w, d_out, in, p, &g, gi, col);
        }
        if (d_in) {
#pragma omp for schedule(static)
            for (int64_t t = 0; t < (int64_t)p->N * G; t++) {
                int n = (int)(t / G), gi = (int)(t % G);
                convt_bwd_data_one(d_in + ((int64_t)n * p->C + (int64_t)gi * Cg) * hw,
                                   d_out + ((int64_t)n * p->K + (int64_t)gi * Kg) * ohw,
                                   w + (int64_t)gi * Cg * kkk, &g, Cg, col);
            }
        }
        free(col);
    }
}

/* The forward entry points: the convolution, then the fused activation when p->post_act. */
void acv_ref_conv2d_forward(float *out, const float *in, const float *w, const float *b,
                            const acv_conv_params *p)
{
    conv2d_forward_plain(out, in, w, b, p);
    if (p->post_act)
        acv_ref_act_forward(out, out, (int64_t)p->N * p->K * p->OH * p->OW, (acv_act)(p->post_act - 1), p->post_alpha);
}

void acv_ref_convt2d_forward(float *out, const float *in, const float *w, const float *b,
                             const acv_conv_params *p)
{
    convt2d_forward_plain(out, in, w, b, p);
    if (p->post_act)
        acv_ref_act_forward(out, out, (int64_t)p->N * p->K * p->OH * p->OW, (acv_act)(p->post_act - 1), p->post_alpha);
}
