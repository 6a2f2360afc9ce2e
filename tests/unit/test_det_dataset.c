/* Tests for src/data/det_*.c: detection datasets in COCO, YOLO and Pascal VOC. Round trips
 * between the formats (boxes within 1e-3 px, class names and order, the flags each format can
 * carry), split selection, the YOLO data.yaml variants, image sizes from headers, and every
 * bad-label case (the error names the file and line; skip_bad drops and counts it). Fixtures
 * are written into mkdtemp folders by the tests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "autocv/error.h"
#include "base/file.h"
#include "data/det_dataset.h"
#include "data/det_internal.h"
#include "vision/image.h"

/* ---- fixture helpers ------------------------------------------------------------------------ */

static char *make_tmp(void)
{
    char tmpl[] = "/tmp/acv-test-det-XXXXXX";
    char *d = mkdtemp(tmpl);
    assert_non_null(d);
    return strdup(d);
}

static char *pj(const char *a, const char *b)
{
    char *p = acv_path_join(a, b);
    assert_non_null(p);
    return p;
}

static void rm_tree(char *root)
{
    assert_int_equal(acv_remove_tree(root), 0);
    free(root);
}

static void write_text(const char *root, const char *rel, const char *text)
{
    char *p = pj(root, rel);
    assert_int_equal(acv__det_write_text(p, text, strlen(text)), 0);
    free(p);
}

static void write_png(const char *root, const char *rel, int w, int h)
{
    acv_image im = {0};
    assert_int_equal(acv_image_alloc(&im, w, h, 3), 0);
    for (int i = 0; i < w * h * 3; i++) im.data[i] = (uint8_t)(i * 7);
    char *p = pj(root, rel);
    char *slash = strrchr(p, '/');
    *slash = 0;
    assert_int_equal(acv_mkdirs(p), 0);
    *slash = '/';
    assert_int_equal(acv_image_save_png(&im, p), 0);
    free(p);
    acv_image_free(&im);
}

static acv_det_dataset *open_ok(const char *path, const char *split, const char *fmt, bool skip)
{
    acv_det_open_opts o = {.format = fmt, .skip_bad = skip};
    acv_det_dataset *ds = NULL;
    int rc = acv_det_dataset_open(path, split, &o, &ds);
    if (rc) fail_msg("open %s: %s", path, acv_errmsg());
    assert_non_null(ds);
    return ds;
}

static void assert_has(const char *hay, const char *needle)
{
    if (!strstr(hay, needle)) fail_msg("\"%s\" does not mention \"%s\"", hay, needle);
}

static const acv_det_image *by_name(const acv_det_dataset *ds, const char *split, const char *file_name)
{
    for (int i = 0; i < ds->n; i++)
        if (!strcmp(ds->images[i].file_name, file_name) && !strcmp(ds->images[i].split, split)) return &ds->images[i];
    fail_msg("no image %s/%s", split, file_name);
    return NULL;
}

/* Every image of a (by split and file name) is in b with the same size and the same boxes
 * (in order, within tol px, same class); flags compared under flag_mask. */
static void assert_same_boxes(const acv_det_dataset *a, const acv_det_dataset *b, double tol, unsigned flag_mask)
{
    assert_int_equal(a->n, b->n);
    assert_int_equal(a->k, b->k);
    for (int c = 0; c < a->k; c++) assert_string_equal(a->names[c], b->names[c]);
    for (int i = 0; i < a->n; i++) {
        const acv_det_image *x = &a->images[i], *y = by_name(b, x->split, x->file_name);
        assert_int_equal(x->w, y->w);
        assert_int_equal(x->h, y->h);
        assert_int_equal(x->n, y->n);
        for (int j = 0; j < x->n; j++) {
            const acv_box *p = &x->boxes[j], *q = &y->boxes[j];
            assert_int_equal(p->cls, q->cls);
            if (fabs(p->x1 - q->x1) > tol || fabs(p->y1 - q->y1) > tol || fabs(p->x2 - q->x2) > tol ||
                fabs(p->y2 - q->y2) > tol)
                fail_msg("%s box %d: (%g %g %g %g) vs (%g %g %g %g)", x->file_name, j, p->x1, p->y1, p->x2, p->y2,
                         q->x1, q->y1, q->x2, q->y2);
            assert_int_equal(p->flags & flag_mask, q->flags & flag_mask);
        }
    }
}

/* A COCO dataset: splits train and val, 4 images each (sizes vary; the last has no
 * annotations), categories with non-contiguous ids listed out of order (40 "screw", 5 "nut",
 * 2 "bolt washer" -> classes bolt washer, nut, screw), fractional boxes, crowd and difficult
 * flags. */
static void make_coco(const char *root)
{
    const char *splits[2] = {"train", "val"};
    int aid = 1;
    for (int s = 0; s < 2; s++) {
        char json[16384];
        size_t n = (size_t)snprintf(json, sizeof json, "{\"images\": [");
        for (int i = 0; i < 4; i++) {
            int w = 64 + 13 * i + s, h = 48 + 7 * i;
            char rel[128];
            snprintf(rel, sizeof rel, "images/%s/%s_%d.png", splits[s], splits[s], i);
            write_png(root, rel, w, h);
            n += (size_t)snprintf(json + n, sizeof json - n, "%s{\"id\": %d, \"file_name\": \"%s_%d.png\", "
                                  "\"width\": %d, \"height\": %d}", i ? ", " : "", 10 * i + 3, splits[s], i, w, h);
        }
        n += (size_t)snprintf(json + n, sizeof json - n, "], \"annotations\": [");
        const int cats[3] = {40, 5, 2};
        for (int i = 0; i < 3; i++)
            for (int j = 0; j <= i; j++) {
                double x = 1.25 + 3.1 * j + i, y = 2.5 + 1.7 * j, w = 10.333 + j, h = 7.75 + 2.01 * i;
                int crowd = (i == 1 && j == 1), diff = (i == 2 && j == 0);
                n += (size_t)snprintf(json + n, sizeof json - n,
                                      "%s{\"id\": %d, \"image_id\": %d, \"category_id\": %d, \"bbox\": [%.4f, %.4f, "
                                      "%.4f, %.4f], \"area\": 1, \"iscrowd\": %d%s%s}",
                                      aid > 1 && !(s == 1 && i == 0 && j == 0) ? ", " : "", aid, 10 * i + 3,
                                      cats[(i + j) % 3], x, y, w, h, crowd,
                                      crowd ? ", \"segmentation\": {\"counts\": \"0a\", \"size\": [48, 64]}" : "",
                                      diff ? ", \"difficult\": 1" : "");
                aid++;
            }
        snprintf(json + n, sizeof json - n, "], \"categories\": [{\"id\": 40, \"name\": \"screw\"}, {\"id\": 5, "
                                            "\"name\": \"nut\"}, {\"id\": 2, \"name\": \"bolt washer\"}]}");
        char rel[128];
        snprintf(rel, sizeof rel, "annotations/instances_%s.json", splits[s]);
        write_text(root, rel, json);
    }
}

/* ---- round trips ---------------------------------------------------------------------------- */

static void test_coco_read(void **state)
{
    (void)state;
    char *root = make_tmp();
    make_coco(root);
    assert_string_equal(acv_det_dataset_detect(root), "coco");
    acv_det_dataset *ds = open_ok(root, NULL, NULL, false);
    assert_string_equal(ds->format, "coco");
    assert_int_equal(ds->k, 3);
    assert_string_equal(ds->names[0], "bolt washer");
    assert_string_equal(ds->names[1], "nut");
    assert_string_equal(ds->names[2], "screw");
    assert_int_equal(ds->cat_ids[0], 2);
    assert_int_equal(ds->cat_ids[1], 5);
    assert_int_equal(ds->cat_ids[2], 40);
    assert_int_equal(ds->n, 8);
    const acv_det_image *im = by_name(ds, "val", "val_1.png");
    assert_int_equal(im->id, 13);
    assert_int_equal(im->w, 64 + 13 + 1);
    assert_int_equal(im->n, 2);
    /* image 13's second annotation: j = 1, category 2 (class 0), crowd */
    assert_int_equal(im->boxes[1].cls, 0);
    assert_true(im->boxes[1].flags & ACV_BOX_CROWD);
    assert_true(fabsf(im->boxes[1].x1 - (1.25f + 3.1f + 1)) < 1e-4);
    assert_true(fabsf(im->boxes[1].x2 - (1.25f + 3.1f + 1 + 11.333f)) < 1e-4);
    assert_true(by_name(ds, "train", "train_2.png")->boxes[0].flags & ACV_BOX_DIFFICULT);
    assert_int_equal(by_name(ds, "train", "train_3.png")->n, 0); /* kept without annotations */
    acv_det_dataset_free(ds);
    rm_tree(root);
}

/* The acceptance round trip: COCO -> YOLO -> VOC -> COCO keeps every box and class name.
 * YOLO carries neither crowd nor difficult (documented), so the flags are gone at the end. */
static void test_roundtrip_coco_yolo_voc_coco(void **state)
{
    (void)state;
    char *root = make_tmp();
    char *src = pj(root, "coco"), *yolo = pj(root, "yolo"), *voc = pj(root, "voc"), *back = pj(root, "back");
    make_coco(src);
    acv_det_dataset *a = open_ok(src, NULL, NULL, false);
    assert_int_equal(acv_det_dataset_write(a, "yolo", yolo, NULL), 0);
    acv_det_dataset *b = open_ok(yolo, NULL, NULL, false);
    assert_string_equal(b->format, "yolo");
    assert_same_boxes(a, b, 1e-3, 0);
    assert_int_equal(acv_det_dataset_write(b, "voc", voc, NULL), 0);
    acv_det_dataset *c = open_ok(voc, NULL, NULL, false);
    assert_string_equal(c->format, "voc");
    assert_same_boxes(a, c, 1e-3, 0);
    assert_int_equal(acv_det_dataset_write(c, "coco", back, NULL), 0);
    acv_det_dataset *d = open_ok(back, NULL, NULL, false);
    assert_string_equal(d->format, "coco");
    assert_same_boxes(a, d, 1e-3, 0);
    for (int i = 0; i < d->n; i++)
        for (int j = 0; j < d->images[i].n; j++) assert_int_equal(d->images[i].boxes[j].flags, 0);
    /* ids do not survive YOLO: 1..k in the original order */
    for (int k = 0; k < d->k; k++) assert_int_equal(d->cat_ids[k], k + 1);
    acv_det_dataset_free(a);
    acv_det_dataset_free(b);
    acv_det_dataset_free(c);
    acv_det_dataset_free(d);
    free(src);
    free(yolo);
    free(voc);
    free(back);
    rm_tree(root);
}

/* COCO -> COCO keeps category ids, image ids and flags; COCO -> VOC -> COCO keeps the flags
 * (VOC's <iscrowd> and COCO's "difficult" extensions) but not the ids. */
static void test_roundtrip_ids_and_flags(void **state)
{
    (void)state;
    char *root = make_tmp();
    char *src = pj(root, "coco"), *same = pj(root, "same"), *voc = pj(root, "voc"), *back = pj(root, "back");
    make_coco(src);
    acv_det_dataset *a = open_ok(src, NULL, NULL, false);
    assert_int_equal(acv_det_dataset_write(a, "coco", same, NULL), 0);
    acv_det_dataset *b = open_ok(same, NULL, NULL, false);
    assert_same_boxes(a, b, 1e-4, ACV_BOX_CROWD | ACV_BOX_DIFFICULT);
    for (int k = 0; k < 3; k++) assert_int_equal(b->cat_ids[k], a->cat_ids[k]);
    for (int i = 0; i < a->n; i++)
        assert_int_equal(by_name(b, a->images[i].split, a->images[i].file_name)->id, a->images[i].id);
    assert_int_equal(acv_det_dataset_write(a, "voc", voc, NULL), 0);
    acv_det_dataset *c = open_ok(voc, NULL, NULL, false);
    assert_same_boxes(a, c, 1e-3, ACV_BOX_CROWD | ACV_BOX_DIFFICULT);
    assert_int_equal(acv_det_dataset_write(c, "coco", back, NULL), 0);
    acv_det_dataset *d = open_ok(back, NULL, NULL, false);
    assert_same_boxes(a, d, 1e-3, ACV_BOX_CROWD | ACV_BOX_DIFFICULT);
    assert_int_equal(d->cat_ids[2], 3);
    /* VOC's file is 1-based inclusive: x1 = xmin - 1 */
    char *xml = pj(voc, "Annotations/train_0.xml");
    uint8_t *text;
    size_t len;
    assert_int_equal(acv_file_read(xml, 1 << 20, &text, &len), 0);
    assert_has((char *)text, "<xmin>2.25</xmin>");
    assert_has((char *)text, "<name>screw</name>");
    free(text);
    free(xml);
    acv_det_dataset_free(a);
    acv_det_dataset_free(b);
    acv_det_dataset_free(c);
    acv_det_dataset_free(d);
    free(src);
    free(same);
    free(voc);
    free(back);
    rm_tree(root);
}

static void test_splits(void **state)
{
    (void)state;
    char *root = make_tmp();
    make_coco(root);
    acv_det_dataset *ds = open_ok(root, "val", NULL, false);
    assert_int_equal(ds->n, 4);
    for (int i = 0; i < ds->n; i++) assert_string_equal(ds->images[i].split, "val");
    /* written as one named split */
    char *out = pj(root, "out");
    assert_int_equal(acv_det_dataset_write(ds, "yolo", out, "test"), 0);
    acv_det_dataset_free(ds);
    ds = open_ok(out, "test", NULL, false);
    assert_int_equal(ds->n, 4);
    acv_det_dataset_free(ds);
    acv_det_open_opts o = {0};
    assert_int_equal(acv_det_dataset_open(out, "train", &o, &ds), ACV_ENOTFOUND);
    assert_has(acv_errmsg(), "found: test");
    assert_int_equal(acv_det_dataset_open(root, "test", &o, &ds), ACV_ENOTFOUND);
    assert_has(acv_errmsg(), "found: train, val");
    /* a COCO file given directly is read whole */
    char *f = pj(root, "annotations/instances_val.json");
    ds = open_ok(f, "train", NULL, false);
    assert_int_equal(ds->n, 4);
    assert_string_equal(ds->images[0].split, "val");
    acv_det_dataset_free(ds);
    free(f);
    /* Roboflow's valid/ answers to val */
    char *rf = pj(root, "rf");
    write_text(rf, "data.yaml", "names: ['a']\n");
    write_png(rf, "images/valid/x.png", 20, 10);
    write_text(rf, "labels/valid/x.txt", "0 0.5 0.5 0.5 0.5\n");
    write_png(rf, "images/train/y.png", 20, 10);
    ds = open_ok(rf, "val", NULL, false);
    assert_int_equal(ds->n, 1);
    assert_string_equal(ds->images[0].split, "valid");
    assert_true(fabsf(ds->images[0].boxes[0].x1 - 5) < 1e-5);
    acv_det_dataset_free(ds);
    free(rf);
    free(out);
    rm_tree(root);
}

static void test_voc_layout(void **state)
{
    (void)state;
    char *root = make_tmp();
    write_png(root, "JPEGImages/a.png", 40, 30);
    write_png(root, "JPEGImages/b.png", 40, 30);
    write_png(root, "JPEGImages/c.png", 40, 30);
    /* a stale <filename> (b.jpg) is found by the stem; a 0-based box (xmin 0) is clamped;
       a size-less file gets its size from the image */
    write_text(root, "Annotations/a.xml",
               "<?xml version=\"1.0\"?>\n<!-- c --><annotation><filename>a.png</filename><size><width>40</width>"
               "<height>30</height></size>\n<object><name>dog &amp; cat</name><difficult>1</difficult><bndbox>"
               "<xmin>0</xmin><ymin>1</ymin><xmax>10</xmax><ymax>20</ymax></bndbox></object></annotation>\n");
    write_text(root, "Annotations/b.xml",
               "<annotation><filename>b.jpg</filename><object><name>bird</name><bndbox><xmin>5</xmin><ymin>6"
               "</ymin><xmax>40</xmax><ymax>30</ymax></bndbox></object></annotation>");
    write_text(root, "Annotations/c.xml", "<annotation><filename>c.png</filename></annotation>");
    write_text(root, "ImageSets/Main/train.txt", "a\nc\n");
    write_text(root, "ImageSets/Main/val.txt", "b 1\n");
    assert_string_equal(acv_det_dataset_detect(root), "voc");
    acv_det_dataset *ds = open_ok(root, NULL, NULL, false);
    assert_int_equal(ds->n, 3);
    assert_int_equal(ds->k, 2);
    assert_string_equal(ds->names[0], "bird"); /* sorted */
    assert_string_equal(ds->names[1], "dog & cat");
    const acv_det_image *a = by_name(ds, "train", "a.png");
    assert_int_equal(a->n, 1);
    assert_true(a->boxes[0].x1 == 0 && a->boxes[0].y1 == 0 && a->boxes[0].x2 == 10 && a->boxes[0].y2 == 20);
    assert_true(a->boxes[0].flags & ACV_BOX_DIFFICULT);
    const acv_det_image *b = by_name(ds, "val", "b.png");
    assert_int_equal(b->w, 40);
    assert_int_equal(b->h, 30);
    assert_true(b->boxes[0].x1 == 4 && b->boxes[0].x2 == 40);
    assert_int_equal(by_name(ds, "train", "c.png")->n, 0);
    acv_det_dataset_free(ds);
    ds = open_ok(root, "val", NULL, false);
    assert_int_equal(ds->n, 1);
    assert_int_equal(ds->k, 2); /* the classes do not depend on the split */
    acv_det_dataset_free(ds);
    rm_tree(root);
}

static void test_yolo_yaml_variants(void **state)
{
    (void)state;
    static const struct { const char *file, *text; } CASES[] = {
        {"data.yaml", "path: .\ntrain: images/train\nnames: [a, 'b c', \"d\\\"e\"]  # three\n"},
        {"data.yaml", "names:\n  - a\n  - b c\n  - 'd\"e'\nnc: 3\n"},
        {"data.yaml", "names:\n- a\n- b c\n- d\"e\n"},
        {"data.yaml", "nc: 3\nnames:\n  2: d\"e\n  0: a\n  1: \"b c\"\ntrain: images/train\n"},
        {"data.yaml", "names: {0: a, 1: b c,\n  2: 'd\"e'}\n"},
        {"data.yaml", "path: /nonexistent/moved\ntrain: images/train\nnames: [a,\n  b c, d\"e]\n"},
        /* a byte order mark, CRLF, nc, an empty test: and a null val: (no such splits) */
        {"data.yaml", "\xEF\xBB\xBFnames:\r\n  0: a\r\n  1: b c\r\n  2: d\"e\r\nnc: 3\r\ntest:\r\nval: null\r\n"},
        /* the split as a list of folders, flow and block style; validation: for val */
        {"data.yaml", "train: [images/train]\nnames: [a, b c, d\"e]\n"},
        {"data.yaml", "train:\n  - images/train  # the only one\nvalidation: images/train\nnames: [a, b c, d\"e]\n"},
        {"classes.txt", "a\nb c\n\nd\"e\n"},
        {"obj.names", "a\r\nb c\r\nd\"e\r\n"},
    };
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        char *root = make_tmp();
        write_text(root, CASES[i].file, CASES[i].text);
        write_png(root, "images/train/x.png", 50, 40);
        write_text(root, "labels/train/x.txt", "2 0.5 0.5 0.2 0.25\n\n1 0.1 0.1 0.2 0.2\n");
        acv_det_dataset *ds = open_ok(root, NULL, NULL, false);
        if (ds->k != 3) fail_msg("case %zu: %d classes", i, ds->k);
        assert_string_equal(ds->names[0], "a");
        assert_string_equal(ds->names[1], "b c");
        assert_string_equal(ds->names[2], "d\"e");
        assert_int_equal(ds->n, strstr(CASES[i].text, "validation") ? 2 : 1);
        assert_int_equal(ds->images[0].n, 2);
        assert_true(fabsf(ds->images[0].boxes[0].x1 - 20) < 1e-5 && fabsf(ds->images[0].boxes[0].y2 - 25) < 1e-5);
        acv_det_dataset_free(ds);
        rm_tree(root);
    }
    /* map with a hole, and no names at all */
    char *root = make_tmp();
    write_png(root, "images/train/x.png", 50, 40);
    write_text(root, "data.yaml", "names:\n  0: a\n  2: c\n");
    acv_det_dataset *ds = NULL;
    acv_det_open_opts o = {0};
    assert_int_equal(acv_det_dataset_open(root, NULL, &o, &ds), ACV_EFORMAT);
    assert_has(acv_errmsg(), "no entry for class 1");
    write_text(root, "data.yaml", "train: images/train\n");
    assert_int_equal(acv_det_dataset_open(root, NULL, &o, &ds), ACV_EFORMAT);
    assert_has(acv_errmsg(), "no class names");
    /* nc and names that disagree; nc alone: Ultralytics' class_<i> */
    write_text(root, "data.yaml", "train: images/train\nnc: 3\nnames: [a, b]\n");
    assert_int_equal(acv_det_dataset_open(root, NULL, &o, &ds), ACV_EFORMAT);
    assert_has(acv_errmsg(), "data.yaml:2: nc is 3 but names lists 2 classes");
    write_text(root, "data.yaml", "train: images/train\nnc: 2\n");
    ds = open_ok(root, NULL, NULL, false);
    assert_int_equal(ds->k, 2);
    assert_string_equal(ds->names[1], "class_1");
    acv_det_dataset_free(ds);
    /* a split given but not there: an error naming the line when it is read */
    write_text(root, "data.yaml", "names: [a]\ntrain: images/train\nval: images/val\n");
    assert_int_equal(acv_det_dataset_open(root, NULL, &o, &ds), ACV_ENOTFOUND);
    assert_has(acv_errmsg(), "data.yaml:3: val: 'images/val' not found");
    ds = open_ok(root, "train", NULL, false);
    assert_int_equal(ds->n, 1);
    acv_det_dataset_free(ds);
    rm_tree(root);
}

/* A missing label file and an empty one are both an image without objects; a polygon line
 * (YOLO-seg) gives its bounding box. */
static void test_yolo_empty_missing_polygon(void **state)
{
    (void)state;
    char *root = make_tmp();
    write_text(root, "classes.txt", "a\nb\n");
    write_png(root, "images/x.png", 100, 50);
    write_png(root, "images/y.png", 100, 50);
    write_png(root, "images/z.png", 100, 50);
    write_text(root, "labels/y.txt", "");
    write_text(root, "labels/z.txt", "1 0.1 0.2 0.5 0.2 0.3 0.8\n");
    acv_det_dataset *ds = open_ok(root, "train", NULL, false); /* an unsplit set answers to train */
    assert_int_equal(ds->n, 3);
    assert_int_equal(ds->images[0].n, 0);
    assert_int_equal(ds->images[1].n, 0);
    assert_string_equal(ds->images[0].split, "");
    const acv_box *b = &ds->images[2].boxes[0];
    assert_int_equal(ds->images[2].n, 1);
    assert_true(fabsf(b->x1 - 10) < 1e-4 && fabsf(b->x2 - 50) < 1e-4 && fabsf(b->y1 - 10) < 1e-4 &&
                fabsf(b->y2 - 40) < 1e-4);
    /* written back, the unsplit set becomes train, with an empty label file for x */
    char *out = pj(root, "out");
    assert_int_equal(acv_det_dataset_write(ds, "yolo", out, NULL), 0);
    char *lab = pj(out, "labels/train/x.txt");
    struct stat st;
    assert_int_equal(stat(lab, &st), 0);
    assert_int_equal(st.st_size, 0);
    free(lab);
    acv_det_dataset_free(ds);
    free(out);
    rm_tree(root);
}

/* Split names: val finds valid/validation/val2017; train also finds no split and CVAT's
 * "default". */
static void test_split_match(void **state)
{
    (void)state;
    assert_true(acv__det_split_match("valid", "val"));
    assert_true(acv__det_split_match("validation", "val"));
    assert_true(acv__det_split_match("val2017", "val"));
    assert_true(acv__det_split_match("default", "train"));
    assert_true(acv__det_split_match("", "train"));
    assert_false(acv__det_split_match("default", "val"));
    assert_false(acv__det_split_match("", "test"));
    assert_false(acv__det_split_match("train", "val"));
    assert_true(acv__det_split_match("anything", NULL));
}

static void test_image_size(void **state)
{
    (void)state;
    char *root = make_tmp();
    acv_image im = {0};
    assert_int_equal(acv_image_alloc(&im, 37, 21, 3), 0);
    char *png = pj(root, "a.png"), *jpg = pj(root, "a.jpg"), *bmp = pj(root, "a.bmp");
    assert_int_equal(acv_image_save_png(&im, png), 0);
    assert_int_equal(acv_image_save_jpeg(&im, jpg, 90), 0);
    /* a 24-bit BMP header, bottom-up */
    uint8_t bm[54 + 40 * 21] = {'B', 'M'};
    bm[10] = 54;
    bm[14] = 40;
    bm[18] = 13;
    bm[22] = 21;
    bm[26] = 1;
    bm[28] = 24;
    assert_int_equal(acv__det_write_text(bmp, (char *)bm, sizeof bm), 0);
    int w, h;
    assert_int_equal(acv__det_image_size(png, &w, &h), 0);
    assert_true(w == 37 && h == 21);
    assert_int_equal(acv__det_image_size(jpg, &w, &h), 0);
    assert_true(w == 37 && h == 21);
    assert_int_equal(acv__det_image_size(bmp, &w, &h), 0);
    assert_true(w == 13 && h == 21);
    acv_image dec;
    assert_int_equal(acv_image_load(bmp, NULL, &dec), 0); /* the header parser agrees with the decoder */
    assert_true(dec.w == 13 && dec.h == 21);
    acv_image_free(&dec);
    /* EXIF orientation 6 (rotate 90): the decoder and the header parser both report 21 x 37 */
    uint8_t *enc;
    size_t elen;
    assert_int_equal(acv_image_encode_jpeg(&im, 90, &enc, &elen), 0);
    static const uint8_t APP1[36] = {0xFF, 0xE1, 0, 34, 'E', 'x', 'i', 'f', 0, 0, 'I', 'I', 0x2A, 0, 8, 0, 0, 0,
                                     1, 0, 0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0};
    uint8_t *ex = malloc(elen + sizeof APP1);
    assert_non_null(ex);
    memcpy(ex, enc, 2);
    memcpy(ex + 2, APP1, sizeof APP1);
    memcpy(ex + 2 + sizeof APP1, enc + 2, elen - 2);
    char *exif = pj(root, "exif.jpg");
    assert_int_equal(acv__det_write_text(exif, (char *)ex, elen + sizeof APP1), 0);
    assert_int_equal(acv_image_load(exif, NULL, &dec), 0);
    assert_true(dec.w == 21 && dec.h == 37);
    acv_image_free(&dec);
    assert_int_equal(acv__det_image_size(exif, &w, &h), 0);
    assert_true(w == 21 && h == 37);
    free(ex);
    free(enc);
    free(exif);
    char *junk = pj(root, "j.png");
    assert_int_equal(acv__det_write_text(junk, "not an image", 12), 0);
    assert_int_equal(acv__det_image_size(junk, &w, &h), ACV_EFORMAT);
    /* a BMP height of INT32_MIN (its negation overflows: undefined behaviour) is invalid:
     * no size from the header, and the decoder refuses it */
    bm[22] = bm[23] = bm[24] = 0;
    bm[25] = 0x80;
    assert_int_equal(acv__det_write_text(bmp, (char *)bm, sizeof bm), 0);
    w = h = 7;
    assert_int_equal(acv__det_image_size(bmp, &w, &h), ACV_EFORMAT);
    assert_non_null(strstr(acv_errmsg(), "a.bmp"));
    assert_non_null(strstr(acv_errmsg(), "corrupt BMP"));
    acv_image_free(&im);
    free(png);
    free(jpg);
    free(bmp);
    free(junk);
    rm_tree(root);
}

static void test_write_collisions(void **state)
{
    (void)state;
    char *root = make_tmp();
    write_text(root, "data.yaml", "names: [a]\n");
    write_png(root, "images/train/a.png", 10, 10);
    write_png(root, "images/val/a.png", 12, 10);
    write_text(root, "labels/val/a.txt", "0 0.5 0.5 0.5 0.5\n");
    acv_det_dataset *ds = open_ok(root, NULL, NULL, false);
    assert_int_equal(ds->n, 2);
    /* VOC has one folder for all splits: the same name in two splits gets the split as a prefix */
    char *voc = pj(root, "voc");
    assert_int_equal(acv_det_dataset_write(ds, "voc", voc, NULL), 0);
    acv_det_dataset_free(ds);
    ds = open_ok(voc, NULL, NULL, false);
    assert_int_equal(ds->n, 2);
    assert_int_equal(by_name(ds, "train", "train_a.png")->n, 0);
    assert_int_equal(by_name(ds, "val", "val_a.png")->w, 12);
    assert_int_equal(by_name(ds, "val", "val_a.png")->n, 1);
    acv_det_dataset_free(ds);
    /* a.png and a.jpg (a PNG named .jpg: sniffed, not named) would share a label file and a stem */
    write_png(root, "images/val/a.jpg", 10, 10);
    ds = open_ok(root, NULL, NULL, false);
    assert_int_equal(ds->n, 3);
    char *out = pj(root, "voc2");
    assert_int_equal(acv_det_dataset_write(ds, "voc", out, NULL), ACV_EEXIST);
    assert_has(acv_errmsg(), "'val_a'");
    char *out2 = pj(root, "yolo");
    assert_int_equal(acv_det_dataset_write(ds, "yolo", out2, NULL), ACV_EEXIST);
    assert_has(acv_errmsg(), "labels/val/a.txt");
    char *out3 = pj(root, "coco");
    assert_int_equal(acv_det_dataset_write(ds, "coco", out3, NULL), 0);
    assert_int_equal(acv_det_dataset_write(ds, "nope", out3, NULL), ACV_EINVAL);
    acv_det_dataset_free(ds);
    free(voc);
    free(out);
    free(out2);
    free(out3);
    rm_tree(root);
}

/* ---- bad labels ----------------------------------------------------------------------------- */

/* Opening root fails with ACV_EFORMAT naming where and why; with skip_bad it opens with one
 * bad label counted (first_bad says the same) and images / boxes left. */
static void expect_bad(const char *root, const char *where, const char *why, int images, int boxes)
{
    acv_det_dataset *ds = NULL;
    acv_det_open_opts o = {0};
    int rc = acv_det_dataset_open(root, NULL, &o, &ds);
    if (rc != ACV_EFORMAT) fail_msg("expected a bad label at %s (%s), got %d: %s", where, why, rc, acv_errmsg());
    assert_null(ds);
    assert_has(acv_errmsg(), where);
    assert_has(acv_errmsg(), why);
    ds = open_ok(root, NULL, NULL, true);
    assert_int_equal(ds->bad_labels, 1);
    assert_has(ds->first_bad, where);
    assert_has(ds->first_bad, why);
    assert_int_equal(ds->n, images);
    int nb = 0;
    for (int i = 0; i < ds->n; i++) nb += ds->images[i].n;
    assert_int_equal(nb, boxes);
    acv_det_dataset_free(ds);
}

static void test_bad_yolo(void **state)
{
    (void)state;
    static const struct { const char *line, *why; } CASES[] = {
        {"0 0.95 0.5 0.2 0.2", "outside the 100x50 image"},
        {"0 0.5 0.5 0 0.2", "zero or negative size"},
        {"0 0.5 0.5 -0.1 0.2", "zero or negative size"},
        {"1 0.5 0.5 0.2 -0.2", "zero or negative size"},
        {"3 0.5 0.5 0.1 0.1", "class 3 is not one of the 3 classes"},
        {"-1 0.5 0.5 0.1 0.1", "class -1 is not one of the 3 classes"},
        {"0 0.5 0.5 0.1", "malformed line (4 fields"},
        {"0 0.5 0.5 0.1 0.1 0.7", "malformed line (6 fields"},
        {"a 0.5 0.5 0.1 0.1", "malformed line"},
        {"0.5 0.5 0.5 0.1 0.1", "malformed line"},
        {"0 0.5 0.5 0.1 x", "malformed line"},
        {"0 nan 0.5 0.1 0.1", "malformed line"},
        {"0 0.5 0.5 1e999 0.1", "malformed line"},
    };
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        char *root = make_tmp();
        write_text(root, "data.yaml", "names: [a, b, c]\n");
        write_png(root, "images/train/x.png", 100, 50);
        char text[256];
        snprintf(text, sizeof text, "0 0.5 0.5 0.2 0.2\n%s\n2 0.25 0.25 0.1 0.1\n", CASES[i].line);
        write_text(root, "labels/train/x.txt", text);
        expect_bad(root, "labels/train/x.txt:2", CASES[i].why, 1, 2);
        rm_tree(root);
    }
    /* within the 1 px tolerance: clamped, not bad */
    char *root = make_tmp();
    write_text(root, "data.yaml", "names: [a]\n");
    write_png(root, "images/train/x.png", 100, 50);
    write_text(root, "labels/train/x.txt", "0 0.995 0.5 0.02 0.2\n");
    acv_det_dataset *ds = open_ok(root, NULL, NULL, false);
    assert_true(ds->images[0].boxes[0].x2 == 100.f);
    assert_true(fabsf(ds->images[0].boxes[0].x1 - 98.5f) < 1e-4);
    acv_det_dataset_free(ds);
    /* a listed image that is missing (a .txt split list) */
    write_text(root, "data.yaml", "names: [a]\ntrain: train.txt\n");
    write_text(root, "train.txt", "./images/train/x.png\nimages/train/gone.png\n");
    expect_bad(root, "train.txt:2", "image file 'images/train/gone.png' not found", 1, 1);
    rm_tree(root);
}

static void write_coco_one(const char *root, const char *bad_ann, const char *extra_image)
{
    write_png(root, "images/train/a.png", 100, 50);
    char json[2048];
    snprintf(json, sizeof json,
             "{\"images\": [{\"id\": 1, \"file_name\": \"a.png\", \"width\": 100, \"height\": 50}%s],\n"
             " \"annotations\": [{\"id\": 1, \"image_id\": 1, \"category_id\": 4, \"bbox\": [10, 10, 20, 20]},\n"
             "  %s],\n \"categories\": [{\"id\": 4, \"name\": \"a\"}, {\"id\": 9, \"name\": \"b\"}]}",
             extra_image ? extra_image : "", bad_ann);
    write_text(root, "annotations/instances_train.json", json);
}

static void test_bad_coco(void **state)
{
    (void)state;
    static const struct { const char *ann, *why; } CASES[] = {
        {"{\"id\": 7, \"image_id\": 1, \"category_id\": 4, \"bbox\": [95, 10, 10, 10]}", "outside the 100x50 image"},
        {"{\"id\": 7, \"image_id\": 1, \"category_id\": 4, \"bbox\": [10, -5, 10, 10]}", "outside the 100x50 image"},
        {"{\"id\": 7, \"image_id\": 1, \"category_id\": 4, \"bbox\": [10, 10, 0, 10]}", "zero or negative size"},
        {"{\"id\": 7, \"image_id\": 1, \"category_id\": 9, \"bbox\": [10, 10, 5, -3]}", "zero or negative size"},
        {"{\"id\": 7, \"image_id\": 1, \"category_id\": 5, \"bbox\": [10, 10, 5, 5]}", "category_id 5 is not one of"},
        {"{\"id\": 7, \"image_id\": 1, \"bbox\": [10, 10, 5, 5]}", "no integer \"category_id\""},
        {"{\"id\": 7, \"image_id\": 1, \"category_id\": 4, \"bbox\": [10, 10, 5]}", "\"bbox\" is not an array of 4"},
        {"{\"id\": 7, \"image_id\": 1, \"category_id\": 4, \"bbox\": [10, \"10\", 5, 5]}", "\"bbox\" is not an array"},
        {"{\"id\": 7, \"image_id\": 1, \"category_id\": 4}", "\"bbox\" is not an array"},
        {"{\"id\": 7, \"image_id\": 77, \"category_id\": 4, \"bbox\": [10, 10, 5, 5]}", "image_id 77 is not an image"},
    };
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        char *root = make_tmp();
        write_coco_one(root, CASES[i].ann, NULL);
        expect_bad(root, "instances_train.json: annotation id 7 (annotations[1])", CASES[i].why, 1, 1);
        rm_tree(root);
    }
    /* a missing image file drops the image and its annotations */
    char *root = make_tmp();
    write_coco_one(root, "{\"id\": 7, \"image_id\": 2, \"category_id\": 4, \"bbox\": [1, 1, 5, 5]}",
                   ", {\"id\": 2, \"file_name\": \"gone.png\", \"width\": 10, \"height\": 10}");
    expect_bad(root, "instances_train.json: image id 2 (images[1])", "image file 'gone.png' not found", 1, 1);
    rm_tree(root);
    /* a file that is not JSON is always an error, with its line */
    root = make_tmp();
    write_text(root, "annotations/instances_train.json", "{\"images\": [\n  {]\n}");
    acv_det_dataset *ds = NULL;
    acv_det_open_opts o = {.skip_bad = true};
    assert_int_equal(acv_det_dataset_open(root, NULL, &o, &ds), ACV_EFORMAT);
    assert_has(acv_errmsg(), "instances_train.json:2:");
    rm_tree(root);
}

static void write_voc_one(const char *root, const char *bad_obj)
{
    write_png(root, "JPEGImages/a.png", 100, 50);
    char xml[2048];
    snprintf(xml, sizeof xml,
             "<annotation>\n"
             "  <filename>a.png</filename>\n"
             "  <size><width>100</width><height>50</height><depth>3</depth></size>\n"
             "  <object><name>a</name><bndbox><xmin>11</xmin><ymin>11</ymin><xmax>30</xmax><ymax>30</ymax>"
             "</bndbox></object>\n"
             "  %s\n"
             "</annotation>\n",
             bad_obj);
    write_text(root, "Annotations/a.xml", xml);
    write_text(root, "labels.txt", "a\nb\n");
}

static void test_bad_voc(void **state)
{
    (void)state;
    static const struct { const char *obj, *why; } CASES[] = {
        {"<object><name>a</name><bndbox><xmin>90</xmin><ymin>1</ymin><xmax>120</xmax><ymax>9</ymax></bndbox></object>",
         "outside the 100x50 image"},
        {"<object><name>b</name><bndbox><xmin>10</xmin><ymin>1</ymin><xmax>9</xmax><ymax>9</ymax></bndbox></object>",
         "zero or negative size"},
        {"<object><name>b</name><bndbox><xmin>10</xmin><ymin>9</ymin><xmax>20</xmax><ymax>5</ymax></bndbox></object>",
         "zero or negative size"},
        {"<object><name>zebra</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>9</xmax><ymax>9</ymax></bndbox></object>",
         "class 'zebra' is not in labels.txt"},
        {"<object><name>a</name></object>", "no numeric <bndbox>"},
        {"<object><name>a</name><bndbox><xmin>ten</xmin><ymin>1</ymin><xmax>9</xmax><ymax>9</ymax></bndbox></object>",
         "no numeric <bndbox>"},
        {"<object><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>9</xmax><ymax>9</ymax></bndbox></object>",
         "no <name>"},
    };
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        char *root = make_tmp();
        write_voc_one(root, CASES[i].obj);
        expect_bad(root, "Annotations/a.xml:5: object 2", CASES[i].why, 1, 1);
        rm_tree(root);
    }
    /* malformed XML: the image is dropped */
    char *root = make_tmp();
    write_voc_one(root, "<object><name>a</name></objekt>");
    write_png(root, "JPEGImages/b.png", 20, 20);
    write_text(root, "Annotations/b.xml", "<annotation><filename>b.png</filename></annotation>");
    expect_bad(root, "Annotations/a.xml: malformed XML (line 5:", "closing tag", 1, 0);
    rm_tree(root);
    /* a missing image */
    root = make_tmp();
    write_voc_one(root, "");
    write_text(root, "Annotations/c.xml", "<annotation><filename>c.jpg</filename></annotation>");
    expect_bad(root, "Annotations/c.xml", "image file 'c.jpg' not found", 1, 1);
    rm_tree(root);
    /* a split list naming no annotation file */
    root = make_tmp();
    write_voc_one(root, "");
    write_text(root, "ImageSets/Main/train.txt", "a\nghost\n");
    expect_bad(root, "ImageSets/Main/train.txt:2", "'ghost' has no annotation file", 1, 1);
    rm_tree(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_coco_read),
        cmocka_unit_test(test_roundtrip_coco_yolo_voc_coco),
        cmocka_unit_test(test_roundtrip_ids_and_flags),
        cmocka_unit_test(test_splits),
        cmocka_unit_test(test_voc_layout),
        cmocka_unit_test(test_yolo_yaml_variants),
        cmocka_unit_test(test_yolo_empty_missing_polygon),
        cmocka_unit_test(test_split_match),
        cmocka_unit_test(test_image_size),
        cmocka_unit_test(test_write_collisions),
        cmocka_unit_test(test_bad_yolo),
        cmocka_unit_test(test_bad_coco),
        cmocka_unit_test(test_bad_voc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
