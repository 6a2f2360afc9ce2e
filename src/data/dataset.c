/* Classification datasets: idx and ImageFolder readers, stratified splits (see dataset.h). */
#include "data/dataset.h"

#include "autocv/error.h"
#include "base/file.h"
#include "base/rng.h"
#include "data/det_internal.h"
#include "data/idx.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

enum { DS_MEMORY, DS_FILES };

struct acv_cls_dataset {
    int kind;               /* DS_MEMORY or DS_FILES */
    const char *format;     /* static string */
    int k;                  /* classes */
    char **names;           /* (k) */
    int n;                  /* samples */
    int *labels;            /* (n) */
    int *src_index;         /* (n) position in the source (idx row, listing position) */
    /* DS_MEMORY: sample i is pix + src_index[i] * h * w * c */
    uint8_t *pix;
    int h, w, c;
    /* DS_FILES */
    char **paths;           /* (n) */
    int n_other;            /* files left out: an image format AutoCV does not read */
    char *first_other;      /* the first of them, or NULL */
};

static const char *const fashion_names[10] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
};

/* ---- small helpers ---------------------------------------------------------------- */

typedef struct strvec { char **v; int n, cap; } strvec;

static int strvec_push(strvec *s, char *str)
{
    if (!str) return acv_error(ACV_ENOMEM, "out of memory");
    if (s->n == s->cap) {
        int ncap = s->cap ? s->cap * 2 : 16;
        char **nv = realloc(s->v, (size_t)ncap * sizeof *nv);
        if (!nv) { free(str); return acv_error(ACV_ENOMEM, "out of memory"); }
        s->v = nv;
        s->cap = ncap;
    }
    s->v[s->n++] = str;
    return 0;
}

static void strvec_free(strvec *s)
{
    for (int i = 0; i < s->n; i++) free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof *s);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Strict UTF-8 (no overlong forms, surrogates or code points past U+10FFFF), as JSON needs. */
static int utf8_valid(const char *str)
{
    const unsigned char *p = (const unsigned char *)str;
    while (*p) {
        unsigned c = *p;
        int n = c < 0x80 ? 0 : (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2 : (c & 0xF8) == 0xF0 ? 3 : -1;
        if (n < 0 || (n == 1 && c < 0xC2) || c > 0xF4) return 0;
        unsigned cp = n == 0 ? c : c & (0x3F >> n);
        for (int i = 1; i <= n; i++) {
            if ((p[i] & 0xC0) != 0x80) return 0;
            cp = cp << 6 | (p[i] & 0x3F);
        }
        if ((n == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
            return 0;
        p += n + 1;
    }
    return 1;
}

/* Entries that are never classes or samples: hidden ones (.DS_Store, macOS '._' AppleDouble
 * files, .ipynb_checkpoints) and the metadata folders that archivers, NAS boxes and Windows
 * leave: __MACOSX (macOS zip), @eaDir (Synology thumbnails, which are JPEGs), $RECYCLE.BIN,
 * System Volume Information. */
static int is_skipped_name(const char *name)
{
    return name[0] == '.' || !strcmp(name, "__MACOSX") || !strcmp(name, "@eaDir") || !strcmp(name, "$RECYCLE.BIN") ||
           !strcmp(name, "System Volume Information");
}

static int is_image_name(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (!dot) return 0;
    static const char *const exts[] = {"jpg", "jpeg", "png", "bmp"};
    for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++)
        if (strcasecmp(dot + 1, exts[i]) == 0) return 1;
    return 0;
}

static char *path_join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    while (la > 1 && a[la - 1] == '/') la--;
    char *p = malloc(la + lb + 2);
    if (!p) return NULL;
    memcpy(p, a, la);
    p[la] = '/';
    memcpy(p + la + 1, b, lb + 1);
    return p;
}

static int is_dir_follow(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Lists the non-hidden entry names of dir into *names (sorted byte-wise); dirs_only keeps
 * directories (symlinks followed), otherwise only regular files. */
static int list_dir(const char *dir, int dirs_only, strvec *names)
{
    DIR *d = opendir(dir);
    if (!d) {
        int e = errno;
        return acv_error(e == ENOENT ? ACV_ENOTFOUND : ACV_EIO, "%s: cannot read directory: %s", dir, strerror(e));
    }
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (is_skipped_name(de->d_name)) continue;
        char *full = path_join(dir, de->d_name);
        if (!full) { rc = acv_error(ACV_ENOMEM, "out of memory"); break; }
        struct stat st;
        int ok = stat(full, &st) == 0;
        free(full);
        if (!ok) continue; /* dangling symlink */
        if (dirs_only ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode)) continue;
        if ((rc = strvec_push(names, strdup(de->d_name))) != 0) break;
    }
    closedir(d);
    if (rc) { strvec_free(names); return rc; }
    if (names->n > 1) qsort(names->v, (size_t)names->n, sizeof *names->v, cmp_str);
    return 0;
}

/* ---- stratified split ------------------------------------------------------------- */

/* Marks is_val[i] for a seeded stratified val fraction of labels (see acv_cls_dataset_open). */
static int stratified_split(const int *labels, int n, int k, float frac, uint64_t seed, uint8_t *is_val)
{
    memset(is_val, 0, (size_t)n);
    if (frac <= 0.0f || n == 0) return 0;
    int *start = calloc((size_t)k + 1, sizeof *start);
    int *order = malloc((size_t)n * sizeof *order);
    int *fill = calloc((size_t)k, sizeof *fill);
    if (!start || !order || !fill) {
        free(start); free(order); free(fill);
        return acv_error(ACV_ENOMEM, "out of memory");
    }
    for (int i = 0; i < n; i++) start[labels[i] + 1]++;
    for (int c = 0; c < k; c++) start[c + 1] += start[c];
    for (int i = 0; i < n; i++) order[start[labels[i]] + fill[labels[i]]++] = i;
    for (int c = 0; c < k; c++) {
        int cnt = start[c + 1] - start[c];
        if (cnt == 0) continue;
        int nval = (int)floor((double)frac * cnt + 0.5);
        if (nval == 0 && cnt >= 2) nval = 1;
        if (nval >= cnt) nval = cnt - 1;
        acv_rng r;
        acv_rng_seed3(&r, seed, 0x5b117ULL, (uint64_t)c);
        acv_rng_shuffle(&r, order + start[c], cnt);
        for (int j = 0; j < nval; j++) is_val[order[start[c] + j]] = 1;
    }
    free(start); free(order); free(fill);
    return 0;
}

/* ---- construction ----------------------------------------------------------------- */

static acv_cls_dataset *ds_alloc(int kind, const char *format, int k, int n)
{
    acv_cls_dataset *ds = calloc(1, sizeof *ds);
    if (!ds) return NULL;
    ds->kind = kind;
    ds->format = format;
    ds->k = k;
    ds->n = n;
    ds->names = calloc((size_t)(k > 0 ? k : 1), sizeof *ds->names);
    ds->labels = malloc((size_t)(n > 0 ? n : 1) * sizeof *ds->labels);
    ds->src_index = malloc((size_t)(n > 0 ? n : 1) * sizeof *ds->src_index);
    if (kind == DS_FILES) ds->paths = calloc((size_t)(n > 0 ? n : 1), sizeof *ds->paths);
    if (!ds->names || !ds->labels || !ds->src_index || (kind == DS_FILES && !ds->paths)) {
        acv_cls_dataset_free(ds);
        return NULL;
    }
    return ds;
}

static int set_names(acv_cls_dataset *ds, const char *const *names)
{
    for (int c = 0; c < ds->k; c++)
        if (!(ds->names[c] = strdup(names[c]))) return acv_error(ACV_ENOMEM, "out of memory");
    return 0;
}

/* PATH/classes.txt, when present, names the classes: line k (UTF-8, no tabs or control
 * characters; trailing CR allowed) is the display name of the k-th class folder in sorted
 * order, so folders may be codes ("0000", "0001") for names no file system takes. */
static int read_class_names(const char *root, acv_cls_dataset *ds)
{
    char *p = path_join(root, "classes.txt");
    if (!p) return acv_error(ACV_ENOMEM, "out of memory");
    FILE *f = fopen(p, "rb");
    if (!f) {
        free(p);
        return 0;
    }
    char **names = calloc((size_t)ds->k, sizeof *names);
    int rc = names ? 0 : acv_error(ACV_ENOMEM, "out of memory"), n = 0;
    char line[4096];
    while (!rc && fgets(line, sizeof line, f)) {
        size_t len = strlen(line);
        if (len && line[len - 1] == '\n') line[--len] = 0;
        else if (!feof(f)) { rc = acv_error(ACV_EFORMAT, "%s:%d: line too long", p, n + 1); break; }
        if (len && line[len - 1] == '\r') line[--len] = 0;
        if (n == 0 && !len && feof(f)) break;
        for (size_t i = 0; i < len && !rc; i++)
            if ((unsigned char)line[i] < 0x20) rc = acv_error(ACV_EFORMAT, "%s:%d: control character in a class name", p, n + 1);
        if (!rc && !len) rc = acv_error(ACV_EFORMAT, "%s:%d: empty class name", p, n + 1);
        if (!rc && n >= ds->k) rc = acv_error(ACV_EFORMAT, "%s: more names than the %d class folders", p, ds->k);
        if (!rc && !(names[n++] = strdup(line))) rc = acv_error(ACV_ENOMEM, "out of memory");
    }
    if (!rc && ferror(f)) rc = acv_error(ACV_EIO, "%s: read error", p);
    if (!rc && n != ds->k) rc = acv_error(ACV_EFORMAT, "%s: %d names for %d class folders", p, n, ds->k);
    fclose(f);
    for (int c = 0; c < ds->k; c++) {
        if (!rc) {
            free(ds->names[c]);
            ds->names[c] = names[c];
        } else if (names) {
            free(names[c]);
        }
    }
    free(names);
    free(p);
    return rc;
}

void acv_cls_dataset_free(acv_cls_dataset *ds)
{
    if (!ds) return;
    if (ds->names)
        for (int c = 0; c < ds->k; c++) free(ds->names[c]);
    if (ds->paths)
        for (int i = 0; i < ds->n; i++) free(ds->paths[i]);
    free(ds->names);
    free(ds->paths);
    free(ds->labels);
    free(ds->src_index);
    free(ds->pix);
    free(ds->first_other);
    free(ds);
}

int acv_cls_dataset_new_memory(const char *const *names, int k, const uint8_t *pixels, int n, int h, int w,
                               int c, const int *labels, acv_cls_dataset **out)
{
    *out = NULL;
    if (k < 1 || n < 0 || h < 1 || w < 1 || (c != 1 && c != 3))
        return acv_error(ACV_EINVAL, "in-memory dataset: bad shape k=%d n=%d h=%d w=%d c=%d", k, n, h, w, c);
    for (int i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= k)
            return acv_error(ACV_EINVAL, "in-memory dataset: label %d of sample %d not in [0, %d)", labels[i], i, k);
    acv_cls_dataset *ds = ds_alloc(DS_MEMORY, "memory", k, n);
    if (!ds) return acv_error(ACV_ENOMEM, "out of memory");
    size_t bytes = (size_t)n * h * w * c;
    ds->h = h; ds->w = w; ds->c = c;
    ds->pix = malloc(bytes ? bytes : 1);
    int rc = ds->pix ? set_names(ds, names) : acv_error(ACV_ENOMEM, "in-memory dataset: cannot allocate %zu bytes", bytes);
    if (rc) { acv_cls_dataset_free(ds); return rc; }
    if (bytes) memcpy(ds->pix, pixels, bytes);
    for (int i = 0; i < n; i++) { ds->labels[i] = labels[i]; ds->src_index[i] = i; }
    *out = ds;
    return 0;
}

int acv_cls_dataset_new_files(const char *const *names, int k, const char *const *paths, const int *labels,
                              int n, acv_cls_dataset **out)
{
    *out = NULL;
    if (k < 1 || n < 0) return acv_error(ACV_EINVAL, "file dataset: bad size k=%d n=%d", k, n);
    for (int i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= k)
            return acv_error(ACV_EINVAL, "file dataset: label %d of %s not in [0, %d)", labels[i], paths[i], k);
    acv_cls_dataset *ds = ds_alloc(DS_FILES, "files", k, n);
    if (!ds) return acv_error(ACV_ENOMEM, "out of memory");
    int rc = set_names(ds, names);
    for (int i = 0; i < n && rc == 0; i++) {
        ds->labels[i] = labels[i];
        ds->src_index[i] = i;
        if (!(ds->paths[i] = strdup(paths[i]))) rc = acv_error(ACV_ENOMEM, "out of memory");
    }
    if (rc) { acv_cls_dataset_free(ds); return rc; }
    *out = ds;
    return 0;
}

/* ---- idx -------------------------------------------------------------------------- */

/* Finds DIR/base or DIR/base.gz; *out is malloc'd or NULL when neither exists. */
static int find_idx_file(const char *dir, const char *base, char **out)
{
    *out = NULL;
    char name[128];
    snprintf(name, sizeof name, "%s", base);
    char *p = path_join(dir, name);
    if (!p) return acv_error(ACV_ENOMEM, "out of memory");
    if (acv_path_exists(p)) { *out = p; return 0; }
    free(p);
    snprintf(name, sizeof name, "%s.gz", base);
    if (!(p = path_join(dir, name))) return acv_error(ACV_ENOMEM, "out of memory");
    if (acv_path_exists(p)) { *out = p; return 0; }
    free(p);
    return 0;
}

static int dir_name_has_fashion(const char *path)
{
    /* The last non-empty path component, lower-cased, contains "fashion". */
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/') len--;
    size_t b = len;
    while (b > 0 && path[b - 1] != '/') b--;
    char buf[256];
    size_t m = len - b < sizeof buf - 1 ? len - b : sizeof buf - 1;
    for (size_t i = 0; i < m; i++) buf[i] = (char)tolower((unsigned char)path[b + i]);
    buf[m] = 0;
    if (m == 0 || strcmp(buf, ".") == 0) {
        /* "." or similar: resolve the real name. */
        char *real = realpath(path, NULL);
        if (!real) return 0;
        int r = strcmp(real, "/") != 0 && dir_name_has_fashion(real);
        free(real);
        return r;
    }
    return strstr(buf, "fashion") != NULL;
}

/* Reads a pair of image/label files and checks they agree. */
static int read_idx_pair(const char *img_path, const char *lab_path, acv_idx *img, acv_idx *lab)
{
    int rc = acv_idx_read_labels(lab_path, lab);
    if (rc) return rc;
    if (img_path) {
        rc = acv_idx_read_images(img_path, img);
        if (rc) { acv_idx_free(lab); return rc; }
        if (img->dims[0] != lab->dims[0]) {
            rc = acv_error(ACV_EFORMAT, "%s holds %d images but %s holds %d labels", img_path, img->dims[0],
                           lab_path, lab->dims[0]);
            acv_idx_free(img);
            acv_idx_free(lab);
            return rc;
        }
        if (img->dims[1] < 1 || img->dims[2] < 1) {
            rc = acv_error(ACV_EFORMAT, "%s: image size %dx%d is empty", img_path, img->dims[2], img->dims[1]);
            acv_idx_free(img);
            acv_idx_free(lab);
            return rc;
        }
    }
    return 0;
}

static int open_idx(const char *path, const char *split, float val_split, uint64_t seed, acv_cls_dataset **out)
{
    int test = strcmp(split, "test") == 0, val = strcmp(split, "val") == 0;
    char *tr_img = NULL, *tr_lab = NULL, *te_img = NULL, *te_lab = NULL;
    acv_idx img = {0}, lab = {0}, tlab = {0};
    uint8_t *is_val = NULL;
    int *labels = NULL;
    acv_cls_dataset *ds = NULL;
    int rc;
    if ((rc = find_idx_file(path, "train-images-idx3-ubyte", &tr_img)) ||
        (rc = find_idx_file(path, "train-labels-idx1-ubyte", &tr_lab)) ||
        (rc = find_idx_file(path, "t10k-images-idx3-ubyte", &te_img)) ||
        (rc = find_idx_file(path, "t10k-labels-idx1-ubyte", &te_lab)))
        goto done;
    if (!tr_lab) {
        rc = acv_error(ACV_ENOTFOUND, "%s: train-labels-idx1-ubyte[.gz] not found (train-images-idx3-ubyte is there)",
                       path);
        goto done;
    }
    if (test && (!te_img || !te_lab)) {
        rc = acv_error(ACV_ENOTFOUND, "%s: no test split: %s not found", path,
                       !te_img ? "t10k-images-idx3-ubyte[.gz]" : "t10k-labels-idx1-ubyte[.gz]");
        goto done;
    }
    if (val && val_split <= 0.0f) {
        rc = acv_error(ACV_EINVAL, "%s: idx data has no validation part and val_split is 0; set a val split fraction",
                       path);
        goto done;
    }
    /* Train labels are always read: they fix the class count and the val split. */
    if ((rc = read_idx_pair(test ? NULL : tr_img, tr_lab, &img, &lab))) goto done;
    if (test && (rc = read_idx_pair(te_img, te_lab, &img, &tlab))) goto done;

    int maxl = 0;
    for (size_t i = 0; i < lab.size; i++) if (lab.data[i] > maxl) maxl = lab.data[i];
    for (size_t i = 0; i < tlab.size; i++) if (tlab.data[i] > maxl) maxl = tlab.data[i];
    int fashion = dir_name_has_fashion(path);
    int k = maxl + 1 > 10 ? maxl + 1 : 10;
    if (fashion && k > 10) {
        rc = acv_error(ACV_EFORMAT, "%s: label %d found, but Fashion-MNIST has 10 classes", test ? te_lab : tr_lab, maxl);
        goto done;
    }

    const acv_idx *use_lab = test ? &tlab : &lab;
    int nsrc = use_lab->dims[0];
    labels = malloc((size_t)(nsrc > 0 ? nsrc : 1) * sizeof *labels);
    is_val = malloc((size_t)(nsrc > 0 ? nsrc : 1));
    if (!labels || !is_val) { rc = acv_error(ACV_ENOMEM, "out of memory"); goto done; }
    for (int i = 0; i < nsrc; i++) labels[i] = use_lab->data[i];
    if (test) memset(is_val, 0, (size_t)nsrc);
    else if ((rc = stratified_split(labels, nsrc, k, val_split, seed, is_val))) goto done;
    int n = 0;
    for (int i = 0; i < nsrc; i++) n += (is_val[i] != 0) == val;
    if (n == 0) {
        rc = acv_error(ACV_ENOTFOUND, "%s: split \"%s\" of the idx data is empty", path, split);
        goto done;
    }
    if (!(ds = ds_alloc(DS_MEMORY, "idx", k, n))) { rc = acv_error(ACV_ENOMEM, "out of memory"); goto done; }
    char digit[16];
    for (int c = 0; c < k && rc == 0; c++) {
        snprintf(digit, sizeof digit, "%d", c);
        if (!(ds->names[c] = strdup(fashion ? fashion_names[c] : digit))) rc = acv_error(ACV_ENOMEM, "out of memory");
    }
    if (rc) goto done;
    int j = 0;
    for (int i = 0; i < nsrc; i++) {
        if ((is_val[i] != 0) != val) continue;
        ds->labels[j] = labels[i];
        ds->src_index[j] = i;
        j++;
    }
    ds->h = img.dims[1];
    ds->w = img.dims[2];
    ds->c = 1;
    ds->pix = img.data; /* take ownership */
    img.data = NULL;
    *out = ds;
    ds = NULL;
done:
    acv_cls_dataset_free(ds);
    acv_idx_free(&img);
    acv_idx_free(&lab);
    acv_idx_free(&tlab);
    free(tr_img); free(tr_lab); free(te_img); free(te_lab);
    free(labels);
    free(is_val);
    return rc;
}

/* ---- ImageFolder ------------------------------------------------------------------ */

typedef struct file_entry { char *path; size_t dirlen; } file_entry;
typedef struct file_vec { file_entry *v; int n, cap; } file_vec;

static int file_vec_push(file_vec *f, char *path, size_t dirlen)
{
    if (!path) return acv_error(ACV_ENOMEM, "out of memory");
    if (f->n == f->cap) {
        int ncap = f->cap ? f->cap * 2 : 64;
        file_entry *nv = realloc(f->v, (size_t)ncap * sizeof *nv);
        if (!nv) { free(path); return acv_error(ACV_ENOMEM, "out of memory"); }
        f->v = nv;
        f->cap = ncap;
    }
    f->v[f->n].path = path;
    f->v[f->n].dirlen = dirlen;
    f->n++;
    return 0;
}

static void file_vec_free(file_vec *f)
{
    for (int i = 0; i < f->n; i++) free(f->v[i].path);
    free(f->v);
    memset(f, 0, sizeof *f);
}

/* torchvision order: sorted(os.walk(...)) sorts by directory path, then sorted(fnames). */
static int cmp_entry(const void *pa, const void *pb)
{
    const file_entry *a = pa, *b = pb;
    size_t m = a->dirlen < b->dirlen ? a->dirlen : b->dirlen;
    int c = memcmp(a->path, b->path, m);
    if (c) return c;
    if (a->dirlen != b->dirlen) return a->dirlen < b->dirlen ? -1 : 1;
    return strcmp(a->path + a->dirlen + 1, b->path + b->dirlen + 1);
}

/* Files in an image format AutoCV does not read (.webp, .tif, .gif, .heic, ...): counted,
 * the first one kept, so that leaving them out is reported rather than silent. */
typedef struct other_files { int n; char *first; } other_files;

/* Collects image files under dir recursively (symlinks followed, depth-limited); tallies
 * the files in other image formats into *other. */
static int walk_images(const char *dir, int depth, file_vec *files, other_files *other)
{
    if (depth > 32) return acv_error(ACV_EFORMAT, "%s: folders nested more than 32 deep (a symlink loop?)", dir);
    DIR *d = opendir(dir);
    if (!d) {
        int e = errno;
        return acv_error(ACV_EIO, "%s: cannot read directory: %s", dir, strerror(e));
    }
    int rc = 0;
    strvec subdirs = {0};
    struct dirent *de;
    size_t dirlen = strlen(dir);
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (is_skipped_name(de->d_name)) continue;
        char *full = path_join(dir, de->d_name);
        if (!full) { rc = acv_error(ACV_ENOMEM, "out of memory"); break; }
        struct stat st;
        if (stat(full, &st) != 0) { free(full); continue; }
        if (S_ISDIR(st.st_mode)) rc = strvec_push(&subdirs, full);
        else if (S_ISREG(st.st_mode) && is_image_name(de->d_name)) rc = file_vec_push(files, full, dirlen);
        else if (S_ISREG(st.st_mode) && acv__det_is_other_image_name(de->d_name) && other->n++ == 0) other->first = full;
        else free(full);
    }
    closedir(d);
    for (int i = 0; i < subdirs.n && rc == 0; i++) rc = walk_images(subdirs.v[i], depth + 1, files, other);
    strvec_free(&subdirs);
    return rc;
}

/* Lists the samples of one part (a folder with one folder per class) in class order.
 * class_names are the classes (sorted); part may lack some of them but not add any.
 * An empty class folder is an error in the training part; in val/ and test/ (may_lack) it
 * only means the class is absent there. Appends to files, *labels and *n; tallies files in
 * image formats AutoCV does not read into *other. */
static int list_part(const char *part, char *const *class_names, int k, int may_lack, file_vec *files, int **labels,
                     int *n, other_files *other)
{
    strvec dirs = {0};
    int rc = list_dir(part, 1, &dirs);
    if (rc) return rc;
    /* every foreign class is named, with the training classes, so one run shows the mismatch */
    char foreign[512] = "", known[512] = "";
    int nforeign = 0;
    for (int i = 0; i < dirs.n; i++) {
        int found = 0;
        for (int c = 0; c < k && !found; c++) found = strcmp(dirs.v[i], class_names[c]) == 0;
        if (!found && nforeign++ < 20)
            snprintf(foreign + strlen(foreign), sizeof foreign - strlen(foreign), "%s\"%s\"", nforeign > 1 ? ", " : "",
                     dirs.v[i]);
    }
    strvec_free(&dirs);
    if (nforeign) {
        for (int c = 0; c < k && c < 20; c++)
            snprintf(known + strlen(known), sizeof known - strlen(known), "%s\"%s\"", c ? ", " : "", class_names[c]);
        return acv_error(ACV_EFORMAT, "%s: %d class folder%s not among the training classes: %s%s (the training classes "
                         "are %s%s)", part, nforeign, nforeign > 1 ? "s are" : " is", foreign, nforeign > 20 ? ", ..." : "",
                         known, k > 20 ? ", ..." : "");
    }
    for (int c = 0; c < k && rc == 0; c++) {
        char *cdir = path_join(part, class_names[c]);
        if (!cdir) return acv_error(ACV_ENOMEM, "out of memory");
        if (!is_dir_follow(cdir)) { free(cdir); continue; }
        file_vec cf = {0};
        other_files co = {0};
        rc = walk_images(cdir, 0, &cf, &co);
        if (rc == 0 && cf.n == 0 && may_lack)
            ; /* the class has no images in this split, as if its folder were absent */
        else if (rc == 0 && cf.n == 0 && co.n)
            rc = acv_error(ACV_EFORMAT, "%s: empty class folder: no .jpg, .jpeg, .png or .bmp files, only %d in formats "
                           "AutoCV does not read (such as %s); convert them to JPEG or PNG", cdir, co.n, co.first);
        else if (rc == 0 && cf.n == 0)
            rc = acv_error(ACV_EFORMAT, "%s: empty class folder (no .jpg, .jpeg, .png or .bmp files)", cdir);
        if (co.n && other->n == 0) {
            other->first = co.first;
            co.first = NULL;
        }
        other->n += co.n;
        free(co.first);
        free(cdir);
        if (rc == 0 && cf.n > 0) { /* (never realloc to 0 bytes: that frees) */
            qsort(cf.v, (size_t)cf.n, sizeof *cf.v, cmp_entry);
            int *nl = realloc(*labels, (size_t)(*n + cf.n) * sizeof *nl);
            if (!nl) rc = acv_error(ACV_ENOMEM, "out of memory");
            else *labels = nl;
        }
        for (int i = 0; i < cf.n && rc == 0; i++) {
            (*labels)[*n] = c;
            rc = file_vec_push(files, cf.v[i].path, 0);
            if (rc == 0) { cf.v[i].path = NULL; (*n)++; }
        }
        file_vec_free(&cf);
    }
    return rc;
}

/* Lists class folder names of dir; fails when there are none. */
static int list_classes(const char *dir, strvec *names)
{
    int rc = list_dir(dir, 1, names);
    if (rc) return rc;
    if (names->n == 0) {
        strvec files = {0};
        int nimg = 0;
        if (list_dir(dir, 0, &files) == 0)
            for (int i = 0; i < files.n; i++) nimg += is_image_name(files.v[i]);
        strvec_free(&files);
        if (nimg)
            return acv_error(ACV_EFORMAT,
                             "%s: %d images but no class folders (put each class's images in a folder named after "
                             "the class)", dir, nimg);
        return acv_error(ACV_ENOTFOUND,
                         "%s: no images found (expected one folder per class with .jpg/.jpeg/.png/.bmp files, "
                         "train/ val/ test/ folders of those, or idx files such as train-images-idx3-ubyte.gz)", dir);
    }
    return 0;
}

static int open_imagefolder(const char *path, const char *split, float val_split, uint64_t seed,
                            acv_cls_dataset **out)
{
    int test = strcmp(split, "test") == 0, val = strcmp(split, "val") == 0;
    char *train_dir = path_join(path, "train");
    if (!train_dir) return acv_error(ACV_ENOMEM, "out of memory");
    /* DIR/train/ with class folders inside means a split tree; a lone class named
     * "train" holding images directly is a flat tree. */
    int split_layout = 0;
    if (is_dir_follow(train_dir)) {
        strvec sub = {0};
        if (list_dir(train_dir, 1, &sub) == 0) split_layout = sub.n > 0;
        strvec_free(&sub);
    }
    char *val_dir = NULL, *test_dir = NULL, *part = NULL;
    strvec classes = {0};
    file_vec files = {0};
    other_files other = {0};
    int *labels = NULL, n = 0;
    uint8_t *is_val = NULL;
    acv_cls_dataset *ds = NULL;
    int rc = 0, carve = 0;

    if (split_layout) {
        static const char *const val_names[] = {"val", "valid", "validation"};
        for (size_t i = 0; i < 3 && !val_dir; i++) {
            char *p = path_join(path, val_names[i]);
            if (!p) { rc = acv_error(ACV_ENOMEM, "out of memory"); goto done; }
            if (is_dir_follow(p)) val_dir = p; else free(p);
        }
        if (!(test_dir = path_join(path, "test"))) { rc = acv_error(ACV_ENOMEM, "out of memory"); goto done; }
        if (!is_dir_follow(test_dir)) { free(test_dir); test_dir = NULL; }
        if ((rc = list_classes(train_dir, &classes))) goto done;
        if (test) {
            if (!test_dir) {
                rc = acv_error(ACV_ENOTFOUND, "%s: no test split: folder %s/test not found (found train/%s)", path, path,
                               val_dir ? " and a validation folder" : "");
                goto done;
            }
            part = test_dir;
        } else if (val && val_dir) {
            part = val_dir;
        } else if (!val_dir) {
            part = train_dir;
            carve = 1;
        } else {
            part = train_dir;
        }
    } else {
        if ((rc = list_classes(path, &classes))) goto done;
        if (test) {
            rc = acv_error(ACV_ENOTFOUND, "%s: no test split: the folder holds class folders only (a test split needs "
                           "train/ and test/ folders, each with one folder per class)", path);
            goto done;
        }
        part = (char *)path;
        carve = 1;
    }
    if (carve && val && val_split <= 0.0f) {
        rc = acv_error(ACV_EINVAL, "%s: no validation folder and val_split is 0; set a val split fraction or add val/",
                       path);
        goto done;
    }
    int may_lack = part == val_dir || part == test_dir;
    if ((rc = list_part(part, classes.v, classes.n, may_lack, &files, &labels, &n, &other))) goto done;
    if (n == 0) {
        rc = acv_error(ACV_ENOTFOUND, "%s: no images found", part);
        goto done;
    }
    is_val = calloc((size_t)n, 1);
    if (!is_val) { rc = acv_error(ACV_ENOMEM, "out of memory"); goto done; }
    if (carve && (rc = stratified_split(labels, n, classes.n, val_split, seed, is_val))) goto done;
    int want_val = carve && val;
    int m = 0;
    for (int i = 0; i < n; i++) m += (is_val[i] != 0) == want_val;
    if (m == 0) {
        rc = acv_error(ACV_ENOTFOUND, "%s: split \"%s\" is empty (val_split %g of %d images)", path, split,
                       (double)val_split, n);
        goto done;
    }
    if (!(ds = ds_alloc(DS_FILES, "imagefolder", classes.n, m))) { rc = acv_error(ACV_ENOMEM, "out of memory"); goto done; }
    ds->n = 0; /* counts paths filled so far, for a clean free on error */
    if ((rc = set_names(ds, (const char *const *)classes.v))) goto done;
    if ((rc = read_class_names(path, ds))) goto done;
    for (int c = 0; c < ds->k; c++) {
        if (utf8_valid(ds->names[c])) continue;
        char shown[256];
        snprintf(shown, sizeof shown, "%s", ds->names[c]);
        for (char *q = shown; *q; q++)
            if ((unsigned char)*q >= 0x80) *q = '?';
        rc = acv_error(ACV_EFORMAT, "%s: class folder name '%s' is not valid UTF-8 (bytes shown as '?'); rename the "
                       "folder, or name the classes in %s/classes.txt", path, shown, path);
        goto done;
    }
    ds->n_other = other.n;
    ds->first_other = other.first;
    other.first = NULL;
    for (int i = 0; i < n; i++) {
        if ((is_val[i] != 0) != want_val) continue;
        int j = ds->n++;
        ds->labels[j] = labels[i];
        ds->src_index[j] = i;
        ds->paths[j] = files.v[i].path;
        files.v[i].path = NULL;
    }
    *out = ds;
    ds = NULL;
done:
    acv_cls_dataset_free(ds);
    file_vec_free(&files);
    free(other.first);
    strvec_free(&classes);
    free(labels);
    free(is_val);
    free(train_dir);
    free(val_dir);
    free(test_dir);
    return rc;
}

int acv_cls_dataset_open(const char *path, const char *split, float val_split, uint64_t seed, acv_cls_dataset **out)
{
    *out = NULL;
    if (!split || (strcmp(split, "train") && strcmp(split, "val") && strcmp(split, "test")))
        return acv_error(ACV_EINVAL, "%s: split \"%s\" is not train, val or test", path, split ? split : "(null)");
    if (!(val_split >= 0.0f && val_split < 1.0f))
        return acv_error(ACV_EINVAL, "%s: val_split %g is not in [0, 1)", path, (double)val_split);
    struct stat st;
    if (stat(path, &st) != 0) {
        int e = errno;
        return acv_error(e == ENOENT ? ACV_ENOTFOUND : ACV_EIO, "%s: %s", path, strerror(e));
    }
    if (!S_ISDIR(st.st_mode))
        return acv_error(ACV_EINVAL, "%s: not a directory (expected an ImageFolder tree or a folder of idx files)", path);
    char *tr_img = NULL;
    int rc = find_idx_file(path, "train-images-idx3-ubyte", &tr_img);
    if (rc) return rc;
    if (tr_img) {
        free(tr_img);
        return open_idx(path, split, val_split, seed, out);
    }
    return open_imagefolder(path, split, val_split, seed, out);
}

/* ---- access ----------------------------------------------------------------------- */

int acv_cls_dataset_size(const acv_cls_dataset *ds) { return ds->n; }
int acv_cls_dataset_num_classes(const acv_cls_dataset *ds) { return ds->k; }

const char *acv_cls_dataset_class_name(const acv_cls_dataset *ds, int k)
{
    ACV_ASSERT(k >= 0 && k < ds->k);
    return ds->names[k];
}

int acv_cls_dataset_label(const acv_cls_dataset *ds, int i)
{
    ACV_ASSERT(i >= 0 && i < ds->n);
    return ds->labels[i];
}

const char *acv_cls_dataset_path(const acv_cls_dataset *ds, int i)
{
    ACV_ASSERT(i >= 0 && i < ds->n);
    return ds->kind == DS_FILES ? ds->paths[i] : NULL;
}

int acv_cls_dataset_source_index(const acv_cls_dataset *ds, int i)
{
    ACV_ASSERT(i >= 0 && i < ds->n);
    return ds->src_index[i];
}

const char *acv_cls_dataset_format(const acv_cls_dataset *ds) { return ds->format; }

int acv_cls_dataset_other_files(const acv_cls_dataset *ds, const char **first)
{
    if (first) *first = ds->first_other;
    return ds->n_other;
}

void acv_cls_dataset_class_counts(const acv_cls_dataset *ds, int *counts)
{
    memset(counts, 0, (size_t)ds->k * sizeof *counts);
    for (int i = 0; i < ds->n; i++) counts[ds->labels[i]]++;
}

int acv_cls_dataset_get(const acv_cls_dataset *ds, int i, int want_c, acv_image *out)
{
    memset(out, 0, sizeof *out);
    if (i < 0 || i >= ds->n) return acv_error(ACV_EINVAL, "sample %d out of range [0, %d)", i, ds->n);
    if (want_c != 0 && want_c != 1 && want_c != 3)
        return acv_error(ACV_EINVAL, "want_c %d is not 0, 1 or 3", want_c);
    if (ds->kind == DS_FILES) {
        acv_decode_opts o = {.want_c = want_c, .max_pixels = 0, .apply_exif = 1};
        return acv_image_load(ds->paths[i], &o, out);
    }
    int c = want_c ? want_c : ds->c;
    int rc = acv_image_alloc(out, ds->w, ds->h, c);
    if (rc) return rc;
    size_t np = (size_t)ds->w * ds->h;
    const uint8_t *src = ds->pix + (size_t)ds->src_index[i] * np * ds->c;
    uint8_t *dst = out->data;
    if (c == ds->c) {
        memcpy(dst, src, np * c);
    } else if (ds->c == 1) { /* gray -> RGB */
        for (size_t p = 0; p < np; p++) dst[3 * p] = dst[3 * p + 1] = dst[3 * p + 2] = src[p];
    } else { /* RGB -> gray, BT.601 */
        for (size_t p = 0; p < np; p++)
            dst[p] = (uint8_t)((299 * src[3 * p] + 587 * src[3 * p + 1] + 114 * src[3 * p + 2] + 500) / 1000);
    }
    return 0;
}
