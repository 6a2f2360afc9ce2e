/* Job routes: training algorithms (built-in and custom networks), training jobs, job status,
 * live events (server-sent events, replayable), logs and cancellation; pre-annotation of an
 * annotation set with a model version. The scheduler is server/jobs.h. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "autocv/error.h"
#include "autocv/model.h"
#include "base/file.h"
#include "base/log.h"
#include "base/timeutil.h"
#include "onnx/import.h"
#include "platform/annotation_doc.h"
#include "platform/annotations.h"
#include "platform/audit.h"
#include "platform/versions.h"
#include "server/algorithms.h"
#include "server/api.h"
#include "server/jobs.h"
#include "tasks/det.h"

#define MANAGERS (ACV_ROLE_OWNER | ACV_ROLE_ENGINEER)

static int job_project(acv_call *c, int64_t *project_id)
{
    return acv_jobs_project(c->db, acv_call_id(c, "id"), project_id);
}

static int algorithm_project(acv_call *c, int64_t *project_id)
{
    int rc = acv_db_query_int(c->db, project_id, -1, "SELECT project_id FROM custom_algorithms WHERE id = ?", "I",
                              acv_call_id(c, "id"));
    if (!rc && *project_id < 0) rc = acv_error(ACV_ENOTFOUND, "algorithm %lld not found", (long long)acv_call_id(c, "id"));
    return rc;
}

static int set_project(acv_call *c, int64_t *project_id)
{
    return acv_annset_project(c->db, acv_call_id(c, "id"), project_id);
}

/* 201 with the new job and its Location. */
static int reply_created_job(acv_call *c, int64_t id)
{
    json_t *out = NULL;
    int rc = acv_jobs_get(c->db, id, &out);
    if (rc) return rc;
    char loc[64];
    snprintf(loc, sizeof loc, "/api/v1/jobs/%lld", (long long)id);
    acv_http_add_header(c->req, "Location", loc);
    return acv_call_json(c, 201, out);
}

/* ---- algorithms ---------------------------------------------------------------------------- */

static int custom_list(acv_call *c, int64_t project_id, json_t **out)
{
    int rc = acv_db_query(c->db, out,
                          "SELECT a.id, a.project_id, a.name, a.task, a.description, a.info_json, a.created_at,"
                          " u.username AS creator FROM custom_algorithms a LEFT JOIN users u ON u.id = a.created_by"
                          " WHERE a.project_id = ? ORDER BY a.name",
                          "I", project_id);
    size_t i;
    json_t *a;
    if (!rc) json_array_foreach(*out, i, a) {
            json_object_set_new(a, "builtin", json_false());
            json_object_set_new(a, "params", acv_algorithms_params(json_string_value(json_object_get(a, "task")), true));
        }
    return rc;
}

static int algorithms_list(acv_call *c)
{
    const char *task = acv_call_query(c, "task");
    if (task && strcmp(task, "cls") && strcmp(task, "det") && strcmp(task, "seg") && strcmp(task, "ocr"))
        return acv_error(ACV_EFORMAT, "query parameter 'task': unknown task '%s' (cls, det, seg, ocr)", task);
    json_t *items = acv_algorithms_builtin(task);
    if (c->project_id > 0) {
        json_t *custom = NULL;
        int rc = custom_list(c, c->project_id, &custom);
        if (rc) {
            json_decref(items);
            return rc;
        }
        size_t i;
        json_t *a;
        json_array_foreach(custom, i, a)
            if (!task || !strcmp(task, json_string_value(json_object_get(a, "task")) ?: "")) json_array_append(items, a);
        /* detectors can take their backbone from one of the project's custom classifiers */
        json_t *names = json_array(), *extra = NULL;
        json_array_foreach(custom, i, a)
            if (!strcmp(json_string_value(json_object_get(a, "task")) ?: "", "cls"))
                json_array_append(names, json_object_get(a, "name"));
        if (json_array_size(names)) { /* backbone (its choices: those classifiers) and freeze_backbone */
            extra = json_pack("[{s:s, s:s, s:s, s:s, s:O}]", "name", "backbone", "type", "string", "default", "none",
                              "description", "take the backbone from this custom network of the project (an image "
                              "classifier) instead of the detector's own", "choices", names);
            json_t *all = acv_algorithms_params("det", true), *q;
            size_t k;
            json_array_foreach(all, k, q)
                if (!strcmp(json_string_value(json_object_get(q, "name")), "freeze_backbone")) json_array_append(extra, q);
            json_decref(all);
        }
        json_array_foreach(items, i, a) {
            json_t *ps = json_object_get(a, "params");
            if (extra && json_is_array(ps) && !strcmp(json_string_value(json_object_get(a, "task")) ?: "", "det"))
                json_array_extend(ps, extra);
        }
        json_decref(extra);
        json_decref(names);
        json_decref(custom);
    }
    return acv_call_json(c, 200, json_pack("{s:o}", "items", items));
}

static bool name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n < 1 || n > 100) return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        bool alnum = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
        if (!alnum && (i == 0 || (ch != '-' && ch != '_' && ch != '.'))) return false;
    }
    return true;
}

/* POST /projects/{id}/algorithms: multipart with an ONNX `file`, `name`, `description`. The
 * network is imported once to check it (named error otherwise) and kept as DATA/algorithms/<id>.onnx. */
static int algorithm_create(acv_call *c)
{
    const acv_http_file *f = NULL;
    for (int i = 0; i < acv_http_nfiles(c->req); i++)
        if (!strcmp(acv_http_file_at(c->req, i)->field, "file")) f = acv_http_file_at(c->req, i);
    if (!f) return acv_error(ACV_EFORMAT, "send the network as a multipart/form-data part named 'file' (an .onnx file)");
    const char *name = acv_http_field(c->req, "name");
    const char *desc = acv_http_field(c->req, "description");
    const char *task = acv_http_field(c->req, "task");
    if (!task) task = "cls";
    if (strcmp(task, "cls")) return acv_error(ACV_EINVAL, "task: custom networks are supported for cls (got '%s')", task);
    if (!name_ok(name))
        return acv_error(ACV_EINVAL, "name: 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit");
    if (acv_algorithms_is_builtin(task, name)) return acv_error(ACV_EEXIST, "name: '%s' is a built-in algorithm", name);
    acv_model *m = NULL;
    int rc = acv_onnx_import(f->path, NULL, &m);
    if (rc) return acv_error(ACV_EINVAL, "file: the network cannot be imported: %s", acv_errmsg());
    json_t *info = json_pack("{s:I, s:f, s:[i, i, i], s:i, s:s}", "params", (json_int_t)acv_graph_num_params(m->graph),
                             "gflops", acv_graph_gflops(m->graph), "input", m->in_c, m->in_h, m->in_w, "classes",
                             m->n_classes, "filename", f->filename);
    acv_model_free(m);
    char now[ACV_DB_TIME_LEN];
    acv_db_time(acv_db_now(), now);
    int64_t id = 0;
    char *dir = acv_server_path(c->srv, "algorithms"), *dst = NULL;
    rc = dir ? acv_mkdirs(dir) : acv_error(ACV_ENOMEM, "out of memory");
    if (!rc) rc = acv_db_begin(c->db);
    if (!rc) {
        rc = acv_db_exec(c->db,
                         "INSERT INTO custom_algorithms(project_id, name, task, description, path, info_json,"
                         " created_by, created_at) VALUES (?, ?, ?, ?, '', ?, ?, ?)",
                         "Isssjis", c->project_id, name, task, desc ? desc : "", info, (int)c->user.user_id, now);
        if (rc == ACV_EEXIST || (rc && strstr(acv_errmsg(), "UNIQUE")))
            rc = acv_error(ACV_EEXIST, "name: the project already has an algorithm named '%s'", name);
        if (!rc) {
            id = acv_db_last_id(c->db);
            char rel[64];
            snprintf(rel, sizeof rel, "algorithms/%lld.onnx", (long long)id);
            rc = acv_db_exec(c->db, "UPDATE custom_algorithms SET path = ? WHERE id = ?", "sI", rel, id);
            if (!rc && !(dst = acv_server_path(c->srv, rel))) rc = acv_error(ACV_ENOMEM, "out of memory");
        }
        if (!rc) {
            char *tmp = acv_http_take_file(c->req, f);
            if (!tmp || rename(tmp, dst)) rc = acv_error(ACV_EIO, "%s: cannot store the network: %s", dst, strerror(errno));
            if (rc && tmp) unlink(tmp);
            free(tmp);
        }
        if (!rc) rc = acv_audit_write(c->db, &c->user, "algorithm.create", "algorithm", id, c->project_id,
                                      json_pack("{s:s}", "name", name));
        rc = acv_db_end(c->db, rc);
        if (rc && dst) unlink(dst);
    }
    free(dir);
    free(dst);
    json_decref(info);
    if (rc) return rc;
    json_t *items = NULL;
    rc = custom_list(c, c->project_id, &items);
    if (rc) return rc;
    json_t *out = NULL;
    size_t i;
    json_t *a;
    json_array_foreach(items, i, a)
        if (json_integer_value(json_object_get(a, "id")) == id) out = json_incref(a);
    json_decref(items);
    char loc[64];
    snprintf(loc, sizeof loc, "/api/v1/algorithms/%lld", (long long)id);
    acv_http_add_header(c->req, "Location", loc);
    return acv_call_json(c, 201, out);
}

static int algorithm_delete(acv_call *c)
{
    int64_t id = acv_call_id(c, "id");
    char *rel = NULL;
    int rc = acv_db_query_text(c->db, &rel, "SELECT path FROM custom_algorithms WHERE id = ?", "I", id);
    if (!rc && !rel) rc = acv_error(ACV_ENOTFOUND, "algorithm %lld not found", (long long)id);
    if (!rc) rc = acv_db_begin(c->db);
    if (!rc) {
        rc = acv_db_exec(c->db, "DELETE FROM custom_algorithms WHERE id = ?", "I", id);
        if (!rc) rc = acv_audit_write(c->db, &c->user, "algorithm.delete", "algorithm", id, c->project_id, NULL);
        rc = acv_db_end(c->db, rc);
    }
    if (!rc) {
        char *p = acv_server_path(c->srv, rel);
        if (p) unlink(p);
        free(p);
    }
    free(rel);
    return rc ? rc : acv_call_no_content(c);
}

/* ---- training jobs ------------------------------------------------------------------------- */

static int training_create(acv_call *c)
{
    json_t *in;
    int rc = acv_call_body(c, &in);
    if (rc) return rc;
    json_t *dvj = json_object_get(in, "dataset_version_id");
    if (!json_is_integer(dvj)) return acv_error(ACV_EINVAL, "dataset_version_id: required (an integer)");
    int64_t dv = json_integer_value(dvj);
    const char *algorithm = "auto";
    json_t *aj = json_object_get(in, "algorithm");
    if (aj && !json_is_null(aj)) {
        if (!json_is_string(aj)) return acv_error(ACV_EINVAL, "algorithm: must be a string");
        algorithm = json_string_value(aj);
    }
    json_t *params = json_object_get(in, "params");
    if (params && !json_is_null(params) && !json_is_object(params))
        return acv_error(ACV_EINVAL, "params: must be an object");
    const char *key;
    json_t *v;
    json_object_foreach(in, key, v)
        if (strcmp(key, "dataset_version_id") && strcmp(key, "algorithm") && strcmp(key, "params"))
            return acv_error(ACV_EINVAL, "%s: unknown field (dataset_version_id, algorithm, params)", key);
    /* the dataset version: of this project, a task we can train, with training images */
    json_t *ver = NULL;
    rc = acv_version_get(c->db, dv, &ver);
    if (rc == ACV_ENOTFOUND || (!rc && json_integer_value(json_object_get(ver, "project_id")) != c->project_id)) {
        json_decref(ver);
        return acv_error(ACV_EINVAL, "dataset_version_id: dataset version %lld is not in this project", (long long)dv);
    }
    if (rc) return rc;
    const char *task = json_string_value(json_object_get(ver, "task"));
    json_int_t ntrain = json_integer_value(
        json_object_get(json_object_get(json_object_get(ver, "counts"), "images"), "train"));
    char task_s[16];
    snprintf(task_s, sizeof task_s, "%s", task ? task : "");
    size_t nlabels = json_array_size(json_object_get(ver, "labels"));
    json_decref(ver);
    if (strcmp(task_s, "cls") && strcmp(task_s, "det"))
        return acv_error(ACV_EINVAL, "dataset_version_id: training a '%s' dataset is not supported yet (cls, det)", task_s);
    if (ntrain < 1) return acv_error(ACV_EINVAL, "dataset_version_id: the version has no training images");
    if (!strcmp(task_s, "cls") && nlabels < 2)
        return acv_error(ACV_EINVAL, "dataset_version_id: classification needs at least 2 classes");
    if (nlabels < 1) return acv_error(ACV_EINVAL, "dataset_version_id: the version has no labels");
    /* the algorithm: built-in, or a custom network of the project */
    bool custom = false;
    char *init = NULL;
    if (!acv_algorithms_is_builtin(task_s, algorithm) && !strcmp(task_s, "det")) {
        char names[256] = "auto";
        const acv_det_arch *list;
        int n = acv_det_arch_list(&list);
        for (int i = 0; i < n; i++) snprintf(names + strlen(names), sizeof names - strlen(names), ", %s", list[i].name);
        return acv_error(ACV_EINVAL, "algorithm: unknown detector '%s' (%s)", algorithm, names);
    } else if (!acv_algorithms_is_builtin(task_s, algorithm)) {
        rc = acv_db_query_text(c->db, &init, "SELECT path FROM custom_algorithms WHERE project_id = ? AND name = ?",
                               "Is", c->project_id, algorithm);
        if (rc) return rc;
        if (!init) {
            json_t *b = acv_algorithms_builtin(task_s);
            char names[512] = "";
            size_t off = 0, i;
            json_t *a;
            json_array_foreach(b, i, a)
                off += (size_t)snprintf(names + off, sizeof names - off, "%s%s", off ? ", " : "",
                                        json_string_value(json_object_get(a, "name")));
            json_decref(b);
            return acv_error(ACV_EINVAL, "algorithm: unknown algorithm '%s' (built-in: %s; or a custom network of the "
                                         "project)", algorithm, names);
        }
        custom = true;
    }
    /* a detector's backbone: a custom classifier of the project, by name */
    char *backbone = NULL;
    json_t *pcopy = json_is_object(params) ? json_copy(params) : NULL, *bj = json_object_get(pcopy, "backbone");
    const char *bname = json_string_value(bj);
    if (bj && (strcmp(task_s, "det") || (bname && !strcmp(bname, "none")))) {
        if (strcmp(task_s, "det")) rc = acv_error(ACV_EINVAL, "params.backbone: only detectors take a backbone");
        json_object_del(pcopy, "backbone");
        bj = NULL;
    } else if (bj) {
        if (!bname) rc = acv_error(ACV_EINVAL, "params.backbone: must be the name of a custom network of the project");
        if (!rc) rc = acv_db_query_text(c->db, &backbone, "SELECT path FROM custom_algorithms WHERE project_id = ? AND "
                                        "name = ? AND task = 'cls'", "Is", c->project_id, bname);
        if (!rc && !backbone) {
            json_t *cl = NULL;
            char names[512] = "";
            size_t off = 0, i;
            json_t *a;
            if (custom_list(c, c->project_id, &cl) == 0)
                json_array_foreach(cl, i, a)
                    if (!strcmp(json_string_value(json_object_get(a, "task")) ?: "", "cls") && off < sizeof names)
                        off += (size_t)snprintf(names + off, sizeof names - off, "%s%s", off ? ", " : "",
                                                json_string_value(json_object_get(a, "name")));
            json_decref(cl);
            rc = acv_error(ACV_EINVAL, "params.backbone: the project has no custom classifier named '%s' (%s)", bname,
                           off ? names : "it has none: register one with POST /api/v1/projects/{id}/algorithms");
        }
        json_object_del(pcopy, "backbone");
    }
    if (!rc && !backbone && json_is_true(json_object_get(pcopy, "freeze_backbone")) && !strcmp(task_s, "det"))
        rc = acv_error(ACV_EINVAL, "params.freeze_backbone: needs params.backbone");
    json_t *args = NULL, *clean = NULL;
    if (!rc) rc = acv_algorithms_check(task_s, custom || backbone, pcopy, &args, &clean);
    json_decref(pcopy);
    if (rc) {
        free(init);
        free(backbone);
        return rc;
    }
    if (backbone) json_object_set_new(clean, "backbone", json_string(bname));
    json_t *spec = json_pack("{s:s, s:o, s:o, s:o}", "task", task_s, "model", custom ? json_null() : json_string(algorithm),
                             "init", init ? json_string(init) : json_null(), "args", args);
    if (backbone) json_object_set_new(spec, "backbone", json_string(backbone));
    free(init);
    free(backbone);
    int64_t id = 0;
    rc = acv_db_begin(c->db);
    if (!rc) rc = acv_jobs_submit(acv_server_jobs(c->srv), c->db, &c->user, c->project_id, "train", dv, algorithm, clean,
                                  spec, &id);
    if (!rc) rc = acv_audit_write(c->db, &c->user, "job.create", "job", id, c->project_id,
                                  json_pack("{s:s, s:s, s:I}", "kind", "train", "algorithm", algorithm,
                                            "dataset_version_id", (json_int_t)dv));
    rc = acv_db_end(c->db, rc);
    json_decref(spec);
    json_decref(clean);
    return rc ? rc : reply_created_job(c, id);
}

static int jobs_list(acv_call *c)
{
    int limit, offset;
    int rc = acv_call_paging(c, &limit, &offset);
    if (rc) return rc;
    const char *kind = acv_call_query(c, "kind"), *status = acv_call_query(c, "status");
    json_t *items;
    int64_t total;
    rc = acv_jobs_list(c->db, c->project_id, kind, status, limit, offset, &items, &total);
    return rc ? rc : acv_call_page(c, items, total, limit, offset);
}

static int job_get(acv_call *c)
{
    json_t *out;
    int rc = acv_jobs_get(c->db, acv_call_id(c, "id"), &out);
    return rc ? rc : acv_call_json(c, 200, out);
}

static int job_cancel(acv_call *c)
{
    int64_t id = acv_call_id(c, "id");
    int rc = acv_jobs_cancel(acv_server_jobs(c->srv), c->db, &c->user, id);
    if (rc == ACV_EINVAL) return acv_call_error(c, 409, "%s", acv_errmsg());
    if (!rc) acv_call_audit(c, "job.cancel", "job", id, c->project_id, NULL);
    json_t *out;
    if (!rc) rc = acv_jobs_get(c->db, id, &out);
    return rc ? rc : acv_call_json(c, 202, out);
}

static int job_logs(acv_call *c)
{
    char *dir = acv_jobs_dir(acv_server_jobs(c->srv), acv_call_id(c, "id"));
    char *p = dir ? acv_path_join(dir, "log.txt") : NULL;
    free(dir);
    if (!p) return acv_error(ACV_ENOMEM, "out of memory");
    int rc = acv_path_exists(p) ? acv_http_respond_file(c->req, 200, p, "text/plain; charset=utf-8")
                                : acv_http_respond_data(c->req, 200, "text/plain; charset=utf-8", "", 0);
    free(p);
    return rc;
}

/* ---- events: server-sent events, replayed from the start (or after Last-Event-ID) ------------ */

typedef struct sse {
    acv_server *srv;
    acv_http *http;
    int64_t job_id;
    int64_t seq;        /* last event sent */
    char *buf;          /* pending bytes */
    size_t len, off;
    bool done;          /* the final status went into buf */
    double last_send;
} sse;

static void sse_free(void *ud)
{
    sse *s = ud;
    free(s->buf);
    free(s);
}

static int sse_append(sse *s, const char *text)
{
    size_t n = strlen(text);
    char *nb = realloc(s->buf, s->len + n + 1);
    if (!nb) return -1;
    memcpy(nb + s->len, text, n + 1);
    s->buf = nb;
    s->len += n;
    return 0;
}

/* Fetches the events after s->seq into the buffer. */
static int sse_fetch(sse *s)
{
    acv_dbconn *c;
    if (acv_db_acquire(acv_server_db(s->srv), &c)) return -1;
    json_t *rows = NULL, *job = NULL;
    int rc = acv_db_query(c, &rows,
                          "SELECT seq, type, data_json FROM job_events WHERE job_id = ? AND seq > ? ORDER BY seq LIMIT 500",
                          "II", s->job_id, s->seq);
    if (!rc && json_array_size(rows) == 0)
        rc = acv_db_query_row(c, &job, "SELECT status FROM jobs WHERE id = ?", "I", s->job_id);
    acv_db_release(c);
    if (rc) return -1;
    size_t i;
    json_t *r;
    json_array_foreach(rows, i, r) {
        s->seq = json_integer_value(json_object_get(r, "seq"));
        json_t *data = json_object_get(r, "data");
        const char *type = json_string_value(json_object_get(r, "type"));
        if (json_is_object(data)) json_object_set_new(data, "seq", json_integer(s->seq));
        char *d = json_dumps(data, JSON_COMPACT | JSON_REAL_PRECISION(7));
        char head[128];
        snprintf(head, sizeof head, "id: %lld\nevent: %s\ndata: ", (long long)s->seq, type ? type : "message");
        if (sse_append(s, head) || sse_append(s, d ? d : "{}") || sse_append(s, "\n\n")) rc = -1;
        free(d);
        if (type && !strcmp(type, "status")) {
            const char *st = json_string_value(json_object_get(data, "status"));
            if (st && (!strcmp(st, "succeeded") || !strcmp(st, "failed") || !strcmp(st, "cancelled"))) s->done = true;
        }
    }
    /* nothing new: the stream ends when the job is gone or has ended */
    if (!json_array_size(rows)) {
        const char *st = json_string_value(json_object_get(job, "status"));
        if (!job || (st && strcmp(st, "queued") && strcmp(st, "running"))) s->done = true;
    }
    json_decref(rows);
    json_decref(job);
    return rc;
}

static ssize_t sse_pull(void *ud, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    sse *s = ud;
    acv_jobs *j = acv_server_jobs(s->srv);
    for (;;) {
        if (s->off < s->len) {
            size_t n = s->len - s->off < max ? s->len - s->off : max;
            memcpy(buf, s->buf + s->off, n);
            s->off += n;
            if (s->off == s->len) s->off = s->len = 0;
            return (ssize_t)n;
        }
        if (s->done) return ACV_HTTP_STREAM_END;
        if (acv_http_stopping(s->http)) return ACV_HTTP_STREAM_END;
        uint64_t gen = acv_jobs_gen(j);
        if (sse_fetch(s)) return ACV_HTTP_STREAM_ERROR;
        if (s->len) continue;
        if (s->done) return ACV_HTTP_STREAM_END;
        /* nothing new: wait for the next event; a comment now and then keeps proxies open */
        acv_jobs_wait(j, gen, 1000);
        if (acv_now() - s->last_send >= 15) {
            s->last_send = acv_now();
            if (sse_append(s, ": keep-alive\n\n")) return ACV_HTTP_STREAM_ERROR;
        }
    }
}

static int job_events(acv_call *c)
{
    int64_t id = acv_call_id(c, "id");
    int64_t exists = 0;
    int rc = acv_db_query_int(c->db, &exists, 0, "SELECT count(*) FROM jobs WHERE id = ?", "I", id);
    if (rc) return rc;
    if (!exists) return acv_error(ACV_ENOTFOUND, "job %lld not found", (long long)id);
    sse *s = calloc(1, sizeof *s);
    if (!s) return acv_error(ACV_ENOMEM, "out of memory");
    s->srv = c->srv;
    s->http = acv_http_of(c->req);
    s->job_id = id;
    const char *last = acv_http_header(c->req, "Last-Event-ID");
    if (!last) last = acv_call_query(c, "after");
    if (last) s->seq = strtoll(last, NULL, 10);
    if (s->seq < 0) s->seq = 0;
    s->last_send = acv_now();
    acv_http_add_header(c->req, "Cache-Control", "no-cache");
    acv_http_add_header(c->req, "X-Accel-Buffering", "no");
    return acv_http_respond_stream(c->req, 200, "text/event-stream", sse_pull, s, sse_free);
}

/* ---- pre-annotation ------------------------------------------------------------------------- */

static int preannotate(acv_call *c)
{
    json_t *in;
    int rc = acv_call_body(c, &in);
    if (rc) return rc;
    int64_t set_id = acv_call_id(c, "id");
    const char *model = json_string_value(json_object_get(in, "model"));
    if (!model) return acv_error(ACV_EINVAL, "model: required (the name of a model in the repository)");
    json_t *vj = json_object_get(in, "version");
    if (vj && !json_is_null(vj) && (!json_is_integer(vj) || json_integer_value(vj) < 1))
        return acv_error(ACV_EINVAL, "version: must be a positive integer (or absent for the latest)");
    int64_t version = json_is_integer(vj) ? json_integer_value(vj) : 0;
    json_t *tj = json_object_get(in, "score_threshold");
    double thr = 0.5;
    if (tj && !json_is_null(tj)) {
        if (!json_is_number(tj) || json_number_value(tj) < 0 || json_number_value(tj) > 1)
            return acv_error(ACV_EINVAL, "score_threshold: must be a number in [0, 1]");
        thr = json_number_value(tj);
    }
    acv_ann_task task;
    int64_t lock_s;
    if ((rc = acv_annset_task(c->db, set_id, &task, &lock_s))) return rc;
    json_t *mv = NULL;
    rc = acv_db_query_row(c->db, &mv,
                          "SELECT mv.id, mv.version, mv.dir, mv.task FROM model_versions mv JOIN models m ON m.id = mv.model_id"
                          " WHERE m.name = ? AND (? = 0 OR mv.version = ?) ORDER BY mv.version DESC LIMIT 1",
                          "sII", model, version, version);
    if (rc) return rc;
    if (!mv) {
        return version ? acv_error(ACV_ENOTFOUND, "model '%s' has no version %lld", model, (long long)version)
                       : acv_error(ACV_ENOTFOUND, "model '%s' not found", model);
    }
    const char *mtask = json_string_value(json_object_get(mv, "task"));
    if (!mtask || strcmp(mtask, acv_ann_task_name(task))) {
        rc = acv_error(ACV_EINVAL, "model: '%s' is a %s model; the set is %s", model, mtask ? mtask : "?",
                       acv_ann_task_name(task));
        json_decref(mv);
        return rc;
    }
    if (task != ACV_ANN_CLS && task != ACV_ANN_DET) {
        json_decref(mv);
        return acv_error(ACV_EINVAL, "pre-annotation supports cls and det sets");
    }
    json_t *spec = json_pack("{s:I, s:O, s:O, s:f}", "set_id", (json_int_t)set_id, "model_version_id",
                             json_object_get(mv, "id"), "model_dir", json_object_get(mv, "dir"), "score_threshold", thr);
    json_t *params = json_pack("{s:s, s:O, s:f, s:I}", "model", model, "version", json_object_get(mv, "version"),
                               "score_threshold", thr, "set_id", (json_int_t)set_id);
    int64_t id = 0;
    rc = acv_db_begin(c->db);
    if (!rc) rc = acv_jobs_submit(acv_server_jobs(c->srv), c->db, &c->user, c->project_id, "pre_annotate", 0, model,
                                  params, spec, &id);
    if (!rc) rc = acv_audit_write(c->db, &c->user, "job.create", "job", id, c->project_id,
                                  json_pack("{s:s, s:I}", "kind", "pre_annotate", "set_id", (json_int_t)set_id));
    rc = acv_db_end(c->db, rc);
    json_decref(spec);
    json_decref(params);
    json_decref(mv);
    return rc ? rc : reply_created_job(c, id);
}

/* How the set's model proposals fared: an item whose revision is still the one the job wrote
 * is pending; once people saved it, the proposal was accepted unchanged (the same tags),
 * corrected (other tags) or deleted (no tags left). */
static int preann_stats(acv_call *c)
{
    int64_t set_id = acv_call_id(c, "id");
    json_t *rows = NULL;
    int rc = acv_db_query(c->db, &rows,
                          "SELECT p.image_id, p.revision AS proposed_revision, p.shapes_json AS proposal_json,"
                          " a.revision, a.doc_json, a.status FROM pre_annotations p JOIN annotation_items a"
                          " ON a.set_id = p.set_id AND a.image_id = p.image_id WHERE p.set_id = ?",
                          "I", set_id);
    if (rc) return rc;
    int64_t n = 0, pending = 0, accepted = 0, corrected = 0, deleted = 0;
    int64_t s_prop = 0, s_pending = 0, s_acc = 0, s_corr = 0, s_del = 0;
    size_t i;
    json_t *r;
    json_array_foreach(rows, i, r) {
        json_t *pshapes = json_object_get(json_object_get(r, "proposal"), "shapes");
        if (json_array_size(pshapes)) {
            /* boxes: each proposal is kept unchanged (same label, same box), corrected (a
             * person's shape overlaps it by IoU >= 0.5), or deleted */
            n++;
            bool untouched = json_integer_value(json_object_get(r, "revision")) ==
                             json_integer_value(json_object_get(r, "proposed_revision"));
            if (untouched) pending++;
            json_t *cur = json_object_get(json_object_get(r, "doc"), "shapes");
            size_t k, q;
            json_t *ps, *cs;
            json_array_foreach(pshapes, k, ps) {
                s_prop++;
                if (untouched) {
                    s_pending++;
                    continue;
                }
                double px = json_number_value(json_object_get(ps, "x")), py = json_number_value(json_object_get(ps, "y"));
                double pw = json_number_value(json_object_get(ps, "w")), ph = json_number_value(json_object_get(ps, "h"));
                int best = 0; /* 0 none, 1 overlap, 2 same */
                json_array_foreach(cur, q, cs) {
                    double cb[4], area;
                    if (acv_ann_shape_bbox(cs, cb, &area)) continue;
                    double ix = fmin(px + pw, cb[0] + cb[2]) - fmax(px, cb[0]);
                    double iy = fmin(py + ph, cb[1] + cb[3]) - fmax(py, cb[1]);
                    double inter = ix > 0 && iy > 0 ? ix * iy : 0, uni = pw * ph + cb[2] * cb[3] - inter;
                    double iou = uni > 0 ? inter / uni : 0;
                    bool same_label = !strcmp(json_string_value(json_object_get(cs, "label")) ?: "",
                                              json_string_value(json_object_get(ps, "label")) ?: "");
                    if (same_label && iou > 0.995) best = 2;
                    else if (iou >= 0.5 && best < 1) best = 1;
                }
                if (best == 2) s_acc++;
                else if (best == 1) s_corr++;
                else s_del++;
            }
            continue;
        }
        n++;
        if (json_integer_value(json_object_get(r, "revision")) == json_integer_value(json_object_get(r, "proposed_revision"))) {
            pending++;
            continue;
        }
        json_t *tags = json_object_get(json_object_get(r, "doc"), "tags");
        json_t *prop = json_object_get(json_object_get(r, "proposal"), "tags");
        if (json_array_size(tags) == 0) {
            deleted++;
            continue;
        }
        bool same = json_array_size(tags) == json_array_size(prop);
        for (size_t k = 0; same && k < json_array_size(tags); k++)
            same = !strcmp(json_string_value(json_array_get(tags, k)) ?: "",
                           json_string_value(json_object_get(json_array_get(prop, k), "label")) ?: "");
        if (same) accepted++;
        else corrected++;
    }
    json_decref(rows);
    double reviewed = (double)(accepted + corrected + deleted), sreviewed = (double)(s_acc + s_corr + s_del);
    json_t *out = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:o}", "set_id", (json_int_t)set_id, "proposed",
                            (json_int_t)n, "pending", (json_int_t)pending, "accepted_unchanged", (json_int_t)accepted,
                            "corrected", (json_int_t)corrected, "deleted", (json_int_t)deleted, "acceptance_rate",
                            reviewed > 0 ? json_real((double)accepted / reviewed) : json_null());
    json_object_set_new(out, "shapes",
                        json_pack("{s:I, s:I, s:I, s:I, s:I, s:o}", "proposed", (json_int_t)s_prop, "pending",
                                  (json_int_t)s_pending, "accepted_unchanged", (json_int_t)s_acc, "corrected",
                                  (json_int_t)s_corr, "deleted", (json_int_t)s_del, "acceptance_rate",
                                  sreviewed > 0 ? json_real((double)s_acc / sreviewed) : json_null()));
    return acv_call_json(c, 200, out);
}

/* ---- the route table ------------------------------------------------------------------------- */

static const acv_route_param JOBS_Q[] = {
    ACV_ROUTE_PAGING,
    {"kind", "string", "train, evaluate or pre_annotate"},
    {"status", "string", "queued, running, succeeded, failed or cancelled"},
    {NULL, NULL, NULL},
};
static const acv_route_param ALG_Q[] = {
    {"task", "string", "only this task's algorithms (cls, det, seg, ocr)"},
    {NULL, NULL, NULL},
};
static const acv_route_param EVENTS_Q[] = {
    {"after", "integer", "replay only the events after this sequence number (as the Last-Event-ID header does)"},
    {NULL, NULL, NULL},
};

#define JOB_ROUTE(m, p, h, r) .method = m, .pattern = p, .handler = h, .perm = ACV_PERM_PROJECT, .roles = r, \
                              .project = job_project, .tag = "jobs"

static const char *const SCHEMAS[][2] = {
    {"Job",
     "{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"integer\"},\"project_id\":{\"type\":\"integer\"},"
     "\"kind\":{\"type\":\"string\",\"enum\":[\"train\",\"evaluate\",\"pre_annotate\"]},"
     "\"status\":{\"type\":\"string\",\"enum\":[\"queued\",\"running\",\"succeeded\",\"failed\",\"cancelled\"]},"
     "\"dataset_version_id\":{\"type\":\"integer\",\"nullable\":true},\"algorithm\":{\"type\":\"string\"},"
     "\"params\":{\"type\":\"object\"},\"result\":{\"type\":\"object\"},\"progress\":{\"type\":\"object\"},"
     "\"error\":{\"type\":\"string\",\"nullable\":true},\"attempts\":{\"type\":\"integer\"},"
     "\"created_by\":{\"type\":\"integer\"},\"creator\":{\"type\":\"string\"},\"created_at\":{\"type\":\"string\"},"
     "\"started_at\":{\"type\":\"string\",\"nullable\":true},\"finished_at\":{\"type\":\"string\",\"nullable\":true}}}"},
    {"NewTrainingJob",
     "{\"type\":\"object\",\"required\":[\"dataset_version_id\"],\"properties\":{\"dataset_version_id\":"
     "{\"type\":\"integer\"},\"algorithm\":{\"type\":\"string\",\"default\":\"auto\"},\"params\":{\"type\":\"object\","
     "\"description\":\"every parameter is optional; see GET /api/v1/algorithms\"}}}"},
    {"Algorithm",
     "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},\"task\":{\"type\":\"string\"},"
     "\"description\":{\"type\":\"string\"},\"builtin\":{\"type\":\"boolean\"},\"cost\":{\"type\":\"object\","
     "\"nullable\":true},\"params\":{\"type\":\"array\",\"items\":{\"type\":\"object\"}}}}"},
};

static const acv_route ROUTES[] = {
    {.method = "GET", .pattern = "/api/v1/algorithms", .handler = algorithms_list, .perm = ACV_PERM_USER,
     .tag = "jobs", .summary = "List the built-in training algorithms", .query = ALG_Q,
     .description = "Each with its parameters (type, range, default, meaning) and rough cost (parameters and "
                    "GFLOPs at its default input size, 10 classes). \"auto\" lets AutoCV choose.",
     .resp_schema = "{\"type\":\"object\",\"properties\":{\"items\":{\"type\":\"array\",\"items\":"
                    "{\"$ref\":\"#/components/schemas/Algorithm\"}}}}",
     .resp_desc = "the algorithms"},
    {.method = "GET", .pattern = "/api/v1/projects/{id}/algorithms", .handler = algorithms_list,
     .perm = ACV_PERM_PROJECT, .roles = ACV_ROLES_PROJECT, .tag = "jobs", .query = ALG_Q,
     .summary = "List the algorithms a project can train: built-in ones and its custom networks",
     .resp_schema = "{\"type\":\"object\",\"properties\":{\"items\":{\"type\":\"array\",\"items\":"
                    "{\"$ref\":\"#/components/schemas/Algorithm\"}}}}",
     .resp_desc = "the algorithms"},
    {.method = "POST", .pattern = "/api/v1/projects/{id}/algorithms", .handler = algorithm_create,
     .perm = ACV_PERM_PROJECT, .roles = MANAGERS, .tag = "jobs",
     .summary = "Register a custom network (ONNX) as a training algorithm of the project",
     .description = "multipart/form-data: `file` (the .onnx network), `name`, `description`, `task` (cls). The "
                    "network is imported once to check it; training replaces its final classifier to fit the data.",
     .body_types = "multipart/form-data", .status = 201, .resp_schema = "#Algorithm",
     .resp_desc = "the registered algorithm"},
    {.method = "DELETE", .pattern = "/api/v1/algorithms/{id}", .handler = algorithm_delete, .perm = ACV_PERM_PROJECT,
     .roles = MANAGERS, .project = algorithm_project, .tag = "jobs", .summary = "Delete a custom network",
     .status = 204, .resp_desc = "deleted"},
    {.method = "POST", .pattern = "/api/v1/projects/{id}/training-jobs", .handler = training_create,
     .perm = ACV_PERM_PROJECT, .roles = MANAGERS, .tag = "jobs", .summary = "Start a training job",
     .description = "{\"dataset_version_id\",\"algorithm\" (default auto),\"params\":{...}}: every parameter is "
                    "optional (auto values are fitted to the data); an invalid one is a 422 naming it. The job "
                    "is queued and runs as a child process.",
     .body_types = "application/json", .body_schema = "#NewTrainingJob", .status = 201, .resp_schema = "#Job",
     .resp_desc = "the queued job"},
    {.method = "GET", .pattern = "/api/v1/projects/{id}/jobs", .handler = jobs_list, .perm = ACV_PERM_PROJECT,
     .roles = ACV_ROLES_PROJECT, .tag = "jobs", .summary = "List a project's jobs, newest first", .query = JOBS_Q,
     .resp_schema = ACV_PAGE_OF("Job"), .resp_desc = "a page of jobs"},
    {JOB_ROUTE("GET", "/api/v1/jobs/{id}", job_get, ACV_ROLES_PROJECT), .summary = "Read a job",
     .description = "progress holds the latest step and epoch figures; result what the job produced.",
     .resp_schema = "#Job", .resp_desc = "the job"},
    {JOB_ROUTE("GET", "/api/v1/jobs/{id}/events", job_events, ACV_ROLES_PROJECT),
     .summary = "Follow a job's events (server-sent events)", .query = EVENTS_Q,
     .description = "text/event-stream, replayed from the start (or after Last-Event-ID): `status` (queued, "
                    "running, succeeded, failed, cancelled), `log`, `step` (loss, lr, images/s), `epoch` "
                    "(validation metrics), `done` and `result` (a step's outcome). Ends after the final status.",
     .resp_desc = "the event stream"},
    {JOB_ROUTE("GET", "/api/v1/jobs/{id}/logs", job_logs, ACV_ROLES_PROJECT),
     .summary = "A job's log (everything its processes printed)", .resp_desc = "text/plain"},
    {JOB_ROUTE("POST", "/api/v1/jobs/{id}/cancel", job_cancel, MANAGERS), .summary = "Cancel a job",
     .description = "A queued job is cancelled at once; a running one when its process has stopped. 409 when "
                    "the job has already ended.",
     .status = 202, .resp_schema = "#Job", .resp_desc = "the job"},
    {.method = "POST", .pattern = "/api/v1/annotation-sets/{id}/pre-annotate", .handler = preannotate,
     .perm = ACV_PERM_PROJECT, .roles = MANAGERS, .project = set_project, .tag = "jobs",
     .summary = "Pre-annotate a set's untouched images with a model version (a job)",
     .description = "{\"model\",\"version\" (default latest),\"score_threshold\" (default 0.5)}: images nobody "
                    "has annotated get the model's proposal (source model, with its score).",
     .body_types = "application/json", .status = 201, .resp_schema = "#Job", .resp_desc = "the queued job"},
    {.method = "GET", .pattern = "/api/v1/annotation-sets/{id}/pre-annotations", .handler = preann_stats,
     .perm = ACV_PERM_PROJECT, .roles = ACV_ROLES_PROJECT, .project = set_project, .tag = "jobs",
     .summary = "How a set's model proposals fared: pending, accepted unchanged, corrected, deleted",
     .resp_desc = "{\"proposed\",\"pending\",\"accepted_unchanged\",\"corrected\",\"deleted\",\"acceptance_rate\"}"},
};

int acv_api_jobs(acv_router *r, const acv_server_config *cfg)
{
    (void)cfg;
    int rc = 0;
    for (size_t i = 0; !rc && i < sizeof SCHEMAS / sizeof SCHEMAS[0]; i++)
        rc = acv_router_add_schema(r, SCHEMAS[i][0], SCHEMAS[i][1]);
    return rc ? rc : acv_router_add(r, ROUTES, (int)(sizeof ROUTES / sizeof ROUTES[0]));
}
