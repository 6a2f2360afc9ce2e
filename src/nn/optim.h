/* Optimizers, gradient clipping and weight EMA over flat parameter arrays.
 *
 * The graph keeps every trainable parameter in one float array and the gradients in
 * another (acv_graph_params / acv_graph_grads), so an optimizer here is an update rule over
 * n floats plus its per-element state. The rules are PyTorch's, operation by operation
 * (torch.optim.SGD and torch.optim.AdamW, single-tensor path, torch 1.13): scalar
 * coefficients are computed in double as Python does and applied in float32 as ATen does,
 * so results agree with PyTorch to float32 rounding (tests/ref/optim_ref.py checks it).
 *
 * Every update is element-wise and every reduction has a fixed order independent of the
 * thread count, so results are bitwise identical for any OMP_NUM_THREADS, and a run that
 * saves the state (acv_optim_state_get + acv_optim_steps) and restores it into a fresh
 * optimizer continues bitwise identically.
 */
#ifndef ACV_NN_OPTIM_H
#define ACV_NN_OPTIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- optimizers -------------------------------------------------------------------- */
typedef enum acv_optim_type {
    ACV_OPTIM_SGD,
    ACV_OPTIM_ADAMW,
} acv_optim_type;

/* Hyper-parameters in double, as PyTorch holds them (Python floats). */
typedef struct acv_optim_config {
    acv_optim_type type;
    double lr;            /* base learning rate (acv_optim_base_lr); each step passes its own */
    double weight_decay;  /* SGD: L2 added to the gradient; AdamW: decoupled p *= 1 - lr*wd */
    /* SGD */
    double momentum;      /* 0: plain SGD */
    double dampening;     /* torch default 0; must be 0 with nesterov */
    bool nesterov;        /* needs momentum > 0 */
    /* AdamW */
    double beta1, beta2;  /* torch defaults 0.9, 0.999 */
    double eps;           /* torch default 1e-8 */
} acv_optim_config;

typedef struct acv_optim acv_optim;

/* PyTorch's defaults for a type: SGD lr 0.01 (torch has none; ours), momentum 0, wd 0;
 * AdamW lr 1e-3, betas (0.9, 0.999), eps 1e-8, wd 1e-2. */
acv_optim_config acv_optim_defaults(acv_optim_type type);
/* "sgd" / "adamw" (case-insensitive) -> type; ACV_EINVAL naming the accepted values. */
int acv_optim_type_parse(const char *name, acv_optim_type *out);
const char *acv_optim_type_name(acv_optim_type type);

/* Creates an optimizer for n_params parameters with zeroed state and step count 0.
 * Checks the config as torch does (lr, momentum, weight_decay, eps >= 0, betas in [0, 1),
 * nesterov only with momentum > 0 and dampening 0): ACV_EINVAL naming the field, ACV_ENOMEM.
 * On success *out owns the optimizer; release it with acv_optim_free(). */
int acv_optim_new(const acv_optim_config *cfg, int64_t n_params, acv_optim **out);
void acv_optim_free(acv_optim *o);
const acv_optim_config *acv_optim_config_of(const acv_optim *o);
double acv_optim_base_lr(const acv_optim *o);
int64_t acv_optim_size(const acv_optim *o);

/* Per-element weight-decay mask (n_params bytes, copied): 0 = no decay for that element
 * (biases, norm weights), non-zero = decay. Same as putting those parameters into a torch
 * param group with weight_decay=0. NULL removes the mask (decay everywhere). ACV_ENOMEM. */
int acv_optim_set_decay_mask(acv_optim *o, const uint8_t *mask);

/* One update of params (n_params floats, in place) from grads at learning rate lr.
 *  SGD:   g = grad + wd*p;  buf = (first step) g | momentum*buf + (1-dampening)*g;
 *         g = nesterov ? g + momentum*buf : buf (when momentum > 0);  p -= lr*g.
 *  AdamW: t += 1;  p *= 1 - lr*wd;  m = beta1*m + (1-beta1)*g;  v = beta2*v + (1-beta2)*g*g;
 *         p -= lr/(1-beta1^t) * m / (sqrt(v)/sqrt(1-beta2^t) + eps).
 * The step counter (acv_optim_steps) is incremented. Gradients are not checked for
 * finiteness (see acv_all_finite). ACV_EINVAL for NULL arrays or lr < 0 / not finite. */
int acv_optim_step(acv_optim *o, float *params, const float *grads, float lr);

/* Steps taken so far; restore it together with the state when resuming. */
int64_t acv_optim_steps(const acv_optim *o);
void acv_optim_set_steps(acv_optim *o, int64_t steps);
/* Optimizer state as floats: SGD with momentum: the momentum buffer (n); SGD without: none
 * (0); AdamW: exp_avg then exp_avg_sq (2n). acv_optim_state_get copies it into buf (room for
 * acv_optim_state_size() floats); acv_optim_state_set copies it back from buf. */
size_t acv_optim_state_size(const acv_optim *o);
void acv_optim_state_get(const acv_optim *o, float *buf);
void acv_optim_state_set(acv_optim *o, const float *buf);

/* ---- gradient utilities ------------------------------------------------------------ */
/* torch.nn.utils.clip_grad_norm_ (norm 2) over n gradients viewed as one vector: returns the
 * total L2 norm before clipping (summed in double in a fixed order, so it does not depend
 * on the thread count) and, when max_norm > 0, scales grads by min(1, max_norm/(norm+1e-6))
 * (in float32, as torch). max_norm <= 0 only measures. When the norm is not finite the
 * gradients are left unchanged (torch would scale them into NaN) and the non-finite norm is
 * returned: the caller should skip the step. */
float acv_clip_grad_norm(float *grads, int64_t n, float max_norm);
/* True when none of the n floats is NaN or infinite. */
bool acv_all_finite(const float *x, int64_t n);

/* ---- exponential moving average of weights ------------------------------------------ */
/* The ultralytics ModelEMA rule (timm ModelEmaV2 with a decay ramp): on update k (1-based)
 *   d = decay * (1 - exp(-k / tau))      (tau <= 0: d = decay, timm's constant decay)
 *   ema = ema*d + (1-d)*model            (float32, d cast from double as torch does)
 * applied to the trainable parameters and to the non-trainable buffers (batch-norm running
 * statistics) alike, as ultralytics does for every floating-point state_dict entry. */
typedef struct acv_ema acv_ema;

/* Starts the average as a copy of params (n_params floats) and buffers (n_buffers floats;
 * NULL allowed when n_buffers is 0), with 0 updates. decay in [0, 1]. ACV_EINVAL, ACV_ENOMEM.
 * *out owns the copies; release with acv_ema_free(). */
int acv_ema_new(const float *params, int64_t n_params, const float *buffers, int64_t n_buffers,
                double decay, double tau, acv_ema **out);
void acv_ema_free(acv_ema *e);
/* Folds the current model into the average (buffers may be NULL when n_buffers is 0). */
int acv_ema_update(acv_ema *e, const float *params, const float *buffers);
/* The decay the k-th update uses. */
double acv_ema_decay_at(const acv_ema *e, int64_t k);
/* The averaged arrays (n_params / n_buffers floats, owned by e): copy them into a graph to
 * evaluate or export the EMA model. */
const float *acv_ema_params(const acv_ema *e);
const float *acv_ema_buffers(const acv_ema *e);
int64_t acv_ema_updates(const acv_ema *e);
void acv_ema_set_updates(acv_ema *e, int64_t updates);
/* State for checkpoints: params then buffers, n_params + n_buffers floats; restore the update
 * count with acv_ema_set_updates(). */
size_t acv_ema_state_size(const acv_ema *e);
void acv_ema_state_get(const acv_ema *e, float *buf);
void acv_ema_state_set(acv_ema *e, const float *buf);

#endif
