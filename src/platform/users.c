/* User accounts (see users.h). */
#include "platform/users.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autocv/error.h"
#include "platform/audit.h"
#include "platform/jsonarg.h"

#define USER_COLS                                                                                            \
    "id, username, roles, disabled AS disabled_bool, created_at, updated_at, last_login_at, lang"

/* Replaces the integer "roles" of a user row by the list of names. */
static void fix_roles(json_t *u)
{
    unsigned m = (unsigned)json_integer_value(json_object_get(u, "roles"));
    json_object_set_new(u, "roles", acv_roles_json(m & ACV_ROLES_GLOBAL));
}

int acv_user_get(acv_dbconn *c, int64_t id, json_t **out)
{
    int rc = acv_db_query_row(c, out, "SELECT " USER_COLS " FROM users WHERE id = ?", "I", id);
    if (rc) return rc;
    if (!*out) return acv_error(ACV_ENOTFOUND, "user %lld not found", (long long)id);
    fix_roles(*out);
    return 0;
}

int acv_user_list(acv_dbconn *c, const char *q, int limit, int offset, json_t **items, int64_t *total)
{
    int rc = acv_db_query_int(c, total, 0, "SELECT COUNT(*) FROM users WHERE (?1 IS NULL OR instr(lower(username), "
                                           "lower(?1)) > 0)",
                              "s", q);
    if (rc) return rc;
    rc = acv_db_query(c, items,
                      "SELECT " USER_COLS " FROM users WHERE (?1 IS NULL OR instr(lower(username), lower(?1)) > 0) "
                      "ORDER BY id LIMIT ?2 OFFSET ?3",
                      "sii", q, limit, offset);
    if (rc) return rc;
    size_t i;
    json_t *u;
    json_array_foreach(*items, i, u) fix_roles(u);
    return 0;
}

int acv_user_name_ok(const char *u)
{
    size_t n = u ? strlen(u) : 0;
    if (n < 1 || n > 64) return acv_error(ACV_EINVAL, "username must have 1 to 64 characters");
    if (!isalnum((unsigned char)u[0])) return acv_error(ACV_EINVAL, "username must start with a letter or digit");
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)u[i];
        if (!isalnum(ch) && !strchr("._@-", ch))
            return acv_error(ACV_EINVAL, "username '%s': character '%c' is not allowed (use letters, digits, . _ @ -)",
                             u, ch);
    }
    return 0;
}

int acv_user_create(acv_dbconn *c, const acv_principal *who, const char *username, const char *password,
                    unsigned roles, int64_t *id)
{
    int rc;
    if ((rc = acv_user_name_ok(username)) || (rc = acv_auth_password_ok(password))) return rc;
    roles &= ACV_ROLES_GLOBAL;
    char hash[ACV_PWHASH_MAX], now[ACV_DB_TIME_LEN];
    if ((rc = acv_auth_hash_password(password, hash))) return rc;
    acv_db_time(acv_db_now(), now);
    if ((rc = acv_db_begin(c))) return rc;
    rc = acv_db_exec(c,
                     "INSERT INTO users(username, password_hash, roles, created_at, updated_at) VALUES(?, ?, ?, ?, ?)",
                     "ssiss", username, hash, (int)roles, now, now);
    if (rc == ACV_EEXIST) rc = acv_error(ACV_EEXIST, "user '%s' already exists", username);
    int64_t uid = acv_db_last_id(c);
    if (!rc)
        rc = acv_audit_write(c, who, "create", "user", uid, 0,
                             json_pack("{s:s, s:o}", "username", username, "roles", acv_roles_json(roles)));
    if ((rc = acv_db_end(c, rc))) return rc;
    if (id) *id = uid;
    return 0;
}

/* Enabled admins other than user `except`. */
static int other_admins(acv_dbconn *c, int64_t except, int64_t *n)
{
    return acv_db_query_int(c, n, 0, "SELECT COUNT(*) FROM users WHERE (roles & ?) != 0 AND disabled = 0 AND id != ?",
                            "iI", (int)ACV_ROLE_ADMIN, except);
}

int acv_user_update(acv_dbconn *c, const acv_principal *who, int64_t id, const json_t *patch,
                    int64_t keep_token_id)
{
    static const char *const FIELDS[] = {"username", "password", "old_password", "roles", "disabled", "lang", NULL};
    int rc = acv_jarg_only(patch, FIELDS);
    /* lang: the interface language, "en" or "zh", null to forget the choice */
    json_t *jlang = json_object_get(patch, "lang");
    const char *lang = jlang && json_is_string(jlang) ? json_string_value(jlang) : NULL;
    if (!rc && jlang && !json_is_null(jlang) && (!lang || (strcmp(lang, "en") && strcmp(lang, "zh"))))
        rc = acv_error(ACV_EINVAL, "field 'lang' must be \"en\", \"zh\" or null");
    const char *username = NULL, *password = NULL;
    bool disabled = false, has_disabled = false;
    unsigned roles = 0;
    json_t *jroles = json_object_get(patch, "roles");
    if (!rc) rc = acv_jarg_str(patch, "username", false, 0, &username);
    if (!rc) rc = acv_jarg_str(patch, "password", false, 0, &password);
    if (!rc) rc = acv_jarg_bool(patch, "disabled", &disabled, &has_disabled);
    if (!rc && jroles) rc = acv_roles_parse(jroles, ACV_ROLES_GLOBAL, "roles", &roles);
    if (!rc && username) rc = acv_user_name_ok(username);
    if (!rc && password) rc = acv_auth_password_ok(password);
    if (rc) return rc;
    char hash[ACV_PWHASH_MAX], now[ACV_DB_TIME_LEN];
    if (password && (rc = acv_auth_hash_password(password, hash))) return rc;
    acv_db_time(acv_db_now(), now);

    if ((rc = acv_db_begin(c))) return rc;
    json_t *old = NULL, *changes = json_object();
    rc = acv_user_get(c, id, &old);
    if (!rc) {
        unsigned old_roles = 0;
        acv_roles_parse(json_object_get(old, "roles"), ACV_ROLES_GLOBAL, "roles", &old_roles);
        bool was_admin = (old_roles & ACV_ROLE_ADMIN) != 0;
        bool stays_admin = jroles ? (roles & ACV_ROLE_ADMIN) != 0 : was_admin;
        bool stays_enabled = has_disabled ? !disabled : !json_is_true(json_object_get(old, "disabled"));
        int64_t others = 1;
        if (was_admin && (!stays_admin || !stays_enabled)) rc = other_admins(c, id, &others);
        if (!rc && others == 0)
            rc = acv_error(ACV_EEXIST, "user %lld is the last enabled administrator; make another user admin first",
                           (long long)id);
    }
    if (!rc && username) {
        rc = acv_db_exec(c, "UPDATE users SET username = ?, updated_at = ? WHERE id = ?", "ssI", username, now, id);
        if (rc == ACV_EEXIST) rc = acv_error(ACV_EEXIST, "user '%s' already exists", username);
        json_object_set_new(changes, "username", json_string(username));
    }
    if (!rc && password) {
        rc = acv_db_exec(c, "UPDATE users SET password_hash = ?, updated_at = ? WHERE id = ?", "ssI", hash, now, id);
        if (!rc) rc = acv_auth_revoke_sessions(c, id, keep_token_id, acv_db_now());
        json_object_set_new(changes, "password", json_string("changed"));
    }
    if (!rc && jroles) {
        rc = acv_db_exec(c, "UPDATE users SET roles = ?, updated_at = ? WHERE id = ?", "isI", (int)roles, now, id);
        json_object_set_new(changes, "roles", acv_roles_json(roles));
    }
    if (!rc && has_disabled) {
        rc = acv_db_exec(c, "UPDATE users SET disabled = ?, updated_at = ? WHERE id = ?", "bsI", disabled, now, id);
        json_object_set_new(changes, "disabled", json_boolean(disabled));
        /* Disabling ends every token: enabling the account again must not revive one. */
        int64_t revoked = 0;
        if (!rc && disabled) rc = acv_auth_revoke_all(c, id, acv_db_now(), &revoked);
        if (!rc && disabled) json_object_set_new(changes, "tokens_revoked", json_integer(revoked));
    }
    if (!rc && jlang) rc = acv_db_exec(c, "UPDATE users SET lang = ? WHERE id = ?", "sI", lang, id);
    /* a language choice alone is a preference, not an account change: not audited */
    if (!rc && (json_object_size(changes) || !jlang))
        rc = acv_audit_write(c, who, "update", "user", id, 0, json_incref(changes));
    json_decref(changes);
    json_decref(old);
    return acv_db_end(c, rc);
}

int acv_user_delete(acv_dbconn *c, const acv_principal *who, int64_t id)
{
    if (who && who->user_id == id) return acv_error(ACV_EEXIST, "you cannot delete your own account");
    int rc = acv_db_begin(c);
    if (rc) return rc;
    json_t *u = NULL;
    rc = acv_user_get(c, id, &u);
    if (!rc) {
        unsigned roles = 0;
        acv_roles_parse(json_object_get(u, "roles"), ACV_ROLES_GLOBAL, "roles", &roles);
        int64_t others = 1;
        if ((roles & ACV_ROLE_ADMIN) && !json_is_true(json_object_get(u, "disabled")))
            rc = other_admins(c, id, &others);
        if (!rc && others == 0)
            rc = acv_error(ACV_EEXIST, "user %lld is the last enabled administrator", (long long)id);
    }
    if (!rc) {
        /* A project keeps an owner: its last owner must hand over first. */
        json_t *p = NULL;
        rc = acv_db_query_row(c, &p,
                              "SELECT p.id, p.name FROM project_members m JOIN projects p ON p.id = m.project_id "
                              "WHERE m.user_id = ?1 AND m.role = 'owner' AND NOT EXISTS (SELECT 1 FROM "
                              "project_members o WHERE o.project_id = m.project_id AND o.role = 'owner' AND "
                              "o.user_id != ?1) LIMIT 1",
                              "I", id);
        if (!rc && p)
            rc = acv_error(ACV_EEXIST, "user %lld is the last owner of project '%s' (%lld); make someone else its "
                                       "owner first",
                           (long long)id, json_string_value(json_object_get(p, "name")),
                           (long long)json_integer_value(json_object_get(p, "id")));
        json_decref(p);
    }
    if (!rc) rc = acv_db_exec(c, "DELETE FROM users WHERE id = ?", "I", id);
    if (!rc)
        rc = acv_audit_write(c, who, "delete", "user", id, 0,
                             json_pack("{s:O}", "username", json_object_get(u, "username")));
    json_decref(u);
    return acv_db_end(c, rc);
}

int acv_user_check_password(acv_dbconn *c, int64_t id, const char *password)
{
    char *hash = NULL;
    int rc = acv_db_query_text(c, &hash, "SELECT password_hash FROM users WHERE id = ?", "I", id);
    if (rc) return rc;
    if (!hash) return acv_error(ACV_ENOTFOUND, "user %lld not found", (long long)id);
    rc = acv_auth_verify_password(hash, password ? password : "");
    free(hash);
    return rc;
}
