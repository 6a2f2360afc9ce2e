/* HTTP server over libmicrohttpd: the daemon, the request lifecycle (begin / body / handle /
 * done) and streaming of request bodies to memory (JSON) or temporary files (see http.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "autocv/error.h"
#include "base/log.h"
#include "base/timeutil.h"
#include "server/http_internal.h"

#define SMALL_BODY (64 * 1024)         /* early answers wait for bodies up to this size */
#define DISCARD_MAX (16u * 1024 * 1024) /* bytes read and dropped after a chunked body overflows */
#define FIELDS_MAX (1u << 20)           /* multipart text fields, in all */
#define PARTS_MAX 10000                 /* multipart parts per request */

/* ---- accessors ------------------------------------------------------------------------ */

acv_http *acv_http_of(const acv_http_req *r) { return r->h; }
const char *acv_http_method(const acv_http_req *r) { return r->method; }
const char *acv_http_path(const acv_http_req *r) { return r->path; }
const char *acv_http_client(const acv_http_req *r) { return r->client; }
acv_http_body_kind acv_http_body(const acv_http_req *r) { return r->kind; }
const char *acv_http_content_type(const acv_http_req *r)
{
    const char *ct = r->ctype ? r->ctype : acv_http_header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
    return ct ? ct : "";
}
uint64_t acv_http_body_size(const acv_http_req *r) { return r->received; }
uint64_t acv_http_declared_size(const acv_http_req *r) { return r->declared; }
json_t *acv_http_json(const acv_http_req *r) { return r->json; }
int acv_http_nfiles(const acv_http_req *r) { return r->nfiles; }
const acv_http_file *acv_http_file_at(const acv_http_req *r, int i)
{
    return i >= 0 && i < r->nfiles ? &r->files[i].pub : NULL;
}
const acv_http_file *acv_http_raw(const acv_http_req *r) { return r->kind == ACV_HTTP_BODY_RAW ? &r->raw.pub : NULL; }
void acv_http_set_udata(acv_http_req *r, void *p) { r->udata = p; }
void *acv_http_udata(const acv_http_req *r) { return r->udata; }
void acv_http_set_log_user(acv_http_req *r, const char *user)
{
    snprintf(r->log_user, sizeof r->log_user, "%s", user ? user : "-");
}
void acv_http_keep_in_memory(acv_http_req *r, uint64_t max_bytes) { r->mem_budget = max_bytes; }
void acv_http_limit_body(acv_http_req *r, uint64_t max_bytes)
{
    if (max_bytes < r->limit) r->limit = max_bytes;
}
int acv_http_port(const acv_http *h) { return h->port; }
const char *acv_http_url(const acv_http *h) { return h->url; }
bool acv_http_stopping(const acv_http *h) { return atomic_load(&h->stopping); }

const char *acv_http_query(const acv_http_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *acv_http_header(const acv_http_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *acv_http_field(const acv_http_req *r, const char *name)
{
    for (int i = 0; i < r->nfields; i++)
        if (!strcmp(r->fields[i].name, name)) return r->fields[i].value ? r->fields[i].value : "";
    return NULL;
}

char *acv_http_take_file(acv_http_req *r, const acv_http_file *f)
{
    upfile *u = NULL;
    if (f == &r->raw.pub) u = &r->raw;
    for (int i = 0; !u && i < r->nfiles; i++)
        if (f == &r->files[i].pub) u = &r->files[i];
    if (!u || !u->path) return NULL;
    if (u->fd >= 0) {
        close(u->fd);
        u->fd = -1;
    }
    char *p = u->path;
    u->path = NULL;
    u->pub.path = NULL;
    return p;
}

/* ---- temporary files -------------------------------------------------------------------- */

static int tmp_open(acv_http_req *r, upfile *u)
{
    char tmpl[4096];
    snprintf(tmpl, sizeof tmpl, "%s/upload-XXXXXX", r->h->tmp_dir);
    int fd = mkostemp(tmpl, O_CLOEXEC);
    if (fd < 0) return acv_error(ACV_EIO, "cannot create a temporary file in %s: %s", r->h->tmp_dir, strerror(errno));
    u->path = strdup(tmpl);
    if (!u->path) {
        close(fd);
        unlink(tmpl);
        return acv_error(ACV_ENOMEM, "out of memory");
    }
    u->fd = fd;
    u->pub.path = u->path;
    return 0;
}

static int fd_write(upfile *u, const uint8_t *data, size_t n)
{
    while (n > 0) {
        ssize_t w = write(u->fd, data, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return acv_error(ACV_EIO, "writing the upload to disk: %s", strerror(errno));
        data += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Starts a file part or the raw body: in memory while the request's budget allows, else a file. */
static int up_open(acv_http_req *r, upfile *u)
{
    if (r->mem_budget == 0) return tmp_open(r, u);
    u->mcap = 4096;
    u->mem = malloc(u->mcap);
    return u->mem ? 0 : acv_error(ACV_ENOMEM, "out of memory");
}

static int up_write(acv_http_req *r, upfile *u, const char *data, size_t n)
{
    if (u->mem) {
        if (r->mem_used + n <= r->mem_budget) {
            if (u->pub.size + n > u->mcap) {
                size_t nc = u->mcap;
                while (nc < u->pub.size + n) nc *= 2;
                uint8_t *nm = realloc(u->mem, nc);
                if (!nm) return acv_error(ACV_ENOMEM, "out of memory");
                u->mem = nm;
                u->mcap = nc;
            }
            memcpy(u->mem + u->pub.size, data, n);
            u->pub.size += n;
            r->mem_used += n;
            return 0;
        }
        /* over the budget: this part moves to a temporary file */
        int rc = tmp_open(r, u);
        if (!rc) rc = fd_write(u, u->mem, (size_t)u->pub.size);
        if (rc) return rc;
        r->mem_used -= u->pub.size;
        free(u->mem);
        u->mem = NULL;
    }
    int rc = fd_write(u, (const uint8_t *)data, n);
    if (!rc) u->pub.size += (uint64_t)n;
    return rc;
}

static void upfile_close(upfile *u)
{
    if (u->fd >= 0) close(u->fd);
    u->fd = -1;
    if (u->mem) u->pub.data = u->mem;
}

static void upfile_free(upfile *u)
{
    upfile_close(u);
    if (u->path) unlink(u->path);
    free(u->path);
    free(u->field);
    free(u->filename);
    free(u->ctype);
    free(u->mem);
    u->path = NULL;
    u->mem = NULL;
    u->pub.data = NULL;
}

/* ---- request lifecycle --------------------------------------------------------------------- */

static void req_free(acv_http_req *r)
{
    if (!r) return;
    if (r->pp) MHD_destroy_post_processor(r->pp);
    if (r->resp) MHD_destroy_response(r->resp);
    for (int i = 0; i < r->nfiles; i++) upfile_free(&r->files[i]);
    free(r->files);
    for (int i = 0; i < r->nfields; i++) {
        free(r->fields[i].name);
        free(r->fields[i].value);
    }
    free(r->fields);
    upfile_free(&r->raw);
    acv__http_free_headers(r);
    json_decref(r->json);
    free(r->jbuf);
    free(r->method);
    free(r->path);
    free(r->ctype);
    free(r);
}

static acv_http_req *req_new(acv_http *h, struct MHD_Connection *conn, const char *url, const char *method)
{
    acv_http_req *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->h = h;
    r->conn = conn;
    r->t0 = acv_now();
    r->cur = -1;
    r->raw.fd = -1;
    r->limit = h->max_upload;
    r->method = strdup(method);
    /* Drop one trailing slash ("/api/v1/projects/" names the same resource). */
    size_t n = strlen(url);
    r->path = strndup(url, n > 1 && url[n - 1] == '/' ? n - 1 : n);
    snprintf(r->log_user, sizeof r->log_user, "-");
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    snprintf(r->client, sizeof r->client, "?");
    if (ci && ci->client_addr) {
        const struct sockaddr *sa = ci->client_addr;
        if (sa->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, r->client, sizeof r->client);
        else if (sa->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, r->client, sizeof r->client);
    }
    if (!r->method || !r->path) {
        req_free(r);
        return NULL;
    }
    const char *cl = acv_http_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *te = acv_http_header(r, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    if (te && strcasestr(te, "chunked")) r->declared = UINT64_MAX;
    else if (cl) r->declared = strtoull(cl, NULL, 10);
    return r;
}

static bool ctype_is(const char *ct, const char *want)
{
    size_t n = strlen(want);
    return ct && !strncasecmp(ct, want, n) && (ct[n] == 0 || ct[n] == ';' || ct[n] == ' ');
}

static bool ctype_is_json(const char *ct)
{
    if (!ct) return false;
    if (ctype_is(ct, "application/json")) return true;
    const char *semi = strchr(ct, ';');
    size_t n = semi ? (size_t)(semi - ct) : strlen(ct);
    while (n > 0 && ct[n - 1] == ' ') n--;
    return n > 5 && !strncasecmp(ct + n - 5, "+json", 5);
}

/* Multipart iterator: file parts to temporary files, text fields to memory. */
static enum MHD_Result on_part(void *cls, enum MHD_ValueKind kind, const char *key, const char *filename,
                               const char *content_type, const char *transfer_encoding, const char *data,
                               uint64_t off, size_t size)
{
    acv_http_req *r = cls;
    if (filename) {
        upfile *cur = r->cur >= 0 ? &r->files[r->cur] : NULL;
        bool same = cur && cur->pub.size == 0 && !strcmp(cur->field, key ? key : "") &&
                    !strcmp(cur->filename, filename);
        if (off == 0 && !same) {
            if (cur) upfile_close(cur);
            if (r->nfiles + r->nfields >= PARTS_MAX) {
                r->body_error = 413;
                snprintf(r->body_msg, sizeof r->body_msg, "more than %d parts in one request", PARTS_MAX);
                return MHD_NO;
            }
            if (r->nfiles == r->capfiles) {
                int nc = r->capfiles ? r->capfiles * 2 : 8;
                upfile *nf = realloc(r->files, (size_t)nc * sizeof *nf);
                if (!nf) return MHD_NO;
                r->files = nf;
                r->capfiles = nc;
            }
            upfile *u = &r->files[r->nfiles];
            memset(u, 0, sizeof *u);
            u->fd = -1;
            u->field = strdup(key ? key : "");
            u->filename = strdup(filename);
            u->ctype = strdup(content_type ? content_type : "application/octet-stream");
            r->nfiles++;
            if (!u->field || !u->filename || !u->ctype || up_open(r, u)) {
                r->body_error = 500;
                snprintf(r->body_msg, sizeof r->body_msg, "%s", acv_errmsg());
                return MHD_NO;
            }
            u->pub.field = u->field;
            u->pub.filename = u->filename;
            u->pub.content_type = u->ctype;
            r->cur = r->nfiles - 1;
        }
        if (size && up_write(r, &r->files[r->cur], data, size)) {
            r->body_error = 500;
            snprintf(r->body_msg, sizeof r->body_msg, "%s", acv_errmsg());
            return MHD_NO;
        }
        return MHD_YES;
    }
    /* A text field: its name and bookkeeping count towards the fields' limit with its value,
     * and each one is a part */
    formfield *f = r->nfields ? &r->fields[r->nfields - 1] : NULL;
    bool fresh = off == 0 || !f || strcmp(f->name, key ? key : "");
    r->field_bytes += size + (fresh ? strlen(key ? key : "") + sizeof *f : 0);
    if (r->field_bytes > FIELDS_MAX) {
        r->body_error = 413;
        snprintf(r->body_msg, sizeof r->body_msg, "form text fields exceed %u bytes", FIELDS_MAX);
        return MHD_NO;
    }
    if (fresh && r->nfiles + r->nfields >= PARTS_MAX) {
        r->body_error = 413;
        snprintf(r->body_msg, sizeof r->body_msg, "more than %d parts in one request", PARTS_MAX);
        return MHD_NO;
    }
    if (fresh) {
        if (r->nfields == r->capfields) {
            int nc = r->capfields ? r->capfields * 2 : 8;
            formfield *nf = realloc(r->fields, (size_t)nc * sizeof *nf);
            if (!nf) return MHD_NO;
            r->fields = nf;
            r->capfields = nc;
        }
        f = &r->fields[r->nfields++];
        memset(f, 0, sizeof *f);
        if (!(f->name = strdup(key ? key : ""))) return MHD_NO;
    }
    char *nv = realloc(f->value, f->len + size + 1);
    if (!nv) return MHD_NO;
    memcpy(nv + f->len, data, size);
    f->len += size;
    nv[f->len] = 0;
    f->value = nv;
    return MHD_YES;
}

/* Chooses how the body will be received. May leave a pending error response. */
static void body_setup(acv_http_req *r)
{
    const char *ct = acv_http_header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
    r->ctype = ct ? strdup(ct) : NULL;
    if (r->declared == 0) {
        r->kind = ACV_HTTP_BODY_NONE;
        return;
    }
    if (ctype_is_json(ct)) {
        r->kind = ACV_HTTP_BODY_JSON;
        if (r->h->max_json < r->limit) r->limit = r->h->max_json;
    } else if (ctype_is(ct, "multipart/form-data")) {
        r->kind = ACV_HTTP_BODY_MULTIPART;
    } else {
        r->kind = ACV_HTTP_BODY_RAW;
    }
    if (r->declared != UINT64_MAX && r->declared > r->limit) {
        acv_http_respond_error(r, 413, "request body of %llu bytes exceeds the limit of %llu bytes",
                               (unsigned long long)r->declared, (unsigned long long)r->limit);
        return;
    }
    if (acv_http_responded(r)) return;
    if (r->kind == ACV_HTTP_BODY_MULTIPART) {
        r->pp = MHD_create_post_processor(r->conn, 64 * 1024, on_part, r);
        if (!r->pp) acv_http_respond_error(r, 400, "malformed multipart/form-data request (no boundary?)");
    } else if (r->kind == ACV_HTTP_BODY_RAW) {
        r->raw.pub.field = "";
        r->raw.pub.filename = "";
        r->raw.pub.content_type = r->ctype ? r->ctype : "application/octet-stream";
        if (up_open(r, &r->raw)) acv_http_respond_rc(r, ACV_EIO);
    }
}

/* Drops everything received so far (after an error). */
static void body_drop(acv_http_req *r)
{
    r->discard = true;
    for (int i = 0; i < r->nfiles; i++) upfile_free(&r->files[i]);
    r->nfiles = 0;
    upfile_free(&r->raw);
    free(r->jbuf);
    r->jbuf = NULL;
    r->jlen = 0;
}

/* Consumes one chunk of body. Returns false when the connection must be closed. */
static bool body_chunk(acv_http_req *r, const char *data, size_t n)
{
    r->received += n;
    if (r->discard) return r->received <= r->limit + DISCARD_MAX || r->declared != UINT64_MAX;
    if (r->received > r->limit) {
        acv_http_respond_error(r, 413, "request body exceeds the limit of %llu bytes", (unsigned long long)r->limit);
        body_drop(r);
        return true;
    }
    switch (r->kind) {
    case ACV_HTTP_BODY_JSON:
        if (r->jlen + n + 1 > r->jcap) {
            size_t nc = r->jcap ? r->jcap : 4096;
            while (nc < r->jlen + n + 1) nc *= 2;
            char *nb = realloc(r->jbuf, nc);
            if (!nb) {
                acv_http_respond_error(r, 500, "out of memory");
                body_drop(r);
                return true;
            }
            r->jbuf = nb;
            r->jcap = nc;
        }
        memcpy(r->jbuf + r->jlen, data, n);
        r->jlen += n;
        break;
    case ACV_HTTP_BODY_MULTIPART:
        if (MHD_post_process(r->pp, data, n) != MHD_YES) {
            int st = r->body_error ? r->body_error : 400;
            acv_http_respond_error(r, st, "%s", r->body_msg[0] ? r->body_msg : "malformed multipart/form-data body");
            if (st >= 500) acv_log(ACV_LOG_ERROR, "%s %s: %s", r->method, r->path, r->body_msg);
            body_drop(r);
        }
        break;
    case ACV_HTTP_BODY_RAW:
        if (up_write(r, &r->raw, data, n)) {
            acv_http_respond_rc(r, ACV_EIO);
            body_drop(r);
        }
        break;
    default: /* a body where none was declared: MHD does not deliver one */
        break;
    }
    return true;
}

/* Completes the body after its last byte. May leave a pending error response. */
static void body_finish(acv_http_req *r)
{
    if (r->kind == ACV_HTTP_BODY_MULTIPART && r->pp) {
        enum MHD_Result ok = MHD_destroy_post_processor(r->pp);
        r->pp = NULL;
        if (r->cur >= 0) upfile_close(&r->files[r->cur]);
        if (ok != MHD_YES) {
            acv_http_respond_error(r, 400, "malformed multipart/form-data body (truncated?)");
            body_drop(r);
        }
    } else if (r->kind == ACV_HTTP_BODY_RAW) {
        upfile_close(&r->raw);
    } else if (r->kind == ACV_HTTP_BODY_JSON) {
        json_error_t err;
        r->json = json_loadb(r->jbuf ? r->jbuf : "", r->jlen, JSON_DECODE_ANY, &err);
        if (!r->json)
            acv_http_respond_error(r, 400, "malformed JSON body: line %d column %d: %s", err.line, err.column, err.text);
        free(r->jbuf);
        r->jbuf = NULL;
    }
}

static enum MHD_Result queue(acv_http_req *r)
{
    if (!r->resp) acv_http_respond_error(r, 500, "internal error: the handler sent no response");
    enum MHD_Result ok = MHD_queue_response(r->conn, (unsigned)r->status, r->resp);
    MHD_destroy_response(r->resp);
    r->resp = NULL;
    r->queued = true;
    return ok;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_size, void **con_cls)
{
    acv_http *h = cls;
    acv_http_req *r = *con_cls;
    if (!r) {
        /* Headers are in, no body yet: route and authorize now, so that a refused request
         * never uploads (and "Expect: 100-continue" clients get the answer instead of 100). */
        if (!(r = req_new(h, conn, url, method))) return MHD_NO;
        *con_cls = r;
        if (h->hooks.begin) {
            acv_error_clear();
            int rc = h->hooks.begin(h->ud, r);
            if (rc && !acv_http_responded(r)) acv_http_respond_rc(r, rc);
        }
        if (!acv_http_responded(r)) body_setup(r);
        if (acv_http_responded(r)) {
            body_drop(r);
            /* Answer now unless a small body is still to come: reading it first keeps the
             * connection clean (closing with unread data would reset it). */
            if (r->declared == 0 || r->declared == UINT64_MAX || r->declared > SMALL_BODY) return queue(r);
        }
        return MHD_YES;
    }
    if (*upload_size > 0) {
        bool ok = body_chunk(r, upload_data, *upload_size);
        *upload_size = 0;
        return ok ? MHD_YES : MHD_NO;
    }
    /* The whole request is in. */
    if (!acv_http_responded(r)) body_finish(r);
    if (!acv_http_responded(r)) {
        acv_error_clear();
        int rc = h->hooks.handle(h->ud, r);
        if (!acv_http_responded(r)) {
            if (rc) acv_http_respond_rc(r, rc);
            else acv_http_respond_error(r, 500, "internal error: the handler sent no response");
        }
    }
    return queue(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    acv_http *h = cls;
    acv_http_req *r = *con_cls;
    if (!r) return;
    double secs = acv_now() - r->t0;
    int status = r->queued ? r->status : 0;
    if (h->hooks.done) h->hooks.done(h->ud, r, status, r->resp_bytes, secs);
    if (h->access_log)
        acv_info("%s %s %s %d %lluB %.1fms user=%s%s", r->client, r->method, r->path, status,
                 (unsigned long long)r->resp_bytes, secs * 1e3, r->log_user,
                 toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (connection closed early)");
    req_free(r);
    *con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) msg[--n] = 0;
    acv_log(ACV_LOG_DEBUG, "http: %s", msg);
}

/* ---- the daemon --------------------------------------------------------------------------- */

/* Splits "HOST:PORT" / "[V6]:PORT" and resolves HOST to a socket address. */
static int parse_listen(const char *listen, struct sockaddr_storage *ss, socklen_t *len, char *host, size_t hostsz,
                        int *port)
{
    const char *colon;
    if (listen[0] == '[') {
        const char *end = strchr(listen, ']');
        if (!end || end[1] != ':') return acv_error(ACV_EINVAL, "--listen %s: expected [ADDRESS]:PORT", listen);
        snprintf(host, hostsz, "%.*s", (int)(end - listen - 1), listen + 1);
        colon = end + 1;
    } else {
        colon = strrchr(listen, ':');
        if (!colon) return acv_error(ACV_EINVAL, "--listen %s: expected HOST:PORT", listen);
        snprintf(host, hostsz, "%.*s", (int)(colon - listen), listen);
    }
    char *endp;
    long p = strtol(colon + 1, &endp, 10);
    if (!colon[1] || *endp || p < 0 || p > 65535)
        return acv_error(ACV_EINVAL, "--listen %s: the port must be a number in 0..65535", listen);
    *port = (int)p;
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    int g = getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &res);
    if (g || !res) return acv_error(ACV_EINVAL, "--listen %s: cannot resolve '%s': %s", listen, host, gai_strerror(g));
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

int acv_http_start(const acv_http_config *cfg, acv_http **out)
{
    *out = NULL;
    if (!cfg->hooks.handle) return acv_error(ACV_EINVAL, "http: a handle hook is required");
    acv_http *h = calloc(1, sizeof *h);
    if (!h) return acv_error(ACV_ENOMEM, "out of memory");
    h->tmp_dir = strdup(cfg->tmp_dir ? cfg->tmp_dir : "/tmp");
    h->max_upload = cfg->max_upload ? cfg->max_upload : (1ull << 30);
    h->max_json = cfg->max_json ? cfg->max_json : (16u << 20);
    h->access_log = cfg->access_log;
    h->hooks = cfg->hooks;
    h->ud = cfg->ud;
    atomic_init(&h->stopping, false);
    struct sockaddr_storage ss;
    socklen_t slen;
    char host[256];
    int port = 0;
    int rc = h->tmp_dir ? parse_listen(cfg->listen ? cfg->listen : "127.0.0.1:8080", &ss, &slen, host, sizeof host, &port)
                        : acv_error(ACV_ENOMEM, "out of memory");
    if (rc) {
        free(h->tmp_dir);
        free(h);
        return rc;
    }
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
                     MHD_USE_ERROR_LOG | MHD_USE_ITC;
    if (ss.ss_family == AF_INET6) flags |= MHD_USE_IPv6;
    h->d = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_request, h,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
                            MHD_OPTION_CONNECTION_LIMIT, cfg->max_conns ? cfg->max_conns : 256u,
                            MHD_OPTION_CONNECTION_TIMEOUT, cfg->timeout_s ? cfg->timeout_s : 300u,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024),
                            MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u,
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h,
                            MHD_OPTION_END);
    if (!h->d) {
        free(h->tmp_dir);
        free(h);
        return acv_error(ACV_EIO, "cannot listen on %s (address in use, or not an address of this machine?)",
                         cfg->listen);
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = di ? di->port : port;
    bool v6 = ss.ss_family == AF_INET6;
    const char *shown = host[0] ? host : (v6 ? "::" : "0.0.0.0");
    snprintf(h->url, sizeof h->url, "http://%s%s%s:%d", v6 ? "[" : "", shown, v6 ? "]" : "", h->port);
    *out = h;
    return 0;
}

void acv_http_stop(acv_http *h)
{
    if (!h) return;
    atomic_store(&h->stopping, true);
    MHD_socket s = MHD_quiesce_daemon(h->d);
    if (s != MHD_INVALID_SOCKET) close(s);
    MHD_stop_daemon(h->d);
    free(h->tmp_dir);
    free(h);
}
