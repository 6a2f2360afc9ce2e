/* Projects and members (see projects.h). */
#include "platform/projects.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autocv/error.h"
#include "platform/audit.h"
#include "platform/jsonarg.h"

#define PROJECT_COLS                                                                                         \
    "p.id, p.name, p.description, p.created_by, p.created_at, p.updated_at, "                              \
    "(SELECT COUNT(*) FROM labels l WHERE l.project_id = p.id) AS label_count, "                            \
    "(SELECT COUNT(*) FROM project_members m WHERE m.project_id = p.id) AS member_count, "                  \
    "(SELECT role FROM project_members m WHERE m.project_id = p.id AND m.user_id = ?1) AS my_role"

int acv_project_role(acv_dbconn *c, int64_t project_id, int64_t user_id, unsigned *role)
{
    *role = 0;
    json_t *row;
    int rc = acv_db_query_row(c, &row,
                              "SELECT p.id, (SELECT role FROM project_members m WHERE m.project_id = p.id AND "
                              "m.user_id = ?2) AS role FROM projects p WHERE p.id = ?1",
                              "II", project_id, user_id);
    if (rc) return rc;
    if (!row) return acv_error(ACV_ENOTFOUND, "project %lld not found", (long long)project_id);
    *role = acv_role_bit(json_string_value(json_object_get(row, "role")), ACV_ROLES_PROJECT);
    json_decref(row);
    return 0;
}

int acv_project_get(acv_dbconn *c, int64_t id, int64_t viewer_id, json_t **out)
{
    int rc = acv_db_query_row(c, out, "SELECT " PROJECT_COLS " FROM projects p WHERE p.id = ?2", "II", viewer_id, id);
    if (rc) return rc;
    if (!*out) return acv_error(ACV_ENOTFOUND, "project %lld not found", (long long)id);
    return 0;
}

int acv_project_list(acv_dbconn *c, const acv_principal *who, bool all, const char *q, int limit, int offset,
                     json_t **items, int64_t *total)
{
#define VISIBLE                                                                                              \
    " WHERE (?2 OR EXISTS (SELECT 1 FROM project_members m WHERE m.project_id = p.id AND m.user_id = ?1))"  \
    " AND (?3 IS NULL OR instr(lower(p.name), lower(?3)) > 0)"
    int rc = acv_db_query_int(c, total, 0, "SELECT COUNT(*) FROM projects p" VISIBLE, "Ibs", who->user_id, all, q);
    if (rc) return rc;
    return acv_db_query(c, items, "SELECT " PROJECT_COLS " FROM projects p" VISIBLE " ORDER BY p.id LIMIT ?4 OFFSET ?5",
                        "Ibsii", who->user_id, all, q, limit, offset);
#undef VISIBLE
}

/* Validates name/description of a create (required name) or a patch. */
static int project_fields(const json_t *in, bool create, const char **name, const char **desc)
{
    static const char *const FIELDS[] = {"name", "description", NULL};
    int rc = acv_jarg_only(in, FIELDS);
    if (!rc) rc = acv_jarg_str(in, "name", create, 200, name);
    if (!rc) rc = acv_jarg_str(in, "description", false, 10000, desc);
    if (!rc && *name && !**name) rc = acv_error(ACV_EINVAL, "field 'name' must not be empty");
    return rc;
}

int acv_project_create(acv_dbconn *c, const acv_principal *who, const json_t *in, int64_t *id)
{
    const char *name, *desc;
    int rc = project_fields(in, true, &name, &desc);
    if (rc) return rc;
    char now[ACV_DB_TIME_LEN];
    acv_db_time(acv_db_now(), now);
    if ((rc = acv_db_begin(c))) return rc;
    rc = acv_db_exec(c,
                     "INSERT INTO projects(name, description, created_by, created_at, updated_at) "
                     "VALUES(?, ?, NULLIF(?, 0), ?, ?)",
                     "ssIss", name, desc ? desc : "", who->user_id, now, now);
    if (rc == ACV_EEXIST) rc = acv_error(ACV_EEXIST, "a project named '%s' already exists", name);
    int64_t pid = acv_db_last_id(c);
    if (!rc && who->user_id)
        rc = acv_db_exec(c, "INSERT INTO project_members(project_id, user_id, role, added_at) VALUES(?, ?, 'owner', ?)",
                         "IIs", pid, who->user_id, now);
    if (!rc) rc = acv_audit_write(c, who, "create", "project", pid, pid, json_pack("{s:s}", "name", name));
    if ((rc = acv_db_end(c, rc))) return rc;
    *id = pid;
    return 0;
}

int acv_project_update(acv_dbconn *c, const acv_principal *who, int64_t id, const json_t *patch)
{
    const char *name, *desc;
    int rc = project_fields(patch, false, &name, &desc);
    if (rc) return rc;
    char now[ACV_DB_TIME_LEN];
    acv_db_time(acv_db_now(), now);
    if ((rc = acv_db_begin(c))) return rc;
    rc = acv_db_exec(c,
                     "UPDATE projects SET name = coalesce(?, name), description = coalesce(?, description), "
                     "updated_at = ? WHERE id = ?",
                     "sssI", name, desc, now, id);
    if (rc == ACV_EEXIST) rc = acv_error(ACV_EEXIST, "a project named '%s' already exists", name);
    if (!rc && acv_db_changes(c) == 0) rc = acv_error(ACV_ENOTFOUND, "project %lld not found", (long long)id);
    if (!rc) rc = acv_audit_write(c, who, "update", "project", id, id, json_deep_copy(patch));
    return acv_db_end(c, rc);
}

int acv_project_delete(acv_dbconn *c, acv_blobs *b, const acv_principal *who, int64_t id)
{
    int rc = acv_db_begin(c);
    if (rc) return rc;
    char *name = NULL;
    json_t *hashes = NULL;
    rc = acv_db_query_text(c, &name, "SELECT name FROM projects WHERE id = ?", "I", id);
    if (!rc && !name) rc = acv_error(ACV_ENOTFOUND, "project %lld not found", (long long)id);
    /* The blobs this project refers to, to collect after the commit those it held last. */
    if (!rc && b)
        rc = acv_db_query(c, &hashes,
                          "SELECT blob_hash AS hash FROM images WHERE project_id = ?1 UNION "
                          "SELECT thumb_hash FROM images WHERE project_id = ?1 AND thumb_hash IS NOT NULL UNION "
                          "SELECT d.blob_hash FROM dataset_version_items d "
                          "JOIN dataset_versions v ON v.id = d.version_id WHERE v.project_id = ?1",
                          "I", id);
    /* The cascade deletes its images and version items; their blob references go with the
     * rows (triggers images_blobs_ad and dataset_version_items_blobs_ad, schema v3). */
    if (!rc) rc = acv_db_exec(c, "DELETE FROM projects WHERE id = ?", "I", id);
    if (!rc) rc = acv_audit_write(c, who, "delete", "project", id, id, json_pack("{s:s}", "name", name));
    free(name);
    rc = acv_db_end(c, rc);
    size_t i;
    json_t *h;
    json_array_foreach(rc ? NULL : hashes, i, h) acv_blobs_collect(b, c, json_string_value(json_object_get(h, "hash")));
    json_decref(hashes);
    return rc;
}

int acv_member_list(acv_dbconn *c, int64_t project_id, int limit, int offset, json_t **items, int64_t *total)
{
    int rc = acv_db_query_int(c, total, 0, "SELECT COUNT(*) FROM project_members WHERE project_id = ?", "I",
                              project_id);
    if (rc) return rc;
    return acv_db_query(c, items,
                        "SELECT m.user_id, u.username, m.role, m.added_at FROM project_members m "
                        "JOIN users u ON u.id = m.user_id WHERE m.project_id = ? ORDER BY u.username LIMIT ? OFFSET ?",
                        "Iii", project_id, limit, offset);
}

static int other_owners(acv_dbconn *c, int64_t project_id, int64_t except, int64_t *n)
{
    return acv_db_query_int(c, n, 0,
                            "SELECT COUNT(*) FROM project_members WHERE project_id = ? AND role = 'owner' AND user_id != ?",
                            "II", project_id, except);
}

int acv_member_set(acv_dbconn *c, const acv_principal *who, int64_t project_id, int64_t user_id, const char *role,
                   bool *created, json_t **out)
{
    if (out) *out = NULL;
    if (!acv_role_bit(role, ACV_ROLES_PROJECT))
        return acv_error(ACV_EINVAL,
                         "field 'role': unknown project role '%s' (one of: owner, engineer, annotator, reviewer, "
                         "operator, viewer)",
                         role ? role : "");
    char now[ACV_DB_TIME_LEN];
    acv_db_time(acv_db_now(), now);
    int rc = acv_db_begin(c);
    if (rc) return rc;
    int64_t exists, is_user;
    char *old = NULL;
    rc = acv_db_query_int(c, &exists, 0, "SELECT COUNT(*) FROM projects WHERE id = ?", "I", project_id);
    if (!rc && !exists) rc = acv_error(ACV_ENOTFOUND, "project %lld not found", (long long)project_id);
    if (!rc) rc = acv_db_query_int(c, &is_user, 0, "SELECT COUNT(*) FROM users WHERE id = ?", "I", user_id);
    if (!rc && !is_user) rc = acv_error(ACV_ENOTFOUND, "user %lld not found", (long long)user_id);
    if (!rc)
        rc = acv_db_query_text(c, &old, "SELECT role FROM project_members WHERE project_id = ? AND user_id = ?", "II",
                               project_id, user_id);
    if (!rc && old && !strcmp(old, "owner") && strcmp(role, "owner")) {
        int64_t n;
        rc = other_owners(c, project_id, user_id, &n);
        if (!rc && n == 0)
            rc = acv_error(ACV_EEXIST, "user %lld is the last owner of project %lld; make someone else owner first",
                           (long long)user_id, (long long)project_id);
    }
    if (!rc && !old)
        rc = acv_db_exec(c, "INSERT INTO project_members(project_id, user_id, role, added_at) VALUES(?, ?, ?, ?)",
                         "IIss", project_id, user_id, role, now);
    else if (!rc)
        rc = acv_db_exec(c, "UPDATE project_members SET role = ? WHERE project_id = ? AND user_id = ?", "sII", role,
                         project_id, user_id);
    if (!rc)
        rc = acv_audit_write(c, who, old ? "update" : "create", "member", user_id, project_id,
                             json_pack("{s:s, s:s?}", "role", role, "previous_role", old));
    if (created) *created = !old;
    free(old);
    if ((rc = acv_db_end(c, rc))) return rc;
    if (out)
        return acv_db_query_row(c, out,
                                "SELECT m.user_id, u.username, m.role, m.added_at FROM project_members m "
                                "JOIN users u ON u.id = m.user_id WHERE m.project_id = ? AND m.user_id = ?",
                                "II", project_id, user_id);
    return 0;
}

int acv_member_remove(acv_dbconn *c, const acv_principal *who, int64_t project_id, int64_t user_id)
{
    int rc = acv_db_begin(c);
    if (rc) return rc;
    char *old = NULL;
    rc = acv_db_query_text(c, &old, "SELECT role FROM project_members WHERE project_id = ? AND user_id = ?", "II",
                           project_id, user_id);
    if (!rc && !old)
        rc = acv_error(ACV_ENOTFOUND, "user %lld is not a member of project %lld", (long long)user_id,
                       (long long)project_id);
    if (!rc && !strcmp(old, "owner")) {
        int64_t n;
        rc = other_owners(c, project_id, user_id, &n);
        if (!rc && n == 0)
            rc = acv_error(ACV_EEXIST, "user %lld is the last owner of project %lld", (long long)user_id,
                           (long long)project_id);
    }
    if (!rc) rc = acv_db_exec(c, "DELETE FROM project_members WHERE project_id = ? AND user_id = ?", "II", project_id,
                              user_id);
    if (!rc) rc = acv_audit_write(c, who, "delete", "member", user_id, project_id, json_pack("{s:s}", "role", old));
    free(old);
    return acv_db_end(c, rc);
}
