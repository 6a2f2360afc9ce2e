/* Label schemas (the classes of a project), built to stay fast with tens of thousands of
 * classes: unique names per project, an optional parent (hierarchy), a display color,
 * aliases and a description; bulk import from JSON or CSV in one transaction; substring
 * search over names and aliases through an FTS5 trigram index (schema.c).
 *
 * A label as the API shows it: {"id","project_id","name","parent_id","parent" (the parent's
 * name or null),"color" ("#rrggbb"),"aliases":[...],"description","created_at","updated_at"}.
 * Input objects use the same keys; "parent" names a label of the same project (or another
 * label of the same import), "parent_id" gives it by id. Changes are audited. */
#ifndef ACV_PLATFORM_LABELS_H
#define ACV_PLATFORM_LABELS_H

#include <jansson.h>
#include <stdint.h>

#include "platform/auth.h"
#include "platform/db.h"

#define ACV_LABEL_NAME_MAX 200
#define ACV_LABEL_ALIASES_MAX 64
#define ACV_LABEL_IMPORT_MAX 100000

int acv_label_get(acv_dbconn *c, int64_t id, json_t **out);
/* The project a label belongs to (ACV_ENOTFOUND when there is no such label). */
int acv_label_project(acv_dbconn *c, int64_t id, int64_t *project_id);
/* Labels of a project. Without q: by id. With q: those whose name or an alias contains q
 * (case-insensitive), best first: exact name, name prefix, name substring, alias only; then
 * by name. *total counts all matches. */
int acv_label_list(acv_dbconn *c, int64_t project_id, const char *q, int limit, int offset, json_t **items,
                   int64_t *total);
/* Creates every label of the array `labels` (input objects) in one transaction: all or
 * nothing. A name used twice, or already in the project, is ACV_EEXIST naming it; a bad
 * field, an unknown parent or a parent cycle is ACV_EINVAL/ACV_EFORMAT naming the entry.
 * *created (new reference, may be NULL) receives the created labels in input order.
 * `source` ("json", "csv") is recorded in the audit entry. */
int acv_label_import(acv_dbconn *c, const acv_principal *who, int64_t project_id, const json_t *labels,
                     const char *source, json_t **created);
/* Reads a CSV file with a header row naming some of the columns name (required), parent,
 * color, aliases (separated by '|' or ';'), description into an array of input objects
 * (new reference). Errors name the line. */
int acv_label_csv_read(const char *path, json_t **labels);
/* Applies a patch {"name","parent"|"parent_id" (null clears),"color","aliases","description"}. */
int acv_label_update(acv_dbconn *c, const acv_principal *who, int64_t id, const json_t *patch);
/* Deletes a label; its children lose their parent. */
int acv_label_delete(acv_dbconn *c, const acv_principal *who, int64_t id);

#endif
