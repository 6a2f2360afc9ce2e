/* Imports of existing datasets from a zip or tar archive (libarchive): images, labels and a
 * new annotation set holding the archive's annotations.
 *
 * Layouts, detected in this order:
 *   voc          Annotations/NAME.xml (Pascal VOC) with the images in JPEGImages/ beside it,
 *                or LabelImg's XML files beside their images;
 *   coco         a COCO JSON ({"images","annotations","categories"}), e.g.
 *                annotations/instances_<split>.json with images/<split>/..., Roboflow's
 *                <split>/_annotations.coco.json, Label Studio's result.json with images/, or
 *                anywhere with the images beside it or in an images/ folder beside it;
 *   yolo         images/... with labels/....txt beside (labels/ mirrors images/; Roboflow's
 *                <split>/images and <split>/labels), class names from data.yaml (names, nc;
 *                its train/val/test are checked against the archive) or classes.txt /
 *                obj.names;
 *   imagefolder  class folders: <class>/<image> (split folders train/, val/, test/ allowed);
 *   images       only images, no structure: imported without an annotation set.
 * Annotations become one document per image in a new set (task cls for imagefolder, seg when
 * a polygon or mask appears, det otherwise), status "submitted" so reviewers check them (in a
 * cls set an image without a class tag stays "new"): boxes {"type":"box","label","x","y","w",
 * "h"} and polygons {"type":"polygon","label","points":[[x,y],...]} in pixels of the image
 * as displayed, masks {"type":"mask","label","rle":{"size":[h,w],"counts":"..."}} (COCO
 * compressed RLE), class folders as tags; every shape has "source":"human". In a seg set a
 * plain box becomes its rectangle as a polygon (the task takes polygons and masks only).
 * Every document is checked by acv_ann_doc_validate (annotation_doc.h) before it is stored,
 * so it is one an annotator can load and save back; class names that are aliases of a label
 * use that label. VOC <difficult> / <iscrowd> and COCO "iscrowd" / "difficult" become the
 * shapes' "difficult" and "iscrowd" flags, and are counted in the summary ("difficult",
 * "crowd"). What each reader accepts from the tools that write these layouts (Ultralytics,
 * Roboflow, LabelImg, CVAT, Label Studio) is described at the top of import_yolo.c,
 * import_voc.c and import_coco.c and in docs/platform.md ("Imports").
 *
 * All or nothing: labels, images, the set and its items are written in one transaction; on
 * any failure it is rolled back and the blobs it stored are removed (blobs that other rows
 * use stay). The import itself is recorded in the `imports` table, failed ones too (with the
 * error). Images and annotations that cannot be read are skipped with a reason, the rest
 * imported; hostile or malformed archives fail the whole import (see acv__archive_extract). */
#ifndef ACV_PLATFORM_IMPORTS_H
#define ACV_PLATFORM_IMPORTS_H

#include <jansson.h>
#include <stdint.h>

#include "platform/auth.h"
#include "platform/blobs.h"
#include "platform/db.h"

#define ACV_IMPORT_SKIPPED_MAX 1000   /* skipped files listed in a result (all are counted) */
#define ACV_IMPORT_JSON_MAX (256 << 20) /* bytes in one annotation file (COCO JSON) */

typedef struct acv_import_limits {
    int64_t max_entries;     /* entries in the archive (100,000) */
    int64_t max_entry_bytes; /* decompressed bytes of one entry (1 GiB) */
    int64_t max_total_bytes; /* decompressed bytes in all (32 GiB) */
    double max_ratio;        /* decompressed bytes per archive byte, beyond a first 64 MiB (100) */
} acv_import_limits;

void acv_import_limits_default(acv_import_limits *lim);

typedef struct acv_import_args {
    int64_t project_id;
    const char *archive_path; /* the uploaded archive (left in place) */
    const char *filename;     /* its name as the client gave it ("" / NULL: "import") */
    const char *set_name;     /* NULL: from filename, made unique in the project */
    const char *tmp_dir;      /* where to extract (DATA/tmp) */
    const acv_import_limits *limits; /* NULL: defaults */
} acv_import_args;

/* Runs an import (synchronously) as described above. On success *result (new reference) is
 * {"import":{...},"set_id":N|null,"format":S,"images":N (new),"images_existing":N (already in
 * the project),"labels_created":N,"annotations":N (shapes and tags),"difficult":N,"crowd":N,
 * "skipped":[{"path","reason"}],"skipped_total":N}. Errors: ACV_EINVAL / ACV_EFORMAT (hostile, malformed or not
 * an archive, unreadable annotations file, no image found), ACV_ERANGE (size limits), others
 * internal. *import_id (may be NULL) names the import record, failed ones included (0 when
 * not even that could be written). */
int acv_import_run(acv_dbconn *c, acv_blobs *b, const acv_principal *who, const acv_import_args *args,
                   json_t **result, int64_t *import_id);

/* An import record: {"id","project_id","filename","format","status" ("running" |
 * "succeeded" | "failed"),"set_id","summary":{...},"error","created_by","created_at",
 * "finished_at"}. */
int acv_import_get(acv_dbconn *c, int64_t id, json_t **out);
int acv_import_project(acv_dbconn *c, int64_t id, int64_t *project_id);
/* A project's imports, newest first. */
int acv_import_list(acv_dbconn *c, int64_t project_id, int limit, int offset, json_t **items, int64_t *total);
/* At start: imports left "running" or "queued" by a stopped server are marked failed. */
int acv_import_recover(acv_dbconn *c);

#endif
