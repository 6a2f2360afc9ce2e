/* autocv eval: evaluate a model directory on a dataset split. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autocv/error.h"
#include "cli/args.h"
#include "onnx/import.h"
#include "nn/backend.h"
#include "tasks/cls.h"
#include "tasks/det_task.h"

int acv_cmd_eval(int argc, char **argv)
{
    const char *model = NULL, *data = NULL, *split = "test";
    int batch = 64, threads = 0, workers = 0;
    bool json = false, skip_bad = false;
    double val_split = 0.1, count_thr = NAN;
    const char *task = NULL;
    int seed = 0;
    acv_argdef defs[] = {
        {"--model", ACV_ARG_STR, &model, "DIR", "model directory or .onnx file"},
        {"--data", ACV_ARG_STR, &data, "PATH", "dataset (ImageFolder tree or idx folder)"},
        {"--split", ACV_ARG_STR, &split, "NAME", "val or test (default test)"},
        {"--val-split", ACV_ARG_FLOAT, &val_split, "F", "validation fraction used in training (default 0.1)"},
        {"--seed", ACV_ARG_INT, &seed, "N", "seed used in training for the validation split (default 0)"},
        {"--batch", ACV_ARG_INT, &batch, "N", "batch size (default 64)"},
        {"--threads", ACV_ARG_INT, &threads, "N", "compute threads (default: all cores)"},
        {"--workers", ACV_ARG_INT, &workers, "N", "data loading threads"},
        {"--json", ACV_ARG_FLAG, &json, NULL, "print the metrics as one JSON object"},
        {"--task", ACV_ARG_STR, &task, "TASK", "cls or det (default: the model's)"},
        {"--count-threshold", ACV_ARG_FLOAT, &count_thr, "F", "det: score from which a detection counts, every class (default: the model's per-class thresholds, else 0.5)"},
        {"--skip-bad", ACV_ARG_FLAG, &skip_bad, NULL, "det: skip bad labels (counted) instead of failing"},
    };
    int rc = acv_args_parse("eval", "--model DIR --data PATH [--split val|test] [--task cls|det] [--json]", argc, argv, defs,
                            (int)(sizeof defs / sizeof defs[0]), NULL, NULL);
    if (rc) return rc > 0 ? 0 : 2;
    if (!model) return acv_cli_fail("eval", "--model DIR is required");
    if (!data) return acv_cli_fail("eval", "--data PATH is required");
    if (strcmp(split, "val") && strcmp(split, "test") && strcmp(split, "train"))
        return acv_cli_fail("eval", "--split must be train, val or test (got %s)", split);
    if (task && strcmp(task, "cls") && strcmp(task, "det")) return acv_cli_fail("eval", "--task %s is unknown (cls, det)", task);
    if (!isnan(count_thr) && !(count_thr >= 0 && count_thr <= 1)) return acv_cli_fail("eval", "--count-threshold must be in [0, 1]");
    if (batch < 1 || batch > 4096) return acv_cli_fail("eval", "--batch %d is not in 1..4096", batch);
    acv_set_threads(threads);
    acv_model *m = NULL;
    acv_cls_dataset *ds = NULL;
    acv_cls_metrics *met = NULL;
    json_t *out = NULL;
    double loss = 0;
    rc = acv_model_load_any(model, &m);
    if (!rc && task && strcmp(task, m->task))
        rc = acv_error(ACV_EINVAL, "--task %s, but %s is a %s model", task, model, m->task);
    if (!rc && !strcmp(m->task, "det")) {
        acv_model_free(m);
        m = NULL;
        rc = acv_det_evaluate(model, data, split, batch > 64 ? 8 : batch, workers, (float)count_thr, skip_bad,
                              json || !acv_cli_isatty() ? NULL : stderr, &out);
        if (!rc && json) {
            char *s = json_dumps(out, JSON_COMPACT | JSON_REAL_PRECISION(6));
            printf("%s\n", s);
            free(s);
        } else if (!rc) {
            printf("%s split: %lld images  AP50-95 %.4f  AP50 %.4f  AP75 %.4f  count MAE %.4f  count exact %.4f\n", split,
                   (long long)json_integer_value(json_object_get(out, "images")),
                   json_number_value(json_object_get(out, "map50_95")), json_number_value(json_object_get(out, "map50")),
                   json_number_value(json_object_get(out, "map75")), json_number_value(json_object_get(out, "count_mae")),
                   json_number_value(json_object_get(out, "count_exact")));
            printf("%-24s %8s %8s %8s %6s %6s\n", "class", "AP50-95", "AP50", "AP75", "gt", "pred");
            size_t i;
            json_t *pc;
            json_array_foreach(json_object_get(out, "per_class"), i, pc)
                printf("%-24.24s %8.4f %8.4f %8.4f %6lld %6lld\n", json_string_value(json_object_get(pc, "name")),
                       json_number_value(json_object_get(pc, "ap")), json_number_value(json_object_get(pc, "ap50")),
                       json_number_value(json_object_get(pc, "ap75")),
                       (long long)json_integer_value(json_object_get(pc, "gt")),
                       (long long)json_integer_value(json_object_get(pc, "pred")));
        }
        json_decref(out);
        return rc ? acv_cli_error("eval", rc) : 0;
    }
    if (!rc && strcmp(m->task, "cls")) rc = acv_error(ACV_EUNSUPPORTED, "%s: task '%s' cannot be evaluated yet", model, m->task);
    if (!rc) rc = acv_cls_dataset_open(data, split, (float)val_split, (uint64_t)seed, &ds);
    if (!rc) {
        met = acv_cls_metrics_new(m->n_classes);
        if (!met) rc = ACV_ENOMEM;
    }
    if (!rc) rc = acv_cls_evaluate(m, ds, batch, workers, met, &loss, json || !acv_cli_isatty() ? NULL : stderr);
    if (!rc) rc = acv_cls_metrics_to_json(met, (const char *const *)m->classes, &out);
    if (!rc) {
        json_t *o = json_pack("{s:s, s:s}", "task", "cls", "split", split);
        json_object_update(o, out);
        json_object_set_new(o, "images", json_integer(acv_cls_metrics_count(met)));
        json_object_set_new(o, "loss", json_real(loss));
        if (json) {
            char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(6));
            printf("%s\n", s);
            free(s);
        } else {
            printf("%s split: %lld images  top1 %.4f  top5 %.4f  loss %.4f\n", split,
                   (long long)acv_cls_metrics_count(met), acv_cls_metrics_top1(met), acv_cls_metrics_top5(met), loss);
            printf("%-24s %9s %9s %9s %8s\n", "class", "precision", "recall", "f1", "support");
            for (int i = 0; i < m->n_classes; i++) {
                acv_cls_class_stats cs = acv_cls_metrics_class(met, i);
                printf("%-24.24s %9.4f %9.4f %9.4f %8lld\n", m->classes[i], cs.precision, cs.recall, cs.f1,
                       (long long)cs.support);
            }
        }
        json_decref(o);
    }
    json_decref(out);
    acv_cls_metrics_free(met);
    acv_cls_dataset_free(ds);
    acv_model_free(m);
    return rc ? acv_cli_error("eval", rc) : 0;
}
