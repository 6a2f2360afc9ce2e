/* Image transforms and training augmentations on acv_image (uint8, HWC) and on
 * normalized CHW float tensors.
 *
 * Functions that produce a new image write it to *dst: dst receives a freshly allocated
 * image (whatever *dst held before is overwritten, not freed) that the caller releases
 * with acv_image_free; src and dst must be different structs. Every random choice comes
 * from the acv_rng passed in, so results are deterministic given its state. */
#ifndef ACV_VISION_TRANSFORM_H
#define ACV_VISION_TRANSFORM_H

#include <stdint.h>

#include "base/rng.h"
#include "vision/image.h"

enum {
    ACV_RESIZE_NEAREST = 0,  /* nearest pixel centre (OpenCV INTER_NEAREST_EXACT) */
    ACV_RESIZE_BILINEAR = 1, /* half-pixel centres, edge clamped (OpenCV INTER_LINEAR) */
    ACV_RESIZE_AREA = 2,     /* box average of the covered source area (OpenCV INTER_AREA) */
};

/* Resizes src to w x h with the given mode (same channel count). */
int acv_img_resize(const acv_image *src, int w, int h, int mode, acv_image *dst);
/* Converts between 1 (gray), 3 (RGB) and 4 (RGBA) channels: gray is ITU-R 601 luma
 * (0.299 R + 0.587 G + 0.114 B, rounded), alpha is dropped or set to 255. */
int acv_img_convert(const acv_image *src, int c, acv_image *dst);
/* Copies the w x h region whose top-left corner is (x, y) in src; the parts of the
 * region outside src are filled with `fill`. x and y may be negative. */
int acv_img_crop(const acv_image *src, int x, int y, int w, int h, uint8_t fill, acv_image *dst);
/* torchvision CenterCrop: a centred w x h crop (offsets rounded half to even), padded
 * with 0 where the crop is larger than the image. */
int acv_img_center_crop(const acv_image *src, int w, int h, acv_image *dst);
/* torchvision RandomResizedCrop: picks a region covering scale_lo..scale_hi of the
 * area with aspect ratio (w/h) log-uniform in ratio_lo..ratio_hi (10 tries, then the
 * centred crop clamped to the ratio range), and resizes it to w x h (area filter when
 * shrinking, bilinear when enlarging). */
int acv_img_random_resized_crop(const acv_image *src, int w, int h, float scale_lo, float scale_hi,
                                float ratio_lo, float ratio_hi, acv_rng *rng, acv_image *dst);

/* Where the source landed in a letterboxed image: dst = src * scale + pad. */
typedef struct acv_letterbox_info {
    float scale;
    int pad_x, pad_y;
} acv_letterbox_info;

/* Resizes src to fit inside w x h keeping its aspect ratio (scale = min(w/sw, h/sh),
 * resized size round(sw*scale) x round(sh*scale)), centres it (pad = floor of half
 * the slack) and fills the border with `fill`. info may be NULL. */
int acv_img_letterbox(const acv_image *src, int w, int h, uint8_t fill, acv_letterbox_info *info,
                      acv_image *dst);

/* Mirror left-right / top-bottom, in place. */
void acv_img_flip_h(acv_image *im);
void acv_img_flip_v(acv_image *im);
/* Rotates counter-clockwise by `degrees` about the image centre, keeping the size;
 * bilinear sampling, with `fill` outside the source. Multiples of 90 degrees are exact. */
int acv_img_rotate(const acv_image *src, float degrees, uint8_t fill, acv_image *dst);
/* Applies EXIF orientation 1-8 (the transform that makes the stored pixels upright):
 * 2 mirror, 3 rotate 180, 4 flip, 5 transpose, 6 rotate 90 clockwise, 7 transverse,
 * 8 rotate 90 counter-clockwise. Orientations 5-8 swap w and h. */
int acv_img_orient(const acv_image *src, int orientation, acv_image *dst);

/* torchvision ColorJitter, in place: brightness, contrast and saturation factors drawn
 * uniformly from [max(0, 1 - v), 1 + v], hue shift from [-hue, hue] (hue <= 0.5), applied
 * in a random order. Gray images get brightness and contrast only; alpha is kept.
 * Negative arguments or hue > 0.5 give ACV_EINVAL. */
int acv_img_color_jitter(acv_image *im, float brightness, float contrast, float saturation,
                         float hue, acv_rng *rng);

/* Writes im as CHW floats: out[c][y][x] = (v / 255 - mean[c]) / std[c]; mean and std
 * have im->c entries, or are NULL for v / 255. out has c * h * w floats. */
void acv_img_to_tensor(const acv_image *im, float *out, const float *mean, const float *std);

/* torchvision RandomErasing on a CHW tensor with value 0: with probability p, erases a
 * rectangle covering scale_lo..scale_hi of the area with log-uniform aspect ratio
 * (10 tries). Returns 1 when a rectangle was erased, 0 otherwise. */
int acv_tensor_random_erasing(float *chw, int c, int h, int w, float p, float scale_lo, float scale_hi,
                              float ratio_lo, float ratio_hi, acv_rng *rng);

/* A Beta(a, b) sample (ratio of two Marsaglia-Tsang gamma draws), a, b > 0. */
float acv_batch_sample_beta(acv_rng *rng, float a, float b);
/* timm batch mixup, in place: lam ~ Beta(alpha, alpha); sample i becomes
 * lam * x[i] + (1 - lam) * x[n-1-i] and so do its soft targets (n rows of k; targets may
 * be NULL). x holds n samples of chw floats. alpha <= 0 leaves everything as is.
 * Returns lam. */
float acv_batch_mixup(float *x, float *targets, int n, int chw, int k, float alpha, acv_rng *rng);
/* timm batch cutmix, in place: lam ~ Beta(alpha, alpha), a box of side ratio
 * sqrt(1 - lam) centred at a uniform point (clipped to the image) is pasted from sample
 * n-1-i into sample i; targets are mixed with the area-corrected lam, which is returned.
 * x holds n samples of c x h x w floats. */
float acv_batch_cutmix(float *x, float *targets, int n, int c, int h, int w, int k, float alpha,
                       acv_rng *rng);

#endif
