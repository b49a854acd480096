/* The query log store (db_qlog.h): table creation, appends through DuckDB's appender with
 * per-front sequence numbers (so a batch resent after a lost confirmation is not stored twice),
 * retention deletes, and the listing query.
 *
 * Every statement here is trusted SQL written in this file; values from the front are appended
 * or bound, never spliced into SQL text. */
#include <stdlib.h>
#include <string.h>

#include "db/db_internal.h"
#include "db/db_qlog.h"

static const char create_sql[] =
    "CREATE TABLE IF NOT EXISTS " DG_DB_QLOG_TABLE " ("
    "ts TIMESTAMP NOT NULL, request_id VARCHAR, kind VARCHAR, db VARCHAR, query VARCHAR, "
    "principal VARCHAR, role VARCHAR, status INTEGER, code VARCHAR, \"rows\" UBIGINT, "
    "bytes UBIGINT, queue_ms DOUBLE, duration_ms DOUBLE, cache VARCHAR, "
    "front VARCHAR NOT NULL, seq UBIGINT NOT NULL)";

/* Columns added after the first release, appended in this order to tables of every age (so files
 * written by older versions keep working: the appender fills columns in table order). */
static const char *const upgrade_sql[] = {
    "ALTER TABLE " DG_DB_QLOG_TABLE " ADD COLUMN IF NOT EXISTS params_hash VARCHAR",
    "ALTER TABLE " DG_DB_QLOG_TABLE " ADD COLUMN IF NOT EXISTS execute_ms DOUBLE",
    "ALTER TABLE " DG_DB_QLOG_TABLE " ADD COLUMN IF NOT EXISTS encode_ms DOUBLE",
    "ALTER TABLE " DG_DB_QLOG_TABLE " ADD COLUMN IF NOT EXISTS client_addr VARCHAR",
};

const char dg_db_qlog_select_sql[] =
    "SELECT ts, request_id, kind, db, query, params_hash, principal, role, client_addr, status, "
    "code, \"rows\", bytes, queue_ms, execute_ms, encode_ms, duration_ms, cache "
    "FROM " DG_DB_QLOG_TABLE " "
    "WHERE ($db = '' OR db = $db) AND status BETWEEN $slo AND $shi "
    "AND ($since_us = 0 OR ts >= make_timestamp($since_us)) "
    "ORDER BY ts DESC, seq DESC LIMIT $limit";

dg_rc_t dg_db_qlog_open(const char *path, uint64_t memory_limit, dg_db_t **out, dg_error_t *err)
{
    dg_db_opts_t o = {
        .path = path,
        .name = "query_log",
        .read_only = false,
        .memory_limit = memory_limit,
        .threads = 1,
    };
    dg_rc_t rc = dg_db_open(&o, out, err);
    if (rc != DG_OK) {
        return rc;
    }
    rc = dg_db_exec(*out, create_sql, err);
    for (size_t i = 0; rc == DG_OK && i < sizeof upgrade_sql / sizeof upgrade_sql[0]; i++) {
        rc = dg_db_exec(*out, upgrade_sql[i], err);
    }
    if (rc != DG_OK) {
        dg_db_close(*out);
        *out = NULL;
    }
    return rc;
}

/* Runs a statement with one bound parameter (when has_arg: text_arg, or int_arg when it is
 * NULL) and returns the first column of its one row as an unsigned number (for count/max), or
 * the rows changed when want_changed. */
static dg_rc_t run_one(dg_db_t *db, duckdb_connection con, const char *sql, const char *text_arg,
                       int64_t int_arg, bool has_arg, bool want_changed, uint64_t *out,
                       dg_error_t *err)
{
    duckdb_value arg = NULL;
    duckdb_result res;
    *out = 0;
    if (has_arg) {
        arg = text_arg ? duckdb_create_varchar(text_arg) : duckdb_create_int64(int_arg);
        if (!arg) {
            return dg_error_set(err, DG_NOMEM, "out of memory");
        }
    }
    dg_rc_t rc = dg_db__execute(db, con, sql, arg, &res, err);
    if (arg) {
        duckdb_destroy_value(&arg);
    }
    if (rc != DG_OK) {
        return rc;
    }
    if (want_changed) {
        *out = (uint64_t)duckdb_rows_changed(&res);
    } else {
        duckdb_data_chunk chunk = duckdb_fetch_chunk(res);
        if (chunk && duckdb_data_chunk_get_size(chunk) == 1) {
            duckdb_vector v = duckdb_data_chunk_get_vector(chunk, 0);
            const uint64_t *valid = duckdb_vector_get_validity(v);
            if (!valid || (valid[0] & 1)) {
                *out = ((const uint64_t *)duckdb_vector_get_data(v))[0];
            }
        }
        if (chunk) {
            duckdb_destroy_data_chunk(&chunk);
        }
    }
    duckdb_destroy_result(&res);
    return DG_OK;
}

static duckdb_state append_str(duckdb_appender app, const json_t *row, const char *key)
{
    const json_t *v = json_object_get(row, key);
    if (!json_is_string(v)) {
        return duckdb_append_null(app);
    }
    return duckdb_append_varchar_length(app, json_string_value(v), json_string_length(v));
}

static uint64_t json_u64(const json_t *row, const char *key)
{
    const json_t *v = json_object_get(row, key);
    if (json_is_integer(v) && json_integer_value(v) > 0) {
        return (uint64_t)json_integer_value(v);
    }
    return 0;
}

static double json_num(const json_t *row, const char *key)
{
    const json_t *v = json_object_get(row, key);
    return json_is_number(v) ? json_number_value(v) : 0.0;
}

/* A number, or NULL when the row has none (a value the engine did not report). */
static duckdb_state append_num_or_null(duckdb_appender app, const json_t *row, const char *key)
{
    const json_t *v = json_object_get(row, key);
    return json_is_number(v) ? duckdb_append_double(app, json_number_value(v))
                             : duckdb_append_null(app);
}

/* Appends one row; false when DuckDB refused a value. */
static bool append_row(duckdb_appender app, const json_t *row, const char *front, uint64_t seq)
{
    json_int_t ts_ms = json_integer_value(json_object_get(row, "ts_ms"));
    duckdb_timestamp ts = {.micros = (int64_t)ts_ms * 1000};
    bool ok =
        duckdb_append_timestamp(app, ts) == DuckDBSuccess &&
        append_str(app, row, "request_id") == DuckDBSuccess &&
        append_str(app, row, "kind") == DuckDBSuccess &&
        append_str(app, row, "db") == DuckDBSuccess &&
        append_str(app, row, "query") == DuckDBSuccess &&
        append_str(app, row, "principal") == DuckDBSuccess &&
        append_str(app, row, "role") == DuckDBSuccess &&
        duckdb_append_int32(app, (int32_t)json_integer_value(json_object_get(row, "status"))) ==
            DuckDBSuccess &&
        append_str(app, row, "code") == DuckDBSuccess &&
        duckdb_append_uint64(app, json_u64(row, "rows")) == DuckDBSuccess &&
        duckdb_append_uint64(app, json_u64(row, "bytes")) == DuckDBSuccess &&
        duckdb_append_double(app, json_num(row, "queue_ms")) == DuckDBSuccess &&
        duckdb_append_double(app, json_num(row, "duration_ms")) == DuckDBSuccess &&
        append_str(app, row, "cache") == DuckDBSuccess &&
        duckdb_append_varchar(app, front) == DuckDBSuccess &&
        duckdb_append_uint64(app, seq) == DuckDBSuccess &&
        append_str(app, row, "params_hash") == DuckDBSuccess &&
        append_num_or_null(app, row, "execute_ms") == DuckDBSuccess &&
        append_num_or_null(app, row, "encode_ms") == DuckDBSuccess &&
        append_str(app, row, "client_addr") == DuckDBSuccess;
    return ok && duckdb_appender_end_row(app) == DuckDBSuccess;
}

dg_rc_t dg_db_qlog_append(dg_db_t *db, const char *front, const json_t *rows, uint64_t *io_last_seq,
                          bool *io_known, size_t *out_appended, dg_error_t *err)
{
    duckdb_connection con = NULL;
    duckdb_appender app = NULL;
    dg_rc_t rc = DG_OK;
    uint64_t last = *io_last_seq, max_seq = 0;
    size_t n = 0;
    *out_appended = 0;
    if (!json_is_array(rows) || !front) {
        return dg_error_set(err, DG_BAD_REQUEST, "qlog_append needs front and a rows array");
    }
    if (duckdb_connect(db->inst, &con) != DuckDBSuccess) {
        return dg_error_set(err, DG_INTERNAL, "could not connect to the query log");
    }
    if (!*io_known) {
        rc = run_one(db, con,
                     "SELECT CAST(coalesce(max(seq), 0) AS UBIGINT) FROM " DG_DB_QLOG_TABLE
                     " WHERE front = $1",
                     front, 0, true, false, &last, err);
        if (rc != DG_OK) {
            goto out;
        }
    }
    if (duckdb_appender_create(con, NULL, DG_DB_QLOG_TABLE, &app) != DuckDBSuccess) {
        rc = dg_error_set(err, DG_INTERNAL, "could not create the query log appender: %s",
                          app ? duckdb_appender_error(app) : "?");
        goto out;
    }
    size_t i;
    const json_t *row;
    max_seq = last;
    json_array_foreach(rows, i, row)
    {
        json_t *sv = json_object_get(row, "seq");
        if (!json_is_object(row) || !json_is_integer(sv) || json_integer_value(sv) <= 0) {
            rc = dg_error_set(err, DG_BAD_REQUEST, "query log row %zu has no seq", i);
            goto out;
        }
        uint64_t seq = (uint64_t)json_integer_value(sv);
        if (seq <= last) {
            continue; /* stored by an earlier call whose confirmation was lost */
        }
        if (!append_row(app, row, front, seq)) {
            rc = dg_error_set(err, DG_INTERNAL, "query log append failed: %s",
                              duckdb_appender_error(app));
            goto out;
        }
        if (seq > max_seq) {
            max_seq = seq;
        }
        n++;
    }
    /* One flush: the whole batch commits in one transaction, or none of it does. */
    if (duckdb_appender_flush(app) != DuckDBSuccess) {
        rc = dg_error_set(err, DG_IO, "query log flush failed: %s", duckdb_appender_error(app));
        goto out;
    }
    *io_last_seq = max_seq;
    *io_known = true;
    *out_appended = n;
out:
    if (app) {
        duckdb_appender_destroy(&app);
    }
    duckdb_disconnect(&con);
    return rc;
}

/* Rows a size trim always keeps. */
#define MIN_KEEP_ROWS 1000

/* Deletes all but the newest keep rows; *out_deleted gets how many went. */
static dg_rc_t keep_newest(dg_db_t *db, duckdb_connection con, uint64_t keep, uint64_t *out_deleted,
                           dg_error_t *err)
{
    return run_one(db, con,
                   "DELETE FROM " DG_DB_QLOG_TABLE
                   " WHERE rowid IN (SELECT rowid FROM " DG_DB_QLOG_TABLE
                   " ORDER BY ts DESC, seq DESC OFFSET $1)",
                   NULL, (int64_t)keep, true, true, out_deleted, err);
}

dg_rc_t dg_db_qlog_retain(dg_db_t *db, int64_t cutoff_ms, uint64_t max_rows, uint64_t max_bytes,
                          uint64_t size_floor, uint64_t *out_deleted, uint64_t *out_used,
                          dg_error_t *err)
{
    duckdb_connection con = NULL;
    dg_rc_t rc = DG_OK;
    uint64_t n = 0, count = 0;
    *out_deleted = 0;
    *out_used = 0;
    if (duckdb_connect(db->inst, &con) != DuckDBSuccess) {
        return dg_error_set(err, DG_INTERNAL, "could not connect to the query log");
    }
    if (cutoff_ms > 0) {
        rc = run_one(db, con, "DELETE FROM " DG_DB_QLOG_TABLE " WHERE ts < make_timestamp($1)",
                     NULL, cutoff_ms * 1000, true, true, &n, err);
        *out_deleted += n;
    }
    if (rc == DG_OK && (max_rows > 0 || max_bytes > 0)) {
        rc = run_one(db, con, "SELECT CAST(count(*) AS UBIGINT) FROM " DG_DB_QLOG_TABLE, NULL, 0,
                     false, false, &count, err);
    }
    if (rc == DG_OK && max_rows > 0 && count > max_rows) {
        rc = keep_newest(db, con, max_rows, &n, err);
        *out_deleted += n;
        count = max_rows;
    }
    if (rc == DG_OK && max_bytes > 0 && count > 0) {
        /* The size cap: the blocks the store's file uses. Over it (and over size_floor, what a
         * trim could not get below: the table's fixed share of blocks), keep the newest rows
         * that 80% of the cap held at the current bytes per row, and checkpoint so the row
         * groups of the deleted rows are given back (the file is reused, not shrunk). */
        const char *used_sql =
            "SELECT CAST(used_blocks * block_size AS UBIGINT) FROM pragma_database_size() "
            "WHERE database_name = current_database()";
        uint64_t used = 0;
        rc = run_one(db, con, used_sql, NULL, 0, false, false, &used, err);
        *out_used = used;
        if (rc == DG_OK && used > max_bytes && used > size_floor) {
            double per_row = (double)used / (double)count;
            uint64_t keep = (uint64_t)((double)max_bytes * 0.8 / per_row);
            /* However small the cap, the newest rows stay: an admin looking at the log after
             * a tiny cap should still see the last queries. */
            keep = keep < MIN_KEEP_ROWS ? MIN_KEEP_ROWS : keep;
            rc = keep_newest(db, con, keep, &n, err);
            *out_deleted += n;
            uint64_t ignored = 0;
            if (rc == DG_OK) {
                rc = run_one(db, con, "CHECKPOINT", NULL, 0, false, true, &ignored, err);
            }
            if (rc == DG_OK) {
                rc = run_one(db, con, used_sql, NULL, 0, false, false, out_used, err);
            }
        }
    }
    duckdb_disconnect(&con);
    return rc;
}
