/* The HTTP front: libmicrohttpd glue (daemon, typed requests, responses) and the pure parsers
 * it is built on (request target, percent-decoding, query strings, routing, output format
 * negotiation, error bodies). The parsers take untrusted bytes and never trust a NUL; they
 * have fuzz targets (fuzz/fuzz_http_request.c).
 *
 * Threads: the daemon runs one thread per connection (DESIGN §3). A dg_http_req_t is confined
 * to its connection's thread; handlers may block (they wait for engine frames). A stream's
 * read and free callbacks run on the connection's thread too. dg_http_t functions may be called
 * from any thread. */
#ifndef DG_HTTP_H
#define DG_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "codec/codec.h"
#include "core/buf.h"
#include "core/rc.h"
#include "core/str.h"
#include "enc/enc.h"

/* ---- methods ------------------------------------------------------------------------ */

typedef enum dg_http_method {
    DG_HTTP_OTHER = 0,
    DG_HTTP_GET,
    DG_HTTP_HEAD,
    DG_HTTP_POST,
    DG_HTTP_PUT,
    DG_HTTP_DELETE,
    DG_HTTP_PATCH,
    DG_HTTP_OPTIONS,
} dg_http_method_t;

/* Bit of a method in a route's method mask. */
#define DG_HTTP_M(m) (1u << (unsigned)(m))

/* Parses a method token (case-sensitive, as HTTP says); DG_HTTP_OTHER when unknown. */
dg_http_method_t dg_http_method_parse(const char *s);
/* "GET", ...; "OTHER" for DG_HTTP_OTHER. */
const char *dg_http_method_name(dg_http_method_t m);

/* ---- request target ---------------------------------------------------------------- */

#define DG_HTTP_MAX_SEGMENTS 16
#define DG_HTTP_MAX_PATH 4096
#define DG_HTTP_MAX_ARGS 64

/* A decoded path: segments are NUL-terminated and point into buf. Self-contained (no heap). */
typedef struct dg_http_path {
    size_t n;
    const char *seg[DG_HTTP_MAX_SEGMENTS];
    size_t seg_len[DG_HTTP_MAX_SEGMENTS];
    char buf[DG_HTTP_MAX_PATH + DG_HTTP_MAX_SEGMENTS];
} dg_http_path_t;

/* Query arguments in request order, decoded (`+` is a space); keys and values are
 * NUL-terminated and owned by the struct (free with dg_http_args_free). */
typedef struct dg_http_arg {
    const char *key;
    const char *value;
} dg_http_arg_t;

typedef struct dg_http_args {
    size_t n;
    dg_http_arg_t a[DG_HTTP_MAX_ARGS];
    char *mem_;
} dg_http_args_t;

typedef struct dg_http_target {
    dg_http_path_t path;
    dg_http_args_t args;
} dg_http_target_t;

/* Decodes %XX escapes of in[0..len) into out (room for len + 1 bytes), and `+` as a space when
 * is_form. False on a malformed escape or a decoded NUL. */
bool dg_http_pct_decode(const char *in, size_t len, bool is_form, char *out, size_t *out_len);
/* Splits an absolute path ("/a/b%20c", no query) into decoded segments. "/" has none; a single
 * trailing slash is ignored. Dot segments and encoded '/' are never resolved: they stay data
 * inside their segment, so they cannot match a literal route segment and a captured name holding
 * them fails the handler's name check (an unknown database, not a path). DG_BAD_REQUEST: not
 * starting with '/', bad escape, decoded NUL; DG_URI_TOO_LONG: longer than DG_HTTP_MAX_PATH or
 * more than DG_HTTP_MAX_SEGMENTS segments. err says why. */
dg_rc_t dg_http_path_parse(const char *raw, size_t len, dg_http_path_t *out, dg_error_t *err);
/* Parses a query string ("a=1&b=x+y"); empty pairs are skipped, a key without '=' has the
 * value "". DG_BAD_REQUEST: bad escape, NUL, more than DG_HTTP_MAX_ARGS pairs. DG_NOMEM.
 * *out is always initialised (free it even on error). */
dg_rc_t dg_http_args_parse(const char *qs, size_t len, dg_http_args_t *out, dg_error_t *err);
void dg_http_args_free(dg_http_args_t *a);
/* First value of key, or NULL; *out_count (may be NULL) gets the number of occurrences. */
const char *dg_http_args_get(const dg_http_args_t *a, const char *key, size_t *out_count);
/* Parses a request target "PATH[?QUERY]" into path and args (errors as above). *out must be
 * released with dg_http_target_free even on error. */
dg_rc_t dg_http_target_parse(const char *uri, size_t len, dg_http_target_t *out, dg_error_t *err);
void dg_http_target_free(dg_http_target_t *t);

/* ---- output formats ---------------------------------------------------------------- */

/* Picks the response format: `format_arg` (a ?format= or body value; NULL when absent) wins,
 * else the Accept header (NULL or empty = json; q-values honoured, `*` + `/` + `*` and
 * application/`*` mean json, text/`*` means csv). DG_NOT_ACCEPTABLE for unknown names, for an
 * Accept that names nothing we produce, and for formats not available yet (parquet, arrow). */
dg_rc_t dg_http_negotiate(const char *format_arg, const char *accept, dg_format_t *out,
                          dg_error_t *err);
/* Picks the response Content-Encoding from an Accept-Encoding header (RFC 9110 §12.5.3):
 * q-values honoured, `*` covers codings not named, identity stays acceptable unless excluded
 * (`identity;q=0`, or `*;q=0` without identity named). On equal weight the server prefers zstd,
 * br, gzip, then identity. A NULL or empty header means identity. DG_NOT_ACCEPTABLE when
 * nothing duckgate produces is acceptable. */
dg_rc_t dg_http_negotiate_encoding(const char *accept_encoding, dg_codec_id_t *out,
                                   dg_error_t *err);
/* Name of a format as the frame protocol spells it ("json", "ndjson", "csv", ...). */
const char *dg_http_format_name(dg_format_t f);

/* ---- routing ----------------------------------------------------------------------- */

typedef struct dg_http_req dg_http_req_t;
/* A handler answers with exactly one dg_http_respond* call or dg_http_drop; if it returns
 * without either, the client gets a 500. ctx is dg_http_opts_t.ctx. */
typedef void (*dg_http_handler_fn)(dg_http_req_t *req, void *ctx);

typedef struct dg_http_route {
    const char *pattern; /* "/api/query/{db}": literal segments and {name} captures */
    unsigned methods;    /* DG_HTTP_M(DG_HTTP_GET) | ...; GET also admits HEAD */
    dg_http_handler_fn fn;
} dg_http_route_t;

#define DG_HTTP_MAX_CAPTURES 4

typedef struct dg_http_match {
    const dg_http_route_t *route;
    size_t n_caps;
    dg_str_t cap[DG_HTTP_MAX_CAPTURES]; /* decoded captured segments (views into the path) */
    unsigned allow;                     /* methods of routes whose pattern matched */
} dg_http_match_t;

/* Finds the first route whose pattern and method match. DG_NOT_FOUND when no pattern matches;
 * DG_METHOD_NOT_ALLOWED when patterns matched but not the method (out->allow lists them). */
dg_rc_t dg_http_route_match(const dg_http_route_t *routes, size_t n, dg_http_method_t m,
                            const dg_http_path_t *path, dg_http_match_t *out);
/* Writes the Allow header value for a method mask ("GET, HEAD, POST") into buf. */
void dg_http_allow_string(unsigned methods, char *buf, size_t cap);

/* ---- responses --------------------------------------------------------------------- */

/* Appends {"error":{"code":..,"message":..,"query_id":..}} (query_id only when not NULL;
 * message NULL = the rc table's message). */
dg_rc_t dg_http_error_json(dg_buf_t *out, dg_rc_t rc, const char *message, const char *query_id);

typedef struct dg_http_header {
    const char *name;
    const char *value;
} dg_http_header_t;

/* A request as handlers see it. Everything is borrowed from the connection and valid until
 * the handler returns (stream callbacks must copy what they need). */
struct dg_http_req {
    dg_http_method_t method;
    dg_http_target_t target;     /* decoded path + query args */
    dg_http_match_t match;       /* route and captures */
    dg_buf_t body;               /* full body, capped at max_body_bytes */
    char id[65];                 /* request id: X-Request-Id (trusted, well-formed) or random */
    int64_t start_ms;            /* monotonic arrival time */
    char principal[48];          /* who: "key:<id>", or "ip" for anonymous callers (key rate
                                    limits by client IP then); "" until the server's auth gate
                                    (dg_server__authorize, first thing in gated handlers) ran */
    struct dg_http_conn_ *conn_; /* private */
};

/* True when s is a well-formed request id: 1..64 bytes of [A-Za-z0-9._-]. */
bool dg_http_request_id_valid(const char *s);

/* A request header (case-insensitive name), or NULL. */
const char *dg_http_req_header(dg_http_req_t *r, const char *name);
/* The client's socket, to notice a hang-up while waiting; -1 when unknown. */
int dg_http_req_client_fd(dg_http_req_t *r);
/* The TCP peer's address as numeric text ("127.0.0.1", "::1") in out (46 bytes are enough);
 * false when unknown (out is then ""). */
bool dg_http_req_peer(dg_http_req_t *r, char *out, size_t cap);
/* Every occurrence of a request header (case-insensitive name), joined by ',' in request order,
 * in out. When they do not fit, the left-most comma-separated elements are dropped so that the
 * right-most ones, the part a proxy chain appends, are kept. False when the header is absent
 * (out is then ""). */
bool dg_http_req_header_all(dg_http_req_t *r, const char *name, char *out, size_t cap);

/* Answers with a complete body (copied). Every response also gets `Cache-Control: no-store`,
 * unless headers hold a Cache-Control of their own (then that one alone).
 * DG_NOMEM/DG_INTERNAL when libmicrohttpd refused (the connection is then closed). */
dg_rc_t dg_http_respond(dg_http_req_t *r, int status, const char *content_type, const void *body,
                        size_t len, const dg_http_header_t *headers, size_t n_headers);
/* Answers with the JSON error body and the status of rc; adds Retry-After when
 * retry_after_s > 0 (and 1 s for 503s without a hint), X-Query-Id when query_id is set and
 * Allow for 405s (from r->match.allow). */
dg_rc_t dg_http_respond_error(dg_http_req_t *r, dg_rc_t rc, const char *message,
                              const char *query_id, int retry_after_s);
/* dg_http_respond_error with a Server-Timing header (NULL or "" = the http layer's own
 * `total`, as on every error answer). */
dg_rc_t dg_http_respond_error_timed(dg_http_req_t *r, dg_rc_t rc, const char *message,
                                    const char *query_id, int retry_after_s,
                                    const char *server_timing);

/* Stream callbacks: read copies at most max bytes into buf and returns how many (> 0), or
 * DG_HTTP_STREAM_END at the end, or DG_HTTP_STREAM_ERROR to abort the body (the connection is
 * closed without the terminating chunk, so the client can tell). free runs exactly once. */
#define DG_HTTP_STREAM_END ((ssize_t)-1)
#define DG_HTTP_STREAM_ERROR ((ssize_t)-2)
typedef ssize_t (*dg_http_stream_read_fn)(void *ctx, char *buf, size_t max);
typedef void (*dg_http_stream_free_fn)(void *ctx);

/* Answers with a body of unknown length (chunked), pulled from rd when the socket has room.
 * Takes ownership of ctx: fr(ctx) runs exactly once, also when this call fails. */
dg_rc_t dg_http_respond_stream(dg_http_req_t *r, int status, const char *content_type,
                               const dg_http_header_t *headers, size_t n_headers,
                               dg_http_stream_read_fn rd, dg_http_stream_free_fn fr, void *ctx);
/* Closes the connection without an answer (the client is gone anyway). */
void dg_http_drop(dg_http_req_t *r);

/* ---- daemon ------------------------------------------------------------------------ */

typedef struct dg_http dg_http_t;

/* Access log formats (one line per request, written when the request is complete). */
typedef enum {
    DG_HTTP_LOG_OFF = 0,
    DG_HTTP_LOG_TEXT,
    DG_HTTP_LOG_JSON,
    DG_HTTP_LOG_COMBINED, /* Apache/NCSA combined, plus the request id */
} dg_http_log_fmt_t;

/* Called once per request when it is complete (after the body was sent or the connection
 * dropped), on the connection's thread: status is the answered status (499 when none was sent),
 * duration_s the time since arrival, is_aborted true when the transfer did not complete. */
typedef void (*dg_http_complete_fn)(const dg_http_req_t *req, int status, double duration_s,
                                    bool is_aborted, void *ctx);

typedef struct dg_http_opts {
    const char *listen;            /* "host:port" (config listen syntax) */
    uint64_t max_body_bytes;       /* bodies above it get 413 BODY_TOO_LARGE */
    const dg_http_route_t *routes; /* borrowed; must outlive the daemon */
    size_t n_routes;
    void *ctx;                       /* passed to handlers */
    unsigned idle_timeout_s;         /* idle connection timeout, and the longest a response
                                        block may wait for the client to take it; 0 = 60 */
    unsigned max_connections;        /* 0 = 1024 */
    dg_http_complete_fn on_complete; /* may be NULL; gets ctx */
    dg_http_log_fmt_t access_log;    /* DG_HTTP_LOG_OFF (0) = no access log */
    int access_log_fd;               /* where access lines go when access_log is on */
    bool trust_request_id;           /* reuse a well-formed client X-Request-Id when the TCP
                                        peer is in trusted_proxies */
    const char *trusted_proxies;     /* comma-separated CIDRs; NULL/"" = none; parsed at start */
    unsigned max_headers;            /* header fields per request, more get 431; 0 = 100 */
    uint64_t max_header_bytes;       /* names + values + 4 per field, more get 431; 0 = 64 KiB */
    uint64_t max_url_bytes;          /* request target bytes, more get 414; 0 = 64 KiB */
    unsigned header_timeout_s;       /* a request head must arrive within it; 0 = 10 */
    unsigned request_timeout_s;      /* head + body must arrive within it; 0 = 60 */
    unsigned connection_max_s;       /* older connections close after a response; 0 = none */
    const char *cors_origins;        /* comma list, `*`, or NULL/"off" = no CORS; copied */
    bool cors_credentials;           /* Access-Control-Allow-Credentials: true */
} dg_http_opts_t;

/* Binds the listen address and starts serving. Logs `listening on http://HOST:PORT` with the
 * bound port. DG_IO (bind/listen failed; message names the address), DG_CONFIG (bad listen
 * syntax or trusted_proxies), DG_NOMEM, DG_INTERNAL (libmicrohttpd refused). */
dg_rc_t dg_http_start(const dg_http_opts_t *opts, dg_http_t **out, dg_error_t *err);
/* The bound port. */
int dg_http_port(const dg_http_t *h);
/* Stops accepting new connections (existing ones continue). Idempotent. */
void dg_http_quiesce(dg_http_t *h);
/* Requests currently being handled or answered. */
unsigned dg_http_inflight(dg_http_t *h);
/* Closes every connection, waits for their threads and frees h. NULL is allowed. */
void dg_http_stop(dg_http_t *h);

#endif
