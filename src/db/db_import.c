/* Admin imports (db/db_import.h): the loader instance, file-name checks, and the copy of a
 * file's rows into a read-write instance through DuckDB's appender.
 *
 * Why two instances: a serving instance must never read files (its external access is off and
 * locked), and a file must never be read by an instance that can see more than the import
 * directories. The loader reads; the target only receives data chunks.
 *
 * The file is read as a streaming result on the loader and each chunk is appended as soon as
 * it is produced, inside one transaction of the target, so memory stays bounded by a few chunks
 * plus the target's own transaction state. */
#include "db/db_import.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "db/db_internal.h"

#define MAX_NAME 255
#define MAX_IDENT 64

struct dg_db_loader {
    duckdb_database inst;
    char **dirs; /* real paths */
    size_t n_dirs;
};

/* ---- the loader ---------------------------------------------------------------------------- */

/* A directory path goes into SQL string literals: refuse what would need escaping. */
static bool plain_path(const char *p)
{
    for (; *p; p++) {
        if (*p == '\'' || *p == '\\' || (unsigned char)*p < 0x20) {
            return false;
        }
    }
    return true;
}

dg_rc_t dg_db_loader_open(const char *const *dirs, size_t n_dirs, uint64_t memory_limit,
                          int threads, dg_db_loader_t **out, dg_error_t *err)
{
    *out = NULL;
    dg_rc_t rc = DG_OK;
    duckdb_connection con = NULL;
    dg_db_loader_t *l = calloc(1, sizeof *l);
    if (!l || !(l->dirs = calloc(n_dirs + 1, sizeof *l->dirs))) {
        rc = dg_error_set(err, DG_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n_dirs; i++) {
        struct stat st;
        char *real = realpath(dirs[i], NULL);
        if (!real || stat(real, &st) != 0 || !S_ISDIR(st.st_mode) || !plain_path(real)) {
            free(real);
            rc = dg_error_set(err, DG_CONFIG, "import_dirs: '%.200s' is not a usable directory",
                              dirs[i]);
            goto out;
        }
        l->dirs[l->n_dirs++] = real;
    }
    /* The serving settings (no extensions, memory, threads) on an in-memory instance; external
     * access and the lock are SET by dg_db__confine, after the one place it may read. */
    dg_db_t shape = {.read_only = false, .memory_limit = memory_limit, .threads = threads};
    dg_db__settings_t settings;
    dg_db__settings_of(&shape, NULL, false, &settings);
    rc = dg_db__instance_open(NULL, ":memory:", &settings, "loader", &l->inst, err);
    if (rc != DG_OK) {
        goto out;
    }
    if (duckdb_connect(l->inst, &con) != DuckDBSuccess) {
        con = NULL;
        rc = dg_error_set(err, DG_INTERNAL, "loader: cannot connect");
        goto out;
    }
    rc = dg_db__confine(NULL, con, "loader", (const char *const *)l->dirs, l->n_dirs, err);
out:
    if (con) {
        duckdb_disconnect(&con);
    }
    if (rc != DG_OK) {
        dg_db_loader_close(l);
        return rc;
    }
    *out = l;
    return DG_OK;
}

void dg_db_loader_close(dg_db_loader_t *l)
{
    if (!l) {
        return;
    }
    if (l->inst) {
        duckdb_close(&l->inst);
    }
    for (size_t i = 0; l->dirs && i < l->n_dirs; i++) {
        free(l->dirs[i]);
    }
    free(l->dirs);
    free(l);
}

int dg_db_import_mode_parse(const char *s)
{
    return !s                          ? -1
           : strcmp(s, "create") == 0  ? DG_DB_IMPORT_CREATE
           : strcmp(s, "replace") == 0 ? DG_DB_IMPORT_REPLACE
           : strcmp(s, "append") == 0  ? DG_DB_IMPORT_APPEND
                                       : -1;
}

/* ---- names --------------------------------------------------------------------------------- */

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n > k && strcasecmp(s + n - k, suffix) == 0;
}

/* The reader for a file name by its extension, or NULL. */
static const char *reader_for(const char *name)
{
    static const struct {
        const char *ext, *fn;
    } readers[] = {
        {".csv", "read_csv_auto"},       {".tsv", "read_csv_auto"},
        {".csv.gz", "read_csv_auto"},    {".tsv.gz", "read_csv_auto"},
        {".parquet", "read_parquet"},    {".json", "read_json_auto"},
        {".ndjson", "read_json_auto"},   {".jsonl", "read_json_auto"},
        {".json.gz", "read_json_auto"},  {".ndjson.gz", "read_json_auto"},
        {".jsonl.gz", "read_json_auto"},
    };
    for (size_t i = 0; i < sizeof readers / sizeof readers[0]; i++) {
        if (ends_with(name, readers[i].ext)) {
            return readers[i].fn;
        }
    }
    return NULL;
}

/* Relative, components of [A-Za-z0-9._-] not starting with '.', so no "..", no hidden files,
 * nothing to quote in SQL. */
static bool name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > MAX_NAME || name[0] == '/') {
        return false;
    }
    bool comp_start = true;
    for (const char *p = name; *p; p++) {
        char c = *p;
        if (c == '/') {
            if (comp_start) {
                return false; /* empty component ("a//b") */
            }
            comp_start = true;
            continue;
        }
        if (comp_start && c == '.') {
            return false;
        }
        comp_start = false;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-')) {
            return false;
        }
    }
    return !comp_start;
}

static bool ident_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > MAX_IDENT || (s[0] >= '0' && s[0] <= '9')) {
        return false;
    }
    for (; *s; s++) {
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_')) {
            return false;
        }
    }
    return true;
}

/* Walks name below dirfd one component at a time with O_NOFOLLOW, so no symlink anywhere on
 * the way is followed. DG_OK (a regular file), DG_NOT_FOUND, DG_FORBIDDEN. */
static dg_rc_t walk(int dirfd, const char *name)
{
    char buf[MAX_NAME + 1];
    snprintf(buf, sizeof buf, "%s", name);
    int fd = dup(dirfd);
    char *save = NULL;
    char *comp = strtok_r(buf, "/", &save);
    dg_rc_t rc = DG_OK;
    while (comp && rc == DG_OK) {
        char *next = strtok_r(NULL, "/", &save);
        int flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | (next ? O_DIRECTORY : O_NONBLOCK);
        int nfd = openat(fd, comp, flags);
        if (nfd < 0) {
            rc = errno == ENOENT ? DG_NOT_FOUND : DG_FORBIDDEN; /* ELOOP: a symlink */
        } else {
            close(fd);
            fd = nfd;
        }
        comp = next;
    }
    struct stat st;
    if (rc == DG_OK && (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))) {
        rc = DG_FORBIDDEN;
    }
    if (fd >= 0) {
        close(fd);
    }
    return rc;
}

/* Finds name in the first import directory that has it; out gets its absolute path. */
static dg_rc_t resolve(const dg_db_loader_t *l, const char *name, char *out, size_t cap,
                       dg_error_t *err)
{
    for (size_t i = 0; i < l->n_dirs; i++) {
        int dfd = open(l->dirs[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0) {
            continue;
        }
        dg_rc_t rc = walk(dfd, name);
        close(dfd);
        if (rc == DG_FORBIDDEN) {
            return dg_error_set(err, DG_FORBIDDEN,
                                "'%s' is not a plain file (symlinks and special files are "
                                "refused)",
                                name);
        }
        if (rc == DG_OK) {
            if (snprintf(out, cap, "%s/%s", l->dirs[i], name) >= (int)cap) {
                return dg_error_set(err, DG_BAD_REQUEST, "the file name is too long");
            }
            return DG_OK;
        }
    }
    return dg_error_set(err, DG_NOT_FOUND, "no file '%s' in the import directories", name);
}

/* ---- the copy ------------------------------------------------------------------------------ */

static int reason_of(const _Atomic int *intr)
{
    return intr ? atomic_load(intr) : 0;
}

/* Runs sql on con until its result is ready, polling the interrupt between execution tasks.
 * streaming: the result's chunks are produced as they are fetched (the file is read while it
 * is appended, not held whole); else it is materialised. The caller destroys *res when
 * *has_res. */
static dg_rc_t run_to_result(dg_db_t *scrub, duckdb_connection con, const char *sql, bool streaming,
                             const _Atomic int *intr, duckdb_result *res, bool *has_res,
                             dg_error_t *err)
{
    duckdb_prepared_statement ps = NULL;
    duckdb_pending_result pending = NULL;
    dg_rc_t rc = DG_OK;
    *has_res = false;
    if (duckdb_prepare(con, sql, &ps) != DuckDBSuccess) {
        rc = dg_db__error(scrub, -1, duckdb_prepare_error(ps), 0, err);
        goto out;
    }
    if ((streaming ? dg_db__pending_streaming(ps, &pending)
                   : duckdb_pending_prepared(ps, &pending)) != DuckDBSuccess) {
        rc = dg_db__error(scrub, -1, duckdb_pending_error(pending), 0, err);
        goto out;
    }
    for (;;) {
        int r = reason_of(intr);
        if (r) {
            duckdb_interrupt(con);
            rc = dg_error_set(err, (dg_rc_t)r, "%s", dg_rc_message((dg_rc_t)r));
            goto out;
        }
        duckdb_pending_state st = duckdb_pending_execute_task(pending);
        if (st == DUCKDB_PENDING_RESULT_READY) {
            break;
        }
        if (st == DUCKDB_PENDING_ERROR) {
            rc = dg_db__error(scrub, -1, duckdb_pending_error(pending), reason_of(intr), err);
            goto out;
        }
        if (st == DUCKDB_PENDING_NO_TASKS_AVAILABLE) {
            struct timespec ts = {0, 100 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    *has_res = true;
    if (duckdb_execute_pending(pending, res) != DuckDBSuccess) {
        rc = dg_db__error(scrub, (int)duckdb_result_error_type(res), duckdb_result_error(res),
                          reason_of(intr), err);
    }
out:
    if (pending) {
        duckdb_destroy_pending(&pending);
    }
    duckdb_destroy_prepare(&ps);
    return rc;
}

static dg_rc_t exec(dg_db_t *scrub, duckdb_connection con, const char *sql, dg_error_t *err)
{
    duckdb_result res;
    dg_rc_t rc = DG_OK;
    if (duckdb_query(con, sql, &res) != DuckDBSuccess) {
        rc = dg_db__error(scrub, (int)duckdb_result_error_type(&res), duckdb_result_error(&res), 0,
                          err);
    }
    duckdb_destroy_result(&res);
    return rc;
}

/* Appends s as a double-quoted SQL identifier. */
static dg_rc_t put_ident(dg_buf_t *b, const char *s, size_t len)
{
    dg_rc_t rc = dg_buf_putc(b, '"');
    for (size_t i = 0; rc == DG_OK && i < len; i++) {
        rc = s[i] == '"' ? dg_buf_puts(b, "\"\"") : dg_buf_putc(b, s[i]);
    }
    return rc == DG_OK ? dg_buf_putc(b, '"') : rc;
}

/* CREATE [OR REPLACE] TABLE "table" ("col" TYPE, ...) from the loader's DESCRIBE of the file. */
static dg_rc_t create_sql(dg_db_t *scrub, duckdb_connection lcon, const char *select_sql,
                          const char *table, bool replace, dg_buf_t *out, dg_error_t *err)
{
    dg_buf_t d;
    dg_buf_init(&d, 1 << 20);
    duckdb_result res;
    bool has_res = false;
    dg_rc_t rc = dg_buf_printf(&d, "DESCRIBE %s", select_sql);
    if (rc == DG_OK) {
        rc = run_to_result(scrub, lcon, d.p, false, NULL, &res, &has_res, err);
    }
    if (rc == DG_OK) {
        rc = dg_buf_printf(out, "CREATE %sTABLE ", replace ? "OR REPLACE " : "");
    }
    if (rc == DG_OK) {
        rc = put_ident(out, table, strlen(table));
    }
    if (rc == DG_OK) {
        rc = dg_buf_puts(out, " (");
    }
    size_t n_cols = 0;
    duckdb_data_chunk chunk = NULL;
    while (rc == DG_OK && (chunk = duckdb_fetch_chunk(res)) != NULL) {
        idx_t n = duckdb_data_chunk_get_size(chunk);
        duckdb_string_t *names = duckdb_vector_get_data(duckdb_data_chunk_get_vector(chunk, 0));
        duckdb_string_t *types = duckdb_vector_get_data(duckdb_data_chunk_get_vector(chunk, 1));
        for (idx_t i = 0; rc == DG_OK && i < n; i++) {
            rc = n_cols++ ? dg_buf_puts(out, ", ") : DG_OK;
            if (rc == DG_OK) {
                rc = put_ident(out, duckdb_string_t_data(&names[i]),
                               duckdb_string_t_length(names[i]));
            }
            if (rc == DG_OK) {
                rc = dg_buf_printf(out, " %.*s", (int)duckdb_string_t_length(types[i]),
                                   duckdb_string_t_data(&types[i]));
            }
        }
        duckdb_destroy_data_chunk(&chunk);
    }
    if (rc == DG_OK && n_cols == 0) {
        rc = dg_error_set(err, DG_SQL_ERROR, "the file has no columns");
    }
    if (rc == DG_OK) {
        rc = dg_buf_putc(out, ')');
    }
    if (rc != DG_OK && err->rc == DG_OK) {
        dg_error_set(err, rc, "out of memory");
    }
    if (has_res) {
        duckdb_destroy_result(&res);
    }
    dg_buf_free(&d);
    return rc;
}

/* Appends every chunk of res to table on tcon. */
static dg_rc_t append_all(dg_db_t *target, duckdb_connection tcon, const char *table,
                          duckdb_result *res, const _Atomic int *intr, uint64_t *rows,
                          dg_error_t *err)
{
    duckdb_appender app = NULL;
    dg_rc_t rc = DG_OK;
    if (duckdb_appender_create(tcon, NULL, table, &app) != DuckDBSuccess) {
        rc = dg_db__error(target, -1, app ? duckdb_appender_error(app) : "no such table", 0, err);
        goto out;
    }
    duckdb_data_chunk chunk;
    while (rc == DG_OK && (chunk = duckdb_fetch_chunk(*res)) != NULL) {
        int r = reason_of(intr);
        if (r) {
            rc = dg_error_set(err, (dg_rc_t)r, "%s", dg_rc_message((dg_rc_t)r));
        } else if (duckdb_append_data_chunk(app, chunk) != DuckDBSuccess) {
            rc = dg_db__error(target, -1, duckdb_appender_error(app), 0, err);
        } else {
            *rows += duckdb_data_chunk_get_size(chunk);
        }
        duckdb_destroy_data_chunk(&chunk);
    }
    /* A streaming result ends early on a read error (a bad line far into the file): that must
     * fail the import, not commit the rows before it. */
    const char *read_err = rc == DG_OK ? duckdb_result_error(res) : NULL;
    if (read_err && read_err[0]) {
        rc = dg_db__error(target, (int)duckdb_result_error_type(res), read_err, reason_of(intr),
                          err);
    }
    if (rc == DG_OK && duckdb_appender_close(app) != DuckDBSuccess) {
        rc = dg_db__error(target, -1, duckdb_appender_error(app), 0, err);
    }
out:
    if (app) {
        duckdb_appender_destroy(&app);
    }
    return rc;
}

dg_rc_t dg_db_import(dg_db_loader_t *l, dg_db_t *target, const char *table, const char *name,
                     dg_db_import_mode_t mode, const _Atomic int *interrupt, uint64_t *out_rows,
                     dg_error_t *err)
{
    *out_rows = 0;
    char path[PATH_MAX + MAX_NAME + 2];
    duckdb_connection lcon = NULL, tcon = NULL;
    duckdb_result res;
    bool has_res = false, in_tx = false;
    dg_buf_t select_sql, create;
    dg_buf_init(&select_sql, 1 << 16);
    dg_buf_init(&create, 1 << 20);
    dg_rc_t rc = DG_OK;
    const char *reader = name ? reader_for(name) : NULL;

    if (target->read_only) {
        rc = dg_error_set(err, DG_NOT_ACCEPTABLE, "imports need a read-write database");
        goto out;
    }
    if (!table || !ident_ok(table)) {
        rc = dg_error_set(err, DG_BAD_REQUEST,
                          "table must be a plain name of [A-Za-z0-9_] (at most %d bytes)",
                          MAX_IDENT);
        goto out;
    }
    if (!name || !name_ok(name)) {
        rc = dg_error_set(err, DG_BAD_REQUEST,
                          "file must be a relative path of [A-Za-z0-9._-] components, none "
                          "starting with '.'");
        goto out;
    }
    if (!reader) {
        rc = dg_error_set(err, DG_BAD_REQUEST,
                          "unknown file type: use .csv, .tsv, .parquet, .json, .ndjson or "
                          ".jsonl (.gz allowed for text)");
        goto out;
    }
    rc = resolve(l, name, path, sizeof path, err);
    if (rc != DG_OK) {
        goto out;
    }
    /* path holds a checked directory and a checked name: nothing in it needs quoting. */
    rc = dg_buf_printf(&select_sql, "SELECT * FROM %s('%s')", reader, path);
    if (rc != DG_OK) {
        rc = dg_error_set(err, DG_NOMEM, "out of memory");
        goto out;
    }
    if (duckdb_connect(l->inst, &lcon) != DuckDBSuccess ||
        duckdb_connect(target->inst, &tcon) != DuckDBSuccess) {
        rc = dg_error_set(err, DG_INTERNAL, "could not connect");
        goto out;
    }
    if (mode != DG_DB_IMPORT_APPEND) {
        rc = create_sql(target, lcon, select_sql.p, table, mode == DG_DB_IMPORT_REPLACE, &create,
                        err);
        if (rc != DG_OK) {
            goto out;
        }
    }
    rc = run_to_result(target, lcon, select_sql.p, true, interrupt, &res, &has_res, err);
    if (rc == DG_OK) {
        rc = exec(target, tcon, "BEGIN TRANSACTION", err);
        in_tx = rc == DG_OK;
    }
    if (rc == DG_OK && mode != DG_DB_IMPORT_APPEND) {
        rc = exec(target, tcon, create.p, err);
    }
    if (rc == DG_OK) {
        rc = append_all(target, tcon, table, &res, interrupt, out_rows, err);
    }
    if (rc == DG_OK) {
        rc = exec(target, tcon, "COMMIT", err);
        in_tx = false;
    }
out:
    if (in_tx) {
        dg_error_t ignore;
        dg_error_clear(&ignore);
        exec(target, tcon, "ROLLBACK", &ignore);
    }
    if (rc != DG_OK) {
        *out_rows = 0;
    }
    if (has_res) {
        duckdb_destroy_result(&res);
    }
    if (lcon) {
        duckdb_disconnect(&lcon);
    }
    if (tcon) {
        duckdb_disconnect(&tcon);
    }
    dg_buf_free(&select_sql);
    dg_buf_free(&create);
    return rc;
}
