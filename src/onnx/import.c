/* ONNX import driver: reads the file, orders the nodes (refusing cycles and dangling
 * inputs), keeps the table of named values, translates node by node, then fills the
 * parameters and wraps the graph in a model (see import.h). */
#include "onnx/import_internal.h"

#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autocv/error.h"
#include "base/file.h"

/* ---- errors and the value table -------------------------------------------------------- */

int acv__nerr(acv__ictx *c, int code, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const Onnx__NodeProto *n = c->node;
    if (!n) return acv_error(code, "%s: %s", c->path, msg);
    return acv_error(code, "%s: node '%s' (%s): %s", c->path, n->name && *n->name ? n->name : "(unnamed)",
                     n->op_type ? n->op_type : "?", msg);
}

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

int acv__val_find(const acv__ictx *c, const char *name)
{
    if (!c->tcap || !name) return -1;
    for (uint64_t h = hash_str(name) & (uint64_t)(c->tcap - 1);; h = (h + 1) & (uint64_t)(c->tcap - 1)) {
        int i = c->tab[h];
        if (i < 0) return -1;
        if (!strcmp(c->v[i].name, name)) return i;
    }
}

static void tab_put(acv__ictx *c, int i)
{
    for (uint64_t h = hash_str(c->v[i].name) & (uint64_t)(c->tcap - 1);; h = (h + 1) & (uint64_t)(c->tcap - 1))
        if (c->tab[h] < 0) {
            c->tab[h] = i;
            return;
        }
}

/* A new value named name (must be new); returns its index or <0. */
static int val_new(acv__ictx *c, const char *name)
{
    if (acv__val_find(c, name) >= 0) return acv__nerr(c, ACV_EFORMAT, "value '%s' is produced twice", name);
    if (c->nv == c->vcap) {
        int cap = c->vcap ? 2 * c->vcap : 256;
        acv__oval *nv = realloc(c->v, (size_t)cap * sizeof *nv);
        if (!nv) return acv_error(ACV_ENOMEM, "out of memory");
        c->v = nv;
        c->vcap = cap;
    }
    if (2 * (c->nv + 1) > c->tcap) {
        int cap = c->tcap ? 2 * c->tcap : 512;
        int *t = malloc((size_t)cap * sizeof *t);
        if (!t) return acv_error(ACV_ENOMEM, "out of memory");
        free(c->tab);
        c->tab = t;
        c->tcap = cap;
        for (int k = 0; k < cap; k++) t[k] = -1;
        for (int k = 0; k < c->nv; k++) tab_put(c, k);
    }
    acv__oval *v = &c->v[c->nv];
    memset(v, 0, sizeof *v);
    v->name = strdup(name);
    if (!v->name) return acv_error(ACV_ENOMEM, "out of memory");
    v->id = -1;
    v->src = -1;
    v->mat = -1;
    v->gamma = -1;
    tab_put(c, c->nv);
    return c->nv++;
}

acv__oval *acv__in(acv__ictx *c, size_t k)
{
    const Onnx__NodeProto *n = c->node;
    if (k >= n->n_input || !n->input[k] || !*n->input[k]) return NULL;
    int i = acv__val_find(c, n->input[k]);
    return i >= 0 ? &c->v[i] : NULL;
}

/* The name of output k, or NULL when the node leaves it unnamed (unused). */
static const char *out_name(acv__ictx *c, size_t k)
{
    const Onnx__NodeProto *n = c->node;
    return k < n->n_output && n->output[k] && *n->output[k] ? n->output[k] : NULL;
}

int acv__set_node(acv__ictx *c, size_t k, acv_id id, bool batched)
{
    int st = acv_graph_status(c->g);
    if (id < 0 || st) return acv__nerr(c, st ? st : id, "%s", acv_errmsg());
    const char *nm = out_name(c, k);
    if (!nm) return 0;
    int i = val_new(c, nm);
    if (i < 0) return i;
    c->v[i].kind = ACV__V_NODE;
    c->v[i].id = id;
    c->v[i].batched = batched;
    return 0;
}

int acv__set_const(acv__ictx *c, size_t k, acv__otensor *t)
{
    const char *nm = out_name(c, k);
    if (!nm) {
        acv__otensor_free(t);
        return 0;
    }
    int i = val_new(c, nm);
    if (i < 0) {
        acv__otensor_free(t);
        return i;
    }
    c->v[i].kind = ACV__V_CONST;
    c->v[i].c = *t;
    memset(t, 0, sizeof *t);
    return 0;
}

int acv__set_alias(acv__ictx *c, size_t k, const acv__oval *v)
{
    const char *nm = out_name(c, k);
    if (!nm) return 0;
    acv__oval copy = *v; /* v may move when the table grows */
    int i = val_new(c, nm);
    if (i < 0) return i;
    acv__oval *o = &c->v[i];
    char *name = o->name;
    *o = copy; /* every field but the name and a constant's data */
    o->name = name;
    o->c.f = NULL;
    o->c.i = NULL;
    if (copy.kind != ACV__V_CONST) return 0;
    o->id = -1; /* its own parameter if ever needed */
    size_t n = (size_t)(copy.c.n ? copy.c.n : 1);
    if ((copy.c.f && !(o->c.f = malloc(n * sizeof(float)))) || (copy.c.i && !(o->c.i = malloc(n * sizeof(int64_t)))))
        return acv_error(ACV_ENOMEM, "out of memory");
    if (copy.c.f) memcpy(o->c.f, copy.c.f, (size_t)copy.c.n * sizeof(float));
    if (copy.c.i) memcpy(o->c.i, copy.c.i, (size_t)copy.c.n * sizeof(int64_t));
    return 0;
}

int acv__set_pad(acv__ictx *c, size_t k, int src, const int64_t pads[4])
{
    const char *nm = out_name(c, k);
    if (!nm) return 0;
    int i = val_new(c, nm);
    if (i < 0) return i;
    c->v[i].kind = ACV__V_PAD;
    c->v[i].src = src;
    c->v[i].batched = c->v[src].batched;
    memcpy(c->v[i].pads, pads, sizeof c->v[i].pads);
    return 0;
}

float *acv__const_floats(const acv__otensor *t)
{
    float *f = malloc((size_t)(t->n ? t->n : 1) * sizeof(float));
    if (!f) return NULL;
    for (int64_t k = 0; k < t->n; k++) f[k] = t->is_int ? (float)t->i[k] : t->f[k];
    return f;
}

acv_id acv__new_param(acv__ictx *c, const char *base, const acv_shape *s, float *data, bool trainable)
{
    char name[300];
    snprintf(name, sizeof name, "%s", base && *base ? base : "const");
    for (int k = 1; acv_graph_find(c->g, name) >= 0; k++) snprintf(name, sizeof name, "%s_%d", base, k);
    acv_shape ps = *s;
    if (ps.ndim == 0) ps = acv_shape_make(1, 1, 0, 0, 0);
    if (c->npd == c->pdcap) {
        int cap = c->pdcap ? 2 * c->pdcap : 128;
        void *np = realloc(c->pd, (size_t)cap * sizeof *c->pd);
        if (!np) {
            free(data);
            return acv_error(ACV_ENOMEM, "out of memory");
        }
        c->pd = np;
        c->pdcap = cap;
    }
    acv_id id = acv_param(c->g, name, ps.ndim, ps.d, ACV_INIT_ZERO, trainable);
    if (id < 0) {
        free(data);
        return acv__nerr(c, id, "%s", acv_errmsg());
    }
    c->pd[c->npd].id = id;
    c->pd[c->npd].d = data;
    c->npd++;
    return id;
}

acv_id acv__node_of(acv__ictx *c, acv__oval *v, bool trainable)
{
    acv_id x = acv__eng_of(c, v, trainable);
    if (x < 0 || !v->nhwc) return x;
    if (v->mat >= 0) return v->mat;
    acv_id y = acv__nhwc_materialize(c, v, x);
    if (y >= 0) v->mat = y;
    return y;
}

acv_id acv__eng_of(acv__ictx *c, acv__oval *v, bool trainable)
{
    if (v->kind == ACV__V_NODE) return v->id;
    if (v->kind == ACV__V_LN || v->kind == ACV__V_GELU) {
        if (v->id >= 0) return v->id;
        acv_id id = acv__pending_node(c, v);
        if (id >= 0) v->id = id;
        return id;
    }
    if (v->kind == ACV__V_CONST) {
        if (v->id >= 0) return v->id;
        if (v->c.n == 0) return acv__nerr(c, ACV_EUNSUPPORTED, "empty constant '%s' used as a tensor", v->name);
        float *d = acv__const_floats(&v->c);
        if (!d) return acv_error(ACV_ENOMEM, "out of memory");
        acv_id id = acv__new_param(c, v->name, &v->c.shape, d, trainable);
        if (id >= 0) v->id = id;
        return id;
    }
    /* pending zero pad: a depthwise 1x1 convolution with weight 1 and the padding */
    if (v->id >= 0) return v->id;
    int src = v->src;
    acv_id x = c->v[src].id;
    const acv_shape *xs = acv_graph_shape(c->g, x);
    int64_t C = xs->d[1];
    acv_shape ws = acv_shape_make(4, C, 1, 1, 1);
    float *w = malloc((size_t)C * sizeof(float));
    if (!w) return acv_error(ACV_ENOMEM, "out of memory");
    for (int64_t k = 0; k < C; k++) w[k] = 1;
    char nm[300];
    snprintf(nm, sizeof nm, "%s.pad_weight", v->name);
    acv_id wid = acv__new_param(c, nm, &ws, w, false);
    if (wid < 0) return wid;
    acv_conv_attrs a = {1, 1, 1, 1, (int)v->pads[0], (int)v->pads[1], (int)v->pads[2], (int)v->pads[3], 1, 1, (int)C, 0, 0};
    acv_id id = acv_conv2d_ex(c->g, NULL, x, wid, -1, &a);
    if (id < 0) return acv__nerr(c, id, "%s", acv_errmsg());
    v->id = id;
    return id;
}

int acv__const_ints(acv__ictx *c, acv__oval *v, const char *what, int64_t *out, int max, int *n)
{
    if (!v || v->kind != ACV__V_CONST)
        return acv__nerr(c, ACV_EUNSUPPORTED, "%s must be a constant (computed at run time is not supported)", what);
    if (v->c.n > max) return acv__nerr(c, ACV_EUNSUPPORTED, "%s has %lld values (at most %d)", what, (long long)v->c.n, max);
    for (int64_t k = 0; k < v->c.n; k++) out[k] = v->c.is_int ? v->c.i[k] : (int64_t)v->c.f[k];
    *n = (int)v->c.n;
    return 0;
}

int acv__const_float(acv__ictx *c, acv__oval *v, const char *what, float *out)
{
    if (!v || v->kind != ACV__V_CONST || v->c.n != 1)
        return acv__nerr(c, ACV_EUNSUPPORTED, "%s must be a constant scalar", what);
    *out = v->c.is_int ? (float)v->c.i[0] : v->c.f[0];
    return 0;
}

/* ---- attributes -------------------------------------------------------------------------- */

const Onnx__AttributeProto *acv__attr(acv__ictx *c, const char *name)
{
    for (size_t k = 0; k < c->node->n_attribute; k++)
        if (c->node->attribute[k]->name && !strcmp(c->node->attribute[k]->name, name)) return c->node->attribute[k];
    return NULL;
}

int64_t acv__attr_i(acv__ictx *c, const char *name, int64_t def)
{
    const Onnx__AttributeProto *a = acv__attr(c, name);
    return a ? a->i : def;
}

float acv__attr_f(acv__ictx *c, const char *name, float def)
{
    const Onnx__AttributeProto *a = acv__attr(c, name);
    return a ? a->f : def;
}

const char *acv__attr_s(acv__ictx *c, const char *name, const char *def, char *buf, size_t cap)
{
    const Onnx__AttributeProto *a = acv__attr(c, name);
    if (!a || !a->has_s) return def;
    size_t n = a->s.len < cap - 1 ? a->s.len : cap - 1;
    memcpy(buf, a->s.data, n);
    buf[n] = 0;
    return buf;
}

int acv__attr_ints(acv__ictx *c, const char *name, int64_t *out, int max, int *n)
{
    const Onnx__AttributeProto *a = acv__attr(c, name);
    *n = -1;
    if (!a) return 0;
    if (a->n_ints > (size_t)max) return acv__nerr(c, ACV_EUNSUPPORTED, "attribute %s has %zu values (at most %d)", name, a->n_ints, max);
    for (size_t k = 0; k < a->n_ints; k++) out[k] = a->ints[k];
    *n = (int)a->n_ints;
    return 0;
}

int acv__check_attrs(acv__ictx *c, const char *known)
{
    for (size_t k = 0; k < c->node->n_attribute; k++) {
        const char *nm = c->node->attribute[k]->name ? c->node->attribute[k]->name : "";
        size_t l = strlen(nm);
        const char *p = known;
        bool ok = false;
        while (p && *p && !ok) {
            const char *e = strchr(p, ',');
            size_t pl = e ? (size_t)(e - p) : strlen(p);
            ok = pl == l && !strncmp(p, nm, l);
            p = e ? e + 1 : NULL;
        }
        if (!ok) return acv__nerr(c, ACV_EUNSUPPORTED, "attribute '%s' is not supported", nm);
    }
    return 0;
}

/* ---- ordering ------------------------------------------------------------------------------ */

/* Orders the nodes so that every input is produced before it is read (Kahn). Errors: an
 * input nobody produces (not an initializer, not a graph input), a cycle. *order gets
 * g->n_node indices (caller frees). known: the initializer and graph-input values. */
static int topo_order(acv__ictx *c, const Onnx__GraphProto *gp, int **order)
{
    size_t n = gp->n_node;
    int *ord = malloc((n ? n : 1) * sizeof(int)), *indeg = calloc(n ? n : 1, sizeof(int));
    /* producer of each output, through a temporary value table holding node indices */
    acv__ictx pc = {0};
    pc.path = c->path;
    int rc = (!ord || !indeg) ? acv_error(ACV_ENOMEM, "out of memory") : 0;
    for (size_t i = 0; i < n && !rc; i++) {
        const Onnx__NodeProto *nd = gp->node[i];
        pc.node = c->node = nd;
        if (!nd->op_type) rc = acv__nerr(c, ACV_EFORMAT, "node without an operator type");
        for (size_t k = 0; k < nd->n_output && !rc; k++) {
            if (!nd->output[k] || !*nd->output[k]) continue;
            if (acv__val_find(c, nd->output[k]) >= 0)
                rc = acv__nerr(c, ACV_EFORMAT, "output '%s' overwrites an initializer or graph input", nd->output[k]);
            else {
                int v = val_new(&pc, nd->output[k]);
                if (v < 0) rc = v;
                else pc.v[v].id = (int)i;
            }
        }
    }
    /* consumers: count unresolved inputs per node; edges walked by scanning (n small) */
    int **cons = calloc(n ? n : 1, sizeof(int *));
    int *ncons = calloc(n ? n : 1, sizeof(int)), *ccap = calloc(n ? n : 1, sizeof(int));
    if (!rc && (!cons || !ncons || !ccap)) rc = acv_error(ACV_ENOMEM, "out of memory");
    for (size_t i = 0; i < n && !rc; i++) {
        const Onnx__NodeProto *nd = gp->node[i];
        c->node = nd;
        for (size_t k = 0; k < nd->n_input && !rc; k++) {
            const char *in = nd->input[k];
            if (!in || !*in) continue;
            int p = acv__val_find(&pc, in);
            if (p < 0) {
                if (acv__val_find(c, in) < 0)
                    rc = acv__nerr(c, ACV_EFORMAT, "input '%s' is missing: no node produces it and it is neither an "
                                   "initializer nor a graph input", in);
                continue;
            }
            int src = pc.v[p].id;
            if (ncons[src] == ccap[src]) {
                int cap = ccap[src] ? 2 * ccap[src] : 4;
                int *nc = realloc(cons[src], (size_t)cap * sizeof(int));
                if (!nc) { rc = acv_error(ACV_ENOMEM, "out of memory"); break; }
                cons[src] = nc;
                ccap[src] = cap;
            }
            cons[src][ncons[src]++] = (int)i;
            indeg[i]++;
        }
    }
    size_t head = 0, tail = 0;
    for (size_t i = 0; i < n && !rc; i++)
        if (!indeg[i]) ord[tail++] = (int)i;
    while (!rc && head < tail) {
        int i = ord[head++];
        for (int k = 0; k < ncons[i]; k++)
            if (--indeg[cons[i][k]] == 0) ord[tail++] = cons[i][k];
    }
    if (!rc && tail < n) {
        for (size_t i = 0; i < n; i++)
            if (indeg[i]) {
                c->node = gp->node[i];
                rc = acv__nerr(c, ACV_EFORMAT, "the graph is cyclic: this node is on a cycle or reads from one");
                break;
            }
    }
    for (size_t i = 0; cons && i < n; i++) free(cons[i]);
    free(cons);
    free(ncons);
    free(ccap);
    for (int k = 0; k < pc.nv; k++) free(pc.v[k].name);
    free(pc.v);
    free(pc.tab);
    free(indeg);
    c->node = NULL;
    if (rc) {
        free(ord);
        return rc;
    }
    *order = ord;
    return 0;
}

/* ---- the driver -------------------------------------------------------------------------- */

static void ctx_free(acv__ictx *c)
{
    for (int i = 0; i < c->nv; i++) {
        free(c->v[i].name);
        acv__otensor_free(&c->v[i].c);
    }
    free(c->v);
    free(c->tab);
    for (int i = 0; i < c->npd; i++) free(c->pd[i].d);
    free(c->pd);
    free(c->dir);
}

/* The graph input: the one graph input that is not an initializer, float, 4-D. */
static int make_input(acv__ictx *c, const Onnx__GraphProto *gp, const int hw[2])
{
    const Onnx__ValueInfoProto *in = NULL;
    for (size_t k = 0; k < gp->n_input; k++) {
        if (!gp->input[k]->name || acv__val_find(c, gp->input[k]->name) >= 0) continue; /* initializer */
        if (in) return acv_error(ACV_EUNSUPPORTED, "%s: the model has several inputs ('%s', '%s'); one image input is supported",
                                 c->path, in->name, gp->input[k]->name);
        in = gp->input[k];
    }
    if (!in) return acv_error(ACV_EFORMAT, "%s: the model has no input", c->path);
    const Onnx__TypeProto *tp = in->type;
    if (!tp || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type)
        return acv_error(ACV_EUNSUPPORTED, "%s: input '%s' is not a tensor", c->path, in->name);
    int et = tp->tensor_type->has_elem_type ? tp->tensor_type->elem_type : 0;
    if (et != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)
        return acv_error(ACV_EUNSUPPORTED, "%s: input '%s' has element type %s; float32 is supported", c->path, in->name,
                         acv__onnx_dtype_name(et));
    const Onnx__TensorShapeProto *sp = tp->tensor_type->shape;
    if (!sp || sp->n_dim != 4)
        return acv_error(ACV_EUNSUPPORTED, "%s: input '%s' must be 4-D (N, C, H, W), it has %d dims", c->path, in->name,
                         sp ? (int)sp->n_dim : 0);
    int64_t d[4];
    for (int k = 0; k < 4; k++) {
        const Onnx__TensorShapeProto__Dimension *dm = sp->dim[k];
        bool known = dm->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
        if (!known) {
            if (k == 1) return acv_error(ACV_EUNSUPPORTED, "%s: input '%s' has a dynamic channel count", c->path, in->name);
            d[k] = k == 0 ? 1 : hw[k - 2];
        } else {
            d[k] = dm->dim_value;
            if (d[k] < 1 || d[k] > 16384 || (k == 1 && d[k] > 4))
                return acv_error(ACV_ERANGE, "%s: input '%s' declares dim %d = %lld (out of range%s)", c->path, in->name, k,
                                 (long long)d[k], k == 1 ? ": 1 to 4 channels" : "");
        }
    }
    c->onnx_batch = d[0];
    d[0] = 1;
    acv_id x = acv_input(c->g, in->name, 4, d);
    if (x < 0) return acv_error_prefix(x, "%s: ", c->path);
    int i = val_new(c, in->name);
    if (i < 0) return i;
    c->v[i].kind = ACV__V_NODE;
    c->v[i].id = x;
    c->v[i].batched = true;
    return 0;
}

/* Reads --classes FILE: one name per non-empty line. */
static int read_classes(const char *path, int want, char ***out)
{
    uint8_t *txt;
    size_t len;
    int rc = acv_file_read(path, 16u << 20, &txt, &len);
    if (rc) return rc;
    char **names = calloc((size_t)want, sizeof(char *));
    int n = 0;
    char *save = NULL;
    for (char *line = strtok_r((char *)txt, "\r\n", &save); line; line = strtok_r(NULL, "\r\n", &save)) {
        while (isspace((unsigned char)*line)) line++;
        size_t l = strlen(line);
        while (l && isspace((unsigned char)line[l - 1])) line[--l] = 0;
        if (!l) continue;
        if (n < want && names) names[n] = strdup(line);
        n++;
    }
    free(txt);
    if (!names || n != want) {
        for (int i = 0; names && i < want; i++) free(names[i]);
        free(names);
        return acv_error(ACV_EINVAL, "%s: %d class names, the model outputs %d classes", path, n, want);
    }
    *out = names;
    return 0;
}

int acv_onnx_import(const char *path, const acv_onnx_options *opt, acv_model **out)
{
    *out = NULL;
    acv_onnx_options dflt = {0};
    if (!opt) opt = &dflt;
    const char *task = opt->task ? opt->task : "cls";
    if (strcmp(task, "cls") && strcmp(task, "det") && strcmp(task, "seg"))
        return acv_error(ACV_EINVAL, "task '%s' is not one of cls, det, seg", task);
    int imgsz = opt->imgsz > 0 ? opt->imgsz : 224;
    int hw[2] = {opt->height > 0 ? opt->height : imgsz, opt->width > 0 ? opt->width : imgsz};
    Onnx__ModelProto *m = NULL;
    int rc = acv__onnx_read(path, &m);
    if (rc) return rc;
    /* without --task, the task an AutoCV export recorded */
    char meta_task[8] = "";
    for (size_t i = 0; !opt->task && i < m->n_metadata_props; i++) {
        const Onnx__StringStringEntryProto *kv = m->metadata_props[i];
        if (kv->key && kv->value && !strcmp(kv->key, "task") &&
            (!strcmp(kv->value, "cls") || !strcmp(kv->value, "det") || !strcmp(kv->value, "seg")))
            snprintf(meta_task, sizeof meta_task, "%s", kv->value);
    }
    if (meta_task[0]) task = meta_task;
    bool det = !strcmp(task, "det");
    acv__ictx c = {0};
    c.path = path;
    const char *slash = strrchr(path, '/');
    c.dir = slash ? strndup(path, (size_t)(slash - path) + (slash == path)) : strdup(".");
    c.g = acv_graph_new();
    acv_model *md = calloc(1, sizeof *md);
    int *order = NULL;
    if (!c.dir || !c.g || !md) rc = acv_error(ACV_ENOMEM, "out of memory");
    const Onnx__GraphProto *gp = m->graph;
    c.opset = -1;
    for (size_t k = 0; !rc && k < m->n_opset_import; k++) {
        const Onnx__OperatorSetIdProto *o = m->opset_import[k];
        if (!o->domain || !*o->domain || !strcmp(o->domain, "ai.onnx")) c.opset = (int)o->version;
    }
    if (!rc && (c.opset < 11 || c.opset > 18))
        rc = c.opset < 0 ? acv_error(ACV_EFORMAT, "%s: no opset for the default ONNX domain", path)
                         : acv_error(ACV_EUNSUPPORTED, "%s: opset %d is not supported (11 to 18 are)", path, c.opset);
    /* initializers: constants named after themselves */
    for (size_t k = 0; !rc && k < gp->n_initializer; k++) {
        const Onnx__TensorProto *t = gp->initializer[k];
        char what[400];
        snprintf(what, sizeof what, "%s: initializer '%s'", path, t->name ? t->name : "");
        if (!t->name || !*t->name) { rc = acv_error(ACV_EFORMAT, "%s: an initializer has no name", path); break; }
        int i = val_new(&c, t->name);
        if (i < 0) { rc = i; break; }
        c.v[i].kind = ACV__V_CONST;
        rc = acv__onnx_tensor_decode(t, c.dir, what, &c.v[i].c);
        /* the decoded copy is all that is needed: drop the message's bytes early (peak memory) */
        Onnx__TensorProto *mt = gp->initializer[k];
        if (mt->has_raw_data) {
            free(mt->raw_data.data);
            mt->raw_data.data = NULL;
            mt->raw_data.len = 0;
        }
    }
    if (!rc && gp->n_sparse_initializer) rc = acv_error(ACV_EUNSUPPORTED, "%s: sparse initializers are not supported", path);
    if (!rc) rc = make_input(&c, gp, hw);
    if (!rc && gp->n_output != 1)
        rc = acv_error(ACV_EUNSUPPORTED, "%s: the model has %zu outputs; one output is supported", path, gp->n_output);
    if (!rc) rc = topo_order(&c, gp, &order);
    /* an operator the importer does not know at all is the reason to give, rather than
     * whatever an earlier node it feeds from cannot express */
    for (size_t k = 0; !rc && k < gp->n_node; k++) {
        c.node = gp->node[order[k]];
        if (c.node->domain && *c.node->domain && strcmp(c.node->domain, "ai.onnx"))
            rc = acv__nerr(&c, ACV_EUNSUPPORTED, "operators of domain '%s' are not supported", c.node->domain);
        else rc = acv__op_check(&c, c.node->op_type ? c.node->op_type : "");
    }
    for (size_t k = 0; !rc && k < gp->n_node; k++) {
        c.node = gp->node[order[k]];
        const char *op = c.node->op_type ? c.node->op_type : "";
        rc = acv__fold(&c, op);
        if (rc == 1) rc = 0;
        else if (rc == 0) rc = acv__translate(&c, op);
    }
    c.node = NULL;
    acv_id y = -1;
    if (!rc) {
        int oi = acv__val_find(&c, gp->output[0]->name);
        if (oi < 0) rc = acv_error(ACV_EFORMAT, "%s: output '%s' is not produced by any node", path, gp->output[0]->name);
        else if (c.v[oi].kind == ACV__V_CONST)
            rc = acv_error(ACV_EUNSUPPORTED, "%s: output '%s' is a constant", path, gp->output[0]->name);
        else {
            y = acv__node_of(&c, &c.v[oi], false);
            if (y < 0) rc = y;
        }
    }
    if (!rc && acv_graph_status(c.g)) rc = acv_error(acv_graph_status(c.g), "%s: %s", path, acv_errmsg());
    if (!rc) {
        acv_graph_set_output(c.g, y);
        /* parameter values: every parameter was made by acv__new_param with its data */
        int np = acv_graph_param_count(c.g);
        float **by_id = calloc((size_t)acv_graph_node_count(c.g), sizeof(float *));
        if (!by_id) rc = acv_error(ACV_ENOMEM, "out of memory");
        for (int i = 0; !rc && i < c.npd; i++) by_id[c.pd[i].id] = c.pd[i].d;
        for (int i = 0; !rc && i < np; i++) {
            acv_param_info pi;
            rc = acv_graph_param(c.g, i, &pi);
            if (!rc && by_id[pi.id]) memcpy(pi.data, by_id[pi.id], (size_t)acv_shape_numel(&pi.shape) * sizeof(float));
        }
        free(by_id);
    }
    /* the model around the graph */
    if (!rc) {
        acv_id x = acv_graph_input(c.g);
        const acv_shape *xs = acv_graph_shape(c.g, x), *ys = acv_graph_shape(c.g, y);
        md->graph = c.g;
        c.g = NULL;
        snprintf(md->task, sizeof md->task, "%s", task);
        snprintf(md->arch, sizeof md->arch, "onnx");
        md->in_c = (int)xs->d[1];
        md->in_h = (int)xs->d[2];
        md->in_w = (int)xs->d[3];
        if (!strcmp(task, "cls") && ys->ndim != 2) {
            char b[96];
            rc = acv_error(ACV_EUNSUPPORTED, "%s: a classifier must output (N, classes), this model outputs %s (use --task)",
                           path, acv_shape_str(ys, b, sizeof b));
        }
        if (det && (ys->ndim != 3 || ys->d[1] <= 64)) {
            char b[96];
            rc = acv_error(ACV_EUNSUPPORTED, "%s: a detector must output (N, 64 + classes, anchors) as AutoCV's det "
                           "models do, this model outputs %s", path, acv_shape_str(ys, b, sizeof b));
        }
        int k = det ? (ys->ndim == 3 ? (int)ys->d[1] - 64 : 1) : ys->ndim >= 2 ? (int)ys->d[1] : 1;
        /* what an AutoCV export (or any producer using the same keys) recorded */
        json_t *meta_classes = NULL, *meta_norm = NULL, *meta_pre = NULL, *meta_post = NULL;
        const char *meta_arch = NULL;
        for (size_t i = 0; i < m->n_metadata_props; i++) {
            const Onnx__StringStringEntryProto *kv = m->metadata_props[i];
            if (!kv->key || !kv->value) continue;
            json_t **dst = !strcmp(kv->key, "classes") ? &meta_classes : !strcmp(kv->key, "normalization") ? &meta_norm
                         : !strcmp(kv->key, "preprocess") ? &meta_pre
                         : !strcmp(kv->key, "postprocess") ? &meta_post : NULL;
            if (dst && !*dst) *dst = json_loads(kv->value, 0, NULL);
            if (!strcmp(kv->key, "arch")) meta_arch = kv->value;
        }
        bool meta_cls_ok = json_is_array(meta_classes) && (int)json_array_size(meta_classes) == k;
        for (int i = 0; meta_cls_ok && i < k; i++) meta_cls_ok = json_is_string(json_array_get(meta_classes, (size_t)i));
        if (!rc && opt->classes_file) rc = read_classes(opt->classes_file, k, &md->classes);
        else if (!rc && meta_cls_ok) {
            md->classes = calloc((size_t)k, sizeof(char *));
            for (int i = 0; md->classes && i < k; i++)
                md->classes[i] = strdup(json_string_value(json_array_get(meta_classes, (size_t)i)));
            if (!md->classes) rc = acv_error(ACV_ENOMEM, "out of memory");
        } else if (!rc) {
            md->classes = calloc((size_t)k, sizeof(char *));
            for (int i = 0; md->classes && i < k; i++) {
                char b[32];
                snprintf(b, sizeof b, "class_%d", i);
                md->classes[i] = strdup(b);
            }
            if (!md->classes) rc = acv_error(ACV_ENOMEM, "out of memory");
        }
        if (!rc) md->n_classes = k;
        static const float IM_MEAN[3] = {0.485f, 0.456f, 0.406f}, IM_STD[3] = {0.229f, 0.224f, 0.225f};
        json_t *mm = json_object_get(meta_norm, "mean"), *ms = json_object_get(meta_norm, "std");
        bool meta_norm_ok = json_is_array(mm) && json_is_array(ms) && (int)json_array_size(mm) == md->in_c &&
                            (int)json_array_size(ms) == md->in_c;
        for (int i = 0; meta_norm_ok && i < md->in_c; i++)
            meta_norm_ok = json_is_number(json_array_get(mm, (size_t)i)) && json_number_value(json_array_get(ms, (size_t)i)) > 0;
        for (int i = 0; i < md->in_c && i < 4; i++) {
            if (opt->has_norm) {
                md->mean[i] = opt->mean[i];
                md->std[i] = opt->std[i];
            } else if (meta_norm_ok) {
                md->mean[i] = (float)json_number_value(json_array_get(mm, (size_t)i));
                md->std[i] = (float)json_number_value(json_array_get(ms, (size_t)i));
            } else {
                md->mean[i] = md->in_c == 3 && !det ? IM_MEAN[i] : 0.0f;
                md->std[i] = md->in_c == 3 && !det ? IM_STD[i] : 1.0f;
            }
        }
        const char *rs = json_string_value(json_object_get(meta_pre, "resize"));
        bool crop = rs && !strcmp(rs, "crop");
        snprintf(md->resize, sizeof md->resize, "%s", det ? "letterbox" : crop ? "crop" : "stretch");
        double cf = json_number_value(json_object_get(meta_pre, "crop_frac"));
        md->crop_frac = crop && cf > 0 && cf <= 1 ? (float)cf : 1;
        if (meta_arch && *meta_arch && strlen(meta_arch) < sizeof md->arch) snprintf(md->arch, sizeof md->arch, "%s", meta_arch);
        /* a detector's per-class score thresholds, when they fit its classes (else none) */
        json_t *th = json_object_get(meta_post, "score_thresholds");
        bool th_ok = !rc && det && json_is_array(th) && (int)json_array_size(th) == k;
        for (int i = 0; th_ok && i < k; i++) {
            double t = json_number_value(json_array_get(th, (size_t)i));
            th_ok = json_is_number(json_array_get(th, (size_t)i)) && t >= 0 && t <= 1;
        }
        if (th_ok && (md->score_thr = malloc((size_t)k * sizeof(float))))
            for (int i = 0; i < k; i++) md->score_thr[i] = (float)json_number_value(json_array_get(th, (size_t)i));
        json_decref(meta_classes);
        json_decref(meta_norm);
        json_decref(meta_pre);
        json_decref(meta_post);
        const char *base = strrchr(path, '/');
        char producer[256];
        snprintf(producer, sizeof producer, "%s %s", m->producer_name ? m->producer_name : "",
                 m->producer_version ? m->producer_version : "");
        json_t *pj = json_pack("{s:s, s:s, s:i, s:I, s:s}", "source", "onnx", "file", base ? base + 1 : path, "opset",
                               c.opset, "ir_version", (json_int_t)m->ir_version, "producer", producer);
        md->provenance_json = pj ? json_dumps(pj, JSON_COMPACT) : NULL;
        json_decref(pj);
    }
    free(order);
    acv_graph_free(c.g);
    ctx_free(&c);
    onnx__model_proto__free_unpacked(m, NULL);
    if (rc) {
        acv_model_free(md);
        return rc;
    }
    *out = md;
    return 0;
}

int acv_model_load_any(const char *path, acv_model **out)
{
    const char *ext = acv_path_ext(path);
    if (!strcmp(ext, "onnx") && !acv_is_dir(path)) return acv_onnx_import(path, NULL, out);
    return acv_model_load(path, out);
}
