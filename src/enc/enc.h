/* Encoders turn column batches (core/batch.h) into response bytes. They know neither HTTP nor
 * DuckDB. One encoder instance serves one result and is confined to one thread.
 *
 * Call order: dg_enc_new, dg_enc_begin, dg_enc_batch* , then exactly one of dg_enc_end or
 * dg_enc_fail, then dg_enc_free. Every call appends to `out` (borrowed), never resets it; the
 * caller drains `out` when it likes. An append that would pass out's cap returns its over_rc
 * (DG_RESULT_TOO_LARGE), leaving the encoder unusable except for dg_enc_fail/dg_enc_free. */
#ifndef DG_ENC_H
#define DG_ENC_H

#include <stdint.h>

#include "core/batch.h"
#include "core/buf.h"
#include "core/rc.h"

typedef enum dg_format {
    DG_FMT_JSON = 0, /* one document: {"columns":[...],"rows":[[...]],"row_count":N,...} */
    DG_FMT_NDJSON,   /* meta line, rows lines, end|error line (DESIGN §5) */
    DG_FMT_CSV,      /* RFC 4180, header row */
    DG_FMT_TSV,
    DG_FMT_PARQUET,
    DG_FMT_ARROW,
    DG_FMT_COUNT_
} dg_format_t;

/* "json", "ndjson", ... ; NULL for an invalid value. */
const char *dg_format_name(dg_format_t f);
/* Content-Type for a format. */
const char *dg_format_content_type(dg_format_t f);
/* Parses a format name ("json", "ndjson", "csv", "tsv", "parquet", "arrow"); -1 if unknown. */
int dg_format_parse(const char *name);

typedef struct dg_enc_opts {
    const char *query_id;  /* borrowed; echoed in JSON/NDJSON output */
} dg_enc_opts_t;

/* Totals written by dg_enc_end. Times in milliseconds. */
typedef struct dg_enc_summary {
    uint64_t rows;
    uint64_t bytes;        /* bytes of output before this trailer (for NDJSON end line) */
    bool truncated;        /* a row cap cut the result */
    double queue_ms, execute_ms, encode_ms, compress_ms, elapsed_ms;
} dg_enc_summary_t;

typedef struct dg_enc dg_enc_t;

/* Creates an encoder for a result with the given schema (borrowed; must outlive the encoder).
 * DG_NOT_ACCEPTABLE for a format this build cannot encode; DG_NOMEM. */
dg_rc_t dg_enc_new(dg_format_t fmt, const dg_schema_t *schema, const dg_enc_opts_t *opts,
                   dg_enc_t **out);
/* Writes what precedes the rows (JSON head with columns, NDJSON meta line, CSV header). */
dg_rc_t dg_enc_begin(dg_enc_t *e, dg_buf_t *out);
/* Encodes rows [0, n_rows) of a batch, or only the first max_rows of them when the caller caps
 * rows (the caller tracks the cap; pass batch->n_rows otherwise). */
dg_rc_t dg_enc_batch(dg_enc_t *e, const dg_batch_t *batch, uint64_t n_rows, dg_buf_t *out);
/* Writes the trailer (JSON tail with row_count/truncated/query_id/elapsed_ms, NDJSON end line). */
dg_rc_t dg_enc_end(dg_enc_t *e, const dg_enc_summary_t *sum, dg_buf_t *out);
/* Writes the in-band failure marker where the format has one (NDJSON error line); a no-op that
 * returns DG_OK for formats without one. */
dg_rc_t dg_enc_fail(dg_enc_t *e, dg_rc_t code, const char *message, dg_buf_t *out);
void dg_enc_free(dg_enc_t *e);

/* Writes one value of v at row as JSON (lossless rules of DESIGN §5). Exposed for tests and for
 * the catalog writer. */
dg_rc_t dg_enc_json_value(const dg_vec_t *v, uint64_t row, dg_buf_t *out);
/* Shortest round-trip decimal form of a finite double ("1e+300" style exponent allowed, always
 * parseable by strtod and JSON). Writes at most 32 bytes plus NUL into out; returns length. */
size_t dg_enc_double(double d, char *out);

#endif
