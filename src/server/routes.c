/* The route table, assembled in one place: every resource's registration function, in the
 * order its routes appear in the OpenAPI document. */
#include "server/api.h"

int acv_routes_build(acv_router *r, const acv_server_config *cfg)
{
    int (*const RESOURCES[])(acv_router *, const acv_server_config *) = {
        acv_api_system, acv_api_auth,   acv_api_users,  acv_api_projects, acv_api_labels,
        acv_api_images, acv_api_annotations, acv_api_jobs, acv_api_models, acv_api_evaluations,
        acv_api_deployments, acv_api_audit,
    };
    for (size_t i = 0; i < sizeof RESOURCES / sizeof RESOURCES[0]; i++) {
        int rc = RESOURCES[i](r, cfg);
        if (rc) return rc;
    }
    return 0;
}
