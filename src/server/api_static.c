/* Serving the embedded web UI (see api_static.h). */
#include "server/api_static.h"

#include <string.h>
#include <strings.h>

#include "autocv/error.h"

static int cmp_path(const void *key, const void *elem)
{
    return strcmp((const char *)key, ((const acv_static_asset *)elem)->path);
}

const acv_static_asset *acv_static_find(const char *path)
{
    if (!strcmp(path, "/")) path = "/index.html";
    /* the table is sorted by path (embed_assets.py) */
    size_t lo = 0, hi = (size_t)acv_static_nassets;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = cmp_path(path, &acv_static_assets[mid]);
        if (!c) return &acv_static_assets[mid];
        if (c < 0) hi = mid;
        else lo = mid + 1;
    }
    return NULL;
}

static bool has_prefix(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    return !strncmp(path, dir, n) && (path[n] == 0 || path[n] == '/');
}

/* The API's namespaces: a miss there stays the API's JSON 404. */
static bool is_api(const char *path)
{
    return has_prefix(path, "/api") || has_prefix(path, "/v2") || has_prefix(path, "/healthz") ||
           has_prefix(path, "/metrics");
}

/* If-None-Match holds this ETag (a list, or "*"). */
static bool etag_matches(const char *inm, const char *etag)
{
    if (!inm) return false;
    if (strstr(inm, etag)) return true;
    while (*inm == ' ') inm++;
    return !strcmp(inm, "*");
}

bool acv_static_serve(acv_http_req *req)
{
    const char *method = acv_http_method(req), *path = acv_http_path(req);
    if ((strcmp(method, "GET") && strcmp(method, "HEAD")) || path[0] != '/' || is_api(path)) return false;

    const acv_static_asset *a = acv_static_find(path);
    bool immutable = a && has_prefix(path, "/assets");
    if (!a) {
        /* a file that is not there (a stale hashed asset, a typo) is a plain 404; any other
         * path is a screen of the browser-side router */
        const char *last = strrchr(path, '/');
        if (has_prefix(path, "/assets") || strchr(last, '.')) {
            acv_http_add_header(req, "Cache-Control", "no-store");
            acv_http_respond_data(req, 404, "text/plain; charset=utf-8", "not found\n", 10);
            return true;
        }
        a = acv_static_find("/index.html");
        if (!a) return false;
    }
    /* Vite names /assets/ files by their content hash: they never change under a name. */
    acv_http_add_header(req, "Cache-Control", immutable ? "public, max-age=31536000, immutable" : "no-cache");
    acv_http_add_header(req, "ETag", a->etag);
    if (!strcmp(a->content_type, "text/html; charset=utf-8")) {
        acv_http_add_header(req, "X-Frame-Options", "DENY");
        acv_http_add_header(req, "Referrer-Policy", "same-origin");
        acv_http_add_header(req, "Content-Security-Policy",
                            "default-src 'self'; img-src 'self' blob: data:; style-src 'self' 'unsafe-inline'; "
                            "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'");
    }
    if (etag_matches(acv_http_header(req, "If-None-Match"), a->etag)) {
        acv_http_respond_data(req, 304, NULL, "", 0);
        return true;
    }
    acv_http_respond_data(req, 200, a->content_type, a->data, a->size);
    return true;
}
