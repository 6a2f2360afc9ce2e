/* Authentication: roles, Argon2id password hashes (libsodium crypto_pwhash_str), login
 * sessions and long-lived API tokens, and the first administrator.
 *
 * Roles come in two scopes that share names:
 *  - global roles, a set per user (users.roles): admin, engineer, annotator, reviewer,
 *    operator, viewer. admin may do everything everywhere.
 *  - a project role, one per membership (project_members.role): owner, engineer, annotator,
 *    reviewer, operator, viewer. owner manages the project and its members.
 * Both are handled as bit masks of ACV_ROLE_*.
 *
 * Tokens are "acv_" + 43 characters of base64url (256 random bits). Only their SHA-256 is
 * stored, with the first 12 characters kept in clear to tell tokens apart in listings. */
#ifndef ACV_PLATFORM_AUTH_H
#define ACV_PLATFORM_AUTH_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "platform/db.h"

enum {
    ACV_ROLE_ADMIN = 1u << 0,
    ACV_ROLE_ENGINEER = 1u << 1,
    ACV_ROLE_ANNOTATOR = 1u << 2,
    ACV_ROLE_REVIEWER = 1u << 3,
    ACV_ROLE_OPERATOR = 1u << 4,
    ACV_ROLE_VIEWER = 1u << 5,
    ACV_ROLE_OWNER = 1u << 6, /* project scope only */
};
#define ACV_ROLES_GLOBAL (ACV_ROLE_ADMIN | ACV_ROLE_ENGINEER | ACV_ROLE_ANNOTATOR | ACV_ROLE_REVIEWER | \
                          ACV_ROLE_OPERATOR | ACV_ROLE_VIEWER)
#define ACV_ROLES_PROJECT (ACV_ROLE_OWNER | ACV_ROLE_ENGINEER | ACV_ROLE_ANNOTATOR | ACV_ROLE_REVIEWER | \
                           ACV_ROLE_OPERATOR | ACV_ROLE_VIEWER)

/* The name of one role bit ("admin"), or NULL for anything else. */
const char *acv_role_name(unsigned bit);
/* The bit for a role name among the allowed bits; 0 when unknown or not allowed. */
unsigned acv_role_bit(const char *name, unsigned allowed);
/* The names of the bits in mask, in a fixed order (new reference). */
json_t *acv_roles_json(unsigned mask);
/* Parses a JSON array of role names allowed by `allowed` into a mask. Errors name `field`
 * (ACV_EFORMAT: not an array of strings; ACV_EINVAL: an unknown role). */
int acv_roles_parse(const json_t *arr, unsigned allowed, const char *field, unsigned *mask);

/* The caller of a request. user_id 0 = nobody (a public route). */
typedef struct acv_principal {
    int64_t user_id;
    int64_t token_id;
    unsigned roles;     /* global role bits */
    char username[72];
} acv_principal;

/* ---- passwords ---- */
#define ACV_PWHASH_MAX 128
/* 8..1024 bytes, no NUL. ACV_EINVAL with the rule otherwise. */
int acv_auth_password_ok(const char *password);
/* Argon2id (libsodium's interactive limits) into out. At most a few hashes run at once
 * process-wide (each takes 64 MiB for ~0.1 s); the rest wait their turn. */
int acv_auth_hash_password(const char *password, char out[ACV_PWHASH_MAX]);
/* 0 when password matches hash, ACV_EINVAL when it does not. */
int acv_auth_verify_password(const char *hash, const char *password);

/* ---- tokens ---- */
#define ACV_TOKEN_LEN 47 /* "acv_" + 43 */
/* Creates a token of kind "session" or "api" for user_id, valid until expires_at (unix
 * seconds; 0 = never). The secret is written to token (shown to the user once). */
int acv_auth_token_create(acv_dbconn *c, int64_t user_id, const char *kind, const char *name, int64_t now,
                          int64_t expires_at, char token[ACV_TOKEN_LEN + 1], int64_t *token_id);
/* Resolves a presented token at time now: fills *who when the token exists, is not revoked,
 * has not expired and its user is enabled. ACV_ENOTFOUND ("invalid token", "token
 * expired", "token revoked", "user disabled") otherwise. */
int acv_auth_token_check(acv_dbconn *c, const char *token, int64_t now, acv_principal *who);
/* Revokes token_id (owned by user_id unless user_id is 0). ACV_ENOTFOUND when there is no
 * such live token. */
int acv_auth_token_revoke(acv_dbconn *c, int64_t token_id, int64_t user_id, int64_t now);
/* Revokes every session token of user_id except keep_token_id. */
int acv_auth_revoke_sessions(acv_dbconn *c, int64_t user_id, int64_t keep_token_id, int64_t now);
/* Revokes every live token of user_id, sessions and API tokens alike (a disabled account: its
 * tokens must not come back when it is enabled again). *n (optional) gets how many. */
int acv_auth_revoke_all(acv_dbconn *c, int64_t user_id, int64_t now, int64_t *n);
/* Lowercase hex SHA-256 of token. */
void acv_auth_token_hash(const char *token, char hex[65]);

/* ---- login ---- */
/* Checks username/password and opens a session of ttl_s seconds. On success the secret is
 * in token and *user is the user's public JSON (new reference). A wrong password, an unknown
 * or a disabled user all give ACV_ENOTFOUND with the same message, after the same work. */
int acv_auth_login(acv_dbconn *c, const char *username, const char *password, int64_t now, int64_t ttl_s,
                   char token[ACV_TOKEN_LEN + 1], int64_t *token_id, json_t **user);

/* On a database without users, creates `admin` with roles {admin}. The password is
 * env_password when given (it must pass acv_auth_password_ok); otherwise a random one is
 * generated and returned in *generated (malloc'd; the caller shows it once and frees it).
 * Does nothing (and sets *generated = NULL) when a user exists. */
int acv_auth_bootstrap(acv_dbconn *c, const char *env_password, char **generated);

#endif
