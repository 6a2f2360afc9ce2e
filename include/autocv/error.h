/* AutoCV error codes and the per-thread error message.
 *
 * Functions that can fail return int: 0 on success, a negative ACV_E* code on failure.
 * The failing function records a message for the user that says what went wrong and
 * where (file, line, field, flag); acv_errmsg() returns it for the calling thread. */
#ifndef AUTOCV_ERROR_H
#define AUTOCV_ERROR_H

enum {
    ACV_OK = 0,
    ACV_EINVAL = -1,      /* bad argument, flag or value */
    ACV_ENOMEM = -2,      /* allocation failed */
    ACV_EIO = -3,         /* read/write failure */
    ACV_EFORMAT = -4,     /* malformed or corrupt file contents */
    ACV_ENOTFOUND = -5,   /* missing file, name or key */
    ACV_EUNSUPPORTED = -6,/* valid but not supported (op, format, dtype) */
    ACV_ERANGE = -7,      /* value outside the allowed range (size limits) */
    ACV_ESHAPE = -8,      /* tensor shapes do not fit */
    ACV_ENUMERIC = -9,    /* NaN or infinity where a finite number is needed */
    ACV_ECANCELED = -10,  /* stopped on request */
    ACV_EEXIST = -11,     /* already exists */
};

/* Records a formatted message for this thread and returns code (so callers can
 * `return acv_error(ACV_EINVAL, "...")`). */
int acv_error(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prepends context ("while reading X: ") to the current message; returns code. */
int acv_error_prefix(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The last message recorded on this thread ("" when none). */
const char *acv_errmsg(void);
/* A short name for a code ("invalid argument", ...). */
const char *acv_strerror(int code);
void acv_error_clear(void);

/* Programmer errors only (broken invariants), never bad user input. */
#define ACV_ASSERT(c) do { if (!(c)) acv__assert_fail(#c, __FILE__, __LINE__); } while (0)
_Noreturn void acv__assert_fail(const char *expr, const char *file, int line);

#endif
