/* Helpers shared by the op tests (test_ops_*.c): allocation that fails the test, random
 * fills, and the normwise relative-error check against double-precision references.
 * Header-only: each test binary includes it once, after <cmocka.h>. */
#ifndef ACV_TESTS_OP_CHECK_H
#define ACV_TESTS_OP_CHECK_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "base/rng.h"


static void *xcalloc(int64_t n, size_t size)
{
    void *p = calloc((size_t)(n > 0 ? n : 1), size);
    assert_non_null(p);
    return p;
}
#define FALLOC(n) ((float *)xcalloc((n), sizeof(float)))
#define DALLOC(n) ((double *)xcalloc((n), sizeof(double)))

static void fill(float *x, int64_t n, acv_rng *r, float lo, float hi)
{
    for (int64_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * acv_rng_uniform(r);
}

static double *to_d(const float *x, int64_t n)
{
    double *d = DALLOC(n);
    for (int64_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}

/* max |got - want| / max |want|: a normwise relative error. */
static double rel_err(const float *got, const double *want, int64_t n)
{
    double num = 0.0, den = 0.0;
    for (int64_t i = 0; i < n; i++) {
        num = fmax(num, fabs(got[i] - want[i]));
        den = fmax(den, fabs(want[i]));
    }
    return den > 0.0 ? num / den : num;
}

static void check_close_(const float *got, const double *want, int64_t n, double tol,
                         const char *what, int line)
{
    double e = rel_err(got, want, n);
    if (!(e < tol)) {
        for (int64_t i = 0; i < n && i < 8; i++)
            print_error("  [%lld] got %.9g want %.9g\n", (long long)i, got[i], want[i]);
        fail_msg("line %d: %s: relative error %.3g >= %.3g", line, what, e, tol);
    }
}
#define CHECK_CLOSE(got, want, n, tol) check_close_((got), (want), (n), (tol), #got, __LINE__)

#endif
