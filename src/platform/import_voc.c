/* Imports: the Pascal VOC layout. Annotations/<name>.xml per image, the image in
 * JPEGImages/ beside the Annotations folder (or beside the XML, or found by its unique file
 * name). Read from each XML: filename, and per object: name, difficult, bndbox (xmin, ymin,
 * xmax, ymax: 1-based pixel indices, the box covering pixels xmin..xmax, so x = xmin - 1 and
 * w = xmax - xmin + 1; the inverse of the VOC export). Difficult objects become ordinary
 * boxes (the document has no such flag); the summary counts them. The XML is read by
 * data/xml.h (expat; a DOCTYPE is refused, so no entity is ever expanded). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "autocv/error.h"
#include "data/xml.h"
#include "platform/import_internal.h"

#define XML_MAX (16u << 20)

/* ---- the layout ----------------------------------------------------------------------------- */

/* raw: {"objects":[{"name","xmin","ymin","xmax","ymax","difficult"}]}. */
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
        if (json_is_true(json_object_get(o, "difficult"))) p->difficult++;
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
        if (!name || !*name) snprintf(why, whyn, "object %d has no <name>", k);
        else if (!bb || !acv_xml_num(bb, "xmin", &v[0]) || !acv_xml_num(bb, "ymin", &v[1]) ||
                 !acv_xml_num(bb, "xmax", &v[2]) || !acv_xml_num(bb, "ymax", &v[3]))
            snprintf(why, whyn, "object %d ('%.60s') has no numeric <bndbox> xmin, ymin, xmax, ymax", k, name);
        else if ((rc = acv__plan_label(p, name, &canon)))
            acv_error_prefix(rc, "%s: object %d: ", e->path, k);
        else if (json_array_append_new(objs, json_pack("{s:s, s:f, s:f, s:f, s:f, s:b}", "name", canon, "xmin", v[0],
                                                       "ymin", v[1], "xmax", v[2], "ymax", v[3], "difficult",
                                                       acv_xml_flag(o, "difficult"))))
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

/* The image an XML names: JPEGImages/ beside Annotations/, beside the XML, or by name. */
static acv__entry *resolve(acv__archive *a, const char *xml_path, const char *fname)
{
    char *dir = acv__path_dir(xml_path);
    if (!dir) return NULL;
    const char *last = acv__path_base(dir);
    char *root = !strcasecmp(last, "Annotations") ? acv__path_dir(dir) : strdup(dir);
    acv__entry *e = NULL;
    if (root) {
        const char *bases[4] = {"JPEGImages", "", "images", NULL};
        char stem[512];
        snprintf(stem, sizeof stem, "%s", acv__path_base(xml_path));
        char *dot = strrchr(stem, '.');
        if (dot) *dot = 0;
        for (int i = 0; !e && bases[i]; i++) {
            char d[1200];
            snprintf(d, sizeof d, "%s%s%s", root, *root && *bases[i] ? "/" : "", bases[i]);
            char *p = acv__path_join(d, fname);
            e = p ? acv__archive_find(a, p) : NULL;
            free(p);
            /* The file name in the XML is sometimes stale: try the XML's own name. */
            static const char *const EXT[] = {"jpg", "jpeg", "png", "bmp", "JPG", "JPEG", "PNG", NULL};
            for (int k = 0; !e && EXT[k]; k++) {
                char rel[600];
                snprintf(rel, sizeof rel, "%s.%s", stem, EXT[k]);
                p = acv__path_join(d, rel);
                e = p ? acv__archive_find(a, p) : NULL;
                free(p);
            }
        }
        if (!e) {
            char *p = acv__path_join(dir, fname);
            e = p ? acv__archive_find(a, p) : NULL;
            free(p);
        }
    }
    free(root);
    free(dir);
    if (!e) e = acv__archive_find_base(a, acv__path_base(fname));
    return e && acv__is_image_name(e->path) ? e : NULL;
}

static bool in_annotations(const char *path)
{
    char *dir = acv__path_dir(path);
    bool yes = dir && !strcasecmp(acv__path_base(dir), "Annotations");
    free(dir);
    return yes;
}

int acv__plan_voc(acv__archive *a, acv__plan *p, bool *found)
{
    *found = false;
    for (size_t i = 0; i < a->n && !*found; i++)
        *found = acv__has_ext(a->e[i].path, "xml") && in_annotations(a->e[i].path);
    if (!*found) return 0;
    p->format = "voc";
    p->convert = voc_convert;
    int rc = 0;
    for (size_t i = 0; !rc && i < a->n; i++) {
        acv__entry *e = &a->e[i];
        if (!acv__has_ext(e->path, "xml") || !in_annotations(e->path)) continue;
        e->used = true;
        json_t *ann = NULL;
        char why[300] = "";
        if ((rc = read_xml(p, e, &ann, why, sizeof why))) break;
        if (!ann) {
            acv__plan_skip(p, e->path, "%s", why);
            continue;
        }
        acv__entry *img = resolve(a, e->path, json_string_value(json_object_get(ann, "filename")));
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
            acv__plan_skip(p, a->e[i].path, "no annotation file names this image");
    return rc;
}
