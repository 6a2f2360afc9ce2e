/* Internals of archive imports shared by imports.c and the import_*.c files: the extracted
 * archive (import_archive.c), the import plan that a layout reader fills (import_coco.c,
 * import_yolo.c, import_voc.c, import_folder.c), and small helpers for building annotation
 * documents (import_folder.c). Not a public interface. */
#ifndef ACV_PLATFORM_IMPORT_INTERNAL_H
#define ACV_PLATFORM_IMPORT_INTERNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "platform/images.h"
#include "platform/imports.h"

/* ---- the extracted archive (import_archive.c) ---- */

/* One regular file of the archive, extracted to a temporary file named by its index (never
 * by the untrusted entry name). */
typedef struct acv__entry {
    char *path;      /* normalized relative path: no leading '/', no '.', '..' or empty parts */
    char *tmp;       /* the extracted bytes (NULL once an image stage consumed it) */
    int64_t size;
    bool used;       /* claimed by a plan item */
} acv__entry;

typedef struct acv__archive {
    acv__entry *e;   /* sorted by path */
    size_t n;
    char *dir;       /* the temporary directory holding the extracted files */
    int64_t bytes;   /* decompressed bytes in all */
    int64_t ignored; /* entries skipped as junk (__MACOSX, hidden files, directories) */
    size_t *by_base; /* entry indices sorted by file name (built on first use) */
} acv__archive;

/* Reads the archive at path (zip, or tar optionally gzip/bzip2/xz-compressed) into a new
 * directory under tmp_dir, enforcing lim: hostile or malformed archives are ACV_EINVAL
 * (absolute or '..' paths, links, devices, encrypted or duplicate entries, not an archive),
 * ACV_ERANGE (too many entries, an entry or the total too large, a decompression ratio
 * typical of a zip bomb, not enough disk space), ACV_EFORMAT (corrupt data). Nothing is left
 * on disk on failure. A single top-level folder holding the whole tree is stripped. */
int acv__archive_extract(const char *path, const char *tmp_dir, const acv_import_limits *lim, acv__archive *out);
/* Removes the temporary directory and frees a. */
void acv__archive_free(acv__archive *a);
/* The entry with exactly this path, or NULL. */
acv__entry *acv__archive_find(const acv__archive *a, const char *path);
/* The only entry whose file name (last part) is name, or NULL when none or several. */
acv__entry *acv__archive_find_base(acv__archive *a, const char *name);
/* The image dir/stem.<ext> (.jpg, .jpeg, .png, .bmp in any case; the first of them when several
 * exist), or NULL. dir "" is the archive root. */
acv__entry *acv__archive_find_stem(const acv__archive *a, const char *dir, const char *stem);
/* Some entry lies under folder dir. */
bool acv__archive_has_dir(const acv__archive *a, const char *dir);
/* Reads an extracted entry (up to max bytes) into a NUL-terminated malloc'd buffer. */
int acv__entry_read(const acv__entry *e, size_t max, char **out, size_t *len);

/* ---- paths ---- */
/* Joins dir and rel ("" dir: rel alone), resolving "." and ".." inside rel; NULL when the
 * result would leave the archive root. malloc'd. */
char *acv__path_join(const char *dir, const char *rel);
/* The directory part of path ("" at the root), malloc'd. */
char *acv__path_dir(const char *path);
/* The last part of path (points into path). */
const char *acv__path_base(const char *path);
/* True for .jpg .jpeg .png .bmp (any case). */
bool acv__is_image_name(const char *path);
/* True for image formats the decoder does not read (.webp .tif .gif .heic .avif ...): reported,
 * never silently passed over. */
bool acv__is_other_image_name(const char *path);
/* The last part's extension is ext (without the dot, any case). */
bool acv__has_ext(const char *path, const char *ext);

/* ---- the plan a layout reader fills ---- */
typedef struct acv__plan acv__plan;

typedef struct acv__item {
    acv__entry *img;         /* the image file */
    json_t *raw;             /* owned: what the layout needs to build the document */
    acv_image_staged st;     /* filled by imports.c */
    int width, height;
    int64_t image_id;
    bool skip;
    json_t *doc;             /* {"tags":[...],"shapes":[...]} built by plan->convert */
} acv__item;

struct acv__plan {
    const char *format;      /* "imagefolder", "coco", "yolo", "voc", "images" */
    acv__item *items;
    size_t n, cap;
    json_t *labels;          /* class names in order, unique (array of strings) */
    json_t *skipped;         /* [{"path","reason"}] (the first ACV_IMPORT_SKIPPED_MAX) */
    int64_t nskipped;
    json_t *layout;          /* layout-wide data for convert (owned), or NULL */
    int64_t difficult;       /* objects marked difficult (imported with the shape's "difficult" flag) */
    int64_t crowd;           /* crowd annotations (imported with the shape's "iscrowd" flag) */
    /* Builds it->doc for an image of w x h pixels. Returns 0, or ACV_EINVAL with the reason
     * to skip this image (other codes fail the import). */
    int (*convert)(acv__plan *p, acv__item *it, int w, int h);
};

/* Adds an item for image entry e (claiming it); raw is stolen. Returns the item or NULL
 * (out of memory; raw released). An entry already claimed is recorded as skipped and NULL
 * returned with *dup set. */
acv__item *acv__plan_add(acv__plan *p, acv__entry *e, json_t *raw, bool *dup);
/* Records a skipped file (or annotation) with its reason. */
void acv__plan_skip(acv__plan *p, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Adds a class name to p->labels unless present (trimmed; "" is refused with ACV_EINVAL);
 * *canon (may be NULL) points at the stored name (valid while p->labels lives). */
int acv__plan_label(acv__plan *p, const char *name, const char **canon);

/* Layout readers: each returns 0 with *found false when the archive is not in its layout,
 * 0 with *found true and the plan filled, or an error that fails the import. */
int acv__plan_voc(acv__archive *a, acv__plan *p, bool *found);
int acv__plan_coco(acv__archive *a, acv__plan *p, bool *found);
int acv__plan_yolo(acv__archive *a, acv__plan *p, bool *found);
int acv__plan_folder(acv__archive *a, acv__plan *p, bool *found); /* ImageFolder, or plain images */

/* ---- document helpers ---- */
/* A number rounded to 1/100 pixel. */
json_t *acv__num(double v);
/* A new box shape clamped to the image; NULL (with *why) when nothing is left of it. */
json_t *acv__box(const char *label, double x, double y, double w, double h, int iw, int ih, const char **why);
/* A new polygon shape from n points (xy interleaved), clamped to the image; NULL (with *why)
 * when it has fewer than 3 points or no area. */
json_t *acv__polygon(const char *label, const double *xy, int n, int iw, int ih, const char **why);
/* A new document {"tags":[],"shapes":[]}. */
json_t *acv__doc_new(void);

#endif
