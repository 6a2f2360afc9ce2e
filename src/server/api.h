/* The API's resources: each api_*.c file holds the handlers of one resource and registers
 * its routes (and OpenAPI schemas) through one function below; routes.c calls them all.
 *
 * Adding a resource: write src/server/api_<thing>.c with static handlers, a static
 * `acv_route ROUTES[]` and `int acv_api_<thing>(acv_router *r, const acv_server_config *cfg)`;
 * declare that function here; call it from acv_routes_build in routes.c. Data logic belongs in
 * src/platform/<thing>.{h,c}; new tables in a new migration in src/platform/schema.c. */
#ifndef ACV_SERVER_API_H
#define ACV_SERVER_API_H

#include "server/router.h"
#include "server/server.h"

int acv_api_system(acv_router *r, const acv_server_config *cfg);   /* healthz, metrics, openapi */
int acv_api_auth(acv_router *r, const acv_server_config *cfg);     /* login, logout, me, tokens */
int acv_api_users(acv_router *r, const acv_server_config *cfg);
int acv_api_projects(acv_router *r, const acv_server_config *cfg); /* projects and members */
int acv_api_labels(acv_router *r, const acv_server_config *cfg);
int acv_api_audit(acv_router *r, const acv_server_config *cfg);
int acv_api_images(acv_router *r, const acv_server_config *cfg);      /* images, files, thumbnails, imports */
int acv_api_annotations(acv_router *r, const acv_server_config *cfg); /* sets, items, tasks, review, versions */
int acv_api_jobs(acv_router *r, const acv_server_config *cfg);        /* algorithms, training jobs, job events */
int acv_api_models(acv_router *r, const acv_server_config *cfg);      /* model repository */
int acv_api_evaluations(acv_router *r, const acv_server_config *cfg); /* evaluations, comparisons */
int acv_api_deployments(acv_router *r, const acv_server_config *cfg); /* deployments, predict, KServe v2 */

/* Builds the whole route table: the one place that lists every resource. */
int acv_routes_build(acv_router *r, const acv_server_config *cfg);

#endif
