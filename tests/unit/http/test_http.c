/* Unit tests for the pure parts of src/http: path splitting and decoding, query strings,
 * routing, Accept/format negotiation, error bodies and the query-request parser (every error
 * code it can return); the request-limit codes and the daemon's trusted_proxies check. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "http/http.h"
#include "http/http_query.h"

/* ---- paths ---------------------------------------------------------------------------- */

typedef struct {
    const char *raw;
    dg_rc_t rc;
    size_t n;
    const char *segs[4];
} path_case;

static void test_path_parse(void **state)
{
    (void)state;
    static const path_case cases[] = {
        {"/", DG_OK, 0, {NULL}},
        {"/health", DG_OK, 1, {"health"}},
        {"/health/", DG_OK, 1, {"health"}},
        {"/api/query/db1", DG_OK, 3, {"api", "query", "db1"}},
        {"/a%20b/c%2e", DG_OK, 2, {"a b", "c."}},
        {"/a+b", DG_OK, 1, {"a+b"}},
        {"/a//b", DG_OK, 3, {"a", "", "b"}},
        {"/%C3%A9", DG_OK, 1, {"\xc3\xa9"}},
        {"", DG_BAD_REQUEST, 0, {NULL}},
        {"health", DG_BAD_REQUEST, 0, {NULL}},
        /* Dot segments and encoded slashes are kept as data, never resolved. */
        {"/a/../b", DG_OK, 3, {"a", "..", "b"}},
        {"/a/%2e%2E/b", DG_OK, 3, {"a", "..", "b"}},
        {"/./a", DG_OK, 2, {".", "a"}},
        {"/a%2fb", DG_OK, 1, {"a/b"}},
        {"/a%00b", DG_BAD_REQUEST, 0, {NULL}},
        {"/a%zz", DG_BAD_REQUEST, 0, {NULL}},
        {"/a%2", DG_BAD_REQUEST, 0, {NULL}},
        {"/a%", DG_BAD_REQUEST, 0, {NULL}},
        {"/1/2/3/4/5/6/7/8/9/10/11/12/13/14/15/16/17", DG_URI_TOO_LONG, 0, {NULL}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        dg_http_path_t p;
        dg_error_t err;
        dg_error_clear(&err);
        dg_rc_t rc = dg_http_path_parse(cases[i].raw, strlen(cases[i].raw), &p, &err);
        if (rc != cases[i].rc) {
            fail_msg("\"%s\": rc %s, want %s", cases[i].raw, dg_rc_name(rc),
                     dg_rc_name(cases[i].rc));
        }
        if (rc != DG_OK) {
            assert_true(err.msg[0] != '\0');
            continue;
        }
        assert_int_equal(p.n, cases[i].n);
        for (size_t k = 0; k < p.n; k++) {
            assert_string_equal(p.seg[k], cases[i].segs[k]);
            assert_int_equal(p.seg_len[k], strlen(cases[i].segs[k]));
        }
    }
    /* A NUL byte in the raw bytes stays inside the segment and is caught by routing; a path
     * longer than the cap is refused before any decoding. */
    char longp[DG_HTTP_MAX_PATH + 10];
    memset(longp, 'a', sizeof longp);
    longp[0] = '/';
    dg_http_path_t p;
    assert_int_equal(dg_http_path_parse(longp, sizeof longp, &p, NULL), DG_URI_TOO_LONG);
}

static void test_args_parse(void **state)
{
    (void)state;
    dg_http_args_t a;
    dg_error_t err;
    dg_error_clear(&err);
    const char *qs = "sql=SELECT+1%2B1&&format=csv&flag&x=%E2%82%AC&sql=again&e=";
    assert_int_equal(dg_http_args_parse(qs, strlen(qs), &a, &err), DG_OK);
    assert_int_equal(a.n, 6);
    size_t count;
    assert_string_equal(dg_http_args_get(&a, "sql", &count), "SELECT 1+1");
    assert_int_equal(count, 2);
    assert_string_equal(dg_http_args_get(&a, "format", NULL), "csv");
    assert_string_equal(dg_http_args_get(&a, "flag", NULL), "");
    assert_string_equal(dg_http_args_get(&a, "x", NULL), "\xe2\x82\xac");
    assert_string_equal(dg_http_args_get(&a, "e", NULL), "");
    assert_null(dg_http_args_get(&a, "missing", &count));
    assert_int_equal(count, 0);
    dg_http_args_free(&a);

    static const char *const bad[] = {"a=%", "a=%0", "a=%GG", "a=%00", "%00=1", "a%zz=1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        dg_error_clear(&err);
        assert_int_equal(dg_http_args_parse(bad[i], strlen(bad[i]), &a, &err), DG_BAD_REQUEST);
        dg_http_args_free(&a);
    }
    char many[1024];
    size_t mlen = 0;
    for (int i = 0; i < DG_HTTP_MAX_ARGS + 1; i++) {
        memcpy(many + mlen, "a=1&", 4);
        mlen += 4;
    }
    many[mlen] = '\0';
    assert_int_equal(dg_http_args_parse(many, strlen(many), &a, NULL), DG_BAD_REQUEST);
    dg_http_args_free(&a);
    assert_int_equal(dg_http_args_parse("", 0, &a, NULL), DG_OK);
    assert_int_equal(a.n, 0);
    dg_http_args_free(&a);
}

static void test_target_parse(void **state)
{
    (void)state;
    dg_http_target_t t;
    const char *u = "/api/query/db?sql=select%201&format=ndjson";
    assert_int_equal(dg_http_target_parse(u, strlen(u), &t, NULL), DG_OK);
    assert_int_equal(t.path.n, 3);
    assert_string_equal(dg_http_args_get(&t.args, "sql", NULL), "select 1");
    dg_http_target_free(&t);
    u = "/x?";
    assert_int_equal(dg_http_target_parse(u, strlen(u), &t, NULL), DG_OK);
    assert_int_equal(t.args.n, 0);
    dg_http_target_free(&t);
    u = "/x%00/y?a=1";
    assert_int_equal(dg_http_target_parse(u, strlen(u), &t, NULL), DG_BAD_REQUEST);
    dg_http_target_free(&t);
}

/* ---- routing --------------------------------------------------------------------------- */

static void h_dummy(dg_http_req_t *r, void *ctx)
{
    (void)r;
    (void)ctx;
}

static const dg_http_route_t routes[] = {
    {"/health", DG_HTTP_M(DG_HTTP_GET), h_dummy},
    {"/api/databases", DG_HTTP_M(DG_HTTP_GET), h_dummy},
    {"/api/databases/{db}", DG_HTTP_M(DG_HTTP_GET), h_dummy},
    {"/api/query/{db}", DG_HTTP_M(DG_HTTP_GET) | DG_HTTP_M(DG_HTTP_POST), h_dummy},
};

typedef struct {
    const char *method, *path;
    dg_rc_t rc;
    int route;         /* index into routes, -1 none */
    const char *cap;   /* first capture */
    const char *allow; /* Allow header for 405 */
} route_case;

static void test_routing(void **state)
{
    (void)state;
    static const route_case cases[] = {
        {"GET", "/health", DG_OK, 0, NULL, NULL},
        {"HEAD", "/health", DG_OK, 0, NULL, NULL},
        {"POST", "/health", DG_METHOD_NOT_ALLOWED, -1, NULL, "GET, HEAD"},
        {"GET", "/api/databases", DG_OK, 1, NULL, NULL},
        {"GET", "/api/databases/sales", DG_OK, 2, "sales", NULL},
        {"GET", "/api/query/my%20db", DG_OK, 3, "my db", NULL},
        {"POST", "/api/query/x", DG_OK, 3, "x", NULL},
        {"DELETE", "/api/query/x", DG_METHOD_NOT_ALLOWED, -1, NULL, "GET, HEAD, POST"},
        {"BREW", "/api/query/x", DG_METHOD_NOT_ALLOWED, -1, NULL, "GET, HEAD, POST"},
        {"GET", "/api/query", DG_NOT_FOUND, -1, NULL, NULL},
        {"GET", "/api/query/x/y", DG_NOT_FOUND, -1, NULL, NULL},
        {"GET", "/api/query//", DG_NOT_FOUND, -1, NULL, NULL},
        {"GET", "/", DG_NOT_FOUND, -1, NULL, NULL},
        {"GET", "/Health", DG_NOT_FOUND, -1, NULL, NULL},
        {"GET", "/api/x/../health", DG_NOT_FOUND, -1, NULL, NULL},
        {"GET", "/api/query/..", DG_OK, 3, "..", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const route_case *c = &cases[i];
        dg_http_path_t p;
        assert_int_equal(dg_http_path_parse(c->path, strlen(c->path), &p, NULL), DG_OK);
        dg_http_match_t m;
        dg_rc_t rc = dg_http_route_match(routes, sizeof routes / sizeof routes[0],
                                         dg_http_method_parse(c->method), &p, &m);
        if (rc != c->rc) {
            fail_msg("%s %s: %s", c->method, c->path, dg_rc_name(rc));
        }
        if (c->route >= 0) {
            assert_ptr_equal(m.route, &routes[c->route]);
        }
        if (c->cap) {
            assert_int_equal(m.n_caps, 1);
            assert_true(dg_str_eq_c(m.cap[0], c->cap));
        }
        if (c->allow) {
            char allow[64];
            dg_http_allow_string(m.allow, allow, sizeof allow);
            assert_string_equal(allow, c->allow);
        }
    }
    assert_int_equal(dg_http_method_parse("get"), DG_HTTP_OTHER);
    assert_string_equal(dg_http_method_name(DG_HTTP_DELETE), "DELETE");
}

/* ---- negotiation ----------------------------------------------------------------------- */

typedef struct {
    const char *format, *accept;
    dg_rc_t rc;
    dg_format_t want;
} neg_case;

static void test_negotiate(void **state)
{
    (void)state;
    static const neg_case cases[] = {
        {NULL, NULL, DG_OK, DG_FMT_JSON},
        {NULL, "", DG_OK, DG_FMT_JSON},
        {NULL, "*/*", DG_OK, DG_FMT_JSON},
        {NULL, "application/json", DG_OK, DG_FMT_JSON},
        {NULL, "application/x-ndjson", DG_OK, DG_FMT_NDJSON},
        {NULL, "application/ndjson", DG_OK, DG_FMT_NDJSON},
        {NULL, "text/csv", DG_OK, DG_FMT_CSV},
        {NULL, "TEXT/CSV; charset=utf-8", DG_OK, DG_FMT_CSV},
        {NULL, "text/tab-separated-values", DG_OK, DG_FMT_TSV},
        {NULL, "text/*", DG_OK, DG_FMT_CSV},
        {NULL, "text/csv;q=0.5, application/x-ndjson;q=0.9", DG_OK, DG_FMT_NDJSON},
        {NULL, "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", DG_OK,
         DG_FMT_JSON},
        {NULL, "application/vnd.apache.parquet, text/csv;q=0.1", DG_OK, DG_FMT_PARQUET},
        {NULL, "text/csv;q=0, application/json", DG_OK, DG_FMT_JSON},
        {NULL, "text/csv;q=abc", DG_NOT_ACCEPTABLE, DG_FMT_JSON},
        {NULL, "text/html", DG_NOT_ACCEPTABLE, DG_FMT_JSON},
        {NULL, "application/vnd.apache.parquet", DG_OK, DG_FMT_PARQUET},
        {NULL, "application/vnd.apache.arrow.stream", DG_OK, DG_FMT_ARROW},
        {"csv", "application/json", DG_OK, DG_FMT_CSV},
        {"ndjson", NULL, DG_OK, DG_FMT_NDJSON},
        {"tsv", NULL, DG_OK, DG_FMT_TSV},
        {"json", "text/html", DG_OK, DG_FMT_JSON},
        {"parquet", NULL, DG_OK, DG_FMT_PARQUET},
        {"arrow", NULL, DG_OK, DG_FMT_ARROW},
        {"xml", NULL, DG_NOT_ACCEPTABLE, DG_FMT_JSON},
        {"", NULL, DG_NOT_ACCEPTABLE, DG_FMT_JSON},
        {"JSON", NULL, DG_NOT_ACCEPTABLE, DG_FMT_JSON},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        dg_format_t f;
        dg_error_t err;
        dg_error_clear(&err);
        dg_rc_t rc = dg_http_negotiate(cases[i].format, cases[i].accept, &f, &err);
        if (rc != cases[i].rc || (rc == DG_OK && f != cases[i].want)) {
            fail_msg("case %zu (%s, %s): rc=%s f=%d", i, cases[i].format ? cases[i].format : "-",
                     cases[i].accept ? cases[i].accept : "-", dg_rc_name(rc), (int)f);
        }
    }
    assert_string_equal(dg_http_format_name(DG_FMT_NDJSON), "ndjson");
    assert_string_equal(dg_http_format_name(DG_FMT_TSV), "tsv");
}

static void test_negotiate_encoding(void **state)
{
    (void)state;
    static const struct {
        const char *header;
        dg_rc_t rc;
        dg_codec_id_t want;
    } cases[] = {
        {NULL, DG_OK, DG_CODEC_IDENTITY},
        {"", DG_OK, DG_CODEC_IDENTITY},
        {"gzip", DG_OK, DG_CODEC_GZIP},
        {"GZip", DG_OK, DG_CODEC_GZIP},
        {"x-gzip", DG_OK, DG_CODEC_GZIP},
        {"br", DG_OK, DG_CODEC_BR},
        {"zstd", DG_OK, DG_CODEC_ZSTD},
        {"gzip, deflate, br, zstd", DG_OK, DG_CODEC_ZSTD}, /* server preference on ties */
        {"gzip, deflate, br", DG_OK, DG_CODEC_BR},
        {"gzip;q=1.0, br;q=0.8, zstd;q=0.5", DG_OK, DG_CODEC_GZIP},
        {"zstd;q=0, gzip;q=0.1", DG_OK, DG_CODEC_GZIP},
        {"*", DG_OK, DG_CODEC_ZSTD},
        {"*;q=0.5, zstd;q=0", DG_OK, DG_CODEC_BR},
        {"identity", DG_OK, DG_CODEC_IDENTITY},
        {"deflate, compress", DG_OK, DG_CODEC_IDENTITY}, /* identity stays acceptable */
        {"identity;q=0", DG_NOT_ACCEPTABLE, DG_CODEC_IDENTITY},
        {"*;q=0", DG_NOT_ACCEPTABLE, DG_CODEC_IDENTITY},
        {"deflate, *;q=0", DG_NOT_ACCEPTABLE, DG_CODEC_IDENTITY},
        {"gzip;q=0, identity;q=0", DG_NOT_ACCEPTABLE, DG_CODEC_IDENTITY},
        {"gzip;q=2", DG_OK, DG_CODEC_IDENTITY}, /* malformed q: ignored */
        {"gzip;q=abc, br", DG_OK, DG_CODEC_BR},
        {" br ; q=0.9 , gzip ; q=0.95 ", DG_OK, DG_CODEC_GZIP},
        {",,,;;;", DG_OK, DG_CODEC_IDENTITY},
        {"br;level=5", DG_OK, DG_CODEC_BR}, /* other parameters ignored */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        dg_codec_id_t c = DG_CODEC_COUNT_;
        dg_error_t err;
        dg_error_clear(&err);
        dg_rc_t rc = dg_http_negotiate_encoding(cases[i].header, &c, &err);
        if (rc != cases[i].rc || (rc == DG_OK && c != cases[i].want)) {
            fail_msg("Accept-Encoding \"%s\": rc=%d coding=%d, want rc=%d coding=%d",
                     cases[i].header ? cases[i].header : "(null)", rc, c, cases[i].rc,
                     cases[i].want);
        }
    }
}

static void test_error_json(void **state)
{
    (void)state;
    dg_buf_t b;
    dg_buf_init(&b, 0);
    assert_int_equal(dg_http_error_json(&b, DG_TIMEOUT, "took \"long\"", "abc"), DG_OK);
    assert_string_equal(b.p, "{\"error\":{\"code\":\"TIMEOUT\",\"message\":\"took "
                             "\\\"long\\\"\",\"query_id\":\"abc\"}}");
    dg_buf_reset(&b);
    assert_int_equal(dg_http_error_json(&b, DG_UNKNOWN_DB, NULL, NULL), DG_OK);
    assert_string_equal(b.p,
                        "{\"error\":{\"code\":\"UNKNOWN_DB\",\"message\":\"unknown database\"}}");
    dg_buf_free(&b);
}

/* The request-limit codes (numbers are wire-stable) and their JSON bodies. */
static void test_limit_codes(void **state)
{
    (void)state;
    assert_int_equal(DG_TOO_MANY_HEADERS, 40);
    assert_int_equal(DG_REQUEST_TIMEOUT, 41);
    assert_int_equal(dg_rc_http_status(DG_TOO_MANY_HEADERS), 431);
    assert_int_equal(dg_rc_http_status(DG_HEADERS_TOO_LARGE), 431);
    assert_int_equal(dg_rc_http_status(DG_REQUEST_TIMEOUT), 408);
    assert_int_equal(dg_rc_from_name("TOO_MANY_HEADERS"), DG_TOO_MANY_HEADERS);
    assert_int_equal(dg_rc_from_name("REQUEST_TIMEOUT"), DG_REQUEST_TIMEOUT);
    dg_buf_t b;
    dg_buf_init(&b, 0);
    assert_int_equal(dg_http_error_json(&b, DG_REQUEST_TIMEOUT, "late", NULL), DG_OK);
    assert_string_equal(b.p, "{\"error\":{\"code\":\"REQUEST_TIMEOUT\",\"message\":\"late\"}}");
    dg_buf_free(&b);
}

/* A bad trusted_proxies list is a configuration error, found before anything is bound. */
static void test_start_bad_proxies(void **state)
{
    (void)state;
    const char *bad[] = {"10.0.0.1/8", "nonsense", "10.0.0.0/33", "1.2.3.4,,"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        dg_http_opts_t o = {.listen = "127.0.0.1:0", .trusted_proxies = bad[i]};
        dg_http_t *h = (dg_http_t *)1;
        dg_error_t err;
        dg_error_clear(&err);
        assert_int_equal(dg_http_start(&o, &h, &err), DG_CONFIG);
        assert_null(h);
        assert_true(err.msg[0] != '\0');
    }
}

/* ---- query requests -------------------------------------------------------------------- */

static const dg_dbfile_t dbs[] = {{"sales", NULL, 1}, {"imdb", NULL, 2}};
static const dg_http_query_limits_t lim = {100, 30000, dbs, 2};

typedef struct {
    const char *db;
    const char *body;
    const char *accept;
    dg_rc_t rc;
} body_case;

static void test_query_body(void **state)
{
    (void)state;
    static const body_case cases[] = {
        {"sales", "{\"sql\":\"select 1\"}", NULL, DG_OK},
        {"sales", "{\"sql\":\"select $1\",\"params\":[1,\"a\",null]}", NULL, DG_OK},
        {"sales", "{\"sql\":\"select $x\",\"params\":{\"x\":1}}", NULL, DG_OK},
        {"sales", "{\"sql\":\"select 1\",\"params\":null}", NULL, DG_OK},
        {"sales", "{\"sql\":\"select 1\",\"format\":\"csv\"}", "application/json", DG_OK},
        {"nope", "{\"sql\":\"select 1\"}", NULL, DG_UNKNOWN_DB},
        {"../etc", "{\"sql\":\"select 1\"}", NULL, DG_UNKNOWN_DB},
        {"..", "{\"sql\":\"select 1\"}", NULL, DG_UNKNOWN_DB},
        {"sales/..", "{\"sql\":\"select 1\"}", NULL, DG_UNKNOWN_DB},
        {"", "{\"sql\":\"select 1\"}", NULL, DG_UNKNOWN_DB},
        {"sales", "", NULL, DG_BAD_JSON},
        {"sales", "{\"sql\":", NULL, DG_BAD_JSON},
        {"sales", "{\"sql\":\"a\",\"sql\":\"b\"}", NULL, DG_BAD_JSON},
        {"sales", "{\"sql\":\"a\\u0000b\"}", NULL, DG_BAD_REQUEST},
        {"sales", "[\"select 1\"]", NULL, DG_BAD_REQUEST},
        {"sales", "\"select 1\"", NULL, DG_BAD_REQUEST},
        {"sales", "{\"sql\":1}", NULL, DG_BAD_REQUEST},
        {"sales", "{\"sql\":\"select 1\",\"params\":\"x\"}", NULL, DG_BAD_PARAMS},
        {"sales", "{\"sql\":\"select 1\",\"params\":3}", NULL, DG_BAD_PARAMS},
        {"sales", "{\"sql\":\"select 1\",\"timeout_ms\":\"5\"}", NULL, DG_BAD_REQUEST},
        {"sales", "{\"sql\":\"select 1\",\"timeout_ms\":1.5}", NULL, DG_BAD_REQUEST},
        {"sales", "{\"sql\":\"select 1\",\"timeout_ms\":0}", NULL, DG_BAD_REQUEST},
        {"sales", "{\"sql\":\"select 1\",\"timeout_ms\":-3}", NULL, DG_BAD_REQUEST},
        {"sales", "{\"sql\":\"select 1\",\"format\":5}", NULL, DG_BAD_REQUEST},
        {"sales", "{\"sql\":\"select 1\",\"extra\":5}", NULL, DG_BAD_REQUEST},
        {"sales", "{}", NULL, DG_MISSING_SQL},
        {"sales", "{\"sql\":\"\"}", NULL, DG_MISSING_SQL},
        {"sales", "{\"sql\":\"  \\n \"}", NULL, DG_MISSING_SQL},
        {"sales", "{\"sql\":null}", NULL, DG_BAD_REQUEST},
        {"sales",
         "{\"sql\":\"select 1234567890123456789012345678901234567890123456789012345678901234567890"
         "1234567890123456789012345678901234567890\"}",
         NULL, DG_SQL_TOO_LARGE},
        {"sales", "{\"sql\":\"select 1\",\"format\":\"xml\"}", NULL, DG_NOT_ACCEPTABLE},
        {"sales", "{\"sql\":\"select 1\",\"format\":\"xml\"}", NULL, DG_NOT_ACCEPTABLE},
        {"sales", "{\"sql\":\"select 1\"}", "text/html", DG_NOT_ACCEPTABLE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const body_case *c = &cases[i];
        dg_http_query_t q;
        dg_error_t err;
        dg_error_clear(&err);
        dg_rc_t rc = dg_http_query_from_body(dg_str_c(c->db), c->body, strlen(c->body), NULL,
                                             c->accept, &lim, &q, &err);
        if (rc != c->rc) {
            fail_msg("case %zu %s: rc=%s want %s (%s)", i, c->body, dg_rc_name(rc),
                     dg_rc_name(c->rc), err.msg);
        }
        if (rc != DG_OK) {
            assert_true(err.msg[0] != '\0');
            assert_null(q.sql);
            assert_null(q.params);
        }
        dg_http_query_free(&q);
    }

    /* Field values, the deadline clamp and the format precedence. */
    dg_http_query_t q;
    const char *body = "{\"sql\":\"select 1\",\"params\":[1],\"timeout_ms\":50}";
    assert_int_equal(
        dg_http_query_from_body(dg_str_c("imdb"), body, strlen(body), NULL, NULL, &lim, &q, NULL),
        DG_OK);
    assert_string_equal(q.db, "imdb");
    assert_string_equal(q.sql, "select 1");
    assert_int_equal(q.sql_len, 8);
    assert_true(json_is_array(q.params));
    assert_int_equal(q.timeout_ms, 50);
    assert_int_equal(q.format, DG_FMT_JSON);
    dg_http_query_free(&q);

    body = "{\"sql\":\"select 1\",\"timeout_ms\":99999999999}";
    assert_int_equal(
        dg_http_query_from_body(dg_str_c("imdb"), body, strlen(body), NULL, NULL, &lim, &q, NULL),
        DG_OK);
    assert_int_equal(q.timeout_ms, 30000);
    dg_http_query_free(&q);

    dg_http_args_t args;
    assert_int_equal(dg_http_args_parse("format=tsv", 10, &args, NULL), DG_OK);
    body = "{\"sql\":\"select 1\"}";
    assert_int_equal(dg_http_query_from_body(dg_str_c("imdb"), body, strlen(body), &args,
                                             "text/csv", &lim, &q, NULL),
                     DG_OK);
    assert_int_equal(q.format, DG_FMT_TSV); /* ?format= beats Accept */
    dg_http_query_free(&q);
    dg_http_args_free(&args);
}

typedef struct {
    const char *db;
    const char *qs;
    dg_rc_t rc;
} args_case;

static void test_query_args(void **state)
{
    (void)state;
    static const args_case cases[] = {
        {"sales", "sql=select+1", DG_OK},
        {"sales", "sql=select+%241&params=%5B1%5D", DG_OK},
        {"sales", "sql=select+1&params=%7B%22x%22%3A1%7D&timeout_ms=10&format=ndjson&_=1", DG_OK},
        {"sales", "sql=select+1&params=", DG_OK},
        {"nope", "sql=select+1", DG_UNKNOWN_DB},
        {"sales", "", DG_MISSING_SQL},
        {"sales", "sql=", DG_MISSING_SQL},
        {"sales", "sql=+++", DG_MISSING_SQL},
        {"sales", "sql=a&sql=b", DG_BAD_REQUEST},
        {"sales", "sql=%FF%FE", DG_BAD_REQUEST},
        {"sales", "sql=select+1&timeout_ms=0", DG_BAD_REQUEST},
        {"sales", "sql=select+1&timeout_ms=-1", DG_BAD_REQUEST},
        {"sales", "sql=select+1&timeout_ms=1.5", DG_BAD_REQUEST},
        {"sales", "sql=select+1&timeout_ms=abc", DG_BAD_REQUEST},
        {"sales", "sql=select+1&timeout_ms=", DG_BAD_REQUEST},
        {"sales", "sql=select+1&params=%5B1", DG_BAD_PARAMS},
        {"sales", "sql=select+1&params=3", DG_BAD_PARAMS},
        {"sales", "sql=select+1&params=%22x%22", DG_BAD_PARAMS},
        {"sales", "sql=select+1&format=xml", DG_NOT_ACCEPTABLE},
        {"sales", "sql=select+1&format=xml", DG_NOT_ACCEPTABLE},
        {"sales",
         "sql=select+12345678901234567890123456789012345678901234567890123456789012345678901234"
         "5678901234567890123456789",
         DG_SQL_TOO_LARGE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const args_case *c = &cases[i];
        dg_http_args_t args;
        assert_int_equal(dg_http_args_parse(c->qs, strlen(c->qs), &args, NULL), DG_OK);
        dg_http_query_t q;
        dg_error_t err;
        dg_error_clear(&err);
        dg_rc_t rc = dg_http_query_from_args(dg_str_c(c->db), &args, NULL, &lim, &q, &err);
        if (rc != c->rc) {
            fail_msg("case %zu %s: rc=%s want %s (%s)", i, c->qs, dg_rc_name(rc), dg_rc_name(c->rc),
                     err.msg);
        }
        dg_http_query_free(&q);
        dg_http_args_free(&args);
    }
    dg_http_args_t args;
    const char *qs = "sql=select+1&timeout_ms=77&format=csv";
    assert_int_equal(dg_http_args_parse(qs, strlen(qs), &args, NULL), DG_OK);
    dg_http_query_t q;
    assert_int_equal(dg_http_query_from_args(dg_str_c("sales"), &args, NULL, &lim, &q, NULL),
                     DG_OK);
    assert_int_equal(q.timeout_ms, 77);
    assert_int_equal(q.format, DG_FMT_CSV);
    assert_null(q.params);
    dg_http_query_free(&q);
    dg_http_args_free(&args);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path_parse),        cmocka_unit_test(test_args_parse),
        cmocka_unit_test(test_target_parse),      cmocka_unit_test(test_routing),
        cmocka_unit_test(test_negotiate),         cmocka_unit_test(test_negotiate_encoding),
        cmocka_unit_test(test_error_json),        cmocka_unit_test(test_limit_codes),
        cmocka_unit_test(test_start_bad_proxies), cmocka_unit_test(test_query_body),
        cmocka_unit_test(test_query_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
