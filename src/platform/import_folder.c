/* Imports: the plan helpers every layout reader uses, the shape builders (boxes and polygons
 * clamped to the image), and the simplest layouts: ImageFolder (class folders) and plain
 * images. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "autocv/error.h"
#include "platform/annotation_doc.h"
#include "platform/import_internal.h"

/* ---- the plan ------------------------------------------------------------------------------ */

acv__item *acv__plan_add(acv__plan *p, acv__entry *e, json_t *raw, bool *dup)
{
    if (dup) *dup = false;
    if (e->used) {
        acv__plan_skip(p, e->path, "named by more than one image record; used once");
        json_decref(raw);
        if (dup) *dup = true;
        return NULL;
    }
    if (p->n == p->cap) {
        size_t nc = p->cap ? p->cap * 2 : 64;
        acv__item *ni = realloc(p->items, nc * sizeof *ni);
        if (!ni) {
            json_decref(raw);
            acv_error(ACV_ENOMEM, "out of memory");
            return NULL;
        }
        p->items = ni;
        p->cap = nc;
    }
    acv__item *it = &p->items[p->n++];
    memset(it, 0, sizeof *it);
    it->img = e;
    it->raw = raw;
    e->used = true;
    return it;
}

void acv__plan_skip(acv__plan *p, const char *path, const char *fmt, ...)
{
    p->nskipped++;
    if (json_array_size(p->skipped) >= ACV_IMPORT_SKIPPED_MAX) return;
    char reason[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    json_array_append_new(p->skipped, json_pack("{s:s, s:s}", "path", path, "reason", reason));
}

int acv__plan_label(acv__plan *p, const char *name, const char **canon)
{
    if (canon) *canon = NULL;
    while (*name == ' ' || *name == '\t') name++;
    size_t n = strlen(name);
    while (n > 0 && (name[n - 1] == ' ' || name[n - 1] == '\t' || name[n - 1] == '\r')) n--;
    if (n == 0) return acv_error(ACV_EINVAL, "an empty class name");
    for (size_t i = 0; i < json_array_size(p->labels); i++) {
        const char *s = json_string_value(json_array_get(p->labels, i));
        if (strlen(s) == n && !strncmp(s, name, n)) {
            if (canon) *canon = s;
            return 0;
        }
    }
    json_t *s = json_stringn(name, n);
    if (!s) return acv_error(ACV_EINVAL, "class name '%.*s' is not valid UTF-8", (int)(n > 80 ? 80 : n), name);
    if (canon) *canon = json_string_value(s);
    return json_array_append_new(p->labels, s) ? acv_error(ACV_ENOMEM, "out of memory") : 0;
}

/* ---- shapes ---------------------------------------------------------------------------------- */

json_t *acv__num(double v)
{
    double r = round(v * 100.0) / 100.0;
    if (r == 0) r = 0; /* no "-0.0" */
    return r == floor(r) && fabs(r) < 1e15 ? json_integer((json_int_t)r) : json_real(r);
}

json_t *acv__doc_new(void) { return json_pack("{s:[], s:[]}", "tags", "shapes"); }

static double clampd(double v, double lo, double hi) { return v < lo ? lo : v > hi ? hi : v; }

json_t *acv__box(const char *label, double x, double y, double w, double h, int iw, int ih, const char **why)
{
    if (!isfinite(x) || !isfinite(y) || !isfinite(w) || !isfinite(h)) {
        *why = "a box coordinate is not a finite number";
        return NULL;
    }
    double x0 = clampd(x, 0, iw), y0 = clampd(y, 0, ih), x1 = clampd(x + w, 0, iw), y1 = clampd(y + h, 0, ih);
    if (x1 - x0 < 0.005 || y1 - y0 < 0.005) {
        *why = "an empty box, or one outside the image";
        return NULL;
    }
    json_t *s = json_pack("{s:s, s:s, s:o, s:o, s:o, s:o, s:s}", "type", "box", "label", label, "x", acv__num(x0),
                          "y", acv__num(y0), "w", acv__num(x1 - x0), "h", acv__num(y1 - y0), "source", "human");
    if (!s) *why = "out of memory";
    return s;
}

json_t *acv__polygon(const char *label, const double *xy, int n, int iw, int ih, const char **why)
{
    if (n < 3) {
        *why = "a polygon with fewer than 3 points";
        return NULL;
    }
    if (n > ACV_ANN_MAX_POINTS) {
        *why = "a polygon with more than 10,000 points";
        return NULL;
    }
    double area = 0;
    json_t *pts = json_array();
    for (int i = 0; i < n && pts; i++) {
        if (!isfinite(xy[2 * i]) || !isfinite(xy[2 * i + 1])) {
            json_decref(pts);
            *why = "a polygon coordinate is not a finite number";
            return NULL;
        }
        double x = clampd(xy[2 * i], 0, iw), y = clampd(xy[2 * i + 1], 0, ih);
        int j = (i + 1) % n;
        area += x * clampd(xy[2 * j + 1], 0, ih) - clampd(xy[2 * j], 0, iw) * y;
        json_array_append_new(pts, json_pack("[o, o]", acv__num(x), acv__num(y)));
    }
    if (pts && fabs(area) < 1e-6) {
        json_decref(pts);
        *why = "a polygon without area (inside the image)";
        return NULL;
    }
    json_t *s = pts ? json_pack("{s:s, s:s, s:o, s:s}", "type", "polygon", "label", label, "points", pts, "source",
                                "human")
                    : NULL;
    if (!s) *why = "out of memory";
    return s;
}

/* ---- ImageFolder and plain images ------------------------------------------------------------ */

/* raw: the class name (string) or null. */
static int folder_convert(acv__plan *p, acv__item *it, int w, int h)
{
    it->doc = acv__doc_new();
    if (!it->doc) return acv_error(ACV_ENOMEM, "out of memory");
    if (json_is_string(it->raw)) json_array_append(json_object_get(it->doc, "tags"), it->raw);
    return 0;
}

/* A folder name that groups images without naming a class. */
static bool split_folder(const char *name)
{
    static const char *const SPLITS[] = {"train", "training", "val", "valid", "validation", "test", "testing",
                                         "images", "imgs", NULL};
    for (int i = 0; SPLITS[i]; i++)
        if (!strcasecmp(name, SPLITS[i])) return true;
    return false;
}

int acv__plan_folder(acv__archive *a, acv__plan *p, bool *found)
{
    *found = false;
    size_t nimg = 0, nclass = 0;
    for (size_t i = 0; i < a->n; i++) {
        if (!acv__is_image_name(a->e[i].path)) continue;
        nimg++;
        char *dir = acv__path_dir(a->e[i].path);
        if (!dir) return acv_error(ACV_ENOMEM, "out of memory");
        const char *cls = acv__path_base(dir);
        if (*dir && !(cls == dir && split_folder(cls))) nclass++;
        free(dir);
    }
    if (!nimg) return 0;
    *found = true;
    p->format = nclass ? "imagefolder" : "images";
    p->convert = folder_convert;
    for (size_t i = 0; i < a->n; i++) {
        acv__entry *e = &a->e[i];
        if (!acv__is_image_name(e->path)) {
            acv__plan_skip(p, e->path, "not an image file (.jpg, .jpeg, .png, .bmp)");
            continue;
        }
        char *dir = acv__path_dir(e->path);
        if (!dir) return acv_error(ACV_ENOMEM, "out of memory");
        const char *cls = acv__path_base(dir);
        json_t *raw = json_null();
        int rc = 0;
        if (nclass && *dir && !(cls == dir && split_folder(cls))) {
            const char *canon;
            if ((rc = acv__plan_label(p, cls, &canon)) == 0 && !(raw = json_string(canon)))
                rc = acv_error(ACV_ENOMEM, "out of memory");
            if (rc) acv_error_prefix(rc, "%s: ", e->path);
        }
        free(dir);
        if (!rc && !acv__plan_add(p, e, raw, NULL) && !e->used) rc = ACV_ENOMEM;
        if (rc) return rc;
    }
    return 0;
}
