/* The read-only SQL request (`POST /api/query/{db}` JSON body or `GET /api/query/{db}?sql=`)
 * parsed and validated into a typed dg_http_query_t. Pure: no I/O, no engine; fuzzed by
 * fuzz/fuzz_query_body.c. Thread-safe; a dg_http_query_t is confined to one thread. */
#ifndef DG_HTTP_QUERY_H
#define DG_HTTP_QUERY_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "core/rc.h"
#include "core/str.h"
#include "enc/enc.h"
#include "http/http.h"

typedef struct dg_http_query {
    char db[65]; /* validated, known database name */
    char *sql;   /* owned, NUL-terminated; never empty */
    size_t sql_len;
    json_t *params;     /* owned reference: array or object; NULL when none */
    int64_t timeout_ms; /* > 0, at most the configured ceiling */
    dg_format_t format;
} dg_http_query_t;

typedef struct dg_http_query_limits {
    uint64_t max_sql_bytes; /* SQL text cap (cfg->max_sql_bytes) */
    int64_t timeout_ms;     /* default and ceiling (cfg->timeout_ms) */
    const dg_dbfile_t *dbs; /* servable databases (borrowed) */
    size_t n_dbs;
} dg_http_query_limits_t;

/* Looks db up among the servable databases: DG_OK, or DG_UNKNOWN_DB (also for invalid names). */
dg_rc_t dg_http_query_check_db(dg_str_t db, const dg_http_query_limits_t *lim, char out[65],
                               dg_error_t *err);

/* Parses a POST body {"sql": "...", "params": [...]|{...}, "timeout_ms": N, "format": "..."}.
 * The format comes from the body, else ?format= in args (may be NULL), else accept.
 * Errors (err has the message): DG_UNKNOWN_DB, DG_BAD_JSON (not JSON, duplicate keys),
 * DG_BAD_REQUEST (not an object, unknown field, wrong field type, timeout_ms not a positive
 * integer), DG_BAD_PARAMS (params neither array, object nor null), DG_MISSING_SQL (absent, empty or
 * blank), DG_SQL_TOO_LARGE, DG_NOT_ACCEPTABLE, DG_NOMEM. On error *out holds nothing to free
 * (dg_http_query_free is still allowed). */
dg_rc_t dg_http_query_from_body(dg_str_t db, const char *body, size_t len,
                                const dg_http_args_t *args, const char *accept,
                                const dg_http_query_limits_t *lim, dg_http_query_t *out,
                                dg_error_t *err);
/* Parses GET arguments sql, params (JSON text), timeout_ms, format; other arguments are
 * ignored, a repeated known argument is DG_BAD_REQUEST; params that are not a JSON array or
 * object are DG_BAD_PARAMS. Other errors as dg_http_query_from_body. */
dg_rc_t dg_http_query_from_args(dg_str_t db, const dg_http_args_t *args, const char *accept,
                                const dg_http_query_limits_t *lim, dg_http_query_t *out,
                                dg_error_t *err);
/* Releases what a successful parse owns. NULL and zeroed structs are allowed. */
void dg_http_query_free(dg_http_query_t *q);

#endif
