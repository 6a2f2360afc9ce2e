/* A YOLO data.yaml and the helpers both YOLO readers share (see yolo_yaml.h). Errors carry no
 * file or line: the parser hands the line back and each reader words the location (the
 * command line "data.yaml:2: ", the platform "data.yaml line 2: "). */
#include "data/yolo_yaml.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autocv/error.h"

const char *const acv_yolo_splits[3] = {"train", "val", "test"};

#define TO_NAMES (-1) /* a list item belongs to the names (else to split key 0..2) */

typedef struct parser {
    acv_yolo_yaml *y;
    bool utf8;
    int line;        /* the line being read (the error's, once one is found) */
    int block;       /* 2 + the item target of a block collection being read, 0: none */
    char *flow_buf;  /* a flow collection spanning lines */
    size_t flow_len;
    int flow_line, flow_to;
} parser;

static int bad(parser *p, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(parser *p, int line, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    p->line = line;
    return acv_error(ACV_EFORMAT, "%s", msg);
}

char *acv_yolo_skip_bom(char *s) { return !strncmp(s, "\xEF\xBB\xBF", 3) ? s + 3 : s; }

char *acv_yolo_scalar(char *s)
{
    while (isspace((unsigned char)*s)) s++;
    if (*s == '\'' || *s == '"') {
        char q = *s++;
        char *w = s, *r = s;
        while (*r && !(*r == q && !(q == '\'' && r[1] == '\''))) {
            if (q == '\'' && *r == '\'') r++;
            else if (q == '"' && *r == '\\' && r[1]) {
                r++;
                if (*r == 'n') *r = '\n';
                else if (*r == 't') *r = '\t';
            }
            *w++ = *r++;
        }
        *w = 0;
        return s;
    }
    if (*s == '#') *s = 0;
    char *hash = strstr(s, " #");
    if (hash) *hash = 0;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1])) s[--n] = 0;
    return s;
}

bool acv_yolo_class(const char *t, double *c)
{
    char *end;
    errno = 0;
    *c = strtod(t, &end);
    return end != t && !*end && !errno && isfinite(*c) && *c == floor(*c) && fabs(*c) < 1e9;
}

char *acv_yolo_label_path(const char *img)
{
    size_t n = strlen(img);
    char *out = malloc(n + 8);
    if (!out) return NULL;
    memcpy(out, img, n + 1);
    char *hit = NULL;
    for (char *p = out; (p = strstr(p, "images")); p++)
        if ((p == out || p[-1] == '/') && p[6] == '/') hit = p;
    if (hit) memcpy(hit, "labels", 6);
    char *slash = strrchr(out, '/'), *dot = strrchr(out, '.');
    if (dot && (!slash || dot > slash)) *dot = 0;
    strcat(out, ".txt");
    return out;
}

void acv_yolo_yaml_free(acv_yolo_yaml *y)
{
    for (int i = 0; i < y->k; i++) free(y->names[i]);
    free(y->names);
    free(y->path);
    for (int i = 0; i < 3; i++) {
        for (int j = 0; j < y->nsplit[i]; j++) free(y->split[i][j]);
        free(y->split[i]);
    }
    *y = (acv_yolo_yaml)ACV_YOLO_YAML_EMPTY;
}

/* Does s pass as UTF-8 (as jansson, which keeps the platform's names, reads it)? */
static bool utf8_ok(const char *s)
{
    json_t *j = json_string(s);
    json_decref(j);
    return j != NULL;
}

/* Sets name idx (a map entry) or appends (idx < 0). */
static int set_name(parser *p, long idx, const char *name, int line)
{
    acv_yolo_yaml *y = p->y;
    if (idx >= ACV_YOLO_MAX_CLASSES) return bad(p, line, "class index %ld is too large", idx);
    long at = idx < 0 ? y->k : idx;
    if (at >= y->cap) {
        int cap = y->cap ? y->cap : 16;
        while (cap <= at) cap *= 2;
        char **v = realloc(y->names, (size_t)cap * sizeof *v);
        if (!v) return acv_error(ACV_ENOMEM, "out of memory");
        memset(v + y->cap, 0, (size_t)(cap - y->cap) * sizeof *v);
        y->names = v;
        y->cap = cap;
    }
    if (y->names[at]) return bad(p, line, "class %ld is named twice", at);
    if (p->utf8 && !utf8_ok(name)) return bad(p, line, "a class name is not valid UTF-8");
    if (!(y->names[at] = strdup(name))) return acv_error(ACV_ENOMEM, "out of memory");
    if (at + 1 > y->k) y->k = (int)at + 1;
    return 0;
}

int acv_yolo_add_name(acv_yolo_yaml *y, const char *name)
{
    parser p = {.y = y};
    return set_name(&p, -1, name, 0);
}

static int add_split(parser *p, int to, const char *v, int line)
{
    acv_yolo_yaml *y = p->y;
    if (p->utf8 && !utf8_ok(v)) return bad(p, line, "%s is not valid UTF-8", acv_yolo_splits[to]);
    char **nv = realloc(y->split[to], (size_t)(y->nsplit[to] + 1) * sizeof *nv);
    if (!nv) return acv_error(ACV_ENOMEM, "out of memory");
    y->split[to] = nv;
    if (!(nv[y->nsplit[to]] = strdup(v))) return acv_error(ACV_ENOMEM, "out of memory");
    y->nsplit[to]++;
    return 0;
}

/* One item: a name ("name" in a list, "N: name" in a map) or a split's folder / .txt list. */
static int yaml_item(parser *p, int to, char *item, bool map, int line)
{
    if (to != TO_NAMES) {
        char *v = acv_yolo_scalar(item);
        return *v ? add_split(p, to, v, line) : 0;
    }
    long idx = -1;
    if (map) {
        char *colon = strchr(item, ':');
        char *end;
        if (!colon) return bad(p, line, "a names entry is not 'index: name'");
        *colon = 0;
        errno = 0;
        char *k = acv_yolo_scalar(item);
        idx = strtol(k, &end, 10);
        if (errno || end == k || *end || idx < 0) return bad(p, line, "names key '%.40s' is not a class index", k);
        item = colon + 1;
    }
    char *name = acv_yolo_scalar(item);
    if (!*name) return bad(p, line, "an empty class name");
    return set_name(p, idx, name, line);
}

/* Splits a flow collection body at commas outside quotes. */
static int flow(parser *p, int to, char *s, bool map, int line)
{
    char q = 0, *start = s;
    for (char *c = s;; c++) {
        if (q && *c) {
            if (q == '"' && *c == '\\' && c[1]) c++;
            else if (*c == q) q = 0;
            continue;
        }
        if (*c == '\'' || *c == '"') q = *c;
        else if (*c == ',' || !*c) {
            char end = *c;
            *c = 0;
            char *t = start;
            while (isspace((unsigned char)*t)) t++;
            if (*t) {
                int rc = yaml_item(p, to, t, map, line);
                if (rc) return rc;
            }
            if (!end) break;
            start = c + 1;
        }
    }
    return 0;
}

/* A line of a flow collection that spans lines: appended until its closing bracket. */
static int flow_more(parser *p, const char *line, size_t n)
{
    char *nb = realloc(p->flow_buf, p->flow_len + n + 2);
    if (!nb) return acv_error(ACV_ENOMEM, "out of memory");
    p->flow_buf = nb;
    nb[p->flow_len++] = ' ';
    memcpy(nb + p->flow_len, line, n + 1);
    p->flow_len += n;
    char close = nb[0] == '[' ? ']' : '}';
    char *end = strrchr(nb, close);
    if (!end) return 0;
    *end = 0;
    int rc = flow(p, p->flow_to, nb + 1, close == '}', p->flow_line);
    free(p->flow_buf);
    p->flow_buf = NULL;
    return rc;
}

/* A flow collection ("[a, b]", "{0: a}") as the value of key (its item target to). */
static int flow_value(parser *p, int to, const char *key, char *val)
{
    char close = *val == '[' ? ']' : '}';
    if (to != TO_NAMES && close == '}')
        return bad(p, p->line, "%s is a map; expected a folder, a .txt list or a list of them", key);
    char *end = strrchr(val, close);
    if (end) {
        *end = 0;
        return flow(p, to, val + 1, close == '}', p->line);
    }
    if (!(p->flow_buf = strdup(val))) return acv_error(ACV_ENOMEM, "out of memory");
    p->flow_len = strlen(p->flow_buf);
    p->flow_line = p->line;
    p->flow_to = to;
    return 0;
}

/* Is the raw (not yet cut) value YAML's null: empty, "~", "null"? */
static bool is_null(const char *raw)
{
    char tmp[16];
    while (isspace((unsigned char)*raw)) raw++;
    if (*raw == '\'' || *raw == '"') return false; /* a quoted string */
    snprintf(tmp, sizeof tmp, "%s", raw);
    char *v = acv_yolo_scalar(tmp);
    return !*v || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") || !strcmp(v, "NULL");
}

static int nc_value(parser *p, char *val)
{
    char *v = acv_yolo_scalar(val), *end;
    errno = 0;
    long nc = strtol(v, &end, 10);
    p->y->nc = nc;
    p->y->nc_line = p->line;
    if (errno || end == v || *end || nc < 0 || nc > ACV_YOLO_MAX_CLASSES)
        return bad(p, p->line, "nc '%.40s' is not a number of classes", v);
    return 0;
}

/* The item target of a key: TO_NAMES, a split 0..2, or -2 (a key that does not matter). */
static int key_target(const char *key)
{
    if (!strcmp(key, "names")) return TO_NAMES;
    if (!strcmp(key, "valid") || !strcmp(key, "validation")) return 1;
    for (int i = 0; i < 3; i++)
        if (!strcmp(key, acv_yolo_splits[i])) return i;
    return -2;
}

/* A top-level "key: value" line (t, cut up). */
static int top_key(parser *p, char *t)
{
    acv_yolo_yaml *y = p->y;
    char *colon = strchr(t, ':');
    if (!colon) return 0;
    *colon = 0;
    char *key = acv_yolo_scalar(t), *val = colon + 1;
    while (isspace((unsigned char)*val)) val++;
    if (!strcmp(key, "path")) {
        bool null = is_null(val);
        char *v = acv_yolo_scalar(val);
        if (!null && !y->path && !(y->path = strdup(v))) return acv_error(ACV_ENOMEM, "out of memory");
        return 0;
    }
    if (!strcmp(key, "nc")) return nc_value(p, val);
    int to = key_target(key);
    if (to == -2) return 0;
    if (to == TO_NAMES) y->have_names = true;
    else {
        if (y->split_line[to]) return 0; /* val and valid both given: the first */
        bool empty = !*val || *val == '#';
        if (!empty && is_null(val)) return 0; /* "test: null": no such split */
        y->split_line[to] = p->line;
        if (empty) { /* a block list follows (or nothing: not given) */
            p->block = 2 + to;
            return 0;
        }
    }
    if (*val == '[' || *val == '{') return flow_value(p, to, key, val);
    if (to != TO_NAMES) return yaml_item(p, to, val, false, p->line);
    if (*acv_yolo_scalar(val)) return bad(p, p->line, "names is neither a list nor a map");
    p->block = 2 + to;
    return 0;
}

/* One line (its line end cut). */
static int parse_line(parser *p, char *line)
{
    size_t n = strlen(line);
    if (n && line[n - 1] == '\r') line[--n] = 0;
    if (p->flow_buf) return flow_more(p, line, n);
    char *t = line;
    while (*t == ' ' || *t == '\t') t++;
    if (!*t || *t == '#') return 0;
    bool dash = *t == '-' && (t[1] == ' ' || t[1] == '\t' || !t[1]);
    if (p->block && (t != line || dash)) { /* an item of the block collection: "- x", or "N: x" under names */
        int to = p->block - 2;
        if (dash) return yaml_item(p, to, t + 1, false, p->line);
        if (to == TO_NAMES) return yaml_item(p, to, t, true, p->line);
        return bad(p, p->line, "%s: expected a list item '- folder'", acv_yolo_splits[to]);
    }
    p->block = 0;
    if (t != line) return 0; /* nested content of another key */
    return top_key(p, t);
}

/* The checks once every line is read. */
static int finish(parser *p)
{
    acv_yolo_yaml *y = p->y;
    if (p->flow_buf) return bad(p, p->flow_line, "the [...] or {...} is not closed");
    for (int i = 0; i < y->k && y->hole < 0; i++)
        if (!y->names[i]) y->hole = i;
    for (int i = 0; i < 3; i++)
        if (y->split_line[i] && !y->nsplit[i]) y->split_line[i] = 0; /* an empty list: not given */
    if (y->hole < 0 && y->have_names && y->nc >= 0 && y->nc != y->k)
        return bad(p, y->nc_line, "nc is %ld but names lists %d classes: make them agree", y->nc, y->k);
    return 0;
}

int acv_yolo_yaml_parse(char *text, bool utf8, acv_yolo_yaml *y, int *line)
{
    *y = (acv_yolo_yaml)ACV_YOLO_YAML_EMPTY;
    parser p = {.y = y, .utf8 = utf8, .flow_to = TO_NAMES};
    int rc = 0;
    for (char *l = acv_yolo_skip_bom(text), *next; !rc && l; l = next) {
        next = strchr(l, '\n');
        if (next) *next++ = 0;
        p.line++;
        rc = parse_line(&p, l);
    }
    if (!rc) rc = finish(&p);
    free(p.flow_buf);
    *line = p.line;
    if (rc) acv_yolo_yaml_free(y);
    return rc;
}
