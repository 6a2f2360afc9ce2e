/* The detector's network (see det.h): YOLOv8's layout built with the graph API.
 *
 *   backbone  Conv s2 (P1) - Conv s2 (P2) - C2f - Conv s2 (P3) - C2f - Conv s2 (P4) - C2f
 *             - Conv s2 (P5) - C2f - SPPF
 *   neck      top-down: up(P5) ++ P4 -> C2f -> up ++ P3 -> C2f = N3
 *             bottom-up: Conv s2(N3) ++ top-down P4 -> C2f = N4; Conv s2(N4) ++ P5 -> C2f = N5
 *   heads     per level, box: Conv3 - Conv3 - 1x1 to 4R; cls: Conv3 - Conv3 - 1x1 to K;
 *             concat(box, cls) -> (N, 4R + K, H*W), the three levels concatenated along anchors
 * where Conv = conv (no bias) + batch norm + SiLU and "++" is a channel concat. */
#include "tasks/det.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "autocv/error.h"
#include "data/det_dataset.h"
#include "nn/kernels.h"
#include "onnx/import.h"

static const acv_det_arch ARCHS[] = {
    {"det-s", "small YOLOv8-style detector (YOLOv8n widths, one bottleneck a block): fast on CPU",
     {16, 32, 64, 128, 256}, {1, 1, 1, 1}, 1, false},
    {"det-m", "medium YOLOv8-style detector (YOLOv8s layout): more accurate, about 3.5x det-s's cost",
     {32, 64, 128, 256, 512}, {1, 2, 2, 1}, 1, false},
    {"det-s-p2", "det-s with a fourth output level at stride 4, for very small objects (defects a few pixels "
     "across): about 1.4x det-s's cost", {16, 32, 64, 128, 256}, {1, 1, 1, 1}, 1, true},
    {"det-m-p2", "det-m with a fourth output level at stride 4, for very small objects: about 1.3x det-m's cost",
     {32, 64, 128, 256, 512}, {1, 2, 2, 1}, 1, true},
};
#define ARCH_N ((int)(sizeof ARCHS / sizeof ARCHS[0]))

#define BN_EPS 1e-3f
#define BN_MOMENTUM 0.03f

int acv_det_arch_list(const acv_det_arch **list)
{
    *list = ARCHS;
    return ARCH_N;
}

const acv_det_arch *acv_det_arch_find(const char *name)
{
    for (int i = 0; name && i < ARCH_N; i++)
        if (!strcmp(ARCHS[i].name, name)) return &ARCHS[i];
    return NULL;
}

const char *acv_det_auto(int imgsz, int64_t n_images, double small_share)
{
    bool m = n_images >= 10000 && imgsz <= 416, p2 = small_share >= 0.05;
    return m ? (p2 ? "det-m-p2" : "det-m") : (p2 ? "det-s-p2" : "det-s");
}

double acv_det_small_share(const struct acv_det_image *images, int n, int imgsz)
{
    int64_t boxes = 0, small = 0;
    for (int i = 0; i < n; i++) {
        const acv_det_image *im = &images[i];
        int side = im->w > im->h ? im->w : im->h;
        double scale = side > 0 ? (double)imgsz / side : 1.0;
        for (int b = 0; b < im->n; b++) {
            double bw = (im->boxes[b].x2 - im->boxes[b].x1) * scale, bh = (im->boxes[b].y2 - im->boxes[b].y1) * scale;
            boxes++;
            small += (bw < bh ? bw : bh) < 10.0;
        }
    }
    return boxes ? (double)small / boxes : 0.0;
}

/* ---- blocks ------------------------------------------------------------------------------ */

/* conv k x k (PyTorch's default init, as Ultralytics keeps it) named p.weight [+ p.bias] */
static acv_id conv(acv_graph *g, const char *p, acv_id x, int out, int k, int stride, bool bias, acv_init binit)
{
    const acv_shape *xs = acv_graph_shape(g, x);
    if (!xs) return acv_graph_status(g) ? acv_graph_status(g) : ACV_EINVAL;
    char nm[160];
    int64_t ws[4] = {out, xs->d[1], k, k}, bs[1] = {out};
    snprintf(nm, sizeof nm, "%s.weight", p);
    acv_id w = acv_param(g, nm, 4, ws, ACV_INIT_UNIFORM_FAN_IN, true);
    acv_id b = -1;
    if (bias) {
        snprintf(nm, sizeof nm, "%s.bias", p);
        b = acv_param(g, nm, 1, bs, binit, true);
    }
    int pad = k / 2;
    acv_conv_attrs a = {k, k, stride, stride, pad, pad, pad, pad, 1, 1, 1, 0, 0};
    return acv_conv2d_ex(g, p, x, w, b, &a);
}

/* Ultralytics' Conv: p.conv (no bias) + p.bn + SiLU */
static acv_id cbs(acv_graph *g, const char *p, acv_id x, int out, int k, int stride)
{
    char c[160], b[160];
    snprintf(c, sizeof c, "%s.conv", p);
    snprintf(b, sizeof b, "%s.bn", p);
    x = conv(g, c, x, out, k, stride, false, ACV_INIT_ZERO);
    x = acv_batchnorm(g, b, x, BN_EPS, BN_MOMENTUM);
    return acv_activation(g, x, ACV_ACT_SILU, 0);
}

/* C2f(out, n, shortcut): cv1 1x1 to 2c (c = out/2), split in halves; n bottlenecks (two 3x3
 * Convs, residual when shortcut) each on the previous piece; cv2 1x1 over all (2 + n) pieces. */
static acv_id c2f(acv_graph *g, const char *p, acv_id x, int out, int n, bool shortcut)
{
    char a[160], b[160];
    int c = out / 2;
    acv_id pieces[2 + 8];
    if (n > 8) return acv_error(ACV_EINVAL, "%s: at most 8 bottlenecks", p);
    snprintf(a, sizeof a, "%s.cv1", p);
    acv_id y = cbs(g, a, x, 2 * c, 1, 1);
    pieces[0] = acv_slice(g, y, 1, 0, c, 1);
    pieces[1] = acv_slice(g, y, 1, c, 2 * c, 1);
    for (int i = 0; i < n; i++) {
        acv_id h = pieces[1 + i];
        snprintf(a, sizeof a, "%s.m.%d.cv1", p, i);
        snprintf(b, sizeof b, "%s.m.%d.cv2", p, i);
        acv_id t = cbs(g, b, cbs(g, a, h, c, 3, 1), c, 3, 1);
        pieces[2 + i] = shortcut ? acv_add(g, h, t) : t;
    }
    snprintf(a, sizeof a, "%s.cv2", p);
    return cbs(g, a, acv_concat(g, 2 + n, pieces, 1), out, 1, 1);
}

/* SPPF: cv1 1x1 to in/2, three chained 5x5 stride-1 max pools, concat the four, cv2 1x1. */
static acv_id sppf(acv_graph *g, const char *p, acv_id x, int out)
{
    char a[160];
    const acv_shape *xs = acv_graph_shape(g, x);
    if (!xs) return acv_graph_status(g) ? acv_graph_status(g) : ACV_EINVAL;
    snprintf(a, sizeof a, "%s.cv1", p);
    acv_id y[4];
    y[0] = cbs(g, a, x, (int)xs->d[1] / 2, 1, 1);
    for (int i = 1; i < 4; i++) y[i] = acv_maxpool(g, y[i - 1], 5, 1, 2, false);
    snprintf(a, sizeof a, "%s.cv2", p);
    return cbs(g, a, acv_concat(g, 4, y, 1), out, 1, 1);
}

/* nearest 2x upsampling of x then channel concat with skip */
static acv_id up_cat(acv_graph *g, acv_id x, acv_id skip)
{
    const acv_shape *s = acv_graph_shape(g, skip);
    if (!s) return acv_graph_status(g) ? acv_graph_status(g) : ACV_EINVAL;
    acv_id in[2] = {acv_upsample(g, x, (int)s->d[2], (int)s->d[3], false, false), skip};
    return acv_concat(g, 2, in, 1);
}

static acv_id cat2(acv_graph *g, acv_id a, acv_id b)
{
    acv_id in[2] = {a, b};
    return acv_concat(g, 2, in, 1);
}

/* ---- building ------------------------------------------------------------------------------- */

/* The neck and heads on backbone features p2 (stride 4; used by "-p2" architectures only),
 * p3, p4 and p5 (strides 8, 16, 32; p5 after SPPF) of widths w[1..4]; marks the output and
 * fills *net (its input already set). */
static int neck_heads(acv_graph *g, const acv_det_arch *ar, int n_classes, acv_id p2, acv_id p3, acv_id p4,
                      acv_id p5, acv_det_net *net, const char *name)
{
    const int *w = ar->width;
    const int R = ACV_DET_REG_MAX;
    /* neck */
    int nd = ar->neck_depth;
    acv_id t4 = c2f(g, "neck.0", up_cat(g, p5, p4), w[3], nd, false);
    acv_id n3 = c2f(g, "neck.1", up_cat(g, t4, p3), w[2], nd, false), n2 = -1;
    if (ar->p2) { /* down to stride 4 and back: the P2 output, and N3 from it */
        acv_id t3 = n3;
        n2 = c2f(g, "neck.6", up_cat(g, t3, p2), w[1], nd, false);
        n3 = c2f(g, "neck.8", cat2(g, cbs(g, "neck.7", n2, w[1], 3, 2), t3), w[2], nd, false);
    }
    acv_id n4 = c2f(g, "neck.3", cat2(g, cbs(g, "neck.2", n3, w[2], 3, 2), t4), w[3], nd, false);
    acv_id n5 = c2f(g, "neck.5", cat2(g, cbs(g, "neck.4", n4, w[3], 3, 2), p5), w[4], nd, false);
    /* heads */
    const int L = ar->p2 ? 4 : 3;
    acv_id feats[ACV_DET_MAX_LEVELS] = {n3, n4, n5};
    if (ar->p2) feats[0] = n2, feats[1] = n3, feats[2] = n4, feats[3] = n5;
    int c2 = w[2] / 4 > 16 ? w[2] / 4 : 16;
    if (c2 < 4 * R) c2 = 4 * R;
    int c3 = n_classes < 100 ? n_classes : 100;
    if (c3 < w[2]) c3 = w[2];
    acv_id levels[ACV_DET_MAX_LEVELS];
    char a[96], b[96];
    for (int l = 0; l < L; l++) {
        /* the stride-4 level's heads are half as wide: its map has 4x the cells of P3's */
        int cb = ar->p2 && l == 0 ? c2 / 2 : c2, cc = ar->p2 && l == 0 ? (c3 / 2 > w[1] ? c3 / 2 : w[1]) : c3;
        snprintf(a, sizeof a, "head.box.%d.0", l);
        snprintf(b, sizeof b, "head.box.%d.1", l);
        acv_id bx = cbs(g, b, cbs(g, a, feats[l], cb, 3, 1), cb, 3, 1);
        snprintf(a, sizeof a, "head.box.%d.2", l);
        bx = conv(g, a, bx, 4 * R, 1, 1, true, ACV_INIT_ONE);
        snprintf(b, sizeof b, "head.box.%d.2.bias", l);
        net->box_bias[l] = acv_graph_find(g, b);
        snprintf(a, sizeof a, "head.cls.%d.0", l);
        snprintf(b, sizeof b, "head.cls.%d.1", l);
        acv_id cl = cbs(g, b, cbs(g, a, feats[l], cc, 3, 1), cc, 3, 1);
        snprintf(a, sizeof a, "head.cls.%d.2", l);
        cl = conv(g, a, cl, n_classes, 1, 1, true, ACV_INIT_ZERO);
        snprintf(b, sizeof b, "head.cls.%d.2.bias", l);
        net->cls_bias[l] = acv_graph_find(g, b);
        int64_t spec[3] = {0, 4 * R + n_classes, -1};
        levels[l] = acv_reshape(g, cat2(g, bx, cl), 3, spec);
    }
    acv_id out = acv_concat(g, L, levels, 2);
    int rc = acv_graph_status(g);
    if (rc) return acv_error_prefix(rc, "building %s: ", name);
    acv_graph_set_output(g, out);
    net->output = out;
    return acv_det_net_from_graph(g, n_classes, net);
}

/* The architecture `name` after checking the class count and input size. */
static int check_args(const char *name, int n_classes, int imgsz_h, int imgsz_w, const acv_det_arch **out)
{
    const acv_det_arch *ar = *out = acv_det_arch_find(name);
    if (!ar) {
        char list[128] = "";
        for (int i = 0; i < ARCH_N; i++) {
            strcat(list, i ? ", " : "");
            strcat(list, ARCHS[i].name);
        }
        return acv_error(ACV_ENOTFOUND, "unknown detector '%s' (choose one of: auto, %s)", name ? name : "", list);
    }
    if (n_classes < 1 || n_classes > 100000)
        return acv_error(ACV_EINVAL, "detector %s: %d classes (needs 1..100000)", name, n_classes);
    if (imgsz_h < 64 || imgsz_w < 64 || imgsz_h % 32 || imgsz_w % 32)
        return acv_error(ACV_EINVAL, "detector %s: input %dx%d must be multiples of 32, at least 64", name, imgsz_w,
                         imgsz_h);
    return 0;
}

/* Fills the fields of *net known before building and adds the input "images" (1, 3, H, W). */
static acv_id net_begin(acv_graph *g, acv_det_net *net, const acv_det_arch *ar, int n_classes, int imgsz_h, int imgsz_w)
{
    memset(net, 0, sizeof *net);
    net->arch = ar;
    net->n_classes = n_classes;
    net->reg_max = ACV_DET_REG_MAX;
    net->imgsz_h = imgsz_h;
    net->imgsz_w = imgsz_w;
    int64_t shape[4] = {1, 3, imgsz_h, imgsz_w};
    return net->input = acv_input(g, "images", 4, shape);
}

int acv_det_build(acv_graph *g, const char *name, int n_classes, int imgsz_h, int imgsz_w, acv_det_net *net)
{
    const acv_det_arch *ar;
    int rc = check_args(name, n_classes, imgsz_h, imgsz_w, &ar);
    if (rc) return rc;
    const int *w = ar->width;
    acv_id x = net_begin(g, net, ar, n_classes, imgsz_h, imgsz_w);
    /* backbone */
    x = cbs(g, "backbone.0", x, w[0], 3, 2);
    x = cbs(g, "backbone.1", x, w[1], 3, 2);
    acv_id p2 = x = c2f(g, "backbone.2", x, w[1], ar->depth[0], true);
    x = cbs(g, "backbone.3", x, w[2], 3, 2);
    acv_id p3 = x = c2f(g, "backbone.4", x, w[2], ar->depth[1], true);
    x = cbs(g, "backbone.5", x, w[3], 3, 2);
    acv_id p4 = x = c2f(g, "backbone.6", x, w[3], ar->depth[2], true);
    x = cbs(g, "backbone.7", x, w[4], 3, 2);
    x = c2f(g, "backbone.8", x, w[4], ar->depth[3], true);
    acv_id p5 = sppf(g, "backbone.9", x, w[4]);
    return neck_heads(g, ar, n_classes, p2, p3, p4, p5, net, name);
}

/* ---- a classifier's convolutional part as the backbone ---------------------------------- */

#define BB_PREFIX "backbone."
#define BB_INPUT "backbone_input" /* the fixed 1x1 convolution: RGB in [0, 1] -> the classifier's input
                                  (outside "backbone.": no classifier's name can collide with it) */
#define BB_LEVELS 4               /* strides 4, 8, 16, 32 */

/* The classifier's nodes that feed the features: keep[i] for each JSON node i (of `nodes`,
 * the "nodes" of its graph JSON) an ancestor of (or one of) the nodes in feat[0..n_feat). */
static void ancestors(const json_t *nodes, const int *feat, int n_feat, unsigned char *keep, int n)
{
    int m = (int)json_array_size(nodes);
    if (m > n) m = n;
    memset(keep, 0, (size_t)n);
    for (int f = 0; f < n_feat; f++)
        if (feat[f] >= 0 && feat[f] < m) keep[feat[f]] = 1;
    for (int i = m - 1; i >= 0; i--) {
        if (!keep[i]) continue;
        json_t *in = json_object_get(json_array_get(nodes, (size_t)i), "inputs");
        for (size_t k = 0; k < json_array_size(in); k++) {
            json_int_t r = json_integer_value(json_array_get(in, k));
            if (r >= 0 && r < i) keep[r] = 1;
        }
    }
}

/* What a user can recognise node i of the classifier's JSON by: its name, else its op after
 * the nearest named node it reads ("act after layer1.1.bn2"), else "node i". */
static void describe(const json_t *nodes, int i, char *out, size_t n)
{
    json_t *nd = json_array_get(nodes, (size_t)i);
    const char *nm = json_string_value(json_object_get(nd, "name")), *op = json_string_value(json_object_get(nd, "op"));
    snprintf(out, n, "%s node %d", op ? op : "", i);
    if (nm && nm[0]) {
        snprintf(out, n, "%s", nm);
    } else {
        json_t *up = nd;
        for (int step = 0; step < 16 && up; step++) { /* along the first inputs */
            json_t *in = json_object_get(up, "inputs");
            up = json_array_size(in) ? json_array_get(nodes, (size_t)json_integer_value(json_array_get(in, 0))) : NULL;
            const char *un = json_string_value(json_object_get(up, "name")), *uo = json_string_value(json_object_get(up, "op"));
            if (uo && !strcmp(uo, "input")) break;
            if (un && un[0]) {
                snprintf(out, n, "%s after %s", op ? op : "node", un);
                break;
            }
        }
    }
}

/* The feature of each level (see step 1 of acv_det_build_backbone): among the nodes whose map
 * is within a factor sqrt(2) of imgsz / stride (a classifier with unpadded convolutions or
 * ceil-mode pools has 79 for 80), the last one every path to the next, smaller maps goes
 * through: an ancestor of each node that reads the level and is already smaller (ResNet's
 * stage output, which both the strided convolution and the shortcut read; not a branch of
 * Inception's reduction block, which computes at the old size beside the others). The
 * deepest level takes its last node. ids: the JSON nodes' ids in the scratch graph g (at
 * imgsz; -1 past the first node that did not fit); head: the classifier's head, skipped. */
static int choose_features(const json_t *nodes, const acv_graph *g, const int *ids, const unsigned char *head, int n,
                           int imgsz, int *feat, int64_t *ch, int64_t *fh, int64_t *fw)
{
    int *lev = malloc((size_t)(n ? n : 1) * sizeof(int));
    int64_t *res = malloc((size_t)(n ? n : 1) * sizeof(int64_t));
    unsigned char *anc = malloc((size_t)(n ? n : 1)), *all = malloc((size_t)(n ? n : 1));
    int *stack = malloc((size_t)(n ? n : 1) * sizeof(int)), rc = 0;
    if (!lev || !res || !anc || !all || !stack) rc = acv_error(ACV_ENOMEM, "out of memory");
    for (int i = 0; !rc && i < n; i++) {
        lev[i] = -2; /* not a feature */
        res[i] = -1; /* not computed here */
        if (ids[i] < 0) continue;
        acv_op op = acv_graph_op(g, ids[i]);
        const acv_shape *sh = acv_graph_shape(g, ids[i]);
        if (op == ACV_OP_PARAM || op == ACV_OP_INPUT || !sh) continue;
        res[i] = sh->ndim == 4 ? sh->d[2] : 0;
        if (sh->ndim != 4 || head[i]) continue;
        lev[i] = -1;
        for (int l = 0; l < BB_LEVELS; l++) {
            double t = (double)imgsz / (4 << l);
            if (fabs(log2(sh->d[2] / t)) < 0.5 && fabs(log2(sh->d[3] / t)) < 0.5) lev[i] = l;
        }
    }
    for (int l = 0; !rc && l < BB_LEVELS; l++) {
        const double lo = imgsz / (4 << l) / sqrt(2.0);
        memset(all, 1, (size_t)n); /* the intersection of the transitions' ancestors */
        bool any = false;
        for (int j = 0; j < n; j++) {
            /* smaller than the level, and still a map (a squeeze-and-excitation block's global
             * pool reads the level too, without leaving it) */
            if (res[j] < 2 || head[j] || res[j] >= lo) continue;
            json_t *in = json_object_get(json_array_get(nodes, (size_t)j), "inputs");
            bool reads = false;
            for (size_t k = 0; k < json_array_size(in); k++) {
                json_int_t r = json_integer_value(json_array_get(in, k));
                if (r >= 0 && r < n && lev[r] == l) reads = true;
            }
            if (!reads) continue;
            any = true;
            memset(anc, 0, (size_t)n); /* j's ancestors */
            int sp = 0;
            stack[sp++] = j;
            while (sp) {
                int v = stack[--sp];
                json_t *vin = json_object_get(json_array_get(nodes, (size_t)v), "inputs");
                for (size_t k = 0; k < json_array_size(vin); k++) {
                    json_int_t r = json_integer_value(json_array_get(vin, k));
                    if (r >= 0 && r < n && !anc[r]) {
                        anc[r] = 1;
                        stack[sp++] = (int)r;
                    }
                }
            }
            for (int i = 0; i < n; i++) all[i] &= anc[i];
        }
        for (int i = 0; i < n; i++)
            if (lev[i] == l && (!any || all[i])) {
                const acv_shape *sh = acv_graph_shape(g, ids[i]);
                feat[l] = i;
                ch[l] = sh->d[1];
                fh[l] = sh->d[2];
                fw[l] = sh->d[3];
            }
    }
    free(lev);
    free(res);
    free(anc);
    free(all);
    free(stack);
    return rc;
}

/* head[i] for the JSON nodes of the classifier's head (see step 0 of acv_det_build_backbone):
 * from the output back along first inputs, the nodes that are not 4-D, global pools, or maps
 * with as many channels as classes; found on a replay at the classifier's own input size,
 * where every shape is known. */
static int mark_head(const char *js, const json_t *root, const acv_model *src, unsigned char *head, int n)
{
    memset(head, 0, (size_t)n);
    const json_t *nodes = json_object_get(root, "nodes");
    acv_graph *g = acv_graph_new();
    int *ids = malloc((size_t)(n ? n : 1) * sizeof(int)), rc = 0;
    if (!g || !ids) rc = acv_error(ACV_ENOMEM, "out of memory");
    if (!rc) {
        int64_t is[4] = {1, src->in_c, src->in_h, src->in_w};
        int added = acv_graph_append_json(g, js, acv_input(g, "x", 4, is), "", false, NULL, ids, n);
        if (added < 0) rc = added;
    }
    json_int_t i = rc ? -1 : json_integer_value(json_object_get(root, "output"));
    while (i >= 0 && i < n && ids[i] >= 0) {
        json_t *nd = json_array_get(nodes, (size_t)i);
        const acv_shape *sh = acv_graph_shape(g, ids[i]);
        const char *op = json_string_value(json_object_get(nd, "op"));
        if (!sh || !op || !strcmp(op, "input") || !strcmp(op, "param")) break;
        /* a feature map: not a global pool (whose output is 1x1 at any size), not as many
         * channels as classes (a class-score map); a map 1x1 at the classifier's own small
         * size still is one */
        if (sh->ndim == 4 && sh->d[1] != src->n_classes && strcmp(op, "gap")) break;
        head[i] = 1;
        json_t *in = json_object_get(nd, "inputs");
        i = json_array_size(in) ? json_integer_value(json_array_get(in, 0)) : -1;
    }
    acv_graph_free(g);
    free(ids);
    acv_error_clear();
    return rc;
}

void acv_det_backbone_free(acv_det_backbone *bb)
{
    if (!bb) return;
    acv_model_free(bb->src);
    bb->src = NULL;
}

int acv_det_build_backbone(acv_graph *g, const char *name, int n_classes, int imgsz, const char *path, bool freeze,
                           acv_det_net *net, acv_det_backbone *bb)
{
    const acv_det_arch *ar;
    memset(bb, 0, sizeof *bb);
    int rc = check_args(name, n_classes, imgsz, imgsz, &ar);
    if (rc) return rc;
    acv_model *src = NULL;
    size_t pl = strlen(path);
    if (pl > 5 && !strcasecmp(path + pl - 5, ".onnx")) { /* import at the detector's size: shapes fold there */
        acv_onnx_options oo = {.imgsz = imgsz, .height = imgsz, .width = imgsz};
        rc = acv_onnx_import(path, &oo, &src);
    } else {
        rc = acv_model_load(path, &src);
    }
    if (rc) return acv_error_prefix(rc, "--backbone %s: ", path);
    bb->src = src;
    if (strcmp(src->task, "cls"))
        return acv_error(ACV_EINVAL, "--backbone %s: a %s model, not an image classifier%s", path, src->task,
                         !strcmp(src->task, "det") ? " (to start from a detector, use --init)" : "");
    if (src->in_c != 1 && src->in_c != 3)
        return acv_error(ACV_EUNSUPPORTED, "--backbone %s: the classifier takes %d channels (1 or 3 can be used)", path,
                         src->in_c);
    for (int c = 0; c < src->in_c; c++)
        if (!(src->std[c] > 0) || !isfinite(src->mean[c]))
            return acv_error(ACV_EFORMAT, "--backbone %s: bad normalization of channel %d (mean %g, std %g)", path, c,
                             src->mean[c], src->std[c]);
    char *js = acv_graph_to_json(src->graph);
    if (!js) return acv_error_prefix(ACV_EINVAL, "--backbone %s: ", path);
    json_error_t jerr;
    json_t *root = json_loads(js, 0, &jerr), *nodes = json_object_get(root, "nodes"); /* read once, for the helpers */
    int n = acv_graph_node_count(src->graph) + 1;
    int *ids = malloc((size_t)n * sizeof(int));
    unsigned char *keep = malloc((size_t)n);
    acv_graph *scratch = acv_graph_new();
    int feat[BB_LEVELS] = {-1, -1, -1, -1};
    int64_t ch[BB_LEVELS] = {0}, fh[BB_LEVELS] = {0}, fw[BB_LEVELS] = {0};
    char stop[256] = "";
    if (!ids || !keep || !scratch || !json_is_array(nodes)) rc = acv_error(ACV_ENOMEM, "out of memory");
    /* 0. its head: from the output back along first inputs, the linear layers, global pool and
     *    any class-score map (SqueezeNet's last 1x1 convolution): not features */
    if (!rc && (rc = mark_head(js, root, src, keep, n - 1))) rc = acv_error_prefix(rc, "--backbone %s: ", path);
    unsigned char *head = keep; /* reused for the features' ancestors after the scan */
    /* 1. the classifier at the detector's input size in a scratch graph, node by node until one
     *    does not fit (its head, usually); each stride's feature from the shapes found there */
    if (!rc) {
        int64_t is[4] = {1, src->in_c, imgsz, imgsz};
        acv_id in = acv_input(scratch, "images", 4, is);
        int added = acv_graph_append_json(scratch, js, in, "", false, NULL, ids, n);
        if (added < 0) rc = acv_error_prefix(added, "--backbone %s: ", path);
        else if (acv_graph_status(scratch)) snprintf(stop, sizeof stop, "%s", acv_errmsg());
    }
    if (!rc) rc = choose_features(nodes, scratch, ids, head, n - 1, imgsz, feat, ch, fh, fw);
    acv_graph_free(scratch);
    acv_error_clear();
    int reached = -1; /* the deepest level the classifier has at all */
    for (int l = 0; l < BB_LEVELS; l++)
        if (feat[l] >= 0) {
            reached = l;
            describe(nodes, feat[l], bb->feature[l], sizeof bb->feature[l]);
        }
    int first = ar->p2 ? 0 : 1, deepest = first - 1; /* the levels from `first` on the classifier has in a row */
    while (deepest + 1 < BB_LEVELS && feat[deepest + 1] >= 0) deepest++;
    for (int l = 0; l < BB_LEVELS; l++)
        if (l < first || l > deepest) bb->feature[l][0] = 0;
    if (!rc && (feat[first] < 0 || deepest < 2)) {
        /* the stride-8 (stride-4 for -p2) map and at least stride 16 must come from the classifier */
        int l = feat[first] < 0 ? first : 2;
        char deep[48] = "no feature map below the input's size";
        if (reached >= 0) snprintf(deep, sizeof deep, "its deepest feature map is at stride %d", 4 << reached);
        rc = acv_error(ACV_EUNSUPPORTED, "--backbone %s: the classifier has no feature map at stride %d of a %dx%d input "
                       "(%s)%s%s%s", path, 4 << l, imgsz, imgsz, deep, ar->p2 && l == 0 ? "; the -p2 detectors need one: "
                       "choose a detector without -p2" : "", stop[0] ? "; adding its layers stopped at: " : "", stop);
    }
    /* 2. the features' ancestors into g, behind the fixed input conversion */
    if (!rc) ancestors(nodes, feat + first, deepest - first + 1, keep, n - 1);
    acv_id lv[BB_LEVELS] = {-1, -1, -1, -1};
    if (!rc) {
        int64_t ws[4] = {src->in_c, 3, 1, 1}, bs[1] = {src->in_c};
        acv_id x = net_begin(g, net, ar, n_classes, imgsz, imgsz);
        acv_id w = acv_param(g, BB_INPUT ".weight", 4, ws, ACV_INIT_ZERO, false);
        acv_id b = acv_param(g, BB_INPUT ".bias", 1, bs, ACV_INIT_ZERO, false);
        acv_conv_attrs a = {1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 0, 0};
        x = acv_conv2d_ex(g, BB_INPUT, x, w, b, &a);
        int added = acv_graph_append_json(g, js, x, BB_PREFIX, freeze, keep, ids, n);
        if (added < 0) rc = acv_error_prefix(added, "--backbone %s: ", path);
    }
    /* 3. each level to the neck's width (1x1 Conv); the levels deeper than the classifier goes
     *    by stride-2 3x3 Convs; SPPF on the deepest */
    const int *w = ar->width;
    char nm[64];
    for (int l = first; !rc && l < BB_LEVELS; l++) {
        snprintf(nm, sizeof nm, "adapt.%d", l);
        int t = imgsz / (4 << l);
        if (l <= deepest) {
            acv_id f = ids[feat[l]];
            if (fh[l] != t || fw[l] != t) f = acv_upsample(g, f, t, t, true, false); /* to the level's exact size */
            lv[l] = cbs(g, nm, f, w[l + 1], 1, 1);
        } else {
            lv[l] = cbs(g, nm, lv[l - 1], w[l + 1], 3, 2);
        }
        bb->channels[l] = l <= deepest ? (int)ch[l] : 0;
        bb->height[l] = l <= deepest ? (int)fh[l] : 0;
        bb->width[l] = l <= deepest ? (int)fw[l] : 0;
    }
    if (!rc) {
        acv_id p5 = sppf(g, "adapt.sppf", lv[3], w[4]);
        rc = neck_heads(g, ar, n_classes, lv[0], lv[1], lv[2], p5, net, name);
    }
    json_decref(root);
    free(js);
    free(ids);
    free(keep);
    return rc;
}

int acv_det_backbone_copy(acv_graph *g, const acv_det_backbone *bb)
{
    const acv_model *src = bb->src;
    if (!src) return acv_error(ACV_EINVAL, "no backbone loaded");
    int copied = 0;
    char nm[512];
    for (int i = 0; i < acv_graph_param_count(src->graph); i++) {
        acv_param_info si;
        int rc = acv_graph_param(src->graph, i, &si);
        if (rc) return rc;
        snprintf(nm, sizeof nm, BB_PREFIX "%s", si.name);
        acv_id id = acv_graph_find(g, nm);
        if (id < 0) continue; /* the classifier's head */
        const acv_shape *ds = acv_graph_shape(g, id);
        if (acv_graph_op(g, id) != ACV_OP_PARAM || !ds || acv_shape_numel(ds) != acv_shape_numel(&si.shape))
            return acv_error(ACV_EFORMAT, "backbone parameter %s: shape differs from the classifier's", si.name);
        float *d = acv_graph_data(g, id);
        if (!d) return acv_error(ACV_EINVAL, "backbone parameter %s: no data", nm);
        memcpy(d, si.data, (size_t)acv_shape_numel(ds) * sizeof(float));
        copied++;
    }
    /* every backbone parameter must have come from the classifier */
    for (int i = 0; i < acv_graph_param_count(g); i++) {
        acv_param_info pi;
        int rc = acv_graph_param(g, i, &pi);
        if (rc) return rc;
        if (!strncmp(pi.name, BB_PREFIX, strlen(BB_PREFIX)) && acv_graph_find(src->graph, pi.name + strlen(BB_PREFIX)) < 0)
            return acv_error(ACV_EFORMAT, "backbone parameter %s: not in the classifier", pi.name);
    }
    /* RGB in [0, 1] -> the classifier's normalized input (grayscale: ITU-R BT.601 luma) */
    float *w = acv_graph_data(g, acv_graph_find(g, BB_INPUT ".weight")), *b = acv_graph_data(g, acv_graph_find(g, BB_INPUT ".bias"));
    if (!w || !b) return acv_error(ACV_EINVAL, "the detector has no backbone input conversion");
    static const float LUMA[3] = {0.299f, 0.587f, 0.114f};
    for (int c = 0; c < src->in_c; c++) {
        for (int k = 0; k < 3; k++) w[c * 3 + k] = (src->in_c == 3 ? (c == k ? 1.0f : 0.0f) : LUMA[k]) / src->std[c];
        b[c] = -src->mean[c] / src->std[c];
    }
    return copied ? 0 : acv_error(ACV_EFORMAT, "the backbone took no parameter from the classifier");
}

int acv_det_net_from_graph(acv_graph *g, int n_classes, acv_det_net *net)
{
    acv_id in = acv_graph_find(g, "images"), out = acv_graph_output(g);
    const acv_shape *is = in >= 0 ? acv_graph_shape(g, in) : NULL, *os = out >= 0 ? acv_graph_shape(g, out) : NULL;
    const int R = ACV_DET_REG_MAX;
    if (!is || !os || is->ndim != 4 || os->ndim != 3)
        return acv_error(ACV_EFORMAT, "the graph is not a detector's: no 'images' input or no (N, C, A) output");
    if (os->d[1] != 4 * R + n_classes)
        return acv_error(ACV_EFORMAT, "the detector's output has %lld channels, %d classes need %d",
                         (long long)os->d[1], n_classes, 4 * R + n_classes);
    const acv_det_arch *keep = net->arch;
    memset(net, 0, sizeof *net);
    net->arch = keep;
    net->input = in;
    net->output = out;
    net->n_classes = n_classes;
    net->reg_max = R;
    net->imgsz_h = (int)is->d[2];
    net->imgsz_w = (int)is->d[3];
    int A = 0;
    /* a fourth head (head.box.3...) means the stride-4 level is there */
    const int L = acv_graph_find(g, "head.box.3.2.bias") >= 0 ? 4 : 3;
    net->n_levels = L;
    for (int l = 0; l < L; l++) {
        int s = (L == 4 ? 4 : 8) << l;
        net->strides[l] = s;
        net->level_h[l] = (net->imgsz_h + s - 1) / s;
        net->level_w[l] = (net->imgsz_w + s - 1) / s;
        A += net->level_h[l] * net->level_w[l];
        char b[64];
        snprintf(b, sizeof b, "head.box.%d.2.bias", l);
        net->box_bias[l] = acv_graph_find(g, b);
        snprintf(b, sizeof b, "head.cls.%d.2.bias", l);
        net->cls_bias[l] = acv_graph_find(g, b);
        if (net->box_bias[l] < 0 || net->cls_bias[l] < 0)
            return acv_error(ACV_EFORMAT, "the graph is not a detector's: no parameter %s", b);
    }
    if (os->d[2] != A)
        return acv_error(ACV_EFORMAT, "the detector's output has %lld anchors, a %dx%d input gives %d",
                         (long long)os->d[2], net->imgsz_w, net->imgsz_h, A);
    net->n_anchors = A;
    if (!net->arch) { /* recognise the family member by its stem width */
        acv_id w0 = acv_graph_find(g, "backbone.0.conv.weight");
        const acv_shape *ws = w0 >= 0 ? acv_graph_shape(g, w0) : NULL;
        for (int i = 0; ws && !net->arch && i < ARCH_N; i++)
            if (ARCHS[i].width[0] == ws->d[0] && ARCHS[i].p2 == (L == 4)) net->arch = &ARCHS[i];
    }
    return 0;
}

int acv_det_init_params(acv_graph *g, const acv_det_net *net, uint64_t seed)
{
    int rc = acv_graph_init_params(g, seed);
    if (rc) return rc;
    for (int l = 0; l < net->n_levels; l++) {
        float *cb = acv_graph_data(g, net->cls_bias[l]), *bb = acv_graph_data(g, net->box_bias[l]);
        if (!cb || !bb) return acv_error(ACV_EINVAL, "detector heads: no bias at level %d", l);
        double cells = (double)net->level_h[l] * net->level_w[l];
        float prior = (float)log(5.0 / net->n_classes / cells);
        for (int c = 0; c < net->n_classes; c++) cb[c] = prior;
        for (int k = 0; k < 4 * net->reg_max; k++) bb[k] = 1.0f;
    }
    return 0;
}

int acv_det_anchors(int imgsz_h, int imgsz_w, const int *strides, int n_levels, float **points,
                    float **anchor_strides)
{
    *points = *anchor_strides = NULL;
    int64_t A = 0;
    for (int l = 0; l < n_levels; l++) {
        int s = strides[l];
        if (s < 1 || imgsz_h % s || imgsz_w % s)
            return acv_error(ACV_EINVAL, "anchors: stride %d does not divide the input %dx%d", s, imgsz_w, imgsz_h);
        A += (int64_t)(imgsz_h / s) * (imgsz_w / s);
    }
    if (A < 1 || A > (1 << 28)) return acv_error(ACV_EINVAL, "anchors: %lld anchors", (long long)A);
    float *p = malloc((size_t)A * 2 * sizeof(float)), *st = malloc((size_t)A * sizeof(float));
    if (!p || !st) {
        free(p);
        free(st);
        return acv_error(ACV_ENOMEM, "out of memory for %lld anchors", (long long)A);
    }
    int64_t a = 0;
    for (int l = 0; l < n_levels; l++) {
        int s = strides[l], H = imgsz_h / s, W = imgsz_w / s;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++, a++) {
                p[2 * a] = (x + 0.5f) * s;
                p[2 * a + 1] = (y + 0.5f) * s;
                st[a] = (float)s;
            }
    }
    *points = p;
    *anchor_strides = st;
    return (int)A;
}
