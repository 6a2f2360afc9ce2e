/* Classification prediction on one decoded image: the arithmetic `autocv predict` prints
 * (softmax in double precision, a partial selection sort for the top classes), shared by the
 * server's deployments so that both give the same labels and scores. */
#include "tasks/cls.h"

#include <math.h>

#include "autocv/error.h"
#include "base/timeutil.h"

void acv_cls_softmax_topk(const float *logits, int k, float *prob, int *order, int topk)
{
    float mx = logits[0];
    for (int j = 1; j < k; j++) mx = logits[j] > mx ? logits[j] : mx;
    double se = 0;
    for (int j = 0; j < k; j++) se += exp((double)(logits[j] - mx));
    for (int j = 0; j < k; j++) prob[j] = (float)(exp((double)(logits[j] - mx)) / se);
    if (!order) return;
    for (int j = 0; j < k; j++) order[j] = j;
    if (topk > k) topk = k;
    for (int a = 0; a < topk; a++) /* partial selection sort: ties keep the lower index */
        for (int b = a + 1; b < k; b++)
            if (prob[order[b]] > prob[order[a]]) {
                int t = order[a];
                order[a] = order[b];
                order[b] = t;
            }
}

int acv_cls_predict(acv_model *m, const acv_image *im, int topk, float *prob, int *order, double ms[2])
{
    acv_graph *g = m->graph;
    acv_id x = acv_graph_input(g), y = acv_graph_output(g);
    double t0 = acv_now();
    int rc = acv_graph_set_batch(g, 1); /* fails on a graph that is not compiled */
    if (!rc) rc = acv_cls_preprocess(m, im, acv_graph_data(g, x));
    double t1 = acv_now();
    if (!rc) rc = acv_graph_forward(g, y, false, 0);
    double t2 = acv_now();
    if (!rc) acv_cls_softmax_topk(acv_graph_data(g, y), m->n_classes, prob, order, topk);
    if (ms) {
        ms[0] = (t1 - t0) * 1e3;
        ms[1] = (t2 - t1) * 1e3;
    }
    return rc;
}
