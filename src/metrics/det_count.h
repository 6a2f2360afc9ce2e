/* Counting thresholds: per class, the detection score from which a detection is counted,
 * chosen on a validation set so that counts come out right as often as possible.
 *
 * A detector's scores are IoU-aware (its training targets are the overlap of its box with the
 * object), so they are not on one scale across classes: a 6-pixel defect found in the right
 * place may score 0.4 while a large part scores 0.9. One threshold for every class then either
 * misses the small objects or double-counts the large ones. The calibration records, for every
 * image and class, the true count and the scores of the detections the deployed decoding gives
 * (one class per box, class-aware NMS); for each class it then takes the threshold of a grid
 * that makes that class's count exact in the most images (ties: the smaller total count error,
 * then the threshold nearest 0.5). */
#ifndef ACV_METRICS_DET_COUNT_H
#define ACV_METRICS_DET_COUNT_H

#define ACV_COUNT_THR_DEFAULT 0.5f /* a class's threshold when too few images hold it */

#include <stdint.h>

#include <jansson.h>

#include "vision/box.h"

typedef struct acv_count_calib acv_count_calib;

/* Thresholds searched: ACV_COUNT_THR_MIN, + ACV_COUNT_THR_STEP, ..., ACV_COUNT_THR_MAX. The
 * detections given to acv_count_calib_add must include every one scoring >= the minimum. */
#define ACV_COUNT_THR_MIN 0.05f
#define ACV_COUNT_THR_MAX 0.95f
#define ACV_COUNT_THR_STEP 0.01f

/* A new, empty calibration for k classes (1..100000); NULL (message set) on a bad k or out of
 * memory. */
acv_count_calib *acv_count_calib_new(int k);
void acv_count_calib_free(acv_count_calib *c);
void acv_count_calib_reset(acv_count_calib *c);

/* Adds one image: its ground truth (crowd and difficult boxes are not counted) and its
 * detections (any order; those under ACV_COUNT_THR_MIN are ignored). ACV_EINVAL for a class
 * outside [0, k) or a non-finite score, ACV_ENOMEM; c is unchanged on error. */
int acv_count_calib_add(acv_count_calib *c, const acv_box *gt, int ngt, const acv_box *pred, int npred);

int64_t acv_count_calib_images(const acv_count_calib *c);

/* The best threshold of each class into thr[k]; a class that fewer than min_images images hold
 * (too few to choose from) gets 0.5. ACV_ENOMEM. */
int acv_count_calib_best(const acv_count_calib *c, int min_images, float *thr);

/* Counting with thresholds thr[k]: *exact gets the share of images whose every class count is
 * exact (1 with no image), *mae the mean over images and classes of |predicted - true count|,
 * class_mae[k] (may be NULL) each class's mean over images. ACV_ENOMEM. */
int acv_count_calib_score(const acv_count_calib *c, const float *thr, double *exact, double *mae, double *class_mae);

/* Puts the counting figures at thresholds thr into a metrics object of acv_det_metrics_to_json's
 * shape: "count_threshold" null, "count_thresholds" [k], "count_exact", "count_mae",
 * "count_mae_per_class" and each "per_class" entry's "count_mae". ACV_ENOMEM. */
int acv_count_calib_to_json(const acv_count_calib *c, const float *thr, json_t *metrics);

#endif
