/* Counting thresholds chosen on a validation set (see det_count.h). */
#include "metrics/det_count.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "autocv/error.h"

/* One (image, class) pair with something in it: its true count and its scores. */
typedef struct {
    int64_t image;
    int truth;
    int64_t start;           /* into the class's score pool */
    int n;
} entry;

typedef struct {
    entry *e;
    size_t n, cap;
    float *s;                /* scores, entry by entry */
    size_t ns, scap;
} cls_rec;

struct acv_count_calib {
    int k;
    int64_t images;
    cls_rec *c;
    int *truth, *npred;      /* (k) scratch for one image */
};

acv_count_calib *acv_count_calib_new(int k)
{
    if (k < 1 || k > 100000) {
        acv_error(ACV_EINVAL, "count calibration: %d classes", k);
        return NULL;
    }
    acv_count_calib *c = calloc(1, sizeof *c);
    if (c) {
        c->k = k;
        c->c = calloc((size_t)k, sizeof *c->c);
        c->truth = calloc((size_t)k, sizeof(int));
        c->npred = calloc((size_t)k, sizeof(int));
    }
    if (!c || !c->c || !c->truth || !c->npred) {
        acv_count_calib_free(c);
        acv_error(ACV_ENOMEM, "out of memory");
        return NULL;
    }
    return c;
}

void acv_count_calib_free(acv_count_calib *c)
{
    if (!c) return;
    for (int i = 0; c->c && i < c->k; i++) {
        free(c->c[i].e);
        free(c->c[i].s);
    }
    free(c->c);
    free(c->truth);
    free(c->npred);
    free(c);
}

void acv_count_calib_reset(acv_count_calib *c)
{
    for (int i = 0; i < c->k; i++) c->c[i].n = c->c[i].ns = 0;
    c->images = 0;
}

int64_t acv_count_calib_images(const acv_count_calib *c) { return c->images; }

static int grow(void **p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap) return 0;
    size_t n = *cap ? *cap : 16;
    while (n < need) n *= 2;
    void *q = realloc(*p, n * size);
    if (!q) return acv_error(ACV_ENOMEM, "out of memory");
    *p = q;
    *cap = n;
    return 0;
}

int acv_count_calib_add(acv_count_calib *c, const acv_box *gt, int ngt, const acv_box *pred, int npred)
{
    for (int j = 0; j < ngt; j++)
        if (gt[j].cls < 0 || gt[j].cls >= c->k)
            return acv_error(ACV_EINVAL, "count calibration: gt %d has class %d (%d classes)", j, gt[j].cls, c->k);
    for (int j = 0; j < npred; j++) {
        if (pred[j].cls < 0 || pred[j].cls >= c->k)
            return acv_error(ACV_EINVAL, "count calibration: prediction %d has class %d (%d classes)", j, pred[j].cls,
                             c->k);
        if (!isfinite(pred[j].score))
            return acv_error(ACV_EINVAL, "count calibration: prediction %d has a non-finite score", j);
    }
    /* room first, so that a failure leaves c as it was */
    for (int j = 0; j < ngt; j++)
        if (!(gt[j].flags & (ACV_BOX_CROWD | ACV_BOX_DIFFICULT))) c->truth[gt[j].cls]++;
    for (int j = 0; j < npred; j++)
        if (pred[j].score >= ACV_COUNT_THR_MIN) c->npred[pred[j].cls]++;
    int rc = 0;
    for (int j = 0; j < ngt + npred && !rc; j++) {
        int k = j < ngt ? gt[j].cls : pred[j - ngt].cls;
        cls_rec *r = &c->c[k];
        if (!c->truth[k] && !c->npred[k]) continue;
        rc = grow((void **)&r->e, &r->cap, r->n + 1, sizeof *r->e);
        if (!rc) rc = grow((void **)&r->s, &r->scap, r->ns + (size_t)c->npred[k], sizeof *r->s);
    }
    for (int j = 0; j < ngt + npred; j++) {
        int k = j < ngt ? gt[j].cls : pred[j - ngt].cls;
        if (!c->truth[k] && !c->npred[k]) continue;
        if (!rc) {
            cls_rec *r = &c->c[k];
            r->e[r->n++] = (entry){c->images, c->truth[k], (int64_t)r->ns, 0};
        }
        c->truth[k] = c->npred[k] = 0; /* once per class */
    }
    if (rc) return rc;
    for (int j = 0; j < npred; j++) {
        if (!(pred[j].score >= ACV_COUNT_THR_MIN)) continue;
        cls_rec *r = &c->c[pred[j].cls];
        entry *e = &r->e[r->n - 1]; /* this image's entry is the class's last */
        r->s[e->start + e->n++] = pred[j].score;
        r->ns++;
    }
    c->images++;
    return 0;
}

static int n_thresholds(void) { return (int)lroundf((ACV_COUNT_THR_MAX - ACV_COUNT_THR_MIN) / ACV_COUNT_THR_STEP) + 1; }
static float threshold(int i) { return ACV_COUNT_THR_MIN + (float)i * ACV_COUNT_THR_STEP; }

static int count_at(const cls_rec *r, const entry *e, float t)
{
    int n = 0;
    for (int i = 0; i < e->n; i++) n += r->s[e->start + i] >= t;
    return n;
}

int acv_count_calib_best(const acv_count_calib *c, int min_images, float *thr)
{
    const int T = n_thresholds();
    int64_t *ok = malloc((size_t)T * sizeof *ok), *err = malloc((size_t)T * sizeof *err);
    if (!ok || !err) {
        free(ok);
        free(err);
        return acv_error(ACV_ENOMEM, "out of memory");
    }
    for (int k = 0; k < c->k; k++) {
        const cls_rec *r = &c->c[k];
        int holding = 0;
        for (size_t j = 0; j < r->n; j++) holding += r->e[j].truth > 0;
        if (holding < min_images) {
            thr[k] = ACV_COUNT_THR_DEFAULT;
            continue;
        }
        int best = -1;
        for (int i = 0; i < T; i++) {
            float t = threshold(i);
            ok[i] = err[i] = 0;
            for (size_t j = 0; j < r->n; j++) {
                int d = count_at(r, &r->e[j], t) - r->e[j].truth;
                ok[i] += d == 0;
                err[i] += d < 0 ? -d : d;
            }
            if (best < 0 || ok[i] > ok[best] || (ok[i] == ok[best] && err[i] < err[best]) ||
                (ok[i] == ok[best] && err[i] == err[best] && fabsf(t - 0.5f) < fabsf(threshold(best) - 0.5f)))
                best = i;
        }
        thr[k] = threshold(best);
    }
    free(ok);
    free(err);
    return 0;
}

int acv_count_calib_score(const acv_count_calib *c, const float *thr, double *exact, double *mae, double *class_mae)
{
    unsigned char *bad = c->images ? calloc((size_t)c->images, 1) : NULL;
    if (c->images && !bad) return acv_error(ACV_ENOMEM, "out of memory");
    int64_t total = 0;
    for (int k = 0; k < c->k; k++) {
        const cls_rec *r = &c->c[k];
        int64_t err = 0;
        for (size_t j = 0; j < r->n; j++) {
            int d = count_at(r, &r->e[j], thr[k]) - r->e[j].truth;
            if (d) bad[r->e[j].image] = 1;
            err += d < 0 ? -d : d;
        }
        total += err;
        if (class_mae) class_mae[k] = c->images ? (double)err / (double)c->images : 0;
    }
    int64_t n_ok = 0;
    for (int64_t i = 0; i < c->images; i++) n_ok += !bad[i];
    *exact = c->images ? (double)n_ok / (double)c->images : 1;
    *mae = c->images ? (double)total / ((double)c->images * c->k) : 0;
    free(bad);
    return 0;
}

int acv_count_calib_to_json(const acv_count_calib *c, const float *thr, json_t *metrics)
{
    double exact, mae, *cm = malloc((size_t)c->k * sizeof *cm);
    if (!cm) return acv_error(ACV_ENOMEM, "out of memory");
    int rc = acv_count_calib_score(c, thr, &exact, &mae, cm);
    json_t *ths = json_array(), *cms = json_array();
    json_t *pc = json_object_get(metrics, "per_class");
    for (int k = 0; !rc && k < c->k; k++) {
        /* the thresholds are on a 0.01 grid */
        json_array_append_new(ths, json_real(round((double)thr[k] * 100) / 100));
        json_array_append_new(cms, json_real(cm[k]));
        json_t *e = json_array_get(pc, (size_t)k);
        if (e) json_object_set_new(e, "count_mae", json_real(cm[k]));
    }
    if (!rc) {
        json_object_set_new(metrics, "count_threshold", json_null());
        json_object_set(metrics, "count_thresholds", ths);
        json_object_set_new(metrics, "count_exact", json_real(exact));
        json_object_set_new(metrics, "count_mae", json_real(mae));
        json_object_set(metrics, "count_mae_per_class", cms);
    }
    json_decref(ths);
    json_decref(cms);
    free(cm);
    return rc;
}
