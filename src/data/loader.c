/* Threaded batch loader (see loader.h).
 *
 * The worker threads, the ring and the epoch order are data/prefetch.h's: a ring slot here
 * holds one processed sample (chw floats), and the ring has cap = prefetch * batch slots, so
 * at most cap samples are in flight. The caller's thread copies the readable samples of
 * each batch out of the ring, in position order, and then mixes the batch. */
#include "data/loader.h"

#include "autocv/error.h"
#include "base/rng.h"
#include "data/prefetch.h"
#include "vision/transform.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Generator streams of batch mixing: they can never collide with a sample index (nor with
 * prefetch.c's shuffle stream, UINT64_MAX). */
#define STREAM_BATCH(b) (UINT64_MAX - 1 - (uint64_t)(b))

struct acv_loader {
    const acv_cls_dataset *ds;  /* borrowed */
    acv_loader_config cfg;
    int k, chw;
    acv__prefetch *pf;

    /* sample ring (slot s written by the worker that processes it, see prefetch.h) */
    int cap;
    float *sx;                  /* (cap, chw) */

    /* caller side (touched only by the caller's thread) */
    int epoch;
    long batch_no;
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

/* prefetch.h's process callback: sample idx of epoch into ring slot s. */
static int process_slot(void *ctx, int idx, int epoch, int s)
{
    acv_loader *l = ctx;
    return process_sample(l, idx, epoch, l->sx + (size_t)s * l->chw);
}

/* prefetch.h's take callback (caller's thread): the sample in slot s becomes item i of the
 * batch. */
static int take_slot(void *ctx, int s, int idx, int i)
{
    acv_loader *l = ctx;
    size_t chw = (size_t)l->chw;
    memcpy(l->bx + (size_t)i * chw, l->sx + (size_t)s * chw, chw * sizeof *l->bx);
    l->bidx[i] = idx;
    l->blabel[i] = acv_cls_dataset_label(l->ds, idx);
    return 0;
}

/* ---- construction ----------------------------------------------------------------- */

static int check_config(const acv_loader_config *c)
{
#define BAD(...) return acv_error(ACV_EINVAL, "loader config: " __VA_ARGS__)
    if (c->batch < 1) BAD("batch %d must be at least 1", c->batch);
    if (c->threads < 0 || c->threads > ACV__PREFETCH_MAX_THREADS)
        BAD("threads %d not in [0, %d]", c->threads, ACV__PREFETCH_MAX_THREADS);
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
    l->ds = ds;
    l->cfg = *cfg;
    l->k = acv_cls_dataset_num_classes(ds);
    l->chw = cfg->out_c * cfg->out_h * cfg->out_w;
    int prefetch = cfg->prefetch ? cfg->prefetch : 4;
    long cap = (long)prefetch * cfg->batch;
    if (cap > n) cap = n;
    l->cap = (int)cap;
    int mixing = !cfg->eval && (cfg->mixup_alpha > 0.0f || cfg->cutmix_alpha > 0.0f);
    size_t chw = (size_t)l->chw;
    acv__prefetch_config pc = {
        .name = "loader", .what = "samples", .epoch_fn = "acv_loader_start_epoch",
        .n = n, .cap = l->cap, .batch = cfg->batch, .drop_last = cfg->drop_last, .threads = cfg->threads,
        .shuffle = cfg->shuffle, .seed = cfg->seed, .process = process_slot, .take = take_slot, .ctx = l,
    };
    rc = acv__prefetch_new(&pc, &l->pf);
    l->sx = malloc((size_t)l->cap * chw * sizeof *l->sx);
    l->bx = malloc((size_t)cfg->batch * chw * sizeof *l->bx);
    l->blabel = malloc((size_t)cfg->batch * sizeof *l->blabel);
    l->bidx = malloc((size_t)cfg->batch * sizeof *l->bidx);
    if (mixing) l->bsoft = malloc((size_t)cfg->batch * l->k * sizeof *l->bsoft);
    if (rc || !l->sx || !l->bx || !l->blabel || !l->bidx || (mixing && !l->bsoft)) {
        acv_loader_free(l);
        return acv_error(ACV_ENOMEM, "loader: cannot allocate the ring of %d samples of %zu floats", (int)cap, chw);
    }
    if ((rc = acv__prefetch_start(l->pf))) {
        acv_loader_free(l);
        return rc;
    }
    *out = l;
    return 0;
}

void acv_loader_free(acv_loader *l)
{
    if (!l) return;
    acv__prefetch_free(l->pf); /* joins the workers first */
    free(l->sx);
    free(l->bx);
    free(l->blabel);
    free(l->bidx);
    free(l->bsoft);
    free(l);
}

/* ---- epochs and batches (caller's thread) ----------------------------------------- */

void acv_loader_start_epoch(acv_loader *l, int epoch)
{
    acv__prefetch_epoch(l->pf, epoch);
    l->epoch = epoch;
    l->batch_no = 0;
}

int acv_loader_next(acv_loader *l, acv_batch *b)
{
    memset(b, 0, sizeof *b);
    int cnt = acv__prefetch_next(l->pf);
    if (cnt <= 0) return cnt;
    const acv_loader_config *cfg = &l->cfg;
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

int acv_loader_num_batches(const acv_loader *l) { return acv__prefetch_num_batches(l->pf); }
long acv_loader_skipped(const acv_loader *l) { return acv__prefetch_skipped(l->pf); }
const char *acv_loader_first_error(const acv_loader *l) { return acv__prefetch_first_error(l->pf); }
