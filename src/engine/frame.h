/* The frame protocol between the HTTP front and an engine process, one socketpair per slot
 * (SOCK_STREAM). Every frame is an 8-byte header followed by `len` payload bytes:
 *     uint32 len (little endian), uint8 type, uint8 flags, uint16 reserved (0)
 * Front -> engine: REQ (JSON request, below), CANCEL (empty payload).
 * Engine -> front, per request, in order: HEAD, DATA*, then END; or ERROR at any point (also
 * after HEAD/DATA, meaning the stream failed mid-way). Nothing follows END or ERROR until the
 * next REQ. A CANCEL that arrives after the engine finished is ignored.
 *
 * REQ payload (JSON object):
 *   {"id":"<query id>","kind":"sql|admin|catalog|stats|ping","db":"<name>","sql":"...",
 *    "params":[...]|{...},"format":"json|ndjson|csv|tsv|arrow|parquet","timeout_ms":N,
 *    "max_rows":N,"max_bytes":N,"max_export_bytes":N,"queue_ms":N,
 *    "encoding":"identity|zstd|gzip|br","level":N}
 * kind "stats" answers HEAD/DATA/END with the engine's DuckDB memory per database (metrics).
 * kinds "qlog_append" (END {"acked":SEQ,...}) and "qlog_query" (a result like "sql"), and
 * "admin" on db "_query_log", are the query log's, served by engine 0 only (engine_qlog.h).
 * kind "job" (admin jobs, server/jobs.c) runs trusted SQL like "admin" but discards the rows: it
 * answers PROGRESS* (every ~250 ms while it runs: DuckDB's query progress 0..100 or null, rows
 * so far) and then END ({"rows":N,"changes":bool}) or ERROR. END and ERROR of kinds "admin" and
 * "job", and HEAD of "admin", carry "changes":true once a statement that is not a SELECT ran.
 * HEAD payload (JSON): {"status":200,"content_type":"...","content_encoding":"zstd"?,
 *                       "queue_ms":..,"execute_ms":..,"encode_ms":..,"compress_ms":..}
 * DATA payload: response body bytes, at most DG_FRAME_MAX_PAYLOAD per frame.
 * END payload (JSON): {"rows":N,"bytes":N,"truncated":bool,"queue_ms":..,"execute_ms":..,
 *                      "encode_ms":..,"compress_ms":..}
 * ERROR payload (JSON): {"code":"<dg_rc name>","message":"..."} — HTTP status from the rc table.
 * HEAD and END also carry "deterministic":true when the result depends only on the data (the
 * sandbox walk found no volatile function and no sampling; the catalog): the front caches only
 * those (docs/cache.md).
 * Thread-safe: pure functions over caller-owned buffers. */
#ifndef DG_FRAME_H
#define DG_FRAME_H

#include <stdint.h>

#include "core/buf.h"
#include "core/rc.h"

#define DG_FRAME_HEADER_LEN 8u
#define DG_FRAME_MAX_PAYLOAD (1u << 20)

typedef enum dg_frame_type {
    DG_FRAME_REQ = 1,
    DG_FRAME_CANCEL = 2,
    DG_FRAME_HEAD = 3,
    DG_FRAME_DATA = 4,
    DG_FRAME_END = 5,
    DG_FRAME_ERROR = 6,
    DG_FRAME_PROGRESS = 7, /* engine -> front, kind "job" only: {"progress":P|null,"rows":N} */
} dg_frame_type_t;

/* Writes one frame (header + payload) to fd, blocking until written. DG_IO/DG_CLIENT_GONE when
 * the peer is gone; DG_INTERNAL when len > DG_FRAME_MAX_PAYLOAD. */
dg_rc_t dg_frame_write(int fd, dg_frame_type_t type, const void *payload, uint32_t len);
/* Reads one frame, replacing the contents of payload (its cap bounds the size). DG_PROTOCOL on
 * EOF, a bad header or an unknown type; DG_IO on a read error. */
dg_rc_t dg_frame_read(int fd, dg_frame_type_t *out_type, dg_buf_t *payload);
/* Encodes/decodes the 8-byte header (exposed for tests and the fuzz target). */
void dg_frame_header_encode(uint8_t out[DG_FRAME_HEADER_LEN], dg_frame_type_t type, uint32_t len);
dg_rc_t dg_frame_header_decode(const uint8_t in[DG_FRAME_HEADER_LEN], dg_frame_type_t *out_type,
                               uint32_t *out_len);

#endif
