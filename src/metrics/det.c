/* COCO detection metrics and counting (see det.h).
 *
 * Matching is done when an image is added: for each class in the image and each area range,
 * the image's (at most 100) detections are matched at every IoU threshold exactly as
 * COCOeval.evaluateImg does, and each detection is kept as a small record (score, rank in its
 * image, and per area range a true-positive and an ignored bit per threshold). The 1- and
 * 10-detection limits need no separate matching: matching is greedy in score order, so the
 * first n detections match the same way whatever follows them. COCOeval.accumulate then runs on
 * the records when results are asked for. */
#include "metrics/det.h"
#include "autocv/error.h"

#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DET_MAX_CLASSES 100000
#define NT 10                        /* IoU thresholds */
#define NA 4                         /* area ranges: all, small, medium, large */
#define NM 3                         /* detections per image and class: 1, 10, 100 */
#define NR ACV_DET_RECALL_POINTS
#define MAXDET 100

/* numpy.linspace(.5, .95, 10), value for value (as repr prints them: 0.9 is not among them). */
static const double IOU_THR[NT] = {0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.8999999999999999, 0.95};
static const int MAX_DETS[NM] = {1, 10, MAXDET};
/* COCOeval's closed ranges; 1e10 = 1e5 ** 2. */
static const double AREA_RNG[NA][2] = {{0, 1e10}, {0, 32 * 32}, {32 * 32, 96 * 96}, {96 * 96, 1e10}};
enum { A_ALL, A_SMALL, A_MEDIUM, A_LARGE };
enum { M_1, M_10, M_100 };
enum { T_50 = 0, T_75 = 5 };

typedef struct det_rec {
    float score;
    uint16_t tp[NA];   /* bit t: matched a non-ignored gt at IoU threshold t, in area range a */
    uint16_t ig[NA];   /* bit t: neither true nor false positive (matched an ignored gt, or
                        * unmatched and outside the area range) */
    uint8_t rank;      /* place among its image's detections of its class, by score (< MAXDET) */
} det_rec;

typedef struct det_class {
    det_rec *rec;
    size_t n, cap;
    int64_t npig[NA];  /* non-ignored gts per area range */
    int64_t gt;        /* gts neither crowd nor difficult */
    int64_t pred;      /* predictions given */
    int64_t count_err; /* sum over images of |predicted - true count| */
} det_class;

typedef struct det_res {         /* one class's results; -1 where the class has no gt */
    double ap[NA][NM];           /* mean over IoU thresholds */
    double ar[NA][NM];
    double ap50, ap75;           /* area all, 100 detections */
    double pr50[NR];
} det_res;

struct acv_det_metrics {
    int k;
    char **names;      /* (k) */
    double count_thr;
    det_class *cls;    /* (k) */
    int64_t images;
    int64_t exact_images;
    det_res *res;      /* (k) results, valid when fresh */
    bool fresh;
};

acv_det_metrics *acv_det_metrics_new(int k, const char *const *class_names)
{
    if (k < 1 || k > DET_MAX_CLASSES) {
        acv_error(ACV_EINVAL, "detection metrics: %d classes (must be 1..%d)", k, DET_MAX_CLASSES);
        return NULL;
    }
    if (class_names)
        for (int c = 0; c < k; c++)
            if (!class_names[c]) {
                acv_error(ACV_EINVAL, "detection metrics: name of class %d is NULL", c);
                return NULL;
            }
    acv_det_metrics *m = calloc(1, sizeof *m);
    if (!m) goto oom;
    m->k = k;
    m->count_thr = 0.5;
    m->names = calloc((size_t)k, sizeof *m->names);
    m->cls = calloc((size_t)k, sizeof *m->cls);
    if (!m->names || !m->cls) goto oom;
    for (int c = 0; c < k; c++) {
        char idx[16];
        snprintf(idx, sizeof idx, "%d", c);
        m->names[c] = strdup(class_names ? class_names[c] : idx);
        if (!m->names[c]) goto oom;
    }
    return m;
oom:
    acv_det_metrics_free(m);
    acv_error(ACV_ENOMEM, "detection metrics: out of memory for %d classes", k);
    return NULL;
}

void acv_det_metrics_free(acv_det_metrics *m)
{
    if (!m) return;
    for (int c = 0; c < m->k; c++) {
        if (m->names) free(m->names[c]);
        if (m->cls) free(m->cls[c].rec);
    }
    free(m->names);
    free(m->cls);
    free(m->res);
    free(m);
}

void acv_det_metrics_reset(acv_det_metrics *m)
{
    for (int c = 0; c < m->k; c++) {
        det_class *dc = &m->cls[c];
        det_rec *rec = dc->rec;
        size_t cap = dc->cap;
        memset(dc, 0, sizeof *dc);
        dc->rec = rec;
        dc->cap = cap;
    }
    m->images = m->exact_images = 0;
    m->fresh = false;
}

int acv_det_metrics_set_count_threshold(acv_det_metrics *m, double thr)
{
    if (!isfinite(thr)) return acv_error(ACV_EINVAL, "detection metrics: count threshold %g is not finite", thr);
    m->count_thr = thr;
    m->fresh = false;
    return 0;
}

int acv_det_metrics_num_classes(const acv_det_metrics *m) { return m->k; }
int64_t acv_det_metrics_images(const acv_det_metrics *m) { return m->images; }

/* ---- adding an image: COCOeval.computeIoU + evaluateImg ---- */

typedef struct det_key {
    int cls;
    int idx;
    float score;
} det_key;

static int cmp_gt_key(const void *pa, const void *pb)
{
    const det_key *a = pa, *b = pb;
    if (a->cls != b->cls) return a->cls < b->cls ? -1 : 1;
    return (a->idx > b->idx) - (a->idx < b->idx);
}

/* class, then score descending, then input order (a stable sort by score, as COCO's mergesort) */
static int cmp_pred_key(const void *pa, const void *pb)
{
    const det_key *a = pa, *b = pb;
    if (a->cls != b->cls) return a->cls < b->cls ? -1 : 1;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    return (a->idx > b->idx) - (a->idx < b->idx);
}

static double box_area(const acv_box *b) { return ((double)b->x2 - b->x1) * ((double)b->y2 - b->y1); }

/* pycocotools' bbIou, operation for operation: for a crowd gt the union is the detection's area. */
static double coco_iou(const acv_box *d, const acv_box *g, bool crowd)
{
    double da = box_area(d), ga = box_area(g);
    double w = fmin(d->x2, g->x2) - fmax(d->x1, g->x1);
    if (w <= 0) return 0;
    double h = fmin(d->y2, g->y2) - fmax(d->y1, g->y1);
    if (h <= 0) return 0;
    double i = w * h, u = crowd ? da : da + ga - i;
    return i / u;
}

static int check_box(const acv_box *b, const char *what, int i, int k)
{
    if (b->cls < 0 || b->cls >= k)
        return acv_error(ACV_EINVAL, "detection metrics: %s %d has class %d, outside [0, %d)", what, i, b->cls, k);
    if (!isfinite(b->x1) || !isfinite(b->y1) || !isfinite(b->x2) || !isfinite(b->y2))
        return acv_error(ACV_EINVAL, "detection metrics: %s %d has a non-finite coordinate", what, i);
    if (b->x2 < b->x1 || b->y2 < b->y1)
        return acv_error(ACV_EINVAL, "detection metrics: %s %d is inverted ([%g, %g, %g, %g])", what, i, b->x1,
                         b->y1, b->x2, b->y2);
    return 0;
}

/* Per-image scratch: sized for the image before anything is changed. */
typedef struct det_scratch {
    double *iou;       /* (nd, ng) for one class */
    int *ord;          /* (ng) gt positions, non-ignored first */
    bool *ign;         /* (ng) ignored, by place in ord */
    bool *gtm;         /* (ng) matched at the current threshold, by place in ord */
} det_scratch;

/* One class of one image: gts g[0..ng) and predictions p[0..np) (sorted by score) given as keys
 * into gt / pred. Appends min(np, MAXDET) records (capacity reserved by the caller). Returns
 * whether the class's count is exact. */
static bool eval_class(acv_det_metrics *m, int c, const acv_box *gt, const double *gt_area, const det_key *g,
                       int ng, const acv_box *pred, const det_key *p, int np, det_scratch *s)
{
    det_class *dc = &m->cls[c];
    const unsigned IGN = ACV_BOX_CROWD | ACV_BOX_DIFFICULT;
    int64_t tcount = 0, pcount = 0;
    for (int j = 0; j < ng; j++) tcount += !(gt[g[j].idx].flags & IGN);
    /* compared as float32, like the scores: a score written as 0.7 counts at threshold 0.7 */
    const float thr = (float)m->count_thr;
    for (int j = 0; j < np; j++) pcount += pred[p[j].idx].score >= thr;
    dc->gt += tcount;
    dc->pred += np;
    dc->count_err += tcount > pcount ? tcount - pcount : pcount - tcount;

    const int nd = np < MAXDET ? np : MAXDET;
    det_rec *r = nd ? dc->rec + dc->n : NULL; /* rec is NULL while the class has no detection */
    if (nd) memset(r, 0, (size_t)nd * sizeof *r);
    for (int d = 0; d < nd; d++) {
        r[d].score = pred[p[d].idx].score;
        r[d].rank = (uint8_t)d;
    }
    dc->n += (size_t)nd;
    for (int d = 0; d < nd; d++)
        for (int j = 0; j < ng; j++) {
            const acv_box *gb = &gt[g[j].idx];
            s->iou[(size_t)d * (size_t)ng + (size_t)j] = coco_iou(&pred[p[d].idx], gb, gb->flags & ACV_BOX_CROWD);
        }

    for (int a = 0; a < NA; a++) {
        const double lo = AREA_RNG[a][0], hi = AREA_RNG[a][1];
        int nord = 0;
        for (int pass = 0; pass < 2; pass++) /* non-ignored first, each part in input order */
            for (int j = 0; j < ng; j++) {
                const acv_box *gb = &gt[g[j].idx];
                double area = gt_area ? gt_area[g[j].idx] : box_area(gb);
                bool ig = (gb->flags & IGN) || area < lo || area > hi;
                if (ig != (pass == 1)) continue;
                s->ign[nord] = ig;
                s->ord[nord++] = j;
                dc->npig[a] += !ig;
            }
        for (int t = 0; t < NT; t++) {
            const uint16_t bit = (uint16_t)(1u << t);
            memset(s->gtm, 0, (size_t)ng * sizeof *s->gtm);
            for (int d = 0; d < nd; d++) {
                double best_iou = IOU_THR[t];
                int best = -1;
                for (int q = 0; q < ng; q++) {
                    const int j = s->ord[q];
                    if (s->gtm[q] && !(gt[g[j].idx].flags & ACV_BOX_CROWD)) continue;
                    if (best > -1 && !s->ign[best] && s->ign[q]) break;
                    const double v = s->iou[(size_t)d * (size_t)ng + (size_t)j];
                    if (v < best_iou) continue;
                    best_iou = v;
                    best = q;
                }
                if (best >= 0) {
                    s->gtm[best] = true;
                    if (s->ign[best]) r[d].ig[a] |= bit;
                    else r[d].tp[a] |= bit;
                } else {
                    double da = box_area(&pred[p[d].idx]);
                    if (da < lo || da > hi) r[d].ig[a] |= bit;
                }
            }
        }
    }
    return tcount == pcount;
}

int acv_det_metrics_add_image(acv_det_metrics *m, const acv_box *gt, int ngt, const acv_box *pred, int npred)
{
    return acv_det_metrics_add_image_areas(m, gt, NULL, ngt, pred, npred);
}

int acv_det_metrics_add_image_areas(acv_det_metrics *m, const acv_box *gt, const double *gt_area, int ngt,
                                    const acv_box *pred, int npred)
{
    if (ngt < 0 || npred < 0)
        return acv_error(ACV_EINVAL, "detection metrics: negative box count (%d gt, %d predictions)", ngt, npred);
    if ((ngt && !gt) || (npred && !pred))
        return acv_error(ACV_EINVAL, "detection metrics: NULL boxes");
    for (int i = 0; i < ngt; i++) {
        int rc = check_box(&gt[i], "gt", i, m->k);
        if (rc) return rc;
        if (gt_area && !(isfinite(gt_area[i]) && gt_area[i] >= 0))
            return acv_error(ACV_EINVAL, "detection metrics: gt %d has area %g (must be finite and >= 0)", i,
                             gt_area[i]);
    }
    for (int i = 0; i < npred; i++) {
        int rc = check_box(&pred[i], "prediction", i, m->k);
        if (rc) return rc;
        if (!isfinite(pred[i].score))
            return acv_error(ACV_EINVAL, "detection metrics: prediction %d has a non-finite score", i);
    }

    int rc = ACV_ENOMEM;
    const int ndmax = npred < MAXDET ? npred : MAXDET;
    det_key *gk = malloc(((size_t)ngt + (size_t)npred + 1) * sizeof *gk);
    det_key *pk = gk ? gk + ngt : NULL;
    det_scratch s = {
        .iou = malloc(((size_t)ndmax * (size_t)ngt + 1) * sizeof *s.iou),
        .ord = malloc(((size_t)ngt + 1) * sizeof *s.ord),
        .ign = malloc(((size_t)ngt + 1) * sizeof *s.ign),
        .gtm = malloc(((size_t)ngt + 1) * sizeof *s.gtm),
    };
    if (!gk || !s.iou || !s.ord || !s.ign || !s.gtm) goto done;
    for (int i = 0; i < ngt; i++) gk[i] = (det_key){gt[i].cls, i, 0};
    for (int i = 0; i < npred; i++) pk[i] = (det_key){pred[i].cls, i, pred[i].score};
    qsort(gk, (size_t)ngt, sizeof *gk, cmp_gt_key);
    qsort(pk, (size_t)npred, sizeof *pk, cmp_pred_key);
    /* reserve every class's records first, so that a failure leaves m unchanged */
    for (int b = 0; b < npred;) {
        int e = b;
        while (e < npred && pk[e].cls == pk[b].cls) e++;
        det_class *dc = &m->cls[pk[b].cls];
        size_t need = dc->n + (size_t)(e - b < MAXDET ? e - b : MAXDET);
        if (need > dc->cap) {
            size_t cap = dc->cap ? dc->cap : 64;
            while (cap < need) cap *= 2;
            det_rec *nr = realloc(dc->rec, cap * sizeof *nr);
            if (!nr) goto done;
            dc->rec = nr;
            dc->cap = cap;
        }
        b = e;
    }
    bool exact = true;
    for (int a = 0, b = 0; a < ngt || b < npred;) {
        int c = a < ngt ? gk[a].cls : m->k;
        if (b < npred && pk[b].cls < c) c = pk[b].cls;
        int ga = a, pb = b;
        while (a < ngt && gk[a].cls == c) a++;
        while (b < npred && pk[b].cls == c) b++;
        exact &= eval_class(m, c, gt, gt_area, gk + ga, a - ga, pred, pk + pb, b - pb, &s);
    }
    m->images++;
    m->exact_images += exact;
    m->fresh = false;
    rc = 0;
done:
    free(gk);
    free(s.iou);
    free(s.ord);
    free(s.ign);
    free(s.gtm);
    if (rc) acv_error(rc, "detection metrics: out of memory adding an image of %d gt and %d predictions", ngt, npred);
    return rc;
}

/* ---- results: COCOeval.accumulate ---- */

typedef struct det_rank {
    float score;
    uint32_t i;
} det_rank;

static int cmp_rank(const void *pa, const void *pb)
{
    const det_rank *a = pa, *b = pb;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    return (a->i > b->i) - (a->i < b->i);
}

/* One class: every detection ranked by score (stable: records are in image order), then per
 * area range, detection limit and threshold the cumulative precision / recall, made monotone
 * and sampled at the recall points. rank, rc, pr have room for dc->n entries. */
static void accumulate_class(const det_class *dc, det_res *res, det_rank *rank, double *rc, double *pr)
{
    for (size_t j = 0; j < dc->n; j++) rank[j] = (det_rank){dc->rec[j].score, (uint32_t)j};
    qsort(rank, dc->n, sizeof *rank, cmp_rank);
    res->ap50 = res->ap75 = -1;
    for (int r = 0; r < NR; r++) res->pr50[r] = -1;
    for (int a = 0; a < NA; a++)
        for (int mi = 0; mi < NM; mi++) {
            res->ap[a][mi] = res->ar[a][mi] = -1;
            if (dc->npig[a] == 0) continue;
            const double npig = (double)dc->npig[a];
            double ap_sum = 0, ar_sum = 0;
            for (int t = 0; t < NT; t++) {
                const uint16_t bit = (uint16_t)(1u << t);
                size_t nd = 0;
                double tp = 0, fp = 0;
                for (size_t j = 0; j < dc->n; j++) {
                    const det_rec *d = &dc->rec[rank[j].i];
                    if (d->rank >= MAX_DETS[mi]) continue;
                    if (!(d->ig[a] & bit)) {
                        if (d->tp[a] & bit) tp += 1;
                        else fp += 1;
                    }
                    rc[nd] = tp / npig;
                    pr[nd] = tp / (fp + tp + DBL_EPSILON); /* numpy: tp / (fp + tp + np.spacing(1)) */
                    nd++;
                }
                ar_sum += nd ? rc[nd - 1] : 0;
                for (size_t j = nd; j-- > 1;)
                    if (pr[j] > pr[j - 1]) pr[j - 1] = pr[j];
                double q_sum = 0;
                size_t j = 0;
                for (int r = 0; r < NR; r++) {
                    const double rthr = r == NR - 1 ? 1.0 : (double)r * 0.01; /* numpy.linspace(0, 1, 101) */
                    while (j < nd && rc[j] < rthr) j++;                      /* searchsorted, side left */
                    const double q = j < nd ? pr[j] : 0;
                    q_sum += q;
                    if (a == A_ALL && mi == M_100 && t == T_50) res->pr50[r] = q;
                }
                const double ap = q_sum / NR;
                if (a == A_ALL && mi == M_100 && t == T_50) res->ap50 = ap;
                if (a == A_ALL && mi == M_100 && t == T_75) res->ap75 = ap;
                ap_sum += ap;
            }
            res->ap[a][mi] = ap_sum / NT;
            res->ar[a][mi] = ar_sum / NT;
        }
}

static int compute(acv_det_metrics *m)
{
    if (m->fresh) return 0;
    size_t nmax = 1;
    for (int c = 0; c < m->k; c++)
        if (m->cls[c].n > nmax) nmax = m->cls[c].n;
    if (!m->res) m->res = malloc((size_t)m->k * sizeof *m->res);
    det_rank *rank = malloc(nmax * sizeof *rank);
    double *rc = malloc(nmax * sizeof *rc), *pr = malloc(nmax * sizeof *pr);
    int rc_ = 0;
    if (!m->res || !rank || !rc || !pr) {
        rc_ = acv_error(ACV_ENOMEM, "detection metrics: out of memory ranking %zu detections", nmax);
    } else {
        for (int c = 0; c < m->k; c++) accumulate_class(&m->cls[c], &m->res[c], rank, rc, pr);
        m->fresh = true;
    }
    free(rank);
    free(rc);
    free(pr);
    return rc_;
}

enum { F_AP, F_AR, F_AP50, F_AP75 };

/* Mean over the classes with a figure (>= 0) of one figure at area range a and detection limit
 * mi; -1 when no class has it (COCOeval.summarize: np.mean(s[s > -1])). */
static double class_mean(const acv_det_metrics *m, int field, int a, int mi)
{
    double sum = 0;
    int n = 0;
    for (int c = 0; c < m->k; c++) {
        const det_res *r = &m->res[c];
        double v = field == F_AP ? r->ap[a][mi] : field == F_AR ? r->ar[a][mi] : field == F_AP50 ? r->ap50 : r->ap75;
        if (v < 0) continue;
        sum += v;
        n++;
    }
    return n ? sum / n : -1.0;
}

int acv_det_metrics_summary(acv_det_metrics *m, acv_det_summary *out)
{
    int rc = compute(m);
    if (rc) return rc;
    *out = (acv_det_summary){0};
    out->map50_95 = class_mean(m, F_AP, A_ALL, M_100);
    out->map50 = class_mean(m, F_AP50, A_ALL, M_100);
    out->map75 = class_mean(m, F_AP75, A_ALL, M_100);
    out->map_small = class_mean(m, F_AP, A_SMALL, M_100);
    out->map_medium = class_mean(m, F_AP, A_MEDIUM, M_100);
    out->map_large = class_mean(m, F_AP, A_LARGE, M_100);
    out->ar1 = class_mean(m, F_AR, A_ALL, M_1);
    out->ar10 = class_mean(m, F_AR, A_ALL, M_10);
    out->ar100 = class_mean(m, F_AR, A_ALL, M_100);
    out->ar_small = class_mean(m, F_AR, A_SMALL, M_100);
    out->ar_medium = class_mean(m, F_AR, A_MEDIUM, M_100);
    out->ar_large = class_mean(m, F_AR, A_LARGE, M_100);
    out->images = m->images;
    if (m->images) {
        int64_t err = 0;
        for (int c = 0; c < m->k; c++) err += m->cls[c].count_err;
        out->count_mae = (double)err / ((double)m->images * m->k);
        out->count_exact = (double)m->exact_images / (double)m->images;
    } else {
        out->count_mae = out->count_exact = -1;
    }
    return 0;
}

int acv_det_metrics_class(acv_det_metrics *m, int c, acv_det_class_stats *out)
{
    ACV_ASSERT(c >= 0 && c < m->k);
    int rc = compute(m);
    if (rc) return rc;
    const det_res *r = &m->res[c];
    const det_class *dc = &m->cls[c];
    *out = (acv_det_class_stats){
        .ap = r->ap[A_ALL][M_100], .ap50 = r->ap50, .ap75 = r->ap75, .ar100 = r->ar[A_ALL][M_100],
        .count_mae = m->images ? (double)dc->count_err / (double)m->images : -1,
        .gt = dc->gt, .pred = dc->pred,
    };
    return 0;
}

int acv_det_metrics_pr_curve(acv_det_metrics *m, int c, double *pr)
{
    ACV_ASSERT(c >= 0 && c < m->k);
    int rc = compute(m);
    if (rc) return rc;
    memcpy(pr, m->res[c].pr50, sizeof m->res[c].pr50);
    return 0;
}

/* ---- JSON ---- */

/* A figure, or null when undefined (< 0). */
static json_t *num(double v) { return v < 0 ? json_null() : json_real(v); }

/* json_object_set_new that reports failure (NULL value or allocation) as -1. */
static int put(json_t *obj, const char *key, json_t *v)
{
    return v && json_object_set_new(obj, key, v) == 0 ? 0 : -1;
}

/* json_array_append_new with the same convention. */
static int push(json_t *arr, json_t *v)
{
    return v && json_array_append_new(arr, v) == 0 ? 0 : -1;
}

int acv_det_metrics_to_json(acv_det_metrics *m, json_t **out)
{
    *out = NULL;
    acv_det_summary s;
    int rc = acv_det_metrics_summary(m, &s);
    if (rc) return rc;
    for (int c = 0; c < m->k; c++) {
        json_t *nm = json_string(m->names[c]);
        if (!nm) return acv_error(ACV_EINVAL, "detection metrics: name of class %d is not valid UTF-8", c);
        json_decref(nm);
    }
    json_t *root = json_object();
    json_t *per = json_array(), *mae = json_array(), *curves = json_array();
    int bad = !root || !per || !mae || !curves;
    bad = bad || put(root, "images", json_integer(s.images));
    bad = bad || put(root, "map50_95", num(s.map50_95));
    bad = bad || put(root, "map50", num(s.map50));
    bad = bad || put(root, "map75", num(s.map75));
    bad = bad || put(root, "map_small", num(s.map_small));
    bad = bad || put(root, "map_medium", num(s.map_medium));
    bad = bad || put(root, "map_large", num(s.map_large));
    bad = bad || put(root, "ar1", num(s.ar1));
    bad = bad || put(root, "ar10", num(s.ar10));
    bad = bad || put(root, "ar100", num(s.ar100));
    bad = bad || put(root, "ar_small", num(s.ar_small));
    bad = bad || put(root, "ar_medium", num(s.ar_medium));
    bad = bad || put(root, "ar_large", num(s.ar_large));
    bad = bad || put(root, "count_threshold", json_real(m->count_thr));
    bad = bad || put(root, "count_mae", num(s.count_mae));
    bad = bad || put(root, "count_exact", num(s.count_exact));
    for (int c = 0; c < m->k && !bad; c++) {
        acv_det_class_stats cs;
        acv_det_metrics_class(m, c, &cs); /* cannot fail: computed above */
        json_t *o = json_object();
        bad = push(per, o) || put(o, "name", json_string(m->names[c])) || put(o, "ap", num(cs.ap)) ||
              put(o, "ap50", num(cs.ap50)) || put(o, "ap75", num(cs.ap75)) || put(o, "ar100", num(cs.ar100)) ||
              put(o, "gt", json_integer(cs.gt)) || put(o, "pred", json_integer(cs.pred)) ||
              put(o, "count_mae", num(cs.count_mae)) || push(mae, num(cs.count_mae));
        if (bad) break;
        json_t *cv = json_object(), *prs = NULL;
        bad = push(curves, cv) || put(cv, "name", json_string(m->names[c])) || put(cv, "iou", json_real(0.5));
        if (bad) break;
        const det_res *r = &m->res[c];
        if (r->pr50[0] < 0) {
            bad = put(cv, "precision", json_null());
        } else {
            prs = json_array();
            bad = put(cv, "precision", prs);
            for (int i = 0; i < NR && !bad; i++) bad = push(prs, json_real(r->pr50[i]));
        }
    }
    /* the arrays are attached last, so that one failed attach never leaks the others */
    if (!bad) { bad = put(root, "count_mae_per_class", mae); mae = NULL; }
    if (!bad) { bad = put(root, "per_class", per); per = NULL; }
    if (!bad) { bad = put(root, "pr_curves", curves); curves = NULL; }
    if (bad) {
        json_decref(root); json_decref(per); json_decref(mae); json_decref(curves);
        return acv_error(ACV_ENOMEM, "detection metrics: out of memory building JSON");
    }
    *out = root;
    return 0;
}
