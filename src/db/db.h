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
    /* Admin mode only, optional (NULL = none). Set to true as soon as a statement that is not a
     * SELECT is started, even if it then fails: the caller must assume data may have changed. */
    bool *changes;
    /* Optional: called on the starting thread between execution tasks with DuckDB's progress
     * of the running statement (0..100, or -1 when unknown), so the caller can report it while
     * dg_db_query_start has not returned yet. It must not call back into the cursor. Setting it
     * also turns on DuckDB's progress tracking for the query's connection (otherwise
     * dg_db_cursor_progress stays -1). */
    void (*on_progress)(void *ctx, double pct);
    void *progress_ctx;
    /* Optional (NULL = none): the declared types of named parameters as a JSON object
     * {"name": "INTEGER" | "VARCHAR[]" | ...} (BOOLEAN, TINYINT, SMALLINT, INTEGER, BIGINT,
     * DOUBLE, VARCHAR, DATE, TIMESTAMP, T[]). When set, params_json must be an object with a
     * value for exactly these names, in the typed forms of src/named/named.h (DATE = days and
     * TIMESTAMP = microseconds since 1970-01-01, lists = arrays, null = NULL), and each is
     * bound as a value of its declared type. */
    const char *param_types;
    size_t param_types_len;
} dg_db_query_t;

typedef struct dg_db_cursor dg_db_cursor_t;

/* A named query (db_named.c): like dg_db_query_start, but on a long-lived connection of db's
 * pool with the prepared statement cached by SQL text (checked once per connection: exactly one
 * statement, of type SELECT; no sandbox parse check, the SQL is the data owner's). q->mode is
 * ignored; q->param_types is normally set. The pool is freed by dg_db_close, so statements never
 * outlive their instance. Errors as dg_db_query_start. */
dg_rc_t dg_db_named_start(dg_db_t *db, const dg_db_query_t *q, dg_db_cursor_t **out,
                          dg_error_t *err);
/* How many named-query statements this process has prepared (cache misses of the per-connection
 * statement cache) since it started: repeated calls of one named query on a warm connection add
 * nothing. Thread-safe. */
uint64_t dg_db_named_prepares(void);

/* Checks (read-only mode: sandbox parse check, one statement, statement type SELECT), prepares,
 * binds the parameters and starts streaming execution. In admin mode the SQL may hold several
 * statements: all but the last run to completion first (results discarded; parameters are then
 * refused with DG_BAD_PARAMS), and the cursor streams the last one. Returns once the query has produced its
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
/* True when the sandbox walk found the statement deterministic: no volatile function (random(),
 * now(), current_date, ...) and no sampling, so its result depends only on the data and may be
 * cached (docs/cache.md). False for trusted (admin) SQL, which is not classified. */
bool dg_db_cursor_is_deterministic(const dg_db_cursor_t *c);
/* The same classification for SQL that runs trusted (named queries): true only when the
 * statement passes the sandbox parse check and is deterministic; anything the check refuses
 * counts as not deterministic. Costs one parse (json_serialize_sql): call it once per
 * statement, not per execution. Thread-safe. */
bool dg_db_sql_is_deterministic(dg_db_t *db, const char *sql, size_t sql_len);
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

/* ---- Arrow output (db_arrow.c) ----
 * For the Arrow IPC stream format: the result of a cursor as Arrow C Data Interface structs
 * (core/arrow_c.h), produced by DuckDB's own converter so every DuckDB type maps the way DuckDB
 * maps it (ENUM -> dictionary, DECIMAL -> decimal128, TIMESTAMPTZ -> timestamp with zone, ...).
 * Both calls follow the cursor's thread confinement. */

struct ArrowSchema;
struct ArrowArray;

/* Fills *out with the result schema: a struct ("+s") whose children are the columns, in order,
 * with the column names. The caller owns *out and releases it with out->release(out); it does
 * not depend on the cursor and may outlive it. May be called at any time while the cursor is
 * alive, before or between dg_db_cursor_next_arrow calls. On error out->release is NULL.
 * Errors: DG_NOT_ACCEPTABLE (DuckDB cannot express a column type in Arrow), DG_NOMEM. */
dg_rc_t dg_db_cursor_arrow_schema(dg_db_cursor_t *c, struct ArrowSchema *out, dg_error_t *err);
/* Fetches the next chunk through the same path as dg_db_cursor_next (same interrupt and error
 * semantics: an interrupted or failed cursor keeps returning its code) and converts it to a
 * struct array whose children are the columns, matching dg_db_cursor_arrow_schema. At the end
 * of the result: DG_OK, *out_end = true and out->release == NULL. Otherwise the caller owns *out
 * and releases it with out->release(out); the array holds its own copy of the data, so it stays
 * valid after later fetches and after dg_db_cursor_free. Do not mix with dg_db_cursor_next on
 * one cursor (each call consumes a chunk). On error out->release is NULL.
 * Errors: those of dg_db_cursor_next, DG_NOT_ACCEPTABLE (conversion refused), DG_NOMEM. */
dg_rc_t dg_db_cursor_next_arrow(dg_db_cursor_t *c, struct ArrowArray *out, bool *out_end,
                                dg_error_t *err);

/* ---- Parquet export (db_export.c) ----
 * DESIGN §5 format application/vnd.apache.parquet: DuckDB's own writer (ZSTD), streamed from
 * bounded, always-cleaned temp space. The serving instance cannot COPY (external access is off
 * and its configuration locked), so each dg_db_t lazily opens, on first export, a second
 * READ_ONLY instance of the same file with the same limits (memory_limit, threads,
 * max_temp_directory_size; spilling into <temp_dir>/export) whose only writable place is
 * export_dir (allowed_directories, then enable_external_access=false and lock_configuration).
 * Only read-only databases can be exported: a file must never be open read-write and read-only
 * in the same process. */

/* Runs q's SQL through every sandbox layer of DG_DB_MODE_READONLY_SQL on the serving instance
 * (q->mode is ignored: exports are always checked as untrusted), binding q's parameters there,
 * so a query is accepted or refused exactly as by dg_db_query_start. Then, on the export
 * instance, runs COPY (<sql>) TO '<export_dir>/<unique>.parquet' (FORMAT PARQUET, COMPRESSION
 * ZSTD) with the same parameters, opens the finished file read-only, unlinks it and returns the
 * descriptor: nothing is left on disk once this returns, whatever happens to the process later.
 * On any error no file is left either.
 *
 * export_dir: absolute path of a directory private to the calling engine (created with 0700,
 * parents included, when missing; group/other permissions are removed; it must be owned by the
 * process's user and not be a symlink). It must be the same on every call for one dg_db_t (it
 * is fixed into the export instance's allowed_directories), else DG_CONFIG. Borrowed.
 * max_bytes: cap on the Parquet file; 0 = no cap. The file's size is polled between execution
 * tasks and the export stopped as soon as it is over (and checked again when done).
 * Interrupting: the call blocks for the whole export; it polls q->interrupt between execution
 * tasks (at least every millisecond while DuckDB's threads work) from start to end, and when
 * another thread stores a reason there (DG_TIMEOUT, DG_CANCELLED, DG_CLIENT_GONE) it interrupts
 * DuckDB itself and returns that reason. The engine passes the same atomic it passes to
 * dg_db_query_start (its watcher already stores the stop reason there); no cursor exists.
 * Thread-safe: several exports of one dg_db_t may run at once (one connection each).
 * On success *out_fd (owned by the caller: close it) is positioned at offset 0 and *out_size is
 * the file's size in bytes. On error *out_fd is -1.
 * Errors: those of dg_db_query_start (DG_SQL_ERROR, DG_NOT_READ_ONLY, DG_MULTIPLE_STATEMENTS,
 * DG_BAD_PARAMS, DG_TIMEOUT/DG_CANCELLED/DG_CLIENT_GONE, DG_RESOURCE_EXHAUSTED, DG_NOMEM),
 * DG_RESULT_TOO_LARGE (over max_bytes), DG_NOT_ACCEPTABLE (a read-write or in-memory database),
 * DG_CONFIG (bad export_dir, export instance settings refused), DG_IO (export instance could
 * not be opened, file could not be reopened), DG_INTERNAL. */
/* Memory of the instance for /metrics: *out_used = sum(memory_usage_bytes) of duckdb_memory()
 * (buffer-managed memory), *out_limit = the configured memory_limit in bytes (0 = DuckDB's
 * default). Runs on its own internal connection; safe while queries run. DG_INTERNAL when DuckDB
 * refused. */
dg_rc_t dg_db_memory_usage(dg_db_t *db, uint64_t *out_used, uint64_t *out_limit);

dg_rc_t dg_db_export_parquet(dg_db_t *db, const dg_db_query_t *q, const char *export_dir,
                             uint64_t max_bytes, int *out_fd, uint64_t *out_size,
                             dg_error_t *err);

#endif
