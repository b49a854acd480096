/* The rate-limit gate of the /api routes (docs/security.md "Rate limits"), the per-role
 * policy (docs/auth.md "Per-role limits") and the concurrent-query places: who a request is
 * charged to, and the 429 answers. /health, /ready and /metrics never pass through them.
 *
 * The key is the principal when the auth gate identified one ("key:<id>", "jwt:<sub>"), else
 * the client address: the TCP peer, or what the forwarded header says when the peer is a
 * trusted proxy (dg_limit_client_addr). Rates come from the caller's role (public for callers
 * without credentials), falling back to the global rate_* settings.
 *
 * Threads: any connection thread; the limiter and the concurrency table are thread-safe and the
 * rest of the context is read-only. The caller identified by dg_server__authorize is kept in a
 * thread-local for dg_server__rate_admit (see `last` below). */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"
#include "core/log.h"
#include "server/server_int.h"

/* Forwarded header bytes considered (the right-most elements are kept). */
#define FWD_CAP 2048

static const char *const role_slot_names[DG_CONFIG_N_ROLES] = {"public", "viewer", "analyst",
                                                               "admin"};

/* The caller the auth gate identified last on this connection thread, with its limits.
 * dg_server__rate_admit(s, r) predates per-role rates and every handler calls it right after
 * dg_server__authorize on the same thread, so it finds its caller here. The request object is
 * reused by the next request of a keep-alive connection, so the entry is matched on the
 * pointer, the arrival time and the request id, and cleared when the request completes; a
 * mismatch falls back to the global rates. */
static _Thread_local struct {
    const dg_http_req_t *req;
    int64_t start_ms;
    char id[65];
    dg_caller_limits_t lim;
    dg_auth_result_t who;
} last;

static bool is_last(const dg_http_req_t *r)
{
    return last.req == r && last.start_ms == r->start_ms && strcmp(last.id, r->id) == 0;
}

const dg_config_role_t *dg_server__role_policy(const dg_server_t *s, const dg_auth_result_t *who)
{
    /* Callers without credentials get the public policy whatever public_role grants them. */
    unsigned i = who->is_public ? 0u : (unsigned)who->role;
    return &s->cfg->roles[i < DG_CONFIG_N_ROLES ? i : 0];
}

void dg_server__caller_limits(const dg_server_t *s, const dg_auth_result_t *who,
                              dg_caller_limits_t *out)
{
    const dg_config_t *cfg = s->cfg;
    const dg_config_role_t *p = dg_server__role_policy(s, who);
    out->timeout_ms = p->timeout_ms > 0 ? p->timeout_ms : cfg->timeout_ms;
    out->max_rows = p->max_rows > 0 ? p->max_rows : cfg->max_rows;
    out->max_bytes = p->max_result_bytes > 0 ? p->max_result_bytes : cfg->max_result_bytes;
    out->max_concurrent =
        (uint32_t)(p->max_concurrent > 0 ? p->max_concurrent : cfg->max_concurrent);
    out->rate_burst_per_s =
        (uint32_t)(p->rate_burst_per_s > 0 ? p->rate_burst_per_s : cfg->rate_burst_per_s);
    out->rate_per_min = (uint32_t)(p->rate_per_min > 0 ? p->rate_per_min : cfg->rate_per_min);
}

void dg_server__note_caller(dg_server_t *s, const dg_http_req_t *r, const dg_auth_result_t *who)
{
    last.req = r;
    last.start_ms = r->start_ms;
    memcpy(last.id, r->id, sizeof last.id);
    dg_server__caller_limits(s, who, &last.lim);
    last.who = *who;
}

void dg_server__caller_of(dg_server_t *s, dg_http_req_t *r, dg_auth_result_t *out)
{
    if (is_last(r)) {
        *out = last.who;
        return;
    }
    dg_auth_identify(s->auth, dg_http_req_header(r, "Authorization"),
                     dg_http_req_header(r, "X-API-Key"), (int64_t)time(NULL), out);
}

/* Checks one role's databases list: names well-formed, at most DG_AUTH_MAX_DBS; a name that
 * is not served is only worth a warning (the file may come later). */
static dg_rc_t check_role_dbs(const dg_server_t *s, const char *role, const char *list)
{
    size_t n = 0;
    const char *next = list;
    dg_str_t item;
    while (dg_str_list_next(&next, &item)) {
        const char *p = item.p;
        size_t t = item.len;
        if (!dg_dbname_valid(p, t)) {
            DG_LOGE("server", "%s_databases: \"%.*s\" is not a database name", role,
                    (int)(t > 64 ? 64 : t), p);
            return DG_CONFIG;
        }
        if (++n > DG_AUTH_MAX_DBS) {
            DG_LOGE("server", "%s_databases: more than %d names", role, DG_AUTH_MAX_DBS);
            return DG_CONFIG;
        }
        if (dg_server__db_index(s, p, t) < 0) {
            DG_LOGW("server", "%s_databases: \"%.*s\" is not served", role, (int)t, p);
        }
    }
    return DG_OK;
}

dg_rc_t dg_server__limit_setup(dg_server_t *s)
{
    const dg_config_t *cfg = s->cfg;
    dg_error_t err;
    dg_error_clear(&err);
    for (int i = 0; i < DG_CONFIG_N_ROLES; i++) {
        const dg_config_role_t *p = &cfg->roles[i];
        if (check_role_dbs(s, role_slot_names[i], p->databases) != DG_OK) {
            return DG_CONFIG;
        }
        if (p->timeout_ms || p->max_rows || p->max_result_bytes || p->max_concurrent ||
            p->rate_per_min || p->rate_burst_per_s || p->databases[0]) {
            DG_LOGI("server",
                    "role=%s timeout_ms=%lld max_rows=%llu max_result_bytes=%llu "
                    "max_concurrent=%d rate_per_min=%d rate_burst_per_s=%d databases=%s",
                    role_slot_names[i], (long long)p->timeout_ms, (unsigned long long)p->max_rows,
                    (unsigned long long)p->max_result_bytes, p->max_concurrent, p->rate_per_min,
                    p->rate_burst_per_s, p->databases[0] ? p->databases : "*");
        }
    }
    /* Each connection runs one request at a time, so places held never exceed connections. */
    size_t conc_cap = (size_t)cfg->max_connections * 2 + 64;
    dg_rc_t rc = dg_limit_conc_new(conc_cap, &s->conc, &err);
    if (rc != DG_OK) {
        DG_LOGE("server", "concurrency table: %s", err.msg);
        return rc;
    }
    rc = dg_limit_proxies_parse(cfg->trusted_proxies, strlen(cfg->trusted_proxies), &s->proxies,
                                &err);
    if (rc != DG_OK) {
        DG_LOGE("server", "%s", err.msg);
        return rc;
    }
    if (strcmp(cfg->rate_limit, "on") != 0) {
        DG_LOGI("server", "rate_limit=off");
        return DG_OK;
    }
    dg_limit_opts_t lo = {.burst_per_s = (uint32_t)cfg->rate_burst_per_s,
                          .per_min = (uint32_t)cfg->rate_per_min};
    rc = dg_limit_new(&lo, &s->limit, &err);
    if (rc != DG_OK) {
        DG_LOGE("server", "rate_limit: %s", err.msg);
        return rc;
    }
    DG_LOGI("server",
            "rate_limit=on burst_per_s=%d per_min=%d trusted_proxies=%zu forwarded_header=%s",
            cfg->rate_burst_per_s, cfg->rate_per_min, s->proxies.n, cfg->forwarded_header);
    return DG_OK;
}

void dg_server__client_addr_key(dg_server_t *s, dg_http_req_t *r, char *key, size_t cap)
{
    char peer_text[64];
    dg_limit_addr_t peer, client;
    if (!dg_http_req_peer(r, peer_text, sizeof peer_text) ||
        !dg_limit_addr_parse(peer_text, strlen(peer_text), &peer)) {
        snprintf(key, cap, "ip:unknown");
        return;
    }
    char fwd[FWD_CAP];
    bool has_fwd = s->proxies.n > 0 && dg_limit_proxies_match(&s->proxies, &peer) &&
                   dg_http_req_header_all(r, s->cfg->forwarded_header, fwd, sizeof fwd);
    dg_limit_client_addr(&s->proxies, &peer, has_fwd ? fwd : NULL, has_fwd ? strlen(fwd) : 0,
                         &client);
    dg_limit_addr_key(&client, key, cap);
}

/* The bucket key of r's caller into key[cap]. */
static void client_key(dg_server_t *s, dg_http_req_t *r, char *key, size_t cap)
{
    if (strncmp(r->principal, "key:", 4) == 0 || strncmp(r->principal, "jwt:", 4) == 0) {
        snprintf(key, cap, "%s", r->principal);
        return;
    }
    dg_server__client_addr_key(s, r, key, cap);
}

bool dg_server__rate_admit(dg_server_t *s, dg_http_req_t *r)
{
    if (!s->limit) {
        return true;
    }
    char key[96];
    client_key(s, r, key, sizeof key);
    dg_caller_limits_t cl = {.rate_burst_per_s = (uint32_t)s->cfg->rate_burst_per_s,
                             .rate_per_min = (uint32_t)s->cfg->rate_per_min};
    if (is_last(r)) {
        cl = last.lim;
    }
    dg_limit_result_t res;
    if (dg_limit_check_rate(s->limit, key, cl.rate_burst_per_s, cl.rate_per_min, &res)) {
        return true;
    }
    if (s->metrics) {
        dg_series_add(s->metrics->rate_limited, 1);
    }
    dg_log(DG_LOG_DEBUG, "limit", r->id, "refused key=%s retry_after_s=%u", key, res.retry_after_s);
    char retry[16], limit[16], remaining[16], reset[16], policy[48];
    snprintf(retry, sizeof retry, "%u", res.retry_after_s);
    snprintf(limit, sizeof limit, "%u", res.limit);
    snprintf(remaining, sizeof remaining, "%u", res.remaining);
    snprintf(reset, sizeof reset, "%u", res.reset_s);
    snprintf(policy, sizeof policy, "%u;w=1, %u;w=60", cl.rate_burst_per_s, cl.rate_per_min);
    const dg_http_header_t h[] = {
        {"Retry-After", retry},
        {"RateLimit-Limit", limit},
        {"RateLimit-Remaining", remaining},
        {"RateLimit-Reset", reset},
        {"RateLimit-Policy", policy},
    };
    char msg[96];
    snprintf(msg, sizeof msg, "rate limit exceeded: retry in %u s", res.retry_after_s);
    dg_buf_t b;
    dg_buf_init(&b, 4096);
    if (dg_http_error_json(&b, DG_RATE_LIMITED, msg, NULL) != DG_OK) {
        dg_buf_reset(&b);
        dg_http_error_json(&b, DG_RATE_LIMITED, NULL, NULL);
    }
    dg_http_respond(r, dg_rc_http_status(DG_RATE_LIMITED), "application/json", b.p ? b.p : "",
                    b.len, h, sizeof h / sizeof h[0]);
    dg_buf_free(&b);
    return false;
}

/* The key of r's caller in the concurrency table: the same as for rate limits. */
bool dg_server__concurrency_enter(dg_server_t *s, dg_http_req_t *r, const dg_auth_result_t *who)
{
    dg_caller_limits_t cl;
    dg_server__caller_limits(s, who, &cl);
    if (cl.max_concurrent == 0 || !s->conc) {
        return true;
    }
    char key[96];
    client_key(s, r, key, sizeof key);
    dg_rc_t rc = dg_limit_conc_enter(s->conc, key, cl.max_concurrent, r);
    if (rc == DG_OK) {
        return true;
    }
    dg_log(DG_LOG_INFO, "limit", r->id, "refused %s principal=%s max_concurrent=%u", dg_rc_name(rc),
           r->principal, cl.max_concurrent);
    if (s->metrics && rc == DG_TOO_MANY_CONCURRENT) {
        dg_series_add(s->metrics->rate_limited, 1);
    }
    char msg[128];
    snprintf(msg, sizeof msg, "%u queries of this caller are running already; retry when one ends",
             cl.max_concurrent);
    dg_http_respond_error(r, rc, rc == DG_TOO_MANY_CONCURRENT ? msg : NULL, r->id, 1);
    return false;
}

void dg_server__concurrency_done(dg_server_t *s, const dg_http_req_t *r)
{
    if (is_last(r)) {
        last.req = NULL;
    }
    if (s->conc) {
        dg_limit_conc_leave(s->conc, r);
    }
}

void dg_server__jwt_opts(const dg_config_t *cfg, dg_jwt_opts_t *out)
{
    memset(out, 0, sizeof *out);
    out->secret_file = cfg->jwt_secret_file;
    out->pem_file = cfg->jwt_public_key_file;
    out->jwks_file = cfg->jwt_jwks_file;
    out->algorithms = cfg->jwt_algorithms;
    out->leeway_s = cfg->jwt_leeway_s;
    out->issuer = cfg->jwt_issuer;
    out->audience = cfg->jwt_audience;
    out->role_claim = cfg->jwt_role_claim;
    out->db_claim = cfg->jwt_db_claim;
}
