/* Model directory read/write (see autocv/model.h). */
#include "autocv/model.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "autocv/error.h"
#include "autocv/version.h"
#include "base/file.h"
#include "nn/safetensors.h"

void acv_model_free(acv_model *m)
{
    if (!m) return;
    acv_graph_free(m->graph);
    for (int i = 0; i < m->n_classes; i++) free(m->classes ? m->classes[i] : NULL);
    free(m->classes);
    free(m->provenance_json);
    free(m->metrics_json);
    free(m->score_thr);
    free(m);
}

int acv_weights_save(acv_graph *g, const char *path)
{
    int n = acv_graph_param_count(g);
    const char **names = malloc((size_t)(n ? n : 1) * sizeof *names);
    acv_shape *shapes = malloc((size_t)(n ? n : 1) * sizeof *shapes);
    const float **datas = malloc((size_t)(n ? n : 1) * sizeof *datas);
    int rc = (!names || !shapes || !datas) ? acv_error(ACV_ENOMEM, "out of memory") : 0;
    for (int i = 0; i < n && !rc; i++) {
        acv_param_info pi;
        rc = acv_graph_param(g, i, &pi);
        if (rc) break;
        names[i] = pi.name;
        shapes[i] = pi.shape;
        datas[i] = pi.data;
    }
    static const char *const meta[] = {"format", "autocv", NULL};
    if (!rc) rc = acv_safetensors_save(path, n, names, shapes, datas, meta);
    free(names);
    free(shapes);
    free(datas);
    return rc;
}

int acv_weights_load(acv_graph *g, const char *path)
{
    acv_safetensors *st;
    int rc = acv_safetensors_open(path, &st);
    if (rc) return rc;
    int n = acv_graph_param_count(g);
    for (int i = 0; i < n && !rc; i++) {
        acv_param_info pi;
        rc = acv_graph_param(g, i, &pi);
        if (rc) break;
        const acv_safetensors_tensor *t = acv_safetensors_find(st, pi.name);
        if (!t) {
            rc = acv_error(ACV_EFORMAT, "%s: tensor '%s' is missing", path, pi.name);
            break;
        }
        int64_t want = acv_shape_numel(&pi.shape);
        bool same = t->shape.ndim == pi.shape.ndim;
        for (int k = 0; same && k < pi.shape.ndim; k++) same = t->shape.d[k] == pi.shape.d[k];
        if (!same) { /* exact shape: a transposed (K, C) for (C, K) must not load silently */
            char a[96], b[96];
            rc = acv_error(ACV_ESHAPE, "%s: tensor '%s' has shape %s, the model needs %s", path, pi.name,
                           acv_shape_str(&t->shape, a, sizeof a), acv_shape_str(&pi.shape, b, sizeof b));
            break;
        }
        rc = acv_safetensors_read_f32(st, pi.name, pi.data, want);
    }
    acv_safetensors_close(st);
    return rc;
}

static json_t *floats_json(const float *v, int n)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(a, json_real(v[i]));
    return a;
}

int acv_model_save(const acv_model *m, const char *dir, const char *const *extra_files)
{
    char *graph = acv_graph_to_json(m->graph);
    if (!graph) return acv_error_prefix(ACV_EINVAL, "saving model: ");
    json_error_t jerr;
    json_t *gj = json_loads(graph, 0, &jerr);
    free(graph);
    if (!gj) return acv_error(ACV_EINVAL, "saving model: graph JSON is invalid");
    json_t *classes = json_array();
    for (int i = 0; i < m->n_classes; i++) json_array_append_new(classes, json_string(m->classes[i]));
    json_t *root = json_object();
    json_object_set_new(root, "format_version", json_integer(AUTOCV_MODEL_FORMAT));
    json_object_set_new(root, "autocv_version", json_string(AUTOCV_VERSION));
    json_object_set_new(root, "task", json_string(m->task));
    json_object_set_new(root, "arch", json_string(m->arch));
    json_object_set_new(root, "classes", classes);
    json_object_set_new(root, "input", json_pack("{s:i, s:i, s:i}", "channels", m->in_c, "height", m->in_h,
                                                  "width", m->in_w));
    json_object_set_new(root, "normalization", json_pack("{s:o, s:o}", "mean", floats_json(m->mean, m->in_c),
                                                          "std", floats_json(m->std, m->in_c)));
    json_object_set_new(root, "preprocess", json_pack("{s:s, s:f}", "resize", m->resize[0] ? m->resize : "stretch",
                                                       "crop_frac", (double)m->crop_frac));
    if (m->score_thr) {
        json_t *th = json_array();
        for (int i = 0; i < m->n_classes; i++) json_array_append_new(th, json_real(round((double)m->score_thr[i] * 1e6) / 1e6));
        json_object_set_new(root, "postprocess", json_pack("{s:o}", "score_thresholds", th));
    }
    if (m->provenance_json) {
        json_t *p = json_loads(m->provenance_json, 0, &jerr);
        if (p) json_object_set_new(root, "provenance", p);
    }
    json_object_set_new(root, "graph", gj);
    char *text = json_dumps(root, JSON_INDENT(1));
    json_decref(root);
    if (!text) return acv_error(ACV_ENOMEM, "out of memory");

    size_t dl = strlen(dir);
    char *tmp = malloc(dl + 32);
    if (!tmp) {
        free(text);
        return acv_error(ACV_ENOMEM, "out of memory");
    }
    while (dl > 1 && dir[dl - 1] == '/') dl--;
    snprintf(tmp, dl + 32, "%.*s.tmp-%ld", (int)dl, dir, (long)getpid());
    acv_remove_tree(tmp);
    int rc = acv_mkdirs(tmp);
    char *p = NULL;
    if (!rc) {
        p = acv_path_join(tmp, "model.json");
        rc = acv_file_write_atomic(p, text, strlen(text));
        free(p);
    }
    if (!rc) {
        p = acv_path_join(tmp, "weights.safetensors");
        rc = acv_weights_save(m->graph, p);
        free(p);
    }
    if (!rc && m->metrics_json) {
        p = acv_path_join(tmp, "metrics.json");
        rc = acv_file_write_atomic(p, m->metrics_json, strlen(m->metrics_json));
        free(p);
    }
    for (int i = 0; !rc && extra_files && extra_files[i]; i += 2) {
        if (!acv_path_exists(extra_files[i + 1])) continue;
        p = acv_path_join(tmp, extra_files[i]);
        /* a hard link: the file stays where it was until the directory is replaced */
        if (link(extra_files[i + 1], p) != 0) rc = acv_error(ACV_EIO, "%s: cannot link into the model", extra_files[i + 1]);
        free(p);
    }
    if (!rc) rc = acv_dir_replace(tmp, dir);
    if (rc) acv_remove_tree(tmp);
    free(tmp);
    free(text);
    return rc;
}

static int read_floats(json_t *a, float *out, int n, const char *path, const char *field)
{
    if (!json_is_array(a) || (int)json_array_size(a) != n)
        return acv_error(ACV_EFORMAT, "%s: '%s' must be %d numbers", path, field, n);
    for (int i = 0; i < n; i++) {
        json_t *v = json_array_get(a, (size_t)i);
        if (!json_is_number(v)) return acv_error(ACV_EFORMAT, "%s: '%s' must be numbers", path, field);
        out[i] = (float)json_number_value(v);
    }
    return 0;
}

int acv_model_load(const char *dir, acv_model **out)
{
    *out = NULL;
    if (!acv_is_dir(dir)) return acv_error(ACV_ENOTFOUND, "%s: not a model directory (no such directory)", dir);
    char *mpath = acv_path_join(dir, "model.json");
    char *wpath = acv_path_join(dir, "weights.safetensors");
    char *metpath = acv_path_join(dir, "metrics.json");
    acv_model *m = calloc(1, sizeof *m);
    uint8_t *text = NULL;
    size_t len;
    json_t *root = NULL;
    int rc = (!mpath || !wpath || !metpath || !m) ? acv_error(ACV_ENOMEM, "out of memory") : 0;
    if (!rc) {
        rc = acv_file_read(mpath, 64u << 20, &text, &len);
        if (rc == ACV_ENOTFOUND) rc = acv_error(ACV_ENOTFOUND, "%s: not a model directory (model.json is missing)", dir);
    }
    if (!rc) {
        json_error_t jerr;
        root = json_loads((const char *)text, 0, &jerr);
        if (!root || !json_is_object(root))
            rc = acv_error(ACV_EFORMAT, "%s: invalid JSON at line %d: %s", mpath, jerr.line, jerr.text);
    }
    if (!rc) {
        json_t *fv = json_object_get(root, "format_version");
        if (!json_is_integer(fv))
            rc = acv_error(ACV_EFORMAT, "%s: 'format_version' is missing or not an integer", mpath);
        else if (json_integer_value(fv) > AUTOCV_MODEL_FORMAT)
            rc = acv_error(ACV_EUNSUPPORTED, "%s: format_version %lld is not supported (this autocv reads up to %d)",
                           mpath, (long long)json_integer_value(fv), AUTOCV_MODEL_FORMAT);
    }
    if (!rc) {
        const char *task = json_string_value(json_object_get(root, "task"));
        const char *arch = json_string_value(json_object_get(root, "arch"));
        if (!task) rc = acv_error(ACV_EFORMAT, "%s: 'task' is missing", mpath);
        else {
            snprintf(m->task, sizeof m->task, "%s", task);
            snprintf(m->arch, sizeof m->arch, "%s", arch ? arch : "");
        }
    }
    if (!rc) {
        json_t *cl = json_object_get(root, "classes");
        if (!json_is_array(cl) || json_array_size(cl) == 0 || json_array_size(cl) > 1000000)
            rc = acv_error(ACV_EFORMAT, "%s: 'classes' must be a non-empty array of names", mpath);
        else {
            int n = (int)json_array_size(cl);
            m->classes = calloc((size_t)n, sizeof(char *));
            if (!m->classes) rc = acv_error(ACV_ENOMEM, "%s: out of memory for %d class names", mpath, n);
            else m->n_classes = n; /* acv_model_free frees the names set so far */
            for (int i = 0; i < m->n_classes && !rc; i++) {
                const char *s = json_string_value(json_array_get(cl, (size_t)i));
                if (!s) rc = acv_error(ACV_EFORMAT, "%s: classes[%d] is not a string", mpath, i);
                else if (!(m->classes[i] = strdup(s)))
                    rc = acv_error(ACV_ENOMEM, "%s: out of memory reading classes[%d]", mpath, i);
            }
        }
    }
    if (!rc) {
        json_t *in = json_object_get(root, "input");
        m->in_c = (int)json_integer_value(json_object_get(in, "channels"));
        m->in_h = (int)json_integer_value(json_object_get(in, "height"));
        m->in_w = (int)json_integer_value(json_object_get(in, "width"));
        if (m->in_c < 1 || m->in_c > 4 || m->in_h < 1 || m->in_w < 1 || m->in_h > 8192 || m->in_w > 8192)
            rc = acv_error(ACV_EFORMAT, "%s: 'input' must give channels (1-4), height and width", mpath);
    }
    if (!rc) {
        json_t *nm = json_object_get(root, "normalization");
        rc = read_floats(json_object_get(nm, "mean"), m->mean, m->in_c, mpath, "normalization.mean");
        if (!rc) rc = read_floats(json_object_get(nm, "std"), m->std, m->in_c, mpath, "normalization.std");
        for (int i = 0; !rc && i < m->in_c; i++)
            if (!(m->std[i] > 0)) rc = acv_error(ACV_EFORMAT, "%s: normalization.std must be positive", mpath);
    }
    if (!rc) {
        json_t *pp = json_object_get(root, "preprocess");
        const char *rs = json_string_value(json_object_get(pp, "resize"));
        snprintf(m->resize, sizeof m->resize, "%s", rs ? rs : "stretch");
        m->crop_frac = (float)json_number_value(json_object_get(pp, "crop_frac"));
        if (strcmp(m->resize, "stretch") && strcmp(m->resize, "crop") && strcmp(m->resize, "letterbox"))
            rc = acv_error(ACV_EFORMAT, "%s: preprocess.resize must be \"stretch\", \"crop\" or \"letterbox\"", mpath);
        json_t *prov = json_object_get(root, "provenance");
        if (prov) m->provenance_json = json_dumps(prov, JSON_COMPACT);
    }
    json_t *post = rc ? NULL : json_object_get(root, "postprocess");
    json_t *sth = post ? json_object_get(post, "score_thresholds") : NULL;
    if (!rc && post && !json_is_object(post)) rc = acv_error(ACV_EFORMAT, "%s: 'postprocess' must be an object", mpath);
    if (!rc && sth) {
        if (!json_is_array(sth) || (int)json_array_size(sth) != m->n_classes)
            rc = acv_error(ACV_EFORMAT, "%s: postprocess.score_thresholds must be an array of %d numbers (one per class)",
                           mpath, m->n_classes);
        else if (!(m->score_thr = malloc((size_t)(m->n_classes ? m->n_classes : 1) * sizeof(float))))
            rc = acv_error(ACV_ENOMEM, "out of memory");
        for (int i = 0; !rc && i < m->n_classes; i++) {
            json_t *v = json_array_get(sth, (size_t)i);
            double t = json_number_value(v);
            if (!json_is_number(v) || !(t >= 0 && t <= 1))
                rc = acv_error(ACV_EFORMAT, "%s: postprocess.score_thresholds[%d] must be a number in [0, 1]", mpath, i);
            else m->score_thr[i] = (float)t;
        }
    }
    if (!rc) {
        json_t *gj = json_object_get(root, "graph");
        char *gs = gj ? json_dumps(gj, JSON_COMPACT) : NULL;
        if (!gs) rc = acv_error(ACV_EFORMAT, "%s: 'graph' is missing", mpath);
        else {
            rc = acv_graph_from_json(gs, &m->graph);
            if (rc) acv_error_prefix(rc, "%s: ", mpath);
            free(gs);
        }
    }
    if (!rc) {
        acv_id in = acv_graph_input(m->graph), o = acv_graph_output(m->graph);
        const acv_shape *is = acv_graph_shape(m->graph, in), *os = acv_graph_shape(m->graph, o);
        if (in < 0 || is->ndim != 4 || is->d[1] != m->in_c || is->d[2] != m->in_h || is->d[3] != m->in_w)
            rc = acv_error(ACV_EFORMAT, "%s: the graph's input does not match 'input'", mpath);
        else if (!strcmp(m->task, "cls") && (os->ndim != 2 || os->d[1] != m->n_classes))
            rc = acv_error(ACV_EFORMAT, "%s: the graph outputs %lld values, but %d classes are listed", mpath,
                           (long long)(os->ndim == 2 ? os->d[1] : -1), m->n_classes);
        else if (!strcmp(m->task, "det") && (os->ndim != 3 || os->d[1] <= m->n_classes))
            rc = acv_error(ACV_EFORMAT, "%s: the graph's output is not a detector's for %d classes", mpath, m->n_classes);
    }
    if (!rc) rc = acv_weights_load(m->graph, wpath);
    if (!rc && acv_path_exists(metpath)) {
        uint8_t *mt = NULL;
        size_t ml;
        if (acv_file_read(metpath, 64u << 20, &mt, &ml) == 0) m->metrics_json = (char *)mt;
    }
    json_decref(root);
    free(text);
    free(mpath);
    free(wpath);
    free(metpath);
    if (rc) {
        acv_model_free(m);
        return rc;
    }
    *out = m;
    return 0;
}
