/* The background machinery shared by the classification and detection batch loaders
 * (data/loader.h, data/det_loader.h). Not a public interface.
 *
 * The epoch is a sequence of positions 0..n-1 (perm[p] is the dataset index: the dataset
 * order, or a seeded shuffle of (seed, epoch)). Worker threads claim positions strictly in
 * order and have the loader process each one into slot p % cap of its ring, so at most cap
 * items are in flight. The caller's thread consumes slots in position order, handing
 * readable items to the loader and skipping failed ones (counted; the first message kept
 * and logged once), so batch composition depends only on which items fail, never on
 * timing. What an item is, and where a slot keeps it, belongs to the loader: this module
 * only knows slot numbers, the dataset index and the error of each slot. */
#ifndef ACV_DATA_PREFETCH_H
#define ACV_DATA_PREFETCH_H

#include <stdint.h>

/* The most worker threads a loader accepts. */
#define ACV__PREFETCH_MAX_THREADS 64

typedef struct acv__prefetch_config {
    const char *name;       /* the loader in messages: "loader" */
    const char *what;       /* its items, plural: "samples" */
    const char *epoch_fn;   /* the function that begins an epoch, named when it was not called */
    int n;                  /* dataset items, >= 1 */
    int cap;                /* ring slots, 1..n */
    int batch;              /* items per batch, >= 1 */
    int drop_last;          /* nonzero: an incomplete last batch is not returned */
    int threads;            /* worker threads, 0..ACV__PREFETCH_MAX_THREADS; 0: min(4, online CPUs) */
    int shuffle;            /* nonzero: seeded shuffle each epoch; 0: dataset order */
    uint64_t seed;
    /* Worker threads: processes dataset item idx of epoch into ring slot `slot` (which is
     * the caller's alone until it returns) and returns 0, or an ACV_E* code with its
     * message set. Several run at once, on different slots. */
    int (*process)(void *ctx, int idx, int epoch, int slot);
    /* Caller's thread, for each readable slot in position order: adds the item of slot
     * (dataset item idx) to the batch being built as its item i. A nonzero return is an
     * ACV_E* code that ends the epoch with that error (sticky until the next epoch). */
    int (*take)(void *ctx, int slot, int idx, int i);
    /* Optional, caller's thread: called by acv__prefetch_epoch while no worker is
     * processing, before the new epoch's work begins (the place to change what workers
     * read). */
    void (*quiet)(void *ctx);
    void *ctx;              /* passed to the three callbacks */
} acv__prefetch_config;

typedef struct acv__prefetch acv__prefetch;

/* Allocates the ring's bookkeeping for c (copied; its strings must stay valid). ACV_ENOMEM
 * when out of memory, with a plain message the loader may replace with its own. On
 * success *out is owned by the caller (acv__prefetch_free). No thread runs yet. */
int acv__prefetch_new(const acv__prefetch_config *c, acv__prefetch **out);

/* Starts the worker threads, idle until acv__prefetch_epoch; call once, when the loader is
 * ready for the callbacks. On failure the threads already started are joined by
 * acv__prefetch_free. */
int acv__prefetch_start(acv__prefetch *p);

/* Begins epoch `epoch` (>= 0); work still in flight from an unfinished epoch is discarded
 * first. */
void acv__prefetch_epoch(acv__prefetch *p, int epoch);

/* Builds the next batch through c.take and returns its size (>= 1); 0 at the end of the
 * epoch (and again on every later call until the next epoch); a negative ACV_E* code when
 * no epoch was started, when more than half of the epoch's items were unreadable, or on an
 * error that is not about one item (sticky until the next epoch). */
int acv__prefetch_next(acv__prefetch *p);

/* Batches per epoch when every item is readable. */
int acv__prefetch_num_batches(const acv__prefetch *p);
/* Unreadable items skipped since p was created, and the first one's message ("" when none). */
long acv__prefetch_skipped(const acv__prefetch *p);
const char *acv__prefetch_first_error(const acv__prefetch *p);

/* Stops and joins the worker threads (also in the middle of an epoch) and frees p. NULL is
 * a no-op. */
void acv__prefetch_free(acv__prefetch *p);

#endif
