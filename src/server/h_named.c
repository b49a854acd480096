/* Named queries over HTTP (docs/named-queries.md):
 *   GET|POST /api/q/{db}/{name}  run a named query with typed, validated parameters
 *   GET      /api/q/{db}         list the database's named queries and their parameters
 *
 * Flow of a run: look the query up (the registry re-reads changed files at most once a second)
 * -> the access gate at the query's role -> rate limit -> output format -> caller values to
 * typed values (422 INVALID_PARAMS listing every bad parameter) -> REQ kind "named" on an engine
 * slot. The values travel as a typed JSON object next to the declared types, and the engine
 * binds them to a cached prepared statement: they are never spliced into SQL.
 *
 * Threads: connection threads; the registry is shared and thread-safe. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "http/http_query.h"
#include "named/named.h"
#include "server/server_int.h"

/* The access gate at a query's role. `@roles public` means anyone: a caller without credentials
 * passes even when public_role = none, while a caller presenting credentials goes through the
 * usual gate (bad credentials are refused, a key keeps its database scope). */
static bool authorize_role(dg_server_t *s, dg_http_req_t *r, dg_named_role_t role,
                           const dg_str_t *db, dg_auth_result_t *who)
{
    if (role != DG_NAMED_ROLE_PUBLIC) {
        return dg_server__authorize(s, r, (dg_role_t)role, db, who);
    }
    if (!dg_http_req_header(r, "Authorization") && !dg_http_req_header(r, "X-API-Key")) {
        dg_auth_identify(s->auth, NULL, NULL, (int64_t)time(NULL), who);
        dg_auth_scope_narrow(who, dg_server__role_policy(s, who)->databases);
        bool in_scope = !who->has_no_db;
        if (in_scope && who->n_dbs > 0) {
            in_scope = false;
            for (size_t i = 0; i < who->n_dbs; i++) {
                in_scope = in_scope || dg_str_eq_c(*db, who->dbs[i]);
            }
        }
        if (in_scope) {
            memcpy(r->principal, who->principal, sizeof r->principal);
            dg_server__note_caller(s, r, who);
            return true;
        }
    }
    /* Credentials, or outside the public scope: the gate answers (any role passes viewer). */
    return dg_server__authorize(s, r, DG_ROLE_VIEWER, db, who);
}

/* 422 INVALID_PARAMS: {"error":{"code","message","query_id","params":[{"name","reason"}]}}. */
static void respond_invalid(dg_http_req_t *r, const char *qid, const dg_named_errors_t *errs)
{
    char msg[256];
    size_t off =
        (size_t)snprintf(msg, sizeof msg, "%zu invalid parameter%s:", errs->n + errs->n_more,
                         errs->n + errs->n_more == 1 ? "" : "s");
    for (size_t i = 0; i < errs->n && off < sizeof msg; i++) {
        off += (size_t)snprintf(msg + off, sizeof msg - off, "%s %s", i ? "," : "",
                                errs->items[i].name);
    }
    json_t *list = json_array();
    for (size_t i = 0; list && i < errs->n; i++) {
        json_array_append_new(list, json_pack("{s:s, s:s}", "name", errs->items[i].name, "reason",
                                              errs->items[i].reason));
    }
    json_t *e = json_pack("{s:s, s:s, s:s, s:o}", "code", dg_rc_name(DG_INVALID_PARAMS), "message",
                          msg, "query_id", qid, "params", list ? list : json_array());
    if (e && errs->n_more > 0) {
        json_object_set_new(e, "more", json_integer((json_int_t)errs->n_more));
    }
    json_t *body = e ? json_pack("{s:o}", "error", e) : NULL;
    dg_http_header_t h[1] = {{"X-Query-Id", qid}};
    dg_server__respond_json(r, dg_rc_http_status(DG_INVALID_PARAMS), body, JSON_COMPACT, h, 1);
}

/* The body of a POST: {"params": {...}, "format": "..."} (both optional). */
static dg_rc_t parse_body(dg_http_req_t *r, json_t **out_params, const char **out_format,
                          json_t **out_root, dg_error_t *err)
{
    *out_params = NULL;
    *out_format = NULL;
    *out_root = NULL;
    if (r->body.len == 0) {
        return DG_OK;
    }
    json_error_t jerr;
    json_t *root = json_loadb(r->body.p, r->body.len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        return dg_error_set(err, DG_BAD_JSON, "request body is not valid JSON: %s", jerr.text);
    }
    *out_root = root;
    if (!json_is_object(root)) {
        return dg_error_set(err, DG_BAD_REQUEST,
                            "the body must be a JSON object {\"params\": {...}}");
    }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v)
    {
        if (strcmp(key, "params") == 0) {
            if (!json_is_object(v) && !json_is_null(v)) {
                return dg_error_set(err, DG_BAD_REQUEST, "params must be a JSON object");
            }
            *out_params = json_is_object(v) ? v : NULL;
        } else if (strcmp(key, "format") == 0) {
            if (!json_is_string(v)) {
                return dg_error_set(err, DG_BAD_REQUEST, "format must be a string");
            }
            *out_format = json_string_value(v);
        } else {
            return dg_error_set(err, DG_BAD_REQUEST, "unknown field \"%.40s\" (params, format)",
                                key);
        }
    }
    return DG_OK;
}

/* The typed values of the request (from the query string or the JSON body). Answers r and
 * returns NULL on failure. */
static json_t *request_values(dg_http_req_t *r, const char *qid, const dg_named_query_t *q,
                              json_t *body_params)
{
    dg_named_errors_t errs;
    json_t *vals = NULL;
    dg_rc_t rc;
    if (r->method == DG_HTTP_POST) {
        rc = dg_named_values_from_json(q, body_params, &vals, &errs);
    } else {
        dg_named_kv_t kv[DG_HTTP_MAX_ARGS];
        size_t n = r->target.args.n;
        for (size_t i = 0; i < n; i++) {
            kv[i] = (dg_named_kv_t){r->target.args.a[i].key, r->target.args.a[i].value};
        }
        /* format picks the output, cache=bypass is read by the cache (admins only). */
        static const char *const ignore[] = {"format", "cache", NULL};
        rc = dg_named_values_from_args(q, kv, n, ignore, &vals, &errs);
    }
    if (rc == DG_INVALID_PARAMS) {
        respond_invalid(r, qid, &errs);
        return NULL;
    }
    if (rc != DG_OK) {
        dg_http_respond_error(r, rc, NULL, qid, 0);
        return NULL;
    }
    return vals;
}

/* The smaller positive of a and b (0 = no cap). */
static int64_t min_cap(int64_t a, int64_t b)
{
    if (a <= 0) {
        return b;
    }
    return b > 0 && b < a ? b : a;
}

static void run_named(dg_server_t *s, dg_http_req_t *r, const char *qid, const char *db,
                      const dg_named_query_t *q)
{
    dg_auth_result_t who;
    if (!authorize_role(s, r, q->role, &r->match.cap[0], &who) || !dg_server__rate_admit(s, r)) {
        return;
    }
    if (atomic_load(&s->is_draining)) {
        dg_http_respond_error(r, DG_DRAINING, NULL, qid, 0);
        return;
    }
    dg_error_t err;
    dg_error_clear(&err);
    json_t *root = NULL, *body_params = NULL, *vals = NULL, *req = NULL;
    const char *format_arg = NULL;
    dg_rc_t rc = DG_OK;
    if (r->method == DG_HTTP_POST) {
        rc = parse_body(r, &body_params, &format_arg, &root, &err);
    }
    size_t n_format = 0;
    const char *arg = dg_http_args_get(&r->target.args, "format", &n_format);
    if (rc == DG_OK && n_format > 1) {
        rc = dg_error_set(&err, DG_BAD_REQUEST, "format given more than once");
    }
    dg_format_t format = DG_FMT_JSON;
    if (rc == DG_OK) {
        rc = dg_http_negotiate(format_arg ? format_arg : arg, dg_http_req_header(r, "Accept"),
                               &format, &err);
    }
    dg_codec_id_t coding = DG_CODEC_IDENTITY;
    int level = 0;
    if (rc == DG_OK) {
        rc = dg_server__response_coding(s, r, &coding, &level, &err);
    }
    if (rc != DG_OK) {
        dg_http_respond_error(r, rc, err.msg, qid, 0);
        goto out;
    }
    vals = request_values(r, qid, q, body_params);
    if (!vals) {
        goto out;
    }
    dg_caller_limits_t cl;
    dg_server__caller_limits(s, &who, &cl);
    int64_t timeout_ms = min_cap(q->timeout_ms, cl.timeout_ms);
    int64_t max_rows = min_cap((int64_t)q->max_rows, (int64_t)cl.max_rows);
    req = json_pack("{s:s, s:s, s:i, s:s, s:s, s:s, s:s%, s:O, s:o, s:s, s:I, s:I, s:I, s:I}", "id",
                    qid, "encoding", dg_codec_name(coding), "level", level, "kind", "named", "db",
                    db, "name", q->name, "sql", q->sql, q->sql_len, "params", vals, "types",
                    dg_named_types_json(q), "format", dg_http_format_name(format), "timeout_ms",
                    (json_int_t)timeout_ms, "max_rows", (json_int_t)max_rows, "max_bytes",
                    (json_int_t)cl.max_bytes, "max_export_bytes",
                    (json_int_t)s->cfg->max_export_bytes);
    if (!req) {
        dg_http_respond_error(r, DG_NOMEM, NULL, qid, 0);
        goto out;
    }
    /* Parameter values are never logged at INFO or above (STYLE.md). */
    dg_log(DG_LOG_DEBUG, "named", qid, "db=%s name=%s version=%llu format=%s timeout_ms=%lld", db,
           q->name, (unsigned long long)q->version, dg_http_format_name(format),
           (long long)timeout_ms);
    /* The query's cache options: @cache_ttl 0 never caches, a positive TTL bounds the entry,
     * @cache public lets shared caches keep it too (revalidating with the ETag without a TTL). */
    char cc[64];
    if (q->cache_ttl_s > 0) {
        snprintf(cc, sizeof cc, "public, max-age=%lld", (long long)q->cache_ttl_s);
    } else {
        snprintf(cc, sizeof cc, "public, no-cache");
    }
    dg_server_cache_opts_t co = {.is_off = q->cache_ttl_s == 0,
                                 .ttl_s = q->cache_ttl_s > 0 ? q->cache_ttl_s : 0,
                                 .cache_control = q->cache_public ? cc : NULL};
    if (dg_server__concurrency_enter(s, r, &who)) {
        dg_server__run_on_slot_opts(s, r, qid, req, timeout_ms, format, &co);
    }
out:
    json_decref(req);
    json_decref(vals);
    json_decref(root);
}

static void not_found(dg_server_t *s, dg_http_req_t *r, const char *qid, dg_rc_t rc,
                      const char *msg);

/* The database of a /api/q route, checked; answers 404 and returns false when unknown. */
static bool check_db(dg_server_t *s, dg_http_req_t *r, const char *qid, char db[65])
{
    dg_http_query_limits_t lim = {s->cfg->max_sql_bytes, s->cfg->timeout_ms, s->dbs, s->n_dbs};
    dg_error_t err;
    dg_error_clear(&err);
    dg_rc_t rc = dg_http_query_check_db(r->match.cap[0], &lim, db, &err);
    if (rc != DG_OK) {
        not_found(s, r, qid, rc, err.msg);
        return false;
    }
    return true;
}

/* A 404 goes through the public gate and the rate limit first: bad credentials are still
 * refused, and probing for names costs tokens like any other request. */
static void not_found(dg_server_t *s, dg_http_req_t *r, const char *qid, dg_rc_t rc,
                      const char *msg)
{
    dg_auth_result_t who;
    if (authorize_role(s, r, DG_NAMED_ROLE_PUBLIC, &r->match.cap[0], &who) &&
        dg_server__rate_admit(s, r)) {
        dg_http_respond_error(r, rc, msg, qid, 0);
    }
}

void dg_server__h_named(dg_http_req_t *r, void *ctx)
{
    dg_server_t *s = ctx;
    const char *qid = r->id;
    char db[65];
    if (!check_db(s, r, qid, db)) {
        return;
    }
    dg_str_t name = r->match.cap[1];
    char nm[65] = "";
    if (dg_named_name_valid(name.p, name.len)) {
        memcpy(nm, name.p, name.len);
        nm[name.len] = '\0';
    }
    dg_named_refresh(s->named, false);
    char broken[512];
    const dg_named_query_t *q =
        nm[0] ? dg_named_get(s->named, db, nm, broken, sizeof broken) : NULL;
    if (!q) {
        char msg[700];
        if (!nm[0]) {
            snprintf(msg, sizeof msg, "unknown named query");
        } else if (broken[0]) {
            snprintf(msg, sizeof msg, "named query %s/%s cannot be served: %s", db, nm, broken);
        } else {
            snprintf(msg, sizeof msg, "unknown named query %s/%s (GET /api/q/%s lists them)", db,
                     nm, db);
        }
        not_found(s, r, qid, DG_NOT_FOUND, msg);
        return;
    }
    run_named(s, r, qid, db, q);
    dg_named_release(q);
}

/* ---- the listing ---------------------------------------------------------------------------- */

static void list_one(void *ctx, const char *db, const char *name, const dg_named_query_t *q,
                     const char *error)
{
    (void)db;
    json_t *list = ctx;
    json_t *o = q ? dg_named_query_json(q) : json_pack("{s:s}", "name", name);
    if (!o) {
        return;
    }
    json_object_set_new(o, "status", json_string(error ? "broken" : "ok"));
    json_object_set_new(o, "served", json_boolean(q != NULL));
    if (error) {
        /* A served query keeps its last good version; error describes the file on disk. */
        json_object_set_new(o, "error", json_string(error));
    }
    json_object_set_new(o, "path", json_sprintf("/api/q/%s/%s", db, name));
    json_array_append_new(list, o);
}

void dg_server__h_named_list(dg_http_req_t *r, void *ctx)
{
    dg_server_t *s = ctx;
    const char *qid = r->id;
    char db[65];
    if (!check_db(s, r, qid, db)) {
        return;
    }
    dg_auth_result_t who;
    if (!authorize_role(s, r, DG_NAMED_ROLE_PUBLIC, &r->match.cap[0], &who) ||
        !dg_server__rate_admit(s, r)) {
        return;
    }
    dg_named_refresh(s->named, false);
    json_t *list = json_array();
    if (list) {
        dg_named_foreach(s->named, db, list_one, list);
    }
    json_t *body = list ? json_pack("{s:s, s:o}", "db", db, "queries", list) : NULL;
    dg_server__respond_json(r, 200, body, JSON_COMPACT, NULL, 0);
}
