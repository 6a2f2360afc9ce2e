/* System routes: health, Prometheus metrics, and the OpenAPI document of every route. */
#include <stdlib.h>
#include <string.h>

#include "autocv/error.h"
#include "autocv/version.h"
#include "server/api.h"

static int healthz(acv_call *c)
{
    int64_t version = 0;
    int rc = acv_db_query_int(c->db, &version, 0, "SELECT MAX(version) FROM schema_version", NULL);
    if (rc) return acv_call_json(c, 503, json_pack("{s:s, s:s}", "status", "unavailable", "database", acv_errmsg()));
    return acv_call_json(c, 200, json_pack("{s:s, s:s, s:I}", "status", "ok", "version", AUTOCV_VERSION,
                                           "schema_version", (json_int_t)version));
}

static int metrics(acv_call *c)
{
    char *text = acv_metrics_render(acv_server_metrics(c->srv), acv_server_router(c->srv));
    if (!text) return acv_error(ACV_ENOMEM, "out of memory rendering metrics");
    int rc = acv_http_respond_data(c->req, 200, "text/plain; version=0.0.4; charset=utf-8", text, strlen(text));
    free(text);
    return rc;
}

static int openapi(acv_call *c)
{
    return acv_call_json(c, 200, acv_router_openapi(acv_server_router(c->srv), "AutoCV", AUTOCV_VERSION));
}

static const acv_route ROUTES[] = {
    {.method = "GET", .pattern = "/healthz", .handler = healthz, .perm = ACV_PERM_PUBLIC, .tag = "system",
     .summary = "Liveness and database check",
     .resp_schema = "{\"type\":\"object\",\"properties\":{\"status\":{\"type\":\"string\"},\"version\":{\"type\":"
                    "\"string\"},\"schema_version\":{\"type\":\"integer\"}}}",
     .resp_desc = "the server and its database answer (503 when the database does not)"},
    {.method = "GET", .pattern = "/api/v1/openapi.json", .handler = openapi, .perm = ACV_PERM_USER, .tag = "system",
     .summary = "This OpenAPI document, generated from the route table",
     .resp_schema = "{\"type\":\"object\"}", .resp_desc = "an OpenAPI 3.0 document"},
};

static const acv_route METRICS = {
    .method = "GET", .pattern = "/metrics", .handler = metrics, .perm = ACV_PERM_USER, .tag = "system",
    .summary = "Prometheus metrics",
    .description = "Requests by route pattern and status, a latency histogram per route, requests in flight, "
                   "database and blob store sizes, resident memory. Needs a token unless the server runs with "
                   "--metrics-public.",
    .resp_desc = "text/plain; version=0.0.4"};

int acv_api_system(acv_router *r, const acv_server_config *cfg)
{
    acv_route m = METRICS;
    if (cfg->metrics_public) m.perm = ACV_PERM_PUBLIC;
    int rc = acv_router_add(r, ROUTES, (int)(sizeof ROUTES / sizeof ROUTES[0]));
    return rc ? rc : acv_router_add(r, &m, 1);
}
