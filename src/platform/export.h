/* Exports a dataset version as a zip archive, produced piece by piece so that a server can
 * stream it: the caller pulls bytes with acv_export_read and nothing larger than one image
 * chunk (64 KiB) or one page of annotations is ever held in memory; nothing is written to
 * disk. The archive is written by libarchive (zip; images stored, text deflated), and the
 * same version always gives the same bytes (entry times are the version's creation time).
 *
 * Layouts (image files are named "<image id>_<original name>", extension from the content):
 *   imagefolder (cls versions)       train/<class>/<file>, val/<class>/..., test/<class>/...
 *                                    (the class is the first tag; `autocv train --data` reads
 *                                    the unzipped folder as it is)
 *   coco (det, seg, ocr)             annotations/instances_<split>.json, images/<split>/<file>
 *   yolo (det, seg, ocr)             images/<split>/<file>, labels/<split>/<stem>.txt, data.yaml
 *                                    (det: "class cx cy w h"; seg: "class x1 y1 x2 y2 ...",
 *                                    masks outlined; ocr: "class x1 y1 ... x4 y4"; normalized)
 *   voc (det, seg, ocr)              Annotations/<stem>.xml, JPEGImages/<file>,
 *                                    ImageSets/Main/<split>.txt (shapes as bounding boxes)
 * Class indices follow the version's label list (sorted by name): YOLO class k is label k,
 * COCO category k+1. Splits without images are left out. */
#ifndef ACV_PLATFORM_EXPORT_H
#define ACV_PLATFORM_EXPORT_H

#include <stdint.h>
#include <sys/types.h>

#include "platform/blobs.h"
#include "platform/db.h"

typedef enum { ACV_EXPORT_COCO, ACV_EXPORT_YOLO, ACV_EXPORT_VOC, ACV_EXPORT_IMAGEFOLDER } acv_export_format;

/* "coco", "yolo", "voc", "imagefolder"; ACV_EINVAL naming the value otherwise. */
int acv_export_format_parse(const char *s, acv_export_format *f);

typedef struct acv_export acv_export;

/* Prepares the export of version_id in format f: reads the version through c (the caller's
 * connection, only during this call); image bytes come from the blob store b (borrowed: it
 * must outlive the export). Later reads take a connection from db for each page of items,
 * so none is held between pulls.
 * ACV_ENOTFOUND for no such version; ACV_EUNSUPPORTED when the format does not fit the
 * version's task (imagefolder is for cls, the others for det, seg and ocr). */
int acv_export_open(acv_dbconn *c, acv_db *db, acv_blobs *b, int64_t version_id, acv_export_format f,
                    acv_export **out);
/* A file name for the download: "<version name>-<format>.zip", reduced to safe characters. */
const char *acv_export_filename(const acv_export *e);
/* Copies up to max bytes of the archive into buf: the count (> 0), 0 at the end, or a
 * negative ACV_E* code (a missing blob file, a database error) after which the export is
 * unusable. */
ssize_t acv_export_read(acv_export *e, char *buf, size_t max);
void acv_export_free(acv_export *e);

#endif
