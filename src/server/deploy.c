/* Deployments: the inference pool (loaded versions, replicas, leases, version switches), the
 * deployments table, predict on an encoded image, and the KServe v2 metadata and inference
 * calls. See deploy.h for the model of concurrency. */
#include "server/deploy.h"

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "autocv/error.h"
#include "base/log.h"
#include "base/timeutil.h"
#include "nn/backend.h"
#include "onnx/import.h"
#include "platform/audit.h"
#include "platform/jsonarg.h"
#include "tasks/cls.h"
#include "tasks/det_task.h"
#include "vision/image.h"

#define NAME_MAX_LEN 100
#define V2_MAX_BATCH 256 /* samples in one KServe request */

/* One loaded model version, shared by the deployment that serves it and the requests running
 * on it; freed when the last of them lets go. */
typedef struct dver {
    int refs;               /* the deployment's + one per running request (pool mu) */
    int64_t mv_id, version;
    char *model;            /* the model's name */
    int in_c, in_h, in_w, n_classes;
    acv_model **rep;        /* nrep replicas, each compiled for inference at batch 1 */
    acv_det_runner *drun;   /* det: the replicas as detectors (each owns rep[i]) */
    bool det;
    int nrep;
    int threads;            /* compute threads of each replica (the deployment's, split among them) */
    int *idle, nidle;       /* stack of idle replica indices (mu) */
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* signalled when a replica becomes idle */
} dver;

/* A deployment in memory; its row in the database holds the rest. */
typedef struct dep {
    int64_t id;
    char name[NAME_MAX_LEN + 1];
    int refs;               /* the pool's list + one per running request or admin call (pool mu) */
    dver *ver;              /* the current version; NULL when it failed to load (pool mu) */
    pthread_mutex_t admin;  /* one PATCH or DELETE at a time */
    /* stats (pool mu) */
    int64_t requests, errors, ok;
    double ok_ms;
    int in_flight;
} dep;

struct acv_deploy_pool {
    acv_server *srv;
    pthread_mutex_t mu;     /* deps, refs, every dep's ver pointer and stats */
    pthread_cond_t idle;    /* signalled when in_flight drops to 0 */
    dep **deps;
    int ndeps, cap;
    int in_flight;          /* leases out */
};

/* ---- versions ------------------------------------------------------------------------------- */

static void ver_free(dver *v)
{
    if (!v) return;
    for (int i = 0; i < v->nrep; i++) {
        if (v->drun && v->drun[i].model) acv_det_runner_close(&v->drun[i]);
        else acv_model_free(v->rep[i]);
    }
    free(v->drun);
    free(v->rep);
    free(v->idle);
    free(v->model);
    pthread_mutex_destroy(&v->mu);
    pthread_cond_destroy(&v->cv);
    free(v);
}

static int max_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 256 ? 256 : (int)n;
}

/* Loads replica i of v from dir and runs it once, so that the first request does not pay for
 * the kernels' preparation. */
static int ver_load_replica(dver *v, int i, const char *dir, const char *what)
{
    acv_model *m;
    int rc = acv_model_load_any(dir, &m);
    if (rc) return acv_error_prefix(rc == ACV_ENOMEM ? rc : ACV_EINVAL, "%s cannot be loaded: ", what);
    v->rep[v->nrep++] = m;
    if (!strcmp(m->task, "det")) {
        /* a detector: the runner takes the model over and compiles it */
        if ((rc = acv_det_runner_open(dir, m, 1, &v->drun[i]))) {
            v->rep[--v->nrep] = NULL; /* freed by the runner */
            return acv_error_prefix(rc, "%s: ", what);
        }
        v->det = true;
        if (i == 0) {
            v->in_c = 3;
            v->in_h = v->drun[i].net.imgsz_h;
            v->in_w = v->drun[i].net.imgsz_w;
            v->n_classes = m->n_classes;
        }
        acv_image im;
        if ((rc = acv_image_alloc(&im, 32, 32, 3))) return rc;
        memset(im.data, 114, (size_t)32 * 32 * 3);
        acv_box b[4];
        int n;
        rc = acv_det_runner_detect(&v->drun[i], &im, b, 4, &n);
        acv_image_free(&im);
        return rc ? acv_error_prefix(rc, "%s: a first run failed: ", what) : 0;
    }
    if (strcmp(m->task, "cls"))
        return acv_error(ACV_EUNSUPPORTED, "%s is a '%s' model: deployments serve classification (cls) and detection "
                         "(det) models", what, m->task);
    acv_graph *g = m->graph;
    acv_id x = acv_graph_input(g), y = acv_graph_output(g);
    if ((rc = acv_graph_compile(g, NULL, 1, false))) return acv_error_prefix(rc, "%s: ", what);
    const acv_shape *xs = acv_graph_shape(g, x), *ys = acv_graph_shape(g, y);
    if (xs->ndim != 4 || xs->d[1] != m->in_c || acv_shape_numel(ys) != m->n_classes || m->n_classes < 1)
        return acv_error(ACV_EINVAL, "%s: the graph's input or output shape does not match model.json (%d classes)",
                         what, m->n_classes);
    if (i == 0) {
        v->in_c = (int)xs->d[1];
        v->in_h = (int)xs->d[2];
        v->in_w = (int)xs->d[3];
        v->n_classes = m->n_classes;
    }
    memset(acv_graph_data(g, x), 0, (size_t)acv_shape_numel(xs) * sizeof(float));
    if ((rc = acv_graph_forward(g, y, false, 0))) return acv_error_prefix(rc, "%s: a first run failed: ", what);
    return 0;
}

/* Loads model version mv_id (its directory rel_dir under the data folder) with nrep replicas;
 * *out has one reference. */
static int ver_load(acv_deploy_pool *p, int64_t mv_id, int64_t version, const char *model, const char *rel_dir,
                    const char *task, int nrep, dver **out)
{
    *out = NULL;
    dver *v = calloc(1, sizeof *v);
    char *dir = acv_server_path(p->srv, rel_dir);
    if (!v || !dir) {
        free(v);
        free(dir);
        return acv_error(ACV_ENOMEM, "out of memory");
    }
    pthread_mutex_init(&v->mu, NULL);
    pthread_cond_init(&v->cv, NULL);
    v->refs = 1;
    v->mv_id = mv_id;
    v->version = version;
    v->model = strdup(model);
    int total = acv_server_config_of(p->srv)->threads;
    if (total <= 0) total = max_threads();
    v->threads = total / nrep > 1 ? total / nrep : 1;
    v->rep = calloc((size_t)nrep, sizeof *v->rep);
    v->idle = calloc((size_t)nrep, sizeof *v->idle);
    v->drun = calloc((size_t)nrep, sizeof *v->drun);
    int rc = (!v->model || !v->rep || !v->idle || !v->drun) ? acv_error(ACV_ENOMEM, "out of memory") : 0;
    char what[300];
    snprintf(what, sizeof what, "model '%s' version %lld (%s)", model, (long long)version, rel_dir);
    double t0 = acv_now();
    acv_set_thread_threads(v->threads); /* the first runs prepare the kernels for this count */
    for (int i = 0; !rc && i < nrep; i++) rc = ver_load_replica(v, i, dir, what);
    acv_set_thread_threads(0);
    if (!rc && task && v->nrep && strcmp(task, v->rep[0]->task))
        rc = acv_error(ACV_EINVAL, "%s: the repository records a %s model, but its directory holds a %s model", what,
                       task, v->rep[0]->task);
    free(dir);
    if (rc) {
        ver_free(v);
        return rc;
    }
    for (int i = 0; i < nrep; i++) v->idle[v->nidle++] = i;
    acv_info("deploy: loaded %s with %d replica%s in %.0f ms", what, nrep, nrep > 1 ? "s" : "",
             (acv_now() - t0) * 1e3);
    *out = v;
    return 0;
}

/* Takes an idle replica of v, waiting while all are busy; the calling thread then computes
 * with the replica's share of the deployment's threads (the kernels were prepared for it). */
static int ver_take(dver *v)
{
    pthread_mutex_lock(&v->mu);
    while (v->nidle == 0) pthread_cond_wait(&v->cv, &v->mu);
    int i = v->idle[--v->nidle];
    pthread_mutex_unlock(&v->mu);
    acv_set_thread_threads(v->threads);
    return i;
}

static void ver_give(dver *v, int i)
{
    pthread_mutex_lock(&v->mu);
    v->idle[v->nidle++] = i;
    pthread_cond_signal(&v->cv);
    pthread_mutex_unlock(&v->mu);
}

/* ---- the pool ------------------------------------------------------------------------------- */

static void dep_free(dep *d)
{
    if (!d) return;
    pthread_mutex_destroy(&d->admin);
    free(d);
}

/* Drops a reference to d and to v (either may be NULL), freeing what nobody holds. Takes mu. */
static void pool_unref(acv_deploy_pool *p, dep *d, dver *v)
{
    bool free_v = false, free_d = false;
    pthread_mutex_lock(&p->mu);
    if (v) free_v = --v->refs == 0;
    if (d) free_d = --d->refs == 0;
    pthread_mutex_unlock(&p->mu);
    if (free_v) ver_free(v);
    if (free_d) dep_free(d);
}

/* Finds a deployment by id or (id 0) name; the caller holds mu. */
static dep *pool_find(acv_deploy_pool *p, int64_t id, const char *name)
{
    for (int i = 0; i < p->ndeps; i++)
        if (id ? p->deps[i]->id == id : name && !strcmp(p->deps[i]->name, name)) return p->deps[i];
    return NULL;
}

/* Adds d (with its one reference, the list's) to the pool. */
static int pool_add(acv_deploy_pool *p, dep *d)
{
    pthread_mutex_lock(&p->mu);
    if (p->ndeps == p->cap) {
        int cap = p->cap ? p->cap * 2 : 8;
        dep **nd = realloc(p->deps, (size_t)cap * sizeof *nd);
        if (!nd) {
            pthread_mutex_unlock(&p->mu);
            return acv_error(ACV_ENOMEM, "out of memory");
        }
        p->deps = nd;
        p->cap = cap;
    }
    p->deps[p->ndeps++] = d;
    pthread_mutex_unlock(&p->mu);
    return 0;
}

static dep *dep_new(int64_t id, const char *name, dver *v)
{
    dep *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    d->id = id;
    snprintf(d->name, sizeof d->name, "%s", name);
    d->refs = 1;
    d->ver = v;
    pthread_mutex_init(&d->admin, NULL);
    return d;
}

/* A lease: the deployment and its current version, held while a request runs. */
typedef struct lease {
    dep *d;
    dver *v;
} lease;

/* Leases deployment id (or, id 0, the one named name). ACV_ENOTFOUND, or ACV_ECANCELED for
 * one whose model is not loaded. */
static int lease_take(acv_deploy_pool *p, int64_t id, const char *name, lease *l)
{
    l->d = NULL;
    l->v = NULL;
    pthread_mutex_lock(&p->mu);
    dep *d = pool_find(p, id, name);
    int rc = 0;
    if (!d && (id || !name)) rc = acv_error(ACV_ENOTFOUND, "deployment %lld not found", (long long)id);
    else if (!d) rc = acv_error(ACV_ENOTFOUND, "model '%s' is not deployed (no deployment of that name)", name);
    else if (!d->ver)
        rc = acv_error(ACV_ECANCELED, "deployment '%s' has no model loaded (it failed to load; PATCH it with a version "
                                      "to load one)", d->name);
    else {
        l->d = d;
        l->v = d->ver;
        d->refs++;
        d->ver->refs++;
        d->in_flight++;
        p->in_flight++;
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

/* Ends a lease. count: count it as a request (ok_ms: its server time in ms; < 0: an error). */
static void lease_end(acv_deploy_pool *p, lease *l, bool count, double ok_ms)
{
    pthread_mutex_lock(&p->mu);
    if (count) {
        l->d->requests++;
        if (ok_ms >= 0) {
            l->d->ok++;
            l->d->ok_ms += ok_ms;
        } else {
            l->d->errors++;
        }
    }
    l->d->in_flight--;
    if (--p->in_flight == 0) pthread_cond_broadcast(&p->idle);
    bool free_v = --l->v->refs == 0, free_d = --l->d->refs == 0;
    pthread_mutex_unlock(&p->mu);
    if (free_v) ver_free(l->v);
    if (free_d) dep_free(l->d);
    l->d = NULL;
    l->v = NULL;
}

/* ---- the database ------------------------------------------------------------------------- */

#define DEP_SELECT                                                                                                     \
    "SELECT d.id, d.name, m.name AS model, mv.version, d.model_version_id, mv.task, d.threads, d.status, d.error, "  \
    "mv.classes_json, d.created_by, d.created_at, d.updated_at FROM deployments d "                                  \
    "JOIN model_versions mv ON mv.id = d.model_version_id JOIN models m ON m.id = mv.model_id"

#define VERSION_SELECT                                                                                                 \
    "SELECT mv.id, mv.version, mv.dir, mv.task, m.name AS model FROM model_versions mv "                             \
    "JOIN models m ON m.id = mv.model_id WHERE m.name = ? "

/* The version row of model `model` (version 0: the latest): id, version, dir, task, model;
 * ACV_ENOTFOUND naming what is missing, ACV_EUNSUPPORTED for a task deployments do not serve. */
static int resolve_version(acv_dbconn *c, const char *model, int64_t version, json_t **row)
{
    int rc = version ? acv_db_query_row(c, row, VERSION_SELECT "AND mv.version = ?", "sI", model, (int64_t)version)
                     : acv_db_query_row(c, row, VERSION_SELECT "ORDER BY mv.version DESC LIMIT 1", "s", model);
    if (rc) return rc;
    if (*row) {
        const char *task = json_string_value(json_object_get(*row, "task"));
        if (task && strcmp(task, "cls") && strcmp(task, "det")) {
            rc = acv_error(ACV_EUNSUPPORTED, "model '%s' version %lld is a '%s' model: deployments serve "
                                             "classification models (cls) only",
                           model, (long long)json_integer_value(json_object_get(*row, "version")), task);
            json_decref(*row);
            *row = NULL;
        }
        return rc;
    }
    int64_t mid = 0, latest = 0;
    rc = acv_db_query_int(c, &mid, 0, "SELECT id FROM models WHERE name = ?", "s", model);
    if (!rc && !mid) return acv_error(ACV_ENOTFOUND, "model '%s' not found", model);
    if (!rc)
        rc = acv_db_query_int(c, &latest, 0, "SELECT MAX(version) FROM model_versions WHERE model_id = ?", "I", mid);
    if (rc) return rc;
    if (!latest) return acv_error(ACV_ENOTFOUND, "model '%s' has no versions", model);
    return acv_error(ACV_ENOTFOUND, "model '%s' has no version %lld (the latest is %lld)", model, (long long)version,
                     (long long)latest);
}

static const char *jstr(const json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }
static int64_t jint(const json_t *o, const char *k) { return json_integer_value(json_object_get(o, k)); }

/* Adds what memory knows to a deployment row: stats, the loaded input size and classes. */
static void decorate(acv_deploy_pool *p, json_t *row)
{
    pthread_mutex_lock(&p->mu);
    dep *d = pool_find(p, jint(row, "id"), NULL);
    json_t *input = json_null();
    json_t *stats = json_pack("{s:I, s:I, s:f, s:i}", "requests", (json_int_t)(d ? d->requests : 0), "errors",
                              (json_int_t)(d ? d->errors : 0), "mean_ms", d && d->ok ? d->ok_ms / (double)d->ok : 0.0,
                              "in_flight", d ? d->in_flight : 0);
    if (d && d->ver) {
        dver *v = d->ver;
        json_decref(input);
        input = json_pack("{s:i, s:i, s:i}", "channels", v->in_c, "height", v->in_h, "width", v->in_w);
        json_t *cls = json_array();
        for (int i = 0; i < v->n_classes; i++) json_array_append_new(cls, json_string(v->rep[0]->classes[i]));
        json_object_set_new(row, "classes", cls);
    }
    pthread_mutex_unlock(&p->mu);
    json_object_set_new(row, "input", input);
    json_object_set_new(row, "stats", stats);
}

int acv_deploy_get(acv_deploy_pool *p, acv_dbconn *c, int64_t id, json_t **out)
{
    int rc = acv_db_query_row(c, out, DEP_SELECT " WHERE d.id = ?", "I", id);
    if (rc) return rc;
    if (!*out) return acv_error(ACV_ENOTFOUND, "deployment %lld not found", (long long)id);
    decorate(p, *out);
    return 0;
}

int acv_deploy_list(acv_deploy_pool *p, acv_dbconn *c, int limit, int offset, json_t **items, int64_t *total)
{
    int rc = acv_db_query_int(c, total, 0, "SELECT COUNT(*) FROM deployments", "");
    if (!rc) rc = acv_db_query(c, items, DEP_SELECT " ORDER BY d.id LIMIT ? OFFSET ?", "ii", limit, offset);
    if (rc) return rc;
    size_t i;
    json_t *row;
    json_array_foreach(*items, i, row) decorate(p, row);
    return 0;
}

/* ---- create, update, delete --------------------------------------------------------------- */

static int check_name(const char *name)
{
    size_t n = strlen(name);
    if (n < 1 || n > NAME_MAX_LEN)
        return acv_error(ACV_EINVAL, "field 'name': a deployment name has 1 to %d characters (got %zu)", NAME_MAX_LEN,
                         n);
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
              ch == '_' || ch == '-'))
            return acv_error(ACV_EINVAL, "field 'name': '%.100s' may hold only letters, digits, '.', '_' and '-'",
                             name);
    }
    return 0;
}


int acv_deploy_create(acv_deploy_pool *p, acv_dbconn *c, const acv_principal *who, const json_t *body, json_t **out)
{
    static const char *const FIELDS[] = {"model", "version", "name", "threads", NULL};
    const char *model = NULL, *name = NULL;
    int64_t version = 0, threads = 1;
    *out = NULL;
    int rc = acv_jarg_only(body, FIELDS);
    if (!rc) rc = acv_jarg_str(body, "model", true, 200, &model);
    if (!rc) rc = acv_jarg_int(body, "version", false, 1, INT32_MAX, &version, NULL);
    if (!rc) rc = acv_jarg_str(body, "name", false, 0, &name);
    if (!rc) rc = acv_jarg_int(body, "threads", false, 1, max_threads(), &threads, NULL);
    if (rc) return rc;
    if (!name) name = model;
    if ((rc = check_name(name))) {
        if (name == model) acv_error_prefix(rc, "the model's name is not a valid deployment name, give one: ");
        return rc;
    }
    int64_t taken = 0;
    if ((rc = acv_db_query_int(c, &taken, 0, "SELECT COUNT(*) FROM deployments WHERE name = ?", "s", name))) return rc;
    if (taken) return acv_error(ACV_EEXIST, "a deployment named '%s' exists already", name);
    json_t *mv = NULL;
    if ((rc = resolve_version(c, model, version, &mv))) return rc;
    dver *v = NULL;
    rc = ver_load(p, jint(mv, "id"), jint(mv, "version"), jstr(mv, "model"), jstr(mv, "dir"), jstr(mv, "task"),
                  (int)threads, &v);
    int64_t id = 0;
    if (!rc) rc = acv_db_begin(c);
    if (!rc) {
        char now[ACV_DB_TIME_LEN];
        acv_db_time(acv_db_now(), now);
        rc = acv_db_exec(c,
                         "INSERT INTO deployments(name, model_version_id, threads, status, created_by, created_at, "
                         "updated_at) VALUES (?, ?, ?, 'ready', ?, ?, ?)",
                         "sIiIss", name, jint(mv, "id"), (int)threads, who->user_id, now, now);
        if (rc == ACV_EEXIST) rc = acv_error(ACV_EEXIST, "a deployment named '%s' exists already", name);
        id = acv_db_last_id(c);
        if (!rc)
            rc = acv_audit_write(c, who, "create", "deployment", id, 0,
                                 json_pack("{s:s, s:s, s:I, s:I}", "name", name, "model", jstr(mv, "model"), "version",
                                           (json_int_t)jint(mv, "version"), "threads", (json_int_t)threads));
        rc = acv_db_end(c, rc);
    }
    json_decref(mv);
    dep *d = NULL;
    if (!rc && !(d = dep_new(id, name, v))) rc = acv_error(ACV_ENOMEM, "out of memory");
    if (!rc) rc = pool_add(p, d);
    if (rc) {
        /* the row (if any) stays consistent: a failed add after the commit is only ENOMEM */
        if (d) dep_free(d);
        ver_free(v);
        return rc;
    }
    return acv_deploy_get(p, c, id, out);
}

/* Takes a reference to deployment id for an admin call (the caller drops it). */
static int dep_ref(acv_deploy_pool *p, int64_t id, dep **out)
{
    pthread_mutex_lock(&p->mu);
    dep *d = pool_find(p, id, NULL);
    if (d) d->refs++;
    pthread_mutex_unlock(&p->mu);
    *out = d;
    return d ? 0 : acv_error(ACV_ENOTFOUND, "deployment %lld not found", (long long)id);
}

/* True while d is still in the pool (it may have been deleted while we waited). */
static bool dep_listed(acv_deploy_pool *p, dep *d)
{
    pthread_mutex_lock(&p->mu);
    bool listed = pool_find(p, d->id, NULL) == d;
    pthread_mutex_unlock(&p->mu);
    return listed;
}

int acv_deploy_update(acv_deploy_pool *p, acv_dbconn *c, const acv_principal *who, int64_t id, const json_t *body,
                      json_t **out)
{
    static const char *const FIELDS[] = {"version", "threads", NULL};
    int64_t version = 0, threads = 0;
    bool has_v = false, has_t = false;
    *out = NULL;
    int rc = acv_jarg_only(body, FIELDS);
    if (!rc) rc = acv_jarg_int(body, "version", false, 1, INT32_MAX, &version, &has_v);
    if (!rc) rc = acv_jarg_int(body, "threads", false, 1, max_threads(), &threads, &has_t);
    if (!rc && !has_v && !has_t) rc = acv_error(ACV_EFORMAT, "nothing to change: give 'version' and/or 'threads'");
    if (rc) return rc;
    dep *d;
    if ((rc = dep_ref(p, id, &d))) return rc;
    pthread_mutex_lock(&d->admin);
    json_t *cur = NULL, *mv = NULL;
    dver *v = NULL;
    if (!dep_listed(p, d)) rc = acv_error(ACV_ENOTFOUND, "deployment %lld not found", (long long)id);
    if (!rc) rc = acv_db_query_row(c, &cur, DEP_SELECT " WHERE d.id = ?", "I", id);
    if (!rc && !cur) rc = acv_error(ACV_ENOTFOUND, "deployment %lld not found", (long long)id);
    if (!rc) {
        if (!has_v) version = jint(cur, "version");
        if (!has_t) threads = jint(cur, "threads");
        rc = resolve_version(c, jstr(cur, "model"), version, &mv);
    }
    if (!rc)
        rc = ver_load(p, jint(mv, "id"), jint(mv, "version"), jstr(mv, "model"), jstr(mv, "dir"), jstr(mv, "task"),
                  (int)threads, &v);
    if (!rc) rc = acv_db_begin(c);
    if (!rc) {
        char now[ACV_DB_TIME_LEN];
        acv_db_time(acv_db_now(), now);
        rc = acv_db_exec(c,
                         "UPDATE deployments SET model_version_id = ?, threads = ?, status = 'ready', error = NULL, "
                         "updated_at = ? WHERE id = ?",
                         "IisI", jint(mv, "id"), (int)threads, now, id);
        if (!rc && acv_db_changes(c) == 0) rc = acv_error(ACV_ENOTFOUND, "deployment %lld not found", (long long)id);
        if (!rc)
            rc = acv_audit_write(c, who, "update", "deployment", id, 0,
                                 json_pack("{s:s, s:I, s:I, s:I}", "name", d->name, "from_version",
                                           (json_int_t)jint(cur, "version"), "version", (json_int_t)jint(mv, "version"),
                                           "threads", (json_int_t)threads));
        rc = acv_db_end(c, rc);
    }
    dver *old = NULL;
    if (!rc) { /* the switch: requests leased before keep the old version until they end */
        pthread_mutex_lock(&p->mu);
        old = d->ver;
        d->ver = v;
        pthread_mutex_unlock(&p->mu);
        acv_info("deploy: '%s' now serves %s version %lld", d->name, v->model, (long long)v->version);
    } else {
        ver_free(v);
    }
    json_decref(cur);
    json_decref(mv);
    pthread_mutex_unlock(&d->admin);
    pool_unref(p, d, old);
    return rc ? rc : acv_deploy_get(p, c, id, out);
}

int acv_deploy_delete(acv_deploy_pool *p, acv_dbconn *c, const acv_principal *who, int64_t id)
{
    dep *d;
    int rc = dep_ref(p, id, &d);
    if (rc) return rc;
    pthread_mutex_lock(&d->admin);
    if (!dep_listed(p, d)) rc = acv_error(ACV_ENOTFOUND, "deployment %lld not found", (long long)id);
    if (!rc) rc = acv_db_begin(c);
    if (!rc) {
        rc = acv_db_exec(c, "DELETE FROM deployments WHERE id = ?", "I", id);
        if (!rc && acv_db_changes(c) == 0) rc = acv_error(ACV_ENOTFOUND, "deployment %lld not found", (long long)id);
        if (!rc) rc = acv_audit_write(c, who, "delete", "deployment", id, 0, json_pack("{s:s}", "name", d->name));
        rc = acv_db_end(c, rc);
    }
    dver *old = NULL;
    bool listed = false;
    if (!rc) {
        pthread_mutex_lock(&p->mu);
        for (int i = 0; i < p->ndeps; i++)
            if (p->deps[i] == d) {
                p->deps[i] = p->deps[--p->ndeps];
                listed = true;
                break;
            }
        old = d->ver;
        d->ver = NULL;
        pthread_mutex_unlock(&p->mu);
    }
    pthread_mutex_unlock(&d->admin);
    if (listed) pool_unref(p, d, NULL); /* the list's reference */
    pool_unref(p, d, old);
    return rc;
}

/* ---- startup and shutdown ------------------------------------------------------------------ */

/* Loads one deployment row at startup, recording the outcome in the row. */
static int load_row(acv_deploy_pool *p, acv_dbconn *c, const json_t *row)
{
    int64_t id = jint(row, "id");
    dver *v = NULL;
    int rc = ver_load(p, jint(row, "mv_id"), jint(row, "version"), jstr(row, "model"), jstr(row, "dir"),
                      jstr(row, "task"), (int)jint(row, "threads"), &v);
    if (rc == ACV_ENOMEM) return rc;
    char now[ACV_DB_TIME_LEN];
    acv_db_time(acv_db_now(), now);
    if (rc) {
        acv_warn("deploy: deployment '%s' failed to load: %s", jstr(row, "name"), acv_errmsg());
        rc = acv_db_exec(c, "UPDATE deployments SET status = 'failed', error = ?, updated_at = ? WHERE id = ?", "ssI",
                         acv_errmsg(), now, id);
    } else if (strcmp(jstr(row, "status"), "ready") || json_is_string(json_object_get(row, "error"))) {
        rc = acv_db_exec(c, "UPDATE deployments SET status = 'ready', error = NULL, updated_at = ? WHERE id = ?", "sI",
                         now, id);
    }
    dep *d = rc ? NULL : dep_new(id, jstr(row, "name"), v);
    if (!rc && !d) rc = acv_error(ACV_ENOMEM, "out of memory");
    if (!rc) rc = pool_add(p, d);
    if (rc) {
        if (d) dep_free(d);
        ver_free(v);
    }
    return rc;
}

int acv_deploy_pool_new(acv_server *s, acv_deploy_pool **out)
{
    *out = NULL;
    acv_deploy_pool *p = calloc(1, sizeof *p);
    if (!p) return acv_error(ACV_ENOMEM, "out of memory");
    p->srv = s;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->idle, NULL);
    acv_dbconn *c;
    int rc = acv_db_acquire(acv_server_db(s), &c);
    json_t *rows = NULL;
    if (!rc) {
        rc = acv_db_query(c, &rows,
                          "SELECT d.id, d.name, d.threads, d.status, d.error, mv.id AS mv_id, mv.version, mv.dir, mv.task, "
                          "m.name AS model FROM deployments d JOIN model_versions mv ON mv.id = d.model_version_id "
                          "JOIN models m ON m.id = mv.model_id ORDER BY d.id",
                          "");
        size_t i;
        json_t *row;
        json_array_foreach(rows, i, row) if (!rc) rc = load_row(p, c, row);
        json_decref(rows);
        acv_db_release(c);
    }
    if (rc) {
        acv_deploy_pool_free(p);
        return rc;
    }
    *out = p;
    return 0;
}

void acv_deploy_pool_free(acv_deploy_pool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    while (p->in_flight > 0) pthread_cond_wait(&p->idle, &p->mu);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->ndeps; i++) {
        dep *d = p->deps[i];
        dver *v = d->ver;
        d->ver = NULL;
        if (v && --v->refs == 0) ver_free(v);
        if (--d->refs == 0) dep_free(d);
    }
    free(p->deps);
    pthread_cond_destroy(&p->idle);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

/* ---- predict ------------------------------------------------------------------------------- */

int acv_deploy_predict(acv_deploy_pool *p, int64_t id, const uint8_t *img, size_t len, int topk, double t_start,
                       json_t **out)
{
    *out = NULL;
    lease l;
    int rc = lease_take(p, id, NULL, &l);
    if (rc) return rc;
    dver *v = l.v;
    double t0 = acv_now();
    acv_image im = {0};
    rc = acv_image_decode(img, len, NULL, "the image", &im);
    double t_dec = acv_now() - t0;
    if (!rc && v->det) {
        /* a detector: boxes in the image's pixels, and counts per class */
        acv_box *boxes = malloc(300 * sizeof *boxes);
        int n = 0, r = -1;
        double t1 = acv_now();
        if (!boxes) rc = acv_error(ACV_ENOMEM, "out of memory");
        if (!rc) {
            r = ver_take(v);
            rc = acv_det_runner_detect(&v->drun[r], &im, boxes, 300, &n);
        }
        if (!rc) {
            json_t *res = acv_det_result_json(&v->drun[r], boxes, n);
            double total = (acv_now() - t_start) * 1e3;
            *out = json_pack("{s:s, s:I, s:s, s:I, s:s, s:{s:i, s:i}, s:{s:f, s:f, s:f}}", "deployment", l.d->name,
                             "deployment_id", (json_int_t)l.d->id, "model", v->model, "version",
                             (json_int_t)v->version, "task", "det", "image", "width", im.w, "height", im.h, "time_ms",
                             "decode", t_dec * 1e3, "inference", (acv_now() - t1) * 1e3, "total", total);
            if (*out && res) json_object_update(*out, res);
            json_decref(res);
            if (!*out) rc = acv_error(ACV_ENOMEM, "out of memory building the prediction");
        }
        if (r >= 0) ver_give(v, r);
        free(boxes);
        acv_image_free(&im);
        lease_end(p, &l, true, rc ? -1.0 : (acv_now() - t_start) * 1e3);
        return rc;
    }
    int k = v->n_classes;
    if (topk > k) topk = k;
    float *prob = malloc((size_t)k * sizeof *prob);
    int *order = malloc((size_t)k * sizeof *order);
    if (!rc && (!prob || !order)) rc = acv_error(ACV_ENOMEM, "out of memory");
    double ms[2] = {0, 0};
    acv_model *m = NULL;
    if (!rc) {
        int r = ver_take(v);
        m = v->rep[r];
        rc = acv_cls_predict(m, &im, topk, prob, order, ms);
        ver_give(v, r);
    }
    if (!rc) {
        json_t *preds = json_array();
        for (int a = 0; a < topk; a++)
            json_array_append_new(preds, json_pack("{s:s, s:i, s:f}", "label", m->classes[order[a]], "index", order[a],
                                                   "score", (double)prob[order[a]]));
        double total = (acv_now() - t_start) * 1e3;
        *out = json_pack("{s:s, s:I, s:s, s:I, s:s, s:o, s:s, s:f, s:{s:i, s:i}, s:{s:f, s:f, s:f, s:f}}", "deployment",
                         l.d->name, "deployment_id", (json_int_t)l.d->id, "model", v->model, "version",
                         (json_int_t)v->version, "task", "cls", "predictions", preds, "label", m->classes[order[0]],
                         "score", (double)prob[order[0]], "image", "width", im.w, "height", im.h, "time_ms", "decode",
                         t_dec * 1e3, "preprocess", ms[0], "inference", ms[1], "total", total);
        if (!*out) rc = acv_error(ACV_ENOMEM, "out of memory building the prediction");
    }
    acv_image_free(&im);
    free(prob);
    free(order);
    lease_end(p, &l, true, rc ? -1.0 : (acv_now() - t_start) * 1e3);
    return rc;
}

/* ---- KServe v2 ----------------------------------------------------------------------------- */

/* Leases the deployment named name and checks that it serves version (NULL: any). */
static int v2_lease(acv_deploy_pool *p, const char *name, const char *version, lease *l)
{
    int rc = lease_take(p, 0, name, l);
    if (rc || !version) return rc;
    char want[32];
    snprintf(want, sizeof want, "%lld", (long long)l->v->version);
    if (strcmp(version, want)) {
        rc = acv_error(ACV_ENOTFOUND, "model '%s' has no version '%.40s' deployed (it serves version %s)", name,
                       version, want);
        lease_end(p, l, false, 0);
    }
    return rc;
}

static json_t *tensor_meta(const char *name, json_t *shape) /* shape stolen */
{
    return json_pack("{s:s, s:s, s:o}", "name", name, "datatype", "FP32", "shape", shape);
}

int acv_deploy_v2_metadata(acv_deploy_pool *p, const char *name, const char *version, json_t **out)
{
    lease l;
    int rc = v2_lease(p, name, version, &l);
    if (rc) return rc;
    dver *v = l.v;
    char ver[32];
    snprintf(ver, sizeof ver, "%lld", (long long)v->version);
    if (v->det)
        *out = json_pack("{s:s, s:[s], s:s, s:[o], s:[o]}", "name", l.d->name, "versions", ver, "platform", "autocv",
                         "inputs", tensor_meta("input", json_pack("[i, i, i, i]", -1, v->in_c, v->in_h, v->in_w)),
                         "outputs", tensor_meta("output", json_pack("[i, i, i]", -1, 64 + v->n_classes,
                                                                    v->drun[0].net.n_anchors)));
    else
        *out = json_pack("{s:s, s:[s], s:s, s:[o], s:[o, o]}", "name", l.d->name, "versions", ver, "platform", "autocv",
                         "inputs", tensor_meta("input", json_pack("[i, i, i, i]", -1, v->in_c, v->in_h, v->in_w)),
                         "outputs", tensor_meta("probabilities", json_pack("[i, i]", -1, v->n_classes)),
                         tensor_meta("logits", json_pack("[i, i]", -1, v->n_classes)));
    lease_end(p, &l, false, 0);
    return *out ? 0 : acv_error(ACV_ENOMEM, "out of memory");
}

int acv_deploy_v2_ready(acv_deploy_pool *p, const char *name, const char *version, bool *ready)
{
    lease l;
    int rc = v2_lease(p, name, version, &l);
    *ready = rc == 0;
    if (rc == ACV_ECANCELED) return 0; /* it exists, without a model */
    if (rc) return rc;
    lease_end(p, &l, false, 0);
    return 0;
}

/* Appends the numbers of a flat or nested array to x (n of cap filled); ACV_EFORMAT naming
 * the field for anything else, ACV_ERANGE when there are more than cap. */
static int flatten(const json_t *a, float *x, int64_t cap, int64_t *n, int depth)
{
    if (depth > 8) return acv_error(ACV_EFORMAT, "field 'inputs[0].data' is nested too deeply");
    size_t i;
    const json_t *e;
    json_array_foreach(a, i, e)
    {
        if (json_is_array(e)) {
            int rc = flatten(e, x, cap, n, depth + 1);
            if (rc) return rc;
        } else if (json_is_number(e)) {
            if (*n >= cap) return acv_error(ACV_ERANGE, "field 'inputs[0].data' holds more values than its shape");
            double d = json_number_value(e);
            if (!isfinite(d)) return acv_error(ACV_EFORMAT, "field 'inputs[0].data' holds a value that is not finite");
            x[(*n)++] = (float)d;
        } else {
            return acv_error(ACV_EFORMAT, "field 'inputs[0].data' must hold only numbers (FP32)");
        }
    }
    return 0;
}

/* Checks the request against the model and reads the input tensor: *x (n * C*H*W floats,
 * malloc'd), which outputs were asked for. */
static int v2_parse(const json_t *req, const dver *v, float **x, int *n, bool *want_prob, bool *want_logits)
{
    *x = NULL;
    const json_t *inputs = json_object_get(req, "inputs");
    if (!json_is_array(inputs) || json_array_size(inputs) != 1)
        return acv_error(ACV_EFORMAT, "field 'inputs' must be an array of one tensor (the model takes one input)");
    const json_t *in = json_array_get(inputs, 0);
    if (!json_is_object(in)) return acv_error(ACV_EFORMAT, "field 'inputs[0]' must be an object");
    const char *name = json_string_value(json_object_get(in, "name"));
    if (!name || strcmp(name, "input"))
        return acv_error(ACV_EFORMAT, "field 'inputs[0].name' must be \"input\" (the model's input)");
    const char *dt = json_string_value(json_object_get(in, "datatype"));
    if (!dt || strcmp(dt, "FP32"))
        return acv_error(ACV_EFORMAT, "field 'inputs[0].datatype' must be \"FP32\" (got %s%.20s%s)", dt ? "\"" : "",
                         dt ? dt : "nothing", dt ? "\"" : "");
    const json_t *shape = json_object_get(in, "shape");
    int64_t want[4] = {0, v->in_c, v->in_h, v->in_w}, got[4];
    bool ok = json_is_array(shape) && json_array_size(shape) == 4;
    for (int i = 0; ok && i < 4; i++) {
        const json_t *d = json_array_get(shape, (size_t)i);
        got[i] = json_is_integer(d) ? json_integer_value(d) : -1;
        ok = i == 0 ? got[0] >= 1 && got[0] <= V2_MAX_BATCH : got[i] == want[i];
    }
    if (!ok)
        return acv_error(ACV_EFORMAT, "field 'inputs[0].shape' must be [N, %d, %d, %d] with N in 1..%d (the model's "
                                      "preprocessed input, NCHW)",
                         v->in_c, v->in_h, v->in_w, V2_MAX_BATCH);
    const json_t *data = json_object_get(in, "data");
    if (!json_is_array(data)) return acv_error(ACV_EFORMAT, "field 'inputs[0].data' must be an array of numbers");
    int64_t per = (int64_t)v->in_c * v->in_h * v->in_w, need = got[0] * per, have = 0;
    float *buf = malloc((size_t)need * sizeof *buf);
    if (!buf) return acv_error(ACV_ENOMEM, "out of memory");
    int rc = flatten(data, buf, need, &have, 0);
    if (rc == ACV_ERANGE || (!rc && have != need))
        rc = acv_error(ACV_EFORMAT, "field 'inputs[0].data' holds %s values but its shape needs %lld",
                       rc ? "more" : "fewer", (long long)need);
    const json_t *outputs = json_object_get(req, "outputs");
    *want_prob = *want_logits = !outputs || !json_array_size(outputs);
    if (!rc && outputs && !json_is_array(outputs)) rc = acv_error(ACV_EFORMAT, "field 'outputs' must be an array");
    size_t i;
    const json_t *o;
    if (!rc) json_array_foreach(outputs, i, o)
    {
        const char *on = json_string_value(json_object_get(o, "name"));
        if (on && !strcmp(on, "probabilities")) *want_prob = true;
        else if (on && !strcmp(on, "logits")) *want_logits = true;
        else {
            rc = acv_error(ACV_EFORMAT, "field 'outputs[%zu].name' must be \"probabilities\" or \"logits\"", i);
            break;
        }
    }
    if (rc) {
        free(buf);
        return rc;
    }
    *x = buf;
    *n = (int)got[0];
    return 0;
}

static json_t *out_tensor(const char *name, const float *data, int n, int k)
{
    json_t *a = json_array();
    for (int64_t i = 0; i < (int64_t)n * k; i++) json_array_append_new(a, json_real((double)data[i]));
    return json_pack("{s:s, s:s, s:[i, i], s:o}", "name", name, "datatype", "FP32", "shape", n, k, "data", a);
}

int acv_deploy_v2_infer(acv_deploy_pool *p, const char *name, const char *version, const json_t *req, json_t **out)
{
    *out = NULL;
    double t0 = acv_now();
    lease l;
    int rc = v2_lease(p, name, version, &l);
    if (rc) return rc;
    dver *v = l.v;
    if (v->det) {
        lease_end(p, &l, false, 0);
        return acv_error(ACV_EUNSUPPORTED, "'%s' is a detector: KServe v2 infer serves classification deployments; "
                                           "use POST /api/v1/deployments/{id}/predict for boxes and counts", name);
    }
    float *x = NULL;
    int n = 0, k = v->n_classes;
    bool want_prob = false, want_logits = false;
    rc = v2_parse(req, v, &x, &n, &want_prob, &want_logits);
    float *logits = NULL, *prob = NULL;
    if (!rc) {
        logits = malloc((size_t)n * (size_t)k * sizeof *logits);
        prob = malloc((size_t)n * (size_t)k * sizeof *prob);
        if (!logits || !prob) rc = acv_error(ACV_ENOMEM, "out of memory");
    }
    if (!rc) {
        int r = ver_take(v);
        acv_graph *g = v->rep[r]->graph;
        acv_id xi = acv_graph_input(g), yi = acv_graph_output(g);
        size_t per = (size_t)v->in_c * v->in_h * v->in_w;
        rc = acv_graph_set_batch(g, 1);
        for (int i = 0; !rc && i < n; i++) {
            memcpy(acv_graph_data(g, xi), x + i * per, per * sizeof(float));
            rc = acv_graph_forward(g, yi, false, 0);
            if (!rc) memcpy(logits + (size_t)i * k, acv_graph_data(g, yi), (size_t)k * sizeof(float));
        }
        ver_give(v, r);
    }
    if (!rc) {
        for (int i = 0; i < n; i++) acv_cls_softmax_topk(logits + (size_t)i * k, k, prob + (size_t)i * k, NULL, 0);
        char ver[32];
        snprintf(ver, sizeof ver, "%lld", (long long)v->version);
        json_t *outs = json_array();
        if (want_prob) json_array_append_new(outs, out_tensor("probabilities", prob, n, k));
        if (want_logits) json_array_append_new(outs, out_tensor("logits", logits, n, k));
        *out = json_pack("{s:s, s:s, s:o}", "model_name", l.d->name, "model_version", ver, "outputs", outs);
        const json_t *rid = json_object_get(req, "id");
        if (*out && json_is_string(rid)) json_object_set(*out, "id", (json_t *)rid);
        if (!*out) rc = acv_error(ACV_ENOMEM, "out of memory building the response");
    }
    free(x);
    free(logits);
    free(prob);
    lease_end(p, &l, true, rc ? -1.0 : (acv_now() - t0) * 1e3);
    return rc;
}
