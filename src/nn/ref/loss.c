/* Reference losses with mean reduction: cross-entropy (hard targets with label smoothing,
 * class weights and ignored targets; soft targets), BCE with logits, sigmoid focal loss.
 *
 * Per-sample terms are computed in double with the log-sum-exp / softplus forms that stay
 * finite for any finite logit. Sums over samples are split into LOSS_CHUNKS fixed chunks
 * summed in parallel and then added in order, so the loss does not depend on the thread
 * count. Backward functions add scale * dLoss/dlogits. */
#include "nn/kernels.h"

#include <math.h>
#include <stddef.h>

#include "autocv/error.h"

#define LOSS_CHUNKS 64

static inline int64_t chunk_lo(int64_t n, int c) { return n * c / LOSS_CHUNKS; }

/* log(sum_k exp(x_k)) of one row, stable. */
static double row_lse(const float *x, int K)
{
    float mx = x[0];
    for (int k = 1; k < K; k++) mx = fmaxf(mx, x[k]);
    double s = 0.0;
    for (int k = 0; k < K; k++) s += exp((double)x[k] - mx);
    return mx + log(s);
}

/* softplus(x) = log(1 + exp(x)), stable for large |x|. */
static inline double softplus(double x) { return fmax(x, 0.0) + log1p(exp(-fabs(x))); }

/* The class of row i, or -1 when the row is ignored (target < 0). */
static inline int target_class(const float *targets, int i, int K)
{
    float t = targets[i];
    if (t < 0.0f) return -1;
    int y = (int)t;
    ACV_ASSERT(y < K);
    return y;
}

/* Sum over rows of w[y_i] (the mean's denominator) and of the weights of all classes. */
static double ce_weight_total(const float *targets, const float *weights, int N, int K)
{
    double W = 0.0;
    for (int i = 0; i < N; i++) {
        int y = target_class(targets, i, K);
        if (y >= 0) W += weights ? weights[y] : 1.0;
    }
    return W;
}

/* loss = [(1-eps) * sum_i w[y_i] * -logp_i[y_i] + eps/K * sum_i sum_k w[k] * -logp_i[k]]
 *        / sum_i w[y_i]
 * over the rows with a target >= 0 (PyTorch's cross_entropy with weight, ignore_index and
 * label_smoothing, reduction='mean'). Returns 0 when no row counts (PyTorch gives NaN). */
float acv_ref_cross_entropy_forward(const float *logits, const float *targets, const float *weights,
                                    int N, int K, float label_smoothing)
{
    ACV_ASSERT(N >= 0 && K > 0);
    const double eps = label_smoothing;
    double part[LOSS_CHUNKS][2] = {{0}};
#pragma omp parallel for schedule(static) if ((int64_t)N * K >= 16384)
    for (int c = 0; c < LOSS_CHUNKS; c++) {
        double nll = 0.0, smooth = 0.0;
        for (int64_t i = chunk_lo(N, c); i < chunk_lo(N, c + 1); i++) {
            int y = target_class(targets, (int)i, K);
            if (y < 0) continue;
            const float *x = logits + i * K;
            double lse = row_lse(x, K);
            nll += (weights ? weights[y] : 1.0) * (lse - x[y]);
            if (eps != 0.0) {
                double s = 0.0;
                for (int k = 0; k < K; k++) s += (weights ? weights[k] : 1.0) * (lse - x[k]);
                smooth += s;
            }
        }
        part[c][0] = nll;
        part[c][1] = smooth;
    }
    double nll = 0.0, smooth = 0.0;
    for (int c = 0; c < LOSS_CHUNKS; c++) {
        nll += part[c][0];
        smooth += part[c][1];
    }
    double W = ce_weight_total(targets, weights, N, K);
    if (W == 0.0) return 0.0f;
    return (float)(((1.0 - eps) * nll + eps / K * smooth) / W);
}

/* d_logits[i,j] += scale * (dlogp_j - p_j * sum_k dlogp_k) with
 * dlogp_k = -((1-eps) * w[y_i] * [k == y_i] + eps/K * w[k]) / W. Ignored rows get nothing. */
void acv_ref_cross_entropy_backward(float *d_logits, const float *logits, const float *targets,
                                    const float *weights, int N, int K, float label_smoothing,
                                    float scale)
{
    ACV_ASSERT(N >= 0 && K > 0);
    if (!d_logits) return;
    const double eps = label_smoothing;
    double W = ce_weight_total(targets, weights, N, K);
    if (W == 0.0) return;
    double wsum = 0.0;
    for (int k = 0; k < K; k++) wsum += weights ? weights[k] : 1.0;
#pragma omp parallel for schedule(static) if ((int64_t)N * K >= 16384)
    for (int i = 0; i < N; i++) {
        int y = target_class(targets, i, K);
        if (y < 0) continue;
        const float *x = logits + (int64_t)i * K;
        float *dx = d_logits + (int64_t)i * K;
        double lse = row_lse(x, K);
        double wy = weights ? weights[y] : 1.0;
        double sum_dlogp = -((1.0 - eps) * wy + eps / K * wsum) / W;
        for (int k = 0; k < K; k++) {
            double dlogp = -(eps / K) * (weights ? weights[k] : 1.0) / W;
            if (k == y) dlogp -= (1.0 - eps) * wy / W;
            double p = exp((double)x[k] - lse);
            dx[k] += (float)(scale * (dlogp - p * sum_dlogp));
        }
    }
}

/* loss = mean_i -sum_k t[i,k] * logp[i,k]. */
float acv_ref_cross_entropy_soft_forward(const float *logits, const float *targets, int N, int K)
{
    ACV_ASSERT(N >= 0 && K > 0);
    if (N == 0) return 0.0f;
    double part[LOSS_CHUNKS] = {0};
#pragma omp parallel for schedule(static) if ((int64_t)N * K >= 16384)
    for (int c = 0; c < LOSS_CHUNKS; c++) {
        double s = 0.0;
        for (int64_t i = chunk_lo(N, c); i < chunk_lo(N, c + 1); i++) {
            const float *x = logits + i * K, *t = targets + i * K;
            double lse = row_lse(x, K);
            for (int k = 0; k < K; k++) s += (double)t[k] * (lse - x[k]);
        }
        part[c] = s;
    }
    double s = 0.0;
    for (int c = 0; c < LOSS_CHUNKS; c++) s += part[c];
    return (float)(s / N);
}

/* d_logits[i,j] += scale/N * (p_j * sum_k t_k - t_j). */
void acv_ref_cross_entropy_soft_backward(float *d_logits, const float *logits, const float *targets,
                                         int N, int K, float scale)
{
    ACV_ASSERT(N >= 0 && K > 0);
    if (!d_logits || N == 0) return;
    const double f = (double)scale / N;
#pragma omp parallel for schedule(static) if ((int64_t)N * K >= 16384)
    for (int i = 0; i < N; i++) {
        const float *x = logits + (int64_t)i * K, *t = targets + (int64_t)i * K;
        float *dx = d_logits + (int64_t)i * K;
        double lse = row_lse(x, K), st = 0.0;
        for (int k = 0; k < K; k++) st += t[k];
        for (int k = 0; k < K; k++) dx[k] += (float)(f * (exp((double)x[k] - lse) * st - t[k]));
    }
}

/* loss = mean_i [softplus(x_i) - x_i * t_i] (= max(x,0) - x*t + log(1 + exp(-|x|))). */
float acv_ref_bce_logits_forward(const float *logits, const float *targets, int64_t n)
{
    ACV_ASSERT(n >= 0);
    if (n == 0) return 0.0f;
    double part[LOSS_CHUNKS] = {0};
#pragma omp parallel for schedule(static) if (n >= 16384)
    for (int c = 0; c < LOSS_CHUNKS; c++) {
        double s = 0.0;
        for (int64_t i = chunk_lo(n, c); i < chunk_lo(n, c + 1); i++)
            s += softplus(logits[i]) - (double)logits[i] * targets[i];
        part[c] = s;
    }
    double s = 0.0;
    for (int c = 0; c < LOSS_CHUNKS; c++) s += part[c];
    return (float)(s / (double)n);
}

static inline double sigmoid_d(double x)
{
    if (x >= 0.0) return 1.0 / (1.0 + exp(-x));
    double e = exp(x);
    return e / (1.0 + e);
}

/* d_logits[i] += scale/n * (sigmoid(x_i) - t_i). */
void acv_ref_bce_logits_backward(float *d_logits, const float *logits, const float *targets,
                                 int64_t n, float scale)
{
    ACV_ASSERT(n >= 0);
    if (!d_logits || n == 0) return;
    const double f = (double)scale / (double)n;
#pragma omp parallel for schedule(static) if (n >= 16384)
    for (int64_t i = 0; i < n; i++)
        d_logits[i] += (float)(f * (sigmoid_d(logits[i]) - targets[i]));
}

/* One element of the focal loss and, when grad is not NULL, its derivative in x:
 *   p = sigmoid(x), q = 1 - p, ce = softplus(x) - x*t, m = 1 - p_t = p*(1-t) + q*t,
 *   l = a_t * ce * m^gamma with a_t = alpha*t + (1-alpha)*(1-t) (1 when alpha < 0),
 *   dl/dx = a_t * [(p - t) * m^gamma + ce * gamma * m^(gamma-1) * p*q*(1-2t)].
 * q is computed as sigmoid(-x), so m stays accurate when p rounds to 1. */
static inline double focal_elem(double x, double t, double alpha, double gamma, double *grad)
{
    double p = sigmoid_d(x), q = sigmoid_d(-x);
    double ce = softplus(x) - x * t;
    double m = p * (1.0 - t) + q * t;
    double at = alpha >= 0.0 ? alpha * t + (1.0 - alpha) * (1.0 - t) : 1.0;
    double mg = gamma == 0.0 ? 1.0 : pow(m, gamma);
    if (grad) {
        double g = (p - t) * mg;
        if (gamma != 0.0 && m > 0.0) g += ce * gamma * pow(m, gamma - 1.0) * p * q * (1.0 - 2.0 * t);
        *grad = at * g;
    }
    return at * ce * mg;
}

/* torchvision.ops.sigmoid_focal_loss(x, t, alpha, gamma, reduction='mean'). */
float acv_ref_focal_forward(const float *logits, const float *targets, int64_t n, float alpha,
                            float gamma)
{
    ACV_ASSERT(n >= 0);
    if (n == 0) return 0.0f;
    double part[LOSS_CHUNKS] = {0};
#pragma omp parallel for schedule(static) if (n >= 4096)
    for (int c = 0; c < LOSS_CHUNKS; c++) {
        double s = 0.0;
        for (int64_t i = chunk_lo(n, c); i < chunk_lo(n, c + 1); i++)
            s += focal_elem(logits[i], targets[i], alpha, gamma, NULL);
        part[c] = s;
    }
    double s = 0.0;
    for (int c = 0; c < LOSS_CHUNKS; c++) s += part[c];
    return (float)(s / (double)n);
}

/* d_logits[i] += scale/n * dl_i/dx_i. */
void acv_ref_focal_backward(float *d_logits, const float *logits, const float *targets, int64_t n,
                            float alpha, float gamma, float scale)
{
    ACV_ASSERT(n >= 0);
    if (!d_logits || n == 0) return;
    const double f = (double)scale / (double)n;
#pragma omp parallel for schedule(static) if (n >= 4096)
    for (int64_t i = 0; i < n; i++) {
        double g;
        focal_elem(logits[i], targets[i], alpha, gamma, &g);
        d_logits[i] += (float)(f * g);
    }
}
