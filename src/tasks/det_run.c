/* Running a trained detector: one image at a time (predict, deployments), over a dataset
 * split (evaluation), and drawing the results. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autocv/error.h"
#include "base/progress.h"
#include "data/det_dataset.h"
#include "data/det_loader.h"
#include "metrics/det.h"
#include "tasks/det_task.h"
#include "tasks/train_util.h"
#include "vision/det_transform.h"
#include "vision/transform.h"

int acv_det_runner_open(const char *dir, acv_model *model, int max_batch, acv_det_runner *r)
{
    memset(r, 0, sizeof *r);
    int rc = 0;
    if (!model && (rc = acv_model_load(dir, &model))) return rc;
    r->model = model;
    if (strcmp(model->task, "det")) rc = acv_error(ACV_EINVAL, "%s: a %s model, not a detector", dir ? dir : "model", model->task);
    if (!rc) rc = acv_det_net_from_graph(model->graph, model->n_classes, &r->net);
    if (!rc) rc = acv_graph_compile(model->graph, NULL, max_batch > 0 ? max_batch : 1, false);
    if (!rc) {
        int a = acv_det_anchors(r->net.imgsz_h, r->net.imgsz_w, r->net.strides, r->net.n_levels, &r->points, &r->strides);
        if (a < 0) rc = a;
    }
    acv_det_decode_opts_init(&r->dopts);
    if (!rc) r->dopts.class_thr = model->score_thr; /* the thresholds training chose, if any */
    if (rc) acv_det_runner_close(r);
    return rc;
}

void acv_det_runner_close(acv_det_runner *r)
{
    acv_model_free(r->model);
    free(r->points);
    free(r->strides);
    memset(r, 0, sizeof *r);
}

int acv_det_runner_detect(acv_det_runner *r, const acv_image *im, acv_box *boxes, int cap, int *n)
{
    *n = 0;
    acv_image rgb = {0}, lb = {0};
    const acv_image *src = im;
    int rc = 0;
    if (im->c != 3) {
        /* gray or RGBA: to RGB */
        if ((rc = acv_image_alloc(&rgb, im->w, im->h, 3))) return rc;
        for (int64_t p = 0; p < (int64_t)im->w * im->h; p++)
            for (int ch = 0; ch < 3; ch++) rgb.data[p * 3 + ch] = im->data[p * im->c + (im->c == 1 ? 0 : ch)];
        src = &rgb;
    }
    acv_letterbox_info info;
    rc = acv_det_letterbox(src, r->net.imgsz_h, NULL, 0, &lb, &info);
    acv_image_free(&rgb);
    if (rc) return rc;
    acv_graph *g = r->model->graph;
    if ((rc = acv_graph_set_batch(g, 1))) {
        acv_image_free(&lb);
        return rc;
    }
    float *x = acv_graph_data(g, r->net.input);
    int64_t hw = (int64_t)lb.w * lb.h;
    for (int64_t p = 0; p < hw; p++)
        for (int ch = 0; ch < 3; ch++)
            x[ch * hw + p] = (lb.data[p * 3 + ch] / 255.0f - r->model->mean[ch]) / r->model->std[ch];
    acv_image_free(&lb);
    if ((rc = acv_graph_forward(g, r->net.output, false, 0))) return rc;
    acv_det_decode_opts o = r->dopts;
    acv_det_decode_opts_clip(&o, info.scale, (float)info.pad_x, (float)info.pad_y, im->w, im->h);
    rc = acv_det_decode(acv_graph_data(g, r->net.output), r->net.n_anchors, r->net.n_classes, r->net.reg_max, r->points,
                        r->strides, &o, boxes, cap, n);
    if (!rc) acv_det_unletterbox(boxes, *n, info.scale, (float)info.pad_x, (float)info.pad_y, im->w, im->h);
    return rc;
}

json_t *acv_det_result_json(const acv_det_runner *r, const acv_box *boxes, int n)
{
    json_t *dets = json_array(), *counts = json_object();
    for (int c = 0; c < r->model->n_classes; c++) json_object_set_new(counts, r->model->classes[c], json_integer(0));
    for (int i = 0; i < n; i++) {
        const char *label = r->model->classes[boxes[i].cls];
        json_array_append_new(dets, json_pack("{s:s, s:i, s:f, s:[f, f, f, f]}", "label", label, "class", boxes[i].cls,
                                              "score", round(boxes[i].score * 1e5) / 1e5, "box",
                                              round(boxes[i].x1 * 100) / 100, round(boxes[i].y1 * 100) / 100,
                                              round(boxes[i].x2 * 100) / 100, round(boxes[i].y2 * 100) / 100));
        json_object_set_new(counts, label, json_integer(json_integer_value(json_object_get(counts, label)) + 1));
    }
    return json_pack("{s:o, s:o}", "detections", dets, "counts", counts);
}

int acv_det_evaluate(const char *model_dir, const char *data, const char *split, int batch, int workers,
                     float count_thr, bool skip_bad, FILE *progress, json_t **out)
{
    *out = NULL;
    acv_det_runner r;
    int rc = acv_det_runner_open(model_dir, NULL, batch > 0 ? batch : 8, &r);
    if (rc) return rc;
    const float *class_thr = NULL;
    if (!(count_thr >= 0)) { /* not given: the model's per-class thresholds, else 0.5 */
        class_thr = r.model ? r.model->score_thr : NULL;
        count_thr = class_thr ? 0 : 0.5f;
    }
    acv_det_dataset *ds = NULL;
    acv_det_loader *ld = NULL;
    acv_det_metrics *m = NULL;
    acv_box *dets = NULL;
    int *cmap = NULL;
    acv_det_open_opts dopt = {.format = NULL, .skip_bad = skip_bad};
    rc = acv_det_dataset_open(data, split, &dopt, &ds);
    /* the dataset's classes are matched to the model's by name, in any order (a model imported
     * from outside lists its classes in its own output order); every one must be the model's */
    if (!rc) rc = acv_classes_map_by_name(data, (const char *const *)ds->names, ds->k, (const char *const *)r.model->classes,
                                          r.model->n_classes, &cmap);
    for (int i = 0; !rc && i < ds->n; i++)
        for (int j = 0; j < ds->images[i].n; j++) {
            acv_box *b = &ds->images[i].boxes[j];
            if (b->cls >= 0 && b->cls < ds->k) b->cls = cmap[b->cls];
        }
    if (!rc) {
        acv_det_loader_opts lo;
        acv_det_loader_opts_default(&lo);
        lo.batch = batch > 0 ? batch : 8;
        lo.imgsz = r.net.imgsz_h;
        lo.workers = workers;
        lo.train = 0;
        lo.shuffle = 0;
        for (int c = 0; c < 3; c++) {
            lo.mean[c] = r.model->mean[c];
            lo.std[c] = r.model->std[c];
        }
        rc = acv_det_loader_new(ds, &lo, &ld);
    }
    if (!rc) {
        m = acv_det_metrics_new(r.model->n_classes, (const char *const *)r.model->classes);
        if (!m) rc = ACV_ENOMEM;
        else rc = acv_det_metrics_set_count_threshold(m, count_thr);
    }
    acv_det_decode_opts dopts;
    acv_det_decode_opts_init(&dopts);
    dopts.score_thr = 0.001f;
    dopts.multi_label = true;
    if (!rc && !(dets = malloc((size_t)dopts.max_det * sizeof *dets))) rc = acv_error(ACV_ENOMEM, "out of memory");
    acv_progress bar;
    int nb = rc ? 0 : acv_det_loader_num_batches(ld), done = 0;
    if (!rc && progress) acv_progress_start(&bar, progress, "evaluating", nb);
    int per = (4 * r.net.reg_max + r.net.n_classes) * r.net.n_anchors;
    /* counting uses the deployed decoding (score >= count threshold, one box per anchor), the
     * AP the usual low-threshold multi-label decoding */
    acv_det_decode_opts copts = r.dopts;
    copts.score_thr = count_thr;
    copts.class_thr = class_thr;
    acv_box *cdets = rc ? NULL : malloc((size_t)copts.max_det * sizeof *cdets);
    if (!rc && !cdets) rc = acv_error(ACV_ENOMEM, "out of memory");
    acv_det_metrics *cm = rc ? NULL : acv_det_metrics_new(r.model->n_classes, (const char *const *)r.model->classes);
    if (!rc && !cm) rc = ACV_ENOMEM;
    if (!rc) rc = acv_det_metrics_set_count_threshold(cm, count_thr);
    if (!rc) acv_det_loader_epoch(ld, 0);
    acv_det_batch b;
    int got;
    while (!rc && (got = acv_det_loader_next(ld, &b)) == 1) {
        acv_graph *g = r.model->graph;
        if ((rc = acv_graph_set_batch(g, b.n))) break;
        memcpy(acv_graph_data(g, r.net.input), b.x, (size_t)b.n * b.c * b.h * b.w * sizeof(float));
        if ((rc = acv_graph_forward(g, r.net.output, false, 0))) break;
        const float *y = acv_graph_data(g, r.net.output);
        for (int i = 0; i < b.n && !rc; i++) {
            const acv_det_item *it = &b.items[i];
            const acv_det_image *im = &ds->images[it->index];
            int nd = 0, nc = 0;
            acv_det_decode_opts_clip(&dopts, it->lb.scale, (float)it->lb.pad_x, (float)it->lb.pad_y, it->orig_w, it->orig_h);
            copts.clip[0] = dopts.clip[0], copts.clip[1] = dopts.clip[1];
            copts.clip[2] = dopts.clip[2], copts.clip[3] = dopts.clip[3];
            rc = acv_det_decode(y + (size_t)i * per, r.net.n_anchors, r.net.n_classes, r.net.reg_max, r.points,
                                r.strides, &dopts, dets, dopts.max_det, &nd);
            if (!rc) rc = acv_det_decode(y + (size_t)i * per, r.net.n_anchors, r.net.n_classes, r.net.reg_max, r.points,
                                         r.strides, &copts, cdets, copts.max_det, &nc);
            if (!rc) {
                acv_det_unletterbox(dets, nd, it->lb.scale, (float)it->lb.pad_x, (float)it->lb.pad_y, it->orig_w,
                                    it->orig_h);
                acv_det_unletterbox(cdets, nc, it->lb.scale, (float)it->lb.pad_x, (float)it->lb.pad_y, it->orig_w,
                                    it->orig_h);
                rc = acv_det_metrics_add_image(m, im->boxes, im->n, dets, nd);
            }
            if (!rc) rc = acv_det_metrics_add_image(cm, im->boxes, im->n, cdets, nc);
        }
        if (progress) acv_progress_update(&bar, ++done, NULL);
    }
    if (!rc && got < 0) rc = got;
    if (progress && nb) acv_progress_clear(&bar);
    if (!rc) rc = acv_det_metrics_to_json(m, out);
    if (!rc) {
        json_t *cj = NULL;
        if (!(rc = acv_det_metrics_to_json(cm, &cj))) {
            /* counting as deployed: one box per anchor at the count threshold */
            json_object_set(*out, "count_mae", json_object_get(cj, "count_mae"));
            json_object_set(*out, "count_exact", json_object_get(cj, "count_exact"));
            json_object_set(*out, "count_mae_per_class", json_object_get(cj, "count_mae_per_class"));
            json_t *pc = json_object_get(*out, "per_class"), *cpc = json_object_get(cj, "per_class");
            for (size_t k = 0; k < json_array_size(pc); k++)
                json_object_set(json_array_get(pc, k), "count_mae",
                                json_object_get(json_array_get(cpc, k), "count_mae"));
            if (class_thr) {
                json_t *th = json_array();
                for (int k = 0; k < r.model->n_classes; k++)
                    json_array_append_new(th, json_real(round((double)class_thr[k] * 1e6) / 1e6));
                json_object_set_new(*out, "count_threshold", json_null());
                json_object_set_new(*out, "count_thresholds", th);
            } else {
                json_object_set_new(*out, "count_threshold", json_real(count_thr));
            }
            json_decref(cj);
        }
        json_object_set_new(*out, "task", json_string("det"));
        json_object_set_new(*out, "split", json_string(split ? split : "all"));
        json_object_set_new(*out, "skipped_images", json_integer(acv_det_loader_skipped(ld)));
    }
    if (rc) {
        json_decref(*out);
        *out = NULL;
    }
    free(dets);
    free(cmap);
    free(cdets);
    acv_det_metrics_free(m);
    acv_det_metrics_free(cm);
    acv_det_loader_free(ld);
    acv_det_dataset_free(ds);
    acv_det_runner_close(&r);
    return rc;
}

/* ---- drawing -------------------------------------------------------------------------------------- */

/* A 5x7 bitmap font for printable ASCII (columns, low bit at the top), enough for labels. */
static const uint8_t FONT[95][5] = {
    {0x00,0x00,0x00,0x00,0x00},{0x00,0x00,0x5f,0x00,0x00},{0x00,0x07,0x00,0x07,0x00},{0x14,0x7f,0x14,0x7f,0x14},
    {0x24,0x2a,0x7f,0x2a,0x12},{0x23,0x13,0x08,0x64,0x62},{0x36,0x49,0x55,0x22,0x50},{0x00,0x05,0x03,0x00,0x00},
    {0x00,0x1c,0x22,0x41,0x00},{0x00,0x41,0x22,0x1c,0x00},{0x14,0x08,0x3e,0x08,0x14},{0x08,0x08,0x3e,0x08,0x08},
    {0x00,0x50,0x30,0x00,0x00},{0x08,0x08,0x08,0x08,0x08},{0x00,0x60,0x60,0x00,0x00},{0x20,0x10,0x08,0x04,0x02},
    {0x3e,0x51,0x49,0x45,0x3e},{0x00,0x42,0x7f,0x40,0x00},{0x42,0x61,0x51,0x49,0x46},{0x21,0x41,0x45,0x4b,0x31},
    {0x18,0x14,0x12,0x7f,0x10},{0x27,0x45,0x45,0x45,0x39},{0x3c,0x4a,0x49,0x49,0x30},{0x01,0x71,0x09,0x05,0x03},
    {0x36,0x49,0x49,0x49,0x36},{0x06,0x49,0x49,0x29,0x1e},{0x00,0x36,0x36,0x00,0x00},{0x00,0x56,0x36,0x00,0x00},
    {0x08,0x14,0x22,0x41,0x00},{0x14,0x14,0x14,0x14,0x14},{0x00,0x41,0x22,0x14,0x08},{0x02,0x01,0x51,0x09,0x06},
    {0x32,0x49,0x79,0x41,0x3e},{0x7e,0x11,0x11,0x11,0x7e},{0x7f,0x49,0x49,0x49,0x36},{0x3e,0x41,0x41,0x41,0x22},
    {0x7f,0x41,0x41,0x22,0x1c},{0x7f,0x49,0x49,0x49,0x41},{0x7f,0x09,0x09,0x09,0x01},{0x3e,0x41,0x49,0x49,0x7a},
    {0x7f,0x08,0x08,0x08,0x7f},{0x00,0x41,0x7f,0x41,0x00},{0x20,0x40,0x41,0x3f,0x01},{0x7f,0x08,0x14,0x22,0x41},
    {0x7f,0x40,0x40,0x40,0x40},{0x7f,0x02,0x0c,0x02,0x7f},{0x7f,0x04,0x08,0x10,0x7f},{0x3e,0x41,0x41,0x41,0x3e},
    {0x7f,0x09,0x09,0x09,0x06},{0x3e,0x41,0x51,0x21,0x5e},{0x7f,0x09,0x19,0x29,0x46},{0x46,0x49,0x49,0x49,0x31},
    {0x01,0x01,0x7f,0x01,0x01},{0x3f,0x40,0x40,0x40,0x3f},{0x1f,0x20,0x40,0x20,0x1f},{0x3f,0x40,0x38,0x40,0x3f},
    {0x63,0x14,0x08,0x14,0x63},{0x07,0x08,0x70,0x08,0x07},{0x61,0x51,0x49,0x45,0x43},{0x00,0x7f,0x41,0x41,0x00},
    {0x02,0x04,0x08,0x10,0x20},{0x00,0x41,0x41,0x7f,0x00},{0x04,0x02,0x01,0x02,0x04},{0x40,0x40,0x40,0x40,0x40},
    {0x00,0x01,0x02,0x04,0x00},{0x20,0x54,0x54,0x54,0x78},{0x7f,0x48,0x44,0x44,0x38},{0x38,0x44,0x44,0x44,0x20},
    {0x38,0x44,0x44,0x48,0x7f},{0x38,0x54,0x54,0x54,0x18},{0x08,0x7e,0x09,0x01,0x02},{0x0c,0x52,0x52,0x52,0x3e},
    {0x7f,0x08,0x04,0x04,0x78},{0x00,0x44,0x7d,0x40,0x00},{0x20,0x40,0x44,0x3d,0x00},{0x7f,0x10,0x28,0x44,0x00},
    {0x00,0x41,0x7f,0x40,0x00},{0x7c,0x04,0x18,0x04,0x78},{0x7c,0x08,0x04,0x04,0x78},{0x38,0x44,0x44,0x44,0x38},
    {0x7c,0x14,0x14,0x14,0x08},{0x08,0x14,0x14,0x18,0x7c},{0x7c,0x08,0x04,0x04,0x08},{0x48,0x54,0x54,0x54,0x20},
    {0x04,0x3f,0x44,0x40,0x20},{0x3c,0x40,0x40,0x20,0x7c},{0x1c,0x20,0x40,0x20,0x1c},{0x3c,0x40,0x30,0x40,0x3c},
    {0x44,0x28,0x10,0x28,0x44},{0x0c,0x50,0x50,0x50,0x3c},{0x44,0x64,0x54,0x4c,0x44},{0x00,0x08,0x36,0x41,0x00},
    {0x00,0x00,0x7f,0x00,0x00},{0x00,0x41,0x36,0x08,0x00},{0x10,0x08,0x08,0x10,0x08},
};

static void put(acv_image *im, int x, int y, const uint8_t col[3])
{
    if (x < 0 || y < 0 || x >= im->w || y >= im->h) return;
    uint8_t *p = im->data + ((int64_t)y * im->w + x) * im->c;
    for (int ch = 0; ch < im->c && ch < 3; ch++) p[ch] = col[im->c == 1 ? 0 : ch];
}

static void text(acv_image *im, int x, int y, const char *s, int scale, const uint8_t fg[3], const uint8_t bg[3])
{
    int len = (int)strlen(s), w = len * 6 * scale + scale, h = 9 * scale;
    for (int yy = 0; yy < h; yy++)
        for (int xx = 0; xx < w; xx++) put(im, x + xx, y + yy, bg);
    for (int i = 0; i < len; i++) {
        unsigned ch = (unsigned char)s[i];
        if (ch < 32 || ch > 126) ch = '?';
        for (int cx = 0; cx < 5; cx++)
            for (int cy = 0; cy < 7; cy++)
                if (FONT[ch - 32][cx] >> cy & 1)
                    for (int sy = 0; sy < scale; sy++)
                        for (int sx = 0; sx < scale; sx++)
                            put(im, x + scale + (i * 6 + cx) * scale + sx, y + scale + cy * scale + sy, fg);
    }
}

void acv_det_draw(acv_image *im, const acv_box *boxes, int n, const char *const *names)
{
    static const uint8_t PALETTE[10][3] = {{255, 56, 56},  {255, 157, 151}, {255, 112, 31}, {255, 178, 29},
                                           {207, 210, 49}, {72, 249, 10},   {26, 147, 52},  {0, 212, 187},
                                           {44, 153, 168}, {0, 194, 255}};
    static const uint8_t WHITE[3] = {255, 255, 255};
    int t = im->w > 800 ? 3 : im->w > 300 ? 2 : 1, scale = im->w > 1200 ? 2 : 1;
    for (int i = n - 1; i >= 0; i--) {
        const acv_box *b = &boxes[i];
        const uint8_t *col = PALETTE[(b->cls < 0 ? 0 : b->cls) % 10];
        int x1 = (int)floorf(b->x1), y1 = (int)floorf(b->y1), x2 = (int)ceilf(b->x2) - 1, y2 = (int)ceilf(b->y2) - 1;
        for (int k = 0; k < t; k++) {
            for (int x = x1; x <= x2; x++) {
                put(im, x, y1 + k, col);
                put(im, x, y2 - k, col);
            }
            for (int y = y1; y <= y2; y++) {
                put(im, x1 + k, y, col);
                put(im, x2 - k, y, col);
            }
        }
        char label[96];
        snprintf(label, sizeof label, "%s %.2f", names ? names[b->cls] : "?", (double)b->score);
        int ty = y1 - 9 * scale;
        text(im, x1, ty < 0 ? y1 : ty, label, scale, WHITE, col);
    }
}
