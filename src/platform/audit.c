/* Audit log entries (see audit.h). */
#include "platform/audit.h"

#include "autocv/error.h"

int acv_audit_write(acv_dbconn *c, const acv_principal *who, const char *action, const char *target_type,
                    int64_t target_id, int64_t project_id, json_t *details)
{
    char now[ACV_DB_TIME_LEN];
    acv_db_time(acv_db_now(), now);
    if (!details) details = json_object();
    bool sys = !who || who->user_id == 0;
    int rc = acv_db_exec(c,
                         "INSERT INTO audit_log(at, actor_id, actor, action, target_type, target_id, project_id, "
                         "details_json) VALUES(?, ?, ?, ?, ?, ?, ?, ?)",
                         "sIsssIIj", now, sys ? (int64_t)0 : who->user_id,
                         sys ? (who && who->username[0] ? who->username : "system") : who->username, action,
                         target_type, target_id, project_id, details);
    json_decref(details);
    if (rc) return acv_error_prefix(rc, "writing the audit log: ");
    return 0;
}

#define AUDIT_WHERE                                                                                          \
    " WHERE (?1 = 0 OR actor_id = ?1) AND (?2 = 0 OR project_id = ?2) AND (?3 = 0 OR target_id = ?3)"      \
    " AND (?4 IS NULL OR action = ?4) AND (?5 IS NULL OR target_type = ?5) AND (?6 IS NULL OR at >= ?6)"   \
    " AND (?7 IS NULL OR at <= ?7)"

int acv_audit_list(acv_dbconn *c, const acv_audit_filter *f, int limit, int offset, json_t **items,
                   int64_t *total)
{
    acv_audit_filter none = {0};
    if (!f) f = &none;
    int rc = acv_db_query_int(c, total, 0, "SELECT COUNT(*) FROM audit_log" AUDIT_WHERE, "IIIssss", f->actor_id,
                              f->project_id, f->target_id, f->action, f->target_type, f->since, f->until);
    if (rc) return rc;
    return acv_db_query(c, items,
                        "SELECT id, at, NULLIF(actor_id, 0) AS actor_id, actor, action, target_type, "
                        "NULLIF(target_id, 0) AS target_id, NULLIF(project_id, 0) AS project_id, details_json "
                        "FROM audit_log" AUDIT_WHERE " ORDER BY id DESC LIMIT ?8 OFFSET ?9",
                        "IIIssssii", f->actor_id, f->project_id, f->target_id, f->action, f->target_type, f->since,
                        f->until, limit, offset);
}
