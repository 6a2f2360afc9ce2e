/* Tests for platform/annotation_doc: document validation for every shape type and every
 * error (with the place it names), label resolution through aliases, the task's shape
 * rules, COCO RLE in both encodings (hand-checked vectors and round trips), bounding boxes
 * and areas, mask outlines; and renaming a label inside stored documents (on a temporary
 * database with the platform schema). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "autocv/error.h"
#include "base/file.h"
#include "base/rng.h"
#include "platform/annotations.h"
#include "platform/db.h"
#include "platform/annotation_doc.h"

/* Labels: scratch (alias "kratzer"), dent, rust, serial, ok; "twin" is an ambiguous alias. */
static int resolve(void *ud, const char *name, const char **canon)
{
    static const char *const NAMES[] = {"scratch", "dent", "rust", "serial", "ok"};
    (void)ud;
    for (int i = 0; i < 5; i++)
        if (!strcmp(name, NAMES[i])) {
            *canon = NAMES[i];
            return 0;
        }
    if (!strcmp(name, "kratzer")) {
        *canon = NAMES[0];
        return 0;
    }
    if (!strcmp(name, "twin")) return acv_error(ACV_EINVAL, "'twin' is an alias of several labels");
    return acv_error(ACV_EINVAL, "unknown label '%s'", name);
}

/* Validates JSON text for a 100 x 50 (w x h) image. */
static int check(const char *text, acv_ann_task task, json_t **out)
{
    json_error_t err;
    json_t *in = json_loads(text, 0, &err);
    if (!in) fail_msg("bad test JSON: %s: %s", text, err.text);
    json_t *o = NULL;
    static const char *const IGNORE[] = {"revision", "status", NULL};
    int rc = acv_ann_doc_validate(in, task, 100, 50, resolve, NULL, IGNORE, &o);
    json_decref(in);
    if (out) *out = o;
    else json_decref(o);
    if (rc) assert_null(o);
    return rc;
}

/* Expects code rc and a message containing each of the NULL-terminated fragments. */
static void expect_err(const char *text, acv_ann_task task, int rc, ...)
{
    int got = check(text, task, NULL);
    if (got != rc) fail_msg("%s: expected %d, got %d (%s)", text, rc, got, acv_errmsg());
    va_list ap;
    va_start(ap, rc);
    for (const char *f = va_arg(ap, const char *); f; f = va_arg(ap, const char *))
        if (!strstr(acv_errmsg(), f)) fail_msg("%s: message '%s' lacks '%s'", text, acv_errmsg(), f);
    va_end(ap);
}

static void test_task_names(void **state)
{
    acv_ann_task t;
    assert_int_equal(acv_ann_task_parse("seg", &t), 0);
    assert_int_equal(t, ACV_ANN_SEG);
    assert_string_equal(acv_ann_task_name(ACV_ANN_OCR), "ocr");
    assert_int_equal(acv_ann_task_parse("detection", &t), ACV_EINVAL);
    assert_non_null(strstr(acv_errmsg(), "detection"));
}

static void test_valid_shapes(void **state)
{
    json_t *o;
    /* det: boxes, tags, alias -> canonical name, source and score, ignored read-only keys. */
    assert_int_equal(check("{\"revision\":3,\"status\":\"new\",\"tags\":[\"ok\",\"ok\"],\"shapes\":["
                           "{\"type\":\"box\",\"label\":\"kratzer\",\"x\":0,\"y\":0,\"w\":100,\"h\":50},"
                           "{\"type\":\"box\",\"label\":\"dent\",\"x\":10.5,\"y\":5,\"w\":2,\"h\":3,\"source\":\"model\","
                           "\"score\":0.75}]}",
                           ACV_ANN_DET, &o),
                     0);
    assert_int_equal(json_array_size(json_object_get(o, "tags")), 1); /* repeated tag kept once */
    json_t *s0 = json_array_get(json_object_get(o, "shapes"), 0), *s1 = json_array_get(json_object_get(o, "shapes"), 1);
    assert_string_equal(json_string_value(json_object_get(s0, "label")), "scratch");
    assert_string_equal(json_string_value(json_object_get(s0, "source")), "human");
    assert_null(json_object_get(s0, "score"));
    assert_true(json_number_value(json_object_get(s1, "x")) == 10.5);
    assert_string_equal(json_string_value(json_object_get(s1, "source")), "model");
    assert_true(json_number_value(json_object_get(s1, "score")) == 0.75);
    assert_null(json_object_get(o, "revision"));
    json_decref(o);
    /* The VOC / COCO flags: kept when true, dropped when false, booleans only. */
    assert_int_equal(check("{\"shapes\":[{\"type\":\"box\",\"label\":\"dent\",\"x\":1,\"y\":1,\"w\":2,\"h\":2,"
                           "\"difficult\":true,\"iscrowd\":false}]}",
                           ACV_ANN_DET, &o),
                     0);
    s0 = json_array_get(json_object_get(o, "shapes"), 0);
    assert_true(json_is_true(json_object_get(s0, "difficult")));
    assert_null(json_object_get(s0, "iscrowd"));
    json_decref(o);
    expect_err("{\"shapes\":[{\"type\":\"box\",\"label\":\"dent\",\"x\":1,\"y\":1,\"w\":2,\"h\":2,"
               "\"iscrowd\":1}]}",
               ACV_ANN_DET, ACV_EFORMAT, "shapes[0].iscrowd", NULL);

    /* seg: a polygon and masks in both COCO encodings (image 100 x 50: 5000 pixels). The
     * string "0:5G" decodes to runs covering 16 pixels only: refused. */
    assert_int_equal(check("{\"shapes\":[{\"type\":\"mask\",\"label\":\"dent\",\"rle\":{\"size\":[50,100],"
                           "\"counts\":\"0:5G\"}}]}",
                           ACV_ANN_SEG, NULL),
                     ACV_EINVAL);
    assert_non_null(strstr(acv_errmsg(), "16 pixels"));
    uint32_t runs[3] = {100, 200, 4700};
    char *str = acv_rle_encode_string(runs, 3);
    char doc[512];
    snprintf(doc, sizeof doc,
             "{\"shapes\":[{\"type\":\"polygon\",\"label\":\"rust\",\"points\":[[0,0],[100,0],[50,50]]},"
             "{\"type\":\"mask\",\"label\":\"rust\",\"rle\":{\"size\":[50,100],\"counts\":[10,20,4970]}},"
             "{\"type\":\"mask\",\"label\":\"dent\",\"rle\":{\"size\":[50,100],\"counts\":\"%s\"}}]}",
             str);
    free(str);
    assert_int_equal(check(doc, ACV_ANN_SEG, &o), 0);
    assert_int_equal(json_array_size(json_object_get(o, "shapes")), 3);
    assert_true(json_is_string(json_object_get(
        json_object_get(json_array_get(json_object_get(o, "shapes"), 2), "rle"), "counts")));
    json_decref(o);

    /* ocr: a text line with four points; an empty text is allowed. */
    assert_int_equal(check("{\"shapes\":[{\"type\":\"text\",\"label\":\"serial\",\"points\":[[1,1],[40,1],[40,9],[1,9]],"
                           "\"text\":\"A-12\"},{\"type\":\"text\",\"label\":\"serial\",\"points\":[[1,1],[4,1],[4,9],"
                           "[1,9]],\"text\":\"\"}]}",
                           ACV_ANN_OCR, &o),
                     0);
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(o, "shapes"), 0), "text")),
                        "A-12");
    json_decref(o);

    /* cls: tags only; an empty document is fine. */
    assert_int_equal(check("{\"tags\":[\"dent\"]}", ACV_ANN_CLS, &o), 0);
    assert_int_equal(json_array_size(json_object_get(o, "shapes")), 0);
    json_decref(o);
    assert_int_equal(check("{}", ACV_ANN_DET, &o), 0);
    json_decref(o);
}

static void test_document_errors(void **state)
{
    expect_err("[1]", ACV_ANN_DET, ACV_EFORMAT, "object", NULL);
    expect_err("{\"tags\":[],\"colour\":1}", ACV_ANN_DET, ACV_EINVAL, "colour", NULL);
    expect_err("{\"tags\":\"ok\"}", ACV_ANN_DET, ACV_EFORMAT, "tags", NULL);
    expect_err("{\"shapes\":{}}", ACV_ANN_DET, ACV_EFORMAT, "shapes", NULL);
    expect_err("{\"tags\":[\"ok\",\"nope\"]}", ACV_ANN_DET, ACV_EINVAL, "tags[1]", "nope", NULL);
    expect_err("{\"tags\":[\"ok\",7]}", ACV_ANN_DET, ACV_EFORMAT, "tags[1]", NULL);
    expect_err("{\"tags\":[\"\"]}", ACV_ANN_DET, ACV_EINVAL, "tags[0]", "empty", NULL);
    expect_err("{\"tags\":[\"twin\"]}", ACV_ANN_DET, ACV_EINVAL, "tags[0]", "several", NULL);
    expect_err("{\"shapes\":[{\"type\":\"box\",\"label\":\"dent\",\"x\":1,\"y\":1,\"w\":1,\"h\":1}]}", ACV_ANN_CLS,
               ACV_EINVAL, "cls", "tags only", NULL);
}

static void test_shape_errors(void **state)
{
#define BOX(fields) "{\"shapes\":[{\"type\":\"box\",\"label\":\"dent\"," fields "}]}"
    expect_err("{\"shapes\":[5]}", ACV_ANN_DET, ACV_EFORMAT, "shapes[0]", NULL);
    expect_err("{\"shapes\":[{\"label\":\"dent\"}]}", ACV_ANN_DET, ACV_EFORMAT, "shapes[0].type", NULL);
    expect_err("{\"shapes\":[{\"type\":\"circle\",\"label\":\"dent\"}]}", ACV_ANN_DET, ACV_EINVAL, "circle", NULL);
    expect_err("{\"shapes\":[{\"type\":\"polygon\",\"label\":\"dent\",\"points\":[[0,0],[1,0],[1,1]]}]}", ACV_ANN_DET,
               ACV_EINVAL, "shapes[0]", "det", "boxes", "polygon", NULL);
    expect_err("{\"shapes\":[{\"type\":\"box\",\"label\":\"dent\",\"x\":1,\"y\":1,\"w\":1,\"h\":1}]}", ACV_ANN_SEG,
               ACV_EINVAL, "seg", NULL);
    expect_err("{\"shapes\":[{\"type\":\"mask\",\"label\":\"dent\",\"rle\":{}}]}", ACV_ANN_OCR, ACV_EINVAL, "ocr", NULL);
    expect_err(BOX("\"x\":1,\"y\":1,\"w\":1,\"h\":1,\"angle\":3"), ACV_ANN_DET, ACV_EINVAL, "shapes[0]", "angle", NULL);
    expect_err("{\"shapes\":[{\"type\":\"box\",\"x\":1,\"y\":1,\"w\":1,\"h\":1}]}", ACV_ANN_DET, ACV_EFORMAT,
               "shapes[0].label", NULL);
    expect_err("{\"shapes\":[{\"type\":\"box\",\"label\":3,\"x\":1,\"y\":1,\"w\":1,\"h\":1}]}", ACV_ANN_DET,
               ACV_EFORMAT, "shapes[0].label", NULL);
    expect_err("{\"shapes\":[{\"type\":\"box\",\"label\":\"dnet\",\"x\":1,\"y\":1,\"w\":1,\"h\":1}]}", ACV_ANN_DET,
               ACV_EINVAL, "shapes[0].label", "dnet", NULL);
    expect_err(BOX("\"x\":1,\"y\":1,\"w\":1,\"h\":1,\"source\":\"robot\""), ACV_ANN_DET, ACV_EINVAL, "source", "robot",
               NULL);
    expect_err(BOX("\"x\":1,\"y\":1,\"w\":1,\"h\":1,\"source\":1"), ACV_ANN_DET, ACV_EFORMAT, "source", NULL);
    expect_err(BOX("\"x\":1,\"y\":1,\"w\":1,\"h\":1,\"score\":1.5"), ACV_ANN_DET, ACV_EINVAL, "score", NULL);
    expect_err(BOX("\"x\":1,\"y\":1,\"w\":1,\"h\":1,\"score\":\"high\""), ACV_ANN_DET, ACV_EFORMAT, "score", NULL);
    /* boxes */
    expect_err(BOX("\"y\":1,\"w\":1,\"h\":1"), ACV_ANN_DET, ACV_EFORMAT, "shapes[0].x", "required", NULL);
    expect_err(BOX("\"x\":\"1\",\"y\":1,\"w\":1,\"h\":1"), ACV_ANN_DET, ACV_EFORMAT, "shapes[0].x", "number", NULL);
    expect_err(BOX("\"x\":1,\"y\":1,\"w\":0,\"h\":1"), ACV_ANN_DET, ACV_EINVAL, "shapes[0].w", "positive", NULL);
    expect_err(BOX("\"x\":1,\"y\":1,\"w\":1,\"h\":-2"), ACV_ANN_DET, ACV_EINVAL, "shapes[0].h", "positive", NULL);
    expect_err(BOX("\"x\":-1,\"y\":1,\"w\":1,\"h\":1"), ACV_ANN_DET, ACV_EINVAL, "shapes[0].x", "outside", NULL);
    expect_err(BOX("\"x\":1,\"y\":50,\"w\":1,\"h\":1"), ACV_ANN_DET, ACV_EINVAL, "shapes[0].y", "outside", NULL);
    expect_err(BOX("\"x\":90,\"y\":1,\"w\":10.5,\"h\":1"), ACV_ANN_DET, ACV_EINVAL, "shapes[0].w", "100.5", "width 100",
               NULL);
    expect_err(BOX("\"x\":1,\"y\":40,\"w\":1,\"h\":11"), ACV_ANN_DET, ACV_EINVAL, "shapes[0].h", "height 50", NULL);
    /* the second shape is the bad one: the index says so */
    expect_err("{\"shapes\":[{\"type\":\"box\",\"label\":\"dent\",\"x\":1,\"y\":1,\"w\":1,\"h\":1},{\"type\":\"box\","
               "\"label\":\"dent\",\"x\":1,\"y\":1,\"w\":200,\"h\":1}]}",
               ACV_ANN_DET, ACV_EINVAL, "shapes[1].w", NULL);
#undef BOX
    /* polygons */
#define POLY(pts) "{\"shapes\":[{\"type\":\"polygon\",\"label\":\"rust\",\"points\":" pts "}]}"
    expect_err("{\"shapes\":[{\"type\":\"polygon\",\"label\":\"rust\"}]}", ACV_ANN_SEG, ACV_EFORMAT, "points", NULL);
    expect_err(POLY("[[0,0],[1,1]]"), ACV_ANN_SEG, ACV_EINVAL, "shapes[0].points", "2 points", NULL);
    expect_err(POLY("[[0,0],[1,1],[2]]"), ACV_ANN_SEG, ACV_EFORMAT, "shapes[0].points[2]", NULL);
    expect_err(POLY("[[0,0],[1,1],[2,\"a\"]]"), ACV_ANN_SEG, ACV_EFORMAT, "shapes[0].points[2]", NULL);
    expect_err(POLY("[[0,0],[101,1],[2,2]]"), ACV_ANN_SEG, ACV_EINVAL, "shapes[0].points[1]", "outside", NULL);
    expect_err(POLY("[[0,0],[1,-1],[2,2]]"), ACV_ANN_SEG, ACV_EINVAL, "shapes[0].points[1]", NULL);
    expect_err(POLY("[[0,0],[1,1],[2,2]]"), ACV_ANN_SEG, ACV_EINVAL, "no area", NULL);
#undef POLY
    /* text lines */
    expect_err("{\"shapes\":[{\"type\":\"text\",\"label\":\"serial\",\"points\":[[1,1],[4,1],[4,9]],\"text\":\"x\"}]}",
               ACV_ANN_OCR, ACV_EINVAL, "exactly 4", NULL);
    expect_err("{\"shapes\":[{\"type\":\"text\",\"label\":\"serial\",\"points\":[[1,1],[4,1],[4,9],[1,9]]}]}",
               ACV_ANN_OCR, ACV_EFORMAT, "shapes[0].text", NULL);
    expect_err("{\"shapes\":[{\"type\":\"text\",\"label\":\"serial\",\"points\":[[1,1],[4,1],[4,9],[1,9]],\"text\":5}]}",
               ACV_ANN_OCR, ACV_EFORMAT, "shapes[0].text", NULL);
    expect_err("{\"shapes\":[{\"type\":\"text\",\"label\":\"serial\",\"points\":[[1,1],[4,1],[4,99],[1,9]],"
               "\"text\":\"x\"}]}",
               ACV_ANN_OCR, ACV_EINVAL, "shapes[0].points[2]", NULL);
    /* masks */
#define MASK(rle) "{\"shapes\":[{\"type\":\"mask\",\"label\":\"rust\",\"rle\":" rle "}]}"
    expect_err("{\"shapes\":[{\"type\":\"mask\",\"label\":\"rust\"}]}", ACV_ANN_SEG, ACV_EFORMAT, "shapes[0].rle", NULL);
    expect_err(MASK("[1]"), ACV_ANN_SEG, ACV_EFORMAT, "shapes[0].rle", NULL);
    expect_err(MASK("{\"size\":[50,100],\"counts\":[1,4999],\"x\":1}"), ACV_ANN_SEG, ACV_EINVAL, "'x'", NULL);
    expect_err(MASK("{\"size\":[100,50],\"counts\":[1,4999]}"), ACV_ANN_SEG, ACV_EINVAL, "rle.size", "[100, 50]",
               "[50, 100]", NULL);
    expect_err(MASK("{\"size\":[50],\"counts\":[1,4999]}"), ACV_ANN_SEG, ACV_EFORMAT, "rle.size", NULL);
    expect_err(MASK("{\"size\":[50,100]}"), ACV_ANN_SEG, ACV_EFORMAT, "rle.counts", NULL);
    expect_err(MASK("{\"size\":[50,100],\"counts\":[1,4998]}"), ACV_ANN_SEG, ACV_EINVAL, "rle.counts", "4999", "5000",
               NULL);
    expect_err(MASK("{\"size\":[50,100],\"counts\":[1,5000]}"), ACV_ANN_SEG, ACV_EINVAL, "5001", NULL);
    expect_err(MASK("{\"size\":[50,100],\"counts\":[5000]}"), ACV_ANN_SEG, ACV_EINVAL, "empty", NULL);
    expect_err(MASK("{\"size\":[50,100],\"counts\":[1,-1,5000]}"), ACV_ANN_SEG, ACV_EINVAL, "counts[1]", NULL);
    expect_err(MASK("{\"size\":[50,100],\"counts\":[1,2.5]}"), ACV_ANN_SEG, ACV_EFORMAT, "counts[1]", NULL);
    expect_err(MASK("{\"size\":[50,100],\"counts\":7}"), ACV_ANN_SEG, ACV_EFORMAT, "rle.counts", NULL);
    expect_err(MASK("{\"size\":[50,100],\"counts\":\"0 1\"}"), ACV_ANN_SEG, ACV_EFORMAT, "rle.counts", "character 1",
               NULL);
    expect_err(MASK("{\"size\":[50,100],\"counts\":\"0\\\\\"}"), ACV_ANN_SEG, ACV_EFORMAT, "ends inside", NULL);
#undef MASK
}

static void runs_of(const char *s, uint32_t **runs, size_t *n)
{
    json_t *j = json_string(s);
    assert_int_equal(acv_rle_runs(j, runs, n), 0);
    json_decref(j);
}

static void test_rle_vectors(void **state)
{
    /* Worked by hand from pycocotools' rleToString: values in 5-bit groups from '0', deltas
     * from the fourth value on (1 - 10 = -9 -> 'G' with the sign bit). */
    uint32_t a[] = {0, 10, 5, 1}, b[] = {2, 3, 4, 5}, c[] = {100000, 1};
    char *s = acv_rle_encode_string(a, 4);
    assert_string_equal(s, "0:5G");
    free(s);
    s = acv_rle_encode_string(b, 4);
    assert_string_equal(s, "2342");
    free(s);
    uint32_t *r;
    size_t n;
    runs_of("0:5G", &r, &n);
    assert_int_equal(n, 4);
    assert_memory_equal(r, a, sizeof a);
    free(r);
    s = acv_rle_encode_string(c, 2);
    runs_of(s, &r, &n);
    assert_int_equal(n, 2);
    assert_memory_equal(r, c, sizeof c);
    free(r);
    free(s);
    /* A list decodes as it is. */
    json_t *list = json_pack("[i, i, i]", 3, 0, 9);
    assert_int_equal(acv_rle_runs(list, &r, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(r[2], 9);
    free(r);
    json_decref(list);
    /* A delta making a run negative is refused. */
    json_t *bad = json_string("000G"); /* fourth value: 0 + (-9) */
    assert_int_equal(acv_rle_runs(bad, &r, &n), ACV_EINVAL);
    json_decref(bad);
}

static void test_rle_round_trip(void **state)
{
    acv_rng rng;
    acv_rng_seed(&rng, 42);
    for (int t = 0; t < 50; t++) {
        int h = 1 + (int)acv_rng_below(&rng, 40), w = 1 + (int)acv_rng_below(&rng, 40);
        uint8_t *m = malloc((size_t)h * w);
        float p = acv_rng_uniform(&rng);
        for (int i = 0; i < h * w; i++) m[i] = acv_rng_uniform(&rng) < p;
        uint32_t *runs, *back;
        size_t n, nb;
        assert_int_equal(acv_rle_from_mask(m, h, w, &runs, &n), 0);
        uint64_t sum = 0;
        for (size_t i = 0; i < n; i++) sum += runs[i];
        assert_int_equal(sum, (uint64_t)h * w);
        char *s = acv_rle_encode_string(runs, n);
        runs_of(s, &back, &nb);
        assert_int_equal(nb, n);
        assert_memory_equal(back, runs, n * sizeof *runs);
        uint8_t *m2;
        assert_int_equal(acv_rle_to_mask(back, nb, h, w, &m2), 0);
        assert_memory_equal(m, m2, (size_t)h * w);
        assert_int_equal(acv_rle_to_mask(back, nb, h + 1, w, &m2 /* unused on failure */), ACV_EINVAL);
        free(m);
        free(m2);
        free(runs);
        free(back);
        free(s);
    }
}

/* A column-major h x w mask with the pixels listed as (x, y) pairs, -1 terminated. */
static uint8_t *mask_of(int h, int w, const int *xy)
{
    uint8_t *m = calloc((size_t)h * w, 1);
    for (; xy[0] >= 0; xy += 2) m[xy[0] * h + xy[1]] = 1;
    return m;
}

static void test_bbox_and_area(void **state)
{
    double b[4], area;
    json_t *box = json_pack("{s:s, s:f, s:f, s:f, s:f}", "type", "box", "x", 2.0, "y", 3.0, "w", 4.0, "h", 5.0);
    assert_int_equal(acv_ann_shape_bbox(box, b, &area), 0);
    assert_true(b[0] == 2 && b[1] == 3 && b[2] == 4 && b[3] == 5 && area == 20);
    json_decref(box);
    json_t *poly = json_pack("{s:s, s:[[i,i],[i,i],[i,i],[i,i]]}", "type", "polygon", "points", 1, 1, 5, 1, 5, 4, 1, 4);
    assert_int_equal(acv_ann_shape_bbox(poly, b, &area), 0);
    assert_true(b[0] == 1 && b[1] == 1 && b[2] == 4 && b[3] == 3 && area == 12);
    json_decref(poly);
    /* A mask 6 high, 5 wide: pixels (1,4), (1,5), (2,0), (3,2): the run from (1,4) to (2,0)
     * crosses a column, so the box spans every row from 0 to 5. */
    int px[] = {1, 4, 1, 5, 2, 0, 3, 2, -1};
    uint8_t *m = mask_of(6, 5, px);
    uint32_t *runs;
    size_t n;
    assert_int_equal(acv_rle_from_mask(m, 6, 5, &runs, &n), 0);
    json_t *counts = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(counts, json_integer(runs[i]));
    json_t *mask = json_pack("{s:s, s:{s:[i, i], s:o}}", "type", "mask", "rle", "size", 6, 5, "counts", counts);
    assert_int_equal(acv_ann_shape_bbox(mask, b, &area), 0);
    assert_true(b[0] == 1 && b[1] == 0 && b[2] == 3 && b[3] == 6);
    assert_true(area == 4);
    json_decref(mask);
    free(runs);
    free(m);
    /* Within one column only: rows 2..3 of column 4. */
    int py[] = {4, 2, 4, 3, -1};
    m = mask_of(6, 5, py);
    assert_int_equal(acv_rle_from_mask(m, 6, 5, &runs, &n), 0);
    char *s = acv_rle_encode_string(runs, n);
    mask = json_pack("{s:s, s:{s:[i, i], s:s}}", "type", "mask", "rle", "size", 6, 5, "counts", s);
    assert_int_equal(acv_ann_shape_bbox(mask, b, &area), 0);
    assert_true(b[0] == 4 && b[1] == 2 && b[2] == 1 && b[3] == 2 && area == 2);
    json_decref(mask);
    free(s);
    free(runs);
    free(m);
}

static double poly_area(const json_t *p)
{
    double a = 0;
    size_t n = json_array_size(p);
    for (size_t i = 0; i < n; i++) {
        const json_t *u = json_array_get(p, i), *v = json_array_get(p, (i + 1) % n);
        a += (double)json_integer_value(json_array_get(u, 0)) * json_integer_value(json_array_get(v, 1)) -
             (double)json_integer_value(json_array_get(v, 0)) * json_integer_value(json_array_get(u, 1));
    }
    return a / 2;
}

static void test_mask_outlines(void **state)
{
    json_t *polys;
    /* A 2 x 2 square at (1, 1) in a 5 x 5 mask: its four corners, clockwise (y down). */
    int sq[] = {1, 1, 2, 1, 1, 2, 2, 2, -1};
    uint8_t *m = mask_of(5, 5, sq);
    assert_int_equal(acv_mask_outlines(m, 5, 5, &polys), 0);
    assert_int_equal(json_array_size(polys), 1);
    json_t *want = json_pack("[[i,i],[i,i],[i,i],[i,i]]", 1, 1, 3, 1, 3, 3, 1, 3);
    assert_true(json_equal(json_array_get(polys, 0), want));
    json_decref(want);
    json_decref(polys);
    free(m);
    /* An L of three pixels: six corners, area 3. */
    int el[] = {0, 0, 0, 1, 1, 1, -1};
    m = mask_of(3, 3, el);
    assert_int_equal(acv_mask_outlines(m, 3, 3, &polys), 0);
    assert_int_equal(json_array_size(polys), 1);
    assert_int_equal(json_array_size(json_array_get(polys, 0)), 6);
    assert_true(poly_area(json_array_get(polys, 0)) == 3);
    json_decref(polys);
    free(m);
    /* Diagonal neighbours are separate regions (4-connectivity); the image corner works. */
    int diag[] = {0, 0, 1, 1, 3, 3, -1};
    m = mask_of(4, 4, diag);
    assert_int_equal(acv_mask_outlines(m, 4, 4, &polys), 0);
    assert_int_equal(json_array_size(polys), 3);
    for (size_t i = 0; i < 3; i++) assert_true(poly_area(json_array_get(polys, i)) == 1);
    json_decref(polys);
    free(m);
    /* A ring: the outline is the outer border (the hole is not outlined), area 9. */
    int ring[] = {0, 0, 1, 0, 2, 0, 0, 1, 2, 1, 0, 2, 1, 2, 2, 2, -1};
    m = mask_of(3, 3, ring);
    assert_int_equal(acv_mask_outlines(m, 3, 3, &polys), 0);
    assert_int_equal(json_array_size(polys), 1);
    assert_true(poly_area(json_array_get(polys, 0)) == 9);
    json_decref(polys);
    free(m);
    /* Random masks: every region's outline encloses at least its own pixels. */
    acv_rng rng;
    acv_rng_seed(&rng, 3);
    for (int t = 0; t < 20; t++) {
        int h = 2 + (int)acv_rng_below(&rng, 20), w = 2 + (int)acv_rng_below(&rng, 20);
        m = calloc((size_t)h * w, 1);
        int fg = 0;
        for (int i = 0; i < h * w; i++) fg += m[i] = acv_rng_uniform(&rng) < 0.5f;
        assert_int_equal(acv_mask_outlines(m, h, w, &polys), 0);
        double total = 0;
        for (size_t i = 0; i < json_array_size(polys); i++) {
            double a = poly_area(json_array_get(polys, i));
            assert_true(a >= 1);
            total += a;
        }
        assert_true(total >= fg);
        json_decref(polys);
        free(m);
    }
}

static void test_doc_labels(void **state)
{
    json_t *doc = json_pack("{s:[s, s], s:[{s:s}, {s:s}]}", "tags", "ok", "dent", "shapes", "label", "dent", "label",
                            "rust");
    json_t *l = acv_ann_doc_labels(doc);
    assert_int_equal(json_object_size(l), 3);
    assert_non_null(json_object_get(l, "rust"));
    json_decref(l);
    json_decref(doc);
}

static void test_rename_label(void **state)
{
    char dir[] = "/tmp/acv-test-anndoc-XXXXXX", path[96];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/a.db", dir);
    acv_db *db;
    acv_dbconn *c;
    assert_int_equal(acv_db_open(path, NULL, &db), 0);
    assert_int_equal(acv_db_acquire(db, &c), 0);
    static const char *const SETUP[] = {
        "INSERT INTO projects(id, name, created_at, updated_at) VALUES (1, 'p', 't', 't'), (2, 'q', 't', 't')",
        "INSERT INTO blobs(hash, size, refs, created_at) VALUES ('h1', 1, 1, 't'), ('h2', 1, 1, 't'), ('h3', 1, 1, 't')",
        "INSERT INTO images(id, project_id, blob_hash, filename, format, width, height, channels, size, created_at) "
        "VALUES (1, 1, 'h1', 'a.png', 'png', 10, 10, 3, 1, 't'), (2, 2, 'h2', 'b.png', 'png', 10, 10, 3, 1, 't'), "
        "(3, 1, 'h3', 'c.png', 'png', 10, 10, 3, 1, 't')",
        "INSERT INTO annotation_sets(id, project_id, name, task, created_at, updated_at) VALUES "
        "(1, 1, 's', 'det', 't', 't'), (2, 2, 's', 'det', 't', 't')",
        "INSERT INTO annotation_items(set_id, image_id, status, revision, doc_json, updated_at) VALUES "
        "(1, 1, 'accepted', 3, '{\"tags\":[\"old\",\"new\"],\"shapes\":[{\"type\":\"box\",\"label\":\"old\","
        "\"x\":1,\"y\":1,\"w\":2,\"h\":2},{\"type\":\"box\",\"label\":\"other\",\"x\":1,\"y\":1,\"w\":2,"
        "\"h\":2}]}', 't'), "
        "(1, 3, 'new', 0, '{\"tags\":[\"other\"],\"shapes\":[]}', 't'), "
        "(2, 2, 'new', 1, '{\"tags\":[\"old\"],\"shapes\":[]}', 't')",
    };
    for (size_t i = 0; i < sizeof SETUP / sizeof SETUP[0]; i++) assert_int_equal(acv_db_exec(c, SETUP[i], NULL), 0);
    int64_t n = -1;
    assert_int_equal(acv_db_begin(c), 0);
    assert_int_equal(acv_ann_rename_label(c, 1, "old", "new", &n), 0);
    assert_int_equal(acv_db_end(c, 0), 0);
    assert_int_equal(n, 1);
    json_t *row;
    assert_int_equal(acv_db_query_row(c, &row, "SELECT status, revision, doc_json FROM annotation_items WHERE set_id = 1 "
                                               "AND image_id = 1",
                                      NULL),
                     0);
    json_t *want = json_pack("{s:[s], s:[{s:s, s:s, s:i, s:i, s:i, s:i}, {s:s, s:s, s:i, s:i, s:i, s:i}]}", "tags",
                             "new", "shapes", "type", "box", "label", "new", "x", 1, "y", 1, "w", 2, "h", 2, "type",
                             "box", "label", "other", "x", 1, "y", 1, "w", 2, "h", 2);
    assert_true(json_equal(json_object_get(row, "doc"), want));
    assert_string_equal(json_string_value(json_object_get(row, "status")), "accepted");
    assert_int_equal(json_integer_value(json_object_get(row, "revision")), 4);
    json_decref(want);
    json_decref(row);
    /* Another project's documents and documents without the label are untouched. */
    int64_t rev = 0;
    assert_int_equal(acv_db_query_int(c, &rev, -1, "SELECT revision FROM annotation_items WHERE set_id = 2", NULL), 0);
    assert_int_equal(rev, 1);
    assert_int_equal(acv_db_query_int(c, &rev, -1, "SELECT revision FROM annotation_items WHERE image_id = 3", NULL), 0);
    assert_int_equal(rev, 0);
    assert_int_equal(acv_ann_rename_label(c, 1, "ghost", "x", &n), 0);
    assert_int_equal(n, 0);
    acv_db_release(c);
    acv_db_close(db);
    acv_remove_tree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_task_names),      cmocka_unit_test(test_valid_shapes),
        cmocka_unit_test(test_document_errors), cmocka_unit_test(test_shape_errors),
        cmocka_unit_test(test_rle_vectors),     cmocka_unit_test(test_rle_round_trip),
        cmocka_unit_test(test_bbox_and_area),   cmocka_unit_test(test_mask_outlines),
        cmocka_unit_test(test_doc_labels),      cmocka_unit_test(test_rename_label),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
