/* Arrow IPC stream writer: turns Arrow C Data Interface structs (core/arrow_c.h) into the Arrow
 * IPC streaming format — a Schema message, then per batch any DictionaryBatch messages followed by
 * one RecordBatch message, then the end-of-stream marker — readable by any Arrow implementation.
 * Metadata is written as FlatBuffers by a small builder in this file; bodies are the producer's
 * buffers copied with 8-byte padding. Little-endian hosts only (the format's native order).
 *
 * One writer serves one result and is confined to one thread. The schema is borrowed and must
 * outlive the writer; arrays are borrowed for the duration of a call. */
#ifndef DG_ARROW_IPC_H
#define DG_ARROW_IPC_H

#include "core/arrow_c.h"
#include "core/buf.h"
#include "core/rc.h"

typedef struct dg_arrow_ipc dg_arrow_ipc_t;

/* Checks that every field's type can be written and assigns dictionary ids. The schema is a
 * struct ("+s") whose children are the columns. DG_NOT_ACCEPTABLE (message names the column and
 * format) for unsupported types; DG_NOMEM. */
dg_rc_t dg_arrow_ipc_new(const struct ArrowSchema *schema, dg_arrow_ipc_t **out, dg_error_t *err);
/* Appends the Schema message. */
dg_rc_t dg_arrow_ipc_write_schema(dg_arrow_ipc_t *w, dg_buf_t *out);
/* Appends the dictionaries of batch (when the schema has dictionary-encoded columns) and the
 * RecordBatch message with its body. batch is a struct array whose children are the columns.
 * DG_INTERNAL for a shape the writer does not support (non-zero offsets in nested arrays). */
dg_rc_t dg_arrow_ipc_write_batch(dg_arrow_ipc_t *w, const struct ArrowArray *batch, dg_buf_t *out,
                                 dg_error_t *err);
/* Appends the end-of-stream marker. */
dg_rc_t dg_arrow_ipc_write_eos(dg_arrow_ipc_t *w, dg_buf_t *out);
/* NULL is allowed. */
void dg_arrow_ipc_free(dg_arrow_ipc_t *w);

#endif
