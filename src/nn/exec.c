/* Graph execution: memory planning, forward and backward (see autocv/graph.h).
 *
 * Planning happens once per compile for the maximum batch size. Training keeps every
 * activation (backward reads them) and gives each node that needs a gradient its own
 * gradient buffer; inference shares buffers between nodes whose lifetimes do not overlap
 * (greedy best fit over "slots"). Reshape/flatten never copy: they alias their input. */
#include "nn/graph_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "autocv/error.h"

#define ALIGN_FLOATS 16 /* 64 bytes */

static int64_t align_up(int64_t n) { return (n + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS; }

void acv__graph_release_exec(acv_graph *g)
{
    for (int i = 0; i < g->n; i++) {
        acv_node *n = &g->nodes[i];
        if (n->cache && g->be && g->be->cache_free) g->be->cache_free(n->cache);
        n->cache = NULL;
        if (n->op != ACV_OP_PARAM) n->out = NULL;
        n->grad = NULL;
        n->aux = NULL;
        n->argmax = NULL;
    }
    free(g->arena);
    free(g->idx_arena);
    free(g->grads);
    g->arena = NULL;
    g->idx_arena = NULL;
    g->grads = NULL;
    g->compiled = false;
}

static int set_batch_shapes(acv_graph *g, int n)
{
    for (int i = 0; i < g->n; i++) {
        acv_node *nd = &g->nodes[i];
        if (nd->op == ACV_OP_INPUT) nd->shape.d[0] = n;
        else if (nd->op != ACV_OP_PARAM) {
            int rc = acv__graph_infer(g, i);
            if (rc) return rc;
        }
    }
    return 0;
}

static acv_id root_of(const acv_graph *g, acv_id id)
{
    while (g->nodes[id].op == ACV_OP_RESHAPE) id = g->nodes[id].in[0];
    return id;
}

static bool is_loss(acv_op op) { return op == ACV_OP_CROSS_ENTROPY || op == ACV_OP_BCE_LOGITS || op == ACV_OP_FOCAL; }

typedef struct { int64_t size; int busy_until; } slot_t;

int acv_graph_compile(acv_graph *g, const acv_backend *be, int max_batch, bool training)
{
    if (g->status) return acv_error(g->status, "%s", g->errmsg);
    if (max_batch < 1) return acv_error(ACV_EINVAL, "batch size must be >= 1 (got %d)", max_batch);
    acv__graph_release_exec(g);
    int rc = acv__graph_place_params(g);
    if (rc) return rc;
    g->be = be ? be : acv_backend_cpu();
    g->training = training;
    g->max_batch = max_batch;
    if ((rc = set_batch_shapes(g, max_batch))) return rc;
    g->batch = max_batch;

    int n = g->n;
    /* gradient needs */
    for (int i = 0; i < n; i++) {
        acv_node *nd = &g->nodes[i];
        nd->max_numel = acv_shape_numel(&nd->shape);
        nd->need_grad = false;
        if (!training) continue;
        if (nd->op == ACV_OP_PARAM) nd->need_grad = nd->trainable;
        else if (nd->op == ACV_OP_INPUT) nd->need_grad = nd->want_grad;
        else
            for (int k = 0; k < nd->n_in; k++) {
                /* loss targets never carry gradient */
                if (is_loss(nd->op) && k == 1) continue;
                if (g->nodes[nd->in[k]].need_grad) nd->need_grad = true;
            }
    }

    /* last use of each storage root */
    int *last = malloc((size_t)n * sizeof(int));
    int *slot_of = malloc((size_t)n * sizeof(int));
    slot_t *slots = malloc((size_t)n * sizeof(slot_t));
    int64_t *gslot = malloc((size_t)n * sizeof(int64_t));
    if (!last || !slot_of || !slots || !gslot) {
        free(last); free(slot_of); free(slots); free(gslot);
        return acv_error(ACV_ENOMEM, "out of memory planning the graph");
    }
    for (int i = 0; i < n; i++) last[i] = i;
    for (int i = 0; i < n; i++) {
        acv_node *nd = &g->nodes[i];
        for (int k = 0; k < nd->n_in; k++) {
            acv_id r = root_of(g, nd->in[k]);
            if (last[r] < i) last[r] = i;
        }
        if (nd->op == ACV_OP_RESHAPE) {
            acv_id r = root_of(g, i);
            if (last[r] < i) last[r] = i;
        }
    }
    acv_id outr = g->output >= 0 ? root_of(g, g->output) : -1;
    int nslots = 0;
    int64_t idx_total = 0;
    for (int i = 0; i < n; i++) {
        acv_node *nd = &g->nodes[i];
        slot_of[i] = -1;
        if (nd->op == ACV_OP_PARAM || nd->op == ACV_OP_RESHAPE) continue;
        int64_t need = align_up(nd->max_numel);
        /* save_mean at aux, save_rstd at aux + align_up(C) (see forward_node) */
        if (nd->op == ACV_OP_BATCHNORM) need += 2 * align_up(g->nodes[nd->in[0]].shape.d[1]);
        if (nd->op == ACV_OP_DROPOUT) need += align_up(nd->max_numel);
        if (nd->op == ACV_OP_MAXPOOL) idx_total += align_up(nd->max_numel);
        bool pinned = training || nd->op == ACV_OP_INPUT || i == outr || is_loss(nd->op);
        int best = -1;
        if (!pinned) {
            /* smallest free slot that fits, else the largest free slot (grown) */
            for (int s = 0; s < nslots; s++) {
                if (slots[s].busy_until >= i) continue;
                if (slots[s].size >= need) {
                    if (best < 0 || slots[best].size < need || slots[s].size < slots[best].size) best = s;
                } else if (best < 0 || (slots[best].size < need && slots[s].size > slots[best].size)) {
                    best = s;
                }
            }
        }
        if (best < 0) {
            best = nslots++;
            slots[best].size = 0;
        }
        if (slots[best].size < need) slots[best].size = need;
        slots[best].busy_until = pinned ? n + 1 : last[i];
        slot_of[i] = best;
    }
    int64_t total = 0;
    int64_t *slot_off = malloc((size_t)(nslots ? nslots : 1) * sizeof(int64_t));
    if (!slot_off) rc = acv_error(ACV_ENOMEM, "out of memory");
    for (int s = 0; s < nslots && !rc; s++) {
        slot_off[s] = total;
        total += slots[s].size;
    }
    /* gradient storage (training): one region per node needing it */
    int64_t gtotal = 0;
    for (int i = 0; i < n && !rc; i++) {
        acv_node *nd = &g->nodes[i];
        gslot[i] = -1;
        if (!nd->need_grad || nd->op == ACV_OP_PARAM || nd->op == ACV_OP_RESHAPE) continue;
        gslot[i] = total + gtotal;
        gtotal += align_up(nd->max_numel);
    }
    if (!rc) {
        g->arena_floats = total + gtotal;
        g->arena = aligned_alloc(64, (size_t)(g->arena_floats ? g->arena_floats : ALIGN_FLOATS) * sizeof(float));
        g->idx_arena = aligned_alloc(64, (size_t)(idx_total ? idx_total : ALIGN_FLOATS) * sizeof(int32_t));
        if (training) g->grads = calloc((size_t)(g->n_params ? g->n_params : 1), sizeof(float));
        if (!g->arena || !g->idx_arena || (training && !g->grads))
            rc = acv_error(ACV_ENOMEM, "cannot allocate %.1f MiB of activations for batch %d",
                           (double)g->arena_floats * 4 / 1048576.0, max_batch);
    }
    if (!rc) {
        memset(g->arena, 0, (size_t)g->arena_floats * sizeof(float));
        int64_t ioff = 0;
        for (int i = 0; i < n; i++) {
            acv_node *nd = &g->nodes[i];
            if (nd->op == ACV_OP_PARAM) {
                nd->grad = nd->trainable && training ? g->grads + nd->poff : NULL;
                continue;
            }
            if (nd->op == ACV_OP_RESHAPE) continue;
            float *base = g->arena + slot_off[slot_of[i]];
            nd->out = base;
            int64_t o = align_up(nd->max_numel);
            if (nd->op == ACV_OP_BATCHNORM || nd->op == ACV_OP_DROPOUT) nd->aux = base + o;
            if (nd->op == ACV_OP_MAXPOOL) {
                nd->argmax = g->idx_arena + ioff;
                ioff += align_up(nd->max_numel);
            }
            nd->grad = gslot[i] >= 0 ? g->arena + gslot[i] : NULL;
        }
        for (int i = 0; i < n; i++) { /* aliases, in order so chains resolve */
            acv_node *nd = &g->nodes[i];
            if (nd->op != ACV_OP_RESHAPE) continue;
            nd->out = g->nodes[nd->in[0]].out;
            nd->grad = nd->need_grad ? g->nodes[nd->in[0]].grad : NULL;
        }
        g->compiled = true;
    }
    free(last); free(slot_of); free(slots); free(gslot); free(slot_off);
    return rc;
}

int acv_graph_set_batch(acv_graph *g, int n)
{
    if (!g->compiled) return acv_error(ACV_EINVAL, "graph is not compiled");
    if (n < 1 || n > g->max_batch)
        return acv_error(ACV_EINVAL, "batch %d not in 1..%d (the compiled maximum)", n, g->max_batch);
    if (n == g->batch) return 0;
    int rc = set_batch_shapes(g, n);
    if (rc) return rc;
    g->batch = n;
    return 0;
}

int acv_graph_batch(const acv_graph *g) { return g->batch; }

float *acv_graph_data(acv_graph *g, acv_id id)
{
    if (id < 0 || id >= g->n) return NULL;
    if (g->nodes[id].op == ACV_OP_PARAM && acv__graph_place_params(g)) return NULL;
    return g->nodes[id].out;
}

float *acv_graph_grad(acv_graph *g, acv_id id) { return id >= 0 && id < g->n ? g->nodes[id].grad : NULL; }

void acv_graph_want_input_grad(acv_graph *g, acv_id input, bool want)
{
    if (input >= 0 && input < g->n && g->nodes[input].op == ACV_OP_INPUT) {
        g->nodes[input].want_grad = want;
        g->compiled = false;
    }
}

/* ---- op dispatch ---------------------------------------------------------------------- */

static void conv_params(const acv_graph *g, const acv_node *nd, acv_conv_params *p)
{
    const acv_shape *x = &g->nodes[nd->in[0]].shape;
    const acv_conv_attrs *a = &nd->a.conv;
    p->N = (int)x->d[0]; p->C = (int)x->d[1]; p->H = (int)x->d[2]; p->W = (int)x->d[3];
    p->K = (int)nd->shape.d[1]; p->OH = (int)nd->shape.d[2]; p->OW = (int)nd->shape.d[3];
    p->KH = a->kh; p->KW = a->kw;
    p->stride_h = a->stride_h; p->stride_w = a->stride_w;
    p->pad_t = a->pad_t; p->pad_l = a->pad_l; p->pad_b = a->pad_b; p->pad_r = a->pad_r;
    p->dil_h = a->dil_h; p->dil_w = a->dil_w;
    p->groups = a->groups;
    p->out_pad_h = a->out_pad_h; p->out_pad_w = a->out_pad_w;
}

static void pool_params(const acv_graph *g, const acv_node *nd, acv_pool_params *p)
{
    const acv_shape *x = &g->nodes[nd->in[0]].shape;
    const acv_pool_attrs *a = &nd->a.pool;
    p->N = (int)x->d[0]; p->C = (int)x->d[1]; p->H = (int)x->d[2]; p->W = (int)x->d[3];
    p->OH = (int)nd->shape.d[2]; p->OW = (int)nd->shape.d[3];
    p->KH = a->kh; p->KW = a->kw; p->stride_h = a->stride_h; p->stride_w = a->stride_w;
    p->pad_t = a->pad_t; p->pad_l = a->pad_l; p->pad_b = a->pad_b; p->pad_r = a->pad_r;
    p->dil_h = a->dil_h; p->dil_w = a->dil_w;
    p->count_include_pad = a->count_include_pad; p->ceil_mode = a->ceil_mode;
}

static void bcast(const acv_graph *g, const acv_node *nd, acv_bcast *s)
{
    const acv_shape *sh[3] = {&g->nodes[nd->in[0]].shape, &g->nodes[nd->in[1]].shape, &nd->shape};
    int64_t *dst[3] = {s->a, s->b, s->out};
    for (int t = 0; t < 3; t++) {
        int off = ACV_BCAST_DIMS - sh[t]->ndim;
        for (int i = 0; i < ACV_BCAST_DIMS; i++) dst[t][i] = i < off ? 1 : sh[t]->d[i - off];
    }
}

static void axis_split(const acv_shape *s, int axis, int64_t *outer, int64_t *inner)
{
    *outer = 1;
    *inner = 1;
    for (int i = 0; i < axis; i++) *outer *= s->d[i];
    for (int i = axis + 1; i < s->ndim; i++) *inner *= s->d[i];
}

#define IN(k) (g->nodes[nd->in[k]].out)
#define DIN(k) (g->nodes[nd->in[k]].grad)
#define OPT_IN(k) (nd->n_in > (k) ? IN(k) : NULL)

static int forward_node(acv_graph *g, acv_id id, bool training, uint64_t seed)
{
    acv_node *nd = &g->nodes[id];
    const acv_backend *be = g->be;
    const acv_shape *xs = nd->n_in ? &g->nodes[nd->in[0]].shape : NULL;
    int64_t numel = acv_shape_numel(&nd->shape);
    switch (nd->op) {
    case ACV_OP_INPUT: case ACV_OP_PARAM: case ACV_OP_RESHAPE:
        return 0;
    case ACV_OP_CONV2D: case ACV_OP_CONVT2D: {
        acv_conv_params p;
        conv_params(g, nd, &p);
        if (nd->op == ACV_OP_CONV2D) {
            if (be->conv2d_forward) be->conv2d_forward(&nd->cache, nd->out, IN(0), IN(1), OPT_IN(2), &p);
            else acv_ref_conv2d_forward(nd->out, IN(0), IN(1), OPT_IN(2), &p);
        } else {
            if (be->convt2d_forward) be->convt2d_forward(&nd->cache, nd->out, IN(0), IN(1), OPT_IN(2), &p);
            else acv_ref_convt2d_forward(nd->out, IN(0), IN(1), OPT_IN(2), &p);
        }
        return 0;
    }
    case ACV_OP_BATCHNORM: {
        int N = (int)xs->d[0], C = (int)xs->d[1];
        int HW = (int)(acv_shape_numel(xs) / ((int64_t)N * C));
        float *sm = nd->aux, *sr = nd->aux + align_up(C);
        if (be->batchnorm_forward)
            be->batchnorm_forward(&nd->cache, nd->out, sm, sr, IN(0), IN(1), IN(2), IN(3), IN(4), N, C, HW,
                                  nd->a.eps, nd->a.momentum, training);
        else
            acv_ref_batchnorm_forward(nd->out, sm, sr, IN(0), IN(1), IN(2), IN(3), IN(4), N, C, HW, nd->a.eps,
                                      nd->a.momentum, training);
        return 0;
    }
    case ACV_OP_ACT:
        acv_ref_act_forward(nd->out, IN(0), numel, (acv_act)nd->a.act, nd->a.alpha);
        return 0;
    case ACV_OP_MAXPOOL: case ACV_OP_AVGPOOL: {
        acv_pool_params p;
        pool_params(g, nd, &p);
        if (nd->op == ACV_OP_MAXPOOL) {
            if (be->maxpool_forward) be->maxpool_forward(&nd->cache, nd->out, nd->argmax, IN(0), &p);
            else acv_ref_maxpool_forward(nd->out, nd->argmax, IN(0), &p);
        } else {
            acv_ref_avgpool_forward(nd->out, IN(0), &p);
        }
        return 0;
    }
    case ACV_OP_GAP:
        acv_ref_gap_forward(nd->out, IN(0), (int)xs->d[0], (int)xs->d[1], (int)(xs->d[2] * xs->d[3]));
        return 0;
    case ACV_OP_UPSAMPLE:
        if (nd->a.bilinear)
            acv_ref_upsample_bilinear_forward(nd->out, IN(0), (int)xs->d[0], (int)xs->d[1], (int)xs->d[2],
                                              (int)xs->d[3], nd->a.oh, nd->a.ow, nd->a.align_corners);
        else
            acv_ref_upsample_nearest_forward(nd->out, IN(0), (int)xs->d[0], (int)xs->d[1], (int)xs->d[2],
                                             (int)xs->d[3], nd->a.oh, nd->a.ow);
        return 0;
    case ACV_OP_BINARY: {
        acv_bcast s;
        bcast(g, nd, &s);
        acv_ref_binary_forward(nd->out, IN(0), IN(1), &s, (acv_binop)nd->a.binop);
        return 0;
    }
    case ACV_OP_CONCAT: {
        int64_t outer, inner;
        axis_split(&nd->shape, nd->a.axis, &outer, &inner);
        const float *ins[nd->n_in];
        int sizes[nd->n_in];
        for (int k = 0; k < nd->n_in; k++) {
            ins[k] = IN(k);
            sizes[k] = (int)g->nodes[nd->in[k]].shape.d[nd->a.axis];
        }
        acv_ref_concat_forward(nd->out, ins, sizes, nd->n_in, outer, inner);
        return 0;
    }
    case ACV_OP_SLICE: {
        int64_t outer, inner;
        axis_split(xs, nd->a.axis, &outer, &inner);
        acv_ref_slice_forward(nd->out, IN(0), outer, xs->d[nd->a.axis], inner, nd->a.start,
                              nd->shape.d[nd->a.axis], nd->a.step);
        return 0;
    }
    case ACV_OP_LINEAR: {
        int M = (int)xs->d[0], I = (int)xs->d[1], O = (int)nd->shape.d[1];
        if (be->linear_forward) be->linear_forward(&nd->cache, nd->out, IN(0), IN(1), OPT_IN(2), M, I, O);
        else acv_ref_linear_forward(nd->out, IN(0), IN(1), OPT_IN(2), M, I, O);
        return 0;
    }
    case ACV_OP_SOFTMAX: {
        int64_t outer, inner;
        axis_split(xs, nd->a.axis, &outer, &inner);
        acv_ref_softmax_forward(nd->out, IN(0), outer, xs->d[nd->a.axis], inner, nd->a.log);
        return 0;
    }
    case ACV_OP_DROPOUT:
        if (training && nd->a.p > 0)
            acv_ref_dropout_forward(nd->out, nd->aux, IN(0), numel, nd->a.p, seed ^ ((uint64_t)id * 0x9e3779b97f4a7c15ULL));
        else
            memcpy(nd->out, IN(0), (size_t)numel * sizeof(float));
        return 0;
    case ACV_OP_CROSS_ENTROPY: {
        const acv_shape *ts = &g->nodes[nd->in[1]].shape;
        int N = (int)xs->d[0], K = (int)xs->d[1];
        bool soft = ts->ndim == 2 && ts->d[1] == K && K > 1;
        nd->out[0] = soft ? acv_ref_cross_entropy_soft_forward(IN(0), IN(1), N, K)
                          : acv_ref_cross_entropy_forward(IN(0), IN(1), nd->a.class_weights, N, K, nd->a.smoothing);
        break;
    }
    case ACV_OP_BCE_LOGITS:
        nd->out[0] = acv_ref_bce_logits_forward(IN(0), IN(1), acv_shape_numel(xs));
        break;
    case ACV_OP_FOCAL:
        nd->out[0] = acv_ref_focal_forward(IN(0), IN(1), acv_shape_numel(xs), nd->a.alpha, nd->a.gamma);
        break;
    default:
        return acv_error(ACV_EINVAL, "cannot run op %s", acv__op_name(nd->op));
    }
    if (!isfinite(nd->out[0]))
        return acv_error(ACV_ENUMERIC, "%s: the loss is %s", acv__op_name(nd->op), isnan(nd->out[0]) ? "NaN" : "infinite");
    return 0;
}

static void backward_node(acv_graph *g, acv_id id)
{
    acv_node *nd = &g->nodes[id];
    const acv_backend *be = g->be;
    const acv_shape *xs = nd->n_in ? &g->nodes[nd->in[0]].shape : NULL;
    int64_t numel = acv_shape_numel(&nd->shape);
    float *dout = nd->grad;
    switch (nd->op) {
    case ACV_OP_INPUT: case ACV_OP_PARAM: case ACV_OP_RESHAPE:
        return;
    case ACV_OP_CONV2D: case ACV_OP_CONVT2D: {
        acv_conv_params p;
        conv_params(g, nd, &p);
        float *db = nd->n_in > 2 ? DIN(2) : NULL;
        if (nd->op == ACV_OP_CONV2D) {
            if (be->conv2d_backward) be->conv2d_backward(&nd->cache, DIN(0), DIN(1), db, dout, IN(0), IN(1), &p);
            else acv_ref_conv2d_backward(DIN(0), DIN(1), db, dout, IN(0), IN(1), &p);
        } else {
            if (be->convt2d_backward) be->convt2d_backward(&nd->cache, DIN(0), DIN(1), db, dout, IN(0), IN(1), &p);
            else acv_ref_convt2d_backward(DIN(0), DIN(1), db, dout, IN(0), IN(1), &p);
        }
        return;
    }
    case ACV_OP_BATCHNORM: {
        int N = (int)xs->d[0], C = (int)xs->d[1];
        int HW = (int)(acv_shape_numel(xs) / ((int64_t)N * C));
        float *sm = nd->aux, *sr = nd->aux + align_up(C);
        if (be->batchnorm_backward)
            be->batchnorm_backward(&nd->cache, DIN(0), DIN(1), DIN(2), dout, IN(0), IN(1), sm, sr, IN(4), N, C, HW,
                                   nd->a.eps, true);
        else
            acv_ref_batchnorm_backward(DIN(0), DIN(1), DIN(2), dout, IN(0), IN(1), sm, sr, IN(4), N, C, HW, nd->a.eps,
                                       true);
        return;
    }
    case ACV_OP_ACT:
        if (DIN(0)) acv_ref_act_backward(DIN(0), dout, IN(0), nd->out, numel, (acv_act)nd->a.act, nd->a.alpha);
        return;
    case ACV_OP_MAXPOOL: case ACV_OP_AVGPOOL: {
        if (!DIN(0)) return;
        acv_pool_params p;
        pool_params(g, nd, &p);
        if (nd->op == ACV_OP_MAXPOOL) {
            if (be->maxpool_backward) be->maxpool_backward(&nd->cache, DIN(0), dout, nd->argmax, &p);
            else acv_ref_maxpool_backward(DIN(0), dout, nd->argmax, &p);
        } else {
            acv_ref_avgpool_backward(DIN(0), dout, &p);
        }
        return;
    }
    case ACV_OP_GAP:
        if (DIN(0)) acv_ref_gap_backward(DIN(0), dout, (int)xs->d[0], (int)xs->d[1], (int)(xs->d[2] * xs->d[3]));
        return;
    case ACV_OP_UPSAMPLE:
        if (!DIN(0)) return;
        if (nd->a.bilinear)
            acv_ref_upsample_bilinear_backward(DIN(0), dout, (int)xs->d[0], (int)xs->d[1], (int)xs->d[2],
                                               (int)xs->d[3], nd->a.oh, nd->a.ow, nd->a.align_corners);
        else
            acv_ref_upsample_nearest_backward(DIN(0), dout, (int)xs->d[0], (int)xs->d[1], (int)xs->d[2],
                                              (int)xs->d[3], nd->a.oh, nd->a.ow);
        return;
    case ACV_OP_BINARY: {
        acv_bcast s;
        bcast(g, nd, &s);
        acv_ref_binary_backward(DIN(0), DIN(1), dout, IN(0), IN(1), &s, (acv_binop)nd->a.binop);
        return;
    }
    case ACV_OP_CONCAT: {
        int64_t outer, inner;
        axis_split(&nd->shape, nd->a.axis, &outer, &inner);
        float *dins[nd->n_in];
        int sizes[nd->n_in];
        for (int k = 0; k < nd->n_in; k++) {
            dins[k] = DIN(k);
            sizes[k] = (int)g->nodes[nd->in[k]].shape.d[nd->a.axis];
        }
        acv_ref_concat_backward(dins, dout, sizes, nd->n_in, outer, inner);
        return;
    }
    case ACV_OP_SLICE: {
        if (!DIN(0)) return;
        int64_t outer, inner;
        axis_split(xs, nd->a.axis, &outer, &inner);
        acv_ref_slice_backward(DIN(0), dout, outer, xs->d[nd->a.axis], inner, nd->a.start, nd->shape.d[nd->a.axis],
                               nd->a.step);
        return;
    }
    case ACV_OP_LINEAR: {
        int M = (int)xs->d[0], I = (int)xs->d[1], O = (int)nd->shape.d[1];
        float *db = nd->n_in > 2 ? DIN(2) : NULL;
        if (be->linear_backward) be->linear_backward(&nd->cache, DIN(0), DIN(1), db, dout, IN(0), IN(1), M, I, O);
        else acv_ref_linear_backward(DIN(0), DIN(1), db, dout, IN(0), IN(1), M, I, O);
        return;
    }
    case ACV_OP_SOFTMAX: {
        if (!DIN(0)) return;
        int64_t outer, inner;
        axis_split(xs, nd->a.axis, &outer, &inner);
        acv_ref_softmax_backward(DIN(0), dout, nd->out, outer, xs->d[nd->a.axis], inner, nd->a.log);
        return;
    }
    case ACV_OP_DROPOUT:
        if (!DIN(0)) return;
        if (nd->a.p > 0) acv_ref_dropout_backward(DIN(0), dout, nd->aux, numel);
        else for (int64_t i = 0; i < numel; i++) DIN(0)[i] += dout[i];
        return;
    case ACV_OP_CROSS_ENTROPY: {
        if (!DIN(0)) return;
        const acv_shape *ts = &g->nodes[nd->in[1]].shape;
        int N = (int)xs->d[0], K = (int)xs->d[1];
        if (ts->ndim == 2 && ts->d[1] == K && K > 1)
            acv_ref_cross_entropy_soft_backward(DIN(0), IN(0), IN(1), N, K, dout[0]);
        else
            acv_ref_cross_entropy_backward(DIN(0), IN(0), IN(1), nd->a.class_weights, N, K, nd->a.smoothing, dout[0]);
        return;
    }
    case ACV_OP_BCE_LOGITS:
        if (DIN(0)) acv_ref_bce_logits_backward(DIN(0), IN(0), IN(1), acv_shape_numel(xs), dout[0]);
        return;
    case ACV_OP_FOCAL:
        if (DIN(0)) acv_ref_focal_backward(DIN(0), IN(0), IN(1), acv_shape_numel(xs), nd->a.alpha, nd->a.gamma, dout[0]);
        return;
    default:
        return;
    }
}

int acv_graph_forward(acv_graph *g, acv_id upto, bool training, uint64_t seed)
{
    if (!g->compiled) return acv_error(ACV_EINVAL, "graph is not compiled");
    if (training && !g->training) return acv_error(ACV_EINVAL, "graph was compiled for inference, not training");
    int last = upto < 0 || upto >= g->n ? g->n - 1 : upto;
    for (int i = 0; i <= last; i++) {
        int rc = forward_node(g, i, training, seed);
        if (rc) return rc;
    }
    return 0;
}

int acv_graph_backward(acv_graph *g, acv_id loss)
{
    if (!g->compiled || !g->training) return acv_error(ACV_EINVAL, "graph was not compiled for training");
    if (loss < 0 || loss >= g->n || acv_shape_numel(&g->nodes[loss].shape) != 1)
        return acv_error(ACV_EINVAL, "backward needs a scalar loss node");
    acv_node *ln = &g->nodes[loss];
    if (!ln->grad) return 0; /* nothing trainable upstream */
    /* zero every gradient (backward accumulates) */
    int64_t first = -1;
    for (int i = 0; i < g->n; i++)
        if (g->nodes[i].grad && g->nodes[i].op != ACV_OP_PARAM) {
            int64_t off = g->nodes[i].grad - g->arena;
            if (first < 0 || off < first) first = off;
        }
    if (first >= 0) memset(g->arena + first, 0, (size_t)(g->arena_floats - first) * sizeof(float));
    memset(g->grads, 0, (size_t)g->n_params * sizeof(float));
    ln->grad[0] = 1.0f;
    for (int i = loss; i >= 0; i--)
        if (g->nodes[i].need_grad && g->nodes[i].grad) backward_node(g, i);
    return 0;
}
