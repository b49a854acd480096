/* The result cache in front of the engines (DESIGN §6, docs/cache.md): the lookup before a slot
 * is leased, the response headers (ETag, Cache-Status per RFC 9211, Cache-Control), the tee
 * that fills an entry while the relay streams, single-flight waiting, the admin routes and the
 * metrics.
 *
 * Keys are built from the final engine request object (every route that reaches an engine gets
 * one the same way), the database's data version and the caller's scope (role and database
 * list), so a change of data, of role or of key scope can never be answered with bytes computed
 * for another. Only complete 200 responses the engine declares deterministic are stored.
 *
 * Threads: a dg_server_cache_req_t is confined to its request's connection thread; the cache
 * itself is shared (src/cache). */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "core/dgtime.h"
#include "core/log.h"
#include "server/server_int.h"

struct dg_server_cache_req {
    dg_cache_t *cache;
    dg_cache_flight_t *flight; /* the leader's flight; NULL when not filling */
    bool is_storable;          /* HEAD: status 200 and deterministic */
    bool is_complete;          /* END said deterministic: the body is whole */
    dg_cache_head_t head;
    int64_t ttl_ms;
    int64_t lookup_us;
    const char *log_cache; /* the query log's cache column: "miss", "bypass" or NULL */
    char status[112];      /* Cache-Status value */
    char etag[DG_CACHE_ETAG_LEN];
    char control[96]; /* Cache-Control value */
    char timing[48];  /* Server-Timing part */
};

/* Kinds whose responses may be cached: read-only SQL, named queries and the catalog. Anything
 * else (admin SQL, jobs, the query log, stats) is never looked up, whatever the engine says. */
static bool kind_cacheable(const char *kind)
{
    return kind &&
           (strcmp(kind, "sql") == 0 || strcmp(kind, "named") == 0 || strcmp(kind, "catalog") == 0);
}

/* The caller's scope: role and the databases its key may use ("*" = all). Two callers with the
 * same scope may see the same bytes; a narrower key never gets bytes computed for a wider one. */
static void scope_of(const dg_auth_result_t *who, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s|", dg_auth_role_name(who->role));
    size_t len = n > 0 && (size_t)n < cap ? (size_t)n : 0;
    if (who->n_dbs == 0) {
        snprintf(out + len, cap - len, "*");
        return;
    }
    for (size_t i = 0; i < who->n_dbs && len < cap; i++) {
        n = snprintf(out + len, cap - len, "%s%s", i ? "," : "", who->dbs[i]);
        len += n > 0 ? (size_t)n : 0;
    }
}

/* True when the client hung up (not merely half-closed after pipelining). */
static bool client_gone(void *ctx)
{
    int fd = *(int *)ctx;
    if (fd < 0) {
        return false;
    }
    struct pollfd p = {fd, POLLRDHUP, 0};
    if (poll(&p, 1, 0) <= 0) {
        return false;
    }
    if (p.revents & (POLLHUP | POLLERR)) {
        return true;
    }
    char c;
    return (p.revents & POLLRDHUP) && recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

/* If-None-Match (RFC 9110 §13.1.2): "*", or a comma-separated list of entity tags one of which
 * equals ours by the weak comparison (a W/ prefix is ignored, the quoted opaque tags must be
 * identical). A malformed member never matches. */
static bool etag_matches(const char *inm, const char *etag)
{
    if (!inm) {
        return false;
    }
    size_t etag_len = strlen(etag);
    const char *p = inm;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == ',') {
            p++;
        }
        if (*p == '\0') {
            return false;
        }
        const char *start = p;
        while (*p && *p != ',') {
            p++;
        }
        const char *end = p;
        while (end > start && (end[-1] == ' ' || end[-1] == '\t')) {
            end--;
        }
        size_t len = (size_t)(end - start);
        if (len == 1 && start[0] == '*') {
            return true;
        }
        if (len > 2 && start[0] == 'W' && start[1] == '/') {
            start += 2;
            len -= 2;
        }
        if (len == etag_len && memcmp(start, etag, len) == 0) {
            return true;
        }
    }
}

/* When shared caches may keep a response (a public named query), the key's scope must be
 * theirs too: the answer varies with the credential. A second Vary field adds to the first. */
static const char *vary_credential(const dg_server_cache_req_t *cx)
{
    return strncmp(cx->control, "public", 6) == 0 ? "Authorization, X-API-Key" : NULL;
}

/* Records a request the cache answered itself (a hit, a 304, a follower that timed out or lost
 * its client) in the query log: the relay, which records the others, never saw it. The text is
 * the SQL, or a named query's name, as dg_server__qrec_begin takes it; never "params". */
static void log_answered(dg_server_t *s, dg_http_req_t *r, const json_t *req, int status,
                         dg_rc_t code, uint64_t rows, uint64_t bytes, const char *cache)
{
    const char *kind = json_string_value(json_object_get(req, "kind"));
    const json_t *text = kind && strcmp(kind, "named") == 0 ? json_object_get(req, "name")
                                                            : json_object_get(req, "sql");
    dg_server__qlog_entry_t q = {
        .kind = kind,
        .db = json_string_value(json_object_get(req, "db")),
        .query = json_string_value(text),
        .query_len = json_string_length(text),
        .status = status,
        .code = code,
        .rows = rows,
        .bytes = bytes,
        .cache = cache,
        .params = kind && strcmp(kind, "named") == 0 ? json_object_get(req, "params") : NULL,
    };
    dg_server__qlog(s, r, &q);
}

/* Answers r from entry e (a hit, or a follower's share of its leader's result). */
static void respond_entry(dg_server_t *s, dg_http_req_t *r, const char *qid, const json_t *req,
                          dg_server_cache_req_t *cx, dg_cache_entry_t *e, bool varies,
                          const char *detail)
{
    const dg_cache_head_t *h = dg_cache_entry_head(e);
    const char *etag = dg_cache_entry_etag(e);
    char status[112], age[24];
    snprintf(status, sizeof status, "duckgate; hit%s%s", detail ? "; detail=" : "",
             detail ? detail : "");
    snprintf(age, sizeof age, "%lld", (long long)dg_cache_entry_age_s(s->cache, e));
    snprintf(cx->timing, sizeof cx->timing, "cache;dur=%.3f;desc=hit",
             (double)(dg_now_us() - cx->lookup_us) / 1000.0);
    /* A match answers GET and HEAD with 304; for other methods (POST) the precondition failed:
     * 412, and nothing is sent of the entry (RFC 9110 §13.1.2). */
    bool is_match = etag_matches(dg_http_req_header(r, "If-None-Match"), etag);
    bool is_304 = is_match && (r->method == DG_HTTP_GET || r->method == DG_HTTP_HEAD);
    if (is_match && !is_304) {
        dg_http_respond_error(r, DG_PRECONDITION_FAILED,
                              "If-None-Match matches the current representation", qid, 0);
        log_answered(s, r, req, dg_rc_http_status(DG_PRECONDITION_FAILED), DG_PRECONDITION_FAILED,
                     0, 0, "hit");
        return;
    }
    dg_http_header_t hd[9] = {
        {"X-Query-Id", qid},
        {"ETag", etag},
        {"Cache-Status", status},
        {"Cache-Control", cx->control},
        {"Age", age},
        {"Server-Timing", cx->timing},
        {"Vary", varies ? "Accept-Encoding" : NULL},
        {"Vary", vary_credential(cx)},
        {"Content-Encoding", !is_304 && h->content_encoding[0] ? h->content_encoding : NULL},
    };
    size_t len = 0;
    const char *body = dg_cache_entry_body(e, &len);
    if (is_304) {
        dg_http_respond(r, 304, NULL, "", 0, hd, 9);
    } else {
        /* dg_http_respond copies the bytes, so the reference ends with this call. */
        dg_http_respond(r, h->status, h->content_type, body, len, hd, 9);
    }
    if (s->metrics) {
        dg_series_add(s->metrics->rows_out, is_304 ? 0 : h->rows);
        const char *enc = h->content_encoding[0] ? h->content_encoding : "identity";
        dg_series_add(dg_metric_series(s->metrics->bytes_out, &enc), is_304 ? 0 : len);
    }
    dg_log(DG_LOG_DEBUG, "cache", qid, "%s bytes=%zu", is_304 ? "not-modified" : "hit", len);
    log_answered(s, r, req, is_304 ? 304 : h->status, DG_OK, is_304 ? 0 : h->rows, is_304 ? 0 : len,
                 "hit");
}

/* The bypass a caller asked for: 1 = bypass, 0 = none, -1 = refused (r answered with
 * *out_rc). */
static int bypass_of(dg_http_req_t *r, const char *qid, const dg_auth_result_t *who,
                     dg_rc_t *out_rc)
{
    const char *arg = dg_http_args_get(&r->target.args, "cache", NULL);
    if (arg && strcmp(arg, "bypass") != 0) {
        *out_rc = DG_BAD_REQUEST;
        dg_http_respond_error(r, DG_BAD_REQUEST, "cache must be \"bypass\" when given", qid, 0);
        return -1;
    }
    if (arg && who->role != DG_ROLE_ADMIN) {
        *out_rc = DG_FORBIDDEN;
        dg_http_respond_error(r, DG_FORBIDDEN, "only an admin may bypass the cache", qid, 0);
        return -1;
    }
    if (arg) {
        return 1;
    }
    /* A browser's reload sends no-cache too: only an admin's request is a bypass. */
    const char *cc = dg_http_req_header(r, "Cache-Control");
    return who->role == DG_ROLE_ADMIN && cc && (strstr(cc, "no-cache") || strstr(cc, "no-store"))
               ? 1
               : 0;
}

/* A miss goes on to the relay with its state on the heap; a hit never needs it there. Returns
 * false (the caller runs the request). Out of memory: run uncached, without cache headers. */
static bool keep(const dg_server_cache_req_t *cx, dg_server_cache_req_t **out)
{
    *out = malloc(sizeof **out);
    if (*out) {
        **out = *cx;
    } else if (cx->flight) {
        dg_cache_flight_finish(cx->cache, cx->flight, NULL, false, 0);
    }
    return false;
}

bool dg_server__cache_begin(dg_server_t *s, dg_http_req_t *r, const char *qid, const json_t *req,
                            const dg_server_cache_opts_t *co, dg_server_cache_req_t **out)
{
    *out = NULL;
    dg_server_cache_req_t state;
    dg_server_cache_req_t *cx = &state;
    memset(cx, 0, sizeof *cx);
    cx->lookup_us = dg_now_us();
    cx->cache = s->cache;
    snprintf(cx->control, sizeof cx->control, "%s",
             co && co->cache_control ? co->cache_control : "private");
    cx->ttl_ms = co && co->ttl_s > 0 ? co->ttl_s * 1000 : 0;
    const char *kind = json_string_value(json_object_get(req, "kind"));
    const char *db = json_string_value(json_object_get(req, "db"));
    int idx = db ? dg_server__db_index(s, db, strlen(db)) : -1;
    if (!s->cache || (co && co->is_off) || !kind_cacheable(kind) || idx < 0) {
        snprintf(cx->status, sizeof cx->status, "duckgate; fwd=bypass; detail=%s",
                 !s->cache ? "off" : "uncacheable");
        return keep(cx, out);
    }
    dg_auth_result_t who;
    dg_server__caller_of(s, r, &who);
    dg_rc_t refused = DG_OK;
    int bypass = bypass_of(r, qid, &who, &refused);
    if (bypass < 0) {
        dg_str_t dbv = dg_str_c(db);
        dg_server__qlog_refused(s, r, kind, &dbv, refused);
        return true;
    }
    /* From here the request is cacheable: its log row says what the cache did. */
    cx->log_cache = "bypass";
    if (bypass) {
        snprintf(cx->status, sizeof cx->status, "duckgate; fwd=bypass");
        return keep(cx, out);
    }
    char scope[DG_AUTH_MAX_DBS * 66 + 16];
    scope_of(&who, scope, sizeof scope);
    dg_cache_key_t key;
    if (dg_cache_key_from_req(req, idx, dg_server__db_version(s, idx), scope, &key) != DG_OK) {
        snprintf(cx->status, sizeof cx->status, "duckgate; fwd=bypass; detail=error");
        return keep(cx, out);
    }
    dg_cache_key_etag(&key, cx->etag);
    cx->log_cache = "miss";
    bool varies = json_object_get(req, "encoding") != NULL;
    json_int_t timeout_ms = json_integer_value(json_object_get(req, "timeout_ms"));
    int64_t deadline = dg_now_ms() + (timeout_ms > 0 ? timeout_ms : s->cfg->timeout_ms);
    int fd = dg_http_req_client_fd(r);
    bool is_answered = false;
    snprintf(cx->status, sizeof cx->status, "duckgate; fwd=uri-miss");
    /* A leader that fails because its own client left hands the work to a follower; bounded,
     * so a run of such failures ends in running uncached. */
    for (int attempt = 0; attempt < 4; attempt++) {
        dg_cache_verdict_t v;
        dg_cache_entry_t *e = NULL;
        dg_cache_flight_t *f = NULL;
        if (dg_cache_lookup(s->cache, &key, &v, &e, &f) != DG_OK) {
            break;
        }
        if (v == DG_CACHE_HIT) {
            respond_entry(s, r, qid, req, cx, e, varies, NULL);
            dg_cache_entry_unref(e);
            is_answered = true;
            break;
        }
        if (v == DG_CACHE_LEAD) {
            cx->flight = f;
            break;
        }
        dg_cache_wait_t w = dg_cache_flight_wait(s->cache, f, deadline, 50, client_gone, &fd, &e);
        if (w == DG_CACHE_WAIT_ENTRY) {
            respond_entry(s, r, qid, req, cx, e, varies, "coalesced");
            dg_cache_entry_unref(e);
            is_answered = true;
            break;
        }
        if (w == DG_CACHE_WAIT_GONE) {
            dg_http_drop(r);
            log_answered(s, r, req, 499, DG_CLIENT_GONE, 0, 0, "miss");
            is_answered = true;
            break;
        }
        if (w == DG_CACHE_WAIT_TIMEOUT) {
            dg_http_respond_error(r, DG_TIMEOUT, NULL, qid, 0);
            log_answered(s, r, req, dg_rc_http_status(DG_TIMEOUT), DG_TIMEOUT, 0, 0, "miss");
            is_answered = true;
            break;
        }
        if (w == DG_CACHE_WAIT_OWN) {
            snprintf(cx->status, sizeof cx->status, "duckgate; fwd=uri-miss; detail=uncacheable");
            break;
        }
        /* DG_CACHE_WAIT_RETRY: look up again (maybe lead). */
    }
    dg_cache_key_free(&key);
    if (is_answered) {
        return true;
    }
    snprintf(cx->timing, sizeof cx->timing, "cache;dur=%.3f;desc=miss",
             (double)(dg_now_us() - cx->lookup_us) / 1000.0);
    return keep(cx, out);
}

const char *dg_server__cache_log_status(const dg_server_cache_req_t *cx)
{
    return cx ? cx->log_cache : NULL;
}

void dg_server__cache_head(dg_server_cache_req_t *cx, int status, const json_t *head,
                           const char *content_type, const char *coding, dg_http_header_t *h,
                           char *timing, size_t cap)
{
    size_t len = strlen(timing);
    if (cx->timing[0] && len < cap) {
        snprintf(timing + len, cap - len, "%s%s", len ? ", " : "", cx->timing);
    }
    h[0] = (dg_http_header_t){"Cache-Status", cx->status};
    h[1] = (dg_http_header_t){"Cache-Control", cx->control};
    h[2] = (dg_http_header_t){"ETag", NULL};
    h[3] = (dg_http_header_t){"Vary", vary_credential(cx)};
    if (!cx->flight) {
        return;
    }
    cx->is_storable = status == 200 && json_is_true(json_object_get(head, "deterministic"));
    if (!cx->is_storable) {
        /* Followers need not wait for a body that will not be stored: they run their own. */
        dg_cache_flight_finish(cx->cache, cx->flight, NULL, false, 0);
        cx->flight = NULL;
        snprintf(cx->status, sizeof cx->status, "duckgate; fwd=uri-miss; detail=%s",
                 status == 200 ? "volatile" : "status");
        return;
    }
    cx->head.status = status;
    snprintf(cx->head.content_type, sizeof cx->head.content_type, "%s", content_type);
    snprintf(cx->head.content_encoding, sizeof cx->head.content_encoding, "%s",
             coding ? coding : "");
    /* No "stored" here: the head goes out before the body, which may yet outgrow
     * cache_max_entry_bytes (or fail) and not be stored. The ETag says the response is
     * deterministic; the next request's hit, or the admin counters, say it was stored. */
    snprintf(cx->status, sizeof cx->status, "duckgate; fwd=uri-miss");
    h[2].value = cx->etag;
}

void dg_server__cache_tee(dg_server_cache_req_t *cx, const char *p, size_t len)
{
    if (cx && cx->flight && cx->is_storable && !dg_cache_flight_append(cx->flight, p, len)) {
        /* Over cache_max_entry_bytes: the rest streams through; followers run their own. */
        dg_cache_flight_finish(cx->cache, cx->flight, NULL, false, 0);
        cx->flight = NULL;
    }
}

void dg_server__cache_end_frame(dg_server_cache_req_t *cx, const dg_buf_t *end)
{
    if (!cx || !end->p) {
        return;
    }
    cx->is_complete = memmem(end->p, end->len, "\"deterministic\":true", 20) != NULL;
    const char *rows = memmem(end->p, end->len, "\"rows\":", 7);
    cx->head.rows = rows ? strtoull(rows + 7, NULL, 10) : 0;
}

void dg_server__cache_done(dg_server_t *s, dg_server_cache_req_t *cx, bool is_client_gone)
{
    (void)s;
    if (!cx) {
        return;
    }
    if (cx->flight) {
        bool ok = cx->is_storable && cx->is_complete;
        dg_cache_flight_finish(cx->cache, cx->flight, ok ? &cx->head : NULL, is_client_gone,
                               cx->ttl_ms);
    }
    free(cx);
}

/* ---- lifecycle and metrics ---------------------------------------------------------------- */

dg_rc_t dg_server__cache_setup(dg_server_t *s)
{
    const dg_config_t *cfg = s->cfg;
    if (strcmp(cfg->cache, "on") != 0 || s->n_dbs == 0) {
        DG_LOGI("server", "cache=off");
        return DG_OK;
    }
    uint64_t max_bytes = cfg->cache_max_bytes ? cfg->cache_max_bytes : s->res.budget_bytes / 10;
    if (max_bytes == 0) {
        max_bytes = (uint64_t)64 << 20;
    }
    dg_cache_opts_t o = {.n_dbs = s->n_dbs,
                         .max_bytes = max_bytes,
                         .max_entries_per_db = (size_t)cfg->cache_max_entries_per_db,
                         .max_entry_bytes = cfg->cache_max_entry_bytes,
                         .ttl_ms = (int64_t)cfg->cache_ttl_s * 1000};
    dg_rc_t rc = dg_cache_new(&o, &s->cache);
    if (rc != DG_OK) {
        DG_LOGE("server", "cache: %s", dg_rc_message(rc));
        return rc;
    }
    DG_LOGI("server",
            "cache=on max_bytes=%llu max_entries_per_db=%d max_entry_bytes=%llu ttl_s=%llu",
            (unsigned long long)max_bytes, cfg->cache_max_entries_per_db,
            (unsigned long long)cfg->cache_max_entry_bytes, (unsigned long long)cfg->cache_ttl_s);
    return DG_OK;
}

void dg_server__cache_collect(dg_server_t *s)
{
    dg_metrics_gw_t *g = s->metrics;
    if (!s->cache || !g) {
        return;
    }
    dg_cache_stats_t st;
    dg_cache_stats(s->cache, -1, &st);
    dg_series_set(g->cache_hits, (double)st.hits);
    dg_series_set(g->cache_misses, (double)st.misses);
    dg_series_set(g->cache_evictions, (double)(st.evictions + st.expired));
    dg_series_set(g->cache_bytes, (double)st.bytes);
    dg_series_set(g->cache_entries, (double)st.entries);
}

/* ---- admin routes --------------------------------------------------------------------------- */

static dg_rc_t stats_json(dg_buf_t *b, const char *name, const dg_cache_stats_t *st)
{
    uint64_t lookups = st->hits + st->misses;
    return dg_buf_printf(b,
                         "{\"db\":\"%s\",\"entries\":%llu,\"bytes\":%llu,\"hits\":%llu,"
                         "\"misses\":%llu,\"hit_ratio\":%.4f,\"evictions\":%llu,\"expired\":%llu,"
                         "\"stored\":%llu,\"too_big\":%llu}",
                         name, (unsigned long long)st->entries, (unsigned long long)st->bytes,
                         (unsigned long long)st->hits, (unsigned long long)st->misses,
                         lookups ? (double)st->hits / (double)lookups : 0.0,
                         (unsigned long long)st->evictions, (unsigned long long)st->expired,
                         (unsigned long long)st->stored, (unsigned long long)st->too_big);
}

void dg_server__h_cache(dg_http_req_t *r, void *ctx)
{
    dg_server_t *s = ctx;
    const dg_str_t *db = r->match.n_caps > 0 ? &r->match.cap[0] : NULL;
    /* Rate limited like every other admin route; it still answers while the server drains. */
    if (!dg_server__authorize(s, r, DG_ROLE_ADMIN, db, NULL) || !dg_server__rate_admit(s, r)) {
        return;
    }
    int idx = -1;
    if (db) {
        idx = dg_server__db_index(s, db->p, db->len);
        if (idx < 0) {
            dg_http_respond_error(r, DG_UNKNOWN_DB, NULL, NULL, 0);
            return;
        }
    }
    dg_buf_t b;
    dg_buf_init(&b, 0);
    dg_rc_t rc;
    if (r->method == DG_HTTP_DELETE) {
        size_t n = s->cache ? dg_cache_clear(s->cache, idx) : 0;
        DG_LOGI("cache", "cleared db=%s entries=%zu", idx >= 0 ? s->dbs[idx].name : "*", n);
        rc = dg_buf_printf(&b, "{\"cleared\":%zu}", n);
    } else {
        dg_cache_stats_t all;
        memset(&all, 0, sizeof all);
        if (s->cache) {
            dg_cache_stats(s->cache, -1, &all);
        }
        dg_cache_t *c = s->cache;
        rc =
            dg_buf_printf(&b,
                          "{\"enabled\":%s,\"max_bytes\":%llu,\"max_entry_bytes\":%llu,"
                          "\"max_entries_per_db\":%llu,\"ttl_s\":%lld,\"total\":",
                          c ? "true" : "false", (unsigned long long)(c ? dg_cache_max_bytes(c) : 0),
                          (unsigned long long)(c ? dg_cache_max_entry_bytes(c) : 0),
                          (unsigned long long)(c ? dg_cache_max_entries_per_db(c) : 0),
                          (long long)(c ? dg_cache_ttl_ms(c) / 1000 : 0));
        if (rc == DG_OK) {
            rc = stats_json(&b, "*", &all);
        }
        if (rc == DG_OK) {
            rc = dg_buf_puts(&b, ",\"databases\":[");
        }
        bool is_first = true;
        for (size_t i = 0; rc == DG_OK && i < s->n_dbs; i++) {
            if (idx >= 0 && (size_t)idx != i) {
                continue;
            }
            dg_cache_stats_t st;
            memset(&st, 0, sizeof st);
            if (s->cache) {
                dg_cache_stats(s->cache, (int)i, &st);
            }
            rc = dg_buf_puts(&b, is_first ? "" : ",");
            /* Names are [A-Za-z0-9_-] (dg_dbname_valid): nothing to escape. */
            if (rc == DG_OK) {
                rc = stats_json(&b, s->dbs[i].name, &st);
            }
            is_first = false;
        }
        if (rc == DG_OK) {
            rc = dg_buf_puts(&b, "]}");
        }
    }
    dg_server__respond_buf(r, rc, &b);
}
