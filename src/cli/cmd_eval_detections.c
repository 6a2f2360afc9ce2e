/* autocv eval-detections: scores a COCO results file against COCO ground truth with the COCO
 * protocol (metrics/det.h), as pycocotools' COCOeval would with iouType "bbox", plus counting.
 *
 * Images are evaluated in ascending id order and boxes in file order, as COCOeval does, so that
 * ties (equal scores, equal IoUs) resolve the same way. Every image of the ground truth is
 * evaluated (one without annotations or results counts for counting too). */
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autocv/error.h"
#include "cli/args.h"
#include "metrics/det.h"

typedef struct id_index {
    int64_t id;
    size_t at;       /* position in the file's array */
} id_index;

/* One box read from a file, with the image it belongs to (position among the sorted images). */
typedef struct coco_box {
    int img;
    acv_box box;
    double area;     /* annotation "area", or w * h */
} coco_box;

typedef struct coco_set {
    size_t nimg;
    id_index *imgs;  /* sorted by id */
    size_t ncat;
    id_index *cats;  /* sorted by id; class index = position */
    char **names;    /* (ncat) */
    size_t ngt, npred;
    coco_box *gt, *pred;
} coco_set;

static void coco_set_free(coco_set *s)
{
    for (size_t i = 0; s->names && i < s->ncat; i++) free(s->names[i]);
    free(s->names);
    free(s->imgs);
    free(s->cats);
    free(s->gt);
    free(s->pred);
}

static int cmp_id(const void *pa, const void *pb)
{
    const id_index *a = pa, *b = pb;
    return (a->id > b->id) - (a->id < b->id);
}

/* Position of id in sorted idx[0..n), or -1. */
static long find_id(const id_index *idx, size_t n, int64_t id)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (idx[mid].id < id) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && idx[lo].id == id ? (long)lo : -1;
}

static int load_json(const char *path, json_t **out)
{
    json_error_t err;
    *out = json_load_file(path, 0, &err);
    if (*out) return 0;
    if (err.line < 0) return acv_error(ACV_EIO, "%s", err.text); /* "unable to open PATH: ..." */
    return acv_error(ACV_EFORMAT, "%s: line %d column %d: %s", path, err.line, err.column, err.text);
}

/* Reads the integer field key of entry obj (named "what" in messages). */
static int get_id(const char *path, const char *what, size_t i, json_t *obj, const char *key, int64_t *out)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v))
        return acv_error(ACV_EFORMAT, "%s: %s[%zu]: \"%s\" %s", path, what, i, key,
                         v ? "is not an integer" : "is missing");
    *out = json_integer_value(v);
    return 0;
}

/* Reads "bbox":[x,y,w,h] of entry i into b (x1 = x, x2 = x + w); w and h must be >= 0. */
static int get_bbox(const char *path, const char *what, size_t i, json_t *obj, acv_box *b, double *wh)
{
    json_t *v = json_object_get(obj, "bbox");
    double x[4];
    if (!json_is_array(v) || json_array_size(v) != 4)
        return acv_error(ACV_EFORMAT, "%s: %s[%zu]: \"bbox\" must be [x, y, w, h]", path, what, i);
    for (size_t j = 0; j < 4; j++) {
        json_t *e = json_array_get(v, j);
        if (!json_is_number(e) || !isfinite(json_number_value(e)))
            return acv_error(ACV_EFORMAT, "%s: %s[%zu]: \"bbox\" must be [x, y, w, h] of finite numbers", path,
                             what, i);
        x[j] = json_number_value(e);
    }
    if (x[2] < 0 || x[3] < 0)
        return acv_error(ACV_EFORMAT, "%s: %s[%zu]: \"bbox\" has a negative width or height (%g x %g)", path,
                         what, i, x[2], x[3]);
    *b = (acv_box){.x1 = (float)x[0], .y1 = (float)x[1], .x2 = (float)(x[0] + x[2]), .y2 = (float)(x[1] + x[3]),
                   .score = 1};
    *wh = x[2] * x[3];
    return 0;
}

/* Sorted id index of the objects in array key of root ("images", "categories"). */
static int read_ids(const char *path, json_t *root, const char *key, id_index **out, size_t *n)
{
    json_t *arr = json_object_get(root, key);
    if (!json_is_array(arr)) return acv_error(ACV_EFORMAT, "%s: \"%s\" must be an array", path, key);
    *n = json_array_size(arr);
    *out = malloc((*n + 1) * sizeof **out);
    if (!*out) return acv_error(ACV_ENOMEM, "%s: out of memory reading \"%s\"", path, key);
    for (size_t i = 0; i < *n; i++) {
        json_t *o = json_array_get(arr, i);
        if (!json_is_object(o)) return acv_error(ACV_EFORMAT, "%s: %s[%zu] is not an object", path, key, i);
        int rc = get_id(path, key, i, o, "id", &(*out)[i].id);
        if (rc) return rc;
        (*out)[i].at = i;
    }
    qsort(*out, *n, sizeof **out, cmp_id);
    for (size_t i = 1; i < *n; i++)
        if ((*out)[i].id == (*out)[i - 1].id)
            return acv_error(ACV_EFORMAT, "%s: %s[%zu]: id %" PRId64 " repeats %s[%zu]", path, key,
                             (*out)[i].at > (*out)[i - 1].at ? (*out)[i].at : (*out)[i - 1].at, (*out)[i].id, key,
                             (*out)[i].at > (*out)[i - 1].at ? (*out)[i - 1].at : (*out)[i].at);
    return 0;
}

/* Resolves image_id and category_id of entry i against the ground truth. */
static int get_refs(const coco_set *s, const char *path, const char *what, size_t i, json_t *o, int *img, int *cls)
{
    int64_t iid = 0, cid = 0;
    int rc = get_id(path, what, i, o, "image_id", &iid);
    if (!rc) rc = get_id(path, what, i, o, "category_id", &cid);
    if (rc) return rc;
    long ip = find_id(s->imgs, s->nimg, iid), cp = find_id(s->cats, s->ncat, cid);
    if (ip < 0)
        return acv_error(ACV_EFORMAT, "%s: %s[%zu]: image_id %" PRId64 " is not among the ground truth's images",
                         path, what, i, iid);
    if (cp < 0)
        return acv_error(ACV_EFORMAT, "%s: %s[%zu]: category_id %" PRId64 " is not among the ground truth's "
                         "categories", path, what, i, cid);
    *img = (int)ip;
    *cls = (int)cp;
    return 0;
}

static int load_gt(const char *path, coco_set *s)
{
    json_t *root = NULL;
    int rc = load_json(path, &root);
    if (rc) return rc;
    if (!json_is_object(root)) {
        rc = acv_error(ACV_EFORMAT, "%s: not a COCO annotation file (the top level must be an object)", path);
        goto out;
    }
    if ((rc = read_ids(path, root, "images", &s->imgs, &s->nimg)) ||
        (rc = read_ids(path, root, "categories", &s->cats, &s->ncat)))
        goto out;
    if (s->ncat == 0) {
        rc = acv_error(ACV_EFORMAT, "%s: \"categories\" is empty", path);
        goto out;
    }
    if (s->nimg > INT32_MAX) {
        rc = acv_error(ACV_ERANGE, "%s: too many images (%zu)", path, s->nimg);
        goto out;
    }
    json_t *cats = json_object_get(root, "categories");
    s->names = calloc(s->ncat, sizeof *s->names);
    if (!s->names) goto oom;
    for (size_t c = 0; c < s->ncat; c++) {
        json_t *nm = json_object_get(json_array_get(cats, s->cats[c].at), "name");
        char idbuf[32];
        snprintf(idbuf, sizeof idbuf, "%" PRId64, s->cats[c].id);
        if (nm && !json_is_string(nm)) {
            rc = acv_error(ACV_EFORMAT, "%s: categories[%zu]: \"name\" is not a string", path, s->cats[c].at);
            goto out;
        }
        s->names[c] = strdup(nm ? json_string_value(nm) : idbuf);
        if (!s->names[c]) goto oom;
    }
    json_t *anns = json_object_get(root, "annotations");
    if (anns && !json_is_array(anns)) {
        rc = acv_error(ACV_EFORMAT, "%s: \"annotations\" must be an array", path);
        goto out;
    }
    s->ngt = json_array_size(anns); /* 0 when absent (a test set's file) */
    s->gt = malloc((s->ngt + 1) * sizeof *s->gt);
    if (!s->gt) goto oom;
    for (size_t i = 0; i < s->ngt; i++) {
        json_t *o = json_array_get(anns, i);
        coco_box *b = &s->gt[i];
        double wh;
        int cls;
        if (!json_is_object(o)) {
            rc = acv_error(ACV_EFORMAT, "%s: annotations[%zu] is not an object", path, i);
            goto out;
        }
        if ((rc = get_refs(s, path, "annotations", i, o, &b->img, &cls)) ||
            (rc = get_bbox(path, "annotations", i, o, &b->box, &wh)))
            goto out;
        b->box.cls = cls;
        json_t *crowd = json_object_get(o, "iscrowd"), *area = json_object_get(o, "area");
        if (crowd && !json_is_integer(crowd) && !json_is_boolean(crowd)) {
            rc = acv_error(ACV_EFORMAT, "%s: annotations[%zu]: \"iscrowd\" must be 0 or 1", path, i);
            goto out;
        }
        if (json_is_true(crowd) || (json_is_integer(crowd) && json_integer_value(crowd) != 0))
            b->box.flags |= ACV_BOX_CROWD;
        if (area && (!json_is_number(area) || !isfinite(json_number_value(area)) || json_number_value(area) < 0)) {
            rc = acv_error(ACV_EFORMAT, "%s: annotations[%zu]: \"area\" must be a number >= 0", path, i);
            goto out;
        }
        b->area = area ? json_number_value(area) : wh;
    }
    rc = 0;
    goto out;
oom:
    rc = acv_error(ACV_ENOMEM, "%s: out of memory", path);
out:
    json_decref(root);
    return rc;
}

static int load_results(const char *path, coco_set *s)
{
    json_t *root = NULL;
    int rc = load_json(path, &root);
    if (rc) return rc;
    if (!json_is_array(root)) {
        rc = acv_error(ACV_EFORMAT, "%s: not a COCO results file (the top level must be a list of "
                       "{\"image_id\", \"category_id\", \"bbox\", \"score\"})", path);
        goto out;
    }
    s->npred = json_array_size(root);
    s->pred = malloc((s->npred + 1) * sizeof *s->pred);
    if (!s->pred) {
        rc = acv_error(ACV_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    for (size_t i = 0; i < s->npred; i++) {
        json_t *o = json_array_get(root, i);
        coco_box *b = &s->pred[i];
        if (!json_is_object(o)) {
            rc = acv_error(ACV_EFORMAT, "%s: entry [%zu] is not an object", path, i);
            goto out;
        }
        int img, cls;
        if ((rc = get_refs(s, path, "entry ", i, o, &img, &cls)) ||
            (rc = get_bbox(path, "entry ", i, o, &b->box, &b->area)))
            goto out;
        json_t *sc = json_object_get(o, "score");
        if (!json_is_number(sc) || !isfinite(json_number_value(sc))) {
            rc = acv_error(ACV_EFORMAT, "%s: entry [%zu]: \"score\" %s", path, i,
                           sc ? "is not a finite number" : "is missing");
            goto out;
        }
        b->img = img;
        b->box.cls = cls;
        b->box.score = (float)json_number_value(sc);
    }
    rc = 0;
out:
    json_decref(root);
    return rc;
}

/* Groups boxes by image, keeping file order within an image: boxes of image i become
 * out[off[i]..off[i+1]) (and their areas area[...] when area is not NULL). */
static int group(const coco_box *b, size_t n, size_t nimg, acv_box **out, double **area, int **off)
{
    *out = malloc((n + 1) * sizeof **out);
    *off = calloc(nimg + 2, sizeof **off);
    if (area) *area = malloc((n + 1) * sizeof **area);
    if (!*out || !*off || (area && !*area)) return acv_error(ACV_ENOMEM, "out of memory grouping %zu boxes", n);
    if (n > INT32_MAX) return acv_error(ACV_ERANGE, "too many boxes (%zu)", n);
    for (size_t i = 0; i < n; i++) (*off)[b[i].img + 2]++;
    for (size_t i = 2; i < nimg + 2; i++) (*off)[i] += (*off)[i - 1];
    for (size_t i = 0; i < n; i++) {
        int at = (*off)[b[i].img + 1]++;
        (*out)[at] = b[i].box;
        if (area) (*area)[at] = b[i].area;
    }
    return 0;
}

static void print_summary_line(const char *title, const char *type, const char *iou, const char *area, int maxdets,
                               double v)
{
    /* pycocotools' summarize() layout; an undefined figure prints as -1.000 there too */
    printf(" %-18s %s @[ IoU=%-9s | area=%6s | maxDets=%3d ] = %0.3f\n", title, type, iou, area, maxdets, v);
}

static void print_fig(double v)
{
    if (v < 0) printf(" %7s", "-");
    else printf(" %7.4f", v);
}

static int print_text(acv_det_metrics *m, const coco_set *s, double count_thr)
{
    acv_det_summary r;
    int rc = acv_det_metrics_summary(m, &r); /* computes the results: the calls below cannot fail */
    if (rc) return rc;
    const char *ap = "Average Precision", *ar = "Average Recall";
    print_summary_line(ap, "(AP)", "0.50:0.95", "all", 100, r.map50_95);
    print_summary_line(ap, "(AP)", "0.50", "all", 100, r.map50);
    print_summary_line(ap, "(AP)", "0.75", "all", 100, r.map75);
    print_summary_line(ap, "(AP)", "0.50:0.95", "small", 100, r.map_small);
    print_summary_line(ap, "(AP)", "0.50:0.95", "medium", 100, r.map_medium);
    print_summary_line(ap, "(AP)", "0.50:0.95", "large", 100, r.map_large);
    print_summary_line(ar, "(AR)", "0.50:0.95", "all", 1, r.ar1);
    print_summary_line(ar, "(AR)", "0.50:0.95", "all", 10, r.ar10);
    print_summary_line(ar, "(AR)", "0.50:0.95", "all", 100, r.ar100);
    print_summary_line(ar, "(AR)", "0.50:0.95", "small", 100, r.ar_small);
    print_summary_line(ar, "(AR)", "0.50:0.95", "medium", 100, r.ar_medium);
    print_summary_line(ar, "(AR)", "0.50:0.95", "large", 100, r.ar_large);
    printf("\n%-24s %7s %7s %7s %7s %8s %8s %9s\n", "class", "AP", "AP50", "AP75", "AR100", "gt", "pred",
           "count MAE");
    for (size_t c = 0; c < s->ncat; c++) {
        acv_det_class_stats cs;
        acv_det_metrics_class(m, (int)c, &cs);
        printf("%-24.24s", s->names[c]);
        print_fig(cs.ap);
        print_fig(cs.ap50);
        print_fig(cs.ap75);
        print_fig(cs.ar100);
        printf(" %8" PRId64 " %8" PRId64 "  ", cs.gt, cs.pred);
        print_fig(cs.count_mae);
        printf("\n");
    }
    printf("(- : no ground truth for the class, left out of the means)\n");
    if (r.images > 0)
        printf("\ncounting (score >= %g): MAE %.4f per image and class; every count exact in %.2f%% of %" PRId64
               " images\n", count_thr, r.count_mae, 100 * r.count_exact, r.images);
    else
        printf("\ncounting: no images\n");
    return 0;
}

int acv_cmd_eval_detections(int argc, char **argv)
{
    const char *gt_path = NULL, *pred_path = NULL, *iou_type = "bbox";
    double count_thr = 0.5;
    bool json = false;
    acv_argdef defs[] = {
        {"--gt", ACV_ARG_STR, &gt_path, "COCO.json", "ground truth: a COCO annotation file"},
        {"--pred", ACV_ARG_STR, &pred_path, "RESULTS.json",
         "detections: a COCO results list [{image_id, category_id, bbox:[x,y,w,h], score}]"},
        {"--iou-type", ACV_ARG_STR, &iou_type, "TYPE", "bbox (the only type so far)"},
        {"--count-threshold", ACV_ARG_FLOAT, &count_thr, "F",
         "score from which a detection counts for the counting metrics (default 0.5)"},
        {"--json", ACV_ARG_FLAG, &json, NULL, "print the metrics as one JSON object"},
    };
    int rc = acv_args_parse("eval-detections", "--gt COCO.json --pred RESULTS.json [--json]", argc, argv, defs,
                            (int)(sizeof defs / sizeof defs[0]), NULL, NULL);
    if (rc) return rc > 0 ? 0 : 2;
    if (!gt_path) return acv_cli_fail("eval-detections", "--gt COCO.json is required");
    if (!pred_path) return acv_cli_fail("eval-detections", "--pred RESULTS.json is required");
    if (strcmp(iou_type, "bbox"))
        return acv_cli_fail("eval-detections", "--iou-type %s is not supported (only bbox)", iou_type);
    if (!isfinite(count_thr)) return acv_cli_fail("eval-detections", "--count-threshold must be a finite number");

    coco_set s = {0};
    acv_box *gt = NULL, *pred = NULL;
    double *area = NULL;
    int *goff = NULL, *poff = NULL;
    acv_det_metrics *m = NULL;
    json_t *out = NULL;
    rc = load_gt(gt_path, &s);
    if (!rc) rc = load_results(pred_path, &s);
    if (!rc) rc = group(s.gt, s.ngt, s.nimg, &gt, &area, &goff);
    if (!rc) rc = group(s.pred, s.npred, s.nimg, &pred, NULL, &poff);
    if (!rc) {
        m = acv_det_metrics_new((int)s.ncat, (const char *const *)s.names);
        if (!m) rc = ACV_ENOMEM;
    }
    if (!rc) rc = acv_det_metrics_set_count_threshold(m, count_thr);
    for (size_t i = 0; i < s.nimg && !rc; i++) {
        rc = acv_det_metrics_add_image_areas(m, gt + goff[i], area + goff[i], goff[i + 1] - goff[i],
                                             pred + poff[i], poff[i + 1] - poff[i]);
        if (rc) acv_error_prefix(rc, "image id %" PRId64 ": ", s.imgs[i].id);
    }
    if (!rc && json) rc = acv_det_metrics_to_json(m, &out);
    if (!rc && json) {
        char *str = json_dumps(out, JSON_COMPACT | JSON_REAL_PRECISION(10));
        if (!str) rc = acv_error(ACV_ENOMEM, "out of memory printing the metrics");
        else printf("%s\n", str);
        free(str);
    } else if (!rc) {
        rc = print_text(m, &s, count_thr);
    }
    json_decref(out);
    acv_det_metrics_free(m);
    free(gt);
    free(pred);
    free(area);
    free(goff);
    free(poff);
    coco_set_free(&s);
    return rc ? acv_cli_error("eval-detections", rc) : 0;
}
