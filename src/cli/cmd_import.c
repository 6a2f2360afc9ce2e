/* autocv import: turn an ONNX file into a model directory. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autocv/error.h"
#include "autocv/model.h"
#include "cli/args.h"
#include "onnx/import.h"

/* "a,b,c" into v (at most 4); returns the count or -1 when malformed. */
static int parse_floats(const char *s, float *v)
{
    int n = 0;
    while (*s) {
        char *end;
        float f = strtof(s, &end);
        if (end == s || n == 4) return -1;
        v[n++] = f;
        s = end;
        if (*s == ',') s++;
        else if (*s) return -1;
    }
    return n;
}

int acv_cmd_import(int argc, char **argv)
{
    const char *out = NULL, *task = NULL, *classes = NULL, *mean = NULL, *std = NULL;
    int imgsz = 0;
    acv_argdef defs[] = {
        {"--out", ACV_ARG_STR, &out, "DIR", "model directory to write"},
        {"--task", ACV_ARG_STR, &task, "TASK", "cls, det or seg (default: what the file records, else cls)"},
        {"--classes", ACV_ARG_STR, &classes, "FILE", "class names, one per line (default class_0, class_1, ...)"},
        {"--mean", ACV_ARG_STR, &mean, "R,G,B", "normalization mean per channel (default ImageNet's for 3 channels)"},
        {"--std", ACV_ARG_STR, &std, "R,G,B", "normalization std per channel (default ImageNet's for 3 channels)"},
        {"--imgsz", ACV_ARG_INT, &imgsz, "N", "input side when the file leaves height/width dynamic (default 224)"},
    };
    char **pos;
    int npos;
    const char *usage = "FILE.onnx --out DIR [--task cls|det|seg] [--classes FILE] [--mean R,G,B --std R,G,B] [--imgsz N]";
    int rc = acv_args_parse("import", usage, argc, argv, defs, (int)(sizeof defs / sizeof defs[0]), &pos, &npos);
    if (rc) return rc > 0 ? 0 : 2;
    if (npos != 1) return acv_cli_fail("import", "expects one .onnx file (usage: autocv import %s)", usage);
    if (!out) return acv_cli_fail("import", "--out DIR is required");
    if (task && strcmp(task, "cls") && strcmp(task, "det") && strcmp(task, "seg"))
        return acv_cli_fail("import", "--task must be cls, det or seg (got %s)", task);
    if (imgsz < 0 || imgsz > 8192) return acv_cli_fail("import", "--imgsz %d is not in 1..8192", imgsz);
    acv_onnx_options o = {0};
    o.imgsz = imgsz;
    o.task = task;
    o.classes_file = classes;
    int nm = -1, ns = -1;
    if (!mean != !std) return acv_cli_fail("import", "--mean and --std go together");
    if (mean) {
        nm = parse_floats(mean, o.mean);
        ns = parse_floats(std, o.std);
        if (nm < 1) return acv_cli_fail("import", "--mean expects 1 to 4 comma-separated numbers, got '%s'", mean);
        if (ns != nm) return acv_cli_fail("import", "--std expects %d comma-separated numbers, got '%s'", nm, std);
        for (int i = 0; i < ns; i++)
            if (!(o.std[i] > 0)) return acv_cli_fail("import", "--std values must be positive, got '%s'", std);
        o.has_norm = true;
    }
    acv_model *m = NULL;
    rc = acv_onnx_import(pos[0], &o, &m);
    if (!rc && nm > 0 && nm != m->in_c)
        rc = acv_error(ACV_EINVAL, "--mean/--std give %d values, the model has %d input channels", nm, m->in_c);
    if (!rc) rc = acv_model_save(m, out, NULL);
    if (!rc) {
        const acv_shape *os = acv_graph_shape(m->graph, acv_graph_output(m->graph));
        char b[96];
        printf("imported %s -> %s: input %dx%dx%d, output %s, %lld parameters, %.2f GFLOPs\n", pos[0], out, m->in_c,
               m->in_h, m->in_w, acv_shape_str(os, b, sizeof b), (long long)acv_graph_num_params(m->graph),
               acv_graph_gflops(m->graph));
    }
    acv_model_free(m);
    return rc ? acv_cli_error("import", rc) : 0;
}
