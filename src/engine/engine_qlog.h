/* The query log inside engine 0 (engine_qlog.c): the request kinds "qlog_append" and
 * "qlog_query" of engine/frame.h. Internal to src/engine.
 *
 * The store (db/db_qlog.h) is opened lazily on the first query log request, from the path the
 * front sends with every such request, and stays open for the life of the process. Only engine 0
 * serves these kinds: DuckDB allows one read-write process per file.
 * Threads: any slot thread; a process-wide mutex serialises opening and appending. */
#ifndef DG_ENGINE_QLOG_H
#define DG_ENGINE_QLOG_H

#include <jansson.h>

#include "core/buf.h"
#include "core/rc.h"
#include "db/db.h"

/* kind "qlog_append": {"path":..,"front":..,"rows":[..],"retention_days":N,"max_rows":N}.
 * Appends the rows (skipping sequence numbers already stored), applies retention when due and
 * writes the END payload {"acked":LAST_SEQ,"appended":N,"deleted":N} to out. DG_FORBIDDEN on an
 * engine other than 0, DG_BAD_REQUEST, and the codes of dg_db_qlog_open/append. */
dg_rc_t dg_engine__qlog_append(int engine_index, const json_t *req, dg_buf_t *out, dg_error_t *err);
/* The store for kind "qlog_query" (opened from req's "path" when needed); borrowed, valid for
 * the life of the process. DG_FORBIDDEN on an engine other than 0, codes of dg_db_qlog_open. */
dg_rc_t dg_engine__qlog_db(int engine_index, const json_t *req, dg_db_t **out, dg_error_t *err);
/* The store when it is already open (admin SQL on "_query_log"), else NULL. */
dg_db_t *dg_engine__qlog_db_if_open(void);
/* The named parameters of dg_db_qlog_select_sql from req's filters ("limit", "status_lo",
 * "status_hi", "filter_db", "since_us") as JSON text (malloc'd), NULL on DG_NOMEM. */
char *dg_engine__qlog_params(const json_t *req);

#endif
