/* Classification evaluation and preprocessing on model directories. */
#include "tasks/cls.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "autocv/error.h"
#include "base/progress.h"
#include "data/loader.h"
#include "tasks/train_util.h"
#include "vision/transform.h"

/* The loader configuration that reproduces m's evaluation geometry and normalization. */
static void model_loader_cfg(const acv_model *m, int batch, int workers, acv_loader_config *lc)
{
    acv_loader_config_default(lc);
    lc->batch = batch;
    lc->threads = workers;
    lc->shuffle = 0;
    lc->drop_last = 0;
    lc->eval = 1;
    lc->out_c = m->in_c == 1 ? 1 : 3;
    lc->out_h = m->in_h;
    lc->out_w = m->in_w;
    for (int i = 0; i < 3; i++) {
        lc->mean[i] = m->mean[i < m->in_c ? i : 0];
        lc->std[i] = m->std[i < m->in_c ? i : 0];
    }
    if (!strcmp(m->resize, "crop")) {
        lc->rrc_scale_lo = 0.25f; /* marks "trained with crops": eval resizes then centre-crops */
        lc->rrc_scale_hi = 1.0f;
        lc->eval_crop_frac = m->crop_frac > 0 ? m->crop_frac : 0.875f;
    }
}

double acv_cls_ce_sum(const float *logits, const int *labels, int n, int k)
{
    double sum = 0;
    for (int i = 0; i < n; i++) {
        const float *zi = logits + (int64_t)i * k;
        float mx = zi[0];
        for (int j = 1; j < k; j++) mx = zi[j] > mx ? zi[j] : mx;
        double se = 0;
        for (int j = 0; j < k; j++) se += exp((double)(zi[j] - mx));
        sum += log(se) + mx - zi[labels[i]];
    }
    return sum;
}

int acv_cls_preprocess(const acv_model *m, const acv_image *im, float *out)
{
    acv_loader_config lc;
    model_loader_cfg(m, 1, 1, &lc);
    acv_image t = {0};
    int rc = acv_img_convert(im, lc.out_c, &t);
    if (rc) return rc;
    rc = acv_loader_eval_geometry(&lc, &t);
    if (!rc) acv_img_to_tensor(&t, out, lc.mean, lc.std);
    acv_image_free(&t);
    return rc;
}

int acv_cls_evaluate(acv_model *m, const acv_cls_dataset *ds, int batch, int workers, acv_cls_metrics *metrics,
                     double *loss, FILE *progress)
{
    if (batch <= 0) batch = 64;
    /* the dataset's classes are matched to the model's by name, in any order (a model imported
     * from outside lists its classes in its own output order); every one must be the model's */
    const int dk = acv_cls_dataset_num_classes(ds);
    const char **dnames = malloc((size_t)(dk > 0 ? dk : 1) * sizeof *dnames);
    if (!dnames) return acv_error(ACV_ENOMEM, "out of memory matching classes");
    for (int i = 0; i < dk; i++) dnames[i] = acv_cls_dataset_class_name(ds, i);
    int *cmap = NULL;
    int rc = acv_classes_map_by_name("the dataset", dnames, dk, (const char *const *)m->classes, m->n_classes, &cmap);
    free(dnames);
    if (rc) return rc;
    int *lab = malloc((size_t)batch * sizeof *lab);
    if (!lab) {
        free(cmap);
        return acv_error(ACV_ENOMEM, "out of memory for a batch of labels");
    }
    acv_loader_config lc;
    model_loader_cfg(m, batch, workers, &lc);
    acv_loader *ld;
    rc = acv_loader_new(ds, &lc, &ld);
    if (rc) {
        free(cmap);
        free(lab);
        return rc;
    }
    acv_graph *g = m->graph;
    acv_id x = acv_graph_input(g), y = acv_graph_output(g);
    rc = acv_graph_compile(g, NULL, batch, false);
    acv_progress bar;
    int nb = acv_loader_num_batches(ld), done = 0;
    if (progress) acv_progress_start(&bar, progress, "evaluating", nb);
    acv_cls_metrics_reset(metrics);
    acv_loader_start_epoch(ld, 0);
    acv_batch b;
    double lsum = 0;
    int64_t cnt = 0;
    while (!rc && (rc = acv_loader_next(ld, &b)) == 1) {
        rc = acv_graph_set_batch(g, b.n);
        if (rc) break;
        memcpy(acv_graph_data(g, x), b.x, (size_t)b.n * b.c * b.h * b.w * sizeof(float));
        if ((rc = acv_graph_forward(g, y, false, 0))) break;
        const float *z = acv_graph_data(g, y);
        for (int i = 0; i < b.n; i++) lab[i] = cmap[b.labels[i]];
        lsum += acv_cls_ce_sum(z, lab, b.n, m->n_classes);
        cnt += b.n;
        rc = acv_cls_metrics_add(metrics, z, lab, b.n);
        if (progress) acv_progress_update(&bar, ++done, NULL);
    }
    if (progress) acv_progress_clear(&bar);
    if (rc > 0) rc = 0;
    if (!rc && acv_loader_skipped(ld) > 0 && progress)
        fprintf(progress, "skipped %ld unreadable images (first: %s)\n", acv_loader_skipped(ld), acv_loader_first_error(ld));
    const char *other = NULL;
    int n_other = acv_cls_dataset_other_files(ds, &other);
    if (!rc && n_other && progress)
        fprintf(progress, "left out %d files in image formats AutoCV does not read (first: %s)\n", n_other, other);
    if (!rc && loss) *loss = cnt ? lsum / (double)cnt : 0;
    acv_loader_free(ld);
    free(cmap);
    free(lab);
    return rc;
}
