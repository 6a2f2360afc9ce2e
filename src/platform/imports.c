/* Archive imports: the record, layout detection, staging every image, then one transaction
 * for labels, images, the annotation set and its items (see imports.h). */
#include "platform/imports.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "autocv/error.h"
#include "base/log.h"
#include "platform/annotation_doc.h"
#include "platform/audit.h"
#include "platform/import_internal.h"
#include "platform/labels.h"

#define IMPORT_COLS                                                                                         \
    "id, project_id, filename, format, status, set_id, summary_json, error, created_by, created_at, finished_at"

/* ---- records ---------------------------------------------------------------------------------- */

int acv_import_get(acv_dbconn *c, int64_t id, json_t **out)
{
    int rc = acv_db_query_row(c, out, "SELECT " IMPORT_COLS " FROM imports WHERE id = ?", "I", id);
    if (!rc && !*out) rc = acv_error(ACV_ENOTFOUND, "import %lld not found", (long long)id);
    return rc;
}

int acv_import_project(acv_dbconn *c, int64_t id, int64_t *project_id)
{
    int rc = acv_db_query_int(c, project_id, 0, "SELECT project_id FROM imports WHERE id = ?", "I", id);
    if (!rc && *project_id == 0) rc = acv_error(ACV_ENOTFOUND, "import %lld not found", (long long)id);
    return rc;
}

int acv_import_list(acv_dbconn *c, int64_t project_id, int limit, int offset, json_t **items, int64_t *total)
{
    int rc = acv_db_query_int(c, total, 0, "SELECT count(*) FROM imports WHERE project_id = ?", "I", project_id);
    if (!rc)
        rc = acv_db_query(c, items, "SELECT " IMPORT_COLS " FROM imports WHERE project_id = ? ORDER BY id DESC "
                                    "LIMIT ? OFFSET ?", "Iii", project_id, limit, offset);
    return rc;
}

int acv_import_recover(acv_dbconn *c)
{
    char now[ACV_DB_TIME_LEN];
    acv_db_time(acv_db_now(), now);
    return acv_db_exec(c,
                       "UPDATE imports SET status = 'failed', error = 'interrupted: the server stopped during the "
                       "import (nothing of it was kept)', finished_at = ? WHERE status IN ('queued', 'running')",
                       "s", now);
}

/* ---- the import --------------------------------------------------------------------------------- */

static void plan_free(acv__plan *p)
{
    for (size_t i = 0; i < p->n; i++) {
        json_decref(p->items[i].raw);
        json_decref(p->items[i].doc);
    }
    free(p->items);
    json_decref(p->labels);
    json_decref(p->skipped);
    json_decref(p->layout);
}

/* The set name from the archive's name: extensions (.zip, .tar, .tar.gz, ...) removed. */
static void set_name_of(const char *filename, char out[ACV_IMAGE_NAME_MAX + 1])
{
    static const char *const EXT[] = {".tar.gz", ".tar.bz2", ".tar.xz", ".tgz", ".tbz2", ".txz", ".zip", ".tar", NULL};
    acv_image_clean_name(filename, out);
    size_t n = strlen(out);
    for (int i = 0; EXT[i]; i++) {
        size_t k = strlen(EXT[i]);
        if (n > k && !strcasecmp(out + n - k, EXT[i])) {
            out[n - k] = 0;
            break;
        }
    }
    if (strlen(out) > 200) out[200] = 0;
}

/* Layouts in order of specificity. */
static int detect(acv__archive *a, acv__plan *p)
{
    int (*const READERS[])(acv__archive *, acv__plan *, bool *) = {acv__plan_voc, acv__plan_coco, acv__plan_yolo,
                                                                      acv__plan_folder};
    for (size_t i = 0; i < sizeof READERS / sizeof READERS[0]; i++) {
        bool found = false;
        int rc = READERS[i](a, p, &found);
        if (rc) return rc;
        if (!found) continue;
        /* Images in a format the decoder does not read are named, never passed over (the folder
           layouts list every file that is not an image themselves). */
        for (size_t j = 0; strcmp(p->format, "imagefolder") && strcmp(p->format, "images") && j < a->n; j++)
            if (!a->e[j].used && acv__is_other_image_name(a->e[j].path)) {
                a->e[j].used = true;
                acv__plan_skip(p, a->e[j].path, "not a JPEG, PNG or BMP image (convert it to import it)");
            }
        return 0;
    }
    return acv_error(ACV_EINVAL, "no image (.jpg, .jpeg, .png, .bmp) in the archive; expected an ImageFolder, COCO, "
                                 "YOLO or Pascal VOC layout");
}

static bool skippable(int rc) { return rc == ACV_EFORMAT || rc == ACV_ERANGE || rc == ACV_EUNSUPPORTED; }

/* Stages every planned image and builds its document; unreadable ones are skipped. */
static int stage_all(acv_dbconn *c, acv_blob_batch *batch, int64_t project_id, acv__plan *p)
{
    json_t *seen = json_object(); /* hash -> path of the first image with those bytes */
    if (!seen) return acv_error(ACV_ENOMEM, "out of memory");
    int rc = 0;
    for (size_t i = 0; !rc && i < p->n; i++) {
        acv__item *it = &p->items[i];
        int s = acv_image_stage(batch, c, project_id, it->img->tmp, it->img->path, &it->st);
        free(it->img->tmp);
        it->img->tmp = NULL; /* consumed */
        if (s) {
            if (!skippable(s)) rc = s;
            else acv__plan_skip(p, it->img->path, "%s", acv_errmsg());
            it->skip = true;
            continue;
        }
        json_t *first = json_object_get(seen, it->st.hash);
        if (first) {
            acv__plan_skip(p, it->img->path, "the same bytes as %s", json_string_value(first));
            it->skip = true;
            continue;
        }
        json_object_set_new(seen, it->st.hash, json_string(it->img->path));
        it->width = it->st.width;
        it->height = it->st.height;
        if (it->st.existing_id) {
            json_t *row = NULL;
            rc = acv_db_query_row(c, &row, "SELECT width, height FROM images WHERE id = ?", "I", it->st.existing_id);
            it->width = (int)json_integer_value(json_object_get(row, "width"));
            it->height = (int)json_integer_value(json_object_get(row, "height"));
            json_decref(row);
            if (rc) break;
        }
        s = p->convert(p, it, it->width, it->height);
        if (s == ACV_EINVAL) {
            acv__plan_skip(p, it->img->path, "%s", acv_errmsg());
            it->skip = true;
        } else if (s) {
            rc = s;
        }
    }
    json_decref(seen);
    return rc;
}

typedef struct counts {
    int64_t images, existing, labels, annotations, set_id;
    const char *task;
} counts;

/* Label names as documents store them: a label's name, or the name of the one label whose
 * alias it is (as annotation saves resolve them); cached per import. */
typedef struct resolver {
    acv_dbconn *c;
    int64_t project_id;
    json_t *cache; /* name -> canonical name */
} resolver;

/* *canon NULL (and 0) when name is neither a label nor an unambiguous alias. */
static int lookup_label(resolver *r, const char *name, const char **canon)
{
    *canon = NULL;
    json_t *hit = json_object_get(r->cache, name);
    if (hit) {
        *canon = json_string_value(hit);
        return 0;
    }
    int64_t id = 0;
    int rc = acv_db_query_int(r->c, &id, 0, "SELECT id FROM labels WHERE project_id = ? AND name = ?", "Is",
                              r->project_id, name);
    const char *found = id ? name : NULL;
    json_t *rows = NULL;
    if (!rc && !id) {
        rc = acv_db_query(r->c, &rows,
                          "SELECT l.name FROM labels l, json_each(l.aliases_json) a WHERE l.project_id = ? "
                          "AND a.value = ? GROUP BY l.id ORDER BY l.name LIMIT 2",
                          "Is", r->project_id, name);
        if (!rc && json_array_size(rows) == 1) found = json_string_value(json_object_get(json_array_get(rows, 0), "name"));
    }
    if (!rc && found) {
        json_object_set_new(r->cache, name, json_string(found));
        *canon = json_string_value(json_object_get(r->cache, name));
    }
    json_decref(rows);
    return rc;
}

static int resolve_label(void *ud, const char *name, const char **canon)
{
    resolver *r = ud;
    int rc = lookup_label(r, name, canon);
    if (!rc && !*canon)
        rc = acv_error(ACV_EINVAL, "unknown label '%s' (not a label or an alias in project %lld)", name,
                       (long long)r->project_id);
    return rc;
}

/* Creates the labels the project lacks (one acv_label_import, audited there): class names
 * that are neither a label nor an alias of one. */
static int create_labels(resolver *r, const acv_principal *who, const json_t *names, int64_t *created)
{
    json_t *missing = json_array();
    int rc = missing ? 0 : acv_error(ACV_ENOMEM, "out of memory");
    for (size_t i = 0; !rc && i < json_array_size(names); i++) {
        const char *n = json_string_value(json_array_get(names, i)), *canon;
        rc = lookup_label(r, n, &canon);
        if (!rc && !canon) json_array_append_new(missing, json_pack("{s:s}", "name", n));
    }
    *created = (int64_t)json_array_size(missing);
    if (!rc && *created) rc = acv_label_import(r->c, who, r->project_id, missing, "import", NULL);
    json_decref(missing);
    return rc;
}

/* The set's task: cls for class folders, seg when a polygon or mask appears, else det. */
static const char *task_of(const acv__plan *p)
{
    if (!strcmp(p->format, "imagefolder")) return "cls";
    for (size_t i = 0; i < p->n; i++) {
        json_t *shapes = json_object_get(p->items[i].doc, "shapes");
        for (size_t j = 0; !p->items[i].skip && j < json_array_size(shapes); j++)
            if (strcmp(json_string_value(json_object_get(json_array_get(shapes, j), "type")), "box")) return "seg";
    }
    return "det";
}

/* In a seg set: boxes become their rectangles as polygons. */
static void boxes_to_polygons(json_t *doc)
{
    json_t *shapes = json_object_get(doc, "shapes");
    for (size_t j = 0; j < json_array_size(shapes); j++) {
        json_t *s = json_array_get(shapes, j);
        if (strcmp(json_string_value(json_object_get(s, "type")), "box")) continue;
        double x = json_number_value(json_object_get(s, "x")), y = json_number_value(json_object_get(s, "y"));
        double w = json_number_value(json_object_get(s, "w")), h = json_number_value(json_object_get(s, "h"));
        json_t *poly = json_pack("{s:s, s:O, s:[[o,o],[o,o],[o,o],[o,o]], s:s}", "type", "polygon", "label",
                                 json_object_get(s, "label"), "points", acv__num(x), acv__num(y), acv__num(x + w),
                                 acv__num(y), acv__num(x + w), acv__num(y + h), acv__num(x), acv__num(y + h), "source",
                                 "human");
        static const char *const FLAGS[] = {"difficult", "iscrowd"};
        for (int f = 0; poly && f < 2; f++)
            if (json_is_true(json_object_get(s, FLAGS[f]))) json_object_set_new(poly, FLAGS[f], json_true());
        if (poly) json_array_set_new(shapes, j, poly);
    }
}

/* A free set name: the name itself, else "name (2)", "name (3)", ... */
static int unique_set_name(acv_dbconn *c, int64_t project_id, const char *base, bool must_be_free, char *out,
                           size_t n)
{
    snprintf(out, n, "%s", base);
    for (int k = 2;; k++) {
        int64_t id = 0;
        int rc = acv_db_query_int(c, &id, 0, "SELECT id FROM annotation_sets WHERE project_id = ? AND name = ?", "Is",
                                  project_id, out);
        if (rc || !id) return rc;
        if (must_be_free) return acv_error(ACV_EEXIST, "annotation set '%s' already exists in this project", base);
        snprintf(out, n, "%s (%d)", base, k);
    }
}

/* The first reason images were skipped, for an error that says why nothing was imported. */
static const char *first_reason(const acv__plan *p)
{
    json_t *s = json_array_get(p->skipped, 0);
    return s ? json_string_value(json_object_get(s, "reason")) : NULL;
}

static int write_all(acv_dbconn *c, const acv_principal *who, const acv_import_args *args, int64_t import_id,
                     acv__plan *p, counts *k)
{
    int64_t pid = args->project_id;
    char now[ACV_DB_TIME_LEN];
    acv_db_time(acv_db_now(), now);
    resolver res = {c, pid, json_object()};
    if (!res.cache) return acv_error(ACV_ENOMEM, "out of memory");
    int rc = create_labels(&res, who, p->labels, &k->labels);
    bool set = strcmp(p->format, "images") != 0;
    acv_ann_task task = ACV_ANN_DET;
    if (!rc && set) {
        k->task = task_of(p);
        rc = acv_ann_task_parse(k->task, &task);
        char base[ACV_IMAGE_NAME_MAX + 1], name[ACV_IMAGE_NAME_MAX + 32];
        if (args->set_name) snprintf(base, sizeof base, "%s", args->set_name);
        else set_name_of(args->filename && *args->filename ? args->filename : "import", base);
        if (!base[0]) snprintf(base, sizeof base, "import %lld", (long long)import_id);
        if (!rc) rc = unique_set_name(c, pid, base, args->set_name != NULL, name, sizeof name);
        if (!rc)
            rc = acv_db_exec(c,
                             "INSERT INTO annotation_sets(project_id, name, task, created_by, created_at, updated_at) "
                             "VALUES(?, ?, ?, NULLIF(?, 0), ?, ?)",
                             "IssIss", pid, name, k->task, who->user_id, now, now);
        if (!rc) k->set_id = acv_db_last_id(c);
    }
    for (size_t i = 0; !rc && i < p->n; i++) {
        acv__item *it = &p->items[i];
        if (it->skip) continue;
        json_t *doc = NULL;
        if (set) {
            /* The stored form an annotator's save would produce; one that is not valid skips
             * the image. */
            if (task == ACV_ANN_SEG) boxes_to_polygons(it->doc);
            int v = acv_ann_doc_validate(it->doc, task, it->width, it->height, resolve_label, &res, NULL, &doc);
            if (v == ACV_EINVAL || v == ACV_EFORMAT) {
                acv__plan_skip(p, it->img->path, "%s", acv_errmsg());
                it->skip = true;
                continue;
            }
            if ((rc = v)) break;
        }
        bool existed;
        rc = acv_image_add(c, who, pid, &it->st, it->img->path, "import", import_id, &it->image_id, &existed);
        if (!rc && existed) k->existing++;
        else if (!rc) k->images++;
        if (!rc && set) {
            size_t ntags = json_array_size(json_object_get(doc, "tags"));
            k->annotations += (int64_t)(ntags + json_array_size(json_object_get(doc, "shapes")));
            /* Reviewers check imported work; a cls image without a class still needs one. */
            const char *status = task == ACV_ANN_CLS && !ntags ? "new" : "submitted";
            rc = acv_db_exec(c,
                             "INSERT INTO annotation_items(set_id, image_id, status, revision, doc_json, annotated_by, "
                             "annotated_at, updated_at) VALUES(?, ?, ?, 1, ?, NULLIF(?, 0), ?, ?)",
                             "IIsjIss", k->set_id, it->image_id, status, doc, who->user_id, now, now);
        }
        json_decref(doc);
    }
    json_decref(res.cache);
    if (!rc && k->images + k->existing == 0)
        rc = acv_error(ACV_EINVAL, "no image of the archive could be imported%s%s", first_reason(p) ? ": " : "",
                       first_reason(p) ? first_reason(p) : "");
    json_t *summary = NULL;
    if (!rc) {
        summary = json_pack("{s:s, s:s?, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "format", p->format, "task",
                            set ? k->task : NULL, "images", (json_int_t)k->images, "images_existing",
                            (json_int_t)k->existing, "labels_created", (json_int_t)k->labels, "annotations",
                            (json_int_t)k->annotations, "difficult", (json_int_t)p->difficult, "crowd",
                            (json_int_t)p->crowd, "skipped", (json_int_t)p->nskipped);
        if (!summary) rc = acv_error(ACV_ENOMEM, "out of memory");
    }
    if (!rc)
        rc = acv_db_exec(c,
                         "UPDATE imports SET status = 'succeeded', format = ?, set_id = NULLIF(?, 0), summary_json = ?, "
                         "finished_at = ? WHERE id = ?",
                         "sIjsI", p->format, k->set_id, summary, now, import_id);
    if (!rc) {
        json_t *details = json_deep_copy(summary);
        json_object_set_new(details, "filename", json_string(args->filename ? args->filename : ""));
        if (k->set_id) json_object_set_new(details, "set_id", json_integer(k->set_id));
        rc = acv_audit_write(c, who, "import", "import", import_id, pid, details);
    }
    json_decref(summary);
    return rc;
}

int acv_import_run(acv_dbconn *c, acv_blobs *b, const acv_principal *who, const acv_import_args *args,
                   json_t **result, int64_t *import_id)
{
    *result = NULL;
    if (import_id) *import_id = 0;
    char fname[ACV_IMAGE_NAME_MAX + 1], now[ACV_DB_TIME_LEN];
    acv_image_clean_name(args->filename && *args->filename ? args->filename : "import", fname);
    if (!fname[0]) snprintf(fname, sizeof fname, "import");
    acv_db_time(acv_db_now(), now);
    int rc = acv_db_exec(c,
                         "INSERT INTO imports(project_id, filename, status, created_by, created_at) "
                         "VALUES(?, ?, 'running', NULLIF(?, 0), ?)",
                         "IsIs", args->project_id, fname, who->user_id, now);
    if (rc) return rc;
    int64_t id = acv_db_last_id(c);
    if (import_id) *import_id = id;

    acv__archive ar;
    acv__plan plan = {.labels = json_array(), .skipped = json_array()};
    acv_blob_batch *batch = NULL;
    counts k = {0};
    if (!plan.labels || !plan.skipped) rc = acv_error(ACV_ENOMEM, "out of memory");
    if (!rc) rc = acv__archive_extract(args->archive_path, args->tmp_dir, args->limits, &ar);
    bool extracted = rc == 0;
    if (!rc) rc = detect(&ar, &plan);
    if (!rc && plan.n == 0)
        rc = acv_error(ACV_EINVAL, "no image of the archive matches its %s annotations%s%s", plan.format,
                       first_reason(&plan) ? ": " : "", first_reason(&plan) ? first_reason(&plan) : "");
    if (!rc) rc = acv_blobs_batch_new(b, &batch);
    if (!rc) rc = stage_all(c, batch, args->project_id, &plan);
    if (!rc) {
        size_t ok = 0;
        for (size_t i = 0; i < plan.n; i++) ok += !plan.items[i].skip;
        if (!ok)
            rc = acv_error(ACV_EINVAL, "none of the %zu images of the archive could be imported%s%s", plan.n,
                           first_reason(&plan) ? ": " : "", first_reason(&plan) ? first_reason(&plan) : "");
    }
    if (!rc) rc = acv_blobs_batch_sync(batch);
    if (!rc && !(rc = acv_db_begin(c))) rc = acv_db_end(c, write_all(c, who, args, id, &plan, &k));
    acv_blobs_batch_end(batch, c);
    if (extracted) acv__archive_free(&ar);

    if (rc) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", acv_errmsg());
        acv_db_time(acv_db_now(), now);
        if (acv_db_exec(c, "UPDATE imports SET status = 'failed', format = ?, error = ?, finished_at = ? WHERE id = ?",
                        "sssI", plan.format, msg, now, id))
            acv_warn("import %lld: cannot record its failure: %s", (long long)id, acv_errmsg());
        plan_free(&plan);
        return acv_error(rc, "%s", msg);
    }
    json_t *rec = NULL;
    rc = acv_import_get(c, id, &rec);
    if (!rc) {
        *result = json_pack("{s:o, s:o, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:O, s:I}", "import", rec, "set_id",
                            k.set_id ? json_integer(k.set_id) : json_null(), "format", plan.format, "images",
                            (json_int_t)k.images, "images_existing", (json_int_t)k.existing, "labels_created",
                            (json_int_t)k.labels, "annotations", (json_int_t)k.annotations, "difficult",
                            (json_int_t)plan.difficult, "crowd", (json_int_t)plan.crowd, "skipped", plan.skipped,
                            "skipped_total", (json_int_t)plan.nskipped);
        if (!*result) rc = acv_error(ACV_ENOMEM, "out of memory");
    }
    plan_free(&plan);
    return rc;
}
