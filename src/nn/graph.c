/* Graph builder: nodes, shape inference, parameters (see autocv/graph.h). */
#include "nn/graph_internal.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autocv/error.h"
#include "base/rng.h"

static const char *const OP_NAMES[ACV_OP_COUNT] = {
    "input", "param", "conv2d", "convt2d", "batchnorm", "act", "maxpool", "avgpool", "gap",
    "upsample", "binary", "concat", "slice", "reshape", "linear", "softmax", "dropout",
    "layernorm", "cross_entropy", "bce_logits", "focal",
};

const char *acv__op_name(acv_op op) { return (unsigned)op < ACV_OP_COUNT ? OP_NAMES[op] : "?"; }

int acv__op_from_name(const char *s)
{
    for (int i = 0; i < ACV_OP_COUNT; i++)
        if (!strcmp(OP_NAMES[i], s)) return i;
    return -1;
}

acv_graph *acv_graph_new(void)
{
    acv_graph *g = calloc(1, sizeof *g);
    if (g) g->output = -1;
    return g;
}

void acv_graph_free(acv_graph *g)
{
    if (!g) return;
    acv__graph_release_exec(g);
    for (int i = 0; i < g->n; i++) {
        free(g->nodes[i].name);
        free(g->nodes[i].in);
        free(g->nodes[i].a.class_weights);
        free(g->nodes[i].fold_w);
        free(g->nodes[i].fold_b);
    }
    free(g->nodes);
    free(g->params);
    free(g->grads);
    free(g->buffers);
    free(g);
}

int acv_graph_status(const acv_graph *g) { return g ? g->status : ACV_ENOMEM; }
int acv_graph_node_count(const acv_graph *g) { return g->n; }

/* Records the first error; later errors keep the first message. */
static int fail(acv_graph *g, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(acv_graph *g, int code, const char *fmt, ...)
{
    if (g->status == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(g->errmsg, sizeof g->errmsg, fmt, ap);
        va_end(ap);
        g->status = code;
    }
    acv_error(g->status, "%s", g->errmsg);
    return g->status;
}

static bool valid_id(const acv_graph *g, acv_id id) { return id >= 0 && id < g->n; }

/* A node's name for messages: its own name, or "op #id" for an unnamed node (activations,
 * pools, binary ops...), so that the user can tell which of many such nodes failed. */
static const char *nname(const acv_graph *g, acv_id id, char *buf, size_t cap)
{
    const char *s = g->nodes[id].name;
    if (s && *s) return s;
    snprintf(buf, cap, "%s #%d", acv__op_name(g->nodes[id].op), id);
    return buf;
}

/* The most elements any one tensor (activation or parameter, at the compiled batch size)
 * may hold: 2^31 - 1. Every dim and element count then fits the int that kernels index
 * dims and planes with, and a tensor's bytes (8 GiB of floats) stay far from size_t
 * overflow. Only malformed models (a model.json or ONNX file with absurd sizes) or absurd
 * batches reach it; they fail shape inference with ACV_ERANGE instead of wrapping. */
#define MAX_NUMEL ((int64_t)INT32_MAX)
/* Largest upsample output side, as the ONNX importer allows. */
#define MAX_UPSAMPLE 65536

/* Element count of s with every product checked: -1 when a dim is negative or over
 * MAX_NUMEL, or the count passes MAX_NUMEL (a product of huge dims never wraps to a small
 * count). */
static int64_t checked_numel(const acv_shape *s)
{
    int64_t n = 1;
    for (int i = 0; i < s->ndim; i++)
        if (s->d[i] < 0 || s->d[i] > MAX_NUMEL) return -1;
    for (int i = 0; i < s->ndim; i++)
        if (__builtin_mul_overflow(n, s->d[i], &n) || n > MAX_NUMEL) return -1;
    return n;
}

/* Refuses node id's shape when it holds more than MAX_NUMEL elements. */
static int check_numel(acv_graph *g, acv_id id)
{
    if (checked_numel(&g->nodes[id].shape) >= 0) return 0;
    char nb[64], sb[160];
    return fail(g, ACV_ERANGE, "%s: shape %s has more than %lld elements (the limit per tensor)",
                nname(g, id, nb, sizeof nb), acv_shape_str(&g->nodes[id].shape, sb, sizeof sb), (long long)MAX_NUMEL);
}

/* Channel/extent helpers for NCHW. */
static int64_t out_extent(int64_t in, int k, int s, int pb, int pe, int d, bool ceil_mode)
{
    int64_t eff = (int64_t)d * (k - 1) + 1;
    int64_t span = in + pb + pe - eff;
    if (span < 0) return 0;
    int64_t o = ceil_mode ? (span + s - 1) / s + 1 : span / s + 1;
    /* PyTorch: the last window must start inside the input or left padding. */
    if (ceil_mode && (o - 1) * s >= in + pb) o--;
    return o;
}

static int infer_conv(acv_graph *g, acv_node *n)
{
    const acv_shape *x = &g->nodes[n->in[0]].shape, *w = &g->nodes[n->in[1]].shape;
    const acv_conv_attrs *a = &n->a.conv;
    char nb[64];
    const char *nm = nname(g, (acv_id)(n - g->nodes), nb, sizeof nb);
    if (x->ndim != 4) return fail(g, ACV_ESHAPE, "%s: input must be 4-D NCHW, got %d-D", nm, x->ndim);
    if (w->ndim != 4) return fail(g, ACV_ESHAPE, "%s: weight must be 4-D, got %d-D", nm, w->ndim);
    if (a->groups < 1 || a->stride_h < 1 || a->stride_w < 1 || a->dil_h < 1 || a->dil_w < 1)
        return fail(g, ACV_EINVAL, "%s: groups, stride and dilation must be >= 1", nm);
    if (a->pad_t < 0 || a->pad_l < 0 || a->pad_b < 0 || a->pad_r < 0)
        return fail(g, ACV_EINVAL, "%s: negative padding", nm);
    int64_t C = x->d[1], K;
    if (n->op == ACV_OP_CONV2D) {
        K = w->d[0];
        if (C % a->groups || K % a->groups || w->d[1] * a->groups != C)
            return fail(g, ACV_ESHAPE, "%s: weight %lldx%lld does not fit %lld input channels in %d groups",
                        nm, (long long)w->d[0], (long long)w->d[1], (long long)C, a->groups);
        if (w->d[2] != a->kh || w->d[3] != a->kw) return fail(g, ACV_ESHAPE, "%s: kernel size mismatch", nm);
        int64_t oh = out_extent(x->d[2], a->kh, a->stride_h, a->pad_t, a->pad_b, a->dil_h, false);
        int64_t ow = out_extent(x->d[3], a->kw, a->stride_w, a->pad_l, a->pad_r, a->dil_w, false);
        if (oh <= 0 || ow <= 0)
            return fail(g, ACV_ESHAPE, "%s: input %lldx%lld is smaller than the kernel", nm,
                        (long long)x->d[2], (long long)x->d[3]);
        n->shape = acv_shape_make(4, x->d[0], K, oh, ow);
    } else {
        if (w->d[0] != C || C % a->groups)
            return fail(g, ACV_ESHAPE, "%s: transposed weight dim 0 (%lld) must equal input channels (%lld)",
                        nm, (long long)w->d[0], (long long)C);
        if (w->d[2] != a->kh || w->d[3] != a->kw)
            return fail(g, ACV_ESHAPE, "%s: weight kernel %lldx%lld does not match the kernel attribute %dx%d", nm,
                        (long long)w->d[2], (long long)w->d[3], a->kh, a->kw);
        K = w->d[1] * a->groups;
        /* inputs and weights hold at most MAX_NUMEL elements and strides, dilations and
         * paddings are ints: these sums of products of two such values fit int64 */
        int64_t oh = (x->d[2] - 1) * a->stride_h - a->pad_t - a->pad_b + (int64_t)a->dil_h * (a->kh - 1) + a->out_pad_h + 1;
        int64_t ow = (x->d[3] - 1) * a->stride_w - a->pad_l - a->pad_r + (int64_t)a->dil_w * (a->kw - 1) + a->out_pad_w + 1;
        if (oh <= 0 || ow <= 0) return fail(g, ACV_ESHAPE, "%s: empty output", nm);
        n->shape = acv_shape_make(4, x->d[0], K, oh, ow);
    }
    if (n->n_in > 2) {
        const acv_shape *b = &g->nodes[n->in[2]].shape;
        if (acv_shape_numel(b) != K) return fail(g, ACV_ESHAPE, "%s: bias has %lld values for %lld channels", nm,
                                                 (long long)acv_shape_numel(b), (long long)K);
    }
    return 0;
}

static int infer_binary(acv_graph *g, acv_node *n)
{
    const acv_shape *a = &g->nodes[n->in[0]].shape, *b = &g->nodes[n->in[1]].shape;
    int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    acv_shape o = {nd, {0}};
    for (int i = 0; i < nd; i++) {
        int ia = a->ndim - nd + i, ib = b->ndim - nd + i;
        int64_t da = ia >= 0 ? a->d[ia] : 1, db = ib >= 0 ? b->d[ib] : 1;
        if (da != db && da != 1 && db != 1) {
            char sa[96], sb[96], nb[64];
            return fail(g, ACV_ESHAPE, "%s: shapes %s and %s do not broadcast", nname(g, (acv_id)(n - g->nodes), nb, sizeof nb),
                        acv_shape_str(a, sa, sizeof sa), acv_shape_str(b, sb, sizeof sb));
        }
        o.d[i] = da > db ? da : db;
    }
    n->shape = o;
    return 0;
}

static int infer_op(acv_graph *g, acv_id id)
{
    acv_node *n = &g->nodes[id];
    char nb[64];
    const char *nm = nname(g, id, nb, sizeof nb);
    const acv_shape *x = n->n_in > 0 ? &g->nodes[n->in[0]].shape : NULL;
    n->batched = false;
    for (int i = 0; i < n->n_in; i++)
        if (g->nodes[n->in[i]].batched) n->batched = true;
    switch (n->op) {
    case ACV_OP_INPUT:
        n->batched = true;
        return 0;
    case ACV_OP_PARAM:
        return 0;
    case ACV_OP_CONV2D:
    case ACV_OP_CONVT2D:
        return infer_conv(g, n);
    case ACV_OP_BATCHNORM:
        if (x->ndim < 2) return fail(g, ACV_ESHAPE, "%s: batch norm needs (N, C, ...)", nm);
        for (int i = 1; i < n->n_in; i++)
            if (acv_shape_numel(&g->nodes[n->in[i]].shape) != x->d[1])
                return fail(g, ACV_ESHAPE, "%s: parameter %d has the wrong size for %lld channels", nm, i,
                            (long long)x->d[1]);
        n->shape = *x;
        return 0;
    case ACV_OP_ACT:
    case ACV_OP_DROPOUT:
        n->shape = *x;
        return 0;
    case ACV_OP_LAYERNORM:
        if (n->a.axis < 0 || n->a.axis >= x->ndim)
            return fail(g, ACV_EINVAL, "%s: axis %d out of range for %d-D input", nm, n->a.axis, x->ndim);
        if (!(n->a.eps >= 0)) return fail(g, ACV_EINVAL, "%s: epsilon %g must be >= 0", nm, n->a.eps);
        for (int i = 1; i < n->n_in; i++)
            if (acv_shape_numel(&g->nodes[n->in[i]].shape) != x->d[n->a.axis])
                return fail(g, ACV_ESHAPE, "%s: parameter %d has the wrong size for %lld values along axis %d", nm, i,
                            (long long)x->d[n->a.axis], n->a.axis);
        n->shape = *x;
        return 0;
    case ACV_OP_MAXPOOL:
    case ACV_OP_AVGPOOL: {
        const acv_pool_attrs *a = &n->a.pool;
        if (x->ndim != 4) return fail(g, ACV_ESHAPE, "%s: input must be 4-D NCHW", nm);
        if (a->kh < 1 || a->kw < 1 || a->stride_h < 1 || a->stride_w < 1 || a->dil_h < 1 || a->dil_w < 1)
            return fail(g, ACV_EINVAL, "%s: kernel, stride and dilation must be >= 1", nm);
        /* as PyTorch: 0 <= pad <= kernel / 2 on every side (the kernels rely on it) */
        if (a->pad_t < 0 || a->pad_b < 0 || a->pad_l < 0 || a->pad_r < 0 || a->pad_t > a->kh / 2 ||
            a->pad_b > a->kh / 2 || a->pad_l > a->kw / 2 || a->pad_r > a->kw / 2)
            return fail(g, ACV_EINVAL, "%s: pads (top %d, left %d, bottom %d, right %d) must be between 0 and half the "
                        "kernel (%dx%d)", nm, a->pad_t, a->pad_l, a->pad_b, a->pad_r, a->kh, a->kw);
        int64_t oh = out_extent(x->d[2], a->kh, a->stride_h, a->pad_t, a->pad_b, a->dil_h, a->ceil_mode);
        int64_t ow = out_extent(x->d[3], a->kw, a->stride_w, a->pad_l, a->pad_r, a->dil_w, a->ceil_mode);
        if (oh <= 0 || ow <= 0) return fail(g, ACV_ESHAPE, "%s: input smaller than the pooling window", nm);
        n->shape = acv_shape_make(4, x->d[0], x->d[1], oh, ow);
        return 0;
    }
    case ACV_OP_GAP:
        if (x->ndim != 4) return fail(g, ACV_ESHAPE, "%s: input must be 4-D NCHW", nm);
        n->shape = acv_shape_make(4, x->d[0], x->d[1], 1, 1);
        return 0;
    case ACV_OP_UPSAMPLE:
        if (x->ndim != 4) return fail(g, ACV_ESHAPE, "%s: input must be 4-D NCHW", nm);
        if (n->a.oh < 1 || n->a.ow < 1 || n->a.oh > MAX_UPSAMPLE || n->a.ow > MAX_UPSAMPLE)
            return fail(g, ACV_EINVAL, "%s: output size %dx%d is not in 1..%d", nm, n->a.oh, n->a.ow, MAX_UPSAMPLE);
        n->shape = acv_shape_make(4, x->d[0], x->d[1], n->a.oh, n->a.ow);
        return 0;
    case ACV_OP_BINARY:
        return infer_binary(g, n);
    case ACV_OP_CONCAT: {
        int ax = n->a.axis;
        if (ax < 0 || ax >= x->ndim) return fail(g, ACV_EINVAL, "%s: axis %d out of range", nm, ax);
        acv_shape o = *x;
        o.d[ax] = 0;
        for (int i = 0; i < n->n_in; i++) {
            const acv_shape *s = &g->nodes[n->in[i]].shape;
            if (s->ndim != x->ndim) return fail(g, ACV_ESHAPE, "%s: inputs differ in rank", nm);
            for (int k = 0; k < s->ndim; k++)
                if (k != ax && s->d[k] != x->d[k])
                    return fail(g, ACV_ESHAPE, "%s: input %d differs in dim %d (%lld vs %lld)", nm, i, k,
                                (long long)s->d[k], (long long)x->d[k]);
            o.d[ax] += s->d[ax];
        }
        n->shape = o;
        return 0;
    }
    case ACV_OP_SLICE: {
        int ax = n->a.axis;
        if (ax < 0 || ax >= x->ndim) return fail(g, ACV_EINVAL, "%s: axis %d out of range", nm, ax);
        int64_t dim = x->d[ax], st = n->a.start, en = n->a.end < dim ? n->a.end : dim;
        if (n->a.step < 1) return fail(g, ACV_EINVAL, "%s: step must be >= 1", nm);
        if (st < 0 || st >= en) return fail(g, ACV_EINVAL, "%s: empty slice [%lld, %lld) of %lld", nm,
                                            (long long)st, (long long)en, (long long)dim);
        n->shape = *x;
        n->shape.d[ax] = (en - st - 1) / n->a.step + 1; /* no overflow for a huge step */
        return 0;
    }
    case ACV_OP_RESHAPE: {
        acv_shape o = {n->a.spec_ndim, {0}};
        int64_t total = acv_shape_numel(x), known = 1;
        int infer_at = -1;
        if (n->a.axis > 0) { /* flatten(axis) */
            int64_t outer = 1;
            for (int i = 0; i < n->a.axis && i < x->ndim; i++) outer *= x->d[i];
            o = acv_shape_make(2, outer, outer ? total / outer : 0, 0, 0);
            n->shape = o;
            return 0;
        }
        for (int i = 0; i < o.ndim; i++) {
            int64_t s = n->a.spec[i];
            if (s == 0) {
                if (i >= x->ndim) return fail(g, ACV_EINVAL, "%s: 0 at dim %d beyond the input rank", nm, i);
                s = x->d[i];
            }
            if (s == -1) {
                if (infer_at >= 0) return fail(g, ACV_EINVAL, "%s: more than one -1 in reshape", nm);
                infer_at = i;
                continue;
            }
            if (s < 0) return fail(g, ACV_EINVAL, "%s: negative dim %lld", nm, (long long)s);
            o.d[i] = s;
            if (__builtin_mul_overflow(known, s, &known) || known > MAX_NUMEL)
                return fail(g, ACV_ERANGE, "%s: reshape dims multiply past %lld elements", nm, (long long)MAX_NUMEL);
        }
        if (infer_at >= 0) {
            if (known == 0 || total % known) return fail(g, ACV_ESHAPE, "%s: cannot infer -1", nm);
            o.d[infer_at] = total / known;
        } else if (known != total) {
            char sa[96], sb[96];
            return fail(g, ACV_ESHAPE, "%s: cannot reshape %s to %s", nm, acv_shape_str(x, sa, sizeof sa),
                        acv_shape_str(&o, sb, sizeof sb));
        }
        n->shape = o;
        return 0;
    }
    case ACV_OP_LINEAR: {
        const acv_shape *w = &g->nodes[n->in[1]].shape;
        if (x->ndim != 2) return fail(g, ACV_ESHAPE, "%s: input must be 2-D (N, features); flatten first", nm);
        if (w->ndim != 2 || w->d[1] != x->d[1])
            return fail(g, ACV_ESHAPE, "%s: weight does not fit %lld input features", nm, (long long)x->d[1]);
        if (n->n_in > 2 && acv_shape_numel(&g->nodes[n->in[2]].shape) != w->d[0])
            return fail(g, ACV_ESHAPE, "%s: bias size mismatch", nm);
        n->shape = acv_shape_make(2, x->d[0], w->d[0], 0, 0);
        return 0;
    }
    case ACV_OP_SOFTMAX:
        if (n->a.axis < 0 || n->a.axis >= x->ndim) return fail(g, ACV_EINVAL, "%s: axis out of range", nm);
        n->shape = *x;
        return 0;
    case ACV_OP_CROSS_ENTROPY: {
        const acv_shape *t = &g->nodes[n->in[1]].shape;
        if (x->ndim != 2) return fail(g, ACV_ESHAPE, "%s: logits must be (N, K)", nm);
        bool soft = t->ndim == 2 && t->d[1] == x->d[1] && x->d[1] > 1;
        if (!soft && acv_shape_numel(t) != x->d[0])
            return fail(g, ACV_ESHAPE, "%s: targets must be (N) class indices or (N, K) probabilities", nm);
        if (n->a.class_weights && n->a.n_weights != x->d[1])
            return fail(g, ACV_ESHAPE, "%s: %d class weights for %lld classes", nm, n->a.n_weights, (long long)x->d[1]);
        n->shape = acv_shape_make(1, 1, 0, 0, 0);
        n->batched = false;
        return 0;
    }
    case ACV_OP_BCE_LOGITS:
    case ACV_OP_FOCAL:
        if (acv_shape_numel(&g->nodes[n->in[1]].shape) != acv_shape_numel(x))
            return fail(g, ACV_ESHAPE, "%s: targets must have the logits' shape", nm);
        n->shape = acv_shape_make(1, 1, 0, 0, 0);
        n->batched = false;
        return 0;
    default:
        return fail(g, ACV_EINVAL, "unknown op %d", n->op);
    }
}

int acv__graph_infer(acv_graph *g, acv_id id)
{
    int rc = infer_op(g, id);
    return rc ? rc : check_numel(g, id);
}

acv_id acv__graph_add(acv_graph *g, acv_op op, const char *name, int n_in, const acv_id *in,
                      const acv_attrs *a)
{
    if (!g) return ACV_ENOMEM;
    if (g->status) return g->status;
    for (int i = 0; i < n_in; i++)
        if (!valid_id(g, in[i]))
            return fail(g, in[i] < 0 ? in[i] : ACV_EINVAL, "%s %s: input %d is not a valid node (%d)",
                        acv__op_name(op), name ? name : "", i, in[i]);
    if (g->compiled) return fail(g, ACV_EINVAL, "cannot add nodes to a compiled graph");
    if (g->n == g->cap) {
        int cap = g->cap ? g->cap * 2 : 64;
        acv_node *nn = realloc(g->nodes, (size_t)cap * sizeof *nn);
        if (!nn) return fail(g, ACV_ENOMEM, "out of memory growing the graph");
        g->nodes = nn;
        g->cap = cap;
    }
    acv_node *n = &g->nodes[g->n];
    memset(n, 0, sizeof *n);
    n->op = op;
    n->name = strdup(name ? name : "");
    n->in = n_in ? malloc((size_t)n_in * sizeof(acv_id)) : NULL;
    if (!n->name || (n_in && !n->in)) {
        free(n->name);
        free(n->in);
        return fail(g, ACV_ENOMEM, "out of memory");
    }
    if (n_in) memcpy(n->in, in, (size_t)n_in * sizeof(acv_id));
    n->n_in = n_in;
    if (a) n->a = *a;
    n->poff = -1;
    n->fused_into = n->fold_bn = n->dw_head = -1;
    acv_id id = g->n++;
    int rc = acv__graph_infer(g, id);
    if (rc) {
        g->n--;
        free(n->name);
        free(n->in);
        n->a.class_weights = NULL;
        return rc;
    }
    return id;
}

/* ---- builder ------------------------------------------------------------------------ */

acv_id acv_input(acv_graph *g, const char *name, int ndim, const int64_t *shape)
{
    if (g && !g->status && (ndim < 1 || ndim > ACV_MAX_DIMS))
        return fail(g, ACV_EINVAL, "input %s: rank %d not in 1..%d", name, ndim, ACV_MAX_DIMS);
    acv_id id = acv__graph_add(g, ACV_OP_INPUT, name, 0, NULL, NULL);
    if (id < 0) return id;
    acv_shape *s = &g->nodes[id].shape;
    s->ndim = ndim;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 1) return fail(g, ACV_EINVAL, "input %s: dim %d is %lld", name, i, (long long)shape[i]);
        s->d[i] = shape[i];
    }
    int rc = check_numel(g, id);
    return rc ? rc : id;
}

acv_id acv_param(acv_graph *g, const char *name, int ndim, const int64_t *shape, acv_init init,
                 bool trainable)
{
    if (g && !g->status && (ndim < 1 || ndim > ACV_MAX_DIMS))
        return fail(g, ACV_EINVAL, "parameter %s: rank %d not in 1..%d", name, ndim, ACV_MAX_DIMS);
    if (g && !g->status && acv_graph_find(g, name) >= 0)
        return fail(g, ACV_EEXIST, "parameter %s: name already used", name);
    acv_id id = acv__graph_add(g, ACV_OP_PARAM, name, 0, NULL, NULL);
    if (id < 0) return id;
    acv_node *n = &g->nodes[id];
    n->shape.ndim = ndim;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 1 || shape[i] > (1LL << 31))
            return fail(g, ACV_EINVAL, "parameter %s: dim %d is %lld", name, i, (long long)shape[i]);
        n->shape.d[i] = shape[i];
    }
    int rc = check_numel(g, id);
    if (rc) return rc;
    n->init = init;
    n->trainable = trainable;
    g->params_placed = false;
    return id;
}

static char *sub_name(char *buf, size_t cap, const char *name, const char *suffix)
{
    snprintf(buf, cap, "%s.%s", name, suffix);
    return buf;
}

acv_id acv_conv2d_ex(acv_graph *g, const char *name, acv_id x, acv_id w, acv_id b,
                     const acv_conv_attrs *a)
{
    acv_attrs at = {0};
    at.conv = *a;
    acv_id in[3] = {x, w, b};
    return acv__graph_add(g, ACV_OP_CONV2D, name, b >= 0 ? 3 : 2, in, &at);
}

acv_id acv_convt2d_ex(acv_graph *g, const char *name, acv_id x, acv_id w, acv_id b,
                      const acv_conv_attrs *a)
{
    acv_attrs at = {0};
    at.conv = *a;
    acv_id in[3] = {x, w, b};
    return acv__graph_add(g, ACV_OP_CONVT2D, name, b >= 0 ? 3 : 2, in, &at);
}

acv_id acv_conv2d(acv_graph *g, const char *name, acv_id x, int out_c, int k, int stride, int pad,
                  int dilation, int groups, bool bias)
{
    if (!g || g->status) return g ? g->status : ACV_ENOMEM;
    if (!valid_id(g, x)) return fail(g, ACV_EINVAL, "%s: invalid input", name);
    const acv_shape *xs = &g->nodes[x].shape;
    if (xs->ndim != 4) return fail(g, ACV_ESHAPE, "%s: input must be 4-D NCHW", name);
    if (groups < 1 || xs->d[1] % groups || out_c % groups || out_c < 1 || k < 1)
        return fail(g, ACV_EINVAL, "%s: %lld input / %d output channels do not split into %d groups", name,
                    (long long)xs->d[1], out_c, groups);
    char buf[256];
    int64_t ws[4] = {out_c, xs->d[1] / groups, k, k};
    acv_id w = acv_param(g, sub_name(buf, sizeof buf, name, "weight"), 4, ws, ACV_INIT_KAIMING_OUT, true);
    acv_id b = -1;
    if (bias) {
        int64_t bs[1] = {out_c};
        b = acv_param(g, sub_name(buf, sizeof buf, name, "bias"), 1, bs, ACV_INIT_ZERO, true);
    }
    acv_conv_attrs a = {k, k, stride, stride, pad, pad, pad, pad, dilation, dilation, groups, 0, 0};
    return acv_conv2d_ex(g, name, x, w, b, &a);
}

acv_id acv_convt2d(acv_graph *g, const char *name, acv_id x, int out_c, int k, int stride, int pad,
                   int out_pad, int groups, bool bias)
{
    if (!g || g->status) return g ? g->status : ACV_ENOMEM;
    if (!valid_id(g, x)) return fail(g, ACV_EINVAL, "%s: invalid input", name);
    const acv_shape *xs = &g->nodes[x].shape;
    if (xs->ndim != 4) return fail(g, ACV_ESHAPE, "%s: input must be 4-D NCHW", name);
    if (groups < 1 || xs->d[1] % groups || out_c % groups || k < 1)
        return fail(g, ACV_EINVAL, "%s: channels do not split into %d groups", name, groups);
    char buf[256];
    int64_t ws[4] = {xs->d[1], out_c / groups, k, k};
    acv_id w = acv_param(g, sub_name(buf, sizeof buf, name, "weight"), 4, ws, ACV_INIT_UNIFORM_FAN_IN, true);
    acv_id b = -1;
    if (bias) {
        int64_t bs[1] = {out_c};
        b = acv_param(g, sub_name(buf, sizeof buf, name, "bias"), 1, bs, ACV_INIT_ZERO, true);
    }
    acv_conv_attrs a = {k, k, stride, stride, pad, pad, pad, pad, 1, 1, groups, out_pad, out_pad};
    return acv_convt2d_ex(g, name, x, w, b, &a);
}

acv_id acv_batchnorm_ex(acv_graph *g, const char *name, acv_id x, acv_id gamma, acv_id beta,
                        acv_id mean, acv_id var, float eps, float momentum)
{
    acv_attrs a = {0};
    a.eps = eps;
    a.momentum = momentum;
    acv_id in[5] = {x, gamma, beta, mean, var};
    return acv__graph_add(g, ACV_OP_BATCHNORM, name, 5, in, &a);
}

acv_id acv_batchnorm(acv_graph *g, const char *name, acv_id x, float eps, float momentum)
{
    if (!g || g->status) return g ? g->status : ACV_ENOMEM;
    if (!valid_id(g, x) || g->nodes[x].shape.ndim < 2) return fail(g, ACV_ESHAPE, "%s: needs (N, C, ...) input", name);
    int64_t c[1] = {g->nodes[x].shape.d[1]};
    char buf[256];
    acv_id ga = acv_param(g, sub_name(buf, sizeof buf, name, "weight"), 1, c, ACV_INIT_ONE, true);
    acv_id be = acv_param(g, sub_name(buf, sizeof buf, name, "bias"), 1, c, ACV_INIT_ZERO, true);
    acv_id rm = acv_param(g, sub_name(buf, sizeof buf, name, "running_mean"), 1, c, ACV_INIT_ZERO, false);
    acv_id rv = acv_param(g, sub_name(buf, sizeof buf, name, "running_var"), 1, c, ACV_INIT_ONE, false);
    return acv_batchnorm_ex(g, name, x, ga, be, rm, rv, eps, momentum);
}

acv_id acv_layernorm_ex(acv_graph *g, const char *name, acv_id x, acv_id gamma, acv_id beta, int axis,
                        float eps)
{
    acv_attrs a = {0};
    a.axis = axis;
    a.eps = eps;
    acv_id in[3] = {x, gamma, beta};
    return acv__graph_add(g, ACV_OP_LAYERNORM, name, 3, in, &a);
}

acv_id acv_layernorm(acv_graph *g, const char *name, acv_id x, int axis, float eps)
{
    if (!g || g->status) return g ? g->status : ACV_ENOMEM;
    if (!valid_id(g, x)) return fail(g, ACV_EINVAL, "%s: invalid input node", name);
    const acv_shape *xs = &g->nodes[x].shape;
    if (axis < 0 || axis >= xs->ndim) return fail(g, ACV_EINVAL, "%s: axis %d out of range", name, axis);
    int64_t c[1] = {xs->d[axis]};
    char buf[256];
    acv_id ga = acv_param(g, sub_name(buf, sizeof buf, name, "weight"), 1, c, ACV_INIT_ONE, true);
    acv_id be = acv_param(g, sub_name(buf, sizeof buf, name, "bias"), 1, c, ACV_INIT_ZERO, true);
    return acv_layernorm_ex(g, name, x, ga, be, axis, eps);
}

acv_id acv_activation(acv_graph *g, acv_id x, int kind, float alpha)
{
    if (g && !g->status && (kind < 0 || kind >= ACV_ACT_COUNT))
        return fail(g, ACV_EINVAL, "unknown activation %d", kind);
    acv_attrs a = {0};
    a.act = kind;
    a.alpha = alpha;
    return acv__graph_add(g, ACV_OP_ACT, NULL, 1, &x, &a);
}

acv_id acv_relu(acv_graph *g, acv_id x) { return acv_activation(g, x, ACV_ACT_RELU, 0); }

acv_id acv_pool_ex(acv_graph *g, acv_op op, acv_id x, const acv_pool_attrs *pa)
{
    if (g && !g->status && op != ACV_OP_MAXPOOL && op != ACV_OP_AVGPOOL)
        return fail(g, ACV_EINVAL, "acv_pool_ex: op must be maxpool or avgpool");
    acv_attrs a = {0};
    a.pool = *pa;
    if (a.pool.dil_h < 1) a.pool.dil_h = 1;
    if (a.pool.dil_w < 1) a.pool.dil_w = 1;
    return acv__graph_add(g, op, NULL, 1, &x, &a);
}

acv_id acv_maxpool(acv_graph *g, acv_id x, int k, int stride, int pad, bool ceil_mode)
{
    acv_pool_attrs a = {k, k, stride, stride, pad, pad, pad, pad, 1, 1, ceil_mode, false};
    return acv_pool_ex(g, ACV_OP_MAXPOOL, x, &a);
}

acv_id acv_avgpool(acv_graph *g, acv_id x, int k, int stride, int pad, bool ceil_mode,
                   bool count_include_pad)
{
    acv_pool_attrs a = {k, k, stride, stride, pad, pad, pad, pad, 1, 1, ceil_mode, count_include_pad};
    return acv_pool_ex(g, ACV_OP_AVGPOOL, x, &a);
}

acv_id acv_global_avgpool(acv_graph *g, acv_id x) { return acv__graph_add(g, ACV_OP_GAP, NULL, 1, &x, NULL); }

acv_id acv_upsample(acv_graph *g, acv_id x, int oh, int ow, bool bilinear, bool align_corners)
{
    acv_attrs a = {0};
    a.oh = oh;
    a.ow = ow;
    a.bilinear = bilinear;
    a.align_corners = align_corners;
    return acv__graph_add(g, ACV_OP_UPSAMPLE, NULL, 1, &x, &a);
}

acv_id acv_binary(acv_graph *g, int op, acv_id a, acv_id b)
{
    if (g && !g->status && (op < ACV_BIN_ADD || op > ACV_BIN_DIV)) return fail(g, ACV_EINVAL, "unknown binary op %d", op);
    acv_attrs at = {0};
    at.binop = op;
    acv_id in[2] = {a, b};
    return acv__graph_add(g, ACV_OP_BINARY, NULL, 2, in, &at);
}

acv_id acv_add(acv_graph *g, acv_id a, acv_id b) { return acv_binary(g, ACV_BIN_ADD, a, b); }
acv_id acv_mul(acv_graph *g, acv_id a, acv_id b) { return acv_binary(g, ACV_BIN_MUL, a, b); }

acv_id acv_concat(acv_graph *g, int n, const acv_id *xs, int axis)
{
    if (g && !g->status && n < 1) return fail(g, ACV_EINVAL, "concat of nothing");
    acv_attrs a = {0};
    a.axis = axis;
    return acv__graph_add(g, ACV_OP_CONCAT, NULL, n, xs, &a);
}

acv_id acv_slice(acv_graph *g, acv_id x, int axis, int64_t start, int64_t end, int64_t step)
{
    acv_attrs a = {0};
    a.axis = axis;
    a.start = start;
    a.end = end;
    a.step = step;
    return acv__graph_add(g, ACV_OP_SLICE, NULL, 1, &x, &a);
}

acv_id acv_reshape(acv_graph *g, acv_id x, int ndim, const int64_t *spec)
{
    if (g && !g->status && (ndim < 1 || ndim > ACV_MAX_DIMS)) return fail(g, ACV_EINVAL, "reshape: rank %d", ndim);
    acv_attrs a = {0};
    a.spec_ndim = ndim;
    for (int i = 0; i < ndim; i++) a.spec[i] = spec[i];
    return acv__graph_add(g, ACV_OP_RESHAPE, NULL, 1, &x, &a);
}

acv_id acv_flatten(acv_graph *g, acv_id x, int axis)
{
    if (g && !g->status && axis < 1) return fail(g, ACV_EINVAL, "flatten: axis must be >= 1");
    acv_attrs a = {0};
    a.axis = axis;
    a.spec_ndim = 2;
    return acv__graph_add(g, ACV_OP_RESHAPE, NULL, 1, &x, &a);
}

acv_id acv_linear_ex(acv_graph *g, const char *name, acv_id x, acv_id w, acv_id b)
{
    acv_id in[3] = {x, w, b};
    return acv__graph_add(g, ACV_OP_LINEAR, name, b >= 0 ? 3 : 2, in, NULL);
}

acv_id acv_linear(acv_graph *g, const char *name, acv_id x, int out, bool bias)
{
    if (!g || g->status) return g ? g->status : ACV_ENOMEM;
    if (!valid_id(g, x) || g->nodes[x].shape.ndim != 2)
        return fail(g, ACV_ESHAPE, "%s: input must be 2-D (N, features); flatten first", name);
    char buf[256];
    int64_t ws[2] = {out, g->nodes[x].shape.d[1]};
    acv_id w = acv_param(g, sub_name(buf, sizeof buf, name, "weight"), 2, ws, ACV_INIT_UNIFORM_FAN_IN, true);
    acv_id b = -1;
    if (bias) {
        int64_t bs[1] = {out};
        b = acv_param(g, sub_name(buf, sizeof buf, name, "bias"), 1, bs, ACV_INIT_UNIFORM_FAN_IN, true);
    }
    return acv_linear_ex(g, name, x, w, b);
}

acv_id acv_softmax(acv_graph *g, acv_id x, int axis, bool log)
{
    acv_attrs a = {0};
    a.axis = axis;
    a.log = log;
    return acv__graph_add(g, ACV_OP_SOFTMAX, NULL, 1, &x, &a);
}

acv_id acv_dropout(acv_graph *g, acv_id x, float p)
{
    if (g && !g->status && !(p >= 0 && p < 1)) return fail(g, ACV_EINVAL, "dropout: p=%g not in [0, 1)", p);
    acv_attrs a = {0};
    a.p = p;
    return acv__graph_add(g, ACV_OP_DROPOUT, NULL, 1, &x, &a);
}

acv_id acv_cross_entropy(acv_graph *g, acv_id logits, acv_id targets, float label_smoothing,
                         const float *class_weights)
{
    if (!g || g->status) return g ? g->status : ACV_ENOMEM;
    if (!(label_smoothing >= 0 && label_smoothing < 1))
        return fail(g, ACV_EINVAL, "cross-entropy: label smoothing %g not in [0, 1)", label_smoothing);
    acv_attrs a = {0};
    a.smoothing = label_smoothing;
    if (class_weights && valid_id(g, logits) && g->nodes[logits].shape.ndim == 2) {
        int k = (int)g->nodes[logits].shape.d[1];
        a.class_weights = malloc((size_t)k * sizeof(float));
        if (!a.class_weights) return fail(g, ACV_ENOMEM, "out of memory");
        memcpy(a.class_weights, class_weights, (size_t)k * sizeof(float));
        a.n_weights = k;
    }
    acv_id in[2] = {logits, targets};
    acv_id id = acv__graph_add(g, ACV_OP_CROSS_ENTROPY, "cross_entropy", 2, in, &a);
    if (id < 0) free(a.class_weights);
    return id;
}

acv_id acv_bce_logits(acv_graph *g, acv_id logits, acv_id targets)
{
    acv_id in[2] = {logits, targets};
    return acv__graph_add(g, ACV_OP_BCE_LOGITS, "bce_logits", 2, in, NULL);
}

acv_id acv_focal_loss(acv_graph *g, acv_id logits, acv_id targets, float alpha, float gamma)
{
    acv_attrs a = {0};
    a.alpha = alpha;
    a.gamma = gamma;
    acv_id in[2] = {logits, targets};
    return acv__graph_add(g, ACV_OP_FOCAL, "focal", 2, in, &a);
}

/* ---- inspection ---------------------------------------------------------------------- */

acv_op acv_graph_op(const acv_graph *g, acv_id id) { return valid_id(g, id) ? g->nodes[id].op : ACV_OP_COUNT; }
const char *acv_graph_name(const acv_graph *g, acv_id id) { return valid_id(g, id) ? g->nodes[id].name : NULL; }
const acv_shape *acv_graph_shape(const acv_graph *g, acv_id id) { return valid_id(g, id) ? &g->nodes[id].shape : NULL; }

acv_id acv_graph_find(const acv_graph *g, const char *name)
{
    if (!name || !*name) return -1;
    for (int i = 0; i < g->n; i++)
        if (!strcmp(g->nodes[i].name, name)) return i;
    return -1;
}

int acv_graph_reshape_input(acv_graph *g, acv_id input, int ndim, const int64_t *shape)
{
    if (g->status) return acv_error(g->status, "%s", g->errmsg);
    if (!valid_id(g, input) || g->nodes[input].op != ACV_OP_INPUT)
        return acv_error(ACV_EINVAL, "node %d is not an input", input);
    if (ndim < 1 || ndim > ACV_MAX_DIMS) return acv_error(ACV_EINVAL, "input rank %d not in 1..%d", ndim, ACV_MAX_DIMS);
    acv_shape old = g->nodes[input].shape;
    acv_shape *s = &g->nodes[input].shape;
    s->ndim = ndim;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 1) {
            *s = old;
            return acv_error(ACV_EINVAL, "input dim %d is %lld", i, (long long)shape[i]);
        }
        s->d[i] = shape[i];
    }
    if (checked_numel(s) < 0) {
        char sb[160];
        acv_shape_str(s, sb, sizeof sb);
        *s = old;
        return acv_error(ACV_ERANGE, "input shape %s has more than %lld elements (the limit per tensor)", sb,
                         (long long)MAX_NUMEL);
    }
    for (int i = 0; i < g->n; i++) {
        if (g->nodes[i].op == ACV_OP_INPUT || g->nodes[i].op == ACV_OP_PARAM) continue;
        if (acv__graph_infer(g, i)) {
            int rc = g->status;
            char msg[512];
            snprintf(msg, sizeof msg, "%s", g->errmsg);
            g->status = 0;
            *s = old;
            for (int k = 0; k < g->n; k++)
                if (g->nodes[k].op != ACV_OP_INPUT && g->nodes[k].op != ACV_OP_PARAM) acv__graph_infer(g, k);
            return acv_error(rc, "the model cannot take that input shape: %s", msg);
        }
    }
    /* only now: a refused shape leaves the compiled plan usable */
    acv__graph_release_exec(g);
    return 0;
}

void acv_graph_set_output(acv_graph *g, acv_id id)
{
    if (valid_id(g, id)) g->output = id;
}

acv_id acv_graph_output(const acv_graph *g) { return g->output; }

acv_id acv_graph_input(const acv_graph *g)
{
    for (int i = 0; i < g->n; i++)
        if (g->nodes[i].op == ACV_OP_INPUT) return i;
    return -1;
}

/* ---- parameters ---------------------------------------------------------------------- */

int acv__graph_place_params(acv_graph *g)
{
    if (g->params_placed) return 0;
    int64_t np = 0, nb = 0;
    for (int i = 0; i < g->n; i++) {
        acv_node *n = &g->nodes[i];
        if (n->op != ACV_OP_PARAM) continue;
        int64_t k = acv_shape_numel(&n->shape);
        if (n->trainable) np += k; else nb += k;
    }
    float *p = calloc((size_t)(np ? np : 1), sizeof(float));
    float *b = calloc((size_t)(nb ? nb : 1), sizeof(float));
    if (!p || !b) {
        free(p);
        free(b);
        return acv_error(ACV_ENOMEM, "cannot allocate %lld parameters", (long long)(np + nb));
    }
    int64_t op = 0, ob = 0;
    for (int i = 0; i < g->n; i++) {
        acv_node *n = &g->nodes[i];
        if (n->op != ACV_OP_PARAM) continue;
        int64_t k = acv_shape_numel(&n->shape);
        float *dst = n->trainable ? p + op : b + ob;
        if (n->out && n->poff >= 0) memcpy(dst, n->out, (size_t)k * sizeof(float)); /* keep values */
        n->poff = n->trainable ? op : ob;
        n->out = dst;
        if (n->trainable) op += k; else ob += k;
    }
    free(g->params);
    free(g->buffers);
    free(g->grads);
    g->grads = NULL;
    g->params = p;
    g->buffers = b;
    g->n_params = np;
    g->n_buffers = nb;
    g->params_placed = true;
    g->param_version++;
    for (int i = 0; i < g->n; i++)
        if (g->nodes[i].op == ACV_OP_PARAM) g->nodes[i].grad = NULL;
    g->compiled = false;
    return 0;
}

int acv_graph_param_count(const acv_graph *g)
{
    int c = 0;
    for (int i = 0; i < g->n; i++) c += g->nodes[i].op == ACV_OP_PARAM;
    return c;
}

int acv_graph_param(acv_graph *g, int i, acv_param_info *out)
{
    int rc = acv__graph_place_params(g);
    if (rc) return rc;
    g->param_version++;
    int c = 0;
    for (int k = 0; k < g->n; k++) {
        acv_node *n = &g->nodes[k];
        if (n->op != ACV_OP_PARAM) continue;
        if (c++ != i) continue;
        out->name = n->name;
        out->id = k;
        out->shape = n->shape;
        out->data = n->out;
        out->grad = n->grad;
        out->trainable = n->trainable;
        out->offset = n->trainable ? n->poff : -1;
        return 0;
    }
    return acv_error(ACV_ENOTFOUND, "parameter index %d out of range", i);
}

float *acv_graph_params(acv_graph *g, int64_t *n)
{
    if (acv__graph_place_params(g)) return NULL;
    g->param_version++;
    if (n) *n = g->n_params;
    return g->params;
}

float *acv_graph_buffers(acv_graph *g, int64_t *n)
{
    if (acv__graph_place_params(g)) return NULL;
    g->param_version++;
    if (n) *n = g->n_buffers;
    return g->buffers;
}

float *acv_graph_grads(acv_graph *g, int64_t *n)
{
    if (n) *n = g->grads ? g->n_params : 0;
    return g->grads;
}

int64_t acv_graph_num_params(const acv_graph *g)
{
    int64_t c = 0;
    for (int i = 0; i < g->n; i++)
        if (g->nodes[i].op == ACV_OP_PARAM && g->nodes[i].trainable) c += acv_shape_numel(&g->nodes[i].shape);
    return c;
}

/* fan_in / fan_out as PyTorch computes them (dims 1.. and 0 times the receptive field). */
static void fans(const acv_shape *s, double *fan_in, double *fan_out)
{
    double rf = 1;
    for (int i = 2; i < s->ndim; i++) rf *= (double)s->d[i];
    *fan_in = s->ndim >= 2 ? (double)s->d[1] * rf : (double)s->d[0];
    *fan_out = (double)s->d[0] * rf;
}

int acv_graph_init_params(acv_graph *g, uint64_t seed)
{
    int rc = acv__graph_place_params(g);
    if (rc) return rc;
    g->param_version++;
    for (int i = 0; i < g->n; i++) {
        acv_node *n = &g->nodes[i];
        if (n->op != ACV_OP_PARAM) continue;
        int64_t k = acv_shape_numel(&n->shape);
        acv_rng r;
        acv_rng_seed3(&r, seed, (uint64_t)i, 0x9a7a);
        double fi, fo;
        fans(&n->shape, &fi, &fo);
        /* A bias's fan-in comes from its weight: the node just before it. */
        if (n->shape.ndim == 1 && i > 0 && g->nodes[i - 1].op == ACV_OP_PARAM && g->nodes[i - 1].shape.ndim >= 2) {
            double fo2;
            fans(&g->nodes[i - 1].shape, &fi, &fo2);
        }
        for (int64_t j = 0; j < k; j++) {
            float v = 0;
            switch (n->init) {
            case ACV_INIT_ZERO: v = 0; break;
            case ACV_INIT_ONE: v = 1; break;
            case ACV_INIT_KAIMING_OUT: v = acv_rng_normal(&r) * (float)sqrt(2.0 / fo); break;
            case ACV_INIT_UNIFORM_FAN_IN: v = (2 * acv_rng_uniform(&r) - 1) * (float)(1.0 / sqrt(fi)); break;
            case ACV_INIT_NORMAL_001: v = acv_rng_normal(&r) * 0.01f; break;
            }
            n->out[j] = v;
        }
    }
    return 0;
}

double acv__node_flops(const acv_graph *g, int i)
{
    const acv_node *n = &g->nodes[i];
    int64_t b = n->shape.ndim > 0 && n->batched ? n->shape.d[0] : 1;
    if (b < 1) b = 1;
    if (n->op == ACV_OP_CONV2D || n->op == ACV_OP_CONVT2D) {
        const acv_shape *w = &g->nodes[n->in[1]].shape;
        double per = (double)acv_shape_numel(w) / (double)w->d[0]; /* C/g*kh*kw for conv */
        if (n->op == ACV_OP_CONV2D) return 2.0 * per * (double)acv_shape_numel(&n->shape) / (double)b;
        return 2.0 * (double)acv_shape_numel(w) *
               (double)(acv_shape_numel(&g->nodes[n->in[0]].shape) / g->nodes[n->in[0]].shape.d[1]) / (double)b;
    }
    if (n->op == ACV_OP_LINEAR) return 2.0 * (double)acv_shape_numel(&g->nodes[n->in[1]].shape);
    return 0.0;
}

double acv_graph_gflops(const acv_graph *g)
{
    double f = 0;
    for (int i = 0; i < g->n; i++) f += acv__node_flops(g, i);
    return f / 1e9;
}
