/* Imports: the Pascal VOC layout. Annotations/<name>.xml per image, the image in
 * JPEGImages/ beside the Annotations folder (or beside the XML, or found by its unique file
 * name). Read from each XML: filename, and per object: name, difficult, bndbox (xmin, ymin,
 * xmax, ymax: 1-based pixel indices, the box covering pixels xmin..xmax, so x = xmin - 1 and
 * w = xmax - xmin + 1; the inverse of the VOC export). Difficult objects become ordinary
 * boxes (the document has no such flag); the summary counts them. The XML is read by a small parser for the subset VOC files use
 * (elements, text, attributes, comments, CDATA, the five predefined entities and numeric
 * character references); a DOCTYPE is skipped, so no entity is ever expanded. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "autocv/error.h"
#include "platform/import_internal.h"

#define XML_MAX (16u << 20)
#define XML_DEPTH 64
#define XML_NODES 200000

/* ---- a small XML reader -------------------------------------------------------------------- */

typedef struct xnode {
    char *name;
    char *text;           /* character data directly inside, concatenated */
    size_t tlen;
    struct xnode *child, *last, *next;
} xnode;

typedef struct xparser {
    const char *begin, *s, *end;
    int nodes;
    char err[160];
} xparser;

static void xfree(xnode *n)
{
    while (n) {
        xnode *next = n->next;
        xfree(n->child);
        free(n->name);
        free(n->text);
        free(n);
        n = next;
    }
}

static int xfail(xparser *x, const char *what)
{
    if (!x->err[0]) snprintf(x->err, sizeof x->err, "%s (at byte %ld)", what, (long)(x->s - x->begin));
    return -1;
}

static bool xstarts(const xparser *x, const char *lit)
{
    size_t n = strlen(lit);
    return (size_t)(x->end - x->s) >= n && !memcmp(x->s, lit, n);
}

/* Skips past the next occurrence of lit. */
static int xskip_past(xparser *x, const char *lit)
{
    size_t n = strlen(lit);
    for (; (size_t)(x->end - x->s) >= n; x->s++)
        if (!memcmp(x->s, lit, n)) {
            x->s += n;
            return 0;
        }
    return xfail(x, "unterminated markup");
}

static void xspace(xparser *x)
{
    while (x->s < x->end && isspace((unsigned char)*x->s)) x->s++;
}

static bool name_char(char c) { return isalnum((unsigned char)c) || c == '_' || c == '-' || c == '.' || c == ':' || (unsigned char)c >= 0x80; }

static int xappend(xnode *n, const char *s, size_t len)
{
    char *t = realloc(n->text, n->tlen + len + 1);
    if (!t) return -1;
    memcpy(t + n->tlen, s, len);
    n->tlen += len;
    t[n->tlen] = 0;
    n->text = t;
    return 0;
}

static size_t utf8_put(uint32_t cp, char *o)
{
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xc0 | cp >> 6); o[1] = (char)(0x80 | (cp & 63)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | cp >> 12); o[1] = (char)(0x80 | ((cp >> 6) & 63)); o[2] = (char)(0x80 | (cp & 63));
        return 3;
    }
    o[0] = (char)(0xf0 | cp >> 18); o[1] = (char)(0x80 | ((cp >> 12) & 63));
    o[2] = (char)(0x80 | ((cp >> 6) & 63)); o[3] = (char)(0x80 | (cp & 63));
    return 4;
}

/* An entity reference at x->s ('&'): appended decoded to n. */
static int xentity(xparser *x, xnode *n)
{
    static const struct { const char *name; char c; } ENT[] = {
        {"lt;", '<'}, {"gt;", '>'}, {"amp;", '&'}, {"quot;", '"'}, {"apos;", '\''}};
    x->s++;
    for (size_t i = 0; i < sizeof ENT / sizeof ENT[0]; i++)
        if (xstarts(x, ENT[i].name)) {
            x->s += strlen(ENT[i].name);
            return xappend(n, &ENT[i].c, 1) ? xfail(x, "out of memory") : 0;
        }
    if (x->s < x->end && *x->s == '#') {
        x->s++;
        int base = 10;
        if (x->s < x->end && (*x->s == 'x' || *x->s == 'X')) {
            base = 16;
            x->s++;
        }
        uint32_t cp = 0;
        int digits = 0;
        while (x->s < x->end && isxdigit((unsigned char)*x->s) && (base == 16 || isdigit((unsigned char)*x->s))) {
            cp = cp * (uint32_t)base + (uint32_t)(isdigit((unsigned char)*x->s) ? *x->s - '0' : (tolower(*x->s) - 'a' + 10));
            if (cp > 0x10ffff) return xfail(x, "a character reference out of range");
            x->s++;
            digits++;
        }
        if (!digits || x->s >= x->end || *x->s != ';' || cp == 0) return xfail(x, "a malformed character reference");
        x->s++;
        char o[4];
        return xappend(n, o, utf8_put(cp, o)) ? xfail(x, "out of memory") : 0;
    }
    return xfail(x, "an unknown entity (only &lt; &gt; &amp; &quot; &apos; and &#N; are read)");
}

/* Comments, processing instructions and a DOCTYPE (skipped whole, internal subset too). */
static int xmisc(xparser *x, bool *did)
{
    *did = true;
    if (xstarts(x, "<!--")) return xskip_past(x, "-->");
    if (xstarts(x, "<?")) return xskip_past(x, "?>");
    if (xstarts(x, "<!DOCTYPE")) {
        int depth = 0;
        for (; x->s < x->end; x->s++) {
            if (*x->s == '[') depth++;
            else if (*x->s == ']') depth--;
            else if (*x->s == '>' && depth <= 0) {
                x->s++;
                return 0;
            }
        }
        return xfail(x, "an unterminated DOCTYPE");
    }
    *did = false;
    return 0;
}

static int xelement(xparser *x, int depth, xnode **out)
{
    *out = NULL;
    if (depth > XML_DEPTH) return xfail(x, "elements nested too deep");
    if (++x->nodes > XML_NODES) return xfail(x, "too many elements");
    if (x->s >= x->end || *x->s != '<') return xfail(x, "an element was expected");
    x->s++;
    const char *nm = x->s;
    while (x->s < x->end && name_char(*x->s)) x->s++;
    if (x->s == nm) return xfail(x, "an element without a name");
    xnode *n = calloc(1, sizeof *n);
    if (!n || !(n->name = strndup(nm, (size_t)(x->s - nm)))) {
        free(n);
        return xfail(x, "out of memory");
    }
    *out = n;
    /* Attributes: name = "value" | 'value' (values are not needed). */
    for (;;) {
        xspace(x);
        if (x->s >= x->end) return xfail(x, "an unterminated start tag");
        if (*x->s == '/' && x->s + 1 < x->end && x->s[1] == '>') {
            x->s += 2;
            return 0;
        }
        if (*x->s == '>') {
            x->s++;
            break;
        }
        const char *an = x->s;
        while (x->s < x->end && name_char(*x->s)) x->s++;
        if (x->s == an) return xfail(x, "a malformed attribute");
        xspace(x);
        if (x->s >= x->end || *x->s != '=') return xfail(x, "an attribute without a value");
        x->s++;
        xspace(x);
        if (x->s >= x->end || (*x->s != '"' && *x->s != '\'')) return xfail(x, "an unquoted attribute value");
        char q = *x->s++;
        while (x->s < x->end && *x->s != q) x->s++;
        if (x->s >= x->end) return xfail(x, "an unterminated attribute value");
        x->s++;
    }
    /* Content. */
    for (;;) {
        if (x->s >= x->end) return xfail(x, "an element is not closed");
        if (*x->s == '<') {
            if (xstarts(x, "</")) {
                x->s += 2;
                size_t k = strlen(n->name);
                if ((size_t)(x->end - x->s) < k || memcmp(x->s, n->name, k) || (x->s + k < x->end && name_char(x->s[k])))
                    return xfail(x, "a closing tag does not match its element");
                x->s += k;
                xspace(x);
                if (x->s >= x->end || *x->s != '>') return xfail(x, "a malformed closing tag");
                x->s++;
                return 0;
            }
            if (xstarts(x, "<![CDATA[")) {
                x->s += 9;
                const char *start = x->s;
                if (xskip_past(x, "]]>")) return -1;
                if (xappend(n, start, (size_t)(x->s - 3 - start))) return xfail(x, "out of memory");
                continue;
            }
            bool did;
            if (xmisc(x, &did)) return -1;
            if (did) continue;
            xnode *c;
            int rc = xelement(x, depth + 1, &c);
            if (c) {
                if (n->last) n->last->next = c;
                else n->child = c;
                n->last = c;
            }
            if (rc) return rc;
            continue;
        }
        if (*x->s == '&') {
            if (xentity(x, n)) return -1;
            continue;
        }
        const char *t = x->s;
        while (x->s < x->end && *x->s != '<' && *x->s != '&') x->s++;
        if (xappend(n, t, (size_t)(x->s - t))) return xfail(x, "out of memory");
    }
}

/* Parses a whole document; *root is the root element. */
static int xml_parse(const char *s, size_t len, xnode **root, char *err, size_t errn)
{
    xparser x = {.begin = s, .s = s, .end = s + len};
    *root = NULL;
    if (len >= 3 && !memcmp(s, "\xef\xbb\xbf", 3)) x.s += 3;
    int rc = 0;
    for (;;) {
        xspace(&x);
        bool did;
        if ((rc = xmisc(&x, &did)) || !did) break;
    }
    if (!rc) rc = xelement(&x, 0, root);
    for (bool did = true; !rc && did;) {
        xspace(&x);
        if (x.s >= x.end) break;
        rc = xmisc(&x, &did);
        if (!rc && !did) rc = xfail(&x, "content after the root element");
    }
    if (rc) {
        xfree(*root);
        *root = NULL;
        snprintf(err, errn, "%s", x.err[0] ? x.err : "malformed XML");
        return -1;
    }
    return 0;
}

static xnode *xchild(const xnode *n, const char *name)
{
    for (xnode *c = n ? n->child : NULL; c; c = c->next)
        if (!strcmp(c->name, name)) return c;
    return NULL;
}

/* The trimmed text of child name (pointing into the node, trimmed in place), or NULL. */
static const char *xtext(const xnode *n, const char *name)
{
    xnode *c = xchild(n, name);
    if (!c) return NULL;
    if (!c->text) return "";
    char *s = c->text;
    while (isspace((unsigned char)*s)) s++;
    size_t k = strlen(s);
    while (k > 0 && isspace((unsigned char)s[k - 1])) s[--k] = 0;
    return s;
}

static bool xnum(const xnode *n, const char *name, double *out)
{
    const char *t = xtext(n, name);
    if (!t || !*t) return false;
    char *end;
    errno = 0;
    *out = strtod(t, &end);
    return !*end && !errno && isfinite(*out);
}

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
    xnode *root;
    char err[200];
    if (xml_parse(text, len, &root, err, sizeof err)) {
        free(text);
        snprintf(why, whyn, "malformed XML: %s", err);
        return 0;
    }
    free(text);
    json_t *objs = json_array();
    const char *fname = NULL;
    if (!objs) rc = acv_error(ACV_ENOMEM, "out of memory");
    else if (strcmp(root->name, "annotation")) snprintf(why, whyn, "the root element is <%s>, not <annotation>", root->name);
    else if (!(fname = xtext(root, "filename")) || !*fname) snprintf(why, whyn, "no <filename>");
    int k = 0;
    for (xnode *o = root->child; !rc && !why[0] && o; o = o->next) {
        if (strcmp(o->name, "object")) continue;
        k++;
        const char *name = xtext(o, "name"), *canon = NULL;
        xnode *bb = xchild(o, "bndbox");
        double v[4];
        const char *diff = xtext(o, "difficult");
        if (!name || !*name) snprintf(why, whyn, "object %d has no <name>", k);
        else if (!bb || !xnum(bb, "xmin", &v[0]) || !xnum(bb, "ymin", &v[1]) || !xnum(bb, "xmax", &v[2]) ||
                 !xnum(bb, "ymax", &v[3]))
            snprintf(why, whyn, "object %d ('%.60s') has no numeric <bndbox> xmin, ymin, xmax, ymax", k, name);
        else if ((rc = acv__plan_label(p, name, &canon)))
            acv_error_prefix(rc, "%s: object %d: ", e->path, k);
        else if (json_array_append_new(objs, json_pack("{s:s, s:f, s:f, s:f, s:f, s:b}", "name", canon, "xmin", v[0],
                                                       "ymin", v[1], "xmax", v[2], "ymax", v[3], "difficult",
                                                       diff && atoi(diff) != 0)))
            rc = acv_error(ACV_ENOMEM, "out of memory");
    }
    if (!rc && !why[0]) {
        *out = json_pack("{s:s, s:O}", "filename", fname, "objects", objs);
        if (!*out) snprintf(why, whyn, "<filename> is not valid UTF-8");
    }
    json_decref(objs);
    xfree(root);
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
