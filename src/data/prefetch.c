/* Worker threads and the bounded ring of the batch loaders (see prefetch.h).
 *
 * Workers claim positions under the mutex while next_pos < consumed + cap, so a slot is
 * written only after the caller has consumed its previous position; the slot then belongs
 * to the worker until it marks it READY or FAILED, and to the caller until consumed moves
 * past it. */
#include "data/prefetch.h"

#include "autocv/error.h"
#include "base/log.h"
#include "base/rng.h"

#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { SLOT_EMPTY = 0, SLOT_READY, SLOT_FAILED };
#define SLOT_MSG 256
/* Generator stream of the epoch shuffle: it can never collide with a dataset index. */
#define STREAM_SHUFFLE UINT64_MAX

struct acv__prefetch {
    acv__prefetch_config c;

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
    int busy;                   /* workers processing an item */

    /* ring */
    int *sidx;                  /* (cap) dataset index */
    int *src;                   /* (cap) error code of failed slots */
    uint8_t *state;             /* (cap) SLOT_* */
    char *smsg;                 /* (cap, SLOT_MSG) error message of failed slots */

    /* caller side (touched only by the caller's thread) */
    long epoch_failed;
    int done;                   /* epoch exhausted */
    int fatal;                  /* sticky error of the epoch */
    long skipped;
    char first_err[512];
};

/* ---- worker threads --------------------------------------------------------------- */

static void *worker_main(void *arg)
{
    acv__prefetch *p = arg;
    omp_set_num_threads(1); /* the loader's parallelism is its threads; no nested teams */
    pthread_mutex_lock(&p->mu);
    while (!p->stop) {
        if (!(p->accepting && p->next_pos < p->c.n && p->next_pos < p->consumed + p->c.cap)) {
            pthread_cond_wait(&p->work_cv, &p->mu);
            continue;
        }
        long pos = p->next_pos++;
        int idx = p->perm[pos], epoch = p->epoch, s = (int)(pos % p->c.cap);
        p->busy++;
        pthread_mutex_unlock(&p->mu);

        int rc = p->c.process(p->c.ctx, idx, epoch, s);
        if (rc) snprintf(p->smsg + (size_t)s * SLOT_MSG, SLOT_MSG, "%s", acv_errmsg());

        pthread_mutex_lock(&p->mu);
        p->busy--;
        p->sidx[s] = idx;
        p->src[s] = rc;
        p->state[s] = rc ? SLOT_FAILED : SLOT_READY;
        pthread_cond_broadcast(&p->done_cv);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* ---- construction ----------------------------------------------------------------- */

int acv__prefetch_new(const acv__prefetch_config *c, acv__prefetch **out)
{
    *out = NULL;
    ACV_ASSERT(c->n >= 1 && c->cap >= 1 && c->cap <= c->n && c->batch >= 1);
    acv__prefetch *p = calloc(1, sizeof *p);
    if (!p) return acv_error(ACV_ENOMEM, "out of memory");
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work_cv, NULL);
    pthread_cond_init(&p->done_cv, NULL);
    p->c = *c;
    p->perm = malloc((size_t)c->n * sizeof *p->perm);
    p->sidx = calloc((size_t)c->cap, sizeof *p->sidx);
    p->src = calloc((size_t)c->cap, sizeof *p->src);
    p->state = calloc((size_t)c->cap, 1);
    p->smsg = calloc((size_t)c->cap, SLOT_MSG);
    if (!p->perm || !p->sidx || !p->src || !p->state || !p->smsg) {
        acv__prefetch_free(p);
        return acv_error(ACV_ENOMEM, "out of memory");
    }
    *out = p;
    return 0;
}

int acv__prefetch_start(acv__prefetch *p)
{
    int nt = p->c.threads;
    if (nt == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        nt = cpus < 1 ? 1 : cpus > 4 ? 4 : (int)cpus;
    }
    p->threads = calloc((size_t)nt, sizeof *p->threads);
    if (!p->threads) return acv_error(ACV_ENOMEM, "out of memory");
    for (int t = 0; t < nt; t++) {
        if (pthread_create(&p->threads[t], NULL, worker_main, p) != 0)
            return acv_error(ACV_EIO, "%s: cannot start worker thread %d of %d", p->c.name, t + 1, nt);
        p->nthreads++;
    }
    return 0;
}

void acv__prefetch_free(acv__prefetch *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    p->accepting = 0;
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
    for (int t = 0; t < p->nthreads; t++) pthread_join(p->threads[t], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->work_cv);
    pthread_cond_destroy(&p->done_cv);
    free(p->threads);
    free(p->perm);
    free(p->sidx);
    free(p->src);
    free(p->state);
    free(p->smsg);
    free(p);
}

/* ---- epochs and batches (caller's thread) ----------------------------------------- */

void acv__prefetch_epoch(acv__prefetch *p, int epoch)
{
    ACV_ASSERT(epoch >= 0);
    pthread_mutex_lock(&p->mu);
    p->accepting = 0;
    while (p->busy > 0) pthread_cond_wait(&p->done_cv, &p->mu);
    if (p->c.quiet) p->c.quiet(p->c.ctx);
    for (int i = 0; i < p->c.n; i++) p->perm[i] = i;
    if (p->c.shuffle) {
        acv_rng r;
        acv_rng_seed3(&r, p->c.seed, (uint64_t)epoch, STREAM_SHUFFLE);
        acv_rng_shuffle(&r, p->perm, p->c.n);
    }
    memset(p->state, SLOT_EMPTY, (size_t)p->c.cap);
    p->epoch = epoch;
    p->next_pos = 0;
    p->consumed = 0;
    p->started = 1;
    p->accepting = 1;
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
    p->epoch_failed = 0;
    p->done = 0;
    p->fatal = 0;
}

/* Is rc a problem with one item (skip it) rather than with the loader (stop)? */
static int is_item_error(int rc)
{
    return rc == ACV_EFORMAT || rc == ACV_EIO || rc == ACV_ENOTFOUND || rc == ACV_ERANGE || rc == ACV_EUNSUPPORTED ||
           rc == ACV_ESHAPE || rc == ACV_EINVAL;
}

int acv__prefetch_next(acv__prefetch *p)
{
    const acv__prefetch_config *c = &p->c;
    if (!p->started) return acv_error(ACV_EINVAL, "%s: %s was not called", c->name, c->epoch_fn);
    if (p->fatal) return p->fatal;
    if (p->done) return 0;
    int cnt = 0;
    while (cnt < c->batch && p->consumed < c->n) {
        int s = (int)(p->consumed % c->cap);
        pthread_mutex_lock(&p->mu);
        while (p->state[s] == SLOT_EMPTY) pthread_cond_wait(&p->done_cv, &p->mu);
        int st = p->state[s];
        pthread_mutex_unlock(&p->mu);
        /* The slot is ours until consumed advances past it. */
        if (st == SLOT_READY) {
            int rc = c->take(c->ctx, s, p->sidx[s], cnt);
            if (rc) return p->fatal = rc;
            cnt++;
        } else {
            int rc = p->src[s];
            const char *msg = p->smsg + (size_t)s * SLOT_MSG;
            if (!is_item_error(rc)) {
                p->fatal = acv_error(rc, "%s: %s", c->name, msg);
                return p->fatal;
            }
            if (p->skipped == 0) {
                snprintf(p->first_err, sizeof p->first_err, "%s", msg);
                acv_warn("skipping unreadable image (further ones are only counted): %s", msg);
            }
            p->skipped++;
            p->epoch_failed++;
            if (p->epoch_failed * 2 > c->n) {
                p->fatal = acv_error(rc, "%s: more than half of the %d %s could not be read (first: %s)", c->name,
                                     c->n, c->what, p->first_err);
                return p->fatal;
            }
        }
        pthread_mutex_lock(&p->mu);
        p->state[s] = SLOT_EMPTY;
        p->consumed++;
        pthread_cond_signal(&p->work_cv); /* one slot freed: one more claim possible */
        pthread_mutex_unlock(&p->mu);
    }
    if (p->consumed >= c->n) p->done = 1;
    if (cnt == 0 || (cnt < c->batch && c->drop_last)) {
        p->done = 1;
        return 0;
    }
    return cnt;
}

int acv__prefetch_num_batches(const acv__prefetch *p)
{
    int b = p->c.batch;
    return p->c.drop_last ? p->c.n / b : (p->c.n + b - 1) / b;
}

long acv__prefetch_skipped(const acv__prefetch *p) { return p->skipped; }
const char *acv__prefetch_first_error(const acv__prefetch *p) { return p->first_err; }
