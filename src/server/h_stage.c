/* POST|DELETE /api/admin/stage/{db} (admin, docs/admin.md "Staging"): the staging copy
 * `<data_dir>/<db>.duckdb.next` of a read-only database, which jobs with "target":"next" write
 * and POST /api/admin/reload/{db} swaps in. `duckgate build --remote` drives the three.
 *
 * POST makes a fresh copy of the file served now: any previous staging copy and its write-ahead
 * log are removed, the live file is copied to `<db>.duckdb.next.copying` in the same directory
 * (copy_file_range, fsync), which is then renamed to `.next` and the directory synced, so a
 * crash leaves either no staging copy or a complete one. 201 {"db","bytes"}.
 * DELETE removes the staging copy and its write-ahead log: 200 {"db","discarded":bool}.
 *
 * Both refuse with 409 STAGING_BUSY while a staging job of the database runs (it holds the file
 * open), and hold the database's reload lock, so a reload never checks a half-made copy.
 * Errors: 404 UNKNOWN_DB, 400 BAD_REQUEST (a read-write database), 500 IO.
 * Threads: the request's connection thread. */
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/ioutil.h"
#include "core/log.h"
#include "server/jobs.h"
#include "server/server_int.h"
#include "server/swap.h"

/* "<path><suffix>" into out; false when it does not fit. */
static bool path_with(char *out, size_t cap, const char *path, const char *suffix)
{
    int n = snprintf(out, cap, "%s%s", path, suffix);
    return n > 0 && (size_t)n < cap;
}

dg_rc_t dg_server__staging_check(dg_server_t *s, int idx, dg_error_t *err)
{
    if (idx < 0) {
        return dg_error_set(err, DG_UNKNOWN_DB, "unknown database");
    }
    const char *name = s->dbs[idx].name;
    if (dg_engines_is_read_write(s->cfg, name)) {
        return dg_error_set(err, DG_BAD_REQUEST,
                            "%s is served read-write: it has no staging copy (run jobs on it "
                            "directly)",
                            name);
    }
    char next[PATH_MAX];
    struct stat st;
    if (!path_with(next, sizeof next, s->dbs[idx].path, ".next")) {
        return dg_error_set(err, DG_IO, "the path of %s.duckdb.next is too long", name);
    }
    if (lstat(next, &st) != 0 || !S_ISREG(st.st_mode)) {
        return dg_error_set(err, DG_NO_STAGING,
                            "%s has no staging copy; POST /api/admin/stage/%s first", name, name);
    }
    return DG_OK;
}

/* Replaces the staging copy of idx by a copy of the served file; *out_bytes its size. */
static dg_rc_t stage_create(dg_server_t *s, int idx, long long *out_bytes, dg_error_t *err)
{
    const dg_dbfile_t *f = &s->dbs[idx];
    char next[PATH_MAX], tmp[PATH_MAX];
    if (!path_with(next, sizeof next, f->path, ".next") ||
        !path_with(tmp, sizeof tmp, f->path, ".next.copying")) {
        return dg_error_set(err, DG_IO, "the path of %s.duckdb.next is too long", f->name);
    }
    /* A write-ahead log left from an older copy would be replayed into the new one. */
    dg_remove_db_file(next);
    dg_remove_db_file(tmp);
    dg_error_t ioerr;
    dg_error_clear(&ioerr);
    dg_rc_t rc = dg_copy_file(f->path, tmp, &ioerr);
    if (rc == DG_OK) {
        rc = dg_rename_durable(tmp, next, &ioerr);
    }
    if (rc != DG_OK) {
        unlink(tmp);
        /* The I/O message names server paths: logged, not answered. */
        DG_LOGW("stage", "cannot make the staging copy db=%s err=\"%s\"", f->name, ioerr.msg);
        return dg_error_set(err, rc, "cannot make the staging copy of %s (the server log says why)",
                            f->name);
    }
    struct stat st;
    *out_bytes = stat(next, &st) == 0 ? (long long)st.st_size : 0;
    return DG_OK;
}

void dg_server__h_stage(dg_http_req_t *r, void *ctx)
{
    dg_server_t *s = ctx;
    const char *qid = r->id;
    int idx = dg_server__admin_file_db(s, r, "it has no staging copy (run jobs on it directly)");
    if (idx < 0) {
        return;
    }
    const char *name = s->dbs[idx].name;
    dg_error_t err;
    dg_error_clear(&err);
    bool is_create = r->method == DG_HTTP_POST;
    long long bytes = 0;
    bool existed = false;
    dg_server__swap_lock(s->swap, idx);
    dg_rc_t rc = dg_jobs_stage_begin(s->jobs, idx, &err);
    if (rc == DG_OK) {
        if (is_create) {
            rc = stage_create(s, idx, &bytes, &err);
        } else {
            char next[PATH_MAX];
            struct stat st;
            if (path_with(next, sizeof next, s->dbs[idx].path, ".next")) {
                existed = lstat(next, &st) == 0;
                dg_remove_db_file(next);
            }
        }
        dg_jobs_stage_end(s->jobs, idx);
    }
    dg_server__swap_unlock(s->swap, idx);
    if (rc != DG_OK) {
        dg_http_respond_error(r, rc, err.msg[0] ? err.msg : NULL, qid, 0);
        return;
    }
    dg_log(DG_LOG_INFO, "stage", qid, "%s staging copy db=%s principal=%s",
           is_create ? "made" : "discarded", name, r->principal);
    json_t *o = is_create ? json_pack("{s:s, s:I}", "db", name, "bytes", (json_int_t)bytes)
                          : json_pack("{s:s, s:b}", "db", name, "discarded", existed);
    dg_server__respond_json(r, is_create ? 201 : 200, o, JSON_COMPACT, NULL, 0);
}
