/* Image transforms and augmentations: resize (constant images stay constant, known
 * bilinear values, area averages, nearest centres), channel conversion, crops with fill,
 * torchvision centre-crop rounding, letterbox geometry, flips, rotation against a
 * transpose, EXIF orientations, RandomResizedCrop (incl. its fallback), ColorJitter,
 * to_tensor normalization, RandomErasing, Beta sampling, mixup and cutmix. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "autocv/error.h"
#include "base/rng.h"
#include "vision/image.h"
#include "vision/transform.h"

static uint8_t px(const acv_image *im, int x, int y, int k) { return im->data[((size_t)y * im->w + x) * im->c + k]; }

static void make(acv_image *im, int w, int h, int c, uint32_t seed)
{
    assert_int_equal(acv_image_alloc(im, w, h, c), 0);
    acv_rng r;
    acv_rng_seed(&r, seed);
    for (size_t i = 0; i < (size_t)w * h * c; i++) im->data[i] = (uint8_t)acv_rng_below(&r, 256);
}

static int same(const acv_image *a, const acv_image *b)
{
    return a->w == b->w && a->h == b->h && a->c == b->c && memcmp(a->data, b->data, (size_t)a->w * a->h * a->c) == 0;
}

static void test_resize_constant(void **state)
{
    (void)state;
    acv_image im, out;
    assert_int_equal(acv_image_alloc(&im, 37, 23, 3), 0);
    for (int i = 0; i < 37 * 23; i++) { im.data[3 * i] = 0; im.data[3 * i + 1] = 123; im.data[3 * i + 2] = 255; }
    int sizes[][2] = {{10, 7}, {100, 51}, {37, 5}, {1, 1}, {64, 23}, {13, 60}};
    for (int mode = 0; mode < 3; mode++)
        for (int s = 0; s < 6; s++) {
            assert_int_equal(acv_img_resize(&im, sizes[s][0], sizes[s][1], mode, &out), 0);
            assert_int_equal(out.w, sizes[s][0]);
            assert_int_equal(out.h, sizes[s][1]);
            for (int i = 0; i < out.w * out.h; i++) {
                assert_int_equal(out.data[3 * i], 0);
                assert_int_equal(out.data[3 * i + 1], 123);
                assert_int_equal(out.data[3 * i + 2], 255);
            }
            acv_image_free(&out);
        }
    assert_int_equal(acv_img_resize(&im, 0, 5, ACV_RESIZE_AREA, &out), ACV_EINVAL);
    assert_int_equal(acv_img_resize(&im, 5, 5, 7, &out), ACV_EINVAL);
    acv_image_free(&im);
}

static void test_resize_known_values(void **state)
{
    (void)state;
    acv_image im, out;
    /* Bilinear 2x2 -> 4x4 with half-pixel centres (as cv2.resize INTER_LINEAR). */
    assert_int_equal(acv_image_alloc(&im, 2, 2, 1), 0);
    uint8_t v[4] = {0, 100, 200, 50};
    memcpy(im.data, v, 4);
    assert_int_equal(acv_img_resize(&im, 4, 4, ACV_RESIZE_BILINEAR, &out), 0);
    /* Source rows interpolated along x: top [0, 25, 75, 100], bottom [200, 162.5, 87.5, 50];
     * output rows sit at y = -0.25 (clamped), 0.25, 0.75, 1.25 (clamped). */
    uint8_t want[16] = {0, 25, 75, 100,
                        50, 59, 78, 88,     /* 0.75 top + 0.25 bottom: 59.375, 78.125, 87.5 */
                        150, 128, 84, 63,   /* 0.25 top + 0.75 bottom: 128.125, 84.375, 62.5 */
                        200, 163, 88, 50};
    assert_memory_equal(out.data, want, 16);
    acv_image_free(&out);
    acv_image_free(&im);

    /* Area: 4x4 -> 2x2 averages 2x2 blocks; 3 -> 2 uses fractional overlaps. */
    assert_int_equal(acv_image_alloc(&im, 4, 4, 1), 0);
    for (int i = 0; i < 16; i++) im.data[i] = (uint8_t)(i * 10);
    assert_int_equal(acv_img_resize(&im, 2, 2, ACV_RESIZE_AREA, &out), 0);
    uint8_t want_area[4] = {25, 45, 105, 125};
    assert_memory_equal(out.data, want_area, 4);
    acv_image_free(&out);
    acv_image_free(&im);
    assert_int_equal(acv_image_alloc(&im, 3, 1, 1), 0);
    im.data[0] = 0; im.data[1] = 90; im.data[2] = 180;
    assert_int_equal(acv_img_resize(&im, 2, 1, ACV_RESIZE_AREA, &out), 0);
    assert_int_equal(out.data[0], 30);  /* (0 * 1 + 90 * 0.5) / 1.5 */
    assert_int_equal(out.data[1], 150); /* (90 * 0.5 + 180 * 1) / 1.5 */
    acv_image_free(&out);
    /* Nearest picks the pixel under each output centre. */
    assert_int_equal(acv_img_resize(&im, 1, 1, ACV_RESIZE_NEAREST, &out), 0);
    assert_int_equal(out.data[0], 90);
    acv_image_free(&out);
    assert_int_equal(acv_img_resize(&im, 6, 2, ACV_RESIZE_NEAREST, &out), 0);
    uint8_t want_nn[12] = {0, 0, 90, 90, 180, 180, 0, 0, 90, 90, 180, 180};
    assert_memory_equal(out.data, want_nn, 12);
    acv_image_free(&out);
    acv_image_free(&im);
}

static void test_convert(void **state)
{
    (void)state;
    acv_image im, g, back, rgba;
    assert_int_equal(acv_image_alloc(&im, 3, 1, 3), 0);
    uint8_t v[9] = {255, 0, 0, 0, 255, 0, 10, 10, 10};
    memcpy(im.data, v, 9);
    assert_int_equal(acv_img_convert(&im, 1, &g), 0);
    assert_int_equal(g.c, 1);
    assert_int_equal(g.data[0], 76);
    assert_int_equal(g.data[1], 150);
    assert_int_equal(g.data[2], 10);
    assert_int_equal(acv_img_convert(&g, 3, &back), 0);
    for (int k = 0; k < 3; k++) assert_int_equal(back.data[3 * 2 + k], 10);
    assert_int_equal(acv_img_convert(&im, 4, &rgba), 0);
    assert_int_equal(rgba.data[3], 255);
    assert_int_equal(rgba.data[4], 0);
    acv_image_free(&back);
    assert_int_equal(acv_img_convert(&rgba, 3, &back), 0);
    assert_true(same(&back, &im));
    acv_image_free(&g);
    assert_int_equal(acv_img_convert(&im, 2, &g), ACV_EINVAL);
    assert_null(g.data);
    acv_image_free(&back);
    acv_image_free(&rgba);
    acv_image_free(&im);
}

static void test_crop(void **state)
{
    (void)state;
    acv_image im, out;
    assert_int_equal(acv_image_alloc(&im, 2, 2, 1), 0);
    uint8_t v[4] = {1, 2, 3, 4};
    memcpy(im.data, v, 4);
    assert_int_equal(acv_img_crop(&im, -1, -1, 3, 4, 9, &out), 0);
    uint8_t want[12] = {9, 9, 9, 9, 1, 2, 9, 3, 4, 9, 9, 9};
    assert_memory_equal(out.data, want, 12);
    acv_image_free(&out);
    assert_int_equal(acv_img_crop(&im, 5, 5, 2, 1, 7, &out), 0); /* entirely outside */
    assert_int_equal(out.data[0], 7);
    assert_int_equal(out.data[1], 7);
    acv_image_free(&out);
    acv_image_free(&im);

    /* Centre crop: torchvision rounds half to even, and pads when the crop is larger. */
    assert_int_equal(acv_image_alloc(&im, 6, 1, 1), 0);
    for (int i = 0; i < 6; i++) im.data[i] = (uint8_t)(10 + i);
    assert_int_equal(acv_img_center_crop(&im, 3, 1, &out), 0); /* (6-3)/2 = 1.5 -> 2 */
    assert_int_equal(out.data[0], 12);
    acv_image_free(&out);
    assert_int_equal(acv_img_center_crop(&im, 1, 1, &out), 0); /* 2.5 -> 2 */
    assert_int_equal(out.data[0], 12);
    acv_image_free(&out);
    assert_int_equal(acv_img_center_crop(&im, 9, 3, &out), 0); /* pad 1 left, 2 right; 1 up, 1 down */
    assert_int_equal(out.w, 9);
    assert_int_equal(px(&out, 0, 1, 0), 0);
    assert_int_equal(px(&out, 1, 1, 0), 10);
    assert_int_equal(px(&out, 6, 1, 0), 15);
    assert_int_equal(px(&out, 7, 1, 0), 0);
    assert_int_equal(px(&out, 3, 0, 0), 0);
    acv_image_free(&out);
    acv_image_free(&im);
}

static void test_letterbox(void **state)
{
    (void)state;
    acv_image im, out;
    acv_letterbox_info info;
    assert_int_equal(acv_image_alloc(&im, 200, 100, 3), 0);
    memset(im.data, 200, 200 * 100 * 3);
    assert_int_equal(acv_img_letterbox(&im, 64, 64, 114, &info, &out), 0);
    assert_int_equal(out.w, 64);
    assert_int_equal(out.h, 64);
    assert_float_equal(info.scale, 0.32, 1e-6);
    assert_int_equal(info.pad_x, 0);
    assert_int_equal(info.pad_y, 16);
    for (int y = 0; y < 64; y++)
        for (int x = 0; x < 64; x++)
            assert_int_equal(px(&out, x, y, 1), (y >= 16 && y < 48) ? 200 : 114);
    acv_image_free(&out);
    acv_image_free(&im);
    /* Tall image upscaled: 10x40 -> 100x100: scale 2.5, 25 wide, pad_x 37. */
    assert_int_equal(acv_image_alloc(&im, 10, 40, 1), 0);
    memset(im.data, 50, 400);
    assert_int_equal(acv_img_letterbox(&im, 100, 100, 0, &info, &out), 0);
    assert_float_equal(info.scale, 2.5, 1e-6);
    assert_int_equal(info.pad_x, 37);
    assert_int_equal(info.pad_y, 0);
    assert_int_equal(px(&out, 36, 50, 0), 0);
    assert_int_equal(px(&out, 37, 50, 0), 50);
    assert_int_equal(px(&out, 61, 50, 0), 50);
    assert_int_equal(px(&out, 62, 50, 0), 0);
    acv_image_free(&out);
    acv_image_free(&im);
}

static void test_flips(void **state)
{
    (void)state;
    acv_image im, orig;
    make(&im, 7, 5, 3, 1);
    make(&orig, 7, 5, 3, 1);
    acv_img_flip_h(&im);
    assert_false(same(&im, &orig));
    for (int k = 0; k < 3; k++) {
        assert_int_equal(px(&im, 0, 2, k), px(&orig, 6, 2, k));
        assert_int_equal(px(&im, 3, 4, k), px(&orig, 3, 4, k));
    }
    acv_img_flip_h(&im);
    assert_true(same(&im, &orig));
    acv_img_flip_v(&im);
    assert_int_equal(px(&im, 1, 0, 2), px(&orig, 1, 4, 2));
    acv_img_flip_v(&im);
    assert_true(same(&im, &orig));
    acv_image_free(&im);
    acv_image_free(&orig);
}

static void test_rotate(void **state)
{
    (void)state;
    for (int n = 5; n <= 6; n++) {
        acv_image im, r, r2;
        make(&im, n, n, 3, 7);
        /* 90 degrees counter-clockwise = transpose then flip top-bottom. */
        assert_int_equal(acv_img_rotate(&im, 90.0f, 0, &r), 0);
        for (int y = 0; y < n; y++)
            for (int x = 0; x < n; x++)
                for (int k = 0; k < 3; k++) assert_int_equal(px(&r, x, y, k), px(&im, n - 1 - y, x, k));
        /* EXIF 8 (90 CCW) agrees; EXIF 6 (90 CW) agrees with -90. */
        assert_int_equal(acv_img_orient(&im, 8, &r2), 0);
        assert_true(same(&r, &r2));
        acv_image_free(&r2);
        acv_image_free(&r);
        assert_int_equal(acv_img_rotate(&im, -90.0f, 0, &r), 0);
        assert_int_equal(acv_img_orient(&im, 6, &r2), 0);
        assert_true(same(&r, &r2));
        acv_image_free(&r2);
        acv_image_free(&r);
        /* 180 = both flips = EXIF 3; 360 = identity. */
        assert_int_equal(acv_img_rotate(&im, 180.0f, 0, &r), 0);
        assert_int_equal(acv_img_orient(&im, 3, &r2), 0);
        assert_true(same(&r, &r2));
        acv_img_flip_h(&r2);
        acv_img_flip_v(&r2);
        assert_true(same(&im, &r2));
        acv_image_free(&r2);
        acv_image_free(&r);
        assert_int_equal(acv_img_rotate(&im, 360.0f, 0, &r), 0);
        assert_true(same(&im, &r));
        acv_image_free(&r);
        acv_image_free(&im);
    }
    /* A 45 degree turn of a constant image keeps the centre and fills the corners. */
    acv_image im, r;
    assert_int_equal(acv_image_alloc(&im, 21, 21, 1), 0);
    memset(im.data, 100, 21 * 21);
    assert_int_equal(acv_img_rotate(&im, 45.0f, 7, &r), 0);
    assert_int_equal(px(&r, 10, 10, 0), 100);
    assert_int_equal(px(&r, 0, 0, 0), 7);
    assert_int_equal(px(&r, 20, 20, 0), 7);
    acv_image_free(&r);
    acv_image_free(&im);
}

static void test_orient(void **state)
{
    (void)state;
    acv_image im, o, t;
    make(&im, 4, 3, 1, 3);
    /* 5 = transpose; 2, 4 mirror; 7 = transverse. */
    assert_int_equal(acv_img_orient(&im, 5, &o), 0);
    assert_int_equal(o.w, 3);
    assert_int_equal(o.h, 4);
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 3; x++) assert_int_equal(px(&o, x, y, 0), px(&im, y, x, 0));
    acv_image_free(&o);
    assert_int_equal(acv_img_orient(&im, 2, &o), 0);
    assert_int_equal(px(&o, 0, 1, 0), px(&im, 3, 1, 0));
    acv_image_free(&o);
    assert_int_equal(acv_img_orient(&im, 4, &o), 0);
    assert_int_equal(px(&o, 1, 0, 0), px(&im, 1, 2, 0));
    acv_image_free(&o);
    assert_int_equal(acv_img_orient(&im, 7, &o), 0);
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 3; x++) assert_int_equal(px(&o, x, y, 0), px(&im, 3 - y, 2 - x, 0));
    /* 6 then 8 is the identity. */
    acv_image_free(&o);
    assert_int_equal(acv_img_orient(&im, 6, &o), 0);
    assert_int_equal(acv_img_orient(&o, 8, &t), 0);
    assert_true(same(&im, &t));
    acv_image_free(&t);
    acv_image_free(&o);
    assert_int_equal(acv_img_orient(&im, 9, &o), ACV_EINVAL);
    acv_image_free(&im);
}

static void test_random_resized_crop(void **state)
{
    (void)state;
    acv_image im, a, b;
    make(&im, 64, 48, 3, 11);
    acv_rng r1, r2;
    acv_rng_seed(&r1, 42);
    acv_rng_seed(&r2, 42);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(acv_img_random_resized_crop(&im, 32, 24, 0.08f, 1.0f, 3.0f / 4, 4.0f / 3, &r1, &a), 0);
        assert_int_equal(acv_img_random_resized_crop(&im, 32, 24, 0.08f, 1.0f, 3.0f / 4, 4.0f / 3, &r2, &b), 0);
        assert_int_equal(a.w, 32);
        assert_int_equal(a.h, 24);
        assert_true(same(&a, &b));
        acv_image_free(&a);
        acv_image_free(&b);
    }
    acv_image_free(&im);
    /* Fallback: a 100x10 strip cannot hold a square of 90% of its area, so after 10 tries
     * the centred 10x10 crop (clamped to ratio 1) is taken. */
    assert_int_equal(acv_image_alloc(&im, 100, 10, 1), 0);
    for (int y = 0; y < 10; y++)
        for (int x = 0; x < 100; x++) im.data[y * 100 + x] = (uint8_t)(2 * x);
    assert_int_equal(acv_img_random_resized_crop(&im, 10, 10, 0.9f, 1.0f, 1.0f, 1.0f, &r1, &a), 0);
    for (int x = 0; x < 10; x++) assert_int_equal(px(&a, x, 5, 0), 2 * (45 + x));
    acv_image_free(&a);
    assert_int_equal(acv_img_random_resized_crop(&im, 10, 10, 0.5f, 0.1f, 1.0f, 1.0f, &r1, &a), ACV_EINVAL);
    acv_image_free(&im);
}

static void test_color_jitter(void **state)
{
    (void)state;
    acv_image im, orig;
    acv_rng r;
    acv_rng_seed(&r, 5);
    make(&im, 9, 7, 3, 2);
    make(&orig, 9, 7, 3, 2);
    assert_int_equal(acv_img_color_jitter(&im, 0, 0, 0, 0, &r), 0);
    assert_true(same(&im, &orig));
    assert_int_equal(acv_img_color_jitter(&im, 0, 0, 0, 0.6f, &r), ACV_EINVAL);
    assert_int_equal(acv_img_color_jitter(&im, -1, 0, 0, 0, &r), ACV_EINVAL);
    acv_image_free(&im);

    /* Gray RGB pixels have no hue or saturation: only brightness/contrast change them. */
    assert_int_equal(acv_image_alloc(&im, 4, 4, 3), 0);
    memset(im.data, 90, 48);
    assert_int_equal(acv_img_color_jitter(&im, 0, 0, 0.9f, 0.5f, &r), 0);
    for (int i = 0; i < 48; i++) assert_int_equal(im.data[i], 90);
    /* Contrast keeps a constant image constant (it equals its own mean). */
    assert_int_equal(acv_img_color_jitter(&im, 0, 0.8f, 0, 0, &r), 0);
    for (int i = 0; i < 48; i++) assert_int_equal(im.data[i], 90);
    /* Brightness scales every channel by one factor in [0.5, 1.5]. */
    assert_int_equal(acv_img_color_jitter(&im, 0.5f, 0, 0, 0, &r), 0);
    for (int i = 1; i < 48; i++) assert_int_equal(im.data[i], im.data[0]);
    assert_true(im.data[0] >= 45 && im.data[0] <= 135);
    acv_image_free(&im);

    /* Hue rotation keeps the HSV value (the max channel) of a saturated colour. */
    assert_int_equal(acv_image_alloc(&im, 2, 2, 4), 0);
    for (int i = 0; i < 4; i++) { im.data[4 * i] = 255; im.data[4 * i + 1] = 0; im.data[4 * i + 2] = 0; im.data[4 * i + 3] = 33; }
    assert_int_equal(acv_img_color_jitter(&im, 0, 0, 0, 0.5f, &r), 0);
    int mx = im.data[0] > im.data[1] ? im.data[0] : im.data[1];
    mx = mx > im.data[2] ? mx : im.data[2];
    assert_int_equal(mx, 255);
    assert_int_equal(im.data[3], 33); /* alpha untouched */
    acv_image_free(&im);
    acv_image_free(&orig);
}

static void test_to_tensor(void **state)
{
    (void)state;
    acv_image im;
    assert_int_equal(acv_image_alloc(&im, 2, 1, 3), 0);
    uint8_t v[6] = {0, 51, 255, 255, 102, 0};
    memcpy(im.data, v, 6);
    float out[6];
    acv_img_to_tensor(&im, out, NULL, NULL);
    assert_float_equal(out[0], 0.0, 1e-6);   /* c0 x0 */
    assert_float_equal(out[1], 1.0, 1e-6);   /* c0 x1 */
    assert_float_equal(out[2], 0.2, 1e-6);   /* c1 x0 */
    assert_float_equal(out[3], 0.4, 1e-6);   /* c1 x1 */
    assert_float_equal(out[4], 1.0, 1e-6);
    assert_float_equal(out[5], 0.0, 1e-6);
    const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    acv_img_to_tensor(&im, out, mean, std);
    assert_float_equal(out[0], -0.485 / 0.229, 1e-5);
    assert_float_equal(out[3], (0.4 - 0.456) / 0.224, 1e-5);
    assert_float_equal(out[4], (1.0 - 0.406) / 0.225, 1e-5);
    acv_image_free(&im);
}

static void test_random_erasing(void **state)
{
    (void)state;
    int c = 3, h = 20, w = 30;
    float *t = malloc(sizeof(float) * c * h * w);
    acv_rng r;
    acv_rng_seed(&r, 9);
    for (int i = 0; i < c * h * w; i++) t[i] = 1.0f;
    assert_int_equal(acv_tensor_random_erasing(t, c, h, w, 0.0f, 0.02f, 0.33f, 0.3f, 3.3f, &r), 0);
    for (int i = 0; i < c * h * w; i++) assert_true(t[i] == 1.0f);
    int erased = 0;
    for (int trial = 0; trial < 20; trial++) {
        for (int i = 0; i < c * h * w; i++) t[i] = 1.0f;
        if (!acv_tensor_random_erasing(t, c, h, w, 1.0f, 0.02f, 0.33f, 0.3f, 3.3f, &r)) continue;
        erased++;
        int zeros = 0;
        for (int i = 0; i < h * w; i++) {
            zeros += t[i] == 0.0f;
            /* Every channel is erased at the same place. */
            assert_true(t[i] == t[h * w + i] && t[i] == t[2 * h * w + i]);
        }
        /* About 2%..33% of the area (rounding of the sides widens it a little). */
        assert_true(zeros >= 4 && zeros <= 0.45 * h * w);
    }
    assert_true(erased >= 15);
    free(t);
}

static void test_beta(void **state)
{
    (void)state;
    acv_rng r;
    acv_rng_seed(&r, 123);
    float alphas[3][2] = {{0.2f, 0.2f}, {1.0f, 1.0f}, {2.0f, 5.0f}};
    for (int a = 0; a < 3; a++) {
        double sum = 0, sq = 0;
        int n = 20000;
        for (int i = 0; i < n; i++) {
            double x = acv_batch_sample_beta(&r, alphas[a][0], alphas[a][1]);
            assert_true(x >= 0.0 && x <= 1.0);
            sum += x;
            sq += x * x;
        }
        double al = alphas[a][0], be = alphas[a][1], mean = al / (al + be);
        double var = al * be / ((al + be) * (al + be) * (al + be + 1));
        assert_float_equal(sum / n, mean, 0.01);
        assert_float_equal(sq / n - (sum / n) * (sum / n), var, 0.01);
    }
}

static void test_mixup_cutmix(void **state)
{
    (void)state;
    int n = 5, c = 2, h = 8, w = 6, k = 5, chw = c * h * w; /* k = n: distinct labels */
    float *x = malloc(sizeof(float) * n * chw), *x0 = malloc(sizeof(float) * n * chw);
    float t[5 * 5];
    acv_rng r;
    acv_rng_seed(&r, 77);
    for (int trial = 0; trial < 10; trial++) {
        for (int i = 0; i < n * chw; i++) x0[i] = x[i] = (float)(i % 97) / 97.0f;
        memset(t, 0, sizeof t);
        for (int i = 0; i < n; i++) t[i * k + i % k] = 1.0f;
        float lam = acv_batch_mixup(x, t, n, chw, k, 0.8f, &r);
        assert_true(lam >= 0 && lam <= 1);
        for (int i = 0; i < n; i++) {
            float s = 0;
            for (int j = 0; j < k; j++) s += t[i * k + j];
            assert_float_equal(s, 1.0, 1e-5);
            assert_float_equal(t[i * k + i % k], (i == n - 1 - i) ? 1.0f : lam + ((n - 1 - i) % k == i % k ? 1 - lam : 0), 1e-5);
            for (int e = 0; e < chw; e += 7)
                assert_float_equal(x[i * chw + e], lam * x0[i * chw + e] + (1 - lam) * x0[(n - 1 - i) * chw + e], 1e-5);
        }
    }
    for (int trial = 0; trial < 10; trial++) {
        for (int i = 0; i < n; i++)
            for (int e = 0; e < chw; e++) x[i * chw + e] = (float)i;
        memset(t, 0, sizeof t);
        for (int i = 0; i < n; i++) t[i * k + i % k] = 1.0f;
        float lam = acv_batch_cutmix(x, t, n, c, h, w, k, 1.0f, &r);
        for (int i = 0; i < n; i++) {
            float s = 0;
            for (int j = 0; j < k; j++) s += t[i * k + j];
            assert_float_equal(s, 1.0, 1e-5);
        }
        /* The pasted box covers exactly (1 - lam) of sample 0, in every channel. */
        int pasted = 0;
        for (int e = 0; e < h * w; e++) {
            pasted += x[e] == (float)(n - 1);
            assert_true(x[e] == x[h * w + e]);
        }
        assert_float_equal((double)pasted / (h * w), 1.0 - lam, 1e-5);
        assert_float_equal(t[0], lam, 1e-5);
        assert_float_equal(t[0 * k + (n - 1) % k], 1 - lam, 1e-5);
        /* The middle sample of an odd batch pairs with itself. */
        for (int e = 0; e < chw; e++) assert_true(x[2 * chw + e] == 2.0f);
    }
    /* alpha <= 0 disables mixing. */
    for (int i = 0; i < n * chw; i++) x0[i] = x[i];
    assert_float_equal(acv_batch_mixup(x, t, n, chw, k, 0.0f, &r), 1.0, 0);
    assert_memory_equal(x, x0, sizeof(float) * n * chw);
    free(x);
    free(x0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resize_constant),
        cmocka_unit_test(test_resize_known_values),
        cmocka_unit_test(test_convert),
        cmocka_unit_test(test_crop),
        cmocka_unit_test(test_letterbox),
        cmocka_unit_test(test_flips),
        cmocka_unit_test(test_rotate),
        cmocka_unit_test(test_orient),
        cmocka_unit_test(test_random_resized_crop),
        cmocka_unit_test(test_color_jitter),
        cmocka_unit_test(test_to_tensor),
        cmocka_unit_test(test_random_erasing),
        cmocka_unit_test(test_beta),
        cmocka_unit_test(test_mixup_cutmix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
