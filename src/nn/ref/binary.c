/* Reference broadcasting binary ops (add, sub, mul, div) with numpy broadcasting.
 *
 * The shapes are first normalized: dims of output size 1 are dropped and neighbouring dims
 * in which both inputs broadcast the same way are merged. Equal shapes then become one
 * dim, and the channel pattern (N,C,1,1) x (N,C,H,W) two dims [N*C, H*W], so the general
 * loops below run contiguous inner loops in the common cases. Reductions into a broadcast
 * input are done per input element, in a fixed order, so results do not depend on the
 * thread count. */
#include "nn/kernels.h"

#include <stddef.h>

#include "autocv/error.h"

#define BIN_PAR_MIN 16384

/* Normalized broadcast: nd dims (outermost first), out sizes, element strides of a and b
 * (0 where that input broadcasts). */
typedef struct bshape {
    int nd;
    int64_t n[ACV_BCAST_DIMS];
    int64_t sa[ACV_BCAST_DIMS], sb[ACV_BCAST_DIMS];
    int64_t total;
} bshape;

static void normalize(bshape *z, const acv_bcast *s)
{
    int64_t on[ACV_BCAST_DIMS];
    int fa[ACV_BCAST_DIMS], fb[ACV_BCAST_DIMS]; /* 1 where the input is full along the dim */
    int nd = 0;
    z->total = 1;
    for (int d = 0; d < ACV_BCAST_DIMS; d++) {
        int64_t o = s->out[d];
        ACV_ASSERT(o >= 0);
        ACV_ASSERT(s->a[d] == o || s->a[d] == 1);
        ACV_ASSERT(s->b[d] == o || s->b[d] == 1);
        z->total *= o;
        if (o == 1) continue;
        int ia = s->a[d] == o, ib = s->b[d] == o;
        if (nd > 0 && fa[nd - 1] == ia && fb[nd - 1] == ib) {
            on[nd - 1] *= o;
        } else {
            on[nd] = o;
            fa[nd] = ia;
            fb[nd] = ib;
            nd++;
        }
    }
    z->nd = nd;
    int64_t ra = 1, rb = 1;
    for (int d = nd - 1; d >= 0; d--) {
        z->n[d] = on[d];
        z->sa[d] = fa[d] ? ra : 0;
        z->sb[d] = fb[d] ? rb : 0;
        if (fa[d]) ra *= on[d];
        if (fb[d]) rb *= on[d];
    }
}

/* Offsets of a and b for the row (all dims but the last) with flat index r. */
static inline void row_offsets(const bshape *z, int64_t r, int64_t *oa, int64_t *ob)
{
    int64_t a = 0, b = 0;
    for (int d = z->nd - 2; d >= 0; d--) {
        int64_t i = r % z->n[d];
        r /= z->n[d];
        a += i * z->sa[d];
        b += i * z->sb[d];
    }
    *oa = a;
    *ob = b;
}

static inline float apply(acv_binop op, float x, float y)
{
    switch (op) {
    case ACV_BIN_ADD: return x + y;
    case ACV_BIN_SUB: return x - y;
    case ACV_BIN_MUL: return x * y;
    default: return x / y;
    }
}

/* Contiguous inner loop with input steps 0 or 1; the switch sits outside the loop so
 * the compiler vectorizes each case. */
static void row_kernel(float *o, const float *a, const float *b, int64_t n, int64_t sa,
                       int64_t sb, acv_binop op)
{
    if (sa == 1 && sb == 1) {
        switch (op) {
        case ACV_BIN_ADD: for (int64_t i = 0; i < n; i++) o[i] = a[i] + b[i]; break;
        case ACV_BIN_SUB: for (int64_t i = 0; i < n; i++) o[i] = a[i] - b[i]; break;
        case ACV_BIN_MUL: for (int64_t i = 0; i < n; i++) o[i] = a[i] * b[i]; break;
        default: for (int64_t i = 0; i < n; i++) o[i] = a[i] / b[i]; break;
        }
    } else if (sa == 1) {
        float y = b[0];
        switch (op) {
        case ACV_BIN_ADD: for (int64_t i = 0; i < n; i++) o[i] = a[i] + y; break;
        case ACV_BIN_SUB: for (int64_t i = 0; i < n; i++) o[i] = a[i] - y; break;
        case ACV_BIN_MUL: for (int64_t i = 0; i < n; i++) o[i] = a[i] * y; break;
        default: for (int64_t i = 0; i < n; i++) o[i] = a[i] / y; break;
        }
    } else if (sb == 1) {
        float x = a[0];
        switch (op) {
        case ACV_BIN_ADD: for (int64_t i = 0; i < n; i++) o[i] = x + b[i]; break;
        case ACV_BIN_SUB: for (int64_t i = 0; i < n; i++) o[i] = x - b[i]; break;
        case ACV_BIN_MUL: for (int64_t i = 0; i < n; i++) o[i] = x * b[i]; break;
        default: for (int64_t i = 0; i < n; i++) o[i] = x / b[i]; break;
        }
    } else {
        float v = apply(op, a[0], b[0]);
        for (int64_t i = 0; i < n; i++) o[i] = v;
    }
}

/* out = a op b with broadcasting; out may alias an input of the output's shape. */
void acv_ref_binary_forward(float *out, const float *a, const float *b, const acv_bcast *s,
                            acv_binop op)
{
    bshape z;
    normalize(&z, s);
    if (z.total == 0) return;
    if (z.nd == 0) {
        out[0] = apply(op, a[0], b[0]);
        return;
    }
    const int64_t inner = z.n[z.nd - 1], rows = z.total / inner;
    const int64_t ia = z.sa[z.nd - 1], ib = z.sb[z.nd - 1];
    if (rows == 1) {
        /* one long row (equal shapes, scalar operand): split it into chunks */
        const int64_t chunk = 4096, nch = (inner + chunk - 1) / chunk;
#pragma omp parallel for schedule(static) if (inner >= BIN_PAR_MIN)
        for (int64_t c = 0; c < nch; c++) {
            int64_t lo = c * chunk, len = inner - lo < chunk ? inner - lo : chunk;
            row_kernel(out + lo, a + lo * ia, b + lo * ib, len, ia, ib, op);
        }
        return;
    }
#pragma omp parallel for schedule(static) if (z.total >= BIN_PAR_MIN)
    for (int64_t r = 0; r < rows; r++) {
        int64_t oa, ob;
        row_offsets(&z, r, &oa, &ob);
        row_kernel(out + r * inner, a + oa, b + ob, inner, ia, ib, op);
    }
}

/* Elementwise gradient of input `which` (0: a, 1: b) over one row of n outputs:
 * dx[i*sx] += g[i] * d(a op b)/dx, with a and b read at steps sa/sb (0 or 1). a and b are
 * read only by mul and div. */
static void grad_row(float *dx, int64_t sx, int which, const float *g, const float *a,
                     int64_t sa, const float *b, int64_t sb, int64_t n, acv_binop op)
{
    if (op == ACV_BIN_ADD || (op == ACV_BIN_SUB && which == 0)) {
        for (int64_t i = 0; i < n; i++) dx[i * sx] += g[i];
    } else if (op == ACV_BIN_SUB) {
        for (int64_t i = 0; i < n; i++) dx[i * sx] -= g[i];
    } else if (op == ACV_BIN_MUL) {
        const float *y = which == 0 ? b : a;
        int64_t sy = which == 0 ? sb : sa;
        for (int64_t i = 0; i < n; i++) dx[i * sx] += g[i] * y[i * sy];
    } else if (which == 0) {
        for (int64_t i = 0; i < n; i++) dx[i * sx] += g[i] / b[i * sb];
    } else {
        for (int64_t i = 0; i < n; i++) {
            float v = b[i * sb];
            dx[i * sx] -= g[i] * a[i * sa] / (v * v);
        }
    }
}

/* Sum over one row of n outputs of g[i] * d(a op b)/dx (x = a when which == 0), in double,
 * in order; go/sa/sb are the element steps of d_out, a and b. */
static double grad_sum(int which, const float *g, int64_t go, const float *a, int64_t sa,
                       const float *b, int64_t sb, int64_t n, acv_binop op)
{
    double s = 0.0;
    if (op == ACV_BIN_ADD || op == ACV_BIN_SUB) {
        for (int64_t i = 0; i < n; i++) s += g[i * go];
        if (op == ACV_BIN_SUB && which == 1) s = -s;
    } else if (op == ACV_BIN_MUL) {
        const float *y = which == 0 ? b : a;
        int64_t sy = which == 0 ? sb : sa;
        for (int64_t i = 0; i < n; i++) s += (double)g[i * go] * y[i * sy];
    } else if (which == 0) {
        for (int64_t i = 0; i < n; i++) s += (double)g[i * go] / b[i * sb];
    } else {
        for (int64_t i = 0; i < n; i++) {
            double v = b[i * sb];
            s -= (double)g[i * go] * a[i * sa] / (v * v);
        }
    }
    return s;
}

/* Adds the gradient of input `which` (0: a, 1: b) into dx, summing over the dims along
 * which that input broadcasts. Parallel over dx's elements; each sum runs in a fixed
 * order in double. */
static void reduce_into(float *dx, int which, const float *d_out, const float *a, const float *b,
                        const bshape *z, acv_binop op)
{
    const int64_t *sx = which == 0 ? z->sa : z->sb;
    /* output strides */
    int64_t so[ACV_BCAST_DIMS];
    int64_t r = 1;
    for (int d = z->nd - 1; d >= 0; d--) {
        so[d] = r;
        r *= z->n[d];
    }
    /* kept and reduced dims of x, outermost first */
    int kd[ACV_BCAST_DIMS], rd[ACV_BCAST_DIMS], nk = 0, nr = 0;
    int64_t nx = 1, nred = 1;
    for (int d = 0; d < z->nd; d++) {
        if (sx[d]) {
            kd[nk++] = d;
            nx *= z->n[d];
        } else {
            rd[nr++] = d;
            nred *= z->n[d];
        }
    }
    if (nr == 0) {
        /* x has the output's shape: elementwise, row by row */
        if (z->nd == 0) {
            grad_row(dx, 1, which, d_out, a, 0, b, 0, 1, op);
            return;
        }
        const int64_t inner = z->n[z->nd - 1], rows = z->total / inner;
        const int64_t ia = z->sa[z->nd - 1], ib = z->sb[z->nd - 1];
        const int64_t chunk = rows == 1 ? 4096 : inner, nch = (inner + chunk - 1) / chunk;
#pragma omp parallel for schedule(static) if (z->total >= BIN_PAR_MIN)
        for (int64_t q = 0; q < rows * nch; q++) {
            int64_t row = q / nch, lo = (q % nch) * chunk;
            int64_t len = inner - lo < chunk ? inner - lo : chunk;
            int64_t oa = 0, ob = 0;
            row_offsets(z, row, &oa, &ob);
            int64_t o = row * inner + lo;
            grad_row(dx + o, 1, which, d_out + o, a ? a + oa + lo * ia : NULL, ia,
                     b ? b + ob + lo * ib : NULL, ib, len, op);
        }
        return;
    }
    const int last = rd[nr - 1];
    const int64_t nlast = z->n[last], olast = so[last];
    const int64_t alast = z->sa[last], blast = z->sb[last];
    const int64_t nouter = nred / nlast;
#pragma omp parallel for schedule(static) if (z->total >= BIN_PAR_MIN)
    for (int64_t ix = 0; ix < nx; ix++) {
        /* base offsets from the kept coordinates */
        int64_t t = ix, bo = 0, ba = 0, bb = 0;
        for (int k = nk - 1; k >= 0; k--) {
            int d = kd[k];
            int64_t c = t % z->n[d];
            t /= z->n[d];
            bo += c * so[d];
            ba += c * z->sa[d];
            bb += c * z->sb[d];
        }
        /* odometer over the reduced dims but the last, which is the inner loop */
        int64_t cnt[ACV_BCAST_DIMS] = {0};
        double sum = 0.0;
        for (int64_t q = 0; q < nouter; q++) {
            int64_t po = bo, pa = ba, pb = bb;
            for (int k = 0; k < nr - 1; k++) {
                int d = rd[k];
                po += cnt[k] * so[d];
                pa += cnt[k] * z->sa[d];
                pb += cnt[k] * z->sb[d];
            }
            sum += grad_sum(which, d_out + po, olast, a ? a + pa : NULL, alast,
                            b ? b + pb : NULL, blast, nlast, op);
            for (int k = nr - 2; k >= 0; k--) {
                if (++cnt[k] < z->n[rd[k]]) break;
                cnt[k] = 0;
            }
        }
        dx[ix] += (float)sum;
    }
}

/* d_a += reduce(d_out * d(a op b)/da), d_b likewise; either may be NULL. a and b are read
 * only for mul and div (they may be NULL for add and sub). */
void acv_ref_binary_backward(float *d_a, float *d_b, const float *d_out, const float *a,
                             const float *b, const acv_bcast *s, acv_binop op)
{
    bshape z;
    normalize(&z, s);
    if (z.total == 0) return;
    if (d_a) reduce_into(d_a, 0, d_out, a, b, &z, op);
    if (d_b) reduce_into(d_b, 1, d_out, a, b, &z, op);
}
