/* Roles, password hashing, tokens, login and the first administrator (see auth.h). */
#include "platform/auth.h"

#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autocv/error.h"
#include "base/log.h"
#include "platform/audit.h"
#include "platform/users.h"

/* ---- roles ----------------------------------------------------------------------------- */

static const struct {
    unsigned bit;
    const char *name;
} ROLES[] = {
    {ACV_ROLE_ADMIN, "admin"},         {ACV_ROLE_OWNER, "owner"},       {ACV_ROLE_ENGINEER, "engineer"},
    {ACV_ROLE_ANNOTATOR, "annotator"}, {ACV_ROLE_REVIEWER, "reviewer"}, {ACV_ROLE_OPERATOR, "operator"},
    {ACV_ROLE_VIEWER, "viewer"},
};
#define NROLES ((int)(sizeof ROLES / sizeof ROLES[0]))

const char *acv_role_name(unsigned bit)
{
    for (int i = 0; i < NROLES; i++)
        if (ROLES[i].bit == bit) return ROLES[i].name;
    return NULL;
}

unsigned acv_role_bit(const char *name, unsigned allowed)
{
    for (int i = 0; name && i < NROLES; i++)
        if (!strcmp(ROLES[i].name, name)) return ROLES[i].bit & allowed;
    return 0;
}

json_t *acv_roles_json(unsigned mask)
{
    json_t *a = json_array();
    for (int i = 0; a && i < NROLES; i++)
        if (mask & ROLES[i].bit) json_array_append_new(a, json_string(ROLES[i].name));
    return a;
}

int acv_roles_parse(const json_t *arr, unsigned allowed, const char *field, unsigned *mask)
{
    *mask = 0;
    if (!json_is_array(arr)) return acv_error(ACV_EFORMAT, "field '%s' must be an array of role names", field);
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) {
        if (!json_is_string(v)) return acv_error(ACV_EFORMAT, "field '%s'[%zu] must be a string", field, i);
        unsigned b = acv_role_bit(json_string_value(v), allowed);
        if (!b) {
            char names[160] = "";
            for (int k = 0; k < NROLES; k++)
                if (ROLES[k].bit & allowed)
                    snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", names[0] ? ", " : "",
                             ROLES[k].name);
            return acv_error(ACV_EINVAL, "field '%s': unknown role '%s' (one of: %s)", field, json_string_value(v),
                             names);
        }
        *mask |= b;
    }
    return 0;
}

/* ---- passwords ------------------------------------------------------------------------- */

static pthread_once_t g_sodium_once = PTHREAD_ONCE_INIT;
static int g_sodium_ok;
static void sodium_setup(void) { g_sodium_ok = sodium_init() >= 0; }

static int sodium_ready(void)
{
    pthread_once(&g_sodium_once, sodium_setup);
    return g_sodium_ok ? 0 : acv_error(ACV_EIO, "libsodium failed to initialize");
}

/* At most MAX_HASHING Argon2 computations at once (64 MiB each). */
#define MAX_HASHING 4
static pthread_mutex_t g_hash_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_hash_cv = PTHREAD_COND_INITIALIZER;
static int g_hashing;

static void hash_enter(void)
{
    pthread_mutex_lock(&g_hash_mu);
    while (g_hashing >= MAX_HASHING) pthread_cond_wait(&g_hash_cv, &g_hash_mu);
    g_hashing++;
    pthread_mutex_unlock(&g_hash_mu);
}

static void hash_leave(void)
{
    pthread_mutex_lock(&g_hash_mu);
    g_hashing--;
    pthread_cond_signal(&g_hash_cv);
    pthread_mutex_unlock(&g_hash_mu);
}

int acv_auth_password_ok(const char *password)
{
    size_t n = password ? strlen(password) : 0;
    if (n < 8) return acv_error(ACV_EINVAL, "password too short: at least 8 characters are required");
    if (n > 1024) return acv_error(ACV_EINVAL, "password too long: at most 1024 bytes");
    return 0;
}

int acv_auth_hash_password(const char *password, char out[ACV_PWHASH_MAX])
{
    _Static_assert(crypto_pwhash_STRBYTES <= ACV_PWHASH_MAX, "ACV_PWHASH_MAX too small");
    int rc = sodium_ready();
    if (rc) return rc;
    hash_enter();
    int r = crypto_pwhash_str(out, password, strlen(password), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                              crypto_pwhash_MEMLIMIT_INTERACTIVE);
    hash_leave();
    return r == 0 ? 0 : acv_error(ACV_ENOMEM, "password hashing failed (out of memory)");
}

int acv_auth_verify_password(const char *hash, const char *password)
{
    int rc = sodium_ready();
    if (rc) return rc;
    hash_enter();
    int r = crypto_pwhash_str_verify(hash, password, strlen(password));
    hash_leave();
    return r == 0 ? 0 : acv_error(ACV_EINVAL, "wrong password");
}

/* A hash to verify against when the user does not exist, so that an unknown user costs the
 * same time as a wrong password. */
static pthread_once_t g_dummy_once = PTHREAD_ONCE_INIT;
static char g_dummy_hash[ACV_PWHASH_MAX];
static void make_dummy(void)
{
    if (acv_auth_hash_password("not-a-real-password-for-timing", g_dummy_hash)) g_dummy_hash[0] = 0;
}

/* ---- tokens ---------------------------------------------------------------------------- */

void acv_auth_token_hash(const char *token, char hex[65])
{
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, (const unsigned char *)token, strlen(token));
    sodium_bin2hex(hex, 65, h, sizeof h);
}

int acv_auth_token_create(acv_dbconn *c, int64_t user_id, const char *kind, const char *name, int64_t now,
                          int64_t expires_at, char token[ACV_TOKEN_LEN + 1], int64_t *token_id)
{
    int rc = sodium_ready();
    if (rc) return rc;
    unsigned char raw[32];
    randombytes_buf(raw, sizeof raw);
    memcpy(token, "acv_", 4);
    sodium_bin2base64(token + 4, ACV_TOKEN_LEN + 1 - 4, raw, sizeof raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof raw);
    char hex[65], prefix[13], created[ACV_DB_TIME_LEN], expires[ACV_DB_TIME_LEN];
    acv_auth_token_hash(token, hex);
    memcpy(prefix, token, 12);
    prefix[12] = 0;
    acv_db_time(now, created);
    if (expires_at > 0) acv_db_time(expires_at, expires);
    rc = acv_db_exec(c,
                     "INSERT INTO tokens(user_id, kind, name, token_hash, prefix, created_at, expires_at) "
                     "VALUES(?, ?, ?, ?, ?, ?, ?)",
                     "Issssss", user_id, kind, name ? name : "", hex, prefix, created,
                     expires_at > 0 ? expires : NULL);
    if (rc) return acv_error_prefix(rc, "creating a %s token: ", kind);
    if (token_id) *token_id = acv_db_last_id(c);
    return 0;
}

int acv_auth_token_check(acv_dbconn *c, const char *token, int64_t now, acv_principal *who)
{
    memset(who, 0, sizeof *who);
    if (!token || strlen(token) != ACV_TOKEN_LEN || strncmp(token, "acv_", 4))
        return acv_error(ACV_ENOTFOUND, "invalid token");
    char hex[65];
    acv_auth_token_hash(token, hex);
    json_t *row;
    int rc = acv_db_query_row(c, &row,
                              "SELECT t.id, t.user_id, t.expires_at, t.revoked_at, t.last_used_at, u.username, "
                              "u.roles, u.disabled FROM tokens t JOIN users u ON u.id = t.user_id "
                              "WHERE t.token_hash = ?",
                              "s", hex);
    if (rc) return rc;
    if (!row) return acv_error(ACV_ENOTFOUND, "invalid token");
    char nows[ACV_DB_TIME_LEN];
    acv_db_time(now, nows);
    const char *exp = json_string_value(json_object_get(row, "expires_at"));
    if (json_is_string(json_object_get(row, "revoked_at"))) rc = acv_error(ACV_ENOTFOUND, "token revoked");
    else if (exp && strcmp(exp, nows) <= 0) rc = acv_error(ACV_ENOTFOUND, "token expired");
    else if (json_integer_value(json_object_get(row, "disabled"))) rc = acv_error(ACV_ENOTFOUND, "user disabled");
    if (!rc) {
        who->token_id = json_integer_value(json_object_get(row, "id"));
        who->user_id = json_integer_value(json_object_get(row, "user_id"));
        who->roles = (unsigned)json_integer_value(json_object_get(row, "roles"));
        snprintf(who->username, sizeof who->username, "%s", json_string_value(json_object_get(row, "username")));
        /* Record use at most every 5 minutes, and never wait for the write lock for it. */
        const char *last = json_string_value(json_object_get(row, "last_used_at"));
        char stale[ACV_DB_TIME_LEN];
        acv_db_time(now - 300, stale);
        if (!last || strcmp(last, stale) < 0) {
            acv_db_no_wait(c, true);
            if (acv_db_exec(c, "UPDATE tokens SET last_used_at = ? WHERE id = ?", "sI", nows, who->token_id))
                acv_error_clear();
            acv_db_no_wait(c, false);
        }
    }
    json_decref(row);
    return rc;
}

int acv_auth_token_revoke(acv_dbconn *c, int64_t token_id, int64_t user_id, int64_t now)
{
    char nows[ACV_DB_TIME_LEN];
    acv_db_time(now, nows);
    int rc = acv_db_exec(c,
                         "UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL "
                         "AND (? = 0 OR user_id = ?)",
                         "sIII", nows, token_id, user_id, user_id);
    if (rc) return rc;
    if (acv_db_changes(c) == 0) return acv_error(ACV_ENOTFOUND, "token %lld not found", (long long)token_id);
    return 0;
}

int acv_auth_revoke_sessions(acv_dbconn *c, int64_t user_id, int64_t keep_token_id, int64_t now)
{
    char nows[ACV_DB_TIME_LEN];
    acv_db_time(now, nows);
    return acv_db_exec(c,
                       "UPDATE tokens SET revoked_at = ? WHERE user_id = ? AND kind = 'session' "
                       "AND revoked_at IS NULL AND id != ?",
                       "sII", nows, user_id, keep_token_id);
}

int acv_auth_revoke_all(acv_dbconn *c, int64_t user_id, int64_t now, int64_t *n)
{
    char nows[ACV_DB_TIME_LEN];
    acv_db_time(now, nows);
    int rc = acv_db_exec(c, "UPDATE tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL", "sI", nows,
                         user_id);
    if (!rc && n) *n = acv_db_changes(c);
    return rc;
}

/* ---- login and bootstrap ------------------------------------------------------------- */

int acv_auth_login(acv_dbconn *c, const char *username, const char *password, int64_t now, int64_t ttl_s,
                   char token[ACV_TOKEN_LEN + 1], int64_t *token_id, json_t **user)
{
    *user = NULL;
    if (!username || !password) return acv_error(ACV_ENOTFOUND, "invalid username or password");
    json_t *row;
    int rc = acv_db_query_row(c, &row, "SELECT id, password_hash, disabled FROM users WHERE username = ?", "s",
                              username);
    if (rc) return rc;
    const char *hash = row ? json_string_value(json_object_get(row, "password_hash")) : NULL;
    if (!hash) {
        pthread_once(&g_dummy_once, make_dummy);
        if (g_dummy_hash[0]) acv_auth_verify_password(g_dummy_hash, password);
        json_decref(row);
        return acv_error(ACV_ENOTFOUND, "invalid username or password");
    }
    int64_t id = json_integer_value(json_object_get(row, "id"));
    bool disabled = json_integer_value(json_object_get(row, "disabled")) != 0;
    rc = acv_auth_verify_password(hash, password);
    json_decref(row);
    if (rc || disabled) return acv_error(ACV_ENOTFOUND, "invalid username or password");
    char nows[ACV_DB_TIME_LEN];
    acv_db_time(now, nows);
    if ((rc = acv_db_begin(c))) return rc;
    rc = acv_auth_token_create(c, id, "session", "login", now, now + ttl_s, token, token_id);
    if (!rc) rc = acv_db_exec(c, "UPDATE users SET last_login_at = ? WHERE id = ?", "sI", nows, id);
    if ((rc = acv_db_end(c, rc))) return rc;
    return acv_user_get(c, id, user);
}

int acv_auth_bootstrap(acv_dbconn *c, const char *env_password, char **generated)
{
    *generated = NULL;
    int rc = sodium_ready();
    if (rc) return rc;
    int64_t n;
    if ((rc = acv_db_query_int(c, &n, 0, "SELECT COUNT(*) FROM users", NULL))) return rc;
    if (n > 0) return 0;
    char *pw = NULL;
    if (env_password) {
        if ((rc = acv_auth_password_ok(env_password)))
            return acv_error_prefix(rc, "AUTOCV_ADMIN_PASSWORD: ");
    } else {
        /* 20 characters from an unambiguous alphabet: ~115 bits. */
        static const char A[] = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
        pw = malloc(21);
        if (!pw) return acv_error(ACV_ENOMEM, "out of memory");
        for (int i = 0; i < 20; i++) pw[i] = A[randombytes_uniform(sizeof A - 1)];
        pw[20] = 0;
    }
    acv_principal sys = {0};
    snprintf(sys.username, sizeof sys.username, "system");
    int64_t id;
    if ((rc = acv_db_begin(c))) {
        free(pw);
        return rc;
    }
    /* Re-check inside the write transaction: two processes starting at once create one admin. */
    rc = acv_db_query_int(c, &n, 0, "SELECT COUNT(*) FROM users", NULL);
    if (!rc && n == 0) rc = acv_user_create(c, &sys, "admin", env_password ? env_password : pw, ACV_ROLE_ADMIN, &id);
    rc = acv_db_end(c, rc);
    if (rc || n > 0) {
        free(pw);
        return rc;
    }
    *generated = pw;
    return 0;
}
