/* Flag parsing for the autocv verbs (see args.h). */
#include "cli/args.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "autocv/error.h"

int acv_cli_fail(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "autocv %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    return 2;
}

int acv_cli_error(const char *cmd, int rc)
{
    const char *m = acv_errmsg();
    fprintf(stderr, "autocv %s: error: %s\n", cmd, m && *m ? m : acv_strerror(rc));
    return 1;
}

bool acv_cli_isatty(void) { return isatty(STDOUT_FILENO) == 1; }

static void print_help(const char *cmd, const char *usage, const acv_argdef *defs, int ndefs)
{
    printf("usage: autocv %s %s\n\noptions:\n", cmd, usage);
    for (int i = 0; i < ndefs; i++) {
        char left[64];
        snprintf(left, sizeof left, "%s%s%s", defs[i].name, defs[i].metavar ? " " : "",
                 defs[i].metavar ? defs[i].metavar : "");
        printf("  %-22s %s\n", left, defs[i].help);
    }
    printf("  %-22s %s\n", "--help", "show this help");
}

int acv_args_parse(const char *cmd, const char *usage, int argc, char **argv, const acv_argdef *defs,
                   int ndefs, char ***pos, int *npos)
{
    static char *posbuf[4096];
    int np = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            print_help(cmd, usage, defs, ndefs);
            return 1;
        }
        if (a[0] != '-' || a[1] == 0 || (a[1] != '-' && !(a[1] >= 'a' && a[1] <= 'z'))) {
            if (np >= (int)(sizeof posbuf / sizeof posbuf[0])) {
                acv_cli_fail(cmd, "too many arguments");
                return -1;
            }
            posbuf[np++] = argv[i];
            continue;
        }
        /* --flag=value */
        char name[64];
        const char *eq = strchr(a, '=');
        const char *val = NULL;
        size_t nlen = eq ? (size_t)(eq - a) : strlen(a);
        if (nlen >= sizeof name) nlen = sizeof name - 1;
        memcpy(name, a, nlen);
        name[nlen] = 0;
        if (eq) val = eq + 1;
        const acv_argdef *d = NULL;
        for (int k = 0; k < ndefs; k++)
            if (!strcmp(defs[k].name, name)) d = &defs[k];
        if (!d) {
            acv_cli_fail(cmd, "unknown option %s (see autocv %s --help)", name, cmd);
            return -1;
        }
        if (d->type == ACV_ARG_FLAG) {
            if (val) {
                acv_cli_fail(cmd, "%s takes no value", name);
                return -1;
            }
            *(bool *)d->dst = true;
            continue;
        }
        if (!val) {
            if (i + 1 >= argc) {
                acv_cli_fail(cmd, "%s needs a value (%s)", name, d->metavar ? d->metavar : "VALUE");
                return -1;
            }
            val = argv[++i];
        }
        char *end = NULL;
        errno = 0;
        switch (d->type) {
        case ACV_ARG_STR:
            if (!*val) {
                acv_cli_fail(cmd, "%s needs a non-empty value", name);
                return -1;
            }
            *(const char **)d->dst = val;
            break;
        case ACV_ARG_INT: {
            long long v = strtoll(val, &end, 10);
            if (errno || !*val || *end || v < -2147483647LL || v > 2147483647LL) {
                acv_cli_fail(cmd, "%s expects an integer, got '%s'", name, val);
                return -1;
            }
            *(int *)d->dst = (int)v;
            break;
        }
        case ACV_ARG_FLOAT: {
            double v = strtod(val, &end);
            if (errno || !*val || *end || !isfinite(v)) {
                acv_cli_fail(cmd, "%s expects a number, got '%s'", name, val);
                return -1;
            }
            *(double *)d->dst = v;
            break;
        }
        default:
            break;
        }
    }
    if (pos) *pos = posbuf;
    if (npos) *npos = np;
    else if (np > 0) {
        acv_cli_fail(cmd, "unexpected argument '%s' (see autocv %s --help)", posbuf[0], cmd);
        return -1;
    }
    return 0;
}
