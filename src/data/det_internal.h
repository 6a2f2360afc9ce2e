/* Internals of detection datasets shared by det_dataset.c (opening, checks, image sizes,
 * file placement) and the per-format readers and writers det_coco.c, det_yolo.c and
 * det_voc.c. Not a public interface. */
#ifndef ACV_DATA_DET_INTERNAL_H
#define ACV_DATA_DET_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "data/det_dataset.h"

/* Boxes may poke out of the image by this many pixels; they are clamped. */
#define ACV__DET_TOL 1.0

/* A dataset under construction. */
typedef struct acv__det_build {
    acv_det_dataset *ds;
    bool skip_bad;
    int cap;                 /* images allocated */
} acv__det_build;

/* A bad label: with skip_bad it is counted (the first message kept in first_bad) and 0 is
 * returned, so the caller drops it; otherwise ACV_EFORMAT with the message. */
int acv__det_bad(acv__det_build *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends an image (strings copied; split may be NULL); NULL when out of memory (error set). */
acv_det_image *acv__det_add_image(acv__det_build *b, const char *path, const char *file_name, int64_t id, int w,
                                  int h, const char *split);
/* Checks box (class already resolved) against im's size and appends it: clamped when it pokes
 * out by at most ACV__DET_TOL. where ("file:line") starts the message of a bad box. Returns 0
 * (added or skipped as bad) or an error. */
int acv__det_push_box(acv__det_build *b, acv_det_image *im, acv_box box, const char *where);
/* Sets the class list (copied); ids NULL: 1..k. */
int acv__det_set_classes(acv_det_dataset *ds, int k, char *const *names, const int64_t *ids);
/* The class index of name, or -1 (linear; the readers build their own index when k is big). */
int acv__det_class_of(const acv_det_dataset *ds, const char *name);

/* Width and height of an image file as the decoder would give them, from its header (JPEG,
 * PNG, BMP; a full decode for anything else). */
int acv__det_image_size(const char *path, int *w, int *h);
/* True for .jpg .jpeg .png .bmp (any case). */
bool acv__det_is_image_name(const char *name);
/* True for image files the decoder cannot read (.webp .tif .tiff .gif .heic ..., any case):
 * listed so that they are reported, not silently left out. */
bool acv__det_is_other_image_name(const char *name);
/* The image files under dir (recursively, hidden entries skipped; both kinds above), as paths
 * relative to dir, sorted byte-wise; *out is a malloc'd array of malloc'd strings. */
int acv__det_list_images(const char *dir, char ***out, int *n);
void acv__det_free_list(char **v, int n);
/* A malloc'd formatted string (NULL when out of memory). */
char *acv__det_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Does split name have (from the source) answer a request for want? ("val" finds "valid",
 * "validation", "val2017"; "train" also finds "" (no split) and CVAT's "default".) */
bool acv__det_split_match(const char *have, const char *want);
/* Is want NULL, "" or "all"? */
bool acv__det_split_all(const char *want);
/* An ACV_ENOTFOUND naming path, want and the n splits found. */
int acv__det_no_split(const char *path, const char *want, char *const *found, int n);

/* ---- writing ---- */
/* The split an image is written in: split when given, else its own, "train" for none. */
const char *acv__det_out_split(const acv_det_image *im, const char *split);
#define ACV__DET_MAX_SPLITS 64
/* The distinct splits images are written in (acv__det_out_split), in order of first
 * appearance; one ("train" or split) when ds has no images. Returns how many, or
 * ACV_ERANGE past ACV__DET_MAX_SPLITS. */
int acv__det_splits(const acv_det_dataset *ds, const char *split, char out[][32]);
/* A safe relative path for file_name: "./" and leading '/' dropped; one with ".." parts or
 * empty is replaced by its last part. flat: '/' becomes '_'. Written into out (size n). */
void acv__det_safe_name(const char *file_name, bool flat, char *out, size_t n);
/* Makes dst (its folders created) the same file as src: a hard link, else a copy. An
 * existing dst is replaced. */
int acv__det_place(const char *src, const char *dst);
/* Writes text to path (its folders created), plain write (no fsync: many small files). */
int acv__det_write_text(const char *path, const char *text, size_t len);
/* Checks that no two images of ds land on the same relative path key(i): ACV_EEXIST naming
 * both. keys[i] are computed by the caller. */
int acv__det_check_unique(const acv_det_dataset *ds, char **keys, const char *what);
/* A growing text buffer (s NUL-terminated once anything was added; free(s) when done). */
typedef struct acv__det_sbuf {
    char *s;
    size_t n, cap;
} acv__det_sbuf;
int acv__det_sb_add(acv__det_sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* printf of a float coordinate: integral values as integers, else %.9g (exact for floats). */
void acv__det_num(char *out, size_t n, double v);

/* ---- formats ---- */
bool acv__det_is_coco(const char *path);
bool acv__det_is_yolo(const char *path);
bool acv__det_is_voc(const char *path);
int acv__det_open_coco(const char *path, const char *split, acv__det_build *b);
int acv__det_open_yolo(const char *path, const char *split, acv__det_build *b);
int acv__det_open_voc(const char *path, const char *split, acv__det_build *b);
int acv__det_write_coco(const acv_det_dataset *ds, const char *dir, const char *split);
int acv__det_write_yolo(const acv_det_dataset *ds, const char *dir, const char *split);
int acv__det_write_voc(const acv_det_dataset *ds, const char *dir, const char *split);

#endif
