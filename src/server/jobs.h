/* Background jobs: training, evaluation and pre-annotation, run by a scheduler as child
 * processes of the same binary (`autocv train ... --json` and friends), a configurable number
 * at a time, so that a crashed or cancelled job never takes the server down.
 *
 * A job is a row of the jobs table (schema.c, migration 4) with a work folder
 * DATA/jobs/<id>/ holding what it runs on and what it produces:
 *   data/       the dataset version materialized as the command reads it (ImageFolder for cls:
 *               data/train/<class>/<file>, data/val/..., data/test/...; files hard-linked
 *               from the blob store)
 *   model/      train: the model directory being written (with checkpoint.safetensors)
 *   log.txt     every line the child wrote (stdout JSON events and stderr), appended
 * Each step of a job is one child process; every JSON line it prints on stdout is an event
 * stored in job_events (and fanned out to live /events streams), the last one is the step's
 * result. Status: queued -> running -> succeeded | failed | cancelled, with `error` set to
 * the reason on failure.
 *
 * Restart: jobs found "running" at startup (the server was killed) are queued again; a
 * training job resumes from model/checkpoint.safetensors when there is one (attempts counts
 * the tries; after 3 the job fails with the reason). Children die with the server
 * (PR_SET_PDEATHSIG), so none outlives it. A graceful stop terminates running children and
 * queues their jobs again the same way. */
#ifndef ACV_SERVER_JOBS_H
#define ACV_SERVER_JOBS_H

#include <jansson.h>
#include <stdint.h>

#include "platform/auth.h"
#include "platform/db.h"
#include "server/server.h"

/* Opens the scheduler: recovers jobs left running by a crash (see above). */
int acv_jobs_new(acv_server *s, acv_jobs **out);
/* Starts the scheduler thread. */
int acv_jobs_start(acv_jobs *j);
/* Stops: terminates running children, re-queues their jobs, frees j. */
void acv_jobs_free(acv_jobs *j);

/* Queues a job (the caller has validated spec): kind "train" | "evaluate" | "pre_annotate";
 * spec is the kind's JSON spec (borrowed; see jobs.c). Writes the row and wakes the
 * scheduler; *id gets the job id. */
int acv_jobs_submit(acv_jobs *j, acv_dbconn *c, const acv_principal *who, int64_t project_id, const char *kind,
                    int64_t dataset_version_id, const char *algorithm, const json_t *params, const json_t *spec,
                    int64_t *id);
/* Requests cancellation: a queued job is cancelled at once, a running one when its child has
 * been terminated. ACV_ENOTFOUND, or ACV_EINVAL when the job has already finished. */
int acv_jobs_cancel(acv_jobs *j, acv_dbconn *c, const acv_principal *who, int64_t id);
/* Asks the scheduler to remove the folders of jobs whose rows are gone (deleted with their
 * project): at once for those not running, when its child has stopped for a running one. */
void acv_jobs_sweep(acv_jobs *j);
/* The job as the API shows it: {"id","project_id","kind","status","dataset_version_id",
 * "algorithm","params","result","progress","error","attempts","created_by","created_at",
 * "started_at","finished_at"}. */
int acv_jobs_get(acv_dbconn *c, int64_t id, json_t **out);
int acv_jobs_project(acv_dbconn *c, int64_t id, int64_t *project_id);
/* A project's jobs, newest first (kind, status: NULL for any). */
int acv_jobs_list(acv_dbconn *c, int64_t project_id, const char *kind, const char *status, int limit, int offset,
                  json_t **items, int64_t *total);
/* Event notification for live streams: acv_jobs_gen is the current generation (bumped on every
 * event of any job); acv_jobs_wait blocks until it moves past gen, the server stops or
 * timeout_ms passes, and returns the generation then. */
uint64_t acv_jobs_gen(acv_jobs *j);
uint64_t acv_jobs_wait(acv_jobs *j, uint64_t gen, int timeout_ms);
/* The work folder of a job (DATA/jobs/<id>, malloc'd). */
char *acv_jobs_dir(acv_jobs *j, int64_t id);

#endif
