/* The data tools (DESIGN §9): `duckgate gen imdb`, `import imdb` and `build`. They run DuckDB in
 * this process as trusted tools (src/db/db_build.h) with every core, and never touch a served
 * file in place: every output is written as FILE.next and renamed over FILE only when complete
 * (fsync of the file, rename, fsync of the directory), so a reader sees the old file or the
 * new one, never a half-built one, and a failure leaves FILE untouched.
 *
 * Single-threaded callers (the CLI); DuckDB itself uses `threads` worker threads. */
#ifndef DG_DATA_H
#define DG_DATA_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/rc.h"

typedef struct dg_data_opts {
    int threads;           /* DuckDB threads; 0 = every core */
    uint64_t memory_limit; /* bytes; 0 = DuckDB's default */
    FILE *out;             /* progress and summary; NULL = stderr */
    int tty;               /* -1 = ask isatty(out), 0 = plain lines, 1 = redrawn bars */
} dg_data_opts_t;

/* Writes a deterministic IMDb-shaped database to out_path: the five tables of the real dumps
 * (name_basics, title_basics, title_principals, title_ratings, title_crew) with their columns
 * and types, sized by scale (1 = about 15M people, 11M titles, 90M credits, 1.5M ratings).
 * The same scale gives the same table contents (docs/pipeline.md).
 * Errors: DG_BAD_REQUEST (scale outside (0, 10]), DG_IO, DG_SQL_ERROR, DG_RESOURCE_EXHAUSTED,
 * DG_NOMEM. */
dg_rc_t dg_data_gen_imdb(double scale, const char *out_path, const dg_data_opts_t *o,
                         dg_error_t *err);

/* Loads the real IMDb TSV dumps of dir (name.basics.tsv, title.basics.tsv,
 * title.principals.tsv, title.ratings.tsv, title.crew.tsv, each plain or .gz) into out_path
 * with typed columns. Errors: DG_NOT_FOUND (a dump is missing; the message names it), DG_IO,
 * DG_SQL_ERROR (a malformed dump: DuckDB's message names file and line), DG_NOMEM. */
dg_rc_t dg_data_import_imdb(const char *dir, const char *out_path, const dg_data_opts_t *o,
                            dg_error_t *err);

/* Runs the ordered steps NN_name.sql of pipeline_dir on a copy of file (file.next), prints a
 * progress bar per step and a summary table, and on success renames file.next over file.
 * On failure file is untouched and file.next removed; the message names the step.
 * Errors: DG_NOT_FOUND (file or pipeline_dir missing, no steps), DG_IO, DG_SQL_ERROR,
 * DG_RESOURCE_EXHAUSTED, DG_NOMEM. */
dg_rc_t dg_data_build(const char *file, const char *pipeline_dir, const dg_data_opts_t *o,
                      dg_error_t *err);

/* A remote build (docs/pipeline.md "Remote builds"): the server and what to build there. */
typedef struct dg_data_remote {
    const char *url;          /* the server's base URL, e.g. http://127.0.0.1:8080 */
    const char *key;          /* an admin API key, or NULL (a server with auth off) */
    const char *db;           /* the served database to rebuild */
    const char *pipeline_dir; /* local directory of NN_name.sql steps */
    int poll_ms;              /* how often a running job is polled; 0 = 250 */
} dg_data_remote_t;

/* Runs the steps of r->pipeline_dir on the server r->url as admin jobs on a staging copy of
 * r->db, with a progress bar per step and the summary table (on o->out), then has the server
 * swap the copy in (reload) and prints the new data version. A failed or cancelled step, a
 * SIGINT (the running job is cancelled) or a refused reload discards the staging copy; the
 * served file never changes then. Errors: those of the pipeline listing (DG_NOT_FOUND, ...),
 * DG_IO (server unreachable), DG_PROTOCOL (an answer that is not the API's JSON),
 * DG_UNAUTHORIZED/DG_FORBIDDEN (bad or non-admin key), DG_UNKNOWN_DB, DG_CANCELLED (SIGINT),
 * a failed step's code (the message names the step), DG_NOMEM. */
dg_rc_t dg_data_build_remote(const dg_data_remote_t *r, const dg_data_opts_t *o, dg_error_t *err);

#endif
