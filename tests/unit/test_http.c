/* Tests for server/http and server/router: routing rules and the generated OpenAPI paths;
 * a real libmicrohttpd server on a free loopback port answering raw-socket requests: query
 * and headers, JSON bodies (and malformed ones), multipart uploads streamed to temporary
 * files (removed afterwards unless taken), raw bodies, the 413 limits (declared and chunked),
 * early answers from begin(), error mapping, streamed and file responses. */
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "autocv/error.h"
#include "base/file.h"
#include "server/http.h"
#include "server/router.h"

/* ---- router --------------------------------------------------------------------------- */

static int h_dummy(acv_call *c) { return 0; }

static void test_router_matching(void **state)
{
    static const acv_route R[] = {
        {.method = "GET", .pattern = "/api/v1/users", .handler = h_dummy, .tag = "t", .summary = "list"},
        {.method = "GET", .pattern = "/api/v1/users/{id}", .handler = h_dummy, .tag = "t", .summary = "get"},
        {.method = "PATCH", .pattern = "/api/v1/users/{id}", .handler = h_dummy, .tag = "t", .summary = "patch"},
        {.method = "GET", .pattern = "/api/v1/users/me", .handler = h_dummy, .tag = "t", .summary = "me"},
        {.method = "PUT", .pattern = "/api/v1/projects/{id}/members/{user_id}", .handler = h_dummy, .tag = "t",
         .summary = "member"},
        {.method = "GET", .pattern = "/files/{name}", .handler = h_dummy, .tag = "t", .summary = "file",
         .body_schema = "#Thing"},
    };
    acv_router *r;
    assert_int_equal(acv_router_new(&r), 0);
    assert_int_equal(acv_router_add(r, R, 6), 0);
    assert_int_equal(acv_router_add_schema(r, "Thing", "{\"type\":\"object\"}"), 0);
    acv_route_match m;
    assert_int_equal(acv_router_match(r, "GET", "/api/v1/users/me", &m), 0);
    assert_string_equal(m.route->summary, "me"); /* the literal wins over {id} */
    assert_int_equal(acv_router_match(r, "GET", "/api/v1/users/42", &m), 0);
    assert_string_equal(m.route->summary, "get");
    assert_int_equal(m.nparams, 1);
    assert_string_equal(m.names[0], "id");
    assert_string_equal(m.values[0], "42");
    assert_int_equal(acv_router_match(r, "HEAD", "/api/v1/users", &m), 0); /* HEAD uses GET */
    assert_int_equal(acv_router_match(r, "PUT", "/api/v1/projects/3/members/9", &m), 0);
    assert_string_equal(m.values[0], "3");
    assert_string_equal(m.values[1], "9");
    /* Integer parameters must be positive integers; other parameters take any segment. */
    assert_int_equal(acv_router_match(r, "GET", "/api/v1/users/abc", &m), ACV_ENOTFOUND);
    assert_int_equal(acv_router_match(r, "GET", "/api/v1/users/0", &m), ACV_ENOTFOUND);
    assert_int_equal(acv_router_match(r, "GET", "/files/a.png", &m), 0);
    assert_int_equal(acv_router_match(r, "GET", "/nothing", &m), ACV_ENOTFOUND);
    /* A known path with another method is 405 with the allowed methods. */
    assert_int_equal(acv_router_match(r, "DELETE", "/api/v1/users/7", &m), ACV_EUNSUPPORTED);
    assert_non_null(strstr(m.allow, "GET"));
    assert_non_null(strstr(m.allow, "PATCH"));
    /* Duplicates and malformed patterns are refused. */
    acv_route dup = R[1];
    dup.pattern = "/api/v1/users/{user_id}";
    assert_int_equal(acv_router_add(r, &dup, 1), ACV_EEXIST);
    acv_route bad = R[0];
    bad.pattern = "/api//x";
    assert_int_equal(acv_router_add(r, &bad, 1), ACV_EINVAL);
    bad.pattern = "/api/x{y}";
    assert_int_equal(acv_router_add(r, &bad, 1), ACV_EINVAL);
    bad.pattern = "/api/x";
    bad.resp_schema = "{not json";
    assert_int_equal(acv_router_add(r, &bad, 1), ACV_EINVAL);

    json_t *doc = acv_router_openapi(r, "t", "1");
    assert_non_null(doc);
    json_t *paths = json_object_get(doc, "paths");
    assert_int_equal(json_object_size(paths), 5);
    json_t *patch = json_object_get(json_object_get(paths, "/api/v1/users/{id}"), "patch");
    assert_non_null(patch);
    json_t *p0 = json_array_get(json_object_get(patch, "parameters"), 0);
    assert_string_equal(json_string_value(json_object_get(p0, "in")), "path");
    assert_string_equal(json_string_value(json_object_get(json_object_get(p0, "schema"), "type")), "integer");
    assert_non_null(json_object_get(json_object_get(json_object_get(doc, "components"), "schemas"), "Thing"));
    json_decref(doc);
    acv_router_free(r);
}

/* ---- the HTTP server --------------------------------------------------------------------- */

static char g_tmp[64];
static int g_done;
static char *g_taken;

static int begin(void *ud, acv_http_req *req)
{
    if (!strcmp(acv_http_path(req), "/deny")) return acv_http_respond_error(req, 401, "denied before the body");
    if (!strcmp(acv_http_path(req), "/small")) acv_http_limit_body(req, 1000);
    if (!strcmp(acv_http_path(req), "/mem")) acv_http_keep_in_memory(req, 100 * 1024);
    return 0;
}

static ssize_t stream_fn(void *ud, uint64_t pos, char *buf, size_t max)
{
    int *n = ud;
    if (*n >= 3) return ACV_HTTP_STREAM_END;
    int w = snprintf(buf, max, "part%d;", (*n)++);
    return w;
}

static int handle(void *ud, acv_http_req *req)
{
    const char *p = acv_http_path(req);
    if (!strcmp(p, "/missing")) return acv_error(ACV_ENOTFOUND, "thing 7 not found");
    if (!strcmp(p, "/conflict")) return acv_error(ACV_EEXIST, "already there");
    if (!strcmp(p, "/stream")) {
        int *n = calloc(1, sizeof *n);
        return acv_http_respond_stream(req, 200, "text/plain", stream_fn, n, free);
    }
    if (!strcmp(p, "/file")) {
        char path[128];
        snprintf(path, sizeof path, "%s/served.txt", g_tmp);
        acv_file_write_atomic(path, "file body", 9);
        return acv_http_respond_file(req, 200, path, "text/plain");
    }
    json_t *o = json_pack("{s:s, s:s, s:s?, s:s?, s:i, s:I}", "method", acv_http_method(req), "path", p, "a",
                          acv_http_query(req, "a"), "x", acv_http_header(req, "X-Test"), "kind", (int)acv_http_body(req),
                          "size", (json_int_t)acv_http_body_size(req));
    if (acv_http_json(req)) json_object_set(o, "json", acv_http_json(req));
    if (acv_http_field(req, "note")) json_object_set_new(o, "note", json_string(acv_http_field(req, "note")));
    json_t *files = json_array();
    for (int i = 0; i < acv_http_nfiles(req); i++) {
        const acv_http_file *f = acv_http_file_at(req, i);
        uint8_t *data = NULL;
        size_t len = 0;
        if (f->data) { /* kept in memory: no file */
            len = (size_t)f->size;
            data = malloc(len + 1);
            memcpy(data, f->data, len);
        } else {
            acv_file_read(f->path, 1 << 24, &data, &len);
        }
        json_array_append_new(files, json_pack("{s:s, s:s, s:s, s:I, s:I, s:b, s:b, s:s#}", "field", f->field,
                                               "filename", f->filename, "type", f->content_type, "size",
                                               (json_int_t)f->size, "read", (json_int_t)len, "in_tmp",
                                               f->path && !strncmp(f->path, g_tmp, strlen(g_tmp)), "in_mem",
                                               f->data && !f->path, "head", (const char *)data,
                                               len < 8 ? (int)len : 8));
        free(data);
    }
    json_object_set_new(o, "files", files);
    const acv_http_file *raw = acv_http_raw(req);
    if (raw) json_object_set_new(o, "raw", json_integer((json_int_t)raw->size));
    if (raw) json_object_set_new(o, "raw_in_mem", json_boolean(raw->data && !raw->path));
    if (raw && raw->data) json_object_set_new(o, "raw_head", json_stringn((const char *)raw->data, raw->size < 8 ? raw->size : 8));
    if (!strcmp(p, "/take") && raw) {
        free(g_taken);
        g_taken = acv_http_take_file(req, raw);
    }
    return acv_http_respond_json(req, 200, o);
}

static void done(void *ud, acv_http_req *req, int status, uint64_t bytes, double secs) { __atomic_add_fetch(&g_done, 1, __ATOMIC_SEQ_CST); }

static acv_http *g_http;

static int http_setup(void **state)
{
    snprintf(g_tmp, sizeof g_tmp, "/tmp/acv-test-http-XXXXXX");
    if (!mkdtemp(g_tmp)) return -1;
    acv_http_config cfg = {.listen = "127.0.0.1:0", .tmp_dir = g_tmp, .max_upload = 1 << 20, .max_json = 4096,
                           .hooks = {begin, handle, done}};
    return acv_http_start(&cfg, &g_http);
}

static int http_teardown(void **state)
{
    acv_http_stop(g_http);
    free(g_taken);
    acv_remove_tree(g_tmp);
    return 0;
}

/* Sends head + body (body may be NULL) and returns everything the server answered until it
 * closed (malloc'd). send_body false sends only the head. */
static char *roundtrip(const char *head, const char *body, size_t blen)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)acv_http_port(g_http))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    send(fd, head, strlen(head), MSG_NOSIGNAL);
    if (body) send(fd, body, blen, MSG_NOSIGNAL);
    size_t cap = 1 << 16, len = 0;
    char *out = malloc(cap);
    ssize_t n;
    while ((n = recv(fd, out + len, cap - len - 1, 0)) > 0) {
        len += (size_t)n;
        if (cap - len < 1024) out = realloc(out, cap *= 2);
    }
    out[len] = 0;
    close(fd);
    return out;
}

static int status_of(const char *resp)
{
    int st = 0;
    sscanf(resp, "HTTP/1.1 %d", &st);
    return st;
}

static json_t *body_json(const char *resp)
{
    const char *b = strstr(resp, "\r\n\r\n");
    return b ? json_loads(b + 4, 0, NULL) : NULL;
}

static int tmp_files(void)
{
    int n = 0;
    DIR *d = opendir(g_tmp);
    struct dirent *e;
    while ((e = readdir(d)))
        if (!strncmp(e->d_name, "upload-", 7)) n++;
    closedir(d);
    return n;
}

static void test_query_headers_json(void **state)
{
    char *r = roundtrip("GET /echo/?a=b%20c HTTP/1.1\r\nHost: x\r\nX-Test: yes\r\nConnection: close\r\n\r\n", NULL, 0);
    assert_int_equal(status_of(r), 200);
    json_t *j = body_json(r);
    assert_string_equal(json_string_value(json_object_get(j, "path")), "/echo"); /* trailing slash dropped */
    assert_string_equal(json_string_value(json_object_get(j, "a")), "b c");
    assert_string_equal(json_string_value(json_object_get(j, "x")), "yes");
    assert_int_equal(json_integer_value(json_object_get(j, "kind")), ACV_HTTP_BODY_NONE);
    json_decref(j);
    free(r);

    const char *body = "{\"k\":[1,2,3]}";
    char head[256];
    snprintf(head, sizeof head,
             "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
             "Connection: close\r\n\r\n",
             strlen(body));
    r = roundtrip(head, body, strlen(body));
    assert_int_equal(status_of(r), 200);
    j = body_json(r);
    assert_int_equal(json_array_size(json_object_get(json_object_get(j, "json"), "k")), 3);
    json_decref(j);
    free(r);

    const char *broken = "{\"k\":[1,2";
    snprintf(head, sizeof head,
             "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
             "Connection: close\r\n\r\n",
             strlen(broken));
    r = roundtrip(head, broken, strlen(broken));
    assert_int_equal(status_of(r), 400);
    j = body_json(r);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "code")), "bad_request");
    assert_non_null(strstr(json_string_value(json_object_get(json_object_get(j, "error"), "message")), "malformed JSON"));
    json_decref(j);
    free(r);
}

static void test_multipart_streams_to_temp_files(void **state)
{
    /* Two file parts (one of 200 KB, more than any single read) and a text field. */
    size_t big = 200 * 1024;
    char *payload = malloc(big);
    for (size_t i = 0; i < big; i++) payload[i] = (char)('a' + i % 26);
    const char *B = "XyZbOuNdArY";
    char *body = malloc(big + 4096);
    size_t n = 0;
    n += (size_t)sprintf(body + n,
                         "--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\n"
                         "Content-Type: application/octet-stream\r\n\r\n",
                         B);
    memcpy(body + n, payload, big);
    n += big;
    n += (size_t)sprintf(body + n,
                         "\r\n--%s\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello field\r\n"
                         "--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"small.txt\"\r\n"
                         "Content-Type: text/plain\r\n\r\nsmall file\r\n--%s--\r\n",
                         B, B, B);
    char head[256];
    snprintf(head, sizeof head,
             "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=%s\r\n"
             "Content-Length: %zu\r\nConnection: close\r\n\r\n",
             B, n);
    char *r = roundtrip(head, body, n);
    assert_int_equal(status_of(r), 200);
    json_t *j = body_json(r);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "note")), "hello field");
    json_t *files = json_object_get(j, "files");
    assert_int_equal(json_array_size(files), 2);
    json_t *f0 = json_array_get(files, 0), *f1 = json_array_get(files, 1);
    assert_string_equal(json_string_value(json_object_get(f0, "filename")), "big.bin");
    assert_int_equal(json_integer_value(json_object_get(f0, "size")), (json_int_t)big);
    assert_int_equal(json_integer_value(json_object_get(f0, "read")), (json_int_t)big);
    assert_true(json_is_true(json_object_get(f0, "in_tmp")));
    assert_string_equal(json_string_value(json_object_get(f0, "head")), "abcdefgh");
    assert_string_equal(json_string_value(json_object_get(f1, "filename")), "small.txt");
    assert_string_equal(json_string_value(json_object_get(f1, "type")), "text/plain");
    assert_int_equal(json_integer_value(json_object_get(f1, "size")), 10);
    assert_string_equal(json_string_value(json_object_get(f1, "field")), "file");
    json_decref(j);
    free(r);
    free(body);
    free(payload);
    /* The temporary files are gone once the request is done. */
    for (int i = 0; i < 100 && tmp_files(); i++) usleep(10000);
    assert_int_equal(tmp_files(), 0);
}

/* A route that keeps bodies in memory: parts within its budget have data and no file; a part
 * that would exceed it moves to a temporary file with its bytes intact. */
static void test_bodies_in_memory(void **state)
{
    size_t big = 200 * 1024;
    const char *B = "MeMbOuNdArY";
    char *body = malloc(big + 4096);
    size_t n = (size_t)sprintf(body,
                               "--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"small.txt\"\r\n"
                               "Content-Type: text/plain\r\n\r\nsmall file\r\n"
                               "--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\n"
                               "Content-Type: application/octet-stream\r\n\r\n",
                               B, B);
    for (size_t i = 0; i < big; i++) body[n++] = (char)('a' + i % 26);
    n += (size_t)sprintf(body + n, "\r\n--%s--\r\n", B);
    char head[256];
    snprintf(head, sizeof head,
             "POST /mem HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=%s\r\n"
             "Content-Length: %zu\r\nConnection: close\r\n\r\n",
             B, n);
    char *r = roundtrip(head, body, n);
    assert_int_equal(status_of(r), 200);
    json_t *j = body_json(r);
    assert_non_null(j);
    json_t *f0 = json_array_get(json_object_get(j, "files"), 0), *f1 = json_array_get(json_object_get(j, "files"), 1);
    assert_true(json_is_true(json_object_get(f0, "in_mem")));
    assert_int_equal(json_integer_value(json_object_get(f0, "size")), 10);
    assert_string_equal(json_string_value(json_object_get(f0, "head")), "small fi");
    assert_true(json_is_false(json_object_get(f1, "in_mem")));
    assert_true(json_is_true(json_object_get(f1, "in_tmp")));
    assert_int_equal(json_integer_value(json_object_get(f1, "read")), (json_int_t)big);
    assert_string_equal(json_string_value(json_object_get(f1, "head")), "abcdefgh");
    json_decref(j);
    free(r);
    /* a raw body within the budget: in memory, never a file */
    snprintf(head, sizeof head,
             "POST /mem HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: 5000\r\n"
             "Connection: close\r\n\r\n");
    memset(body, 'q', 5000);
    r = roundtrip(head, body, 5000);
    assert_int_equal(status_of(r), 200);
    j = body_json(r);
    assert_int_equal(json_integer_value(json_object_get(j, "raw")), 5000);
    assert_true(json_is_true(json_object_get(j, "raw_in_mem")));
    assert_string_equal(json_string_value(json_object_get(j, "raw_head")), "qqqqqqqq");
    json_decref(j);
    free(r);
    free(body);
    for (int i = 0; i < 100 && tmp_files(); i++) usleep(10000);
    assert_int_equal(tmp_files(), 0);
}

static void test_raw_body_and_take(void **state)
{
    char body[5000];
    memset(body, 'z', sizeof body);
    char head[256];
    snprintf(head, sizeof head,
             "POST /take HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
             sizeof body);
    char *r = roundtrip(head, body, sizeof body);
    assert_int_equal(status_of(r), 200);
    json_t *j = body_json(r);
    assert_int_equal(json_integer_value(json_object_get(j, "raw")), 5000);
    assert_int_equal(json_integer_value(json_object_get(j, "kind")), ACV_HTTP_BODY_RAW);
    json_decref(j);
    free(r);
    /* Taken: still on disk after the request. */
    for (int i = 0; i < 100 && !g_done; i++) usleep(10000);
    assert_non_null(g_taken);
    assert_true(acv_path_exists(g_taken));
    unlink(g_taken);
}

static void test_body_limits(void **state)
{
    /* Declared too large: answered from the headers alone, before any body byte is sent. */
    char *r = roundtrip("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
                        "Content-Length: 5000000\r\n\r\n",
                        NULL, 0);
    assert_int_equal(status_of(r), 413);
    assert_non_null(strstr(r, "payload_too_large"));
    free(r);
    /* JSON has its own, smaller limit. A small body is read (and dropped) before the answer,
     * which keeps the connection clean. */
    char small[5000];
    memset(small, ' ', sizeof small);
    r = roundtrip("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5000\r\nConnection: close\r\n\r\n",
                  small, sizeof small);
    assert_int_equal(status_of(r), 413);
    free(r);
    /* A route may lower the limit in begin(). */
    r = roundtrip("POST /small HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 2000\r\nConnection: close\r\n\r\n", small,
                  2000);
    assert_int_equal(status_of(r), 413);
    free(r);
    /* Chunked, no length: 413 once the limit is passed, and nothing is left on disk. */
    size_t chunk = 64 * 1024, nchunks = 20; /* 1.25 MiB > 1 MiB */
    char *body = malloc(nchunks * (chunk + 16) + 16);
    size_t n = 0;
    for (size_t i = 0; i < nchunks; i++) {
        n += (size_t)sprintf(body + n, "%zx\r\n", chunk);
        memset(body + n, 'q', chunk);
        n += chunk;
        n += (size_t)sprintf(body + n, "\r\n");
    }
    n += (size_t)sprintf(body + n, "0\r\n\r\n");
    r = roundtrip("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
                  "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
                  body, n);
    assert_int_equal(status_of(r), 413);
    free(r);
    free(body);
    for (int i = 0; i < 100 && tmp_files(); i++) usleep(10000);
    assert_int_equal(tmp_files(), 0);
}

static void test_early_answer_and_errors(void **state)
{
    char *r = roundtrip("POST /deny HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
                        "Connection: close\r\n\r\n",
                        "{}", 2);
    assert_int_equal(status_of(r), 401);
    assert_non_null(strstr(r, "denied before the body"));
    free(r);
    r = roundtrip("GET /missing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", NULL, 0);
    assert_int_equal(status_of(r), 404);
    json_t *j = body_json(r);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "code")), "not_found");
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "message")), "thing 7 not found");
    json_decref(j);
    free(r);
    r = roundtrip("GET /conflict HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", NULL, 0);
    assert_int_equal(status_of(r), 409);
    free(r);
}

static void test_stream_and_file_responses(void **state)
{
    char *r = roundtrip("GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", NULL, 0);
    assert_int_equal(status_of(r), 200);
    assert_non_null(strstr(r, "part0;"));
    assert_non_null(strstr(r, "part2;"));
    assert_null(strstr(r, "part3;"));
    free(r);
    r = roundtrip("GET /file HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", NULL, 0);
    assert_int_equal(status_of(r), 200);
    assert_non_null(strstr(r, "\r\n\r\nfile body"));
    free(r);
    assert_true(__atomic_load_n(&g_done, __ATOMIC_SEQ_CST) > 5);
}

int main(void)
{
    const struct CMUnitTest router[] = {cmocka_unit_test(test_router_matching)};
    const struct CMUnitTest http[] = {
        cmocka_unit_test(test_query_headers_json),
        cmocka_unit_test(test_multipart_streams_to_temp_files),
        cmocka_unit_test(test_bodies_in_memory),
        cmocka_unit_test(test_raw_body_and_take),
        cmocka_unit_test(test_body_limits),
        cmocka_unit_test(test_early_answer_and_errors),
        cmocka_unit_test(test_stream_and_file_responses),
    };
    int rc = cmocka_run_group_tests(router, NULL, NULL);
    return rc | cmocka_run_group_tests(http, http_setup, http_teardown);
}
