/* Imports: the YOLO layout (as Ultralytics and Roboflow write it). Images anywhere in the
 * archive; an image's label file is its path with the last "images/" folder replaced by
 * "labels/" and the extension by .txt (beside the image when there is no images/ folder), so
 * images/train/x.jpg -> labels/train/x.txt and Roboflow's train/images/x.jpg ->
 * train/labels/x.txt. A line is "class cx cy w h" (a box) or "class x1 y1 x2 y2 x3 y3 ..." (a
 * polygon: Ultralytics' segment labels), normalized to 0..1; a byte order mark, CRLF, blank
 * lines, trailing spaces and numbers like 5e-1 are fine. An image without a label file (or
 * with an empty one) has no objects.
 *
 * data.yaml (data.yml, dataset.yaml, else another .yaml with these keys; a byte order mark and
 * CRLF are fine) is read for its top-level keys by src/data/yolo_yaml.c, as the command line
 * reads it: names (a flow or block list, or a map from index to name, flow or block), nc (must
 * agree with names; alone it names the classes class_0, class_1, ... as Ultralytics does),
 * path, and train / val (valid, validation) / test: a folder, a .txt list of image paths, or a
 * list of those, relative to path (when it is in the archive), else to the yaml's folder, else
 * with leading "../" (or an absolute path's leading folders) dropped. The platform has no
 * splits: every image of the archive is imported, and the splits are checked: one that is not
 * in the archive (test excepted: Roboflow names it whether or not it exports one) and a list's
 * line naming an image the archive lacks are reported in "skipped". Without names in the yaml,
 * classes.txt or *.names (one a line) name the classes, else nc, else the class numbers
 * themselves. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "autocv/error.h"
#include "base/file.h"
#include "data/yolo_yaml.h"
#include "platform/import_internal.h"

#define LABEL_FILE_MAX (16u << 20)

/* ---- data.yaml ------------------------------------------------------------------------------ */

/* The keys of data.yaml (src/data/yolo_yaml.h) from text (modified), its errors named
 * "file line N: " as the platform's other import messages are. */
static int parse_yaml(char *text, const char *file, acv_yolo_yaml *y)
{
    int line;
    int rc = acv_yolo_yaml_parse(text, true, y, &line);
    if (rc == ACV_EFORMAT) return acv_error_prefix(rc, "%s line %d: ", file, line);
    if (!rc && y->hole >= 0) {
        rc = acv_error(ACV_EFORMAT, "%s: names has no class %d (indices must run from 0)", file, y->hole);
        acv_yolo_yaml_free(y);
    }
    return rc;
}

static bool yaml_has_keys(const acv_yolo_yaml *y)
{
    return y->have_names || y->nc >= 0 || y->path || y->split_line[0] || y->split_line[1] || y->split_line[2];
}

typedef struct cand {
    int rank, depth;
    size_t idx;
} cand;

static int cmp_cand(const void *x, const void *y)
{
    const cand *a = x, *b = y;
    if (a->rank != b->rank) return a->rank - b->rank;
    if (a->depth != b->depth) return a->depth - b->depth;
    return (a->idx > b->idx) - (a->idx < b->idx); /* entries are sorted by path */
}

static int depth(const char *path)
{
    int d = 0;
    for (; *path; path++) d += *path == '/';
    return d;
}

/* The entries rank() gives a rank >= 0, best (lowest rank, then shallowest, then by path)
 * first. malloc'd (NULL with *n 0 when none). */
static int candidates(const acv__archive *a, int (*rank)(const char *path), cand **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    cand *v = NULL;
    size_t k = 0;
    for (size_t i = 0; i < a->n; i++) {
        int r = rank(a->e[i].path);
        if (r < 0) continue;
        if (!v && !(v = malloc(a->n * sizeof *v))) return acv_error(ACV_ENOMEM, "out of memory");
        v[k++] = (cand){r, depth(a->e[i].path), i};
    }
    if (k) qsort(v, k, sizeof *v, cmp_cand);
    *out = v;
    *n = k;
    return 0;
}

static int yaml_rank(const char *path)
{
    static const char *const PREFERRED[] = {"data.yaml", "data.yml", "dataset.yaml", "dataset.yml", NULL};
    if (!acv__has_ext(path, "yaml") && !acv__has_ext(path, "yml")) return -1;
    for (int i = 0; PREFERRED[i]; i++)
        if (!strcasecmp(acv__path_base(path), PREFERRED[i])) return 0;
    return 1;
}

static int names_rank(const char *path)
{
    return !strcasecmp(acv__path_base(path), "classes.txt") || acv__has_ext(path, "names") ? 0 : -1;
}

/* The dataset's yaml: data.yaml (data.yml, dataset.yaml), the shallowest first, else another
 * .yaml with a key that matters. *from NULL when none. A data.yaml that cannot be read fails;
 * another yaml's error is kept in *err_rc / err (it fails the import once the archive turns out
 * to be YOLO and no other yaml answered). */
static int pick_yaml(acv__archive *a, acv_yolo_yaml *y, acv__entry **from, int *err_rc, char *err, size_t errn)
{
    *from = NULL;
    *err_rc = 0;
    cand *c;
    size_t n;
    int rc = candidates(a, yaml_rank, &c, &n);
    for (size_t i = 0; !rc && i < n && !*from; i++) {
        acv__entry *e = &a->e[c[i].idx];
        char *text;
        size_t len;
        int r = acv__entry_read(e, LABEL_FILE_MAX, &text, &len);
        if (!r) {
            r = parse_yaml(text, e->path, y);
            free(text);
        }
        if (r == ACV_ENOMEM || (r && c[i].rank == 0)) {
            rc = r;
        } else if (r) {
            if (!*err_rc) {
                *err_rc = r;
                snprintf(err, errn, "%s", acv_errmsg());
            }
        } else if (yaml_has_keys(y)) {
            *from = e;
        } else {
            acv_yolo_yaml_free(y);
        }
    }
    free(c);
    return rc;
}

/* classes.txt / obj.names (the shallowest): one name a line. *names NULL when there is none. */
static int read_names_file(acv__archive *a, json_t **names, acv__entry **from)
{
    *names = NULL;
    *from = NULL;
    cand *c;
    size_t n;
    int rc = candidates(a, names_rank, &c, &n);
    if (!rc && n) *from = &a->e[c[0].idx];
    free(c);
    if (rc || !*from) return rc;
    char *text;
    size_t len;
    if ((rc = acv__entry_read(*from, LABEL_FILE_MAX, &text, &len))) return rc;
    *names = json_array();
    int lineno = 0;
    for (char *l = acv_yolo_skip_bom(text), *next; !rc && l && *names; l = next) {
        next = strchr(l, '\n');
        if (next) *next++ = 0;
        lineno++;
        char *s = acv_yolo_scalar(l);
        if (*s && json_array_append_new(*names, json_string(s)))
            rc = acv_error(ACV_EINVAL, "%s line %d: a class name is not valid UTF-8", (*from)->path, lineno);
    }
    free(text);
    if (!*names) rc = acv_error(ACV_ENOMEM, "out of memory");
    if (rc) {
        json_decref(*names);
        *names = NULL;
    }
    return rc;
}

/* ---- label files ---------------------------------------------------------------------------- */

/* A class token: a non-negative integer, also written as 1.0. */
static bool parse_class(const char *t, long *cls)
{
    double c;
    if (!acv_yolo_class(t, &c) || c < 0) return false;
    *cls = (long)c;
    return true;
}

/* Does text read as YOLO label lines (its first line: an integer class and at least 4
 * numbers)? Tells a stray label file from a README or a list. */
static bool looks_like_labels(char *text)
{
    char *save = NULL;
    for (char *l = strtok_r(acv_yolo_skip_bom(text), "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        char *tsave = NULL;
        int n = 0;
        long cls;
        for (char *t = strtok_r(l, " \t\r", &tsave); t; t = strtok_r(NULL, " \t\r", &tsave), n++) {
            char *end;
            if (n == 0 ? !parse_class(t, &cls) : (strtod(t, &end), *end != 0)) return false;
        }
        if (n) return n >= 5;
    }
    return false;
}

/* raw: {"label": path or null, "tmp": extracted file, "names": [...]}. */
static int yolo_convert(acv__plan *p, acv__item *it, int w, int h)
{
    it->doc = acv__doc_new();
    if (!it->doc) return acv_error(ACV_ENOMEM, "out of memory");
    const char *lpath = json_string_value(json_object_get(it->raw, "label"));
    if (!lpath) return 0;
    json_t *names = json_object_get(it->raw, "names"), *shapes = json_object_get(it->doc, "shapes");
    uint8_t *text;
    size_t len;
    int rc = acv_file_read(json_string_value(json_object_get(it->raw, "tmp")), LABEL_FILE_MAX, &text, &len);
    if (rc) return rc == ACV_ERANGE ? acv_error(ACV_EINVAL, "%s: larger than %u MiB", lpath, LABEL_FILE_MAX >> 20) : rc;
    int line = 0;
    double *v = NULL;
    size_t vcap = 0;
    for (char *l = acv_yolo_skip_bom((char *)text), *next; !rc && l; l = next) {
        next = strchr(l, '\n');
        if (next) *next++ = 0;
        line++;
        size_t nv = 0;
        char *tsave = NULL;
        long cls = -1;
        for (char *t = strtok_r(l, " \t\r\f\v,", &tsave); !rc && t; t = strtok_r(NULL, " \t\r\f\v,", &tsave)) {
            char *end;
            errno = 0;
            if (nv == 0 && cls < 0) {
                if (!parse_class(t, &cls))
                    rc = acv_error(ACV_EINVAL, "%s line %d: class '%.20s' is not a non-negative integer", lpath, line, t);
                continue;
            }
            double x = strtod(t, &end);
            if (end == t || *end || !isfinite(x)) {
                rc = acv_error(ACV_EINVAL, "%s line %d: '%.20s' is not a number", lpath, line, t);
                break;
            }
            if (x < -0.01 || x > 1.01) {
                rc = acv_error(ACV_EINVAL, "%s line %d: %g is not a normalized coordinate (0..1)", lpath, line, x);
                break;
            }
            if (nv == vcap) {
                vcap = vcap ? vcap * 2 : 64;
                double *nvp = realloc(v, vcap * sizeof *v);
                if (!nvp) {
                    rc = acv_error(ACV_ENOMEM, "out of memory");
                    break;
                }
                v = nvp;
            }
            v[nv++] = x;
        }
        if (rc || cls < 0) continue; /* a blank line */
        if ((size_t)cls >= json_array_size(names)) {
            rc = acv_error(ACV_EINVAL, "%s line %d: class %ld, but only %zu class names are known", lpath, line, cls,
                           json_array_size(names));
            break;
        }
        const char *label = json_string_value(json_array_get(names, (size_t)cls)), *why = NULL;
        json_t *s = NULL;
        if (nv == 4) {
            s = acv__box(label, (v[0] - v[2] / 2) * w, (v[1] - v[3] / 2) * h, v[2] * w, v[3] * h, w, h, &why);
        } else if (nv >= 6 && nv % 2 == 0) {
            for (size_t k = 0; k < nv; k += 2) {
                v[k] *= w;
                v[k + 1] *= h;
            }
            s = acv__polygon(label, v, (int)(nv / 2), w, h, &why);
        } else {
            rc = acv_error(ACV_EINVAL, "%s line %d: %zu values after the class; expected 4 (cx cy w h) or an even "
                                       "number of at least 6 (a polygon)", lpath, line, nv);
            break;
        }
        if (s) json_array_append_new(shapes, s);
        else acv__plan_skip(p, lpath, "line %d: %s (left out)", line, why);
    }
    free(v);
    free(text);
    return rc;
}

/* ---- the splits data.yaml names ------------------------------------------------------------- */

/* Joins base and r for each of bases: the first that is an entry or a folder of the archive. */
static char *try_bases(const acv__archive *a, const char *const *bases, int nbases, const char *r)
{
    for (int i = 0; i < nbases; i++) {
        char *p = acv__path_join(bases[i], r);
        if (p && *p && (acv__archive_find(a, p) || acv__archive_has_dir(a, p))) return p;
        free(p);
    }
    return NULL;
}

/* The archive path a split value (or a list's line) stands for: an entry (a .txt list, an
 * image) or a folder, relative to one of bases; else with its leading "./" and "../" dropped
 * one by one (Roboflow's ../train/images), or an absolute path's leading folders (a yaml
 * written on another machine). NULL when none is there. malloc'd. */
static char *locate(const acv__archive *a, const char *const *bases, int nbases, const char *v)
{
    char *norm = strdup(v);
    if (!norm) return NULL;
    for (char *c = norm; *c; c++)
        if (*c == '\\') *c = '/';
    const char *r = norm;
    bool drive = isalpha((unsigned char)r[0]) && r[1] == ':';
    if (drive) r += 2;
    char *found = NULL;
    if (drive || *r == '/') {
        while (!found && r) {
            while (*r == '/') r++;
            if (!*r) break;
            found = try_bases(a, bases, nbases, r);
            r = strchr(r, '/');
        }
    } else {
        found = try_bases(a, bases, nbases, r);
        while (!found && (!strncmp(r, "./", 2) || !strncmp(r, "../", 3))) {
            r = strchr(r, '/') + 1;
            found = try_bases(a, bases, nbases, r);
        }
    }
    free(norm);
    return found;
}

/* Reads a .txt list of image paths: each must be an image of the archive ("./x" relative to the
 * list's folder first, as Ultralytics reads it, else to root). */
static int check_list(acv__archive *a, acv__plan *p, acv__entry *list, const char *root)
{
    char *text;
    size_t len;
    list->used = true;
    int rc = acv__entry_read(list, LABEL_FILE_MAX, &text, &len);
    if (rc == ACV_ERANGE) {
        acv__plan_skip(p, list->path, "larger than %u MiB: not read", LABEL_FILE_MAX >> 20);
        return 0;
    }
    if (rc) return rc;
    char *ldir = acv__path_dir(list->path);
    if (!ldir) {
        free(text);
        return acv_error(ACV_ENOMEM, "out of memory");
    }
    int lineno = 0;
    for (char *l = acv_yolo_skip_bom(text), *next; l; l = next) {
        next = strchr(l, '\n');
        if (next) *next++ = 0;
        lineno++;
        char *s = acv_yolo_scalar(l);
        if (!*s) continue;
        bool dot = s[0] == '.' && s[1] == '/';
        const char *bases[2] = {dot ? ldir : root, dot ? root : ldir};
        char *hit = locate(a, bases, 2, s);
        acv__entry *e = hit ? acv__archive_find(a, hit) : NULL;
        if (!e && (s[0] == '/' || s[0] == '\\' || (isalpha((unsigned char)s[0]) && s[1] == ':'))) {
            const char *b = s + strlen(s);
            while (b > s && b[-1] != '/' && b[-1] != '\\') b--;
            e = acv__archive_find_base(a, b); /* an absolute path of another machine: by its unique name */
        }
        free(hit);
        if (!e) acv__plan_skip(p, list->path, "line %d: image '%.300s' is not in the archive", lineno, s);
        else if (!acv__is_image_name(e->path) && !acv__is_other_image_name(e->path))
            acv__plan_skip(p, list->path, "line %d: '%.300s' is not an image", lineno, s);
    }
    free(ldir);
    free(text);
    return 0;
}

/* Checks train / val / test of the yaml at from (see the top of the file). */
static int check_splits(acv__archive *a, acv__plan *p, const acv_yolo_yaml *y, const acv__entry *from)
{
    char *ydir = acv__path_dir(from->path), *root = NULL;
    if (!ydir) return acv_error(ACV_ENOMEM, "out of memory");
    if (y->path && *y->path && y->path[0] != '/' && !(isalpha((unsigned char)y->path[0]) && y->path[1] == ':')) {
        root = acv__path_join(ydir, y->path);
        if (root && !acv__archive_has_dir(a, root)) {
            free(root);
            root = NULL;
        }
    }
    if (!root && !(root = strdup(ydir))) {
        free(ydir);
        return acv_error(ACV_ENOMEM, "out of memory");
    }
    const char *bases[2] = {root, ydir};
    int rc = 0;
    for (int i = 0; !rc && i < 3; i++)
        for (int j = 0; !rc && y->split_line[i] && j < y->nsplit[i]; j++) {
            const char *v = y->split[i][j];
            char *where = locate(a, bases, 2, v);
            acv__entry *e = where ? acv__archive_find(a, where) : NULL;
            if (!where && i != 2)
                acv__plan_skip(p, from->path, "line %d: %s: '%.300s' is not in the archive", y->split_line[i],
                               acv_yolo_splits[i], v);
            else if (e && acv__has_ext(e->path, "txt"))
                rc = check_list(a, p, e, root);
            free(where);
        }
    free(root);
    free(ydir);
    return rc;
}

/* ---- the layout ------------------------------------------------------------------------------- */

/* The class names (see the top of the file) into p->labels, in index order as *canon. */
static int class_names(acv__archive *a, acv__plan *p, const acv_yolo_yaml *y, const acv__entry *yfrom, json_t **canon)
{
    json_t *names = NULL;
    acv__entry *nfrom = NULL;
    const char *from = yfrom ? yfrom->path : NULL;
    int rc = 0;
    if (yfrom && y->k) {
        names = json_array();
        for (int i = 0; names && !rc && i < y->k; i++)
            if (json_array_append_new(names, json_string(y->names[i]))) rc = acv_error(ACV_ENOMEM, "out of memory");
    } else if ((rc = read_names_file(a, &names, &nfrom))) {
        return rc;
    } else if (nfrom) {
        nfrom->used = true;
        from = nfrom->path;
    } else if (yfrom && y->nc > 0) { /* nc without names: Ultralytics' class_0, class_1, ... */
        names = json_array();
        for (long c = 0; names && c < y->nc; c++) {
            char k[32];
            snprintf(k, sizeof k, "class_%ld", c);
            json_array_append_new(names, json_string(k));
        }
    } else {
        /* No names anywhere: the class numbers name the classes (up to the largest a label file of
           an image uses). */
        long max_cls = -1;
        names = json_array();
        for (size_t i = 0; names && i < a->n; i++) {
            if (!acv__is_image_name(a->e[i].path)) continue;
            char *lp = acv_yolo_label_path(a->e[i].path);
            acv__entry *le = lp ? acv__archive_find(a, lp) : NULL;
            free(lp);
            char *text;
            size_t len;
            if (!le || acv__entry_read(le, LABEL_FILE_MAX, &text, &len)) continue;
            for (char *l = acv_yolo_skip_bom(text), *next; l; l = next) {
                next = strchr(l, '\n');
                if (next) *next++ = 0;
                char *save = NULL, *t = strtok_r(l, " \t\r,", &save);
                long c;
                if (t && parse_class(t, &c) && c < ACV_YOLO_MAX_CLASSES && c > max_cls) max_cls = c;
            }
            free(text);
        }
        for (long c = 0; names && c <= max_cls; c++) {
            char k[24];
            snprintf(k, sizeof k, "%ld", c);
            json_array_append_new(names, json_string(k));
        }
    }
    *canon = json_array();
    json_t *index = json_object(); /* name -> its first class */
    if (!names || !*canon || !index) rc = acv_error(ACV_ENOMEM, "out of memory");
    for (size_t i = 0; !rc && i < json_array_size(names); i++) {
        const char *c;
        if ((rc = acv__plan_label(p, json_string_value(json_array_get(names, i)), &c))) {
            acv_error_prefix(rc, "%s: class %zu: ", from ? from : "class names", i);
            break;
        }
        json_t *first = json_object_get(index, c);
        if (first) {
            rc = acv_error(ACV_EINVAL, "%s: classes %lld and %zu are both named '%s'", from ? from : "class names",
                           (long long)json_integer_value(first), i, c);
            break;
        }
        json_object_set_new(index, c, json_integer((json_int_t)i));
        json_array_append_new(*canon, json_string(c));
    }
    json_decref(index);
    json_decref(names);
    if (rc) {
        json_decref(*canon);
        *canon = NULL;
    }
    return rc;
}

int acv__plan_yolo(acv__archive *a, acv__plan *p, bool *found)
{
    *found = false;
    acv_yolo_yaml y = ACV_YOLO_YAML_EMPTY;
    acv__entry *yfrom = NULL;
    int yerr = 0;
    char yerr_msg[600] = "";
    int rc = pick_yaml(a, &y, &yfrom, &yerr, yerr_msg, sizeof yerr_msg);
    if (rc) return rc;
    /* Label files that belong to an image. */
    size_t paired = 0;
    for (size_t i = 0; i < a->n; i++) {
        if (!acv__is_image_name(a->e[i].path)) continue;
        char *lp = acv_yolo_label_path(a->e[i].path);
        if (!lp) {
            acv_yolo_yaml_free(&y);
            return acv_error(ACV_ENOMEM, "out of memory");
        }
        paired += acv__archive_find(a, lp) != NULL;
        free(lp);
    }
    /* YOLO: label files beside the images, or a yaml that names classes (a yaml with only
       path or splits does not make an ImageFolder archive YOLO). */
    if (!paired && !(yfrom && (y.have_names || y.nc >= 0))) {
        acv_yolo_yaml_free(&y);
        return 0;
    }
    if (!yfrom && yerr) return acv_error(yerr, "%s", yerr_msg); /* the dataset's yaml is unreadable */
    *found = true;
    p->format = "yolo";
    p->convert = yolo_convert;
    if (yfrom) yfrom->used = true;
    json_t *canon = NULL;
    rc = class_names(a, p, &y, yfrom, &canon);
    if (!rc && yfrom) rc = check_splits(a, p, &y, yfrom);
    for (size_t i = 0; !rc && i < a->n; i++) {
        acv__entry *e = &a->e[i];
        if (!acv__is_image_name(e->path)) continue;
        char *lp = acv_yolo_label_path(e->path);
        acv__entry *le = lp ? acv__archive_find(a, lp) : NULL;
        free(lp);
        json_t *raw = json_pack("{s:s?, s:s?, s:O}", "label", le ? le->path : NULL, "tmp", le ? le->tmp : NULL,
                                "names", canon);
        if (le) le->used = true;
        bool dup;
        if (!raw) rc = acv_error(ACV_ENOMEM, "out of memory");
        else if (!acv__plan_add(p, e, raw, &dup) && !dup) rc = ACV_ENOMEM;
    }
    json_decref(canon);
    /* Label files without their image (in a labels/ folder, or reading as label lines; a README
       or a list is no label file). */
    for (size_t i = 0; !rc && i < a->n; i++) {
        acv__entry *e = &a->e[i];
        if (e->used || !acv__has_ext(e->path, "txt") || !strcasecmp(acv__path_base(e->path), "classes.txt")) continue;
        bool label = !strncmp(e->path, "labels/", 7) || strstr(e->path, "/labels/");
        char *text;
        size_t len;
        if (!label && !acv__entry_read(e, LABEL_FILE_MAX, &text, &len)) {
            label = looks_like_labels(text);
            free(text);
        }
        if (label) acv__plan_skip(p, e->path, "a label file without its image");
    }
    acv_yolo_yaml_free(&y);
    return rc;
}
