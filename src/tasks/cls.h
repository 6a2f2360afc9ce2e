/* Image classification: the trainer, evaluation and prediction on model directories. */
#ifndef ACV_TASKS_CLS_H
#define ACV_TASKS_CLS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "autocv/model.h"
#include "data/dataset.h"
#include "metrics/cls.h"
#include "vision/image.h"

/* Training options. Zero / NULL / negative fields mean "auto": fitted to the data. */
typedef struct acv_cls_train_opts {
    const char *data;        /* dataset path (idx folder or ImageFolder) */
    const char *out;         /* model directory to write */
    const char *model;       /* zoo name or "auto" */
    const char *optimizer;   /* "sgd" (default) or "adamw" */
    const char *schedule;    /* "cosine" (default), "step", "constant" */
    const char *init;        /* start from this model (directory or .onnx) instead of --model:
                                its weights, a new final classifier for the data's classes */
    bool freeze_backbone;    /* with init: train only the new classifier */
    int epochs, batch, imgsz, workers, threads, patience, log_every;
    double lr, weight_decay, label_smoothing, warmup_epochs, val_split, ema_decay, clip_norm;
    double hflip, erase_p, mixup, cutmix, rrc_min;
    int pad_crop;
    uint64_t seed;
    bool resume;
    bool json;               /* JSON lines on stdout instead of the progress bar */
    FILE *out_stream;        /* where progress goes (stdout when NULL) */
} acv_cls_train_opts;

/* Sets every field to "auto" (and seed 0, stdout). */
void acv_cls_train_opts_init(acv_cls_train_opts *o);
/* Trains and writes the model directory o->out; returns 0 or an error (message set). */
int acv_cls_train(const acv_cls_train_opts *o);

/* Evaluates model m on dataset ds: fills metrics (created by the caller with m's class
 * count) and the mean cross-entropy in *loss (may be NULL). batch <= 0: 64. */
int acv_cls_evaluate(acv_model *m, const acv_cls_dataset *ds, int batch, int workers, acv_cls_metrics *metrics,
                     double *loss, FILE *progress);
/* Sum over n samples of the cross-entropy of logits (n, k) against labels (no smoothing). */
double acv_cls_ce_sum(const float *logits, const int *labels, int n, int k);
/* Preprocesses one decoded image for model m into out (in_c * in_h * in_w floats): the
 * same eval geometry and normalization as evaluation uses. */
int acv_cls_preprocess(const acv_model *m, const acv_image *im, float *out);
/* Softmax of k logits into prob (k floats) and, when order is not NULL, the indices of the
 * topk most probable classes, best first, in order[0..topk) (order holds k ints; ties keep
 * the lower index): the arithmetic of `autocv predict`. */
void acv_cls_softmax_topk(const float *logits, int k, float *prob, int *order, int topk);
/* Classifies one decoded image with m, whose graph is compiled for inference (max batch >= 1;
 * it runs at batch 1): preprocesses into the graph's input, runs forward, and fills prob and
 * order as acv_cls_softmax_topk does. ms (may be NULL) gets the preprocessing and inference
 * times in milliseconds. Not thread-safe on one model: one call at a time per m. */
int acv_cls_predict(acv_model *m, const acv_image *im, int topk, float *prob, int *order, double ms[2]);

#endif
