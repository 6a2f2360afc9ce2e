/* Detection datasets: YOLO (images/<split>/, labels/<split>/<stem>.txt, data.yaml).
 *
 * data.yaml (a UTF-8 byte order mark and CRLF line ends are fine) is read for its top-level
 * keys names (a flow or block list, or a map from index to name, flow or block), nc (must
 * match names; alone it names the classes class_0, class_1, ... as Ultralytics does), path
 * (the root, relative to the file; the file's folder when it does not exist), and train/val
 * (or valid, validation)/test: a folder of images, a .txt list of image paths, or a list of
 * either (flow or block), relative to the root, else to the yaml's folder, else with leading
 * "../" dropped (Roboflow's ../train/images). A split given but not on disk is an error when
 * it is read (test is passed over when every split is read: Roboflow names one it may not
 * have). Without split keys the splits are the folders under images/ (images/ itself when it
 * holds the images directly), or Roboflow's <split>/images/. Names may also come from
 * classes.txt or obj.names, one a line. An image's label file is its path with the last
 * "/images/" replaced by "/labels/" and the extension by .txt (beside the image when there is
 * no images/ folder); a missing label file is an image without objects (a background image).
 * Image extensions are matched in any case; images the decoder cannot read (.webp, .tif ...)
 * are bad labels, never silently left out. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "autocv/error.h"
#include "base/file.h"
#include "data/det_internal.h"

#define TEXT_MAX (64u << 20)
#define MAX_CLASSES 100000

static bool is_file(const char *p)
{
    struct stat st;
    return !stat(p, &st) && S_ISREG(st.st_mode);
}

static char *yaml_path(const char *dir)
{
    static const char *const NAMES[] = {"data.yaml", "data.yml", "dataset.yaml", NULL};
    for (int i = 0; NAMES[i]; i++) {
        char *p = acv_path_join(dir, NAMES[i]);
        if (p && is_file(p)) return p;
        free(p);
    }
    return NULL;
}

static char *names_file(const char *dir)
{
    static const char *const NAMES[] = {"classes.txt", "obj.names", NULL};
    for (int i = 0; NAMES[i]; i++) {
        char *p = acv_path_join(dir, NAMES[i]);
        if (p && is_file(p)) return p;
        free(p);
    }
    return NULL;
}

bool acv__det_is_yolo(const char *path)
{
    if (is_file(path)) {
        const char *e = acv_path_ext(path);
        return !strcmp(e, "yaml") || !strcmp(e, "yml");
    }
    char *y = yaml_path(path), *nf = y ? NULL : names_file(path);
    bool yes = y || nf;
    free(y);
    free(nf);
    if (!yes) {
        char *im = acv_path_join(path, "images"), *lb = acv_path_join(path, "labels");
        yes = im && lb && acv_is_dir(im) && acv_is_dir(lb);
        free(im);
        free(lb);
    }
    return yes;
}

/* ---- data.yaml ------------------------------------------------------------------------------ */

typedef struct yaml_info {
    char **names;          /* k names, in index order */
    int k;
    char *path;            /* path: (NULL when absent) */
    char **split_val[3];   /* train, val, test: the folders or .txt lists given (a list or one) */
    int nsplit[3];
    int split_line[3];     /* the key's line (0: not given) */
    long nc;               /* nc: (-1 when absent) */
    int nc_line;
} yaml_info;

static const char *const SPLIT_KEYS[3] = {"train", "val", "test"};

static void yaml_info_free(yaml_info *y)
{
    for (int i = 0; i < y->k; i++) free(y->names[i]);
    free(y->names);
    free(y->path);
    for (int i = 0; i < 3; i++) {
        for (int j = 0; j < y->nsplit[i]; j++) free(y->split_val[i][j]);
        free(y->split_val[i]);
    }
    memset(y, 0, sizeof *y);
}

/* Skips a UTF-8 byte order mark (Windows editors write one). */
static char *skip_bom(char *s) { return !strncmp(s, "\xEF\xBB\xBF", 3) ? s + 3 : s; }

/* Cuts a YAML scalar in place: trims, unquotes ('' and \" \\ escapes), drops a " #" comment. */
static char *scalar(char *s)
{
    while (isspace((unsigned char)*s)) s++;
    if (*s == '\'' || *s == '"') {
        char q = *s++;
        char *w = s, *r = s;
        while (*r && !(*r == q && !(q == '\'' && r[1] == '\''))) {
            if (q == '\'' && *r == '\'') r++;
            else if (q == '"' && *r == '\\' && r[1]) {
                r++;
                if (*r == 'n') *r = '\n';
                else if (*r == 't') *r = '\t';
            }
            *w++ = *r++;
        }
        *w = 0;
        return s;
    }
    if (*s == '#') *s = 0;
    char *hash = strstr(s, " #");
    if (hash) *hash = 0;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1])) s[--n] = 0;
    return s;
}

/* Is the raw (not yet cut) value YAML's null: empty, "~", "null"? */
static bool is_null(const char *raw)
{
    char tmp[16];
    while (isspace((unsigned char)*raw)) raw++;
    if (*raw == '\'' || *raw == '"') return false; /* a quoted string */
    snprintf(tmp, sizeof tmp, "%s", raw);
    char *v = scalar(tmp);
    return !*v || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") || !strcmp(v, "NULL");
}

/* Sets name idx (a map entry) or appends (idx < 0). */
static int set_name(yaml_info *y, long idx, const char *name, int *cap, const char *file, int line)
{
    if (idx >= MAX_CLASSES) return acv_error(ACV_EFORMAT, "%s:%d: class index %ld is too large", file, line, idx);
    long at = idx < 0 ? y->k : idx;
    if (at >= *cap) {
        int nc = *cap ? *cap : 16;
        while (nc <= at) nc *= 2;
        char **v = realloc(y->names, (size_t)nc * sizeof *v);
        if (!v) return acv_error(ACV_ENOMEM, "out of memory");
        memset(v + *cap, 0, (size_t)(nc - *cap) * sizeof *v);
        y->names = v;
        *cap = nc;
    }
    if (y->names[at]) return acv_error(ACV_EFORMAT, "%s:%d: class %ld is named twice", file, line, at);
    if (!(y->names[at] = strdup(name))) return acv_error(ACV_ENOMEM, "out of memory");
    if (at + 1 > y->k) y->k = (int)at + 1;
    return 0;
}

/* What a list item belongs to: the names (-1) or split key 0..2 (train, val, test). */
#define TO_NAMES (-1)

/* One item: a name ("name" in a list, "N: name" in a map) or a split's folder / .txt list. */
static int yaml_item(yaml_info *y, int to, char *item, bool map, int *cap, const char *file, int line)
{
    if (to != TO_NAMES) {
        char *v = scalar(item);
        if (!*v) return 0;
        char **nv = realloc(y->split_val[to], (size_t)(y->nsplit[to] + 1) * sizeof *nv);
        if (!nv) return acv_error(ACV_ENOMEM, "out of memory");
        y->split_val[to] = nv;
        if (!(nv[y->nsplit[to]] = strdup(v))) return acv_error(ACV_ENOMEM, "out of memory");
        y->nsplit[to]++;
        return 0;
    }
    long idx = -1;
    if (map) {
        char *colon = strchr(item, ':');
        char *end;
        if (!colon) return acv_error(ACV_EFORMAT, "%s:%d: a names entry is not 'index: name'", file, line);
        *colon = 0;
        errno = 0;
        idx = strtol(scalar(item), &end, 10);
        if (errno || *end || idx < 0)
            return acv_error(ACV_EFORMAT, "%s:%d: names key '%s' is not a class index", file, line, item);
        item = colon + 1;
    }
    char *name = scalar(item);
    if (!*name) return acv_error(ACV_EFORMAT, "%s:%d: an empty class name", file, line);
    return set_name(y, idx, name, cap, file, line);
}

/* Splits a flow collection body at commas outside quotes. */
static int flow(yaml_info *y, int to, char *s, bool map, int *cap, const char *file, int line)
{
    char q = 0, *start = s;
    for (char *p = s;; p++) {
        if (q && *p) {
            if (q == '"' && *p == '\\' && p[1]) p++;
            else if (*p == q) q = 0;
            continue;
        }
        if (*p == '\'' || *p == '"') q = *p;
        else if (*p == ',' || !*p) {
            char end = *p;
            *p = 0;
            char *t = start;
            while (isspace((unsigned char)*t)) t++;
            if (*t) {
                int rc = yaml_item(y, to, t, map, cap, file, line);
                if (rc) return rc;
            }
            if (!end) break;
            start = p + 1;
        }
    }
    return 0;
}

/* The top-level keys of data.yaml that matter (see the top of the file); nested content of
 * any other key (Roboflow's roboflow: block, download: scripts) is skipped. */
static int parse_yaml(const char *file, yaml_info *y)
{
    memset(y, 0, sizeof *y);
    y->nc = -1;
    uint8_t *buf;
    size_t len;
    int rc = acv_file_read(file, TEXT_MAX, &buf, &len);
    if (rc) return rc;
    char *text = skip_bom((char *)buf);
    int cap = 0, lineno = 0;
    int block = 0;                /* 2 + the item target of a block collection being read, 0: none */
    bool have_names = false;
    char *flow_buf = NULL;        /* a flow collection spanning lines */
    size_t flow_len = 0;
    int flow_line = 0, flow_to = TO_NAMES;
    for (char *line = text, *next; !rc && line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        lineno++;
        size_t n = strlen(line);
        if (n && line[n - 1] == '\r') line[--n] = 0;
        if (flow_buf) {
            char *nb = realloc(flow_buf, flow_len + n + 2);
            if (!nb) {
                rc = acv_error(ACV_ENOMEM, "out of memory");
                break;
            }
            flow_buf = nb;
            flow_buf[flow_len++] = ' ';
            memcpy(flow_buf + flow_len, line, n + 1);
            flow_len += n;
            char close = flow_buf[0] == '[' ? ']' : '}';
            char *end = strrchr(flow_buf, close);
            if (end) {
                *end = 0;
                rc = flow(y, flow_to, flow_buf + 1, close == '}', &cap, file, flow_line);
                free(flow_buf);
                flow_buf = NULL;
            }
            continue;
        }
        char *t = line;
        while (*t == ' ' || *t == '\t') t++;
        if (!*t || *t == '#') continue;
        bool dash = *t == '-' && (t[1] == ' ' || t[1] == '\t' || !t[1]);
        if (block && (t != line || dash)) { /* an item of the block collection: "- x", or "N: x" under names */
            int to = block - 2;
            if (dash) rc = yaml_item(y, to, t + 1, false, &cap, file, lineno);
            else if (to == TO_NAMES) rc = yaml_item(y, to, t, true, &cap, file, lineno);
            else
                rc = acv_error(ACV_EFORMAT, "%s:%d: %s: expected a list item '- folder'", file, lineno,
                               SPLIT_KEYS[to]);
            continue;
        }
        block = 0;
        if (t != line) continue; /* nested content of another key */
        char *colon = strchr(t, ':');
        if (!colon) continue;
        *colon = 0;
        char *key = scalar(t), *val = colon + 1;
        while (isspace((unsigned char)*val)) val++;
        int to = -2;
        if (!strcmp(key, "names")) {
            to = TO_NAMES;
            have_names = true;
        }
        for (int i = 0; i < 3; i++)
            if (!strcmp(key, SPLIT_KEYS[i]) || (i == 1 && (!strcmp(key, "valid") || !strcmp(key, "validation"))))
                to = i;
        if (!strcmp(key, "path")) {
            bool null = is_null(val);
            char *v = scalar(val);
            if (!null && !y->path && !(y->path = strdup(v))) rc = acv_error(ACV_ENOMEM, "out of memory");
            continue;
        }
        if (!strcmp(key, "nc")) {
            char *v = scalar(val), *end;
            errno = 0;
            long nc = strtol(v, &end, 10);
            if (errno || end == v || *end || nc < 0 || nc > MAX_CLASSES)
                rc = acv_error(ACV_EFORMAT, "%s:%d: nc '%s' is not a number of classes", file, lineno, v);
            y->nc = nc;
            y->nc_line = lineno;
            continue;
        }
        if (to == -2) continue;
        if (to != TO_NAMES) {
            if (y->split_line[to]) continue; /* val and valid both given: the first */
            bool empty = !*val || *val == '#';
            if (!empty && is_null(val)) continue; /* "test: null": no such split */
            y->split_line[to] = lineno;
            if (empty) { /* a block list follows (or nothing: not given) */
                block = 2 + to;
                continue;
            }
        }
        if (*val == '[' || *val == '{') {
            char close = *val == '[' ? ']' : '}';
            if (to != TO_NAMES && close == '}') {
                rc = acv_error(ACV_EFORMAT, "%s:%d: %s is a map; expected a folder, a .txt list or a list of them",
                               file, lineno, key);
                continue;
            }
            char *end = strrchr(val, close);
            if (end) {
                *end = 0;
                rc = flow(y, to, val + 1, close == '}', &cap, file, lineno);
            } else if (!(flow_buf = strdup(val)))
                rc = acv_error(ACV_ENOMEM, "out of memory");
            else {
                flow_len = strlen(flow_buf);
                flow_line = lineno;
                flow_to = to;
            }
        } else if (to != TO_NAMES)
            rc = yaml_item(y, to, val, false, &cap, file, lineno);
        else if (!*scalar(val))
            block = 2 + to;
        else
            rc = acv_error(ACV_EFORMAT, "%s:%d: names is neither a list nor a map", file, lineno);
    }
    if (!rc && flow_buf) rc = acv_error(ACV_EFORMAT, "%s:%d: the [...] or {...} is not closed", file, flow_line);
    free(flow_buf);
    for (int i = 0; !rc && i < y->k; i++)
        if (!y->names[i]) rc = acv_error(ACV_EFORMAT, "%s: names has no entry for class %d", file, i);
    for (int i = 0; !rc && i < 3; i++)
        if (y->split_line[i] && !y->nsplit[i]) y->split_line[i] = 0; /* an empty list: not given */
    if (!rc && !have_names) y->k = 0;
    if (!rc && have_names && y->nc >= 0 && y->nc != y->k)
        rc = acv_error(ACV_EFORMAT, "%s:%d: nc is %ld but names lists %d classes: make them agree", file, y->nc_line,
                       y->nc, y->k);
    free(buf);
    if (rc) yaml_info_free(y);
    return rc;
}

/* classes.txt / obj.names: one name a line (blank lines ignored). */
static int parse_names_file(const char *file, yaml_info *y)
{
    uint8_t *buf;
    size_t len;
    int rc = acv_file_read(file, TEXT_MAX, &buf, &len);
    if (rc) return rc;
    int cap = 0, lineno = 0;
    for (char *line = skip_bom((char *)buf), *next; !rc && line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        lineno++;
        size_t n = strlen(line);
        while (n && isspace((unsigned char)line[n - 1])) line[--n] = 0;
        while (isspace((unsigned char)*line)) line++;
        if (*line) rc = set_name(y, -1, line, &cap, file, lineno);
    }
    free(buf);
    return rc;
}

/* ---- reading -------------------------------------------------------------------------------- */

typedef struct source {
    char name[32];   /* split */
    char *where;     /* folder or .txt list; NULL when what data.yaml gives does not exist */
    const char *given; /* what data.yaml gives (for the message when where is NULL) */
    int line;        /* its line in data.yaml (0: found by scanning) */
} source;

static char *label_path(const char *img)
{
    const char *cut = NULL;
    for (const char *p = strstr(img, "images/"); p; p = strstr(p + 1, "images/"))
        if (p == img || p[-1] == '/') cut = p;
    const char *dot = strrchr(img, '.');
    const char *slash = strrchr(img, '/');
    size_t stem = dot && (!slash || dot > slash) ? (size_t)(dot - img) : strlen(img);
    if (!cut) return acv__det_fmt("%.*s.txt", (int)stem, img);
    return acv__det_fmt("%.*slabels/%.*s.txt", (int)(cut - img), img, (int)(stem - (size_t)(cut + 7 - img)), cut + 7);
}

static bool parse_num(const char *s, double *v)
{
    char *end;
    errno = 0;
    *v = strtod(s, &end);
    return end != s && !*end && !errno && isfinite(*v);
}

/* The label file of image im (missing: no objects). A line is "class cx cy w h" (normalized),
 * or a polygon "class x1 y1 x2 y2 x3 y3 ..." of any length (Ultralytics' segment labels),
 * whose bounding box is taken, as Ultralytics does for detection. */
static int read_labels(acv__det_build *b, acv_det_image *im, const char *file)
{
    if (!is_file(file)) return 0;
    uint8_t *buf;
    size_t len;
    int rc = acv_file_read(file, TEXT_MAX, &buf, &len);
    if (rc) return rc;
    int lineno = 0;
    for (char *line = skip_bom((char *)buf), *next; !rc && line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        lineno++;
        static const char WS[] = " \t\r\f\v";
        char *save = NULL, *t = strtok_r(line, WS, &save);
        if (!t) continue;
        char where[1200];
        snprintf(where, sizeof where, "%s:%d", file, lineno);
        double c, v[4] = {0, 0, 0, 0}, px = 0;
        double x1 = INFINITY, y1 = INFINITY, x2 = -INFINITY, y2 = -INFINITY;
        bool ok = parse_num(t, &c) && c == floor(c) && fabs(c) < 1e9;
        long nt = 1;
        for (t = strtok_r(NULL, WS, &save); t; t = strtok_r(NULL, WS, &save), nt++) {
            double x;
            if (!parse_num(t, &x)) {
                ok = false;
                continue;
            }
            if (nt <= 4) v[nt - 1] = x;
            if (nt % 2) px = x;
            else {
                x1 = fmin(x1, px);
                x2 = fmax(x2, px);
                y1 = fmin(y1, x);
                y2 = fmax(y2, x);
            }
        }
        if (!ok) {
            rc = acv__det_bad(b, "%s: malformed line (expected 'class cx cy w h' with an integer class and numbers)",
                              where);
            continue;
        }
        if (nt != 5 && (nt < 7 || nt % 2 == 0)) {
            rc = acv__det_bad(b, "%s: malformed line (%ld fields; expected 'class cx cy w h' or a polygon "
                                 "'class x1 y1 x2 y2 x3 y3 ...')",
                              where, nt);
            continue;
        }
        if (c < 0 || c >= b->ds->k) {
            rc = acv__det_bad(b, "%s: class %.0f is not one of the %d classes (0..%d)", where, c, b->ds->k, b->ds->k - 1);
            continue;
        }
        if (nt == 5) {
            x1 = (v[0] - v[2] / 2) * im->w;
            x2 = (v[0] + v[2] / 2) * im->w;
            y1 = (v[1] - v[3] / 2) * im->h;
            y2 = (v[1] + v[3] / 2) * im->h;
        } else {
            x1 *= im->w;
            x2 *= im->w;
            y1 *= im->h;
            y2 *= im->h;
        }
        acv_box box = {.x1 = (float)x1, .y1 = (float)y1, .x2 = (float)x2, .y2 = (float)y2, .cls = (int)c};
        rc = acv__det_push_box(b, im, box, where);
    }
    free(buf);
    return rc;
}

static int add_image(acv__det_build *b, const char *path, const char *file_name, const char *split, const char *where)
{
    int w, h;
    if (acv__det_image_size(path, &w, &h)) {
        char msg[600];
        snprintf(msg, sizeof msg, "%s", acv_errmsg());
        return acv__det_bad(b, "%s%s%s%s", where ? where : "", where ? ": " : "", msg,
                            acv__det_is_other_image_name(path)
                                ? " (convert it to JPEG or PNG, or use --skip-bad to leave it out)"
                                : "");
    }
    acv_det_image *im = acv__det_add_image(b, path, file_name, b->ds->n + 1, w, h, split);
    if (!im) return ACV_ENOMEM;
    char *lab = label_path(path);
    if (!lab) return acv_error(ACV_ENOMEM, "out of memory");
    int rc = read_labels(b, im, lab);
    free(lab);
    return rc;
}

/* An image path of a .txt list: absolute, else relative to the root or to the list's folder
 * ("./x" first relative to the list's folder, as Ultralytics reads it). NULL when none exists
 * (*tried: the first candidate); *rel: the path as written, "./" dropped. */
static char *list_entry(const char *root, const char *list, char *line, char **rel)
{
    bool dot = line[0] == '.' && line[1] == '/';
    while (line[0] == '.' && line[1] == '/') line += 2;
    *rel = line;
    if (line[0] == '/') return is_file(line) ? strdup(line) : NULL;
    const char *slash = strrchr(list, '/');
    char *ldir = slash ? strndup(list, (size_t)(slash - list)) : strdup(".");
    if (!ldir) return NULL;
    const char *bases[2] = {dot ? ldir : root, dot ? root : ldir};
    char *found = NULL;
    for (int i = 0; i < 2 && !found; i++) {
        char *p = acv__det_fmt("%s/%s", bases[i], line);
        if (p && is_file(p)) found = p;
        else free(p);
    }
    free(ldir);
    return found;
}

static int read_source(acv__det_build *b, const char *root, const source *s)
{
    if (acv_is_dir(s->where)) {
        char **rel;
        int n;
        int rc = acv__det_list_images(s->where, &rel, &n);
        for (int i = 0; !rc && i < n; i++) {
            char *p = acv__det_fmt("%s/%s", s->where, rel[i]);
            rc = p ? add_image(b, p, rel[i], s->name, NULL) : acv_error(ACV_ENOMEM, "out of memory");
            free(p);
        }
        acv__det_free_list(rel, n);
        return rc;
    }
    /* A .txt list of image paths. */
    uint8_t *buf;
    size_t len;
    int rc = acv_file_read(s->where, TEXT_MAX, &buf, &len);
    if (rc) return rc;
    int lineno = 0;
    for (char *line = skip_bom((char *)buf), *next; !rc && line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        lineno++;
        size_t n = strlen(line);
        while (n && isspace((unsigned char)line[n - 1])) line[--n] = 0;
        while (isspace((unsigned char)*line)) line++;
        if (!*line || *line == '#') continue;
        char *rel;
        char *p = list_entry(root, s->where, line, &rel);
        char where[1200];
        snprintf(where, sizeof where, "%s:%d", s->where, lineno);
        const char *base = strrchr(rel, '/');
        if (!p)
            rc = acv__det_bad(b, "%s: image file '%s' not found (looked under %s and beside the list)", where, rel,
                              root);
        else
            rc = add_image(b, p, base ? base + 1 : rel, s->name, where);
        free(p);
    }
    free(buf);
    return rc;
}

/* A split value of data.yaml as a path: under the root, else beside the yaml, else with its
 * leading "../" dropped (Roboflow writes ../train/images). NULL when none exists. */
static char *split_where(const char *root, const char *ydir, const char *v)
{
    if (v[0] == '/') return acv_path_exists(v) ? strdup(v) : NULL;
    const char *bases[2] = {root, ydir};
    for (int pass = 0; pass < 2; pass++) {
        const char *r = v;
        while (!strncmp(r, "./", 2)) r += 2;
        if (pass)
            while (!strncmp(r, "../", 3)) r += 3;
        for (int i = 0; i < 2; i++) {
            char *p = acv__det_fmt("%s/%s", bases[i], r);
            if (p && acv_path_exists(p)) return p;
            free(p);
        }
    }
    return NULL;
}

static int add_source(source **v, int *n, const char *name, char *where, bool missing_ok)
{
    if (!where && !missing_ok) return acv_error(ACV_ENOMEM, "out of memory");
    source *nv = realloc(*v, (size_t)(*n + 1) * sizeof *nv);
    if (!nv) {
        free(where);
        return acv_error(ACV_ENOMEM, "out of memory");
    }
    *v = nv;
    memset(&nv[*n], 0, sizeof nv[*n]);
    snprintf(nv[*n].name, sizeof nv[*n].name, "%s", name);
    nv[*n].where = where;
    (*n)++;
    return 0;
}

/* Splits without yaml keys: images/<split>/, images/ itself, or <split>/images/. */
static int scan_sources(const char *root, source **v, int *n)
{
    char *img = acv_path_join(root, "images");
    if (!img) return acv_error(ACV_ENOMEM, "out of memory");
    int rc = 0;
    if (acv_is_dir(img)) {
        DIR *d = opendir(img);
        bool direct = false;
        struct dirent *e;
        char **subs = NULL;
        int ns = 0;
        while (d && !rc && (e = readdir(d))) {
            if (e->d_name[0] == '.') continue;
            char *p = acv__det_fmt("%s/%s", img, e->d_name);
            if (!p) rc = acv_error(ACV_ENOMEM, "out of memory");
            else if (acv_is_dir(p)) {
                char **ns2 = realloc(subs, (size_t)(ns + 1) * sizeof *ns2);
                if (!ns2) rc = acv_error(ACV_ENOMEM, "out of memory");
                else {
                    subs = ns2;
                    subs[ns++] = strdup(e->d_name);
                }
            } else if (acv__det_is_image_name(e->d_name) || acv__det_is_other_image_name(e->d_name))
                direct = true;
            free(p);
        }
        if (d) closedir(d);
        for (int i = 0; i < ns && !rc; i++)
            if (!subs[i]) rc = acv_error(ACV_ENOMEM, "out of memory");
        if (!rc && (direct || !ns)) rc = add_source(v, n, "", strdup(img), false);
        else if (!rc) {
            /* train, val, test first, then the others by name */
            for (int i = 0; i < ns; i++)
                for (int j = i + 1; j < ns; j++) {
                    int ri = 3, rj = 3;
                    for (int k = 0; k < 3; k++) {
                        if (acv__det_split_match(subs[i], SPLIT_KEYS[k]) && ri == 3) ri = k;
                        if (acv__det_split_match(subs[j], SPLIT_KEYS[k]) && rj == 3) rj = k;
                    }
                    if (rj < ri || (rj == ri && strcmp(subs[j], subs[i]) < 0)) {
                        char *t = subs[i];
                        subs[i] = subs[j];
                        subs[j] = t;
                    }
                }
            for (int i = 0; i < ns && !rc; i++)
                rc = add_source(v, n, subs[i], acv__det_fmt("%s/%s", img, subs[i]), false);
        }
        for (int i = 0; i < ns; i++) free(subs[i]);
        free(subs);
    } else {
        static const char *const RF[] = {"train", "valid", "val", "test", NULL};
        for (int i = 0; RF[i] && !rc; i++) {
            char *p = acv__det_fmt("%s/%s/images", root, RF[i]);
            if (p && acv_is_dir(p)) rc = add_source(v, n, RF[i], p, false);
            else free(p);
        }
    }
    free(img);
    return rc;
}

int acv__det_open_yolo(const char *path, const char *split, acv__det_build *b)
{
    char *ydir = NULL, *yfile = NULL;
    if (is_file(path)) {
        yfile = strdup(path);
        char *slash = yfile ? strrchr(path, '/') : NULL;
        ydir = slash ? strndup(path, (size_t)(slash - path)) : strdup(".");
    } else {
        ydir = strdup(path);
        yfile = yaml_path(path);
    }
    yaml_info y = {.nc = -1};
    int rc = ydir ? 0 : acv_error(ACV_ENOMEM, "out of memory");
    if (!rc && yfile) rc = parse_yaml(yfile, &y);
    if (!rc && !y.k) {
        char *nf = names_file(ydir);
        if (nf) rc = parse_names_file(nf, &y);
        else if (y.nc > 0) { /* nc without names: Ultralytics' class_0, class_1, ... */
            int cap = 0;
            for (long c = 0; !rc && c < y.nc; c++) {
                char name[32];
                snprintf(name, sizeof name, "class_%ld", c);
                rc = set_name(&y, -1, name, &cap, yfile, y.nc_line);
            }
        } else
            rc = acv_error(ACV_EFORMAT, "%s: no class names (a names: list in data.yaml, or classes.txt or obj.names)",
                           yfile ? yfile : path);
        free(nf);
    }
    for (int i = 0; !rc && i < y.k; i++)
        for (int j = i + 1; !rc && j < y.k; j++)
            if (!strcmp(y.names[i], y.names[j]))
                rc = acv_error(ACV_EFORMAT, "%s: classes %d and %d are both named '%s'", yfile ? yfile : path, i, j,
                               y.names[i]);
    if (!rc) rc = acv__det_set_classes(b->ds, y.k, y.names, NULL);
    /* The root: path: relative to the yaml's folder, when it exists. */
    char *root = NULL;
    if (!rc && y.path && *y.path) {
        root = y.path[0] == '/' ? strdup(y.path) : acv__det_fmt("%s/%s", ydir, y.path);
        if (root && !acv_is_dir(root)) {
            free(root);
            root = NULL;
        }
    }
    if (!rc && !root && !(root = strdup(ydir))) rc = acv_error(ACV_ENOMEM, "out of memory");
    source *src = NULL;
    int ns = 0;
    bool keys = false;
    for (int i = 0; !rc && i < 3; i++) {
        if (!y.split_line[i]) continue;
        keys = true;
        for (int j = 0; !rc && j < y.nsplit[i]; j++) {
            rc = add_source(&src, &ns, SPLIT_KEYS[i], split_where(root, ydir, y.split_val[i][j]), true);
            if (!rc) {
                src[ns - 1].given = y.split_val[i][j];
                src[ns - 1].line = y.split_line[i];
            }
        }
    }
    if (!rc && !keys) rc = scan_sources(root, &src, &ns);
    if (!rc && !ns) rc = acv_error(ACV_ENOTFOUND, "%s: no images (looked for images/<split>/ and data.yaml's train/val/test)", path);
    /* Which sources: a split asked for; an unsplit set answers to train. */
    bool exact = false;
    for (int i = 0; i < ns; i++) exact |= split && !strcmp(src[i].name, split);
    int used = 0;
    for (int i = 0; !rc && i < ns; i++) {
        bool want = acv__det_split_all(split) || (exact ? !strcmp(src[i].name, split)
                                                         : acv__det_split_match(src[i].name, split));
        if (!want) continue;
        if (!src[i].where) {
            /* A split data.yaml names that is not there: an error when asked for, and when every
               split is read, except test (Roboflow writes test: ../test/images without one). */
            if (acv__det_split_all(split) && !strcmp(src[i].name, "test")) continue;
            rc = acv_error(ACV_ENOTFOUND,
                           "%s:%d: %s: '%s' not found (looked under %s and beside the yaml): fix the path, or remove "
                           "the key when the dataset has no %s split",
                           yfile, src[i].line, src[i].name, src[i].given, root, src[i].name);
            break;
        }
        used++;
        rc = read_source(b, root, &src[i]);
    }
    if (!rc && !used && acv__det_split_all(split))
        rc = acv_error(ACV_ENOTFOUND, "%s: none of the splits data.yaml names exists", path);
    if (!rc && !used) {
        char *names[ACV__DET_MAX_SPLITS];
        int k = 0;
        for (int i = 0; i < ns && k < ACV__DET_MAX_SPLITS; i++)
            if (src[i].where) names[k++] = src[i].name[0] ? src[i].name : "(none)";
        rc = acv__det_no_split(path, split, names, k);
    }
    for (int i = 0; i < ns; i++) free(src[i].where);
    free(src);
    free(root);
    free(ydir);
    free(yfile);
    yaml_info_free(&y);
    return rc;
}

/* ---- writing -------------------------------------------------------------------------------- */


/* A YAML double-quoted scalar. */
static int sb_quoted(acv__det_sbuf *b, const char *s)
{
    int rc = acv__det_sb_add(b, "\"");
    for (; !rc && *s; s++) {
        if (*s == '"' || *s == '\\') rc = acv__det_sb_add(b, "\\%c", *s);
        else if (*s == '\n') rc = acv__det_sb_add(b, "\\n");
        else if (*s == '\t') rc = acv__det_sb_add(b, "\\t");
        else rc = acv__det_sb_add(b, "%c", *s);
    }
    return rc ? rc : acv__det_sb_add(b, "\"");
}

/* data.yaml listing every split folder now under dir/images. */
static int write_yaml(const acv_det_dataset *ds, const char *dir)
{
    char *img = acv_path_join(dir, "images");
    if (!img) return acv_error(ACV_ENOMEM, "out of memory");
    char **subs = NULL;
    int ns = 0, rc = 0;
    DIR *d = opendir(img);
    struct dirent *e;
    while (d && !rc && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char *p = acv__det_fmt("%s/%s", img, e->d_name);
        if (p && acv_is_dir(p)) {
            char **v = realloc(subs, (size_t)(ns + 1) * sizeof *v);
            if (!v || !(v[ns] = strdup(e->d_name))) rc = acv_error(ACV_ENOMEM, "out of memory");
            if (v) subs = v;
            if (!rc) ns++;
        }
        free(p);
    }
    if (d) closedir(d);
    free(img);
    acv__det_sbuf sb = {0};
    if (!rc) rc = acv__det_sb_add(&sb, "# written by autocv: a YOLO detection dataset (labels: class cx cy w h, normalized)\n");
    /* The standard keys point at the folder of that split; other splits keep their own name. */
    bool taken[3] = {false, false, false};
    for (int pass = 0; pass < 2 && !rc; pass++)
        for (int i = 0; i < ns && !rc; i++) {
            int key = -1;
            for (int k = 0; k < 3 && key < 0; k++)
                if (acv__det_split_match(subs[i], SPLIT_KEYS[k])) key = k;
            bool exact = key >= 0 && !strcmp(subs[i], SPLIT_KEYS[key]);
            if (pass == 0 && exact) {
                taken[key] = true;
                rc = acv__det_sb_add(&sb, "%s: images/%s\n", SPLIT_KEYS[key], subs[i]);
            } else if (pass == 1 && !exact) {
                if (key >= 0 && !taken[key]) {
                    taken[key] = true;
                    rc = acv__det_sb_add(&sb, "%s: images/%s\n", SPLIT_KEYS[key], subs[i]);
                } else
                    rc = acv__det_sb_add(&sb, "%s: images/%s\n", subs[i], subs[i]);
            }
        }
    if (!rc) rc = acv__det_sb_add(&sb, "nc: %d\nnames:\n", ds->k);
    for (int c = 0; c < ds->k && !rc; c++) {
        rc = acv__det_sb_add(&sb, "  %d: ", c);
        if (!rc) rc = sb_quoted(&sb, ds->names[c]);
        if (!rc) rc = acv__det_sb_add(&sb, "\n");
    }
    if (!rc) {
        char *p = acv_path_join(dir, "data.yaml");
        rc = p ? acv__det_write_text(p, sb.s, sb.n) : acv_error(ACV_ENOMEM, "out of memory");
        free(p);
    }
    for (int i = 0; i < ns; i++) free(subs[i]);
    free(subs);
    free(sb.s);
    return rc;
}

int acv__det_write_yolo(const acv_det_dataset *ds, const char *dir, const char *split)
{
    for (int c = 0; c < ds->k; c++)
        if (strchr(ds->names[c], '\n') || strchr(ds->names[c], '\r'))
            return acv_error(ACV_EINVAL, "class %d's name has a line break", c);
    int n = ds->n;
    char **rel = calloc((size_t)(n ? n : 1), sizeof *rel), **keys = calloc((size_t)(n ? n : 1), sizeof *keys);
    int rc = (!rel || !keys) ? acv_error(ACV_ENOMEM, "out of memory") : 0;
    for (int i = 0; !rc && i < n; i++) {
        char name[1024];
        acv__det_safe_name(ds->images[i].file_name, false, name, sizeof name);
        rel[i] = strdup(name);
        char *dot = strrchr(name, '.'), *slash = strrchr(name, '/');
        if (dot && (!slash || dot > slash)) *dot = 0;
        keys[i] = acv__det_fmt("labels/%s/%s.txt", acv__det_out_split(&ds->images[i], split), name);
        if (!rel[i] || !keys[i]) rc = acv_error(ACV_ENOMEM, "out of memory");
    }
    if (!rc) rc = acv__det_check_unique(ds, keys, "label file");
    acv__det_sbuf sb = {0};
    for (int i = 0; !rc && i < n; i++) {
        const acv_det_image *im = &ds->images[i];
        char *dst = acv__det_fmt("%s/images/%s/%s", dir, acv__det_out_split(im, split), rel[i]);
        char *lab = acv__det_fmt("%s/%s", dir, keys[i]);
        rc = dst && lab ? acv__det_place(im->path, dst) : acv_error(ACV_ENOMEM, "out of memory");
        sb.n = 0;
        if (sb.s) sb.s[0] = 0;
        for (int j = 0; !rc && j < im->n; j++) {
            const acv_box *bx = &im->boxes[j];
            double W = im->w, H = im->h;
            rc = acv__det_sb_add(&sb, "%d %.8g %.8g %.8g %.8g\n", bx->cls, ((double)bx->x1 + bx->x2) / 2 / W,
                        ((double)bx->y1 + bx->y2) / 2 / H, ((double)bx->x2 - bx->x1) / W, ((double)bx->y2 - bx->y1) / H);
        }
        if (!rc) rc = acv__det_write_text(lab, sb.s ? sb.s : "", sb.n);
        free(dst);
        free(lab);
    }
    free(sb.s);
    char splits[ACV__DET_MAX_SPLITS][32];
    int nsp = rc ? 0 : acv__det_splits(ds, split, splits);
    if (nsp < 0) rc = nsp;
    for (int s = 0; !rc && s < nsp; s++) { /* a split without images still gets its folders */
        char *a = acv__det_fmt("%s/images/%s", dir, splits[s]), *l = acv__det_fmt("%s/labels/%s", dir, splits[s]);
        rc = a && l ? acv_mkdirs(a) : acv_error(ACV_ENOMEM, "out of memory");
        if (!rc) rc = acv_mkdirs(l);
        free(a);
        free(l);
    }
    if (!rc) rc = write_yaml(ds, dir);
    for (int i = 0; i < n && rel; i++) free(rel[i]);
    for (int i = 0; i < n && keys; i++) free(keys[i]);
    free(rel);
    free(keys);
    return rc;
}
