/* make_model: writes a model directory with random weights for `autocv bench`.
 *
 *   make_model NAME IMGSZ CHANNELS CLASSES DIR
 *
 * Builds zoo model NAME on a (1, CHANNELS, IMGSZ, IMGSZ) input, initialises its parameters
 * as training would (seed 1) and saves it with acv_model_save, classes named "c0".."cK-1"
 * and ImageNet normalization. Latency does not depend on the weights' values, so this
 * stands in for a trained model. Used by bench/run.sh; not part of the library. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autocv/error.h"
#include "autocv/model.h"
#include "nn/zoo.h"

/* Parses a decimal integer in [lo, hi] into *out; 0 or -1. */
static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

/* Builds and saves the model; returns 0 or a negative ACV_E* code with the message set. */
static int make(const char *name, int imgsz, int channels, int classes, const char *dir)
{
    static const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    acv_model m = {0};
    m.graph = acv_graph_new();
    if (!m.graph) return acv_error(ACV_ENOMEM, "out of memory");
    int64_t xs[4] = {1, channels, imgsz, imgsz};
    acv_id x = acv_input(m.graph, "input", 4, xs), logits;
    int rc = acv_zoo_build(m.graph, name, x, classes, &logits);
    if (!rc) {
        acv_graph_set_output(m.graph, logits);
        rc = acv_graph_status(m.graph);
    }
    if (!rc) rc = acv_graph_init_params(m.graph, 1);
    char (*names)[16] = calloc((size_t)classes, sizeof *names);
    m.classes = calloc((size_t)classes, sizeof(char *));
    if (!rc && (!names || !m.classes)) rc = acv_error(ACV_ENOMEM, "out of memory");
    if (!rc) {
        snprintf(m.task, sizeof m.task, "cls");
        snprintf(m.arch, sizeof m.arch, "%s", name);
        m.n_classes = classes;
        for (int i = 0; i < classes; i++) {
            snprintf(names[i], sizeof names[i], "c%d", i);
            m.classes[i] = names[i];
        }
        m.in_c = channels;
        m.in_h = m.in_w = imgsz;
        for (int i = 0; i < channels; i++) {
            m.mean[i] = channels == 3 ? mean[i] : 0.5f;
            m.std[i] = channels == 3 ? std[i] : 0.5f;
        }
        snprintf(m.resize, sizeof m.resize, "stretch");
        m.crop_frac = 0.875f;
        m.provenance_json = (char *)"{\"source\":\"bench/make_model.c\",\"weights\":\"random, seed 1\"}";
        rc = acv_model_save(&m, dir, NULL);
    }
    free(names);
    free(m.classes);
    acv_graph_free(m.graph);
    return rc;
}

int main(int argc, char **argv)
{
    int imgsz, channels, classes;
    if (argc != 6 || parse_int(argv[2], 8, 4096, &imgsz) || parse_int(argv[3], 1, 4, &channels) ||
        parse_int(argv[4], 1, 100000, &classes)) {
        fprintf(stderr, "usage: make_model NAME IMGSZ CHANNELS(1-4) CLASSES DIR\n");
        return 2;
    }
    int rc = make(argv[1], imgsz, channels, classes, argv[5]);
    if (rc) {
        fprintf(stderr, "make_model: %s -> %s: %s\n", argv[1], argv[5], acv_errmsg());
        return 1;
    }
    return 0;
}
