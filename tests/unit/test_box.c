/* Boxes: area and IoU on hand-computed cases; NMS class-aware vs agnostic, the IoU and score
 * thresholds at their edges, max_keep, stable ties, greedy chains, and a randomized comparison
 * with a plain O(n^2) reference. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "base/rng.h"
#include "vision/box.h"

static acv_box B(float x1, float y1, float x2, float y2, int cls, float score)
{
    return (acv_box){.x1 = x1, .y1 = y1, .x2 = x2, .y2 = y2, .cls = cls, .score = score};
}

static void test_area_iou(void **state)
{
    (void)state;
    acv_box a = B(0, 0, 2, 2, 0, 1), b = B(1, 0, 3, 2, 0, 1);
    assert_float_equal(acv_box_area(&a), 4.0f, 0);
    assert_float_equal(acv_box_area(&(acv_box){.x1 = 3, .y1 = 0, .x2 = 1, .y2 = 2}), 0.0f, 0); /* inverted */
    assert_float_equal(acv_box_area(&(acv_box){.x1 = 1, .y1 = 1, .x2 = 1, .y2 = 5}), 0.0f, 0); /* empty */
    assert_float_equal(acv_box_iou(&a, &b), 2.0f / 6.0f, 1e-7);
    assert_float_equal(acv_box_iou(&b, &a), 2.0f / 6.0f, 1e-7);
    assert_float_equal(acv_box_iou(&a, &a), 1.0f, 0);
    acv_box in = B(1, 1, 3, 3, 0, 1), out = B(0, 0, 4, 4, 0, 1);
    assert_float_equal(acv_box_iou(&in, &out), 0.25f, 0);
    acv_box touch = B(2, 0, 4, 2, 0, 1);
    assert_float_equal(acv_box_iou(&a, &touch), 0.0f, 0);
    acv_box far = B(10, 10, 12, 12, 0, 1);
    assert_float_equal(acv_box_iou(&a, &far), 0.0f, 0);
    acv_box empty = B(1, 1, 1, 1, 0, 1);
    assert_float_equal(acv_box_iou(&empty, &empty), 0.0f, 0);
    assert_float_equal(acv_box_iou(&a, &empty), 0.0f, 0);
}

static void test_nms_class_aware(void **state)
{
    (void)state;
    /* Two nearly identical boxes of different classes and a duplicate of class 0. */
    acv_box in[3] = {B(0, 0, 10, 10, 0, 0.9f), B(0, 0, 10, 10.5f, 1, 0.8f), B(1, 0, 10, 10, 0, 0.7f)};
    acv_box b[3];
    memcpy(b, in, sizeof in);
    int k = acv_box_nms(b, 3, 0.0f, 0.5f, 0, 0);
    assert_int_equal(k, 2);
    assert_int_equal(b[0].cls, 0);
    assert_float_equal(b[0].score, 0.9f, 0);
    assert_int_equal(b[1].cls, 1);
    memcpy(b, in, sizeof in);
    k = acv_box_nms(b, 3, 0.0f, 0.5f, 0, 1); /* agnostic: only the best survives */
    assert_int_equal(k, 1);
    assert_float_equal(b[0].score, 0.9f, 0);
}

static void test_nms_thresholds(void **state)
{
    (void)state;
    /* IoU exactly 0.5: kept at iou_thr 0.5 (only "above" suppresses), suppressed at 0.49. */
    acv_box in[2] = {B(0, 0, 4, 1, 0, 0.9f), B(0, 0, 2, 1, 0, 0.6f)};
    assert_float_equal(acv_box_iou(&in[0], &in[1]), 0.5f, 0);
    acv_box b[2];
    memcpy(b, in, sizeof in);
    assert_int_equal(acv_box_nms(b, 2, 0.0f, 0.5f, 0, 0), 2);
    memcpy(b, in, sizeof in);
    assert_int_equal(acv_box_nms(b, 2, 0.0f, 0.49f, 0, 0), 1);
    /* Score threshold: a score equal to it is kept, one below dropped before suppression. */
    memcpy(b, in, sizeof in);
    assert_int_equal(acv_box_nms(b, 2, 0.6f, 0.9f, 0, 0), 2);
    memcpy(b, in, sizeof in);
    int k = acv_box_nms(b, 2, 0.61f, 0.9f, 0, 0);
    assert_int_equal(k, 1);
    assert_float_equal(b[0].score, 0.9f, 0);
    /* A dropped low score cannot suppress: the high box survives even though it overlaps. */
    acv_box c[2] = {B(0, 0, 4, 4, 0, 0.1f), B(0, 0, 4, 4, 0, 0.5f)};
    k = acv_box_nms(c, 2, 0.3f, 0.5f, 0, 0);
    assert_int_equal(k, 1);
    assert_float_equal(c[0].score, 0.5f, 0);
    /* Everything below the threshold, and NaN scores, give nothing. */
    acv_box d[2] = {B(0, 0, 1, 1, 0, 0.1f), B(0, 0, 1, 1, 0, NAN)};
    assert_int_equal(acv_box_nms(d, 2, 0.2f, 0.5f, 0, 0), 0);
    assert_int_equal(acv_box_nms(d, 0, 0.0f, 0.5f, 0, 0), 0);
}

static void test_nms_max_keep_and_order(void **state)
{
    (void)state;
    acv_box b[5];
    for (int i = 0; i < 5; i++) b[i] = B(20.0f * i, 0, 20.0f * i + 10, 10, i, 0.1f * (i + 1));
    int k = acv_box_nms(b, 5, 0.0f, 0.5f, 3, 0);
    assert_int_equal(k, 3);
    /* the three best, in descending score */
    assert_int_equal(b[0].cls, 4);
    assert_int_equal(b[1].cls, 3);
    assert_int_equal(b[2].cls, 2);
    /* max_keep counts kept boxes, not visited ones: suppressed boxes do not use up the budget */
    acv_box c[4] = {B(0, 0, 10, 10, 0, 0.9f), B(0, 0, 10, 10, 0, 0.8f), B(0, 0, 10, 10, 0, 0.7f),
                    B(50, 0, 60, 10, 0, 0.1f)};
    k = acv_box_nms(c, 4, 0.0f, 0.5f, 2, 0);
    assert_int_equal(k, 2);
    assert_float_equal(c[1].score, 0.1f, 0);
}

static void test_nms_ties_stable(void **state)
{
    (void)state;
    /* Equal scores keep the input order, both in the output and in who suppresses whom. */
    acv_box b[4] = {B(100, 0, 110, 10, 7, 0.5f), B(0, 0, 10, 10, 3, 0.5f), B(0, 0, 10, 10, 5, 0.5f),
                    B(50, 0, 60, 10, 1, 0.5f)};
    int k = acv_box_nms(b, 4, 0.0f, 0.5f, 0, 1);
    assert_int_equal(k, 3);
    assert_int_equal(b[0].cls, 7);
    assert_int_equal(b[1].cls, 3); /* the first of the two duplicates wins */
    assert_int_equal(b[2].cls, 1);
}

static void test_nms_greedy_chain(void **state)
{
    (void)state;
    /* A suppresses B; B would have suppressed C, but a suppressed box suppresses nothing. */
    acv_box b[3] = {B(0, 0, 10, 10, 0, 0.9f), B(4, 0, 14, 10, 0, 0.8f), B(8, 0, 18, 10, 0, 0.7f)};
    int k = acv_box_nms(b, 3, 0.0f, 0.4f, 0, 0);
    assert_int_equal(k, 2);
    assert_float_equal(b[0].score, 0.9f, 0);
    assert_float_equal(b[1].score, 0.7f, 0);
}

/* The textbook algorithm: stable sort, then suppress against every kept box. */
static int ref_nms(acv_box *b, int n, float sthr, float ithr, int max_keep, int agnostic)
{
    int m = 0;
    for (int i = 0; i < n; i++)
        if (b[i].score >= sthr) b[m++] = b[i];
    for (int i = 1; i < m; i++) {
        acv_box t = b[i];
        int j = i - 1;
        while (j >= 0 && b[j].score < t.score) b[j + 1] = b[j], j--;
        b[j + 1] = t;
    }
    char *dead = calloc((size_t)m, 1);
    int k = 0;
    acv_box *out = malloc((size_t)m * sizeof *out + 1);
    for (int i = 0; i < m; i++) {
        if (dead[i]) continue;
        if (max_keep > 0 && k == max_keep) break;
        out[k++] = b[i];
        for (int j = i + 1; j < m; j++)
            if ((agnostic || b[j].cls == b[i].cls) && acv_box_iou(&b[i], &b[j]) > ithr) dead[j] = 1;
    }
    memcpy(b, out, (size_t)k * sizeof *out);
    free(out);
    free(dead);
    return k;
}

static void test_nms_matches_reference(void **state)
{
    (void)state;
    acv_rng r;
    acv_rng_seed(&r, 42);
    enum { N = 3000 };
    acv_box *a = malloc(N * sizeof *a), *b = malloc(N * sizeof *b);
    for (int trial = 0; trial < 6; trial++) {
        for (int i = 0; i < N; i++) {
            float x = acv_rng_uniform(&r) * 600, y = acv_rng_uniform(&r) * 600;
            float w = 5 + acv_rng_uniform(&r) * 60, h = 5 + acv_rng_uniform(&r) * 60;
            /* quantized scores make ties frequent */
            a[i] = B(x, y, x + w, y + h, (int)acv_rng_below(&r, 4), (float)acv_rng_below(&r, 50) / 50.0f);
        }
        int agnostic = trial & 1, max_keep = trial >= 4 ? 100 : 0;
        memcpy(b, a, N * sizeof *a);
        int k1 = acv_box_nms(a, N, 0.1f, 0.45f, max_keep, agnostic);
        int k2 = ref_nms(b, N, 0.1f, 0.45f, max_keep, agnostic);
        assert_int_equal(k1, k2);
        assert_true(k1 > 50);
        assert_memory_equal(a, b, (size_t)k1 * sizeof *a);
    }
    free(a);
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_area_iou),
        cmocka_unit_test(test_nms_class_aware),
        cmocka_unit_test(test_nms_thresholds),
        cmocka_unit_test(test_nms_max_keep_and_order),
        cmocka_unit_test(test_nms_ties_stable),
        cmocka_unit_test(test_nms_greedy_chain),
        cmocka_unit_test(test_nms_matches_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
