/* Logging to stderr with a level and a timestamp. ACV_LOG (env) sets the level:
 * debug, info (default), warn, error. */
#ifndef ACV_BASE_LOG_H
#define ACV_BASE_LOG_H

typedef enum { ACV_LOG_DEBUG, ACV_LOG_INFO, ACV_LOG_WARN, ACV_LOG_ERROR } acv_log_level;

void acv_log(acv_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void acv_log_set_level(acv_log_level lvl);
#define acv_debug(...) acv_log(ACV_LOG_DEBUG, __VA_ARGS__)
#define acv_info(...) acv_log(ACV_LOG_INFO, __VA_ARGS__)
#define acv_warn(...) acv_log(ACV_LOG_WARN, __VA_ARGS__)

#endif
