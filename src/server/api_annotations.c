/* Annotation routes: annotation sets, their items (documents with revisions and locks),
 * tasks, submission and review, progress; dataset versions and their streamed zip exports.
 * Data logic: platform/annotations.h, versions.h, export.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autocv/error.h"
#include "base/log.h"
#include "platform/annotations.h"
#include "platform/export.h"
#include "platform/versions.h"
#include "server/api.h"

#define MANAGERS (ACV_ROLE_OWNER | ACV_ROLE_ENGINEER)
#define EDITORS (ACV_ROLE_OWNER | ACV_ROLE_ENGINEER | ACV_ROLE_ANNOTATOR)
#define REVIEWERS (ACV_ROLE_OWNER | ACV_ROLE_REVIEWER)

static int set_project(acv_call *c, int64_t *project_id)
{
    return acv_annset_project(c->db, acv_call_id(c, "id"), project_id);
}

static int task_project(acv_call *c, int64_t *project_id)
{
    return acv_anntask_project(c->db, acv_call_id(c, "id"), project_id);
}

static int version_project(acv_call *c, int64_t *project_id)
{
    return acv_version_project(c->db, acv_call_id(c, "id"), project_id);
}

static bool is_manager(const acv_call *c) { return c->admin || (c->project_role & MANAGERS); }

/* A 409 whose body carries the conflict's details next to code and message (conflict is
 * stolen); other errors go back as they are. */
static int reply_error(acv_call *c, int rc, json_t *conflict)
{
    if (rc == ACV_EEXIST && conflict) {
        json_t *err = json_pack("{s:s, s:s}", "code", acv_http_code_name(409), "message", acv_errmsg());
        if (err) json_object_update(err, conflict);
        json_decref(conflict);
        return acv_call_json(c, 409, err ? json_pack("{s:o}", "error", err) : NULL);
    }
    json_decref(conflict);
    return rc;
}

/* An optional id query parameter ("me" is the caller where allow_me). */
static int query_id(acv_call *c, const char *name, bool allow_me, int64_t *out)
{
    const char *v = acv_call_query(c, name);
    *out = 0;
    if (!v) return 0;
    if (allow_me && !strcmp(v, "me")) {
        *out = c->user.user_id;
        return 0;
    }
    char *end;
    long long x = strtoll(v, &end, 10);
    if (*end || x < 1) return acv_error(ACV_EFORMAT, "query parameter '%s' must be a positive id%s (got '%s')", name,
                                        allow_me ? " or 'me'" : "", v);
    *out = x;
    return 0;
}

/* ---- sets ---------------------------------------------------------------------------------- */

static int set_create(acv_call *c)
{
    json_t *in, *s = NULL;
    int64_t id = 0;
    int rc = acv_call_body(c, &in);
    if (!rc) rc = acv_annset_create(c->db, &c->user, c->project_id, in, &id);
    if (!rc) rc = acv_annset_get(c->db, id, &s);
    if (rc) return rc;
    char loc[64];
    snprintf(loc, sizeof loc, "/api/v1/annotation-sets/%lld", (long long)id);
    acv_http_add_header(c->req, "Location", loc);
    return acv_call_json(c, 201, s);
}

static int set_list(acv_call *c)
{
    int limit, offset;
    json_t *items = NULL;
    int64_t total = 0;
    int rc = acv_call_paging(c, &limit, &offset);
    if (!rc) rc = acv_annset_list(c->db, c->project_id, limit, offset, &items, &total);
    if (rc) {
        json_decref(items);
        return rc;
    }
    return acv_call_page(c, items, total, limit, offset);
}

static int set_get(acv_call *c)
{
    json_t *s;
    int rc = acv_annset_get(c->db, acv_call_id(c, "id"), &s);
    return rc ? rc : acv_call_json(c, 200, s);
}

static int set_delete(acv_call *c)
{
    int rc = acv_annset_delete(c->db, &c->user, acv_call_id(c, "id"));
    return rc ? rc : acv_call_no_content(c);
}

static int set_add(acv_call *c)
{
    json_t *in, *s = NULL;
    int64_t added = 0, id = acv_call_id(c, "id");
    int rc = acv_call_body(c, &in);
    if (!rc) rc = acv_annset_add(c->db, &c->user, id, in, &added);
    if (!rc) rc = acv_annset_get(c->db, id, &s);
    return rc ? rc : acv_call_json(c, 200, json_pack("{s:I, s:o}", "added", (json_int_t)added, "set", s));
}

static int set_progress(acv_call *c)
{
    json_t *p;
    int rc = acv_annset_progress(c->db, acv_call_id(c, "id"), &p);
    return rc ? rc : acv_call_json(c, 200, p);
}

/* ---- items --------------------------------------------------------------------------------- */

static int item_list(acv_call *c)
{
    int limit, offset;
    acv_annitem_filter f = {.status = acv_call_query(c, "status")};
    json_t *items = NULL;
    int64_t total = 0;
    int rc = acv_call_paging(c, &limit, &offset);
    if (!rc) rc = query_id(c, "task_id", false, &f.task_id);
    if (!rc) rc = query_id(c, "assignee_id", true, &f.assignee_id);
    if (!rc) rc = query_id(c, "annotated_by", true, &f.annotated_by);
    if (!rc) rc = acv_annitem_list(c->db, acv_call_id(c, "id"), &f, limit, offset, &items, &total);
    if (rc) {
        json_decref(items);
        return rc;
    }
    return acv_call_page(c, items, total, limit, offset);
}

/* Non-managers may only touch items outside tasks, in unclaimed tasks or in their own. On a
 * refusal the 403 is already answered and *refused is set. */
static int check_task_owner(acv_call *c, int64_t set_id, int64_t image_id, bool *refused)
{
    *refused = false;
    if (is_manager(c)) return 0;
    int64_t assignee = 0;
    char name[72];
    int rc = acv_annitem_assignee(c->db, set_id, image_id, &assignee, name);
    if (rc || !assignee || assignee == c->user.user_id) return rc;
    *refused = true;
    return acv_call_error(c, 403, "image %lld is in a task assigned to %s; only they (or a project owner or engineer) "
                                  "may change it",
                          (long long)image_id, name);
}

static int item_get(acv_call *c)
{
    int64_t set_id = acv_call_id(c, "id"), image_id = acv_call_id(c, "image_id");
    const char *lq = acv_call_query(c, "lock");
    if (lq && strcmp(lq, "true") && strcmp(lq, "false"))
        return acv_error(ACV_EFORMAT, "query parameter 'lock' must be true or false (got '%s')", lq);
    bool may_edit = c->admin || (c->project_role & EDITORS);
    /* Annotators lock what they open; others only when they ask for it. */
    bool lock = lq ? !strcmp(lq, "true") : (!c->admin && (c->project_role & ACV_ROLE_ANNOTATOR));
    if (lock && !may_edit) return acv_call_error(c, 403, "only owners, engineers and annotators of the project take locks");
    int rc = 0;
    if (lock && !is_manager(c)) {
        int64_t assignee = 0;
        char name[72];
        rc = acv_annitem_assignee(c->db, set_id, image_id, &assignee, name);
        if (!rc && assignee && assignee != c->user.user_id) lock = false; /* someone else's: read only */
    }
    json_t *item = NULL;
    if (!rc) rc = acv_annitem_get(c->db, &c->user, is_manager(c), set_id, image_id, lock, &item);
    /* A model's proposal (pre-annotation) still untouched by people: its labels with scores. */
    json_t *prop = NULL;
    if (!rc)
        rc = acv_db_query_row(c->db, &prop,
                              "SELECT p.shapes_json AS proposal_json, p.job_id, p.model_version_id, m.name AS model,"
                              " mv.version FROM pre_annotations p"
                              " LEFT JOIN model_versions mv ON mv.id = p.model_version_id"
                              " LEFT JOIN models m ON m.id = mv.model_id WHERE p.set_id = ? AND p.image_id = ?"
                              " AND p.revision = ?",
                              "III", set_id, image_id, (int64_t)json_integer_value(json_object_get(item, "revision")));
    if (!rc) json_object_set_new(item, "proposal", prop ? prop : json_null());
    if (rc) json_decref(item);
    return rc ? rc : acv_call_json(c, 200, item);
}

static int item_put(acv_call *c)
{
    int64_t set_id = acv_call_id(c, "id"), image_id = acv_call_id(c, "image_id");
    json_t *in, *item = NULL, *conflict = NULL;
    bool refused;
    int rc = acv_call_body(c, &in);
    if (!rc) rc = check_task_owner(c, set_id, image_id, &refused);
    if (rc || refused) return rc;
    rc = acv_annitem_save(c->db, &c->user, is_manager(c), set_id, image_id, in, &item, &conflict);
    return rc ? reply_error(c, rc, conflict) : acv_call_json(c, 200, item);
}

static int item_submit(acv_call *c)
{
    int64_t set_id = acv_call_id(c, "id"), image_id = acv_call_id(c, "image_id");
    json_t *in = NULL, *item = NULL, *conflict = NULL;
    bool refused;
    int rc = acv_http_body(c->req) == ACV_HTTP_BODY_NONE ? 0 : acv_call_body(c, &in);
    if (!rc) rc = check_task_owner(c, set_id, image_id, &refused);
    if (rc || refused) return rc;
    rc = acv_annitem_submit(c->db, &c->user, is_manager(c), set_id, image_id, in, &item, &conflict);
    return rc ? reply_error(c, rc, conflict) : acv_call_json(c, 200, item);
}

static int item_lock(acv_call *c)
{
    int64_t set_id = acv_call_id(c, "id"), image_id = acv_call_id(c, "image_id");
    json_t *out = NULL, *conflict = NULL;
    bool refused;
    int rc = check_task_owner(c, set_id, image_id, &refused);
    if (rc || refused) return rc;
    rc = acv_annitem_lock(c->db, &c->user, is_manager(c), set_id, image_id, &out, &conflict);
    return rc ? reply_error(c, rc, conflict) : acv_call_json(c, 200, out);
}

static int item_unlock(acv_call *c)
{
    json_t *conflict = NULL;
    int rc = acv_annitem_unlock(c->db, &c->user, is_manager(c), acv_call_id(c, "id"), acv_call_id(c, "image_id"),
                                &conflict);
    return rc ? reply_error(c, rc, conflict) : acv_call_no_content(c);
}

static int item_review(acv_call *c)
{
    json_t *in, *item = NULL, *conflict = NULL;
    int rc = acv_call_body(c, &in);
    if (!rc)
        rc = acv_annitem_review(c->db, &c->user, acv_call_id(c, "id"), acv_call_id(c, "image_id"), in, &item,
                                &conflict);
    return rc ? reply_error(c, rc, conflict) : acv_call_json(c, 200, item);
}

static int review_queue(acv_call *c)
{
    int limit, offset;
    json_t *items = NULL;
    int64_t total = 0;
    int rc = acv_call_paging(c, &limit, &offset);
    if (!rc) rc = acv_annitem_review_queue(c->db, acv_call_id(c, "id"), limit, offset, &items, &total);
    if (rc) {
        json_decref(items);
        return rc;
    }
    return acv_call_page(c, items, total, limit, offset);
}

/* ---- tasks --------------------------------------------------------------------------------- */

static int task_split(acv_call *c)
{
    json_t *in, *created = NULL;
    int rc = acv_call_body(c, &in);
    if (!rc) rc = acv_anntask_split(c->db, &c->user, acv_call_id(c, "id"), in, &created);
    if (rc) return rc;
    return acv_call_json(c, 201, json_pack("{s:I, s:o}", "created", (json_int_t)json_array_size(created), "items",
                                           created));
}

static int task_list(acv_call *c)
{
    int limit, offset;
    int64_t assignee = 0, total = 0;
    json_t *items = NULL;
    int rc = acv_call_paging(c, &limit, &offset);
    if (!rc) rc = query_id(c, "assignee_id", true, &assignee);
    if (!rc) rc = acv_anntask_list(c->db, acv_call_id(c, "id"), assignee, limit, offset, &items, &total);
    if (rc) {
        json_decref(items);
        return rc;
    }
    return acv_call_page(c, items, total, limit, offset);
}

static int task_claim(acv_call *c)
{
    json_t *t;
    int rc = acv_anntask_claim(c->db, &c->user, acv_call_id(c, "id"), &t);
    return rc ? rc : acv_call_json(c, 200, t);
}

static int task_patch(acv_call *c)
{
    json_t *in, *t = NULL;
    int rc = acv_call_body(c, &in);
    if (!rc) rc = acv_anntask_update(c->db, &c->user, acv_call_id(c, "id"), in, &t);
    return rc ? rc : acv_call_json(c, 200, t);
}

/* ---- versions ------------------------------------------------------------------------------ */

static int version_create(acv_call *c)
{
    json_t *in, *v = NULL;
    int64_t id = 0;
    int rc = acv_call_body(c, &in);
    if (!rc) rc = acv_version_create(c->db, &c->user, acv_call_id(c, "id"), in, &id);
    if (!rc) rc = acv_version_get(c->db, id, &v);
    if (rc) return rc;
    char loc[64];
    snprintf(loc, sizeof loc, "/api/v1/dataset-versions/%lld", (long long)id);
    acv_http_add_header(c->req, "Location", loc);
    return acv_call_json(c, 201, v);
}

static int version_list(acv_call *c)
{
    int limit, offset;
    int64_t set_id = 0, total = 0;
    json_t *items = NULL;
    int rc = acv_call_paging(c, &limit, &offset);
    if (!rc) rc = query_id(c, "set_id", false, &set_id);
    if (!rc) rc = acv_version_list(c->db, c->project_id, set_id, limit, offset, &items, &total);
    if (rc) {
        json_decref(items);
        return rc;
    }
    return acv_call_page(c, items, total, limit, offset);
}

static int version_get(acv_call *c)
{
    json_t *v;
    int rc = acv_version_get(c->db, acv_call_id(c, "id"), &v);
    return rc ? rc : acv_call_json(c, 200, v);
}

static int version_items(acv_call *c)
{
    int limit, offset;
    int64_t total = 0;
    json_t *items = NULL;
    int rc = acv_call_paging(c, &limit, &offset);
    if (!rc) rc = acv_version_items(c->db, acv_call_id(c, "id"), acv_call_query(c, "split"), limit, offset, &items, &total);
    if (rc) {
        json_decref(items);
        return rc;
    }
    return acv_call_page(c, items, total, limit, offset);
}

static int version_delete(acv_call *c)
{
    int rc = acv_version_delete(c->db, acv_server_blobs(c->srv), &c->user, acv_call_id(c, "id"));
    return rc ? rc : acv_call_no_content(c);
}

static ssize_t export_pull(void *ud, uint64_t pos, char *buf, size_t max)
{
    ssize_t n = acv_export_read(ud, buf, max);
    if (n < 0) {
        acv_log(ACV_LOG_ERROR, "export stopped: %s", acv_errmsg());
        return ACV_HTTP_STREAM_ERROR;
    }
    return n ? n : ACV_HTTP_STREAM_END;
}

static void export_free(void *ud) { acv_export_free(ud); }

static int version_export(acv_call *c)
{
    const char *fs = acv_call_query(c, "format");
    acv_export_format f;
    if (!fs) return acv_error(ACV_EFORMAT, "query parameter 'format' is required (coco, yolo, voc or imagefolder)");
    if (acv_export_format_parse(fs, &f)) return acv_error(ACV_EFORMAT, "query parameter 'format': %s", acv_errmsg());
    acv_export *e;
    int rc = acv_export_open(c->db, acv_server_db(c->srv), acv_server_blobs(c->srv), acv_call_id(c, "id"), f, &e);
    if (rc) return rc;
    char disp[240];
    snprintf(disp, sizeof disp, "attachment; filename=\"%s\"", acv_export_filename(e));
    acv_http_add_header(c->req, "Content-Disposition", disp);
    /* The response owns e from here on, also when this fails. */
    return acv_http_respond_stream(c->req, 200, "application/zip", export_pull, e, export_free);
}

/* ---- the route table ----------------------------------------------------------------------- */

static const acv_route_param PAGING_Q[] = {ACV_ROUTE_PAGING, {NULL, NULL, NULL}};
static const acv_route_param ITEMS_Q[] = {
    {"status", "string", "new, in_progress, submitted, accepted or rejected"},
    {"task_id", "integer", "items of this task"},
    {"assignee_id", "string", "items in tasks assigned to this user id ('me': the caller)"},
    {"annotated_by", "string", "items last saved by this user id ('me': the caller)"},
    ACV_ROUTE_PAGING,
    {NULL, NULL, NULL},
};
static const acv_route_param TASKS_Q[] = {
    {"assignee_id", "string", "tasks assigned to this user id ('me': the caller)"}, ACV_ROUTE_PAGING, {NULL, NULL, NULL}};
static const acv_route_param LOCK_Q[] = {
    {"lock", "boolean", "take (or renew) the edit lock; default true for annotators, false for others"},
    {NULL, NULL, NULL}};
static const acv_route_param VERSIONS_Q[] = {
    {"set_id", "integer", "versions made from this annotation set"}, ACV_ROUTE_PAGING, {NULL, NULL, NULL}};
static const acv_route_param VITEMS_Q[] = {
    {"split", "string", "train, val or test"}, ACV_ROUTE_PAGING, {NULL, NULL, NULL}};
static const acv_route_param EXPORT_Q[] = {
    {"format", "string", "coco, yolo or voc (det, seg, ocr versions); imagefolder (cls versions)"}, {NULL, NULL, NULL}};

#define SET_ROUTE(m, p, h, r) .method = m, .pattern = p, .handler = h, .perm = ACV_PERM_PROJECT, .roles = r, \
                              .project = set_project, .tag = "annotation"

static const acv_route ROUTES[] = {
    {.method = "POST", .pattern = "/api/v1/projects/{id}/annotation-sets", .handler = set_create,
     .perm = ACV_PERM_PROJECT, .roles = MANAGERS, .tag = "annotation", .summary = "Create an annotation set",
     .description = "{\"name\",\"task\":\"cls|det|seg|ocr\",\"lock_seconds\" (default 600),\"image_ids\":[...]} or "
                    "{..., \"filter\":{\"uploaded_after\",\"uploaded_before\" (dates or UTC times),\"filename\" (a "
                    "case-insensitive glob)}}; {\"filter\":{}} takes every image of the project.",
     .body_types = "application/json", .body_schema = "#NewAnnotationSet", .status = 201,
     .resp_schema = "#AnnotationSet", .resp_desc = "the set with its counts"},
    {.method = "GET", .pattern = "/api/v1/projects/{id}/annotation-sets", .handler = set_list,
     .perm = ACV_PERM_PROJECT, .roles = ACV_ROLES_PROJECT, .tag = "annotation",
     .summary = "List a project's annotation sets with their progress", .query = PAGING_Q,
     .resp_schema = ACV_PAGE_OF("AnnotationSet"), .resp_desc = "a page of sets"},
    {SET_ROUTE("GET", "/api/v1/annotation-sets/{id}", set_get, ACV_ROLES_PROJECT),
     .summary = "Read an annotation set with its counts per status", .resp_schema = "#AnnotationSet",
     .resp_desc = "the set"},
    {SET_ROUTE("DELETE", "/api/v1/annotation-sets/{id}", set_delete, MANAGERS),
     .summary = "Delete an annotation set with its items, tasks and reviews",
     .description = "Dataset versions made from it stay (their set_id becomes null).", .status = 204,
     .resp_desc = "deleted"},
    {SET_ROUTE("POST", "/api/v1/annotation-sets/{id}/items", set_add, MANAGERS),
     .summary = "Add images to an annotation set", .description = "{\"image_ids\":[...]} or {\"filter\":{...}} as at "
                                                                  "creation; images already in the set are skipped.",
     .body_types = "application/json", .body_schema = "#NewAnnotationSet",
     .resp_schema = "{\"type\":\"object\",\"properties\":{\"added\":{\"type\":\"integer\"},\"set\":{\"$ref\":"
                    "\"#/components/schemas/AnnotationSet\"}}}",
     .resp_desc = "how many images were added, and the set"},
    {SET_ROUTE("GET", "/api/v1/annotation-sets/{id}/items", item_list, ACV_ROLES_PROJECT),
     .summary = "List a set's items (without their documents)", .query = ITEMS_Q,
     .resp_schema = ACV_PAGE_OF("AnnotationItem"), .resp_desc = "a page of item summaries, by image id"},
    {SET_ROUTE("GET", "/api/v1/annotation-sets/{id}/items/{image_id}", item_get, ACV_ROLES_PROJECT),
     .summary = "Read an image's annotation (annotators take its edit lock)", .query = LOCK_Q,
     .description = "An annotator's read takes or renews the item's lock (the set's lock_seconds) unless another user "
                    "holds it, the item is submitted or accepted, or it is in another annotator's task.",
     .resp_schema = "#AnnotationItem", .resp_desc = "the item with tags and shapes"},
    {SET_ROUTE("PUT", "/api/v1/annotation-sets/{id}/items/{image_id}", item_put, EDITORS),
     .summary = "Save an image's annotation",
     .description = "{\"revision\":N,\"tags\":[label...],\"shapes\":[...]}: N is the revision the edit is based on. "
                    "A stale revision is 409 with {\"error\":{...,\"revision\",\"current\":ITEM}}; a lock held by "
                    "another user is 409 with {\"error\":{...,\"locked_by\",\"lock_expires_at\"}}; a shape outside "
                    "the image, an unknown label or a shape type the task does not take is 422 naming the place. "
                    "Saving sets the status in_progress and takes the lock.",
     .body_types = "application/json", .body_schema = "#AnnotationDoc", .resp_schema = "#AnnotationItem",
     .resp_desc = "the saved item (revision N+1)"},
    {SET_ROUTE("POST", "/api/v1/annotation-sets/{id}/items/{image_id}/lock", item_lock, EDITORS),
     .summary = "Take or renew the edit lock of an image",
     .description = "For the set's lock_seconds from now (an open editor renews it while its user works). 409 with "
                    "{\"error\":{...,\"locked_by\",\"lock_expires_at\"}} while another user holds a live lock, or "
                    "when the image is submitted (or accepted, for annotators).",
     .resp_schema = "{\"type\":\"object\",\"properties\":{\"locked_by\":{\"type\":\"integer\"},\"locker\":{"
                    "\"type\":\"string\"},\"lock_expires_at\":{\"type\":\"string\"}}}",
     .resp_desc = "the lock"},
    {SET_ROUTE("DELETE", "/api/v1/annotation-sets/{id}/items/{image_id}/lock", item_unlock, EDITORS),
     .summary = "Release the edit lock of an image", .description = "One's own lock; owners and engineers release "
                                                                     "anyone's.",
     .status = 204, .resp_desc = "released"},
    {SET_ROUTE("POST", "/api/v1/annotation-sets/{id}/items/{image_id}/submit", item_submit, EDITORS),
     .summary = "Submit an image for review", .description = "Optional body {\"revision\":N} (409 when stale). A cls "
                                                             "image needs a tag. Releases the lock.",
     .body_types = "application/json", .body_schema = "{\"type\":\"object\",\"properties\":{\"revision\":{\"type\":"
                                                      "\"integer\"}}}",
     .resp_schema = "#AnnotationItem", .resp_desc = "the submitted item"},
    {SET_ROUTE("POST", "/api/v1/annotation-sets/{id}/items/{image_id}/review", item_review, REVIEWERS),
     .summary = "Accept or reject a submitted image",
     .description = "{\"decision\":\"accept\"|\"reject\",\"comment\",\"revision\"?}; a rejection needs a comment, "
                    "which the annotator sees in the item. Only accepted images enter dataset versions.",
     .body_types = "application/json", .body_schema = "#Review", .resp_schema = "#AnnotationItem",
     .resp_desc = "the reviewed item"},
    {SET_ROUTE("GET", "/api/v1/annotation-sets/{id}/review-queue", review_queue, REVIEWERS),
     .summary = "Submitted images waiting for review, oldest first", .query = PAGING_Q,
     .resp_schema = ACV_PAGE_OF("AnnotationItem"), .resp_desc = "a page of items with their documents"},
    {SET_ROUTE("GET", "/api/v1/annotation-sets/{id}/progress", set_progress, ACV_ROLES_PROJECT),
     .summary = "Progress per status, per annotator and per reviewer", .resp_schema = "#Progress",
     .resp_desc = "counts, throughput and rejection rates"},
    {SET_ROUTE("POST", "/api/v1/annotation-sets/{id}/tasks", task_split, MANAGERS),
     .summary = "Split the set's unassigned images into tasks",
     .description = "{\"size\":N,\"assignees\":[user ids]}: the images in no task yet, by id, in tasks of N images, "
                    "assigned round-robin; without assignees the tasks go to the pool (claimed with .../tasks/claim).",
     .body_types = "application/json",
     .body_schema = "{\"type\":\"object\",\"required\":[\"size\"],\"properties\":{\"size\":{\"type\":\"integer\","
                    "\"minimum\":1},\"assignees\":{\"type\":\"array\",\"items\":{\"type\":\"integer\"}}}}",
     .status = 201,
     .resp_schema = "{\"type\":\"object\",\"properties\":{\"created\":{\"type\":\"integer\"},\"items\":{\"type\":"
                    "\"array\",\"items\":{\"$ref\":\"#/components/schemas/AnnotationTask\"}}}}",
     .resp_desc = "the new tasks"},
    {SET_ROUTE("GET", "/api/v1/annotation-sets/{id}/tasks", task_list, ACV_ROLES_PROJECT),
     .summary = "List a set's tasks with their progress", .query = TASKS_Q,
     .resp_schema = ACV_PAGE_OF("AnnotationTask"), .resp_desc = "a page of tasks"},
    {SET_ROUTE("POST", "/api/v1/annotation-sets/{id}/tasks/claim", task_claim, EDITORS),
     .summary = "Claim the oldest unassigned task of the set", .resp_schema = "#AnnotationTask",
     .resp_desc = "the task, now assigned to the caller (404 when none is left)"},
    {.method = "PATCH", .pattern = "/api/v1/annotation-tasks/{id}", .handler = task_patch, .perm = ACV_PERM_PROJECT,
     .roles = MANAGERS, .project = task_project, .tag = "annotation", .summary = "Rename or reassign a task",
     .description = "{\"name\",\"assignee_id\" (null: back to the pool)}", .body_types = "application/json",
     .body_schema = "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},\"assignee_id\":{\"type\":"
                    "\"integer\",\"nullable\":true}}}",
     .resp_schema = "#AnnotationTask", .resp_desc = "the task"},
    {SET_ROUTE("POST", "/api/v1/annotation-sets/{id}/versions", version_create, MANAGERS),
     .summary = "Snapshot the set's accepted images into an immutable dataset version",
     .description = "{\"name\",\"split\":{\"train\":F,\"val\":F,\"test\":F} (default 0.8/0.1/0.1),\"seed\":N}: a "
                    "seeded split stratified by class, a content hash, counts per class and split.",
     .body_types = "application/json", .body_schema = "#NewDatasetVersion", .status = 201,
     .resp_schema = "#DatasetVersion", .resp_desc = "the version"},
    {.method = "GET", .pattern = "/api/v1/projects/{id}/dataset-versions", .handler = version_list,
     .perm = ACV_PERM_PROJECT, .roles = ACV_ROLES_PROJECT, .tag = "datasets",
     .summary = "List a project's dataset versions, newest first", .query = VERSIONS_Q,
     .resp_schema = ACV_PAGE_OF("DatasetVersion"), .resp_desc = "a page of versions (without labels and per-class counts)"},
    {.method = "GET", .pattern = "/api/v1/dataset-versions/{id}", .handler = version_get, .perm = ACV_PERM_PROJECT,
     .roles = ACV_ROLES_PROJECT, .project = version_project, .tag = "datasets",
     .summary = "Read a dataset version (counts per class and split)", .resp_schema = "#DatasetVersion",
     .resp_desc = "the version"},
    {.method = "GET", .pattern = "/api/v1/dataset-versions/{id}/items", .handler = version_items,
     .perm = ACV_PERM_PROJECT, .roles = ACV_ROLES_PROJECT, .project = version_project, .tag = "datasets",
     .summary = "List a version's images with their annotations and split", .query = VITEMS_Q,
     .resp_schema = ACV_PAGE_OF("DatasetVersionItem"), .resp_desc = "a page of items, by image id"},
    {.method = "GET", .pattern = "/api/v1/dataset-versions/{id}/export", .handler = version_export,
     .perm = ACV_PERM_PROJECT, .roles = ACV_ROLES_PROJECT, .project = version_project, .tag = "datasets",
     .summary = "Download a version as a zip (COCO, YOLO, VOC or ImageFolder)", .query = EXPORT_Q,
     .description = "Streamed as it is written. imagefolder: train/<class>/..., val/..., test/... (cls); coco: "
                    "annotations/instances_<split>.json + images/<split>/; yolo: images/<split>/, labels/<split>/, "
                    "data.yaml; voc: Annotations/, JPEGImages/, ImageSets/Main/<split>.txt.",
     .resp_desc = "application/zip"},
    {.method = "DELETE", .pattern = "/api/v1/dataset-versions/{id}", .handler = version_delete,
     .perm = ACV_PERM_PROJECT, .roles = MANAGERS, .project = version_project, .tag = "datasets",
     .summary = "Delete a dataset version", .status = 204, .resp_desc = "deleted"},
};

static const char *const SCHEMAS[][2] = {
    {"NewAnnotationSet",
     "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"maxLength\":200},\"task\":{\"type\":"
     "\"string\",\"enum\":[\"cls\",\"det\",\"seg\",\"ocr\"]},\"lock_seconds\":{\"type\":\"integer\",\"minimum\":1,"
     "\"maximum\":86400},\"image_ids\":{\"type\":\"array\",\"items\":{\"type\":\"integer\"}},\"filter\":{\"type\":"
     "\"object\",\"properties\":{\"uploaded_after\":{\"type\":\"string\"},\"uploaded_before\":{\"type\":\"string\"},"
     "\"filename\":{\"type\":\"string\"}}}}}"},
    {"StatusCounts",
     "{\"type\":\"object\",\"properties\":{\"new\":{\"type\":\"integer\"},\"in_progress\":{\"type\":\"integer\"},"
     "\"submitted\":{\"type\":\"integer\"},\"accepted\":{\"type\":\"integer\"},\"rejected\":{\"type\":\"integer\"}}}"},
    {"AnnotationSet",
     "{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"integer\"},\"project_id\":{\"type\":\"integer\"},"
     "\"name\":{\"type\":\"string\"},\"task\":{\"type\":\"string\"},\"lock_seconds\":{\"type\":\"integer\"},"
     "\"created_by\":{\"type\":\"integer\",\"nullable\":true},\"creator\":{\"type\":\"string\",\"nullable\":true},"
     "\"created_at\":{\"type\":\"string\"},\"updated_at\":{\"type\":\"string\"},\"total\":{\"type\":\"integer\"},"
     "\"counts\":{\"$ref\":\"#/components/schemas/StatusCounts\"},\"task_count\":{\"type\":\"integer\"},\"done\":{"
     "\"type\":\"number\",\"description\":\"accepted / total\"}}}"},
    {"Shape",
     "{\"type\":\"object\",\"required\":[\"type\",\"label\"],\"properties\":{\"type\":{\"type\":\"string\",\"enum\":"
     "[\"box\",\"polygon\",\"mask\",\"text\"]},\"label\":{\"type\":\"string\"},\"x\":{\"type\":\"number\"},\"y\":{"
     "\"type\":\"number\"},\"w\":{\"type\":\"number\"},\"h\":{\"type\":\"number\"},\"points\":{\"type\":\"array\","
     "\"items\":{\"type\":\"array\",\"items\":{\"type\":\"number\"},\"minItems\":2,\"maxItems\":2}},\"rle\":{"
     "\"type\":\"object\",\"description\":\"COCO RLE {size:[h,w],counts:[...] or string}\"},\"text\":{\"type\":"
     "\"string\"},\"source\":{\"type\":\"string\",\"enum\":[\"human\",\"model\"]},\"score\":{\"type\":\"number\","
     "\"minimum\":0,\"maximum\":1}}}"},
    {"AnnotationDoc",
     "{\"type\":\"object\",\"required\":[\"revision\"],\"properties\":{\"revision\":{\"type\":\"integer\"},\"tags\":{"
     "\"type\":\"array\",\"items\":{\"type\":\"string\"}},\"shapes\":{\"type\":\"array\",\"items\":{\"$ref\":"
     "\"#/components/schemas/Shape\"}}}}"},
    {"AnnotationItem",
     "{\"type\":\"object\",\"properties\":{\"set_id\":{\"type\":\"integer\"},\"image_id\":{\"type\":\"integer\"},"
     "\"filename\":{\"type\":\"string\"},\"width\":{\"type\":\"integer\"},\"height\":{\"type\":\"integer\"},"
     "\"task_id\":{\"type\":\"integer\",\"nullable\":true},\"status\":{\"type\":\"string\",\"enum\":[\"new\","
     "\"in_progress\",\"submitted\",\"accepted\",\"rejected\"]},\"revision\":{\"type\":\"integer\"},\"tags\":{"
     "\"type\":\"array\",\"items\":{\"type\":\"string\"}},\"shapes\":{\"type\":\"array\",\"items\":{\"$ref\":"
     "\"#/components/schemas/Shape\"}},\"annotated_by\":{\"type\":\"integer\",\"nullable\":true},\"annotator\":{"
     "\"type\":\"string\",\"nullable\":true},\"annotated_at\":{\"type\":\"string\",\"nullable\":true},\"locked_by\":{"
     "\"type\":\"integer\",\"nullable\":true},\"locker\":{\"type\":\"string\",\"nullable\":true},"
     "\"lock_expires_at\":{\"type\":\"string\",\"nullable\":true},\"reviewed_by\":{\"type\":\"integer\",\"nullable\":"
     "true},\"reviewer\":{\"type\":\"string\",\"nullable\":true},\"reviewed_at\":{\"type\":\"string\",\"nullable\":"
     "true},\"review_comment\":{\"type\":\"string\",\"nullable\":true},\"updated_at\":{\"type\":\"string\"}}}"},
    {"Review",
     "{\"type\":\"object\",\"required\":[\"decision\"],\"properties\":{\"decision\":{\"type\":\"string\",\"enum\":["
     "\"accept\",\"reject\"]},\"comment\":{\"type\":\"string\"},\"revision\":{\"type\":\"integer\"}}}"},
    {"AnnotationTask",
     "{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"integer\"},\"set_id\":{\"type\":\"integer\"},\"name\":{"
     "\"type\":\"string\"},\"assignee_id\":{\"type\":\"integer\",\"nullable\":true},\"assignee\":{\"type\":\"string\","
     "\"nullable\":true},\"created_at\":{\"type\":\"string\"},\"total\":{\"type\":\"integer\"},\"counts\":{\"$ref\":"
     "\"#/components/schemas/StatusCounts\"}}}"},
    {"Progress",
     "{\"type\":\"object\",\"properties\":{\"set_id\":{\"type\":\"integer\"},\"total\":{\"type\":\"integer\"},"
     "\"annotated\":{\"type\":\"integer\"},\"done\":{\"type\":\"number\"},\"counts\":{\"$ref\":"
     "\"#/components/schemas/StatusCounts\"},\"annotators\":{\"type\":\"array\",\"items\":{\"type\":\"object\"}},"
     "\"reviewers\":{\"type\":\"array\",\"items\":{\"type\":\"object\"}}}}"},
    {"NewDatasetVersion",
     "{\"type\":\"object\",\"required\":[\"name\"],\"properties\":{\"name\":{\"type\":\"string\",\"maxLength\":200},"
     "\"split\":{\"type\":\"object\",\"properties\":{\"train\":{\"type\":\"number\"},\"val\":{\"type\":\"number\"},"
     "\"test\":{\"type\":\"number\"}}},\"seed\":{\"type\":\"integer\",\"minimum\":0}}}"},
    {"DatasetVersion",
     "{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"integer\"},\"project_id\":{\"type\":\"integer\"},"
     "\"set_id\":{\"type\":\"integer\",\"nullable\":true},\"name\":{\"type\":\"string\"},\"task\":{\"type\":"
     "\"string\"},\"split\":{\"type\":\"object\"},\"seed\":{\"type\":\"integer\"},\"content_hash\":{\"type\":"
     "\"string\"},\"labels\":{\"type\":\"array\",\"items\":{\"type\":\"object\"}},\"counts\":{\"type\":\"object\"},"
     "\"created_by\":{\"type\":\"integer\",\"nullable\":true},\"creator\":{\"type\":\"string\",\"nullable\":true},"
     "\"created_at\":{\"type\":\"string\"},\"image_count\":{\"type\":\"integer\"}}}"},
    {"DatasetVersionItem",
     "{\"type\":\"object\",\"properties\":{\"image_id\":{\"type\":\"integer\"},\"blob_hash\":{\"type\":\"string\"},"
     "\"filename\":{\"type\":\"string\"},\"width\":{\"type\":\"integer\"},\"height\":{\"type\":\"integer\"},"
     "\"split\":{\"type\":\"string\"},\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}},\"shapes\":{"
     "\"type\":\"array\",\"items\":{\"$ref\":\"#/components/schemas/Shape\"}}}}"},
};

int acv_api_annotations(acv_router *r, const acv_server_config *cfg)
{
    int rc = 0;
    for (size_t i = 0; !rc && i < sizeof SCHEMAS / sizeof SCHEMAS[0]; i++) rc = acv_router_add_schema(r, SCHEMAS[i][0], SCHEMAS[i][1]);
    return rc ? rc : acv_router_add(r, ROUTES, (int)(sizeof ROUTES / sizeof ROUTES[0]));
}
