/* Unit tests for the admin-SQL file scan of db/db_import.h (dg_db_files_scan): which reader
 * calls are found, and what is refused before any DuckDB or file is touched. The loading itself
 * is tested against the real server (tests/integration/test_admin.py). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include <string.h>

#include "db/db_import.h"

static dg_rc_t scan(const char *sql, size_t *n, dg_error_t *err)
{
    dg_error_clear(err);
    return dg_db_files_scan(sql, strlen(sql), n, err);
}

static void test_finds_reader_calls(void **state)
{
    (void)state;
    static const struct {
        const char *sql;
        size_t n;
    } cases[] = {
        {"SELECT 1", 0},
        {"SELECT * FROM t", 0},
        {"SELECT * FROM read_csv('a.csv')", 1},
        {"select * from READ_CSV_AUTO ( 'a.csv' , header = true )", 1},
        {"SELECT * FROM \"read_parquet\"('x.parquet')", 1},
        {"CREATE TABLE t AS SELECT * FROM read_json('a.json', format='auto')", 1},
        {"INSERT INTO t SELECT * FROM parquet_scan('a.parquet') JOIN read_ndjson('b.ndjson') "
         "USING (id)",
         2},
        {"SELECT * FROM read_csv('a.csv', columns={'a': 'DECIMAL(10,2)'})", 1},
        {"SELECT 'read_csv(''x'')' AS s", 0},   /* in a string */
        {"SELECT 1 -- read_csv('x')\n", 0},     /* in a comment */
        {"SELECT 1 /* read_text('x') */", 0},   /* in a block comment */
        {"SELECT $$read_csv('x')$$", 0},        /* dollar-quoted */
        {"SELECT \"read_csv\" FROM t", 0},      /* a column, not a call */
        {"SELECT s.read_csv('x') FROM t s", 0}, /* qualified: not the reader */
        {"SELECT 1; SELECT * FROM read_csv('a.csv'); SELECT 2", 1},
        {"SELECT 1 AS copy", 0}, /* COPY only starts a statement */
        {"DETACH x", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = 99;
        dg_error_t err;
        dg_rc_t rc = scan(cases[i].sql, &n, &err);
        if (rc != DG_OK || n != cases[i].n) {
            fail_msg("%s: rc=%d n=%zu (%s)", cases[i].sql, rc, n, err.msg);
        }
    }
}

static void test_refuses_other_ways_to_files(void **state)
{
    (void)state;
    static const char *const cases[] = {
        "SELECT * FROM read_csv('a' || '.csv')",
        "SELECT * FROM read_csv(['a.csv', 'b.csv'])",
        "SELECT * FROM read_csv($1)",
        "SELECT * FROM read_csv(E'a.csv')",
        "SELECT * FROM read_csv('a.csv', names=(SELECT ['a']))",
        "SELECT * FROM read_csv('a.csv', x=read_text('b'))",
        "SELECT * FROM read_csv()",
        "SELECT * FROM read_csv(path := 'a.csv')",
        "SELECT * FROM read_text('a.txt')",
        "SELECT * FROM READ_BLOB('a')",
        "SELECT * FROM glob('*')",
        "SELECT * FROM sniff_csv('a.csv')",
        "SELECT * FROM parquet_metadata('a.parquet')",
        "COPY t FROM 'a.csv'",
        "copy t TO 'a.csv'",
        "ATTACH 'x.duckdb'",
        "SELECT 1; attach ':memory:' AS m",
        "EXPORT DATABASE 'x'",
        "IMPORT DATABASE 'x'",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = 0;
        dg_error_t err;
        dg_rc_t rc = scan(cases[i], &n, &err);
        if (rc != DG_FORBIDDEN || !strstr(err.msg, "import")) {
            fail_msg("%s: rc=%d (%s)", cases[i], rc, err.msg);
        }
    }
}

static void test_unterminated_input(void **state)
{
    (void)state;
    /* Unterminated strings, names and comments end at the end of the text, never past it. */
    static const char *const cases[] = {"SELECT 'abc",    "SELECT \"abc", "SELECT /* abc",
                                        "SELECT $a$ abc", "read_csv(",    "read_csv('a.csv'"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = 0;
        dg_error_t err;
        dg_rc_t rc = scan(cases[i], &n, &err);
        assert_true(rc == DG_OK || rc == DG_FORBIDDEN);
        assert_int_equal(n, 0);
    }
}

static void test_at_most_16_reads(void **state)
{
    (void)state;
    char sql[2048] = "SELECT 1";
    size_t len = strlen(sql);
    for (int i = 0; i < 17; i++) {
        int n = snprintf(sql + len, sizeof sql - len, "%s",
                         " UNION ALL SELECT count(*) FROM read_csv('a.csv')");
        assert_true(n > 0 && (size_t)n < sizeof sql - len);
        len += (size_t)n;
    }
    size_t n = 0;
    dg_error_t err;
    assert_int_equal(scan(sql, &n, &err), DG_FORBIDDEN);
    assert_non_null(strstr(err.msg, "16"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_finds_reader_calls),
        cmocka_unit_test(test_refuses_other_ways_to_files),
        cmocka_unit_test(test_unterminated_input),
        cmocka_unit_test(test_at_most_16_reads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
