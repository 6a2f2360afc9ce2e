/* The route table: method + path pattern -> handler, with the permission the route needs and
 * the metadata its OpenAPI description is generated from (openapi.c). Every resource file
 * (api_*.c) declares a static array of acv_route and registers it from one function; routes.c
 * calls those functions, so the whole API is assembled in one place.
 *
 * Patterns are literal segments and {name} parameters: "/api/v1/projects/{id}/members/{user_id}".
 * A parameter named "id" or ending in "_id" must be a positive integer (anything else is 404).
 * When several patterns match a path, the one with a literal earlier wins
 * ("/api/v1/users/me" before "/api/v1/users/{id}"). A path that matches with another method
 * only is 405 (with Allow), no match at all is 404. HEAD is served by the GET route. */
#ifndef ACV_SERVER_ROUTER_H
#define ACV_SERVER_ROUTER_H

#include <jansson.h>
#include <stdint.h>

typedef struct acv_call acv_call; /* server.h */
typedef int (*acv_handler)(acv_call *c);
/* For a project-scoped route: the project the request acts on (e.g. the project of the label
 * {id}); ACV_ENOTFOUND when the object does not exist. */
typedef int (*acv_project_of)(acv_call *c, int64_t *project_id);

typedef enum {
    ACV_PERM_PUBLIC,  /* no token needed */
    ACV_PERM_USER,    /* any valid token */
    ACV_PERM_GLOBAL,  /* a token whose user has one of `roles` (global roles) */
    ACV_PERM_PROJECT, /* a member of the project with one of `roles` (project roles) */
} acv_perm;

typedef struct acv_route_param {
    const char *name;
    const char *type;        /* "integer", "string", "boolean" */
    const char *description;
} acv_route_param;

typedef struct acv_route {
    const char *method;      /* "GET", "POST", "PUT", "PATCH", "DELETE" */
    const char *pattern;
    acv_handler handler;
    acv_perm perm;
    unsigned roles;          /* ACV_ROLE_* bits; admins always pass */
    acv_project_of project;  /* PROJECT routes: NULL = the {id} parameter is the project id */
    /* OpenAPI */
    const char *tag;         /* "projects" */
    const char *summary;
    const char *description; /* optional, longer */
    const acv_route_param *query; /* {NULL}-terminated, or NULL */
    const char *body_types;  /* accepted request content types, comma-separated; NULL: no body */
    unsigned body_in_memory; /* file parts and raw bodies up to this many bytes in all stay in memory
                                (acv_http_file.data) instead of temporary files; 0: files */
    const char *body_schema; /* JSON Schema text, or "#Name" for a registered schema */
    int status;              /* success status (0 = 200) */
    const char *resp_schema; /* JSON Schema text, "#Name", or NULL */
    const char *resp_desc;   /* describes the success response */
} acv_route;

/* Paging query parameters, shared by list routes. */
#define ACV_ROUTE_PAGING                                                                          \
    {"limit", "integer", "items per page (1..1000, default 100)"},                                \
    {"offset", "integer", "items to skip (default 0)"}

/* The response schema of a paged list of a registered schema: ACV_PAGE_OF("Label"). */
#define ACV_PAGE_OF(name)                                                                         \
    "{\"type\":\"object\",\"properties\":{\"items\":{\"type\":\"array\",\"items\":"                \
    "{\"$ref\":\"#/components/schemas/" name "\"}},\"total\":{\"type\":\"integer\"},"                 \
    "\"limit\":{\"type\":\"integer\"},\"offset\":{\"type\":\"integer\"}}}"

typedef struct acv_router acv_router;

#define ACV_ROUTE_MAX_PARAMS 8
typedef struct acv_route_match {
    const acv_route *route;
    int index;               /* the route's index in the table (for metrics) */
    int nparams;
    const char *names[ACV_ROUTE_MAX_PARAMS];
    char values[ACV_ROUTE_MAX_PARAMS][256];
    char allow[64];          /* on 405: the methods the path accepts ("GET, POST") */
} acv_route_match;

int acv_router_new(acv_router **out);
void acv_router_free(acv_router *r);
/* Adds routes (the structs are copied; their strings and arrays must stay valid, i.e. be
 * static). A malformed pattern or a method+pattern already present is ACV_EINVAL/ACV_EEXIST. */
int acv_router_add(acv_router *r, const acv_route *routes, int n);
/* Registers a named JSON Schema ("Label") that routes reference as "#Label". */
int acv_router_add_schema(acv_router *r, const char *name, const char *schema_json);
/* Finds the route for method and path: 0, ACV_ENOTFOUND (no path matches: 404) or
 * ACV_EUNSUPPORTED (the path exists for other methods: 405, m->allow says which). */
int acv_router_match(const acv_router *r, const char *method, const char *path, acv_route_match *m);
int acv_router_count(const acv_router *r);
const acv_route *acv_router_at(const acv_router *r, int i);
const char *acv_router_schema(const acv_router *r, const char *name);
int acv_router_nschemas(const acv_router *r);
const char *acv_router_schema_name(const acv_router *r, int i);

/* The OpenAPI 3.0 document for every route (new reference; openapi.c). */
json_t *acv_router_openapi(const acv_router *r, const char *title, const char *version);

#endif
