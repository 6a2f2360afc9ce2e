/* Dataset versions: immutable snapshots of an annotation set's accepted images with their
 * annotations and a train/val/test split. A version copies each image's blob hash, file
 * name, size and document (labels by name, as they were named at snapshot time) into
 * dataset_version_items and takes a reference on the blob, so later edits, reviews, label
 * renames and image deletions never change it; nothing updates a version after creation.
 *
 * The split is stratified and seeded: items are grouped by a stratum (cls: the first tag;
 * other tasks: the label with the most shapes in the document, ties to the smaller name,
 * else the first tag), each group is shuffled with a generator seeded by (seed, stratum)
 * and cut into val, test and train by round(fraction * group size), keeping at least one
 * training image per group whenever the train fraction is positive (so every class of a
 * version has training images). The same items, fractions and seed always give the same
 * split.
 *
 * The content hash is the SHA-256 (libsodium) of a canonical text: the task, the label
 * list, then one line per item sorted by blob hash with its split, size and document
 * (compact JSON, sorted keys). Equal content gives an equal hash, whatever the ids. */
#ifndef ACV_PLATFORM_VERSIONS_H
#define ACV_PLATFORM_VERSIONS_H

#include <jansson.h>
#include <stdint.h>

#include "platform/auth.h"
#include "platform/blobs.h"
#include "platform/db.h"

#define ACV_VERSION_NAME_MAX 200

enum { ACV_SPLIT_TRAIN, ACV_SPLIT_VAL, ACV_SPLIT_TEST };
/* "train", "val", "test". */
const char *acv_split_name(int split);

/* Assigns each of n items (strata[i]: its group's name) to a split (out[i]), with
 * frac = {train, val, test} fractions summing to 1, as described above. */
int acv_version_split(const char *const *strata, int n, const double frac[3], uint64_t seed, int *out);

int acv_version_project(acv_dbconn *c, int64_t id, int64_t *project_id);
/* Snapshots the accepted items of set_id: {"name","split":{"train","val","test"} (default
 * 0.8/0.1/0.1; missing keys are 0),"seed" (default 0)}. ACV_EINVAL when the set has no
 * accepted image, a document uses a label deleted since, or a cls image has no tag;
 * ACV_EEXIST for a name already used in the project. */
int acv_version_create(acv_dbconn *c, const acv_principal *who, int64_t set_id, const json_t *in, int64_t *id);
/* {"id","project_id","set_id","name","task","split":{...},"seed","content_hash",
 *  "labels":[{"index","id","name","color","parent"}] (sorted by name; index = class index),
 *  "counts":{"images":{"train","val","test","total"},
 *            "classes":{name:{"images":{...},"instances":{...}}}},
 *  "created_by","creator","created_at","image_count"}. */
int acv_version_get(acv_dbconn *c, int64_t id, json_t **out);
/* Versions of a project (set_id > 0: of that set), newest first, without "labels" and
 * "counts.classes" (read one version for those). */
int acv_version_list(acv_dbconn *c, int64_t project_id, int64_t set_id, int limit, int offset, json_t **items,
                     int64_t *total);
/* The items of a version by image id (split: NULL or one split name):
 * {"image_id","blob_hash","filename","width","height","split","tags","shapes"}. */
int acv_version_items(acv_dbconn *c, int64_t id, const char *split, int limit, int offset, json_t **items,
                      int64_t *total);
/* Deletes a version and releases its blob references (files nothing refers to any more are
 * removed from b after the commit). */
int acv_version_delete(acv_dbconn *c, acv_blobs *b, const acv_principal *who, int64_t id);

#endif
