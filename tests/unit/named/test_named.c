/* Unit tests of src/named: the query file header parser (every directive, type and constraint;
 * broken files with their line numbers), the SQL scan (parameters in strings and comments are
 * not parameters), value validation of every type and constraint at, under and over its
 * limits (GET text and POST JSON), the typed forms, the JSON descriptions and the registry's
 * reload rules on real files in a temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "named/named.h"

static dg_named_query_t *parse_ok(const char *text)
{
    dg_named_query_t *q = NULL;
    dg_error_t err;
    dg_error_clear(&err);
    dg_rc_t rc = dg_named_parse("main", "q", text, strlen(text), &q, &err);
    if (rc != DG_OK) {
        fail_msg("expected a good file, got: %s\n%s", err.msg, text);
    }
    assert_non_null(q);
    return q;
}

/* ---- parser: a full header ------------------------------------------------------------------ */

static const char full[] =
    "-- Ordinary comments are allowed in the header.\n"
    "-- @description Type-ahead search of people by name prefix\n"
    "-- @description (second line)\n"
    "-- @roles public\n"
    "-- @cache_ttl 3600\n"
    "-- @cache public\n"
    "-- @max_rows 50\n"
    "-- @timeout_ms 2000\n"
    "\n"
    "-- @param q VARCHAR required max_length=100 regex=^[^%_]*$ -- name prefix\n"
    "-- @param limit INTEGER default=20 min=1 max=100\n"
    "-- @param genre VARCHAR default=NULL one_of=Drama|Comedy|Action\n"
    "-- @param smart BOOLEAN default=false\n"
    "-- @param ids VARCHAR[] required max_items=4 max_length=12\n"
    "-- @param since DATE default=NULL min=1900-01-01\n"
    "-- @param at TIMESTAMP default=2020-01-01T00:00:00\n"
    "-- @param ratio DOUBLE default=0.5 min=0 max=1\n"
    "-- @param t TINYINT default=1\n"
    "-- @param s SMALLINT default=-3\n"
    "-- @param b BIGINT default=9223372036854775807\n"
    "SELECT name FROM people -- $notaparam in a comment\n"
    "WHERE name_norm >= $q AND ($genre IS NULL OR genre = $genre) AND $smart IS NOT NULL\n"
    "  AND id IN (SELECT unnest($ids)) AND ($since IS NULL OR d >= $since) AND ts >= $at\n"
    "  AND '$notaparam' <> $$ $nope $$ AND \"col$x\" > $ratio /* $nor ? ; */\n"
    "  AND $t + $s + $b > 0 AND E'it\\'s $no' <> ''\n"
    "LIMIT $limit;\n";

static void test_parse_full(void **state)
{
    (void)state;
    dg_named_query_t *q = parse_ok(full);
    assert_string_equal(q->description, "Type-ahead search of people by name prefix (second line)");
    assert_int_equal(q->role, DG_NAMED_ROLE_PUBLIC);
    assert_int_equal(q->cache_ttl_s, 3600);
    assert_true(q->cache_public);
    assert_int_equal(q->max_rows, 50);
    assert_int_equal(q->timeout_ms, 2000);
    assert_int_equal(q->n_params, 11);
    const dg_named_param_t *p = &q->params[0];
    assert_string_equal(p->name, "q");
    assert_int_equal(p->type, DG_NAMED_VARCHAR);
    assert_true(p->is_required);
    assert_int_equal(p->max_length, 100);
    assert_string_equal(p->regex_text, "^[^%_]*$");
    assert_string_equal(p->doc, "name prefix");
    p = &q->params[1];
    assert_int_equal(json_integer_value(p->default_value), 20);
    assert_int_equal(json_integer_value(p->min), 1);
    assert_int_equal(json_integer_value(p->max), 100);
    p = &q->params[2];
    assert_true(json_is_null(p->default_value));
    assert_int_equal(json_array_size(p->one_of), 3);
    assert_true(json_is_false(q->params[3].default_value));
    p = &q->params[4];
    assert_true(p->is_list);
    assert_int_equal(p->max_items, 4);
    assert_string_equal(dg_named_type_name(p->type, p->is_list), "VARCHAR[]");
    assert_int_equal(json_integer_value(q->params[5].min), dg_named_days_from_civil(1900, 1, 1));
    assert_int_equal(json_integer_value(q->params[6].default_value), INT64_C(1577836800) * 1000000);
    assert_true(json_is_real(q->params[7].default_value));
    assert_int_equal(json_integer_value(q->params[10].default_value), INT64_MAX);
    assert_non_null(strstr(q->sql, "LIMIT $limit"));
    assert_int_equal(q->sql[0], 'S');
    assert_true(q->version > 0);
    dg_named_query_free(q);
}

static void test_parse_defaults(void **state)
{
    (void)state;
    dg_named_query_t *q = parse_ok("select 1 as x");
    assert_int_equal(q->role, DG_NAMED_ROLE_VIEWER);
    assert_int_equal(q->cache_ttl_s, -1);
    assert_false(q->cache_public);
    assert_int_equal(q->max_rows, 0);
    assert_int_equal(q->n_params, 0);
    dg_named_query_free(q);
    /* WITH ... SELECT, FROM-first and a parenthesised query are SELECTs too; aliases of types. */
    q = parse_ok("-- @param n INT default=1\n-- @param s TEXT default=x\nWITH a AS (SELECT $n AS "
                 "n) SELECT * FROM a WHERE $s <> ''");
    assert_int_equal(q->params[0].type, DG_NAMED_INTEGER);
    assert_int_equal(q->params[1].type, DG_NAMED_VARCHAR);
    dg_named_query_free(q);
    q = parse_ok("FROM t");
    dg_named_query_free(q);
    q = parse_ok("(SELECT 1)");
    dg_named_query_free(q);
}

/* ---- parser: broken files ------------------------------------------------------------------- */

typedef struct broken {
    const char *text;
    int line;
    const char *msg; /* substring of the message */
} broken_t;

static const broken_t broken_files[] = {
    {"-- @foo bar\nSELECT 1", 1, "unknown directive @foo"},
    {"-- @param x FLOAT4 default=1\nSELECT $x", 1, "unknown type"},
    {"-- @param x INTEGER default=1 foo=2\nSELECT $x", 1, "unknown constraint"},
    {"-- @param x INTEGER default=1 bogus\nSELECT $x", 1, "unknown option"},
    {"-- @param x INTEGER default=1\nSELECT $x,\n $y", 3, "$y is used but not declared"},
    {"-- ok\n-- @param x INTEGER default=1\nSELECT 1", 2, "declared but not used"},
    {"-- @param x INTEGER default=1\n-- @param x INTEGER default=2\nSELECT $x", 2,
     "declared twice"},
    {"-- @param x INTEGER required default=1\nSELECT $x", 1, "either required or"},
    {"-- @param x INTEGER\nSELECT $x", 1, "either required or"},
    {"-- @param x INTEGER default=5 min=10 max=1\nSELECT $x", 1, "min is greater than max"},
    {"-- @param x INTEGER default=500 max=100\nSELECT $x", 1, "default of parameter x"},
    {"-- @param x INTEGER default=abc\nSELECT $x", 1, "bad default"},
    {"-- @param x VARCHAR default=ab% regex=^[a-z]*$\nSELECT $x", 1, "default of parameter x"},
    {"-- @param x INTEGER default=1 max_length=3\nSELECT $x", 1, "max_length applies"},
    {"-- @param x INTEGER default=1 regex=^1$\nSELECT $x", 1, "regex applies"},
    {"-- @param x VARCHAR default=a regex=([a\nSELECT $x", 1, "bad regex"},
    {"-- @param x VARCHAR default=a max_items=2\nSELECT $x", 1, "max_items applies"},
    {"-- @param x BOOLEAN default=true min=1\nSELECT $x", 1, "min applies"},
    {"-- @param x BOOLEAN default=true one_of=true\nSELECT $x", 1, "one_of does not apply"},
    {"-- @param x INTEGER default=1 one_of=1|two\nSELECT $x", 1, "bad one_of choice"},
    {"-- @param x INTEGER[] default=1\nSELECT $x", 1, "default can only be NULL"},
    {"-- @param x INTEGER default=1 max_length=3 max_length=4\nSELECT $x", 1, "max_length"},
    {"-- @param format VARCHAR default=a\nSELECT $format", 1, "reserved"},
    {"-- @param cache VARCHAR default=a\nSELECT $cache", 1, "reserved"},
    {"-- @param 1x INTEGER default=1\nSELECT 1", 1, "bad parameter name"},
    {"-- @param x TINYINT default=128\nSELECT $x", 1, "bad default"},
    {"-- @roles superuser\nSELECT 1", 1, "@roles must be"},
    {"-- @roles viewer\n-- @roles admin\nSELECT 1", 2, "given twice"},
    {"-- @cache_ttl soon\nSELECT 1", 1, "@cache_ttl"},
    {"-- @cache maybe\nSELECT 1", 1, "@cache must be"},
    {"-- @max_rows 0\nSELECT 1", 1, "@max_rows"},
    {"-- @timeout_ms -5\nSELECT 1", 1, "@timeout_ms"},
    {"-- @description\nSELECT 1", 1, "needs text"},
    {"SELECT $1", 1, "positional parameters ($1)"},
    {"SELECT 1\nWHERE x = ?", 2, "positional parameters (?)"},
    {"SELECT 1;\nDROP TABLE t", 1, "only one SQL statement"},
    {"DELETE FROM t", 1, "must be a SELECT"},
    {"-- @description x\n\nSELECT 1\n-- @param y INTEGER default=1\n", 4, "after the SQL"},
    {"-- @description only a header\n", 2, "no SQL"},
    {"SELECT 'unterminated", 1, "unterminated string"},
    {"SELECT 1 /* open", 1, "unterminated /*"},
    {"SELECT $$ open", 1, "unterminated dollar"},
    {"SELECT $", 1, "lone $"},
};

static void test_parse_broken(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof broken_files / sizeof broken_files[0]; i++) {
        const broken_t *b = &broken_files[i];
        dg_named_query_t *q = NULL;
        dg_error_t err;
        dg_error_clear(&err);
        dg_rc_t rc = dg_named_parse("main", "q", b->text, strlen(b->text), &q, &err);
        if (rc != DG_CONFIG || q) {
            fail_msg("case %zu parsed: %s", i, b->text);
        }
        char prefix[16];
        snprintf(prefix, sizeof prefix, "%d: ", b->line);
        if (strncmp(err.msg, prefix, strlen(prefix)) != 0 || !strstr(err.msg, b->msg)) {
            fail_msg("case %zu: expected line %d and \"%s\", got \"%s\"", i, b->line, b->msg,
                     err.msg);
        }
    }
}

static void test_parse_limits(void **state)
{
    (void)state;
    dg_named_query_t *q = NULL;
    dg_error_t err;
    dg_error_clear(&err);
    /* A NUL byte and an oversized file are refused before anything else. */
    static const char nul[] = "SELECT 1\0";
    assert_int_equal(dg_named_parse("d", "n", nul, sizeof nul, &q, &err), DG_CONFIG);
    size_t big = DG_NAMED_MAX_FILE_BYTES + 1;
    char *text = malloc(big);
    assert_non_null(text);
    memset(text, ' ', big);
    memcpy(text, "SELECT 1", 8);
    dg_error_clear(&err);
    assert_int_equal(dg_named_parse("d", "n", text, big, &q, &err), DG_CONFIG);
    assert_non_null(strstr(err.msg, "larger than"));
    /* Exactly DG_NAMED_MAX_PARAMS parameters parse; one more does not. */
    size_t cap = 64 * 1024, off = 0;
    char *many = malloc(cap);
    assert_non_null(many);
    for (int i = 0; i <= DG_NAMED_MAX_PARAMS; i++) {
        off += (size_t)snprintf(many + off, cap - off, "-- @param p%d INTEGER default=1\n", i);
    }
    size_t header_all = off;
    off += (size_t)snprintf(many + off, cap - off, "SELECT 0");
    for (int i = 0; i <= DG_NAMED_MAX_PARAMS; i++) {
        off += (size_t)snprintf(many + off, cap - off, " + $p%d", i);
    }
    dg_error_clear(&err);
    assert_int_equal(dg_named_parse("d", "n", many, off, &q, &err), DG_CONFIG);
    assert_non_null(strstr(err.msg, "more than"));
    /* Drop the last declaration and its use: at the limit. */
    size_t last_decl = header_all - strlen("-- @param p64 INTEGER default=1\n");
    char *at = malloc(cap);
    assert_non_null(at);
    memcpy(at, many, last_decl);
    size_t n = last_decl;
    n += (size_t)snprintf(at + n, cap - n, "SELECT 0");
    for (int i = 0; i < DG_NAMED_MAX_PARAMS; i++) {
        n += (size_t)snprintf(at + n, cap - n, " + $p%d", i);
    }
    dg_error_clear(&err);
    assert_int_equal(dg_named_parse("d", "n", at, n, &q, &err), DG_OK);
    assert_int_equal(q->n_params, DG_NAMED_MAX_PARAMS);
    dg_named_query_free(q);
    free(at);
    free(many);
    free(text);
}

/* ---- values --------------------------------------------------------------------------------- */

/* Runs one GET-style value through a query declaring `decl` for parameter v. */
static dg_rc_t one_value(const char *decl, const char *value, json_t **out, char *reason,
                         size_t cap)
{
    char text[512];
    snprintf(text, sizeof text, "-- @param v %s\nSELECT $v", decl);
    dg_named_query_t *q = parse_ok(text);
    dg_named_kv_t kv = {"v", value};
    dg_named_errors_t errs;
    dg_rc_t rc = dg_named_values_from_args(q, &kv, value ? 1 : 0, NULL, out, &errs);
    if (rc == DG_INVALID_PARAMS) {
        assert_int_equal(errs.n, 1);
        assert_string_equal(errs.items[0].name, "v");
        snprintf(reason, cap, "%s", errs.items[0].reason);
    }
    dg_named_query_free(q);
    return rc;
}

typedef struct vcase {
    const char *decl;
    const char *value;
    bool ok;
    const char *expect; /* ok: the typed value as JSON text; else a substring of the reason */
} vcase_t;

static const vcase_t value_cases[] = {
    /* BOOLEAN */
    {"BOOLEAN required", "true", true, "true"},
    {"BOOLEAN required", "FALSE", true, "false"},
    {"BOOLEAN required", "1", true, "true"},
    {"BOOLEAN required", "0", true, "false"},
    {"BOOLEAN required", "yes", false, "true or false"},
    /* integers at, under and over their type's range */
    {"TINYINT required", "127", true, "127"},
    {"TINYINT required", "-128", true, "-128"},
    {"TINYINT required", "128", false, "-128 to 127"},
    {"SMALLINT required", "32767", true, "32767"},
    {"SMALLINT required", "-32769", false, "SMALLINT"},
    {"INTEGER required", "2147483647", true, "2147483647"},
    {"INTEGER required", "2147483648", false, "INTEGER"},
    {"INTEGER required", "1 OR 1=1", false, "whole number"},
    {"INTEGER required", "1.5", false, "whole number"},
    {"INTEGER required", "", false, "whole number"},
    {"INTEGER required", "+5", false, "whole number"},
    {"BIGINT required", "9223372036854775807", true, "9223372036854775807"},
    {"BIGINT required", "-9223372036854775808", true, "-9223372036854775808"},
    {"BIGINT required", "9223372036854775808", false, "whole number"},
    /* min/max at, under, over */
    {"INTEGER required min=1 max=100", "1", true, "1"},
    {"INTEGER required min=1 max=100", "100", true, "100"},
    {"INTEGER required min=1 max=100", "0", false, "must be >= 1"},
    {"INTEGER required min=1 max=100", "101", false, "must be <= 100"},
    /* DOUBLE */
    {"DOUBLE required", "1.5", true, "1.5"},
    {"DOUBLE required", "-2e3", true, "-2000.0"},
    {"DOUBLE required", "nan", false, "finite"},
    {"DOUBLE required", "1e999", false, "finite"},
    {"DOUBLE required", "0x10", false, "finite"},
    {"DOUBLE required min=0 max=1", "1", true, "1.0"},
    {"DOUBLE required min=0 max=1", "1.0000001", false, "<= 1"},
    {"DOUBLE required min=0 max=1", "-0.1", false, ">= 0"},
    /* VARCHAR: max_length in characters, one_of, regex */
    {"VARCHAR required max_length=3", "abc", true, "\"abc\""},
    {"VARCHAR required max_length=3", "\xc3\xa9\xc3\xa9\xc3\xa9", true,
     "\"\xc3\xa9\xc3\xa9\xc3\xa9\""},
    {"VARCHAR required max_length=3", "abcd", false, "at most 3 characters"},
    {"VARCHAR required", "\xff", false, "UTF-8"},
    {"VARCHAR required one_of=Drama|Comedy", "Drama", true, "\"Drama\""},
    {"VARCHAR required one_of=Drama|Comedy", "drama", false, "one of Drama|Comedy"},
    {"VARCHAR required regex=^[a-z]+$", "abc", true, "\"abc\""},
    {"VARCHAR required regex=^[a-z]+$", "abc1", false, "must match"},
    {"VARCHAR required regex=^[^%_]*$", "a%", false, "must match"},
    {"VARCHAR required", "'; DROP TABLE x; --", true, "\"'; DROP TABLE x; --\""},
    {"INTEGER required one_of=1|2|3", "2", true, "2"},
    {"INTEGER required one_of=1|2|3", "4", false, "one of 1|2|3"},
    /* DATE and TIMESTAMP, with bounds */
    {"DATE required", "1970-01-01", true, "0"},
    {"DATE required", "2024-02-29", true, "19782"},
    {"DATE required", "2023-02-29", false, "YYYY-MM-DD"},
    {"DATE required", "2024-1-01", false, "YYYY-MM-DD"},
    {"DATE required min=2000-01-01 max=2000-12-31", "2000-12-31", true, "11322"},
    {"DATE required min=2000-01-01 max=2000-12-31", "2001-01-01", false, "<= 2000-12-31"},
    {"DATE required min=2000-01-01 max=2000-12-31", "1999-12-31", false, ">= 2000-01-01"},
    {"TIMESTAMP required", "1970-01-01T00:00:01", true, "1000000"},
    {"TIMESTAMP required", "1970-01-01 00:00:00.5", true, "500000"},
    {"TIMESTAMP required", "1970-01-01T00:01Z", true, "60000000"},
    {"TIMESTAMP required", "1970-01-01", true, "0"},
    {"TIMESTAMP required", "1970-01-01T24:00:00", false, "timestamp"},
    {"TIMESTAMP required", "1970-01-01T00:00:00.1234567", false, "timestamp"},
    {"TIMESTAMP required max=2000-01-01T00:00:00", "2000-01-01T00:00:00.000001", false, "<="},
    /* defaults and missing values */
    {"INTEGER default=7", NULL, true, "7"},
    {"VARCHAR default=NULL", NULL, true, "null"},
    {"INTEGER required", NULL, false, "is required"},
};

static void test_values_text(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof value_cases / sizeof value_cases[0]; i++) {
        const vcase_t *c = &value_cases[i];
        json_t *out = NULL;
        char reason[192] = "";
        dg_rc_t rc = one_value(c->decl, c->value, &out, reason, sizeof reason);
        if (c->ok) {
            if (rc != DG_OK) {
                fail_msg("case %zu (%s = %s) refused: %s", i, c->decl, c->value, reason);
            }
            char *got = json_dumps(json_object_get(out, "v"), JSON_ENCODE_ANY);
            if (strcmp(got, c->expect) != 0) {
                fail_msg("case %zu (%s = %s): expected %s, got %s", i, c->decl, c->value, c->expect,
                         got);
            }
            free(got);
            json_decref(out);
        } else {
            if (rc != DG_INVALID_PARAMS || out) {
                fail_msg("case %zu (%s = %s) accepted", i, c->decl, c->value);
            }
            if (!strstr(reason, c->expect)) {
                fail_msg("case %zu (%s = %s): expected \"%s\" in \"%s\"", i, c->decl, c->value,
                         c->expect, reason);
            }
        }
    }
}

static void test_values_lists_and_all_errors(void **state)
{
    (void)state;
    dg_named_query_t *q = parse_ok("-- @param ids VARCHAR[] required max_items=2 max_length=3\n"
                                   "-- @param n INTEGER required max=10\n"
                                   "-- @param d DATE default=NULL\n"
                                   "SELECT $ids, $n, $d");
    dg_named_errors_t errs;
    json_t *out = NULL;
    /* At the item cap: both items kept in order. */
    dg_named_kv_t ok[] = {{"ids", "a"}, {"n", "3"}, {"ids", "b"}, {"format", "csv"}};
    static const char *const ignore[] = {"format", NULL};
    assert_int_equal(dg_named_values_from_args(q, ok, 4, ignore, &out, &errs), DG_OK);
    char *s = json_dumps(out, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(s, "{\"d\":null,\"ids\":[\"a\",\"b\"],\"n\":3}");
    free(s);
    json_decref(out);
    /* Every problem at once: over the item cap, a bad scalar, repeated scalar, unknown keys
     * (each listed once), and format is not ignored when not asked to. */
    dg_named_kv_t bad[] = {{"ids", "a"}, {"ids", "b"}, {"ids", "c"}, {"n", "11"},      {"d", "x"},
                           {"d", "y"},   {"zz", "1"},  {"zz", "2"},  {"format", "csv"}};
    assert_int_equal(dg_named_values_from_args(q, bad, 9, NULL, &out, &errs), DG_INVALID_PARAMS);
    assert_null(out);
    assert_int_equal(errs.n, 5);
    assert_string_equal(errs.items[0].name, "ids");
    assert_string_equal(errs.items[0].reason, "must have at most 2 items");
    assert_string_equal(errs.items[1].name, "n");
    assert_string_equal(errs.items[1].reason, "must be <= 10");
    assert_string_equal(errs.items[2].name, "d");
    assert_string_equal(errs.items[2].reason, "given more than once");
    assert_string_equal(errs.items[3].name, "zz");
    assert_string_equal(errs.items[3].reason, "unknown parameter");
    assert_string_equal(errs.items[4].name, "format");
    /* A bad item names its position. */
    dg_named_kv_t item[] = {{"ids", "ok"}, {"ids", "toolong"}, {"n", "1"}};
    assert_int_equal(dg_named_values_from_args(q, item, 3, NULL, &out, &errs), DG_INVALID_PARAMS);
    assert_int_equal(errs.n, 1);
    assert_string_equal(errs.items[0].reason, "item 2: must be at most 3 characters long");
    /* Missing required values. */
    assert_int_equal(dg_named_values_from_args(q, NULL, 0, NULL, &out, &errs), DG_INVALID_PARAMS);
    assert_int_equal(errs.n, 2);
    dg_named_query_free(q);
}

static void test_values_json(void **state)
{
    (void)state;
    dg_named_query_t *q = parse_ok("-- @param b BOOLEAN required\n"
                                   "-- @param i INTEGER default=1 min=0\n"
                                   "-- @param x DOUBLE default=0\n"
                                   "-- @param s VARCHAR default=NULL max_length=4\n"
                                   "-- @param d DATE default=NULL\n"
                                   "-- @param l BIGINT[] default=NULL max_items=3\n"
                                   "SELECT $b, $i, $x, $s, $d, $l");
    dg_named_errors_t errs;
    json_t *out = NULL;
    json_t *in = json_loads("{\"b\":true,\"i\":5,\"x\":2,\"s\":null,\"d\":\"2024-01-02\","
                            "\"l\":[1,2,3]}",
                            0, NULL);
    assert_int_equal(dg_named_values_from_json(q, in, &out, &errs), DG_OK);
    char *s = json_dumps(out, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(s, "{\"b\":true,\"d\":19724,\"i\":5,\"l\":[1,2,3],\"s\":null,\"x\":2.0}");
    free(s);
    json_decref(out);
    json_decref(in);
    /* Wrong JSON types everywhere, null where the default is not NULL, unknown key. */
    in = json_loads("{\"b\":\"true\",\"i\":null,\"x\":\"1\",\"s\":5,\"d\":20240102,"
                    "\"l\":[1,\"2\"],\"extra\":1}",
                    0, NULL);
    assert_int_equal(dg_named_values_from_json(q, in, &out, &errs), DG_INVALID_PARAMS);
    assert_int_equal(errs.n, 7);
    assert_string_equal(errs.items[0].reason, "must be true or false");
    assert_string_equal(errs.items[1].reason, "must not be null");
    assert_string_equal(errs.items[2].reason, "must be a number");
    assert_string_equal(errs.items[3].reason, "must be a string");
    assert_string_equal(errs.items[4].reason, "must be a date string");
    assert_non_null(strstr(errs.items[5].reason, "item 2:"));
    assert_string_equal(errs.items[6].name, "extra");
    json_decref(in);
    /* Over the item cap, an integer out of range, a non-array list, a string with a NUL. */
    in = json_loads("{\"b\":false,\"i\":-1,\"l\":[1,2,3,4],\"s\":\"a\\u0000b\"}", JSON_ALLOW_NUL,
                    NULL);
    assert_int_equal(dg_named_values_from_json(q, in, &out, &errs), DG_INVALID_PARAMS);
    assert_int_equal(errs.n, 3);
    json_decref(in);
    in = json_loads("{\"b\":false,\"l\":5}", 0, NULL);
    assert_int_equal(dg_named_values_from_json(q, in, &out, &errs), DG_INVALID_PARAMS);
    assert_string_equal(errs.items[0].reason, "must be an array");
    json_decref(in);
    /* No params at all: the required one is reported. */
    assert_int_equal(dg_named_values_from_json(q, NULL, &out, &errs), DG_INVALID_PARAMS);
    assert_string_equal(errs.items[0].name, "b");
    json_t *types = dg_named_types_json(q);
    s = json_dumps(types, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(s, "{\"b\":\"BOOLEAN\",\"d\":\"DATE\",\"i\":\"INTEGER\",\"l\":\"BIGINT[]\","
                           "\"s\":\"VARCHAR\",\"x\":\"DOUBLE\"}");
    free(s);
    json_decref(types);
    dg_named_query_free(q);
}

static void test_many_bad_are_capped(void **state)
{
    (void)state;
    dg_named_query_t *q = parse_ok("SELECT 1");
    json_t *in = json_object();
    for (int i = 0; i < DG_NAMED_MAX_BAD + 10; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        json_object_set_new(in, k, json_integer(i));
    }
    dg_named_errors_t errs;
    json_t *out = NULL;
    assert_int_equal(dg_named_values_from_json(q, in, &out, &errs), DG_INVALID_PARAMS);
    assert_int_equal(errs.n, DG_NAMED_MAX_BAD);
    assert_int_equal(errs.n_more, 10);
    json_decref(in);
    dg_named_query_free(q);
}

static void test_dates_round_trip(void **state)
{
    (void)state;
    assert_int_equal(dg_named_days_from_civil(1970, 1, 1), 0);
    assert_int_equal(dg_named_days_from_civil(1969, 12, 31), -1);
    assert_int_equal(dg_named_days_from_civil(2000, 3, 1), 11017);
    static const char *const dates[] = {"0001-01-01", "1969-12-31", "2000-02-29", "9999-12-31"};
    for (size_t i = 0; i < sizeof dates / sizeof dates[0]; i++) {
        json_t *v = NULL;
        char reason[64], back[64];
        assert_true(dg_named_scalar_from_text(DG_NAMED_DATE, dates[i], &v, reason, sizeof reason));
        dg_named_scalar_text(DG_NAMED_DATE, v, back, sizeof back);
        assert_string_equal(back, dates[i]);
        json_decref(v);
    }
    json_t *v = NULL;
    char reason[64], back[64];
    assert_true(dg_named_scalar_from_text(DG_NAMED_TIMESTAMP, "1969-12-31T23:59:59.5", &v, reason,
                                          sizeof reason));
    assert_int_equal(json_integer_value(v), -500000);
    dg_named_scalar_text(DG_NAMED_TIMESTAMP, v, back, sizeof back);
    assert_string_equal(back, "1969-12-31T23:59:59.500000");
    json_decref(v);
}

/* ---- JSON descriptions ---------------------------------------------------------------------- */

static void test_json_descriptions(void **state)
{
    (void)state;
    dg_named_query_t *q = parse_ok(full);
    json_t *j = dg_named_query_json(q);
    assert_string_equal(json_string_value(json_object_get(j, "roles")), "public");
    json_t *ps = json_object_get(j, "params");
    assert_int_equal(json_array_size(ps), 11);
    assert_true(json_is_null(json_object_get(json_array_get(ps, 5), "default")));
    assert_string_equal(json_string_value(json_object_get(json_array_get(ps, 6), "default")),
                        "2020-01-01T00:00:00.000000Z");
    json_decref(j);
    /* q: string with maxLength and pattern */
    json_t *s = dg_named_param_schema(&q->params[0]);
    assert_string_equal(json_string_value(json_object_get(s, "type")), "string");
    assert_int_equal(json_integer_value(json_object_get(s, "maxLength")), 100);
    assert_string_equal(json_string_value(json_object_get(s, "pattern")), "^[^%_]*$");
    json_decref(s);
    /* limit: integer bounds and default */
    s = dg_named_param_schema(&q->params[1]);
    assert_string_equal(json_string_value(json_object_get(s, "type")), "integer");
    assert_int_equal(json_integer_value(json_object_get(s, "minimum")), 1);
    assert_int_equal(json_integer_value(json_object_get(s, "maximum")), 100);
    assert_int_equal(json_integer_value(json_object_get(s, "default")), 20);
    json_decref(s);
    /* genre: nullable enum lists null too */
    s = dg_named_param_schema(&q->params[2]);
    assert_true(json_is_array(json_object_get(s, "type")));
    assert_int_equal(json_array_size(json_object_get(s, "enum")), 4);
    json_decref(s);
    /* ids: array of strings with maxItems */
    s = dg_named_param_schema(&q->params[4]);
    assert_string_equal(json_string_value(json_object_get(s, "type")), "array");
    assert_int_equal(json_integer_value(json_object_get(s, "maxItems")), 4);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(s, "items"), "maxLength")),
                     12);
    json_decref(s);
    /* since: a date with its bound kept as an extension */
    s = dg_named_param_schema(&q->params[5]);
    assert_string_equal(json_string_value(json_object_get(s, "format")), "date");
    assert_string_equal(json_string_value(json_object_get(s, "x-minimum")), "1900-01-01");
    json_decref(s);
    dg_named_query_free(q);
}

/* ---- the registry --------------------------------------------------------------------------- */

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_registry_reload(void **state)
{
    (void)state;
    char dir[] = "/tmp/dg-named-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char sub[256], f1[300], f2[300], f3[300];
    snprintf(sub, sizeof sub, "%s/main", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    snprintf(f1, sizeof f1, "%s/a.sql", sub);
    snprintf(f2, sizeof f2, "%s/b.sql", sub);
    snprintf(f3, sizeof f3, "%s/bad name.sql", sub);
    write_file(f1, "-- @param x INTEGER default=1\nSELECT $x AS v");
    write_file(f2, "-- @bogus\nSELECT 1");
    write_file(f3, "SELECT 1"); /* not a valid name: ignored */
    const char *dbs[] = {"main", "other"};
    dg_named_t *n = NULL;
    assert_int_equal(dg_named_new(dir, dbs, 2, &n), DG_OK);
    char err[256];
    const dg_named_query_t *a = dg_named_get(n, "main", "a", err, sizeof err);
    assert_non_null(a);
    assert_string_equal(err, "");
    uint64_t v1 = a->version;
    assert_null(dg_named_get(n, "main", "b", err, sizeof err));
    assert_string_equal(err, "b.sql:1: unknown directive @bogus (description, roles, cache_ttl, "
                             "cache, max_rows, timeout_ms, param)");
    assert_null(dg_named_get(n, "main", "bad name", NULL, 0));
    assert_null(dg_named_get(n, "other", "a", NULL, 0));
    /* A broken edit keeps the good version serving and records the error. */
    write_file(f1, "-- @param x INTEGER default=1\nSELECT $y");
    dg_named_refresh(n, true);
    const dg_named_query_t *a2 = dg_named_get(n, "main", "a", err, sizeof err);
    assert_ptr_equal(a2, a);
    assert_non_null(strstr(err, "a.sql:2: parameter $y is used but not declared"));
    dg_named_release(a2);
    /* A good edit replaces it; the old version stays valid for its holder. */
    write_file(f1, "-- @param z VARCHAR default=q\nSELECT $z AS v");
    dg_named_refresh(n, true);
    const dg_named_query_t *a3 = dg_named_get(n, "main", "a", err, sizeof err);
    assert_non_null(a3);
    assert_true(a3->version > v1);
    assert_string_equal(a3->params[0].name, "z");
    assert_string_equal(err, "");
    assert_string_equal(a->params[0].name, "x");
    dg_named_release(a);
    /* A refresh within a second of the last is skipped unless forced. */
    unlink(f1);
    dg_named_refresh(n, false);
    const dg_named_query_t *a4 = dg_named_get(n, "main", "a", NULL, 0);
    assert_non_null(a4);
    dg_named_release(a4);
    dg_named_refresh(n, true);
    assert_null(dg_named_get(n, "main", "a", NULL, 0));
    dg_named_release(a3);
    unlink(f2);
    unlink(f3);
    rmdir(sub);
    rmdir(dir);
    dg_named_free(n);
    /* A missing directory is no queries, not an error. */
    assert_int_equal(dg_named_new("/nonexistent/dg-queries", dbs, 2, &n), DG_OK);
    assert_null(dg_named_get(n, "main", "a", NULL, 0));
    dg_named_free(n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_full),       cmocka_unit_test(test_parse_defaults),
        cmocka_unit_test(test_parse_broken),     cmocka_unit_test(test_parse_limits),
        cmocka_unit_test(test_values_text),      cmocka_unit_test(test_values_lists_and_all_errors),
        cmocka_unit_test(test_values_json),      cmocka_unit_test(test_many_bad_are_capped),
        cmocka_unit_test(test_dates_round_trip), cmocka_unit_test(test_json_descriptions),
        cmocka_unit_test(test_registry_reload),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
