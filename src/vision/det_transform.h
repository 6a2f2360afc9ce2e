/* Box-aware augmentation for detection: every transform moves the boxes with the pixels.
 *
 * Geometry is continuous (vision/box.h): pixel (i, j) covers [i, i+1) x [j, j+1), so a flip
 * maps x to w - x and an affine map M sends the pixel centred at p to the one centred at
 * M p; warps sample the source bilinearly at M^-1 of each destination pixel centre.
 *
 * The training pipeline (acv_det_augment) follows YOLOv5/v8: each image is first resized so
 * that its long side is S (acv_det_resize_long); then either a mosaic of 4 images on a
 * 2S x 2S canvas (fill 114) around a random centre in [S/2, 3S/2)^2, followed by a random
 * affine (rotation, scale, shear, translation) that maps the canvas centre near the centre of
 * the S x S output, or - without mosaic - a centred letterbox to S x S followed by the same
 * random affine; then HSV jitter and flips. After a warp each box becomes the bounding box of
 * its four transformed corners, clipped to the output, and is dropped unless it passes the
 * candidate filter (YOLO's box_candidates): both sides >= min_side pixels unless the side
 * lies wholly inside the output (a thin scratch is kept; a sliver cut by the border is not),
 * at least min_area_frac of the area it would have had unclipped, and an aspect ratio below
 * max_aspect.
 *
 * Every random choice comes from the acv_rng passed in. */
#ifndef ACV_VISION_DET_TRANSFORM_H
#define ACV_VISION_DET_TRANSFORM_H

#include "base/rng.h"
#include "vision/box.h"
#include "vision/image.h"
#include "vision/transform.h"

#define ACV_DET_FILL 114 /* gray of letterbox borders and of warps outside the source */

typedef struct acv_det_aug_opts {
    float mosaic;        /* probability of a 4-image mosaic (the trainer sets 0 for the last
                            close_mosaic epochs); 1 */
    float degrees;       /* rotation uniform in [-degrees, degrees]; 0 (YOLOv8: rotated
                            corner boxes are loose) */
    float translate;     /* output centre shift, uniform in +-translate of S; 0.1 */
    float scale;         /* zoom uniform in [1 - scale, 1 + scale]; 0.5 */
    float shear;         /* shear angles uniform in [-shear, shear] degrees; 0 */
    float fliplr;        /* probability of a horizontal flip; 0.5 */
    float flipud;        /* probability of a vertical flip; 0 */
    float hsv_h, hsv_s, hsv_v; /* HSV gains (YOLO); 0.015, 0.7, 0.4 */
    float min_side;      /* candidate filter, pixels, for sides the border cut; 2 */
    float min_area_frac; /* candidate filter; 0.1 */
    float max_aspect;    /* candidate filter, max(w/h, h/w); 100 */
} acv_det_aug_opts;

/* YOLOv8's defaults (listed on each field above). */
void acv_det_aug_opts_default(acv_det_aug_opts *o);
/* ACV_EINVAL naming the field when a probability is outside [0, 1], scale outside [0, 1),
 * translate outside [0, 0.5], an angle outside [0, 90), or a filter threshold negative. */
int acv_det_aug_opts_check(const acv_det_aug_opts *o);

/* An image with its boxes as the augmentation pipeline passes them on. area0[i] is the area
 * that box i would have in the current pixels had it never been clipped (the reference of
 * the candidate filter). Everything is owned: release with acv_det_sample_free. */
typedef struct acv_det_sample {
    acv_image im;
    acv_box *boxes;      /* (n) */
    float *area0;        /* (n) */
    int n, cap;
} acv_det_sample;

/* Makes s hold im (ownership moves to s: do not free im afterwards) and a copy of boxes,
 * with area0 set to each box's area. On failure s is empty and im has been freed. */
int acv_det_sample_init(acv_det_sample *s, acv_image im, const acv_box *boxes, int n);
void acv_det_sample_free(acv_det_sample *s);

/* Letterbox to size x size (acv_img_letterbox with fill 114: scale min(size/w, size/h),
 * area filter when shrinking, bilinear when enlarging, centred). The n boxes (NULL when
 * n is 0) are mapped in place by dst = src * scale + pad, the same mapping that info
 * returns and prediction inverts. info may be NULL. */
int acv_det_letterbox(const acv_image *src, int size, acv_box *boxes, int n, acv_image *dst,
                      acv_letterbox_info *info);

/* Resizes s in place so that its long side is size (YOLO load_image: new size
 * min(ceil(w r), size) x min(ceil(h r), size), r = size / max(w, h); area filter when
 * shrinking, bilinear when enlarging), scaling boxes and area0 by the exact pixel ratios. */
int acv_det_resize_long(acv_det_sample *s, int size);

/* Mosaic: places the 4 parts (each at most size x size, as acv_det_resize_long leaves
 * them) on a 2 size x 2 size canvas of fill 114 with their corners meeting at (xc, yc):
 * part 0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right, each cut by the canvas edge.
 * Boxes move by the same integer offsets, are clipped to their visible part and dropped when
 * nothing remains; area0 keeps their unclipped areas. *out is a new sample (free it). */
int acv_det_mosaic(const acv_det_sample *const parts[4], int size, int xc, int yc, acv_det_sample *out);

/* A 2x3 affine matrix [a b c; d e f] (x' = a x + b y + c, y' = d x + e y + f) drawn as YOLO's
 * RandomPerspective does for a src_w x src_h source and an out_w x out_h output: move the
 * source centre to the origin, rotate by U(-degrees, degrees) (counter-clockwise on screen)
 * and scale by U(1 - scale, 1 + scale), shear x and y by U(-shear, shear) degrees, then move
 * the origin to U(0.5 - translate, 0.5 + translate) of the output size. */
void acv_det_random_affine(const acv_det_aug_opts *o, int src_w, int src_h, int out_w, int out_h, acv_rng *rng,
                           float m[6]);

/* Warps s in place to out_w x out_h with m (bilinear, fill 114 outside the source) and
 * transforms its boxes: the bounding box of the four mapped corners, clipped to the output,
 * area0 scaled by |det m|; boxes failing o's candidate filter are dropped (o NULL: defaults).
 * A singular or non-finite m is ACV_EINVAL. */
int acv_det_warp_affine(acv_det_sample *s, const float m[6], int out_w, int out_h, const acv_det_aug_opts *o);

/* Mirror s's image and boxes left-right / top-bottom in place (exact). */
void acv_det_flip_h(acv_det_sample *s);
void acv_det_flip_v(acv_det_sample *s);

/* YOLO's augment_hsv on a 3-channel (RGB) image in place: gains r = 1 + U(-1, 1) * (h, s, v)
 * applied through lookup tables to OpenCV's 8-bit HSV (H in [0, 180): h' = (h r_h) mod 180,
 * s' = min(s r_s, 255), v' = min(v r_v, 255), truncated). All gains 0, or an image that is not
 * 3-channel, leave it unchanged (and draw nothing). */
void acv_det_hsv(acv_image *im, float hgain, float sgain, float vgain, acv_rng *rng);

/* The training pipeline of the top of this file. parts are 1 (no mosaic) or 4 (mosaic)
 * samples already resized with acv_det_resize_long(size); they are consumed (freed) whatever
 * the outcome. *out receives the size x size result (free it). */
int acv_det_augment(acv_det_sample *parts, int nparts, int size, const acv_det_aug_opts *o, acv_rng *rng,
                    acv_det_sample *out);

#endif
