/* Materializes a dataset version on disk in the layout the `autocv` commands read, for the
 * jobs that train and evaluate on it. Image files are hard links to the blob store (a copy
 * when the folders sit on different file systems), so this costs no space and little time.
 *
 * cls versions become an ImageFolder tree:
 *   DIR/train/<class>/<image id>.<ext>, DIR/val/..., DIR/test/...
 *   DIR/classes.txt   the class names, one per line, in class-index order
 * where <class> is the class index as four digits ("0000"), so any label name works; the
 * dataset reader takes the names from classes.txt. Every class of the version gets a folder
 * in every split that has images (possibly empty: the reader then still sees every class).
 * det versions become a COCO tree:
 *   DIR/annotations/instances_<split>.json, DIR/images/<split>/<image id>.<ext>
 * with category k + 1 for label k (the version's label order) and one annotation per shape
 * (its bounding box).
 * The tree is written beside DIR and renamed into place, so DIR is whole or absent. */
#ifndef ACV_PLATFORM_MATERIALIZE_H
#define ACV_PLATFORM_MATERIALIZE_H

#include <stdint.h>

#include "platform/blobs.h"
#include "platform/db.h"

/* Writes version_id to dir (replacing what is there). counts (optional) gets the images per
 * split {train, val, test}. ACV_ENOTFOUND for no such version, ACV_EUNSUPPORTED for a task
 * that has no on-disk layout yet. */
int acv_version_materialize(acv_dbconn *c, acv_blobs *b, int64_t version_id, const char *dir, int64_t counts[3]);

#endif
