/* Dataset version export as a zip produced in pieces (see export.h).
 *
 * libarchive writes the zip through a callback into a small output buffer; each read first
 * drains that buffer and, when it is empty, advances the export by one step: one chunk of an
 * image file, one small text file, or one page of items of a streamed text file (a COCO
 * JSON or a VOC split list, written with unknown size). The phases depend on the format:
 *   coco         JSON files per split, then the images
 *   yolo         per item: image + label file; then data.yaml
 *   voc          per item: image + XML; then the split lists
 *   imagefolder  per item: image
 * and every export ends by closing the archive (its central directory). */
#include "platform/export.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "autocv/error.h"
#include "base/log.h"
#include "data/xml.h"
#include "platform/annotation_doc.h"
#include "platform/versions.h"

#define PAGE 64
#define CHUNK (64 * 1024)

static const char *const FORMATS[] = {"coco", "yolo", "voc", "imagefolder"};
static const char *const SPLITS[3] = {"train", "val", "test"};

enum { PH_JSON, PH_ITEMS, PH_SETS, PH_YAML, PH_CLOSE, PH_END };
static const int PHASES[4][4] = {
    {PH_JSON, PH_ITEMS, PH_CLOSE, PH_END}, /* coco */
    {PH_ITEMS, PH_YAML, PH_CLOSE, PH_END}, /* yolo */
    {PH_ITEMS, PH_SETS, PH_CLOSE, PH_END}, /* voc */
    {PH_ITEMS, PH_CLOSE, PH_END, PH_END},  /* imagefolder */
};

typedef struct sbuf {
    char *p;
    size_t n, cap;
} sbuf;

struct acv_export {
    acv_db *db;
    acv_blobs *blobs;
    acv_export_format fmt;
    int64_t version_id;
    json_t *version;        /* the version (name, task, labels, counts, ...) */
    const char **names;     /* label names, sorted: index = class */
    char **dirs;            /* imagefolder: the class folder of each label */
    size_t nlabels;
    int64_t nsplit[3];
    time_t mtime;
    char filename[160];

    struct archive *ar;
    sbuf out;               /* archive bytes not handed out yet */
    size_t out_pos;
    sbuf text;              /* a text piece being built */

    int iphase;
    int split, sub;         /* streamed text files: which split, which part */
    bool first;             /* no element written yet in the current JSON array */
    int64_t ann_id;

    json_t *page;           /* the current page of items */
    size_t page_i;
    int64_t after;          /* keyset: the last image id fetched */
    bool page_end;

    FILE *f;                /* the image being copied */
    json_t *cur;            /* its item */
    char cur_file[160], cur_stem[128];
    bool failed;
};

int acv_export_format_parse(const char *s, acv_export_format *f)
{
    for (int i = 0; i < 4; i++)
        if (s && !strcmp(s, FORMATS[i])) {
            *f = (acv_export_format)i;
            return 0;
        }
    return acv_error(ACV_EINVAL, "unknown export format '%s' (coco, yolo, voc or imagefolder)", s ? s : "");
}

const char *acv_export_filename(const acv_export *e) { return e->filename; }

/* ---- buffers ---------------------------------------------------------------------------- */

static int sb_add(sbuf *b, const void *p, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n + 1) cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) return acv_error(ACV_ENOMEM, "out of memory");
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
    b->p[b->n] = 0;
    return 0;
}

static int sb_str(sbuf *b, const char *s) { return sb_add(b, s, strlen(s)); }

static int sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int sb_printf(sbuf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return acv_error(ACV_EINVAL, "formatting failed");
    if ((size_t)n < sizeof tmp) return sb_add(b, tmp, (size_t)n);
    char *big = malloc((size_t)n + 1);
    if (!big) return acv_error(ACV_ENOMEM, "out of memory");
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    int rc = sb_add(b, big, (size_t)n);
    free(big);
    return rc;
}

/* Appends v as compact JSON. */
static int sb_json(sbuf *b, const json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!s) return acv_error(ACV_ENOMEM, "out of memory");
    int rc = sb_str(b, s);
    free(s);
    return rc;
}

static int sb_xml(sbuf *b, const char *s)
{
    int rc = 0;
    for (const char *e; !rc && *s; s++) rc = (e = acv_xml_entity(*s)) ? sb_str(b, e) : sb_add(b, s, 1);
    return rc;
}

/* ---- the archive ------------------------------------------------------------------------ */

static la_ssize_t on_write(struct archive *a, void *ud, const void *buf, size_t n)
{
    acv_export *e = ud;
    if (sb_add(&e->out, buf, n)) {
        archive_set_error(a, ENOMEM, "out of memory");
        return -1;
    }
    return (la_ssize_t)n;
}

static int arch_err(acv_export *e, const char *what)
{
    const char *m = archive_error_string(e->ar);
    return acv_error(ACV_EIO, "export of dataset version %lld: %s: %s", (long long)e->version_id, what, m ? m : "?");
}

/* Starts an entry: size < 0 when unknown (then deflated with the length at its end). */
static int entry_begin(acv_export *e, const char *path, int64_t size, bool store)
{
    if (store) archive_write_zip_set_compression_store(e->ar);
    else archive_write_zip_set_compression_deflate(e->ar);
    struct archive_entry *en = archive_entry_new();
    if (!en) return acv_error(ACV_ENOMEM, "out of memory");
    archive_entry_set_pathname_utf8(en, path);
    archive_entry_set_filetype(en, AE_IFREG);
    archive_entry_set_perm(en, 0644);
    archive_entry_set_mtime(en, e->mtime, 0);
    if (size >= 0) archive_entry_set_size(en, size);
    int r = archive_write_header(e->ar, en);
    archive_entry_free(en);
    return r == ARCHIVE_OK ? 0 : arch_err(e, path);
}

static int entry_data(acv_export *e, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        la_ssize_t w = archive_write_data(e->ar, c, n);
        if (w <= 0) return arch_err(e, "writing data");
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

static int entry_end(acv_export *e) { return archive_write_finish_entry(e->ar) == ARCHIVE_OK ? 0 : arch_err(e, "ending an entry"); }

/* A whole small text file from e->text. */
static int entry_text(acv_export *e, const char *path)
{
    int rc = entry_begin(e, path, (int64_t)e->text.n, false);
    if (!rc) rc = entry_data(e, e->text.p ? e->text.p : "", e->text.n);
    if (!rc) rc = entry_end(e);
    e->text.n = 0;
    return rc;
}

/* Writes e->text into the open entry and empties it. */
static int flush_text(acv_export *e)
{
    int rc = e->text.n ? entry_data(e, e->text.p, e->text.n) : 0;
    e->text.n = 0;
    return rc;
}

/* ---- items -------------------------------------------------------------------------------- */

static void pass_reset(acv_export *e)
{
    json_decref(e->page);
    e->page = NULL;
    e->page_i = 0;
    e->after = 0;
    e->page_end = false;
}

/* The next item of the current pass (split < 0: every split) in image id order, or NULL at
 * the end. Borrowed: valid until the next call. */
static int next_item(acv_export *e, int split, json_t **item)
{
    *item = NULL;
    if (e->page && e->page_i < json_array_size(e->page)) {
        *item = json_array_get(e->page, e->page_i++);
        return 0;
    }
    if (e->page_end) return 0;
    json_decref(e->page);
    e->page = NULL;
    e->page_i = 0;
    acv_dbconn *c;
    int rc = acv_db_acquire(e->db, &c);
    if (rc) return rc;
    rc = acv_db_query(c, &e->page,
                      "SELECT image_id, blob_hash, filename, width, height, split, doc_json FROM dataset_version_items "
                      "WHERE version_id = ?1 AND image_id > ?2 AND (?3 IS NULL OR split = ?3) ORDER BY image_id LIMIT ?4",
                      "IIsi", e->version_id, e->after, split >= 0 ? SPLITS[split] : NULL, PAGE);
    acv_db_release(c);
    if (rc) return rc;
    size_t n = json_array_size(e->page);
    if (n < PAGE) e->page_end = true;
    if (n) {
        e->after = json_integer_value(json_object_get(json_array_get(e->page, n - 1), "image_id"));
        *item = json_array_get(e->page, e->page_i++);
    }
    return 0;
}

static int split_of(const json_t *item)
{
    const char *s = json_string_value(json_object_get(item, "split"));
    for (int i = 0; i < 3; i++)
        if (s && !strcmp(s, SPLITS[i])) return i;
    return 0;
}

static int class_of(const acv_export *e, const char *label)
{
    size_t lo = 0, hi = e->nlabels;
    while (label && lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(e->names[mid], label);
        if (!c) return (int)mid;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return -1;
}

/* "<id>_<original name without extension>", reduced to safe characters. */
static void stem_of(const json_t *item, char stem[128])
{
    const char *fn = json_string_value(json_object_get(item, "filename"));
    const char *base = fn ? strrchr(fn, '/') : NULL;
    base = base ? base + 1 : fn ? fn : "";
    const char *dot = strrchr(base, '.');
    size_t len = dot && dot != base ? (size_t)(dot - base) : strlen(base);
    int n = snprintf(stem, 128, "%lld", (long long)json_integer_value(json_object_get(item, "image_id")));
    if (len) stem[n++] = '_';
    for (size_t i = 0; i < len && n < 100; i++) {
        unsigned char ch = (unsigned char)base[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
                  ch == '_' || ch == '.';
        stem[n++] = ok ? (char)ch : '_';
    }
    stem[n] = 0;
}

/* The file extension for image bytes starting with p. */
static const char *ext_of(const unsigned char *p, size_t n)
{
    if (n >= 8 && !memcmp(p, "\x89PNG\r\n\x1a\n", 8)) return "png";
    if (n >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff) return "jpg";
    if (n >= 2 && p[0] == 'B' && p[1] == 'M') return "bmp";
    return "bin";
}

/* Opens an item's image; *file gets its name in the archive ("<stem>.<ext>"). */
static int open_image(acv_export *e, const json_t *item, FILE **f, int64_t *size, char file[160], char stem[128])
{
    const char *hash = json_string_value(json_object_get(item, "blob_hash"));
    char *path = acv_blobs_path(e->blobs, hash);
    if (!path)
        return acv_error(ACV_ENOTFOUND, "export: the file of image %lld (blob %.16s...) is missing from the blob store",
                         (long long)json_integer_value(json_object_get(item, "image_id")), hash ? hash : "?");
    *f = fopen(path, "rb");
    int rc = 0;
    struct stat st;
    unsigned char head[16];
    size_t nh = 0;
    if (!*f) rc = acv_error(ACV_ENOTFOUND, "export: %s: %s", path, strerror(errno));
    else if (fstat(fileno(*f), &st)) rc = acv_error(ACV_EIO, "export: %s: %s", path, strerror(errno));
    else {
        nh = fread(head, 1, sizeof head, *f);
        rewind(*f);
        *size = (int64_t)st.st_size;
    }
    free(path);
    if (rc) {
        if (*f) fclose(*f);
        *f = NULL;
        return rc;
    }
    stem_of(item, stem);
    snprintf(file, 160, "%s.%s", stem, ext_of(head, nh));
    return 0;
}

/* The name an item's image has in the archive, without copying it (COCO's JSON comes first). */
static int image_file_name(acv_export *e, const json_t *item, char file[160])
{
    FILE *f;
    int64_t size;
    char stem[128];
    int rc = open_image(e, item, &f, &size, file, stem);
    if (!rc) fclose(f);
    return rc;
}

/* ---- per-format text ---------------------------------------------------------------------- */

/* YOLO label lines of an item into e->text. */
static int yolo_lines(acv_export *e, const json_t *item)
{
    const json_t *doc = json_object_get(item, "doc");
    double W = (double)json_integer_value(json_object_get(item, "width"));
    double H = (double)json_integer_value(json_object_get(item, "height"));
    size_t i;
    json_t *s;
    int rc = 0;
    json_array_foreach(json_object_get(doc, "shapes"), i, s) {
        int k = class_of(e, json_string_value(json_object_get(s, "label")));
        const char *type = json_string_value(json_object_get(s, "type"));
        if (k < 0 || !type || json_is_true(json_object_get(s, "iscrowd"))) continue; /* YOLO has no crowd regions */
        if (!strcmp(type, "box")) {
            double x = json_number_value(json_object_get(s, "x")), y = json_number_value(json_object_get(s, "y"));
            double w = json_number_value(json_object_get(s, "w")), h = json_number_value(json_object_get(s, "h"));
            rc = sb_printf(&e->text, "%d %.6f %.6f %.6f %.6f\n", k, (x + w / 2) / W, (y + h / 2) / H, w / W, h / H);
        } else if (!strcmp(type, "polygon") || !strcmp(type, "text")) {
            rc = sb_printf(&e->text, "%d", k);
            size_t j;
            json_t *p;
            json_array_foreach(json_object_get(s, "points"), j, p) if (!rc)
                rc = sb_printf(&e->text, " %.6f %.6f", json_number_value(json_array_get(p, 0)) / W,
                               json_number_value(json_array_get(p, 1)) / H);
            if (!rc) rc = sb_str(&e->text, "\n");
        } else if (!strcmp(type, "mask")) {
            /* YOLO segmentation takes polygons: one outline per region of the mask. */
            const json_t *rle = json_object_get(s, "rle");
            int h = (int)json_integer_value(json_array_get(json_object_get(rle, "size"), 0));
            int w = (int)json_integer_value(json_array_get(json_object_get(rle, "size"), 1));
            uint32_t *runs = NULL;
            size_t nr;
            uint8_t *mask = NULL;
            json_t *polys = NULL;
            rc = acv_rle_runs(json_object_get(rle, "counts"), &runs, &nr);
            if (!rc) rc = acv_rle_to_mask(runs, nr, h, w, &mask);
            if (!rc) rc = acv_mask_outlines(mask, h, w, &polys);
            size_t j;
            json_t *poly;
            json_array_foreach(rc ? NULL : polys, j, poly) {
                rc = sb_printf(&e->text, "%d", k);
                size_t q;
                json_t *p;
                json_array_foreach(poly, q, p) if (!rc)
                    rc = sb_printf(&e->text, " %.6f %.6f", (double)json_integer_value(json_array_get(p, 0)) / W,
                                   (double)json_integer_value(json_array_get(p, 1)) / H);
                if (!rc) rc = sb_str(&e->text, "\n");
                if (rc) break;
            }
            free(runs);
            free(mask);
            json_decref(polys);
        }
        if (rc) break;
    }
    return rc;
}

/* The Pascal VOC XML of an item into e->text. Pixel coordinates are 1-based and inclusive. */
static int voc_xml(acv_export *e, const json_t *item, const char *file)
{
    const json_t *doc = json_object_get(item, "doc");
    int W = (int)json_integer_value(json_object_get(item, "width")), H = (int)json_integer_value(json_object_get(item, "height"));
    int rc = sb_str(&e->text, "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<annotation>\n  <folder>JPEGImages</folder>\n"
                              "  <filename>");
    if (!rc) rc = sb_xml(&e->text, file);
    if (!rc) rc = sb_str(&e->text, "</filename>\n  <source><database>AutoCV</database><annotation>");
    if (!rc) rc = sb_xml(&e->text, json_string_value(json_object_get(e->version, "name")));
    if (!rc)
        rc = sb_printf(&e->text, "</annotation></source>\n  <size><width>%d</width><height>%d</height><depth>3</depth>"
                                 "</size>\n  <segmented>0</segmented>\n",
                       W, H);
    size_t i;
    json_t *s;
    json_array_foreach(rc ? NULL : json_object_get(doc, "shapes"), i, s) {
        double b[4], area;
        if ((rc = acv_ann_shape_bbox(s, b, &area))) break;
        int x0 = (int)floor(b[0]) + 1, y0 = (int)floor(b[1]) + 1;
        int x1 = (int)ceil(b[0] + b[2]), y1 = (int)ceil(b[1] + b[3]);
        if (x1 > W) x1 = W;
        if (y1 > H) y1 = H;
        if (x1 < x0) x1 = x0;
        if (y1 < y0) y1 = y0;
        rc = sb_str(&e->text, "  <object>\n    <name>");
        if (!rc) rc = sb_xml(&e->text, json_string_value(json_object_get(s, "label")));
        if (!rc)
            rc = sb_printf(&e->text, "</name>\n    <pose>Unspecified</pose>\n    <truncated>0</truncated>\n    "
                                     "<difficult>%d</difficult>\n    <bndbox><xmin>%d</xmin><ymin>%d</ymin><xmax>%d</xmax>"
                                     "<ymax>%d</ymax></bndbox>\n",
                           json_is_true(json_object_get(s, "difficult")) ? 1 : 0, x0, y0, x1, y1);
        const char *text = json_string_value(json_object_get(s, "text"));
        if (!rc && text) {
            rc = sb_str(&e->text, "    <text>");
            if (!rc) rc = sb_xml(&e->text, text);
            if (!rc) rc = sb_str(&e->text, "</text>\n");
        }
        if (!rc) rc = sb_str(&e->text, "  </object>\n");
        if (rc) break;
    }
    if (!rc) rc = sb_str(&e->text, "</annotation>\n");
    return rc;
}

/* One COCO annotation object per shape of an item, into e->text. */
static int coco_annotations(acv_export *e, const json_t *item)
{
    const json_t *doc = json_object_get(item, "doc");
    size_t i;
    json_t *s;
    int rc = 0;
    json_array_foreach(json_object_get(doc, "shapes"), i, s) {
        int k = class_of(e, json_string_value(json_object_get(s, "label")));
        const char *type = json_string_value(json_object_get(s, "type"));
        double b[4], area;
        if (k < 0 || !type) continue;
        if ((rc = acv_ann_shape_bbox(s, b, &area))) break;
        json_t *seg;
        if (!strcmp(type, "mask")) {
            seg = json_incref(json_object_get(s, "rle"));
        } else if (!strcmp(type, "box")) {
            seg = json_pack("[[f, f, f, f, f, f, f, f]]", b[0], b[1], b[0] + b[2], b[1], b[0] + b[2], b[1] + b[3], b[0],
                            b[1] + b[3]);
        } else {
            json_t *flat = json_array();
            size_t j;
            json_t *p;
            json_array_foreach(json_object_get(s, "points"), j, p) {
                json_array_append(flat, json_array_get(p, 0));
                json_array_append(flat, json_array_get(p, 1));
            }
            seg = json_pack("[o]", flat);
        }
        json_t *a = json_pack("{s:I, s:I, s:i, s:o, s:[f, f, f, f], s:f, s:i}", "id", (json_int_t)++e->ann_id,
                              "image_id", json_integer_value(json_object_get(item, "image_id")), "category_id", k + 1,
                              "segmentation", seg, "bbox", b[0], b[1], b[2], b[3], "area", area, "iscrowd",
                              json_is_true(json_object_get(s, "iscrowd")) ? 1 : 0);
        if (!a) {
            rc = acv_error(ACV_ENOMEM, "out of memory");
            break;
        }
        if (json_object_get(s, "text")) json_object_set(a, "text", json_object_get(s, "text"));
        if (!e->first) rc = sb_str(&e->text, ",");
        e->first = false;
        if (!rc) rc = sb_json(&e->text, a);
        json_decref(a);
        if (rc) break;
    }
    return rc;
}

/* ---- steps -------------------------------------------------------------------------------- */

/* PH_ITEMS: one chunk of the current image, or the start of the next one. */
static int step_items(acv_export *e, bool *phase_done)
{
    int rc;
    if (e->f) {
        char *buf = malloc(CHUNK);
        if (!buf) return acv_error(ACV_ENOMEM, "out of memory");
        size_t n = fread(buf, 1, CHUNK, e->f);
        rc = n ? entry_data(e, buf, n) : 0;
        free(buf);
        if (rc) return rc;
        if (n == CHUNK) return 0;
        if (ferror(e->f)) return acv_error(ACV_EIO, "export: reading the file of image %s failed", e->cur_file);
        fclose(e->f);
        e->f = NULL;
        if ((rc = entry_end(e))) return rc;
        char path[400];
        const char *split = SPLITS[split_of(e->cur)];
        if (e->fmt == ACV_EXPORT_YOLO) {
            snprintf(path, sizeof path, "labels/%s/%s.txt", split, e->cur_stem);
            rc = yolo_lines(e, e->cur);
            if (!rc) rc = entry_text(e, path);
        } else if (e->fmt == ACV_EXPORT_VOC) {
            snprintf(path, sizeof path, "Annotations/%s.xml", e->cur_stem);
            rc = voc_xml(e, e->cur, e->cur_file);
            if (!rc) rc = entry_text(e, path);
        }
        json_decref(e->cur);
        e->cur = NULL;
        return rc;
    }
    json_t *it;
    if ((rc = next_item(e, -1, &it))) return rc;
    if (!it) {
        *phase_done = true;
        return 0;
    }
    int64_t size = 0;
    if ((rc = open_image(e, it, &e->f, &size, e->cur_file, e->cur_stem))) return rc;
    e->cur = json_incref(it);
    char path[600];
    const char *split = SPLITS[split_of(it)];
    if (e->fmt == ACV_EXPORT_IMAGEFOLDER) {
        int k = class_of(e, json_string_value(json_array_get(json_object_get(json_object_get(it, "doc"), "tags"), 0)));
        if (k < 0)
            return acv_error(ACV_EINVAL, "export: image %lld has no class tag",
                             (long long)json_integer_value(json_object_get(it, "image_id")));
        snprintf(path, sizeof path, "%s/%s/%s", split, e->dirs[k], e->cur_file);
    } else if (e->fmt == ACV_EXPORT_VOC) {
        snprintf(path, sizeof path, "JPEGImages/%s", e->cur_file);
    } else {
        snprintf(path, sizeof path, "images/%s/%s", split, e->cur_file);
    }
    return entry_begin(e, path, size, true);
}

/* The next split (from e->split on) that has images; 3 when none is left. */
static int next_split(const acv_export *e, int from)
{
    while (from < 3 && e->nsplit[from] == 0) from++;
    return from;
}

/* PH_JSON: COCO's instances_<split>.json, one page of items per step. */
static int step_json(acv_export *e, bool *phase_done)
{
    int rc = 0;
    if (e->sub == 0) {
        e->split = next_split(e, e->split);
        if (e->split == 3) {
            *phase_done = true;
            return 0;
        }
        char path[64];
        snprintf(path, sizeof path, "annotations/instances_%s.json", SPLITS[e->split]);
        if ((rc = entry_begin(e, path, -1, false))) return rc;
        json_t *cats = json_array(), *labels = json_object_get(e->version, "labels");
        size_t i;
        json_t *l;
        json_array_foreach(labels, i, l) {
            const char *parent = json_string_value(json_object_get(l, "parent"));
            json_array_append_new(cats, json_pack("{s:I, s:O, s:s}", "id", (json_int_t)i + 1, "name",
                                                  json_object_get(l, "name"), "supercategory", parent ? parent : ""));
        }
        json_t *info = json_pack("{s:O, s:O, s:O, s:s, s:O}", "description", json_object_get(e->version, "name"),
                                 "version", json_object_get(e->version, "content_hash"), "date_created",
                                 json_object_get(e->version, "created_at"), "contributor", "AutoCV", "task",
                                 json_object_get(e->version, "task"));
        rc = sb_str(&e->text, "{\"info\":");
        if (!rc) rc = sb_json(&e->text, info);
        if (!rc) rc = sb_str(&e->text, ",\"licenses\":[],\"categories\":");
        if (!rc) rc = sb_json(&e->text, cats);
        if (!rc) rc = sb_str(&e->text, ",\"images\":[");
        json_decref(cats);
        json_decref(info);
        pass_reset(e);
        e->first = true;
        e->ann_id = 0;
        e->sub = 1;
        return rc ? rc : flush_text(e);
    }
    for (int k = 0; !rc && k < PAGE; k++) {
        json_t *it;
        if ((rc = next_item(e, e->split, &it))) break;
        if (!it) {
            rc = sb_str(&e->text, e->sub == 1 ? "],\"annotations\":[" : "]}\n");
            if (!rc && e->sub == 2) {
                rc = flush_text(e);
                if (!rc) rc = entry_end(e);
                e->split++;
                e->sub = 0;
            } else if (!rc) {
                e->sub = 2;
                e->first = true;
            }
            pass_reset(e);
            break;
        }
        if (e->sub == 1) {
            char file[160];
            if ((rc = image_file_name(e, it, file))) break;
            json_t *im = json_pack("{s:O, s:s, s:O, s:O}", "id", json_object_get(it, "image_id"), "file_name", file,
                                   "width", json_object_get(it, "width"), "height", json_object_get(it, "height"));
            if (!e->first) rc = sb_str(&e->text, ",");
            e->first = false;
            if (!rc) rc = im ? sb_json(&e->text, im) : acv_error(ACV_ENOMEM, "out of memory");
            json_decref(im);
        } else {
            rc = coco_annotations(e, it);
        }
    }
    if (!rc && e->sub) rc = flush_text(e);
    return rc;
}

/* PH_SETS: VOC's ImageSets/Main/<split>.txt, one page per step. */
static int step_sets(acv_export *e, bool *phase_done)
{
    int rc = 0;
    if (e->sub == 0) {
        e->split = next_split(e, e->split);
        if (e->split == 3) {
            *phase_done = true;
            return 0;
        }
        char path[64];
        snprintf(path, sizeof path, "ImageSets/Main/%s.txt", SPLITS[e->split]);
        pass_reset(e);
        e->sub = 1;
        return entry_begin(e, path, -1, false);
    }
    for (int k = 0; !rc && k < PAGE; k++) {
        json_t *it;
        if ((rc = next_item(e, e->split, &it))) break;
        if (!it) {
            rc = flush_text(e);
            if (!rc) rc = entry_end(e);
            e->split++;
            e->sub = 0;
            pass_reset(e);
            return rc;
        }
        char stem[128];
        stem_of(it, stem);
        rc = sb_printf(&e->text, "%s\n", stem);
    }
    return rc ? rc : flush_text(e);
}

/* PH_YAML: YOLO's data.yaml (names as JSON strings, which YAML reads as quoted scalars). */
static int step_yaml(acv_export *e)
{
    int rc = sb_str(&e->text, "# AutoCV dataset version ");
    if (!rc) rc = sb_json(&e->text, json_object_get(e->version, "name"));
    if (!rc)
        rc = sb_printf(&e->text, " (id %lld, task %s, content hash %s)\npath: .\n", (long long)e->version_id,
                       json_string_value(json_object_get(e->version, "task")),
                       json_string_value(json_object_get(e->version, "content_hash")));
    for (int s = 0; !rc && s < 3; s++)
        if (e->nsplit[s]) rc = sb_printf(&e->text, "%s: images/%s\n", SPLITS[s], SPLITS[s]);
    if (!rc) rc = sb_printf(&e->text, "nc: %zu\nnames:\n", e->nlabels);
    for (size_t k = 0; !rc && k < e->nlabels; k++) {
        json_t *js = json_string(e->names[k]);
        rc = sb_printf(&e->text, "  %zu: ", k);
        if (!rc) rc = sb_json(&e->text, js);
        if (!rc) rc = sb_str(&e->text, "\n");
        json_decref(js);
    }
    return rc ? rc : entry_text(e, "data.yaml");
}

static int step(acv_export *e)
{
    int phase = PHASES[e->fmt][e->iphase], rc = 0;
    bool done = false;
    switch (phase) {
    case PH_JSON: rc = step_json(e, &done); break;
    case PH_ITEMS: rc = step_items(e, &done); break;
    case PH_SETS: rc = step_sets(e, &done); break;
    case PH_YAML:
        rc = step_yaml(e);
        done = true;
        break;
    case PH_CLOSE:
        if (archive_write_close(e->ar) != ARCHIVE_OK) rc = arch_err(e, "closing the archive");
        done = true;
        break;
    default: return 0;
    }
    if (!rc && done) {
        e->iphase++;
        e->split = e->sub = 0;
        pass_reset(e);
    }
    return rc;
}

ssize_t acv_export_read(acv_export *e, char *buf, size_t max)
{
    if (e->failed) return acv_error(ACV_EINVAL, "the export already failed");
    while (e->out_pos == e->out.n && PHASES[e->fmt][e->iphase] != PH_END) {
        e->out.n = e->out_pos = 0;
        int rc = step(e);
        if (rc) {
            e->failed = true;
            return rc;
        }
    }
    size_t n = e->out.n - e->out_pos;
    if (n > max) n = max;
    memcpy(buf, e->out.p + e->out_pos, n);
    e->out_pos += n;
    return (ssize_t)n;
}

/* ---- open / free -------------------------------------------------------------------------- */

static int64_t iso_unix(const char *s)
{
    struct tm tm = {0};
    if (!s || sscanf(s, "%d-%d-%dT%d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
                     &tm.tm_sec) != 6)
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm);
}

/* A label name as a folder name: '/', '\' and control characters become '_', and so does a
 * leading '.' (hidden folders are skipped by ImageFolder readers). */
static char *folder_of(const char *name)
{
    char *d = strdup(name);
    if (!d) return NULL;
    for (char *p = d; *p; p++)
        if (*p == '/' || *p == '\\' || (unsigned char)*p < 0x20) *p = '_';
    if (d[0] == '.') d[0] = '_';
    return d;
}

int acv_export_open(acv_dbconn *c, acv_db *db, acv_blobs *b, int64_t version_id, acv_export_format f,
                    acv_export **out)
{
    *out = NULL;
    acv_export *e = calloc(1, sizeof *e);
    if (!e) return acv_error(ACV_ENOMEM, "out of memory");
    e->db = db;
    e->blobs = b;
    e->fmt = f;
    e->version_id = version_id;
    int rc = acv_version_get(c, version_id, &e->version);
    const char *task = rc ? "" : json_string_value(json_object_get(e->version, "task"));
    bool cls = !strcmp(task, "cls");
    if (!rc && cls != (f == ACV_EXPORT_IMAGEFOLDER))
        rc = acv_error(ACV_EUNSUPPORTED, "dataset version %lld is a %s version: %s", (long long)version_id, task,
                       cls ? "a classification version exports as imagefolder"
                           : "imagefolder is for classification; use coco, yolo or voc");
    json_t *labels = rc ? NULL : json_object_get(e->version, "labels");
    e->nlabels = json_array_size(labels);
    if (!rc && e->nlabels) {
        e->names = calloc(e->nlabels, sizeof *e->names);
        e->dirs = calloc(e->nlabels, sizeof *e->dirs);
        if (!e->names || !e->dirs) rc = acv_error(ACV_ENOMEM, "out of memory");
    }
    for (size_t i = 0; !rc && i < e->nlabels; i++) {
        e->names[i] = json_string_value(json_object_get(json_array_get(labels, i), "name"));
        if (!e->names[i] || (i && strcmp(e->names[i - 1], e->names[i]) >= 0))
            rc = acv_error(ACV_EFORMAT, "dataset version %lld: its label list is not sorted by name", (long long)version_id);
        else if (!(e->dirs[i] = folder_of(e->names[i]))) rc = acv_error(ACV_ENOMEM, "out of memory");
    }
    for (size_t i = 0; !rc && f == ACV_EXPORT_IMAGEFOLDER && i < e->nlabels; i++)
        for (size_t j = 0; !rc && j < i; j++)
            if (!strcmp(e->dirs[i], e->dirs[j]))
                rc = acv_error(ACV_EUNSUPPORTED, "labels '%s' and '%s' would share the folder '%s'; rename one of them",
                               e->names[j], e->names[i], e->dirs[i]);
    if (!rc) {
        json_t *im = json_object_get(json_object_get(e->version, "counts"), "images");
        for (int s = 0; s < 3; s++) e->nsplit[s] = json_integer_value(json_object_get(im, SPLITS[s]));
        e->mtime = (time_t)iso_unix(json_string_value(json_object_get(e->version, "created_at")));
        const char *name = json_string_value(json_object_get(e->version, "name"));
        size_t n = 0;
        for (const char *p = name; p && *p && n < 100; p++) {
            unsigned char ch = (unsigned char)*p;
            bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
                      ch == '_' || ch == '.';
            e->filename[n++] = ok ? (char)ch : '_';
        }
        snprintf(e->filename + n, sizeof e->filename - n, "%s-%s.zip", n ? "" : "dataset", FORMATS[f]);
        e->ar = archive_write_new();
        if (!e->ar) rc = acv_error(ACV_ENOMEM, "out of memory");
    }
    if (!rc && (archive_write_set_format_zip(e->ar) != ARCHIVE_OK ||
                archive_write_set_format_option(e->ar, "zip", "hdrcharset", "UTF-8") < ARCHIVE_WARN ||
                archive_write_set_bytes_per_block(e->ar, 0) != ARCHIVE_OK ||
                archive_write_open2(e->ar, e, NULL, on_write, NULL, NULL) != ARCHIVE_OK))
        rc = arch_err(e, "starting the zip");
    if (rc) {
        acv_export_free(e);
        return rc;
    }
    *out = e;
    return 0;
}

void acv_export_free(acv_export *e)
{
    if (!e) return;
    if (e->ar) archive_write_free(e->ar); /* may still write through on_write */
    if (e->f) fclose(e->f);
    for (size_t i = 0; e->dirs && i < e->nlabels; i++) free(e->dirs[i]);
    free(e->dirs);
    free(e->names);
    json_decref(e->cur);
    json_decref(e->page);
    json_decref(e->version);
    free(e->out.p);
    free(e->text.p);
    free(e);
}
