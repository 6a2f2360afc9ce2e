/* User accounts: create, read, list, update, delete, with the rules that keep the platform
 * usable (valid usernames, password policy, at least one enabled administrator). Changes are
 * written to the audit log in the same transaction. Permission checks (who may call these)
 * belong to the caller. */
#ifndef ACV_PLATFORM_USERS_H
#define ACV_PLATFORM_USERS_H

#include <jansson.h>
#include <stdint.h>

#include "platform/auth.h"
#include "platform/db.h"

/* A user as the API shows it: {"id","username","roles":[...],"disabled","created_at",
 * "updated_at","last_login_at"} (new reference). ACV_ENOTFOUND when there is no such user. */
int acv_user_get(acv_dbconn *c, int64_t id, json_t **out);
/* Users whose name contains q (NULL: all), by id; *total counts all matches. */
int acv_user_list(acv_dbconn *c, const char *q, int limit, int offset, json_t **items, int64_t *total);
/* Usernames: 1..64 characters of [A-Za-z0-9._@-], starting with a letter or digit. */
int acv_user_name_ok(const char *username);
/* Creates a user (ACV_EEXIST when the name is taken, case-insensitively). */
int acv_user_create(acv_dbconn *c, const acv_principal *who, const char *username, const char *password,
                    unsigned roles, int64_t *id);
/* Applies a patch {"username","password","roles","disabled"} (any subset; "old_password" is
 * ignored here, the caller checks it). A new password revokes the user's login sessions
 * except keep_token_id; disabling revokes all their tokens (sessions and API tokens), so
 * enabling the account again revives none. Refuses (ACV_EEXIST, a conflict) to leave no enabled admin. */
int acv_user_update(acv_dbconn *c, const acv_principal *who, int64_t id, const json_t *patch,
                    int64_t keep_token_id);
/* Deletes a user with their tokens and memberships. Refuses (ACV_EEXIST) the caller's own
 * account, the last enabled admin, and the last owner of a project. */
int acv_user_delete(acv_dbconn *c, const acv_principal *who, int64_t id);
/* 0 when password is the user's current password, ACV_EINVAL otherwise. */
int acv_user_check_password(acv_dbconn *c, int64_t id, const char *password);

#endif
