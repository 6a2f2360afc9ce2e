/* Command-line flag parsing shared by every `autocv` verb: a table of flags per command,
 * strict checking (unknown flags, missing values, bad numbers are errors naming the flag),
 * and generated --help text. */
#ifndef ACV_CLI_ARGS_H
#define ACV_CLI_ARGS_H

#include <stdbool.h>

typedef enum { ACV_ARG_STR, ACV_ARG_INT, ACV_ARG_FLOAT, ACV_ARG_FLAG } acv_argtype;

typedef struct acv_argdef {
    const char *name;     /* "--epochs" */
    acv_argtype type;
    void *dst;            /* const char **, int *, double *, bool * */
    const char *metavar;  /* "N" */
    const char *help;
} acv_argdef;

typedef struct acv_cmd {
    const char *name;
    const char *summary;
    const char *usage;    /* "--model DIR --data PATH [...]" */
    int (*run)(int argc, char **argv);
} acv_cmd;

/* Parses argv[1..] (argv[0] is the command name) into defs; positional arguments are
 * collected into pos (up to max_pos; more is an error unless max_pos < 0 = unlimited,
 * then *pos points into argv). Returns 0, 1 when --help was printed, or <0 after printing
 * a one-line error to stderr. */
int acv_args_parse(const char *cmd, const char *usage, int argc, char **argv, const acv_argdef *defs,
                   int ndefs, char ***pos, int *npos);
/* Prints "autocv CMD: message" to stderr and returns 2 (the exit status for usage errors). */
int acv_cli_fail(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints the current acv_errmsg() as "autocv CMD: error: ..." and returns 1. */
int acv_cli_error(const char *cmd, int rc);
/* True when stdout is a terminal. */
bool acv_cli_isatty(void);

#endif
