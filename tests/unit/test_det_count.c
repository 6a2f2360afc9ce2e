/* Counting thresholds chosen on a validation set (metrics/det_count.h): crafted cases worked
 * out by hand, and random cases against a brute-force reading of the contract. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "autocv/error.h"
#include "metrics/det_count.h"

static acv_box bx(int cls, float score)
{
    acv_box b = {0, 0, 10, 10, cls, score, 0};
    return b;
}

/* Two classes, three images, worked out by hand (any number of images may choose).
 *   image 0: 1 x class 0; predictions 0.9 (c0), 0.3 (c0)
 *   image 1: 2 x class 0; predictions 0.8, 0.35 (c0)
 *   image 2: 0 x class 0, 1 x class 1; predictions 0.2 (c0), 0.6 (c1), 0.04 (c1, below 0.05)
 * Class 0 at t: t <= 0.2 -> counts 2, 2, 1 (one exact); 0.2 < t <= 0.3 -> 2, 2, 0 (two);
 * 0.3 < t <= 0.35 -> 1, 2, 0 (all three); 0.35 < t <= 0.8 -> 1, 1, 0 (two). The best is the
 * grid's (0.3, 0.35] = {0.31 .. 0.35}, the nearest 0.5 being 0.35. Class 1: exact for any
 * t <= 0.6 (and images 0, 1 always); ties broken towards 0.5: 0.5. */
static void test_crafted(void **state)
{
    (void)state;
    acv_count_calib *c = acv_count_calib_new(2);
    assert_non_null(c);
    acv_box g0[1] = {bx(0, 1)}, p0[2] = {bx(0, 0.9f), bx(0, 0.3f)};
    acv_box g1[2] = {bx(0, 1), bx(0, 1)}, p1[2] = {bx(0, 0.8f), bx(0, 0.35f)};
    acv_box g2[1] = {bx(1, 1)}, p2[3] = {bx(0, 0.2f), bx(1, 0.6f), bx(1, 0.04f)};
    assert_int_equal(acv_count_calib_add(c, g0, 1, p0, 2), 0);
    assert_int_equal(acv_count_calib_add(c, g1, 2, p1, 2), 0);
    assert_int_equal(acv_count_calib_add(c, g2, 1, p2, 3), 0);
    assert_int_equal(acv_count_calib_images(c), 3);
    float thr[2];
    assert_int_equal(acv_count_calib_best(c, 1, thr), 0);
    assert_float_equal(thr[0], 0.35f, 1e-6f);
    assert_float_equal(thr[1], 0.5f, 1e-6f);
    /* class 0 is in two images, class 1 in one: asking for three, both keep 0.5 */
    float few[2];
    assert_int_equal(acv_count_calib_best(c, 2, few), 0);
    assert_float_equal(few[0], 0.35f, 1e-6f);
    assert_float_equal(few[1], 0.5f, 1e-6f);
    assert_int_equal(acv_count_calib_best(c, 3, few), 0);
    assert_float_equal(few[0], 0.5f, 1e-6f);
    double exact, mae, cm[2];
    assert_int_equal(acv_count_calib_score(c, thr, &exact, &mae, cm), 0);
    assert_float_equal(exact, 1.0, 1e-12);
    assert_float_equal(mae, 0.0, 1e-12);
    /* one threshold of 0.5 for both: class 0 counts 1, 1, 0 (image 1 off by one) */
    float half[2] = {0.5f, 0.5f};
    assert_int_equal(acv_count_calib_score(c, half, &exact, &mae, cm), 0);
    assert_float_equal(exact, 2.0 / 3, 1e-12);
    assert_float_equal(cm[0], 1.0 / 3, 1e-12);
    assert_float_equal(cm[1], 0.0, 1e-12);
    assert_float_equal(mae, 1.0 / 6, 1e-12);
    /* 0.61 misses image 2's class 1 */
    float high[2] = {0.35f, 0.61f};
    assert_int_equal(acv_count_calib_score(c, high, &exact, &mae, cm), 0);
    assert_float_equal(exact, 2.0 / 3, 1e-12);
    assert_float_equal(cm[1], 1.0 / 3, 1e-12);

    /* the JSON figures */
    json_t *mj = json_pack("{s:f, s:[{s:s}, {s:s}]}", "count_threshold", 0.5, "per_class", "name", "a", "name", "b");
    assert_int_equal(acv_count_calib_to_json(c, thr, mj), 0);
    assert_true(json_is_null(json_object_get(mj, "count_threshold")));
    assert_float_equal(json_real_value(json_array_get(json_object_get(mj, "count_thresholds"), 0)), 0.35, 1e-9);
    assert_float_equal(json_real_value(json_object_get(mj, "count_exact")), 1.0, 1e-12);
    assert_int_equal(json_array_size(json_object_get(mj, "count_mae_per_class")), 2);
    assert_non_null(json_object_get(json_array_get(json_object_get(mj, "per_class"), 1), "count_mae"));
    json_decref(mj);

    /* reset forgets the images */
    acv_count_calib_reset(c);
    assert_int_equal(acv_count_calib_images(c), 0);
    assert_int_equal(acv_count_calib_score(c, thr, &exact, &mae, NULL), 0);
    assert_float_equal(exact, 1.0, 1e-12);
    acv_count_calib_free(c);
}

/* Crowd and difficult boxes are not counted; bad input is refused and changes nothing. */
static void test_ignored_and_errors(void **state)
{
    (void)state;
    acv_count_calib *c = acv_count_calib_new(1);
    acv_box g[3] = {bx(0, 1), bx(0, 1), bx(0, 1)};
    g[1].flags = ACV_BOX_CROWD;
    g[2].flags = ACV_BOX_DIFFICULT;
    acv_box p[1] = {bx(0, 0.7f)};
    assert_int_equal(acv_count_calib_add(c, g, 3, p, 1), 0);
    float thr[1];
    assert_int_equal(acv_count_calib_best(c, 1, thr), 0);
    assert_true(thr[0] <= 0.7f); /* one true object, one prediction */
    double exact, mae;
    assert_int_equal(acv_count_calib_score(c, thr, &exact, &mae, NULL), 0);
    assert_float_equal(exact, 1.0, 1e-12);

    acv_box bad_cls[1] = {bx(1, 0.9f)}, nan_score[1] = {bx(0, NAN)};
    assert_int_equal(acv_count_calib_add(c, g, 1, bad_cls, 1), ACV_EINVAL);
    assert_non_null(strstr(acv_errmsg(), "prediction 0 has class 1"));
    assert_int_equal(acv_count_calib_add(c, bad_cls, 1, NULL, 0), ACV_EINVAL);
    assert_non_null(strstr(acv_errmsg(), "gt 0 has class 1"));
    assert_int_equal(acv_count_calib_add(c, g, 1, nan_score, 1), ACV_EINVAL);
    assert_non_null(strstr(acv_errmsg(), "non-finite"));
    assert_int_equal(acv_count_calib_images(c), 1);
    assert_int_equal(acv_count_calib_score(c, thr, &exact, &mae, NULL), 0);
    assert_float_equal(exact, 1.0, 1e-12);
    acv_count_calib_free(c);
    assert_null(acv_count_calib_new(0));
}

/* Random images: each chosen threshold is the grid point with the most exact images for its
 * class, then the least error, then the nearest 0.5; the scores agree with a direct count. */
static void test_random_brute_force(void **state)
{
    (void)state;
    srand(12345);
    for (int trial = 0; trial < 30; trial++) {
        int k = 1 + rand() % 4, n = 1 + rand() % 25;
        acv_count_calib *c = acv_count_calib_new(k);
        int *truth = calloc((size_t)n * k, sizeof(int));
        float *sc = malloc((size_t)n * 40 * sizeof(float));
        int *pc = malloc((size_t)n * 40 * sizeof(int)), *np = calloc((size_t)n, sizeof(int));
        for (int i = 0; i < n; i++) {
            int ng = rand() % 6;
            acv_box g[6], p[40];
            for (int j = 0; j < ng; j++) {
                g[j] = bx(rand() % k, 1);
                truth[i * k + g[j].cls]++;
            }
            np[i] = rand() % 12;
            for (int j = 0; j < np[i]; j++) {
                p[j] = bx(rand() % k, (float)rand() / (float)RAND_MAX);
                sc[i * 40 + j] = p[j].score;
                pc[i * 40 + j] = p[j].cls;
            }
            assert_int_equal(acv_count_calib_add(c, g, ng, p, np[i]), 0);
        }
        float thr[4];
        assert_int_equal(acv_count_calib_best(c, 0, thr), 0);
        int64_t all_ok = 0, all_err = 0;
        unsigned char bad[25] = {0};
        for (int cl = 0; cl < k; cl++) {
            int best_ok = -1, best_err = 0;
            float best_t = 0;
            for (int ti = 0; ti <= 90; ti++) {
                float t = 0.05f + (float)ti * 0.01f;
                int ok = 0, err = 0;
                for (int i = 0; i < n; i++) {
                    int cnt = 0;
                    for (int j = 0; j < np[i]; j++) cnt += pc[i * 40 + j] == cl && sc[i * 40 + j] >= 0.05f && sc[i * 40 + j] >= t;
                    ok += cnt == truth[i * k + cl];
                    err += abs(cnt - truth[i * k + cl]);
                }
                if (best_ok < 0 || ok > best_ok || (ok == best_ok && err < best_err) ||
                    (ok == best_ok && err == best_err && fabsf(t - 0.5f) < fabsf(best_t - 0.5f))) {
                    best_ok = ok;
                    best_err = err;
                    best_t = t;
                }
            }
            assert_float_equal(thr[cl], best_t, 1e-6f);
            all_err += best_err;
            for (int i = 0; i < n; i++) {
                int cnt = 0;
                for (int j = 0; j < np[i]; j++) cnt += pc[i * 40 + j] == cl && sc[i * 40 + j] >= thr[cl];
                if (cnt != truth[i * k + cl]) bad[i] = 1;
            }
        }
        for (int i = 0; i < n; i++) all_ok += !bad[i];
        double exact, mae;
        assert_int_equal(acv_count_calib_score(c, thr, &exact, &mae, NULL), 0);
        assert_float_equal(exact, (double)all_ok / n, 1e-12);
        assert_float_equal(mae, (double)all_err / ((double)n * k), 1e-12);
        acv_count_calib_free(c);
        free(truth);
        free(sc);
        free(pc);
        free(np);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crafted),
        cmocka_unit_test(test_ignored_and_errors),
        cmocka_unit_test(test_random_brute_force),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
