/* Caps the test process's address space around a call that must refuse a malformed header
 * before allocating from it: an allocation sized from the header then fails (ACV_ENOMEM)
 * instead of quietly reserving gigabytes. Header-only: include once, after <cmocka.h>. */
#ifndef ACV_TESTS_AS_CAP_H
#define ACV_TESTS_AS_CAP_H

#include <stdio.h>
#include <sys/resource.h>
#include <unistd.h>

static struct rlimit g_as_old;

/* The address space capped at its current size plus `extra` bytes (until uncap_address_space). */
static void cap_address_space(size_t extra)
{
    assert_int_equal(getrlimit(RLIMIT_AS, &g_as_old), 0);
    FILE *f = fopen("/proc/self/statm", "r");
    assert_non_null(f);
    unsigned long pages = 0;
    assert_int_equal(fscanf(f, "%lu", &pages), 1);
    fclose(f);
    struct rlimit r = g_as_old;
    rlim_t want = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + extra;
    if (g_as_old.rlim_cur == RLIM_INFINITY || want < g_as_old.rlim_cur) r.rlim_cur = want;
    assert_int_equal(setrlimit(RLIMIT_AS, &r), 0);
}

static void uncap_address_space(void) { assert_int_equal(setrlimit(RLIMIT_AS, &g_as_old), 0); }

#endif
