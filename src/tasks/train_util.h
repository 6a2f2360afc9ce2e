/* What every trainer shares: progress output (a progress bar on a terminal, JSON lines
 * otherwise), the training-state checkpoint (weights, optimizer, EMA and the trainer's own JSON
 * record in one safetensors file), and swapping the EMA weights in for evaluation. */
#ifndef ACV_TASKS_TRAIN_UTIL_H
#define ACV_TASKS_TRAIN_UTIL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

#include "autocv/graph.h"
#include "base/progress.h"
#include "nn/optim.h"

typedef struct acv_train_out {
    FILE *f;
    bool json, tty;
    acv_progress bar;
} acv_train_out;

/* Prints ev as one JSON line in JSON mode (nothing otherwise); ev is stolen. */
void acv_train_emit(acv_train_out *o, json_t *ev);
/* A log line: {"event":"log","message"} in JSON mode, plain text otherwise. */
void acv_train_say(acv_train_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Writes the training state of g (parameters, buffers), opt and ema (may be NULL) to path with
 * record (borrowed: the trainer's configuration and progress) as its "autocv_checkpoint"
 * metadata; "optim_steps" and "ema_updates" are added to the stored record. */
int acv_train_checkpoint_save(const char *path, acv_graph *g, acv_optim *opt, acv_ema *ema, const json_t *record);
/* Reads the record (*record, new reference). With g set, also restores g, opt and ema (may be
 * NULL) from the file; every array must match in size (ACV_EFORMAT naming it otherwise). */
int acv_train_checkpoint_load(const char *path, acv_graph *g, acv_optim *opt, acv_ema *ema, json_t **record);

/* Evaluation with the EMA weights: on puts ema's weights into g, keeping g's own in swap_p /
 * swap_b (as large as g's parameters and buffers); off puts them back. No-op when ema is NULL. */
void acv_train_use_ema(acv_graph *g, const acv_ema *ema, float *swap_p, float *swap_b, bool on);

/* Matches a dataset's class names (ds_names[0..ds_k-1], where) to a model's (model_names[0..
 * model_k-1]) by name, in any order: *map (malloc'd, ds_k entries, the caller frees) takes a
 * dataset class index to the model's. Every dataset class must be one of the model's (the
 * model may have more); otherwise ACV_EINVAL names the first that is not, and where. */
int acv_classes_map_by_name(const char *where, const char *const *ds_names, int ds_k, const char *const *model_names,
                            int model_k, int **map);

#endif
