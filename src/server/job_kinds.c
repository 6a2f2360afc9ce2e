/* The kinds of jobs (jobs_internal.h): training, evaluation on a dataset version, and
 * pre-annotation of an annotation set with a model. */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "autocv/error.h"
#include "base/file.h"
#include "platform/blobs.h"
#include "platform/materialize.h"
#include "server/jobs_internal.h"

static int add(json_t *argv, const char *s) { return json_array_append_new(argv, json_string(s)); }

static char *join(const char *a, const char *b)
{
    char *p = acv_path_join(a, b);
    if (!p) acv_error(ACV_ENOMEM, "out of memory");
    return p;
}

static const char *dir_of(const json_t *job) { return json_string_value(json_object_get(job, "dir")); }

/* DATA/rel for a path stored relative to the data folder. */
static char *data_path(acv_jobs *j, const char *rel)
{
    char *p = acv_server_path(acv__jobs_server(j), rel);
    if (!p) acv_error(ACV_ENOMEM, "out of memory");
    return p;
}

/* dir/data: the job's dataset version on disk (kept across retries). */
static int ensure_data(acv_jobs *j, acv_dbconn *c, const json_t *job, bool reuse, char **data)
{
    int64_t dv = json_integer_value(json_object_get(job, "dataset_version_id"));
    if (dv <= 0) return acv_error(ACV_ENOTFOUND, "the job's dataset version was deleted");
    if (!(*data = join(dir_of(job), "data"))) return ACV_ENOMEM;
    if (reuse && acv_is_dir(*data)) return 0;
    int64_t counts[3];
    int rc = acv_version_materialize(c, acv_server_blobs(acv__jobs_server(j)), dv, *data, counts);
    if (!rc) {
        json_t *ev = json_pack("{s:s, s:{s:I, s:I, s:I}}", "message", "dataset version written for the job", "images",
                               "train", (json_int_t)counts[0], "val", (json_int_t)counts[1], "test", (json_int_t)counts[2]);
        acv__jobs_event(j, c, json_integer_value(json_object_get(job, "id")), "log", ev);
        json_decref(ev);
    }
    return rc;
}

static void add_threads(acv_jobs *j, json_t *argv)
{
    if (acv__jobs_threads(j) > 0) {
        char t[16];
        snprintf(t, sizeof t, "%d", acv__jobs_threads(j));
        add(argv, "--threads");
        add(argv, t);
    }
}

/* ---- train ------------------------------------------------------------------------------
 * spec: {"task":"cls","model":ZOO NAME | null,"init":PATH (relative to the data folder) | null,
 *        "args":[flags from the validated params], "backbone":PATH (relative; detectors, optional)} */

static int train_prepare(acv_jobs *j, acv_dbconn *c, const json_t *job, bool resuming, json_t **steps)
{
    const json_t *spec = json_object_get(job, "spec");
    char *data = NULL, *model = join(dir_of(job), "model"), *init = NULL;
    if (!model) return ACV_ENOMEM;
    int rc = ensure_data(j, c, job, resuming, &data);
    json_t *argv = json_array();
    add(argv, "train");
    add(argv, "--task");
    add(argv, json_string_value(json_object_get(spec, "task")) ?: "cls");
    add(argv, "--data");
    add(argv, data ? data : "");
    add(argv, "--out");
    add(argv, model);
    add(argv, "--json");
    add_threads(j, argv);
    const char *init_rel = json_string_value(json_object_get(spec, "init"));
    if (init_rel) {
        if (!(init = data_path(j, init_rel))) rc = ACV_ENOMEM;
        else if (!acv_path_exists(init)) rc = acv_error(ACV_ENOTFOUND, "the custom network %s is gone", init_rel);
        add(argv, "--init");
        add(argv, init ? init : "");
    } else {
        add(argv, "--model");
        add(argv, json_string_value(json_object_get(spec, "model")) ?: "auto");
    }
    char *ckpt = join(model, "checkpoint.safetensors");
    const bool resume = resuming && ckpt && acv_path_exists(ckpt);
    free(ckpt);
    const char *bb_rel = json_string_value(json_object_get(spec, "backbone"));
    char *bb = NULL;
    if (bb_rel && !resume) { /* a resumed run takes the network from its checkpoint */
        if (!(bb = data_path(j, bb_rel))) rc = ACV_ENOMEM;
        else if (!acv_path_exists(bb)) rc = acv_error(ACV_ENOTFOUND, "the backbone's custom network %s is gone", bb_rel);
        add(argv, "--backbone");
        add(argv, bb ? bb : "");
    }
    free(bb);
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(spec, "args"), i, a) add(argv, json_string_value(a));
    if (resume) add(argv, "--resume");
    *steps = json_pack("[{s:s, s:o}]", "name", "train", "argv", argv);
    free(data);
    free(model);
    free(init);
    return rc;
}

static int train_finish(acv_jobs *j, acv_dbconn *c, const json_t *job, const json_t *results, json_t **result)
{
    (void)j;
    (void)c;
    const json_t *done = json_object_get(results, "train");
    char *mj = join(dir_of(job), "model/metrics.json");
    if (!mj) return ACV_ENOMEM;
    json_error_t e;
    json_t *metrics = json_load_file(mj, 0, &e);
    free(mj);
    char rel[64];
    snprintf(rel, sizeof rel, "jobs/%lld/model", (long long)json_integer_value(json_object_get(job, "id")));
    *result = json_pack("{s:s, s:O, s:O, s:O, s:O, s:O, s:o}", "model_dir", rel, "best_val_top1",
                        json_object_get(done, "best_val_top1") ?: json_null(), "best_val_map50_95",
                        json_object_get(done, "best_val_map50_95") ?: json_null(), "best_epoch",
                        json_object_get(done, "best_epoch") ?: json_null(), "wall_s",
                        json_object_get(done, "wall_s") ?: json_null(), "peak_rss_mb",
                        json_object_get(done, "peak_rss_mb") ?: json_null(), "metrics", metrics ? metrics : json_object());
    if (metrics) json_object_del(metrics, "history");
    return 0;
}

const acv__job_kind acv__job_train = {"train", train_prepare, train_finish, NULL};

/* ---- evaluate ---------------------------------------------------------------------------
 * spec: {"evaluation_id","model_version_id","model_dir" (relative),"split"} */

static int eval_prepare(acv_jobs *j, acv_dbconn *c, const json_t *job, bool resuming, json_t **steps)
{
    const json_t *spec = json_object_get(job, "spec");
    const char *split = json_string_value(json_object_get(spec, "split")) ?: "test";
    char *data = NULL, *model = data_path(j, json_string_value(json_object_get(spec, "model_dir")) ?: "");
    if (!model) return ACV_ENOMEM;
    int rc = ensure_data(j, c, job, resuming, &data);
    acv_db_exec(c, "UPDATE evaluations SET status = 'running' WHERE id = ?", "I",
                (int64_t)json_integer_value(json_object_get(spec, "evaluation_id")));
    json_t *ev = json_pack("[s, s, s, s, s, s, s, s]", "eval", "--model", model, "--data", data ? data : "", "--split",
                           split, "--json");
    add_threads(j, ev);
    json_t *b1 = json_pack("[s, s, s, s, s, s, s, s]", "bench", "--model", model, "--batch", "1", "--seconds", "2",
                           "--json");
    add_threads(j, b1);
    json_t *b8 = json_pack("[s, s, s, s, s, s, s, s]", "bench", "--model", model, "--batch", "8", "--seconds", "2",
                           "--json");
    add_threads(j, b8);
    *steps = json_pack("[{s:s, s:o}, {s:s, s:o}, {s:s, s:o}]", "name", "eval", "argv", ev, "name", "bench_b1", "argv",
                       b1, "name", "bench_b8", "argv", b8);
    free(data);
    free(model);
    return rc;
}

static int eval_finish(acv_jobs *j, acv_dbconn *c, const json_t *job, const json_t *results, json_t **result)
{
    const json_t *spec = json_object_get(job, "spec");
    int64_t eid = json_integer_value(json_object_get(spec, "evaluation_id"));
    json_t *acc = json_deep_copy(json_object_get(results, "eval"));
    json_t *b1 = json_object_get(results, "bench_b1"), *b8 = json_object_get(results, "bench_b8");
    json_object_del(acc, "peak_rss_mb");
    double t1 = json_number_value(json_object_get(b1, "throughput_ips"));
    double t8 = json_number_value(json_object_get(b8, "throughput_ips"));
    double rss = fmax(json_number_value(json_object_get(b1, "peak_rss_mb")),
                      json_number_value(json_object_get(b8, "peak_rss_mb")));
    char *wpath = data_path(j, json_string_value(json_object_get(spec, "model_dir")) ?: "");
    char *weights = wpath ? join(wpath, "weights.safetensors") : NULL;
    struct stat st;
    int64_t size = weights && stat(weights, &st) == 0 ? (int64_t)st.st_size : 0;
    free(wpath);
    free(weights);
    json_t *perf = json_pack("{s:O, s:f, s:i, s:f, s:f, s:I, s:O, s:O, s:O, s:O}", "latency_ms",
                             json_object_get(b1, "latency_ms") ?: json_null(), "throughput_ips", t8 > t1 ? t8 : t1,
                             "best_batch", t8 > t1 ? 8 : 1, "throughput_ips_b1", t1, "peak_memory_mb", rss,
                             "model_size_bytes", (json_int_t)size, "params", json_object_get(b1, "params") ?: json_null(),
                             "gflops", json_object_get(b1, "gflops") ?: json_null(), "threads",
                             json_object_get(b1, "threads") ?: json_null(), "imgsz",
                             json_object_get(b1, "imgsz") ?: json_null());
    json_t *summary = json_pack("{s:O, s:O, s:O, s:O, s:O}", "top1", json_object_get(acc, "top1") ?: json_null(),
                                "macro_f1", json_object_get(acc, "macro_f1") ?: json_null(), "map50",
                                json_object_get(acc, "map50") ?: json_null(), "latency_ms_p50",
                                json_object_get(json_object_get(perf, "latency_ms"), "p50") ?: json_null(),
                                "throughput_ips", json_object_get(perf, "throughput_ips"));
    *result = json_pack("{s:I, s:o, s:o, s:o}", "evaluation_id", (json_int_t)eid, "summary", summary, "accuracy", acc,
                        "performance", perf);
    char now[ACV_DB_TIME_LEN];
    acv_db_time(acv_db_now(), now);
    int rc = acv_db_exec(c,
                         "UPDATE evaluations SET status = 'succeeded', report_json = ?, error = NULL, finished_at = ?"
                         " WHERE id = ?",
                         "jsI", *result, now, eid);
    return rc;
}

static void eval_ended(acv_jobs *j, acv_dbconn *c, const json_t *job, const char *status, const char *error)
{
    (void)j;
    char now[ACV_DB_TIME_LEN];
    acv_db_time(acv_db_now(), now);
    acv_db_exec(c, "UPDATE evaluations SET status = ?, error = ?, finished_at = ? WHERE id = ?", "sssI", status, error,
                now, (int64_t)json_integer_value(json_object_get(json_object_get(job, "spec"), "evaluation_id")));
}

const acv__job_kind acv__job_evaluate = {"evaluate", eval_prepare, eval_finish, eval_ended};

/* ---- pre-annotate ------------------------------------------------------------------------
 * spec: {"set_id","model_version_id","model_dir" (relative),"score_threshold"}
 * The images are the set's items with an empty document that no person has saved
 * (annotated_by NULL, status new); each gets the model's proposal. */

#define PREANN_CHUNK 2000

static int preann_prepare(acv_jobs *j, acv_dbconn *c, const json_t *job, bool resuming, json_t **steps)
{
    (void)resuming;
    const json_t *spec = json_object_get(job, "spec");
    int64_t set_id = json_integer_value(json_object_get(spec, "set_id"));
    char *model = data_path(j, json_string_value(json_object_get(spec, "model_dir")) ?: "");
    if (!model) return ACV_ENOMEM;
    json_t *rows = NULL;
    int rc = acv_db_query(c, &rows,
                          "SELECT a.image_id, i.blob_hash FROM annotation_items a JOIN images i ON i.id = a.image_id"
                          " WHERE a.set_id = ? AND a.status = 'new' AND a.annotated_by IS NULL"
                          " AND json_array_length(a.doc_json, '$.tags') = 0"
                          " AND json_array_length(a.doc_json, '$.shapes') = 0 ORDER BY a.image_id",
                          "I", set_id);
    *steps = json_array();
    acv_blobs *b = acv_server_blobs(acv__jobs_server(j));
    size_t i;
    json_t *row, *argv = NULL;
    int n = 0;
    if (!rc) json_array_foreach(rows, i, row) {
            if (!argv) {
                /* a detector reports its boxes down to 0.05 (or the threshold, when lower), so that
                 * those under the threshold are counted below instead of never seen */
                char conf[32];
                double thr_arg = json_number_value(json_object_get(spec, "score_threshold"));
                snprintf(conf, sizeof conf, "%g", thr_arg < 0.05 ? thr_arg : 0.05);
                argv = json_pack("[s, s, s, s, s, s, s, s]", "predict", "--model", model, "--json", "--topk", "3",
                                 "--conf", conf);
                add_threads(j, argv);
            }
            char *p = acv_blobs_path(b, json_string_value(json_object_get(row, "blob_hash")));
            if (!p) {
                rc = acv_error(ACV_ENOMEM, "out of memory");
                break;
            }
            add(argv, p);
            free(p);
            if (++n == PREANN_CHUNK || i + 1 == json_array_size(rows)) {
                char name[32];
                snprintf(name, sizeof name, "predict_%zu", json_array_size(*steps) + 1);
                /* predict exits 1 when some images could not be read: those are skipped */
                json_array_append_new(*steps, json_pack("{s:s, s:o, s:i}", "name", name, "argv", argv, "ok_exit", 1));
                argv = NULL;
                n = 0;
            }
        }
    json_decref(argv);
    if (!rc) {
        json_t *ev = json_pack("{s:s, s:I}", "message", "images to pre-annotate", "images",
                               (json_int_t)json_array_size(rows));
        acv__jobs_event(j, c, json_integer_value(json_object_get(job, "id")), "log", ev);
        json_decref(ev);
    }
    if (!rc && json_array_size(rows) == 0) /* nothing to do: an empty predict would fail */
        json_array_append_new(*steps, json_pack("{s:s, s:[s]}", "name", "none", "argv", "version"));
    json_decref(rows);
    free(model);
    return rc;
}

/* Writes doc into the item when nobody has touched it (status new, empty document, never
 * saved by a person) and records the proposal with the revision written; *stored says
 * whether it was. */
static int store_proposal(acv_dbconn *c, int64_t set_id, int64_t image_id, int64_t job_id, int64_t mv,
                          const json_t *doc, const json_t *prop, const char *now, bool *stored)
{
    *stored = false;
    int rc = acv_db_exec(c,
                         "UPDATE annotation_items SET doc_json = ?, revision = revision + 1, updated_at = ?"
                         " WHERE set_id = ? AND image_id = ? AND status = 'new' AND annotated_by IS NULL"
                         " AND json_array_length(doc_json, '$.tags') = 0"
                         " AND json_array_length(doc_json, '$.shapes') = 0",
                         "jsII", doc, now, set_id, image_id);
    if (rc || acv_db_changes(c) == 0) return rc;
    rc = acv_db_exec(c,
                     "INSERT OR REPLACE INTO pre_annotations(set_id, image_id, job_id, model_version_id,"
                     " revision, shapes_json, created_at) VALUES (?, ?, ?, ?,"
                     " (SELECT revision FROM annotation_items WHERE set_id = ? AND image_id = ?), ?, ?)",
                     "IIIIIIjs", set_id, image_id, job_id, mv, set_id, image_id, prop, now);
    *stored = rc == 0;
    return rc;
}

static int preann_finish(acv_jobs *j, acv_dbconn *c, const json_t *job, const json_t *results, json_t **result)
{
    (void)results;
    (void)j;
    const json_t *spec = json_object_get(job, "spec");
    int64_t job_id = json_integer_value(json_object_get(job, "id"));
    int64_t set_id = json_integer_value(json_object_get(spec, "set_id"));
    int64_t mv = json_integer_value(json_object_get(spec, "model_version_id"));
    double thr = json_number_value(json_object_get(spec, "score_threshold"));
    acv_blobs *b = acv_server_blobs(acv__jobs_server(j));
    /* the per-image predictions are the job's "result" events */
    json_t *preds = NULL, *items = NULL, *labels = NULL;
    int rc = acv_db_query(c, &preds, "SELECT data_json FROM job_events WHERE job_id = ? AND type = 'result' ORDER BY seq",
                          "I", job_id);
    if (!rc)
        rc = acv_db_query(c, &items,
                          "SELECT a.image_id, i.blob_hash FROM annotation_items a JOIN images i ON i.id = a.image_id"
                          " WHERE a.set_id = ?",
                          "I", set_id);
    if (!rc)
        rc = acv_db_query(c, &labels,
                          "SELECT l.name FROM labels l JOIN annotation_sets s ON s.project_id = l.project_id"
                          " WHERE s.id = ?",
                          "I", set_id);
    json_t *by_path = json_object(), *known = json_object();
    size_t i;
    json_t *row;
    if (!rc) {
        json_array_foreach(items, i, row) {
            char *p = acv_blobs_path(b, json_string_value(json_object_get(row, "blob_hash")));
            if (p) json_object_set(by_path, p, json_object_get(row, "image_id"));
            free(p);
        }
        json_array_foreach(labels, i, row) json_object_set_new(known, json_string_value(json_object_get(row, "name")), json_true());
    }
    int64_t proposed = 0, below = 0, unknown = 0, skipped = 0;
    char now[ACV_DB_TIME_LEN];
    acv_db_time(acv_db_now(), now);
    if (!rc) rc = acv_db_begin(c);
    if (!rc) {
        json_array_foreach(preds, i, row) {
            json_t *p = json_object_get(row, "data");
            const char *path = json_string_value(json_object_get(p, "image"));
            json_t *img = path ? json_object_get(by_path, path) : NULL;
            if (!img) continue;
            int64_t image_id = json_integer_value(img);
            json_t *dets = json_object_get(p, "detections");
            if (json_is_array(dets)) {
                /* a detector: every box of a known label at or above the threshold, as a shape */
                json_t *shapes = json_array(), *prop = json_array();
                size_t d;
                json_t *det;
                json_array_foreach(dets, d, det) {
                    const char *lb = json_string_value(json_object_get(det, "label"));
                    double sc = json_number_value(json_object_get(det, "score"));
                    json_t *bx = json_object_get(det, "box");
                    double x1 = json_number_value(json_array_get(bx, 0)), y1 = json_number_value(json_array_get(bx, 1));
                    double x2 = json_number_value(json_array_get(bx, 2)), y2 = json_number_value(json_array_get(bx, 3));
                    if (sc < thr) { below++; continue; }
                    if (!lb || !json_object_get(known, lb)) { unknown++; continue; }
                    if (!(x2 > x1 && y2 > y1)) { skipped++; continue; }
                    json_t *sh = json_pack("{s:s, s:s, s:f, s:f, s:f, s:f, s:s, s:f}", "type", "box", "label", lb, "x",
                                           x1, "y", y1, "w", x2 - x1, "h", y2 - y1, "source", "model", "score", sc);
                    json_array_append(prop, sh);
                    json_array_append_new(shapes, sh);
                }
                if (!json_array_size(shapes)) {
                    json_decref(shapes);
                    json_decref(prop);
                    continue;
                }
                json_t *doc = json_pack("{s:[], s:o}", "tags", "shapes", shapes);
                json_t *pj = json_pack("{s:[], s:o}", "tags", "shapes", prop);
                bool stored = false;
                rc = store_proposal(c, set_id, image_id, job_id, mv, doc, pj, now, &stored);
                json_decref(doc);
                json_decref(pj);
                if (rc) break;
                if (stored) proposed++;
                else skipped++;
                continue;
            }
            const char *label = json_string_value(json_object_get(p, "label"));
            double score = json_number_value(json_object_get(p, "score"));
            if (!label) {
                skipped++;
                continue;
            }
            if (score < thr) {
                below++;
                continue;
            }
            if (!json_object_get(known, label)) {
                unknown++;
                continue;
            }
            /* only an item still untouched by people takes the proposal */
            json_t *doc = json_pack("{s:[s], s:[]}", "tags", label, "shapes");
            json_t *prop = json_pack("{s:[{s:s, s:f}], s:[]}", "tags", "label", label, "score", score, "shapes");
            bool stored = false;
            rc = store_proposal(c, set_id, image_id, job_id, mv, doc, prop, now, &stored);
            json_decref(doc);
            json_decref(prop);
            if (rc) break;
            if (stored) proposed++;
            else skipped++;
        }
        rc = acv_db_end(c, rc);
    }
    if (!rc)
        *result = json_pack("{s:I, s:I, s:I, s:I, s:I, s:f}", "set_id", (json_int_t)set_id, "proposed",
                            (json_int_t)proposed, "below_threshold", (json_int_t)below, "unknown_label",
                            (json_int_t)unknown, "skipped", (json_int_t)skipped, "score_threshold", thr);
    json_decref(by_path);
    json_decref(known);
    json_decref(preds);
    json_decref(items);
    json_decref(labels);
    return rc;
}

const acv__job_kind acv__job_pre_annotate = {"pre_annotate", preann_prepare, preann_finish, NULL};
