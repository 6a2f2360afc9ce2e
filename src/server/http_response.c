/* Responses: JSON, errors, files and streams (see http.h). A response is built at once but
 * queued by the access handler in http.c when libmicrohttpd allows it. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "autocv/error.h"
#include "base/log.h"
#include "server/http_internal.h"

int acv_http_status_of(int rc)
{
    switch (rc) {
    case ACV_EFORMAT: return 400;
    case ACV_EINVAL:
    case ACV_ERANGE:
    case ACV_EUNSUPPORTED: return 422;
    case ACV_ENOTFOUND: return 404;
    case ACV_EEXIST:
    case ACV_ECANCELED: return 409;
    default: return 500;
    }
}

const char *acv_http_code_name(int status)
{
    switch (status) {
    case 400: return "bad_request";
    case 401: return "unauthorized";
    case 403: return "forbidden";
    case 404: return "not_found";
    case 405: return "method_not_allowed";
    case 409: return "conflict";
    case 411: return "length_required";
    case 413: return "payload_too_large";
    case 415: return "unsupported_media_type";
    case 422: return "unprocessable";
    case 423: return "locked";
    case 429: return "too_many_requests";
    case 503: return "unavailable";
    default: return status >= 500 ? "internal" : "error";
    }
}

bool acv_http_responded(const acv_http_req *r) { return r->resp != NULL || r->queued; }

void acv__http_free_headers(acv_http_req *r)
{
    for (int i = 0; i < r->nhdrs; i++) {
        free(r->hdrs[i].name);
        free(r->hdrs[i].value);
    }
    free(r->hdrs);
    r->hdrs = NULL;
    r->nhdrs = 0;
}

int acv_http_add_header(acv_http_req *r, const char *name, const char *value)
{
    if (r->resp) return MHD_add_response_header(r->resp, name, value) == MHD_YES ? 0 : acv_error(ACV_EINVAL, "bad header");
    hdr *nh = realloc(r->hdrs, (size_t)(r->nhdrs + 1) * sizeof *nh);
    if (!nh) return acv_error(ACV_ENOMEM, "out of memory");
    r->hdrs = nh;
    nh[r->nhdrs].name = strdup(name);
    nh[r->nhdrs].value = strdup(value);
    if (!nh[r->nhdrs].name || !nh[r->nhdrs].value) {
        free(nh[r->nhdrs].name);
        free(nh[r->nhdrs].value);
        return acv_error(ACV_ENOMEM, "out of memory");
    }
    r->nhdrs++;
    return 0;
}

int acv__http_set_response(acv_http_req *r, int status, struct MHD_Response *resp, uint64_t bytes)
{
    if (!resp) return acv_error(ACV_ENOMEM, "cannot create the HTTP response");
    if (acv_http_responded(r)) {
        MHD_destroy_response(resp);
        return acv_error(ACV_EINVAL, "the request already has a response");
    }
    bool cache_set = false;
    for (int i = 0; i < r->nhdrs; i++) {
        MHD_add_response_header(resp, r->hdrs[i].name, r->hdrs[i].value);
        cache_set |= !strcasecmp(r->hdrs[i].name, "Cache-Control");
    }
    acv__http_free_headers(r);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    /* not cached unless the handler said how (images, the web UI's files) */
    if (!cache_set) MHD_add_response_header(resp, "Cache-Control", "no-store");
    r->resp = resp;
    r->status = status;
    r->resp_bytes = bytes;
    return 0;
}

int acv_http_respond_data(acv_http_req *r, int status, const char *content_type, const void *data, size_t len)
{
    if (acv_http_responded(r)) return acv_error(ACV_EINVAL, "the request already has a response");
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);
    if (resp && content_type) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    return acv__http_set_response(r, status, resp, len);
}

int acv_http_respond_json(acv_http_req *r, int status, json_t *body)
{
    if (acv_http_responded(r)) {
        json_decref(body);
        return acv_error(ACV_EINVAL, "the request already has a response");
    }
    if (!body) {
        struct MHD_Response *resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        return acv__http_set_response(r, status, resp, 0);
    }
    char *s = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(body);
    if (!s) return acv_error(ACV_ENOMEM, "cannot encode the JSON response");
    size_t n = strlen(s);
    struct MHD_Response *resp = MHD_create_response_from_buffer(n, s, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(s);
        return acv_error(ACV_ENOMEM, "cannot create the HTTP response");
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    return acv__http_set_response(r, status, resp, n);
}

int acv_http_respond_error(acv_http_req *r, int status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *e = json_pack("{s:{s:s, s:s}}", "error", "code", acv_http_code_name(status), "message", msg);
    if (!e) /* msg was not valid UTF-8 (it may quote client input) */
        e = json_pack("{s:{s:s, s:s}}", "error", "code", acv_http_code_name(status), "message", "invalid request");
    return acv_http_respond_json(r, status, e);
}

int acv_http_respond_rc(acv_http_req *r, int rc)
{
    int status = acv_http_status_of(rc);
    const char *m = acv_errmsg();
    if (status >= 500) {
        acv_log(ACV_LOG_ERROR, "%s %s: %s (%s)", r->method, r->path, m && *m ? m : "?", acv_strerror(rc));
        return acv_http_respond_error(r, status, "internal error (%s); the server log has the details", acv_strerror(rc));
    }
    return acv_http_respond_error(r, status, "%s", m && *m ? m : acv_strerror(rc));
}

int acv_http_respond_file(acv_http_req *r, int status, const char *path, const char *content_type)
{
    if (acv_http_responded(r)) return acv_error(ACV_EINVAL, "the request already has a response");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0) return acv_error(ACV_ENOTFOUND, "%s: %s", path, strerror(errno));
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        close(fd);
        return acv_error(ACV_ENOTFOUND, "%s: not a regular file", path);
    }
    struct MHD_Response *resp = MHD_create_response_from_fd64((uint64_t)st.st_size, fd);
    if (!resp) {
        close(fd);
        return acv_error(ACV_ENOMEM, "cannot create the HTTP response");
    }
    if (content_type) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    return acv__http_set_response(r, status, resp, (uint64_t)st.st_size);
}

typedef struct stream_ctx {
    acv_http_stream_fn fn;
    void *ud;
    void (*free_fn)(void *);
    acv_http_req *r; /* valid while the callback runs (the request outlives its sending) */
} stream_ctx;

static ssize_t stream_cb(void *cls, uint64_t pos, char *buf, size_t max)
{
    stream_ctx *s = cls;
    ssize_t n = s->fn(s->ud, pos, buf, max);
    if (n == ACV_HTTP_STREAM_END) return MHD_CONTENT_READER_END_OF_STREAM;
    if (n < 0) return MHD_CONTENT_READER_END_WITH_ERROR;
    s->r->resp_bytes += (uint64_t)n;
    return n;
}

static void stream_free(void *cls)
{
    stream_ctx *s = cls;
    if (s->free_fn) s->free_fn(s->ud);
    free(s);
}

int acv_http_respond_stream(acv_http_req *r, int status, const char *content_type, acv_http_stream_fn fn, void *ud,
                            void (*free_fn)(void *ud))
{
    /* ud belongs to the response from here on, also when this fails (one owner, no double
     * free: a response destroyed below frees it through stream_free). */
    stream_ctx *s = acv_http_responded(r) ? NULL : calloc(1, sizeof *s);
    if (!s) {
        if (free_fn) free_fn(ud);
        return acv_http_responded(r) ? acv_error(ACV_EINVAL, "the request already has a response")
                                     : acv_error(ACV_ENOMEM, "out of memory");
    }
    *s = (stream_ctx){fn, ud, free_fn, r};
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, stream_cb, s, stream_free);
    if (!resp) {
        stream_free(s);
        return acv_error(ACV_ENOMEM, "cannot create the HTTP response");
    }
    if (content_type) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    return acv__http_set_response(r, status, resp, 0);
}
