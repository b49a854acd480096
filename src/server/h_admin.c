/* The admin path (docs/admin.md): any SQL on a database (`POST /api/admin/query/{db}`), and
 * background jobs (`/api/admin/jobs[/{id}]`, server/jobs.c). Every route needs the admin role
 * (for the database concerned, when the key is scoped) and is rate limited like the others.
 *
 * Admin SQL is trusted: the engine skips the parse-tree check but runs it inside the same locked
 * instance settings (no file access, no extensions). It has no default deadline, only the
 * caller's explicit timeout_ms. On a read-only database DuckDB refuses writes; the engine turns
 * that into 409 READ_ONLY_DATABASE pointing to build-and-swap. A read-write database is served
 * by its owning engine alone (dg_server__engine_for_db), and a write bumps its data version.
 *
 * Threads: any connection thread; handlers only read the server context (jobs lock their own). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "http/http_query.h"
#include "server/jobs.h"
#include "server/server_int.h"

/* No deadline unless asked for: parse timeout_ms against this ceiling, and treat reaching it as
 * "none". Explicit deadlines are capped at 30 days so deadline arithmetic cannot overflow. */
#define ADMIN_NO_DEADLINE INT64_MAX
#define ADMIN_MAX_TIMEOUT_MS ((int64_t)30 * 86400 * 1000)

int dg_server__engine_for_db(dg_server_t *s, const char *db)
{
    return db && dg_engines_is_read_write(s->cfg, db) ? DG_ENGINES_RW_OWNER : -1;
}

static int64_t admin_timeout(int64_t parsed)
{
    if (parsed >= ADMIN_NO_DEADLINE || parsed <= 0) {
        return 0;
    }
    return parsed > ADMIN_MAX_TIMEOUT_MS ? ADMIN_MAX_TIMEOUT_MS : parsed;
}

/* Answers with a JSON value (consumed). */
static void respond_json(dg_http_req_t *r, int status, json_t *o, const dg_http_header_t *h,
                         size_t n_h)
{
    /* Six significant digits: progress reads 12.34, not 12.339999999999999. */
    dg_server__respond_json(r, status, o, JSON_COMPACT | JSON_REAL_PRECISION(6), h, n_h);
}

/* The access, rate and draining gates every admin route passes; db may be NULL. */
static bool admin_gate(dg_server_t *s, dg_http_req_t *r, const dg_str_t *db, dg_auth_result_t *who)
{
    return dg_server__admit(s, r, DG_ROLE_ADMIN, db, who);
}

/* ---- POST /api/admin/query/{db} ------------------------------------------------------------ */

void dg_server__h_admin_query(dg_http_req_t *r, void *ctx)
{
    dg_server_t *s = ctx;
    const char *qid = r->id;
    dg_auth_result_t who;
    if (!admin_gate(s, r, &r->match.cap[0], &who)) {
        return;
    }
    dg_http_query_limits_t lim = {s->cfg->max_sql_bytes, ADMIN_NO_DEADLINE, s->dbs, s->n_dbs};
    dg_http_query_t q;
    dg_error_t err;
    dg_error_clear(&err);
    dg_rc_t rc = dg_http_query_from_body(r->match.cap[0], r->body.p, r->body.len, &r->target.args,
                                         dg_http_req_header(r, "Accept"), &lim, &q, &err);
    if (rc != DG_OK) {
        dg_http_respond_error(r, rc, err.msg, qid, 0);
        return;
    }
    dg_codec_id_t coding;
    int level;
    rc = dg_server__response_coding(s, r, &coding, &level, &err);
    if (rc != DG_OK) {
        dg_http_query_free(&q);
        dg_http_respond_error(r, rc, err.msg, qid, 0);
        return;
    }
    /* The admin role's row and byte caps apply as on every query route; its admin_timeout_ms,
     * when set, is a ceiling (docs/auth.md "Per-role limits"): without it there is no deadline. */
    dg_caller_limits_t cl;
    dg_server__caller_limits(s, &who, &cl);
    int64_t timeout_ms = admin_timeout(q.timeout_ms);
    int64_t ceiling = dg_server__role_policy(s, &who)->timeout_ms;
    if (ceiling > 0 && (timeout_ms == 0 || timeout_ms > ceiling)) {
        timeout_ms = ceiling;
    }
    json_t *req = json_pack(
        "{s:s, s:s, s:i, s:s, s:s, s:s%, s:s, s:I, s:I, s:I, s:I}", "id", qid, "encoding",
        dg_codec_name(coding), "level", level, "kind", "admin", "db", q.db, "sql", q.sql, q.sql_len,
        "format", dg_http_format_name(q.format), "timeout_ms", (json_int_t)timeout_ms, "max_rows",
        (json_int_t)cl.max_rows, "max_bytes", (json_int_t)cl.max_bytes, "max_export_bytes",
        (json_int_t)s->cfg->max_export_bytes);
    if (req && q.params && json_object_set(req, "params", q.params) != 0) {
        json_decref(req);
        req = NULL;
    }
    if (!req) {
        dg_http_respond_error(r, DG_NOMEM, NULL, qid, 0);
    } else {
        /* Admin SQL is logged (it is the operator's own text), like a DDL audit line. */
        dg_log(DG_LOG_INFO, "admin", qid, "query principal=%s db=%s format=%s timeout_ms=%lld",
               r->principal, q.db, dg_http_format_name(q.format), (long long)timeout_ms);
        if (dg_server__concurrency_enter(s, r, &who)) {
            dg_server__run_on_slot(s, r, qid, req, timeout_ms, q.format);
        }
    }
    json_decref(req);
    dg_http_query_free(&q);
}

/* ---- /api/admin/jobs ----------------------------------------------------------------------- */

/* Parses {"db": "...", "sql": "...", "timeout_ms": N, "target": "served"|"next"} strictly. */
static dg_rc_t parse_job(dg_server_t *s, const dg_http_req_t *r, char db[65], const char **sql,
                         size_t *sql_len, int64_t *timeout_ms, bool *is_staging, json_t **root,
                         dg_error_t *err)
{
    json_error_t jerr;
    *root = json_loadb(r->body.p ? r->body.p : "", r->body.len, JSON_REJECT_DUPLICATES, &jerr);
    if (!*root) {
        return dg_error_set(err, DG_BAD_JSON, "request body is not valid JSON: %s", jerr.text);
    }
    if (!json_is_object(*root)) {
        return dg_error_set(err, DG_BAD_REQUEST, "the body must be a JSON object");
    }
    const char *key;
    json_t *v;
    json_object_foreach(*root, key, v)
    {
        if (strcmp(key, "db") != 0 && strcmp(key, "sql") != 0 && strcmp(key, "timeout_ms") != 0 &&
            strcmp(key, "target") != 0) {
            return dg_error_set(err, DG_BAD_REQUEST,
                                "unknown field \"%.40s\" (db, sql, timeout_ms, target)", key);
        }
    }
    json_t *jdb = json_object_get(*root, "db");
    json_t *jsql = json_object_get(*root, "sql");
    json_t *jt = json_object_get(*root, "timeout_ms");
    if (!json_is_string(jdb)) {
        return dg_error_set(err, DG_BAD_REQUEST, "\"db\" (a database name) is required");
    }
    dg_http_query_limits_t lim = {s->cfg->max_sql_bytes, ADMIN_NO_DEADLINE, s->dbs, s->n_dbs};
    dg_str_t name = {json_string_value(jdb), json_string_length(jdb)};
    dg_rc_t rc = dg_http_query_check_db(name, &lim, db, err);
    if (rc != DG_OK) {
        return rc;
    }
    if (!json_is_string(jsql) || json_string_length(jsql) == 0) {
        return dg_error_set(err, DG_MISSING_SQL, "\"sql\" (a non-empty string) is required");
    }
    if (json_string_length(jsql) > s->cfg->max_sql_bytes) {
        return dg_error_set(err, DG_SQL_TOO_LARGE, "the SQL is longer than max_sql_bytes (%llu)",
                            (unsigned long long)s->cfg->max_sql_bytes);
    }
    if (jt && (!json_is_integer(jt) || json_integer_value(jt) <= 0)) {
        return dg_error_set(err, DG_BAD_REQUEST, "timeout_ms must be a positive integer");
    }
    json_t *jtarget = json_object_get(*root, "target");
    const char *target = jtarget ? json_string_value(jtarget) : "served";
    if (!target || (strcmp(target, "served") != 0 && strcmp(target, "next") != 0)) {
        return dg_error_set(err, DG_BAD_REQUEST,
                            "target must be \"served\" (the served file) or \"next\" (its "
                            "staging copy)");
    }
    *is_staging = strcmp(target, "next") == 0;
    *sql = json_string_value(jsql);
    *sql_len = json_string_length(jsql);
    *timeout_ms = jt ? admin_timeout((int64_t)json_integer_value(jt)) : 0;
    return DG_OK;
}

static void submit_job(dg_server_t *s, dg_http_req_t *r)
{
    char db[65];
    const char *sql = NULL;
    size_t sql_len = 0;
    int64_t timeout_ms = 0;
    bool is_staging = false;
    json_t *root = NULL;
    dg_error_t err;
    dg_error_clear(&err);
    dg_rc_t rc = parse_job(s, r, db, &sql, &sql_len, &timeout_ms, &is_staging, &root, &err);
    dg_auth_result_t who;
    if (rc != DG_OK) {
        json_decref(root);
        dg_http_respond_error(r, rc, err.msg, r->id, 0);
        return;
    }
    /* The route names no database: check the key's scope against the body's. */
    dg_str_t dbv = dg_str_c(db);
    if (!admin_gate(s, r, &dbv, &who)) {
        json_decref(root);
        return;
    }
    if (is_staging) {
        rc = dg_server__staging_check(s, dg_server__db_index(s, db, strlen(db)), &err);
        if (rc != DG_OK) {
            json_decref(root);
            dg_http_respond_error(r, rc, err.msg, r->id, 0);
            return;
        }
    }
    char id[40];
    json_t *o = NULL;
    rc = dg_jobs_submit(s->jobs, db, is_staging, sql, sql_len, timeout_ms, r->principal, id, &o,
                        &err);
    json_decref(root);
    if (rc != DG_OK) {
        dg_http_respond_error(r, rc, err.msg, r->id, rc == DG_OVERLOADED ? 5 : 0);
        return;
    }
    dg_log(DG_LOG_INFO, "admin", r->id, "job submitted id=%s principal=%s db=%s target=%s", id,
           r->principal, db, is_staging ? "next" : "served");
    char loc[80];
    snprintf(loc, sizeof loc, "/api/admin/jobs/%s", id);
    dg_http_header_t h[1] = {{"Location", loc}};
    respond_json(r, 202, o, h, 1);
}

void dg_server__h_admin_jobs(dg_http_req_t *r, void *ctx)
{
    dg_server_t *s = ctx;
    if (r->method == DG_HTTP_POST) {
        /* Authorised after parsing: the database is in the body. Bad credentials still get
         * 401/403 before any parse error (role check without a database first). */
        if (!dg_server__authorize(s, r, DG_ROLE_ADMIN, NULL, NULL)) {
            return;
        }
        submit_job(s, r);
        return;
    }
    dg_auth_result_t who;
    if (!admin_gate(s, r, NULL, &who)) {
        return;
    }
    respond_json(r, 200, dg_jobs_list(s->jobs, &who), NULL, 0);
}

void dg_server__h_admin_job(dg_http_req_t *r, void *ctx)
{
    dg_server_t *s = ctx;
    dg_auth_result_t who;
    if (!admin_gate(s, r, NULL, &who)) {
        return;
    }
    dg_str_t id = r->match.cap[0];
    json_t *o = NULL;
    if (r->method == DG_HTTP_DELETE) {
        dg_rc_t rc = dg_jobs_cancel(s->jobs, id.p, id.len, &who, &o);
        if (rc == DG_OK) {
            dg_log(DG_LOG_INFO, "admin", r->id, "job cancel id=%.*s principal=%s", (int)id.len,
                   id.p, r->principal);
        }
        if (rc != DG_OK && rc != DG_NOT_FOUND) {
            dg_http_respond_error(r, rc, NULL, r->id, 0);
            return;
        }
    } else {
        o = dg_jobs_get(s->jobs, id.p, id.len, &who);
    }
    if (!o) {
        dg_http_respond_error(r, DG_NOT_FOUND,
                              "no such job (finished jobs are kept for "
                              "job_retention_s)",
                              r->id, 0);
        return;
    }
    respond_json(r, 200, o, NULL, 0);
}

/* ---- POST /api/admin/import/{db} ----------------------------------------------------------- */

/* {"table": "...", "file": "relative/name.csv", "mode": "create|replace|append",
 * "timeout_ms": N}: checked here for shape; the engine checks names and reads the file. */
void dg_server__h_admin_import(dg_http_req_t *r, void *ctx)
{
    dg_server_t *s = ctx;
    const char *qid = r->id;
    dg_auth_result_t who;
    if (!admin_gate(s, r, &r->match.cap[0], &who)) {
        return;
    }
    dg_http_query_limits_t lim = {s->cfg->max_sql_bytes, ADMIN_NO_DEADLINE, s->dbs, s->n_dbs};
    char db[65];
    dg_error_t err;
    dg_error_clear(&err);
    dg_rc_t rc = dg_http_query_check_db(r->match.cap[0], &lim, db, &err);
    json_error_t jerr;
    json_t *body = rc == DG_OK ? json_loadb(r->body.p ? r->body.p : "", r->body.len,
                                            JSON_REJECT_DUPLICATES, &jerr)
                               : NULL;
    if (rc == DG_OK && !body) {
        rc = dg_error_set(&err, DG_BAD_JSON, "request body is not valid JSON: %s", jerr.text);
    }
    const char *key;
    json_t *v;
    if (rc == DG_OK && !json_is_object(body)) {
        rc = dg_error_set(&err, DG_BAD_REQUEST, "the body must be a JSON object");
    }
    json_object_foreach(rc == DG_OK ? body : NULL, key, v)
    {
        bool known = strcmp(key, "table") == 0 || strcmp(key, "file") == 0 ||
                     strcmp(key, "mode") == 0 || strcmp(key, "timeout_ms") == 0;
        if (!known ||
            (strcmp(key, "timeout_ms") == 0 ? !json_is_integer(v) || json_integer_value(v) <= 0
                                            : !json_is_string(v))) {
            rc = dg_error_set(&err, DG_BAD_REQUEST,
                              "bad field \"%.40s\" (table, file, mode: strings; timeout_ms: a "
                              "positive integer)",
                              key);
            break;
        }
    }
    const char *table = json_string_value(json_object_get(body, "table"));
    const char *file = json_string_value(json_object_get(body, "file"));
    const char *mode = json_string_value(json_object_get(body, "mode"));
    if (rc == DG_OK && (!table || !file)) {
        rc = dg_error_set(&err, DG_BAD_REQUEST, "\"table\" and \"file\" are required");
    }
    if (rc == DG_OK && mode && strcmp(mode, "create") != 0 && strcmp(mode, "replace") != 0 &&
        strcmp(mode, "append") != 0) {
        rc = dg_error_set(&err, DG_BAD_REQUEST, "mode must be create, replace or append");
    }
    if (rc != DG_OK) {
        json_decref(body);
        dg_http_respond_error(r, rc, err.msg, qid, 0);
        return;
    }
    json_t *jt = json_object_get(body, "timeout_ms");
    int64_t timeout_ms = jt ? admin_timeout((int64_t)json_integer_value(jt)) : 0;
    json_t *req = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I}", "id", qid, "kind", "import",
                            "db", db, "table", table, "file", file, "mode", mode ? mode : "create",
                            "format", "json", "timeout_ms", (json_int_t)timeout_ms);
    if (!req) {
        dg_http_respond_error(r, DG_NOMEM, NULL, qid, 0);
    } else {
        dg_log(DG_LOG_INFO, "admin", qid, "import principal=%s db=%s table=%s file=%s",
               r->principal, db, table, file);
        if (dg_server__concurrency_enter(s, r, &who)) {
            dg_server__run_on_slot(s, r, qid, req, timeout_ms, DG_FMT_JSON);
        }
    }
    json_decref(req);
    json_decref(body);
}
