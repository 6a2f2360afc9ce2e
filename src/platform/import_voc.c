/* Imports: the Pascal VOC layout (as the VOC devkit, LabelImg and CVAT write it).
 * Annotations/<name>.xml per image, the image in JPEGImages/ beside the Annotations folder (or
 * beside the XML, or found by its unique file name); or LabelImg's own layout, each XML beside
 * the image of the same stem. Read from each XML: filename, and per object: name, difficult,
 * iscrowd, bndbox (xmin, ymin, xmax, ymax: 1-based pixel indices, the box covering pixels
 * xmin..xmax, so x = xmin - 1 and w = xmax - xmin + 1; the inverse of the VOC export, and the
 * mapping of src/data/det_voc.c); values may be fractional. <part>s inside an object are no
 * objects; <size> is not read (the image file's size is used). The image is <filename>, else
 * the XML's stem or <filename>'s stem with .jpg, .jpeg, .png or .bmp (any case), so a stale or
 * extension-less <filename> works. Difficult and crowd objects keep their flags (and are
 * counted in the summary). The XML is read by data/xml.h (expat; a DOCTYPE is refused, so no
 * entity is ever expanded). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "autocv/error.h"
#include "data/xml.h"
#include "platform/import_internal.h"

#define XML_MAX (16u << 20)

/* ---- the layout ----------------------------------------------------------------------------- */

/* raw: {"objects":[{"name","xmin","ymin","xmax","ymax","difficult","iscrowd"}]}. */
static int voc_convert(acv__plan *p, acv__item *it, int w, int h)
{
    it->doc = acv__doc_new();
    if (!it->doc) return acv_error(ACV_ENOMEM, "out of memory");
    json_t *objs = json_object_get(it->raw, "objects"), *shapes = json_object_get(it->doc, "shapes");
    for (size_t i = 0; i < json_array_size(objs); i++) {
        json_t *o = json_array_get(objs, i);
        double x0 = json_real_value(json_object_get(o, "xmin")), y0 = json_real_value(json_object_get(o, "ymin"));
        double x1 = json_real_value(json_object_get(o, "xmax")), y1 = json_real_value(json_object_get(o, "ymax"));
        const char *why = NULL;
        json_t *s = acv__box(json_string_value(json_object_get(o, "name")), x0 - 1, y0 - 1, x1 - x0 + 1, y1 - y0 + 1,
                             w, h, &why);
        if (!s) {
            acv__plan_skip(p, it->img->path, "object %zu: %s (left out)", i + 1, why);
            continue;
        }
        if (json_is_true(json_object_get(o, "difficult"))) {
            p->difficult++;
            json_object_set_new(s, "difficult", json_true());
        }
        if (json_is_true(json_object_get(o, "iscrowd"))) {
            p->crowd++;
            json_object_set_new(s, "iscrowd", json_true());
        }
        json_array_append_new(shapes, s);
    }
    return 0;
}

/* Reads one VOC XML into {"filename", "objects":[...]} (new reference), or NULL with the
 * reason in why (the file is skipped). Labels are added to the plan. */
static int read_xml(acv__plan *p, const acv__entry *e, json_t **out, char *why, size_t whyn)
{
    *out = NULL;
    char *text;
    size_t len;
    int rc = acv__entry_read(e, XML_MAX, &text, &len);
    if (rc == ACV_ERANGE) {
        snprintf(why, whyn, "larger than %u MiB", XML_MAX >> 20);
        return 0;
    }
    if (rc) return rc;
    acv_xml *root;
    rc = acv_xml_parse(text, len, &root);
    free(text);
    if (rc == ACV_EFORMAT) {
        snprintf(why, whyn, "malformed XML: %s", acv_errmsg());
        return 0;
    }
    if (rc) return rc;
    json_t *objs = json_array();
    const char *fname = NULL;
    if (!objs) rc = acv_error(ACV_ENOMEM, "out of memory");
    else if (strcmp(root->name, "annotation")) snprintf(why, whyn, "the root element is <%s>, not <annotation>", root->name);
    else if (!(fname = acv_xml_text(root, "filename")) || !*fname) snprintf(why, whyn, "no <filename>");
    int k = 0;
    for (acv_xml *o = root->child; !rc && !why[0] && o; o = o->next) {
        if (strcmp(o->name, "object")) continue;
        k++;
        const char *name = acv_xml_text(o, "name"), *canon = NULL;
        acv_xml *bb = acv_xml_child(o, "bndbox");
        double v[4];
        if (!name || !*name) snprintf(why, whyn, "object %d (line %d) has no <name>", k, o->line);
        else if (!bb || !acv_xml_num(bb, "xmin", &v[0]) || !acv_xml_num(bb, "ymin", &v[1]) ||
                 !acv_xml_num(bb, "xmax", &v[2]) || !acv_xml_num(bb, "ymax", &v[3]))
            snprintf(why, whyn, "object %d ('%.60s', line %d) has no numeric <bndbox> xmin, ymin, xmax, ymax", k, name,
                     o->line);
        else if ((rc = acv__plan_label(p, name, &canon)))
            acv_error_prefix(rc, "%s: object %d (line %d): ", e->path, k, o->line);
        else if (json_array_append_new(objs, json_pack("{s:s, s:f, s:f, s:f, s:f, s:b, s:b}", "name", canon, "xmin",
                                                       v[0], "ymin", v[1], "xmax", v[2], "ymax", v[3], "difficult",
                                                       acv_xml_flag(o, "difficult"), "iscrowd",
                                                       acv_xml_flag(o, "iscrowd"))))
            rc = acv_error(ACV_ENOMEM, "out of memory");
    }
    if (!rc && !why[0]) {
        *out = json_pack("{s:s, s:O}", "filename", fname, "objects", objs);
        if (!*out) snprintf(why, whyn, "<filename> is not valid UTF-8");
    }
    json_decref(objs);
    acv_xml_free(root);
    return rc;
}

/* The stem of a file name: without its extension when that is an image's. */
static void stem_of(const char *name, char *out, size_t n)
{
    snprintf(out, n, "%s", acv__path_base(name));
    char *dot = strrchr(out, '.');
    if (dot && dot != out && (acv__is_image_name(out) || acv__is_other_image_name(out) || acv__has_ext(out, "xml")))
        *dot = 0;
}

/* The file an XML names: in JPEGImages/ beside Annotations/, beside the XML or in images/ there,
 * <filename> itself, else the XML's stem, else <filename>'s stem with an image extension (any
 * case); then <filename> beside the XML, then a unique file of that name anywhere. May be an
 * entry that is no image (the caller says so). */
static acv__entry *resolve(acv__archive *a, const char *xml_path, const char *fname_in)
{
    char *fname = strdup(fname_in), *dir = acv__path_dir(xml_path);
    if (!fname || !dir) {
        free(fname);
        free(dir);
        return NULL;
    }
    for (char *c = fname; *c; c++)
        if (*c == '\\') *c = '/'; /* written on Windows */
    const char *last = acv__path_base(dir);
    char *root = !strcasecmp(last, "Annotations") ? acv__path_dir(dir) : strdup(dir);
    acv__entry *e = NULL;
    char xstem[512], fstem[512];
    stem_of(xml_path, xstem, sizeof xstem);
    stem_of(fname, fstem, sizeof fstem);
    if (root) {
        const char *bases[4] = {"JPEGImages", "", "images", NULL};
        for (int i = 0; !e && bases[i]; i++) {
            char d[1200];
            snprintf(d, sizeof d, "%s%s%s", root, *root && *bases[i] ? "/" : "", bases[i]);
            char *p = acv__path_join(d, fname);
            e = p ? acv__archive_find(a, p) : NULL;
            free(p);
            if (!e) e = acv__archive_find_stem(a, d, xstem);
            if (!e) e = acv__archive_find_stem(a, d, fstem);
        }
        if (!e) {
            char *p = acv__path_join(dir, fname);
            e = p ? acv__archive_find(a, p) : NULL;
            free(p);
        }
    }
    if (!e) e = acv__archive_find_base(a, acv__path_base(fname));
    free(root);
    free(dir);
    free(fname);
    return e;
}

static bool in_annotations(const char *path)
{
    char *dir = acv__path_dir(path);
    bool yes = dir && !strcasecmp(acv__path_base(dir), "Annotations");
    free(dir);
    return yes;
}

/* An XML of the layout: under Annotations/, or beside an image of its stem (LabelImg). */
static bool voc_xml(const acv__archive *a, const char *path)
{
    if (!acv__has_ext(path, "xml")) return false;
    if (in_annotations(path)) return true;
    char *dir = acv__path_dir(path);
    char stem[512];
    stem_of(path, stem, sizeof stem);
    bool yes = dir && acv__archive_find_stem(a, dir, stem) != NULL;
    free(dir);
    return yes;
}

/* A class or object mask of a VOC segmentation export (SegmentationClass/, SegmentationObject/). */
static bool seg_mask(const char *path)
{
    char *dir = acv__path_dir(path);
    bool yes = dir && !strncasecmp(acv__path_base(dir), "Segmentation", 12);
    free(dir);
    return yes;
}

int acv__plan_voc(acv__archive *a, acv__plan *p, bool *found)
{
    *found = false;
    for (size_t i = 0; i < a->n && !*found; i++)
        *found = voc_xml(a, a->e[i].path);
    if (!*found) return 0;
    p->format = "voc";
    p->convert = voc_convert;
    int rc = 0;
    for (size_t i = 0; !rc && i < a->n; i++) {
        acv__entry *e = &a->e[i];
        if (!voc_xml(a, e->path)) continue;
        e->used = true;
        json_t *ann = NULL;
        char why[300] = "";
        if ((rc = read_xml(p, e, &ann, why, sizeof why))) break;
        if (!ann) {
            acv__plan_skip(p, e->path, "%s", why);
            continue;
        }
        acv__entry *img = resolve(a, e->path, json_string_value(json_object_get(ann, "filename")));
        if (img && !acv__is_image_name(img->path) && acv__is_other_image_name(img->path)) {
            acv__plan_skip(p, e->path, "its image '%.200s' is not a JPEG, PNG or BMP image (convert it to import it)",
                           img->path);
            img->used = true;
            json_decref(ann);
            continue;
        }
        if (img && !acv__is_image_name(img->path)) img = NULL;
        if (!img) {
            acv__plan_skip(p, e->path, "its image '%.200s' is not in the archive",
                           json_string_value(json_object_get(ann, "filename")));
            json_decref(ann);
            continue;
        }
        json_t *raw = json_pack("{s:O}", "objects", json_object_get(ann, "objects"));
        json_decref(ann);
        bool dup;
        if (!raw) rc = acv_error(ACV_ENOMEM, "out of memory");
        else if (!acv__plan_add(p, img, raw, &dup) && !dup) rc = ACV_ENOMEM;
    }
    for (size_t i = 0; !rc && i < a->n; i++)
        if (!a->e[i].used && acv__is_image_name(a->e[i].path))
            acv__plan_skip(p, a->e[i].path, seg_mask(a->e[i].path)
                                                ? "a VOC segmentation mask (not imported: the boxes of the XML files are)"
                                                : "no annotation file names this image");
    return rc;
}
