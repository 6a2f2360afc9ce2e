/* The model zoo (src/nn/zoo.c) against torchvision: tests/ref/zoo_ref.py (run with Debian's
 * /usr/bin/python3, torch and torchvision 0.14) writes every state_dict name and shape, the
 * parameter count and the Conv2d/Linear multiply-accumulates of resnet18/34/50 and
 * mobilenet_v2, and, for resnet18 and mobilenet_v2, random weights, an input and the
 * float64 eval-mode output. The zoo must match names and shapes exactly, count the same
 * FLOPs, and reproduce the outputs from the copied weights. Also: the compact nets, the
 * list and auto choice, unknown names. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>
#include <jansson.h>

#include "autocv/error.h"
#include "autocv/graph.h"
#include "base/file.h"
#include "base/npy.h"
#include "nn/backend.h"
#include "nn/zoo.h"

#define REF_SCRIPT "tests/ref/zoo_ref.py"
#define PYTHON "/usr/bin/python3"

static char g_dir[64];
static json_t *g_models; /* zoo.json "models" */

static int group_setup(void **state)
{
    (void)state;
    if (access(REF_SCRIPT, R_OK) != 0) {
        fprintf(stderr, "test_zoo: %s not found; run the test from the repository root\n", REF_SCRIPT);
        return -1;
    }
    strcpy(g_dir, "/tmp/acv_zoo_XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("test_zoo: mkdtemp");
        return -1;
    }
    char cmd[256];
    snprintf(cmd, sizeof cmd, PYTHON " " REF_SCRIPT " %s", g_dir);
    fflush(stdout);
    int st = system(cmd);
    if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "test_zoo: '%s' failed (status %d); it needs Debian's python3-torch, "
                        "python3-torchvision and python3-numpy\n", cmd, st);
        return -1;
    }
    char *path = acv_path_join(g_dir, "zoo.json");
    json_error_t jerr;
    json_t *doc = json_load_file(path, 0, &jerr);
    free(path);
    if (!doc) {
        fprintf(stderr, "test_zoo: zoo.json:%d: %s\n", jerr.line, jerr.text);
        return -1;
    }
    g_models = json_incref(json_object_get(doc, "models"));
    json_decref(doc);
    return json_is_object(g_models) ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    json_decref(g_models);
    return acv_remove_tree(g_dir);
}

/* Builds zoo model `name` on an (n, 3, hw, hw) input. */
static acv_graph *build(const char *name, int n, int hw, int classes)
{
    acv_graph *g = acv_graph_new();
    int64_t xs[4] = {n, 3, hw, hw};
    acv_id x = acv_input(g, "input", 4, xs), logits = -1;
    int rc = acv_zoo_build(g, name, x, classes, &logits);
    if (rc) fail_msg("building %s: %s", name, acv_errmsg());
    acv_graph_set_output(g, logits);
    assert_int_equal(acv_graph_status(g), 0);
    const acv_shape *s = acv_graph_shape(g, logits);
    assert_int_equal(s->ndim, 2);
    assert_int_equal(s->d[0], n);
    assert_int_equal(s->d[1], classes);
    return g;
}

/* Names, shapes, parameter count and FLOPs of one model against torchvision's. */
static void check_layout(const char *name)
{
    json_t *ref = json_object_get(g_models, name);
    assert_non_null(ref);
    json_t *params = json_object_get(ref, "params");
    acv_graph *g = build(name, 1, 224, 1000);
    int n = acv_graph_param_count(g), bad = 0;
    /* every one of ours exists there with the same shape */
    for (int i = 0; i < n; i++) {
        acv_param_info pi;
        assert_int_equal(acv_graph_param(g, i, &pi), 0);
        json_t *shape = json_object_get(params, pi.name);
        if (!shape) {
            print_error("%s: %s is not in torchvision's state_dict\n", name, pi.name);
            bad++;
            continue;
        }
        bool same = (int)json_array_size(shape) == pi.shape.ndim;
        for (int k = 0; same && k < pi.shape.ndim; k++)
            same = json_integer_value(json_array_get(shape, (size_t)k)) == pi.shape.d[k];
        char buf[96];
        if (!same) {
            char *ts = json_dumps(shape, JSON_COMPACT);
            print_error("%s: %s is %s here, %s in torchvision\n", name, pi.name, acv_shape_str(&pi.shape, buf, sizeof buf), ts);
            free(ts);
            bad++;
        }
        /* only batch-norm statistics are buffers */
        bool stat = strstr(pi.name, "running_") != NULL;
        assert_int_equal(pi.trainable, !stat);
    }
    /* and nothing of theirs is missing here (names are unique on both sides) */
    const char *key;
    json_t *v;
    json_object_foreach(params, key, v) {
        if (acv_graph_find(g, key) < 0) {
            print_error("%s: torchvision's %s is missing here\n", name, key);
            bad++;
        }
    }
    assert_int_equal((int)json_object_size(params), n);
    assert_int_equal(bad, 0);
    assert_int_equal(acv_graph_num_params(g), json_integer_value(json_object_get(ref, "n_params")));
    /* FLOPs: 2 * Conv2d/Linear MACs as counted by torch's forward hooks */
    double macs = (double)json_integer_value(json_object_get(ref, "macs"));
    double gf = acv_graph_gflops(g);
    print_message("%-12s %3d tensors, %9lld parameters, %.3f GMACs, acv_graph_gflops %.3f\n", name, n,
                  (long long)acv_graph_num_params(g), macs / 1e9, gf);
    assert_true(fabs(gf - 2 * macs / 1e9) <= 1e-9 * gf);
    acv_graph_free(g);
}

static void test_resnet18_layout(void **state) { (void)state; check_layout("resnet18"); }
static void test_resnet34_layout(void **state) { (void)state; check_layout("resnet34"); }
static void test_resnet50_layout(void **state) { (void)state; check_layout("resnet50"); }
static void test_mobilenetv2_layout(void **state) { (void)state; check_layout("mobilenetv2"); }

/* The published figures: torchvision's model tables list GMACs (under "GFLOPS") for one
 * 224x224 image; ours count FLOPs as 2 * MACs. */
static void test_flops_published(void **state)
{
    (void)state;
    static const struct { const char *name; double gmacs; } pub[] = {
        {"resnet18", 1.81}, {"resnet34", 3.66}, {"resnet50", 4.09}, {"mobilenetv2", 0.30},
    };
    for (int i = 0; i < 4; i++) {
        acv_graph *g = build(pub[i].name, 1, 224, 1000);
        double gf = acv_graph_gflops(g);
        if (fabs(gf / 2 - pub[i].gmacs) > 0.01 * pub[i].gmacs)
            fail_msg("%s: %.3f GFLOPs = %.3f GMACs, published %.2f GMACs", pub[i].name, gf, gf / 2, pub[i].gmacs);
        /* per sample: a batch of 4 counts the same */
        acv_graph *g4 = build(pub[i].name, 4, 224, 1000);
        assert_true(fabs(acv_graph_gflops(g4) - gf) <= 1e-9 * gf);
        acv_graph_free(g4);
        acv_graph_free(g);
    }
}

/* Loads zoo_ref.py's weights for `name` into our graph, runs its input in eval mode and
 * compares with torchvision's float64 output. */
static void check_numeric(const char *name)
{
    char dir[256], path[512];
    snprintf(dir, sizeof dir, "%s/%s", g_dir, name);
    snprintf(path, sizeof path, "%s/index.json", dir);
    json_error_t jerr;
    json_t *idx = json_load_file(path, 0, &jerr);
    if (!idx) fail_msg("%s: %s", path, jerr.text);
    json_t *tensors = json_object_get(idx, "tensors");
    acv_graph *g = build(name, 2, 64, 1000);
    int n = acv_graph_param_count(g);
    assert_int_equal((int)json_object_size(tensors), n);
    for (int i = 0; i < n; i++) {
        acv_param_info pi;
        assert_int_equal(acv_graph_param(g, i, &pi), 0);
        const char *fn = json_string_value(json_object_get(tensors, pi.name));
        if (!fn) fail_msg("%s: no reference tensor for %s", name, pi.name);
        snprintf(path, sizeof path, "%s/%s", dir, fn);
        acv_shape s;
        float *data;
        if (acv_npy_load(path, &s, &data)) fail_msg("%s", acv_errmsg());
        assert_int_equal(s.ndim, pi.shape.ndim);
        assert_memory_equal(s.d, pi.shape.d, (size_t)s.ndim * sizeof(int64_t));
        memcpy(pi.data, data, (size_t)acv_shape_numel(&s) * sizeof(float));
        free(data);
    }
    assert_int_equal(acv_graph_compile(g, acv_backend_cpu(), 2, false), 0);
    acv_shape xs, ys;
    float *x, *y;
    snprintf(path, sizeof path, "%s/input.npy", dir);
    assert_int_equal(acv_npy_load(path, &xs, &x), 0);
    snprintf(path, sizeof path, "%s/output.npy", dir);
    assert_int_equal(acv_npy_load(path, &ys, &y), 0);
    acv_id in = acv_graph_input(g), out = acv_graph_output(g);
    assert_int_equal(acv_shape_numel(&xs), acv_shape_numel(acv_graph_shape(g, in)));
    assert_int_equal(acv_shape_numel(&ys), 2 * 1000);
    memcpy(acv_graph_data(g, in), x, (size_t)acv_shape_numel(&xs) * sizeof(float));
    assert_int_equal(acv_graph_forward(g, -1, false, 0), 0);
    const float *o = acv_graph_data(g, out);
    double md = 0, mref = 0;
    for (int i = 0; i < 2000; i++) {
        double d = fabs((double)o[i] - y[i]);
        if (!(d <= md)) md = d;
        if (fabs(y[i]) > mref) mref = fabs(y[i]);
    }
    print_message("%-12s max |ours - torchvision| %.3g, max |torchvision| %.3g, relative %.3g\n", name, md, mref,
                  md / mref);
    assert_true(mref > 1e-2);
    assert_true(md <= 1e-4 * mref);
    free(x);
    free(y);
    json_decref(idx);
    acv_graph_free(g);
}

static void test_resnet18_numeric(void **state) { (void)state; check_numeric("resnet18"); }
static void test_mobilenetv2_numeric(void **state) { (void)state; check_numeric("mobilenetv2"); }

/* The compact nets: shapes, a forward and a training step's gradients on small images. */
static void test_compact(void **state)
{
    (void)state;
    const char *names[2] = {"compact", "compact-l"};
    int64_t want[2] = {0, 0};
    for (int k = 0; k < 2; k++) {
        acv_graph *g = build(names[k], 3, 28, 10);
        want[k] = acv_graph_num_params(g);
        assert_true(acv_graph_find(g, "classifier.weight") >= 0);
        assert_true(acv_graph_find(g, "features.5.bn.running_var") >= 0);
        int64_t ts[1] = {3};
        acv_id t = acv_input(g, "target", 1, ts);
        acv_id loss = acv_cross_entropy(g, acv_graph_output(g), t, 0, NULL);
        assert_int_equal(acv_graph_init_params(g, 1), 0);
        assert_int_equal(acv_graph_compile(g, acv_backend_cpu(), 3, true), 0);
        float *x = acv_graph_data(g, acv_graph_input(g));
        for (int i = 0; i < 3 * 3 * 28 * 28; i++) x[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
        float *tv = acv_graph_data(g, t);
        tv[0] = 1;
        tv[1] = 7;
        tv[2] = 3;
        assert_int_equal(acv_graph_forward(g, -1, true, 1), 0);
        float l = acv_graph_data(g, loss)[0];
        assert_true(isfinite(l) && l > 0);
        assert_int_equal(acv_graph_backward(g, loss), 0);
        int64_t n;
        float *gr = acv_graph_grads(g, &n);
        double s = 0;
        for (int64_t i = 0; i < n; i++) s += fabs(gr[i]);
        assert_true(s > 0 && isfinite(s));
        acv_graph_free(g);
    }
    assert_true(want[1] > 2 * want[0]); /* compact-l is the wider one */
    /* the smallest advertised size still builds */
    const acv_zoo_entry *e = acv_zoo_find("compact");
    acv_graph *g = build("compact", 1, e->min_imgsz, 2);
    acv_graph_free(g);
    e = acv_zoo_find("resnet18");
    g = build("resnet18", 1, e->min_imgsz, 2);
    acv_graph_free(g);
}

static void test_list_and_errors(void **state)
{
    (void)state;
    const acv_zoo_entry *list;
    int n = acv_zoo_list(&list);
    assert_int_equal(n, 6);
    for (int i = 0; i < n; i++) {
        assert_ptr_equal(acv_zoo_find(list[i].name), &list[i]);
        assert_true(list[i].min_imgsz >= 1 && list[i].min_imgsz <= list[i].default_imgsz);
        assert_true(strlen(list[i].description) > 10);
    }
    assert_null(acv_zoo_find("vgg16"));
    assert_non_null(acv_zoo_find(acv_zoo_auto(28, 60000)));
    assert_string_equal(acv_zoo_auto(28, 60000), "compact");
    assert_string_equal(acv_zoo_auto(224, 1000), "resnet18");
    acv_graph *g = acv_graph_new();
    int64_t xs[4] = {1, 3, 32, 32};
    acv_id x = acv_input(g, "input", 4, xs), y = -7;
    assert_int_equal(acv_zoo_build(g, "vgg16", x, 10, &y), ACV_ENOTFOUND);
    assert_int_equal(y, -7);
    assert_non_null(strstr(acv_errmsg(), "vgg16"));
    assert_non_null(strstr(acv_errmsg(), "mobilenetv2"));
    assert_int_equal(acv_zoo_build(g, "resnet18", x, 0, &y), ACV_EINVAL);
    acv_graph_free(g);
    /* an input too small for the network fails naming the model and the layer (2x2 -> the
     * second 2x2 max pool meets a 1x1 map) */
    g = acv_graph_new();
    int64_t tiny[4] = {1, 3, 2, 2};
    x = acv_input(g, "input", 4, tiny);
    int rc = acv_zoo_build(g, "compact", x, 10, &y);
    assert_int_equal(rc, ACV_ESHAPE);
    assert_non_null(strstr(acv_errmsg(), "building compact"));
    assert_non_null(strstr(acv_errmsg(), "maxpool #"));
    acv_graph_free(g);
}

int main(void)
{
    acv_set_threads(2);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resnet18_layout),
        cmocka_unit_test(test_resnet34_layout),
        cmocka_unit_test(test_resnet50_layout),
        cmocka_unit_test(test_mobilenetv2_layout),
        cmocka_unit_test(test_flops_published),
        cmocka_unit_test(test_resnet18_numeric),
        cmocka_unit_test(test_mobilenetv2_numeric),
        cmocka_unit_test(test_compact),
        cmocka_unit_test(test_list_and_errors),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
