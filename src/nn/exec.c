/* Graph execution: memory planning, forward and backward (see autocv/graph.h).
 *
 * Planning happens once per compile for the maximum batch size. Training keeps every
 * activation (backward reads them) and gives each node that needs a gradient its own
 * gradient buffer; inference shares buffers between nodes whose lifetimes do not overlap
 * (greedy best fit over "slots"). Reshape/flatten never copy: they alias their input. */
#include "nn/graph_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autocv/error.h"
#include "base/timeutil.h"

/* Per-op time accounting, on when ACV_PROFILE is set in the environment (developer aid;
 * printed by acv_graph_profile_print). */
static int g_prof = -1;
static double g_prof_t[ACV_OP_COUNT][2];
static long g_prof_n[ACV_OP_COUNT][2];

/* ACV_PROFILE=nodes: per node id, forward and backward seconds, then forward and backward
 * floating-point operations (convolutions and linear layers) */
static double *g_node_t;
static int g_node_cap;
#define NODE_STATS 4

static bool prof_on(void)
{
    if (g_prof < 0) {
        const char *e = getenv("ACV_PROFILE");
        g_prof = !e ? 0 : strcmp(e, "nodes") == 0 ? 2 : 1;
    }
    return g_prof;
}

/* The operations of node id's backward: a forward's worth for the input's gradient and one
 * for the weights' (when each is wanted). */
static double bwd_flops(const acv_graph *g, int id)
{
    const acv_node *n = &g->nodes[id];
    if (n->op != ACV_OP_CONV2D && n->op != ACV_OP_CONVT2D && n->op != ACV_OP_LINEAR) return 0.0;
    int parts = g->nodes[n->in[0]].need_grad + g->nodes[n->in[1]].need_grad;
    return parts * acv__node_flops(g, id);
}

static void prof_node(const acv_graph *g, int id, int bwd, double dt)
{
    if (g_prof != 2) return;
    if (id >= g_node_cap) {
        int cap = id + 256;
        double *t = realloc(g_node_t, (size_t)cap * NODE_STATS * sizeof *t);
        if (!t) return;
        memset(t + NODE_STATS * g_node_cap, 0, (size_t)(cap - g_node_cap) * NODE_STATS * sizeof *t);
        g_node_t = t;
        g_node_cap = cap;
    }
    double *st = g_node_t + NODE_STATS * id;
    st[bwd] += dt;
    st[2 + bwd] += (bwd ? bwd_flops(g, id) : acv__node_flops(g, id)) * g->batch;
}

void acv_graph_profile_nodes(const acv_graph *g, FILE *f)
{
    if (g_prof != 2 || !g_node_t) return;
    double tot = 0;
    for (int i = 0; i < g->n && i < g_node_cap; i++) tot += g_node_t[NODE_STATS * i] + g_node_t[NODE_STATS * i + 1];
    if (tot <= 0) return;
    fprintf(f, "%5s %-10s %-22s %-22s %10s %10s %6s %8s %8s  %s\n", "node", "op", "input", "output", "fwd ms",
            "bwd ms", "share", "fwd GF/s", "bwd GF/s", "impl (forward)");
    for (int i = 0; i < g->n && i < g_node_cap; i++) {
        const acv_node *nd = &g->nodes[i];
        const double *st = g_node_t + NODE_STATS * i;
        double tf = st[0], tb = st[1];
        if (tf + tb <= 0 || nd->op == ACV_OP_PARAM) continue;
        char si[64] = "", so[64] = "", rf[16] = "", rb[16] = "";
        if (nd->n_in) acv_shape_str(&g->nodes[nd->in[0]].shape, si, sizeof si);
        acv_shape_str(&nd->shape, so, sizeof so);
        if (st[2] > 0 && tf > 0) snprintf(rf, sizeof rf, "%.1f", st[2] / tf / 1e9);
        if (st[3] > 0 && tb > 0) snprintf(rb, sizeof rb, "%.1f", st[3] / tb / 1e9);
        const char *impl = "";
        if (nd->op == ACV_OP_CONV2D && g->be && g->be->conv_impl) impl = g->be->conv_impl(nd->cache);
        fprintf(f, "%5d %-10s %-22s %-22s %10.2f %10.2f %5.1f%% %8s %8s  %s\n", i, acv__op_name(nd->op), si, so,
                tf * 1e3, tb * 1e3, 100 * (tf + tb) / tot, rf, rb, impl);
    }
}

void acv_graph_profile_print(FILE *f)
{
    double tot = 0;
    for (int i = 0; i < ACV_OP_COUNT; i++) tot += g_prof_t[i][0] + g_prof_t[i][1];
    if (tot <= 0) return;
    fprintf(f, "%-14s %10s %10s %6s\n", "op", "fwd ms", "bwd ms", "share");
    for (int i = 0; i < ACV_OP_COUNT; i++)
        if (g_prof_n[i][0] || g_prof_n[i][1])
            fprintf(f, "%-14s %10.1f %10.1f %5.1f%%\n", acv__op_name((acv_op)i), g_prof_t[i][0] * 1e3,
                    g_prof_t[i][1] * 1e3, 100 * (g_prof_t[i][0] + g_prof_t[i][1]) / tot);
}

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
        free(n->fold_w);
        free(n->fold_b);
        n->fold_w = n->fold_b = NULL;
        n->fused_into = n->fold_bn = n->fused_act = n->dw_head = -1;
        n->post_act = 0;
        n->blk = 0;
        n->needs_plain = false;
        n->plain = NULL;
    }
    g->prepared_version = 0;
    free(g->arena);
    free(g->idx_arena);
    free(g->grads);
    g->arena = NULL;
    g->idx_arena = NULL;
    g->grads = NULL;
    g->compiled = false;
}

/* Sets every input's batch dim to n and re-infers the shapes (inputs included: their
 * element counts are checked at the new batch). A shape that fails (over the per-tensor
 * element limit: a batch too large for this model) puts the inputs back, re-infers the
 * shapes as they were and returns the error without leaving it as the graph's sticky
 * error, so that a smaller batch can still be compiled. */
static int set_batch_shapes(acv_graph *g, int n)
{
    if (g->status) return acv_error(g->status, "%s", g->errmsg);
    int64_t *old = malloc((size_t)(g->n ? g->n : 1) * sizeof *old);
    if (!old) return acv_error(ACV_ENOMEM, "out of memory");
    int rc = 0, done = 0;
    for (; done < g->n && !rc; done++) {
        acv_node *nd = &g->nodes[done];
        if (nd->op == ACV_OP_PARAM) continue;
        if (nd->op == ACV_OP_INPUT) {
            old[done] = nd->shape.d[0];
            nd->shape.d[0] = n;
        }
        rc = acv__graph_infer(g, done);
    }
    if (rc) {
        char msg[sizeof g->errmsg];
        snprintf(msg, sizeof msg, "%s", g->errmsg);
        g->status = 0;
        for (int i = 0; i < done; i++)
            if (g->nodes[i].op == ACV_OP_INPUT) g->nodes[i].shape.d[0] = old[i];
        for (int i = 0; i < g->n; i++)
            if (g->nodes[i].op != ACV_OP_PARAM) acv__graph_infer(g, i);
        rc = acv_error(rc, "batch %d: %s", n, msg);
    }
    free(old);
    return rc;
}

/* Nodes that own no storage: reshapes and nodes fused into a convolution. */
static bool is_alias(const acv_node *n) { return n->op == ACV_OP_RESHAPE || n->fused_into >= 0; }

static acv_id root_of(const acv_graph *g, acv_id id)
{
    while (is_alias(&g->nodes[id])) id = g->nodes[id].in[0];
    return id;
}

/* Inference only: folds a batch norm that is a convolution's sole consumer into it, and
 * an activation oneDNN can apply in the convolution's epilogue (ReLU family, SiLU, sigmoid,
 * tanh, hard-swish) likewise. Fused nodes become aliases of the convolution's output. */
static int plan_fusion(acv_graph *g)
{
    int n = g->n;
    int *uses = calloc(n > 0 ? (size_t)n : 1, sizeof(int));
    if (!uses) return acv_error(ACV_ENOMEM, "out of memory");
    for (int i = 0; i < n; i++)
        for (int k = 0; k < g->nodes[i].n_in; k++) uses[g->nodes[i].in[k]]++;
    for (int i = 0; i < n; i++) {
        acv_node *nd = &g->nodes[i];
        if (nd->n_in == 0) continue;
        acv_id x = nd->in[0];
        acv_node *src = &g->nodes[x];
        if (uses[x] != 1 || x == g->output) continue;
        if (nd->op == ACV_OP_BATCHNORM && src->op == ACV_OP_CONV2D && src->fold_bn < 0 && !src->post_act) {
            size_t K = (size_t)src->shape.d[1], nw = (size_t)acv_shape_numel(&g->nodes[src->in[1]].shape);
            src->fold_w = malloc(nw * sizeof(float));
            src->fold_b = malloc(K * sizeof(float));
            if (!src->fold_w || !src->fold_b) {
                free(uses);
                return acv_error(ACV_ENOMEM, "out of memory folding %s", nd->name);
            }
            src->fold_bn = i;
            nd->fused_into = x;
        } else if (nd->op == ACV_OP_ACT && nd->a.act != ACV_ACT_HARDSIGMOID) {
            acv_id conv = src->op == ACV_OP_CONV2D ? x : src->fused_into;
            if (conv < 0 || g->nodes[conv].op != ACV_OP_CONV2D || g->nodes[conv].post_act) continue;
            g->nodes[conv].post_act = 1 + nd->a.act;
            g->nodes[conv].post_alpha = nd->a.alpha;
            nd->fused_into = conv;
        }
    }
    free(uses);
    return 0;
}

/* Training on a backend with batchnorm_act_forward: an activation whose input is a batch
 * norm is computed in the batch norm's pass (both outputs are still stored: backward reads
 * them). One activation per batch norm. */
static void plan_train_fusion(acv_graph *g)
{
    if (!g->be->batchnorm_act_forward) return;
    for (int i = 0; i < g->n; i++) {
        acv_node *nd = &g->nodes[i];
        if (nd->op != ACV_OP_ACT) continue;
        acv_node *src = &g->nodes[nd->in[0]];
        if (src->op == ACV_OP_BATCHNORM && src->fused_act < 0) src->fused_act = i;
    }
}

static bool blk_act_ok(int act)
{
    return act == ACV_ACT_RELU || act == ACV_ACT_RELU6 || act == ACV_ACT_LEAKY_RELU || act == ACV_ACT_SILU ||
           act == ACV_ACT_HARDSWISH || act == ACV_ACT_TANH ||
           act == ACV_ACT_GELU; /* f(0) = 0 keeps pad channels zero */
}

/* Whether node nd reads its input k in the blocked layout when that input is blocked. */
static bool reads_blocked(const acv_graph *g, const acv_node *nd, int k)
{
    if (k != 0 && nd->op != ACV_OP_BINARY) return false;
    switch (nd->op) {
    case ACV_OP_CONV2D: case ACV_OP_GAP: return true;
    case ACV_OP_ACT: case ACV_OP_BINARY: case ACV_OP_MAXPOOL: case ACV_OP_AVGPOOL: return nd->blk != 0;
    default: return false;
    }
}

/* Inference on a backend with a blocked layout (block B): convolutions write NCHW{B}c and
 * the ops between them (pooling, element-wise add/mul, activations) work on it, so tensors
 * stay blocked from one convolution to the next. A blocked tensor that some reader needs
 * plain (the graph output, a reshape, a linear layer, ...) is also converted to plain. */
static void plan_layouts(acv_graph *g, int B)
{
    for (int i = 0; i < g->n; i++) {
        acv_node *nd = &g->nodes[i];
        nd->blk = 0;
        nd->needs_plain = false;
        if (B <= 0 || nd->shape.ndim != 4) continue;
        if (nd->fused_into >= 0) {
            nd->blk = g->nodes[nd->fused_into].blk;
            continue;
        }
        const acv_node *x = nd->n_in ? &g->nodes[nd->in[0]] : NULL;
        switch (nd->op) {
        case ACV_OP_CONV2D: nd->blk = B; break;
        case ACV_OP_ACT: nd->blk = x->blk && blk_act_ok(nd->a.act) ? B : 0; break;
        case ACV_OP_MAXPOOL: case ACV_OP_AVGPOOL: nd->blk = x->blk ? B : 0; break;
        case ACV_OP_BINARY: {
            const acv_node *y = &g->nodes[nd->in[1]];
            bool same = x->shape.ndim == y->shape.ndim;
            for (int d = 0; same && d < x->shape.ndim; d++) same = x->shape.d[d] == y->shape.d[d];
            nd->blk = x->blk && y->blk && same && nd->a.binop != ACV_BIN_DIV ? B : 0;
            break;
        }
        default: break;
        }
    }
    for (int i = 0; i < g->n; i++) {
        const acv_node *nd = &g->nodes[i];
        if (nd->fused_into >= 0) continue;
        for (int k = 0; k < nd->n_in; k++)
            if (g->nodes[nd->in[k]].blk && !reads_blocked(g, nd, k)) g->nodes[root_of(g, nd->in[k])].needs_plain = true;
    }
    if (g->output >= 0 && g->nodes[g->output].blk) g->nodes[root_of(g, g->output)].needs_plain = true;
}

static void conv_params(const acv_graph *g, const acv_node *nd, acv_conv_params *p);

/* The parameters of inference convolution node nd as compute_node passes them. */
static void infer_conv_params(const acv_graph *g, const acv_node *nd, acv_conv_params *p)
{
    conv_params(g, nd, p);
    p->inference = true;
    p->post_act = nd->post_act;
    p->post_alpha = nd->post_alpha;
    p->src_block = g->nodes[nd->in[0]].blk;
    p->dst_block = nd->blk;
}

/* Inference on a backend that can: a depthwise 3x3 convolution whose input is a 1x1
 * convolution's output (after its folded batch norm and activation) read by nothing else
 * computes both in one pass (MobileNet's inverted residuals: the expanded tensor, the largest
 * of the block, is never written). The 1x1 convolution becomes an alias, as fused nodes are;
 * its input stays alive until the depthwise convolution has run. */
static void plan_dw_fusion(acv_graph *g)
{
    const char *e = getenv("ACV_DW_FUSION"); /* =0 turns it off (for comparisons) */
    if (!g->be->conv2d_pw_dw_ok || !g->be->conv2d_pw_dw_forward || (e && !strcmp(e, "0"))) return;
    int n = g->n;
    int *uses = calloc(n > 0 ? (size_t)n : 1, sizeof(int));
    if (!uses) return; /* an optimisation only */
    for (int i = 0; i < n; i++)
        for (int k = 0; k < g->nodes[i].n_in; k++) uses[g->nodes[i].in[k]]++;
    for (int i = 0; i < n; i++) {
        acv_node *d = &g->nodes[i];
        if (d->op != ACV_OP_CONV2D || d->fused_into >= 0 || !d->blk || d->a.conv.groups <= 1) continue;
        acv_id x = d->in[0], h = x;
        while (g->nodes[h].fused_into >= 0) h = g->nodes[h].fused_into;
        acv_node *hn = &g->nodes[h];
        if (hn->op != ACV_OP_CONV2D || hn->dw_head >= 0 || uses[x] != 1 || x == g->output || h == g->output ||
            (h != x && uses[h] != 1))
            continue;
        acv_conv_params p1, pd;
        infer_conv_params(g, hn, &p1);
        infer_conv_params(g, d, &pd);
        if (!g->be->conv2d_pw_dw_ok(&p1, &pd)) continue;
        d->dw_head = h;
        hn->fused_into = i;
    }
    free(uses);
}

/* Elements a node's output occupies in its layout. */
static int64_t layout_numel(const acv_node *nd)
{
    if (!nd->blk) return acv_shape_numel(&nd->shape);
    return acv_blk_numel((int)nd->shape.d[0], (int)nd->shape.d[1], nd->shape.d[2] * nd->shape.d[3], nd->blk);
}

/* Inference: after parameters may have changed, re-derives folded weights and drops the
 * backend's prepared copies. */
static void prepare_inference(acv_graph *g)
{
    if (g->training || g->prepared_version == g->param_version) return;
    for (int i = 0; i < g->n; i++) {
        acv_node *nd = &g->nodes[i];
        if (nd->op != ACV_OP_CONV2D && nd->op != ACV_OP_CONVT2D) continue;
        if (nd->cache && g->be && g->be->cache_free) g->be->cache_free(nd->cache);
        nd->cache = NULL;
        if (nd->fold_bn < 0) continue;
        const acv_node *bn = &g->nodes[nd->fold_bn];
        const float *w = g->nodes[nd->in[1]].out, *b = nd->n_in > 2 ? g->nodes[nd->in[2]].out : NULL;
        const float *gamma = g->nodes[bn->in[1]].out, *beta = g->nodes[bn->in[2]].out;
        const float *mean = g->nodes[bn->in[3]].out, *var = g->nodes[bn->in[4]].out;
        int64_t K = nd->shape.d[1], per = acv_shape_numel(&g->nodes[nd->in[1]].shape) / K;
        for (int64_t k = 0; k < K; k++) {
            double sc = (double)gamma[k] / sqrt((double)var[k] + (double)bn->a.eps);
            for (int64_t j = 0; j < per; j++) nd->fold_w[k * per + j] = (float)(w[k * per + j] * sc);
            nd->fold_b[k] = (float)(((b ? b[k] : 0.0) - mean[k]) * sc + beta[k]);
        }
    }
    g->prepared_version = g->param_version;
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
    if (!training && (rc = plan_fusion(g))) return rc;
    if (training) plan_train_fusion(g);
    plan_layouts(g, training || !g->be->blocked_channels ? 0 : g->be->blocked_channels());
    if (!training) plan_dw_fusion(g);

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
        if (is_alias(nd)) {
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
        if (nd->op == ACV_OP_PARAM || is_alias(nd)) continue;
        int64_t need = align_up(layout_numel(nd));
        if (nd->needs_plain) need += align_up(nd->max_numel);
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
            if (is_alias(nd)) continue;
            float *base = g->arena + slot_off[slot_of[i]];
            nd->out = base;
            nd->plain = nd->needs_plain ? base + align_up(layout_numel(nd)) : NULL;
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
            if (!is_alias(nd)) continue;
            const acv_node *src = &g->nodes[nd->in[0]];
            if (nd->fused_into >= 0) {
                nd->out = src->out;
                nd->plain = src->plain;
            } else {
                nd->out = src->blk ? src->plain : src->out; /* reshapes see plain data */
            }
            nd->grad = nd->need_grad ? src->grad : NULL;
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
    if (g->nodes[id].op == ACV_OP_PARAM) {
        if (acv__graph_place_params(g)) return NULL;
        g->param_version++;
    }
    const acv_node *nd = &g->nodes[id];
    return nd->blk && nd->plain ? nd->plain : nd->out;
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
    /* every field and the padding bytes: the CPU backend keys its prepared kernels on the
     * bytes of *p (a backward call with stray layout or activation fields would rebuild them) */
    memset(p, 0, sizeof *p);
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

/* Inputs as plain tensors (the plain copy of a blocked producer), and raw in the
 * producer's own layout (for ops that read blocked tensors). */
#define IN(k) (g->nodes[nd->in[k]].blk && g->nodes[nd->in[k]].plain ? g->nodes[nd->in[k]].plain : g->nodes[nd->in[k]].out)
#define RAW(k) (g->nodes[nd->in[k]].out)
#define BLK(k) (g->nodes[nd->in[k]].blk)
#define DIN(k) (g->nodes[nd->in[k]].grad)
#define OPT_IN(k) (nd->n_in > (k) ? IN(k) : NULL)

static int compute_node(acv_graph *g, acv_id id, bool training, uint64_t seed)
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
        p.inference = !g->training;
        p.post_act = nd->post_act;
        p.post_alpha = nd->post_alpha;
        if (nd->op == ACV_OP_CONV2D && nd->dw_head >= 0) { /* 1x1 conv + this depthwise one */
            const acv_node *h = &g->nodes[nd->dw_head];
            acv_conv_params p1, pd;
            infer_conv_params(g, h, &p1);
            infer_conv_params(g, nd, &pd);
            const float *w1 = h->fold_bn >= 0 ? h->fold_w : g->nodes[h->in[1]].out;
            const float *b1 = h->fold_bn >= 0 ? h->fold_b : h->n_in > 2 ? g->nodes[h->in[2]].out : NULL;
            const float *wd = nd->fold_bn >= 0 ? nd->fold_w : IN(1);
            const float *bd = nd->fold_bn >= 0 ? nd->fold_b : OPT_IN(2);
            be->conv2d_pw_dw_forward(&nd->cache, nd->out, g->nodes[h->in[0]].out, w1, b1, &p1, wd, bd, &pd);
        } else if (nd->op == ACV_OP_CONV2D) {
            const float *w = nd->fold_bn >= 0 ? nd->fold_w : IN(1);
            const float *b = nd->fold_bn >= 0 ? nd->fold_b : OPT_IN(2);
            const float *x = BLK(0) ? RAW(0) : IN(0);
            p.src_block = BLK(0);
            p.dst_block = nd->blk;
            if (be->conv2d_forward) be->conv2d_forward(&nd->cache, nd->out, x, w, b, &p);
            else acv_ref_conv2d_forward(nd->out, x, w, b, &p);
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
        if (nd->fused_act >= 0) {
            const acv_node *act = &g->nodes[nd->fused_act];
            be->batchnorm_act_forward(&nd->cache, nd->out, act->out, act->a.act, act->a.alpha, sm, sr, IN(0), IN(1),
                                      IN(2), IN(3), IN(4), N, C, HW, nd->a.eps, nd->a.momentum, training);
        } else if (be->batchnorm_forward)
            be->batchnorm_forward(&nd->cache, nd->out, sm, sr, IN(0), IN(1), IN(2), IN(3), IN(4), N, C, HW,
                                  nd->a.eps, nd->a.momentum, training);
        else
            acv_ref_batchnorm_forward(nd->out, sm, sr, IN(0), IN(1), IN(2), IN(3), IN(4), N, C, HW, nd->a.eps,
                                      nd->a.momentum, training);
        return 0;
    }
    case ACV_OP_ACT: {
        if (g->nodes[nd->in[0]].fused_act == id) return 0; /* computed by its batch norm */
        const float *x = nd->blk ? RAW(0) : IN(0);
        int64_t len = nd->blk ? layout_numel(nd) : numel;
        if (be->act_forward) be->act_forward(nd->out, x, len, (acv_act)nd->a.act, nd->a.alpha);
        else acv_ref_act_forward(nd->out, x, len, (acv_act)nd->a.act, nd->a.alpha);
        return 0;
    }
    case ACV_OP_MAXPOOL: case ACV_OP_AVGPOOL: {
        acv_pool_params p;
        pool_params(g, nd, &p);
        if (nd->blk) {
            if (nd->op == ACV_OP_MAXPOOL) acv_blk_maxpool_forward(nd->out, RAW(0), &p, nd->blk);
            else acv_blk_avgpool_forward(nd->out, RAW(0), &p, nd->blk);
        } else if (nd->op == ACV_OP_MAXPOOL) {
            if (be->maxpool_forward) be->maxpool_forward(&nd->cache, nd->out, nd->argmax, IN(0), &p);
            else acv_ref_maxpool_forward(nd->out, nd->argmax, IN(0), &p);
        } else {
            acv_ref_avgpool_forward(nd->out, IN(0), &p);
        }
        return 0;
    }
    case ACV_OP_GAP:
        if (BLK(0)) acv_blk_gap_forward(nd->out, RAW(0), (int)xs->d[0], (int)xs->d[1], xs->d[2] * xs->d[3], BLK(0));
        else acv_ref_gap_forward(nd->out, IN(0), (int)xs->d[0], (int)xs->d[1], (int)(xs->d[2] * xs->d[3]));
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
        if (nd->blk) { /* same-shape inputs, both blocked: element-wise over the padded tensor */
            for (int d = 0; d < ACV_BCAST_DIMS; d++) s.a[d] = s.b[d] = s.out[d] = 1;
            s.a[ACV_BCAST_DIMS - 1] = s.b[ACV_BCAST_DIMS - 1] = s.out[ACV_BCAST_DIMS - 1] = layout_numel(nd);
            acv_ref_binary_forward(nd->out, RAW(0), RAW(1), &s, (acv_binop)nd->a.binop);
            return 0;
        }
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
    case ACV_OP_LAYERNORM: {
        int64_t outer, inner;
        axis_split(xs, nd->a.axis, &outer, &inner);
        acv_ref_layernorm_forward(nd->out, IN(0), IN(1), IN(2), outer, xs->d[nd->a.axis], inner, nd->a.eps);
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

static int forward_node(acv_graph *g, acv_id id, bool training, uint64_t seed)
{
    acv_node *nd = &g->nodes[id];
    if (nd->fused_into >= 0) return 0; /* computed by its convolution */
    int rc = compute_node(g, id, training, seed);
    if (!rc && nd->blk && nd->needs_plain)
        acv_blk_to_plain(nd->plain, nd->out, (int)nd->shape.d[0], (int)nd->shape.d[1], nd->shape.d[2] * nd->shape.d[3],
                         nd->blk);
    return rc;
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
                                   nd->a.eps, g->fwd_training);
        else
            acv_ref_batchnorm_backward(DIN(0), DIN(1), DIN(2), dout, IN(0), IN(1), sm, sr, IN(4), N, C, HW, nd->a.eps,
                                       g->fwd_training);
        return;
    }
    case ACV_OP_ACT:
        if (!DIN(0)) return;
        if (be->act_backward) be->act_backward(DIN(0), dout, IN(0), nd->out, numel, (acv_act)nd->a.act, nd->a.alpha);
        else acv_ref_act_backward(DIN(0), dout, IN(0), nd->out, numel, (acv_act)nd->a.act, nd->a.alpha);
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
    case ACV_OP_LAYERNORM: {
        int64_t outer, inner;
        axis_split(xs, nd->a.axis, &outer, &inner);
        acv_ref_layernorm_backward(DIN(0), DIN(1), DIN(2), dout, IN(0), IN(1), outer, xs->d[nd->a.axis], inner,
                                   nd->a.eps);
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
        if (nd->a.p > 0 && g->fwd_training) acv_ref_dropout_backward(DIN(0), dout, nd->aux, numel);
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
    g->fwd_training = training;
    prepare_inference(g);
    bool prof = prof_on();
    for (int i = 0; i <= last; i++) {
        double t0 = prof ? acv_now() : 0;
        int rc = forward_node(g, i, training, seed);
        if (rc) return rc;
        if (prof) {
            double dt = acv_now() - t0;
            g_prof_t[g->nodes[i].op][0] += dt;
            g_prof_n[g->nodes[i].op][0]++;
            prof_node(g, i, 0, dt);
        }
    }
    return 0;
}

/* Zeroes every gradient, seeds node `from` with grad (numel floats; NULL: the scalar 1)
 * and runs every node's backward from `from` down to the inputs. */
static int backward_seeded(acv_graph *g, acv_id from, const float *grad, int64_t numel)
{
    acv_node *ln = &g->nodes[from];
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
    if (grad) memcpy(ln->grad, grad, (size_t)numel * sizeof(float));
    else ln->grad[0] = 1.0f;
    bool prof = prof_on();
    for (int i = from; i >= 0; i--)
        if (g->nodes[i].need_grad && g->nodes[i].grad) {
            double t0 = prof ? acv_now() : 0;
            backward_node(g, i);
            if (prof) {
                double dt = acv_now() - t0;
                g_prof_t[g->nodes[i].op][1] += dt;
                g_prof_n[g->nodes[i].op][1]++;
                prof_node(g, i, 1, dt);
            }
        }
    return 0;
}

int acv_graph_backward(acv_graph *g, acv_id loss)
{
    if (!g->compiled || !g->training) return acv_error(ACV_EINVAL, "graph was not compiled for training");
    if (loss < 0 || loss >= g->n || acv_shape_numel(&g->nodes[loss].shape) != 1)
        return acv_error(ACV_EINVAL, "backward needs a scalar loss node");
    return backward_seeded(g, loss, NULL, 1);
}

int acv_graph_backward_from(acv_graph *g, acv_id node, const float *grad)
{
    if (!g->compiled || !g->training) return acv_error(ACV_EINVAL, "graph was not compiled for training");
    if (node < 0 || node >= g->n || g->nodes[node].op == ACV_OP_PARAM)
        return acv_error(ACV_EINVAL, "backward_from: node %d is not an activation of the graph", node);
    if (!grad) return acv_error(ACV_EINVAL, "backward_from: no gradient given");
    return backward_seeded(g, node, grad, acv_shape_numel(&g->nodes[node].shape));
}
