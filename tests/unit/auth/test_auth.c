/* Unit tests of src/auth: key generation and hashed lookup, the key file round trip (parse,
 * dump, atomic save, reload), malformed files, credential extraction, expiry, reload of a
 * changed file and the role/scope gate table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "auth/auth.h"

static dg_auth_key_t make_key(const char *name, dg_role_t role, char secret[64])
{
    dg_auth_key_t k;
    memset(&k, 0, sizeof k);
    assert_int_equal(dg_auth_key_generate(&k, secret), DG_OK);
    snprintf(k.name, sizeof k.name, "%s", name);
    k.role = role;
    k.created = 1700000000;
    return k;
}

static void test_generate_and_find(void **state)
{
    (void)state;
    dg_auth_keyset_t *ks = dg_auth_keys_new();
    assert_non_null(ks);
    char secrets[100][64];
    for (int i = 0; i < 100; i++) {
        char name[16];
        snprintf(name, sizeof name, "k%d", i);
        dg_auth_key_t k = make_key(name, DG_ROLE_VIEWER, secrets[i]);
        assert_int_equal(strlen(secrets[i]), 47);
        assert_memory_equal(secrets[i], "dgk_", 4);
        assert_int_equal(strlen(k.id), 16);
        assert_int_equal(dg_auth_keys_add(ks, &k, NULL), DG_OK);
    }
    for (int i = 0; i < 100; i++) {
        const dg_auth_key_t *k = dg_auth_keys_find(ks, secrets[i], strlen(secrets[i]));
        assert_non_null(k);
        char name[16];
        snprintf(name, sizeof name, "k%d", i);
        assert_string_equal(k->name, name);
    }
    char wrong[64];
    memcpy(wrong, secrets[0], sizeof wrong);
    wrong[10] ^= 1;
    assert_null(dg_auth_keys_find(ks, wrong, strlen(wrong)));
    assert_null(dg_auth_keys_find(ks, "", 0));
    assert_null(dg_auth_keys_find(ks, secrets[0], 46));
    /* Duplicate names are refused; removal by name and by id. */
    dg_auth_key_t dup = make_key("k5", DG_ROLE_ADMIN, wrong);
    assert_int_equal(dg_auth_keys_add(ks, &dup, NULL), DG_CONFIG);
    assert_true(dg_auth_keys_remove(ks, "k5"));
    assert_null(dg_auth_keys_find(ks, secrets[5], strlen(secrets[5])));
    char id[17];
    memcpy(id, dg_auth_keys_find(ks, secrets[6], strlen(secrets[6]))->id, sizeof id);
    assert_true(dg_auth_keys_remove(ks, id));
    assert_false(dg_auth_keys_remove(ks, id));
    assert_non_null(dg_auth_keys_find(ks, secrets[7], strlen(secrets[7])));
    assert_int_equal(dg_auth_keys_count(ks), 98);
    dg_auth_keys_free(ks);
}

static void test_file_round_trip(void **state)
{
    (void)state;
    char dir[] = "/tmp/dg-auth-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/keys.json", dir);
    dg_auth_keyset_t *ks = NULL;
    assert_int_equal(dg_auth_keys_load(path, &ks, NULL), DG_OK); /* missing = empty */
    assert_int_equal(dg_auth_keys_count(ks), 0);
    char s1[64], s2[64];
    dg_auth_key_t a = make_key("ci", DG_ROLE_ANALYST, s1);
    a.n_dbs = 2;
    memcpy(a.dbs[0], "main", 5);
    memcpy(a.dbs[1], "other", 6);
    a.expires = 1800000000;
    dg_auth_key_t b = make_key("admin.1", DG_ROLE_ADMIN, s2);
    assert_int_equal(dg_auth_keys_add(ks, &a, NULL), DG_OK);
    assert_int_equal(dg_auth_keys_add(ks, &b, NULL), DG_OK);
    dg_error_t err;
    dg_error_clear(&err);
    assert_int_equal(dg_auth_keys_save(path, ks, &err), DG_OK);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    dg_auth_keyset_t *back = NULL;
    assert_int_equal(dg_auth_keys_load(path, &back, &err), DG_OK);
    assert_int_equal(dg_auth_keys_count(back), 2);
    const dg_auth_key_t *k = dg_auth_keys_find(back, s1, strlen(s1));
    assert_non_null(k);
    assert_string_equal(k->id, a.id);
    assert_string_equal(k->name, "ci");
    assert_int_equal(k->role, DG_ROLE_ANALYST);
    assert_int_equal(k->n_dbs, 2);
    assert_string_equal(k->dbs[1], "other");
    assert_int_equal(k->created, 1700000000);
    assert_int_equal(k->expires, 1800000000);
    assert_memory_equal(k->hash, a.hash, 32);
    /* Dump of the reloaded set is byte-identical, and no secret is in it. */
    char *d1 = dg_auth_keys_dump(ks), *d2 = dg_auth_keys_dump(back);
    assert_string_equal(d1, d2);
    assert_null(strstr(d1, s1 + 4));
    free(d1);
    free(d2);
    dg_auth_keys_free(back);
    dg_auth_keys_free(ks);
    unlink(path);
    rmdir(dir);
}

static void test_bad_files(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "[]",
        "{\"keys\":{}}",
        "{\"keys\":[1]}",
        "{\"keys\":[{\"id\":\"a\",\"name\":\"a\",\"role\":\"root\",\"sha256\":\"" /* role */
        "0000000000000000000000000000000000000000000000000000000000000000\"}]}",
        "{\"keys\":[{\"id\":\"a\",\"name\":\"a\",\"role\":\"viewer\",\"sha256\":\"00\"}]}",
        "{\"keys\":[{\"id\":\"a\",\"name\":\"a b\",\"role\":\"viewer\",\"sha256\":\""
        "0000000000000000000000000000000000000000000000000000000000000000\"}]}",
        "{\"keys\":[{\"id\":\"a\",\"name\":\"a\",\"role\":\"viewer\",\"dbs\":[\"../x\"],"
        "\"sha256\":\"0000000000000000000000000000000000000000000000000000000000000000\"}]}",
        "{\"keys\":[{\"id\":\"a\",\"name\":\"a\",\"role\":\"viewer\",\"expires\":\"x\","
        "\"sha256\":\"0000000000000000000000000000000000000000000000000000000000000000\"}]}",
        "{\"keys\":[{\"id\":\"a\",\"name\":\"a\",\"role\":\"viewer\",\"sha256\":\""
        "0000000000000000000000000000000000000000000000000000000000000000\"},"
        "{\"id\":\"a\",\"name\":\"b\",\"role\":\"viewer\",\"sha256\":\""
        "1000000000000000000000000000000000000000000000000000000000000000\"}]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        dg_auth_keyset_t *ks = NULL;
        dg_error_t err;
        dg_error_clear(&err);
        assert_int_equal(dg_auth_keys_parse(bad[i], strlen(bad[i]), &ks, &err), DG_CONFIG);
        assert_null(ks);
        assert_true(err.msg[0] != '\0');
    }
}

static void test_credential(void **state)
{
    (void)state;
    dg_str_t t;
    assert_int_equal(dg_auth_credential(NULL, NULL, &t), 0);
    assert_int_equal(dg_auth_credential("Bearer abc", NULL, &t), 1);
    assert_int_equal(t.len, 3);
    assert_memory_equal(t.p, "abc", 3);
    assert_int_equal(dg_auth_credential("bEaReR   abc.def  ", "ignored", &t), 1);
    assert_int_equal(t.len, 7);
    assert_int_equal(dg_auth_credential(NULL, " key ", &t), 1);
    assert_int_equal(t.len, 3);
    assert_int_equal(dg_auth_credential("Basic abc", NULL, &t), -1);
    assert_int_equal(dg_auth_credential("Bearer", NULL, &t), -1);
    assert_int_equal(dg_auth_credential("Bearerabc", NULL, &t), -1);
    assert_int_equal(dg_auth_credential("Bearer a b", NULL, &t), -1);
    assert_int_equal(dg_auth_credential("Bearer a\"b", NULL, &t), -1);
    assert_int_equal(dg_auth_credential(NULL, "", &t), -1);
    /* JWTs are long: up to DG_AUTH_TOKEN_MAX is extracted, one more byte is refused. */
    static char big[DG_AUTH_TOKEN_MAX + 2];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(dg_auth_credential(NULL, big, &t), -1);
    big[DG_AUTH_TOKEN_MAX] = '\0';
    assert_int_equal(dg_auth_credential(NULL, big, &t), 1);
    assert_int_equal(t.len, DG_AUTH_TOKEN_MAX);
}

static void test_gate_table(void **state)
{
    (void)state;
    static const struct {
        dg_role_t role;
        bool anon, bad;
        dg_role_t need;
        const char *scope; /* NULL = every db */
        const char *db;
        dg_rc_t want;
    } rows[] = {
        {DG_ROLE_ADMIN, false, false, DG_ROLE_ANALYST, NULL, "main", DG_OK},
        {DG_ROLE_ANALYST, false, false, DG_ROLE_ANALYST, NULL, "main", DG_OK},
        {DG_ROLE_VIEWER, false, false, DG_ROLE_ANALYST, NULL, "main", DG_FORBIDDEN},
        {DG_ROLE_VIEWER, false, false, DG_ROLE_VIEWER, NULL, NULL, DG_OK},
        {DG_ROLE_ANALYST, false, false, DG_ROLE_ANALYST, "main", "main", DG_OK},
        {DG_ROLE_ANALYST, false, false, DG_ROLE_ANALYST, "main", "mai", DG_FORBIDDEN},
        {DG_ROLE_ANALYST, false, false, DG_ROLE_ANALYST, "main", "other", DG_FORBIDDEN},
        {DG_ROLE_ANALYST, false, false, DG_ROLE_VIEWER, "main", NULL, DG_OK},
        {DG_ROLE_NONE, true, false, DG_ROLE_VIEWER, NULL, NULL, DG_UNAUTHORIZED},
        {DG_ROLE_VIEWER, true, false, DG_ROLE_ANALYST, NULL, "main", DG_UNAUTHORIZED},
        {DG_ROLE_ANALYST, true, false, DG_ROLE_ANALYST, NULL, "main", DG_OK},
        {DG_ROLE_NONE, false, true, DG_ROLE_VIEWER, NULL, NULL, DG_UNAUTHORIZED},
        {DG_ROLE_VIEWER, false, false, DG_ROLE_ADMIN, NULL, NULL, DG_FORBIDDEN},
        {DG_ROLE_NONE, false, false, DG_ROLE_VIEWER, NULL, NULL, DG_FORBIDDEN},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        dg_auth_result_t r;
        memset(&r, 0, sizeof r);
        r.role = rows[i].role;
        r.is_anonymous = rows[i].anon;
        r.is_bad = rows[i].bad;
        if (rows[i].scope) {
            r.n_dbs = 1;
            memcpy(r.dbs[0], rows[i].scope, strlen(rows[i].scope) + 1);
        }
        const char *db = rows[i].db;
        print_message("row %zu\n", i);
        assert_int_equal(dg_auth_gate(&r, rows[i].need, db, db ? strlen(db) : 0), rows[i].want);
    }
}

static void test_identify_expiry_reload(void **state)
{
    (void)state;
    char dir[] = "/tmp/dg-auth-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/keys.json", dir);
    dg_auth_keyset_t *ks = dg_auth_keys_new();
    char s1[64], s2[64], bearer[80];
    dg_auth_key_t a = make_key("a", DG_ROLE_ANALYST, s1);
    a.expires = 2000000000;
    assert_int_equal(dg_auth_keys_add(ks, &a, NULL), DG_OK);
    assert_int_equal(dg_auth_keys_save(path, ks, NULL), DG_OK);

    dg_auth_opts_t o = {.is_on = true, .public_role = DG_ROLE_NONE, .keys_file = path};
    dg_auth_t *au = NULL;
    assert_int_equal(dg_auth_new(&o, &au, NULL), DG_OK);
    dg_auth_result_t r;
    snprintf(bearer, sizeof bearer, "Bearer %s", s1);
    dg_auth_identify(au, bearer, NULL, 1999999999, &r);
    assert_false(r.is_bad);
    assert_int_equal(r.role, DG_ROLE_ANALYST);
    char want[48];
    snprintf(want, sizeof want, "key:%s", a.id);
    assert_string_equal(r.principal, want);
    dg_auth_identify(au, bearer, NULL, 2000000000, &r); /* expired */
    assert_true(r.is_bad);
    dg_auth_identify(au, NULL, NULL, 0, &r);
    assert_true(r.is_anonymous);
    assert_string_equal(r.principal, "ip");
    assert_int_equal(dg_auth_gate(&r, DG_ROLE_VIEWER, NULL, 0), DG_UNAUTHORIZED);

    /* A new key appears after the file changes (checked at most once per second). */
    dg_auth_key_t b = make_key("b", DG_ROLE_VIEWER, s2);
    assert_int_equal(dg_auth_keys_add(ks, &b, NULL), DG_OK);
    assert_int_equal(dg_auth_keys_save(path, ks, NULL), DG_OK);
    sleep(1);
    usleep(100000);
    dg_auth_identify(au, NULL, s2, 0, &r);
    assert_false(r.is_bad);
    assert_int_equal(r.role, DG_ROLE_VIEWER);
    dg_auth_free(au);

    /* Auth off: credentials are ignored; refusals are final (403). */
    o.is_on = false;
    o.public_role = DG_ROLE_ANALYST;
    assert_int_equal(dg_auth_new(&o, &au, NULL), DG_OK);
    dg_auth_identify(au, "Basic zzz", NULL, 0, &r);
    assert_int_equal(dg_auth_gate(&r, DG_ROLE_ANALYST, "main", 4), DG_OK);
    assert_int_equal(dg_auth_gate(&r, DG_ROLE_ADMIN, NULL, 0), DG_FORBIDDEN);
    dg_auth_free(au);
    dg_auth_keys_free(ks);
    unlink(path);
    rmdir(dir);
}

static void test_roles(void **state)
{
    (void)state;
    dg_role_t r;
    assert_true(dg_auth_role_parse("admin", &r) && r == DG_ROLE_ADMIN);
    assert_true(dg_auth_role_parse("viewer", &r) && r == DG_ROLE_VIEWER);
    assert_false(dg_auth_role_parse("Admin", &r));
    assert_false(dg_auth_role_parse(NULL, &r));
    assert_string_equal(dg_auth_role_name(DG_ROLE_ANALYST), "analyst");
    assert_true(dg_auth_name_valid("a.b-c_1"));
    assert_false(dg_auth_name_valid(""));
    assert_false(dg_auth_name_valid("a/b"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generate_and_find),
        cmocka_unit_test(test_file_round_trip),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_credential),
        cmocka_unit_test(test_gate_table),
        cmocka_unit_test(test_identify_expiry_reload),
        cmocka_unit_test(test_roles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
