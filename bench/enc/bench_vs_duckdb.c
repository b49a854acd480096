/* Compares our encoders with DuckDB's own writers on the same query (not part of any suite).
 *
 * For a generated 7-column result (BIGINT, INTEGER, DOUBLE, VARCHAR, DATE, TIMESTAMP,
 * DECIMAL(18,3)), materialised once into a table, it measures `SELECT * FROM t` with threads=1,
 * process CPU time, median of 5 runs:
 *   exec    fetching every chunk through the C API and doing nothing with it;
 *   ours    fetching every chunk and encoding it (JSON, CSV), output drained per chunk;
 *   duckdb  COPY (query) TO '/dev/null' (FORMAT JSON | CSV).
 * The encode cost of each side is its time minus `exec`; the ratio is what DESIGN §12 asks for.
 * The chunk -> dg_batch_t mapping here is a minimal stand-in for src/db (flat vectors only).
 *
 * Build from the repository root after building dg_enc in build-release:
 *   cc -O2 -std=c11 -include src/core/dg_feat.h -Isrc -Ithird_party/duckdb/include \
 *      bench/enc/bench_vs_duckdb.c build-release/src/enc/libdg_enc.a \
 *      build-release/src/core/libdg_core.a -Lthird_party/duckdb/lib -lduckdb -lm \
 *      -Wl,-rpath,$PWD/third_party/duckdb/lib -o /tmp/bench_vs_duckdb
 *   /tmp/bench_vs_duckdb [rows] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <duckdb.h>

#include "enc/enc.h"

static double now_s(void)
{
    struct timespec ts;
    /* CPU time of the process: the machine is shared, and with threads=1 this is the cost. */
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static const dg_type_t t_i64 = {.id = DG_TYPE_BIGINT, .name = "BIGINT"};
static const dg_type_t t_i32 = {.id = DG_TYPE_INTEGER, .name = "INTEGER"};
static const dg_type_t t_f64 = {.id = DG_TYPE_DOUBLE, .name = "DOUBLE"};
static const dg_type_t t_str = {.id = DG_TYPE_VARCHAR, .name = "VARCHAR"};
static const dg_type_t t_date = {.id = DG_TYPE_DATE, .name = "DATE"};
static const dg_type_t t_ts = {.id = DG_TYPE_TIMESTAMP, .name = "TIMESTAMP"};
static const dg_type_t t_dec = {.id = DG_TYPE_DECIMAL, .name = "DECIMAL(18,3)", .width = 18,
                                .scale = 3, .storage = DG_TYPE_BIGINT};
static const dg_type_t *const types[] = {&t_i64, &t_i32, &t_f64, &t_str, &t_date, &t_ts, &t_dec};
static const char *const names[] = {"id", "year", "rating", "title", "born", "updated", "amount"};

static const char sql[] = "SELECT * FROM t";

/* mode: 0 = fetch only, 1 = encode JSON, 2 = encode CSV. Returns bytes encoded. */
static unsigned long long run_fetch(duckdb_connection con, int mode)
{
    duckdb_result res;
    if (duckdb_query(con, sql, &res) == DuckDBError) {
        fprintf(stderr, "query: %s\n", duckdb_result_error(&res));
        exit(1);
    }
    dg_schema_t schema = {.n_cols = 7, .names = names, .types = types};
    dg_enc_t *e = NULL;
    dg_buf_t out;
    dg_buf_init(&out, 0);
    unsigned long long bytes = 0;
    if (mode) {
        dg_enc_new(mode == 1 ? DG_FMT_JSON : DG_FMT_CSV, &schema, NULL, &e);
        dg_enc_begin(e, &out);
    }
    for (;;) {
        duckdb_data_chunk chunk = duckdb_fetch_chunk(res);
        if (!chunk) {
            break;
        }
        idx_t n = duckdb_data_chunk_get_size(chunk);
        dg_vec_t cols[7];
        for (idx_t c = 0; c < 7; c++) {
            duckdb_vector v = duckdb_data_chunk_get_vector(chunk, c);
            cols[c] = (dg_vec_t){.type = types[c], .data = duckdb_vector_get_data(v),
                                 .validity = duckdb_vector_get_validity(v)};
        }
        dg_batch_t b = {.n_rows = n, .n_cols = 7, .cols = cols};
        if (mode) {
            dg_enc_batch(e, &b, n, &out);
            bytes += out.len;
            dg_buf_reset(&out);
        }
        duckdb_destroy_data_chunk(&chunk);
    }
    if (mode) {
        dg_enc_summary_t sum = {0};
        dg_enc_end(e, &sum, &out);
        bytes += out.len;
        dg_enc_free(e);
    }
    dg_buf_free(&out);
    duckdb_destroy_result(&res);
    return bytes;
}

static void run_copy(duckdb_connection con, const char *fmt)
{
    char q[1400];
    snprintf(q, sizeof q, "COPY (%s) TO '/dev/null' (FORMAT %s)", sql, fmt);
    if (duckdb_query(con, q, NULL) == DuckDBError) {
        fprintf(stderr, "copy failed\n");
        exit(1);
    }
}

int main(int argc, char **argv)
{
    long long rows = argc > 1 ? strtoll(argv[1], NULL, 10) : 10000000;
    char gen[1024];
    snprintf(gen, sizeof gen,
             "CREATE TABLE t AS SELECT i AS id, (1900 + i %% 125)::INTEGER AS year, (i %% 100) / 10.0 + 0.05 AS "
             "rating, 'Title number ' || (i %% 997) || ' of ' || i AS title, DATE '1901-08-13' + "
             "(i %% 40000)::INTEGER AS born, TIMESTAMP '2020-09-13 12:26:40' + to_microseconds(i "
             "* 7919) AS updated, (((i * 31) %% 100000000) - 50000000)::DECIMAL(18,0) / 1000 ::"
             "DECIMAL(18,3) AS amount FROM range(%lld) t(i)",
             rows);
    duckdb_database db;
    duckdb_connection con;
    if (duckdb_open(NULL, &db) == DuckDBError || duckdb_connect(db, &con) == DuckDBError) {
        return 1;
    }
    duckdb_query(con, "SET threads=1", NULL);
    duckdb_query(con, "SET preserve_insertion_order=true", NULL);
    if (duckdb_query(con, gen, NULL) == DuckDBError) {
        fprintf(stderr, "could not create the table\n");
        return 1;
    }
    const char *labels[] = {"exec (fetch only)", "ours JSON", "ours CSV", "duckdb COPY JSON",
                            "duckdb COPY CSV"};
    double med[5];
    unsigned long long bytes[5] = {0};
    for (int k = 0; k < 5; k++) {
        double t[5];
        for (int r = 0; r < 5; r++) {
            double t0 = now_s();
            if (k < 3) {
                bytes[k] = run_fetch(con, k);
            } else {
                run_copy(con, k == 3 ? "JSON" : "CSV");
            }
            t[r] = now_s() - t0;
        }
        qsort(t, 5, sizeof t[0], cmp_double);
        med[k] = t[2];
        printf("%-18s %.3f s", labels[k], med[k]);
        if (bytes[k]) {
            printf("  %.1f MB", (double)bytes[k] / 1e6);
        }
        printf("\n");
    }
    double ours_json = med[1] - med[0], ours_csv = med[2] - med[0];
    double duck_json = med[3] - med[0], duck_csv = med[4] - med[0];
    printf("encode cost: ours JSON %.3f s (%.0f MB/s), DuckDB JSON %.3f s -> %.1fx\n", ours_json,
           (double)bytes[1] / 1e6 / ours_json, duck_json, duck_json / ours_json);
    printf("encode cost: ours CSV  %.3f s (%.0f MB/s), DuckDB CSV  %.3f s -> %.1fx\n", ours_csv,
           (double)bytes[2] / 1e6 / ours_csv, duck_csv, duck_csv / ours_csv);
    duckdb_disconnect(&con);
    duckdb_close(&db);
    return 0;
}
