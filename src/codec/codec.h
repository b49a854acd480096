/* Stream compressors for response bodies: identity, gzip (zlib), zstd, brotli. A codec instance
 * compresses one response and is confined to one thread. Codecs know neither HTTP nor DuckDB.
 *
 * Call order: dg_codec_new, any mix of dg_codec_write and dg_codec_flush, one dg_codec_finish,
 * dg_codec_free. Every call appends compressed bytes to `out` (borrowed) and never resets it.
 * dg_codec_flush makes everything written so far decodable by the client (a sync flush), so a
 * streaming client sees rows as batches are produced. */
#ifndef DG_CODEC_H
#define DG_CODEC_H

#include <stddef.h>

#include "core/buf.h"
#include "core/rc.h"

typedef enum dg_codec_id {
    DG_CODEC_IDENTITY = 0,
    DG_CODEC_GZIP,
    DG_CODEC_ZSTD,
    DG_CODEC_BR,
    DG_CODEC_COUNT_
} dg_codec_id_t;

/* Content-Encoding token: "identity", "gzip", "zstd", "br". */
const char *dg_codec_name(dg_codec_id_t id);
/* Codec for a token (case-insensitive), or -1. "x-gzip" is gzip. */
int dg_codec_parse(const char *name, size_t len);
/* Default level: gzip 1, zstd 1, br 1 (fast levels; DESIGN §11). */
int dg_codec_default_level(dg_codec_id_t id);
/* Valid level range of a codec. */
void dg_codec_level_range(dg_codec_id_t id, int *out_min, int *out_max);

typedef struct dg_codec dg_codec_t;

/* Creates a compressor; level outside the codec's range → DG_CONFIG. DG_NOMEM. */
dg_rc_t dg_codec_new(dg_codec_id_t id, int level, dg_codec_t **out);
/* Compresses len bytes of in (borrowed) into out; may keep some in internal state. */
dg_rc_t dg_codec_write(dg_codec_t *c, const void *in, size_t len, dg_buf_t *out);
/* Emits everything written so far in decodable form. */
dg_rc_t dg_codec_flush(dg_codec_t *c, dg_buf_t *out);
/* Ends the stream (trailer/checksum). No write or flush may follow. */
dg_rc_t dg_codec_finish(dg_codec_t *c, dg_buf_t *out);
/* NULL is allowed. */
void dg_codec_free(dg_codec_t *c);

#endif
