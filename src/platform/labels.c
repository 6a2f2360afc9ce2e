/* Label schemas: validation, bulk import, hierarchy checks, search (see labels.h). */
#include "platform/labels.h"
#include "platform/annotations.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autocv/error.h"
#include "platform/audit.h"
#include "platform/csv.h"
#include "platform/jsonarg.h"

#define LABEL_SELECT                                                                                         \
    "SELECT l.id, l.project_id, l.name, l.parent_id, p.name AS parent, l.color, l.aliases_json, "          \
    "l.description, l.created_at, l.updated_at FROM labels l LEFT JOIN labels p ON p.id = l.parent_id "

/* ---- validation ------------------------------------------------------------------------ */

typedef struct lab_in {
    const char *name, *parent, *desc;
    char color[8];          /* "#rrggbb" or "" when not given */
    json_t *aliases;        /* borrowed array of strings, or NULL */
    int64_t parent_id;
    bool has_parent_id, has_parent, clear_parent;
} lab_in;

static int name_ok(const char *s, const char *what)
{
    size_t n = strlen(s);
    if (n == 0) return acv_error(ACV_EINVAL, "%s must not be empty", what);
    if (n > ACV_LABEL_NAME_MAX) return acv_error(ACV_EINVAL, "%s is longer than %d bytes", what, ACV_LABEL_NAME_MAX);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return acv_error(ACV_EINVAL, "%s contains a control character", what);
    if (isspace((unsigned char)s[0]) || isspace((unsigned char)s[n - 1]))
        return acv_error(ACV_EINVAL, "%s '%s' starts or ends with a space", what, s);
    return 0;
}

static int color_parse(const char *s, char out[8])
{
    if (strlen(s) != 7 || s[0] != '#') return acv_error(ACV_EINVAL, "field 'color' must look like #rrggbb, not '%s'", s);
    for (int i = 1; i < 7; i++) {
        if (!isxdigit((unsigned char)s[i]))
            return acv_error(ACV_EINVAL, "field 'color' must look like #rrggbb, not '%s'", s);
        out[i] = (char)tolower((unsigned char)s[i]);
    }
    out[0] = '#';
    out[7] = 0;
    return 0;
}

/* A distinct, stable color for a name: hue from a hash of the name spread by the golden
 * ratio, fixed saturation and value. */
static void default_color(const char *name, char out[8])
{
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) h = (h ^ *p) * 16777619u;
    double hue = fmod(h * 0.618033988749895, 1.0) * 6.0, s = 0.65, v = 0.95;
    int i = (int)hue;
    double f = hue - i, p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
    double rgb[6][3] = {{v, t, p}, {q, v, p}, {p, v, t}, {p, q, v}, {t, p, v}, {v, p, q}};
    snprintf(out, 8, "#%02x%02x%02x", (int)(rgb[i % 6][0] * 255), (int)(rgb[i % 6][1] * 255),
             (int)(rgb[i % 6][2] * 255));
}

/* Reads and checks one input object (create: name required). */
static int lab_parse(const json_t *o, bool create, lab_in *in)
{
    static const char *const FIELDS[] = {"name", "parent", "parent_id", "color", "aliases", "description", NULL};
    memset(in, 0, sizeof *in);
    if (!json_is_object(o)) return acv_error(ACV_EFORMAT, "a label must be a JSON object");
    const char *color = NULL;
    int rc = acv_jarg_only(o, FIELDS);
    if (!rc) rc = acv_jarg_str(o, "name", create, 0, &in->name);
    if (!rc && in->name) rc = name_ok(in->name, "field 'name'");
    if (!rc) rc = acv_jarg_str(o, "parent", false, 0, &in->parent);
    if (!rc && in->parent) rc = name_ok(in->parent, "field 'parent'");
    if (!rc) rc = acv_jarg_int(o, "parent_id", false, 1, INT64_MAX, &in->parent_id, &in->has_parent_id);
    if (!rc) rc = acv_jarg_str(o, "color", false, 0, &color);
    if (!rc && color) rc = color_parse(color, in->color);
    if (!rc) rc = acv_jarg_strlist(o, "aliases", ACV_LABEL_ALIASES_MAX, ACV_LABEL_NAME_MAX, &in->aliases);
    for (size_t i = 0; !rc && in->aliases && i < json_array_size(in->aliases); i++)
        rc = name_ok(json_string_value(json_array_get(in->aliases, i)), "an alias");
    if (!rc) rc = acv_jarg_str(o, "description", false, 10000, &in->desc);
    if (rc) return rc;
    in->has_parent = json_object_get(o, "parent") || json_object_get(o, "parent_id");
    in->clear_parent = in->has_parent && !in->parent && !in->has_parent_id;
    if (in->parent && in->has_parent_id) return acv_error(ACV_EINVAL, "give 'parent' or 'parent_id', not both");
    return 0;
}

/* ---- reads ---------------------------------------------------------------------------- */

int acv_label_get(acv_dbconn *c, int64_t id, json_t **out)
{
    int rc = acv_db_query_row(c, out, LABEL_SELECT "WHERE l.id = ?", "I", id);
    if (!rc && !*out) rc = acv_error(ACV_ENOTFOUND, "label %lld not found", (long long)id);
    return rc;
}

int acv_label_project(acv_dbconn *c, int64_t id, int64_t *project_id)
{
    int rc = acv_db_query_int(c, project_id, 0, "SELECT project_id FROM labels WHERE id = ?", "I", id);
    if (!rc && *project_id == 0) rc = acv_error(ACV_ENOTFOUND, "label %lld not found", (long long)id);
    return rc;
}

static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++) n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

/* labels.search: the lowercased name, a newline, the lowercased aliases one per line. */
#define SEARCH_OF(name, aliases)                                                                             \
    "lower(" name ") || char(10) || coalesce((SELECT group_concat(lower(value), char(10)) FROM json_each("  \
    aliases ")), '')"

/* Ranks the matches of ?2 (the lowercased query): exact name, name prefix, name substring,
 * alias only; then by name, case-insensitively. `search` is labels.search. */
#define RANK(search)                                                                                         \
    "(instr(" search ", ?2 || char(10)) = 1) DESC, (instr(" search ", ?2) = 1) DESC, "                       \
    "(instr(" search ", ?2) < instr(" search ", char(10))) DESC, " search

int acv_label_list(acv_dbconn *c, int64_t project_id, const char *q, int limit, int offset, json_t **items,
                   int64_t *total)
{
    int rc;
    if (!q || !*q) {
        rc = acv_db_query_int(c, total, 0, "SELECT COUNT(*) FROM labels WHERE project_id = ?", "I", project_id);
        if (!rc)
            rc = acv_db_query(c, items, LABEL_SELECT "WHERE l.project_id = ? ORDER BY l.id LIMIT ? OFFSET ?", "Iii",
                              project_id, limit, offset);
        return rc;
    }
    *total = 0;
    for (const char *s = q; *s; s++)
        if ((unsigned char)*s < 0x20) return (*items = json_array()) ? 0 : acv_error(ACV_ENOMEM, "out of memory");
    /* The query lowercased the way SQLite's lower() does it (ASCII), as labels.search is. */
    size_t n = strlen(q);
    char *lq = malloc(n + 1), *phrase = malloc(2 * n + 3);
    if (!lq || !phrase) {
        free(lq);
        free(phrase);
        return acv_error(ACV_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i <= n; i++) lq[i] = (char)((q[i] >= 'A' && q[i] <= 'Z') ? q[i] + 32 : q[i]);
    if (utf8_chars(q) >= 3) {
        /* 3+ characters: the trigram index finds the substring matches (q as one FTS5
         * phrase); CROSS JOIN keeps the FTS lookup outermost. */
        char *w = phrase;
        *w++ = '"';
        for (const char *s = q; *s; s++) {
            if (*s == '"') *w++ = '"';
            *w++ = *s;
        }
        *w++ = '"';
        *w = 0;
        rc = acv_db_query_int(c, total, 0,
                              "SELECT COUNT(*) FROM label_search s CROSS JOIN labels l ON l.id = s.rowid "
                              "WHERE label_search MATCH ?2 AND l.project_id = ?1",
                              "Is", project_id, phrase);
        if (!rc && *total > offset)
            rc = acv_db_query(c, items,
                              "SELECT l.id, l.project_id, l.name, l.parent_id, p.name AS parent, l.color, "
                              "l.aliases_json, l.description, l.created_at, l.updated_at FROM label_search s "
                              "CROSS JOIN labels l ON l.id = s.rowid LEFT JOIN labels p ON p.id = l.parent_id "
                              "WHERE label_search MATCH ?5 AND l.project_id = ?1 ORDER BY " RANK("l.search")
                              " LIMIT ?3 OFFSET ?4",
                              "Isiis", project_id, lq, limit, offset, phrase);
    } else {
        /* One or two characters: scan the project's (project_id, search) index, rank the ids
         * there, then read the page's rows. */
#define SHORT_MATCH " FROM labels INDEXED BY labels_search WHERE project_id = ?1 AND instr(search, ?2) > 0"
        rc = acv_db_query_int(c, total, 0, "SELECT COUNT(*)" SHORT_MATCH, "Is", project_id, lq);
        if (!rc && *total > offset)
            rc = acv_db_query(c, items,
                              "WITH page AS (SELECT id, search, instr(search, ?2 || char(10)) = 1 AS r0, "
                              "instr(search, ?2) = 1 AS r1, instr(search, ?2) < instr(search, char(10)) AS r2"
                              SHORT_MATCH " ORDER BY r0 DESC, r1 DESC, r2 DESC, search LIMIT ?3 OFFSET ?4) "
                              "SELECT l.id, l.project_id, l.name, l.parent_id, p.name AS parent, l.color, "
                              "l.aliases_json, l.description, l.created_at, l.updated_at FROM page "
                              "JOIN labels l ON l.id = page.id LEFT JOIN labels p ON p.id = l.parent_id "
                              "ORDER BY page.r0 DESC, page.r1 DESC, page.r2 DESC, page.search",
                              "Isii", project_id, lq, limit, offset);
#undef SHORT_MATCH
    }
    if (!rc && !*items) *items = json_array();
    free(lq);
    free(phrase);
    return rc;
}

/* ---- hierarchy ----------------------------------------------------------------------- */

typedef struct node {
    int64_t id, parent;
    int state; /* 0 unvisited, 1 on the current path, 2 known acyclic */
} node;

static node *find_node(node *v, size_t n, int64_t id)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (v[mid].id < id) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && v[lo].id == id ? &v[lo] : NULL;
}

/* ACV_EINVAL naming a label on a parent cycle in the project, if there is one. */
static int check_cycles(acv_dbconn *c, int64_t project_id)
{
    sqlite3_stmt *st;
    int rc = acv_db_prepare(c, &st, "SELECT id, coalesce(parent_id, 0) FROM labels WHERE project_id = ? ORDER BY id",
                            "I", project_id);
    if (rc) return rc;
    size_t n = 0, cap = 0;
    node *v = NULL;
    int s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 1024;
            node *nv = realloc(v, cap * sizeof *nv);
            if (!nv) {
                free(v);
                sqlite3_finalize(st);
                return acv_error(ACV_ENOMEM, "out of memory");
            }
            v = nv;
        }
        v[n++] = (node){sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1), 0};
    }
    if (s != SQLITE_DONE) rc = acv_db_error(c, s, "reading the label hierarchy");
    sqlite3_finalize(st);
    for (size_t i = 0; !rc && i < n; i++) {
        /* Walk up marking the path; meeting a node of this path again is a cycle. */
        node *x = &v[i];
        while (x && x->state == 0) {
            x->state = 1;
            x = x->parent ? find_node(v, n, x->parent) : NULL;
        }
        if (x && x->state == 1) {
            char *name = NULL;
            acv_db_query_text(c, &name, "SELECT name FROM labels WHERE id = ?", "I", x->id);
            rc = acv_error(ACV_EINVAL, "label '%s' would be its own ancestor (a parent cycle)", name ? name : "?");
            free(name);
        }
        for (x = &v[i]; x && x->state == 1; x = x->parent ? find_node(v, n, x->parent) : NULL) x->state = 2;
    }
    free(v);
    return rc;
}

/* Sets the parent of label id from in (by name or id), checking it is in the project. */
static int set_parent(acv_dbconn *c, int64_t project_id, int64_t id, const lab_in *in, const char *now)
{
    int64_t pid = 0;
    int rc = 0;
    if (in->parent) {
        rc = acv_db_query_int(c, &pid, 0, "SELECT id FROM labels WHERE project_id = ? AND name = ?", "Is", project_id,
                              in->parent);
        if (!rc && !pid)
            rc = acv_error(ACV_EINVAL, "parent '%s' is not a label of project %lld", in->parent, (long long)project_id);
    } else if (in->has_parent_id) {
        int64_t pp = 0;
        rc = acv_db_query_int(c, &pp, 0, "SELECT project_id FROM labels WHERE id = ?", "I", in->parent_id);
        if (!rc && pp != project_id)
            rc = acv_error(ACV_EINVAL, "parent_id %lld is not a label of project %lld", (long long)in->parent_id,
                           (long long)project_id);
        pid = in->parent_id;
    }
    if (rc) return rc;
    if (pid == id) return acv_error(ACV_EINVAL, "a label cannot be its own parent");
    return acv_db_exec(c, "UPDATE labels SET parent_id = NULLIF(?, 0), updated_at = ? WHERE id = ?", "IsI", pid, now,
                       id);
}

/* ---- writes --------------------------------------------------------------------------- */

int acv_label_import(acv_dbconn *c, const acv_principal *who, int64_t project_id, const json_t *labels,
                     const char *source, json_t **created)
{
    if (created) *created = NULL;
    if (!json_is_array(labels)) return acv_error(ACV_EFORMAT, "'labels' must be an array of label objects");
    size_t n = json_array_size(labels);
    if (n > ACV_LABEL_IMPORT_MAX)
        return acv_error(ACV_EINVAL, "%zu labels in one import (at most %d)", n, ACV_LABEL_IMPORT_MAX);
    lab_in *in = calloc(n ? n : 1, sizeof *in);
    if (!in) return acv_error(ACV_ENOMEM, "out of memory");
    int rc = 0;
    for (size_t i = 0; !rc && i < n; i++)
        if ((rc = lab_parse(json_array_get(labels, i), true, &in[i])))
            acv_error_prefix(rc, "label %zu: ", i + 1);
    char now[ACV_DB_TIME_LEN];
    acv_db_time(acv_db_now(), now);
    int64_t *ids = rc ? NULL : calloc(n ? n : 1, sizeof *ids);
    json_t *none = json_array();
    if (!rc && (!ids || !none)) rc = acv_error(ACV_ENOMEM, "out of memory");
    if (!rc && (rc = acv_db_begin(c))) {
        free(ids);
        ids = NULL;
    }
    if (rc) {
        free(ids);
        free(in);
        json_decref(none);
        return rc;
    }
    for (size_t i = 0; !rc && i < n; i++) {
        char color[8];
        if (in[i].color[0]) memcpy(color, in[i].color, 8);
        else default_color(in[i].name, color);
        rc = acv_db_exec(c,
                         "INSERT INTO labels(project_id, name, color, aliases_json, description, created_at, updated_at, "
                         "search) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?6, " SEARCH_OF("?2", "?4") ")",
                         "Issjss", project_id, in[i].name, color, in[i].aliases ? in[i].aliases : none,
                         in[i].desc ? in[i].desc : "", now);
        if (rc == ACV_EEXIST) {
            int64_t old = 0;
            acv_db_query_int(c, &old, 0, "SELECT id FROM labels WHERE project_id = ? AND name = ? AND id < ?", "IsI",
                             project_id, in[i].name, i ? ids[0] : INT64_MAX);
            rc = acv_error(ACV_EEXIST, "label %zu: '%s' %s", i + 1, in[i].name,
                           old ? "already exists in this project" : "appears twice in this import");
        } else if (rc == ACV_EINVAL) {
            rc = acv_error_prefix(rc, "label %zu: ", i + 1);
        }
        if (!rc) ids[i] = acv_db_last_id(c);
    }
    json_decref(none);
    for (size_t i = 0; !rc && i < n; i++)
        if (in[i].parent || in[i].has_parent_id)
            if ((rc = set_parent(c, project_id, ids[i], &in[i], now)))
                acv_error_prefix(rc, "label %zu ('%s'): ", i + 1, in[i].name);
    int64_t first = n ? ids[0] : 0, last = n ? ids[n - 1] : 0;
    free(ids);
    free(in);
    if (!rc) rc = check_cycles(c, project_id);
    if (!rc && n)
        rc = acv_audit_write(c, who, n == 1 ? "create" : "import", "label", n == 1 ? first : 0, project_id,
                             json_pack("{s:I, s:I, s:I, s:s}", "count", (json_int_t)n, "first_id", (json_int_t)first,
                                       "last_id", (json_int_t)last, "source", source ? source : "json"));
    if (!rc && created)
        rc = acv_db_query(c, created, LABEL_SELECT "WHERE l.project_id = ? AND l.id >= ? AND l.id <= ? ORDER BY l.id",
                          "III", project_id, first, last);
    rc = acv_db_end(c, rc);
    if (rc && created) {
        json_decref(*created);
        *created = NULL;
    }
    return rc;
}

int acv_label_update(acv_dbconn *c, const acv_principal *who, int64_t id, const json_t *patch)
{
    lab_in in;
    int rc = lab_parse(patch, false, &in);
    if (rc) return rc;
    char now[ACV_DB_TIME_LEN];
    acv_db_time(acv_db_now(), now);
    if ((rc = acv_db_begin(c))) return rc;
    int64_t project_id = 0;
    rc = acv_label_project(c, id, &project_id);
    json_t *old = NULL;
    if (!rc && in.name) rc = acv_label_get(c, id, &old);
    if (!rc)
        rc = acv_db_exec(c,
                         "UPDATE labels SET name = coalesce(?, name), color = coalesce(?, color), "
                         "aliases_json = coalesce(?, aliases_json), description = coalesce(?, description), "
                         "updated_at = ? WHERE id = ?",
                         "ssjssI", in.name, in.color[0] ? in.color : NULL, in.aliases, in.desc, now, id);
    if (rc == ACV_EEXIST) rc = acv_error(ACV_EEXIST, "label '%s' already exists in this project", in.name);
    if (!rc && (in.name || in.aliases))
        rc = acv_db_exec(c, "UPDATE labels SET search = " SEARCH_OF("name", "aliases_json") " WHERE id = ?", "I", id);
    if (!rc && in.clear_parent)
        rc = acv_db_exec(c, "UPDATE labels SET parent_id = NULL WHERE id = ?", "I", id);
    else if (!rc && in.has_parent)
        rc = set_parent(c, project_id, id, &in, now);
    if (!rc && in.has_parent) rc = check_cycles(c, project_id);
    /* a rename carries over into every annotation document of the project (same transaction) */
    const char *old_name = old ? json_string_value(json_object_get(old, "name")) : NULL;
    if (!rc && old_name && strcmp(old_name, in.name))
        rc = acv_ann_rename_label(c, project_id, old_name, in.name, NULL);
    json_decref(old);
    if (!rc) rc = acv_audit_write(c, who, "update", "label", id, project_id, json_deep_copy(patch));
    return acv_db_end(c, rc);
}

int acv_label_delete(acv_dbconn *c, const acv_principal *who, int64_t id)
{
    int rc = acv_db_begin(c);
    if (rc) return rc;
    json_t *l = NULL;
    rc = acv_label_get(c, id, &l);
    if (!rc) rc = acv_db_exec(c, "DELETE FROM labels WHERE id = ?", "I", id);
    if (!rc)
        rc = acv_audit_write(c, who, "delete", "label", id, json_integer_value(json_object_get(l, "project_id")),
                             json_pack("{s:O}", "name", json_object_get(l, "name")));
    json_decref(l);
    return acv_db_end(c, rc);
}

/* ---- CSV ------------------------------------------------------------------------------ */

static char *trim(char *s)
{
    while (isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1])) s[--n] = 0;
    return s;
}

/* Sets o[key] to s unless s is empty; false when s is not valid UTF-8. */
static bool set_str(json_t *o, const char *key, const char *s)
{
    if (!*s) return true;
    json_t *v = json_string(s);
    return v && json_object_set_new(o, key, v) == 0;
}

int acv_label_csv_read(const char *path, json_t **labels)
{
    enum { C_NAME, C_PARENT, C_COLOR, C_ALIASES, C_DESC, C_N };
    static const char *COLS[C_N] = {"name", "parent", "color", "aliases", "description"};
    *labels = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return acv_error(ACV_EIO, "cannot read the uploaded CSV");
    acv_csv *r;
    int rc = acv_csv_new(f, "CSV", 64 * 1024, &r);
    if (rc) {
        fclose(f);
        return rc;
    }
    char **fld;
    int nf, col[C_N], ncols = 0;
    for (int k = 0; k < C_N; k++) col[k] = -1;
    json_t *out = json_array();
    rc = acv_csv_next(r, &fld, &nf);
    if (rc == 0) rc = acv_error(ACV_EFORMAT, "CSV: empty file (a header row is required: name,parent,color,aliases,"
                                             "description)");
    if (rc > 0) {
        rc = 0;
        ncols = nf;
        for (int i = 0; !rc && i < nf; i++) {
            char *h = trim(fld[i]);
            for (char *p = h; *p; p++) *p = (char)tolower((unsigned char)*p);
            int k = 0;
            while (k < C_N && strcmp(COLS[k], h)) k++;
            if (k == C_N)
                rc = acv_error(ACV_EINVAL, "CSV line 1: unknown column '%s' (known: name, parent, color, aliases, "
                                           "description)",
                               h);
            else if (col[k] >= 0) rc = acv_error(ACV_EINVAL, "CSV line 1: column '%s' appears twice", h);
            else col[k] = i;
        }
        if (!rc && col[C_NAME] < 0) rc = acv_error(ACV_EINVAL, "CSV line 1: the header has no 'name' column");
    }
    while (!rc && (rc = acv_csv_next(r, &fld, &nf)) > 0) {
        rc = 0;
        int line = acv_csv_line(r);
        bool blank = true;
        for (int i = 0; i < nf; i++) {
            fld[i] = trim(fld[i]);
            if (*fld[i]) blank = false;
        }
        if (blank) continue;
        if (nf != ncols) {
            rc = acv_error(ACV_EFORMAT, "CSV line %d: %d fields where the header has %d", line, nf, ncols);
            break;
        }
        if (json_array_size(out) >= ACV_LABEL_IMPORT_MAX) {
            rc = acv_error(ACV_EINVAL, "CSV: more than %d labels", ACV_LABEL_IMPORT_MAX);
            break;
        }
        json_t *o = json_object();
        bool ok = set_str(o, "name", fld[col[C_NAME]]);
        if (col[C_PARENT] >= 0) ok &= set_str(o, "parent", fld[col[C_PARENT]]);
        if (col[C_COLOR] >= 0) ok &= set_str(o, "color", fld[col[C_COLOR]]);
        if (col[C_DESC] >= 0) ok &= set_str(o, "description", fld[col[C_DESC]]);
        if (col[C_ALIASES] >= 0 && *fld[col[C_ALIASES]]) {
            json_t *al = json_array();
            char *save = NULL;
            for (char *t = strtok_r(fld[col[C_ALIASES]], "|;", &save); t; t = strtok_r(NULL, "|;", &save)) {
                json_t *js = *(t = trim(t)) ? json_string(t) : NULL;
                if (*t && !js) ok = false;
                if (js) json_array_append_new(al, js);
            }
            json_object_set_new(o, "aliases", al);
        }
        json_array_append_new(out, o);
        if (!ok) rc = acv_error(ACV_EFORMAT, "CSV line %d: not valid UTF-8 text", line);
    }
    acv_csv_free(r);
    fclose(f);
    if (rc < 0) {
        json_decref(out);
        return rc;
    }
    *labels = out;
    return 0;
}
