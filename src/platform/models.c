/* The model repository: rows, version folders, uploads and publishing (see models.h). */
#include "platform/models.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "autocv/error.h"
#include "autocv/model.h"
#include "base/file.h"
#include "base/log.h"
#include "onnx/import.h"
#include "platform/audit.h"
#include "platform/import_internal.h"
#include "platform/jsonarg.h"

#define MODEL_SELECT                                                                                         \
    "SELECT m.id, m.name, m.task, m.description, m.tags_json, "                                           \
    "(SELECT MAX(version) FROM model_versions WHERE model_id = m.id) AS latest_version, "                  \
    "(SELECT COUNT(*) FROM model_versions WHERE model_id = m.id) AS versions, m.project_id, m.created_by, " \
    "m.created_at, m.updated_at FROM models m "

#define VERSION_SELECT                                                                                       \
    "SELECT v.id, m.name AS model, v.version, v.task, v.source, v.description, v.tags_json, "             \
    "v.classes_json, v.metrics_json, v.lineage_json, v.info_json, v.job_id, v.created_by, v.created_at "    \
    "FROM model_versions v JOIN models m ON m.id = v.model_id "

/* ---- validation -------------------------------------------------------------------------- */

int acv_models_name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0) return acv_error(ACV_EINVAL, "a model name must not be empty");
    if (n > ACV_MODEL_NAME_MAX)
        return acv_error(ACV_EINVAL, "model name '%.40s...' is longer than %d characters", name, ACV_MODEL_NAME_MAX);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)name[i];
        bool alnum = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
        if (i == 0 && !alnum)
            return acv_error(ACV_EINVAL, "model name '%.100s' must start with a letter or a digit", ch < 0x80 ? name : "?");
        if (!alnum && ch != '.' && ch != '_' && ch != '-')
            return acv_error(ACV_EINVAL, "model name '%.100s': only letters, digits, '.', '_' and '-' are allowed",
                             ch >= 0x20 && ch < 0x80 ? name : "(not printable)");
    }
    return 0;
}

/* A short text (a tag, a class name): not empty, no control character, no space at either end. */
static int text_ok(const char *s, size_t max, const char *what)
{
    size_t n = strlen(s);
    if (n == 0) return acv_error(ACV_EINVAL, "%s must not be empty", what);
    if (n > max) return acv_error(ACV_EINVAL, "%s '%.40s...' is longer than %zu bytes", what, s, max);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) return acv_error(ACV_EINVAL, "%s contains a control character", what);
    if (s[0] == ' ' || s[n - 1] == ' ') return acv_error(ACV_EINVAL, "%s '%s' starts or ends with a space", what, s);
    return 0;
}

static int tags_ok(const json_t *tags)
{
    if (!tags) return 0;
    if (!json_is_array(tags)) return acv_error(ACV_EFORMAT, "field 'tags' must be an array of strings");
    if (json_array_size(tags) > ACV_MODEL_TAGS_MAX)
        return acv_error(ACV_EINVAL, "field 'tags' has %zu entries (at most %d)", json_array_size(tags),
                         ACV_MODEL_TAGS_MAX);
    for (size_t i = 0; i < json_array_size(tags); i++) {
        const char *t = json_string_value(json_array_get(tags, i));
        if (!t) return acv_error(ACV_EFORMAT, "field 'tags'[%zu] must be a string", i);
        if (text_ok(t, ACV_MODEL_TAG_MAX, "a tag")) return ACV_EINVAL;
    }
    return 0;
}

static int desc_ok(const char *d)
{
    if (d && strlen(d) > ACV_MODEL_DESC_MAX)
        return acv_error(ACV_EINVAL, "field 'description' is longer than %d bytes", ACV_MODEL_DESC_MAX);
    return 0;
}

/* ---- reads ---------------------------------------------------------------------------------- */

/* Rearranges a version row as the API shows it: "input" comes out of info. */
static void version_shape(json_t *v)
{
    json_t *info = json_object_get(v, "info");
    json_t *in = json_object_get(info, "input");
    json_object_set(v, "input", in ? in : json_null());
    if (in) json_object_del(info, "input");
}

int acv_models_list(acv_dbconn *c, const char *q, const char *task, int limit, int offset, json_t **items,
                    int64_t *total)
{
#define LIST_WHERE "WHERE (?1 IS NULL OR instr(lower(m.name), lower(?1)) > 0) AND (?2 IS NULL OR m.task = ?2) "
    int rc = acv_db_query_int(c, total, 0, "SELECT COUNT(*) FROM models m " LIST_WHERE, "ss", q, task);
    if (!rc)
        rc = acv_db_query(c, items, MODEL_SELECT LIST_WHERE "ORDER BY m.name COLLATE NOCASE LIMIT ?3 OFFSET ?4", "ssii",
                          q, task, limit, offset);
#undef LIST_WHERE
    return rc;
}

int acv_models_get(acv_dbconn *c, const char *name, json_t **out)
{
    int rc = acv_db_query_row(c, out, MODEL_SELECT "WHERE m.name = ?", "s", name);
    if (!rc && !*out) rc = acv_error(ACV_ENOTFOUND, "model '%.100s' not found", name);
    return rc;
}

/* The model's id and task; ACV_ENOTFOUND naming it. */
static int model_find(acv_dbconn *c, const char *name, int64_t *id, char task[16])
{
    json_t *row;
    int rc = acv_db_query_row(c, &row, "SELECT id, task FROM models WHERE name = ?", "s", name);
    if (!rc && !row) return acv_error(ACV_ENOTFOUND, "model '%.100s' not found", name);
    if (rc) return rc;
    *id = json_integer_value(json_object_get(row, "id"));
    if (task) snprintf(task, 16, "%s", json_string_value(json_object_get(row, "task")));
    json_decref(row);
    return 0;
}

int acv_models_versions(acv_dbconn *c, const char *name, int limit, int offset, json_t **items, int64_t *total)
{
    int64_t mid = 0;
    int rc = model_find(c, name, &mid, NULL);
    if (!rc) rc = acv_db_query_int(c, total, 0, "SELECT COUNT(*) FROM model_versions WHERE model_id = ?", "I", mid);
    if (!rc)
        rc = acv_db_query(c, items, VERSION_SELECT "WHERE v.model_id = ? ORDER BY v.version DESC LIMIT ? OFFSET ?",
                          "Iii", mid, limit, offset);
    for (size_t i = 0; !rc && i < json_array_size(*items); i++) version_shape(json_array_get(*items, i));
    return rc;
}

int acv_models_resolve(acv_dbconn *c, const char *name, int version, int64_t *version_id, char **dir_rel,
                       json_t **row)
{
    int64_t mid = 0;
    int rc = model_find(c, name, &mid, NULL);
    json_t *r = NULL;
    if (!rc)
        rc = acv_db_query_row(c, &r,
                              "SELECT v.id AS vid, v.dir AS vdir FROM model_versions v WHERE v.model_id = ?1 "
                              "AND (?2 <= 0 OR v.version = ?2) ORDER BY v.version DESC LIMIT 1",
                              "Ii", mid, version);
    if (!rc && !r)
        rc = version > 0 ? acv_error(ACV_ENOTFOUND, "model '%.100s' has no version %d", name, version)
                         : acv_error(ACV_ENOTFOUND, "model '%.100s' has no versions", name);
    if (rc) return rc;
    int64_t vid = json_integer_value(json_object_get(r, "vid"));
    json_t *full = NULL;
    char *dir = NULL;
    if (dir_rel && !(dir = strdup(json_string_value(json_object_get(r, "vdir")))))
        rc = acv_error(ACV_ENOMEM, "out of memory");
    json_decref(r);
    if (!rc && row) {
        rc = acv_db_query_row(c, &full, VERSION_SELECT "WHERE v.id = ?", "I", vid);
        if (!rc && !full) rc = acv_error(ACV_ENOTFOUND, "model '%.100s' has no version %d", name, version);
        if (!rc) version_shape(full);
    }
    if (rc) {
        free(dir);
        json_decref(full);
        return rc;
    }
    if (version_id) *version_id = vid;
    if (dir_rel) *dir_rel = dir;
    if (row) *row = full;
    return 0;
}

int64_t acv_models_viewer(const acv_principal *who)
{
    return !who || (who->roles & ACV_ROLE_ADMIN) ? 0 : who->user_id;
}

int acv_models_version_get(acv_dbconn *c, const char *name, int version, int64_t viewer, json_t **out)
{
    int64_t vid;
    json_t *v, *evals = NULL, *deps = NULL;
    int rc = acv_models_resolve(c, name, version, &vid, NULL, &v);
    if (rc) return rc;
    rc = acv_db_query(c, &evals,
                      "SELECT id, status, dataset_version_id, split, created_at, CASE WHEN json_valid(report_json) "
                      "THEN CASE WHEN json_type(report_json, '$.summary') = 'object' THEN json_extract(report_json, "
                      "'$.summary') END END AS summary_json FROM evaluations e WHERE model_version_id = ?1 AND (?2 = 0 OR "
                      "EXISTS (SELECT 1 FROM dataset_versions d JOIN project_members pm ON pm.project_id = d.project_id "
                      "WHERE d.id = e.dataset_version_id AND pm.user_id = ?2)) ORDER BY id DESC",
                      "II", vid, viewer);
    if (!rc)
        rc = acv_db_query(c, &deps, "SELECT id, name FROM deployments WHERE model_version_id = ? ORDER BY id", "I", vid);
    if (rc) {
        json_decref(v);
        json_decref(evals);
        return rc;
    }
    json_object_set_new(v, "evaluations", evals);
    json_object_set_new(v, "deployments", deps);
    *out = v;
    return 0;
}

/* ---- changes -------------------------------------------------------------------------------- */

int acv_models_update(acv_dbconn *c, const acv_principal *who, const char *name, int version, const json_t *patch,
                      json_t **out)
{
    static const char *const FIELDS[] = {"description", "tags", NULL};
    const char *desc = NULL;
    json_t *tags = NULL;
    if (!json_is_object(patch)) return acv_error(ACV_EFORMAT, "the body must be a JSON object");
    int rc = acv_jarg_only(patch, FIELDS);
    if (!rc) rc = acv_jarg_str(patch, "description", false, ACV_MODEL_DESC_MAX, &desc);
    if (!rc) rc = acv_jarg_strlist(patch, "tags", ACV_MODEL_TAGS_MAX, ACV_MODEL_TAG_MAX, &tags);
    if (!rc) rc = tags_ok(tags);
    if (rc) return rc;
    if (!desc && !tags) /* nothing to change */
        return !out ? 0 : version > 0 ? acv_models_version_get(c, name, version, acv_models_viewer(who), out) : acv_models_get(c, name, out);
    char now[ACV_DB_TIME_LEN];
    acv_db_time(acv_db_now(), now);
    int64_t mid = 0, vid = 0;
    if ((rc = acv_db_begin(c))) return rc;
    rc = model_find(c, name, &mid, NULL);
    if (!rc && version > 0) rc = acv_models_resolve(c, name, version, &vid, NULL, NULL);
    const char *table = version > 0 ? "model_versions" : "models";
    char sql[160];
    if (!rc && desc) {
        snprintf(sql, sizeof sql, "UPDATE %s SET description = ? WHERE id = ?", table);
        rc = acv_db_exec(c, sql, "sI", desc, version > 0 ? vid : mid);
    }
    if (!rc && tags) {
        snprintf(sql, sizeof sql, "UPDATE %s SET tags_json = ? WHERE id = ?", table);
        rc = acv_db_exec(c, sql, "jI", tags, version > 0 ? vid : mid);
    }
    if (!rc) rc = acv_db_exec(c, "UPDATE models SET updated_at = ? WHERE id = ?", "sI", now, mid);
    if (!rc) {
        json_t *d = json_pack("{s:s}", "model", name);
        if (d && version > 0) json_object_set_new(d, "version", json_integer(version));
        if (d && desc) json_object_set_new(d, "description", json_string(desc));
        if (d && tags) json_object_set(d, "tags", tags);
        rc = acv_audit_write(c, who, "update", version > 0 ? "model_version" : "model", version > 0 ? vid : mid, 0, d);
    }
    rc = acv_db_end(c, rc);
    if (!rc && out) rc = version > 0 ? acv_models_version_get(c, name, version, acv_models_viewer(who), out) : acv_models_get(c, name, out);
    return rc;
}

/* Folders moved aside: DATA/models/.trash-XXXXXX/<i>, each remembering where it was. */
typedef struct trash {
    char *dir;
    char **from, **to;
    int n, cap;
} trash;

/* Moves DATA/rel (when it exists) into the trash; an error names the folder. */
static int trash_move(trash *t, const char *data_dir, const char *rel)
{
    char *src = acv_path_join(data_dir, rel);
    if (!src) return acv_error(ACV_ENOMEM, "out of memory");
    struct stat st;
    if (lstat(src, &st)) {
        free(src);
        return 0; /* nothing there (a crash removed it, or it never was) */
    }
    if (t->n == t->cap) {
        int cap = t->cap ? 2 * t->cap : 8;
        char **f = realloc(t->from, (size_t)cap * sizeof *f);
        if (f) t->from = f;
        char **o = f ? realloc(t->to, (size_t)cap * sizeof *o) : NULL;
        if (o) t->to = o;
        if (!f || !o) {
            free(src);
            return acv_error(ACV_ENOMEM, "out of memory");
        }
        t->cap = cap;
    }
    if (!t->dir) {
        char *models = acv_path_join(data_dir, "models");
        int rc = models ? acv_mkdirs(models) : acv_error(ACV_ENOMEM, "out of memory");
        char *tmpl = rc ? NULL : acv_path_join(models, ".trash-XXXXXX");
        free(models);
        if (!rc && (!tmpl || !mkdtemp(tmpl)))
            rc = tmpl ? acv_error(ACV_EIO, "making a folder in %s/models: %s", data_dir, strerror(errno))
                      : acv_error(ACV_ENOMEM, "out of memory");
        if (rc) {
            free(tmpl);
            free(src);
            return rc;
        }
        t->dir = tmpl;
    }
    char name[16];
    snprintf(name, sizeof name, "%d", t->n);
    char *dst = acv_path_join(t->dir, name);
    if (!dst) {
        free(src);
        return acv_error(ACV_ENOMEM, "out of memory");
    }
    if (rename(src, dst)) {
        int rc = acv_error(ACV_EIO, "moving %s aside: %s", src, strerror(errno));
        free(src);
        free(dst);
        return rc;
    }
    t->from[t->n] = src;
    t->to[t->n++] = dst;
    return 0;
}

/* After the transaction: committed, the trash is removed; else every folder goes back. */
static void trash_end(trash *t, bool committed)
{
    bool keep = false;
    for (int i = t->n - 1; i >= 0; i--) {
        if (!committed && rename(t->to[i], t->from[i])) {
            acv_warn("could not put %s back from %s (left there): %s", t->from[i], t->to[i], strerror(errno));
            keep = true;
        }
        free(t->from[i]);
        free(t->to[i]);
    }
    if (t->dir && !keep) acv_remove_tree(t->dir);
    free(t->dir);
    free(t->from);
    free(t->to);
    memset(t, 0, sizeof *t);
}

int acv_models_delete(acv_dbconn *c, const acv_principal *who, const char *data_dir, const char *name, int version)
{
    int64_t mid = 0, vid = 0;
    json_t *dep = NULL, *dirs = NULL;
    int rc = acv_db_begin(c);
    if (rc) return rc;
    rc = model_find(c, name, &mid, NULL);
    if (!rc && version > 0) rc = acv_models_resolve(c, name, version, &vid, NULL, NULL);
    if (!rc)
        rc = acv_db_query_row(c, &dep,
                              "SELECT v.version, d.name FROM deployments d JOIN model_versions v ON v.id = "
                              "d.model_version_id WHERE v.model_id = ?1 AND (?2 = 0 OR v.id = ?2) ORDER BY v.version, "
                              "d.id LIMIT 1",
                              "II", mid, vid);
    if (!rc && dep)
        rc = acv_error(ACV_EEXIST, "version %lld of %s is deployed as %s%s",
                       (long long)json_integer_value(json_object_get(dep, "version")), name,
                       json_string_value(json_object_get(dep, "name")),
                       version > 0 ? ": delete the deployment (or switch it to another version) first"
                                   : ": delete its deployments first");
    if (!rc)
        rc = acv_db_query(c, &dirs, "SELECT dir FROM model_versions WHERE model_id = ?1 AND (?2 = 0 OR id = ?2)", "II",
                          mid, vid);
    if (!rc && version > 0) {
        char now[ACV_DB_TIME_LEN];
        acv_db_time(acv_db_now(), now);
        rc = acv_db_exec(c, "DELETE FROM model_versions WHERE id = ?", "I", vid);
        if (!rc) rc = acv_db_exec(c, "UPDATE models SET updated_at = ? WHERE id = ?", "sI", now, mid);
        if (!rc)
            rc = acv_audit_write(c, who, "delete", "model_version", vid, 0,
                                 json_pack("{s:s, s:i}", "model", name, "version", version));
    } else if (!rc) {
        rc = acv_db_exec(c, "DELETE FROM models WHERE id = ?", "I", mid);
        if (!rc)
            rc = acv_audit_write(c, who, "delete", "model", mid, 0,
                                 json_pack("{s:s, s:I}", "name", name, "versions", (json_int_t)json_array_size(dirs)));
    }
    json_decref(dep);
    /* The folders move aside inside the transaction (a version committed after it may take
     * the same number and path) and are removed after the commit; back in place if it fails. */
    trash t = {0};
    if (!rc) {
        /* the whole model: its folder, with the versions in it (and any version kept elsewhere) */
        char rel[64];
        snprintf(rel, sizeof rel, "models/%lld/", (long long)mid);
        for (size_t i = 0; !rc && i < json_array_size(dirs); i++) {
            const char *d = json_string_value(json_object_get(json_array_get(dirs, i), "dir"));
            if (d && *d && (version > 0 || strncmp(d, rel, strlen(rel)))) rc = trash_move(&t, data_dir, d);
        }
        rel[strlen(rel) - 1] = 0;
        if (!rc && version <= 0) rc = trash_move(&t, data_dir, rel);
    }
    rc = acv_db_end(c, rc);
    trash_end(&t, rc == 0);
    json_decref(dirs);
    return rc;
}

/* ---- staging a new version ------------------------------------------------------------------ */

/* A version being prepared: a work folder under DATA/tmp holding the model directory
 * (work/version), and what its row records. */
typedef struct staged {
    char *work;          /* DATA/tmp/model-XXXXXX (removed by staged_free) */
    char *vdir;          /* work/version: the version's folder once complete */
    acv_model *m;        /* the loaded model */
    json_t *metrics, *lineage, *info, *classes;
    const char *source;  /* "upload" | "job" */
    int64_t job_id, project_id;
} staged;

static void staged_free(staged *s)
{
    if (s->work) acv_remove_tree(s->work);
    free(s->work);
    free(s->vdir);
    acv_model_free(s->m);
    json_decref(s->metrics);
    json_decref(s->lineage);
    json_decref(s->info);
    json_decref(s->classes);
    memset(s, 0, sizeof *s);
}

static int staged_init(staged *s, const char *tmp_dir)
{
    memset(s, 0, sizeof *s);
    size_t n = strlen(tmp_dir) + 24;
    if (!(s->work = malloc(n))) return acv_error(ACV_ENOMEM, "out of memory");
    snprintf(s->work, n, "%s/model-XXXXXX", tmp_dir);
    if (!mkdtemp(s->work)) {
        int rc = acv_error(ACV_EIO, "%s: %s", s->work, strerror(errno));
        free(s->work);
        s->work = NULL;
        return rc;
    }
    if (!(s->vdir = acv_path_join(s->work, "version"))) return acv_error(ACV_ENOMEM, "out of memory");
    return 0;
}

/* Re-records the current error without the work folder's path in it (messages from the
 * loaders name files by path; the client should see "model.json: ...", not a server path);
 * with refuse, as ACV_EINVAL (see below). */
static int scrub(int rc, const char *work, bool refuse)
{
    if (!rc || !work) return rc;
    /* A model that cannot be read or run is the upload's fault, whatever the loader's code
     * (a truncated weights file can be an I/O error, a wrong tensor a shape error). */
    if (refuse && rc != ACV_ENOMEM) rc = ACV_EINVAL;
    char msg[1024], out[1024];
    snprintf(msg, sizeof msg, "%s", acv_errmsg());
    size_t wl = strlen(work), o = 0;
    for (const char *p = msg; *p && o + 1 < sizeof out;) {
        if (!strncmp(p, work, wl) && p[wl] == '/') {
            p += wl + 1;
            const char *q = strchr(p, '/'); /* and the folder inside it ("in/", "version/") */
            const char *sp = strpbrk(p, " :'\"");
            if (q && (!sp || q < sp)) p = q + 1;
            continue;
        }
        out[o++] = *p++;
    }
    out[o] = 0;
    return acv_error(rc, "%s", out);
}

/* Hard-links src to dst, copying when a link is impossible (another file system). */
static int link_or_copy(const char *src, const char *dst)
{
    if (link(src, dst) == 0) return 0;
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = acv_file_read(src, SIZE_MAX / 2, &buf, &len);
    if (!rc) rc = acv_file_write_atomic(dst, buf, len);
    free(buf);
    return rc;
}

/* Compiles the model at batch 1 and runs one forward pass on a zero input: a model that
 * cannot run, or answers NaN or infinity, is refused with the reason. */
static int model_run_once(acv_model *m)
{
    acv_graph *g = m->graph;
    acv_id x = acv_graph_input(g), y = acv_graph_output(g);
    if (x < 0 || y < 0) return acv_error(ACV_EFORMAT, "the model's graph has no input or no output");
    int rc = acv_graph_compile(g, NULL, 1, false);
    if (!rc) rc = acv_graph_set_batch(g, 1);
    if (rc) return acv_error_prefix(rc, "the model cannot be prepared to run: ");
    float *in = acv_graph_data(g, x);
    memset(in, 0, (size_t)acv_shape_numel(acv_graph_shape(g, x)) * sizeof(float));
    if ((rc = acv_graph_forward(g, y, false, 0))) return acv_error_prefix(rc, "the model fails to run: ");
    const float *out = acv_graph_data(g, y);
    int64_t n = acv_shape_numel(acv_graph_shape(g, y));
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(out[i]))
            return acv_error(ACV_ENUMERIC, "the model outputs %s on a zero input (output %lld): its weights are "
                                           "broken", isnan(out[i]) ? "NaN" : "infinity", (long long)i);
    return 0;
}

/* Floats as JSON numbers with a float's precision (0.485, not 0.48500001430511475). */
static json_t *floats(const float *v, int n)
{
    json_t *a = json_array();
    for (int i = 0; a && i < n; i++) {
        char b[32];
        snprintf(b, sizeof b, "%.7g", (double)v[i]);
        json_array_append_new(a, json_real(strtod(b, NULL)));
    }
    return a;
}

/* Fills classes and info from the loaded model and its stored folder (s->vdir). */
static int staged_describe(staged *s)
{
    acv_model *m = s->m;
    struct stat st;
    char *w = acv_path_join(s->vdir, "weights.safetensors");
    int64_t size = w && stat(w, &st) == 0 ? (int64_t)st.st_size : 0;
    free(w);
    s->classes = json_array();
    for (int i = 0; s->classes && i < m->n_classes; i++) json_array_append_new(s->classes, json_string(m->classes[i]));
    s->info = json_pack("{s:I, s:f, s:I, s:s, s:{s:i, s:i, s:i, s:o, s:o, s:s}}", "params",
                        (json_int_t)acv_graph_num_params(m->graph), "gflops", acv_graph_gflops(m->graph), "size_bytes",
                        (json_int_t)size, "arch", m->arch, "input", "channels", m->in_c, "height", m->in_h, "width",
                        m->in_w, "mean", floats(m->mean, m->in_c), "std", floats(m->std, m->in_c), "resize",
                        m->resize[0] ? m->resize : "stretch");
    return s->classes && s->info ? 0 : acv_error(ACV_ENOMEM, "out of memory");
}

/* ---- the transaction that stores a staged version ------------------------------------------- */

static int commit_version(acv_dbconn *c, const acv_principal *who, const char *data_dir, const char *name,
                          staged *s, const char *description, const json_t *tags, json_t **out)
{
    char now[ACV_DB_TIME_LEN], rel[64], task[16] = "";
    acv_db_time(acv_db_now(), now);
    int64_t mid = 0, version = 0, vid = 0;
    char *abs = NULL, *parent = NULL;
    bool moved = false;
    json_t *empty_tags = json_array(), *empty_metrics = json_object();
    int rc = empty_tags && empty_metrics ? acv_db_begin(c) : acv_error(ACV_ENOMEM, "out of memory");
    if (rc) {
        json_decref(empty_tags);
        json_decref(empty_metrics);
        return rc;
    }
    rc = model_find(c, name, &mid, task);
    if (rc == ACV_ENOTFOUND) {
        rc = acv_db_exec(c,
                         "INSERT INTO models(name, task, project_id, created_by, created_at, updated_at) "
                         "VALUES(?, ?, NULLIF(?, 0), NULLIF(?, 0), ?, ?)",
                         "ssIIss", name, s->m->task, s->project_id, who ? who->user_id : 0, now, now);
        mid = acv_db_last_id(c);
        if (!rc)
            rc = acv_audit_write(c, who, "create", "model", mid, s->project_id,
                                 json_pack("{s:s, s:s}", "name", name, "task", s->m->task));
    } else if (!rc && strcmp(task, s->m->task)) {
        rc = acv_error(ACV_EEXIST, "model '%s' holds %s models; this one is a %s model (publish it under another name)",
                       name, task, s->m->task);
    }
    if (!rc)
        rc = acv_db_query_int(c, &version, 0, "SELECT COALESCE(MAX(version), 0) + 1 FROM model_versions WHERE model_id = ?",
                              "I", mid);
    if (!rc) {
        snprintf(rel, sizeof rel, "models/%lld/%lld", (long long)mid, (long long)version);
        rc = acv_db_exec(c,
                         "INSERT INTO model_versions(model_id, version, task, source, dir, description, tags_json, "
                         "classes_json, metrics_json, lineage_json, info_json, job_id, created_by, created_at) "
                         "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULLIF(?, 0), NULLIF(?, 0), ?)",
                         "IIssssjjjjjIIs", mid, version, s->m->task, s->source, rel, description ? description : "",
                         tags ? tags : empty_tags, s->classes, s->metrics ? s->metrics : empty_metrics, s->lineage,
                         s->info, s->job_id, who ? who->user_id : 0, now);
    }
    vid = rc ? 0 : acv_db_last_id(c);
    if (!rc) rc = acv_db_exec(c, "UPDATE models SET updated_at = ? WHERE id = ?", "sI", now, mid);
    if (!rc)
        rc = acv_audit_write(c, who, "create", "model_version", vid, s->project_id,
                             json_pack("{s:s, s:I, s:s, s:I}", "model", name, "version", (json_int_t)version, "source",
                                       s->source, "job_id", (json_int_t)s->job_id));
    /* The folder goes into place inside the transaction: a committed row always names a
     * complete folder. */
    if (!rc) {
        abs = acv_path_join(data_dir, rel);
        char prel[48];
        snprintf(prel, sizeof prel, "models/%lld", (long long)mid);
        parent = acv_path_join(data_dir, prel);
        if (!abs || !parent) rc = acv_error(ACV_ENOMEM, "out of memory");
    }
    if (!rc) rc = acv_mkdirs(parent);
    if (!rc) rc = acv_remove_tree(abs); /* a folder an earlier crash left without its row */
    if (!rc) {
        if (rename(s->vdir, abs)) rc = acv_error(ACV_EIO, "storing the model version in %s: %s", abs, strerror(errno));
        else moved = true;
    }
    if (!rc) rc = acv_fsync_dir(parent);
    rc = acv_db_end(c, rc);
    if (rc && moved) acv_remove_tree(abs);
    json_decref(empty_tags);
    json_decref(empty_metrics);
    free(abs);
    free(parent);
    if (!rc && out) rc = acv_models_version_get(c, name, (int)version, acv_models_viewer(who), out);
    return rc;
}

/* ---- uploads --------------------------------------------------------------------------------- */

/* The client's file name reduced to safe characters, ending in .onnx. */
static void onnx_name(const char *filename, char out[96])
{
    const char *base = filename ? strrchr(filename, '/') : NULL;
    base = base ? base + 1 : filename;
    size_t n = 0;
    for (const char *p = base; p && *p && n < 80; p++) {
        unsigned char ch = (unsigned char)*p;
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
                  ch == '_' || (ch == '.' && n > 0);
        out[n++] = ok ? (char)ch : '_';
    }
    out[n] = 0;
    if (n < 5 || strcmp(out + n - 5, ".onnx")) snprintf(out + n, 96 - n, "%s", n ? ".onnx" : "model.onnx");
}

static int classes_check(const json_t *classes)
{
    size_t n = json_array_size(classes);
    if (!json_is_array(classes) || n == 0) return acv_error(ACV_EINVAL, "field 'classes' must name at least one class");
    for (size_t i = 0; i < n; i++) {
        const char *s = json_string_value(json_array_get(classes, i));
        if (!s) return acv_error(ACV_EFORMAT, "field 'classes'[%zu] must be a string", i);
        if (text_ok(s, 200, "a class name")) return acv_error_prefix(ACV_EINVAL, "field 'classes'[%zu]: ", i);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(s, json_string_value(json_array_get(classes, j))))
                return acv_error(ACV_EINVAL, "field 'classes': '%s' appears twice", s);
    }
    return 0;
}

static int set_classes(acv_model *m, const json_t *classes)
{
    int n = (int)json_array_size(classes);
    if (n != m->n_classes)
        return acv_error(ACV_EINVAL, "field 'classes' names %d classes, the model has %d", n, m->n_classes);
    for (int i = 0; i < n; i++) {
        char *d = strdup(json_string_value(json_array_get(classes, (size_t)i)));
        if (!d) return acv_error(ACV_ENOMEM, "out of memory");
        free(m->classes[i]);
        m->classes[i] = d;
    }
    return 0;
}

static int prepare_onnx(staged *s, const acv_model_upload *u, char **original)
{
    char name[96];
    onnx_name(u->filename, name);
    char *path = acv_path_join(s->work, name), *cls = acv_path_join(s->work, "classes.txt");
    int rc = path && cls ? 0 : acv_error(ACV_ENOMEM, "out of memory");
    if (!rc) rc = link_or_copy(u->path, path);
    acv_onnx_options o = {0};
    o.imgsz = u->imgsz;
    o.task = u->task ? u->task : "cls";
    if (!rc && u->classes) {
        size_t len = 0;
        for (size_t i = 0; i < json_array_size(u->classes); i++)
            len += strlen(json_string_value(json_array_get(u->classes, i))) + 1;
        char *text = malloc(len + 1), *w = text;
        if (!text) rc = acv_error(ACV_ENOMEM, "out of memory");
        for (size_t i = 0; !rc && i < json_array_size(u->classes); i++)
            w += sprintf(w, "%s\n", json_string_value(json_array_get(u->classes, i)));
        if (!rc) rc = acv_file_write_atomic(cls, text, (size_t)(w - text));
        free(text);
        o.classes_file = cls;
    }
    if (u->nnorm) {
        o.has_norm = true;
        memcpy(o.mean, u->mean, sizeof o.mean);
        memcpy(o.std, u->std, sizeof o.std);
    }
    if (!rc) {
        rc = acv_onnx_import(path, &o, &s->m);
        if (rc == ACV_EINVAL && u->classes && strstr(acv_errmsg(), "class names"))
            rc = acv_error(ACV_EINVAL, "field 'classes' names %zu classes, %s", json_array_size(u->classes),
                           strstr(acv_errmsg(), "the model outputs") ? strstr(acv_errmsg(), "the model outputs")
                                                                     : "not as many as the model outputs");
    }
    if (!rc && u->nnorm && u->nnorm != s->m->in_c)
        rc = acv_error(ACV_EINVAL, "fields 'mean' and 'std' give %d values, the model has %d input channels", u->nnorm,
                       s->m->in_c);
    if (!rc && !u->classes) {
        /* Without names the importer numbers the classes: the file's metadata had none. */
        bool numbered = true;
        for (int i = 0; numbered && i < s->m->n_classes; i++) {
            char b[32];
            snprintf(b, sizeof b, "class_%d", i);
            numbered = !strcmp(s->m->classes[i], b);
        }
        if (numbered)
            rc = acv_error(ACV_EINVAL, "field 'classes' is required: the ONNX file names no classes in its metadata "
                                       "(send the %d class names as a JSON array or one per line)", s->m->n_classes);
    }
    free(cls);
    if (rc) {
        free(path);
        return rc;
    }
    *original = path;
    return 0;
}

/* Moves entry e (if any) of the extracted archive to dir/name. */
static int take_entry(acv__entry *e, const char *dir, const char *name)
{
    if (!e) return 0;
    char *dst = acv_path_join(dir, name);
    if (!dst) return acv_error(ACV_ENOMEM, "out of memory");
    int rc = rename(e->tmp, dst) ? acv_error(ACV_EIO, "%s: %s", dst, strerror(errno)) : 0;
    free(dst);
    return rc;
}

static int prepare_zip(staged *s, const acv_model_upload *u)
{
    acv_import_limits lim = {.max_entries = ACV_MODEL_ZIP_ENTRIES, .max_entry_bytes = (int64_t)u->max_bytes,
                             .max_total_bytes = (int64_t)u->max_bytes, .max_ratio = 100};
    if (!u->max_bytes) lim.max_entry_bytes = lim.max_total_bytes = 1LL << 30;
    acv__archive a;
    int rc = acv__archive_extract(u->path, s->work, &lim, &a);
    if (rc) return rc;
    acv__entry *mj = acv__archive_find(&a, "model.json");
    if (!mj) {
        mj = acv__archive_find_base(&a, "model.json");
        const char *slash = mj ? strchr(mj->path, '/') : NULL;
        if (slash && strchr(slash + 1, '/')) mj = NULL; /* deeper than one top folder */
    }
    char *top = mj ? acv__path_dir(mj->path) : NULL, *in = acv_path_join(s->work, "in");
    char wp[1100], mp[1100];
    snprintf(wp, sizeof wp, "%s%sweights.safetensors", top ? top : "", top && *top ? "/" : "");
    snprintf(mp, sizeof mp, "%s%smetrics.json", top ? top : "", top && *top ? "/" : "");
    acv__entry *we = mj ? acv__archive_find(&a, wp) : NULL;
    if (!in) rc = acv_error(ACV_ENOMEM, "out of memory");
    else if (!mj)
        rc = acv_error(ACV_EINVAL, "the zip holds no model.json: a model directory (model.json, weights.safetensors "
                                   "and optionally metrics.json) is expected, at the top or inside one folder");
    else if (!we) rc = acv_error(ACV_EINVAL, "the zip has %s but no %s beside it", mj->path, wp);
    if (!rc) rc = acv_mkdirs(in);
    if (!rc) rc = take_entry(mj, in, "model.json");
    if (!rc) rc = take_entry(we, in, "weights.safetensors");
    if (!rc) rc = take_entry(acv__archive_find(&a, mp), in, "metrics.json");
    acv__archive_free(&a);
    free(top);
    if (!rc) rc = acv_model_load(in, &s->m);
    free(in);
    if (rc) return rc;
    acv_model *m = s->m;
    if (u->task && strcmp(u->task, m->task))
        return acv_error(ACV_EINVAL, "field 'task' is '%s', but the model's model.json says '%s'", u->task, m->task);
    if (u->imgsz)
        return acv_error(ACV_EINVAL, "field 'imgsz' applies to .onnx files (a model directory has its input size)");
    if (u->classes && (rc = set_classes(m, u->classes))) return rc;
    if (u->nnorm) {
        if (u->nnorm != m->in_c)
            return acv_error(ACV_EINVAL, "fields 'mean' and 'std' give %d values, the model has %d input channels",
                             u->nnorm, m->in_c);
        memcpy(m->mean, u->mean, sizeof m->mean);
        memcpy(m->std, u->std, sizeof m->std);
    }
    return 0;
}

static bool is_zip(const char *path)
{
    unsigned char b[4] = {0};
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    size_t n = fread(b, 1, 4, f);
    fclose(f);
    return n == 4 && b[0] == 'P' && b[1] == 'K' && ((b[2] == 3 && b[3] == 4) || (b[2] == 5 && b[3] == 6));
}

int acv_models_upload(acv_dbconn *c, const acv_principal *who, const char *data_dir, const char *tmp_dir,
                      const char *name, const acv_model_upload *u, json_t **out)
{
    int rc = acv_models_name_ok(name);
    if (!rc && u->task && strcmp(u->task, "cls") && strcmp(u->task, "det") && strcmp(u->task, "seg"))
        rc = acv_error(ACV_EINVAL, "field 'task' must be cls, det or seg (got '%.20s')", u->task);
    if (!rc && u->classes) rc = classes_check(u->classes);
    if (!rc) rc = tags_ok(u->tags);
    if (!rc) rc = desc_ok(u->description);
    if (!rc && (u->imgsz < 0 || u->imgsz > 8192)) rc = acv_error(ACV_EINVAL, "field 'imgsz' must be in 1..8192");
    for (int i = 0; !rc && i < u->nnorm; i++)
        if (!(u->std[i] > 0) || !isfinite(u->mean[i]) || !isfinite(u->std[i]))
            rc = acv_error(ACV_EINVAL, "field 'std' must hold positive numbers and 'mean' finite ones");
    if (rc) return rc;
    struct stat st;
    if (stat(u->path, &st)) return acv_error(ACV_EIO, "the upload: %s", strerror(errno));
    if (st.st_size == 0) return acv_error(ACV_EINVAL, "the uploaded file is empty");
    staged s;
    char *original = NULL;
    bool zip = is_zip(u->path);
    rc = staged_init(&s, tmp_dir);
    if (!rc) rc = scrub(zip ? prepare_zip(&s, u) : prepare_onnx(&s, u, &original), s.work, true);
    if (!rc) rc = scrub(model_run_once(s.m), s.work, true);
    if (!rc) {
        const char *extra[] = {"original.onnx", original, NULL};
        rc = scrub(acv_model_save(s.m, s.vdir, original ? extra : NULL), s.work, false);
    }
    if (!rc) rc = staged_describe(&s);
    if (!rc) {
        s.source = "upload";
        const char *fn = u->filename && *u->filename ? u->filename : NULL;
        s.lineage = json_pack("{s:s, s:s?, s:s, s:s}", "source", "upload", "filename", fn, "format",
                              zip ? "zip" : "onnx", "uploaded_by", who ? who->username : "");
        if (!s.lineage) s.lineage = json_pack("{s:s, s:s}", "source", "upload", "format", zip ? "zip" : "onnx");
        if (s.lineage && s.m->provenance_json) {
            json_t *p = json_loads(s.m->provenance_json, 0, NULL);
            if (p) json_object_set_new(s.lineage, "provenance", p);
        }
        if (s.m->metrics_json) s.metrics = json_loads(s.m->metrics_json, JSON_DECODE_ANY, NULL);
        if (!s.lineage) rc = acv_error(ACV_ENOMEM, "out of memory");
    }
    if (!rc) rc = commit_version(c, who, data_dir, name, &s, u->description, u->tags, out);
    free(original);
    staged_free(&s);
    return rc;
}

/* ---- publishing a training job's model ------------------------------------------------------- */

int acv_models_job_project(acv_dbconn *c, int64_t job_id, int64_t *project_id)
{
    int rc = acv_db_query_int(c, project_id, 0, "SELECT project_id FROM jobs WHERE id = ?", "I", job_id);
    if (!rc && !*project_id) rc = acv_error(ACV_ENOTFOUND, "job %lld not found", (long long)job_id);
    return rc;
}

int acv_models_publish(acv_dbconn *c, const acv_principal *who, const char *data_dir, const char *tmp_dir,
                       const char *name, int64_t job_id, const char *description, const json_t *tags, json_t **out)
{
    int rc = acv_models_name_ok(name);
    if (!rc) rc = tags_ok(tags);
    if (!rc) rc = desc_ok(description);
    json_t *job = NULL;
    if (!rc)
        rc = acv_db_query_row(c, &job,
                              "SELECT j.id, j.project_id, j.kind, j.status, j.dataset_version_id, dv.name AS dsname, "
                              "j.algorithm, j.params_json, j.result_json, j.dir FROM jobs j LEFT JOIN dataset_versions "
                              "dv ON dv.id = j.dataset_version_id WHERE j.id = ?",
                              "I", job_id);
    if (!rc && !job) rc = acv_error(ACV_ENOTFOUND, "job %lld not found", (long long)job_id);
    if (rc) return rc;
    const char *kind = json_string_value(json_object_get(job, "kind"));
    const char *status = json_string_value(json_object_get(job, "status"));
    const char *dir = json_string_value(json_object_get(job, "dir"));
    if (strcmp(kind, "train"))
        rc = acv_error(ACV_EEXIST, "job %lld is a%s %s job: only a training job's model can be published",
                       (long long)job_id, kind[0] == 'e' ? "n" : "", kind);
    else if (strcmp(status, "succeeded"))
        rc = acv_error(ACV_EEXIST, "job %lld is %s: only a job that succeeded can be published", (long long)job_id,
                       status);
    char jrel[64];
    if (!dir || !*dir) {
        snprintf(jrel, sizeof jrel, "jobs/%lld", (long long)job_id);
        dir = jrel;
    }
    staged s;
    memset(&s, 0, sizeof s);
    char *jdir = NULL, *mdir = NULL;
    if (!rc) {
        jdir = acv_path_join(data_dir, dir);
        mdir = jdir ? acv_path_join(jdir, "model") : NULL;
        rc = mdir ? 0 : acv_error(ACV_ENOMEM, "out of memory");
    }
    if (!rc && !acv_is_dir(mdir))
        rc = acv_error(ACV_ENOTFOUND, "job %lld has no model folder (%s/model): it was removed", (long long)job_id, dir);
    if (!rc) rc = staged_init(&s, tmp_dir);
    if (!rc) rc = acv_mkdirs(s.vdir);
    static const char *const FILES[] = {"model.json", "weights.safetensors", "metrics.json"};
    for (int i = 0; !rc && i < 3; i++) {
        char *src = acv_path_join(mdir, FILES[i]), *dst = acv_path_join(s.vdir, FILES[i]);
        if (!src || !dst) rc = acv_error(ACV_ENOMEM, "out of memory");
        else if (acv_path_exists(src)) rc = link_or_copy(src, dst);
        else if (i < 2) rc = acv_error(ACV_ENOTFOUND, "job %lld: %s/model/%s is missing", (long long)job_id, dir, FILES[i]);
        free(src);
        free(dst);
    }
    if (!rc) rc = scrub(acv_model_load(s.vdir, &s.m), s.work, true);
    if (!rc) rc = scrub(model_run_once(s.m), s.work, true);
    if (!rc) rc = staged_describe(&s);
    if (!rc) {
        s.source = "job";
        s.job_id = job_id;
        s.project_id = json_integer_value(json_object_get(job, "project_id"));
        s.metrics = s.m->metrics_json ? json_loads(s.m->metrics_json, JSON_DECODE_ANY, NULL) : NULL;
        if (!s.metrics) s.metrics = json_incref(json_object_get(job, "result"));
        json_t *params = json_object_get(job, "params");
        s.lineage = json_pack("{s:I, s:O?, s:O?, s:I, s:O?, s:O?, s:s}", "job_id", (json_int_t)job_id,
                              "dataset_version_id", json_object_get(job, "dataset_version_id"), "dataset_version",
                              json_object_get(job, "dsname"), "project_id", (json_int_t)s.project_id, "algorithm",
                              json_object_get(job, "algorithm"), "params", json_is_object(params) ? params : NULL,
                              "published_by", who ? who->username : "");
        if (!s.lineage) rc = acv_error(ACV_ENOMEM, "out of memory");
    }
    if (!rc) rc = commit_version(c, who, data_dir, name, &s, description, tags, out);
    staged_free(&s);
    free(jdir);
    free(mdir);
    json_decref(job);
    return rc;
}

/* ---- download ---------------------------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int acv_models_zip(const char *dir, const char *zip_path)
{
    DIR *d = opendir(dir);
    if (!d) return acv_error(ACV_ENOTFOUND, "the model folder is missing (%s)", strerror(errno));
    char *names[64];
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) && n < 64;)
        if (e->d_name[0] != '.' && (names[n] = strdup(e->d_name))) n++;
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    struct archive *ar = archive_write_new();
    int rc = ar ? 0 : acv_error(ACV_ENOMEM, "out of memory");
    if (!rc && (archive_write_set_format_zip(ar) != ARCHIVE_OK || archive_write_open_filename(ar, zip_path) != ARCHIVE_OK))
        rc = acv_error(ACV_EIO, "%s: %s", zip_path, archive_error_string(ar));
    char *buf = rc ? NULL : malloc(1 << 16);
    if (!rc && !buf) rc = acv_error(ACV_ENOMEM, "out of memory");
    for (int i = 0; !rc && i < n; i++) {
        char *p = acv_path_join(dir, names[i]);
        struct stat st;
        int fd = p ? open(p, O_RDONLY | O_CLOEXEC) : -1;
        if (fd < 0 || fstat(fd, &st) || !S_ISREG(st.st_mode)) {
            if (fd >= 0) close(fd);
            free(p);
            continue;
        }
        struct archive_entry *en = archive_entry_new();
        archive_entry_set_pathname(en, names[i]);
        archive_entry_set_size(en, st.st_size);
        archive_entry_set_filetype(en, AE_IFREG);
        archive_entry_set_perm(en, 0644);
        archive_entry_set_mtime(en, st.st_mtime, 0);
        /* weights do not compress: store them, deflate the JSON */
        if (!strcmp(acv_path_ext(names[i]), "json")) archive_write_zip_set_compression_deflate(ar);
        else archive_write_zip_set_compression_store(ar);
        if (archive_write_header(ar, en) != ARCHIVE_OK) rc = acv_error(ACV_EIO, "zip: %s", archive_error_string(ar));
        archive_entry_free(en);
        for (ssize_t got; !rc && (got = read(fd, buf, 1 << 16)) != 0;) {
            if (got < 0 && errno == EINTR) continue;
            if (got < 0) rc = acv_error(ACV_EIO, "%s: %s", names[i], strerror(errno));
            else if (archive_write_data(ar, buf, (size_t)got) != got)
                rc = acv_error(ACV_EIO, "zip: %s", archive_error_string(ar));
        }
        close(fd);
        free(p);
    }
    if (ar && archive_write_close(ar) != ARCHIVE_OK && !rc) rc = acv_error(ACV_EIO, "zip: %s", archive_error_string(ar));
    if (ar) archive_write_free(ar);
    free(buf);
    for (int i = 0; i < n; i++) free(names[i]);
    if (rc) unlink(zip_path);
    return rc;
}
