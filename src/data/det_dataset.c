/* Detection datasets: opening (format detection, the dataset being built), the checks every
 * format's boxes go through, image sizes from file headers, and placing files when writing.
 * The formats themselves live in det_coco.c, det_yolo.c and det_voc.c. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "autocv/error.h"
#include "base/file.h"
#include "data/det_internal.h"
#include "vision/image.h"

/* ---- the dataset being built ---------------------------------------------------------------- */

int acv__det_bad(acv__det_build *b, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!b->skip_bad) return acv_error(ACV_EFORMAT, "%s", msg);
    if (!b->ds->bad_labels++) snprintf(b->ds->first_bad, sizeof b->ds->first_bad, "%s", msg);
    return 0;
}

acv_det_image *acv__det_add_image(acv__det_build *b, const char *path, const char *file_name, int64_t id, int w,
                                  int h, const char *split)
{
    acv_det_dataset *ds = b->ds;
    if (ds->n == b->cap) {
        int cap = b->cap ? 2 * b->cap : 64;
        acv_det_image *im = realloc(ds->images, (size_t)cap * sizeof *im);
        if (!im) {
            acv_error(ACV_ENOMEM, "out of memory (%d images)", cap);
            return NULL;
        }
        ds->images = im;
        b->cap = cap;
    }
    acv_det_image *im = &ds->images[ds->n];
    memset(im, 0, sizeof *im);
    im->path = strdup(path);
    im->file_name = strdup(file_name);
    if (!im->path || !im->file_name) {
        free(im->path);
        free(im->file_name);
        acv_error(ACV_ENOMEM, "out of memory");
        return NULL;
    }
    im->id = id;
    im->w = w;
    im->h = h;
    snprintf(im->split, sizeof im->split, "%s", split ? split : "");
    ds->n++;
    return im;
}

int acv__det_push_box(acv__det_build *b, acv_det_image *im, acv_box box, const char *where)
{
    if (!isfinite(box.x1) || !isfinite(box.y1) || !isfinite(box.x2) || !isfinite(box.y2))
        return acv__det_bad(b, "%s: a box coordinate is not a finite number", where);
    if (!(box.x2 > box.x1) || !(box.y2 > box.y1))
        return acv__det_bad(b, "%s: the box has a zero or negative size (%g x %g px)", where,
                            (double)box.x2 - box.x1, (double)box.y2 - box.y1);
    if (box.x1 < -ACV__DET_TOL || box.y1 < -ACV__DET_TOL || box.x2 > im->w + ACV__DET_TOL ||
        box.y2 > im->h + ACV__DET_TOL)
        return acv__det_bad(b, "%s: the box (x1 %g, y1 %g, x2 %g, y2 %g) is outside the %dx%d image", where,
                            (double)box.x1, (double)box.y1, (double)box.x2, (double)box.y2, im->w, im->h);
    if (box.cls < 0 || box.cls >= b->ds->k)
        return acv__det_bad(b, "%s: class %d is not one of the %d classes", where, box.cls, b->ds->k);
    box.x1 = fmaxf(box.x1, 0.f);
    box.y1 = fmaxf(box.y1, 0.f);
    box.x2 = fminf(box.x2, (float)im->w);
    box.y2 = fminf(box.y2, (float)im->h);
    if (!(box.x2 > box.x1) || !(box.y2 > box.y1)) /* e.g. a sliver of at most 1 px beside the image */
        return acv__det_bad(b, "%s: the box is outside the %dx%d image", where, im->w, im->h);
    box.score = 1.f;
    if (im->n == 0 || (im->n >= 4 && (im->n & (im->n - 1)) == 0)) { /* capacity: 4, then powers of 2 */
        acv_box *nb = realloc(im->boxes, (size_t)(im->n ? 2 * im->n : 4) * sizeof *nb);
        if (!nb) return acv_error(ACV_ENOMEM, "out of memory");
        im->boxes = nb;
    }
    im->boxes[im->n++] = box;
    return 0;
}

int acv__det_set_classes(acv_det_dataset *ds, int k, char *const *names, const int64_t *ids)
{
    ds->names = calloc((size_t)(k ? k : 1), sizeof *ds->names);
    ds->cat_ids = calloc((size_t)(k ? k : 1), sizeof *ds->cat_ids);
    if (!ds->names || !ds->cat_ids) return acv_error(ACV_ENOMEM, "out of memory");
    for (int i = 0; i < k; i++) {
        if (!(ds->names[i] = strdup(names[i]))) return acv_error(ACV_ENOMEM, "out of memory");
        ds->cat_ids[i] = ids ? ids[i] : i + 1;
        ds->k = i + 1;
    }
    return 0;
}

int acv__det_class_of(const acv_det_dataset *ds, const char *name)
{
    for (int i = 0; i < ds->k; i++)
        if (!strcmp(ds->names[i], name)) return i;
    return -1;
}

/* ---- splits --------------------------------------------------------------------------------- */

bool acv__det_split_all(const char *want) { return !want || !*want || !strcmp(want, "all"); }

bool acv__det_split_match(const char *have, const char *want)
{
    if (acv__det_split_all(want)) return true;
    if (!strcmp(have, want)) return true;
    /* an unsplit source, and CVAT's "default" subset, answer to train */
    if (!strcmp(want, "train") && (!*have || !strcmp(have, "default"))) return true;
    if (!strcmp(want, "val") && (!strcmp(have, "valid") || !strcmp(have, "validation"))) return true;
    size_t n = strlen(want);
    if (strncmp(have, want, n) || !have[n]) return false;
    for (const char *p = have + n; *p; p++)
        if (*p < '0' || *p > '9') return false;
    return true; /* train2017 */
}

int acv__det_no_split(const char *path, const char *want, char *const *found, int n)
{
    char list[256] = "";
    size_t len = 0;
    for (int i = 0; i < n && len < sizeof list; i++)
        len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", len ? ", " : "", found[i]);
    return acv_error(ACV_ENOTFOUND, "%s: no split '%s' (found: %s)", path, want, len ? list : "none");
}

/* ---- opening -------------------------------------------------------------------------------- */

const char *acv_det_dataset_detect(const char *path)
{
    if (acv__det_is_voc(path)) return "voc";
    if (acv__det_is_coco(path)) return "coco";
    if (acv__det_is_yolo(path)) return "yolo";
    return NULL;
}

int acv_det_dataset_open(const char *path, const char *split, const acv_det_open_opts *opts, acv_det_dataset **out)
{
    *out = NULL;
    acv_det_open_opts o = opts ? *opts : (acv_det_open_opts){0};
    if (!path || !*path) return acv_error(ACV_EINVAL, "no dataset path");
    if (!acv_path_exists(path)) return acv_error(ACV_ENOTFOUND, "%s: no such file or directory", path);
    const char *fmt = o.format;
    if (fmt && strcmp(fmt, "coco") && strcmp(fmt, "yolo") && strcmp(fmt, "voc"))
        return acv_error(ACV_EINVAL, "unknown detection dataset format '%s' (coco, yolo or voc)", fmt);
    if (!fmt && !(fmt = acv_det_dataset_detect(path)))
        return acv_error(ACV_ENOTFOUND,
                         "%s: not a detection dataset (looked for Annotations/*.xml (VOC), "
                         "annotations/instances_*.json (COCO), data.yaml or classes.txt with images/ (YOLO))",
                         path);
    acv_det_dataset *ds = calloc(1, sizeof *ds);
    if (!ds) return acv_error(ACV_ENOMEM, "out of memory");
    snprintf(ds->format, sizeof ds->format, "%s", fmt);
    acv__det_build b = {.ds = ds, .skip_bad = o.skip_bad};
    int rc = !strcmp(fmt, "coco")   ? acv__det_open_coco(path, split, &b)
             : !strcmp(fmt, "yolo") ? acv__det_open_yolo(path, split, &b)
                                    : acv__det_open_voc(path, split, &b);
    if (!rc && !ds->names) rc = acv__det_set_classes(ds, 0, NULL, NULL);
    if (rc) {
        acv_det_dataset_free(ds);
        return rc;
    }
    *out = ds;
    return 0;
}

void acv_det_dataset_free(acv_det_dataset *ds)
{
    if (!ds) return;
    for (int i = 0; i < ds->k; i++) free(ds->names[i]);
    free(ds->names);
    free(ds->cat_ids);
    for (int i = 0; i < ds->n; i++) {
        free(ds->images[i].path);
        free(ds->images[i].file_name);
        free(ds->images[i].boxes);
    }
    free(ds->images);
    free(ds);
}

int acv_det_dataset_write(const acv_det_dataset *ds, const char *format, const char *dir, const char *split)
{
    if (!format || (strcmp(format, "coco") && strcmp(format, "yolo") && strcmp(format, "voc")))
        return acv_error(ACV_EINVAL, "unknown detection dataset format '%s' (coco, yolo or voc)", format ? format : "");
    if (split && (!*split || !strcmp(split, "all"))) split = NULL;
    if (split && (strchr(split, '/') || !strcmp(split, ".") || !strcmp(split, "..")))
        return acv_error(ACV_EINVAL, "split '%s' is not a plain name", split);
    int rc = acv_mkdirs(dir);
    if (rc) return rc;
    if (!strcmp(format, "coco")) return acv__det_write_coco(ds, dir, split);
    if (!strcmp(format, "yolo")) return acv__det_write_yolo(ds, dir, split);
    return acv__det_write_voc(ds, dir, split);
}

/* ---- image sizes from headers --------------------------------------------------------------- */

static unsigned be16(const uint8_t *p) { return (unsigned)p[0] << 8 | p[1]; }
static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }
static uint32_t le32(const uint8_t *p) { return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0]; }

/* 1 when found, 0 when the header needs a full decode. */
static int png_size(const uint8_t *b, size_t n, int *w, int *h)
{
    if (n < 33 || memcmp(b + 12, "IHDR", 4)) return 0;
    *w = (int)be32(b + 16);
    *h = (int)be32(b + 20);
    /* An eXIf chunk would rotate the image: leave that to the decoder. */
    for (size_t p = 8; p + 8 <= n;) {
        uint32_t len = be32(b + p);
        if (!memcmp(b + p + 4, "IDAT", 4)) return 1;
        if (!memcmp(b + p + 4, "eXIf", 4) || len > n) return 0;
        p += 12 + (size_t)len;
    }
    return 0;
}

static int jpeg_size(const uint8_t *b, size_t n, int *w, int *h)
{
    for (size_t p = 2; p + 4 <= n;) {
        if (b[p] != 0xFF) return 0;
        uint8_t m = b[p + 1];
        if (m == 0xFF) { p++; continue; }
        if (m == 0x01 || (m >= 0xD0 && m <= 0xD8)) { p += 2; continue; }
        if (m == 0xDA || m == 0xD9) return 0;
        size_t seg = be16(b + p + 2);
        if (m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC) {
            if (p + 9 > n) return 0;
            *h = (int)be16(b + p + 5);
            *w = (int)be16(b + p + 7);
            int o = acv_image_exif_orientation(b, n);
            if (o >= 5 && o <= 8) {
                int t = *w;
                *w = *h;
                *h = t;
            }
            return *w > 0 && *h > 0;
        }
        p += 2 + seg;
    }
    return 0;
}

static int bmp_size(const uint8_t *b, size_t n, int *w, int *h)
{
    if (n < 26) return 0;
    uint32_t hs = le32(b + 14);
    if (hs == 12) {
        *w = (int)(b[18] | b[19] << 8);
        *h = (int)(b[20] | b[21] << 8);
    } else {
        *w = (int)(int32_t)le32(b + 18);
        int32_t hh = (int32_t)le32(b + 22);
        if (hh == INT32_MIN) return 0; /* no such height (its negation overflows): invalid */
        *h = hh < 0 ? -hh : hh;
    }
    return 1;
}

/* Reads a growing prefix of the file (4 KiB, then 1 MiB: EXIF blocks and thumbnails can
 * push a JPEG's frame header far in) until the header parsers find the size; anything they
 * cannot read is decoded in full. */
int acv__det_image_size(const char *path, int *w, int *h)
{
    *w = *h = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return acv_error(errno == ENOENT ? ACV_ENOTFOUND : ACV_EIO, "%s: %s", path, strerror(errno));
    static const size_t STEPS[2] = {4 << 10, 1 << 20};
    uint8_t *b = NULL;
    size_t n = 0;
    int found = 0;
    for (int s = 0; s < 2 && !found; s++) {
        uint8_t *nb = realloc(b, STEPS[s]);
        if (!nb) {
            free(b);
            fclose(f);
            return acv_error(ACV_ENOMEM, "out of memory");
        }
        b = nb;
        size_t want = STEPS[s] - n, got = fread(b + n, 1, want, f);
        n += got;
        if (n >= 8 && !memcmp(b, "\x89PNG\r\n\x1a\n", 8)) found = png_size(b, n, w, h);
        else if (n >= 4 && b[0] == 0xFF && b[1] == 0xD8) found = jpeg_size(b, n, w, h);
        else if (n >= 2 && b[0] == 'B' && b[1] == 'M') found = bmp_size(b, n, w, h);
        else break;
        if (got < want) break; /* the whole file was read */
    }
    fclose(f);
    free(b);
    if (found && *w > 0 && *h > 0) return 0;
    acv_image im;
    int rc = acv_image_load(path, NULL, &im);
    if (rc) return rc;
    *w = im.w;
    *h = im.h;
    acv_image_free(&im);
    return 0;
}

/* ---- files ---------------------------------------------------------------------------------- */

bool acv__det_is_image_name(const char *name)
{
    const char *e = acv_path_ext(name);
    return !strcasecmp(e, "jpg") || !strcasecmp(e, "jpeg") || !strcasecmp(e, "png") || !strcasecmp(e, "bmp");
}

bool acv__det_is_other_image_name(const char *name)
{
    static const char *const EXT[] = {"webp", "tif", "tiff", "gif", "heic", "heif", "avif", "dng", "mpo", "pfm",
                                      "jp2", "jxl", NULL};
    const char *e = acv_path_ext(name);
    for (int i = 0; EXT[i]; i++)
        if (!strcasecmp(e, EXT[i])) return true;
    return false;
}

char *acv__det_fmt(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    return n < 0 ? NULL : s;
}

typedef struct strlist {
    char **v;
    int n, cap;
} strlist;

static int strlist_push(strlist *l, char *s)
{
    if (!s) return acv_error(ACV_ENOMEM, "out of memory");
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        char **v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v) {
            free(s);
            return acv_error(ACV_ENOMEM, "out of memory");
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = s;
    return 0;
}

static int walk(const char *root, const char *rel, strlist *l, int depth)
{
    if (depth > 32) return 0;
    char *dir = *rel ? acv__det_fmt("%s/%s", root, rel) : strdup(root);
    if (!dir) return acv_error(ACV_ENOMEM, "out of memory");
    DIR *d = opendir(dir);
    if (!d) {
        int rc = acv_error(ACV_EIO, "%s: %s", dir, strerror(errno));
        free(dir);
        return rc;
    }
    int rc = 0;
    struct dirent *e;
    while (!rc && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char *r = *rel ? acv__det_fmt("%s/%s", rel, e->d_name) : strdup(e->d_name);
        char *full = acv__det_fmt("%s/%s", dir, e->d_name);
        if (!r || !full) rc = acv_error(ACV_ENOMEM, "out of memory");
        else if (acv_is_dir(full)) rc = walk(root, r, l, depth + 1);
        else if (acv__det_is_image_name(e->d_name) || acv__det_is_other_image_name(e->d_name)) {
            rc = strlist_push(l, r);
            r = NULL;
        }
        free(r);
        free(full);
    }
    closedir(d);
    free(dir);
    return rc;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int acv__det_list_images(const char *dir, char ***out, int *n)
{
    strlist l = {0};
    int rc = walk(dir, "", &l, 0);
    if (rc) {
        acv__det_free_list(l.v, l.n);
        return rc;
    }
    if (l.n) qsort(l.v, (size_t)l.n, sizeof *l.v, cmp_str);
    *out = l.v;
    *n = l.n;
    return 0;
}

void acv__det_free_list(char **v, int n)
{
    for (int i = 0; i < n; i++) free(v[i]);
    free(v);
}

const char *acv__det_out_split(const acv_det_image *im, const char *split)
{
    if (split) return split;
    return im->split[0] ? im->split : "train";
}

int acv__det_splits(const acv_det_dataset *ds, const char *split, char out[][32])
{
    int n = 0;
    for (int i = 0; i < ds->n; i++) {
        const char *s = acv__det_out_split(&ds->images[i], split);
        int j = 0;
        while (j < n && strcmp(out[j], s)) j++;
        if (j < n) continue;
        if (n == ACV__DET_MAX_SPLITS) return acv_error(ACV_ERANGE, "more than %d splits", ACV__DET_MAX_SPLITS);
        snprintf(out[n++], 32, "%s", s);
    }
    if (!n) snprintf(out[n++], 32, "%s", split ? split : "train");
    return n;
}

void acv__det_safe_name(const char *file_name, bool flat, char *out, size_t n)
{
    const char *s = file_name;
    while (*s == '/' || (s[0] == '.' && s[1] == '/')) s += *s == '/' ? 1 : 2;
    bool bad = !*s || !strcmp(s, "..") || !strncmp(s, "../", 3) || strstr(s, "/../") ||
               (strlen(s) >= 3 && !strcmp(s + strlen(s) - 3, "/..")) || strstr(s, "//") || strstr(s, "/./");
    if (bad || s[strlen(s) - 1] == '/') {
        const char *slash = strrchr(file_name, '/');
        s = slash ? slash + 1 : file_name;
        if (!*s || !strcmp(s, "..") || !strcmp(s, ".")) s = "image";
    }
    snprintf(out, n, "%s", s);
    if (flat)
        for (char *p = out; *p; p++)
            if (*p == '/') *p = '_';
}

static int mkparent(const char *path)
{
    char *d = strdup(path);
    if (!d) return acv_error(ACV_ENOMEM, "out of memory");
    char *slash = strrchr(d, '/');
    int rc = 0;
    if (slash && slash != d) {
        *slash = 0;
        rc = acv_mkdirs(d);
    }
    free(d);
    return rc;
}

static int copy_file(const char *src, const char *dst)
{
    int in = open(src, O_RDONLY);
    if (in < 0) return acv_error(errno == ENOENT ? ACV_ENOTFOUND : ACV_EIO, "%s: %s", src, strerror(errno));
    int outfd = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (outfd < 0) {
        int rc = acv_error(ACV_EIO, "%s: %s", dst, strerror(errno));
        close(in);
        return rc;
    }
    char buf[1 << 16];
    int rc = 0;
    for (;;) {
        ssize_t r = read(in, buf, sizeof buf);
        if (r < 0) {
            rc = acv_error(ACV_EIO, "%s: %s", src, strerror(errno));
            break;
        }
        if (!r) break;
        for (ssize_t off = 0; off < r;) {
            ssize_t wr = write(outfd, buf + off, (size_t)(r - off));
            if (wr < 0) {
                rc = acv_error(ACV_EIO, "%s: %s", dst, strerror(errno));
                break;
            }
            off += wr;
        }
        if (rc) break;
    }
    close(in);
    if (close(outfd) && !rc) rc = acv_error(ACV_EIO, "%s: %s", dst, strerror(errno));
    return rc;
}

int acv__det_place(const char *src, const char *dst)
{
    struct stat a, b;
    if (stat(src, &a)) return acv_error(errno == ENOENT ? ACV_ENOTFOUND : ACV_EIO, "%s: %s", src, strerror(errno));
    if (!stat(dst, &b) && a.st_dev == b.st_dev && a.st_ino == b.st_ino) return 0; /* already there */
    int rc = mkparent(dst);
    if (rc) return rc;
    if (unlink(dst) && errno != ENOENT) return acv_error(ACV_EIO, "%s: cannot replace: %s", dst, strerror(errno));
    if (!link(src, dst)) return 0;
    return copy_file(src, dst);
}

int acv__det_write_text(const char *path, const char *text, size_t len)
{
    int rc = mkparent(path);
    if (rc) return rc;
    FILE *f = fopen(path, "wb");
    if (!f) return acv_error(ACV_EIO, "%s: %s", path, strerror(errno));
    bool ok = (!len || fwrite(text, 1, len, f) == len);
    if (fclose(f) || !ok) return acv_error(ACV_EIO, "%s: write failed: %s", path, strerror(errno));
    return 0;
}

static _Thread_local char **t_keys; /* qsort has no context argument */

static int cmp_key(const void *a, const void *b)
{
    return strcmp(t_keys[*(const int *)a], t_keys[*(const int *)b]);
}

int acv__det_check_unique(const acv_det_dataset *ds, char **keys, const char *what)
{
    int *ord = malloc((size_t)(ds->n ? ds->n : 1) * sizeof *ord);
    if (!ord) return acv_error(ACV_ENOMEM, "out of memory");
    for (int i = 0; i < ds->n; i++) ord[i] = i;
    t_keys = keys;
    qsort(ord, (size_t)ds->n, sizeof *ord, cmp_key);
    int rc = 0;
    for (int i = 1; i < ds->n && !rc; i++)
        if (!strcmp(keys[ord[i - 1]], keys[ord[i]]))
            rc = acv_error(ACV_EEXIST, "images '%s' and '%s' would both be written as %s '%s'",
                           ds->images[ord[i - 1]].path, ds->images[ord[i]].path, what, keys[ord[i]]);
    free(ord);
    return rc;
}

void acv__det_num(char *out, size_t n, double v)
{
    if (v == 0) snprintf(out, n, "0");
    else if (v == floor(v) && fabs(v) < 1e15) snprintf(out, n, "%.0f", v);
    else snprintf(out, n, "%.9g", v);
}

int acv__det_sb_add(acv__det_sbuf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->s ? b->s + b->n : NULL, b->s ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) return acv_error(ACV_EINVAL, "format error");
        if (b->s && b->n + (size_t)k < b->cap) {
            b->n += (size_t)k;
            return 0;
        }
        size_t cap = b->cap ? b->cap : 1024;
        while (cap <= b->n + (size_t)k) cap *= 2;
        char *s = realloc(b->s, cap);
        if (!s) return acv_error(ACV_ENOMEM, "out of memory");
        b->s = s;
        b->cap = cap;
    }
}
