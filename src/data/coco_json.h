/* Reading the fields of a COCO document as other tools write them: the small helpers both COCO
 * readers share, the command line's (src/data/det_coco.c) and the platform's archive importer
 * (src/platform/import_coco.c). */
#ifndef ACV_DATA_COCO_JSON_H
#define ACV_DATA_COCO_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* An integer field, also written as a whole real (1.0), as some exporters do. False when the
 * key is absent or not such a number (*out untouched). */
bool acv_coco_int(const json_t *o, const char *key, int64_t *out);

/* A flag: true, or a nonzero number ("iscrowd": 1, "difficult": 1). */
bool acv_coco_flag(const json_t *o, const char *key);

/* Marks (flags[i]) Roboflow's dataset-level category in the categories array cats: its
 * supercategory is "none" and its name is the supercategory of other categories (id 0 in
 * Roboflow's exports). It names the dataset, not a class: no annotation uses it.
 * *flags: malloc'd, one per category (NULL when there are none). */
int acv_coco_super_flags(const json_t *cats, bool **flags);

#endif
