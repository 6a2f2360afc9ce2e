/* Terminal progress bar (see progress.h). */
#include "base/progress.h"

#include <string.h>

#include "base/timeutil.h"

void acv_progress_start(acv_progress *p, FILE *f, const char *label, int64_t total)
{
    p->f = f;
    snprintf(p->label, sizeof p->label, "%s", label);
    p->total = total > 0 ? total : 1;
    p->t0 = acv_now();
    p->last_draw = 0;
}

char *acv_fmt_duration(double s, char *buf, int cap)
{
    if (!(s >= 0) || s > 1e7) s = 0;
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, (size_t)cap, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
    else snprintf(buf, (size_t)cap, "%ld:%02ld", t / 60, t % 60);
    return buf;
}

void acv_progress_update(acv_progress *p, int64_t done, const char *extra)
{
    double now = acv_now();
    if (done < p->total && now - p->last_draw < 0.1) return;
    p->last_draw = now;
    const int width = 24;
    int filled = (int)(width * (double)done / (double)p->total);
    if (filled > width) filled = width;
    char bar[32];
    for (int i = 0; i < width; i++) bar[i] = i < filled ? '#' : '.';
    bar[width] = 0;
    double el = now - p->t0;
    double eta = done > 0 ? el * (double)(p->total - done) / (double)done : 0;
    char e[32];
    fprintf(p->f, "\r\033[K%s [%s] %lld/%lld %s ETA %s", p->label, bar, (long long)done, (long long)p->total,
            extra ? extra : "", acv_fmt_duration(eta, e, sizeof e));
    fflush(p->f);
}

void acv_progress_clear(acv_progress *p)
{
    fprintf(p->f, "\r\033[K");
    fflush(p->f);
}
