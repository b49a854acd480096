/* Error codes: one X-macro table gives every code its stable number, its wire name, the HTTP
 * status a client sees and a default message. Numbers never change; add new codes at the end.
 * Thread-safe: everything here is immutable. */
#ifndef DG_RC_H
#define DG_RC_H

#include <stdarg.h>
#include <stddef.h>

/*        NAME                 num  http  message */
#define DG_RC_TABLE(X)                                                                             \
    X(OK, 0, 200, "ok")                                                                            \
    X(NOMEM, 1, 500, "out of memory")                                                              \
    X(INTERNAL, 2, 500, "internal error")                                                          \
    X(IO, 3, 500, "input/output error")                                                            \
    X(BAD_REQUEST, 4, 400, "bad request")                                                          \
    X(BAD_JSON, 5, 400, "request body is not valid JSON")                                          \
    X(MISSING_SQL, 6, 400, "the request has no sql")                                               \
    X(BAD_PARAMS, 7, 400, "bad query parameters")                                                  \
    X(SQL_ERROR, 8, 400, "the SQL could not be parsed or bound")                                   \
    X(MULTIPLE_STATEMENTS, 9, 400, "exactly one SQL statement is allowed")                         \
    X(NOT_READ_ONLY, 10, 403, "the statement is not allowed on the read-only path")                \
    X(FORBIDDEN, 11, 403, "forbidden")                                                             \
    X(UNAUTHORIZED, 12, 401, "authentication required")                                            \
    X(NOT_FOUND, 13, 404, "not found")                                                             \
    X(UNKNOWN_DB, 14, 404, "unknown database")                                                     \
    X(METHOD_NOT_ALLOWED, 15, 405, "method not allowed")                                           \
    X(TIMEOUT, 16, 504, "the query ran past its deadline")                                         \
    X(BODY_TOO_LARGE, 17, 413, "the request body is too large")                                    \
    X(SQL_TOO_LARGE, 18, 413, "the SQL text is too large")                                         \
    X(RESULT_TOO_LARGE, 19, 413, "the result is too large for one JSON document")                  \
    X(OVERLOADED, 20, 503, "the server is overloaded; retry later")                                \
    X(DRAINING, 21, 503, "the server is shutting down")                                            \
    X(ENGINE_FAILED, 22, 502, "the query engine failed; retry")                                    \
    X(RATE_LIMITED, 23, 429, "too many requests")                                                  \
    X(CANCELLED, 24, 409, "the query was cancelled")                                               \
    X(CLIENT_GONE, 25, 499, "the client went away")                                                \
    X(NOT_ACCEPTABLE, 26, 406, "no acceptable response format")                                    \
    X(CONFIG, 27, 500, "configuration error")                                                      \
    X(UNSUPPORTED_MEDIA, 28, 415, "unsupported request content type")                              \
    X(RESOURCE_EXHAUSTED, 29, 400, "the query exceeded a resource limit")                          \
    X(URI_TOO_LONG, 30, 414, "the request URL is too long")                                        \
    X(HEADERS_TOO_LARGE, 31, 431, "the request headers are too large")                             \
    X(NOT_READY, 32, 503, "the server is not ready")                                               \
    X(PROTOCOL, 33, 502, "engine protocol error")                                                  \
    X(READ_ONLY_DATABASE, 34, 409, "the database is served read-only")                             \
    X(BAD_SNAPSHOT, 35, 422, "the new database file cannot be served; the old one keeps serving")  \
    X(TOO_MANY_CONCURRENT, 36, 429, "too many queries running at once for this caller")            \
    X(INVALID_PARAMS, 37, 422, "invalid parameters for the named query")                           \
    X(NO_STAGING, 38, 409, "the database has no staging copy; POST /api/admin/stage/{db} first")   \
    X(STAGING_BUSY, 39, 409, "a job is writing the staging copy of the database")                  \
    X(TOO_MANY_HEADERS, 40, 431, "the request has too many header fields")                         \
    X(REQUEST_TIMEOUT, 41, 408, "the request did not arrive in time")                              \
    X(PRECONDITION_FAILED, 42, 412, "a precondition of the request does not hold")           \
    X(TOO_MANY_CONNECTIONS, 43, 503, "too many open connections; retry later")

typedef enum {
#define DG_RC_ENUM(name, num, http, msg) DG_##name = num,
    DG_RC_TABLE(DG_RC_ENUM)
#undef DG_RC_ENUM
} dg_rc_t;

/* Wire name of a code ("TIMEOUT"); "INTERNAL" for unknown numbers. Never NULL. */
const char *dg_rc_name(dg_rc_t rc);
/* HTTP status for a code; 500 for unknown numbers. */
int dg_rc_http_status(dg_rc_t rc);
/* Default human message for a code. Never NULL. */
const char *dg_rc_message(dg_rc_t rc);
/* Code for a wire name, or DG_INTERNAL when the name is unknown. */
dg_rc_t dg_rc_from_name(const char *name);

/* First-error-wins error record passed down by boundary functions. */
typedef struct dg_error {
    dg_rc_t rc;
    char msg[512];
} dg_error_t;

/* Resets err to DG_OK with an empty message. */
void dg_error_clear(dg_error_t *err);
/* Records rc and a printf-style message unless err already holds an error (first error wins).
 * err may be NULL. Returns rc so callers can write `return dg_error_set(err, DG_X, ...)`. */
dg_rc_t dg_error_set(dg_error_t *err, dg_rc_t rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
dg_rc_t dg_error_setv(dg_error_t *err, dg_rc_t rc, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/* Defensive checks kept in release builds (SQLite's ALWAYS/NEVER): evaluate to the condition,
 * and in debug builds abort when the "impossible" happens. */
#ifdef NDEBUG
#define DG_ALWAYS(x) (x)
#define DG_NEVER(x) (x)
#else
#include <assert.h>
#define DG_ALWAYS(x) ((x) ? 1 : (assert(0 && #x), 0))
#define DG_NEVER(x) ((x) ? (assert(0 && #x), 1) : 0)
#endif

#endif
