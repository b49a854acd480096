"""Every bad input gets a JSON error with the code and HTTP status of the error table
(src/core/rc.h), and the server stays up."""

import json

import pytest

from dgserver import assert_error, assert_ok, raw_http, post_request_bytes


def post_raw(server, db, body, ctype="application/json"):
    return server.post("/api/query/" + db, data=body, headers={"Content-Type": ctype})


@pytest.mark.parametrize("body", [
    b"{", b"not json", b"", b"[1,2", b'{"sql": "SELECT 1",}', b"\xff\xfe{}",
    b'{"sql": "SELECT 1"} trailing',
])
def test_bad_json(server, body):
    assert_error(post_raw(server, "main", body), 400, "BAD_JSON")


@pytest.mark.parametrize("body", [
    {}, {"params": [1]}, {"sql": ""}, {"sql": None}, {"sql": 42}, {"sql": ["SELECT 1"]},
])
def test_missing_sql(server, body):
    assert_error(post_raw(server, "main", json.dumps(body)), 400, ("MISSING_SQL", "BAD_REQUEST"))


def test_missing_sql_exact(server):
    assert_error(post_raw(server, "main", b"{}"), 400, "MISSING_SQL")
    assert_error(server.get("/api/query/main"), 400, "MISSING_SQL")


def test_json_array_body(server):
    assert_error(post_raw(server, "main", b'["SELECT 1"]'), 400,
                 ("BAD_JSON", "MISSING_SQL", "BAD_REQUEST"))


def raw_query(server, path):
    """POST {"sql":"SELECT 1"} to a literal path (no client-side normalisation of dot segments
    or percent escapes); returns (status, error object or None)."""
    req = post_request_bytes("X", '{"sql":"SELECT 1"}').replace(b"/api/query/X", path.encode(), 1)
    status, hdrs, body = raw_http(server.port, req)
    try:
        return status, json.loads(body).get("error")
    except ValueError:
        raise AssertionError("%s: non-JSON response %d %r" % (path, status, body[:200]))


@pytest.mark.parametrize("name", [
    "nope", "..", ".hidden", "a%2Fb", "%2E%2E", "%2e%2e", ".", "main.duckdb", "MAIN", "main%20",
    "a" * 65, "-main", "%2Ehidden", "main%2F..%2Fmain", "..%2Fdata%2Fmain",
])
def test_unknown_db(server, name):
    status, err = raw_query(server, "/api/query/" + name)
    assert status == 404 and err and err.get("code") == "UNKNOWN_DB", (name, status, err)
    assert err.get("message"), err


@pytest.mark.parametrize("path", ["/api/query/%2Fetc%2Fpasswd", "/api/query/../query/main/x",
                                  "/api/query/main/extra", "/api/query/", "/api/query/main%00",
                                  "/api/query/main%ZZ"])
def test_unknown_db_odd_paths(server, path):
    """Paths that are not one database name: refused as unknown, not found, or bad request."""
    status, err = raw_query(server, path)
    assert status in (400, 404) and err and err.get("code") in (
        "UNKNOWN_DB", "NOT_FOUND", "BAD_REQUEST"), (path, status, err)


@pytest.mark.parametrize("method,path", [
    ("PUT", "/api/query/main"), ("DELETE", "/api/query/main"), ("PATCH", "/api/query/main"),
    ("POST", "/health"), ("POST", "/ready"), ("DELETE", "/api/databases"),
    ("POST", "/api/databases/main"),
])
def test_method_not_allowed(server, method, path):
    r = server.request(method, path, data=b'{"sql":"SELECT 1"}',
                       headers={"Content-Type": "application/json"})
    assert_error(r, 405, "METHOD_NOT_ALLOWED")


def test_not_found_route(server):
    assert_error(server.get("/api/nope"), 404)
    assert_error(server.get("/nope"), 404)


def test_sql_error_syntax(server):
    err = assert_error(server.query("main", "SELEC 1"), 400, "SQL_ERROR")
    assert "syntax" in err["message"].lower() or "parser" in err["message"].lower(), err
    assert server.dir not in err["message"] and server.data_dir not in err["message"]


def test_sql_error_binder(server):
    r = server.query("main", "SELECT no_such_column FROM t")
    err = assert_error(r, 400, "SQL_ERROR")
    assert "no_such_column" in err["message"], err
    for p in (server.dir, server.data_dir, "/tmp/", ".duckdb"):
        assert p not in r.text, "server path %r leaked: %s" % (p, r.text)


def test_sql_error_catalog_no_paths(server):
    r = server.query("main", "SELECT * FROM no_such_table")
    err = assert_error(r, 400, "SQL_ERROR")
    assert "no_such_table" in err["message"]
    assert server.dir not in r.text and server.data_dir not in r.text


def test_sql_error_runtime(server):
    r = server.query("main", "SELECT CAST('abc' AS INTEGER)")
    assert_error(r, 400, "SQL_ERROR")
    assert server.dir not in r.text


@pytest.mark.parametrize("sql", [
    "INSERT INTO t VALUES (1000, 'x', 1, 'a', DATE '2020-01-01')",
    "UPDATE t SET name = 'x'",
    "DELETE FROM t",
    "CREATE TABLE z (a INTEGER)",
    "DROP TABLE t",
    "ATTACH ':memory:' AS m",
    "COPY t TO '/tmp/dg-never.csv'",
    "SET threads = 1",
])
def test_not_read_only(server, sql):
    assert_error(server.query("main", sql), 403, "NOT_READ_ONLY")


@pytest.mark.parametrize("sql", [
    "SELECT 1; SELECT 2",
    "SELECT 1; DROP TABLE t",
    "SELECT 1;SELECT 2;",
])
def test_multiple_statements(server, sql):
    assert_error(server.query("main", sql), 400, "MULTIPLE_STATEMENTS")


def test_single_statement_trailing_semicolon(server):
    assert assert_ok(server.query("main", "SELECT 1;"))["rows"] == [[1]]
    assert assert_ok(server.query("main", "SELECT 1; -- comment"))["rows"] == [[1]]


def test_body_too_large(make_server):
    s = make_server(extra=["--max-body-bytes", "4096"], engines=1, slots=1)
    body = json.dumps({"sql": "SELECT 1", "pad": "x" * 10000})
    assert_error(post_raw(s, "main", body), 413, "BODY_TOO_LARGE")
    # Announced length over the cap is refused without reading it all.
    req = ("POST /api/query/main HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           "Content-Length: 100000000\r\n\r\n").encode() + b"{" * 1024
    status, _, body = raw_http(s.port, req)
    assert status == 413, (status, body[:200])
    assert json.loads(body)["error"]["code"] == "BODY_TOO_LARGE"
    assert assert_ok(s.query("main", "SELECT 1"))
    s.close()


def test_sql_too_large(make_server):
    s = make_server(extra=["--max-sql-bytes", "1024"], engines=1, slots=1)
    sql = "SELECT 1 " + "-" * 2000
    assert_error(s.query("main", sql), 413, "SQL_TOO_LARGE")
    assert_error(s.query_get("main", sql), 413, "SQL_TOO_LARGE")
    assert assert_ok(s.query("main", "SELECT 1 " + " " * 900))
    s.close()


def test_result_too_large(make_server):
    s = make_server(extra=["--max-result-bytes", "65536"], engines=1, slots=1)
    sql = "SELECT range AS i, 'padding-padding-padding' AS p FROM range(100000)"
    err = assert_error(s.query("main", sql), 413, "RESULT_TOO_LARGE")
    assert "ndjson" in err["message"].lower(), err
    # Streaming formats have no single-document cap.
    r = s.query("main", sql, fmt="ndjson")
    assert r.status_code == 200
    last = json.loads(r.text.splitlines()[-1])
    assert last["type"] == "end" and last["rows"] == 100000, last
    r = s.query("main", sql, fmt="csv")
    assert r.status_code == 200 and len(r.text.splitlines()) == 100001
    # Small results still fine.
    assert assert_ok(s.query("main", "SELECT 1"))
    assert s.alive()
    s.close()


@pytest.mark.parametrize("timeout_ms", ["abc", {"x": 1}, [1]])
def test_bad_timeout_ms(server, timeout_ms):
    r = server.query("main", "SELECT 1", timeout_ms=timeout_ms)
    assert_error(r, 400, ("BAD_REQUEST", "BAD_PARAMS", "BAD_JSON"))


def test_garbage_http(server):
    for req in (b"GARBAGE\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n",
                b"POST /api/query/main HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
                b"GET /api/query/main?sql=%ZZ HTTP/1.1\r\nHost: x\r\n\r\n"):
        try:
            raw_http(server.port, req, timeout=5)
        except OSError:
            pass
    assert server.alive()
    assert server.get("/health").status_code == 200


def test_alive_after_errors(server):
    assert server.alive()
    assert assert_ok(server.query("main", "SELECT 42"))["rows"] == [[42]]


# libmicrohttpd answers a request head that does not fit its per-connection memory pool (256 KiB
# here) itself, with the right status and its own small HTML body, before duckgate sees the
# request; it offers no hook to change that body (documented in docs/security.md). Below that
# size duckgate's own limits answer, in JSON.
POOL_LIMIT = 256 * 1024


@pytest.mark.parametrize("n", [70000, 2000000])
def test_huge_url_is_refused(server, n):
    """An over-long GET URL is refused: 413 SQL_TOO_LARGE or 414 URI_TOO_LONG in JSON when
    duckgate sees it, 414 from libmicrohttpd beyond its pool; the server stays up."""
    req = ("GET /api/query/main?sql=SELECT%%201--%s HTTP/1.1\r\nHost: x\r\n"
           "Connection: close\r\n\r\n" % ("a" * n)).encode()
    status, hdrs, body = raw_http(server.port, req)
    assert status in (413, 414), (status, body[:200])
    if n < POOL_LIMIT:
        assert "json" in hdrs.get("content-type", ""), "non-JSON %d body: %r" % (status, body[:200])
        err = json.loads(body)["error"]
        assert err["code"] in ("SQL_TOO_LARGE", "URI_TOO_LONG") and err["message"], err
    assert server.alive()


@pytest.mark.parametrize("n", [70000, 2000000])
def test_huge_header_is_refused(server, n):
    """Request headers beyond the limit: 431, as JSON HEADERS_TOO_LARGE when duckgate sees them."""
    req = ("GET /health HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\nConnection: close\r\n\r\n"
           % ("b" * n)).encode()
    status, hdrs, body = raw_http(server.port, req)
    assert status == 431, (status, body[:200])
    if n < POOL_LIMIT:
        assert "json" in hdrs.get("content-type", ""), "non-JSON %d body: %r" % (status, body[:200])
        assert json.loads(body)["error"]["code"] == "HEADERS_TOO_LARGE"
    assert server.alive()


def test_nul_in_sql_is_bad_request(server):
    """"\\u0000" is valid JSON; a NUL inside the SQL is refused as such, not as bad JSON."""
    r = post_raw(server, "main", b'{"sql": "SELECT 1\\u0000; DROP TABLE t"}')
    assert_error(r, 400, "BAD_REQUEST")
    assert "NUL" in r.json()["error"]["message"]
