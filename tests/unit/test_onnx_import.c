/* The ONNX importer (src/onnx/import*.c, onnx_read.c) on malformed models built here with
 * the protobuf-c structs and packed into files: every one must fail with an error naming
 * the file and the node (or import cleanly), never crash. Covers repeated Transpose perm
 * entries, an absent input 0 of a folded node, int64 overflow and INT64_MIN / -1 in folded
 * arithmetic, Split without outputs, a HardSigmoid scalar of a node without a name or
 * outputs, and tensors whose data disagrees with huge declared dims (refused before any
 * allocation from the dims: the address space is capped so such an allocation would fail
 * as ACV_ENOMEM). Also: Transposes that move data (made of slices, reshapes and concats)
 * against a transpose computed here, forward and backward, and the ones refused. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <cmocka.h>

#include "autocv/error.h"
#include "autocv/graph.h"
#include "autocv/model.h"
#include "base/file.h"
#include "onnx/import.h"
#include "onnx/onnx_read.h"

#include "as_cap.h"

static char g_dir[64];

static int setup(void **state)
{
    (void)state;
    strcpy(g_dir, "/tmp/acv_test_onnx_XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    return acv_remove_tree(g_dir);
}

static void assert_msg_has(const char *s)
{
    if (!strstr(acv_errmsg(), s)) fail_msg("error message '%s' lacks '%s'", acv_errmsg(), s);
}

/* ---- a tiny model builder: one float input "x" [1, 3, 4, 4], one output "y" ------------ */

#define MB_MAX 8

typedef struct mb {
    Onnx__ModelProto m;
    Onnx__GraphProto g;
    Onnx__OperatorSetIdProto opset, *opsetp[1];
    Onnx__ValueInfoProto in, out, *inp[1], *outp[1];
    Onnx__TypeProto tp;
    Onnx__TypeProto__Tensor tt;
    Onnx__TensorShapeProto shp;
    Onnx__TensorShapeProto__Dimension dim[4], *dimp[4];
    Onnx__NodeProto node[MB_MAX], *nodep[MB_MAX];
    char *io[MB_MAX][2][4];                    /* inputs, outputs of each node */
    Onnx__AttributeProto attr[MB_MAX], *attrp[MB_MAX][1];
    int64_t attr_ints[MB_MAX][8];
    Onnx__TensorProto init[MB_MAX], *initp[MB_MAX];
    int64_t init_dims[MB_MAX][4];
    int64_t init_vals[MB_MAX][8];
} mb;

static void mb_init(mb *b)
{
    memset(b, 0, sizeof *b);
    onnx__model_proto__init(&b->m);
    onnx__graph_proto__init(&b->g);
    onnx__operator_set_id_proto__init(&b->opset);
    b->opset.domain = "";
    b->opset.has_version = 1;
    b->opset.version = 13;
    b->opsetp[0] = &b->opset;
    b->m.has_ir_version = 1;
    b->m.ir_version = 8;
    b->m.n_opset_import = 1;
    b->m.opset_import = b->opsetp;
    b->m.graph = &b->g;
    b->g.name = "test";
    onnx__type_proto__init(&b->tp);
    onnx__type_proto__tensor__init(&b->tt);
    onnx__tensor_shape_proto__init(&b->shp);
    static const int64_t d[4] = {1, 3, 4, 4};
    for (int k = 0; k < 4; k++) {
        onnx__tensor_shape_proto__dimension__init(&b->dim[k]);
        b->dim[k].value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
        b->dim[k].dim_value = d[k];
        b->dimp[k] = &b->dim[k];
    }
    b->shp.n_dim = 4;
    b->shp.dim = b->dimp;
    b->tt.has_elem_type = 1;
    b->tt.elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    b->tt.shape = &b->shp;
    b->tp.value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    b->tp.tensor_type = &b->tt;
    onnx__value_info_proto__init(&b->in);
    b->in.name = "x";
    b->in.type = &b->tp;
    onnx__value_info_proto__init(&b->out);
    b->out.name = "y";
    b->inp[0] = &b->in;
    b->outp[0] = &b->out;
    b->g.n_input = 1;
    b->g.input = b->inp;
    b->g.n_output = 1;
    b->g.output = b->outp;
    b->g.node = b->nodep;
    b->g.initializer = b->initp;
}

/* Adds a node; ins/outs are NULL-terminated (at most 4 each). Returns its index. */
static int mb_node(mb *b, const char *op, const char *name, const char *const *ins, const char *const *outs)
{
    int i = (int)b->g.n_node++;
    assert_true(i < MB_MAX);
    Onnx__NodeProto *n = &b->node[i];
    onnx__node_proto__init(n);
    n->op_type = (char *)op;
    n->name = (char *)name;
    for (int k = 0; ins && ins[k]; k++) b->io[i][0][n->n_input++] = (char *)ins[k];
    for (int k = 0; outs && outs[k]; k++) b->io[i][1][n->n_output++] = (char *)outs[k];
    n->input = n->n_input ? b->io[i][0] : NULL;
    n->output = n->n_output ? b->io[i][1] : NULL;
    b->nodep[i] = n;
    return i;
}

/* Gives node i one attribute: INTS when nv >= 0 (v[0..nv)), else INT v[0] or FLOAT f. */
static void mb_attr(mb *b, int i, const char *name, const int64_t *v, int nv, bool is_float, float f)
{
    Onnx__AttributeProto *a = &b->attr[i];
    onnx__attribute_proto__init(a);
    a->name = (char *)name;
    a->has_type = 1;
    if (nv >= 0) {
        a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
        memcpy(b->attr_ints[i], v, (size_t)nv * sizeof(int64_t));
        a->n_ints = (size_t)nv;
        a->ints = b->attr_ints[i];
    } else if (is_float) {
        a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
        a->has_f = 1;
        a->f = f;
    } else {
        a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
        a->has_i = 1;
        a->i = v[0];
    }
    b->attrp[i][0] = a;
    b->node[i].n_attribute = 1;
    b->node[i].attribute = b->attrp[i];
}

/* t initialised as a tensor of type dtype and the given dims, with no data yet. */
static void tensor_proto(Onnx__TensorProto *t, int dtype, size_t n_dims, int64_t *dims)
{
    onnx__tensor_proto__init(t);
    t->has_data_type = 1;
    t->data_type = dtype;
    t->n_dims = n_dims;
    t->dims = dims;
}

/* An int64 initializer of shape dims (nd dims, nv <= 8 values). */
static void mb_init_i64(mb *b, const char *name, const int64_t *dims, int nd, const int64_t *vals, int nv)
{
    int i = (int)b->g.n_initializer++;
    assert_true(i < MB_MAX && nd <= 4 && nv <= 8);
    Onnx__TensorProto *t = &b->init[i];
    memcpy(b->init_dims[i], dims, (size_t)nd * sizeof(int64_t));
    memcpy(b->init_vals[i], vals, (size_t)nv * sizeof(int64_t));
    tensor_proto(t, ONNX__TENSOR_PROTO__DATA_TYPE__INT64, (size_t)nd, b->init_dims[i]);
    t->name = (char *)name;
    t->n_int64_data = (size_t)nv;
    t->int64_data = b->init_vals[i];
    b->initp[i] = t;
}

/* Packs the model into g_dir/name; returns the path (static buffer). */
static const char *mb_write(mb *b, const char *name)
{
    static char path[128];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    size_t len = onnx__model_proto__get_packed_size(&b->m);
    uint8_t *buf = malloc(len ? len : 1);
    assert_non_null(buf);
    assert_int_equal(onnx__model_proto__pack(&b->m, buf), len);
    assert_int_equal(acv_file_write_atomic(path, buf, len), 0);
    free(buf);
    return path;
}

/* Imports path expecting failure with code (0: any) and a message naming the file and
 * holding each of the NULL-terminated strings in must. */
static void expect_fail(const char *path, int code, const char *const *must)
{
    acv_model *m = (acv_model *)1;
    int rc = acv_onnx_import(path, NULL, &m);
    if (rc == 0) fail_msg("%s imported; an error was expected", path);
    assert_null(m);
    if (code) assert_int_equal(rc, code);
    assert_msg_has(path);
    for (int k = 0; must && must[k]; k++) assert_msg_has(must[k]);
}

/* y = Flatten(x): the end of every model whose interesting node reads something else. */
static void mb_flatten_out(mb *b)
{
    mb_node(b, "Flatten", "flat", (const char *[]){"x", NULL}, (const char *[]){"y", NULL});
}

/* ---- tests -------------------------------------------------------------------------------- */

/* Transpose perm [0, 0] on a folded constant read past the constant; on a node it built a
 * wrong shape. Both refuse a repeated entry, naming the node. */
static void test_transpose_repeated_perm(void **state)
{
    (void)state;
    mb b;
    mb_init(&b);
    mb_init_i64(&b, "c", (const int64_t[]){2, 2}, 2, (const int64_t[]){1, 2, 3, 4}, 4);
    int t = mb_node(&b, "Transpose", "tr_const", (const char *[]){"c", NULL}, (const char *[]){"ct", NULL});
    mb_attr(&b, t, "perm", (const int64_t[]){0, 0}, 2, false, 0);
    mb_flatten_out(&b);
    expect_fail(mb_write(&b, "perm_const.onnx"), ACV_EINVAL, (const char *[]){"tr_const", "Transpose", "repeats", NULL});

    mb_init(&b);
    t = mb_node(&b, "Transpose", "tr_node", (const char *[]){"x", NULL}, (const char *[]){"xt", NULL});
    mb_attr(&b, t, "perm", (const int64_t[]){0, 0, 2, 3}, 4, false, 0);
    mb_node(&b, "Flatten", "flat", (const char *[]){"xt", NULL}, (const char *[]){"y", NULL});
    expect_fail(mb_write(&b, "perm_node.onnx"), ACV_EINVAL, (const char *[]){"tr_node", "repeats", NULL});
}

/* A foldable node whose input 0 is absent (empty name) but whose other inputs are
 * constants used to be folded with a NULL input 0. */
static void test_fold_missing_input0(void **state)
{
    (void)state;
    static const char *const OPS[] = {"Cast", "Add", "Reshape", "Unsqueeze"};
    for (size_t k = 0; k < sizeof OPS / sizeof OPS[0]; k++) {
        mb b;
        mb_init(&b);
        mb_init_i64(&b, "c", (const int64_t[]){1}, 1, (const int64_t[]){1}, 1);
        int n = mb_node(&b, OPS[k], "no_input0", (const char *[]){"", "c", NULL}, (const char *[]){"z", NULL});
        if (!strcmp(OPS[k], "Cast")) mb_attr(&b, n, "to", (const int64_t[]){ONNX__TENSOR_PROTO__DATA_TYPE__INT64}, -1, false, 0);
        mb_flatten_out(&b);
        char name[64];
        snprintf(name, sizeof name, "missing0_%s.onnx", OPS[k]);
        expect_fail(mb_write(&b, name), ACV_EFORMAT, (const char *[]){"no_input0", OPS[k], "input 0 is missing", NULL});
    }
}

/* int64 constant arithmetic: INT64_MIN / -1 trapped (SIGFPE); +, -, * wrapped. */
static void test_fold_int64_overflow(void **state)
{
    (void)state;
    static const struct { const char *op; int64_t a, b; } CASES[] = {
        {"Div", INT64_MIN, -1}, {"Add", INT64_MAX, 1}, {"Sub", INT64_MIN, 1}, {"Mul", INT64_MAX / 2 + 1, 2},
        {"Mul", INT64_MIN, -1},
    };
    for (size_t k = 0; k < sizeof CASES / sizeof CASES[0]; k++) {
        mb b;
        mb_init(&b);
        mb_init_i64(&b, "a", (const int64_t[]){1}, 1, &CASES[k].a, 1);
        mb_init_i64(&b, "b", (const int64_t[]){1}, 1, &CASES[k].b, 1);
        mb_node(&b, CASES[k].op, "arith", (const char *[]){"a", "b", NULL}, (const char *[]){"z", NULL});
        mb_flatten_out(&b);
        char name[64];
        snprintf(name, sizeof name, "ovf_%zu.onnx", k);
        expect_fail(mb_write(&b, name), ACV_ERANGE, (const char *[]){"arith", CASES[k].op, "overflow", NULL});
    }
    /* in range: still folded (-48 / -1 = 48 makes the shape of a Reshape to [1, 48]) */
    mb b;
    mb_init(&b);
    mb_init_i64(&b, "a", (const int64_t[]){1}, 1, (const int64_t[]){-48}, 1);
    mb_init_i64(&b, "b", (const int64_t[]){1}, 1, (const int64_t[]){-1}, 1);
    mb_node(&b, "Div", "div_ok", (const char *[]){"a", "b", NULL}, (const char *[]){"n", NULL});
    mb_init_i64(&b, "one", (const int64_t[]){1}, 1, (const int64_t[]){1}, 1);
    mb_node(&b, "Concat", "shape", (const char *[]){"one", "n", NULL}, (const char *[]){"s", NULL});
    mb_attr(&b, 1, "axis", (const int64_t[]){0}, -1, false, 0);
    mb_node(&b, "Reshape", "rs", (const char *[]){"x", "s", NULL}, (const char *[]){"y", NULL});
    acv_model *m = NULL;
    assert_int_equal(acv_onnx_import(mb_write(&b, "div_ok.onnx"), NULL, &m), 0);
    assert_int_equal(m->n_classes, 48);
    acv_model_free(m);
}

/* Split with no outputs divided by zero choosing the chunk size. */
static void test_split_no_outputs(void **state)
{
    (void)state;
    mb b;
    mb_init(&b);
    int s = mb_node(&b, "Split", "split0", (const char *[]){"x", NULL}, NULL);
    mb_attr(&b, s, "axis", (const int64_t[]){1}, -1, false, 0);
    mb_flatten_out(&b);
    expect_fail(mb_write(&b, "split0.onnx"), ACV_EFORMAT, (const char *[]){"split0", "Split", "at least one output", NULL});
}

/* HardSigmoid with alpha != 1/6 makes scalar parameters named after the node or its first
 * output; a node with neither read output[0] of an empty list. */
static void test_scalar_without_name_or_outputs(void **state)
{
    (void)state;
    mb b;
    mb_init(&b);
    int h = mb_node(&b, "HardSigmoid", NULL, (const char *[]){"x", NULL}, NULL);
    mb_attr(&b, h, "alpha", NULL, -1, true, 0.3f);
    h = mb_node(&b, "HardSigmoid", "", (const char *[]){"x", NULL}, (const char *[]){"", NULL});
    mb_attr(&b, h, "alpha", NULL, -1, true, 0.25f);
    mb_flatten_out(&b);
    acv_model *m = NULL;
    int rc = acv_onnx_import(mb_write(&b, "hsig.onnx"), NULL, &m);
    if (rc) fail_msg("import failed: %s", acv_errmsg());
    assert_true(acv_graph_find(m->graph, "scalar.alpha6") >= 0);
    assert_true(acv_graph_find(m->graph, "scalar.alpha6_1") >= 0);
    acv_model_free(m);
}

/* A tensor declaring 2^30 elements over 8 bytes of raw_data (or one typed value) is
 * refused from the data's size before an 8 GiB (4 GiB) buffer is allocated. */
static void test_tensor_data_checked_before_alloc(void **state)
{
    (void)state;
    int64_t dims[2] = {1 << 15, 1 << 15};
    int64_t one = 7;
    float fv = 1.0f;
    Onnx__TensorProto t;
    acv__otensor o;

    tensor_proto(&t, ONNX__TENSOR_PROTO__DATA_TYPE__INT64, 2, dims);
    t.has_raw_data = 1;
    t.raw_data.len = sizeof one;
    t.raw_data.data = (uint8_t *)&one;
    cap_address_space((size_t)1 << 30);
    int rc = acv__onnx_tensor_decode(&t, g_dir, "model.onnx: initializer 'big'", &o);
    uncap_address_space();
    assert_int_equal(rc, ACV_EFORMAT);
    assert_msg_has("initializer 'big'");
    assert_msg_has("raw_data holds 8 bytes");
    assert_null(o.i);
    assert_null(o.f);

    tensor_proto(&t, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 2, dims);
    t.n_float_data = 1;
    t.float_data = &fv;
    cap_address_space((size_t)1 << 30);
    rc = acv__onnx_tensor_decode(&t, g_dir, "model.onnx: initializer 'typed'", &o);
    uncap_address_space();
    assert_int_equal(rc, ACV_EFORMAT);
    assert_msg_has("initializer 'typed'");
    assert_msg_has("holds 1 values");
    assert_null(o.f);

    /* a consistent tensor still decodes */
    int64_t d1[1] = {1};
    tensor_proto(&t, ONNX__TENSOR_PROTO__DATA_TYPE__INT64, 1, d1);
    t.has_raw_data = 1;
    t.raw_data.len = sizeof one;
    t.raw_data.data = (uint8_t *)&one;
    assert_int_equal(acv__onnx_tensor_decode(&t, g_dir, "ok", &o), 0);
    assert_int_equal(o.n, 1);
    assert_int_equal(o.i[0], 7);
    acv__otensor_free(&o);
}

/* out = x (shape s, nd dims) transposed by perm. */
static void transpose_ref(float *out, const float *x, const int64_t *s, int nd, const int64_t *perm)
{
    int64_t st[8], os[8], n = 1;
    for (int k = nd - 1; k >= 0; k--) {
        st[k] = n;
        n *= s[k];
    }
    for (int k = 0; k < nd; k++) os[k] = s[perm[k]];
    for (int64_t o = 0; o < n; o++) {
        int64_t r = o, si = 0;
        for (int k = nd - 1; k >= 0; k--) {
            si += (r % os[k]) * st[perm[k]];
            r /= os[k];
        }
        out[o] = x[si];
    }
}

/* x [N, 3, 4, 4] -> Reshape to spec (nd values, spec[0] = 1: the batch) -> Transpose perm
 * -> Flatten: at batch 2, the output is the transposed input and the input's gradient the
 * output's gradient transposed back, exactly. */
static void check_transpose(const int64_t *spec, int nd, const int64_t *perm, const char *name)
{
    mb b;
    mb_init(&b);
    mb_init_i64(&b, "spec", (const int64_t[]){nd}, 1, spec, nd);
    mb_node(&b, "Reshape", "rs", (const char *[]){"x", "spec", NULL}, (const char *[]){"r", NULL});
    int t = mb_node(&b, "Transpose", "tr", (const char *[]){"r", NULL}, (const char *[]){"t", NULL});
    mb_attr(&b, t, "perm", perm, nd, false, 0);
    mb_node(&b, "Flatten", "flat", (const char *[]){"t", NULL}, (const char *[]){"y", NULL});
    acv_model *m = NULL;
    if (acv_onnx_import(mb_write(&b, name), NULL, &m)) fail_msg("%s: %s", name, acv_errmsg());
    acv_graph *g = m->graph;
    acv_id x = acv_graph_input(g), y = acv_graph_output(g);
    acv_graph_want_input_grad(g, x, true);
    assert_int_equal(acv_graph_compile(g, NULL, 2, true), 0);
    assert_int_equal(acv_graph_set_batch(g, 2), 0);
    const int n = 2 * 48;
    float xv[96], gv[96], want[96];
    for (int i = 0; i < n; i++) {
        xv[i] = (float)i;
        gv[i] = (float)(1000 + 7 * i % 97);
    }
    memcpy(acv_graph_data(g, x), xv, sizeof xv);
    assert_int_equal(acv_graph_forward(g, y, true, 0), 0);
    int64_t s[8], os[8], inv[8];
    s[0] = 2;
    for (int k = 1; k < nd; k++) s[k] = spec[k];
    for (int k = 0; k < nd; k++) {
        os[k] = s[perm[k]];
        inv[perm[k]] = k;
    }
    transpose_ref(want, xv, s, nd, perm);
    assert_int_equal(acv_shape_numel(acv_graph_shape(g, y)), n);
    assert_memory_equal(acv_graph_data(g, y), want, sizeof want);
    assert_int_equal(acv_graph_backward_from(g, y, gv), 0);
    transpose_ref(want, gv, os, nd, inv);
    assert_memory_equal(acv_graph_grad(g, x), want, sizeof want);
    acv_model_free(m);
}

static void test_transpose_moves_data(void **state)
{
    (void)state;
    check_transpose((const int64_t[]){1, 3, 4, 4}, 4, (const int64_t[]){0, 1, 3, 2}, "tr_hw.onnx");
    check_transpose((const int64_t[]){1, 3, 16}, 3, (const int64_t[]){0, 2, 1}, "tr_shuffle.onnx");
    check_transpose((const int64_t[]){1, 3, 4, 4}, 4, (const int64_t[]){0, 2, 3, 1}, "tr_nhwc.onnx");
    /* several moves, with dims of size 1 */
    check_transpose((const int64_t[]){1, 3, 2, 1, 2, 4}, 6, (const int64_t[]){0, 5, 3, 2, 1, 4}, "tr_6d.onnx");
    check_transpose((const int64_t[]){1, 1, 3, 2, 8}, 5, (const int64_t[]){0, 4, 2, 1, 3}, "tr_5d.onnx");

    /* refused: more than 16 slices, and moving the batch dim */
    mb b;
    mb_init(&b);
    b.dim[2].dim_value = b.dim[3].dim_value = 20;
    int t = mb_node(&b, "Transpose", "tr_big", (const char *[]){"x", NULL}, (const char *[]){"t", NULL});
    mb_attr(&b, t, "perm", (const int64_t[]){0, 1, 3, 2}, 4, false, 0);
    mb_node(&b, "Flatten", "flat", (const char *[]){"t", NULL}, (const char *[]){"y", NULL});
    expect_fail(mb_write(&b, "tr_big.onnx"), ACV_EUNSUPPORTED, (const char *[]){"tr_big", "20 slices", NULL});
    mb_init(&b);
    t = mb_node(&b, "Transpose", "tr_batch", (const char *[]){"x", NULL}, (const char *[]){"t", NULL});
    mb_attr(&b, t, "perm", (const int64_t[]){1, 0, 2, 3}, 4, false, 0);
    mb_node(&b, "Flatten", "flat", (const char *[]){"t", NULL}, (const char *[]){"y", NULL});
    expect_fail(mb_write(&b, "tr_batch.onnx"), ACV_EUNSUPPORTED, (const char *[]){"tr_batch", "batch dim", NULL});
}

/* An operator the importer does not know is named first, with what to do, even when an
 * earlier node fails too. */
static void test_unknown_op_named_first(void **state)
{
    (void)state;
    mb b;
    mb_init(&b);
    b.dim[2].dim_value = b.dim[3].dim_value = 20;
    int t = mb_node(&b, "Transpose", "tr_big", (const char *[]){"x", NULL}, (const char *[]){"t", NULL});
    mb_attr(&b, t, "perm", (const int64_t[]){0, 1, 3, 2}, 4, false, 0);
    mb_node(&b, "Einsum", "ein", (const char *[]){"t", NULL}, (const char *[]){"l", NULL});
    mb_node(&b, "Flatten", "flat", (const char *[]){"l", NULL}, (const char *[]){"y", NULL});
    expect_fail(mb_write(&b, "ein.onnx"), ACV_EUNSUPPORTED,
                (const char *[]){"node 'ein' (Einsum): operator 'Einsum' is not supported", "convolutional network", NULL});
    /* Erf, Pow and Sqrt are known, but only inside GELU and LayerNorm */
    mb_init(&b);
    mb_node(&b, "Erf", "erf1", (const char *[]){"x", NULL}, (const char *[]){"e", NULL});
    mb_node(&b, "Flatten", "flat", (const char *[]){"e", NULL}, (const char *[]){"y", NULL});
    expect_fail(mb_write(&b, "erf.onnx"), ACV_EUNSUPPORTED, (const char *[]){"node 'erf1' (Erf)", "exact GELU", NULL});
    mb_init(&b);
    mb_node(&b, "Sqrt", "sq1", (const char *[]){"x", NULL}, (const char *[]){"e", NULL});
    mb_node(&b, "Flatten", "flat", (const char *[]){"e", NULL}, (const char *[]){"y", NULL});
    expect_fail(mb_write(&b, "sqrt.onnx"), ACV_EUNSUPPORTED, (const char *[]){"node 'sq1' (Sqrt)", "LayerNorm", NULL});
    mb_init(&b);
    mb_node(&b, "Mul", "sq", (const char *[]){"x", "x", NULL}, (const char *[]){"q", NULL});
    mb_node(&b, "MatMul", "attn", (const char *[]){"x", "q", NULL}, (const char *[]){"a", NULL});
    mb_node(&b, "Flatten", "flat", (const char *[]){"a", NULL}, (const char *[]){"y", NULL});
    expect_fail(mb_write(&b, "attn.onnx"), ACV_EUNSUPPORTED, (const char *[]){"node 'attn' (MatMul)", "attention", NULL});
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transpose_repeated_perm),
        cmocka_unit_test(test_fold_missing_input0),
        cmocka_unit_test(test_fold_int64_overflow),
        cmocka_unit_test(test_split_no_outputs),
        cmocka_unit_test(test_scalar_without_name_or_outputs),
        cmocka_unit_test(test_tensor_data_checked_before_alloc),
        cmocka_unit_test(test_transpose_moves_data),
        cmocka_unit_test(test_unknown_op_named_first),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
