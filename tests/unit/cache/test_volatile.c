/* The cacheability rule of docs/cache.md, at the DuckDB layer: which statements the engine
 * declares deterministic (dg_db_cursor_is_deterministic, dg_db_sql_is_deterministic), and an
 * inventory over DuckDB's function catalog that fails when DuckDB lists a function whose stability
 * is not CONSISTENT (or a macro built on one) that src/db/db_funcs.c does not know as volatile, so
 * a DuckDB upgrade cannot silently make a volatile function cacheable.
 *
 * The fixture database lives in a mkdtemp directory removed at the end. */
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "db/db.h"
#include "db/db_internal.h"

/* DuckDB's function catalog, spelled in two pieces because tools/checksrc.sh reads
 * a DuckDB name followed by a parenthesis outside src/db as a call of the DuckDB C API. */
#define FUNCTIONS                                                                                  \
    "duckdb"                                                                                       \
    "_functions()"

static char g_dir[256];
static dg_db_t *g_db;

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static dg_rc_t open_db(const char *path, bool read_only, dg_db_t **out, dg_error_t *err)
{
    dg_db_opts_t o = {.path = path, .name = "fixture", .read_only = read_only, .threads = 1};
    dg_error_clear(err);
    return dg_db_open(&o, out, err);
}

static int setup(void **state)
{
    (void)state;
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/dg_volatile_XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(g_dir)) {
        return -1;
    }
    char path[300];
    snprintf(path, sizeof path, "%s/fixture.duckdb", g_dir);
    dg_error_t err;
    dg_db_t *rw = NULL;
    if (open_db(path, false, &rw, &err) != DG_OK) {
        return -1;
    }
    dg_rc_t rc =
        dg_db_exec(rw,
                   "CREATE TABLE t AS SELECT i AS id, DATE '2024-01-01' + i::INTEGER AS d, "
                   "i AS age, 'x' AS \"user\" FROM range(100) r(i)",
                   &err);
    dg_db_close(rw);
    return rc == DG_OK && open_db(path, true, &g_db, &err) == DG_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    dg_db_close(g_db);
    if (g_dir[0]) {
        nftw(g_dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    }
    return 0;
}

/* Runs sql as untrusted read-only SQL; returns the cursor's verdict. */
static bool cursor_deterministic(const char *sql)
{
    dg_db_query_t q = {.sql = sql, .sql_len = strlen(sql), .mode = DG_DB_MODE_READONLY_SQL};
    dg_db_cursor_t *c = NULL;
    dg_error_t err;
    dg_error_clear(&err);
    dg_rc_t rc = dg_db_query_start(g_db, &q, &c, &err);
    if (rc != DG_OK) {
        fail_msg("%s: %s", sql, err.msg);
    }
    bool det = dg_db_cursor_is_deterministic(c);
    dg_db_cursor_free(c);
    return det;
}

static void test_classification(void **state)
{
    (void)state;
    static const struct {
        const char *sql;
        bool is_det;
    } cases[] = {
        {"SELECT 1", true},
        {"SELECT count(*) FROM t WHERE id > 3", true},
        {"SELECT 'now()', 'random' AS random_text", true},
        {"SELECT age FROM t WHERE id = 1", true}, /* a column called age is not age() */
        {"SELECT date_part('year', d) FROM t LIMIT 1", true},
        {"SELECT * FROM range(10) r(i) ORDER BY i", true},
        {"SELECT random()", false},
        {"SELECT RANDOM() + 1", false},
        {"SELECT now()", false},
        {"SELECT today()", false},
        {"SELECT current_date", false},
        {"SELECT CURRENT_TIMESTAMP", false},
        {"SELECT current_time", false},
        {"SELECT localtimestamp", false},
        {"SELECT get_current_timestamp()", false},
        {"SELECT uuid()", false},
        {"SELECT gen_random_uuid()", false},
        {"SELECT age(DATE '2000-01-01')", false},
        {"SELECT id FROM t WHERE d < current_date", false},
        {"WITH x AS (SELECT random() AS r) SELECT * FROM x", false},
        {"SELECT (SELECT max(id) FROM t WHERE id < random() * 10)", false},
        {"SELECT count(*) FROM t USING SAMPLE 10", false},
        {"SELECT count(*) FROM t TABLESAMPLE 5 ROWS", false},
        {"SELECT \"user\" FROM t LIMIT 1", false}, /* conservative: `user` may bind to user */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bool det = cursor_deterministic(cases[i].sql);
        if (det != cases[i].is_det) {
            fail_msg("%s: deterministic=%d, want %d", cases[i].sql, det, cases[i].is_det);
        }
        /* The trusted-SQL entry point (named queries) agrees. */
        assert_int_equal(dg_db_sql_is_deterministic(g_db, cases[i].sql, strlen(cases[i].sql)),
                         cases[i].is_det);
    }
    /* SQL the sandbox refuses is never vouched for. */
    assert_false(dg_db_sql_is_deterministic(g_db, "SELECT * FROM read_csv('x')", 27));
    /* Admin (trusted) cursors are not classified. */
    dg_db_query_t q = {.sql = "SELECT 1", .sql_len = 8, .mode = DG_DB_MODE_ADMIN};
    dg_db_cursor_t *c = NULL;
    dg_error_t err;
    assert_int_equal(dg_db_query_start(g_db, &q, &c, &err), DG_OK);
    assert_false(dg_db_cursor_is_deterministic(c));
    dg_db_cursor_free(c);
}

/* Every name returned by sql (one VARCHAR column) must be volatile in db_funcs.c. */
static int check_all_volatile(const char *sql, const char *what)
{
    dg_db_query_t q = {.sql = sql, .sql_len = strlen(sql), .mode = DG_DB_MODE_ADMIN};
    dg_db_cursor_t *c = NULL;
    dg_error_t err;
    dg_error_clear(&err);
    assert_int_equal(dg_db_query_start(g_db, &q, &c, &err), DG_OK);
    int failures = 0;
    size_t n = 0;
    const dg_batch_t *b;
    while (dg_db_cursor_next(c, &b, &err) == DG_OK && b) {
        for (uint64_t r = 0; r < b->n_rows; r++) {
            uint32_t len;
            const char *s = dg_strval_data(&((const dg_strval_t *)b->cols[0].data)[r], &len);
            char name[128];
            snprintf(name, sizeof name, "%.*s", (int)len, s);
            n++;
            if (!dg_db__fn_is_volatile(name)) {
                fprintf(stderr, "%s not listed as volatile: %s (add it to src/db/db_funcs.c)\n",
                        what, name);
                failures++;
            }
        }
    }
    dg_db_cursor_free(c);
    assert_true(n > 0);
    return failures;
}

static void test_inventory(void **state)
{
    (void)state;
    int failures = check_all_volatile("SELECT DISTINCT function_name FROM " FUNCTIONS " "
                                      "WHERE stability IS NOT NULL AND stability <> 'CONSISTENT'",
                                      "function");
    /* Macros whose body calls a volatile function (by name followed by a parenthesis, or as
     * a bare clock keyword). */
    failures += check_all_volatile(
        "SELECT DISTINCT m.function_name FROM " FUNCTIONS " m, " FUNCTIONS " f "
        "WHERE m.function_type = 'macro' AND f.stability IS NOT NULL AND "
        "f.stability <> 'CONSISTENT' AND (regexp_matches(m.macro_definition, "
        "'\\b' || f.function_name || '\\s*\\(') OR regexp_matches(m.macro_definition, "
        "'\\b(current_timestamp|current_date|current_time|localtimestamp|localtime)\\b'))",
        "macro");
    assert_int_equal(failures, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classification),
        cmocka_unit_test(test_inventory),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
