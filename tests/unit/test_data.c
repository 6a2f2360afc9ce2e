/* Tests for src/data: idx files, classification datasets (idx and ImageFolder), splits
 * and the threaded loader. Fixtures are written into mkdtemp folders by the tests. */
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
#include "data/dataset.h"
#include "data/idx.h"
#include "data/loader.h"
#include "vision/image.h"
#include "vision/transform.h"

#define FMNIST "/usr/share/datasets/fashion-mnist"

/* ---- fixture helpers -------------------------------------------------------------- */

static char *make_tmp(void)
{
    char tmpl[] = "/tmp/acv-test-data-XXXXXX";
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

static void mkdir_p(const char *root, const char *rel)
{
    char *p = pj(root, rel);
    assert_int_equal(acv_mkdirs(p), 0);
    free(p);
}

static void write_bytes(const char *root, const char *rel, const void *data, size_t n)
{
    char *p = pj(root, rel);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    if (n) assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
    free(p);
}

static void put16(uint8_t *p, unsigned v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, unsigned v) { put16(p, v & 0xffff); put16(p + 2, v >> 16); }

/* A minimal 24-bit BMP writer (bottom-up rows padded to 4 bytes); pixel (x, y) gets
 * the colour (seed + x, seed + 2y, seed + x + y). */
static void write_bmp(const char *root, const char *rel, int w, int h, int seed)
{
    int row = (w * 3 + 3) & ~3;
    size_t n = 54 + (size_t)row * h;
    uint8_t *b = calloc(1, n);
    assert_non_null(b);
    b[0] = 'B'; b[1] = 'M';
    put32(b + 2, (unsigned)n);
    put32(b + 10, 54);
    put32(b + 14, 40);
    put32(b + 18, (unsigned)w);
    put32(b + 22, (unsigned)h);
    put16(b + 26, 1);
    put16(b + 28, 24);
    put32(b + 34, (unsigned)(row * h));
    for (int y = 0; y < h; y++) {
        uint8_t *r = b + 54 + (size_t)(h - 1 - y) * row;
        for (int x = 0; x < w; x++) {
            r[3 * x + 2] = (uint8_t)(seed + x);         /* R */
            r[3 * x + 1] = (uint8_t)(seed + 2 * y);     /* G */
            r[3 * x + 0] = (uint8_t)(seed + x + y);     /* B */
        }
    }
    write_bytes(root, rel, b, n);
    free(b);
}

static void write_png(const char *root, const char *rel, int w, int h, int c, int seed)
{
    acv_image im = {0};
    assert_int_equal(acv_image_alloc(&im, w, h, c), 0);
    for (int i = 0; i < w * h * c; i++) im.data[i] = (uint8_t)(seed + i * 7);
    char *p = pj(root, rel);
    assert_int_equal(acv_image_save_png(&im, p), 0);
    free(p);
    acv_image_free(&im);
}

static void write_corrupt(const char *root, const char *rel)
{
    static const uint8_t junk[] = {0x89, 'P', 'N', 'G', 1, 2, 3, 4, 5, 6, 7, 8, 9};
    write_bytes(root, rel, junk, sizeof junk);
}

/* idx fixtures: n images of rows x cols where pixel j of image i is (i * 31 + j) & 255,
 * and label i is labels_fn(i). */
static void write_idx_set(const char *dir, const char *prefix, int n, int rows, int cols, int nclass, int gz)
{
    uint8_t *img = malloc((size_t)n * rows * cols), *lab = malloc((size_t)n);
    assert_true(img && lab);
    for (int i = 0; i < n; i++) {
        lab[i] = (uint8_t)(i % nclass);
        for (int j = 0; j < rows * cols; j++) img[(size_t)i * rows * cols + j] = (uint8_t)((i * 31 + j) & 255);
    }
    char name[128];
    int dims[3] = {n, rows, cols};
    snprintf(name, sizeof name, "%s-images-idx3-ubyte%s", prefix, gz ? ".gz" : "");
    char *p = pj(dir, name);
    assert_int_equal(acv_idx_write(p, 3, dims, img, gz), 0);
    free(p);
    snprintf(name, sizeof name, "%s-labels-idx1-ubyte%s", prefix, gz ? ".gz" : "");
    p = pj(dir, name);
    assert_int_equal(acv_idx_write(p, 1, dims, lab, gz), 0);
    free(p);
    free(img);
    free(lab);
}

static void assert_msg_has(const char *needle)
{
    if (!strstr(acv_errmsg(), needle)) fail_msg("message \"%s\" does not mention \"%s\"", acv_errmsg(), needle);
}

static void rm_tree(char *root)
{
    assert_int_equal(acv_remove_tree(root), 0);
    free(root);
}

/* ---- idx -------------------------------------------------------------------------- */

static void test_idx_roundtrip(void **state)
{
    (void)state;
    char *root = make_tmp();
    for (int gz = 0; gz <= 1; gz++) {
        char *sub = pj(root, gz ? "gz" : "plain");
        assert_int_equal(acv_mkdirs(sub), 0);
        write_idx_set(sub, "train", 13, 5, 4, 3, gz);
        char *p = pj(sub, gz ? "train-images-idx3-ubyte.gz" : "train-images-idx3-ubyte");
        acv_idx idx;
        assert_int_equal(acv_idx_read_images(p, &idx), 0);
        assert_int_equal(idx.ndim, 3);
        assert_int_equal(idx.dims[0], 13);
        assert_int_equal(idx.dims[1], 5);
        assert_int_equal(idx.dims[2], 4);
        assert_int_equal(idx.size, 13 * 20);
        for (int i = 0; i < 13; i++)
            for (int j = 0; j < 20; j++) assert_int_equal(idx.data[i * 20 + j], (i * 31 + j) & 255);
        /* a label file read as images is a rank error naming the file */
        acv_idx_free(&idx);
        free(p);
        p = pj(sub, gz ? "train-labels-idx1-ubyte.gz" : "train-labels-idx1-ubyte");
        assert_int_equal(acv_idx_read_images(p, &idx), ACV_EFORMAT);
        assert_msg_has(p);
        assert_null(idx.data);
        assert_int_equal(acv_idx_read_labels(p, &idx), 0);
        assert_int_equal(idx.dims[0], 13);
        for (int i = 0; i < 13; i++) assert_int_equal(idx.data[i], i % 3);
        acv_idx_free(&idx);
        free(p);
        free(sub);
    }
    rm_tree(root);
}

static void test_idx_malformed(void **state)
{
    (void)state;
    char *root = make_tmp();
    acv_idx idx;
    /* bad magic */
    const uint8_t bad_magic[] = {1, 0, 8, 1, 0, 0, 0, 2, 5, 6};
    write_bytes(root, "magic", bad_magic, sizeof bad_magic);
    char *p = pj(root, "magic");
    assert_int_equal(acv_idx_read(p, &idx), ACV_EFORMAT);
    assert_msg_has(p);
    assert_msg_has("magic");
    free(p);
    /* unsupported element type (0x0D float) */
    const uint8_t float_type[] = {0, 0, 0x0D, 1, 0, 0, 0, 1, 0, 0, 0, 0};
    write_bytes(root, "float", float_type, sizeof float_type);
    p = pj(root, "float");
    assert_int_equal(acv_idx_read(p, &idx), ACV_EUNSUPPORTED);
    assert_msg_has(p);
    free(p);
    /* header says 3 bytes, file holds 2 (truncated) or 4 (trailing) */
    const uint8_t short_data[] = {0, 0, 8, 1, 0, 0, 0, 3, 7, 7};
    write_bytes(root, "short", short_data, sizeof short_data);
    p = pj(root, "short");
    assert_int_equal(acv_idx_read(p, &idx), ACV_EFORMAT);
    assert_msg_has(p);
    assert_msg_has("truncated");
    free(p);
    const uint8_t long_data[] = {0, 0, 8, 1, 0, 0, 0, 3, 7, 7, 7, 7};
    write_bytes(root, "long", long_data, sizeof long_data);
    p = pj(root, "long");
    assert_int_equal(acv_idx_read(p, &idx), ACV_EFORMAT);
    assert_msg_has("size mismatch");
    free(p);
    /* a header announcing a huge size over a tiny file fails without a huge allocation */
    const uint8_t huge[] = {0, 0, 8, 3, 0x7f, 0, 0, 0, 0, 0, 0, 16, 0, 0, 0, 16, 1, 2, 3};
    write_bytes(root, "huge", huge, sizeof huge);
    p = pj(root, "huge");
    int rc = acv_idx_read(p, &idx);
    assert_true(rc == ACV_ERANGE || rc == ACV_EFORMAT);
    free(p);
    /* dims [2^30, 16, 2^30]: the product is checked before multiplying (it wrapped to 0,
     * and an empty data section then passed for the 2^64 bytes announced) */
    const uint8_t wrap[] = {0, 0, 8, 3, 0x40, 0, 0, 0, 0, 0, 0, 16, 0x40, 0, 0, 0};
    write_bytes(root, "wrap", wrap, sizeof wrap);
    p = pj(root, "wrap");
    idx.data = (uint8_t *)1;
    assert_int_equal(acv_idx_read(p, &idx), ACV_ERANGE);
    assert_msg_has(p);
    assert_msg_has("announces more than");
    assert_null(idx.data);
    assert_int_equal(idx.ndim, 0);
    free(p);
    /* empty file */
    write_bytes(root, "empty", "", 0);
    p = pj(root, "empty");
    assert_int_equal(acv_idx_read(p, &idx), ACV_EFORMAT);
    free(p);
    /* truncated gzip: a valid .gz cut in half */
    write_idx_set(root, "train", 200, 28, 28, 10, 1);
    p = pj(root, "train-images-idx3-ubyte.gz");
    uint8_t *buf;
    size_t len;
    assert_int_equal(acv_file_read(p, 1 << 24, &buf, &len), 0);
    assert_true(len > 100);
    char *q = pj(root, "cut.gz");
    assert_int_equal(acv_file_write_atomic(q, buf, len / 2), 0);
    assert_int_equal(acv_idx_read(q, &idx), ACV_EFORMAT);
    assert_msg_has(q);
    assert_null(idx.data);
    /* corrupt gzip body: flip bytes in the middle */
    for (size_t i = len / 2; i < len / 2 + 16; i++) buf[i] ^= 0x5a;
    assert_int_equal(acv_file_write_atomic(q, buf, len), 0);
    assert_int_equal(acv_idx_read(q, &idx), ACV_EFORMAT);
    assert_msg_has(q);
    free(buf);
    free(q);
    free(p);
    /* missing file */
    p = pj(root, "nope");
    assert_int_equal(acv_idx_read(p, &idx), ACV_ENOTFOUND);
    free(p);
    rm_tree(root);
}

/* ---- idx datasets ----------------------------------------------------------------- */

static void test_idx_dataset_splits(void **state)
{
    (void)state;
    char *root = make_tmp();
    char *dir = pj(root, "mnist-tiny");
    assert_int_equal(acv_mkdirs(dir), 0);
    write_idx_set(dir, "train", 100, 6, 5, 10, 1);
    write_idx_set(dir, "t10k", 20, 6, 5, 10, 0); /* plain files for the test part */

    acv_cls_dataset *tr, *va, *te;
    assert_int_equal(acv_cls_dataset_open(dir, "train", 0.2f, 7, &tr), 0);
    assert_int_equal(acv_cls_dataset_open(dir, "val", 0.2f, 7, &va), 0);
    assert_int_equal(acv_cls_dataset_open(dir, "test", 0.2f, 7, &te), 0);
    assert_string_equal(acv_cls_dataset_format(tr), "idx");
    assert_int_equal(acv_cls_dataset_num_classes(tr), 10);
    assert_string_equal(acv_cls_dataset_class_name(tr, 0), "0");
    assert_string_equal(acv_cls_dataset_class_name(tr, 9), "9");
    assert_int_equal(acv_cls_dataset_size(tr), 80);
    assert_int_equal(acv_cls_dataset_size(va), 20);
    assert_int_equal(acv_cls_dataset_size(te), 20);
    /* stratified: each class has 10 train samples, 2 go to val */
    int counts[10];
    acv_cls_dataset_class_counts(va, counts);
    for (int c = 0; c < 10; c++) assert_int_equal(counts[c], 2);
    acv_cls_dataset_class_counts(tr, counts);
    for (int c = 0; c < 10; c++) assert_int_equal(counts[c], 8);
    /* disjoint and complete, original order kept, labels and pixels follow the rows */
    int seen[100] = {0}, prev = -1;
    for (int i = 0; i < 80; i++) {
        int s = acv_cls_dataset_source_index(tr, i);
        assert_true(s > prev);
        prev = s;
        seen[s]++;
        assert_int_equal(acv_cls_dataset_label(tr, i), s % 10);
    }
    for (int i = 0; i < 20; i++) seen[acv_cls_dataset_source_index(va, i)]++;
    for (int s = 0; s < 100; s++) assert_int_equal(seen[s], 1);
    acv_image im;
    assert_int_equal(acv_cls_dataset_get(va, 3, 0, &im), 0);
    int s3 = acv_cls_dataset_source_index(va, 3);
    assert_int_equal(im.w, 5);
    assert_int_equal(im.h, 6);
    assert_int_equal(im.c, 1);
    for (int j = 0; j < 30; j++) assert_int_equal(im.data[j], (s3 * 31 + j) & 255);
    acv_image_free(&im);
    assert_int_equal(acv_cls_dataset_get(va, 3, 3, &im), 0); /* gray replicated to RGB */
    assert_int_equal(im.c, 3);
    assert_int_equal(im.data[3 * 7 + 0], (s3 * 31 + 7) & 255);
    assert_int_equal(im.data[3 * 7 + 2], (s3 * 31 + 7) & 255);
    acv_image_free(&im);
    assert_null(acv_cls_dataset_path(tr, 0));
    for (int i = 0; i < 20; i++) assert_int_equal(acv_cls_dataset_label(te, i), i % 10);

    /* the same seed gives the same split, another seed another one */
    acv_cls_dataset *va2, *va3;
    assert_int_equal(acv_cls_dataset_open(dir, "val", 0.2f, 7, &va2), 0);
    assert_int_equal(acv_cls_dataset_open(dir, "val", 0.2f, 8, &va3), 0);
    int same = 1, same3 = 1;
    for (int i = 0; i < 20; i++) {
        same &= acv_cls_dataset_source_index(va, i) == acv_cls_dataset_source_index(va2, i);
        same3 &= acv_cls_dataset_source_index(va, i) == acv_cls_dataset_source_index(va3, i);
    }
    assert_true(same);
    assert_false(same3);
    acv_cls_dataset_free(va3);
    /* val_split 0: train is everything, val is an error */
    acv_cls_dataset *all;
    assert_int_equal(acv_cls_dataset_open(dir, "train", 0.0f, 7, &all), 0);
    assert_int_equal(acv_cls_dataset_size(all), 100);
    assert_int_equal(acv_cls_dataset_open(dir, "val", 0.0f, 7, &va3), ACV_EINVAL); /* NULL on error */
    assert_null(va3);
    acv_cls_dataset_free(all);
    acv_cls_dataset_free(va2);
    acv_cls_dataset_free(tr);
    acv_cls_dataset_free(va);
    acv_cls_dataset_free(te);

    /* bad arguments */
    assert_int_equal(acv_cls_dataset_open(dir, "training", 0.2f, 7, &tr), ACV_EINVAL);
    assert_int_equal(acv_cls_dataset_open(dir, "train", 1.0f, 7, &tr), ACV_EINVAL);
    assert_int_equal(acv_cls_dataset_open(dir, "train", -0.1f, 7, &tr), ACV_EINVAL);
    free(dir);

    /* a "fashion" folder gets the Fashion-MNIST names; no t10k files: no test split */
    dir = pj(root, "Fashion-small");
    assert_int_equal(acv_mkdirs(dir), 0);
    write_idx_set(dir, "train", 30, 4, 4, 10, 0);
    assert_int_equal(acv_cls_dataset_open(dir, "train", 0.1f, 1, &tr), 0);
    assert_string_equal(acv_cls_dataset_class_name(tr, 0), "T-shirt/top");
    assert_string_equal(acv_cls_dataset_class_name(tr, 9), "Ankle boot");
    acv_cls_dataset_free(tr);
    assert_int_equal(acv_cls_dataset_open(dir, "test", 0.1f, 1, &te), ACV_ENOTFOUND);
    assert_msg_has("t10k-images-idx3-ubyte");
    free(dir);

    /* malformed idx inside a dataset: error names the file */
    dir = pj(root, "broken");
    assert_int_equal(acv_mkdirs(dir), 0);
    write_idx_set(dir, "train", 30, 4, 4, 10, 0);
    const uint8_t bad[] = {0, 0, 8, 1, 0, 0, 0, 40, 1, 2};
    write_bytes(dir, "train-labels-idx1-ubyte", bad, sizeof bad);
    assert_int_equal(acv_cls_dataset_open(dir, "train", 0.1f, 1, &tr), ACV_EFORMAT);
    assert_msg_has("train-labels-idx1-ubyte");
    /* image / label count mismatch */
    uint8_t lab[29] = {0};
    int d29[1] = {29};
    char *p = pj(dir, "train-labels-idx1-ubyte");
    assert_int_equal(acv_idx_write(p, 1, d29, lab, 0), 0);
    free(p);
    assert_int_equal(acv_cls_dataset_open(dir, "train", 0.1f, 1, &tr), ACV_EFORMAT);
    assert_msg_has("29 labels");
    free(dir);
    rm_tree(root);
}

/* ---- ImageFolder ------------------------------------------------------------------ */

static void test_imagefolder_flat(void **state)
{
    (void)state;
    char *root = make_tmp();
    mkdir_p(root, "cat");
    mkdir_p(root, "Dog");
    mkdir_p(root, "bird/sub");
    mkdir_p(root, ".hidden");
    for (int i = 0; i < 10; i++) {
        char name[64];
        snprintf(name, sizeof name, "cat/c%02d.%s", i, i % 2 ? "PNG" : "bmp");
        if (i % 2) write_png(root, name, 6, 5, 3, i); else write_bmp(root, name, 6, 5, i);
        snprintf(name, sizeof name, "Dog/d%02d.Bmp", i);
        write_bmp(root, name, 7, 4, 100 + i);
    }
    write_bmp(root, "bird/z.bmp", 5, 5, 1);
    write_bmp(root, "bird/a.bmp", 5, 5, 2);
    write_bmp(root, "bird/sub/m.bmp", 5, 5, 3);
    write_bmp(root, "bird/sub/b.bmp", 5, 5, 4);
    write_bmp(root, "bird/sub/c.bmp", 5, 5, 5);
    write_bytes(root, "bird/notes.txt", "x", 1);
    write_bmp(root, ".hidden/h.bmp", 5, 5, 6);
    write_bmp(root, "cat/.skip.bmp", 5, 5, 6);

    acv_cls_dataset *all;
    assert_int_equal(acv_cls_dataset_open(root, "train", 0.0f, 3, &all), 0);
    assert_string_equal(acv_cls_dataset_format(all), "imagefolder");
    assert_int_equal(acv_cls_dataset_num_classes(all), 3);
    /* byte-wise order like Python's sorted(): uppercase first */
    assert_string_equal(acv_cls_dataset_class_name(all, 0), "Dog");
    assert_string_equal(acv_cls_dataset_class_name(all, 1), "bird");
    assert_string_equal(acv_cls_dataset_class_name(all, 2), "cat");
    assert_int_equal(acv_cls_dataset_size(all), 25);
    /* torchvision order inside a class: the class folder's files, then subfolders */
    const char *bird_order[] = {"bird/a.bmp", "bird/z.bmp", "bird/sub/b.bmp", "bird/sub/c.bmp", "bird/sub/m.bmp"};
    for (int i = 0; i < 5; i++) {
        const char *path = acv_cls_dataset_path(all, 10 + i);
        assert_non_null(path);
        size_t lp = strlen(path), lo = strlen(bird_order[i]);
        assert_true(lp > lo && strcmp(path + lp - lo, bird_order[i]) == 0);
        assert_int_equal(acv_cls_dataset_label(all, 10 + i), 1);
    }
    assert_int_equal(acv_cls_dataset_label(all, 0), 0);
    assert_int_equal(acv_cls_dataset_label(all, 24), 2);
    /* BMP pixel content survives */
    acv_image im;
    assert_int_equal(acv_cls_dataset_get(all, 0, 3, &im), 0); /* Dog/d00.Bmp, seed 100 */
    assert_int_equal(im.w, 7);
    assert_int_equal(im.h, 4);
    assert_int_equal(im.data[(2 * 7 + 3) * 3 + 0], 100 + 3);
    assert_int_equal(im.data[(2 * 7 + 3) * 3 + 1], 100 + 4);
    assert_int_equal(im.data[(2 * 7 + 3) * 3 + 2], 100 + 5);
    acv_image_free(&im);
    assert_int_equal(acv_cls_dataset_get(all, 0, 1, &im), 0);
    assert_int_equal(im.c, 1);
    acv_image_free(&im);

    /* stratified carve-out: 10/5/10 images with 0.2 -> 2/1/2 in val */
    acv_cls_dataset *tr, *va;
    assert_int_equal(acv_cls_dataset_open(root, "train", 0.2f, 3, &tr), 0);
    assert_int_equal(acv_cls_dataset_open(root, "val", 0.2f, 3, &va), 0);
    int counts[3];
    acv_cls_dataset_class_counts(va, counts);
    assert_int_equal(counts[0], 2);
    assert_int_equal(counts[1], 1);
    assert_int_equal(counts[2], 2);
    assert_int_equal(acv_cls_dataset_size(tr), 20);
    for (int i = 0; i < acv_cls_dataset_size(va); i++)
        for (int j = 0; j < acv_cls_dataset_size(tr); j++)
            assert_string_not_equal(acv_cls_dataset_path(va, i), acv_cls_dataset_path(tr, j));
    acv_cls_dataset_free(tr);
    acv_cls_dataset_free(va);

    /* no test/ folder */
    assert_int_equal(acv_cls_dataset_open(root, "test", 0.2f, 3, &tr), ACV_ENOTFOUND);
    assert_msg_has("no test split");
    assert_msg_has(root);
    acv_cls_dataset_free(all);
    rm_tree(root);
}

static void test_imagefolder_split_layout(void **state)
{
    (void)state;
    char *root = make_tmp();
    const char *cls[] = {"b", "a", "c"};
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < 4; i++) {
            char name[64];
            snprintf(name, sizeof name, "train/%s/%d.bmp", cls[c], i);
            mkdir_p(root, "train/a"); mkdir_p(root, "train/b"); mkdir_p(root, "train/c");
            write_bmp(root, name, 4, 4, c * 10 + i);
        }
    mkdir_p(root, "val/a");
    mkdir_p(root, "val/c");
    write_bmp(root, "val/a/v.bmp", 4, 4, 1);
    write_bmp(root, "val/c/v1.jpeg.bmp", 4, 4, 2);
    write_bmp(root, "val/c/v2.bmp", 4, 4, 3);
    mkdir_p(root, "test/b");
    write_bmp(root, "test/b/t.bmp", 4, 4, 4);

    acv_cls_dataset *tr, *va, *te;
    assert_int_equal(acv_cls_dataset_open(root, "train", 0.5f, 1, &tr), 0);
    assert_int_equal(acv_cls_dataset_size(tr), 12); /* explicit val/: nothing carved */
    assert_string_equal(acv_cls_dataset_class_name(tr, 0), "a");
    assert_string_equal(acv_cls_dataset_class_name(tr, 2), "c");
    assert_int_equal(acv_cls_dataset_open(root, "val", 0.5f, 1, &va), 0);
    assert_int_equal(acv_cls_dataset_size(va), 3);
    assert_int_equal(acv_cls_dataset_num_classes(va), 3);
    assert_int_equal(acv_cls_dataset_label(va, 0), 0);
    assert_int_equal(acv_cls_dataset_label(va, 1), 2);
    assert_int_equal(acv_cls_dataset_open(root, "test", 0.5f, 1, &te), 0);
    assert_int_equal(acv_cls_dataset_size(te), 1);
    assert_int_equal(acv_cls_dataset_label(te, 0), 1);
    acv_cls_dataset_free(tr);
    acv_cls_dataset_free(va);
    acv_cls_dataset_free(te);

    /* a class in val/ that train/ lacks */
    mkdir_p(root, "val/zebra");
    write_bmp(root, "val/zebra/z.bmp", 4, 4, 1);
    assert_int_equal(acv_cls_dataset_open(root, "val", 0.5f, 1, &va), ACV_EFORMAT);
    assert_msg_has("zebra");
    char *vdir = pj(root, "val");
    assert_int_equal(acv_remove_tree(vdir), 0);
    free(vdir);
    /* without val/: carved from train/, stratified (4 per class, 0.25 -> 1 each) */
    assert_int_equal(acv_cls_dataset_open(root, "val", 0.25f, 1, &va), 0);
    assert_int_equal(acv_cls_dataset_size(va), 3);
    int counts[3];
    acv_cls_dataset_class_counts(va, counts);
    for (int c = 0; c < 3; c++) assert_int_equal(counts[c], 1);
    acv_cls_dataset_free(va);
    assert_int_equal(acv_cls_dataset_open(root, "train", 0.25f, 1, &tr), 0);
    assert_int_equal(acv_cls_dataset_size(tr), 9);
    acv_cls_dataset_free(tr);
    /* without test/ */
    char *tdir = pj(root, "test");
    assert_int_equal(acv_remove_tree(tdir), 0);
    free(tdir);
    assert_int_equal(acv_cls_dataset_open(root, "test", 0.25f, 1, &te), ACV_ENOTFOUND);
    assert_msg_has("test");
    rm_tree(root);
}

static void test_imagefolder_errors(void **state)
{
    (void)state;
    char *root = make_tmp();
    acv_cls_dataset *ds = NULL;
    /* nothing at all */
    assert_int_equal(acv_cls_dataset_open(root, "train", 0.1f, 1, &ds), ACV_ENOTFOUND);
    assert_msg_has("no images");
    assert_null(ds);
    /* images but no class folders */
    write_bmp(root, "loose.bmp", 3, 3, 1);
    assert_int_equal(acv_cls_dataset_open(root, "train", 0.1f, 1, &ds), ACV_EFORMAT);
    assert_msg_has("class folder");
    /* an empty class folder (only non-images in it) */
    mkdir_p(root, "full");
    mkdir_p(root, "hollow");
    write_bmp(root, "full/1.bmp", 3, 3, 1);
    write_bmp(root, "full/2.bmp", 3, 3, 1);
    write_bytes(root, "hollow/readme.txt", "x", 1);
    assert_int_equal(acv_cls_dataset_open(root, "train", 0.1f, 1, &ds), ACV_EFORMAT);
    assert_msg_has("hollow");
    assert_msg_has("empty class folder");
    write_bmp(root, "hollow/1.bmp", 3, 3, 1);
    assert_int_equal(acv_cls_dataset_open(root, "train", 0.0f, 1, &ds), 0);
    assert_int_equal(acv_cls_dataset_size(ds), 3);
    acv_cls_dataset_free(ds);
    /* an unreadable class folder (permissions do not bind root) */
    if (geteuid() != 0) {
        char *h = pj(root, "hollow");
        assert_int_equal(chmod(h, 0), 0);
        assert_int_equal(acv_cls_dataset_open(root, "train", 0.0f, 1, &ds), ACV_EIO);
        assert_msg_has("hollow");
        assert_int_equal(chmod(h, 0755), 0);
        free(h);
    }
    /* missing path, a file instead of a folder */
    char *missing = pj(root, "nope");
    assert_int_equal(acv_cls_dataset_open(missing, "train", 0.1f, 1, &ds), ACV_ENOTFOUND);
    assert_msg_has(missing);
    free(missing);
    char *file = pj(root, "loose.bmp");
    assert_int_equal(acv_cls_dataset_open(file, "train", 0.1f, 1, &ds), ACV_EINVAL);
    free(file);
    rm_tree(root);
}

/* What users' folders hold besides images: macOS/Windows/NAS metadata is never read as an
 * image or a class; images in formats AutoCV does not read are left out but counted (and
 * named when a class holds nothing else); symlinks are followed, dangling ones skipped;
 * UTF-8 class names work, names that are not UTF-8 are refused unless classes.txt names
 * the classes; foreign classes in val/ are all named. */
static void test_imagefolder_odd_files(void **state)
{
    (void)state;
    char *root = make_tmp();
    mkdir_p(root, "bolt M6/deep/deeper");
    mkdir_p(root, "\xe8\x9e\xba\xe6\xaf\x8d"); /* 螺母 (nut) */
    mkdir_p(root, "__MACOSX/bolt M6");
    write_bmp(root, "bolt M6/a.BMP", 4, 4, 1);
    write_bmp(root, "bolt M6/deep/deeper/b.bmp", 4, 4, 2);
    write_bmp(root, "bolt M6/._a.BMP", 4, 4, 3); /* AppleDouble companions start with '.': hidden */
    write_bytes(root, "bolt M6/.DS_Store", "\0\0\0\1Bud1", 8);
    write_bytes(root, "bolt M6/Thumbs.db", "\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", 8);
    write_bytes(root, "bolt M6/desktop.ini", "[.ShellClassInfo]\r\n", 19);
    write_bytes(root, "bolt M6/c.webp", "RIFF\x10\0\0\0WEBPVP8 ", 16);
    write_bytes(root, "bolt M6/deep/d.TIF", "II*\0\x08\0\0\0", 8);
    write_bmp(root, "\xe8\x9e\xba\xe6\xaf\x8d/n.Bmp", 4, 4, 4);
    write_bytes(root, "Thumbs.db", "x", 1);
    write_bytes(root, ".DS_Store", "x", 1);
    char *target = pj(root, "bolt M6/a.BMP"), *link = pj(root, "\xe8\x9e\xba\xe6\xaf\x8d/link.bmp");
    char *dangling = pj(root, "\xe8\x9e\xba\xe6\xaf\x8d/gone.bmp");
    assert_int_equal(symlink(target, link), 0);
    assert_int_equal(symlink("/nonexistent/x.bmp", dangling), 0);
    free(target); free(link); free(dangling);

    /* metadata folders: a macOS zip's __MACOSX beside the classes, Synology's @eaDir of JPEG
     * thumbnails inside one */
    write_bytes(root, "__MACOSX/bolt M6/._a.BMP", "\0\x05\x16\x07", 4);
    mkdir_p(root, "bolt M6/@eaDir/a.BMP");
    write_bmp(root, "bolt M6/@eaDir/a.BMP/SYNOPHOTO_THUMB_S.bmp", 2, 2, 7);

    acv_cls_dataset *ds;
    assert_int_equal(acv_cls_dataset_open(root, "train", 0.0f, 1, &ds), 0);
    assert_int_equal(acv_cls_dataset_num_classes(ds), 2);
    assert_string_equal(acv_cls_dataset_class_name(ds, 0), "bolt M6");
    assert_string_equal(acv_cls_dataset_class_name(ds, 1), "\xe8\x9e\xba\xe6\xaf\x8d");
    assert_int_equal(acv_cls_dataset_size(ds), 4); /* a.BMP, deep/deeper/b.bmp, link.bmp, n.Bmp */
    const char *first = NULL;
    assert_int_equal(acv_cls_dataset_other_files(ds, &first), 2);
    assert_non_null(first);
    assert_non_null(strstr(first, "bolt M6/"));
    for (int i = 0; i < 4; i++) {
        acv_image im;
        if (acv_cls_dataset_get(ds, i, 3, &im)) fail_msg("%s", acv_errmsg());
        acv_image_free(&im);
    }
    acv_cls_dataset_free(ds);

    /* a class holding only images AutoCV cannot read: refused, naming one of them */
    mkdir_p(root, "washer");
    write_bytes(root, "washer/w.heic", "\0\0\0\x18" "ftypheic", 12);
    assert_int_equal(acv_cls_dataset_open(root, "train", 0.0f, 1, &ds), ACV_EFORMAT);
    assert_msg_has("washer: empty class folder");
    assert_msg_has("w.heic");
    write_bmp(root, "washer/w.bmp", 4, 4, 5);

    /* a folder name that is not UTF-8 (a Latin-1 archive): refused at once, not after training */
    mkdir_p(root, "caf\xe9");
    write_bmp(root, "caf\xe9/1.bmp", 4, 4, 6);
    assert_int_equal(acv_cls_dataset_open(root, "train", 0.0f, 1, &ds), ACV_EFORMAT);
    assert_msg_has("caf?");
    assert_msg_has("not valid UTF-8");
    assert_msg_has("classes.txt");
    /* ... unless classes.txt names the classes (sorted folder order: "bolt M6", "caf\xe9", "washer", nut) */
    write_bytes(root, "classes.txt", "bolt M6\ncafe\nwasher\nnut\n", 24);
    assert_int_equal(acv_cls_dataset_open(root, "train", 0.0f, 1, &ds), 0);
    assert_string_equal(acv_cls_dataset_class_name(ds, 1), "cafe");
    acv_cls_dataset_free(ds);
    rm_tree(root);

    /* train/ + val/ with foreign classes: all of them named, with the training classes */
    root = make_tmp();
    const char *tr[] = {"a", "b"}, *va[] = {"a", "c", "d"};
    char rel[64];
    for (int i = 0; i < 2; i++) {
        snprintf(rel, sizeof rel, "train/%s", tr[i]);
        mkdir_p(root, rel);
        snprintf(rel, sizeof rel, "train/%s/1.bmp", tr[i]);
        write_bmp(root, rel, 4, 4, i);
    }
    for (int i = 0; i < 3; i++) {
        snprintf(rel, sizeof rel, "val/%s", va[i]);
        mkdir_p(root, rel);
        snprintf(rel, sizeof rel, "val/%s/1.bmp", va[i]);
        write_bmp(root, rel, 4, 4, i);
    }
    assert_int_equal(acv_cls_dataset_open(root, "val", 0.0f, 1, &ds), ACV_EFORMAT);
    assert_msg_has("2 class folders are not among the training classes: \"c\", \"d\"");
    assert_msg_has("the training classes are \"a\", \"b\"");
    /* an empty class folder in val/ means the class is absent there (the platform writes
     * every class folder in every split): here the first two of three */
    char *vd = pj(root, "val/d");
    assert_int_equal(acv_remove_tree(vd), 0);
    free(vd);
    mkdir_p(root, "train/c");
    write_bmp(root, "train/c/1.bmp", 4, 4, 8);
    mkdir_p(root, "val/b");
    char *va1 = pj(root, "val/a/1.bmp");
    assert_int_equal(unlink(va1), 0);
    free(va1);
    assert_int_equal(acv_cls_dataset_open(root, "val", 0.0f, 1, &ds), 0);
    assert_int_equal(acv_cls_dataset_size(ds), 1);
    assert_int_equal(acv_cls_dataset_num_classes(ds), 3);
    assert_int_equal(acv_cls_dataset_label(ds, 0), 2);
    acv_cls_dataset_free(ds);
    /* ... but in train/ it is an error */
    char *tb = pj(root, "train/b/1.bmp");
    assert_int_equal(unlink(tb), 0);
    free(tb);
    assert_int_equal(acv_cls_dataset_open(root, "train", 0.0f, 1, &ds), ACV_EFORMAT);
    assert_msg_has("train/b: empty class folder");
    rm_tree(root);
}

/* ---- loader ----------------------------------------------------------------------- */

/* n gray 8x8 images with varied content, label i % 5. */
static acv_cls_dataset *memory_dataset(int n)
{
    const char *names[] = {"a", "b", "c", "d", "e"};
    uint8_t *pix = malloc((size_t)n * 64);
    int *labels = malloc((size_t)n * sizeof *labels);
    assert_true(pix && labels);
    for (int i = 0; i < n; i++) {
        labels[i] = i % 5;
        for (int j = 0; j < 64; j++) pix[i * 64 + j] = (uint8_t)((i * 37 + j * 11 + (j / 8) * (j % 8)) & 255);
    }
    acv_cls_dataset *ds;
    assert_int_equal(acv_cls_dataset_new_memory(names, 5, pix, n, 8, 8, 1, labels, &ds), 0);
    free(pix);
    free(labels);
    return ds;
}

static void augment_config(acv_loader_config *cfg)
{
    acv_loader_config_default(cfg);
    cfg->batch = 7;
    cfg->seed = 42;
    cfg->out_c = 3;
    cfg->out_h = 12;
    cfg->out_w = 10;
    for (int c = 0; c < 3; c++) { cfg->mean[c] = 0.5f; cfg->std[c] = 0.25f; }
    cfg->rrc_scale_lo = 0.5f;
    cfg->rrc_scale_hi = 1.0f;
    cfg->pad_crop = 2;
    cfg->hflip = 0.5f;
    cfg->rotate_deg = 15.0f;
    cfg->jitter_brightness = 0.3f;
    cfg->jitter_contrast = 0.3f;
    cfg->jitter_saturation = 0.3f;
    cfg->jitter_hue = 0.1f;
    cfg->erase_p = 0.5f;
    cfg->mixup_alpha = 0.2f;
    cfg->cutmix_alpha = 1.0f;
}

/* Runs one epoch, appending every batch's x/labels/soft/index to the given buffers.
 * Returns the number of samples; *nb gets the number of batches. */
static int run_epoch(acv_loader *l, int epoch, float *xs, int *idx, float *soft, int *sizes, int *nb)
{
    acv_loader_start_epoch(l, epoch);
    acv_batch b;
    int total = 0, rc, batches = 0;
    while ((rc = acv_loader_next(l, &b)) == 1) {
        size_t chw = (size_t)b.c * b.h * b.w;
        if (xs) memcpy(xs + (size_t)total * chw, b.x, (size_t)b.n * chw * sizeof *xs);
        if (soft) {
            assert_non_null(b.soft);
            memcpy(soft + (size_t)total * b.k, b.soft, (size_t)b.n * b.k * sizeof *soft);
        }
        for (int i = 0; i < b.n; i++) {
            idx[total + i] = b.index[i];
            assert_true(b.labels[i] >= 0 && b.labels[i] < b.k);
        }
        if (sizes) sizes[batches] = b.n;
        total += b.n;
        batches++;
    }
    assert_int_equal(rc, 0);
    assert_int_equal(acv_loader_next(l, &b), 0); /* stays at the end */
    if (nb) *nb = batches;
    return total;
}

static void test_loader_determinism(void **state)
{
    (void)state;
    acv_cls_dataset *ds = memory_dataset(50);
    acv_loader_config cfg;
    augment_config(&cfg);
    size_t chw = 3 * 12 * 10;
    float *xa = malloc(50 * chw * sizeof *xa), *xb = malloc(50 * chw * sizeof *xb);
    float *sa = malloc(50 * 5 * sizeof *sa), *sb = malloc(50 * 5 * sizeof *sb);
    int ia[50], ib[50], sizes[16], nb;
    assert_true(xa && xb && sa && sb);

    acv_loader *l1, *l3;
    cfg.threads = 1;
    cfg.prefetch = 1;
    assert_int_equal(acv_loader_new(ds, &cfg, &l1), 0);
    cfg.threads = 3;
    cfg.prefetch = 2;
    assert_int_equal(acv_loader_new(ds, &cfg, &l3), 0);
    assert_int_equal(acv_loader_num_batches(l1), 8);
    for (int epoch = 0; epoch < 2; epoch++) {
        assert_int_equal(run_epoch(l1, epoch, xa, ia, sa, sizes, &nb), 50);
        assert_int_equal(nb, 8);
        assert_int_equal(sizes[7], 1); /* 50 = 7 * 7 + 1 */
        assert_int_equal(run_epoch(l3, epoch, xb, ib, sb, NULL, NULL), 50);
        assert_memory_equal(ia, ib, sizeof ia);
        assert_memory_equal(xa, xb, 50 * chw * sizeof *xa);
        assert_memory_equal(sa, sb, 50 * 5 * sizeof *sa);
        /* every sample exactly once */
        int seen[50] = {0};
        for (int i = 0; i < 50; i++) seen[ia[i]]++;
        for (int i = 0; i < 50; i++) assert_int_equal(seen[i], 1);
        /* soft targets are distributions */
        for (int i = 0; i < 50; i++) {
            float s = 0;
            for (int c = 0; c < 5; c++) { assert_true(sa[i * 5 + c] >= 0.0f); s += sa[i * 5 + c]; }
            assert_float_equal(s, 1.0f, 1e-5);
        }
        for (size_t j = 0; j < 50 * chw; j++) assert_true(isfinite(xa[j]));
    }
    /* the order changes between epochs but each epoch is reproducible */
    int i0[50], i1[50];
    run_epoch(l1, 0, NULL, i0, NULL, NULL, NULL);
    run_epoch(l1, 1, NULL, i1, NULL, NULL, NULL);
    assert_memory_not_equal(i0, i1, sizeof i0);
    assert_memory_equal(i1, ia, sizeof i1);
    /* restarting an epoch in the middle gives the same batches as a fresh start */
    acv_loader_start_epoch(l3, 1);
    acv_batch b;
    assert_int_equal(acv_loader_next(l3, &b), 1);
    assert_int_equal(acv_loader_next(l3, &b), 1);
    assert_int_equal(run_epoch(l3, 1, xb, ib, NULL, NULL, NULL), 50);
    assert_memory_equal(xa, xb, 50 * chw * sizeof *xa);
    acv_loader_free(l1);
    acv_loader_free(l3);

    /* another seed gives other augmentations */
    cfg.seed = 43;
    assert_int_equal(acv_loader_new(ds, &cfg, &l1), 0);
    run_epoch(l1, 1, xb, ib, NULL, NULL, NULL);
    assert_memory_not_equal(xa, xb, 50 * chw * sizeof *xa);
    acv_loader_free(l1);
    free(xa); free(xb); free(sa); free(sb);
    acv_cls_dataset_free(ds);
}

static void test_loader_order_and_drop_last(void **state)
{
    (void)state;
    acv_cls_dataset *ds = memory_dataset(23);
    acv_loader_config cfg;
    acv_loader_config_default(&cfg);
    cfg.batch = 5;
    cfg.out_c = 1;
    cfg.out_h = cfg.out_w = 8;
    cfg.shuffle = 0;
    cfg.threads = 2;
    cfg.eval = 1;
    acv_loader *l;
    assert_int_equal(acv_loader_new(ds, &cfg, &l), 0);
    acv_batch b;
    assert_int_equal(acv_loader_next(l, &b), ACV_EINVAL); /* no epoch started */
    int idx[23], sizes[8], nb;
    float *x = malloc(23 * 64 * sizeof *x);
    assert_int_equal(run_epoch(l, 0, x, idx, NULL, sizes, &nb), 23);
    assert_int_equal(nb, 5);
    assert_int_equal(sizes[4], 3);
    for (int i = 0; i < 23; i++) assert_int_equal(idx[i], i); /* no shuffle: dataset order */
    /* eval at the stored size is exact normalization: v / 255 */
    acv_image im;
    assert_int_equal(acv_cls_dataset_get(ds, 17, 1, &im), 0);
    for (int j = 0; j < 64; j++) assert_float_equal(x[17 * 64 + j], im.data[j] / 255.0f, 1e-6);
    acv_image_free(&im);
    acv_loader_free(l);

    cfg.drop_last = 1;
    cfg.shuffle = 1;
    assert_int_equal(acv_loader_new(ds, &cfg, &l), 0);
    assert_int_equal(acv_loader_num_batches(l), 4);
    assert_int_equal(run_epoch(l, 3, NULL, idx, NULL, sizes, &nb), 20);
    assert_int_equal(nb, 4);
    for (int i = 0; i < 4; i++) assert_int_equal(sizes[i], 5);
    int seen[23] = {0};
    for (int i = 0; i < 20; i++) seen[idx[i]]++;
    for (int i = 0; i < 23; i++) assert_true(seen[i] <= 1);
    /* freeing mid-epoch joins cleanly */
    acv_loader_start_epoch(l, 4);
    assert_int_equal(acv_loader_next(l, &b), 1);
    acv_loader_free(l);

    /* bad configuration names the field */
    cfg.out_c = 2;
    assert_int_equal(acv_loader_new(ds, &cfg, &l), ACV_EINVAL);
    assert_msg_has("out_c");
    cfg.out_c = 1;
    cfg.hflip = 1.5f;
    assert_int_equal(acv_loader_new(ds, &cfg, &l), ACV_EINVAL);
    assert_msg_has("hflip");
    free(x);
    acv_cls_dataset_free(ds);
}

static void test_loader_eval_center_crop(void **state)
{
    (void)state;
    /* 40x20 image; RRC-style eval at 8x8 with crop fraction 0.5: resized to cover
     * 16x16 (32x16), centre crop 8x8. */
    char *root = make_tmp();
    mkdir_p(root, "only");
    write_bmp(root, "only/a.bmp", 40, 20, 9);
    acv_cls_dataset *ds;
    assert_int_equal(acv_cls_dataset_open(root, "train", 0.0f, 0, &ds), 0);
    acv_loader_config cfg;
    acv_loader_config_default(&cfg);
    cfg.batch = 1;
    cfg.out_c = 3;
    cfg.out_h = cfg.out_w = 8;
    cfg.eval = 1;
    cfg.rrc_scale_lo = 0.08f;
    cfg.rrc_scale_hi = 1.0f;
    cfg.eval_crop_frac = 0.5f;
    cfg.hflip = 1.0f; /* ignored in eval */
    acv_loader *l;
    assert_int_equal(acv_loader_new(ds, &cfg, &l), 0);
    acv_loader_start_epoch(l, 0);
    acv_batch b;
    assert_int_equal(acv_loader_next(l, &b), 1);
    assert_int_equal(b.n, 1);
    assert_null(b.soft);
    /* red = seed + x grows left to right in the source; after a 0.8 downscale and a
     * centred crop, red still grows with x and sits near the source centre */
    const float *red = b.x;
    for (int x = 1; x < 8; x++) assert_true(red[x] > red[x - 1]);
    float mid = (red[3] + red[4]) / 2 * 255.0f;
    assert_true(mid > 9 + 17 && mid < 9 + 23);
    /* single-image preprocessing with the exported geometry gives the same tensor */
    acv_image im;
    assert_int_equal(acv_cls_dataset_get(ds, 0, 3, &im), 0);
    assert_int_equal(acv_loader_eval_geometry(&cfg, &im), 0);
    assert_int_equal(im.w, 8);
    assert_int_equal(im.h, 8);
    float single[3 * 64];
    acv_img_to_tensor(&im, single, cfg.mean, cfg.std);
    assert_memory_equal(single, b.x, sizeof single);
    acv_image_free(&im);
    assert_int_equal(acv_loader_next(l, &b), 0);
    acv_loader_free(l);
    acv_cls_dataset_free(ds);
    rm_tree(root);
}

static void test_loader_skips_corrupt(void **state)
{
    (void)state;
    char *root = make_tmp();
    mkdir_p(root, "x");
    mkdir_p(root, "y");
    for (int i = 0; i < 6; i++) {
        char name[32];
        snprintf(name, sizeof name, "x/%d.bmp", i);
        write_bmp(root, name, 9, 9, i);
        snprintf(name, sizeof name, "y/%d.png", i);
        write_png(root, name, 9, 9, 3, i);
    }
    write_corrupt(root, "x/bad1.png");
    write_corrupt(root, "y/bad2.jpg");
    acv_cls_dataset *ds;
    assert_int_equal(acv_cls_dataset_open(root, "train", 0.0f, 0, &ds), 0);
    assert_int_equal(acv_cls_dataset_size(ds), 14);
    acv_loader_config cfg;
    augment_config(&cfg);
    cfg.batch = 4;
    cfg.out_h = cfg.out_w = 8;
    cfg.mixup_alpha = cfg.cutmix_alpha = 0;
    int sizes[8], nb, ia[14], ib[14];
    float *xa = malloc(14 * 192 * sizeof *xa), *xb = malloc(14 * 192 * sizeof *xb);
    acv_loader *l;
    for (int t = 1; t <= 3; t += 2) {
        cfg.threads = t;
        assert_int_equal(acv_loader_new(ds, &cfg, &l), 0);
        assert_int_equal(run_epoch(l, 0, t == 1 ? xa : xb, t == 1 ? ia : ib, NULL, sizes, &nb), 12);
        assert_int_equal(nb, 3);
        assert_int_equal(sizes[0], 4);
        assert_int_equal(sizes[1], 4);
        assert_int_equal(sizes[2], 4);
        assert_int_equal(acv_loader_skipped(l), 2);
        assert_true(strstr(acv_loader_first_error(l), "bad1.png") || strstr(acv_loader_first_error(l), "bad2.jpg"));
        for (int i = 0; i < 12; i++) assert_null(strstr(acv_cls_dataset_path(ds, (t == 1 ? ia : ib)[i]), "bad"));
        run_epoch(l, 1, NULL, ia, NULL, NULL, NULL);
        assert_int_equal(acv_loader_skipped(l), 4); /* counted since creation */
        acv_loader_free(l);
    }
    free(xa);
    free(xb);
    acv_cls_dataset_free(ds);

    /* mostly corrupt: an error, not an endless skip */
    for (int i = 0; i < 8; i++) {
        char name[32];
        snprintf(name, sizeof name, "x/junk%d.bmp", i);
        write_corrupt(root, name);
        snprintf(name, sizeof name, "y/junk%d.bmp", i);
        write_corrupt(root, name);
    }
    assert_int_equal(acv_cls_dataset_open(root, "train", 0.0f, 0, &ds), 0);
    assert_int_equal(acv_cls_dataset_size(ds), 30);
    cfg.threads = 2;
    assert_int_equal(acv_loader_new(ds, &cfg, &l), 0);
    acv_loader_start_epoch(l, 0);
    acv_batch b;
    int rc;
    while ((rc = acv_loader_next(l, &b)) == 1) {}
    assert_true(rc < 0);
    assert_msg_has("more than half");
    assert_true(acv_loader_next(l, &b) < 0); /* sticky for the epoch */
    acv_loader_free(l);
    acv_cls_dataset_free(ds);
    rm_tree(root);
}

/* ---- the installed Fashion-MNIST -------------------------------------------------- */

static void test_fashion_mnist(void **state)
{
    (void)state;
    if (!acv_path_exists(FMNIST "/train-images-idx3-ubyte.gz")) {
        print_message("skipped: " FMNIST " is not installed\n");
        skip();
    }
    acv_cls_dataset *tr, *te, *va;
    assert_int_equal(acv_cls_dataset_open(FMNIST, "train", 0.0f, 0, &tr), 0);
    assert_int_equal(acv_cls_dataset_open(FMNIST, "test", 0.0f, 0, &te), 0);
    assert_int_equal(acv_cls_dataset_size(tr), 60000);
    assert_int_equal(acv_cls_dataset_size(te), 10000);
    assert_int_equal(acv_cls_dataset_num_classes(tr), 10);
    assert_string_equal(acv_cls_dataset_class_name(tr, 0), "T-shirt/top");
    assert_string_equal(acv_cls_dataset_class_name(tr, 9), "Ankle boot");
    const int tr_first[] = {9, 0, 0, 3, 0, 2, 7, 2, 5, 5, 0, 9};
    const int te_first[] = {9, 2, 1, 1, 6, 1, 4, 6, 5, 7, 4, 5};
    for (int i = 0; i < 12; i++) {
        assert_int_equal(acv_cls_dataset_label(tr, i), tr_first[i]);
        assert_int_equal(acv_cls_dataset_label(te, i), te_first[i]);
    }
    int counts[10];
    acv_cls_dataset_class_counts(tr, counts);
    for (int c = 0; c < 10; c++) assert_int_equal(counts[c], 6000);
    acv_image im;
    assert_int_equal(acv_cls_dataset_get(tr, 0, 0, &im), 0);
    assert_int_equal(im.w, 28);
    assert_int_equal(im.h, 28);
    assert_int_equal(im.c, 1);
    long sum = 0;
    for (int j = 0; j < 784; j++) sum += im.data[j];
    assert_int_equal(sum, 76247);
    acv_image_free(&im);
    acv_cls_dataset_free(tr);

    assert_int_equal(acv_cls_dataset_open(FMNIST, "val", 0.1f, 5, &va), 0);
    assert_int_equal(acv_cls_dataset_size(va), 6000);
    acv_cls_dataset_class_counts(va, counts);
    for (int c = 0; c < 10; c++) assert_int_equal(counts[c], 600);
    assert_int_equal(acv_cls_dataset_open(FMNIST, "train", 0.1f, 5, &tr), 0);
    assert_int_equal(acv_cls_dataset_size(tr), 54000);

    /* a few loader batches at MNIST-style settings */
    acv_loader_config cfg;
    acv_loader_config_default(&cfg);
    cfg.batch = 128;
    cfg.threads = 2;
    cfg.out_c = 1;
    cfg.out_h = cfg.out_w = 28;
    cfg.mean[0] = 0.2860f;
    cfg.std[0] = 0.3530f;
    cfg.pad_crop = 2;
    cfg.hflip = 0.5f;
    acv_loader *l;
    assert_int_equal(acv_loader_new(tr, &cfg, &l), 0);
    assert_int_equal(acv_loader_num_batches(l), 422);
    acv_loader_start_epoch(l, 0);
    acv_batch b;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(acv_loader_next(l, &b), 1);
        assert_int_equal(b.n, 128);
        assert_int_equal(b.c * b.h * b.w, 784);
        double m = 0;
        for (int j = 0; j < 128 * 784; j++) m += b.x[j];
        m /= 128 * 784;
        assert_true(m > -0.5 && m < 0.5); /* roughly normalized (pad zeros pull it down) */
    }
    acv_loader_free(l);
    acv_cls_dataset_free(tr);
    acv_cls_dataset_free(va);
    acv_cls_dataset_free(te);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idx_roundtrip),
        cmocka_unit_test(test_idx_malformed),
        cmocka_unit_test(test_idx_dataset_splits),
        cmocka_unit_test(test_imagefolder_flat),
        cmocka_unit_test(test_imagefolder_split_layout),
        cmocka_unit_test(test_imagefolder_errors),
        cmocka_unit_test(test_imagefolder_odd_files),
        cmocka_unit_test(test_loader_determinism),
        cmocka_unit_test(test_loader_order_and_drop_last),
        cmocka_unit_test(test_loader_eval_center_crop),
        cmocka_unit_test(test_loader_skips_corrupt),
        cmocka_unit_test(test_fashion_mnist),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
