/* The engine's kernels checked against PyTorch.
 *
 * tests/ref/torch_ops_ref.py (run with Debian's /usr/bin/python3 and python3-torch) writes
 * random inputs and PyTorch's float64 outputs and gradients for ~130 named cases into a
 * temporary directory, with cases.json listing them. For every case this test runs the
 * plain-C reference kernel (acv_ref_*) and, where acv_backend_cpu() fills the slot, the CPU
 * backend's kernel, and requires the forward output and every gradient to match within
 * TOL relative error: max|got - ref| / max(max|ref|, 1e-6). Backward kernels ADD into
 * their gradients, so they run on zeroed buffers, and then once more on the same buffers,
 * which must then hold twice the reference ("acc" in the report; losses: the second call
 * has scale 0.5, so 1.5 times). One line per case and
 * implementation prints every error. Needs the working directory to be the repository
 * root (as `make test` runs it). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>
#include <jansson.h>

#include "autocv/error.h"
#include "base/file.h"
#include "nn/backend.h"
#include "nn/kernels.h"

#define TOL 1e-4
#define REF_SCRIPT "tests/ref/torch_ops_ref.py"
#define PYTHON "/usr/bin/python3"
#define MAX_ROLES 24
#define MAX_DIMS 8

/* ---- a tiny .npy reader (little-endian f4/f8/i4/i8, C order) ------------------------- */

typedef struct arr {
    int ndim;
    int64_t shape[MAX_DIMS];
    int64_t n;  /* number of elements (1 for a 0-d array) */
    double *d;  /* the values */
    float *f;   /* the same values as float32 */
} arr;

/* Finds the value text after 'key': in a .npy header dict; NULL when absent. */
static const char *npy_field(const char *hdr, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "'%s'", key);
    const char *p = strstr(hdr, pat);
    if (!p)
        return NULL;
    p = strchr(p + strlen(pat), ':');
    if (!p)
        return NULL;
    p++;
    while (*p == ' ')
        p++;
    return p;
}

/* Reads the .npy file at path into *a (a->d and a->f malloc'd; release with arr_free).
 * Returns 0, or a negative ACV_E* code with the message set. */
static int npy_read(const char *path, arr *a)
{
    memset(a, 0, sizeof *a);
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = acv_file_read(path, (size_t)256 << 20, &buf, &len);
    if (rc < 0)
        return rc;
    rc = ACV_EFORMAT;
    size_t hoff, hlen;
    if (len < 10 || memcmp(buf, "\x93NUMPY", 6) != 0) {
        acv_error(ACV_EFORMAT, "%s: not a .npy file (bad magic)", path);
        goto out;
    }
    if (buf[6] == 1) {
        hlen = (size_t)buf[8] | (size_t)buf[9] << 8;
        hoff = 10;
    } else if ((buf[6] == 2 || buf[6] == 3) && len >= 12) {
        hlen = (size_t)buf[8] | (size_t)buf[9] << 8 | (size_t)buf[10] << 16 |
               (size_t)buf[11] << 24;
        hoff = 12;
    } else {
        acv_error(ACV_EFORMAT, "%s: unsupported .npy version %d", path, buf[6]);
        goto out;
    }
    if (hoff + hlen > len) {
        acv_error(ACV_EFORMAT, "%s: header runs past the end of the file", path);
        goto out;
    }
    char hdr[1024];
    if (hlen >= sizeof hdr) {
        acv_error(ACV_EFORMAT, "%s: header too long (%zu bytes)", path, hlen);
        goto out;
    }
    memcpy(hdr, buf + hoff, hlen);
    hdr[hlen] = 0;
    const char *descr = npy_field(hdr, "descr");
    const char *fortran = npy_field(hdr, "fortran_order");
    const char *shape = npy_field(hdr, "shape");
    if (!descr || !fortran || !shape || *shape != '(') {
        acv_error(ACV_EFORMAT, "%s: header lacks descr, fortran_order or shape: %s", path, hdr);
        goto out;
    }
    if (strncmp(fortran, "False", 5) != 0) {
        rc = acv_error(ACV_EUNSUPPORTED, "%s: Fortran-order arrays are not supported", path);
        goto out;
    }
    static const char *const dtypes[4] = {"'<f4'", "'<f8'", "'<i4'", "'<i8'"};
    int dt = 0;
    while (dt < 4 && strncmp(descr, dtypes[dt], 5) != 0)
        dt++;
    if (dt == 4) {
        rc = acv_error(ACV_EUNSUPPORTED, "%s: unsupported dtype %.8s", path, descr);
        goto out;
    }
    int esize = dt & 1 ? 8 : 4;
    a->n = 1;
    const char *p = shape + 1;
    for (;;) {
        while (*p == ' ' || *p == ',')
            p++;
        if (*p == ')')
            break;
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p || v < 0 || a->ndim == MAX_DIMS) {
            acv_error(ACV_EFORMAT, "%s: bad shape in header: %s", path, hdr);
            goto out;
        }
        a->shape[a->ndim++] = v;
        a->n *= v;
        p = end;
    }
    size_t data_off = hoff + hlen;
    if ((size_t)a->n * (size_t)esize != len - data_off) {
        acv_error(ACV_EFORMAT, "%s: %zu data bytes for %lld elements of %d bytes", path,
                  len - data_off, (long long)a->n, esize);
        goto out;
    }
    a->d = malloc(sizeof(double) * (size_t)(a->n ? a->n : 1));
    a->f = malloc(sizeof(float) * (size_t)(a->n ? a->n : 1));
    if (!a->d || !a->f) {
        rc = acv_error(ACV_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    for (int64_t i = 0; i < a->n; i++) {
        const uint8_t *e = buf + data_off + (size_t)i * (size_t)esize;
        float f32;
        double f64;
        int32_t i32;
        int64_t i64;
        switch (dt) {
        case 0: memcpy(&f32, e, 4), a->d[i] = f32; break;
        case 1: memcpy(&f64, e, 8), a->d[i] = f64; break;
        case 2: memcpy(&i32, e, 4), a->d[i] = i32; break;
        default: memcpy(&i64, e, 8), a->d[i] = (double)i64; break;
        }
        a->f[i] = (float)a->d[i];
    }
    rc = 0;
out:
    free(buf);
    if (rc < 0)
        free(a->d), free(a->f), a->d = NULL, a->f = NULL;
    return rc;
}

static void arr_free(arr *a)
{
    free(a->d);
    free(a->f);
    memset(a, 0, sizeof *a);
}

/* ---- the state shared by all tests ------------------------------------------------------- */

static char g_dir[64];          /* the temporary directory with the reference files */
static json_t *g_cases;         /* the "cases" array of cases.json */
static double g_worst;          /* the largest relative error over all cases so far */
static char g_worst_at[160];    /* where it was seen */

/* One case while it runs: its arrays (loaded on demand), allocations and report line. */
typedef struct tcase {
    const char *name, *op;
    json_t *attrs, *files;
    const char *roles[MAX_ROLES];
    arr arrays[MAX_ROLES];
    int narrays;
    void **allocs;      /* what talloc handed out, freed with the case */
    int64_t *counts;    /* their element counts */
    int nallocs;
    bool failed;        /* a load error, a shape mismatch or an error above TOL */
    double worst, acc;  /* largest error of this implementation; of its accumulation checks */
    const char *impl;
    char line[1024];
    size_t len;
} tcase;

static void __attribute__((format(printf, 2, 3))) say(tcase *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (c->len < sizeof c->line) {
        int k = vsnprintf(c->line + c->len, sizeof c->line - c->len, fmt, ap);
        if (k > 0)
            c->len += (size_t)k;
    }
    va_end(ap);
}

/* Marks the case failed with a message in its report line. */
static void __attribute__((format(printf, 2, 3))) problem(tcase *c, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    say(c, " [ERROR: %s]", msg);
    c->failed = true;
}

/* Zeroed float storage freed with the case. */
static void *talloc(tcase *c, size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size);
    assert_non_null(p);
    void **na = realloc(c->allocs, sizeof(void *) * (size_t)(c->nallocs + 1));
    assert_non_null(na);
    c->allocs = na;
    int64_t *nc = realloc(c->counts, sizeof(int64_t) * (size_t)(c->nallocs + 1));
    assert_non_null(nc);
    c->counts = nc;
    c->allocs[c->nallocs] = p;
    c->counts[c->nallocs++] = (int64_t)count;
    return p;
}

static float *zeros(tcase *c, int64_t n)
{
    return talloc(c, (size_t)n, sizeof(float));
}

static float *copy_f(tcase *c, const arr *a)
{
    float *p = zeros(c, a->n);
    memcpy(p, a->f, sizeof(float) * (size_t)a->n);
    return p;
}

/* The array the case lists under role, loaded on first use; NULL when the case has none
 * (or it failed to load, which marks the case failed). */
static arr *get(tcase *c, const char *role)
{
    for (int i = 0; i < c->narrays; i++)
        if (!strcmp(c->roles[i], role))
            return &c->arrays[i];
    json_t *f = json_object_get(c->files, role);
    if (!f)
        return NULL;
    assert_true(c->narrays < MAX_ROLES);
    char *path = acv_path_join(g_dir, json_string_value(f));
    assert_non_null(path);
    arr *a = &c->arrays[c->narrays];
    int rc = npy_read(path, a);
    free(path);
    if (rc < 0) {
        problem(c, "%s", acv_errmsg());
        return NULL;
    }
    c->roles[c->narrays++] = role;
    return a;
}

/* Like get, but a missing array or a rank other than ndim (when ndim >= 0) fails the case. */
static arr *need(tcase *c, const char *role, int ndim)
{
    arr *a = get(c, role);
    if (!a) {
        if (!c->failed)
            problem(c, "array '%s' missing", role);
        return NULL;
    }
    if (ndim >= 0 && a->ndim != ndim) {
        problem(c, "array '%s' has rank %d, expected %d", role, a->ndim, ndim);
        return NULL;
    }
    return a;
}

static int attr_int(tcase *c, const char *key, int i)
{
    json_t *v = json_object_get(c->attrs, key);
    if (i >= 0)
        v = json_array_get(v, (size_t)i);
    if (json_is_boolean(v))
        return json_is_true(v);
    if (!json_is_number(v)) {
        problem(c, "attribute %s[%d] missing", key, i);
        return 0;
    }
    return (int)json_number_value(v);
}

static double attr_num(tcase *c, const char *key)
{
    json_t *v = json_object_get(c->attrs, key);
    if (!json_is_number(v)) {
        problem(c, "attribute %s missing", key);
        return 0;
    }
    return json_number_value(v);
}

/* Compares got (a talloc'd buffer, or one float elsewhere) against scale * ref; records
 * the relative error in the report line (acc: only into the accumulation figure). */
static void cmp(tcase *c, const char *label, const float *got, const arr *ref, double scale,
                bool acc)
{
    if (!ref) {
        problem(c, "no reference for %s", label);
        return;
    }
    int64_t n = 1;
    for (int i = 0; i < c->nallocs; i++)
        if (c->allocs[i] == got)
            n = c->counts[i];
    if (n != ref->n) {
        problem(c, "%s has %lld elements, PyTorch's %lld", label, (long long)n,
                (long long)ref->n);
        return;
    }
    double maxref = 0, maxdiff = 0;
    bool finite = true;
    for (int64_t i = 0; i < ref->n; i++) {
        double r = ref->d[i] * scale;
        if (!isfinite(got[i]))
            finite = false;
        maxref = fmax(maxref, fabs(r));
        maxdiff = fmax(maxdiff, fabs((double)got[i] - r));
    }
    double err = finite ? maxdiff / fmax(maxref, 1e-6) : INFINITY;
    if (acc)
        c->acc = fmax(c->acc, err);
    else
        say(c, " %s %.1e", label, err);
    c->worst = fmax(c->worst, err);
    if (!(err <= TOL)) {
        c->failed = true;
        say(c, " [%s%s ABOVE TOL]", label, acc ? " accumulated" : "");
    }
}

/* Checks a produced shape against the reference array's dims. */
static bool same_shape(tcase *c, const char *what, const arr *ref, int nd, const int64_t *dims)
{
    bool ok = ref->ndim == nd;
    for (int i = 0; ok && i < nd; i++)
        ok = ref->shape[i] == dims[i];
    if (!ok)
        problem(c, "%s: computed shape does not match PyTorch's output", what);
    return ok;
}

static int64_t prod(const arr *a, int from, int to)
{
    int64_t p = 1;
    for (int i = from; i < to; i++)
        p *= a->shape[i];
    return p;
}

/* ---- per-op runners: impl is the CPU backend, or NULL for the reference kernels ---------- */

static bool conv_params(tcase *c, bool transposed, acv_conv_params *p, arr **x, arr **w,
                        arr **b, arr **R)
{
    *x = need(c, "x", 4);
    *w = need(c, "w", 4);
    *b = get(c, "b");
    *R = need(c, "R", 4);
    if (!*x || !*w || !*R)
        return false;
    memset(p, 0, sizeof *p);
    p->N = (int)(*x)->shape[0], p->C = (int)(*x)->shape[1];
    p->H = (int)(*x)->shape[2], p->W = (int)(*x)->shape[3];
    p->KH = (int)(*w)->shape[2], p->KW = (int)(*w)->shape[3];
    p->stride_h = attr_int(c, "stride", 0), p->stride_w = attr_int(c, "stride", 1);
    p->pad_t = attr_int(c, "pad", 0), p->pad_l = attr_int(c, "pad", 1);
    p->pad_b = attr_int(c, "pad", 2), p->pad_r = attr_int(c, "pad", 3);
    p->dil_h = attr_int(c, "dil", 0), p->dil_w = attr_int(c, "dil", 1);
    p->groups = attr_int(c, "groups", -1);
    if (transposed) {
        p->out_pad_h = attr_int(c, "out_pad", 0), p->out_pad_w = attr_int(c, "out_pad", 1);
        p->K = (int)(*w)->shape[1] * p->groups;
        p->OH = (p->H - 1) * p->stride_h - p->pad_t - p->pad_b + p->dil_h * (p->KH - 1) +
                p->out_pad_h + 1;
        p->OW = (p->W - 1) * p->stride_w - p->pad_l - p->pad_r + p->dil_w * (p->KW - 1) +
                p->out_pad_w + 1;
    } else {
        p->K = (int)(*w)->shape[0];
        p->OH = (p->H + p->pad_t + p->pad_b - p->dil_h * (p->KH - 1) - 1) / p->stride_h + 1;
        p->OW = (p->W + p->pad_l + p->pad_r - p->dil_w * (p->KW - 1) - 1) / p->stride_w + 1;
    }
    int64_t dims[4] = {p->N, p->K, p->OH, p->OW};
    return !c->failed && same_shape(c, "output", *R, 4, dims);
}

static void run_conv(tcase *c, const acv_backend *be, bool transposed)
{
    acv_conv_params p;
    arr *x, *w, *b, *R;
    if (!conv_params(c, transposed, &p, &x, &w, &b, &R))
        return;
    float *out = zeros(c, R->n), *dx = zeros(c, x->n), *dw = zeros(c, w->n);
    float *db = b ? zeros(c, b->n) : NULL;
    const float *bf = b ? b->f : NULL;
    void *cache = NULL;
    if (!be)
        (transposed ? acv_ref_convt2d_forward : acv_ref_conv2d_forward)(out, x->f, w->f, bf, &p);
    else
        (transposed ? be->convt2d_forward : be->conv2d_forward)(&cache, out, x->f, w->f, bf, &p);
    cmp(c, "out", out, get(c, "out"), 1, false);
    for (int pass = 0; pass < 2; pass++) {
        if (!be)
            (transposed ? acv_ref_convt2d_backward : acv_ref_conv2d_backward)(dx, dw, db, R->f,
                                                                             x->f, w->f, &p);
        else
            (transposed ? be->convt2d_backward : be->conv2d_backward)(&cache, dx, dw, db, R->f,
                                                                     x->f, w->f, &p);
        cmp(c, "dx", dx, get(c, "dx"), pass + 1, pass);
        cmp(c, "dw", dw, get(c, "dw"), pass + 1, pass);
        if (b)
            cmp(c, "db", db, get(c, "db"), pass + 1, pass);
    }
    if (cache && be->cache_free)
        be->cache_free(cache);
}

static void run_conv2d(tcase *c, const acv_backend *be) { run_conv(c, be, false); }
static void run_convt2d(tcase *c, const acv_backend *be) { run_conv(c, be, true); }

static void run_linear(tcase *c, const acv_backend *be)
{
    arr *x = need(c, "x", 2), *w = need(c, "w", 2), *b = get(c, "b"), *R = need(c, "R", 2);
    if (!x || !w || !R)
        return;
    int M = (int)x->shape[0], IN = (int)x->shape[1], OUT = (int)w->shape[0];
    int64_t dims[2] = {M, OUT};
    if (w->shape[1] != IN || !same_shape(c, "output", R, 2, dims))
        return;
    float *out = zeros(c, R->n), *dx = zeros(c, x->n), *dw = zeros(c, w->n);
    float *db = b ? zeros(c, b->n) : NULL;
    const float *bf = b ? b->f : NULL;
    void *cache = NULL;
    if (be)
        be->linear_forward(&cache, out, x->f, w->f, bf, M, IN, OUT);
    else
        acv_ref_linear_forward(out, x->f, w->f, bf, M, IN, OUT);
    cmp(c, "out", out, get(c, "out"), 1, false);
    for (int pass = 0; pass < 2; pass++) {
        if (be)
            be->linear_backward(&cache, dx, dw, db, R->f, x->f, w->f, M, IN, OUT);
        else
            acv_ref_linear_backward(dx, dw, db, R->f, x->f, w->f, M, IN, OUT);
        cmp(c, "dx", dx, get(c, "dx"), pass + 1, pass);
        cmp(c, "dw", dw, get(c, "dw"), pass + 1, pass);
        if (b)
            cmp(c, "db", db, get(c, "db"), pass + 1, pass);
    }
    if (cache && be->cache_free)
        be->cache_free(cache);
}

static void run_batchnorm(tcase *c, const acv_backend *be)
{
    arr *x = need(c, "x", 4), *g = get(c, "gamma"), *bt = get(c, "beta"), *R = need(c, "R", 4);
    arr *rm0 = need(c, "running_mean", 1), *rv0 = need(c, "running_var", 1);
    if (!x || !R || !rm0 || !rv0)
        return;
    int N = (int)x->shape[0], C = (int)x->shape[1], HW = (int)(x->shape[2] * x->shape[3]);
    bool training = attr_int(c, "training", -1);
    float eps = (float)attr_num(c, "eps"), mom = (float)attr_num(c, "momentum");
    if (c->failed)
        return;
    float *out = zeros(c, x->n), *mean = zeros(c, C), *rstd = zeros(c, C);
    float *rm = copy_f(c, rm0), *rv = copy_f(c, rv0);
    float *dx = zeros(c, x->n), *dg = g ? zeros(c, C) : NULL, *db = bt ? zeros(c, C) : NULL;
    const float *gf = g ? g->f : NULL, *bf = bt ? bt->f : NULL;
    void *cache = NULL;
    if (be)
        be->batchnorm_forward(&cache, out, mean, rstd, x->f, gf, bf, rm, rv, N, C, HW, eps, mom,
                              training);
    else
        acv_ref_batchnorm_forward(out, mean, rstd, x->f, gf, bf, rm, rv, N, C, HW, eps, mom,
                                  training);
    cmp(c, "out", out, get(c, "out"), 1, false);
    cmp(c, "run_mean", rm, get(c, "running_mean_out"), 1, false);
    cmp(c, "run_var", rv, get(c, "running_var_out"), 1, false);
    if (training) {
        cmp(c, "save_mean", mean, get(c, "save_mean"), 1, false);
        cmp(c, "save_rstd", rstd, get(c, "save_rstd"), 1, false);
    }
    for (int pass = 0; pass < 2; pass++) {
        if (be)
            be->batchnorm_backward(&cache, dx, dg, db, R->f, x->f, gf, mean, rstd, rv, N, C, HW,
                                   eps, training);
        else
            acv_ref_batchnorm_backward(dx, dg, db, R->f, x->f, gf, mean, rstd, rv, N, C, HW, eps,
                                       training);
        cmp(c, "dx", dx, get(c, "dx"), pass + 1, pass);
        if (g)
            cmp(c, "dgamma", dg, get(c, "dgamma"), pass + 1, pass);
        if (bt)
            cmp(c, "dbeta", db, get(c, "dbeta"), pass + 1, pass);
    }
    if (cache && be->cache_free)
        be->cache_free(cache);
}

static const char *const ACT_NAMES[ACV_ACT_COUNT] = {
    [ACV_ACT_RELU] = "relu",       [ACV_ACT_RELU6] = "relu6",
    [ACV_ACT_LEAKY_RELU] = "leaky_relu", [ACV_ACT_SILU] = "silu",
    [ACV_ACT_SIGMOID] = "sigmoid", [ACV_ACT_HARDSWISH] = "hardswish",
    [ACV_ACT_HARDSIGMOID] = "hardsigmoid", [ACV_ACT_TANH] = "tanh",
    [ACV_ACT_GELU] = "gelu",
};

static void run_act(tcase *c, const acv_backend *be)
{
    arr *x = need(c, "x", -1), *R = need(c, "R", -1);
    const char *kind = json_string_value(json_object_get(c->attrs, "kind"));
    float alpha = (float)attr_num(c, "alpha");
    if (!x || !R || c->failed)
        return;
    int k = 0;
    while (k < ACV_ACT_COUNT && (!kind || strcmp(ACT_NAMES[k], kind)))
        k++;
    if (k == ACV_ACT_COUNT) {
        problem(c, "unknown activation '%s'", kind ? kind : "(none)");
        return;
    }
    float *out = zeros(c, x->n), *dx = zeros(c, x->n);
    acv_ref_act_forward(out, x->f, x->n, (acv_act)k, alpha);
    cmp(c, "out", out, get(c, "out"), 1, false);
    for (int pass = 0; pass < 2; pass++) {
        acv_ref_act_backward(dx, R->f, x->f, out, x->n, (acv_act)k, alpha);
        cmp(c, "dx", dx, get(c, "dx"), pass + 1, pass);
    }
}

/* Pool parameters from the attributes, with PyTorch's output size rule (ceil mode drops a
 * last window that would start in the right padding). */
static bool pool_params(tcase *c, acv_pool_params *p, arr **x, arr **R)
{
    *x = need(c, "x", 4);
    *R = need(c, "R", 4);
    if (!*x || !*R)
        return false;
    memset(p, 0, sizeof *p);
    p->N = (int)(*x)->shape[0], p->C = (int)(*x)->shape[1];
    p->H = (int)(*x)->shape[2], p->W = (int)(*x)->shape[3];
    p->KH = attr_int(c, "kernel", 0), p->KW = attr_int(c, "kernel", 1);
    p->stride_h = attr_int(c, "stride", 0), p->stride_w = attr_int(c, "stride", 1);
    p->pad_t = attr_int(c, "pad", 0), p->pad_l = attr_int(c, "pad", 1);
    p->pad_b = attr_int(c, "pad", 2), p->pad_r = attr_int(c, "pad", 3);
    p->dil_h = attr_int(c, "dil", 0), p->dil_w = attr_int(c, "dil", 1);
    p->ceil_mode = attr_int(c, "ceil_mode", -1);
    p->count_include_pad = attr_int(c, "count_include_pad", -1);
    if (c->failed)
        return false;
    int sizes[2][5] = {{p->H, p->pad_t, p->pad_b, p->dil_h * (p->KH - 1) + 1, p->stride_h},
                       {p->W, p->pad_l, p->pad_r, p->dil_w * (p->KW - 1) + 1, p->stride_w}};
    int o[2];
    for (int i = 0; i < 2; i++) {
        int in = sizes[i][0], lo = sizes[i][1], hi = sizes[i][2], eff = sizes[i][3];
        int s = sizes[i][4], num = in + lo + hi - eff;
        o[i] = (p->ceil_mode ? (num + s - 1) / s : num / s) + 1;
        if (p->ceil_mode && (o[i] - 1) * s >= in + lo)
            o[i]--;
    }
    p->OH = o[0], p->OW = o[1];
    int64_t dims[4] = {p->N, p->C, p->OH, p->OW};
    return same_shape(c, "output", *R, 4, dims);
}

static void run_maxpool(tcase *c, const acv_backend *be)
{
    acv_pool_params p;
    arr *x, *R;
    if (!pool_params(c, &p, &x, &R))
        return;
    float *out = zeros(c, R->n), *dx = zeros(c, x->n);
    int32_t *argmax = talloc(c, (size_t)R->n, sizeof(int32_t));
    void *cache = NULL;
    if (be)
        be->maxpool_forward(&cache, out, argmax, x->f, &p);
    else
        acv_ref_maxpool_forward(out, argmax, x->f, &p);
    cmp(c, "out", out, get(c, "out"), 1, false);
    arr *ref_idx = get(c, "argmax");
    if (!be && ref_idx) {  /* the backend may keep its own workspace instead of argmax */
        int64_t bad = 0;
        for (int64_t i = 0; i < ref_idx->n; i++)
            bad += argmax[i] != (int32_t)ref_idx->d[i];
        say(c, bad ? " [argmax: %lld of %lld differ]" : " argmax ok", (long long)bad,
            (long long)ref_idx->n);
        c->failed |= bad != 0;
    }
    for (int pass = 0; pass < 2; pass++) {
        if (be)
            be->maxpool_backward(&cache, dx, R->f, argmax, &p);
        else
            acv_ref_maxpool_backward(dx, R->f, argmax, &p);
        cmp(c, "dx", dx, get(c, "dx"), pass + 1, pass);
    }
    if (cache && be->cache_free)
        be->cache_free(cache);
}

static void run_avgpool(tcase *c, const acv_backend *be)
{
    acv_pool_params p;
    arr *x, *R;
    if (!pool_params(c, &p, &x, &R))
        return;
    float *out = zeros(c, R->n), *dx = zeros(c, x->n);
    acv_ref_avgpool_forward(out, x->f, &p);
    cmp(c, "out", out, get(c, "out"), 1, false);
    for (int pass = 0; pass < 2; pass++) {
        acv_ref_avgpool_backward(dx, R->f, &p);
        cmp(c, "dx", dx, get(c, "dx"), pass + 1, pass);
    }
}

static void run_gap(tcase *c, const acv_backend *be)
{
    arr *x = need(c, "x", 4), *R = need(c, "R", 2);
    if (!x || !R)
        return;
    int N = (int)x->shape[0], C = (int)x->shape[1], HW = (int)(x->shape[2] * x->shape[3]);
    int64_t dims[2] = {N, C};
    if (!same_shape(c, "output", R, 2, dims))
        return;
    float *out = zeros(c, R->n), *dx = zeros(c, x->n);
    acv_ref_gap_forward(out, x->f, N, C, HW);
    cmp(c, "out", out, get(c, "out"), 1, false);
    for (int pass = 0; pass < 2; pass++) {
        acv_ref_gap_backward(dx, R->f, N, C, HW);
        cmp(c, "dx", dx, get(c, "dx"), pass + 1, pass);
    }
}

static void run_resize(tcase *c, const acv_backend *be)
{
    arr *x = need(c, "x", 4), *R = need(c, "R", 4);
    const char *mode = json_string_value(json_object_get(c->attrs, "mode"));
    bool ac = attr_int(c, "align_corners", -1);
    if (!x || !R || c->failed)
        return;
    bool nearest = mode && !strcmp(mode, "nearest");
    if (!nearest && !(mode && !strcmp(mode, "bilinear"))) {
        problem(c, "unknown resize mode '%s'", mode ? mode : "(none)");
        return;
    }
    int N = (int)x->shape[0], C = (int)x->shape[1], H = (int)x->shape[2], W = (int)x->shape[3];
    int OH = (int)R->shape[2], OW = (int)R->shape[3];
    float *out = zeros(c, R->n), *dx = zeros(c, x->n);
    if (nearest)
        acv_ref_upsample_nearest_forward(out, x->f, N, C, H, W, OH, OW);
    else
        acv_ref_upsample_bilinear_forward(out, x->f, N, C, H, W, OH, OW, ac);
    cmp(c, "out", out, get(c, "out"), 1, false);
    for (int pass = 0; pass < 2; pass++) {
        if (nearest)
            acv_ref_upsample_nearest_backward(dx, R->f, N, C, H, W, OH, OW);
        else
            acv_ref_upsample_bilinear_backward(dx, R->f, N, C, H, W, OH, OW, ac);
        cmp(c, "dx", dx, get(c, "dx"), pass + 1, pass);
    }
}

/* Right-aligns a shape into ACV_BCAST_DIMS dims. */
static bool bcast_dims(tcase *c, const arr *a, int64_t *dims)
{
    if (a->ndim > ACV_BCAST_DIMS) {
        problem(c, "rank %d exceeds ACV_BCAST_DIMS", a->ndim);
        return false;
    }
    int lead = ACV_BCAST_DIMS - a->ndim;
    for (int i = 0; i < ACV_BCAST_DIMS; i++)
        dims[i] = i < lead ? 1 : a->shape[i - lead];
    return true;
}

static void run_binary(tcase *c, const acv_backend *be)
{
    static const char *const ops[] = {"add", "sub", "mul", "div"};
    static const acv_binop codes[] = {ACV_BIN_ADD, ACV_BIN_SUB, ACV_BIN_MUL, ACV_BIN_DIV};
    arr *a = need(c, "a", -1), *b = need(c, "b", -1), *R = need(c, "R", -1);
    const char *opname = json_string_value(json_object_get(c->attrs, "op"));
    if (!a || !b || !R)
        return;
    int k = 0;
    while (k < 4 && (!opname || strcmp(ops[k], opname)))
        k++;
    if (k == 4) {
        problem(c, "unknown binary op '%s'", opname ? opname : "(none)");
        return;
    }
    acv_bcast s;
    if (!bcast_dims(c, a, s.a) || !bcast_dims(c, b, s.b) || !bcast_dims(c, R, s.out))
        return;
    float *out = zeros(c, R->n), *da = zeros(c, a->n), *db = zeros(c, b->n);
    acv_ref_binary_forward(out, a->f, b->f, &s, codes[k]);
    cmp(c, "out", out, get(c, "out"), 1, false);
    for (int pass = 0; pass < 2; pass++) {
        acv_ref_binary_backward(da, db, R->f, a->f, b->f, &s, codes[k]);
        cmp(c, "da", da, get(c, "da"), pass + 1, pass);
        cmp(c, "db", db, get(c, "db"), pass + 1, pass);
    }
}

static void run_concat(tcase *c, const acv_backend *be)
{
    int n = attr_int(c, "n", -1), axis = attr_int(c, "axis", -1);
    arr *R = need(c, "R", -1);
    if (!R || c->failed || n < 1 || n > 8 || axis < 0 || axis >= R->ndim) {
        if (!c->failed)
            problem(c, "bad concat attributes");
        return;
    }
    static const char *const xs[] = {"x0", "x1", "x2", "x3", "x4", "x5", "x6", "x7"};
    static const char *const dxs[] = {"dx0", "dx1", "dx2", "dx3", "dx4", "dx5", "dx6", "dx7"};
    const float *ins[8];
    float *dins[8];
    int sizes[8];
    arr *in[8];
    for (int i = 0; i < n; i++) {
        if (!(in[i] = need(c, xs[i], R->ndim)))
            return;
        ins[i] = in[i]->f;
        dins[i] = zeros(c, in[i]->n);
        sizes[i] = (int)in[i]->shape[axis];
    }
    int64_t outer = prod(R, 0, axis), inner = prod(R, axis + 1, R->ndim);
    float *out = zeros(c, R->n);
    acv_ref_concat_forward(out, ins, sizes, n, outer, inner);
    cmp(c, "out", out, get(c, "out"), 1, false);
    for (int pass = 0; pass < 2; pass++) {
        acv_ref_concat_backward(dins, R->f, sizes, n, outer, inner);
        for (int i = 0; i < n; i++)
            cmp(c, dxs[i], dins[i], get(c, dxs[i]), pass + 1, pass);
    }
}

static void run_slice(tcase *c, const acv_backend *be)
{
    arr *x = need(c, "x", -1), *R = need(c, "R", -1);
    int axis = attr_int(c, "axis", -1), start = attr_int(c, "start", -1);
    int len = attr_int(c, "len", -1), step = attr_int(c, "step", -1);
    if (!x || !R || c->failed)
        return;
    if (axis < 0 || axis >= x->ndim) {
        problem(c, "bad slice axis %d", axis);
        return;
    }
    int64_t outer = prod(x, 0, axis), inner = prod(x, axis + 1, x->ndim);
    float *out = zeros(c, R->n), *dx = zeros(c, x->n);
    acv_ref_slice_forward(out, x->f, outer, x->shape[axis], inner, start, len, step);
    cmp(c, "out", out, get(c, "out"), 1, false);
    for (int pass = 0; pass < 2; pass++) {
        acv_ref_slice_backward(dx, R->f, outer, x->shape[axis], inner, start, len, step);
        cmp(c, "dx", dx, get(c, "dx"), pass + 1, pass);
    }
}

static void run_softmax(tcase *c, const acv_backend *be)
{
    arr *x = need(c, "x", -1), *R = need(c, "R", -1);
    int axis = attr_int(c, "axis", -1);
    bool lg = attr_int(c, "log", -1);
    if (!x || !R || c->failed)
        return;
    int64_t outer = prod(x, 0, axis), n = x->shape[axis], inner = prod(x, axis + 1, x->ndim);
    float *out = zeros(c, x->n), *dx = zeros(c, x->n);
    acv_ref_softmax_forward(out, x->f, outer, n, inner, lg);
    cmp(c, "out", out, get(c, "out"), 1, false);
    for (int pass = 0; pass < 2; pass++) {
        acv_ref_softmax_backward(dx, R->f, out, outer, n, inner, lg);
        cmp(c, "dx", dx, get(c, "dx"), pass + 1, pass);
    }
}

static void run_layernorm(tcase *c, const acv_backend *be)
{
    arr *x = need(c, "x", -1), *ga = need(c, "gamma", -1), *bt = need(c, "beta", -1), *R = need(c, "R", -1);
    int axis = attr_int(c, "axis", -1);
    float eps = (float)attr_num(c, "eps");
    if (!x || !ga || !bt || !R || c->failed)
        return;
    int64_t outer = prod(x, 0, axis), n = x->shape[axis], inner = prod(x, axis + 1, x->ndim);
    float *out = zeros(c, x->n), *dx = zeros(c, x->n), *dg = zeros(c, n), *db = zeros(c, n);
    acv_ref_layernorm_forward(out, x->f, ga->f, bt->f, outer, n, inner, eps);
    cmp(c, "out", out, get(c, "out"), 1, false);
    for (int pass = 0; pass < 2; pass++) {
        acv_ref_layernorm_backward(dx, dg, db, R->f, x->f, ga->f, outer, n, inner, eps);
        cmp(c, "dx", dx, get(c, "dx"), pass + 1, pass);
        cmp(c, "dgamma", dg, get(c, "dgamma"), pass + 1, pass);
        cmp(c, "dbeta", db, get(c, "dbeta"), pass + 1, pass);
    }
}

/* Scalar losses: the forward's value, then backward with scale 1 on zeroed gradients and
 * once more with scale 0.5 on the same buffer (expecting 1.5 times the reference). */
static void run_loss(tcase *c, const acv_backend *be)
{
    arr *x = need(c, "x", -1), *t = need(c, "target", -1), *ref = need(c, "out", -1);
    if (!x || !t || !ref)
        return;
    if (ref->n != 1) {
        problem(c, "loss reference is not a scalar");
        return;
    }
    enum { CE, CE_SOFT, BCE, FOCAL } kind = !strcmp(c->op, "cross_entropy") ? CE
                                           : !strcmp(c->op, "cross_entropy_soft") ? CE_SOFT
                                           : !strcmp(c->op, "bce_logits")         ? BCE
                                                                                  : FOCAL;
    int N = x->ndim == 2 ? (int)x->shape[0] : 0, K = x->ndim == 2 ? (int)x->shape[1] : 0;
    if ((kind == CE && (x->ndim != 2 || t->n != N)) ||
        (kind != CE && t->n != x->n) || (kind == CE_SOFT && x->ndim != 2)) {
        problem(c, "logits/targets shapes do not fit %s", c->op);
        return;
    }
    arr *wt = get(c, "weight");
    const float *wf = wt ? wt->f : NULL;
    float ls = kind == CE ? (float)attr_num(c, "label_smoothing") : 0;
    float alpha = kind == FOCAL ? (float)attr_num(c, "alpha") : 0;
    float gamma = kind == FOCAL ? (float)attr_num(c, "gamma") : 0;
    float loss;
    switch (kind) {
    case CE: loss = acv_ref_cross_entropy_forward(x->f, t->f, wf, N, K, ls); break;
    case CE_SOFT: loss = acv_ref_cross_entropy_soft_forward(x->f, t->f, N, K); break;
    case BCE: loss = acv_ref_bce_logits_forward(x->f, t->f, x->n); break;
    default: loss = acv_ref_focal_forward(x->f, t->f, x->n, alpha, gamma); break;
    }
    cmp(c, "loss", &loss, ref, 1, false);
    float *dx = zeros(c, x->n);
    for (int pass = 0; pass < 2; pass++) {
        float scale = pass ? 0.5f : 1.0f;
        switch (kind) {
        case CE:
            acv_ref_cross_entropy_backward(dx, x->f, t->f, wf, N, K, ls, scale);
            break;
        case CE_SOFT: acv_ref_cross_entropy_soft_backward(dx, x->f, t->f, N, K, scale); break;
        case BCE: acv_ref_bce_logits_backward(dx, x->f, t->f, x->n, scale); break;
        default: acv_ref_focal_backward(dx, x->f, t->f, x->n, alpha, gamma, scale); break;
        }
        cmp(c, "dx", dx, get(c, "dx"), pass ? 1.5 : 1.0, pass);
    }
}

/* ---- driving the cases ---------------------------------------------------------------- */

typedef void (*runner)(tcase *c, const acv_backend *be);

typedef struct op_entry {
    const char *op;
    runner run;
    /* offsetof the CPU backend's forward and backward slots; 0 when the op has none */
    size_t fwd, bwd;
} op_entry;

static const op_entry OPS[] = {
    {"conv2d", run_conv2d, offsetof(acv_backend, conv2d_forward),
     offsetof(acv_backend, conv2d_backward)},
    {"convt2d", run_convt2d, offsetof(acv_backend, convt2d_forward),
     offsetof(acv_backend, convt2d_backward)},
    {"linear", run_linear, offsetof(acv_backend, linear_forward),
     offsetof(acv_backend, linear_backward)},
    {"batchnorm", run_batchnorm, offsetof(acv_backend, batchnorm_forward),
     offsetof(acv_backend, batchnorm_backward)},
    {"maxpool", run_maxpool, offsetof(acv_backend, maxpool_forward),
     offsetof(acv_backend, maxpool_backward)},
    {"act", run_act, 0, 0},
    {"avgpool", run_avgpool, 0, 0},
    {"gap", run_gap, 0, 0},
    {"resize", run_resize, 0, 0},
    {"binary", run_binary, 0, 0},
    {"concat", run_concat, 0, 0},
    {"slice", run_slice, 0, 0},
    {"softmax", run_softmax, 0, 0},
    {"layernorm", run_layernorm, 0, 0},
    {"cross_entropy", run_loss, 0, 0},
    {"cross_entropy_soft", run_loss, 0, 0},
    {"bce_logits", run_loss, 0, 0},
    {"focal", run_loss, 0, 0},
};
#define NOPS (sizeof OPS / sizeof OPS[0])

static const op_entry *find_op(const char *op)
{
    for (size_t i = 0; op && i < NOPS; i++)
        if (!strcmp(OPS[i].op, op))
            return &OPS[i];
    return NULL;
}

/* Whether the CPU backend fills both slots of the op (function pointers at the offsets). */
static bool backend_has(const acv_backend *be, const op_entry *e)
{
    if (!be || !e->fwd)
        return false;
    void (*fwd)(void), (*bwd)(void);
    memcpy(&fwd, (const char *)be + e->fwd, sizeof fwd);
    memcpy(&bwd, (const char *)be + e->bwd, sizeof bwd);
    return fwd && bwd;
}

/* Runs one implementation over the case and prints its line; returns whether it passed. */
static bool run_impl(tcase *c, const op_entry *e, const acv_backend *be)
{
    c->failed = false;
    c->worst = c->acc = 0;
    c->len = 0;
    c->impl = be ? be->name : "ref";
    say(c, "  %-34s %-4s", c->name, c->impl);
    e->run(c, be);
    say(c, " | acc %.1e | max %.1e%s", c->acc, c->worst, c->failed ? "  FAIL" : "");
    printf("%s\n", c->line);
    if (c->worst > g_worst) {
        g_worst = c->worst;
        snprintf(g_worst_at, sizeof g_worst_at, "%s (%s)", c->name, c->impl);
    }
    return !c->failed;
}

static void case_free(tcase *c)
{
    for (int i = 0; i < c->narrays; i++)
        arr_free(&c->arrays[i]);
    for (int i = 0; i < c->nallocs; i++)
        free(c->allocs[i]);
    free(c->allocs);
    free(c->counts);
}

/* Runs every case whose op is listed (NULL-terminated) on the reference kernels and on the
 * CPU backend where it has the slots; asserts at least one case ran and none failed. */
static void run_ops(const char *const *ops)
{
    assert_non_null(g_cases);
    const acv_backend *cpu = acv_backend_cpu();
    int ran = 0, failed = 0;
    size_t i;
    json_t *jc;
    json_array_foreach(g_cases, i, jc) {
        const char *op = json_string_value(json_object_get(jc, "op"));
        bool mine = false;
        for (const char *const *o = ops; *o && !mine; o++)
            mine = op && !strcmp(*o, op);
        if (!mine)
            continue;
        const op_entry *e = find_op(op);
        assert_non_null(e);
        tcase c;
        memset(&c, 0, sizeof c);
        c.name = json_string_value(json_object_get(jc, "name"));
        c.op = op;
        c.attrs = json_object_get(jc, "attrs");
        c.files = json_object_get(jc, "arrays");
        assert_non_null(c.name);
        failed += !run_impl(&c, e, NULL);
        ran++;
        if (backend_has(cpu, e)) {
            failed += !run_impl(&c, e, cpu);
            ran++;
        }
        case_free(&c);
    }
    printf("  -> %d runs, %d failed; worst so far %.2e at %s\n", ran, failed, g_worst,
           g_worst_at);
    if (ran == 0)
        fail_msg("no case for these ops in cases.json");
    if (failed)
        fail_msg("%d of %d runs failed (see the FAIL lines above)", failed, ran);
}

static int group_setup(void **state)
{
    if (access(REF_SCRIPT, R_OK) != 0) {
        fprintf(stderr, "test_torch_ref: %s not found; run the test from the repository root\n",
                REF_SCRIPT);
        return -1;
    }
    strcpy(g_dir, "/tmp/acv_torch_ref_XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("test_torch_ref: mkdtemp");
        return -1;
    }
    char cmd[256];
    snprintf(cmd, sizeof cmd, PYTHON " " REF_SCRIPT " %s", g_dir);
    fflush(stdout);
    int st = system(cmd);
    if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr,
                "test_torch_ref: '%s' failed (status %d); it needs Debian's python3-torch "
                "and python3-numpy (make deps)\n",
                cmd, st);
        return -1;
    }
    char *path = acv_path_join(g_dir, "cases.json");
    json_error_t jerr;
    json_t *doc = path ? json_load_file(path, 0, &jerr) : NULL;
    if (!doc) {
        fprintf(stderr, "test_torch_ref: %s:%d: %s\n", path ? path : "cases.json", jerr.line,
                jerr.text);
        free(path);
        return -1;
    }
    free(path);
    g_cases = json_incref(json_object_get(doc, "cases"));
    json_decref(doc);
    if (!json_is_array(g_cases)) {
        fprintf(stderr, "test_torch_ref: cases.json has no \"cases\" array\n");
        return -1;
    }
    const acv_backend *cpu = acv_backend_cpu();
    printf("torch reference: %zu cases in %s; CPU backend '%s'; tolerance %.0e\n",
           json_array_size(g_cases), g_dir, cpu ? cpu->name : "(none)", TOL);
    return 0;
}

static int group_teardown(void **state)
{
    json_decref(g_cases);
    g_cases = NULL;
    if (g_dir[0] && acv_remove_tree(g_dir) < 0)
        fprintf(stderr, "test_torch_ref: %s\n", acv_errmsg());
    if (g_worst_at[0])
        printf("torch reference: worst relative error %.2e at %s\n", g_worst, g_worst_at);
    return 0;
}

/* Every case the script writes is one this test knows how to run (a new op in the script
 * must not be skipped silently), and every op here has cases. */
static void test_every_case_known(void **state)
{
    size_t i;
    json_t *jc;
    int per_op[NOPS] = {0};
    json_array_foreach(g_cases, i, jc) {
        const char *op = json_string_value(json_object_get(jc, "op"));
        const op_entry *e = find_op(op);
        if (!e)
            fail_msg("case %zu has unknown op '%s'", i, op ? op : "(none)");
        per_op[e - OPS]++;
    }
    for (size_t k = 0; k < NOPS; k++)
        if (per_op[k] == 0)
            fail_msg("no case for op '%s'", OPS[k].op);
}

static void test_conv(void **state) { run_ops((const char *[]){"conv2d", "convt2d", NULL}); }
static void test_batchnorm(void **state) { run_ops((const char *[]){"batchnorm", NULL}); }
static void test_pool(void **state)
{
    run_ops((const char *[]){"maxpool", "avgpool", "gap", NULL});
}
static void test_linear(void **state) { run_ops((const char *[]){"linear", NULL}); }
static void test_act(void **state) { run_ops((const char *[]){"act", NULL}); }
static void test_resize(void **state) { run_ops((const char *[]){"resize", NULL}); }
static void test_shape_ops(void **state)
{
    run_ops((const char *[]){"binary", "concat", "slice", NULL});
}
static void test_softmax(void **state) { run_ops((const char *[]){"softmax", NULL}); }
static void test_layernorm(void **state) { run_ops((const char *[]){"layernorm", NULL}); }
static void test_losses(void **state)
{
    run_ops((const char *[]){"cross_entropy", "cross_entropy_soft", "bce_logits", "focal",
                             NULL});
}

/* The .npy reader itself, on files written here (so a reader bug cannot hide behind
 * matching bugs in the script). */
static void test_npy_reader(void **state)
{
    char *path = acv_path_join(g_dir, "selftest.npy");
    assert_non_null(path);
    /* version 1.0, '<f8', shape (2, 3) */
    char hdr[128];
    int hl = snprintf(hdr, sizeof hdr, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }");
    int total = 10 + hl;
    int padded = (total + 1 + 63) / 64 * 64;
    uint8_t buf[256 + 48];
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    int hlen = padded - 10;
    buf[8] = (uint8_t)(hlen & 0xff), buf[9] = (uint8_t)(hlen >> 8);
    memcpy(buf + 10, hdr, (size_t)hl);
    memset(buf + 10 + hl, ' ', (size_t)(hlen - hl - 1));
    buf[padded - 1] = '\n';
    double vals[6] = {1.5, -2.25, 3e10, 0, -1e-7, 42};
    memcpy(buf + padded, vals, sizeof vals);
    assert_int_equal(acv_file_write_atomic(path, buf, (size_t)padded + sizeof vals), 0);
    arr a;
    assert_int_equal(npy_read(path, &a), 0);
    assert_int_equal(a.ndim, 2);
    assert_int_equal(a.shape[0], 2);
    assert_int_equal(a.shape[1], 3);
    assert_int_equal(a.n, 6);
    for (int i = 0; i < 6; i++)
        assert_true(a.d[i] == vals[i]);
    arr_free(&a);
    /* truncated data is a format error, not a crash */
    assert_int_equal(acv_file_write_atomic(path, buf, (size_t)padded + 20), 0);
    assert_int_equal(npy_read(path, &a), ACV_EFORMAT);
    /* a wrong magic too */
    buf[1] = 'X';
    assert_int_equal(acv_file_write_atomic(path, buf, (size_t)padded + sizeof vals), 0);
    assert_int_equal(npy_read(path, &a), ACV_EFORMAT);
    free(path);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_npy_reader),
        cmocka_unit_test(test_every_case_known),
        cmocka_unit_test(test_conv),
        cmocka_unit_test(test_batchnorm),
        cmocka_unit_test(test_pool),
        cmocka_unit_test(test_linear),
        cmocka_unit_test(test_act),
        cmocka_unit_test(test_resize),
        cmocka_unit_test(test_shape_ops),
        cmocka_unit_test(test_softmax),
        cmocka_unit_test(test_layernorm),
        cmocka_unit_test(test_losses),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
