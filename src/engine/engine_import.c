/* Admin imports on the engine side (engine/engine_import.h). */
#include "engine/engine_import.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "db/db_import.h"

#define MOD "engine"

/* Process-wide: one loader per engine, shared by its slot threads. */
static struct {
    pthread_mutex_t mu; /* serialises the lazy open */
    char **dirs;
    size_t n_dirs;
    uint64_t memory_limit;
    int threads;
    dg_db_loader_t *loader; /* NULL until the first import */
} g = {.mu = PTHREAD_MUTEX_INITIALIZER};

dg_rc_t dg_engine__imports_init(json_t *init)
{
    json_t *dirs = json_object_get(init, "import_dirs");
    json_t *mem = json_object_get(init, "memory_limit");
    json_t *threads = json_object_get(init, "threads");
    g.memory_limit = json_is_integer(mem) ? (uint64_t)json_integer_value(mem) : 0;
    g.threads = json_is_integer(threads) ? (int)json_integer_value(threads) : 1;
    if (!json_is_array(dirs) || json_array_size(dirs) == 0) {
        return DG_OK;
    }
    g.dirs = calloc(json_array_size(dirs), sizeof *g.dirs);
    if (!g.dirs) {
        return DG_NOMEM;
    }
    size_t i;
    json_t *d;
    json_array_foreach(dirs, i, d)
    {
        if (json_is_string(d) && !(g.dirs[g.n_dirs++] = strdup(json_string_value(d)))) {
            return DG_NOMEM;
        }
    }
    return DG_OK;
}

static dg_rc_t loader_get(dg_db_loader_t **out, dg_error_t *err)
{
    pthread_mutex_lock(&g.mu);
    dg_rc_t rc = DG_OK;
    if (!g.loader) {
        rc = dg_db_loader_open((const char *const *)g.dirs, g.n_dirs, g.memory_limit, g.threads,
                               &g.loader, err);
        if (rc != DG_OK) {
            DG_LOGE(MOD, "import loader cannot be opened: %s", err->msg);
        }
    }
    *out = g.loader;
    pthread_mutex_unlock(&g.mu);
    return rc;
}

dg_rc_t dg_engine__import_run(dg_db_t *target, json_t *req, const _Atomic int *interrupt,
                              dg_buf_t *out, dg_error_t *err)
{
    const char *table = json_string_value(json_object_get(req, "table"));
    const char *file = json_string_value(json_object_get(req, "file"));
    const char *mode_s = json_string_value(json_object_get(req, "mode"));
    int mode = dg_db_import_mode_parse(mode_s ? mode_s : "create");
    if (!table || !file || mode < 0) {
        return dg_error_set(err, DG_BAD_REQUEST,
                            "an import needs table, file and mode (create, replace or append)");
    }
    if (g.n_dirs == 0) {
        return dg_error_set(err, DG_NOT_FOUND,
                            "no import directories are configured (import_dirs)");
    }
    dg_db_loader_t *l = NULL;
    dg_rc_t rc = loader_get(&l, err);
    uint64_t rows = 0;
    if (rc == DG_OK) {
        rc = dg_db_import(l, target, table, file, (dg_db_import_mode_t)mode, interrupt, &rows, err);
    }
    if (rc != DG_OK) {
        return rc;
    }
    json_t *o = json_pack("{s:s, s:s, s:s, s:I}", "table", table, "file", file, "mode",
                          mode_s ? mode_s : "create", "rows", (json_int_t)rows);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    rc = text ? dg_buf_puts(out, text) : DG_NOMEM;
    free(text);
    return rc == DG_OK ? DG_OK : dg_error_set(err, rc, "out of memory");
}

dg_rc_t dg_engine__files_stage(dg_db_t *target, const char *sql, size_t sql_len,
                               const _Atomic int *interrupt, dg_db_staged_t **out, dg_error_t *err)
{
    *out = NULL;
    size_t n = 0;
    dg_rc_t rc = sql ? dg_db_files_scan(sql, sql_len, &n, err) : DG_OK;
    if (rc != DG_OK || n == 0) {
        return rc;
    }
    if (g.n_dirs == 0) {
        return dg_error_set(err, DG_FORBIDDEN,
                            "admin SQL reads files only under the import directories, and none "
                            "are configured (import_dirs, docs/admin.md \"Imports\")");
    }
    dg_db_loader_t *l = NULL;
    rc = loader_get(&l, err);
    return rc == DG_OK ? dg_db_files_stage(l, target, sql, sql_len, interrupt, out, err) : rc;
}
