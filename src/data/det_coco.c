/* Detection datasets: COCO JSON (instances_<split>.json), read with jansson and written back.
 * Categories are sorted by id (class k <-> cat_ids[k]); every split's file must list the same
 * categories. Images are found beside the annotations as the header of det_dataset.h says. */
#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "autocv/error.h"
#include "base/file.h"
#include "data/coco_json.h"
#include "data/det_internal.h"

/* ---- finding the files ---------------------------------------------------------------------- */

typedef struct coco_file {
    char *json;
    char split[32];
    bool top;        /* the one COCO file at the top of the folder: read whatever split is asked */
} coco_file;

static bool is_file(const char *p)
{
    struct stat st;
    return !stat(p, &st) && S_ISREG(st.st_mode);
}

static bool ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

/* The split a file name says: instances_X.json -> X; DIR/_annotations.coco.json -> DIR's name. */
static void split_of(const char *json, char *out, size_t n)
{
    const char *base = strrchr(json, '/');
    base = base ? base + 1 : json;
    out[0] = 0;
    if (!strncmp(base, "instances_", 10) && ends_with(base, ".json"))
        snprintf(out, n, "%.*s", (int)(strlen(base) - 15), base + 10);
    else if (!strcmp(base, "_annotations.coco.json") && base - json >= 2) {
        const char *end = base - 1, *start = end;
        while (start > json && start[-1] != '/') start--;
        snprintf(out, n, "%.*s", (int)(end - start), start);
    }
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* train, val, test first, then the other splits by name. */
static int split_rank(const char *s)
{
    static const char *const ORDER[3] = {"train", "val", "test"};
    for (int i = 0; i < 3; i++)
        if (acv__det_split_match(s, ORDER[i])) return i;
    return 3;
}

static int cmp_file(const void *a, const void *b)
{
    const coco_file *x = a, *y = b;
    int rx = split_rank(x->split), ry = split_rank(y->split);
    return rx != ry ? rx - ry : strcmp(x->json, y->json);
}

/* COCO files in dir: annotations/instances_*.json and <sub>/_annotations.coco.json (sorted). */
static int find_files(const char *dir, coco_file **out, int *n)
{
    *out = NULL;
    *n = 0;
    char *ann = acv_path_join(dir, "annotations");
    if (!ann) return acv_error(ACV_ENOMEM, "out of memory");
    char **names = NULL;
    int k = 0, cap = 0, rc = 0;
    for (int pass = 0; pass < 2 && !rc; pass++) {
        const char *where = pass ? dir : ann;
        DIR *d = opendir(where);
        if (!d) continue;
        struct dirent *e;
        while (!rc && (e = readdir(d))) {
            char *p = NULL;
            if (!pass && !strncmp(e->d_name, "instances_", 10) && ends_with(e->d_name, ".json"))
                p = acv__det_fmt("%s/%s", ann, e->d_name);
            else if (pass && e->d_name[0] != '.') {
                p = acv__det_fmt("%s/%s/_annotations.coco.json", dir, e->d_name);
                if (p && !is_file(p)) {
                    free(p);
                    continue;
                }
            } else
                continue;
            if (!p) rc = acv_error(ACV_ENOMEM, "out of memory");
            else if (k == cap) {
                cap = cap ? 2 * cap : 8;
                char **v = realloc(names, (size_t)cap * sizeof *v);
                if (!v) {
                    free(p);
                    rc = acv_error(ACV_ENOMEM, "out of memory");
                } else
                    names = v;
            }
            if (!rc) names[k++] = p;
        }
        closedir(d);
    }
    free(ann);
    /* No split files: one COCO file at the top (Label Studio's result.json, a Roboflow split's
       _annotations.coco.json), its images beside it or in images/. */
    static const char *const TOP[] = {"_annotations.coco.json", "result.json", NULL};
    bool top = false;
    for (int i = 0; !rc && !k && TOP[i]; i++) {
        char *p = acv__det_fmt("%s/%s", dir, TOP[i]);
        if (!p) rc = acv_error(ACV_ENOMEM, "out of memory");
        else if (!is_file(p) || !(names = malloc(sizeof *names)))
            free(p);
        else {
            names[k++] = p;
            top = true;
        }
    }
    if (!rc && k) qsort(names, (size_t)k, sizeof *names, cmp_str);
    coco_file *f = rc ? NULL : calloc((size_t)(k ? k : 1), sizeof *f);
    if (!rc && !f) rc = acv_error(ACV_ENOMEM, "out of memory");
    for (int i = 0; i < k; i++) {
        if (rc) {
            free(names[i]);
            continue;
        }
        f[i].json = names[i];
        split_of(names[i], f[i].split, sizeof f[i].split);
        f[i].top = top;
        if (top && split_rank(f[i].split) == 3) f[i].split[0] = 0; /* the folder's name is no split */
    }
    free(names);
    if (rc) {
        free(f);
        return rc;
    }
    if (k) qsort(f, (size_t)k, sizeof *f, cmp_file);
    *out = f;
    *n = k;
    return 0;
}

bool acv__det_is_coco(const char *path)
{
    if (is_file(path)) return ends_with(path, ".json");
    coco_file *f;
    int n;
    if (find_files(path, &f, &n)) return false;
    for (int i = 0; i < n; i++) free(f[i].json);
    free(f);
    return n > 0;
}

/* ---- reading -------------------------------------------------------------------------------- */

typedef struct id_idx {
    int64_t id;
    int idx;
} id_idx;

static int cmp_id(const void *a, const void *b)
{
    int64_t x = ((const id_idx *)a)->id, y = ((const id_idx *)b)->id;
    return (x > y) - (x < y);
}

static const id_idx *find_id(const id_idx *v, int n, int64_t id)
{
    id_idx key = {id, 0};
    return n ? bsearch(&key, v, (size_t)n, sizeof *v, cmp_id) : NULL;
}

/* Categories of root, sorted by id, into the dataset (first file) or checked against it.
 * Roboflow's dataset-level category (acv_coco_super_flags) is left out. */
static int read_categories(const char *json, json_t *root, const bool *super, acv__det_build *b, bool first)
{
    acv_det_dataset *ds = b->ds;
    json_t *cats = json_object_get(root, "categories");
    if (cats && !json_is_array(cats)) return acv_error(ACV_EFORMAT, "%s: \"categories\" is not an array", json);
    size_t k = json_array_size(cats);
    if (k > 1000000) return acv_error(ACV_EFORMAT, "%s: %zu categories is too many", json, k);
    id_idx *ord = calloc(k ? k : 1, sizeof *ord);
    char **names = calloc(k ? k : 1, sizeof *names);
    int64_t *ids = calloc(k ? k : 1, sizeof *ids);
    int rc = (!ord || !names || !ids) ? acv_error(ACV_ENOMEM, "out of memory") : 0;
    size_t kept = 0;
    for (size_t i = 0; !rc && i < k; i++) {
        json_t *c = json_array_get(cats, i);
        const char *name = json_string_value(json_object_get(c, "name"));
        if (!json_is_object(c) || !acv_coco_int(c, "id", &ord[kept].id))
            rc = acv_error(ACV_EFORMAT, "%s: categories[%zu] has no integer \"id\"", json, i);
        else if (!name || !*name)
            rc = acv_error(ACV_EFORMAT, "%s: category id %lld (categories[%zu]) has no \"name\"", json,
                           (long long)ord[kept].id, i);
        else if (!super[i])
            ord[kept++].idx = (int)i;
    }
    k = kept;
    if (!rc) qsort(ord, k, sizeof *ord, cmp_id);
    for (size_t i = 0; !rc && i < k; i++) {
        ids[i] = ord[i].id;
        names[i] = (char *)json_string_value(json_object_get(json_array_get(cats, (size_t)ord[i].idx), "name"));
        if (i && ids[i] == ids[i - 1])
            rc = acv_error(ACV_EFORMAT, "%s: two categories have id %lld", json, (long long)ids[i]);
    }
    for (size_t i = 0; !rc && i < k; i++)
        for (size_t j = i + 1; !rc && j < k; j++) /* k is small next to the annotations */
            if (!strcmp(names[i], names[j]))
                rc = acv_error(ACV_EFORMAT, "%s: categories %lld and %lld are both named '%s'", json,
                               (long long)ids[i], (long long)ids[j], names[i]);
    if (!rc && first) rc = acv__det_set_classes(ds, (int)k, names, ids);
    else if (!rc) {
        bool same = (int)k == ds->k;
        for (size_t i = 0; same && i < k; i++) same = ids[i] == ds->cat_ids[i] && !strcmp(names[i], ds->names[i]);
        if (!same)
            rc = acv_error(ACV_EFORMAT, "%s: its categories differ from those of the first split's file", json);
    }
    free(ord);
    free(names);
    free(ids);
    return rc;
}

/* The image file for file_name of a JSON file in split, or NULL. */
static char *resolve(const char *json, const char *split, const char *fname)
{
    char *jdir = strdup(json);
    if (!jdir) return NULL;
    char *slash = strrchr(jdir, '/');
    if (slash) *slash = 0;
    else strcpy(jdir, ".");
    const char *last = strrchr(jdir, '/');
    last = last ? last + 1 : jdir;
    char *root = NULL;
    if (!strcmp(last, "annotations")) {
        root = last == jdir ? strdup(".") : strndup(jdir, (size_t)(last - 1 - jdir));
    } else
        root = strdup(jdir);
    char *found = NULL;
    if (fname[0] == '/' && is_file(fname)) found = strdup(fname); /* an absolute path that exists */
    if (root && !found) {
        char *cand[6] = {
            *split ? acv__det_fmt("%s/images/%s/%s", root, split, fname) : NULL,
            *split ? acv__det_fmt("%s/%s/%s", root, split, fname) : NULL,
            acv__det_fmt("%s/images/%s", root, fname),
            acv__det_fmt("%s/%s", root, fname),
            acv__det_fmt("%s/%s", jdir, fname),
            acv__det_fmt("%s/images/%s", jdir, fname),
        };
        for (int i = 0; i < 6; i++) {
            if (!found && cand[i] && is_file(cand[i])) found = cand[i];
            else free(cand[i]);
        }
    }
    free(root);
    free(jdir);
    return found;
}

static int read_file(const coco_file *f, acv__det_build *b, bool first)
{
    acv_det_dataset *ds = b->ds;
    json_error_t err;
    json_t *root = json_load_file(f->json, 0, &err);
    if (!root)
        return acv_error(ACV_EFORMAT, "%s:%d:%d: not valid JSON: %s", f->json, err.line, err.column, err.text);
    int rc = 0;
    json_t *images = json_object_get(root, "images"), *anns = json_object_get(root, "annotations");
    if (!json_is_object(root)) rc = acv_error(ACV_EFORMAT, "%s: not a COCO file (the top level is not an object)", f->json);
    else if (!json_is_array(images))
        rc = acv_error(ACV_EFORMAT, "%s: not a COCO file (no \"images\" array)", f->json);
    else if (anns && !json_is_array(anns))
        rc = acv_error(ACV_EFORMAT, "%s: \"annotations\" is not an array", f->json);
    bool *super = NULL;
    if (!rc) rc = acv_coco_super_flags(json_object_get(root, "categories"), &super);
    if (!rc) rc = read_categories(f->json, root, super, b, first);
    size_t ni = json_array_size(images);
    id_idx *imap = rc ? NULL : calloc(ni ? ni : 1, sizeof *imap);
    if (!rc && !imap) rc = acv_error(ACV_ENOMEM, "out of memory");
    int nmap = 0;
    for (size_t i = 0; !rc && i < ni; i++) {
        json_t *o = json_array_get(images, i);
        int64_t id, w = 0, h = 0;
        const char *fname = json_string_value(json_object_get(o, "file_name"));
        if (!json_is_object(o) || !acv_coco_int(o, "id", &id)) {
            rc = acv__det_bad(b, "%s: images[%zu] has no integer \"id\"", f->json, i);
            continue;
        }
        if (!fname || !*fname) {
            rc = acv__det_bad(b, "%s: image id %lld (images[%zu]) has no \"file_name\"", f->json, (long long)id, i);
            imap[nmap++] = (id_idx){id, -1};
            continue;
        }
        char *path = resolve(f->json, f->split, fname);
        char *fs = NULL; /* fname with '/' for '\\' (a Windows export) */
        if (!path && strchr(fname, '\\') && (fs = strdup(fname))) {
            for (char *p = fs; *p; p++)
                if (*p == '\\') *p = '/';
            if ((path = resolve(f->json, f->split, fs))) fname = fs;
        }
        if (!path) {
            free(fs);
            rc = acv__det_bad(b, "%s: image id %lld (images[%zu]): image file '%s' not found (looked beside the "
                                 "file and in images/%s%s)",
                              f->json, (long long)id, i, fname, f->split, *f->split ? "/" : "");
            imap[nmap++] = (id_idx){id, -1};
            continue;
        }
        acv_coco_int(o, "width", &w);
        acv_coco_int(o, "height", &h);
        if (w <= 0 || h <= 0 || w > 1000000 || h > 1000000) {
            int iw, ih;
            if (acv__det_image_size(path, &iw, &ih)) {
                rc = acv__det_bad(b, "%s: image id %lld (images[%zu]): %s", f->json, (long long)id, i, acv_errmsg());
                free(path);
                free(fs);
                imap[nmap++] = (id_idx){id, -1};
                continue;
            }
            w = iw;
            h = ih;
        }
        acv_det_image *im = acv__det_add_image(b, path, fname, id, (int)w, (int)h, f->split);
        free(path);
        free(fs);
        if (!im) rc = ACV_ENOMEM;
        else imap[nmap++] = (id_idx){id, ds->n - 1};
    }
    if (!rc && nmap) qsort(imap, (size_t)nmap, sizeof *imap, cmp_id);
    for (int i = 1; !rc && i < nmap; i++)
        if (imap[i].id == imap[i - 1].id) rc = acv_error(ACV_EFORMAT, "%s: two images have id %lld", f->json, (long long)imap[i].id);
    id_idx *cmap = rc ? NULL : calloc((size_t)(ds->k ? ds->k : 1), sizeof *cmap);
    if (!rc && !cmap) rc = acv_error(ACV_ENOMEM, "out of memory");
    for (int c = 0; !rc && c < ds->k; c++) cmap[c] = (id_idx){ds->cat_ids[c], c}; /* already sorted */
    size_t na = json_array_size(anns);
    for (size_t i = 0; !rc && i < na; i++) {
        json_t *a = json_array_get(anns, i);
        int64_t aid = 0, iid, cid;
        char where[400];
        if (json_is_object(a) && acv_coco_int(a, "id", &aid))
            snprintf(where, sizeof where, "%s: annotation id %lld (annotations[%zu])", f->json, (long long)aid, i);
        else
            snprintf(where, sizeof where, "%s: annotations[%zu]", f->json, i);
        if (!json_is_object(a) || !acv_coco_int(a, "image_id", &iid)) {
            rc = acv__det_bad(b, "%s: no integer \"image_id\"", where);
            continue;
        }
        const id_idx *im = find_id(imap, nmap, iid);
        if (!im) {
            rc = acv__det_bad(b, "%s: image_id %lld is not an image of the file", where, (long long)iid);
            continue;
        }
        if (im->idx < 0) continue; /* its image was dropped (and counted) */
        if (!acv_coco_int(a, "category_id", &cid)) {
            rc = acv__det_bad(b, "%s: no integer \"category_id\"", where);
            continue;
        }
        const id_idx *c = find_id(cmap, ds->k, cid);
        if (!c) {
            json_t *cats = json_object_get(root, "categories");
            size_t sup = 0;
            while (sup < json_array_size(cats)) {
                int64_t id;
                if (acv_coco_int(json_array_get(cats, sup), "id", &id) && id == cid) break;
                sup++;
            }
            if (sup < json_array_size(cats) && super[sup])
                rc = acv__det_bad(b,
                                  "%s: category_id %lld ('%s') is the supercategory of the other categories (the "
                                  "dataset's name in a Roboflow export), not a class: give the box its own category",
                                  where, (long long)cid,
                                  json_string_value(json_object_get(json_array_get(cats, sup), "name")));
            else
                rc = acv__det_bad(b, "%s: category_id %lld is not one of the %d categories", where, (long long)cid,
                                  ds->k);
            continue;
        }
        json_t *bb = json_object_get(a, "bbox");
        double v[4];
        bool ok = json_is_array(bb) && json_array_size(bb) == 4;
        for (int j = 0; ok && j < 4; j++) {
            json_t *x = json_array_get(bb, (size_t)j);
            ok = json_is_number(x);
            v[j] = ok ? json_number_value(x) : 0;
        }
        if (!ok) {
            rc = acv__det_bad(b, "%s: \"bbox\" is not an array of 4 numbers [x, y, w, h]", where);
            continue;
        }
        acv_box box = {.x1 = (float)v[0], .y1 = (float)v[1], .x2 = (float)(v[0] + v[2]), .y2 = (float)(v[1] + v[3]),
                       .cls = c->idx};
        if (acv_coco_flag(a, "iscrowd")) box.flags |= ACV_BOX_CROWD;
        if (acv_coco_flag(a, "difficult")) box.flags |= ACV_BOX_DIFFICULT;
        rc = acv__det_push_box(b, &ds->images[im->idx], box, where);
    }
    free(imap);
    free(cmap);
    free(super);
    json_decref(root);
    return rc;
}

int acv__det_open_coco(const char *path, const char *split, acv__det_build *b)
{
    coco_file *files = NULL;
    int nf = 0, rc = 0;
    if (is_file(path)) {
        files = calloc(1, sizeof *files);
        if (!files || !(files[0].json = strdup(path))) {
            free(files);
            return acv_error(ACV_ENOMEM, "out of memory");
        }
        nf = 1;
        split_of(path, files[0].split, sizeof files[0].split);
        if (!files[0].split[0] && !acv__det_split_all(split))
            snprintf(files[0].split, sizeof files[0].split, "%s", split);
    } else if ((rc = find_files(path, &files, &nf)))
        return rc;
    else if (nf == 1 && files[0].top && !files[0].split[0] && !acv__det_split_all(split))
        snprintf(files[0].split, sizeof files[0].split, "%s", split);
    if (!nf) rc = acv_error(ACV_ENOTFOUND, "%s: no COCO annotation file (annotations/instances_<split>.json)", path);
    /* A split asked for: exact names first, then the looser matches (val2017, valid). */
    bool exact = false;
    for (int i = 0; i < nf && nf > 1; i++) exact |= split && !strcmp(files[i].split, split);
    int used = 0;
    for (int i = 0; !rc && i < nf; i++) {
        bool want = is_file(path) || files[i].top || (exact ? !strcmp(files[i].split, split)
                                            : acv__det_split_match(files[i].split, split));
        if (!want) continue;
        rc = read_file(&files[i], b, used == 0);
        used++;
    }
    if (!rc && !used) {
        char found[256] = "";
        size_t len = 0;
        for (int i = 0; i < nf && len < sizeof found; i++)
            len += (size_t)snprintf(found + len, sizeof found - len, "%s%s", i ? ", " : "", files[i].split);
        rc = acv_error(ACV_ENOTFOUND, "%s: no split '%s' (found: %s)", path, split, found);
    }
    for (int i = 0; i < nf; i++) free(files[i].json);
    free(files);
    return rc;
}

/* ---- writing -------------------------------------------------------------------------------- */

static json_t *num(double v)
{
    if (v == floor(v) && fabs(v) < 9e15) return json_integer((json_int_t)v);
    return json_real(v);
}

static int write_split(const acv_det_dataset *ds, const char *dir, const char *split, const char *s,
                       char **rel, int64_t *ann_id)
{
    json_t *root = json_pack("{s:{s:s, s:s}, s:[], s:[], s:[], s:[]}", "info", "description", "written by autocv",
                             "version", "1.0", "licenses", "images", "annotations", "categories");
    if (!root) return acv_error(ACV_ENOMEM, "out of memory");
    json_t *images = json_object_get(root, "images"), *anns = json_object_get(root, "annotations"),
           *cats = json_object_get(root, "categories");
    int rc = 0;
    for (int c = 0; !rc && c < ds->k; c++)
        if (json_array_append_new(cats, json_pack("{s:I, s:s, s:s}", "id", (json_int_t)ds->cat_ids[c], "name",
                                                  ds->names[c], "supercategory", "")))
            rc = acv_error(ACV_EINVAL, "class %d's name is not valid UTF-8", c);
    /* Image ids must be unique in the file; renumber 1..n when they are not (merged splits). */
    int cnt = 0;
    for (int i = 0; i < ds->n; i++) cnt += !strcmp(acv__det_out_split(&ds->images[i], split), s);
    id_idx *ids = calloc((size_t)(cnt ? cnt : 1), sizeof *ids);
    if (!rc && !ids) rc = acv_error(ACV_ENOMEM, "out of memory");
    bool renumber = false;
    if (!rc) {
        int j = 0;
        for (int i = 0; i < ds->n; i++)
            if (!strcmp(acv__det_out_split(&ds->images[i], split), s)) ids[j++] = (id_idx){ds->images[i].id, i};
        qsort(ids, (size_t)cnt, sizeof *ids, cmp_id);
        for (int i = 1; i < cnt; i++) renumber |= ids[i].id == ids[i - 1].id;
    }
    free(ids);
    int64_t next = 1;
    for (int i = 0; !rc && i < ds->n; i++) {
        const acv_det_image *im = &ds->images[i];
        if (strcmp(acv__det_out_split(im, split), s)) continue;
        int64_t id = renumber ? next++ : im->id;
        char *dst = acv__det_fmt("%s/images/%s/%s", dir, s, rel[i]);
        if (!dst) rc = acv_error(ACV_ENOMEM, "out of memory");
        else rc = acv__det_place(im->path, dst);
        free(dst);
        if (!rc && json_array_append_new(images, json_pack("{s:I, s:s, s:i, s:i}", "id", (json_int_t)id, "file_name",
                                                           rel[i], "width", im->w, "height", im->h)))
            rc = acv_error(ACV_EINVAL, "%s: the file name is not valid UTF-8", im->path);
        for (int j = 0; !rc && j < im->n; j++) {
            const acv_box *bx = &im->boxes[j];
            double x = bx->x1, y = bx->y1, w = (double)bx->x2 - bx->x1, h = (double)bx->y2 - bx->y1;
            json_t *a = json_pack("{s:I, s:I, s:I, s:[o,o,o,o], s:o, s:i, s:[[o,o,o,o,o,o,o,o]]}", "id",
                                  (json_int_t)(*ann_id)++, "image_id", (json_int_t)id, "category_id",
                                  (json_int_t)ds->cat_ids[bx->cls], "bbox", num(x), num(y), num(w), num(h), "area",
                                  num(w * h), "iscrowd", (bx->flags & ACV_BOX_CROWD) ? 1 : 0, "segmentation", num(x),
                                  num(y), num(bx->x2), num(y), num(bx->x2), num(bx->y2), num(x), num(bx->y2));
            if (a && (bx->flags & ACV_BOX_DIFFICULT)) json_object_set_new(a, "difficult", json_integer(1));
            if (!a || json_array_append_new(anns, a)) rc = acv_error(ACV_ENOMEM, "out of memory");
        }
    }
    char *out = rc ? NULL : acv__det_fmt("%s/annotations/instances_%s.json", dir, s);
    if (!rc && !out) rc = acv_error(ACV_ENOMEM, "out of memory");
    if (!rc) {
        char *text = json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(9));
        rc = text ? acv__det_write_text(out, text, strlen(text)) : acv_error(ACV_ENOMEM, "out of memory");
        free(text);
    }
    free(out);
    json_decref(root);
    return rc;
}

int acv__det_write_coco(const acv_det_dataset *ds, const char *dir, const char *split)
{
    char **rel = calloc((size_t)(ds->n ? ds->n : 1), sizeof *rel), **keys = calloc((size_t)(ds->n ? ds->n : 1), sizeof *keys);
    int rc = (!rel || !keys) ? acv_error(ACV_ENOMEM, "out of memory") : 0;
    for (int i = 0; !rc && i < ds->n; i++) {
        char name[1024];
        acv__det_safe_name(ds->images[i].file_name, false, name, sizeof name);
        rel[i] = strdup(name);
        keys[i] = acv__det_fmt("images/%s/%s", acv__det_out_split(&ds->images[i], split), name);
        if (!rel[i] || !keys[i]) rc = acv_error(ACV_ENOMEM, "out of memory");
    }
    if (!rc) rc = acv__det_check_unique(ds, keys, "file");
    int64_t ann_id = 1;
    char splits[ACV__DET_MAX_SPLITS][32];
    int ns = rc ? 0 : acv__det_splits(ds, split, splits);
    if (ns < 0) rc = ns;
    for (int i = 0; !rc && i < ns; i++) rc = write_split(ds, dir, split, splits[i], rel, &ann_id);
    for (int i = 0; i < ds->n && rel; i++) free(rel[i]);
    for (int i = 0; i < ds->n && keys; i++) free(keys[i]);
    free(rel);
    free(keys);
    return rc;
}
