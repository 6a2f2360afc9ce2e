/* The platform server: startup, the request pipeline (route, authenticate, authorize,
 * handle, measure) and the handler helpers (see server.h). */
#include "server/server.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "autocv/error.h"
#include "autocv/version.h"
#include "base/file.h"
#include "base/log.h"
#include "platform/audit.h"
#include "platform/imports.h"
#include "platform/projects.h"
#include "server/api.h"
#include "server/api_static.h"
#include "server/deploy.h"
#include "server/jobs.h"

struct acv_server {
    acv_server_config cfg;
    char *data_dir, *listen, *admin_password, *db_path, *tmp_dir, *blob_dir;
    int lock_fd;
    acv_db *db;
    acv_blobs *blobs;
    acv_router *router;
    acv_metrics *metrics;
    acv_http *http;
    acv_jobs *jobs;
    acv_deploy_pool *deploy;
    pthread_mutex_t blob_mu;
    double blob_bytes, blob_files;
    time_t blob_at;
};

void acv_server_config_init(acv_server_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->data_dir = "./autocv-data";
    cfg->listen = "127.0.0.1:8080";
    cfg->max_upload_bytes = 1ull << 30;
    cfg->max_json_bytes = 16u << 20;
    cfg->token_ttl_s = 12 * 3600;
    cfg->access_log = true;
    cfg->max_jobs = 1;
}

const acv_server_config *acv_server_config_of(const acv_server *s) { return &s->cfg; }
acv_db *acv_server_db(const acv_server *s) { return s->db; }
const acv_router *acv_server_router(const acv_server *s) { return s->router; }
acv_metrics *acv_server_metrics(const acv_server *s) { return s->metrics; }
acv_blobs *acv_server_blobs(const acv_server *s) { return s->blobs; }
acv_jobs *acv_server_jobs(const acv_server *s) { return s->jobs; }
acv_deploy_pool *acv_server_deploy(const acv_server *s) { return s->deploy; }
const char *acv_server_url(const acv_server *s) { return s->http ? acv_http_url(s->http) : ""; }
char *acv_server_path(const acv_server *s, const char *name) { return acv_path_join(s->data_dir, name); }

/* ---- gauges ---------------------------------------------------------------------------- */

static double file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (double)st.st_size : 0;
}

static double db_bytes(void *ud)
{
    acv_server *s = ud;
    char wal[4200];
    snprintf(wal, sizeof wal, "%s-wal", s->db_path);
    return file_size(s->db_path) + file_size(wal);
}

static _Thread_local double tl_walk_bytes, tl_walk_files;
static int walk_cb(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    if (type == FTW_F) {
        tl_walk_bytes += (double)st->st_size;
        tl_walk_files += 1;
    }
    return 0;
}

/* Blob directory totals, recomputed at most every 30 s (a walk of a large store costs). */
static void blob_totals(acv_server *s, double *bytes, double *files)
{
    pthread_mutex_lock(&s->blob_mu);
    time_t now = time(NULL);
    if (s->blob_at == 0 || now - s->blob_at >= 30) {
        tl_walk_bytes = tl_walk_files = 0;
        nftw(s->blob_dir, walk_cb, 32, FTW_PHYS);
        s->blob_bytes = tl_walk_bytes;
        s->blob_files = tl_walk_files;
        s->blob_at = now;
    }
    *bytes = s->blob_bytes;
    *files = s->blob_files;
    pthread_mutex_unlock(&s->blob_mu);
}

static double blob_bytes(void *ud)
{
    double b, f;
    blob_totals(ud, &b, &f);
    return b;
}

static double blob_files(void *ud)
{
    double b, f;
    blob_totals(ud, &b, &f);
    return f;
}

/* ---- the request pipeline -------------------------------------------------------------- */

static void call_free(acv_call *c)
{
    if (!c) return;
    if (c->db) acv_db_release(c->db);
    json_decref(c->body);
    free(c);
}

/* Whether ct (a Content-Type, parameters allowed) is parsed as JSON: application/json, a
 * +json type, or the form type curl -d sends. */
static bool json_ctype(const char *ct)
{
    size_t n = strcspn(ct, "; ");
    return (n == 16 && !strncasecmp(ct, "application/json", n)) ||
           (n == 33 && !strncasecmp(ct, "application/x-www-form-urlencoded", n)) ||
           (n > 5 && !strncasecmp(ct + n - 5, "+json", 5));
}

/* The request's content type (without parameters) is one the route accepts. A missing
 * Content-Type is let through (the handler decides). */
static bool content_type_ok(const char *accepted, const char *ct)
{
    if (!ct || !*ct) return true;
    size_t n = strcspn(ct, "; ");
    char list[256];
    snprintf(list, sizeof list, "%s", accepted);
    bool json = false;
    char *save = NULL;
    for (char *t = strtok_r(list, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
        if (strlen(t) == n && !strncasecmp(t, ct, n)) return true;
        json |= !strcmp(t, "application/json");
    }
    /* curl -d sends JSON as application/x-www-form-urlencoded; +json types are JSON. */
    return json && json_ctype(ct);
}

/* Whether a route accepting `accepted` takes file bodies (anything but JSON and CSV). */
static bool takes_files(const char *accepted)
{
    char list[256];
    snprintf(list, sizeof list, "%s", accepted);
    char *save = NULL;
    for (char *t = strtok_r(list, ", ", &save); t; t = strtok_r(NULL, ", ", &save))
        if (strcmp(t, "application/json") && strcmp(t, "text/csv")) return true;
    return false;
}

static int role_list(unsigned roles, char *out, size_t n)
{
    out[0] = 0;
    for (unsigned b = 1; b <= ACV_ROLE_OWNER; b <<= 1)
        if (roles & b) snprintf(out + strlen(out), n - strlen(out), "%s%s", out[0] ? ", " : "", acv_role_name(b));
    if (!out[0]) snprintf(out, n, "none");
    return 0;
}

/* Applies the route's permission to an authenticated caller (c->db is held). */
static int authorize(acv_call *c)
{
    const acv_route *rt = c->route;
    char need[160], have[160];
    if (rt->perm == ACV_PERM_USER) return 0;
    if (rt->perm == ACV_PERM_GLOBAL) {
        if (c->admin || (c->user.roles & rt->roles)) return 0;
        role_list(rt->roles | ACV_ROLE_ADMIN, need, sizeof need);
        role_list(c->user.roles, have, sizeof have);
        return acv_http_respond_error(c->req, 403, "%s %s needs one of the roles: %s (you have: %s)", rt->method,
                                      rt->pattern, need, have);
    }
    int64_t pid = 0;
    int rc = rt->project ? rt->project(c, &pid) : (pid = acv_call_id(c, "id"), 0);
    unsigned role = 0;
    if (!rc) rc = acv_project_role(c->db, pid, c->user.user_id, &role);
    if (rc == ACV_ENOTFOUND || (!rc && !role && !c->admin))
        return acv_http_respond_error(c->req, 404, "not found: %s (no such object, or a project you are not a "
                                                   "member of)",
                                      acv_http_path(c->req));
    if (rc) return rc;
    c->project_id = pid;
    c->project_role = c->admin ? ACV_ROLES_PROJECT : role;
    if (c->admin || (role & rt->roles)) return 0;
    role_list(rt->roles, need, sizeof need);
    return acv_http_respond_error(c->req, 403, "%s %s needs one of the project roles: %s (your role in project %lld: %s)",
                                  rt->method, rt->pattern, need, (long long)pid, acv_role_name(role));
}

static int authenticate(acv_call *c);

static int on_begin(void *ud, acv_http_req *req)
{
    acv_server *s = ud;
    acv_call *c = calloc(1, sizeof *c);
    if (!c) return acv_error(ACV_ENOMEM, "out of memory");
    c->srv = s;
    c->req = req;
    acv_http_set_udata(req, c);
    acv_metrics_inflight(s->metrics, 1);

    int rc = acv_router_match(s->router, acv_http_method(req), acv_http_path(req), &c->match);
    if (rc == ACV_EUNSUPPORTED) {
        acv_http_add_header(req, "Allow", c->match.allow);
        return acv_http_respond_error(req, 405, "%s", acv_errmsg());
    }
    /* GET outside the API with no route: the embedded web UI (api_static.h) */
    if (rc == ACV_ENOTFOUND && acv_static_serve(req)) return 0;
    if (rc) return acv_http_respond_error(req, 404, "%s", acv_errmsg());
    const acv_route *rt = c->route = c->match.route;

    if (rt->perm != ACV_PERM_PUBLIC && (rc = authenticate(c))) return rc;
    if (acv_http_responded(req)) return 0;
    if (acv_http_declared_size(req)) {
        const char *ct = acv_http_content_type(req);
        if (!rt->body_types) acv_http_limit_body(req, 64 * 1024);
        else if (!content_type_ok(rt->body_types, ct))
            return acv_http_respond_error(req, 415, "%s %s accepts %s, not %s", rt->method, rt->pattern, rt->body_types,
                                          ct);
        /* JSON and CSV (label imports) are parsed into memory: the JSON limit holds for them
         * before a byte is stored, as it does for a body without a type on a route that takes
         * no files (the handler reads it as JSON) */
        else if ((ct && *ct && (json_ctype(ct) || !strncasecmp(ct, "text/csv", 8) ||
                                !strncasecmp(ct, "application/csv", 15))) ||
                 ((!ct || !*ct) && !takes_files(rt->body_types)))
            acv_http_limit_body(req, c->srv->cfg.max_json_bytes);
        if (rt->body_in_memory) acv_http_keep_in_memory(req, rt->body_in_memory);
    }
    return 0;
}

/* Checks the bearer token and the route's permission; answers 401/403/404 itself. */
static int authenticate(acv_call *c)
{
    acv_http_req *req = c->req;
    int rc;

    const char *auth = acv_http_header(req, "Authorization");
    if (!auth || strncasecmp(auth, "Bearer ", 7)) {
        acv_http_add_header(req, "WWW-Authenticate", "Bearer");
        return acv_http_respond_error(req, 401, "authentication required: send 'Authorization: Bearer TOKEN' (a token "
                                                "from POST /api/v1/auth/login or /api/v1/tokens)");
    }
    const char *tok = auth + 7;
    while (*tok == ' ') tok++;
    if ((rc = acv_db_acquire(c->srv->db, &c->db))) return rc;
    rc = acv_auth_token_check(c->db, tok, acv_db_now(), &c->user);
    if (rc == ACV_ENOTFOUND) {
        acv_http_add_header(req, "WWW-Authenticate", "Bearer error=\"invalid_token\"");
        rc = acv_http_respond_error(req, 401, "%s", acv_errmsg());
    } else if (!rc) {
        c->admin = (c->user.roles & ACV_ROLE_ADMIN) != 0;
        acv_http_set_log_user(req, c->user.username);
        rc = authorize(c);
    }
    acv_db_release(c->db);
    c->db = NULL;
    return rc;
}

static int on_handle(void *ud, acv_http_req *req)
{
    acv_server *s = ud;
    acv_call *c = acv_http_udata(req);
    int rc = acv_db_acquire(s->db, &c->db);
    if (rc) return rc;
    rc = c->route->handler(c);
    acv_db_release(c->db);
    c->db = NULL;
    return rc;
}

static void on_done(void *ud, acv_http_req *req, int status, uint64_t bytes, double seconds)
{
    acv_server *s = ud;
    acv_call *c = acv_http_udata(req);
    if (!c) return;
    acv_metrics_observe(s->metrics, c->route ? c->match.index : -1, status, seconds);
    acv_metrics_inflight(s->metrics, -1);
    call_free(c);
    acv_http_set_udata(req, NULL);
}

/* ---- startup and shutdown -------------------------------------------------------------- */

static int lock_data_dir(acv_server *s)
{
    char *path = acv_path_join(s->data_dir, ".lock");
    if (!path) return acv_error(ACV_ENOMEM, "out of memory");
    s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    int rc = 0;
    if (s->lock_fd < 0) rc = acv_error(ACV_EIO, "%s: %s", path, strerror(errno));
    else if (flock(s->lock_fd, LOCK_EX | LOCK_NB))
        rc = acv_error(ACV_EEXIST, "%s is in use by another autocv serve (lock %s held)", s->data_dir, path);
    free(path);
    return rc;
}

int acv_server_open(const acv_server_config *cfg, acv_server **out)
{
    *out = NULL;
    acv_server *s = calloc(1, sizeof *s);
    if (!s) return acv_error(ACV_ENOMEM, "out of memory");
    s->cfg = *cfg;
    s->lock_fd = -1;
    pthread_mutex_init(&s->blob_mu, NULL);
    s->data_dir = strdup(cfg->data_dir ? cfg->data_dir : "./autocv-data");
    s->listen = strdup(cfg->listen ? cfg->listen : "127.0.0.1:8080");
    s->admin_password = cfg->admin_password ? strdup(cfg->admin_password) : NULL;
    s->cfg.data_dir = s->data_dir;
    s->cfg.listen = s->listen;
    s->cfg.admin_password = NULL; /* used once below, then forgotten */
    int rc = 0;
    if (!s->data_dir || !s->listen || (cfg->admin_password && !s->admin_password))
        rc = acv_error(ACV_ENOMEM, "out of memory");
    if (!rc && s->cfg.token_ttl_s <= 0) rc = acv_error(ACV_EINVAL, "the token lifetime must be positive");
    if (!rc && (rc = acv_mkdirs(s->data_dir))) acv_error_prefix(rc, "data directory: ");
    if (!rc) rc = lock_data_dir(s);
    if (!rc) {
        s->db_path = acv_path_join(s->data_dir, "autocv.db");
        s->tmp_dir = acv_path_join(s->data_dir, "tmp");
        s->blob_dir = acv_path_join(s->data_dir, "blobs");
        if (!s->db_path || !s->tmp_dir || !s->blob_dir) rc = acv_error(ACV_ENOMEM, "out of memory");
    }
    /* Uploads left by a crash are garbage: nothing refers to a temporary file. */
    if (!rc) rc = acv_remove_tree(s->tmp_dir);
    if (!rc) rc = acv_mkdirs(s->tmp_dir);
    if (!rc) rc = acv_mkdirs(s->blob_dir);
    if (!rc) rc = acv_db_open(s->db_path, NULL, &s->db);
    if (!rc) {
        acv_dbconn *c;
        char *generated = NULL;
        if (!(rc = acv_db_acquire(s->db, &c))) {
            rc = acv_auth_bootstrap(c, s->admin_password, &generated);
            acv_db_release(c);
        }
        if (!rc && generated) {
            fprintf(stderr,
                    "autocv serve: created the administrator account\n"
                    "    username: admin\n    password: %s\n"
                    "  (shown only this once; set AUTOCV_ADMIN_PASSWORD before the first start to choose it)\n",
                    generated);
            free(generated);
        }
    }
    if (!rc) rc = acv_blobs_open(s->data_dir, &s->blobs);
    if (!rc) {
        /* What a crash left: blob files without a committed row, imports marked running. */
        acv_dbconn *c;
        int64_t removed = 0;
        if (!(rc = acv_db_acquire(s->db, &c))) {
            rc = acv_import_recover(c);
            if (!rc) rc = acv_blobs_gc(s->blobs, c, &removed);
            acv_db_release(c);
        }
        if (!rc && removed) acv_info("removed %lld unreferenced blob files", (long long)removed);
    }
    if (s->admin_password) {
        memset(s->admin_password, 0, strlen(s->admin_password));
        free(s->admin_password);
        s->admin_password = NULL;
    }
    if (!rc) rc = acv_router_new(&s->router);
    if (!rc) rc = acv_routes_build(s->router, &s->cfg);
    if (!rc) rc = acv_metrics_new(acv_router_count(s->router), &s->metrics);
    if (!rc) rc = acv_metrics_add_gauge(s->metrics, "autocv_db_size_bytes", "Size of the database (main file and WAL).",
                                        db_bytes, s);
    if (!rc)
        rc = acv_metrics_add_gauge(s->metrics, "autocv_blob_size_bytes", "Bytes in the blob store (DATA/blobs).",
                                   blob_bytes, s);
    if (!rc)
        rc = acv_metrics_add_gauge(s->metrics, "autocv_blob_files", "Files in the blob store (DATA/blobs).",
                                   blob_files, s);
    if (!rc) rc = acv_deploy_pool_new(s, &s->deploy);
    if (!rc) rc = acv_jobs_new(s, &s->jobs);
    if (rc) {
        acv_server_close(s);
        return rc;
    }
    *out = s;
    return 0;
}

int acv_server_start(acv_server *s)
{
    acv_http_config hc = {
        .listen = s->listen,
        .tmp_dir = s->tmp_dir,
        .max_upload = s->cfg.max_upload_bytes,
        .max_json = s->cfg.max_json_bytes,
        .access_log = s->cfg.access_log,
        .hooks = {on_begin, on_handle, on_done},
        .ud = s,
    };
    int rc = acv_http_start(&hc, &s->http);
    if (!rc) rc = acv_jobs_start(s->jobs);
    return rc;
}

void acv_server_close(acv_server *s)
{
    if (!s) return;
    acv_http_stop(s->http);
    acv_jobs_free(s->jobs);
    acv_deploy_pool_free(s->deploy);
    acv_metrics_free(s->metrics);
    acv_router_free(s->router);
    acv_blobs_close(s->blobs);
    acv_db_close(s->db);
    if (s->lock_fd >= 0) close(s->lock_fd);
    pthread_mutex_destroy(&s->blob_mu);
    free(s->data_dir);
    free(s->listen);
    free(s->admin_password);
    free(s->db_path);
    free(s->tmp_dir);
    free(s->blob_dir);
    free(s);
}

/* ---- handler helpers ----------------------------------------------------------------- */

const char *acv_call_param(const acv_call *c, const char *name)
{
    for (int i = 0; i < c->match.nparams; i++)
        if (!strcmp(c->match.names[i], name)) return c->match.values[i];
    return NULL;
}

int64_t acv_call_id(const acv_call *c, const char *name)
{
    const char *v = acv_call_param(c, name);
    return v ? strtoll(v, NULL, 10) : 0;
}

const char *acv_call_query(const acv_call *c, const char *name)
{
    const char *v = acv_http_query(c->req, name);
    return v && *v ? v : NULL;
}

static int query_int(acv_call *c, const char *name, long lo, long hi, long dflt, long *out)
{
    const char *v = acv_call_query(c, name);
    *out = dflt;
    if (!v) return 0;
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || *end || x < lo || x > hi)
        return acv_error(ACV_EFORMAT, "query parameter '%s' must be an integer in %ld..%ld (got '%s')", name, lo, hi, v);
    *out = x;
    return 0;
}

int acv_call_paging(acv_call *c, int *limit, int *offset)
{
    long l, o;
    int rc = query_int(c, "limit", 1, 1000, 100, &l);
    if (!rc) rc = query_int(c, "offset", 0, 1000000000L, 0, &o);
    if (rc) return rc;
    *limit = (int)l;
    *offset = (int)o;
    return 0;
}

int acv_call_body(acv_call *c, json_t **obj)
{
    json_t *j = c->body ? c->body : acv_http_json(c->req);
    const acv_http_file *raw = acv_http_raw(c->req);
    const char *ct = acv_http_content_type(c->req);
    if (!j && raw && raw->path && (!*ct || !strncasecmp(ct, "application/x-www-form-urlencoded", 33)) &&
        raw->size <= c->srv->cfg.max_json_bytes) {
        json_error_t err;
        c->body = json_load_file(raw->path, JSON_DECODE_ANY, &err);
        if (!c->body)
            return acv_error(ACV_EFORMAT, "malformed JSON body: line %d column %d: %s", err.line, err.column, err.text);
        j = c->body;
    }
    if (!j) return acv_error(ACV_EFORMAT, "a JSON object body is required (Content-Type: application/json)");
    if (!json_is_object(j)) return acv_error(ACV_EFORMAT, "the JSON body must be an object");
    *obj = j;
    return 0;
}

bool acv_call_has_role(const acv_call *c, unsigned roles) { return c->admin || (c->user.roles & roles); }

int acv_call_json(acv_call *c, int status, json_t *body)
{
    if (!body && status != 204) return acv_error(ACV_ENOMEM, "out of memory building the response");
    return acv_http_respond_json(c->req, status, body);
}

int acv_call_page(acv_call *c, json_t *items, int64_t total, int limit, int offset)
{
    return acv_call_json(c, 200, json_pack("{s:o, s:I, s:i, s:i}", "items", items ? items : json_array(), "total",
                                           (json_int_t)total, "limit", limit, "offset", offset));
}

int acv_call_error(acv_call *c, int status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return acv_http_respond_error(c->req, status, "%s", msg);
}

int acv_call_no_content(acv_call *c) { return acv_http_respond_json(c->req, 204, NULL); }

int acv_call_audit(acv_call *c, const char *action, const char *target_type, int64_t target_id, int64_t project_id,
                   json_t *details)
{
    return acv_audit_write(c->db, &c->user, action, target_type, target_id, project_id, details);
}
