/* autocv infer: run the raw network on a float32 NCHW tensor from a .npy file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autocv/error.h"
#include "base/file.h"
#include "base/npy.h"
#include "cli/args.h"
#include "onnx/import.h"
#include "nn/backend.h"
#include "autocv/model.h"

int acv_cmd_infer(int argc, char **argv)
{
    const char *model = NULL, *in = NULL, *out = NULL;
    int threads = 0;
    acv_argdef defs[] = {
        {"--model", ACV_ARG_STR, &model, "DIR", "model directory or .onnx file"},
        {"--input", ACV_ARG_STR, &in, "IN.npy", "input tensor (N, C, H, W), float32 or convertible"},
        {"--output", ACV_ARG_STR, &out, "OUT.npy", "where to write the raw output"},
        {"--threads", ACV_ARG_INT, &threads, "N", "compute threads (default: all cores)"},
    };
    int rc = acv_args_parse("infer", "--model DIR --input IN.npy --output OUT.npy", argc, argv, defs,
                            (int)(sizeof defs / sizeof defs[0]), NULL, NULL);
    if (rc) return rc > 0 ? 0 : 2;
    if (!model) return acv_cli_fail("infer", "--model DIR is required");
    if (!in) return acv_cli_fail("infer", "--input IN.npy is required");
    if (!out) return acv_cli_fail("infer", "--output OUT.npy is required");
    acv_set_threads(threads);
    acv_model *m = NULL;
    acv_shape s;
    float *x = NULL;
    rc = acv_npy_load(in, &s, &x);
    if (!rc && s.ndim == 4 && !strcmp(acv_path_ext(model), "onnx") && !acv_is_dir(model)) {
        /* a file that leaves height and width dynamic is imported at the input's size (its
         * folded shape arithmetic then fits it) */
        acv_onnx_options o = {0};
        o.height = s.d[2] <= 16384 ? (int)s.d[2] : 0;
        o.width = s.d[3] <= 16384 ? (int)s.d[3] : 0;
        rc = acv_onnx_import(model, &o, &m);
    } else if (!rc) rc = acv_model_load_any(model, &m);
    if (!rc) {
        acv_graph *g = m->graph;
        acv_id xi = acv_graph_input(g), y = acv_graph_output(g);
        const acv_shape *gs = acv_graph_shape(g, xi);
        if (s.ndim != gs->ndim) {
            char a[96], b[96];
            rc = acv_error(ACV_ESHAPE, "%s: shape %s does not fit the model input %s", in, acv_shape_str(&s, a, sizeof a),
                           acv_shape_str(gs, b, sizeof b));
        } else {
            bool same = true;
            for (int i = 1; i < s.ndim; i++) same &= s.d[i] == gs->d[i];
            if (!same) rc = acv_graph_reshape_input(g, xi, s.ndim, s.d);
            else rc = 0;
            if (rc) acv_error_prefix(rc, "%s: ", in);
        }
        if (!rc) rc = acv_graph_compile(g, NULL, (int)s.d[0], false);
        if (!rc) rc = acv_graph_set_batch(g, (int)s.d[0]);
        if (!rc) {
            memcpy(acv_graph_data(g, xi), x, (size_t)acv_shape_numel(&s) * sizeof(float));
            rc = acv_graph_forward(g, y, false, 0);
        }
        if (!rc) rc = acv_npy_save(out, acv_graph_shape(g, y), acv_graph_data(g, y));
    }
    free(x);
    acv_model_free(m);
    return rc ? acv_cli_error("infer", rc) : 0;
}
