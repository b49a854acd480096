/* Internals shared by the server's files: the one server context every handler receives.
 * The context is built before the HTTP daemon starts and is read-only afterwards, except
 * `is_draining` (atomic). */
#ifndef DG_SERVER_INT_H
#define DG_SERVER_INT_H

#include <stdatomic.h>

#include <jansson.h>

#include "auth/auth.h"
#include "auth/auth_jwt.h"
#include "cache/cache.h"
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
    dg_limit_conc_t *conc;      /* queries running per principal (h_limit.c); never NULL once
                                   serving */
    atomic_bool is_draining;
    struct dg_server__qlog *qlog; /* the query log (h_qlog.c); never NULL once serving */
    /* Data version per database (index as dbs): bumped by every change a response could have
     * seen (admin writes, finished write jobs, snapshot swaps). The cache keys on it. */
    struct dg_db_version {
        _Atomic uint64_t v;
    } * db_versions;
    /* File identity per database (swap.c): its changes are part of the data version. */
    struct dg_server__swap *swap;
    struct dg_jobs *jobs; /* admin jobs (jobs.h); never NULL once serving */
    dg_cache_t *cache;    /* the result cache (h_cache.c); NULL when cache = off */
    /* Named queries (src/named, h_named.c); never NULL once serving. */
    struct dg_named *named;
    /* The main listener's route table, described by GET /api/openapi.json. */
    const dg_http_route_t *routes;
    size_t n_routes;
} dg_server_t;

/* Index of database db[0..len) in s->dbs, or -1. */
int dg_server__db_index(const dg_server_t *s, const char *db, size_t len);
/* The current data version of database idx (>= 1): the bump counter plus the number of times
 * the file at its path was seen replaced (swap.h; one stat per call). Any thread. */
uint64_t dg_server__db_version(dg_server_t *s, int idx);
/* Marks database idx as changed: every later dg_server__db_version differs. Any thread. */
void dg_server__db_changed(dg_server_t *s, int idx);

void dg_server__h_health(dg_http_req_t *r, void *ctx);
void dg_server__h_ready(dg_http_req_t *r, void *ctx);
void dg_server__h_databases(dg_http_req_t *r, void *ctx);
void dg_server__h_database(dg_http_req_t *r, void *ctx);
void dg_server__h_query(dg_http_req_t *r, void *ctx);
void dg_server__h_metrics(dg_http_req_t *r, void *ctx);
/* POST /api/admin/reload/{db} (h_reload.c): swaps <db>.duckdb.next in atomically. */
void dg_server__h_reload(dg_http_req_t *r, void *ctx);
/* Named queries (h_named.c, docs/named-queries.md): GET|POST /api/q/{db}/{name} runs one,
 * GET /api/q/{db} lists them. */
void dg_server__h_named(dg_http_req_t *r, void *ctx);
void dg_server__h_named_list(dg_http_req_t *r, void *ctx);
/* GET /api/openapi.json (h_openapi.c): every route of s->routes and every named query. */
void dg_server__h_openapi(dg_http_req_t *r, void *ctx);
/* The access gate (h_misc.c): identifies the caller (sets r->principal) and checks that it
 * may use a route needing role `need` on database db (NULL: the route names none); *out_who
 * (may be NULL) gets the caller's identity and scope. On refusal
 * answers 401 (with WWW-Authenticate: Bearer) or 403 and returns false. */
bool dg_server__authorize(dg_server_t *s, dg_http_req_t *r, dg_role_t need, const dg_str_t *db,
                          dg_auth_result_t *out_who);
/* The rate-limit gate (h_limit.c), after the access gate: charges the request to its principal
 * (r->principal when it is "key:<id>" or "jwt:<sub>", else the client address as trusted
 * proxies report it) at the rates of the caller's role (dg_server__caller_limits).
 * When refused, answers 429 RATE_LIMITED with Retry-After and RateLimit-* headers, counts
 * duckgate_rate_limited_total and returns false. Always true when rate_limit = off. */
bool dg_server__rate_admit(dg_server_t *s, dg_http_req_t *r);
/* The client address of r as trusted proxies report it (r's peer, or the forwarded address when
 * the peer is a trusted proxy), as a key "ip:<addr>" into key[cap]; "ip:unknown" when the peer
 * cannot be read. */
void dg_server__client_addr_key(dg_server_t *s, dg_http_req_t *r, char *key, size_t cap);
/* Parses trusted_proxies, checks the per-role settings and creates the limiter (when
 * rate_limit = on) and the concurrency table; logs and returns DG_CONFIG/DG_NOMEM on failure.
 * s->cfg must be set. */
dg_rc_t dg_server__limit_setup(dg_server_t *s);

/* ---- per-role policy (h_limit.c, docs/auth.md "Per-role limits") -------------------------- */

/* What one caller may spend on one query: the role's settings (public for callers without
 * credentials), each falling back to the global one when the role's is 0. */
typedef struct dg_caller_limits {
    int64_t timeout_ms;        /* deadline default and ceiling (a client may ask for less) */
    uint64_t max_rows;         /* row cap per result; 0 = none */
    uint64_t max_bytes;        /* single JSON document cap */
    uint32_t max_concurrent;   /* queries running at once per principal; 0 = no limit */
    uint32_t rate_burst_per_s; /* token buckets of dg_server__rate_admit */
    uint32_t rate_per_min;
} dg_caller_limits_t;

/* The policy row of caller `who`: public (no credential used) or its role. */
const dg_config_role_t *dg_server__role_policy(const dg_server_t *s, const dg_auth_result_t *who);
/* Remembers who made r (dg_server__authorize does this) so that dg_server__rate_admit charges
 * it with its role's rates. */
void dg_server__note_caller(dg_server_t *s, const dg_http_req_t *r, const dg_auth_result_t *who);
/* Who made r: the identity the gate resolved for it on this thread (no second credential
 * check, which for a JWT means a second signature verification), else identified afresh. */
void dg_server__caller_of(dg_server_t *s, dg_http_req_t *r, dg_auth_result_t *out);
/* The limits of caller `who` (from dg_server__authorize). Every handler that runs a query
 * uses these for its deadline ceiling and its row and byte caps. Any thread. */
void dg_server__caller_limits(const dg_server_t *s, const dg_auth_result_t *who,
                              dg_caller_limits_t *out);
/* Takes a running-query place for r's principal, held until r is complete (the response was
 * sent or the connection dropped: dg_server__concurrency_done, called by the server for every
 * request). Call it right before running the query. When the principal already runs its
 * max_concurrent queries, answers 429 TOO_MANY_CONCURRENT (with Retry-After: 1) and returns
 * false. Always true when the caller has no limit. */
bool dg_server__concurrency_enter(dg_server_t *s, dg_http_req_t *r, const dg_auth_result_t *who);
/* Gives back r's place, if it holds one. Called once per finished request. */
void dg_server__concurrency_done(dg_server_t *s, const dg_http_req_t *r);
/* The JWT settings of cfg as dg_auth options (strings borrowed from cfg). */
void dg_server__jwt_opts(const dg_config_t *cfg, dg_jwt_opts_t *out);
/* Runs a request object on an engine slot (h_query.c): leases a slot (503 + Retry-After when
 * the queue is full), adds queue_ms, sends req and relays the engine's frames as the response
 * (status and headers at HEAD, body streamed with backpressure). format decides how a failure
 * after HEAD ends the body. Answers r in every case. The slot is of the engine that serves
 * req's "db" (dg_server__engine_for_db); timeout_ms <= 0 means no deadline; an "admin" request
 * on a read-write database that reports changes bumps that database's data version. */
void dg_server__run_on_slot(dg_server_t *s, dg_http_req_t *r, const char *qid, json_t *req,
                            int64_t timeout_ms, dg_format_t format);

/* ---- the result cache (h_cache.c, docs/cache.md) ---- */

/* Per-route cache options. A zeroed struct (or NULL) is the default: cached, private. */
typedef struct dg_server_cache_opts {
    bool is_off;               /* this route never uses the cache */
    int64_t ttl_s;             /* > 0: entry lifetime for this route (a named query's TTL) */
    const char *cache_control; /* Cache-Control of its responses; NULL = "private" (a public
                                  named query may pass "public, max-age=60") */
} dg_server_cache_opts_t;

/* dg_server__run_on_slot with the cache in front: a hit (or a 304) is answered from memory
 * without a slot; identical concurrent misses run once; a complete, successful, deterministic
 * response (the engine says so) is stored. co may be NULL. Answers r in every case. */
void dg_server__run_on_slot_opts(dg_server_t *s, dg_http_req_t *r, const char *qid, json_t *req,
                                 int64_t timeout_ms, dg_format_t format,
                                 const dg_server_cache_opts_t *co);

/* The database {db} (capture 0) of an admin route: admits the caller as admin and resolves the
 * name. Returns its index, or -1 when the answer (401/403/404) was sent already. */
int dg_server__admin_db(dg_server_t *s, dg_http_req_t *r);
/* dg_server__admin_db for routes that work on a database's file (reload, staging): a database
 * served read-write is answered 400 "<db> is served read-write: <why>" and gives -1. */
int dg_server__admin_file_db(dg_server_t *s, dg_http_req_t *r, const char *why);

/* One request's cache state, from before the slot is leased until the response is freed.
 * Confined to the request's connection thread. */
typedef struct dg_server_cache_req dg_server_cache_req_t;
/* Looks req up: answers r itself (hit, 304, a follower's shared result, a refused bypass) and
 * returns true, or returns false with *out (NULL when the cache is not involved at all) for
 * the relay: it then runs req on a slot, as the leader when (*out) holds a flight. */
bool dg_server__cache_begin(dg_server_t *s, dg_http_req_t *r, const char *qid, const json_t *req,
                            const dg_server_cache_opts_t *co, dg_server_cache_req_t **out);
/* The query log's cache column for a request the relay runs (the ones the cache answers are
 * logged by h_cache.c): "miss" (looked up, not found), "bypass" (a cacheable request that
 * skipped the lookup) or NULL (the cache is off or the request not cacheable; cx NULL). */
const char *dg_server__cache_log_status(const dg_server_cache_req_t *cx);
/* At HEAD (head: the HEAD payload object): decides whether the response will be stored, fills
 * the cache's response headers into h (room for 4; unused ones have a NULL value) and appends
 * the cache part to the Server-Timing value in timing (cap bytes). */
void dg_server__cache_head(dg_server_cache_req_t *cx, int status, const json_t *head,
                           const char *content_type, const char *coding, dg_http_header_t *h,
                           char *timing, size_t cap);
/* Relayed body bytes: copied into the entry being built (abandoned past the entry cap). */
void dg_server__cache_tee(dg_server_cache_req_t *cx, const char *p, size_t len);
/* The END payload arrived: the response is complete; its "deterministic" decides storing. */
void dg_server__cache_end_frame(dg_server_cache_req_t *cx, const dg_buf_t *end);
/* The response is over (relay freed, or the request failed before a relay existed): publishes
 * a complete storable response, else releases followers (is_client_gone: one may lead again).
 * Frees cx; NULL is allowed. */
void dg_server__cache_done(dg_server_t *s, dg_server_cache_req_t *cx, bool is_client_gone);
/* Builds s->cache from the cache_* settings (after the metrics). Logs; DG_NOMEM, DG_CONFIG. */
dg_rc_t dg_server__cache_setup(dg_server_t *s);
/* Sets the duckgate_cache_* metrics from the cache's counters (at scrape time). */
void dg_server__cache_collect(dg_server_t *s);
/* GET|DELETE /api/admin/cache and GET|DELETE /api/admin/cache/{db} (admin only). */
void dg_server__h_cache(dg_http_req_t *r, void *ctx);
/* The admin routes (h_admin.c, docs/admin.md): POST /api/admin/query/{db}; POST (submit) and
 * GET (list) /api/admin/jobs; GET (state) and DELETE (cancel) /api/admin/jobs/{id}. */
void dg_server__h_admin_query(dg_http_req_t *r, void *ctx);
void dg_server__h_admin_jobs(dg_http_req_t *r, void *ctx);
void dg_server__h_admin_job(dg_http_req_t *r, void *ctx);
/* POST|DELETE /api/admin/stage/{db} (h_stage.c): makes or discards the staging copy
 * <db>.duckdb.next that jobs with "target":"next" write and reload swaps in. */
void dg_server__h_stage(dg_http_req_t *r, void *ctx);
/* Whether jobs may target the staging copy of database idx (-1: unknown): DG_OK when it
 * exists; DG_UNKNOWN_DB, DG_BAD_REQUEST (a read-write database), DG_NO_STAGING (none: the
 * message says to POST /api/admin/stage/{db} first), DG_IO. */
dg_rc_t dg_server__staging_check(dg_server_t *s, int idx, dg_error_t *err);
/* POST /api/admin/import/{db} (h_admin.c): a file of an import directory into a table. */
void dg_server__h_admin_import(dg_http_req_t *r, void *ctx);
/* The engine that must serve requests for database db (h_admin.c): DG_ENGINES_RW_OWNER for a
 * database in read_write_databases (only that engine opens it), else -1 (any engine). Every
 * handler that leases a slot for a database passes this to dg_engines_acquire_on. */
int dg_server__engine_for_db(dg_server_t *s, const char *db);
/* Counts an interrupted query: TIMEOUT (deadline), CLIENT_GONE (disconnect), CANCELLED. */
void dg_server__note_interrupt(dg_server_t *s, dg_rc_t rc);
/* The gates of a route that starts work (h_misc.c): dg_server__authorize (needing role `need`
 * on db, which may be NULL; *out_who may be NULL), dg_server__rate_admit, then 503 DRAINING
 * while the server stops. Returns false when one of them has answered r. */
bool dg_server__admit(dg_server_t *s, dg_http_req_t *r, dg_role_t need, const dg_str_t *db,
                      dg_auth_result_t *out_who);
/* The response coding r's Accept-Encoding asks for, and the configured level of that codec
 * (0 for identity). DG_NOT_ACCEPTABLE (message in err) when no offered coding is acceptable. */
dg_rc_t dg_server__response_coding(const dg_server_t *s, dg_http_req_t *r,
                                   dg_codec_id_t *out_coding, int *out_level, dg_error_t *err);
/* Answers r with the JSON value o (consumed; NULL answers 500 NOMEM, so a failed json_pack can be
 * passed straight in) serialized with jansson's json_flags, and the headers h[0..n_h). */
void dg_server__respond_json(dg_http_req_t *r, int status, json_t *o, size_t json_flags,
                             const dg_http_header_t *h, size_t n_h);
/* Answers r with the JSON document in b (200) when rc is DG_OK, else with rc's error; frees b
 * (it is empty and reusable afterwards). */
void dg_server__respond_buf(dg_http_req_t *r, dg_rc_t rc, dg_buf_t *b);

/* ---- the query log (h_qlog.c, docs/observability.md "Query log") ---- */

/* Creates the query log (ring, flusher, metrics) from s->cfg; s->metrics and s->engines must
 * exist and the HTTP front must not have started (metrics are registered here). Logs and
 * returns DG_CONFIG (state_dir unusable), DG_NOMEM, DG_INTERNAL. */
dg_rc_t dg_server__qlog_setup(dg_server_t *s);
/* Ships what is left (engines still running) and frees the query log. */
void dg_server__qlog_stop(dg_server_t *s);
/* Scrape time: duckgate_query_log_dropped_total and duckgate_query_log_pending. */
void dg_server__qlog_collect(dg_server_t *s);
/* True for the kinds the log records: sql, named, admin, job, catalog. */
bool dg_server__qlog_kind_logged(const char *kind);

/* One finished query, for handlers that answer without dg_server__run_on_slot (cache hits,
 * jobs, front-side refusals). Strings are borrowed for the call. query: the SQL text (cut to
 * query_log_sql_bytes) or a named query's name; never parameter values. */
typedef struct dg_server__qlog_entry {
    const char *kind;  /* "sql", "named", "admin", "job", "catalog" (others are not logged) */
    const char *db;    /* NULL when none */
    const char *query; /* NULL when none; query_len 0 = strlen */
    size_t query_len;
    int status;        /* HTTP status answered */
    dg_rc_t code;      /* DG_OK or the failure */
    uint64_t rows, bytes;
    double queue_ms;
    const char *cache; /* cache status ("hit", "miss", ...), NULL when not cached */
    /* A named query's bound values (only their hash is logged), or NULL. */
    const json_t *params;
    /* Only used when there is no request (r == NULL: a job that outlived its client): */
    const char *request_id; /* e.g. the job id */
    const char *principal;  /* r->principal of the submitting request */
    const char *role;       /* dg_auth_role_name of the submitter */
    double duration_ms;     /* submission to the end */
} dg_server__qlog_entry_t;
/* Records e for request r (principal, role and duration come from r; r may be NULL, see the
 * fields above). Any thread. */
void dg_server__qlog(dg_server_t *s, dg_http_req_t *r, const dg_server__qlog_entry_t *e);
/* Records a query the front refused before it ran (bad request, unknown database, SQL too
 * large, ...): status and code from rc, db only when it names a served database, no text. */
void dg_server__qlog_refused(dg_server_t *s, dg_http_req_t *r, const char *kind,
                             const dg_str_t *db, dg_rc_t rc);

/* A query log row in progress for a request run on an engine slot: begun before the slot is
 * leased, filled in by the relay, recorded when the response is freed. Confined to the
 * request's thread. */
typedef struct dg_server__qrec {
    int status;        /* HTTP status answered; 499 until one is */
    dg_rc_t code;      /* DG_OK or the failure (also after headers were sent) */
    double queue_ms;   /* waiting for a slot */
    const char *cache; /* cache status, NULL when not cached (static strings only) */
    /* execute_ms/encode_ms as the engine reported them (HEAD, then END), when has_engine_ms. */
    bool has_engine_ms;
    double execute_ms, encode_ms;
    /* set by dg_server__qrec_begin */
    int64_t start_ms;
    char request_id[65];
    char kind[16];
    char db[65];
    bool has_db;
    char *query; /* owned, already cut to query_log_sql_bytes */
    size_t query_len;
    char principal[96];
    const char *role;
    /* The client's address ("" when unknown); hex SHA-256 of a named query's canonical
     * values ("" when none). */
    char client_addr[64];
    char params_hash[65];
} dg_server__qrec_t;
/* A record for req (its "kind", "db", and "sql" or a named query's "name") made by r, or NULL
 * when the log does not record that kind or memory is short. */
dg_server__qrec_t *dg_server__qrec_begin(dg_server_t *s, dg_http_req_t *r, const json_t *req);
/* Records q with rows and bytes and frees it. NULL is allowed. */
void dg_server__qrec_end(dg_server_t *s, dg_server__qrec_t *q, uint64_t rows, uint64_t bytes);
/* GET /api/admin/queries (admin only): the newest query log rows. */
void dg_server__h_admin_queries(dg_http_req_t *r, void *ctx);
/* The name admins use for the query log on the admin SQL route. */
#define DG_SERVER_QLOG_DB "_query_log"
/* POST /api/admin/query/_query_log (admin only, routed before /api/admin/query/{db}): any
 * read-only SQL over the query log table, run by engine 0 through the read-only sandbox. */
void dg_server__h_admin_qlog_sql(dg_http_req_t *r, void *ctx);

#endif
