/* Trusted DuckDB instances for the data tools (`duckgate gen`, `import`, `build`): the owner's
 * own SQL, run in-process with every core, progress reporting per statement. Not the serving
 * path: no sandbox check, no lock_configuration. Never use it for a caller's SQL.
 *
 * A dg_db_build_t is confined to the thread that opened it (the progress callback runs on that
 * thread, between DuckDB execution tasks). */
#ifndef DG_DB_BUILD_H
#define DG_DB_BUILD_H

#include <stdbool.h>
#include <stdint.h>

#include "core/rc.h"

typedef struct dg_db_build_opts {
    const char *path;         /* database file (created if missing); borrowed for the call */
    int threads;              /* 0 = every core DuckDB sees */
    uint64_t memory_limit;    /* bytes; 0 = DuckDB's default (80% of RAM) */
    const char *temp_dir;     /* spill directory; NULL = DuckDB's default (<path>.tmp) */
    bool has_external_access; /* true: file readers allowed (the importer's read_csv) */
} dg_db_build_opts_t;

typedef struct dg_db_build dg_db_build_t;

/* Opens (or creates) the file read-write with extension autoloading/installing off.
 * Errors: DG_IO (cannot open: DuckDB's message), DG_CONFIG, DG_NOMEM. *out NULL on error. */
dg_rc_t dg_db_build_open(const dg_db_build_opts_t *opts, dg_db_build_t **out, dg_error_t *err);
/* Closes the instance (DuckDB checkpoints on a clean close). NULL is allowed. */
void dg_db_build_close(dg_db_build_t *b);

/* Progress of the running statement, as DuckDB reports it. */
typedef struct dg_db_progress {
    double percent;      /* 0..100, or -1 when DuckDB cannot tell */
    uint64_t rows_done;  /* rows processed so far by the running statement */
    uint64_t rows_total; /* rows DuckDB expects to process; 0 when unknown */
    int statement;       /* 1-based index of the running statement in the script */
    int n_statements;
} dg_db_progress_t;

/* Called about every 100 ms while a statement runs, and once at its end with percent 100. */
typedef void (*dg_db_progress_fn)(const dg_db_progress_t *p, void *ctx);

/* Runs every statement of the trusted script sql in order, stopping at the first error, calling
 * fn (may be NULL) with the progress. *out_rows (may be NULL) gets the rows the script wrote:
 * the sum over statements of their row counts (CREATE TABLE AS / INSERT report theirs).
 * Errors: DG_SQL_ERROR (DuckDB's message, prefixed with the failing statement's number when the
 * script has several), DG_RESOURCE_EXHAUSTED, DG_NOMEM, DG_INTERNAL. */
dg_rc_t dg_db_build_run(dg_db_build_t *b, const char *sql, dg_db_progress_fn fn, void *ctx,
                        uint64_t *out_rows, dg_error_t *err);

#endif
