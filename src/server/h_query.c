/* Handlers that run work on an engine slot: read-only SQL (`/api/query/{db}`) and the catalog
 * (`/api/databases/{db}`), and the relay that turns engine frames into an HTTP response.
 *
 * Flow: parse and validate -> lease a slot (bounded queue; 503 + Retry-After when full) -> send
 * REQ -> wait for the first frame while watching the client socket. ERROR before HEAD becomes
 * a real HTTP error; HEAD commits the status and headers and the body is then pulled frame by
 * frame as the socket drains (backpressure reaches the engine through the socketpair). A
 * failure after HEAD: NDJSON has an in-band marker (DESIGN §5), so the body ends properly with
 * an `error` line (the engine's, or one written here when the engine died or was killed); other
 * formats have none, so the chunked body is aborted and the client sees it is incomplete.
 *
 * Threads: everything runs on the request's connection thread; the slot is leased to it until
 * the response is freed (relay_free), which returns the slot (cancelling an unfinished query). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dgtime.h"
#include "core/ioutil.h"
#include "core/log.h"
#include "http/http_query.h"
#include "server/server_int.h"

typedef struct relay {
    dg_server_t *s;
    dg_slot_t *slot;
    int client_fd;
    dg_buf_t payload; /* current frame; bytes [off, len) not yet sent */
    size_t off;
    bool is_done;
    bool is_ndjson; /* failures after HEAD end with an in-band error line */
    bool is_coded;  /* the body is compressed: the front cannot append plain bytes to it */
    bool varies;    /* the answer depends on Accept-Encoding (query routes) */
    uint64_t bytes_out, rows_out; /* relayed body bytes, rows from END (metrics) */
    const char *encoding;         /* bytes_out label: "identity", "zstd", ... */
    int admin_db;                 /* admin request on a read-write database: its index, else -1 */
    bool changes;                 /* the engine reported a statement that may have changed data */
    char qid[65];
    dg_server__qrec_t *rec;       /* this query's log row (h_qlog.c), NULL when not logged */
    dg_server_cache_req_t *cache; /* result cache fill (h_cache.c), NULL when not involved */
    bool is_client_gone;          /* the client left: a waiting identical request may lead */
    int64_t queue_ms;             /* waited for the slot */
    int64_t sent_ms;              /* monotonic time REQ was sent (Server-Timing of errors) */
} relay;

/* ---- Server-Timing ------------------------------------------------------------------------- */

/* Appends "name;dur=X" (X in ms) to the Server-Timing value in out[cap]. */
static void timing_add(char *out, size_t cap, const char *name, double ms)
{
    size_t len = strlen(out);
    if (len < cap) {
        snprintf(out + len, cap - len, "%s%s;dur=%.3f", len ? ", " : "", name, ms < 0 ? 0 : ms);
    }
}

/* Appends "cache;desc=D" for a request the cache was consulted for (D: miss, bypass), or
 * desc=uncacheable when the cache is on but this request is not cacheable. */
static void timing_cache(const dg_server_t *s, const dg_server_cache_req_t *cache, char *out,
                         size_t cap)
{
    const char *d = cache ? dg_server__cache_log_status(cache) : s->cache ? "uncacheable" : NULL;
    size_t len = strlen(out);
    if (d && len < cap) {
        snprintf(out + len, cap - len, "%scache;desc=%s", len ? ", " : "", d);
    }
}

/* An error answer of a query route, with Server-Timing: the parts known so far (timing, may
 * be "") and total (arrival to now). Otherwise as dg_http_respond_error. */
static void respond_error_timed(dg_http_req_t *r, dg_rc_t rc, const char *message, const char *qid,
                                int retry_after_s, char *timing, size_t cap)
{
    timing_add(timing, cap, "total", (double)(dg_now_ms() - r->start_ms));
    dg_http_respond_error_timed(r, rc, message, qid, retry_after_s, timing);
}

/* respond_error_timed with only the total known (refused before any work). */
static void respond_error_total(dg_http_req_t *r, dg_rc_t rc, const char *message, const char *qid)
{
    char timing[64] = "";
    respond_error_timed(r, rc, message, qid, 0, timing, sizeof timing);
}

/* Notes the outcome for the query log: status (> 0) as answered, code the first failure. */
static void rec_outcome(relay *x, int status, dg_rc_t code)
{
    if (!x->rec) {
        return;
    }
    if (status > 0) {
        x->rec->status = status;
    }
    if (code != DG_OK && x->rec->code == DG_OK) {
        x->rec->code = code;
    }
}

/* Admin SQL on a read-write database: once the engine says a non-SELECT statement ran (HEAD,
 * END or ERROR carry "changes":true), the data version moves, so no cached response computed
 * before the write is served after it. Called again when the response ends, for statements
 * still running after HEAD. */
static void note_changes(relay *x, const dg_buf_t *payload)
{
    if (x->admin_db < 0 || !payload->p ||
        !memmem(payload->p, payload->len, "\"changes\":true", 14)) {
        return;
    }
    x->changes = true;
    dg_server__db_changed(x->s, x->admin_db);
}

/* Replaces the payload with an NDJSON error line; false when it cannot be built. */
static bool ndjson_error_line(relay *x, dg_rc_t rc)
{
    dg_buf_reset(&x->payload);
    const char *msg = dg_rc_message(rc);
    dg_rc_t r = dg_buf_printf(&x->payload,
                              "{\"type\":\"error\",\"code\":\"%s\",\"message\":", dg_rc_name(rc));
    if (r == DG_OK) {
        r = dg_buf_json_str(&x->payload, msg, strlen(msg));
    }
    if (r == DG_OK) {
        r = dg_buf_puts(&x->payload, "}\n");
    }
    x->off = 0;
    return r == DG_OK;
}

static void relay_free(void *ctx)
{
    relay *x = ctx;
    dg_server__cache_done(x->s, x->cache, x->is_client_gone);
    if (x->changes) {
        dg_server__db_changed(x->s, x->admin_db);
    }
    dg_server__qrec_end(x->s, x->rec, x->rows_out, x->bytes_out);
    if (x->s->metrics && x->encoding) {
        dg_series_add(x->s->metrics->rows_out, x->rows_out);
        dg_series_add(dg_metric_series(x->s->metrics->bytes_out, &x->encoding), x->bytes_out);
    }
    dg_engines_release(x->s->engines, x->slot);
    dg_buf_free(&x->payload);
    free(x);
}

/* Logs an ERROR frame's code and message; returns the code. */
static dg_rc_t log_frame_error(const char *qid, const dg_buf_t *payload, const char *when)
{
    json_t *j = json_loadb(payload->p ? payload->p : "", payload->len, 0, NULL);
    const char *code = j ? json_string_value(json_object_get(j, "code")) : NULL;
    const char *msg = j ? json_string_value(json_object_get(j, "message")) : NULL;
    dg_log(DG_LOG_WARN, "query", qid, "failed %s code=%s msg=\"%s\"", when, code ? code : "?",
           msg ? msg : "");
    dg_rc_t rc = code ? dg_rc_from_name(code) : DG_PROTOCOL;
    json_decref(j);
    return rc;
}

/* The "rows" of an END payload (0 when absent); END is our own small JSON object. */
static uint64_t end_rows(const dg_buf_t *payload)
{
    static const char key[] = "\"rows\":";
    const char *p = payload->p;
    size_t len = payload->len;
    for (size_t i = 0; p && i + sizeof key - 1 < len; i++) {
        if (memcmp(p + i, key, sizeof key - 1) == 0) {
            uint64_t v = 0;
            for (size_t k = i + sizeof key - 1; k < len && p[k] >= '0' && p[k] <= '9'; k++) {
                v = v * 10 + (uint64_t)(p[k] - '0');
            }
            return v;
        }
    }
    return 0;
}

/* The final execute_ms and encode_ms of an END payload, for the query log. */
static void end_timings(relay *x, const dg_buf_t *payload)
{
    if (!x->rec || !payload->p) {
        return;
    }
    const char *e = memmem(payload->p, payload->len, "\"execute_ms\":", 13);
    const char *c = memmem(payload->p, payload->len, "\"encode_ms\":", 12);
    /* END is our own NUL-terminated JSON object: strtod stops at the next comma. */
    if (e && c) {
        x->rec->has_engine_ms = true;
        x->rec->execute_ms = strtod(e + 13, NULL);
        x->rec->encode_ms = strtod(c + 12, NULL);
    }
}

static ssize_t relay_read(void *ctx, char *buf, size_t max)
{
    relay *x = ctx;
    while (x->off >= x->payload.len) {
        if (x->is_done) {
            return DG_HTTP_STREAM_END;
        }
        dg_frame_type_t type;
        dg_rc_t rc = dg_slot_read(x->slot, x->client_fd, &type, &x->payload);
        x->off = 0;
        if (rc != DG_OK) {
            dg_server__note_interrupt(x->s, rc);
            rec_outcome(x, 0, rc);
            dg_log(rc == DG_CLIENT_GONE ? DG_LOG_INFO : DG_LOG_WARN, "query", x->qid,
                   "stream aborted code=%s", dg_rc_name(rc));
            x->is_client_gone = rc == DG_CLIENT_GONE;
            x->payload.len = 0;
            if (rc != DG_CLIENT_GONE && x->is_ndjson && !x->is_coded && ndjson_error_line(x, rc)) {
                x->is_done = true; /* send the line, then end the body properly */
                continue;
            }
            return DG_HTTP_STREAM_ERROR;
        }
        if (type == DG_FRAME_DATA) {
            continue;
        }
        if (type == DG_FRAME_END) {
            dg_log(DG_LOG_DEBUG, "query", x->qid, "done %.*s", (int)x->payload.len,
                   x->payload.p ? x->payload.p : "");
            note_changes(x, &x->payload);
            dg_server__cache_end_frame(x->cache, &x->payload);
            x->rows_out = end_rows(&x->payload);
            end_timings(x, &x->payload);
            x->is_done = true;
            x->payload.len = 0;
            return DG_HTTP_STREAM_END;
        }
        if (type == DG_FRAME_ERROR) {
            note_changes(x, &x->payload);
            dg_rc_t erc = log_frame_error(x->qid, &x->payload, "after headers");
            rec_outcome(x, 0, erc);
            dg_server__note_interrupt(x->s, erc);
            if (x->is_ndjson) {
                /* The engine already sent its error line as the last DATA. */
                x->is_done = true;
                x->payload.len = 0;
                return DG_HTTP_STREAM_END;
            }
        } else {
            dg_log(DG_LOG_WARN, "query", x->qid, "unexpected frame type %d in stream", (int)type);
        }
        x->payload.len = 0;
        return DG_HTTP_STREAM_ERROR;
    }
    size_t n = x->payload.len - x->off;
    if (n > max) {
        n = max;
    }
    memcpy(buf, x->payload.p + x->off, n);
    dg_server__cache_tee(x->cache, buf, n);
    x->off += n;
    x->bytes_out += n;
    return (ssize_t)n;
}

/* Appends "name;dur=X" for a numeric HEAD field that is present. */
static void timing_part(char *out, size_t cap, json_t *head, const char *field, const char *name)
{
    json_t *v = json_object_get(head, field);
    if (!json_is_number(v)) {
        return;
    }
    size_t len = strlen(out);
    snprintf(out + len, cap - len, "%s%s;dur=%.3f", len ? ", " : "", name, json_number_value(v));
}

/* Answers from the first frame of a request already sent on x->slot. Consumes x. */
static void relay_start(dg_http_req_t *r, relay *x)
{
    dg_frame_type_t type;
    dg_rc_t rc = dg_slot_read(x->slot, x->client_fd, &type, &x->payload);
    dg_server__note_interrupt(x->s, rc);
    if (rc == DG_CLIENT_GONE) {
        rec_outcome(x, 499, rc);
        x->is_client_gone = true;
        relay_free(x);
        dg_http_drop(r);
        return;
    }
    /* Failures before HEAD: Server-Timing from the front's clock (the engine sends no timings
     * with an error): the slot wait, and the engine's part from REQ to the answer. */
    char etiming[160] = "";
    timing_add(etiming, sizeof etiming, "queue", (double)x->queue_ms);
    timing_add(etiming, sizeof etiming, "execute", (double)(dg_now_ms() - x->sent_ms));
    timing_cache(x->s, x->cache, etiming, sizeof etiming);
    if (rc != DG_OK) {
        char qid[65];
        memcpy(qid, x->qid, sizeof qid);
        rec_outcome(x, dg_rc_http_status(rc), rc);
        relay_free(x);
        respond_error_timed(r, rc, NULL, qid, 0, etiming, sizeof etiming);
        return;
    }
    json_t *j = json_loadb(x->payload.p ? x->payload.p : "", x->payload.len, 0, NULL);
    note_changes(x, &x->payload);
    if (type == DG_FRAME_ERROR) {
        const char *code = j ? json_string_value(json_object_get(j, "code")) : NULL;
        const char *msg = j ? json_string_value(json_object_get(j, "message")) : NULL;
        dg_rc_t erc = code ? dg_rc_from_name(code) : DG_PROTOCOL;
        char qid[65];
        memcpy(qid, x->qid, sizeof qid);
        dg_log(DG_LOG_DEBUG, "query", qid, "engine error code=%s", dg_rc_name(erc));
        dg_server__note_interrupt(x->s, erc);
        rec_outcome(x, dg_rc_http_status(erc), erc);
        /* Answer before releasing: the message lives in j, the slot is idle after ERROR. */
        respond_error_timed(r, erc, msg, qid, 0, etiming, sizeof etiming);
        relay_free(x);
        json_decref(j);
        return;
    }
    if (type != DG_FRAME_HEAD || !json_is_object(j)) {
        char qid[65];
        memcpy(qid, x->qid, sizeof qid);
        rec_outcome(x, dg_rc_http_status(DG_PROTOCOL), DG_PROTOCOL);
        relay_free(x);
        json_decref(j);
        respond_error_timed(r, DG_PROTOCOL, "the engine answered out of order", qid, 0, etiming,
                            sizeof etiming);
        return;
    }
    json_int_t status = json_integer_value(json_object_get(j, "status"));
    const char *ct = json_string_value(json_object_get(j, "content_type"));
    char timing[288] = "";
    timing_part(timing, sizeof timing, j, "queue_ms", "queue");
    timing_part(timing, sizeof timing, j, "execute_ms", "execute");
    timing_part(timing, sizeof timing, j, "encode_ms", "encode");
    timing_part(timing, sizeof timing, j, "compress_ms", "compress");
    if (x->rec) {
        /* The log keeps END's final values; HEAD's stand when the stream ends early. */
        json_t *ex = json_object_get(j, "execute_ms"), *en = json_object_get(j, "encode_ms");
        if (json_is_number(ex) && json_is_number(en)) {
            x->rec->has_engine_ms = true;
            x->rec->execute_ms = json_number_value(ex);
            x->rec->encode_ms = json_number_value(en);
        }
    }
    char ctype[128], coding[16] = "";
    snprintf(ctype, sizeof ctype, "%s", ct ? ct : "application/octet-stream");
    const char *ce = json_string_value(json_object_get(j, "content_encoding"));
    if (ce && dg_codec_parse(ce, strlen(ce)) > DG_CODEC_IDENTITY) {
        snprintf(coding, sizeof coding, "%s", ce);
        x->is_coded = true;
    }
    if (x->varies) {
        /* A query route: count its result (the codec name is one of a fixed set). */
        x->encoding = coding[0]
                          ? dg_codec_name((dg_codec_id_t)dg_codec_parse(coding, strlen(coding)))
                          : "identity";
    }
    char qid[65];
    memcpy(qid, x->qid, sizeof qid);
    int code = status >= 200 && status < 600 ? (int)status : 200;
    /* Cache-Status, Cache-Control, ETag (when the response will be stored), Vary on the
     * credential (shared caching allowed); Server-Timing's cache part. */
    dg_http_header_t h[8] = {
        {"Cache-Status", NULL}, {"Cache-Control", NULL}, {"ETag", NULL}, {"Vary", NULL}};
    if (x->cache) {
        dg_server__cache_head(x->cache, code, j, ctype, coding, h, timing, sizeof timing);
    } else if (x->varies) {
        timing_cache(x->s, NULL, timing, sizeof timing);
    }
    json_decref(j);
    h[4] = (dg_http_header_t){"X-Query-Id", qid};
    h[5] = (dg_http_header_t){"Server-Timing", timing[0] ? timing : NULL};
    h[6] = (dg_http_header_t){"Vary", x->varies ? "Accept-Encoding" : NULL};
    h[7] = (dg_http_header_t){"Content-Encoding", coding[0] ? coding : NULL};
    x->payload.len = 0;
    x->off = 0;
    rec_outcome(x, code, DG_OK);
    dg_http_respond_stream(r, code, ctype, h, 8, relay_read, relay_free, x);
}

void dg_server__run_on_slot(dg_server_t *s, dg_http_req_t *r, const char *qid, json_t *req,
                            int64_t timeout_ms, dg_format_t format)
{
    dg_server__run_on_slot_opts(s, r, qid, req, timeout_ms, format, NULL);
}

void dg_server__run_on_slot_opts(dg_server_t *s, dg_http_req_t *r, const char *qid, json_t *req,
                                 int64_t timeout_ms, dg_format_t format,
                                 const dg_server_cache_opts_t *co)
{
    if (atomic_load(&s->is_draining)) {
        respond_error_total(r, DG_DRAINING, NULL, qid);
        return;
    }
    /* The result cache first: a hit needs no slot (h_cache.c). */
    dg_server_cache_req_t *cache = NULL;
    if (dg_server__cache_begin(s, r, qid, req, co, &cache)) {
        return;
    }
    int64_t t0 = dg_now_ms();
    dg_slot_t *slot = NULL;
    int retry = 0;
    /* A read-write database lives in one engine only (DESIGN §4); a request may also pin its
     * engine ("engine": the query log lives in engine 0). */
    const char *db = json_string_value(json_object_get(req, "db"));
    json_t *pin = json_object_get(req, "engine");
    int engine =
        json_is_integer(pin) ? (int)json_integer_value(pin) : dg_server__engine_for_db(s, db);
    dg_server__qrec_t *rec = dg_server__qrec_begin(s, r, req);
    if (rec) {
        rec->cache = dg_server__cache_log_status(cache);
    }
    dg_rc_t rc = dg_engines_acquire_on(s->engines, engine, dg_http_req_client_fd(r), &slot, &retry);
    if (rc != DG_OK) {
        if (rec) {
            rec->status = dg_rc_http_status(rc);
            rec->code = rc;
        }
        dg_server__qrec_end(s, rec, 0, 0);
        char timing[128] = "";
        timing_add(timing, sizeof timing, "queue", (double)(dg_now_ms() - t0));
        timing_cache(s, cache, timing, sizeof timing);
        dg_server__cache_done(s, cache, rc == DG_CLIENT_GONE);
        respond_error_timed(r, rc, NULL, qid, retry, timing, sizeof timing);
        return;
    }
    int64_t queue_ms = dg_now_ms() - t0;
    relay *x = calloc(1, sizeof *x);
    char *text = NULL;
    if (!x || json_object_set_new(req, "queue_ms", json_integer(queue_ms)) != 0 ||
        !(text = json_dumps(req, JSON_COMPACT))) {
        free(x);
        if (rec) {
            rec->status = dg_rc_http_status(DG_NOMEM);
            rec->code = DG_NOMEM;
        }
        dg_server__qrec_end(s, rec, 0, 0);
        char timing[128] = "";
        timing_add(timing, sizeof timing, "queue", (double)queue_ms);
        timing_cache(s, cache, timing, sizeof timing);
        dg_server__cache_done(s, cache, false);
        dg_engines_release(s->engines, slot);
        respond_error_timed(r, DG_NOMEM, NULL, qid, 0, timing, sizeof timing);
        return;
    }
    x->rec = rec;
    x->cache = cache; /* from here relay_free ends it */
    if (rec) {
        rec->queue_ms = (double)queue_ms;
    }
    x->s = s;
    x->slot = slot;
    x->queue_ms = queue_ms;
    x->client_fd = dg_http_req_client_fd(r);
    x->is_ndjson = format == DG_FMT_NDJSON;
    x->varies = json_object_get(req, "encoding") != NULL;
    const char *kind = json_string_value(json_object_get(req, "kind"));
    bool is_admin = kind && (strcmp(kind, "admin") == 0 || strcmp(kind, "import") == 0);
    x->admin_db = engine >= 0 && is_admin ? dg_server__db_index(s, db, strlen(db)) : -1;
    memcpy(x->qid, qid, sizeof x->qid);
    /* A frame is at most DG_FRAME_MAX_PAYLOAD; the cap keeps a confused engine bounded. */
    dg_buf_init_rc(&x->payload, DG_FRAME_MAX_PAYLOAD, DG_PROTOCOL);
    /* timeout_ms <= 0: no deadline (admin SQL without an explicit timeout_ms). */
    x->sent_ms = dg_now_ms();
    rc = dg_slot_send(slot, text, strlen(text), timeout_ms > 0 ? x->sent_ms + timeout_ms : 0);
    free(text);
    if (rc != DG_OK) {
        char timing[128] = "";
        timing_add(timing, sizeof timing, "queue", (double)queue_ms);
        timing_cache(s, cache, timing, sizeof timing);
        rec_outcome(x, dg_rc_http_status(rc), rc);
        relay_free(x);
        respond_error_timed(r, rc, NULL, qid, 0, timing, sizeof timing);
        return;
    }
    relay_start(r, x);
}

static dg_http_query_limits_t limits_of(const dg_server_t *s)
{
    return (dg_http_query_limits_t){s->cfg->max_sql_bytes, s->cfg->timeout_ms, s->dbs, s->n_dbs};
}

void dg_server__h_query(dg_http_req_t *r, void *ctx)
{
    dg_server_t *s = ctx;
    /* The query id is the request id, so access, query and engine log lines correlate. */
    const char *qid = r->id;
    dg_auth_result_t who;
    if (!dg_server__admit(s, r, DG_ROLE_ANALYST, &r->match.cap[0], &who)) {
        return;
    }
    /* The caller's role caps the deadline, rows and bytes (docs/auth.md "Per-role limits"). */
    dg_caller_limits_t cl;
    dg_server__caller_limits(s, &who, &cl);
    dg_http_query_limits_t lim = limits_of(s);
    lim.timeout_ms = cl.timeout_ms;
    dg_http_query_t q;
    dg_error_t err;
    dg_error_clear(&err);
    const char *accept = dg_http_req_header(r, "Accept");
    dg_rc_t rc =
        r->method == DG_HTTP_POST
            ? dg_http_query_from_body(r->match.cap[0], r->body.p, r->body.len, &r->target.args,
                                      accept, &lim, &q, &err)
            : dg_http_query_from_args(r->match.cap[0], &r->target.args, accept, &lim, &q, &err);
    if (rc != DG_OK) {
        dg_server__qlog_refused(s, r, "sql", &r->match.cap[0], rc);
        respond_error_total(r, rc, err.msg, qid);
        return;
    }
    dg_codec_id_t coding;
    int level;
    rc = dg_server__response_coding(s, r, &coding, &level, &err);
    if (rc != DG_OK) {
        dg_http_query_free(&q);
        respond_error_total(r, rc, err.msg, qid);
        return;
    }
    json_t *req = json_object();
    bool ok = req && json_object_set_new(req, "id", json_string(qid)) == 0 &&
              json_object_set_new(req, "encoding", json_string(dg_codec_name(coding))) == 0 &&
              json_object_set_new(req, "level", json_integer(level)) == 0 &&
              json_object_set_new(req, "kind", json_string("sql")) == 0 &&
              json_object_set_new(req, "db", json_string(q.db)) == 0 &&
              json_object_set_new(req, "sql", json_stringn(q.sql, q.sql_len)) == 0 &&
              (!q.params || json_object_set(req, "params", q.params) == 0) &&
              json_object_set_new(req, "format", json_string(dg_http_format_name(q.format))) == 0 &&
              json_object_set_new(req, "timeout_ms", json_integer(q.timeout_ms)) == 0 &&
              json_object_set_new(req, "max_rows", json_integer((json_int_t)cl.max_rows)) == 0 &&
              json_object_set_new(req, "max_bytes", json_integer((json_int_t)cl.max_bytes)) == 0 &&
              json_object_set_new(req, "max_export_bytes",
                                  json_integer((json_int_t)s->cfg->max_export_bytes)) == 0;
    if (!ok) {
        respond_error_total(r, DG_NOMEM, NULL, qid);
    } else {
        dg_log(DG_LOG_DEBUG, "query", qid, "db=%s format=%s timeout_ms=%lld sql_bytes=%zu", q.db,
               dg_http_format_name(q.format), (long long)q.timeout_ms, q.sql_len);
        if (dg_server__concurrency_enter(s, r, &who)) {
            dg_server__run_on_slot(s, r, qid, req, q.timeout_ms, q.format);
        }
    }
    json_decref(req);
    dg_http_query_free(&q);
}

void dg_server__h_database(dg_http_req_t *r, void *ctx)
{
    dg_server_t *s = ctx;
    /* The query id is the request id, so access, query and engine log lines correlate. */
    const char *qid = r->id;
    if (!dg_server__authorize(s, r, DG_ROLE_VIEWER, &r->match.cap[0], NULL)) {
        return;
    }
    if (!dg_server__rate_admit(s, r)) {
        return;
    }
    dg_http_query_limits_t lim = limits_of(s);
    char db[65];
    dg_error_t err;
    dg_error_clear(&err);
    dg_rc_t rc = dg_http_query_check_db(r->match.cap[0], &lim, db, &err);
    if (rc != DG_OK) {
        respond_error_total(r, rc, err.msg, qid);
        return;
    }
    json_t *req =
        json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I}", "id", qid, "kind", "catalog", "db", db,
                  "format", "json", "timeout_ms", (json_int_t)s->cfg->timeout_ms, "max_rows",
                  (json_int_t)0, "max_bytes", (json_int_t)s->cfg->max_result_bytes);
    if (!req) {
        respond_error_total(r, DG_NOMEM, NULL, qid);
        return;
    }
    dg_server__run_on_slot(s, r, qid, req, s->cfg->timeout_ms, DG_FMT_JSON);
    json_decref(req);
}
