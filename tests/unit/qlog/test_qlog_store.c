/* Unit tests of the query log store (src/db/db_qlog.c) on a real DuckDB file in a temporary
 * directory: creation, appends, sequence-number deduplication (a resent batch is not stored
 * twice, also after reopening), retention by age and by row count, the listing query's filters
 * and order, and that the store refuses malformed batches. */
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/dgtime.h"
#include "db/db.h"
#include "db/db_qlog.h"

static char g_dir[256];
static char g_path[320];

static int setup(void **state)
{
    (void)state;
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/dg_qlog_test_XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(g_dir)) {
        return -1;
    }
    snprintf(g_path, sizeof g_path, "%s/query_log.duckdb", g_dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char p[400];
    snprintf(p, sizeof p, "%s.wal", g_path);
    unlink(p);
    unlink(g_path);
    rmdir(g_dir);
    return 0;
}

/* A row as the front ships it. */
static json_t *row(uint64_t seq, int64_t ts_ms, const char *db, int status, uint64_t rows)
{
    char rid[32];
    snprintf(rid, sizeof rid, "req-%llu", (unsigned long long)seq);
    json_t *r = json_pack(
        "{s:I, s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:I, s:I, s:f, s:f}", "seq", (json_int_t)seq,
        "ts_ms", (json_int_t)ts_ms, "request_id", rid, "kind", "sql", "db", db, "query",
        "SELECT 42", "principal", "ip:127.0.0.1", "role", "analyst", "status", status, "rows",
        (json_int_t)rows, "bytes", (json_int_t)10, "queue_ms", 0.0, "duration_ms", 1.5);
    assert_non_null(r);
    json_object_set_new(r, "code", status >= 400 ? json_string("SQL_ERROR") : json_null());
    json_object_set_new(r, "cache", json_null());
    return r;
}

/* Runs the listing query with the given filters; returns the request ids in order as one
 * comma-separated string (caller frees) and the row count. */
static char *list(dg_db_t *db, const char *fdb, int slo, int shi, int64_t since_us, int limit,
                  size_t *out_n)
{
    json_t *p = json_pack("{s:s, s:i, s:i, s:I, s:i}", "db", fdb, "slo", slo, "shi", shi,
                          "since_us", (json_int_t)since_us, "limit", limit);
    char *params = json_dumps(p, JSON_COMPACT);
    json_decref(p);
    dg_db_query_t q = {.sql = dg_db_qlog_select_sql,
                       .sql_len = strlen(dg_db_qlog_select_sql),
                       .params_json = params,
                       .params_len = strlen(params),
                       .mode = DG_DB_MODE_ADMIN};
    dg_db_cursor_t *c = NULL;
    dg_error_t err;
    dg_error_clear(&err);
    dg_rc_t rc = dg_db_query_start(db, &q, &c, &err);
    if (rc != DG_OK) {
        fail_msg("listing failed: %s", err.msg);
    }
    const dg_schema_t *sc = dg_db_cursor_schema(c);
    assert_int_equal(sc->n_cols, 18);
    assert_string_equal(sc->names[0], "ts");
    assert_string_equal(sc->names[1], "request_id");
    assert_string_equal(sc->names[5], "params_hash");
    assert_string_equal(sc->names[8], "client_addr");
    assert_string_equal(sc->names[14], "execute_ms");
    assert_string_equal(sc->names[15], "encode_ms");
    dg_buf_t out;
    dg_buf_init(&out, 0);
    *out_n = 0;
    const dg_batch_t *b = NULL;
    while (dg_db_cursor_next(c, &b, &err) == DG_OK && b) {
        const dg_strval_t *ids = b->cols[1].data;
        for (uint64_t i = 0; i < b->n_rows; i++) {
            uint32_t len;
            const char *s = dg_strval_data(&ids[i], &len);
            dg_buf_printf(&out, "%s%.*s", *out_n ? "," : "", (int)len, s);
            (*out_n)++;
        }
    }
    dg_db_cursor_free(c);
    free(params);
    if (!out.p) {
        return strdup("");
    }
    return dg_buf_take(&out, NULL);
}

static dg_db_t *open_store(void)
{
    dg_db_t *db = NULL;
    dg_error_t err;
    dg_error_clear(&err);
    if (dg_db_qlog_open(g_path, 64u << 20, &db, &err) != DG_OK) {
        fail_msg("open failed: %s", err.msg);
    }
    return db;
}

static void test_append_dedup_list(void **state)
{
    (void)state;
    int64_t now = dg_wall_ms();
    dg_db_t *db = open_store();
    json_t *batch = json_array();
    json_array_append_new(batch, row(1, now - 3000, "main", 200, 5));
    json_array_append_new(batch, row(2, now - 2000, "other", 400, 0));
    json_array_append_new(batch, row(3, now - 1000, "main", 504, 0));
    uint64_t last = 0;
    bool known = false;
    size_t n = 0;
    dg_error_t err;
    dg_error_clear(&err);
    assert_int_equal(dg_db_qlog_append(db, "frontA", batch, &last, &known, &n, &err), DG_OK);
    assert_int_equal(n, 3);
    assert_int_equal(last, 3);
    assert_true(known);
    /* The same batch again (its confirmation was lost): nothing new is stored. */
    assert_int_equal(dg_db_qlog_append(db, "frontA", batch, &last, &known, &n, &err), DG_OK);
    assert_int_equal(n, 0);
    /* Another front has its own sequence numbers. */
    bool known_b = false;
    uint64_t last_b = 0;
    json_t *b2 = json_array();
    json_array_append_new(b2, row(1, now, "main", 200, 1));
    assert_int_equal(dg_db_qlog_append(db, "frontB", b2, &last_b, &known_b, &n, &err), DG_OK);
    assert_int_equal(n, 1);
    json_decref(b2);

    size_t cnt;
    char *ids = list(db, "", 0, 999, 0, 100, &cnt);
    assert_int_equal(cnt, 4);
    assert_string_equal(ids, "req-1,req-3,req-2,req-1"); /* newest first */
    free(ids);
    ids = list(db, "main", 0, 999, 0, 100, &cnt);
    assert_string_equal(ids, "req-1,req-3,req-1");
    free(ids);
    ids = list(db, "", 400, 599, 0, 100, &cnt);
    assert_string_equal(ids, "req-3,req-2");
    free(ids);
    ids = list(db, "", 0, 999, (now - 1500) * 1000, 100, &cnt);
    assert_string_equal(ids, "req-1,req-3");
    free(ids);
    ids = list(db, "", 0, 999, 0, 1, &cnt);
    assert_int_equal(cnt, 1);
    free(ids);
    /* A filter value is data, never SQL. */
    ids = list(db, "main' OR '1'='1", 0, 999, 0, 100, &cnt);
    assert_int_equal(cnt, 0);
    free(ids);
    dg_db_close(db);

    /* Reopened (a new engine process): the highest stored seq is read back from the table. */
    db = open_store();
    last = 0;
    known = false;
    json_array_append_new(batch, row(4, now, "main", 200, 1));
    assert_int_equal(dg_db_qlog_append(db, "frontA", batch, &last, &known, &n, &err), DG_OK);
    assert_int_equal(n, 1);
    assert_int_equal(last, 4);
    ids = list(db, "", 0, 999, 0, 100, &cnt);
    assert_int_equal(cnt, 5);
    free(ids);
    json_decref(batch);
    dg_db_close(db);
}

static void test_retention(void **state)
{
    (void)state;
    int64_t now = dg_wall_ms();
    int64_t day = 86400000;
    dg_db_t *db = open_store();
    size_t cnt;
    char *ids = list(db, "", 0, 999, 0, 1000, &cnt);
    size_t before = cnt;
    free(ids);
    json_t *batch = json_array();
    /* Two rows 40 and 31 days old, three newer than any row of the other tests. */
    json_array_append_new(batch, row(101, now - 40 * day, "main", 200, 1));
    json_array_append_new(batch, row(102, now - 31 * day, "main", 200, 1));
    json_array_append_new(batch, row(103, now + 1000, "main", 200, 1));
    json_array_append_new(batch, row(104, now + 2000, "main", 200, 1));
    json_array_append_new(batch, row(105, now + 3000, "main", 200, 1));
    uint64_t last = 0;
    bool known = false;
    size_t n;
    dg_error_t err;
    dg_error_clear(&err);
    assert_int_equal(dg_db_qlog_append(db, "frontR", batch, &last, &known, &n, &err), DG_OK);
    assert_int_equal(n, 5);
    json_decref(batch);
    uint64_t deleted = 0, used = 0;
    assert_int_equal(dg_db_qlog_retain(db, now - 30 * day, 0, 0, 0, &deleted, &used, &err), DG_OK);
    assert_int_equal(deleted, 2);
    ids = list(db, "", 0, 999, 0, 1000, &cnt);
    assert_int_equal(cnt, before + 3);
    assert_null(strstr(ids, "req-101"));
    assert_null(strstr(ids, "req-102"));
    free(ids);
    /* Row cap: only the newest 2 stay. */
    assert_int_equal(dg_db_qlog_retain(db, 0, 2, 0, 0, &deleted, &used, &err), DG_OK);
    assert_int_equal(deleted, before + 1);
    ids = list(db, "", 0, 999, 0, 1000, &cnt);
    assert_int_equal(cnt, 2);
    assert_string_equal(ids, "req-105,req-104");
    free(ids);
    /* Under the cap: nothing happens. */
    assert_int_equal(dg_db_qlog_retain(db, 0, 10, 0, 0, &deleted, &used, &err), DG_OK);
    assert_int_equal(deleted, 0);
    dg_db_close(db);
}

/* Size cap: over max_bytes the oldest rows go and the store checkpoints. A cap below what the
 * table needs anyway (its fixed share of blocks) is not chased: the caller passes the size a
 * trim reached back as the floor, so later calls delete nothing until the log grows past it.
 * The log is never emptied and the newest row stays. */
static void test_retention_by_size(void **state)
{
    (void)state;
    dg_db_t *db = open_store();
    uint64_t last = 0;
    bool known = false;
    dg_error_t err;
    dg_error_clear(&err);
    int64_t now = dg_wall_ms();
    const uint64_t total = 200000, base = 1000000;
    for (uint64_t b = 0; b < total; b += 10000) {
        json_t *batch = json_array();
        for (uint64_t i = b; i < b + 10000; i++) {
            json_t *r = row(base + i, now + (int64_t)i, "main", 200, i);
            char q[96];
            snprintf(q, sizeof q, "SELECT %llu AS n, %llu * 7 AS m -- %llx", (unsigned long long)i,
                     (unsigned long long)i, (unsigned long long)(i * 2654435761u));
            json_object_set_new(r, "query", json_string(q));
            json_array_append_new(batch, r);
        }
        size_t n = 0;
        assert_int_equal(dg_db_qlog_append(db, "frontS", batch, &last, &known, &n, &err), DG_OK);
        assert_int_equal(n, 10000);
        json_decref(batch);
    }
    uint64_t deleted = 0, used = 0, before = 0;
    /* A cap far above: nothing goes. */
    assert_int_equal(dg_db_qlog_retain(db, 0, 0, (uint64_t)1 << 40, 0, &deleted, &before, &err),
                     DG_OK);
    assert_int_equal(deleted, 0);
    assert_true(before > ((uint64_t)1 << 21));
    /* 2 MiB: the oldest rows go and the file's used blocks shrink. */
    const uint64_t cap = (uint64_t)1 << 21;
    assert_int_equal(dg_db_qlog_retain(db, 0, 0, cap, 0, &deleted, &used, &err), DG_OK);
    assert_true(deleted > 0 && deleted < total);
    assert_true(used < before);
    uint64_t floor = used > cap ? used : 0;
    /* Settled: the next calls, with the floor fed back, delete nothing. */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(dg_db_qlog_retain(db, 0, 0, cap, floor, &deleted, &used, &err), DG_OK);
        assert_int_equal(deleted, 0);
        floor = used > cap ? used : 0;
    }
    size_t cnt = 0;
    char *ids = list(db, "", 0, 999, 0, 1, &cnt);
    char newest[32];
    snprintf(newest, sizeof newest, "req-%llu", (unsigned long long)(base + total - 1));
    assert_int_equal(cnt, 1);
    assert_string_equal(ids, newest);
    free(ids);
    dg_db_close(db);
}

static void test_bad_batches(void **state)
{
    (void)state;
    dg_db_t *db = open_store();
    uint64_t last = 0;
    bool known = false;
    size_t n;
    dg_error_t err;
    dg_error_clear(&err);
    json_t *notarray = json_object();
    assert_int_equal(dg_db_qlog_append(db, "f", notarray, &last, &known, &n, &err), DG_BAD_REQUEST);
    json_decref(notarray);
    json_t *noseq = json_pack("[{s:s}]", "kind", "sql");
    dg_error_clear(&err);
    assert_int_equal(dg_db_qlog_append(db, "f", noseq, &last, &known, &n, &err), DG_BAD_REQUEST);
    assert_non_null(strstr(err.msg, "seq"));
    json_decref(noseq);
    dg_db_close(db);
}

/* Fails the test unless cond (a boolean SQL expression over the store) holds. */
static void check_sql(dg_db_t *db, const char *cond)
{
    char sql[1024];
    snprintf(sql, sizeof sql, "SELECT CASE WHEN (%s) THEN 1 ELSE error('failed: %s') END", cond,
             "condition");
    dg_error_t err;
    dg_error_clear(&err);
    if (dg_db_exec(db, sql, &err) != DG_OK) {
        fail_msg("%s: %s", cond, err.msg);
    }
}

/* A file written by an older version (the table without params_hash, execute_ms, encode_ms,
 * client_addr) opens, keeps its rows, gets the new columns and takes rows with them. */
static void test_upgrade_old_table(void **state)
{
    (void)state;
    char path[400];
    snprintf(path, sizeof path, "%s/old.duckdb", g_dir);
    dg_db_opts_t o = {.path = path, .name = "old", .read_only = false, .threads = 1};
    dg_db_t *db = NULL;
    dg_error_t err;
    dg_error_clear(&err);
    assert_int_equal(dg_db_open(&o, &db, &err), DG_OK);
    assert_int_equal(
        dg_db_exec(db,
                   "CREATE TABLE query_log (ts TIMESTAMP NOT NULL, request_id VARCHAR, kind "
                   "VARCHAR, db VARCHAR, query VARCHAR, principal VARCHAR, role VARCHAR, status "
                   "INTEGER, code VARCHAR, \"rows\" UBIGINT, bytes UBIGINT, queue_ms DOUBLE, "
                   "duration_ms DOUBLE, cache VARCHAR, front VARCHAR NOT NULL, seq UBIGINT NOT "
                   "NULL); INSERT INTO query_log VALUES (now()::TIMESTAMP, 'old-1', 'sql', 'main', "
                   "'SELECT 1', 'ip:1.2.3.4', 'analyst', 200, NULL, 1, 2, 0, 1, NULL, 'f0', 1)",
                   &err),
        DG_OK);
    dg_db_close(db);
    assert_int_equal(dg_db_qlog_open(path, 64u << 20, &db, &err), DG_OK);
    json_t *r = row(7, dg_wall_ms(), "main", 200, 3);
    json_object_set_new(r, "params_hash", json_string("ab12"));
    json_object_set_new(r, "execute_ms", json_real(1.25));
    json_object_set_new(r, "encode_ms", json_real(0.5));
    json_object_set_new(r, "client_addr", json_string("10.0.0.9"));
    json_t *batch = json_array();
    json_array_append_new(batch, r);
    json_array_append_new(batch, row(8, dg_wall_ms(), "main", 200, 3)); /* no new fields */
    uint64_t last = 0;
    bool known = false;
    size_t n = 0;
    assert_int_equal(dg_db_qlog_append(db, "f1", batch, &last, &known, &n, &err), DG_OK);
    assert_int_equal(n, 2);
    json_decref(batch);
    check_sql(db, "(SELECT count(*) FROM query_log) = 3");
    check_sql(db, "(SELECT count(*) FROM query_log WHERE request_id = 'old-1' AND params_hash "
                  "IS NULL AND execute_ms IS NULL AND client_addr IS NULL) = 1");
    check_sql(db, "(SELECT count(*) FROM query_log WHERE request_id = 'req-7' AND params_hash = "
                  "'ab12' AND execute_ms = 1.25 AND encode_ms = 0.5 AND client_addr = "
                  "'10.0.0.9') = 1");
    check_sql(db, "(SELECT count(*) FROM query_log WHERE request_id = 'req-8' AND encode_ms IS "
                  "NULL AND params_hash IS NULL) = 1");
    size_t cnt = 0;
    char *ids = list(db, "", 0, 999, 0, 10, &cnt);
    assert_int_equal(cnt, 3);
    free(ids);
    dg_db_close(db);
    /* Opening again (columns present) is a no-op. */
    assert_int_equal(dg_db_qlog_open(path, 64u << 20, &db, &err), DG_OK);
    check_sql(db, "(SELECT count(*) FROM query_log) = 3");
    dg_db_close(db);
    char p2[420];
    snprintf(p2, sizeof p2, "%s.wal", path);
    unlink(p2);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_dedup_list), cmocka_unit_test(test_retention),
        cmocka_unit_test(test_retention_by_size), cmocka_unit_test(test_bad_batches),
        cmocka_unit_test(test_upgrade_old_table),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
