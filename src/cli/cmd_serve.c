/* autocv serve: the platform server (HTTP API over SQLite) until SIGINT or SIGTERM. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autocv/error.h"
#include "cli/args.h"
#include "server/server.h"

int acv_cmd_serve(int argc, char **argv)
{
    acv_server_config cfg;
    acv_server_config_init(&cfg);
    const char *data = cfg.data_dir, *listen = cfg.listen;
    int max_upload_mb = 1024, max_json_mb = 16, ttl_hours = 12, max_jobs = 1, job_threads = 0, threads = 0;
    bool metrics_public = false, quiet = false;
    acv_argdef defs[] = {
        {"--data", ACV_ARG_STR, &data, "DIR", "data directory: database, blobs, uploads (default ./autocv-data)"},
        {"--listen", ACV_ARG_STR, &listen, "HOST:PORT", "address to listen on (default 127.0.0.1:8080; port 0 = any free)"},
        {"--max-upload-mb", ACV_ARG_INT, &max_upload_mb, "N", "largest request body in MiB (default 1024)"},
        {"--max-json-mb", ACV_ARG_INT, &max_json_mb, "N", "largest JSON body in MiB (default 16)"},
        {"--token-ttl-hours", ACV_ARG_INT, &ttl_hours, "N", "login session lifetime in hours (default 12)"},
        {"--metrics-public", ACV_ARG_FLAG, &metrics_public, NULL, "serve GET /metrics without a token"},
        {"--no-access-log", ACV_ARG_FLAG, &quiet, NULL, "do not log one line per request"},
        {"--max-jobs", ACV_ARG_INT, &max_jobs, "N", "background jobs (training, evaluation) run at once (default 1)"},
        {"--job-threads", ACV_ARG_INT, &job_threads, "N", "compute threads of each job (default: all cores)"},
        {"--threads", ACV_ARG_INT, &threads, "N",
         "compute threads of each deployment, split among its replicas (default: all cores)"},
    };
    int rc = acv_args_parse("serve", "[--data DIR] [--listen HOST:PORT] [--max-upload-mb N] [--metrics-public] "
                            "[--token-ttl-hours N] [--max-jobs N] [--job-threads N] [--threads N]",
                            argc, argv, defs, (int)(sizeof defs / sizeof defs[0]), NULL, NULL);
    if (rc) return rc > 0 ? 0 : 2;
    if (max_upload_mb < 1 || max_upload_mb > 1024 * 1024)
        return acv_cli_fail("serve", "--max-upload-mb %d is not in 1..1048576", max_upload_mb);
    if (max_json_mb < 1 || max_json_mb > 1024) return acv_cli_fail("serve", "--max-json-mb %d is not in 1..1024", max_json_mb);
    if (ttl_hours < 1 || ttl_hours > 24 * 365)
        return acv_cli_fail("serve", "--token-ttl-hours %d is not in 1..8760", ttl_hours);
    if (max_jobs < 1 || max_jobs > 16) return acv_cli_fail("serve", "--max-jobs %d is not in 1..16", max_jobs);
    if (job_threads < 0 || job_threads > 1024) return acv_cli_fail("serve", "--job-threads %d is not in 0..1024", job_threads);
    if (threads < 0 || threads > 1024) return acv_cli_fail("serve", "--threads %d is not in 0..1024", threads);
    cfg.threads = threads;
    cfg.data_dir = data;
    cfg.listen = listen;
    cfg.max_jobs = max_jobs;
    cfg.job_threads = job_threads;
    cfg.max_upload_bytes = (uint64_t)max_upload_mb << 20;
    cfg.max_json_bytes = (size_t)max_json_mb << 20;
    cfg.token_ttl_s = (int64_t)ttl_hours * 3600;
    cfg.metrics_public = metrics_public;
    cfg.access_log = !quiet;
    cfg.admin_password = getenv("AUTOCV_ADMIN_PASSWORD");
    if (cfg.admin_password && !*cfg.admin_password) cfg.admin_password = NULL;

    /* Block the stop signals before any thread starts, so that every server thread inherits
     * the mask and only sigwait below receives them. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    acv_server *s;
    if ((rc = acv_server_open(&cfg, &s))) return acv_cli_error("serve", rc);
    if ((rc = acv_server_start(s))) {
        acv_server_close(s);
        return acv_cli_error("serve", rc);
    }
    printf("autocv serve: listening on %s (data in %s)\n", acv_server_url(s), data);
    fflush(stdout);
    int sig = 0;
    sigwait(&stop, &sig);
    fprintf(stderr, "autocv serve: %s received, stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    acv_server_close(s);
    fprintf(stderr, "autocv serve: stopped\n");
    return 0;
}
