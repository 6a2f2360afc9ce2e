/* Annotation documents: validation against the image, task and labels; stored <-> API form;
 * COCO RLE; shape geometry and mask outlines (see annotation_doc.h). */
#include "platform/annotation_doc.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autocv/error.h"

/* Coordinates computed by clients (x + w) may overshoot the image edge by a rounding error. */
#define EPS 1e-6

static const char *const TASKS[] = {"cls", "det", "seg", "ocr"};

int acv_ann_task_parse(const char *s, acv_ann_task *t)
{
    for (int i = 0; i < 4; i++)
        if (s && !strcmp(s, TASKS[i])) {
            *t = (acv_ann_task)i;
            return 0;
        }
    return acv_error(ACV_EINVAL, "unknown task '%s' (known: cls, det, seg, ocr)", s ? s : "");
}

const char *acv_ann_task_name(acv_ann_task t) { return (unsigned)t < 4 ? TASKS[t] : "?"; }

/* ---- validation ------------------------------------------------------------------------ */

typedef enum { SH_BOX, SH_POLYGON, SH_MASK, SH_TEXT, SH_N } shape_type;
static const char *const SHAPES[SH_N] = {"box", "polygon", "mask", "text"};
/* The fields each shape type takes besides type, label, source and score. */
static const char *const SHAPE_FIELDS[SH_N][5] = {
    {"x", "y", "w", "h", NULL}, {"points", NULL}, {"rle", NULL}, {"points", "text", NULL}};

static bool task_allows(acv_ann_task task, shape_type t)
{
    switch (task) {
    case ACV_ANN_DET: return t == SH_BOX;
    case ACV_ANN_SEG: return t == SH_POLYGON || t == SH_MASK;
    case ACV_ANN_OCR: return t == SH_TEXT;
    default: return false;
    }
}

static const char *task_takes(acv_ann_task task)
{
    switch (task) {
    case ACV_ANN_CLS: return "tags only (no shapes)";
    case ACV_ANN_DET: return "boxes";
    case ACV_ANN_SEG: return "polygons and masks";
    default: return "text lines";
    }
}

static bool listed(const char *const *list, const char *k)
{
    for (int i = 0; list && list[i]; i++)
        if (!strcmp(list[i], k)) return true;
    return false;
}

/* A required number field of shape i. */
static int num_field(const json_t *o, const char *key, size_t i, double *v)
{
    json_t *x = json_object_get(o, key);
    if (!x) return acv_error(ACV_EFORMAT, "shapes[%zu].%s is required", i, key);
    if (!json_is_number(x)) return acv_error(ACV_EFORMAT, "shapes[%zu].%s must be a number", i, key);
    *v = json_number_value(x);
    return 0;
}

/* Resolves a label name at `where` ("tags[2]", "shapes[0].label"). */
static int resolve_at(acv_ann_resolve_fn resolve, void *ud, const json_t *name, const char *where, const char **canon)
{
    if (!json_is_string(name)) return acv_error(ACV_EFORMAT, "%s must be a label name (a string)", where);
    const char *s = json_string_value(name);
    if (!*s) return acv_error(ACV_EINVAL, "%s: the label name is empty", where);
    int rc = resolve(ud, s, canon);
    return rc ? acv_error_prefix(rc, "%s: ", where) : 0;
}

/* points: an array of [x, y] pairs inside the image, between min and max of them. Returns
 * them as a new array of real pairs in *out. */
static int points_field(const json_t *o, size_t i, size_t min, size_t max, int W, int H, json_t **out)
{
    *out = NULL;
    json_t *pts = json_object_get(o, "points");
    if (!pts) return acv_error(ACV_EFORMAT, "shapes[%zu].points is required", i);
    if (!json_is_array(pts)) return acv_error(ACV_EFORMAT, "shapes[%zu].points must be an array of [x, y] pairs", i);
    size_t n = json_array_size(pts);
    if (n < min || n > max) {
        if (min == max) return acv_error(ACV_EINVAL, "shapes[%zu].points: %zu points, a text line takes exactly %zu", i, n, min);
        return acv_error(ACV_EINVAL, "shapes[%zu].points: %zu points (a polygon takes %zu to %zu)", i, n, min, max);
    }
    json_t *arr = json_array();
    if (!arr) return acv_error(ACV_ENOMEM, "out of memory");
    for (size_t j = 0; j < n; j++) {
        json_t *p = json_array_get(pts, j);
        if (!json_is_array(p) || json_array_size(p) != 2 || !json_is_number(json_array_get(p, 0)) ||
            !json_is_number(json_array_get(p, 1))) {
            json_decref(arr);
            return acv_error(ACV_EFORMAT, "shapes[%zu].points[%zu] must be [x, y] (two numbers)", i, j);
        }
        double x = json_number_value(json_array_get(p, 0)), y = json_number_value(json_array_get(p, 1));
        if (x < -EPS || y < -EPS || x > W + EPS || y > H + EPS) {
            json_decref(arr);
            return acv_error(ACV_EINVAL, "shapes[%zu].points[%zu]: (%g, %g) is outside the image (%d x %d)", i, j, x,
                             y, W, H);
        }
        json_array_append_new(arr, json_pack("[f, f]", x, y));
    }
    *out = arr;
    return 0;
}

static double shoelace(const json_t *pts)
{
    size_t n = json_array_size(pts);
    double a = 0;
    for (size_t j = 0; j < n; j++) {
        const json_t *p = json_array_get(pts, j), *q = json_array_get(pts, (j + 1) % n);
        a += json_number_value(json_array_get(p, 0)) * json_number_value(json_array_get(q, 1)) -
             json_number_value(json_array_get(q, 0)) * json_number_value(json_array_get(p, 1));
    }
    return fabs(a) / 2;
}

static int mask_field(const json_t *o, size_t i, int W, int H, json_t **out)
{
    *out = NULL;
    json_t *rle = json_object_get(o, "rle");
    if (!rle) return acv_error(ACV_EFORMAT, "shapes[%zu].rle is required", i);
    if (!json_is_object(rle)) return acv_error(ACV_EFORMAT, "shapes[%zu].rle must be {\"size\":[h,w],\"counts\":...}", i);
    const char *k;
    json_t *v;
    json_object_foreach(rle, k, v) if (strcmp(k, "size") && strcmp(k, "counts"))
        return acv_error(ACV_EINVAL, "shapes[%zu].rle: unknown field '%s' (known: size, counts)", i, k);
    json_t *size = json_object_get(rle, "size"), *counts = json_object_get(rle, "counts");
    if (!json_is_array(size) || json_array_size(size) != 2 || !json_is_integer(json_array_get(size, 0)) ||
        !json_is_integer(json_array_get(size, 1)))
        return acv_error(ACV_EFORMAT, "shapes[%zu].rle.size must be [height, width] (two integers)", i);
    json_int_t h = json_integer_value(json_array_get(size, 0)), w = json_integer_value(json_array_get(size, 1));
    if (h != H || w != W)
        return acv_error(ACV_EINVAL, "shapes[%zu].rle.size: [%lld, %lld] is not the image's size [%d, %d] (height, width)",
                         i, (long long)h, (long long)w, H, W);
    if (!counts) return acv_error(ACV_EFORMAT, "shapes[%zu].rle.counts is required", i);
    uint32_t *runs;
    size_t n;
    int rc = acv_rle_runs(counts, &runs, &n);
    if (rc) return acv_error_prefix(rc, "shapes[%zu].rle.counts: ", i);
    uint64_t total = 0, fg = 0;
    for (size_t j = 0; j < n; j++) {
        total += runs[j];
        if (j & 1) fg += runs[j];
    }
    free(runs);
    if (total != (uint64_t)H * (uint64_t)W)
        return acv_error(ACV_EINVAL, "shapes[%zu].rle.counts: the runs cover %llu pixels, the image has %d x %d = %llu",
                         i, (unsigned long long)total, H, W, (unsigned long long)H * (unsigned long long)W);
    if (fg == 0) return acv_error(ACV_EINVAL, "shapes[%zu].rle: the mask is empty (no foreground pixel)", i);
    *out = json_pack("{s:[I, I], s:O}", "size", (json_int_t)H, (json_int_t)W, "counts", counts);
    return *out ? 0 : acv_error(ACV_ENOMEM, "out of memory");
}

/* Checks shape i and appends its stored form to `shapes`. */
static int shape_validate(const json_t *s, size_t i, acv_ann_task task, int W, int H, acv_ann_resolve_fn resolve,
                          void *ud, json_t *shapes)
{
    if (!json_is_object(s)) return acv_error(ACV_EFORMAT, "shapes[%zu] must be an object", i);
    json_t *tv = json_object_get(s, "type");
    if (!tv) return acv_error(ACV_EFORMAT, "shapes[%zu].type is required (box, polygon, mask or text)", i);
    if (!json_is_string(tv)) return acv_error(ACV_EFORMAT, "shapes[%zu].type must be a string", i);
    int t = 0;
    while (t < SH_N && strcmp(SHAPES[t], json_string_value(tv))) t++;
    if (t == SH_N)
        return acv_error(ACV_EINVAL, "shapes[%zu].type: unknown shape type '%s' (box, polygon, mask or text)", i,
                         json_string_value(tv));
    if (!task_allows(task, (shape_type)t))
        return acv_error(ACV_EINVAL, "shapes[%zu]: a %s set takes %s, not a %s", i, acv_ann_task_name(task),
                         task_takes(task), SHAPES[t]);
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)s, k, v) {
        if (!strcmp(k, "type") || !strcmp(k, "label") || !strcmp(k, "source") || !strcmp(k, "score") ||
            !strcmp(k, "difficult") || !strcmp(k, "iscrowd"))
            continue;
        if (listed(SHAPE_FIELDS[t], k)) continue;
        char known[128] = "type, label, source, score, difficult, iscrowd";
        for (int j = 0; SHAPE_FIELDS[t][j]; j++) snprintf(known + strlen(known), sizeof known - strlen(known), ", %s",
                                                          SHAPE_FIELDS[t][j]);
        return acv_error(ACV_EINVAL, "shapes[%zu]: unknown field '%s' for a %s (known: %s)", i, k, SHAPES[t], known);
    }
    char where[48];
    snprintf(where, sizeof where, "shapes[%zu].label", i);
    json_t *label = json_object_get(s, "label");
    if (!label) return acv_error(ACV_EFORMAT, "%s is required", where);
    const char *canon = NULL;
    int rc = resolve_at(resolve, ud, label, where, &canon);
    if (rc) return rc;
    const char *source = "human";
    json_t *sv = json_object_get(s, "source");
    if (sv && !json_is_null(sv)) {
        if (!json_is_string(sv)) return acv_error(ACV_EFORMAT, "shapes[%zu].source must be a string", i);
        source = json_string_value(sv);
        if (strcmp(source, "human") && strcmp(source, "model"))
            return acv_error(ACV_EINVAL, "shapes[%zu].source: '%s' is neither 'human' nor 'model'", i, source);
    }
    static const char *const FLAGS[] = {"difficult", "iscrowd"};
    bool flag[2] = {false, false};
    for (int f = 0; f < 2; f++) {
        json_t *fv = json_object_get(s, FLAGS[f]);
        if (fv && !json_is_null(fv) && !json_is_boolean(fv))
            return acv_error(ACV_EFORMAT, "shapes[%zu].%s must be true or false", i, FLAGS[f]);
        flag[f] = json_is_true(fv);
    }
    json_t *score = json_object_get(s, "score");
    if (score && !json_is_null(score)) {
        if (!json_is_number(score)) return acv_error(ACV_EFORMAT, "shapes[%zu].score must be a number", i);
        double sc = json_number_value(score);
        if (!(sc >= 0 && sc <= 1)) return acv_error(ACV_EINVAL, "shapes[%zu].score: %g is outside [0, 1]", i, sc);
    }

    json_t *o = json_pack("{s:s, s:s}", "type", SHAPES[t], "label", canon);
    if (!o) return acv_error(ACV_ENOMEM, "out of memory");
    if (t == SH_BOX) {
        double x = 0, y = 0, w = 0, h = 0;
        if ((rc = num_field(s, "x", i, &x)) || (rc = num_field(s, "y", i, &y)) || (rc = num_field(s, "w", i, &w)) ||
            (rc = num_field(s, "h", i, &h))) {
        } else if (!(w > 0)) {
            rc = acv_error(ACV_EINVAL, "shapes[%zu].w must be positive (got %g)", i, w);
        } else if (!(h > 0)) {
            rc = acv_error(ACV_EINVAL, "shapes[%zu].h must be positive (got %g)", i, h);
        } else if (x < -EPS || x >= W) {
            rc = acv_error(ACV_EINVAL, "shapes[%zu].x: %g is outside the image (0 to %d)", i, x, W);
        } else if (y < -EPS || y >= H) {
            rc = acv_error(ACV_EINVAL, "shapes[%zu].y: %g is outside the image (0 to %d)", i, y, H);
        } else if (x + w > W + EPS) {
            rc = acv_error(ACV_EINVAL, "shapes[%zu].w: x + w = %g is beyond the image width %d", i, x + w, W);
        } else if (y + h > H + EPS) {
            rc = acv_error(ACV_EINVAL, "shapes[%zu].h: y + h = %g is beyond the image height %d", i, y + h, H);
        } else {
            json_object_set_new(o, "x", json_real(x));
            json_object_set_new(o, "y", json_real(y));
            json_object_set_new(o, "w", json_real(w));
            json_object_set_new(o, "h", json_real(h));
        }
    } else if (t == SH_POLYGON || t == SH_TEXT) {
        json_t *pts;
        rc = t == SH_POLYGON ? points_field(s, i, 3, ACV_ANN_MAX_POINTS, W, H, &pts) : points_field(s, i, 4, 4, W, H, &pts);
        if (!rc && t == SH_POLYGON && !(shoelace(pts) > 0)) {
            json_decref(pts);
            rc = acv_error(ACV_EINVAL, "shapes[%zu].points: the polygon has no area (its points are on one line)", i);
        }
        if (!rc) json_object_set_new(o, "points", pts);
        if (!rc && t == SH_TEXT) {
            const char *text = NULL;
            json_t *tx = json_object_get(s, "text");
            if (!tx) rc = acv_error(ACV_EFORMAT, "shapes[%zu].text is required (the line's text; may be empty)", i);
            else if (!json_is_string(tx)) rc = acv_error(ACV_EFORMAT, "shapes[%zu].text must be a string", i);
            else if (json_string_length(tx) > ACV_ANN_MAX_TEXT)
                rc = acv_error(ACV_EINVAL, "shapes[%zu].text is longer than %d bytes", i, ACV_ANN_MAX_TEXT);
            else if (strlen(text = json_string_value(tx)) != json_string_length(tx))
                rc = acv_error(ACV_EINVAL, "shapes[%zu].text contains a NUL character", i);
            else json_object_set_new(o, "text", json_string(text));
        }
    } else {
        json_t *rle;
        if (!(rc = mask_field(s, i, W, H, &rle))) json_object_set_new(o, "rle", rle);
    }
    if (!rc) {
        json_object_set_new(o, "source", json_string(source));
        if (score && !json_is_null(score)) json_object_set_new(o, "score", json_real(json_number_value(score)));
        for (int f = 0; f < 2; f++)
            if (flag[f]) json_object_set_new(o, FLAGS[f], json_true()); /* kept only when set */
        json_array_append_new(shapes, o);
    } else {
        json_decref(o);
    }
    return rc;
}

int acv_ann_doc_validate(const json_t *in, acv_ann_task task, int width, int height, acv_ann_resolve_fn resolve,
                         void *ud, const char *const *ignore, json_t **out)
{
    *out = NULL;
    if (!json_is_object(in)) return acv_error(ACV_EFORMAT, "the annotation must be a JSON object {\"tags\",\"shapes\"}");
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)in, k, v) if (strcmp(k, "tags") && strcmp(k, "shapes") && !listed(ignore, k))
        return acv_error(ACV_EINVAL, "unknown field '%s' (an annotation has tags and shapes)", k);
    json_t *tags = json_object_get(in, "tags"), *shapes = json_object_get(in, "shapes");
    if (tags && !json_is_null(tags) && !json_is_array(tags))
        return acv_error(ACV_EFORMAT, "field 'tags' must be an array of label names");
    if (shapes && !json_is_null(shapes) && !json_is_array(shapes))
        return acv_error(ACV_EFORMAT, "field 'shapes' must be an array of shapes");
    if (json_array_size(tags) > ACV_ANN_MAX_TAGS)
        return acv_error(ACV_EINVAL, "field 'tags' has %zu entries (at most %d)", json_array_size(tags), ACV_ANN_MAX_TAGS);
    if (json_array_size(shapes) > ACV_ANN_MAX_SHAPES)
        return acv_error(ACV_EINVAL, "field 'shapes' has %zu entries (at most %d)", json_array_size(shapes),
                         ACV_ANN_MAX_SHAPES);
    if (task == ACV_ANN_CLS && json_array_size(shapes))
        return acv_error(ACV_EINVAL, "shapes[0]: a cls set takes tags only (no shapes)");
    json_t *otags = json_array(), *oshapes = json_array();
    int rc = otags && oshapes ? 0 : acv_error(ACV_ENOMEM, "out of memory");
    for (size_t i = 0; !rc && i < json_array_size(tags); i++) {
        char where[32];
        snprintf(where, sizeof where, "tags[%zu]", i);
        const char *canon = NULL;
        rc = resolve_at(resolve, ud, json_array_get(tags, i), where, &canon);
        bool dup = false;
        for (size_t j = 0; !rc && !dup && j < json_array_size(otags); j++)
            dup = !strcmp(json_string_value(json_array_get(otags, j)), canon);
        if (!rc && !dup) json_array_append_new(otags, json_string(canon)); /* a repeated tag counts once */
    }
    for (size_t i = 0; !rc && i < json_array_size(shapes); i++)
        rc = shape_validate(json_array_get(shapes, i), i, task, width, height, resolve, ud, oshapes);
    if (!rc) *out = json_pack("{s:o, s:o}", "tags", otags, "shapes", oshapes);
    else {
        json_decref(otags);
        json_decref(oshapes);
    }
    if (!rc && !*out) rc = acv_error(ACV_ENOMEM, "out of memory");
    return rc;
}

json_t *acv_ann_doc_labels(const json_t *doc)
{
    json_t *set = json_object();
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(doc, "tags"), i, v) if (json_is_string(v))
        json_object_set_new(set, json_string_value(v), json_true());
    json_array_foreach(json_object_get(doc, "shapes"), i, v) {
        const char *l = json_string_value(json_object_get(v, "label"));
        if (l) json_object_set_new(set, l, json_true());
    }
    return set;
}

/* ---- COCO RLE ------------------------------------------------------------------------- */

int acv_rle_runs(const json_t *counts, uint32_t **runs, size_t *n)
{
    *runs = NULL;
    *n = 0;
    if (json_is_array(counts)) {
        size_t m = json_array_size(counts);
        uint32_t *r = malloc((m ? m : 1) * sizeof *r);
        if (!r) return acv_error(ACV_ENOMEM, "out of memory");
        for (size_t i = 0; i < m; i++) {
            json_t *c = json_array_get(counts, i);
            if (!json_is_integer(c)) {
                free(r);
                return acv_error(ACV_EFORMAT, "counts[%zu] must be an integer", i);
            }
            json_int_t x = json_integer_value(c);
            if (x < 0 || x > (json_int_t)UINT32_MAX) {
                free(r);
                return acv_error(ACV_EINVAL, "counts[%zu]: %lld is not a run length", i, (long long)x);
            }
            r[i] = (uint32_t)x;
        }
        *runs = r;
        *n = m;
        return 0;
    }
    if (!json_is_string(counts))
        return acv_error(ACV_EFORMAT, "must be a list of run lengths or a compressed COCO RLE string");
    /* COCO's compressed form (pycocotools rleFrString): each value in 5-bit groups, low
     * first, as characters from '0' (48); bit 0x20 says more groups follow, bit 0x10 of the
     * last group is the sign; from the fourth value on, values are deltas to the value two
     * places back. */
    const char *s = json_string_value(counts);
    size_t len = json_string_length(counts), m = 0;
    uint32_t *r = malloc((len ? len : 1) * sizeof *r);
    if (!r) return acv_error(ACV_ENOMEM, "out of memory");
    size_t p = 0;
    while (p < len) {
        int64_t x = 0;
        int k = 0, more = 1;
        size_t start = p;
        while (more) {
            if (p >= len) {
                free(r);
                return acv_error(ACV_EFORMAT, "the string ends inside a value (at character %zu)", start);
            }
            int c = (unsigned char)s[p] - 48;
            if (c < 0 || c > 63) {
                free(r);
                return acv_error(ACV_EFORMAT, "character %zu ('%c') is not part of a COCO RLE string", p, s[p]);
            }
            if (k >= 12) {
                free(r);
                return acv_error(ACV_EFORMAT, "value at character %zu is too long", start);
            }
            x |= (int64_t)(c & 0x1f) << (5 * k);
            more = c & 0x20;
            p++;
            k++;
            if (!more && (c & 0x10)) x |= (int64_t)(~(uint64_t)0 << (5 * k));
        }
        if (m > 2) x += r[m - 2];
        if (x < 0 || x > (int64_t)UINT32_MAX) {
            free(r);
            return acv_error(ACV_EINVAL, "run %zu decodes to %lld, not a run length", m, (long long)x);
        }
        r[m++] = (uint32_t)x;
    }
    *runs = r;
    *n = m;
    return 0;
}

char *acv_rle_encode_string(const uint32_t *runs, size_t n)
{
    char *s = malloc(n * 7 + 1), *w = s;
    if (!s) return NULL;
    for (size_t i = 0; i < n; i++) {
        int64_t x = runs[i];
        if (i > 2) x -= runs[i - 2];
        int more = 1;
        while (more) {
            int c = (int)(x & 0x1f);
            x >>= 5; /* arithmetic: keeps the sign */
            more = (c & 0x10) ? x != -1 : x != 0;
            if (more) c |= 0x20;
            *w++ = (char)(c + 48);
        }
    }
    *w = 0;
    return s;
}

int acv_rle_from_mask(const uint8_t *mask, int h, int w, uint32_t **runs, size_t *n)
{
    size_t total = (size_t)h * (size_t)w, m = 0;
    uint32_t *r = malloc((total + 2) * sizeof *r);
    if (!r) return acv_error(ACV_ENOMEM, "out of memory");
    uint8_t cur = 0;
    uint32_t run = 0;
    for (size_t i = 0; i < total; i++) {
        uint8_t v = mask[i] != 0;
        if (v != cur) {
            r[m++] = run;
            run = 0;
            cur = v;
        }
        run++;
    }
    r[m++] = run;
    *runs = r;
    *n = m;
    return 0;
}

int acv_rle_to_mask(const uint32_t *runs, size_t n, int h, int w, uint8_t **mask)
{
    size_t total = (size_t)h * (size_t)w, p = 0;
    uint8_t *m = calloc(total ? total : 1, 1);
    if (!m) return acv_error(ACV_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        if (runs[i] > total - p) {
            free(m);
            return acv_error(ACV_EINVAL, "the runs cover more than %d x %d pixels", h, w);
        }
        if (i & 1) memset(m + p, 1, runs[i]);
        p += runs[i];
    }
    if (p != total) {
        free(m);
        return acv_error(ACV_EINVAL, "the runs cover %zu pixels, not %d x %d", p, h, w);
    }
    *mask = m;
    return 0;
}

/* ---- geometry ------------------------------------------------------------------------- */

static void points_bbox(const json_t *pts, double box[4])
{
    double x0 = INFINITY, y0 = INFINITY, x1 = -INFINITY, y1 = -INFINITY;
    size_t i;
    json_t *p;
    json_array_foreach(pts, i, p) {
        double x = json_number_value(json_array_get(p, 0)), y = json_number_value(json_array_get(p, 1));
        x0 = fmin(x0, x), y0 = fmin(y0, y), x1 = fmax(x1, x), y1 = fmax(y1, y);
    }
    if (x0 > x1) x0 = x1 = y0 = y1 = 0;
    box[0] = x0, box[1] = y0, box[2] = x1 - x0, box[3] = y1 - y0;
}

int acv_ann_shape_bbox(const json_t *shape, double box[4], double *area)
{
    const char *type = json_string_value(json_object_get(shape, "type"));
    if (!type) return acv_error(ACV_EINVAL, "a shape without a type");
    if (!strcmp(type, "box")) {
        box[0] = json_number_value(json_object_get(shape, "x"));
        box[1] = json_number_value(json_object_get(shape, "y"));
        box[2] = json_number_value(json_object_get(shape, "w"));
        box[3] = json_number_value(json_object_get(shape, "h"));
        *area = box[2] * box[3];
        return 0;
    }
    if (!strcmp(type, "polygon") || !strcmp(type, "text")) {
        const json_t *pts = json_object_get(shape, "points");
        points_bbox(pts, box);
        *area = shoelace(pts);
        return 0;
    }
    if (strcmp(type, "mask")) return acv_error(ACV_EINVAL, "unknown shape type '%s'", type);
    const json_t *rle = json_object_get(shape, "rle");
    int64_t h = json_integer_value(json_array_get(json_object_get(rle, "size"), 0));
    uint32_t *runs;
    size_t n;
    int rc = acv_rle_runs(json_object_get(rle, "counts"), &runs, &n);
    if (rc) return rc;
    /* Column-major: pixel p is at x = p / h, y = p % h. A foreground run that crosses into
     * the next column covers that column's top and the previous one's bottom. */
    uint64_t p = 0, fg = 0;
    int64_t x0 = INT64_MAX, x1 = -1, y0 = INT64_MAX, y1 = -1;
    for (size_t i = 0; h > 0 && i < n; p += runs[i], i++) {
        if (!(i & 1) || runs[i] == 0) continue;
        uint64_t a = p, b = p + runs[i] - 1;
        fg += runs[i];
        int64_t ca = (int64_t)(a / (uint64_t)h), cb = (int64_t)(b / (uint64_t)h);
        if (ca < x0) x0 = ca;
        if (cb > x1) x1 = cb;
        if (ca == cb) {
            if ((int64_t)(a % (uint64_t)h) < y0) y0 = (int64_t)(a % (uint64_t)h);
            if ((int64_t)(b % (uint64_t)h) > y1) y1 = (int64_t)(b % (uint64_t)h);
        } else {
            y0 = 0;
            y1 = h - 1;
        }
    }
    free(runs);
    if (fg == 0) {
        box[0] = box[1] = box[2] = box[3] = 0;
    } else {
        box[0] = (double)x0, box[1] = (double)y0, box[2] = (double)(x1 - x0 + 1), box[3] = (double)(y1 - y0 + 1);
    }
    *area = (double)fg;
    return 0;
}

/* Crack following: walks the pixel edges of a region with the region on the right. At a
 * corner (vx, vy) heading d (E, S, W, N), L and R are the pixels ahead to the left and right
 * of the direction of travel. */
static const int DX[4] = {1, 0, -1, 0}, DY[4] = {0, 1, 0, -1};
static const int LX[4] = {0, 0, -1, -1}, LY[4] = {-1, 0, 0, -1};
static const int RX[4] = {0, -1, -1, 0}, RY[4] = {0, 0, -1, -1};

static int trace(const int32_t *lab, int h, int w, int32_t c, int x0, int y0, json_t **poly)
{
#define IN(x, y) ((x) >= 0 && (y) >= 0 && (x) < w && (y) < h && lab[(size_t)(x) * h + (y)] == c)
    json_t *pts = json_array();
    if (!pts) return acv_error(ACV_ENOMEM, "out of memory");
    int vx = x0, vy = y0, d = 0;
    json_array_append_new(pts, json_pack("[i, i]", vx, vy));
    size_t steps = 0, limit = 4 * (size_t)h * (size_t)w + 8;
    do {
        bool l = IN(vx + LX[d], vy + LY[d]), r = IN(vx + RX[d], vy + RY[d]);
        int nd = !r ? (d + 1) % 4 : l ? (d + 3) % 4 : d;
        if (nd != d && !(vx == x0 && vy == y0)) json_array_append_new(pts, json_pack("[i, i]", vx, vy));
        d = nd;
        vx += DX[d];
        vy += DY[d];
    } while (!(vx == x0 && vy == y0) && ++steps < limit); /* the start corner is passed once */
#undef IN
    *poly = pts;
    return 0;
}

int acv_mask_outlines(const uint8_t *mask, int h, int w, json_t **polys)
{
    size_t total = (size_t)h * (size_t)w;
    *polys = json_array();
    int32_t *lab = calloc(total ? total : 1, sizeof *lab);
    int32_t *stack = malloc((total ? total : 1) * sizeof *stack);
    if (!*polys || !lab || !stack) {
        free(lab);
        free(stack);
        json_decref(*polys);
        *polys = NULL;
        return acv_error(ACV_ENOMEM, "out of memory");
    }
    int32_t next = 0;
    int rc = 0;
    for (size_t p = 0; !rc && p < total; p++) {
        if (!mask[p] || lab[p]) continue;
        /* Scanning column-major, p is the region's leftmost column's topmost pixel: the pixel
         * above it is outside the region and not in a hole, so its top edge is on the outer
         * outline. Label the region (4-connected), then trace from that edge. */
        int32_t c = ++next;
        size_t sp = 0;
        lab[p] = c;
        stack[sp++] = (int32_t)p;
        while (sp) {
            size_t q = (size_t)stack[--sp];
            int x = (int)(q / (size_t)h), y = (int)(q % (size_t)h);
            const int nx[4] = {x + 1, x - 1, x, x}, ny[4] = {y, y, y + 1, y - 1};
            for (int k = 0; k < 4; k++) {
                if (nx[k] < 0 || ny[k] < 0 || nx[k] >= w || ny[k] >= h) continue;
                size_t r = (size_t)nx[k] * h + ny[k];
                if (mask[r] && !lab[r]) {
                    lab[r] = c;
                    stack[sp++] = (int32_t)r;
                }
            }
        }
        json_t *poly = NULL;
        if (!(rc = trace(lab, h, w, c, (int)(p / (size_t)h), (int)(p % (size_t)h), &poly)))
            json_array_append_new(*polys, poly);
    }
    free(lab);
    free(stack);
    if (rc) {
        json_decref(*polys);
        *polys = NULL;
    }
    return rc;
}
