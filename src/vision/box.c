/* Boxes: area, IoU and non-maximum suppression (see box.h).
 *
 * NMS sorts once (O(n log n), stable: equal scores keep their input order) and then tests
 * each candidate only against the boxes already kept (O(n k) for k kept), stopping as soon
 * as max_keep boxes are kept, so a few thousand raw detections cost little. */
#include "vision/box.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

float acv_box_area(const acv_box *b)
{
    float w = b->x2 - b->x1, h = b->y2 - b->y1;
    return (w > 0.0f && h > 0.0f) ? w * h : 0.0f;
}

float acv_box_iou(const acv_box *a, const acv_box *b)
{
    float aa = acv_box_area(a), ab = acv_box_area(b);
    if (aa <= 0.0f || ab <= 0.0f) return 0.0f;
    float iw = fminf(a->x2, b->x2) - fmaxf(a->x1, b->x1);
    float ih = fminf(a->y2, b->y2) - fmaxf(a->y1, b->y1);
    if (iw <= 0.0f || ih <= 0.0f) return 0.0f;
    float inter = iw * ih, uni = aa + ab - inter;
    return uni > 0.0f ? inter / uni : 0.0f;
}

/* Sort key for the stable descending-score order: score, then the input position. */
typedef struct nms_key {
    float score;
    int pos;
} nms_key;

static int cmp_key(const void *pa, const void *pb)
{
    const nms_key *a = pa, *b = pb;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    return (a->pos > b->pos) - (a->pos < b->pos);
}

/* Stable in-place insertion sort by descending score: the fallback when there is no
 * memory for the keys (O(n^2), but always correct). */
static void insertion_sort(acv_box *b, int n)
{
    for (int i = 1; i < n; i++) {
        acv_box t = b[i];
        int j = i - 1;
        while (j >= 0 && b[j].score < t.score) {
            b[j + 1] = b[j];
            j--;
        }
        b[j + 1] = t;
    }
}

int acv_box_nms(acv_box *boxes, int n, float score_thr, float iou_thr, int max_keep, int class_agnostic)
{
    /* Drop low scores (and NaN scores) first, keeping the input order. */
    int m = 0;
    for (int i = 0; i < n; i++)
        if (boxes[i].score >= score_thr) boxes[m++] = boxes[i];
    if (m == 0) return 0;

    nms_key *keys = malloc((size_t)m * sizeof *keys);
    acv_box *sorted = keys ? malloc((size_t)m * sizeof *sorted) : NULL;
    if (keys && sorted) {
        for (int i = 0; i < m; i++) keys[i] = (nms_key){boxes[i].score, i};
        qsort(keys, (size_t)m, sizeof *keys, cmp_key);
        for (int i = 0; i < m; i++) sorted[i] = boxes[keys[i].pos];
        memcpy(boxes, sorted, (size_t)m * sizeof *boxes);
    } else {
        insertion_sort(boxes, m);
    }
    free(keys);
    free(sorted);

    /* Greedy pass: kept boxes are compacted into boxes[0..k); candidate i > k - 1 is only
     * compared with them, so overwriting boxes[k] never loses an unvisited candidate. */
    int limit = max_keep > 0 ? max_keep : m;
    int k = 0;
    for (int i = 0; i < m && k < limit; i++) {
        const acv_box *c = &boxes[i];
        int keep = 1;
        for (int j = 0; j < k; j++) {
            if (!class_agnostic && boxes[j].cls != c->cls) continue;
            if (acv_box_iou(&boxes[j], c) > iou_thr) {
                keep = 0;
                break;
            }
        }
        if (keep) boxes[k++] = *c;
    }
    return k;
}
