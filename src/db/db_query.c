/* Running one query: sandbox layers 3-4 (one statement, SELECT only, a fresh connection), the
 * parameters (bound, never spliced), streaming execution and the chunk -> dg_batch_t mapping.
 *
 * A cursor is confined to the thread that started it, except dg_db_cursor_interrupt and
 * dg_db_cursor_progress, which only touch the atomic reason and the connection handle
 * (duckdb_interrupt and duckdb_query_progress are safe to call while another thread executes on
 * the same connection). */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "db/db_internal.h"

/* struct dg_db_cursor is in db_internal.h: db_arrow.c and db_export.c use it too. */

/* The only call of the deprecated streaming entry point (STYLE.md: exactly one wrapper). It is
 * the one way in 1.4 to get a result whose chunks are produced as they are fetched. */
duckdb_state dg_db__pending_streaming(duckdb_prepared_statement ps, duckdb_pending_result *out)
{
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    return duckdb_pending_prepared_streaming(ps, out);
#pragma GCC diagnostic pop
}

/* ---- parameters ---- */

static dg_rc_t bind_one(duckdb_prepared_statement ps, idx_t idx, const char *label, const json_t *v,
                        dg_error_t *err)
{
    duckdb_state st;
    switch (json_typeof(v)) {
    case JSON_INTEGER:
        st = duckdb_bind_int64(ps, idx, (int64_t)json_integer_value(v));
        break;
    case JSON_REAL:
        st = duckdb_bind_double(ps, idx, json_real_value(v));
        break;
    case JSON_STRING:
        st = duckdb_bind_varchar_length(ps, idx, json_string_value(v), json_string_length(v));
        break;
    case JSON_TRUE:
    case JSON_FALSE:
        st = duckdb_bind_boolean(ps, idx, json_is_true(v));
        break;
    case JSON_NULL:
        st = duckdb_bind_null(ps, idx);
        break;
    default:
        return dg_error_set(err, DG_BAD_PARAMS,
                            "parameter %s: arrays and objects are not supported as values", label);
    }
    if (st != DuckDBSuccess) {
        return dg_error_set(err, DG_BAD_PARAMS, "parameter %s could not be bound", label);
    }
    return DG_OK;
}

/* True when the prepared statement's parameters are positional ($1, ?), false when named. */
static bool params_positional(duckdb_prepared_statement ps, idx_t np)
{
    for (idx_t i = 1; i <= np; i++) {
        const char *name = duckdb_parameter_name(ps, i);
        bool digits = name && name[0];
        for (const char *p = name; digits && *p; p++) {
            digits = *p >= '0' && *p <= '9';
        }
        duckdb_free((void *)(uintptr_t)name);
        if (!digits) {
            return false;
        }
    }
    return true;
}

dg_rc_t dg_db__bind_params(duckdb_prepared_statement ps, const dg_db_query_t *q, dg_error_t *err)
{
    if (q->param_types && q->param_types_len > 0) {
        return dg_db__bind_typed(ps, q, err); /* named queries: declared types (db_named.c) */
    }
    idx_t np = duckdb_nparams(ps);
    json_error_t jerr;
    json_t *root = NULL;
    dg_rc_t rc = DG_OK;
    char label[80];

    if (!q->params_json || q->params_len == 0) {
        if (np > 0) {
            return dg_error_set(err, DG_BAD_PARAMS,
                                "the query has %llu parameter(s) but none were given",
                                (unsigned long long)np);
        }
        return DG_OK;
    }
    root = json_loadb(q->params_json, q->params_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        return dg_error_set(err, DG_BAD_PARAMS, "params are not valid JSON: %s", jerr.text);
    }
    if (json_is_array(root)) {
        size_t n = json_array_size(root);
        if (n != np) {
            rc = dg_error_set(err, DG_BAD_PARAMS,
                              "the query has %llu parameter(s) but %zu were given",
                              (unsigned long long)np, n);
            goto out;
        }
        if (np > 0 && !params_positional(ps, np)) {
            rc = dg_error_set(err, DG_BAD_PARAMS,
                              "the query uses named parameters: pass params as a JSON object");
            goto out;
        }
        for (size_t i = 0; i < n && rc == DG_OK; i++) {
            snprintf(label, sizeof label, "$%zu", i + 1);
            rc = bind_one(ps, (idx_t)i + 1, label, json_array_get(root, i), err);
        }
    } else if (json_is_object(root)) {
        size_t n = json_object_size(root);
        const char *key;
        json_t *val;
        if (np > 0 && params_positional(ps, np)) {
            rc = dg_error_set(err, DG_BAD_PARAMS,
                              "the query uses positional parameters: pass params as a JSON array");
            goto out;
        }
        json_object_foreach(root, key, val)
        {
            idx_t idx = 0;
            snprintf(label, sizeof label, "$%.60s", key);
            if (duckdb_bind_parameter_index(ps, &idx, key) != DuckDBSuccess || idx == 0) {
                rc = dg_error_set(err, DG_BAD_PARAMS, "the query has no parameter %s", label);
                goto out;
            }
            rc = bind_one(ps, idx, label, val, err);
            if (rc != DG_OK) {
                goto out;
            }
        }
        if (n != np) {
            rc = dg_error_set(err, DG_BAD_PARAMS,
                              "the query has %llu parameter(s) but %zu were given",
                              (unsigned long long)np, n);
        }
    } else {
        rc = dg_error_set(err, DG_BAD_PARAMS, "params must be a JSON array or object");
    }
out:
    json_decref(root);
    return rc;
}

/* ---- cursor ---- */

static int poll_reason(const dg_db_cursor_t *c, const _Atomic int *extern_reason)
{
    int r = atomic_load(&c->reason);
    if (!r && extern_reason) {
        r = atomic_load(extern_reason);
    }
    return r;
}

static dg_rc_t build_schema(dg_db_cursor_t *c)
{
    size_t n = (size_t)duckdb_column_count(&c->res);
    const char **names = dg_db__pool_alloc(&c->pool, n * sizeof *names);
    const dg_type_t **types = dg_db__pool_alloc(&c->pool, n * sizeof *types);
    c->cols = dg_db__pool_alloc(&c->pool, n * sizeof *c->cols);
    if (!names || !types || !c->cols) {
        return DG_NOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        const char *nm = duckdb_column_name(&c->res, i);
        duckdb_logical_type lt = duckdb_column_logical_type(&c->res, i);
        names[i] = dg_db__pool_strdup(&c->pool, nm ? nm : "");
        types[i] = lt ? dg_db__type_from_logical(&c->pool, lt) : NULL;
        if (lt) {
            duckdb_destroy_logical_type(&lt);
        }
        if (!names[i] || !types[i] || dg_db__vec_shell(&c->pool, &c->cols[i], types[i]) != DG_OK) {
            return DG_NOMEM;
        }
    }
    c->schema.n_cols = n;
    c->schema.names = names;
    c->schema.types = types;
    c->batch.n_cols = n;
    c->batch.cols = c->cols;
    return DG_OK;
}

/* Drives execution until the result is ready, polling the interrupt reasons between tasks and
 * reporting progress when the caller asked for it. */
static dg_rc_t run_pending(dg_db_cursor_t *c, const dg_db_query_t *q, dg_error_t *err)
{
    const _Atomic int *extern_reason = q->interrupt;
    for (;;) {
        int r = poll_reason(c, extern_reason);
        if (r) {
            duckdb_interrupt(c->con);
            return dg_error_set(err, (dg_rc_t)r, "%s", dg_rc_message((dg_rc_t)r));
        }
        if (q->on_progress) {
            q->on_progress(q->progress_ctx, dg_db_cursor_progress(c));
        }
        duckdb_pending_state st = duckdb_pending_execute_task(c->pending);
        if (st == DUCKDB_PENDING_RESULT_READY) {
            return DG_OK;
        }
        if (st == DUCKDB_PENDING_ERROR) {
            return dg_db__error(c->db, -1, duckdb_pending_error(c->pending),
                                poll_reason(c, extern_reason), err);
        }
        if (st == DUCKDB_PENDING_NO_TASKS_AVAILABLE) {
            /* Other threads hold the work; do not spin a core while they run. */
            struct timespec ts = {0, 100 * 1000};
            nanosleep(&ts, NULL);
        }
    }
}

static dg_rc_t check_sql_text(const dg_db_query_t *q, dg_error_t *err)
{
    if (!q->sql || q->sql_len == 0) {
        return dg_error_set(err, DG_SQL_ERROR, "the SQL holds no statement");
    }
    if (memchr(q->sql, '\0', q->sql_len)) {
        return dg_error_set(err, DG_SQL_ERROR, "the SQL contains a NUL byte");
    }
    return DG_OK;
}

/* Admin mode: a statement that is not a SELECT may change data (the caller bumps the data
 * version). Marked before it runs, so a failure half-way still counts. */
static void note_changes(duckdb_prepared_statement ps, const dg_db_query_t *q)
{
    if (q->mode == DG_DB_MODE_ADMIN && q->changes &&
        duckdb_prepared_statement_type(ps) != DUCKDB_STATEMENT_TYPE_SELECT) {
        *q->changes = true;
    }
}

/* Admin scripts: runs statements [0, n) of ext to completion on c's connection, discarding
 * their results, interruptible like the last statement. Parameters would be ambiguous across
 * statements, so a script takes none. */
static dg_rc_t run_script_head(dg_db_cursor_t *c, duckdb_extracted_statements ext, idx_t n,
                               const dg_db_query_t *q, dg_error_t *err)
{
    if (q->params_json && q->params_len > 0) {
        return dg_error_set(err, DG_BAD_PARAMS,
                            "parameters are only allowed with a single SQL statement");
    }
    dg_rc_t rc = DG_OK;
    for (idx_t i = 0; i < n && rc == DG_OK; i++) {
        duckdb_prepared_statement ps = NULL;
        duckdb_result res;
        bool has_res = false;
        if (duckdb_prepare_extracted_statement(c->con, ext, i, &ps) != DuckDBSuccess) {
            rc = dg_db__error(c->db, -1, duckdb_prepare_error(ps), 0, err);
        }
        if (rc == DG_OK) {
            note_changes(ps, q);
            if (duckdb_pending_prepared(ps, &c->pending) != DuckDBSuccess) {
                rc = dg_db__error(c->db, -1, duckdb_pending_error(c->pending), 0, err);
            }
        }
        if (rc == DG_OK) {
            rc = run_pending(c, q, err);
        }
        if (rc == DG_OK) {
            has_res = true;
            if (duckdb_execute_pending(c->pending, &res) != DuckDBSuccess) {
                rc = dg_db__error(c->db, (int)duckdb_result_error_type(&res),
                                  duckdb_result_error(&res), poll_reason(c, q->interrupt), err);
            }
        }
        if (has_res) {
            duckdb_destroy_result(&res);
        }
        if (c->pending) {
            duckdb_destroy_pending(&c->pending);
            c->pending = NULL;
        }
        duckdb_destroy_prepare(&ps);
    }
    return rc;
}

dg_rc_t dg_db__query_prepare(dg_db_t *db, const dg_db_query_t *q, bool untrusted,
                             dg_db_cursor_t **out, dg_error_t *err)
{
    dg_rc_t rc;
    char *sql = NULL;
    duckdb_extracted_statements ext = NULL;
    dg_db_cursor_t *c = NULL;

    *out = NULL;
    rc = check_sql_text(q, err);
    if (rc != DG_OK) {
        goto out;
    }
    sql = strndup(q->sql, q->sql_len);
    c = calloc(1, sizeof *c);
    if (!sql || !c) {
        rc = dg_error_set(err, DG_NOMEM, "out of memory");
        goto out;
    }
    c->db = db;
    atomic_init(&c->reason, 0);
    if (untrusted) {
        /* Layer 2: nothing reaches the binder before the parse tree has been checked. */
        bool is_volatile = true;
        rc = dg_db__sandbox_check_ex(db, q->sql, q->sql_len, &is_volatile, err);
        if (rc != DG_OK) {
            goto out;
        }
        c->is_deterministic = !is_volatile;
    }
    /* Layer 4: a fresh connection; session state (variables, temp objects, prepared statements)
     * dies with it. */
    if (duckdb_connect(db->inst, &c->con) != DuckDBSuccess) {
        c->con = NULL;
        rc = dg_error_set(err, DG_INTERNAL, "could not connect to the database");
        goto out;
    }
    if (q->on_progress) {
        /* DuckDB tracks query progress only with the progress bar on, a connection setting;
         * these pragmas set it (never printed) on this connection even with the configuration
         * locked. Only callers that report progress pay for the tracking. */
        static const char *const pragmas[] = {"PRAGMA enable_progress_bar",
                                              "PRAGMA disable_print_progress_bar"};
        for (size_t i = 0; i < 2 && rc == DG_OK; i++) {
            duckdb_result pr;
            if (duckdb_query(c->con, pragmas[i], &pr) != DuckDBSuccess) {
                rc = dg_error_set(err, DG_INTERNAL, "could not enable query progress");
            }
            duckdb_destroy_result(&pr);
        }
        if (rc != DG_OK) {
            goto out;
        }
    }
    if (untrusted && !db->read_only) {
        /* On a read-write instance, untrusted reads run in a read-only transaction; it is
         * rolled back when the connection closes. */
        duckdb_result tx;
        duckdb_state st = duckdb_query(c->con, "BEGIN TRANSACTION READ ONLY", &tx);
        duckdb_destroy_result(&tx);
        if (st != DuckDBSuccess) {
            rc = dg_error_set(err, DG_INTERNAL, "could not start a read-only transaction");
            goto out;
        }
    }
    /* Layer 3: exactly one statement, of type SELECT. */
    idx_t n = duckdb_extract_statements(c->con, sql, &ext);
    if (n == 0) {
        const char *e = ext ? duckdb_extract_statements_error(ext) : NULL;
        rc = e ? dg_db__error(db, -1, e, 0, err)
               : dg_error_set(err, DG_SQL_ERROR, "the SQL holds no statement");
        goto out;
    }
    if (n > 1 && untrusted) {
        rc = dg_error_set(err, DG_MULTIPLE_STATEMENTS, "exactly one SQL statement is allowed");
        goto out;
    }
    if (n > 1) {
        rc = run_script_head(c, ext, n - 1, q, err);
        if (rc != DG_OK) {
            goto out;
        }
    }
    if (duckdb_prepare_extracted_statement(c->con, ext, n - 1, &c->ps) != DuckDBSuccess) {
        rc = dg_db__error(db, -1, duckdb_prepare_error(c->ps), 0, err);
        goto out;
    }
    note_changes(c->ps, q);
    if (untrusted && duckdb_prepared_statement_type(c->ps) != DUCKDB_STATEMENT_TYPE_SELECT) {
        rc = dg_error_set(err, DG_NOT_READ_ONLY,
                          "only SELECT statements are allowed (statement type rule)");
        goto out;
    }
    rc = dg_db__bind_params(c->ps, q, err);
out:
    if (ext) {
        duckdb_destroy_extracted(&ext);
    }
    free(sql);
    if (rc != DG_OK) {
        dg_db_cursor_free(c);
        return rc;
    }
    *out = c;
    return DG_OK;
}

dg_rc_t dg_db_query_start(dg_db_t *db, const dg_db_query_t *q, dg_db_cursor_t **out,
                          dg_error_t *err)
{
    dg_rc_t rc;
    dg_db_cursor_t *c = NULL;

    *out = NULL;
    rc = dg_db__query_prepare(db, q, q->mode == DG_DB_MODE_READONLY_SQL, &c, err);
    if (rc != DG_OK) {
        return rc;
    }
    return dg_db__cursor_start(c, q, out, err);
}

dg_rc_t dg_db__cursor_start(dg_db_cursor_t *c, const dg_db_query_t *q, dg_db_cursor_t **out,
                            dg_error_t *err)
{
    dg_rc_t rc;
    dg_db_t *db = c->db;

    *out = NULL;
    if (dg_db__pending_streaming(c->ps, &c->pending) != DuckDBSuccess) {
        rc = dg_db__error(db, -1, duckdb_pending_error(c->pending), 0, err);
        goto out;
    }
    rc = run_pending(c, q, err);
    if (rc != DG_OK) {
        goto out;
    }
    c->has_res = true;
    if (duckdb_execute_pending(c->pending, &c->res) != DuckDBSuccess) {
        rc = dg_db__error(db, (int)duckdb_result_error_type(&c->res), duckdb_result_error(&c->res),
                          poll_reason(c, q->interrupt), err);
        goto out;
    }
    rc = build_schema(c);
    if (rc != DG_OK) {
        dg_error_set(err, rc, "out of memory");
        goto out;
    }
out:
    if (rc != DG_OK) {
        dg_db_cursor_free(c);
        return rc;
    }
    *out = c;
    return DG_OK;
}

const dg_schema_t *dg_db_cursor_schema(const dg_db_cursor_t *c)
{
    return &c->schema;
}

dg_rc_t dg_db__cursor_fetch(dg_db_cursor_t *c, dg_error_t *err)
{
    if (c->chunk) {
        duckdb_destroy_data_chunk(&c->chunk);
        c->chunk = NULL;
    }
    int r = atomic_load(&c->reason);
    if (r) {
        return dg_error_set(err, (dg_rc_t)r, "%s", dg_rc_message((dg_rc_t)r));
    }
    if (c->fail_rc != DG_OK) {
        return dg_error_set(err, c->fail_rc, "%s", dg_rc_message(c->fail_rc));
    }
    if (c->is_done) {
        return DG_OK;
    }
    for (;;) {
        c->chunk = duckdb_fetch_chunk(c->res);
        if (!c->chunk) {
            const char *e = duckdb_result_error(&c->res);
            c->is_done = true;
            r = atomic_load(&c->reason);
            if (e && e[0]) {
                c->fail_rc = dg_db__error(c->db, (int)duckdb_result_error_type(&c->res), e, r, err);
                return c->fail_rc;
            }
            if (r) {
                /* Interrupted between chunks: a short result must not look complete. */
                return dg_error_set(err, (dg_rc_t)r, "%s", dg_rc_message((dg_rc_t)r));
            }
            return DG_OK;
        }
        if (duckdb_data_chunk_get_size(c->chunk) > 0) {
            return DG_OK;
        }
        duckdb_destroy_data_chunk(&c->chunk);
        c->chunk = NULL;
    }
}

dg_rc_t dg_db_cursor_next(dg_db_cursor_t *c, const dg_batch_t **out_batch, dg_error_t *err)
{
    *out_batch = NULL;
    dg_rc_t rc = dg_db__cursor_fetch(c, err);
    if (rc != DG_OK || !c->chunk) {
        return rc;
    }
    idx_t n = duckdb_data_chunk_get_size(c->chunk);
    c->batch.n_rows = n;
    for (size_t i = 0; i < c->schema.n_cols; i++) {
        dg_db__vec_fill(&c->cols[i], duckdb_data_chunk_get_vector(c->chunk, i), n);
    }
    *out_batch = &c->batch;
    return DG_OK;
}

void dg_db_cursor_interrupt(dg_db_cursor_t *c, dg_rc_t reason)
{
    int expected = 0;
    if (!c) {
        return;
    }
    if (reason == DG_OK) {
        reason = DG_CANCELLED;
    }
    atomic_compare_exchange_strong(&c->reason, &expected, (int)reason);
    duckdb_interrupt(c->con);
}

double dg_db_cursor_progress(dg_db_cursor_t *c)
{
    if (!c || !c->con) {
        return -1;
    }
    duckdb_query_progress_type p = duckdb_query_progress(c->con);
    if (p.percentage < 0) {
        return -1;
    }
    return p.percentage > 100 ? 100 : p.percentage;
}

bool dg_db_cursor_is_deterministic(const dg_db_cursor_t *c)
{
    return c && c->is_deterministic;
}

bool dg_db_sql_is_deterministic(dg_db_t *db, const char *sql, size_t sql_len)
{
    bool is_volatile = true;
    dg_error_t err;
    dg_error_clear(&err);
    return dg_db__sandbox_check_ex(db, sql, sql_len, &is_volatile, &err) == DG_OK && !is_volatile;
}

void dg_db_cursor_free(dg_db_cursor_t *c)
{
    if (!c) {
        return;
    }
    if (c->chunk) {
        duckdb_destroy_data_chunk(&c->chunk);
    }
    if (c->arrow_opts) {
        duckdb_destroy_arrow_options(&c->arrow_opts);
    }
    if (c->has_res) {
        duckdb_destroy_result(&c->res);
    }
    if (c->pending) {
        duckdb_destroy_pending(&c->pending);
    }
    if (c->named) {
        /* Borrowed from the named-query pool: the statement stays cached, no value bound. */
        duckdb_clear_bindings(c->ps);
        dg_db__named_put(c->db, c->named);
        c->ps = NULL;
        c->con = NULL;
    }
    if (c->ps) {
        duckdb_destroy_prepare(&c->ps);
    }
    if (c->con) {
        duckdb_disconnect(&c->con);
    }
    dg_db__pool_free(&c->pool);
    free(c);
}
