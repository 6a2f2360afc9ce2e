/* Threaded batch loader (see loader.h).
 *
 * Design: the epoch is a sequence of positions 0..n-1 (perm[p] is the dataset index).
 * Workers claim positions strictly in order under the mutex and write each processed
 * sample into slot p % cap of a sample ring (cap = prefetch * batch), so at most cap
 * samples are in flight. The caller's thread consumes slots in position order, copying
 * readable samples into the batch and skipping failed ones; batch composition therefore
 * depends only on which samples fail, never on timing. */
#include "data/loader.h"

#include "autocv/error.h"
#include "base/log.h"
#include "base/rng.h"
#include "vision/transform.h"

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
/* Generator streams that can never collide with a sample index. */
#define STREAM_SHUFFLE UINT64_MAX
#define STREAM_BATCH(b) (UINT64_MAX - 1 - (uint64_t)(b))

struct acv_loader {
    const acv_cls_dataset *ds;  /* borrowed */
    acv_loader_config cfg;
    int n, k, chw;

    pthread_t *threads;
    int nthreads;
    pthread_mutex_t mu;
    pthread_cond_t work_cv;     /* workers wait for claimable positions */
    pthread_cond_t done_cv;     /* the caller waits for slots / for busy == 0 */
    int stop;

    /* epoch state (guarded by mu) */
    int epoch;
    int started;
    int accepting;              /* workers may claim positions */
    int *perm;                  /* (n) */
    long next_pos;              /* next position a worker claims */
    long consumed;              /* first position the caller has not consumed */
    int busy;                   /* workers processing a sample */

    /* sample ring */
    int cap;
    float *sx;                  /* (cap, chw) */
    int *sidx;                  /* (cap) dataset index */
    int *src;                   /* (cap) error code of failed slots */
    uint8_t *state;             /* (cap) SLOT_* */
    char *smsg;                 /* (cap, SLOT_MSG) error message of failed slots */

    /* caller side (touched only by the caller's thread) */
    long batch_no;
    long epoch_failed;
    int done;                   /* epoch exhausted */
    int fatal;                  /* sticky error of the epoch */
    long skipped;
    char first_err[512];
    float *bx;                  /* (batch, chw) */
    int *blabel, *bidx;         /* (batch) */
    float *bsoft;               /* (batch, k) or NULL */
};

void acv_loader_config_default(acv_loader_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->batch = 64;
    cfg->prefetch = 4;
    cfg->shuffle = 1;
    cfg->out_c = 3;
    cfg->out_h = 224;
    cfg->out_w = 224;
    for (int c = 0; c < 3; c++) cfg->std[c] = 1.0f;
}

/* ---- per-sample processing (worker threads) --------------------------------------- */

static void swap_img(acv_image *a, acv_image *b)
{
    acv_image t = *a;
    *a = *b;
    *b = t;
}

/* Resizes *im to w x h in place (area filter when shrinking, bilinear otherwise). */
static int resize_to(acv_image *im, int w, int h)
{
    if (im->w == w && im->h == h) return 0;
    int mode = (w <= im->w && h <= im->h) ? ACV_RESIZE_AREA : ACV_RESIZE_BILINEAR;
    acv_image t = {0};
    int rc = acv_img_resize(im, w, h, mode, &t);
    if (rc) return rc;
    acv_image_free(im);
    *im = t;
    return 0;
}

int acv_loader_eval_geometry(const acv_loader_config *cfg, acv_image *im)
{
    if (cfg->rrc_scale_lo <= 0.0f) return resize_to(im, cfg->out_w, cfg->out_h);
    float frac = cfg->eval_crop_frac > 0.0f ? cfg->eval_crop_frac : 0.875f;
    double sx = cfg->out_w / (double)frac / im->w, sy = cfg->out_h / (double)frac / im->h;
    double s = sx > sy ? sx : sy;
    int w = (int)lround(im->w * s), h = (int)lround(im->h * s);
    if (w < cfg->out_w) w = cfg->out_w;
    if (h < cfg->out_h) h = cfg->out_h;
    int rc = resize_to(im, w, h);
    if (rc || (w == cfg->out_w && h == cfg->out_h)) return rc;
    acv_image t = {0};
    if ((rc = acv_img_center_crop(im, cfg->out_w, cfg->out_h, &t))) return rc;
    swap_img(im, &t);
    acv_image_free(&t);
    return 0;
}

static int train_geometry(const acv_loader_config *cfg, acv_rng *r, acv_image *im)
{
    int rc;
    acv_image t = {0};
    if (cfg->rrc_scale_lo > 0.0f) {
        float rlo = cfg->rrc_ratio_lo > 0.0f ? cfg->rrc_ratio_lo : 0.75f;
        float rhi = cfg->rrc_ratio_hi > 0.0f ? cfg->rrc_ratio_hi : 4.0f / 3.0f;
        rc = acv_img_random_resized_crop(im, cfg->out_w, cfg->out_h, cfg->rrc_scale_lo, cfg->rrc_scale_hi, rlo, rhi,
                                         r, &t);
        if (rc) return rc;
        swap_img(im, &t);
        acv_image_free(&t);
    } else if ((rc = resize_to(im, cfg->out_w, cfg->out_h))) {
        return rc;
    }
    if (cfg->pad_crop > 0) {
        int p = cfg->pad_crop;
        int dx = (int)acv_rng_below(r, (uint32_t)(2 * p + 1)) - p;
        int dy = (int)acv_rng_below(r, (uint32_t)(2 * p + 1)) - p;
        if ((rc = acv_img_crop(im, dx, dy, cfg->out_w, cfg->out_h, 0, &t))) return rc;
        swap_img(im, &t);
        acv_image_free(&t);
    }
    if (cfg->hflip > 0.0f && acv_rng_uniform(r) < cfg->hflip) acv_img_flip_h(im);
    if (cfg->rotate_deg > 0.0f) {
        float deg = (2.0f * acv_rng_uniform(r) - 1.0f) * cfg->rotate_deg;
        if ((rc = acv_img_rotate(im, deg, 0, &t))) return rc;
        swap_img(im, &t);
        acv_image_free(&t);
    }
    if (cfg->jitter_brightness > 0.0f || cfg->jitter_contrast > 0.0f || cfg->jitter_saturation > 0.0f ||
        cfg->jitter_hue > 0.0f) {
        rc = acv_img_color_jitter(im, cfg->jitter_brightness, cfg->jitter_contrast, cfg->jitter_saturation,
                                  cfg->jitter_hue, r);
        if (rc) return rc;
    }
    return 0;
}

/* Decodes and transforms dataset sample idx of epoch into out (chw floats). */
static int process_sample(const acv_loader *l, int idx, int epoch, float *out)
{
    const acv_loader_config *cfg = &l->cfg;
    acv_image im = {0};
    int rc = acv_cls_dataset_get(l->ds, idx, cfg->out_c, &im);
    if (rc) return rc;
    acv_rng r;
    acv_rng_seed3(&r, cfg->seed, (uint64_t)epoch, (uint64_t)idx);
    rc = cfg->eval ? acv_loader_eval_geometry(cfg, &im) : train_geometry(cfg, &r, &im);
    if (rc == 0 && (im.w != cfg->out_w || im.h != cfg->out_h || im.c != cfg->out_c))
        rc = acv_error(ACV_ESHAPE, "sample %d: transformed to %dx%dx%d, expected %dx%dx%d", idx, im.w, im.h, im.c,
                       cfg->out_w, cfg->out_h, cfg->out_c);
    if (rc == 0) {
        acv_img_to_tensor(&im, out, cfg->mean, cfg->std);
        if (!cfg->eval && cfg->erase_p > 0.0f)
            acv_tensor_random_erasing(out, cfg->out_c, cfg->out_h, cfg->out_w, cfg->erase_p, 0.02f, 0.33f, 0.3f, 3.3f,
                                      &r);
    }
    acv_image_free(&im);
    return rc;
}

static void *worker_main(void *arg)
{
    acv_loader *l = arg;
    omp_set_num_threads(1); /* the loader's parallelism is its threads; no nested teams */
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

        int rc = process_sample(l, idx, epoch, l->sx + (size_t)s * l->chw);
        if (rc) snprintf(l->smsg + (size_t)s * SLOT_MSG, SLOT_MSG, "%s", acv_errmsg());

        pthread_mutex_lock(&l->mu);
        l->busy--;
        l->sidx[s] = idx;
        l->src[s] = rc;
        l->state[s] = rc ? SLOT_FAILED : SLOT_READY;
        pthread_cond_broadcast(&l->done_cv);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

/* ---- construction ----------------------------------------------------------------- */

static int check_config(const acv_loader_config *c)
{
#define BAD(...) return acv_error(ACV_EINVAL, "loader config: " __VA_ARGS__)
    if (c->batch < 1) BAD("batch %d must be at least 1", c->batch);
    if (c->threads < 0 || c->threads > MAX_THREADS) BAD("threads %d not in [0, %d]", c->threads, MAX_THREADS);
    if (c->prefetch < 0 || c->prefetch > 64) BAD("prefetch %d not in [0, 64]", c->prefetch);
    if (c->out_c != 1 && c->out_c != 3) BAD("out_c %d must be 1 or 3", c->out_c);
    if (c->out_h < 1 || c->out_w < 1 || c->out_h > 8192 || c->out_w > 8192)
        BAD("output size %dx%d not in 1..8192", c->out_w, c->out_h);
    for (int i = 0; i < c->out_c; i++)
        if (!(c->std[i] > 0.0f) || !isfinite(c->mean[i])) BAD("std[%d] must be > 0 and mean[%d] finite", i, i);
    if (!(c->eval_crop_frac >= 0.0f && c->eval_crop_frac <= 1.0f))
        BAD("eval_crop_frac %g not in [0, 1]", (double)c->eval_crop_frac);
    if (c->rrc_scale_lo != 0.0f &&
        !(c->rrc_scale_lo > 0.0f && c->rrc_scale_lo <= c->rrc_scale_hi && c->rrc_scale_hi <= 1.0f))
        BAD("random resized crop scale range [%g, %g] must satisfy 0 < lo <= hi <= 1", (double)c->rrc_scale_lo,
            (double)c->rrc_scale_hi);
    if (c->rrc_ratio_lo < 0.0f || c->rrc_ratio_hi < 0.0f ||
        (c->rrc_ratio_lo > 0.0f && c->rrc_ratio_hi > 0.0f && c->rrc_ratio_lo > c->rrc_ratio_hi))
        BAD("random resized crop ratio range [%g, %g] is invalid", (double)c->rrc_ratio_lo, (double)c->rrc_ratio_hi);
    if (c->pad_crop < 0 || c->pad_crop > 1024) BAD("pad_crop %d not in [0, 1024]", c->pad_crop);
    if (!(c->hflip >= 0.0f && c->hflip <= 1.0f)) BAD("hflip probability %g not in [0, 1]", (double)c->hflip);
    if (!(c->erase_p >= 0.0f && c->erase_p <= 1.0f)) BAD("erase_p %g not in [0, 1]", (double)c->erase_p);
    if (!(c->rotate_deg >= 0.0f && c->rotate_deg <= 360.0f)) BAD("rotate_deg %g not in [0, 360]", (double)c->rotate_deg);
    if (!(c->jitter_brightness >= 0.0f) || !(c->jitter_contrast >= 0.0f) || !(c->jitter_saturation >= 0.0f) ||
        !(c->jitter_hue >= 0.0f && c->jitter_hue <= 0.5f))
        BAD("color jitter needs brightness, contrast, saturation >= 0 and hue in [0, 0.5]");
    if (!(c->mixup_alpha >= 0.0f) || !(c->cutmix_alpha >= 0.0f)) BAD("mixup/cutmix alpha must be >= 0");
    return 0;
#undef BAD
}

int acv_loader_new(const acv_cls_dataset *ds, const acv_loader_config *cfg, acv_loader **out)
{
    *out = NULL;
    int rc = check_config(cfg);
    if (rc) return rc;
    int n = acv_cls_dataset_size(ds);
    if (n < 1) return acv_error(ACV_EINVAL, "loader: the dataset is empty");
    acv_loader *l = calloc(1, sizeof *l);
    if (!l) return acv_error(ACV_ENOMEM, "out of memory");
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->work_cv, NULL);
    pthread_cond_init(&l->done_cv, NULL);
    l->ds = ds;
    l->cfg = *cfg;
    l->n = n;
    l->k = acv_cls_dataset_num_classes(ds);
    l->chw = cfg->out_c * cfg->out_h * cfg->out_w;
    int prefetch = cfg->prefetch ? cfg->prefetch : 4;
    long cap = (long)prefetch * cfg->batch;
    if (cap > n) cap = n;
    l->cap = (int)cap;
    int mixing = !cfg->eval && (cfg->mixup_alpha > 0.0f || cfg->cutmix_alpha > 0.0f);
    size_t chw = (size_t)l->chw;
    l->perm = malloc((size_t)n * sizeof *l->perm);
    l->sx = malloc((size_t)l->cap * chw * sizeof *l->sx);
    l->sidx = calloc((size_t)l->cap, sizeof *l->sidx);
    l->src = calloc((size_t)l->cap, sizeof *l->src);
    l->state = calloc((size_t)l->cap, 1);
    l->smsg = calloc((size_t)l->cap, SLOT_MSG);
    l->bx = malloc((size_t)cfg->batch * chw * sizeof *l->bx);
    l->blabel = malloc((size_t)cfg->batch * sizeof *l->blabel);
    l->bidx = malloc((size_t)cfg->batch * sizeof *l->bidx);
    if (mixing) l->bsoft = malloc((size_t)cfg->batch * l->k * sizeof *l->bsoft);
    if (!l->perm || !l->sx || !l->sidx || !l->src || !l->state || !l->smsg || !l->bx || !l->blabel || !l->bidx ||
        (mixing && !l->bsoft)) {
        acv_loader_free(l);
        return acv_error(ACV_ENOMEM, "loader: cannot allocate the ring of %d samples of %zu floats", l->cap, chw);
    }
    int nt = cfg->threads;
    if (nt == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        nt = cpus < 1 ? 1 : cpus > 4 ? 4 : (int)cpus;
    }
    l->threads = calloc((size_t)nt, sizeof *l->threads);
    if (!l->threads) {
        acv_loader_free(l);
        return acv_error(ACV_ENOMEM, "out of memory");
    }
    for (int t = 0; t < nt; t++) {
        if (pthread_create(&l->threads[t], NULL, worker_main, l) != 0) {
            acv_loader_free(l);
            return acv_error(ACV_EIO, "loader: cannot start worker thread %d of %d", t + 1, nt);
        }
        l->nthreads++;
    }
    *out = l;
    return 0;
}

void acv_loader_free(acv_loader *l)
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
    free(l->threads);
    free(l->perm);
    free(l->sx);
    free(l->sidx);
    free(l->src);
    free(l->state);
    free(l->smsg);
    free(l->bx);
    free(l->blabel);
    free(l->bidx);
    free(l->bsoft);
    free(l);
}

/* ---- epochs and batches (caller's thread) ----------------------------------------- */

void acv_loader_start_epoch(acv_loader *l, int epoch)
{
    ACV_ASSERT(epoch >= 0);
    pthread_mutex_lock(&l->mu);
    l->accepting = 0;
    while (l->busy > 0) pthread_cond_wait(&l->done_cv, &l->mu);
    for (int i = 0; i < l->n; i++) l->perm[i] = i;
    if (l->cfg.shuffle) {
        acv_rng r;
        acv_rng_seed3(&r, l->cfg.seed, (uint64_t)epoch, STREAM_SHUFFLE);
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
    l->batch_no = 0;
    l->epoch_failed = 0;
    l->done = 0;
    l->fatal = 0;
}

/* Is rc a problem with one sample (skip it) rather than with the loader (stop)? */
static int is_sample_error(int rc)
{
    return rc == ACV_EFORMAT || rc == ACV_EIO || rc == ACV_ENOTFOUND || rc == ACV_ERANGE ||
           rc == ACV_EUNSUPPORTED || rc == ACV_ESHAPE || rc == ACV_EINVAL;
}

int acv_loader_next(acv_loader *l, acv_batch *b)
{
    memset(b, 0, sizeof *b);
    if (!l->started) return acv_error(ACV_EINVAL, "loader: acv_loader_start_epoch was not called");
    if (l->fatal) return l->fatal;
    if (l->done) return 0;
    const acv_loader_config *cfg = &l->cfg;
    size_t chw = (size_t)l->chw;
    int cnt = 0;
    while (cnt < cfg->batch && l->consumed < l->n) {
        int s = (int)(l->consumed % l->cap);
        pthread_mutex_lock(&l->mu);
        while (l->state[s] == SLOT_EMPTY) pthread_cond_wait(&l->done_cv, &l->mu);
        int st = l->state[s];
        pthread_mutex_unlock(&l->mu);
        /* The slot is ours until consumed advances past it. */
        if (st == SLOT_READY) {
            memcpy(l->bx + (size_t)cnt * chw, l->sx + (size_t)s * chw, chw * sizeof *l->bx);
            l->bidx[cnt] = l->sidx[s];
            l->blabel[cnt] = acv_cls_dataset_label(l->ds, l->sidx[s]);
            cnt++;
        } else {
            int rc = l->src[s];
            const char *msg = l->smsg + (size_t)s * SLOT_MSG;
            if (!is_sample_error(rc)) {
                l->fatal = acv_error(rc, "loader: %s", msg);
                return l->fatal;
            }
            if (l->skipped == 0) {
                snprintf(l->first_err, sizeof l->first_err, "%s", msg);
                acv_warn("skipping unreadable image (further ones are only counted): %s", msg);
            }
            l->skipped++;
            l->epoch_failed++;
            if (l->epoch_failed * 2 > l->n) {
                l->fatal = acv_error(rc, "loader: more than half of the %d samples could not be read (first: %s)",
                                     l->n, l->first_err);
                return l->fatal;
            }
        }
        pthread_mutex_lock(&l->mu);
        l->state[s] = SLOT_EMPTY;
        l->consumed++;
        pthread_cond_signal(&l->work_cv); /* one slot freed: one more claim possible */
        pthread_mutex_unlock(&l->mu);
    }
    if (l->consumed >= l->n) l->done = 1;
    if (cnt == 0 || (cnt < cfg->batch && cfg->drop_last)) {
        l->done = 1;
        return 0;
    }
    b->n = cnt;
    b->c = cfg->out_c;
    b->h = cfg->out_h;
    b->w = cfg->out_w;
    b->k = l->k;
    b->x = l->bx;
    b->labels = l->blabel;
    b->index = l->bidx;
    if (l->bsoft) {
        memset(l->bsoft, 0, (size_t)cnt * l->k * sizeof *l->bsoft);
        for (int i = 0; i < cnt; i++) l->bsoft[(size_t)i * l->k + l->blabel[i]] = 1.0f;
        acv_rng r;
        acv_rng_seed3(&r, cfg->seed, (uint64_t)l->epoch, STREAM_BATCH(l->batch_no));
        int cut = cfg->cutmix_alpha > 0.0f;
        if (cfg->mixup_alpha > 0.0f && cfg->cutmix_alpha > 0.0f) cut = acv_rng_uniform(&r) < 0.5f;
        if (cut) acv_batch_cutmix(l->bx, l->bsoft, cnt, cfg->out_c, cfg->out_h, cfg->out_w, l->k, cfg->cutmix_alpha, &r);
        else acv_batch_mixup(l->bx, l->bsoft, cnt, l->chw, l->k, cfg->mixup_alpha, &r);
        b->soft = l->bsoft;
    }
    l->batch_no++;
    return 1;
}

int acv_loader_num_batches(const acv_loader *l)
{
    int b = l->cfg.batch;
    return l->cfg.drop_last ? l->n / b : (l->n + b - 1) / b;
}

long acv_loader_skipped(const acv_loader *l) { return l->skipped; }
const char *acv_loader_first_error(const acv_loader *l) { return l->first_err; }
