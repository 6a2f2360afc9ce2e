/* The CPU backend's pointwise activations: the reference kernels' definitions (PyTorch's,
 * with the same gradient at each kink, see ref/act.c) written so that the compiler
 * vectorises every loop. Two things keep the reference loops scalar: fminf/fmaxf (not
 * vectorised without -ffast-math; here plain selects, which also give relu6(NaN) = 0 as
 * fminf(fmaxf(NaN, 0), 6) does) and the libm calls expf/tanhf (here a polynomial exp with
 * Cephes' coefficients, within a few ulp). ReLU, leaky ReLU, ReLU6, hard-swish and
 * hard-sigmoid give the reference's bits; sigmoid, SiLU and tanh agree with it to a few
 * ulp (tests hold them to 1e-6 relative). Large tensors are split over OpenMP threads in
 * fixed blocks. */
#include "nn/cpu/cpu.h"

#include <math.h>
#include <string.h>

#include "autocv/error.h"

/* Elements per parallel work item, and below how many elements the fork costs more than
 * the work. */
#define ACT_BLOCK 8192
#define ACT_PAR_MIN 32768

/* a*b + c, fused where the target has FMA (fmaf is a slow library call elsewhere). */
#ifdef __FMA__
#define MADD(a, b, c) fmaf((a), (b), (c))
#else
#define MADD(a, b, c) ((a) * (b) + (c))
#endif

/* exp(x) for x <= 0, flushed to 0 below -87.3 (where expf goes subnormal; the difference
 * is below 1.2e-38); NaN stays NaN. Cephes expf: x = n*ln2 + f with |f| <= ln2/2, exp(f)
 * by a degree-7 polynomial, times 2^n built in the exponent bits. Branch-free, so loops
 * over it vectorise. */
static inline float exp_neg(float x)
{
    const float lo = -87.33654f; /* ln(FLT_MIN) */
    float xin = x;
    x = x < lo ? lo : x;
    /* n = round(x*log2(e)): adding 1.5*2^23 leaves n in the low mantissa bits */
    float t = x * 1.44269504088896341f + 12582912.0f;
    float n = t - 12582912.0f;
    uint32_t tb;
    memcpy(&tb, &t, sizeof tb);
    float f = MADD(n, -0.693359375f, x);
    f = MADD(n, 2.12194440e-4f, f);
    float p = 1.9875691500e-4f;
    p = MADD(p, f, 1.3981999507e-3f);
    p = MADD(p, f, 8.3334519073e-3f);
    p = MADD(p, f, 4.1665795894e-2f);
    p = MADD(p, f, 1.6666665459e-1f);
    p = MADD(p, f, 5.0000001201e-1f);
    p = MADD(p, f * f, f) + 1.0f;
    /* 2^n with n in [-126, 0]: (n + 127) in the exponent field */
    uint32_t sb = ((tb - 0x4b400000u) + 127u) << 23;
    float s;
    memcpy(&s, &sb, sizeof s);
    return xin < lo ? 0.0f : p * s;
}

/* The reference's stable sigmoid: 1/(1+e) for x >= 0, e/(1+e) below, e = exp(-|x|). */
static inline float sigmoid_fast(float x)
{
    float e = exp_neg(x < 0.0f ? x : -x);
    return (x >= 0.0f ? 1.0f : e) / (1.0f + e);
}

/* tanh: Cephes' odd polynomial below |x| = 0.625, (1-e)/(1+e) with e = exp(-2|x|) above
 * (no cancellation there: e <= 0.29). */
static inline float tanh_fast(float x)
{
    float ax = x < 0.0f ? -x : x;
    float z = x * x;
    float p = -5.70498872745e-3f;
    p = MADD(p, z, 2.06390887954e-2f);
    p = MADD(p, z, -5.37397155531e-2f);
    p = MADD(p, z, 1.33314422036e-1f);
    p = MADD(p, z, -3.33332819422e-1f);
    float small = MADD(p * z, x, x);
    float e = exp_neg(-2.0f * ax);
    float big = (1.0f - e) / (1.0f + e);
    big = x < 0.0f ? -big : big;
    return ax < 0.625f ? small : big;
}

/* Exact GELU x * Phi(x) and its derivative Phi(x) + x * phi(x) (PyTorch's 'none'
 * approximation), in double through libm's erf. */
static inline float geluf(float x) { return (float)(0.5 * x * (1.0 + erf(x * 0.70710678118654752440))); }
static inline float gelu_grad(float x)
{
    double cdf = 0.5 * (1.0 + erf(x * 0.70710678118654752440));
    return (float)(cdf + x * 0.39894228040143267794 * exp(-0.5 * (double)x * x));
}

static inline float relu6_sel(float x) { return x > 0.0f ? (x < 6.0f ? x : 6.0f) : 0.0f; }

void acv__cpu_act_forward_serial(float *out, const float *in, int64_t n, acv_act kind, float alpha)
{
    switch (kind) {
    case ACV_ACT_RELU:
        for (int64_t i = 0; i < n; i++) out[i] = in[i] > 0.0f ? in[i] : 0.0f;
        break;
    case ACV_ACT_RELU6:
        for (int64_t i = 0; i < n; i++) out[i] = relu6_sel(in[i]);
        break;
    case ACV_ACT_LEAKY_RELU:
        for (int64_t i = 0; i < n; i++) out[i] = in[i] > 0.0f ? in[i] : in[i] * alpha;
        break;
    case ACV_ACT_SILU:
        for (int64_t i = 0; i < n; i++) out[i] = in[i] * sigmoid_fast(in[i]);
        break;
    case ACV_ACT_SIGMOID:
        for (int64_t i = 0; i < n; i++) out[i] = sigmoid_fast(in[i]);
        break;
    case ACV_ACT_HARDSWISH:
        for (int64_t i = 0; i < n; i++) out[i] = in[i] * relu6_sel(in[i] + 3.0f) * (1.0f / 6.0f);
        break;
    case ACV_ACT_HARDSIGMOID:
        for (int64_t i = 0; i < n; i++) out[i] = relu6_sel(in[i] + 3.0f) * (1.0f / 6.0f);
        break;
    case ACV_ACT_TANH:
        for (int64_t i = 0; i < n; i++) out[i] = tanh_fast(in[i]);
        break;
    case ACV_ACT_GELU:
        for (int64_t i = 0; i < n; i++) out[i] = geluf(in[i]);
        break;
    default:
        break;
    }
}

/* d_in += act'(in) * d_out, the reference's derivative at every point (see ref/act.c). */
static void act_backward_serial(float *d_in, const float *d_out, const float *in, const float *out,
                                int64_t n, acv_act kind, float alpha)
{
    switch (kind) {
    case ACV_ACT_RELU:
        for (int64_t i = 0; i < n; i++) d_in[i] += in[i] > 0.0f ? d_out[i] : 0.0f;
        break;
    case ACV_ACT_RELU6:
        for (int64_t i = 0; i < n; i++) d_in[i] += (in[i] > 0.0f && in[i] < 6.0f) ? d_out[i] : 0.0f;
        break;
    case ACV_ACT_LEAKY_RELU:
        for (int64_t i = 0; i < n; i++) d_in[i] += in[i] > 0.0f ? d_out[i] : d_out[i] * alpha;
        break;
    case ACV_ACT_SILU:
        for (int64_t i = 0; i < n; i++) {
            float s = sigmoid_fast(in[i]);
            d_in[i] += d_out[i] * s * (1.0f + in[i] * (1.0f - s));
        }
        break;
    case ACV_ACT_SIGMOID:
        for (int64_t i = 0; i < n; i++) d_in[i] += d_out[i] * out[i] * (1.0f - out[i]);
        break;
    case ACV_ACT_HARDSWISH:
        for (int64_t i = 0; i < n; i++) {
            float x = in[i];
            float g = x < -3.0f ? 0.0f : x <= 3.0f ? x * (1.0f / 3.0f) + 0.5f : 1.0f;
            d_in[i] += d_out[i] * g;
        }
        break;
    case ACV_ACT_HARDSIGMOID:
        for (int64_t i = 0; i < n; i++)
            d_in[i] += (in[i] > -3.0f && in[i] < 3.0f) ? d_out[i] * (1.0f / 6.0f) : 0.0f;
        break;
    case ACV_ACT_TANH:
        for (int64_t i = 0; i < n; i++) d_in[i] += d_out[i] * (1.0f - out[i] * out[i]);
        break;
    case ACV_ACT_GELU:
        for (int64_t i = 0; i < n; i++) d_in[i] += d_out[i] * gelu_grad(in[i]);
        break;
    default:
        break;
    }
}

void acv__cpu_act_forward(float *out, const float *in, int64_t n, acv_act kind, float alpha)
{
    ACV_ASSERT(kind >= 0 && kind < ACV_ACT_COUNT && n >= 0);
    if (n < ACT_PAR_MIN) {
        acv__cpu_act_forward_serial(out, in, n, kind, alpha);
        return;
    }
    acv__cpu_sync_threads();
    int64_t blocks = (n + ACT_BLOCK - 1) / ACT_BLOCK;
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < blocks; b++) {
        int64_t o = b * ACT_BLOCK, len = n - o < ACT_BLOCK ? n - o : ACT_BLOCK;
        acv__cpu_act_forward_serial(out + o, in + o, len, kind, alpha);
    }
}

void acv__cpu_act_backward(float *d_in, const float *d_out, const float *in, const float *out, int64_t n,
                           acv_act kind, float alpha)
{
    ACV_ASSERT(kind >= 0 && kind < ACV_ACT_COUNT && n >= 0);
    if (!d_in) return;
    if (n < ACT_PAR_MIN) {
        act_backward_serial(d_in, d_out, in, out, n, kind, alpha);
        return;
    }
    acv__cpu_sync_threads();
    int64_t blocks = (n + ACT_BLOCK - 1) / ACT_BLOCK;
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < blocks; b++) {
        int64_t o = b * ACT_BLOCK, len = n - o < ACT_BLOCK ? n - o : ACT_BLOCK;
        act_backward_serial(d_in + o, d_out + o, in ? in + o : NULL, out ? out + o : NULL, len, kind, alpha);
    }
}
