/* The streaming CSV reader: RFC 4180 quoting, line numbers, and its bounds (fields per record,
 * bytes per record) that keep a hostile upload from exhausting memory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "autocv/error.h"
#include "platform/csv.h"

/* A reader over the bytes s[0..n) (kept in a memory FILE). */
static acv_csv *open_mem(const char *s, size_t n, size_t max_field, FILE **f)
{
    *f = fmemopen((void *)s, n, "rb");
    assert_non_null(*f);
    acv_csv *r = NULL;
    assert_int_equal(acv_csv_new(*f, "t.csv", max_field, &r), 0);
    return r;
}

static void test_quoting_and_lines(void **state)
{
    static const char s[] = "name,desc\r\n\nscratch,\"a line, \"\"long\"\"\nstill\"\nx,\n";
    FILE *f;
    acv_csv *r = open_mem(s, sizeof s - 1, 0, &f);
    char **fld;
    int n;
    assert_int_equal(acv_csv_next(r, &fld, &n), 1);
    assert_int_equal(n, 2);
    assert_string_equal(fld[0], "name");
    assert_int_equal(acv_csv_next(r, &fld, &n), 1);
    assert_int_equal(acv_csv_line(r), 3);
    assert_string_equal(fld[0], "scratch");
    assert_string_equal(fld[1], "a line, \"long\"\nstill");
    assert_int_equal(acv_csv_next(r, &fld, &n), 1);
    assert_int_equal(acv_csv_line(r), 5);
    assert_int_equal(n, 2);
    assert_string_equal(fld[1], "");
    assert_int_equal(acv_csv_next(r, &fld, &n), 0);
    acv_csv_free(r);
    fclose(f);
}

static void test_too_many_fields(void **state)
{
    size_t n = ACV_CSV_MAX_FIELDS * 4;
    char *s = malloc(n + 16);
    memcpy(s, "a\n", 2);
    memset(s + 2, ',', n);
    s[n + 2] = '\n';
    FILE *f;
    acv_csv *r = open_mem(s, n + 3, 0, &f);
    char **fld;
    int nf;
    assert_int_equal(acv_csv_next(r, &fld, &nf), 1);
    assert_int_equal(acv_csv_next(r, &fld, &nf), ACV_ERANGE);
    assert_non_null(strstr(acv_errmsg(), "line 2"));
    assert_non_null(strstr(acv_errmsg(), "fields"));
    acv_csv_free(r);
    fclose(f);
    free(s);

    /* exactly the limit is fine */
    n = ACV_CSV_MAX_FIELDS - 1;
    s = malloc(n + 2);
    memset(s, ',', n);
    s[n] = '\n';
    r = open_mem(s, n + 1, 0, &f);
    assert_int_equal(acv_csv_next(r, &fld, &nf), 1);
    assert_int_equal(nf, ACV_CSV_MAX_FIELDS);
    acv_csv_free(r);
    fclose(f);
    free(s);
}

static void test_record_and_field_bytes(void **state)
{
    /* fields of 10 bytes with max_field 16: a record stops at 16 * ACV_CSV_RECORD_FIELDS bytes */
    size_t nfield = 4 * ACV_CSV_RECORD_FIELDS, n = nfield * 11;
    char *s = malloc(n + 1);
    for (size_t i = 0; i < nfield; i++) {
        memset(s + i * 11, 'x', 10);
        s[i * 11 + 10] = i + 1 == nfield ? '\n' : ',';
    }
    FILE *f;
    acv_csv *r = open_mem(s, n, 16, &f);
    char **fld;
    int nf;
    assert_int_equal(acv_csv_next(r, &fld, &nf), ACV_ERANGE);
    assert_non_null(strstr(acv_errmsg(), "record is longer"));
    acv_csv_free(r);
    fclose(f);
    free(s);

    static const char big[] = "0123456789abcdefXYZ\n";
    r = open_mem(big, sizeof big - 1, 16, &f);
    assert_int_equal(acv_csv_next(r, &fld, &nf), ACV_ERANGE);
    assert_non_null(strstr(acv_errmsg(), "field is longer"));
    acv_csv_free(r);
    fclose(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quoting_and_lines),
        cmocka_unit_test(test_too_many_fields),
        cmocka_unit_test(test_record_and_field_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
