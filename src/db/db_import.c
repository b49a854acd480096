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
/* Where a verified file is read from: its descriptor, never its name again. */
#define PROC_FD_DIR "/proc/self/fd"

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
    if (!l || !(l->dirs = calloc(n_dirs + 2, sizeof *l->dirs))) {
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
    /* The loader reads a verified file through the descriptor the check opened
     * (/proc/self/fd/N, see fd_path), so a name swapped for a symlink after the check cannot
     * redirect the read: that directory is readable too. Only SQL built here runs on the loader,
     * and its paths are always an import file or such a descriptor. */
    l->dirs[l->n_dirs] = PROC_FD_DIR;
    rc = dg_db__confine(NULL, con, "loader", (const char *const *)l->dirs, l->n_dirs + 1, err);
    l->dirs[l->n_dirs] = NULL;
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
 * the way is followed. DG_OK (a regular file: *out_fd is its descriptor, the caller closes it),
 * DG_NOT_FOUND, DG_FORBIDDEN. */
static dg_rc_t walk(int dirfd, const char *name, int *out_fd)
{
    *out_fd = -1;
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
    if (rc == DG_OK) {
        *out_fd = fd;
    } else if (fd >= 0) {
        close(fd);
    }
    return rc;
}

/* Finds name in import directory `only` (or, when only < 0, the first that has it) and opens
 * it: *out_fd is the verified regular file (the caller closes it). */
static dg_rc_t resolve(const dg_db_loader_t *l, const char *name, int only, int *out_fd,
                       dg_error_t *err)
{
    *out_fd = -1;
    for (size_t i = 0; i < l->n_dirs; i++) {
        if (only >= 0 && (size_t)only != i) {
            continue;
        }
        int dfd = open(l->dirs[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0) {
            continue;
        }
        dg_rc_t rc = walk(dfd, name, out_fd);
        close(dfd);
        if (rc == DG_FORBIDDEN) {
            return dg_error_set(err, DG_FORBIDDEN,
                                "'%s' is not a plain file (symlinks and special files are "
                                "refused)",
                                name);
        }
        if (rc == DG_OK) {
            return DG_OK;
        }
    }
    return dg_error_set(err, DG_NOT_FOUND, "no file '%s' in the import directories", name);
}

/* The path the loader reads a verified descriptor by. The name's extension is gone, so a
 * compressed file's codec is named explicitly (gz_hint). */
static void fd_path(int fd, char *out, size_t cap)
{
    snprintf(out, cap, PROC_FD_DIR "/%d", fd);
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

/* CREATE [OR REPLACE] TABLE ["catalog".main.]"table" ("col" TYPE, ...) from the loader's
 * DESCRIBE of the file; catalog NULL = the target's default. */
static dg_rc_t create_sql(dg_db_t *scrub, duckdb_connection lcon, const char *select_sql,
                          const char *catalog, const char *table, bool replace, dg_buf_t *out,
                          dg_error_t *err)
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
    if (rc == DG_OK && catalog) {
        rc = put_ident(out, catalog, strlen(catalog));
        rc = rc == DG_OK ? dg_buf_puts(out, ".main.") : rc;
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

/* Appends every chunk of res to table (of catalog, NULL = the default one) on tcon. */
static dg_rc_t append_all(dg_db_t *target, duckdb_connection tcon, const char *catalog,
                          const char *table, duckdb_result *res, const _Atomic int *intr,
                          uint64_t *rows, dg_error_t *err)
{
    duckdb_appender app = NULL;
    dg_rc_t rc = DG_OK;
    if (duckdb_appender_create_ext(tcon, catalog, catalog ? "main" : NULL, table, &app) !=
        DuckDBSuccess) {
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
    char path[64];
    int fd = -1;
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
    rc = resolve(l, name, -1, &fd, err);
    if (rc != DG_OK) {
        goto out;
    }
    fd_path(fd, path, sizeof path);
    /* path is a descriptor path: nothing in it needs quoting. */
    rc = dg_buf_printf(&select_sql, "SELECT * FROM %s('%s'%s)", reader, path,
                       ends_with(name, ".gz") ? ", compression='gzip'" : "");
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
        rc = create_sql(target, lcon, select_sql.p, NULL, table, mode == DG_DB_IMPORT_REPLACE,
                        &create, err);
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
        rc = append_all(target, tcon, NULL, table, &res, interrupt, out_rows, err);
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
    if (fd >= 0) {
        close(fd);
    }
    dg_buf_free(&select_sql);
    dg_buf_free(&create);
    return rc;
}

/* ---- admin SQL that reads import files ------------------------------------------------------ */

/* Table functions whose file the loader may read for admin SQL; the first argument is the file.
 * The loader runs the canonical name of this list, never the caller's spelling. */
static const char *const file_readers[] = {
    "read_csv",  "read_csv_auto",  "read_parquet", "parquet_scan",
    "read_json", "read_json_auto", "read_ndjson",  "read_ndjson_auto",
};
/* Other functions that reach files (or other databases): refused in admin SQL with a message
 * instead of DuckDB's "disabled by configuration". */
static const char *const file_others[] = {
    "read_text",
    "read_blob",
    "glob",
    "sniff_csv",
    "parquet_metadata",
    "parquet_schema",
    "parquet_file_metadata",
    "parquet_kv_metadata",
    "parquet_bloom_probe",
    "read_json_objects",
    "read_json_objects_auto",
    "read_ndjson_objects",
    "read_xlsx",
    "read_avro",
    "delta_scan",
    "iceberg_scan",
    "iceberg_metadata",
    "iceberg_snapshots",
    "sqlite_scan",
    "sqlite_attach",
    "postgres_scan",
    "mysql_scan",
    "st_read",
    "read_duckdb",
};
/* Statements that name files or databases: refused. */
static const char *const file_statements[] = {"COPY", "ATTACH", "EXPORT", "IMPORT"};

#define MAX_FILE_READS 16
#define HINT_DIRS "files of the import directories (import_dirs, docs/admin.md \"Imports\")"

typedef enum tk_kind {
    TK_END,
    TK_WORD,
    TK_QWORD,
    TK_STR,
    TK_LP,
    TK_RP,
    TK_COMMA,
    TK_SEMI,
    TK_DOT,
    TK_OTHER
} tk_kind_t;

typedef struct tk {
    tk_kind_t kind;
    size_t off, len; /* the token's bytes in the SQL, quotes included */
} tk_t;

static bool word_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           (unsigned char)c >= 0x80;
}

/* The next token of s[0..n) from *pos, skipping blanks and comments. Strings, quoted names and
 * dollar-quoted strings are one token each, so nothing inside them is taken for a call. */
static tk_t lex(const char *s, size_t n, size_t *pos)
{
    size_t i = *pos;
    for (;;) {
        while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r' ||
                         s[i] == '\f' || s[i] == '\v')) {
            i++;
        }
        if (i + 1 < n && s[i] == '-' && s[i + 1] == '-') {
            while (i < n && s[i] != '\n') {
                i++;
            }
            continue;
        }
        if (i + 1 < n && s[i] == '/' && s[i + 1] == '*') {
            i += 2;
            while (i + 1 < n && !(s[i] == '*' && s[i + 1] == '/')) {
                i++;
            }
            i = i + 2 <= n ? i + 2 : n;
            continue;
        }
        break;
    }
    tk_t t = {TK_END, i, 0};
    if (i >= n) {
        *pos = n;
        return t;
    }
    char c = s[i];
    size_t j = i + 1;
    if (c == '\'' || c == '"') {
        while (j < n) {
            if (s[j] == c) {
                if (j + 1 < n && s[j + 1] == c) {
                    j += 2;
                    continue;
                }
                j++;
                break;
            }
            j++;
        }
        t.kind = c == '\'' ? TK_STR : TK_QWORD;
    } else if (c == '$') {
        size_t k = j;
        while (k < n && word_char(s[k])) {
            k++;
        }
        if (k < n && s[k] == '$') { /* $tag$ ... $tag$ */
            size_t tag = k + 1 - i;
            j = k + 1;
            while (j + tag <= n && memcmp(s + j, s + i, tag) != 0) {
                j++;
            }
            j = j + tag <= n ? j + tag : n;
        } else {
            j = k; /* a parameter: $1, $name */
        }
        t.kind = TK_OTHER;
    } else if (word_char(c)) {
        while (j < n && word_char(s[j])) {
            j++;
        }
        t.kind = TK_WORD;
    } else {
        t.kind = c == '('   ? TK_LP
                 : c == ')' ? TK_RP
                 : c == ',' ? TK_COMMA
                 : c == ';' ? TK_SEMI
                 : c == '.' ? TK_DOT
                            : TK_OTHER;
    }
    t.len = j - i;
    *pos = j;
    return t;
}

/* The index in list of the name token t (a word, or a quoted name), case-insensitive; -1. */
static int name_in(const char *sql, const tk_t *t, const char *const *list, size_t n)
{
    const char *p = sql + t->off;
    size_t len = t->len;
    if (t->kind == TK_QWORD) {
        if (len < 2) {
            return -1;
        }
        p++;
        len -= 2;
    } else if (t->kind != TK_WORD) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (strlen(list[i]) == len && strncasecmp(list[i], p, len) == 0) {
            return (int)i;
        }
    }
    return -1;
}

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* One reader call found in the SQL. */
typedef struct file_call {
    int reader;                /* index in file_readers */
    size_t start, end;         /* the call's bytes: name .. closing parenthesis */
    size_t lit_off, lit_len;   /* the file name's string literal, quotes included */
    size_t rest_off, rest_len; /* ", more arguments" (constants only), or empty */
    bool has_compression;      /* the arguments name compression= */
} file_call_t;

/* Tokenises sql (all of it: small next to the query) into *out (caller frees). */
static dg_rc_t tokenise(const char *sql, size_t len, tk_t **out, size_t *out_n, dg_error_t *err)
{
    size_t n = 0, cap = 64, pos = 0;
    tk_t *v = malloc(cap * sizeof *v);
    for (;;) {
        if (!v) {
            return dg_error_set(err, DG_NOMEM, "out of memory");
        }
        tk_t t = lex(sql, len, &pos);
        if (n == cap) {
            cap *= 2;
            tk_t *nv = realloc(v, cap * sizeof *v);
            if (!nv) {
                free(v);
                v = NULL;
                continue;
            }
            v = nv;
        }
        v[n++] = t;
        if (t.kind == TK_END) {
            break;
        }
    }
    *out = v;
    *out_n = n;
    return DG_OK;
}

/* Finds the reader calls of sql (at most MAX_FILE_READS) and refuses every other way to a file:
 * other file functions, COPY/ATTACH/EXPORT/IMPORT, and reader calls whose file is not one
 * string constant or whose other arguments are not constants. calls may be NULL (count only).
 * DG_FORBIDDEN (with the reason), DG_NOMEM. */
static dg_rc_t find_calls(const char *sql, size_t len, file_call_t *calls, size_t *out_n,
                          dg_error_t *err)
{
    *out_n = 0;
    tk_t *t = NULL;
    size_t n = 0;
    dg_rc_t rc = tokenise(sql, len, &t, &n, err);
    bool stmt_start = true;
    for (size_t i = 0; rc == DG_OK && t[i].kind != TK_END; i++) {
        if (t[i].kind == TK_SEMI) {
            stmt_start = true;
            continue;
        }
        if (stmt_start && name_in(sql, &t[i], file_statements, COUNT(file_statements)) >= 0) {
            rc = dg_error_set(err, DG_FORBIDDEN,
                              "admin SQL cannot run %.*s: it reads no files and attaches no "
                              "databases; it may read " HINT_DIRS " with read_csv, read_parquet "
                              "or read_json",
                              (int)t[i].len, sql + t[i].off);
            break;
        }
        stmt_start = false;
        if (t[i + 1].kind != TK_LP || (i > 0 && t[i - 1].kind == TK_DOT)) {
            continue;
        }
        if (name_in(sql, &t[i], file_others, COUNT(file_others)) >= 0) {
            rc = dg_error_set(err, DG_FORBIDDEN,
                              "admin SQL cannot call %.*s: it may read only " HINT_DIRS
                              ", with read_csv, read_parquet or read_json",
                              (int)t[i].len, sql + t[i].off);
            break;
        }
        int reader = name_in(sql, &t[i], file_readers, COUNT(file_readers));
        if (reader < 0) {
            continue;
        }
        /* The arguments: one string constant, then constants only (no parentheses, so no
         * function call, subquery or second file function). */
        size_t lp = i + 1, k = lp + 1;
        bool ok = t[k].kind == TK_STR && (t[k + 1].kind == TK_COMMA || t[k + 1].kind == TK_RP);
        size_t lit = k, rest = k + 1, rp = rest;
        bool has_comp = false;
        while (ok && t[rp].kind != TK_RP) {
            if (t[rp].kind == TK_LP || t[rp].kind == TK_END) {
                ok = false;
                break;
            }
            if (t[rp].kind == TK_WORD && t[rp].len == 11 &&
                strncasecmp(sql + t[rp].off, "compression", 11) == 0) {
                has_comp = true;
            }
            rp++;
        }
        if (!ok) {
            rc = dg_error_set(err, DG_FORBIDDEN,
                              "%s in admin SQL reads one file named by a string constant, "
                              "with constant options (no globs, lists, parameters or "
                              "expressions); it may read only " HINT_DIRS,
                              file_readers[reader]);
            break;
        }
        if (*out_n == MAX_FILE_READS) {
            rc = dg_error_set(err, DG_FORBIDDEN, "admin SQL may read at most %d files at once",
                              MAX_FILE_READS);
            break;
        }
        if (calls) {
            calls[*out_n] = (file_call_t){
                .reader = reader,
                .start = t[i].off,
                .end = t[rp].off + 1,
                .lit_off = t[lit].off,
                .lit_len = t[lit].len,
                .rest_off = t[rest].off,
                .rest_len = t[rp].off - t[rest].off,
                .has_compression = has_comp,
            };
        }
        (*out_n)++;
        i = rp;
    }
    free(t);
    return rc;
}

dg_rc_t dg_db_files_scan(const char *sql, size_t len, size_t *out_n, dg_error_t *err)
{
    return find_calls(sql, len, NULL, out_n, err);
}

/* Checks the file a reader call names and opens it: the string literal's value is a name
 * relative to an import directory, or an absolute path inside one, by the rules of imports
 * (plain components, no symlink on the way, a regular file). */
static dg_rc_t open_literal(const dg_db_loader_t *l, const char *lit, size_t lit_len, int *out_fd,
                            dg_error_t *err)
{
    char v[PATH_MAX];
    size_t n = 0;
    if (lit_len < 2 || lit[lit_len - 1] != '\'') {
        return dg_error_set(err, DG_FORBIDDEN, "the file name is not a closed string");
    }
    for (size_t i = 1; i + 1 < lit_len; i++) {
        if (n + 1 >= sizeof v) {
            return dg_error_set(err, DG_FORBIDDEN, "the file name is too long");
        }
        v[n++] = lit[i];
        if (lit[i] == '\'') {
            i++; /* '' */
        }
    }
    v[n] = '\0';
    if (strstr(v, "://") || strncmp(v, "s3:", 3) == 0 || strncmp(v, "gs:", 3) == 0) {
        return dg_error_set(err, DG_FORBIDDEN,
                            "admin SQL reads no URLs ('%.200s'): only " HINT_DIRS, v);
    }
    if (strpbrk(v, "*?[{")) {
        return dg_error_set(err, DG_FORBIDDEN,
                            "globs are not allowed in admin SQL ('%.200s'): name one file of "
                            "the import directories",
                            v);
    }
    int only = -1;
    const char *name = v;
    if (v[0] == '/') {
        for (size_t i = 0; i < l->n_dirs && only < 0; i++) {
            size_t dl = strlen(l->dirs[i]);
            if (strncmp(v, l->dirs[i], dl) == 0 && v[dl] == '/') {
                only = (int)i;
                name = v + dl + 1;
            }
        }
        if (only < 0) {
            return dg_error_set(err, DG_FORBIDDEN,
                                "'%.200s' is outside the import directories: admin SQL reads "
                                "only " HINT_DIRS,
                                v);
        }
    }
    if (!name_ok(name)) {
        return dg_error_set(err, DG_FORBIDDEN,
                            "'%.200s' is not a plain file name: relative to an import directory, "
                            "/-separated components of [A-Za-z0-9._-], none starting with '.'",
                            v);
    }
    return resolve(l, name, only, out_fd, err);
}

struct dg_db_staged {
    dg_db_t *target;
    char catalog[64]; /* the in-memory catalog attached to target; "" = none */
    dg_buf_t sql;     /* the rewritten SQL */
};

static dg_rc_t stage_call(dg_db_loader_t *l, dg_db_t *target, duckdb_connection lcon,
                          duckdb_connection tcon, const char *catalog, const char *sql,
                          const file_call_t *c, const char *table, const _Atomic int *intr,
                          dg_error_t *err)
{
    int fd = -1;
    char path[64];
    duckdb_result res;
    bool has_res = false;
    dg_buf_t sel, create;
    dg_buf_init(&sel, 1 << 20);
    dg_buf_init(&create, 1 << 20);
    uint64_t rows = 0;
    dg_rc_t rc = open_literal(l, sql + c->lit_off, c->lit_len, &fd, err);
    if (rc != DG_OK) {
        goto out;
    }
    fd_path(fd, path, sizeof path);
    /* The literal's own value is replaced by the descriptor; the other arguments are constants
     * (checked by find_calls). A .gz file lost its extension: name the codec. */
    bool gz = c->lit_len > 4 && strncasecmp(sql + c->lit_off + c->lit_len - 4, ".gz'", 4) == 0;
    rc = dg_buf_printf(&sel, "SELECT * FROM %s('%s'%.*s%s)", file_readers[c->reader], path,
                       (int)c->rest_len, sql + c->rest_off,
                       gz && !c->has_compression ? ", compression='gzip'" : "");
    if (rc != DG_OK) {
        rc = dg_error_set(err, rc, "out of memory");
        goto out;
    }
    rc = create_sql(target, lcon, sel.p, catalog, table, false, &create, err);
    if (rc == DG_OK) {
        rc = exec(target, tcon, create.p, err);
    }
    if (rc == DG_OK) {
        rc = run_to_result(target, lcon, sel.p, true, intr, &res, &has_res, err);
    }
    if (rc == DG_OK) {
        rc = append_all(target, tcon, catalog, table, &res, intr, &rows, err);
    }
out:
    if (has_res) {
        duckdb_destroy_result(&res);
    }
    if (fd >= 0) {
        close(fd);
    }
    dg_buf_free(&sel);
    dg_buf_free(&create);
    return rc;
}

dg_rc_t dg_db_files_stage(dg_db_loader_t *l, dg_db_t *target, const char *sql, size_t len,
                          const _Atomic int *interrupt, dg_db_staged_t **out, dg_error_t *err)
{
    static _Atomic unsigned long seq;
    *out = NULL;
    file_call_t calls[MAX_FILE_READS];
    size_t n = 0;
    duckdb_connection lcon = NULL, tcon = NULL;
    dg_rc_t rc = find_calls(sql, len, calls, &n, err);
    if (rc != DG_OK || n == 0) {
        return rc;
    }
    if (target->read_only) {
        return dg_error_set(err, DG_NOT_READ_ONLY,
                            "admin SQL reads import files only on a read-write database or in "
                            "a staging job: this database is read-only");
    }
    dg_db_staged_t *st = calloc(1, sizeof *st);
    if (!st) {
        return dg_error_set(err, DG_NOMEM, "out of memory");
    }
    st->target = target;
    dg_buf_init(&st->sql, len + 64 * MAX_FILE_READS + 1);
    if (duckdb_connect(l->inst, &lcon) != DuckDBSuccess ||
        duckdb_connect(target->inst, &tcon) != DuckDBSuccess) {
        rc = dg_error_set(err, DG_INTERNAL, "could not connect");
        goto out;
    }
    /* A private in-memory catalog of the target instance holds the files' rows: visible to the
     * query's own (fresh) connection, never written to the database file, detached at the end. */
    char attach[128];
    snprintf(st->catalog, sizeof st->catalog, "_dg_files_%ld_%lu", (long)getpid(),
             (unsigned long)atomic_fetch_add(&seq, 1));
    snprintf(attach, sizeof attach, "ATTACH ':memory:' AS \"%s\"", st->catalog);
    rc = exec(target, tcon, attach, err);
    if (rc != DG_OK) {
        st->catalog[0] = '\0';
        goto out;
    }
    size_t at = 0;
    for (size_t i = 0; rc == DG_OK && i < n; i++) {
        char table[24];
        snprintf(table, sizeof table, "f%zu", i + 1);
        rc = stage_call(l, target, lcon, tcon, st->catalog, sql, &calls[i], table, interrupt, err);
        if (rc == DG_OK) {
            rc = dg_buf_append(&st->sql, sql + at, calls[i].start - at);
        }
        if (rc == DG_OK) {
            rc = dg_buf_printf(&st->sql, "\"%s\".main.\"%s\"", st->catalog, table);
        }
        at = calls[i].end;
    }
    if (rc == DG_OK) {
        rc = dg_buf_append(&st->sql, sql + at, len - at);
    }
    if (rc != DG_OK && err->rc == DG_OK) {
        dg_error_set(err, rc, "out of memory");
    }
out:
    if (lcon) {
        duckdb_disconnect(&lcon);
    }
    if (tcon) {
        duckdb_disconnect(&tcon);
    }
    if (rc != DG_OK) {
        dg_db_staged_free(st);
        return rc;
    }
    *out = st;
    return DG_OK;
}

const char *dg_db_staged_sql(const dg_db_staged_t *st, size_t *out_len)
{
    *out_len = st->sql.len;
    return st->sql.p;
}

void dg_db_staged_free(dg_db_staged_t *st)
{
    if (!st) {
        return;
    }
    duckdb_connection con = NULL;
    if (st->catalog[0] && duckdb_connect(st->target->inst, &con) == DuckDBSuccess) {
        char detach[128];
        snprintf(detach, sizeof detach, "DETACH \"%s\"", st->catalog);
        dg_error_t ignore;
        dg_error_clear(&ignore);
        /* A failure (still in use: not once the query's cursor is gone) leaves the catalog to
         * the instance; nothing else can be done about it here. */
        (void)exec(st->target, con, detach, &ignore);
        duckdb_disconnect(&con);
    }
    dg_buf_free(&st->sql);
    free(st);
}
