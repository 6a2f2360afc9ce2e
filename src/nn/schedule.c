/* Learning-rate schedules (constant, step, cosine) with linear warmup; see schedule.h. */
#include "nn/schedule.h"

#include <math.h>
#include <string.h>
#include <strings.h>

#include "autocv/error.h"

acv_schedule acv_schedule_defaults(acv_schedule_type type, double lr)
{
    acv_schedule s;
    memset(&s, 0, sizeof s);
    s.type = type;
    s.lr = lr;
    s.min_lr = 0;
    s.step_size = 30;
    s.gamma = 0.1;
    s.warmup_steps = 0;
    s.warmup_start_factor = 0.1;
    return s;
}

static const char *const type_names[] = {"constant", "cosine", "step"};

int acv_schedule_type_parse(const char *name, acv_schedule_type *out)
{
    for (int i = 0; name && i < 3; i++) {
        if (strcasecmp(name, type_names[i]) == 0) {
            *out = (acv_schedule_type)i;
            return 0;
        }
    }
    return acv_error(ACV_EINVAL, "unknown lr schedule '%s' (expected constant, cosine or step)",
                     name ? name : "(null)");
}

const char *acv_schedule_type_name(acv_schedule_type type)
{
    return (unsigned)type < 3 ? type_names[type] : "unknown";
}

int acv_schedule_check(const acv_schedule *s)
{
    if ((unsigned)s->type >= 3)
        return acv_error(ACV_EINVAL, "lr schedule: unknown type %d", (int)s->type);
    if (!isfinite(s->lr) || s->lr < 0)
        return acv_error(ACV_EINVAL, "lr schedule: lr must be finite and >= 0, got %g", s->lr);
    if (s->type == ACV_SCHEDULE_COSINE && (!isfinite(s->min_lr) || s->min_lr < 0 ||
                                           s->min_lr > s->lr))
        return acv_error(ACV_EINVAL, "lr schedule: min_lr must be in [0, lr=%g], got %g", s->lr,
                         s->min_lr);
    if (s->type == ACV_SCHEDULE_STEP) {
        if (s->step_size < 1)
            return acv_error(ACV_EINVAL, "lr schedule: step_size must be >= 1 epoch, got %d",
                             s->step_size);
        if (!isfinite(s->gamma) || s->gamma <= 0)
            return acv_error(ACV_EINVAL, "lr schedule: gamma must be > 0, got %g", s->gamma);
    }
    if (s->warmup_steps < 0)
        return acv_error(ACV_EINVAL, "lr schedule: warmup_steps must be >= 0, got %lld",
                         (long long)s->warmup_steps);
    if (!(s->warmup_start_factor >= 0 && s->warmup_start_factor <= 1))
        return acv_error(ACV_EINVAL, "lr schedule: warmup_start_factor must be in [0, 1], got %g",
                         s->warmup_start_factor);
    return 0;
}

float acv_schedule_lr(const acv_schedule *s, int64_t step, int64_t total_steps, int steps_per_epoch)
{
    if (step < 0)
        step = 0;
    if (steps_per_epoch < 1)
        steps_per_epoch = 1;
    const int64_t w = s->warmup_steps > 0 ? s->warmup_steps : 0;
    double lr = s->lr;
    switch (s->type) {
    case ACV_SCHEDULE_CONSTANT:
        break;
    case ACV_SCHEDULE_STEP: {
        int64_t epoch = step / steps_per_epoch;
        int64_t decays = epoch / (s->step_size > 0 ? s->step_size : 1);
        lr = s->lr * pow(s->gamma, (double)decays);
        break;
    }
    case ACV_SCHEDULE_COSINE: {
        int64_t t_max = total_steps - w;
        if (t_max > 0) {
            int64_t t = step - w;
            if (t < 0)
                t = 0;
            if (t > t_max)
                t = t_max;
            double c = cos(M_PI * (double)t / (double)t_max);
            lr = s->min_lr + (s->lr - s->min_lr) * (1.0 + c) * 0.5;
        }
        break;
    }
    }
    if (step < w) {
        double f0 = s->warmup_start_factor;
        lr *= f0 + (1.0 - f0) * (double)step / (double)w;
    }
    return (float)lr;
}
