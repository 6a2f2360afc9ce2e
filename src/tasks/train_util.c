/* Shared trainer pieces (see train_util.h). */
#include "tasks/train_util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autocv/error.h"
#include "nn/safetensors.h"

void acv_train_emit(acv_train_out *o, json_t *ev)
{
    if (o->json) {
        char *s = json_dumps(ev, JSON_COMPACT | JSON_REAL_PRECISION(7));
        if (s) {
            fprintf(o->f, "%s\n", s);
            fflush(o->f);
            free(s);
        }
    }
    json_decref(ev);
}

void acv_train_say(acv_train_out *o, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (o->json) acv_train_emit(o, json_pack("{s:s, s:s}", "event", "log", "message", msg));
    else {
        fprintf(o->f, "%s\n", msg);
        fflush(o->f);
    }
}

int acv_train_checkpoint_save(const char *path, acv_graph *g, acv_optim *opt, acv_ema *ema, const json_t *record)
{
    int64_t np, nb;
    float *p = acv_graph_params(g, &np), *b = acv_graph_buffers(g, &nb);
    size_t no = acv_optim_state_size(opt), ne = ema ? acv_ema_state_size(ema) : 0;
    float *ob = malloc((no ? no : 1) * sizeof(float)), *eb = malloc((ne ? ne : 1) * sizeof(float));
    json_t *st = json_deep_copy(record);
    if (!ob || !eb || !st) {
        free(ob);
        free(eb);
        json_decref(st);
        return acv_error(ACV_ENOMEM, "out of memory writing the checkpoint");
    }
    acv_optim_state_get(opt, ob);
    if (ema) acv_ema_state_get(ema, eb);
    json_object_set_new(st, "optim_steps", json_integer(acv_optim_steps(opt)));
    json_object_set_new(st, "ema_updates", json_integer(ema ? acv_ema_updates(ema) : 0));
    char *sj = json_dumps(st, JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_decref(st);
    const char *names[4] = {"params", "buffers", "optim", "ema"};
    acv_shape shapes[4] = {{1, {np}}, {1, {nb}}, {1, {(int64_t)no}}, {1, {(int64_t)ne}}};
    const float *datas[4] = {p, b, ob, eb};
    const char *meta[] = {"autocv_checkpoint", sj ? sj : "{}", NULL};
    int rc = acv_safetensors_save(path, 4, names, shapes, datas, meta);
    free(sj);
    free(ob);
    free(eb);
    return rc;
}

static int read_flat(acv_safetensors *st, const char *name, float *dst, int64_t n, const char *path)
{
    const acv_safetensors_tensor *t = acv_safetensors_find(st, name);
    if (!t || t->numel != n)
        return acv_error(ACV_EFORMAT, "%s: '%s' does not match this model (%lld values expected)", path, name, (long long)n);
    return n ? acv_safetensors_read_f32(st, name, dst, n) : 0;
}

int acv_train_checkpoint_load(const char *path, acv_graph *g, acv_optim *opt, acv_ema *ema, json_t **record)
{
    *record = NULL;
    acv_safetensors *st;
    int rc = acv_safetensors_open(path, &st);
    if (rc) return rc == ACV_ENOTFOUND ? acv_error(rc, "%s: no checkpoint to resume from", path) : rc;
    const char *meta = acv_safetensors_meta(st, "autocv_checkpoint");
    json_error_t jerr;
    json_t *root = meta ? json_loads(meta, 0, &jerr) : NULL;
    if (!json_is_object(root)) rc = acv_error(ACV_EFORMAT, "%s: not an AutoCV checkpoint", path);
    if (!rc && g) {
        int64_t np, nb;
        float *p = acv_graph_params(g, &np), *b = acv_graph_buffers(g, &nb);
        rc = read_flat(st, "params", p, np, path);
        if (!rc) rc = read_flat(st, "buffers", b, nb, path);
        size_t no = acv_optim_state_size(opt);
        float *tmp = malloc((no ? no : 1) * sizeof(float));
        if (!rc && !tmp) rc = acv_error(ACV_ENOMEM, "out of memory");
        if (!rc) rc = read_flat(st, "optim", tmp, (int64_t)no, path);
        if (!rc) acv_optim_state_set(opt, tmp);
        free(tmp);
        if (!rc) acv_optim_set_steps(opt, json_integer_value(json_object_get(root, "optim_steps")));
        if (!rc && ema) {
            size_t ne = acv_ema_state_size(ema);
            float *e = malloc((ne ? ne : 1) * sizeof(float));
            if (!e) rc = acv_error(ACV_ENOMEM, "out of memory");
            if (!rc) rc = read_flat(st, "ema", e, (int64_t)ne, path);
            if (!rc) acv_ema_state_set(ema, e);
            free(e);
            if (!rc) acv_ema_set_updates(ema, json_integer_value(json_object_get(root, "ema_updates")));
        }
    }
    acv_safetensors_close(st);
    if (rc) json_decref(root);
    else *record = root;
    return rc;
}

void acv_train_use_ema(acv_graph *g, const acv_ema *ema, float *swap_p, float *swap_b, bool on)
{
    if (!ema) return;
    int64_t np, nb;
    float *p = acv_graph_params(g, &np), *b = acv_graph_buffers(g, &nb);
    if (on) {
        memcpy(swap_p, acv_ema_params(ema), (size_t)np * sizeof(float));
        memcpy(swap_b, acv_ema_buffers(ema), (size_t)nb * sizeof(float));
    }
    for (int64_t i = 0; i < np; i++) { float t = p[i]; p[i] = swap_p[i]; swap_p[i] = t; }
    for (int64_t i = 0; i < nb; i++) { float t = b[i]; b[i] = swap_b[i]; swap_b[i] = t; }
}

int acv_classes_map_by_name(const char *where, const char *const *ds_names, int ds_k, const char *const *model_names,
                            int model_k, int **map)
{
    *map = NULL;
    int *m = malloc((size_t)(ds_k > 0 ? ds_k : 1) * sizeof *m);
    if (!m) return acv_error(ACV_ENOMEM, "out of memory matching classes");
    for (int c = 0; c < ds_k; c++) {
        m[c] = -1;
        for (int j = 0; j < model_k && m[c] < 0; j++)
            if (!strcmp(ds_names[c], model_names[j])) m[c] = j;
        if (m[c] < 0) {
            char list[256] = "";
            size_t len = 0;
            for (int j = 0; j < model_k; j++) {
                if (len + strlen(model_names[j]) + 4 + 6 >= sizeof list) { /* ", 'name'" and room for ", ..." */
                    strcpy(list + len, len ? ", ..." : "...");
                    break;
                }
                len += (size_t)snprintf(list + len, sizeof list - len, "%s'%s'", j ? ", " : "", model_names[j]);
            }
            free(m);
            return acv_error(ACV_EINVAL, "%s: class '%s' is not one of the model's %d classes (%s)", where, ds_names[c],
                             model_k, list);
        }
    }
    *map = m;
    return 0;
}
