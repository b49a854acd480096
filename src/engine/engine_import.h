/* Admin imports on the engine side (REQ kind "import", docs/admin.md "Imports"): the import
 * directories from the init message and the loader instance (db/db_import.h), opened on the
 * first import so engines that never import pay nothing.
 *
 * Threads: dg_engine__imports_init runs once at start-up before the slot threads; run may be
 * called from any slot thread (the lazy open is serialised). */
#ifndef DG_ENGINE_IMPORT_H
#define DG_ENGINE_IMPORT_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/rc.h"
#include "db/db.h"
#include "db/db_import.h"

/* Keeps init's "import_dirs" (array of absolute paths; absent = no imports), "memory_limit"
 * and "threads" for the loader. DG_NOMEM. */
dg_rc_t dg_engine__imports_init(json_t *init);
/* Imports req's {"table","file","mode"} into target (a read-write instance) and appends the
 * answer body {"table":..,"file":..,"mode":..,"rows":N} to out. Errors: those of dg_db_import,
 * DG_BAD_REQUEST (bad fields), DG_NOT_FOUND (no import_dirs configured), DG_CONFIG (the loader
 * could not be opened). */
dg_rc_t dg_engine__import_run(dg_db_t *target, json_t *req, const _Atomic int *interrupt,
                              dg_buf_t *out, dg_error_t *err);

/* Admin SQL reading import files (db/db_import.h "dg_db_files_stage"): when sql reads none,
 * DG_OK with *out NULL. Otherwise the files are loaded into target and *out holds the rewritten
 * SQL (free it with dg_db_staged_free once the query is done). Errors: those of
 * dg_db_files_stage, DG_FORBIDDEN when no import directories are configured, DG_CONFIG (the
 * loader could not be opened). */
dg_rc_t dg_engine__files_stage(dg_db_t *target, const char *sql, size_t sql_len,
                               const _Atomic int *interrupt, dg_db_staged_t **out, dg_error_t *err);

#endif
