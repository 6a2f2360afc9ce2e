/* The detection batch loader over an in-memory acv_det_dataset of PNG files written to a
 * mkdtemp folder: eval letterbox geometry and normalization, bitwise determinism across 1 and
 * 3 workers (and change across epochs and seeds), mosaic batches whose boxes sit on their
 * colours, train == eval when every augmentation is switched off (set_aug), unreadable and
 * mis-sized images skipped and counted, option errors, and the throughput of 320 px mosaic
 * batches on 2 workers (printed). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "autocv/error.h"
#include "base/file.h"
#include "data/det_loader.h"
#include "vision/image.h"

#define BG 30
#define NCOL 12
static const uint8_t COLORS[NCOL][3] = {
    {255, 0, 0},   {0, 255, 0},   {0, 0, 255},   {255, 255, 0}, {255, 0, 255}, {0, 255, 255},
    {255, 128, 0}, {128, 0, 255}, {0, 128, 255}, {255, 0, 128}, {128, 255, 0}, {0, 255, 128},
};

/* A dataset of n images; image i is w x h with up to 3 rectangles, rectangle colour = class. */
typedef struct fixture {
    char *dir;
    acv_det_dataset ds;
} fixture;

static void add_image(fixture *f, int i, int w, int h, int seed)
{
    acv_image im;
    assert_int_equal(acv_image_alloc(&im, w, h, 3), 0);
    memset(im.data, BG, (size_t)w * h * 3);
    acv_det_image *di = &f->ds.images[i];
    di->boxes = calloc(3, sizeof *di->boxes);
    assert_non_null(di->boxes);
    /* three rectangles in separate thirds of the image */
    for (int r = 0; r < 3; r++) {
        int k = (seed * 5 + r * 4) % NCOL;
        int x1 = (r * w) / 3 + 2 + seed % 5, x2 = x1 + w / 4;
        int y1 = (r % 2 ? h / 2 : 4) + seed % 3, y2 = y1 + h / 3;
        for (int y = y1; y < y2; y++)
            for (int x = x1; x < x2; x++) memcpy(im.data + ((size_t)y * w + x) * 3, COLORS[k], 3);
        di->boxes[r] = (acv_box){.x1 = (float)x1, .y1 = (float)y1, .x2 = (float)x2, .y2 = (float)y2, .cls = k,
                                 .score = 1};
    }
    di->n = 3;
    char name[32];
    snprintf(name, sizeof name, "img%03d.png", i);
    di->path = acv_path_join(f->dir, name);
    di->file_name = strdup(name);
    di->id = i + 1;
    di->w = w;
    di->h = h;
    assert_int_equal(acv_image_save_png(&im, di->path), 0);
    acv_image_free(&im);
}

static void fixture_make(fixture *f, int n, int base_w, int base_h)
{
    char tmpl[] = "/tmp/acv-test-detload-XXXXXX";
    char *d = mkdtemp(tmpl);
    assert_non_null(d);
    f->dir = strdup(d);
    memset(&f->ds, 0, sizeof f->ds);
    snprintf(f->ds.format, sizeof f->ds.format, "coco");
    f->ds.k = NCOL;
    f->ds.n = n;
    f->ds.images = calloc((size_t)n, sizeof *f->ds.images);
    assert_non_null(f->ds.images);
    /* base x 3/4 base, 3/4 base x base, 4/5 base square: with base 160 the letterbox scale
     * to 128 is exact (0.8: 128 x 96) */
    for (int i = 0; i < n; i++) {
        int w = i % 3 == 1 ? base_w * 3 / 4 : base_w, h = i % 3 == 0 ? base_h * 3 / 4 : base_h;
        if (i % 3 == 2) w = h = base_w * 4 / 5;
        add_image(f, i, w, h, i);
    }
}

static void fixture_free(fixture *f)
{
    for (int i = 0; i < f->ds.n; i++) {
        if (f->ds.images[i].path) remove(f->ds.images[i].path);
        free(f->ds.images[i].path);
        free(f->ds.images[i].file_name);
        free(f->ds.images[i].boxes);
    }
    free(f->ds.images);
    remove(f->dir);
    free(f->dir);
}

/* Everything one epoch produced, for comparisons. */
typedef struct epoch_out {
    int nb, nimg, nbox;
    float *x;          /* (nimg, 3, S, S) */
    acv_box *boxes;    /* (nbox) */
    int *nper;         /* (nimg) boxes per image */
    acv_det_item *items;
} epoch_out;

static void run_epoch(acv_det_loader *l, int epoch, int S, int cap_imgs, epoch_out *e)
{
    size_t chw = (size_t)3 * S * S;
    memset(e, 0, sizeof *e);
    e->x = malloc((size_t)cap_imgs * chw * sizeof(float));
    e->boxes = malloc((size_t)cap_imgs * 64 * sizeof(acv_box));
    e->nper = malloc((size_t)cap_imgs * sizeof(int));
    e->items = malloc((size_t)cap_imgs * sizeof *e->items);
    acv_det_loader_epoch(l, epoch);
    acv_det_batch b;
    int rc;
    while ((rc = acv_det_loader_next(l, &b)) == 1) {
        assert_int_equal(b.c, 3);
        assert_int_equal(b.h, S);
        assert_int_equal(b.w, S);
        assert_int_equal(b.box_start[0], 0);
        assert_int_equal(b.box_start[b.n], b.nbox);
        for (int i = 0; i < b.n; i++) {
            assert_true(e->nimg < cap_imgs);
            memcpy(e->x + (size_t)e->nimg * chw, b.x + (size_t)i * chw, chw * sizeof(float));
            int n = b.box_start[i + 1] - b.box_start[i];
            assert_true(n >= 0 && e->nbox + n <= cap_imgs * 64);
            memcpy(e->boxes + e->nbox, b.boxes + b.box_start[i], (size_t)n * sizeof(acv_box));
            e->nper[e->nimg] = n;
            e->items[e->nimg] = b.items[i];
            e->nbox += n;
            e->nimg++;
        }
        e->nb++;
    }
    assert_int_equal(rc, 0);
    assert_int_equal(acv_det_loader_next(l, &b), 0);
}

static void epoch_free(epoch_out *e)
{
    free(e->x);
    free(e->boxes);
    free(e->nper);
    free(e->items);
}

static int epochs_equal(const epoch_out *a, const epoch_out *b, int S)
{
    if (a->nb != b->nb || a->nimg != b->nimg || a->nbox != b->nbox) return 0;
    if (memcmp(a->x, b->x, (size_t)a->nimg * 3 * S * S * sizeof(float))) return 0;
    if (memcmp(a->boxes, b->boxes, (size_t)a->nbox * sizeof(acv_box))) return 0;
    if (memcmp(a->nper, b->nper, (size_t)a->nimg * sizeof(int))) return 0;
    return memcmp(a->items, b->items, (size_t)a->nimg * sizeof *a->items) == 0;
}

static float px(const epoch_out *e, int img, int S, int c, int x, int y)
{
    return e->x[(((size_t)img * 3 + c) * S + y) * S + x];
}

static int is_color_at(const epoch_out *e, int img, int S, int x, int y, int k)
{
    for (int c = 0; c < 3; c++)
        if (fabsf(px(e, img, S, c, x, y) * 255.0f - COLORS[k][c]) > 0.01f) return 0;
    return 1;
}

/* ---- tests ------------------------------------------------------------------------ */

static void test_eval_letterbox(void **state)
{
    (void)state;
    fixture f;
    fixture_make(&f, 7, 160, 160); /* 160x128, 128x160, 128x128 */
    acv_det_loader_opts o;
    acv_det_loader_opts_default(&o);
    o.train = 0;
    o.batch = 3;
    o.imgsz = 128;
    o.shuffle = 0;
    o.workers = 2;
    acv_det_loader *l;
    assert_int_equal(acv_det_loader_new(&f.ds, &o, &l), 0);
    assert_int_equal(acv_det_loader_num_batches(l), 3);
    epoch_out e;
    run_epoch(l, 0, 128, 7, &e);
    assert_int_equal(e.nb, 3); /* 3 + 3 + 1 */
    assert_int_equal(e.nimg, 7);
    int bi = 0;
    for (int i = 0; i < 7; i++) {
        const acv_det_image *di = &f.ds.images[i];
        const acv_det_item *it = &e.items[i];
        assert_int_equal(it->index, i);
        assert_int_equal(it->orig_w, di->w);
        assert_int_equal(it->orig_h, di->h);
        float s = 128.0f / (di->w > di->h ? di->w : di->h);
        assert_float_equal(it->lb.scale, s, 1e-6);
        assert_int_equal(it->lb.pad_x, (128 - (int)lroundf(di->w * s)) / 2);
        assert_int_equal(it->lb.pad_y, (128 - (int)lroundf(di->h * s)) / 2);
        assert_int_equal(e.nper[i], 3);
        for (int j = 0; j < 3; j++, bi++) {
            const acv_box *b = &e.boxes[bi], *g = &di->boxes[j];
            assert_int_equal(b->cls, g->cls);
            assert_float_equal(b->x1, g->x1 * s + it->lb.pad_x, 1e-4);
            assert_float_equal(b->y1, g->y1 * s + it->lb.pad_y, 1e-4);
            assert_float_equal(b->x2, g->x2 * s + it->lb.pad_x, 1e-4);
            assert_float_equal(b->y2, g->y2 * s + it->lb.pad_y, 1e-4);
            assert_true(is_color_at(&e, i, 128, (int)((b->x1 + b->x2) / 2), (int)((b->y1 + b->y2) / 2), b->cls));
        }
        /* padding is gray 114 */
        if (it->lb.pad_x > 0) assert_float_equal(px(&e, i, 128, 0, 0, 64), 114.0f / 255.0f, 1e-6);
        if (it->lb.pad_y > 0) assert_float_equal(px(&e, i, 128, 1, 64, 127), 114.0f / 255.0f, 1e-6);
    }
    epoch_free(&e);
    acv_det_loader_free(l);

    /* mean / std, drop_last */
    o.mean[0] = 0.5f;
    o.std[0] = 0.25f;
    o.drop_last = 1;
    assert_int_equal(acv_det_loader_new(&f.ds, &o, &l), 0);
    assert_int_equal(acv_det_loader_num_batches(l), 2);
    run_epoch(l, 0, 128, 7, &e);
    assert_int_equal(e.nimg, 6);
    assert_float_equal(px(&e, 0, 128, 0, 64, 0), (114.0f / 255.0f - 0.5f) / 0.25f, 1e-5); /* pad_y 16 */
    assert_float_equal(px(&e, 0, 128, 1, 64, 0), 114.0f / 255.0f, 1e-6);
    epoch_free(&e);
    acv_det_loader_free(l);
    fixture_free(&f);
}

static void test_determinism_workers(void **state)
{
    (void)state;
    fixture f;
    fixture_make(&f, 10, 160, 160);
    acv_det_loader_opts o;
    acv_det_loader_opts_default(&o);
    o.batch = 4;
    o.imgsz = 96;
    o.seed = 7;
    o.aug.degrees = 5;
    acv_det_loader *l1, *l3;
    o.workers = 1;
    assert_int_equal(acv_det_loader_new(&f.ds, &o, &l1), 0);
    o.workers = 3;
    o.prefetch = 1;
    assert_int_equal(acv_det_loader_new(&f.ds, &o, &l3), 0);
    epoch_out a, b, c;
    run_epoch(l1, 0, 96, 10, &a);
    run_epoch(l3, 0, 96, 10, &b);
    assert_int_equal(a.nimg, 10);
    assert_true(a.nbox > 0);
    assert_true(epochs_equal(&a, &b, 96));
    epoch_free(&b);
    /* a later epoch differs; coming back to epoch 0 (even mid-epoch) reproduces it */
    run_epoch(l3, 1, 96, 10, &b);
    assert_false(epochs_equal(&a, &b, 96));
    epoch_free(&b);
    acv_det_loader_epoch(l3, 1);
    acv_det_batch bb;
    assert_int_equal(acv_det_loader_next(l3, &bb), 1);
    run_epoch(l3, 0, 96, 10, &c);
    assert_true(epochs_equal(&a, &c, 96));
    epoch_free(&c);
    acv_det_loader_free(l3);
    /* another seed differs */
    o.seed = 8;
    assert_int_equal(acv_det_loader_new(&f.ds, &o, &l3), 0);
    run_epoch(l3, 0, 96, 10, &c);
    assert_false(epochs_equal(&a, &c, 96));
    epoch_free(&c);
    epoch_free(&a);
    acv_det_loader_free(l3);
    acv_det_loader_free(l1);
    fixture_free(&f);
}

static void test_mosaic_boxes_on_colours(void **state)
{
    (void)state;
    fixture f;
    fixture_make(&f, 9, 200, 200);
    acv_det_loader_opts o;
    acv_det_loader_opts_default(&o);
    o.batch = 5;
    o.imgsz = 128;
    o.workers = 2;
    o.aug.hsv_h = o.aug.hsv_s = o.aug.hsv_v = 0; /* exact colours */
    o.aug.flipud = 0.5f;
    acv_det_loader *l;
    assert_int_equal(acv_det_loader_new(&f.ds, &o, &l), 0);
    int checked = 0;
    for (int ep = 0; ep < 4; ep++) {
        epoch_out e;
        run_epoch(l, ep, 128, 9, &e);
        assert_int_equal(e.nimg, 9);
        int bi = 0;
        for (int i = 0; i < e.nimg; i++) {
            assert_float_equal(e.items[i].lb.scale, 0, 0);
            for (int j = 0; j < e.nper[i]; j++, bi++) {
                const acv_box *b = &e.boxes[bi];
                assert_true(b->x1 >= 0 && b->y1 >= 0 && b->x2 <= 128 && b->y2 <= 128);
                assert_true(b->x2 - b->x1 >= 2 && b->y2 - b->y1 >= 2);
                if (b->x2 - b->x1 >= 5 && b->y2 - b->y1 >= 5) {
                    assert_true(is_color_at(&e, i, 128, (int)((b->x1 + b->x2) / 2), (int)((b->y1 + b->y2) / 2),
                                            b->cls));
                    checked++;
                }
            }
        }
        epoch_free(&e);
    }
    assert_true(checked > 40);
    acv_det_loader_free(l);
    fixture_free(&f);
}

static void test_set_aug_off_equals_eval(void **state)
{
    (void)state;
    fixture f;
    fixture_make(&f, 6, 160, 160); /* exact scales to 128 */
    acv_det_loader_opts o;
    acv_det_loader_opts_default(&o);
    o.batch = 4;
    o.imgsz = 128;
    o.shuffle = 0;
    o.workers = 2;
    acv_det_loader *lt, *le;
    assert_int_equal(acv_det_loader_new(&f.ds, &o, &lt), 0);
    o.train = 0;
    assert_int_equal(acv_det_loader_new(&f.ds, &o, &le), 0);
    epoch_out t, e;
    run_epoch(lt, 0, 128, 6, &t);
    run_epoch(le, 0, 128, 6, &e);
    assert_false(epochs_equal(&t, &e, 128)); /* mosaic etc. on */
    epoch_free(&t);
    acv_det_aug_opts aug;
    acv_det_aug_opts_default(&aug);
    aug.mosaic = aug.scale = aug.translate = aug.fliplr = aug.hsv_h = aug.hsv_s = aug.hsv_v = 0;
    assert_int_equal(acv_det_loader_set_aug(lt, &aug), 0);
    aug.scale = 2; /* refused, changes nothing */
    assert_int_equal(acv_det_loader_set_aug(lt, &aug), ACV_EINVAL);
    run_epoch(lt, 1, 128, 6, &t);
    /* same pixels and boxes; only the items differ (train reports no letterbox) */
    assert_int_equal(t.nimg, e.nimg);
    assert_int_equal(t.nbox, e.nbox);
    assert_memory_equal(t.x, e.x, (size_t)6 * 3 * 128 * 128 * sizeof(float));
    for (int i = 0; i < t.nbox; i++) {
        assert_int_equal(t.boxes[i].cls, e.boxes[i].cls);
        assert_float_equal(t.boxes[i].x1, e.boxes[i].x1, 1e-4);
        assert_float_equal(t.boxes[i].y1, e.boxes[i].y1, 1e-4);
        assert_float_equal(t.boxes[i].x2, e.boxes[i].x2, 1e-4);
        assert_float_equal(t.boxes[i].y2, e.boxes[i].y2, 1e-4);
    }
    epoch_free(&t);
    epoch_free(&e);
    acv_det_loader_free(lt);
    acv_det_loader_free(le);
    fixture_free(&f);
}

static void test_unreadable_skipped(void **state)
{
    (void)state;
    fixture f;
    fixture_make(&f, 8, 160, 160);
    /* image 2: missing; image 5: not a PNG; image 6: annotation size disagrees */
    remove(f.ds.images[2].path);
    FILE *fp = fopen(f.ds.images[5].path, "wb");
    assert_non_null(fp);
    fputs("not an image", fp);
    fclose(fp);
    f.ds.images[6].w += 10;
    acv_det_loader_opts o;
    acv_det_loader_opts_default(&o);
    o.batch = 3;
    o.imgsz = 64;
    o.shuffle = 0;
    o.workers = 2;
    o.aug.mosaic = 0; /* partners would hide which images fail */
    acv_det_loader *l;
    assert_int_equal(acv_det_loader_new(&f.ds, &o, &l), 0);
    epoch_out e;
    run_epoch(l, 0, 64, 8, &e);
    assert_int_equal(e.nimg, 5);
    assert_int_equal(e.nb, 2); /* 3 + 2 */
    const int want[5] = {0, 1, 3, 4, 7};
    for (int i = 0; i < 5; i++) assert_int_equal(e.items[i].index, want[i]);
    assert_int_equal(acv_det_loader_skipped(l), 3);
    assert_non_null(strstr(acv_det_loader_first_error(l), "img002.png"));
    epoch_free(&e);
    acv_det_loader_free(l);
    /* more than half unreadable: an error naming the first */
    for (int i = 0; i < 5; i++) f.ds.images[i].w += 1;
    o.train = 0;
    assert_int_equal(acv_det_loader_new(&f.ds, &o, &l), 0);
    acv_det_loader_epoch(l, 0);
    acv_det_batch b;
    int rc;
    while ((rc = acv_det_loader_next(l, &b)) == 1) {
    }
    assert_true(rc < 0);
    assert_non_null(strstr(acv_errmsg(), "more than half"));
    acv_det_loader_free(l);
    for (int i = 0; i < 5; i++) f.ds.images[i].w -= 1;
    f.ds.images[6].w -= 10;
    fixture_free(&f);
}

static void test_bad_opts(void **state)
{
    (void)state;
    fixture f;
    fixture_make(&f, 2, 100, 100);
    acv_det_loader_opts o;
    acv_det_loader *l = (acv_det_loader *)&o;
    acv_det_loader_opts_default(&o);
    o.imgsz = 100;
    assert_int_equal(acv_det_loader_new(&f.ds, &o, &l), ACV_EINVAL);
    assert_null(l);
    assert_non_null(strstr(acv_errmsg(), "imgsz"));
    acv_det_loader_opts_default(&o);
    o.aug.fliplr = 1.5f;
    assert_int_equal(acv_det_loader_new(&f.ds, &o, &l), ACV_EINVAL);
    assert_non_null(strstr(acv_errmsg(), "fliplr"));
    acv_det_loader_opts_default(&o);
    o.std[2] = 0;
    assert_int_equal(acv_det_loader_new(&f.ds, &o, &l), ACV_EINVAL);
    acv_det_loader_opts_default(&o);
    acv_det_dataset empty = {0};
    assert_int_equal(acv_det_loader_new(&empty, &o, &l), ACV_EINVAL);
    /* next before any epoch */
    assert_int_equal(acv_det_loader_new(&f.ds, &o, &l), 0);
    acv_det_batch b;
    assert_int_equal(acv_det_loader_next(l, &b), ACV_EINVAL);
    acv_det_loader_free(l);
    acv_det_loader_free(NULL);
    fixture_free(&f);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void test_throughput_mosaic_320(void **state)
{
    (void)state;
    fixture f;
    fixture_make(&f, 16, 400, 400); /* 400x320, 320x400, 320x320 PNGs */
    acv_det_loader_opts o;
    acv_det_loader_opts_default(&o);
    o.batch = 8;
    o.imgsz = 320;
    o.workers = 2;
    acv_det_loader *l;
    assert_int_equal(acv_det_loader_new(&f.ds, &o, &l), 0);
    double t0 = now_s();
    int imgs = 0;
    for (int ep = 0; ep < 4; ep++) {
        acv_det_loader_epoch(l, ep);
        acv_det_batch b;
        while (acv_det_loader_next(l, &b) == 1) imgs += b.n;
    }
    double dt = now_s() - t0;
    assert_int_equal(imgs, 64);
    print_message("detection loader: %d mosaic images at 320 px on 2 workers in %.2f s: %.0f images/s\n", imgs, dt,
                  imgs / dt);
    acv_det_loader_free(l);
    fixture_free(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eval_letterbox),
        cmocka_unit_test(test_determinism_workers),
        cmocka_unit_test(test_mosaic_boxes_on_colours),
        cmocka_unit_test(test_set_aug_off_equals_eval),
        cmocka_unit_test(test_unreadable_skipped),
        cmocka_unit_test(test_bad_opts),
        cmocka_unit_test(test_throughput_mosaic_320),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
