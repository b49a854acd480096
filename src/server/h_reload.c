/* POST /api/admin/reload/{db} (admin): swaps a rebuilt file `<data_dir>/<db>.duckdb.next` in.
 *
 * Steps: the `.next` file must be a regular file without a write-ahead log (swap.c); an engine
 * opens it READ_ONLY with the serving settings and reads its catalog (kind "swap_check"), so a
 * corrupt or half-written file is refused while the old one keeps serving; it is renamed over
 * the live file (atomic) and the data directory synced; the data version is bumped; then every
 * engine is asked to switch at once (kind "refresh") so the old instances can close.
 *
 * Guarantee: every request started after this route answered (indeed after the rename) runs on
 * the new file. Engines stat the file for every request before they pick the instance
 * (engine_dbs.h), and a request's REQ frame is read after the rename returned, so it sees the
 * new file whether or not that engine was reached by the refresh; a refresh that gets no slot
 * (queue full or timed out) is skipped for that reason (the engine's own refresh thread also
 * switches within DG_ENGINE__REFRESH_MS). Requests already running finish on the old file.
 * An engine that cannot open the checked file after all (its memory limit) keeps serving the
 * old one and logs a WARN; so does this route.
 * Without a `.next` file nothing is swapped; the answer reports the current version, which also
 * reflects a file renamed in by another process.
 *
 * Answer: {"db":..,"version":N,"swapped":bool,"engines_refreshed":K}. Errors: 404 UNKNOWN_DB,
 * 400 for a read-write database, 409 STAGING_BUSY while a job writes the `.next` file (jobs with
 * "target":"next", h_stage.c), 422 BAD_SNAPSHOT (the engine's reason), 500 IO.
 * Threads: the request's connection thread; reloads of one database are serialised. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "core/dgtime.h"
#include "core/log.h"
#include "server/jobs.h"
#include "server/server_int.h"
#include "server/swap.h"

/* The engine's check opens the file and reads its catalog; generous for a large file. */
#define CHECK_TIMEOUT_MS 120000
#define REFRESH_TIMEOUT_MS 120000

/* Sends req on a leased slot and reads to END or ERROR. ERROR fills err with the engine's code
 * and message and returns the code. Releases the slot. */
static dg_rc_t engine_call(dg_server_t *s, dg_slot_t *slot, const char *req, int64_t timeout_ms,
                           dg_error_t *err)
{
    dg_buf_t payload;
    dg_buf_init_rc(&payload, DG_FRAME_MAX_PAYLOAD, DG_PROTOCOL);
    dg_frame_type_t type = DG_FRAME_ERROR;
    dg_rc_t rc = dg_slot_send(slot, req, strlen(req), dg_now_ms() + timeout_ms);
    while (rc == DG_OK && (rc = dg_slot_read(slot, -1, &type, &payload)) == DG_OK &&
           type != DG_FRAME_END && type != DG_FRAME_ERROR) {
    }
    if (rc == DG_OK && type == DG_FRAME_ERROR) {
        json_t *j = json_loadb(payload.p ? payload.p : "", payload.len, 0, NULL);
        const char *code = json_string_value(json_object_get(j, "code"));
        const char *msg = json_string_value(json_object_get(j, "message"));
        rc = code ? dg_rc_from_name(code) : DG_PROTOCOL;
        dg_error_set(err, rc, "%s", msg ? msg : dg_rc_message(rc));
        json_decref(j);
    } else if (rc != DG_OK) {
        dg_error_set(err, rc, "%s", dg_rc_message(rc));
    }
    dg_engines_release(s->engines, slot);
    dg_buf_free(&payload);
    return rc;
}

static char *swap_req(const char *qid, const char *kind, const char *db)
{
    json_t *o = json_pack("{s:s, s:s, s:s}", "id", qid, "kind", kind, "db", db);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return text;
}

/* Asks engine idx to switch to the new file now, waiting for a slot of that engine in the
 * admission queue like any request (bounded by queue_timeout_ms). False when none came or the
 * engine could not open the file (it keeps serving the old one; logged). */
static bool refresh_engine(dg_server_t *s, int idx, const char *req, const char *qid)
{
    dg_slot_t *slot = NULL;
    int retry = 0;
    dg_rc_t rc = dg_engines_acquire_on(s->engines, idx, -1, &slot, &retry);
    if (rc != DG_OK) {
        dg_log(DG_LOG_INFO, "swap", qid,
               "engine %d not refreshed now (%s); it switches before its next request", idx,
               dg_rc_name(rc));
        return false;
    }
    dg_error_t err;
    dg_error_clear(&err);
    rc = engine_call(s, slot, req, REFRESH_TIMEOUT_MS, &err);
    if (rc != DG_OK) {
        dg_log(DG_LOG_WARN, "swap", qid, "engine %d refresh failed code=%s msg=\"%s\"", idx,
               dg_rc_name(rc), err.msg);
        return false;
    }
    return true;
}

static void respond_ok(dg_http_req_t *r, dg_server_t *s, int idx, bool swapped, int refreshed)
{
    char body[256];
    int n = snprintf(body, sizeof body,
                     "{\"db\":\"%s\",\"version\":%llu,\"swapped\":%s,\"engines_refreshed\":%d}",
                     s->dbs[idx].name, (unsigned long long)dg_server__db_version(s, idx),
                     swapped ? "true" : "false", refreshed);
    dg_http_respond(r, 200, "application/json", body, (size_t)n, NULL, 0);
}

int dg_server__admin_db(dg_server_t *s, dg_http_req_t *r)
{
    if (!dg_server__admit(s, r, DG_ROLE_ADMIN, &r->match.cap[0], NULL)) {
        return -1;
    }
    int idx = dg_server__db_index(s, r->match.cap[0].p, r->match.cap[0].len);
    if (idx < 0) {
        dg_http_respond_error(r, DG_UNKNOWN_DB, NULL, r->id, 0);
    }
    return idx;
}

int dg_server__admin_file_db(dg_server_t *s, dg_http_req_t *r, const char *why)
{
    int idx = dg_server__admin_db(s, r);
    if (idx >= 0 && dg_engines_is_read_write(s->cfg, s->dbs[idx].name)) {
        char msg[200];
        snprintf(msg, sizeof msg, "%s is served read-write: %s", s->dbs[idx].name, why);
        dg_http_respond_error(r, DG_BAD_REQUEST, msg, r->id, 0);
        return -1;
    }
    return idx;
}

void dg_server__h_reload(dg_http_req_t *r, void *ctx)
{
    dg_server_t *s = ctx;
    const char *qid = r->id;
    int idx =
        dg_server__admin_file_db(s, r, "it changes by admin writes, not by swapping in a file");
    if (idx < 0) {
        return;
    }
    const char *name = s->dbs[idx].name;
    dg_error_t err;
    dg_error_clear(&err);
    char *check = swap_req(qid, "swap_check", name);
    char *refresh = swap_req(qid, "refresh", name);
    bool exists = false, swapped = false;
    int refreshed = 0, retry = 0;
    dg_server__file_id_t next;
    dg_rc_t rc = check && refresh ? DG_OK : DG_NOMEM;

    dg_server__swap_lock(s->swap, idx);
    /* A staging job holds the .next file open read-write: refused (409 STAGING_BUSY). */
    bool is_reserved = false;
    if (rc == DG_OK) {
        rc = dg_jobs_stage_begin(s->jobs, idx, &err);
        is_reserved = rc == DG_OK;
    }
    if (rc == DG_OK) {
        rc = dg_server__swap_prepare(s->swap, idx, &exists, &next, &err);
    }
    if (rc == DG_OK && exists) {
        dg_slot_t *slot = NULL;
        rc = dg_engines_acquire(s->engines, -1, &slot, &retry);
        if (rc == DG_OK) {
            rc = engine_call(s, slot, check, CHECK_TIMEOUT_MS, &err);
        } else {
            dg_error_set(&err, rc, "no engine free to check the new file; retry");
        }
    }
    if (rc == DG_OK && exists) {
        rc = dg_server__swap_commit(s->swap, idx, &next, &err);
    }
    if (rc == DG_OK && exists) {
        swapped = true;
        dg_server__db_changed(s, idx);
        dg_log(DG_LOG_INFO, "swap", qid, "swapped in %s.duckdb.next principal=%s", name,
               r->principal);
        for (int i = 0; i < s->cfg->engines; i++) {
            refreshed += refresh_engine(s, i, refresh, qid) ? 1 : 0;
        }
    }
    if (is_reserved) {
        dg_jobs_stage_end(s->jobs, idx);
    }
    dg_server__swap_unlock(s->swap, idx);
    free(check);
    free(refresh);
    if (rc != DG_OK) {
        dg_log(DG_LOG_WARN, "swap", qid, "reload of %s refused code=%s msg=\"%s\"", name,
               dg_rc_name(rc), err.msg);
        dg_http_respond_error(r, rc, err.msg[0] ? err.msg : NULL, qid, retry);
        return;
    }
    respond_ok(r, s, idx, swapped, refreshed);
}
