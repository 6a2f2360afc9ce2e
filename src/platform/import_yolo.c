/* Imports: the YOLO layout. Images under images/ (any depth, e.g. images/train/x.jpg) and
 * one text file per image under labels/ mirroring it (labels/train/x.txt), or beside the
 * image when there is no images/ folder. A line is "class cx cy w h" (a box) or "class x1 y1
 * x2 y2 ..." (a polygon, YOLO-seg), normalized to 0..1. Class names come from the "names"
 * of data.yaml (a list, or a map from index to name), else classes.txt or obj.names (one per
 * line), else the class numbers themselves. An image without a label file has no objects. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "autocv/error.h"
#include "base/file.h"
#include "platform/import_internal.h"

#define LABEL_FILE_MAX (16u << 20)

/* ---- data.yaml: just its "names" ---------------------------------------------------------- */

/* Cuts a YAML scalar in place: trims, removes a trailing comment, unquotes. */
static char *yaml_scalar(char *s)
{
    while (isspace((unsigned char)*s)) s++;
    if (*s == '\'' || *s == '"') {
        char q = *s++;
        char *w = s, *r = s;
        while (*r && !(*r == q && !(q == '\'' && r[1] == '\''))) {
            if (q == '\'' && *r == '\'' && r[1] == '\'') r++;
            else if (q == '"' && *r == '\\' && r[1]) r++;
            *w++ = *r++;
        }
        *w = 0;
        return s;
    }
    char *hash = strstr(s, " #");
    if (hash) *hash = 0;
    if (*s == '#') *s = 0;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1])) s[--n] = 0;
    return s;
}

/* Splits a flow collection "[a, 'b', c]" or "{0: a, 1: b}" (without brackets) at commas
 * outside quotes, calling fn for each item. */
static int flow_items(char *s, int (*fn)(void *ud, char *item), void *ud)
{
    char q = 0;
    char *start = s;
    for (char *p = s;; p++) {
        if (q) {
            if (*p == q) q = 0;
            if (!*p) break;
            continue;
        }
        if (*p == '\'' || *p == '"') q = *p;
        else if (*p == ',' || !*p) {
            char end = *p;
            *p = 0;
            char *it = yaml_scalar(start);
            if (*it) {
                int rc = fn(ud, it);
                if (rc) return rc;
            }
            if (!end) break;
            start = p + 1;
        }
    }
    return 0;
}

typedef struct names_ctx {
    json_t *names;     /* list form */
    json_t *map;       /* {"<index>": name} form */
} names_ctx;

static int add_item(void *ud, char *item)
{
    names_ctx *n = ud;
    /* "0: name" inside a list or a map is the map form. */
    char *colon = strchr(item, ':');
    if (colon && colon > item && isdigit((unsigned char)item[0])) {
        *colon = 0;
        char *key = yaml_scalar(item), *val = yaml_scalar(colon + 1);
        char *end;
        errno = 0;
        long k = strtol(key, &end, 10);
        if (!*end && !errno && k >= 0 && k < 1000000) {
            char kk[24];
            snprintf(kk, sizeof kk, "%ld", k);
            return json_object_set_new(n->map, kk, json_string(val)) ? acv_error(ACV_EINVAL, "a class name is not "
                                                                                             "valid UTF-8")
                                                                      : 0;
        }
        *colon = ':';
    }
    json_t *s = json_string(item);
    if (!s) return acv_error(ACV_EINVAL, "a class name is not valid UTF-8");
    return json_array_append_new(n->names, s);
}

/* The "names" of a YOLO data.yaml as an array (new reference), *out NULL when there is none. */
static int yaml_names(char *text, const char *path, json_t **out)
{
    *out = NULL;
    names_ctx n = {json_array(), json_object()};
    int rc = (!n.names || !n.map) ? acv_error(ACV_ENOMEM, "out of memory") : 0;
    bool found = false;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); !rc && line; line = strtok_r(NULL, "\n", &save)) {
        size_t len = strlen(line);
        if (len && line[len - 1] == '\r') line[--len] = 0;
        if (!found) {
            if (strncmp(line, "names:", 6)) continue;
            found = true;
            char *rest = yaml_scalar(line + 6);
            if (*rest == '[' || *rest == '{') {
                char close = *rest == '[' ? ']' : '}';
                char *end = strrchr(rest, close);
                if (!end) rc = acv_error(ACV_EFORMAT, "%s: 'names:' starts a list it does not close", path);
                else {
                    *end = 0;
                    rc = flow_items(rest + 1, add_item, &n);
                }
                break;
            }
            if (*rest) {
                rc = acv_error(ACV_EFORMAT, "%s: 'names:' must be a list or a map of class names", path);
                break;
            }
            continue;
        }
        /* Block form: indented "- name" or "N: name" lines; the next top-level key ends it. */
        char *t = line;
        while (*t == ' ' || *t == '\t') t++;
        if (!*t || *t == '#') continue;
        if (t == line) break;
        if (*t == '-') rc = add_item(&n, yaml_scalar(t + 1));
        else rc = add_item(&n, t);
    }
    if (!rc && json_object_size(n.map)) {
        if (json_array_size(n.names))
            rc = acv_error(ACV_EFORMAT, "%s: 'names' mixes a list and a map", path);
        size_t k = json_object_size(n.map);
        for (size_t i = 0; !rc && i < k; i++) {
            char kk[24];
            snprintf(kk, sizeof kk, "%zu", i);
            json_t *v = json_object_get(n.map, kk);
            if (!v) rc = acv_error(ACV_EFORMAT, "%s: 'names' has no class %zu (indices must run from 0)", path, i);
            else json_array_append(n.names, v);
        }
    }
    json_decref(n.map);
    if (rc || !found) {
        json_decref(n.names);
        return rc;
    }
    *out = n.names;
    return 0;
}

/* Class names: data.yaml (or another .yaml with names), else classes.txt / obj.names. */
static int read_names(acv__archive *a, json_t **names, const char **from)
{
    *names = NULL;
    *from = NULL;
    acv__entry *best = NULL;
    for (int pass = 0; pass < 2 && !*names; pass++)
        for (size_t i = 0; i < a->n && !*names; i++) {
            acv__entry *e = &a->e[i];
            bool yaml = acv__has_ext(e->path, "yaml") || acv__has_ext(e->path, "yml");
            bool txt = !strcasecmp(acv__path_base(e->path), "classes.txt") || acv__has_ext(e->path, "names");
            if ((pass == 0 && !yaml) || (pass == 1 && !txt)) continue;
            char *text;
            size_t len;
            int rc = acv__entry_read(e, LABEL_FILE_MAX, &text, &len);
            if (rc) return rc;
            if (yaml) {
                rc = yaml_names(text, e->path, names);
            } else {
                *names = json_array();
                char *save = NULL;
                for (char *l = strtok_r(text, "\r\n", &save); l && *names; l = strtok_r(NULL, "\r\n", &save)) {
                    char *s = yaml_scalar(l);
                    if (*s && json_array_append_new(*names, json_string(s)))
                        rc = acv_error(ACV_EINVAL, "%s: a class name is not valid UTF-8", e->path);
                }
            }
            free(text);
            if (rc) {
                json_decref(*names);
                *names = NULL;
                return rc;
            }
            if (*names) best = e;
        }
    if (best) *from = best->path;
    return 0;
}

/* ---- label files ---------------------------------------------------------------------------- */

/* The label file path for an image path: the last "images" folder becomes "labels", the
 * extension ".txt" (beside the image when there is no images folder). malloc'd. */
static char *label_path_of(const char *img)
{
    size_t n = strlen(img);
    char *out = malloc(n + 8);
    if (!out) return NULL;
    memcpy(out, img, n + 1);
    char *hit = NULL;
    for (char *p = out; (p = strstr(p, "images")); p++)
        if ((p == out || p[-1] == '/') && p[6] == '/') hit = p;
    if (hit) memcpy(hit, "labels", 6);
    char *slash = strrchr(out, '/'), *dot = strrchr(out, '.');
    if (dot && (!slash || dot > slash)) *dot = 0;
    strcat(out, ".txt");
    return out;
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
    char *save = NULL;
    double *v = NULL;
    size_t vcap = 0;
    for (char *l = strtok_r((char *)text, "\n", &save); !rc && l; l = strtok_r(NULL, "\n", &save)) {
        line++;
        size_t nv = 0;
        char *tsave = NULL;
        long cls = -1;
        for (char *t = strtok_r(l, " \t\r,", &tsave); !rc && t; t = strtok_r(NULL, " \t\r,", &tsave)) {
            char *end;
            errno = 0;
            if (nv == 0 && cls < 0) {
                cls = strtol(t, &end, 10);
                if (*end || errno || cls < 0)
                    rc = acv_error(ACV_EINVAL, "%s line %d: class '%.20s' is not a non-negative integer", lpath, line, t);
                continue;
            }
            double x = strtod(t, &end);
            if (*end || !isfinite(x)) {
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

int acv__plan_yolo(acv__archive *a, acv__plan *p, bool *found)
{
    *found = false;
    json_t *names = NULL;
    const char *from = NULL;
    int rc = read_names(a, &names, &from);
    if (rc) return rc;
    /* Label files that belong to an image. */
    size_t paired = 0;
    for (size_t i = 0; i < a->n; i++) {
        if (!acv__is_image_name(a->e[i].path)) continue;
        char *lp = label_path_of(a->e[i].path);
        if (!lp) {
            json_decref(names);
            return acv_error(ACV_ENOMEM, "out of memory");
        }
        paired += acv__archive_find(a, lp) != NULL;
        free(lp);
    }
    bool yaml = from && (acv__has_ext(from, "yaml") || acv__has_ext(from, "yml"));
    if (!paired && !yaml) {
        json_decref(names);
        return 0;
    }
    *found = true;
    p->format = "yolo";
    p->convert = yolo_convert;
    int64_t max_cls = -1;
    if (!names) {
        /* No names anywhere: the class numbers name the classes (up to the largest used). */
        names = json_array();
        for (size_t i = 0; i < a->n; i++) {
            if (!acv__has_ext(a->e[i].path, "txt")) continue;
            char *text;
            size_t len;
            if (acv__entry_read(&a->e[i], LABEL_FILE_MAX, &text, &len)) continue;
            char *save = NULL;
            for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
                char *end;
                long c = strtol(l, &end, 10);
                if (end != l && c >= 0 && c < 100000 && c > max_cls) max_cls = c;
            }
            free(text);
        }
        for (int64_t c = 0; c <= max_cls; c++) {
            char k[24];
            snprintf(k, sizeof k, "%lld", (long long)c);
            json_array_append_new(names, json_string(k));
        }
    }
    json_t *canon = json_array();
    for (size_t i = 0; !rc && i < json_array_size(names); i++) {
        const char *c;
        if ((rc = acv__plan_label(p, json_string_value(json_array_get(names, i)), &c)))
            acv_error_prefix(rc, "%s: class %zu: ", from ? from : "class names", i);
        else json_array_append_new(canon, json_string(c));
    }
    json_decref(names);
    for (size_t i = 0; !rc && i < a->n; i++) {
        acv__entry *e = &a->e[i];
        if (!acv__is_image_name(e->path)) continue;
        char *lp = label_path_of(e->path);
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
    for (size_t i = 0; !rc && i < a->n; i++) {
        acv__entry *e = &a->e[i];
        if (e->used || acv__is_image_name(e->path) || (from && !strcmp(e->path, from))) continue;
        if (acv__has_ext(e->path, "txt")) acv__plan_skip(p, e->path, "a label file without its image");
    }
    return rc;
}
