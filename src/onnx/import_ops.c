/* Translation of ONNX operators into engine graph nodes (one function per operator
 * family). Each reads the current node (c->node) through the value table and sets its
 * outputs; anything it cannot express exactly fails with an error naming the node. */
#include "onnx/import_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "autocv/error.h"
#include "nn/kernels.h"

/* Input k as a graph node (constants become parameters). */
static int need(acv__ictx *c, size_t k, acv__oval **v, acv_id *id)
{
    *id = -1;
    *v = acv__in(c, k);
    if (!*v) return acv__nerr(c, ACV_EFORMAT, "input %zu is missing", k);
    *id = acv__node_of(c, *v, false);
    return *id < 0 ? *id : 0;
}

/* Refuses a second output that the graph reads (mask, indices, saved statistics). */
static int one_output(acv__ictx *c)
{
    for (size_t k = 1; k < c->node->n_output; k++)
        if (c->node->output[k] && *c->node->output[k])
            return acv__nerr(c, ACV_EUNSUPPORTED, "output %zu ('%s') is not supported", k, c->node->output[k]);
    return 0;
}

static const acv_shape *shp(acv__ictx *c, acv_id id) { return acv_graph_shape(c->g, id); }

acv_id acv__reshape_node(acv__ictx *c, acv__oval *x, const acv_shape *out, int batch_pos)
{
    acv_id xi = acv__node_of(c, x, false);
    if (xi < 0) return xi;
    int64_t spec[ACV_MAX_DIMS];
    for (int k = 0; k < out->ndim; k++) spec[k] = out->d[k];
    if (x->batched && batch_pos == 0) spec[0] = 0;
    else if (x->batched && batch_pos > 0) spec[batch_pos] = -1;
    const acv_shape *xs = shp(c, xi);
    bool same = xs->ndim == out->ndim;
    for (int k = 0; same && k < out->ndim; k++) same = xs->d[k] == out->d[k];
    if (same) return xi;
    return acv_reshape(c->g, xi, out->ndim, spec);
}

/* ---- convolution ---------------------------------------------------------------------- */

static int auto_pad(acv__ictx *c, const char *mode, int64_t in, int k, int s, int d, int *pb, int *pe)
{
    if (!strcmp(mode, "NOTSET")) return 0;
    if (!strcmp(mode, "VALID")) {
        *pb = *pe = 0;
        return 0;
    }
    if (strcmp(mode, "SAME_UPPER") && strcmp(mode, "SAME_LOWER"))
        return acv__nerr(c, ACV_EUNSUPPORTED, "auto_pad '%s' is not supported", mode);
    int64_t out = (in + s - 1) / s, total = (out - 1) * s + (int64_t)(k - 1) * d + 1 - in;
    if (total < 0) total = 0;
    *pb = (int)(mode[5] == 'U' ? total / 2 : total - total / 2);
    *pe = (int)total - *pb;
    return 0;
}

/* kernel_shape, strides, dilations, pads and auto_pad of a 2-D conv or pool. */
static int window_attrs(acv__ictx *c, int64_t H, int64_t W, int kh, int kw, int *st, int *dil, int *pads,
                        bool transposed)
{
    int64_t v[8];
    int n, rc;
    if ((rc = acv__attr_ints(c, "kernel_shape", v, 8, &n))) return rc;
    if (n >= 0 && (n != 2 || (kh > 0 && (v[0] != kh || v[1] != kw))))
        return acv__nerr(c, ACV_EUNSUPPORTED, "kernel_shape must be 2-D and match the weights");
    if ((rc = acv__attr_ints(c, "strides", v, 8, &n))) return rc;
    st[0] = n == 2 ? (int)v[0] : 1;
    st[1] = n == 2 ? (int)v[1] : 1;
    if (n >= 0 && n != 2) return acv__nerr(c, ACV_EUNSUPPORTED, "strides must have 2 values");
    if ((rc = acv__attr_ints(c, "dilations", v, 8, &n))) return rc;
    dil[0] = n == 2 ? (int)v[0] : 1;
    dil[1] = n == 2 ? (int)v[1] : 1;
    if (n >= 0 && n != 2) return acv__nerr(c, ACV_EUNSUPPORTED, "dilations must have 2 values");
    if ((rc = acv__attr_ints(c, "pads", v, 8, &n))) return rc;
    if (n >= 0 && n != 4) return acv__nerr(c, ACV_EUNSUPPORTED, "pads must have 4 values");
    for (int k = 0; k < 4; k++) {
        pads[k] = n == 4 ? (int)v[k] : 0;
        if (n == 4 && (v[k] < 0 || v[k] > 65536)) return acv__nerr(c, ACV_EUNSUPPORTED, "pad %lld out of range", (long long)v[k]);
    }
    for (int k = 0; k < 2; k++)
        if (st[k] < 1 || st[k] > 4096 || dil[k] < 1 || dil[k] > 4096)
            return acv__nerr(c, ACV_EINVAL, "strides and dilations must be in 1..4096");
    char b[32];
    const char *ap = acv__attr_s(c, "auto_pad", "NOTSET", b, sizeof b);
    if (transposed) return strcmp(ap, "NOTSET") ? 1 : 0; /* handled by the caller */
    /* pads order: [top, left, bottom, right] */
    if ((rc = auto_pad(c, ap, H, kh, st[0], dil[0], &pads[0], &pads[2]))) return rc;
    return auto_pad(c, ap, W, kw, st[1], dil[1], &pads[1], &pads[3]);
}

static int op_conv(acv__ictx *c, bool transposed)
{
    int rc = acv__check_attrs(c, transposed ? "auto_pad,dilations,group,kernel_shape,output_padding,output_shape,pads,strides"
                                            : "auto_pad,dilations,group,kernel_shape,pads,strides");
    if (rc) return rc;
    acv__oval *X = acv__in(c, 0), *Wv = acv__in(c, 1), *Bv = acv__in(c, 2);
    if (!X || !Wv) return acv__nerr(c, ACV_EFORMAT, "input or weight is missing");
    if (Wv->kind != ACV__V_CONST) return acv__nerr(c, ACV_EUNSUPPORTED, "weights computed at run time are not supported");
    if (Wv->c.shape.ndim != 4) return acv__nerr(c, ACV_EUNSUPPORTED, "only 2-D convolutions are supported (weight has %d dims)", Wv->c.shape.ndim);
    if (Bv && Bv->kind != ACV__V_CONST) return acv__nerr(c, ACV_EUNSUPPORTED, "a bias computed at run time is not supported");
    int pads_extra[4] = {0, 0, 0, 0};
    if (X->kind == ACV__V_PAD && !transposed) { /* merge a zero Pad into the convolution */
        for (int k = 0; k < 4; k++) pads_extra[k] = (int)X->pads[k];
        X = &c->v[X->src];
    }
    acv_id x = acv__node_of(c, X, false);
    if (x < 0) return x;
    const acv_shape *xs = shp(c, x);
    if (xs->ndim != 4) return acv__nerr(c, ACV_EUNSUPPORTED, "input must be 4-D NCHW");
    int kh = (int)Wv->c.shape.d[2], kw = (int)Wv->c.shape.d[3], st[2], dil[2], pads[4];
    rc = window_attrs(c, xs->d[2] + pads_extra[0] + pads_extra[2], xs->d[3] + pads_extra[1] + pads_extra[3], kh, kw, st,
                      dil, pads, transposed);
    if (rc < 0) return rc;
    bool tr_auto = rc == 1;
    int64_t grp = acv__attr_i(c, "group", 1);
    if (grp < 1 || grp > 1 << 20) return acv__nerr(c, ACV_EINVAL, "group %lld", (long long)grp);
    acv_conv_attrs a = {kh, kw, st[0], st[1], pads[0] + pads_extra[0], pads[1] + pads_extra[1], pads[2] + pads_extra[2],
                        pads[3] + pads_extra[3], dil[0], dil[1], (int)grp, 0, 0};
    if (transposed) {
        int64_t v[4];
        int n;
        if ((rc = acv__attr_ints(c, "output_padding", v, 4, &n))) return rc;
        if (n == 2) {
            a.out_pad_h = (int)v[0];
            a.out_pad_w = (int)v[1];
        } else if (n >= 0) return acv__nerr(c, ACV_EUNSUPPORTED, "output_padding must have 2 values");
        if ((rc = acv__attr_ints(c, "output_shape", v, 4, &n))) return rc;
        if (n >= 0 || tr_auto) {
            char b[32];
            const char *ap = acv__attr_s(c, "auto_pad", "NOTSET", b, sizeof b);
            if (!strcmp(ap, "VALID")) a.pad_t = a.pad_l = a.pad_b = a.pad_r = 0;
            else {
                if (n >= 0 && n != 2) return acv__nerr(c, ACV_EUNSUPPORTED, "output_shape must have 2 values");
                int64_t o[2] = {n == 2 ? v[0] : xs->d[2] * st[0], n == 2 ? v[1] : xs->d[3] * st[1]};
                for (int k = 0; k < 2; k++) {
                    int64_t in = xs->d[2 + k], kk = k ? kw : kh;
                    int64_t total = (int64_t)st[k] * (in - 1) + (k ? a.out_pad_w : a.out_pad_h) + (kk - 1) * dil[k] + 1 - o[k];
                    if (total < 0) return acv__nerr(c, ACV_EUNSUPPORTED, "output_shape needs negative padding");
                    int lo = (int)(strcmp(ap, "SAME_LOWER") ? total / 2 : total - total / 2), hi = (int)total - lo;
                    if (k == 0) { a.pad_t = lo; a.pad_b = hi; } else { a.pad_l = lo; a.pad_r = hi; }
                }
            }
        }
    }
    acv_id w = acv__node_of(c, Wv, true), b = -1;
    if (w < 0) return w;
    if (Bv && (b = acv__node_of(c, Bv, true)) < 0) return b;
    acv_id y = transposed ? acv_convt2d_ex(c->g, NULL, x, w, b, &a) : acv_conv2d_ex(c->g, NULL, x, w, b, &a);
    return acv__set_node(c, 0, y, X->batched);
}

static int op_batchnorm(acv__ictx *c)
{
    int rc = acv__check_attrs(c, "epsilon,momentum,training_mode");
    if (rc || (rc = one_output(c))) return rc;
    if (acv__attr_i(c, "training_mode", 0)) return acv__nerr(c, ACV_EUNSUPPORTED, "training_mode=1 is not supported");
    acv__oval *X, *P[4];
    acv_id x, p[4];
    if ((rc = need(c, 0, &X, &x))) return rc;
    for (int k = 0; k < 4; k++) {
        P[k] = acv__in(c, (size_t)k + 1);
        if (!P[k] || P[k]->kind != ACV__V_CONST)
            return acv__nerr(c, ACV_EUNSUPPORTED, "scale, bias, mean and variance must be constants");
        if ((p[k] = acv__node_of(c, P[k], k < 2)) < 0) return p[k];
    }
    float eps = acv__attr_f(c, "epsilon", 1e-5f), mom = acv__attr_f(c, "momentum", 0.9f);
    acv_id y = acv_batchnorm_ex(c->g, NULL, x, p[0], p[1], p[2], p[3], eps, 1.0f - mom);
    return acv__set_node(c, 0, y, X->batched);
}

/* ---- activations ---------------------------------------------------------------------- */

/* A scalar constant parameter (shape [1]). */
static acv_id scalar(acv__ictx *c, const char *tag, float v)
{
    float *d = malloc(sizeof(float));
    if (!d) return acv_error(ACV_ENOMEM, "out of memory");
    d[0] = v;
    /* named after the node, else its first output, else a fixed name (made unique) */
    const Onnx__NodeProto *n = c->node;
    const char *base = "scalar";
    if (n->name && *n->name) base = n->name;
    else if (n->n_output > 0 && n->output[0] && *n->output[0]) base = n->output[0];
    char nm[300];
    snprintf(nm, sizeof nm, "%s.%s", base, tag);
    acv_shape s = acv_shape_make(1, 1, 0, 0, 0);
    return acv__new_param(c, nm, &s, d, false);
}

static int op_act(acv__ictx *c, int kind, const char *attrs)
{
    acv__oval *X;
    acv_id x;
    int rc = acv__check_attrs(c, attrs);
    if (rc || (rc = need(c, 0, &X, &x))) return rc;
    float alpha = kind == ACV_ACT_LEAKY_RELU ? acv__attr_f(c, "alpha", 0.01f) : 0;
    if (kind == ACV_ACT_HARDSIGMOID) {
        float al = acv__attr_f(c, "alpha", 0.2f), be = acv__attr_f(c, "beta", 0.5f);
        /* ours is clip(t/6 + 0.5, 0, 1): t = 6*(alpha*x + beta - 0.5) */
        if (fabsf(al - 1.0f / 6) > 1e-7f || be != 0.5f) {
            acv_id s = scalar(c, "alpha6", 6 * al), o = scalar(c, "beta6", 6 * (be - 0.5f));
            if (s < 0 || o < 0) return s < 0 ? s : o;
            x = acv_binary(c->g, ACV_BIN_MUL, x, s);
            if (be != 0.5f) x = acv_binary(c->g, ACV_BIN_ADD, x, o);
        }
    }
    return acv__set_node(c, 0, acv_activation(c->g, x, kind, alpha), X->batched);
}

static int op_clip(acv__ictx *c)
{
    acv__oval *X;
    acv_id x;
    int rc = acv__check_attrs(c, "");
    if (rc || (rc = need(c, 0, &X, &x))) return rc;
    float lo = -INFINITY, hi = INFINITY;
    if (acv__in(c, 1) && (rc = acv__const_float(c, acv__in(c, 1), "min", &lo))) return rc;
    if (acv__in(c, 2) && (rc = acv__const_float(c, acv__in(c, 2), "max", &hi))) return rc;
    acv_id y;
    if (lo == 0 && hi == 6) y = acv_activation(c->g, x, ACV_ACT_RELU6, 0);
    else if (lo == 0 && isinf(hi)) y = acv_activation(c->g, x, ACV_ACT_RELU, 0);
    else {
        /* max(x, lo) = relu(x - lo) + lo; min(y, hi) = hi - relu(hi - y) */
        y = x;
        if (!isinf(lo)) {
            acv_id l = scalar(c, "min", lo);
            if (l < 0) return l;
            y = acv_binary(c->g, ACV_BIN_ADD, acv_relu(c->g, acv_binary(c->g, ACV_BIN_SUB, y, l)), l);
        }
        if (!isinf(hi)) {
            acv_id h = scalar(c, "max", hi);
            if (h < 0) return h;
            y = acv_binary(c->g, ACV_BIN_SUB, h, acv_relu(c->g, acv_binary(c->g, ACV_BIN_SUB, h, y)));
        }
    }
    return acv__set_node(c, 0, y, X->batched);
}

/* ---- LayerNorm and GELU decompositions, channels-last values ------------------------------ */

/* Sets output 0 to node id, channels-last (see acv__oval.nhwc) when nhwc. */
static int set_out(acv__ictx *c, acv_id id, bool batched, bool nhwc)
{
    int rc = acv__set_node(c, 0, id, batched);
    if (rc || !nhwc || c->node->n_output < 1 || !c->node->output[0] || !*c->node->output[0]) return rc;
    int i = acv__val_find(c, c->node->output[0]);
    if (i >= 0) c->v[i].nhwc = true;
    return 0;
}

static bool lazy_kind(const acv__oval *v)
{
    return v->kind == ACV__V_NODE || v->kind == ACV__V_LN || v->kind == ACV__V_GELU;
}


/* The graph axis of ONNX axis a of X (a channels-last value's dims are N, H, W, C). */
static int eng_axis(const acv__oval *X, int a)
{
    static const int NHWC[4] = {0, 2, 3, 1};
    return X->nhwc && a >= 0 && a < 4 ? NHWC[a] : a;
}

/* Index of value v in the table. */
static int vidx(acv__ictx *c, const acv__oval *v) { return (int)(v - c->v); }

/* Whether v is the same tensor as the value at index src (itself or an alias of its node). */
static bool same_src(acv__ictx *c, const acv__oval *v, int src)
{
    const acv__oval *s = &c->v[src];
    if (v == s) return true;
    return v->kind == ACV__V_NODE && s->kind == ACV__V_NODE && v->id == s->id && v->nhwc == s->nhwc;
}

/* The size of the normalized axis of a pending LayerNorm. */
static int64_t ln_dim(acv__ictx *c, const acv__oval *v)
{
    return shp(c, c->v[v->src].id)->d[v->axis];
}

/* Whether constant K holds one value per position of the pending LayerNorm P's axis and
 * broadcasts along that axis only (its other dims, right-aligned to the value's rank, are 1). */
static bool const_along(acv__ictx *c, const acv__oval *K, const acv__oval *P)
{
    static const int TO_NHWC[4] = {0, 3, 1, 2};
    if (K->kind != ACV__V_CONST || K->c.n != ln_dim(c, P)) return false;
    int r = shp(c, c->v[P->src].id)->ndim, ax = P->nhwc && P->axis < 4 ? TO_NHWC[P->axis] : P->axis;
    if (K->c.shape.ndim > r) return false;
    for (int i = 0; i < K->c.shape.ndim; i++)
        if (r - K->c.shape.ndim + i != ax && K->c.shape.d[i] != 1) return false;
    return true;
}

static bool const_scalar(const acv__oval *v, float *out)
{
    if (!v || v->kind != ACV__V_CONST || v->c.n != 1) return false;
    *out = v->c.is_int ? (float)v->c.i[0] : v->c.f[0];
    return true;
}

static acv_id scalar(acv__ictx *c, const char *tag, float v);

/* A new trainable parameter of n values all v, named after the current node. */
static acv_id filled_param(acv__ictx *c, const char *tag, int64_t n, float v)
{
    float *d = malloc((size_t)(n ? n : 1) * sizeof(float));
    if (!d) return acv_error(ACV_ENOMEM, "out of memory");
    for (int64_t k = 0; k < n; k++) d[k] = v;
    const Onnx__NodeProto *nd = c->node;
    char nm[300];
    snprintf(nm, sizeof nm, "%s.%s", nd->n_output > 0 && nd->output[0] && *nd->output[0] ? nd->output[0] : "layernorm", tag);
    acv_shape s = acv_shape_make(1, n, 0, 0, 0);
    return acv__new_param(c, nm, &s, d, true);
}

/* A layer norm of the pending value's source over its axis with gamma and beta (-1: ones,
 * zeros, as new trainable parameters). */
static acv_id ln_node(acv__ictx *c, const acv__oval *v, acv_id gamma, acv_id beta)
{
    int src = v->src, axis = v->axis;
    float eps = v->eps;
    int64_t d = ln_dim(c, v);
    if (gamma < 0) gamma = filled_param(c, "weight", d, 1.0f);
    if (gamma < 0) return gamma;
    if (beta < 0) beta = filled_param(c, "bias", d, 0.0f);
    if (beta < 0) return beta;
    acv_id y = acv_layernorm_ex(c->g, NULL, c->v[src].id, gamma, beta, axis, eps);
    if (y < 0 || acv_graph_status(c->g)) return acv__nerr(c, acv_graph_status(c->g) ? acv_graph_status(c->g) : y, "%s", acv_errmsg());
    return y;
}

acv_id acv__pending_node(acv__ictx *c, acv__oval *v)
{
    if (v->kind == ACV__V_LN) {
        if (v->stage == ACV__LN_NORM) return ln_node(c, v, -1, -1);
        if (v->stage == ACV__LN_SCALED) return ln_node(c, v, v->gamma, -1);
        return acv__nerr(c, ACV_EUNSUPPORTED, "'%s' is part of a LayerNorm decomposition (ReduceMean, Sub, Pow, ReduceMean, "
                         "Add, Sqrt, Div over one axis) that is used otherwise: a mean over one axis, a square or a square "
                         "root alone is not supported", v->name);
    }
    acv_id x = c->v[v->src].id;
    switch (v->stage) {
    case ACV__GELU_DIV: {
        acv_id s = scalar(c, "div", v->eps);
        return s < 0 ? s : acv_binary(c->g, ACV_BIN_DIV, x, s);
    }
    case ACV__GELU_X: { /* x * (1 + erf(x / sqrt 2)) = 2 gelu(x) */
        acv_id s = scalar(c, "two", 2.0f);
        return s < 0 ? s : acv_binary(c->g, ACV_BIN_MUL, acv_activation(c->g, x, ACV_ACT_GELU, 0), s);
    }
    default:
        return acv__nerr(c, ACV_EUNSUPPORTED, "'%s' is part of an exact GELU (Div by sqrt 2, Erf, Add 1, Mul, Mul 0.5) that "
                         "is used otherwise: Erf alone is not supported", v->name);
    }
}

/* A pending value of kind/stage from the source at index src. */
static int set_pending(acv__ictx *c, acv__vkind kind, int stage, int src, int axis, float eps, acv_id gamma)
{
    acv__oval p = {.id = -1, .mat = -1};
    p.kind = kind;
    p.stage = stage;
    p.src = src;
    p.axis = axis;
    p.eps = eps;
    p.gamma = gamma;
    p.batched = c->v[src].batched;
    p.nhwc = c->v[src].nhwc;
    return acv__set_alias(c, 0, &p);
}

/* A constant operand of a channels-last value, as a parameter in the graph's NCHW order:
 * its shape right-aligned to (N, H, W, C) is permuted to (N, C, H, W). */
static acv_id nhwc_const(acv__ictx *c, acv__oval *K)
{
    const acv_shape *ks = &K->c.shape;
    if (ks->ndim > 4) return acv__nerr(c, ACV_EUNSUPPORTED, "a constant of %d dims with a channels-last tensor", ks->ndim);
    int64_t d[4] = {1, 1, 1, 1};
    for (int k = 0; k < ks->ndim; k++) d[4 - ks->ndim + k] = ks->d[k];
    float *src = acv__const_floats(&K->c), *dst = malloc((size_t)(K->c.n ? K->c.n : 1) * sizeof(float));
    if (!src || !dst) {
        free(src);
        free(dst);
        return acv_error(ACV_ENOMEM, "out of memory");
    }
    /* src (n, h, w, c) -> dst (n, c, h, w) */
    for (int64_t n = 0; n < d[0]; n++)
        for (int64_t h = 0; h < d[1]; h++)
            for (int64_t w = 0; w < d[2]; w++)
                for (int64_t ch = 0; ch < d[3]; ch++)
                    dst[((n * d[3] + ch) * d[1] + h) * d[2] + w] = src[((n * d[1] + h) * d[2] + w) * d[3] + ch];
    free(src);
    acv_shape s = ks->ndim == 0 ? acv_shape_make(1, 1, 0, 0, 0) : acv_shape_make(4, d[0], d[3], d[1], d[2]);
    return acv__new_param(c, K->name, &s, dst, true);
}

static int op_binary(acv__ictx *c, int bop)
{
    acv__oval *A, *B;
    acv_id a, b;
    int rc = acv__check_attrs(c, "");
    if (rc) return rc;
    A = acv__in(c, 0);
    B = acv__in(c, 1);
    if (!A || !B) return acv__nerr(c, ACV_EFORMAT, "input missing");
    float f;
    /* the LayerNorm and GELU decompositions, stage by stage */
    for (int sw = 0; sw < 2; sw++) {
        acv__oval *P = sw ? B : A, *Q = sw ? A : B; /* P pending (or the node), Q the other operand */
        bool commutes = bop == ACV_BIN_ADD || bop == ACV_BIN_MUL;
        if (sw && !commutes) break;
        if (P->kind == ACV__V_LN) {
            if (bop == ACV_BIN_MUL && P->stage == ACV__LN_CENTER && Q->kind == ACV__V_LN && Q->stage == ACV__LN_CENTER &&
                Q->src == P->src)
                return set_pending(c, ACV__V_LN, ACV__LN_SQ, P->src, P->axis, 0, -1);
            if (bop == ACV_BIN_ADD && P->stage == ACV__LN_VAR && const_scalar(Q, &f) && f >= 0)
                return set_pending(c, ACV__V_LN, ACV__LN_VAREPS, P->src, P->axis, f, -1);
            if (bop == ACV_BIN_DIV && P->stage == ACV__LN_CENTER && Q->kind == ACV__V_LN && Q->stage == ACV__LN_STD &&
                Q->src == P->src)
                return set_pending(c, ACV__V_LN, ACV__LN_NORM, P->src, P->axis, Q->eps, -1);
            if (bop == ACV_BIN_MUL && P->stage == ACV__LN_NORM && const_along(c, Q, P)) {
                int pi = vidx(c, P);
                acv_id g = acv__node_of(c, Q, true);
                if (g < 0) return g;
                P = &c->v[pi];
                return set_pending(c, ACV__V_LN, ACV__LN_SCALED, P->src, P->axis, P->eps, g);
            }
            if (bop == ACV_BIN_ADD && (P->stage == ACV__LN_SCALED || P->stage == ACV__LN_NORM) &&
                const_along(c, Q, P)) {
                int pi = vidx(c, P);
                acv_id be = acv__node_of(c, Q, true);
                if (be < 0) return be;
                P = &c->v[pi];
                bool batched = P->batched, nhwc = P->nhwc;
                return set_out(c, ln_node(c, P, P->stage == ACV__LN_SCALED ? P->gamma : -1, be), batched, nhwc);
            }
        }
        if (P->kind == ACV__V_GELU) {
            if (bop == ACV_BIN_ADD && P->stage == ACV__GELU_ERF && const_scalar(Q, &f) && f == 1.0f)
                return set_pending(c, ACV__V_GELU, ACV__GELU_ERF1, P->src, 0, 0, -1);
            if (bop == ACV_BIN_MUL && P->stage == ACV__GELU_ERF1 && same_src(c, Q, P->src))
                return set_pending(c, ACV__V_GELU, ACV__GELU_X, P->src, 0, 0, -1);
            if (bop == ACV_BIN_MUL && P->stage == ACV__GELU_X && const_scalar(Q, &f) && f == 0.5f) {
                acv__oval *S = &c->v[P->src];
                return set_out(c, acv_activation(c->g, S->id, ACV_ACT_GELU, 0), S->batched, S->nhwc);
            }
        }
    }
    if (bop == ACV_BIN_SUB && B->kind == ACV__V_LN && B->stage == ACV__LN_MEAN && same_src(c, A, B->src))
        return set_pending(c, ACV__V_LN, ACV__LN_CENTER, B->src, B->axis, 0, -1);
    if (bop == ACV_BIN_DIV && A->kind == ACV__V_NODE && const_scalar(B, &f) && fabsf(f - 1.41421356f) < 1e-5f)
        return set_pending(c, ACV__V_GELU, ACV__GELU_DIV, vidx(c, A), 0, f, -1);
    /* a channels-last value with a constant or another channels-last value: in NCHW */
    bool an = lazy_kind(A) && A->nhwc, bn = lazy_kind(B) && B->nhwc;
    if ((an && (bn || B->kind == ACV__V_CONST)) || (bn && A->kind == ACV__V_CONST)) {
        int ai = vidx(c, A), bi = vidx(c, B);
        bool batched = A->batched || B->batched;
        a = an ? acv__eng_of(c, &c->v[ai], false) : nhwc_const(c, &c->v[ai]);
        if (a < 0) return a;
        b = bn ? acv__eng_of(c, &c->v[bi], false) : nhwc_const(c, &c->v[bi]);
        if (b < 0) return b;
        return set_out(c, acv_binary(c->g, bop, a, b), batched, true);
    }
    if ((rc = need(c, 0, &A, &a)) || (rc = need(c, 1, &B, &b))) return rc;
    return acv__set_node(c, 0, acv_binary(c->g, bop, a, b), A->batched || B->batched);
}

static int op_pow(acv__ictx *c)
{
    int rc = acv__check_attrs(c, "");
    if (rc) return rc;
    acv__oval *X = acv__in(c, 0), *E = acv__in(c, 1);
    float f;
    if (X && X->kind == ACV__V_LN && X->stage == ACV__LN_CENTER && const_scalar(E, &f) && f == 2.0f)
        return set_pending(c, ACV__V_LN, ACV__LN_SQ, X->src, X->axis, 0, -1);
    return acv__nerr(c, ACV_EUNSUPPORTED, "Pow is supported only as the square in a LayerNorm decomposition "
                     "(ReduceMean, Sub, Pow 2, ReduceMean, Add, Sqrt, Div over one axis)");
}

static int op_sqrt(acv__ictx *c)
{
    int rc = acv__check_attrs(c, "");
    if (rc) return rc;
    acv__oval *X = acv__in(c, 0);
    if (X && X->kind == ACV__V_LN && X->stage == ACV__LN_VAREPS)
        return set_pending(c, ACV__V_LN, ACV__LN_STD, X->src, X->axis, X->eps, -1);
    return acv__nerr(c, ACV_EUNSUPPORTED, "Sqrt is supported only as the standard deviation in a LayerNorm "
                     "decomposition (ReduceMean, Sub, Pow 2, ReduceMean, Add, Sqrt, Div over one axis)");
}

static int op_erf(acv__ictx *c)
{
    int rc = acv__check_attrs(c, "");
    if (rc) return rc;
    acv__oval *X = acv__in(c, 0);
    if (X && X->kind == ACV__V_GELU && X->stage == ACV__GELU_DIV)
        return set_pending(c, ACV__V_GELU, ACV__GELU_ERF, X->src, 0, 0, -1);
    return acv__nerr(c, ACV_EUNSUPPORTED, "Erf is supported only in exact GELU: Mul(Mul(x, Add(Erf(Div(x, sqrt 2)), 1)), 0.5)");
}

static int op_layernorm(acv__ictx *c)
{
    int rc = acv__check_attrs(c, "axis,epsilon,stash_type");
    if (rc || (rc = one_output(c))) return rc;
    acv__oval *X = acv__in(c, 0), *G = acv__in(c, 1), *Bt = acv__in(c, 2);
    if (!X || !G) return acv__nerr(c, ACV_EFORMAT, "input missing");
    if (G->kind != ACV__V_CONST || (Bt && Bt->kind != ACV__V_CONST))
        return acv__nerr(c, ACV_EUNSUPPORTED, "scale and bias computed at run time are not supported");
    int xi = vidx(c, X), gi = vidx(c, G), bi = Bt ? vidx(c, Bt) : -1;
    acv_id x = acv__eng_of(c, X, false);
    if (x < 0) return x;
    X = &c->v[xi];
    int nd = shp(c, x)->ndim;
    int64_t ax = acv__attr_i(c, "axis", -1);
    if (ax < 0) ax += nd;
    if (ax != nd - 1)
        return acv__nerr(c, ACV_EUNSUPPORTED, "only a LayerNormalization over the last axis is supported (axis %lld of "
                         "%d dims)", (long long)acv__attr_i(c, "axis", -1), nd);
    acv__oval p = *X;
    p.src = xi;
    p.axis = eng_axis(X, (int)ax);
    p.eps = acv__attr_f(c, "epsilon", 1e-5f);
    if (c->v[gi].c.n != ln_dim(c, &p)) return acv__nerr(c, ACV_ESHAPE, "the scale has %lld values for %lld",
                                                       (long long)c->v[gi].c.n, (long long)ln_dim(c, &p));
    acv_id g = acv__node_of(c, &c->v[gi], true);
    if (g < 0) return g;
    /* no bias input: zeros, trainable */
    acv_id b = bi >= 0 ? acv__node_of(c, &c->v[bi], true) : filled_param(c, "bias", ln_dim(c, &p), 0.0f);
    if (b < 0) return b;
    bool batched = c->v[xi].batched, nhwc = c->v[xi].nhwc;
    return set_out(c, acv_layernorm_ex(c->g, NULL, x, g, b, p.axis, p.eps), batched, nhwc);
}

/* ---- linear --------------------------------------------------------------------------- */

/* A linear layer x (N, IN) -> (N, OUT) from a constant matrix: w holds (IN, OUT) when
 * trans is false, (OUT, IN) when true; scaled by alpha; bias C (OUT values or 1) * beta. */
static int linear_from(acv__ictx *c, acv__oval *X, acv__oval *Bm, bool trans, float alpha, acv__oval *C, float beta)
{
    if (Bm->kind != ACV__V_CONST)
        return acv__nerr(c, ACV_EUNSUPPORTED, "a product of two computed tensors (attention, as in ViT and Swin) is not "
                         "supported: the engine multiplies by constant weights only");
    if (Bm->c.shape.ndim != 2) return acv__nerr(c, ACV_EUNSUPPORTED, "only a constant 2-D weight matrix is supported");
    acv_id x = acv__node_of(c, X, false);
    if (x < 0) return x;
    if (shp(c, x)->ndim != 2)
        return acv__nerr(c, ACV_EUNSUPPORTED, "only 2-D inputs (N, features) are supported");
    int64_t IN = trans ? Bm->c.shape.d[1] : Bm->c.shape.d[0], OUT = trans ? Bm->c.shape.d[0] : Bm->c.shape.d[1];
    acv_id w;
    if (trans && alpha == 1) w = acv__node_of(c, Bm, true);
    else {
        float *src = acv__const_floats(&Bm->c), *d = malloc((size_t)(IN * OUT) * sizeof(float));
        if (!src || !d) {
            free(src);
            free(d);
            return acv_error(ACV_ENOMEM, "out of memory");
        }
        for (int64_t o = 0; o < OUT; o++)
            for (int64_t i = 0; i < IN; i++) d[o * IN + i] = alpha * (trans ? src[o * IN + i] : src[i * OUT + o]);
        free(src);
        acv_shape s = acv_shape_make(2, OUT, IN, 0, 0);
        w = acv__new_param(c, Bm->name, &s, d, true);
    }
    if (w < 0) return w;
    acv_id b = -1;
    if (C) {
        if (C->kind != ACV__V_CONST || (C->c.n != OUT && C->c.n != 1))
            return acv__nerr(c, ACV_EUNSUPPORTED, "the bias must be a constant of %lld values", (long long)OUT);
        if (C->c.n == OUT && beta == 1) b = acv__node_of(c, C, true);
        else {
            float *src = acv__const_floats(&C->c), *d = malloc((size_t)OUT * sizeof(float));
            if (!src || !d) {
                free(src);
                free(d);
                return acv_error(ACV_ENOMEM, "out of memory");
            }
            for (int64_t o = 0; o < OUT; o++) d[o] = beta * src[C->c.n == 1 ? 0 : o];
            free(src);
            acv_shape s = acv_shape_make(1, OUT, 0, 0, 0);
            b = acv__new_param(c, C->name, &s, d, true);
        }
        if (b < 0) return b;
    }
    return acv__set_node(c, 0, acv_linear_ex(c->g, NULL, x, w, b), X->batched);
}

static int op_gemm(acv__ictx *c)
{
    int rc = acv__check_attrs(c, "alpha,beta,transA,transB");
    if (rc) return rc;
    acv__oval *A = acv__in(c, 0), *B = acv__in(c, 1), *C = acv__in(c, 2);
    if (!A || !B) return acv__nerr(c, ACV_EFORMAT, "input missing");
    if (acv__attr_i(c, "transA", 0)) return acv__nerr(c, ACV_EUNSUPPORTED, "transA=1 is not supported");
    return linear_from(c, A, B, acv__attr_i(c, "transB", 0) != 0, acv__attr_f(c, "alpha", 1), C, acv__attr_f(c, "beta", 1));
}

static int op_matmul(acv__ictx *c)
{
    int rc = acv__check_attrs(c, "");
    if (rc) return rc;
    acv__oval *A = acv__in(c, 0), *B = acv__in(c, 1);
    if (!A || !B) return acv__nerr(c, ACV_EFORMAT, "input missing");
    if (lazy_kind(A) && A->nhwc && B->kind == ACV__V_CONST && B->c.shape.ndim == 2) {
        /* (N, H, W, C) @ (C, O): a 1x1 convolution of the NCHW node */
        int ai = vidx(c, A), bi = vidx(c, B);
        acv_id x = acv__eng_of(c, A, false);
        if (x < 0) return x;
        int64_t C = B->c.shape.d[0], O = B->c.shape.d[1];
        if (shp(c, x)->d[1] != C)
            return acv__nerr(c, ACV_ESHAPE, "a (%lld, %lld) matrix for %lld channels", (long long)C, (long long)O,
                             (long long)shp(c, x)->d[1]);
        float *src = acv__const_floats(&c->v[bi].c), *d = malloc((size_t)(C * O) * sizeof(float));
        if (!src || !d) {
            free(src);
            free(d);
            return acv_error(ACV_ENOMEM, "out of memory");
        }
        for (int64_t o = 0; o < O; o++)
            for (int64_t i = 0; i < C; i++) d[o * C + i] = src[i * O + o];
        free(src);
        acv_shape ws = acv_shape_make(4, O, C, 1, 1);
        acv_id w = acv__new_param(c, c->v[bi].name, &ws, d, true);
        if (w < 0) return w;
        acv_conv_attrs ca = {1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 0, 0};
        return set_out(c, acv_conv2d_ex(c->g, NULL, x, w, -1, &ca), c->v[ai].batched, true);
    }
    return linear_from(c, A, B, false, 1, NULL, 1);
}

/* ---- shape ops on nodes ------------------------------------------------------------------- */

static int op_concat(acv__ictx *c)
{
    int rc = acv__check_attrs(c, "axis");
    if (rc) return rc;
    acv_id ids[256];
    int n = 0;
    bool batched = false;
    for (size_t k = 0; k < c->node->n_input; k++) {
        acv__oval *v = acv__in(c, k);
        if (!v) continue;
        if (n == 256) return acv__nerr(c, ACV_EUNSUPPORTED, "more than 256 inputs");
        if ((ids[n] = acv__node_of(c, v, false)) < 0) return ids[n];
        batched |= v->batched;
        n++;
    }
    if (!n) return acv__nerr(c, ACV_EFORMAT, "no inputs");
    int nd = shp(c, ids[0])->ndim;
    int64_t ax = acv__attr_i(c, "axis", 0);
    if (ax < -nd || ax >= nd) return acv__nerr(c, ACV_EINVAL, "axis %lld out of range", (long long)ax);
    if (ax < 0) ax += nd;
    if (ax == 0 && batched) return acv__nerr(c, ACV_EUNSUPPORTED, "concatenating along the batch dim is not supported");
    return acv__set_node(c, 0, n == 1 ? ids[0] : acv_concat(c->g, n, ids, (int)ax), batched);
}

/* Slice of a node along one axis: [st, st + len*step) */
static acv_id slice1(acv__ictx *c, acv__oval *X, acv_id x, int ax, int64_t st, int64_t len, int64_t step)
{
    const acv_shape *s = shp(c, x);
    if (len <= 0) return acv__nerr(c, ACV_EUNSUPPORTED, "empty slice");
    if (step < 1) return acv__nerr(c, ACV_EUNSUPPORTED, "slice step %lld (only positive steps are supported)", (long long)step);
    if (st == 0 && len == s->d[ax] && step == 1) return x;
    if (ax == 0 && X->batched) return acv__nerr(c, ACV_EUNSUPPORTED, "slicing the batch dim is not supported");
    return acv_slice(c->g, x, ax, st, st + (len - 1) * step + 1, step);
}

static int op_slice(acv__ictx *c)
{
    acv__oval *X;
    acv_id x;
    int rc = need(c, 0, &X, &x);
    if (rc) return rc;
    int64_t st[ACV_MAX_DIMS], en[ACV_MAX_DIMS], steps[ACV_MAX_DIMS];
    int axes[ACV_MAX_DIMS], n;
    if ((rc = acv__slice_args(c, shp(c, x)->ndim, st, en, axes, steps, &n))) return rc;
    for (int k = 0; k < n; k++) {
        int64_t s0, len;
        if ((rc = acv__slice_range(c, shp(c, x)->d[axes[k]], st[k], en[k], steps[k], &s0, &len))) return rc;
        if ((x = slice1(c, X, x, axes[k], s0, len, steps[k])) < 0) return acv__set_node(c, 0, x, true);
    }
    return acv__set_node(c, 0, x, X->batched);
}

static int op_split(acv__ictx *c)
{
    acv__oval *X;
    acv_id x;
    int rc = acv__check_attrs(c, "axis,split,num_outputs");
    if (rc || (rc = need(c, 0, &X, &x))) return rc;
    const acv_shape *s = shp(c, x);
    int64_t ax = acv__attr_i(c, "axis", 0);
    if (ax < -s->ndim || ax >= s->ndim) return acv__nerr(c, ACV_EINVAL, "axis out of range");
    if (ax < 0) ax += s->ndim;
    int64_t sizes[64];
    int n = -1, no = (int)c->node->n_output;
    if (no < 1) return acv__nerr(c, ACV_EFORMAT, "Split needs at least one output");
    if (no > 64) return acv__nerr(c, ACV_EUNSUPPORTED, "more than 64 outputs");
    if ((rc = acv__attr_ints(c, "split", sizes, 64, &n))) return rc;
    if (n < 0 && acv__in(c, 1) && (rc = acv__const_ints(c, acv__in(c, 1), "split", sizes, 64, &n))) return rc;
    int64_t dim = s->d[ax];
    if (n < 0) {
        int64_t chunk = (dim + no - 1) / no;
        for (int k = 0; k < no; k++) sizes[k] = dim - k * chunk < chunk ? dim - k * chunk : chunk;
        n = no;
    }
    int64_t tot = 0;
    for (int k = 0; k < n; k++) tot += sizes[k];
    if (n != no || tot != dim) return acv__nerr(c, ACV_EINVAL, "split sizes do not cover the axis (%lld)", (long long)dim);
    int64_t off = 0;
    acv__oval xv = *X; /* X moves when set_node grows the value table */
    for (int k = 0; k < n; k++) {
        if (c->node->output[k] && *c->node->output[k]) {
            acv_id y = slice1(c, &xv, x, (int)ax, off, sizes[k], 1);
            if ((rc = acv__set_node(c, (size_t)k, y, xv.batched))) return rc;
        }
        off += sizes[k];
    }
    return 0;
}

static int op_reshape(acv__ictx *c)
{
    int rc = acv__check_attrs(c, "allowzero");
    acv__oval *X;
    acv_id x;
    if (rc || (rc = need(c, 0, &X, &x))) return rc;
    int64_t spec[ACV_MAX_DIMS];
    int n;
    if ((rc = acv__const_ints(c, acv__in(c, 1), "the shape", spec, ACV_MAX_DIMS, &n))) return rc;
    bool allowzero = acv__attr_i(c, "allowzero", 0) != 0;
    /* a literal batch written by an exporter with a fixed batch follows ours */
    if (X->batched && n > 0 && spec[0] == c->onnx_batch && c->onnx_batch != 1) spec[0] = 0;
    acv_shape o;
    const acv_shape *xs = shp(c, x);
    if ((rc = acv__reshape_shape(c, xs, spec, n, allowzero, &o))) return rc;
    int bp = X->batched && o.ndim > 0 && o.d[0] == xs->d[0] ? 0 : -1;
    return acv__set_node(c, 0, acv__reshape_node(c, X, &o, bp), X->batched);
}

static int op_flatten(acv__ictx *c)
{
    int rc = acv__check_attrs(c, "axis");
    acv__oval *X;
    acv_id x;
    if (rc || (rc = need(c, 0, &X, &x))) return rc;
    int nd = shp(c, x)->ndim;
    int64_t ax = acv__attr_i(c, "axis", 1);
    if (ax < -nd || ax > nd) return acv__nerr(c, ACV_EINVAL, "axis out of range");
    if (ax < 0) ax += nd;
    acv_id y = ax == 0 ? acv_reshape(c->g, x, 2, (int64_t[]){1, -1}) : acv_flatten(c->g, x, (int)ax);
    return acv__set_node(c, 0, y, X->batched);
}

static int op_squeeze(acv__ictx *c, bool unsqueeze)
{
    int rc = acv__check_attrs(c, "axes");
    acv__oval *X;
    acv_id x;
    if (rc || (rc = need(c, 0, &X, &x))) return rc;
    int64_t axes[ACV_MAX_DIMS];
    int n;
    acv_shape o;
    const acv_shape *xs = shp(c, x);
    if ((rc = acv__axes_arg(c, 1, axes, &n))) return rc;
    if ((rc = acv__squeeze_shape(c, unsqueeze, xs, axes, n, X->batched, &o))) return rc;
    int bp = -1;
    if (X->batched) {
        if (unsqueeze) { /* where input dim 0 lands: after the inserted leading 1s */
            bool ins[2 * ACV_MAX_DIMS] = {0};
            for (int k = 0; k < n; k++) ins[axes[k] < 0 ? axes[k] + o.ndim : axes[k]] = true;
            for (bp = 0; bp < o.ndim && ins[bp]; bp++) {}
        } else {
            bool sq0 = false;
            for (int k = 0; k < n; k++) sq0 |= axes[k] == 0 || axes[k] == -xs->ndim;
            bp = sq0 ? -1 : 0;
        }
    }
    return acv__set_node(c, 0, acv__reshape_node(c, X, &o, bp), X->batched);
}

/* Most slices a data-moving Transpose may cost (see transpose_moves). */
#define TRANSPOSE_MAX_SLICES 16

/* A node x (value X for the batch flag) reshaped to s; batch_pos as acv__reshape_node. */
static acv_id reshape_to(acv__ictx *c, const acv__oval *X, acv_id x, const acv_shape *s, int batch_pos)
{
    acv__oval tmp = *X;
    tmp.kind = ACV__V_NODE;
    tmp.id = x;
    tmp.nhwc = false;
    return acv__reshape_node(c, &tmp, s, batch_pos);
}

/* A Transpose that moves data, made of slices, reshapes and concats (all with a backward
 * pass and an ONNX export). Dims of size 1 move for free (a reshape); of the others, the
 * heaviest set that keeps its order stays, and each other dim a is moved to its place by
 * slicing along it (d_a slices of size 1), reshaping each slice so that the size-1 dim
 * sits at the target position (no data moves) and concatenating there. ShuffleNet's
 * channel shuffle (N, g, C/g, H, W) -> (N, C/g, g, H, W) costs g slices. The batch dim
 * must stay first; a transpose costing more than TRANSPOSE_MAX_SLICES slices is refused. */
static acv_id transpose_moves(acv__ictx *c, acv__oval *X, acv_id x, const int64_t *perm, const acv_shape *o, int bp)
{
    const acv_shape *xs = shp(c, x);
    int n = xs->ndim, m = 0, q[ACV_MAX_DIMS], qm = 0;
    int64_t sd[ACV_MAX_DIMS];
    bool keep_ax[ACV_MAX_DIMS] = {0};
    for (int k = 0; k < n; k++)
        if (xs->d[k] > 1 || (k == 0 && X->batched)) {
            keep_ax[k] = true;
            sd[m++] = xs->d[k];
        }
    for (int k = 0; k < n; k++)
        if (keep_ax[perm[k]]) q[qm++] = (int)perm[k];
    if (X->batched && perm[0] != 0)
        return acv__nerr(c, ACV_EUNSUPPORTED, "a transpose that moves the batch dim is not supported");
    /* rank of each original dim among the kept ones: the squeezed problem */
    int rank[ACV_MAX_DIMS];
    for (int k = 0, r = 0; k < n; k++) rank[k] = keep_ax[k] ? r++ : -1;
    for (int k = 0; k < m; k++) q[k] = rank[q[k]];
    /* the heaviest subsequence of q that is increasing stays in place (the batch dim always) */
    int64_t best = -1, total = 0;
    unsigned best_set = 0;
    for (int k = 0; k < m; k++) total += sd[k];
    for (unsigned set = 0; set < 1u << m; set++) {
        int last = -1;
        int64_t w = 0;
        bool ok = true;
        for (int k = 0; ok && k < m; k++) {
            if (!(set >> k & 1)) {
                ok = !(X->batched && q[k] == 0);
                continue;
            }
            ok = q[k] > last;
            last = q[k];
            w += sd[q[k]];
        }
        if (ok && w > best) {
            best = w;
            best_set = set;
        }
    }
    int64_t cost = total - best;
    if (cost > TRANSPOSE_MAX_SLICES) {
        char a[96], b[96];
        return acv__nerr(c, ACV_EUNSUPPORTED, "a transpose of %s to %s moves data across %lld slices (at most %d are "
                         "supported: ShuffleNet's channel shuffle is; attention, as in ViT and Swin, is not)",
                         acv_shape_str(xs, a, sizeof a), acv_shape_str(o, b, sizeof b),
                         (long long)cost, TRANSPOSE_MAX_SLICES);
    }
    /* the squeezed tensor, then one move per dim not kept, in output order */
    acv_shape cs = {m, {0}};
    for (int k = 0; k < m; k++) cs.d[k] = sd[k];
    int bpos = X->batched ? 0 : -1;
    acv_id y = reshape_to(c, X, x, &cs, bpos);
    int cur[ACV_MAX_DIMS];
    bool placed[ACV_MAX_DIMS] = {0};
    for (int k = 0; k < m; k++) {
        cur[k] = k;
        if (best_set >> k & 1) placed[q[k]] = true;
    }
    for (int t = 0; t < m && y >= 0; t++) {
        int a = q[t];
        if (placed[a]) continue;
        int i = 0, j = 0;
        while (cur[i] != a) i++;
        for (int k = i; k < m - 1; k++) cur[k] = cur[k + 1];
        /* right after a's nearest placed predecessor in the output order */
        for (int u = t - 1; u >= 0; u--)
            if (placed[q[u]]) {
                while (cur[j] != q[u]) j++;
                j++;
                break;
            }
        for (int k = m - 1; k > j; k--) cur[k] = cur[k - 1];
        cur[j] = a;
        acv_shape ss = {m, {0}}; /* a slice, its dim a of size 1 moved to position j */
        for (int k = 0; k < m; k++) ss.d[k] = cur[k] == a ? 1 : sd[cur[k]];
        acv_id parts[TRANSPOSE_MAX_SLICES];
        for (int64_t s = 0; s < sd[a] && y >= 0; s++) {
            acv_id p = slice1(c, X, y, i, s, 1, 1);
            parts[s] = p < 0 ? p : reshape_to(c, X, p, &ss, bpos);
            if (parts[s] < 0) y = parts[s];
        }
        if (y >= 0) y = acv_concat(c->g, (int)sd[a], parts, j);
        placed[a] = true;
    }
    if (y < 0) return y;
    return reshape_to(c, X, y, o, bp);
}

/* The transpose of node x (the value X) by perm (n entries): a reshape when no data
 * moves, else transpose_moves. */
static acv_id transpose_node(acv__ictx *c, acv__oval *X, acv_id x, const int64_t *perm, int n)
{
    const acv_shape *xs = shp(c, x);
    if (n != xs->ndim) return acv__nerr(c, ACV_EINVAL, "perm has %d entries for %d dims", n, xs->ndim);
    /* a transpose that keeps the order of every dim larger than 1 moves no data */
    acv_shape o = {n, {0}};
    int64_t last = -1;
    int bp = -1;
    bool moves = false;
    unsigned seen = 0; /* perm must be a permutation: each dim exactly once */
    for (int k = 0; k < n; k++) {
        if (perm[k] < 0 || perm[k] >= n) return acv__nerr(c, ACV_EINVAL, "perm entry out of range");
        if (seen & (1u << perm[k]))
            return acv__nerr(c, ACV_EINVAL, "perm repeats dim %lld (it must name each dim once)", (long long)perm[k]);
        seen |= 1u << perm[k];
        o.d[k] = xs->d[perm[k]];
        bool big = xs->d[perm[k]] > 1 || (perm[k] == 0 && X->batched);
        if (perm[k] == 0 && X->batched) bp = k;
        if (!big) continue;
        if (perm[k] < last) moves = true;
        last = perm[k];
    }
    if (moves) return transpose_moves(c, X, x, perm, &o, bp);
    acv__oval tmp = *X;
    tmp.kind = ACV__V_NODE;
    tmp.id = x;
    tmp.nhwc = false;
    return acv__reshape_node(c, &tmp, &o, bp);
}

acv_id acv__nhwc_materialize(acv__ictx *c, acv__oval *v, acv_id x)
{
    static const int64_t perm[4] = {0, 2, 3, 1};
    return transpose_node(c, v, x, perm, 4);
}

static int op_transpose(acv__ictx *c)
{
    int rc = acv__check_attrs(c, "perm");
    if (rc) return rc;
    int64_t perm[ACV_MAX_DIMS];
    int n;
    if ((rc = acv__attr_ints(c, "perm", perm, ACV_MAX_DIMS, &n))) return rc;
    acv__oval *X = acv__in(c, 0);
    if (!X) return acv__nerr(c, ACV_EFORMAT, "input 0 is missing");
    /* channels-last and back (ConvNeXt): the permutation is only recorded */
    if (lazy_kind(X) && n == 4 && X->batched) {
        bool to_last = perm[0] == 0 && perm[1] == 2 && perm[2] == 3 && perm[3] == 1;
        bool to_first = perm[0] == 0 && perm[1] == 3 && perm[2] == 1 && perm[3] == 2;
        if ((to_last && !X->nhwc) || (to_first && X->nhwc)) {
            bool was = X->nhwc, batched = X->batched;
            acv_id x = acv__eng_of(c, X, false);
            if (x < 0) return x;
            if (to_last && shp(c, x)->ndim != 4) goto general;
            return set_out(c, x, batched, !was);
        }
    }
general:;
    acv_id x;
    if ((rc = need(c, 0, &X, &x))) return rc;
    const acv_shape *xs = shp(c, x);
    if (n < 0) {
        n = xs->ndim;
        for (int k = 0; k < n; k++) perm[k] = n - 1 - k;
    }
    return acv__set_node(c, 0, transpose_node(c, X, x, perm, n), X->batched);
}

static int op_gather(acv__ictx *c)
{
    int rc = acv__check_attrs(c, "axis");
    acv__oval *X;
    acv_id x;
    if (rc || (rc = need(c, 0, &X, &x))) return rc;
    acv__oval *I = acv__in(c, 1);
    if (!I || I->kind != ACV__V_CONST || I->c.n != 1 || I->c.shape.ndim > 1)
        return acv__nerr(c, ACV_EUNSUPPORTED, "only one constant index is supported");
    const acv_shape *xs = shp(c, x);
    int64_t ax = acv__attr_i(c, "axis", 0), id = I->c.is_int ? I->c.i[0] : (int64_t)I->c.f[0];
    if (ax < -xs->ndim || ax >= xs->ndim) return acv__nerr(c, ACV_EINVAL, "axis out of range");
    if (ax < 0) ax += xs->ndim;
    if (id < 0) id += xs->d[ax];
    if (id < 0 || id >= xs->d[ax]) return acv__nerr(c, ACV_EINVAL, "index out of range");
    acv_id y = slice1(c, X, x, (int)ax, id, 1, 1);
    if (y < 0 || I->c.shape.ndim == 1) return acv__set_node(c, 0, y, X->batched);
    acv_shape o = {0, {0}};
    const acv_shape *ys = shp(c, y);
    for (int k = 0; k < ys->ndim; k++)
        if (k != ax) o.d[o.ndim++] = ys->d[k];
    acv__oval tmp = *X;
    tmp.kind = ACV__V_NODE;
    tmp.id = y;
    tmp.nhwc = false;
    return acv__set_node(c, 0, acv__reshape_node(c, &tmp, &o, ax == 0 ? -1 : 0), X->batched);
}

/* ---- pooling ------------------------------------------------------------------------------ */

static int op_pool(acv__ictx *c, bool max)
{
    int rc = acv__check_attrs(c, max ? "auto_pad,ceil_mode,dilations,kernel_shape,pads,storage_order,strides"
                                     : "auto_pad,ceil_mode,count_include_pad,kernel_shape,pads,strides");
    if (rc || (rc = one_output(c))) return rc;
    if (max && acv__attr_i(c, "storage_order", 0)) return acv__nerr(c, ACV_EUNSUPPORTED, "storage_order=1 is not supported");
    acv__oval *X = acv__in(c, 0);
    if (!X) return acv__nerr(c, ACV_EFORMAT, "input missing");
    int64_t ks[4];
    int n;
    if ((rc = acv__attr_ints(c, "kernel_shape", ks, 4, &n))) return rc;
    if (n != 2) return acv__nerr(c, ACV_EUNSUPPORTED, "only 2-D pooling is supported (kernel_shape)");
    if (ks[0] < 1 || ks[1] < 1 || ks[0] > 65536 || ks[1] > 65536) return acv__nerr(c, ACV_EINVAL, "kernel_shape out of range");
    bool ceil_mode = acv__attr_i(c, "ceil_mode", 0) != 0, cip = acv__attr_i(c, "count_include_pad", 0) != 0;
    acv__oval *src = X->kind == ACV__V_PAD ? &c->v[X->src] : X;
    acv_id x0 = acv__node_of(c, src, false);
    if (x0 < 0) return x0;
    int64_t H = shp(c, x0)->d[2], W = shp(c, x0)->d[3];
    if (X->kind == ACV__V_PAD) {
        H += X->pads[0] + X->pads[2];
        W += X->pads[1] + X->pads[3];
    }
    int st[2], dil[2], pads[4];
    if ((rc = window_attrs(c, H, W, (int)ks[0], (int)ks[1], st, dil, pads, false))) return rc;
    acv_id x;
    if (X->kind == ACV__V_PAD && !max && !ceil_mode && (cip || !(pads[0] | pads[1] | pads[2] | pads[3])) &&
        2 * (pads[0] + X->pads[0]) <= ks[0] && 2 * (pads[2] + X->pads[2]) <= ks[0] &&
        2 * (pads[1] + X->pads[1]) <= ks[1] && 2 * (pads[3] + X->pads[3]) <= ks[1]) {
        for (int k = 0; k < 4; k++) pads[k] += (int)X->pads[k];
        cip = true; /* the zeros of the merged Pad are counted, as they were values */
        x = x0;
    } else if ((x = acv__node_of(c, X, false)) < 0) return x;
    acv_pool_attrs a = {(int)ks[0], (int)ks[1], st[0], st[1], pads[0], pads[1], pads[2], pads[3], dil[0], dil[1],
                        ceil_mode, cip};
    return acv__set_node(c, 0, acv_pool_ex(c->g, max ? ACV_OP_MAXPOOL : ACV_OP_AVGPOOL, x, &a), X->batched);
}

static int op_gap(acv__ictx *c)
{
    acv__oval *X;
    acv_id x;
    int rc = acv__check_attrs(c, "");
    if (rc || (rc = need(c, 0, &X, &x))) return rc;
    return acv__set_node(c, 0, acv_global_avgpool(c->g, x), X->batched);
}

static int op_reduce_mean(acv__ictx *c)
{
    acv__oval *X;
    acv_id x;
    int rc = acv__check_attrs(c, "axes,keepdims,noop_with_empty_axes");
    if (rc) return rc;
    int64_t axes[ACV_MAX_DIMS];
    int n;
    if ((rc = acv__axes_arg(c, 1, axes, &n))) return rc;
    /* a mean over one axis, kept: the start (or the variance) of a LayerNorm */
    X = acv__in(c, 0);
    if (!X) return acv__nerr(c, ACV_EFORMAT, "input 0 is missing");
    if (n == 1 && acv__attr_i(c, "keepdims", 1) && (X->kind == ACV__V_NODE || (X->kind == ACV__V_LN && X->stage == ACV__LN_SQ))) {
        int nd = shp(c, X->kind == ACV__V_NODE ? X->id : c->v[X->src].id)->ndim;
        int64_t a = axes[0] < 0 ? axes[0] + nd : axes[0];
        const acv__oval *S = X->kind == ACV__V_NODE ? X : &c->v[X->src];
        bool hw_gap = !S->nhwc && nd == 4 && a >= 2; /* not a LayerNorm axis we handle as such */
        if (a >= 0 && a < nd && !(S->batched && a == 0) && !hw_gap) {
            int ea = eng_axis(S, (int)a);
            if (X->kind == ACV__V_NODE) return set_pending(c, ACV__V_LN, ACV__LN_MEAN, vidx(c, X), ea, 0, -1);
            if (ea == X->axis) return set_pending(c, ACV__V_LN, ACV__LN_VAR, X->src, ea, 0, -1);
        }
    }
    if ((rc = need(c, 0, &X, &x))) return rc;
    const acv_shape *xs = shp(c, x);
    bool hw = xs->ndim == 4 && n == 2;
    for (int k = 0; hw && k < 2; k++) {
        int64_t a = axes[k] < 0 ? axes[k] + 4 : axes[k];
        hw = a == 2 + k || a == 3 - k;
    }
    hw = hw && (axes[0] != axes[1]);
    if (!hw) return acv__nerr(c, ACV_EUNSUPPORTED, "only the mean over H and W of a 4-D tensor is supported");
    acv_id y = acv_global_avgpool(c->g, x);
    if (!acv__attr_i(c, "keepdims", 1)) y = acv_flatten(c->g, y, 1);
    return acv__set_node(c, 0, y, X->batched);
}

static int op_resize(acv__ictx *c)
{
    int rc = acv__check_attrs(c, "antialias,axes,coordinate_transformation_mode,cubic_coeff_a,exclude_outside,"
                                 "extrapolation_value,keep_aspect_ratio_policy,mode,nearest_mode");
    acv__oval *X;
    acv_id x;
    if (rc || (rc = need(c, 0, &X, &x))) return rc;
    if (acv__attr_i(c, "antialias", 0) || acv__attr_i(c, "exclude_outside", 0) || acv__attr(c, "axes"))
        return acv__nerr(c, ACV_EUNSUPPORTED, "antialias, exclude_outside and axes are not supported");
    char mb[32], cb[40], nb[40], kb[32];
    const char *mode = acv__attr_s(c, "mode", "nearest", mb, sizeof mb);
    const char *ct = acv__attr_s(c, "coordinate_transformation_mode", "half_pixel", cb, sizeof cb);
    const char *nm = acv__attr_s(c, "nearest_mode", "round_prefer_floor", nb, sizeof nb);
    const char *kp = acv__attr_s(c, "keep_aspect_ratio_policy", "stretch", kb, sizeof kb);
    if (strcmp(kp, "stretch")) return acv__nerr(c, ACV_EUNSUPPORTED, "keep_aspect_ratio_policy '%s' is not supported", kp);
    const acv_shape *xs = shp(c, x);
    if (xs->ndim != 4) return acv__nerr(c, ACV_EUNSUPPORTED, "only 4-D inputs are supported");
    int64_t oh, ow;
    acv__oval *S = acv__in(c, 2), *Z = acv__in(c, 3);
    if (S && S->kind == ACV__V_CONST && S->c.n == 0) S = NULL;
    if (Z) {
        int64_t sz[4];
        int n;
        if ((rc = acv__const_ints(c, Z, "sizes", sz, 4, &n))) return rc;
        if (n != 4 || sz[1] != xs->d[1]) return acv__nerr(c, ACV_EUNSUPPORTED, "sizes must keep N and C");
        oh = sz[2];
        ow = sz[3];
    } else if (S) {
        if (S->kind != ACV__V_CONST || S->c.n != 4 || S->c.is_int)
            return acv__nerr(c, ACV_EUNSUPPORTED, "scales must be 4 constant floats");
        if (S->c.f[0] != 1 || S->c.f[1] != 1) return acv__nerr(c, ACV_EUNSUPPORTED, "scales must keep N and C");
        double fh = (double)xs->d[2] * S->c.f[2], fw = (double)xs->d[3] * S->c.f[3];
        oh = (int64_t)floor(fh);
        ow = (int64_t)floor(fw);
        if (fabs(fh - (double)oh) > 1e-4 || fabs(fw - (double)ow) > 1e-4)
            return acv__nerr(c, ACV_EUNSUPPORTED, "scales that give a fractional output size are not supported");
    } else return acv__nerr(c, ACV_EFORMAT, "neither scales nor sizes given");
    if (oh < 1 || ow < 1 || oh > 65536 || ow > 65536) return acv__nerr(c, ACV_EINVAL, "output size %lldx%lld", (long long)oh, (long long)ow);
    bool bil, align = false;
    if (!strcmp(mode, "nearest")) {
        bool integer_up = oh % xs->d[2] == 0 && ow % xs->d[3] == 0;
        bool ok = (!strcmp(ct, "asymmetric") && !strcmp(nm, "floor")) ||
                  (integer_up && (!strcmp(ct, "half_pixel") || !strcmp(ct, "pytorch_half_pixel") || !strcmp(ct, "asymmetric")));
        if (!ok) return acv__nerr(c, ACV_EUNSUPPORTED, "nearest with coordinate_transformation_mode '%s' and nearest_mode '%s' "
                                  "is not supported", ct, nm);
        bil = false;
    } else if (!strcmp(mode, "linear")) {
        bil = true;
        if (!strcmp(ct, "align_corners")) align = true;
        else if (strcmp(ct, "half_pixel") && !(!strcmp(ct, "pytorch_half_pixel") && oh > 1 && ow > 1))
            return acv__nerr(c, ACV_EUNSUPPORTED, "linear with coordinate_transformation_mode '%s' is not supported", ct);
    } else return acv__nerr(c, ACV_EUNSUPPORTED, "mode '%s' is not supported", mode);
    return acv__set_node(c, 0, acv_upsample(c->g, x, (int)oh, (int)ow, bil, align), X->batched);
}

static int op_pad(acv__ictx *c)
{
    int rc = acv__check_attrs(c, "mode");
    if (rc) return rc;
    char mb[32];
    const char *mode = acv__attr_s(c, "mode", "constant", mb, sizeof mb);
    if (strcmp(mode, "constant")) return acv__nerr(c, ACV_EUNSUPPORTED, "mode '%s' is not supported (constant zero only)", mode);
    acv__oval *X;
    acv_id x;
    if ((rc = need(c, 0, &X, &x))) return rc;
    int64_t p[16], axes[8];
    int n, na = -1;
    if ((rc = acv__const_ints(c, acv__in(c, 1), "pads", p, 16, &n))) return rc;
    if (acv__in(c, 2)) {
        float v;
        if ((rc = acv__const_float(c, acv__in(c, 2), "constant_value", &v))) return rc;
        if (v != 0) return acv__nerr(c, ACV_EUNSUPPORTED, "padding with %g is not supported (zero only)", v);
    }
    if (acv__in(c, 3) && (rc = acv__const_ints(c, acv__in(c, 3), "axes", axes, 8, &na))) return rc;
    const acv_shape *xs = shp(c, x);
    if (xs->ndim != 4) return acv__nerr(c, ACV_EUNSUPPORTED, "only 4-D inputs are supported");
    int64_t full[8] = {0};
    int nax = na >= 0 ? na : 4;
    if (n != 2 * nax) return acv__nerr(c, ACV_EINVAL, "pads has %d values for %d axes", n, nax);
    for (int k = 0; k < nax; k++) {
        int64_t a = na >= 0 ? axes[k] : k;
        if (a < 0) a += 4;
        if (a < 0 || a > 3) return acv__nerr(c, ACV_EINVAL, "axis out of range");
        full[a] = p[k];
        full[a + 4] = p[k + nax];
    }
    if (full[0] || full[1] || full[4] || full[5]) return acv__nerr(c, ACV_EUNSUPPORTED, "padding N or C is not supported");
    int64_t pads[4] = {full[2], full[3], full[6], full[7]};
    for (int k = 0; k < 4; k++)
        if (pads[k] < 0 || pads[k] > 65536) return acv__nerr(c, ACV_EUNSUPPORTED, "pad %lld is not supported", (long long)pads[k]);
    if (!(pads[0] | pads[1] | pads[2] | pads[3])) return acv__set_alias(c, 0, X);
    int src = acv__val_find(c, X->name);
    /* need() made X a node; a constant or pad input stays a value of another kind */
    if (src < 0 || c->v[src].kind != ACV__V_NODE || c->v[src].nhwc)
        return acv__nerr(c, ACV_EUNSUPPORTED, "padding a constant or a padded value is not supported");
    return acv__set_pad(c, 0, src, pads);
}

static int op_softmax(acv__ictx *c, bool log)
{
    int rc = acv__check_attrs(c, "axis");
    acv__oval *X;
    acv_id x;
    if (rc || (rc = need(c, 0, &X, &x))) return rc;
    const acv_shape *xs = shp(c, x);
    int nd = xs->ndim;
    int64_t ax = acv__attr_i(c, "axis", c->opset >= 13 ? -1 : 1);
    if (ax < -nd || ax >= nd) return acv__nerr(c, ACV_EINVAL, "axis out of range");
    if (ax < 0) ax += nd;
    if (c->opset >= 13 || ax == nd - 1) return acv__set_node(c, 0, acv_softmax(c->g, x, (int)ax, log), X->batched);
    /* before opset 13: softmax over the flattened dims [axis, ...) */
    acv_shape s = *xs;
    acv_id f = acv_flatten(c->g, x, (int)ax);
    acv_id y = acv_softmax(c->g, f, 1, log);
    int64_t spec[ACV_MAX_DIMS];
    for (int k = 0; k < nd; k++) spec[k] = s.d[k];
    if (X->batched) spec[0] = ax > 0 ? 0 : spec[0];
    if (X->batched && ax == 0) return acv__nerr(c, ACV_EUNSUPPORTED, "softmax across the batch is not supported");
    return acv__set_node(c, 0, acv_reshape(c->g, y, nd, spec), X->batched);
}

static int op_passthrough(acv__ictx *c, bool dropout)
{
    int rc = acv__check_attrs(c, dropout ? "seed,ratio" : "");
    if (rc || (rc = one_output(c))) return rc;
    acv__oval *X = acv__in(c, 0);
    if (!X) return acv__nerr(c, ACV_EFORMAT, "input missing");
    if (dropout && acv__in(c, 2)) {
        float t;
        if ((rc = acv__const_float(c, acv__in(c, 2), "training_mode", &t))) return rc;
        if (t != 0) return acv__nerr(c, ACV_EUNSUPPORTED, "training_mode=true is not supported");
    }
    return acv__set_alias(c, 0, X);
}

static int op_cast(acv__ictx *c)
{
    int rc = acv__check_attrs(c, "to,saturate");
    if (rc) return rc;
    if (acv__attr_i(c, "to", 0) != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)
        return acv__nerr(c, ACV_EUNSUPPORTED, "casting a tensor to %s is not supported (float32 only)",
                         acv__onnx_dtype_name((int)acv__attr_i(c, "to", 0)));
    acv__oval *X = acv__in(c, 0);
    if (!X) return acv__nerr(c, ACV_EFORMAT, "input missing");
    return acv__set_alias(c, 0, X);
}

static int op_relu(acv__ictx *c) { return op_act(c, ACV_ACT_RELU, ""); }
static int op_sigmoid(acv__ictx *c) { return op_act(c, ACV_ACT_SIGMOID, ""); }
static int op_tanh(acv__ictx *c) { return op_act(c, ACV_ACT_TANH, ""); }
static int op_hardswish(acv__ictx *c) { return op_act(c, ACV_ACT_HARDSWISH, ""); }
static int op_leaky(acv__ictx *c) { return op_act(c, ACV_ACT_LEAKY_RELU, "alpha"); }
static int op_hardsigmoid(acv__ictx *c) { return op_act(c, ACV_ACT_HARDSIGMOID, "alpha,beta"); }
static int op_conv2d(acv__ictx *c) { return op_conv(c, false); }
static int op_convt(acv__ictx *c) { return op_conv(c, true); }
static int op_add(acv__ictx *c) { return op_binary(c, ACV_BIN_ADD); }
static int op_sub(acv__ictx *c) { return op_binary(c, ACV_BIN_SUB); }
static int op_mul(acv__ictx *c) { return op_binary(c, ACV_BIN_MUL); }
static int op_div(acv__ictx *c) { return op_binary(c, ACV_BIN_DIV); }
static int op_squeeze_(acv__ictx *c) { return op_squeeze(c, false); }
static int op_unsqueeze(acv__ictx *c) { return op_squeeze(c, true); }
static int op_maxpool(acv__ictx *c) { return op_pool(c, true); }
static int op_avgpool(acv__ictx *c) { return op_pool(c, false); }
static int op_softmax_(acv__ictx *c) { return op_softmax(c, false); }
static int op_logsoftmax(acv__ictx *c) { return op_softmax(c, true); }
static int op_dropout(acv__ictx *c) { return op_passthrough(c, true); }
static int op_identity(acv__ictx *c) { return op_passthrough(c, false); }
/* Only ever folded (import_fold.c): reaching translation means an input is not constant. */
static int op_fold_only(acv__ictx *c)
{
    return acv__nerr(c, ACV_EUNSUPPORTED, "the input must be a constant (a shape known at import)");
}

static const struct { const char *name; int (*fn)(acv__ictx *); } OPS[] = {
    {"Relu", op_relu}, {"Sigmoid", op_sigmoid}, {"Tanh", op_tanh}, {"HardSwish", op_hardswish},
    {"LeakyRelu", op_leaky}, {"HardSigmoid", op_hardsigmoid}, {"Conv", op_conv2d}, {"ConvTranspose", op_convt},
    {"BatchNormalization", op_batchnorm}, {"Clip", op_clip}, {"Add", op_add}, {"Sub", op_sub}, {"Mul", op_mul},
    {"Div", op_div}, {"Gemm", op_gemm}, {"MatMul", op_matmul}, {"Concat", op_concat}, {"Split", op_split},
    {"Slice", op_slice}, {"Reshape", op_reshape}, {"Flatten", op_flatten}, {"Squeeze", op_squeeze_},
    {"Unsqueeze", op_unsqueeze}, {"Transpose", op_transpose}, {"Gather", op_gather}, {"MaxPool", op_maxpool},
    {"AveragePool", op_avgpool}, {"GlobalAveragePool", op_gap}, {"ReduceMean", op_reduce_mean},
    {"Resize", op_resize}, {"Pad", op_pad}, {"Softmax", op_softmax_}, {"LogSoftmax", op_logsoftmax},
    {"Dropout", op_dropout}, {"Identity", op_identity}, {"Cast", op_cast},
    {"LayerNormalization", op_layernorm}, {"Pow", op_pow}, {"Sqrt", op_sqrt}, {"Erf", op_erf},
    {"Constant", op_fold_only}, {"Shape", op_fold_only}, {"ConstantOfShape", op_fold_only},
};

/* What to do about an operator the importer does not know, for the error message. */
static const char *op_hint(const char *op)
{
    static const struct { const char *ops, *hint; } HINTS[] = {
        {",Gelu,Einsum,Expand,Where,Equal,Range,ScatterND,Mod,Not,",
         "; no engine operation computes it (it is typical of attention in transformer-style "
         "networks such as ViT and Swin, which cannot be imported): bring a convolutional network (ResNet, "
         "EfficientNet, RegNet, MobileNet, ...)"},
        {",LSTM,GRU,RNN,Loop,Scan,If,", "; recurrent layers and control flow are not supported"},
        {",NonMaxSuppression,TopK,RoiAlign,MaxRoiPool,",
         "; export the network without its post-processing (AutoCV decodes the raw output itself)"},
        {",InstanceNormalization,GroupNormalization,LpNormalization,LRN,MeanVarianceNormalization,",
         "; batch normalization is the only normalization supported"},
    };
    char key[80];
    snprintf(key, sizeof key, ",%s,", op);
    for (size_t k = 0; k < sizeof HINTS / sizeof HINTS[0]; k++)
        if (strstr(HINTS[k].ops, key)) return HINTS[k].hint;
    return " (docs/onnx.md lists the supported operators)";
}

int acv__op_check(acv__ictx *c, const char *op)
{
    for (size_t k = 0; k < sizeof OPS / sizeof OPS[0]; k++)
        if (!strcmp(op, OPS[k].name)) return 0;
    return acv__nerr(c, ACV_EUNSUPPORTED, "operator '%s' is not supported%s", op, op_hint(op));
}

int acv__translate(acv__ictx *c, const char *op)
{
    for (size_t k = 0; k < sizeof OPS / sizeof OPS[0]; k++)
        if (!strcmp(op, OPS[k].name)) return OPS[k].fn(c);
    return acv__op_check(c, op);
}
