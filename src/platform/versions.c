/* Dataset versions: snapshot, stratified split, content hash, counts (see versions.h). */
#include "platform/versions.h"

#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autocv/error.h"
#include "base/rng.h"
#include "platform/annotation_doc.h"
#include "platform/annotations.h"
#include "platform/audit.h"
#include "platform/blobs.h"
#include "platform/jsonarg.h"

static const char *const SPLITS[3] = {"train", "val", "test"};

const char *acv_split_name(int split) { return split >= 0 && split < 3 ? SPLITS[split] : "?"; }

/* ---- the split ------------------------------------------------------------------------- */

typedef struct strat_ref {
    const char *stratum;
    int index;
} strat_ref;

static int cmp_strat(const void *a, const void *b)
{
    const strat_ref *x = a, *y = b;
    int c = strcmp(x->stratum, y->stratum);
    return c ? c : (x->index > y->index) - (x->index < y->index);
}

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

int acv_version_split(const char *const *strata, int n, const double frac[3], uint64_t seed, int *out)
{
    strat_ref *v = malloc((size_t)(n > 0 ? n : 1) * sizeof *v);
    int *order = malloc((size_t)(n > 0 ? n : 1) * sizeof *order);
    if (!v || !order) {
        free(v);
        free(order);
        return acv_error(ACV_ENOMEM, "out of memory");
    }
    for (int i = 0; i < n; i++) v[i] = (strat_ref){strata[i] ? strata[i] : "", i};
    qsort(v, (size_t)n, sizeof *v, cmp_strat);
    for (int g0 = 0; g0 < n;) {
        int g1 = g0;
        while (g1 < n && !strcmp(v[g1].stratum, v[g0].stratum)) g1++;
        int g = g1 - g0;
        for (int j = 0; j < g; j++) order[j] = v[g0 + j].index;
        acv_rng rng;
        acv_rng_seed3(&rng, seed, fnv1a(v[g0].stratum), 0x5e1ec7ull);
        acv_rng_shuffle(&rng, order, g);
        int nval = (int)floor(frac[ACV_SPLIT_VAL] * g + 0.5), ntest = (int)floor(frac[ACV_SPLIT_TEST] * g + 0.5);
        int keep = frac[ACV_SPLIT_TRAIN] > 0 ? 1 : 0; /* training images every group keeps */
        while (nval + ntest > g - keep && (ntest > 0 || nval > 0)) {
            if (ntest >= nval && ntest > 0) ntest--;
            else nval--;
        }
        for (int j = 0; j < g; j++)
            out[order[j]] = j < nval ? ACV_SPLIT_VAL : j < nval + ntest ? ACV_SPLIT_TEST : ACV_SPLIT_TRAIN;
        g0 = g1;
    }
    free(v);
    free(order);
    return 0;
}

/* ---- reads ------------------------------------------------------------------------------ */

#define VERSION_SELECT                                                                                       \
    "SELECT v.id, v.project_id, v.set_id, v.name, v.task, v.split_json, v.seed, v.content_hash, "            \
    "v.labels_json, v.counts_json, v.created_by, u.username AS creator, v.created_at, "                      \
    "(SELECT COUNT(*) FROM dataset_version_items d WHERE d.version_id = v.id) AS image_count "              \
    "FROM dataset_versions v LEFT JOIN users u ON u.id = v.created_by "

int acv_version_project(acv_dbconn *c, int64_t id, int64_t *project_id)
{
    int rc = acv_db_query_int(c, project_id, 0, "SELECT project_id FROM dataset_versions WHERE id = ?", "I", id);
    if (!rc && !*project_id) rc = acv_error(ACV_ENOTFOUND, "dataset version %lld not found", (long long)id);
    return rc;
}

int acv_version_get(acv_dbconn *c, int64_t id, json_t **out)
{
    int rc = acv_db_query_row(c, out, VERSION_SELECT "WHERE v.id = ?", "I", id);
    if (!rc && !*out) rc = acv_error(ACV_ENOTFOUND, "dataset version %lld not found", (long long)id);
    return rc;
}

int acv_version_list(acv_dbconn *c, int64_t project_id, int64_t set_id, int limit, int offset, json_t **items,
                     int64_t *total)
{
    int rc = acv_db_query_int(c, total, 0,
                              "SELECT COUNT(*) FROM dataset_versions WHERE project_id = ?1 AND (?2 = 0 OR set_id = ?2)",
                              "II", project_id, set_id);
    if (!rc)
        rc = acv_db_query(c, items,
                          VERSION_SELECT "WHERE v.project_id = ?1 AND (?2 = 0 OR v.set_id = ?2) ORDER BY v.id DESC "
                                         "LIMIT ?3 OFFSET ?4",
                          "IIii", project_id, set_id, limit, offset);
    size_t i;
    json_t *v;
    json_array_foreach(rc ? NULL : *items, i, v) {
        json_object_set_new(v, "label_count", json_integer((json_int_t)json_array_size(json_object_get(v, "labels"))));
        json_object_del(v, "labels");
        json_object_del(json_object_get(v, "counts"), "classes");
    }
    return rc;
}

int acv_version_items(acv_dbconn *c, int64_t id, const char *split, int limit, int offset, json_t **items,
                      int64_t *total)
{
    if (split && strcmp(split, "train") && strcmp(split, "val") && strcmp(split, "test"))
        return acv_error(ACV_EFORMAT, "query parameter 'split': '%s' is not train, val or test", split);
    int rc = acv_db_query_int(c, total, 0,
                              "SELECT COUNT(*) FROM dataset_version_items WHERE version_id = ?1 AND (?2 IS NULL OR "
                              "split = ?2)",
                              "Is", id, split);
    if (!rc)
        rc = acv_db_query(c, items,
                          "SELECT image_id, blob_hash, filename, width, height, split, doc_json FROM "
                          "dataset_version_items WHERE version_id = ?1 AND (?2 IS NULL OR split = ?2) ORDER BY "
                          "image_id LIMIT ?3 OFFSET ?4",
                          "Isii", id, split, limit, offset);
    size_t i;
    json_t *v;
    json_array_foreach(rc ? NULL : *items, i, v) {
        json_t *doc = json_incref(json_object_get(v, "doc"));
        json_object_del(v, "doc");
        json_object_set(v, "tags", json_object_get(doc, "tags"));
        json_object_set(v, "shapes", json_object_get(doc, "shapes"));
        json_decref(doc);
    }
    return rc;
}

/* ---- the snapshot ----------------------------------------------------------------------- */

typedef struct vitem {
    json_t *row;        /* image_id, blob_hash, filename, width, height (borrowed from rows) */
    json_t *doc;        /* the document (owned reference) */
    const char *stratum;
    int split;
} vitem;

static int cmp_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The stratum of a document with names: see versions.h. */
static const char *stratum_of(const json_t *doc, const char *task)
{
    const json_t *tags = json_object_get(doc, "tags"), *shapes = json_object_get(doc, "shapes");
    const char *first_tag = json_array_size(tags) ? json_string_value(json_array_get(tags, 0)) : "";
    if (!strcmp(task, "cls") || !json_array_size(shapes)) return first_tag;
    const char *best = "";
    size_t best_n = 0, n = json_array_size(shapes);
    for (size_t i = 0; i < n; i++) {
        const char *l = json_string_value(json_object_get(json_array_get(shapes, i), "label"));
        size_t cnt = 0;
        for (size_t j = 0; j < n; j++)
            cnt += !strcmp(l, json_string_value(json_object_get(json_array_get(shapes, j), "label")));
        if (cnt > best_n || (cnt == best_n && strcmp(l, best) < 0)) best = l, best_n = cnt;
    }
    return best;
}

/* counts["classes"][name][kind][split] += 1 (and total). */
static void bump(json_t *classes, const char *name, const char *kind, int split)
{
    json_t *c = json_object_get(classes, name);
    if (!c) {
        c = json_pack("{s:{s:i, s:i, s:i, s:i}, s:{s:i, s:i, s:i, s:i}}", "images", "train", 0, "val", 0, "test", 0,
                      "total", 0, "instances", "train", 0, "val", 0, "test", 0, "total", 0);
        json_object_set_new(classes, name, c);
    }
    json_t *k = json_object_get(c, kind);
    json_object_set_new(k, SPLITS[split], json_integer(json_integer_value(json_object_get(k, SPLITS[split])) + 1));
    json_object_set_new(k, "total", json_integer(json_integer_value(json_object_get(k, "total")) + 1));
}

static json_t *count_all(const vitem *items, size_t n)
{
    json_t *classes = json_object();
    int64_t per[3] = {0, 0, 0};
    for (size_t i = 0; i < n; i++) {
        const vitem *it = &items[i];
        per[it->split]++;
        json_t *seen = json_object();
        size_t j;
        json_t *v;
        json_array_foreach(json_object_get(it->doc, "tags"), j, v) {
            bump(classes, json_string_value(v), "instances", it->split);
            json_object_set_new(seen, json_string_value(v), json_true());
        }
        json_array_foreach(json_object_get(it->doc, "shapes"), j, v) {
            const char *l = json_string_value(json_object_get(v, "label"));
            bump(classes, l, "instances", it->split);
            json_object_set_new(seen, l, json_true());
        }
        const char *k;
        json_object_foreach(seen, k, v) bump(classes, k, "images", it->split);
        json_decref(seen);
    }
    return json_pack("{s:{s:I, s:I, s:I, s:I}, s:o}", "images", "train", (json_int_t)per[0], "val", (json_int_t)per[1],
                     "test", (json_int_t)per[2], "total", (json_int_t)n, "classes", classes);
}

static int cmp_blob(const void *a, const void *b)
{
    const vitem *x = a, *y = b;
    return strcmp(json_string_value(json_object_get(x->row, "blob_hash")),
                  json_string_value(json_object_get(y->row, "blob_hash")));
}

/* SHA-256 hex of the canonical text (see versions.h). Reorders items by blob hash. */
static int content_hash(vitem *items, size_t n, const char *task, const json_t *labels, char hex[65])
{
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    json_t *names = json_array();
    size_t i;
    json_t *l;
    json_array_foreach(labels, i, l) json_array_append(names, json_object_get(l, "name"));
    char *ls = json_dumps(names, JSON_COMPACT);
    json_decref(names);
    if (!ls) return acv_error(ACV_ENOMEM, "out of memory");
    char head[64];
    snprintf(head, sizeof head, "autocv dataset version 1\ntask %s\nlabels ", task);
    crypto_hash_sha256_update(&st, (const unsigned char *)head, strlen(head));
    crypto_hash_sha256_update(&st, (const unsigned char *)ls, strlen(ls));
    crypto_hash_sha256_update(&st, (const unsigned char *)"\n", 1);
    free(ls);
    qsort(items, n, sizeof *items, cmp_blob);
    for (i = 0; i < n; i++) {
        char *d = json_dumps(items[i].doc, JSON_COMPACT | JSON_SORT_KEYS);
        if (!d) return acv_error(ACV_ENOMEM, "out of memory");
        char line[160];
        snprintf(line, sizeof line, "%s %s %lld %lld ", json_string_value(json_object_get(items[i].row, "blob_hash")),
                 SPLITS[items[i].split], (long long)json_integer_value(json_object_get(items[i].row, "width")),
                 (long long)json_integer_value(json_object_get(items[i].row, "height")));
        crypto_hash_sha256_update(&st, (const unsigned char *)line, strlen(line));
        crypto_hash_sha256_update(&st, (const unsigned char *)d, strlen(d));
        crypto_hash_sha256_update(&st, (const unsigned char *)"\n", 1);
        free(d);
    }
    unsigned char md[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_final(&st, md);
    sodium_bin2hex(hex, 65, md, sizeof md);
    return 0;
}

/* Reads the accepted items of a set and builds the version's label list: every label the
 * documents use, sorted by name (the class index order of the exports, which is also how an
 * ImageFolder reader sorts class folders). A name that is no longer a label of the project
 * (deleted or renamed since) is ACV_EINVAL naming the image. */
static int load_items(acv_dbconn *c, int64_t project_id, int64_t set_id, const char *task, json_t **rows,
                      vitem **items, json_t **labels)
{
    json_t *used = json_object(), *names = json_array(), *found = NULL, *byname = json_object();
    *items = NULL;
    *labels = NULL;
    int rc = acv_db_query(c, rows,
                          "SELECT a.image_id, i.blob_hash, i.filename, i.width, i.height, i.size, a.doc_json FROM "
                          "annotation_items a JOIN images i ON i.id = a.image_id WHERE a.set_id = ? AND "
                          "a.status = 'accepted' ORDER BY a.image_id",
                          "I", set_id);
    size_t n = rc ? 0 : json_array_size(*rows), i;
    if (!rc && n == 0)
        rc = acv_error(ACV_EINVAL, "annotation set %lld has no accepted images (review some first)", (long long)set_id);
    if (!rc && !(*items = calloc(n, sizeof **items))) rc = acv_error(ACV_ENOMEM, "out of memory");
    for (i = 0; !rc && i < n; i++) {
        vitem *it = &(*items)[i];
        it->row = json_array_get(*rows, i);
        it->doc = json_incref(json_object_get(it->row, "doc"));
        json_t *l = acv_ann_doc_labels(it->doc);
        json_object_update_missing(used, l);
        json_decref(l);
        if (!strcmp(task, "cls") && !json_array_size(json_object_get(it->doc, "tags")))
            rc = acv_error(ACV_EINVAL, "image %lld (%s) is accepted without a class tag",
                           (long long)json_integer_value(json_object_get(it->row, "image_id")),
                           json_string_value(json_object_get(it->row, "filename")));
        if (!rc) it->stratum = stratum_of(it->doc, task);
    }
    const char *key;
    json_t *val;
    json_object_foreach(used, key, val) json_array_append_new(names, json_string(key));
    if (!rc)
        rc = acv_db_query(c, &found,
                          "SELECT id, name, color, (SELECT name FROM labels p WHERE p.id = l.parent_id) AS parent "
                          "FROM labels l WHERE project_id = ? AND name IN (SELECT value FROM json_each(?))",
                          "Ij", project_id, names);
    json_array_foreach(rc ? NULL : found, i, val) json_object_set(byname, json_string_value(json_object_get(val, "name")), val);
    for (i = 0; !rc && i < n; i++) {
        json_t *l = acv_ann_doc_labels((*items)[i].doc);
        json_object_foreach(l, key, val) if (!json_object_get(byname, key)) {
            rc = acv_error(ACV_EINVAL, "image %lld (%s) uses the label '%s', which is no longer a label of project %lld; "
                                       "fix its annotation and review it again",
                           (long long)json_integer_value(json_object_get((*items)[i].row, "image_id")),
                           json_string_value(json_object_get((*items)[i].row, "filename")), key, (long long)project_id);
            break;
        }
        json_decref(l);
    }
    if (!rc) {
        size_t k = 0, nu = json_array_size(names);
        const char **sorted = malloc((nu ? nu : 1) * sizeof *sorted);
        if (!sorted) rc = acv_error(ACV_ENOMEM, "out of memory");
        for (k = 0; !rc && k < nu; k++) sorted[k] = json_string_value(json_array_get(names, k));
        if (!rc) {
            qsort(sorted, nu, sizeof *sorted, cmp_name);
            *labels = json_array();
            for (k = 0; k < nu; k++) {
                json_t *ml = json_object_get(byname, sorted[k]);
                json_array_append_new(*labels, json_pack("{s:I, s:O, s:s, s:O, s:O}", "index", (json_int_t)k, "id",
                                                         json_object_get(ml, "id"), "name", sorted[k], "color",
                                                         json_object_get(ml, "color"), "parent",
                                                         json_object_get(ml, "parent")));
            }
        }
        free(sorted);
    }
    json_decref(used);
    json_decref(names);
    json_decref(found);
    json_decref(byname);
    return rc;
}

static void free_items(vitem *items, size_t n)
{
    for (size_t i = 0; items && i < n; i++) json_decref(items[i].doc);
    free(items);
}

/* Reads {"name","split","seed"}. */
static int parse_create(const json_t *in, const char **name, double frac[3], int64_t *seed)
{
    static const char *const FIELDS[] = {"name", "split", "seed", NULL};
    int rc = acv_jarg_only(in, FIELDS);
    if (!rc) rc = acv_jarg_str(in, "name", true, ACV_VERSION_NAME_MAX, name);
    if (!rc && !**name) rc = acv_error(ACV_EINVAL, "field 'name' must not be empty");
    *seed = 0;
    if (!rc) rc = acv_jarg_int(in, "seed", false, 0, INT64_MAX, seed, NULL);
    if (rc) return rc;
    json_t *sp = json_object_get(in, "split");
    frac[0] = 0.8, frac[1] = 0.1, frac[2] = 0.1;
    if (!sp || json_is_null(sp)) return 0;
    if (!json_is_object(sp)) return acv_error(ACV_EFORMAT, "field 'split' must be {\"train\":F,\"val\":F,\"test\":F}");
    static const char *const KEYS[] = {"train", "val", "test", NULL};
    if ((rc = acv_jarg_only(sp, KEYS))) return acv_error_prefix(rc, "split: ");
    double sum = 0;
    for (int k = 0; k < 3; k++) {
        json_t *v = json_object_get(sp, KEYS[k]);
        frac[k] = 0;
        if (v && !json_is_number(v)) return acv_error(ACV_EFORMAT, "split.%s must be a number", KEYS[k]);
        if (v) frac[k] = json_number_value(v);
        if (!(frac[k] >= 0 && frac[k] <= 1)) return acv_error(ACV_EINVAL, "split.%s: %g is outside [0, 1]", KEYS[k], frac[k]);
        sum += frac[k];
    }
    if (fabs(sum - 1) > 1e-6) return acv_error(ACV_EINVAL, "split: the fractions add up to %g, not 1", sum);
    return 0;
}

int acv_version_create(acv_dbconn *c, const acv_principal *who, int64_t set_id, const json_t *in, int64_t *id)
{
    const char *name = NULL;
    double frac[3];
    int64_t seed = 0;
    int rc = parse_create(in, &name, frac, &seed);
    if (rc) return rc;
    char now[ACV_DB_TIME_LEN], hash[65];
    acv_db_time(acv_db_now(), now);
    json_t *set = NULL, *rows = NULL, *labels = NULL, *counts = NULL;
    vitem *items = NULL;
    const char **strata = NULL;
    int *splits = NULL;
    size_t n = 0;
    /* One write transaction: the accepted items read are exactly the ones snapshotted. */
    if ((rc = acv_db_begin(c))) return rc;
    rc = acv_db_query_row(c, &set, "SELECT project_id, task FROM annotation_sets WHERE id = ?", "I", set_id);
    if (!rc && !set) rc = acv_error(ACV_ENOTFOUND, "annotation set %lld not found", (long long)set_id);
    const char *task = rc ? "" : json_string_value(json_object_get(set, "task"));
    int64_t project_id = rc ? 0 : json_integer_value(json_object_get(set, "project_id"));
    if (!rc) rc = load_items(c, project_id, set_id, task, &rows, &items, &labels);
    if (!rc) {
        n = json_array_size(rows);
        strata = malloc(n * sizeof *strata);
        splits = malloc(n * sizeof *splits);
        if (!strata || !splits) rc = acv_error(ACV_ENOMEM, "out of memory");
    }
    for (size_t i = 0; !rc && i < n; i++) strata[i] = items[i].stratum;
    if (!rc) rc = acv_version_split(strata, (int)n, frac, (uint64_t)seed, splits);
    for (size_t i = 0; !rc && i < n; i++) items[i].split = splits[i];
    if (!rc && !(counts = count_all(items, n))) rc = acv_error(ACV_ENOMEM, "out of memory");
    if (!rc) rc = content_hash(items, n, task, labels, hash);
    json_t *split_json = json_pack("{s:f, s:f, s:f}", "train", frac[0], "val", frac[1], "test", frac[2]);
    if (!rc)
        rc = acv_db_exec(c,
                         "INSERT INTO dataset_versions(project_id, set_id, name, task, split_json, seed, content_hash, "
                         "labels_json, counts_json, created_by, created_at) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         "IIssjIsjjIs", project_id, set_id, name, task, split_json, seed, hash, labels, counts,
                         who->user_id, now);
    json_decref(split_json);
    if (rc == ACV_EEXIST)
        rc = acv_error(ACV_EEXIST, "a dataset version named '%s' already exists in project %lld", name,
                       (long long)project_id);
    if (!rc) *id = acv_db_last_id(c);
    for (size_t i = 0; !rc && i < n; i++)
        rc = acv_db_exec(c,
                         "INSERT INTO dataset_version_items(version_id, image_id, blob_hash, filename, width, height, "
                         "split, doc_json) VALUES(?, ?, ?, ?, ?, ?, ?, ?)",
                         "IIssIIsj", *id, (int64_t)json_integer_value(json_object_get(items[i].row, "image_id")),
                         json_string_value(json_object_get(items[i].row, "blob_hash")),
                         json_string_value(json_object_get(items[i].row, "filename")),
                         (int64_t)json_integer_value(json_object_get(items[i].row, "width")),
                         (int64_t)json_integer_value(json_object_get(items[i].row, "height")), SPLITS[items[i].split],
                         items[i].doc);
    /* The version holds its images' bytes: one blob reference per item. */
    for (size_t i = 0; !rc && i < n; i++)
        rc = acv_blobs_ref(c, json_string_value(json_object_get(items[i].row, "blob_hash")),
                           (int64_t)json_integer_value(json_object_get(items[i].row, "size")));
    if (!rc)
        rc = acv_audit_write(c, who, "create", "dataset_version", *id, project_id,
                             json_pack("{s:s, s:I, s:I, s:s}", "name", name, "set_id", (json_int_t)set_id, "images",
                                       (json_int_t)n, "content_hash", hash));
    rc = acv_db_end(c, rc);
    free_items(items, n);
    free(strata);
    free(splits);
    json_decref(set);
    json_decref(rows);
    json_decref(labels);
    json_decref(counts);
    return rc;
}

int acv_version_delete(acv_dbconn *c, acv_blobs *b, const acv_principal *who, int64_t id)
{
    json_t *v = NULL, *hashes = NULL;
    int rc = acv_db_begin(c);
    if (rc) return rc;
    rc = acv_db_query_row(c, &v, "SELECT project_id, name, content_hash FROM dataset_versions WHERE id = ?", "I", id);
    if (!rc && !v) rc = acv_error(ACV_ENOTFOUND, "dataset version %lld not found", (long long)id);
    if (!rc)
        rc = acv_db_query(c, &hashes, "SELECT DISTINCT blob_hash FROM dataset_version_items WHERE version_id = ?",
                          "I", id);
    size_t i;
    json_t *h;
    /* Its items' blob references go with their rows (trigger dataset_version_items_blobs_ad). */
    if (!rc) rc = acv_db_exec(c, "DELETE FROM dataset_versions WHERE id = ?", "I", id);
    if (!rc)
        rc = acv_audit_write(c, who, "delete", "dataset_version", id, json_integer_value(json_object_get(v, "project_id")),
                             json_pack("{s:O, s:O}", "name", json_object_get(v, "name"), "content_hash",
                                       json_object_get(v, "content_hash")));
    json_decref(v);
    rc = acv_db_end(c, rc);
    /* Files whose last reference this version held (their images deleted since) go now. */
    json_array_foreach(rc ? NULL : hashes, i, h) acv_blobs_collect(b, c, json_string_value(json_object_get(h, "blob_hash")));
    json_decref(hashes);
    return rc;
}
