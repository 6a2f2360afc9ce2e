/* Deployment routes: deploy a model version in one call, list, read, switch version (and
 * roll back), delete; predict on an uploaded image; and the KServe v2 inference protocol at
 * /v2 (health, model metadata and readiness, inference on preprocessed tensors) where the
 * deployment's name is the model name. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autocv/error.h"
#include "base/file.h"
#include "base/timeutil.h"
#include "server/api.h"
#include "server/deploy.h"

#define MAX_IMAGE_BYTES (256u << 20)

static int deployment_create(acv_call *c)
{
    json_t *body, *dep;
    int rc = acv_call_body(c, &body);
    if (!rc) rc = acv_deploy_create(acv_server_deploy(c->srv), c->db, &c->user, body, &dep);
    if (rc) return rc;
    char loc[64];
    snprintf(loc, sizeof loc, "/api/v1/deployments/%lld", (long long)json_integer_value(json_object_get(dep, "id")));
    acv_http_add_header(c->req, "Location", loc);
    return acv_call_json(c, 201, dep);
}

static int deployment_list(acv_call *c)
{
    int limit, offset;
    int rc = acv_call_paging(c, &limit, &offset);
    json_t *items = NULL;
    int64_t total = 0;
    if (!rc) rc = acv_deploy_list(acv_server_deploy(c->srv), c->db, limit, offset, &items, &total);
    return rc ? rc : acv_call_page(c, items, total, limit, offset);
}

static int deployment_get(acv_call *c)
{
    json_t *dep;
    int rc = acv_deploy_get(acv_server_deploy(c->srv), c->db, acv_call_id(c, "id"), &dep);
    return rc ? rc : acv_call_json(c, 200, dep);
}

static int deployment_update(acv_call *c)
{
    json_t *body, *dep;
    int rc = acv_call_body(c, &body);
    if (!rc) rc = acv_deploy_update(acv_server_deploy(c->srv), c->db, &c->user, acv_call_id(c, "id"), body, &dep);
    return rc ? rc : acv_call_json(c, 200, dep);
}

static int deployment_delete(acv_call *c)
{
    int rc = acv_deploy_delete(acv_server_deploy(c->srv), c->db, &c->user, acv_call_id(c, "id"));
    return rc ? rc : acv_call_no_content(c);
}

/* The image of a predict request: a multipart part named 'image' (or 'file'), or the body. */
static const acv_http_file *predict_image(acv_call *c)
{
    int n = acv_http_nfiles(c->req);
    for (int i = 0; i < n; i++) {
        const acv_http_file *f = acv_http_file_at(c->req, i);
        if (!strcmp(f->field, "image") || !strcmp(f->field, "file")) return f;
    }
    return n ? NULL : acv_http_raw(c->req);
}

static int deployment_predict(acv_call *c)
{
    double t0 = acv_now();
    int topk = 5;
    const char *q = acv_call_query(c, "topk");
    if (q) {
        char *end;
        long k = strtol(q, &end, 10);
        if (*end || k < 1 || k > 100000)
            return acv_error(ACV_EFORMAT, "query parameter 'topk' must be a positive integer (got '%.40s')", q);
        topk = (int)k;
    }
    const acv_http_file *f = predict_image(c);
    if (!f || (!f->path && !f->data) || !f->size)
        return acv_error(ACV_EFORMAT, "no image: send it as the body (image/jpeg, image/png, image/bmp) or in a "
                                      "multipart/form-data part named 'image'");
    /* small images arrive in memory (body_in_memory below), larger ones in a temporary file */
    uint8_t *buf = NULL;
    const uint8_t *img = f->data;
    size_t len = (size_t)f->size;
    int rc = 0;
    if (!img) {
        rc = acv_file_read(f->path, MAX_IMAGE_BYTES, &buf, &len);
        if (rc == ACV_ERANGE) return acv_call_error(c, 413, "the image is larger than %u MiB", MAX_IMAGE_BYTES >> 20);
        if (rc) return rc;
        img = buf;
    }
    json_t *res;
    rc = acv_deploy_predict(acv_server_deploy(c->srv), acv_call_id(c, "id"), img, len, topk, t0, &res);
    free(buf);
    return rc ? rc : acv_call_json(c, 200, res);
}

/* ---- KServe v2 ------------------------------------------------------------------------------ */

static int v2_live(acv_call *c) { return acv_call_json(c, 200, json_pack("{s:b}", "live", 1)); }

static int v2_ready(acv_call *c) { return acv_call_json(c, 200, json_pack("{s:b}", "ready", 1)); }

static int v2_model(acv_call *c)
{
    json_t *meta;
    int rc = acv_deploy_v2_metadata(acv_server_deploy(c->srv), acv_call_param(c, "name"),
                                    acv_call_param(c, "version"), &meta);
    return rc ? rc : acv_call_json(c, 200, meta);
}

static int v2_model_ready(acv_call *c)
{
    const char *name = acv_call_param(c, "name");
    bool ready;
    int rc = acv_deploy_v2_ready(acv_server_deploy(c->srv), name, acv_call_param(c, "version"), &ready);
    if (rc) return rc;
    if (!ready)
        return acv_call_error(c, 400, "model '%s' is not ready: it failed to load (see GET /api/v1/deployments)", name);
    return acv_call_json(c, 200, json_pack("{s:s, s:b}", "name", name, "ready", 1));
}

static int v2_infer(acv_call *c)
{
    json_t *body, *res;
    int rc = acv_call_body(c, &body);
    if (!rc)
        rc = acv_deploy_v2_infer(acv_server_deploy(c->srv), acv_call_param(c, "name"), acv_call_param(c, "version"),
                                 body, &res);
    return rc ? rc : acv_call_json(c, 200, res);
}

/* ---- the table ------------------------------------------------------------------------------ */

static const acv_route_param PAGE_Q[] = {
    ACV_ROUTE_PAGING,
    {NULL, NULL, NULL},
};

static const acv_route_param PREDICT_Q[] = {
    {"topk", "integer", "how many classes to return, best first (default 5; at most the class count)"},
    {NULL, NULL, NULL},
};

#define DEPLOYERS (ACV_ROLE_ENGINEER | ACV_ROLE_OPERATOR)
#define IMAGE_TYPES "multipart/form-data, image/jpeg, image/png, image/bmp, application/octet-stream"

static const acv_route ROUTES[] = {
    {.method = "POST", .pattern = "/api/v1/deployments", .handler = deployment_create, .perm = ACV_PERM_GLOBAL,
     .roles = DEPLOYERS, .tag = "deployments", .summary = "Deploy a model version (one click)",
     .description = "Loads the version (default: the model's latest) into the server's inference pool with `threads` "
                    "replicas (each serves one request at a time), runs each once, and records the deployment. 404 "
                    "for an unknown model or version, 409 when the name is taken, 422 for a model that cannot be "
                    "loaded or served (the reason says why). Only classification models can be deployed for now.",
     .body_types = "application/json",
     .body_schema = "{\"type\":\"object\",\"required\":[\"model\"],\"properties\":{\"model\":{\"type\":\"string\"},"
                    "\"version\":{\"type\":\"integer\",\"minimum\":1,\"description\":\"default: the latest\"},"
                    "\"name\":{\"type\":\"string\",\"pattern\":\"^[A-Za-z0-9._-]{1,100}$\",\"description\":"
                    "\"unique; default: the model's name\"},\"threads\":{\"type\":\"integer\",\"minimum\":1,"
                    "\"description\":\"replicas, i.e. requests served at once (1..cores, default 1)\"}}}",
     .status = 201, .resp_schema = "#Deployment", .resp_desc = "the deployment, ready"},
    {.method = "GET", .pattern = "/api/v1/deployments", .handler = deployment_list, .perm = ACV_PERM_USER,
     .tag = "deployments", .summary = "List deployments", .query = PAGE_Q, .resp_schema = ACV_PAGE_OF("Deployment"),
     .resp_desc = "a page of deployments, by id"},
    {.method = "GET", .pattern = "/api/v1/deployments/{id}", .handler = deployment_get, .perm = ACV_PERM_USER,
     .tag = "deployments", .summary = "Read a deployment (with its request statistics)", .resp_schema = "#Deployment",
     .resp_desc = "the deployment"},
    {.method = "PATCH", .pattern = "/api/v1/deployments/{id}", .handler = deployment_update, .perm = ACV_PERM_GLOBAL,
     .roles = DEPLOYERS, .tag = "deployments", .summary = "Switch version (or roll back), or change threads",
     .description = "Loads the given version of the same model fully, then swaps it in atomically: requests already "
                    "running finish on the old version, new ones go to the new one, and the old version is unloaded "
                    "when its last request ends; no request is dropped. Also reloads a deployment that failed.",
     .body_types = "application/json",
     .body_schema = "{\"type\":\"object\",\"properties\":{\"version\":{\"type\":\"integer\",\"minimum\":1},"
                    "\"threads\":{\"type\":\"integer\",\"minimum\":1}}}",
     .resp_schema = "#Deployment", .resp_desc = "the deployment, serving the new version"},
    {.method = "DELETE", .pattern = "/api/v1/deployments/{id}", .handler = deployment_delete, .perm = ACV_PERM_GLOBAL,
     .roles = DEPLOYERS, .tag = "deployments", .summary = "Remove a deployment",
     .description = "Requests already running finish; the model is unloaded after them.", .status = 204,
     .resp_desc = "deleted"},
    {.method = "POST", .pattern = "/api/v1/deployments/{id}/predict", .handler = deployment_predict,
     .perm = ACV_PERM_GLOBAL, .roles = DEPLOYERS, .tag = "deployments", .summary = "Classify an image",
     .query = PREDICT_Q,
     .description = "The image as the raw body (image/jpeg, image/png, image/bmp, application/octet-stream) or in a "
                    "multipart/form-data part named 'image' (or 'file'); decoded with its EXIF orientation, "
                    "preprocessed as in evaluation. Scores are softmax probabilities, as `autocv predict` prints "
                    "them. An image that cannot be decoded is 400 (422 when unsupported or too large) with the "
                    "decoder's reason. Requests run concurrently on the deployment's replicas.",
     .body_types = IMAGE_TYPES, .body_in_memory = 4u << 20, .resp_schema = "#Prediction",
     .resp_desc = "the top classes and the time taken"},
    {.method = "GET", .pattern = "/v2/health/live", .handler = v2_live, .perm = ACV_PERM_PUBLIC,
     .tag = "kserve", .summary = "KServe v2: server liveness", .resp_desc = "{\"live\":true}"},
    {.method = "GET", .pattern = "/v2/health/ready", .handler = v2_ready, .perm = ACV_PERM_PUBLIC,
     .tag = "kserve", .summary = "KServe v2: server readiness", .resp_desc = "{\"ready\":true}"},
    {.method = "GET", .pattern = "/v2/models/{name}", .handler = v2_model, .perm = ACV_PERM_USER, .tag = "kserve",
     .summary = "KServe v2: model metadata (the deployment named {name})",
     .description = "The input is the preprocessed tensor (normalized NCHW at the model's input size); the outputs "
                    "are the softmax probabilities and the logits, [N, classes] each.",
     .resp_schema = "#V2Metadata", .resp_desc = "the model's metadata"},
    {.method = "GET", .pattern = "/v2/models/{name}/ready", .handler = v2_model_ready, .perm = ACV_PERM_USER,
     .tag = "kserve", .summary = "KServe v2: model readiness",
     .description = "200 when the deployment has its model loaded, 400 when it failed to load, 404 when there is no "
                    "such deployment.",
     .resp_desc = "{\"name\",\"ready\":true}"},
    {.method = "GET", .pattern = "/v2/models/{name}/versions/{version}", .handler = v2_model, .perm = ACV_PERM_USER,
     .tag = "kserve", .summary = "KServe v2: model metadata of a version",
     .description = "404 (naming the deployed version) unless {version} is the deployed one.",
     .resp_schema = "#V2Metadata", .resp_desc = "the model's metadata"},
    {.method = "GET", .pattern = "/v2/models/{name}/versions/{version}/ready", .handler = v2_model_ready,
     .perm = ACV_PERM_USER, .tag = "kserve", .summary = "KServe v2: readiness of a version",
     .resp_desc = "{\"name\",\"ready\":true}"},
    {.method = "POST", .pattern = "/v2/models/{name}/infer", .handler = v2_infer, .perm = ACV_PERM_GLOBAL,
     .roles = DEPLOYERS, .tag = "kserve", .summary = "KServe v2: inference on a preprocessed tensor",
     .description = "One FP32 input named \"input\" of shape [N, C, H, W] (the model's input size), data flat or "
                    "nested in row-major order. Outputs \"probabilities\" (softmax) and \"logits\", [N, classes] "
                    "each: those named in \"outputs\", both when it is absent. A malformed request is 400 naming "
                    "the field.",
     .body_types = "application/json", .body_schema = "#V2InferRequest", .resp_schema = "#V2InferResponse",
     .resp_desc = "the output tensors"},
    {.method = "POST", .pattern = "/v2/models/{name}/versions/{version}/infer", .handler = v2_infer,
     .perm = ACV_PERM_GLOBAL, .roles = DEPLOYERS, .tag = "kserve",
     .summary = "KServe v2: inference on a given version",
     .description = "As /v2/models/{name}/infer; 404 (naming the deployed version) unless {version} is the deployed "
                    "one.",
     .body_types = "application/json", .body_schema = "#V2InferRequest", .resp_schema = "#V2InferResponse",
     .resp_desc = "the output tensors"},
};

#define TENSOR_SCHEMA(extra)                                                                                           \
    "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},\"datatype\":{\"type\":\"string\",\"enum\":"  \
    "[\"FP32\"]},\"shape\":{\"type\":\"array\",\"items\":{\"type\":\"integer\"}}" extra "}}"

int acv_api_deployments(acv_router *r, const acv_server_config *cfg)
{
    (void)cfg;
    int rc = acv_router_add_schema(
        r, "Deployment",
        "{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"integer\"},\"name\":{\"type\":\"string\"},\"model\":{"
        "\"type\":\"string\"},\"version\":{\"type\":\"integer\"},\"model_version_id\":{\"type\":\"integer\"},\"task\":{"
        "\"type\":\"string\"},\"threads\":{\"type\":\"integer\"},\"status\":{\"type\":\"string\",\"enum\":[\"ready\","
        "\"failed\"]},\"error\":{\"type\":\"string\",\"nullable\":true},\"classes\":{\"type\":\"array\",\"items\":{"
        "\"type\":\"string\"}},\"input\":{\"type\":\"object\",\"nullable\":true,\"properties\":{\"channels\":{\"type\":"
        "\"integer\"},\"height\":{\"type\":\"integer\"},\"width\":{\"type\":\"integer\"}}},\"created_by\":{\"type\":"
        "\"integer\",\"nullable\":true},\"created_at\":{\"type\":\"string\"},\"updated_at\":{\"type\":\"string\"},"
        "\"stats\":{\"type\":\"object\",\"description\":\"since the server started\",\"properties\":{\"requests\":{"
        "\"type\":\"integer\"},\"errors\":{\"type\":\"integer\"},\"mean_ms\":{\"type\":\"number\",\"description\":"
        "\"mean server time of the successful requests\"},\"in_flight\":{\"type\":\"integer\"}}}}}");
    if (!rc)
        rc = acv_router_add_schema(
            r, "Prediction",
            "{\"type\":\"object\",\"properties\":{\"deployment\":{\"type\":\"string\"},\"deployment_id\":{\"type\":"
            "\"integer\"},\"model\":{\"type\":\"string\"},\"version\":{\"type\":\"integer\",\"description\":\"the "
            "version that answered\"},\"task\":{\"type\":\"string\"},\"predictions\":{\"type\":\"array\",\"items\":{"
            "\"type\":\"object\",\"properties\":{\"label\":{\"type\":\"string\"},\"index\":{\"type\":\"integer\"},"
            "\"score\":{\"type\":\"number\"}}}},\"label\":{\"type\":\"string\"},\"score\":{\"type\":\"number\"},"
            "\"image\":{\"type\":\"object\",\"properties\":{\"width\":{\"type\":\"integer\"},\"height\":{\"type\":"
            "\"integer\"}}},\"time_ms\":{\"type\":\"object\",\"properties\":{\"decode\":{\"type\":\"number\"},"
            "\"preprocess\":{\"type\":\"number\"},\"inference\":{\"type\":\"number\"},\"total\":{\"type\":\"number\","
            "\"description\":\"in the server, from the handler's start (body received) to the answer\"}}}}}");
    if (!rc)
        rc = acv_router_add_schema(
            r, "V2Metadata",
            "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},\"versions\":{\"type\":\"array\","
            "\"items\":{\"type\":\"string\"}},\"platform\":{\"type\":\"string\"},\"inputs\":{\"type\":\"array\","
            "\"items\":" TENSOR_SCHEMA("") "},\"outputs\":{\"type\":\"array\",\"items\":" TENSOR_SCHEMA("") "}}}");
    if (!rc)
        rc = acv_router_add_schema(
            r, "V2InferRequest",
            "{\"type\":\"object\",\"required\":[\"inputs\"],\"properties\":{\"id\":{\"type\":\"string\"},\"inputs\":{"
            "\"type\":\"array\",\"items\":" TENSOR_SCHEMA(",\"data\":{\"type\":\"array\",\"items\":{}}") "},"
            "\"outputs\":{\"type\":\"array\",\"items\":{\"type\":\"object\",\"properties\":{\"name\":{\"type\":"
            "\"string\",\"enum\":[\"probabilities\",\"logits\"]}}}}}}");
    if (!rc)
        rc = acv_router_add_schema(
            r, "V2InferResponse",
            "{\"type\":\"object\",\"properties\":{\"model_name\":{\"type\":\"string\"},\"model_version\":{\"type\":"
            "\"string\"},\"id\":{\"type\":\"string\"},\"outputs\":{\"type\":\"array\",\"items\":"
            TENSOR_SCHEMA(",\"data\":{\"type\":\"array\",\"items\":{\"type\":\"number\"}}") "}}}");
    return rc ? rc : acv_router_add(r, ROUTES, (int)(sizeof ROUTES / sizeof ROUTES[0]));
}
