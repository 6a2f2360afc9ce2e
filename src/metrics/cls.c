/* Classification metrics accumulator (see cls.h). Only counts are kept (the confusion
 * matrix and the top-1 / top-5 hit counts), so memory is O(k^2) whatever the data size,
 * and every reported number is derived from them on demand. */
#include "metrics/cls.h"
#include "autocv/error.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ACV_CLS_MAX_CLASSES 100000

struct acv_cls_metrics {
    int k;
    int64_t count;
    int64_t top1_hits;
    int64_t top5_hits;
    int64_t *confusion; /* (k, k): [true * k + predicted] */
};

acv_cls_metrics *acv_cls_metrics_new(int k)
{
    if (k < 1 || k > ACV_CLS_MAX_CLASSES) {
        acv_error(ACV_EINVAL, "classification metrics: %d classes (must be 1..%d)", k,
                  ACV_CLS_MAX_CLASSES);
        return NULL;
    }
    acv_cls_metrics *m = calloc(1, sizeof *m);
    if (m) m->confusion = calloc((size_t)k * (size_t)k, sizeof *m->confusion);
    if (!m || !m->confusion) {
        free(m);
        acv_error(ACV_ENOMEM, "classification metrics: cannot allocate a %dx%d confusion matrix", k, k);
        return NULL;
    }
    m->k = k;
    return m;
}

void acv_cls_metrics_free(acv_cls_metrics *m)
{
    if (!m) return;
    free(m->confusion);
    free(m);
}

void acv_cls_metrics_reset(acv_cls_metrics *m)
{
    m->count = m->top1_hits = m->top5_hits = 0;
    memset(m->confusion, 0, (size_t)m->k * (size_t)m->k * sizeof *m->confusion);
}

int acv_cls_metrics_add(acv_cls_metrics *m, const float *scores, const int *labels, int n)
{
    if (n < 0) return acv_error(ACV_EINVAL, "classification metrics: negative batch size %d", n);
    if (n == 0) return 0;
    if (!scores || !labels) return acv_error(ACV_EINVAL, "classification metrics: NULL scores or labels");
    const int k = m->k;
    for (int i = 0; i < n; i++) {
        if (labels[i] < 0 || labels[i] >= k)
            return acv_error(ACV_EINVAL, "classification metrics: sample %d of the batch has label %d, "
                             "outside [0, %d)", i, labels[i], k);
        const float *row = scores + (size_t)i * (size_t)k;
        for (int c = 0; c < k; c++)
            if (isnan(row[c]))
                return acv_error(ACV_ENUMERIC, "classification metrics: sample %d of the batch has a NaN "
                                 "score for class %d", i, c);
    }
    const int topk = k < 5 ? k : 5;
    for (int i = 0; i < n; i++) {
        const float *row = scores + (size_t)i * (size_t)k;
        const int y = labels[i];
        const float sy = row[y];
        int pred = 0, rank = 0; /* rank = classes that beat the true class */
        for (int c = 0; c < k; c++) {
            if (row[c] > row[pred]) pred = c;
            if (row[c] > sy || (row[c] == sy && c < y)) rank++;
        }
        m->confusion[(size_t)y * (size_t)k + (size_t)pred]++;
        m->top1_hits += rank == 0;
        m->top5_hits += rank < topk;
        m->count++;
    }
    return 0;
}

int acv_cls_metrics_num_classes(const acv_cls_metrics *m) { return m->k; }
int64_t acv_cls_metrics_count(const acv_cls_metrics *m) { return m->count; }
const int64_t *acv_cls_metrics_confusion(const acv_cls_metrics *m) { return m->confusion; }

double acv_cls_metrics_top1(const acv_cls_metrics *m)
{
    return m->count ? (double)m->top1_hits / (double)m->count : 0.0;
}

double acv_cls_metrics_top5(const acv_cls_metrics *m)
{
    return m->count ? (double)m->top5_hits / (double)m->count : 0.0;
}

acv_cls_class_stats acv_cls_metrics_class(const acv_cls_metrics *m, int c)
{
    ACV_ASSERT(c >= 0 && c < m->k);
    const size_t k = (size_t)m->k;
    acv_cls_class_stats s = {0};
    int64_t tp = m->confusion[(size_t)c * k + (size_t)c];
    for (size_t j = 0; j < k; j++) {
        s.support += m->confusion[(size_t)c * k + j];
        s.predicted += m->confusion[j * k + (size_t)c];
    }
    s.precision = s.predicted ? (double)tp / (double)s.predicted : 0.0;
    s.recall = s.support ? (double)tp / (double)s.support : 0.0;
    s.f1 = s.precision + s.recall > 0 ? 2.0 * s.precision * s.recall / (s.precision + s.recall) : 0.0;
    return s;
}

double acv_cls_metrics_macro_f1(const acv_cls_metrics *m)
{
    double sum = 0.0;
    int used = 0;
    for (int c = 0; c < m->k; c++) {
        acv_cls_class_stats s = acv_cls_metrics_class(m, c);
        if (s.support == 0 && s.predicted == 0) continue;
        sum += s.f1;
        used++;
    }
    return used ? sum / used : 0.0;
}

/* json_object_set_new that reports failure (NULL value or allocation) as -1. */
static int put(json_t *obj, const char *key, json_t *v)
{
    return v && json_object_set_new(obj, key, v) == 0 ? 0 : -1;
}

int acv_cls_metrics_to_json(const acv_cls_metrics *m, const char *const *class_names, json_t **out)
{
    *out = NULL;
    const int k = m->k;
    if (class_names)
        for (int c = 0; c < k; c++)
            if (!class_names[c])
                return acv_error(ACV_EINVAL, "classification metrics: name of class %d is NULL", c);
    json_t *root = json_object();
    json_t *per = json_array();
    json_t *conf = json_array();
    int bad = !root || !per || !conf;
    bad = bad || put(root, "top1", json_real(acv_cls_metrics_top1(m)));
    bad = bad || put(root, "top5", json_real(acv_cls_metrics_top5(m)));
    bad = bad || put(root, "macro_f1", json_real(acv_cls_metrics_macro_f1(m)));
    bad = bad || put(root, "images", json_integer(m->count));
    for (int c = 0; c < k && !bad; c++) {
        char idx[16];
        const char *name = class_names ? class_names[c] : idx;
        if (!class_names) snprintf(idx, sizeof idx, "%d", c);
        json_t *nm = json_string(name);
        if (!nm) {
            json_decref(root); json_decref(per); json_decref(conf);
            return acv_error(ACV_EINVAL, "classification metrics: name of class %d is not valid UTF-8", c);
        }
        acv_cls_class_stats s = acv_cls_metrics_class(m, c);
        json_t *o = json_object();
        if (!o) { json_decref(nm); bad = 1; break; }
        bad = put(o, "name", nm) || put(o, "precision", json_real(s.precision)) ||
              put(o, "recall", json_real(s.recall)) || put(o, "f1", json_real(s.f1)) ||
              put(o, "support", json_integer(s.support));
        if (bad) { json_decref(o); break; }
        bad = json_array_append_new(per, o) != 0; /* steals o even on failure */
        json_t *row = bad ? NULL : json_array();
        bad = bad || !row;
        for (int j = 0; j < k && !bad; j++)
            bad = json_array_append_new(row, json_integer(m->confusion[(size_t)c * (size_t)k + (size_t)j])) != 0;
        if (bad) { json_decref(row); break; }
        bad = json_array_append_new(conf, row) != 0;
    }
    if (!bad) {
        bad = json_object_set_new(root, "per_class", per) != 0;
        per = NULL;
        if (!bad) bad = json_object_set_new(root, "confusion", conf) != 0;
        else json_decref(conf);
        conf = NULL;
    }
    if (bad) {
        json_decref(root); json_decref(per); json_decref(conf);
        return acv_error(ACV_ENOMEM, "classification metrics: out of memory building JSON");
    }
    *out = root;
    return 0;
}
