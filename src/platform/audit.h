/* The audit log: who created, changed or deleted what, and when. Writers call
 * acv_audit_write() inside the transaction that makes the change, so a change and its entry
 * commit (or vanish) together. */
#ifndef ACV_PLATFORM_AUDIT_H
#define ACV_PLATFORM_AUDIT_H

#include <jansson.h>
#include <stdint.h>

#include "platform/auth.h"
#include "platform/db.h"

/* Appends one entry. who NULL (or user_id 0) records the actor "system". action is a verb
 * ("create", "update", "delete", "login", ...), target_type a noun ("user", "project",
 * "label", ...); target_id and project_id are 0 when not applicable. details is stolen (may
 * be NULL). */
int acv_audit_write(acv_dbconn *c, const acv_principal *who, const char *action, const char *target_type,
                    int64_t target_id, int64_t project_id, json_t *details);

/* Filters for acv_audit_list: 0 / NULL = any. since/until compare with `at` (ISO text). */
typedef struct acv_audit_filter {
    int64_t actor_id, project_id, target_id;
    const char *action, *target_type, *since, *until;
} acv_audit_filter;

/* Entries matching f, newest first: *items (new reference) holds at most limit of them
 * after skipping offset; *total counts all matches. */
int acv_audit_list(acv_dbconn *c, const acv_audit_filter *f, int limit, int offset, json_t **items,
                   int64_t *total);

#endif
