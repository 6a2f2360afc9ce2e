/* What each kind of job does, for the scheduler (jobs.c). A kind prepares the steps of a job
 * (one child process each) and turns their results into the job's result. */
#ifndef ACV_SERVER_JOBS_INTERNAL_H
#define ACV_SERVER_JOBS_INTERNAL_H

#include <jansson.h>

#include "server/jobs.h"

typedef struct acv__job_kind {
    const char *name;
    /* Builds the job's steps: a JSON array of {"name":S,"argv":[S...]} (argv without the
     * program: argv[0] is the subcommand, "train"). job is the row as acv_jobs_get shows it
     * plus "spec" and "dir" (absolute work folder); resuming tells a retry after a restart. */
    int (*prepare)(acv_jobs *j, acv_dbconn *c, const json_t *job, bool resuming, json_t **steps);
    /* After every step succeeded: results is {step name: the step's last JSON line, plus
     * "peak_rss_mb" of the child}; *result gets the job's result (new reference). An error
     * fails the job with its message. */
    int (*finish)(acv_jobs *j, acv_dbconn *c, const json_t *job, const json_t *results, json_t **result);
    /* Optional: the job ended failed or cancelled (status) with error. */
    void (*ended)(acv_jobs *j, acv_dbconn *c, const json_t *job, const char *status, const char *error);
} acv__job_kind;

extern const acv__job_kind acv__job_train;
extern const acv__job_kind acv__job_evaluate;
extern const acv__job_kind acv__job_pre_annotate;

acv_server *acv__jobs_server(acv_jobs *j);
/* Compute threads for a child ("0": all cores). */
int acv__jobs_threads(acv_jobs *j);
/* Appends an event to job id (and wakes live streams). data is borrowed. */
int acv__jobs_event(acv_jobs *j, acv_dbconn *c, int64_t id, const char *type, const json_t *data);

#endif
