/* The OpenAPI 3.0 document, generated from the route table (router.h): one operation per
 * route with its path and query parameters, request body, success response, the error
 * responses the permission implies, the bearer security scheme, and the permission itself
 * as "x-permission" ({"kind":"public|user|global|project","roles":[...]}; admins always pass). */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "platform/auth.h"
#include "server/router.h"

static json_t *schema_of(const char *s)
{
    if (!s) return NULL;
    if (s[0] == '#') {
        char ref[160];
        snprintf(ref, sizeof ref, "#/components/schemas/%s", s + 1);
        return json_pack("{s:s}", "$ref", ref);
    }
    return json_loads(s, 0, NULL);
}

static json_t *error_response(const char *desc)
{
    return json_pack("{s:s, s:{s:{s:{s:s}}}}", "description", desc, "content", "application/json", "schema", "$ref",
                     "#/components/schemas/Error");
}

static const char *perm_kind(acv_perm p)
{
    switch (p) {
    case ACV_PERM_PUBLIC: return "public";
    case ACV_PERM_USER: return "user";
    case ACV_PERM_GLOBAL: return "global";
    default: return "project";
    }
}

/* "get_api_v1_projects_id_members" */
static void operation_id(const acv_route *rt, char *out, size_t n)
{
    size_t w = 0;
    for (const char *m = rt->method; *m && w + 1 < n; m++) out[w++] = (char)tolower((unsigned char)*m);
    for (const char *p = rt->pattern; *p && w + 1 < n; p++) {
        if (*p == '{' || *p == '}') continue;
        char ch = isalnum((unsigned char)*p) ? *p : '_';
        if (ch == '_' && w && out[w - 1] == '_') continue;
        out[w++] = ch;
    }
    out[w] = 0;
}

static json_t *operation(const acv_route *rt)
{
    char opid[256];
    operation_id(rt, opid, sizeof opid);
    json_t *op = json_pack("{s:s, s:s, s:[s]}", "operationId", opid, "summary", rt->summary, "tags", rt->tag);
    if (rt->description) json_object_set_new(op, "description", json_string(rt->description));

    json_t *params = json_array();
    for (const char *p = strchr(rt->pattern, '{'); p; p = strchr(p + 1, '{')) {
        const char *end = strchr(p, '}');
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)(end - p - 1), p + 1);
        size_t n = strlen(name);
        bool integer = !strcmp(name, "id") || (n > 3 && !strcmp(name + n - 3, "_id"));
        json_array_append_new(params, json_pack("{s:s, s:s, s:b, s:{s:s}}", "name", name, "in", "path", "required", 1,
                                                "schema", "type", integer ? "integer" : "string"));
    }
    for (const acv_route_param *q = rt->query; q && q->name; q++)
        json_array_append_new(params, json_pack("{s:s, s:s, s:b, s:s, s:{s:s}}", "name", q->name, "in", "query",
                                                "required", 0, "description", q->description ? q->description : "",
                                                "schema", "type", q->type ? q->type : "string"));
    if (json_array_size(params)) json_object_set_new(op, "parameters", params);
    else json_decref(params);

    if (rt->body_types) {
        json_t *content = json_object();
        char types[256];
        snprintf(types, sizeof types, "%s", rt->body_types);
        char *save = NULL;
        for (char *t = strtok_r(types, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
            json_t *media = json_object();
            json_t *sch = !strcmp(t, "application/json") ? schema_of(rt->body_schema) : NULL;
            if (!strncmp(t, "text/", 5) || !strcmp(t, "application/octet-stream"))
                sch = json_pack("{s:s, s:s}", "type", "string", "format", "binary");
            else if (!strcmp(t, "multipart/form-data"))
                sch = json_pack("{s:s, s:{s:{s:s, s:{s:s, s:s}}}}", "type", "object", "properties", "file", "type",
                                "array", "items", "type", "string", "format", "binary");
            if (sch) json_object_set_new(media, "schema", sch);
            json_object_set_new(content, t, media);
        }
        json_object_set_new(op, "requestBody", json_pack("{s:b, s:o}", "required", 1, "content", content));
    }

    json_t *resp = json_object();
    char code[8];
    int status = rt->status ? rt->status : 200;
    snprintf(code, sizeof code, "%d", status);
    json_t *ok = json_pack("{s:s}", "description", rt->resp_desc ? rt->resp_desc : "success");
    json_t *rs = status == 204 ? NULL : schema_of(rt->resp_schema);
    if (rs) json_object_set_new(ok, "content", json_pack("{s:{s:o}}", "application/json", "schema", rs));
    json_object_set_new(resp, code, ok);
    if (rt->body_types) {
        json_object_set_new(resp, "400", error_response("malformed request (bad JSON, missing or mistyped field)"));
        json_object_set_new(resp, "413", error_response("request body too large"));
        json_object_set_new(resp, "422", error_response("a field value is not valid"));
    }
    if (rt->perm != ACV_PERM_PUBLIC) {
        json_object_set_new(resp, "401", error_response("no token, or an invalid, expired or revoked one"));
        json_object_set_new(resp, "403", error_response("the caller's role does not allow this"));
    }
    if (strchr(rt->pattern, '{') || rt->perm == ACV_PERM_PROJECT)
        json_object_set_new(resp, "404", error_response("no such object (or a project the caller is not a member of)"));
    json_object_set_new(op, "responses", resp);

    if (rt->perm == ACV_PERM_PUBLIC) json_object_set_new(op, "security", json_array());
    json_t *roles = json_array();
    if (rt->perm == ACV_PERM_GLOBAL || rt->perm == ACV_PERM_PROJECT) {
        json_array_append_new(roles, json_string("admin"));
        json_t *named = acv_roles_json(rt->roles & ~(unsigned)ACV_ROLE_ADMIN);
        json_array_extend(roles, named);
        json_decref(named);
    }
    json_object_set_new(op, "x-permission", json_pack("{s:s, s:o}", "kind", perm_kind(rt->perm), "roles", roles));
    return op;
}

json_t *acv_router_openapi(const acv_router *r, const char *title, const char *version)
{
    json_t *schemas = json_object();
    json_object_set_new(schemas, "Error",
                        json_loads("{\"type\":\"object\",\"required\":[\"error\"],\"properties\":{\"error\":{\"type\":"
                                   "\"object\",\"required\":[\"code\",\"message\"],\"properties\":{\"code\":{\"type\":"
                                   "\"string\"},\"message\":{\"type\":\"string\"}}}}}",
                                   0, NULL));
    for (int i = 0; i < acv_router_nschemas(r); i++) {
        const char *name = acv_router_schema_name(r, i);
        json_object_set_new(schemas, name, json_loads(acv_router_schema(r, name), 0, NULL));
    }
    json_t *paths = json_object(), *tags = json_array();
    for (int i = 0; i < acv_router_count(r); i++) {
        const acv_route *rt = acv_router_at(r, i);
        json_t *item = json_object_get(paths, rt->pattern);
        if (!item) {
            item = json_object();
            json_object_set_new(paths, rt->pattern, item);
        }
        char m[16];
        size_t k = 0;
        for (; rt->method[k] && k + 1 < sizeof m; k++) m[k] = (char)tolower((unsigned char)rt->method[k]);
        m[k] = 0;
        json_object_set_new(item, m, operation(rt));
        bool seen = false;
        for (size_t t = 0; t < json_array_size(tags); t++)
            seen |= !strcmp(json_string_value(json_object_get(json_array_get(tags, t), "name")), rt->tag);
        if (!seen) json_array_append_new(tags, json_pack("{s:s}", "name", rt->tag));
    }
    return json_pack("{s:s, s:{s:s, s:s, s:s}, s:o, s:o, s:{s:{s:{s:s, s:s, s:s}}, s:o}, s:[{s:[]}]}", "openapi",
                     "3.0.3", "info", "title", title, "version", version, "description",
                     "AutoCV platform API. Send 'Authorization: Bearer TOKEN' (from POST /api/v1/auth/login or "
                     "POST /api/v1/tokens). Errors are {\"error\":{\"code\",\"message\"}}. Each operation's "
                     "x-permission names who may call it; admins always may.",
                     "tags", tags, "paths", paths, "components", "securitySchemes", "bearer", "type", "http",
                     "scheme", "bearer", "bearerFormat", "opaque token", "schemas", schemas, "security", "bearer");
}
