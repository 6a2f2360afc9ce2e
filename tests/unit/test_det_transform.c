/* Box-aware augmentation: letterbox and long-side resize map boxes exactly, flips and
 * integer/90-degree warps move pixels and boxes exactly, the mosaic places parts and clips
 * boxes at known offsets, the candidate filter drops slivers, HSV jitter keeps grays gray,
 * and the full random pipeline (mosaic + affine with rotation, and the letterbox + affine
 * path) keeps every surviving box around its solid-colour rectangle, tight, and drops no
 * box whose rectangle is still mostly visible. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "autocv/error.h"
#include "base/rng.h"
#include "vision/det_transform.h"

#define BG 30

/* 12 well-separated colours; rectangle k is drawn in colour k and has class k. */
static const uint8_t COLORS[12][3] = {
    {255, 0, 0},   {0, 255, 0},   {0, 0, 255},   {255, 255, 0}, {255, 0, 255}, {0, 255, 255},
    {255, 128, 0}, {128, 0, 255}, {0, 128, 255}, {255, 0, 128}, {128, 255, 0}, {0, 255, 128},
};

static const uint8_t *pix(const acv_image *im, int x, int y) { return im->data + ((size_t)y * im->w + x) * im->c; }

static int is_color(const uint8_t *p, int k)
{
    return p[0] == COLORS[k][0] && p[1] == COLORS[k][1] && p[2] == COLORS[k][2];
}

static void blank(acv_image *im, int w, int h, uint8_t v)
{
    assert_int_equal(acv_image_alloc(im, w, h, 3), 0);
    memset(im->data, v, (size_t)w * h * 3);
}

/* Fills the integer box [x1, x2) x [y1, y2) with colour k and returns it as an acv_box. */
static acv_box rect(acv_image *im, int x1, int y1, int x2, int y2, int k)
{
    for (int y = y1; y < y2; y++)
        for (int x = x1; x < x2; x++) memcpy(im->data + ((size_t)y * im->w + x) * 3, COLORS[k], 3);
    return (acv_box){.x1 = (float)x1, .y1 = (float)y1, .x2 = (float)x2, .y2 = (float)y2, .cls = k, .score = 1};
}

/* ---- deterministic geometry ------------------------------------------------------- */

static void test_letterbox_exact(void **state)
{
    (void)state;
    acv_image im, out;
    blank(&im, 200, 100, BG);
    acv_box b[2] = {rect(&im, 40, 20, 80, 60, 0), rect(&im, 150, 0, 200, 100, 1)};
    acv_letterbox_info info;
    assert_int_equal(acv_det_letterbox(&im, 320, b, 2, &out, &info), 0);
    assert_int_equal(out.w, 320);
    assert_int_equal(out.h, 320);
    assert_float_equal(info.scale, 1.6f, 1e-7);
    assert_int_equal(info.pad_x, 0);
    assert_int_equal(info.pad_y, 80);
    assert_float_equal(b[0].x1, 64, 1e-4);
    assert_float_equal(b[0].y1, 112, 1e-4);
    assert_float_equal(b[0].x2, 128, 1e-4);
    assert_float_equal(b[0].y2, 176, 1e-4);
    assert_float_equal(b[1].x2, 320, 1e-4);
    assert_float_equal(b[1].y2, 240, 1e-4);
    assert_true(is_color(pix(&out, 96, 144), 0));
    assert_true(is_color(pix(&out, 300, 200), 1));
    /* the border is gray 114, the image edge rows are not */
    for (int x = 0; x < 320; x += 7) {
        assert_int_equal(pix(&out, x, 79)[1], ACV_DET_FILL);
        assert_int_equal(pix(&out, x, 240)[2], ACV_DET_FILL);
        assert_int_not_equal(pix(&out, x, 80)[1], ACV_DET_FILL);
    }
    /* inverse mapping recovers the original box */
    assert_float_equal((b[0].x1 - info.pad_x) / info.scale, 40, 1e-4);
    assert_float_equal((b[0].y2 - info.pad_y) / info.scale, 60, 1e-4);
    acv_image_free(&out);
    /* a non-integer scale: the mapping is exactly dst = src * scale + pad */
    acv_box c = {.x1 = 40, .y1 = 20, .x2 = 80, .y2 = 60};
    assert_int_equal(acv_det_letterbox(&im, 64, &c, 1, &out, &info), 0);
    assert_float_equal(info.scale, 0.32f, 1e-7);
    assert_int_equal(info.pad_y, 16);
    assert_float_equal(c.x1, 40 * info.scale, 1e-5);
    assert_float_equal(c.y1, 20 * info.scale + 16, 1e-5);
    acv_image_free(&out);
    acv_image_free(&im);
}

static void test_resize_long(void **state)
{
    (void)state;
    acv_image im;
    blank(&im, 200, 150, BG);
    acv_box b = rect(&im, 50, 25, 150, 125, 2);
    acv_det_sample s;
    assert_int_equal(acv_det_sample_init(&s, im, &b, 1), 0);
    assert_int_equal(acv_det_resize_long(&s, 160), 0);
    assert_int_equal(s.im.w, 160);
    assert_int_equal(s.im.h, 120);
    assert_float_equal(s.boxes[0].x1, 40, 1e-5);
    assert_float_equal(s.boxes[0].y1, 20, 1e-5);
    assert_float_equal(s.boxes[0].x2, 120, 1e-5);
    assert_float_equal(s.boxes[0].y2, 100, 1e-5);
    assert_float_equal(s.area0[0], 80 * 80, 1e-2);
    assert_true(is_color(pix(&s.im, 80, 60), 2));
    assert_true(is_color(pix(&s.im, 41, 21), 2));
    assert_false(is_color(pix(&s.im, 39, 60), 2));
    acv_det_sample_free(&s);
    /* enlarging: 50x30 -> 160x96 (ceil) */
    blank(&im, 50, 30, BG);
    assert_int_equal(acv_det_sample_init(&s, im, NULL, 0), 0);
    assert_int_equal(acv_det_resize_long(&s, 160), 0);
    assert_int_equal(s.im.w, 160);
    assert_int_equal(s.im.h, 96);
    acv_det_sample_free(&s);
}

static void test_flip_exact(void **state)
{
    (void)state;
    acv_image im;
    blank(&im, 64, 48, BG);
    acv_box b = rect(&im, 10, 5, 20, 15, 4);
    acv_det_sample s;
    assert_int_equal(acv_det_sample_init(&s, im, &b, 1), 0);
    acv_det_flip_h(&s);
    assert_float_equal(s.boxes[0].x1, 44, 0);
    assert_float_equal(s.boxes[0].x2, 54, 0);
    assert_float_equal(s.boxes[0].y1, 5, 0);
    int cnt = 0;
    for (int y = 0; y < 48; y++)
        for (int x = 0; x < 64; x++)
            if (is_color(pix(&s.im, x, y), 4)) {
                cnt++;
                assert_true(x >= 44 && x < 54 && y >= 5 && y < 15);
            }
    assert_int_equal(cnt, 100);
    acv_det_flip_v(&s);
    assert_float_equal(s.boxes[0].y1, 33, 0);
    assert_float_equal(s.boxes[0].y2, 43, 0);
    assert_true(is_color(pix(&s.im, 44, 33), 4) && is_color(pix(&s.im, 53, 42), 4));
    assert_false(is_color(pix(&s.im, 43, 33), 4) || is_color(pix(&s.im, 44, 32), 4));
    acv_det_flip_v(&s);
    acv_det_flip_h(&s);
    assert_float_equal(s.boxes[0].x1, 10, 0);
    assert_float_equal(s.boxes[0].y2, 15, 0);
    assert_true(is_color(pix(&s.im, 10, 5), 4));
    acv_det_sample_free(&s);
}

static void test_mosaic_placement(void **state)
{
    (void)state;
    acv_det_sample parts[4];
    acv_box bx[4] = {{0}};
    for (int i = 0; i < 4; i++) {
        acv_image im;
        blank(&im, 100, 80, BG);
        bx[i] = rect(&im, 40, 20, 90, 60, i);
        assert_int_equal(acv_det_sample_init(&parts[i], im, &bx[i], 1), 0);
    }
    const acv_det_sample *const p4[4] = {&parts[0], &parts[1], &parts[2], &parts[3]};
    acv_det_sample m;
    /* xc = 200: part 1 (top-right, at x 200..300) is cut at the canvas edge 256 */
    assert_int_equal(acv_det_mosaic(p4, 128, 200, 90, &m), 0);
    assert_int_equal(m.im.w, 256);
    assert_int_equal(m.im.h, 256);
    assert_int_equal(m.n, 4);
    const float want[4][4] = {{140, 30, 190, 70}, {240, 30, 256, 70}, {140, 110, 190, 150}, {240, 110, 256, 150}};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(m.boxes[i].cls, i);
        assert_float_equal(m.boxes[i].x1, want[i][0], 0);
        assert_float_equal(m.boxes[i].y1, want[i][1], 0);
        assert_float_equal(m.boxes[i].x2, want[i][2], 0);
        assert_float_equal(m.boxes[i].y2, want[i][3], 0);
        assert_float_equal(m.area0[i], 50 * 40, 0); /* unclipped */
        assert_true(is_color(pix(&m.im, (int)want[i][0], (int)want[i][1]), i));
        assert_true(is_color(pix(&m.im, (int)want[i][2] - 1, (int)want[i][3] - 1), i));
    }
    assert_int_equal(pix(&m.im, 99, 9)[0], ACV_DET_FILL);  /* above part 0 */
    assert_int_equal(pix(&m.im, 100, 10)[0], BG);          /* part 0's top-left pixel */
    assert_int_equal(pix(&m.im, 50, 200)[0], ACV_DET_FILL); /* left of part 2 */
    assert_int_equal(pix(&m.im, 150, 250)[0], ACV_DET_FILL); /* below part 2 */
    acv_det_sample_free(&m);
    /* a box entirely off the canvas disappears */
    assert_int_equal(acv_det_mosaic(p4, 128, 240, 90, &m), 0);
    assert_int_equal(m.n, 2); /* parts 1 and 3 start at x 240: their boxes at 280.. are gone */
    acv_det_sample_free(&m);
    for (int i = 0; i < 4; i++) acv_det_sample_free(&parts[i]);
}

static void test_warp_translate_and_filter(void **state)
{
    (void)state;
    acv_image im;
    acv_rng r;
    acv_rng_seed(&r, 3);
    assert_int_equal(acv_image_alloc(&im, 40, 30, 3), 0);
    for (size_t i = 0; i < 40 * 30 * 3; i++) im.data[i] = (uint8_t)acv_rng_below(&r, 256);
    acv_box b[3] = {{.x1 = 10, .y1 = 10, .x2 = 20, .y2 = 20, .cls = 0},
                    {.x1 = 0, .y1 = 0, .x2 = 20, .y2 = 8, .cls = 1},
                    {.x1 = 35, .y1 = 0, .x2 = 40, .y2 = 30, .cls = 2}};
    acv_det_sample s;
    acv_image orig;
    assert_int_equal(acv_image_alloc(&orig, 40, 30, 3), 0);
    memcpy(orig.data, im.data, 40 * 30 * 3);
    assert_int_equal(acv_det_sample_init(&s, im, b, 3), 0);
    /* x + 7, y - 5 into a 50 x 30 output */
    const float m[6] = {1, 0, 7, 0, 1, -5};
    assert_int_equal(acv_det_warp_affine(&s, m, 50, 30, NULL), 0);
    assert_int_equal(s.im.w, 50);
    for (int y = 0; y < 30; y++)
        for (int x = 0; x < 50; x++)
            for (int k = 0; k < 3; k++) {
                int sx = x - 7, sy = y + 5;
                int want = (sx >= 0 && sx < 40 && sy >= 0 && sy < 30) ? pix(&orig, sx, sy)[k] : ACV_DET_FILL;
                assert_int_equal(pix(&s.im, x, y)[k], want);
            }
    /* box 1 keeps 3 of 8 rows (37.5% of its area); box 2 lands at x 42..47 */
    assert_int_equal(s.n, 3);
    assert_float_equal(s.boxes[0].x1, 17, 1e-5);
    assert_float_equal(s.boxes[0].y1, 5, 1e-5);
    assert_float_equal(s.boxes[1].y1, 0, 0);
    assert_float_equal(s.boxes[1].y2, 3, 1e-5);
    assert_float_equal(s.boxes[2].x2, 47, 1e-5);
    /* now push box 1 up by 2 more: 1 of 8 rows left (12.5%) is kept at min_area_frac 0.1 but
     * not at 0.2; min_side 2 drops it either way once less than 2 rows remain */
    acv_det_aug_opts o;
    acv_det_aug_opts_default(&o);
    o.min_area_frac = 0.2f;
    const float up2[6] = {1, 0, 0, 0, 1, -2};
    acv_det_sample s2 = {0};
    acv_image cp;
    assert_int_equal(acv_image_alloc(&cp, 50, 30, 3), 0);
    memcpy(cp.data, s.im.data, 50 * 30 * 3);
    assert_int_equal(acv_det_sample_init(&s2, cp, s.boxes, s.n), 0);
    memcpy(s2.area0, s.area0, sizeof(float) * 3);
    assert_int_equal(acv_det_warp_affine(&s, up2, 50, 30, NULL), 0);
    assert_int_equal(s.n, 2); /* 1 row < min_side 2 */
    assert_int_equal(s.boxes[1].cls, 2);
    const float up1[6] = {1, 0, 0, 0, 1, -1};
    assert_int_equal(acv_det_warp_affine(&s2, up1, 50, 30, &o), 0);
    assert_int_equal(s2.n, 3); /* 2 rows = 25% of 8 passes 0.2 ... */
    o.min_area_frac = 0.3f;
    assert_int_equal(acv_det_warp_affine(&s2, (const float[6]){1, 0, 0, 0, 1, 0}, 50, 30, &o), 0);
    assert_int_equal(s2.n, 2); /* ... but not 0.3 */
    assert_int_equal(s2.boxes[0].cls, 0);
    assert_int_equal(s2.boxes[1].cls, 2);
    /* singular and non-finite matrices are refused */
    assert_int_equal(acv_det_warp_affine(&s2, (const float[6]){1, 1, 0, 1, 1, 0}, 50, 30, NULL), ACV_EINVAL);
    assert_int_equal(acv_det_warp_affine(&s2, (const float[6]){NAN, 0, 0, 0, 1, 0}, 50, 30, NULL), ACV_EINVAL);
    acv_det_sample_free(&s);
    acv_det_sample_free(&s2);
    acv_image_free(&orig);
}

/* A thin object wholly inside the picture (a 1-pixel scratch, halved by the warp) stays
 * labelled; the same sliver made by the border cutting a larger box goes (min_side 2). */
static void test_warp_keeps_thin_inside(void **state)
{
    (void)state;
    acv_image im;
    blank(&im, 64, 64, BG);
    acv_box b[2] = {rect(&im, 20, 30, 40, 31, 1), rect(&im, 10, 2, 30, 12, 2)};
    acv_det_sample s;
    assert_int_equal(acv_det_sample_init(&s, im, b, 2), 0);
    /* halve about the origin, then shift up by 5: box 0 becomes 10 x 0.5 at y 10..10.5 (in
     * the picture); box 1 becomes y -4..1, cut to 1 row (20 % of its area: only min_side
     * drops it) */
    const float m[6] = {0.5f, 0, 0, 0, 0.5f, -5};
    assert_int_equal(acv_det_warp_affine(&s, m, 64, 64, NULL), 0);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.boxes[0].cls, 1);
    assert_float_equal(s.boxes[0].x2 - s.boxes[0].x1, 10, 1e-5);
    assert_float_equal(s.boxes[0].y2 - s.boxes[0].y1, 0.5, 1e-5);
    acv_det_sample_free(&s);
}

static void test_warp_rotate90(void **state)
{
    (void)state;
    enum { W = 24 };
    acv_image im;
    acv_rng r;
    acv_rng_seed(&r, 5);
    assert_int_equal(acv_image_alloc(&im, W, W, 3), 0);
    for (size_t i = 0; i < W * W * 3; i++) im.data[i] = (uint8_t)acv_rng_below(&r, 256);
    acv_image orig;
    assert_int_equal(acv_image_alloc(&orig, W, W, 3), 0);
    memcpy(orig.data, im.data, W * W * 3);
    acv_box b = {.x1 = 2, .y1 = 5, .x2 = 10, .y2 = 21};
    acv_det_sample s;
    assert_int_equal(acv_det_sample_init(&s, im, &b, 1), 0);
    /* x' = y, y' = W - x: a quarter turn counter-clockwise on screen */
    const float m[6] = {0, 1, 0, -1, 0, W};
    assert_int_equal(acv_det_warp_affine(&s, m, W, W, NULL), 0);
    for (int j = 0; j < W; j++)
        for (int i = 0; i < W; i++) assert_memory_equal(pix(&s.im, j, W - 1 - i), pix(&orig, i, j), 3);
    assert_int_equal(s.n, 1);
    assert_float_equal(s.boxes[0].x1, 5, 1e-5);
    assert_float_equal(s.boxes[0].y1, W - 10, 1e-5);
    assert_float_equal(s.boxes[0].x2, 21, 1e-5);
    assert_float_equal(s.boxes[0].y2, W - 2, 1e-5);
    acv_det_sample_free(&s);
    acv_image_free(&orig);
}

static void test_random_affine_zero_ranges(void **state)
{
    (void)state;
    acv_det_aug_opts o;
    acv_det_aug_opts_default(&o);
    o.scale = o.translate = o.degrees = o.shear = 0;
    acv_rng r;
    acv_rng_seed(&r, 1);
    float m[6];
    acv_det_random_affine(&o, 256, 256, 128, 128, &r, m);
    const float want[6] = {1, 0, -64, 0, 1, -64};
    for (int i = 0; i < 6; i++) assert_float_equal(m[i], want[i], 1e-6);
    /* with ranges on, the draws stay inside them: scale in [0.5, 1.5], centre within +-10% */
    acv_det_aug_opts_default(&o);
    o.degrees = 10;
    for (int t = 0; t < 100; t++) {
        acv_det_random_affine(&o, 256, 256, 128, 128, &r, m);
        float s = sqrtf(fabsf(m[0] * m[4] - m[1] * m[3]));
        assert_true(s >= 0.5f - 1e-5f && s <= 1.5f + 1e-5f);
        assert_true(fabsf(atan2f(m[1], m[0])) <= 10.0f * (float)M_PI / 180 + 1e-5f);
        float cx = m[0] * 128 + m[1] * 128 + m[2], cy = m[3] * 128 + m[4] * 128 + m[5];
        assert_true(cx >= 64 - 12.8f - 1e-3f && cx <= 64 + 12.8f + 1e-3f);
        assert_true(cy >= 64 - 12.8f - 1e-3f && cy <= 64 + 12.8f + 1e-3f);
    }
}

static void test_hsv(void **state)
{
    (void)state;
    acv_image im, ref;
    acv_rng r, r2;
    acv_rng_seed(&r, 9);
    assert_int_equal(acv_image_alloc(&im, 16, 16, 3), 0);
    for (size_t i = 0; i < 16 * 16 * 3; i++) im.data[i] = (uint8_t)acv_rng_below(&r, 256);
    for (int x = 0; x < 16; x++) memset(im.data + x * 3, (uint8_t)(x * 16), 3); /* a gray row */
    assert_int_equal(acv_image_alloc(&ref, 16, 16, 3), 0);
    memcpy(ref.data, im.data, 16 * 16 * 3);
    r2 = r;
    acv_det_hsv(&im, 0, 0, 0, &r);
    assert_memory_equal(im.data, ref.data, 16 * 16 * 3);
    assert_memory_equal(&r, &r2, sizeof r); /* nothing drawn */
    /* value gain only: grays scale by one factor, stay gray, hue order kept */
    acv_det_hsv(&im, 0, 0, 0.4f, &r);
    float g = pix(&im, 11, 0)[0] / 176.0f; /* within 1/176 of the gain (no clipping below 182) */
    int changed = 0;
    for (int x = 1; x <= 11; x++) {
        const uint8_t *p = pix(&im, x, 0);
        assert_int_equal(p[0], p[1]);
        assert_int_equal(p[1], p[2]);
        float f = p[0] / (float)(x * 16);
        assert_true(fabsf(f - g) < 1.0f / (x * 16) + 1.0f / 176 + 1e-4f); /* truncation */
        changed |= p[0] != x * 16;
    }
    assert_true(g >= 0.6f - 0.01f && g <= 1.4f + 0.01f);
    assert_true(changed);
    /* full jitter: still RGB, deterministic given the generator */
    acv_image a, b;
    assert_int_equal(acv_image_alloc(&a, 16, 16, 3), 0);
    assert_int_equal(acv_image_alloc(&b, 16, 16, 3), 0);
    memcpy(a.data, ref.data, 16 * 16 * 3);
    memcpy(b.data, ref.data, 16 * 16 * 3);
    acv_rng_seed(&r, 11);
    acv_rng_seed(&r2, 11);
    acv_det_hsv(&a, 0.015f, 0.7f, 0.4f, &r);
    acv_det_hsv(&b, 0.015f, 0.7f, 0.4f, &r2);
    assert_memory_equal(a.data, b.data, 16 * 16 * 3);
    assert_memory_not_equal(a.data, ref.data, 16 * 16 * 3);
    /* pure primaries keep their hue under a small hue gain: red stays the dominant channel */
    acv_image red;
    blank(&red, 4, 4, 0);
    for (int i = 0; i < 16; i++) red.data[i * 3] = 200;
    acv_det_hsv(&red, 0.015f, 0.7f, 0.4f, &r);
    assert_true(red.data[0] > red.data[1] && red.data[0] > red.data[2]);
    acv_image_free(&red);
    acv_image_free(&a);
    acv_image_free(&b);
    acv_image_free(&im);
    acv_image_free(&ref);
}

/* ---- the full random pipeline ----------------------------------------------------- */

enum { SRC_W = 200, SRC_H = 150, S = 160 };

/* Source image j (0..3) with rectangles of colours 3j .. 3j+2, as a sample resized to S. */
static void make_part(int j, acv_det_sample *s, float *area_at_s)
{
    acv_image im;
    blank(&im, SRC_W, SRC_H, BG);
    static const int R[3][4] = {{10, 10, 60, 50}, {90, 20, 180, 60}, {40, 80, 110, 140}};
    acv_box b[3];
    for (int i = 0; i < 3; i++) {
        /* shift per image so the parts differ */
        int dx = (j * 7) % 12, dy = (j * 5) % 8;
        b[i] = rect(&im, R[i][0] + dx, R[i][1] + dy, R[i][2] + dx, R[i][3] + dy, 3 * j + i);
        area_at_s[3 * j + i] = (float)((R[i][2] - R[i][0]) * (R[i][3] - R[i][1])) * 0.8f * 0.8f;
    }
    assert_int_equal(acv_det_sample_init(s, im, b, 3), 0);
    assert_int_equal(acv_det_resize_long(s, S), 0);
}

/* Checks the result of one augmentation (HSV off, so colours are exact). */
static void check_boxes(const acv_det_sample *out, int ncolors, const float *area_at_s, float max_scale,
                        int *kept_total)
{
    const acv_image *im = &out->im;
    assert_int_equal(im->w, S);
    assert_int_equal(im->h, S);
    int count[12] = {0};
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++)
            for (int k = 0; k < ncolors; k++)
                if (is_color(pix(im, x, y), k)) count[k]++;
    int has[12] = {0};
    for (int i = 0; i < out->n; i++) {
        const acv_box *b = &out->boxes[i];
        int k = b->cls;
        assert_true(k >= 0 && k < ncolors);
        has[k]++;
        assert_true(b->x1 >= 0 && b->y1 >= 0 && b->x2 <= S && b->y2 <= S);
        assert_true(b->x2 - b->x1 >= 2 && b->y2 - b->y1 >= 2);
        /* exact-colour pixels: inside the box (1 px slack), and their extent is the box */
        int in = 0, outside = 0, lx = S, ly = S, hx = -1, hy = -1;
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++) {
                if (!is_color(pix(im, x, y), k)) continue;
                if (x + 1 >= b->x1 - 1 && x <= b->x2 + 1 && y + 1 >= b->y1 - 1 && y <= b->y2 + 1) in++;
                else outside++;
                lx = x < lx ? x : lx;
                hx = x > hx ? x : hx;
                ly = y < ly ? y : ly;
                hy = y > hy ? y : hy;
            }
        assert_true(in > 0);
        if (outside > 0) print_message("colour %d: %d pixels outside box %g %g %g %g\n", k, outside,
                                       (double)b->x1, (double)b->y1, (double)b->x2, (double)b->y2);
        assert_int_equal(outside, 0);
        float w = b->x2 - b->x1, h = b->y2 - b->y1;
        int interior = b->x1 > 1 && b->y1 > 1 && b->x2 < S - 1 && b->y2 < S - 1;
        if (interior && w >= 6 && h >= 6) {
            /* the box centre lies on its rectangle, and the box is tight (2.5 px: blended edges and
             * corners of rotated rectangles) */
            assert_true(is_color(pix(im, (int)((b->x1 + b->x2) / 2), (int)((b->y1 + b->y2) / 2)), k));
            assert_true(lx - b->x1 <= 2.5f && b->x2 - (hx + 1) <= 2.5f);
            assert_true(ly - b->y1 <= 2.5f && b->y2 - (hy + 1) <= 2.5f);
        }
    }
    for (int k = 0; k < ncolors; k++) {
        assert_true(has[k] <= 1);
        /* a rectangle of which a third is visible must have kept its box */
        if (count[k] > 0.34f * area_at_s[k] * max_scale * max_scale && !has[k]) {
            print_message("colour %d: %d pixels visible but no box\n", k, count[k]);
            fail();
        }
    }
    *kept_total += out->n;
}

static void run_pipeline(int mosaic, float degrees)
{
    acv_det_aug_opts o;
    acv_det_aug_opts_default(&o);
    o.hsv_h = o.hsv_s = o.hsv_v = 0; /* colours must stay exact for the checks */
    o.degrees = degrees;
    o.flipud = 0.5f;
    float area[12];
    int kept = 0, runs = 40;
    for (int seed = 0; seed < runs; seed++) {
        acv_det_sample parts[4];
        int np = mosaic ? 4 : 1;
        for (int j = 0; j < np; j++) make_part(j, &parts[j], area);
        acv_rng r;
        acv_rng_seed3(&r, 77, (uint64_t)mosaic, (uint64_t)seed);
        acv_det_sample out;
        assert_int_equal(acv_det_augment(parts, np, S, &o, &r, &out), 0);
        check_boxes(&out, 3 * np, area, 1.0f + o.scale, &kept);
        acv_det_sample_free(&out);
    }
    /* most rectangles survive on average (the output is a quarter of the mosaic canvas) */
    assert_true(kept > runs * (mosaic ? 3 : 2));
}

static void test_augment_mosaic(void **state)
{
    (void)state;
    run_pipeline(1, 0.0f);
}

static void test_augment_mosaic_rotated(void **state)
{
    (void)state;
    run_pipeline(1, 5.0f);
}

static void test_augment_letterbox_path(void **state)
{
    (void)state;
    run_pipeline(0, 3.0f);
}

static void test_augment_deterministic(void **state)
{
    (void)state;
    acv_det_aug_opts o;
    acv_det_aug_opts_default(&o);
    o.degrees = 4;
    float area[12];
    acv_det_sample out[2];
    for (int t = 0; t < 2; t++) {
        acv_det_sample parts[4];
        for (int j = 0; j < 4; j++) make_part(j, &parts[j], area);
        acv_rng r;
        acv_rng_seed(&r, 1234);
        assert_int_equal(acv_det_augment(parts, 4, S, &o, &r, &out[t]), 0);
    }
    assert_int_equal(out[0].n, out[1].n);
    assert_memory_equal(out[0].im.data, out[1].im.data, S * S * 3);
    assert_memory_equal(out[0].boxes, out[1].boxes, sizeof(acv_box) * out[0].n);
    acv_det_sample_free(&out[0]);
    acv_det_sample_free(&out[1]);
    /* bad part counts and options are refused (the parts are consumed either way) */
    acv_det_sample parts[2];
    for (int j = 0; j < 2; j++) make_part(j, &parts[j], area);
    acv_rng r;
    acv_rng_seed(&r, 1);
    assert_int_equal(acv_det_augment(parts, 2, S, &o, &r, &out[0]), ACV_EINVAL);
    o.scale = 1.0f;
    assert_int_equal(acv_det_aug_opts_check(&o), ACV_EINVAL);
    assert_non_null(strstr(acv_errmsg(), "scale"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_letterbox_exact),
        cmocka_unit_test(test_resize_long),
        cmocka_unit_test(test_flip_exact),
        cmocka_unit_test(test_mosaic_placement),
        cmocka_unit_test(test_warp_translate_and_filter),
        cmocka_unit_test(test_warp_keeps_thin_inside),
        cmocka_unit_test(test_warp_rotate90),
        cmocka_unit_test(test_random_affine_zero_ranges),
        cmocka_unit_test(test_hsv),
        cmocka_unit_test(test_augment_mosaic),
        cmocka_unit_test(test_augment_mosaic_rotated),
        cmocka_unit_test(test_augment_letterbox_path),
        cmocka_unit_test(test_augment_deterministic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
