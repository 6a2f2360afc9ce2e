/* Leveled logging to stderr. */
#include "base/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int g_level = -1;

void acv_log_set_level(acv_log_level lvl) { g_level = (int)lvl; }

static int level_now(void)
{
    if (g_level < 0) {
        const char *e = getenv("ACV_LOG");
        g_level = ACV_LOG_INFO;
        if (e && !strcmp(e, "debug")) g_level = ACV_LOG_DEBUG;
        else if (e && !strcmp(e, "warn")) g_level = ACV_LOG_WARN;
        else if (e && !strcmp(e, "error")) g_level = ACV_LOG_ERROR;
    }
    return g_level;
}

void acv_log(acv_log_level lvl, const char *fmt, ...)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    if ((int)lvl < level_now()) return;
    char ts[32];
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s %s %s\n", ts, names[lvl], msg);
}
