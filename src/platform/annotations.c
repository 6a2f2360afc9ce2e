/* Annotation sets, tasks, items, review and progress (see annotations.h). */
#include "platform/annotations.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "autocv/error.h"
#include "platform/audit.h"
#include "platform/jsonarg.h"

static const char *const STATUSES[] = {"new", "in_progress", "submitted", "accepted", "rejected", NULL};

/* The item fields a GET returns that a PUT may send back unchanged (they are ignored). */
static const char *const ITEM_READONLY[] = {
    "revision", "set_id", "image_id", "filename", "width", "height", "task_id", "status", "tag_count", "shape_count",
    "annotated_by", "annotator", "annotated_at", "locked_by", "locker", "lock_expires_at", "reviewed_by", "reviewer",
    "reviewed_at", "review_comment", "updated_at", NULL};

static void time_text(int64_t t, char out[ACV_DB_TIME_LEN]) { acv_db_time(t, out); }

static int64_t iso_unix(const char *s)
{
    struct tm tm = {0};
    if (!s || sscanf(s, "%d-%d-%dT%d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
                     &tm.tm_sec) != 6)
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm);
}

/* Moves the integer columns named prefix+status into obj["counts"] = {status: n}. */
static void fold_counts(json_t *obj, const char *prefix)
{
    json_t *counts = json_object();
    for (int i = 0; STATUSES[i]; i++) {
        char k[32];
        snprintf(k, sizeof k, "%s%s", prefix, STATUSES[i]);
        json_t *v = json_object_get(obj, k);
        json_object_set_new(counts, STATUSES[i], json_integer(json_is_integer(v) ? json_integer_value(v) : 0));
        json_object_del(obj, k);
    }
    json_object_set_new(obj, "counts", counts);
}

#define STATUS_SUMS(a)                                                                                        \
    "coalesce(SUM(" a "status = 'new'), 0) AS c_new, coalesce(SUM(" a "status = 'in_progress'), 0) AS c_in_progress, " \
    "coalesce(SUM(" a "status = 'submitted'), 0) AS c_submitted, coalesce(SUM(" a "status = 'accepted'), 0) AS "    \
    "c_accepted, coalesce(SUM(" a "status = 'rejected'), 0) AS c_rejected"

/* ---- labels ------------------------------------------------------------------------------ */

/* Label names for validation: exact names first, then aliases that name one label only. */
typedef struct resolver {
    acv_dbconn *c;
    int64_t project_id;
    json_t *cache; /* name as given -> the label's name */
} resolver;

static int resolve_label(void *ud, const char *name, const char **canon)
{
    resolver *r = ud;
    json_t *hit = json_object_get(r->cache, name);
    if (hit) {
        *canon = json_string_value(hit);
        return 0;
    }
    int64_t id = 0;
    char *found = NULL;
    int rc = acv_db_query_int(r->c, &id, 0, "SELECT id FROM labels WHERE project_id = ? AND name = ?", "Is",
                              r->project_id, name);
    if (!rc && id) found = strdup(name);
    if (!rc && !id) {
        json_t *rows = NULL;
        rc = acv_db_query(r->c, &rows,
                          "SELECT l.name FROM labels l, json_each(l.aliases_json) a WHERE l.project_id = ? "
                          "AND a.value = ? GROUP BY l.id ORDER BY l.name LIMIT 3",
                          "Is", r->project_id, name);
        size_t n = json_array_size(rows);
        if (!rc && n == 0) {
            rc = acv_error(ACV_EINVAL, "unknown label '%s' (not a label or an alias in project %lld)", name,
                           (long long)r->project_id);
        } else if (!rc && n > 1) {
            rc = acv_error(ACV_EINVAL, "'%s' is an alias of several labels ('%s', '%s'%s); use the label's name", name,
                           json_string_value(json_object_get(json_array_get(rows, 0), "name")),
                           json_string_value(json_object_get(json_array_get(rows, 1), "name")), n > 2 ? ", ..." : "");
        } else if (!rc) {
            found = strdup(json_string_value(json_object_get(json_array_get(rows, 0), "name")));
        }
        json_decref(rows);
    }
    if (!rc && !found) rc = acv_error(ACV_ENOMEM, "out of memory");
    if (!rc) {
        json_object_set_new(r->cache, name, json_string(found));
        *canon = json_string_value(json_object_get(r->cache, name));
    }
    free(found);
    return rc;
}

/* ---- sets ------------------------------------------------------------------------------ */

#define SET_SELECT                                                                                           \
    "SELECT s.id, s.project_id, s.name, s.task, s.lock_seconds, s.created_by, u.username AS creator, "       \
    "s.created_at, s.updated_at FROM annotation_sets s LEFT JOIN users u ON u.id = s.created_by "

int acv_annset_project(acv_dbconn *c, int64_t id, int64_t *project_id)
{
    int rc = acv_db_query_int(c, project_id, 0, "SELECT project_id FROM annotation_sets WHERE id = ?", "I", id);
    if (!rc && !*project_id) rc = acv_error(ACV_ENOTFOUND, "annotation set %lld not found", (long long)id);
    return rc;
}

int acv_annset_task(acv_dbconn *c, int64_t id, acv_ann_task *task, int64_t *lock_seconds)
{
    json_t *row = NULL;
    int rc = acv_db_query_row(c, &row, "SELECT task, lock_seconds FROM annotation_sets WHERE id = ?", "I", id);
    if (!rc && !row) rc = acv_error(ACV_ENOTFOUND, "annotation set %lld not found", (long long)id);
    if (!rc) rc = acv_ann_task_parse(json_string_value(json_object_get(row, "task")), task);
    if (!rc && lock_seconds) *lock_seconds = json_integer_value(json_object_get(row, "lock_seconds"));
    json_decref(row);
    return rc;
}

/* Adds the counts to a set row. */
static int set_decorate(acv_dbconn *c, json_t *s)
{
    int64_t id = json_integer_value(json_object_get(s, "id"));
    json_t *row = NULL;
    int rc = acv_db_query_row(c, &row, "SELECT COUNT(*) AS total, " STATUS_SUMS("") " FROM annotation_items WHERE set_id = ?",
                              "I", id);
    int64_t tasks = 0;
    if (!rc) rc = acv_db_query_int(c, &tasks, 0, "SELECT COUNT(*) FROM annotation_tasks WHERE set_id = ?", "I", id);
    if (!rc) {
        fold_counts(row, "c_");
        json_int_t total = json_integer_value(json_object_get(row, "total"));
        json_int_t acc = json_integer_value(json_object_get(json_object_get(row, "counts"), "accepted"));
        json_object_update(s, row);
        json_object_set_new(s, "task_count", json_integer(tasks));
        json_object_set_new(s, "done", json_real(total ? (double)acc / (double)total : 0.0));
    }
    json_decref(row);
    return rc;
}

int acv_annset_get(acv_dbconn *c, int64_t id, json_t **out)
{
    int rc = acv_db_query_row(c, out, SET_SELECT "WHERE s.id = ?", "I", id);
    if (!rc && !*out) rc = acv_error(ACV_ENOTFOUND, "annotation set %lld not found", (long long)id);
    if (!rc) rc = set_decorate(c, *out);
    if (rc) {
        json_decref(*out);
        *out = NULL;
    }
    return rc;
}

int acv_annset_list(acv_dbconn *c, int64_t project_id, int limit, int offset, json_t **items, int64_t *total)
{
    int rc = acv_db_query_int(c, total, 0, "SELECT COUNT(*) FROM annotation_sets WHERE project_id = ?", "I", project_id);
    if (!rc)
        rc = acv_db_query(c, items, SET_SELECT "WHERE s.project_id = ? ORDER BY s.id LIMIT ? OFFSET ?", "Iii",
                          project_id, limit, offset);
    size_t i;
    json_t *s;
    json_array_foreach(rc ? NULL : *items, i, s) if ((rc = set_decorate(c, s))) break;
    return rc;
}

/* "2024-05-01" or "2024-05-01T12:00:00Z". */
static bool iso_ok(const char *s)
{
    static const char *const PAT = "dddd-dd-ddTdd:dd:ddZ";
    size_t n = strlen(s);
    if (n != 10 && n != 20) return false;
    for (size_t i = 0; i < n; i++)
        if (PAT[i] == 'd' ? !isdigit((unsigned char)s[i]) : s[i] != PAT[i]) return false;
    return true;
}

/* Inserts the items selected by in's image_ids or filter into set_id. */
static int select_images(acv_dbconn *c, int64_t project_id, int64_t set_id, const json_t *in, const char *now,
                         int64_t *added)
{
    json_t *ids = json_object_get(in, "image_ids"), *filter = json_object_get(in, "filter");
    if (ids && filter) return acv_error(ACV_EINVAL, "give 'image_ids' or 'filter', not both");
    if (!ids && !filter)
        return acv_error(ACV_EFORMAT, "field 'image_ids' or 'filter' is required ({\"filter\":{}} selects every image "
                                      "of the project)");
    int rc;
    if (ids) {
        if (!json_is_array(ids)) return acv_error(ACV_EFORMAT, "field 'image_ids' must be an array of image ids");
        if (json_array_size(ids) > ACV_ANNSET_SELECT_MAX)
            return acv_error(ACV_EINVAL, "field 'image_ids' has %zu entries (at most %d per request)",
                             json_array_size(ids), ACV_ANNSET_SELECT_MAX);
        size_t i;
        json_t *v;
        json_array_foreach(ids, i, v) if (!json_is_integer(v) || json_integer_value(v) < 1)
            return acv_error(ACV_EFORMAT, "image_ids[%zu] must be a positive integer (an image id)", i);
        json_t *bad = NULL;
        rc = acv_db_query_row(c, &bad,
                              "SELECT j.key AS k, j.value AS v FROM json_each(?1) j WHERE NOT EXISTS (SELECT 1 FROM "
                              "images WHERE id = j.value AND project_id = ?2) LIMIT 1",
                              "jI", ids, project_id);
        if (!rc && bad)
            rc = acv_error(ACV_EINVAL, "image_ids[%lld]: image %lld is not an image of project %lld",
                           (long long)json_integer_value(json_object_get(bad, "k")),
                           (long long)json_integer_value(json_object_get(bad, "v")), (long long)project_id);
        json_decref(bad);
        if (!rc)
            rc = acv_db_exec(c,
                             "INSERT OR IGNORE INTO annotation_items(set_id, image_id, updated_at) SELECT ?1, i.id, ?2 "
                             "FROM json_each(?3) j JOIN images i ON i.id = j.value WHERE i.project_id = ?4 ORDER BY j.key",
                             "IsjI", set_id, now, ids, project_id);
    } else {
        static const char *const KEYS[] = {"uploaded_after", "uploaded_before", "filename", NULL};
        const char *after = NULL, *before = NULL, *glob = NULL;
        if (!json_is_object(filter))
            return acv_error(ACV_EFORMAT, "field 'filter' must be an object (uploaded_after, uploaded_before, filename)");
        rc = acv_jarg_only(filter, KEYS);
        if (!rc) rc = acv_jarg_str(filter, "uploaded_after", false, 32, &after);
        if (!rc) rc = acv_jarg_str(filter, "uploaded_before", false, 32, &before);
        if (!rc) rc = acv_jarg_str(filter, "filename", false, 1024, &glob);
        if (rc) return acv_error_prefix(rc, "filter: ");
        if ((after && !iso_ok(after)) || (before && !iso_ok(before)))
            return acv_error(ACV_EINVAL, "filter: '%s' is not a date (2024-05-01) or UTC time (2024-05-01T12:00:00Z)",
                             after && !iso_ok(after) ? after : before);
        rc = acv_db_exec(c,
                         "INSERT OR IGNORE INTO annotation_items(set_id, image_id, updated_at) SELECT ?1, id, ?2 FROM "
                         "images WHERE project_id = ?3 AND (?4 IS NULL OR created_at >= ?4) AND (?5 IS NULL OR "
                         "created_at < ?5) AND (?6 IS NULL OR lower(filename) GLOB lower(?6)) ORDER BY id",
                         "IsIsss", set_id, now, project_id, after, before, glob);
    }
    if (!rc) *added = acv_db_changes(c);
    return rc;
}

int acv_annset_create(acv_dbconn *c, const acv_principal *who, int64_t project_id, const json_t *in, int64_t *id)
{
    static const char *const FIELDS[] = {"name", "task", "lock_seconds", "image_ids", "filter", NULL};
    const char *name = NULL, *task_s = NULL;
    int64_t lock_s = 600, added = 0;
    acv_ann_task task;
    int rc = acv_jarg_only(in, FIELDS);
    if (!rc) rc = acv_jarg_str(in, "name", true, ACV_ANNSET_NAME_MAX, &name);
    if (!rc && !*name) rc = acv_error(ACV_EINVAL, "field 'name' must not be empty");
    if (!rc) rc = acv_jarg_str(in, "task", true, 0, &task_s);
    if (!rc) rc = acv_ann_task_parse(task_s, &task);
    if (!rc) rc = acv_jarg_int(in, "lock_seconds", false, 1, 86400, &lock_s, NULL);
    if (rc) return rc;
    char now[ACV_DB_TIME_LEN];
    time_text(acv_db_now(), now);
    if ((rc = acv_db_begin(c))) return rc;
    rc = acv_db_exec(c,
                     "INSERT INTO annotation_sets(project_id, name, task, lock_seconds, created_by, created_at, updated_at) "
                     "VALUES(?, ?, ?, ?, ?, ?, ?)",
                     "IssIIss", project_id, name, task_s, lock_s, who->user_id, now, now);
    if (rc == ACV_EEXIST)
        rc = acv_error(ACV_EEXIST, "an annotation set named '%s' already exists in project %lld", name,
                       (long long)project_id);
    if (!rc) *id = acv_db_last_id(c);
    if (!rc) rc = select_images(c, project_id, *id, in, now, &added);
    if (!rc)
        rc = acv_audit_write(c, who, "create", "annotation_set", *id, project_id,
                             json_pack("{s:s, s:s, s:I}", "name", name, "task", task_s, "images", (json_int_t)added));
    return acv_db_end(c, rc);
}

int acv_annset_add(acv_dbconn *c, const acv_principal *who, int64_t id, const json_t *in, int64_t *added)
{
    static const char *const FIELDS[] = {"image_ids", "filter", NULL};
    int64_t project_id = 0;
    int rc = acv_jarg_only(in, FIELDS);
    if (rc) return rc;
    char now[ACV_DB_TIME_LEN];
    time_text(acv_db_now(), now);
    if ((rc = acv_db_begin(c))) return rc;
    rc = acv_annset_project(c, id, &project_id);
    if (!rc) rc = select_images(c, project_id, id, in, now, added);
    if (!rc && *added)
        rc = acv_db_exec(c, "UPDATE annotation_sets SET updated_at = ? WHERE id = ?", "sI", now, id);
    if (!rc)
        rc = acv_audit_write(c, who, "add_images", "annotation_set", id, project_id,
                             json_pack("{s:I}", "images", (json_int_t)*added));
    return acv_db_end(c, rc);
}

int acv_annset_delete(acv_dbconn *c, const acv_principal *who, int64_t id)
{
    int rc = acv_db_begin(c);
    if (rc) return rc;
    json_t *s = NULL;
    rc = acv_db_query_row(c, &s, "SELECT project_id, name FROM annotation_sets WHERE id = ?", "I", id);
    if (!rc && !s) rc = acv_error(ACV_ENOTFOUND, "annotation set %lld not found", (long long)id);
    if (!rc) rc = acv_db_exec(c, "DELETE FROM annotation_sets WHERE id = ?", "I", id);
    if (!rc)
        rc = acv_audit_write(c, who, "delete", "annotation_set", id, json_integer_value(json_object_get(s, "project_id")),
                             json_pack("{s:O}", "name", json_object_get(s, "name")));
    json_decref(s);
    return acv_db_end(c, rc);
}

/* count / hours between first and last (at least one minute); null without a count. */
static json_t *throughput(int64_t count, const char *first, const char *last)
{
    if (count <= 0) return json_null();
    double span = (double)(iso_unix(last) - iso_unix(first));
    if (span < 60) span = 60;
    return json_real((double)count * 3600.0 / span);
}

static json_t *rate(int64_t part, int64_t whole) { return whole > 0 ? json_real((double)part / (double)whole) : json_null(); }

int acv_annset_progress(acv_dbconn *c, int64_t id, json_t **out)
{
    json_t *sum = NULL, *ann = NULL, *recv = NULL, *rev = NULL;
    *out = NULL;
    int rc = acv_db_query_row(c, &sum,
                              "SELECT ?1 AS set_id, COUNT(*) AS total, coalesce(SUM(revision > 0 OR status != 'new'), 0) "
                              "AS annotated, " STATUS_SUMS("") " FROM annotation_items WHERE set_id = ?1",
                              "I", id);
    if (!rc)
        rc = acv_db_query(c, &ann,
                          "SELECT a.annotated_by AS user_id, u.username, COUNT(*) AS annotated, "
                          "SUM(a.status = 'in_progress') AS in_progress, SUM(a.status = 'submitted') AS submitted, "
                          "SUM(a.status = 'accepted') AS accepted, SUM(a.status = 'rejected') AS rejected, "
                          "MIN(a.annotated_at) AS first_save_at, MAX(a.annotated_at) AS last_save_at "
                          "FROM annotation_items a LEFT JOIN users u ON u.id = a.annotated_by "
                          "WHERE a.set_id = ? AND a.annotated_by IS NOT NULL GROUP BY a.annotated_by ORDER BY u.username",
                          "I", id);
    if (!rc)
        rc = acv_db_query(c, &recv,
                          "SELECT annotator_id, COUNT(*) AS n, SUM(decision = 'reject') AS rejected FROM reviews "
                          "WHERE set_id = ? AND annotator_id IS NOT NULL GROUP BY annotator_id",
                          "I", id);
    if (!rc)
        rc = acv_db_query(c, &rev,
                          "SELECT r.reviewer_id AS user_id, u.username, COUNT(*) AS reviewed, "
                          "SUM(r.decision = 'accept') AS accepted, SUM(r.decision = 'reject') AS rejected, "
                          "MIN(r.created_at) AS first_review_at, MAX(r.created_at) AS last_review_at "
                          "FROM reviews r LEFT JOIN users u ON u.id = r.reviewer_id WHERE r.set_id = ? AND "
                          "r.reviewer_id IS NOT NULL GROUP BY r.reviewer_id ORDER BY u.username",
                          "I", id);
    if (!rc) {
        size_t i, j;
        json_t *a, *r;
        json_array_foreach(ann, i, a) {
            int64_t uid = json_integer_value(json_object_get(a, "user_id")), n = 0, rej = 0;
            json_array_foreach(recv, j, r) if (json_integer_value(json_object_get(r, "annotator_id")) == uid) {
                n = json_integer_value(json_object_get(r, "n"));
                rej = json_integer_value(json_object_get(r, "rejected"));
            }
            json_object_set_new(a, "reviews_received", json_integer(n));
            json_object_set_new(a, "rejections_received", json_integer(rej));
            json_object_set_new(a, "rejection_rate", rate(rej, n));
            json_object_set_new(a, "throughput_per_hour",
                                throughput(json_integer_value(json_object_get(a, "annotated")),
                                           json_string_value(json_object_get(a, "first_save_at")),
                                           json_string_value(json_object_get(a, "last_save_at"))));
        }
        json_array_foreach(rev, i, r) {
            int64_t n = json_integer_value(json_object_get(r, "reviewed"));
            json_object_set_new(r, "rejection_rate", rate(json_integer_value(json_object_get(r, "rejected")), n));
            json_object_set_new(r, "throughput_per_hour",
                                throughput(n, json_string_value(json_object_get(r, "first_review_at")),
                                           json_string_value(json_object_get(r, "last_review_at"))));
        }
        fold_counts(sum, "c_");
        int64_t total = json_integer_value(json_object_get(sum, "total"));
        json_object_set_new(sum, "done",
                            json_real(total ? (double)json_integer_value(json_object_get(json_object_get(sum, "counts"),
                                                                                         "accepted")) / (double)total
                                            : 0.0));
        json_object_set_new(sum, "annotators", ann);
        json_object_set_new(sum, "reviewers", rev);
        ann = rev = NULL;
        *out = sum;
        sum = NULL;
    }
    json_decref(sum);
    json_decref(ann);
    json_decref(recv);
    json_decref(rev);
    return rc;
}

/* ---- tasks ------------------------------------------------------------------------------ */

#define TASK_SELECT                                                                                          \
    "SELECT t.id, t.set_id, t.name, t.assignee_id, u.username AS assignee, t.created_at, "                   \
    "COUNT(a.image_id) AS total, " STATUS_SUMS("a.") " FROM annotation_tasks t "                              \
    "LEFT JOIN users u ON u.id = t.assignee_id LEFT JOIN annotation_items a ON a.task_id = t.id "

int acv_anntask_project(acv_dbconn *c, int64_t task_id, int64_t *project_id)
{
    int rc = acv_db_query_int(c, project_id, 0,
                              "SELECT s.project_id FROM annotation_tasks t JOIN annotation_sets s ON s.id = t.set_id "
                              "WHERE t.id = ?",
                              "I", task_id);
    if (!rc && !*project_id) rc = acv_error(ACV_ENOTFOUND, "annotation task %lld not found", (long long)task_id);
    return rc;
}

static void fold_all(json_t *rows)
{
    size_t i;
    json_t *r;
    json_array_foreach(rows, i, r) fold_counts(r, "c_");
}

static int task_get(acv_dbconn *c, int64_t id, json_t **out)
{
    int rc = acv_db_query_row(c, out, TASK_SELECT "WHERE t.id = ? GROUP BY t.id", "I", id);
    if (!rc && !*out) rc = acv_error(ACV_ENOTFOUND, "annotation task %lld not found", (long long)id);
    if (!rc) fold_counts(*out, "c_");
    return rc;
}

int acv_anntask_list(acv_dbconn *c, int64_t set_id, int64_t assignee_id, int limit, int offset, json_t **items,
                     int64_t *total)
{
    int rc = acv_db_query_int(c, total, 0,
                              "SELECT COUNT(*) FROM annotation_tasks WHERE set_id = ?1 AND (?2 = 0 OR assignee_id = ?2)",
                              "II", set_id, assignee_id);
    if (!rc)
        rc = acv_db_query(c, items,
                          TASK_SELECT "WHERE t.set_id = ?1 AND (?2 = 0 OR t.assignee_id = ?2) GROUP BY t.id ORDER BY "
                                      "t.id LIMIT ?3 OFFSET ?4",
                          "IIii", set_id, assignee_id, limit, offset);
    if (!rc) fold_all(*items);
    return rc;
}

/* user_id may take work in the project: a member who may annotate, or an admin. */
static int check_assignee(acv_dbconn *c, int64_t project_id, int64_t user_id, const char *where)
{
    int64_t ok = 0;
    int rc = acv_db_query_int(c, &ok, 0,
                              "SELECT 1 FROM users u WHERE u.id = ?1 AND u.disabled = 0 AND ((u.roles & ?3) != 0 OR "
                              "EXISTS (SELECT 1 FROM project_members m WHERE m.project_id = ?2 AND m.user_id = u.id AND "
                              "m.role IN ('owner', 'engineer', 'annotator')))",
                              "IIi", user_id, project_id, (int)ACV_ROLE_ADMIN);
    if (!rc && !ok)
        rc = acv_error(ACV_EINVAL, "%s: user %lld is not a member of project %lld who may annotate (owner, engineer or "
                                   "annotator)",
                       where, (long long)user_id, (long long)project_id);
    return rc;
}

int acv_anntask_split(acv_dbconn *c, const acv_principal *who, int64_t set_id, const json_t *in, json_t **created)
{
    static const char *const FIELDS[] = {"size", "assignees", NULL};
    int64_t size = 0, project_id = 0;
    *created = NULL;
    int rc = acv_jarg_only(in, FIELDS);
    if (!rc) rc = acv_jarg_int(in, "size", true, 1, 100000, &size, NULL);
    json_t *as = json_object_get(in, "assignees");
    if (!rc && as && !json_is_null(as) && !json_is_array(as))
        rc = acv_error(ACV_EFORMAT, "field 'assignees' must be an array of user ids");
    size_t na = json_array_size(as);
    for (size_t i = 0; !rc && i < na; i++)
        if (!json_is_integer(json_array_get(as, i)) || json_integer_value(json_array_get(as, i)) < 1)
            rc = acv_error(ACV_EFORMAT, "assignees[%zu] must be a user id", i);
    if (rc) return rc;
    char now[ACV_DB_TIME_LEN];
    time_text(acv_db_now(), now);
    if ((rc = acv_db_begin(c))) return rc;
    rc = acv_annset_project(c, set_id, &project_id);
    for (size_t i = 0; !rc && i < na; i++) {
        char where[32];
        snprintf(where, sizeof where, "assignees[%zu]", i);
        rc = check_assignee(c, project_id, json_integer_value(json_array_get(as, i)), where);
    }
    int64_t n = 0, existing = 0, first = 0;
    if (!rc)
        rc = acv_db_query_int(c, &n, 0, "SELECT COUNT(*) FROM annotation_items WHERE set_id = ? AND task_id IS NULL", "I",
                              set_id);
    if (!rc && n == 0) rc = acv_error(ACV_EINVAL, "every image of annotation set %lld is already in a task", (long long)set_id);
    if (!rc) rc = acv_db_query_int(c, &existing, 0, "SELECT COUNT(*) FROM annotation_tasks WHERE set_id = ?", "I", set_id);
    int64_t ntasks = (n + size - 1) / size;
    for (int64_t t = 0; !rc && t < ntasks; t++) {
        char name[32];
        snprintf(name, sizeof name, "Task %lld", (long long)(existing + t + 1));
        int64_t assignee = na ? json_integer_value(json_array_get(as, (size_t)t % na)) : 0;
        rc = acv_db_exec(c, "INSERT INTO annotation_tasks(set_id, name, assignee_id, created_at) VALUES(?, ?, NULLIF(?, 0), ?)",
                         "IsIs", set_id, name, assignee, now);
        int64_t tid = acv_db_last_id(c);
        if (!first) first = tid;
        if (!rc)
            rc = acv_db_exec(c,
                             "UPDATE annotation_items SET task_id = ?1 WHERE set_id = ?2 AND image_id IN (SELECT image_id "
                             "FROM annotation_items WHERE set_id = ?2 AND task_id IS NULL ORDER BY image_id LIMIT ?3)",
                             "III", tid, set_id, size);
    }
    if (!rc)
        rc = acv_audit_write(c, who, "split", "annotation_set", set_id, project_id,
                             json_pack("{s:I, s:I, s:O}", "tasks", (json_int_t)ntasks, "size", (json_int_t)size,
                                       "assignees", as ? as : json_null()));
    if (!rc) rc = acv_db_query(c, created, TASK_SELECT "WHERE t.set_id = ? AND t.id >= ? GROUP BY t.id ORDER BY t.id", "II",
                               set_id, first);
    if (!rc) fold_all(*created);
    rc = acv_db_end(c, rc);
    if (rc) {
        json_decref(*created);
        *created = NULL;
    }
    return rc;
}

int acv_anntask_claim(acv_dbconn *c, const acv_principal *who, int64_t set_id, json_t **task)
{
    *task = NULL;
    int64_t tid = 0, project_id = 0;
    int rc = acv_db_begin(c);
    if (rc) return rc;
    rc = acv_annset_project(c, set_id, &project_id);
    if (!rc)
        rc = acv_db_query_int(c, &tid, 0,
                              "SELECT id FROM annotation_tasks WHERE set_id = ? AND assignee_id IS NULL ORDER BY id LIMIT 1",
                              "I", set_id);
    if (!rc && !tid) rc = acv_error(ACV_ENOTFOUND, "no unassigned task left in annotation set %lld", (long long)set_id);
    if (!rc) rc = acv_db_exec(c, "UPDATE annotation_tasks SET assignee_id = ? WHERE id = ?", "II", who->user_id, tid);
    if (!rc) rc = acv_audit_write(c, who, "claim", "annotation_task", tid, project_id, json_pack("{s:I}", "set_id", (json_int_t)set_id));
    if (!rc) rc = task_get(c, tid, task);
    rc = acv_db_end(c, rc);
    if (rc) {
        json_decref(*task);
        *task = NULL;
    }
    return rc;
}

int acv_anntask_update(acv_dbconn *c, const acv_principal *who, int64_t task_id, const json_t *patch, json_t **out)
{
    static const char *const FIELDS[] = {"name", "assignee_id", NULL};
    const char *name = NULL;
    int64_t assignee = 0, project_id = 0;
    bool has_assignee = false;
    *out = NULL;
    int rc = acv_jarg_only(patch, FIELDS);
    if (!rc) rc = acv_jarg_str(patch, "name", false, ACV_ANNSET_NAME_MAX, &name);
    if (!rc && name && !*name) rc = acv_error(ACV_EINVAL, "field 'name' must not be empty");
    if (!rc) rc = acv_jarg_int(patch, "assignee_id", false, 1, INT64_MAX, &assignee, &has_assignee);
    if (rc) return rc;
    bool to_pool = json_is_null(json_object_get(patch, "assignee_id"));
    if ((rc = acv_db_begin(c))) return rc;
    rc = acv_anntask_project(c, task_id, &project_id);
    if (!rc && has_assignee) rc = check_assignee(c, project_id, assignee, "assignee_id");
    if (!rc && name) rc = acv_db_exec(c, "UPDATE annotation_tasks SET name = ? WHERE id = ?", "sI", name, task_id);
    if (!rc && (has_assignee || to_pool))
        rc = acv_db_exec(c, "UPDATE annotation_tasks SET assignee_id = NULLIF(?, 0) WHERE id = ?", "II", assignee, task_id);
    if (!rc) rc = acv_audit_write(c, who, "update", "annotation_task", task_id, project_id, json_deep_copy(patch));
    if (!rc) rc = task_get(c, task_id, out);
    rc = acv_db_end(c, rc);
    if (rc) {
        json_decref(*out);
        *out = NULL;
    }
    return rc;
}

/* ---- items ------------------------------------------------------------------------------ */

/* ?1 is the current time (a lock is live while lock_expires_at > ?1). */
#define ITEM_COLS                                                                                            \
    "SELECT a.set_id, a.image_id, i.filename, i.width, i.height, a.task_id, a.status, a.revision, "          \
    "json_array_length(a.doc_json, '$.tags') AS tag_count, json_array_length(a.doc_json, '$.shapes') AS "     \
    "shape_count, a.annotated_by, ua.username AS annotator, a.annotated_at, "                                 \
    "CASE WHEN a.lock_expires_at > ?1 THEN a.locked_by END AS locked_by, "                                    \
    "CASE WHEN a.lock_expires_at > ?1 THEN ul.username END AS locker, "                                       \
    "CASE WHEN a.lock_expires_at > ?1 THEN a.lock_expires_at END AS lock_expires_at, "                        \
    "a.reviewed_by, ur.username AS reviewer, a.reviewed_at, a.review_comment, a.updated_at"
#define ITEM_FROM                                                                                            \
    " FROM annotation_items a JOIN images i ON i.id = a.image_id LEFT JOIN users ua ON ua.id = a.annotated_by " \
    "LEFT JOIN users ul ON ul.id = a.locked_by LEFT JOIN users ur ON ur.id = a.reviewed_by "

/* Replaces each row's "doc" by its "tags" and "shapes". */
static void lift_docs(json_t *rows)
{
    size_t i;
    json_t *r;
    json_array_foreach(rows, i, r) {
        json_t *doc = json_object_get(r, "doc");
        json_t *tags = json_object_get(doc, "tags"), *shapes = json_object_get(doc, "shapes");
        json_object_set_new(r, "tags", tags ? json_incref(tags) : json_array());
        json_object_set_new(r, "shapes", shapes ? json_incref(shapes) : json_array());
        json_object_del(r, "doc");
    }
}

static int item_load(acv_dbconn *c, int64_t set_id, int64_t image_id, json_t **out)
{
    char now[ACV_DB_TIME_LEN];
    time_text(acv_db_now(), now);
    json_t *rows = NULL;
    *out = NULL;
    int rc = acv_db_query(c, &rows, ITEM_COLS ", a.doc_json" ITEM_FROM "WHERE a.set_id = ?2 AND a.image_id = ?3", "sII",
                          now, set_id, image_id);
    if (!rc && !json_array_size(rows))
        rc = acv_error(ACV_ENOTFOUND, "image %lld is not in annotation set %lld", (long long)image_id, (long long)set_id);
    if (!rc) {
        lift_docs(rows);
        *out = json_incref(json_array_get(rows, 0));
    }
    json_decref(rows);
    return rc;
}

int acv_annitem_list(acv_dbconn *c, int64_t set_id, const acv_annitem_filter *f, int limit, int offset,
                     json_t **items, int64_t *total)
{
    acv_annitem_filter none = {0};
    if (!f) f = &none;
    bool ok = !f->status;
    for (int i = 0; !ok && STATUSES[i]; i++) ok = !strcmp(STATUSES[i], f->status);
    if (!ok)
        return acv_error(ACV_EFORMAT, "query parameter 'status': '%s' is not one of new, in_progress, submitted, "
                                      "accepted, rejected",
                         f->status);
    char now[ACV_DB_TIME_LEN];
    time_text(acv_db_now(), now);
#define ITEM_WHERE                                                                                           \
    "WHERE a.set_id = ?2 AND (?3 IS NULL OR a.status = ?3) AND (?4 = 0 OR a.task_id = ?4) AND (?5 = 0 OR "  \
    "a.task_id IN (SELECT id FROM annotation_tasks WHERE set_id = ?2 AND assignee_id = ?5)) AND (?6 = 0 OR " \
    "a.annotated_by = ?6) "
    int rc = acv_db_query_int(c, total, 0, "SELECT COUNT(*) FROM annotation_items a, (SELECT ?1) " ITEM_WHERE, "sIsIII",
                              now, set_id, f->status, f->task_id, f->assignee_id, f->annotated_by);
    if (!rc)
        rc = acv_db_query(c, items, ITEM_COLS ITEM_FROM ITEM_WHERE "ORDER BY a.image_id LIMIT ?7 OFFSET ?8", "sIsIIIii",
                          now, set_id, f->status, f->task_id, f->assignee_id, f->annotated_by, limit, offset);
#undef ITEM_WHERE
    return rc;
}

int acv_annitem_review_queue(acv_dbconn *c, int64_t set_id, int limit, int offset, json_t **items, int64_t *total)
{
    char now[ACV_DB_TIME_LEN];
    time_text(acv_db_now(), now);
    int rc = acv_db_query_int(c, total, 0, "SELECT COUNT(*) FROM annotation_items WHERE set_id = ? AND status = 'submitted'",
                              "I", set_id);
    if (!rc)
        rc = acv_db_query(c, items,
                          ITEM_COLS ", a.doc_json" ITEM_FROM "WHERE a.set_id = ?2 AND a.status = 'submitted' "
                                    "ORDER BY a.annotated_at, a.image_id LIMIT ?3 OFFSET ?4",
                          "sIii", now, set_id, limit, offset);
    if (!rc) lift_docs(*items);
    return rc;
}

int acv_annitem_assignee(acv_dbconn *c, int64_t set_id, int64_t image_id, int64_t *assignee_id, char name[72])
{
    json_t *row = NULL;
    int rc = acv_db_query_row(c, &row,
                              "SELECT coalesce(t.assignee_id, 0) AS a, coalesce(u.username, '') AS n FROM annotation_items i "
                              "LEFT JOIN annotation_tasks t ON t.id = i.task_id LEFT JOIN users u ON u.id = t.assignee_id "
                              "WHERE i.set_id = ? AND i.image_id = ?",
                              "II", set_id, image_id);
    if (!rc && !row)
        rc = acv_error(ACV_ENOTFOUND, "image %lld is not in annotation set %lld", (long long)image_id, (long long)set_id);
    if (!rc) {
        *assignee_id = json_integer_value(json_object_get(row, "a"));
        snprintf(name, 72, "%s", json_string_value(json_object_get(row, "n")));
    }
    json_decref(row);
    return rc;
}

/* The state a write checks, read inside its transaction. */
typedef struct item_state {
    char status[16];
    int64_t revision, locked_by; /* locked_by: 0 unless a live lock */
    char locker[72], lock_until[ACV_DB_TIME_LEN];
    json_t *doc;                 /* stored document (owned) */
} item_state;

static int state_load(acv_dbconn *c, int64_t set_id, int64_t image_id, const char *now, item_state *st)
{
    json_t *row = NULL;
    memset(st, 0, sizeof *st);
    int rc = acv_db_query_row(c, &row,
                              "SELECT a.status, a.revision, CASE WHEN a.lock_expires_at > ?1 THEN a.locked_by ELSE 0 END "
                              "AS lk, coalesce(u.username, '') AS locker, coalesce(a.lock_expires_at, '') AS until, "
                              "a.doc_json FROM annotation_items a LEFT JOIN users u ON u.id = a.locked_by "
                              "WHERE a.set_id = ?2 AND a.image_id = ?3",
                              "sII", now, set_id, image_id);
    if (!rc && !row)
        rc = acv_error(ACV_ENOTFOUND, "image %lld is not in annotation set %lld", (long long)image_id, (long long)set_id);
    if (!rc) {
        snprintf(st->status, sizeof st->status, "%s", json_string_value(json_object_get(row, "status")));
        st->revision = json_integer_value(json_object_get(row, "revision"));
        st->locked_by = json_integer_value(json_object_get(row, "lk"));
        snprintf(st->locker, sizeof st->locker, "%s", json_string_value(json_object_get(row, "locker")));
        snprintf(st->lock_until, sizeof st->lock_until, "%s", json_string_value(json_object_get(row, "until")));
        st->doc = json_incref(json_object_get(row, "doc"));
    }
    json_decref(row);
    return rc;
}

/* ACV_EEXIST when someone other than who holds a live lock. */
static int lock_check(const item_state *st, const acv_principal *who, int64_t image_id, json_t **conflict)
{
    if (!st->locked_by || st->locked_by == who->user_id) return 0;
    *conflict = json_pack("{s:{s:I, s:s}, s:s}", "locked_by", "id", (json_int_t)st->locked_by, "username", st->locker,
                          "lock_expires_at", st->lock_until);
    return acv_error(ACV_EEXIST, "image %lld is locked by %s until %s (the lock ends when they submit or release it, or "
                                 "when it expires)",
                     (long long)image_id, st->locker, st->lock_until);
}

/* ACV_EEXIST for a revision other than the current one, with the current item. */
static int revision_check(acv_dbconn *c, const item_state *st, int64_t set_id, int64_t image_id, int64_t sent,
                          json_t **conflict)
{
    if (sent == st->revision) return 0;
    json_t *cur = NULL;
    int rc = item_load(c, set_id, image_id, &cur);
    if (rc) return rc;
    const char *by = json_string_value(json_object_get(cur, "annotator"));
    const char *at = json_string_value(json_object_get(cur, "annotated_at"));
    *conflict = json_pack("{s:I, s:o}", "revision", (json_int_t)st->revision, "current", cur);
    return acv_error(ACV_EEXIST, "stale revision %lld: image %lld is at revision %lld (saved by %s at %s); reload it "
                                 "and apply your changes again",
                     (long long)sent, (long long)image_id, (long long)st->revision, by ? by : "nobody",
                     at ? at : "-");
}

/* The status allows who to change the document. */
static int editable(const item_state *st, bool manager, int64_t image_id)
{
    if (!strcmp(st->status, "submitted"))
        return acv_error(ACV_EEXIST, "image %lld is submitted for review; it can be changed again once reviewed",
                         (long long)image_id);
    if (!strcmp(st->status, "accepted") && !manager)
        return acv_error(ACV_EEXIST, "image %lld is accepted; only a project owner or engineer may reopen it",
                         (long long)image_id);
    return 0;
}

static int take_lock(acv_dbconn *c, const acv_principal *who, int64_t set_id, int64_t image_id, int64_t now_s)
{
    acv_ann_task task;
    int64_t lock_s = 0;
    char until[ACV_DB_TIME_LEN];
    int rc = acv_annset_task(c, set_id, &task, &lock_s);
    time_text(now_s + lock_s, until);
    if (!rc)
        rc = acv_db_exec(c, "UPDATE annotation_items SET locked_by = ?, lock_expires_at = ? WHERE set_id = ? AND image_id = ?",
                         "IsII", who->user_id, until, set_id, image_id);
    return rc;
}

int acv_annitem_get(acv_dbconn *c, const acv_principal *who, bool manager, int64_t set_id, int64_t image_id,
                    bool lock, json_t **out)
{
    *out = NULL;
    int rc = 0;
    if (lock) {
        int64_t now_s = acv_db_now();
        char now[ACV_DB_TIME_LEN];
        time_text(now_s, now);
        item_state st;
        if ((rc = acv_db_begin(c))) return rc;
        rc = state_load(c, set_id, image_id, now, &st);
        json_t *ignored = NULL;
        if (!rc && !editable(&st, manager, image_id) && !lock_check(&st, who, image_id, &ignored))
            rc = take_lock(c, who, set_id, image_id, now_s);
        json_decref(ignored);
        json_decref(st.doc);
        if ((rc = acv_db_end(c, rc))) return rc;
        acv_error_clear(); /* a refused lock is not an error for a read */
    }
    return item_load(c, set_id, image_id, out);
}

int acv_annitem_save(acv_dbconn *c, const acv_principal *who, bool manager, int64_t set_id, int64_t image_id,
                     const json_t *in, json_t **out, json_t **conflict)
{
    *out = *conflict = NULL;
    int64_t project_id = 0, lock_s = 0, sent = 0, now_s = acv_db_now();
    acv_ann_task task;
    json_t *dims = NULL, *doc = NULL;
    char now[ACV_DB_TIME_LEN], until[ACV_DB_TIME_LEN];
    time_text(now_s, now);
    int rc = acv_jarg_int(in, "revision", true, 0, INT64_MAX, &sent, NULL);
    if (rc == ACV_EFORMAT && !json_object_get(in, "revision"))
        rc = acv_error(ACV_EFORMAT, "field 'revision' is required: the revision the edit is based on (0 for a new image)");
    if (!rc) rc = acv_annset_project(c, set_id, &project_id);
    if (!rc) rc = acv_annset_task(c, set_id, &task, &lock_s);
    if (!rc)
        rc = acv_db_query_row(c, &dims,
                              "SELECT i.width, i.height FROM annotation_items a JOIN images i ON i.id = a.image_id "
                              "WHERE a.set_id = ? AND a.image_id = ?",
                              "II", set_id, image_id);
    if (!rc && !dims)
        rc = acv_error(ACV_ENOTFOUND, "image %lld is not in annotation set %lld", (long long)image_id, (long long)set_id);
    if (!rc) {
        /* Validation reads labels outside the write transaction: it may take a while for a
         * large document, and labels changing meanwhile is harmless (ids are stored). */
        resolver r = {c, project_id, json_object()};
        rc = acv_ann_doc_validate(in, task, (int)json_integer_value(json_object_get(dims, "width")),
                                  (int)json_integer_value(json_object_get(dims, "height")), resolve_label, &r,
                                  ITEM_READONLY, &doc);
        json_decref(r.cache);
    }
    json_decref(dims);
    if (rc) return rc;
    time_text(now_s + lock_s, until);
    item_state st = {0};
    if ((rc = acv_db_begin(c))) {
        json_decref(doc);
        return rc;
    }
    rc = state_load(c, set_id, image_id, now, &st);
    if (!rc) rc = lock_check(&st, who, image_id, conflict);
    if (!rc) rc = editable(&st, manager, image_id);
    if (!rc) rc = revision_check(c, &st, set_id, image_id, sent, conflict);
    if (!rc)
        rc = acv_db_exec(c,
                         "UPDATE annotation_items SET doc_json = ?1, revision = revision + 1, status = 'in_progress', "
                         "annotated_by = ?2, annotated_at = ?3, locked_by = ?2, lock_expires_at = ?4, updated_at = ?3 "
                         "WHERE set_id = ?5 AND image_id = ?6 AND revision = ?7",
                         "jIssIII", doc, who->user_id, now, until, set_id, image_id, sent);
    if (!rc)
        rc = acv_audit_write(c, who, "save", "annotation_item", image_id, project_id,
                             json_pack("{s:I, s:I, s:I, s:I}", "set_id", (json_int_t)set_id, "revision",
                                       (json_int_t)(sent + 1), "shapes",
                                       (json_int_t)json_array_size(json_object_get(doc, "shapes")), "tags",
                                       (json_int_t)json_array_size(json_object_get(doc, "tags"))));
    if (!rc) rc = item_load(c, set_id, image_id, out);
    json_decref(st.doc);
    json_decref(doc);
    rc = acv_db_end(c, rc);
    if (rc) {
        json_decref(*out);
        *out = NULL;
    } else {
        json_decref(*conflict);
        *conflict = NULL;
    }
    return rc;
}

/* Reads an optional {"revision"} of a submit or review body. */
static int optional_revision(const json_t *in, int64_t *rev, bool *given)
{
    *given = false;
    return in ? acv_jarg_int(in, "revision", false, 0, INT64_MAX, rev, given) : 0;
}

int acv_annitem_submit(acv_dbconn *c, const acv_principal *who, bool manager, int64_t set_id, int64_t image_id,
                       const json_t *in, json_t **out, json_t **conflict)
{
    static const char *const FIELDS[] = {"revision", NULL};
    *out = *conflict = NULL;
    int64_t rev = 0, project_id = 0;
    bool given;
    acv_ann_task task;
    int rc = in ? acv_jarg_only(in, FIELDS) : 0;
    if (!rc) rc = optional_revision(in, &rev, &given);
    if (!rc) rc = acv_annset_project(c, set_id, &project_id);
    if (!rc) rc = acv_annset_task(c, set_id, &task, NULL);
    if (rc) return rc;
    char now[ACV_DB_TIME_LEN];
    time_text(acv_db_now(), now);
    item_state st = {0};
    if ((rc = acv_db_begin(c))) return rc;
    rc = state_load(c, set_id, image_id, now, &st);
    if (!rc) rc = lock_check(&st, who, image_id, conflict);
    if (!rc && !strcmp(st.status, "submitted"))
        rc = acv_error(ACV_EEXIST, "image %lld is already submitted for review", (long long)image_id);
    if (!rc && !strcmp(st.status, "accepted"))
        rc = acv_error(ACV_EEXIST, "image %lld is already accepted", (long long)image_id);
    if (!rc && given) rc = revision_check(c, &st, set_id, image_id, rev, conflict);
    if (!rc && task == ACV_ANN_CLS && !json_array_size(json_object_get(st.doc, "tags")))
        rc = acv_error(ACV_EINVAL, "image %lld has no class tag yet; a cls image is submitted with its class",
                       (long long)image_id);
    if (!rc)
        rc = acv_db_exec(c,
                         "UPDATE annotation_items SET status = 'submitted', annotated_by = coalesce(annotated_by, ?1), "
                         "annotated_at = coalesce(annotated_at, ?2), locked_by = NULL, lock_expires_at = NULL, "
                         "updated_at = ?2 WHERE set_id = ?3 AND image_id = ?4",
                         "IsII", who->user_id, now, set_id, image_id);
    if (!rc)
        rc = acv_audit_write(c, who, "submit", "annotation_item", image_id, project_id,
                             json_pack("{s:I, s:I}", "set_id", (json_int_t)set_id, "revision", (json_int_t)st.revision));
    if (!rc) rc = item_load(c, set_id, image_id, out);
    json_decref(st.doc);
    rc = acv_db_end(c, rc);
    if (rc) {
        json_decref(*out);
        *out = NULL;
    } else {
        json_decref(*conflict);
        *conflict = NULL;
    }
    return rc;
}

int acv_annitem_lock(acv_dbconn *c, const acv_principal *who, bool manager, int64_t set_id, int64_t image_id,
                     json_t **out, json_t **conflict)
{
    *out = *conflict = NULL;
    int64_t now_s = acv_db_now();
    char now[ACV_DB_TIME_LEN];
    time_text(now_s, now);
    item_state st = {0};
    int rc = acv_db_begin(c);
    if (rc) return rc;
    rc = state_load(c, set_id, image_id, now, &st);
    if (!rc) rc = editable(&st, manager, image_id);
    if (!rc) rc = lock_check(&st, who, image_id, conflict);
    if (!rc) rc = take_lock(c, who, set_id, image_id, now_s);
    json_decref(st.doc);
    rc = acv_db_end(c, rc);
    if (!rc)
        rc = acv_db_query_row(c, out,
                              "SELECT a.locked_by, u.username AS locker, a.lock_expires_at FROM annotation_items a "
                              "JOIN users u ON u.id = a.locked_by WHERE a.set_id = ? AND a.image_id = ?",
                              "II", set_id, image_id);
    if (!rc && !*out) rc = acv_error(ACV_EIO, "the lock of image %lld was not recorded", (long long)image_id);
    if (!rc) {
        json_decref(*conflict);
        *conflict = NULL;
    }
    return rc;
}

int acv_annitem_unlock(acv_dbconn *c, const acv_principal *who, bool manager, int64_t set_id, int64_t image_id,
                       json_t **conflict)
{
    *conflict = NULL;
    char now[ACV_DB_TIME_LEN];
    time_text(acv_db_now(), now);
    item_state st = {0};
    int rc = acv_db_begin(c);
    if (rc) return rc;
    rc = state_load(c, set_id, image_id, now, &st);
    if (!rc && !manager) rc = lock_check(&st, who, image_id, conflict);
    if (!rc && st.locked_by)
        rc = acv_db_exec(c, "UPDATE annotation_items SET locked_by = NULL, lock_expires_at = NULL WHERE set_id = ? AND "
                            "image_id = ?",
                         "II", set_id, image_id);
    json_decref(st.doc);
    rc = acv_db_end(c, rc);
    if (!rc) {
        json_decref(*conflict);
        *conflict = NULL;
    }
    return rc;
}

int acv_annitem_review(acv_dbconn *c, const acv_principal *who, int64_t set_id, int64_t image_id, const json_t *in,
                       json_t **out, json_t **conflict)
{
    static const char *const FIELDS[] = {"decision", "comment", "revision", NULL};
    *out = *conflict = NULL;
    const char *decision = NULL, *comment = NULL;
    int64_t rev = 0, project_id = 0;
    bool given;
    int rc = acv_jarg_only(in, FIELDS);
    if (!rc) rc = acv_jarg_str(in, "decision", true, 0, &decision);
    if (!rc && strcmp(decision, "accept") && strcmp(decision, "reject"))
        rc = acv_error(ACV_EINVAL, "field 'decision': '%s' is neither 'accept' nor 'reject'", decision);
    if (!rc) rc = acv_jarg_str(in, "comment", false, ACV_ANN_COMMENT_MAX, &comment);
    if (!rc && !strcmp(decision, "reject") && (!comment || !*comment))
        rc = acv_error(ACV_EINVAL, "field 'comment' is required to reject: say what the annotator should fix");
    if (!rc) rc = optional_revision(in, &rev, &given);
    if (!rc) rc = acv_annset_project(c, set_id, &project_id);
    if (rc) return rc;
    bool accept = !strcmp(decision, "accept");
    char now[ACV_DB_TIME_LEN];
    time_text(acv_db_now(), now);
    item_state st = {0};
    if ((rc = acv_db_begin(c))) return rc;
    rc = state_load(c, set_id, image_id, now, &st);
    if (!rc && strcmp(st.status, "submitted"))
        rc = acv_error(ACV_EEXIST, "image %lld is not waiting for review (its status is %s)", (long long)image_id,
                       st.status);
    if (!rc && given) rc = revision_check(c, &st, set_id, image_id, rev, conflict);
    if (!rc)
        rc = acv_db_exec(c,
                         "INSERT INTO reviews(set_id, image_id, revision, reviewer_id, annotator_id, decision, comment, "
                         "created_at) SELECT set_id, image_id, revision, ?1, annotated_by, ?2, ?3, ?4 FROM "
                         "annotation_items WHERE set_id = ?5 AND image_id = ?6",
                         "IsssII", who->user_id, decision, comment ? comment : "", now, set_id, image_id);
    if (!rc)
        rc = acv_db_exec(c,
                         "UPDATE annotation_items SET status = ?1, reviewed_by = ?2, reviewed_at = ?3, review_comment = ?4, "
                         "updated_at = ?3 WHERE set_id = ?5 AND image_id = ?6",
                         "sIssII", accept ? "accepted" : "rejected", who->user_id, now, comment, set_id, image_id);
    if (!rc)
        rc = acv_audit_write(c, who, accept ? "accept" : "reject", "annotation_item", image_id, project_id,
                             json_pack("{s:I, s:I, s:s}", "set_id", (json_int_t)set_id, "revision",
                                       (json_int_t)st.revision, "comment", comment ? comment : ""));
    if (!rc) rc = item_load(c, set_id, image_id, out);
    json_decref(st.doc);
    rc = acv_db_end(c, rc);
    if (rc) {
        json_decref(*out);
        *out = NULL;
    } else {
        json_decref(*conflict);
        *conflict = NULL;
    }
    return rc;
}

/* ---- label renames -------------------------------------------------------------------------- */

/* Renames in one stored document; true when something changed. */
static bool rename_in(json_t *doc, const char *from, const char *to)
{
    bool changed = false, has_to = false;
    json_t *tags = json_object_get(doc, "tags"), *v;
    size_t i;
    json_array_foreach(tags, i, v) has_to |= json_is_string(v) && !strcmp(json_string_value(v), to);
    for (i = 0; i < json_array_size(tags);) {
        v = json_array_get(tags, i);
        if (json_is_string(v) && !strcmp(json_string_value(v), from)) {
            changed = true;
            if (has_to) {
                json_array_remove(tags, i);
                continue;
            }
            json_array_set_new(tags, i, json_string(to));
            has_to = true;
        }
        i++;
    }
    json_array_foreach(json_object_get(doc, "shapes"), i, v) {
        const char *l = json_string_value(json_object_get(v, "label"));
        if (l && !strcmp(l, from)) {
            json_object_set_new(v, "label", json_string(to));
            changed = true;
        }
    }
    return changed;
}

int acv_ann_rename_label(acv_dbconn *c, int64_t project_id, const char *old_name, const char *new_name,
                         int64_t *changed)
{
    if (changed) *changed = 0;
    if (!strcmp(old_name, new_name)) return 0;
    json_t *rows = NULL;
    char now[ACV_DB_TIME_LEN];
    time_text(acv_db_now(), now);
    int rc = acv_db_query(c, &rows,
                          "SELECT a.set_id, a.image_id, a.doc_json FROM annotation_items a JOIN annotation_sets s ON "
                          "s.id = a.set_id WHERE s.project_id = ?1 AND (EXISTS (SELECT 1 FROM json_each(a.doc_json, "
                          "'$.tags') t WHERE t.value = ?2) OR EXISTS (SELECT 1 FROM json_each(a.doc_json, '$.shapes') x "
                          "WHERE json_extract(x.value, '$.label') = ?2))",
                          "Is", project_id, old_name);
    size_t i;
    json_t *r;
    json_array_foreach(rc ? NULL : rows, i, r) {
        json_t *doc = json_object_get(r, "doc");
        if (!rename_in(doc, old_name, new_name)) continue;
        rc = acv_db_exec(c,
                         "UPDATE annotation_items SET doc_json = ?, revision = revision + 1, updated_at = ? WHERE "
                         "set_id = ? AND image_id = ?",
                         "jsII", doc, now, (int64_t)json_integer_value(json_object_get(r, "set_id")),
                         (int64_t)json_integer_value(json_object_get(r, "image_id")));
        if (rc) break;
        if (changed) (*changed)++;
    }
    json_decref(rows);
    return rc;
}
