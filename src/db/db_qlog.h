/* The query log's durable store (docs/observability.md "Query log"): a DuckDB file in the state
 * directory with one table, query_log, written with DuckDB's appender in batches and trimmed by
 * age and row count. Only engine 0 opens it (DuckDB allows one read-write process per file); the
 * front ships rows to it (engine kind "qlog_append") and reads them through it ("qlog_query").
 *
 * The instance is opened READ_WRITE with the same locked settings as a serving instance (no
 * external access, no extension loading, lock_configuration). It is never served under a
 * database name and the state directory is never scanned for databases.
 *
 * Threads: dg_db_t rules (any thread; one connection per call). Appends must be serialised by
 * the caller (the engine holds a mutex), because the sequence-number check reads what earlier
 * appends wrote. */
#ifndef DG_DB_QLOG_H
#define DG_DB_QLOG_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "core/rc.h"
#include "db/db.h"

/* Name of the one table. */
#define DG_DB_QLOG_TABLE "query_log"

/* Opens path read-write (created when missing, with its table; a table written by an older
 * version gets the columns added since) as a locked instance with at most
 * memory_limit bytes of DuckDB memory (0 = DuckDB's default) and one thread.
 * DG_IO (cannot open or create), DG_CONFIG, DG_SQL_ERROR (table cannot be created), DG_NOMEM. */
dg_rc_t dg_db_qlog_open(const char *path, uint64_t memory_limit, dg_db_t **out, dg_error_t *err);

/* Appends the rows of `rows` (a JSON array of objects as qlog.h's flusher ships them: seq, ts_ms,
 * request_id, kind, db, query, principal, role, status, code, rows, bytes, queue_ms,
 * duration_ms, cache, and the later columns params_hash, execute_ms, encode_ms, client_addr; a
 * missing key is stored as NULL) that came from front `front` (the front's boot id) and whose seq
 * is above the highest seq already stored for that front, in one appender flush (one transaction).
 * *io_last_seq caches that highest seq between calls: pass *io_known = false the first time
 * (it is then read from the table) and keep both for later calls with the same front.
 * *out_appended gets the rows written. DG_BAD_REQUEST (not an array of objects, seq missing),
 * DG_IO / DG_INTERNAL (DuckDB refused; nothing of the batch is stored), DG_NOMEM. */
dg_rc_t dg_db_qlog_append(dg_db_t *db, const char *front, const json_t *rows, uint64_t *io_last_seq,
                          bool *io_known, size_t *out_appended, dg_error_t *err);

/* Retention: deletes the rows older than cutoff_ms (Unix ms; 0 = no age limit), then all but the
 * newest max_rows rows (0 = no row limit), then, when the store's file uses more than max_bytes
 * (0 = no size limit) and more than size_floor, the oldest rows until 80% of it would hold the
 * rest, and checkpoints. *out_deleted gets the rows deleted, *out_used the bytes of blocks the
 * file uses at the end (0 without a size limit): a caller passes it back as size_floor while it
 * is over max_bytes, so a cap below what the table needs anyway does not delete on every call.
 * DG_INTERNAL / DG_SQL_ERROR when DuckDB refused. */
dg_rc_t dg_db_qlog_retain(dg_db_t *db, int64_t cutoff_ms, uint64_t max_rows, uint64_t max_bytes,
                          uint64_t size_floor, uint64_t *out_deleted, uint64_t *out_used,
                          dg_error_t *err);

/* The listing query of GET /api/admin/queries, newest first, for dg_db_query_start in
 * DG_DB_MODE_ADMIN with named parameters (an object): $db (VARCHAR, "" = any), $slo and $shi
 * (INTEGER status range, inclusive), $since_us (BIGINT Unix microseconds; 0 = any) and $limit
 * (BIGINT). The filter values are always bound, never spliced. */
extern const char dg_db_qlog_select_sql[];

#endif
