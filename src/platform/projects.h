/* Projects and their members. A project groups the data of one inspection problem (labels
 * now; images, annotation sets and dataset versions later); membership with a project role
 * (auth.h) decides who sees it. Changes are audited in the same transaction; permission
 * checks belong to the caller. */
#ifndef ACV_PLATFORM_PROJECTS_H
#define ACV_PLATFORM_PROJECTS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "platform/auth.h"
#include "platform/blobs.h"
#include "platform/db.h"

/* user_id's role in the project as a bit (0: not a member). ACV_ENOTFOUND when the project
 * does not exist. */
int acv_project_role(acv_dbconn *c, int64_t project_id, int64_t user_id, unsigned *role);
/* {"id","name","description","created_by","created_at","updated_at","label_count",
 *  "member_count","my_role"} where my_role is viewer_id's project role or null. */
int acv_project_get(acv_dbconn *c, int64_t id, int64_t viewer_id, json_t **out);
/* Projects visible to who (all of them when all is true, else those who is a member of),
 * optionally filtered by a name substring q, by id. */
int acv_project_list(acv_dbconn *c, const acv_principal *who, bool all, const char *q, int limit, int offset,
                     json_t **items, int64_t *total);
/* Creates {"name","description"}; the creator becomes its owner. Names are unique
 * (case-insensitively): ACV_EEXIST. */
int acv_project_create(acv_dbconn *c, const acv_principal *who, const json_t *in, int64_t *id);
/* Applies {"name","description"} (any subset). */
int acv_project_update(acv_dbconn *c, const acv_principal *who, int64_t id, const json_t *patch);
/* Deletes the project and everything in it: labels, members, images, annotation sets,
 * imports and dataset versions. The blob references of its images and version items are
 * dropped in the same transaction (schema triggers); after the commit the blob files nothing
 * refers to any more are removed from b (NULL: left for acv_blobs_gc at the next start).
 * Bytes another project still uses stay. */
int acv_project_delete(acv_dbconn *c, acv_blobs *b, const acv_principal *who, int64_t id);

/* Members as [{"user_id","username","role","added_at"}], by username. */
int acv_member_list(acv_dbconn *c, int64_t project_id, int limit, int offset, json_t **items, int64_t *total);
/* Adds user_id with role (a project role name) or changes their role; *created says which.
 * *out (may be NULL) receives the member. Refuses to leave the project without an owner. */
int acv_member_set(acv_dbconn *c, const acv_principal *who, int64_t project_id, int64_t user_id, const char *role,
                   bool *created, json_t **out);
/* Removes a member (ACV_ENOTFOUND when not a member; ACV_EEXIST for the last owner). */
int acv_member_remove(acv_dbconn *c, const acv_principal *who, int64_t project_id, int64_t user_id);

#endif
