/* The audit log route (admins only). */
#include <stdlib.h>

#include "autocv/error.h"
#include "platform/audit.h"
#include "server/api.h"

static int query_id(acv_call *c, const char *name, int64_t *out)
{
    const char *v = acv_call_query(c, name);
    *out = 0;
    if (!v) return 0;
    char *end;
    long long x = strtoll(v, &end, 10);
    if (*end || x <= 0) return acv_error(ACV_EFORMAT, "query parameter '%s' must be a positive integer", name);
    *out = x;
    return 0;
}

static int audit_list(acv_call *c)
{
    int limit, offset;
    acv_audit_filter f = {0};
    int rc = acv_call_paging(c, &limit, &offset);
    if (!rc) rc = query_id(c, "actor_id", &f.actor_id);
    if (!rc) rc = query_id(c, "project_id", &f.project_id);
    if (!rc) rc = query_id(c, "target_id", &f.target_id);
    f.action = acv_call_query(c, "action");
    f.target_type = acv_call_query(c, "target_type");
    f.since = acv_call_query(c, "since");
    f.until = acv_call_query(c, "until");
    json_t *items = NULL;
    int64_t total = 0;
    if (!rc) rc = acv_audit_list(c->db, &f, limit, offset, &items, &total);
    return rc ? rc : acv_call_page(c, items, total, limit, offset);
}

static const acv_route_param AUDIT_Q[] = {
    {"actor_id", "integer", "entries by this user"},
    {"project_id", "integer", "entries about this project"},
    {"target_type", "string", "user, token, project, member, label, ..."},
    {"target_id", "integer", "entries about this object (with target_type)"},
    {"action", "string", "create, update, delete, import, login, login_failed, logout, revoke, ..."},
    {"since", "string", "at or after this time (ISO 8601 UTC, e.g. 2024-05-01T00:00:00Z)"},
    {"until", "string", "at or before this time"},
    ACV_ROUTE_PAGING,
    {NULL, NULL, NULL},
};

static const acv_route ROUTES[] = {
    {.method = "GET", .pattern = "/api/v1/audit", .handler = audit_list, .perm = ACV_PERM_GLOBAL, .roles = 0,
     .tag = "audit", .summary = "Read the audit log, newest first", .query = AUDIT_Q,
     .resp_schema = ACV_PAGE_OF("AuditEntry"), .resp_desc = "a page of entries"},
};

int acv_api_audit(acv_router *r, const acv_server_config *cfg)
{
    int rc = acv_router_add_schema(
        r, "AuditEntry",
        "{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"integer\"},\"at\":{\"type\":\"string\"},\"actor_id\":{"
        "\"type\":\"integer\",\"nullable\":true},\"actor\":{\"type\":\"string\"},\"action\":{\"type\":\"string\"},"
        "\"target_type\":{\"type\":\"string\"},\"target_id\":{\"type\":\"integer\",\"nullable\":true},\"project_id\":{"
        "\"type\":\"integer\",\"nullable\":true},\"details\":{\"type\":\"object\"}}}");
    return rc ? rc : acv_router_add(r, ROUTES, (int)(sizeof ROUTES / sizeof ROUTES[0]));
}
