/* DuckDB's own streaming speed, the limit the streaming benchmark compares duckgate against
 * (DESIGN §12). Built and run by bench/stream/run.sh, never by the test suite.
 *
 *   duckdb_baseline DB MODE RUNS [THREADS]
 *   duckdb_baseline DB - 0 [THREADS]      reads one MODE per line from stdin, answers each
 *
 * The second form keeps one warm instance while run.sh interleaves these runs with the HTTP
 * runs, so that a noisy machine slows both sides of every ratio alike.
 * MODE: copy-json | copy-csv | copy-parquet: COPY (SELECT * FROM t) TO '/dev/null' (FORMAT ...);
 *       copy-parquet-zstd: the same with COMPRESSION ZSTD (what duckgate's Parquet uses);
 *       fetch: a streaming SELECT * FROM t whose chunks are fetched and dropped (the Arrow
 *       baseline: the least any encoder can cost).
 * Prints one line per run: "MODE seconds rows". The database is opened READ_ONLY with the
 * given thread count (default 1, what an engine slot uses by default on this machine). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "duckdb.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int fail(const char *what, const char *msg)
{
    fprintf(stderr, "duckdb_baseline: %s: %s\n", what, msg ? msg : "failed");
    return 1;
}

static int run_copy(duckdb_connection con, const char *fmt, uint64_t *out_rows)
{
    char sql[256];
    /* parquet-zstd: the codec duckgate's Parquet responses use (DuckDB's default is snappy). */
    snprintf(sql, sizeof sql, "COPY (SELECT * FROM t) TO '/dev/null' (FORMAT %s)",
             strcmp(fmt, "parquet-zstd") == 0 ? "PARQUET, COMPRESSION ZSTD" : fmt);
    duckdb_result res;
    if (duckdb_query(con, sql, &res) != DuckDBSuccess) {
        int rc = fail(sql, duckdb_result_error(&res));
        duckdb_destroy_result(&res);
        return rc;
    }
    *out_rows = (uint64_t)duckdb_rows_changed(&res);
    duckdb_destroy_result(&res);
    return 0;
}

static int run_fetch(duckdb_connection con, uint64_t *out_rows)
{
    duckdb_prepared_statement st = NULL;
    duckdb_pending_result pend = NULL;
    duckdb_result res;
    int rc = 0;
    bool has_res = false;
    *out_rows = 0;
    if (duckdb_prepare(con, "SELECT * FROM t", &st) != DuckDBSuccess) {
        rc = fail("prepare", duckdb_prepare_error(st));
        goto out;
    }
    if (duckdb_pending_prepared_streaming(st, &pend) != DuckDBSuccess) {
        rc = fail("pending", duckdb_pending_error(pend));
        goto out;
    }
    if (duckdb_execute_pending(pend, &res) != DuckDBSuccess) {
        has_res = true;
        rc = fail("execute", duckdb_result_error(&res));
        goto out;
    }
    has_res = true;
    for (;;) {
        duckdb_data_chunk ch = duckdb_fetch_chunk(res);
        if (!ch) {
            break;
        }
        *out_rows += (uint64_t)duckdb_data_chunk_get_size(ch);
        duckdb_destroy_data_chunk(&ch);
    }
    if (duckdb_result_error(&res)) {
        rc = fail("fetch", duckdb_result_error(&res));
    }
out:
    if (has_res) {
        duckdb_destroy_result(&res);
    }
    duckdb_destroy_pending(&pend);
    duckdb_destroy_prepare(&st);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: duckdb_baseline DB copy-json|copy-csv|copy-parquet|fetch RUNS "
                        "[THREADS]\n");
        return 2;
    }
    const char *path = argv[1], *mode = argv[2];
    long runs = strtol(argv[3], NULL, 10);
    const char *threads = argc > 4 ? argv[4] : "1";
    if (strcmp(mode, "-") != 0 && (runs < 1 || runs > 100)) {
        return fail("RUNS", "expected 1..100");
    }
    duckdb_config cfg = NULL;
    duckdb_database db = NULL;
    duckdb_connection con = NULL;
    char *err = NULL;
    int rc = 0;
    duckdb_create_config(&cfg);
    duckdb_set_config(cfg, "access_mode", "READ_ONLY");
    duckdb_set_config(cfg, "threads", threads);
    if (duckdb_open_ext(path, &db, cfg, &err) != DuckDBSuccess) {
        rc = fail(path, err);
        duckdb_free(err);
        goto out;
    }
    if (duckdb_connect(db, &con) != DuckDBSuccess) {
        rc = fail("connect", NULL);
        goto out;
    }
    if (strcmp(mode, "-") == 0) {
        /* Interactive: bounded by the input; one answer line per mode line. */
        char line[64];
        while (rc == 0 && fgets(line, sizeof line, stdin)) {
            line[strcspn(line, "\r\n")] = '\0';
            uint64_t rows = 0;
            double t0 = now_s();
            if (strcmp(line, "fetch") == 0) {
                rc = run_fetch(con, &rows);
            } else if (strncmp(line, "copy-", 5) == 0) {
                rc = run_copy(con, line + 5, &rows);
            } else {
                rc = fail(line, "unknown mode");
            }
            printf("%s %.6f %llu\n", line, rc == 0 ? now_s() - t0 : -1.0,
                   (unsigned long long)rows);
            fflush(stdout);
        }
        goto out;
    }
    for (long i = 0; i < runs && rc == 0; i++) {
        uint64_t rows = 0;
        double t0 = now_s();
        if (strcmp(mode, "fetch") == 0) {
            rc = run_fetch(con, &rows);
        } else if (strncmp(mode, "copy-", 5) == 0) {
            rc = run_copy(con, mode + 5, &rows);
        } else {
            rc = fail(mode, "unknown mode");
        }
        if (rc == 0) {
            printf("%s %.6f %llu\n", mode, now_s() - t0, (unsigned long long)rows);
            fflush(stdout);
        }
    }
out:
    duckdb_disconnect(&con);
    duckdb_close(&db);
    duckdb_destroy_config(&cfg);
    return rc;
}
