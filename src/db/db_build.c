/* Trusted instances for the data tools (db_build.h): open read-write with every core, run a
 * script statement by statement through pending results so the caller sees DuckDB's progress.
 *
 * Why pending results: duckdb_query blocks until the statement is done and reports nothing;
 * driving the pending result ourselves (one task at a time, the other DuckDB threads working in
 * parallel) lets this thread poll duckdb_query_progress between tasks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/dgtime.h"
#include "db/db_build.h"
#include "db/db_internal.h"

#define PROGRESS_EVERY_MS 100

struct dg_db_build {
    duckdb_database inst;
    duckdb_connection con;
};

dg_rc_t dg_db_build_open(const dg_db_build_opts_t *opts, dg_db_build_t **out, dg_error_t *err)
{
    dg_rc_t rc = DG_OK;
    dg_db_build_t *b = calloc(1, sizeof *b);

    *out = NULL;
    if (!b) {
        return dg_error_set(err, DG_NOMEM, "out of memory");
    }
    if (!opts->path || !opts->path[0]) {
        rc = dg_error_set(err, DG_IO, "no database path");
        goto out;
    }
    /* Read-write with every core and DuckDB's spill defaults unless told otherwise. */
    dg_db__settings_t settings = {
        .memory_limit = opts->memory_limit,
        .temp_dir = opts->temp_dir && opts->temp_dir[0] ? opts->temp_dir : NULL,
        .threads = opts->threads,
        .has_external_access = opts->has_external_access,
    };
    rc = dg_db__instance_open(NULL, opts->path, &settings, NULL, &b->inst, err);
    if (rc != DG_OK) {
        goto out;
    }
    if (duckdb_connect(b->inst, &b->con) != DuckDBSuccess) {
        b->con = NULL;
        rc = dg_error_set(err, DG_INTERNAL, "could not connect to the database");
        goto out;
    }
    /* DuckDB computes query progress only with its progress bar on (a session setting); we
     * print our own bar, so DuckDB's is kept silent. */
    duckdb_result res;
    if (duckdb_query(b->con,
                     "SET enable_progress_bar = true; SET enable_progress_bar_print = false; "
                     "SET progress_bar_time = 0",
                     &res) != DuckDBSuccess) {
        rc = dg_error_set(err, DG_CONFIG, "could not enable query progress: %s",
                          duckdb_result_error(&res));
    }
    duckdb_destroy_result(&res);
out:
    if (rc != DG_OK) {
        dg_db_build_close(b);
        return rc;
    }
    *out = b;
    return DG_OK;
}

void dg_db_build_close(dg_db_build_t *b)
{
    if (!b) {
        return;
    }
    if (b->con) {
        duckdb_disconnect(&b->con);
    }
    if (b->inst) {
        duckdb_close(&b->inst);
    }
    free(b);
}

static void report(dg_db_build_t *b, dg_db_progress_fn fn, void *ctx, int stmt, int n_stmt,
                   bool is_final)
{
    if (!fn) {
        return;
    }
    dg_db_progress_t p = {.percent = -1, .statement = stmt, .n_statements = n_stmt};
    duckdb_query_progress_type q = duckdb_query_progress(b->con);
    if (q.percentage >= 0) {
        p.percent = q.percentage > 100 ? 100 : q.percentage;
        p.rows_done = q.rows_processed;
        p.rows_total = q.total_rows_to_process;
    }
    if (is_final) {
        p.percent = 100;
    }
    fn(&p, ctx);
}

/* Rows written by a finished statement: DuckDB reports INSERT/UPDATE/DELETE through
 * rows_changed, CREATE TABLE AS through a one-row "Count" result. */
static uint64_t result_rows(duckdb_result *res)
{
    uint64_t n = (uint64_t)duckdb_rows_changed(res);
    if (n == 0 && duckdb_column_count(res) == 1 &&
        strcmp(duckdb_column_name(res, 0), "Count") == 0) {
        duckdb_data_chunk chunk = duckdb_fetch_chunk(*res);
        if (chunk) {
            duckdb_vector v = duckdb_data_chunk_get_vector(chunk, 0);
            duckdb_logical_type lt = duckdb_column_logical_type(res, 0);
            if (duckdb_data_chunk_get_size(chunk) == 1 &&
                duckdb_get_type_id(lt) == DUCKDB_TYPE_BIGINT) {
                n = (uint64_t)((const int64_t *)duckdb_vector_get_data(v))[0];
            }
            duckdb_destroy_logical_type(&lt);
            duckdb_destroy_data_chunk(&chunk);
        }
    }
    return n;
}

/* Executes one prepared statement through a pending result, reporting progress. On success
 * *res holds the materialized result (the caller destroys it). */
static dg_rc_t run_one(dg_db_build_t *b, duckdb_prepared_statement ps, dg_db_progress_fn fn,
                       void *ctx, int stmt, int n_stmt, duckdb_result *res, bool *has_res,
                       dg_error_t *err)
{
    duckdb_pending_result pending = NULL;
    dg_rc_t rc = DG_OK;
    if (duckdb_pending_prepared(ps, &pending) != DuckDBSuccess) {
        rc = dg_db__error(NULL, -1, duckdb_pending_error(pending), 0, err);
        goto out;
    }
    int64_t last = dg_now_ms();
    for (;;) {
        duckdb_pending_state st = duckdb_pending_execute_task(pending);
        if (st == DUCKDB_PENDING_RESULT_READY) {
            break;
        }
        if (st == DUCKDB_PENDING_ERROR) {
            rc = dg_db__error(NULL, -1, duckdb_pending_error(pending), 0, err);
            goto out;
        }
        if (st == DUCKDB_PENDING_NO_TASKS_AVAILABLE) {
            /* The other threads hold the work: wait a little instead of spinning. */
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
        int64_t now = dg_now_ms();
        if (now - last >= PROGRESS_EVERY_MS) {
            last = now;
            report(b, fn, ctx, stmt, n_stmt, false);
        }
    }
    *has_res = true;
    if (duckdb_execute_pending(pending, res) != DuckDBSuccess) {
        rc = dg_db__error(NULL, (int)duckdb_result_error_type(res), duckdb_result_error(res), 0,
                          err);
        goto out;
    }
    report(b, fn, ctx, stmt, n_stmt, true);
out:
    if (pending) {
        duckdb_destroy_pending(&pending);
    }
    return rc;
}

dg_rc_t dg_db_build_run(dg_db_build_t *b, const char *sql, dg_db_progress_fn fn, void *ctx,
                        uint64_t *out_rows, dg_error_t *err)
{
    duckdb_extracted_statements stmts = NULL;
    dg_rc_t rc = DG_OK;
    uint64_t rows = 0;

    if (out_rows) {
        *out_rows = 0;
    }
    if (!sql) {
        return dg_error_set(err, DG_SQL_ERROR, "no SQL");
    }
    idx_t n = duckdb_extract_statements(b->con, sql, &stmts);
    if (n == 0) {
        const char *msg = duckdb_extract_statements_error(stmts);
        if (msg) {
            rc = dg_db__error(NULL, -1, msg, 0, err);
        }
        goto out; /* an empty script (only comments) is fine */
    }
    for (idx_t i = 0; i < n && rc == DG_OK; i++) {
        duckdb_prepared_statement ps = NULL;
        duckdb_result res;
        bool has_res = false;
        dg_error_t one;
        dg_error_clear(&one);
        if (duckdb_prepare_extracted_statement(b->con, stmts, i, &ps) != DuckDBSuccess) {
            rc = dg_db__error(NULL, -1, duckdb_prepare_error(ps), 0, &one);
        } else {
            rc = run_one(b, ps, fn, ctx, (int)i + 1, (int)n, &res, &has_res, &one);
        }
        if (rc == DG_OK) {
            rows += result_rows(&res);
        } else if (n > 1) {
            dg_error_set(err, rc, "statement %d of %d: %s", (int)i + 1, (int)n, one.msg);
        } else {
            dg_error_set(err, rc, "%s", one.msg);
        }
        if (has_res) {
            duckdb_destroy_result(&res);
        }
        if (ps) {
            duckdb_destroy_prepare(&ps);
        }
    }
out:
    if (stmts) {
        duckdb_destroy_extracted(&stmts);
    }
    if (out_rows && rc == DG_OK) {
        *out_rows = rows;
    }
    return rc;
}
