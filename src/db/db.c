/* DuckDB instances: opening with the sandbox settings (DESIGN §4 layer 1), error mapping and
 * path scrubbing, trusted scripts, and the catalog listing.
 *
 * A dg_db_t is immutable after dg_db_open (DuckDB's database handle is thread-safe), so every
 * function here may run on several threads at once; each call that queries uses its own
 * short-lived connection. The one exception is the Parquet export instance, which db_export.c
 * opens lazily under export_lock. */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/log.h"
#include "db/db_internal.h"

/* ---- paths and errors ---- */

static void add_scrub(dg_db_t *db, const char *path)
{
    if (!path || !path[0] || db->n_scrub == DG_DB__MAX_SCRUB) {
        return;
    }
    /* "/" or "." alone would scrub every slash: only scrub real paths. */
    if (strlen(path) < 2) {
        return;
    }
    for (size_t i = 0; i < db->n_scrub; i++) {
        if (strcmp(db->scrub[i], path) == 0) {
            return;
        }
    }
    char *p = strdup(path);
    if (!p) {
        return;
    }
    /* Keep longest first so a file is replaced before the directory that contains it. */
    size_t i = db->n_scrub++;
    while (i > 0 && strlen(db->scrub[i - 1]) < strlen(p)) {
        db->scrub[i] = db->scrub[i - 1];
        i--;
    }
    db->scrub[i] = p;
}

/* Adds path, its real path, and the directories of both. */
static void add_scrub_tree(dg_db_t *db, const char *path, bool with_dir)
{
    char *real = realpath(path, NULL);
    const char *forms[2] = {path, real};
    for (int f = 0; f < 2; f++) {
        if (!forms[f]) {
            continue;
        }
        add_scrub(db, forms[f]);
        if (with_dir) {
            const char *slash = strrchr(forms[f], '/');
            if (slash && slash != forms[f]) {
                char *dir = strndup(forms[f], (size_t)(slash - forms[f]));
                if (dir) {
                    add_scrub(db, dir);
                    free(dir);
                }
            }
        }
    }
    free(real);
}

void dg_db__scrub(const dg_db_t *db, const char *msg, char *out, size_t cap)
{
    size_t o = 0;
    if (cap == 0) {
        return;
    }
    while (*msg && o + 1 < cap) {
        size_t hit = 0;
        for (size_t i = 0; db && i < db->n_scrub; i++) {
            size_t n = strlen(db->scrub[i]);
            if (strncmp(msg, db->scrub[i], n) == 0) {
                hit = n;
                break;
            }
        }
        if (hit) {
            static const char repl[] = "<path>";
            for (size_t k = 0; repl[k] && o + 1 < cap; k++) {
                out[o++] = repl[k];
            }
            msg += hit;
        } else {
            out[o++] = *msg++;
        }
    }
    out[o] = '\0';
}

static bool starts(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

dg_rc_t dg_db__error(const dg_db_t *db, int error_type, const char *msg, int reason,
                     dg_error_t *err)
{
    dg_rc_t rc;
    if (!msg) {
        msg = "unknown DuckDB error";
    }
    if (error_type == DUCKDB_ERROR_INTERRUPT || starts(msg, "INTERRUPT Error") ||
        strstr(msg, "Interrupted!")) {
        rc = reason ? (dg_rc_t)reason : DG_CANCELLED;
        return dg_error_set(err, rc, "%s", dg_rc_message(rc));
    }
    if (error_type == DUCKDB_ERROR_OUT_OF_MEMORY || starts(msg, "Out of Memory Error") ||
        strstr(msg, "max_temp_directory_size") || strstr(msg, "temp_directory")) {
        rc = DG_RESOURCE_EXHAUSTED;
    } else if (error_type == DUCKDB_ERROR_PERMISSION || starts(msg, "Permission Error") ||
               strstr(msg, "attached in read-only mode")) {
        rc = DG_NOT_READ_ONLY;
    } else if (error_type == DUCKDB_ERROR_FATAL || error_type == DUCKDB_ERROR_INTERNAL ||
               starts(msg, "FATAL Error") || starts(msg, "INTERNAL Error")) {
        rc = DG_INTERNAL;
    } else {
        /* Parser, binder, catalog, conversion, invalid input, out of range, division by zero,
         * not implemented...: the caller's SQL or data is at fault. */
        rc = DG_SQL_ERROR;
    }
    if (rc == DG_INTERNAL) {
        DG_LOGE("db", "duckdb internal error: %.300s", msg);
    }
    if (err && err->rc == DG_OK) {
        char tmp[sizeof err->msg];
        dg_db__scrub(db, msg, tmp, sizeof tmp);
        return dg_error_set(err, rc, "%s", tmp);
    }
    return rc;
}

/* ---- open / close ---- */

static char *file_stem(const char *path)
{
    if (strcmp(path, ":memory:") == 0) {
        return strdup("memory"); /* DuckDB's name for an in-memory database (tests, tools) */
    }
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strrchr(base, '.');
    size_t n = dot && dot != base ? (size_t)(dot - base) : strlen(base);
    return strndup(base, n);
}

static dg_rc_t set_opt(duckdb_config cfg, const char *name, const char *value, dg_error_t *err)
{
    if (duckdb_set_config(cfg, name, value) != DuckDBSuccess) {
        return dg_error_set(err, DG_CONFIG, "DuckDB refused setting %s", name);
    }
    return DG_OK;
}

/* A DuckDB config holding s. DG_CONFIG (message names the setting), DG_NOMEM. */
static dg_rc_t config_new(const dg_db__settings_t *s, duckdb_config *out, dg_error_t *err)
{
    dg_rc_t rc;
    duckdb_config cfg = NULL;
    char num[32];

    *out = NULL;
    if (duckdb_create_config(&cfg) != DuckDBSuccess) {
        return dg_error_set(err, DG_NOMEM, "could not create a DuckDB config");
    }
    /* Each call applies the option to the config at once, so order matters: paths before
     * enable_external_access=false (which refuses later path settings), and
     * lock_configuration last. Only what is built in (parquet, json, icu): no instance ever
     * downloads or loads an extension. */
    rc = DG_OK;
    if (s->access_mode) {
        rc = set_opt(cfg, "access_mode", s->access_mode, err);
    }
    if (rc == DG_OK) {
        rc = set_opt(cfg, "autoinstall_known_extensions", "false", err);
    }
    if (rc == DG_OK) {
        rc = set_opt(cfg, "autoload_known_extensions", "false", err);
    }
    if (rc == DG_OK) {
        rc = set_opt(cfg, "allow_community_extensions", "false", err);
    }
    if (rc == DG_OK) {
        rc = set_opt(cfg, "allow_unsigned_extensions", "false", err);
    }
    if (rc == DG_OK) {
        rc = set_opt(cfg, "allow_persistent_secrets", "false", err);
    }
    if (rc == DG_OK && s->memory_limit) {
        snprintf(num, sizeof num, "%" PRIu64 "B", s->memory_limit);
        rc = set_opt(cfg, "memory_limit", num, err);
    }
    if (rc == DG_OK && s->max_temp_bytes) {
        snprintf(num, sizeof num, "%" PRIu64 "B", s->max_temp_bytes);
        rc = set_opt(cfg, "max_temp_directory_size", num, err);
    }
    if (rc == DG_OK && s->temp_dir) {
        rc = set_opt(cfg, "temp_directory", s->temp_dir, err);
    }
    if (rc == DG_OK && s->threads > 0) {
        snprintf(num, sizeof num, "%d", s->threads);
        rc = set_opt(cfg, "threads", num, err);
    }
    if (rc == DG_OK && !s->has_external_access) {
        rc = set_opt(cfg, "enable_external_access", "false", err);
    }
    if (rc == DG_OK && s->is_locked) {
        rc = set_opt(cfg, "lock_configuration", "true", err);
    }
    if (rc != DG_OK) {
        duckdb_destroy_config(&cfg);
        return rc;
    }
    *out = cfg;
    return DG_OK;
}

void dg_db__settings_of(const dg_db_t *db, const char *temp_dir, bool is_sandbox,
                        dg_db__settings_t *out)
{
    *out = (dg_db__settings_t){
        .access_mode = db->read_only ? "READ_ONLY" : "READ_WRITE",
        .memory_limit = db->memory_limit,
        .max_temp_bytes = db->max_temp_bytes ? db->max_temp_bytes : (uint64_t)1 << 30,
        /* An empty temp_directory disables spilling. */
        .temp_dir = temp_dir ? temp_dir : "",
        .threads = db->threads > 0 ? db->threads : 1,
        .has_external_access = !is_sandbox,
        .is_locked = is_sandbox,
    };
}

dg_rc_t dg_db__instance_open(const dg_db_t *db, const char *path, const dg_db__settings_t *s,
                             const char *what, duckdb_database *out, dg_error_t *err)
{
    duckdb_config cfg = NULL;
    char *open_err = NULL;

    *out = NULL;
    dg_rc_t rc = config_new(s, &cfg, err);
    if (rc != DG_OK) {
        return rc;
    }
    if (duckdb_open_ext(path, out, cfg, &open_err) != DuckDBSuccess) {
        char tmp[400];
        dg_db__scrub(db, open_err ? open_err : "could not open the database", tmp, sizeof tmp);
        rc = dg_error_set(err, DG_IO, "%s%s%s", what ? what : "", what ? ": " : "", tmp);
        *out = NULL;
    }
    if (open_err) {
        duckdb_free(open_err);
    }
    duckdb_destroy_config(&cfg);
    return rc;
}

dg_rc_t dg_db__confine(const dg_db_t *db, duckdb_connection con, const char *what,
                       const char *const *dirs, size_t n_dirs, dg_error_t *err)
{
    dg_buf_t sql;
    dg_buf_init(&sql, 1 << 20);
    /* The trailing slash keeps a sibling such as "<dir>-evil" outside the prefix. */
    dg_rc_t rc = dg_buf_puts(&sql, "SET allowed_directories=[");
    for (size_t i = 0; rc == DG_OK && i < n_dirs; i++) {
        rc = dg_buf_printf(&sql, "%s'%s/'", i ? "," : "", dirs[i]);
    }
    if (rc == DG_OK) {
        rc = dg_buf_puts(&sql, "]");
    }
    if (rc != DG_OK) {
        dg_buf_free(&sql);
        return dg_error_set(err, DG_NOMEM, "out of memory");
    }
    const char *const steps[] = {sql.p, "SET enable_external_access=false",
                                 "SET lock_configuration=true"};
    for (size_t i = 0; rc == DG_OK && i < sizeof steps / sizeof steps[0]; i++) {
        duckdb_result res;
        if (duckdb_query(con, steps[i], &res) != DuckDBSuccess) {
            const char *m = duckdb_result_error(&res);
            char tmp[256];
            dg_db__scrub(db, m ? m : "refused", tmp, sizeof tmp);
            rc = dg_error_set(err, DG_CONFIG, "%s setting refused: %s", what, tmp);
        }
        duckdb_destroy_result(&res);
    }
    dg_buf_free(&sql);
    return rc;
}

dg_rc_t dg_db__execute(const dg_db_t *db, duckdb_connection con, const char *sql, duckdb_value arg,
                       duckdb_result *out, dg_error_t *err)
{
    duckdb_prepared_statement ps = NULL;
    dg_rc_t rc = DG_OK;
    if (duckdb_prepare(con, sql, &ps) != DuckDBSuccess) {
        rc = dg_db__error(db, -1, duckdb_prepare_error(ps), 0, err);
        goto out;
    }
    if (arg && duckdb_bind_value(ps, 1, arg) != DuckDBSuccess) {
        rc = dg_error_set(err, DG_INTERNAL, "could not bind an internal query's parameter");
        goto out;
    }
    if (duckdb_execute_prepared(ps, out) != DuckDBSuccess) {
        rc = dg_db__error(db, (int)duckdb_result_error_type(out), duckdb_result_error(out), 0, err);
        duckdb_destroy_result(out);
    }
out:
    duckdb_destroy_prepare(&ps);
    return rc;
}

/* Runs trusted internal SQL whose result is one row on a fresh connection of db and hands that
 * row's chunk to take. DG_INTERNAL when the query fails or yields no row; else take's code. */
typedef dg_rc_t (*one_row_fn)(duckdb_data_chunk chunk, void *ctx);

static dg_rc_t internal_one_row(dg_db_t *db, const char *sql, one_row_fn take, void *ctx)
{
    duckdb_connection con = NULL;
    duckdb_result res;
    dg_rc_t rc = DG_INTERNAL;
    if (duckdb_connect(db->inst, &con) != DuckDBSuccess) {
        return DG_INTERNAL;
    }
    if (dg_db__execute(db, con, sql, NULL, &res, NULL) != DG_OK) {
        goto out;
    }
    duckdb_data_chunk chunk = duckdb_fetch_chunk(res);
    if (chunk && duckdb_data_chunk_get_size(chunk) == 1) {
        rc = take(chunk, ctx);
    }
    if (chunk) {
        duckdb_destroy_data_chunk(&chunk);
    }
    duckdb_destroy_result(&res);
out:
    duckdb_disconnect(&con);
    return rc;
}

static dg_rc_t take_identity(duckdb_data_chunk chunk, void *ctx)
{
    dg_db_t *db = ctx;
    duckdb_vector cat = duckdb_data_chunk_get_vector(chunk, 0);
    duckdb_vector list = duckdb_data_chunk_get_vector(chunk, 1);
    const duckdb_list_entry *e = duckdb_vector_get_data(list);
    duckdb_vector names = duckdb_list_vector_get_child(list);
    const dg_strval_t *cv = duckdb_vector_get_data(cat);
    const dg_strval_t *nv = duckdb_vector_get_data(names);
    uint32_t len;
    const char *p = dg_strval_data(&cv[0], &len);
    db->catalog = strndup(p, len);
    db->schemas = calloc(e[0].length ? e[0].length : 1, sizeof *db->schemas);
    dg_rc_t rc = db->catalog && db->schemas ? DG_OK : DG_NOMEM;
    for (uint64_t i = 0; rc == DG_OK && i < e[0].length; i++) {
        p = dg_strval_data(&nv[e[0].offset + i], &len);
        db->schemas[i] = strndup(p, len);
        rc = db->schemas[i] ? DG_OK : DG_NOMEM;
        db->n_schemas = i + 1;
    }
    return rc;
}

/* Reads the catalog name DuckDB gave the file and that catalog's schemas. The instance is
 * read-only or owned by this process, so neither changes while it is open. */
static dg_rc_t load_identity(dg_db_t *db, dg_error_t *err)
{
    dg_rc_t rc = internal_one_row(db,
                                  "SELECT current_database(), list(schema_name) FROM "
                                  "duckdb_schemas() WHERE database_name = current_database()",
                                  take_identity, db);
    if (rc != DG_OK) {
        return dg_error_set(err, rc, "could not read the database's catalog name");
    }
    return DG_OK;
}

dg_rc_t dg_db_open(const dg_db_opts_t *opts, dg_db_t **out, dg_error_t *err)
{
    dg_rc_t rc;
    dg_db_t *db = calloc(1, sizeof *db);

    *out = NULL;
    if (!db) {
        return dg_error_set(err, DG_NOMEM, "out of memory");
    }
    if (!opts->path || !opts->path[0]) {
        rc = dg_error_set(err, DG_IO, "no database path");
        goto out;
    }
    if (pthread_mutex_init(&db->check_lock, NULL) != 0) {
        rc = dg_error_set(err, DG_NOMEM, "could not create a mutex");
        goto out;
    }
    db->has_check_lock = true;
    if (pthread_mutex_init(&db->export_lock, NULL) != 0) {
        rc = dg_error_set(err, DG_NOMEM, "could not create a mutex");
        goto out;
    }
    db->has_export_lock = true;
    if (pthread_mutex_init(&db->named_lock, NULL) != 0) {
        rc = dg_error_set(err, DG_NOMEM, "could not create a mutex");
        goto out;
    }
    db->has_named_lock = true;
    atomic_init(&db->export_seq, 0);
    db->read_only = opts->read_only;
    db->name = file_stem(opts->path);
    if (!db->name) {
        rc = dg_error_set(err, DG_NOMEM, "out of memory");
        goto out;
    }
    add_scrub_tree(db, opts->path, true);
    if (opts->temp_dir && opts->temp_dir[0]) {
        add_scrub_tree(db, opts->temp_dir, false);
    }
    db->path = strdup(opts->path);
    db->temp_dir = opts->temp_dir && opts->temp_dir[0] ? strdup(opts->temp_dir) : NULL;
    if (!db->path || (opts->temp_dir && opts->temp_dir[0] && !db->temp_dir)) {
        rc = dg_error_set(err, DG_NOMEM, "out of memory");
        goto out;
    }
    db->memory_limit = opts->memory_limit;
    db->max_temp_bytes = opts->max_temp_bytes;
    db->threads = opts->threads;
    dg_db__settings_t settings;
    dg_db__settings_of(db, db->temp_dir, true, &settings);
    rc = dg_db__instance_open(db, opts->path, &settings, NULL, &db->inst, err);
    if (rc != DG_OK) {
        goto out;
    }
    dg_db__keywords_load(db->inst);
    rc = load_identity(db, err);
out:
    if (rc != DG_OK) {
        dg_db_close(db);
        return rc;
    }
    *out = db;
    return DG_OK;
}

void dg_db_close(dg_db_t *db)
{
    if (!db) {
        return;
    }
    /* The export instance first: it is a second instance of the same file. */
    dg_db__export_close(db);
    if (db->has_export_lock) {
        pthread_mutex_destroy(&db->export_lock);
    }
    dg_db__checkers_free(db);
    if (db->has_check_lock) {
        pthread_mutex_destroy(&db->check_lock);
    }
    /* Named-query connections before the instance: they would keep the file open. */
    dg_db__named_close(db);
    if (db->has_named_lock) {
        pthread_mutex_destroy(&db->named_lock);
    }
    if (db->inst) {
        duckdb_close(&db->inst);
    }
    for (size_t i = 0; i < db->n_scrub; i++) {
        free(db->scrub[i]);
    }
    free(db->path);
    free(db->temp_dir);
    free(db->export_dir);
    free(db->catalog);
    free(db->name);
    for (size_t i = 0; i < db->n_schemas; i++) {
        free(db->schemas[i]);
    }
    free(db->schemas);
    free(db);
}

/* ---- trusted scripts ---- */

dg_rc_t dg_db_exec(dg_db_t *db, const char *sql, dg_error_t *err)
{
    duckdb_connection con = NULL;
    duckdb_result res;
    dg_rc_t rc = DG_OK;

    if (!sql) {
        return dg_error_set(err, DG_SQL_ERROR, "no SQL");
    }
    if (duckdb_connect(db->inst, &con) != DuckDBSuccess) {
        return dg_error_set(err, DG_INTERNAL, "could not connect to the database");
    }
    /* duckdb_query runs every statement of the script in order and stops at the first error. */
    if (duckdb_query(con, sql, &res) != DuckDBSuccess) {
        rc = dg_db__error(db, (int)duckdb_result_error_type(&res), duckdb_result_error(&res), 0,
                          err);
    }
    duckdb_destroy_result(&res);
    duckdb_disconnect(&con);
    return rc;
}

/* ---- catalog ---- */

static const char *vec_str(duckdb_vector v, idx_t row, uint32_t *len)
{
    const uint64_t *valid = duckdb_vector_get_validity(v);
    if (valid && !((valid[row / 64] >> (row % 64)) & 1)) {
        return NULL;
    }
    const dg_strval_t *sv = (const dg_strval_t *)duckdb_vector_get_data(v) + row;
    return dg_strval_data(sv, len);
}

static bool vec_valid(duckdb_vector v, idx_t row)
{
    const uint64_t *valid = duckdb_vector_get_validity(v);
    return !valid || ((valid[row / 64] >> (row % 64)) & 1);
}

static const char catalog_sql[] =
    "SELECT c.schema_name, c.table_name, CASE WHEN v.view_name IS NULL THEN 'table' ELSE 'view' "
    "END, t.estimated_size, c.column_name, c.data_type, c.is_nullable "
    "FROM duckdb_columns() c "
    "LEFT JOIN duckdb_tables() t ON t.database_name = c.database_name "
    "AND t.schema_name = c.schema_name AND t.table_name = c.table_name "
    "LEFT JOIN duckdb_views() v ON v.database_name = c.database_name "
    "AND v.schema_name = c.schema_name AND v.view_name = c.table_name "
    "WHERE c.database_name = $1 AND NOT c.internal "
    "ORDER BY c.schema_name, c.table_name, c.column_index";

dg_rc_t dg_db_catalog_json(dg_db_t *db, dg_buf_t *out, dg_error_t *err)
{
    duckdb_connection con = NULL;
    duckdb_value catalog = NULL;
    duckdb_result res;
    bool has_res = false;
    duckdb_data_chunk chunk = NULL;
    dg_rc_t rc;
    char *prev_schema = NULL, *prev_table = NULL;
    bool any_table = false;

    if (duckdb_connect(db->inst, &con) != DuckDBSuccess) {
        rc = dg_error_set(err, DG_INTERNAL, "could not connect to the database");
        goto out;
    }
    catalog = duckdb_create_varchar(db->catalog);
    if (!catalog) {
        rc = dg_error_set(err, DG_NOMEM, "out of memory");
        goto out;
    }
    rc = dg_db__execute(db, con, catalog_sql, catalog, &res, err);
    if (rc != DG_OK) {
        goto out;
    }
    has_res = true;
    rc = dg_buf_puts(out, "{\"name\":");
    if (rc == DG_OK) {
        rc = dg_buf_json_str(out, db->name, strlen(db->name));
    }
    if (rc == DG_OK) {
        rc = dg_buf_puts(out, ",\"tables\":[");
    }
    while (rc == DG_OK && (chunk = duckdb_fetch_chunk(res)) != NULL) {
        idx_t n = duckdb_data_chunk_get_size(chunk);
        duckdb_vector v[7];
        for (idx_t c = 0; c < 7; c++) {
            v[c] = duckdb_data_chunk_get_vector(chunk, c);
        }
        for (idx_t r = 0; r < n && rc == DG_OK; r++) {
            uint32_t sl = 0, tl = 0, kl = 0, cl = 0, dl = 0;
            const char *schema = vec_str(v[0], r, &sl);
            const char *table = vec_str(v[1], r, &tl);
            const char *kind = vec_str(v[2], r, &kl);
            const char *col = vec_str(v[4], r, &cl);
            const char *dtype = vec_str(v[5], r, &dl);
            if (!schema || !table || !kind || !col || !dtype) {
                continue;
            }
            bool same = prev_schema && strlen(prev_schema) == sl &&
                        memcmp(prev_schema, schema, sl) == 0 && strlen(prev_table) == tl &&
                        memcmp(prev_table, table, tl) == 0;
            if (!same) {
                free(prev_schema);
                free(prev_table);
                prev_schema = strndup(schema, sl);
                prev_table = strndup(table, tl);
                if (!prev_schema || !prev_table) {
                    rc = DG_NOMEM;
                    break;
                }
                rc = dg_buf_puts(out, any_table ? "]},{\"schema\":" : "{\"schema\":");
                any_table = true;
                if (rc == DG_OK) {
                    rc = dg_buf_json_str(out, schema, sl);
                }
                if (rc == DG_OK) {
                    rc = dg_buf_puts(out, ",\"name\":");
                }
                if (rc == DG_OK) {
                    rc = dg_buf_json_str(out, table, tl);
                }
                if (rc == DG_OK) {
                    rc = dg_buf_puts(out, ",\"type\":");
                }
                if (rc == DG_OK) {
                    rc = dg_buf_json_str(out, kind, kl);
                }
                if (rc == DG_OK) {
                    if (vec_valid(v[3], r)) {
                        const int64_t *sz = duckdb_vector_get_data(v[3]);
                        rc = dg_buf_printf(out, ",\"row_count\":%" PRId64, sz[r]);
                    } else {
                        rc = dg_buf_puts(out, ",\"row_count\":null");
                    }
                }
                if (rc == DG_OK) {
                    rc = dg_buf_puts(out, ",\"columns\":[");
                }
            } else {
                rc = dg_buf_putc(out, ',');
            }
            if (rc == DG_OK) {
                rc = dg_buf_puts(out, "{\"name\":");
            }
            if (rc == DG_OK) {
                rc = dg_buf_json_str(out, col, cl);
            }
            if (rc == DG_OK) {
                rc = dg_buf_puts(out, ",\"type\":");
            }
            if (rc == DG_OK) {
                rc = dg_buf_json_str(out, dtype, dl);
            }
            if (rc == DG_OK) {
                const bool *nullable = duckdb_vector_get_data(v[6]);
                bool is_null = !vec_valid(v[6], r) || nullable[r];
                rc = dg_buf_puts(out, is_null ? ",\"nullable\":true}" : ",\"nullable\":false}");
            }
        }
        duckdb_destroy_data_chunk(&chunk);
    }
    if (rc == DG_OK && any_table) {
        rc = dg_buf_puts(out, "]}");
    }
    if (rc == DG_OK) {
        rc = dg_buf_puts(out, "]}");
    }
    if (rc != DG_OK) {
        dg_error_set(err, rc, "%s", dg_rc_message(rc));
    }
out:
    free(prev_schema);
    free(prev_table);
    if (chunk) {
        duckdb_destroy_data_chunk(&chunk);
    }
    if (has_res) {
        duckdb_destroy_result(&res);
    }
    if (catalog) {
        duckdb_destroy_value(&catalog);
    }
    if (con) {
        duckdb_disconnect(&con);
    }
    return rc;
}

static dg_rc_t take_u64(duckdb_data_chunk chunk, void *ctx)
{
    const uint64_t *v = duckdb_vector_get_data(duckdb_data_chunk_get_vector(chunk, 0));
    *(uint64_t *)ctx = v[0];
    return DG_OK;
}

dg_rc_t dg_db_memory_usage(dg_db_t *db, uint64_t *out_used, uint64_t *out_limit)
{
    *out_used = 0;
    *out_limit = db->memory_limit;
    return internal_one_row(db,
                            "SELECT CAST(coalesce(sum(memory_usage_bytes), 0) AS UBIGINT) "
                            "FROM duckdb_memory()",
                            take_u64, out_used);
}
