/* The query log in the server (docs/observability.md "Query log"): wiring the front's ring
 * (src/qlog) to engine 0, the per-request record that the relay fills in, and the admin route
 * GET /api/admin/queries.
 *
 * Shipping: the flusher thread leases a free slot of engine 0 (and waits in the ordinary
 * admission queue only when rows pile up or the server is stopping) and sends a "qlog_append"
 * request; rows leave the ring only when END confirms them. Reading: the handler first waits
 * (briefly) until the rows recorded so far are stored, then runs "qlog_query" on engine 0 through
 * the ordinary relay, so every result format and compression works and the filters are bound
 * parameters in the engine.
 *
 * What a row never holds: bound parameter values, API keys, JWTs or any header value. The
 * principal is who the credential resolved to ("key:<id>"), or the client address.
 * Threads: records are made on connection threads, shipping on the flusher thread; the context
 * is read-only after dg_server__qlog_setup except the atomic drop counter watermark. */
#include <ctype.h>
#include <jansson.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/dgtime.h"
#include "core/ioutil.h"
#include "core/log.h"
#include "http/http_query.h"
#include "qlog/qlog.h"
#include "server/server_int.h"

#define MOD "qlog"
/* A qlog_append that has not answered by then counts as an engine ignoring its deadline. */
#define APPEND_TIMEOUT_MS 10000
/* GET /api/admin/queries waits at most this long for pending rows to be stored. */
#define SYNC_TIMEOUT_MS 2000
#define DEFAULT_LIMIT 100
#define MAX_LIMIT 10000

struct dg_server__qlog {
    dg_qlog_t *q;
    char front[17];  /* this server's boot id: the store's sequence numbers are per front */
    char *path;      /* <state_dir>/query_log.duckdb, absolute */
    char *path_json; /* the same as a JSON string literal */
    dg_series_t *dropped, *pending;
    bool is_needed; /* query_log = on, or a slow-query threshold: records are worth making */
    _Atomic uint64_t dropped_seen; /* drops already added to the counter */
};

/* ---- shipping ------------------------------------------------------------------------------ */

static dg_rc_t ship(void *ctx, const char *rows, size_t rows_len, uint64_t last_seq)
{
    dg_server_t *s = ctx;
    struct dg_server__qlog *ql = s->qlog;
    dg_buf_t req;
    dg_buf_init_rc(&req, DG_FRAME_MAX_PAYLOAD, DG_BODY_TOO_LARGE);
    dg_rc_t rc =
        dg_buf_printf(&req,
                      "{\"id\":\"qlog-%s\",\"kind\":\"qlog_append\",\"path\":%s,"
                      "\"front\":\"%s\",\"retention_days\":%d,\"max_rows\":%llu,"
                      "\"max_bytes\":%llu,\"timeout_ms\":%d,\"rows\":",
                      ql->front, ql->path_json, ql->front, s->cfg->query_log_retention_days,
                      (unsigned long long)s->cfg->query_log_max_rows,
                      (unsigned long long)s->cfg->query_log_max_bytes, APPEND_TIMEOUT_MS);
    if (rc == DG_OK) {
        rc = dg_buf_append(&req, rows, rows_len);
    }
    if (rc == DG_OK) {
        rc = dg_buf_putc(&req, '}');
    }
    if (rc == DG_BODY_TOO_LARGE) {
        /* Cannot happen with the configured caps (rows <= 64 KiB of SQL, batches <= 512 KiB);
         * if it did, this batch could never be sent: let the ring drop it. */
        dg_buf_free(&req);
        return DG_BAD_REQUEST;
    }
    dg_slot_t *slot = NULL;
    int retry = 0;
    if (rc == DG_OK) {
        /* A free slot of engine 0 now, without queueing: the log should not take a place in
         * the admission queue from a client. Only when rows pile up (half the buffer) does it
         * wait in the queue like a request, so a busy engine 0 cannot starve it. */
        rc = dg_engines_try_acquire(s->engines, 0, &slot);
        dg_qlog_stats_t st;
        dg_qlog_stats(ql->q, &st);
        /* Stopping: the last batches must get through whatever else is running. */
        bool must_wait =
            st.pending >= (size_t)s->cfg->query_log_buffer / 2 || atomic_load(&s->is_draining);
        if (rc == DG_OVERLOADED && must_wait) {
            rc = dg_engines_acquire_on(s->engines, 0, -1, &slot, &retry);
        }
    }
    dg_buf_t payload;
    dg_buf_init_rc(&payload, DG_FRAME_MAX_PAYLOAD, DG_PROTOCOL);
    dg_frame_type_t type = DG_FRAME_ERROR;
    if (rc == DG_OK) {
        rc = dg_slot_send(slot, req.p, req.len, dg_now_ms() + APPEND_TIMEOUT_MS);
    }
    while (rc == DG_OK && (rc = dg_slot_read(slot, -1, &type, &payload)) == DG_OK &&
           type != DG_FRAME_END && type != DG_FRAME_ERROR) {
    }
    if (rc == DG_OK) {
        json_t *j = json_loadb(payload.p ? payload.p : "", payload.len, 0, NULL);
        json_t *acked = json_object_get(j, "acked");
        if (type != DG_FRAME_END) {
            const char *code = json_string_value(json_object_get(j, "code"));
            const char *msg = json_string_value(json_object_get(j, "message"));
            DG_LOGW(MOD, "query log append refused code=%s msg=\"%s\"", code ? code : "?",
                    msg ? msg : "");
            rc = code ? dg_rc_from_name(code) : DG_PROTOCOL;
        } else if (!json_is_integer(acked) || (uint64_t)json_integer_value(acked) < last_seq) {
            rc = DG_PROTOCOL;
        }
        json_decref(j);
    }
    dg_engines_release(s->engines, slot);
    dg_buf_free(&payload);
    dg_buf_free(&req);
    return rc;
}

dg_rc_t dg_server__qlog_setup(dg_server_t *s)
{
    const dg_config_t *cfg = s->cfg;
    struct dg_server__qlog *ql = calloc(1, sizeof *ql);
    if (!ql) {
        return DG_NOMEM;
    }
    s->qlog = ql;
    atomic_init(&ql->dropped_seen, 0);
    dg_random_id(ql->front);
    bool is_on = strcmp(cfg->query_log, "on") == 0;
    if (s->metrics) {
        dg_metric_t *d =
            dg_metrics_add(s->metrics->reg, DG_METRIC_COUNTER, "duckgate_query_log_dropped_total",
                           "Query log rows dropped before engine 0 stored them "
                           "(buffer full or out of memory).",
                           0, NULL, NULL, 0, 1);
        dg_metric_t *p =
            dg_metrics_add(s->metrics->reg, DG_METRIC_GAUGE, "duckgate_query_log_pending",
                           "Query log rows held in memory, not yet stored.", 0, NULL, NULL, 0, 1);
        if (!d || !p) {
            return DG_NOMEM;
        }
        ql->dropped = dg_metric_only(d);
        ql->pending = dg_metric_only(p);
    }
    if (is_on) {
        char *dir = realpath(cfg->state_dir, NULL);
        char *data = realpath(cfg->data_dir, NULL);
        /* The data directory's NAME.duckdb files are served: the log must not be one of them. */
        bool is_served = dir && data && strcmp(dir, data) == 0;
        dg_buf_t b;
        dg_buf_init(&b, PATH_MAX);
        dg_rc_t rc = dir && !is_served ? dg_buf_printf(&b, "%s/query_log.duckdb", dir) : DG_IO;
        free(dir);
        free(data);
        if (rc != DG_OK) {
            dg_buf_free(&b);
            DG_LOGE(MOD, "query_log: state_dir %s is %s", cfg->state_dir,
                    is_served ? "the data directory (the log would be served as a database); "
                                "choose another state_dir or set query_log = off"
                              : "not usable");
            return DG_CONFIG;
        }
        ql->path = dg_buf_take(&b, NULL);
        dg_buf_init(&b, 0);
        if (!ql->path || dg_buf_json_str(&b, ql->path, strlen(ql->path)) != DG_OK) {
            dg_buf_free(&b);
            return DG_NOMEM;
        }
        ql->path_json = dg_buf_take(&b, NULL);
    }
    ql->is_needed = is_on || cfg->slow_query_ms > 0;
    dg_qlog_opts_t o = {
        .is_on = is_on,
        .capacity = (size_t)cfg->query_log_buffer,
        .max_query_bytes = (size_t)cfg->query_log_sql_bytes,
        .slow_ms = cfg->slow_query_ms,
        .ship = ship,
        .ship_ctx = s,
    };
    dg_rc_t rc = dg_qlog_new(&o, &ql->q);
    if (rc != DG_OK) {
        return rc;
    }
    DG_LOGI(MOD, "query_log=%s buffer=%d retention_days=%d max_rows=%llu slow_query_ms=%lld",
            cfg->query_log, cfg->query_log_buffer, cfg->query_log_retention_days,
            (unsigned long long)cfg->query_log_max_rows, (long long)cfg->slow_query_ms);
    return DG_OK;
}

void dg_server__qlog_stop(dg_server_t *s)
{
    struct dg_server__qlog *ql = s->qlog;
    if (!ql) {
        return;
    }
    dg_qlog_free(ql->q);
    free(ql->path);
    free(ql->path_json);
    free(ql);
    s->qlog = NULL;
}

void dg_server__qlog_collect(dg_server_t *s)
{
    struct dg_server__qlog *ql = s->qlog;
    if (!ql || !ql->dropped) {
        return;
    }
    dg_qlog_stats_t st;
    dg_qlog_stats(ql->q, &st);
    dg_series_set(ql->pending, (double)st.pending);
    /* Concurrent scrapes: only the one that moves the watermark adds the difference. */
    uint64_t seen = atomic_load(&ql->dropped_seen);
    while (st.dropped > seen) {
        if (atomic_compare_exchange_weak(&ql->dropped_seen, &seen, st.dropped)) {
            dg_series_add(ql->dropped, st.dropped - seen);
            break;
        }
    }
}

/* ---- recording ----------------------------------------------------------------------------- */

/* Who the caller is, for the log: the principal the credential resolved to, or the client's
 * address (as trusted proxies report it), and the role. Never the credential itself. The
 * client's address also goes to client_addr[64] (without the "ip:" prefix), for every caller. */
static void caller_of(dg_server_t *s, dg_http_req_t *r, char *principal, size_t cap,
                      const char **role, char *client_addr)
{
    dg_auth_result_t who;
    dg_server__caller_of(s, r, &who);
    *role = dg_auth_role_name(who.role);
    char addr[96];
    dg_server__client_addr_key(s, r, addr, sizeof addr);
    const char *a = strncmp(addr, "ip:", 3) == 0 ? addr + 3 : addr;
    size_t n = strcmp(a, "unknown") == 0 ? 0 : strnlen(a, 63);
    memcpy(client_addr, a, n);
    client_addr[n] = '\0';
    if (strncmp(who.principal, "ip", 2) != 0 || who.principal[2] != '\0') {
        snprintf(principal, cap, "%s", who.principal);
        return;
    }
    snprintf(principal, cap, "%s", addr);
}

/* Hex SHA-256 of params' canonical JSON (compact, keys sorted) into out[65]; "" when params is
 * NULL or cannot be hashed. The values themselves are never logged. */
static void params_hash(const json_t *params, char out[65])
{
    out[0] = '\0';
    char *text =
        params ? json_dumps(params, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) : NULL;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (text && EVP_Digest(text, strlen(text), md, &n, EVP_sha256(), NULL) == 1 && n == 32) {
        static const char hex[] = "0123456789abcdef";
        for (unsigned int i = 0; i < n; i++) {
            out[2 * i] = hex[md[i] >> 4];
            out[2 * i + 1] = hex[md[i] & 15];
        }
        out[64] = '\0';
    }
    free(text);
}

bool dg_server__qlog_kind_logged(const char *kind)
{
    static const char *const kinds[] = {"sql", "named", "admin", "job", "catalog"};
    for (size_t i = 0; kind && i < sizeof kinds / sizeof kinds[0]; i++) {
        if (strcmp(kind, kinds[i]) == 0) {
            return true;
        }
    }
    return false;
}

void dg_server__qlog(dg_server_t *s, dg_http_req_t *r, const dg_server__qlog_entry_t *e)
{
    if (!s->qlog || !s->qlog->is_needed || !dg_server__qlog_kind_logged(e->kind)) {
        return;
    }
    char principal[96], client_addr[64] = "", phash[65];
    const char *role = e->role;
    if (r) {
        caller_of(s, r, principal, sizeof principal, &role, client_addr);
    } else {
        snprintf(principal, sizeof principal, "%s", e->principal ? e->principal : "");
    }
    params_hash(e->params, phash);
    dg_qlog_row_t row = {
        .request_id = r ? r->id : e->request_id,
        .kind = e->kind,
        .db = e->db,
        .query = e->query,
        .query_len = e->query ? (e->query_len ? e->query_len : strlen(e->query)) : 0,
        .principal = principal,
        .role = role,
        .status = e->status,
        .code = e->code != DG_OK ? dg_rc_name(e->code) : NULL,
        .rows = e->rows,
        .bytes = e->bytes,
        .queue_ms = e->queue_ms,
        .duration_ms = r ? (double)(dg_now_ms() - r->start_ms) : e->duration_ms,
        .cache = e->cache,
        .params_hash = phash[0] ? phash : NULL,
        .client_addr = client_addr[0] ? client_addr : NULL,
    };
    dg_qlog_record(s->qlog->q, &row);
}

void dg_server__qlog_refused(dg_server_t *s, dg_http_req_t *r, const char *kind, const dg_str_t *db,
                             dg_rc_t rc)
{
    char name[65] = "";
    if (db && dg_server__db_index(s, db->p, db->len) >= 0 && db->len < sizeof name) {
        memcpy(name, db->p, db->len);
        name[db->len] = '\0';
    }
    dg_server__qlog_entry_t e = {
        .kind = kind,
        .db = name[0] ? name : NULL,
        .status = dg_rc_http_status(rc),
        .code = rc,
    };
    dg_server__qlog(s, r, &e);
}

dg_server__qrec_t *dg_server__qrec_begin(dg_server_t *s, dg_http_req_t *r, const json_t *req)
{
    const char *kind = json_string_value(json_object_get(req, "kind"));
    if (!s->qlog || !s->qlog->is_needed || !dg_server__qlog_kind_logged(kind)) {
        return NULL;
    }
    dg_server__qrec_t *q = calloc(1, sizeof *q);
    if (!q) {
        return NULL;
    }
    q->start_ms = r->start_ms;
    snprintf(q->request_id, sizeof q->request_id, "%s", r->id);
    snprintf(q->kind, sizeof q->kind, "%s", kind);
    const char *db = json_string_value(json_object_get(req, "db"));
    if (db) {
        snprintf(q->db, sizeof q->db, "%s", db);
        q->has_db = true;
    }
    /* A named query is logged by its name, everything else by its SQL text. Never "params". */
    const json_t *text =
        strcmp(kind, "named") == 0 ? json_object_get(req, "name") : json_object_get(req, "sql");
    if (json_is_string(text)) {
        size_t len = json_string_length(text);
        size_t cap = (size_t)s->cfg->query_log_sql_bytes;
        q->query_len = len < cap ? len : cap;
        q->query = malloc(q->query_len + 1);
        if (q->query) {
            memcpy(q->query, json_string_value(text), q->query_len);
            q->query[q->query_len] = '\0';
        }
    }
    if (strcmp(kind, "named") == 0) {
        params_hash(json_object_get(req, "params"), q->params_hash);
    }
    caller_of(s, r, q->principal, sizeof q->principal, &q->role, q->client_addr);
    q->status = 499;
    return q;
}

void dg_server__qrec_end(dg_server_t *s, dg_server__qrec_t *q, uint64_t rows, uint64_t bytes)
{
    if (!q) {
        return;
    }
    dg_qlog_row_t row = {
        .request_id = q->request_id,
        .kind = q->kind,
        .db = q->has_db ? q->db : NULL,
        .query = q->query,
        .query_len = q->query ? q->query_len : 0,
        .principal = q->principal,
        .role = q->role,
        .status = q->status,
        .code = q->code != DG_OK ? dg_rc_name(q->code) : NULL,
        .rows = rows,
        .bytes = bytes,
        .queue_ms = q->queue_ms,
        .duration_ms = (double)(dg_now_ms() - q->start_ms),
        .cache = q->cache,
        .has_engine_ms = q->has_engine_ms,
        .execute_ms = q->execute_ms,
        .encode_ms = q->encode_ms,
        .params_hash = q->params_hash[0] ? q->params_hash : NULL,
        .client_addr = q->client_addr[0] ? q->client_addr : NULL,
    };
    if (s->qlog) {
        dg_qlog_record(s->qlog->q, &row);
    }
    free(q->query);
    free(q);
}

/* ---- GET /api/admin/queries ---------------------------------------------------------------- */

/* The gates of both query log routes: an admin whose key is not limited to some databases (the
 * log holds every database's queries), the rate limit, and the log being on. */
static bool log_gate(dg_server_t *s, dg_http_req_t *r)
{
    dg_auth_result_t who;
    if (!dg_server__authorize(s, r, DG_ROLE_ADMIN, NULL, &who)) {
        return false;
    }
    if (who.n_dbs > 0) {
        dg_http_respond_error(
            r, DG_FORBIDDEN, "a key limited to some databases cannot read the query log", r->id, 0);
        return false;
    }
    if (!dg_server__rate_admit(s, r)) {
        return false;
    }
    if (!s->qlog || !s->qlog->path) {
        dg_http_respond_error(r, DG_NOT_FOUND, "the query log is off (query_log = off)", r->id, 0);
        return false;
    }
    return true;
}

static bool all_digits(const char *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)v[i])) {
            return false;
        }
    }
    return n > 0;
}

/* "404", "4xx", "error" (400..599), "ok" (200..299) into [lo, hi]. */
static bool parse_status(const char *v, int *lo, int *hi)
{
    size_t n = strlen(v);
    if (strcmp(v, "error") == 0) {
        *lo = 400;
        *hi = 599;
        return true;
    }
    if (strcmp(v, "ok") == 0) {
        *lo = 200;
        *hi = 299;
        return true;
    }
    if (n == 3 && v[0] >= '1' && v[0] <= '5' && (v[1] == 'x' || v[1] == 'X') &&
        (v[2] == 'x' || v[2] == 'X')) {
        *lo = (v[0] - '0') * 100;
        *hi = *lo + 99;
        return true;
    }
    if (n == 3 && all_digits(v, 3)) {
        *lo = *hi = (int)strtol(v, NULL, 10);
        return *lo >= 100;
    }
    return false;
}

/* Unix seconds ("1763740800", optionally with a fraction) or an ISO 8601 UTC time
 * ("2026-11-21", "2026-11-21T18:57", "2026-11-21T18:57:24", "...24.5", optional "Z") into Unix
 * microseconds. */
static bool parse_since(const char *v, int64_t *out_us)
{
    size_t n = strlen(v);
    char *end = NULL;
    if (n > 0 && n <= 20 && isdigit((unsigned char)v[0]) && !strchr(v, '-')) {
        double secs = strtod(v, &end);
        if (*end != '\0' || secs < 0 || secs > 1e11) {
            return false;
        }
        *out_us = (int64_t)(secs * 1e6);
        return true;
    }
    int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0, used = 0;
    if (sscanf(v, "%4d-%2d-%2d%n", &y, &mo, &d, &used) != 3 || used != 10) {
        return false;
    }
    const char *p = v + used;
    double frac = 0;
    if (*p == 'T' || *p == ' ') {
        int k = 0;
        if (sscanf(p + 1, "%2d:%2d%n", &h, &mi, &k) != 2 || k != 5) {
            return false;
        }
        p += 1 + k;
        if (*p == ':') {
            if (!isdigit((unsigned char)p[1]) || !isdigit((unsigned char)p[2])) {
                return false;
            }
            sec = (p[1] - '0') * 10 + (p[2] - '0');
            p += 3;
            if (*p == '.') {
                const char *f = p;
                p++;
                while (isdigit((unsigned char)*p)) {
                    p++;
                }
                if (p == f + 1) {
                    return false;
                }
                frac = strtod(f, NULL);
            }
        }
    }
    if (*p == 'Z') {
        p++;
    }
    if (*p != '\0' || y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 ||
        sec > 60) {
        return false;
    }
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = sec};
    time_t t = timegm(&tm);
    if (t == (time_t)-1) {
        return false;
    }
    *out_us = (int64_t)t * 1000000 + (int64_t)(frac * 1e6);
    return true;
}

static void bad_arg(dg_http_req_t *r, const char *name, const char *expect)
{
    char msg[200];
    snprintf(msg, sizeof msg, "bad value for %s: expected %s", name, expect);
    dg_http_respond_error(r, DG_BAD_REQUEST, msg, r->id, 0);
}

void dg_server__h_admin_queries(dg_http_req_t *r, void *ctx)
{
    dg_server_t *s = ctx;
    if (!log_gate(s, r)) {
        return;
    }
    long limit = DEFAULT_LIMIT;
    int slo = 0, shi = 999;
    int64_t since_us = 0;
    const char *db = NULL, *format_arg = NULL;
    for (size_t i = 0; i < r->target.args.n; i++) {
        const char *k = r->target.args.a[i].key, *v = r->target.args.a[i].value;
        if (strcmp(k, "limit") == 0) {
            char *end = NULL;
            limit = strtol(v, &end, 10);
            if (!all_digits(v, strlen(v)) || limit < 1 || limit > MAX_LIMIT) {
                bad_arg(r, "limit", "an integer 1..10000");
                return;
            }
        } else if (strcmp(k, "status") == 0) {
            if (!parse_status(v, &slo, &shi)) {
                bad_arg(r, "status", "an HTTP status (404), a class (4xx), ok or error");
                return;
            }
        } else if (strcmp(k, "db") == 0) {
            if (!dg_dbname_valid(v, strlen(v))) {
                bad_arg(r, "db", "a database name");
                return;
            }
            db = v;
        } else if (strcmp(k, "since") == 0) {
            if (!parse_since(v, &since_us)) {
                bad_arg(r, "since", "Unix seconds or an ISO 8601 UTC time (2026-11-21T18:00:00Z)");
                return;
            }
        } else if (strcmp(k, "format") == 0) {
            format_arg = v;
        } else {
            char msg[160];
            snprintf(msg, sizeof msg,
                     "unknown parameter '%.40s' (known: limit, status, db, since, format)", k);
            dg_http_respond_error(r, DG_BAD_REQUEST, msg, r->id, 0);
            return;
        }
    }
    dg_error_t err;
    dg_error_clear(&err);
    dg_format_t format;
    dg_codec_id_t coding;
    int level = 0;
    dg_rc_t rc = dg_http_negotiate(format_arg, dg_http_req_header(r, "Accept"), &format, &err);
    if (rc == DG_OK) {
        rc = dg_server__response_coding(s, r, &coding, &level, &err);
    }
    if (rc != DG_OK) {
        dg_http_respond_error(r, rc, err.msg, r->id, 0);
        return;
    }
    /* Rows recorded so far should be in the answer: give the flusher a moment to store them. */
    if (!dg_qlog_sync(s->qlog->q, SYNC_TIMEOUT_MS)) {
        dg_log(DG_LOG_INFO, MOD, r->id, "listing without the newest rows: engine 0 is busy");
    }
    json_t *req = json_pack(
        "{s:s, s:s, s:i, s:s, s:s, s:i, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "id", r->id,
        "kind", "qlog_query", "engine", 0, "path", s->qlog->path, "encoding", dg_codec_name(coding),
        "level", level, "format", dg_http_format_name(format), "limit", (json_int_t)limit,
        "status_lo", (json_int_t)slo, "status_hi", (json_int_t)shi, "since_us",
        (json_int_t)since_us, "timeout_ms", (json_int_t)s->cfg->timeout_ms, "max_rows",
        (json_int_t)0, "max_bytes", (json_int_t)s->cfg->max_result_bytes);
    if (req && db && json_object_set_new(req, "filter_db", json_string(db)) != 0) {
        json_decref(req);
        req = NULL;
    }
    if (!req) {
        dg_http_respond_error(r, DG_NOMEM, NULL, r->id, 0);
        return;
    }
    dg_server__run_on_slot(s, r, r->id, req, s->cfg->timeout_ms, format);
    json_decref(req);
}

/* ---- POST /api/admin/query/_query_log ------------------------------------------------------ */

void dg_server__h_admin_qlog_sql(dg_http_req_t *r, void *ctx)
{
    dg_server_t *s = ctx;
    if (!log_gate(s, r)) {
        return;
    }
    /* The body is parsed like any admin query whose only database is the log. */
    dg_dbfile_t logdb = {.name = DG_SERVER_QLOG_DB};
    dg_http_query_limits_t lim = {s->cfg->max_sql_bytes, s->cfg->timeout_ms, &logdb, 1};
    dg_http_query_t q;
    dg_error_t err;
    dg_error_clear(&err);
    /* The route is literal (no capture): the database is the log's name. */
    dg_rc_t rc =
        dg_http_query_from_body(dg_str_c(DG_SERVER_QLOG_DB), r->body.p, r->body.len,
                                &r->target.args, dg_http_req_header(r, "Accept"), &lim, &q, &err);
    if (rc != DG_OK) {
        dg_http_respond_error(r, rc, err.msg, r->id, 0);
        return;
    }
    dg_codec_id_t coding;
    int level;
    rc = dg_server__response_coding(s, r, &coding, &level, &err);
    if (rc != DG_OK) {
        dg_http_query_free(&q);
        dg_http_respond_error(r, rc, err.msg, r->id, 0);
        return;
    }
    json_t *req = json_pack(
        "{s:s, s:s, s:i, s:s, s:s, s:i, s:s, s:s%, s:s, s:I, s:I, s:I}", "id", r->id, "encoding",
        dg_codec_name(coding), "level", level, "kind", "admin", "db", DG_SERVER_QLOG_DB, "engine",
        0, "path", s->qlog->path, "sql", q.sql, q.sql_len, "format", dg_http_format_name(q.format),
        "timeout_ms", (json_int_t)q.timeout_ms, "max_rows", (json_int_t)s->cfg->max_rows,
        "max_bytes", (json_int_t)s->cfg->max_result_bytes);
    if (req && q.params && json_object_set(req, "params", q.params) != 0) {
        json_decref(req);
        req = NULL;
    }
    if (!req) {
        dg_http_respond_error(r, DG_NOMEM, NULL, r->id, 0);
    } else {
        dg_server__run_on_slot(s, r, r->id, req, q.timeout_ms, q.format);
    }
    json_decref(req);
    dg_http_query_free(&q);
}
