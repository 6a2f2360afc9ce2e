/* Reference fully connected layer on OpenBLAS: out = in @ w^T + b. */
#include "nn/kernels.h"

#include <cblas.h>
#include <string.h>

#include "autocv/error.h"

/* out (M, OUT) = in (M, IN) @ w^T (w: (OUT, IN)) + b (OUT), b may be NULL. */
void acv_ref_linear_forward(float *out, const float *in, const float *w, const float *b,
                            int M, int IN, int OUT)
{
    ACV_ASSERT(M >= 0 && IN >= 0 && OUT >= 0);
    if (M == 0 || OUT == 0) return;
    if (b) {
        for (int m = 0; m < M; m++) memcpy(out + (int64_t)m * OUT, b, (size_t)OUT * sizeof(float));
    } else {
        memset(out, 0, (size_t)M * OUT * sizeof(float));
    }
    if (IN == 0) return;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, OUT, IN, 1.0f, in, IN, w, IN,
                1.0f, out, OUT);
}

/* d_in (M, IN) += d_out @ w; d_w (OUT, IN) += d_out^T @ in; d_b (OUT) += column sums of
 * d_out. NULL gradients are skipped. */
void acv_ref_linear_backward(float *d_in, float *d_w, float *d_b, const float *d_out,
                             const float *in, const float *w, int M, int IN, int OUT)
{
    ACV_ASSERT(M >= 0 && IN >= 0 && OUT >= 0);
    if (M == 0 || OUT == 0) return;
    if (d_in && IN > 0)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, IN, OUT, 1.0f, d_out, OUT, w,
                    IN, 1.0f, d_in, IN);
    if (d_w && IN > 0)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OUT, IN, M, 1.0f, d_out, OUT, in,
                    IN, 1.0f, d_w, IN);
    if (d_b) {
        /* blocks of columns in parallel; rows summed in order inside each block */
        enum { BLK = 256 };
        int nblk = (OUT + BLK - 1) / BLK;
#pragma omp parallel for schedule(static) if ((int64_t)M * OUT >= 65536)
        for (int k = 0; k < nblk; k++) {
            int lo = k * BLK, hi = lo + BLK < OUT ? lo + BLK : OUT;
            double acc[BLK];
            for (int j = lo; j < hi; j++) acc[j - lo] = 0.0;
            for (int m = 0; m < M; m++) {
                const float *g = d_out + (int64_t)m * OUT;
                for (int j = lo; j < hi; j++) acc[j - lo] += g[j];
            }
            for (int j = lo; j < hi; j++) d_b[j] += (float)acc[j - lo];
        }
    }
}
