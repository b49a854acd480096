/* Admin imports (DESIGN §4, docs/admin.md "Imports"): a file under a configured import
 * directory is read by a separate loader instance and its rows are appended into a table of a
 * read-write database. The serving instances never read files.
 *
 * The loader is an in-memory DuckDB instance whose only readable places are the import
 * directories (allowed_directories, then enable_external_access=false and lock_configuration,
 * so nothing can widen that). File names are checked before DuckDB sees them: relative, plain
 * components, no dot files, no `..`, a known extension, and the file must be a regular file
 * reached without any symlink.
 *
 * Threads: a loader may be used by several threads at once (one connection per import). */
#ifndef DG_DB_IMPORT_H
#define DG_DB_IMPORT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "core/rc.h"
#include "db/db.h"

typedef struct dg_db_loader dg_db_loader_t;

/* Opens the loader for dirs (absolute paths of existing directories; borrowed for the call).
 * DG_CONFIG (a directory is not usable, or DuckDB refused a setting), DG_NOMEM. */
dg_rc_t dg_db_loader_open(const char *const *dirs, size_t n_dirs, uint64_t memory_limit,
                          int threads, dg_db_loader_t **out, dg_error_t *err);
/* NULL is allowed. No import may be running. */
void dg_db_loader_close(dg_db_loader_t *l);

typedef enum dg_db_import_mode {
    DG_DB_IMPORT_CREATE = 0, /* create the table; it must not exist */
    DG_DB_IMPORT_REPLACE,    /* create or replace it */
    DG_DB_IMPORT_APPEND,     /* append to an existing table (column types must match) */
} dg_db_import_mode_t;

/* Parses "create" | "replace" | "append"; -1 otherwise. */
int dg_db_import_mode_parse(const char *s);

/* Imports file `name` (relative to one of the loader's directories, the first that has it) into
 * table `table` (a plain identifier, schema main) of target, which must be a read-write
 * instance. The whole import is one transaction of the target: on any error the table is as it
 * was. interrupt (optional) is polled like dg_db_query_t.interrupt. *out_rows gets the rows
 * imported. Errors: DG_BAD_REQUEST (bad table or file name, unknown extension), DG_NOT_FOUND
 * (no such file in any import directory), DG_FORBIDDEN (not a regular file, or reached through
 * a symlink), DG_NOT_ACCEPTABLE (target is read-only), DG_SQL_ERROR (the file could not be read
 * or the table not written: DuckDB's message), DG_TIMEOUT/DG_CANCELLED/DG_CLIENT_GONE
 * (interrupted), DG_RESOURCE_EXHAUSTED, DG_NOMEM. */
dg_rc_t dg_db_import(dg_db_loader_t *l, dg_db_t *target, const char *table, const char *name,
                     dg_db_import_mode_t mode, const _Atomic int *interrupt, uint64_t *out_rows,
                     dg_error_t *err);

/* ---- admin SQL that reads import files (docs/admin.md "Imports") ----
 *
 * Admin SQL may read files of the import directories with read_csv[_auto], read_parquet,
 * parquet_scan, read_json[_auto] and read_ndjson[_auto], but never on a serving instance: each
 * such call must name one file by a string constant (relative to an import directory, or an
 * absolute path inside one; the name rules and the symlink-free walk of imports apply) with
 * constant options. The loader reads each file (through the descriptor the check opened) into a
 * table of a private in-memory catalog attached to the target instance, and the SQL is
 * rewritten to read those tables instead. Everything else that reaches files is refused: other
 * file functions, globs, URLs, lists of files, non-constant names, COPY, ATTACH, EXPORT and
 * IMPORT. */
typedef struct dg_db_staged dg_db_staged_t;

/* Counts the reader calls of sql (sql_len bytes, need not be NUL-terminated) into *out_n, and
 * refuses everything that would reach a file otherwise. No DuckDB, no files touched.
 * DG_FORBIDDEN (the message says why and points to the import directories), DG_NOMEM. */
dg_rc_t dg_db_files_scan(const char *sql, size_t sql_len, size_t *out_n, dg_error_t *err);

/* Loads every file sql reads (see above) through l into target and returns, in *out, the SQL
 * rewritten to read the loaded tables (dg_db_staged_sql); *out is NULL when sql reads no file.
 * target must be read-write (a served read-write database, or a staging copy). interrupt as for
 * dg_db_import. The caller frees *out with dg_db_staged_free after the query has finished.
 * Errors: those of dg_db_files_scan, DG_NOT_READ_ONLY (target is read-only), DG_NOT_FOUND (no
 * such file in the import directories), DG_FORBIDDEN (outside them, a symlink, not a regular
 * file), DG_SQL_ERROR (the loader could not read the file), DG_TIMEOUT/DG_CANCELLED/
 * DG_CLIENT_GONE, DG_RESOURCE_EXHAUSTED, DG_NOMEM. */
dg_rc_t dg_db_files_stage(dg_db_loader_t *l, dg_db_t *target, const char *sql, size_t sql_len,
                          const _Atomic int *interrupt, dg_db_staged_t **out, dg_error_t *err);
/* The rewritten SQL (owned by st, NUL-terminated) and its length. */
const char *dg_db_staged_sql(const dg_db_staged_t *st, size_t *out_len);
/* Drops the loaded tables (detaches their catalog). NULL is allowed. */
void dg_db_staged_free(dg_db_staged_t *st);

#endif
