/* Route table and path matching (see router.h). */
#include "server/router.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autocv/error.h"

#define MAX_SEGS 32

typedef struct entry {
    acv_route route;
    int nseg;
    char *seg[MAX_SEGS];   /* literal text, or the parameter name */
    bool param[MAX_SEGS];
    bool integer[MAX_SEGS];
} entry;

typedef struct schema {
    char *name, *json;
} schema;

struct acv_router {
    entry *e;
    int n, cap;
    schema *s;
    int ns, caps;
};

int acv_router_new(acv_router **out)
{
    *out = calloc(1, sizeof **out);
    return *out ? 0 : acv_error(ACV_ENOMEM, "out of memory");
}

void acv_router_free(acv_router *r)
{
    if (!r) return;
    for (int i = 0; i < r->n; i++)
        for (int k = 0; k < r->e[i].nseg; k++) free(r->e[i].seg[k]);
    for (int i = 0; i < r->ns; i++) {
        free(r->s[i].name);
        free(r->s[i].json);
    }
    free(r->e);
    free(r->s);
    free(r);
}

int acv_router_count(const acv_router *r) { return r->n; }
const acv_route *acv_router_at(const acv_router *r, int i) { return i >= 0 && i < r->n ? &r->e[i].route : NULL; }
int acv_router_nschemas(const acv_router *r) { return r->ns; }
const char *acv_router_schema_name(const acv_router *r, int i) { return i >= 0 && i < r->ns ? r->s[i].name : NULL; }

const char *acv_router_schema(const acv_router *r, const char *name)
{
    for (int i = 0; i < r->ns; i++)
        if (!strcmp(r->s[i].name, name)) return r->s[i].json;
    return NULL;
}

static bool int_param(const char *name)
{
    size_t n = strlen(name);
    return !strcmp(name, "id") || (n > 3 && !strcmp(name + n - 3, "_id"));
}

static int parse_pattern(const char *pattern, entry *e)
{
    if (pattern[0] != '/') return acv_error(ACV_EINVAL, "route pattern '%s' must start with '/'", pattern);
    const char *p = pattern + 1;
    e->nseg = 0;
    while (*p) {
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == 0) return acv_error(ACV_EINVAL, "route pattern '%s' has an empty segment", pattern);
        if (e->nseg == MAX_SEGS) return acv_error(ACV_EINVAL, "route pattern '%s' is too deep", pattern);
        int k = e->nseg;
        if (p[0] == '{') {
            if (p[len - 1] != '}' || len < 3) return acv_error(ACV_EINVAL, "route pattern '%s': bad parameter", pattern);
            e->seg[k] = strndup(p + 1, len - 2);
            e->param[k] = true;
        } else {
            if (memchr(p, '{', len) || memchr(p, '}', len))
                return acv_error(ACV_EINVAL, "route pattern '%s': a parameter must be a whole segment", pattern);
            e->seg[k] = strndup(p, len);
        }
        if (!e->seg[k]) return acv_error(ACV_ENOMEM, "out of memory");
        e->integer[k] = e->param[k] && int_param(e->seg[k]);
        e->nseg++;
        p += len;
        if (*p == '/') {
            p++;
            if (!*p) return acv_error(ACV_EINVAL, "route pattern '%s' ends with '/'", pattern);
        }
    }
    int np = 0;
    for (int k = 0; k < e->nseg; k++) np += e->param[k];
    if (np > ACV_ROUTE_MAX_PARAMS) return acv_error(ACV_EINVAL, "route pattern '%s' has too many parameters", pattern);
    return 0;
}

static bool same_shape(const entry *a, const entry *b)
{
    if (a->nseg != b->nseg) return false;
    for (int k = 0; k < a->nseg; k++) {
        if (a->param[k] != b->param[k]) return false;
        if (!a->param[k] && strcmp(a->seg[k], b->seg[k])) return false;
    }
    return true;
}

static int check_schema(const char *s, const char *pattern)
{
    if (!s || s[0] == '#') return 0;
    json_error_t err;
    json_t *j = json_loads(s, 0, &err);
    if (!j) return acv_error(ACV_EINVAL, "route %s: schema is not valid JSON: %s", pattern, err.text);
    json_decref(j);
    return 0;
}

int acv_router_add(acv_router *r, const acv_route *routes, int n)
{
    for (int i = 0; i < n; i++) {
        const acv_route *rt = &routes[i];
        if (!rt->method || !rt->pattern || !rt->handler || !rt->summary || !rt->tag)
            return acv_error(ACV_EINVAL, "route %d (%s): method, pattern, handler, tag and summary are required", i,
                             rt->pattern ? rt->pattern : "?");
        if (r->n == r->cap) {
            int nc = r->cap ? r->cap * 2 : 32;
            entry *ne = realloc(r->e, (size_t)nc * sizeof *ne);
            if (!ne) return acv_error(ACV_ENOMEM, "out of memory");
            r->e = ne;
            r->cap = nc;
        }
        entry *e = &r->e[r->n];
        memset(e, 0, sizeof *e);
        e->route = *rt;
        int rc = parse_pattern(rt->pattern, e);
        if (!rc) rc = check_schema(rt->body_schema, rt->pattern);
        if (!rc) rc = check_schema(rt->resp_schema, rt->pattern);
        for (int k = 0; !rc && k < r->n; k++)
            if (!strcmp(r->e[k].route.method, rt->method) && same_shape(&r->e[k], e))
                rc = acv_error(ACV_EEXIST, "route %s %s is registered twice (as %s)", rt->method, rt->pattern,
                               r->e[k].route.pattern);
        if (rc) {
            for (int k = 0; k < e->nseg; k++) free(e->seg[k]);
            return rc;
        }
        r->n++;
    }
    return 0;
}

int acv_router_add_schema(acv_router *r, const char *name, const char *schema_json)
{
    int rc = check_schema(schema_json, name);
    if (rc) return rc;
    if (acv_router_schema(r, name)) return acv_error(ACV_EEXIST, "schema '%s' is registered twice", name);
    if (r->ns == r->caps) {
        int nc = r->caps ? r->caps * 2 : 16;
        schema *ns = realloc(r->s, (size_t)nc * sizeof *ns);
        if (!ns) return acv_error(ACV_ENOMEM, "out of memory");
        r->s = ns;
        r->caps = nc;
    }
    r->s[r->ns].name = strdup(name);
    r->s[r->ns].json = strdup(schema_json);
    if (!r->s[r->ns].name || !r->s[r->ns].json) return acv_error(ACV_ENOMEM, "out of memory");
    r->ns++;
    return 0;
}

/* Matches path segments against e; fills m's parameters. The score prefers literals in
 * earlier segments. */
static bool match_entry(const entry *e, char segs[][256], int nseg, acv_route_match *m, uint64_t *score)
{
    if (e->nseg != nseg) return false;
    uint64_t s = 0;
    int np = 0;
    for (int k = 0; k < nseg; k++) {
        if (!e->param[k]) {
            if (strcmp(e->seg[k], segs[k])) return false;
            s |= 1ull << (63 - k);
            continue;
        }
        if (e->integer[k]) {
            size_t len = strlen(segs[k]);
            if (len == 0 || len > 18) return false;
            for (size_t i = 0; i < len; i++)
                if (!isdigit((unsigned char)segs[k][i])) return false;
            if (strtoll(segs[k], NULL, 10) <= 0) return false;
        }
        if (m) {
            m->names[np] = e->seg[k];
            memcpy(m->values[np], segs[k], sizeof m->values[np]);
        }
        np++;
    }
    if (m) m->nparams = np;
    *score = s;
    return true;
}

int acv_router_match(const acv_router *r, const char *method, const char *path, acv_route_match *m)
{
    memset(m, 0, sizeof *m);
    m->index = -1;
    if (!strcmp(method, "HEAD")) method = "GET";
    static _Thread_local char segs[MAX_SEGS][256];
    int nseg = 0;
    const char *p = path;
    if (*p != '/') return acv_error(ACV_ENOTFOUND, "no route for %s", path);
    p++;
    while (*p) {
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (nseg == MAX_SEGS || len >= sizeof segs[0] || len == 0) return acv_error(ACV_ENOTFOUND, "no route for %s", path);
        memcpy(segs[nseg], p, len);
        segs[nseg][len] = 0;
        nseg++;
        p += len;
        if (*p == '/') p++;
    }
    int best = -1, any_path = 0;
    uint64_t best_score = 0;
    for (int i = 0; i < r->n; i++) {
        uint64_t sc;
        if (!match_entry(&r->e[i], segs, nseg, NULL, &sc)) continue;
        any_path = 1;
        if (strcmp(r->e[i].route.method, method)) {
            if (!strstr(m->allow, r->e[i].route.method) && strlen(m->allow) + 10 < sizeof m->allow)
                snprintf(m->allow + strlen(m->allow), sizeof m->allow - strlen(m->allow), "%s%s",
                         m->allow[0] ? ", " : "", r->e[i].route.method);
            continue;
        }
        if (best < 0 || sc > best_score) {
            best = i;
            best_score = sc;
        }
    }
    if (best < 0) {
        if (any_path) return acv_error(ACV_EUNSUPPORTED, "%s is not allowed on %s (allowed: %s)", method, path, m->allow);
        return acv_error(ACV_ENOTFOUND, "no route for %s", path);
    }
    uint64_t sc;
    match_entry(&r->e[best], segs, nseg, m, &sc);
    m->route = &r->e[best].route;
    m->index = best;
    return 0;
}
