/* Deployments: model versions loaded into the server's inference pool, answering predict
 * requests concurrently, switched between versions without dropping a request.
 *
 * A deployment (a row of the deployments table, schema.c migration 4) serves one model
 * version of the repository under a unique name. In memory it holds the loaded version:
 * `threads` replicas of the model, each loaded from the version's directory and compiled for
 * inference at batch 1. A request leases the deployment's current version (a reference
 * count), then takes an idle replica (waiting on a condition variable while all are busy),
 * runs on it alone, and gives both back. A version switch loads the new version fully (and
 * runs each replica once) before it swaps the pointer under the pool's lock: requests that
 * hold the old version finish on it, new ones get the new one, and the old version is freed
 * when its last request ends. Deleting a deployment works the same way.
 *
 * Compute threads: every replica's kernels use the process-wide count (acv_set_threads; all
 * cores by default), so replicas add concurrency, not cores.
 *
 * Errors follow the platform's codes: ACV_ENOTFOUND (no such deployment, model or version),
 * ACV_EEXIST (the name is taken), ACV_EINVAL / ACV_EUNSUPPORTED (a model that cannot be
 * loaded or served; bad fields), ACV_EFORMAT (missing fields, an image that cannot be
 * decoded, a malformed tensor), ACV_ECANCELED (a deployment whose model failed to load at
 * startup: it answers nothing until a PATCH loads a version). */
#ifndef ACV_SERVER_DEPLOY_H
#define ACV_SERVER_DEPLOY_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "platform/auth.h"
#include "platform/db.h"
#include "server/server.h"

/* Creates the pool and loads every deployment recorded in the database (one that cannot be
 * loaded is marked with status "failed" and its reason, and the server still starts). */
int acv_deploy_pool_new(acv_server *s, acv_deploy_pool **out);
/* Unloads everything (waiting for running predictions). */
void acv_deploy_pool_free(acv_deploy_pool *p);

/* ---- the deployments resource ------------------------------------------------------------ */
/* A deployment as the API shows it: {"id","name","model","version","model_version_id","task",
 * "threads","status":"ready"|"failed","error","classes","input":{"channels","height","width"}
 * (null when not loaded),"created_by","created_at","updated_at","stats":{"requests","errors",
 * "mean_ms","in_flight"}}. Stats count predict and infer calls since the server started;
 * mean_ms is the mean server time of the successful ones. */

/* Creates a deployment from {"model":NAME,"version":N (default: the latest),"name":S (default:
 * NAME; 1..100 of [A-Za-z0-9._-], unique),"threads":N (1..cores, default 1)}: loads the version
 * into the pool, then records it. *out: the deployment (new reference). */
int acv_deploy_create(acv_deploy_pool *p, acv_dbconn *c, const acv_principal *who, const json_t *body, json_t **out);
/* Deployments by id, a page. */
int acv_deploy_list(acv_deploy_pool *p, acv_dbconn *c, int limit, int offset, json_t **items, int64_t *total);
int acv_deploy_get(acv_deploy_pool *p, acv_dbconn *c, int64_t id, json_t **out);
/* {"version":N,"threads":N} (either or both): loads that version of the same model with that
 * many replicas, then swaps it in without dropping a request (see above). Rolling back is
 * the same call with the older version; it also reloads a deployment that failed. */
int acv_deploy_update(acv_deploy_pool *p, acv_dbconn *c, const acv_principal *who, int64_t id, const json_t *body,
                      json_t **out);
/* Removes the deployment; its model is freed when the requests running on it end. */
int acv_deploy_delete(acv_deploy_pool *p, acv_dbconn *c, const acv_principal *who, int64_t id);

/* ---- inference ----------------------------------------------------------------------------- */
/* Classifies one encoded image (JPEG, PNG or BMP; EXIF orientation applied) with deployment
 * id: {"deployment","deployment_id","model","version","task":"cls","predictions":[{"label",
 * "index","score"}, ... topk, best first],"label","score","image":{"width","height"},
 * "time_ms":{"decode","preprocess","inference","total"}} where total runs from t_start
 * (acv_now() when the request's handler began) to the end. topk is clamped to the class count. */
int acv_deploy_predict(acv_deploy_pool *p, int64_t id, const uint8_t *img, size_t len, int topk, double t_start,
                       json_t **out);

/* KServe v2 (open inference protocol), by deployment name; version NULL means the deployed
 * one, otherwise it must name the deployed version (ACV_ENOTFOUND naming it). */
/* {"name","versions":["N"],"platform":"autocv","inputs":[{"name":"input","datatype":"FP32",
 * "shape":[-1,C,H,W]}],"outputs":[{"name":"probabilities",...,"shape":[-1,K]},{"name":"logits",
 * ...}]}. */
int acv_deploy_v2_metadata(acv_deploy_pool *p, const char *name, const char *version, json_t **out);
/* *ready: the deployment has its model loaded (ACV_ENOTFOUND when there is no such one). */
int acv_deploy_v2_ready(acv_deploy_pool *p, const char *name, const char *version, bool *ready);
/* An inference request {"id"?,"inputs":[{"name":"input","shape":[N,C,H,W],"datatype":"FP32",
 * "data":[N*C*H*W numbers, flat or nested]}],"outputs"?:[{"name":"probabilities"|"logits"}]}
 * where the input is already preprocessed (normalized, at the model's input size): runs each
 * of the N samples and answers {"model_name","model_version","id"?,"outputs":[{"name",
 * "datatype":"FP32","shape":[N,K],"data":[...]}]} with the requested outputs (both when the
 * request names none). A malformed request is ACV_EFORMAT naming the field. */
int acv_deploy_v2_infer(acv_deploy_pool *p, const char *name, const char *version, const json_t *req, json_t **out);

#endif
