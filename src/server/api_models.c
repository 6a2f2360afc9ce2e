/* Model repository routes: models and their versions (read, describe, tag, delete), external
 * models uploaded as ONNX files or zipped model directories, publishing a training job's
 * model, and downloads (the model directory as a zip, or ONNX). Data logic:
 * platform/models.h. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "autocv/error.h"
#include "autocv/model.h"
#include "onnx/export.h"
#include "platform/jsonarg.h"
#include "platform/models.h"
#include "server/api.h"

/* The {v} path parameter: a positive integer (anything else is 404, as the router does for
 * ids). */
static int version_param(acv_call *c, int *v)
{
    const char *s = acv_call_param(c, "v");
    char *end;
    errno = 0;
    long x = s ? strtol(s, &end, 10) : 0;
    if (!s || !*s || *end || errno || x <= 0 || x > INT_MAX || s[0] == '+' || s[0] == ' ')
        return acv_error(ACV_ENOTFOUND, "model '%.100s' has no version '%.20s' (versions are numbered from 1)",
                         acv_call_param(c, "name"), s ? s : "");
    *v = (int)x;
    return 0;
}

static const char *data_dir(acv_call *c) { return acv_server_config_of(c->srv)->data_dir; }

static void set_location(acv_call *c, const json_t *version)
{
    char loc[200];
    snprintf(loc, sizeof loc, "/api/v1/models/%s/versions/%lld", json_string_value(json_object_get(version, "model")),
             (long long)json_integer_value(json_object_get(version, "version")));
    acv_http_add_header(c->req, "Location", loc);
}

/* ---- models ---------------------------------------------------------------------------------- */

static int model_list(acv_call *c)
{
    int limit, offset;
    int rc = acv_call_paging(c, &limit, &offset);
    json_t *items = NULL;
    int64_t total = 0;
    if (!rc) rc = acv_models_list(c->db, acv_call_query(c, "q"), acv_call_query(c, "task"), limit, offset, &items, &total);
    return rc ? rc : acv_call_page(c, items, total, limit, offset);
}

static int model_get(acv_call *c)
{
    json_t *m;
    int rc = acv_models_get(c->db, acv_call_param(c, "name"), &m);
    return rc ? rc : acv_call_json(c, 200, m);
}

static int model_patch(acv_call *c)
{
    json_t *body, *m;
    int rc = acv_call_body(c, &body);
    if (!rc) rc = acv_models_update(c->db, &c->user, acv_call_param(c, "name"), 0, body, &m);
    return rc ? rc : acv_call_json(c, 200, m);
}

static int model_delete(acv_call *c)
{
    int rc = acv_models_delete(c->db, &c->user, data_dir(c), acv_call_param(c, "name"), 0);
    return rc ? rc : acv_call_no_content(c);
}

/* ---- versions -------------------------------------------------------------------------------- */

static int version_list(acv_call *c)
{
    int limit, offset;
    int rc = acv_call_paging(c, &limit, &offset);
    json_t *items = NULL;
    int64_t total = 0;
    if (!rc) rc = acv_models_versions(c->db, acv_call_param(c, "name"), limit, offset, &items, &total);
    return rc ? rc : acv_call_page(c, items, total, limit, offset);
}

static int version_get(acv_call *c)
{
    int v;
    json_t *out;
    int rc = version_param(c, &v);
    if (!rc) rc = acv_models_version_get(c->db, acv_call_param(c, "name"), v, acv_models_viewer(&c->user), &out);
    return rc ? rc : acv_call_json(c, 200, out);
}

static int version_patch(acv_call *c)
{
    int v;
    json_t *body, *out;
    int rc = version_param(c, &v);
    if (!rc) rc = acv_call_body(c, &body);
    if (!rc) rc = acv_models_update(c->db, &c->user, acv_call_param(c, "name"), v, body, &out);
    return rc ? rc : acv_call_json(c, 200, out);
}

static int version_delete(acv_call *c)
{
    int v;
    int rc = version_param(c, &v);
    if (!rc) rc = acv_models_delete(c->db, &c->user, data_dir(c), acv_call_param(c, "name"), v);
    return rc ? rc : acv_call_no_content(c);
}

/* ---- uploads --------------------------------------------------------------------------------- */

/* An option of an upload: a multipart text field, or a query parameter with a raw body. */
static const char *upload_opt(acv_call *c, const char *name)
{
    const char *v = acv_http_nfiles(c->req) || acv_http_body(c->req) == ACV_HTTP_BODY_MULTIPART
                        ? acv_http_field(c->req, name)
                        : acv_call_query(c, name);
    return v && *v ? v : NULL;
}

/* A list field: a JSON array of strings, or names one per line (sep '\n') or comma-separated
 * (sep ','). New reference in *out. */
static int parse_list(const char *field, const char *text, char sep, json_t **out)
{
    *out = NULL;
    const char *p = text;
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') p++;
    if (*p == '[') {
        json_error_t err;
        json_t *a = json_loads(p, 0, &err);
        if (!json_is_array(a)) {
            json_decref(a);
            return acv_error(ACV_EFORMAT, "field '%s' is not a JSON array of strings (%s)", field,
                             a ? "not an array" : err.text);
        }
        *out = a;
        return 0;
    }
    json_t *a = json_array();
    char *copy = strdup(text), *save = NULL;
    if (!a || !copy) {
        json_decref(a);
        free(copy);
        return acv_error(ACV_ENOMEM, "out of memory");
    }
    char seps[3] = {sep, sep == '\n' ? '\r' : 0, 0};
    for (char *t = strtok_r(copy, seps, &save); t; t = strtok_r(NULL, seps, &save)) {
        while (*t == ' ' || *t == '\t') t++;
        size_t n = strlen(t);
        while (n && (t[n - 1] == ' ' || t[n - 1] == '\t')) t[--n] = 0;
        if (n) json_array_append_new(a, json_string(t));
    }
    free(copy);
    *out = a;
    return 0;
}

/* "R,G,B": 1 to 4 numbers; returns the count or an error naming the field. */
static int parse_floats(const char *field, const char *s, float v[4])
{
    int n = 0;
    while (*s) {
        char *end;
        float f = strtof(s, &end);
        if (end == s || n == 4)
            return acv_error(ACV_EFORMAT, "field '%s' must be 1 to 4 comma-separated numbers (\"0.5,0.5,0.5\")", field);
        v[n++] = f;
        s = end;
        while (*s == ' ') s++;
        if (*s == ',') s++;
        else if (*s) return acv_error(ACV_EFORMAT, "field '%s' must be 1 to 4 comma-separated numbers", field);
        while (*s == ' ') s++;
    }
    return n ? n : acv_error(ACV_EFORMAT, "field '%s' is empty", field);
}

static bool is_file_field(const char *f) { return !strcmp(f, "file") || !strcmp(f, "model"); }

static int version_create(acv_call *c)
{
    const acv_http_file *f = NULL;
    for (int i = 0; i < acv_http_nfiles(c->req); i++) {
        const acv_http_file *p = acv_http_file_at(c->req, i);
        if (!is_file_field(p->field)) continue;
        if (f) return acv_error(ACV_EFORMAT, "one model per request: the request has several 'file' parts");
        f = p;
    }
    if (!f && acv_http_nfiles(c->req)) return acv_error(ACV_EFORMAT, "the model must be sent in a part named 'file'");
    if (!f && acv_http_body(c->req) == ACV_HTTP_BODY_RAW) f = acv_http_raw(c->req);
    if (!f || !f->path)
        return acv_error(ACV_EFORMAT, "no model: send multipart/form-data with a part named 'file' holding an .onnx "
                                      "file or a zipped model directory (or the file as the raw body)");
    acv_model_upload u = {0};
    u.path = f->path;
    u.filename = f->filename && *f->filename ? f->filename : acv_call_query(c, "filename");
    u.task = upload_opt(c, "task");
    u.description = upload_opt(c, "description");
    u.max_bytes = acv_server_config_of(c->srv)->max_upload_bytes;
    json_t *classes = NULL, *tags = NULL;
    const char *s;
    int rc = 0;
    if ((s = upload_opt(c, "classes"))) rc = parse_list("classes", s, '\n', &classes);
    if (!rc && (s = upload_opt(c, "tags"))) rc = parse_list("tags", s, ',', &tags);
    const char *mean = upload_opt(c, "mean"), *std = upload_opt(c, "std");
    if (!rc && !mean != !std) rc = acv_error(ACV_EFORMAT, "fields 'mean' and 'std' go together");
    if (!rc && mean) {
        int nm = parse_floats("mean", mean, u.mean);
        int ns = nm < 0 ? nm : parse_floats("std", std, u.std);
        if (nm < 0 || ns < 0) rc = nm < 0 ? nm : ns;
        else if (nm != ns) rc = acv_error(ACV_EFORMAT, "fields 'mean' and 'std' give %d and %d values", nm, ns);
        else u.nnorm = nm;
    }
    if (!rc && (s = upload_opt(c, "imgsz"))) {
        char *end;
        long x = strtol(s, &end, 10);
        if (*end || x < 1 || x > 8192) rc = acv_error(ACV_EFORMAT, "field 'imgsz' must be an integer in 1..8192");
        else u.imgsz = (int)x;
    }
    u.classes = classes;
    u.tags = tags;
    char *tmp = rc ? NULL : acv_server_path(c->srv, "tmp");
    if (!rc && !tmp) rc = acv_error(ACV_ENOMEM, "out of memory");
    json_t *out = NULL;
    if (!rc) rc = acv_models_upload(c->db, &c->user, data_dir(c), tmp, acv_call_param(c, "name"), &u, &out);
    free(tmp);
    json_decref(classes);
    json_decref(tags);
    if (rc) return rc;
    set_location(c, out);
    return acv_call_json(c, 201, out);
}

/* ---- publish ---------------------------------------------------------------------------------- */

static int job_project(acv_call *c, int64_t *project_id)
{
    return acv_models_job_project(c->db, acv_call_id(c, "id"), project_id);
}

static int job_publish(acv_call *c)
{
    static const char *const FIELDS[] = {"model", "description", "tags", NULL};
    json_t *body, *tags = NULL, *out = NULL;
    const char *model = NULL, *desc = NULL;
    int rc = acv_call_body(c, &body);
    if (!rc) rc = acv_jarg_only(body, FIELDS);
    if (!rc) rc = acv_jarg_str(body, "model", true, 0, &model);
    if (!rc) rc = acv_jarg_str(body, "description", false, 0, &desc);
    if (!rc) rc = acv_jarg_strlist(body, "tags", ACV_MODEL_TAGS_MAX, ACV_MODEL_TAG_MAX, &tags);
    char *tmp = rc ? NULL : acv_server_path(c->srv, "tmp");
    if (!rc && !tmp) rc = acv_error(ACV_ENOMEM, "out of memory");
    if (!rc) rc = acv_models_publish(c->db, &c->user, data_dir(c), tmp, model, acv_call_id(c, "id"), desc, tags, &out);
    free(tmp);
    if (rc) return rc;
    set_location(c, out);
    return acv_call_json(c, 201, out);
}

/* ---- downloads -------------------------------------------------------------------------------- */

/* The version's model directory (absolute, malloc'd) and the download's base name
 * ("NAME-vN"). */
static int version_dir(acv_call *c, char **dir, char base[160])
{
    int v;
    char *rel = NULL;
    json_t *row = NULL;
    int rc = version_param(c, &v);
    if (!rc) rc = acv_models_resolve(c->db, acv_call_param(c, "name"), v, NULL, &rel, &row);
    if (rc) return rc;
    snprintf(base, 160, "%s-v%lld", json_string_value(json_object_get(row, "model")),
             (long long)json_integer_value(json_object_get(row, "version")));
    json_decref(row);
    *dir = acv_server_path(c->srv, rel);
    free(rel);
    return *dir ? 0 : acv_error(ACV_ENOMEM, "out of memory");
}

/* Sends a temporary file as an attachment and removes it (the response holds it open). */
static int send_temp(acv_call *c, char *path, const char *filename, const char *mime)
{
    char disp[240];
    snprintf(disp, sizeof disp, "attachment; filename=\"%s\"", filename);
    acv_http_add_header(c->req, "Content-Disposition", disp);
    int rc = acv_http_respond_file(c->req, 200, path, mime);
    unlink(path);
    free(path);
    return rc;
}

/* A new empty temporary file DATA/tmp/<prefix>-XXXXXX<suffix> (malloc'd path). */
static int temp_file(acv_call *c, const char *prefix, const char *suffix, char **out)
{
    char name[64];
    snprintf(name, sizeof name, "tmp/%s-XXXXXX%s", prefix, suffix);
    char *p = acv_server_path(c->srv, name);
    if (!p) return acv_error(ACV_ENOMEM, "out of memory");
    int fd = mkstemps(p, (int)strlen(suffix));
    if (fd < 0) {
        int rc = acv_error(ACV_EIO, "%s: %s", p, strerror(errno));
        free(p);
        return rc;
    }
    close(fd);
    *out = p;
    return 0;
}

static int version_download(acv_call *c)
{
    char *dir = NULL, *zip = NULL, base[160], fname[170];
    int rc = version_dir(c, &dir, base);
    if (!rc) rc = temp_file(c, "download", ".zip", &zip);
    if (!rc) rc = acv_models_zip(dir, zip);
    free(dir);
    if (rc) {
        if (zip) unlink(zip);
        free(zip);
        return rc;
    }
    snprintf(fname, sizeof fname, "%s.zip", base);
    return send_temp(c, zip, fname, "application/zip");
}

static int version_export(acv_call *c)
{
    const char *format = acv_call_query(c, "format");
    if (!format) return acv_error(ACV_EFORMAT, "query parameter 'format' is required (onnx)");
    if (strcmp(format, "onnx"))
        return acv_error(ACV_EUNSUPPORTED, "export format '%.40s' is not supported (onnx is)", format);
    char *dir = NULL, *path = NULL, base[160], fname[170];
    acv_model *m = NULL;
    int rc = version_dir(c, &dir, base);
    if (!rc && (rc = acv_model_load(dir, &m))) rc = acv_error_prefix(ACV_EIO, "the stored model cannot be read: ");
    if (!rc) rc = temp_file(c, "export", ".onnx", &path);
    if (!rc) rc = acv_onnx_export(m, path);
    acv_model_free(m);
    free(dir);
    if (rc) {
        if (path) unlink(path);
        free(path);
        return rc;
    }
    snprintf(fname, sizeof fname, "%s.onnx", base);
    return send_temp(c, path, fname, "application/octet-stream");
}

/* ---- the table ------------------------------------------------------------------------------ */

static const acv_route_param LIST_Q[] = {
    ACV_ROUTE_PAGING,
    {"q", "string", "name contains this text (case-insensitive)"},
    {"task", "string", "models of this task (cls, det, seg)"},
    {NULL, NULL, NULL},
};

static const acv_route_param PAGE_Q[] = {
    ACV_ROUTE_PAGING,
    {NULL, NULL, NULL},
};

static const acv_route_param UPLOAD_Q[] = {
    {"task", "string", "raw body: the task (cls, det, seg; default the model's own, cls for ONNX)"},
    {"classes", "string", "raw body: class names as a JSON array (or one per line)"},
    {"mean", "string", "raw body: normalization mean per channel, \"R,G,B\""},
    {"std", "string", "raw body: normalization std per channel, \"R,G,B\""},
    {"imgsz", "integer", "raw body: input side for an ONNX file with dynamic height/width (224)"},
    {"description", "string", "raw body: the version's description"},
    {"tags", "string", "raw body: tags, a JSON array or comma-separated"},
    {"filename", "string", "raw body: the file's name (recorded in the lineage)"},
    {NULL, NULL, NULL},
};

static const acv_route_param EXPORT_Q[] = {
    {"format", "string", "onnx (the only format)"},
    {NULL, NULL, NULL},
};

#define ENGINEERS ACV_ROLE_ENGINEER
#define PATCH_SCHEMA                                                                                                   \
    "{\"type\":\"object\",\"properties\":{\"description\":{\"type\":\"string\"},\"tags\":{\"type\":\"array\","       \
    "\"items\":{\"type\":\"string\"}}}}"

static const acv_route ROUTES[] = {
    {.method = "GET", .pattern = "/api/v1/models", .handler = model_list, .perm = ACV_PERM_USER, .tag = "models",
     .summary = "List the model repository", .query = LIST_Q,
     .description = "Models are global (not per project), by name.", .resp_schema = ACV_PAGE_OF("Model"),
     .resp_desc = "a page of models"},
    {.method = "GET", .pattern = "/api/v1/models/{name}", .handler = model_get, .perm = ACV_PERM_USER,
     .tag = "models", .summary = "Read a model", .resp_schema = "#Model", .resp_desc = "the model"},
    {.method = "PATCH", .pattern = "/api/v1/models/{name}", .handler = model_patch, .perm = ACV_PERM_GLOBAL,
     .roles = ENGINEERS, .tag = "models", .summary = "Change a model's description or tags",
     .body_types = "application/json", .body_schema = PATCH_SCHEMA, .resp_schema = "#Model",
     .resp_desc = "the model"},
    {.method = "DELETE", .pattern = "/api/v1/models/{name}", .handler = model_delete, .perm = ACV_PERM_GLOBAL,
     .roles = ENGINEERS, .tag = "models", .summary = "Delete a model and all its versions",
     .description = "409 while one of its versions is deployed.", .status = 204, .resp_desc = "deleted"},
    {.method = "GET", .pattern = "/api/v1/models/{name}/versions", .handler = version_list, .perm = ACV_PERM_USER,
     .tag = "models", .summary = "List a model's versions (newest first)", .query = PAGE_Q,
     .resp_schema = ACV_PAGE_OF("ModelVersion"), .resp_desc = "a page of versions"},
    {.method = "POST", .pattern = "/api/v1/models/{name}/versions", .handler = version_create,
     .perm = ACV_PERM_GLOBAL, .roles = ENGINEERS, .tag = "models",
     .summary = "Add an external model (ONNX or a zipped model directory) as a new version", .query = UPLOAD_Q,
     .description = "multipart/form-data with a part 'file' (an .onnx file, or a zip of a model directory: "
                    "model.json + weights.safetensors [+ metrics.json], optionally inside one folder) and text "
                    "fields task, classes (JSON array or one per line; required for ONNX files whose metadata has "
                    "none), mean and std (\"R,G,B\"), imgsz, description, tags (JSON array); or the file as the raw "
                    "body with those as query parameters. The model is loaded and run once on a zero input first: "
                    "one that cannot load or run is 422 with the reason and nothing is stored. Creates the model "
                    "when the name is new (1-100 of A-Z a-z 0-9 . _ -, starting with a letter or digit).",
     .body_types = "multipart/form-data, application/octet-stream, application/zip, application/x-zip-compressed",
     .status = 201, .resp_schema = "#ModelVersion", .resp_desc = "the new version"},
    {.method = "GET", .pattern = "/api/v1/models/{name}/versions/{v}", .handler = version_get,
     .perm = ACV_PERM_USER, .tag = "models", .summary = "Read a model version",
     .description = "With its metrics, lineage, evaluations and deployments.", .resp_schema = "#ModelVersion",
     .resp_desc = "the version"},
    {.method = "PATCH", .pattern = "/api/v1/models/{name}/versions/{v}", .handler = version_patch,
     .perm = ACV_PERM_GLOBAL, .roles = ENGINEERS, .tag = "models",
     .summary = "Change a version's description or tags", .body_types = "application/json",
     .body_schema = PATCH_SCHEMA, .resp_schema = "#ModelVersion", .resp_desc = "the version"},
    {.method = "DELETE", .pattern = "/api/v1/models/{name}/versions/{v}", .handler = version_delete,
     .perm = ACV_PERM_GLOBAL, .roles = ENGINEERS, .tag = "models", .summary = "Delete a model version",
     .description = "409 while it is deployed.", .status = 204, .resp_desc = "deleted"},
    {.method = "GET", .pattern = "/api/v1/models/{name}/versions/{v}/download", .handler = version_download,
     .perm = ACV_PERM_USER, .tag = "models", .summary = "Download a version's model directory as a zip",
     .description = "Flat: unzipped into a folder, that folder is a model directory (autocv predict --model DIR).",
     .resp_desc = "application/zip, NAME-vN.zip"},
    {.method = "GET", .pattern = "/api/v1/models/{name}/versions/{v}/export", .handler = version_export,
     .perm = ACV_PERM_USER, .tag = "models", .summary = "Export a version as ONNX", .query = EXPORT_Q,
     .resp_desc = "application/octet-stream, NAME-vN.onnx"},
    {.method = "POST", .pattern = "/api/v1/jobs/{id}/publish", .handler = job_publish, .perm = ACV_PERM_PROJECT,
     .roles = ACV_ROLE_OWNER | ACV_ROLE_ENGINEER, .project = job_project, .tag = "models",
     .summary = "Publish a finished training job's model as a new model version",
     .description = "{\"model\":NAME,\"description\"?,\"tags\"?}. The job must be a training job that succeeded "
                    "(409 otherwise). Its model directory is copied (without the checkpoint); metrics from "
                    "metrics.json, lineage from the job.",
     .body_types = "application/json",
     .body_schema = "{\"type\":\"object\",\"required\":[\"model\"],\"properties\":{\"model\":{\"type\":\"string\"},"
                    "\"description\":{\"type\":\"string\"},\"tags\":{\"type\":\"array\",\"items\":{\"type\":"
                    "\"string\"}}}}",
     .status = 201, .resp_schema = "#ModelVersion", .resp_desc = "the new version"},
};

int acv_api_models(acv_router *r, const acv_server_config *cfg)
{
    int rc = acv_router_add_schema(
        r, "Model",
        "{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"integer\"},\"name\":{\"type\":\"string\"},\"task\":{"
        "\"type\":\"string\"},\"description\":{\"type\":\"string\"},\"tags\":{\"type\":\"array\",\"items\":{\"type\":"
        "\"string\"}},\"latest_version\":{\"type\":\"integer\",\"nullable\":true},\"versions\":{\"type\":\"integer\"},"
        "\"project_id\":{\"type\":\"integer\",\"nullable\":true},\"created_by\":{\"type\":\"integer\",\"nullable\":"
        "true},\"created_at\":{\"type\":\"string\"},\"updated_at\":{\"type\":\"string\"}}}");
    if (!rc)
        rc = acv_router_add_schema(
            r, "ModelVersion",
            "{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"integer\"},\"model\":{\"type\":\"string\"},"
            "\"version\":{\"type\":\"integer\"},\"task\":{\"type\":\"string\"},\"source\":{\"type\":\"string\","
            "\"enum\":[\"job\",\"upload\"]},\"description\":{\"type\":\"string\"},\"tags\":{\"type\":\"array\","
            "\"items\":{\"type\":\"string\"}},\"classes\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}},"
            "\"input\":{\"type\":\"object\",\"properties\":{\"channels\":{\"type\":\"integer\"},\"height\":{\"type\":"
            "\"integer\"},\"width\":{\"type\":\"integer\"},\"mean\":{\"type\":\"array\",\"items\":{\"type\":\"number\"}},"
            "\"std\":{\"type\":\"array\",\"items\":{\"type\":\"number\"}},\"resize\":{\"type\":\"string\"}}},"
            "\"metrics\":{\"type\":\"object\"},\"lineage\":{\"type\":\"object\"},\"info\":{\"type\":\"object\","
            "\"properties\":{\"params\":{\"type\":\"integer\"},\"gflops\":{\"type\":\"number\"},\"size_bytes\":{"
            "\"type\":\"integer\"},\"arch\":{\"type\":\"string\"}}},\"job_id\":{\"type\":\"integer\",\"nullable\":"
            "true},\"evaluations\":{\"type\":\"array\",\"description\":\"single reads only\",\"items\":{\"type\":"
            "\"object\",\"properties\":{\"id\":{\"type\":\"integer\"},\"status\":{\"type\":\"string\"},"
            "\"dataset_version_id\":{\"type\":\"integer\",\"nullable\":true},\"split\":{\"type\":\"string\"},"
            "\"created_at\":{\"type\":\"string\"},\"summary\":{\"type\":\"object\",\"nullable\":true}}}},"
            "\"deployments\":{\"type\":\"array\",\"description\":\"single reads only\",\"items\":{\"type\":\"object\","
            "\"properties\":{\"id\":{\"type\":\"integer\"},\"name\":{\"type\":\"string\"}}}},\"created_by\":{\"type\":"
            "\"integer\",\"nullable\":true},\"created_at\":{\"type\":\"string\"}}}");
    (void)cfg;
    return rc ? rc : acv_router_add(r, ROUTES, (int)(sizeof ROUTES / sizeof ROUTES[0]));
}
