/* The web UI, embedded in the binary: `make` builds web/ with Vite and web/embed_assets.py
 * turns the result into a table of files ($(BUILD)/gen/web_assets.c). The server answers
 * every GET or HEAD that matches no API route from it (server.c): a file of the table by its
 * path, anything else outside the API with index.html so the browser-side router can show the
 * screen (a reload or a shared link to /projects/3/data works). These are not API routes:
 * they are public (the UI signs in through the API) and left out of the OpenAPI document. */
#ifndef ACV_SERVER_API_STATIC_H
#define ACV_SERVER_API_STATIC_H

#include <stdbool.h>
#include <stddef.h>

#include "server/http.h"

typedef struct acv_static_asset {
    const char *path;         /* "/index.html", "/assets/index-3f2a.js" */
    const char *content_type;
    const unsigned char *data;
    size_t size;
    const char *etag;         /* quoted: "\"9f2c...\"" */
} acv_static_asset;

/* The generated table (sorted by path). */
extern const acv_static_asset acv_static_assets[];
extern const int acv_static_nassets;

/* The asset for a URL path ("/" is index.html), or NULL. */
const acv_static_asset *acv_static_find(const char *path);

/* Answers req from the embedded UI when it is a GET or HEAD outside /api/, /v2/, /healthz
 * and /metrics: the file for its path (hashed /assets/ files cached for a year, the rest
 * revalidated by ETag, 304 on If-None-Match), 404 for a missing file with an extension or
 * under /assets/, index.html for any other path. Returns true when it answered. */
bool acv_static_serve(acv_http_req *req);

#endif
