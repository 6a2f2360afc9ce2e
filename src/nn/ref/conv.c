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

/* ---- lowering to (sample, group) GEMMs ------------------------------------------------- */
/* Per group, a convolution relates an "image" (g.C channels of H x W: what im2col reads and
 * col2im writes) to a "grid" (M channels on the OH x OW window positions of g) through the
 * weight matrix W_g (M, C*KH*KW). Convolution: image = input, grid = output, M = K/groups,
 * weight (K, Cg, KH, KW). Transposed (geometry swapped): image = output, grid = input,
 * M = C/groups, weight (C, Kg, KH, KW). Forward and data gradient of the two are then the
 * same two products with the roles exchanged, and so are their weight gradients. */
typedef struct lowered {
    conv_geom g;
    int N, G, M;
    int64_t ckk, img_sz, grid_hw; /* C*KH*KW; one unit's image size; OH*OW of g */
    const float *w;               /* (G, M, ckk) */
    /* Operands, each used only by the steps that name it: */
    const float *img, *grid; /* whole tensors, unit (n, gi) at offset n*G + gi */
    float *dst;              /* the unit step's destination (an image or a grid) */
    const float *b;          /* NULL, or the bias added to dst's channels */
    bool acc;                /* dst += result (else dst = result) */
    float *d_w;              /* NULL, or the weight gradient to add into */
} lowered;

/* Checks p and describes it lowered; operands are left empty for the caller to set. */
static lowered lower(const acv_conv_params *p, bool transposed, const float *w)
{
    check_params(p, transposed);
    lowered L = {.g = make_geom(p, transposed), .N = p->N, .G = p->groups, .w = w};
    L.M = (transposed ? p->C : p->K) / p->groups;
    L.ckk = (int64_t)L.g.C * L.g.KH * L.g.KW;
    L.img_sz = (int64_t)L.g.C * L.g.H * L.g.W;
    L.grid_hw = (int64_t)L.g.OH * L.g.OW;
    return L;
}

/* grid dst (M, OHW) of unit (n, gi) (+)= W_g (M, CKK) @ im2col(img) (+ b). Convolution
 * forward; transposed convolution's d_in. */
static void unit_im2col_gemm(const lowered *L, int n, int gi, float *col)
{
    const conv_geom *g = &L->g;
    const int ckk = (int)L->ckk, ohw = (int)L->grid_hw;
    const int64_t u = (int64_t)n * L->G + gi;
    float *out = L->dst + u * L->M * ohw;
    const float *x = L->img + u * L->img_sz;
    if (!geom_is_identity(g)) {
        im2col(col, x, g);
        x = col;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, L->M, ohw, ckk, 1.0f,
                L->w + (int64_t)gi * L->M * ckk, ckk, x, ohw, L->acc ? 1.0f : 0.0f, out, ohw);
    if (L->b) add_bias(out, L->b + (int64_t)gi * L->M, L->M, ohw);
}

/* image dst (C, H, W) of unit (n, gi) (+)= col2im(W_g^T (CKK, M) @ grid (M, OHW)) (+ b).
 * Convolution's d_in; transposed convolution forward. */
static void unit_col2im_gemm(const lowered *L, int n, int gi, float *col)
{
    const conv_geom *g = &L->g;
    const int ckk = (int)L->ckk, ohw = (int)L->grid_hw;
    const int64_t u = (int64_t)n * L->G + gi;
    float *out = L->dst + u * L->img_sz;
    const float *y = L->grid + u * L->M * ohw, *wg = L->w + (int64_t)gi * L->M * ckk;
    if (geom_is_identity(g)) {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ckk, ohw, L->M, 1.0f, wg, ckk, y,
                    ohw, L->acc ? 1.0f : 0.0f, out, ohw);
    } else {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ckk, ohw, L->M, 1.0f, wg, ckk, y,
                    ohw, 0.0f, col, ohw);
        if (!L->acc) memset(out, 0, sizeof(float) * (size_t)L->img_sz);
        col2im(out, col, g);
    }
    if (L->b) add_bias(out, L->b + (int64_t)gi * g->C, g->C, (int64_t)g->H * g->W);
}

/* d_w_g (M, CKK) += grid_g (M, OHW) @ im2col(img_g)^T over all samples, in sample order. */
static void weight_grad_group(const lowered *L, int gi, float *col)
{
    const int ckk = (int)L->ckk, ohw = (int)L->grid_hw;
    for (int n = 0; n < L->N; n++) {
        const int64_t u = (int64_t)n * L->G + gi;
        const float *x = L->img + u * L->img_sz;
        if (!geom_is_identity(&L->g)) {
            im2col(col, x, &L->g);
            x = col;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, L->M, ckk, ohw, 1.0f,
                    L->grid + u * L->M * ohw, ohw, x, ohw, 1.0f,
                    L->d_w + (int64_t)gi * L->M * ckk, ckk);
    }
}

typedef void (*unit_fn)(const lowered *L, int n, int gi, float *col);

/* Runs the weight gradient of every group when L->d_w, then unit (if not NULL) for every
 * (sample, group); each call gets a scratch `col` of CKK*OHW floats that no other thread
 * uses at the same time. Large GEMMs (M*CKK*OHW >= CONV_BIG_GEMM) run serially in (n, gi)
 * order with one scratch and threaded GEMMs; small ones in OpenMP loops over groups and
 * (n, gi), one scratch per thread. Each unit and group writes its own slice, so results do
 * not depend on the schedule. */
static void run_units(const lowered *L, unit_fn unit)
{
    const int G = L->G;
    const int64_t colsz = L->ckk * L->grid_hw, units = (int64_t)L->N * G;
    if ((int64_t)L->M * colsz >= CONV_BIG_GEMM) {
        float *col = alloc_floats(colsz);
        if (L->d_w)
            for (int gi = 0; gi < G; gi++) weight_grad_group(L, gi, col);
        if (unit)
            for (int64_t t = 0; t < units; t++) unit(L, (int)(t / G), (int)(t % G), col);
        free(col);
        return;
    }
#pragma omp parallel
    {
        float *col = alloc_floats(colsz);
        if (L->d_w) {
#pragma omp for schedule(static)
            for (int gi = 0; gi < G; gi++) weight_grad_group(L, gi, col);
        }
        if (unit) {
#pragma omp for schedule(static)
            for (int64_t t = 0; t < units; t++) unit(L, (int)(t / G), (int)(t % G), col);
        }
        free(col);
    }
}

/* ---- entry points (contracts in nn/kernels.h) ------------------------------------------ */

/* out = conv(in) + b (convolution: depthwise -> direct loops, else im2col + GEMM per
 * (sample, group)) or col2im(W^T in) + b (transposed), then the fused activation when
 * p->post_act. */
static void forward(float *out, const float *in, const float *w, const float *b,
                    const acv_conv_params *p, bool transposed)
{
    lowered L = lower(p, transposed, w);
    L.dst = out;
    L.b = b;
    if (transposed) {
        L.grid = in;
        run_units(&L, unit_col2im_gemm);
    } else if (L.g.C == 1 && L.G > 1) {
        dw_forward(out, in, w, b, p, &L.g);
    } else {
        L.img = in;
        run_units(&L, unit_im2col_gemm);
    }
    if (p->post_act)
        acv_ref_act_forward(out, out, (int64_t)p->N * p->K * p->OH * p->OW,
                            (acv_act)(p->post_act - 1), p->post_alpha);
}

/* Adds into d_in, d_w, d_b (each may be NULL). d_w accumulates samples in order per group;
 * d_in is col2im(W^T d_out) per (sample, group) for a convolution, W im2col(d_out) for a
 * transposed one. */
static void backward(float *d_in, float *d_w, float *d_b, const float *d_out, const float *in,
                     const float *w, const acv_conv_params *p, bool transposed)
{
    lowered L = lower(p, transposed, w);
    if (d_b) bias_backward(d_b, d_out, p->N, p->K, (int64_t)p->OH * p->OW);
    if (!d_w && !d_in) return;
    if (!transposed && L.g.C == 1 && L.G > 1) {
        dw_backward(d_in, d_w, d_out, in, w, p, &L.g);
        return;
    }
    L.img = transposed ? d_out : in;
    L.grid = transposed ? in : d_out;
    L.dst = d_in;
    L.acc = true;
    L.d_w = d_w;
    run_units(&L, !d_in ? NULL : transposed ? unit_im2col_gemm : unit_col2im_gemm);
}

void acv_ref_conv2d_forward(float *out, const float *in, const float *w, const float *b,
                            const acv_conv_params *p)
{
    forward(out, in, w, b, p, false);
}

void acv_ref_conv2d_backward(float *d_in, float *d_w, float *d_b, const float *d_out,
                             const float *in, const float *w, const acv_conv_params *p)
{
    backward(d_in, d_w, d_b, d_out, in, w, p, false);
}

void acv_ref_convt2d_forward(float *out, const float *in, const float *w, const float *b,
                             const acv_conv_params *p)
{
    forward(out, in, w, b, p, true);
}

void acv_ref_convt2d_backward(float *d_in, float *d_w, float *d_b, const float *d_out,
                              const float *in, const float *w, const acv_conv_params *p)
{
    backward(d_in, d_w, d_b, d_out, in, w, p, true);
}
