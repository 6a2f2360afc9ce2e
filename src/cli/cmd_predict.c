/* autocv predict: classify image files with a model directory. */
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
#include "base/file.h"
#include "vision/image.h"

/* Detection: boxes and counts per image, optionally drawn into vis_dir. */
static int predict_det(acv_model *m, const char *model, char **imgs, int nimg, bool json, double conf, double iou,
                       int max_det, bool agnostic, const char *vis_dir)
{
    acv_det_runner r;
    int rc = acv_det_runner_open(model, m, 1, &r);
    if (rc) return acv_cli_error("predict", rc);
    if (!isnan(conf)) { /* given: every class at it, instead of the model's own thresholds */
        r.dopts.score_thr = (float)conf;
        r.dopts.class_thr = NULL;
    }
    r.dopts.iou_thr = (float)iou;
    r.dopts.max_det = max_det;
    r.dopts.class_agnostic = agnostic;
    if (vis_dir && (rc = acv_mkdirs(vis_dir))) {
        acv_det_runner_close(&r);
        return acv_cli_error("predict", rc);
    }
    acv_box *boxes = malloc((size_t)max_det * sizeof *boxes);
    int failures = 0;
    for (int i = 0; boxes && i < nimg; i++) {
        acv_image im = {0};
        int n = 0;
        rc = acv_image_load(imgs[i], NULL, &im);
        if (!rc) rc = acv_det_runner_detect(&r, &im, boxes, max_det, &n);
        if (!rc && vis_dir) {
            const char *base = strrchr(imgs[i], '/');
            base = base ? base + 1 : imgs[i];
            char out[4096];
            snprintf(out, sizeof out, "%s/%s", vis_dir, base);
            char *dot = strrchr(out, '.');
            if (dot && dot > strrchr(out, '/')) *dot = 0;
            strncat(out, ".jpg", sizeof out - strlen(out) - 1);
            acv_image rgb = {0};
            if (im.c == 3) {
                acv_det_draw(&im, boxes, n, (const char *const *)r.model->classes);
                rc = acv_image_save_jpeg(&im, out, 90);
            } else if (!(rc = acv_image_alloc(&rgb, im.w, im.h, 3))) {
                for (int64_t p = 0; p < (int64_t)im.w * im.h; p++)
                    for (int ch = 0; ch < 3; ch++) rgb.data[p * 3 + ch] = im.data[p * im.c + (im.c == 1 ? 0 : ch)];
                acv_det_draw(&rgb, boxes, n, (const char *const *)r.model->classes);
                rc = acv_image_save_jpeg(&rgb, out, 90);
                acv_image_free(&rgb);
            }
        }
        acv_image_free(&im);
        if (rc) {
            fprintf(stderr, "autocv predict: error: %s\n", acv_errmsg());
            failures++;
            continue;
        }
        json_t *o = acv_det_result_json(&r, boxes, n);
        if (json) {
            json_t *line = json_pack("{s:s}", "image", imgs[i]);
            json_object_update(line, o);
            char *s = json_dumps(line, JSON_COMPACT | JSON_REAL_PRECISION(7));
            printf("%s\n", s);
            free(s);
            json_decref(line);
        } else {
            printf("%s: %d objects", imgs[i], n);
            const char *k;
            json_t *v;
            json_object_foreach(json_object_get(o, "counts"), k, v)
                if (json_integer_value(v)) printf("  %s %lld", k, (long long)json_integer_value(v));
            printf("\n");
            for (int b = 0; b < n; b++)
                printf("  %-16s %.3f  [%.1f, %.1f, %.1f, %.1f]\n", r.model->classes[boxes[b].cls], (double)boxes[b].score,
                       (double)boxes[b].x1, (double)boxes[b].y1, (double)boxes[b].x2, (double)boxes[b].y2);
        }
        json_decref(o);
        fflush(stdout);
    }
    free(boxes);
    acv_det_runner_close(&r);
    return failures ? 1 : 0;
}

int acv_cmd_predict(int argc, char **argv)
{
    const char *model = NULL;
    int topk = 5, threads = 0;
    bool json = false, agnostic = false;
    double conf = NAN, iou = 0.7;
    int max_det = 300;
    const char *vis = NULL;
    acv_argdef defs[] = {
        {"--conf", ACV_ARG_FLOAT, &conf, "F", "det: score threshold, every class (default: the model's per-class thresholds, else 0.25)"},
        {"--iou", ACV_ARG_FLOAT, &iou, "F", "det: NMS IoU threshold (default 0.7)"},
        {"--max-det", ACV_ARG_INT, &max_det, "N", "det: most detections per image (default 300)"},
        {"--agnostic-nms", ACV_ARG_FLAG, &agnostic, NULL, "det: suppress overlaps across classes"},
        {"--save-vis", ACV_ARG_STR, &vis, "DIR", "det: write each image with its boxes drawn into DIR"},
        {"--model", ACV_ARG_STR, &model, "DIR", "model directory or .onnx file"},
        {"--topk", ACV_ARG_INT, &topk, "K", "how many classes to list per image (default 5)"},
        {"--threads", ACV_ARG_INT, &threads, "N", "compute threads (default: all cores)"},
        {"--json", ACV_ARG_FLAG, &json, NULL, "one JSON object per image"},
    };
    char **imgs;
    int nimg;
    int rc = acv_args_parse("predict", "--model DIR [--topk K] [--json] IMAGE...", argc, argv, defs,
                            (int)(sizeof defs / sizeof defs[0]), &imgs, &nimg);
    if (rc) return rc > 0 ? 0 : 2;
    if (!model) return acv_cli_fail("predict", "--model DIR is required");
    if (nimg == 0) return acv_cli_fail("predict", "no images given (usage: autocv predict --model DIR IMAGE...)");
    if (topk < 1) return acv_cli_fail("predict", "--topk must be >= 1 (got %d)", topk);
    acv_set_threads(threads);
    acv_model *m;
    if ((rc = acv_model_load_any(model, &m))) return acv_cli_error("predict", rc);
    if (!strcmp(m->task, "det")) {
        if ((!isnan(conf) && !(conf >= 0 && conf <= 1)) || !(iou > 0 && iou <= 1) || max_det < 1 || max_det > 100000) {
            acv_model_free(m);
            return acv_cli_fail("predict", "--conf must be in [0, 1], --iou in (0, 1], --max-det in 1..100000");
        }
        return predict_det(m, model, imgs, nimg, json, conf, iou, max_det, agnostic, vis);
    }
    if (strcmp(m->task, "cls")) {
        acv_error(ACV_EUNSUPPORTED, "%s: task '%s' is not supported by predict yet", model, m->task);
        acv_model_free(m);
        return acv_cli_error("predict", ACV_EUNSUPPORTED);
    }
    if (topk > m->n_classes) topk = m->n_classes;
    acv_graph *g = m->graph;
    acv_id x = acv_graph_input(g), y = acv_graph_output(g);
    if ((rc = acv_graph_compile(g, NULL, 1, false))) {
        acv_model_free(m);
        return acv_cli_error("predict", rc);
    }
    int failures = 0, k = m->n_classes;
    float *prob = malloc((size_t)k * sizeof(float));
    int *order = malloc((size_t)k * sizeof(int));
    for (int i = 0; i < nimg; i++) {
        acv_image im = {0};
        rc = acv_image_load(imgs[i], NULL, &im);
        if (!rc) rc = acv_cls_preprocess(m, &im, acv_graph_data(g, x));
        acv_image_free(&im);
        if (!rc) rc = acv_graph_forward(g, y, false, 0);
        if (rc) {
            fprintf(stderr, "autocv predict: error: %s\n", acv_errmsg());
            failures++;
            continue;
        }
        const float *z = acv_graph_data(g, y);
        float mx = z[0];
        for (int j = 1; j < k; j++) mx = z[j] > mx ? z[j] : mx;
        double se = 0;
        for (int j = 0; j < k; j++) se += exp((double)(z[j] - mx));
        for (int j = 0; j < k; j++) {
            prob[j] = (float)(exp((double)(z[j] - mx)) / se);
            order[j] = j;
        }
        for (int a = 0; a < topk; a++) /* partial selection sort: ties keep the lower index */
            for (int b = a + 1; b < k; b++)
                if (prob[order[b]] > prob[order[a]]) {
                    int t = order[a];
                    order[a] = order[b];
                    order[b] = t;
                }
        if (json) {
            json_t *tk = json_array();
            for (int a = 0; a < topk; a++)
                json_array_append_new(tk, json_pack("{s:s, s:f}", "label", m->classes[order[a]], "score", (double)prob[order[a]]));
            json_t *o = json_pack("{s:s, s:s, s:f, s:o}", "image", imgs[i], "label", m->classes[order[0]], "score",
                                  (double)prob[order[0]], "topk", tk);
            char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(6));
            printf("%s\n", s);
            free(s);
            json_decref(o);
        } else {
            printf("%s: %s (%.4f)", imgs[i], m->classes[order[0]], prob[order[0]]);
            for (int a = 1; a < topk; a++) printf("%s %s %.4f", a == 1 ? "  |" : ",", m->classes[order[a]], prob[order[a]]);
            printf("\n");
        }
        fflush(stdout);
    }
    free(prob);
    free(order);
    acv_model_free(m);
    return failures ? 1 : 0;
}
