/* Unit tests of the DuckDB side of named queries (src/db/db_named.c): typed binding of every
 * declared type (scalars, lists, NULL), values that are data and never SQL, the statement
 * check (one SELECT), reuse of the cached statement and connection across runs (also after an
 * interrupted run), many concurrent runs, and closing an instance with a filled pool. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "db/db.h"

static char g_dir[256];
static char g_path[320];
static dg_db_t *g_db;

static int setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/dg-dbnamed-XXXXXX");
    if (!mkdtemp(g_dir)) {
        return -1;
    }
    snprintf(g_path, sizeof g_path, "%s/fx.duckdb", g_dir);
    dg_error_t err;
    dg_error_clear(&err);
    dg_db_t *rw = NULL;
    dg_db_opts_t o = {.path = g_path, .name = "fx", .read_only = false, .threads = 1};
    if (dg_db_open(&o, &rw, &err) != DG_OK ||
        dg_db_exec(rw,
                   "CREATE TABLE t(id INTEGER, name VARCHAR, d DATE, ts TIMESTAMP, x DOUBLE,"
                   " ok BOOLEAN);"
                   "INSERT INTO t SELECT i, 'n' || i, DATE '2024-01-01' + i::INTEGER,"
                   " TIMESTAMP '2024-01-01' + to_hours(i::INTEGER), i / 2, i % 2 = 0"
                   " FROM range(1, 11) r(i);",
                   &err) != DG_OK) {
        fprintf(stderr, "fixture: %s\n", err.msg);
        return -1;
    }
    dg_db_close(rw);
    o.read_only = true;
    return dg_db_open(&o, &g_db, &err) == DG_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    dg_db_close(g_db);
    unlink(g_path);
    rmdir(g_dir);
    return 0;
}

/* Runs a named query; returns the rc and, on success, the rows as "a|b;c|d" text. */
static dg_rc_t run(dg_db_t *db, const char *sql, const char *params, const char *types, char *out,
                   size_t cap, dg_error_t *err)
{
    dg_db_query_t q = {.sql = sql,
                       .sql_len = strlen(sql),
                       .params_json = params,
                       .params_len = params ? strlen(params) : 0,
                       .param_types = types,
                       .param_types_len = types ? strlen(types) : 0};
    dg_db_cursor_t *c = NULL;
    dg_error_clear(err);
    dg_rc_t rc = dg_db_named_start(db, &q, &c, err);
    if (rc != DG_OK) {
        return rc;
    }
    size_t off = 0;
    out[0] = '\0';
    const dg_batch_t *b = NULL;
    while ((rc = dg_db_cursor_next(c, &b, err)) == DG_OK && b) {
        for (uint64_t r = 0; r < b->n_rows; r++) {
            for (size_t k = 0; k < b->n_cols; k++) {
                const dg_vec_t *v = &b->cols[k];
                char cell[64] = "";
                if (!dg_vec_is_valid(v, r)) {
                    snprintf(cell, sizeof cell, "NULL");
                } else if (v->type->id == DG_TYPE_BIGINT) {
                    snprintf(cell, sizeof cell, "%lld", (long long)((const int64_t *)v->data)[r]);
                } else if (v->type->id == DG_TYPE_INTEGER) {
                    snprintf(cell, sizeof cell, "%d", ((const int32_t *)v->data)[r]);
                } else {
                    snprintf(cell, sizeof cell, "?");
                }
                off += (size_t)snprintf(out + off, cap - off, "%s%s",
                                        k ? "|" : (r || off ? ";" : ""), cell);
            }
        }
    }
    dg_db_cursor_free(c);
    return rc;
}

static void test_typed_binding(void **state)
{
    (void)state;
    dg_error_t err;
    char out[512];
    /* Every scalar type bound as declared: the query counts matching rows. */
    const char *sql = "SELECT count(*)::INTEGER FROM t WHERE id >= $i AND name <> $s AND d >= $d"
                      " AND ts >= $ts AND x >= $x AND ok = $b AND $t8 < 100 AND $t16 < 1000"
                      " AND $big > 0";
    const char *types = "{\"i\":\"INTEGER\",\"s\":\"VARCHAR\",\"d\":\"DATE\",\"ts\":\"TIMESTAMP\","
                        "\"x\":\"DOUBLE\",\"b\":\"BOOLEAN\",\"t8\":\"TINYINT\",\"t16\":"
                        "\"SMALLINT\",\"big\":\"BIGINT\"}";
    /* d >= 2024-01-05 (19727) keeps ids 4..10; ts >= 2024-01-01T05:00 keeps 5..10; even ids. */
    const char *params = "{\"i\":2,\"s\":\"zz\",\"d\":19727,\"ts\":1704085200000000,\"x\":0.5,"
                         "\"b\":true,\"t8\":1,\"t16\":2,\"big\":9223372036854775807}";
    assert_int_equal(run(g_db, sql, params, types, out, sizeof out, &err), DG_OK);
    assert_string_equal(out, "3"); /* 6, 8, 10 */
    /* Lists and NULL. */
    sql = "SELECT id FROM t WHERE list_contains($ids, id) AND ($n IS NULL OR name = $n)"
          " ORDER BY id";
    types = "{\"ids\":\"INTEGER[]\",\"n\":\"VARCHAR\"}";
    assert_int_equal(run(g_db, sql, "{\"ids\":[3,1,7],\"n\":null}", types, out, sizeof out, &err),
                     DG_OK);
    assert_string_equal(out, "1;3;7");
    assert_int_equal(run(g_db, sql, "{\"ids\":[3,1,7],\"n\":\"n7\"}", types, out, sizeof out, &err),
                     DG_OK);
    assert_string_equal(out, "7");
    assert_int_equal(run(g_db, sql, "{\"ids\":[],\"n\":null}", types, out, sizeof out, &err),
                     DG_OK);
    assert_string_equal(out, "");
    /* A value is data: SQL text in it matches nothing and runs nothing. */
    assert_int_equal(
        run(g_db, sql, "{\"ids\":[1],\"n\":\"'; DROP TABLE t; --\"}", types, out, sizeof out, &err),
        DG_OK);
    assert_string_equal(out, "");
    assert_int_equal(
        run(g_db, "SELECT count(*)::INTEGER FROM t", "{}", "{}", out, sizeof out, &err), DG_OK);
    assert_string_equal(out, "10");
}

/* Statements are cached per long-lived connection: repeated calls of one named query, with any
 * values, prepare it once; another query prepares once more; 16 other statements push it out of
 * the connection's LRU, after which it is prepared again. */
static void test_statement_prepared_once(void **state)
{
    (void)state;
    dg_error_t err;
    char out[512];
    const char *sql = "SELECT count(*)::INTEGER FROM t WHERE id > $n /* prepared-once */";
    const char *types = "{\"n\":\"INTEGER\"}";
    uint64_t p0 = dg_db_named_prepares();
    for (int i = 0; i < 20; i++) {
        char params[32];
        snprintf(params, sizeof params, "{\"n\":%d}", i % 10);
        assert_int_equal(run(g_db, sql, params, types, out, sizeof out, &err), DG_OK);
        char want[8];
        snprintf(want, sizeof want, "%d", 10 - i % 10);
        assert_string_equal(out, want);
    }
    assert_int_equal(dg_db_named_prepares() - p0, 1);
    /* A failed bind (a bad value) does not drop the statement. */
    assert_int_not_equal(run(g_db, sql, "{\"n\":\"x\"}", types, out, sizeof out, &err), DG_OK);
    assert_int_equal(run(g_db, sql, "{\"n\":9}", types, out, sizeof out, &err), DG_OK);
    assert_int_equal(dg_db_named_prepares() - p0, 1);
    const char *other = "SELECT max(id)::INTEGER FROM t WHERE id < $n /* prepared-once */";
    assert_int_equal(run(g_db, other, "{\"n\":5}", types, out, sizeof out, &err), DG_OK);
    assert_string_equal(out, "4");
    assert_int_equal(run(g_db, other, "{\"n\":6}", types, out, sizeof out, &err), DG_OK);
    assert_int_equal(dg_db_named_prepares() - p0, 2);
    for (int i = 0; i < 16; i++) {
        char filler[96];
        snprintf(filler, sizeof filler, "SELECT %d::INTEGER + $n /* filler */", i);
        assert_int_equal(run(g_db, filler, "{\"n\":1}", types, out, sizeof out, &err), DG_OK);
    }
    assert_int_equal(dg_db_named_prepares() - p0, 18);
    assert_int_equal(run(g_db, sql, "{\"n\":0}", types, out, sizeof out, &err), DG_OK);
    assert_string_equal(out, "10");
    assert_int_equal(dg_db_named_prepares() - p0, 19);
}

static void test_bad_values_and_sql(void **state)
{
    (void)state;
    dg_error_t err;
    char out[128];
    const char *sql = "SELECT $v::INTEGER";
    /* Shape and range mismatches are refused, not coerced. */
    assert_int_equal(run(g_db, sql, "{\"v\":\"1\"}", "{\"v\":\"INTEGER\"}", out, sizeof out, &err),
                     DG_BAD_PARAMS);
    assert_int_equal(run(g_db, sql, "{\"v\":300}", "{\"v\":\"TINYINT\"}", out, sizeof out, &err),
                     DG_BAD_PARAMS);
    assert_int_equal(
        run(g_db, sql, "{\"v\":[1,\"a\"]}", "{\"v\":\"INTEGER[]\"}", out, sizeof out, &err),
        DG_BAD_PARAMS);
    assert_int_equal(run(g_db, sql, "{\"v\":1}", "{\"v\":\"FLOAT\"}", out, sizeof out, &err),
                     DG_BAD_PARAMS);
    /* Missing or extra values. */
    assert_int_equal(run(g_db, sql, "{}", "{\"v\":\"INTEGER\"}", out, sizeof out, &err),
                     DG_BAD_PARAMS);
    assert_int_equal(run(g_db, sql, "{\"v\":1,\"w\":2}", "{\"v\":\"INTEGER\",\"w\":\"INTEGER\"}",
                         out, sizeof out, &err),
                     DG_BAD_PARAMS);
    /* The statement check: one statement, a SELECT. */
    assert_int_equal(run(g_db, "SELECT 1; SELECT 2", "{}", "{}", out, sizeof out, &err),
                     DG_MULTIPLE_STATEMENTS);
    assert_int_equal(run(g_db, "CREATE TABLE x(i INTEGER)", "{}", "{}", out, sizeof out, &err),
                     DG_NOT_READ_ONLY);
    assert_int_equal(run(g_db, "SELEC 1", "{}", "{}", out, sizeof out, &err), DG_SQL_ERROR);
    /* And the pool is still healthy. */
    assert_int_equal(run(g_db, sql, "{\"v\":5}", "{\"v\":\"INTEGER\"}", out, sizeof out, &err),
                     DG_OK);
    assert_string_equal(out, "5");
}

static void test_reuse_after_interrupt(void **state)
{
    (void)state;
    dg_error_t err;
    char out[128];
    /* Many different statements: more than one connection's cache holds, so some are evicted
     * and prepared again. */
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 40; i++) {
            char sql[96], params[32], expect[32];
            snprintf(sql, sizeof sql, "SELECT ($v + %d)::INTEGER", i);
            snprintf(params, sizeof params, "{\"v\":%d}", round);
            snprintf(expect, sizeof expect, "%d", round + i);
            assert_int_equal(run(g_db, sql, params, "{\"v\":\"INTEGER\"}", out, sizeof out, &err),
                             DG_OK);
            assert_string_equal(out, expect);
        }
    }
    /* Stopped while starting (the start polls q.interrupt between execution tasks). */
    const char *slow = "SELECT count(*) FROM range(100000000000) r(i) WHERE i % $m = 1";
    const char *types = "{\"m\":\"BIGINT\"}";
    _Atomic int stop = (int)DG_TIMEOUT;
    dg_db_query_t q = {.sql = slow,
                       .sql_len = strlen(slow),
                       .params_json = "{\"m\":7}",
                       .params_len = 7,
                       .param_types = types,
                       .param_types_len = strlen(types),
                       .interrupt = &stop};
    dg_db_cursor_t *c = NULL;
    dg_error_clear(&err);
    assert_int_equal(dg_db_named_start(g_db, &q, &c, &err), DG_TIMEOUT);
    assert_null(c);
    /* Interrupted while streaming, through the cursor. */
    const char *rows = "SELECT i FROM range(100000000000) r(i) WHERE i % $m >= 0";
    q.sql = rows;
    q.sql_len = strlen(rows);
    atomic_store(&stop, 0);
    dg_error_clear(&err);
    assert_int_equal(dg_db_named_start(g_db, &q, &c, &err), DG_OK);
    const dg_batch_t *b = NULL;
    assert_int_equal(dg_db_cursor_next(c, &b, &err), DG_OK);
    assert_non_null(b);
    dg_db_cursor_interrupt(c, DG_TIMEOUT);
    dg_error_clear(&err);
    dg_rc_t rc;
    do {
        rc = dg_db_cursor_next(c, &b, &err);
    } while (rc == DG_OK && b);
    assert_int_equal(rc, DG_TIMEOUT);
    dg_db_cursor_free(c);
    assert_int_equal(run(g_db, "SELECT ($v * 2)::INTEGER", "{\"v\":21}", "{\"v\":\"INTEGER\"}", out,
                         sizeof out, &err),
                     DG_OK);
    assert_string_equal(out, "42");
}

static void *worker(void *arg)
{
    dg_db_t *db = arg;
    char out[64];
    dg_error_t err;
    for (int i = 0; i < 50; i++) {
        char params[32], expect[32];
        snprintf(params, sizeof params, "{\"v\":%d}", i);
        snprintf(expect, sizeof expect, "%d", i + 1);
        if (run(db, "SELECT ($v + 1)::INTEGER", params, "{\"v\":\"INTEGER\"}", out, sizeof out,
                &err) != DG_OK ||
            strcmp(out, expect) != 0) {
            return (void *)1;
        }
    }
    return NULL;
}

static void test_concurrent_and_close(void **state)
{
    (void)state;
    /* A second instance of the file: many threads fill its pool, then it is closed with the
     * pool full (the leak checker and a reopen prove everything was released). */
    dg_db_opts_t o = {.path = g_path, .name = "fx", .read_only = true, .threads = 1};
    for (int round = 0; round < 2; round++) {
        dg_db_t *db = NULL;
        dg_error_t err;
        dg_error_clear(&err);
        assert_int_equal(dg_db_open(&o, &db, &err), DG_OK);
        pthread_t th[4];
        for (int i = 0; i < 4; i++) {
            pthread_create(&th[i], NULL, worker, db);
        }
        for (int i = 0; i < 4; i++) {
            void *res = NULL;
            pthread_join(th[i], &res);
            assert_null(res);
        }
        dg_db_close(db);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_typed_binding),        cmocka_unit_test(test_statement_prepared_once),
        cmocka_unit_test(test_bad_values_and_sql),   cmocka_unit_test(test_reuse_after_interrupt),
        cmocka_unit_test(test_concurrent_and_close),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
