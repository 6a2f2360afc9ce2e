/* Object detection end to end: the trainer, evaluation and prediction on model directories
 * (the network, loss and decoding are tasks/det.h).
 *
 * A detection model directory is an ordinary one (autocv/model.h) with task "det", the
 * architecture name ("det-s", "det-m"), the class names, input 3 x S x S, mean 0 / std 1
 * (pixels scaled to [0, 1]) and preprocess.resize "letterbox" (fit inside, gray 114 border). */
#ifndef ACV_TASKS_DET_TASK_H
#define ACV_TASKS_DET_TASK_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "autocv/model.h"
#include "tasks/det.h"
#include "vision/image.h"

/* Training options. Zero / NULL / negative fields mean "auto". */
typedef struct acv_det_train_opts {
    const char *data;        /* dataset (COCO, YOLO or VOC; detected) */
    const char *out;         /* model directory to write */
    const char *model;       /* "det-s", "det-m" or "auto" */
    const char *init;        /* start from this detection model directory's weights */
    const char *backbone;    /* the backbone from this classifier (model directory or .onnx) */
    bool freeze_backbone;    /* with backbone: its parameters do not train */
    int epochs, batch, imgsz, workers, threads, patience, log_every;
    int close_mosaic;        /* epochs at the end without mosaic (auto: 10, at most a third) */
    double lr, weight_decay, warmup_epochs, ema_decay;
    double class_balance;    /* weight up to this on classes with little target score (auto: 10) */
    double mosaic, fliplr, flipud, scale, degrees, translate; /* augmentation (auto: YOLOv8's) */
    int val_every;           /* validate every N epochs and at the last one (auto: 1) */
    uint64_t seed;
    bool resume, json, skip_bad;
    FILE *out_stream;        /* progress (stdout when NULL) */
} acv_det_train_opts;

void acv_det_train_opts_init(acv_det_train_opts *o);
/* Trains and writes o->out (the best model by validation AP@[.5:.95]) with
 * checkpoint.safetensors beside it each epoch. */
int acv_det_train(const acv_det_train_opts *o);

/* A loaded detector ready to run at batch 1 (graph compiled for inference). */
typedef struct acv_det_runner {
    acv_model *model;        /* owned */
    acv_det_net net;
    float *points, *strides; /* anchors */
    acv_det_decode_opts dopts;
} acv_det_runner;

/* Loads (or takes: model != NULL, ownership passes) a detection model and compiles it for
 * inference at batch max_batch. */
int acv_det_runner_open(const char *dir, acv_model *model, int max_batch, acv_det_runner *r);
void acv_det_runner_close(acv_det_runner *r);
/* Detects objects in one decoded image: boxes in the image's own pixels, best first, at most
 * cap (dopts.max_det is the usual cap). */
int acv_det_runner_detect(acv_det_runner *r, const acv_image *im, acv_box *boxes, int cap, int *n);
/* {"detections":[{"label","class","score","box":[x1,y1,x2,y2]}],"counts":{label:n}} for n
 * boxes of r's classes (new reference). */
json_t *acv_det_result_json(const acv_det_runner *r, const acv_box *boxes, int n);

/* Evaluates a detection model on split of a dataset: the COCO metrics and counting figures
 * (metrics/det.h) as JSON (new reference in *out), with "task":"det", "split", "images". */
int acv_det_evaluate(const char *model_dir, const char *data, const char *split, int batch, int workers,
                     float count_thr, bool skip_bad, FILE *progress, json_t **out);

/* Draws boxes with their labels and scores on im (RGB, in place). */
void acv_det_draw(acv_image *im, const acv_box *boxes, int n, const char *const *names);

#endif
