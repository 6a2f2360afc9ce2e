/* Object detection: a one-stage, anchor-free detector in the YOLOv8 design, its training loss
 * with task-aligned label assignment, and the decoding of its output into boxes.
 *
 *   det_model.c   the network: CSP backbone (C2f blocks, SPPF), PAN-FPN neck, decoupled heads
 *   det_loss.c    task-aligned assigner; BCE + CIoU + distribution focal loss, with gradients
 *   det_decode.c  output -> scored boxes (DFL expectation, class-aware NMS), letterbox undo
 *
 * The network has ONE output node, (N, 4*R + K, A), R = ACV_DET_REG_MAX bins, K classes,
 * A anchors = sum over the levels (strides 8, 16, 32; 4, 8, 16, 32 for the "-p2" architectures)
 * of H/s * W/s. Channel s*R + k (side s in
 * left, top, right, bottom; bin k) is the logit of "the distance from the anchor point to
 * that side of the box is k strides"; channel 4*R + c is the logit of class c. Anchors are
 * ordered level by level, each row-major (anchor a of level l is cell (a / W_l, a % W_l));
 * anchor points are the cell centres, ((x + 0.5) * s, (y + 0.5) * s) in input pixels.
 *
 * Training, per batch (the trainer's loop):
 *     acv_det_net net;  acv_det_build(g, "det-s", k, 640, 640, &net);  acv_det_init_params(g, &net, seed);
 *     acv_graph_compile(g, NULL, batch, true);
 *     acv_det_loss *L;  acv_det_loss_new(&net, batch, NULL, &L);
 *     ... write images into acv_graph_data(g, net.input), then
 *     acv_graph_forward(g, -1, true, step);
 *     acv_det_loss_compute(L, acv_graph_data(g, net.output), n, gts, n_gts, grad, &parts);
 *     acv_graph_backward_from(g, net.output, grad);   ... optimizer step
 * Inference: compile for inference, forward, then acv_det_decode() per image and
 * acv_det_unletterbox() back to the original image's pixels.
 *
 * Boxes are vision/box.h's acv_box, x1 y1 x2 y2 in input (letterboxed) pixels. */
#ifndef ACV_TASKS_DET_H
#define ACV_TASKS_DET_H

#include <stdbool.h>
#include <stdint.h>

#include "autocv/graph.h"
#include "vision/box.h"

#define ACV_DET_REG_MAX 16   /* DFL bins per box side: distances 0..15 strides */
#define ACV_DET_MAX_LEVELS 4 /* P2 (the "-p2" architectures only), P3, P4, P5 */

/* ---- the network ------------------------------------------------------------------------ */

/* One architecture of the family. */
typedef struct acv_det_arch {
    const char *name;        /* "det-s", "det-m" */
    const char *description;
    int width[5];            /* channels at strides 2, 4, 8, 16, 32 */
    int depth[4];            /* bottlenecks in the backbone's C2f blocks at strides 4..32 */
    int neck_depth;          /* bottlenecks in each of the neck's C2f blocks */
    bool p2;                 /* a fourth output level at stride 4 for very small objects */
} acv_det_arch;

/* The built network: what the trainer, the loss and the decoder need to know about it. */
typedef struct acv_det_net {
    const acv_det_arch *arch;
    acv_id input;                    /* "images": (N, 3, H, W), RGB scaled to [0, 1] */
    acv_id output;                   /* (N, 4*R + K, A), marked as the graph's output */
    int n_classes;                   /* K */
    int reg_max;                     /* R = ACV_DET_REG_MAX */
    int imgsz_h, imgsz_w;            /* H, W: multiples of 32 */
    int n_anchors;                   /* A */
    int n_levels;                        /* 3, or 4 with the stride-4 level */
    int strides[ACV_DET_MAX_LEVELS];     /* 8, 16, 32 (4, 8, 16, 32 with P2) */
    int level_h[ACV_DET_MAX_LEVELS], level_w[ACV_DET_MAX_LEVELS];
    acv_id cls_bias[ACV_DET_MAX_LEVELS]; /* the classification heads' last biases (init prior) */
    acv_id box_bias[ACV_DET_MAX_LEVELS]; /* the box heads' last biases */
} acv_det_net;

/* The architectures (a static table), for listing. */
int acv_det_arch_list(const acv_det_arch **list);
/* The architecture called name, or NULL. */
const acv_det_arch *acv_det_arch_find(const char *name);
/* The architecture "auto" stands for, for training at imgsz on n_images images on the CPU:
 * det-s (about 8 GFLOPs at 640), unless the data set is large enough (>= 10,000 images) to
 * repay det-m's 3-4x cost at imgsz <= 416; its "-p2" variant when at least 5% of the boxes
 * are very small at that size (small_share: the share whose shorter side, scaled to imgsz,
 * is under 10 pixels; see acv_det_small_share). */
const char *acv_det_auto(int imgsz, int64_t n_images, double small_share);
/* The share of the boxes in images[0..n) whose shorter side, once the image is letterboxed
 * to imgsz, is under 10 pixels (0 when there are no boxes). */
struct acv_det_image;
double acv_det_small_share(const struct acv_det_image *images, int n, int imgsz);

/* Builds the detector `name` ("det-s", "det-m"; not "auto", resolve it first) for
 * n_classes classes at input size imgsz_h x imgsz_w (multiples of 32, at least 64) into the
 * empty graph g: adds the input "images" (1, 3, H, W), every layer, and marks the output.
 * Parameter names follow Ultralytics' module layout under three prefixes:
 *   backbone.{0..9}  (Conv = .conv + .bn; C2f = .cv1 .cv2 .m.{i}.cv1 .m.{i}.cv2; SPPF = .cv1 .cv2)
 *   neck.{0..5}      (C2f top-down 0, 1; Conv 2, C2f 3; Conv 4, C2f 5)
 *   neck.{6..8}      ("-p2" only: C2f top-down to stride 4 = 6; Conv 7, C2f 8 back to stride 8)
 *   head.box.{level}.{0,1,2}, head.cls.{level}.{0,1,2}  (two Convs, then a 1x1 conv with bias)
 * Batch norms use eps 1e-3 and momentum 0.03 (YOLOv8's). Fills *net. Errors: unknown name,
 * bad size or class count (ACV_EINVAL / ACV_ENOTFOUND), or the graph's sticky error.
 * The graph is built for one input size (the upsampling sizes are fixed): for another size,
 * build again and load the same weights (they do not depend on the size). */
int acv_det_build(acv_graph *g, const char *name, int n_classes, int imgsz_h, int imgsz_w, acv_det_net *net);
/* A classifier's convolutional part as the detector's backbone (acv_det_build_backbone). */
struct acv_model;
typedef struct acv_det_backbone {
    struct acv_model *src;   /* the classifier (owned; acv_det_backbone_free) */
    char feature[4][128];    /* per stride 4, 8, 16, 32: the name of the classifier's node used,
                                "" for none (a stride-2 Conv made that level, or it is unused) */
    int channels[4];         /* its channels */
    int height[4], width[4]; /* its map's size at the detector's input size (resized to
                                imgsz / stride when it differs, by at most a factor sqrt(2)) */
} acv_det_backbone;
/* Builds detector `name`'s neck and heads (as acv_det_build) on the classifier at path (a
 * model directory or a .onnx file, imported at imgsz) into the empty graph g. The input
 * "images" (RGB in [0, 1]) goes through a fixed 1x1 convolution "backbone_input" to the
 * classifier's normalized input (its mean/std; luma for a grayscale classifier), then through
 * the classifier's layers, named "backbone." + their names, up to the last feature map at each
 * stride 8, 16, 32 (4, 8, 16, 32 for "-p2"), found by adding its nodes at imgsz until one does
 * not fit (the head); a map within a factor sqrt(2) of imgsz / stride counts, and is resized
 * (bilinear) to that size. Each level gets a 1x1 Conv "adapt.{level}" to the neck's width; levels
 * deeper than the classifier goes are stride-2 Convs; SPPF "adapt.sppf" on the deepest. With
 * freeze, the classifier's parameters are not trainable. bb receives the loaded classifier and
 * the features used; copy its weights with acv_det_backbone_copy after initialisation. */
int acv_det_build_backbone(acv_graph *g, const char *name, int n_classes, int imgsz, const char *path, bool freeze,
                           acv_det_net *net, acv_det_backbone *bb);
/* Copies the classifier's parameters (and running statistics) into g's backbone and sets the
 * input conversion. */
int acv_det_backbone_copy(acv_graph *g, const acv_det_backbone *bb);
void acv_det_backbone_free(acv_det_backbone *bb);
/* Initialises every parameter: acv_graph_init_params(g, seed), then the heads' priors (as
 * YOLOv8, but for the real input size): box biases 1.0 and class biases
 * log(5 / K / (H * W / s^2)), i.e. about five objects an image spread over a level's cells.
 * Use this instead of acv_graph_init_params for a detector trained from scratch. */
int acv_det_init_params(acv_graph *g, const acv_det_net *net, uint64_t seed);
/* Re-derives *net from a graph built by acv_det_build (e.g. loaded from model.json) for
 * n_classes classes: finds the input and output and the level sizes from the input's shape.
 * Errors when the graph does not look like a detector's. */
int acv_det_net_from_graph(acv_graph *g, int n_classes, acv_det_net *net);

/* The anchor points of an input of imgsz_h x imgsz_w for n_levels strides (each dividing
 * the size): *points gets A (x, y) pairs in pixels (cell centres), *anchor_strides A floats
 * (each anchor's stride), both malloc'd (free()). Returns A, or a negative error. */
int acv_det_anchors(int imgsz_h, int imgsz_w, const int *strides, int n_levels, float **points,
                    float **anchor_strides);

/* ---- the loss ----------------------------------------------------------------------------- */

typedef struct acv_det_loss_opts {
    int topk;                /* candidates per ground-truth box: 10 */
    float alpha, beta;       /* alignment metric score^alpha * IoU^beta: 0.5, 6.0 */
    float w_box, w_cls, w_dfl; /* term weights: 7.5, 0.5, 1.5 */
    bool scale_by_batch;     /* multiply the total by the batch size (YOLOv8): true */
    bool center_fallback;    /* a box containing no anchor centre takes the finest level's
                                anchor nearest to its centre (YOLOv8 leaves it unassigned): true */
    float min_target;        /* a box's target scores are its anchors' normalised metrics times
                                max(best IoU, min_target) (YOLOv8: times the best IoU, i.e. 0):
                                a box much smaller than the untrained predictions (a 5-pixel
                                defect under a 100-pixel guess) otherwise gets targets near 0,
                                so neither its class nor its box is ever learned: 0.25 */
    bool keep_one;           /* a box whose candidates all went to boxes their predictions
                                overlap more (a small defect inside a part) takes its best one
                                back from a box holding several (YOLOv8 leaves it without any
                                anchor, so it is never learned): true */
    float small_first;       /* an anchor two boxes keep goes to the smaller when its area is at
                                most this share of the other's (a defect on a part: YOLOv8's
                                rule, by IoU, gives every anchor on the defect to the part, so
                                neighbouring cells were taught "part" and "defect" for the same
                                pixels), else by IoU; 0: always by IoU (YOLOv8): 0.25 */
    float grow;              /* a box's candidates are the anchor centres inside it grown about
                                its centre to at least grow strides on each side, so a thin
                                scratch between two rows of centres has some (YOLOv8: 0): 1 */
    float balance;           /* class balance: in each batch, a class whose anchors carry less
                                target score than the mean of the classes present has its
                                classification, box and DFL terms weighted by that ratio, at
                                most balance (a 5-pixel defect holds 1-3 anchors of low target
                                where a part holds 10 of high, so the shared layers hardly
                                learn it); <= 1: off (YOLOv8): 10 */
} acv_det_loss_opts;

/* The values listed above (YOLOv8's, but for the departures marked). */
void acv_det_loss_opts_init(acv_det_loss_opts *o);

typedef struct acv_det_loss acv_det_loss;

/* Loss terms of the last call. box, cls and dfl are YOLOv8's reported terms: each already
 * multiplied by its weight and divided by the target-score sum, not by the batch size;
 * total is what the gradient is the gradient of: (box + cls + dfl), times the batch size
 * when scale_by_batch. */
typedef struct acv_det_loss_parts {
    double box, cls, dfl, total;
    int n_fg;                /* anchors assigned a box */
    double score_sum;        /* sum of the target scores (the normaliser is max(this, 1)) */
} acv_det_loss_parts;

/* The assignment of the last acv_det_assign call (owned by the loss; valid until the next
 * call), per image b and anchor a at index b * n_anchors + a. */
typedef struct acv_det_targets {
    int n, n_anchors;
    const int *gt;           /* index into the image's ground-truth array, or -1 (background) */
    const int *cls;          /* the assigned box's class (-1 for background) */
    const float *score;      /* target score: normalised alignment metric, 0 for background */
    const float *iou;        /* IoU (CIoU clamped at 0) of the prediction with its box, 0 bg */
    const float *box;        /* 4 floats per anchor: the assigned box x1 y1 x2 y2, pixels */
} acv_det_targets;

/* A loss for net's output at batches up to max_batch; opts NULL: defaults. Holds the anchors
 * and all scratch memory, allocated here once. Free with acv_det_loss_free. */
int acv_det_loss_new(const acv_det_net *net, int max_batch, const acv_det_loss_opts *opts, acv_det_loss **out);
void acv_det_loss_free(acv_det_loss *L);

/* Task-aligned assignment of image b's n_gt[b] ground-truth boxes gts[b] (input pixels;
 * crowd and empty boxes are skipped; class indices must be in 0..K-1) to the anchors, from the
 * predictions `out` ((n, 4*R + K, A) as the network writes it):
 *   candidates of a box: the anchors whose centre lies strictly inside it;
 *   metric: sigmoid(class logit)^alpha * CIoU(predicted box, box)^beta (CIoU clamped at 0);
 *   each box keeps its topk candidates by metric; an anchor kept by several boxes goes to the
 *   one its prediction overlaps most;
 *   target score: metric * (the box's best IoU among its anchors) / (its best metric).
 * The result is treated as a constant of the loss (no gradient flows through it). */
int acv_det_assign(acv_det_loss *L, const float *out, int n, const acv_box *const *gts, const int *n_gt);
const acv_det_targets *acv_det_loss_targets(const acv_det_loss *L);

enum { ACV_DET_TERM_BOX = 1, ACV_DET_TERM_CLS = 2, ACV_DET_TERM_DFL = 4, ACV_DET_TERM_ALL = 7 };

/* The loss of `out` (n images) against the last assignment, in double precision, and its
 * exact gradient d(total)/d(out) written (not accumulated) into grad (same layout as out;
 * NULL: value only). terms selects which terms enter total and grad (ACV_DET_TERM_*; the
 * parts report each selected term). With S = max(sum of target scores, 1):
 *   cls = w_cls * sum over anchors and classes of BCE-with-logits(logit, target score) / S
 *   box = w_box * sum over assigned anchors of score * (1 - CIoU(decoded box, its box)) / S
 *   dfl = w_dfl * sum over assigned anchors of score * mean over sides of the DFL / S
 * Boxes decode from the softmax expectation over the R bins of each side; the DFL of a side
 * whose target distance d (strides, clamped to [0, R - 1.01]) lies between bins i and i + 1
 * is (i + 1 - d) * CE(bin i) + (d - i) * CE(bin i + 1). The CIoU's aspect term weight alpha
 * is differentiated too (YOLOv8 holds it constant), so the gradient is the loss's own. */
int acv_det_loss_eval(acv_det_loss *L, const float *out, int n, unsigned terms, float *grad,
                      acv_det_loss_parts *parts);
/* acv_det_assign then acv_det_loss_eval with every term: one training step's loss. */
int acv_det_loss_compute(acv_det_loss *L, const float *out, int n, const acv_box *const *gts, const int *n_gt,
                         float *grad, acv_det_loss_parts *parts);

/* Complete IoU of box a (predicted) with b (target), as Ultralytics computes it (eps 1e-7
 * in the heights and the union); d_a (4, may be NULL) gets d(CIoU)/d(a.x1, a.y1, a.x2, a.y2). */
double acv_det_ciou(const double a[4], const double b[4], double d_a[4]);
/* Distribution focal loss of one side: logits z (r bins), target distance d in [0, r - 1);
 * dz (r, may be NULL) gets its gradient. */
double acv_det_dfl(const float *z, int r, double d, double *dz);

/* ---- decoding ----------------------------------------------------------------------------- */

typedef struct acv_det_decode_opts {
    float score_thr;         /* drop boxes scoring below: 0.25 (use 0.001 for mAP) */
    float iou_thr;           /* NMS IoU threshold: 0.7 */
    int max_det;             /* detections kept per image: 300 */
    int max_candidates;      /* highest-scoring boxes that enter NMS: 30000 */
    bool class_agnostic;     /* NMS across classes */
    bool multi_label;        /* an anchor yields a box for every class above score_thr
                                (better mAP); else only for its best class (counting) */
    const float *class_thr;  /* n_classes per-class thresholds used instead of score_thr, or
                                NULL (not owned; a model's calibrated score_thr) */
    float clip[4];           /* the image's area in the input (x1 y1 x2 y2: a letterboxed
                                image without its padding): boxes are clipped to it before
                                NMS, so that two boxes the same once clipped are one; all 0:
                                no clipping (acv_det_decode_opts_clip sets it) */
} acv_det_decode_opts;

void acv_det_decode_opts_init(acv_det_decode_opts *o);
/* Sets o->clip to the area an orig_w x orig_h image covers in the input once letterboxed
 * with scale and padding (pad_x, pad_y). */
void acv_det_decode_opts_clip(acv_det_decode_opts *o, float scale, float pad_x, float pad_y, int orig_w, int orig_h);

/* Decodes one image's output `out` ((4*R + K, A), channel-major as in the network's output:
 * the image b of a batch starts at out + b * (4*R + K) * A) with its anchors (points, strides
 * from acv_det_anchors) into at most o->max_det boxes in dets (capacity cap >= 1), best
 * first: score = sigmoid(class logit), box = anchor point -/+ the DFL expectation of each
 * side times the stride, then score threshold, class-aware (or agnostic) NMS and max_det.
 * *ndet gets the count. Boxes are in input pixels; see acv_det_unletterbox. */
int acv_det_decode(const float *out, int n_anchors, int n_classes, int reg_max, const float *points,
                   const float *strides, const acv_det_decode_opts *o, acv_box *dets, int cap, int *ndet);

/* Maps n boxes from letterboxed input pixels (dst = src * scale + pad) back to the original
 * image's pixels and clips them to [0, orig_w] x [0, orig_h]. */
void acv_det_unletterbox(acv_box *boxes, int n, float scale, float pad_x, float pad_y, int orig_w, int orig_h);

#endif
