/* The detector's training loss (see det.h): the task-aligned assigner, then BCE
 * classification, CIoU box and distribution focal losses, with their exact gradients with
 * respect to the network's output, all in double precision on the host.
 *
 * Layout reminder: out is (n, 4R + K, A); image b, channel ch, anchor a is at
 * out[(b * C + ch) * A + a] with C = 4R + K; side s bin k is channel s * R + k. Anchor
 * points are kept in pixels; the box and DFL losses work in stride units (grid cells), as
 * YOLOv8 does, the assigner in pixels. */
#include "tasks/det.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "autocv/error.h"

#define CIOU_EPS 1e-7
#define IN_GT_EPS 1e-9   /* an anchor centre must lie this far inside a box (Ultralytics) */
#define NORM_EPS 1e-9    /* alignment normalisation */

struct acv_det_loss {
    acv_det_loss_opts o;
    int K, R, A, C, max_batch;
    int n_levels, strides[ACV_DET_MAX_LEVELS], level_h[ACV_DET_MAX_LEVELS], level_w[ACV_DET_MAX_LEVELS];
    int level_start[ACV_DET_MAX_LEVELS];
    float *points;           /* (A, 2) anchor centres, pixels */
    float *astride;          /* (A) */
    /* the assignment, (max_batch, A) */
    int n;                   /* images of the last assignment */
    int *gt, *cls;
    float *score, *iou, *metric, *box;
    acv_det_targets view;
    /* scratch */
    float *pbox;             /* (A, 4) decoded predictions of one image, pixels, decoded when */
    unsigned *pbox_at;       /* (A) pbox_gen: an anchor is first a candidate (most never are) */
    unsigned pbox_gen;       /* the image being assigned (0: none yet) */
    double *gt_best;         /* (2 * gt_cap): per box, best metric and best IoU of its anchors */
    int *gt_first;           /* (2 * gt_cap): per box, its best candidate anchor (-1: none) and
                                how many anchors it finally holds */
    double *gt_first_m;      /* (2 * gt_cap): that candidate's metric and IoU */
    int *topk_idx;           /* (topk) */
    double *topk_m, *topk_o;
    int gt_cap;
    double *cw;              /* (K) per-class weights of the last evaluation */
};

void acv_det_loss_opts_init(acv_det_loss_opts *o)
{
    o->topk = 10;
    o->alpha = 0.5f;
    o->beta = 6.0f;
    o->w_box = 7.5f;
    o->w_cls = 0.5f;
    o->w_dfl = 1.5f;
    o->scale_by_batch = true;
    o->center_fallback = true;
    o->min_target = 0.25f;
    o->keep_one = true;
    o->small_first = 0.25f;
    o->grow = 1.0f;
    o->balance = 10.0f;
}

void acv_det_loss_free(acv_det_loss *L)
{
    if (!L) return;
    free(L->points);
    free(L->astride);
    free(L->gt);
    free(L->cls);
    free(L->score);
    free(L->iou);
    free(L->metric);
    free(L->box);
    free(L->pbox);
    free(L->pbox_at);
    free(L->gt_best);
    free(L->gt_first);
    free(L->gt_first_m);
    free(L->topk_idx);
    free(L->topk_m);
    free(L->cw);
    free(L->topk_o);
    free(L);
}

int acv_det_loss_new(const acv_det_net *net, int max_batch, const acv_det_loss_opts *opts, acv_det_loss **out)
{
    *out = NULL;
    if (max_batch < 1) return acv_error(ACV_EINVAL, "detection loss: batch %d", max_batch);
    if (net->n_classes < 1 || net->reg_max < 2 || net->reg_max > 64)
        return acv_error(ACV_EINVAL, "detection loss: %d classes, %d bins", net->n_classes, net->reg_max);
    acv_det_loss *L = calloc(1, sizeof *L);
    if (!L) return acv_error(ACV_ENOMEM, "out of memory");
    if (opts) L->o = *opts;
    else acv_det_loss_opts_init(&L->o);
    if (L->o.topk < 1) {
        acv_det_loss_free(L);
        return acv_error(ACV_EINVAL, "detection loss: topk %d must be >= 1", L->o.topk);
    }
    if (!(L->o.min_target >= 0 && L->o.min_target <= 1)) {
        acv_det_loss_free(L);
        return acv_error(ACV_EINVAL, "detection loss: min_target %g must be in [0, 1]", (double)L->o.min_target);
    }
    L->K = net->n_classes;
    L->R = net->reg_max;
    L->C = 4 * L->R + L->K;
    L->max_batch = max_batch;
    L->n_levels = net->n_levels;
    int start = 0;
    for (int l = 0; l < L->n_levels; l++) {
        L->strides[l] = net->strides[l];
        L->level_h[l] = net->level_h[l];
        L->level_w[l] = net->level_w[l];
        L->level_start[l] = start;
        start += net->level_h[l] * net->level_w[l];
    }
    int A = acv_det_anchors(net->imgsz_h, net->imgsz_w, net->strides, L->n_levels, &L->points, &L->astride);
    if (A < 0) {
        acv_det_loss_free(L);
        return A;
    }
    if (A != net->n_anchors || A != start) {
        acv_det_loss_free(L);
        return acv_error(ACV_EINVAL, "detection loss: %d anchors, the network has %d", A, net->n_anchors);
    }
    L->A = A;
    size_t nA = (size_t)max_batch * A;
    L->gt = malloc(nA * sizeof(int));
    L->cls = malloc(nA * sizeof(int));
    L->score = malloc(nA * sizeof(float));
    L->iou = malloc(nA * sizeof(float));
    L->metric = malloc(nA * sizeof(float));
    L->box = malloc(nA * 4 * sizeof(float));
    L->pbox = malloc((size_t)A * 4 * sizeof(float));
    L->pbox_at = calloc((size_t)A, sizeof(unsigned));
    L->topk_idx = malloc((size_t)L->o.topk * sizeof(int));
    L->topk_m = malloc((size_t)L->o.topk * sizeof(double));
    L->topk_o = malloc((size_t)L->o.topk * sizeof(double));
    L->cw = malloc((size_t)L->K * sizeof(double));
    if (!L->gt || !L->cls || !L->score || !L->iou || !L->metric || !L->box || !L->pbox || !L->pbox_at || !L->topk_idx ||
        !L->topk_m || !L->topk_o || !L->cw) {
        acv_det_loss_free(L);
        return acv_error(ACV_ENOMEM, "out of memory for the detection loss (batch %d, %d anchors)", max_batch, A);
    }
    L->view = (acv_det_targets){0, A, L->gt, L->cls, L->score, L->iou, L->box};
    *out = L;
    return 0;
}

const acv_det_targets *acv_det_loss_targets(const acv_det_loss *L) { return &L->view; }

/* ---- pieces ------------------------------------------------------------------------------ */

double acv_det_ciou(const double a[4], const double b[4], double d[4])
{
    const double eps = CIOU_EPS, k = 4.0 / (M_PI * M_PI);
    double w1 = a[2] - a[0], h1 = a[3] - a[1] + eps, w2 = b[2] - b[0], h2 = b[3] - b[1] + eps;
    double iw = fmin(a[2], b[2]) - fmax(a[0], b[0]), ih = fmin(a[3], b[3]) - fmax(a[1], b[1]);
    double iwc = iw > 0 ? iw : 0, ihc = ih > 0 ? ih : 0;
    double inter = iwc * ihc;
    double uni = w1 * h1 + w2 * h2 - inter + eps;
    double iou = inter / uni;
    double cw = fmax(a[2], b[2]) - fmin(a[0], b[0]), ch = fmax(a[3], b[3]) - fmin(a[1], b[1]);
    double c2 = cw * cw + ch * ch + eps;
    double dx = b[0] + b[2] - a[0] - a[2], dy = b[1] + b[3] - a[1] - a[3];
    double rho2 = (dx * dx + dy * dy) / 4;
    double dth = atan(w2 / h2) - atan(w1 / h1);
    double v = k * dth * dth;
    double al = v / (v - iou + 1 + eps);
    double ciou = iou - (rho2 / c2 + v * al);
    if (!d) return ciou;
    /* v * al = v^2 / D with D = v - iou + 1 + eps: d(v al) = (2 al - al^2) dv + al^2 diou */
    double g_iou = 1 - al * al, g_v = -(2 * al - al * al);
    double g_rho2 = -1 / c2, g_c2 = rho2 / (c2 * c2);
    double g_inter = g_iou * (uni + inter) / (uni * uni), g_area1 = -g_iou * inter / (uni * uni);
    double g_w1 = g_area1 * h1, g_h1 = g_area1 * w1;
    double g_th1 = g_v * (-2 * k * dth), q = w1 * w1 + h1 * h1; /* d atan(w/h) = (h dw - w dh) / q */
    g_w1 += g_th1 * h1 / q;
    g_h1 -= g_th1 * w1 / q;
    d[0] = d[1] = d[2] = d[3] = 0;
    if (iw > 0 && ih > 0) {
        double g_iw = g_inter * ihc, g_ih = g_inter * iwc;
        if (a[2] < b[2]) d[2] += g_iw;
        if (a[0] > b[0]) d[0] -= g_iw;
        if (a[3] < b[3]) d[3] += g_ih;
        if (a[1] > b[1]) d[1] -= g_ih;
    }
    double g_cw = g_c2 * 2 * cw, g_ch = g_c2 * 2 * ch;
    if (a[2] > b[2]) d[2] += g_cw;
    if (a[0] < b[0]) d[0] -= g_cw;
    if (a[3] > b[3]) d[3] += g_ch;
    if (a[1] < b[1]) d[1] -= g_ch;
    d[0] -= g_rho2 * dx / 2;
    d[2] -= g_rho2 * dx / 2;
    d[1] -= g_rho2 * dy / 2;
    d[3] -= g_rho2 * dy / 2;
    d[2] += g_w1;
    d[0] -= g_w1;
    d[3] += g_h1;
    d[1] -= g_h1;
    return ciou;
}

/* Softmax of r logits read with stride `step` into p; returns the log-sum-exp. */
static double softmax_strided(const float *z, int r, int64_t step, double *p)
{
    double mx = z[0];
    for (int k = 1; k < r; k++)
        if (z[k * step] > mx) mx = z[k * step];
    double s = 0;
    for (int k = 0; k < r; k++) s += p[k] = exp((double)z[k * step] - mx);
    for (int k = 0; k < r; k++) p[k] /= s;
    return mx + log(s);
}

/* DFL of one side whose logits are z[k * step]; dz (r) gets d/dz when not NULL. */
static double dfl_strided(const float *z, int r, int64_t step, double d, double *dz)
{
    double p[64];
    double lse = softmax_strided(z, r, step, p);
    int il = (int)floor(d);
    if (il < 0) il = 0;
    if (il > r - 2) il = r - 2;
    double wl = il + 1 - d, wr = 1 - wl;
    double loss = (lse - z[il * step]) * wl + (lse - z[(il + 1) * step]) * wr;
    if (dz) {
        for (int k = 0; k < r; k++) dz[k] = p[k];
        dz[il] -= wl;
        dz[il + 1] -= wr;
    }
    return loss;
}

double acv_det_dfl(const float *z, int r, double d, double *dz)
{
    if (r < 2 || r > 64) return NAN;
    return dfl_strided(z, r, 1, d, dz);
}

/* Expected distance (strides) of each side of anchor a from its bins; p (4 x R) gets the
 * softmaxes when not NULL. o points at the image's output (C, A). */
static void expect_sides(const acv_det_loss *L, const float *o, int a, double e[4], double *p)
{
    double tmp[64];
    for (int s = 0; s < 4; s++) {
        double *ps = p ? p + s * L->R : tmp;
        softmax_strided(o + (int64_t)s * L->R * L->A + a, L->R, L->A, ps);
        double E = 0;
        for (int k = 0; k < L->R; k++) E += k * ps[k];
        e[s] = E;
    }
}

static double sigmoid(double x) { return x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x)); }

/* Anchor a's predicted box (pixels) in the image being assigned, decoded from its bins on
 * first use (o: that image's output). */
static const float *pred_box(acv_det_loss *L, const float *o, int a)
{
    float *pb = L->pbox + 4 * (size_t)a;
    if (L->pbox_at[a] != L->pbox_gen) {
        double e[4];
        expect_sides(L, o, a, e, NULL);
        float s = L->astride[a], px = L->points[2 * a], py = L->points[2 * a + 1];
        pb[0] = px - (float)e[0] * s;
        pb[1] = py - (float)e[1] * s;
        pb[2] = px + (float)e[2] * s;
        pb[3] = py + (float)e[3] * s;
        L->pbox_at[a] = L->pbox_gen;
    }
    return pb;
}

/* ---- the assigner ------------------------------------------------------------------------ */

static bool gt_usable(const acv_box *b) { return !(b->flags & ACV_BOX_CROWD) && b->x2 > b->x1 && b->y2 > b->y1; }

/* Offers anchor a with metric m and IoU ov to box j's top-k list (kept sorted, best first;
 * ties keep the earlier anchor). */
static void topk_offer(acv_det_loss *L, int *cnt, int a, double m, double ov)
{
    int k = L->o.topk, c = *cnt;
    if (c == k && !(m > L->topk_m[k - 1])) return;
    int i = c < k ? c : k - 1;
    while (i > 0 && m > L->topk_m[i - 1]) {
        L->topk_m[i] = L->topk_m[i - 1];
        L->topk_o[i] = L->topk_o[i - 1];
        L->topk_idx[i] = L->topk_idx[i - 1];
        i--;
    }
    L->topk_m[i] = m;
    L->topk_o[i] = ov;
    L->topk_idx[i] = a;
    if (c < k) *cnt = c + 1;
}

/* A cell coordinate clamped to 0..n-1 (before the conversion to int can overflow). */
static int cell_clamp(double v, int n) { return v < 0 ? 0 : v > n - 1 ? n - 1 : (int)v; }

/* Anchor a of image b now predicts box j (g) with metric m and IoU ov. */
static void take_anchor(acv_det_loss *L, int b, int a, int j, const acv_box *g, double m, double ov)
{
    size_t i = (size_t)b * L->A + a;
    L->gt[i] = j;
    L->cls[i] = g->cls;
    L->iou[i] = (float)ov;
    L->metric[i] = (float)m;
    L->box[4 * i] = g->x1;
    L->box[4 * i + 1] = g->y1;
    L->box[4 * i + 2] = g->x2;
    L->box[4 * i + 3] = g->y2;
}

/* Assigns image b's boxes (already checked) given its output o (C, A). */
static void assign_image(acv_det_loss *L, int b, const float *o, const acv_box *gts, int n_gt)
{
    const int A = L->A;
    int *gt = L->gt + (size_t)b * A, *cls = L->cls + (size_t)b * A;
    float *score = L->score + (size_t)b * A, *iou = L->iou + (size_t)b * A, *met = L->metric + (size_t)b * A;
    float *box = L->box + (size_t)b * A * 4;
    for (int a = 0; a < A; a++) {
        gt[a] = cls[a] = -1;
        score[a] = iou[a] = met[a] = 0;
        box[4 * a] = box[4 * a + 1] = box[4 * a + 2] = box[4 * a + 3] = 0;
    }
    if (n_gt == 0) return;
    /* a new image: no prediction decoded yet (the stamps start over when the count wraps) */
    if (++L->pbox_gen == 0) {
        memset(L->pbox_at, 0, (size_t)A * sizeof(unsigned));
        L->pbox_gen = 1;
    }
    const float *logits = o + (int64_t)4 * L->R * A;
    for (int j = 0; j < n_gt; j++) {
        const acv_box *g = &gts[j];
        if (!gt_usable(g)) continue;
        double gb[4] = {g->x1, g->y1, g->x2, g->y2};
        const float *lg = logits + (int64_t)g->cls * A;
        int cnt = 0;
        for (int l = 0; l < L->n_levels; l++) {
            int s = L->strides[l], W = L->level_w[l], H = L->level_h[l];
            /* the candidate region: the box, grown about its centre to at least grow strides */
            double cb[4] = {gb[0], gb[1], gb[2], gb[3]}, gm = L->o.grow * s;
            if (cb[2] - cb[0] < gm) {
                double c = (cb[0] + cb[2]) / 2;
                cb[0] = c - gm / 2;
                cb[2] = c + gm / 2;
            }
            if (cb[3] - cb[1] < gm) {
                double c = (cb[1] + cb[3]) / 2;
                cb[1] = c - gm / 2;
                cb[3] = c + gm / 2;
            }
            /* cells whose centre (x + 0.5) s may lie strictly inside it */
            int x0 = cell_clamp(floor(cb[0] / s - 0.5) - 1, W), x1 = cell_clamp(ceil(cb[2] / s - 0.5) + 1, W);
            int y0 = cell_clamp(floor(cb[1] / s - 0.5) - 1, H), y1 = cell_clamp(ceil(cb[3] / s - 0.5) + 1, H);
            for (int y = y0; y <= y1; y++)
                for (int x = x0; x <= x1; x++) {
                    int a = L->level_start[l] + y * W + x;
                    double px = L->points[2 * a], py = L->points[2 * a + 1];
                    double dmin = fmin(fmin(px - cb[0], py - cb[1]), fmin(cb[2] - px, cb[3] - py));
                    if (!(dmin > IN_GT_EPS)) continue;
                    const float *pf = pred_box(L, o, a);
                    double pb[4] = {pf[0], pf[1], pf[2], pf[3]};
                    double ov = acv_det_ciou(gb, pb, NULL); /* Ultralytics: bbox_iou(gt, pred) */
                    if (!(ov > 0)) ov = 0;
                    double m = pow(sigmoid(lg[a]), L->o.alpha) * pow(ov, L->o.beta);
                    topk_offer(L, &cnt, a, m, ov);
                }
        }
        if (cnt == 0 && L->o.center_fallback) {
            /* no centre inside: the finest level's cell holding the box's centre */
            int s = L->strides[0], W = L->level_w[0], H = L->level_h[0];
            int x = cell_clamp(floor(((double)g->x1 + g->x2) / 2 / s), W);
            int y = cell_clamp(floor(((double)g->y1 + g->y2) / 2 / s), H);
            int a = L->level_start[0] + y * W + x;
            const float *pf = pred_box(L, o, a);
            double pb[4] = {pf[0], pf[1], pf[2], pf[3]};
            double ov = acv_det_ciou(gb, pb, NULL);
            if (!(ov > 0)) ov = 0;
            topk_offer(L, &cnt, a, pow(sigmoid(lg[a]), L->o.alpha) * pow(ov, L->o.beta), ov);
        }
        L->gt_first[2 * j] = cnt > 0 ? L->topk_idx[0] : -1;
        L->gt_first_m[2 * j] = cnt > 0 ? L->topk_m[0] : 0;
        L->gt_first_m[2 * j + 1] = cnt > 0 ? L->topk_o[0] : 0;
        /* an anchor several boxes keep goes to the one its prediction overlaps most (ties:
         * the earlier box) */
        double area_j = ((double)g->x2 - g->x1) * ((double)g->y2 - g->y1);
        for (int i = 0; i < cnt; i++) {
            int a = L->topk_idx[i];
            if (gt[a] >= 0) {
                const acv_box *h = &gts[gt[a]];
                double area_k = ((double)h->x2 - h->x1) * ((double)h->y2 - h->y1);
                double sf = L->o.small_first;
                if (sf > 0 && area_k <= sf * area_j) continue;          /* the held box is much smaller */
                if (!(sf > 0 && area_j <= sf * area_k) && !(L->topk_o[i] > iou[a])) continue;
            }
            take_anchor(L, b, a, j, g, L->topk_m[i], L->topk_o[i]);
        }
    }
    if (L->o.keep_one) {
        /* A box that lost every candidate to larger boxes around it (a defect on a part: its
         * one anchor also lies inside the part, whose untrained prediction overlaps the part
         * more) takes back its best candidate from a box that holds others, so that it is
         * learned at all; once its anchor predicts its small box, the IoU rule keeps it. */
        for (int j = 0; j < n_gt; j++) L->gt_first[2 * j + 1] = 0;
        for (int a = 0; a < A; a++)
            if (gt[a] >= 0) L->gt_first[2 * gt[a] + 1]++;
        for (int j = 0; j < n_gt; j++) {
            int a = gt_usable(&gts[j]) ? L->gt_first[2 * j] : -1;
            if (a < 0 || L->gt_first[2 * j + 1] > 0) continue;
            int k = gt[a];
            if (k >= 0 && L->gt_first[2 * k + 1] < 2) continue;
            if (k >= 0) L->gt_first[2 * k + 1]--;
            L->gt_first[2 * j + 1]++;
            take_anchor(L, b, a, j, &gts[j], L->gt_first_m[2 * j], L->gt_first_m[2 * j + 1]);
        }
    }
    /* per box: best metric and best IoU over the anchors it finally holds; then the
     * normalised metric as each anchor's target score */
    double *best = L->gt_best;
    for (int j = 0; j < 2 * n_gt; j++) best[j] = 0;
    for (int a = 0; a < A; a++) {
        int j = gt[a];
        if (j < 0) continue;
        if (met[a] > best[2 * j]) best[2 * j] = met[a];
        if (iou[a] > best[2 * j + 1]) best[2 * j + 1] = iou[a];
    }
    for (int a = 0; a < A; a++) {
        int j = gt[a];
        if (j < 0) continue;
        double bm = best[2 * j], bo = best[2 * j + 1];
        if (L->o.min_target > 0) /* the exact ratio: the best anchor's is 1 however small its metric */
            score[a] = (float)((bm > 0 ? met[a] / bm : 1.0) * fmax(bo, L->o.min_target));
        else /* YOLOv8's: a metric far below NORM_EPS (IoU^6 of a tiny box) gives 0 */
            score[a] = (float)((double)met[a] * bo / (bm + NORM_EPS));
    }
}

int acv_det_assign(acv_det_loss *L, const float *out, int n, const acv_box *const *gts, const int *n_gt)
{
    if (n < 1 || n > L->max_batch)
        return acv_error(ACV_EINVAL, "detection loss: batch %d not in 1..%d", n, L->max_batch);
    int most = 0;
    for (int b = 0; b < n; b++) {
        if (n_gt[b] < 0 || (n_gt[b] > 0 && !gts[b]))
            return acv_error(ACV_EINVAL, "detection loss: image %d has %d boxes and no array", b, n_gt[b]);
        for (int j = 0; j < n_gt[b]; j++) {
            const acv_box *g = &gts[b][j];
            if (!isfinite(g->x1) || !isfinite(g->y1) || !isfinite(g->x2) || !isfinite(g->y2))
                return acv_error(ACV_EINVAL, "detection loss: image %d box %d has a non-finite coordinate", b, j);
            if (gt_usable(g) && (g->cls < 0 || g->cls >= L->K))
                return acv_error(ACV_EINVAL, "detection loss: image %d box %d has class %d (the model has %d)", b, j,
                                 g->cls, L->K);
        }
        if (n_gt[b] > most) most = n_gt[b];
    }
    if (most > L->gt_cap) {
        double *nb = realloc(L->gt_best, (size_t)most * 2 * sizeof(double));
        if (!nb) return acv_error(ACV_ENOMEM, "out of memory for %d boxes", most);
        L->gt_best = nb;
        int *nf = realloc(L->gt_first, (size_t)most * 2 * sizeof(int));
        if (!nf) return acv_error(ACV_ENOMEM, "out of memory for %d boxes", most);
        L->gt_first = nf;
        double *nm = realloc(L->gt_first_m, (size_t)most * 2 * sizeof(double));
        if (!nm) return acv_error(ACV_ENOMEM, "out of memory for %d boxes", most);
        L->gt_first_m = nm;
        L->gt_cap = most;
    }
    for (int b = 0; b < n; b++) assign_image(L, b, out + (size_t)b * L->C * L->A, gts[b], n_gt[b]);
    L->n = n;
    L->view.n = n;
    return 0;
}

/* ---- the loss ---------------------------------------------------------------------------- */

int acv_det_loss_eval(acv_det_loss *L, const float *out, int n, unsigned terms, float *grad,
                      acv_det_loss_parts *parts)
{
    if (n != L->n) return acv_error(ACV_EINVAL, "detection loss: batch %d, the assignment was for %d", n, L->n);
    const int A = L->A, R = L->R, K = L->K, C = L->C;
    /* the target score in all (the normalizer) and per class (cw: its mass, then its weight) */
    double S = 0, *cw = L->cw;
    int n_fg = 0;
    for (int c = 0; c < K; c++) cw[c] = 0;
    for (int64_t i = 0; i < (int64_t)n * A; i++) {
        S += L->score[i];
        if (L->gt[i] >= 0) {
            n_fg++;
            cw[L->cls[i]] += L->score[i];
        }
    }
    /* class balance: a class below the mean mass of the classes present weighs mean / mass,
     * at most o.balance; the others and the absent keep 1 */
    double present_mass = 0;
    int present = 0;
    for (int c = 0; c < K; c++)
        if (cw[c] > 0) {
            present_mass += cw[c];
            present++;
        }
    for (int c = 0; c < K; c++)
        cw[c] = L->o.balance > 1 && cw[c] > 0 ? fmin(L->o.balance, fmax(1.0, present_mass / present / cw[c])) : 1;
    double norm = S > 1 ? S : 1;
    double scale = L->o.scale_by_batch ? n : 1;
    double f_cls = (terms & ACV_DET_TERM_CLS) ? L->o.w_cls / norm : 0;
    double f_box = (terms & ACV_DET_TERM_BOX) ? L->o.w_box / norm : 0;
    double f_dfl = (terms & ACV_DET_TERM_DFL) ? L->o.w_dfl / norm : 0;
    double l_cls = 0, l_box = 0, l_dfl = 0;
    if (grad) memset(grad, 0, (size_t)n * C * A * sizeof(float));
    for (int b = 0; b < n; b++) {
        const float *o = out + (size_t)b * C * A;
        float *go = grad ? grad + (size_t)b * C * A : NULL;
        const int *gt = L->gt + (size_t)b * A, *cls = L->cls + (size_t)b * A;
        const float *score = L->score + (size_t)b * A, *box = L->box + (size_t)b * A * 4;
        /* classification: every anchor, every class */
        if (f_cls) {
            for (int c = 0; c < K; c++) {
                const double cwc = cw[c];
                const float *x = o + (int64_t)(4 * R + c) * A;
                float *gx = go ? go + (int64_t)(4 * R + c) * A : NULL;
                for (int a = 0; a < A; a++) {
                    double v = x[a], t = cls[a] == c ? score[a] : 0, e = exp(-fabs(v)); /* one exp */
                    l_cls += cwc * (fmax(v, 0) - v * t + log1p(e));
                    if (gx) gx[a] = (float)(cwc * ((v >= 0 ? 1 : e) / (1 + e) - t) * f_cls * scale);
                }
            }
        }
        if (!f_box && !f_dfl) continue;
        /* box and DFL: assigned anchors, weighted by their target score */
        for (int a = 0; a < A; a++) {
            if (gt[a] < 0) continue;
            double w = score[a] * cw[cls[a]], s = L->astride[a];
            double ax = L->points[2 * a] / s, ay = L->points[2 * a + 1] / s;
            double tb[4] = {box[4 * a] / s, box[4 * a + 1] / s, box[4 * a + 2] / s, box[4 * a + 3] / s};
            double p[4 * 64], e[4];
            expect_sides(L, o, a, e, p);
            double ge[4] = {0, 0, 0, 0};     /* d(loss)/d(expected side) */
            if (f_box) {
                double pb[4] = {ax - e[0], ay - e[1], ax + e[2], ay + e[3]}, d[4];
                double ciou = acv_det_ciou(pb, tb, go ? d : NULL);
                l_box += w * (1 - ciou);
                if (go) { /* x1 = ax - e0, y1 = ay - e1, x2 = ax + e2, y2 = ay + e3 */
                    double k = -w * f_box * scale;
                    ge[0] = -k * d[0];
                    ge[1] = -k * d[1];
                    ge[2] = k * d[2];
                    ge[3] = k * d[3];
                }
            }
            double hi = R - 1 - 0.01;
            double td[4] = {ax - tb[0], ay - tb[1], tb[2] - ax, tb[3] - ay};
            for (int sd = 0; sd < 4; sd++) {
                const float *z = o + (int64_t)sd * R * A + a;
                float *gz = go ? go + (int64_t)sd * R * A + a : NULL;
                double dz[64];
                if (f_dfl) {
                    double t = td[sd] < 0 ? 0 : td[sd] > hi ? hi : td[sd];
                    l_dfl += w * dfl_strided(z, R, A, t, gz ? dz : NULL) / 4;
                }
                if (!gz) continue;
                const double *ps = p + sd * R;
                double kd = w * f_dfl * scale / 4;
                for (int k = 0; k < R; k++) {
                    double g = ge[sd] * ps[k] * (k - e[sd]); /* dE/dz_k = p_k (k - E) */
                    if (f_dfl) g += kd * dz[k];
                    gz[(int64_t)k * A] = (float)g;
                }
            }
        }
    }
    l_cls *= f_cls;
    l_box *= f_box;
    l_dfl *= f_dfl;
    if (parts) {
        parts->cls = l_cls;
        parts->box = l_box;
        parts->dfl = l_dfl;
        parts->total = (l_cls + l_box + l_dfl) * scale;
        parts->n_fg = n_fg;
        parts->score_sum = S;
    }
    if (!isfinite(l_cls + l_box + l_dfl))
        return acv_error(ACV_ENUMERIC, "detection loss is not finite (box %g, cls %g, dfl %g)", l_box, l_cls, l_dfl);
    return 0;
}

int acv_det_loss_compute(acv_det_loss *L, const float *out, int n, const acv_box *const *gts, const int *n_gt,
                         float *grad, acv_det_loss_parts *parts)
{
    int rc = acv_det_assign(L, out, n, gts, n_gt);
    return rc ? rc : acv_det_loss_eval(L, out, n, ACV_DET_TERM_ALL, grad, parts);
}
