/* The detector's post-processing (see det.h): output -> scored boxes -> NMS, and the way
 * back from letterboxed input pixels to the original image. */
#include "tasks/det.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "autocv/error.h"

void acv_det_decode_opts_init(acv_det_decode_opts *o)
{
    o->score_thr = 0.25f;
    o->iou_thr = 0.7f;
    o->max_det = 300;
    o->max_candidates = 30000;
    o->class_agnostic = false;
    o->multi_label = false;
    o->class_thr = NULL;
    o->clip[0] = o->clip[1] = o->clip[2] = o->clip[3] = 0;
}

void acv_det_decode_opts_clip(acv_det_decode_opts *o, float scale, float pad_x, float pad_y, int orig_w, int orig_h)
{
    o->clip[0] = pad_x;
    o->clip[1] = pad_y;
    o->clip[2] = pad_x + orig_w * scale;
    o->clip[3] = pad_y + orig_h * scale;
}

/* Clips b to o's image area when it has one. */
static void clip_box(const acv_det_decode_opts *o, acv_box *b)
{
    if (!(o->clip[2] > o->clip[0] && o->clip[3] > o->clip[1])) return;
    float *v[4] = {&b->x1, &b->y1, &b->x2, &b->y2};
    for (int k = 0; k < 4; k++) {
        float lo = o->clip[k % 2], hi = o->clip[2 + k % 2];
        *v[k] = *v[k] < lo ? lo : *v[k] > hi ? hi : *v[k];
    }
}

static int by_score_desc(const void *pa, const void *pb)
{
    const acv_box *a = pa, *b = pb;
    return (a->score < b->score) - (a->score > b->score);
}

/* Decodes anchor a's box (pixels) from its 4 x R distance logits (stride A apart). */
static void decode_box(const float *out, int A, int R, int a, const float *points, const float *strides,
                       acv_box *bx)
{
    float e[4];
    for (int s = 0; s < 4; s++) {
        const float *z = out + (int64_t)s * R * A + a;
        float mx = z[0];
        for (int k = 1; k < R; k++)
            if (z[(int64_t)k * A] > mx) mx = z[(int64_t)k * A];
        float sum = 0, ex = 0;
        for (int k = 0; k < R; k++) {
            float p = expf(z[(int64_t)k * A] - mx);
            sum += p;
            ex += p * k;
        }
        e[s] = ex / sum * strides[a];
    }
    float px = points[2 * a], py = points[2 * a + 1];
    bx->x1 = px - e[0];
    bx->y1 = py - e[1];
    bx->x2 = px + e[2];
    bx->y2 = py + e[3];
    bx->flags = 0;
}

/* Room for one more candidate box in *cand (grown by doubling). */
static acv_box *push(acv_box **cand, int *n, int *room)
{
    if (*n == *room) {
        int r = *room ? 2 * *room : 1024;
        acv_box *nc = realloc(*cand, (size_t)r * sizeof *nc);
        if (!nc) return NULL;
        *cand = nc;
        *room = r;
    }
    return &(*cand)[(*n)++];
}

int acv_det_decode(const float *out, int n_anchors, int n_classes, int reg_max, const float *points,
                   const float *strides, const acv_det_decode_opts *o, acv_box *dets, int cap, int *ndet)
{
    *ndet = 0;
    if (n_anchors < 1 || n_classes < 1 || reg_max < 2 || cap < 1)
        return acv_error(ACV_EINVAL, "decode: %d anchors, %d classes, %d bins, room for %d boxes", n_anchors, n_classes,
                         reg_max, cap);
    const int A = n_anchors, R = reg_max, K = n_classes;
    const float *cls = out + (int64_t)4 * R * A;
    /* compare logits with the threshold's logit: no sigmoid for the boxes that fail it */
    float thr = o->score_thr;
    if (o->class_thr) { /* the lowest class threshold first; each box then meets its own */
        thr = o->class_thr[0];
        for (int c = 1; c < K; c++)
            if (o->class_thr[c] < thr) thr = o->class_thr[c];
    }
    float lthr = thr <= 0 ? -INFINITY : thr >= 1 ? INFINITY : logf(thr / (1 - thr));
    int n = 0, room = 0;
    acv_box *cand = NULL;
    for (int a = 0; a < A; a++) {
        int best = -1;
        float bl = 0;
        for (int c = 0; c < K; c++) {
            float v = cls[(int64_t)c * A + a];
            if (!(v >= lthr)) continue;
            if (!o->multi_label) {
                if (best < 0 || v > bl) best = c, bl = v;
                continue;
            }
            float sc = 1 / (1 + expf(-v));
            if (o->class_thr && !(sc >= o->class_thr[c])) continue;
            acv_box *bx = push(&cand, &n, &room);
            if (!bx) goto oom;
            decode_box(out, A, R, a, points, strides, bx);
            clip_box(o, bx);
            bx->cls = c;
            bx->score = sc;
        }
        if (best >= 0 && o->class_thr && !(1 / (1 + expf(-bl)) >= o->class_thr[best])) best = -1;
        if (best >= 0) {
            acv_box *bx = push(&cand, &n, &room);
            if (!bx) goto oom;
            decode_box(out, A, R, a, points, strides, bx);
            clip_box(o, bx);
            bx->cls = best;
            bx->score = 1 / (1 + expf(-bl));
        }
    }
    if (n > 0) {
        if (o->max_candidates > 0 && n > o->max_candidates) {
            qsort(cand, (size_t)n, sizeof *cand, by_score_desc);
            n = o->max_candidates;
        }
        int keep = acv_box_nms(cand, n, thr, o->iou_thr, o->max_det, o->class_agnostic);
        if (keep > cap) keep = cap;
        memcpy(dets, cand, (size_t)keep * sizeof *dets);
        *ndet = keep;
    }
    free(cand);
    return 0;
oom:
    free(cand);
    return acv_error(ACV_ENOMEM, "decode: out of memory for %d boxes", room * 2);
}

void acv_det_unletterbox(acv_box *boxes, int n, float scale, float pad_x, float pad_y, int orig_w, int orig_h)
{
    float inv = scale > 0 ? 1 / scale : 1;
    for (int i = 0; i < n; i++) {
        acv_box *b = &boxes[i];
        float v[4] = {(b->x1 - pad_x) * inv, (b->y1 - pad_y) * inv, (b->x2 - pad_x) * inv, (b->y2 - pad_y) * inv};
        for (int k = 0; k < 4; k++) {
            float lim = (float)(k % 2 ? orig_h : orig_w);
            v[k] = v[k] < 0 ? 0 : v[k] > lim ? lim : v[k];
        }
        b->x1 = v[0];
        b->y1 = v[1];
        b->x2 = v[2];
        b->y2 = v[3];
    }
}
