/* Reference pointwise activations (forward and backward) with PyTorch's definitions,
 * including the gradient PyTorch picks at each kink. */
#include "nn/kernels.h"

#include <math.h>

#include "autocv/error.h"

/* Below this many elements the OpenMP fork costs more than the work. */
#define ACT_PAR_MIN 16384

static inline float sigmoidf_stable(float x)
{
    if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
    float e = expf(x);
    return e / (1.0f + e);
}

/* Exact GELU x * Phi(x) and its derivative Phi(x) + x * phi(x) (PyTorch's 'none'
 * approximation), in double through libm's erf. */
static inline float geluf(float x) { return (float)(0.5 * x * (1.0 + erf(x * 0.70710678118654752440))); }
static inline float gelu_grad(float x)
{
    double cdf = 0.5 * (1.0 + erf(x * 0.70710678118654752440));
    return (float)(cdf + x * 0.39894228040143267794 * exp(-0.5 * (double)x * x));
}

static inline float relu6f(float x) { return fminf(fmaxf(x, 0.0f), 6.0f); }

/* out[i] = act(in[i]) for i < n; out may alias in. */
void acv_ref_act_forward(float *out, const float *in, int64_t n, acv_act kind, float alpha)
{
    ACV_ASSERT(kind >= 0 && kind < ACV_ACT_COUNT);
    switch (kind) {
    case ACV_ACT_RELU:
#pragma omp parallel for schedule(static) if (n >= ACT_PAR_MIN)
        for (int64_t i = 0; i < n; i++) out[i] = in[i] > 0.0f ? in[i] : 0.0f;
        break;
    case ACV_ACT_RELU6:
#pragma omp parallel for schedule(static) if (n >= ACT_PAR_MIN)
        for (int64_t i = 0; i < n; i++) out[i] = relu6f(in[i]);
        break;
    case ACV_ACT_LEAKY_RELU:
#pragma omp parallel for schedule(static) if (n >= ACT_PAR_MIN)
        for (int64_t i = 0; i < n; i++) out[i] = in[i] > 0.0f ? in[i] : in[i] * alpha;
        break;
    case ACV_ACT_SILU:
#pragma omp parallel for schedule(static) if (n >= ACT_PAR_MIN)
        for (int64_t i = 0; i < n; i++) out[i] = in[i] * sigmoidf_stable(in[i]);
        break;
    case ACV_ACT_SIGMOID:
#pragma omp parallel for schedule(static) if (n >= ACT_PAR_MIN)
        for (int64_t i = 0; i < n; i++) out[i] = sigmoidf_stable(in[i]);
        break;
    case ACV_ACT_HARDSWISH:
#pragma omp parallel for schedule(static) if (n >= ACT_PAR_MIN)
        for (int64_t i = 0; i < n; i++) out[i] = in[i] * relu6f(in[i] + 3.0f) * (1.0f / 6.0f);
        break;
    case ACV_ACT_HARDSIGMOID:
#pragma omp parallel for schedule(static) if (n >= ACT_PAR_MIN)
        for (int64_t i = 0; i < n; i++) out[i] = relu6f(in[i] + 3.0f) * (1.0f / 6.0f);
        break;
    case ACV_ACT_TANH:
#pragma omp parallel for schedule(static) if (n >= ACT_PAR_MIN)
        for (int64_t i = 0; i < n; i++) out[i] = tanhf(in[i]);
        break;
    case ACV_ACT_GELU:
#pragma omp parallel for schedule(static) if (n >= ACT_PAR_MIN)
        for (int64_t i = 0; i < n; i++) out[i] = geluf(in[i]);
        break;
    default:
        break;
    }
}

/* d_in[i] += act'(in[i]) * d_out[i]. Kinks follow PyTorch: relu' (0) = 0; relu6' is 0 at 0
 * and 6; leaky' (0) = alpha; hardswish' is x/3 + 1/2 on [-3, 3] (so -1/2 at -3, 3/2 at 3);
 * hardsigmoid' is 1/6 only strictly inside (-3, 3). sigmoid and tanh use the forward output,
 * the others the forward input. d_in NULL: nothing to do. */
void acv_ref_act_backward(float *d_in, const float *d_out, const float *in, const float *out,
                          int64_t n, acv_act kind, float alpha)
{
    ACV_ASSERT(kind >= 0 && kind < ACV_ACT_COUNT);
    if (!d_in) return;
    switch (kind) {
    case ACV_ACT_RELU:
#pragma omp parallel for schedule(static) if (n >= ACT_PAR_MIN)
        for (int64_t i = 0; i < n; i++) d_in[i] += in[i] > 0.0f ? d_out[i] : 0.0f;
        break;
    case ACV_ACT_RELU6:
#pragma omp parallel for schedule(static) if (n >= ACT_PAR_MIN)
        for (int64_t i = 0; i < n; i++)
            d_in[i] += (in[i] > 0.0f && in[i] < 6.0f) ? d_out[i] : 0.0f;
        break;
    case ACV_ACT_LEAKY_RELU:
#pragma omp parallel for schedule(static) if (n >= ACT_PAR_MIN)
        for (int64_t i = 0; i < n; i++) d_in[i] += in[i] > 0.0f ? d_out[i] : d_out[i] * alpha;
        break;
    case ACV_ACT_SILU:
#pragma omp parallel for schedule(static) if (n >= ACT_PAR_MIN)
        for (int64_t i = 0; i < n; i++) {
            float s = sigmoidf_stable(in[i]);
            d_in[i] += d_out[i] * s * (1.0f + in[i] * (1.0f - s));
        }
        break;
    case ACV_ACT_SIGMOID:
#pragma omp parallel for schedule(static) if (n >= ACT_PAR_MIN)
        for (int64_t i = 0; i < n; i++) d_in[i] += d_out[i] * out[i] * (1.0f - out[i]);
        break;
    case ACV_ACT_HARDSWISH:
#pragma omp parallel for schedule(static) if (n >= ACT_PAR_MIN)
        for (int64_t i = 0; i < n; i++) {
            float x = in[i], g;
            if (x < -3.0f) g = 0.0f;
            else if (x <= 3.0f) g = x * (1.0f / 3.0f) + 0.5f;
            else g = 1.0f;
            d_in[i] += d_out[i] * g;
        }
        break;
    case ACV_ACT_HARDSIGMOID:
#pragma omp parallel for schedule(static) if (n >= ACT_PAR_MIN)
        for (int64_t i = 0; i < n; i++)
            d_in[i] += (in[i] > -3.0f && in[i] < 3.0f) ? d_out[i] * (1.0f / 6.0f) : 0.0f;
        break;
    case ACV_ACT_TANH:
#pragma omp parallel for schedule(static) if (n >= ACT_PAR_MIN)
        for (int64_t i = 0; i < n; i++) d_in[i] += d_out[i] * (1.0f - out[i] * out[i]);
        break;
    case ACV_ACT_GELU:
#pragma omp parallel for schedule(static) if (n >= ACT_PAR_MIN)
        for (int64_t i = 0; i < n; i++) d_in[i] += d_out[i] * gelu_grad(in[i]);
        break;
    default:
        break;
    }
}
