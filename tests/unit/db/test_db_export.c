/* Unit tests for the streaming-format additions of src/db:
 * - Arrow: a cursor's result as Arrow C Data Interface structs, written with our IPC writer and
 *   read back by apache-arrow (tests/js/read_arrow.mjs, an independent implementation); arrays
 *   stay valid after later fetches and after the cursor is freed.
 * - Parquet export: the file comes back through a trusted DuckDB instance and equals the source
 *   (EXCEPT both ways); nothing is left in the export directory after any call; sandbox
 *   refusals carry dg_db_query_start's codes and write nothing; the byte cap and interrupts stop
 *   the export; the export instance itself can write only inside its directory.
 *
 * The fixture database is built in a mkdtemp directory (removed at the end) and served
 * read-only, as in production. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "arrow_reader.h"

#include "core/arrow_c.h"
#include "core/buf.h"
#include "db/db.h"
#include "db/db_internal.h"
#include "enc/arrow_ipc.h"

static char g_dir[256];
static char g_path[320];
static char g_spill[320];
static char g_export[320];
static dg_db_t *g_db;

static const char fixture_sql[] =
    "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');"
    "CREATE TABLE t(id INTEGER, m mood, l INTEGER[], s STRUCT(a VARCHAR, b DOUBLE),"
    "  mp MAP(VARCHAR, INTEGER), d DECIMAL(18,3), ts TIMESTAMPTZ, v VARCHAR, big BIGINT);"
    "INSERT INTO t VALUES"
    "  (1, 'ok', [1, 2], {'a': 'x', 'b': 1.5}, MAP {'k': 1}, 12.345,"
    "   TIMESTAMPTZ '2024-01-02 03:04:05.123456+00', 'h\xc3\xa9llo', 9007199254740993),"
    "  (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),"
    "  (3, 'happy', [], {'a': NULL, 'b': -2.0}, MAP {}, -0.001,"
    "   TIMESTAMPTZ '1969-12-31 23:59:59+00', '', -1),"
    "  (4, 'sad', [NULL, 7], {'a': 'q\"uote', 'b': NULL}, MAP {'a': NULL, 'b': 2},"
    "   999999999999999.999, TIMESTAMPTZ '2262-04-11 00:00:00+00', 'line\nbreak', 0);"
    "CREATE TABLE nums AS SELECT i, i * 2 AS j, md5(i::VARCHAR) AS h,"
    "  CASE WHEN i % 7 = 0 THEN NULL ELSE i / 3.0 END AS x FROM range(5000) r(i);";

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static dg_rc_t open_db(const char *path, bool read_only, const char *spill, dg_db_t **out,
                       dg_error_t *err)
{
    dg_db_opts_t o = {.path = path,
                      .name = "fixture",
                      .read_only = read_only,
                      .memory_limit = 256u << 20,
                      .max_temp_bytes = 512u << 20,
                      .threads = 2,
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
    snprintf(g_dir, sizeof g_dir, "%s/dg_dbx_test_XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(g_dir)) {
        return -1;
    }
    snprintf(g_path, sizeof g_path, "%s/fixture.duckdb", g_dir);
    snprintf(g_spill, sizeof g_spill, "%s/spill", g_dir);
    /* Not created here: dg_db_export_parquet creates it (and its parent) with 0700. */
    snprintf(g_export, sizeof g_export, "%s/engine-0/export", g_dir);
    if (open_db(g_path, false, NULL, &rw, &err) != DG_OK) {
        fprintf(stderr, "open rw: %s\n", err.msg);
        return -1;
    }
    dg_rc_t rc = dg_db_exec(rw, fixture_sql, &err);
    dg_db_close(rw);
    if (rc != DG_OK) {
        fprintf(stderr, "fixture: %s\n", err.msg);
        return -1;
    }
    if (open_db(g_path, true, g_spill, &g_db, &err) != DG_OK) {
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

static dg_db_query_t query(const char *sql, const char *params)
{
    dg_db_query_t q = {.sql = sql,
                       .sql_len = strlen(sql),
                       .params_json = params,
                       .params_len = params ? strlen(params) : 0,
                       .mode = DG_DB_MODE_READONLY_SQL};
    return q;
}

/* Entries of dir other than . and ..; -1 when it cannot be opened. */
static int dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        return -1;
    }
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            fprintf(stderr, "left in %s: %s\n", dir, e->d_name);
            n++;
        }
    }
    closedir(d);
    return n;
}

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

/* ---- Arrow ---- */

#define MAX_ARRAYS 16

/* Fetches every chunk of sql as Arrow, keeping all arrays, frees the cursor, and only then
 * writes the stream: the arrays must not depend on the chunks or the cursor. Returns the
 * reader's JSON. */
static json_t *arrow_roundtrip(const char *sql, size_t *out_n_arrays)
{
    dg_error_t err;
    dg_error_clear(&err);
    dg_db_query_t q = query(sql, NULL);
    dg_db_cursor_t *c = NULL;
    assert_int_equal(dg_db_query_start(g_db, &q, &c, &err), DG_OK);
    struct ArrowSchema schema;
    assert_int_equal(dg_db_cursor_arrow_schema(c, &schema, &err), DG_OK);
    assert_non_null(schema.release);
    assert_string_equal(schema.format, "+s");
    struct ArrowArray arrays[MAX_ARRAYS];
    size_t n = 0;
    for (;;) {
        bool end = false;
        assert_true(n < MAX_ARRAYS);
        dg_rc_t rc = dg_db_cursor_next_arrow(c, &arrays[n], &end, &err);
        assert_int_equal(rc, DG_OK);
        if (end) {
            assert_null(arrays[n].release);
            break;
        }
        assert_non_null(arrays[n].release);
        assert_int_equal(arrays[n].n_children, schema.n_children);
        n++;
    }
    /* The end is sticky. */
    bool end = false;
    struct ArrowArray extra;
    assert_int_equal(dg_db_cursor_next_arrow(c, &extra, &end, &err), DG_OK);
    assert_true(end);
    dg_db_cursor_free(c);

    dg_arrow_ipc_t *w = NULL;
    assert_int_equal(dg_arrow_ipc_new(&schema, &w, &err), DG_OK);
    dg_buf_t out;
    dg_buf_init(&out, 0);
    assert_int_equal(dg_arrow_ipc_write_schema(w, &out), DG_OK);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(dg_arrow_ipc_write_batch(w, &arrays[i], &out, &err), DG_OK);
        arrays[i].release(&arrays[i]);
    }
    assert_int_equal(dg_arrow_ipc_write_eos(w, &out), DG_OK);
    dg_arrow_ipc_free(w);
    schema.release(&schema);

    char path[400];
    snprintf(path, sizeof path, "%s/stream.arrows", g_dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(out.p, 1, out.len, f), out.len);
    fclose(f);
    dg_buf_free(&out);
    json_t *j = arrow_reader_read(path);
    unlink(path);
    *out_n_arrays = n;
    return j;
}

static void test_arrow_types(void **state)
{
    (void)state;
    arrow_reader_require();
    size_t n_arrays = 0;
    json_t *j = arrow_roundtrip("SELECT * FROM t ORDER BY id", &n_arrays);
    assert_int_equal(n_arrays, 1);
    assert_int_equal(json_integer_value(json_object_get(j, "num_rows")), 4);
    char *schema = json_dumps(json_object_get(j, "schema"), JSON_COMPACT);
    char *rows = json_dumps(json_object_get(j, "rows"), JSON_COMPACT);
    /* Types as DuckDB maps them: ENUM is dictionary-encoded, DECIMAL stays decimal, TIMESTAMPTZ
     * is microseconds with a zone. */
    assert_non_null(strstr(schema, "{\"name\":\"id\",\"type\":\"Int32\""));
    assert_non_null(strstr(schema, "{\"name\":\"m\",\"type\":\"Dictionary<"));
    assert_non_null(strstr(schema, "{\"name\":\"l\",\"type\":\"List<Int32>\""));
    assert_non_null(strstr(schema, "{\"name\":\"s\",\"type\":\"Struct<{a:Utf8, b:Float64}>\""));
    assert_non_null(strstr(schema, "{\"name\":\"mp\",\"type\":\"Map<"));
    assert_non_null(strstr(schema, "{\"name\":\"d\",\"type\":\"Decimal["));
    assert_non_null(strstr(schema, "{\"name\":\"ts\",\"type\":\"Timestamp<MICROSECOND, "));
    assert_non_null(strstr(schema, "{\"name\":\"big\",\"type\":\"Int64\""));

    json_t *r = json_object_get(j, "rows");
    /* Row 1: every column set. */
    json_t *r0 = json_array_get(r, 0);
    assert_int_equal(json_integer_value(json_object_get(r0, "id")), 1);
    assert_string_equal(json_string_value(json_object_get(r0, "m")), "ok");
    char *l0 = json_dumps(json_object_get(r0, "l"), JSON_COMPACT);
    assert_string_equal(l0, "[1,2]");
    free(l0);
    char *s0 = json_dumps(json_object_get(r0, "s"), JSON_COMPACT);
    assert_string_equal(s0, "{\"a\":\"x\",\"b\":1.5}");
    free(s0);
    char *m0 = json_dumps(json_object_get(r0, "mp"), JSON_COMPACT);
    assert_string_equal(m0, "{\"k\":1}");
    free(m0);
    /* 2024-01-02 03:04:05.123456 UTC in milliseconds (apache-arrow's timestamp value). */
    double ts0 = json_number_value(json_object_get(r0, "ts"));
    assert_true(ts0 > 1704164645123.455 && ts0 < 1704164645123.457);
    /* DECIMAL(18,3) as decimal128: the reader prints the unscaled integer. */
    assert_string_equal(json_string_value(json_object_get(r0, "d")), "\"12345\"");
    assert_string_equal(json_string_value(json_object_get(r0, "v")), "h\xc3\xa9llo");
    assert_string_equal(json_string_value(json_object_get(r0, "big")), "9007199254740993");
    /* Row 2: NULL in every column but id. */
    json_t *r1 = json_array_get(r, 1);
    const char *cols[] = {"m", "l", "s", "mp", "d", "ts", "v", "big"};
    for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++) {
        assert_true(json_is_null(json_object_get(r1, cols[i])));
    }
    /* Rows 3 and 4: empty and NULL nested members, negative and extreme values. */
    json_t *r2 = json_array_get(r, 2);
    assert_string_equal(json_string_value(json_object_get(r2, "m")), "happy");
    char *l2 = json_dumps(json_object_get(r2, "l"), JSON_COMPACT);
    assert_string_equal(l2, "[]");
    free(l2);
    assert_true(json_number_value(json_object_get(r2, "ts")) == -1000.0);
    assert_string_equal(json_string_value(json_object_get(r2, "big")), "-1");
    assert_string_equal(json_string_value(json_object_get(r2, "d")), "\"-1\"");
    json_t *r3 = json_array_get(r, 3);
    char *l3 = json_dumps(json_object_get(r3, "l"), JSON_COMPACT);
    assert_string_equal(l3, "[null,7]");
    free(l3);
    char *s3 = json_dumps(json_object_get(r3, "s"), JSON_COMPACT);
    assert_string_equal(s3, "{\"a\":\"q\\\"uote\",\"b\":null}");
    free(s3);
    char *m3 = json_dumps(json_object_get(r3, "mp"), JSON_COMPACT);
    assert_string_equal(m3, "{\"a\":null,\"b\":2}");
    free(m3);
    assert_string_equal(json_string_value(json_object_get(r3, "v")), "line\nbreak");
    assert_string_equal(json_string_value(json_object_get(r3, "d")), "\"999999999999999999\"");
    /* 2262-04-11 00:00:00 UTC */
    assert_true(json_number_value(json_object_get(r3, "ts")) == 9223286400000.0);
    free(schema);
    free(rows);
    json_decref(j);
}

static void test_arrow_batches(void **state)
{
    (void)state;
    /* Several chunks, all kept alive past later fetches and the cursor's end. */
    size_t n_arrays = 0;
    json_t *j = arrow_roundtrip("SELECT i, h, x FROM nums ORDER BY i", &n_arrays);
    assert_true(n_arrays >= 3);
    assert_int_equal(json_integer_value(json_object_get(j, "num_rows")), 5000);
    json_t *rows = json_object_get(j, "rows");
    for (size_t i = 0; i < 5000; i++) {
        json_t *row = json_array_get(rows, i);
        char want[24];
        snprintf(want, sizeof want, "%zu", i);
        assert_string_equal(json_string_value(json_object_get(row, "i")), want);
        json_t *x = json_object_get(row, "x");
        if (i % 7 == 0) {
            assert_true(json_is_null(x));
        } else {
            assert_false(json_is_null(x));
        }
        assert_int_equal(strlen(json_string_value(json_object_get(row, "h"))), 32);
    }
    json_decref(j);
}

static void test_arrow_interrupt(void **state)
{
    (void)state;
    dg_error_t err;
    dg_error_clear(&err);
    dg_db_query_t q = query("SELECT i FROM range(100000000) r(i)", NULL);
    dg_db_cursor_t *c = NULL;
    assert_int_equal(dg_db_query_start(g_db, &q, &c, &err), DG_OK);
    struct ArrowArray a;
    bool end = false;
    assert_int_equal(dg_db_cursor_next_arrow(c, &a, &end, &err), DG_OK);
    assert_false(end);
    a.release(&a);
    dg_db_cursor_interrupt(c, DG_CLIENT_GONE);
    assert_int_equal(dg_db_cursor_next_arrow(c, &a, &end, &err), DG_CLIENT_GONE);
    assert_null(a.release);
    assert_int_equal(dg_db_cursor_next_arrow(c, &a, &end, &err), DG_CLIENT_GONE);
    dg_db_cursor_free(c);
}

/* ---- Parquet export ---- */

/* Copies the descriptor's bytes to path. */
static void copy_fd(int fd, uint64_t size, const char *path)
{
    int out = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(out >= 0);
    char buf[65536];
    uint64_t total = 0;
    for (;;) {
        ssize_t n = pread(fd, buf, sizeof buf, (off_t)total);
        assert_true(n >= 0);
        if (n == 0) {
            break;
        }
        assert_int_equal(write(out, buf, (size_t)n), n);
        total += (uint64_t)n;
    }
    close(out);
    assert_int_equal(total, size);
}

/* A trusted instance (no sandbox) with the fixture attached read-only as fx. */
static duckdb_connection g_tcon;
static duckdb_database g_tinst;

static void trusted_open(void)
{
    assert_int_equal(duckdb_open(NULL, &g_tinst), DuckDBSuccess);
    assert_int_equal(duckdb_connect(g_tinst, &g_tcon), DuckDBSuccess);
    char sql[600];
    snprintf(sql, sizeof sql, "ATTACH '%s' AS fx (READ_ONLY)", g_path);
    duckdb_result res;
    duckdb_state st = duckdb_query(g_tcon, sql, &res);
    if (st != DuckDBSuccess) {
        fprintf(stderr, "attach: %s\n", duckdb_result_error(&res));
    }
    duckdb_destroy_result(&res);
    assert_int_equal(st, DuckDBSuccess);
}

static void trusted_close(void)
{
    duckdb_disconnect(&g_tcon);
    duckdb_close(&g_tinst);
}

static int64_t trusted_count(const char *sql)
{
    duckdb_result res;
    duckdb_state st = duckdb_query(g_tcon, sql, &res);
    if (st != DuckDBSuccess) {
        fprintf(stderr, "trusted query failed: %s\n%s\n", duckdb_result_error(&res), sql);
    }
    assert_int_equal(st, DuckDBSuccess);
    int64_t n = duckdb_value_int64(&res, 0, 0);
    duckdb_destroy_result(&res);
    return n;
}

/* Exports sql, copies the file out and compares it with `source` (SQL over fx) both ways. */
static void export_and_compare(const char *sql, const char *params, const char *source,
                               int64_t want_rows)
{
    dg_error_t err;
    dg_error_clear(&err);
    dg_db_query_t q = query(sql, params);
    int fd = -1;
    uint64_t size = 0;
    dg_rc_t rc = dg_db_export_parquet(g_db, &q, g_export, 64u << 20, &fd, &size, &err);
    if (rc != DG_OK) {
        fprintf(stderr, "export: %s\n", err.msg);
    }
    assert_int_equal(rc, DG_OK);
    assert_true(fd >= 0);
    assert_true(size > 0);
    /* Always cleaned: the only reference to the file is the descriptor. */
    assert_int_equal(dir_entries(g_export), 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal(st.st_nlink, 0);
    assert_int_equal((uint64_t)st.st_size, size);
    char copy[400];
    snprintf(copy, sizeof copy, "%s/copy.parquet", g_dir);
    copy_fd(fd, size, copy);
    close(fd);

    char cmp[2048];
    snprintf(cmp, sizeof cmp, "SELECT count(*) FROM read_parquet('%s')", copy);
    assert_int_equal(trusted_count(cmp), want_rows);
    snprintf(cmp, sizeof cmp,
             "SELECT (SELECT count(*) FROM (FROM read_parquet('%s') EXCEPT ALL %s)) + "
             "(SELECT count(*) FROM (%s EXCEPT ALL FROM read_parquet('%s')))",
             copy, source, source, copy);
    assert_int_equal(trusted_count(cmp), 0);
    /* ZSTD, as DESIGN says. */
    snprintf(cmp, sizeof cmp,
             "SELECT count(*) FROM parquet_metadata('%s') WHERE compression <> 'ZSTD'", copy);
    assert_int_equal(trusted_count(cmp), 0);
    unlink(copy);
}

static void test_export_roundtrip(void **state)
{
    (void)state;
    trusted_open();
    export_and_compare("SELECT * FROM nums WHERE i >= $1 AND h <> $2", "[100, \"x\"]",
                       "SELECT * FROM fx.nums WHERE i >= 100", 4900);
    /* The private directory was created 0700. */
    struct stat st;
    assert_int_equal(stat(g_export, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    /* Named parameters, nested and typed columns, a trailing comment and semicolons. */
    export_and_compare("SELECT id, l, s, mp, d, ts, v, big FROM t WHERE id <> $skip -- done ;\n ;;",
                       "{\"skip\": 2}",
                       "SELECT id, l, s, mp, d, ts, v, big FROM fx.t WHERE id <> 2", 3);
    /* ENUM comes back as its strings. */
    export_and_compare("SELECT id, m FROM t", NULL, "SELECT id, m::VARCHAR AS m FROM fx.t", 4);
    trusted_close();
}

typedef struct refusal {
    const char *sql;
    const char *params;
} refusal_t;

static void test_export_refusals(void **state)
{
    (void)state;
    char outside[400], csv_sql[600];
    snprintf(outside, sizeof outside, "%s/escaped.csv", g_dir);
    snprintf(csv_sql, sizeof csv_sql, "SELECT 1) TO '%s' (FORMAT CSV); --", outside);
    bool had_tmp_x = access("/tmp/x.csv", F_OK) == 0;
    const refusal_t cases[] = {
        {"SELECT * FROM read_text('/etc/passwd')", NULL},
        {"SELECT * FROM '/etc/passwd'", NULL},
        {"CREATE TABLE w AS SELECT 1", NULL},
        {"INSERT INTO nums VALUES (1, 2, 'x', 1.0)", NULL},
        {"SELECT 1; SELECT 2", NULL},
        {"SELECT 1) TO '/tmp/x.csv' (FORMAT CSV); --", NULL},
        {csv_sql, NULL},
        {"COPY nums TO '/tmp/x.csv'", NULL},
        {"SELECT $1", NULL},
        {"SELECT $1", "[1, 2]"},
        {"SELECT $a", "[1]"},
        {"SELECT nosuchcol FROM nums", NULL},
        {"", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        dg_db_query_t q = query(cases[i].sql, cases[i].params);
        dg_error_t e1, e2;
        dg_error_clear(&e1);
        dg_error_clear(&e2);
        dg_db_cursor_t *c = NULL;
        dg_rc_t want = dg_db_query_start(g_db, &q, &c, &e1);
        assert_null(c);
        assert_int_not_equal(want, DG_OK);
        int fd = 7;
        uint64_t size = 7;
        dg_rc_t got = dg_db_export_parquet(g_db, &q, g_export, 0, &fd, &size, &e2);
        if (got != want) {
            fprintf(stderr, "case %zu: %s\n  export %s (%s), query_start %s (%s)\n", i,
                    cases[i].sql, dg_rc_name(got), e2.msg, dg_rc_name(want), e1.msg);
        }
        assert_int_equal(got, want);
        assert_int_equal(fd, -1);
        assert_int_equal(size, 0);
        assert_int_equal(dir_entries(g_export) > 0, 0);
    }
    assert_int_equal(access(outside, F_OK), -1);
    assert_int_equal(access("/tmp/x.csv", F_OK) == 0, had_tmp_x);

    /* Accepted by the serving sandbox, but no longer valid once wrapped: fail closed. */
    dg_db_query_t q = query("SELECT 1; -- tail", NULL);
    dg_error_t err;
    dg_error_clear(&err);
    int fd = -1;
    uint64_t size = 0;
    dg_rc_t rc = dg_db_export_parquet(g_db, &q, g_export, 0, &fd, &size, &err);
    /* The trailing comment after ';' keeps the ';' from being stripped, so the wrapped text no
     * longer parses: refused rather than guessed at. */
    assert_int_equal(rc, DG_SQL_ERROR);
    assert_int_equal(fd, -1);
    assert_int_equal(dir_entries(g_export) > 0, 0);

    /* One export directory per database. */
    char other[400];
    snprintf(other, sizeof other, "%s/other-export", g_dir);
    q = query("SELECT 1", NULL);
    dg_error_clear(&err);
    assert_int_equal(dg_db_export_parquet(g_db, &q, other, 0, &fd, &size, &err), DG_CONFIG);
    dg_error_clear(&err);
    assert_int_equal(dg_db_export_parquet(g_db, &q, "relative/dir", 0, &fd, &size, &err),
                     DG_CONFIG);
}

/* The export instance itself: writes only inside its directory, reads no files, and its
 * settings cannot be loosened. */
static void test_export_instance_locked(void **state)
{
    (void)state;
    dg_db_query_t q = query("SELECT 1 AS one", NULL);
    dg_error_t err;
    dg_error_clear(&err);
    int fd = -1;
    uint64_t size = 0;
    assert_int_equal(dg_db_export_parquet(g_db, &q, g_export, 0, &fd, &size, &err), DG_OK);
    close(fd);
    assert_non_null(g_db->export_inst);
    duckdb_connection con;
    assert_int_equal(duckdb_connect(g_db->export_inst, &con), DuckDBSuccess);
    char outside[400], inside[400];
    snprintf(outside, sizeof outside, "%s/outside.parquet", g_dir);
    snprintf(inside, sizeof inside, "%s/inside.parquet", g_db->export_dir);
    char sql_out[600], sql_in[600], sql_sib[600];
    snprintf(sql_out, sizeof sql_out, "COPY (SELECT 1) TO '%s' (FORMAT PARQUET)", outside);
    snprintf(sql_in, sizeof sql_in, "COPY (SELECT 1) TO '%s' (FORMAT PARQUET)", inside);
    snprintf(sql_sib, sizeof sql_sib, "COPY (SELECT 1) TO '%s-evil.parquet' (FORMAT PARQUET)",
             g_db->export_dir);
    const char *refused[] = {
        "SELECT * FROM read_text('/etc/passwd')",
        sql_out,
        sql_sib,
        "SET enable_external_access=true",
        "SET allowed_directories=['/']",
        "SET lock_configuration=false",
        "INSERT INTO nums VALUES (1, 2, 'x', 1.0)",
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        duckdb_result res;
        duckdb_state st = duckdb_query(con, refused[i], &res);
        if (st == DuckDBSuccess) {
            fprintf(stderr, "export instance allowed: %s\n", refused[i]);
        }
        duckdb_destroy_result(&res);
        assert_int_equal(st, DuckDBError);
    }
    assert_int_equal(access(outside, F_OK), -1);
    duckdb_result res;
    assert_int_equal(duckdb_query(con, sql_in, &res), DuckDBSuccess);
    duckdb_destroy_result(&res);
    assert_int_equal(unlink(inside), 0);
    duckdb_disconnect(&con);
}

static void test_export_too_large(void **state)
{
    (void)state;
    /* Incompressible rows in several row groups: the file passes the cap while it is written. */
    dg_db_query_t q = query(
        "SELECT i, md5(i::VARCHAR) || md5((i + 1)::VARCHAR) AS h FROM range(3000000) r(i)", NULL);
    dg_error_t err;
    dg_error_clear(&err);
    int fd = 7;
    uint64_t size = 7;
    double t0 = now_s();
    assert_int_equal(dg_db_export_parquet(g_db, &q, g_export, 200000, &fd, &size, &err),
                     DG_RESULT_TOO_LARGE);
    fprintf(stderr, "too large after %.2f s: %s\n", now_s() - t0, err.msg);
    assert_int_equal(fd, -1);
    assert_int_equal(dir_entries(g_export), 0);
    /* A small result under a small cap still works. */
    q = query("SELECT 42 AS answer", NULL);
    dg_error_clear(&err);
    assert_int_equal(dg_db_export_parquet(g_db, &q, g_export, 200000, &fd, &size, &err), DG_OK);
    assert_true(size > 0 && size <= 200000);
    close(fd);
    assert_int_equal(dir_entries(g_export), 0);
}

typedef struct intr_ctx {
    _Atomic int *cell;
    dg_rc_t reason;
    int delay_ms;
} intr_ctx_t;

static void *interrupter(void *arg)
{
    intr_ctx_t *ctx = arg;
    sleep_ms(ctx->delay_ms);
    atomic_store(ctx->cell, (int)ctx->reason);
    return NULL;
}

static void run_interrupted(const char *sql, dg_rc_t reason)
{
    _Atomic int cell = 0;
    intr_ctx_t ctx = {.cell = &cell, .reason = reason, .delay_ms = 300};
    dg_db_query_t q = query(sql, NULL);
    q.interrupt = &cell;
    dg_error_t err;
    dg_error_clear(&err);
    int fd = 7;
    uint64_t size = 7;
    pthread_t th;
    double t0 = now_s();
    assert_int_equal(pthread_create(&th, NULL, interrupter, &ctx), 0);
    dg_rc_t rc = dg_db_export_parquet(g_db, &q, g_export, 0, &fd, &size, &err);
    double dt = now_s() - t0;
    pthread_join(th, NULL);
    assert_int_equal(rc, reason);
    assert_int_equal(fd, -1);
    assert_true(dt < 1.5);
    assert_int_equal(dir_entries(g_export), 0);
}

static void test_export_interrupt(void **state)
{
    (void)state;
    /* A blocking aggregate: nothing written yet when the interrupt comes. */
    run_interrupted("SELECT count(*) FROM range(1000000) a, range(1000000) b", DG_TIMEOUT);
    /* A long write: a partial file exists when the interrupt comes and must go. */
    run_interrupted("SELECT i, md5(i::VARCHAR) AS h FROM range(10000000000) r(i)", DG_CANCELLED);
}

typedef struct conc_ctx {
    dg_db_t *db;
    int idx;
    dg_rc_t rc;
    uint64_t size;
} conc_ctx_t;

static void *conc_export(void *arg)
{
    conc_ctx_t *ctx = arg;
    char params[32];
    snprintf(params, sizeof params, "[%d]", ctx->idx * 1000);
    dg_db_query_t q = query("SELECT * FROM nums WHERE i >= $1", params);
    dg_error_t err;
    dg_error_clear(&err);
    int fd = -1;
    ctx->rc = dg_db_export_parquet(ctx->db, &q, g_export, 0, &fd, &ctx->size, &err);
    if (fd >= 0) {
        close(fd);
    }
    return NULL;
}

static void test_export_concurrent(void **state)
{
    (void)state;
    /* A fresh dg_db_t, so that the threads race for the lazy open of its export instance. */
    dg_db_t *db = NULL;
    dg_error_t err;
    assert_int_equal(open_db(g_path, true, NULL, &db, &err), DG_OK);
    conc_ctx_t ctx[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        ctx[i] = (conc_ctx_t){.db = db, .idx = i};
        assert_int_equal(pthread_create(&th[i], NULL, conc_export, &ctx[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(ctx[i].rc, DG_OK);
        assert_true(ctx[i].size > 0);
    }
    /* Fewer rows, smaller file. */
    assert_true(ctx[3].size < ctx[0].size);
    assert_int_equal(dir_entries(g_export), 0);
    dg_db_close(db);
}

static void test_export_read_write_refused(void **state)
{
    (void)state;
    char path[400];
    snprintf(path, sizeof path, "%s/rw.duckdb", g_dir);
    dg_db_t *rw = NULL;
    dg_error_t err;
    assert_int_equal(open_db(path, false, NULL, &rw, &err), DG_OK);
    dg_db_query_t q = query("SELECT 1", NULL);
    int fd = 7;
    uint64_t size = 0;
    dg_error_clear(&err);
    assert_int_equal(dg_db_export_parquet(rw, &q, g_export, 0, &fd, &size, &err),
                     DG_NOT_ACCEPTABLE);
    assert_int_equal(fd, -1);
    dg_db_close(rw);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arrow_types),       cmocka_unit_test(test_arrow_batches),
        cmocka_unit_test(test_arrow_interrupt),   cmocka_unit_test(test_export_roundtrip),
        cmocka_unit_test(test_export_refusals),   cmocka_unit_test(test_export_instance_locked),
        cmocka_unit_test(test_export_too_large),  cmocka_unit_test(test_export_interrupt),
        cmocka_unit_test(test_export_concurrent), cmocka_unit_test(test_export_read_write_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
