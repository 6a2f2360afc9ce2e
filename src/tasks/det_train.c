/* The detection trainer: YOLOv8-style training of det-s / det-m on a COCO, YOLO or VOC
 * dataset with mosaic augmentation (off for the last epochs), AdamW or SGD, warmup and a
 * cosine schedule, EMA weights, validation AP each epoch, checkpoints for --resume. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "autocv/error.h"
#include "autocv/version.h"
#include "base/file.h"
#include "base/progress.h"
#include "base/timeutil.h"
#include "data/det_dataset.h"
#include "data/det_loader.h"
#include "metrics/det.h"
#include "nn/backend.h"
#include "metrics/det_count.h"
#include "nn/optim.h"
#include "nn/safetensors.h"
#include "nn/schedule.h"
#include "tasks/det_task.h"
#include "tasks/train_util.h"

void acv_det_train_opts_init(acv_det_train_opts *o)
{
    memset(o, 0, sizeof *o);
    o->model = "auto";
    o->lr = o->weight_decay = o->warmup_epochs = o->ema_decay = o->class_balance = -1;
    o->mosaic = o->fliplr = o->flipud = o->scale = o->degrees = o->translate = -1;
    o->close_mosaic = -1;
    o->patience = 0;
    o->log_every = 10;
}

/* The resolved configuration, stored in the checkpoint. */
typedef struct cfg_t {
    char model[32];
    int epochs, batch, imgsz, close_mosaic, val_every, patience;
    double lr, weight_decay, warmup_epochs, ema_decay;
    double class_balance;    /* the loss's class balance (acv_det_loss_opts.balance) */
    acv_det_aug_opts aug;
    uint64_t seed;
    char backbone[1024];     /* the classifier the backbone came from ("" for the detector's own) */
    int freeze_backbone;
} cfg_t;

static json_t *cfg_json(const cfg_t *c)
{
    json_t *o = json_pack("{s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:f, s:f, s:f, s:f, s:f, s:I, s:{s:f, s:f, s:f, s:f, s:f, s:f}}",
                     "model", c->model, "epochs", c->epochs, "batch", c->batch, "imgsz", c->imgsz, "close_mosaic",
                     c->close_mosaic, "val_every", c->val_every, "patience", c->patience, "lr", c->lr,
                     "weight_decay", c->weight_decay, "warmup_epochs", c->warmup_epochs, "ema", c->ema_decay,
                     "class_balance", c->class_balance, "seed", (json_int_t)c->seed, "aug", "mosaic",
                     (double)c->aug.mosaic, "fliplr", (double)c->aug.fliplr, "flipud", (double)c->aug.flipud, "scale",
                     (double)c->aug.scale, "degrees", (double)c->aug.degrees, "translate", (double)c->aug.translate);
    if (o && c->backbone[0]) {
        json_object_set_new(o, "backbone", json_string(c->backbone));
        json_object_set_new(o, "freeze_backbone", json_boolean(c->freeze_backbone));
    }
    return o;
}

static int cfg_from_json(cfg_t *c, const json_t *o, const char *path)
{
    if (!json_is_object(o)) return acv_error(ACV_EFORMAT, "%s: the checkpoint has no configuration", path);
    snprintf(c->model, sizeof c->model, "%s", json_string_value(json_object_get(o, "model")) ?: "");
#define I(k) c->k = (int)json_integer_value(json_object_get(o, #k))
#define F(k) c->k = json_number_value(json_object_get(o, #k))
    I(epochs); I(batch); I(imgsz); I(close_mosaic); I(val_every); I(patience);
    F(lr); F(weight_decay); F(warmup_epochs);
#undef I
#undef F
    c->ema_decay = json_number_value(json_object_get(o, "ema"));
    c->seed = (uint64_t)json_integer_value(json_object_get(o, "seed"));
    snprintf(c->backbone, sizeof c->backbone, "%s", json_string_value(json_object_get(o, "backbone")) ?: "");
    c->freeze_backbone = json_is_true(json_object_get(o, "freeze_backbone"));
    /* a checkpoint from before the class balance was trained without it */
    json_t *cb = json_object_get(o, "class_balance");
    c->class_balance = cb ? json_number_value(cb) : 1;
    json_t *a = json_object_get(o, "aug");
    acv_det_aug_opts_default(&c->aug);
    c->aug.mosaic = (float)json_number_value(json_object_get(a, "mosaic"));
    c->aug.fliplr = (float)json_number_value(json_object_get(a, "fliplr"));
    c->aug.flipud = (float)json_number_value(json_object_get(a, "flipud"));
    c->aug.scale = (float)json_number_value(json_object_get(a, "scale"));
    c->aug.degrees = (float)json_number_value(json_object_get(a, "degrees"));
    c->aug.translate = (float)json_number_value(json_object_get(a, "translate"));
    if (!acv_det_arch_find(c->model) || c->epochs < 1 || c->batch < 1 || c->imgsz < 64 || c->imgsz % 32)
        return acv_error(ACV_EFORMAT, "%s: checkpoint configuration is invalid", path);
    return 0;
}

/* ---- the run ---------------------------------------------------------------------------------- */

typedef struct state_t {
    int epoch;            /* epochs completed */
    int64_t step;
    double best;          /* best validation AP@[.5:.95] (fitness) */
    int best_epoch, bad_epochs;
    json_t *history;
} state_t;

typedef struct run_t {
    const acv_det_train_opts *o;
    cfg_t c;
    acv_train_out out;
    acv_det_dataset *train, *val;
    acv_det_loader *tl, *vl;
    acv_graph *g;
    acv_det_net net;
    acv_det_loss *loss;
    float *grad, *points, *strides;
    acv_optim *opt;
    acv_ema *ema;
    acv_schedule sched;
    state_t s;
    char *ckpt;
    float *swap_p, *swap_b;
    acv_det_metrics *metrics;
    acv_count_calib *calib; /* the deployed decoding's counts on the val split */
    float *count_thr;      /* per class, from the last validation */
    json_t *samples;       /* the watched validation images' detections of the last validation */
    double t_start, t_loss, t_wait;
    json_t *backbone;      /* {"path", "frozen", "features": [{"stride", "node", "channels", "size"}]} or NULL */
} run_t;

static int save_checkpoint(run_t *r)
{
    json_t *st = json_pack("{s:s, s:i, s:I, s:f, s:i, s:i, s:O, s:o}", "task", "det", "epoch", r->s.epoch, "step",
                           (json_int_t)r->s.step, "best", r->s.best, "best_epoch", r->s.best_epoch, "bad_epochs",
                           r->s.bad_epochs, "history", r->s.history, "config", cfg_json(&r->c));
    if (st && r->c.backbone[0]) { /* --resume rebuilds the network from here, not from the classifier */
        char *gj = acv_graph_to_json(r->g);
        if (!gj) {
            json_decref(st);
            return acv_error_prefix(ACV_EINVAL, "saving the checkpoint: ");
        }
        json_object_set_new(st, "graph", json_string(gj));
        free(gj);
        if (r->backbone) json_object_set(st, "backbone", r->backbone);
    }
    int rc = st ? acv_train_checkpoint_save(r->ckpt, r->g, r->opt, r->ema, st) : acv_error(ACV_ENOMEM, "out of memory");
    json_decref(st);
    return rc;
}

/* Reads the configuration (state false) or restores the whole state from the checkpoint. */
static int load_checkpoint(run_t *r, cfg_t *c, bool state)
{
    json_t *root;
    int rc = state ? acv_train_checkpoint_load(r->ckpt, r->g, r->opt, r->ema, &root)
                   : acv_train_checkpoint_load(r->ckpt, NULL, NULL, NULL, &root);
    if (rc) return rc;
    const char *task = json_string_value(json_object_get(root, "task"));
    if (!task || strcmp(task, "det")) rc = acv_error(ACV_EFORMAT, "%s: not a detection checkpoint", r->ckpt);
    if (!rc && !state) rc = cfg_from_json(c, json_object_get(root, "config"), r->ckpt);
    if (!rc && state) {
        r->s.epoch = (int)json_integer_value(json_object_get(root, "epoch"));
        r->s.step = json_integer_value(json_object_get(root, "step"));
        r->s.best = json_number_value(json_object_get(root, "best"));
        r->s.best_epoch = (int)json_integer_value(json_object_get(root, "best_epoch"));
        r->s.bad_epochs = (int)json_integer_value(json_object_get(root, "bad_epochs"));
        json_t *h = json_object_get(root, "history");
        if (json_is_array(h)) {
            json_decref(r->s.history);
            r->s.history = json_deep_copy(h);
        }
    }
    json_decref(root);
    return rc;
}

static int save_model(run_t *r, json_t *metrics)
{
    acv_model m = {0};
    m.graph = r->g;
    snprintf(m.task, sizeof m.task, "det");
    snprintf(m.arch, sizeof m.arch, "%s", r->c.model);
    m.n_classes = r->train->k;
    m.classes = r->train->names;
    m.in_c = 3;
    m.in_h = m.in_w = r->c.imgsz;
    for (int i = 0; i < 3; i++) {
        m.mean[i] = 0;
        m.std[i] = 1;
    }
    snprintf(m.resize, sizeof m.resize, "letterbox");
    json_t *prov = json_pack("{s:s, s:s, s:s, s:i, s:i, s:o, s:i}", "data", r->o->data, "format", r->train->format,
                             "autocv_version", AUTOCV_VERSION, "train_images", r->train->n, "val_images",
                             r->val ? r->val->n : 0, "config", cfg_json(&r->c), "threads", acv_get_threads());
    if (prov && r->backbone) json_object_set(prov, "backbone", r->backbone);
    m.provenance_json = json_dumps(prov, JSON_COMPACT);
    json_decref(prov);
    m.score_thr = metrics && json_is_array(json_object_get(metrics, "count_thresholds")) ? r->count_thr : NULL;
    m.metrics_json = metrics ? json_dumps(metrics, JSON_INDENT(1) | JSON_REAL_PRECISION(6)) : NULL;
    const char *extra[] = {"checkpoint.safetensors", r->ckpt, NULL};
    int rc = acv_model_save(&m, r->o->out, extra);
    free(m.provenance_json);
    free(m.metrics_json);
    return rc;
}


/* Puts the weights to evaluate/save into the graph (the EMA when on); undo with the same call. */
static void use_eval_weights(run_t *r, bool on) { acv_train_use_ema(r->g, r->ema, r->swap_p, r->swap_b, on); }

/* Validation: mAP on the val loader (letterboxed; boxes mapped back to the original pixels). */
/* A few validation images watched through training (spread over the split): their
 * detections after each epoch, shown by the platform's training board. */
#define N_SAMPLES 6
#define SAMPLE_MAX_BOXES 100
#define COUNT_MAX_DET 1000 /* boxes per image considered for the count thresholds */
#define COUNT_MIN_IMAGES 5 /* val images holding a class before its threshold is chosen (else 0.5) */

static bool is_sample(int index, int n)
{
    int k = n < N_SAMPLES ? n : N_SAMPLES;
    for (int q = 0; q < k; q++)
        if ((int)((int64_t)q * n / k) == index) return true;
    return false;
}

/* A watched image's detections as deployed (one class per box), each class's at its count
 * threshold thr; best first, at most SAMPLE_MAX_BOXES. */
static json_t *sample_json(const run_t *r, const acv_det_image *im, const acv_box *dets, int nd, const float *thr)
{
    json_t *boxes = json_array();
    for (int i = 0; i < nd && json_array_size(boxes) < SAMPLE_MAX_BOXES; i++) {
        if (!(dets[i].score >= thr[dets[i].cls])) continue;
        json_array_append_new(boxes, json_pack("{s:s, s:f, s:[f, f, f, f]}", "label", r->val->names[dets[i].cls],
                                               "score", (double)dets[i].score, "box", (double)dets[i].x1,
                                               (double)dets[i].y1, (double)dets[i].x2, (double)dets[i].y2));
    }
    return json_pack("{s:s, s:i, s:i, s:i, s:o}", "path", im->path ? im->path : "", "width", im->w, "height", im->h,
                     "gt", im->n, "boxes", boxes);
}

static int validate(run_t *r, json_t **out)
{
    *out = NULL;
    json_decref(r->samples);
    r->samples = json_array();
    acv_det_metrics_reset(r->metrics);
    acv_count_calib_reset(r->calib);
    acv_box *sample_box[N_SAMPLES] = {0};
    int sample_n[N_SAMPLES], sample_img[N_SAMPLES];
    for (int k = 0; k < N_SAMPLES; k++) sample_n[k] = -1;
    acv_det_loader_epoch(r->vl, 0);
    acv_det_decode_opts dopts, copts;
    acv_det_decode_opts_init(&dopts);
    dopts.score_thr = 0.001f;
    dopts.multi_label = true;
    /* counting: the deployed decoding (one class per box), every box a threshold could keep */
    acv_det_decode_opts_init(&copts);
    copts.score_thr = ACV_COUNT_THR_MIN;
    copts.max_det = COUNT_MAX_DET;
    acv_box *dets = malloc((size_t)(dopts.max_det > COUNT_MAX_DET ? dopts.max_det : COUNT_MAX_DET) * sizeof *dets);
    if (!dets) return acv_error(ACV_ENOMEM, "out of memory");
    acv_det_batch b;
    int rc, nb = acv_det_loader_num_batches(r->vl), done = 0;
    int per = (4 * r->net.reg_max + r->net.n_classes) * r->net.n_anchors;
    if (r->out.tty) acv_progress_start(&r->out.bar, r->out.f, "validating", nb);
    while ((rc = acv_det_loader_next(r->vl, &b)) == 1) {
        if ((rc = acv_graph_set_batch(r->g, b.n))) break;
        memcpy(acv_graph_data(r->g, r->net.input), b.x, (size_t)b.n * b.c * b.h * b.w * sizeof(float));
        if ((rc = acv_graph_forward(r->g, r->net.output, false, 0))) break;
        const float *y = acv_graph_data(r->g, r->net.output);
        for (int i = 0; i < b.n && !rc; i++) {
            int nd = 0;
            const acv_det_item *it = &b.items[i];
            acv_det_decode_opts_clip(&dopts, it->lb.scale, (float)it->lb.pad_x, (float)it->lb.pad_y, it->orig_w, it->orig_h);
            acv_det_decode_opts_clip(&copts, it->lb.scale, (float)it->lb.pad_x, (float)it->lb.pad_y, it->orig_w, it->orig_h);
            rc = acv_det_decode(y + (size_t)i * per, r->net.n_anchors, r->net.n_classes, r->net.reg_max, r->points,
                                r->strides, &dopts, dets, dopts.max_det, &nd);
            if (!rc) acv_det_unletterbox(dets, nd, it->lb.scale, (float)it->lb.pad_x, (float)it->lb.pad_y, it->orig_w,
                                         it->orig_h);
            const acv_det_image *im = &r->val->images[it->index];
            if (!rc) rc = acv_det_metrics_add_image(r->metrics, im->boxes, im->n, dets, nd);
            if (!rc) rc = acv_det_decode(y + (size_t)i * per, r->net.n_anchors, r->net.n_classes, r->net.reg_max,
                                         r->points, r->strides, &copts, dets, COUNT_MAX_DET, &nd);
            if (!rc) acv_det_unletterbox(dets, nd, it->lb.scale, (float)it->lb.pad_x, (float)it->lb.pad_y, it->orig_w,
                                         it->orig_h);
            if (!rc) rc = acv_count_calib_add(r->calib, im->boxes, im->n, dets, nd);
            if (!rc && is_sample(it->index, r->val->n)) { /* kept until the thresholds are known */
                int k = 0;
                while (k < N_SAMPLES && sample_n[k] >= 0) k++;
                acv_box *keep = k < N_SAMPLES ? malloc((size_t)(nd ? nd : 1) * sizeof *keep) : NULL;
                if (keep) {
                    memcpy(keep, dets, (size_t)nd * sizeof *keep);
                    sample_box[k] = keep;
                    sample_n[k] = nd;
                    sample_img[k] = it->index;
                }
            }
        }
        if (rc) break;
        if (r->out.tty) acv_progress_update(&r->out.bar, ++done, NULL);
    }
    if (r->out.tty) acv_progress_clear(&r->out.bar);
    free(dets);
    if (rc >= 0) rc = acv_det_metrics_to_json(r->metrics, out);
    /* the count thresholds that count the val images best; the counting figures with them */
    if (!rc && !(rc = acv_count_calib_best(r->calib, COUNT_MIN_IMAGES, r->count_thr)))
        rc = acv_count_calib_to_json(r->calib, r->count_thr, *out);
    for (int k = 0; k < N_SAMPLES; k++) {
        if (!rc && sample_n[k] >= 0 && r->samples)
            json_array_append_new(r->samples, sample_json(r, &r->val->images[sample_img[k]], sample_box[k], sample_n[k],
                                                          r->count_thr));
        free(sample_box[k]);
    }
    if (rc) {
        json_decref(*out);
        *out = NULL;
    }
    return rc;
}

static int train_epoch(run_t *r, int epoch, double parts_out[4], double *ips)
{
    const cfg_t *c = &r->c;
    int nb = acv_det_loader_num_batches(r->tl), done = 0, rc;
    int64_t total_steps = (int64_t)nb * c->epochs;
    int64_t np, nbuf;
    float *params = acv_graph_params(r->g, &np), *grads = acv_graph_grads(r->g, NULL);
    float *bufs = acv_graph_buffers(r->g, &nbuf);
    acv_det_loader_epoch(r->tl, epoch);
    if (r->out.tty) {
        char lbl[64];
        snprintf(lbl, sizeof lbl, "epoch %d/%d", epoch + 1, c->epochs);
        acv_progress_start(&r->out.bar, r->out.f, lbl, nb);
    }
    double sums[4] = {0}, t0 = acv_now(), tw = t0, w[4] = {0};
    int64_t imgs = 0, wimgs = 0;
    int wsteps = 0;
    acv_det_batch b;
    const acv_box *gts[1024];
    int ngt[1024];
    double tn = acv_now();
    while ((rc = acv_det_loader_next(r->tl, &b)) == 1) {
        r->t_wait += acv_now() - tn;
        float lr = acv_schedule_lr(&r->sched, r->s.step, total_steps, nb);
        if ((rc = acv_graph_set_batch(r->g, b.n))) return rc;
        memcpy(acv_graph_data(r->g, r->net.input), b.x, (size_t)b.n * b.c * b.h * b.w * sizeof(float));
        if ((rc = acv_graph_forward(r->g, r->net.output, true, c->seed * 0x9e3779b97f4a7c15ULL + (uint64_t)r->s.step)))
            return rc;
        for (int i = 0; i < b.n; i++) {
            gts[i] = b.boxes + b.box_start[i];
            ngt[i] = b.box_start[i + 1] - b.box_start[i];
        }
        acv_det_loss_parts lp;
        double tl = acv_now();
        if ((rc = acv_det_loss_compute(r->loss, acv_graph_data(r->g, r->net.output), b.n, gts, ngt, r->grad, &lp)))
            return rc;
        r->t_loss += acv_now() - tl;
        if (!isfinite(lp.total) || !acv_all_finite(r->grad, (int64_t)b.n * (4 * r->net.reg_max + r->net.n_classes) *
                                                                  r->net.n_anchors))
            return acv_error(ACV_ENUMERIC, "training diverged at epoch %d step %d: the loss is not finite; the last "
                             "good checkpoint (epoch %d) is kept in %s; try a lower --lr (now %g)", epoch + 1, done + 1,
                             r->s.epoch, r->o->out, c->lr);
        if ((rc = acv_graph_backward_from(r->g, r->net.output, r->grad))) return rc;
        float norm = acv_clip_grad_norm(grads, np, 10.0f);
        if (!isfinite(norm))
            return acv_error(ACV_ENUMERIC, "training diverged at epoch %d step %d: the gradient is not finite; the "
                             "last good checkpoint (epoch %d) is kept in %s", epoch + 1, done + 1, r->s.epoch, r->o->out);
        if ((rc = acv_optim_step(r->opt, params, grads, lr))) return rc;
        if (r->ema && (rc = acv_ema_update(r->ema, params, bufs))) return rc;
        r->s.step++;
        done++;
        double pv[4] = {lp.box, lp.cls, lp.dfl, lp.box + lp.cls + lp.dfl};
        for (int k = 0; k < 4; k++) {
            sums[k] += pv[k];
            w[k] += pv[k];
        }
        imgs += b.n;
        wimgs += b.n;
        wsteps++;
        double now = acv_now();
        if (r->out.tty) {
            char extra[96];
            snprintf(extra, sizeof extra, "loss %.3f (box %.3f cls %.3f dfl %.3f) %.1f img/s", sums[3] / done,
                     sums[0] / done, sums[1] / done, sums[2] / done, imgs / (now - t0));
            acv_progress_update(&r->out.bar, done, extra);
        }
        if (r->out.json && (done % r->o->log_every == 0 || done == nb)) {
            acv_train_emit(&r->out, json_pack("{s:s, s:i, s:i, s:i, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:f}", "event", "step",
                                    "epoch", epoch + 1, "step", done, "steps", nb, "global_step", (json_int_t)r->s.step,
                                    "loss", w[3] / wsteps, "box_loss", w[0] / wsteps, "cls_loss", w[1] / wsteps,
                                    "dfl_loss", w[2] / wsteps, "lr", (double)lr, "ips",
                                    wimgs / (now - tw > 1e-9 ? now - tw : 1e-9), "eta_s", (now - t0) / done * (nb - done)));
            tw = now;
            wimgs = 0;
            wsteps = 0;
            memset(w, 0, sizeof w);
        }
        tn = acv_now();
    }
    if (r->out.tty) acv_progress_clear(&r->out.bar);
    if (rc < 0) return rc;
    for (int k = 0; k < 4; k++) parts_out[k] = done ? sums[k] / done : 0;
    *ips = imgs / (acv_now() - t0);
    return 0;
}

static void run_free(run_t *r)
{
    acv_det_loader_free(r->tl);
    acv_det_loader_free(r->vl);
    acv_det_dataset_free(r->train);
    acv_det_dataset_free(r->val);
    acv_det_loss_free(r->loss);
    acv_graph_free(r->g);
    acv_optim_free(r->opt);
    acv_ema_free(r->ema);
    acv_det_metrics_free(r->metrics);
    acv_count_calib_free(r->calib);
    free(r->count_thr);
    json_decref(r->samples);
    json_decref(r->s.history);
    free(r->grad);
    free(r->points);
    free(r->strides);
    free(r->swap_p);
    free(r->swap_b);
    free(r->ckpt);
    json_decref(r->backbone);
}

/* The configuration from the options and the data. */
static int resolve(run_t *r)
{
    const acv_det_train_opts *o = r->o;
    cfg_t *c = &r->c;
    c->imgsz = o->imgsz > 0 ? o->imgsz : 640;
    if (c->imgsz < 64 || c->imgsz > 2048 || c->imgsz % 32)
        return acv_error(ACV_EINVAL, "--imgsz %d must be a multiple of 32 in 64..2048", c->imgsz);
    const double small = acv_det_small_share(r->train->images, r->train->n, c->imgsz);
    const char *m = o->model && strcmp(o->model, "auto") ? o->model : acv_det_auto(c->imgsz, r->train->n, small);
    if (!acv_det_arch_find(m))
        return acv_error(ACV_ENOTFOUND, "--model: unknown detector '%s' (auto, det-s, det-m, det-s-p2, det-m-p2)", m);
    snprintf(c->model, sizeof c->model, "%s", m);
    c->epochs = o->epochs > 0 ? o->epochs : 100;
    /* 8: on the tray benchmark (det-s-p2 at 320, 2 threads, 20 epochs) batch 8 against 16 gave
     * test AP50 0.831 / 0.816 and AP@[.50:.95] 0.587 / 0.574 (twice the steps), and trained
     * faster on the CPU (18.6 / 15.2 img/s: a step's activations stay nearer the cache) */
    c->batch = o->batch > 0 ? o->batch : 8;
    if (c->batch > r->train->n) c->batch = r->train->n;
    if (c->batch > 1024) c->batch = 1024;
    /* AdamW at 0.004: on the tray benchmark (7 classes, 20 epochs, batch 16) test AP50 was
     * 0.712 at 0.0009 (Ultralytics' 0.002*5/(4+classes), made for long runs), 0.799 at 0.002,
     * 0.816 at 0.004; at batch 8 and 28 epochs 0.855 at 0.004, 0.810 at 0.006 */
    c->lr = o->lr > 0 ? o->lr : 0.004;
    c->weight_decay = o->weight_decay >= 0 ? o->weight_decay : 0.0005 * c->batch / 64.0;
    c->warmup_epochs = o->warmup_epochs >= 0 ? o->warmup_epochs : (c->epochs >= 10 ? 3 : 0.5);
    c->ema_decay = o->ema_decay >= 0 ? o->ema_decay : 0.9999;
    c->class_balance = o->class_balance >= 0 ? o->class_balance : 10;
    if (!(c->class_balance >= 0 && c->class_balance <= 1000))
        return acv_error(ACV_EINVAL, "--class-balance %g is not in [0, 1000]", c->class_balance);
    int cm = o->close_mosaic >= 0 ? o->close_mosaic : 10;
    if (cm > c->epochs / 3 && o->close_mosaic < 0) cm = c->epochs / 3;
    c->close_mosaic = cm;
    c->val_every = o->val_every > 0 ? o->val_every : 1;
    c->patience = o->patience;
    c->seed = o->seed;
    if (o->backbone && o->init) return acv_error(ACV_EINVAL, "--backbone and --init are exclusive");
    if (o->freeze_backbone && !o->backbone) return acv_error(ACV_EINVAL, "--freeze-backbone needs --backbone");
    if (o->backbone && strlen(o->backbone) >= sizeof c->backbone)
        return acv_error(ACV_EINVAL, "--backbone: the path is too long");
    snprintf(c->backbone, sizeof c->backbone, "%s", o->backbone ? o->backbone : "");
    c->freeze_backbone = o->freeze_backbone;
    acv_det_aug_opts_default(&c->aug);
    if (o->mosaic >= 0) c->aug.mosaic = (float)o->mosaic;
    if (o->fliplr >= 0) c->aug.fliplr = (float)o->fliplr;
    if (o->flipud >= 0) c->aug.flipud = (float)o->flipud;
    /* zooming out by up to 50% leaves objects a few pixels across at 1-3 pixels, below what
     * can be learned: with many of them, the zoom range is +-20% */
    if (small >= 0.05) c->aug.scale = 0.2f;
    if (o->scale >= 0) c->aug.scale = (float)o->scale;
    if (o->degrees >= 0) c->aug.degrees = (float)o->degrees;
    if (o->translate >= 0) c->aug.translate = (float)o->translate;
    int rc = acv_det_aug_opts_check(&c->aug);
    if (rc) return rc;
    if (!(c->ema_decay >= 0 && c->ema_decay < 1)) return acv_error(ACV_EINVAL, "--ema %g is not in [0, 1)", c->ema_decay);
    return 0;
}

static int open_loaders(run_t *r)
{
    acv_det_loader_opts lo;
    acv_det_loader_opts_default(&lo);
    lo.batch = r->c.batch;
    lo.imgsz = r->c.imgsz;
    lo.seed = r->c.seed;
    lo.workers = r->o->workers;
    lo.train = 1;
    lo.shuffle = 1;
    lo.drop_last = r->train->n >= 2 * r->c.batch;
    lo.aug = r->c.aug;
    int rc = acv_det_loader_new(r->train, &lo, &r->tl);
    if (rc) return rc;
    lo.train = 0;
    lo.shuffle = 0;
    lo.drop_last = 0;
    return acv_det_loader_new(r->val, &lo, &r->vl);
}

/* The network on a classifier's backbone (cfg's backbone), initialised with its weights. With
 * auto, a "-p2" choice falls back to the detector without the stride-4 level when the
 * classifier has no stride-4 feature map. */
static int build_on_backbone(run_t *r, bool auto_model)
{
    cfg_t *c = &r->c;
    acv_det_backbone bb;
    int rc = ACV_EINVAL;
    for (int attempt = 0; attempt < 2; attempt++) {
        acv_graph_free(r->g);
        if (!(r->g = acv_graph_new())) return acv_error(ACV_ENOMEM, "out of memory");
        rc = acv_det_build_backbone(r->g, c->model, r->train->k, c->imgsz, c->backbone, c->freeze_backbone, &r->net, &bb);
        size_t n = strlen(c->model);
        if (rc != ACV_EUNSUPPORTED || !auto_model || attempt || n < 4 || strcmp(c->model + n - 3, "-p2")) break;
        acv_det_backbone_free(&bb);
        c->model[n - 3] = 0; /* det-s-p2 -> det-s */
        acv_error_clear();
    }
    if (!rc) rc = acv_det_init_params(r->g, &r->net, c->seed);
    if (!rc) rc = acv_det_backbone_copy(r->g, &bb);
    if (!rc) {
        json_t *feats = json_array();
        char line[600] = "";
        for (int l = 0; l < 4; l++) {
            if (!bb.feature[l][0]) continue;
            json_array_append_new(feats, json_pack("{s:i, s:s, s:i, s:[i, i]}", "stride", 4 << l, "node", bb.feature[l],
                                                   "channels", bb.channels[l], "size", bb.height[l], bb.width[l]));
            size_t k = strlen(line);
            int t = c->imgsz / (4 << l);
            char rs[48] = "";
            if (bb.height[l] != t || bb.width[l] != t)
                snprintf(rs, sizeof rs, ", %dx%d resized to %dx%d", bb.width[l], bb.height[l], t, t);
            snprintf(line + k, sizeof line - k, "%s%s (stride %d, %d channels%s)", k ? ", " : "", bb.feature[l], 4 << l,
                     bb.channels[l], rs);
        }
        r->backbone = json_pack("{s:s, s:b, s:o}", "path", c->backbone, "frozen", c->freeze_backbone, "features", feats);
        acv_train_say(&r->out, "backbone from %s%s: %s", c->backbone, c->freeze_backbone ? " (frozen)" : "", line);
    }
    acv_det_backbone_free(&bb);
    return rc;
}

/* --resume of a run on a classifier's backbone: the network as the checkpoint stored it. */
static int graph_from_checkpoint(run_t *r)
{
    json_t *root;
    int rc = acv_train_checkpoint_load(r->ckpt, NULL, NULL, NULL, &root);
    if (rc) return rc;
    const char *gj = json_string_value(json_object_get(root, "graph"));
    if (!gj) rc = acv_error(ACV_EFORMAT, "%s: the checkpoint has no network (\"graph\")", r->ckpt);
    if (!rc && (rc = acv_graph_from_json(gj, &r->g))) rc = acv_error_prefix(rc, "%s: ", r->ckpt);
    if (!rc && (rc = acv_det_net_from_graph(r->g, r->train->k, &r->net))) rc = acv_error_prefix(rc, "%s: ", r->ckpt);
    if (!rc && (r->net.imgsz_h != r->c.imgsz || r->net.imgsz_w != r->c.imgsz))
        rc = acv_error(ACV_EFORMAT, "%s: the stored network is for %dx%d, the configuration says %d", r->ckpt,
                       r->net.imgsz_w, r->net.imgsz_h, r->c.imgsz);
    if (!rc) r->backbone = json_incref(json_object_get(root, "backbone"));
    json_decref(root);
    return rc;
}

static int setup(run_t *r)
{
    const acv_det_train_opts *o = r->o;
    acv_det_open_opts dopt = {.format = NULL, .skip_bad = o->skip_bad};
    int rc = acv_det_dataset_open(o->data, "train", &dopt, &r->train);
    if (rc) return rc;
    if (r->train->bad_labels) acv_train_say(&r->out, "skipped %lld bad labels (first: %s)", (long long)r->train->bad_labels,
                                  r->train->first_bad);
    rc = acv_det_dataset_open(o->data, "val", &dopt, &r->val);
    if (rc == ACV_ENOTFOUND) {
        /* no val split: validate on the training images (said, so nobody mistakes the figure) */
        acv_train_say(&r->out, "%s has no val split: validating on the training images", o->data);
        rc = acv_det_dataset_open(o->data, "train", &dopt, &r->val);
    }
    if (rc) return rc;
    if (r->val->k != r->train->k)
        return acv_error(ACV_EFORMAT, "%s: the val split has %d classes, train %d", o->data, r->val->k, r->train->k);
    if (!(r->ckpt = acv_path_join(o->out, "checkpoint.safetensors"))) return acv_error(ACV_ENOMEM, "out of memory");
    if (o->resume) {
        cfg_t stored;
        if ((rc = load_checkpoint(r, &stored, false))) return rc;
        r->c = stored;
        acv_train_say(&r->out, "resuming from %s", r->ckpt);
    } else if ((rc = resolve(r))) {
        return rc;
    }
    if ((rc = open_loaders(r))) return rc;
    if (r->c.backbone[0] && o->resume) {
        if ((rc = graph_from_checkpoint(r))) return rc;
    } else if (r->c.backbone[0]) {
        if ((rc = build_on_backbone(r, !o->model || !strcmp(o->model, "auto")))) return rc;
    } else {
        if (!(r->g = acv_graph_new())) return acv_error(ACV_ENOMEM, "out of memory");
        if ((rc = acv_det_build(r->g, r->c.model, r->train->k, r->c.imgsz, r->c.imgsz, &r->net))) return rc;
        if ((rc = acv_det_init_params(r->g, &r->net, r->c.seed))) return rc;
    }
    if (o->init) {
        acv_model *src;
        if ((rc = acv_model_load(o->init, &src))) return rc;
        if (strcmp(src->task, "det")) rc = acv_error(ACV_EINVAL, "--init %s is a %s model, not a detector", o->init, src->task);
        /* copy every parameter with the same name and shape (a different class count keeps
         * the new class heads) */
        for (int i = 0; !rc && i < acv_graph_param_count(r->g); i++) {
            acv_param_info pi, si;
            acv_graph_param(r->g, i, &pi);
            for (int j = 0; j < acv_graph_param_count(src->graph); j++) {
                acv_graph_param(src->graph, j, &si);
                if (!strcmp(pi.name, si.name) && pi.shape.ndim == si.shape.ndim &&
                    acv_shape_numel(&pi.shape) == acv_shape_numel(&si.shape)) {
                    memcpy(pi.data, si.data, (size_t)acv_shape_numel(&pi.shape) * sizeof(float));
                    break;
                }
            }
        }
        acv_model_free(src);
        if (rc) return rc;
    }
    if ((rc = acv_graph_compile(r->g, NULL, r->c.batch, true))) return rc;
    acv_det_loss_opts lopt;
    acv_det_loss_opts_init(&lopt);
    lopt.balance = (float)r->c.class_balance;
    if ((rc = acv_det_loss_new(&r->net, r->c.batch, &lopt, &r->loss))) return rc;
    int A = acv_det_anchors(r->c.imgsz, r->c.imgsz, r->net.strides, r->net.n_levels, &r->points, &r->strides);
    if (A < 0) return A;
    r->grad = malloc((size_t)r->c.batch * (4 * r->net.reg_max + r->net.n_classes) * A * sizeof(float));
    int64_t np, nb;
    acv_graph_params(r->g, &np);
    acv_graph_buffers(r->g, &nb);
    acv_optim_config oc = acv_optim_defaults(ACV_OPTIM_ADAMW);
    oc.lr = r->c.lr;
    oc.weight_decay = r->c.weight_decay;
    oc.beta1 = 0.9;
    if ((rc = acv_optim_new(&oc, np, &r->opt))) return rc;
    uint8_t *mask = calloc((size_t)(np ? np : 1), 1);
    if (!mask || !r->grad) return acv_error(ACV_ENOMEM, "out of memory");
    for (int i = 0; i < acv_graph_param_count(r->g); i++) {
        acv_param_info pi;
        acv_graph_param(r->g, i, &pi);
        if (pi.trainable && pi.shape.ndim > 1) memset(mask + pi.offset, 1, (size_t)acv_shape_numel(&pi.shape));
    }
    rc = acv_optim_set_decay_mask(r->opt, mask);
    free(mask);
    if (rc) return rc;
    if (r->c.ema_decay > 0 &&
        (rc = acv_ema_new(acv_graph_params(r->g, NULL), np, acv_graph_buffers(r->g, NULL), nb, r->c.ema_decay, 2000,
                          &r->ema)))
        return rc;
    r->sched = acv_schedule_defaults(ACV_SCHEDULE_COSINE, r->c.lr);
    r->sched.min_lr = r->c.lr * 0.01;
    r->sched.warmup_steps = (int64_t)(r->c.warmup_epochs * acv_det_loader_num_batches(r->tl));
    r->sched.warmup_start_factor = 0.1;
    if ((rc = acv_schedule_check(&r->sched))) return rc;
    r->swap_p = malloc((size_t)(np ? np : 1) * sizeof(float));
    r->swap_b = malloc((size_t)(nb ? nb : 1) * sizeof(float));
    r->metrics = acv_det_metrics_new(r->train->k, (const char *const *)r->train->names);
    r->calib = acv_count_calib_new(r->train->k);
    r->count_thr = malloc((size_t)r->train->k * sizeof(float));
    if (!r->swap_p || !r->swap_b || !r->metrics || !r->calib || !r->count_thr)
        return acv_error(ACV_ENOMEM, "out of memory");
    r->s.history = json_array();
    r->s.best = -1;
    if (o->resume) {
        if ((rc = load_checkpoint(r, NULL, true))) return rc;
    } else {
        if ((rc = acv_mkdirs(o->out))) return rc;
        unlink(r->ckpt);
    }
    return 0;
}

int acv_det_train(const acv_det_train_opts *o)
{
    run_t r;
    memset(&r, 0, sizeof r);
    r.o = o;
    r.out.f = o->out_stream ? o->out_stream : stdout;
    r.out.json = o->json;
    r.out.tty = !o->json && isatty(fileno(r.out.f));
    acv_set_threads(o->threads);
    r.t_start = acv_now();
    int rc = setup(&r);
    if (rc) {
        run_free(&r);
        return rc;
    }
    const cfg_t *c = &r.c;
    if (o->json)
        acv_train_emit(&r.out, json_pack("{s:s, s:s, s:s, s:i, s:i, s:i, s:i, s:i, s:I, s:f, s:i, s:i}", "event", "start", "task",
                               "det", "model", c->model, "classes", r.train->k, "train_images", r.train->n,
                               "val_images", r.val->n, "imgsz", c->imgsz, "batch", c->batch, "params",
                               (json_int_t)acv_graph_num_params(r.g), "lr", c->lr, "epochs", c->epochs, "threads",
                               acv_get_threads()));
    else
        acv_train_say(&r.out, "training %s on %s: %d classes, %d train / %d val images, %dx%d, batch %d, %d epochs, %d threads",
            c->model, o->data, r.train->k, r.train->n, r.val->n, c->imgsz, c->imgsz, c->batch, c->epochs,
            acv_get_threads());
    char dur[32];
    for (int e = r.s.epoch; e < c->epochs && !rc; e++) {
        if (e == c->epochs - c->close_mosaic && c->close_mosaic > 0) {
            acv_det_aug_opts a = c->aug;
            a.mosaic = 0;
            if ((rc = acv_det_loader_set_aug(r.tl, &a))) break;
            acv_train_say(&r.out, "mosaic off for the last %d epochs", c->close_mosaic);
        } else if (e > c->epochs - c->close_mosaic && c->close_mosaic > 0 && e == r.s.epoch) {
            acv_det_aug_opts a = c->aug;
            a.mosaic = 0;
            if ((rc = acv_det_loader_set_aug(r.tl, &a))) break;
        }
        double te = acv_now(), parts[4] = {0, 0, 0, 0}, ips = 0;
        if ((rc = train_epoch(&r, e, parts, &ips))) break;
        json_t *rec = json_pack("{s:i, s:f, s:f, s:f, s:f, s:f, s:f}", "epoch", e + 1, "train_loss", parts[3],
                                "box_loss", parts[0], "cls_loss", parts[1], "dfl_loss", parts[2], "ips", ips, "time_s",
                                acv_now() - te);
        bool last = e + 1 == c->epochs, improved = false;
        json_t *mj = NULL;
        if ((e + 1) % c->val_every == 0 || last) {
            use_eval_weights(&r, true);
            rc = validate(&r, &mj);
            use_eval_weights(&r, false);
            if (rc) {
                json_decref(rec);
                break;
            }
            double map = json_number_value(json_object_get(mj, "map50_95"));
            json_object_set(rec, "val_map50", json_object_get(mj, "map50"));
            json_object_set(rec, "val_map50_95", json_object_get(mj, "map50_95"));
            json_object_set(rec, "val_count_exact", json_object_get(mj, "count_exact"));
            json_object_set(rec, "val_count_mae", json_object_get(mj, "count_mae"));
            improved = map > r.s.best || r.s.best < 0;
            if (improved) {
                r.s.best = map;
                r.s.best_epoch = e + 1;
                r.s.bad_epochs = 0;
            } else {
                r.s.bad_epochs++;
            }
        }
        json_array_append(r.s.history, rec);
        r.s.epoch = e + 1;
        /* the checkpoint and (when improved) the model are on disk before the epoch is announced */
        if ((rc = save_checkpoint(&r))) {
            json_decref(rec);
            json_decref(mj);
            break;
        }
        if (improved || !acv_path_exists(o->out) || (last && r.s.best_epoch == 0)) {
            json_t *em = mj ? json_deep_copy(mj) : json_object();
            json_object_del(em, "pr_curves");
            json_object_set_new(em, "split", json_string("val"));
            json_object_set_new(em, "epoch", json_integer(e + 1));
            json_object_set_new(em, "history", json_deep_copy(r.s.history));
            use_eval_weights(&r, true);
            rc = save_model(&r, em);
            use_eval_weights(&r, false);
            json_decref(em);
        }
        if (!rc) {
            if (o->json) {
                json_t *ev = json_deep_copy(rec);
                json_object_set_new(ev, "event", json_string("epoch"));
                json_object_set_new(ev, "epochs", json_integer(c->epochs));
                json_object_set_new(ev, "best", json_boolean(improved));
                if (r.samples && json_array_size(r.samples)) json_object_set(ev, "samples", r.samples);
                acv_train_emit(&r.out, ev);
            } else {
                acv_train_say(&r.out, "epoch %d/%d  loss %.3f (box %.3f cls %.3f dfl %.3f)  %s%.1f img/s  %s%s", e + 1, c->epochs,
                    parts[3], parts[0], parts[1], parts[2], "", ips, acv_fmt_duration(acv_now() - te, dur, sizeof dur),
                    improved ? "  *best" : "");
                if (mj)
                    acv_train_say(&r.out, "  val AP50 %.4f  AP50-95 %.4f  count exact %.3f  count MAE %.3f",
                        json_number_value(json_object_get(mj, "map50")), json_number_value(json_object_get(mj, "map50_95")),
                        json_number_value(json_object_get(mj, "count_exact")),
                        json_number_value(json_object_get(mj, "count_mae")));
                if (mj && r.train->k <= 16) { /* the count thresholds, for a readable number of classes */
                    char line[1024];
                    int len = snprintf(line, sizeof line, "  count thresholds:");
                    for (int k = 0; k < r.train->k && len < (int)sizeof line; k++)
                        len += snprintf(line + len, sizeof line - (size_t)len, " %s %.2f", r.train->names[k],
                                        (double)r.count_thr[k]);
                    acv_train_say(&r.out, "%s", line);
                }
            }
        }
        json_decref(rec);
        json_decref(mj);
        if (!rc && c->patience > 0 && r.s.bad_epochs >= c->patience) {
            acv_train_say(&r.out, "early stop: validation AP has not improved for %d validations (best %.4f at epoch %d)",
                c->patience, r.s.best, r.s.best_epoch);
            break;
        }
    }
    if (!rc) {
        long skipped = acv_det_loader_skipped(r.tl) + acv_det_loader_skipped(r.vl);
        double wall = acv_now() - r.t_start;
        if (skipped) acv_train_say(&r.out, "skipped %ld unreadable images", skipped);
        if (o->json)
            acv_train_emit(&r.out, json_pack("{s:s, s:s, s:f, s:i, s:I, s:f}", "event", "done", "model", o->out,
                                   "best_val_map50_95", r.s.best, "best_epoch", r.s.best_epoch, "skipped_images",
                                   (json_int_t)skipped, "wall_s", wall));
        else
            acv_train_say(&r.out, "done in %s: best val AP50-95 %.4f at epoch %d; model written to %s",
                acv_fmt_duration(wall, dur, sizeof dur), r.s.best, r.s.best_epoch, o->out);
    }
    acv_graph_profile_print(stderr);
    if (r.g) acv_graph_profile_nodes(r.g, stderr);
    if (getenv("ACV_PROFILE"))
        fprintf(stderr, "det loss (assign + terms + gradient): %.2f s; loader wait: %.2f s\n", r.t_loss, r.t_wait);
    run_free(&r);
    return rc;
}
