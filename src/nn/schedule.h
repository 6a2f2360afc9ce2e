/* Learning-rate schedules: a pure function from the global step to the learning rate, so
 * a resumed run needs only its step counter to continue on the same curve.
 *
 * lr(step) = main(step) * warm(step), with
 *   warm(step) = f0 + (1 - f0) * step / W   for step < W, else 1
 *                (torch LinearLR(start_factor=f0, end_factor=1, total_iters=W), per step;
 *                 W = warmup_steps, f0 = warmup_start_factor)
 *   main(step):
 *     CONSTANT  lr
 *     STEP      lr * gamma^floor(epoch / step_size), epoch = floor(step / steps_per_epoch)
 *               (torch StepLR stepped once per epoch; epochs count from step 0)
 *     COSINE    min_lr + (lr - min_lr) * (1 + cos(pi * t / T)) / 2,
 *               t = clamp(step - W, 0, T), T = total_steps - W
 *               (torch CosineAnnealingLR(T_max=T, eta_min=min_lr) over the post-warmup
 *                steps, in closed form; T <= 0 gives lr)
 * So the warmup climbs from f0*lr to lr and the cosine then falls from lr to min_lr at
 * step total_steps (and stays there beyond it).
 */
#ifndef ACV_NN_SCHEDULE_H
#define ACV_NN_SCHEDULE_H

#include <stdint.h>

typedef enum acv_schedule_type {
    ACV_SCHEDULE_CONSTANT,
    ACV_SCHEDULE_COSINE,
    ACV_SCHEDULE_STEP,
} acv_schedule_type;

typedef struct acv_schedule {
    acv_schedule_type type;
    double lr;                   /* base (peak) learning rate */
    double min_lr;               /* cosine floor (eta_min), absolute */
    int step_size;               /* STEP: epochs between decays (>= 1) */
    double gamma;                /* STEP: factor per decay (> 0) */
    int64_t warmup_steps;        /* 0: no warmup */
    double warmup_start_factor;  /* in [0, 1]: warmup starts at this fraction of main(step) */
} acv_schedule;

/* A constant schedule at lr with no warmup; the other fields take torch-like defaults
 * (step_size 30, gamma 0.1, warmup_start_factor 0.1, min_lr 0). */
acv_schedule acv_schedule_defaults(acv_schedule_type type, double lr);
/* "constant" / "cosine" / "step" (case-insensitive) -> type; ACV_EINVAL names the choices. */
int acv_schedule_type_parse(const char *name, acv_schedule_type *out);
const char *acv_schedule_type_name(acv_schedule_type type);
/* Checks the fields (lr, min_lr >= 0 and finite, min_lr <= lr for cosine, step_size >= 1 and
 * gamma > 0 for STEP, warmup_steps >= 0, warmup_start_factor in [0, 1]); ACV_EINVAL naming
 * the field. */
int acv_schedule_check(const acv_schedule *s);
/* The learning rate for global step `step` (0-based) of a run of total_steps steps with
 * steps_per_epoch steps per epoch (values < 1 count as 1), by the formula above. Steps
 * below 0 count as 0. The schedule must pass acv_schedule_check(). */
float acv_schedule_lr(const acv_schedule *s, int64_t step, int64_t total_steps, int steps_per_epoch);

#endif
