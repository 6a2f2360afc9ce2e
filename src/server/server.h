/* The platform server: configuration, startup (data directory, database and migrations, the
 * first admin, the route table), and the per-request context handed to every handler.
 *
 * For each request the server matches a route, checks the token (401) and the route's
 * permission (403, or 404 for a project the caller is not a member of), receives the body,
 * then calls the route's handler with an acv_call. A handler answers through acv_call_* (or
 * acv_http_*) and returns 0, or returns a negative ACV_E* code with the message set by
 * acv_error() and the server answers with the matching error status (http.h). */
#ifndef ACV_SERVER_SERVER_H
#define ACV_SERVER_SERVER_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "platform/auth.h"
#include "platform/blobs.h"
#include "platform/db.h"
#include "server/http.h"
#include "server/metrics.h"
#include "server/router.h"

typedef struct acv_server_config {
    const char *data_dir;      /* database, blobs, temporary uploads ("./autocv-data") */
    const char *listen;        /* "127.0.0.1:8080"; port 0 picks a free one */
    uint64_t max_upload_bytes; /* largest request body (1 GiB) */
    size_t max_json_bytes;     /* largest JSON body (16 MiB) */
    int64_t token_ttl_s;       /* login session lifetime (12 h) */
    bool metrics_public;       /* GET /metrics without a token */
    bool access_log;           /* one line per request on stderr (true) */
    const char *admin_password;/* the first admin's password (NULL: a random one, printed once) */
    int max_jobs;              /* background jobs (training, evaluation) run at once (1) */
    int job_threads;           /* compute threads of each job (0: all cores) */
    int threads;               /* compute threads of each deployment, shared by its replicas (0: all cores) */
    const char *exe;           /* the autocv binary jobs run (NULL: this program, /proc/self/exe) */
} acv_server_config;

/* Fills the defaults above. */
void acv_server_config_init(acv_server_config *cfg);

typedef struct acv_server acv_server;
typedef struct acv_jobs acv_jobs;               /* server/jobs.h */
typedef struct acv_deploy_pool acv_deploy_pool; /* server/deploy.h */

/* Prepares everything but the socket: creates data_dir (and tmp/, blobs/), takes a lock so a
 * second server cannot use the same directory, opens and migrates the database, creates the
 * first admin on an empty database (printing a generated password once to stderr), opens the
 * blob store and collects what a crash left in it (acv_blobs_gc; imports left running are
 * marked failed), builds the route table. */
int acv_server_open(const acv_server_config *cfg, acv_server **out);
/* Starts listening; acv_server_url then names the address. */
int acv_server_start(acv_server *s);
const char *acv_server_url(const acv_server *s);
/* Stops listening (waiting for running requests) and frees everything. */
void acv_server_close(acv_server *s);

const acv_server_config *acv_server_config_of(const acv_server *s);
acv_db *acv_server_db(const acv_server *s);
const acv_router *acv_server_router(const acv_server *s);
acv_metrics *acv_server_metrics(const acv_server *s);
/* The blob store under data_dir/blobs (shared by all requests). */
acv_blobs *acv_server_blobs(const acv_server *s);
/* The job scheduler and the inference pool (shared by all requests). */
acv_jobs *acv_server_jobs(const acv_server *s);
acv_deploy_pool *acv_server_deploy(const acv_server *s);
/* data_dir/name (malloc'd). */
char *acv_server_path(const acv_server *s, const char *name);

/* One request, as a handler sees it. */
struct acv_call {
    acv_server *srv;
    acv_http_req *req;
    const acv_route *route;
    acv_route_match match;  /* path parameters */
    acv_principal user;     /* the caller (user_id 0 on public routes) */
    bool admin;             /* the caller has the global admin role */
    int64_t project_id;     /* PROJECT routes: the project acted on */
    unsigned project_role;  /* PROJECT routes: the caller's project role bit (admins: all) */
    acv_dbconn *db;         /* a pooled connection, held while the handler runs */
    json_t *body;           /* internal: a JSON body parsed by acv_call_body from a raw upload */
};

/* A path parameter as text (NULL when the pattern has none of that name). */
const char *acv_call_param(const acv_call *c, const char *name);
/* An integer path parameter ({id}, {user_id}: validated by the router); 0 when absent. */
int64_t acv_call_id(const acv_call *c, const char *name);
/* ?limit (1..1000, default 100) and ?offset (>= 0, default 0); ACV_EFORMAT naming the bad one. */
int acv_call_paging(acv_call *c, int *limit, int *offset);
/* A query parameter, or NULL (or when empty). */
const char *acv_call_query(const acv_call *c, const char *name);
/* The body as a JSON object (borrowed). A body sent without a JSON content type (curl -d) is
 * parsed too. ACV_EFORMAT when there is no body, it is not JSON, or not an object. */
int acv_call_body(acv_call *c, json_t **obj);
/* True when the caller has one of the global roles (admins always). */
bool acv_call_has_role(const acv_call *c, unsigned roles);

/* Responses (each returns 0). body is stolen. */
int acv_call_json(acv_call *c, int status, json_t *body);
/* {"items":[...],"total":N,"limit":L,"offset":O}; items is stolen. */
int acv_call_page(acv_call *c, json_t *items, int64_t total, int limit, int offset);
int acv_call_error(acv_call *c, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* 204 No Content. */
int acv_call_no_content(acv_call *c);

/* The audit log entry for a change made by the caller outside a platform function (which
 * audit themselves). details is stolen. */
int acv_call_audit(acv_call *c, const char *action, const char *target_type, int64_t target_id, int64_t project_id,
                   json_t *details);

#endif
