/* Streaming RFC 4180 CSV reader (see csv.h). */
#include "platform/csv.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "autocv/error.h"

struct acv_csv {
    FILE *f;
    char name[256];
    size_t max_field;
    size_t max_record;  /* bytes of one record, separators included */
    int line, rec_line;
    bool started;
    char *buf;          /* all fields of the record, each NUL-terminated */
    size_t len, cap;
    size_t *offs;       /* start of each field in buf */
    char **ptrs;
    int nf, capf;
};

int acv_csv_new(FILE *f, const char *name, size_t max_field, acv_csv **out)
{
    acv_csv *r = calloc(1, sizeof *r);
    if (!r) return acv_error(ACV_ENOMEM, "out of memory");
    r->f = f;
    snprintf(r->name, sizeof r->name, "%s", name ? name : "CSV");
    r->max_field = max_field ? max_field : (1u << 20);
    r->max_record = r->max_field * ACV_CSV_RECORD_FIELDS;
    r->line = 1;
    *out = r;
    return 0;
}

void acv_csv_free(acv_csv *r)
{
    if (!r) return;
    free(r->buf);
    free(r->offs);
    free(r->ptrs);
    free(r);
}

int acv_csv_line(const acv_csv *r) { return r->rec_line; }

static int put(acv_csv *r, char ch)
{
    if (r->len >= r->max_record)
        return acv_error(ACV_ERANGE, "%s line %d: a record is longer than %zu bytes", r->name, r->rec_line,
                         r->max_record);
    if (r->len + 1 >= r->cap) {
        size_t nc = r->cap ? r->cap * 2 : 256;
        char *nb = realloc(r->buf, nc);
        if (!nb) return acv_error(ACV_ENOMEM, "out of memory");
        r->buf = nb;
        r->cap = nc;
    }
    r->buf[r->len++] = ch;
    return 0;
}

static int start_field(acv_csv *r)
{
    if (r->nf >= ACV_CSV_MAX_FIELDS)
        return acv_error(ACV_ERANGE, "%s line %d: more than %d fields in one record", r->name, r->rec_line,
                         ACV_CSV_MAX_FIELDS);
    if (r->nf == r->capf) {
        int nc = r->capf ? r->capf * 2 : 16;
        size_t *no = realloc(r->offs, (size_t)nc * sizeof *no);
        if (!no) return acv_error(ACV_ENOMEM, "out of memory");
        r->offs = no;
        char **np = realloc(r->ptrs, (size_t)nc * sizeof *np);
        if (!np) return acv_error(ACV_ENOMEM, "out of memory");
        r->ptrs = np;
        r->capf = nc;
    }
    r->offs[r->nf++] = r->len;
    return 0;
}

int acv_csv_next(acv_csv *r, char ***fields, int *n)
{
    for (;;) {
        r->len = 0;
        r->nf = 0;
        r->rec_line = r->line;
        int ch = fgetc(r->f);
        if (!r->started) {
            r->started = true;
            if (ch == 0xEF) { /* UTF-8 BOM */
                int b = fgetc(r->f), c = fgetc(r->f);
                if (b != 0xBB || c != 0xBF)
                    return acv_error(ACV_EFORMAT, "%s line 1: not UTF-8 text", r->name);
                ch = fgetc(r->f);
            }
        }
        if (ch == EOF) {
            if (ferror(r->f)) return acv_error(ACV_EIO, "%s: read error", r->name);
            return 0;
        }
        if (ch == '\n' || ch == '\r') { /* blank line */
            if (ch == '\r' && (ch = fgetc(r->f)) != '\n' && ch != EOF) ungetc(ch, r->f);
            r->line++;
            continue;
        }
        int rc = start_field(r);
        bool quoted = false, was_quoted = false;
        size_t flen = 0;
        for (;;) {
            if (rc) return rc;
            if (ch == EOF) {
                if (quoted) return acv_error(ACV_EFORMAT, "%s line %d: a quoted field is not closed", r->name,
                                             r->rec_line);
                break;
            }
            if (quoted) {
                if (ch == '"') {
                    int nx = fgetc(r->f);
                    if (nx == '"') rc = put(r, '"'), flen++;
                    else {
                        quoted = false;
                        ch = nx;
                        continue;
                    }
                } else {
                    if (ch == '\n') r->line++;
                    rc = put(r, (char)ch);
                    flen++;
                }
            } else if (ch == ',') {
                if ((rc = put(r, 0))) return rc;
                rc = start_field(r);
                flen = 0;
                was_quoted = false;
            } else if (ch == '\n' || ch == '\r') {
                if (ch == '\r' && (ch = fgetc(r->f)) != '\n' && ch != EOF) ungetc(ch, r->f);
                r->line++;
                break;
            } else if (ch == '"') {
                if (flen != 0 || was_quoted)
                    return acv_error(ACV_EFORMAT, "%s line %d: a quote inside an unquoted field (quote the whole "
                                                  "field and double the quote)",
                                     r->name, r->line);
                quoted = was_quoted = true;
            } else {
                if (was_quoted)
                    return acv_error(ACV_EFORMAT, "%s line %d: text after a closing quote", r->name, r->line);
                rc = put(r, (char)ch);
                flen++;
            }
            if (flen > r->max_field)
                return acv_error(ACV_ERANGE, "%s line %d: a field is longer than %zu bytes", r->name, r->line,
                                 r->max_field);
            ch = fgetc(r->f);
        }
        if ((rc = put(r, 0))) return rc;
        for (int i = 0; i < r->nf; i++) r->ptrs[i] = r->buf + r->offs[i];
        *fields = r->ptrs;
        *n = r->nf;
        return 1;
    }
}
