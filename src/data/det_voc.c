/* Detection datasets: Pascal VOC (Annotations/<stem>.xml, JPEGImages/, ImageSets/Main/<split>.txt,
 * and AutoCV's labels.txt with the class order).
 *
 * Every XML under Annotations/ is parsed (so the class list is the same whichever split is
 * opened); a split list selects the images. With ImageSets/Main/, an image's split is the
 * first of train.txt, val.txt, test.txt (then trainval.txt, as its own split, when there is
 * neither train.txt nor val.txt) that lists it; annotation files no list names keep no split.
 *
 * The XML is read by data/xml.h (expat; a DOCTYPE is refused, so no entity is ever expanded);
 * each element remembers its line, so errors name it. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "autocv/error.h"
#include "base/file.h"
#include "data/det_internal.h"
#include "data/xml.h"

#define XML_MAX (16u << 20)
#define TEXT_MAX (64u << 20)

/* ---- reading -------------------------------------------------------------------------------- */

typedef struct vobj {
    char *name;
    double v[4];        /* xmin ymin xmax ymax as written */
    bool ok;            /* has a name and a numeric bndbox */
    unsigned flags;
    int line, index;
} vobj;

typedef struct vann {
    char stem[256];
    char *xml;          /* path */
    char *filename;     /* <filename> or NULL */
    int w, h;           /* <size>, 0 when absent */
    vobj *obj;
    int nobj;
    char *error;        /* the file could not be read or parsed: why */
    char split[32];
    int order;          /* position in its split list (or -1) */
} vann;

static void vann_free(vann *a)
{
    for (int i = 0; i < a->nobj; i++) free(a->obj[i].name);
    free(a->obj);
    free(a->xml);
    free(a->filename);
    free(a->error);
}

static int read_xml(vann *a)
{
    uint8_t *buf;
    size_t len;
    int rc = acv_file_read(a->xml, XML_MAX, &buf, &len);
    if (rc == ACV_ERANGE || rc == ACV_EIO) {
        a->error = acv__det_fmt("%s", acv_errmsg());
        return a->error ? 0 : acv_error(ACV_ENOMEM, "out of memory");
    }
    if (rc) return rc;
    acv_xml *root;
    rc = acv_xml_parse((const char *)buf, len, &root);
    free(buf);
    if (rc == ACV_EFORMAT) {
        a->error = acv__det_fmt("%s: malformed XML (%s)", a->xml, acv_errmsg());
        return a->error ? 0 : acv_error(ACV_ENOMEM, "out of memory");
    }
    if (rc) return rc;
    if (strcmp(root->name, "annotation")) {
        a->error = acv__det_fmt("%s: the root element is <%s>, not <annotation>", a->xml, root->name);
    } else {
        const char *fn = acv_xml_text(root, "filename");
        if (fn && *fn && !(a->filename = strdup(fn))) rc = acv_error(ACV_ENOMEM, "out of memory");
        acv_xml *size = acv_xml_child(root, "size");
        double w, h;
        if (size && acv_xml_num(size, "width", &w) && acv_xml_num(size, "height", &h) && w >= 1 && h >= 1 &&
            w <= 1e6 && h <= 1e6) {
            a->w = (int)w;
            a->h = (int)h;
        }
        int k = 0;
        for (acv_xml *o = root->child; o && !rc; o = o->next) {
            if (strcmp(o->name, "object")) continue;
            vobj *nv = realloc(a->obj, (size_t)(a->nobj + 1) * sizeof *nv);
            if (!nv) {
                rc = acv_error(ACV_ENOMEM, "out of memory");
                break;
            }
            a->obj = nv;
            vobj *ob = &a->obj[a->nobj++];
            memset(ob, 0, sizeof *ob);
            ob->index = ++k;
            ob->line = o->line;
            const char *name = acv_xml_text(o, "name");
            if (name && *name && !(ob->name = strdup(name))) rc = acv_error(ACV_ENOMEM, "out of memory");
            acv_xml *bb = acv_xml_child(o, "bndbox");
            ob->ok = ob->name && bb && acv_xml_num(bb, "xmin", &ob->v[0]) && acv_xml_num(bb, "ymin", &ob->v[1]) &&
                     acv_xml_num(bb, "xmax", &ob->v[2]) && acv_xml_num(bb, "ymax", &ob->v[3]);
            if (acv_xml_flag(o, "difficult")) ob->flags |= ACV_BOX_DIFFICULT;
            if (acv_xml_flag(o, "iscrowd")) ob->flags |= ACV_BOX_CROWD;
        }
    }
    if (!rc && a->error == NULL && strcmp(root->name, "annotation")) rc = acv_error(ACV_ENOMEM, "out of memory");
    acv_xml_free(root);
    return rc;
}

bool acv__det_is_voc(const char *path)
{
    char *p = acv_path_join(path, "Annotations");
    bool yes = p && acv_is_dir(p);
    free(p);
    return yes;
}

static int cmp_vann(const void *a, const void *b) { return strcmp(((const vann *)a)->stem, ((const vann *)b)->stem); }

static vann *find_stem(vann *v, int n, const char *stem)
{
    vann key;
    snprintf(key.stem, sizeof key.stem, "%s", stem);
    return n ? bsearch(&key, v, (size_t)n, sizeof *v, cmp_vann) : NULL;
}

/* The annotation files (sorted by stem), parsed. */
static int read_all(const char *dir, vann **out, int *n)
{
    *out = NULL;
    *n = 0;
    char *ad = acv_path_join(dir, "Annotations");
    if (!ad) return acv_error(ACV_ENOMEM, "out of memory");
    DIR *d = opendir(ad);
    if (!d) {
        int rc = acv_error(ACV_EIO, "%s: %s", ad, strerror(errno));
        free(ad);
        return rc;
    }
    vann *v = NULL;
    int k = 0, cap = 0, rc = 0;
    struct dirent *e;
    while (!rc && (e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.' || len < 5 || strcasecmp(e->d_name + len - 4, ".xml")) continue;
        if (len - 4 >= sizeof v->stem) {
            rc = acv_error(ACV_EFORMAT, "%s/%s: the file name is too long", ad, e->d_name);
            break;
        }
        if (k == cap) {
            cap = cap ? 2 * cap : 256;
            vann *nv = realloc(v, (size_t)cap * sizeof *nv);
            if (!nv) {
                rc = acv_error(ACV_ENOMEM, "out of memory");
                break;
            }
            v = nv;
        }
        memset(&v[k], 0, sizeof v[k]);
        snprintf(v[k].stem, sizeof v[k].stem, "%.*s", (int)(len - 4), e->d_name);
        v[k].order = -1;
        if (!(v[k].xml = acv__det_fmt("%s/%s", ad, e->d_name))) rc = acv_error(ACV_ENOMEM, "out of memory");
        k++;
    }
    closedir(d);
    free(ad);
    if (!rc && k) qsort(v, (size_t)k, sizeof *v, cmp_vann);
    for (int i = 0; !rc && i < k; i++) rc = read_xml(&v[i]);
    if (rc) {
        for (int i = 0; i < k; i++) vann_free(&v[i]);
        free(v);
        return rc;
    }
    *out = v;
    *n = k;
    return 0;
}

/* labels.txt: the class names in order (NULL *names when absent). */
static int read_labels_txt(const char *dir, char ***names, int *k)
{
    *names = NULL;
    *k = 0;
    char *p = acv_path_join(dir, "labels.txt");
    if (!p) return acv_error(ACV_ENOMEM, "out of memory");
    if (!acv_path_exists(p)) {
        free(p);
        return 0;
    }
    uint8_t *buf = NULL;
    size_t len;
    int rc = acv_file_read(p, TEXT_MAX, &buf, &len);
    int n = 0, lineno = 0;
    char **v = NULL;
    for (char *line = rc ? NULL : (char *)buf, *next; !rc && line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        lineno++;
        size_t m = strlen(line);
        while (m && isspace((unsigned char)line[m - 1])) line[--m] = 0;
        while (isspace((unsigned char)*line)) line++;
        if (!*line) continue;
        for (int i = 0; i < n && !rc; i++)
            if (!strcmp(v[i], line)) rc = acv_error(ACV_EFORMAT, "%s:%d: class '%s' is listed twice", p, lineno, line);
        char **nv = rc ? NULL : realloc(v, (size_t)(n + 1) * sizeof *nv);
        if (!rc && !nv) rc = acv_error(ACV_ENOMEM, "out of memory");
        if (rc) break;
        v = nv;
        if (!(v[n] = strdup(line))) rc = acv_error(ACV_ENOMEM, "out of memory");
        else n++;
    }
    free(buf);
    free(p);
    if (rc) {
        for (int i = 0; i < n; i++) free(v[i]);
        free(v);
        return rc;
    }
    *names = v;
    *k = n;
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Class names: labels.txt, else every object name of every annotation file, sorted. */
static int classes(const char *dir, vann *v, int n, acv_det_dataset *ds)
{
    char **names;
    int k;
    int rc = read_labels_txt(dir, &names, &k);
    if (rc) return rc;
    if (!names) {
        int cap = 0;
        for (int i = 0; !rc && i < n; i++)
            for (int j = 0; !rc && j < v[i].nobj; j++) {
                if (!v[i].obj[j].name) continue;
                if (k == cap) {
                    cap = cap ? 2 * cap : 64;
                    char **nn = realloc(names, (size_t)cap * sizeof *nn);
                    if (!nn) {
                        rc = acv_error(ACV_ENOMEM, "out of memory");
                        break;
                    }
                    names = nn;
                }
                names[k++] = v[i].obj[j].name; /* borrowed */
            }
        if (!rc && k) {
            qsort(names, (size_t)k, sizeof *names, cmp_str);
            int u = 0;
            for (int i = 0; i < k; i++)
                if (!u || strcmp(names[u - 1], names[i])) names[u++] = names[i];
            k = u;
        }
        if (!rc) rc = acv__det_set_classes(ds, k, names, NULL);
        free(names);
        return rc;
    }
    rc = acv__det_set_classes(ds, k, names, NULL);
    for (int i = 0; i < k; i++) free(names[i]);
    free(names);
    return rc;
}

static const char *const LISTS[] = {"train", "val", "test", "trainval"};

/* Marks each annotation with the split of the first list naming it. */
static int read_lists(acv__det_build *b, const char *dir, vann *v, int n, char found[4][32], int *nfound)
{
    *nfound = 0;
    bool have[4];
    for (int l = 0; l < 4; l++) {
        char *p = acv__det_fmt("%s/ImageSets/Main/%s.txt", dir, LISTS[l]);
        if (!p) return acv_error(ACV_ENOMEM, "out of memory");
        have[l] = acv_path_exists(p);
        free(p);
    }
    if (have[0] || have[1]) have[3] = false; /* trainval = train + val */
    int rc = 0;
    for (int l = 0; l < 4 && !rc; l++) {
        if (!have[l]) continue;
        snprintf(found[(*nfound)++], 32, "%s", LISTS[l]);
        char *p = acv__det_fmt("%s/ImageSets/Main/%s.txt", dir, LISTS[l]);
        uint8_t *buf = NULL;
        size_t len;
        rc = p ? acv_file_read(p, TEXT_MAX, &buf, &len) : acv_error(ACV_ENOMEM, "out of memory");
        int lineno = 0, order = 0;
        for (char *line = rc ? NULL : (char *)buf, *next; !rc && line; line = next) {
            next = strchr(line, '\n');
            if (next) *next++ = 0;
            lineno++;
            char *save, *stem = strtok_r(line, " \t\r", &save);
            if (!stem) continue;
            vann *a = find_stem(v, n, stem);
            if (!a) rc = acv__det_bad(b, "%s:%d: '%s' has no annotation file Annotations/%s.xml", p, lineno, stem, stem);
            else if (!a->split[0]) {
                snprintf(a->split, sizeof a->split, "%s", LISTS[l]);
                a->order = order++;
            }
        }
        free(buf);
        free(p);
    }
    return rc;
}

/* The image of an annotation: JPEGImages/<filename>, JPEGImages/<stem>.<ext>, DIR/<filename>. */
static char *find_image(const char *dir, const vann *a, const char **file_name)
{
    if (a->filename) {
        char *p = acv__det_fmt("%s/JPEGImages/%s", dir, a->filename);
        if (p && acv_path_exists(p)) {
            *file_name = a->filename;
            return p;
        }
        free(p);
    }
    /* the annotation file's stem, then <filename>'s (written without or with another extension) */
    static const char *const EXT[] = {"jpg", "jpeg", "png", "bmp", "JPG", "JPEG", "PNG", "BMP", NULL};
    char fstem[256] = "";
    if (a->filename && !strchr(a->filename, '/')) {
        snprintf(fstem, sizeof fstem, "%s", a->filename);
        char *dot = strrchr(fstem, '.');
        if (dot && dot != fstem && acv__det_is_image_name(fstem)) *dot = 0;
    }
    const char *stems[2] = {a->stem, fstem};
    for (int s = 0; s < 2; s++) {
        if (!*stems[s] || (s && !strcmp(stems[s], a->stem))) continue;
        for (int i = 0; EXT[i]; i++) {
            char *p = acv__det_fmt("%s/JPEGImages/%s.%s", dir, stems[s], EXT[i]);
            if (p && acv_path_exists(p)) {
                const char *slash = strrchr(p, '/');
                *file_name = slash + 1;
                return p;
            }
            free(p);
        }
    }
    if (a->filename) {
        char *p = acv__det_fmt("%s/%s", dir, a->filename);
        if (p && acv_path_exists(p)) {
            *file_name = a->filename;
            return p;
        }
        free(p);
    }
    return NULL;
}

typedef struct name_idx {
    const char *name;
    int idx;
} name_idx;

static int cmp_name(const void *a, const void *b) { return strcmp(((const name_idx *)a)->name, ((const name_idx *)b)->name); }

static int add_one(acv__det_build *b, const char *dir, vann *a, const name_idx *cls)
{
    acv_det_dataset *ds = b->ds;
    if (a->error) return acv__det_bad(b, "%s", a->error);
    const char *fname = NULL;
    char *path = find_image(dir, a, &fname);
    if (!path)
        return acv__det_bad(b, "%s: image file '%s' not found in JPEGImages/", a->xml, a->filename ? a->filename : a->stem);
    int w = a->w, h = a->h, rc = 0;
    if ((!w || !h) && acv__det_image_size(path, &w, &h)) {
        char msg[600];
        snprintf(msg, sizeof msg, "%s", acv_errmsg());
        free(path);
        return acv__det_bad(b, "%s: %s", a->xml, msg);
    }
    char fn[512];
    snprintf(fn, sizeof fn, "%s", fname); /* fname may point into path */
    acv_det_image *im = acv__det_add_image(b, path, fn, ds->n + 1, w, h, a->split);
    free(path);
    if (!im) return ACV_ENOMEM;
    for (int j = 0; !rc && j < a->nobj; j++) {
        const vobj *o = &a->obj[j];
        char where[600];
        snprintf(where, sizeof where, "%s:%d: object %d ('%.60s')", a->xml, o->line, o->index, o->name ? o->name : "");
        if (!o->ok) {
            rc = acv__det_bad(b, "%s: no <name> or no numeric <bndbox> xmin, ymin, xmax, ymax", where);
            continue;
        }
        name_idx key = {o->name, 0};
        const name_idx *hit = ds->k ? bsearch(&key, cls, (size_t)ds->k, sizeof *cls, cmp_name) : NULL;
        int c = hit ? hit->idx : -1;
        if (c < 0) {
            rc = acv__det_bad(b, "%s: class '%s' is not in labels.txt", where, o->name);
            continue;
        }
        acv_box box = {.x1 = (float)(o->v[0] - 1), .y1 = (float)(o->v[1] - 1), .x2 = (float)o->v[2],
                       .y2 = (float)o->v[3], .cls = c, .flags = o->flags};
        rc = acv__det_push_box(b, im, box, where);
    }
    return rc;
}

static int cmp_order(const void *a, const void *b)
{
    const vann *x = *(vann *const *)a, *y = *(vann *const *)b;
    return (x->order > y->order) - (x->order < y->order);
}

int acv__det_open_voc(const char *path, const char *split, acv__det_build *b)
{
    vann *v;
    int n;
    int rc = read_all(path, &v, &n);
    if (rc) return rc;
    rc = classes(path, v, n, b->ds);
    name_idx *cls = rc ? NULL : calloc((size_t)(b->ds->k ? b->ds->k : 1), sizeof *cls);
    if (!rc && !cls) rc = acv_error(ACV_ENOMEM, "out of memory");
    for (int c = 0; !rc && c < b->ds->k; c++) cls[c] = (name_idx){b->ds->names[c], c};
    if (!rc) qsort(cls, (size_t)b->ds->k, sizeof *cls, cmp_name);
    char found[4][32];
    int nfound = 0;
    if (!rc) rc = read_lists(b, path, v, n, found, &nfound);
    /* Which list: exact name first, then the looser matches (valid, val2007). */
    int want = -1;
    for (int l = 0; !rc && l < nfound && want < 0; l++)
        if (split && !strcmp(found[l], split)) want = l;
    for (int l = 0; !rc && l < nfound && want < 0; l++)
        if (!acv__det_split_all(split) && acv__det_split_match(found[l], split)) want = l;
    if (!rc && !acv__det_split_all(split) && want < 0 && (nfound || strcmp(split, "train"))) {
        char *names[4];
        for (int l = 0; l < nfound; l++) names[l] = found[l];
        rc = acv__det_no_split(path, split, names, nfound);
    }
    vann **sel = rc ? NULL : calloc((size_t)(n ? n : 1), sizeof *sel);
    if (!rc && !sel) rc = acv_error(ACV_ENOMEM, "out of memory");
    int ns = 0;
    for (int i = 0; !rc && i < n; i++)
        if (want < 0 || !strcmp(v[i].split, found[want])) sel[ns++] = &v[i];
    if (!rc && want >= 0) qsort(sel, (size_t)ns, sizeof *sel, cmp_order); /* the list's order */
    for (int i = 0; !rc && i < ns; i++) rc = add_one(b, path, sel[i], cls);
    free(sel);
    free(cls);
    for (int i = 0; i < n; i++) vann_free(&v[i]);
    free(v);
    return rc;
}

/* ---- writing -------------------------------------------------------------------------------- */


static int sb_esc(acv__det_sbuf *b, const char *s)
{
    int rc = 0;
    for (const char *e; !rc && *s; s++) rc = (e = acv_xml_entity(*s)) ? acv__det_sb_add(b, "%s", e) : acv__det_sb_add(b, "%c", *s);
    return rc;
}

static int xml_of(acv__det_sbuf *sb, const acv_det_dataset *ds, const acv_det_image *im, const char *file)
{
    sb->n = 0;
    int rc = acv__det_sb_add(sb, "<annotation>\n  <folder>JPEGImages</folder>\n  <filename>");
    if (!rc) rc = sb_esc(sb, file);
    if (!rc)
        rc = acv__det_sb_add(sb, "</filename>\n  <source><database>autocv</database></source>\n"
                        "  <size><width>%d</width><height>%d</height><depth>3</depth></size>\n"
                        "  <segmented>0</segmented>\n",
                    im->w, im->h);
    for (int j = 0; !rc && j < im->n; j++) {
        const acv_box *bx = &im->boxes[j];
        char v[4][40];
        acv__det_num(v[0], sizeof v[0], (double)bx->x1 + 1);
        acv__det_num(v[1], sizeof v[1], (double)bx->y1 + 1);
        acv__det_num(v[2], sizeof v[2], bx->x2);
        acv__det_num(v[3], sizeof v[3], bx->y2);
        rc = acv__det_sb_add(sb, "  <object>\n    <name>");
        if (!rc) rc = sb_esc(sb, ds->names[bx->cls]);
        if (!rc)
            rc = acv__det_sb_add(sb, "</name>\n    <pose>Unspecified</pose>\n    <truncated>0</truncated>\n"
                            "    <difficult>%d</difficult>\n%s"
                            "    <bndbox><xmin>%s</xmin><ymin>%s</ymin><xmax>%s</xmax><ymax>%s</ymax></bndbox>\n"
                            "  </object>\n",
                        (bx->flags & ACV_BOX_DIFFICULT) ? 1 : 0,
                        (bx->flags & ACV_BOX_CROWD) ? "    <iscrowd>1</iscrowd>\n" : "", v[0], v[1], v[2], v[3]);
    }
    return rc ? rc : acv__det_sb_add(sb, "</annotation>\n");
}

static _Thread_local char **t_stems; /* qsort has no context argument */
static int cmp_stem(const void *a, const void *b) { return strcmp(t_stems[*(const int *)a], t_stems[*(const int *)b]); }

int acv__det_write_voc(const acv_det_dataset *ds, const char *dir, const char *split)
{
    for (int c = 0; c < ds->k; c++)
        if (strpbrk(ds->names[c], "\n\r") || isspace((unsigned char)ds->names[c][0]) ||
            isspace((unsigned char)ds->names[c][strlen(ds->names[c]) - 1]))
            return acv_error(ACV_EINVAL, "class %d's name '%s' has a line break or surrounding spaces (labels.txt and "
                                         "VOC names are trimmed lines)", c, ds->names[c]);
    int n = ds->n;
    char **file = calloc((size_t)(n ? n : 1), sizeof *file), **stem = calloc((size_t)(n ? n : 1), sizeof *stem);
    int rc = (!file || !stem) ? acv_error(ACV_ENOMEM, "out of memory") : 0;
    for (int i = 0; !rc && i < n; i++) {
        char name[1024];
        acv__det_safe_name(ds->images[i].file_name, true, name, sizeof name);
        file[i] = strdup(name);
        char *dot = strrchr(name, '.');
        if (dot && dot != name) *dot = 0;
        stem[i] = strdup(name);
        if (!file[i] || !stem[i]) rc = acv_error(ACV_ENOMEM, "out of memory");
    }
    /* VOC keeps one folder for every split: images of the same name in different splits (or
       subfolders) are told apart by their split, "val_a.png". */
    int *ord = rc ? NULL : malloc((size_t)(n ? n : 1) * sizeof *ord);
    if (!rc && !ord) rc = acv_error(ACV_ENOMEM, "out of memory");
    if (!rc) {
        for (int i = 0; i < n; i++) ord[i] = i;
        t_stems = stem;
        qsort(ord, (size_t)n, sizeof *ord, cmp_stem);
        bool *dup = calloc((size_t)(n ? n : 1), sizeof *dup);
        if (!dup) rc = acv_error(ACV_ENOMEM, "out of memory");
        for (int i = 1; !rc && i < n; i++)
            if (!strcmp(stem[ord[i - 1]], stem[ord[i]])) dup[ord[i - 1]] = dup[ord[i]] = true;
        for (int i = 0; !rc && i < n; i++) {
            if (!dup[i]) continue;
            const char *sp = acv__det_out_split(&ds->images[i], split);
            char *f = acv__det_fmt("%s_%s", sp, file[i]), *st = acv__det_fmt("%s_%s", sp, stem[i]);
            free(file[i]);
            free(stem[i]);
            file[i] = f;
            stem[i] = st;
            if (!f || !st) rc = acv_error(ACV_ENOMEM, "out of memory");
        }
        free(dup);
    }
    free(ord);
    if (!rc) rc = acv__det_check_unique(ds, stem, "annotation stem");
    acv__det_sbuf sb = {0};
    for (int i = 0; !rc && i < n; i++) {
        const acv_det_image *im = &ds->images[i];
        char *dst = acv__det_fmt("%s/JPEGImages/%s", dir, file[i]);
        char *xml = acv__det_fmt("%s/Annotations/%s.xml", dir, stem[i]);
        rc = dst && xml ? acv__det_place(im->path, dst) : acv_error(ACV_ENOMEM, "out of memory");
        if (!rc) rc = xml_of(&sb, ds, im, file[i]);
        if (!rc) rc = acv__det_write_text(xml, sb.s, sb.n);
        free(dst);
        free(xml);
    }
    char splits[ACV__DET_MAX_SPLITS][32];
    int nsp = rc ? 0 : acv__det_splits(ds, split, splits);
    if (nsp < 0) rc = nsp;
    for (int s = 0; !rc && s < nsp; s++) {
        sb.n = 0;
        for (int i = 0; !rc && i < n; i++)
            if (!strcmp(acv__det_out_split(&ds->images[i], split), splits[s])) rc = acv__det_sb_add(&sb, "%s\n", stem[i]);
        char *p = rc ? NULL : acv__det_fmt("%s/ImageSets/Main/%s.txt", dir, splits[s]);
        if (!rc) rc = p ? acv__det_write_text(p, sb.s ? sb.s : "", sb.n) : acv_error(ACV_ENOMEM, "out of memory");
        free(p);
    }
    if (!rc) {
        sb.n = 0;
        for (int c = 0; !rc && c < ds->k; c++) rc = acv__det_sb_add(&sb, "%s\n", ds->names[c]);
        char *p = rc ? NULL : acv_path_join(dir, "labels.txt");
        if (!rc) rc = p ? acv__det_write_text(p, sb.s ? sb.s : "", sb.n) : acv_error(ACV_ENOMEM, "out of memory");
        free(p);
        if (!rc) {
            char *ad = acv__det_fmt("%s/Annotations", dir);
            rc = ad ? acv_mkdirs(ad) : acv_error(ACV_ENOMEM, "out of memory");
            free(ad);
        }
    }
    free(sb.s);
    for (int i = 0; i < n && file; i++) free(file[i]);
    for (int i = 0; i < n && stem; i++) free(stem[i]);
    free(file);
    free(stem);
    return rc;
}
