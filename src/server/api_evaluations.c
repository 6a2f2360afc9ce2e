/* Evaluation routes: a model version evaluated on a dataset version's split (a job that
 * measures accuracy with `autocv eval` and speed with `autocv bench` on this server), the
 * reports, and versions compared side by side on the same test set.
 *
 * Models are global, dataset versions belong to projects: evaluating needs the global
 * engineer role and membership of the dataset version's project; reading a report needs
 * membership of its project (admins see everything). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autocv/error.h"
#include "platform/audit.h"
#include "platform/projects.h"
#include "platform/versions.h"
#include "server/api.h"
#include "server/jobs.h"

/* The caller's role in project_id (0: not a member); admins get every bit. */
static int member_role(acv_call *c, int64_t project_id, unsigned *role)
{
    *role = 0;
    if (c->admin) {
        *role = ACV_ROLES_PROJECT;
        return 0;
    }
    char *r = NULL;
    int rc = acv_db_query_text(c->db, &r, "SELECT role FROM project_members WHERE project_id = ? AND user_id = ?", "II",
                               project_id, c->user.user_id);
    if (!rc && r) *role = acv_role_bit(r, ACV_ROLES_PROJECT);
    free(r);
    return rc;
}

/* {v} of a route: a positive version number. */
static int version_param(acv_call *c, int64_t *v)
{
    const char *s = acv_call_param(c, "v");
    char *end;
    long long x = s ? strtoll(s, &end, 10) : 0;
    if (!s || *end || x < 1) return acv_error(ACV_ENOTFOUND, "model version '%s' not found (versions are 1, 2, ...)", s ? s : "");
    *v = x;
    return 0;
}

static int resolve(acv_call *c, const char *name, int64_t version, json_t **mv)
{
    int rc = acv_db_query_row(c->db, mv,
                              "SELECT mv.id, mv.version, mv.dir, mv.task, m.name FROM model_versions mv"
                              " JOIN models m ON m.id = mv.model_id WHERE m.name = ? AND mv.version = ?",
                              "sI", name, version);
    if (!rc && !*mv) rc = acv_error(ACV_ENOTFOUND, "model '%s' has no version %lld", name, (long long)version);
    return rc;
}

static int evaluation_create(acv_call *c)
{
    json_t *in;
    int rc = acv_call_body(c, &in);
    if (rc) return rc;
    const char *name = acv_call_param(c, "name");
    int64_t v = 0;
    if ((rc = version_param(c, &v))) return rc;
    json_t *dvj = json_object_get(in, "dataset_version_id");
    if (!json_is_integer(dvj)) return acv_error(ACV_EINVAL, "dataset_version_id: required (an integer)");
    int64_t dv = json_integer_value(dvj);
    const char *split = json_string_value(json_object_get(in, "split"));
    if (json_object_get(in, "split") && !split) return acv_error(ACV_EINVAL, "split: must be train, val or test");
    if (!split) split = "test";
    if (strcmp(split, "train") && strcmp(split, "val") && strcmp(split, "test"))
        return acv_error(ACV_EINVAL, "split: must be train, val or test (got '%s')", split);
    json_t *mv = NULL, *ver = NULL;
    if ((rc = resolve(c, name, v, &mv))) return rc;
    rc = acv_version_get(c->db, dv, &ver);
    unsigned role = 0;
    int64_t project = rc ? 0 : json_integer_value(json_object_get(ver, "project_id"));
    if (!rc) rc = member_role(c, project, &role);
    if (rc == ACV_ENOTFOUND || (!rc && !role))
        rc = acv_error(ACV_EINVAL, "dataset_version_id: dataset version %lld not found in your projects", (long long)dv);
    const char *vtask = rc ? NULL : json_string_value(json_object_get(ver, "task"));
    const char *mtask = json_string_value(json_object_get(mv, "task"));
    if (!rc && (!vtask || !mtask || strcmp(vtask, mtask)))
        rc = acv_error(ACV_EINVAL, "dataset_version_id: a %s dataset cannot evaluate a %s model", vtask ? vtask : "?",
                       mtask ? mtask : "?");
    json_int_t nsplit = rc ? 0 : json_integer_value(json_object_get(
                                     json_object_get(json_object_get(ver, "counts"), "images"), split));
    if (!rc && nsplit < 1)
        rc = acv_error(ACV_EINVAL, "split: dataset version %lld has no %s images", (long long)dv, split);
    /* every class of the test set must be one of the model's, matched by name in any order (a
     * model imported from outside lists its classes in its own output order; it may know more) */
    if (!rc) {
        json_t *mc = NULL;
        rc = acv_db_query_row(c->db, &mc, "SELECT classes_json FROM model_versions WHERE id = ?", "I",
                              (int64_t)json_integer_value(json_object_get(mv, "id")));
        json_t *classes = json_object_get(mc, "classes"), *labels = json_object_get(ver, "labels");
        for (size_t i = 0; !rc && json_array_size(classes) && i < json_array_size(labels); i++) {
            const char *name = json_string_value(json_object_get(json_array_get(labels, i), "name")) ?: "";
            bool found = false;
            for (size_t j = 0; !found && j < json_array_size(classes); j++)
                found = !strcmp(json_string_value(json_array_get(classes, j)) ?: "", name);
            if (!found)
                rc = acv_error(ACV_EINVAL, "dataset_version_id: the test set's class '%s' is not one of the model's "
                                           "%zu classes (classes are matched by name)",
                               name, json_array_size(classes));
        }
        json_decref(mc);
    }
    int64_t eid = 0, jid = 0;
    if (!rc) rc = acv_db_begin(c->db);
    if (!rc) {
        char now[ACV_DB_TIME_LEN];
        acv_db_time(acv_db_now(), now);
        rc = acv_db_exec(c->db,
                         "INSERT INTO evaluations(model_version_id, dataset_version_id, split, created_by, created_at)"
                         " VALUES (?, ?, ?, ?, ?)",
                         "IIsIs", (int64_t)json_integer_value(json_object_get(mv, "id")), dv, split, c->user.user_id, now);
        eid = acv_db_last_id(c->db);
        json_t *spec = json_pack("{s:I, s:O, s:O, s:s}", "evaluation_id", (json_int_t)eid, "model_version_id",
                                 json_object_get(mv, "id"), "model_dir", json_object_get(mv, "dir"), "split", split);
        json_t *params = json_pack("{s:s, s:I, s:s}", "model", name, "version", (json_int_t)v, "split", split);
        if (!rc) rc = acv_jobs_submit(acv_server_jobs(c->srv), c->db, &c->user, project, "evaluate", dv, name, params,
                                      spec, &jid);
        json_decref(spec);
        json_decref(params);
        if (!rc) rc = acv_db_exec(c->db, "UPDATE evaluations SET job_id = ? WHERE id = ?", "II", jid, eid);
        if (!rc) rc = acv_audit_write(c->db, &c->user, "evaluation.create", "evaluation", eid, project,
                                      json_pack("{s:s, s:I, s:I}", "model", name, "version", (json_int_t)v,
                                                "dataset_version_id", (json_int_t)dv));
        rc = acv_db_end(c->db, rc);
    }
    json_decref(mv);
    json_decref(ver);
    if (rc) return rc;
    json_t *out = NULL;
    rc = acv_db_query_row(c->db, &out, "SELECT * FROM evaluations WHERE id = ?", "I", eid);
    if (rc) return rc;
    char loc[64];
    snprintf(loc, sizeof loc, "/api/v1/evaluations/%lld", (long long)eid);
    acv_http_add_header(c->req, "Location", loc);
    return acv_call_json(c, 201, out);
}

#define EVAL_COLUMNS                                                                                             \
    "SELECT e.id, e.model_version_id, m.name AS model, mv.version, e.dataset_version_id, d.name AS dataset_version," \
    " d.project_id, e.split, e.job_id, e.status, e.report_json, e.error, e.created_by, e.created_at, e.finished_at"  \
    " FROM evaluations e JOIN model_versions mv ON mv.id = e.model_version_id JOIN models m ON m.id = mv.model_id"  \
    " LEFT JOIN dataset_versions d ON d.id = e.dataset_version_id"

static int evaluation_get(acv_call *c)
{
    int64_t id = acv_call_id(c, "id");
    json_t *out = NULL;
    int rc = acv_db_query_row(c->db, &out, EVAL_COLUMNS " WHERE e.id = ?", "I", id);
    unsigned role = 0;
    if (!rc && out) rc = member_role(c, json_integer_value(json_object_get(out, "project_id")), &role);
    if (!rc && (!out || !role)) rc = acv_error(ACV_ENOTFOUND, "evaluation %lld not found", (long long)id);
    if (rc) {
        json_decref(out);
        return rc;
    }
    return acv_call_json(c, 200, out);
}

/* GET /models/{name}/compare?versions=1,2,3&dataset_version_id=N[&split=test]: for each version
 * its latest finished evaluation on that set, side by side. */
static int compare(acv_call *c)
{
    const char *name = acv_call_param(c, "name");
    const char *vs = acv_call_query(c, "versions"), *dvs = acv_call_query(c, "dataset_version_id");
    const char *split = acv_call_query(c, "split");
    if (!split) split = "test";
    if (!vs) return acv_error(ACV_EFORMAT, "query parameter 'versions' is required (e.g. versions=1,2,3)");
    if (!dvs) return acv_error(ACV_EFORMAT, "query parameter 'dataset_version_id' is required");
    char *end;
    long long dv = strtoll(dvs, &end, 10);
    if (*end || dv < 1) return acv_error(ACV_EFORMAT, "query parameter 'dataset_version_id' must be a positive integer");
    int64_t project = 0;
    unsigned role = 0;
    int rc = acv_version_project(c->db, dv, &project);
    if (!rc) rc = member_role(c, project, &role);
    if (rc == ACV_ENOTFOUND || (!rc && !role))
        return acv_error(ACV_ENOTFOUND, "dataset version %lld not found in your projects", dv);
    if (rc) return rc;
    int64_t exists = 0;
    if ((rc = acv_db_query_int(c->db, &exists, 0, "SELECT count(*) FROM models WHERE name = ?", "s", name))) return rc;
    if (!exists) return acv_error(ACV_ENOTFOUND, "model '%s' not found", name);
    json_t *items = json_array();
    char buf[512];
    snprintf(buf, sizeof buf, "%s", vs);
    int n = 0;
    for (char *save, *t = strtok_r(buf, ",", &save); t && !rc; t = strtok_r(NULL, ",", &save)) {
        long long v = strtoll(t, &end, 10);
        if (*end || v < 1 || ++n > 20) {
            rc = acv_error(ACV_EFORMAT, "query parameter 'versions': '%s' is not a version number (at most 20)", t);
            break;
        }
        json_t *row = NULL, *mv = NULL;
        rc = resolve(c, name, v, &mv);
        if (!rc)
            rc = acv_db_query_row(c->db, &row,
                                  EVAL_COLUMNS " WHERE e.model_version_id = ? AND e.dataset_version_id = ? AND e.split = ?"
                                               " AND e.status = 'succeeded' ORDER BY e.id DESC LIMIT 1",
                                  "IIs", (int64_t)json_integer_value(json_object_get(mv, "id")), (int64_t)dv, split);
        if (!rc) {
            json_t *rep = json_object_get(row, "report");
            json_t *acc = json_object_get(rep, "accuracy"), *perf = json_object_get(rep, "performance");
            json_array_append_new(items,
                                  json_pack("{s:I, s:O, s:O, s:O, s:O, s:O, s:O, s:O, s:O, s:O}", "version",
                                            (json_int_t)v, "evaluation_id",
                                            row ? json_object_get(row, "id") : json_null(), "top1",
                                            json_object_get(acc, "top1") ?: json_null(), "macro_f1",
                                            json_object_get(acc, "macro_f1") ?: json_null(), "map50",
                                            json_object_get(acc, "map50") ?: json_null(), "latency_ms_p50",
                                            json_object_get(json_object_get(perf, "latency_ms"), "p50") ?: json_null(),
                                            "throughput_ips", json_object_get(perf, "throughput_ips") ?: json_null(),
                                            "params", json_object_get(perf, "params") ?: json_null(), "gflops",
                                            json_object_get(perf, "gflops") ?: json_null(), "report",
                                            row ? json_object_get(row, "report") : json_null()));
        }
        json_decref(row);
        json_decref(mv);
    }
    if (rc) {
        json_decref(items);
        return rc;
    }
    return acv_call_json(c, 200, json_pack("{s:s, s:I, s:s, s:o}", "model", name, "dataset_version_id", (json_int_t)dv,
                                           "split", split, "items", items));
}

static const acv_route_param COMPARE_Q[] = {
    {"versions", "string", "comma-separated version numbers (at most 20)"},
    {"dataset_version_id", "integer", "the test set"},
    {"split", "string", "train, val or test (default test)"},
    {NULL, NULL, NULL},
};

static const acv_route ROUTES[] = {
    {.method = "POST", .pattern = "/api/v1/models/{name}/versions/{v}/evaluations", .handler = evaluation_create,
     .perm = ACV_PERM_GLOBAL, .roles = ACV_ROLE_ENGINEER, .tag = "evaluations",
     .summary = "Evaluate a model version on a dataset version (a job)",
     .description = "{\"dataset_version_id\",\"split\" (default test)}: the caller must be a member of the dataset "
                    "version's project. The report holds the task's accuracy metrics (accuracy, per-class "
                    "precision/recall/F1, confusion matrix) and speed measured on this server (latency p50/p90/p99 "
                    "at batch 1, throughput at the best batch, peak memory, size, parameters, GFLOPs).",
     .body_types = "application/json", .status = 201, .resp_desc = "the queued evaluation (job_id names its job)"},
    {.method = "GET", .pattern = "/api/v1/evaluations/{id}", .handler = evaluation_get, .perm = ACV_PERM_USER,
     .tag = "evaluations", .summary = "Read an evaluation and its report",
     .description = "status follows its job; report is {\"accuracy\":{...},\"performance\":{...}} once succeeded.",
     .resp_desc = "the evaluation"},
    {.method = "GET", .pattern = "/api/v1/models/{name}/compare", .handler = compare, .perm = ACV_PERM_USER,
     .tag = "evaluations", .summary = "Compare versions of a model on the same test set", .query = COMPARE_Q,
     .resp_desc = "{\"items\":[{\"version\",\"evaluation_id\",\"top1\",\"macro_f1\",\"latency_ms_p50\","
                  "\"throughput_ips\",\"params\",\"gflops\",\"report\"}]} (null figures: not evaluated yet)"},
};

int acv_api_evaluations(acv_router *r, const acv_server_config *cfg)
{
    (void)cfg;
    return acv_router_add(r, ROUTES, (int)(sizeof ROUTES / sizeof ROUTES[0]));
}
