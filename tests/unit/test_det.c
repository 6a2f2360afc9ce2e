/* The detector (src/tasks/det_*.c) and acv_graph_backward_from (src/nn/exec.c):
 * - anchors, CIoU and DFL against hand-computed values, CIoU's gradient by finite differences;
 * - the task-aligned assigner on hand-made cases (a box holding one anchor centre, top-k,
 *   overlapping boxes resolved by IoU, crowd boxes, the centre fallback) and against a
 *   brute-force top-k;
 * - d(loss)/d(output) of every loss term and of the total against central differences of
 *   the double-precision loss, with the assignment held fixed;
 * - decoding (box geometry, thresholds, class-aware / agnostic NMS, max_det, multi-label)
 *   and the letterbox inverse;
 * - the network: shapes and names, det-m's parameter count against YOLOv8s's, the init
 *   priors, inference compile against the training graph, JSON round trip, backward_from
 *   against backward on a scalar loss, parameter gradients through the whole detector by
 *   finite differences; and (printed, not asserted) forward latency of det-s and det-m. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autocv/error.h"
#include "autocv/graph.h"
#include "base/rng.h"
#include "base/timeutil.h"
#include "data/det_dataset.h"
#include "nn/backend.h"
#include "tasks/det.h"

#define R ACV_DET_REG_MAX

/* ---- helpers ------------------------------------------------------------------------------ */

/* A detector's description for a size without building the network (the loss only needs it). */
static acv_det_net fake_net(int h, int w, int k)
{
    acv_det_net n;
    memset(&n, 0, sizeof n);
    n.n_classes = k;
    n.reg_max = R;
    n.imgsz_h = h;
    n.imgsz_w = w;
    n.n_levels = 3;
    for (int l = 0; l < 3; l++) {
        n.strides[l] = 8 << l;
        n.level_h[l] = h >> (3 + l);
        n.level_w[l] = w >> (3 + l);
        n.n_anchors += n.level_h[l] * n.level_w[l];
    }
    return n;
}

/* Sets anchor a's distance bins in out (C, A) to predict distances d[4] (strides, integers
 * 0..R-1) almost exactly: one bin at +30. */
static void set_hard_dist(float *out, int A, int a, const int d[4])
{
    for (int s = 0; s < 4; s++)
        for (int k = 0; k < R; k++) out[(int64_t)(s * R + k) * A + a] = k == d[s] ? 30.0f : 0.0f;
}

static void set_cls(float *out, int A, int a, int c, float v) { out[(int64_t)(4 * R + c) * A + a] = v; }

static acv_box box(float x1, float y1, float x2, float y2, int cls)
{
    acv_box b = {x1, y1, x2, y2, cls, 1.0f, 0};
    return b;
}

static int count_fg(const acv_det_targets *t, int b)
{
    int c = 0;
    for (int a = 0; a < t->n_anchors; a++) c += t->gt[(size_t)b * t->n_anchors + a] >= 0;
    return c;
}

/* ---- anchors, CIoU, DFL ----------------------------------------------------------------------- */

static void test_anchors(void **state)
{
    (void)state;
    int strides[3] = {8, 16, 32};
    float *p, *s;
    int A = acv_det_anchors(64, 96, strides, 3, &p, &s);
    assert_int_equal(A, 8 * 12 + 4 * 6 + 2 * 3);
    assert_true(p[0] == 4 && p[1] == 4 && s[0] == 8);
    assert_true(p[2] == 12 && p[3] == 4);            /* row-major: x first */
    assert_true(p[2 * 12] == 4 && p[2 * 12 + 1] == 12);
    assert_true(p[2 * 96] == 8 && p[2 * 96 + 1] == 8 && s[96] == 16);
    assert_true(p[2 * (A - 1)] == 80 && p[2 * (A - 1) + 1] == 48 && s[A - 1] == 32);
    free(p);
    free(s);
    int bad[1] = {7};
    assert_int_equal(acv_det_anchors(64, 64, bad, 1, &p, &s), ACV_EINVAL);
    assert_null(p);
}

static void test_ciou_hand(void **state)
{
    (void)state;
    /* same aspect: v = 0; IoU 1/7, rho^2 = (2^2 + 2^2) / 4 = 2, c^2 = 3^2 + 3^2: 1/7 - 1/9 */
    double a[4] = {0, 0, 2, 2}, b[4] = {1, 1, 3, 3};
    assert_true(fabs(acv_det_ciou(a, b, NULL) - (1.0 / 7 - 1.0 / 9)) < 1e-6);
    /* 4x2 against 2x4 overlapping in a 2x2 square: IoU 4/12, rho^2 = 2^2/4 = 1, c^2 = 32,
     * v = 4/pi^2 (atan 2 - atan 1/2)^2, alpha = v / (v - 1/3 + 1) */
    double c[4] = {0, 0, 4, 2}, d[4] = {1, 0, 3, 4};
    double v = 4 / (M_PI * M_PI) * pow(atan(2.0) - atan(0.5), 2);
    double want = 1.0 / 3 - (1.0 / 32 + v * v / (v + 2.0 / 3));
    assert_true(fabs(acv_det_ciou(c, d, NULL) - want) < 1e-6);
    assert_true(fabs(acv_det_ciou(c, c, NULL) - 1) < 1e-6);
    /* disjoint boxes: IoU 0, negative CIoU */
    double e[4] = {10, 10, 12, 12};
    assert_true(acv_det_ciou(a, e, NULL) < 0);
    /* gradient by central differences, on random box pairs (overlapping, nested, apart) */
    acv_rng r;
    acv_rng_seed(&r, 5);
    double worst = 0;
    for (int t = 0; t < 200; t++) {
        double p[4], q[4], g[4];
        p[0] = 10 * acv_rng_uniform(&r);
        p[1] = 10 * acv_rng_uniform(&r);
        p[2] = p[0] + 0.5 + 8 * acv_rng_uniform(&r);
        p[3] = p[1] + 0.5 + 8 * acv_rng_uniform(&r);
        q[0] = 10 * acv_rng_uniform(&r);
        q[1] = 10 * acv_rng_uniform(&r);
        q[2] = q[0] + 0.5 + 8 * acv_rng_uniform(&r);
        q[3] = q[1] + 0.5 + 8 * acv_rng_uniform(&r);
        acv_det_ciou(p, q, g);
        for (int k = 0; k < 4; k++) {
            double h = 1e-6, s = p[k];
            p[k] = s + h;
            double lp = acv_det_ciou(p, q, NULL);
            p[k] = s - h;
            double lm = acv_det_ciou(p, q, NULL);
            p[k] = s;
            double fd = (lp - lm) / (2 * h), err = fabs(fd - g[k]) / fmax(1e-3, fabs(fd));
            if (err > worst) worst = err;
        }
    }
    print_message("CIoU gradient: worst relative error %.3g over 200 box pairs\n", worst);
    assert_true(worst < 1e-5);
}

static void test_dfl_hand(void **state)
{
    (void)state;
    float z[R] = {0};
    /* uniform bins: every CE is log 16, whatever the weights */
    assert_true(fabs(acv_det_dfl(z, R, 3.3, NULL) - log(16.0)) < 1e-9);
    z[3] = 2;
    z[4] = 1;
    double lse = log(14 + exp(2.0) + exp(1.0));
    double want = 0.7 * (lse - 2) + 0.3 * (lse - 1); /* d = 3.3: 0.7 on bin 3, 0.3 on bin 4 */
    double dz[R];
    assert_true(fabs(acv_det_dfl(z, R, 3.3, dz) - want) < 1e-9);
    /* gradient: softmax minus the two-bin target */
    assert_true(fabs(dz[3] - (exp(2.0 - lse) - 0.7)) < 1e-9);
    assert_true(fabs(dz[4] - (exp(1.0 - lse) - 0.3)) < 1e-9);
    assert_true(fabs(dz[0] - exp(-lse)) < 1e-9);
    /* an integer distance puts all the weight on one bin */
    assert_true(fabs(acv_det_dfl(z, R, 3.0, NULL) - (lse - 2)) < 1e-9);
}

/* ---- the assigner ------------------------------------------------------------------------------- */

typedef struct fixture {
    acv_det_net net;
    acv_det_loss *L;
    int A, C, K;
    float *out;
} fixture;

static fixture fx_new(int k, int batch, const acv_det_loss_opts *o)
{
    fixture f;
    f.net = fake_net(64, 64, k);
    f.K = k;
    f.A = f.net.n_anchors;
    f.C = 4 * R + k;
    assert_int_equal(acv_det_loss_new(&f.net, batch, o, &f.L), 0);
    f.out = calloc((size_t)batch * f.C * f.A, sizeof(float));
    assert_non_null(f.out);
    /* default: every class unlikely */
    for (int b = 0; b < batch; b++)
        for (int c = 0; c < k; c++)
            for (int a = 0; a < f.A; a++) f.out[((size_t)b * f.C + 4 * R + c) * f.A + a] = -8;
    return f;
}

static void fx_free(fixture *f)
{
    acv_det_loss_free(f->L);
    free(f->out);
}

static void test_assign_single_anchor(void **state)
{
    (void)state;
    acv_det_loss_opts o;
    acv_det_loss_opts_init(&o);
    o.grow = 0; /* the coarser levels' cells would be candidates too (test_assign_grow) */
    fixture f = fx_new(3, 1, &o);
    assert_int_equal(f.A, 64 + 16 + 4);
    /* the box (1,1)-(7,7) holds one anchor centre, (4,4) = anchor 0 */
    acv_box g = box(1, 1, 7, 7, 2);
    const acv_box *gs[1] = {&g};
    int ng[1] = {1};
    int d[4] = {0, 0, 0, 0};
    set_hard_dist(f.out, f.A, 0, d); /* predicts the empty box at (4,4): CIoU <= 0, metric 0 */
    assert_int_equal(acv_det_assign(f.L, f.out, 1, gs, ng), 0);
    const acv_det_targets *t = acv_det_loss_targets(f.L);
    assert_int_equal(count_fg(t, 0), 1);
    assert_int_equal(t->gt[0], 0);
    assert_int_equal(t->cls[0], 2);
    assert_true(t->box[0] == 1 && t->box[1] == 1 && t->box[2] == 7 && t->box[3] == 7);
    /* the only candidate is kept even at metric 0; as the box's best anchor its score is
     * max(its IoU, min_target) = 0.25 (YOLOv8's would be its IoU, 0) */
    assert_true(t->iou[0] < 1e-6f);
    assert_true(fabs(t->score[0] - 0.25) < 1e-6);
    /* a better prediction: bins 0 and 1 equally likely, distances 0.5 strides, the box
     * (0,0)-(8,8): IoU 36/64 with the same centre and aspect */
    for (int s = 0; s < 4; s++) {
        f.out[(int64_t)(s * R) * f.A] = 0;
        f.out[(int64_t)(s * R + 1) * f.A] = 0;
        for (int k = 2; k < R; k++) f.out[(int64_t)(s * R + k) * f.A] = -30;
    }
    assert_int_equal(acv_det_assign(f.L, f.out, 1, gs, ng), 0);
    assert_int_equal(count_fg(t, 0), 1);
    assert_true(t->iou[0] > 0.5f && fabs(t->score[0] - t->iou[0]) < 1e-6);

    /* a crowd box is skipped; so is an empty box */
    acv_box gc[2] = {box(1, 1, 7, 7, 0), box(20, 20, 20, 40, 1)};
    gc[0].flags = ACV_BOX_CROWD;
    const acv_box *gsc[1] = {gc};
    int ngc[1] = {2};
    assert_int_equal(acv_det_assign(f.L, f.out, 1, gsc, ngc), 0);
    assert_int_equal(count_fg(t, 0), 0);
    /* a class outside 0..K-1 is an error naming it */
    acv_box gb = box(1, 1, 7, 7, 3);
    const acv_box *gsb[1] = {&gb};
    assert_int_equal(acv_det_assign(f.L, f.out, 1, gsb, ng), ACV_EINVAL);
    assert_non_null(strstr(acv_errmsg(), "class 3"));
    fx_free(&f);
}

static void test_assign_center_fallback(void **state)
{
    (void)state;
    /* (1,1)-(3,3) holds no anchor centre: the fallback gives it the finest cell holding its
     * centre (anchor 0); without the fallback it stays unassigned (YOLOv8) */
    acv_box g = box(1, 1, 3, 3, 0);
    const acv_box *gs[1] = {&g};
    int ng[1] = {1};
    acv_det_loss_opts o;
    acv_det_loss_opts_init(&o);
    o.grow = 0; /* grown to a stride, it would hold a centre on every level */
    fixture f = fx_new(1, 1, &o);
    assert_int_equal(acv_det_assign(f.L, f.out, 1, gs, ng), 0);
    assert_int_equal(count_fg(acv_det_loss_targets(f.L), 0), 1);
    assert_int_equal(acv_det_loss_targets(f.L)->gt[0], 0);
    fx_free(&f);
    o.center_fallback = false;
    f = fx_new(1, 1, &o);
    assert_int_equal(acv_det_assign(f.L, f.out, 1, gs, ng), 0);
    assert_int_equal(count_fg(acv_det_loss_targets(f.L), 0), 0);
    fx_free(&f);
}

static void test_assign_topk(void **state)
{
    (void)state;
    /* the whole image: every anchor centre is inside, so top-k decides. Zero distance
     * logits give every anchor a box of 15 x 15 strides around it: at level 0 (120 px) the
     * CIoU with the image differs by < 1.3x between anchors, far less than the 54x the
     * class scores sigmoid(8)^0.5 / sigmoid(-8)^0.5 make: the three confident anchors win. */
    acv_det_loss_opts o;
    acv_det_loss_opts_init(&o);
    o.topk = 3;
    fixture f = fx_new(2, 1, &o);
    int chosen[3] = {5, 20, 50};
    for (int i = 0; i < 3; i++) set_cls(f.out, f.A, chosen[i], 1, 8);
    acv_box g = box(0, 0, 64, 64, 1);
    const acv_box *gs[1] = {&g};
    int ng[1] = {1};
    assert_int_equal(acv_det_assign(f.L, f.out, 1, gs, ng), 0);
    const acv_det_targets *t = acv_det_loss_targets(f.L);
    assert_int_equal(count_fg(t, 0), 3);
    for (int i = 0; i < 3; i++) assert_int_equal(t->gt[chosen[i]], 0);
    /* the best-aligned anchor's score equals the box's best IoU; the others scale down */
    float best = 0, bestiou = 0;
    for (int i = 0; i < 3; i++) {
        best = fmaxf(best, t->score[chosen[i]]);
        bestiou = fmaxf(bestiou, t->iou[chosen[i]]);
    }
    assert_true(fabsf(best - bestiou) < 1e-6f);
    fx_free(&f);

    /* default topk 10: exactly 10 of the 84 anchors */
    f = fx_new(2, 1, NULL);
    assert_int_equal(acv_det_assign(f.L, f.out, 1, gs, ng), 0);
    assert_int_equal(count_fg(acv_det_loss_targets(f.L), 0), 10);
    fx_free(&f);
}

/* Random predictions and boxes: the assignment equals a brute-force reading of its contract
 * (each box's top-k candidates by metric among the centres inside it grown to a stride;
 * shared anchors to a much smaller box, else to the highest IoU; normalised scores). */
static void test_assign_brute_force(void **state)
{
    (void)state;
    acv_rng r;
    acv_rng_seed(&r, 77);
    for (int trial = 0; trial < 20; trial++) {
        fixture f = fx_new(3, 1, NULL);
        int A = f.A;
        for (int64_t i = 0; i < (int64_t)f.C * A; i++) f.out[i] = acv_rng_normal(&r) * (i < 4 * R * A ? 1.5f : 2.0f);
        int n = 1 + (int)acv_rng_below(&r, 6);
        acv_box g[8];
        for (int j = 0; j < n; j++) {
            float w = 6 + 50 * acv_rng_uniform(&r), h = 6 + 50 * acv_rng_uniform(&r);
            float x = (64 - w) * acv_rng_uniform(&r), y = (64 - h) * acv_rng_uniform(&r);
            g[j] = box(x, y, x + w, y + h, (int)acv_rng_below(&r, 3));
        }
        const acv_box *gs[1] = {g};
        int ng[1] = {n};
        assert_int_equal(acv_det_assign(f.L, f.out, 1, gs, ng), 0);
        const acv_det_targets *t = acv_det_loss_targets(f.L);
        /* brute force */
        float *pts, *st;
        int strides[3] = {8, 16, 32};
        assert_int_equal(acv_det_anchors(64, 64, strides, 3, &pts, &st), A);
        double *met = calloc((size_t)n * A, sizeof(double)), *ov = calloc((size_t)n * A, sizeof(double));
        int *sel = calloc((size_t)n * A, sizeof(int));
        for (int a = 0; a < A; a++) {
            double e[4];
            for (int s = 0; s < 4; s++) {
                double mx = -1e30, sum = 0, ex = 0;
                for (int k = 0; k < R; k++) mx = fmax(mx, f.out[(int64_t)(s * R + k) * A + a]);
                for (int k = 0; k < R; k++) {
                    double p = exp(f.out[(int64_t)(s * R + k) * A + a] - mx);
                    sum += p;
                    ex += k * p;
                }
                e[s] = ex / sum * st[a];
            }
            double pb[4] = {pts[2 * a] - e[0], pts[2 * a + 1] - e[1], pts[2 * a] + e[2], pts[2 * a + 1] + e[3]};
            for (int j = 0; j < n; j++) {
                double gb[4] = {g[j].x1, g[j].y1, g[j].x2, g[j].y2};
                /* candidates: centres inside the box grown to at least one stride (grow 1) */
                double cb[4] = {gb[0], gb[1], gb[2], gb[3]};
                for (int ax = 0; ax < 2; ax++)
                    if (cb[ax + 2] - cb[ax] < st[a]) {
                        double c = (cb[ax] + cb[ax + 2]) / 2;
                        cb[ax] = c - st[a] / 2.0;
                        cb[ax + 2] = c + st[a] / 2.0;
                    }
                if (!(pts[2 * a] > cb[0] && pts[2 * a] < cb[2] && pts[2 * a + 1] > cb[1] && pts[2 * a + 1] < cb[3]))
                    continue;
                double o = fmax(acv_det_ciou(gb, pb, NULL), 0);
                double sc = 1 / (1 + exp(-(double)f.out[(int64_t)(4 * R + g[j].cls) * A + a]));
                met[j * A + a] = pow(sc, 0.5) * pow(o, 6);
                ov[j * A + a] = o;
                sel[j * A + a] = 1; /* candidate */
            }
        }
        for (int j = 0; j < n; j++) { /* keep the 10 best candidates */
            int cnt = 0;
            for (int a = 0; a < A; a++) cnt += sel[j * A + a];
            while (cnt > 10) {
                int worst = -1;
                for (int a = 0; a < A; a++)
                    if (sel[j * A + a] && (worst < 0 || met[j * A + a] <= met[j * A + worst])) worst = a;
                sel[j * A + worst] = 0;
                cnt--;
            }
        }
        /* owners, the boxes taken in order: a shared anchor goes to a box of at most a quarter
         * of the holder's area, stays with a holder of at most a quarter of the newcomer's,
         * else to the higher IoU; then a box left with none takes back its best candidate
         * (highest metric, the first on ties) from a box holding several */
        int *own = malloc((size_t)A * sizeof(int)), held[8] = {0};
        for (int a = 0; a < A; a++) {
            own[a] = -1;
            for (int j = 0; j < n; j++) {
                if (!sel[j * A + a]) continue;
                int k = own[a];
                double aj = ((double)g[j].x2 - g[j].x1) * ((double)g[j].y2 - g[j].y1);
                double ak = k < 0 ? 0 : ((double)g[k].x2 - g[k].x1) * ((double)g[k].y2 - g[k].y1);
                if (k < 0 || (!(ak <= 0.25 * aj) && (aj <= 0.25 * ak || ov[j * A + a] > ov[k * A + a]))) own[a] = j;
            }
            if (own[a] >= 0) held[own[a]]++;
        }
        for (int j = 0; j < n; j++) {
            int first = -1;
            for (int a = 0; a < A; a++)
                if (sel[j * A + a] && (first < 0 || met[j * A + a] > met[j * A + first])) first = a;
            if (first < 0 || held[j] > 0 || (own[first] >= 0 && held[own[first]] < 2)) continue;
            if (own[first] >= 0) held[own[first]]--;
            own[first] = j;
            held[j]++;
        }
        int mism = 0;
        for (int a = 0; a < A; a++) {
            int want = own[a];
            if (t->gt[a] != want) mism++;
            if (want >= 0) {
                double bm = 0, bo = 0;
                for (int a2 = 0; a2 < A; a2++) {
                    if (own[a2] != want) continue;
                    bm = fmax(bm, met[want * A + a2]);
                    bo = fmax(bo, ov[want * A + a2]);
                }
                double ws = (bm > 0 ? met[want * A + a] / bm : 1.0) * fmax(bo, 0.25); /* min_target 0.25 */
                if (t->gt[a] == want && fabs(t->score[a] - ws) > 1e-5 * fmax(1, ws)) mism++;
            }
        }
        free(own);
        assert_int_equal(mism, 0);
        free(met);
        free(ov);
        free(sel);
        free(pts);
        free(st);
        fx_free(&f);
    }
}

/* A 4x4 box under the untrained predictions (every side 7.5 strides: 120-pixel boxes): its
 * IoU is about 0.001 and its metric IoU^6 about 1e-18, far below YOLOv8's normalisation
 * epsilon, so YOLOv8's targets (min_target 0) are 0 and the box is never learned; min_target
 * lifts the best anchor's to 0.25. */
static void test_assign_min_target(void **state)
{
    (void)state;
    for (int floor = 0; floor < 2; floor++) {
        acv_det_loss_opts o;
        acv_det_loss_opts_init(&o);
        if (!floor) o.min_target = 0;
        fixture f = fx_new(2, 1, &o);
        memset(f.out, 0, (size_t)f.C * f.A * sizeof(float)); /* uniform DFL: sides 7.5 strides */
        acv_box g[1] = {box(10, 10, 14, 14, 1)};             /* holds anchor centre (12, 12) */
        const acv_box *gs[1] = {g};
        int ng[1] = {1};
        assert_int_equal(acv_det_assign(f.L, f.out, 1, gs, ng), 0);
        const acv_det_targets *t = acv_det_loss_targets(f.L);
        float best = 0, iou = 0;
        for (int a = 0; a < f.A; a++)
            if (t->gt[a] == 0 && t->score[a] > best) {
                best = t->score[a];
                iou = t->iou[a];
            }
        assert_true(iou > 0 && iou < 0.01f);
        if (floor) assert_float_equal(best, 0.25f, 1e-5f);
        else assert_true(best < 1e-6f);
        fx_free(&f);
    }
}

static void test_assign_overlap_by_iou(void **state)
{
    (void)state;
    /* anchor 9 (centre (12,12)) lies inside both boxes, and its prediction is box B exactly:
     * distances 1,1,2,2 strides. Top-k 20 lets both boxes keep it; B, the higher IoU, wins,
     * whichever order the boxes come in. */
    acv_det_loss_opts o;
    acv_det_loss_opts_init(&o);
    o.topk = 20;
    for (int order = 0; order < 2; order++) {
        fixture f = fx_new(2, 1, &o);
        int d[4] = {1, 1, 2, 2};
        set_hard_dist(f.out, f.A, 9, d);
        acv_box bA = box(0, 0, 40, 20, 0), bB = box(4, 4, 28, 28, 1);
        acv_box g[2] = {order ? bB : bA, order ? bA : bB};
        int iB = order ? 0 : 1, iA = 1 - iB;
        const acv_box *gs[1] = {g};
        int ng[1] = {2};
        assert_int_equal(acv_det_assign(f.L, f.out, 1, gs, ng), 0);
        const acv_det_targets *t = acv_det_loss_targets(f.L);
        assert_int_equal(t->gt[9], iB);
        assert_int_equal(t->cls[9], 1);
        assert_true(t->iou[9] > 0.99f);
        assert_true(fabsf(t->score[9] - t->iou[9]) < 1e-5f); /* the best of B's anchors */
        /* anchor 12 (centre (36,12)) is inside A only */
        assert_int_equal(t->gt[12], iA);
        fx_free(&f);
    }
}

/* A 4x4 defect on a 32x32 part (anchor centres every 8 px at stride 8: the defect holds only
 * (20, 20), which the part also holds). The anchor at (20, 20) predicts the part's box exactly,
 * so the IoU rule gives it to the part and the defect has no anchor: never learned (YOLOv8).
 * keep_one gives it back to the defect; the part keeps its others. */
static void test_assign_keep_one(void **state)
{
    (void)state;
    for (int keep = 0; keep < 2; keep++) {
        acv_det_loss_opts o;
        acv_det_loss_opts_init(&o);
        o.keep_one = keep;
        o.small_first = 0; /* YOLOv8's rule alone (test_assign_small_first) */
        o.grow = 0;
        fixture f = fx_new(2, 1, &o);
        memset(f.out, 0, (size_t)f.C * f.A * sizeof(float)); /* others: uniform DFL, 120-px boxes */
        float *pts, *st;
        int strides[3] = {8, 16, 32};
        assert_int_equal(acv_det_anchors(64, 64, strides, 3, &pts, &st), f.A);
        int in20 = -1;
        for (int a = 0; a < f.A; a++)
            if (st[a] == 8 && pts[2 * a] == 20 && pts[2 * a + 1] == 20) in20 = a;
        assert_true(in20 >= 0);
        int d[4] = {2, 2, 2, 2};
        set_hard_dist(f.out, f.A, in20, d); /* (4, 4)-(36, 36) */
        acv_box g[2] = {box(4, 4, 36, 36, 0), box(18, 18, 22, 22, 1)};
        const acv_box *gs[1] = {g};
        int ng[1] = {2};
        assert_int_equal(acv_det_assign(f.L, f.out, 1, gs, ng), 0);
        const acv_det_targets *t = acv_det_loss_targets(f.L);
        int part = 0, defect = 0;
        for (int a = 0; a < f.A; a++) {
            part += t->gt[a] == 0;
            defect += t->gt[a] == 1;
        }
        assert_true(part >= 2);
        assert_int_equal(defect, keep ? 1 : 0);
        assert_int_equal(t->gt[in20], keep ? 1 : 0);
        if (keep) {
            assert_int_equal(t->cls[in20], 1);
            assert_float_equal(t->score[in20], 0.25f, 1e-5f); /* its IoU 1/64: min_target */
        }
        free(pts);
        free(st);
        fx_free(&f);
    }
}

/* The defect of test_assign_keep_one with the defaults: the smaller of two boxes sharing an
 * anchor gets it when its area is at most small_first (0.25) of the other's, whatever the
 * IoUs (a defect on a part, where the part's prediction always overlaps more), so keep_one is
 * not needed; grown to one stride, the defect also has a candidate on the coarser levels
 * ((24, 24) at stride 16, (16, 16) at 32), which it takes from the part too. As YOLOv8 does it
 * (small_first 0, grow 0, keep_one off) the part keeps them all. */
static void test_assign_small_first(void **state)
{
    (void)state;
    for (int rule = 0; rule < 2; rule++) {
        acv_det_loss_opts o;
        acv_det_loss_opts_init(&o);
        o.keep_one = false;
        if (!rule) o.small_first = o.grow = 0; /* YOLOv8 */
        fixture f = fx_new(2, 1, &o);
        memset(f.out, 0, (size_t)f.C * f.A * sizeof(float));
        float *pts, *st;
        int strides[3] = {8, 16, 32};
        assert_int_equal(acv_det_anchors(64, 64, strides, 3, &pts, &st), f.A);
        int want[3] = {-1, -1, -1};
        for (int a = 0; a < f.A; a++) {
            if (st[a] == 8 && pts[2 * a] == 20 && pts[2 * a + 1] == 20) want[0] = a;
            if (st[a] == 16 && pts[2 * a] == 24 && pts[2 * a + 1] == 24) want[1] = a;
            if (st[a] == 32 && pts[2 * a] == 16 && pts[2 * a + 1] == 16) want[2] = a;
        }
        int d[4] = {2, 2, 2, 2};
        set_hard_dist(f.out, f.A, want[0], d); /* predicts the part exactly */
        acv_box g[2] = {box(4, 4, 36, 36, 0), box(18, 18, 22, 22, 1)};
        const acv_box *gs[1] = {g};
        int ng[1] = {2};
        assert_int_equal(acv_det_assign(f.L, f.out, 1, gs, ng), 0);
        const acv_det_targets *t = acv_det_loss_targets(f.L);
        int defect = 0, part = 0;
        for (int a = 0; a < f.A; a++) {
            defect += t->gt[a] == 1;
            part += t->gt[a] == 0;
        }
        assert_int_equal(defect, rule ? 3 : 0);
        assert_true(part >= 3);
        for (int i = 0; i < 3; i++) assert_int_equal(t->gt[want[i]] == 1, rule);
        assert_int_equal(t->gt[want[0]], rule ? 1 : 0); /* YOLOv8: the part's, by IoU */
        /* two boxes of like size still share by IoU (test_assign_overlap_by_iou) */
        free(pts);
        free(st);
        fx_free(&f);
    }
}

/* A scratch 28 x 2 pixels between the rows of stride-8 anchor centres (y = 4, 12, 20: none
 * strictly inside 9..11): without growth only the centre fallback's one anchor learns it;
 * grown to one stride about its centre (y 6..14) it holds the four centres along it at
 * stride 8, two at stride 16 (y 2..18: (8, 8), (24, 8)) and one at 32 ((16, 16)). */
static void test_assign_grow(void **state)
{
    (void)state;
    for (int grow = 0; grow < 2; grow++) {
        acv_det_loss_opts o;
        acv_det_loss_opts_init(&o);
        o.grow = grow ? 1.0f : 0.0f;
        fixture f = fx_new(1, 1, &o);
        acv_box g = box(2, 9, 30, 11, 0);
        const acv_box *gs[1] = {&g};
        int ng[1] = {1};
        assert_int_equal(acv_det_assign(f.L, f.out, 1, gs, ng), 0);
        const acv_det_targets *t = acv_det_loss_targets(f.L);
        int n8 = 0, n = count_fg(t, 0);
        for (int a = 0; a < 64; a++) n8 += t->gt[a] == 0; /* level 0: the first 64 anchors */
        if (grow) {
            assert_int_equal(n8, 4);
            for (int x = 0; x < 4; x++) assert_int_equal(t->gt[8 + x], 0); /* row y = 12 */
            assert_int_equal(n, 4 + 2 + 1);
        } else {
            assert_int_equal(n, 1);
            assert_int_equal(n8, 1);
        }
        fx_free(&f);
    }
}

/* ---- loss gradients ------------------------------------------------------------------------------- */

/* Random batch of 2 images at 64x64, 3 classes, several boxes each (one crowd). */
static fixture random_case(uint64_t seed, const acv_box **gs, int *ng, acv_box g[2][6])
{
    acv_rng r;
    acv_rng_seed(&r, seed);
    fixture f = fx_new(3, 2, NULL);
    for (int64_t i = 0; i < (int64_t)2 * f.C * f.A; i++) f.out[i] = acv_rng_normal(&r) * 1.5f;
    for (int b = 0; b < 2; b++) {
        ng[b] = 4 + b;
        for (int j = 0; j < ng[b]; j++) {
            float w = 6 + 40 * acv_rng_uniform(&r), h = 6 + 40 * acv_rng_uniform(&r);
            float x = (64 - w) * acv_rng_uniform(&r), y = (64 - h) * acv_rng_uniform(&r);
            g[b][j] = box(x, y, x + w, y + h, (int)acv_rng_below(&r, 3));
        }
        gs[b] = g[b];
    }
    g[1][4].flags = ACV_BOX_CROWD;
    return f;
}

static double eval_at(fixture *f, unsigned terms)
{
    acv_det_loss_parts p;
    assert_int_equal(acv_det_loss_eval(f->L, f->out, 2, terms, NULL, &p), 0);
    return p.total;
}

/* Central differences of the loss (terms) in double at every channel of the assigned anchors
 * and at random coordinates, against the analytic gradient: returns the worst relative error
 * max |fd - an| / max(|an|, 1e-3 * max |an|). */
static double grad_check(fixture *f, unsigned terms, acv_rng *r)
{
    int64_t N = (int64_t)2 * f->C * f->A;
    float *an = malloc((size_t)N * sizeof(float));
    acv_det_loss_parts p;
    assert_int_equal(acv_det_loss_eval(f->L, f->out, 2, terms, an, &p), 0);
    double amax = 0;
    for (int64_t i = 0; i < N; i++) amax = fmax(amax, fabs(an[i]));
    assert_true(amax > 1e-4);
    const acv_det_targets *t = acv_det_loss_targets(f->L);
    int64_t idx[4000];
    int n = 0;
    for (int b = 0; b < 2; b++) /* every channel of up to 6 assigned anchors per image */
        for (int a = 0, taken = 0; a < f->A && taken < 6; a++)
            if (t->gt[b * f->A + a] >= 0) {
                for (int c = 0; c < f->C; c++) idx[n++] = ((int64_t)b * f->C + c) * f->A + a;
                taken++;
            }
    int fg = n;
    for (int i = 0; i < 300; i++) idx[n++] = (int64_t)acv_rng_below(r, (uint32_t)N);
    assert_true(fg > 0);
    double worst = 0;
    for (int i = 0; i < n; i++) {
        int64_t j = idx[i];
        float v = f->out[j], vp = v + 1e-3f, vm = v - 1e-3f;
        f->out[j] = vp;
        double lp = eval_at(f, terms);
        f->out[j] = vm;
        double lm = eval_at(f, terms);
        f->out[j] = v;
        double fd = (lp - lm) / ((double)vp - (double)vm);
        double err = fabs(fd - an[j]) / fmax(fabs(an[j]), 1e-3 * amax);
        if (err > worst) worst = err;
    }
    free(an);
    return worst;
}

static void test_loss_gradients(void **state)
{
    (void)state;
    acv_rng r;
    acv_rng_seed(&r, 3);
    for (int seed = 1; seed <= 3; seed++) {
        const acv_box *gs[2];
        int ng[2];
        acv_box g[2][6];
        fixture f = random_case((uint64_t)seed, gs, ng, g);
        acv_det_loss_parts p;
        assert_int_equal(acv_det_assign(f.L, f.out, 2, gs, ng), 0);
        assert_int_equal(acv_det_loss_eval(f.L, f.out, 2, ACV_DET_TERM_ALL, NULL, &p), 0);
        assert_true(p.n_fg > 0 && p.box > 0 && p.cls > 0 && p.dfl > 0);
        assert_true(fabs(p.total - 2 * (p.box + p.cls + p.dfl)) < 1e-9 * p.total); /* scaled by batch */
        static const unsigned T[4] = {ACV_DET_TERM_BOX, ACV_DET_TERM_CLS, ACV_DET_TERM_DFL, ACV_DET_TERM_ALL};
        static const char *const TN[4] = {"box", "cls", "dfl", "total"};
        for (int k = 0; k < 4; k++) {
            double e = grad_check(&f, T[k], &r);
            print_message("loss gradient %-5s seed %d: worst relative error %.3g (%d fg anchors)\n", TN[k], seed, e,
                          p.n_fg);
            assert_true(e < 1e-3);
        }
        /* compute = assign + eval */
        float *gr = malloc((size_t)2 * f.C * f.A * sizeof(float));
        acv_det_loss_parts q;
        assert_int_equal(acv_det_loss_compute(f.L, f.out, 2, gs, ng, gr, &q), 0);
        assert_true(q.total == p.total);
        free(gr);
        fx_free(&f);
    }
}

/* The class balance: with it, every gradient of class c's logits and of the box and DFL
 * channels of anchors assigned to class c is the unbalanced one times w_c = min(cap, max(1,
 * mean target mass of the classes present / class c's)), a class absent from the batch
 * keeping 1. Three large parts, one medium and one 6-pixel defect over two images. */
static void test_loss_balance(void **state)
{
    (void)state;
    for (int cap = 2; cap <= 40; cap *= 20) {
        acv_det_loss_opts o0, o1;
        acv_det_loss_opts_init(&o0);
        o0.balance = 0;
        o1 = o0;
        o1.balance = (float)cap;
        fixture f0 = fx_new(4, 2, &o0), f1 = fx_new(4, 2, &o1);
        acv_rng r;
        acv_rng_seed(&r, 11);
        for (int64_t i = 0; i < (int64_t)2 * f0.C * f0.A; i++) f0.out[i] = f1.out[i] = acv_rng_normal(&r);
        acv_box g0[3] = {box(2, 2, 40, 44, 0), box(20, 10, 62, 50, 0), box(8, 30, 30, 52, 2)};
        acv_box g1[2] = {box(4, 4, 60, 58, 0), box(30, 30, 36, 36, 1)};
        const acv_box *gs[2] = {g0, g1};
        int ng[2] = {3, 2};
        assert_int_equal(acv_det_assign(f0.L, f0.out, 2, gs, ng), 0);
        assert_int_equal(acv_det_assign(f1.L, f1.out, 2, gs, ng), 0);
        const acv_det_targets *t0 = acv_det_loss_targets(f0.L), *t1 = acv_det_loss_targets(f1.L);
        double mass[4] = {0, 0, 0, 0}, tot = 0;
        int present = 0;
        for (int i = 0; i < 2 * f0.A; i++) {
            assert_int_equal(t0->gt[i], t1->gt[i]); /* the balance leaves the assignment alone */
            if (t0->gt[i] >= 0) mass[t0->cls[i]] += t0->score[i];
        }
        for (int c = 0; c < 4; c++)
            if (mass[c] > 0) tot += mass[c], present++;
        assert_int_equal(present, 3); /* class 3 is absent */
        double w[4];
        for (int c = 0; c < 4; c++) w[c] = mass[c] > 0 ? fmin(cap, fmax(1, tot / present / mass[c])) : 1;
        assert_true(w[0] == 1 && w[1] > 1 && w[3] == 1);
        if (cap == 2) assert_true(w[1] == 2); /* capped */
        else assert_true(w[1] > 2 && w[1] < cap);
        int64_t N = (int64_t)2 * f0.C * f0.A;
        float *a0 = malloc((size_t)N * sizeof(float)), *a1 = malloc((size_t)N * sizeof(float));
        acv_det_loss_parts p0, p1;
        assert_int_equal(acv_det_loss_eval(f0.L, f0.out, 2, ACV_DET_TERM_ALL, a0, &p0), 0);
        assert_int_equal(acv_det_loss_eval(f1.L, f1.out, 2, ACV_DET_TERM_ALL, a1, &p1), 0);
        double worst = 0;
        int changed = 0;
        for (int b = 0; b < 2; b++)
            for (int c = 0; c < f0.C; c++)
                for (int a = 0; a < f0.A; a++) {
                    int64_t i = ((int64_t)b * f0.C + c) * f0.A + a;
                    int k = c >= 4 * R ? c - 4 * R : t0->cls[b * f0.A + a];
                    double want = k >= 0 ? w[k] * a0[i] : a0[i]; /* background box channels: 0 */
                    worst = fmax(worst, fabs(a1[i] - want) / fmax(fabs(want), 1e-6));
                    changed += a1[i] != a0[i];
                }
        print_message("class balance cap %d: weights %.3f %.3f %.3f %.3f, worst relative error %.2g\n", cap, w[0], w[1],
                      w[2], w[3], worst);
        assert_true(worst < 1e-5);
        assert_true(changed > 0);
        assert_true(p1.cls > p0.cls && p1.box > p0.box);
        free(a0);
        free(a1);
        fx_free(&f0);
        fx_free(&f1);
    }
}

/* An image without boxes: only the classification term, pushing every class down. */
static void test_loss_empty_image(void **state)
{
    (void)state;
    fixture f = fx_new(2, 1, NULL);
    for (int64_t i = 0; i < (int64_t)f.C * f.A; i++) f.out[i] = 0;
    const acv_box *gs[1] = {NULL};
    int ng[1] = {0};
    float *gr = malloc((size_t)f.C * f.A * sizeof(float));
    acv_det_loss_parts p;
    assert_int_equal(acv_det_loss_compute(f.L, f.out, 1, gs, ng, gr, &p), 0);
    assert_int_equal(p.n_fg, 0);
    assert_true(p.box == 0 && p.dfl == 0);
    /* logits 0: BCE log 2 for each of A * K values, normalised by max(0, 1) = 1, weight 0.5 */
    assert_true(fabs(p.cls - 0.5 * log(2.0) * f.A * 2) < 1e-9);
    assert_true(fabs(gr[(int64_t)4 * R * f.A] - 0.25f) < 1e-7f); /* 0.5 * sigmoid(0) */
    assert_true(gr[0] == 0);
    free(gr);
    fx_free(&f);
}

/* ---- decoding ------------------------------------------------------------------------------------- */

static void test_decode(void **state)
{
    (void)state;
    const int K = 2, A = 84, C = 4 * R + K;
    float *out = calloc((size_t)C * A, sizeof(float));
    for (int c = 0; c < K; c++)
        for (int a = 0; a < A; a++) out[(int64_t)(4 * R + c) * A + a] = -10;
    float *pts, *st;
    int strides[3] = {8, 16, 32};
    assert_int_equal(acv_det_anchors(64, 64, strides, 3, &pts, &st), A);
    /* anchor 9 (12,12), level 0: distances 1,1,2,2 -> (4,4)-(28,28), class 1 at 0.9 */
    int d[4] = {1, 1, 2, 2};
    set_hard_dist(out, A, 9, d);
    out[(int64_t)(4 * R + 1) * A + 9] = logf(0.9f / 0.1f);
    /* anchor 10 (20,12): distances 2,1,1,2 -> the same box, class 1 at 0.8 */
    int d2[4] = {2, 1, 1, 2};
    set_hard_dist(out, A, 10, d2);
    out[(int64_t)(4 * R + 1) * A + 10] = logf(0.8f / 0.2f);
    /* anchor 64 (8,8) level 1, stride 16: distances 0,0,1,1 -> (8,8)-(24,24), class 0 at 0.7 */
    int d3[4] = {0, 0, 1, 1};
    set_hard_dist(out, A, 64, d3);
    out[(int64_t)(4 * R) * A + 64] = logf(0.7f / 0.3f);
    acv_det_decode_opts o;
    acv_det_decode_opts_init(&o);
    acv_box dets[16];
    int nd;
    assert_int_equal(acv_det_decode(out, A, K, R, pts, st, &o, dets, 16, &nd), 0);
    /* anchors 9 and 10 predict the same class-1 box: NMS keeps the 0.9; class 0 kept apart */
    assert_int_equal(nd, 2);
    assert_int_equal(dets[0].cls, 1);
    assert_true(fabsf(dets[0].score - 0.9f) < 1e-5f);
    assert_true(fabsf(dets[0].x1 - 4) < 1e-4f && fabsf(dets[0].y1 - 4) < 1e-4f && fabsf(dets[0].x2 - 28) < 1e-4f &&
                fabsf(dets[0].y2 - 28) < 1e-4f);
    assert_int_equal(dets[1].cls, 0);
    assert_true(fabsf(dets[1].x1 - 8) < 1e-4f && fabsf(dets[1].x2 - 24) < 1e-4f && fabsf(dets[1].y2 - 24) < 1e-4f);
    /* class-agnostic: (8,8)-(24,24) inside (4,4)-(28,28) has IoU 256/576 = 0.44 < 0.7: kept;
     * at iou_thr 0.4 it goes */
    o.class_agnostic = true;
    assert_int_equal(acv_det_decode(out, A, K, R, pts, st, &o, dets, 16, &nd), 0);
    assert_int_equal(nd, 2);
    o.iou_thr = 0.4f;
    assert_int_equal(acv_det_decode(out, A, K, R, pts, st, &o, dets, 16, &nd), 0);
    assert_int_equal(nd, 1);
    /* score threshold and max_det */
    acv_det_decode_opts_init(&o);
    o.score_thr = 0.75f;
    assert_int_equal(acv_det_decode(out, A, K, R, pts, st, &o, dets, 16, &nd), 0);
    assert_int_equal(nd, 1);
    acv_det_decode_opts_init(&o);
    o.max_det = 1;
    assert_int_equal(acv_det_decode(out, A, K, R, pts, st, &o, dets, 16, &nd), 0);
    assert_int_equal(nd, 1);
    assert_true(fabsf(dets[0].score - 0.9f) < 1e-5f);
    /* per-class thresholds replace score_thr: class 1 (0.9) kept at 0.85, class 0 (0.7) not at
     * 0.75; class 0 at 0.65 kept while class 1 at 0.95 is not */
    acv_det_decode_opts_init(&o);
    float ct[2] = {0.75f, 0.85f};
    o.class_thr = ct;
    o.score_thr = 0.99f; /* ignored */
    assert_int_equal(acv_det_decode(out, A, K, R, pts, st, &o, dets, 16, &nd), 0);
    assert_int_equal(nd, 1);
    assert_int_equal(dets[0].cls, 1);
    ct[0] = 0.65f;
    ct[1] = 0.95f;
    assert_int_equal(acv_det_decode(out, A, K, R, pts, st, &o, dets, 16, &nd), 0);
    assert_int_equal(nd, 1);
    assert_int_equal(dets[0].cls, 0);
    /* multi-label: anchor 64 also scores class 1 at 0.6: a second box of its own class */
    out[(int64_t)(4 * R + 1) * A + 64] = logf(0.6f / 0.4f);
    acv_det_decode_opts_init(&o);
    assert_int_equal(acv_det_decode(out, A, K, R, pts, st, &o, dets, 16, &nd), 0);
    assert_int_equal(nd, 2); /* best class only: still 0.7 for class 0 */
    o.multi_label = true;
    assert_int_equal(acv_det_decode(out, A, K, R, pts, st, &o, dets, 16, &nd), 0);
    assert_int_equal(nd, 3);
    /* the capacity bounds the output */
    assert_int_equal(acv_det_decode(out, A, K, R, pts, st, &o, dets, 2, &nd), 0);
    assert_int_equal(nd, 2);
    /* clipping to the image's area before NMS: an image letterboxed into rows 16..48 (scale
     * 0.5 of 128x64, pad (0, 16)). Anchors 9 and 10 give class 1 boxes (4,-4)-(28,28) and
     * (4,-20)-(28,28): IoU 768/1152 = 0.67 < 0.7, both kept unclipped; both are
     * (4,16)-(28,28) once clipped to the image: one box */
    memset(out, 0, (size_t)C * A * sizeof(float));
    for (int c = 0; c < K; c++)
        for (int a = 0; a < A; a++) out[(int64_t)(4 * R + c) * A + a] = -10;
    int e1[4] = {1, 2, 2, 2}, e2[4] = {2, 4, 1, 2}; /* anchor 9 at (12,12): top 12-16=-4; anchor 10 at (20,12): -20 */
    set_hard_dist(out, A, 9, e1);
    set_hard_dist(out, A, 10, e2);
    out[(int64_t)(4 * R + 1) * A + 9] = logf(0.9f / 0.1f);
    out[(int64_t)(4 * R + 1) * A + 10] = logf(0.8f / 0.2f);
    acv_det_decode_opts_init(&o);
    assert_int_equal(acv_det_decode(out, A, K, R, pts, st, &o, dets, 16, &nd), 0);
    assert_int_equal(nd, 2);
    assert_true(dets[0].y1 < 0 && dets[1].y1 < dets[0].y1);
    acv_det_decode_opts_clip(&o, 0.5f, 0, 16, 128, 64);
    assert_true(o.clip[0] == 0 && o.clip[1] == 16 && o.clip[2] == 64 && o.clip[3] == 48);
    assert_int_equal(acv_det_decode(out, A, K, R, pts, st, &o, dets, 16, &nd), 0);
    assert_int_equal(nd, 1);
    assert_true(fabsf(dets[0].score - 0.9f) < 1e-5f);
    assert_true(dets[0].x1 == 4 && dets[0].y1 == 16 && dets[0].x2 == 28 && dets[0].y2 == 28);
    free(out);
    free(pts);
    free(st);
}

static void test_unletterbox(void **state)
{
    (void)state;
    /* a 200x100 image letterboxed into 64x64: scale 0.32, pad (0, 16) */
    acv_box b[2] = {box(3.2f, 16 + 3.2f, 32, 16 + 16, 0), box(-5, 10, 70, 40, 1)};
    acv_det_unletterbox(b, 2, 0.32f, 0, 16, 200, 100);
    assert_true(fabsf(b[0].x1 - 10) < 1e-4f && fabsf(b[0].y1 - 10) < 1e-4f && fabsf(b[0].x2 - 100) < 1e-4f &&
                fabsf(b[0].y2 - 50) < 1e-4f);
    assert_true(b[1].x1 == 0 && b[1].y1 == 0 && b[1].x2 == 200 && fabsf(b[1].y2 - 75) < 1e-4f);
    assert_int_equal(b[1].cls, 1);
}

/* ---- the network ------------------------------------------------------------------------------------ */

static void test_build(void **state)
{
    (void)state;
    acv_graph *g = acv_graph_new();
    acv_det_net net;
    assert_int_equal(acv_det_build(g, "det-s", 3, 64, 96, &net), 0);
    const acv_shape *os = acv_graph_shape(g, net.output);
    assert_int_equal(os->ndim, 3);
    assert_int_equal(os->d[1], 4 * R + 3);
    assert_int_equal(os->d[2], 8 * 12 + 4 * 6 + 2 * 3);
    assert_int_equal(net.n_anchors, os->d[2]);
    assert_int_equal(acv_graph_output(g), net.output);
    static const char *const names[] = {"backbone.0.conv.weight", "backbone.0.bn.running_var",
                                        "backbone.2.m.0.cv1.conv.weight", "backbone.9.cv2.bn.bias",
                                        "neck.5.cv1.conv.weight", "head.box.0.2.weight", "head.cls.2.2.bias"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) assert_true(acv_graph_find(g, names[i]) >= 0);
    /* the priors */
    assert_int_equal(acv_det_init_params(g, &net, 1), 0);
    float *cb = acv_graph_data(g, net.cls_bias[0]), *bb = acv_graph_data(g, net.box_bias[2]);
    assert_true(fabsf(cb[2] - logf(5.0f / 3 / (8 * 12))) < 1e-6f);
    assert_true(bb[0] == 1.0f && bb[63] == 1.0f);
    /* re-derived from the graph alone */
    acv_det_net n2;
    memset(&n2, 0, sizeof n2);
    assert_int_equal(acv_det_net_from_graph(g, 3, &n2), 0);
    assert_int_equal(n2.n_anchors, net.n_anchors);
    assert_ptr_equal(n2.arch, acv_det_arch_find("det-s"));
    assert_int_equal(acv_det_net_from_graph(g, 4, &n2), ACV_EFORMAT);
    /* JSON round trip keeps a working detector */
    char *js = acv_graph_to_json(g);
    assert_non_null(js);
    acv_graph *g2;
    assert_int_equal(acv_graph_from_json(js, &g2), 0);
    free(js);
    memset(&n2, 0, sizeof n2);
    assert_int_equal(acv_det_net_from_graph(g2, 3, &n2), 0);
    assert_int_equal(acv_graph_num_params(g2), acv_graph_num_params(g));
    acv_graph_free(g2);
    acv_graph_free(g);
    /* errors */
    g = acv_graph_new();
    assert_int_equal(acv_det_build(g, "det-xl", 3, 64, 64, &net), ACV_ENOTFOUND);
    assert_non_null(strstr(acv_errmsg(), "det-s"));
    assert_int_equal(acv_det_build(g, "det-s", 3, 100, 64, &net), ACV_EINVAL);
    assert_int_equal(acv_det_build(g, "det-s", 0, 64, 64, &net), ACV_EINVAL);
    acv_graph_free(g);
    assert_string_equal(acv_det_auto(320, 1000, 0.0), "det-s");
    assert_string_equal(acv_det_auto(320, 50000, 0.01), "det-m");
    assert_string_equal(acv_det_auto(320, 1000, 0.2), "det-s-p2");
    assert_string_equal(acv_det_auto(320, 50000, 0.05), "det-m-p2");
    /* small boxes: the shorter side under 10 px once the image is scaled to imgsz */
    acv_box bx[3] = {{0, 0, 40, 8, 0, 1, 0}, {0, 0, 30, 30, 0, 1, 0}, {5, 5, 12, 50, 0, 1, 0}};
    acv_det_image im = {.w = 640, .h = 320, .n = 3, .boxes = bx};
    assert_true(fabs(acv_det_small_share(&im, 1, 640) - 2.0 / 3) < 1e-12);  /* 8 and 7 px */
    assert_true(fabs(acv_det_small_share(&im, 1, 1280) - 0.0) < 1e-12);     /* 16 and 14 px */
    assert_true(fabs(acv_det_small_share(&im, 1, 320) - 2.0 / 3) < 1e-12);  /* 4, 15 and 3.5 px */
    assert_true(acv_det_small_share(&im, 0, 320) == 0.0);
}

/* det-s-p2: a fourth level at stride 4 (its anchors first), recognised again from the graph,
 * and a forward pass of the right shape whose anchors are ordered level by level. */
static void test_build_p2(void **state)
{
    (void)state;
    acv_graph *g = acv_graph_new();
    acv_det_net net;
    assert_int_equal(acv_det_build(g, "det-s-p2", 2, 64, 96, &net), 0);
    assert_int_equal(net.n_levels, 4);
    assert_int_equal(net.strides[0], 4);
    assert_int_equal(net.strides[3], 32);
    const acv_shape *os = acv_graph_shape(g, net.output);
    assert_int_equal(os->d[2], 16 * 24 + 8 * 12 + 4 * 6 + 2 * 3);
    assert_true(acv_graph_find(g, "neck.6.cv1.conv.weight") >= 0);
    assert_true(acv_graph_find(g, "head.cls.3.2.bias") >= 0);
    assert_int_equal(acv_det_init_params(g, &net, 1), 0);
    float *cb = acv_graph_data(g, net.cls_bias[0]);
    assert_true(fabsf(cb[1] - logf(5.0f / 2 / (16 * 24))) < 1e-6f);
    acv_det_net n2;
    memset(&n2, 0, sizeof n2);
    assert_int_equal(acv_det_net_from_graph(g, 2, &n2), 0);
    assert_int_equal(n2.n_levels, 4);
    assert_int_equal(n2.n_anchors, net.n_anchors);
    assert_ptr_equal(n2.arch, acv_det_arch_find("det-s-p2"));
    float *pts, *st;
    int A = acv_det_anchors(64, 96, n2.strides, n2.n_levels, &pts, &st);
    assert_int_equal(A, net.n_anchors);
    assert_true(st[0] == 4.0f && pts[0] == 2.0f && st[16 * 24] == 8.0f && st[A - 1] == 32.0f);
    free(pts);
    free(st);
    /* the stride-4 level costs less than half of det-s again */
    acv_graph *gs = acv_graph_new();
    acv_det_net ns;
    assert_int_equal(acv_det_build(gs, "det-s", 2, 320, 320, &ns), 0);
    acv_graph *gp = acv_graph_new();
    assert_int_equal(acv_det_build(gp, "det-s-p2", 2, 320, 320, &ns), 0);
    double ratio = acv_graph_gflops(gp) / acv_graph_gflops(gs);
    print_message("det-s-p2 / det-s GFLOPs at 320: %.2f\n", ratio);
    assert_true(ratio > 1.1 && ratio < 1.5);
    acv_graph_free(gs);
    acv_graph_free(gp);
    assert_int_equal(acv_graph_compile(g, acv_backend_cpu(), 1, false), 0);
    assert_int_equal(acv_graph_forward(g, -1, false, 0), 0);
    acv_graph_free(g);
}

/* det-m is YOLOv8s's layout: with 80 classes it has YOLOv8s's 11,166,544 trainable
 * parameters (Ultralytics' summary "11166560 parameters, 11166544 gradients"; the 16 are the
 * frozen DFL projection, which is arithmetic here). */
static void test_param_count_yolov8s(void **state)
{
    (void)state;
    acv_graph *g = acv_graph_new();
    acv_det_net net;
    assert_int_equal(acv_det_build(g, "det-m", 80, 640, 640, &net), 0);
    assert_int_equal(acv_graph_num_params(g), 11166544);
    assert_int_equal(net.n_anchors, 8400);
    acv_graph_free(g);
}

/* Inference compile (BN folding, fused SiLU, blocked layouts) against the training compile in
 * eval mode. */
static void test_inference_matches(void **state)
{
    (void)state;
    acv_graph *g = acv_graph_new();
    acv_det_net net;
    assert_int_equal(acv_det_build(g, "det-s", 3, 64, 64, &net), 0);
    assert_int_equal(acv_det_init_params(g, &net, 7), 0);
    /* non-trivial running statistics */
    int64_t nb;
    float *buf = acv_graph_buffers(g, &nb);
    acv_rng r;
    acv_rng_seed(&r, 8);
    for (int64_t i = 0; i < nb; i++) buf[i] = 0.5f + acv_rng_uniform(&r);
    int64_t numel = 3 * 64 * 64, on = (int64_t)(4 * R + 3) * net.n_anchors;
    float *x = malloc((size_t)numel * sizeof(float)), *ref = malloc((size_t)on * sizeof(float));
    for (int64_t i = 0; i < numel; i++) x[i] = acv_rng_uniform(&r);
    assert_int_equal(acv_graph_compile(g, acv_backend_cpu(), 1, true), 0);
    memcpy(acv_graph_data(g, net.input), x, (size_t)numel * sizeof(float));
    assert_int_equal(acv_graph_forward(g, -1, false, 0), 0);
    memcpy(ref, acv_graph_data(g, net.output), (size_t)on * sizeof(float));
    assert_int_equal(acv_graph_compile(g, acv_backend_cpu(), 1, false), 0);
    memcpy(acv_graph_data(g, net.input), x, (size_t)numel * sizeof(float));
    assert_int_equal(acv_graph_forward(g, -1, false, 0), 0);
    const float *y = acv_graph_data(g, net.output);
    double worst = 0, mx = 0;
    for (int64_t i = 0; i < on; i++) mx = fmax(mx, fabs(ref[i]));
    for (int64_t i = 0; i < on; i++) worst = fmax(worst, fabs(y[i] - ref[i]) / fmax(1e-3 * mx, fabs(ref[i])));
    print_message("det-s inference vs training graph: worst relative difference %.3g\n", worst);
    assert_true(worst < 1e-3);
    free(x);
    free(ref);
    acv_graph_free(g);
}

/* backward_from(node, d loss/d node) equals backward(loss) for a loss the graph computes. */
static void test_backward_from(void **state)
{
    (void)state;
    acv_graph *g = acv_graph_new();
    acv_id x = acv_input(g, "x", 4, (int64_t[]){2, 3, 6, 6});
    acv_id h = acv_activation(g, acv_conv2d(g, "c", x, 4, 3, 1, 1, 1, 1, true), ACV_ACT_SILU, 0);
    acv_id y = acv_reshape(g, h, 3, (int64_t[]){0, 4, -1});
    acv_id t = acv_input(g, "t", 3, (int64_t[]){2, 4, 36});
    acv_id loss = acv_bce_logits(g, y, t);
    assert_int_equal(acv_graph_status(g), 0);
    assert_int_equal(acv_graph_init_params(g, 3), 0);
    assert_int_equal(acv_graph_backward_from(g, y, (float[]){0}), ACV_EINVAL); /* not compiled */
    assert_int_equal(acv_graph_compile(g, acv_backend_ref(), 2, true), 0);
    acv_rng r;
    acv_rng_seed(&r, 4);
    int64_t n = 2 * 3 * 36, m = 2 * 4 * 36;
    for (int64_t i = 0; i < n; i++) acv_graph_data(g, x)[i] = acv_rng_normal(&r);
    for (int64_t i = 0; i < m; i++) acv_graph_data(g, t)[i] = acv_rng_uniform(&r);
    assert_int_equal(acv_graph_forward(g, -1, true, 0), 0);
    assert_int_equal(acv_graph_backward(g, loss), 0);
    int64_t np;
    float *gr = acv_graph_grads(g, &np), *g1 = malloc((size_t)np * sizeof(float));
    memcpy(g1, gr, (size_t)np * sizeof(float));
    /* BCE-with-logits (mean): d/dy = (sigmoid(y) - t) / numel */
    float *dy = malloc((size_t)m * sizeof(float));
    const float *yv = acv_graph_data(g, y), *tv = acv_graph_data(g, t);
    for (int64_t i = 0; i < m; i++) dy[i] = (1 / (1 + expf(-yv[i])) - tv[i]) / (float)m;
    assert_int_equal(acv_graph_backward_from(g, y, dy), 0);
    double worst = 0, mx = 0;
    for (int64_t i = 0; i < np; i++) mx = fmax(mx, fabs(g1[i]));
    for (int64_t i = 0; i < np; i++) worst = fmax(worst, fabs(gr[i] - g1[i]));
    assert_true(mx > 1e-4 && worst <= 1e-5 * mx);
    /* a second call gives the same (gradients are zeroed, not accumulated) */
    assert_int_equal(acv_graph_backward_from(g, y, dy), 0);
    for (int64_t i = 0; i < np; i++) assert_true(fabsf(gr[i] - g1[i]) <= 1e-5 * mx);
    assert_int_equal(acv_graph_backward_from(g, acv_graph_find(g, "c.weight"), dy), ACV_EINVAL);
    free(g1);
    free(dy);
    acv_graph_free(g);
}

/* Parameter gradients through the whole det-s (training mode, batch 2, 64x64, 3 classes):
 * backward_from with a random G = d(loss)/d(output) against central differences of
 * loss = sum(output * G). Max pooling in SPPF makes the loss piecewise smooth: coordinates
 * whose one-sided differences disagree sit on a kink or in float noise (the sum runs over
 * 11,000 outputs, so the step cannot be small) and are skipped, as in test_graph.c; at most
 * half of them may be. */
#define FD_STEP 3e-4f /* float noise of the sum against max-pool kinks */
typedef struct dnet {
    acv_graph *g;
    acv_det_net net;
    const float *G;
    int64_t on;
} dnet;

static double dnet_loss(dnet *m)
{
    assert_int_equal(acv_graph_forward(m->g, -1, true, 0), 0);
    const float *y = acv_graph_data(m->g, m->net.output);
    double s = 0;
    for (int64_t i = 0; i < m->on; i++) s += (double)y[i] * m->G[i];
    return s;
}

static void test_network_gradients(void **state)
{
    (void)state;
    dnet m;
    m.g = acv_graph_new();
    assert_int_equal(acv_det_build(m.g, "det-s", 3, 64, 64, &m.net), 0);
    /* plain init: the class prior's large logits would only add float noise to the sum */
    assert_int_equal(acv_graph_init_params(m.g, 11), 0);
    assert_int_equal(acv_graph_compile(m.g, acv_backend_ref(), 2, true), 0);
    acv_rng r;
    acv_rng_seed(&r, 12);
    int64_t xn = 2 * 3 * 64 * 64;
    float *x = acv_graph_data(m.g, m.net.input);
    for (int64_t i = 0; i < xn; i++) x[i] = acv_rng_uniform(&r);
    m.on = (int64_t)2 * (4 * R + 3) * m.net.n_anchors;
    float *G = malloc((size_t)m.on * sizeof(float));
    for (int64_t i = 0; i < m.on; i++) G[i] = acv_rng_normal(&r);
    m.G = G;
    assert_int_equal(acv_graph_forward(m.g, -1, true, 0), 0);
    assert_int_equal(acv_graph_backward_from(m.g, m.net.output, G), 0);
    static const char *const P[] = {"head.cls.1.2.bias", "head.box.0.2.weight", "neck.3.m.0.cv2.conv.weight",
                                    "backbone.9.cv1.bn.weight", "backbone.0.conv.weight"};
    int failures = 0;
    for (size_t pi = 0; pi < sizeof P / sizeof P[0]; pi++) {
        acv_param_info info;
        int idx = -1;
        for (int i = 0; i < acv_graph_param_count(m.g); i++) {
            assert_int_equal(acv_graph_param(m.g, i, &info), 0);
            if (!strcmp(info.name, P[pi])) {
                idx = i;
                break;
            }
        }
        assert_true(idx >= 0);
        int64_t n = acv_shape_numel(&info.shape);
        float *an = malloc((size_t)n * sizeof(float));
        memcpy(an, info.grad, (size_t)n * sizeof(float));
        double l0 = dnet_loss(&m), dd = 0, nf = 0, na = 0;
        int cnt = n < 16 ? (int)n : 16, skipped = 0;
        for (int k = 0; k < cnt; k++) {
            int64_t j = n <= 16 ? k : (int64_t)acv_rng_below(&r, (uint32_t)n);
            float v = info.data[j], vp = v + FD_STEP, vm = v - FD_STEP;
            info.data[j] = vp;
            double lp = dnet_loss(&m);
            info.data[j] = vm;
            double lm = dnet_loss(&m);
            info.data[j] = v;
            double fd = (lp - lm) / ((double)vp - vm);
            double fw = (lp - l0) / ((double)vp - v), bw = (l0 - lm) / ((double)v - vm);
            if (fabs(fw - bw) > 1e-2 + 0.05 * fabs(fd)) {
                if (getenv("FD_VERBOSE"))
                    print_message("  skip %s[%lld]: fw %.6g bw %.6g an %.6g\n", P[pi], (long long)j, fw, bw, an[j]);
                skipped++;
                continue;
            }
            dd += (fd - an[j]) * (fd - an[j]);
            nf += fd * fd;
            na += (double)an[j] * an[j];
        }
        double rel = sqrt(dd) / fmax(sqrt(fmax(nf, na)), 1e-4);
        print_message("det-s gradient %-28s rel err %.3g (|an| %.3g), %d of %d skipped\n", P[pi], rel, sqrt(na),
                      skipped, cnt);
        if (rel > 2e-2 || skipped * 2 > cnt || na == 0) failures++;
        free(an);
    }
    assert_int_equal(failures, 0);
    free(G);
    acv_graph_free(m.g);
}

/* Forward latency at batch 1 (printed, not asserted), with parameters and GFLOPs. */
static void test_latency(void **state)
{
    (void)state;
    static const char *const archs[2] = {"det-s", "det-m"};
    static const int sizes[2] = {320, 640};
    for (int ai = 0; ai < 2; ai++)
        for (int si = 0; si < 2; si++) {
            acv_graph *g = acv_graph_new();
            acv_det_net net;
            assert_int_equal(acv_det_build(g, archs[ai], 3, sizes[si], sizes[si], &net), 0);
            assert_int_equal(acv_det_init_params(g, &net, 1), 0);
            assert_int_equal(acv_graph_compile(g, acv_backend_cpu(), 1, false), 0);
            float *x = acv_graph_data(g, net.input);
            for (int64_t i = 0; i < (int64_t)3 * sizes[si] * sizes[si]; i++) x[i] = (float)(i % 255) / 255.0f;
            assert_int_equal(acv_graph_forward(g, -1, false, 0), 0); /* warm-up */
            int reps = sizes[si] == 320 ? 3 : 1;
            double best = 1e30;
            for (int k = 0; k < reps; k++) {
                double t0 = acv_now();
                assert_int_equal(acv_graph_forward(g, -1, false, 0), 0);
                best = fmin(best, acv_now() - t0);
            }
            print_message("%s %dx%d batch 1, %d threads: %.2fM params, %.2f GFLOPs, forward %.1f ms (best of %d)\n",
                          archs[ai], sizes[si], sizes[si], acv_get_threads(), acv_graph_num_params(g) / 1e6,
                          acv_graph_gflops(g), best * 1e3, reps);
            acv_graph_free(g);
        }
}

int main(int argc, char **argv)
{
    if (argc > 1) cmocka_set_test_filter(argv[1]); /* e.g. "test_assign_*" */
    acv_set_threads(2);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_anchors),
        cmocka_unit_test(test_ciou_hand),
        cmocka_unit_test(test_dfl_hand),
        cmocka_unit_test(test_assign_single_anchor),
        cmocka_unit_test(test_assign_center_fallback),
        cmocka_unit_test(test_assign_min_target),
        cmocka_unit_test(test_assign_topk),
        cmocka_unit_test(test_assign_brute_force),
        cmocka_unit_test(test_assign_overlap_by_iou),
        cmocka_unit_test(test_assign_keep_one),
        cmocka_unit_test(test_assign_small_first),
        cmocka_unit_test(test_assign_grow),
        cmocka_unit_test(test_loss_gradients),
        cmocka_unit_test(test_loss_balance),
        cmocka_unit_test(test_loss_empty_image),
        cmocka_unit_test(test_decode),
        cmocka_unit_test(test_unletterbox),
        cmocka_unit_test(test_build),
        cmocka_unit_test(test_build_p2),
        cmocka_unit_test(test_param_count_yolov8s),
        cmocka_unit_test(test_inference_matches),
        cmocka_unit_test(test_backward_from),
        cmocka_unit_test(test_network_gradients),
        cmocka_unit_test(test_latency),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
