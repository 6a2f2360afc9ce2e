/* Threaded detection batch loader (see det_loader.h).
 *
 * The worker threads, the ring and the epoch order are data/prefetch.h's, as in loader.c: a
 * ring slot here holds one processed image (uint8, S x S x 3: four times smaller than
 * floats, so deeper prefetch is cheap) with its boxes. The caller's thread converts the
 * readable images of each batch to floats, in position order. */
#include "data/det_loader.h"

#include "autocv/error.h"
#include "base/rng.h"
#include "data/prefetch.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PARTNER_TRIES 4

/* One ring slot's boxes and origin: written by the worker that processes it, read by the
 * caller once it is ready (see prefetch.h). */
typedef struct slot {
    acv_box *boxes;
    int n, cap;
    acv_det_item item;
} slot;

struct acv_det_loader {
    const acv_det_dataset *ds;  /* borrowed */
    acv_det_loader_opts o;
    acv_det_aug_opts pending;   /* applied by the next epoch */
    int n, S;
    size_t img_bytes;           /* S * S * 3 */
    acv__prefetch *pf;

    /* ring */
    int cap;
    uint8_t *simg;              /* (cap, S, S, 3) */
    slot *slots;                /* (cap) */

    /* caller side */
    float *bx;                  /* (batch, 3, S, S) */
    acv_box *bbox;
    int bbox_cap;
    int nbox;                   /* boxes in the batch being built */
    int *bstart;                /* (batch + 1) */
    acv_det_item *bitems;       /* (batch) */
};

void acv_det_loader_opts_default(acv_det_loader_opts *o)
{
    memset(o, 0, sizeof *o);
    o->batch = 16;
    o->imgsz = 640;
    o->shuffle = 1;
    o->prefetch = 2;
    o->train = 1;
    for (int c = 0; c < 3; c++) o->std[c] = 1.0f;
    acv_det_aug_opts_default(&o->aug);
}

/* ---- per-image processing (worker threads) ---------------------------------------- */

/* Decodes dataset image idx as RGB with its boxes (clipped to the image, empty ones dropped). */
static int load_image(const acv_det_loader *l, int idx, acv_det_sample *s, int *ow, int *oh)
{
    const acv_det_image *di = &l->ds->images[idx];
    memset(s, 0, sizeof *s);
    if (!di->path) return acv_error(ACV_ENOTFOUND, "detection image %d has no file", idx);
    acv_decode_opts dop = {.want_c = 3, .apply_exif = 1};
    acv_image im;
    int rc = acv_image_load(di->path, &dop, &im);
    if (rc) return rc;
    if (di->w > 0 && di->h > 0 && (im.w != di->w || im.h != di->h)) {
        int w = im.w, h = im.h;
        acv_image_free(&im);
        return acv_error(ACV_EFORMAT, "%s: the image is %dx%d but its annotation says %dx%d", di->path, w, h, di->w,
                         di->h);
    }
    if (ow) *ow = im.w;
    if (oh) *oh = im.h;
    if ((rc = acv_det_sample_init(s, im, di->boxes, di->n))) return rc;
    int k = 0;
    for (int i = 0; i < s->n; i++) {
        acv_box b = s->boxes[i];
        b.x1 = fminf(fmaxf(b.x1, 0.0f), (float)im.w);
        b.x2 = fminf(fmaxf(b.x2, 0.0f), (float)im.w);
        b.y1 = fminf(fmaxf(b.y1, 0.0f), (float)im.h);
        b.y2 = fminf(fmaxf(b.y2, 0.0f), (float)im.h);
        if (!(b.x2 > b.x1 && b.y2 > b.y1)) continue;
        s->boxes[k] = b;
        s->area0[k] = acv_box_area(&b);
        k++;
    }
    s->n = k;
    return 0;
}

static int slot_set_boxes(slot *sl, const acv_box *boxes, int n)
{
    if (n > sl->cap) {
        int cap = n < 16 ? 16 : n;
        acv_box *b = realloc(sl->boxes, (size_t)cap * sizeof *b);
        if (!b) return acv_error(ACV_ENOMEM, "detection loader: out of memory for %d boxes", n);
        sl->boxes = b;
        sl->cap = cap;
    }
    if (n) memcpy(sl->boxes, boxes, (size_t)n * sizeof *boxes);
    sl->n = n;
    return 0;
}

static int process_train(const acv_det_loader *l, int idx, acv_rng *r, slot *sl, uint8_t *img)
{
    const acv_det_aug_opts *aug = &l->o.aug;
    int S = l->S, ow = 0, oh = 0;
    acv_det_sample parts[4];
    memset(parts, 0, sizeof parts);
    int mosaic = aug->mosaic > 0.0f && acv_rng_uniform(r) < aug->mosaic;
    int rc = load_image(l, idx, &parts[0], &ow, &oh);
    if (rc == 0) rc = acv_det_resize_long(&parts[0], S);
    for (int j = 1; mosaic && rc == 0 && j < 4; j++) {
        for (int t = 0; t < PARTNER_TRIES; t++) {
            int k = (int)acv_rng_below(r, (uint32_t)l->n);
            if ((rc = load_image(l, k, &parts[j], NULL, NULL)) == 0 && (rc = acv_det_resize_long(&parts[j], S)) == 0)
                break;
            acv_det_sample_free(&parts[j]);
            if (rc == ACV_ENOMEM) break;
        }
        if (rc) acv_error_prefix(rc, "mosaic partners of image %d: ", idx);
    }
    if (rc) {
        for (int j = 0; j < 4; j++) acv_det_sample_free(&parts[j]);
        return rc;
    }
    acv_det_sample out;
    if ((rc = acv_det_augment(parts, mosaic ? 4 : 1, S, aug, r, &out))) return rc;
    if (out.im.w != S || out.im.h != S || out.im.c != 3) {
        rc = acv_error(ACV_ESHAPE, "image %d: augmented to %dx%dx%d, expected %dx%dx3", idx, out.im.w, out.im.h,
                       out.im.c, S, S);
    } else {
        memcpy(img, out.im.data, l->img_bytes);
        rc = slot_set_boxes(sl, out.boxes, out.n);
        sl->item = (acv_det_item){.index = idx, .orig_w = ow, .orig_h = oh};
    }
    acv_det_sample_free(&out);
    return rc;
}

static int process_eval(const acv_det_loader *l, int idx, slot *sl, uint8_t *img)
{
    acv_det_sample s;
    int ow, oh;
    int rc = load_image(l, idx, &s, &ow, &oh);
    if (rc) return rc;
    acv_image lb;
    acv_letterbox_info info;
    rc = acv_det_letterbox(&s.im, l->S, s.boxes, s.n, &lb, &info);
    if (rc == 0) {
        memcpy(img, lb.data, l->img_bytes);
        acv_image_free(&lb);
        rc = slot_set_boxes(sl, s.boxes, s.n);
        sl->item = (acv_det_item){.index = idx, .orig_w = ow, .orig_h = oh, .lb = info};
    }
    acv_det_sample_free(&s);
    return rc;
}

static int process_image(const acv_det_loader *l, int idx, int epoch, slot *sl, uint8_t *img)
{
    if (!l->o.train) return process_eval(l, idx, sl, img);
    acv_rng r;
    acv_rng_seed3(&r, l->o.seed, (uint64_t)epoch, (uint64_t)idx);
    return process_train(l, idx, &r, sl, img);
}

/* prefetch.h's process callback: image idx of epoch into ring slot s. */
static int process_slot(void *ctx, int idx, int epoch, int s)
{
    acv_det_loader *l = ctx;
    slot *sl = &l->slots[s];
    sl->n = 0;
    int rc = process_image(l, idx, epoch, sl, l->simg + (size_t)s * l->img_bytes);
    if (rc) sl->item = (acv_det_item){.index = idx};
    return rc;
}

static int batch_reserve_boxes(acv_det_loader *l, int n)
{
    if (n <= l->bbox_cap) return 0;
    int cap = l->bbox_cap ? l->bbox_cap : 256;
    while (cap < n) cap *= 2;
    acv_box *b = realloc(l->bbox, (size_t)cap * sizeof *b);
    if (!b) return acv_error(ACV_ENOMEM, "detection loader: out of memory for %d boxes", n);
    l->bbox = b;
    l->bbox_cap = cap;
    return 0;
}

/* prefetch.h's take callback (caller's thread): the image in slot s and its boxes become
 * item i of the batch. */
static int take_slot(void *ctx, int s, int idx, int i)
{
    acv_det_loader *l = ctx;
    const slot *sl = &l->slots[s];
    int S = l->S;
    int rc = batch_reserve_boxes(l, l->nbox + sl->n);
    if (rc) return rc;
    acv_image view = {.w = S, .h = S, .c = 3, .data = l->simg + (size_t)s * l->img_bytes};
    acv_img_to_tensor(&view, l->bx + (size_t)i * 3 * S * S, l->o.mean, l->o.std);
    if (sl->n) memcpy(l->bbox + l->nbox, sl->boxes, (size_t)sl->n * sizeof *sl->boxes);
    l->bstart[i] = l->nbox;
    l->nbox += sl->n;
    l->bitems[i] = sl->item;
    return 0;
}

/* ---- construction ----------------------------------------------------------------- */

static int check_opts(const acv_det_loader_opts *o)
{
#define BAD(...) return acv_error(ACV_EINVAL, "detection loader: " __VA_ARGS__)
    if (o->batch < 1 || o->batch > 65536) BAD("batch %d not in [1, 65536]", o->batch);
    if (o->imgsz < 32 || o->imgsz > 4096 || o->imgsz % 32)
        BAD("imgsz %d must be a multiple of 32 in [32, 4096]", o->imgsz);
    if (o->workers < 0 || o->workers > ACV__PREFETCH_MAX_THREADS)
        BAD("workers %d not in [0, %d]", o->workers, ACV__PREFETCH_MAX_THREADS);
    if (o->prefetch < 0 || o->prefetch > 64) BAD("prefetch %d not in [0, 64]", o->prefetch);
    for (int i = 0; i < 3; i++)
        if (!(o->std[i] > 0.0f) || !isfinite(o->std[i]) || !isfinite(o->mean[i]))
            BAD("std[%d] must be > 0 and mean[%d] finite", i, i);
    return o->train ? acv_det_aug_opts_check(&o->aug) : 0;
#undef BAD
}

/* prefetch.h's quiet callback: no worker is processing, so the options they read may change. */
static void apply_pending(void *ctx)
{
    acv_det_loader *l = ctx;
    l->o.aug = l->pending;
}

int acv_det_loader_new(const acv_det_dataset *ds, const acv_det_loader_opts *o, acv_det_loader **out)
{
    *out = NULL;
    int rc = check_opts(o);
    if (rc) return rc;
    if (!ds || ds->n < 1) return acv_error(ACV_EINVAL, "detection loader: the dataset has no images");
    acv_det_loader *l = calloc(1, sizeof *l);
    if (!l) return acv_error(ACV_ENOMEM, "out of memory");
    l->ds = ds;
    l->o = *o;
    l->pending = o->aug;
    l->n = ds->n;
    l->S = o->imgsz;
    l->img_bytes = (size_t)l->S * l->S * 3;
    long cap = (long)(o->prefetch ? o->prefetch : 2) * o->batch;
    if (cap > l->n) cap = l->n;
    l->cap = (int)cap;
    acv__prefetch_config pc = {
        .name = "detection loader", .what = "images", .epoch_fn = "acv_det_loader_epoch",
        .n = l->n, .cap = l->cap, .batch = o->batch, .drop_last = o->drop_last, .threads = o->workers,
        .shuffle = o->shuffle, .seed = o->seed, .process = process_slot, .take = take_slot, .quiet = apply_pending,
        .ctx = l,
    };
    rc = acv__prefetch_new(&pc, &l->pf);
    l->simg = malloc((size_t)l->cap * l->img_bytes);
    l->slots = calloc((size_t)l->cap, sizeof *l->slots);
    l->bx = malloc((size_t)o->batch * l->img_bytes * sizeof *l->bx);
    l->bstart = malloc((size_t)(o->batch + 1) * sizeof *l->bstart);
    l->bitems = malloc((size_t)o->batch * sizeof *l->bitems);
    if (rc || !l->simg || !l->slots || !l->bx || !l->bstart || !l->bitems) {
        acv_det_loader_free(l);
        return acv_error(ACV_ENOMEM, "detection loader: cannot allocate a ring of %d images of %dx%d", (int)cap,
                         o->imgsz, o->imgsz);
    }
    if ((rc = acv__prefetch_start(l->pf))) {
        acv_det_loader_free(l);
        return rc;
    }
    *out = l;
    return 0;
}

void acv_det_loader_free(acv_det_loader *l)
{
    if (!l) return;
    acv__prefetch_free(l->pf); /* joins the workers first */
    if (l->slots)
        for (int i = 0; i < l->cap; i++) free(l->slots[i].boxes);
    free(l->simg);
    free(l->slots);
    free(l->bx);
    free(l->bbox);
    free(l->bstart);
    free(l->bitems);
    free(l);
}

int acv_det_loader_set_aug(acv_det_loader *l, const acv_det_aug_opts *aug)
{
    int rc = acv_det_aug_opts_check(aug);
    if (rc) return rc;
    l->pending = *aug; /* read by workers only after the next epoch copies it */
    return 0;
}

/* ---- epochs and batches (caller's thread) ----------------------------------------- */

void acv_det_loader_epoch(acv_det_loader *l, int epoch)
{
    acv__prefetch_epoch(l->pf, epoch); /* applies the pending aug options (apply_pending) */
}

int acv_det_loader_next(acv_det_loader *l, acv_det_batch *b)
{
    memset(b, 0, sizeof *b);
    l->nbox = 0;
    int cnt = acv__prefetch_next(l->pf);
    if (cnt <= 0) return cnt;
    int S = l->S;
    l->bstart[cnt] = l->nbox;
    b->n = cnt;
    b->c = 3;
    b->h = S;
    b->w = S;
    b->x = l->bx;
    b->nbox = l->nbox;
    b->boxes = l->bbox;
    b->box_start = l->bstart;
    b->items = l->bitems;
    return 1;
}

int acv_det_loader_num_batches(const acv_det_loader *l) { return acv__prefetch_num_batches(l->pf); }
long acv_det_loader_skipped(const acv_det_loader *l) { return acv__prefetch_skipped(l->pf); }
const char *acv_det_loader_first_error(const acv_det_loader *l) { return acv__prefetch_first_error(l->pf); }
