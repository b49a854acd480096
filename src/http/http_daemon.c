/* libmicrohttpd glue: the listening socket, one thread per connection, turning MHD's callback
 * sequence into one typed dg_http_req_t per request, and the response helpers.
 *
 * Request life: MHD calls uri_log (we keep the raw target, before MHD unescapes anything) ->
 * on_access #1 (headers: parse the target, route, check Content-Length; early errors answer
 * here, before any body is read) -> on_access #2..n (body chunks into a capped dg_buf) ->
 * on_access last (call the handler) -> on_completed (access log, free). Per-request state is
 * created in on_access #1, so MHD always pairs it with on_completed.
 *
 * Streams: MHD_SIZE_UNKNOWN responses are pulled through stream_reader; with an unknown size
 * MHD offers at most the free room of its per-connection pool (DESIGN §11), so readers copy
 * with an offset into their own buffer and the pool limit is raised.
 *
 * Connection limits: a connection opened past max_connections has its request answered 503
 * TOO_MANY_CONNECTIONS with Connection: close (libmicrohttpd itself closes connections past
 * a headroom above that, unanswered); libmicrohttpd enforces the idle timeout; it has no deadline for a request head or body that trickles
 * in a byte at a time (slowloris, slow POST), for a client that takes a response a few bytes
 * at a time, nor for a connection's total age. A watchdog thread does all four: every
 * connection's socket context sits in a list with its accept time, the time its current head
 * started, the time its current request started (until the body is in) and the time the
 * current response block was handed to libmicrohttpd (until the client took it). A head older
 * than header_timeout_s or a request older than request_timeout_s is answered 408
 * REQUEST_TIMEOUT, written by the watchdog straight to the socket (nothing of a response has
 * been sent then: the watchdog and the connection's thread claim the request with one CAS,
 * see claim_request); a response block not taken within the idle timeout (client_timeout_s),
 * or an idle connection older than connection_max_s, is cut. Each gets shutdown(2), which makes
 * the connection's thread see EOF and close it (and so free the stream and its engine slot).
 * A busy connection older than connection_max_s is answered with `Connection: close`.
 *
 * CORS: preflights (OPTIONS + Origin + Access-Control-Request-Method on an /api route) are
 * answered here, before any handler (and so before authentication, as browsers send them
 * without credentials); every response to an allowed Origin gets the CORS headers in queue().
 *
 * Threads: callbacks run on the connection's thread; the counters are atomics; the raw target
 * lives in the per-connection socket context, touched only by that connection's thread; the
 * list of socket contexts is guarded by dg_http.mu (the watchdog reads their atomics). */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "core/dgtime.h"
#include "core/ioutil.h"
#include "core/log.h"
#include "http/http.h"
#include "limit/limit.h"

/* Per-connection MHD memory pool: it holds the request head and bounds the room MHD offers a
 * stream reader (DESIGN §11). MHD 0.9.75 zeroes the whole pool after every request, so each
 * keep-alive connection costs its full size in RSS (measured: 4 MiB pools -> 840 MB for 200
 * idle connections); 256 KiB keeps streaming fast. Request heads beyond the pool are refused by
 * MHD itself with its built-in (HTML) 414/431 page; below it, ours are JSON. */
#define POOL_LIMIT (256u * 1024u)
#define MAX_HEADER_BYTES (64u * 1024u)    /* default cap of header names + values + 4 each */
#define STREAM_BLOCK (64u * 1024u)        /* block size hint for callback responses */
#define MAX_DISCARD (16u * 1024u * 1024u) /* body bytes swallowed after 413 before closing */
#define WATCHDOG_TICK_MS 200              /* resolution of header_timeout_s/connection_max_s */
#define WATCHDOG_STALL_MS 1000            /* a tick this late means the process was not running */
#define CUT ((long long)-1) /* a head/request deadline the watchdog claimed (answered 408) */

/* Answers to an allowed preflight (DESIGN §7; docs/security.md "CORS"). */
#define CORS_ALLOW_METHODS "GET, HEAD, POST, DELETE"
#define CORS_ALLOW_HEADERS "Content-Type, Authorization, X-API-Key, Accept, Accept-Encoding"
#define CORS_MAX_AGE "600"
#define CORS_EXPOSE_HEADERS "X-Query-Id, X-Request-Id, Server-Timing"

typedef struct conn_ctx conn_ctx;

struct dg_http {
    struct MHD_Daemon *mhd;
    int listen_fd;
    int port;
    bool quiesced;
    dg_http_opts_t opts;
    atomic_uint inflight;
    char *cors;                 /* copy of opts.cors_origins; NULL = CORS off */
    dg_limit_proxies_t proxies; /* opts.trusted_proxies, parsed */
    bool is_cors_star;          /* cors holds a `*` entry */
    /* watchdog */
    pthread_mutex_t mu; /* guards conns, is_stopping */
    pthread_cond_t cv;
    pthread_t watchdog;
    bool has_watchdog;
    bool is_stopping;
    conn_ctx *conns; /* every open connection's socket context */
    size_t n_conns;  /* how many (under mu) */
};

/* Per connection (MHD socket context): the raw target of the current request, and what the
 * watchdog needs. Created and freed by on_connection; linked into dg_http.conns meanwhile. */
struct conn_ctx {
    char *uri;
    size_t uri_len;
    int fd;
    atomic_llong accepted_ms;   /* monotonic; moved forward by a stall (forgive_stall) */
    atomic_llong head_start_ms; /* a request head is arriving since then; 0 = none; CUT */
    atomic_llong req_start_ms;  /* the current request's head and body are arriving since
                                   then (its head start); 0 = none (body in, or answered); CUT */
    atomic_llong send_wait_ms;  /* a response block waits for the client since then; 0 = none */
    atomic_int cut_status;      /* 408 when the watchdog answered the current request */
    char rid[65];               /* the current request's id, for the watchdog's 408; written
                                   before req_start_ms is set */
    atomic_bool is_busy;        /* a request is being handled or answered */
    bool is_over;               /* opened past max_connections: its request gets a 503 */
    bool is_shut;               /* the watchdog shut the socket down (under mu) */
    conn_ctx *prev, *next;      /* under mu */
    /* The connection's thread only: */
    struct dg_http_conn_ *spare; /* the last request's state, reused by the next one (a
                                    fresh calloc of it per request cost a heap consolidation) */
    char peer[INET6_ADDRSTRLEN]; /* the peer's numeric address; "" = not known */
};

/* Per request. */
struct dg_http_conn_ {
    dg_http_req_t req;
    dg_http_t *h;
    struct MHD_Connection *mc;
    bool is_started;
    bool has_response;
    bool is_too_large;
    bool is_dropped;
    bool is_preflight; /* an allowed CORS preflight, answered 204 at the final call */
    int status;
    uint64_t bytes_out; /* response body bytes handed to libmicrohttpd */
    char version[16];   /* "HTTP/1.1", for the combined access log */
    int64_t start_us;   /* monotonic arrival, for the access log and metrics */
    uint64_t discarded;
    dg_rc_t deferred_rc; /* error decided from the head, answered at the final call */
    char deferred_msg[160];
};

typedef struct stream_wrap {
    dg_http_stream_read_fn rd;
    dg_http_stream_free_fn fr;
    void *ctx;
    struct dg_http_conn_ *c; /* the request; the reader only runs while it lives */
    conn_ctx *cc;            /* its connection's socket context; may be NULL */
} stream_wrap;

/* A large complete body, sent in blocks through a reader so that the watchdog sees whether
 * the client takes them (see stream_reader). */
typedef struct body_wrap {
    conn_ctx *cc; /* the connection's socket context; may be NULL */
    size_t len;
    char p[];
} body_wrap;

/* ---- logging ----------------------------------------------------------------------- */

__attribute__((format(printf, 2, 0))) static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    line[strcspn(line, "\r\n")] = '\0';
    DG_LOGW("http", "libmicrohttpd: %s", line);
}

/* ---- per-connection context -------------------------------------------------------- */

static bool peer_text(struct MHD_Connection *mc, char *out, size_t cap);

static unsigned max_connections(const dg_http_t *h)
{
    return h->opts.max_connections ? h->opts.max_connections : 1024;
}

/* libmicrohttpd's own limit sits this far above max_connections: connections in between are
 * answered 503 TOO_MANY_CONNECTIONS (with Connection: close) once their request head is in;
 * beyond it libmicrohttpd closes them unanswered. */
static unsigned connection_headroom(const dg_http_t *h)
{
    unsigned extra = max_connections(h) / 8;
    return extra < 8 ? 8 : extra > 256 ? 256 : extra;
}

/* MHD runs the CLOSED notification before it closes the socket, so under mu the watchdog
 * only ever shuts down a descriptor that still belongs to its connection. */
static void on_connection(void *cls, struct MHD_Connection *mc, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    dg_http_t *h = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        conn_ctx *cc = calloc(1, sizeof(conn_ctx));
        if (!cc) {
            return;
        }
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
        cc->fd = ci ? ci->connect_fd : -1;
        peer_text(mc, cc->peer, sizeof cc->peer);
        long long now = dg_now_ms();
        atomic_init(&cc->accepted_ms, now);
        atomic_init(&cc->head_start_ms, now);
        atomic_init(&cc->req_start_ms, 0);
        atomic_init(&cc->send_wait_ms, 0);
        atomic_init(&cc->cut_status, 0);
        atomic_init(&cc->is_busy, false);
        pthread_mutex_lock(&h->mu);
        cc->is_over = ++h->n_conns > max_connections(h);
        cc->next = h->conns;
        if (h->conns) {
            h->conns->prev = cc;
        }
        h->conns = cc;
        pthread_mutex_unlock(&h->mu);
        *socket_context = cc;
    } else if (*socket_context) {
        conn_ctx *cc = *socket_context;
        pthread_mutex_lock(&h->mu);
        if (cc->prev) {
            cc->prev->next = cc->next;
        } else {
            h->conns = cc->next;
        }
        if (cc->next) {
            cc->next->prev = cc->prev;
        }
        h->n_conns--;
        pthread_mutex_unlock(&h->mu);
        free(cc->uri);
        free(cc->spare);
        free(cc);
        *socket_context = NULL;
    }
}

/* Moves a running deadline start by ms; fails harmlessly when it ended (0), was claimed (CUT)
 * or a new one started meanwhile. */
static void move_start(atomic_llong *start, int64_t ms)
{
    long long v = atomic_load(start);
    if (v > 0) {
        atomic_compare_exchange_strong(start, &v, v + ms);
    }
}

/* Time the process was not running (a starved or paused machine) is not the client's: the
 * deadlines of every connection move by it, so that a request whose bytes waited in the socket
 * while nothing ran is not closed as a slow client when the process runs again. Under mu. */
static void forgive_stall(dg_http_t *h, int64_t stalled_ms)
{
    for (conn_ctx *cc = h->conns; cc; cc = cc->next) {
        move_start(&cc->head_start_ms, stalled_ms);
        move_start(&cc->req_start_ms, stalled_ms);
        move_start(&cc->send_wait_ms, stalled_ms);
        atomic_fetch_add(&cc->accepted_ms, stalled_ms);
    }
}

/* Makes the close of a connection whose response is being cut a reset, not a FIN: what the
 * kernel still holds for the client (up to megabytes of socket buffer) is dropped instead of
 * trickling out for minutes, and the client learns at once that the body is cut. */
static void reset_on_close(int fd)
{
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
}

/* Writes a complete 408 REQUEST_TIMEOUT answer to a connection whose request the watchdog
 * claimed (so nothing of a response was sent for it, and nothing will be). Never blocks: the
 * few hundred bytes fit an empty socket buffer, and what does not is dropped with the
 * connection. */
static void answer_timeout(int fd, const char *rid, const char *msg)
{
    char id[17];
    if (!rid || !rid[0]) {
        dg_random_id(id);
        rid = id;
    }
    dg_buf_t body;
    dg_buf_init(&body, 1024);
    char head[256];
    if (dg_http_error_json(&body, DG_REQUEST_TIMEOUT, msg, NULL) != DG_OK) {
        dg_buf_free(&body);
        return;
    }
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n"
                     "Content-Type: application/json\r\nCache-Control: no-store\r\n"
                     "X-Request-Id: %s\r\nContent-Length: %zu\r\n\r\n",
                     rid, body.len);
    if (n > 0 && (size_t)n < sizeof head &&
        send(fd, head, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) == n) {
        ssize_t w = send(fd, body.p, body.len, MSG_DONTWAIT | MSG_NOSIGNAL);
        (void)w;
    }
    dg_buf_free(&body);
}

/* Closes connections whose request head is late and idle connections past their age. */
static void *watchdog_main(void *arg)
{
    dg_http_t *h = arg;
    int64_t head_ms = (int64_t)h->opts.header_timeout_s * 1000;
    int64_t req_ms = (int64_t)h->opts.request_timeout_s * 1000;
    int64_t send_ms = (int64_t)h->opts.idle_timeout_s * 1000;
    int64_t age_ms = (int64_t)h->opts.connection_max_s * 1000;
    int64_t last_tick = dg_now_ms();
    pthread_mutex_lock(&h->mu);
    while (!h->is_stopping) {
        int64_t now = dg_now_ms();
        int64_t stalled = now - last_tick - WATCHDOG_TICK_MS;
        if (stalled > WATCHDOG_STALL_MS) {
            DG_LOGW("http", "the process did not run for %lld ms; connection deadlines moved",
                    (long long)stalled);
            forgive_stall(h, stalled);
        }
        last_tick = now;
        for (conn_ctx *cc = h->conns; cc; cc = cc->next) {
            if (cc->is_shut || cc->fd < 0) {
                continue;
            }
            long long hs = atomic_load(&cc->head_start_ms);
            long long rs = atomic_load(&cc->req_start_ms);
            long long sw = atomic_load(&cc->send_wait_ms);
            const char *why = NULL;
            char msg[128];
            if (hs > 0 && now - hs > head_ms &&
                atomic_compare_exchange_strong(&cc->head_start_ms, &hs, CUT)) {
                why = "request head not complete within header_timeout_s";
                snprintf(msg, sizeof msg, "the request head did not arrive within %u s",
                         h->opts.header_timeout_s);
                answer_timeout(cc->fd, NULL, msg);
            } else if (rs > 0 && now - rs > req_ms &&
                       atomic_compare_exchange_strong(&cc->req_start_ms, &rs, CUT)) {
                why = "request not complete within request_timeout_s";
                atomic_store(&cc->cut_status, 408);
                snprintf(msg, sizeof msg, "the request (head and body) did not arrive within %u s",
                         h->opts.request_timeout_s);
                answer_timeout(cc->fd, cc->rid, msg);
            } else if (sw > 0 && now - sw > send_ms) {
                why = "response not taken by the client within client_timeout_s";
                reset_on_close(cc->fd);
                DG_LOGI("http",
                        "cutting connection fd=%d: a response block waited %lld ms for "
                        "the client (client_timeout_s)",
                        cc->fd, (long long)(now - sw));
            } else if (age_ms > 0 && hs == 0 && !atomic_load(&cc->is_busy) &&
                       now - atomic_load(&cc->accepted_ms) > age_ms) {
                why = "idle connection older than connection_max_s";
            }
            if (why) {
                DG_LOGD("http", "closing connection fd=%d: %s", cc->fd, why);
                shutdown(cc->fd, SHUT_RDWR);
                cc->is_shut = true;
            }
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += WATCHDOG_TICK_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&h->cv, &h->mu, &ts);
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

static conn_ctx *get_conn_ctx(struct MHD_Connection *mc)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *mc)
{
    (void)cls;
    conn_ctx *cc = get_conn_ctx(mc);
    if (cc) {
        /* A new request line on a kept-alive connection starts its head's deadline (the first
         * request's started at accept). */
        long long zero = 0;
        atomic_compare_exchange_strong(&cc->head_start_ms, &zero, (long long)dg_now_ms());
        free(cc->uri);
        cc->uri_len = strlen(uri);
        cc->uri = dg_str_dup((dg_str_t){uri, cc->uri_len});
        if (!cc->uri) {
            cc->uri_len = 0;
        }
    }
    return NULL;
}

/* The target was kept raw by on_uri; MHD must not decode anything else behind our back
 * (headers are not decoded; argument values are only used through our own parser). */
static size_t no_unescape(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    return strlen(s);
}

/* ---- responses --------------------------------------------------------------------- */

/* True when origin is in the CORS list (entries compared case-insensitively, as scheme and
 * host are). */
static bool cors_allowed(const dg_http_t *h, const char *origin)
{
    if (!h->cors || !origin) {
        return false;
    }
    if (h->is_cors_star) {
        return true;
    }
    size_t olen = strlen(origin);
    for (const char *p = h->cors; *p;) {
        p += strspn(p, " \t");
        size_t n = strcspn(p, ",");
        size_t m = n;
        while (m > 0 && (p[m - 1] == ' ' || p[m - 1] == '\t')) {
            m--;
        }
        if (m > 0 && m == olen && strncasecmp(p, origin, m) == 0) {
            return true;
        }
        p += n;
        p += *p == ',';
    }
    return false;
}

/* Adds the CORS response headers when the request's Origin is allowed, and `Vary: Origin` to
 * every response of a CORS-enabled server (the answer depends on Origin even when it is absent
 * or refused, so a shared cache must not serve one to the other). */
static bool add_cors_headers(struct dg_http_conn_ *c, struct MHD_Response *resp)
{
    dg_http_t *h = c->h;
    if (!h->cors) {
        return true;
    }
    if (MHD_add_response_header(resp, "Vary", "Origin") != MHD_YES) {
        return false;
    }
    const char *origin = MHD_lookup_connection_value(c->mc, MHD_HEADER_KIND, "Origin");
    if (!cors_allowed(h, origin)) {
        return true;
    }
    bool ok = MHD_add_response_header(resp, "Access-Control-Allow-Origin",
                                      h->is_cors_star ? "*" : origin) == MHD_YES;
    if (h->opts.cors_credentials) {
        ok = ok &&
             MHD_add_response_header(resp, "Access-Control-Allow-Credentials", "true") == MHD_YES;
    }
    if (c->is_preflight) {
        ok = ok &&
             MHD_add_response_header(resp, "Access-Control-Allow-Methods", CORS_ALLOW_METHODS) ==
                 MHD_YES &&
             MHD_add_response_header(resp, "Access-Control-Allow-Headers", CORS_ALLOW_HEADERS) ==
                 MHD_YES &&
             MHD_add_response_header(resp, "Access-Control-Max-Age", CORS_MAX_AGE) == MHD_YES;
    } else {
        ok = ok && MHD_add_response_header(resp, "Access-Control-Expose-Headers",
                                           CORS_EXPOSE_HEADERS) == MHD_YES;
    }
    return ok;
}

/* True when the connection has lived longer than connection_max_s. */
static bool is_conn_old(struct dg_http_conn_ *c)
{
    unsigned max_s = c->h->opts.connection_max_s;
    conn_ctx *cc = get_conn_ctx(c->mc);
    return max_s > 0 && cc && dg_now_ms() - atomic_load(&cc->accepted_ms) > (int64_t)max_s * 1000;
}

/* True when the request announced a body (a non-zero Content-Length or chunked transfer). */
static bool has_body(struct MHD_Connection *mc)
{
    const char *cl =
        MHD_lookup_connection_value(mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    return (cl && strcmp(cl, "0") != 0) ||
           MHD_lookup_connection_value(mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
}

/* Ends the current request's arrival deadline, for the connection's thread: false when the
 * watchdog claimed it first (it answered 408 and shut the socket; nothing else may be sent). */
static bool claim_request(conn_ctx *cc)
{
    return !cc || atomic_exchange(&cc->req_start_ms, 0) != CUT;
}

static dg_rc_t queue(struct dg_http_conn_ *c, int status, struct MHD_Response *resp,
                     const char *content_type, const dg_http_header_t *headers, size_t n_headers)
{
    if (!resp) {
        c->is_dropped = true;
        return DG_NOMEM;
    }
    conn_ctx *cc = get_conn_ctx(c->mc);
    if (!claim_request(cc)) {
        MHD_destroy_response(resp);
        c->is_dropped = true;
        return DG_CLIENT_GONE;
    }
    /* no-store unless the handler chose a Cache-Control (the result cache's responses). */
    bool has_cc = false, has_timing = false;
    for (size_t i = 0; i < n_headers; i++) {
        has_cc = has_cc || (headers[i].value && strcasecmp(headers[i].name, "Cache-Control") == 0);
        has_timing =
            has_timing || (headers[i].value && strcasecmp(headers[i].name, "Server-Timing") == 0);
    }
    bool ok = (has_cc || MHD_add_response_header(resp, "Cache-Control", "no-store") == MHD_YES) &&
              MHD_add_response_header(resp, "X-Request-Id", c->req.id) == MHD_YES;
    /* Every error answer tells the browser's developer tools how long it took, also those
     * refused before a handler measured anything (401, 403, 422, 429, ...). */
    if (ok && status >= 400 && !has_timing) {
        char timing[48];
        snprintf(timing, sizeof timing, "total;dur=%.3f",
                 (double)(dg_now_us() - c->start_us) / 1000.0);
        ok = MHD_add_response_header(resp, "Server-Timing", timing) == MHD_YES;
    }
    if (content_type) {
        ok = ok &&
             MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type) == MHD_YES;
    }
    for (size_t i = 0; i < n_headers; i++) {
        if (headers[i].value) {
            ok = ok && MHD_add_response_header(resp, headers[i].name, headers[i].value) == MHD_YES;
        }
    }
    ok = ok && add_cors_headers(c, resp);
    /* A body we refused to read must not be parsed as the next request; a connection past
     * connection_max_s ends with this response. */
    if (c->is_too_large || (!c->is_started && has_body(c->mc)) || is_conn_old(c) ||
        (cc && cc->is_over)) {
        ok = ok && MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close") == MHD_YES;
    }
    if (ok) {
        ok = MHD_queue_response(c->mc, (unsigned)status, resp) == MHD_YES;
    }
    MHD_destroy_response(resp);
    if (!ok) {
        c->is_dropped = true;
        return DG_INTERNAL;
    }
    c->has_response = true;
    c->status = status;
    if (cc) {
        /* The head (and a small body) must be taken by the client within client_timeout_s;
         * block readers move this on. */
        atomic_store(&cc->send_wait_ms, (long long)dg_now_ms());
    }
    return DG_OK;
}

/* Reader of a body_wrap (see stream_reader for send_wait_ms). */
static ssize_t body_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    body_wrap *bw = cls;
    if (pos >= bw->len) {
        return MHD_CONTENT_READER_END_OF_STREAM;
    }
    size_t n = bw->len - (size_t)pos < max ? bw->len - (size_t)pos : max;
    memcpy(buf, bw->p + pos, n);
    if (bw->cc) {
        atomic_store(&bw->cc->send_wait_ms, (long long)dg_now_ms());
    }
    return (ssize_t)n;
}

dg_rc_t dg_http_respond(dg_http_req_t *r, int status, const char *content_type, const void *body,
                        size_t len, const dg_http_header_t *headers, size_t n_headers)
{
    struct dg_http_conn_ *c = r->conn_;
    if (DG_NEVER(c->has_response)) {
        return DG_INTERNAL;
    }
    struct MHD_Response *resp = NULL;
    if (len <= STREAM_BLOCK) {
        resp = MHD_create_response_from_buffer(len, (void *)(uintptr_t)body, MHD_RESPMEM_MUST_COPY);
    } else {
        body_wrap *bw = malloc(sizeof *bw + len);
        if (bw) {
            bw->cc = get_conn_ctx(c->mc);
            bw->len = len;
            memcpy(bw->p, body, len);
            resp = MHD_create_response_from_callback(len, STREAM_BLOCK, body_reader, bw, free);
            if (!resp) {
                free(bw);
            }
        }
    }
    c->bytes_out = r->method == DG_HTTP_HEAD ? 0 : len;
    return queue(c, status, resp, content_type, headers, n_headers);
}

dg_rc_t dg_http_respond_error(dg_http_req_t *r, dg_rc_t rc, const char *message,
                              const char *query_id, int retry_after_s)
{
    return dg_http_respond_error_timed(r, rc, message, query_id, retry_after_s, NULL);
}

dg_rc_t dg_http_respond_error_timed(dg_http_req_t *r, dg_rc_t rc, const char *message,
                                    const char *query_id, int retry_after_s,
                                    const char *server_timing)
{
    dg_buf_t b;
    dg_buf_init(&b, 8192);
    int status = dg_rc_http_status(rc);
    if (dg_http_error_json(&b, rc, message, query_id) != DG_OK) {
        dg_buf_reset(&b);
        dg_http_error_json(&b, rc, NULL, NULL);
    }
    dg_http_header_t h[4];
    size_t n = 0;
    char retry[16], allow[96];
    if (server_timing && *server_timing) {
        h[n++] = (dg_http_header_t){"Server-Timing", server_timing};
    }
    if (status == 503 || retry_after_s > 0) {
        snprintf(retry, sizeof retry, "%d", retry_after_s > 0 ? retry_after_s : 1);
        h[n++] = (dg_http_header_t){"Retry-After", retry};
    }
    if (status == 405) {
        dg_http_allow_string(r->match.allow, allow, sizeof allow);
        h[n++] = (dg_http_header_t){"Allow", allow};
    }
    if (query_id) {
        h[n++] = (dg_http_header_t){"X-Query-Id", query_id};
    }
    dg_log(status >= 500 ? DG_LOG_WARN : DG_LOG_DEBUG, "http", r->id, "error %s status=%d %s",
           dg_rc_name(rc), status, message ? message : "");
    dg_rc_t ret = dg_http_respond(r, status, "application/json", b.p ? b.p : "", b.len, h, n);
    dg_buf_free(&b);
    return ret;
}

/* Slow readers: libmicrohttpd asks a reader for the next block only once the previous one is
 * in the kernel, so "a block was handed out and no new one was asked for" means the client is
 * not taking the response. Readers clear send_wait_ms while they run (time spent waiting for
 * the engine is not the client's) and set it when they hand a block out; the watchdog cuts a
 * connection whose block waited longer than client_timeout_s, which frees the stream and its
 * engine slot. */
static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    stream_wrap *w = cls;
    if (max == 0) {
        return 0;
    }
    if (w->cc) {
        atomic_store(&w->cc->send_wait_ms, 0);
    }
    ssize_t n = w->rd(w->ctx, buf, max);
    if (n == DG_HTTP_STREAM_END) {
        return MHD_CONTENT_READER_END_OF_STREAM;
    }
    if (n < 0 || n == 0) {
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    w->c->bytes_out += (uint64_t)n;
    if (w->cc) {
        atomic_store(&w->cc->send_wait_ms, (long long)dg_now_ms());
    }
    return n;
}

static void stream_free(void *cls)
{
    stream_wrap *w = cls;
    w->fr(w->ctx);
    free(w);
}

dg_rc_t dg_http_respond_stream(dg_http_req_t *r, int status, const char *content_type,
                               const dg_http_header_t *headers, size_t n_headers,
                               dg_http_stream_read_fn rd, dg_http_stream_free_fn fr, void *ctx)
{
    struct dg_http_conn_ *c = r->conn_;
    stream_wrap *w = malloc(sizeof *w);
    if (!w || DG_NEVER(c->has_response)) {
        free(w);
        fr(ctx);
        c->is_dropped = true;
        return DG_NOMEM;
    }
    *w = (stream_wrap){rd, fr, ctx, c, get_conn_ctx(c->mc)};
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, STREAM_BLOCK,
                                                                  stream_reader, w, stream_free);
    if (!resp) {
        stream_free(w);
    }
    /* From here the response owns w: MHD_destroy_response (in queue) or the end of the
     * transfer runs stream_free. */
    return queue(c, status, resp, content_type, headers, n_headers);
}

void dg_http_drop(dg_http_req_t *r)
{
    r->conn_->is_dropped = true;
}

const char *dg_http_req_header(dg_http_req_t *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn_->mc, MHD_HEADER_KIND, name);
}

/* The TCP peer's address as numeric text (see dg_http_req_peer). */
static bool peer_text(struct MHD_Connection *mc, char *out, size_t cap)
{
    if (cap) {
        out[0] = '\0';
    }
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;
    if (!sa || cap == 0) {
        return false;
    }
    char buf[INET6_ADDRSTRLEN];
    const char *t = NULL;
    if (sa->sa_family == AF_INET) {
        t = inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, buf,
                      sizeof buf);
    } else if (sa->sa_family == AF_INET6) {
        t = inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, buf,
                      sizeof buf);
    }
    if (!t || strlen(buf) >= cap) {
        return false;
    }
    memcpy(out, buf, strlen(buf) + 1);
    return true;
}

bool dg_http_req_peer(dg_http_req_t *r, char *out, size_t cap)
{
    const conn_ctx *cc = get_conn_ctx(r->conn_->mc);
    size_t len = cc ? strlen(cc->peer) : 0;
    if (len > 0 && len < cap) {
        memcpy(out, cc->peer, len + 1);
        return true;
    }
    return peer_text(r->conn_->mc, out, cap);
}

/* True when the connection's TCP peer is one of the trusted proxies. */
static bool is_peer_trusted(const dg_http_t *h, struct MHD_Connection *mc)
{
    char text[64];
    dg_limit_addr_t a;
    return h->proxies.n > 0 && peer_text(mc, text, sizeof text) &&
           dg_limit_addr_parse(text, strlen(text), &a) && dg_limit_proxies_match(&h->proxies, &a);
}

typedef struct header_join {
    const char *name;
    char *out;
    size_t cap, len;
    bool found;
} header_join;

static enum MHD_Result join_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    (void)kind;
    header_join *j = cls;
    if (!key || !value || strcasecmp(key, j->name) != 0) {
        return MHD_YES;
    }
    size_t vlen = strlen(value);
    if (j->found && j->len + 1 < j->cap) {
        j->out[j->len++] = ',';
    }
    j->found = true;
    /* Keep the tail: shift out whole left elements until the value fits. */
    while (j->len + vlen + 1 > j->cap && j->len > 0) {
        char *comma = memchr(j->out, ',', j->len);
        size_t drop = comma ? (size_t)(comma - j->out) + 1 : j->len;
        memmove(j->out, j->out + drop, j->len - drop);
        j->len -= drop;
    }
    if (vlen + 1 > j->cap) {
        const char *v = value + vlen - (j->cap - 1);
        const char *comma = strchr(v, ',');
        v = comma ? comma + 1 : value + vlen;
        vlen = strlen(v);
        value = v;
    }
    memcpy(j->out + j->len, value, vlen);
    j->len += vlen;
    j->out[j->len] = '\0';
    return MHD_YES;
}

bool dg_http_req_header_all(dg_http_req_t *r, const char *name, char *out, size_t cap)
{
    if (cap == 0) {
        return false;
    }
    out[0] = '\0';
    header_join j = {name, out, cap, 0, false};
    MHD_get_connection_values(r->conn_->mc, MHD_HEADER_KIND, join_header, &j);
    return j.found;
}

int dg_http_req_client_fd(dg_http_req_t *r)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn_->mc, MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci ? ci->connect_fd : -1;
}

/* ---- request handling -------------------------------------------------------------- */

/* Answers an error decided from the request head. With a body announced, answer at once (and
 * close) so the body is never read; without one, wait for MHD's final call, because a response
 * queued from the first call makes MHD close the connection, losing keep-alive. */
static void early_error(struct dg_http_conn_ *c, dg_rc_t rc, const char *msg)
{
    if (!c->is_started && !has_body(c->mc)) {
        c->deferred_rc = rc;
        snprintf(c->deferred_msg, sizeof c->deferred_msg, "%s", msg ? msg : "");
        return;
    }
    dg_http_respond_error(&c->req, rc, msg, NULL, 0);
}

typedef struct header_sum {
    size_t bytes;
    size_t n;
} header_sum;

static enum MHD_Result sum_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                  const char *value)
{
    (void)kind;
    header_sum *sum = cls;
    sum->bytes += strlen(key) + (value ? strlen(value) : 0) + 4;
    sum->n++;
    return MHD_YES;
}

/* An OPTIONS request a browser sends before a cross-origin request. */
static bool is_preflight(struct dg_http_conn_ *c, const conn_ctx *cc)
{
    return c->req.method == DG_HTTP_OPTIONS && c->h->cors && strncmp(cc->uri, "/api/", 5) == 0 &&
           MHD_lookup_connection_value(c->mc, MHD_HEADER_KIND, "Origin") &&
           MHD_lookup_connection_value(c->mc, MHD_HEADER_KIND, "Access-Control-Request-Method");
}

/* Answers an allowed preflight: 204, the CORS headers come from queue(). */
static void answer_preflight(struct dg_http_conn_ *c)
{
    dg_http_respond(&c->req, 204, NULL, "", 0, NULL, 0);
}

/* First call for a request: everything that can be decided from the head alone. */
static void on_head(struct dg_http_conn_ *c, const char *method)
{
    dg_http_t *h = c->h;
    dg_http_req_t *r = &c->req;
    conn_ctx *cc = get_conn_ctx(c->mc);
    dg_error_t err;
    dg_error_clear(&err);
    r->method = dg_http_method_parse(method);
    if (!cc || !cc->uri) {
        early_error(c, DG_NOMEM, NULL);
        return;
    }
    if (cc->is_over) {
        char msg[128];
        snprintf(msg, sizeof msg, "the server has %u connections open, its max_connections",
                 max_connections(h));
        early_error(c, DG_TOO_MANY_CONNECTIONS, msg);
        return;
    }
    uint64_t max_url = h->opts.max_url_bytes ? h->opts.max_url_bytes : 64u * 1024u;
    if (cc->uri_len > max_url) {
        char msg[128];
        snprintf(msg, sizeof msg, "the request target is %zu bytes; the limit is %llu", cc->uri_len,
                 (unsigned long long)max_url);
        early_error(c, DG_URI_TOO_LONG, msg);
        return;
    }
    header_sum hs = {0, 0};
    MHD_get_connection_values(c->mc, MHD_HEADER_KIND, sum_header, &hs);
    unsigned max_headers = h->opts.max_headers ? h->opts.max_headers : 100;
    uint64_t max_hbytes = h->opts.max_header_bytes ? h->opts.max_header_bytes : MAX_HEADER_BYTES;
    if (hs.bytes > max_hbytes) {
        char msg[128];
        snprintf(msg, sizeof msg, "the request headers are %zu bytes; the limit is %llu", hs.bytes,
                 (unsigned long long)max_hbytes);
        early_error(c, DG_HEADERS_TOO_LARGE, msg);
        return;
    }
    if (hs.n > max_headers) {
        char msg[128];
        snprintf(msg, sizeof msg, "the request has %zu header fields; the limit is %u", hs.n,
                 max_headers);
        early_error(c, DG_TOO_MANY_HEADERS, msg);
        return;
    }
    dg_rc_t rc = dg_http_target_parse(cc->uri, cc->uri_len, &r->target, &err);
    if (rc != DG_OK) {
        early_error(c, rc, err.msg);
        return;
    }
    rc = dg_http_route_match(h->opts.routes, h->opts.n_routes, r->method, &r->target.path,
                             &r->match);
    if (rc == DG_METHOD_NOT_ALLOWED && is_preflight(c, cc)) {
        const char *origin = MHD_lookup_connection_value(c->mc, MHD_HEADER_KIND, "Origin");
        if (!cors_allowed(h, origin)) {
            early_error(c, DG_FORBIDDEN, "this origin is not allowed cross-origin requests");
            return;
        }
        c->is_preflight = true;
        if (has_body(c->mc)) {
            answer_preflight(c);
        }
        return;
    }
    if (rc != DG_OK) {
        early_error(c, rc, rc == DG_NOT_FOUND ? "no such route" : NULL);
        return;
    }
    const char *cl =
        MHD_lookup_connection_value(c->mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    uint64_t len;
    if (cl && dg_str_to_u64(dg_str_c(cl), &len) && len > h->opts.max_body_bytes) {
        char msg[128];
        snprintf(msg, sizeof msg, "the request body is %llu bytes; the limit is %llu",
                 (unsigned long long)len, (unsigned long long)h->opts.max_body_bytes);
        early_error(c, DG_BODY_TOO_LARGE, msg);
    }
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *mc, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
    (void)url;
    dg_http_t *h = cls;
    struct dg_http_conn_ *c = *con_cls;
    if (!c) {
        conn_ctx *owner = get_conn_ctx(mc);
        if (owner && owner->spare) {
            c = owner->spare;
            owner->spare = NULL;
            memset(c, 0, sizeof *c);
        } else if (!(c = calloc(1, sizeof *c))) {
            return MHD_NO;
        }
        *con_cls = c;
        c->h = h;
        c->mc = mc;
        c->req.conn_ = c;
        c->start_us = dg_now_us();
        c->req.start_ms = c->start_us / 1000;
        snprintf(c->version, sizeof c->version, "%s", version ? version : "HTTP/1.1");
        /* A client's id is believed only from a trusted proxy (docs/observability.md). */
        const char *rid = h->opts.trust_request_id && is_peer_trusted(h, mc)
                              ? MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "X-Request-Id")
                              : NULL;
        if (rid && dg_http_request_id_valid(rid)) {
            snprintf(c->req.id, sizeof c->req.id, "%s", rid);
        } else {
            dg_random_id(c->req.id);
        }
        dg_buf_init_rc(&c->req.body, h->opts.max_body_bytes, DG_BODY_TOO_LARGE);
        atomic_fetch_add(&h->inflight, 1);
        conn_ctx *cc = get_conn_ctx(mc);
        if (cc) {
            atomic_store(&cc->is_busy, true);
            atomic_store(&cc->cut_status, 0);
            memcpy(cc->rid, c->req.id, sizeof cc->rid);
            /* The head is in: its deadline becomes the whole request's, until the body is in. */
            long long hs = atomic_exchange(&cc->head_start_ms, 0);
            if (hs == CUT) {
                c->is_dropped = true; /* the watchdog answered 408 already */
                return MHD_NO;
            }
            atomic_store(&cc->req_start_ms, hs > 0 ? hs : (long long)dg_now_ms());
        }
        on_head(c, method);
        c->is_started = true;
        return c->is_dropped ? MHD_NO : MHD_YES;
    }
    if (*upload_data_size) {
        if (!c->has_response && !c->is_too_large) {
            if (dg_buf_append(&c->req.body, upload_data, *upload_data_size) != DG_OK) {
                c->is_too_large = true;
                dg_buf_free(&c->req.body);
            }
        }
        if (c->is_too_large) {
            c->discarded += *upload_data_size;
            if (c->discarded > MAX_DISCARD) {
                return MHD_NO;
            }
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (c->has_response) {
        return MHD_YES;
    }
    if (!claim_request(get_conn_ctx(mc))) {
        c->is_dropped = true; /* the watchdog answered 408 already */
        return MHD_NO;
    }
    if (c->deferred_rc != DG_OK) {
        early_error(c, c->deferred_rc, c->deferred_msg[0] ? c->deferred_msg : NULL);
    } else if (c->is_preflight) {
        answer_preflight(c);
    } else if (c->is_too_large) {
        early_error(c, DG_BODY_TOO_LARGE, NULL);
    } else {
        c->req.match.route->fn(&c->req, h->opts.ctx);
        if (!c->has_response && !c->is_dropped) {
            DG_LOGE("http", "handler for %s answered nothing", c->req.match.route->pattern);
            early_error(c, DG_INTERNAL, NULL);
        }
    }
    return c->is_dropped ? MHD_NO : MHD_YES;
}

bool dg_http_request_id_valid(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        char ch = s[n];
        if (n >= 64 || !((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                         (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-')) {
            return false;
        }
    }
    return n > 0;
}

/* Copies at most cap - 1 bytes of s (NULL or empty = "-") into out, bytes that could forge or
 * break a line or a quoted field shown as '?'. */
static void log_field(const char *s, size_t len, char *out, size_t cap)
{
    if (!s || len == 0) {
        s = "-";
        len = 1;
    }
    if (len > cap - 1) {
        len = cap - 1;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        out[i] = ch < 0x20 || ch >= 0x7f || ch == '"' || ch == '\\' ? '?' : (char)ch;
    }
    out[len] = '\0';
}

/* Apache/NCSA combined format plus the request id:
 * host ident authuser [date] "METHOD path VERSION" status bytes "referer" "user-agent" "id".
 * authuser is the principal ("key:<id>", a JWT subject), never a credential. A stack line, one
 * write(2). */
static void access_log_combined(dg_http_t *h, struct dg_http_conn_ *c, int status, const char *uri,
                                size_t path_len)
{
    static const char *const mon[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    char host[64], user[64], path[201], ref[201], ua[201], bytes[24], line[1024];
    if (!peer_text(c->mc, host, sizeof host)) {
        snprintf(host, sizeof host, "-");
    }
    const char *pr = c->req.principal;
    log_field(strcmp(pr, "ip") == 0 ? NULL : pr, strlen(pr), user, sizeof user);
    for (char *p = user; *p; p++) {
        *p = *p == ' ' ? '?' : *p; /* authuser is one unquoted field */
    }
    log_field(uri, path_len, path, sizeof path);
    for (char *p = path; *p; p++) {
        *p = *p == ' ' ? '?' : *p;
    }
    const char *rf = MHD_lookup_connection_value(c->mc, MHD_HEADER_KIND, "Referer");
    const char *ag = MHD_lookup_connection_value(c->mc, MHD_HEADER_KIND, "User-Agent");
    log_field(rf, rf ? strcspn(rf, "?#") : 0, ref, sizeof ref); /* its query may hold a token */
    log_field(ag, ag ? strlen(ag) : 0, ua, sizeof ua);
    if (c->bytes_out > 0) {
        snprintf(bytes, sizeof bytes, "%llu", (unsigned long long)c->bytes_out);
    } else {
        snprintf(bytes, sizeof bytes, "-");
    }
    int n = snprintf(line, sizeof line,
                     "%s - %s [%02d/%s/%04d:%02d:%02d:%02d +0000] \"%s %s %s\" %d %s \"%s\" "
                     "\"%s\" \"%s\"\n",
                     host, user, tm.tm_mday, mon[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour,
                     tm.tm_min, tm.tm_sec, dg_http_method_name(c->req.method), path, c->version,
                     status, bytes, ref, ua, c->req.id);
    if (n > 0) {
        size_t len = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
        line[len - 1] = '\n';
        ssize_t w = write(h->opts.access_log_fd, line, len);
        (void)w;
    }
}

/* Writes one access line: the path only (never the query string, which may hold SQL and its
 * parameters), no header values (Authorization, API keys) but Referer and User-Agent in the
 * combined format. Text keeps the log line shape (ts level module req=<id> msg key=value);
 * JSON is one object per line; combined is Apache's. One write(2) per line, so lines from
 * concurrent connections do not interleave. */
static void access_log(dg_http_t *h, struct dg_http_conn_ *c, int status, double duration_s,
                       bool is_aborted)
{
    conn_ctx *cc = get_conn_ctx(c->mc);
    const char *uri = cc && cc->uri ? cc->uri : "-";
    size_t path_len = strcspn(uri, "?");
    if (path_len > 200) {
        path_len = 200;
    }
    if (h->opts.access_log == DG_HTTP_LOG_COMBINED) {
        access_log_combined(h, c, status, uri, path_len);
        return;
    }
    const char *route = c->req.match.route ? c->req.match.route->pattern : "other";
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    char when[96];
    snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)(ts.tv_nsec / 1000000) % 1000);
    if (h->opts.access_log == DG_HTTP_LOG_TEXT) {
        /* Bytes that could forge or break a line are shown as '?'. A stack line: no allocation
         * on the per-request path (the fields are bounded, so it always fits). */
        char path[201], line[640];
        for (size_t i = 0; i < path_len; i++) {
            unsigned char ch = (unsigned char)uri[i];
            path[i] = ch <= 0x20 || ch >= 0x7f || ch == '"' ? '?' : (char)ch;
        }
        path[path_len] = '\0';
        int n = snprintf(line, sizeof line,
                         "%s info access req=%s %s %s status=%d ms=%.3f route=%s%s\n", when,
                         c->req.id, dg_http_method_name(c->req.method), path, status,
                         duration_s * 1000.0, route, is_aborted ? " aborted=1" : "");
        if (n > 0) {
            size_t len = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
            line[len - 1] = '\n';
            ssize_t w = write(h->opts.access_log_fd, line, len);
            (void)w;
        }
        return;
    }
    dg_buf_t b;
    dg_buf_init(&b, 1024);
    dg_rc_t rc =
        dg_buf_printf(&b, "{\"ts\":\"%s\",\"request_id\":\"%s\",\"method\":\"%s\",\"path\":", when,
                      c->req.id, dg_http_method_name(c->req.method));
    if (rc == DG_OK) {
        rc = dg_buf_json_str(&b, uri, path_len);
    }
    if (rc == DG_OK) {
        rc = dg_buf_printf(&b,
                           ",\"route\":\"%s\",\"status\":%d,\"duration_ms\":%.3f,"
                           "\"aborted\":%s}\n",
                           route, status, duration_s * 1000.0, is_aborted ? "true" : "false");
    }
    if (rc == DG_OK) {
        ssize_t w = write(h->opts.access_log_fd, b.p, b.len);
        (void)w;
    }
    dg_buf_free(&b);
}

static void on_completed(void *cls, struct MHD_Connection *mc, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    dg_http_t *h = cls;
    struct dg_http_conn_ *c = *con_cls;
    if (!c) {
        return;
    }
    *con_cls = NULL;
    conn_ctx *cc = get_conn_ctx(mc);
    int cut = cc ? atomic_load(&cc->cut_status) : 0;
    int status = c->has_response ? c->status : cut ? cut : 499;
    bool is_aborted = toe != MHD_REQUEST_TERMINATED_COMPLETED_OK;
    if (c->has_response && toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED && cc && cc->fd >= 0) {
        /* libmicrohttpd cut a client that took nothing for client_timeout_s: reset (see
         * reset_on_close) rather than let the kernel trickle the rest of a cut body out. */
        reset_on_close(cc->fd);
        DG_LOGI("http",
                "cutting connection fd=%d: the client took no response bytes for %u s "
                "(client_timeout_s)",
                cc->fd, h->opts.idle_timeout_s);
    }
    double duration_s = (double)(dg_now_us() - c->start_us) / 1e6;
    if (h->opts.access_log != DG_HTTP_LOG_OFF) {
        access_log(h, c, status, duration_s, is_aborted);
    }
    if (h->opts.on_complete) {
        h->opts.on_complete(&c->req, status, duration_s, is_aborted, h->opts.ctx);
    }
    dg_http_target_free(&c->req.target);
    dg_buf_free(&c->req.body);
    if (cc && !cc->spare) {
        cc->spare = c;
    } else {
        free(c);
    }
    if (cc) {
        claim_request(cc);
        atomic_store(&cc->send_wait_ms, 0);
        atomic_store(&cc->is_busy, false);
    }
    atomic_fetch_sub(&h->inflight, 1);
}

/* ---- daemon ------------------------------------------------------------------------ */

/* Frees h and what dg_http_start gave it, after the daemon and the watchdog are gone. */
static void http_free(dg_http_t *h)
{
    pthread_cond_destroy(&h->cv);
    pthread_mutex_destroy(&h->mu);
    free(h->cors);
    free(h);
}

static dg_rc_t bind_listen(const char *listen_addr, int *out_fd, int *out_port, bool *out_v6,
                           dg_error_t *err)
{
    char host[256];
    int port;
    if (!dg_parse_listen(listen_addr, host, sizeof host, &port)) {
        return dg_error_set(err, DG_CONFIG, "bad listen address \"%.64s\"", listen_addr);
    }
    char port_s[8];
    snprintf(port_s, sizeof port_s, "%d", port);
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int gai = getaddrinfo(host[0] ? host : NULL, port_s, &hints, &ai);
    if (gai != 0) {
        return dg_error_set(err, DG_IO, "cannot resolve %s: %s", listen_addr, gai_strerror(gai));
    }
    int fd = -1, saved = 0;
    for (struct addrinfo *a = ai; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, 511) == 0) {
            *out_v6 = a->ai_family == AF_INET6;
            break;
        }
        saved = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    if (fd < 0) {
        return dg_error_set(err, DG_IO, "cannot listen on %s: %s", listen_addr, strerror(saved));
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
        saved = errno;
        close(fd);
        return dg_error_set(err, DG_IO, "getsockname: %s", strerror(saved));
    }
    *out_port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                         : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    *out_fd = fd;
    return DG_OK;
}

dg_rc_t dg_http_start(const dg_http_opts_t *opts, dg_http_t **out, dg_error_t *err)
{
    *out = NULL;
    dg_http_t *h = calloc(1, sizeof *h);
    if (!h) {
        return dg_error_set(err, DG_NOMEM, "out of memory");
    }
    h->opts = *opts;
    h->opts.cors_origins = NULL; /* borrowed from the caller; h->cors is ours */
    if (h->opts.header_timeout_s == 0) {
        h->opts.header_timeout_s = 10;
    }
    if (h->opts.request_timeout_s == 0) {
        h->opts.request_timeout_s = 60;
    }
    if (h->opts.idle_timeout_s == 0) {
        h->opts.idle_timeout_s = 60;
    }
    h->opts.trusted_proxies = NULL; /* borrowed from the caller; parsed into h->proxies */
    const char *tp = opts->trusted_proxies ? opts->trusted_proxies : "";
    dg_rc_t prc = dg_limit_proxies_parse(tp, strlen(tp), &h->proxies, err);
    if (prc != DG_OK) {
        free(h);
        return prc;
    }
    h->listen_fd = -1;
    atomic_init(&h->inflight, 0);
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    if (opts->cors_origins && opts->cors_origins[0] && strcmp(opts->cors_origins, "off") != 0) {
        h->cors = dg_str_dup(dg_str_c(opts->cors_origins));
        if (!h->cors) {
            http_free(h);
            return dg_error_set(err, DG_NOMEM, "out of memory");
        }
        for (const char *p = h->cors; *p; p += strcspn(p, ","), p += *p == ',') {
            p += strspn(p, " \t");
            size_t n = strcspn(p, ", \t");
            h->is_cors_star = h->is_cors_star || (n == 1 && p[0] == '*');
        }
    }
    bool is_v6 = false;
    dg_rc_t rc = bind_listen(opts->listen, &h->listen_fd, &h->port, &is_v6, err);
    if (rc != DG_OK) {
        http_free(h);
        return rc;
    }
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_POLL | MHD_USE_ERROR_LOG | MHD_USE_ITC;
    if (is_v6) {
        flags |= MHD_USE_IPv6;
    }
    h->mhd = MHD_start_daemon(
        flags, 0, NULL, NULL, on_access, h, MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, NULL,
        MHD_OPTION_LISTEN_SOCKET, (MHD_socket)h->listen_fd, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)POOL_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)(opts->idle_timeout_s ? opts->idle_timeout_s : 60), MHD_OPTION_CONNECTION_LIMIT,
        max_connections(h) + connection_headroom(h),
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, h, MHD_OPTION_URI_LOG_CALLBACK, on_uri, h,
        MHD_OPTION_UNESCAPE_CALLBACK, no_unescape, NULL, MHD_OPTION_NOTIFY_COMPLETED, on_completed,
        h, MHD_OPTION_END);
    if (!h->mhd) {
        close(h->listen_fd);
        http_free(h);
        return dg_error_set(err, DG_INTERNAL, "libmicrohttpd could not start on %s", opts->listen);
    }
    if (pthread_create(&h->watchdog, NULL, watchdog_main, h) != 0) {
        MHD_stop_daemon(h->mhd);
        http_free(h);
        return dg_error_set(err, DG_INTERNAL, "cannot start the connection watchdog");
    }
    h->has_watchdog = true;
    char host[256];
    int port_ignored;
    dg_parse_listen(opts->listen, host, sizeof host, &port_ignored);
    const char *shown = host[0] ? host : "0.0.0.0";
    bool bracket = strchr(shown, ':') != NULL;
    DG_LOGI("http", "listening on http://%s%s%s:%d", bracket ? "[" : "", shown, bracket ? "]" : "",
            h->port);
    *out = h;
    return DG_OK;
}

int dg_http_port(const dg_http_t *h)
{
    return h->port;
}

void dg_http_quiesce(dg_http_t *h)
{
    if (h && !h->quiesced) {
        h->quiesced = true;
        MHD_socket fd = MHD_quiesce_daemon(h->mhd);
        if (fd != MHD_INVALID_SOCKET) {
            close(fd); /* after quiescing, the socket is ours */
            h->listen_fd = -1;
        }
    }
}

unsigned dg_http_inflight(dg_http_t *h)
{
    return h ? atomic_load(&h->inflight) : 0;
}

void dg_http_stop(dg_http_t *h)
{
    if (!h) {
        return;
    }
    if (h->has_watchdog) {
        pthread_mutex_lock(&h->mu);
        h->is_stopping = true;
        pthread_cond_signal(&h->cv);
        pthread_mutex_unlock(&h->mu);
        pthread_join(h->watchdog, NULL);
    }
    MHD_stop_daemon(h->mhd); /* closes the listen socket unless quiesced */
    http_free(h);
}
