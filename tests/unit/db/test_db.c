/* Unit tests for src/db: instance settings and their lock, the sandbox allow/deny table, the
 * function inventory against duckdb_functions(), type mapping, parameters, interrupts, the
 * catalog listing, error mapping and path scrubbing.
 *
 * The fixture database is built in a mkdtemp directory (removed at the end) and served
 * read-only, as in production. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "core/buf.h"
#include "db/db.h"
#include "db/db_internal.h"

static char g_dir[256];
static char g_path[320];
static char g_spill[320];
static dg_db_t *g_db;

static const char fixture_sql[] =
    "CREATE TABLE people(id INTEGER PRIMARY KEY, name VARCHAR NOT NULL, born DATE,"
    "  score DECIMAL(18,3), tags VARCHAR[], info STRUCT(city VARCHAR, zip INTEGER), j JSON);"
    "INSERT INTO people VALUES"
    "  (1, 'Ann', DATE '1990-01-02', 12.5, ['a', 'b'], {'city': 'Oslo', 'zip': 150},"
    "   '{\"a\":{\"b\":1}}'),"
    "  (2, 'Bob', NULL, NULL, NULL, NULL, NULL),"
    "  (3, 'Cy', DATE '2001-05-06', 3.25, [], {'city': 'Rome', 'zip': 100}, '[1,2]');"
    "CREATE TABLE sales(day DATE, region VARCHAR, amount DOUBLE);"
    "INSERT INTO sales SELECT DATE '2024-01-01' + (i % 30)::INTEGER,"
    "  ['north', 'south', 'east'][1 + (i % 3)::INTEGER], i * 1.5 FROM range(300) t(i);"
    "CREATE VIEW big_sales AS SELECT * FROM sales WHERE amount > 100;"
    "CREATE SEQUENCE seq;"
    "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');"
    "CREATE TABLE moods(m mood);"
    "INSERT INTO moods VALUES ('ok'), ('happy');";

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static dg_rc_t open_db(const char *path, bool read_only, uint64_t mem, const char *spill,
                       dg_db_t **out, dg_error_t *err)
{
    dg_db_opts_t o = {.path = path,
                      .name = "fixture",
                      .read_only = read_only,
                      .memory_limit = mem,
                      .max_temp_bytes = 512u << 20,
                      .threads = 1,
                      .temp_dir = spill};
    dg_error_clear(err);
    return dg_db_open(&o, out, err);
}

static int setup(void **state)
{
    (void)state;
    dg_error_t err;
    dg_db_t *rw = NULL;
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/dg_db_test_XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(g_dir)) {
        return -1;
    }
    snprintf(g_path, sizeof g_path, "%s/fixture.duckdb", g_dir);
    snprintf(g_spill, sizeof g_spill, "%s/spill", g_dir);
    if (open_db(g_path, false, 0, NULL, &rw, &err) != DG_OK) {
        fprintf(stderr, "open rw: %s\n", err.msg);
        return -1;
    }
    dg_rc_t rc = dg_db_exec(rw, fixture_sql, &err);
    dg_db_close(rw);
    if (rc != DG_OK) {
        fprintf(stderr, "fixture: %s\n", err.msg);
        return -1;
    }
    if (open_db(g_path, true, 256u << 20, g_spill, &g_db, &err) != DG_OK) {
        fprintf(stderr, "open ro: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    dg_db_close(g_db);
    g_db = NULL;
    if (g_dir[0]) {
        nftw(g_dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    }
    return 0;
}

/* ---- helpers ---- */

typedef struct rows {
    size_t n_rows;
    char cell[8][128]; /* first row, first 8 columns, rendered for simple checks */
} rows_t;

static void render(const dg_vec_t *v, uint64_t r, char *out, size_t cap)
{
    if (!dg_vec_is_valid(v, r)) {
        snprintf(out, cap, "NULL");
        return;
    }
    switch (v->type->id) {
    case DG_TYPE_BOOLEAN:
        snprintf(out, cap, "%s", ((const bool *)v->data)[r] ? "true" : "false");
        break;
    case DG_TYPE_INTEGER:
        snprintf(out, cap, "%" PRId32, ((const int32_t *)v->data)[r]);
        break;
    case DG_TYPE_BIGINT:
        snprintf(out, cap, "%" PRId64, ((const int64_t *)v->data)[r]);
        break;
    case DG_TYPE_UBIGINT:
        snprintf(out, cap, "%" PRIu64, ((const uint64_t *)v->data)[r]);
        break;
    case DG_TYPE_DOUBLE:
        snprintf(out, cap, "%g", ((const double *)v->data)[r]);
        break;
    case DG_TYPE_VARCHAR: {
        uint32_t len;
        const char *s = dg_strval_data(&((const dg_strval_t *)v->data)[r], &len);
        snprintf(out, cap, "%.*s", (int)len, s);
        break;
    }
    default:
        snprintf(out, cap, "<%s>", v->type->name);
        break;
    }
}

static dg_rc_t run(const char *sql, dg_db_mode_t mode, const char *params, rows_t *rows,
                   dg_error_t *err)
{
    dg_db_cursor_t *c = NULL;
    dg_db_query_t q = {.sql = sql,
                       .sql_len = strlen(sql),
                       .params_json = params,
                       .params_len = params ? strlen(params) : 0,
                       .mode = mode};
    dg_error_clear(err);
    if (rows) {
        memset(rows, 0, sizeof *rows);
    }
    dg_rc_t rc = dg_db_query_start(g_db, &q, &c, err);
    if (rc != DG_OK) {
        assert_null(c);
        return rc;
    }
    const dg_batch_t *b;
    while ((rc = dg_db_cursor_next(c, &b, err)) == DG_OK && b) {
        if (rows && rows->n_rows == 0) {
            for (size_t i = 0; i < b->n_cols && i < 8; i++) {
                render(&b->cols[i], 0, rows->cell[i], sizeof rows->cell[i]);
            }
        }
        if (rows) {
            rows->n_rows += b->n_rows;
        }
    }
    dg_db_cursor_free(c);
    return rc;
}

/* ---- settings ---- */

static void test_settings(void **state)
{
    (void)state;
    static const struct {
        const char *name, *value;
    } want[] = {
        {"access_mode", "read_only"},
        {"autoinstall_known_extensions", "false"},
        {"autoload_known_extensions", "false"},
        {"allow_community_extensions", "false"},
        {"allow_unsigned_extensions", "false"},
        {"allow_persistent_secrets", "false"},
        {"enable_external_access", "false"},
        {"lock_configuration", "true"},
        {"threads", "1"},
        {"memory_limit", "256.0 MiB"},
        {"max_temp_directory_size", "512.0 MiB"},
        {"temp_directory", g_spill},
    };
    char sql[256];
    rows_t rows;
    dg_error_t err;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        /* Admin mode = a trusted internal connection (duckdb_settings is denied to callers). */
        snprintf(sql, sizeof sql, "SELECT value FROM duckdb_settings() WHERE name = '%s'",
                 want[i].name);
        assert_int_equal(run(sql, DG_DB_MODE_ADMIN, NULL, &rows, &err), DG_OK);
        assert_int_equal(rows.n_rows, 1);
        if (strcasecmp(rows.cell[0], want[i].value) != 0) {
            fail_msg("setting %s = %s, want %s", want[i].name, rows.cell[0], want[i].value);
        }
    }
    /* Locked: even trusted SQL cannot change them afterwards. */
    static const char *const sets[] = {
        "SET memory_limit = '1GB'",
        "SET enable_external_access = true",
        "SET autoload_known_extensions = true",
        "SET threads = 4",
        "RESET lock_configuration",
    };
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++) {
        dg_rc_t rc = run(sets[i], DG_DB_MODE_ADMIN, NULL, NULL, &err);
        if (rc == DG_OK) {
            fail_msg("locked setting changed by: %s", sets[i]);
        }
    }
    assert_int_equal(run("SELECT value FROM duckdb_settings() WHERE name = 'memory_limit'",
                         DG_DB_MODE_ADMIN, NULL, &rows, &err),
                     DG_OK);
    assert_string_equal(rows.cell[0], "256.0 MiB");
}

/* ---- sandbox ---- */

typedef struct sb_case {
    const char *sql;
    dg_rc_t want;
} sb_case_t;

static const sb_case_t sb_cases[] = {
    /* legit analytical SQL */
    {"SELECT 1", DG_OK},
    {"SELECT * FROM people", DG_OK},
    {"FROM people SELECT name WHERE id = 1", DG_OK},
    {"SELECT * FROM fixture.main.people", DG_OK},
    {"SELECT * FROM main.people", DG_OK},
    {"SELECT * FROM big_sales", DG_OK},
    {"SELECT m FROM moods", DG_OK},
    {"WITH s AS (SELECT region, sum(amount) AS total FROM sales GROUP BY region) "
     "SELECT * FROM s ORDER BY total DESC",
     DG_OK},
    {"WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 10) "
     "SELECT sum(n) FROM r",
     DG_OK},
    {"SELECT day, sum(amount) OVER (PARTITION BY region ORDER BY day "
     "ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) FROM sales",
     DG_OK},
    {"SELECT region, day, amount FROM sales "
     "QUALIFY row_number() OVER (PARTITION BY region ORDER BY amount DESC) = 1",
     DG_OK},
    {"PIVOT sales ON region IN ('north', 'south') USING sum(amount) GROUP BY day", DG_OK},
    {"UNPIVOT (SELECT 1 AS a, 2 AS b) ON a, b INTO NAME k VALUE v", DG_OK},
    {"SELECT j->>'$.a.b', json_extract(j, '$.a'), json_extract_string(j, ['$.a', '$.x']), "
     "j->'$.a', json_keys(j), json_array_length(j) FROM people",
     DG_OK},
    {"SELECT list_transform(tags, x -> upper(x)), info.city, struct_pack(a := 1), "
     "[1, 2, 3][2], len(tags), list_filter(tags, x -> x <> 'a') FROM people",
     DG_OK},
    {"SELECT regexp_extract(name, '^(.)', 1), regexp_matches(name, 'n+'), "
     "regexp_replace(name, 'n', 'N') FROM people",
     DG_OK},
    {"SELECT date_trunc('month', day), strftime(day, '%Y'), day + INTERVAL 1 DAY, "
     "extract(dow FROM day), age(TIMESTAMP '2024-01-01', TIMESTAMP '2000-01-01') FROM sales",
     DG_OK},
    {"DESCRIBE people", DG_OK},
    {"DESCRIBE SELECT * FROM sales", DG_OK},
    {"SHOW people", DG_OK},
    {"SHOW TABLES", DG_OK},
    {"SHOW ALL TABLES", DG_OK},
    {"SUMMARIZE sales", DG_OK},
    {"SUMMARIZE SELECT region, amount FROM sales", DG_OK},
    {"FROM sales PIVOT (sum(amount) FOR region IN ('north', 'south'))", DG_OK},
    {"DESCRIBE 'x.csv'", DG_NOT_READ_ONLY},
    {"SUMMARIZE SELECT * FROM read_csv('x.csv')", DG_NOT_READ_ONLY},
    {"DESCRIBE SELECT * FROM read_text('/etc/passwd')", DG_NOT_READ_ONLY},
    {"SELECT * FROM range(10)", DG_OK},
    {"SELECT * FROM generate_series(1, 5)", DG_OK},
    {"SELECT unnest([1, 2, 3])", DG_OK},
    {"SELECT * FROM unnest([1, 2])", DG_OK},
    {"SELECT * FROM duckdb_tables()", DG_OK},
    {"SELECT table_name FROM information_schema.tables", DG_OK},
    {"SELECT count(*) FROM sales WHERE region IN ('north', 'east')", DG_OK},
    {"SELECT * FROM (VALUES (1, 'a'), (2, 'b')) t(x, y)", DG_OK},
    {"SELECT region, count(*) FROM sales GROUP BY ALL ORDER BY ALL", DG_OK},
    {"SELECT * FROM sales s JOIN people p ON p.id = (s.amount::INTEGER % 3) + 1 LIMIT 5", DG_OK},
    {"SELECT approx_count_distinct(region), quantile_cont(amount, 0.5), "
     "arg_max(region, amount), list(DISTINCT region ORDER BY region) FROM sales",
     DG_OK},
    /* file access, replacement scans */
    {"SELECT * FROM read_csv('/etc/passwd')", DG_NOT_READ_ONLY},
    {"SELECT * FROM read_text('/etc/passwd')", DG_NOT_READ_ONLY},
    {"SELECT * FROM read_blob('/etc/passwd')", DG_NOT_READ_ONLY},
    {"SELECT * FROM read_parquet('s3://bucket/x.parquet')", DG_NOT_READ_ONLY},
    {"SELECT * FROM read_json_auto('x.json')", DG_NOT_READ_ONLY},
    {"SELECT * FROM sniff_csv('x.csv')", DG_NOT_READ_ONLY},
    {"SELECT * FROM glob('/*')", DG_NOT_READ_ONLY},
    {"SELECT * FROM 'x.csv'", DG_NOT_READ_ONLY},
    {"FROM '/etc/passwd'", DG_NOT_READ_ONLY},
    {"SELECT * FROM \"https://example.com/x.parquet\"", DG_NOT_READ_ONLY},
    {"SELECT * FROM \"~/data\"", DG_NOT_READ_ONLY},
    {"SELECT * FROM people, read_csv_auto('a.csv')", DG_NOT_READ_ONLY},
    {"SELECT (SELECT count(*) FROM read_text('/etc/hostname'))", DG_NOT_READ_ONLY},
    /* statements that are not SELECT */
    {"ATTACH '/tmp/x.duckdb' AS x", DG_NOT_READ_ONLY},
    {"DETACH fixture", DG_NOT_READ_ONLY},
    {"COPY people TO '/tmp/x.csv'", DG_NOT_READ_ONLY},
    {"COPY (SELECT 1) TO '/tmp/x.csv'", DG_NOT_READ_ONLY},
    {"EXPORT DATABASE '/tmp/x'", DG_NOT_READ_ONLY},
    {"INSTALL httpfs", DG_NOT_READ_ONLY},
    {"LOAD httpfs", DG_NOT_READ_ONLY},
    {"SET memory_limit = '1GB'", DG_NOT_READ_ONLY},
    {"SET VARIABLE x = 1", DG_NOT_READ_ONLY},
    {"RESET threads", DG_NOT_READ_ONLY},
    {"PRAGMA version", DG_NOT_READ_ONLY},
    {"PRAGMA database_list", DG_NOT_READ_ONLY},
    {"CALL pragma_version()", DG_NOT_READ_ONLY},
    {"EXPLAIN SELECT 1", DG_NOT_READ_ONLY},
    {"EXPLAIN ANALYZE SELECT 1", DG_NOT_READ_ONLY},
    {"INSERT INTO people VALUES (9, 'x', NULL, NULL, NULL, NULL, NULL)", DG_NOT_READ_ONLY},
    {"UPDATE people SET name = 'x'", DG_NOT_READ_ONLY},
    {"DELETE FROM people", DG_NOT_READ_ONLY},
    {"CREATE TABLE x(a INTEGER)", DG_NOT_READ_ONLY},
    {"CREATE TEMP TABLE x AS SELECT 1", DG_NOT_READ_ONLY},
    {"CREATE MACRO m(a) AS a", DG_NOT_READ_ONLY},
    {"DROP TABLE people", DG_NOT_READ_ONLY},
    {"BEGIN TRANSACTION", DG_NOT_READ_ONLY},
    {"CHECKPOINT", DG_NOT_READ_ONLY},
    {"VACUUM", DG_NOT_READ_ONLY},
    {"PREPARE p AS SELECT 1", DG_NOT_READ_ONLY},
    {"PIVOT sales ON region USING sum(amount)", DG_MULTIPLE_STATEMENTS},
    {"SELECT 1; DROP TABLE people", DG_MULTIPLE_STATEMENTS},
    /* SELECT-typed side effects, nested SQL, introspection */
    {"SELECT nextval('seq')", DG_NOT_READ_ONLY},
    {"SELECT currval('seq')", DG_NOT_READ_ONLY},
    {"SELECT setseed(0.5)", DG_NOT_READ_ONLY},
    {"SELECT write_log('x')", DG_NOT_READ_ONLY},
    {"SELECT * FROM checkpoint()", DG_NOT_READ_ONLY},
    {"SELECT * FROM enable_logging()", DG_NOT_READ_ONLY},
    {"SELECT getenv('HOME')", DG_NOT_READ_ONLY},
    {"SELECT current_setting('temp_directory')", DG_NOT_READ_ONLY},
    {"SELECT getvariable('x')", DG_NOT_READ_ONLY},
    {"SELECT * FROM query('SELECT 1')", DG_NOT_READ_ONLY},
    {"SELECT * FROM query_table('people')", DG_NOT_READ_ONLY},
    {"SELECT json_serialize_sql('SELECT 1')", DG_NOT_READ_ONLY},
    {"SELECT json_deserialize_sql('{}')", DG_NOT_READ_ONLY},
    {"SELECT * FROM json_execute_serialized_sql('{}')", DG_NOT_READ_ONLY},
    {"SELECT * FROM sql_auto_complete('SEL')", DG_NOT_READ_ONLY},
    {"SELECT * FROM duckdb_settings()", DG_NOT_READ_ONLY},
    {"SELECT * FROM system.main.duckdb_settings()", DG_NOT_READ_ONLY},
    {"SELECT * FROM duckdb_databases()", DG_NOT_READ_ONLY},
    {"SELECT * FROM duckdb_databases", DG_NOT_READ_ONLY},
    {"SELECT * FROM pragma_database_list", DG_NOT_READ_ONLY},
    {"SELECT * FROM pg_catalog.pg_settings", DG_NOT_READ_ONLY},
    {"SELECT * FROM duckdb_secrets()", DG_NOT_READ_ONLY},
    {"SELECT * FROM which_secret('s3://x', 's3')", DG_NOT_READ_ONLY},
    {"SELECT * FROM duckdb_temporary_files()", DG_NOT_READ_ONLY},
    {"SELECT * FROM duckdb_extensions()", DG_NOT_READ_ONLY},
    {"SELECT * FROM duckdb_memory()", DG_NOT_READ_ONLY},
    {"SELECT * FROM duckdb_logs", DG_NOT_READ_ONLY},
    {"SELECT * FROM pragma_database_size()", DG_NOT_READ_ONLY},
    {"SELECT * FROM histogram(people, id)", DG_NOT_READ_ONLY},
    {"SELECT * FROM some_unknown_table_function()", DG_NOT_READ_ONLY},
    {"SHOW DATABASES", DG_NOT_READ_ONLY},
    {"SELECT * FROM other.main.t", DG_NOT_READ_ONLY},
    {"SELECT * FROM \"memory\".main.t", DG_NOT_READ_ONLY},
    /* known crashers */
    {"SELECT json_structure(j) FROM people", DG_NOT_READ_ONLY},
    {"SELECT json_contains(j, '1') FROM people", DG_NOT_READ_ONLY},
    {"SELECT json_pretty(j) FROM people", DG_NOT_READ_ONLY},
    {"SELECT json_merge_patch(j, j) FROM people", DG_NOT_READ_ONLY},
    {"SELECT * FROM json_tree('[1]')", DG_NOT_READ_ONLY},
    {"SELECT json_group_structure(j) FROM people", DG_NOT_READ_ONLY},
    {"SELECT json_extract(j, '$..a') FROM people", DG_NOT_READ_ONLY},
    {"SELECT j->'$..a' FROM people", DG_NOT_READ_ONLY},
    {"SELECT j->>'$..a' FROM people", DG_NOT_READ_ONLY},
    {"SELECT json_extract(j, name) FROM people", DG_NOT_READ_ONLY},
    {"SELECT json_extract(j, '$.' || '.a') FROM people", DG_NOT_READ_ONLY},
    {"SELECT j -> ['$..a'] FROM people", DG_NOT_READ_ONLY},
    {"SELECT j -> $1 FROM people", DG_NOT_READ_ONLY},
    {"SELECT * FROM json_each('{\"a\": 1}', '$..a')", DG_NOT_READ_ONLY},
    {"SELECT * FROM json_each('{\"a\": {\"b\": 1}}', '$.a')", DG_OK},
    {"SELECT \"READ_CSV\"('x.csv')", DG_NOT_READ_ONLY},
    {"SELECT * FROM READ_CSV('x.csv')", DG_NOT_READ_ONLY},
    {"SELECT * FROM main.read_csv('x.csv')", DG_NOT_READ_ONLY},
    {"SELECT * FROM read_csv", DG_NOT_READ_ONLY},
    {"SELECT * FROM people, LATERAL (SELECT * FROM read_text('/etc/passwd'))", DG_NOT_READ_ONLY},
    {"SELECT list_transform([1], x -> (SELECT count(*) FROM glob('/*')))", DG_NOT_READ_ONLY},
    {"SELECT 1 WHERE EXISTS (SELECT * FROM duckdb_settings())", DG_NOT_READ_ONLY},
    {"SELECT 1::VARIANT", DG_NOT_READ_ONLY},
    /* statement count and plain SQL errors */
    {"SELECT 1; SELECT 2", DG_MULTIPLE_STATEMENTS},
    {"SELEC 1", DG_SQL_ERROR},
    {"SELECT * FROM nosuchtable", DG_SQL_ERROR},
    {"SELECT nosuchcol FROM people", DG_SQL_ERROR},
    {"SELECT * FROM other.t", DG_NOT_READ_ONLY},
    {"SELECT * FROM secret.csv", DG_NOT_READ_ONLY},
    {"SELECT * FROM \"secret\".\"parquet\"", DG_NOT_READ_ONLY},
    {"SELECT * FROM people, data.json", DG_NOT_READ_ONLY},
    {"", DG_SQL_ERROR},
    {"-- only a comment", DG_SQL_ERROR},
};

static void test_sandbox_table(void **state)
{
    (void)state;
    dg_error_t err;
    rows_t rows;
    int failures = 0;
    for (size_t i = 0; i < sizeof sb_cases / sizeof sb_cases[0]; i++) {
        dg_rc_t rc = run(sb_cases[i].sql, DG_DB_MODE_READONLY_SQL, NULL, &rows, &err);
        if (rc != sb_cases[i].want) {
            fprintf(stderr, "sandbox case %zu: %s\n  got %s (%s), want %s\n", i, sb_cases[i].sql,
                    dg_rc_name(rc), err.msg, dg_rc_name(sb_cases[i].want));
            failures++;
        } else if (rc == DG_NOT_READ_ONLY && strstr(err.msg, "rule") == NULL) {
            fprintf(stderr, "sandbox case %zu: refusal names no rule: %s\n", i, err.msg);
            failures++;
        }
    }
    assert_int_equal(failures, 0);
    assert_true(sizeof sb_cases / sizeof sb_cases[0] >= 40);
}

static void test_sandbox_messages(void **state)
{
    (void)state;
    dg_error_t err;
    assert_int_equal(
        run("SELECT * FROM read_text('/etc/passwd')", DG_DB_MODE_READONLY_SQL, NULL, NULL, &err),
        DG_NOT_READ_ONLY);
    assert_non_null(strstr(err.msg, "read_text"));
    assert_int_equal(run("SELECT nextval('seq')", DG_DB_MODE_READONLY_SQL, NULL, NULL, &err),
                     DG_NOT_READ_ONLY);
    assert_non_null(strstr(err.msg, "nextval"));
    assert_int_equal(run("FROM 'x.csv'", DG_DB_MODE_READONLY_SQL, NULL, NULL, &err),
                     DG_NOT_READ_ONLY);
    assert_non_null(strstr(err.msg, "x.csv"));
    assert_int_equal(run("SELEC 1", DG_DB_MODE_READONLY_SQL, NULL, NULL, &err), DG_SQL_ERROR);
    assert_non_null(strstr(err.msg, "syntax error"));
}

/* "head" + n comma-separated items + "tail"; item i is "<prefix><i><suffix>". */
static char *repeat_join(const char *head, const char *prefix, const char *suffix, size_t n,
                         const char *sep, const char *tail)
{
    dg_buf_t b;
    dg_buf_init(&b, 0);
    dg_buf_puts(&b, head);
    for (size_t i = 0; i < n; i++) {
        if (i && sep) {
            dg_buf_puts(&b, sep);
        }
        dg_buf_printf(&b, "%s%zu%s", prefix, i + 1, suffix);
    }
    dg_buf_puts(&b, tail);
    return dg_buf_take(&b, NULL);
}

static void test_sandbox_limits(void **state)
{
    (void)state;
    dg_error_t err;
    /* A huge constant IN list. */
    char *sql = repeat_join("SELECT 1 WHERE 1 IN (", "", "", 10050, ",", ")");
    assert_int_equal(run(sql, DG_DB_MODE_READONLY_SQL, NULL, NULL, &err), DG_NOT_READ_ONLY);
    assert_non_null(strstr(err.msg, "IN list"));
    free(sql);
    /* A long CTE chain. */
    sql = repeat_join("WITH c0 AS (SELECT 1 AS x), ", "c", " AS (SELECT x FROM c0)", 150, ", ",
                      " SELECT 1");
    assert_int_equal(run(sql, DG_DB_MODE_READONLY_SQL, NULL, NULL, &err), DG_NOT_READ_ONLY);
    assert_non_null(strstr(err.msg, "CTE"));
    free(sql);
    /* Deep expression nesting. */
    dg_buf_t b;
    dg_buf_init(&b, 0);
    dg_buf_puts(&b, "SELECT ");
    for (int i = 0; i < 300; i++) {
        dg_buf_puts(&b, "abs(");
    }
    dg_buf_puts(&b, "1");
    for (int i = 0; i < 300; i++) {
        dg_buf_puts(&b, ")");
    }
    dg_rc_t rc = run(b.p, DG_DB_MODE_READONLY_SQL, NULL, NULL, &err);
    assert_true(rc == DG_NOT_READ_ONLY || rc == DG_SQL_ERROR);
    dg_buf_free(&b);
    /* A moderately nested but legit query passes. */
    dg_buf_init(&b, 0);
    dg_buf_puts(&b, "SELECT ");
    for (int i = 0; i < 20; i++) {
        dg_buf_puts(&b, "abs(");
    }
    dg_buf_puts(&b, "1");
    for (int i = 0; i < 20; i++) {
        dg_buf_puts(&b, ")");
    }
    assert_int_equal(run(b.p, DG_DB_MODE_READONLY_SQL, NULL, NULL, &err), DG_OK);
    dg_buf_free(&b);
    /* The walk refuses malformed or unexpected serializations (fail closed). */
    dg_error_clear(&err);
    assert_int_equal(dg_db__sandbox_walk("fixture", NULL, 0, "{", 1, &err), DG_NOT_READ_ONLY);
    dg_error_clear(&err);
    assert_int_equal(dg_db__sandbox_walk("fixture", NULL, 0, "{}", 2, &err), DG_NOT_READ_ONLY);
}

/* Admin mode skips the parse check and statement-type rule; a script of several statements
 * runs them in order and streams the last one (without parameters). */
static void test_admin_mode(void **state)
{
    (void)state;
    dg_error_t err;
    rows_t rows;
    assert_int_equal(run("SELECT current_setting('threads')", DG_DB_MODE_ADMIN, NULL, &rows, &err),
                     DG_OK);
    assert_string_equal(rows.cell[0], "1");
    assert_int_equal(run("EXPLAIN SELECT 1", DG_DB_MODE_ADMIN, NULL, &rows, &err), DG_OK);
    assert_int_equal(run("SELECT 1; SELECT 2", DG_DB_MODE_READONLY_SQL, NULL, &rows, &err),
                     DG_MULTIPLE_STATEMENTS);
    assert_int_equal(run("SELECT 1; SELECT 2 AS b", DG_DB_MODE_ADMIN, NULL, &rows, &err), DG_OK);
    assert_int_equal(rows.n_rows, 1);
    assert_string_equal(rows.cell[0], "2");
    assert_int_equal(run("SELECT 1; SELECT $1", DG_DB_MODE_ADMIN, "[1]", &rows, &err),
                     DG_BAD_PARAMS);
    /* A failing statement stops the script with its error. */
    assert_int_equal(run("SELECT 1; SELECT * FROM nope; SELECT 3", DG_DB_MODE_ADMIN, NULL, &rows,
                         &err),
                     DG_SQL_ERROR);
    /* A read-only instance refuses writes even to trusted SQL. */
    assert_int_equal(run("CREATE TABLE x(a INTEGER)", DG_DB_MODE_ADMIN, NULL, &rows, &err),
                     DG_NOT_READ_ONLY);
    /* Still inside the locked, external-access-free instance. */
    dg_rc_t rc = run("SELECT * FROM read_text('/etc/passwd')", DG_DB_MODE_ADMIN, NULL, &rows, &err);
    assert_int_not_equal(rc, DG_OK);
}

static void count_progress(void *ctx, double pct)
{
    int *n = ctx;
    assert_true(pct == -1 || (pct >= 0 && pct <= 100));
    (*n)++;
}

/* Admin mode reports statements that may change data (even when DuckDB then refuses them), and
 * on_progress is called while the query runs. */
static void test_admin_changes_and_progress(void **state)
{
    (void)state;
    static const struct {
        const char *sql;
        dg_db_mode_t mode;
        bool changes;
    } cases[] = {
        {"SELECT 1", DG_DB_MODE_ADMIN, false},
        {"SELECT 1; SELECT 2", DG_DB_MODE_ADMIN, false},
        {"CREATE TABLE x(a INTEGER)", DG_DB_MODE_ADMIN, true},
        {"SELECT 1; CREATE TABLE x(a INTEGER); SELECT 2", DG_DB_MODE_ADMIN, true},
        {"SELECT 1", DG_DB_MODE_READONLY_SQL, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bool changes = false;
        int calls = 0;
        dg_db_query_t q = {.sql = cases[i].sql,
                           .sql_len = strlen(cases[i].sql),
                           .mode = cases[i].mode,
                           .changes = &changes,
                           .on_progress = count_progress,
                           .progress_ctx = &calls};
        dg_error_t err;
        dg_error_clear(&err);
        dg_db_cursor_t *c = NULL;
        dg_rc_t rc = dg_db_query_start(g_db, &q, &c, &err);
        dg_db_cursor_free(c);
        assert_int_equal(changes, cases[i].changes);
        if (rc == DG_OK) {
            assert_true(calls > 0);
        }
    }
}

/* ---- function inventory ---- */

static bool word_call(const char *text, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = strstr(text, name); p; p = strstr(p + 1, name)) {
        bool left = p == text || !(p[-1] == '_' || (p[-1] >= 'a' && p[-1] <= 'z') ||
                                   (p[-1] >= '0' && p[-1] <= '9'));
        if (left && p[n] == '(') {
            return true;
        }
    }
    return false;
}

typedef struct fnrow {
    char name[128];
    char type[32];
    char *def;
} fnrow_t;

static void test_function_inventory(void **state)
{
    (void)state;
    dg_error_t err;
    dg_db_cursor_t *c = NULL;
    const char *sql = "SELECT DISTINCT function_name, function_type, "
                      "coalesce(macro_definition, '') FROM duckdb_functions() "
                      "UNION ALL SELECT DISTINCT view_name, 'view', '' FROM duckdb_views() "
                      "WHERE internal";
    dg_db_query_t q = {.sql = sql, .sql_len = strlen(sql), .mode = DG_DB_MODE_ADMIN};
    dg_error_clear(&err);
    assert_int_equal(dg_db_query_start(g_db, &q, &c, &err), DG_OK);
    fnrow_t *rows = NULL;
    size_t n = 0, cap = 0;
    const dg_batch_t *b;
    while (dg_db_cursor_next(c, &b, &err) == DG_OK && b) {
        for (uint64_t r = 0; r < b->n_rows; r++) {
            if (n == cap) {
                cap = cap ? cap * 2 : 1024;
                rows = realloc(rows, cap * sizeof *rows);
                assert_non_null(rows);
            }
            uint32_t l0, l1, l2;
            const char *s0 = dg_strval_data(&((const dg_strval_t *)b->cols[0].data)[r], &l0);
            const char *s1 = dg_strval_data(&((const dg_strval_t *)b->cols[1].data)[r], &l1);
            const char *s2 = dg_strval_data(&((const dg_strval_t *)b->cols[2].data)[r], &l2);
            snprintf(rows[n].name, sizeof rows[n].name, "%.*s", (int)l0, s0);
            snprintf(rows[n].type, sizeof rows[n].type, "%.*s", (int)l1, s1);
            rows[n].def = strndup(s2, l2);
            n++;
        }
    }
    dg_db_cursor_free(c);
    assert_true(n > 500);

    int failures = 0;
    /* 1. Every table function is classified. */
    for (size_t i = 0; i < n; i++) {
        if (strcmp(rows[i].type, "table") == 0 || strcmp(rows[i].type, "table_macro") == 0) {
            if (!dg_db__fn_find(rows[i].name, DG_DB__FN_TABLE)) {
                fprintf(stderr, "unclassified table function: %s (add it to src/db/db_funcs.c)\n",
                        rows[i].name);
                failures++;
            }
        }
    }
    /* 2. Every classified name still exists with a matching kind (unless marked optional). */
    for (size_t k = 0; k < dg_db__n_fns; k++) {
        const dg_db__fn_t *f = &dg_db__fns[k];
        bool found = false;
        for (size_t i = 0; i < n && !found; i++) {
            if (strcmp(rows[i].name, f->name) != 0) {
                continue;
            }
            const char *t = rows[i].type;
            switch (f->kind) {
            case DG_DB__FN_TABLE:
                found = strcmp(t, "table") == 0 || strcmp(t, "table_macro") == 0;
                break;
            case DG_DB__FN_VIEW:
                found = strcmp(t, "view") == 0;
                break;
            default:
                found = strcmp(t, "scalar") == 0 || strcmp(t, "aggregate") == 0 ||
                        strcmp(t, "macro") == 0;
                break;
            }
        }
        if (!found && !f->is_optional) {
            fprintf(stderr, "classified name no longer exists: %s (review src/db/db_funcs.c)\n",
                    f->name);
            failures++;
        }
    }
    /* 3. No built-in macro or view that callers may use hides a denied function in its body. */
    for (size_t i = 0; i < n; i++) {
        if (!rows[i].def[0] || dg_db__fn_denied(rows[i].name)) {
            continue;
        }
        for (size_t k = 0; k < dg_db__n_fns; k++) {
            const dg_db__fn_t *f = &dg_db__fns[k];
            if (f->verdict == DG_DB__DENY && f->kind != DG_DB__FN_VIEW &&
                word_call(rows[i].def, f->name)) {
                fprintf(stderr, "macro %s calls denied %s: deny the macro too\n", rows[i].name,
                        f->name);
                failures++;
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        free(rows[i].def);
    }
    free(rows);
    assert_int_equal(failures, 0);
}

/* ---- types ---- */

static const dg_vec_t *col_by_name(const dg_schema_t *s, const dg_batch_t *b, const char *name)
{
    for (size_t i = 0; i < s->n_cols; i++) {
        if (strcmp(s->names[i], name) == 0) {
            return &b->cols[i];
        }
    }
    fail_msg("no column %s", name);
    return NULL;
}

static void test_all_types(void **state)
{
    (void)state;
    static const struct {
        const char *col;
        dg_type_id_t id;
        const char *name;
    } want[] = {
        {"bool", DG_TYPE_BOOLEAN, "BOOLEAN"},
        {"tinyint", DG_TYPE_TINYINT, "TINYINT"},
        {"smallint", DG_TYPE_SMALLINT, "SMALLINT"},
        {"int", DG_TYPE_INTEGER, "INTEGER"},
        {"bigint", DG_TYPE_BIGINT, "BIGINT"},
        {"hugeint", DG_TYPE_HUGEINT, "HUGEINT"},
        {"uhugeint", DG_TYPE_UHUGEINT, "UHUGEINT"},
        {"utinyint", DG_TYPE_UTINYINT, "UTINYINT"},
        {"usmallint", DG_TYPE_USMALLINT, "USMALLINT"},
        {"uint", DG_TYPE_UINTEGER, "UINTEGER"},
        {"ubigint", DG_TYPE_UBIGINT, "UBIGINT"},
        {"bignum", DG_TYPE_BIGNUM, "BIGNUM"},
        {"date", DG_TYPE_DATE, "DATE"},
        {"time", DG_TYPE_TIME, "TIME"},
        {"timestamp", DG_TYPE_TIMESTAMP, "TIMESTAMP"},
        {"timestamp_s", DG_TYPE_TIMESTAMP_S, "TIMESTAMP_S"},
        {"timestamp_ms", DG_TYPE_TIMESTAMP_MS, "TIMESTAMP_MS"},
        {"timestamp_ns", DG_TYPE_TIMESTAMP_NS, "TIMESTAMP_NS"},
        {"time_tz", DG_TYPE_TIME_TZ, "TIME WITH TIME ZONE"},
        {"timestamp_tz", DG_TYPE_TIMESTAMP_TZ, "TIMESTAMP WITH TIME ZONE"},
        {"float", DG_TYPE_FLOAT, "FLOAT"},
        {"double", DG_TYPE_DOUBLE, "DOUBLE"},
        {"dec_4_1", DG_TYPE_DECIMAL, "DECIMAL(4,1)"},
        {"dec_9_4", DG_TYPE_DECIMAL, "DECIMAL(9,4)"},
        {"dec_18_6", DG_TYPE_DECIMAL, "DECIMAL(18,6)"},
        {"dec38_10", DG_TYPE_DECIMAL, "DECIMAL(38,10)"},
        {"uuid", DG_TYPE_UUID, "UUID"},
        {"interval", DG_TYPE_INTERVAL, "INTERVAL"},
        {"varchar", DG_TYPE_VARCHAR, "VARCHAR"},
        {"blob", DG_TYPE_BLOB, "BLOB"},
        {"bit", DG_TYPE_BIT, "BIT"},
        {"small_enum", DG_TYPE_ENUM, "ENUM('DUCK_DUCK_ENUM', 'GOOSE')"},
        {"int_array", DG_TYPE_LIST, "INTEGER[]"},
        {"timestamptz_array", DG_TYPE_LIST, "TIMESTAMP WITH TIME ZONE[]"},
        {"nested_int_array", DG_TYPE_LIST, "INTEGER[][]"},
        {"struct", DG_TYPE_STRUCT, "STRUCT(a INTEGER, b VARCHAR)"},
        {"struct_of_arrays", DG_TYPE_STRUCT, "STRUCT(a INTEGER[], b VARCHAR[])"},
        {"array_of_structs", DG_TYPE_LIST, "STRUCT(a INTEGER, b VARCHAR)[]"},
        {"map", DG_TYPE_MAP, "MAP(VARCHAR, VARCHAR)"},
        {"union", DG_TYPE_UNION, "UNION(\"name\" VARCHAR, age SMALLINT)"},
        {"fixed_int_array", DG_TYPE_ARRAY, "INTEGER[3]"},
        {"fixed_nested_int_array", DG_TYPE_ARRAY, "INTEGER[3][3]"},
        {"fixed_array_of_int_list", DG_TYPE_ARRAY, "INTEGER[][3]"},
        {"list_of_fixed_int_array", DG_TYPE_LIST, "INTEGER[3][]"},
    };
    dg_error_t err;
    dg_db_cursor_t *c = NULL;
    const char *sql = "SELECT * FROM test_all_types()";
    dg_db_query_t q = {.sql = sql, .sql_len = strlen(sql), .mode = DG_DB_MODE_READONLY_SQL};
    dg_error_clear(&err);
    assert_int_equal(dg_db_query_start(g_db, &q, &c, &err), DG_OK);
    const dg_schema_t *s = dg_db_cursor_schema(c);
    const dg_batch_t *b;
    assert_int_equal(dg_db_cursor_next(c, &b, &err), DG_OK);
    assert_non_null(b);
    assert_int_equal(b->n_rows, 3);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const dg_vec_t *v = col_by_name(s, b, want[i].col);
        if (v->type->id != want[i].id || strcmp(v->type->name, want[i].name) != 0) {
            fail_msg("%s: got %d %s, want %d %s", want[i].col, v->type->id, v->type->name,
                     want[i].id, want[i].name);
        }
    }
    /* Storage types and decoded values. Row 0 holds minimums, row 1 maximums, row 2 NULLs. */
    const dg_vec_t *v = col_by_name(s, b, "int");
    assert_int_equal(((const int32_t *)v->data)[0], INT32_MIN);
    assert_int_equal(((const int32_t *)v->data)[1], INT32_MAX);
    assert_false(dg_vec_is_valid(v, 2));
    v = col_by_name(s, b, "dec_4_1");
    assert_int_equal(v->type->storage, DG_TYPE_SMALLINT);
    assert_int_equal(v->type->width, 4);
    assert_int_equal(v->type->scale, 1);
    assert_int_equal(((const int16_t *)v->data)[1], 9999);
    assert_int_equal(col_by_name(s, b, "dec_9_4")->type->storage, DG_TYPE_INTEGER);
    assert_int_equal(col_by_name(s, b, "dec_18_6")->type->storage, DG_TYPE_BIGINT);
    assert_int_equal(col_by_name(s, b, "dec38_10")->type->storage, DG_TYPE_HUGEINT);
    v = col_by_name(s, b, "small_enum");
    assert_int_equal(v->type->storage, DG_TYPE_UTINYINT);
    assert_int_equal(v->type->n_enum, 2);
    assert_string_equal(v->type->enum_values[1], "GOOSE");
    assert_int_equal(((const uint8_t *)v->data)[1], 1);
    assert_int_equal(col_by_name(s, b, "medium_enum")->type->storage, DG_TYPE_USMALLINT);
    v = col_by_name(s, b, "varchar");
    uint32_t len;
    const char *str = dg_strval_data(&((const dg_strval_t *)v->data)[0], &len);
    assert_int_equal(len, strlen("🦆🦆🦆🦆🦆🦆"));
    assert_memory_equal(str, "🦆🦆🦆🦆🦆🦆", len);
    /* int_array: row 0 is [], row 1 is [42, 999, NULL, NULL, -42]. */
    v = col_by_name(s, b, "int_array");
    const dg_list_entry_t *le = v->data;
    assert_int_equal(le[0].length, 0);
    assert_int_equal(le[1].length, 5);
    assert_int_equal(v->n_children, 1);
    const dg_vec_t *kid = &v->children[0];
    assert_true(v->child_len >= le[1].offset + le[1].length);
    assert_int_equal(((const int32_t *)kid->data)[le[1].offset], 42);
    assert_false(dg_vec_is_valid(kid, le[1].offset + 2));
    /* struct: row 1 is {a: 42, b: 🦆🦆🦆🦆🦆🦆}. */
    v = col_by_name(s, b, "struct");
    assert_null(v->data);
    assert_int_equal(v->n_children, 2);
    assert_string_equal(v->type->child_names[1], "b");
    assert_int_equal(((const int32_t *)v->children[0].data)[1], 42);
    /* fixed_int_array: row 1 is [4, 5, 6]; the child holds 3 values per row. */
    v = col_by_name(s, b, "fixed_int_array");
    assert_int_equal(v->type->array_size, 3);
    assert_null(v->data);
    assert_int_equal(((const int32_t *)v->children[0].data)[3], 4);
    assert_int_equal(((const int32_t *)v->children[0].data)[5], 6);
    /* map: children[0] is STRUCT(key, value). */
    v = col_by_name(s, b, "map");
    assert_int_equal(v->children[0].type->id, DG_TYPE_STRUCT);
    assert_int_equal(v->children[0].n_children, 2);
    assert_string_equal(v->children[0].type->child_names[0], "key");
    /* union: the tag first. */
    v = col_by_name(s, b, "union");
    assert_int_equal(v->n_children, 3);
    assert_int_equal(v->children[0].type->id, DG_TYPE_UTINYINT);
    assert_int_equal(dg_db_cursor_next(c, &b, &err), DG_OK);
    assert_null(b);
    dg_db_cursor_free(c);
}

static void test_literal_types(void **state)
{
    (void)state;
    dg_error_t err;
    dg_db_cursor_t *c = NULL;
    const char *sql = "SELECT 42::INTEGER AS a, 'a string longer than twelve' AS b, "
                      "12.345::DECIMAL(18,3) AS c, [1, 2, NULL]::INTEGER[] AS d, "
                      "{'x': 1, 'y': 'z'} AS e, MAP {'k': 1} AS f, [1, 2, 3]::INTEGER[3] AS g, "
                      "TIMESTAMPTZ '2024-01-01 00:00:00+00' AS h, m AS i, j AS k, NULL AS n, "
                      "{'a b': 1} AS o "
                      "FROM moods, people WHERE people.id = 1 ORDER BY m LIMIT 1";
    dg_db_query_t q = {.sql = sql, .sql_len = strlen(sql), .mode = DG_DB_MODE_READONLY_SQL};
    dg_error_clear(&err);
    assert_int_equal(dg_db_query_start(g_db, &q, &c, &err), DG_OK);
    const dg_schema_t *s = dg_db_cursor_schema(c);
    const dg_batch_t *b;
    assert_int_equal(dg_db_cursor_next(c, &b, &err), DG_OK);
    assert_non_null(b);
    assert_string_equal(s->types[0]->name, "INTEGER");
    assert_int_equal(((const int32_t *)b->cols[0].data)[0], 42);
    uint32_t len;
    const char *str = dg_strval_data(&((const dg_strval_t *)b->cols[1].data)[0], &len);
    assert_int_equal(len, strlen("a string longer than twelve"));
    assert_memory_equal(str, "a string longer than twelve", len);
    assert_string_equal(s->types[2]->name, "DECIMAL(18,3)");
    assert_int_equal(((const int64_t *)b->cols[2].data)[0], 12345);
    assert_string_equal(s->types[3]->name, "INTEGER[]");
    assert_int_equal(b->cols[3].child_len, 3);
    assert_false(dg_vec_is_valid(&b->cols[3].children[0], 2));
    assert_string_equal(s->types[4]->name, "STRUCT(x INTEGER, y VARCHAR)");
    assert_string_equal(s->types[5]->name, "MAP(VARCHAR, INTEGER)");
    assert_string_equal(s->types[6]->name, "INTEGER[3]");
    assert_string_equal(s->types[7]->name, "TIMESTAMP WITH TIME ZONE");
    assert_int_equal(((const int64_t *)b->cols[7].data)[0], INT64_C(1704067200000000));
    assert_int_equal(s->types[8]->id, DG_TYPE_ENUM);
    assert_int_equal(s->types[8]->n_enum, 3);
    assert_int_equal(((const uint8_t *)b->cols[8].data)[0], 1); /* 'ok' */
    assert_string_equal(s->types[9]->name, "JSON");
    assert_int_equal(s->types[9]->id, DG_TYPE_VARCHAR);
    assert_string_equal(s->names[10], "n");
    assert_false(dg_vec_is_valid(&b->cols[10], 0) && b->cols[10].type->id != DG_TYPE_SQLNULL);
    assert_string_equal(s->types[11]->name, "STRUCT(\"a b\" INTEGER)");
    dg_db_cursor_free(c);
}

/* Renders an INTEGER / LIST / ARRAY / STRUCT value the way DuckDB casts it to VARCHAR. */
static void render_nested(dg_buf_t *out, const dg_vec_t *v, uint64_t r)
{
    if (!dg_vec_is_valid(v, r)) {
        dg_buf_puts(out, "NULL");
        return;
    }
    switch (v->type->id) {
    case DG_TYPE_INTEGER:
        dg_buf_printf(out, "%" PRId32, ((const int32_t *)v->data)[r]);
        break;
    case DG_TYPE_LIST: {
        const dg_list_entry_t *e = &((const dg_list_entry_t *)v->data)[r];
        assert_true(e->offset + e->length <= v->child_len);
        dg_buf_putc(out, '[');
        for (uint64_t i = 0; i < e->length; i++) {
            dg_buf_puts(out, i ? ", " : "");
            render_nested(out, &v->children[0], e->offset + i);
        }
        dg_buf_putc(out, ']');
        break;
    }
    case DG_TYPE_ARRAY: {
        uint64_t n = v->type->array_size;
        dg_buf_putc(out, '[');
        for (uint64_t i = 0; i < n; i++) {
            dg_buf_puts(out, i ? ", " : "");
            render_nested(out, &v->children[0], r * n + i);
        }
        dg_buf_putc(out, ']');
        break;
    }
    case DG_TYPE_STRUCT:
        dg_buf_putc(out, '{');
        for (size_t i = 0; i < v->n_children; i++) {
            dg_buf_printf(out, "%s'%s': ", i ? ", " : "", v->type->child_names[i]);
            render_nested(out, &v->children[i], r);
        }
        dg_buf_putc(out, '}');
        break;
    default:
        fail_msg("unexpected type %s", v->type->name);
    }
}

/* test_vector_types emits constant, dictionary and sequence vectors: the fetched chunks must
 * still read correctly as flat vectors (zero copy relies on DuckDB flattening on fetch). */
static void test_vector_shapes(void **state)
{
    (void)state;
    dg_error_t err;
    dg_db_cursor_t *c = NULL;
    const char *sql = "SELECT v, w, x, v::VARCHAR, w::VARCHAR, x::VARCHAR FROM test_vector_types("
                      "NULL::STRUCT(a INTEGER, b INTEGER[]), NULL::INTEGER[3], NULL::INTEGER[][],"
                      " all_flat := false) t(v, w, x)";
    dg_db_query_t q = {.sql = sql, .sql_len = strlen(sql), .mode = DG_DB_MODE_READONLY_SQL};
    dg_error_clear(&err);
    assert_int_equal(dg_db_query_start(g_db, &q, &c, &err), DG_OK);
    const dg_batch_t *b;
    uint64_t rows = 0;
    dg_buf_t out;
    dg_buf_init(&out, 0);
    while (dg_db_cursor_next(c, &b, &err) == DG_OK && b) {
        for (uint64_t r = 0; r < b->n_rows; r++, rows++) {
            for (size_t k = 0; k < 3; k++) {
                const dg_vec_t *txt = &b->cols[3 + k];
                dg_buf_reset(&out);
                render_nested(&out, &b->cols[k], r);
                if (!dg_vec_is_valid(txt, r)) {
                    assert_string_equal(out.p, "NULL");
                    continue;
                }
                uint32_t len;
                const char *want = dg_strval_data(&((const dg_strval_t *)txt->data)[r], &len);
                if (out.len != len || memcmp(out.p, want, len) != 0) {
                    fail_msg("row %" PRIu64 " col %zu: got %s, want %.*s", rows, k, out.p, (int)len,
                             want);
                }
            }
        }
    }
    assert_true(rows > 3);
    dg_buf_free(&out);
    dg_db_cursor_free(c);
}

/* ---- parameters ---- */

static void test_params(void **state)
{
    (void)state;
    dg_error_t err;
    rows_t rows;
    assert_int_equal(run("SELECT $1::INTEGER + 1, $2, $3, $4, $5", DG_DB_MODE_READONLY_SQL,
                         "[41, \"x'; DROP TABLE people; --\", true, null, 1.5]", &rows, &err),
                     DG_OK);
    assert_string_equal(rows.cell[0], "42");
    assert_string_equal(rows.cell[1], "x'; DROP TABLE people; --");
    assert_string_equal(rows.cell[2], "true");
    assert_string_equal(rows.cell[3], "NULL");
    assert_string_equal(rows.cell[4], "1.5");
    assert_int_equal(run("SELECT ? + ?", DG_DB_MODE_READONLY_SQL, "[1, 2]", &rows, &err), DG_OK);
    assert_string_equal(rows.cell[0], "3");
    assert_int_equal(run("SELECT name FROM people WHERE id = $id", DG_DB_MODE_READONLY_SQL,
                         "{\"id\": 2}", &rows, &err),
                     DG_OK);
    assert_string_equal(rows.cell[0], "Bob");
    assert_int_equal(
        run("SELECT $a + $b", DG_DB_MODE_READONLY_SQL, "{\"b\": 2, \"a\": 40}", &rows, &err),
        DG_OK);
    assert_string_equal(rows.cell[0], "42");
    assert_int_equal(run("SELECT 1", DG_DB_MODE_READONLY_SQL, "[]", &rows, &err), DG_OK);
    assert_int_equal(run("SELECT 1", DG_DB_MODE_READONLY_SQL, "", &rows, &err), DG_OK);

    static const struct {
        const char *sql, *params;
    } bad[] = {
        {"SELECT $1, $2", "[1]"},
        {"SELECT $1", "[1, 2]"},
        {"SELECT $1", NULL},
        {"SELECT 1", "[1]"},
        {"SELECT $a", "{\"b\": 1}"},
        {"SELECT $a, $b", "{\"a\": 1}"},
        {"SELECT $a", "{\"a\": 1, \"b\": 2}"},
        {"SELECT $a", "[1]"},
        {"SELECT $1", "{\"a\": 1}"},
        {"SELECT $1", "[[1]]"},
        {"SELECT $1", "[{\"a\": 1}]"},
        {"SELECT $1", "[1"},
        {"SELECT $1", "\"x\""},
        {"SELECT $a", "{\"a\": 1, \"a\": 2}"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        dg_rc_t rc = run(bad[i].sql, DG_DB_MODE_READONLY_SQL, bad[i].params, &rows, &err);
        if (rc != DG_BAD_PARAMS) {
            fail_msg("params case %zu (%s with %s): got %s (%s)", i, bad[i].sql,
                     bad[i].params ? bad[i].params : "none", dg_rc_name(rc), err.msg);
        }
    }
    /* A value that does not convert is the caller's SQL error. */
    assert_int_equal(run("SELECT $1::INTEGER", DG_DB_MODE_READONLY_SQL, "[\"abc\"]", &rows, &err),
                     DG_SQL_ERROR);
}

/* ---- interrupts ---- */

typedef struct intr_ctx {
    dg_db_cursor_t *cursor;
    _Atomic int *cell;
    dg_rc_t reason;
    int delay_ms;
} intr_ctx_t;

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *interrupter(void *arg)
{
    intr_ctx_t *ctx = arg;
    sleep_ms(ctx->delay_ms);
    if (ctx->cursor) {
        /* Progress may be read from another thread while the query runs. */
        double p = dg_db_cursor_progress(ctx->cursor);
        if (!(p == -1 || (p >= 0 && p <= 100))) {
            ctx->reason = DG_INTERNAL;
        }
        dg_db_cursor_interrupt(ctx->cursor, ctx->reason);
    } else {
        atomic_store(ctx->cell, (int)ctx->reason);
    }
    return NULL;
}

static void test_interrupt_start(void **state)
{
    (void)state;
    /* A blocking aggregate never reaches a first chunk: stopped during dg_db_query_start. */
    _Atomic int cell = 0;
    intr_ctx_t ctx = {.cursor = NULL, .cell = &cell, .reason = DG_TIMEOUT, .delay_ms = 300};
    const char *sql = "SELECT count(*) FROM range(1000000) a, range(1000000) b";
    dg_db_query_t q = {
        .sql = sql, .sql_len = strlen(sql), .mode = DG_DB_MODE_READONLY_SQL, .interrupt = &cell};
    dg_error_t err;
    dg_db_cursor_t *c = NULL;
    pthread_t th;
    dg_error_clear(&err);
    double t0 = now_s();
    assert_int_equal(pthread_create(&th, NULL, interrupter, &ctx), 0);
    assert_int_equal(dg_db_query_start(g_db, &q, &c, &err), DG_TIMEOUT);
    double dt = now_s() - t0;
    pthread_join(th, NULL);
    assert_null(c);
    assert_true(dt < 1.3);
}

static void test_interrupt_cursor(void **state)
{
    (void)state;
    /* A streaming filter that produces 500k rows, then nothing. dg_db_query_start runs until
     * DuckDB's streaming buffer is full (or the query ends), so it returns after the first
     * rows; the later fetch keeps scanning inside DuckDB, and only duckdb_interrupt stops it.
     * (A blockwise nested-loop join would not do: DuckDB checks for interrupts between operator
     * chunks, and one such chunk can take minutes. The engine's kill deadline covers that.) */
    const char *sql = "SELECT i FROM range(100000000000) t(i) WHERE i < 500000 OR i * 7 < 0";
    dg_db_query_t q = {.sql = sql, .sql_len = strlen(sql), .mode = DG_DB_MODE_READONLY_SQL};
    dg_error_t err;
    dg_db_cursor_t *c = NULL;
    dg_error_clear(&err);
    assert_int_equal(dg_db_query_start(g_db, &q, &c, &err), DG_OK);
    intr_ctx_t ctx = {.cursor = c, .reason = DG_CLIENT_GONE, .delay_ms = 300};
    pthread_t th;
    double t0 = now_s();
    assert_int_equal(pthread_create(&th, NULL, interrupter, &ctx), 0);
    const dg_batch_t *b = NULL;
    dg_rc_t rc;
    while ((rc = dg_db_cursor_next(c, &b, &err)) == DG_OK && b) {
    }
    double dt = now_s() - t0;
    pthread_join(th, NULL);
    assert_int_equal(rc, DG_CLIENT_GONE);
    assert_true(dt < 1.3);
    double p = dg_db_cursor_progress(c);
    assert_true(p == -1 || (p >= 0 && p <= 100));
    /* Later calls keep returning the reason. */
    assert_int_equal(dg_db_cursor_next(c, &b, &err), DG_CLIENT_GONE);
    dg_db_cursor_free(c);

    /* A streaming result interrupted between chunks. */
    sql = "SELECT a.range * b.range FROM range(100000) a, range(100000) b";
    q.sql = sql;
    q.sql_len = strlen(sql);
    dg_error_clear(&err);
    assert_int_equal(dg_db_query_start(g_db, &q, &c, &err), DG_OK);
    ctx.cursor = c;
    ctx.reason = DG_CANCELLED;
    t0 = now_s();
    assert_int_equal(pthread_create(&th, NULL, interrupter, &ctx), 0);
    while ((rc = dg_db_cursor_next(c, &b, &err)) == DG_OK && b) {
    }
    dt = now_s() - t0;
    pthread_join(th, NULL);
    assert_int_equal(rc, DG_CANCELLED);
    assert_true(dt < 1.3);
    dg_db_cursor_free(c);
}

/* ---- catalog ---- */

static void test_catalog_json(void **state)
{
    (void)state;
    dg_buf_t out;
    dg_error_t err;
    json_error_t jerr;
    dg_buf_init(&out, 1 << 20);
    dg_error_clear(&err);
    assert_int_equal(dg_db_catalog_json(g_db, &out, &err), DG_OK);
    json_t *root = json_loadb(out.p, out.len, 0, &jerr);
    if (!root) {
        fail_msg("catalog JSON invalid: %s: %s", jerr.text, out.p);
    }
    assert_string_equal(json_string_value(json_object_get(root, "name")), "fixture");
    json_t *tables = json_object_get(root, "tables");
    assert_int_equal(json_array_size(tables), 4);
    bool seen_people = false, seen_view = false;
    size_t i;
    json_t *t;
    json_array_foreach(tables, i, t)
    {
        const char *name = json_string_value(json_object_get(t, "name"));
        assert_string_equal(json_string_value(json_object_get(t, "schema")), "main");
        if (strcmp(name, "people") == 0) {
            seen_people = true;
            assert_string_equal(json_string_value(json_object_get(t, "type")), "table");
            assert_int_equal(json_integer_value(json_object_get(t, "row_count")), 3);
            json_t *cols = json_object_get(t, "columns");
            assert_int_equal(json_array_size(cols), 7);
            json_t *c0 = json_array_get(cols, 0);
            assert_string_equal(json_string_value(json_object_get(c0, "name")), "id");
            assert_string_equal(json_string_value(json_object_get(c0, "type")), "INTEGER");
            assert_true(json_is_false(json_object_get(c0, "nullable")));
            json_t *c3 = json_array_get(cols, 3);
            assert_string_equal(json_string_value(json_object_get(c3, "type")), "DECIMAL(18,3)");
            assert_true(json_is_true(json_object_get(c3, "nullable")));
        } else if (strcmp(name, "big_sales") == 0) {
            seen_view = true;
            assert_string_equal(json_string_value(json_object_get(t, "type")), "view");
            assert_true(json_is_null(json_object_get(t, "row_count")));
        }
    }
    assert_true(seen_people && seen_view);
    json_decref(root);
    dg_buf_free(&out);
}

/* ---- errors and scrubbing ---- */

static void test_errors_and_scrub(void **state)
{
    (void)state;
    dg_error_t err;
    char sql[512];
    /* External access is off even for trusted SQL; the path is scrubbed from the message. */
    snprintf(sql, sizeof sql, "SELECT * FROM read_csv('%s/nope.csv')", g_dir);
    dg_rc_t rc = run(sql, DG_DB_MODE_ADMIN, NULL, NULL, &err);
    assert_int_equal(rc, DG_NOT_READ_ONLY);
    if (strstr(err.msg, g_dir)) {
        fail_msg("path not scrubbed: %s", err.msg);
    }
    snprintf(sql, sizeof sql, "ATTACH '%s/other.duckdb' AS other", g_dir);
    rc = run(sql, DG_DB_MODE_ADMIN, NULL, NULL, &err);
    assert_int_not_equal(rc, DG_OK);
    assert_null(strstr(err.msg, g_dir));

    /* The scrubber itself. */
    char out[1024];
    char msg[1024];
    snprintf(msg, sizeof msg, "IO Error: cannot open \"%s\" in %s/x", g_path, g_dir);
    dg_db__scrub(g_db, msg, out, sizeof out);
    assert_null(strstr(out, g_dir));
    assert_non_null(strstr(out, "<path>"));

    /* Mapping by DuckDB error type and message. */
    dg_error_clear(&err);
    assert_int_equal(dg_db__error(g_db, DUCKDB_ERROR_INTERRUPT, "INTERRUPT Error: Interrupted!",
                                  DG_TIMEOUT, &err),
                     DG_TIMEOUT);
    dg_error_clear(&err);
    assert_int_equal(dg_db__error(g_db, -1, "Out of Memory Error: failed to allocate", 0, &err),
                     DG_RESOURCE_EXHAUSTED);
    dg_error_clear(&err);
    assert_int_equal(dg_db__error(g_db, DUCKDB_ERROR_PERMISSION, "Permission Error: x", 0, &err),
                     DG_NOT_READ_ONLY);
    dg_error_clear(&err);
    assert_int_equal(dg_db__error(g_db, DUCKDB_ERROR_BINDER, "Binder Error: x", 0, &err),
                     DG_SQL_ERROR);
    dg_error_clear(&err);
    assert_int_equal(dg_db__error(g_db, -1, "Conversion Error: x", 0, &err), DG_SQL_ERROR);

    /* Runtime errors of the caller's data. */
    assert_int_equal(
        run("SELECT 2147483647::INTEGER + 1", DG_DB_MODE_READONLY_SQL, NULL, NULL, &err),
        DG_SQL_ERROR);
    assert_int_equal(run("SELECT 'abc'::INTEGER", DG_DB_MODE_READONLY_SQL, NULL, NULL, &err),
                     DG_SQL_ERROR);
    assert_int_equal(run("SELECT error('boom')", DG_DB_MODE_READONLY_SQL, NULL, NULL, &err),
                     DG_SQL_ERROR);

    /* An error after some chunks were delivered ends the cursor for good. */
    {
        const char *late = "SELECT CASE WHEN i = 900000 THEN error('late') ELSE i END "
                           "FROM range(1000000) t(i)";
        dg_db_query_t q = {.sql = late, .sql_len = strlen(late), .mode = DG_DB_MODE_READONLY_SQL};
        dg_db_cursor_t *c = NULL;
        const dg_batch_t *b = NULL;
        uint64_t n = 0;
        dg_error_clear(&err);
        rc = dg_db_query_start(g_db, &q, &c, &err);
        while (rc == DG_OK && (rc = dg_db_cursor_next(c, &b, &err)) == DG_OK && b) {
            n += b->n_rows;
        }
        assert_int_equal(rc, DG_SQL_ERROR);
        assert_non_null(strstr(err.msg, "late"));
        if (c) {
            assert_true(n > 0);
            assert_int_equal(dg_db_cursor_next(c, &b, &err), DG_SQL_ERROR);
            assert_null(b);
            dg_db_cursor_free(c);
        }
    }

    /* Opening a missing file read-only: DG_IO, no path in the message. */
    char missing[400];
    dg_db_t *db = NULL;
    snprintf(missing, sizeof missing, "%s/missing.duckdb", g_dir);
    assert_int_equal(open_db(missing, true, 0, NULL, &db, &err), DG_IO);
    assert_null(db);
    assert_null(strstr(err.msg, g_dir));
}

static void test_resource_exhausted(void **state)
{
    (void)state;
    dg_error_t err;
    dg_db_t *small = NULL;
    assert_int_equal(open_db(g_path, true, 32u << 20, NULL, &small, &err), DG_OK);
    dg_db_t *saved = g_db;
    g_db = small;
    dg_rc_t rc = run("SELECT count(*) FROM (SELECT DISTINCT i::VARCHAR || 'padding-padding' "
                     "FROM range(20000000) t(i))",
                     DG_DB_MODE_READONLY_SQL, NULL, NULL, &err);
    g_db = saved;
    dg_db_close(small);
    if (rc != DG_RESOURCE_EXHAUSTED) {
        fail_msg("got %s: %s", dg_rc_name(rc), err.msg);
    }
}

/* A read-write instance: untrusted reads run in a read-only transaction. */
static void test_read_write_instance(void **state)
{
    (void)state;
    dg_error_t err;
    char path[400];
    dg_db_t *rw = NULL;
    snprintf(path, sizeof path, "%s/rw.duckdb", g_dir);
    assert_int_equal(open_db(path, false, 0, NULL, &rw, &err), DG_OK);
    assert_int_equal(
        dg_db_exec(rw, "CREATE TABLE t AS SELECT 1 AS x; INSERT INTO t VALUES (2)", &err), DG_OK);
    assert_int_equal(dg_db_exec(rw, "SELECT * FROM nosuch", &err), DG_SQL_ERROR);
    dg_db_t *saved = g_db;
    g_db = rw;
    rows_t rows;
    assert_int_equal(
        run("SELECT sum(x)::BIGINT FROM t", DG_DB_MODE_READONLY_SQL, NULL, &rows, &err), DG_OK);
    assert_string_equal(rows.cell[0], "3");
    assert_int_equal(
        run("SELECT * FROM fixture.main.people", DG_DB_MODE_READONLY_SQL, NULL, &rows, &err),
        DG_NOT_READ_ONLY);
    g_db = saved;
    dg_db_close(rw);
}

/* One instance, several threads: each query has its own connection, checks share a pool. */
static void *worker(void *arg)
{
    int *failures = arg;
    static const char *const sqls[] = {
        "SELECT count(*) FROM sales WHERE region = 'north'",
        "SELECT * FROM read_text('/etc/passwd')",
        "SELECT name FROM people ORDER BY id",
    };
    for (int i = 0; i < 60; i++) {
        const char *sql = sqls[i % 3];
        dg_db_query_t q = {.sql = sql, .sql_len = strlen(sql), .mode = DG_DB_MODE_READONLY_SQL};
        dg_db_cursor_t *c = NULL;
        dg_error_t err;
        dg_error_clear(&err);
        dg_rc_t rc = dg_db_query_start(g_db, &q, &c, &err);
        const dg_batch_t *b;
        while (rc == DG_OK && (rc = dg_db_cursor_next(c, &b, &err)) == DG_OK && b) {
        }
        dg_db_cursor_free(c);
        if (rc != (i % 3 == 1 ? DG_NOT_READ_ONLY : DG_OK)) {
            (*failures)++;
        }
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    pthread_t th[4];
    int failures[4] = {0};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_create(&th[i], NULL, worker, &failures[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(failures[i], 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_settings),
        cmocka_unit_test(test_sandbox_table),
        cmocka_unit_test(test_sandbox_messages),
        cmocka_unit_test(test_sandbox_limits),
        cmocka_unit_test(test_admin_mode),
        cmocka_unit_test(test_admin_changes_and_progress),
        cmocka_unit_test(test_function_inventory),
        cmocka_unit_test(test_all_types),
        cmocka_unit_test(test_literal_types),
        cmocka_unit_test(test_vector_shapes),
        cmocka_unit_test(test_params),
        cmocka_unit_test(test_interrupt_start),
        cmocka_unit_test(test_interrupt_cursor),
        cmocka_unit_test(test_catalog_json),
        cmocka_unit_test(test_errors_and_scrub),
        cmocka_unit_test(test_resource_exhausted),
        cmocka_unit_test(test_read_write_instance),
        cmocka_unit_test(test_threads),
    };
    const char *filter = getenv("DG_TEST_FILTER");
    if (filter && filter[0]) {
        cmocka_set_test_filter(filter);
    }
    return cmocka_run_group_tests(tests, setup, teardown);
}
