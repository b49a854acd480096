/* Parquet export (DESIGN §5): DuckDB's own writer, streamed from bounded, always-cleaned temp
 * space.
 *
 * The serving instance can never write files (enable_external_access=false, configuration
 * locked), so a second READ_ONLY instance of the same file is opened lazily, once per dg_db_t,
 * with the serving instance's limits but external access still on; its first connection then
 * runs SET allowed_directories=['<export_dir>/'], SET enable_external_access=false and
 * SET lock_configuration=true, so that its COPY can write inside export_dir and nowhere else
 * and nothing can loosen that afterwards.
 *
 * The SQL is validated by the serving instance's full sandbox (dg_db__query_prepare) before the
 * export instance sees it; the export instance then only accepts the wrapped text if it is
 * exactly one statement whose prepared type is COPY. The file gets a unique name, is unlinked
 * as soon as it has been reopened (the descriptor keeps it alive) and is unlinked on every
 * error path, so nothing outlives the call.
 *
 * Threads: dg_db_export_parquet may run on several threads at once; the lazy open is serialised
 * by db->export_lock and the instance is immutable once published. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/ioutil.h"
#include "db/db_internal.h"

/* While DuckDB's worker threads hold all the work, the calling thread sleeps this long between
 * polls of the interrupt and the file size. */
#define POLL_SLEEP_NS (1000 * 1000)

/* ---- the export directory ---- */

/* Makes sure export_dir exists, is a real directory owned by us and private, and returns its
 * real path (malloc'd). The path goes into SQL string literals, so quotes and control
 * characters are refused rather than escaped. */
static dg_rc_t export_dir_prepare(const char *export_dir, char **out_real, dg_error_t *err)
{
    struct stat st;
    *out_real = NULL;
    if (!export_dir || export_dir[0] != '/') {
        return dg_error_set(err, DG_CONFIG, "the export directory must be an absolute path");
    }
    if (dg_mkdir_p(export_dir, 0700) != 0) {
        return dg_error_set(err, DG_CONFIG, "cannot create the export directory: %s",
                            strerror(errno));
    }
    /* lstat: a symlink planted at the export path must not redirect the files. */
    if (lstat(export_dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        return dg_error_set(err, DG_CONFIG, "the export directory is not a directory");
    }
    if (st.st_uid != geteuid()) {
        return dg_error_set(err, DG_CONFIG, "the export directory belongs to another user");
    }
    if ((st.st_mode & 077) != 0 && chmod(export_dir, 0700) != 0) {
        return dg_error_set(err, DG_CONFIG, "cannot make the export directory private: %s",
                            strerror(errno));
    }
    char *real = realpath(export_dir, NULL);
    if (!real) {
        return dg_error_set(err, DG_CONFIG, "cannot resolve the export directory: %s",
                            strerror(errno));
    }
    for (const char *p = real; *p; p++) {
        if (*p == '\'' || *p == '"' || (unsigned char)*p < 0x20 || *p == 0x7f) {
            free(real);
            return dg_error_set(err, DG_CONFIG,
                                "the export directory path contains a quote or control character");
        }
    }
    *out_real = real;
    return DG_OK;
}

/* ---- the export instance ---- */

/* Opens the export instance (db->export_lock held). */
static dg_rc_t export_open(dg_db_t *db, const char *dir, dg_error_t *err)
{
    dg_rc_t rc;
    duckdb_database inst = NULL;
    duckdb_connection con = NULL;
    char *spill = NULL;
    char *dir_copy = NULL;

    if (db->temp_dir) {
        /* Its own spill directory: two instances must not share temp files. */
        size_t n = strlen(db->temp_dir) + sizeof "/export";
        spill = malloc(n);
        if (!spill) {
            rc = dg_error_set(err, DG_NOMEM, "out of memory");
            goto out;
        }
        snprintf(spill, n, "%s/export", db->temp_dir);
        /* Created now (0700: spill files hold query data) because DuckDB creates only the last
         * component, and the serving instance may not have created its own directory yet. */
        if (dg_mkdir_p(spill, 0700) != 0) {
            rc = dg_error_set(err, DG_CONFIG, "cannot create the export spill directory: %s",
                              strerror(errno));
            goto out;
        }
    }
    dir_copy = strdup(dir);
    if (!dir_copy) {
        rc = dg_error_set(err, DG_NOMEM, "out of memory");
        goto out;
    }
    /* The serving settings minus the last two, which dg_db__confine SETs once the one writable
     * directory is in place (allowed_directories cannot go through duckdb_set_config). */
    dg_db__settings_t settings;
    dg_db__settings_of(db, spill, false, &settings);
    rc = dg_db__instance_open(db, db->path, &settings, "export instance", &inst, err);
    if (rc != DG_OK) {
        goto out;
    }
    if (duckdb_connect(inst, &con) != DuckDBSuccess) {
        con = NULL;
        rc = dg_error_set(err, DG_INTERNAL, "could not connect to the export instance");
        goto out;
    }
    rc = dg_db__confine(db, con, "export instance", &dir, 1, err);
    if (rc != DG_OK) {
        goto out;
    }
    db->export_inst = inst;
    db->export_dir = dir_copy;
    inst = NULL;
    dir_copy = NULL;
out:
    if (con) {
        duckdb_disconnect(&con);
    }
    if (inst) {
        duckdb_close(&inst);
    }
    free(dir_copy);
    free(spill);
    return rc;
}

/* The export instance for dir, opened on first use. */
static dg_rc_t export_instance(dg_db_t *db, const char *dir, duckdb_database *out, dg_error_t *err)
{
    dg_rc_t rc = DG_OK;
    pthread_mutex_lock(&db->export_lock);
    if (!db->export_inst) {
        rc = export_open(db, dir, err);
    } else if (strcmp(db->export_dir, dir) != 0) {
        rc = dg_error_set(err, DG_CONFIG,
                          "one database can only export into one directory per process");
    }
    *out = rc == DG_OK ? db->export_inst : NULL;
    pthread_mutex_unlock(&db->export_lock);
    return rc;
}

void dg_db__export_close(dg_db_t *db)
{
    if (db->export_inst) {
        duckdb_close(&db->export_inst);
    }
}

/* ---- one export ---- */

/* Copies msg with the export directory replaced by "<path>", then maps it like every DuckDB
 * error (which also scrubs the database's own paths). */
static dg_rc_t export_error(const dg_db_t *db, const char *dir, int type, const char *msg,
                            int reason, dg_error_t *err)
{
    char tmp[sizeof err->msg];
    size_t o = 0, dl = strlen(dir);
    if (!msg) {
        msg = "unknown DuckDB error";
    }
    while (*msg && o + 1 < sizeof tmp) {
        if (strncmp(msg, dir, dl) == 0) {
            static const char repl[] = "<path>";
            for (size_t k = 0; repl[k] && o + 1 < sizeof tmp; k++) {
                tmp[o++] = repl[k];
            }
            msg += dl;
        } else {
            tmp[o++] = *msg++;
        }
    }
    tmp[o] = '\0';
    return dg_db__error(db, type, tmp, reason, err);
}

/* COPY (<sql>\n) TO '<file>' (...): trailing semicolons and whitespace are dropped first, and the
 * newline ends a trailing "--" comment before it can swallow the closing parenthesis. */
static dg_rc_t wrap_copy(const dg_db_query_t *q, const char *file, dg_buf_t *out, dg_error_t *err)
{
    size_t n = q->sql_len;
    while (n > 0 && (q->sql[n - 1] == ';' || q->sql[n - 1] == ' ' || q->sql[n - 1] == '\t' ||
                     q->sql[n - 1] == '\n' || q->sql[n - 1] == '\r' || q->sql[n - 1] == '\f' ||
                     q->sql[n - 1] == '\v')) {
        n--;
    }
    dg_rc_t rc = dg_buf_puts(out, "COPY (");
    if (rc == DG_OK) {
        rc = dg_buf_append(out, q->sql, n);
    }
    if (rc == DG_OK) {
        rc = dg_buf_printf(out, "\n) TO '%s' (FORMAT PARQUET, COMPRESSION ZSTD)", file);
    }
    if (rc != DG_OK) {
        return dg_error_set(err, rc, "out of memory");
    }
    return DG_OK;
}

static int poll_reason(const _Atomic int *interrupt)
{
    return interrupt ? atomic_load(interrupt) : 0;
}

/* Size of path, 0 while DuckDB has not created it yet. */
static uint64_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* Stops the COPY: interrupts it, then lets DuckDB wind it down until it reports the error.
 * Destroying a COPY while its tasks were merely told to stop leaks parts of DuckDB's plan
 * (seen with LeakSanitizer in 1.4); the interrupted tasks end at their next check. */
static void stop_copy(duckdb_connection con, duckdb_pending_result pending)
{
    duckdb_interrupt(con);
    for (;;) {
        duckdb_pending_state st = duckdb_pending_execute_task(pending);
        if (st == DUCKDB_PENDING_ERROR || st == DUCKDB_PENDING_RESULT_READY) {
            return;
        }
        if (st == DUCKDB_PENDING_NO_TASKS_AVAILABLE) {
            struct timespec ts = {0, POLL_SLEEP_NS};
            nanosleep(&ts, NULL);
        }
        duckdb_interrupt(con); /* one that landed between two tasks may have been lost */
    }
}

/* Drives the COPY, polling the interrupt and the file size between tasks. */
static dg_rc_t run_copy(const dg_db_t *db, const char *dir, duckdb_connection con,
                        duckdb_pending_result pending, const dg_db_query_t *q, const char *file,
                        uint64_t max_bytes, dg_error_t *err)
{
    for (;;) {
        int r = poll_reason(q->interrupt);
        if (r) {
            stop_copy(con, pending);
            return dg_error_set(err, (dg_rc_t)r, "%s", dg_rc_message((dg_rc_t)r));
        }
        if (max_bytes && file_size(file) > max_bytes) {
            stop_copy(con, pending);
            return dg_error_set(err, DG_RESULT_TOO_LARGE,
                                "the Parquet file is larger than %" PRIu64 " bytes", max_bytes);
        }
        duckdb_pending_state st = duckdb_pending_execute_task(pending);
        if (st == DUCKDB_PENDING_RESULT_READY) {
            return DG_OK;
        }
        if (st == DUCKDB_PENDING_ERROR) {
            return export_error(db, dir, -1, duckdb_pending_error(pending),
                                poll_reason(q->interrupt), err);
        }
        if (st == DUCKDB_PENDING_NO_TASKS_AVAILABLE) {
            /* Other threads hold the work; do not spin a core while they run. */
            struct timespec ts = {0, POLL_SLEEP_NS};
            nanosleep(&ts, NULL);
        }
    }
}

dg_rc_t dg_db_export_parquet(dg_db_t *db, const dg_db_query_t *q, const char *export_dir,
                             uint64_t max_bytes, int *out_fd, uint64_t *out_size, dg_error_t *err)
{
    dg_rc_t rc;
    dg_db_cursor_t *check = NULL;
    char *dir = NULL;
    duckdb_database inst = NULL;
    duckdb_connection con = NULL;
    duckdb_extracted_statements ext = NULL;
    duckdb_prepared_statement ps = NULL;
    duckdb_pending_result pending = NULL;
    duckdb_result res;
    bool has_res = false;
    char file[PATH_MAX];
    bool has_file = false;
    int fd = -1;
    dg_buf_t sql;

    dg_buf_init(&sql, q->sql_len + PATH_MAX + 128);
    *out_fd = -1;
    *out_size = 0;
    if (!db->read_only || strcmp(db->path, ":memory:") == 0) {
        rc = dg_error_set(err, DG_NOT_ACCEPTABLE,
                          "Parquet export needs a database served read-only from a file");
        goto out;
    }
    /* Layers 2-4 and the parameters on the serving instance, exactly as for every other format;
     * the prepared statement is only a verdict and is dropped unexecuted. */
    {
        dg_db_query_t uq = *q;
        uq.mode = DG_DB_MODE_READONLY_SQL;
        rc = dg_db__query_prepare(db, &uq, true, &check, err);
        dg_db_cursor_free(check);
        check = NULL;
        if (rc != DG_OK) {
            goto out;
        }
    }
    rc = export_dir_prepare(export_dir, &dir, err);
    if (rc != DG_OK) {
        goto out;
    }
    rc = export_instance(db, dir, &inst, err);
    if (rc != DG_OK) {
        goto out;
    }
    {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        uint64_t seq = atomic_fetch_add(&db->export_seq, 1);
        int n = snprintf(file, sizeof file, "%s/dg-%ld-%" PRIu64 "-%lx%09ld.parquet", dir,
                         (long)getpid(), seq, (unsigned long)now.tv_sec, (long)now.tv_nsec);
        if (n < 0 || (size_t)n >= sizeof file) {
            rc = dg_error_set(err, DG_CONFIG, "the export directory path is too long");
            goto out;
        }
    }
    rc = wrap_copy(q, file, &sql, err);
    if (rc != DG_OK) {
        goto out;
    }
    if (duckdb_connect(inst, &con) != DuckDBSuccess) {
        con = NULL;
        rc = dg_error_set(err, DG_INTERNAL, "could not connect to the export instance");
        goto out;
    }
    /* Fail closed unless the wrapped text is still one statement, and a COPY. */
    idx_t n_st = duckdb_extract_statements(con, sql.p, &ext);
    if (n_st == 0) {
        const char *e = ext ? duckdb_extract_statements_error(ext) : NULL;
        rc = e ? export_error(db, dir, -1, e, 0, err)
               : dg_error_set(err, DG_SQL_ERROR, "the SQL cannot be exported");
        goto out;
    }
    if (n_st != 1) {
        rc = dg_error_set(err, DG_MULTIPLE_STATEMENTS, "exactly one SQL statement is allowed");
        goto out;
    }
    if (duckdb_prepare_extracted_statement(con, ext, 0, &ps) != DuckDBSuccess) {
        rc = export_error(db, dir, -1, duckdb_prepare_error(ps), 0, err);
        goto out;
    }
    if (duckdb_prepared_statement_type(ps) != DUCKDB_STATEMENT_TYPE_COPY) {
        rc = dg_error_set(err, DG_NOT_READ_ONLY, "the query cannot be exported as one COPY");
        goto out;
    }
    rc = dg_db__bind_params(ps, q, err);
    if (rc != DG_OK) {
        goto out;
    }
    has_file = true; /* from here on DuckDB may create the file */
    if (duckdb_pending_prepared(ps, &pending) != DuckDBSuccess) {
        rc = export_error(db, dir, -1, duckdb_pending_error(pending), 0, err);
        goto out;
    }
    rc = run_copy(db, dir, con, pending, q, file, max_bytes, err);
    if (rc != DG_OK) {
        goto out;
    }
    has_res = true;
    if (duckdb_execute_pending(pending, &res) != DuckDBSuccess) {
        rc = export_error(db, dir, (int)duckdb_result_error_type(&res), duckdb_result_error(&res),
                          poll_reason(q->interrupt), err);
        goto out;
    }
    /* The file is complete. Reopen it without following links, then unlink it at once: from
     * now on only the descriptor keeps it alive. */
    fd = open(file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        rc = dg_error_set(err, DG_IO, "cannot reopen the Parquet file: %s", strerror(errno));
        goto out;
    }
    if (unlink(file) == 0) {
        has_file = false;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = dg_error_set(err, DG_IO, "the Parquet file is not a regular file");
        goto out;
    }
    if (max_bytes && (uint64_t)st.st_size > max_bytes) {
        rc = dg_error_set(err, DG_RESULT_TOO_LARGE,
                          "the Parquet file is larger than %" PRIu64 " bytes", max_bytes);
        goto out;
    }
    *out_size = (uint64_t)st.st_size;
    rc = DG_OK;
out:
    /* Every DuckDB object goes before the unlink, so no execution thread still writes. */
    if (has_res) {
        duckdb_destroy_result(&res);
    }
    if (pending) {
        duckdb_destroy_pending(&pending);
    }
    if (ps) {
        duckdb_destroy_prepare(&ps);
    }
    if (ext) {
        duckdb_destroy_extracted(&ext);
    }
    if (con) {
        duckdb_disconnect(&con);
    }
    if (has_file && unlink(file) != 0 && errno != ENOENT) {
        /* A file that cannot be removed must not be reported as a clean success. */
        dg_rc_t urc = dg_error_set(err, DG_IO, "cannot remove an export file: %s", strerror(errno));
        if (rc == DG_OK) {
            rc = urc;
        }
    }
    if (rc != DG_OK && fd >= 0) {
        close(fd);
        fd = -1;
    }
    dg_buf_free(&sql);
    free(dir);
    *out_fd = fd;
    return rc;
}
