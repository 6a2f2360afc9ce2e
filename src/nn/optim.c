/* Optimizers (SGD, AdamW), gradient clipping and weight EMA over flat float arrays; the
 * update rules mirror PyTorch's op by op (see optim.h). */
#include "nn/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "autocv/error.h"

/* Arrays shorter than this are updated on one thread (the fork costs more than the work). */
#define PAR_MIN 32768

struct acv_optim {
    acv_optim_config cfg;
    int64_t n;
    int64_t steps;
    uint8_t *decay_mask; /* (n) or NULL: decay everywhere */
    float *buf;          /* SGD: momentum buffer (n), NULL without momentum */
    float *exp_avg;      /* AdamW: (n) */
    float *exp_avg_sq;   /* AdamW: (n) */
};

acv_optim_config acv_optim_defaults(acv_optim_type type)
{
    acv_optim_config c;
    memset(&c, 0, sizeof c);
    c.type = type;
    c.beta1 = 0.9;
    c.beta2 = 0.999;
    c.eps = 1e-8;
    if (type == ACV_OPTIM_ADAMW) {
        c.lr = 1e-3;
        c.weight_decay = 1e-2;
    } else {
        c.lr = 0.01;
    }
    return c;
}

int acv_optim_type_parse(const char *name, acv_optim_type *out)
{
    if (name && strcasecmp(name, "sgd") == 0) {
        *out = ACV_OPTIM_SGD;
        return 0;
    }
    if (name && strcasecmp(name, "adamw") == 0) {
        *out = ACV_OPTIM_ADAMW;
        return 0;
    }
    return acv_error(ACV_EINVAL, "unknown optimizer '%s' (expected sgd or adamw)",
                     name ? name : "(null)");
}

const char *acv_optim_type_name(acv_optim_type type)
{
    switch (type) {
    case ACV_OPTIM_SGD: return "sgd";
    case ACV_OPTIM_ADAMW: return "adamw";
    }
    return "unknown";
}

/* A hyper-parameter that must be finite and >= 0. */
static int check_nonneg(const char *what, double v)
{
    if (!isfinite(v) || v < 0)
        return acv_error(ACV_EINVAL, "optimizer: %s must be a finite value >= 0, got %g", what, v);
    return 0;
}

static int check_config(const acv_optim_config *c)
{
    int rc;
    if ((rc = check_nonneg("lr", c->lr)) || (rc = check_nonneg("weight_decay", c->weight_decay)))
        return rc;
    if (c->type == ACV_OPTIM_SGD) {
        if ((rc = check_nonneg("momentum", c->momentum)) ||
            (rc = check_nonneg("dampening", c->dampening)))
            return rc;
        if (c->nesterov && (c->momentum <= 0 || c->dampening != 0))
            return acv_error(ACV_EINVAL,
                             "optimizer: nesterov needs momentum > 0 and dampening 0 "
                             "(momentum %g, dampening %g)", c->momentum, c->dampening);
    } else if (c->type == ACV_OPTIM_ADAMW) {
        if (!(c->beta1 >= 0 && c->beta1 < 1))
            return acv_error(ACV_EINVAL, "optimizer: beta1 must be in [0, 1), got %g", c->beta1);
        if (!(c->beta2 >= 0 && c->beta2 < 1))
            return acv_error(ACV_EINVAL, "optimizer: beta2 must be in [0, 1), got %g", c->beta2);
        if ((rc = check_nonneg("eps", c->eps)))
            return rc;
    } else {
        return acv_error(ACV_EINVAL, "optimizer: unknown type %d", (int)c->type);
    }
    return 0;
}

int acv_optim_new(const acv_optim_config *cfg, int64_t n_params, acv_optim **out)
{
    *out = NULL;
    if (!cfg)
        return acv_error(ACV_EINVAL, "optimizer: no config");
    if (n_params < 0)
        return acv_error(ACV_EINVAL, "optimizer: negative parameter count %lld",
                         (long long)n_params);
    int rc = check_config(cfg);
    if (rc)
        return rc;
    acv_optim *o = calloc(1, sizeof *o);
    if (!o)
        return acv_error(ACV_ENOMEM, "optimizer: out of memory");
    o->cfg = *cfg;
    o->n = n_params;
    size_t bytes = (size_t)(n_params > 0 ? n_params : 1) * sizeof(float);
    bool ok = true;
    if (cfg->type == ACV_OPTIM_SGD && cfg->momentum != 0) {
        ok = (o->buf = calloc(1, bytes)) != NULL;
    } else if (cfg->type == ACV_OPTIM_ADAMW) {
        o->exp_avg = calloc(1, bytes);
        o->exp_avg_sq = calloc(1, bytes);
        ok = o->exp_avg && o->exp_avg_sq;
    }
    if (!ok) {
        acv_optim_free(o);
        return acv_error(ACV_ENOMEM, "optimizer: out of memory for the state of %lld parameters",
                         (long long)n_params);
    }
    *out = o;
    return 0;
}

void acv_optim_free(acv_optim *o)
{
    if (!o)
        return;
    free(o->decay_mask);
    free(o->buf);
    free(o->exp_avg);
    free(o->exp_avg_sq);
    free(o);
}

const acv_optim_config *acv_optim_config_of(const acv_optim *o) { return &o->cfg; }
double acv_optim_base_lr(const acv_optim *o) { return o->cfg.lr; }
int64_t acv_optim_size(const acv_optim *o) { return o->n; }
int64_t acv_optim_steps(const acv_optim *o) { return o->steps; }
void acv_optim_set_steps(acv_optim *o, int64_t steps) { o->steps = steps; }

int acv_optim_set_decay_mask(acv_optim *o, const uint8_t *mask)
{
    if (!mask) {
        free(o->decay_mask);
        o->decay_mask = NULL;
        return 0;
    }
    if (!o->decay_mask) {
        o->decay_mask = malloc((size_t)(o->n > 0 ? o->n : 1));
        if (!o->decay_mask)
            return acv_error(ACV_ENOMEM, "optimizer: out of memory for the decay mask");
    }
    if (o->n > 0)
        memcpy(o->decay_mask, mask, (size_t)o->n);
    return 0;
}

/* torch.optim.SGD, one element at a time in the order of ATen's ops: d_p.add(p, alpha=wd),
 * buf.mul_(momentum).add_(d_p, alpha=1-dampening), d_p.add(buf, alpha=momentum),
 * p.add_(d_p, alpha=-lr). Scalars are float32 casts of the Python doubles. */
static void sgd_step(acv_optim *o, float *p, const float *grad, float lr)
{
    const acv_optim_config *c = &o->cfg;
    const int64_t n = o->n;
    const uint8_t *mask = o->decay_mask;
    const bool decay = c->weight_decay != 0, use_mom = c->momentum != 0;
    const bool first = o->steps == 0, nesterov = c->nesterov;
    const float wd = (float)c->weight_decay, mom = (float)c->momentum;
    const float damp1 = (float)(1.0 - c->dampening), neg_lr = (float)(-(double)lr);
    float *buf = o->buf;
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        float g = grad[i];
        if (decay && (!mask || mask[i]))
            g = g + wd * p[i];
        if (use_mom) {
            float b = first ? g : buf[i] * mom + damp1 * g;
            buf[i] = b;
            g = nesterov ? g + mom * b : b;
        }
        p[i] = p[i] + neg_lr * g;
    }
}

/* torch.optim.AdamW (_single_tensor_adamw), element-wise in ATen's order: p.mul_(1-lr*wd),
 * m.mul_(b1).add_(g, alpha=1-b1), v.mul_(b2).addcmul_(g, g, value=1-b2),
 * denom = v.sqrt() / sqrt(bc2) + eps, p.addcdiv_(m, denom, value=-lr/bc1). */
static void adamw_step(acv_optim *o, float *p, const float *grad, float lr)
{
    const acv_optim_config *c = &o->cfg;
    const int64_t n = o->n;
    const uint8_t *mask = o->decay_mask;
    const double t = (double)(o->steps + 1);
    const double bc1 = 1.0 - pow(c->beta1, t), bc2 = 1.0 - pow(c->beta2, t);
    const float step_neg = (float)(-((double)lr / bc1));
    const float bc2_sqrt = (float)sqrt(bc2);
    const bool decay = c->weight_decay != 0;
    const float shrink = (float)(1.0 - (double)lr * c->weight_decay);
    const float b1 = (float)c->beta1, b2 = (float)c->beta2;
    const float omb1 = (float)(1.0 - c->beta1), omb2 = (float)(1.0 - c->beta2);
    const float eps = (float)c->eps;
    float *m = o->exp_avg, *v = o->exp_avg_sq;
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        float g = grad[i];
        float pi = p[i];
        if (decay && (!mask || mask[i]))
            pi = pi * shrink;
        float mi = m[i] * b1 + omb1 * g;
        float vi = v[i] * b2 + omb2 * g * g;
        m[i] = mi;
        v[i] = vi;
        float denom = sqrtf(vi) / bc2_sqrt + eps;
        p[i] = pi + step_neg * mi / denom;
    }
}

int acv_optim_step(acv_optim *o, float *params, const float *grads, float lr)
{
    if (o->n > 0 && (!params || !grads))
        return acv_error(ACV_EINVAL, "optimizer step: NULL parameter or gradient array");
    if (!isfinite(lr) || lr < 0)
        return acv_error(ACV_EINVAL, "optimizer step: learning rate must be finite and >= 0, "
                         "got %g", (double)lr);
    if (o->cfg.type == ACV_OPTIM_SGD)
        sgd_step(o, params, grads, lr);
    else
        adamw_step(o, params, grads, lr);
    o->steps++;
    return 0;
}

size_t acv_optim_state_size(const acv_optim *o)
{
    if (o->cfg.type == ACV_OPTIM_ADAMW)
        return 2 * (size_t)o->n;
    return o->buf ? (size_t)o->n : 0;
}

void acv_optim_state_get(const acv_optim *o, float *buf)
{
    size_t n = (size_t)o->n * sizeof(float);
    if (o->n == 0)
        return;
    if (o->cfg.type == ACV_OPTIM_ADAMW) {
        memcpy(buf, o->exp_avg, n);
        memcpy(buf + o->n, o->exp_avg_sq, n);
    } else if (o->buf) {
        memcpy(buf, o->buf, n);
    }
}

void acv_optim_state_set(acv_optim *o, const float *buf)
{
    size_t n = (size_t)o->n * sizeof(float);
    if (o->n == 0)
        return;
    if (o->cfg.type == ACV_OPTIM_ADAMW) {
        memcpy(o->exp_avg, buf, n);
        memcpy(o->exp_avg_sq, buf + o->n, n);
    } else if (o->buf) {
        memcpy(o->buf, buf, n);
    }
}

/* ---- gradient utilities ------------------------------------------------------------- */

/* The reduction splits [0, n) into this many fixed blocks whatever the thread count, sums
 * each block in double, then adds the block sums in order: the result depends on n only. */
#define NORM_BLOCKS 256

float acv_clip_grad_norm(float *grads, int64_t n, float max_norm)
{
    if (n <= 0 || !grads)
        return 0.0f;
    double part[NORM_BLOCKS];
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (int b = 0; b < NORM_BLOCKS; b++) {
        int64_t lo = n * b / NORM_BLOCKS, hi = n * (b + 1) / NORM_BLOCKS;
        /* Eight independent lanes: a fixed order that the compiler can still vectorise. */
        double acc[8] = {0};
        int64_t i = lo;
        for (; i + 8 <= hi; i += 8)
            for (int j = 0; j < 8; j++)
                acc[j] += (double)grads[i + j] * (double)grads[i + j];
        for (int j = 0; i < hi; i++, j++)
            acc[j] += (double)grads[i] * (double)grads[i];
        part[b] = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    }
    double sum = 0;
    for (int b = 0; b < NORM_BLOCKS; b++)
        sum += part[b];
    float norm = (float)sqrt(sum);
    if (max_norm > 0 && isfinite(norm)) {
        /* torch: clip_coef = max_norm / (total_norm + 1e-6), clamped to 1, in float32. */
        float coef = max_norm / (norm + 1e-6f);
        if (coef < 1.0f) {
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
            for (int64_t i = 0; i < n; i++)
                grads[i] *= coef;
        }
    }
    return norm;
}

bool acv_all_finite(const float *x, int64_t n)
{
    int bad = 0;
#pragma omp parallel for schedule(static) reduction(| : bad) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], sizeof u);
        bad |= (u & 0x7f800000u) == 0x7f800000u;
    }
    return !bad;
}

/* ---- EMA ------------------------------------------------------------------------------ */
struct acv_ema {
    double decay, tau;
    int64_t updates;
    int64_t n_params, n_buffers;
    float *params;  /* (n_params) */
    float *buffers; /* (n_buffers) */
};

int acv_ema_new(const float *params, int64_t n_params, const float *buffers, int64_t n_buffers,
                double decay, double tau, acv_ema **out)
{
    *out = NULL;
    if (n_params < 0 || n_buffers < 0)
        return acv_error(ACV_EINVAL, "ema: negative size (%lld params, %lld buffers)",
                         (long long)n_params, (long long)n_buffers);
    if ((n_params > 0 && !params) || (n_buffers > 0 && !buffers))
        return acv_error(ACV_EINVAL, "ema: NULL parameter or buffer array");
    if (!(decay >= 0 && decay <= 1))
        return acv_error(ACV_EINVAL, "ema: decay must be in [0, 1], got %g", decay);
    if (!isfinite(tau))
        return acv_error(ACV_EINVAL, "ema: tau must be finite, got %g", tau);
    acv_ema *e = calloc(1, sizeof *e);
    if (!e)
        return acv_error(ACV_ENOMEM, "ema: out of memory");
    e->decay = decay;
    e->tau = tau;
    e->n_params = n_params;
    e->n_buffers = n_buffers;
    e->params = malloc((size_t)(n_params > 0 ? n_params : 1) * sizeof(float));
    e->buffers = malloc((size_t)(n_buffers > 0 ? n_buffers : 1) * sizeof(float));
    if (!e->params || !e->buffers) {
        acv_ema_free(e);
        return acv_error(ACV_ENOMEM, "ema: out of memory for %lld params and %lld buffers",
                         (long long)n_params, (long long)n_buffers);
    }
    if (n_params > 0)
        memcpy(e->params, params, (size_t)n_params * sizeof(float));
    if (n_buffers > 0)
        memcpy(e->buffers, buffers, (size_t)n_buffers * sizeof(float));
    *out = e;
    return 0;
}

void acv_ema_free(acv_ema *e)
{
    if (!e)
        return;
    free(e->params);
    free(e->buffers);
    free(e);
}

double acv_ema_decay_at(const acv_ema *e, int64_t k)
{
    if (e->tau <= 0)
        return e->decay;
    return e->decay * (1.0 - exp(-(double)k / e->tau));
}

/* ema = ema*d + (1-d)*x, as ultralytics' `v *= d; v += (1 - d) * msd[k]` in float32. */
/* A value equal to its average stays exactly equal (the blend of two equal floats can round
 * away from both), so frozen weights kept among the buffers are never perturbed. */
static void ema_blend(float *ema, const float *x, int64_t n, float d, float omd)
{
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++)
        if (ema[i] != x[i]) ema[i] = ema[i] * d + omd * x[i];
}

int acv_ema_update(acv_ema *e, const float *params, const float *buffers)
{
    if ((e->n_params > 0 && !params) || (e->n_buffers > 0 && !buffers))
        return acv_error(ACV_EINVAL, "ema update: NULL parameter or buffer array");
    e->updates++;
    double d = acv_ema_decay_at(e, e->updates);
    float df = (float)d, omd = (float)(1.0 - d);
    ema_blend(e->params, params, e->n_params, df, omd);
    ema_blend(e->buffers, buffers, e->n_buffers, df, omd);
    return 0;
}

const float *acv_ema_params(const acv_ema *e) { return e->params; }
const float *acv_ema_buffers(const acv_ema *e) { return e->buffers; }
int64_t acv_ema_updates(const acv_ema *e) { return e->updates; }
void acv_ema_set_updates(acv_ema *e, int64_t updates) { e->updates = updates; }
size_t acv_ema_state_size(const acv_ema *e) { return (size_t)(e->n_params + e->n_buffers); }

void acv_ema_state_get(const acv_ema *e, float *buf)
{
    if (e->n_params > 0)
        memcpy(buf, e->params, (size_t)e->n_params * sizeof(float));
    if (e->n_buffers > 0)
        memcpy(buf + e->n_params, e->buffers, (size_t)e->n_buffers * sizeof(float));
}

void acv_ema_state_set(acv_ema *e, const float *buf)
{
    if (e->n_params > 0)
        memcpy(e->params, buf, (size_t)e->n_params * sizeof(float));
    if (e->n_buffers > 0)
        memcpy(e->buffers, buf + e->n_params, (size_t)e->n_buffers * sizeof(float));
}
