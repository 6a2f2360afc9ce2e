/* Tests for platform/auth (and the user rules in platform/users): Argon2id hash and verify,
 * password policy, roles, the first admin, login, token expiry / revocation / hashing, and
 * the last-admin protections. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "autocv/error.h"
#include "base/file.h"
#include "platform/auth.h"
#include "platform/users.h"

static char g_dir[64];
static acv_db *g_db;
static acv_dbconn *g_c;

static int setup(void **state)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/acv-test-auth-XXXXXX");
    if (!mkdtemp(g_dir)) return -1;
    char p[128];
    snprintf(p, sizeof p, "%s/auth.db", g_dir);
    if (acv_db_open(p, NULL, &g_db) || acv_db_acquire(g_db, &g_c)) return -1;
    return 0;
}

static int teardown(void **state)
{
    acv_db_release(g_c);
    acv_db_close(g_db);
    acv_remove_tree(g_dir);
    return 0;
}

static void test_hash_and_verify(void **state)
{
    char h[ACV_PWHASH_MAX];
    assert_int_equal(acv_auth_hash_password("correct horse battery", h), 0);
    assert_int_equal(strncmp(h, "$argon2id$", 10), 0);
    assert_int_equal(acv_auth_verify_password(h, "correct horse battery"), 0);
    assert_int_equal(acv_auth_verify_password(h, "correct horse batterY"), ACV_EINVAL);
    assert_int_equal(acv_auth_verify_password(h, ""), ACV_EINVAL);
    /* Salted: the same password hashes differently. */
    char h2[ACV_PWHASH_MAX];
    assert_int_equal(acv_auth_hash_password("correct horse battery", h2), 0);
    assert_string_not_equal(h, h2);
    assert_int_equal(acv_auth_password_ok("short"), ACV_EINVAL);
    assert_int_equal(acv_auth_password_ok(NULL), ACV_EINVAL);
    assert_int_equal(acv_auth_password_ok("eight ch"), 0);
}

static void test_roles(void **state)
{
    json_t *names = acv_roles_json(ACV_ROLE_ADMIN | ACV_ROLE_REVIEWER);
    assert_int_equal(json_array_size(names), 2);
    unsigned m;
    assert_int_equal(acv_roles_parse(names, ACV_ROLES_GLOBAL, "roles", &m), 0);
    assert_int_equal(m, ACV_ROLE_ADMIN | ACV_ROLE_REVIEWER);
    json_decref(names);
    json_t *bad = json_pack("[s]", "owner"); /* a project role, not a global one */
    assert_int_equal(acv_roles_parse(bad, ACV_ROLES_GLOBAL, "roles", &m), ACV_EINVAL);
    assert_non_null(strstr(acv_errmsg(), "unknown role 'owner'"));
    json_decref(bad);
    assert_int_equal(acv_role_bit("owner", ACV_ROLES_PROJECT), ACV_ROLE_OWNER);
    assert_int_equal(acv_role_bit("admin", ACV_ROLES_PROJECT), 0);
    assert_string_equal(acv_role_name(ACV_ROLE_OPERATOR), "operator");
}

static void test_bootstrap_and_login(void **state)
{
    char *gen = NULL;
    assert_int_equal(acv_auth_bootstrap(g_c, "short", &gen), ACV_EINVAL); /* policy applies */
    assert_int_equal(acv_auth_bootstrap(g_c, NULL, &gen), 0);
    assert_non_null(gen);
    assert_int_equal(strlen(gen), 20);
    char *again = NULL;
    assert_int_equal(acv_auth_bootstrap(g_c, "another-password", &again), 0); /* users exist: no-op */
    assert_null(again);

    char tok[ACV_TOKEN_LEN + 1];
    int64_t tid;
    json_t *user = NULL;
    int64_t now = 1700000000;
    assert_int_equal(acv_auth_login(g_c, "admin", gen, now, 3600, tok, &tid, &user), 0);
    assert_string_equal(json_string_value(json_object_get(user, "username")), "admin");
    assert_string_equal(json_string_value(json_array_get(json_object_get(user, "roles"), 0)), "admin");
    json_decref(user);
    assert_int_equal(strlen(tok), ACV_TOKEN_LEN);
    assert_int_equal(strncmp(tok, "acv_", 4), 0);
    /* Usernames match case-insensitively; wrong passwords and unknown users look the same. */
    assert_int_equal(acv_auth_login(g_c, "ADMIN", gen, now, 3600, tok, &tid, &user), 0);
    json_decref(user);
    assert_int_equal(acv_auth_login(g_c, "admin", "wrong-password", now, 3600, tok, &tid, &user), ACV_ENOTFOUND);
    char msg1[256];
    snprintf(msg1, sizeof msg1, "%s", acv_errmsg());
    assert_int_equal(acv_auth_login(g_c, "nobody", "wrong-password", now, 3600, tok, &tid, &user), ACV_ENOTFOUND);
    assert_string_equal(msg1, acv_errmsg());
    free(gen);
}

static void test_token_expiry_and_revocation(void **state)
{
    acv_principal sys = {0};
    int64_t uid;
    assert_int_equal(acv_user_create(g_c, &sys, "tok-user", "tok-user-password", ACV_ROLE_ANNOTATOR, &uid), 0);
    char tok[ACV_TOKEN_LEN + 1];
    int64_t tid;
    json_t *user;
    int64_t now = 1700000000;
    assert_int_equal(acv_auth_login(g_c, "tok-user", "tok-user-password", now, 3600, tok, &tid, &user), 0);
    json_decref(user);
    acv_principal who;
    assert_int_equal(acv_auth_token_check(g_c, tok, now + 10, &who), 0);
    assert_int_equal(who.user_id, uid);
    assert_int_equal(who.token_id, tid);
    assert_int_equal(who.roles, ACV_ROLE_ANNOTATOR);
    assert_string_equal(who.username, "tok-user");
    assert_int_equal(acv_auth_token_check(g_c, tok, now + 3599, &who), 0);
    /* Expired at now + ttl. */
    assert_int_equal(acv_auth_token_check(g_c, tok, now + 3600, &who), ACV_ENOTFOUND);
    assert_string_equal(acv_errmsg(), "token expired");
    /* Only the hash is stored, never the token. */
    int64_t n;
    assert_int_equal(acv_db_query_int(g_c, &n, 0, "SELECT COUNT(*) FROM tokens WHERE token_hash = ? OR prefix = ?",
                                      "ss", tok, tok),
                     0);
    assert_int_equal(n, 0);
    char hex[65];
    acv_auth_token_hash(tok, hex);
    assert_int_equal(acv_db_query_int(g_c, &n, 0, "SELECT COUNT(*) FROM tokens WHERE token_hash = ?", "s", hex), 0);
    assert_int_equal(n, 1);
    /* Garbage and a tampered token are invalid. */
    assert_int_equal(acv_auth_token_check(g_c, "not-a-token", now, &who), ACV_ENOTFOUND);
    char bad[ACV_TOKEN_LEN + 1];
    memcpy(bad, tok, sizeof bad);
    bad[10] = bad[10] == 'A' ? 'B' : 'A';
    assert_int_equal(acv_auth_token_check(g_c, bad, now, &who), ACV_ENOTFOUND);
    assert_string_equal(acv_errmsg(), "invalid token");

    /* An API token without expiry lives until revoked; revocation is immediate. */
    char api[ACV_TOKEN_LEN + 1];
    int64_t api_id;
    assert_int_equal(acv_auth_token_create(g_c, uid, "api", "ci", now, 0, api, &api_id), 0);
    assert_int_equal(acv_auth_token_check(g_c, api, now + 10LL * 365 * 86400, &who), 0);
    assert_int_equal(acv_auth_token_revoke(g_c, api_id, uid + 1000, now), ACV_ENOTFOUND); /* not the owner */
    assert_int_equal(acv_auth_token_revoke(g_c, api_id, uid, now), 0);
    assert_int_equal(acv_auth_token_check(g_c, api, now + 1, &who), ACV_ENOTFOUND);
    assert_string_equal(acv_errmsg(), "token revoked");
    assert_int_equal(acv_auth_token_revoke(g_c, api_id, uid, now), ACV_ENOTFOUND); /* already revoked */

    /* Revoking the other sessions keeps the current one; disabling the user ends all. */
    char s1[ACV_TOKEN_LEN + 1], s2[ACV_TOKEN_LEN + 1];
    int64_t id1, id2;
    assert_int_equal(acv_auth_token_create(g_c, uid, "session", "a", now, now + 100, s1, &id1), 0);
    assert_int_equal(acv_auth_token_create(g_c, uid, "session", "b", now, now + 100, s2, &id2), 0);
    assert_int_equal(acv_auth_revoke_sessions(g_c, uid, id2, now), 0);
    assert_int_equal(acv_auth_token_check(g_c, s1, now, &who), ACV_ENOTFOUND);
    assert_int_equal(acv_auth_token_check(g_c, s2, now, &who), 0);
    json_t *patch = json_pack("{s:b}", "disabled", 1);
    assert_int_equal(acv_user_update(g_c, &sys, uid, patch, 0), 0);
    json_decref(patch);
    assert_int_equal(acv_auth_token_check(g_c, s2, now, &who), ACV_ENOTFOUND);
    assert_string_equal(acv_errmsg(), "token revoked"); /* disabling revoked it */
    assert_int_equal(acv_auth_login(g_c, "tok-user", "tok-user-password", now, 3600, tok, &tid, &user), ACV_ENOTFOUND);
    /* Enabling the user again revives no token. */
    patch = json_pack("{s:b}", "disabled", 0);
    assert_int_equal(acv_user_update(g_c, &sys, uid, patch, 0), 0);
    json_decref(patch);
    assert_int_equal(acv_auth_token_check(g_c, s2, now, &who), ACV_ENOTFOUND);
}

static void test_user_rules(void **state)
{
    acv_principal sys = {0};
    int64_t id;
    assert_int_equal(acv_user_create(g_c, &sys, "bad name", "long-enough-pw", ACV_ROLE_VIEWER, &id), ACV_EINVAL);
    assert_int_equal(acv_user_create(g_c, &sys, "Admin", "long-enough-pw", ACV_ROLE_VIEWER, &id), ACV_EEXIST);
    int64_t admin_id;
    assert_int_equal(acv_db_query_int(g_c, &admin_id, 0, "SELECT id FROM users WHERE username = 'admin'", NULL), 0);
    acv_principal admin = {.user_id = admin_id, .roles = ACV_ROLE_ADMIN};
    snprintf(admin.username, sizeof admin.username, "admin");
    /* The only admin cannot lose the role, be disabled, or delete themselves. */
    json_t *demote = json_pack("{s:[s]}", "roles", "viewer");
    assert_int_equal(acv_user_update(g_c, &admin, admin_id, demote, 0), ACV_EEXIST);
    json_t *disable = json_pack("{s:b}", "disabled", 1);
    assert_int_equal(acv_user_update(g_c, &admin, admin_id, disable, 0), ACV_EEXIST);
    assert_int_equal(acv_user_delete(g_c, &admin, admin_id), ACV_EEXIST);
    /* With a second admin it works. */
    int64_t second;
    assert_int_equal(acv_user_create(g_c, &admin, "admin2", "second-admin-pw", ACV_ROLE_ADMIN, &second), 0);
    assert_int_equal(acv_user_update(g_c, &admin, second, demote, 0), 0);
    json_t *empty = json_object();
    assert_int_equal(acv_user_update(g_c, &admin, second, empty, 0), 0);
    json_decref(empty);
    json_t *u;
    assert_int_equal(acv_user_get(g_c, second, &u), 0);
    assert_string_equal(json_string_value(json_array_get(json_object_get(u, "roles"), 0)), "viewer");
    json_decref(u);
    /* Unknown fields are refused; a new password works and the old one stops working. */
    json_t *unknown = json_pack("{s:s}", "email", "x@y");
    assert_int_equal(acv_user_update(g_c, &admin, second, unknown, 0), ACV_EINVAL);
    json_t *pw = json_pack("{s:s}", "password", "brand-new-password");
    assert_int_equal(acv_user_update(g_c, &admin, second, pw, 0), 0);
    assert_int_equal(acv_user_check_password(g_c, second, "brand-new-password"), 0);
    assert_int_equal(acv_user_check_password(g_c, second, "second-admin-pw"), ACV_EINVAL);
    assert_int_equal(acv_user_delete(g_c, &admin, second), 0);
    assert_int_equal(acv_user_get(g_c, second, &u), ACV_ENOTFOUND);
    /* Every change was audited. */
    int64_t n;
    assert_int_equal(acv_db_query_int(g_c, &n, 0, "SELECT COUNT(*) FROM audit_log WHERE target_type = 'user' AND "
                                                  "target_id = ?",
                                      "I", second),
                     0);
    assert_int_equal(n, 5); /* create, demote, empty update, password, delete */
    json_decref(demote);
    json_decref(disable);
    json_decref(unknown);
    json_decref(pw);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_and_verify),
        cmocka_unit_test(test_roles),
        cmocka_unit_test(test_bootstrap_and_login),
        cmocka_unit_test(test_token_expiry_and_revocation),
        cmocka_unit_test(test_user_rules),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
