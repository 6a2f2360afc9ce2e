/* Image routes: uploads (many files per request, each checked on its own), listing with
 * annotation filters, the original file and its thumbnail (ETag = content hash), deletion;
 * and archive imports (ImageFolder, COCO, YOLO, Pascal VOC). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "autocv/error.h"
#include "platform/images.h"
#include "platform/imports.h"
#include "server/api.h"

static int image_project(acv_call *c, int64_t *project_id)
{
    return acv_image_project(c->db, acv_call_id(c, "id"), project_id);
}

static int import_project(acv_call *c, int64_t *project_id)
{
    return acv_import_project(c->db, acv_call_id(c, "id"), project_id);
}

/* An error answer that also carries extra fields (extra is stolen). */
static int error_with(acv_call *c, int status, const char *msg, json_t *extra)
{
    json_t *body = json_pack("{s:{s:s, s:s}}", "error", "code", acv_http_code_name(status), "message", msg);
    if (!body) {
        json_decref(extra);
        return acv_call_error(c, status, "%s", msg); /* msg was not valid UTF-8 */
    }
    if (extra) json_object_update(body, extra);
    json_decref(extra);
    return acv_call_json(c, status, body);
}

/* ---- uploads ---------------------------------------------------------------------------------- */

static bool is_file_field(const char *f) { return !strcmp(f, "file") || !strcmp(f, "files") || !strcmp(f, "file[]"); }

/* Appends {"filename","error"} to errors; a message that is not valid UTF-8 (it may quote the
 * file's bytes) is replaced rather than dropped, so every refused file is reported. */
static void add_file_error(json_t *errors, const char *name, const char *why)
{
    json_t *e = json_pack("{s:s, s:s}", "filename", name, "error", why);
    if (!e) e = json_pack("{s:s, s:s}", "filename", name, "error", "the file is not a readable image");
    json_array_append_new(errors, e);
}

static int image_upload(acv_call *c)
{
    int nparts = acv_http_nfiles(c->req);
    const acv_http_file *raw = acv_http_raw(c->req);
    int n = nparts ? nparts : (raw && raw->path ? 1 : 0);
    if (!n)
        return acv_error(ACV_EFORMAT, "no file: send multipart/form-data with one or more parts named 'file' (or one "
                                      "image as the body)");
    acv_image_staged *st = calloc((size_t)n, sizeof *st);
    const char **names = calloc((size_t)n, sizeof *names);
    char(*clean)[ACV_IMAGE_NAME_MAX + 1] = calloc((size_t)n, sizeof *clean);
    json_t *errors = json_array();
    acv_blob_batch *batch = NULL;
    int rc = (!st || !names || !clean || !errors) ? acv_error(ACV_ENOMEM, "out of memory") : 0;
    if (!rc) rc = acv_blobs_batch_new(acv_server_blobs(c->srv), &batch);
    int good = 0;
    for (int i = 0; !rc && i < n; i++) {
        const acv_http_file *f = nparts ? acv_http_file_at(c->req, i) : raw;
        /* The client's name, cleaned: it is stored, and quoted in messages. */
        acv_image_clean_name(nparts ? f->filename : acv_call_query(c, "filename"), clean[i]);
        const char *name = clean[i];
        if (nparts && !is_file_field(f->field)) {
            add_file_error(errors, name, "a file part must be named 'file'");
            continue;
        }
        char *path = acv_http_take_file(c->req, f);
        if (!path) {
            rc = acv_error(ACV_ENOMEM, "out of memory");
            break;
        }
        int s = acv_image_stage(batch, c->db, c->project_id, path, *name ? name : "upload", &st[good]);
        free(path);
        if (s == ACV_EFORMAT || s == ACV_ERANGE || s == ACV_EUNSUPPORTED) {
            add_file_error(errors, name, acv_errmsg());
        } else if (s) {
            rc = s;
        } else {
            names[good++] = name;
        }
    }
    json_t *images = NULL;
    if (!rc && good) rc = acv_blobs_batch_sync(batch);
    if (!rc && good) rc = acv_image_commit_uploads(c->db, &c->user, c->project_id, st, names, good, &images);
    acv_blobs_batch_end(batch, c->db);
    free(st);
    free(names);
    if (rc) {
        free(clean);
        json_decref(errors);
        return rc;
    }
    free(clean);
    if (!good) {
        char msg[600];
        const char *why = json_string_value(json_object_get(json_array_get(errors, 0), "error"));
        snprintf(msg, sizeof msg, "no image was stored: %s%s", why ? why : "no file was accepted",
                 json_array_size(errors) > 1 ? " (and the other files failed too, see 'errors')" : "");
        return error_with(c, 422, msg, json_pack("{s:[], s:o}", "images", "errors", errors));
    }
    return acv_call_json(c, 201, json_pack("{s:o, s:o}", "images", images, "errors", errors));
}

/* ---- reads ---------------------------------------------------------------------------------- */

static int query_id(acv_call *c, const char *name, int64_t *out)
{
    const char *v = acv_call_query(c, name);
    *out = 0;
    if (!v) return 0;
    char *end;
    long long x = strtoll(v, &end, 10);
    if (*end || x <= 0) return acv_error(ACV_EFORMAT, "query parameter '%s' must be a positive integer (got '%.40s')",
                                         name, v);
    *out = x;
    return 0;
}

static int image_list(acv_call *c)
{
    int limit, offset;
    acv_image_filter f = {0};
    int rc = acv_call_paging(c, &limit, &offset);
    if (!rc) rc = query_id(c, "set_id", &f.set_id);
    if (!rc) rc = query_id(c, "annotated_by", &f.annotated_by);
    if (!rc) rc = query_id(c, "after", &f.after_id);
    f.status = acv_call_query(c, "status");
    f.label = acv_call_query(c, "label");
    f.since = acv_call_query(c, "since");
    f.until = acv_call_query(c, "until");
    f.q = acv_call_query(c, "q");
    json_t *items = NULL;
    int64_t total = 0;
    if (!rc) rc = acv_image_list(c->db, c->project_id, &f, limit, offset, &items, &total);
    if (rc) return rc;
    size_t n = json_array_size(items);
    json_t *next = (int)n == limit ? json_object_get(json_array_get(items, n - 1), "id") : NULL;
    return acv_call_json(c, 200, json_pack("{s:o, s:I, s:i, s:i, s:O?}", "items", items, "total", (json_int_t)total,
                                           "limit", limit, "offset", offset, "next_after", next));
}

static int image_get(acv_call *c)
{
    json_t *img;
    int rc = acv_image_get(c->db, acv_call_id(c, "id"), true, &img);
    return rc ? rc : acv_call_json(c, 200, img);
}

/* Sends a blob with its hash as a strong ETag (304 when the client has it). */
static int send_blob(acv_call *c, const char *hash, const char *mime)
{
    char etag[80];
    snprintf(etag, sizeof etag, "\"%s\"", hash);
    acv_http_add_header(c->req, "ETag", etag);
    acv_http_add_header(c->req, "Cache-Control", "private, no-cache");
    const char *inm = acv_http_header(c->req, "If-None-Match");
    if (inm && (strstr(inm, etag) || !strcmp(inm, "*"))) return acv_http_respond_data(c->req, 304, NULL, "", 0);
    char *path = acv_blobs_path(acv_server_blobs(c->srv), hash);
    if (!path) return acv_error(ACV_EIO, "image content %s is missing from the blob store", hash);
    int rc = acv_http_respond_file(c->req, 200, path, mime);
    free(path);
    return rc;
}

static int image_file(acv_call *c)
{
    json_t *img;
    int rc = acv_image_get(c->db, acv_call_id(c, "id"), false, &img);
    if (rc) return rc;
    rc = send_blob(c, json_string_value(json_object_get(img, "hash")),
                   acv_image_mime(json_string_value(json_object_get(img, "format"))));
    json_decref(img);
    return rc;
}

static int image_thumbnail(acv_call *c)
{
    json_t *img;
    int rc = acv_image_get(c->db, acv_call_id(c, "id"), false, &img);
    if (rc) return rc;
    const char *th = json_string_value(json_object_get(img, "thumb_hash"));
    rc = th ? send_blob(c, th, "image/jpeg") : acv_error(ACV_ENOTFOUND, "image %lld has no thumbnail",
                                                          (long long)acv_call_id(c, "id"));
    json_decref(img);
    return rc;
}

static int image_delete(acv_call *c)
{
    int rc = acv_image_delete(c->db, acv_server_blobs(c->srv), &c->user, acv_call_id(c, "id"));
    return rc ? rc : acv_call_no_content(c);
}

/* ---- imports -------------------------------------------------------------------------------- */

static int import_create(acv_call *c)
{
    const acv_http_file *f = NULL;
    for (int i = 0; i < acv_http_nfiles(c->req); i++) {
        const acv_http_file *p = acv_http_file_at(c->req, i);
        if (!is_file_field(p->field)) continue;
        if (f) return acv_error(ACV_EFORMAT, "one archive per import: the request has several 'file' parts");
        f = p;
    }
    if (!f && acv_http_nfiles(c->req))
        return acv_error(ACV_EFORMAT, "the archive must be sent in a multipart part named 'file'");
    if (!f) f = acv_http_raw(c->req);
    if (!f || !f->path)
        return acv_error(ACV_EFORMAT, "no archive: send a zip or tar file as the body (application/zip, "
                                      "application/x-tar, application/gzip) or as a multipart part named 'file'");
    const char *set_name = acv_call_query(c, "set_name");
    if (!set_name) set_name = acv_http_field(c->req, "set_name");
    const char *filename = f->filename && *f->filename ? f->filename : acv_call_query(c, "filename");
    acv_import_limits lim;
    acv_import_limits_default(&lim);
    char *tmp = acv_server_path(c->srv, "tmp");
    if (!tmp) return acv_error(ACV_ENOMEM, "out of memory");
    acv_import_args args = {.project_id = c->project_id, .archive_path = f->path, .filename = filename,
                            .set_name = set_name && *set_name ? set_name : NULL, .tmp_dir = tmp, .limits = &lim};
    json_t *res = NULL;
    int64_t id = 0;
    int rc = acv_import_run(c->db, acv_server_blobs(c->srv), &c->user, &args, &res, &id);
    free(tmp);
    if (rc) {
        int status = rc == ACV_ERANGE ? 413 : rc == ACV_EFORMAT ? 422 : acv_http_status_of(rc);
        if (status >= 500) return rc;
        return error_with(c, status, acv_errmsg(), id ? json_pack("{s:I}", "import_id", (json_int_t)id) : NULL);
    }
    char loc[64];
    snprintf(loc, sizeof loc, "/api/v1/imports/%lld", (long long)id);
    acv_http_add_header(c->req, "Location", loc);
    return acv_call_json(c, 201, res);
}

static int import_list(acv_call *c)
{
    int limit, offset;
    int rc = acv_call_paging(c, &limit, &offset);
    json_t *items = NULL;
    int64_t total = 0;
    if (!rc) rc = acv_import_list(c->db, c->project_id, limit, offset, &items, &total);
    return rc ? rc : acv_call_page(c, items, total, limit, offset);
}

static int import_get(acv_call *c)
{
    json_t *rec;
    int rc = acv_import_get(c->db, acv_call_id(c, "id"), &rec);
    return rc ? rc : acv_call_json(c, 200, rec);
}

/* ---- the table ------------------------------------------------------------------------------ */

static const acv_route_param LIST_Q[] = {
    ACV_ROUTE_PAGING,
    {"after", "integer", "keyset paging: images with an id above this one (see next_after)"},
    {"set_id", "integer", "images in this annotation set (the other annotation filters then apply to it)"},
    {"status", "string", "annotation status: new, in_progress, submitted, accepted, rejected (in set_id, or any set)"},
    {"label", "string", "a label name among the tags or shape labels of the image's annotation document"},
    {"annotated_by", "integer", "annotated by this user id"},
    {"since", "string", "uploaded at or after (2024-05-01 or 2024-05-01T12:00:00Z)"},
    {"until", "string", "uploaded at or before (a date covers its whole day)"},
    {"q", "string", "file name contains this text (case-insensitive)"},
    {NULL, NULL, NULL},
};

static const acv_route_param PAGE_Q[] = {
    ACV_ROUTE_PAGING,
    {NULL, NULL, NULL},
};

static const acv_route_param UPLOAD_Q[] = {
    {"filename", "string", "the file name of an image sent as the raw body"},
    {NULL, NULL, NULL},
};

static const acv_route_param IMPORT_Q[] = {
    {"set_name", "string", "name of the new annotation set (default: the archive's name, made unique)"},
    {"filename", "string", "the archive's name when it is sent as the raw body"},
    {NULL, NULL, NULL},
};

#define UPLOADERS (ACV_ROLE_OWNER | ACV_ROLE_ENGINEER | ACV_ROLE_ANNOTATOR)
#define EDITORS (ACV_ROLE_OWNER | ACV_ROLE_ENGINEER)
#define ARCHIVE_TYPES                                                                                                  \
    "multipart/form-data, application/zip, application/x-zip-compressed, application/x-tar, application/gzip, "     \
    "application/x-gzip, application/x-gtar, application/x-bzip2, application/x-xz, application/octet-stream"

static const acv_route ROUTES[] = {
    {.method = "POST", .pattern = "/api/v1/projects/{id}/images", .handler = image_upload, .perm = ACV_PERM_PROJECT,
     .roles = UPLOADERS, .tag = "images", .summary = "Upload images (many per request)", .query = UPLOAD_Q,
     .description = "multipart/form-data with one or more parts named 'file' (or one image as the raw body). Each "
                    "file is decoded fully (JPEG, PNG, BMP; at most 100 megapixels; EXIF orientation applied to the "
                    "reported size) and stored once per project: the same bytes again return the existing image "
                    "with \"duplicate\": true. A file that is not a readable image is refused on its own, in "
                    "'errors', while the others are stored: 201 when at least one image is returned, 422 when none.",
     .body_types = "multipart/form-data, image/jpeg, image/png, image/bmp", .status = 201,
     .resp_schema = "#UploadResult", .resp_desc = "the stored images and the refused files"},
    {.method = "GET", .pattern = "/api/v1/projects/{id}/images", .handler = image_list, .perm = ACV_PERM_PROJECT,
     .roles = ACV_ROLES_PROJECT, .tag = "images", .summary = "List a project's images, with filters", .query = LIST_Q,
     .description = "By id. The annotation filters (set_id, status, label, annotated_by) select images with one "
                    "annotation item that meets all of them. total counts every match; next_after is the last id "
                    "of a full page (pass it as ?after= for the next page).",
     .resp_schema = "#ImagePage", .resp_desc = "a page of images"},
    {.method = "GET", .pattern = "/api/v1/images/{id}", .handler = image_get, .perm = ACV_PERM_PROJECT,
     .roles = ACV_ROLES_PROJECT, .project = image_project, .tag = "images", .summary = "Read an image's metadata",
     .description = "With \"annotations\": its status in every annotation set that holds it.",
     .resp_schema = "#Image", .resp_desc = "the image"},
    {.method = "GET", .pattern = "/api/v1/images/{id}/file", .handler = image_file, .perm = ACV_PERM_PROJECT,
     .roles = ACV_ROLES_PROJECT, .project = image_project, .tag = "images", .summary = "Download the original file",
     .description = "The bytes as uploaded, with their Content-Type and ETag \"<sha256>\" (If-None-Match: 304).",
     .resp_desc = "the image file"},
    {.method = "GET", .pattern = "/api/v1/images/{id}/thumbnail", .handler = image_thumbnail,
     .perm = ACV_PERM_PROJECT, .roles = ACV_ROLES_PROJECT, .project = image_project, .tag = "images",
     .summary = "Download the thumbnail", .description = "A JPEG whose longest side is at most 256 pixels.",
     .resp_desc = "image/jpeg"},
    {.method = "DELETE", .pattern = "/api/v1/images/{id}", .handler = image_delete, .perm = ACV_PERM_PROJECT,
     .roles = EDITORS, .project = image_project, .tag = "images",
     .summary = "Delete an image (with its annotations in every set)", .status = 204, .resp_desc = "deleted"},
    {.method = "POST", .pattern = "/api/v1/projects/{id}/imports", .handler = import_create, .perm = ACV_PERM_PROJECT,
     .roles = EDITORS, .tag = "imports", .summary = "Import a dataset archive (zip or tar)", .query = IMPORT_Q,
     .description = "A zip or tar(.gz/.bz2/.xz) archive in ImageFolder, COCO, YOLO or Pascal VOC layout, as a "
                    "multipart part named 'file' or as the raw body. Creates the images, the labels the project "
                    "lacks and a new annotation set with one submitted document per image, in one transaction: a "
                    "failure leaves nothing behind. Hostile archives (absolute or '..' paths, links, devices, too "
                    "many entries) are 422, archives that decompress too far 413. Runs synchronously.",
     .body_types = ARCHIVE_TYPES, .status = 201, .resp_schema = "#ImportResult", .resp_desc = "what was imported"},
    {.method = "GET", .pattern = "/api/v1/projects/{id}/imports", .handler = import_list, .perm = ACV_PERM_PROJECT,
     .roles = ACV_ROLES_PROJECT, .tag = "imports", .summary = "List a project's imports (newest first)",
     .query = PAGE_Q, .resp_schema = ACV_PAGE_OF("Import"),
     .resp_desc = "a page of import records"},
    {.method = "GET", .pattern = "/api/v1/imports/{id}", .handler = import_get, .perm = ACV_PERM_PROJECT,
     .roles = ACV_ROLES_PROJECT, .project = import_project, .tag = "imports", .summary = "Read an import record",
     .resp_schema = "#Import", .resp_desc = "the import"},
};

#define IMAGE_PROPS                                                                                                    \
    "\"id\":{\"type\":\"integer\"},\"project_id\":{\"type\":\"integer\"},\"filename\":{\"type\":\"string\"},"         \
    "\"format\":{\"type\":\"string\",\"enum\":[\"jpeg\",\"png\",\"bmp\"]},\"width\":{\"type\":\"integer\"},"           \
    "\"height\":{\"type\":\"integer\"},\"channels\":{\"type\":\"integer\"},\"size\":{\"type\":\"integer\"},"           \
    "\"hash\":{\"type\":\"string\",\"description\":\"SHA-256 of the file\"},\"thumb_hash\":{\"type\":\"string\"},"    \
    "\"source\":{\"type\":\"string\",\"enum\":[\"upload\",\"import\"]},\"import_id\":{\"type\":\"integer\","          \
    "\"nullable\":true},\"uploaded_by\":{\"type\":\"integer\",\"nullable\":true},\"created_at\":{\"type\":\"string\"}"

int acv_api_images(acv_router *r, const acv_server_config *cfg)
{
    int rc = acv_router_add_schema(
        r, "Image",
        "{\"type\":\"object\",\"properties\":{" IMAGE_PROPS ",\"duplicate\":{\"type\":\"boolean\",\"description\":"
        "\"uploads: the project already had these bytes\"},\"annotations\":{\"type\":\"array\",\"items\":{\"type\":"
        "\"object\",\"properties\":{\"set_id\":{\"type\":\"integer\"},\"set_name\":{\"type\":\"string\"},\"task\":{"
        "\"type\":\"string\"},\"status\":{\"type\":\"string\"},\"revision\":{\"type\":\"integer\"}}}}}}");
    if (!rc)
        rc = acv_router_add_schema(
            r, "ImagePage",
            "{\"type\":\"object\",\"properties\":{\"items\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/components/"
            "schemas/Image\"}},\"total\":{\"type\":\"integer\"},\"limit\":{\"type\":\"integer\"},\"offset\":{\"type\":"
            "\"integer\"},\"next_after\":{\"type\":\"integer\",\"description\":\"present when the page is full\"}}}");
    if (!rc)
        rc = acv_router_add_schema(
            r, "UploadResult",
            "{\"type\":\"object\",\"properties\":{\"images\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/components/"
            "schemas/Image\"}},\"errors\":{\"type\":\"array\",\"items\":{\"type\":\"object\",\"properties\":{"
            "\"filename\":{\"type\":\"string\"},\"error\":{\"type\":\"string\"}}}}}}");
    if (!rc)
        rc = acv_router_add_schema(
            r, "Import",
            "{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"integer\"},\"project_id\":{\"type\":\"integer\"},"
            "\"filename\":{\"type\":\"string\"},\"format\":{\"type\":\"string\",\"nullable\":true,\"enum\":["
            "\"imagefolder\",\"coco\",\"yolo\",\"voc\",\"images\"]},\"status\":{\"type\":\"string\",\"enum\":["
            "\"running\",\"succeeded\",\"failed\"]},\"set_id\":{\"type\":\"integer\",\"nullable\":true},\"summary\":{"
            "\"type\":\"object\"},\"error\":{\"type\":\"string\",\"nullable\":true},\"created_by\":{\"type\":"
            "\"integer\",\"nullable\":true},\"created_at\":{\"type\":\"string\"},\"finished_at\":{\"type\":\"string\","
            "\"nullable\":true}}}");
    if (!rc)
        rc = acv_router_add_schema(
            r, "ImportResult",
            "{\"type\":\"object\",\"properties\":{\"import\":{\"$ref\":\"#/components/schemas/Import\"},\"set_id\":{"
            "\"type\":\"integer\",\"nullable\":true},\"format\":{\"type\":\"string\"},\"images\":{\"type\":\"integer\","
            "\"description\":\"new images\"},\"images_existing\":{\"type\":\"integer\",\"description\":\"images the "
            "project already had\"},\"labels_created\":{\"type\":\"integer\"},\"annotations\":{\"type\":\"integer\","
            "\"description\":\"shapes and tags\"},\"difficult\":{\"type\":\"integer\",\"description\":"
            "\"VOC objects marked difficult (imported as ordinary boxes)\"},\"crowd\":{\"type\":\"integer\","
            "\"description\":\"COCO iscrowd annotations (imported as ordinary shapes)\"},\"skipped\":{\"type\":\"array\",\"items\":{\"type\":\"object\","
            "\"properties\":{\"path\":{\"type\":\"string\"},\"reason\":{\"type\":\"string\"}}}},\"skipped_total\":{"
            "\"type\":\"integer\"}}}");
    return rc ? rc : acv_router_add(r, ROUTES, (int)(sizeof ROUTES / sizeof ROUTES[0]));
}
