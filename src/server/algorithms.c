/* Built-in training algorithms and their parameters (see algorithms.h). */
#include "server/algorithms.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "autocv/error.h"
#include "autocv/graph.h"
#include "nn/zoo.h"
#include "tasks/det.h"

typedef enum { P_INT, P_NUM, P_ENUM, P_BOOL } ptype;

typedef struct param {
    const char *name, *flag;
    ptype type;
    double min, max;     /* inclusive for P_INT; for P_NUM min_open marks (min, max] */
    bool min_open;
    const char *choices; /* P_ENUM: "a|b|c" */
    const char *dflt;    /* shown to users: "auto" or a value */
    bool custom_only;    /* only for fine-tuning a custom network */
    const char *description;
} param;

static const param CLS_PARAMS[] = {
    {"epochs", "--epochs", P_INT, 1, 1000, false, NULL, "auto", false,
     "passes over the training images (auto: 30)"},
    {"batch", "--batch", P_INT, 1, 1024, false, NULL, "auto", false,
     "images per step (auto: by network and image size)"},
    {"imgsz", "--imgsz", P_INT, 8, 1024, false, NULL, "auto", false,
     "input side in pixels (auto: from the images, within the network's range)"},
    {"lr", "--lr", P_NUM, 0, 10, true, NULL, "auto", false,
     "peak learning rate (auto: 0.1*batch/256 for sgd, 1e-3*batch/64 for adamw)"},
    {"optimizer", "--optimizer", P_ENUM, 0, 0, false, "sgd|adamw", "sgd", false,
     "sgd (Nesterov momentum 0.9) or adamw"},
    {"schedule", "--schedule", P_ENUM, 0, 0, false, "cosine|step|constant", "cosine", false,
     "learning-rate schedule"},
    {"weight_decay", "--weight-decay", P_NUM, 0, 1, false, NULL, "auto", false,
     "weight decay (not applied to biases and norm weights)"},
    {"warmup_epochs", "--warmup", P_NUM, 0, 100, false, NULL, "1", false, "linear warmup length in epochs"},
    {"label_smoothing", "--label-smoothing", P_NUM, 0, 0.5, false, NULL, "0.1", false, "label smoothing"},
    {"ema", "--ema", P_NUM, 0, 0.999999, false, NULL, "0.9999", false,
     "decay of the weights' moving average (0 disables it)"},
    {"patience", "--patience", P_INT, 0, 1000, false, NULL, "0", false,
     "stop after this many epochs without a better validation accuracy (0: never)"},
    {"hflip", "--hflip", P_NUM, 0, 1, false, NULL, "auto", false,
     "probability of a horizontal flip (auto: 0.5; 0 for digits)"},
    {"erase", "--erase", P_NUM, 0, 1, false, NULL, "auto", false, "probability of random erasing"},
    {"mixup", "--mixup", P_NUM, 0, 10, false, NULL, "0", false, "mixup alpha (0: off)"},
    {"cutmix", "--cutmix", P_NUM, 0, 10, false, NULL, "0", false, "cutmix alpha (0: off)"},
    {"seed", "--seed", P_INT, 0, 2147483647, false, NULL, "0", false,
     "random seed: the same seed on the same data gives the same model"},
    {"freeze_backbone", "--freeze-backbone", P_BOOL, 0, 0, false, NULL, "false", true,
     "train only the new classifier of the custom network"},
};
#define NPARAMS (sizeof CLS_PARAMS / sizeof CLS_PARAMS[0])

static const param DET_PARAMS[] = {
    {"epochs", "--epochs", P_INT, 1, 1000, false, NULL, "auto", false, "passes over the training images (auto: 100)"},
    {"batch", "--batch", P_INT, 1, 256, false, NULL, "auto", false, "images per step (auto: 8)"},
    {"imgsz", "--imgsz", P_INT, 64, 1280, false, NULL, "640", false,
     "letterboxed input side in pixels, a multiple of 32"},
    {"lr", "--lr", P_NUM, 0, 1, true, NULL, "auto", false, "peak AdamW learning rate (auto: 0.004)"},
    {"weight_decay", "--weight-decay", P_NUM, 0, 1, false, NULL, "auto", false, "weight decay"},
    {"warmup_epochs", "--warmup", P_NUM, 0, 100, false, NULL, "auto", false, "linear warmup length in epochs"},
    {"ema", "--ema", P_NUM, 0, 0.999999, false, NULL, "0.9999", false, "decay of the weights' moving average"},
    {"patience", "--patience", P_INT, 0, 1000, false, NULL, "0", false,
     "stop after this many validations without a better AP (0: never)"},
    {"close_mosaic", "--close-mosaic", P_INT, 0, 1000, false, NULL, "auto", false,
     "epochs at the end trained without mosaic (auto: 10)"},
    {"class_balance", "--class-balance", P_NUM, 0, 1000, false, NULL, "auto", false,
     "weight classes with few positive anchors (small objects) up to this many times; 1: off (auto: 10)"},
    {"mosaic", "--mosaic", P_NUM, 0, 1, false, NULL, "1", false, "probability of a 4-image mosaic"},
    {"fliplr", "--fliplr", P_NUM, 0, 1, false, NULL, "0.5", false, "probability of a horizontal flip"},
    {"flipud", "--flipud", P_NUM, 0, 1, false, NULL, "0", false, "probability of a vertical flip"},
    {"scale", "--scale", P_NUM, 0, 0.99, false, NULL, "0.5", false, "random zoom range"},
    {"degrees", "--degrees", P_NUM, 0, 45, false, NULL, "0", false, "random rotation range in degrees"},
    {"translate", "--translate", P_NUM, 0, 0.5, false, NULL, "0.1", false, "random shift range (fraction of the size)"},
    {"seed", "--seed", P_INT, 0, 2147483647, false, NULL, "0", false, "random seed"},
    {"freeze_backbone", "--freeze-backbone", P_BOOL, 0, 0, false, NULL, "false", true,
     "with a backbone: keep its weights as they are (only the neck and heads train)"},
};
#define NDET (sizeof DET_PARAMS / sizeof DET_PARAMS[0])

/* The parameter table of task (NULL for a task that cannot be trained). */
static const param *table_of(const char *task, size_t *n)
{
    if (!task || !strcmp(task, "cls")) {
        *n = NPARAMS;
        return CLS_PARAMS;
    }
    if (!strcmp(task, "det")) {
        *n = NDET;
        return DET_PARAMS;
    }
    *n = 0;
    return NULL;
}

static json_t *param_json(const param *p)
{
    static const char *const TYPES[] = {"integer", "number", "string", "boolean"};
    json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "name", p->name, "type", TYPES[p->type], "default", p->dflt,
                          "description", p->description);
    if (p->type == P_INT || p->type == P_NUM) {
        json_object_set_new(o, "min", p->type == P_INT ? json_integer((json_int_t)p->min) : json_real(p->min));
        json_object_set_new(o, "max", p->type == P_INT ? json_integer((json_int_t)p->max) : json_real(p->max));
        if (p->min_open) json_object_set_new(o, "exclusive_min", json_true());
    }
    if (p->type == P_ENUM) {
        json_t *a = json_array();
        char buf[128];
        snprintf(buf, sizeof buf, "%s", p->choices);
        for (char *save, *t = strtok_r(buf, "|", &save); t; t = strtok_r(NULL, "|", &save))
            json_array_append_new(a, json_string(t));
        json_object_set_new(o, "choices", a);
    }
    return o;
}

json_t *acv_algorithms_params(const char *task, bool custom)
{
    json_t *a = json_array();
    size_t n;
    const param *t = table_of(task, &n);
    for (size_t i = 0; i < n; i++)
        if (custom || !t[i].custom_only) json_array_append_new(a, param_json(&t[i]));
    return a;
}

/* Parameters and GFLOPs of each zoo network at its default size, computed once. */
static pthread_once_t cost_once = PTHREAD_ONCE_INIT;
static json_t *cost_cache;

static void compute_costs(void)
{
    cost_cache = json_object();
    const acv_zoo_entry *list;
    int n = acv_zoo_list(&list);
    for (int i = 0; i < n; i++) {
        acv_graph *g = acv_graph_new();
        if (!g) continue;
        int64_t s[4] = {1, 3, list[i].default_imgsz, list[i].default_imgsz};
        acv_id x = acv_input(g, "input", 4, s), y;
        if (acv_zoo_build(g, list[i].name, x, 10, &y) == 0 && acv_graph_status(g) == 0)
            json_object_set_new(cost_cache, list[i].name,
                                json_pack("{s:I, s:f, s:i, s:i}", "params", (json_int_t)acv_graph_num_params(g), "gflops",
                                          round(acv_graph_gflops(g) * 1000) / 1000, "imgsz", list[i].default_imgsz,
                                          "classes", 10));
        acv_graph_free(g);
    }
}

bool acv_algorithms_is_builtin(const char *task, const char *name)
{
    if (!name) return false;
    if (task && !strcmp(task, "det")) return !strcmp(name, "auto") || acv_det_arch_find(name) != NULL;
    if (task && strcmp(task, "cls")) return false;
    return !strcmp(name, "auto") || acv_zoo_find(name) != NULL;
}

/* Parameters and GFLOPs of the detectors at 640, 80 classes, computed once. */
static pthread_once_t det_once = PTHREAD_ONCE_INIT;
static json_t *det_cache;

static void compute_det_costs(void)
{
    det_cache = json_object();
    const acv_det_arch *list;
    int n = acv_det_arch_list(&list);
    for (int i = 0; i < n; i++) {
        acv_graph *g = acv_graph_new();
        acv_det_net net;
        if (g && acv_det_build(g, list[i].name, 80, 640, 640, &net) == 0)
            json_object_set_new(det_cache, list[i].name,
                                json_pack("{s:I, s:f, s:i, s:i}", "params", (json_int_t)acv_graph_num_params(g), "gflops",
                                          round(acv_graph_gflops(g) * 1000) / 1000, "imgsz", 640, "classes", 80));
        acv_graph_free(g);
    }
}

static json_t *det_builtin(void)
{
    pthread_once(&det_once, compute_det_costs);
    json_t *a = json_array();
    json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:b, s:o, s:o}", "name", "auto", "task", "det", "description",
                                       "let AutoCV choose: det-s, or det-m for large data sets at small sizes; with a stride-4 "
                                       "level (-p2) when many objects are only a few pixels across",
                                       "builtin", 1, "cost", json_null(), "params", acv_algorithms_params("det", false)));
    const acv_det_arch *list;
    int n = acv_det_arch_list(&list);
    for (int i = 0; i < n; i++) {
        json_t *cost = json_object_get(det_cache, list[i].name);
        json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:b, s:i, s:i, s:O, s:o}", "name", list[i].name, "task",
                                           "det", "description", list[i].description, "builtin", 1, "default_imgsz",
                                           640, "min_imgsz", 64, "cost", cost ? cost : json_null(), "params",
                                           acv_algorithms_params("det", false)));
    }
    return a;
}

json_t *acv_algorithms_builtin(const char *task)
{
    if (task && !strcmp(task, "det")) return det_builtin();
    json_t *a = json_array();
    if (task && strcmp(task, "cls")) return a;
    pthread_once(&cost_once, compute_costs);
    json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:b, s:o, s:o}", "name", "auto", "task", "cls", "description",
                                       "let AutoCV choose: compact for small images, ResNet-18 for larger ones, "
                                       "fitted to the image size and the number of images",
                                       "builtin", 1, "cost", json_null(), "params", acv_algorithms_params("cls", false)));
    const acv_zoo_entry *list;
    int n = acv_zoo_list(&list);
    for (int i = 0; i < n; i++) {
        json_t *cost = json_object_get(cost_cache, list[i].name);
        json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:b, s:i, s:i, s:O, s:o}", "name", list[i].name, "task",
                                           "cls", "description", list[i].description, "builtin", 1, "default_imgsz",
                                           list[i].default_imgsz, "min_imgsz", list[i].min_imgsz, "cost",
                                           cost ? cost : json_null(), "params", acv_algorithms_params("cls", false)));
    }
    if (!task) {
        json_t *d = det_builtin();
        json_array_extend(a, d);
        json_decref(d);
    }
    return a;
}

int acv_algorithms_check(const char *task, bool custom, const json_t *params, json_t **argv, json_t **clean)
{
    *argv = NULL;
    *clean = NULL;
    size_t nt;
    const param *T = table_of(task, &nt);
    if (!T) return acv_error(ACV_EUNSUPPORTED, "task '%s' cannot be trained yet (cls, det)", task);
    if (params && !json_is_object(params)) return acv_error(ACV_EINVAL, "params: must be an object");
    json_t *a = json_array(), *c = json_object();
    const char *key;
    json_t *v;
    int rc = 0;
    json_object_foreach((json_t *)params, key, v) {
        const param *p = NULL;
        for (size_t i = 0; i < nt && !p; i++)
            if (!strcmp(T[i].name, key) && (custom || !T[i].custom_only)) p = &T[i];
        if (!p) {
            char known[1024] = "";
            size_t off = 0;
            for (size_t i = 0; i < nt; i++)
                if (custom || !T[i].custom_only)
                    off += (size_t)snprintf(known + off, sizeof known - off, "%s%s", off ? ", " : "", T[i].name);
            rc = acv_error(ACV_EINVAL, "params.%s: unknown parameter (known: %s)", key, known);
            break;
        }
        if (json_is_string(v) && !strcmp(json_string_value(v), "auto") && !strcmp(p->dflt, "auto")) continue;
        char val[64];
        switch (p->type) {
        case P_INT: {
            double d = json_is_integer(v) ? (double)json_integer_value(v) : json_is_real(v) ? json_real_value(v) : NAN;
            if (!json_is_number(v) || d != floor(d) || d < p->min || d > p->max) {
                rc = acv_error(ACV_EINVAL, "params.%s: must be an integer in %.0f..%.0f%s", key, p->min, p->max,
                               !strcmp(p->dflt, "auto") ? " or \"auto\"" : "");
                break;
            }
            snprintf(val, sizeof val, "%.0f", d);
            json_object_set_new(c, key, json_integer((json_int_t)d));
            break;
        }
        case P_NUM: {
            double d = json_number_value(v);
            if (!json_is_number(v) || !isfinite(d) || (p->min_open ? d <= p->min : d < p->min) || d > p->max) {
                rc = acv_error(ACV_EINVAL, "params.%s: must be a number in %s%g, %g]%s", key, p->min_open ? "(" : "[",
                               p->min, p->max, !strcmp(p->dflt, "auto") ? " or \"auto\"" : "");
                break;
            }
            snprintf(val, sizeof val, "%.9g", d);
            json_object_set_new(c, key, json_real(d));
            break;
        }
        case P_ENUM: {
            const char *s = json_string_value(v);
            bool ok = false;
            if (s && *s && !strchr(s, '|')) {
                size_t n = strlen(s);
                for (const char *q = p->choices; q && !ok; q = strchr(q, '|') ? strchr(q, '|') + 1 : NULL)
                    ok = !strncmp(q, s, n) && (q[n] == '|' || q[n] == 0);
            }
            if (!ok) {
                rc = acv_error(ACV_EINVAL, "params.%s: must be one of %s", key, p->choices);
                break;
            }
            snprintf(val, sizeof val, "%s", s);
            json_object_set_new(c, key, json_string(s));
            break;
        }
        case P_BOOL:
            if (!json_is_boolean(v)) {
                rc = acv_error(ACV_EINVAL, "params.%s: must be true or false", key);
                break;
            }
            json_object_set_new(c, key, json_boolean(json_is_true(v)));
            if (json_is_true(v)) json_array_append_new(a, json_string(p->flag));
            continue;
        }
        if (rc) break;
        json_array_append_new(a, json_string(p->flag));
        json_array_append_new(a, json_string(val));
    }
    json_t *isz = json_object_get(c, "imgsz");
    if (!rc && task && !strcmp(task, "det") && isz && json_integer_value(isz) % 32)
        rc = acv_error(ACV_EINVAL, "params.imgsz: must be a multiple of 32 for detection (got %lld)",
                       (long long)json_integer_value(isz));
    if (rc) {
        json_decref(a);
        json_decref(c);
        return rc;
    }
    *argv = a;
    *clean = c;
    return 0;
}
