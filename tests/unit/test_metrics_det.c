/* Detection metrics (COCO protocol + counting): crafted cases whose values are worked out by
 * hand in the comments: perfect and missing predictions, duplicates, crowd regions, difficult
 * boxes, area ranges, classes only in the predictions or only in the ground truth, the detection
 * limits, exact ties (scores, IoUs, thresholds, area bounds); then input checks and the JSON shape.
 *
 * Reading the hand computations: detections are ranked by score; with tp / fp the running counts
 * and npig the gts that count, recall = tp / npig and precision = tp / (tp + fp), made monotone
 * from the right; the precision at recall point i/100 (i = 0..100) is that of the first
 * detection whose recall reaches it, 0 past the last. AP is the mean of the 101 samples. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <math.h>
#include <string.h>
#include <cmocka.h>

#include "autocv/error.h"
#include "metrics/det.h"

#define EPS 1e-9

/* A box [x1, y1, x2, y2] of class c with a score (predictions) or flags (gt). */
static acv_box B(float x1, float y1, float x2, float y2, int c, float score)
{
    return (acv_box){x1, y1, x2, y2, c, score, 0};
}

static acv_box G(float x1, float y1, float x2, float y2, int c, unsigned flags)
{
    return (acv_box){x1, y1, x2, y2, c, 1, flags};
}

static acv_det_summary summary(acv_det_metrics *m)
{
    acv_det_summary s;
    assert_int_equal(acv_det_metrics_summary(m, &s), 0);
    return s;
}

static acv_det_class_stats cls_stats(acv_det_metrics *m, int c)
{
    acv_det_class_stats s;
    assert_int_equal(acv_det_metrics_class(m, c, &s), 0);
    return s;
}

static void test_perfect(void **state)
{
    (void)state;
    acv_det_metrics *m = acv_det_metrics_new(2, NULL);
    assert_non_null(m);
    /* class 0: a small (20x20) and a large (200x100) object; class 1: a medium one (50x40) */
    acv_box g1[] = {G(10, 10, 30, 30, 0, 0), G(100, 100, 150, 140, 1, 0)};
    acv_box g2[] = {G(0, 0, 200, 100, 0, 0)};
    acv_box p1[] = {B(100, 100, 150, 140, 1, 0.8f), B(10, 10, 30, 30, 0, 0.9f)};
    acv_box p2[] = {B(0, 0, 200, 100, 0, 0.7f)};
    assert_int_equal(acv_det_metrics_add_image(m, g1, 2, p1, 2), 0);
    assert_int_equal(acv_det_metrics_add_image(m, g2, 1, p2, 1), 0);
    /* every detection a TP at every threshold: precision 1/(1 + 2^-52) everywhere, so 1 */
    acv_det_summary s = summary(m);
    const double all[] = {s.map50_95, s.map50, s.map75, s.map_small, s.map_medium, s.map_large,
                          s.ar1, s.ar10, s.ar100, s.ar_small, s.ar_medium, s.ar_large, s.count_exact};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) assert_float_equal(all[i], 1.0, EPS);
    assert_float_equal(s.count_mae, 0.0, EPS);
    assert_int_equal(s.images, 2);
    acv_det_class_stats c0 = cls_stats(m, 0);
    assert_int_equal(c0.gt, 2);
    assert_int_equal(c0.pred, 2);
    double pr[ACV_DET_RECALL_POINTS];
    assert_int_equal(acv_det_metrics_pr_curve(m, 1, pr), 0);
    for (int i = 0; i < ACV_DET_RECALL_POINTS; i++) assert_float_equal(pr[i], 1.0, EPS);
    acv_det_metrics_free(m);
}

static void test_no_predictions(void **state)
{
    (void)state;
    acv_det_metrics *m = acv_det_metrics_new(2, NULL);
    acv_box g1[] = {G(10, 10, 30, 30, 0, 0), G(0, 0, 200, 100, 1, 0)};
    assert_int_equal(acv_det_metrics_add_image(m, g1, 2, NULL, 0), 0);
    assert_int_equal(acv_det_metrics_add_image(m, NULL, 0, NULL, 0), 0);
    acv_det_summary s = summary(m);
    /* both classes have gt and no detection: AP 0, recall 0 */
    assert_float_equal(s.map50_95, 0.0, EPS);
    assert_float_equal(s.map50, 0.0, EPS);
    assert_float_equal(s.ar100, 0.0, EPS);
    assert_float_equal(s.map_small, 0.0, EPS);
    assert_float_equal(s.map_large, 0.0, EPS);
    assert_float_equal(s.map_medium, -1.0, EPS); /* no medium gt anywhere */
    /* counts: image 1 misses one object of each class (2), image 2 is exact: 2 / (2 x 2) */
    assert_float_equal(s.count_mae, 0.5, EPS);
    assert_float_equal(s.count_exact, 0.5, EPS);
    double pr[ACV_DET_RECALL_POINTS];
    acv_det_metrics_pr_curve(m, 0, pr);
    for (int i = 0; i < ACV_DET_RECALL_POINTS; i++) assert_float_equal(pr[i], 0.0, EPS);
    acv_det_metrics_free(m);
}

static void test_duplicate_lower_score(void **state)
{
    (void)state;
    acv_det_metrics *m = acv_det_metrics_new(1, NULL);
    acv_box g[] = {G(0, 0, 100, 100, 0, 0)};
    acv_box p[] = {B(0, 0, 100, 100, 0, 0.8f), B(0, 0, 100, 100, 0, 0.9f)};
    assert_int_equal(acv_det_metrics_add_image(m, g, 1, p, 2), 0);
    /* ranked TP (.9), FP (.8): recall [1, 1], precision [1, 1/2] -> monotone [1, 1/2]; every recall
     * point is reached by the first detection: AP 1 at every threshold, the duplicate costs nothing */
    acv_det_summary s = summary(m);
    assert_float_equal(s.map50_95, 1.0, EPS);
    double pr[ACV_DET_RECALL_POINTS];
    acv_det_metrics_pr_curve(m, 0, pr);
    assert_float_equal(pr[100], 1.0, EPS);
    /* counting sees both: 2 predicted for 1 object */
    assert_float_equal(s.count_mae, 1.0, EPS);
    assert_float_equal(s.count_exact, 0.0, EPS);
    acv_det_metrics_free(m);
}

static void test_loose_duplicate_first(void **state)
{
    (void)state;
    acv_det_metrics *m = acv_det_metrics_new(1, NULL);
    acv_box g[] = {G(0, 0, 100, 100, 0, 0)};
    /* a loose box (IoU 6000 / 10000 = 0.6) scores higher than the exact one */
    acv_box p[] = {B(0, 0, 100, 100, 0, 0.9f), B(0, 0, 100, 60, 0, 0.95f)};
    assert_int_equal(acv_det_metrics_add_image(m, g, 1, p, 2), 0);
    /* thresholds .50 .55 .60: loose TP, exact FP -> AP 1 (as above);
     * .65 .. .95 (7): loose FP, exact TP -> recall [0, 1], precision [0, 1/2] -> monotone [1/2, 1/2]
     * -> AP 1/2. AP = (3 x 1 + 7 x 0.5) / 10 = 0.65, AP50 = 1, AP75 = 0.5.
     * AR@1 keeps only the loose box: recall 1 at 3 thresholds, 0 at 7 -> 0.3; AR@10 = AR@100 = 1 */
    acv_det_summary s = summary(m);
    assert_float_equal(s.map50_95, 0.65, EPS);
    assert_float_equal(s.map50, 1.0, EPS);
    assert_float_equal(s.map75, 0.5, EPS);
    assert_float_equal(s.ar1, 0.3, EPS);
    assert_float_equal(s.ar10, 1.0, EPS);
    assert_float_equal(s.ar100, 1.0, EPS);
    acv_det_metrics_free(m);
}

static void test_half_recall(void **state)
{
    (void)state;
    acv_det_metrics *m = acv_det_metrics_new(1, NULL);
    acv_box g[] = {G(0, 0, 100, 100, 0, 0), G(200, 200, 300, 300, 0, 0)};
    acv_box p[] = {B(0, 0, 100, 100, 0, 0.9f)};
    assert_int_equal(acv_det_metrics_add_image(m, g, 2, p, 1), 0);
    /* recall 1/2 at precision 1: points 0/100 .. 50/100 (51 of them) get 1, the rest 0 */
    acv_det_summary s = summary(m);
    assert_float_equal(s.map50, 51.0 / 101.0, EPS);
    assert_float_equal(s.map50_95, 51.0 / 101.0, EPS);
    assert_float_equal(s.ar100, 0.5, EPS);
    double pr[ACV_DET_RECALL_POINTS];
    acv_det_metrics_pr_curve(m, 0, pr);
    assert_float_equal(pr[50], 1.0, EPS);
    assert_float_equal(pr[51], 0.0, EPS);
    acv_det_metrics_free(m);
}

static void test_precision_steps(void **state)
{
    (void)state;
    acv_det_metrics *m = acv_det_metrics_new(1, NULL);
    acv_box g[] = {G(0, 0, 10, 10, 0, 0), G(20, 0, 30, 10, 0, 0), G(40, 0, 50, 10, 0, 0)};
    /* ranked TP .9, FP .8, TP .7, FP .6 (the third object missed) */
    acv_box p[] = {B(0, 0, 10, 10, 0, 0.9f), B(60, 0, 70, 10, 0, 0.8f), B(20, 0, 30, 10, 0, 0.7f),
                   B(80, 0, 90, 10, 0, 0.6f)};
    assert_int_equal(acv_det_metrics_add_image(m, g, 3, p, 4), 0);
    /* recall [1/3, 1/3, 2/3, 2/3], precision [1, 1/2, 2/3, 1/2] -> monotone [1, 2/3, 2/3, 1/2].
     * Points 0..33 (r <= 1/3): 1 (34 points); 34..66 (r <= 2/3): 2/3 (33 points); 67..100: 0.
     * AP = (34 + 33 x 2/3) / 101 = 56 / 101 */
    acv_det_summary s = summary(m);
    assert_float_equal(s.map50, 56.0 / 101.0, EPS);
    double pr[ACV_DET_RECALL_POINTS];
    acv_det_metrics_pr_curve(m, 0, pr);
    assert_float_equal(pr[33], 1.0, EPS);
    assert_float_equal(pr[34], 2.0 / 3.0, EPS);
    assert_float_equal(pr[66], 2.0 / 3.0, EPS);
    assert_float_equal(pr[67], 0.0, EPS);
    acv_det_metrics_free(m);
}

static void test_crowd_absorbs_detections(void **state)
{
    (void)state;
    acv_det_metrics *m = acv_det_metrics_new(1, NULL);
    /* a crowd region with one ordinary object inside it */
    acv_box g[] = {G(0, 0, 400, 400, 0, ACV_BOX_CROWD), G(10, 10, 60, 60, 0, 0)};
    /* .95 and .92 inside the region only; .9 on the object; .8 a duplicate of it */
    acv_box p[] = {B(200, 200, 250, 250, 0, 0.95f), B(100, 300, 150, 350, 0, 0.92f),
                   B(10, 10, 60, 60, 0, 0.9f), B(10, 10, 60, 60, 0, 0.8f)};
    assert_int_equal(acv_det_metrics_add_image(m, g, 2, p, 4), 0);
    /* crowd IoU = intersection / detection area = 1 for the boxes inside: .95, .92 are ignored;
     * .9 prefers the ordinary gt (IoU 1; ignored gts are tried last); .8 finds the object taken
     * and falls into the region: ignored too. One TP, nothing else: AP 1 */
    acv_det_summary s = summary(m);
    assert_float_equal(s.map50_95, 1.0, EPS);
    assert_float_equal(s.ar100, 1.0, EPS);
    assert_int_equal(cls_stats(m, 0).gt, 1);
    /* counting: the region is not an object: 4 predicted for 1 */
    assert_float_equal(s.count_mae, 3.0, EPS);
    acv_det_metrics_free(m);

    /* the same region as an ordinary gt: ordinary IoU, the boxes inside are FPs:
     * ranked FP .95, FP .92, TP .9, FP .8; npig 2: recall [0, 0, 1/2, 1/2],
     * precision [0, 0, 1/3, 1/4] -> monotone [1/3, 1/3, 1/3, 1/4]: points 0..50 -> 1/3, rest 0 */
    m = acv_det_metrics_new(1, NULL);
    g[0].flags = 0;
    assert_int_equal(acv_det_metrics_add_image(m, g, 2, p, 4), 0);
    assert_float_equal(summary(m).map50, 51.0 / 3.0 / 101.0, EPS);
    acv_det_metrics_free(m);
}

static void test_difficult(void **state)
{
    (void)state;
    acv_det_metrics *m = acv_det_metrics_new(1, NULL);
    acv_box g[] = {G(0, 0, 50, 50, 0, 0), G(100, 100, 150, 150, 0, ACV_BOX_DIFFICULT)};
    acv_box p[] = {B(100, 100, 150, 150, 0, 0.95f), B(100, 100, 150, 150, 0, 0.93f), B(0, 0, 50, 50, 0, 0.9f)};
    assert_int_equal(acv_det_metrics_add_image(m, g, 2, p, 3), 0);
    /* .95 matches the difficult box: ignored. .93: the difficult box is taken and, unlike a crowd
     * region, matched only once: FP. .9: TP. Ranked ign, FP, TP; npig 1: recall [0, 0, 1],
     * precision [0, 0, 1/2] -> monotone 1/2 throughout: AP 0.5 */
    acv_det_summary s = summary(m);
    assert_float_equal(s.map50_95, 0.5, EPS);
    acv_det_class_stats c = cls_stats(m, 0);
    assert_int_equal(c.gt, 1);
    assert_int_equal(c.pred, 3);
    assert_float_equal(s.count_mae, 2.0, EPS); /* 3 predicted, 1 object */
    acv_det_metrics_free(m);

    /* crowd instead: both boxes on it are ignored, AP 1 */
    m = acv_det_metrics_new(1, NULL);
    g[1].flags = ACV_BOX_CROWD;
    assert_int_equal(acv_det_metrics_add_image(m, g, 2, p, 3), 0);
    assert_float_equal(summary(m).map50_95, 1.0, EPS);
    acv_det_metrics_free(m);
}

static void test_area_ranges(void **state)
{
    (void)state;
    acv_det_metrics *m = acv_det_metrics_new(1, NULL);
    /* small 20x20 = 400, medium 50x50 = 2500, large 120x120 = 14400 */
    acv_box g[] = {G(0, 0, 20, 20, 0, 0), G(100, 0, 150, 50, 0, 0), G(200, 0, 320, 120, 0, 0)};
    /* small and large found; a medium-sized FP (50x50) elsewhere */
    acv_box p[] = {B(0, 0, 20, 20, 0, 0.9f), B(200, 0, 320, 120, 0, 0.8f), B(0, 300, 50, 350, 0, 0.7f)};
    assert_int_equal(acv_det_metrics_add_image(m, g, 3, p, 3), 0);
    acv_det_summary s = summary(m);
    /* all: TP, TP, FP; npig 3: recall [1/3, 2/3, 2/3], precision [1, 1, 2/3]: points 0..66 -> 1 */
    assert_float_equal(s.map50_95, 67.0 / 101.0, EPS);
    /* small: only the small gt counts; the large detection matches an ignored gt, the FP is
     * unmatched and outside the range: both ignored. AP 1. Large likewise. */
    assert_float_equal(s.map_small, 1.0, EPS);
    assert_float_equal(s.map_large, 1.0, EPS);
    /* medium: the medium gt is missed, the FP is in range: recall 0: AP 0 */
    assert_float_equal(s.map_medium, 0.0, EPS);
    assert_float_equal(s.ar_small, 1.0, EPS);
    assert_float_equal(s.ar_medium, 0.0, EPS);
    assert_float_equal(s.ar_large, 1.0, EPS);
    acv_det_metrics_free(m);
}

static void test_given_area_and_bounds(void **state)
{
    (void)state;
    acv_det_metrics *m = acv_det_metrics_new(2, NULL);
    /* class 0: a 100x100 box whose given area (a mask's, say) is 500: small, not large.
     * class 1: a 32x32 box, area exactly 32^2: both small and medium (closed ranges) */
    acv_box g[] = {G(0, 0, 100, 100, 0, 0), G(200, 0, 232, 32, 1, 0)};
    double area[] = {500, 1024};
    acv_box p[] = {B(0, 0, 100, 100, 0, 0.9f), B(200, 0, 232, 32, 1, 0.9f)};
    assert_int_equal(acv_det_metrics_add_image_areas(m, g, area, 2, p, 2), 0);
    acv_det_summary s = summary(m);
    assert_float_equal(s.map_small, 1.0, EPS);  /* both classes */
    assert_float_equal(s.map_medium, 1.0, EPS); /* class 1 */
    assert_float_equal(s.map_large, -1.0, EPS); /* no large gt: the 100x100 box is "small" */
    double bad_area[] = {500, NAN};
    assert_int_equal(acv_det_metrics_add_image_areas(m, g, bad_area, 2, p, 2), ACV_EINVAL);
    assert_non_null(strstr(acv_errmsg(), "gt 1"));
    acv_det_metrics_free(m);
}

static void test_classes_only_on_one_side(void **state)
{
    (void)state;
    const char *names[] = {"bolt", "nut", "washer"};
    acv_det_metrics *m = acv_det_metrics_new(3, names);
    /* bolt: found; nut: only in the ground truth; washer: only in the predictions */
    acv_box g[] = {G(0, 0, 50, 50, 0, 0), G(100, 0, 150, 50, 1, 0)};
    acv_box p[] = {B(0, 0, 50, 50, 0, 0.9f), B(200, 0, 250, 50, 2, 0.9f)};
    assert_int_equal(acv_det_metrics_add_image(m, g, 2, p, 2), 0);
    assert_float_equal(cls_stats(m, 0).ap, 1.0, EPS);
    assert_float_equal(cls_stats(m, 1).ap, 0.0, EPS);  /* in the mean */
    assert_float_equal(cls_stats(m, 2).ap, -1.0, EPS); /* no AP, out of the mean */
    assert_float_equal(cls_stats(m, 2).ar100, -1.0, EPS);
    acv_det_summary s = summary(m);
    assert_float_equal(s.map50_95, 0.5, EPS);
    assert_float_equal(s.ar100, 0.5, EPS);
    /* counts: nut off by one, washer off by one: 2 / (1 image x 3 classes) */
    assert_float_equal(s.count_mae, 2.0 / 3.0, EPS);
    double pr[ACV_DET_RECALL_POINTS];
    acv_det_metrics_pr_curve(m, 2, pr);
    assert_float_equal(pr[0], -1.0, EPS);
    acv_det_metrics_free(m);

    /* no class with gt at all: every mean is undefined */
    m = acv_det_metrics_new(1, NULL);
    assert_int_equal(acv_det_metrics_add_image(m, NULL, 0, p, 1), 0);
    s = summary(m);
    assert_float_equal(s.map50_95, -1.0, EPS);
    assert_float_equal(s.ar1, -1.0, EPS);
    acv_det_metrics_free(m);
}

static void test_max_detections(void **state)
{
    (void)state;
    acv_det_metrics *m = acv_det_metrics_new(1, NULL);
    acv_box g[] = {G(0, 0, 10, 10, 0, 0)};
    /* 100 FPs with higher scores, then the exact box: the 101st detection is not evaluated */
    acv_box p[101];
    for (int i = 0; i < 100; i++) p[i] = B(20.0f + 11 * i, 0, 30.0f + 11 * i, 10, 0, 0.9f - 0.001f * i);
    p[100] = B(0, 0, 10, 10, 0, 0.1f);
    assert_int_equal(acv_det_metrics_add_image(m, g, 1, p, 101), 0);
    acv_det_summary s = summary(m);
    assert_float_equal(s.map50_95, 0.0, EPS);
    assert_float_equal(s.ar100, 0.0, EPS);
    assert_int_equal(cls_stats(m, 0).pred, 101);
    /* counting takes every prediction: scores .9 .. .801 are >= .5 for all 100 FPs */
    assert_float_equal(s.count_mae, 99.0, EPS);
    acv_det_metrics_free(m);

    /* 99 FPs first: the exact box is the 100th, TP at recall 1 with precision 1/100 */
    m = acv_det_metrics_new(1, NULL);
    assert_int_equal(acv_det_metrics_add_image(m, g, 1, p + 1, 100), 0);
    assert_float_equal(summary(m).map50, 1.0 / 100.0, 1e-12);
    acv_det_metrics_free(m);
}

static void test_exact_ties(void **state)
{
    (void)state;
    acv_det_metrics *m = acv_det_metrics_new(2, NULL);
    /* class 0, equal scores: the order given decides (FP given first, then TP):
     * ranked FP, TP -> precision 1/2 at every recall point: AP 0.5 */
    acv_box g[] = {G(0, 0, 100, 100, 0, 0), G(0, 200, 100, 300, 1, 0), G(50, 200, 150, 300, 1, 0)};
    acv_box p[] = {B(300, 300, 400, 400, 0, 0.8f), B(0, 0, 100, 100, 0, 0.8f),
                   /* class 1: IoU 7500 / 12500 = 0.6 with both gts: the later one wins */
                   B(25, 200, 125, 300, 1, 0.9f), B(50, 200, 150, 300, 1, 0.8f)};
    assert_int_equal(acv_det_metrics_add_image(m, g, 3, p, 4), 0);
    assert_float_equal(cls_stats(m, 0).ap, 0.5, EPS);
    /* class 1 at .50 .55 .60 (0.6 >= 0.6 matches): .9 takes gt 2, .8 finds it taken: FP ->
     * recall 1/2 at precision 1: 51/101. From .65: .9 FP, .8 TP: precision 1/2 up to recall 1/2:
     * 25.5/101. AP = (3 x 51 + 7 x 25.5) / 1010 */
    acv_det_class_stats c1 = cls_stats(m, 1);
    assert_float_equal(c1.ap50, 51.0 / 101.0, EPS);
    assert_float_equal(c1.ap, (3 * 51.0 + 7 * 25.5) / 1010.0, EPS);
    acv_det_metrics_free(m);
}

static void test_iou_at_thresholds(void **state)
{
    (void)state;
    /* IoU exactly 0.75 (300 / 400) matches at .50 .. .75: 6 of 10 thresholds: AP 0.6, AP75 1.
     * IoU exactly 0.9 (900 / 1000) also matches the 9th threshold, numpy's 0.8999999999999999:
     * AP 0.9 (COCOeval does the same) */
    acv_det_metrics *m = acv_det_metrics_new(2, NULL);
    acv_box g[] = {G(0, 0, 40, 10, 0, 0), G(0, 100, 100, 110, 1, 0)};
    acv_box p[] = {B(0, 0, 30, 10, 0, 0.9f), B(0, 100, 90, 110, 1, 0.9f)};
    assert_int_equal(acv_det_metrics_add_image(m, g, 2, p, 2), 0);
    acv_det_class_stats c0 = cls_stats(m, 0), c1 = cls_stats(m, 1);
    assert_float_equal(c0.ap, 0.6, EPS);
    assert_float_equal(c0.ap75, 1.0, EPS);
    assert_float_equal(c0.ar100, 0.6, EPS);
    assert_float_equal(c1.ap, 0.9, EPS);
    acv_det_metrics_free(m);
}

static void test_images_accumulate(void **state)
{
    (void)state;
    /* the half-recall case split over two images gives the same AP, and reset forgets it */
    acv_det_metrics *m = acv_det_metrics_new(1, NULL);
    acv_box g1[] = {G(0, 0, 100, 100, 0, 0)}, g2[] = {G(200, 200, 300, 300, 0, 0)};
    acv_box p1[] = {B(0, 0, 100, 100, 0, 0.9f)};
    assert_int_equal(acv_det_metrics_add_image(m, g1, 1, p1, 1), 0);
    assert_float_equal(summary(m).map50, 1.0, EPS);
    assert_int_equal(acv_det_metrics_add_image(m, g2, 1, NULL, 0), 0); /* results recomputed */
    acv_det_summary s = summary(m);
    assert_float_equal(s.map50, 51.0 / 101.0, EPS);
    assert_float_equal(s.count_exact, 0.5, EPS);
    assert_int_equal(s.images, 2);
    acv_det_metrics_reset(m);
    s = summary(m);
    assert_int_equal(s.images, 0);
    assert_float_equal(s.map50, -1.0, EPS);
    assert_float_equal(s.count_mae, -1.0, EPS);
    acv_det_metrics_free(m);
}

static void test_count_threshold(void **state)
{
    (void)state;
    acv_det_metrics *m = acv_det_metrics_new(1, NULL);
    assert_int_equal(acv_det_metrics_set_count_threshold(m, 0.7), 0);
    assert_int_equal(acv_det_metrics_set_count_threshold(m, NAN), ACV_EINVAL);
    acv_box g[] = {G(0, 0, 10, 10, 0, 0)};
    /* 0.7 counts at threshold 0.7 (both compared as float), 0.69 does not */
    acv_box p[] = {B(0, 0, 10, 10, 0, 0.7f), B(50, 0, 60, 10, 0, 0.69f)};
    assert_int_equal(acv_det_metrics_add_image(m, g, 1, p, 2), 0);
    assert_float_equal(summary(m).count_exact, 1.0, EPS);
    acv_det_metrics_free(m);
}

static void test_bad_input(void **state)
{
    (void)state;
    assert_null(acv_det_metrics_new(0, NULL));
    const char *names[] = {"a", NULL};
    assert_null(acv_det_metrics_new(2, names));
    acv_det_metrics *m = acv_det_metrics_new(2, NULL);
    acv_box g[] = {G(0, 0, 10, 10, 0, 0)};
    acv_box p[] = {B(0, 0, 10, 10, 0, 0.9f), B(0, 0, 10, 10, 2, 0.9f)};
    assert_int_equal(acv_det_metrics_add_image(m, g, 1, p, 2), ACV_EINVAL);
    assert_non_null(strstr(acv_errmsg(), "prediction 1"));
    p[1] = B(0, 0, 10, 10, 1, NAN);
    assert_int_equal(acv_det_metrics_add_image(m, g, 1, p, 2), ACV_EINVAL);
    p[1] = B(10, 0, 5, 10, 1, 0.5f);
    assert_int_equal(acv_det_metrics_add_image(m, g, 1, p, 2), ACV_EINVAL);
    assert_non_null(strstr(acv_errmsg(), "inverted"));
    g[0].x2 = INFINITY;
    assert_int_equal(acv_det_metrics_add_image(m, g, 1, p, 1), ACV_EINVAL);
    assert_non_null(strstr(acv_errmsg(), "gt 0"));
    assert_int_equal(acv_det_metrics_add_image(m, g, -1, p, 1), ACV_EINVAL);
    assert_int_equal(acv_det_metrics_add_image(m, NULL, 1, p, 1), ACV_EINVAL);
    /* nothing was added */
    assert_int_equal(acv_det_metrics_images(m), 0);
    assert_float_equal(summary(m).map50, -1.0, EPS);
    /* empty boxes are fine (IoU 0) */
    g[0] = G(5, 5, 5, 5, 0, 0);
    assert_int_equal(acv_det_metrics_add_image(m, g, 1, p, 1), 0);
    acv_det_metrics_free(m);
}

static void test_json(void **state)
{
    (void)state;
    const char *names[] = {"bolt", "nut"};
    acv_det_metrics *m = acv_det_metrics_new(2, names);
    acv_box g[] = {G(0, 0, 100, 100, 0, 0), G(200, 200, 300, 300, 0, 0)};
    acv_box p[] = {B(0, 0, 100, 100, 0, 0.9f), B(400, 0, 450, 50, 1, 0.3f)};
    assert_int_equal(acv_det_metrics_add_image(m, g, 2, p, 2), 0);
    json_t *j = NULL;
    assert_int_equal(acv_det_metrics_to_json(m, &j), 0);
    assert_non_null(j);
    const char *keys[] = {"map50_95", "map50", "map75", "map_large", "ar1", "ar10", "ar100", "ar_large",
                          "count_mae", "count_exact", "count_threshold"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) assert_true(json_is_real(json_object_get(j, keys[i])));
    assert_float_equal(json_real_value(json_object_get(j, "map50")), 51.0 / 101.0, EPS);
    assert_true(json_is_null(json_object_get(j, "map_small")));  /* no small gt */
    assert_true(json_is_null(json_object_get(j, "ar_medium")));
    assert_int_equal(json_integer_value(json_object_get(j, "images")), 1);
    /* counting: bolt 1 predicted (0.9) for 2, nut 0 (0.3 < 0.5) for 0: 1 / 2 */
    assert_float_equal(json_real_value(json_object_get(j, "count_mae")), 0.5, EPS);
    json_t *per = json_object_get(j, "per_class");
    assert_int_equal(json_array_size(per), 2);
    json_t *bolt = json_array_get(per, 0), *nut = json_array_get(per, 1);
    assert_string_equal(json_string_value(json_object_get(bolt, "name")), "bolt");
    assert_float_equal(json_real_value(json_object_get(bolt, "ap50")), 51.0 / 101.0, EPS);
    assert_int_equal(json_integer_value(json_object_get(bolt, "gt")), 2);
    assert_int_equal(json_integer_value(json_object_get(nut, "pred")), 1);
    assert_true(json_is_null(json_object_get(nut, "ap")));
    json_t *mae = json_object_get(j, "count_mae_per_class");
    assert_float_equal(json_real_value(json_array_get(mae, 0)), 1.0, EPS);
    assert_float_equal(json_real_value(json_array_get(mae, 1)), 0.0, EPS);
    json_t *curves = json_object_get(j, "pr_curves");
    json_t *bc = json_object_get(json_array_get(curves, 0), "precision");
    assert_int_equal(json_array_size(bc), 101);
    assert_float_equal(json_real_value(json_array_get(bc, 50)), 1.0, EPS);
    assert_true(json_is_null(json_object_get(json_array_get(curves, 1), "precision")));
    json_decref(j);
    acv_det_metrics_free(m);

    /* names default to the class index; a name that is not UTF-8 is refused */
    m = acv_det_metrics_new(2, NULL);
    assert_int_equal(acv_det_metrics_to_json(m, &j), 0);
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(j, "per_class"), 1), "name")), "1");
    assert_true(json_is_null(json_object_get(j, "count_mae")));
    json_decref(j);
    acv_det_metrics_free(m);
    const char *bad[] = {"a", "b\xff"};
    m = acv_det_metrics_new(2, bad);
    assert_int_equal(acv_det_metrics_to_json(m, &j), ACV_EINVAL);
    assert_null(j);
    acv_det_metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_perfect),
        cmocka_unit_test(test_no_predictions),
        cmocka_unit_test(test_duplicate_lower_score),
        cmocka_unit_test(test_loose_duplicate_first),
        cmocka_unit_test(test_half_recall),
        cmocka_unit_test(test_precision_steps),
        cmocka_unit_test(test_crowd_absorbs_detections),
        cmocka_unit_test(test_difficult),
        cmocka_unit_test(test_area_ranges),
        cmocka_unit_test(test_given_area_and_bounds),
        cmocka_unit_test(test_classes_only_on_one_side),
        cmocka_unit_test(test_max_detections),
        cmocka_unit_test(test_exact_ties),
        cmocka_unit_test(test_iou_at_thresholds),
        cmocka_unit_test(test_images_accumulate),
        cmocka_unit_test(test_count_threshold),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
