/* HTTP for the platform server: a thin layer over libmicrohttpd (thread per connection, so a
 * handler may block, e.g. to stream server-sent events).
 *
 * A request goes through three hooks, all on the connection's thread:
 *   begin(req)  after the headers: route, authenticate, authorize. It may answer at once
 *               (acv_http_respond_*); the body is then never stored: a small one (up to
 *               64 KiB declared) is read and dropped before the answer goes out, a larger or
 *               chunked one is not read and the connection closes after the answer.
 *   handle(req) after the whole body has arrived (JSON parsed, uploads on disk): the work.
 *   done(req)   after the response went out (or the connection failed): metrics, cleanup.
 * A request that ends without a response gets 500.
 *
 * Bodies never sit whole in memory except JSON (up to max_json bytes): multipart/form-data is
 * parsed as it arrives, each file part streamed to its own temporary file under tmp_dir, text
 * fields kept (up to 1 MiB in all); any other content type is streamed to one temporary file.
 * A body larger than max_upload bytes is answered 413: at once when Content-Length says so,
 * or as soon as a chunked body passes the limit (its rest is read and dropped, up to a bound,
 * before the answer). Temporary files are removed when the request ends unless taken.
 *
 * Errors are JSON {"error":{"code":S,"message":S}} where code is a short name for the status
 * (bad_request, unauthorized, forbidden, not_found, method_not_allowed, conflict,
 * payload_too_large, unsupported_media_type, unprocessable, internal). ACV_E* codes map to
 * statuses as acv_http_status_of() says. */
#ifndef ACV_SERVER_HTTP_H
#define ACV_SERVER_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct acv_http acv_http;
typedef struct acv_http_req acv_http_req;

typedef struct acv_http_hooks {
    int (*begin)(void *ud, acv_http_req *req);  /* optional; nonzero = 500 */
    int (*handle)(void *ud, acv_http_req *req); /* required; nonzero without a response = error reply */
    void (*done)(void *ud, acv_http_req *req, int status, uint64_t bytes, double seconds); /* optional */
} acv_http_hooks;

typedef struct acv_http_config {
    const char *listen;       /* "HOST:PORT" ("[::1]:8080" for IPv6); port 0 picks a free port */
    const char *tmp_dir;      /* where bodies are streamed; must exist */
    uint64_t max_upload;      /* bytes in one request body (0: 1 GiB) */
    size_t max_json;          /* bytes in one JSON body (0: 16 MiB) */
    unsigned max_conns;       /* concurrent connections (0: 256) */
    unsigned timeout_s;       /* idle connection timeout (0: 300) */
    bool access_log;          /* one line per request on stderr */
    acv_http_hooks hooks;
    void *ud;                 /* passed to the hooks */
} acv_http_config;

/* Starts listening; cfg strings are copied. On success *out is stopped with acv_http_stop. */
int acv_http_start(const acv_http_config *cfg, acv_http **out);
/* The port actually bound (useful with port 0) and "http://HOST:PORT". */
int acv_http_port(const acv_http *h);
const char *acv_http_url(const acv_http *h);
/* Stops accepting, lets running requests finish (streams see acv_http_stopping), frees h. */
void acv_http_stop(acv_http *h);
/* True once acv_http_stop has begun: long-running stream callbacks should end. */
bool acv_http_stopping(const acv_http *h);

/* ---- the request (valid from begin to done) ---- */
typedef enum {
    ACV_HTTP_BODY_NONE,      /* no body */
    ACV_HTTP_BODY_JSON,      /* application/json (or +json): parsed, see acv_http_json */
    ACV_HTTP_BODY_MULTIPART, /* multipart/form-data: acv_http_field, acv_http_file_at */
    ACV_HTTP_BODY_RAW,       /* anything else: one temporary file, acv_http_raw */
} acv_http_body_kind;

typedef struct acv_http_file {
    const char *field;        /* form field name ("file"); "" for a raw body */
    const char *filename;     /* as the client sent it (untrusted), "" when none */
    const char *content_type; /* as the client sent it, "application/octet-stream" when none */
    const char *path;         /* the temporary file (NULL once taken, or while kept in memory) */
    const uint8_t *data;      /* the bytes when kept in memory (acv_http_keep_in_memory), else NULL */
    uint64_t size;
} acv_http_file;

acv_http *acv_http_of(const acv_http_req *req);
const char *acv_http_method(const acv_http_req *req);
/* The percent-decoded path without the query string. */
const char *acv_http_path(const acv_http_req *req);
/* A query parameter (decoded) or NULL. */
const char *acv_http_query(const acv_http_req *req, const char *name);
/* A request header (case-insensitive name) or NULL. */
const char *acv_http_header(const acv_http_req *req, const char *name);
/* The client's address ("127.0.0.1", "::1"). */
const char *acv_http_client(const acv_http_req *req);
/* The body: its kind, declared Content-Type ("" when none; parameters included), and
 * received byte count. Meaningful in handle(). */
acv_http_body_kind acv_http_body(const acv_http_req *req);
const char *acv_http_content_type(const acv_http_req *req);
uint64_t acv_http_body_size(const acv_http_req *req);
/* The declared body size, known from begin(): Content-Length, UINT64_MAX for a chunked body,
 * 0 for none. */
uint64_t acv_http_declared_size(const acv_http_req *req);
/* The parsed JSON body (borrowed) or NULL. */
json_t *acv_http_json(const acv_http_req *req);
/* A multipart text field or NULL. */
const char *acv_http_field(const acv_http_req *req, const char *name);
/* Multipart file parts, in the order they arrived. */
int acv_http_nfiles(const acv_http_req *req);
const acv_http_file *acv_http_file_at(const acv_http_req *req, int i);
/* The raw body file (kind RAW) or NULL. */
const acv_http_file *acv_http_raw(const acv_http_req *req);
/* Takes ownership of a temporary file: returns its malloc'd path (the caller renames or
 * removes the file and frees the string); the request no longer removes it. */
char *acv_http_take_file(acv_http_req *req, const acv_http_file *f);

/* Per-request data for the hooks (freed by the owner in done). */
void acv_http_set_udata(acv_http_req *req, void *p);
void *acv_http_udata(const acv_http_req *req);
/* Who to name in the access log line. */
void acv_http_set_log_user(acv_http_req *req, const char *user);
/* Lets begin() keep this request's file parts and raw body in memory while they total at most
 * max_bytes (a route that only reads them, e.g. predict: no temporary file is written). Past
 * that they go to temporary files as usual. Call before the first byte of the body. */
void acv_http_keep_in_memory(acv_http_req *req, uint64_t max_bytes);
/* Lets begin() lower the body limits for this request (e.g. a route that takes no uploads). */
void acv_http_limit_body(acv_http_req *req, uint64_t max_bytes);

/* ---- responses: each returns 0, or ACV_EINVAL when the request already has one ---- */
/* Adds a header to the response queued next (e.g. "Location", "Allow"). */
int acv_http_add_header(acv_http_req *req, const char *name, const char *value);
/* body is stolen; NULL sends no body (use with 204). */
int acv_http_respond_json(acv_http_req *req, int status, json_t *body);
int acv_http_respond_data(acv_http_req *req, int status, const char *content_type, const void *data, size_t len);
/* {"error":{"code","message"}} with the code named for status. */
int acv_http_respond_error(acv_http_req *req, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The error for an ACV_E* code with the thread's acv_errmsg(); 5xx messages are logged and
 * replaced by a generic one. */
int acv_http_respond_rc(acv_http_req *req, int rc);
/* Sends a file (ACV_ENOTFOUND when it cannot be opened). */
int acv_http_respond_file(acv_http_req *req, int status, const char *path, const char *content_type);
/* A streamed (chunked) response: fn fills buf with up to max bytes for offset pos and returns
 * how many, ACV_HTTP_STREAM_END at the end or ACV_HTTP_STREAM_ERROR to abort; it runs on the
 * connection's thread and may block (check acv_http_stopping). free_fn(ud) runs at the end;
 * ud belongs to the response from the call on, so it is freed by this call when it fails
 * (the caller must not free it again). */
#define ACV_HTTP_STREAM_END ((ssize_t)-1)
#define ACV_HTTP_STREAM_ERROR ((ssize_t)-2)
typedef ssize_t (*acv_http_stream_fn)(void *ud, uint64_t pos, char *buf, size_t max);
int acv_http_respond_stream(acv_http_req *req, int status, const char *content_type, acv_http_stream_fn fn, void *ud,
                            void (*free_fn)(void *ud));
bool acv_http_responded(const acv_http_req *req);

/* The HTTP status for an ACV_E* code: EFORMAT 400, EINVAL/ERANGE/EUNSUPPORTED 422, ENOTFOUND 404,
 * EEXIST/ECANCELED 409, others 500. */
int acv_http_status_of(int rc);
/* The error code name for a status ("not_found"). */
const char *acv_http_code_name(int status);

#endif
