/* Internals shared by the server's files: the one server context every handler receives.
 * The context is built before the HTTP daemon starts and is read-only afterwards, except
 * `is_draining` (atomic). */
#ifndef DG_SERVER_INT_H
#define DG_SERVER_INT_H

#include <stdatomic.h>

#include <jansson.h>

#include "auth/auth.h"
#include "config/config.h"
#include "engine/engine.h"
#include "http/http.h"
#include "limit/limit.h"
#include "metrics/metrics_gw.h"

typedef struct dg_server {
    const dg_config_t *cfg;
    dg_resources_t res;
    dg_engines_t *engines;
    dg_dbfile_t *dbs; /* servable databases, scanned once at start */
    size_t n_dbs;
    const char **db_names;      /* names of dbs, the metrics' db label values */
    dg_metrics_gw_t *metrics;   /* never NULL once serving */
    dg_auth_t *auth;            /* roles and API keys; never NULL once serving */
    dg_limit_t *limit;          /* per-client token buckets; NULL when rate_limit = off */
    dg_limit_proxies_t proxies; /* trusted_proxies, parsed once at start */
    atomic_bool is_draining;
    /* Data version per database (index as dbs): bumped by every change a response could have
     * seen (admin writes, finished write jobs, snapshot swaps). The cache keys on it. */
    struct dg_db_version {
        _Atomic uint64_t v;
    } * db_versions;
} dg_server_t;

/* Index of database db[0..len) in s->dbs, or -1. */
int dg_server__db_index(const dg_server_t *s, const char *db, size_t len);
/* The current data version of database idx (>= 1). Any thread. */
uint64_t dg_server__db_version(dg_server_t *s, int idx);
/* Marks database idx as changed: every later dg_server__db_version differs. Any thread. */
void dg_server__db_changed(dg_server_t *s, int idx);

void dg_server__h_health(dg_http_req_t *r, void *ctx);
void dg_server__h_ready(dg_http_req_t *r, void *ctx);
void dg_server__h_databases(dg_http_req_t *r, void *ctx);
void dg_server__h_database(dg_http_req_t *r, void *ctx);
void dg_server__h_query(dg_http_req_t *r, void *ctx);
void dg_server__h_metrics(dg_http_req_t *r, void *ctx);
/* The access gate (h_misc.c): identifies the caller (sets r->principal) and checks that it
 * may use a route needing role `need` on database db (NULL: the route names none); *out_who
 * (may be NULL) gets the caller's identity and scope. On refusal
 * answers 401 (with WWW-Authenticate: Bearer) or 403 and returns false. */
bool dg_server__authorize(dg_server_t *s, dg_http_req_t *r, dg_role_t need, const dg_str_t *db,
                          dg_auth_result_t *out_who);
/* The rate-limit gate (h_limit.c), after the access gate: charges the request to its principal
 * (r->principal when it is "key:<id>", else the client address as trusted proxies report it).
 * When refused, answers 429 RATE_LIMITED with Retry-After and RateLimit-* headers, counts
 * duckgate_rate_limited_total and returns false. Always true when rate_limit = off. */
bool dg_server__rate_admit(dg_server_t *s, dg_http_req_t *r);
/* Parses trusted_proxies and creates the limiter (when rate_limit = on); logs and returns
 * DG_CONFIG/DG_NOMEM on failure. s->cfg must be set. */
dg_rc_t dg_server__limit_setup(dg_server_t *s);
/* Runs a request object on an engine slot (h_query.c): leases a slot (503 + Retry-After when
 * the queue is full), adds queue_ms, sends req and relays the engine's frames as the response
 * (status and headers at HEAD, body streamed with backpressure). format decides how a failure
 * after HEAD ends the body. Answers r in every case. */
void dg_server__run_on_slot(dg_server_t *s, dg_http_req_t *r, const char *qid, json_t *req,
                            int64_t timeout_ms, dg_format_t format);
/* Counts an interrupted query: TIMEOUT (deadline), CLIENT_GONE (disconnect), CANCELLED. */
void dg_server__note_interrupt(dg_server_t *s, dg_rc_t rc);

#endif
