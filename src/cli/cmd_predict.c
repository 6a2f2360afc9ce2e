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
#include "vision/image.h"

int acv_cmd_predict(int argc, char **argv)
{
    const char *model = NULL;
    int topk = 5, threads = 0;
    bool json = false;
    acv_argdef defs[] = {
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
