/* Classification metrics: small hand-computed cases (perfect, all wrong, ties, a class
 * never predicted, top-5 with fewer than 5 classes), batch accumulation, input checks
 * and the JSON shape. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <math.h>
#include <string.h>
#include <cmocka.h>

#include "autocv/error.h"
#include "metrics/cls.h"

#define EPS 1e-9

/* Scores with a single 1.0 at pred[i] per row (k columns). */
static void one_hot(float *scores, const int *pred, int n, int k)
{
    memset(scores, 0, sizeof(float) * (size_t)n * (size_t)k);
    for (int i = 0; i < n; i++) scores[i * k + pred[i]] = 1.0f;
}

static void test_perfect(void **state)
{
    (void)state;
    acv_cls_metrics *m = acv_cls_metrics_new(3);
    assert_non_null(m);
    int labels[] = {0, 1, 2, 2};
    float s[4 * 3];
    one_hot(s, labels, 4, 3);
    assert_int_equal(acv_cls_metrics_add(m, s, labels, 4), 0);
    assert_int_equal(acv_cls_metrics_count(m), 4);
    assert_float_equal(acv_cls_metrics_top1(m), 1.0, EPS);
    assert_float_equal(acv_cls_metrics_top5(m), 1.0, EPS);
    assert_float_equal(acv_cls_metrics_macro_f1(m), 1.0, EPS);
    const int64_t *cm = acv_cls_metrics_confusion(m);
    int64_t want[9] = {1, 0, 0, 0, 1, 0, 0, 0, 2};
    for (int i = 0; i < 9; i++) assert_int_equal(cm[i], want[i]);
    acv_cls_class_stats c2 = acv_cls_metrics_class(m, 2);
    assert_int_equal(c2.support, 2);
    assert_float_equal(c2.precision, 1.0, EPS);
    assert_float_equal(c2.recall, 1.0, EPS);
    acv_cls_metrics_free(m);
}

static void test_all_wrong(void **state)
{
    (void)state;
    acv_cls_metrics *m = acv_cls_metrics_new(3);
    int labels[] = {0, 1, 2};
    int pred[] = {1, 2, 0};
    float s[3 * 3];
    one_hot(s, pred, 3, 3);
    assert_int_equal(acv_cls_metrics_add(m, s, labels, 3), 0);
    assert_float_equal(acv_cls_metrics_top1(m), 0.0, EPS);
    /* k = 3: "top-5" is top-3, which always contains the true class. */
    assert_float_equal(acv_cls_metrics_top5(m), 1.0, EPS);
    assert_float_equal(acv_cls_metrics_macro_f1(m), 0.0, EPS);
    for (int c = 0; c < 3; c++) {
        acv_cls_class_stats st = acv_cls_metrics_class(m, c);
        assert_float_equal(st.precision, 0.0, EPS);
        assert_float_equal(st.recall, 0.0, EPS);
        assert_float_equal(st.f1, 0.0, EPS);
        assert_int_equal(st.support, 1);
        assert_int_equal(st.predicted, 1);
    }
    const int64_t *cm = acv_cls_metrics_confusion(m);
    assert_int_equal(cm[0 * 3 + 1], 1);
    assert_int_equal(cm[1 * 3 + 2], 1);
    assert_int_equal(cm[2 * 3 + 0], 1);
    assert_int_equal(cm[0], 0);
    acv_cls_metrics_free(m);
}

/* Equal scores: the lower index is predicted, and ranks before a higher one. */
static void test_ties(void **state)
{
    (void)state;
    acv_cls_metrics *m = acv_cls_metrics_new(6);
    float s[4 * 6];
    for (int i = 0; i < 4 * 6; i++) s[i] = 0.25f;
    /* row 2: classes 1 and 3 tie for the maximum -> predicted 1 */
    s[2 * 6 + 1] = s[2 * 6 + 3] = 0.9f;
    int labels[] = {0, 4, 3, 5};
    assert_int_equal(acv_cls_metrics_add(m, s, labels, 4), 0);
    const int64_t *cm = acv_cls_metrics_confusion(m);
    assert_int_equal(cm[0 * 6 + 0], 1); /* all tied -> class 0 */
    assert_int_equal(cm[4 * 6 + 0], 1);
    assert_int_equal(cm[3 * 6 + 1], 1); /* tie between 1 and 3 -> 1 */
    assert_int_equal(cm[5 * 6 + 0], 1);
    /* top-1: only sample 0. top-5: label 4 has rank 4 (in), label 3 rank 1 (in),
     * label 5 rank 5 (out) -> 3 of 4. */
    assert_float_equal(acv_cls_metrics_top1(m), 0.25, EPS);
    assert_float_equal(acv_cls_metrics_top5(m), 0.75, EPS);
    acv_cls_metrics_free(m);
}

/* labels [0,0,1,1,2], predictions [0,1,1,1,0]:
 * class 0: tp 1, predicted 2, support 2 -> P .5, R .5, F1 .5
 * class 1: tp 2, predicted 3, support 2 -> P 2/3, R 1, F1 .8
 * class 2: never predicted -> P 0, R 0, F1 0. macro F1 = 1.3 / 3 (sklearn agrees). */
static void check_never_predicted(int k)
{
    acv_cls_metrics *m = acv_cls_metrics_new(k);
    int labels[] = {0, 0, 1, 1, 2};
    int pred[] = {0, 1, 1, 1, 0};
    float s[5 * 8];
    one_hot(s, pred, 5, k);
    assert_int_equal(acv_cls_metrics_add(m, s, labels, 5), 0);
    assert_float_equal(acv_cls_metrics_top1(m), 3.0 / 5.0, EPS);
    acv_cls_class_stats c0 = acv_cls_metrics_class(m, 0), c1 = acv_cls_metrics_class(m, 1),
                        c2 = acv_cls_metrics_class(m, 2);
    assert_float_equal(c0.precision, 0.5, EPS);
    assert_float_equal(c0.recall, 0.5, EPS);
    assert_float_equal(c0.f1, 0.5, EPS);
    assert_float_equal(c1.precision, 2.0 / 3.0, EPS);
    assert_float_equal(c1.recall, 1.0, EPS);
    assert_float_equal(c1.f1, 0.8, EPS);
    assert_int_equal(c2.predicted, 0);
    assert_int_equal(c2.support, 1);
    assert_float_equal(c2.precision, 0.0, EPS);
    assert_float_equal(c2.f1, 0.0, EPS);
    /* A class with neither samples nor predictions (k = 4) is left out of the mean. */
    assert_float_equal(acv_cls_metrics_macro_f1(m), 1.3 / 3.0, EPS);
    acv_cls_metrics_free(m);
}

static void test_never_predicted(void **state)
{
    (void)state;
    check_never_predicted(3);
    check_never_predicted(4);
}

/* Top-5 with distinct scores and k = 7; and k = 3 where top-5 means top-3. */
static void test_top5(void **state)
{
    (void)state;
    acv_cls_metrics *m = acv_cls_metrics_new(7);
    float s[2 * 7] = {7, 6, 5, 4, 3, 2, 1, /* */ 7, 6, 5, 4, 3, 2, 1};
    int labels[] = {4, 5}; /* rank 4 -> in top-5; rank 5 -> out */
    assert_int_equal(acv_cls_metrics_add(m, s, labels, 2), 0);
    assert_float_equal(acv_cls_metrics_top1(m), 0.0, EPS);
    assert_float_equal(acv_cls_metrics_top5(m), 0.5, EPS);
    acv_cls_metrics_free(m);

    m = acv_cls_metrics_new(3);
    float t[3 * 3] = {0.1f, 0.7f, 0.2f, -INFINITY, 0.0f, 1.0f, 3, 2, 1};
    int l3[] = {0, 0, 2};
    assert_int_equal(acv_cls_metrics_add(m, t, l3, 3), 0);
    assert_float_equal(acv_cls_metrics_top1(m), 0.0, EPS);
    assert_float_equal(acv_cls_metrics_top5(m), 1.0, EPS);
    acv_cls_metrics_free(m);

    m = acv_cls_metrics_new(1);
    float u[2] = {-3.0f, 4.0f};
    int l1[] = {0, 0};
    assert_int_equal(acv_cls_metrics_add(m, u, l1, 2), 0);
    assert_float_equal(acv_cls_metrics_top1(m), 1.0, EPS);
    assert_float_equal(acv_cls_metrics_top5(m), 1.0, EPS);
    acv_cls_metrics_free(m);
}

/* Three batches give the same counts as one; reset empties. */
static void test_batches_and_reset(void **state)
{
    (void)state;
    acv_cls_metrics *a = acv_cls_metrics_new(4), *b = acv_cls_metrics_new(4);
    float s[6 * 4] = {
        0.1f, 0.2f, 0.3f, 0.4f,  0.9f, 0.0f, 0.0f, 0.1f,  0.2f, 0.5f, 0.2f, 0.1f,
        0.3f, 0.3f, 0.2f, 0.2f,  0.0f, 0.0f, 1.0f, 0.0f,  0.4f, 0.1f, 0.1f, 0.4f,
    };
    int labels[] = {3, 0, 2, 1, 2, 3};
    assert_int_equal(acv_cls_metrics_add(a, s, labels, 6), 0);
    assert_int_equal(acv_cls_metrics_add(b, s, labels, 2), 0);
    assert_int_equal(acv_cls_metrics_add(b, s + 2 * 4, labels + 2, 1), 0);
    assert_int_equal(acv_cls_metrics_add(b, s + 3 * 4, labels + 3, 3), 0);
    assert_int_equal(acv_cls_metrics_add(b, s, labels, 0), 0);
    assert_int_equal(acv_cls_metrics_count(b), 6);
    assert_memory_equal(acv_cls_metrics_confusion(a), acv_cls_metrics_confusion(b), 16 * sizeof(int64_t));
    assert_float_equal(acv_cls_metrics_top1(a), acv_cls_metrics_top1(b), EPS);
    /* preds: 3,0,1,0(tie),2,0(tie) -> correct: 0,1,4 -> 3/6 */
    assert_float_equal(acv_cls_metrics_top1(a), 0.5, EPS);
    acv_cls_metrics_reset(b);
    assert_int_equal(acv_cls_metrics_count(b), 0);
    assert_float_equal(acv_cls_metrics_top1(b), 0.0, EPS);
    assert_float_equal(acv_cls_metrics_macro_f1(b), 0.0, EPS);
    for (int i = 0; i < 16; i++) assert_int_equal(acv_cls_metrics_confusion(b)[i], 0);
    acv_cls_metrics_free(a);
    acv_cls_metrics_free(b);
}

static void test_bad_input(void **state)
{
    (void)state;
    assert_null(acv_cls_metrics_new(0));
    assert_non_null(strstr(acv_errmsg(), "0 classes"));
    acv_cls_metrics *m = acv_cls_metrics_new(3);
    float s[2 * 3] = {1, 0, 0, 0, 1, 0};
    int bad[] = {0, 3};
    assert_int_equal(acv_cls_metrics_add(m, s, bad, 2), ACV_EINVAL);
    assert_non_null(strstr(acv_errmsg(), "sample 1"));
    assert_int_equal(acv_cls_metrics_count(m), 0); /* the good first sample was not added */
    int neg[] = {-1, 0};
    assert_int_equal(acv_cls_metrics_add(m, s, neg, 2), ACV_EINVAL);
    s[4] = NAN;
    int ok[] = {0, 1};
    assert_int_equal(acv_cls_metrics_add(m, s, ok, 2), ACV_ENUMERIC);
    assert_non_null(strstr(acv_errmsg(), "class 1"));
    assert_int_equal(acv_cls_metrics_count(m), 0);
    assert_int_equal(acv_cls_metrics_add(m, s, ok, -1), ACV_EINVAL);
    acv_cls_metrics_free(m);
    acv_cls_metrics_free(NULL);
}

static double jreal(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    assert_non_null(v);
    assert_true(json_is_real(v));
    return json_real_value(v);
}

static void test_json(void **state)
{
    (void)state;
    acv_cls_metrics *m = acv_cls_metrics_new(3);
    int labels[] = {0, 0, 1, 1, 2};
    int pred[] = {0, 1, 1, 1, 0};
    float s[5 * 3];
    one_hot(s, pred, 5, 3);
    assert_int_equal(acv_cls_metrics_add(m, s, labels, 5), 0);
    const char *names[] = {"ok", "scratch", "dent"};
    json_t *j = NULL;
    assert_int_equal(acv_cls_metrics_to_json(m, names, &j), 0);
    assert_non_null(j);
    assert_int_equal(json_object_size(j), 6);
    assert_float_equal(jreal(j, "top1"), 0.6, EPS);
    assert_float_equal(jreal(j, "top5"), 1.0, EPS);
    assert_float_equal(jreal(j, "macro_f1"), 1.3 / 3.0, EPS);
    assert_true(json_is_integer(json_object_get(j, "images")));
    assert_int_equal(json_integer_value(json_object_get(j, "images")), 5);
    json_t *per = json_object_get(j, "per_class");
    assert_true(json_is_array(per));
    assert_int_equal(json_array_size(per), 3);
    json_t *c1 = json_array_get(per, 1);
    assert_int_equal(json_object_size(c1), 5);
    assert_string_equal(json_string_value(json_object_get(c1, "name")), "scratch");
    assert_float_equal(jreal(c1, "precision"), 2.0 / 3.0, EPS);
    assert_float_equal(jreal(c1, "recall"), 1.0, EPS);
    assert_float_equal(jreal(c1, "f1"), 0.8, EPS);
    assert_int_equal(json_integer_value(json_object_get(c1, "support")), 2);
    assert_float_equal(jreal(json_array_get(per, 2), "precision"), 0.0, EPS);
    json_t *conf = json_object_get(j, "confusion");
    assert_int_equal(json_array_size(conf), 3);
    int64_t want[3][3] = {{1, 1, 0}, {0, 2, 0}, {1, 0, 0}};
    for (int r = 0; r < 3; r++) {
        json_t *row = json_array_get(conf, (size_t)r);
        assert_int_equal(json_array_size(row), 3);
        for (int c = 0; c < 3; c++) assert_int_equal(json_integer_value(json_array_get(row, (size_t)c)), want[r][c]);
    }
    /* It serializes (every real is finite). */
    char *text = json_dumps(j, JSON_COMPACT);
    assert_non_null(text);
    assert_non_null(strstr(text, "\"name\":\"dent\""));
    free(text);
    json_decref(j);

    /* Without names, classes are named by index; an empty accumulator is all zeros. */
    acv_cls_metrics_reset(m);
    assert_int_equal(acv_cls_metrics_to_json(m, NULL, &j), 0);
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(j, "per_class"), 2), "name")), "2");
    assert_float_equal(jreal(j, "top1"), 0.0, EPS);
    assert_int_equal(json_integer_value(json_object_get(j, "images")), 0);
    json_decref(j);

    const char *bad_names[] = {"a", NULL, "c"};
    assert_int_equal(acv_cls_metrics_to_json(m, bad_names, &j), ACV_EINVAL);
    assert_null(j);
    const char *bad_utf8[] = {"a", "b\xff", "c"};
    assert_int_equal(acv_cls_metrics_to_json(m, bad_utf8, &j), ACV_EINVAL);
    assert_null(j);
    acv_cls_metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_perfect),
        cmocka_unit_test(test_all_wrong),
        cmocka_unit_test(test_ties),
        cmocka_unit_test(test_never_predicted),
        cmocka_unit_test(test_top5),
        cmocka_unit_test(test_batches_and_reset),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
