/* The model directory: the one unit every feature moves models around in.
 *
 *   DIR/model.json           format version, task, architecture name and graph, class names,
 *                            input size and channels, normalization, provenance
 *   DIR/weights.safetensors  every parameter and buffer by its PyTorch-style name
 *   DIR/metrics.json         validation metrics written by training (optional)
 *
 * acv_model_save writes into a temporary folder and renames it over DIR, so a reader (or a
 * killed writer) never sees a half-written model. */
#ifndef AUTOCV_MODEL_H
#define AUTOCV_MODEL_H

#include "autocv/graph.h"

typedef struct acv_model {
    acv_graph *graph;        /* owned; input node (1, C, H, W) and output node set */
    char task[16];           /* "cls" */
    char arch[64];           /* zoo name, "onnx", ... */
    int n_classes;
    char **classes;          /* owned, n_classes names */
    int in_c, in_h, in_w;
    float mean[4], std[4];   /* per input channel; image values are scaled to [0,1] first */
    char resize[24];         /* eval geometry: "stretch", "crop" (resize then center crop) or
                                "letterbox" (fit inside, gray 114 border: detection) */
    float crop_frac;         /* for "crop" */
    float *score_thr;        /* owned, n_classes per-class score thresholds or NULL: detection
                                (model.json "postprocess": {"score_thresholds": [...]}); set by
                                training from its validation counts (metrics/det_count.h) */
    char *provenance_json;   /* owned JSON object text or NULL */
    char *metrics_json;      /* owned JSON text of metrics.json or NULL */
} acv_model;

/* Loads DIR (model.json + weights.safetensors); every missing or malformed piece is an
 * error naming the file and field. On success *out is owned by the caller. */
int acv_model_load(const char *dir, acv_model **out);
/* Writes the model atomically to DIR (replacing any previous model there); extra files
 * (name, path pairs, NULL-terminated) are hard-linked in alongside. */
int acv_model_save(const acv_model *m, const char *dir, const char *const *extra_files);
void acv_model_free(acv_model *m);
/* Writes the graph's parameters and buffers to a safetensors file / reads them back by
 * name (every parameter of the graph must be present with its shape). */
int acv_weights_save(acv_graph *g, const char *path);
int acv_weights_load(acv_graph *g, const char *path);

#endif
