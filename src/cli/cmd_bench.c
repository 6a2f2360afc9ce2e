/* autocv bench: inference latency percentiles, throughput and peak memory of a model. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autocv/error.h"
#include "autocv/model.h"
#include "base/rng.h"
#include "base/timeutil.h"
#include "cli/args.h"
#include "onnx/import.h"
#include "nn/backend.h"

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const double *v, int n, double p)
{
    double idx = p * (n - 1);
    int lo = (int)idx;
    int hi = lo + 1 < n ? lo + 1 : lo;
    return v[lo] + (v[hi] - v[lo]) * (idx - lo);
}

int acv_cmd_bench(int argc, char **argv)
{
    const char *model = NULL;
    int imgsz = 0, batch = 1, threads = 0, iters = 0;
    double seconds = 3;
    bool json = false;
    acv_argdef defs[] = {
        {"--model", ACV_ARG_STR, &model, "DIR", "model directory or .onnx file"},
        {"--imgsz", ACV_ARG_INT, &imgsz, "N", "input side (default: the model's)"},
        {"--batch", ACV_ARG_INT, &batch, "N", "batch size (default 1)"},
        {"--threads", ACV_ARG_INT, &threads, "N", "compute threads (default: all cores)"},
        {"--iters", ACV_ARG_INT, &iters, "N", "timed iterations (default: as many as fit in --seconds)"},
        {"--seconds", ACV_ARG_FLOAT, &seconds, "S", "time budget when --iters is not given (default 3)"},
        {"--json", ACV_ARG_FLAG, &json, NULL, "print one JSON object"},
    };
    int rc = acv_args_parse("bench", "--model DIR [--imgsz N] [--batch N] [--threads N] [--json]", argc, argv, defs,
                            (int)(sizeof defs / sizeof defs[0]), NULL, NULL);
    if (rc) return rc > 0 ? 0 : 2;
    if (!model) return acv_cli_fail("bench", "--model DIR is required");
    if (batch < 1 || batch > 1024) return acv_cli_fail("bench", "--batch %d is not in 1..1024", batch);
    if (imgsz < 0 || imgsz > 4096) return acv_cli_fail("bench", "--imgsz %d is not in 1..4096", imgsz);
    if (iters < 0 || seconds <= 0) return acv_cli_fail("bench", "--iters and --seconds must be positive");
    acv_set_threads(threads);
    acv_model *m;
    if ((rc = acv_model_load_any(model, &m))) return acv_cli_error("bench", rc);
    acv_graph *g = m->graph;
    acv_id x = acv_graph_input(g), y = acv_graph_output(g);
    if (imgsz > 0) {
        int64_t s[4] = {1, m->in_c, imgsz, imgsz};
        rc = acv_graph_reshape_input(g, x, 4, s);
    }
    if (!rc) rc = acv_graph_compile(g, NULL, batch, false);
    double *lat = NULL;
    int n = 0, cap = 0;
    if (!rc) {
        int64_t numel = acv_shape_numel(acv_graph_shape(g, x));
        float *xd = acv_graph_data(g, x);
        acv_rng r;
        acv_rng_seed(&r, 1);
        for (int64_t i = 0; i < numel; i++) xd[i] = acv_rng_normal(&r);
        for (int w = 0; w < 3 && !rc; w++) rc = acv_graph_forward(g, y, false, 0); /* warm-up */
        double t_end = acv_now() + seconds;
        while (!rc && (iters ? n < iters : (acv_now() < t_end || n < 10))) {
            if (n == cap) {
                cap = cap ? cap * 2 : 256;
                double *nl = realloc(lat, (size_t)cap * sizeof(double));
                if (!nl) {
                    rc = acv_error(ACV_ENOMEM, "out of memory");
                    break;
                }
                lat = nl;
            }
            double t0 = acv_now();
            rc = acv_graph_forward(g, y, false, 0);
            lat[n++] = (acv_now() - t0) * 1000.0;
        }
    }
    if (!rc) {
        double sum = 0;
        for (int i = 0; i < n; i++) sum += lat[i];
        qsort(lat, (size_t)n, sizeof(double), cmp_d);
        double p50 = pct(lat, n, 0.5), p90 = pct(lat, n, 0.9), p99 = pct(lat, n, 0.99);
        double ips = batch * 1000.0 / (sum / n);
        const acv_shape *is = acv_graph_shape(g, x);
        if (json) {
            json_t *o = json_pack("{s:{s:f, s:f, s:f}, s:f, s:f, s:i, s:i, s:i, s:i, s:f, s:I}", "latency_ms", "p50", p50,
                                  "p90", p90, "p99", p99, "throughput_ips", ips, "peak_rss_mb", acv_peak_rss_mb(),
                                  "batch", batch, "imgsz", (int)is->d[2], "threads", acv_get_threads(), "iters", n,
                                  "gflops", acv_graph_gflops(g), "params", (json_int_t)acv_graph_num_params(g));
            char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(6));
            printf("%s\n", s);
            free(s);
            json_decref(o);
        } else {
            printf("%s: batch %d, %dx%d, %d threads, %d runs\n", model, batch, (int)is->d[2], (int)is->d[3],
                   acv_get_threads(), n);
            printf("latency ms: p50 %.3f  p90 %.3f  p99 %.3f\nthroughput: %.1f images/s\npeak RSS: %.1f MiB\n", p50, p90,
                   p99, ips, acv_peak_rss_mb());
        }
    }
    acv_graph_profile_print(stderr); /* these print only when ACV_PROFILE is set */
    acv_graph_profile_nodes(m->graph, stderr);
    free(lat);
    acv_model_free(m);
    return rc ? acv_cli_error("bench", rc) : 0;
}
