/* The rate-limit gate of the /api routes (docs/security.md "Rate limits"): who a request is
 * charged to, and the 429 answer. /health, /ready and /metrics never pass through it.
 *
 * The key is the principal when the auth gate identified one ("key:<id>"), else the client
 * address: the TCP peer, or what the forwarded header says when the peer is a trusted proxy
 * (dg_limit_client_addr). Threads: any connection thread; the limiter is thread-safe and the
 * rest of the context is read-only. */
#include <stdio.h>
#include <string.h>

#include "core/buf.h"
#include "core/log.h"
#include "server/server_int.h"

/* Forwarded header bytes considered (the right-most elements are kept). */
#define FWD_CAP 2048

dg_rc_t dg_server__limit_setup(dg_server_t *s)
{
    const dg_config_t *cfg = s->cfg;
    dg_error_t err;
    dg_error_clear(&err);
    dg_rc_t rc = dg_limit_proxies_parse(cfg->trusted_proxies, strlen(cfg->trusted_proxies),
                                        &s->proxies, &err);
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

/* The bucket key of r's caller into key[cap]. */
static void client_key(dg_server_t *s, dg_http_req_t *r, char *key, size_t cap)
{
    if (strncmp(r->principal, "key:", 4) == 0) {
        snprintf(key, cap, "%s", r->principal);
        return;
    }
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

bool dg_server__rate_admit(dg_server_t *s, dg_http_req_t *r)
{
    if (!s->limit) {
        return true;
    }
    char key[96];
    client_key(s, r, key, sizeof key);
    dg_limit_result_t res;
    if (dg_limit_check(s->limit, key, &res)) {
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
    snprintf(policy, sizeof policy, "%d;w=1, %d;w=60", s->cfg->rate_burst_per_s,
             s->cfg->rate_per_min);
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
