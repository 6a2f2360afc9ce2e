/* Dataset versions on disk for jobs (see materialize.h). */
#include "platform/materialize.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "autocv/error.h"
#include "base/file.h"

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

int acv_version_materialize(acv_dbconn *c, acv_blobs *b, int64_t version_id, const char *dir, int64_t counts[3])
{
    static const char *const SPLITS[3] = {"train", "val", "test"};
    json_t *ver = NULL, *items = NULL;
    int rc = acv_db_query_row(c, &ver, "SELECT task, labels_json FROM dataset_versions WHERE id = ?", "I", version_id);
    if (rc) return rc;
    if (!ver) return acv_error(ACV_ENOTFOUND, "dataset version %lld not found", (long long)version_id);
    const char *task = json_string_value(json_object_get(ver, "task"));
    if (!task || strcmp(task, "cls")) {
        rc = acv_error(ACV_EUNSUPPORTED, "dataset version %lld: task '%s' cannot be written for training yet (cls only)",
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
    rc = acv_db_query(c, &items, "SELECT image_id, blob_hash, split, doc_json FROM dataset_version_items "
                                 "WHERE version_id = ? ORDER BY image_id", "I", version_id);
    char *tmp = NULL, *classes = NULL;
    if (!rc && asprintf(&tmp, "%s.tmp", dir) < 0) tmp = NULL;
    if (!rc && !tmp) rc = acv_error(ACV_ENOMEM, "out of memory");
    if (!rc) rc = acv_remove_tree(tmp);
    if (!rc) rc = acv_mkdirs(tmp);
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
