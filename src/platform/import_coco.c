/* Imports: the COCO layout (as CVAT, Label Studio and Roboflow write it). A COCO file is a JSON
 * object with "images" and "annotations" (usually "categories"); any number of them in one
 * archive (one per split). Category ids need not start at 1 nor be contiguous; Roboflow's
 * dataset-level category (supercategory "none", the supercategory of the others) is no class.
 * segmentation may be polygons or RLE (compressed or not), else bbox (fractional values kept;
 * also when the segmentation is just the bbox's rectangle, as many writers give a box);
 * area is not read; iscrowd and difficult become the shapes' flags (and are counted in the
 * summary). Images are found relative to the JSON file, in images/<split>/ or images/ beside
 * its folder, or by a unique file name; file_name may have sub-folders, '\' separators or be
 * absolute. Other keys (info, licenses, ...) are ignored. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "autocv/error.h"
#include "data/coco_json.h"
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

/* A polygon list with no coordinate at all ([] or [[]]): no segmentation (CVAT and Label Studio
 * write one for boxes). */
static bool seg_empty(const json_t *seg)
{
    if (!json_is_array(seg)) return !json_is_object(seg);
    for (size_t k = 0; k < json_array_size(seg); k++) {
        json_t *v = json_array_get(seg, k);
        if (!json_is_array(v) || json_array_size(v)) return false;
    }
    return true;
}

/* Is seg one polygon of 4 points that are the corners of bbox (within 0.01 px)? Many writers
 * (this platform's COCO export, src/data's, Detectron2's converters) give a box that as its
 * segmentation: it is imported as the box. */
static bool seg_is_bbox(const json_t *seg, const json_t *bb)
{
    if (json_array_size(seg) == 1 && json_is_array(json_array_get(seg, 0))) seg = json_array_get(seg, 0);
    if (json_array_size(seg) != 8 || json_array_size(bb) != 4) return false;
    double b[4];
    for (size_t k = 0; k < 4; k++) {
        if (!json_is_number(json_array_get(bb, k))) return false;
        b[k] = json_number_value(json_array_get(bb, k));
    }
    const double tol = 0.01;
    unsigned corners = 0;
    for (size_t k = 0; k < 4; k++) {
        json_t *xv = json_array_get(seg, 2 * k), *yv = json_array_get(seg, 2 * k + 1);
        if (!json_is_number(xv) || !json_is_number(yv)) return false;
        double x = json_number_value(xv), y = json_number_value(yv);
        int cx = fabs(x - b[0]) <= tol ? 0 : fabs(x - (b[0] + b[2])) <= tol ? 1 : -1;
        int cy = fabs(y - b[1]) <= tol ? 0 : fabs(y - (b[1] + b[3])) <= tol ? 1 : -1;
        if (cx < 0 || cy < 0) return false;
        corners |= 1u << (cy * 2 + cx);
    }
    return corners == 15 && b[2] > tol && b[3] > tol;
}

/* Appends the shapes of one annotation to shapes; a shape that cannot be built is reported
 * (and left out); a structural problem skips the image (ACV_EINVAL). ref: {"a": annotation,
 * "name": "annotation <id>" (or its index when it has no id)}. */
static int convert_ann(acv__plan *p, acv__item *it, const json_t *ref, const json_t *cats, const json_t *supers,
                       int w, int h, json_t *shapes)
{
    const json_t *ann = json_object_get(ref, "a");
    const char *aname = json_string_value(json_object_get(ref, "name"));
    int64_t cid;
    char key[32];
    if (!acv_coco_int(ann, "category_id", &cid)) return acv_error(ACV_EINVAL, "%s has no integer category_id", aname);
    snprintf(key, sizeof key, "%lld", (long long)cid);
    const char *label = json_string_value(json_object_get(cats, key));
    if (!label && json_object_get(supers, key))
        return acv_error(ACV_EINVAL, "%s: category_id %s ('%s') is the supercategory of the other categories (the "
                                     "dataset's name in a Roboflow export), not a class: give it its own category",
                         aname, key, json_string_value(json_object_get(supers, key)));
    if (!label) return acv_error(ACV_EINVAL, "%s: category_id %s is not among the categories", aname, key);
    bool crowd = acv_coco_flag(ann, "iscrowd"), difficult = acv_coco_flag(ann, "difficult");
    json_t *seg = json_object_get(ann, "segmentation");
    size_t before = json_array_size(shapes);
    const char *why = NULL;
    if (json_is_object(seg)) {
        json_t *s = rle_shape(label, seg, w, h, &why);
        if (s) json_array_append_new(shapes, s);
    } else if (!seg_empty(seg) && !seg_is_bbox(seg, json_object_get(ann, "bbox"))) {
        /* A list of polygons [[x,y,x,y,...],...] (or one flat polygon). */
        bool flat = json_is_number(json_array_get(seg, 0));
        size_t npoly = flat ? 1 : json_array_size(seg);
        for (size_t k = 0; k < npoly; k++) {
            json_t *poly = flat ? seg : json_array_get(seg, k);
            size_t nv = json_array_size(poly);
            if (!flat && json_is_array(poly) && !nv) continue; /* an empty part */
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
        bool ok = json_array_size(bb) == 4;
        for (size_t k = 0; ok && k < 4; k++) ok = json_is_number(json_array_get(bb, k));
        if (ok)
            s = acv__box(label, json_number_value(json_array_get(bb, 0)), json_number_value(json_array_get(bb, 1)),
                         json_number_value(json_array_get(bb, 2)), json_number_value(json_array_get(bb, 3)), w, h,
                         &bwhy);
        else bwhy = json_object_get(ann, "bbox") ? "a bbox that is not 4 numbers [x, y, w, h]"
                                                 : "no segmentation and no bbox [x, y, w, h]";
        if (s) {
            json_array_append_new(shapes, s);
            if (why) {
                acv__plan_skip(p, it->img->path, "%s: its segmentation is %s; its bbox was imported instead", aname,
                               why);
                why = NULL;
            }
        } else {
            why = why ? why : bwhy;
        }
    }
    if (why) acv__plan_skip(p, it->img->path, "%s: %s (left out)", aname, why);
    for (size_t k = before; k < json_array_size(shapes); k++) {
        if (crowd) json_object_set_new(json_array_get(shapes, k), "iscrowd", json_true());
        if (difficult) json_object_set_new(json_array_get(shapes, k), "difficult", json_true());
    }
    if (json_array_size(shapes) > before) {
        p->crowd += crowd;
        p->difficult += difficult;
    }
    return 0;
}

/* raw: {"anns":[{"a": annotation, "name"}], "cats":{"<id>": name}, "supers":{"<id>": name}}. */
static int coco_convert(acv__plan *p, acv__item *it, int w, int h)
{
    it->doc = acv__doc_new();
    if (!it->doc) return acv_error(ACV_ENOMEM, "out of memory");
    json_t *anns = json_object_get(it->raw, "anns"), *cats = json_object_get(it->raw, "cats");
    json_t *supers = json_object_get(it->raw, "supers"), *shapes = json_object_get(it->doc, "shapes");
    for (size_t i = 0; i < json_array_size(anns); i++) {
        int rc = convert_ann(p, it, json_array_get(anns, i), cats, supers, w, h, shapes);
        if (rc) return rc;
    }
    return 0;
}

/* ---- planning --------------------------------------------------------------------------------- */

/* The file a COCO image record names, for a JSON file at json_path (may be an entry that is no
 * image: the caller says so). */
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
    return e;
}

/* True when the JSON file must be COCO (so a parse error fails the import). */
static bool coco_named(const char *path)
{
    const char *base = acv__path_base(path);
    return !strncasecmp(base, "instances_", 10) || !strcmp(base, "_annotations.coco.json") ||
           !strcmp(base, "result.json") || strstr(path, "annotations/") == path || strstr(path, "/annotations/") != NULL;
}

/* Plans one COCO document found at path. */
static int plan_file(acv__archive *a, acv__plan *p, const char *path, json_t *doc)
{
    json_t *images = json_object_get(doc, "images"), *anns = json_object_get(doc, "annotations");
    json_t *cats_in = json_object_get(doc, "categories");
    json_t *cats = json_object(), *supers = json_object(), *by_image = json_object(), *seen = json_object();
    bool *super = NULL;
    int rc = (!cats || !supers || !by_image || !seen) ? acv_error(ACV_ENOMEM, "out of memory") : 0;
    if (!rc && cats_in && !json_is_array(cats_in))
        rc = acv_error(ACV_EINVAL, "%s: \"categories\" is not an array", path);
    if (!rc) rc = acv_coco_super_flags(cats_in, &super);
    /* Categories: id -> name, in file order for the label list. */
    for (size_t i = 0; !rc && i < json_array_size(cats_in); i++) {
        json_t *c = json_array_get(cats_in, i);
        const char *name = json_string_value(json_object_get(c, "name"));
        int64_t id;
        if (!acv_coco_int(c, "id", &id) || !name) {
            rc = acv_error(ACV_EINVAL, "%s: categories[%zu] needs an integer \"id\" and a string \"name\"", path, i);
            break;
        }
        const char *canon;
        char key[32];
        snprintf(key, sizeof key, "%lld", (long long)id);
        if (json_object_get(cats, key) || json_object_get(supers, key))
            rc = acv_error(ACV_EINVAL, "%s: two categories have id %s", path, key);
        else if (super[i]) json_object_set_new(supers, key, json_string(name));
        else if ((rc = acv__plan_label(p, name, &canon))) acv_error_prefix(rc, "%s: category %s: ", path, key);
        else json_object_set_new(cats, key, json_string(canon));
    }
    free(super);
    /* Without categories, the ids name the classes. */
    for (size_t i = 0; !rc && !cats_in && i < json_array_size(anns); i++) {
        int64_t cid;
        char key[32];
        if (!acv_coco_int(json_array_get(anns, i), "category_id", &cid)) continue;
        snprintf(key, sizeof key, "%lld", (long long)cid);
        if (!json_object_get(cats, key) && !(rc = acv__plan_label(p, key, NULL)))
            json_object_set_new(cats, key, json_string(key));
    }
    /* Annotations grouped by image id, each with the name messages give it. */
    for (size_t i = 0; !rc && i < json_array_size(anns); i++) {
        json_t *ann = json_array_get(anns, i);
        int64_t iid, aid;
        char name[64], key[32];
        if (json_is_object(ann) && acv_coco_int(ann, "id", &aid)) snprintf(name, sizeof name, "annotation %lld", (long long)aid);
        else snprintf(name, sizeof name, "annotations[%zu]", i);
        if (!json_is_object(ann) || !acv_coco_int(ann, "image_id", &iid)) {
            acv__plan_skip(p, path, "%s has no integer image_id (left out)", name);
            continue;
        }
        snprintf(key, sizeof key, "%lld", (long long)iid);
        json_t *list = json_object_get(by_image, key);
        if (!list) json_object_set_new(by_image, key, list = json_array());
        json_array_append_new(list, json_pack("{s:O, s:s}", "a", ann, "name", name));
    }
    for (size_t i = 0; !rc && i < json_array_size(images); i++) {
        json_t *im = json_array_get(images, i);
        const char *fname = json_string_value(json_object_get(im, "file_name"));
        int64_t iid;
        if (!acv_coco_int(im, "id", &iid) || !fname || !*fname) {
            acv__plan_skip(p, path, "images[%zu] needs an integer \"id\" and a \"file_name\"", i);
            continue;
        }
        char key[32];
        snprintf(key, sizeof key, "%lld", (long long)iid);
        if (json_object_get(seen, key)) {
            acv__plan_skip(p, path, "images[%zu]: image id %s appears twice (the first record is used)", i, key);
            continue;
        }
        json_object_set_new(seen, key, json_true());
        char *fs = strdup(fname); /* '\\' written by exports made on Windows */
        if (!fs) {
            rc = acv_error(ACV_ENOMEM, "out of memory");
            break;
        }
        for (char *c = fs; *c; c++)
            if (*c == '\\') *c = '/';
        acv__entry *e = resolve(a, path, fs);
        free(fs);
        json_t *list = json_object_get(by_image, key);
        size_t nann = json_array_size(list);
        if (e && !acv__is_image_name(e->path) && acv__is_other_image_name(e->path)) {
            acv__plan_skip(p, e->path, "not a JPEG, PNG or BMP image (convert it to import it; %zu annotations of it "
                                       "left out)", nann);
            e->used = true;
            json_object_del(by_image, key);
            continue;
        }
        if (e && !acv__is_image_name(e->path)) e = NULL;
        if (!e) {
            acv__plan_skip(p, fname, "named in %s (image id %s) but not found in the archive (%zu annotations left out)",
                           path, key, nann);
            json_object_del(by_image, key);
            continue;
        }
        json_t *raw = json_pack("{s:o, s:O, s:O}", "anns", list ? json_incref(list) : json_array(), "cats", cats,
                                "supers", supers);
        bool dup;
        if (!raw) rc = acv_error(ACV_ENOMEM, "out of memory");
        else if (!acv__plan_add(p, e, raw, &dup) && !dup) rc = ACV_ENOMEM;
        json_object_del(by_image, key);
    }
    const char *k;
    json_t *v;
    json_object_foreach(by_image, k, v) {
        for (size_t i = 0; !rc && i < json_array_size(v); i++)
            acv__plan_skip(p, path, "%s: image_id %s is not an image of the file (left out)",
                           json_string_value(json_object_get(json_array_get(v, i), "name")), k);
    }
    json_decref(cats);
    json_decref(supers);
    json_decref(by_image);
    json_decref(seen);
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
        /* "images" and "annotations" (or, for a split without annotations, "categories"). */
        json_t *anns = json_object_get(doc, "annotations");
        if (json_is_array(json_object_get(doc, "images")) &&
            (json_is_array(anns) || (!anns && json_is_array(json_object_get(doc, "categories"))))) {
            if (!*found) {
                p->format = "coco";
                p->convert = coco_convert;
            }
            *found = true;
            e->used = true;
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
