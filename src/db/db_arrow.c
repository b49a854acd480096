/* Arrow output of a cursor: the result schema and each chunk as Arrow C Data Interface structs,
 * converted by DuckDB (duckdb_to_arrow_schema, duckdb_data_chunk_to_arrow) with the arrow
 * options of the cursor's own result, so the schema and every array agree.
 *
 * Ownership (checked in DuckDB's source, ArrowConverter::ToArrowArray): the conversion appends
 * the chunk into buffers of a fresh ArrowAppender and hands them to the ArrowArray's
 * private_data; the array keeps no pointer into the chunk. So the chunk is destroyed right after
 * conversion and the array lives until its release callback, independent of the cursor.
 *
 * Confined to the cursor's thread, like dg_db_cursor_next. */
#include <stdlib.h>
#include <string.h>

#include "core/arrow_c.h"
#include "db/db_internal.h"

/* The result's arrow options, created once per cursor (destroyed in dg_db_cursor_free). */
static dg_rc_t arrow_opts(dg_db_cursor_t *c, dg_error_t *err)
{
    if (!c->has_res) {
        return dg_error_set(err, DG_INTERNAL, "the cursor has no result");
    }
    if (!c->arrow_opts) {
        c->arrow_opts = duckdb_result_get_arrow_options(&c->res);
        if (!c->arrow_opts) {
            return dg_error_set(err, DG_NOMEM, "out of memory");
        }
    }
    return DG_OK;
}

/* Maps a conversion failure (DuckDB reports them all as invalid input) and destroys e. */
static dg_rc_t conversion_error(const dg_db_cursor_t *c, duckdb_error_data *e, const char *what,
                                dg_error_t *err)
{
    const char *msg = duckdb_error_data_message(*e);
    char tmp[256];
    dg_db__scrub(c->db, msg ? msg : "conversion failed", tmp, sizeof tmp);
    dg_rc_t rc = dg_error_set(err, DG_NOT_ACCEPTABLE,
                              "the result cannot be converted to Arrow "
                              "(%s): %s",
                              what, tmp);
    duckdb_destroy_error_data(e);
    return rc;
}

dg_rc_t dg_db_cursor_arrow_schema(dg_db_cursor_t *c, struct ArrowSchema *out, dg_error_t *err)
{
    dg_rc_t rc;
    size_t n = 0;
    duckdb_logical_type *types = NULL;
    const char **names = NULL;
    duckdb_error_data e = NULL;

    memset(out, 0, sizeof *out);
    rc = arrow_opts(c, err);
    if (rc != DG_OK) {
        goto out;
    }
    n = (size_t)duckdb_column_count(&c->res);
    /* calloc(0) may return NULL; one spare slot keeps a zero-column result from looking like
     * an allocation failure. */
    types = calloc(n + 1, sizeof *types);
    names = calloc(n + 1, sizeof *names);
    if (!types || !names) {
        rc = dg_error_set(err, DG_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const char *nm = duckdb_column_name(&c->res, i);
        names[i] = nm ? nm : ""; /* owned by the result */
        types[i] = duckdb_column_logical_type(&c->res, i);
        if (!types[i]) {
            rc = dg_error_set(err, DG_NOMEM, "out of memory");
            goto out;
        }
    }
    e = duckdb_to_arrow_schema(c->arrow_opts, types, names, n, out);
    if (e && duckdb_error_data_has_error(e)) {
        memset(out, 0, sizeof *out);
        rc = conversion_error(c, &e, "schema", err);
        goto out;
    }
    rc = DG_OK;
out:
    if (e) {
        duckdb_destroy_error_data(&e);
    }
    for (size_t i = 0; types && i < n; i++) {
        if (types[i]) {
            duckdb_destroy_logical_type(&types[i]);
        }
    }
    free(types);
    free(names);
    return rc;
}

dg_rc_t dg_db_cursor_next_arrow(dg_db_cursor_t *c, struct ArrowArray *out, bool *out_end,
                                dg_error_t *err)
{
    dg_rc_t rc;
    duckdb_error_data e = NULL;

    memset(out, 0, sizeof *out);
    *out_end = false;
    rc = arrow_opts(c, err);
    if (rc != DG_OK) {
        return rc;
    }
    /* The one fetch path: interrupts, errors and the end are handled exactly as for batches. */
    rc = dg_db__cursor_fetch(c, err);
    if (rc != DG_OK) {
        return rc;
    }
    if (!c->chunk) {
        *out_end = true;
        return DG_OK;
    }
    e = duckdb_data_chunk_to_arrow(c->arrow_opts, c->chunk, out);
    /* The array owns a copy (see the file comment): free the chunk's memory now rather than at
     * the next fetch. */
    duckdb_destroy_data_chunk(&c->chunk);
    c->chunk = NULL;
    if (e && duckdb_error_data_has_error(e)) {
        if (out->release) {
            out->release(out);
        }
        memset(out, 0, sizeof *out);
        rc = conversion_error(c, &e, "data", err);
        /* A chunk was consumed and lost: the result can no longer be complete. */
        c->fail_rc = rc;
        c->is_done = true;
        return rc;
    }
    if (e) {
        duckdb_destroy_error_data(&e);
    }
    return DG_OK;
}
