/* Graph architecture to and from JSON (the "graph" of model.json). Only the nodes the
 * output depends on are written; losses never are. */
#include "nn/graph_internal.h"

#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "autocv/error.h"

static const char *const INIT_NAMES[] = {"zero", "one", "kaiming_out", "uniform_fan_in", "normal_001"};

static json_t *ints(const int64_t *v, int n)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(a, json_integer(v[i]));
    return a;
}

static json_t *ints4(int a, int b, int c, int d, int n)
{
    int64_t v[4] = {a, b, c, d};
    return ints(v, n);
}

static json_t *attrs_json(const acv_node *nd)
{
    json_t *o = json_object();
    const acv_attrs *a = &nd->a;
    switch (nd->op) {
    case ACV_OP_CONV2D: case ACV_OP_CONVT2D:
        json_object_set_new(o, "kernel", ints4(a->conv.kh, a->conv.kw, 0, 0, 2));
        json_object_set_new(o, "stride", ints4(a->conv.stride_h, a->conv.stride_w, 0, 0, 2));
        json_object_set_new(o, "pads", ints4(a->conv.pad_t, a->conv.pad_l, a->conv.pad_b, a->conv.pad_r, 4));
        json_object_set_new(o, "dilation", ints4(a->conv.dil_h, a->conv.dil_w, 0, 0, 2));
        json_object_set_new(o, "groups", json_integer(a->conv.groups));
        if (nd->op == ACV_OP_CONVT2D)
            json_object_set_new(o, "output_padding", ints4(a->conv.out_pad_h, a->conv.out_pad_w, 0, 0, 2));
        break;
    case ACV_OP_BATCHNORM:
        json_object_set_new(o, "eps", json_real(a->eps));
        json_object_set_new(o, "momentum", json_real(a->momentum));
        break;
    case ACV_OP_LAYERNORM:
        json_object_set_new(o, "axis", json_integer(a->axis));
        json_object_set_new(o, "eps", json_real(a->eps));
        break;
    case ACV_OP_ACT:
        json_object_set_new(o, "kind", json_integer(a->act));
        json_object_set_new(o, "alpha", json_real(a->alpha));
        break;
    case ACV_OP_MAXPOOL: case ACV_OP_AVGPOOL:
        json_object_set_new(o, "kernel", ints4(a->pool.kh, a->pool.kw, 0, 0, 2));
        json_object_set_new(o, "stride", ints4(a->pool.stride_h, a->pool.stride_w, 0, 0, 2));
        json_object_set_new(o, "pads", ints4(a->pool.pad_t, a->pool.pad_l, a->pool.pad_b, a->pool.pad_r, 4));
        json_object_set_new(o, "dilation", ints4(a->pool.dil_h, a->pool.dil_w, 0, 0, 2));
        json_object_set_new(o, "ceil_mode", json_boolean(a->pool.ceil_mode));
        json_object_set_new(o, "count_include_pad", json_boolean(a->pool.count_include_pad));
        break;
    case ACV_OP_UPSAMPLE:
        json_object_set_new(o, "size", ints4(a->oh, a->ow, 0, 0, 2));
        json_object_set_new(o, "bilinear", json_boolean(a->bilinear));
        json_object_set_new(o, "align_corners", json_boolean(a->align_corners));
        break;
    case ACV_OP_BINARY:
        json_object_set_new(o, "op", json_integer(a->binop));
        break;
    case ACV_OP_CONCAT: case ACV_OP_SOFTMAX:
        json_object_set_new(o, "axis", json_integer(a->axis));
        if (nd->op == ACV_OP_SOFTMAX) json_object_set_new(o, "log", json_boolean(a->log));
        break;
    case ACV_OP_SLICE:
        json_object_set_new(o, "axis", json_integer(a->axis));
        json_object_set_new(o, "start", json_integer(a->start));
        json_object_set_new(o, "end", json_integer(a->end));
        json_object_set_new(o, "step", json_integer(a->step));
        break;
    case ACV_OP_RESHAPE:
        if (a->axis > 0) json_object_set_new(o, "flatten_axis", json_integer(a->axis));
        else json_object_set_new(o, "spec", ints(a->spec, a->spec_ndim));
        break;
    case ACV_OP_DROPOUT:
        json_object_set_new(o, "p", json_real(a->p));
        break;
    default:
        break;
    }
    return o;
}

char *acv_graph_to_json(const acv_graph *g)
{
    if (g->status) { /* a builder call failed: the graph is not the one the caller meant */
        acv_error(g->status, "the graph has an error: %s", g->errmsg);
        return NULL;
    }
    if (g->output < 0) {
        acv_error(ACV_EINVAL, "graph has no output node");
        return NULL;
    }
    char *keep = calloc((size_t)g->n, 1);
    int *remap = malloc((size_t)g->n * sizeof(int));
    if (!keep || !remap) {
        free(keep);
        free(remap);
        return NULL;
    }
    keep[g->output] = 1;
    for (int i = g->output; i >= 0; i--)
        if (keep[i])
            for (int k = 0; k < g->nodes[i].n_in; k++) keep[g->nodes[i].in[k]] = 1;
    json_t *nodes = json_array();
    int m = 0;
    for (int i = 0; i < g->n; i++) {
        remap[i] = -1;
        if (!keep[i]) continue;
        const acv_node *nd = &g->nodes[i];
        remap[i] = m++;
        json_t *o = json_object();
        json_object_set_new(o, "op", json_string(acv__op_name(nd->op)));
        json_object_set_new(o, "name", json_string(nd->name));
        if (nd->op == ACV_OP_INPUT || nd->op == ACV_OP_PARAM) json_object_set_new(o, "shape", ints(nd->shape.d, nd->shape.ndim));
        if (nd->op == ACV_OP_PARAM) {
            json_object_set_new(o, "trainable", json_boolean(nd->trainable));
            json_object_set_new(o, "init", json_string(INIT_NAMES[nd->init]));
        }
        if (nd->n_in) {
            json_t *in = json_array();
            for (int k = 0; k < nd->n_in; k++) json_array_append_new(in, json_integer(remap[nd->in[k]]));
            json_object_set_new(o, "inputs", in);
        }
        json_t *at = attrs_json(nd);
        if (json_object_size(at)) json_object_set_new(o, "attrs", at);
        else json_decref(at);
        json_array_append_new(nodes, o);
    }
    json_t *root = json_pack("{s:o, s:i}", "nodes", nodes, "output", remap[g->output]);
    char *s = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    free(keep);
    free(remap);
    return s;
}

/* Reads an int array attribute of exactly n values into out (each must fit an int: a
 * wider value is refused, never truncated). */
static int get_ints(json_t *at, const char *key, int *out, int n, int idx)
{
    json_t *a = json_object_get(at, key);
    if (!json_is_array(a) || (int)json_array_size(a) != n)
        return acv_error(ACV_EFORMAT, "graph node %d: attribute '%s' must be %d integers", idx, key, n);
    for (int i = 0; i < n; i++) {
        json_t *v = json_array_get(a, (size_t)i);
        if (!json_is_integer(v)) return acv_error(ACV_EFORMAT, "graph node %d: attribute '%s' must be integers", idx, key);
        json_int_t x = json_integer_value(v);
        if (x < INT_MIN || x > INT_MAX)
            return acv_error(ACV_EFORMAT, "graph node %d: attribute '%s' value %lld is out of range", idx, key, (long long)x);
        out[i] = (int)x;
    }
    return 0;
}

static double num(json_t *at, const char *key, double dflt)
{
    json_t *v = json_object_get(at, key);
    return json_is_number(v) ? json_number_value(v) : dflt;
}

/* A number attribute as an integer in [lo, hi] (dflt when absent or not a number, as num()
 * reads it); a number outside is refused rather than converted (out-of-range float-to-int
 * conversion is undefined, and a truncated size would pass for a small one). */
static int get_int64(json_t *at, const char *key, int64_t dflt, int64_t lo, int64_t hi, int idx, int64_t *out)
{
    json_t *v = json_object_get(at, key);
    *out = dflt;
    if (!json_is_number(v)) return 0;
    if (json_is_integer(v)) *out = json_integer_value(v);
    else if (!(fabs(json_real_value(v)) <= 9e18))
        return acv_error(ACV_EFORMAT, "graph node %d: attribute '%s' value %g is out of range", idx, key, json_real_value(v));
    else *out = (int64_t)json_real_value(v);
    if (*out < lo || *out > hi)
        return acv_error(ACV_EFORMAT, "graph node %d: attribute '%s' value %lld is out of range", idx, key, (long long)*out);
    return 0;
}

static int get_int(json_t *at, const char *key, int dflt, int idx, int *out)
{
    int64_t v;
    int rc = get_int64(at, key, dflt, INT_MIN, INT_MAX, idx, &v);
    *out = (int)v;
    return rc;
}

static int node_from_json(acv_graph *g, json_t *o, int idx, const int *ids)
{
    const char *opname = json_string_value(json_object_get(o, "op"));
    const char *name = json_string_value(json_object_get(o, "name"));
    int op = opname ? acv__op_from_name(opname) : -1;
    if (op < 0 || op >= ACV_OP_CROSS_ENTROPY)
        return acv_error(ACV_EFORMAT, "graph node %d: unknown op '%s'", idx, opname ? opname : "(missing)");
    if (!name) name = "";
    json_t *inj = json_object_get(o, "inputs");
    int n_in = json_is_array(inj) ? (int)json_array_size(inj) : 0;
    if (n_in > 1024) return acv_error(ACV_EFORMAT, "graph node %d: too many inputs", idx);
    acv_id in[n_in > 0 ? n_in : 1];
    for (int k = 0; k < n_in; k++) {
        json_t *v = json_array_get(inj, (size_t)k);
        int64_t r = json_is_integer(v) ? json_integer_value(v) : -1;
        if (r < 0 || r >= idx) return acv_error(ACV_EFORMAT, "graph node %d: input %d refers to node %lld", idx, k, (long long)r);
        in[k] = ids[r];
    }
    json_t *at = json_object_get(o, "attrs");
    acv_attrs a;
    memset(&a, 0, sizeof a);
    int rc = 0, v[4];
    if (op == ACV_OP_INPUT || op == ACV_OP_PARAM) {
        json_t *sh = json_object_get(o, "shape");
        int nd = json_is_array(sh) ? (int)json_array_size(sh) : 0;
        if (nd < 1 || nd > ACV_MAX_DIMS) return acv_error(ACV_EFORMAT, "graph node %d (%s): bad shape", idx, name);
        int64_t s[ACV_MAX_DIMS];
        for (int i = 0; i < nd; i++) {
            json_t *d = json_array_get(sh, (size_t)i);
            s[i] = json_is_integer(d) ? json_integer_value(d) : -1;
        }
        if (op == ACV_OP_INPUT) return acv_input(g, name, nd, s);
        const char *init = json_string_value(json_object_get(o, "init"));
        acv_init iv = ACV_INIT_ZERO;
        for (int i = 0; init && i < 5; i++)
            if (!strcmp(init, INIT_NAMES[i])) iv = (acv_init)i;
        return acv_param(g, name, nd, s, iv, json_is_true(json_object_get(o, "trainable")));
    }
    switch (op) {
    case ACV_OP_CONV2D: case ACV_OP_CONVT2D:
        if ((rc = get_ints(at, "kernel", v, 2, idx))) return rc;
        a.conv.kh = v[0]; a.conv.kw = v[1];
        if ((rc = get_ints(at, "stride", v, 2, idx))) return rc;
        a.conv.stride_h = v[0]; a.conv.stride_w = v[1];
        if ((rc = get_ints(at, "pads", v, 4, idx))) return rc;
        a.conv.pad_t = v[0]; a.conv.pad_l = v[1]; a.conv.pad_b = v[2]; a.conv.pad_r = v[3];
        if ((rc = get_ints(at, "dilation", v, 2, idx))) return rc;
        a.conv.dil_h = v[0]; a.conv.dil_w = v[1];
        if ((rc = get_int(at, "groups", 1, idx, &a.conv.groups))) return rc;
        if (op == ACV_OP_CONVT2D) {
            if ((rc = get_ints(at, "output_padding", v, 2, idx))) return rc;
            a.conv.out_pad_h = v[0]; a.conv.out_pad_w = v[1];
        }
        if (n_in < 2 || n_in > 3) return acv_error(ACV_EFORMAT, "graph node %d: conv needs 2 or 3 inputs", idx);
        break;
    case ACV_OP_BATCHNORM:
        a.eps = (float)num(at, "eps", 1e-5);
        a.momentum = (float)num(at, "momentum", 0.1);
        if (n_in != 5) return acv_error(ACV_EFORMAT, "graph node %d: batchnorm needs 5 inputs", idx);
        break;
    case ACV_OP_LAYERNORM:
        if ((rc = get_int(at, "axis", -1, idx, &a.axis))) return rc;
        a.eps = (float)num(at, "eps", 1e-5);
        if (n_in != 3) return acv_error(ACV_EFORMAT, "graph node %d: layernorm needs 3 inputs", idx);
        break;
    case ACV_OP_ACT:
        if ((rc = get_int(at, "kind", -1, idx, &a.act))) return rc;
        a.alpha = (float)num(at, "alpha", 0);
        if (a.act < 0 || a.act >= ACV_ACT_COUNT) return acv_error(ACV_EFORMAT, "graph node %d: unknown activation", idx);
        break;
    case ACV_OP_MAXPOOL: case ACV_OP_AVGPOOL:
        if ((rc = get_ints(at, "kernel", v, 2, idx))) return rc;
        a.pool.kh = v[0]; a.pool.kw = v[1];
        if ((rc = get_ints(at, "stride", v, 2, idx))) return rc;
        a.pool.stride_h = v[0]; a.pool.stride_w = v[1];
        if ((rc = get_ints(at, "pads", v, 4, idx))) return rc;
        a.pool.pad_t = v[0]; a.pool.pad_l = v[1]; a.pool.pad_b = v[2]; a.pool.pad_r = v[3];
        if ((rc = get_ints(at, "dilation", v, 2, idx))) return rc;
        a.pool.dil_h = v[0]; a.pool.dil_w = v[1];
        a.pool.ceil_mode = json_is_true(json_object_get(at, "ceil_mode"));
        a.pool.count_include_pad = json_is_true(json_object_get(at, "count_include_pad"));
        break;
    case ACV_OP_UPSAMPLE:
        if ((rc = get_ints(at, "size", v, 2, idx))) return rc;
        a.oh = v[0]; a.ow = v[1];
        a.bilinear = json_is_true(json_object_get(at, "bilinear"));
        a.align_corners = json_is_true(json_object_get(at, "align_corners"));
        break;
    case ACV_OP_BINARY:
        if ((rc = get_int(at, "op", -1, idx, &a.binop))) return rc;
        if (a.binop < ACV_BIN_ADD || a.binop > ACV_BIN_DIV) return acv_error(ACV_EFORMAT, "graph node %d: unknown binary op", idx);
        break;
    case ACV_OP_CONCAT: case ACV_OP_SOFTMAX:
        if ((rc = get_int(at, "axis", 1, idx, &a.axis))) return rc;
        a.log = json_is_true(json_object_get(at, "log"));
        break;
    case ACV_OP_SLICE:
        if ((rc = get_int(at, "axis", 0, idx, &a.axis)) ||
            (rc = get_int64(at, "start", 0, INT64_MIN, INT64_MAX, idx, &a.start)) ||
            (rc = get_int64(at, "end", 0, INT64_MIN, INT64_MAX, idx, &a.end)) ||
            (rc = get_int64(at, "step", 1, INT64_MIN, INT64_MAX, idx, &a.step)))
            return rc;
        break;
    case ACV_OP_RESHAPE:
        if (json_object_get(at, "flatten_axis")) {
            if ((rc = get_int(at, "flatten_axis", 1, idx, &a.axis))) return rc;
            a.spec_ndim = 2;
            if (a.axis < 1) return acv_error(ACV_EFORMAT, "graph node %d: bad flatten axis", idx);
        } else {
            json_t *sp = json_object_get(at, "spec");
            a.spec_ndim = json_is_array(sp) ? (int)json_array_size(sp) : 0;
            if (a.spec_ndim < 1 || a.spec_ndim > ACV_MAX_DIMS) return acv_error(ACV_EFORMAT, "graph node %d: bad reshape", idx);
            for (int i = 0; i < a.spec_ndim; i++) a.spec[i] = json_integer_value(json_array_get(sp, (size_t)i));
        }
        break;
    case ACV_OP_DROPOUT:
        a.p = (float)num(at, "p", 0);
        if (!(a.p >= 0 && a.p < 1)) return acv_error(ACV_EFORMAT, "graph node %d: dropout p=%g not in [0, 1)", idx, a.p);
        break;
    default:
        break;
    }
    int need = (op == ACV_OP_BINARY || op == ACV_OP_LINEAR) ? 2 : 1;
    if (n_in < need || (op != ACV_OP_CONCAT && op != ACV_OP_CONV2D && op != ACV_OP_CONVT2D &&
                        op != ACV_OP_BATCHNORM && op != ACV_OP_LAYERNORM && op != ACV_OP_LINEAR && n_in != need) ||
        (op == ACV_OP_LINEAR && n_in > 3))
        return acv_error(ACV_EFORMAT, "graph node %d (%s): wrong number of inputs (%d)", idx, opname, n_in);
    return acv__graph_add(g, (acv_op)op, name, n_in, in, &a);
}

/* See graph.h. Node names are prefixed and parameters frozen in the parsed copy, then each
 * node is added as acv_graph_from_json adds it. */
int acv_graph_append_json(acv_graph *g, const char *text, acv_id input, const char *prefix, bool frozen,
                          const unsigned char *keep, int *ids, int n_ids)
{
    if (!g || !text || !ids) return acv_error(ACV_EINVAL, "acv_graph_append_json: missing argument");
    if (g->status) return g->status;
    json_error_t jerr;
    json_t *root = json_loads(text, 0, &jerr);
    if (!root) return acv_error(ACV_EFORMAT, "graph JSON: %s at line %d", jerr.text, jerr.line);
    json_t *nodes = json_object_get(root, "nodes");
    int n = json_is_array(nodes) ? (int)json_array_size(nodes) : -1, rc = 0, added = 0, inputs = 0;
    if (n < 0) rc = acv_error(ACV_EFORMAT, "graph JSON: needs \"nodes\" (an array)");
    else if (n > n_ids) rc = acv_error(ACV_EINVAL, "graph JSON: %d nodes, room for %d", n, n_ids);
    for (int i = 0; i < n_ids; i++) ids[i] = -1;
    for (int i = 0; !rc && i < n; i++) {
        json_t *o = json_array_get(nodes, (size_t)i);
        const char *op = json_string_value(json_object_get(o, "op"));
        ids[i] = -1;
        if (op && !strcmp(op, "input")) {
            if (inputs++) rc = acv_error(ACV_EUNSUPPORTED, "graph JSON: more than one input (node %d)", i);
            ids[i] = input;
            continue;
        }
        if (keep && !keep[i]) continue;
        const char *name = json_string_value(json_object_get(o, "name"));
        size_t len = strlen(prefix ? prefix : "") + strlen(name ? name : "") + 1;
        char *full = malloc(len);
        if (!full) {
            rc = acv_error(ACV_ENOMEM, "out of memory");
            break;
        }
        snprintf(full, len, "%s%s", prefix ? prefix : "", name ? name : "");
        json_object_set_new(o, "name", json_string(full));
        free(full);
        if (frozen && op && !strcmp(op, "param")) json_object_set_new(o, "trainable", json_false());
        int id = node_from_json(g, o, i, ids);
        if (id < 0) {
            rc = keep ? acv_error_prefix(id, "graph JSON: ") : 0; /* without keep: stop at the first failure */
            break;
        }
        ids[i] = id;
        added++;
    }
    json_decref(root);
    return rc ? rc : added;
}

int acv_graph_from_json(const char *text, acv_graph **out)
{
    *out = NULL;
    json_error_t jerr;
    json_t *root = json_loads(text, 0, &jerr);
    if (!root) return acv_error(ACV_EFORMAT, "graph JSON: %s at line %d", jerr.text, jerr.line);
    json_t *nodes = json_object_get(root, "nodes");
    json_t *outj = json_object_get(root, "output");
    if (!json_is_array(nodes) || !json_is_integer(outj)) {
        json_decref(root);
        return acv_error(ACV_EFORMAT, "graph JSON: needs \"nodes\" (array) and \"output\" (integer)");
    }
    int n = (int)json_array_size(nodes);
    int64_t outi = json_integer_value(outj);
    if (outi < 0 || outi >= n) {
        json_decref(root);
        return acv_error(ACV_EFORMAT, "graph JSON: output %lld is not a node", (long long)outi);
    }
    acv_graph *g = acv_graph_new();
    int *ids = malloc((size_t)(n ? n : 1) * sizeof(int));
    int rc = (!g || !ids) ? acv_error(ACV_ENOMEM, "out of memory") : 0;
    for (int i = 0; i < n && !rc; i++) {
        int id = node_from_json(g, json_array_get(nodes, (size_t)i), i, ids);
        if (id < 0) rc = acv_error_prefix(id, "graph JSON: ");
        else ids[i] = id;
    }
    if (!rc) {
        g->output = ids[outi];
        rc = acv__graph_place_params(g);
    }
    free(ids);
    json_decref(root);
    if (rc) {
        acv_graph_free(g);
        return rc;
    }
    *out = g;
    return 0;
}
