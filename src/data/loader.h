/* A background-threaded batch loader for classification datasets.
 *
 * Worker threads decode and augment the samples of the coming batches while the caller
 * trains on the current one. Memory is bounded: at most `prefetch` batches' worth of
 * samples are in flight. Results do not depend on thread scheduling or thread count:
 * the epoch order is a seeded shuffle of (seed, epoch), every random choice for dataset
 * sample i in epoch e comes from acv_rng_seed3(seed, e, i), and batch-level mixing
 * (mixup/cutmix) from a generator seeded by (seed, e, batch number), so the same
 * configuration gives bitwise the same batches with 1 or 16 threads.
 *
 * Per-sample pipeline in train mode (each step only when enabled):
 *   decode (as out_c channels) -> RandomResizedCrop to out size, or plain resize when
 *   rrc_scale_lo is 0 -> pad-and-random-crop -> horizontal flip -> rotation -> color
 *   jitter -> to tensor, (v/255 - mean) / std -> random erasing.
 * Then per batch: mixup or cutmix (soft targets).
 *
 * Eval mode (cfg.eval) has no randomness and mirrors the training geometry: when
 * training used RandomResizedCrop (rrc_scale_lo > 0), the image is resized (keeping its
 * aspect) so that it covers out_w/eval_crop_frac x out_h/eval_crop_frac, then centre-
 * cropped to out_w x out_h (the ImageNet "resize 256, crop 224" convention); otherwise
 * it is plain-resized to out_w x out_h (MNIST/CIFAR-style small images, where training
 * resized the whole image too). Resizing uses the area filter when shrinking and
 * bilinear when enlarging.
 *
 * Unreadable samples (missing, corrupt or oversized files) are skipped and counted: the
 * batch is filled with the next readable samples. When more than half of an epoch's
 * samples fail, acv_loader_next returns an error instead. */
#ifndef ACV_DATA_LOADER_H
#define ACV_DATA_LOADER_H

#include <stdint.h>

#include "data/dataset.h"

typedef struct acv_loader_config {
    int batch;              /* samples per batch, >= 1 */
    int threads;            /* worker threads; 0: min(4, online CPUs) */
    int prefetch;           /* samples in flight, in batches; 0: 4 */
    int shuffle;            /* nonzero: seeded shuffle each epoch; 0: dataset order */
    int drop_last;          /* nonzero: an incomplete last batch is not returned */
    uint64_t seed;
    int out_c, out_h, out_w;/* output shape: channels 1 or 3, size in pixels */
    float mean[3], std[3];  /* per-channel normalization (only [0] used when out_c is 1) */
    int eval;               /* nonzero: no augmentation, deterministic geometry (see above) */
    float eval_crop_frac;   /* eval after RandomResizedCrop training; 0: 0.875 */

    /* Augmentation (ignored in eval mode). */
    float rrc_scale_lo, rrc_scale_hi; /* RandomResizedCrop area range, 0 < lo <= hi <= 1;
                                         lo = 0: plain resize to out size */
    float rrc_ratio_lo, rrc_ratio_hi; /* aspect ratio range (w/h); 0: 3/4 .. 4/3 */
    int pad_crop;           /* pad P pixels with 0, then a random out_w x out_h crop; 0: off */
    float hflip;            /* probability of a horizontal flip */
    float rotate_deg;       /* rotation uniform in [-d, d] degrees, fill 0; 0: off */
    float jitter_brightness, jitter_contrast, jitter_saturation, jitter_hue; /* ColorJitter */
    float erase_p;          /* RandomErasing probability (area 0.02-0.33, ratio 0.3-3.3) */
    float mixup_alpha;      /* batch mixup Beta(alpha, alpha); 0: off */
    float cutmix_alpha;     /* batch cutmix; with mixup also on, each batch uses one of
                               the two with probability 1/2 */
} acv_loader_config;

typedef struct acv_batch {
    int n;                  /* samples in this batch (<= cfg.batch) */
    int c, h, w;            /* sample shape */
    int k;                  /* classes */
    float *x;               /* (n, c, h, w) */
    int *labels;            /* (n) hard labels (before mixing) */
    float *soft;            /* (n, k) mixed targets when mixup/cutmix is on, else NULL */
    int *index;             /* (n) dataset index of each sample */
} acv_batch;
/* The arrays of an acv_batch belong to the loader and stay valid until the next call of
 * acv_loader_next, acv_loader_start_epoch or acv_loader_free. */

typedef struct acv_loader acv_loader;

/* Fills cfg with the defaults: batch 64, threads 0, prefetch 4, shuffle on, seed 0,
 * out 3 x 224 x 224, mean 0 and std 1, every augmentation off. */
void acv_loader_config_default(acv_loader_config *cfg);

/* Creates a loader over ds (borrowed: ds must outlive the loader) and starts its worker
 * threads (idle until acv_loader_start_epoch). A bad configuration is ACV_EINVAL naming
 * the field. On success *out is owned by the caller (acv_loader_free). */
int acv_loader_new(const acv_cls_dataset *ds, const acv_loader_config *cfg, acv_loader **out);

/* Begins epoch `epoch` (>= 0): the order is a seeded shuffle of (seed, epoch), or the
 * dataset order without shuffle. Work still in flight from an unfinished epoch is
 * discarded first. */
void acv_loader_start_epoch(acv_loader *l, int epoch);

/* Fills *b with the next batch and returns 1; returns 0 at the end of the epoch (and
 * again on every later call until the next start_epoch); returns a negative ACV_E* code
 * when no epoch was started, when more than half of the epoch's samples were unreadable,
 * or on an error that is not about one sample (out of memory). */
int acv_loader_next(acv_loader *l, acv_batch *b);

/* Batches per epoch when every sample is readable. */
int acv_loader_num_batches(const acv_loader *l);
/* Unreadable samples skipped since the loader was created. */
long acv_loader_skipped(const acv_loader *l);
/* The message of the first skipped sample ("" when none). */
const char *acv_loader_first_error(const acv_loader *l);

/* The eval-mode geometry of cfg (see the top of this file) applied to *im in place:
 * afterwards im is cfg->out_w x cfg->out_h with its channel count unchanged (convert to
 * cfg->out_c first). Single-image inference uses this so that it preprocesses exactly
 * as evaluation through the loader does. On failure *im is still a valid image that the
 * caller frees. */
int acv_loader_eval_geometry(const acv_loader_config *cfg, acv_image *im);

/* Stops and joins the worker threads (also in the middle of an epoch) and frees
 * everything. NULL is a no-op. */
void acv_loader_free(acv_loader *l);

#endif
