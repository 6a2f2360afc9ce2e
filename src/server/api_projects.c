/* Project routes: projects and their members. Non-admins see only the projects they are
 * members of; any other project answers 404, as if it did not exist. */
#include <stdio.h>

#include "autocv/error.h"
#include "platform/jsonarg.h"
#include "platform/projects.h"
#include "server/api.h"
#include "server/jobs.h"

static int project_list(acv_call *c)
{
    int limit, offset;
    int rc = acv_call_paging(c, &limit, &offset);
    json_t *items = NULL;
    int64_t total = 0;
    if (!rc) rc = acv_project_list(c->db, &c->user, c->admin, acv_call_query(c, "q"), limit, offset, &items, &total);
    return rc ? rc : acv_call_page(c, items, total, limit, offset);
}

static int project_create(acv_call *c)
{
    json_t *in, *p = NULL;
    int64_t id;
    int rc = acv_call_body(c, &in);
    if (!rc) rc = acv_project_create(c->db, &c->user, in, &id);
    if (!rc) rc = acv_project_get(c->db, id, c->user.user_id, &p);
    if (rc) return rc;
    char loc[64];
    snprintf(loc, sizeof loc, "/api/v1/projects/%lld", (long long)id);
    acv_http_add_header(c->req, "Location", loc);
    return acv_call_json(c, 201, p);
}

static int project_get(acv_call *c)
{
    json_t *p;
    int rc = acv_project_get(c->db, c->project_id, c->user.user_id, &p);
    return rc ? rc : acv_call_json(c, 200, p);
}

static int project_patch(acv_call *c)
{
    json_t *in, *p = NULL;
    int rc = acv_call_body(c, &in);
    if (!rc) rc = acv_project_update(c->db, &c->user, c->project_id, in);
    if (!rc) rc = acv_project_get(c->db, c->project_id, c->user.user_id, &p);
    return rc ? rc : acv_call_json(c, 200, p);
}

static int project_delete(acv_call *c)
{
    int rc = acv_project_delete(c->db, acv_server_blobs(c->srv), &c->user, c->project_id);
    if (!rc) acv_jobs_sweep(acv_server_jobs(c->srv)); /* the folders of its jobs (their training data) */
    return rc ? rc : acv_call_no_content(c);
}

static int member_list(acv_call *c)
{
    int limit, offset;
    int rc = acv_call_paging(c, &limit, &offset);
    json_t *items = NULL;
    int64_t total = 0;
    if (!rc) rc = acv_member_list(c->db, c->project_id, limit, offset, &items, &total);
    return rc ? rc : acv_call_page(c, items, total, limit, offset);
}

static int member_put(acv_call *c)
{
    static const char *const FIELDS[] = {"role", NULL};
    json_t *in, *m = NULL;
    const char *role;
    bool created;
    int rc = acv_call_body(c, &in);
    if (!rc) rc = acv_jarg_only(in, FIELDS);
    if (!rc) rc = acv_jarg_str(in, "role", true, 32, &role);
    if (!rc) rc = acv_member_set(c->db, &c->user, c->project_id, acv_call_id(c, "user_id"), role, &created, &m);
    return rc ? rc : acv_call_json(c, created ? 201 : 200, m);
}

static int member_delete(acv_call *c)
{
    int rc = acv_member_remove(c->db, &c->user, c->project_id, acv_call_id(c, "user_id"));
    return rc ? rc : acv_call_no_content(c);
}

static const acv_route_param LIST_Q[] = {
    {"q", "string", "project name contains this text"},
    ACV_ROUTE_PAGING,
    {NULL, NULL, NULL},
};
static const acv_route_param PAGING_Q[] = {ACV_ROUTE_PAGING, {NULL, NULL, NULL}};

#define ANY_MEMBER ACV_ROLES_PROJECT
#define MANAGERS (ACV_ROLE_OWNER | ACV_ROLE_ENGINEER)

static const acv_route ROUTES[] = {
    {.method = "GET", .pattern = "/api/v1/projects", .handler = project_list, .perm = ACV_PERM_USER,
     .tag = "projects", .summary = "List the projects the caller is a member of (admins: all)", .query = LIST_Q,
     .resp_schema = ACV_PAGE_OF("Project"), .resp_desc = "a page of projects"},
    {.method = "POST", .pattern = "/api/v1/projects", .handler = project_create, .perm = ACV_PERM_GLOBAL,
     .roles = ACV_ROLE_ENGINEER, .tag = "projects", .summary = "Create a project (the caller becomes its owner)",
     .body_types = "application/json",
     .body_schema = "{\"type\":\"object\",\"required\":[\"name\"],\"properties\":{\"name\":{\"type\":\"string\"},"
                    "\"description\":{\"type\":\"string\"}}}",
     .status = 201, .resp_schema = "#Project", .resp_desc = "the new project"},
    {.method = "GET", .pattern = "/api/v1/projects/{id}", .handler = project_get, .perm = ACV_PERM_PROJECT,
     .roles = ANY_MEMBER, .tag = "projects", .summary = "Read a project", .resp_schema = "#Project",
     .resp_desc = "the project"},
    {.method = "PATCH", .pattern = "/api/v1/projects/{id}", .handler = project_patch, .perm = ACV_PERM_PROJECT,
     .roles = MANAGERS, .tag = "projects", .summary = "Rename or describe a project", .body_types = "application/json",
     .body_schema = "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},\"description\":{\"type\":"
                    "\"string\"}}}",
     .resp_schema = "#Project", .resp_desc = "the changed project"},
    {.method = "DELETE", .pattern = "/api/v1/projects/{id}", .handler = project_delete, .perm = ACV_PERM_PROJECT,
     .roles = ACV_ROLE_OWNER, .tag = "projects", .summary = "Delete a project and everything in it", .status = 204,
     .resp_desc = "deleted"},
    {.method = "GET", .pattern = "/api/v1/projects/{id}/members", .handler = member_list, .perm = ACV_PERM_PROJECT,
     .roles = ANY_MEMBER, .tag = "projects", .summary = "List a project's members and their roles", .query = PAGING_Q,
     .resp_schema = ACV_PAGE_OF("Member"), .resp_desc = "a page of members"},
    {.method = "PUT", .pattern = "/api/v1/projects/{id}/members/{user_id}", .handler = member_put,
     .perm = ACV_PERM_PROJECT, .roles = ACV_ROLE_OWNER, .tag = "projects",
     .summary = "Add a member or change their role",
     .description = "role: owner, engineer, annotator, reviewer, operator or viewer. A project keeps at least one "
                    "owner (409). 201 when the user was added, 200 when the role changed.",
     .body_types = "application/json",
     .body_schema = "{\"type\":\"object\",\"required\":[\"role\"],\"properties\":{\"role\":{\"type\":\"string\","
                    "\"enum\":[\"owner\",\"engineer\",\"annotator\",\"reviewer\",\"operator\",\"viewer\"]}}}",
     .status = 201, .resp_schema = "#Member", .resp_desc = "the membership"},
    {.method = "DELETE", .pattern = "/api/v1/projects/{id}/members/{user_id}", .handler = member_delete,
     .perm = ACV_PERM_PROJECT, .roles = ACV_ROLE_OWNER, .tag = "projects", .summary = "Remove a member",
     .status = 204, .resp_desc = "removed"},
};

int acv_api_projects(acv_router *r, const acv_server_config *cfg)
{
    int rc = acv_router_add_schema(
        r, "Project",
        "{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"integer\"},\"name\":{\"type\":\"string\"},"
        "\"description\":{\"type\":\"string\"},\"created_by\":{\"type\":\"integer\",\"nullable\":true},\"created_at\":"
        "{\"type\":\"string\"},\"updated_at\":{\"type\":\"string\"},\"label_count\":{\"type\":\"integer\"},"
        "\"member_count\":{\"type\":\"integer\"},\"my_role\":{\"type\":\"string\",\"nullable\":true}}}");
    if (!rc)
        rc = acv_router_add_schema(r, "Member",
                                   "{\"type\":\"object\",\"properties\":{\"user_id\":{\"type\":\"integer\"},\"username\":"
                                   "{\"type\":\"string\"},\"role\":{\"type\":\"string\"},\"added_at\":{\"type\":"
                                   "\"string\"}}}");
    return rc ? rc : acv_router_add(r, ROUTES, (int)(sizeof ROUTES / sizeof ROUTES[0]));
}
