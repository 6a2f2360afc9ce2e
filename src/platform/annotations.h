/* Collaborative annotation: annotation sets (one task type over a selection of a project's
 * images), tasks (batches of a set's images assigned to annotators or left in a pool to
 * claim), items (one annotation document per image, with a revision and an edit lock),
 * submission, review and progress. Tables: schema.c, migration 2.
 *
 * An item moves new -> in_progress (saved) -> submitted -> accepted | rejected; a rejected
 * item goes back to its annotator with the reviewer's comment and is saved and submitted
 * again. Every save must name the revision it was based on: a stale one is refused
 * (ACV_EEXIST, 409) with the current item, so nobody's work is silently overwritten. Saving
 * takes (or renews) the item's lock for the set's lock_seconds; while another user holds a
 * live lock, saves and submits are refused (ACV_EEXIST). Submitted items are frozen until
 * reviewed; accepted items may be reopened (saved again) by managers only.
 *
 * "Managers" are project owners, engineers and admins; they may edit any item. Others edit
 * only items outside any task, in an unclaimed task, or in a task assigned to them (the
 * caller checks with acv_annitem_assignee and answers 403).
 *
 * Conflicts hand back a JSON object (*conflict, new reference) for the error body:
 * {"revision":N,"current":ITEM} for a stale revision, {"locked_by":{"id","username"},
 * "lock_expires_at"} for a lock. Changes are audited in their transaction. */
#ifndef ACV_PLATFORM_ANNOTATIONS_H
#define ACV_PLATFORM_ANNOTATIONS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "platform/annotation_doc.h"
#include "platform/auth.h"
#include "platform/db.h"

#define ACV_ANNSET_NAME_MAX 200
#define ACV_ANNSET_SELECT_MAX 100000 /* image ids in one request */
#define ACV_ANN_COMMENT_MAX 10000

/* ---- sets ---- */

/* The project of set id (ACV_ENOTFOUND when there is none). */
int acv_annset_project(acv_dbconn *c, int64_t id, int64_t *project_id);
/* The set's task type and lock time. */
int acv_annset_task(acv_dbconn *c, int64_t id, acv_ann_task *task, int64_t *lock_seconds);
/* Creates {"name","task","lock_seconds"?, "image_ids":[...] | "filter":{...}} in a project.
 * filter selects the project's images by {"uploaded_after","uploaded_before" (ISO dates or
 * times), "filename" (a case-insensitive glob: "line3_*.png")}; {} selects them all. An
 * image id that is not an image of the project is ACV_EINVAL naming it; a duplicate name
 * ACV_EEXIST. */
int acv_annset_create(acv_dbconn *c, const acv_principal *who, int64_t project_id, const json_t *in, int64_t *id);
/* Adds images to a set: {"image_ids"} or {"filter"} as above; images already in the set are
 * skipped. *added counts the new items. */
int acv_annset_add(acv_dbconn *c, const acv_principal *who, int64_t id, const json_t *in, int64_t *added);
/* {"id","project_id","name","task","lock_seconds","created_by","created_at","updated_at",
 *  "total","counts":{status:n},"task_count","done" (accepted / total)}. */
int acv_annset_get(acv_dbconn *c, int64_t id, json_t **out);
int acv_annset_list(acv_dbconn *c, int64_t project_id, int limit, int offset, json_t **items, int64_t *total);
/* Deletes a set with its items, tasks and reviews (dataset versions made from it stay). */
int acv_annset_delete(acv_dbconn *c, const acv_principal *who, int64_t id);
/* {"set_id","total","counts":{status:n},"annotated","done",
 *  "annotators":[{"user_id","username","annotated","in_progress","submitted","accepted",
 *                 "rejected","reviews_received","rejections_received","rejection_rate",
 *                 "first_save_at","last_save_at","throughput_per_hour"}],
 *  "reviewers":[{"user_id","username","reviewed","accepted","rejected","rejection_rate",
 *                "first_review_at","last_review_at","throughput_per_hour"}]}
 * Counts are over the items' current state (an annotator is the last one who saved an
 * item); reviews_received and the reviewers' figures come from the review history. A
 * throughput is the count divided by the hours between the first and the last action
 * (at least one minute). */
int acv_annset_progress(acv_dbconn *c, int64_t id, json_t **out);

/* ---- tasks ---- */

int acv_anntask_project(acv_dbconn *c, int64_t task_id, int64_t *project_id);
/* Splits the set's images that are in no task yet, by image id, into tasks of `size`
 * images: {"size":N,"assignees":[user ids]} assigns them round-robin; without assignees
 * they go to the pool. Assignees must be project members who may annotate (owner,
 * engineer, annotator) or admins. *created (new reference) lists the new tasks. */
int acv_anntask_split(acv_dbconn *c, const acv_principal *who, int64_t set_id, const json_t *in, json_t **created);
/* Assigns the oldest unassigned task of the set to who (ACV_ENOTFOUND when none is left). */
int acv_anntask_claim(acv_dbconn *c, const acv_principal *who, int64_t set_id, json_t **task);
/* Tasks of a set (assignee_id > 0 filters), by id: {"id","set_id","name","assignee_id",
 * "assignee","created_at","total","counts":{status:n}}. */
int acv_anntask_list(acv_dbconn *c, int64_t set_id, int64_t assignee_id, int limit, int offset, json_t **items,
                     int64_t *total);
/* Applies {"name","assignee_id" (null: back to the pool)}. */
int acv_anntask_update(acv_dbconn *c, const acv_principal *who, int64_t task_id, const json_t *patch, json_t **out);

/* ---- items ---- */

typedef struct acv_annitem_filter {
    const char *status;     /* NULL: any */
    int64_t task_id;        /* 0: any */
    int64_t assignee_id;    /* 0: any; items in tasks assigned to this user */
    int64_t annotated_by;   /* 0: any */
} acv_annitem_filter;

/* Item summaries of a set by image id: {"set_id","image_id","filename","width","height",
 * "task_id","status","revision","tag_count","shape_count","annotated_by","annotator",
 * "annotated_at","locked_by","locker","lock_expires_at","reviewed_by","reviewer",
 * "reviewed_at","review_comment","updated_at"} (lock fields null when no live lock). */
int acv_annitem_list(acv_dbconn *c, int64_t set_id, const acv_annitem_filter *f, int limit, int offset,
                     json_t **items, int64_t *total);
/* The item with its document in API form: the summary fields plus "tags" and "shapes".
 * With lock true, an editable item that no other user holds is locked to who first. */
int acv_annitem_get(acv_dbconn *c, const acv_principal *who, bool manager, int64_t set_id, int64_t image_id,
                    bool lock, json_t **out);
/* The assignee of the item's task (0 when it is in no task or an unclaimed one) and their
 * name (name[72], "" when none). ACV_ENOTFOUND when the image is not in the set. */
int acv_annitem_assignee(acv_dbconn *c, int64_t set_id, int64_t image_id, int64_t *assignee_id, char name[72]);
/* Saves {"revision":N,"tags","shapes"} (read-only item fields are ignored): validates the
 * document, checks the lock, status and revision, stores it as revision N+1 with status
 * in_progress and renews who's lock. *out (new reference) is the saved item. */
int acv_annitem_save(acv_dbconn *c, const acv_principal *who, bool manager, int64_t set_id, int64_t image_id,
                     const json_t *in, json_t **out, json_t **conflict);
/* Submits the item for review (in may be NULL or {"revision"}); releases the lock. A cls
 * item needs a tag first (ACV_EINVAL). */
int acv_annitem_submit(acv_dbconn *c, const acv_principal *who, bool manager, int64_t set_id, int64_t image_id,
                       const json_t *in, json_t **out, json_t **conflict);
/* Takes or renews who's lock on the item for the set's lock_seconds: *out gets {"locked_by",
 * "locker", "lock_expires_at"}. ACV_EEXIST (with *conflict: locked_by, lock_expires_at) while
 * someone else holds a live lock; ACV_EEXIST when the status does not allow who to edit. */
int acv_annitem_lock(acv_dbconn *c, const acv_principal *who, bool manager, int64_t set_id, int64_t image_id,
                     json_t **out, json_t **conflict);
/* Releases who's lock on the item (managers: anyone's). */
int acv_annitem_unlock(acv_dbconn *c, const acv_principal *who, bool manager, int64_t set_id, int64_t image_id,
                       json_t **conflict);
/* Records {"decision":"accept"|"reject","comment","revision"?} on a submitted item (a
 * rejection needs a comment). *out is the reviewed item. */
int acv_annitem_review(acv_dbconn *c, const acv_principal *who, int64_t set_id, int64_t image_id, const json_t *in,
                       json_t **out, json_t **conflict);
/* Submitted items, oldest submission first, with their documents. */
int acv_annitem_review_queue(acv_dbconn *c, int64_t set_id, int limit, int offset, json_t **items, int64_t *total);

/* ---- labels ---- */

/* For a label rename, inside the caller's transaction: rewrites old_name to new_name in every
 * annotation document of the project (tags and shape labels; a tag already present is kept
 * once), bumping each rewritten item's revision so that an editor holding the old document
 * gets a 409 with the renamed one instead of an unknown-label error. Statuses and authors are
 * left alone. *changed (may be NULL) counts the documents rewritten. */
int acv_ann_rename_label(acv_dbconn *c, int64_t project_id, const char *old_name, const char *new_name,
                         int64_t *changed);

#endif
