/* autocv export: write a model directory (or an .onnx file, re-exported) to another format.
 * ONNX only for now. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "autocv/error.h"
#include "autocv/model.h"
#include "cli/args.h"
#include "onnx/export.h"
#include "onnx/import.h"

int acv_cmd_export(int argc, char **argv)
{
    const char *model = NULL, *format = "onnx", *out = NULL;
    acv_argdef defs[] = {
        {"--model", ACV_ARG_STR, &model, "DIR", "model directory (or .onnx file) to export"},
        {"--format", ACV_ARG_STR, &format, "FMT", "output format: onnx (default; the only one so far)"},
        {"--out", ACV_ARG_STR, &out, "FILE.onnx", "file to write"},
    };
    const char *usage = "--model DIR --format onnx --out FILE.onnx";
    int rc = acv_args_parse("export", usage, argc, argv, defs, (int)(sizeof defs / sizeof defs[0]), NULL, NULL);
    if (rc) return rc > 0 ? 0 : 2;
    if (!model) return acv_cli_fail("export", "--model DIR is required (usage: autocv export %s)", usage);
    if (!out) return acv_cli_fail("export", "--out FILE.onnx is required (usage: autocv export %s)", usage);
    if (strcmp(format, "onnx"))
        return acv_cli_fail("export", "--format '%s' is not supported (only onnx for now)", format);
    acv_model *m = NULL;
    rc = acv_model_load_any(model, &m);
    if (!rc) rc = acv_onnx_export(m, out);
    if (!rc) {
        struct stat st;
        long long bytes = stat(out, &st) == 0 ? (long long)st.st_size : -1;
        printf("exported %s -> %s: ONNX opset 13, input %dx%dx%d, %d classes, %lld parameters, %lld bytes\n", model,
               out, m->in_c, m->in_h, m->in_w, m->n_classes, (long long)acv_graph_num_params(m->graph), bytes);
    }
    acv_model_free(m);
    return rc ? acv_cli_error("export", rc) : 0;
}
