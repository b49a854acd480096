/* The DuckDB layer: the only code that includes duckdb.h. It runs inside engine processes only;
 * the HTTP front never calls it.
 *
 * One dg_db_t is one DuckDB instance for one database file, opened with the sandbox settings of
 * DESIGN §4 layer 1 (read-only access mode, no external access, extension loading off, memory and
 * temp limits, threads, lock_configuration last). A dg_db_t may be used by several threads at
 * once: every query gets its own connection (raw SQL) from dg_db_query_start.
 *
 * A dg_db_cursor_t is one running query. It is confined to the thread that started it, except
 * dg_db_cursor_interrupt, which any thread may call while the cursor is alive (the caller
 * guarantees the cursor is not freed concurrently). */
#ifndef DG_DB_H
#define DG_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/batch.h"
#include "core/buf.h"
#include "core/rc.h"

typedef struct dg_db_opts {
    const char *path;          /* database file; borrowed for the call */
    const char *name;          /* name it is served as (catalog name checks); borrowed */
    bool read_only;            /* true: access_mode=READ_ONLY */
    uint64_t memory_limit;     /* bytes; 0 = DuckDB's default */
    uint64_t max_temp_bytes;   /* max_temp_directory_size; 0 = 1 GiB */
    int threads;               /* 0 = 1 */
    const char *temp_dir;      /* private temp directory for spilling; NULL = none (no spilling) */
} dg_db_opts_t;

typedef struct dg_db dg_db_t;

/* Opens the instance with the sandbox settings. Errors: DG_IO (file missing/unreadable/corrupt),
 * DG_CONFIG (a setting refused), DG_NOMEM. *out is NULL on error. */
dg_rc_t dg_db_open(const dg_db_opts_t *opts, dg_db_t **out, dg_error_t *err);
/* Closes the instance. Every cursor must be freed first. NULL is allowed. */
void dg_db_close(dg_db_t *db);

typedef enum dg_db_mode {
    DG_DB_MODE_READONLY_SQL = 0, /* untrusted SQL: all sandbox layers (2-4), fresh connection */
    DG_DB_MODE_ADMIN,            /* trusted SQL: no parse check, still inside the locked settings */
} dg_db_mode_t;

typedef struct dg_db_query {
    const char *sql;           /* borrowed; need not be NUL-terminated */
    size_t sql_len;
    const char *params_json;   /* borrowed JSON text: array (positional $1/?) or object (named
                                  $name); NULL or "" for none */
    size_t params_len;
    dg_db_mode_t mode;
    /* Optional, NULL = none; borrowed for the dg_db_query_start call. Another thread may store a
     * reason (DG_TIMEOUT, DG_CANCELLED, DG_CLIENT_GONE) here to stop a query whose
     * dg_db_query_start has not returned yet (no cursor exists then); it is polled between
     * execution tasks. Once the cursor exists, use dg_db_cursor_interrupt. */
    const _Atomic int *interrupt;
} dg_db_query_t;

typedef struct dg_db_cursor dg_db_cursor_t;

/* Checks (read-only mode: sandbox parse check, one statement, statement type SELECT), prepares,
 * binds the parameters and starts streaming execution. Returns once the query has produced its
 * result schema (execution may continue lazily in dg_db_cursor_next). DuckDB's streaming result
 * becomes ready only when its buffer of first rows is full or the query has finished, so this
 * call may run for the whole query (an aggregate, a sort): to bound it, pass q->interrupt.
 * Errors: DG_SQL_ERROR (syntax, binder, catalog: DuckDB's message with no server paths),
 * DG_NOT_READ_ONLY (sandbox refusal, message names the rule), DG_MULTIPLE_STATEMENTS,
 * DG_BAD_PARAMS (bad params JSON, count/name mismatch, unsupported value type),
 * DG_TIMEOUT/DG_CANCELLED (interrupted: the caller tells which via dg_db_cursor_interrupt's
 * reason), DG_RESOURCE_EXHAUSTED (memory/temp limit), DG_NOMEM. *out is NULL on error. */
dg_rc_t dg_db_query_start(dg_db_t *db, const dg_db_query_t *q, dg_db_cursor_t **out,
                          dg_error_t *err);
/* The result schema; owned by the cursor. */
const dg_schema_t *dg_db_cursor_schema(const dg_db_cursor_t *c);
/* Fetches the next chunk. *out_batch points into cursor-owned memory valid until the next call
 * or dg_db_cursor_free; it is NULL at the end of the result. Errors as dg_db_query_start. */
dg_rc_t dg_db_cursor_next(dg_db_cursor_t *c, const dg_batch_t **out_batch, dg_error_t *err);
/* Asks DuckDB to stop the query; the running or next call returns `reason` (DG_TIMEOUT,
 * DG_CANCELLED or DG_CLIENT_GONE). Safe from any thread while the cursor is alive. */
void dg_db_cursor_interrupt(dg_db_cursor_t *c, dg_rc_t reason);
/* Query progress in percent (0..100), or -1 when unknown. Safe from any thread while alive. */
double dg_db_cursor_progress(dg_db_cursor_t *c);
/* Destroys the result, prepared statement and connection. NULL is allowed. */
void dg_db_cursor_free(dg_db_cursor_t *c);

/* Runs every statement of a trusted SQL script (CLI `duckgate exec`, fixtures), discarding
 * results. Not for untrusted input: no sandbox check. DG_SQL_ERROR with DuckDB's message. */
dg_rc_t dg_db_exec(dg_db_t *db, const char *sql, dg_error_t *err);

/* Appends the catalog of the database as a JSON object:
 * {"name":..,"tables":[{"schema":..,"name":..,"type":"table|view","row_count":N|null,
 *   "columns":[{"name":..,"type":..,"nullable":bool}]}]}
 * Row counts of tables come from DuckDB's estimated_size (exact for tables without deletes). */
dg_rc_t dg_db_catalog_json(dg_db_t *db, dg_buf_t *out, dg_error_t *err);

#endif
