/* Handlers answered by the front alone: liveness, readiness and the list of databases; and what
 * every handler shares: the access gate, the admission gates and the JSON answers.
 * Threads: any connection thread; they only read the server context. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/buf.h"
#include "core/log.h"
#include "server/server_int.h"

void dg_server__h_health(dg_http_req_t *r, void *ctx)
{
    (void)ctx;
    static const char body[] = "{\"status\":\"ok\"}";
    dg_http_respond(r, 200, "application/json", body, sizeof body - 1, NULL, 0);
}

void dg_server__h_ready(dg_http_req_t *r, void *ctx)
{
    dg_server_t *s = ctx;
    if (atomic_load(&s->is_draining)) {
        dg_http_respond_error(r, DG_DRAINING, NULL, NULL, 0);
        return;
    }
    if (!dg_engines_ready(s->engines)) {
        dg_http_respond_error(r, DG_NOT_READY, "the query engines are not ready", NULL, 0);
        return;
    }
    static const char body[] = "{\"status\":\"ready\"}";
    dg_http_respond(r, 200, "application/json", body, sizeof body - 1, NULL, 0);
}

/* GET /metrics: the Prometheus text exposition. Collect callbacks read the pool and /proc. */
void dg_server__h_metrics(dg_http_req_t *r, void *ctx)
{
    dg_server_t *s = ctx;
    dg_buf_t b;
    dg_buf_init(&b, 16u << 20);
    dg_rc_t rc = dg_metrics_expose(s->metrics->reg, &b);
    if (rc != DG_OK) {
        dg_log(DG_LOG_WARN, "metrics", r->id, "exposition failed: %s", dg_rc_name(rc));
        dg_http_respond_error(r, rc, NULL, NULL, 0);
    } else {
        dg_http_respond(r, 200, DG_METRICS_CONTENT_TYPE, b.p ? b.p : "", b.len, NULL, 0);
    }
    dg_buf_free(&b);
}

bool dg_server__authorize(dg_server_t *s, dg_http_req_t *r, dg_role_t need, const dg_str_t *db,
                          dg_auth_result_t *out_who)
{
    dg_auth_result_t who;
    dg_auth_identify(s->auth, dg_http_req_header(r, "Authorization"),
                     dg_http_req_header(r, "X-API-Key"), (int64_t)time(NULL), &who);
    /* The role's databases narrow whatever the credential allows (docs/auth.md). */
    dg_auth_scope_narrow(&who, dg_server__role_policy(s, &who)->databases);
    memcpy(r->principal, who.principal, sizeof r->principal);
    dg_server__note_caller(s, r, &who);
    if (out_who) {
        *out_who = who;
    }
    dg_rc_t rc = dg_auth_gate(&who, need, db ? db->p : NULL, db ? db->len : 0);
    /* The role's capabilities may take a route away (docs/auth.md "Capabilities"). */
    const dg_http_path_t *path = &r->target.path;
    unsigned cap = rc == DG_OK && path->n >= 2 && strcmp(path->seg[0], "api") == 0
                       ? dg_auth_route_cap(path->seg[1], need)
                       : 0;
    const char *policy = who.is_public ? "public" : dg_auth_role_name(who.role);
    char cap_msg[160] = "";
    if (cap && !(dg_auth_caps_of(who.role, dg_server__role_policy(s, &who)->capabilities) & cap)) {
        rc = DG_FORBIDDEN;
        snprintf(cap_msg, sizeof cap_msg,
                 "the %s role may not use this route: it lacks the %s capability "
                 "(%s_capabilities)",
                 policy, dg_auth_cap_name(cap), policy);
    }
    if (rc == DG_OK) {
        return true;
    }
    /* Never the credential itself: only who it resolved to. */
    dg_log(DG_LOG_INFO, "auth", r->id, "refused status=%d principal=%s role=%s need=%s",
           rc == DG_UNAUTHORIZED ? 401 : 403, who.principal, dg_auth_role_name(who.role),
           dg_auth_role_name(need));
    const char *msg =
        cap_msg[0]           ? cap_msg
        : rc == DG_FORBIDDEN ? (who.role >= need ? "this caller may not use that database"
                                                 : "this role may not use this route")
        : who.is_bad         ? (who.reason ? who.reason : "invalid, expired or revoked credentials")
                             : "authentication required (Authorization: Bearer KEY)";
    dg_buf_t b;
    dg_buf_init(&b, 4096);
    if (dg_http_error_json(&b, rc, msg, NULL) != DG_OK) {
        dg_http_respond_error(r, rc, msg, NULL, 0);
    } else {
        /* RFC 6750 §3.1: presented credentials that failed are an invalid_token. */
        const dg_http_header_t hdr[] = {
            {"WWW-Authenticate", who.is_bad ? "Bearer realm=\"duckgate\", error=\"invalid_token\""
                                            : "Bearer realm=\"duckgate\""}};
        dg_http_respond(r, rc == DG_UNAUTHORIZED ? 401 : 403, "application/json", b.p, b.len,
                        rc == DG_UNAUTHORIZED ? hdr : NULL, rc == DG_UNAUTHORIZED ? 1 : 0);
    }
    dg_buf_free(&b);
    return false;
}

bool dg_server__admit(dg_server_t *s, dg_http_req_t *r, dg_role_t need, const dg_str_t *db,
                      dg_auth_result_t *out_who)
{
    if (!dg_server__authorize(s, r, need, db, out_who) || !dg_server__rate_admit(s, r)) {
        return false;
    }
    if (atomic_load(&s->is_draining)) {
        dg_http_respond_error(r, DG_DRAINING, NULL, r->id, 0);
        return false;
    }
    return true;
}

dg_rc_t dg_server__response_coding(const dg_server_t *s, dg_http_req_t *r,
                                   dg_codec_id_t *out_coding, int *out_level, dg_error_t *err)
{
    *out_coding = DG_CODEC_IDENTITY;
    *out_level = 0;
    dg_rc_t rc =
        dg_http_negotiate_encoding(dg_http_req_header(r, "Accept-Encoding"), out_coding, err);
    if (rc != DG_OK) {
        return rc;
    }
    *out_level = *out_coding == DG_CODEC_ZSTD   ? s->cfg->zstd_level
                 : *out_coding == DG_CODEC_GZIP ? s->cfg->gzip_level
                 : *out_coding == DG_CODEC_BR   ? s->cfg->br_level
                                                : 0;
    return DG_OK;
}

void dg_server__respond_json(dg_http_req_t *r, int status, json_t *o, size_t json_flags,
                             const dg_http_header_t *h, size_t n_h)
{
    char *text = o ? json_dumps(o, json_flags) : NULL;
    json_decref(o);
    if (!text) {
        dg_http_respond_error(r, DG_NOMEM, NULL, r->id, 0);
        return;
    }
    dg_http_respond(r, status, "application/json", text, strlen(text), h, n_h);
    free(text);
}

void dg_server__respond_buf(dg_http_req_t *r, dg_rc_t rc, dg_buf_t *b)
{
    if (rc != DG_OK) {
        dg_http_respond_error(r, rc, NULL, NULL, 0);
    } else {
        dg_http_respond(r, 200, "application/json", b->p, b->len, NULL, 0);
    }
    dg_buf_free(b);
}

void dg_server__note_interrupt(dg_server_t *s, dg_rc_t rc)
{
    const char *reason = rc == DG_TIMEOUT       ? "deadline"
                         : rc == DG_CLIENT_GONE ? "disconnect"
                         : rc == DG_CANCELLED   ? "cancel"
                                                : NULL;
    if (reason && s->metrics) {
        dg_metrics_gw_interrupt(s->metrics, reason);
    }
}

void dg_server__h_databases(dg_http_req_t *r, void *ctx)
{
    dg_server_t *s = ctx;
    dg_auth_result_t who;
    if (!dg_server__authorize(s, r, DG_ROLE_VIEWER, NULL, &who)) {
        return;
    }
    if (!dg_server__rate_admit(s, r)) {
        return;
    }
    dg_buf_t b;
    dg_buf_init(&b, 0);
    dg_rc_t rc = dg_buf_puts(&b, "{\"databases\":[");
    bool is_first = true;
    for (size_t i = 0; rc == DG_OK && i < s->n_dbs; i++) {
        /* A key limited to some databases sees only those. */
        if (dg_auth_gate(&who, DG_ROLE_VIEWER, s->dbs[i].name, strlen(s->dbs[i].name)) != DG_OK) {
            continue;
        }
        /* The file as it is now: a swap may have replaced it since the start. */
        struct stat st;
        uint64_t size =
            stat(s->dbs[i].path, &st) == 0 ? (uint64_t)st.st_size : s->dbs[i].size_bytes;
        bool is_rw = dg_server__engine_for_db(s, s->dbs[i].name) >= 0;
        /* Names are [A-Za-z0-9_-] (dg_dbname_valid), so they need no escaping. */
        rc = dg_buf_printf(&b,
                           "%s{\"name\":\"%s\",\"size_bytes\":%llu,\"read_only\":%s,"
                           "\"version\":%llu}",
                           is_first ? "" : ",", s->dbs[i].name, (unsigned long long)size,
                           is_rw ? "false" : "true",
                           (unsigned long long)dg_server__db_version(s, (int)i));
        is_first = false;
    }
    if (rc == DG_OK) {
        rc = dg_buf_puts(&b, "]}");
    }
    dg_server__respond_buf(r, rc, &b);
}
