/* Server metrics in the Prometheus text format: requests by route pattern, method and status,
 * a latency histogram per route, requests in flight, and gauges computed when scraped
 * (database and blob sizes, memory, uptime). Modules add their own gauges with
 * acv_metrics_add_gauge. Thread-safe. */
#ifndef ACV_SERVER_METRICS_H
#define ACV_SERVER_METRICS_H

#include "server/router.h"

typedef struct acv_metrics acv_metrics;

/* Counters for nroutes routes (indices of the route table) plus unmatched requests. */
int acv_metrics_new(int nroutes, acv_metrics **out);
void acv_metrics_free(acv_metrics *m);
/* One finished request: route index (-1 when no route matched), status, duration. */
void acv_metrics_observe(acv_metrics *m, int route, int status, double seconds);
void acv_metrics_inflight(acv_metrics *m, int delta);
/* A gauge read at each scrape: `name` (autocv_*), one line of help, fn(ud) its value (called
 * on the scraping thread). Add gauges before the server starts serving. */
int acv_metrics_add_gauge(acv_metrics *m, const char *name, const char *help, double (*fn)(void *ud), void *ud);
/* The whole exposition (malloc'd, caller frees); routes are named by r's patterns. */
char *acv_metrics_render(acv_metrics *m, const acv_router *r);

#endif
