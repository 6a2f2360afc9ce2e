/* ONNX export (see export.h): the engine graph walked in node order, each op emitted as
 * ONNX nodes into protobuf-c messages, packed, and written atomically.
 *
 * Every message, string and array built here is recorded in one list and freed together at
 * the end, so the builders stay straight-line code; an allocation failure is sticky in
 * ex.err. Parameter data is not copied: initializers point raw_data at the graph's own
 * float storage (little-endian hosts only, as ONNX's raw_data is little-endian). */
#include "onnx/export.h"

#include <jansson.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autocv/error.h"
#include "autocv/version.h"
#include "base/file.h"
#include "nn/graph_internal.h"
#include "nn/kernels.h"
#include "onnx.pb-c.h"

#define EX_OPSET 13
#define EX_IR_VERSION 7
#define EX_MAX_ATTRS 8

typedef struct ex {
    acv_graph *g;
    void **mem;                      /* everything allocated, freed at the end */
    size_t nmem, capmem;
    Onnx__NodeProto **nodes;
    size_t nn, capn;
    Onnx__TensorProto **inits;
    size_t ni, capi;
    char **tname;                    /* per engine node: its ONNX tensor name */
    const float **pdata;             /* per parameter node: its data */
    int err;                         /* sticky ACV_ENOMEM */
} ex;

/* ---- allocation ------------------------------------------------------------------------ */

static void *ex_alloc(ex *e, size_t n)
{
    if (e->err) return NULL;
    if (e->nmem == e->capmem) {
        size_t cap = e->capmem ? e->capmem * 2 : 256;
        void **m = realloc(e->mem, cap * sizeof *m);
        if (!m) {
            e->err = ACV_ENOMEM;
            return NULL;
        }
        e->mem = m;
        e->capmem = cap;
    }
    void *p = calloc(1, n ? n : 1);
    if (!p) {
        e->err = ACV_ENOMEM;
        return NULL;
    }
    e->mem[e->nmem++] = p;
    return p;
}

static char *ex_strf(ex *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *ex_strf(ex *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = n >= 0 ? ex_alloc(e, (size_t)n + 1) : NULL;
    if (!s) return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

/* Appends p to a growing pointer array (*arr, *n, *cap). */
static void ex_push(ex *e, void ***arr, size_t *n, size_t *cap, void *p)
{
    if (e->err || !p) return;
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 64;
        void **a = realloc(*arr, c * sizeof *a);
        if (!a) {
            e->err = ACV_ENOMEM;
            return;
        }
        *arr = a;
        *cap = c;
    }
    (*arr)[(*n)++] = p;
}

/* ---- nodes and attributes ----------------------------------------------------------------- */

/* A new ONNX node op(ins...) -> out named name; NULL (sticky error) on allocation failure.
 * Strings are copied; an input "" is an omitted optional input. */
static Onnx__NodeProto *ex_node(ex *e, const char *op, const char *name, int nin, const char *const *ins,
                                const char *out)
{
    Onnx__NodeProto *n = ex_alloc(e, sizeof *n);
    char **in = ex_alloc(e, sizeof(char *) * (size_t)(nin ? nin : 1));
    char **o = ex_alloc(e, sizeof(char *));
    Onnx__AttributeProto **at = ex_alloc(e, sizeof(*at) * EX_MAX_ATTRS);
    if (!n || !in || !o || !at) return NULL;
    onnx__node_proto__init(n);
    for (int i = 0; i < nin; i++) in[i] = ex_strf(e, "%s", ins[i]);
    o[0] = ex_strf(e, "%s", out);
    n->op_type = ex_strf(e, "%s", op);
    n->name = ex_strf(e, "%s", name);
    n->input = in;
    n->n_input = (size_t)nin;
    n->output = o;
    n->n_output = 1;
    n->attribute = at;
    if (e->err) return NULL;
    ex_push(e, (void ***)&e->nodes, &e->nn, &e->capn, n);
    return e->err ? NULL : n;
}

static Onnx__AttributeProto *ex_attr(ex *e, Onnx__NodeProto *n, const char *name, int type)
{
    if (!n) return NULL;
    ACV_ASSERT(n->n_attribute < EX_MAX_ATTRS);
    Onnx__AttributeProto *a = ex_alloc(e, sizeof *a);
    if (!a) return NULL;
    onnx__attribute_proto__init(a);
    a->name = ex_strf(e, "%s", name);
    a->has_type = 1;
    a->type = type;
    n->attribute[n->n_attribute++] = a;
    return a;
}

static void attr_i(ex *e, Onnx__NodeProto *n, const char *name, int64_t v)
{
    Onnx__AttributeProto *a = ex_attr(e, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    if (!a) return;
    a->has_i = 1;
    a->i = v;
}

static void attr_f(ex *e, Onnx__NodeProto *n, const char *name, float v)
{
    Onnx__AttributeProto *a = ex_attr(e, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    if (!a) return;
    a->has_f = 1;
    a->f = v;
}

static void attr_s(ex *e, Onnx__NodeProto *n, const char *name, const char *v)
{
    Onnx__AttributeProto *a = ex_attr(e, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
    char *s = ex_strf(e, "%s", v);
    if (!a || !s) return;
    a->has_s = 1;
    a->s.data = (uint8_t *)s;
    a->s.len = strlen(s);
}

static void attr_ints(ex *e, Onnx__NodeProto *n, const char *name, int cnt, const int64_t *v)
{
    Onnx__AttributeProto *a = ex_attr(e, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    int64_t *d = ex_alloc(e, sizeof(int64_t) * (size_t)cnt);
    if (!a || !d) return;
    memcpy(d, v, sizeof(int64_t) * (size_t)cnt);
    a->ints = d;
    a->n_ints = (size_t)cnt;
}

/* ---- initializers ------------------------------------------------------------------------- */

static Onnx__TensorProto *ex_tensor(ex *e, const char *name, int dtype, int ndim, const int64_t *dims)
{
    Onnx__TensorProto *t = ex_alloc(e, sizeof *t);
    int64_t *d = ex_alloc(e, sizeof(int64_t) * (size_t)(ndim ? ndim : 1));
    if (!t || !d) return NULL;
    onnx__tensor_proto__init(t);
    memcpy(d, dims, sizeof(int64_t) * (size_t)ndim);
    t->name = ex_strf(e, "%s", name);
    t->dims = d;
    t->n_dims = (size_t)ndim;
    t->has_data_type = 1;
    t->data_type = dtype;
    ex_push(e, (void ***)&e->inits, &e->ni, &e->capi, t);
    return e->err ? NULL : t;
}

/* A float initializer pointing at data (not copied; it must outlive the packing). */
static void init_f(ex *e, const char *name, const acv_shape *s, const float *data)
{
    Onnx__TensorProto *t = ex_tensor(e, name, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, s->ndim, s->d);
    if (!t) return;
    t->has_raw_data = 1;
    t->raw_data.data = (uint8_t *)data;
    t->raw_data.len = (size_t)acv_shape_numel(s) * sizeof(float);
}

/* A 1-D int64 initializer (copied). */
static void init_i64(ex *e, const char *name, int n, const int64_t *v)
{
    int64_t dim = n;
    Onnx__TensorProto *t = ex_tensor(e, name, ONNX__TENSOR_PROTO__DATA_TYPE__INT64, 1, &dim);
    int64_t *d = ex_alloc(e, sizeof(int64_t) * (size_t)(n ? n : 1));
    if (!t || !d) return;
    memcpy(d, v, sizeof(int64_t) * (size_t)n);
    t->int64_data = d;
    t->n_int64_data = (size_t)n;
}

/* A float scalar initializer (copied). */
static void init_scalar(ex *e, const char *name, float v)
{
    Onnx__TensorProto *t = ex_tensor(e, name, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 0, NULL);
    float *d = ex_alloc(e, sizeof(float));
    if (!t || !d) return;
    *d = v;
    t->float_data = d;
    t->n_float_data = 1;
}

/* ---- graph inputs and outputs ------------------------------------------------------------- */

/* A float tensor value info; dim 0 is "N" when batched. */
static Onnx__ValueInfoProto *ex_value_info(ex *e, const char *name, const acv_shape *s, bool batched)
{
    Onnx__ValueInfoProto *v = ex_alloc(e, sizeof *v);
    Onnx__TypeProto *tp = ex_alloc(e, sizeof *tp);
    Onnx__TypeProto__Tensor *tt = ex_alloc(e, sizeof *tt);
    Onnx__TensorShapeProto *sh = ex_alloc(e, sizeof *sh);
    Onnx__TensorShapeProto__Dimension **dims = ex_alloc(e, sizeof(*dims) * (size_t)(s->ndim ? s->ndim : 1));
    if (!v || !tp || !tt || !sh || !dims) return NULL;
    onnx__value_info_proto__init(v);
    onnx__type_proto__init(tp);
    onnx__type_proto__tensor__init(tt);
    onnx__tensor_shape_proto__init(sh);
    for (int k = 0; k < s->ndim; k++) {
        Onnx__TensorShapeProto__Dimension *d = ex_alloc(e, sizeof *d);
        if (!d) return NULL;
        onnx__tensor_shape_proto__dimension__init(d);
        if (k == 0 && batched) {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            d->dim_param = ex_strf(e, "N");
        } else {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            d->dim_value = s->d[k];
        }
        dims[k] = d;
    }
    sh->dim = dims;
    sh->n_dim = (size_t)s->ndim;
    tt->has_elem_type = 1;
    tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    tt->shape = sh;
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    v->name = ex_strf(e, "%s", name);
    v->type = tp;
    return e->err ? NULL : v;
}

/* ---- operators ------------------------------------------------------------------------------ */

static int unsupported(const acv_graph *g, acv_id id, const char *why)
{
    const acv_node *nd = &g->nodes[id];
    return acv_error(ACV_EUNSUPPORTED, "node %d '%s' (%s): %s", id, nd->name ? nd->name : "",
                     acv__op_name(nd->op), why);
}

static void window(ex *e, Onnx__NodeProto *n, int kh, int kw, int sh, int sw, const int pads[4])
{
    attr_ints(e, n, "kernel_shape", 2, (int64_t[]){kh, kw});
    attr_ints(e, n, "strides", 2, (int64_t[]){sh, sw});
    attr_ints(e, n, "pads", 4, (int64_t[]){pads[0], pads[1], pads[2], pads[3]});
}

/* Emits the ONNX nodes computing engine node id, whose output tensor is out and whose
 * ONNX node name is nm. Dropout is the caller's business (an alias). */
static int emit(ex *e, acv_id id, const char *nm, const char *out)
{
    const acv_graph *g = e->g;
    const acv_node *nd = &g->nodes[id];
    const acv_attrs *a = &nd->a;
    const char *in[8] = {0};
    int nin = nd->n_in < 8 ? nd->n_in : 8;
    for (int i = 0; i < nin; i++) in[i] = e->tname[nd->in[i]];
    const char *x = in[0];
    Onnx__NodeProto *n = NULL;
    switch (nd->op) {
    case ACV_OP_CONV2D: case ACV_OP_CONVT2D: {
        const acv_conv_attrs *c = &a->conv;
        n = ex_node(e, nd->op == ACV_OP_CONV2D ? "Conv" : "ConvTranspose", nm, nin, in, out);
        window(e, n, c->kh, c->kw, c->stride_h, c->stride_w, (int[]){c->pad_t, c->pad_l, c->pad_b, c->pad_r});
        attr_ints(e, n, "dilations", 2, (int64_t[]){c->dil_h, c->dil_w});
        attr_i(e, n, "group", c->groups);
        if (nd->op == ACV_OP_CONVT2D && (c->out_pad_h || c->out_pad_w))
            attr_ints(e, n, "output_padding", 2, (int64_t[]){c->out_pad_h, c->out_pad_w});
        break;
    }
    case ACV_OP_BATCHNORM:
        if (nin != 5) return unsupported(g, id, "batch norm without its four parameters");
        n = ex_node(e, "BatchNormalization", nm, 5, in, out);
        attr_f(e, n, "epsilon", a->eps);
        break;
    case ACV_OP_ACT:
        switch (a->act) {
        case ACV_ACT_RELU: ex_node(e, "Relu", nm, 1, &x, out); break;
        case ACV_ACT_SIGMOID: ex_node(e, "Sigmoid", nm, 1, &x, out); break;
        case ACV_ACT_TANH: ex_node(e, "Tanh", nm, 1, &x, out); break;
        case ACV_ACT_LEAKY_RELU:
            n = ex_node(e, "LeakyRelu", nm, 1, &x, out);
            attr_f(e, n, "alpha", a->alpha);
            break;
        case ACV_ACT_RELU6: {
            /* Clip takes min and max as inputs since opset 11 */
            char *lo = ex_strf(e, "%s.min", nm), *hi = ex_strf(e, "%s.max", nm);
            if (!lo || !hi) break;
            init_scalar(e, lo, 0.0f);
            init_scalar(e, hi, 6.0f);
            ex_node(e, "Clip", nm, 3, (const char *[]){x, lo, hi}, out);
            break;
        }
        case ACV_ACT_HARDSIGMOID:
            /* relu6(x + 3) / 6 */
            n = ex_node(e, "HardSigmoid", nm, 1, &x, out);
            attr_f(e, n, "alpha", 1.0f / 6.0f);
            attr_f(e, n, "beta", 0.5f);
            break;
        case ACV_ACT_SILU: case ACV_ACT_HARDSWISH: {
            /* x * sigmoid(x) and x * hardsigmoid(x): HardSwish only arrives in opset 14 */
            char *gate = ex_strf(e, "%s.gate", out), *gname = ex_strf(e, "%s.gate", nm);
            if (!gate || !gname) break;
            n = ex_node(e, a->act == ACV_ACT_SILU ? "Sigmoid" : "HardSigmoid", gname, 1, &x, gate);
            if (a->act == ACV_ACT_HARDSWISH) {
                attr_f(e, n, "alpha", 1.0f / 6.0f);
                attr_f(e, n, "beta", 0.5f);
            }
            ex_node(e, "Mul", nm, 2, (const char *[]){x, gate}, out);
            break;
        }
        case ACV_ACT_GELU: {
            /* exact GELU as torch.onnx writes it (Gelu only arrives in opset 20):
             * Mul(Mul(x, Add(Erf(Div(x, sqrt 2)), 1)), 0.5) */
            char *c2 = ex_strf(e, "%s.sqrt2", nm), *c1 = ex_strf(e, "%s.one", nm), *ch = ex_strf(e, "%s.half", nm);
            char *t1 = ex_strf(e, "%s.div", out), *t2 = ex_strf(e, "%s.erf", out), *t3 = ex_strf(e, "%s.add", out);
            char *t4 = ex_strf(e, "%s.mul", out);
            if (!c2 || !c1 || !ch || !t1 || !t2 || !t3 || !t4) break;
            init_scalar(e, c2, 1.41421356237309504880f);
            init_scalar(e, c1, 1.0f);
            init_scalar(e, ch, 0.5f);
            ex_node(e, "Div", ex_strf(e, "%s.div", nm), 2, (const char *[]){x, c2}, t1);
            ex_node(e, "Erf", ex_strf(e, "%s.erf", nm), 1, (const char *[]){t1}, t2);
            ex_node(e, "Add", ex_strf(e, "%s.add", nm), 2, (const char *[]){t2, c1}, t3);
            ex_node(e, "Mul", ex_strf(e, "%s.mul", nm), 2, (const char *[]){x, t3}, t4);
            ex_node(e, "Mul", nm, 2, (const char *[]){t4, ch}, out);
            break;
        }
        default:
            return unsupported(g, id, "this activation has no ONNX equivalent here");
        }
        break;
    case ACV_OP_MAXPOOL: case ACV_OP_AVGPOOL: {
        const acv_pool_attrs *p = &a->pool;
        bool mx = nd->op == ACV_OP_MAXPOOL;
        if (!mx && (p->dil_h != 1 || p->dil_w != 1))
            return unsupported(g, id, "dilated average pooling needs opset 19");
        n = ex_node(e, mx ? "MaxPool" : "AveragePool", nm, 1, &x, out);
        window(e, n, p->kh, p->kw, p->stride_h, p->stride_w, (int[]){p->pad_t, p->pad_l, p->pad_b, p->pad_r});
        if (mx) attr_ints(e, n, "dilations", 2, (int64_t[]){p->dil_h, p->dil_w});
        attr_i(e, n, "ceil_mode", p->ceil_mode);
        if (!mx) attr_i(e, n, "count_include_pad", p->count_include_pad);
        break;
    }
    case ACV_OP_GAP:
        ex_node(e, "GlobalAveragePool", nm, 1, &x, out);
        break;
    case ACV_OP_UPSAMPLE: {
        /* Resize with sizes = concat(shape(x)[0:2], [oh, ow]): the batch stays dynamic */
        if (g->nodes[nd->in[0]].shape.ndim != 4) return unsupported(g, id, "upsampling needs a 4-D input");
        char *shp = ex_strf(e, "%s.shape", out), *nc = ex_strf(e, "%s.nc", out), *sz = ex_strf(e, "%s.sizes", out);
        char *st = ex_strf(e, "%s.nc_starts", nm), *en = ex_strf(e, "%s.nc_ends", nm), *hw = ex_strf(e, "%s.hw", nm);
        if (!shp || !nc || !sz || !st || !en || !hw) break;
        init_i64(e, st, 1, (int64_t[]){0});
        init_i64(e, en, 1, (int64_t[]){2});
        init_i64(e, hw, 2, (int64_t[]){a->oh, a->ow});
        ex_node(e, "Shape", ex_strf(e, "%s.shape", nm), 1, &x, shp);
        ex_node(e, "Slice", ex_strf(e, "%s.nc", nm), 3, (const char *[]){shp, st, en}, nc);
        n = ex_node(e, "Concat", ex_strf(e, "%s.sizes", nm), 2, (const char *[]){nc, hw}, sz);
        attr_i(e, n, "axis", 0);
        n = ex_node(e, "Resize", nm, 4, (const char *[]){x, "", "", sz}, out);
        if (a->bilinear) {
            attr_s(e, n, "mode", "linear");
            attr_s(e, n, "coordinate_transformation_mode", a->align_corners ? "align_corners" : "pytorch_half_pixel");
        } else {
            attr_s(e, n, "mode", "nearest");
            attr_s(e, n, "coordinate_transformation_mode", "asymmetric");
            attr_s(e, n, "nearest_mode", "floor");
        }
        break;
    }
    case ACV_OP_BINARY: {
        static const char *const OPS[] = {"Add", "Sub", "Mul", "Div"};
        if (a->binop < ACV_BIN_ADD || a->binop > ACV_BIN_DIV) return unsupported(g, id, "unknown binary op");
        ex_node(e, OPS[a->binop], nm, 2, in, out);
        break;
    }
    case ACV_OP_CONCAT: {
        const char **ins = ex_alloc(e, sizeof(char *) * (size_t)nd->n_in);
        if (!ins) break;
        for (int i = 0; i < nd->n_in; i++) ins[i] = e->tname[nd->in[i]];
        n = ex_node(e, "Concat", nm, nd->n_in, ins, out);
        attr_i(e, n, "axis", a->axis);
        break;
    }
    case ACV_OP_SLICE: {
        char *st = ex_strf(e, "%s.starts", nm), *en = ex_strf(e, "%s.ends", nm);
        char *ax = ex_strf(e, "%s.axes", nm), *sp = ex_strf(e, "%s.steps", nm);
        if (!st || !en || !ax || !sp) break;
        if (a->step < 1) return unsupported(g, id, "slice step below 1");
        init_i64(e, st, 1, &a->start);
        init_i64(e, en, 1, &a->end);
        init_i64(e, ax, 1, (int64_t[]){a->axis});
        init_i64(e, sp, 1, &a->step);
        ex_node(e, "Slice", nm, 5, (const char *[]){x, st, en, ax, sp}, out);
        break;
    }
    case ACV_OP_RESHAPE:
        if (a->axis > 0) {
            n = ex_node(e, "Flatten", nm, 1, &x, out);
            attr_i(e, n, "axis", a->axis);
        } else {
            char *sp = ex_strf(e, "%s.shape", nm);
            if (!sp) break;
            int64_t spec[ACV_MAX_DIMS];
            memcpy(spec, a->spec, sizeof(int64_t) * (size_t)a->spec_ndim);
            /* a batched reshape written with the batch size it was built at keeps dim 0 */
            if (nd->batched && g->nodes[nd->in[0]].batched && spec[0] > 0 && spec[0] == g->nodes[nd->in[0]].shape.d[0])
                spec[0] = 0;
            init_i64(e, sp, a->spec_ndim, spec);
            ex_node(e, "Reshape", nm, 2, (const char *[]){x, sp}, out);
        }
        break;
    case ACV_OP_LINEAR:
        if (g->nodes[nd->in[0]].shape.ndim != 2) return unsupported(g, id, "linear on a tensor that is not 2-D");
        n = ex_node(e, "Gemm", nm, nin, in, out);
        attr_i(e, n, "transB", 1);
        break;
    case ACV_OP_LAYERNORM: {
        /* opset 13 has no LayerNormalization (opset 17): its decomposition as torch.onnx
         * writes it, over the one axis, with gamma and beta reshaped to broadcast along it */
        int nd_x = g->nodes[nd->in[0]].shape.ndim, ax = a->axis;
        if (nin != 3) return unsupported(g, id, "layer norm without gamma and beta");
        const char *t[9];
        static const char *const SFX[9] = {"mean", "sub", "sq", "var", "veps", "std", "norm", "gshape", "scaled"};
        for (int k = 0; k < 9; k++) t[k] = ex_strf(e, "%s.%s", out, SFX[k]);
        char *ceps = ex_strf(e, "%s.eps", nm);
        const char *ga = in[1], *be = in[2];
        for (int k = 0; k < 9; k++)
            if (!t[k]) return e->err ? e->err : ACV_ENOMEM;
        if (!ceps) break;
        init_scalar(e, ceps, a->eps);
        n = ex_node(e, "ReduceMean", ex_strf(e, "%s.mean", nm), 1, &x, t[0]);
        attr_ints(e, n, "axes", 1, (int64_t[]){ax});
        attr_i(e, n, "keepdims", 1);
        ex_node(e, "Sub", ex_strf(e, "%s.sub", nm), 2, (const char *[]){x, t[0]}, t[1]);
        ex_node(e, "Mul", ex_strf(e, "%s.sq", nm), 2, (const char *[]){t[1], t[1]}, t[2]);
        n = ex_node(e, "ReduceMean", ex_strf(e, "%s.var", nm), 1, &t[2], t[3]);
        attr_ints(e, n, "axes", 1, (int64_t[]){ax});
        attr_i(e, n, "keepdims", 1);
        ex_node(e, "Add", ex_strf(e, "%s.veps", nm), 2, (const char *[]){t[3], ceps}, t[4]);
        ex_node(e, "Sqrt", ex_strf(e, "%s.std", nm), 1, &t[4], t[5]);
        ex_node(e, "Div", ex_strf(e, "%s.norm", nm), 2, (const char *[]){t[1], t[5]}, t[6]);
        if (ax != nd_x - 1) { /* (D) -> (D, 1, ..., 1) */
            int64_t sp[ACV_MAX_DIMS];
            int r = nd_x - ax;
            sp[0] = -1;
            for (int k = 1; k < r; k++) sp[k] = 1;
            init_i64(e, t[7], r, sp);
            char *g2 = ex_strf(e, "%s.gamma", out), *b2 = ex_strf(e, "%s.beta", out);
            if (!g2 || !b2) break;
            ex_node(e, "Reshape", ex_strf(e, "%s.gamma", nm), 2, (const char *[]){ga, t[7]}, g2);
            ex_node(e, "Reshape", ex_strf(e, "%s.beta", nm), 2, (const char *[]){be, t[7]}, b2);
            ga = g2;
            be = b2;
        }
        ex_node(e, "Mul", ex_strf(e, "%s.scale", nm), 2, (const char *[]){t[6], ga}, t[8]);
        ex_node(e, "Add", nm, 2, (const char *[]){t[8], be}, out);
        break;
    }
    case ACV_OP_SOFTMAX:
        n = ex_node(e, a->log ? "LogSoftmax" : "Softmax", nm, 1, &x, out);
        attr_i(e, n, "axis", a->axis);
        break;
    default:
        return unsupported(g, id, "this operator cannot be exported to ONNX");
    }
    return e->err;
}

/* ---- the model ------------------------------------------------------------------------------ */

static Onnx__StringStringEntryProto *meta(ex *e, const char *key, char *value_owned)
{
    Onnx__StringStringEntryProto *p = ex_alloc(e, sizeof *p);
    char *v = value_owned ? ex_strf(e, "%s", value_owned) : NULL;
    free(value_owned);
    if (!p || !v) {
        if (!e->err) e->err = ACV_ENOMEM;
        return NULL;
    }
    onnx__string_string_entry_proto__init(p);
    p->key = ex_strf(e, "%s", key);
    p->value = v;
    return p;
}

static json_t *json_floats(const float *v, int n)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(a, json_real(v[i]));
    return a;
}

static char *strdupf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *strdupf(const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return strdup(buf);
}

/* metadata_props: what a runtime needs to feed the network and read its output. */
static int add_metadata(ex *e, const acv_model *m, Onnx__ModelProto *mp)
{
    Onnx__StringStringEntryProto **p = ex_alloc(e, sizeof(*p) * 12);
    if (!p) return e->err;
    size_t k = 0;
    json_t *cl = json_array();
    for (int i = 0; i < m->n_classes; i++) json_array_append_new(cl, json_string(m->classes[i]));
    p[k++] = meta(e, "classes", json_dumps(cl, JSON_COMPACT));
    json_decref(cl);
    p[k++] = meta(e, "task", strdup(m->task));
    p[k++] = meta(e, "arch", strdup(m->arch));
    p[k++] = meta(e, "input_size", strdupf("[%d, %d]", m->in_h, m->in_w));
    p[k++] = meta(e, "channels", strdupf("%d", m->in_c));
    json_t *nrm = json_object();
    json_object_set_new(nrm, "mean", json_floats(m->mean, m->in_c));
    json_object_set_new(nrm, "std", json_floats(m->std, m->in_c));
    p[k++] = meta(e, "normalization", json_dumps(nrm, JSON_COMPACT | JSON_REAL_PRECISION(9)));
    json_decref(nrm);
    if (m->resize[0]) {
        json_t *pp = json_object();
        json_object_set_new(pp, "resize", json_string(m->resize));
        if (!strcmp(m->resize, "crop")) json_object_set_new(pp, "crop_frac", json_real(m->crop_frac));
        p[k++] = meta(e, "preprocess", json_dumps(pp, JSON_COMPACT));
        json_decref(pp);
    }
    if (m->score_thr) { /* a detector's per-class thresholds (autocv/model.h) */
        json_t *th = json_array();
        for (int i = 0; i < m->n_classes; i++)
            json_array_append_new(th, json_real(round((double)m->score_thr[i] * 1e6) / 1e6));
        json_t *post = json_pack("{s:o}", "score_thresholds", th);
        p[k++] = meta(e, "postprocess", json_dumps(post, JSON_COMPACT));
        json_decref(post);
    }
    p[k++] = meta(e, "autocv_version", strdup(AUTOCV_VERSION));
    mp->metadata_props = p;
    mp->n_metadata_props = k;
    return e->err;
}

/* Builds the ModelProto into e's memory; the caller packs it, then frees e. */
static int build(ex *e, const acv_model *m, Onnx__ModelProto *mp)
{
    acv_graph *g = m->graph;
    int rc = acv_graph_status(g);
    if (rc) return acv_error(rc, "the model's graph has an error");
    acv_id out = acv_graph_output(g), xin = acv_graph_input(g);
    if (out < 0 || xin < 0) return acv_error(ACV_EINVAL, "the model's graph has no %s", out < 0 ? "output" : "input");
    int nn = g->n;
    char *need = ex_alloc(e, (size_t)nn);
    e->tname = ex_alloc(e, sizeof(char *) * (size_t)nn);
    e->pdata = ex_alloc(e, sizeof(float *) * (size_t)nn);
    if (e->err) return e->err;
    /* the nodes the output depends on (nodes are in topological order) */
    need[out] = 1;
    for (acv_id i = out; i >= 0; i--)
        if (need[i])
            for (int k = 0; k < g->nodes[i].n_in; k++) need[g->nodes[i].in[k]] = 1;
    for (acv_id i = 0; i < nn; i++)
        if (need[i] && g->nodes[i].op == ACV_OP_INPUT && i != xin)
            return unsupported(g, i, "a second graph input (only one is exported)");
    int np = acv_graph_param_count(g);
    for (int i = 0; i < np; i++) {
        acv_param_info pi;
        if ((rc = acv_graph_param(g, i, &pi))) return rc;
        e->pdata[pi.id] = pi.data;
    }
    Onnx__ValueInfoProto *gin = NULL, *gout = NULL;
    for (acv_id i = 0; i < nn && !e->err; i++) {
        if (!need[i]) continue;
        const acv_node *nd = &g->nodes[i];
        const char *name = nd->name && nd->name[0] ? nd->name : NULL;
        if (nd->op == ACV_OP_INPUT) {
            e->tname[i] = ex_strf(e, "%s", name ? name : "input");
            gin = ex_value_info(e, e->tname[i], &nd->shape, true);
            continue;
        }
        if (nd->op == ACV_OP_PARAM) {
            if (!e->pdata[i]) return unsupported(g, i, "a parameter without data");
            e->tname[i] = name ? ex_strf(e, "%s", name) : ex_strf(e, "param_%d", i);
            init_f(e, e->tname[i], &nd->shape, e->pdata[i]);
            continue;
        }
        if (nd->op == ACV_OP_DROPOUT && i != out) { /* identity at inference */
            e->tname[i] = e->tname[nd->in[0]];
            continue;
        }
        const char *opn = acv__op_name(nd->op);
        char *nm = name ? ex_strf(e, "%s", name) : ex_strf(e, "%s_%d", opn, i);
        char *tn = i == out ? ex_strf(e, "output") : ex_strf(e, "%s:%d", name ? name : opn, i);
        if (!nm || !tn) break;
        e->tname[i] = tn;
        if (nd->op == ACV_OP_DROPOUT) ex_node(e, "Identity", nm, 1, (const char *[]){e->tname[nd->in[0]]}, tn);
        else if ((rc = emit(e, i, nm, tn))) return rc;
    }
    if (e->err) return e->err;
    if (out == xin) return acv_error(ACV_EINVAL, "the model's output is its input");
    gout = ex_value_info(e, "output", &g->nodes[out].shape, g->nodes[out].batched);
    if (!gin || !gout) return e->err ? e->err : ACV_ENOMEM;

    Onnx__GraphProto *gp = ex_alloc(e, sizeof *gp);
    Onnx__ValueInfoProto **ins = ex_alloc(e, sizeof *ins), **outs = ex_alloc(e, sizeof *outs);
    Onnx__OperatorSetIdProto *os = ex_alloc(e, sizeof *os), **osv = ex_alloc(e, sizeof *osv);
    if (e->err) return e->err;
    onnx__graph_proto__init(gp);
    ins[0] = gin;
    outs[0] = gout;
    gp->name = ex_strf(e, "%s", m->arch[0] ? m->arch : "autocv");
    gp->node = e->nodes;
    gp->n_node = e->nn;
    gp->initializer = e->inits;
    gp->n_initializer = e->ni;
    gp->input = ins;
    gp->n_input = 1;
    gp->output = outs;
    gp->n_output = 1;
    onnx__operator_set_id_proto__init(os);
    os->domain = ex_strf(e, "%s", "");
    os->has_version = 1;
    os->version = EX_OPSET;
    osv[0] = os;
    onnx__model_proto__init(mp);
    mp->has_ir_version = 1;
    mp->ir_version = EX_IR_VERSION;
    mp->opset_import = osv;
    mp->n_opset_import = 1;
    mp->producer_name = ex_strf(e, "autocv");
    mp->producer_version = ex_strf(e, "%s", AUTOCV_VERSION);
    mp->graph = gp;
    return add_metadata(e, m, mp);
}

static void ex_free(ex *e)
{
    for (size_t i = 0; i < e->nmem; i++) free(e->mem[i]);
    free(e->mem);
    free(e->nodes);
    free(e->inits);
}

int acv_onnx_export_bytes(const acv_model *m, uint8_t **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    ex e = {0};
    e.g = m->graph;
    Onnx__ModelProto mp;
    int rc = build(&e, m, &mp);
    if (e.err && (!rc || rc == e.err)) rc = acv_error(ACV_ENOMEM, "out of memory building the ONNX model");
    if (!rc) {
        size_t n = onnx__model_proto__get_packed_size(&mp);
        uint8_t *buf = malloc(n ? n : 1);
        if (!buf) rc = acv_error(ACV_ENOMEM, "out of memory packing the ONNX model (%zu bytes)", n);
        else {
            onnx__model_proto__pack(&mp, buf);
            *out = buf;
            *len = n;
        }
    }
    ex_free(&e);
    return rc;
}

int acv_onnx_export(const acv_model *m, const char *path)
{
    uint8_t *buf;
    size_t len;
    int rc = acv_onnx_export_bytes(m, &buf, &len);
    if (rc) return acv_error_prefix(rc, "%s: ", path);
    rc = acv_file_write_atomic(path, buf, len);
    free(buf);
    return rc;
}
