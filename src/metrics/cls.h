/* Classification metrics: an accumulator fed batch by batch with scores and labels that
 * reports top-1 / top-5 accuracy, per-class precision / recall / F1 / support, macro F1
 * and the confusion matrix, and writes them as JSON for the platform and the CLI.
 *
 * Prediction rule: the predicted class is the arg-max of a row of scores; on ties the
 * lower class index wins, so results never depend on sort stability. The same rule ranks
 * classes for top-k: the true class is in the top k when fewer than k classes beat it
 * (a class beats it with a higher score, or an equal score and a lower index). */
#ifndef ACV_METRICS_CLS_H
#define ACV_METRICS_CLS_H

#include <stdint.h>

#include <jansson.h>

typedef struct acv_cls_metrics acv_cls_metrics;

typedef struct acv_cls_class_stats {
    double precision; /* tp / predicted; 0 when the class was never predicted */
    double recall;    /* tp / support; 0 when the class has no samples */
    double f1;        /* harmonic mean; 0 when precision + recall == 0 */
    int64_t support;  /* samples whose true label is the class */
    int64_t predicted;/* samples predicted as the class */
} acv_cls_class_stats;

/* A new, empty accumulator for k classes (1 <= k <= 100000). Returns NULL (with the
 * message set) on a bad k or out of memory. Free with acv_cls_metrics_free. */
acv_cls_metrics *acv_cls_metrics_new(int k);
void acv_cls_metrics_free(acv_cls_metrics *m);
/* Forgets every sample added so far. */
void acv_cls_metrics_reset(acv_cls_metrics *m);

/* Adds n samples: scores is (n, k) row-major (logits or probabilities, any monotonic
 * scale), labels is (n) with values in [0, k). The whole batch is checked first: a label
 * out of range (ACV_EINVAL) or a NaN score (ACV_ENUMERIC) names the sample and leaves the
 * accumulator unchanged. Infinite scores are allowed. */
int acv_cls_metrics_add(acv_cls_metrics *m, const float *scores, const int *labels, int n);

int acv_cls_metrics_num_classes(const acv_cls_metrics *m);
/* Samples added so far. */
int64_t acv_cls_metrics_count(const acv_cls_metrics *m);
/* Fractions in [0, 1]; 0 when no sample was added. top5 uses min(5, k). */
double acv_cls_metrics_top1(const acv_cls_metrics *m);
double acv_cls_metrics_top5(const acv_cls_metrics *m);
/* Per-class statistics for class c in [0, k). */
acv_cls_class_stats acv_cls_metrics_class(const acv_cls_metrics *m, int c);
/* Mean F1 over the classes that occur as a true label or as a prediction (the classes
 * sklearn's f1_score(average="macro") uses by default); 0 when no sample was added. */
double acv_cls_metrics_macro_f1(const acv_cls_metrics *m);
/* The (k, k) confusion matrix, row-major: [true * k + predicted]. Owned by m; valid
 * until the next add, reset or free. */
const int64_t *acv_cls_metrics_confusion(const acv_cls_metrics *m);

/* Writes the results as a new JSON object into *out (caller json_decref's it):
 * {"top1":F,"top5":F,"macro_f1":F,"images":N,
 *  "per_class":[{"name":S,"precision":F,"recall":F,"f1":F,"support":N}, ...],
 *  "confusion":[[N,...],...]}   (rows = true class, columns = predicted class).
 * class_names has k entries, or is NULL to name classes by their index ("0", "1", ...).
 * Returns ACV_EINVAL for a NULL or non-UTF-8 name, ACV_ENOMEM on allocation failure. */
int acv_cls_metrics_to_json(const acv_cls_metrics *m, const char *const *class_names, json_t **out);

#endif
