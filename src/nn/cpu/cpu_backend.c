/* The CPU backend: oneDNN convolutions and transposed convolutions; our own vectorised
 * training batch norm (also fused with the activation after it) and activations (cpu_norm.c,
 * cpu_act.c). Every other slot stays NULL and runs the reference kernel, which is already
 * the fast path there:
 *  - linear: the reference is one cblas_sgemm per product on OpenBLAS;
 *  - batch norm: oneDNN's NCHW batch normalization was measured no faster than the
 *    reference (memory-bound; its training forward up to 1.8x slower at 32x64x56x56), so
 *    cpu_norm.c keeps the reference's structure and only takes its sums in one cheaper pass;
 *  - max pool: the backward reads the argmax the forward fills, which oneDNN's pooling
 *    workspace cannot provide. */
#include "nn/cpu/cpu.h"

#include "autocv/error.h"
#include "nn/backend.h"

#include <stdlib.h>
#include <string.h>

void acv__cpu_cache_free(void *cache)
{
    if (!cache) return;
    int kind = *(const int *)cache;
    ACV_ASSERT(kind == ACV__CPU_CACHE_CONV); /* else not made by the CPU backend */
    acv__cpu_conv_cache_free(cache);
}

/* oneDNN's convolutions run natively on nChw16c with AVX-512 and nChw8c with AVX2;
 * ACV_BLOCKED=0 in the environment turns the blocked inference layout off. */
static int cpu_blocked_channels(void)
{
    static int b = -1;
    if (b < 0) {
        const char *e = getenv("ACV_BLOCKED");
        __builtin_cpu_init();
        b = (e && !strcmp(e, "0")) ? 0 : __builtin_cpu_supports("avx512f") ? 16 : __builtin_cpu_supports("avx2") ? 8 : 0;
    }
    return b;
}

static const acv_backend g_cpu = {
    .name = "cpu",
    .blocked_channels = cpu_blocked_channels,
    .set_threads = acv_set_threads,
    .cache_free = acv__cpu_cache_free,
    .conv_impl = acv_cpu_conv_impl,
    .conv2d_forward = acv__cpu_conv2d_forward,
    .conv2d_pw_dw_ok = acv__cpu_conv2d_pw_dw_ok,
    .conv2d_pw_dw_forward = acv__cpu_conv2d_pw_dw_forward,
    .conv2d_backward = acv__cpu_conv2d_backward,
    .convt2d_forward = acv__cpu_convt2d_forward,
    .convt2d_backward = acv__cpu_convt2d_backward,
    .batchnorm_forward = acv__cpu_batchnorm_forward,
    .batchnorm_backward = acv__cpu_batchnorm_backward,
    .batchnorm_act_forward = acv__cpu_batchnorm_act_forward,
    .act_forward = acv__cpu_act_forward,
    .act_backward = acv__cpu_act_backward,
};

const acv_backend *acv_backend_cpu(void) { return &g_cpu; }
