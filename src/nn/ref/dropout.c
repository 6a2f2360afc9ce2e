/* Reference dropout. The mask is drawn per block of DROP_BLK elements from a generator
 * seeded by (seed, block index), so it is the same for any thread count and any split
 * of the work. */
#include "nn/kernels.h"

#include <stddef.h>

#include "autocv/error.h"
#include "base/rng.h"

#define DROP_BLK 4096
/* Mixed into the seed so that dropout masks differ from other streams drawn from the
 * same seed. */
#define DROP_STREAM 0x64726f70ULL /* "drop" */

/* mask[i] = 1/(1-p) (kept) or 0 (dropped, with probability p); out = in * mask.
 * p <= 0 keeps everything, p >= 1 drops everything (out = 0, as PyTorch). out may alias in. */
void acv_ref_dropout_forward(float *out, float *mask, const float *in, int64_t n, float p,
                             uint64_t seed)
{
    ACV_ASSERT(n >= 0 && mask != NULL);
    if (p >= 1.0f) {
        for (int64_t i = 0; i < n; i++) {
            mask[i] = 0.0f;
            out[i] = 0.0f;
        }
        return;
    }
    const float keep = 1.0f / (1.0f - (p > 0.0f ? p : 0.0f));
    const int64_t nblk = (n + DROP_BLK - 1) / DROP_BLK;
#pragma omp parallel for schedule(static) if (n >= 4 * DROP_BLK)
    for (int64_t k = 0; k < nblk; k++) {
        int64_t lo = k * DROP_BLK, hi = lo + DROP_BLK < n ? lo + DROP_BLK : n;
        acv_rng r;
        acv_rng_seed3(&r, seed, DROP_STREAM, (uint64_t)k);
        for (int64_t i = lo; i < hi; i++) {
            /* uniform in [0,1): dropped with probability p */
            mask[i] = acv_rng_uniform(&r) < p ? 0.0f : keep;
            out[i] = in[i] * mask[i];
        }
    }
}

/* d_in += d_out * mask. d_in NULL: nothing to do. */
void acv_ref_dropout_backward(float *d_in, const float *d_out, const float *mask, int64_t n)
{
    if (!d_in) return;
#pragma omp parallel for schedule(static) if (n >= 16384)
    for (int64_t i = 0; i < n; i++) d_in[i] += d_out[i] * mask[i];
}
