/* Boxes: the one representation of an object's location used by detection data, augmentation,
 * losses, post-processing and metrics, with IoU and non-maximum suppression.
 *
 * Coordinates are pixels in the continuous frame of the image ([0,w] x [0,h], x right, y down):
 * a box covers [x1, x2) x [y1, y2); width x2 - x1, height y2 - y1. */
#ifndef ACV_VISION_BOX_H
#define ACV_VISION_BOX_H

#include <stdint.h>

enum {
    ACV_BOX_CROWD = 1u << 0,     /* COCO iscrowd: a region, matched but never a false negative */
    ACV_BOX_DIFFICULT = 1u << 1, /* Pascal VOC difficult: ignored in evaluation */
};

typedef struct acv_box {
    float x1, y1, x2, y2;
    int cls;                     /* class index */
    float score;                 /* predictions: confidence in [0,1]; ground truth: 1 */
    unsigned flags;              /* ACV_BOX_* */
} acv_box;

/* Intersection over union of two boxes (0 when either is empty). */
float acv_box_iou(const acv_box *a, const acv_box *b);
/* Area (0 for an empty or inverted box). */
float acv_box_area(const acv_box *b);

/* Non-maximum suppression in place: sorts boxes by descending score, then keeps a box unless
 * a kept box of the same class (any class when class_agnostic) overlaps it with IoU above
 * iou_thr; keeps at most max_keep (<= 0: all). Boxes below score_thr are dropped first.
 * Returns the number kept (they are boxes[0..n)). */
int acv_box_nms(acv_box *boxes, int n, float score_thr, float iou_thr, int max_keep, int class_agnostic);

#endif
