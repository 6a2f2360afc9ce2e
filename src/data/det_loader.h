/* A background-threaded batch loader for detection datasets (data/det_dataset.h).
 *
 * Same design and guarantees as the classification loader (data/loader.h): worker threads
 * decode and augment the coming samples into a bounded ring while the caller trains; the
 * epoch order is a seeded shuffle of (seed, epoch); every random choice for dataset image i
 * in epoch e - including which other images join its mosaic - comes from
 * acv_rng_seed3(seed, e, i), so the same seed and epoch give bitwise the same batches with
 * 1 or 16 workers.
 *
 * Train mode (opts.train): image i is decoded as RGB, resized so that its long side is imgsz,
 * and passed through acv_det_augment (vision/det_transform.h) - with probability aug.mosaic
 * together with 3 other images drawn uniformly from the dataset (an unreadable partner is
 * replaced by another draw, up to 4 tries). Eval mode: a centred letterbox to imgsz x imgsz
 * (acv_det_letterbox), nothing random.
 *
 * Output: float NCHW in RGB order, x = (v / 255 - mean[c]) / std[c] (mean 0 and std 1 give
 * [0, 1]), boxes in the pixels of the output image (crowd / difficult flags kept).
 *
 * Unreadable images (missing, corrupt, oversized, or a size that disagrees with the
 * annotation) are skipped and counted; the first one's message is kept and logged once. When
 * more than half of an epoch's images fail, acv_det_loader_next returns an error. */
#ifndef ACV_DATA_DET_LOADER_H
#define ACV_DATA_DET_LOADER_H

#include <stdint.h>

#include "data/det_dataset.h"
#include "vision/det_transform.h"

typedef struct acv_det_loader_opts {
    int batch;              /* images per batch, >= 1; 16 */
    int imgsz;              /* output S x S, a multiple of 32 in [32, 4096]; 640 */
    int shuffle;            /* nonzero: seeded shuffle each epoch; 0: dataset order; 1 */
    uint64_t seed;          /* 0 */
    int workers;            /* worker threads; 0: min(4, online CPUs) */
    int prefetch;           /* images in flight, in batches; 0: 2 */
    int train;              /* nonzero: augment; 0: letterbox only; 1 */
    int drop_last;          /* nonzero: an incomplete last batch is not returned; 0 */
    float mean[3], std[3];  /* per-channel normalization; 0 and 1 */
    acv_det_aug_opts aug;   /* train mode only; acv_det_aug_opts_default */
} acv_det_loader_opts;

/* Where a batch image came from, for mapping predictions back to the original pixels. */
typedef struct acv_det_item {
    int index;              /* dataset image index */
    int orig_w, orig_h;     /* decoded size of the image */
    acv_letterbox_info lb;  /* eval mode: output = original * lb.scale + lb.pad; train mode:
                               scale 0 (the geometry was random) */
} acv_det_item;

typedef struct acv_det_batch {
    int n;                  /* images in this batch (<= opts.batch) */
    int c, h, w;            /* 3, imgsz, imgsz */
    float *x;               /* (n, c, h, w) */
    int nbox;               /* boxes in the batch */
    acv_box *boxes;         /* (nbox): image i's boxes are boxes[box_start[i] .. box_start[i+1]) */
    int *box_start;         /* (n + 1) */
    acv_det_item *items;    /* (n) */
} acv_det_batch;
/* The arrays of an acv_det_batch belong to the loader and stay valid until the next call of
 * acv_det_loader_next, acv_det_loader_epoch or acv_det_loader_free. */

typedef struct acv_det_loader acv_det_loader;

/* Fills o with the defaults listed on each field. */
void acv_det_loader_opts_default(acv_det_loader_opts *o);

/* Creates a loader over ds (borrowed: ds must outlive the loader) and starts its workers
 * (idle until acv_det_loader_epoch). A bad option is ACV_EINVAL naming it; an empty dataset
 * is ACV_EINVAL. On success *out is owned by the caller (acv_det_loader_free). */
int acv_det_loader_new(const acv_det_dataset *ds, const acv_det_loader_opts *o, acv_det_loader **out);

/* Replaces the augmentation options from the next acv_det_loader_epoch on (e.g. mosaic 0 for
 * the last close_mosaic epochs). Bad options are ACV_EINVAL and change nothing. */
int acv_det_loader_set_aug(acv_det_loader *l, const acv_det_aug_opts *aug);

/* Begins epoch `epoch` (>= 0); work still in flight from an unfinished epoch is discarded. */
void acv_det_loader_epoch(acv_det_loader *l, int epoch);

/* Fills *b with the next batch and returns 1; returns 0 at the end of the epoch (and on every
 * later call until the next epoch); a negative ACV_E* code when no epoch was started, when
 * more than half of the epoch's images were unreadable, or on an error that is not about one
 * image (out of memory). */
int acv_det_loader_next(acv_det_loader *l, acv_det_batch *b);

/* Batches per epoch when every image is readable. */
int acv_det_loader_num_batches(const acv_det_loader *l);
/* Unreadable images skipped since the loader was created, and the first one's message. */
long acv_det_loader_skipped(const acv_det_loader *l);
const char *acv_det_loader_first_error(const acv_det_loader *l);

/* Stops and joins the workers (also mid-epoch) and frees everything. NULL is a no-op. */
void acv_det_loader_free(acv_det_loader *l);

#endif
