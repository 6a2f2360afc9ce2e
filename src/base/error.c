/* Per-thread error messages (see autocv/error.h). */
#include "autocv/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char tl_msg[1024];

int acv_error(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tl_msg, sizeof tl_msg, fmt, ap);
    va_end(ap);
    return code;
}

int acv_error_prefix(int code, const char *fmt, ...)
{
    char prefix[512], old[sizeof tl_msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, tl_msg, sizeof old);
    snprintf(tl_msg, sizeof tl_msg, "%s%s", prefix, old);
    return code;
}

const char *acv_errmsg(void) { return tl_msg; }
void acv_error_clear(void) { tl_msg[0] = 0; }

const char *acv_strerror(int code)
{
    switch (code) {
    case ACV_OK: return "ok";
    case ACV_EINVAL: return "invalid argument";
    case ACV_ENOMEM: return "out of memory";
    case ACV_EIO: return "I/O error";
    case ACV_EFORMAT: return "malformed data";
    case ACV_ENOTFOUND: return "not found";
    case ACV_EUNSUPPORTED: return "unsupported";
    case ACV_ERANGE: return "out of range";
    case ACV_ESHAPE: return "shape mismatch";
    case ACV_ENUMERIC: return "non-finite number";
    case ACV_ECANCELED: return "canceled";
    case ACV_EEXIST: return "already exists";
    default: return "unknown error";
    }
}

void acv__assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "autocv: internal error: assertion '%s' failed at %s:%d\n", expr, file, line);
    abort();
}
