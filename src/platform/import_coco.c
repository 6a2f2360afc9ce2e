/* Imports: the COCO layout. A COCO file is a JSON object with "images", "annotations" and
 * (usually) "categories"; any number of them in one archive (one per split). Category ids
 * need not be contiguous; segmentation may be polygons or RLE (compressed or not); crowd
 * annotations are imported as ordinary shapes (counted in the summary). Images are found relative to the JSON file,
 * in images/<split>/ or images/ beside its folder, or by a unique file name. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "autocv/error.h"
#include "platform/import_internal.h"

/* ---- COCO RLE --------------------------------------------------------------------------------- */

/* Decodes COCO's compressed RLE string (pycocotools rleFrString) into counts; checks each is
 * non-negative and that they cover h*w pixels. */
static int rle_check_string(const char *s, int64_t pixels, const char **why)
{
    int64_t prev2 = 0, prev1 = 0, sum = 0, fg = 0;
    size_t m = 0;
    for (size_t p = 0; s[p];) {
        int64_t x = 0;
        int k = 0, more = 1, c = 0;
        while (more) {
            if (!s[p] || k > 12) {
                *why = "a malformed compressed RLE string";
                return ACV_EINVAL;
            }
            c = s[p] - 48;
            if (c < 0 || c > 63) {
                *why = "a malformed compressed RLE string";
                return ACV_EINVAL;
            }
            x |= (int64_t)(c & 0x1f) << (5 * k);
            more = c & 0x20;
            p++;
            k++;
        }
        if (c & 0x10) x |= -((int64_t)1 << (5 * k));
        if (m > 2) x += prev2;
        if (x < 0) {
            *why = "a negative run in an RLE";
            return ACV_EINVAL;
        }
        sum += x;
        if (m & 1) fg += x;
        prev2 = prev1;
        prev1 = x;
        m++;
    }
    if (sum != pixels) {
        *why = "RLE runs that do not cover the image exactly";
        return ACV_EINVAL;
    }
    if (fg == 0) {
        *why = "an empty mask";
        return ACV_EINVAL;
    }
    return 0;
}

/* Encodes counts as COCO's compressed RLE string (pycocotools rleToString); malloc'd. */
static char *rle_to_string(const json_t *counts, int64_t pixels, const char **why)
{
    size_t n = json_array_size(counts);
    char *out = malloc(n * 14 + 1);
    if (!out) {
        *why = "out of memory";
        return NULL;
    }
    size_t len = 0;
    int64_t sum = 0, fg = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(counts, i);
        if (!json_is_integer(v) || json_integer_value(v) < 0) {
            free(out);
            *why = "RLE counts that are not non-negative integers";
            return NULL;
        }
        int64_t x = json_integer_value(v);
        sum += x;
        if (i & 1) fg += x;
        if (i > 2) x -= json_integer_value(json_array_get(counts, i - 2));
        for (int more = 1; more;) {
            int64_t c = x & 0x1f;
            x >>= 5;
            more = (c & 0x10) ? x != -1 : x != 0;
            if (more) c |= 0x20;
            out[len++] = (char)(c + 48);
        }
    }
    out[len] = 0;
    if (sum != pixels || fg == 0) {
        free(out);
        *why = sum != pixels ? "RLE runs that do not cover the image exactly" : "an empty mask";
        return NULL;
    }
    return out;
}

/* A mask shape from a COCO RLE object for an image of w x h. */
static json_t *rle_shape(const char *label, const json_t *rle, int w, int h, const char **why)
{
    json_t *size = json_object_get(rle, "size"), *counts = json_object_get(rle, "counts");
    if (json_array_size(size) != 2 || !json_is_integer(json_array_get(size, 0)) ||
        !json_is_integer(json_array_get(size, 1))) {
        *why = "an RLE without \"size\": [height, width]";
        return NULL;
    }
    if (json_integer_value(json_array_get(size, 0)) != h || json_integer_value(json_array_get(size, 1)) != w) {
        *why = "an RLE whose size differs from the image's";
        return NULL;
    }
    char *str = NULL;
    if (json_is_string(counts)) {
        if (rle_check_string(json_string_value(counts), (int64_t)w * h, why)) return NULL;
        str = strdup(json_string_value(counts));
    } else if (json_is_array(counts)) {
        if (!(str = rle_to_string(counts, (int64_t)w * h, why))) return NULL;
    } else {
        *why = "an RLE without \"counts\"";
        return NULL;
    }
    json_t *s = str ? json_pack("{s:s, s:s, s:{s:[i, i], s:s}, s:s}", "type", "mask", "label", label, "rle", "size",
                                h, w, "counts", str, "source", "human")
                    : NULL;
    free(str);
    if (!s) *why = "out of memory";
    return s;
}

/* ---- conversion ------------------------------------------------------------------------------- */

/* Appends the shapes of one annotation to shapes; a shape that cannot be built is reported
 * (and left out); a structural problem skips the image (ACV_EINVAL). */
static int convert_ann(acv__plan *p, acv__item *it, const json_t *ann, const json_t *cats, int w, int h,
                       json_t *shapes)
{
    json_t *cid = json_object_get(ann, "category_id");
    json_int_t aid = json_integer_value(json_object_get(ann, "id"));
    char key[32];
    if (!json_is_integer(cid)) return acv_error(ACV_EINVAL, "annotation %lld has no integer category_id", (long long)aid);
    snprintf(key, sizeof key, "%lld", (long long)json_integer_value(cid));
    const char *label = json_string_value(json_object_get(cats, key));
    if (!label)
        return acv_error(ACV_EINVAL, "annotation %lld: category_id %s is not among the categories", (long long)aid,
                         key);
    bool crowd = json_integer_value(json_object_get(ann, "iscrowd")) == 1;
    json_t *seg = json_object_get(ann, "segmentation");
    size_t before = json_array_size(shapes);
    const char *why = NULL;
    if (json_is_object(seg)) {
        json_t *s = rle_shape(label, seg, w, h, &why);
        if (s) json_array_append_new(shapes, s);
    } else if (json_array_size(seg)) {
        /* A list of polygons [[x,y,x,y,...],...] (or one flat polygon). */
        bool flat = json_is_number(json_array_get(seg, 0));
        size_t npoly = flat ? 1 : json_array_size(seg);
        for (size_t k = 0; k < npoly; k++) {
            json_t *poly = flat ? seg : json_array_get(seg, k);
            size_t nv = json_array_size(poly);
            double *xy = nv ? malloc(nv * sizeof *xy) : NULL;
            if (nv && !xy) return acv_error(ACV_ENOMEM, "out of memory");
            bool ok = json_is_array(poly) && nv % 2 == 0;
            for (size_t v = 0; ok && v < nv; v++) {
                ok = json_is_number(json_array_get(poly, v));
                xy[v] = json_number_value(json_array_get(poly, v));
            }
            json_t *s = ok ? acv__polygon(label, xy, (int)(nv / 2), w, h, &why) : NULL;
            if (!ok) why = "a polygon that is not a list of x, y numbers";
            free(xy);
            if (s) json_array_append_new(shapes, s);
        }
    }
    if (json_array_size(shapes) == before) {
        /* No segmentation (or none usable): the box. */
        json_t *bb = json_object_get(ann, "bbox");
        const char *bwhy = NULL;
        json_t *s = NULL;
        if (json_array_size(bb) == 4)
            s = acv__box(label, json_number_value(json_array_get(bb, 0)), json_number_value(json_array_get(bb, 1)),
                         json_number_value(json_array_get(bb, 2)), json_number_value(json_array_get(bb, 3)), w, h,
                         &bwhy);
        else bwhy = "no segmentation and no bbox [x, y, w, h]";
        if (s) json_array_append_new(shapes, s);
        else why = why ? why : bwhy;
    }
    if (why) acv__plan_skip(p, it->img->path, "annotation %lld: %s (left out)", (long long)aid, why);
    if (crowd && json_array_size(shapes) > before) p->crowd++;
    return 0;
}

/* raw: {"anns":[annotation objects], "cats":{"<id>": name}}. */
static int coco_convert(acv__plan *p, acv__item *it, int w, int h)
{
    it->doc = acv__doc_new();
    if (!it->doc) return acv_error(ACV_ENOMEM, "out of memory");
    json_t *anns = json_object_get(it->raw, "anns"), *cats = json_object_get(it->raw, "cats");
    json_t *shapes = json_object_get(it->doc, "shapes");
    for (size_t i = 0; i < json_array_size(anns); i++) {
        int rc = convert_ann(p, it, json_array_get(anns, i), cats, w, h, shapes);
        if (rc) return rc;
    }
    return 0;
}

/* ---- planning --------------------------------------------------------------------------------- */

/* The image file a COCO image record names, for a JSON file at json_path. */
static acv__entry *resolve(acv__archive *a, const char *json_path, const char *file_name)
{
    char *dir = acv__path_dir(json_path), *parent = dir ? acv__path_dir(dir) : NULL;
    if (!dir || !parent) {
        free(dir);
        return NULL;
    }
    /* instances_<split>.json -> <split> */
    char split[256] = "";
    const char *base = acv__path_base(json_path), *us = strchr(base, '_'), *dot = strrchr(base, '.');
    if (us && dot && dot > us + 1 && (size_t)(dot - us - 1) < sizeof split)
        snprintf(split, sizeof split, "%.*s", (int)(dot - us - 1), us + 1);
    char cand[6][600];
    int nc = 0;
    snprintf(cand[nc++], sizeof cand[0], "%s", dir);
    if (split[0]) snprintf(cand[nc++], sizeof cand[0], "%s%simages/%s", parent, *parent ? "/" : "", split);
    snprintf(cand[nc++], sizeof cand[0], "%s%simages", parent, *parent ? "/" : "");
    snprintf(cand[nc++], sizeof cand[0], "%s%simages", dir, *dir ? "/" : "");
    if (split[0]) snprintf(cand[nc++], sizeof cand[0], "%s%s%s", parent, *parent ? "/" : "", split);
    snprintf(cand[nc++], sizeof cand[0], "%s", parent);
    acv__entry *e = NULL;
    for (int i = 0; !e && i < nc; i++) {
        char *path = acv__path_join(cand[i], file_name);
        e = path ? acv__archive_find(a, path) : NULL;
        free(path);
    }
    free(dir);
    free(parent);
    if (!e) e = acv__archive_find_base(a, acv__path_base(file_name));
    return e && acv__is_image_name(e->path) ? e : NULL;
}

/* True when the JSON file must be COCO (so a parse error fails the import). */
static bool coco_named(const char *path)
{
    return !strncasecmp(acv__path_base(path), "instances_", 10) || strstr(path, "annotations/") == path ||
           strstr(path, "/annotations/") != NULL;
}

/* Plans one COCO document found at path. */
static int plan_file(acv__archive *a, acv__plan *p, const char *path, json_t *doc)
{
    json_t *images = json_object_get(doc, "images"), *anns = json_object_get(doc, "annotations");
    json_t *cats_in = json_object_get(doc, "categories");
    json_t *cats = json_object(), *by_image = json_object();
    int rc = (!cats || !by_image) ? acv_error(ACV_ENOMEM, "out of memory") : 0;
    /* Categories: id -> name, in id order for the label list. */
    for (size_t i = 0; !rc && i < json_array_size(cats_in); i++) {
        json_t *c = json_array_get(cats_in, i), *id = json_object_get(c, "id");
        const char *name = json_string_value(json_object_get(c, "name"));
        if (!json_is_integer(id) || !name) {
            rc = acv_error(ACV_EINVAL, "%s: category %zu needs an integer \"id\" and a string \"name\"", path, i + 1);
            break;
        }
        const char *canon;
        char key[32];
        snprintf(key, sizeof key, "%lld", (long long)json_integer_value(id));
        if ((rc = acv__plan_label(p, name, &canon))) acv_error_prefix(rc, "%s: category %s: ", path, key);
        else json_object_set_new(cats, key, json_string(canon));
    }
    /* Without categories, the ids name the classes. */
    for (size_t i = 0; !rc && !cats_in && i < json_array_size(anns); i++) {
        json_t *cid = json_object_get(json_array_get(anns, i), "category_id");
        char key[32];
        if (!json_is_integer(cid)) continue;
        snprintf(key, sizeof key, "%lld", (long long)json_integer_value(cid));
        if (!json_object_get(cats, key) && !(rc = acv__plan_label(p, key, NULL)))
            json_object_set_new(cats, key, json_string(key));
    }
    /* Annotations grouped by image id. */
    for (size_t i = 0; !rc && i < json_array_size(anns); i++) {
        json_t *ann = json_array_get(anns, i), *iid = json_object_get(ann, "image_id");
        char key[32];
        if (!json_is_object(ann) || !json_is_integer(iid)) {
            acv__plan_skip(p, path, "annotation %zu has no integer image_id (left out)", i + 1);
            continue;
        }
        snprintf(key, sizeof key, "%lld", (long long)json_integer_value(iid));
        json_t *list = json_object_get(by_image, key);
        if (!list) json_object_set_new(by_image, key, list = json_array());
        json_array_append(list, ann);
    }
    for (size_t i = 0; !rc && i < json_array_size(images); i++) {
        json_t *im = json_array_get(images, i), *iid = json_object_get(im, "id");
        const char *fname = json_string_value(json_object_get(im, "file_name"));
        if (!json_is_integer(iid) || !fname || !*fname) {
            acv__plan_skip(p, path, "image record %zu needs an integer \"id\" and a \"file_name\"", i + 1);
            continue;
        }
        char key[32];
        snprintf(key, sizeof key, "%lld", (long long)json_integer_value(iid));
        acv__entry *e = resolve(a, path, fname);
        if (!e) {
            acv__plan_skip(p, fname, "named in %s but not found in the archive", path);
            continue;
        }
        json_t *list = json_object_get(by_image, key);
        json_t *raw = json_pack("{s:o, s:O}", "anns", list ? json_incref(list) : json_array(), "cats", cats);
        bool dup;
        if (!raw) rc = acv_error(ACV_ENOMEM, "out of memory");
        else if (!acv__plan_add(p, e, raw, &dup) && !dup) rc = ACV_ENOMEM;
        json_object_del(by_image, key);
    }
    const char *k;
    json_t *v;
    void *tmp;
    json_object_foreach_safe(by_image, tmp, k, v)
        acv__plan_skip(p, path, "%zu annotations of image id %s, which has no image record", json_array_size(v), k);
    json_decref(cats);
    json_decref(by_image);
    return rc;
}

int acv__plan_coco(acv__archive *a, acv__plan *p, bool *found)
{
    *found = false;
    int rc = 0;
    for (size_t i = 0; !rc && i < a->n; i++) {
        acv__entry *e = &a->e[i];
        if (!acv__has_ext(e->path, "json")) continue;
        bool named = coco_named(e->path);
        if (e->size > ACV_IMPORT_JSON_MAX) {
            if (named)
                rc = acv_error(ACV_ERANGE, "%s: %lld bytes, more than the %d MiB allowed for an annotation file",
                               e->path, (long long)e->size, ACV_IMPORT_JSON_MAX >> 20);
            continue;
        }
        char *text;
        size_t len;
        if ((rc = acv__entry_read(e, ACV_IMPORT_JSON_MAX, &text, &len))) break;
        json_error_t err;
        json_t *doc = json_loadb(text, len, 0, &err);
        free(text);
        if (!doc) {
            if (named)
                rc = acv_error(ACV_EFORMAT, "%s: line %d column %d: %s", e->path, err.line, err.column, err.text);
            continue;
        }
        if (json_is_array(json_object_get(doc, "images")) && json_is_array(json_object_get(doc, "annotations"))) {
            if (!*found) {
                p->format = "coco";
                p->convert = coco_convert;
            }
            *found = true;
            rc = plan_file(a, p, e->path, doc);
        }
        json_decref(doc);
    }
    if (rc || !*found) return rc;
    for (size_t i = 0; i < a->n; i++)
        if (!a->e[i].used && acv__is_image_name(a->e[i].path))
            acv__plan_skip(p, a->e[i].path, "not listed in any COCO annotation file");
    return 0;
}
