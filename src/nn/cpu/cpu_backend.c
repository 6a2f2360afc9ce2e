/* The CPU backend: oneDNN convolutions, transposed convolutions and batch normalization;
 * every other op (linear, pooling, activations, ...) keeps its slot NULL and runs the
 * reference kernel, which is already the fast path there (linear is one cblas_sgemm on
 * OpenBLAS; max pool must fill the argmax the reference backward reads, which oneDNN's
 * pooling workspace cannot provide). */
#include "nn/cpu/cpu.h"

#include "autocv/error.h"
#include "nn/backend.h"

void acv__cpu_cache_free(void *cache)
{
    if (!cache) return;
    int kind = *(const int *)cache;
    if (kind == ACV__CPU_CACHE_CONV) acv__cpu_conv_cache_free(cache);
    else if (kind == ACV__CPU_CACHE_BN) acv__cpu_bn_cache_free(cache);
    else ACV_ASSERT(!"cache slot not made by the CPU backend");
}

static const acv_backend g_cpu = {
    .name = "cpu",
    .set_threads = acv_set_threads,
    .cache_free = acv__cpu_cache_free,
    .conv2d_forward = acv__cpu_conv2d_forward,
    .conv2d_backward = acv__cpu_conv2d_backward,
    .convt2d_forward = acv__cpu_convt2d_forward,
    .convt2d_backward = acv__cpu_convt2d_backward,
    .batchnorm_forward = acv__cpu_batchnorm_forward,
    .batchnorm_backward = acv__cpu_batchnorm_backward,
};

const acv_backend *acv_backend_cpu(void) { return &g_cpu; }
