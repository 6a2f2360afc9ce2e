/* A streaming CSV reader (RFC 4180: comma-separated, "quoted" fields with "" for a quote,
 * CRLF or LF line ends, a leading UTF-8 BOM skipped). It reads one record at a time from a
 * FILE, so files of any length go through a bounded buffer. */
#ifndef ACV_PLATFORM_CSV_H
#define ACV_PLATFORM_CSV_H

#include <stdio.h>

typedef struct acv_csv acv_csv;

/* A record has at most ACV_CSV_MAX_FIELDS fields and max_field * ACV_CSV_RECORD_FIELDS bytes:
 * the reader's memory stays bounded whatever the input (ACV_ERANGE beyond). */
#define ACV_CSV_MAX_FIELDS 4096
#define ACV_CSV_RECORD_FIELDS 8

/* Reads from f (not closed by acv_csv_free). Fields longer than max_field bytes (0: 1 MiB)
 * are an error (ACV_ERANGE), and so are records beyond the limits above. `name` is used in
 * messages ("labels.csv line 3: ..."). */
int acv_csv_new(FILE *f, const char *name, size_t max_field, acv_csv **out);
void acv_csv_free(acv_csv *r);
/* The next record: *fields points to *n NUL-terminated strings owned by the reader and valid
 * until the next call. Returns 1 for a record, 0 at the end of the input, or a negative
 * ACV_E* code (ACV_EFORMAT for broken quoting, naming the line). Blank lines are skipped. */
int acv_csv_next(acv_csv *r, char ***fields, int *n);
/* The line on which the last record started (1-based). */
int acv_csv_line(const acv_csv *r);

#endif
