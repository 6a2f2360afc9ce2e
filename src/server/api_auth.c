/* Authentication routes: login, logout, the caller's identity, and API tokens. */
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "autocv/error.h"
#include "platform/audit.h"
#include "platform/jsonarg.h"
#include "platform/users.h"
#include "server/api.h"

/* Login throttling: after LOGIN_FREE_FAILS consecutive failures for a username, further
 * attempts for it are refused (429) for 2, 4, 8, ... seconds, at most LOGIN_MAX_WAIT, so a
 * password cannot be guessed at Argon2's speed. Failures are counted in memory per slot of a
 * small hash of the lowercased name (names that share a slot share the count: conservative). */
#define LOGIN_SLOTS 1024
#define LOGIN_FREE_FAILS 5
#define LOGIN_MAX_WAIT 300
static struct { int fails; int64_t until; } g_login[LOGIN_SLOTS];
static pthread_mutex_t g_login_mu = PTHREAD_MUTEX_INITIALIZER;

static unsigned login_slot(const char *name)
{
    uint32_t h = 2166136261u;
    for (const char *p = name; *p; p++) h = (h ^ (uint32_t)tolower((unsigned char)*p)) * 16777619u;
    return h % LOGIN_SLOTS;
}

/* Seconds the caller must still wait before trying this username (0: may try). */
static int64_t login_wait(const char *name, int64_t now)
{
    pthread_mutex_lock(&g_login_mu);
    int64_t until = g_login[login_slot(name)].until;
    pthread_mutex_unlock(&g_login_mu);
    return until > now ? until - now : 0;
}

static void login_result(const char *name, bool ok, int64_t now)
{
    pthread_mutex_lock(&g_login_mu);
    unsigned s = login_slot(name);
    if (ok) {
        g_login[s].fails = 0;
        g_login[s].until = 0;
    } else if (++g_login[s].fails >= LOGIN_FREE_FAILS) {
        int k = g_login[s].fails - LOGIN_FREE_FAILS + 1;
        int64_t wait = k >= 9 ? LOGIN_MAX_WAIT : (int64_t)1 << k;
        g_login[s].until = now + (wait < LOGIN_MAX_WAIT ? wait : LOGIN_MAX_WAIT);
    }
    pthread_mutex_unlock(&g_login_mu);
}

static int login(acv_call *c)
{
    json_t *in;
    const char *username, *password;
    int rc = acv_call_body(c, &in);
    if (!rc) rc = acv_jarg_str(in, "username", true, 256, &username);
    if (!rc) rc = acv_jarg_str(in, "password", true, 4096, &password);
    if (rc) return rc;
    char token[ACV_TOKEN_LEN + 1];
    int64_t tid, now = acv_db_now(), ttl = acv_server_config_of(c->srv)->token_ttl_s;
    int64_t wait = login_wait(username, now);
    if (wait > 0) {
        return acv_call_error(c, 429, "too many failed logins for this user: try again in %lld s", (long long)wait);
    }
    json_t *user = NULL;
    rc = acv_auth_login(c->db, username, password, now, ttl, token, &tid, &user);
    login_result(username, rc == 0, now);
    if (rc == ACV_ENOTFOUND) {
        acv_principal anon = {0};
        snprintf(anon.username, sizeof anon.username, "anonymous");
        acv_audit_write(c->db, &anon, "login_failed", "user", 0, 0,
                        json_pack("{s:s, s:s}", "username", username, "client", acv_http_client(c->req)));
        return acv_call_error(c, 401, "invalid username or password");
    }
    if (rc) return rc;
    acv_principal who = {.user_id = json_integer_value(json_object_get(user, "id")), .token_id = tid};
    snprintf(who.username, sizeof who.username, "%s", json_string_value(json_object_get(user, "username")));
    acv_audit_write(c->db, &who, "login", "user", who.user_id, 0,
                    json_pack("{s:s, s:I}", "client", acv_http_client(c->req), "token_id", (json_int_t)tid));
    char exp[ACV_DB_TIME_LEN];
    acv_db_time(now + ttl, exp);
    return acv_call_json(c, 200, json_pack("{s:s, s:s, s:o}", "token", token, "expires_at", exp, "user", user));
}

static int logout(acv_call *c)
{
    int rc = acv_db_begin(c->db);
    if (!rc) rc = acv_auth_token_revoke(c->db, c->user.token_id, c->user.user_id, acv_db_now());
    if (!rc) rc = acv_call_audit(c, "logout", "token", c->user.token_id, 0, NULL);
    if ((rc = acv_db_end(c->db, rc))) return rc;
    return acv_call_no_content(c);
}

static int me(acv_call *c)
{
    json_t *user, *token, *projects;
    int rc = acv_user_get(c->db, c->user.user_id, &user);
    if (rc) return rc;
    rc = acv_db_query_row(c->db, &token, "SELECT id, kind, name, prefix, created_at, expires_at FROM tokens WHERE id = ?",
                          "I", c->user.token_id);
    if (!rc)
        rc = acv_db_query(c->db, &projects,
                          "SELECT p.id, p.name, m.role FROM project_members m JOIN projects p ON p.id = m.project_id "
                          "WHERE m.user_id = ? ORDER BY p.id",
                          "I", c->user.user_id);
    if (rc) {
        json_decref(user);
        return rc;
    }
    json_object_set_new(user, "token", token ? token : json_null());
    json_object_set_new(user, "projects", projects);
    return acv_call_json(c, 200, user);
}

static int token_create(acv_call *c)
{
    static const char *const FIELDS[] = {"name", "expires_in_days", NULL};
    json_t *in;
    const char *name;
    int64_t days = 0;
    bool has_days;
    int rc = acv_call_body(c, &in);
    if (!rc) rc = acv_jarg_only(in, FIELDS);
    if (!rc) rc = acv_jarg_str(in, "name", true, 100, &name);
    if (!rc && !*name) rc = acv_error(ACV_EINVAL, "field 'name' must not be empty");
    if (!rc) rc = acv_jarg_int(in, "expires_in_days", false, 1, 3650, &days, &has_days);
    if (rc) return rc;
    int64_t now = acv_db_now(), expires = has_days ? now + days * 86400 : 0, id;
    char token[ACV_TOKEN_LEN + 1];
    if ((rc = acv_db_begin(c->db))) return rc;
    rc = acv_auth_token_create(c->db, c->user.user_id, "api", name, now, expires, token, &id);
    if (!rc) rc = acv_call_audit(c, "create", "token", id, 0, json_pack("{s:s}", "name", name));
    if ((rc = acv_db_end(c->db, rc))) return rc;
    json_t *row;
    if ((rc = acv_db_query_row(c->db, &row,
                               "SELECT id, kind, name, prefix, created_at, expires_at FROM tokens WHERE id = ?", "I",
                               id)))
        return rc;
    json_object_set_new(row, "token", json_string(token));
    return acv_call_json(c, 201, row);
}

static int token_list(acv_call *c)
{
    int limit, offset;
    int rc = acv_call_paging(c, &limit, &offset);
    if (rc) return rc;
    const char *all_q = acv_call_query(c, "all"), *rev_q = acv_call_query(c, "include_revoked");
    bool all = all_q && !strcmp(all_q, "true");
    bool revoked = rev_q && !strcmp(rev_q, "true");
    if (all && !c->admin) return acv_call_error(c, 403, "?all=true needs the admin role");
    char now[ACV_DB_TIME_LEN];
    acv_db_time(acv_db_now(), now);
#define TOKEN_WHERE                                                                                          \
    " WHERE (?1 OR t.user_id = ?2) AND (?3 OR (t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > ?4)))"
    int64_t total;
    rc = acv_db_query_int(c->db, &total, 0, "SELECT COUNT(*) FROM tokens t" TOKEN_WHERE, "bIbs", all,
                          c->user.user_id, revoked, now);
    json_t *items = NULL;
    if (!rc)
        rc = acv_db_query(c->db, &items,
                          "SELECT t.id, t.kind, t.name, t.prefix, t.user_id, u.username, t.created_at, t.expires_at, "
                          "t.last_used_at, t.revoked_at, (t.id = ?5) AS current_bool FROM tokens t "
                          "JOIN users u ON u.id = t.user_id" TOKEN_WHERE " ORDER BY t.id DESC LIMIT ?6 OFFSET ?7",
                          "bIbsIii", all, c->user.user_id, revoked, now, c->user.token_id, limit, offset);
#undef TOKEN_WHERE
    if (rc) return rc;
    return acv_call_page(c, items, total, limit, offset);
}

static int token_delete(acv_call *c)
{
    int64_t id = acv_call_id(c, "id");
    int rc = acv_db_begin(c->db);
    if (!rc) rc = acv_auth_token_revoke(c->db, id, c->admin ? 0 : c->user.user_id, acv_db_now());
    if (!rc) rc = acv_call_audit(c, "revoke", "token", id, 0, NULL);
    if ((rc = acv_db_end(c->db, rc))) return rc;
    return acv_call_no_content(c);
}

#define LOGIN_SCHEMA                                                                                         \
    "{\"type\":\"object\",\"required\":[\"username\",\"password\"],\"properties\":{\"username\":{\"type\":"    \
    "\"string\"},\"password\":{\"type\":\"string\",\"format\":\"password\"}}}"
#define LOGIN_RESP                                                                                           \
    "{\"type\":\"object\",\"properties\":{\"token\":{\"type\":\"string\"},\"expires_at\":{\"type\":\"string\"," \
    "\"format\":\"date-time\"},\"user\":{\"$ref\":\"#/components/schemas/User\"}}}"

static const acv_route_param TOKEN_LIST_Q[] = {
    {"all", "boolean", "admins: every user's tokens"},
    {"include_revoked", "boolean", "also list revoked and expired tokens"},
    ACV_ROUTE_PAGING,
    {NULL, NULL, NULL},
};

static const acv_route ROUTES[] = {
    {.method = "POST", .pattern = "/api/v1/auth/login", .handler = login, .perm = ACV_PERM_PUBLIC, .tag = "auth",
     .summary = "Log in with a username and password",
     .description = "Returns a session token that expires after the server's token lifetime (12 h by default). "
                    "Wrong credentials are 401.",
     .body_types = "application/json", .body_schema = LOGIN_SCHEMA, .resp_schema = LOGIN_RESP,
     .resp_desc = "the session token and the user"},
    {.method = "POST", .pattern = "/api/v1/auth/logout", .handler = logout, .perm = ACV_PERM_USER, .tag = "auth",
     .summary = "Revoke the token of this request", .status = 204, .resp_desc = "the token no longer works"},
    {.method = "GET", .pattern = "/api/v1/auth/me", .handler = me, .perm = ACV_PERM_USER, .tag = "auth",
     .summary = "The caller: user, current token and project memberships", .resp_schema = "#User",
     .resp_desc = "the user, with \"token\" and \"projects\" [{id,name,role}]"},
    {.method = "POST", .pattern = "/api/v1/tokens", .handler = token_create, .perm = ACV_PERM_USER, .tag = "auth",
     .summary = "Create a long-lived API token for scripts and machines",
     .description = "The token value is in the response only; store it. Without expires_in_days it never expires "
                    "(revoke it with DELETE).",
     .body_types = "application/json",
     .body_schema = "{\"type\":\"object\",\"required\":[\"name\"],\"properties\":{\"name\":{\"type\":\"string\"},"
                    "\"expires_in_days\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":3650}}}",
     .status = 201, .resp_schema = "#Token", .resp_desc = "the token, with its secret in \"token\" (shown once)"},
    {.method = "GET", .pattern = "/api/v1/tokens", .handler = token_list, .perm = ACV_PERM_USER, .tag = "auth",
     .summary = "List the caller's live tokens (sessions and API tokens)", .query = TOKEN_LIST_Q,
     .resp_schema = ACV_PAGE_OF("Token"), .resp_desc = "a page of tokens (never their secrets)"},
    {.method = "DELETE", .pattern = "/api/v1/tokens/{id}", .handler = token_delete, .perm = ACV_PERM_USER,
     .tag = "auth", .summary = "Revoke a token (one's own; admins: any)", .status = 204,
     .resp_desc = "the token no longer works"},
};

int acv_api_auth(acv_router *r, const acv_server_config *cfg)
{
    int rc = acv_router_add_schema(
        r, "Token",
        "{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"integer\"},\"kind\":{\"type\":\"string\",\"enum\":"
        "[\"session\",\"api\"]},\"name\":{\"type\":\"string\"},\"prefix\":{\"type\":\"string\"},\"user_id\":{\"type\":"
        "\"integer\"},\"username\":{\"type\":\"string\"},\"created_at\":{\"type\":\"string\"},\"expires_at\":{\"type\":"
        "\"string\",\"nullable\":true},\"last_used_at\":{\"type\":\"string\",\"nullable\":true},\"revoked_at\":{"
        "\"type\":\"string\",\"nullable\":true},\"current\":{\"type\":\"boolean\"},\"token\":{\"type\":\"string\"}}}");
    return rc ? rc : acv_router_add(r, ROUTES, (int)(sizeof ROUTES / sizeof ROUTES[0]));
}
