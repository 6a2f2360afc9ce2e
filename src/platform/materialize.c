/* Dataset versions on disk for jobs (see materialize.h). */
#include "platform/materialize.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "autocv/error.h"
#include "base/file.h"
#include "platform/annotation_doc.h"

/* The image extension from the first bytes of the file (the reader picks files by it). */
static const char *sniff_ext(const char *path)
{
    unsigned char m[4] = {0};
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return NULL;
    ssize_t n = read(fd, m, sizeof m);
    close(fd);
    if (n >= 2 && m[0] == 0xFF && m[1] == 0xD8) return "jpg";
    if (n >= 4 && m[0] == 0x89 && m[1] == 'P' && m[2] == 'N' && m[3] == 'G') return "png";
    if (n >= 2 && m[0] == 'B' && m[1] == 'M') return "bmp";
    return NULL;
}

/* Hard-links src to dst, copying when a link is not possible. */
static int link_or_copy(const char *src, const char *dst)
{
    if (link(src, dst) == 0) return 0;
    if (errno != EXDEV && errno != EPERM && errno != EMLINK)
        return acv_error(ACV_EIO, "%s: cannot link to %s: %s", dst, src, strerror(errno));
    uint8_t *buf;
    size_t len;
    int rc = acv_file_read(src, (size_t)1 << 31, &buf, &len);
    if (rc) return rc;
    rc = acv_file_write_atomic(dst, buf, len);
    free(buf);
    return rc;
}

static int split_index(const char *s)
{
    if (!strcmp(s, "train")) return 0;
    if (!strcmp(s, "val")) return 1;
    if (!strcmp(s, "test")) return 2;
    return -1;
}

/* det (and seg/ocr shapes as their boxes): DIR/annotations/instances_<split>.json with the
 * images in DIR/images/<split>/<image id>.<ext>; category k+1 is label k; every shape's
 * bounding box is one annotation (iscrowd 0). */
static int write_coco(acv_blobs *b, json_t *labels, json_t *items, const char *tmp, int64_t counts[3])
{
    static const char *const SPLITS[3] = {"train", "val", "test"};
    json_t *cats = json_array(), *img[3], *ann[3], *index = json_object();
    size_t k;
    json_t *lab;
    json_array_foreach(labels, k, lab) {
        json_int_t idx = json_integer_value(json_object_get(lab, "index"));
        json_array_append_new(cats, json_pack("{s:I, s:O}", "id", idx + 1, "name", json_object_get(lab, "name")));
        json_object_set_new(index, json_string_value(json_object_get(lab, "name")) ?: "", json_integer(idx + 1));
    }
    for (int s = 0; s < 3; s++) {
        img[s] = json_array();
        ann[s] = json_array();
    }
    int rc = 0;
    json_int_t next_ann = 1;
    json_t *it;
    json_array_foreach(items, k, it) {
        int s = split_index(json_string_value(json_object_get(it, "split")));
        int64_t id = json_integer_value(json_object_get(it, "image_id"));
        if (s < 0) continue;
        char *src = acv_blobs_path(b, json_string_value(json_object_get(it, "blob_hash")));
        const char *ext = src ? sniff_ext(src) : NULL;
        if (!src || !ext) {
            rc = acv_error(ACV_EIO, "image %lld: its file is missing or not JPEG/PNG/BMP", (long long)id);
            free(src);
            break;
        }
        char name[64], dst[4096];
        snprintf(name, sizeof name, "%lld.%s", (long long)id, ext);
        snprintf(dst, sizeof dst, "%s/images/%s", tmp, SPLITS[s]);
        if (!(rc = acv_mkdirs(dst))) {
            snprintf(dst, sizeof dst, "%s/images/%s/%s", tmp, SPLITS[s], name);
            rc = link_or_copy(src, dst);
        }
        free(src);
        if (rc) break;
        counts[s]++;
        json_array_append_new(img[s], json_pack("{s:I, s:s, s:O, s:O}", "id", (json_int_t)id, "file_name", name,
                                                "width", json_object_get(it, "width"), "height",
                                                json_object_get(it, "height")));
        size_t j;
        json_t *sh;
        json_array_foreach(json_object_get(json_object_get(it, "doc"), "shapes"), j, sh) {
            json_t *cat = json_object_get(index, json_string_value(json_object_get(sh, "label")) ?: "");
            double bb[4], area;
            if (!cat || acv_ann_shape_bbox(sh, bb, &area) || bb[2] <= 0 || bb[3] <= 0) continue;
            json_array_append_new(ann[s], json_pack("{s:I, s:I, s:O, s:[f, f, f, f], s:f, s:i}", "id", next_ann++,
                                                    "image_id", (json_int_t)id, "category_id", cat, "bbox", bb[0],
                                                    bb[1], bb[2], bb[3], "area", bb[2] * bb[3], "iscrowd", 0));
        }
    }
    for (int s = 0; s < 3 && !rc; s++) {
        if (!json_array_size(img[s])) continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/annotations", tmp);
        if ((rc = acv_mkdirs(p))) break;
        snprintf(p, sizeof p, "%s/annotations/instances_%s.json", tmp, SPLITS[s]);
        json_t *doc = json_pack("{s:O, s:O, s:O}", "images", img[s], "annotations", ann[s], "categories", cats);
        char *text = json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(9));
        rc = text ? acv_file_write_atomic(p, text, strlen(text)) : acv_error(ACV_ENOMEM, "out of memory");
        free(text);
        json_decref(doc);
    }
    for (int s = 0; s < 3; s++) {
        json_decref(img[s]);
        json_decref(ann[s]);
    }
    json_decref(cats);
    json_decref(index);
    return rc;
}

int acv_version_materialize(acv_dbconn *c, acv_blobs *b, int64_t version_id, const char *dir, int64_t counts[3])
{
    static const char *const SPLITS[3] = {"train", "val", "test"};
    json_t *ver = NULL, *items = NULL;
    int rc = acv_db_query_row(c, &ver, "SELECT task, labels_json FROM dataset_versions WHERE id = ?", "I", version_id);
    if (rc) return rc;
    if (!ver) return acv_error(ACV_ENOTFOUND, "dataset version %lld not found", (long long)version_id);
    const char *task = json_string_value(json_object_get(ver, "task"));
    bool det = task && !strcmp(task, "det");
    if (!task || (strcmp(task, "cls") && !det)) {
        rc = acv_error(ACV_EUNSUPPORTED, "dataset version %lld: task '%s' cannot be written for training yet (cls, det)",
                       (long long)version_id, task ? task : "?");
        json_decref(ver);
        return rc;
    }
    json_t *labels = json_object_get(ver, "labels");
    size_t nlab = json_array_size(labels);
    if (!nlab) {
        json_decref(ver);
        return acv_error(ACV_EINVAL, "dataset version %lld has no labels", (long long)version_id);
    }
    rc = acv_db_query(c, &items, "SELECT image_id, blob_hash, split, width, height, doc_json FROM dataset_version_items "
                                 "WHERE version_id = ? ORDER BY image_id", "I", version_id);
    char *tmp = NULL, *classes = NULL;
    if (!rc && asprintf(&tmp, "%s.tmp", dir) < 0) tmp = NULL;
    if (!rc && !tmp) rc = acv_error(ACV_ENOMEM, "out of memory");
    if (!rc) rc = acv_remove_tree(tmp);
    if (!rc) rc = acv_mkdirs(tmp);
    if (det) {
        int64_t cnt[3] = {0};
        if (!rc) rc = write_coco(b, labels, items, tmp, cnt);
        if (rc) acv_error_prefix(rc, "dataset version %lld: ", (long long)version_id);
        if (!rc) rc = acv_dir_replace(tmp, dir);
        if (rc && tmp) acv_remove_tree(tmp);
        if (!rc && counts) memcpy(counts, cnt, sizeof cnt);
        free(tmp);
        json_decref(items);
        json_decref(ver);
        return rc;
    }
    /* which splits have images */
    int used[3] = {0};
    size_t k;
    json_t *it;
    if (!rc) json_array_foreach(items, k, it) {
            int s = split_index(json_string_value(json_object_get(it, "split")));
            if (s >= 0) used[s] = 1;
        }
    for (int s = 0; s < 3 && !rc; s++)
        for (size_t l = 0; used[s] && l < nlab && !rc; l++) {
            char p[4096];
            snprintf(p, sizeof p, "%s/%s/%04zu", tmp, SPLITS[s], l);
            rc = acv_mkdirs(p);
        }
    /* classes.txt in index order */
    if (!rc) {
        size_t cap = 64;
        json_t *lab;
        json_array_foreach(labels, k, lab) cap += strlen(json_string_value(json_object_get(lab, "name")) ?: "") + 1;
        classes = malloc(cap);
        if (!classes) rc = acv_error(ACV_ENOMEM, "out of memory");
        size_t off = 0;
        for (size_t l = 0; !rc && l < nlab; l++) {
            const char *name = NULL;
            json_array_foreach(labels, k, lab)
                if (json_integer_value(json_object_get(lab, "index")) == (json_int_t)l)
                    name = json_string_value(json_object_get(lab, "name"));
            if (!name) {
                rc = acv_error(ACV_EFORMAT, "dataset version %lld: label index %zu missing", (long long)version_id, l);
                break;
            }
            off += (size_t)sprintf(classes + off, "%s\n", name);
        }
        if (!rc) {
            char p[4096];
            snprintf(p, sizeof p, "%s/classes.txt", tmp);
            rc = acv_file_write_atomic(p, classes, off);
        }
    }
    int64_t cnt[3] = {0};
    if (!rc) json_array_foreach(items, k, it) {
            int s = split_index(json_string_value(json_object_get(it, "split")));
            json_t *tags = json_object_get(json_object_get(it, "doc"), "tags");
            const char *tag = json_string_value(json_array_get(tags, 0));
            int64_t img = json_integer_value(json_object_get(it, "image_id"));
            int cls = -1;
            size_t l;
            json_t *lab;
            json_array_foreach(labels, l, lab)
                if (tag && !strcmp(json_string_value(json_object_get(lab, "name")) ?: "", tag))
                    cls = (int)json_integer_value(json_object_get(lab, "index"));
            if (s < 0 || cls < 0) {
                rc = acv_error(ACV_EFORMAT, "dataset version %lld: image %lld has no class tag of the version's labels",
                               (long long)version_id, (long long)img);
                break;
            }
            char *src = acv_blobs_path(b, json_string_value(json_object_get(it, "blob_hash")));
            if (!src) { rc = acv_error(ACV_ENOMEM, "out of memory"); break; }
            const char *ext = sniff_ext(src);
            if (!ext) {
                rc = acv_error(ACV_EIO, "dataset version %lld: image %lld: blob %s is missing or not JPEG/PNG/BMP",
                               (long long)version_id, (long long)img, src);
                free(src);
                break;
            }
            char dst[4096];
            snprintf(dst, sizeof dst, "%s/%s/%04d/%lld.%s", tmp, SPLITS[s], cls, (long long)img, ext);
            rc = link_or_copy(src, dst);
            free(src);
            cnt[s]++;
            if (rc) break;
        }
    if (!rc) rc = acv_dir_replace(tmp, dir);
    if (rc && tmp) acv_remove_tree(tmp);
    if (!rc && counts) memcpy(counts, cnt, sizeof cnt);
    free(classes);
    free(tmp);
    json_decref(items);
    json_decref(ver);
    return rc;
}
