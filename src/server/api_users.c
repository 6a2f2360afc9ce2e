/* User administration routes. Admins manage everyone; any user may read themselves and change
 * their own password (with the old one). */
#include <stdio.h>
#include <string.h>

#include "autocv/error.h"
#include "platform/jsonarg.h"
#include "platform/users.h"
#include "server/api.h"

static int user_list(acv_call *c)
{
    int limit, offset;
    int rc = acv_call_paging(c, &limit, &offset);
    json_t *items = NULL;
    int64_t total = 0;
    if (!rc) rc = acv_user_list(c->db, acv_call_query(c, "q"), limit, offset, &items, &total);
    return rc ? rc : acv_call_page(c, items, total, limit, offset);
}

static int user_create(acv_call *c)
{
    static const char *const FIELDS[] = {"username", "password", "roles", NULL};
    json_t *in;
    const char *username, *password;
    unsigned roles = ACV_ROLE_VIEWER;
    int rc = acv_call_body(c, &in);
    if (!rc) rc = acv_jarg_only(in, FIELDS);
    if (!rc) rc = acv_jarg_str(in, "username", true, 0, &username);
    if (!rc) rc = acv_jarg_str(in, "password", true, 0, &password);
    if (!rc && json_object_get(in, "roles")) rc = acv_roles_parse(json_object_get(in, "roles"), ACV_ROLES_GLOBAL, "roles", &roles);
    int64_t id;
    if (!rc) rc = acv_user_create(c->db, &c->user, username, password, roles, &id);
    json_t *u = NULL;
    if (!rc) rc = acv_user_get(c->db, id, &u);
    if (rc) return rc;
    char loc[64];
    snprintf(loc, sizeof loc, "/api/v1/users/%lld", (long long)id);
    acv_http_add_header(c->req, "Location", loc);
    return acv_call_json(c, 201, u);
}

static int user_get(acv_call *c)
{
    int64_t id = acv_call_id(c, "id");
    if (!c->admin && id != c->user.user_id) return acv_call_error(c, 403, "only admins may read other users");
    json_t *u;
    int rc = acv_user_get(c->db, id, &u);
    return rc ? rc : acv_call_json(c, 200, u);
}

static int user_patch(acv_call *c)
{
    int64_t id = acv_call_id(c, "id");
    json_t *in;
    int rc = acv_call_body(c, &in);
    if (rc) return rc;
    bool self = id == c->user.user_id;
    if (!c->admin) {
        if (!self) return acv_call_error(c, 403, "only admins may change other users");
        const char *k;
        json_t *v;
        json_object_foreach(in, k, v) if (strcmp(k, "password") && strcmp(k, "old_password") && strcmp(k, "lang"))
            return acv_call_error(c, 403, "you may change only your own password and language (field '%s' needs the "
                                  "admin role)", k);
    }
    if (self && json_object_get(in, "password")) {
        const char *old;
        if ((rc = acv_jarg_str(in, "old_password", false, 4096, &old))) return rc;
        if (!old) return acv_error(ACV_EFORMAT, "field 'old_password' is required to change your own password");
        if (acv_user_check_password(c->db, id, old))
            return acv_call_error(c, 403, "old_password is not your current password");
    }
    rc = acv_user_update(c->db, &c->user, id, in, self ? c->user.token_id : 0);
    json_t *u = NULL;
    if (!rc) rc = acv_user_get(c->db, id, &u);
    return rc ? rc : acv_call_json(c, 200, u);
}

static int user_delete(acv_call *c)
{
    int rc = acv_user_delete(c->db, &c->user, acv_call_id(c, "id"));
    return rc ? rc : acv_call_no_content(c);
}

static const acv_route_param LIST_Q[] = {
    {"q", "string", "username contains this text"},
    ACV_ROUTE_PAGING,
    {NULL, NULL, NULL},
};

static const acv_route ROUTES[] = {
    {.method = "GET", .pattern = "/api/v1/users", .handler = user_list, .perm = ACV_PERM_GLOBAL, .roles = 0,
     .tag = "users", .summary = "List users", .query = LIST_Q, .resp_schema = ACV_PAGE_OF("User"),
     .resp_desc = "a page of users"},
    {.method = "POST", .pattern = "/api/v1/users", .handler = user_create, .perm = ACV_PERM_GLOBAL, .roles = 0,
     .tag = "users", .summary = "Create a user",
     .description = "roles: any of admin, engineer, annotator, reviewer, operator, viewer (default [\"viewer\"]). "
                    "Passwords need 8 or more characters.",
     .body_types = "application/json", .body_schema = "#NewUser", .status = 201, .resp_schema = "#User",
     .resp_desc = "the new user"},
    {.method = "GET", .pattern = "/api/v1/users/{id}", .handler = user_get, .perm = ACV_PERM_USER, .tag = "users",
     .summary = "Read a user (admins: anyone; others: themselves)", .resp_schema = "#User", .resp_desc = "the user"},
    {.method = "PATCH", .pattern = "/api/v1/users/{id}", .handler = user_patch, .perm = ACV_PERM_USER,
     .tag = "users", .summary = "Change a user (admins: anything; others: their own password and language)",
     .description = "Fields: username, password, roles, disabled, lang (the web UI's language: en, zh, or null "
                    "to forget the choice; not audited). Changing one's own password needs old_password; "
                    "it ends the user's other login sessions. The last enabled admin cannot lose the role (409).",
     .body_types = "application/json", .body_schema = "#UserPatch", .resp_schema = "#User",
     .resp_desc = "the changed user"},
    {.method = "DELETE", .pattern = "/api/v1/users/{id}", .handler = user_delete, .perm = ACV_PERM_GLOBAL,
     .roles = 0, .tag = "users", .summary = "Delete a user with their tokens and memberships", .status = 204,
     .resp_desc = "deleted"},
};

int acv_api_users(acv_router *r, const acv_server_config *cfg)
{
#define ROLES_ARRAY                                                                                          \
    "{\"type\":\"array\",\"items\":{\"type\":\"string\",\"enum\":[\"admin\",\"engineer\",\"annotator\","      \
    "\"reviewer\",\"operator\",\"viewer\"]}}"
    int rc = acv_router_add_schema(
        r, "User",
        "{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"integer\"},\"username\":{\"type\":\"string\"},"
        "\"roles\":" ROLES_ARRAY ",\"disabled\":{\"type\":\"boolean\"},\"created_at\":{\"type\":\"string\"},"
        "\"updated_at\":{\"type\":\"string\"},\"last_login_at\":{\"type\":\"string\",\"nullable\":true},"
        "\"lang\":{\"type\":\"string\",\"enum\":[\"en\",\"zh\"],\"nullable\":true}}}");
    if (!rc)
        rc = acv_router_add_schema(r, "NewUser",
                                   "{\"type\":\"object\",\"required\":[\"username\",\"password\"],\"properties\":{"
                                   "\"username\":{\"type\":\"string\",\"pattern\":\"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$\"},"
                                   "\"password\":{\"type\":\"string\",\"minLength\":8},\"roles\":" ROLES_ARRAY "}}");
    if (!rc)
        rc = acv_router_add_schema(r, "UserPatch",
                                   "{\"type\":\"object\",\"properties\":{\"username\":{\"type\":\"string\"},"
                                   "\"password\":{\"type\":\"string\",\"minLength\":8},\"old_password\":{\"type\":"
                                   "\"string\"},\"roles\":" ROLES_ARRAY ",\"disabled\":{\"type\":\"boolean\"},"
                                   "\"lang\":{\"type\":\"string\",\"enum\":[\"en\",\"zh\"],\"nullable\":true}}}");
#undef ROLES_ARRAY
    return rc ? rc : acv_router_add(r, ROUTES, (int)(sizeof ROUTES / sizeof ROUTES[0]));
}
