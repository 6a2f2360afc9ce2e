/* Detection datasets: YOLO (images/<split>/, labels/<split>/<stem>.txt, data.yaml).
 *
 * data.yaml (a UTF-8 byte order mark and CRLF line ends are fine; src/data/yolo_yaml.c) is read
 * for its top-level keys names (a flow or block list, or a map from index to name, flow or
 * block), nc (must match names; alone it names the classes class_0, class_1, ... as Ultralytics
 * does), path (the root, relative to the file; the file's folder when it does not exist), and
 * train/val (or valid, validation)/test: a folder of images, a .txt list of image paths, or a
 * list of either (flow or block), relative to the root, else to the yaml's folder, else with
 * leading "../" dropped (Roboflow's ../train/images). A split given but not on disk is an error
 * when it is read (test is passed over when every split is read: Roboflow names one it may not
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
#include "data/yolo_yaml.h"

#define TEXT_MAX (64u << 20)

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

/* The keys of data.yaml (src/data/yolo_yaml.h), its errors named "file:line: ". */
static int parse_yaml(const char *file, acv_yolo_yaml *y)
{
    uint8_t *buf;
    size_t len;
    int rc = acv_file_read(file, TEXT_MAX, &buf, &len);
    if (rc) return rc;
    int line;
    rc = acv_yolo_yaml_parse((char *)buf, false, y, &line);
    free(buf);
    if (rc == ACV_EFORMAT) return acv_error_prefix(rc, "%s:%d: ", file, line);
    if (!rc && y->hole >= 0) {
        rc = acv_error(ACV_EFORMAT, "%s: names has no entry for class %d", file, y->hole);
        acv_yolo_yaml_free(y);
    }
    return rc;
}

/* classes.txt / obj.names: one name a line (blank lines ignored). */
static int parse_names_file(const char *file, acv_yolo_yaml *y)
{
    uint8_t *buf;
    size_t len;
    int rc = acv_file_read(file, TEXT_MAX, &buf, &len);
    if (rc) return rc;
    for (char *line = acv_yolo_skip_bom((char *)buf), *next; !rc && line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        size_t n = strlen(line);
        while (n && isspace((unsigned char)line[n - 1])) line[--n] = 0;
        while (isspace((unsigned char)*line)) line++;
        if (*line) rc = acv_yolo_add_name(y, line);
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
    for (char *line = acv_yolo_skip_bom((char *)buf), *next; !rc && line; line = next) {
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
        bool ok = acv_yolo_class(t, &c);
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
    char *lab = acv_yolo_label_path(path);
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
    for (char *line = acv_yolo_skip_bom((char *)buf), *next; !rc && line; line = next) {
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
                        if (acv__det_split_match(subs[i], acv_yolo_splits[k]) && ri == 3) ri = k;
                        if (acv__det_split_match(subs[j], acv_yolo_splits[k]) && rj == 3) rj = k;
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
    acv_yolo_yaml y = ACV_YOLO_YAML_EMPTY;
    int rc = ydir ? 0 : acv_error(ACV_ENOMEM, "out of memory");
    if (!rc && yfile) rc = parse_yaml(yfile, &y);
    if (!rc && !y.k) {
        char *nf = names_file(ydir);
        if (nf) rc = parse_names_file(nf, &y);
        else if (y.nc > 0) { /* nc without names: Ultralytics' class_0, class_1, ... */
            for (long c = 0; !rc && c < y.nc; c++) {
                char name[32];
                snprintf(name, sizeof name, "class_%ld", c);
                rc = acv_yolo_add_name(&y, name);
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
            rc = add_source(&src, &ns, acv_yolo_splits[i], split_where(root, ydir, y.split[i][j]), true);
            if (!rc) {
                src[ns - 1].given = y.split[i][j];
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
    acv_yolo_yaml_free(&y);
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
                if (acv__det_split_match(subs[i], acv_yolo_splits[k])) key = k;
            bool exact = key >= 0 && !strcmp(subs[i], acv_yolo_splits[key]);
            if (pass == 0 && exact) {
                taken[key] = true;
                rc = acv__det_sb_add(&sb, "%s: images/%s\n", acv_yolo_splits[key], subs[i]);
            } else if (pass == 1 && !exact) {
                if (key >= 0 && !taken[key]) {
                    taken[key] = true;
                    rc = acv__det_sb_add(&sb, "%s: images/%s\n", acv_yolo_splits[key], subs[i]);
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
