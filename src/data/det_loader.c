/* Threaded detection batch loader (see det_loader.h).
 *
 * Design as in loader.c: the epoch is a sequence of positions 0..n-1 (perm[p] is the dataset
 * index); workers claim positions in order under the mutex and write each processed image
 * (uint8, S x S x 3: four times smaller than floats, so deeper prefetch is cheap) with its
 * boxes into slot p % cap of a ring. The caller consumes slots in position order, converting
 * readable images to floats and skipping failed ones, so batch composition depends only on
 * which images fail, never on timing. */
#include "data/det_loader.h"

#include "autocv/error.h"
#include "base/log.h"
#include "base/rng.h"

#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { SLOT_EMPTY = 0, SLOT_READY, SLOT_FAILED };
#define SLOT_MSG 256
#define MAX_THREADS 64
#define PARTNER_TRIES 4
/* Generator stream that can never collide with an image index. */
#define STREAM_SHUFFLE UINT64_MAX

/* One ring slot: written by the worker that claimed it, read by the caller once READY. */
typedef struct slot {
    acv_box *boxes;
    int n, cap;
    acv_det_item item;
    int rc;
    char msg[SLOT_MSG];
} slot;

struct acv_det_loader {
    const acv_det_dataset *ds;  /* borrowed */
    acv_det_loader_opts o;
    acv_det_aug_opts pending;   /* applied by the next epoch */
    int n, S;
    size_t img_bytes;           /* S * S * 3 */

    pthread_t *threads;
    int nthreads;
    pthread_mutex_t mu;
    pthread_cond_t work_cv;     /* workers wait for claimable positions */
    pthread_cond_t done_cv;     /* the caller waits for slots / for busy == 0 */
    int stop;

    /* epoch state (guarded by mu) */
    int epoch;
    int started;
    int accepting;
    int *perm;                  /* (n) */
    long next_pos;
    long consumed;
    int busy;

    /* ring */
    int cap;
    uint8_t *simg;              /* (cap, S, S, 3) */
    slot *slots;                /* (cap) */
    uint8_t *state;             /* (cap) SLOT_* */

    /* caller side */
    long epoch_failed;
    int done;
    int fatal;
    long skipped;
    char first_err[512];
    float *bx;                  /* (batch, 3, S, S) */
    acv_box *bbox;
    int bbox_cap;
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

static void *worker_main(void *arg)
{
    acv_det_loader *l = arg;
    omp_set_num_threads(1); /* the loader's parallelism is its threads */
    pthread_mutex_lock(&l->mu);
    while (!l->stop) {
        if (!(l->accepting && l->next_pos < l->n && l->next_pos < l->consumed + l->cap)) {
            pthread_cond_wait(&l->work_cv, &l->mu);
            continue;
        }
        long p = l->next_pos++;
        int idx = l->perm[p], epoch = l->epoch, s = (int)(p % l->cap);
        l->busy++;
        pthread_mutex_unlock(&l->mu);

        slot *sl = &l->slots[s];
        sl->n = 0;
        int rc = process_image(l, idx, epoch, sl, l->simg + (size_t)s * l->img_bytes);
        sl->rc = rc;
        if (rc) {
            snprintf(sl->msg, SLOT_MSG, "%s", acv_errmsg());
            sl->item = (acv_det_item){.index = idx};
        }

        pthread_mutex_lock(&l->mu);
        l->busy--;
        l->state[s] = rc ? SLOT_FAILED : SLOT_READY;
        pthread_cond_broadcast(&l->done_cv);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

/* ---- construction ----------------------------------------------------------------- */

static int check_opts(const acv_det_loader_opts *o)
{
#define BAD(...) return acv_error(ACV_EINVAL, "detection loader: " __VA_ARGS__)
    if (o->batch < 1 || o->batch > 65536) BAD("batch %d not in [1, 65536]", o->batch);
    if (o->imgsz < 32 || o->imgsz > 4096 || o->imgsz % 32)
        BAD("imgsz %d must be a multiple of 32 in [32, 4096]", o->imgsz);
    if (o->workers < 0 || o->workers > MAX_THREADS) BAD("workers %d not in [0, %d]", o->workers, MAX_THREADS);
    if (o->prefetch < 0 || o->prefetch > 64) BAD("prefetch %d not in [0, 64]", o->prefetch);
    for (int i = 0; i < 3; i++)
        if (!(o->std[i] > 0.0f) || !isfinite(o->std[i]) || !isfinite(o->mean[i]))
            BAD("std[%d] must be > 0 and mean[%d] finite", i, i);
    return o->train ? acv_det_aug_opts_check(&o->aug) : 0;
#undef BAD
}

int acv_det_loader_new(const acv_det_dataset *ds, const acv_det_loader_opts *o, acv_det_loader **out)
{
    *out = NULL;
    int rc = check_opts(o);
    if (rc) return rc;
    if (!ds || ds->n < 1) return acv_error(ACV_EINVAL, "detection loader: the dataset has no images");
    acv_det_loader *l = calloc(1, sizeof *l);
    if (!l) return acv_error(ACV_ENOMEM, "out of memory");
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->work_cv, NULL);
    pthread_cond_init(&l->done_cv, NULL);
    l->ds = ds;
    l->o = *o;
    l->pending = o->aug;
    l->n = ds->n;
    l->S = o->imgsz;
    l->img_bytes = (size_t)l->S * l->S * 3;
    long cap = (long)(o->prefetch ? o->prefetch : 2) * o->batch;
    if (cap > l->n) cap = l->n;
    l->cap = (int)cap;
    l->perm = malloc((size_t)l->n * sizeof *l->perm);
    l->simg = malloc((size_t)l->cap * l->img_bytes);
    l->slots = calloc((size_t)l->cap, sizeof *l->slots);
    l->state = calloc((size_t)l->cap, 1);
    l->bx = malloc((size_t)o->batch * l->img_bytes * sizeof *l->bx);
    l->bstart = malloc((size_t)(o->batch + 1) * sizeof *l->bstart);
    l->bitems = malloc((size_t)o->batch * sizeof *l->bitems);
    if (!l->perm || !l->simg || !l->slots || !l->state || !l->bx || !l->bstart || !l->bitems) {
        acv_det_loader_free(l);
        return acv_error(ACV_ENOMEM, "detection loader: cannot allocate a ring of %d images of %dx%d", (int)cap, l->S,
                         l->S);
    }
    int nt = o->workers;
    if (nt == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        nt = cpus < 1 ? 1 : cpus > 4 ? 4 : (int)cpus;
    }
    l->threads = calloc((size_t)nt, sizeof *l->threads);
    if (!l->threads) {
        acv_det_loader_free(l);
        return acv_error(ACV_ENOMEM, "out of memory");
    }
    for (int t = 0; t < nt; t++) {
        if (pthread_create(&l->threads[t], NULL, worker_main, l) != 0) {
            acv_det_loader_free(l);
            return acv_error(ACV_EIO, "detection loader: cannot start worker thread %d of %d", t + 1, nt);
        }
        l->nthreads++;
    }
    *out = l;
    return 0;
}

void acv_det_loader_free(acv_det_loader *l)
{
    if (!l) return;
    pthread_mutex_lock(&l->mu);
    l->stop = 1;
    l->accepting = 0;
    pthread_cond_broadcast(&l->work_cv);
    pthread_mutex_unlock(&l->mu);
    for (int t = 0; t < l->nthreads; t++) pthread_join(l->threads[t], NULL);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->work_cv);
    pthread_cond_destroy(&l->done_cv);
    if (l->slots)
        for (int i = 0; i < l->cap; i++) free(l->slots[i].boxes);
    free(l->threads);
    free(l->perm);
    free(l->simg);
    free(l->slots);
    free(l->state);
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
    ACV_ASSERT(epoch >= 0);
    pthread_mutex_lock(&l->mu);
    l->accepting = 0;
    while (l->busy > 0) pthread_cond_wait(&l->done_cv, &l->mu);
    l->o.aug = l->pending; /* no worker is processing: safe to change */
    for (int i = 0; i < l->n; i++) l->perm[i] = i;
    if (l->o.shuffle) {
        acv_rng r;
        acv_rng_seed3(&r, l->o.seed, (uint64_t)epoch, STREAM_SHUFFLE);
        acv_rng_shuffle(&r, l->perm, l->n);
    }
    memset(l->state, SLOT_EMPTY, (size_t)l->cap);
    l->epoch = epoch;
    l->next_pos = 0;
    l->consumed = 0;
    l->started = 1;
    l->accepting = 1;
    pthread_cond_broadcast(&l->work_cv);
    pthread_mutex_unlock(&l->mu);
    l->epoch_failed = 0;
    l->done = 0;
    l->fatal = 0;
}

/* Is rc a problem with one image (skip it) rather than with the loader (stop)? */
static int is_image_error(int rc)
{
    return rc == ACV_EFORMAT || rc == ACV_EIO || rc == ACV_ENOTFOUND || rc == ACV_ERANGE || rc == ACV_EUNSUPPORTED ||
           rc == ACV_ESHAPE || rc == ACV_EINVAL;
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

int acv_det_loader_next(acv_det_loader *l, acv_det_batch *b)
{
    memset(b, 0, sizeof *b);
    if (!l->started) return acv_error(ACV_EINVAL, "detection loader: acv_det_loader_epoch was not called");
    if (l->fatal) return l->fatal;
    if (l->done) return 0;
    const acv_det_loader_opts *o = &l->o;
    int S = l->S, cnt = 0, nbox = 0;
    size_t chw = (size_t)3 * S * S;
    while (cnt < o->batch && l->consumed < l->n) {
        int s = (int)(l->consumed % l->cap);
        pthread_mutex_lock(&l->mu);
        while (l->state[s] == SLOT_EMPTY) pthread_cond_wait(&l->done_cv, &l->mu);
        int st = l->state[s];
        pthread_mutex_unlock(&l->mu);
        slot *sl = &l->slots[s];
        /* The slot is ours until consumed advances past it. */
        if (st == SLOT_READY) {
            int rc = batch_reserve_boxes(l, nbox + sl->n);
            if (rc) return l->fatal = rc;
            acv_image view = {.w = S, .h = S, .c = 3, .data = l->simg + (size_t)s * l->img_bytes};
            acv_img_to_tensor(&view, l->bx + (size_t)cnt * chw, o->mean, o->std);
            if (sl->n) memcpy(l->bbox + nbox, sl->boxes, (size_t)sl->n * sizeof *sl->boxes);
            l->bstart[cnt] = nbox;
            nbox += sl->n;
            l->bitems[cnt] = sl->item;
            cnt++;
        } else {
            if (!is_image_error(sl->rc)) {
                l->fatal = acv_error(sl->rc, "detection loader: %s", sl->msg);
                return l->fatal;
            }
            if (l->skipped == 0) {
                snprintf(l->first_err, sizeof l->first_err, "%s", sl->msg);
                acv_warn("skipping unreadable image (further ones are only counted): %s", sl->msg);
            }
            l->skipped++;
            l->epoch_failed++;
            if (l->epoch_failed * 2 > l->n) {
                l->fatal = acv_error(sl->rc, "detection loader: more than half of the %d images could not be read "
                                             "(first: %s)", l->n, l->first_err);
                return l->fatal;
            }
        }
        pthread_mutex_lock(&l->mu);
        l->state[s] = SLOT_EMPTY;
        l->consumed++;
        pthread_cond_signal(&l->work_cv);
        pthread_mutex_unlock(&l->mu);
    }
    if (l->consumed >= l->n) l->done = 1;
    if (cnt == 0 || (cnt < o->batch && o->drop_last)) {
        l->done = 1;
        return 0;
    }
    l->bstart[cnt] = nbox;
    b->n = cnt;
    b->c = 3;
    b->h = S;
    b->w = S;
    b->x = l->bx;
    b->nbox = nbox;
    b->boxes = l->bbox;
    b->box_start = l->bstart;
    b->items = l->bitems;
    return 1;
}

int acv_det_loader_num_batches(const acv_det_loader *l)
{
    int b = l->o.batch;
    return l->o.drop_last ? l->n / b : (l->n + b - 1) / b;
}

long acv_det_loader_skipped(const acv_det_loader *l) { return l->skipped; }
const char *acv_det_loader_first_error(const acv_det_loader *l) { return l->first_err; }
