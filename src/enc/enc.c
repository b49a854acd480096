/* Encoder objects and the row loops for JSON, NDJSON, CSV and TSV (shapes in docs/formats.md).
 *
 * dg_enc_new plans every column once (enc_value.c); dg_enc_batch then walks rows and calls one
 * writer per cell through a function pointer. Output space is reserved in bulk, one row's worst
 * case of fixed-width cells at a time, so fixed cells write straight into the buffer; variable
 * cells (strings, nested values) reserve for themselves. When the bulk reservation would pass
 * the cap, the row falls back to exact per-cell appends, so a result that fits is never refused.
 * A failed call leaves `out` as it found it and marks the encoder broken.
 * An encoder is confined to one thread. */
#include "enc/enc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "enc/enc_int.h"

typedef enum enc_state { ST_NEW = 0, ST_BEGUN, ST_DONE } enc_state_t;

struct dg_enc {
    dg_format_t fmt;
    dg_enc__mode_t mode;
    const dg_schema_t *schema;
    char *query_id;          /* owned copy; NULL when none was given */
    size_t n_cols;
    dg_enc__col_t *cols;
    uint64_t rows_out;       /* rows written so far (JSON needs it for commas) */
    enc_state_t state;
    dg_rc_t broken;          /* first append failure; DG_OK while usable */
    dg_buf_t scratch;        /* CSV/TSV nested cells */
};

static const struct {
    const char *name, *content_type;
} formats[DG_FMT_COUNT_] = {
    [DG_FMT_JSON] = {"json", "application/json"},
    [DG_FMT_NDJSON] = {"ndjson", "application/x-ndjson"},
    [DG_FMT_CSV] = {"csv", "text/csv; charset=utf-8; header=present"},
    [DG_FMT_TSV] = {"tsv", "text/tab-separated-values; charset=utf-8"},
    [DG_FMT_PARQUET] = {"parquet", "application/vnd.apache.parquet"},
    [DG_FMT_ARROW] = {"arrow", "application/vnd.apache.arrow.stream"},
};

const char *dg_format_name(dg_format_t f)
{
    return (unsigned)f < DG_FMT_COUNT_ ? formats[f].name : NULL;
}

const char *dg_format_content_type(dg_format_t f)
{
    return (unsigned)f < DG_FMT_COUNT_ ? formats[f].content_type : NULL;
}

int dg_format_parse(const char *name)
{
    if (!name) {
        return -1;
    }
    for (int i = 0; i < DG_FMT_COUNT_; i++) {
        if (strcmp(name, formats[i].name) == 0) {
            return i;
        }
    }
    return -1;
}

void dg_enc_free(dg_enc_t *e)
{
    if (!e) {
        return;
    }
    for (size_t i = 0; e->cols && i < e->n_cols; i++) {
        dg_enc__plan_free(&e->cols[i]);
    }
    free(e->cols);
    free(e->query_id);
    dg_buf_free(&e->scratch);
    free(e);
}

dg_rc_t dg_enc_new(dg_format_t fmt, const dg_schema_t *schema, const dg_enc_opts_t *opts,
                   dg_enc_t **out)
{
    *out = NULL;
    if (fmt != DG_FMT_JSON && fmt != DG_FMT_NDJSON && fmt != DG_FMT_CSV && fmt != DG_FMT_TSV) {
        return DG_NOT_ACCEPTABLE; /* Parquet and Arrow are not built yet */
    }
    if (DG_NEVER(!schema)) {
        return DG_INTERNAL;
    }
    dg_enc_t *e = calloc(1, sizeof *e);
    if (!e) {
        return DG_NOMEM;
    }
    e->fmt = fmt;
    e->mode = fmt == DG_FMT_CSV ? DG_ENC__CSV : fmt == DG_FMT_TSV ? DG_ENC__TSV : DG_ENC__JSON;
    e->schema = schema;
    dg_buf_init(&e->scratch, 0);
    dg_rc_t rc = DG_OK;
    if (opts && opts->query_id) {
        e->query_id = strdup(opts->query_id);
        if (!e->query_id) {
            rc = DG_NOMEM;
            goto out;
        }
    }
    e->cols = calloc(schema->n_cols ? schema->n_cols : 1, sizeof *e->cols);
    if (!e->cols) {
        rc = DG_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < schema->n_cols; i++) {
        rc = dg_enc__plan(&e->cols[i], schema->types[i], e->mode, &e->scratch);
        if (rc != DG_OK) {
            goto out;
        }
        e->n_cols = i + 1;
    }
out:
    if (rc != DG_OK) {
        dg_enc_free(e);
        return rc;
    }
    *out = e;
    return DG_OK;
}

/* ---- shared pieces ---- */

static const char *type_name(const dg_type_t *t)
{
    static const char *const names[] = {
        [DG_TYPE_BOOLEAN] = "BOOLEAN",     [DG_TYPE_TINYINT] = "TINYINT",
        [DG_TYPE_SMALLINT] = "SMALLINT",   [DG_TYPE_INTEGER] = "INTEGER",
        [DG_TYPE_BIGINT] = "BIGINT",       [DG_TYPE_UTINYINT] = "UTINYINT",
        [DG_TYPE_USMALLINT] = "USMALLINT", [DG_TYPE_UINTEGER] = "UINTEGER",
        [DG_TYPE_UBIGINT] = "UBIGINT",     [DG_TYPE_FLOAT] = "FLOAT",
        [DG_TYPE_DOUBLE] = "DOUBLE",       [DG_TYPE_TIMESTAMP] = "TIMESTAMP",
        [DG_TYPE_DATE] = "DATE",           [DG_TYPE_TIME] = "TIME",
        [DG_TYPE_INTERVAL] = "INTERVAL",   [DG_TYPE_HUGEINT] = "HUGEINT",
        [DG_TYPE_VARCHAR] = "VARCHAR",     [DG_TYPE_BLOB] = "BLOB",
        [DG_TYPE_DECIMAL] = "DECIMAL",     [DG_TYPE_TIMESTAMP_S] = "TIMESTAMP_S",
        [DG_TYPE_TIMESTAMP_MS] = "TIMESTAMP_MS", [DG_TYPE_TIMESTAMP_NS] = "TIMESTAMP_NS",
        [DG_TYPE_ENUM] = "ENUM",           [DG_TYPE_LIST] = "LIST",
        [DG_TYPE_STRUCT] = "STRUCT",       [DG_TYPE_MAP] = "MAP",
        [DG_TYPE_UUID] = "UUID",           [DG_TYPE_UNION] = "UNION",
        [DG_TYPE_BIT] = "BIT",             [DG_TYPE_TIME_TZ] = "TIME WITH TIME ZONE",
        [DG_TYPE_TIMESTAMP_TZ] = "TIMESTAMP WITH TIME ZONE",
        [DG_TYPE_UHUGEINT] = "UHUGEINT",   [DG_TYPE_ARRAY] = "ARRAY",
        [DG_TYPE_BIGNUM] = "BIGNUM",       [DG_TYPE_SQLNULL] = "NULL",
        [DG_TYPE_TIME_NS] = "TIME_NS",
    };
    if (t->name) {
        return t->name;
    }
    if ((unsigned)t->id < sizeof names / sizeof names[0] && names[t->id]) {
        return names[t->id];
    }
    return "UNKNOWN";
}

static const char *col_name(const dg_schema_t *s, size_t i)
{
    return s->names && s->names[i] ? s->names[i] : "";
}

/* `"columns":[{"name":..,"type":..},...]` */
static dg_rc_t put_columns(const dg_enc_t *e, dg_buf_t *out)
{
    dg_rc_t rc = dg_buf_puts(out, "\"columns\":[");
    for (size_t i = 0; i < e->schema->n_cols && rc == DG_OK; i++) {
        const char *name = col_name(e->schema, i);
        const char *type = type_name(e->schema->types[i]);
        rc = dg_buf_puts(out, i ? ",{\"name\":" : "{\"name\":");
        if (rc == DG_OK) {
            rc = dg_enc__json_str(out, name, strlen(name));
        }
        if (rc == DG_OK) {
            rc = dg_buf_puts(out, ",\"type\":");
        }
        if (rc == DG_OK) {
            rc = dg_enc__json_str(out, type, strlen(type));
        }
        if (rc == DG_OK) {
            rc = dg_buf_putc(out, '}');
        }
    }
    return rc == DG_OK ? dg_buf_putc(out, ']') : rc;
}

static dg_rc_t put_query_id(const dg_enc_t *e, dg_buf_t *out)
{
    dg_rc_t rc = dg_buf_puts(out, "\"query_id\":");
    if (rc != DG_OK) {
        return rc;
    }
    if (!e->query_id) {
        return dg_buf_puts(out, "null");
    }
    return dg_enc__json_str(out, e->query_id, strlen(e->query_id));
}

/* Milliseconds with microsecond resolution; non-finite or negative inputs become 0. */
static double ms(double v)
{
    return isfinite(v) && v > 0 ? v : 0.0;
}

/* ---- rows ---- */

/* Writes the cells of row r from column `from` on, exactly (no bulk reservation). */
static dg_rc_t row_tail_exact(dg_enc_t *e, const dg_batch_t *b, uint64_t r, size_t from,
                              dg_buf_t *out)
{
    char sep = e->mode == DG_ENC__JSON ? ',' : e->mode == DG_ENC__CSV ? ',' : '\t';
    dg_rc_t rc = DG_OK;
    for (size_t c = from; c < e->n_cols && rc == DG_OK; c++) {
        if (c) {
            rc = dg_buf_putc(out, sep);
        }
        if (rc == DG_OK) {
            rc = dg_enc__cell(&e->cols[c], &b->cols[c], r, out);
        }
    }
    if (rc == DG_OK) {
        rc = e->mode == DG_ENC__JSON ? dg_buf_putc(out, ']') : dg_buf_putc(out, '\n');
    }
    return rc;
}

/* The rows of a batch, continuing after e->rows_out earlier rows: JSON arrays ("[..],[..]")
 * or CSV/TSV lines. One loop serves both; what differs (row brackets, separator, NULL text,
 * row end) is chosen once per call, outside the row loop. */
static dg_rc_t encode_rows(dg_enc_t *e, const dg_batch_t *b, uint64_t n, dg_buf_t *out)
{
    const size_t nc = e->n_cols;
    const size_t row_max = nc * (DG_ENC__FIX_MAX + 1) + 4;
    const bool is_json = e->mode == DG_ENC__JSON;
    const char sep = e->mode == DG_ENC__TSV ? '\t' : ',';
    const size_t null_len = is_json ? 4 : 0; /* JSON null; an empty CSV/TSV field */
    const char row_end = is_json ? ']' : '\n';
    dg_rc_t rc;
    for (uint64_t r = 0; r < n; r++) {
        rc = dg_enc__ensure(out, row_max);
        if (rc == DG_NOMEM) {
            return rc;
        }
        if (rc != DG_OK) {
            /* Close to the cap: this row goes out value by value, exactly. */
            rc = is_json ? dg_buf_puts(out, e->rows_out ? ",[" : "[") : DG_OK;
            if (rc == DG_OK) {
                rc = row_tail_exact(e, b, r, 0, out);
            }
            if (rc != DG_OK) {
                return rc;
            }
            e->rows_out++;
            continue;
        }
        char *o = out->p + out->len;
        if (is_json) {
            if (e->rows_out) {
                *o++ = ',';
            }
            *o++ = '[';
        }
        bool tail_done = false;
        for (size_t c = 0; c < nc; c++) {
            const dg_vec_t *v = &b->cols[c];
            const dg_enc__col_t *col = &e->cols[c];
            if (c) {
                *o++ = sep;
            }
            if (v->validity && !((v->validity[r >> 6] >> (r & 63)) & 1)) {
                memcpy(o, "null", null_len);
                o += null_len;
            } else if (col->fix) {
                o = col->fix(v, r, o);
            } else {
                out->len = (size_t)(o - out->p);
                rc = col->var(col, v, r, out);
                if (rc != DG_OK) {
                    return rc;
                }
                rc = dg_enc__ensure(out, row_max);
                if (rc == DG_NOMEM) {
                    return rc;
                }
                if (rc != DG_OK) {
                    /* Close to the cap: finish this row exactly. */
                    rc = row_tail_exact(e, b, r, c + 1, out);
                    if (rc != DG_OK) {
                        return rc;
                    }
                    tail_done = true;
                    break;
                }
                o = out->p + out->len;
            }
        }
        if (!tail_done) {
            *o++ = row_end;
            out->len = (size_t)(o - out->p);
            out->p[out->len] = '\0';
        }
        e->rows_out++;
    }
    return DG_OK;
}

/* ---- API ---- */

static dg_rc_t usable(const dg_enc_t *e)
{
    if (DG_NEVER(!e)) {
        return DG_INTERNAL;
    }
    return e->broken;
}

/* Ends a call: on failure, drop what this call appended and remember the error. */
static dg_rc_t finish(dg_enc_t *e, dg_rc_t rc, dg_buf_t *out, size_t start_len)
{
    if (rc != DG_OK) {
        out->len = start_len;
        if (out->p) {
            out->p[start_len] = '\0';
        }
        e->broken = rc;
    }
    return rc;
}

dg_rc_t dg_enc_begin(dg_enc_t *e, dg_buf_t *out)
{
    dg_rc_t rc = usable(e);
    if (rc != DG_OK) {
        return rc;
    }
    if (DG_NEVER(e->state != ST_NEW)) {
        return DG_INTERNAL;
    }
    size_t start = out->len;
    switch (e->fmt) {
    case DG_FMT_JSON:
        rc = dg_buf_putc(out, '{');
        if (rc == DG_OK) {
            rc = put_columns(e, out);
        }
        if (rc == DG_OK) {
            rc = dg_buf_puts(out, ",\"rows\":[");
        }
        break;
    case DG_FMT_NDJSON:
        rc = dg_buf_puts(out, "{\"type\":\"meta\",");
        if (rc == DG_OK) {
            rc = put_columns(e, out);
        }
        if (rc == DG_OK) {
            rc = dg_buf_putc(out, ',');
        }
        if (rc == DG_OK) {
            rc = put_query_id(e, out);
        }
        if (rc == DG_OK) {
            rc = dg_buf_puts(out, "}\n");
        }
        break;
    default: /* CSV/TSV header row */
        for (size_t i = 0; i < e->schema->n_cols && rc == DG_OK; i++) {
            const char *name = col_name(e->schema, i);
            if (i) {
                rc = dg_buf_putc(out, e->mode == DG_ENC__CSV ? ',' : '\t');
            }
            if (rc == DG_OK) {
                rc = dg_enc__text_field(out, e->mode, name, strlen(name));
            }
        }
        if (rc == DG_OK) {
            rc = dg_buf_putc(out, '\n');
        }
        break;
    }
    e->state = ST_BEGUN;
    return finish(e, rc, out, start);
}

dg_rc_t dg_enc_batch(dg_enc_t *e, const dg_batch_t *batch, uint64_t n_rows, dg_buf_t *out)
{
    dg_rc_t rc = usable(e);
    if (rc != DG_OK) {
        return rc;
    }
    if (DG_NEVER(e->state != ST_BEGUN || !batch || batch->n_cols != e->n_cols)) {
        return DG_INTERNAL;
    }
    if (n_rows > batch->n_rows) {
        n_rows = batch->n_rows;
    }
    if (n_rows == 0) {
        return DG_OK; /* NDJSON: no empty rows line */
    }
    size_t start = out->len;
    uint64_t rows_before = e->rows_out;
    switch (e->fmt) {
    case DG_FMT_JSON:
        rc = encode_rows(e, batch, n_rows, out);
        break;
    case DG_FMT_NDJSON:
        rc = dg_buf_puts(out, "{\"type\":\"rows\",\"rows\":[");
        e->rows_out = 0; /* commas restart on every line */
        if (rc == DG_OK) {
            rc = encode_rows(e, batch, n_rows, out);
        }
        if (rc == DG_OK) {
            rc = dg_buf_puts(out, "]}\n");
        }
        e->rows_out = rows_before + n_rows;
        break;
    default:
        rc = encode_rows(e, batch, n_rows, out);
        break;
    }
    if (rc != DG_OK) {
        e->rows_out = rows_before;
    }
    return finish(e, rc, out, start);
}

dg_rc_t dg_enc_end(dg_enc_t *e, const dg_enc_summary_t *sum, dg_buf_t *out)
{
    dg_rc_t rc = usable(e);
    if (rc != DG_OK) {
        return rc;
    }
    if (DG_NEVER(e->state != ST_BEGUN)) {
        return DG_INTERNAL;
    }
    dg_enc_summary_t zero = {0};
    if (!sum) {
        sum = &zero;
    }
    size_t start = out->len;
    switch (e->fmt) {
    case DG_FMT_JSON:
        rc = dg_buf_printf(out, "],\"row_count\":%llu,\"truncated\":%s,",
                           (unsigned long long)sum->rows, sum->truncated ? "true" : "false");
        if (rc == DG_OK) {
            rc = put_query_id(e, out);
        }
        if (rc == DG_OK) {
            rc = dg_buf_printf(out, ",\"elapsed_ms\":%.3f}\n", ms(sum->elapsed_ms));
        }
        break;
    case DG_FMT_NDJSON:
        rc = dg_buf_printf(out,
                           "{\"type\":\"end\",\"rows\":%llu,\"bytes\":%llu,\"truncated\":%s,"
                           "\"elapsed_ms\":%.3f,\"queue_ms\":%.3f,\"execute_ms\":%.3f,"
                           "\"encode_ms\":%.3f,\"compress_ms\":%.3f}\n",
                           (unsigned long long)sum->rows, (unsigned long long)sum->bytes,
                           sum->truncated ? "true" : "false", ms(sum->elapsed_ms),
                           ms(sum->queue_ms), ms(sum->execute_ms), ms(sum->encode_ms),
                           ms(sum->compress_ms));
        break;
    default:
        break; /* CSV/TSV have no trailer */
    }
    e->state = ST_DONE;
    return finish(e, rc, out, start);
}

dg_rc_t dg_enc_fail(dg_enc_t *e, dg_rc_t code, const char *message, dg_buf_t *out)
{
    if (DG_NEVER(!e)) {
        return DG_INTERNAL;
    }
    e->state = ST_DONE;
    if (e->fmt != DG_FMT_NDJSON) {
        return DG_OK;
    }
    if (!message) {
        message = dg_rc_message(code);
    }
    size_t start = out->len;
    dg_rc_t rc = dg_buf_puts(out, "{\"type\":\"error\",\"code\":");
    if (rc == DG_OK) {
        const char *name = dg_rc_name(code);
        rc = dg_enc__json_str(out, name, strlen(name));
    }
    if (rc == DG_OK) {
        rc = dg_buf_puts(out, ",\"message\":");
    }
    if (rc == DG_OK) {
        rc = dg_enc__json_str(out, message, strlen(message));
    }
    if (rc == DG_OK) {
        rc = dg_buf_puts(out, "}\n");
    }
    if (rc != DG_OK) {
        out->len = start;
        if (out->p) {
            out->p[start] = '\0';
        }
    }
    return rc;
}

dg_rc_t dg_enc_json_value(const dg_vec_t *v, uint64_t row, dg_buf_t *out)
{
    dg_enc__col_t c;
    dg_rc_t rc = dg_enc__plan(&c, v->type, DG_ENC__JSON, NULL);
    if (rc != DG_OK) {
        return rc;
    }
    size_t start = out->len;
    rc = dg_enc__cell(&c, v, row, out);
    if (rc != DG_OK) {
        out->len = start;
        if (out->p) {
            out->p[start] = '\0';
        }
    }
    dg_enc__plan_free(&c);
    return rc;
}
