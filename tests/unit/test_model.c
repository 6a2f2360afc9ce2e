/* The model directory (src/nn/model.c): save/load round trip of every field and of the
 * weights (identical outputs), atomic replacement (no leftovers; a failed save leaves the
 * previous model intact) and every load error, each naming the file at fault. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include <jansson.h>

#include "autocv/error.h"
#include "autocv/model.h"
#include "autocv/version.h"
#include "base/file.h"
#include "base/rng.h"
#include "nn/backend.h"
#include "nn/safetensors.h"
#include "nn/zoo.h"

static char g_dir[64];

/* ---- allocation failure injection ------------------------------------------------------------ */

/* This binary's own calloc and strdup (they replace the C library's for the code linked
 * into it): while armed, the next matching call fails once, as an exhausted heap would. */
static int g_fail_calloc_n = -1;  /* calloc(n, sizeof(char *)) with this n */
static const char *g_fail_strdup; /* strdup of this string */

void *calloc(size_t n, size_t size)
{
    if (g_fail_calloc_n >= 0 && n == (size_t)g_fail_calloc_n && size == sizeof(char *)) {
        g_fail_calloc_n = -1;
        return NULL;
    }
    size_t total;
    if (__builtin_mul_overflow(n, size, &total)) return NULL;
    void *p = malloc(total ? total : 1);
    /* through a volatile pointer: the compiler would fold malloc + memset into calloc */
    void *(*volatile zero)(void *, int, size_t) = memset;
    if (p) zero(p, 0, total);
    return p;
}

char *strdup(const char *s)
{
    if (g_fail_strdup && !strcmp(s, g_fail_strdup)) {
        g_fail_strdup = NULL;
        return NULL;
    }
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static int setup(void **state)
{
    (void)state;
    strcpy(g_dir, "/tmp/acv_model_XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    return acv_remove_tree(g_dir);
}

/* g_dir/a or g_dir/a/b in one of 16 rotating buffers (callers keep a copy for longer). */
static char *path_in(const char *a, const char *b)
{
    static char buf[16][512];
    static int k;
    char *p = buf[k++ & 15];
    if (b) snprintf(p, 512, "%s/%s/%s", g_dir, a, b);
    else snprintf(p, 512, "%s/%s", g_dir, a);
    return p;
}

static const char *const CLASSES[4] = {"bolt", "nut", "washer", "scratched part"};

/* A compact classifier on 3x16x16 with random weights and batch-norm statistics and every
 * model.json field set. */
static acv_model *make_model(uint64_t seed)
{
    acv_model *m = calloc(1, sizeof *m);
    assert_non_null(m);
    m->graph = acv_graph_new();
    int64_t xs[4] = {1, 3, 16, 16};
    acv_id x = acv_input(m->graph, "input", 4, xs);
    acv_id logits;
    assert_int_equal(acv_zoo_build(m->graph, "compact", x, 4, &logits), 0);
    acv_graph_set_output(m->graph, logits);
    assert_int_equal(acv_graph_init_params(m->graph, seed), 0);
    acv_rng r;
    acv_rng_seed(&r, seed);
    int64_t nb;
    float *b = acv_graph_buffers(m->graph, &nb);
    for (int64_t i = 0; i < nb; i++) b[i] = 0.5f + acv_rng_uniform(&r); /* means and variances */
    int64_t np;
    float *p = acv_graph_params(m->graph, &np);
    for (int64_t i = 0; i < np; i++) p[i] += 0.05f * acv_rng_normal(&r);
    snprintf(m->task, sizeof m->task, "cls");
    snprintf(m->arch, sizeof m->arch, "compact");
    m->n_classes = 4;
    m->classes = calloc(4, sizeof(char *));
    for (int i = 0; i < 4; i++) m->classes[i] = strdup(CLASSES[i]);
    m->in_c = 3;
    m->in_h = m->in_w = 16;
    float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    memcpy(m->mean, mean, sizeof mean);
    memcpy(m->std, std, sizeof std);
    snprintf(m->resize, sizeof m->resize, "crop");
    m->crop_frac = 0.875f;
    m->provenance_json = strdup("{\"dataset\":\"trays v3\",\"epochs\":12,\"seed\":7}");
    m->metrics_json = strdup("{\"accuracy\": 0.9375}");
    return m;
}

/* Logits of m for a fixed random batch of 2. Caller frees. */
static float *logits_of(acv_model *m)
{
    acv_graph *g = m->graph;
    assert_int_equal(acv_graph_compile(g, acv_backend_cpu(), 2, false), 0);
    acv_id x = acv_graph_input(g), o = acv_graph_output(g);
    acv_rng r;
    acv_rng_seed(&r, 99);
    float *xv = acv_graph_data(g, x);
    for (int i = 0; i < 2 * 3 * 16 * 16; i++) xv[i] = acv_rng_normal(&r);
    assert_int_equal(acv_graph_forward(g, -1, false, 0), 0);
    float *out = malloc(2 * 4 * sizeof(float));
    memcpy(out, acv_graph_data(g, o), 2 * 4 * sizeof(float));
    return out;
}

static void assert_same_model(acv_model *a, acv_model *b)
{
    assert_string_equal(a->task, b->task);
    assert_string_equal(a->arch, b->arch);
    assert_int_equal(a->n_classes, b->n_classes);
    for (int i = 0; i < a->n_classes; i++) assert_string_equal(a->classes[i], b->classes[i]);
    assert_int_equal(a->in_c, b->in_c);
    assert_int_equal(a->in_h, b->in_h);
    assert_int_equal(a->in_w, b->in_w);
    for (int i = 0; i < a->in_c; i++) {
        assert_true(a->mean[i] == b->mean[i]);
        assert_true(a->std[i] == b->std[i]);
    }
    assert_string_equal(a->resize, b->resize);
    assert_true(a->crop_frac == b->crop_frac);
    json_t *pa = json_loads(a->provenance_json, 0, NULL), *pb = json_loads(b->provenance_json, 0, NULL);
    assert_non_null(pa);
    assert_non_null(pb);
    assert_true(json_equal(pa, pb));
    json_decref(pa);
    json_decref(pb);
    assert_string_equal(a->metrics_json, b->metrics_json);
    /* the same parameters, bit for bit */
    int64_t n1, n2, b1, b2;
    float *p1 = acv_graph_params(a->graph, &n1), *p2 = acv_graph_params(b->graph, &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(p1, p2, (size_t)n1 * sizeof(float));
    float *q1 = acv_graph_buffers(a->graph, &b1), *q2 = acv_graph_buffers(b->graph, &b2);
    assert_int_equal(b1, b2);
    assert_memory_equal(q1, q2, (size_t)b1 * sizeof(float));
    float *o1 = logits_of(a), *o2 = logits_of(b);
    assert_memory_equal(o1, o2, 8 * sizeof(float));
    free(o1);
    free(o2);
}

static void test_round_trip(void **state)
{
    (void)state;
    acv_model *m = make_model(1);
    /* an extra file is hard-linked in */
    const char *labels = path_in("labels.txt", NULL);
    assert_int_equal(acv_file_write_atomic(labels, "bolt\nnut\n", 9), 0);
    const char *extra[] = {"labels.txt", labels, "absent.txt", path_in("nope", NULL), NULL};
    char dir[512];
    snprintf(dir, sizeof dir, "%s", path_in("m1", NULL));
    assert_int_equal(acv_model_save(m, dir, extra), 0);
    assert_true(acv_path_exists(path_in("m1", "model.json")));
    assert_true(acv_path_exists(path_in("m1", "weights.safetensors")));
    assert_true(acv_path_exists(path_in("m1", "metrics.json")));
    assert_true(acv_path_exists(path_in("m1", "labels.txt")));
    assert_false(acv_path_exists(path_in("m1", "absent.txt"))); /* missing extras are skipped */
    /* model.json carries the format version and the graph */
    json_t *root = json_load_file(path_in("m1", "model.json"), 0, NULL);
    assert_non_null(root);
    assert_int_equal(json_integer_value(json_object_get(root, "format_version")), AUTOCV_MODEL_FORMAT);
    assert_true(json_is_object(json_object_get(root, "graph")));
    assert_string_equal(json_string_value(json_object_get(root, "autocv_version")), AUTOCV_VERSION);
    json_decref(root);
    acv_model *l = NULL;
    int rc = acv_model_load(dir, &l);
    if (rc) fail_msg("load: %s", acv_errmsg());
    assert_same_model(m, l);
    /* the loaded model saves back to an equivalent one */
    assert_int_equal(acv_model_save(l, path_in("m1b", NULL), NULL), 0);
    acv_model *l2 = NULL;
    assert_int_equal(acv_model_load(path_in("m1b", NULL), &l2), 0);
    assert_same_model(m, l2);
    acv_model_free(l2);
    acv_model_free(l);
    /* per-class score thresholds (a detector's, chosen by training) round-trip */
    assert_null(m->score_thr);
    m->score_thr = malloc(4 * sizeof(float));
    for (int i = 0; i < 4; i++) m->score_thr[i] = 0.3f + 0.1f * (float)i;
    assert_int_equal(acv_model_save(m, path_in("m1t", NULL), NULL), 0);
    assert_int_equal(acv_model_load(path_in("m1t", NULL), &l), 0);
    assert_non_null(l->score_thr);
    for (int i = 0; i < 4; i++) assert_float_equal(l->score_thr[i], m->score_thr[i], 1e-6f);
    acv_model_free(l);
    free(m->score_thr);
    m->score_thr = NULL;
    /* defaults: no provenance, no metrics, stretch */
    free(m->provenance_json);
    free(m->metrics_json);
    m->provenance_json = m->metrics_json = NULL;
    snprintf(m->resize, sizeof m->resize, "stretch");
    assert_int_equal(acv_model_save(m, path_in("m2/", NULL), NULL), 0); /* trailing slash */
    assert_int_equal(acv_model_load(path_in("m2", NULL), &l), 0);
    assert_null(l->provenance_json);
    assert_null(l->metrics_json);
    assert_string_equal(l->resize, "stretch");
    assert_false(acv_path_exists(path_in("m2", "metrics.json")));
    acv_model_free(l);
    acv_model_free(m);
}

/* Entries of g_dir whose names start with prefix. */
static int count_entries(const char *prefix)
{
    DIR *d = opendir(g_dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (!strncmp(e->d_name, prefix, strlen(prefix))) n++;
    closedir(d);
    return n;
}

static void test_atomic_replace(void **state)
{
    (void)state;
    char dir[512];
    snprintf(dir, sizeof dir, "%s", path_in("live", NULL));
    acv_model *a = make_model(2), *b = make_model(3);
    assert_int_equal(acv_model_save(a, dir, NULL), 0);
    assert_int_equal(acv_model_save(b, dir, NULL), 0); /* over the existing model */
    assert_int_equal(count_entries("live"), 1);        /* no live.tmp-* or live.old.* */
    acv_model *l;
    assert_int_equal(acv_model_load(dir, &l), 0);
    assert_same_model(b, l);
    acv_model_free(l);

    /* a failure after the files were written (an extra "file" that cannot be linked) */
    const char *sub = path_in("a_directory", NULL);
    assert_int_equal(acv_mkdirs(sub), 0);
    const char *bad_extra[] = {"x", sub, NULL};
    int rc = acv_model_save(a, dir, bad_extra);
    assert_int_equal(rc, ACV_EIO);
    assert_non_null(strstr(acv_errmsg(), "a_directory"));
    assert_int_equal(count_entries("live"), 1);
    assert_int_equal(acv_model_load(dir, &l), 0);
    assert_same_model(b, l); /* still the previous model */
    acv_model_free(l);

    /* a graph whose construction failed is refused before anything is written */
    acv_id bad = acv_relu(a->graph, 100000);
    assert_true(bad < 0);
    rc = acv_model_save(a, dir, NULL);
    assert_true(rc < 0);
    assert_int_equal(count_entries("live"), 1);
    assert_int_equal(acv_model_load(dir, &l), 0);
    assert_same_model(b, l);
    acv_model_free(l);
    /* so is one without an output */
    acv_model *c = make_model(4);
    acv_graph_free(c->graph);
    c->graph = acv_graph_new();
    int64_t xs[4] = {1, 3, 16, 16};
    acv_input(c->graph, "input", 4, xs);
    assert_true(acv_model_save(c, dir, NULL) < 0);
    assert_non_null(strstr(acv_errmsg(), "output"));
    assert_int_equal(acv_model_load(dir, &l), 0);
    assert_same_model(b, l);
    acv_model_free(l);
    acv_model_free(c);
    acv_model_free(a);
    acv_model_free(b);
}

/* ---- load errors -------------------------------------------------------------------------- */

/* Saves a fresh model to NAME, lets edit() change its model.json, and expects load to fail
 * with code and a message containing both the file and `what`. */
static void expect_load_error(const char *name, void (*edit)(json_t *root), const char *file, int code,
                              const char *what)
{
    acv_model *m = make_model(5);
    char dir[512];
    snprintf(dir, sizeof dir, "%s", path_in(name, NULL));
    assert_int_equal(acv_model_save(m, dir, NULL), 0);
    acv_model_free(m);
    if (edit) {
        const char *mj = path_in(name, "model.json");
        json_t *root = json_load_file(mj, 0, NULL);
        assert_non_null(root);
        edit(root);
        assert_int_equal(json_dump_file(root, mj, JSON_INDENT(1)), 0);
        json_decref(root);
    }
    acv_model *l = (acv_model *)1;
    int rc = acv_model_load(dir, &l);
    if (rc != code) fail_msg("%s: expected %d, got %d (%s)", name, code, rc, acv_errmsg());
    assert_null(l);
    const char *fp = path_in(name, file);
    if (!strstr(acv_errmsg(), fp)) fail_msg("%s: message '%s' does not name %s", name, acv_errmsg(), fp);
    if (what && !strstr(acv_errmsg(), what)) fail_msg("%s: message '%s' does not say '%s'", name, acv_errmsg(), what);
}

static void edit_version(json_t *r) { json_object_set_new(r, "format_version", json_integer(AUTOCV_MODEL_FORMAT + 1)); }
static void edit_no_version(json_t *r) { json_object_del(r, "format_version"); }
static void edit_classes(json_t *r) { json_array_remove(json_object_get(r, "classes"), 0); }
static void edit_class_type(json_t *r) { json_array_set_new(json_object_get(r, "classes"), 1, json_integer(3)); }
static void edit_no_task(json_t *r) { json_object_del(r, "task"); }
static void edit_input(json_t *r) { json_object_set_new(json_object_get(r, "input"), "height", json_integer(20)); }
static void edit_std(json_t *r) { json_array_set_new(json_object_get(json_object_get(r, "normalization"), "std"), 1, json_real(0)); }
static void edit_mean(json_t *r) { json_array_remove(json_object_get(json_object_get(r, "normalization"), "mean"), 0); }
static void edit_resize(json_t *r) { json_object_set_new(json_object_get(r, "preprocess"), "resize", json_string("zoom")); }
static void edit_no_graph(json_t *r) { json_object_del(r, "graph"); }
static void edit_thr_count(json_t *r)
{
    json_object_set_new(r, "postprocess", json_pack("{s:[f, f]}", "score_thresholds", 0.5, 0.5));
}
static void edit_thr_range(json_t *r)
{
    json_object_set_new(r, "postprocess", json_pack("{s:[f, f, f, f]}", "score_thresholds", 0.5, 0.5, 1.5, 0.5));
}
static void edit_graph_op(json_t *r)
{
    json_t *nodes = json_object_get(json_object_get(r, "graph"), "nodes");
    json_object_set_new(json_array_get(nodes, 3), "op", json_string("teleport"));
}

static void test_load_errors_json(void **state)
{
    (void)state;
    acv_model *l = (acv_model *)1;
    /* missing directory */
    const char *nodir = path_in("does-not-exist", NULL);
    assert_int_equal(acv_model_load(nodir, &l), ACV_ENOTFOUND);
    assert_null(l);
    assert_non_null(strstr(acv_errmsg(), nodir));
    /* a directory without model.json */
    const char *empty = path_in("empty", NULL);
    assert_int_equal(acv_mkdirs(empty), 0);
    assert_int_equal(acv_model_load(empty, &l), ACV_ENOTFOUND);
    assert_non_null(strstr(acv_errmsg(), empty));
    assert_non_null(strstr(acv_errmsg(), "model.json"));
    /* malformed JSON */
    const char *mal = path_in("malformed", NULL);
    assert_int_equal(acv_mkdirs(mal), 0);
    assert_int_equal(acv_file_write_atomic(path_in("malformed", "model.json"), "{\"task\": \"cls\",", 15), 0);
    assert_int_equal(acv_model_load(mal, &l), ACV_EFORMAT);
    assert_non_null(strstr(acv_errmsg(), path_in("malformed", "model.json")));
    assert_non_null(strstr(acv_errmsg(), "invalid JSON"));

    expect_load_error("newer", edit_version, "model.json", ACV_EUNSUPPORTED, "format_version 2");
    expect_load_error("noversion", edit_no_version, "model.json", ACV_EFORMAT, "'format_version' is missing");
    expect_load_error("classes", edit_classes, "model.json", ACV_EFORMAT, "3 classes");
    expect_load_error("classtype", edit_class_type, "model.json", ACV_EFORMAT, "classes[1]");
    expect_load_error("notask", edit_no_task, "model.json", ACV_EFORMAT, "'task'");
    expect_load_error("input", edit_input, "model.json", ACV_EFORMAT, "'input'");
    expect_load_error("std", edit_std, "model.json", ACV_EFORMAT, "std");
    expect_load_error("mean", edit_mean, "model.json", ACV_EFORMAT, "normalization.mean");
    expect_load_error("resize", edit_resize, "model.json", ACV_EFORMAT, "preprocess.resize");
    expect_load_error("nograph", edit_no_graph, "model.json", ACV_EFORMAT, "'graph'");
    expect_load_error("thrcount", edit_thr_count, "model.json", ACV_EFORMAT, "array of 4 numbers");
    expect_load_error("thrrange", edit_thr_range, "model.json", ACV_EFORMAT, "score_thresholds[2]");
    expect_load_error("graphop", edit_graph_op, "model.json", ACV_EFORMAT, "teleport");
}

/* Rewrites DIR/weights.safetensors with the model's tensors, leaving out `drop` and giving
 * `reshape` the shape `shape`. */
static void rewrite_weights(const char *name, const char *drop, const char *reshape, const acv_shape *shape)
{
    acv_model *m = make_model(5);
    int n = acv_graph_param_count(m->graph), k = 0;
    const char **names = calloc((size_t)n, sizeof *names);
    acv_shape *shapes = calloc((size_t)n, sizeof *shapes);
    const float **datas = calloc((size_t)n, sizeof *datas);
    for (int i = 0; i < n; i++) {
        acv_param_info pi;
        assert_int_equal(acv_graph_param(m->graph, i, &pi), 0);
        if (drop && !strcmp(pi.name, drop)) continue;
        names[k] = pi.name;
        shapes[k] = reshape && !strcmp(pi.name, reshape) ? *shape : pi.shape;
        datas[k] = pi.data;
        k++;
    }
    assert_int_equal(acv_safetensors_save(path_in(name, "weights.safetensors"), k, names, shapes, datas, NULL), 0);
    free(names);
    free(shapes);
    free(datas);
    acv_model_free(m);
}

static void test_load_errors_weights(void **state)
{
    (void)state;
    acv_model *m = make_model(5);
    const char *names[] = {"wmissing", "wshape", "wnumel", "wgone", "wok"};
    for (int i = 0; i < 5; i++) assert_int_equal(acv_model_save(m, path_in(names[i], NULL), NULL), 0);
    int64_t np;
    acv_graph_params(m->graph, &np);
    acv_model_free(m);
    acv_model *l = (acv_model *)1;
    /* the rewrite itself is faithful */
    rewrite_weights("wok", NULL, NULL, NULL);
    assert_int_equal(acv_model_load(path_in("wok", NULL), &l), 0);
    acv_model_free(l);
    /* a tensor missing */
    rewrite_weights("wmissing", "features.2.bn.running_var", NULL, NULL);
    assert_int_equal(acv_model_load(path_in("wmissing", NULL), &l), ACV_EFORMAT);
    assert_null(l);
    assert_non_null(strstr(acv_errmsg(), path_in("wmissing", "weights.safetensors")));
    assert_non_null(strstr(acv_errmsg(), "features.2.bn.running_var"));
    /* a transposed classifier weight: the same element count, the wrong shape */
    acv_shape t = acv_shape_make(2, 128, 4, 0, 0);
    rewrite_weights("wshape", NULL, "classifier.weight", &t);
    assert_int_equal(acv_model_load(path_in("wshape", NULL), &l), ACV_ESHAPE);
    assert_non_null(strstr(acv_errmsg(), path_in("wshape", "weights.safetensors")));
    assert_non_null(strstr(acv_errmsg(), "classifier.weight"));
    assert_non_null(strstr(acv_errmsg(), "[128, 4]"));
    assert_non_null(strstr(acv_errmsg(), "[4, 128]"));
    /* a different element count: the data for the wrong shape (a prefix of the real data) */
    acv_shape s3 = acv_shape_make(1, 3, 0, 0, 0);
    rewrite_weights("wnumel", NULL, "classifier.bias", &s3);
    assert_int_equal(acv_model_load(path_in("wnumel", NULL), &l), ACV_ESHAPE);
    assert_non_null(strstr(acv_errmsg(), "classifier.bias"));
    /* no weights file at all */
    assert_int_equal(remove(path_in("wgone", "weights.safetensors")), 0);
    int rc = acv_model_load(path_in("wgone", NULL), &l);
    assert_true(rc == ACV_ENOTFOUND || rc == ACV_EIO);
    assert_non_null(strstr(acv_errmsg(), path_in("wgone", "weights.safetensors")));
    /* a truncated weights file */
    const char *wp = path_in("wok", "weights.safetensors");
    assert_int_equal(truncate(wp, 100), 0);
    rc = acv_model_load(path_in("wok", NULL), &l);
    assert_true(rc < 0);
    assert_non_null(strstr(acv_errmsg(), wp));
    assert_true(np > 0);
}

/* acv_weights_save/load on a bare graph: values come back; extra tensors in the file are
 * ignored. */
static void test_weights_file(void **state)
{
    (void)state;
    acv_model *a = make_model(6), *b = make_model(7);
    const char *wp = path_in("w.safetensors", NULL);
    assert_int_equal(acv_weights_save(a->graph, wp), 0);
    acv_safetensors *st;
    assert_int_equal(acv_safetensors_open(wp, &st), 0);
    assert_int_equal(acv_safetensors_count(st), acv_graph_param_count(a->graph));
    assert_non_null(acv_safetensors_find(st, "features.0.conv.weight"));
    assert_non_null(acv_safetensors_find(st, "features.5.bn.running_mean"));
    acv_safetensors_close(st);
    int64_t n;
    float *pb = acv_graph_params(b->graph, &n);
    assert_true(memcmp(acv_graph_params(a->graph, NULL), pb, (size_t)n * sizeof(float)) != 0);
    assert_int_equal(acv_weights_load(b->graph, wp), 0);
    assert_memory_equal(acv_graph_params(a->graph, NULL), acv_graph_params(b->graph, NULL), (size_t)n * sizeof(float));
    int64_t nb;
    float *ba = acv_graph_buffers(a->graph, &nb);
    assert_memory_equal(ba, acv_graph_buffers(b->graph, NULL), (size_t)nb * sizeof(float));
    acv_model_free(a);
    acv_model_free(b);
}

/* Out of memory reading the class names (the array, then one name): ACV_ENOMEM naming
 * model.json and what it was reading, no crash, and nothing half-built returned. */
static void test_load_out_of_memory(void **state)
{
    (void)state;
    acv_model *m = make_model(3);
    const char *dir = path_in("oom", NULL);
    assert_int_equal(acv_model_save(m, dir, NULL), 0);
    acv_model_free(m);
    acv_model *l = (acv_model *)1;
    g_fail_calloc_n = 4; /* the 4 class names */
    int rc = acv_model_load(dir, &l);
    if (g_fail_calloc_n >= 0) fail_msg("the class array was not allocated with calloc(4, sizeof(char *))");
    assert_int_equal(rc, ACV_ENOMEM);
    assert_null(l);
    assert_non_null(strstr(acv_errmsg(), path_in("oom", "model.json")));
    assert_non_null(strstr(acv_errmsg(), "4 class names"));
    l = (acv_model *)1;
    g_fail_strdup = CLASSES[2];
    rc = acv_model_load(dir, &l);
    assert_null(g_fail_strdup);
    assert_int_equal(rc, ACV_ENOMEM);
    assert_null(l);
    assert_non_null(strstr(acv_errmsg(), path_in("oom", "model.json")));
    assert_non_null(strstr(acv_errmsg(), "classes[2]"));
    /* and with memory, it loads */
    assert_int_equal(acv_model_load(dir, &l), 0);
    assert_string_equal(l->classes[2], CLASSES[2]);
    acv_model_free(l);
}

int main(void)
{
    acv_set_threads(2);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_atomic_replace),
        cmocka_unit_test(test_load_errors_json),
        cmocka_unit_test(test_load_errors_weights),
        cmocka_unit_test(test_weights_file),
        cmocka_unit_test(test_load_out_of_memory),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
