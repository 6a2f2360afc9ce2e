/* Constant folding at import: the shape arithmetic exporters emit (Shape, Gather, Cast,
 * Constant, ConstantOfShape, Unsqueeze, Squeeze, Concat, Slice, Reshape, Flatten,
 * Transpose, arithmetic) computed once, since every shape is static once the input size
 * is fixed. Values are int64 or float tensors (acv__otensor). */
#include "onnx/import_internal.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "autocv/error.h"

#define FOLD_MAX ((int64_t)1 << 26) /* elements of a folded constant */

static int talloc(acv__ictx *c, acv__otensor *t, bool is_int, const acv_shape *s)
{
    memset(t, 0, sizeof *t);
    int64_t n = 1;
    for (int k = 0; k < s->ndim; k++) {
        if (s->d[k] < 0 || (s->d[k] && n > FOLD_MAX / s->d[k]))
            return acv__nerr(c, ACV_ERANGE, "constant of absurd size (dim %d is %lld)", k, (long long)s->d[k]);
        n *= s->d[k];
    }
    t->is_int = is_int;
    t->shape = *s;
    t->n = n;
    if (is_int) t->i = calloc((size_t)(n ? n : 1), sizeof(int64_t));
    else t->f = calloc((size_t)(n ? n : 1), sizeof(float));
    if (!t->i && !t->f) return acv_error(ACV_ENOMEM, "out of memory");
    return 0;
}

static void put(acv__otensor *d, int64_t di, const acv__otensor *s, int64_t si)
{
    if (d->is_int) d->i[di] = s->is_int ? s->i[si] : (int64_t)s->f[si];
    else d->f[di] = s->is_int ? (float)s->i[si] : s->f[si];
}

static bool all_const(acv__ictx *c)
{
    bool any = false;
    for (size_t k = 0; k < c->node->n_input; k++) {
        if (!c->node->input[k] || !*c->node->input[k]) continue;
        acv__oval *v = acv__in(c, k);
        if (!v || v->kind != ACV__V_CONST) return false;
        any = true;
    }
    return any;
}

static int norm_axis(acv__ictx *c, int64_t ax, int ndim, int *out)
{
    *out = 0;
    if (ax < -ndim || ax >= ndim) return acv__nerr(c, ACV_EINVAL, "axis %lld out of range for %d dims", (long long)ax, ndim);
    *out = (int)(ax < 0 ? ax + ndim : ax);
    return 0;
}

/* Strides of a shape (row-major). */
static void strides(const acv_shape *s, int64_t *st)
{
    int64_t a = 1;
    for (int k = s->ndim - 1; k >= 0; k--) {
        st[k] = a;
        a *= s->d[k];
    }
}

/* Constant: value / value_float(s) / value_int(s). */
static int fold_constant(acv__ictx *c)
{
    int rc = acv__check_attrs(c, "value,value_float,value_floats,value_int,value_ints");
    if (rc) return rc;
    acv__otensor t;
    const Onnx__AttributeProto *a;
    if ((a = acv__attr(c, "value"))) {
        if (!a->t) return acv__nerr(c, ACV_EFORMAT, "attribute value holds no tensor");
        char what[300];
        snprintf(what, sizeof what, "%s: node '%s' (Constant)", c->path, c->node->name ? c->node->name : "");
        if ((rc = acv__onnx_tensor_decode(a->t, c->dir, what, &t))) return rc;
    } else if ((a = acv__attr(c, "value_float")) || (a = acv__attr(c, "value_int"))) {
        acv_shape s = {0, {0}};
        bool is_int = a->name[6] == 'i';
        if ((rc = talloc(c, &t, is_int, &s))) return rc;
        if (is_int) t.i[0] = a->i; else t.f[0] = a->f;
    } else if ((a = acv__attr(c, "value_floats")) || (a = acv__attr(c, "value_ints"))) {
        bool is_int = a->name[6] == 'i';
        acv_shape s = acv_shape_make(1, (int64_t)(is_int ? a->n_ints : a->n_floats), 0, 0, 0);
        if ((rc = talloc(c, &t, is_int, &s))) return rc;
        for (int64_t k = 0; k < t.n; k++)
            if (is_int) t.i[k] = a->ints[k]; else t.f[k] = a->floats[k];
    } else {
        return acv__nerr(c, ACV_EUNSUPPORTED, "only tensor, float and int constants are supported");
    }
    return acv__set_const(c, 0, &t);
}

/* Shape of any value (start/end of opset 15). */
static int fold_shape(acv__ictx *c)
{
    int rc = acv__check_attrs(c, "start,end");
    acv__oval *x = acv__in(c, 0);
    if (rc) return rc;
    if (!x) return acv__nerr(c, ACV_EFORMAT, "missing input");
    acv_shape s;
    if (x->kind == ACV__V_CONST) s = x->c.shape;
    else if (x->kind == ACV__V_NODE && x->nhwc) {
        const acv_shape *e = acv_graph_shape(c->g, x->id);
        s = acv_shape_make(4, e->d[0], e->d[2], e->d[3], e->d[1]);
    } else if (x->kind != ACV__V_PAD) {
        acv_id id = acv__node_of(c, x, false);
        if (id < 0) return id;
        s = *acv_graph_shape(c->g, id);
    } else {
        s = *acv_graph_shape(c->g, c->v[x->src].id);
        s.d[2] += x->pads[0] + x->pads[2];
        s.d[3] += x->pads[1] + x->pads[3];
    }
    int64_t st = acv__attr_i(c, "start", 0), en = acv__attr_i(c, "end", s.ndim);
    if (st < 0) st += s.ndim;
    if (en < 0) en += s.ndim;
    st = st < 0 ? 0 : st > s.ndim ? s.ndim : st;
    en = en < 0 ? 0 : en > s.ndim ? s.ndim : en;
    acv_shape os = acv_shape_make(1, en > st ? en - st : 0, 0, 0, 0);
    acv__otensor t;
    if ((rc = talloc(c, &t, true, &os))) return rc;
    for (int64_t k = st; k < en; k++) t.i[k - st] = s.d[k];
    return acv__set_const(c, 0, &t);
}

static int fold_cast(acv__ictx *c, acv__oval *x)
{
    int rc = acv__check_attrs(c, "to,saturate");
    if (rc) return rc;
    int to = (int)acv__attr_i(c, "to", 0);
    bool to_float = to == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT || to == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE ||
                    to == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16;
    bool to_int = to == ONNX__TENSOR_PROTO__DATA_TYPE__INT64 || to == ONNX__TENSOR_PROTO__DATA_TYPE__INT32 ||
                  to == ONNX__TENSOR_PROTO__DATA_TYPE__INT16 || to == ONNX__TENSOR_PROTO__DATA_TYPE__INT8 ||
                  to == ONNX__TENSOR_PROTO__DATA_TYPE__UINT8 || to == ONNX__TENSOR_PROTO__DATA_TYPE__BOOL;
    if (!to_float && !to_int) return acv__nerr(c, ACV_EUNSUPPORTED, "cast to %s is not supported", acv__onnx_dtype_name(to));
    acv__otensor t;
    if ((rc = talloc(c, &t, to_int, &x->c.shape))) return rc;
    for (int64_t k = 0; k < t.n; k++) {
        put(&t, k, &x->c, k);
        if (to == ONNX__TENSOR_PROTO__DATA_TYPE__BOOL) t.i[k] = t.i[k] != 0 || (!x->c.is_int && x->c.f[k] != 0);
    }
    return acv__set_const(c, 0, &t);
}

static int fold_constant_of_shape(acv__ictx *c, acv__oval *x)
{
    int rc = acv__check_attrs(c, "value");
    if (rc) return rc;
    int64_t d[ACV_MAX_DIMS];
    int n;
    if ((rc = acv__const_ints(c, x, "the shape", d, ACV_MAX_DIMS, &n))) return rc;
    acv_shape s = {n, {0}};
    for (int k = 0; k < n; k++) s.d[k] = d[k];
    acv__otensor val = {0};
    const Onnx__AttributeProto *a = acv__attr(c, "value");
    if (a && a->t) {
        if ((rc = acv__onnx_tensor_decode(a->t, c->dir, c->path, &val))) return rc;
        if (val.n != 1) {
            acv__otensor_free(&val);
            return acv__nerr(c, ACV_EFORMAT, "value must hold one element");
        }
    }
    acv__otensor t;
    rc = talloc(c, &t, a && a->t ? val.is_int : false, &s);
    for (int64_t k = 0; !rc && k < t.n; k++)
        if (a && a->t) put(&t, k, &val, 0);
    acv__otensor_free(&val);
    return rc ? rc : acv__set_const(c, 0, &t);
}

/* Gather along axis with constant indices (any rank). */
static int fold_gather(acv__ictx *c, acv__oval *x, acv__oval *ix)
{
    int rc = acv__check_attrs(c, "axis");
    if (rc) return rc;
    int ax = 0;
    if ((rc = norm_axis(c, acv__attr_i(c, "axis", 0), x->c.shape.ndim, &ax))) return rc;
    const acv_shape *xs = &x->c.shape, *is = &ix->c.shape;
    if (xs->ndim - 1 + is->ndim > ACV_MAX_DIMS) return acv__nerr(c, ACV_EUNSUPPORTED, "result has too many dims");
    acv_shape os = {0, {0}};
    for (int k = 0; k < ax; k++) os.d[os.ndim++] = xs->d[k];
    for (int k = 0; k < is->ndim; k++) os.d[os.ndim++] = is->d[k];
    for (int k = ax + 1; k < xs->ndim; k++) os.d[os.ndim++] = xs->d[k];
    int64_t outer = 1, inner = 1, dim = xs->d[ax];
    for (int k = 0; k < ax; k++) outer *= xs->d[k];
    for (int k = ax + 1; k < xs->ndim; k++) inner *= xs->d[k];
    acv__otensor t;
    if ((rc = talloc(c, &t, x->c.is_int, &os))) return rc;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < ix->c.n; j++) {
            int64_t id = ix->c.is_int ? ix->c.i[j] : (int64_t)ix->c.f[j];
            if (id < 0) id += dim;
            if (id < 0 || id >= dim) {
                acv__otensor_free(&t);
                return acv__nerr(c, ACV_EINVAL, "index %lld out of range for a dim of %lld", (long long)id, (long long)dim);
            }
            for (int64_t i = 0; i < inner; i++) put(&t, (o * ix->c.n + j) * inner + i, &x->c, (o * dim + id) * inner + i);
        }
    return acv__set_const(c, 0, &t);
}

/* Output shape of Unsqueeze / Squeeze on shape s with axes (n < 0: none given). */
int acv__squeeze_shape(acv__ictx *c, bool unsqueeze, const acv_shape *s, const int64_t *axes, int n,
                       bool keep_dim0, acv_shape *o)
{
    bool mark[2 * ACV_MAX_DIMS] = {0};
    if (unsqueeze) {
        int on = s->ndim + (n > 0 ? n : 0);
        if (n <= 0 || on > ACV_MAX_DIMS) return acv__nerr(c, ACV_EUNSUPPORTED, "unsqueeze to %d dims", on);
        for (int k = 0; k < n; k++) {
            int ax = 0;
            int rc = norm_axis(c, axes[k], on, &ax);
            if (rc) return rc;
            mark[ax] = true;
        }
        o->ndim = on;
        for (int k = 0, j = 0; k < on; k++) o->d[k] = mark[k] ? 1 : s->d[j++];
        return 0;
    }
    for (int k = 0; k < n; k++) {
        int ax = 0;
        int rc = norm_axis(c, axes[k], s->ndim, &ax);
        if (rc) return rc;
        if (s->d[ax] != 1) return acv__nerr(c, ACV_ESHAPE, "cannot squeeze dim %d of size %lld", ax, (long long)s->d[ax]);
        mark[ax] = true;
    }
    if (n < 0)
        for (int k = keep_dim0 ? 1 : 0; k < s->ndim; k++) mark[k] = s->d[k] == 1;
    o->ndim = 0;
    for (int k = 0; k < s->ndim; k++)
        if (!mark[k]) o->d[o->ndim++] = s->d[k];
    return 0;
}

/* The axes of Squeeze/Unsqueeze: attribute before opset 13, input 1 since. */
int acv__axes_arg(acv__ictx *c, size_t input, int64_t *axes, int *n)
{
    *n = -1;
    int rc = acv__attr_ints(c, "axes", axes, ACV_MAX_DIMS, n);
    if (rc || *n >= 0) return rc;
    acv__oval *a = acv__in(c, input);
    if (!a) return 0;
    return acv__const_ints(c, a, "axes", axes, ACV_MAX_DIMS, n);
}

/* ONNX Reshape's output shape from a spec (0 copies unless allowzero, -1 inferred). */
int acv__reshape_shape(acv__ictx *c, const acv_shape *in, const int64_t *spec, int n, bool allowzero, acv_shape *o)
{
    if (n < 0 || n > ACV_MAX_DIMS) return acv__nerr(c, ACV_EUNSUPPORTED, "reshape to %d dims", n);
    int64_t total = acv_shape_numel(in), known = 1;
    int infer = -1;
    o->ndim = n;
    for (int k = 0; k < n; k++) {
        int64_t d = spec[k];
        if (d == 0 && !allowzero) {
            if (k >= in->ndim) return acv__nerr(c, ACV_EINVAL, "reshape: 0 at dim %d beyond the input's rank", k);
            d = in->d[k];
        }
        if (d == -1) {
            if (infer >= 0) return acv__nerr(c, ACV_EINVAL, "reshape: two -1 dims");
            infer = k;
            continue;
        }
        if (d < 0) return acv__nerr(c, ACV_EINVAL, "reshape: dim %lld", (long long)d);
        o->d[k] = d;
        known *= d;
    }
    if (infer >= 0) {
        if (!known || total % known) return acv__nerr(c, ACV_ESHAPE, "reshape: cannot infer the -1 dim");
        o->d[infer] = total / known;
    } else if (known != total) {
        char a[96], b[96];
        return acv__nerr(c, ACV_ESHAPE, "cannot reshape %s to %s", acv_shape_str(in, a, sizeof a), acv_shape_str(o, b, sizeof b));
    }
    return 0;
}

static int fold_copy_shape(acv__ictx *c, acv__oval *x, const acv_shape *o)
{
    acv__otensor t;
    int rc = talloc(c, &t, x->c.is_int, o);
    if (rc) return rc;
    for (int64_t k = 0; k < t.n; k++) put(&t, k, &x->c, k);
    return acv__set_const(c, 0, &t);
}

static int fold_concat(acv__ictx *c)
{
    int rc = acv__check_attrs(c, "axis");
    if (rc) return rc;
    acv__oval *x0 = acv__in(c, 0);
    int ax = 0;
    if (!x0) return acv__nerr(c, ACV_EFORMAT, "missing input");
    if ((rc = norm_axis(c, acv__attr_i(c, "axis", 0), x0->c.shape.ndim, &ax))) return rc;
    acv_shape os = x0->c.shape;
    os.d[ax] = 0;
    bool is_int = true;
    for (size_t k = 0; k < c->node->n_input; k++) {
        acv__oval *x = acv__in(c, k);
        if (!x) continue;
        if (x->c.shape.ndim != os.ndim) return acv__nerr(c, ACV_ESHAPE, "inputs differ in rank");
        for (int d = 0; d < os.ndim; d++)
            if (d != ax && x->c.shape.d[d] != os.d[d]) return acv__nerr(c, ACV_ESHAPE, "inputs differ in dim %d", d);
        os.d[ax] += x->c.shape.d[ax];
        is_int &= x->c.is_int;
    }
    acv__otensor t;
    if ((rc = talloc(c, &t, is_int, &os))) return rc;
    int64_t outer = 1, inner = 1;
    for (int k = 0; k < ax; k++) outer *= os.d[k];
    for (int k = ax + 1; k < os.ndim; k++) inner *= os.d[k];
    int64_t off = 0;
    for (size_t k = 0; k < c->node->n_input; k++) {
        acv__oval *x = acv__in(c, k);
        if (!x) continue;
        int64_t len = x->c.shape.d[ax] * inner;
        for (int64_t o = 0; o < outer; o++)
            for (int64_t i = 0; i < len; i++) put(&t, o * os.d[ax] * inner + off + i, &x->c, o * len + i);
        off += len;
    }
    return acv__set_const(c, 0, &t);
}

/* Slice parameters of one axis, normalized as ONNX does (positive steps only). */
int acv__slice_range(acv__ictx *c, int64_t dim, int64_t st, int64_t en, int64_t step, int64_t *o_st, int64_t *o_len)
{
    if (step == 0) return acv__nerr(c, ACV_EINVAL, "slice step 0");
    if (st < 0) st += dim;
    if (en < 0) en += dim;
    if (step > 0) {
        st = st < 0 ? 0 : st > dim ? dim : st;
        en = en < 0 ? 0 : en > dim ? dim : en;
        *o_len = en > st ? (en - st + step - 1) / step : 0;
    } else { /* backwards: start in [0, dim-1], end in [-1, dim-1] */
        st = st < 0 ? 0 : st > dim - 1 ? dim - 1 : st;
        en = en < -1 ? -1 : en > dim - 1 ? dim - 1 : en;
        *o_len = st > en ? (st - en + (-step) - 1) / (-step) : 0;
    }
    *o_st = st;
    return 0;
}

/* Reads Slice's starts/ends/axes/steps (inputs 1-4); n = number of axes. */
int acv__slice_args(acv__ictx *c, int rank, int64_t *st, int64_t *en, int *axes, int64_t *steps, int *n)
{
    int ns, ne, na = -1, nst = -1, rc;
    int64_t ax64[ACV_MAX_DIMS];
    if ((rc = acv__check_attrs(c, ""))) return rc;
    if ((rc = acv__const_ints(c, acv__in(c, 1), "starts", st, ACV_MAX_DIMS, &ns))) return rc;
    if ((rc = acv__const_ints(c, acv__in(c, 2), "ends", en, ACV_MAX_DIMS, &ne))) return rc;
    if (acv__in(c, 3) && (rc = acv__const_ints(c, acv__in(c, 3), "axes", ax64, ACV_MAX_DIMS, &na))) return rc;
    if (acv__in(c, 4) && (rc = acv__const_ints(c, acv__in(c, 4), "steps", steps, ACV_MAX_DIMS, &nst))) return rc;
    if (ns != ne || (na >= 0 && na != ns) || (nst >= 0 && nst != ns))
        return acv__nerr(c, ACV_EINVAL, "starts, ends, axes and steps differ in length");
    for (int k = 0; k < ns; k++) {
        if ((rc = norm_axis(c, na >= 0 ? ax64[k] : k, rank, &axes[k]))) return rc;
        if (nst < 0) steps[k] = 1;
    }
    *n = ns;
    return 0;
}

static int fold_slice(acv__ictx *c, acv__oval *x)
{
    int64_t st[ACV_MAX_DIMS], en[ACV_MAX_DIMS], steps[ACV_MAX_DIMS];
    int axes[ACV_MAX_DIMS], n;
    const acv_shape *xs = &x->c.shape;
    int rc = acv__slice_args(c, xs->ndim, st, en, axes, steps, &n);
    if (rc) return rc;
    int64_t start[ACV_MAX_DIMS] = {0}, step[ACV_MAX_DIMS];
    acv_shape os = *xs;
    for (int k = 0; k < xs->ndim; k++) step[k] = 1;
    for (int k = 0; k < n; k++) {
        int a = axes[k];
        if ((rc = acv__slice_range(c, xs->d[a], st[k], en[k], steps[k], &start[a], &os.d[a]))) return rc;
        step[a] = steps[k];
    }
    acv__otensor t;
    if ((rc = talloc(c, &t, x->c.is_int, &os))) return rc;
    int64_t ist[ACV_MAX_DIMS];
    strides(xs, ist);
    for (int64_t o = 0; o < t.n; o++) {
        int64_t r = o, si = 0;
        for (int k = os.ndim - 1; k >= 0; k--) {
            int64_t idx = r % os.d[k];
            r /= os.d[k];
            si += (start[k] + idx * step[k]) * ist[k];
        }
        put(&t, o, &x->c, si);
    }
    return acv__set_const(c, 0, &t);
}

static int fold_transpose(acv__ictx *c, acv__oval *x)
{
    int64_t perm[ACV_MAX_DIMS];
    int n, rc = acv__check_attrs(c, "perm");
    if (rc || (rc = acv__attr_ints(c, "perm", perm, ACV_MAX_DIMS, &n))) return rc;
    const acv_shape *xs = &x->c.shape;
    if (n < 0) {
        n = xs->ndim;
        for (int k = 0; k < n; k++) perm[k] = n - 1 - k;
    }
    if (n != xs->ndim) return acv__nerr(c, ACV_EINVAL, "perm has %d entries for %d dims", n, xs->ndim);
    acv_shape os = {n, {0}};
    unsigned seen = 0; /* perm must be a permutation: each dim exactly once */
    for (int k = 0; k < n; k++) {
        if (perm[k] < 0 || perm[k] >= n) return acv__nerr(c, ACV_EINVAL, "perm entry %lld out of range", (long long)perm[k]);
        if (seen & (1u << perm[k]))
            return acv__nerr(c, ACV_EINVAL, "perm repeats dim %lld (it must name each dim once)", (long long)perm[k]);
        seen |= 1u << perm[k];
        os.d[k] = xs->d[perm[k]];
    }
    acv__otensor t;
    if ((rc = talloc(c, &t, x->c.is_int, &os))) return rc;
    int64_t ist[ACV_MAX_DIMS];
    strides(xs, ist);
    for (int64_t o = 0; o < t.n; o++) {
        int64_t r = o, si = 0;
        for (int k = n - 1; k >= 0; k--) {
            si += (r % os.d[k]) * ist[perm[k]];
            r /= os.d[k];
        }
        put(&t, o, &x->c, si);
    }
    return acv__set_const(c, 0, &t);
}

/* Broadcasting arithmetic of two constants. */
static int fold_binary(acv__ictx *c, acv__oval *a, acv__oval *b, char op)
{
    int rc = acv__check_attrs(c, "");
    if (rc) return rc;
    const acv_shape *as = &a->c.shape, *bs = &b->c.shape;
    int nd = as->ndim > bs->ndim ? as->ndim : bs->ndim;
    acv_shape os = {nd, {0}}, pa = {nd, {0}}, pb = {nd, {0}};
    for (int k = 0; k < nd; k++) {
        int ia = as->ndim - nd + k, ib = bs->ndim - nd + k;
        pa.d[k] = ia >= 0 ? as->d[ia] : 1;
        pb.d[k] = ib >= 0 ? bs->d[ib] : 1;
        if (pa.d[k] != pb.d[k] && pa.d[k] != 1 && pb.d[k] != 1) return acv__nerr(c, ACV_ESHAPE, "shapes do not broadcast");
        os.d[k] = pa.d[k] == 1 ? pb.d[k] : pa.d[k];
    }
    bool is_int = a->c.is_int && b->c.is_int;
    acv__otensor t;
    if ((rc = talloc(c, &t, is_int, &os))) return rc;
    int64_t sa[ACV_MAX_DIMS], sb[ACV_MAX_DIMS];
    strides(&pa, sa);
    strides(&pb, sb);
    for (int64_t o = 0; o < t.n; o++) {
        int64_t r = o, ia = 0, ib = 0;
        for (int k = nd - 1; k >= 0; k--) {
            int64_t idx = r % os.d[k];
            r /= os.d[k];
            if (pa.d[k] != 1) ia += idx * sa[k];
            if (pb.d[k] != 1) ib += idx * sb[k];
        }
        if (is_int) {
            /* int64 arithmetic is checked: an overflow (or INT64_MIN / -1, which traps) is
             * a malformed model, not a value to wrap */
            int64_t x = a->c.i[ia], y = b->c.i[ib], r = 0;
            bool ovf = false;
            if (op == '/' && y == 0) {
                acv__otensor_free(&t);
                return acv__nerr(c, ACV_EINVAL, "integer division by zero");
            }
            if (op == '+') ovf = __builtin_add_overflow(x, y, &r);
            else if (op == '-') ovf = __builtin_sub_overflow(x, y, &r);
            else if (op == '*') ovf = __builtin_mul_overflow(x, y, &r);
            else if (x == INT64_MIN && y == -1) ovf = true;
            else r = x / y;
            if (ovf) {
                acv__otensor_free(&t);
                return acv__nerr(c, ACV_ERANGE, "int64 overflow in %lld %c %lld", (long long)x, op, (long long)y);
            }
            t.i[o] = r;
        } else {
            float x = a->c.is_int ? (float)a->c.i[ia] : a->c.f[ia], y = b->c.is_int ? (float)b->c.i[ib] : b->c.f[ib];
            t.f[o] = op == '+' ? x + y : op == '-' ? x - y : op == '*' ? x * y : x / y;
        }
    }
    return acv__set_const(c, 0, &t);
}

int acv__fold(acv__ictx *c, const char *op)
{
    if (!strcmp(op, "Constant")) return fold_constant(c) ? -1 : 1;
    if (!strcmp(op, "Shape")) {
        int rc = fold_shape(c);
        return rc ? rc : 1;
    }
    if (!all_const(c)) return 0;
    /* all_const skips absent inputs: every fold below reads input 0 */
    acv__oval *x = acv__in(c, 0);
    if (!x) return acv__nerr(c, ACV_EFORMAT, "input 0 is missing (empty name)");
    int rc;
    if (!strcmp(op, "Cast")) rc = fold_cast(c, x);
    else if (!strcmp(op, "ConstantOfShape")) rc = fold_constant_of_shape(c, x);
    else if (!strcmp(op, "Gather")) {
        acv__oval *ix = acv__in(c, 1);
        rc = ix ? fold_gather(c, x, ix) : acv__nerr(c, ACV_EFORMAT, "missing indices");
    } else if (!strcmp(op, "Unsqueeze") || !strcmp(op, "Squeeze")) {
        int64_t axes[ACV_MAX_DIMS];
        int n;
        acv_shape o;
        rc = acv__check_attrs(c, "axes");
        if (!rc) rc = acv__axes_arg(c, 1, axes, &n);
        if (!rc) rc = acv__squeeze_shape(c, op[0] == 'U', &x->c.shape, axes, n, false, &o);
        if (!rc) rc = fold_copy_shape(c, x, &o);
    } else if (!strcmp(op, "Reshape")) {
        int64_t spec[ACV_MAX_DIMS];
        int n;
        acv_shape o;
        rc = acv__check_attrs(c, "allowzero");
        if (!rc) rc = acv__const_ints(c, acv__in(c, 1), "the shape", spec, ACV_MAX_DIMS, &n);
        if (!rc) rc = acv__reshape_shape(c, &x->c.shape, spec, n, acv__attr_i(c, "allowzero", 0) != 0, &o);
        if (!rc) rc = fold_copy_shape(c, x, &o);
    } else if (!strcmp(op, "Flatten")) {
        int ax = 0;
        rc = acv__check_attrs(c, "axis");
        int64_t a = acv__attr_i(c, "axis", 1);
        if (!rc && !(a == x->c.shape.ndim)) rc = norm_axis(c, a, x->c.shape.ndim, &ax);
        else ax = (int)a;
        if (!rc) {
            int64_t outer = 1;
            for (int k = 0; k < ax; k++) outer *= x->c.shape.d[k];
            acv_shape o = acv_shape_make(2, outer, outer ? x->c.n / outer : 0, 0, 0);
            rc = fold_copy_shape(c, x, &o);
        }
    } else if (!strcmp(op, "Concat")) rc = fold_concat(c);
    else if (!strcmp(op, "Slice")) rc = fold_slice(c, x);
    else if (!strcmp(op, "Transpose")) rc = fold_transpose(c, x);
    else if (!strcmp(op, "Identity") || !strcmp(op, "Dropout")) rc = acv__set_alias(c, 0, x);
    else if (!strcmp(op, "Add") || !strcmp(op, "Sub") || !strcmp(op, "Mul") || !strcmp(op, "Div")) {
        acv__oval *y = acv__in(c, 1);
        rc = y ? fold_binary(c, x, y, op[0] == 'A' ? '+' : op[0] == 'S' ? '-' : op[0] == 'M' ? '*' : '/')
               : acv__nerr(c, ACV_EFORMAT, "missing input");
    } else return 0;
    return rc ? rc : 1;
}
