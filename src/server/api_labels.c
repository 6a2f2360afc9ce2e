/* Label routes: the label schema of a project (list and search, single and bulk create from
 * JSON or CSV) and single labels. */
#include <strings.h>

#include "autocv/error.h"
#include "platform/jsonarg.h"
#include "platform/labels.h"
#include "server/api.h"

/* Project routes under /labels/{id}: the label's project decides. */
static int label_project(acv_call *c, int64_t *project_id)
{
    return acv_label_project(c->db, acv_call_id(c, "id"), project_id);
}

static int label_list(acv_call *c)
{
    int limit, offset;
    int rc = acv_call_paging(c, &limit, &offset);
    json_t *items = NULL;
    int64_t total = 0;
    if (!rc) rc = acv_label_list(c->db, c->project_id, acv_call_query(c, "q"), limit, offset, &items, &total);
    return rc ? rc : acv_call_page(c, items, total, limit, offset);
}

static bool is_csv(const char *ct)
{
    return !strncasecmp(ct, "text/csv", 8) || !strncasecmp(ct, "application/csv", 15);
}

static int label_create(acv_call *c)
{
    json_t *list = NULL, *created = NULL;
    const char *source = "json";
    bool single = false;
    int rc = 0;
    if (is_csv(acv_http_content_type(c->req))) {
        const acv_http_file *raw = acv_http_raw(c->req);
        if (!raw || !raw->path) return acv_error(ACV_EFORMAT, "the CSV body is empty (a header row is required)");
        rc = acv_label_csv_read(raw->path, &list);
        source = "csv";
    } else {
        json_t *in;
        if ((rc = acv_call_body(c, &in))) return rc;
        json_t *labels = json_object_get(in, "labels");
        if (labels) {
            if (json_object_size(in) != 1)
                return acv_error(ACV_EINVAL, "a bulk request has only the field 'labels' (an array of labels)");
            list = json_incref(labels);
        } else {
            list = json_pack("[O]", in);
            single = true;
        }
    }
    if (!rc) rc = acv_label_import(c->db, &c->user, c->project_id, list, source, &created);
    json_decref(list);
    if (rc) return rc;
    if (single) {
        json_t *one = json_incref(json_array_get(created, 0));
        json_decref(created);
        return acv_call_json(c, 201, one);
    }
    return acv_call_json(c, 201, json_pack("{s:I, s:o}", "created", (json_int_t)json_array_size(created), "items",
                                           created));
}

static int label_get(acv_call *c)
{
    json_t *l;
    int rc = acv_label_get(c->db, acv_call_id(c, "id"), &l);
    return rc ? rc : acv_call_json(c, 200, l);
}

static int label_patch(acv_call *c)
{
    json_t *in, *l = NULL;
    int64_t id = acv_call_id(c, "id");
    int rc = acv_call_body(c, &in);
    if (!rc) rc = acv_label_update(c->db, &c->user, id, in);
    if (!rc) rc = acv_label_get(c->db, id, &l);
    return rc ? rc : acv_call_json(c, 200, l);
}

static int label_delete(acv_call *c)
{
    int rc = acv_label_delete(c->db, &c->user, acv_call_id(c, "id"));
    return rc ? rc : acv_call_no_content(c);
}

static const acv_route_param LIST_Q[] = {
    {"q", "string", "name or alias contains this text (case-insensitive); best matches first"},
    ACV_ROUTE_PAGING,
    {NULL, NULL, NULL},
};

#define EDITORS (ACV_ROLE_OWNER | ACV_ROLE_ENGINEER)

static const acv_route ROUTES[] = {
    {.method = "GET", .pattern = "/api/v1/projects/{id}/labels", .handler = label_list, .perm = ACV_PERM_PROJECT,
     .roles = ACV_ROLES_PROJECT, .tag = "labels", .summary = "List or search a project's labels", .query = LIST_Q,
     .description = "Without q: by id. With q: labels whose name or an alias contains q, exact name first, then "
                    "name prefix, name substring, alias matches; then by name.",
     .resp_schema = ACV_PAGE_OF("Label"), .resp_desc = "a page of labels"},
    {.method = "POST", .pattern = "/api/v1/projects/{id}/labels", .handler = label_create, .perm = ACV_PERM_PROJECT,
     .roles = EDITORS, .tag = "labels", .summary = "Create one label, or many in one transaction",
     .description = "JSON: one label object (answered with the label), or {\"labels\":[...]} (answered with "
                    "{\"created\":N,\"items\":[...]}). CSV (text/csv): a header row naming some of name, parent, "
                    "color, aliases, description; aliases separated by | or ;. All or nothing: a duplicate name is "
                    "409, an unknown parent 422. parent names a label of the project or of the same request.",
     .body_types = "application/json, text/csv", .body_schema = "#NewLabel", .status = 201, .resp_schema = "#Label",
     .resp_desc = "the label, or {\"created\",\"items\"} for a bulk request"},
    {.method = "GET", .pattern = "/api/v1/labels/{id}", .handler = label_get, .perm = ACV_PERM_PROJECT,
     .roles = ACV_ROLES_PROJECT, .project = label_project, .tag = "labels", .summary = "Read a label",
     .resp_schema = "#Label", .resp_desc = "the label"},
    {.method = "PATCH", .pattern = "/api/v1/labels/{id}", .handler = label_patch, .perm = ACV_PERM_PROJECT,
     .roles = EDITORS, .project = label_project, .tag = "labels", .summary = "Change a label",
     .description = "Any of name, parent (a name; null clears), parent_id, color, aliases, description. A parent "
                    "that would make a cycle is 422.",
     .body_types = "application/json", .body_schema = "#NewLabel", .resp_schema = "#Label",
     .resp_desc = "the changed label"},
    {.method = "DELETE", .pattern = "/api/v1/labels/{id}", .handler = label_delete, .perm = ACV_PERM_PROJECT,
     .roles = EDITORS, .project = label_project, .tag = "labels",
     .summary = "Delete a label (its children lose their parent)", .status = 204, .resp_desc = "deleted"},
};

int acv_api_labels(acv_router *r, const acv_server_config *cfg)
{
    int rc = acv_router_add_schema(
        r, "Label",
        "{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"integer\"},\"project_id\":{\"type\":\"integer\"},"
        "\"name\":{\"type\":\"string\"},\"parent_id\":{\"type\":\"integer\",\"nullable\":true},\"parent\":{\"type\":"
        "\"string\",\"nullable\":true},\"color\":{\"type\":\"string\",\"pattern\":\"^#[0-9a-f]{6}$\"},\"aliases\":{"
        "\"type\":\"array\",\"items\":{\"type\":\"string\"}},\"description\":{\"type\":\"string\"},\"created_at\":{"
        "\"type\":\"string\"},\"updated_at\":{\"type\":\"string\"}}}");
    if (!rc)
        rc = acv_router_add_schema(
            r, "NewLabel",
            "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"maxLength\":200},\"parent\":{\"type\":"
            "\"string\",\"nullable\":true},\"parent_id\":{\"type\":\"integer\",\"nullable\":true},\"color\":{\"type\":"
            "\"string\",\"pattern\":\"^#[0-9a-fA-F]{6}$\"},\"aliases\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},"
            "\"maxItems\":64},\"description\":{\"type\":\"string\"},\"labels\":{\"type\":\"array\",\"items\":{\"type\":"
            "\"object\"},\"description\":\"bulk: an array of label objects (then no other field)\"}}}");
    return rc ? rc : acv_router_add(r, ROUTES, (int)(sizeof ROUTES / sizeof ROUTES[0]));
}
