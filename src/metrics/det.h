/* Detection metrics as the COCO evaluation defines them (pycocotools' COCOeval, iouType
 * "bbox"), plus counting: an accumulator fed image by image with ground-truth and predicted
 * boxes that reports AP@[.50:.05:.95], AP50, AP75, AP for small / medium / large objects,
 * AR@1/10/100 and AR per area, per-class AP and precision-recall curves, and the per-class
 * count MAE and the share of images in which the count of every class is exact.
 *
 * Protocol (COCOeval, reproduced decision for decision):
 *  - IoU thresholds .50:.05:.95 and recall points 0:.01:1 are numpy.linspace's exact values;
 *    at most 1, 10 or 100 detections per image and class, the highest scoring (ties keep the
 *    order they were given in: the sort is stable).
 *  - Per image and class, each detection in score order is matched to the unmatched gt with the
 *    highest IoU >= the threshold (a later gt wins an exact tie), trying non-ignored gts first:
 *    once a non-ignored gt matches, ignored ones are not considered.
 *  - Crowd gts (ACV_BOX_CROWD) are ignored and may be matched by any number of detections; their
 *    IoU is intersection / area(detection). Difficult gts (ACV_BOX_DIFFICULT, Pascal VOC) are
 *    ignored too, with the ordinary IoU, and are matched at most once (a COCO gt with
 *    "ignore": 1 and iscrowd 0): a detection on one is neither a true nor a false positive,
 *    a second detection on the same one is a false positive unless it matches something else.
 *  - Area ranges (for AP/AR small, medium, large) are closed intervals as in COCOeval:
 *    all [0, 1e10], small [0, 32^2], medium [32^2, 96^2], large [96^2, 1e10] (an area of
 *    exactly 32^2 is both small and medium). A gt outside the range is ignored; a detection
 *    outside it is ignored when unmatched. A gt's area is its box area unless given
 *    (acv_det_metrics_add_image_areas: COCO uses the annotation's "area"); a detection's is
 *    its box area.
 *  - Per class, all images' detections are ranked by score (stable: earlier images first), the
 *    precision made monotone from the right and sampled at the 101 recall points (first
 *    detection whose recall >= the point; 0 past the last); AP is the mean of the samples,
 *    then over the IoU thresholds. A class with no non-ignored gt in the set has no AP (-1,
 *    null in JSON) and is left out of the means; a class with gt and no detection has AP 0.
 *    A mean with no class left is -1 (null).
 * Boxes are float32: coordinates or scores that differ by less than float precision tie.
 *
 * Counting (per image, over all predictions given, not only the first 100): a class's predicted
 * count is its predictions with score >= the count threshold (default 0.5); its true count is
 * its gts that are neither crowd nor difficult. count_mae is the mean over images and classes
 * of |predicted - true|; count_exact the share of images where every class's count is exact.
 *
 * Memory: per detection kept (<= 100 per image and class) about 24 bytes; per class ~1.2 KB
 * once results are computed. Results are computed on demand and cached until the next add. */
#ifndef ACV_METRICS_DET_H
#define ACV_METRICS_DET_H

#include <stdint.h>

#include <jansson.h>

#include "vision/box.h"

typedef struct acv_det_metrics acv_det_metrics;

enum { ACV_DET_RECALL_POINTS = 101 };

/* The headline figures; every AP and AR is -1 when no class has a non-ignored gt (for
 * that area range). count_mae and count_exact are -1 when no image was added. */
typedef struct acv_det_summary {
    double map50_95, map50, map75;          /* area all, 100 detections */
    double map_small, map_medium, map_large;
    double ar1, ar10, ar100;                /* area all, mean over IoU thresholds */
    double ar_small, ar_medium, ar_large;   /* 100 detections */
    double count_mae, count_exact;
    int64_t images;
} acv_det_summary;

typedef struct acv_det_class_stats {
    double ap, ap50, ap75;   /* area all, 100 detections; -1 when the class has no gt */
    double ar100;            /* -1 likewise */
    double count_mae;        /* mean over images of |predicted - true count|; -1 with no image */
    int64_t gt;              /* gts that are neither crowd nor difficult */
    int64_t pred;            /* predictions given (all scores) */
} acv_det_class_stats;

/* A new, empty accumulator for k classes (1 <= k <= 100000). class_names has k entries (copied),
 * or is NULL to name classes by index ("0", "1", ...). Returns NULL (message set) on a bad k, a
 * NULL name or out of memory. Free with acv_det_metrics_free. */
acv_det_metrics *acv_det_metrics_new(int k, const char *const *class_names);
void acv_det_metrics_free(acv_det_metrics *m);
/* Forgets every image added so far (the count threshold is kept). */
void acv_det_metrics_reset(acv_det_metrics *m);
/* Score from which a prediction counts (default 0.5; compared in float32, like the scores); must
 * be finite. Counting happens as images are added: set it before the first add. */
int acv_det_metrics_set_count_threshold(acv_det_metrics *m, double thr);

/* Adds one image: its ground truth (gt[0..ngt), flags ACV_BOX_CROWD / ACV_BOX_DIFFICULT honoured,
 * score unused) and its predictions (pred[0..npred), flags unused), in pixels. The whole image is
 * checked first: a class outside [0, k), a non-finite coordinate or score, or an inverted box
 * (x2 < x1 or y2 < y1) is ACV_EINVAL naming "gt N" or "prediction N", and leaves m unchanged
 * (as does ACV_ENOMEM). Empty boxes are allowed (IoU 0). Order matters only for exact ties
 * (scores, IoUs), as in COCOeval: add images in the order COCO would (ascending image id). */
int acv_det_metrics_add_image(acv_det_metrics *m, const acv_box *gt, int ngt, const acv_box *pred, int npred);
/* The same, with each gt's area for the area ranges (COCO's annotation "area", e.g. the
 * segmentation's area); gt_area may be NULL (box areas). Areas must be finite and >= 0. */
int acv_det_metrics_add_image_areas(acv_det_metrics *m, const acv_box *gt, const double *gt_area, int ngt,
                                    const acv_box *pred, int npred);

int acv_det_metrics_num_classes(const acv_det_metrics *m);
int64_t acv_det_metrics_images(const acv_det_metrics *m);

/* The results (computed on the first call after an add, then cached; hence m is not const).
 * Return 0 or ACV_ENOMEM. */
int acv_det_metrics_summary(acv_det_metrics *m, acv_det_summary *out);
/* Class c in [0, k). */
int acv_det_metrics_class(acv_det_metrics *m, int c, acv_det_class_stats *out);
/* Class c's precision at IoU 0.5 (area all, 100 detections) at the recall points i/100,
 * i = 0..100 (monotone, as AP50 averages it) into pr[ACV_DET_RECALL_POINTS]; all -1 when the
 * class has no gt. */
int acv_det_metrics_pr_curve(acv_det_metrics *m, int c, double *pr);

/* Writes the results as a new JSON object into *out (caller json_decref's it); undefined
 * figures (-1 above) are null:
 * {"images":N, "map50_95":F, "map50":F, "map75":F, "map_small":F, "map_medium":F, "map_large":F,
 *  "ar1":F, "ar10":F, "ar100":F, "ar_small":F, "ar_medium":F, "ar_large":F,
 *  "count_threshold":F, "count_mae":F, "count_exact":F, "count_mae_per_class":[F, ...],
 *  "per_class":[{"name":S, "ap":F, "ap50":F, "ap75":F, "ar100":F, "gt":N, "pred":N,
 *                "count_mae":F}, ...],
 *  "pr_curves":[{"name":S, "iou":0.5, "precision":[101 x F] or null}, ...]}
 * (per-class arrays in class order; the recall points are i/100). ACV_EINVAL for a class name
 * that is not UTF-8, ACV_ENOMEM. */
int acv_det_metrics_to_json(acv_det_metrics *m, json_t **out);

#endif
