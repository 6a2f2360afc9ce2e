/* The job scheduler (see jobs.h): one thread that starts queued jobs as child processes,
 * reads what they print, stores it as events, and records how they end. */
#include "server/jobs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "autocv/error.h"
#include "base/file.h"
#include "base/log.h"
#include "base/timeutil.h"
#include "server/jobs_internal.h"

#define MAX_RUNNING 16
#define MAX_ATTEMPTS 3
#define KILL_GRACE_S 5.0

static const acv__job_kind *const KINDS[] = {&acv__job_train, &acv__job_evaluate, &acv__job_pre_annotate};

static const acv__job_kind *kind_of(const char *name)
{
    for (size_t i = 0; i < sizeof KINDS / sizeof KINDS[0]; i++)
        if (name && !strcmp(KINDS[i]->name, name)) return KINDS[i];
    return NULL;
}

/* One running job. */
typedef struct run {
    int64_t id;
    const acv__job_kind *kind;
    json_t *job;       /* the row, with "spec" and "dir" */
    json_t *steps;     /* [{"name","argv"}] */
    size_t step;
    json_t *results;   /* {step: last JSON line} */
    json_t *last;      /* last JSON line of the running step */
    pid_t pid;
    int out_fd, err_fd;
    char out[1 << 16], err[1 << 13];
    size_t nout, nerr;
    char last_err[1024];
    FILE *log;
    bool cancel;       /* cancellation requested: terminating */
    bool gone;         /* its row was deleted (with its project): the folder goes when it ends */
    double term_at;    /* when SIGTERM was sent (0: not yet) */
    bool killed;
} run;

struct acv_jobs {
    acv_server *srv;
    acv_db *db;
    char *data_dir, *exe;
    int max_jobs, threads;
    pthread_t th;
    bool started;
    int wake[2];
    volatile int stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t gen;      /* bumped on every event */
    volatile int sweep; /* folders of deleted jobs to remove (acv_jobs_sweep) */
    run *runs[MAX_RUNNING];
    int nrun;
};

acv_server *acv__jobs_server(acv_jobs *j) { return j->srv; }
int acv__jobs_threads(acv_jobs *j) { return j->threads; }

char *acv_jobs_dir(acv_jobs *j, int64_t id)
{
    char *p = NULL;
    if (asprintf(&p, "%s/jobs/%lld", j->data_dir, (long long)id) < 0) return NULL;
    return p;
}

static void wake(acv_jobs *j)
{
    char b = 1;
    if (j->wake[1] >= 0 && write(j->wake[1], &b, 1) < 0) { /* full pipe: already woken */ }
}

static void notify(acv_jobs *j)
{
    pthread_mutex_lock(&j->mu);
    j->gen++;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

uint64_t acv_jobs_wait(acv_jobs *j, uint64_t gen, int timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&j->mu);
    while (j->gen == gen && !j->stop)
        if (pthread_cond_timedwait(&j->cv, &j->mu, &ts) == ETIMEDOUT) break;
    uint64_t g = j->gen;
    pthread_mutex_unlock(&j->mu);
    return g;
}

uint64_t acv_jobs_gen(acv_jobs *j)
{
    pthread_mutex_lock(&j->mu);
    uint64_t g = j->gen;
    pthread_mutex_unlock(&j->mu);
    return g;
}

int acv__jobs_event(acv_jobs *j, acv_dbconn *c, int64_t id, const char *type, const json_t *data)
{
    char now[ACV_DB_TIME_LEN];
    acv_db_time(acv_db_now(), now);
    int rc = acv_db_exec(c,
                         "INSERT INTO job_events(job_id, seq, type, data_json, created_at) VALUES (?, "
                         "(SELECT coalesce(max(seq), 0) + 1 FROM job_events WHERE job_id = ?), ?, ?, ?)",
                         "IIsjs", id, id, type, data, now);
    if (!rc) notify(j);
    return rc;
}

/* A status change: the row and a "status" event. */
static int set_status(acv_jobs *j, acv_dbconn *c, int64_t id, const char *status, const char *error, const json_t *result)
{
    char now[ACV_DB_TIME_LEN];
    acv_db_time(acv_db_now(), now);
    bool final = strcmp(status, "queued") && strcmp(status, "running");
    int rc = acv_db_begin(c);
    if (!rc)
        rc = acv_db_exec(c,
                         "UPDATE jobs SET status = ?, error = ?, updated_at = ?, pid = NULL,"
                         " result_json = coalesce(?, result_json),"
                         " finished_at = CASE WHEN ? THEN ? ELSE NULL END WHERE id = ?",
                         "sssjbsI", status, error, now, result, (int)final, now, id);
    if (!rc) {
        json_t *ev = json_pack("{s:s}", "status", status);
        if (error) json_object_set_new(ev, "error", json_string(error));
        rc = acv__jobs_event(j, c, id, "status", ev);
        json_decref(ev);
    }
    return acv_db_end(c, rc);
}

/* ---- submitting, reading, cancelling (request threads) ------------------------------------ */

int acv_jobs_submit(acv_jobs *j, acv_dbconn *c, const acv_principal *who, int64_t project_id, const char *kind,
                    int64_t dataset_version_id, const char *algorithm, const json_t *params, const json_t *spec,
                    int64_t *id)
{
    if (!kind_of(kind)) return acv_error(ACV_EINVAL, "unknown job kind '%s'", kind ? kind : "");
    char now[ACV_DB_TIME_LEN];
    acv_db_time(acv_db_now(), now);
    int rc = acv_db_begin(c);
    json_t *empty = json_object();
    if (!rc)
        rc = acv_db_exec(c,
                         "INSERT INTO jobs(project_id, kind, dataset_version_id, algorithm, params_json, spec_json,"
                         " created_by, created_at, updated_at) VALUES (?, ?, nullif(?, 0), ?, ?, ?, ?, ?, ?)",
                         "IsIsjjIss", project_id, kind, dataset_version_id, algorithm ? algorithm : "",
                         params ? params : empty, spec ? spec : empty, who->user_id, now, now);
    if (!rc) {
        *id = acv_db_last_id(c);
        char dir[64];
        snprintf(dir, sizeof dir, "jobs/%lld", (long long)*id);
        rc = acv_db_exec(c, "UPDATE jobs SET dir = ? WHERE id = ?", "sI", dir, *id);
    }
    if (!rc) {
        json_t *ev = json_pack("{s:s}", "status", "queued");
        rc = acv__jobs_event(j, c, *id, "status", ev);
        json_decref(ev);
    }
    json_decref(empty);
    rc = acv_db_end(c, rc);
    if (!rc) wake(j);
    return rc;
}

int acv_jobs_project(acv_dbconn *c, int64_t id, int64_t *project_id)
{
    int rc = acv_db_query_int(c, project_id, -1, "SELECT project_id FROM jobs WHERE id = ?", "I", id);
    if (rc) return rc;
    if (*project_id < 0) return acv_error(ACV_ENOTFOUND, "job %lld not found", (long long)id);
    return 0;
}

#define JOB_COLUMNS                                                                                              \
    "SELECT j.id, j.project_id, j.kind, j.status, j.dataset_version_id, j.algorithm, j.params_json,            \
            j.result_json, j.progress_json, j.error, j.attempts, j.created_by, u.username AS creator,          \
            j.created_at, j.started_at, j.finished_at, j.updated_at FROM jobs j LEFT JOIN users u ON u.id = j.created_by"

int acv_jobs_get(acv_dbconn *c, int64_t id, json_t **out)
{
    int rc = acv_db_query_row(c, out, JOB_COLUMNS " WHERE j.id = ?", "I", id);
    if (!rc && !*out) rc = acv_error(ACV_ENOTFOUND, "job %lld not found", (long long)id);
    return rc;
}

int acv_jobs_list(acv_dbconn *c, int64_t project_id, const char *kind, const char *status, int limit, int offset,
                  json_t **items, int64_t *total)
{
    int rc = acv_db_query_int(c, total, 0,
                              "SELECT count(*) FROM jobs WHERE project_id = ? AND (? IS NULL OR kind = ?)"
                              " AND (? IS NULL OR status = ?)",
                              "Issss", project_id, kind, kind, status, status);
    if (!rc)
        rc = acv_db_query(c, items,
                          JOB_COLUMNS " WHERE j.project_id = ? AND (? IS NULL OR j.kind = ?) AND (? IS NULL OR j.status = ?)"
                                      " ORDER BY j.id DESC LIMIT ? OFFSET ?",
                          "Issssii", project_id, kind, kind, status, status, limit, offset);
    return rc;
}

int acv_jobs_cancel(acv_jobs *j, acv_dbconn *c, const acv_principal *who, int64_t id)
{
    (void)who;
    char *status = NULL;
    int rc = acv_db_begin(c);
    if (!rc) rc = acv_db_query_text(c, &status, "SELECT status FROM jobs WHERE id = ?", "I", id);
    if (!rc && !status) rc = acv_error(ACV_ENOTFOUND, "job %lld not found", (long long)id);
    if (!rc && !strcmp(status, "queued")) {
        rc = set_status(j, c, id, "cancelled", "cancelled before it started", NULL);
    } else if (!rc && !strcmp(status, "running")) {
        rc = acv_db_exec(c, "UPDATE jobs SET cancel_requested = 1 WHERE id = ?", "I", id);
        if (!rc) {
            json_t *ev = json_pack("{s:s}", "message", "cancellation requested");
            rc = acv__jobs_event(j, c, id, "log", ev);
            json_decref(ev);
        }
    } else if (!rc) {
        rc = acv_error(ACV_EINVAL, "job %lld has already ended (%s)", (long long)id, status);
    }
    free(status);
    rc = acv_db_end(c, rc);
    if (!rc) wake(j);
    return rc;
}

/* ---- the scheduler thread ------------------------------------------------------------------ */

static void run_free(run *r)
{
    if (!r) return;
    if (r->out_fd >= 0) close(r->out_fd);
    if (r->err_fd >= 0) close(r->err_fd);
    if (r->log) fclose(r->log);
    const char *dir = json_string_value(json_object_get(r->job, "dir"));
    if (r->gone && dir && acv_remove_tree(dir))
        acv_warn("job %lld was deleted; its folder could not be removed: %s", (long long)r->id, acv_errmsg());
    json_decref(r->job);
    json_decref(r->steps);
    json_decref(r->results);
    json_decref(r->last);
    free(r);
}

/* Starts the child for r's current step. */
static int spawn(acv_jobs *j, run *r)
{
    json_t *step = json_array_get(r->steps, r->step);
    json_t *args = json_object_get(step, "argv");
    size_t n = json_array_size(args);
    char **argv = calloc(n + 2, sizeof *argv);
    if (!argv) return acv_error(ACV_ENOMEM, "out of memory");
    argv[0] = j->exe;
    for (size_t i = 0; i < n; i++) argv[i + 1] = (char *)json_string_value(json_array_get(args, i));
    int po[2] = {-1, -1}, pe[2] = {-1, -1};
    if (pipe2(po, O_CLOEXEC) || pipe2(pe, O_CLOEXEC)) {
        int e = errno;
        if (po[0] >= 0) { close(po[0]); close(po[1]); }
        free(argv);
        return acv_error(ACV_EIO, "job %lld: pipe: %s", (long long)r->id, strerror(e));
    }
    const char *dir = json_string_value(json_object_get(r->job, "dir"));
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        /* the child: only async-signal-safe calls until exec */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(127);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0) dup2(nul, 0);
        dup2(po[1], 1);
        dup2(pe[1], 2);
        if (chdir(dir) != 0) _exit(126);
        execv(argv[0], argv);
        static const char msg[] = "autocv job: error: cannot run the autocv binary\n";
        if (write(2, msg, sizeof msg - 1) < 0) _exit(127);
        _exit(127);
    }
    int e = errno;
    free(argv);
    close(po[1]);
    close(pe[1]);
    if (pid < 0) {
        close(po[0]);
        close(pe[0]);
        return acv_error(ACV_EIO, "job %lld: fork: %s", (long long)r->id, strerror(e));
    }
    fcntl(po[0], F_SETFL, O_NONBLOCK);
    fcntl(pe[0], F_SETFL, O_NONBLOCK);
    r->pid = pid;
    r->out_fd = po[0];
    r->err_fd = pe[0];
    r->nout = r->nerr = 0;
    json_decref(r->last);
    r->last = NULL;
    return 0;
}

/* Handles one complete line of the child's stdout (is_err false) or stderr. */
static void on_line(acv_jobs *j, acv_dbconn *c, run *r, char *line, bool is_err)
{
    size_t len = strlen(line);
    if (len && line[len - 1] == '\r') line[--len] = 0;
    if (r->log) {
        fprintf(r->log, "%s\n", line);
        fflush(r->log);
    }
    if (!len) return;
    if (is_err) {
        /* progress bars and warnings; an error line is kept as the failure reason */
        if (strstr(line, "error:")) snprintf(r->last_err, sizeof r->last_err, "%s", line);
        json_t *ev = json_pack("{s:s, s:s}", "message", line, "stream", "stderr");
        acv__jobs_event(j, c, r->id, "log", ev);
        json_decref(ev);
        return;
    }
    json_error_t jerr;
    json_t *o = line[0] == '{' ? json_loads(line, 0, &jerr) : NULL;
    if (!o || !json_is_object(o)) {
        json_decref(o);
        json_t *ev = json_pack("{s:s}", "message", line);
        acv__jobs_event(j, c, r->id, "log", ev);
        json_decref(ev);
        return;
    }
    const char *type = json_string_value(json_object_get(o, "event"));
    json_t *data = json_deep_copy(o);
    json_object_del(data, "event");
    json_object_set_new(data, "step_name",
                        json_string(json_string_value(json_object_get(json_array_get(r->steps, r->step), "name"))));
    acv__jobs_event(j, c, r->id, type ? type : "result", data);
    /* the latest progress, for GET /jobs/{id} */
    if (type && (!strcmp(type, "step") || !strcmp(type, "epoch"))) {
        char now[ACV_DB_TIME_LEN];
        acv_db_time(acv_db_now(), now);
        acv_db_exec(c, "UPDATE jobs SET progress_json = json_patch(progress_json, ?), updated_at = ? WHERE id = ?",
                    "jsI", data, now, r->id);
    }
    json_decref(data);
    json_decref(r->last);
    r->last = o;
}

/* Reads what is available on fd into buf, handing complete lines to on_line. Returns false
 * at end of file. */
static bool drain(acv_jobs *j, acv_dbconn *c, run *r, bool is_err)
{
    int fd = is_err ? r->err_fd : r->out_fd;
    char *buf = is_err ? r->err : r->out;
    size_t cap = is_err ? sizeof r->err : sizeof r->out, *n = is_err ? &r->nerr : &r->nout;
    for (;;) {
        ssize_t k = read(fd, buf + *n, cap - 1 - *n);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
        if (k <= 0) {
            if (*n) {
                buf[*n] = 0;
                on_line(j, c, r, buf, is_err);
                *n = 0;
            }
            return false;
        }
        *n += (size_t)k;
        size_t start = 0;
        for (size_t i = 0; i < *n; i++)
            if (buf[i] == '\n' || buf[i] == '\r') {
                /* a carriage return ends a progress-bar frame: keep only whole lines */
                if (buf[i] == '\r' && is_err) {
                    start = i + 1;
                    continue;
                }
                buf[i] = 0;
                on_line(j, c, r, buf + start, is_err);
                start = i + 1;
            }
        if (start) {
            memmove(buf, buf + start, *n - start);
            *n -= start;
        } else if (*n == cap - 1) { /* an overlong line: cut it */
            buf[*n] = 0;
            on_line(j, c, r, buf, is_err);
            *n = 0;
        }
    }
}

/* Loads the job row with its spec and absolute dir. */
static int load_job(acv_jobs *j, acv_dbconn *c, int64_t id, json_t **out)
{
    int rc = acv_jobs_get(c, id, out);
    if (rc) return rc;
    json_t *row = NULL;
    rc = acv_db_query_row(c, &row, "SELECT spec_json, attempts FROM jobs WHERE id = ?", "I", id);
    if (!rc && row) {
        json_object_set(*out, "spec", json_object_get(row, "spec"));
        json_object_set(*out, "attempts", json_object_get(row, "attempts"));
    }
    json_decref(row);
    char *dir = acv_jobs_dir(j, id);
    if (!dir) rc = acv_error(ACV_ENOMEM, "out of memory");
    else json_object_set_new(*out, "dir", json_string(dir));
    free(dir);
    return rc;
}

/* Ends run r (removed from the table by the caller) with status and error. */
static void end_run(acv_jobs *j, acv_dbconn *c, run *r, const char *status, const char *error, json_t *result)
{
    if (strcmp(status, "succeeded") && r->kind->ended) r->kind->ended(j, c, r->job, status, error);
    if (set_status(j, c, r->id, status, error, result))
        acv_warn("job %lld: could not record status %s: %s", (long long)r->id, status, acv_errmsg());
    acv_info("job %lld (%s) %s%s%s", (long long)r->id, r->kind->name, status, error ? ": " : "", error ? error : "");
}

/* The run of job id, or NULL. */
static run *run_of(acv_jobs *j, int64_t id)
{
    for (int i = 0; i < j->nrun; i++)
        if (j->runs[i]->id == id) return j->runs[i];
    return NULL;
}

/* Removes the folders under DATA/jobs that no job row names and no run holds: those of jobs
 * deleted with their project (and any a crash left). */
static void sweep_folders(acv_jobs *j, acv_dbconn *c)
{
    char *root = NULL;
    if (asprintf(&root, "%s/jobs", j->data_dir) < 0) return;
    DIR *d = opendir(root);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        char *end;
        long long id = strtoll(e->d_name, &end, 10);
        if (*end || id <= 0 || e->d_name[0] == '0' || run_of(j, id)) continue;
        int64_t n = 1;
        if (acv_db_query_int(c, &n, 1, "SELECT COUNT(*) FROM jobs WHERE id = ?", "I", (int64_t)id) || n) continue;
        char *p = acv_jobs_dir(j, id);
        if (p && acv_remove_tree(p)) acv_warn("the folder of deleted job %lld: %s", id, acv_errmsg());
        else if (p) acv_info("removed the folder of deleted job %lld", id);
        free(p);
    }
    if (d) closedir(d);
    free(root);
}

void acv_jobs_sweep(acv_jobs *j)
{
    if (!j) return;
    j->sweep = 1;
    wake(j);
}

/* Starts the oldest queued job when a slot is free. Returns true when one was started (or
 * failed to start) so the caller looks again. */
static bool start_next(acv_jobs *j, acv_dbconn *c)
{
    if (j->nrun >= j->max_jobs || j->nrun >= MAX_RUNNING) return false;
    /* the oldest queued job whose id no run still holds (a run whose row was deleted, still
     * stopping, keeps its folder until it ends) */
    int64_t id = 0;
    json_t *ids = NULL;
    if (acv_db_query(c, &ids, "SELECT id FROM jobs WHERE status = 'queued' ORDER BY id LIMIT ?", "i", MAX_RUNNING + 1))
        return false;
    for (size_t k = 0; !id && k < json_array_size(ids); k++) {
        int64_t cand = json_integer_value(json_object_get(json_array_get(ids, k), "id"));
        if (!run_of(j, cand)) id = cand;
    }
    json_decref(ids);
    if (!id) return false;
    char now[ACV_DB_TIME_LEN];
    acv_db_time(acv_db_now(), now);
    if (acv_db_exec(c,
                    "UPDATE jobs SET status = 'running', attempts = attempts + 1, cancel_requested = 0,"
                    " started_at = coalesce(started_at, ?), updated_at = ? WHERE id = ? AND status = 'queued'",
                    "ssI", now, now, id) || acv_db_changes(c) == 0)
        return true;
    run *r = calloc(1, sizeof *r);
    if (!r) return false;
    r->id = id;
    r->out_fd = r->err_fd = -1;
    r->results = json_object();
    json_t *ev = json_pack("{s:s}", "status", "running");
    acv__jobs_event(j, c, id, "status", ev);
    json_decref(ev);
    int rc = load_job(j, c, id, &r->job);
    const char *dir = rc ? NULL : json_string_value(json_object_get(r->job, "dir"));
    if (!rc && !(r->kind = kind_of(json_string_value(json_object_get(r->job, "kind")))))
        rc = acv_error(ACV_EINVAL, "unknown job kind");
    int attempts = rc ? 0 : (int)json_integer_value(json_object_get(r->job, "attempts"));
    /* a first attempt starts from an empty folder: one already there belonged to a deleted
     * job that had the same id (later attempts resume from what the folder holds) */
    if (!rc && attempts <= 1) rc = acv_remove_tree(dir);
    if (!rc) rc = acv_mkdirs(dir);
    if (!rc) {
        char *lp = acv_path_join(dir, "log.txt");
        r->log = lp ? fopen(lp, "a") : NULL;
        free(lp);
    }
    if (!rc) rc = r->kind->prepare(j, c, r->job, attempts > 1, &r->steps);
    if (!rc && json_array_size(r->steps) == 0) rc = acv_error(ACV_EINVAL, "the job has nothing to run");
    if (!rc) {
        char *argv = json_dumps(json_object_get(json_array_get(r->steps, 0), "argv"), JSON_COMPACT);
        if (r->log) fprintf(r->log, "# attempt %d: autocv %s\n", attempts, argv ? argv : "");
        free(argv);
        rc = spawn(j, r);
    }
    if (rc) {
        if (!r->kind) r->kind = &acv__job_train;
        end_run(j, c, r, "failed", acv_errmsg(), NULL);
        run_free(r);
        return true;
    }
    acv_db_exec(c, "UPDATE jobs SET pid = ? WHERE id = ?", "iI", (int)r->pid, id);
    acv_info("job %lld (%s) started, pid %d", (long long)id, r->kind->name, (int)r->pid);
    j->runs[j->nrun++] = r;
    return true;
}

/* The child of r exited with status st: next step, or the job's end. Returns true when r
 * is finished (and must be freed). */
static bool on_exit_status(acv_jobs *j, acv_dbconn *c, run *r, int st, const struct rusage *ru)
{
    const char *step = json_string_value(json_object_get(json_array_get(r->steps, r->step), "name"));
    if (r->cancel) {
        end_run(j, c, r, "cancelled", "cancelled by a user", NULL);
        return true;
    }
    json_t *ok_exit = json_object_get(json_array_get(r->steps, r->step), "ok_exit");
    bool ok = WIFEXITED(st) && (WEXITSTATUS(st) == 0 || (ok_exit && WEXITSTATUS(st) == json_integer_value(ok_exit)));
    if (!ok) {
        char why[1200];
        if (r->last_err[0]) snprintf(why, sizeof why, "%s", r->last_err);
        else if (WIFSIGNALED(st)) snprintf(why, sizeof why, "%s step killed by signal %d (%s)", step, WTERMSIG(st), strsignal(WTERMSIG(st)));
        else snprintf(why, sizeof why, "%s step exited with status %d", step, WEXITSTATUS(st));
        end_run(j, c, r, "failed", why, NULL);
        return true;
    }
    json_t *res = r->last ? json_deep_copy(r->last) : json_object();
    json_object_set_new(res, "peak_rss_mb", json_real((double)ru->ru_maxrss / 1024.0));
    json_object_set_new(r->results, step, res);
    if (++r->step < json_array_size(r->steps)) {
        close(r->out_fd);
        close(r->err_fd);
        r->out_fd = r->err_fd = -1;
        r->last_err[0] = 0;
        if (!spawn(j, r)) {
            acv_db_exec(c, "UPDATE jobs SET pid = ? WHERE id = ?", "iI", (int)r->pid, r->id);
            return false;
        }
        end_run(j, c, r, "failed", acv_errmsg(), NULL);
        return true;
    }
    json_t *result = NULL;
    if (r->kind->finish(j, c, r->job, r->results, &result)) {
        end_run(j, c, r, "failed", acv_errmsg(), NULL);
    } else {
        end_run(j, c, r, "succeeded", NULL, result);
    }
    json_decref(result);
    return true;
}

static void check_cancels(acv_jobs *j, acv_dbconn *c)
{
    for (int i = 0; i < j->nrun; i++) {
        run *r = j->runs[i];
        if (!r->cancel) {
            int64_t flag = 0;
            /* no row (-1): the job was deleted with its project */
            if (!acv_db_query_int(c, &flag, -1, "SELECT cancel_requested FROM jobs WHERE id = ?", "I", r->id) && flag) {
                r->cancel = true;
                r->gone = flag < 0;
                r->term_at = acv_now();
                kill(r->pid, SIGTERM);
            }
        } else if (!r->killed && acv_now() - r->term_at > KILL_GRACE_S) {
            kill(r->pid, SIGKILL);
            r->killed = true;
        }
    }
}

/* Terminates every child (the server is stopping) and queues the jobs again. */
static void stop_all(acv_jobs *j, acv_dbconn *c)
{
    for (int i = 0; i < j->nrun; i++) kill(j->runs[i]->pid, SIGTERM);
    double until = acv_now() + KILL_GRACE_S;
    for (int i = 0; i < j->nrun; i++) {
        run *r = j->runs[i];
        int st;
        while (waitpid(r->pid, &st, WNOHANG) == 0) {
            if (acv_now() > until) {
                kill(r->pid, SIGKILL);
                waitpid(r->pid, &st, 0);
                break;
            }
            usleep(20000);
        }
        drain(j, c, r, false);
        drain(j, c, r, true);
        if (r->cancel) {
            end_run(j, c, r, "cancelled", "cancelled by a user", NULL);
        } else {
            json_t *ev = json_pack("{s:s}", "message", "the server is stopping: the job will resume when it starts again");
            acv__jobs_event(j, c, r->id, "log", ev);
            json_decref(ev);
            set_status(j, c, r->id, "queued", NULL, NULL);
        }
        run_free(r);
    }
    j->nrun = 0;
}

static void *scheduler(void *arg)
{
    acv_jobs *j = arg;
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    acv_dbconn *c = NULL;
    while (!j->stop) {
        if (acv_db_acquire(j->db, &c)) {
            sleep(1);
            continue;
        }
        check_cancels(j, c);
        if (j->sweep) {
            j->sweep = 0;
            sweep_folders(j, c);
        }
        while (!j->stop && start_next(j, c)) {}
        struct pollfd pf[1 + 2 * MAX_RUNNING];
        int np = 0;
        pf[np++] = (struct pollfd){.fd = j->wake[0], .events = POLLIN};
        for (int i = 0; i < j->nrun; i++) {
            pf[np++] = (struct pollfd){.fd = j->runs[i]->out_fd, .events = POLLIN};
            pf[np++] = (struct pollfd){.fd = j->runs[i]->err_fd, .events = POLLIN};
        }
        acv_db_release(c);
        c = NULL;
        int k = poll(pf, (nfds_t)np, 500);
        if (k < 0 && errno != EINTR) usleep(100000);
        if (pf[0].revents & POLLIN) {
            char b[64];
            while (read(j->wake[0], b, sizeof b) > 0) {}
        }
        if (acv_db_acquire(j->db, &c)) continue;
        for (int i = 0; i < j->nrun; i++) {
            run *r = j->runs[i];
            bool out_open = r->out_fd >= 0 && drain(j, c, r, false);
            bool err_open = r->err_fd >= 0 && drain(j, c, r, true);
            int st;
            struct rusage ru;
            pid_t w = wait4(r->pid, &st, WNOHANG, &ru);
            (void)out_open;
            (void)err_open;
            if (w == r->pid) {
                /* the child is gone: read what is left, then move on */
                drain(j, c, r, false);
                drain(j, c, r, true);
                if (on_exit_status(j, c, r, st, &ru)) {
                    /* cancelled, then maybe deleted with its project after that: its folder is
                     * looked at once it is free */
                    if (r->cancel && !r->gone) j->sweep = 1;
                    run_free(r);
                    j->runs[i] = j->runs[--j->nrun];
                    i--;
                }
            }
        }
        acv_db_release(c);
        c = NULL;
    }
    if (!acv_db_acquire(j->db, &c)) {
        stop_all(j, c);
        acv_db_release(c);
    }
    return NULL;
}

/* ---- lifecycle --------------------------------------------------------------------------- */

/* Jobs left "running" by a server that died: queue them again (or fail them after too many
 * tries), after making sure no child of the old server still runs. */
static int recover(acv_jobs *j, acv_dbconn *c)
{
    json_t *rows = NULL;
    int rc = acv_db_query(c, &rows, "SELECT id, pid, attempts, kind FROM jobs WHERE status = 'running'", "");
    size_t i;
    json_t *row;
    if (!rc) json_array_foreach(rows, i, row) {
            int64_t id = json_integer_value(json_object_get(row, "id"));
            pid_t pid = (pid_t)json_integer_value(json_object_get(row, "pid"));
            if (pid > 0) {
                char p[64], cmd[4096] = "", want[64];
                snprintf(p, sizeof p, "/proc/%d/cwd", (int)pid);
                ssize_t n = readlink(p, cmd, sizeof cmd - 1);
                snprintf(want, sizeof want, "/jobs/%lld", (long long)id);
                if (n > 0) {
                    cmd[n] = 0;
                    size_t lw = strlen(want), lc = strlen(cmd);
                    if (lc >= lw && !strcmp(cmd + lc - lw, want)) kill(pid, SIGKILL);
                }
            }
            int64_t attempts = json_integer_value(json_object_get(row, "attempts"));
            if (attempts >= MAX_ATTEMPTS) {
                char why[200];
                snprintf(why, sizeof why, "interrupted %lld times by a server stop or crash; giving up",
                         (long long)attempts);
                set_status(j, c, id, "failed", why, NULL);
            } else {
                json_t *ev = json_pack("{s:s}", "message",
                                       "the server restarted: the job is queued again and resumes from its last checkpoint");
                acv__jobs_event(j, c, id, "log", ev);
                json_decref(ev);
                set_status(j, c, id, "queued", NULL, NULL);
            }
        }
    json_decref(rows);
    return rc;
}

int acv_jobs_new(acv_server *s, acv_jobs **out)
{
    *out = NULL;
    acv_jobs *j = calloc(1, sizeof *j);
    if (!j) return acv_error(ACV_ENOMEM, "out of memory");
    const acv_server_config *cfg = acv_server_config_of(s);
    j->srv = s;
    j->db = acv_server_db(s);
    j->wake[0] = j->wake[1] = -1;
    j->max_jobs = cfg->max_jobs > 0 ? cfg->max_jobs : 1;
    if (j->max_jobs > MAX_RUNNING) j->max_jobs = MAX_RUNNING;
    j->threads = cfg->job_threads > 0 ? cfg->job_threads : 0;
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, NULL);
    int rc = 0;
    j->data_dir = realpath(cfg->data_dir, NULL);
    if (!j->data_dir) rc = acv_error(ACV_EIO, "%s: %s", cfg->data_dir, strerror(errno));
    if (!rc) {
        j->exe = cfg->exe ? realpath(cfg->exe, NULL) : realpath("/proc/self/exe", NULL);
        if (!j->exe) rc = acv_error(ACV_EIO, "cannot find the autocv binary for jobs: %s", strerror(errno));
    }
    if (!rc && pipe2(j->wake, O_CLOEXEC | O_NONBLOCK)) rc = acv_error(ACV_EIO, "pipe: %s", strerror(errno));
    char *jobs_dir = rc ? NULL : acv_path_join(j->data_dir, "jobs");
    if (!rc) rc = jobs_dir ? acv_mkdirs(jobs_dir) : acv_error(ACV_ENOMEM, "out of memory");
    free(jobs_dir);
    if (!rc) {
        acv_dbconn *c;
        if (!(rc = acv_db_acquire(j->db, &c))) {
            rc = recover(j, c);
            acv_db_release(c);
        }
    }
    if (rc) {
        acv_jobs_free(j);
        return rc;
    }
    *out = j;
    return 0;
}

int acv_jobs_start(acv_jobs *j)
{
    j->sweep = 1; /* folders of jobs deleted while the server was down */
    if (pthread_create(&j->th, NULL, scheduler, j)) return acv_error(ACV_EIO, "cannot start the job scheduler");
    j->started = true;
    return 0;
}

void acv_jobs_free(acv_jobs *j)
{
    if (!j) return;
    pthread_mutex_lock(&j->mu);
    j->stop = 1;
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
    if (j->started) {
        wake(j);
        pthread_join(j->th, NULL);
    }
    if (j->wake[0] >= 0) close(j->wake[0]);
    if (j->wake[1] >= 0) close(j->wake[1]);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    free(j->data_dir);
    free(j->exe);
    free(j);
}
