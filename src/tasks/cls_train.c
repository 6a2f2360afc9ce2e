/* The classification trainer: data, model, optimizer, schedule, EMA, validation,
 * checkpoints and resume, and progress as a bar or JSON lines.
 *
 * Determinism: every random choice derives from the seed (loader order and augmentation
 * from (seed, epoch, sample), dropout from (seed, step), initial weights from seed), so a
 * run with the same seed and thread count is bitwise reproducible, and a run resumed from
 * the checkpoint written at the end of epoch E continues exactly as if uninterrupted.
 *
 * Files in the output directory: the model directory files (model.json,
 * weights.safetensors, metrics.json) always hold the best model so far, replaced
 * atomically; checkpoint.safetensors holds the training state after the last finished
 * epoch (weights, optimizer, EMA, counters), written atomically before the model. */
#include "tasks/cls.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "autocv/error.h"
#include "autocv/version.h"
#include "base/file.h"
#include "base/progress.h"
#include "base/timeutil.h"
#include "data/loader.h"
#include "nn/backend.h"
#include "nn/optim.h"
#include "nn/safetensors.h"
#include "nn/schedule.h"
#include "nn/zoo.h"
#include "tasks/train_util.h"
#include "onnx/import.h"

void acv_cls_train_opts_init(acv_cls_train_opts *o)
{
    memset(o, 0, sizeof *o);
    o->model = "auto";
    o->optimizer = "sgd";
    o->schedule = "cosine";
    o->lr = o->weight_decay = o->label_smoothing = o->warmup_epochs = o->val_split = -1;
    o->ema_decay = o->clip_norm = o->hflip = o->erase_p = o->rrc_min = -1;
    o->pad_crop = -1;
    o->patience = 0;
    o->log_every = 20;
}

/* The effective configuration after "auto" is resolved; stored in the checkpoint. */
typedef struct cfg_t {
    char model[64], optimizer[16], schedule[16];
    char init[1024];      /* fine-tuning source ("" when training from scratch) */
    int freeze;           /* with init: only the new classifier trains */
    int epochs, batch, imgsz, channels, pad_crop, patience, workers, threads, log_every;
    double lr, weight_decay, label_smoothing, warmup_epochs, val_split, ema_decay, clip_norm;
    double hflip, erase_p, mixup, cutmix, rrc_min;
    float mean[3], std[3];
    uint64_t seed;
} cfg_t;

static json_t *cfg_json(const cfg_t *c)
{
    json_t *o = json_object();
    json_object_set_new(o, "model", json_string(c->model));
    json_object_set_new(o, "optimizer", json_string(c->optimizer));
    json_object_set_new(o, "schedule", json_string(c->schedule));
    if (c->init[0]) json_object_set_new(o, "init", json_string(c->init));
#define I(f) json_object_set_new(o, #f, json_integer(c->f))
#define F(f) json_object_set_new(o, #f, json_real(c->f))
    I(epochs); I(batch); I(imgsz); I(channels); I(pad_crop); I(patience); I(seed); I(freeze);
    F(lr); F(weight_decay); F(label_smoothing); F(warmup_epochs); F(val_split); F(ema_decay); F(clip_norm);
    F(hflip); F(erase_p); F(mixup); F(cutmix); F(rrc_min);
#undef I
#undef F
    json_t *m = json_array(), *s = json_array();
    for (int i = 0; i < c->channels; i++) {
        json_array_append_new(m, json_real(c->mean[i]));
        json_array_append_new(s, json_real(c->std[i]));
    }
    json_object_set_new(o, "mean", m);
    json_object_set_new(o, "std", s);
    return o;
}

static int cfg_from_json(cfg_t *c, json_t *o, const char *path)
{
    const char *m = json_string_value(json_object_get(o, "model"));
    const char *op = json_string_value(json_object_get(o, "optimizer"));
    const char *sc = json_string_value(json_object_get(o, "schedule"));
    if (!m || !op || !sc) return acv_error(ACV_EFORMAT, "%s: checkpoint configuration is incomplete", path);
    snprintf(c->model, sizeof c->model, "%s", m);
    snprintf(c->optimizer, sizeof c->optimizer, "%s", op);
    snprintf(c->schedule, sizeof c->schedule, "%s", sc);
    const char *init = json_string_value(json_object_get(o, "init"));
    snprintf(c->init, sizeof c->init, "%s", init ? init : "");
#define I(f) c->f = (int)json_integer_value(json_object_get(o, #f))
#define F(f) c->f = json_number_value(json_object_get(o, #f))
    I(epochs); I(batch); I(imgsz); I(channels); I(pad_crop); I(patience); I(freeze);
    c->seed = (uint64_t)json_integer_value(json_object_get(o, "seed"));
    F(lr); F(weight_decay); F(label_smoothing); F(warmup_epochs); F(val_split); F(ema_decay); F(clip_norm);
    F(hflip); F(erase_p); F(mixup); F(cutmix); F(rrc_min);
#undef I
#undef F
    if (c->channels < 1 || c->channels > 3 || c->batch < 1 || c->imgsz < 1 || c->epochs < 1)
        return acv_error(ACV_EFORMAT, "%s: checkpoint configuration is invalid", path);
    for (int i = 0; i < c->channels; i++) {
        c->mean[i] = (float)json_number_value(json_array_get(json_object_get(o, "mean"), (size_t)i));
        c->std[i] = (float)json_number_value(json_array_get(json_object_get(o, "std"), (size_t)i));
    }
    return 0;
}

/* ---- progress output -------------------------------------------------------------------- */

/* ---- data statistics -------------------------------------------------------------------------- */

/* Mean and std per channel over up to 500 evenly spaced training samples. */
static int data_stats(const acv_cls_dataset *ds, int c, float *mean, float *std)
{
    int n = acv_cls_dataset_size(ds), take = n < 500 ? n : 500;
    double s[3] = {0}, s2[3] = {0}, cnt = 0;
    for (int k = 0; k < take; k++) {
        acv_image im = {0};
        int i = (int)((int64_t)k * n / take);
        if (acv_cls_dataset_get(ds, i, c, &im)) continue;
        for (int64_t p = 0; p < (int64_t)im.w * im.h; p++)
            for (int ch = 0; ch < c; ch++) {
                double v = im.data[p * c + ch] / 255.0;
                s[ch] += v;
                s2[ch] += v * v;
            }
        cnt += (double)im.w * im.h;
        acv_image_free(&im);
    }
    if (cnt == 0) return acv_error(ACV_EFORMAT, "none of the sampled training images could be read");
    for (int ch = 0; ch < c; ch++) {
        mean[ch] = (float)(s[ch] / cnt);
        double var = s2[ch] / cnt - (s[ch] / cnt) * (s[ch] / cnt);
        std[ch] = (float)(var > 1e-6 ? sqrt(var) : 1.0);
    }
    return 0;
}

/* Largest side of the first readable sample. */
static int probe_size(const acv_cls_dataset *ds)
{
    int n = acv_cls_dataset_size(ds);
    for (int i = 0; i < n && i < 16; i++) {
        acv_image im = {0};
        if (acv_cls_dataset_get(ds, i, 0, &im) == 0) {
            int s = im.w > im.h ? im.w : im.h;
            acv_image_free(&im);
            return s;
        }
    }
    return 224;
}

static bool digit_classes(const acv_cls_dataset *ds)
{
    int k = acv_cls_dataset_num_classes(ds);
    if (k != 10) return false;
    for (int i = 0; i < k; i++) {
        const char *s = acv_cls_dataset_class_name(ds, i);
        if (s[0] != '0' + i || s[1]) return false;
    }
    return true;
}

/* Resolves "auto" options from the data. */
static int resolve(const acv_cls_train_opts *o, const acv_cls_dataset *train, cfg_t *c)
{
    memset(c, 0, sizeof *c);
    bool idx = !strcmp(acv_cls_dataset_format(train), "idx");
    c->channels = idx ? 1 : 3;
    c->imgsz = o->imgsz;
    const char *m = NULL;
    const acv_zoo_entry *ze = NULL;
    if (o->init) {
        /* fine-tuning: the source model fixes channels, input size and normalization */
        acv_model *src = NULL;
        int rc = acv_model_load_any(o->init, &src);
        if (rc) return acv_error_prefix(rc, "--init: ");
        if (strcmp(src->task, "cls")) {
            rc = acv_error(ACV_EINVAL, "--init %s: a %s model cannot start a classifier", o->init, src->task);
            acv_model_free(src);
            return rc;
        }
        snprintf(c->init, sizeof c->init, "%s", o->init);
        c->freeze = o->freeze_backbone;
        c->channels = src->in_c;
        if (c->imgsz <= 0) c->imgsz = src->in_h;
        for (int i = 0; i < src->in_c && i < 3; i++) {
            c->mean[i] = src->mean[i];
            c->std[i] = src->std[i];
        }
        snprintf(c->model, sizeof c->model, "%s", src->arch[0] ? src->arch : "custom");
        acv_model_free(src);
        m = c->model;
    }
    if (c->imgsz <= 0) {
        int s = probe_size(train);
        c->imgsz = idx ? s : (s <= 64 ? (s + 3) / 4 * 4 : (s >= 224 ? 224 : (s + 31) / 32 * 32));
    }
    if (c->imgsz < 8 || c->imgsz > 2048) return acv_error(ACV_EINVAL, "--imgsz %d is not in 8..2048", c->imgsz);
    int n = acv_cls_dataset_size(train);
    if (!m) m = strcmp(o->model, "auto") ? o->model : acv_zoo_auto(c->imgsz, n);
    ze = acv_zoo_find(m);
    if (!ze && !c->init[0]) {
        acv_graph *tmp = acv_graph_new();
        acv_id logits;
        int rc = acv_zoo_build(tmp, m, 0, 1, &logits); /* for its error message */
        acv_graph_free(tmp);
        return rc ? rc : acv_error(ACV_ENOTFOUND, "--model: unknown model '%s'", m);
    }
    if (ze && c->imgsz < ze->min_imgsz)
        return acv_error(ACV_EINVAL, "--imgsz %d is too small for %s (at least %d)", c->imgsz, m, ze->min_imgsz);
    if (m != c->model) snprintf(c->model, sizeof c->model, "%s", m);
    bool small = c->imgsz <= 64;
    bool compact = !strncmp(m, "compact", 7);
    c->batch = o->batch > 0 ? o->batch : (compact ? 128 : small ? 64 : 32);
    c->epochs = o->epochs > 0 ? o->epochs : (compact ? 30 : 30);
    snprintf(c->optimizer, sizeof c->optimizer, "%s", o->optimizer ? o->optimizer : "sgd");
    snprintf(c->schedule, sizeof c->schedule, "%s", o->schedule ? o->schedule : "cosine");
    bool adamw = !strcmp(c->optimizer, "adamw");
    c->lr = o->lr > 0 ? o->lr : adamw ? 1e-3 * c->batch / 64.0 : 0.1 * c->batch / 256.0;
    c->weight_decay = o->weight_decay >= 0 ? o->weight_decay : adamw ? 0.05 : (compact ? 5e-4 : 1e-4);
    c->label_smoothing = o->label_smoothing >= 0 ? o->label_smoothing : 0.1;
    c->warmup_epochs = o->warmup_epochs >= 0 ? o->warmup_epochs : 1.0;
    c->val_split = o->val_split >= 0 ? o->val_split : 0.1;
    c->ema_decay = o->ema_decay >= 0 ? o->ema_decay : 0.9999;
    c->clip_norm = o->clip_norm >= 0 ? o->clip_norm : 0;
    c->hflip = o->hflip >= 0 ? o->hflip : (digit_classes(train) ? 0 : 0.5);
    c->erase_p = o->erase_p >= 0 ? o->erase_p : (small ? 0.25 : 0);
    c->rrc_min = o->rrc_min >= 0 ? o->rrc_min : (small ? 0 : 0.25);
    c->pad_crop = o->pad_crop >= 0 ? o->pad_crop : (small ? (c->imgsz + 7) / 8 / 2 * 2 : 0);
    c->mixup = o->mixup > 0 ? o->mixup : 0;
    c->cutmix = o->cutmix > 0 ? o->cutmix : 0;
    c->patience = o->patience;
    c->seed = o->seed;
    if (c->batch > 4096) return acv_error(ACV_EINVAL, "--batch %d is too large (at most 4096)", c->batch);
    if (c->epochs > 100000) return acv_error(ACV_EINVAL, "--epochs %d is too large", c->epochs);
    if (!(c->val_split >= 0 && c->val_split < 1)) return acv_error(ACV_EINVAL, "--val-split %g is not in [0, 1)", c->val_split);
    if (!(c->label_smoothing >= 0 && c->label_smoothing < 1))
        return acv_error(ACV_EINVAL, "--label-smoothing %g is not in [0, 1)", c->label_smoothing);
    if (!(c->ema_decay >= 0 && c->ema_decay < 1)) return acv_error(ACV_EINVAL, "--ema %g is not in [0, 1)", c->ema_decay);
    return 0;
}

static void loader_cfg(const cfg_t *c, bool eval, int batch, int workers, acv_loader_config *lc)
{
    acv_loader_config_default(lc);
    lc->batch = batch;
    lc->threads = workers;
    lc->seed = c->seed;
    lc->out_c = c->channels;
    lc->out_h = lc->out_w = c->imgsz;
    for (int i = 0; i < 3; i++) {
        lc->mean[i] = c->mean[i < c->channels ? i : 0];
        lc->std[i] = c->std[i < c->channels ? i : 0];
    }
    lc->rrc_scale_lo = c->rrc_min > 0 ? (float)c->rrc_min : 0;
    lc->rrc_scale_hi = c->rrc_min > 0 ? 1.0f : 0;
    lc->eval = eval;
    lc->shuffle = !eval;
    lc->drop_last = !eval;
    if (!eval) {
        lc->pad_crop = c->pad_crop;
        lc->hflip = (float)c->hflip;
        lc->erase_p = (float)c->erase_p;
        lc->mixup_alpha = (float)c->mixup;
        lc->cutmix_alpha = (float)c->cutmix;
        if (c->imgsz > 64) lc->jitter_brightness = lc->jitter_contrast = lc->jitter_saturation = 0.2f;
    }
}

/* ---- the training state ----------------------------------------------------------------------- */

typedef struct state_t {
    int epoch;            /* epochs completed */
    int64_t step;
    double best_top1;
    int best_epoch, bad_epochs;
    json_t *history;      /* array of epoch records */
} state_t;

static int save_checkpoint(const char *path, acv_graph *g, acv_optim *opt, acv_ema *ema, const cfg_t *c,
                           const state_t *s)
{
    json_t *st = json_pack("{s:i, s:I, s:f, s:i, s:i, s:O, s:o}", "epoch", s->epoch, "step", (json_int_t)s->step,
                           "best_top1", s->best_top1, "best_epoch", s->best_epoch, "bad_epochs", s->bad_epochs,
                           "history", s->history, "config", cfg_json(c));
    int rc = st ? acv_train_checkpoint_save(path, g, opt, ema, st) : acv_error(ACV_ENOMEM, "out of memory");
    json_decref(st);
    return rc;
}

/* Reads the configuration (and, when g is set, the state) from a checkpoint. */
static int load_checkpoint(const char *path, cfg_t *c, acv_graph *g, acv_optim *opt, acv_ema *ema, state_t *s)
{
    json_t *root;
    int rc = acv_train_checkpoint_load(path, g, opt, ema, &root);
    if (rc) return rc;
    if (!g) rc = cfg_from_json(c, json_object_get(root, "config"), path);
    if (g) {
        s->epoch = (int)json_integer_value(json_object_get(root, "epoch"));
        s->step = json_integer_value(json_object_get(root, "step"));
        s->best_top1 = json_number_value(json_object_get(root, "best_top1"));
        s->best_epoch = (int)json_integer_value(json_object_get(root, "best_epoch"));
        s->bad_epochs = (int)json_integer_value(json_object_get(root, "bad_epochs"));
        json_t *h = json_object_get(root, "history");
        if (json_is_array(h)) {
            json_decref(s->history);
            s->history = json_deep_copy(h);
        }
    }
    json_decref(root);
    return rc;
}

/* ---- evaluation on the training graph ------------------------------------------------------------ */

/* Runs the graph (eval mode) over a loader; fills metrics and the mean loss. */
/* A few validation images watched through training: spread evenly over the split (an
 * ImageFolder split is sorted by class, so they cover the classes), their prediction after
 * each epoch shown by the platform's training board. */
#define N_SAMPLES 8
typedef struct samples_t {
    int n;
    int idx[N_SAMPLES], pred[N_SAMPLES], found[N_SAMPLES];
    float score[N_SAMPLES];
} samples_t;

static void samples_pick(samples_t *s, int size)
{
    memset(s, 0, sizeof *s);
    s->n = size < N_SAMPLES ? size : N_SAMPLES;
    for (int k = 0; k < s->n; k++) s->idx[k] = (int)((int64_t)k * size / s->n);
}

/* Records the predictions of the watched images found in a batch of logits z (n x k). */
static void samples_add(samples_t *s, const float *z, const int *index, int n, int k)
{
    for (int j = 0; j < n; j++)
        for (int q = 0; q < s->n; q++) {
            if (index[j] != s->idx[q]) continue;
            const float *row = z + (size_t)j * k;
            int best = 0;
            for (int c = 1; c < k; c++) best = row[c] > row[best] ? c : best;
            double se = 0;
            for (int c = 0; c < k; c++) se += exp((double)(row[c] - row[best]));
            s->pred[q] = best;
            s->score[q] = (float)(1.0 / se);
            s->found[q] = 1;
        }
}

/* [{"path","label","pred","score","correct"}] for the epoch event. */
static json_t *samples_json(const samples_t *s, const acv_cls_dataset *ds)
{
    json_t *a = json_array();
    for (int q = 0; q < s->n; q++) {
        if (!s->found[q]) continue;
        int y = acv_cls_dataset_label(ds, s->idx[q]);
        const char *path = acv_cls_dataset_path(ds, s->idx[q]);
        json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:f, s:b}", "path", path ? path : "", "label",
                                           acv_cls_dataset_class_name(ds, y), "pred",
                                           acv_cls_dataset_class_name(ds, s->pred[q]), "score", (double)s->score[q],
                                           "correct", s->pred[q] == y));
    }
    return a;
}

static int run_eval(acv_graph *g, acv_id x, acv_id logits, acv_loader *ld, acv_cls_metrics *m, double *loss,
                    acv_train_out *o, const char *label, samples_t *sm)
{
    acv_cls_metrics_reset(m);
    acv_loader_start_epoch(ld, 0);
    acv_batch b;
    double lsum = 0;
    int64_t cnt = 0;
    int rc, done = 0, nb = acv_loader_num_batches(ld);
    if (o && o->tty) acv_progress_start(&o->bar, o->f, label, nb);
    while ((rc = acv_loader_next(ld, &b)) == 1) {
        if ((rc = acv_graph_set_batch(g, b.n))) return rc;
        memcpy(acv_graph_data(g, x), b.x, (size_t)b.n * b.c * b.h * b.w * sizeof(float));
        if ((rc = acv_graph_forward(g, logits, false, 0))) return rc;
        const float *z = acv_graph_data(g, logits);
        lsum += acv_cls_ce_sum(z, b.labels, b.n, b.k);
        cnt += b.n;
        if ((rc = acv_cls_metrics_add(m, z, b.labels, b.n))) return rc;
        if (sm) samples_add(sm, z, b.index, b.n, b.k);
        if (o && o->tty) acv_progress_update(&o->bar, ++done, NULL);
    }
    if (o && o->tty) acv_progress_clear(&o->bar);
    if (rc < 0) return rc;
    if (loss) *loss = cnt ? lsum / (double)cnt : 0;
    return 0;
}


/* ---- the trainer ------------------------------------------------------------------------------------ */

typedef struct run_t {
    const acv_cls_train_opts *o;
    cfg_t c;
    acv_train_out out;
    acv_cls_dataset *train, *val;
    acv_loader *tl, *vl;
    acv_graph *g;
    acv_id x, t, logits, loss;
    acv_optim *opt;
    acv_ema *ema;
    acv_schedule sched;
    state_t s;
    char *ckpt;
    float *swap_p, *swap_b;
    acv_cls_metrics *metrics;
    double t_start;
} run_t;

static int save_model(run_t *r, json_t *epoch_metrics)
{
    acv_model m = {0};
    m.graph = r->g;
    snprintf(m.task, sizeof m.task, "cls");
    snprintf(m.arch, sizeof m.arch, "%s", r->c.model);
    int k = acv_cls_dataset_num_classes(r->train);
    m.n_classes = k;
    m.classes = malloc((size_t)k * sizeof(char *));
    if (!m.classes) return acv_error(ACV_ENOMEM, "out of memory");
    for (int i = 0; i < k; i++) m.classes[i] = (char *)acv_cls_dataset_class_name(r->train, i);
    m.in_c = r->c.channels;
    m.in_h = m.in_w = r->c.imgsz;
    for (int i = 0; i < m.in_c; i++) {
        m.mean[i] = r->c.mean[i];
        m.std[i] = r->c.std[i];
    }
    snprintf(m.resize, sizeof m.resize, "%s", r->c.rrc_min > 0 ? "crop" : "stretch");
    m.crop_frac = 0.875f;
    json_t *prov = json_pack("{s:s, s:s, s:i, s:i, s:o, s:i}", "data", r->o->data, "autocv_version", AUTOCV_VERSION,
                             "train_images", acv_cls_dataset_size(r->train), "val_images",
                             r->val ? acv_cls_dataset_size(r->val) : 0, "config", cfg_json(&r->c), "threads",
                             acv_get_threads());
    m.provenance_json = json_dumps(prov, JSON_COMPACT);
    json_decref(prov);
    m.metrics_json = epoch_metrics ? json_dumps(epoch_metrics, JSON_INDENT(1) | JSON_REAL_PRECISION(6)) : NULL;
    const char *extra[] = {"checkpoint.safetensors", r->ckpt, NULL};
    int rc = acv_model_save(&m, r->o->out, extra);
    free(m.classes);
    free(m.provenance_json);
    free(m.metrics_json);
    return rc;
}

/* Fine-tuning: the source model's architecture with a new final classifier of k outputs
 * (the linear layer at the output, found through a trailing softmax), at the training
 * input size; with c->freeze every other parameter is made non-trainable, so backward
 * stops at the classifier. Weights are copied by copy_init_weights after initialisation. */
static int build_from_init(const cfg_t *c, int k, const int64_t *xs, acv_graph **g, acv_id *x, acv_id *logits)
{
    acv_model *src = NULL;
    int rc = acv_model_load_any(c->init, &src);
    if (rc) return acv_error_prefix(rc, "--init: ");
    char *js = acv_graph_to_json(src->graph);
    acv_model_free(src);
    if (!js) return acv_error_prefix(ACV_EINVAL, "--init %s: ", c->init);
    json_error_t jerr;
    json_t *root = json_loads(js, 0, &jerr);
    free(js);
    json_t *nodes = json_object_get(root, "nodes");
    json_int_t out = json_integer_value(json_object_get(root, "output"));
    json_t *on = json_array_get(nodes, (size_t)out);
    const char *op = json_string_value(json_object_get(on, "op"));
    if (op && !strcmp(op, "softmax")) { /* logits sit before a final softmax */
        out = json_integer_value(json_array_get(json_object_get(on, "inputs"), 0));
        on = json_array_get(nodes, (size_t)out);
        op = json_string_value(json_object_get(on, "op"));
        json_object_set_new(root, "output", json_integer(out));
    }
    if (!op || strcmp(op, "linear")) {
        json_decref(root);
        return acv_error(ACV_EUNSUPPORTED, "--init %s: the network does not end in a linear classifier (it ends in %s), "
                         "so it cannot be given new classes", c->init, op ? op : "nothing");
    }
    json_t *ins = json_object_get(on, "inputs");
    json_int_t head[2] = {json_integer_value(json_array_get(ins, 1)), json_array_size(ins) > 2 ?
                          json_integer_value(json_array_get(ins, 2)) : -1};
    for (int h = 0; h < 2; h++) {
        if (head[h] < 0) continue;
        json_t *shape = json_object_get(json_array_get(nodes, (size_t)head[h]), "shape");
        json_array_set_new(shape, 0, json_integer(k)); /* (K, IN) weight, (K) bias */
    }
    size_t i;
    json_t *nd;
    json_array_foreach(nodes, i, nd) {
        const char *o2 = json_string_value(json_object_get(nd, "op"));
        if (c->freeze && o2 && !strcmp(o2, "param") && (json_int_t)i != head[0] && (json_int_t)i != head[1])
            json_object_set_new(nd, "trainable", json_false());
    }
    char *txt = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    rc = txt ? acv_graph_from_json(txt, g) : acv_error(ACV_ENOMEM, "out of memory");
    free(txt);
    if (rc) return acv_error_prefix(rc, "--init %s: ", c->init);
    *x = acv_graph_input(*g);
    *logits = acv_graph_output(*g);
    if ((rc = acv_graph_reshape_input(*g, *x, 4, xs))) return acv_error_prefix(rc, "--init %s at %dx%d: ", c->init,
                                                                            c->imgsz, c->imgsz);
    return 0;
}

/* Copies every parameter of the source model whose name and shape match into g (all but
 * the new classifier). */
static int copy_init_weights(const cfg_t *c, acv_graph *g)
{
    acv_model *src = NULL;
    int rc = acv_model_load_any(c->init, &src);
    if (rc) return acv_error_prefix(rc, "--init: ");
    int copied = 0, n = acv_graph_param_count(g);
    for (int i = 0; i < n && !rc; i++) {
        acv_param_info pi;
        if ((rc = acv_graph_param(g, i, &pi))) break;
        acv_id sid = acv_graph_find(src->graph, pi.name);
        if (sid < 0 || acv_graph_op(src->graph, sid) != ACV_OP_PARAM) continue;
        const acv_shape *ss = acv_graph_shape(src->graph, sid);
        if (acv_shape_numel(ss) != acv_shape_numel(&pi.shape)) continue; /* the new classifier */
        memcpy(pi.data, acv_graph_data(src->graph, sid), (size_t)acv_shape_numel(ss) * sizeof(float));
        copied++;
    }
    acv_model_free(src);
    if (!rc && copied < n - 2)
        rc = acv_error(ACV_EFORMAT, "--init %s: only %d of %d parameters could be copied", c->init, copied, n);
    return rc;
}

static int setup(run_t *r)
{
    const acv_cls_train_opts *o = r->o;
    int rc;
    r->ckpt = acv_path_join(o->out, "checkpoint.safetensors");
    if (!r->ckpt) return acv_error(ACV_ENOMEM, "out of memory");
    cfg_t stored;
    if (o->resume) {
        if ((rc = load_checkpoint(r->ckpt, &stored, NULL, NULL, NULL, NULL))) return rc;
    }
    double vs = o->resume ? stored.val_split : (o->val_split >= 0 ? o->val_split : 0.1);
    uint64_t seed = o->resume ? stored.seed : o->seed;
    if ((rc = acv_cls_dataset_open(o->data, "train", (float)vs, seed, &r->train))) return rc;
    if (vs > 0 || acv_path_exists(o->data)) {
        rc = acv_cls_dataset_open(o->data, "val", (float)vs, seed, &r->val);
        if (rc == ACV_EINVAL || rc == ACV_ENOTFOUND) {
            r->val = NULL; /* no validation part: train on everything, keep the last epoch */
            acv_error_clear();
        } else if (rc) {
            return rc; /* a validation folder that cannot be used (classes train/ lacks...): say so */
        }
    }
    if (o->resume) {
        r->c = stored;
        r->c.patience = stored.patience;
    } else {
        if ((rc = resolve(o, r->train, &r->c))) return rc;
        if (!r->c.init[0] && (rc = data_stats(r->train, r->c.channels, r->c.mean, r->c.std))) return rc;
    }
    r->c.workers = o->workers;
    r->c.log_every = o->log_every > 0 ? o->log_every : 20;
    int k = acv_cls_dataset_num_classes(r->train);
    if (k < 2) return acv_error(ACV_EINVAL, "%s: found %d class; classification needs at least 2", o->data, k);
    if (acv_cls_dataset_size(r->train) < r->c.batch)
        r->c.batch = acv_cls_dataset_size(r->train);

    acv_loader_config lc;
    loader_cfg(&r->c, false, r->c.batch, o->workers, &lc);
    if ((rc = acv_loader_new(r->train, &lc, &r->tl))) return rc;
    if (r->val) {
        loader_cfg(&r->c, true, r->c.batch, o->workers, &lc);
        if ((rc = acv_loader_new(r->val, &lc, &r->vl))) return rc;
    }

    /* the network */
    int64_t xs[4] = {r->c.batch, r->c.channels, r->c.imgsz, r->c.imgsz};
    if (r->c.init[0]) {
        if ((rc = build_from_init(&r->c, k, xs, &r->g, &r->x, &r->logits))) return rc;
    } else {
        r->g = acv_graph_new();
        if (!r->g) return acv_error(ACV_ENOMEM, "out of memory");
        r->x = acv_input(r->g, "input", 4, xs);
        if ((rc = acv_zoo_build(r->g, r->c.model, r->x, k, &r->logits))) return rc;
    }
    bool soft = r->c.mixup > 0 || r->c.cutmix > 0;
    int64_t ts[2] = {r->c.batch, k};
    r->t = acv_input(r->g, "target", soft ? 2 : 1, ts);
    r->loss = acv_cross_entropy(r->g, r->logits, r->t, soft ? 0.0f : (float)r->c.label_smoothing, NULL);
    acv_graph_set_output(r->g, r->logits);
    if ((rc = acv_graph_status(r->g))) return rc;
    if ((rc = acv_graph_init_params(r->g, r->c.seed))) return rc;
    if (r->c.init[0] && (rc = copy_init_weights(&r->c, r->g))) return rc;
    if ((rc = acv_graph_compile(r->g, NULL, r->c.batch, true))) return rc;

    /* optimizer, weight-decay mask (no decay on biases and norm weights: 1-D tensors) */
    int64_t np, nb;
    acv_graph_params(r->g, &np);
    acv_graph_buffers(r->g, &nb);
    acv_optim_type ot;
    if ((rc = acv_optim_type_parse(r->c.optimizer, &ot))) return rc;
    acv_optim_config oc = acv_optim_defaults(ot);
    oc.lr = r->c.lr;
    oc.weight_decay = r->c.weight_decay;
    if (ot == ACV_OPTIM_SGD) {
        oc.momentum = 0.9;
        oc.nesterov = true;
    }
    if ((rc = acv_optim_new(&oc, np, &r->opt))) return rc;
    uint8_t *mask = calloc((size_t)(np ? np : 1), 1);
    if (!mask) return acv_error(ACV_ENOMEM, "out of memory");
    for (int i = 0; i < acv_graph_param_count(r->g); i++) {
        acv_param_info pi;
        acv_graph_param(r->g, i, &pi);
        if (pi.trainable && pi.shape.ndim > 1) memset(mask + pi.offset, 1, (size_t)acv_shape_numel(&pi.shape));
    }
    rc = acv_optim_set_decay_mask(r->opt, mask);
    free(mask);
    if (rc) return rc;
    if (r->c.ema_decay > 0) {
        if ((rc = acv_ema_new(acv_graph_params(r->g, NULL), np, acv_graph_buffers(r->g, NULL), nb, r->c.ema_decay,
                              2000, &r->ema)))
            return rc;
    }
    acv_schedule_type st;
    if ((rc = acv_schedule_type_parse(r->c.schedule, &st))) return rc;
    r->sched = acv_schedule_defaults(st, r->c.lr);
    r->sched.min_lr = r->c.lr * 0.01;
    r->sched.warmup_steps = (int64_t)(r->c.warmup_epochs * acv_loader_num_batches(r->tl));
    r->sched.warmup_start_factor = 0.1;
    if (st == ACV_SCHEDULE_STEP) r->sched.step_size = r->c.epochs / 3 > 0 ? r->c.epochs / 3 : 1;
    if ((rc = acv_schedule_check(&r->sched))) return rc;
    r->swap_p = malloc((size_t)(np ? np : 1) * sizeof(float));
    r->swap_b = malloc((size_t)(nb ? nb : 1) * sizeof(float));
    r->metrics = acv_cls_metrics_new(k);
    if (!r->swap_p || !r->swap_b || !r->metrics) return acv_error(ACV_ENOMEM, "out of memory");
    r->s.history = json_array();
    r->s.best_top1 = -1;
    if (o->resume) {
        if ((rc = load_checkpoint(r->ckpt, &stored, r->g, r->opt, r->ema, &r->s))) return rc;
        if (r->s.epoch >= r->c.epochs) acv_train_say(&r->out, "the checkpoint has already finished all %d epochs", r->c.epochs);
    } else {
        if ((rc = acv_mkdirs(o->out))) return rc;
        unlink(r->ckpt);
    }
    return 0;
}

/* Puts the weights to evaluate/save into the graph (the EMA when on); undo with the same call. */
static void use_eval_weights(run_t *r, bool on) { acv_train_use_ema(r->g, r->ema, r->swap_p, r->swap_b, on); }

static int train_epoch(run_t *r, int epoch, double *train_loss, double *ips)
{
    const cfg_t *c = &r->c;
    int nb = acv_loader_num_batches(r->tl), done = 0, rc;
    int64_t total_steps = (int64_t)nb * c->epochs;
    int64_t np;
    float *params = acv_graph_params(r->g, &np);
    float *grads = acv_graph_grads(r->g, NULL);
    int64_t nbuf;
    float *bufs = acv_graph_buffers(r->g, &nbuf);
    acv_loader_start_epoch(r->tl, epoch);
    if (r->out.tty) {
        char lbl[64];
        snprintf(lbl, sizeof lbl, "epoch %d/%d", epoch + 1, c->epochs);
        acv_progress_start(&r->out.bar, r->out.f, lbl, nb);
    }
    double lsum = 0, t0 = acv_now(), tw = t0;
    int64_t imgs = 0, wimgs = 0;
    double wloss = 0;
    int wsteps = 0;
    acv_batch b;
    while ((rc = acv_loader_next(r->tl, &b)) == 1) {
        float lr = acv_schedule_lr(&r->sched, r->s.step, total_steps, nb);
        if ((rc = acv_graph_set_batch(r->g, b.n))) return rc;
        memcpy(acv_graph_data(r->g, r->x), b.x, (size_t)b.n * b.c * b.h * b.w * sizeof(float));
        float *t = acv_graph_data(r->g, r->t);
        if (b.soft && acv_graph_shape(r->g, r->t)->ndim == 2) memcpy(t, b.soft, (size_t)b.n * b.k * sizeof(float));
        else for (int i = 0; i < b.n; i++) t[i] = (float)b.labels[i];
        rc = acv_graph_forward(r->g, r->loss, true, c->seed * 0x9e3779b97f4a7c15ULL + (uint64_t)r->s.step);
        if (rc == ACV_ENUMERIC || (!rc && !isfinite(acv_graph_data(r->g, r->loss)[0])))
            return acv_error(ACV_ENUMERIC, "training diverged at epoch %d step %d: the loss is not finite; the last good "
                             "checkpoint (epoch %d) is kept in %s; try a lower --lr (now %g)", epoch + 1, done + 1,
                             r->s.epoch, r->o->out, c->lr);
        if (rc) return rc;
        float l = acv_graph_data(r->g, r->loss)[0];
        if ((rc = acv_graph_backward(r->g, r->loss))) return rc;
        if (c->clip_norm > 0) {
            float norm = acv_clip_grad_norm(grads, np, (float)c->clip_norm);
            if (!isfinite(norm))
                return acv_error(ACV_ENUMERIC, "training diverged at epoch %d step %d: the gradient is not finite; the "
                                 "last good checkpoint (epoch %d) is kept in %s", epoch + 1, done + 1, r->s.epoch, r->o->out);
        } else if (!acv_all_finite(grads, np)) {
            return acv_error(ACV_ENUMERIC, "training diverged at epoch %d step %d: the gradient is not finite; the last "
                             "good checkpoint (epoch %d) is kept in %s; try a lower --lr (now %g)", epoch + 1, done + 1,
                             r->s.epoch, r->o->out, c->lr);
        }
        if ((rc = acv_optim_step(r->opt, params, grads, lr))) return rc;
        if (r->ema && (rc = acv_ema_update(r->ema, params, bufs))) return rc;
        r->s.step++;
        done++;
        lsum += l;
        imgs += b.n;
        wimgs += b.n;
        wloss += l;
        wsteps++;
        double now = acv_now();
        if (r->out.tty) {
            char extra[96];
            snprintf(extra, sizeof extra, "loss %.4f %.0f img/s", lsum / done, imgs / (now - t0));
            acv_progress_update(&r->out.bar, done, extra);
        }
        if (r->out.json && (done % c->log_every == 0 || done == nb)) {
            double ipsw = wimgs / (now - tw > 1e-9 ? now - tw : 1e-9);
            acv_train_emit(&r->out, json_pack("{s:s, s:i, s:i, s:i, s:I, s:f, s:f, s:f, s:f}", "event", "step", "epoch", epoch + 1,
                                    "step", done, "steps", nb, "global_step", (json_int_t)r->s.step, "loss",
                                    wloss / wsteps, "lr", (double)lr, "ips", ipsw, "eta_s",
                                    (now - t0) / done * (nb - done)));
            tw = now;
            wimgs = 0;
            wloss = 0;
            wsteps = 0;
        }
    }
    if (r->out.tty) acv_progress_clear(&r->out.bar);
    if (rc < 0) return rc;
    if (done == 0) return acv_error(ACV_EFORMAT, "%s: no training batch could be formed", r->o->data);
    *train_loss = lsum / done;
    *ips = imgs / (acv_now() - t0);
    return 0;
}

static int run(run_t *r)
{
    const cfg_t *c = &r->c;
    int rc;
    char dur[32];
    if (r->s.epoch == 0)
        acv_train_say(&r->out, "%s %s on %s: %d train / %d val images, %d classes, %dx%dx%d, batch %d, %d epochs, %s lr %g, "
            "%lld trainable parameters, %.3f GFLOPs/image, %d threads",
            c->init[0] ? (c->freeze ? "fine-tuning the classifier of" : "fine-tuning") : "training",
            c->init[0] ? c->init : c->model, r->o->data, acv_cls_dataset_size(r->train),
            r->val ? acv_cls_dataset_size(r->val) : 0, acv_cls_dataset_num_classes(r->train), c->channels, c->imgsz,
            c->imgsz, c->batch, c->epochs, c->optimizer, c->lr, (long long)acv_graph_num_params(r->g),
            acv_graph_gflops(r->g), acv_get_threads());
    else
        acv_train_say(&r->out, "resuming %s from the checkpoint after epoch %d of %d", c->model, r->s.epoch, c->epochs);
    const char *other = NULL;
    int n_other = acv_cls_dataset_other_files(r->train, &other);
    if (n_other)
        acv_train_say(&r->out, "left out %d files in image formats AutoCV does not read (first: %s); convert them to "
                      "JPEG or PNG to train on them", n_other, other);
    for (int e = r->s.epoch; e < c->epochs; e++) {
        double te = acv_now(), tl = 0, ips = 0;
        if ((rc = train_epoch(r, e, &tl, &ips))) return rc;
        double vtop1 = -1, vloss = 0;
        json_t *mj = NULL;
        samples_t sm = {0};
        use_eval_weights(r, true);
        if (r->vl) {
            samples_pick(&sm, acv_cls_dataset_size(r->val));
            rc = run_eval(r->g, r->x, r->logits, r->vl, r->metrics, &vloss, &r->out, "validating", &sm);
            if (!rc) {
                const char *const *names = NULL;
                int k = acv_cls_dataset_num_classes(r->train);
                const char *nm[k];
                for (int i = 0; i < k; i++) nm[i] = acv_cls_dataset_class_name(r->train, i);
                names = nm;
                rc = acv_cls_metrics_to_json(r->metrics, names, &mj);
                if (!rc) vtop1 = json_number_value(json_object_get(mj, "top1"));
            }
        }
        use_eval_weights(r, false);
        if (rc) {
            json_decref(mj);
            return rc;
        }
        r->s.epoch = e + 1;
        double lr_now = acv_schedule_lr(&r->sched, r->s.step, (int64_t)acv_loader_num_batches(r->tl) * c->epochs,
                                        acv_loader_num_batches(r->tl));
        json_t *rec = json_pack("{s:i, s:f, s:f, s:f, s:f, s:f}", "epoch", e + 1, "train_loss", tl, "lr", (double)lr_now,
                                "ips", ips, "time_s", acv_now() - te, "elapsed_s", acv_now() - r->t_start);
        if (r->vl) {
            json_object_set_new(rec, "val_top1", json_real(vtop1));
            json_object_set_new(rec, "val_top5", json_real(json_number_value(json_object_get(mj, "top5"))));
            json_object_set_new(rec, "val_loss", json_real(vloss));
        }
        json_array_append(r->s.history, rec);
        bool improved = !r->vl || vtop1 > r->s.best_top1;
        if (improved) {
            r->s.best_top1 = vtop1;
            r->s.best_epoch = e + 1;
            r->s.bad_epochs = 0;
        } else {
            r->s.bad_epochs++;
        }
        /* checkpoint first (training state), then the model when it improved; the epoch is announced
         * only once both are on disk, so that whoever sees it can rely on resuming after it */
        if ((rc = save_checkpoint(r->ckpt, r->g, r->opt, r->ema, c, &r->s))) {
            json_decref(rec);
            json_decref(mj);
            return rc;
        }
        if (improved) {
            json_t *em = mj ? json_deep_copy(mj) : json_object();
            json_object_set_new(em, "split", json_string("val"));
            json_object_set_new(em, "epoch", json_integer(e + 1));
            json_object_set_new(em, "history", json_deep_copy(r->s.history));
            use_eval_weights(r, true);
            rc = save_model(r, em);
            use_eval_weights(r, false);
            json_decref(em);
            if (rc) {
                json_decref(rec);
                json_decref(mj);
                return rc;
            }
        }
        if (r->out.json) {
            json_t *ev = json_deep_copy(rec);
            json_object_set_new(ev, "event", json_string("epoch"));
            json_object_set_new(ev, "epochs", json_integer(c->epochs));
            json_object_set_new(ev, "best", json_boolean(improved));
            if (r->vl) json_object_set_new(ev, "samples", samples_json(&sm, r->val));
            acv_train_emit(&r->out, ev);
        } else {
            if (r->vl)
                acv_train_say(&r->out, "epoch %d/%d  loss %.4f  val_top1 %.4f  val_loss %.4f  lr %.4g  %.0f img/s  %s%s", e + 1,
                    c->epochs, tl, vtop1, vloss, lr_now, ips, acv_fmt_duration(acv_now() - te, dur, sizeof dur),
                    improved ? "  *best" : "");
            else
                acv_train_say(&r->out, "epoch %d/%d  loss %.4f  lr %.4g  %.0f img/s  %s", e + 1, c->epochs, tl, lr_now, ips,
                    acv_fmt_duration(acv_now() - te, dur, sizeof dur));
        }
        json_decref(rec);
        json_decref(mj);
        if (c->patience > 0 && r->s.bad_epochs >= c->patience) {
            acv_train_say(&r->out, "early stop: validation top-1 has not improved for %d epochs (best %.4f at epoch %d)",
                c->patience, r->s.best_top1, r->s.best_epoch);
            break;
        }
    }
    long skipped = acv_loader_skipped(r->tl) + (r->vl ? acv_loader_skipped(r->vl) : 0);
    if (skipped) acv_train_say(&r->out, "skipped %ld unreadable images (first: %s)", skipped, acv_loader_first_error(r->tl)[0] ?
                     acv_loader_first_error(r->tl) : acv_loader_first_error(r->vl));
    double wall = acv_now() - r->t_start;
    if (r->out.json)
        acv_train_emit(&r->out, json_pack("{s:s, s:s, s:f, s:i, s:I, s:f}", "event", "done", "model", r->o->out, "best_val_top1",
                                r->s.best_top1, "best_epoch", r->s.best_epoch, "skipped_images", (json_int_t)skipped,
                                "wall_s", wall));
    else if (r->vl)
        acv_train_say(&r->out, "done in %s: best val_top1 %.4f at epoch %d; model written to %s",
            acv_fmt_duration(wall, dur, sizeof dur), r->s.best_top1, r->s.best_epoch, r->o->out);
    else
        acv_train_say(&r->out, "done in %s; model written to %s", acv_fmt_duration(wall, dur, sizeof dur), r->o->out);
    return 0;
}

int acv_cls_train(const acv_cls_train_opts *o)
{
    if (!o->data) return acv_error(ACV_EINVAL, "--data is required");
    if (!o->out) return acv_error(ACV_EINVAL, "--out is required");
    run_t r;
    memset(&r, 0, sizeof r);
    r.o = o;
    r.t_start = acv_now();
    r.out.f = o->out_stream ? o->out_stream : stdout;
    r.out.tty = !o->json && isatty(fileno(r.out.f));
    r.out.json = o->json || !r.out.tty;
    acv_set_threads(o->threads);
    int rc = setup(&r);
    if (!rc) rc = run(&r);
    acv_graph_profile_print(stderr); /* these print only when ACV_PROFILE is set */
    if (r.g) acv_graph_profile_nodes(r.g, stderr);
    acv_loader_free(r.tl);
    acv_loader_free(r.vl);
    acv_cls_dataset_free(r.train);
    acv_cls_dataset_free(r.val);
    acv_graph_free(r.g);
    acv_optim_free(r.opt);
    acv_ema_free(r.ema);
    acv_cls_metrics_free(r.metrics);
    json_decref(r.s.history);
    free(r.ckpt);
    free(r.swap_p);
    free(r.swap_b);
    return rc;
}
