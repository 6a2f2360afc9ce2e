/* Detection datasets on disk: COCO JSON, YOLO and Pascal VOC, read into one in-memory form and
 * written back out, so that any format converts to any other without losing a box or a class.
 *
 * Layouts (detected in this order by acv_det_dataset_open when format is NULL):
 *   voc   DIR/Annotations/<stem>.xml + DIR/JPEGImages/<file> [+ DIR/ImageSets/Main/<split>.txt]
 *         [+ DIR/labels.txt: the class names in order, one a line]
 *   coco  DIR/annotations/instances_<split>.json + DIR/images/<split>/<file> (also DIR/<split>/,
 *         DIR/images/, DIR/), DIR/<split>/_annotations.coco.json with the images beside it
 *         (Roboflow), one DIR/_annotations.coco.json or DIR/result.json (Label Studio), or a
 *         path to a COCO JSON file itself (images resolved relative to it or to an images/
 *         folder beside it)
 *   yolo  DIR/data.yaml (names, nc; optional path/train/val/test, each a folder, a .txt list or
 *         a list of them) + DIR/images/<split>/<file> + DIR/labels/<split>/<stem>.txt
 *         ("class cx cy w h", normalized), also classes.txt / obj.names for the names; see
 *         det_yolo.c for the data.yaml details
 * Class indices are 0..k-1 in the dataset's own order (COCO: categories sorted by id, so
 * non-contiguous ids map to contiguous indices and back, less Roboflow's dataset-level
 * category: "supercategory": "none" and the supercategory of another, it labels nothing;
 * VOC: labels.txt when present, else the names of all annotation files sorted byte-wise);
 * images without objects are kept.
 *
 * Coordinates: boxes are pixels in the continuous frame of vision/box.h. COCO's [x,y,w,h] maps
 * to x1 = x, x2 = x + w. VOC's bndbox holds 1-based inclusive pixel indices (the devkit's
 * convention, and Detectron2's reading), so x1 = xmin - 1, x2 = xmax (the platform's VOC
 * import and export do the same); fractional values are read and written as they are. VOC
 * <part> elements are not objects; a <size> missing or 0 is read from the image. YOLO's normalized cx cy w h are
 * scaled by the image size, which is read from the image file's header (EXIF-rotated JPEGs
 * report their displayed size, as the decoder does) and written with 8 significant digits.
 *
 * Flags: COCO iscrowd <-> ACV_BOX_CROWD, VOC difficult <-> ACV_BOX_DIFFICULT. Each format also
 * carries the other flag as an AutoCV extension that other tools ignore: a "difficult": 1
 * field in a COCO annotation, an <iscrowd>1</iscrowd> element in a VOC object. YOLO carries
 * neither (both are lost). COCO category ids survive only COCO -> COCO; YOLO and VOC have no
 * ids, so a dataset read from them gets ids 1..k. COCO "area" and "segmentation" (polygons,
 * RLE) are not read (boxes carry none); "area" is written as w * h, with the box as a 4-point
 * polygon for "segmentation". VOC truncated/occluded/pose are not kept.
 *
 * Bad labels are an ACV_EFORMAT error naming the file and line (COCO: the annotation id and
 * its index; VOC: the XML line of the object), unless skip_bad is set: then the bad box (or
 * image, for a missing or unreadable image or annotation file) is dropped and counted in
 * bad_labels, and first_bad says where the first one was. Bad labels are:
 *   - a box outside the image by more than 1 pixel on any side (within 1 pixel it is clamped
 *     to the image, which also absorbs 0-based VOC files);
 *   - a zero or negative width or height, or a coordinate that is not a finite number;
 *   - an unknown class: a YOLO index outside 0..k-1, a COCO category id not in categories,
 *     a VOC name not in labels.txt (without labels.txt every name is a class);
 *   - a malformed line or field (YOLO: not "class cx cy w h" with numbers, or a polygon
 *     "class x1 y1 x2 y2 x3 y3 ..." whose bounding box is taken; COCO: an annotation without a
 *     4-number bbox, an image_id that is no image; VOC: an object without name or bndbox);
 *   - a missing image file (COCO, VOC, a YOLO .txt list), an image file in a format the
 *     decoder does not read (YOLO folders list .webp, .tif ... so that they are reported), or
 *     a VOC ImageSets line naming no annotation file.
 * A file that cannot be parsed at all (COCO JSON, data.yaml) is always an error; a malformed
 * VOC XML is one bad label (its image is dropped with skip_bad).
 *
 * Splits: every image has one ("train", "val", "test", or as the source names it, e.g.
 * "train2017"; "" when the source has none). A request for "val" also matches "valid",
 * "validation" and "val<digits>" (likewise for the others); a source without splits, and
 * CVAT's "default" subset, answer to "train". Writing puts an image without a split in
 * "train". */
#ifndef ACV_DATA_DET_DATASET_H
#define ACV_DATA_DET_DATASET_H

#include <stdbool.h>
#include <stdint.h>

#include "vision/box.h"

typedef struct acv_det_image {
    char *path;          /* image file */
    char *file_name;     /* as the annotation names it (relative to the split's image folder) */
    int64_t id;          /* COCO image id (or 1-based index) */
    int w, h;            /* size in pixels (from the annotation; from the file when missing) */
    int n;               /* boxes */
    acv_box *boxes;      /* in pixels; score 1 */
    char split[32];      /* the split it came from ("" when the source has none) */
} acv_det_image;

typedef struct acv_det_dataset {
    char format[8];      /* "coco", "yolo", "voc" */
    int k;               /* classes */
    char **names;        /* k class names (distinct) */
    int64_t *cat_ids;    /* k COCO category ids, ascending (1..k when the source had none) */
    int n;               /* images */
    acv_det_image *images;
    int64_t bad_labels;  /* skipped with skip_bad */
    char first_bad[512]; /* where the first skipped label was, and why */
} acv_det_dataset;

typedef struct acv_det_open_opts {
    const char *format;  /* NULL: detect */
    bool skip_bad;       /* drop bad boxes (counted) instead of failing */
} acv_det_open_opts;

/* Opens split ("train", "val", "test"; NULL or "all": every split found, or the only one) of
 * the dataset at path; opts may be NULL (detect, fail on bad labels). A COCO JSON file given
 * directly is read whole whatever split is asked for. Errors: ACV_ENOTFOUND (no path, no
 * dataset layout, no such split: the message lists those found), ACV_EFORMAT (bad labels,
 * unparseable files), ACV_EINVAL (unknown format), ACV_EIO, ACV_ENOMEM. On success *out is
 * owned by the caller (acv_det_dataset_free). */
int acv_det_dataset_open(const char *path, const char *split, const acv_det_open_opts *opts, acv_det_dataset **out);
void acv_det_dataset_free(acv_det_dataset *ds);
/* The format at path ("coco", "yolo", "voc"), or NULL when none is recognised. */
const char *acv_det_dataset_detect(const char *path);
/* Writes ds as format ("coco", "yolo", "voc") under dir (created) as split, or, when split is
 * NULL, each image in its own split. Images are hard linked when possible, else copied;
 * existing files of the same names are replaced. Layouts written:
 *   coco  annotations/instances_<split>.json, images/<split>/<file_name>
 *   yolo  images/<split>/<file_name>, labels/<split>/<stem>.txt (empty for an image without
 *         objects), data.yaml (names as an index map; a key per split folder under images/)
 *   voc   JPEGImages/<file>, Annotations/<stem>.xml, ImageSets/Main/<split>.txt, labels.txt
 * VOC keeps one folder for all splits and no subfolders: '/' in file_name becomes '_', and
 * images whose stems would still coincide get their split as a prefix ("val_a.png"). Two
 * images that would otherwise land on the same file (a.png and a.jpg share a YOLO label file)
 * are ACV_EEXIST; an unsafe file_name ("..", absolute) is written under its last part.
 * Errors: ACV_EINVAL (format, a class name VOC or YOLO cannot hold), ACV_EEXIST, ACV_EIO. */
int acv_det_dataset_write(const acv_det_dataset *ds, const char *format, const char *dir, const char *split);

#endif
