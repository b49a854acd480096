/* The query log, front side (docs/observability.md "Query log"): one row per query request,
 * kept in a bounded in-memory ring and shipped in batches to a durable store by a flusher
 * thread.
 *
 * Recording is cheap, because it runs on the request path: a row's strings are copied into one
 * allocation (a compact record, no formatting), and it gets a sequence number that increases
 * by one per row. The flusher turns records into JSON, without the ring's lock held. A batch leaves
 * the ring only when the store confirmed it durable (dg_qlog__ack): a store that fails or restarts
 * loses nothing the ring still holds, and the next attempt resends the same rows (the store skips
 * sequence numbers it already has, so a lost confirmation cannot duplicate rows). When the ring is
 * full the oldest row is dropped and counted.
 *
 * What a row may hold: the caller's own SQL text (truncated to max_query_bytes) or a named
 * query's name and a hash of its bound values, never the values themselves, credentials or
 * header values.
 *
 * Threads: every function may be called from any thread (one mutex guards the ring; it is held
 * only to link or unlink records and to take references: no formatting, allocation or I/O under
 * it). The ship callback runs on the flusher thread only, without the lock held. */
#ifndef DG_QLOG_H
#define DG_QLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/rc.h"

/* One query as the caller saw it. Every pointer is borrowed for the dg_qlog_record call; NULL
 * strings are logged as JSON null. */
typedef struct dg_qlog_row {
    int64_t ts_ms;          /* wall clock (Unix ms) at arrival; 0 = now - duration */
    const char *request_id; /* the request id (X-Request-Id) */
    const char *kind;       /* "sql", "named", "admin", "job" or "catalog" */
    const char *db;         /* database name, NULL when none */
    const char *query;      /* SQL text (truncated when logged), or the named query's name */
    size_t query_len;
    const char *principal;   /* "key:<id>", "jwt:<sub>", "ip:<addr>" */
    const char *role;        /* "admin", "analyst", "viewer", "none" */
    int status;              /* HTTP status answered (499: the client left first) */
    const char *code;        /* error code name ("TIMEOUT"), NULL on success */
    uint64_t rows, bytes;    /* result rows and body bytes sent */
    double queue_ms;         /* waiting for an engine slot */
    double duration_ms;      /* arrival to the end of the response */
    const char *cache;       /* cache status ("hit", "miss", ...), NULL when not cached */
    bool has_engine_ms;      /* the engine reported execute_ms/encode_ms (else logged as null) */
    double execute_ms;       /* inside DuckDB */
    double encode_ms;        /* inside the result encoder */
    const char *params_hash; /* hex SHA-256 of a named query's canonical bound values, or NULL */
    const char *client_addr; /* the client's address (as trusted proxies report it), or NULL */
} dg_qlog_row_t;

/* Ships one batch: rows_json is a JSON array of row objects (rows_len bytes, NUL-terminated),
 * oldest first, whose last row has sequence number last_seq. Returns DG_OK only once the rows
 * are durable; DG_BAD_REQUEST when the store can never take this batch (it is dropped and
 * counted); any other code keeps the rows in the ring for the next attempt. */
typedef dg_rc_t (*dg_qlog_ship_fn)(void *ctx, const char *rows_json, size_t rows_len,
                                   uint64_t last_seq);

typedef struct dg_qlog_opts {
    bool is_on;             /* false: dg_qlog_record only writes the slow-query line */
    size_t capacity;        /* rows the ring holds (>= 1 when is_on) */
    size_t max_query_bytes; /* SQL text beyond this is cut (on a UTF-8 boundary) */
    int64_t slow_ms;        /* WARN line for queries at least this long; 0 = none */
    int64_t flush_ms;       /* the flusher ships at least this often; 0 = 1000 */
    size_t batch_rows;      /* a batch holds at most this many rows (0 = 1000); that many, or
                               half the capacity, pending wake the flusher early */
    size_t batch_bytes;     /* a batch's JSON stays under this; 0 = 512 KiB */
    dg_qlog_ship_fn ship;   /* NULL: no flusher thread (tests drive dg_qlog__peek/ack) */
    void *ship_ctx;
} dg_qlog_opts_t;

typedef struct dg_qlog dg_qlog_t;

/* Creates the log and, when opts->is_on and opts->ship are set, starts the flusher thread.
 * DG_NOMEM, DG_INTERNAL (thread creation), DG_CONFIG (is_on with capacity 0). */
dg_rc_t dg_qlog_new(const dg_qlog_opts_t *opts, dg_qlog_t **out);
/* Stops the flusher after one last attempt to ship what is left (bounded by the ship
 * callback's own deadline) and frees the log; rows still unshipped are logged as lost.
 * NULL is allowed. */
void dg_qlog_free(dg_qlog_t *q);
/* Records one row (and writes the slow-query WARN line when due). Never fails: a row that
 * cannot be stored (out of memory) is counted as dropped. q may be NULL (no-op). */
void dg_qlog_record(dg_qlog_t *q, const dg_qlog_row_t *row);
/* Wakes the flusher and waits until every row recorded before this call was shipped, or
 * timeout_ms passed. True when they were. */
bool dg_qlog_sync(dg_qlog_t *q, int64_t timeout_ms);

typedef struct dg_qlog_stats {
    uint64_t recorded; /* rows recorded */
    uint64_t dropped;  /* rows dropped: ring full (oldest first) or out of memory */
    uint64_t shipped;  /* rows the store confirmed */
    size_t pending;    /* rows in the ring now */
} dg_qlog_stats_t;
void dg_qlog_stats(dg_qlog_t *q, dg_qlog_stats_t *out);

/* ---- the ring, as the flusher uses it (exposed for unit tests) ---- */

/* Appends the oldest pending rows as a JSON array to out (at most max_rows rows, and at most
 * max_bytes bytes unless a single row is larger: at least one row is taken). Returns the number
 * of rows taken (0 when none or on DG_NOMEM) and the sequence number of the last one. The rows
 * stay in the ring; the JSON is built without the ring's lock held (the records taken are
 * referenced, so a concurrent drop cannot free them meanwhile). */
size_t dg_qlog__peek(dg_qlog_t *q, size_t max_rows, size_t max_bytes, dg_buf_t *out,
                     uint64_t *out_last_seq);
/* Removes every row with a sequence number <= last_seq (rows dropped meanwhile are simply gone
 * already) and counts them as shipped. */
void dg_qlog__ack(dg_qlog_t *q, uint64_t last_seq);

#endif
