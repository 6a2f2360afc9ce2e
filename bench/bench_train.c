/* bench_train: training throughput of a zoo model, one full step at a time.
 *
 * Builds `--model` from the zoo on random inputs, adds a cross-entropy loss, compiles the
 * graph for training and times complete steps as the classification trainer runs them
 * (src/tasks/cls_train.c): copy the batch into the graph, forward to the loss, backward,
 * SGD update (momentum 0.9, weight decay 5e-4). --warmup steps are untimed; the timed phase
 * runs --steps steps or stops once --seconds have passed (after at least 3 steps), so a slow
 * build cannot stretch `make bench`. Prints one JSON object:
 *   {"images_per_s": batch / median step, "images_per_s_mean": images / timed seconds,
 *    "step_ms": [each timed step], "step_ms_median", "model", "imgsz", "channels",
 *    "batch", "threads", "gflops_fwd", "params", "loss_first", "loss_last"}
 * Used by bench/run.sh; not part of the library. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autocv/error.h"
#include "autocv/graph.h"
#include "base/rng.h"
#include "base/timeutil.h"
#include "nn/backend.h"
#include "nn/optim.h"
#include "nn/zoo.h"

typedef struct opts {
    const char *model;
    int imgsz, channels, batch, classes, warmup, steps, threads;
    double seconds;          /* timed phase budget: stop after `steps` steps or this long */
    unsigned long long seed;
} opts;

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int usage(const char *msg)
{
    fprintf(stderr, "bench_train: %s\nusage: bench_train --model NAME [--imgsz N] [--channels C] [--batch N] "
            "[--classes K] [--warmup N] [--steps N] [--seconds S] [--threads N] [--seed N]\n", msg);
    return 2;
}

/* Parses --flag VALUE pairs into *o; returns 0, or 2 after printing what was wrong. */
static int parse(int argc, char **argv, opts *o)
{
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (i + 1 >= argc) return usage("every flag takes a value");
        const char *v = argv[++i];
        char *end;
        long n = strtol(v, &end, 10);
        bool num = *v && !*end;
        if (!strcmp(f, "--model")) { o->model = v; continue; }
        if (!strcmp(f, "--seconds")) {
            o->seconds = strtod(v, &end);
            if (!*v || *end || !(o->seconds > 0)) {
                fprintf(stderr, "bench_train: --seconds: '%s' is not a positive number\n", v);
                return 2;
            }
            continue;
        }
        if (!num || n < 0 || n > 1 << 20) {
            fprintf(stderr, "bench_train: %s: '%s' is not a non-negative integer\n", f, v);
            return 2;
        }
        if (!strcmp(f, "--imgsz")) o->imgsz = (int)n;
        else if (!strcmp(f, "--channels")) o->channels = (int)n;
        else if (!strcmp(f, "--batch")) o->batch = (int)n;
        else if (!strcmp(f, "--classes")) o->classes = (int)n;
        else if (!strcmp(f, "--warmup")) o->warmup = (int)n;
        else if (!strcmp(f, "--steps")) o->steps = (int)n;
        else if (!strcmp(f, "--threads")) o->threads = (int)n;
        else if (!strcmp(f, "--seed")) o->seed = (unsigned long long)n;
        else {
            fprintf(stderr, "bench_train: unknown flag %s\n", f);
            return usage("see the flags above");
        }
    }
    if (!o->model) return usage("--model NAME is required");
    if (o->imgsz < 8 || o->channels < 1 || o->channels > 4 || o->batch < 1 || o->classes < 2 || o->steps < 1)
        return usage("need --imgsz >= 8, --channels 1..4, --batch >= 1, --classes >= 2, --steps >= 1");
    return 0;
}

/* Builds, compiles and times the model; fills step_ms (at most o->steps entries; *n_timed
 * of them: the timed phase also stops once o->seconds have passed, after at least 3 steps)
 * and the two losses. *gout owns the graph (for its statistics), also on failure. */
static int run(const opts *o, acv_graph **gout, double *step_ms, int *n_timed, float *loss_first, float *loss_last)
{
    acv_graph *g = acv_graph_new();
    if (!g) return acv_error(ACV_ENOMEM, "out of memory");
    *gout = g;
    int64_t xs[4] = {o->batch, o->channels, o->imgsz, o->imgsz}, ts[1] = {o->batch};
    acv_id x = acv_input(g, "input", 4, xs), logits;
    int rc;
    if ((rc = acv_zoo_build(g, o->model, x, o->classes, &logits))) return rc;
    acv_id t = acv_input(g, "target", 1, ts);
    acv_id loss = acv_cross_entropy(g, logits, t, 0.0f, NULL);
    acv_graph_set_output(g, logits);
    if ((rc = acv_graph_status(g))) return rc;
    if ((rc = acv_graph_init_params(g, o->seed))) return rc;
    if ((rc = acv_graph_compile(g, NULL, o->batch, true))) return rc;
    if ((rc = acv_graph_set_batch(g, o->batch))) return rc;

    int64_t np;
    float *params = acv_graph_params(g, &np);
    float *grads = acv_graph_grads(g, NULL);
    acv_optim_config oc = acv_optim_defaults(ACV_OPTIM_SGD);
    oc.lr = 0.01;
    oc.momentum = 0.9;
    oc.weight_decay = 5e-4;
    acv_optim *opt;
    if ((rc = acv_optim_new(&oc, np, &opt))) return rc;

    /* one random batch, copied in every step as the trainer copies the loader's batch */
    size_t nx = (size_t)o->batch * o->channels * o->imgsz * o->imgsz;
    float *bx = malloc(nx * sizeof(float));
    if (!bx) {
        acv_optim_free(opt);
        return acv_error(ACV_ENOMEM, "out of memory");
    }
    acv_rng r;
    acv_rng_seed(&r, o->seed);
    for (size_t i = 0; i < nx; i++) bx[i] = acv_rng_normal(&r);
    float *td = acv_graph_data(g, t);
    for (int i = 0; i < o->batch; i++) td[i] = (float)acv_rng_below(&r, (uint32_t)o->classes);

    double t_end = 0;
    *n_timed = 0;
    for (int s = 0; s < o->warmup + o->steps && !rc; s++) {
        double t0 = acv_now();
        if (s == o->warmup) t_end = t0 + o->seconds;
        if (s > o->warmup && s - o->warmup >= 3 && t0 >= t_end) break;
        memcpy(acv_graph_data(g, x), bx, nx * sizeof(float));
        rc = acv_graph_forward(g, loss, true, o->seed * 0x9e3779b97f4a7c15ULL + (uint64_t)s);
        if (!rc) rc = acv_graph_backward(g, loss);
        if (!rc) rc = acv_optim_step(opt, params, grads, (float)oc.lr);
        double dt = (acv_now() - t0) * 1000.0;
        if (rc) break;
        float l = acv_graph_data(g, loss)[0];
        if (!isfinite(l)) rc = acv_error(ACV_ENUMERIC, "%s: the loss is not finite at step %d", o->model, s + 1);
        if (s == 0) *loss_first = l;
        *loss_last = l;
        if (s >= o->warmup) step_ms[(*n_timed)++] = dt;
    }
    free(bx);
    acv_optim_free(opt);
    return rc;
}

int main(int argc, char **argv)
{
    opts o = {.imgsz = 64, .channels = 3, .batch = 32, .classes = 10, .warmup = 2, .steps = 10, .threads = 2,
              .seconds = 1e9, .seed = 1};
    int rc = parse(argc, argv, &o);
    if (rc) return rc;
    acv_set_threads(o.threads);
    double *step_ms = calloc((size_t)o.steps, sizeof(double));
    if (!step_ms) {
        fprintf(stderr, "bench_train: out of memory\n");
        return 1;
    }
    acv_graph *g = NULL;
    float l0 = 0, l1 = 0;
    int n = 0;
    rc = run(&o, &g, step_ms, &n, &l0, &l1);
    if (rc) {
        fprintf(stderr, "bench_train: %s: %s\n", o.model, acv_errmsg());
        acv_graph_free(g);
        free(step_ms);
        return 1;
    }
    double total = 0;
    json_t *steps = json_array();
    for (int i = 0; i < n; i++) {
        total += step_ms[i];
        json_array_append_new(steps, json_real(step_ms[i]));
    }
    qsort(step_ms, (size_t)n, sizeof(double), cmp_d);
    double med = n % 2 ? step_ms[n / 2] : 0.5 * (step_ms[n / 2 - 1] + step_ms[n / 2]);
    json_t *out = json_pack("{s:f, s:f, s:f, s:o, s:s, s:i, s:i, s:i, s:i, s:f, s:I, s:f, s:f, s:f}", "images_per_s",
                            o.batch * 1000.0 / med, "images_per_s_mean", o.batch * n * 1000.0 / total,
                            "step_ms_median", med, "step_ms", steps, "model", o.model, "imgsz", o.imgsz, "channels",
                            o.channels, "batch", o.batch, "threads", acv_get_threads(), "gflops_fwd",
                            acv_graph_gflops(g), "params", (json_int_t)acv_graph_num_params(g), "loss_first",
                            (double)l0, "loss_last", (double)l1, "peak_rss_mb", acv_peak_rss_mb());
    char *s = json_dumps(out, JSON_COMPACT | JSON_REAL_PRECISION(6));
    printf("%s\n", s);
    free(s);
    json_decref(out);
    acv_graph_profile_print(stderr); /* only with ACV_PROFILE set */
    acv_graph_profile_nodes(g, stderr);
    acv_graph_free(g);
    free(step_ms);
    return 0;
}
