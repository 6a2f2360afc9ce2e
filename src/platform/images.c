/* Images: staging (hash, dedupe, full decode, thumbnail, blobs), rows, listing with
 * annotation filters, deletion (see images.h). */
#include "platform/images.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "autocv/error.h"
#include "base/log.h"
#include "platform/audit.h"
#include "vision/image.h"
#include "vision/transform.h"

#define IMAGE_COLS                                                                                           \
    "i.id, i.project_id, i.filename, i.format, i.width, i.height, i.channels, i.size, i.blob_hash AS hash, " \
    "i.thumb_hash, i.source, i.import_id, i.uploaded_by, i.created_at"

/* ---- names and formats ------------------------------------------------------------------ */

const char *acv_image_mime(const char *format)
{
    if (!format) return "application/octet-stream";
    if (!strcmp(format, "jpeg")) return "image/jpeg";
    if (!strcmp(format, "png")) return "image/png";
    if (!strcmp(format, "bmp")) return "image/bmp";
    return "application/octet-stream";
}

const char *acv_image_sniff(const uint8_t *buf, size_t len)
{
    if (len >= 3 && buf[0] == 0xff && buf[1] == 0xd8 && buf[2] == 0xff) return "jpeg";
    if (len >= 8 && !memcmp(buf, "\x89PNG\r\n\x1a\n", 8)) return "png";
    if (len >= 2 && buf[0] == 'B' && buf[1] == 'M') return "bmp";
    return NULL;
}

void acv_utf8_fix(char *s)
{
    unsigned char *p = (unsigned char *)s;
    while (*p) {
        int n = *p < 0x80 ? 1 : (*p & 0xe0) == 0xc0 ? 2 : (*p & 0xf0) == 0xe0 ? 3 : (*p & 0xf8) == 0xf0 ? 4 : 0;
        bool ok = n > 0 && !(n == 2 && *p < 0xc2) && !(n == 4 && *p > 0xf4);
        for (int i = 1; ok && i < n; i++) ok = (p[i] & 0xc0) == 0x80;
        if (ok && n == 3) {
            unsigned cp = (unsigned)(p[0] & 0x0f) << 12 | (unsigned)(p[1] & 0x3f) << 6 | (p[2] & 0x3f);
            ok = cp >= 0x800 && !(cp >= 0xd800 && cp <= 0xdfff);
        }
        if (ok && n == 4) {
            unsigned cp = (unsigned)(p[0] & 0x07) << 18 | (unsigned)(p[1] & 0x3f) << 12;
            ok = cp >= 0x10000 && cp <= 0x10ffff;
        }
        if (!ok) {
            *p++ = '_';
            continue;
        }
        p += n;
    }
}

void acv_image_clean_name(const char *name, char out[ACV_IMAGE_NAME_MAX + 1])
{
    const char *base = name ? name : "";
    for (const char *p = base; *p; p++)
        if (*p == '/' || *p == '\\') base = p + 1;
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)base; *p && n < ACV_IMAGE_NAME_MAX; p++)
        if (*p >= 0x20 && *p != 0x7f) out[n++] = (char)*p;
    /* Do not end inside a UTF-8 sequence when cut. */
    if (n == ACV_IMAGE_NAME_MAX) {
        size_t k = n;
        while (k > 0 && ((unsigned char)out[k - 1] & 0xc0) == 0x80) k--;
        if (k > 0 && ((unsigned char)out[k - 1] & 0x80)) {
            unsigned char lead = (unsigned char)out[k - 1];
            size_t need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2;
            if (n - (k - 1) < need) n = k - 1;
        }
    }
    while (n > 0 && out[n - 1] == ' ') n--;
    size_t s = 0;
    while (s < n && out[s] == ' ') s++;
    memmove(out, out + s, n - s);
    out[n - s] = 0;
    acv_utf8_fix(out);
}

/* ---- staging ----------------------------------------------------------------------------- */

/* A JPEG thumbnail of im (longest side at most ACV_IMAGE_THUMB_SIDE; never enlarged). */
static int make_thumb(const acv_image *im, uint8_t **jpg, size_t *len)
{
    acv_image rgb = {0}, small = {0};
    const acv_image *src = im;
    int rc = 0;
    if (im->c == 4) {
        if ((rc = acv_img_convert(im, 3, &rgb))) return rc;
        src = &rgb;
    }
    int side = src->w > src->h ? src->w : src->h;
    if (side > ACV_IMAGE_THUMB_SIDE) {
        int tw = (int)(((int64_t)src->w * ACV_IMAGE_THUMB_SIDE + side / 2) / side);
        int th = (int)(((int64_t)src->h * ACV_IMAGE_THUMB_SIDE + side / 2) / side);
        rc = acv_img_resize(src, tw < 1 ? 1 : tw, th < 1 ? 1 : th, ACV_RESIZE_AREA, &small);
        if (!rc) src = &small;
    }
    if (!rc) rc = acv_image_encode_jpeg(src, 85, jpg, len);
    acv_image_free(&rgb);
    acv_image_free(&small);
    return rc;
}

int acv_image_stage(acv_blob_batch *t, acv_dbconn *c, int64_t project_id, const char *path, const char *name,
                    acv_image_staged *out)
{
    memset(out, 0, sizeof *out);
    const char *what = name && *name ? name : "image";
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int rc = acv_error(ACV_EIO, "%s: %s", what, strerror(errno));
        unlink(path);
        return rc;
    }
    struct stat st;
    int rc = 0;
    uint8_t *buf = NULL;
    if (fstat(fd, &st)) rc = acv_error(ACV_EIO, "%s: %s", what, strerror(errno));
    else if (st.st_size == 0) rc = acv_error(ACV_EFORMAT, "%s: empty file", what);
    else if (st.st_size > ACV_IMAGE_FILE_MAX)
        rc = acv_error(ACV_ERANGE, "%s: %lld bytes, more than the %lld allowed for one image", what,
                       (long long)st.st_size, (long long)ACV_IMAGE_FILE_MAX);
    if (!rc) {
        buf = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (buf == MAP_FAILED) {
            buf = NULL;
            rc = acv_error(ACV_EIO, "%s: cannot map: %s", what, strerror(errno));
        }
    }
    close(fd);
    size_t len = (size_t)st.st_size;
    if (!rc) {
        acv_blobs_hash_mem(buf, len, out->hash);
        out->size = (int64_t)len;
        rc = acv_db_query_int(c, &out->existing_id, 0, "SELECT id FROM images WHERE project_id = ? AND blob_hash = ?",
                              "Is", project_id, out->hash);
    }
    if (!rc && out->existing_id) {
        /* The project has these bytes already: nothing to decode or store. */
        munmap(buf, len);
        unlink(path);
        return 0;
    }
    if (!rc && !(out->format = acv_image_sniff(buf, len)))
        rc = acv_error(ACV_EFORMAT, "%s: not a JPEG, PNG or BMP image", what);
    acv_image im = {0};
    uint8_t *jpg = NULL;
    size_t jlen = 0;
    if (!rc) rc = acv_image_decode(buf, len, NULL, what, &im);
    if (buf) munmap(buf, len);
    if (!rc) {
        out->width = im.w;
        out->height = im.h;
        out->channels = im.c;
        rc = make_thumb(&im, &jpg, &jlen);
        if (rc) acv_error_prefix(rc, "%s: thumbnail: ", what);
    }
    acv_image_free(&im);
    if (!rc) {
        rc = acv_blobs_batch_put_mem(t, jpg, jlen, out->thumb_hash);
        out->thumb_size = (int64_t)jlen;
    }
    free(jpg);
    if (rc) {
        unlink(path);
        return rc;
    }
    char again[65];
    int64_t size2;
    rc = acv_blobs_batch_put_file(t, path, again, &size2);
    if (!rc && (strcmp(again, out->hash) || size2 != out->size))
        rc = acv_error(ACV_EIO, "%s: the file changed while it was stored", what);
    return rc;
}

/* ---- rows ----------------------------------------------------------------------------- */

int acv_image_add(acv_dbconn *c, const acv_principal *who, int64_t project_id, const acv_image_staged *st,
                  const char *filename, const char *source, int64_t import_id, int64_t *id, bool *existed)
{
    *id = 0;
    *existed = false;
    int rc = acv_db_query_int(c, id, 0, "SELECT id FROM images WHERE project_id = ? AND blob_hash = ?", "Is",
                              project_id, st->hash);
    if (rc) return rc;
    if (*id) {
        *existed = true;
        return 0;
    }
    if (st->existing_id || !st->format)
        return acv_error(ACV_ENOTFOUND, "image %s was deleted while this request ran; send it again", st->hash);
    char name[ACV_IMAGE_NAME_MAX + 1], now[ACV_DB_TIME_LEN];
    acv_image_clean_name(filename, name);
    if (!name[0]) snprintf(name, sizeof name, "%.12s.%s", st->hash, !strcmp(st->format, "jpeg") ? "jpg" : st->format);
    acv_db_time(acv_db_now(), now);
    rc = acv_blobs_ref(c, st->hash, st->size);
    if (!rc && st->thumb_hash[0]) rc = acv_blobs_ref(c, st->thumb_hash, st->thumb_size);
    if (!rc)
        rc = acv_db_exec(c,
                         "INSERT INTO images(project_id, blob_hash, thumb_hash, filename, format, width, height, "
                         "channels, size, source, import_id, uploaded_by, created_at) "
                         "VALUES(?, ?, NULLIF(?, ''), ?, ?, ?, ?, ?, ?, ?, NULLIF(?, 0), NULLIF(?, 0), ?)",
                         "IssssiiiIsIIs", project_id, st->hash, st->thumb_hash, name,
                         st->format, st->width, st->height, st->channels, st->size, source, import_id,
                         who ? who->user_id : 0, now);
    if (!rc) *id = acv_db_last_id(c);
    return rc;
}

int acv_image_commit_uploads(acv_dbconn *c, const acv_principal *who, int64_t project_id,
                             const acv_image_staged *st, const char *const *filenames, int n, json_t **images)
{
    *images = NULL;
    json_t *out = json_array(), *ids = json_array();
    if (!out || !ids) {
        json_decref(out);
        json_decref(ids);
        return acv_error(ACV_ENOMEM, "out of memory");
    }
    int rc = acv_db_begin(c);
    int64_t first = 0, created = 0;
    for (int i = 0; !rc && i < n; i++) {
        int64_t id;
        bool existed;
        json_t *row = NULL;
        rc = acv_image_add(c, who, project_id, &st[i], filenames[i], "upload", 0, &id, &existed);
        if (!rc) rc = acv_image_get(c, id, false, &row);
        if (!rc) {
            json_object_set_new(row, "duplicate", json_boolean(existed));
            json_array_append_new(out, row);
            if (!existed) {
                if (!first) first = id;
                created++;
                if (json_array_size(ids) < 1000) json_array_append_new(ids, json_integer(id));
            }
        }
    }
    if (!rc && created)
        rc = acv_audit_write(c, who, "create", "image", created == 1 ? first : 0, project_id,
                             json_pack("{s:I, s:I, s:o}", "count", (json_int_t)created, "duplicates",
                                       (json_int_t)(n - created), "ids", json_incref(ids)));
    rc = acv_db_end(c, rc);
    json_decref(ids);
    if (rc) {
        json_decref(out);
        return rc;
    }
    *images = out;
    return 0;
}

int acv_image_get(acv_dbconn *c, int64_t id, bool with_annotations, json_t **out)
{
    int rc = acv_db_query_row(c, out, "SELECT " IMAGE_COLS " FROM images i WHERE i.id = ?", "I", id);
    if (!rc && !*out) return acv_error(ACV_ENOTFOUND, "image %lld not found", (long long)id);
    if (!rc && with_annotations) {
        json_t *ann = NULL;
        rc = acv_db_query(c, &ann,
                          "SELECT ai.set_id, s.name AS set_name, s.task, ai.status, ai.revision, ai.annotated_by, "
                          "ai.updated_at FROM annotation_items ai JOIN annotation_sets s ON s.id = ai.set_id "
                          "WHERE ai.image_id = ? ORDER BY ai.set_id",
                          "I", id);
        if (!rc) json_object_set_new(*out, "annotations", ann);
    }
    if (rc) {
        json_decref(*out);
        *out = NULL;
    }
    return rc;
}

int acv_image_project(acv_dbconn *c, int64_t id, int64_t *project_id)
{
    int rc = acv_db_query_int(c, project_id, 0, "SELECT project_id FROM images WHERE id = ?", "I", id);
    if (!rc && *project_id == 0) rc = acv_error(ACV_ENOTFOUND, "image %lld not found", (long long)id);
    return rc;
}

/* ---- listing ----------------------------------------------------------------------------- */

/* A WHERE clause built piece by piece with its bound values. */
typedef struct where {
    char sql[2048];
    size_t len;
    int n;
    struct {
        bool text;
        int64_t i;
        const char *s;
    } v[16];
} where;

static void w_add(where *w, const char *frag)
{
    size_t n = strlen(frag);
    ACV_ASSERT(w->len + n < sizeof w->sql);
    memcpy(w->sql + w->len, frag, n + 1);
    w->len += n;
}

static void w_int(where *w, int64_t i)
{
    ACV_ASSERT(w->n < 16);
    w->v[w->n].text = false;
    w->v[w->n++].i = i;
}

static void w_text(where *w, const char *s)
{
    ACV_ASSERT(w->n < 16);
    w->v[w->n].text = true;
    w->v[w->n++].s = s;
}

static int w_prepare(acv_dbconn *c, const char *sql, const where *w, int extra, sqlite3_stmt **st)
{
    sqlite3 *h = acv_db_handle(c);
    int s = sqlite3_prepare_v2(h, sql, -1, st, NULL);
    if (s != SQLITE_OK) return acv_db_error(c, s, "listing images");
    for (int i = 0; i < w->n && i < sqlite3_bind_parameter_count(*st) - extra; i++) {
        if (w->v[i].text) sqlite3_bind_text(*st, i + 1, w->v[i].s, -1, SQLITE_STATIC);
        else sqlite3_bind_int64(*st, i + 1, w->v[i].i);
    }
    return 0;
}

/* "YYYY-MM-DD" or "YYYY-MM-DDTHH:MM:SS[Z]" into the stored form; a date alone becomes the
 * start (end_of_day false) or the end of its day. */
static int parse_time(const char *s, const char *what, bool end_of_day, char out[ACV_DB_TIME_LEN])
{
    static const char PAT[] = "dddd-dd-ddTdd:dd:dd";
    size_t n = strlen(s);
    bool ok = n == 10 || n == 19 || (n == 20 && s[19] == 'Z');
    for (size_t i = 0; ok && i < n && i < 19; i++)
        ok = PAT[i] == 'd' ? isdigit((unsigned char)s[i]) != 0 : s[i] == PAT[i];
    if (!ok)
        return acv_error(ACV_EFORMAT, "query parameter '%s' must be a date (2024-05-01) or a UTC time "
                                      "(2024-05-01T12:00:00Z), not '%.40s'", what, s);
    if (n == 10) snprintf(out, ACV_DB_TIME_LEN, "%sT%s", s, end_of_day ? "23:59:59Z" : "00:00:00Z");
    else snprintf(out, ACV_DB_TIME_LEN, "%.19sZ", s);
    return 0;
}

static const char *const STATUSES[] = {"new", "in_progress", "submitted", "accepted", "rejected", NULL};

int acv_image_list(acv_dbconn *c, int64_t project_id, const acv_image_filter *f, int limit, int offset,
                   json_t **items, int64_t *total)
{
    *items = NULL;
    *total = 0;
    acv_image_filter none = {0};
    if (!f) f = &none;
    char since[ACV_DB_TIME_LEN], until[ACV_DB_TIME_LEN];
    int rc = 0;
    if (f->status) {
        bool ok = false;
        for (int i = 0; STATUSES[i]; i++) ok |= !strcmp(STATUSES[i], f->status);
        if (!ok)
            return acv_error(ACV_EFORMAT, "query parameter 'status' must be one of new, in_progress, submitted, "
                                          "accepted, rejected (not '%.40s')", f->status);
    }
    if (f->since && (rc = parse_time(f->since, "since", false, since))) return rc;
    if (f->until && (rc = parse_time(f->until, "until", true, until))) return rc;
    if (f->set_id) {
        int64_t pid = 0;
        if ((rc = acv_db_query_int(c, &pid, 0, "SELECT project_id FROM annotation_sets WHERE id = ?", "I", f->set_id)))
            return rc;
        if (pid != project_id)
            return acv_error(ACV_EINVAL, "set_id %lld is not an annotation set of project %lld", (long long)f->set_id,
                             (long long)project_id);
    }

    where w = {.len = 0};
    w_add(&w, " FROM images i WHERE i.project_id = ?");
    w_int(&w, project_id);
    if (f->set_id || f->status || f->label || f->annotated_by) {
        w_add(&w, " AND EXISTS (SELECT 1 FROM annotation_items ai WHERE ai.image_id = i.id");
        if (f->set_id) {
            w_add(&w, " AND ai.set_id = ?");
            w_int(&w, f->set_id);
        } else {
            w_add(&w, " AND ai.set_id IN (SELECT id FROM annotation_sets WHERE project_id = ?)");
            w_int(&w, project_id);
        }
        if (f->status) {
            w_add(&w, " AND ai.status = ?");
            w_text(&w, f->status);
        }
        if (f->annotated_by) {
            w_add(&w, " AND ai.annotated_by = ?");
            w_int(&w, f->annotated_by);
        }
        if (f->label) {
            w_add(&w, " AND (EXISTS (SELECT 1 FROM json_each(ai.doc_json, '$.tags') t WHERE t.value = ?)"
                      " OR EXISTS (SELECT 1 FROM json_each(ai.doc_json, '$.shapes') s"
                      " WHERE json_extract(s.value, '$.label') = ?))");
            w_text(&w, f->label);
            w_text(&w, f->label);
        }
        w_add(&w, ")");
    }
    if (f->since) {
        w_add(&w, " AND i.created_at >= ?");
        w_text(&w, since);
    }
    if (f->until) {
        w_add(&w, " AND i.created_at <= ?");
        w_text(&w, until);
    }
    if (f->q) {
        w_add(&w, " AND instr(lower(i.filename), lower(?)) > 0");
        w_text(&w, f->q);
    }

    char sql[2600];
    sqlite3_stmt *st = NULL;
    snprintf(sql, sizeof sql, "SELECT count(*)%s", w.sql);
    if ((rc = w_prepare(c, sql, &w, 0, &st))) return rc;
    int s = sqlite3_step(st);
    if (s == SQLITE_ROW) *total = sqlite3_column_int64(st, 0);
    else rc = acv_db_error(c, s, "counting images");
    sqlite3_finalize(st);
    if (rc) return rc;

    if (f->after_id) {
        w_add(&w, " AND i.id > ?");
        w_int(&w, f->after_id);
    }
    snprintf(sql, sizeof sql, "SELECT " IMAGE_COLS "%s ORDER BY i.id LIMIT ? OFFSET ?", w.sql);
    if ((rc = w_prepare(c, sql, &w, 2, &st))) return rc;
    sqlite3_bind_int(st, w.n + 1, limit);
    sqlite3_bind_int(st, w.n + 2, offset);
    json_t *arr = json_array();
    while (arr && (s = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *row = acv_db_row_json(st);
        if (!row || json_array_append_new(arr, row)) {
            json_decref(arr);
            arr = NULL;
        }
    }
    if (!arr) rc = acv_error(ACV_ENOMEM, "out of memory");
    else if (s != SQLITE_DONE) rc = acv_db_error(c, s, "listing images");
    sqlite3_finalize(st);
    if (rc) {
        json_decref(arr);
        return rc;
    }
    *items = arr;
    return 0;
}

/* ---- deletion ---------------------------------------------------------------------------- */

int acv_image_delete(acv_dbconn *c, acv_blobs *b, const acv_principal *who, int64_t id)
{
    json_t *img = NULL;
    int rc = acv_db_begin(c);
    if (rc) return rc;
    rc = acv_image_get(c, id, false, &img);
    char hash[65] = "", thumb[65] = "";
    if (!rc) {
        snprintf(hash, sizeof hash, "%s", json_string_value(json_object_get(img, "hash")));
        const char *th = json_string_value(json_object_get(img, "thumb_hash"));
        if (th) snprintf(thumb, sizeof thumb, "%s", th);
        rc = acv_db_exec(c, "DELETE FROM images WHERE id = ?", "I", id);
    }
    /* The image's blob references go with its row (trigger images_blobs_ad, schema v3). */
    if (!rc)
        rc = acv_audit_write(c, who, "delete", "image", id, json_integer_value(json_object_get(img, "project_id")),
                             json_pack("{s:O, s:O}", "filename", json_object_get(img, "filename"), "hash",
                                       json_object_get(img, "hash")));
    json_decref(img);
    rc = acv_db_end(c, rc);
    if (rc) return rc;
    if (b) {
        acv_blobs_collect(b, c, hash);
        if (thumb[0]) acv_blobs_collect(b, c, thumb);
    }
    return 0;
}
