/* Prometheus metrics (see metrics.h). */
#include "server/metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "autocv/error.h"

static const double BUCKETS[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define NBUCKETS ((int)(sizeof BUCKETS / sizeof BUCKETS[0]))
#define MAX_STATUSES 16

typedef struct route_stats {
    int status[MAX_STATUSES];
    uint64_t count[MAX_STATUSES];
    int nstatus;
    uint64_t bucket[NBUCKETS]; /* cumulative at render time */
    uint64_t n;
    double sum;
} route_stats;

typedef struct gauge {
    char *name, *help;
    double (*fn)(void *);
    void *ud;
} gauge;

struct acv_metrics {
    pthread_mutex_t mu;
    int nroutes;
    route_stats *rs; /* nroutes + 1 (unmatched) */
    long inflight;
    gauge *g;
    int ng;
    time_t start;
};

int acv_metrics_new(int nroutes, acv_metrics **out)
{
    acv_metrics *m = calloc(1, sizeof *m);
    if (m) m->rs = calloc((size_t)nroutes + 1, sizeof *m->rs);
    if (!m || !m->rs) {
        free(m);
        return acv_error(ACV_ENOMEM, "out of memory");
    }
    pthread_mutex_init(&m->mu, NULL);
    m->nroutes = nroutes;
    m->start = time(NULL);
    *out = m;
    return 0;
}

void acv_metrics_free(acv_metrics *m)
{
    if (!m) return;
    for (int i = 0; i < m->ng; i++) {
        free(m->g[i].name);
        free(m->g[i].help);
    }
    free(m->g);
    free(m->rs);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

void acv_metrics_observe(acv_metrics *m, int route, int status, double seconds)
{
    if (route < 0 || route >= m->nroutes) route = m->nroutes;
    pthread_mutex_lock(&m->mu);
    route_stats *s = &m->rs[route];
    int k = 0;
    while (k < s->nstatus && s->status[k] != status) k++;
    if (k == s->nstatus && k < MAX_STATUSES) s->status[s->nstatus++] = status;
    if (k < MAX_STATUSES) s->count[k]++;
    for (int b = 0; b < NBUCKETS; b++)
        if (seconds <= BUCKETS[b]) {
            s->bucket[b]++;
            break;
        }
    s->n++;
    s->sum += seconds;
    pthread_mutex_unlock(&m->mu);
}

void acv_metrics_inflight(acv_metrics *m, int delta)
{
    pthread_mutex_lock(&m->mu);
    m->inflight += delta;
    pthread_mutex_unlock(&m->mu);
}

int acv_metrics_add_gauge(acv_metrics *m, const char *name, const char *help, double (*fn)(void *ud), void *ud)
{
    pthread_mutex_lock(&m->mu);
    gauge *ng = realloc(m->g, (size_t)(m->ng + 1) * sizeof *ng);
    int rc = 0;
    if (!ng) rc = acv_error(ACV_ENOMEM, "out of memory");
    else {
        m->g = ng;
        ng[m->ng] = (gauge){strdup(name), strdup(help), fn, ud};
        m->ng++;
    }
    pthread_mutex_unlock(&m->mu);
    return rc;
}

static double rss_bytes(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    fclose(f);
    return (double)resident * (double)sysconf(_SC_PAGESIZE);
}

char *acv_metrics_render(acv_metrics *m, const acv_router *r)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return NULL;
    /* Gauges first, outside the lock: they may do I/O. */
    for (int i = 0; i < m->ng; i++) {
        double v = m->g[i].fn(m->g[i].ud);
        fprintf(f, "# HELP %s %s\n# TYPE %s gauge\n%s %.17g\n", m->g[i].name, m->g[i].help, m->g[i].name,
                m->g[i].name, v);
    }
    fprintf(f, "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
               "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %.0f\n",
            rss_bytes());
    fprintf(f, "# HELP process_start_time_seconds Start time of the process since the Unix epoch.\n"
               "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds %lld\n",
            (long long)m->start);

    pthread_mutex_lock(&m->mu);
    fprintf(f, "# HELP autocv_http_requests_in_flight Requests being served.\n"
               "# TYPE autocv_http_requests_in_flight gauge\nautocv_http_requests_in_flight %ld\n",
            m->inflight);
    fprintf(f, "# HELP autocv_http_requests_total HTTP requests by route pattern, method and status.\n"
               "# TYPE autocv_http_requests_total counter\n");
    for (int i = 0; i <= m->nroutes; i++) {
        const acv_route *rt = i < m->nroutes ? acv_router_at(r, i) : NULL;
        const route_stats *s = &m->rs[i];
        for (int k = 0; k < s->nstatus; k++)
            fprintf(f, "autocv_http_requests_total{method=\"%s\",route=\"%s\",status=\"%d\"} %llu\n",
                    rt ? rt->method : "", rt ? rt->pattern : "unmatched", s->status[k],
                    (unsigned long long)s->count[k]);
    }
    fprintf(f, "# HELP autocv_http_request_duration_seconds Time from request headers to response completion.\n"
               "# TYPE autocv_http_request_duration_seconds histogram\n");
    for (int i = 0; i <= m->nroutes; i++) {
        const route_stats *s = &m->rs[i];
        if (!s->n) continue;
        const acv_route *rt = i < m->nroutes ? acv_router_at(r, i) : NULL;
        char lbl[512];
        snprintf(lbl, sizeof lbl, "method=\"%s\",route=\"%s\"", rt ? rt->method : "", rt ? rt->pattern : "unmatched");
        uint64_t cum = 0;
        for (int b = 0; b < NBUCKETS; b++) {
            cum += s->bucket[b];
            fprintf(f, "autocv_http_request_duration_seconds_bucket{%s,le=\"%g\"} %llu\n", lbl, BUCKETS[b],
                    (unsigned long long)cum);
        }
        fprintf(f, "autocv_http_request_duration_seconds_bucket{%s,le=\"+Inf\"} %llu\n", lbl,
                (unsigned long long)s->n);
        fprintf(f, "autocv_http_request_duration_seconds_sum{%s} %.6f\n", lbl, s->sum);
        fprintf(f, "autocv_http_request_duration_seconds_count{%s} %llu\n", lbl, (unsigned long long)s->n);
    }
    pthread_mutex_unlock(&m->mu);
    if (fclose(f)) {
        free(buf);
        return NULL;
    }
    return buf;
}
