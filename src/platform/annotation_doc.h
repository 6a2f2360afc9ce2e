/* Annotation documents: the JSON an annotator saves for one image, checked against the
 * image's size, the annotation set's task and the project's labels; COCO run-length masks;
 * and the geometry exports need (bounding boxes, areas, mask outlines). No database here:
 * label names are resolved through a callback, so all of it is unit-tested on its own.
 *
 * A document as the API shows it:
 *   {"tags":["ok",...],
 *    "shapes":[{"type":"box","label":"scratch","x":10,"y":5,"w":20,"h":8},
 *              {"type":"polygon","label":"dent","points":[[x,y],[x,y],[x,y],...]},
 *              {"type":"mask","label":"rust","rle":{"size":[h,w],"counts":[...] or "..."}},
 *              {"type":"text","label":"serial","points":[[x,y]x4],"text":"A-1234"}]}
 * Every shape may carry "source":"human"|"model" (default human), "score" in [0,1], and the
 * flags "difficult" (Pascal VOC) and "iscrowd" (COCO), booleans kept only when true.
 * Coordinates are pixels in the continuous frame [0,width] x [0,height] (x right, y down);
 * a box covers [x, x+w) x [y, y+h). Masks are COCO RLE: column-major runs starting with
 * background, counts either a list of integers or COCO's compressed string.
 *
 * Stored form (annotation_items.doc_json, also read by image filters and written by
 * imports): the same JSON, labels by their canonical name (an alias given on input is
 * replaced by its label's name), "source" always present, numbers as reals. */
#ifndef ACV_PLATFORM_ANNOTATION_DOC_H
#define ACV_PLATFORM_ANNOTATION_DOC_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { ACV_ANN_CLS, ACV_ANN_DET, ACV_ANN_SEG, ACV_ANN_OCR } acv_ann_task;

#define ACV_ANN_MAX_TAGS 1000
#define ACV_ANN_MAX_SHAPES 10000
#define ACV_ANN_MAX_POINTS 10000
#define ACV_ANN_MAX_TEXT 10000

/* "cls" | "det" | "seg" | "ocr"; ACV_EINVAL naming the value otherwise. */
int acv_ann_task_parse(const char *s, acv_ann_task *t);
const char *acv_ann_task_name(acv_ann_task t);

/* Resolves a label name or alias: sets *canon to the label's name (a string that stays
 * valid until validation returns). Returns 0, or ACV_EINVAL with a message saying why the
 * name is not a label (unknown, an ambiguous alias); the validator prefixes where the name
 * appeared. */
typedef int (*acv_ann_resolve_fn)(void *ud, const char *name, const char **canon);

/* Checks an API document and converts it to the stored form (*out, new reference).
 * `in` may hold other keys only when they are listed in `ignore` (NULL-terminated, may be
 * NULL): e.g. the revision and the read-only fields a GET returned. Errors name the place
 * ("shapes[3].w: ..."): ACV_EFORMAT (400) for a wrong type or a missing field, ACV_EINVAL
 * (422) for a value that breaks a rule: outside the image, an unknown label, a shape type
 * the task does not allow (cls: tags only; det: boxes; seg: polygons and masks; ocr: text
 * lines), a mask whose size is not the image's or whose runs do not cover it exactly.
 * A tag given twice is kept once. */
int acv_ann_doc_validate(const json_t *in, acv_ann_task task, int width, int height, acv_ann_resolve_fn resolve,
                         void *ud, const char *const *ignore, json_t **out);

/* The distinct label names a document uses (tags and shape labels) as a new JSON object
 * {name: true}. */
json_t *acv_ann_doc_labels(const json_t *doc);

/* ---- COCO run-length encoding ---- */

/* Decodes "counts" (an array of non-negative integers, or the compressed string) into run
 * lengths (*runs malloc'd, *n entries). ACV_EFORMAT/ACV_EINVAL on a malformed value. */
int acv_rle_runs(const json_t *counts, uint32_t **runs, size_t *n);
/* The compressed COCO string of runs (malloc'd, NUL-terminated). */
char *acv_rle_encode_string(const uint32_t *runs, size_t n);
/* The runs of a column-major h x w mask of 0/1 bytes (*runs malloc'd). */
int acv_rle_from_mask(const uint8_t *mask, int h, int w, uint32_t **runs, size_t *n);
/* Expands runs into a column-major h x w mask (*mask malloc'd). The runs must sum to h*w. */
int acv_rle_to_mask(const uint32_t *runs, size_t n, int h, int w, uint8_t **mask);

/* ---- geometry of API-form shapes (validated) ---- */

/* The bounding box {x, y, w, h} and area of a shape: a box's own; a polygon's extent and
 * shoelace area; a mask's foreground pixels; a text line's quadrilateral. */
int acv_ann_shape_bbox(const json_t *shape, double box[4], double *area);

/* Outer outlines of the 4-connected foreground regions of a column-major h x w mask, as
 * polygons along pixel edges (vertices at pixel corners, collinear points dropped): *polys
 * is a new JSON array of [[x,y],...] arrays, one per region (holes are not outlined). */
int acv_mask_outlines(const uint8_t *mask, int h, int w, json_t **polys);

#endif
