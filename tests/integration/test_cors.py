"""CORS: preflights on /api routes (DELETE routes included), headers on responses to allowed
origins, nothing but `Vary: Origin` for other origins or none, the `*` and credentials rules,
and OPTIONS when CORS is off (docs/security.md)."""

import subprocess

import pytest

from dgserver import assert_error, assert_ok

A = "https://a.example"
B = "http://b.example:8080"
CORS_HEADERS = ("access-control-allow-origin", "access-control-allow-credentials",
                "access-control-allow-methods", "access-control-allow-headers",
                "access-control-max-age", "access-control-expose-headers")


@pytest.fixture(scope="module")
def cors(make_server):
    s = make_server(dbs=("main",), engines=1, slots=2,
                    extra=["--cors-origins", "%s, %s" % (A, B)])
    yield s
    assert s.alive()
    s.close()


def preflight(server, path, origin, method="POST", extra=None):
    h = {"Origin": origin, "Access-Control-Request-Method": method,
         "Access-Control-Request-Headers": "content-type, x-api-key"}
    h.update(extra or {})
    return server.request("OPTIONS", path, headers=h)


def no_cors(r):
    return not any(k in r.headers for k in CORS_HEADERS)


def varies_on_origin(r):
    return "origin" in [v.strip().lower() for v in r.headers.get("Vary", "").split(",")]


@pytest.mark.parametrize("path", ["/api/query/main", "/api/databases", "/api/databases/main"])
@pytest.mark.parametrize("origin", [A, B])
def test_preflight_allowed(cors, path, origin):
    r = preflight(cors, path, origin)
    assert r.status_code == 204, (r.status_code, r.text)
    h = r.headers
    assert h["Access-Control-Allow-Origin"] == origin
    assert h["Access-Control-Allow-Methods"] == "GET, HEAD, POST, DELETE"
    assert h["Access-Control-Allow-Headers"] == \
        "Content-Type, Authorization, X-API-Key, Accept, Accept-Encoding"
    assert h["Access-Control-Max-Age"] == "600"
    assert "Origin" in h["Vary"]
    assert "Access-Control-Allow-Credentials" not in h
    assert r.content == b""


def test_preflight_origin_case_insensitive(cors):
    r = preflight(cors, "/api/query/main", A.upper())
    assert r.status_code == 204 and r.headers["Access-Control-Allow-Origin"] == A.upper()


@pytest.mark.parametrize("origin", ["https://evil.example", "https://a.example.evil",
                                    "http://a.example", "null", A + "/", ""])
def test_preflight_disallowed_origin(cors, origin):
    r = preflight(cors, "/api/query/main", origin)
    assert_error(r, 403, "FORBIDDEN")
    assert no_cors(r), r.headers
    assert varies_on_origin(r), r.headers


@pytest.mark.parametrize("path", ["/api/admin/jobs/j1", "/api/admin/cache/main",
                                  "/api/admin/stage/main"])
def test_preflight_for_delete(cors, path):
    r = preflight(cors, path, A, method="DELETE")
    assert r.status_code == 204, (r.status_code, r.text)
    assert r.headers["Access-Control-Allow-Origin"] == A
    methods = [m.strip() for m in r.headers["Access-Control-Allow-Methods"].split(",")]
    assert "DELETE" in methods and "GET" in methods and "POST" in methods
    assert varies_on_origin(r)


def test_options_without_preflight_headers_is_405(cors):
    r = cors.request("OPTIONS", "/api/query/main", headers={"Origin": A})
    assert_error(r, 405, "METHOD_NOT_ALLOWED")
    assert "POST" in r.headers["Allow"]
    r = cors.request("OPTIONS", "/api/query/main")
    assert_error(r, 405, "METHOD_NOT_ALLOWED")


def test_preflight_outside_api_is_405(cors):
    assert_error(preflight(cors, "/health", A), 405, "METHOD_NOT_ALLOWED")


def test_preflight_unknown_route_is_404(cors):
    assert_error(preflight(cors, "/api/nope", A), 404)


def test_simple_request_allowed(cors):
    r = cors.get("/api/query/main", params={"sql": "SELECT 1"}, headers={"Origin": A})
    assert assert_ok(r)["rows"] == [[1]]
    h = r.headers
    assert h["Access-Control-Allow-Origin"] == A
    assert "Origin" in h["Vary"]
    exposed = [x.strip() for x in h["Access-Control-Expose-Headers"].split(",")]
    assert exposed == ["X-Query-Id", "X-Request-Id", "Server-Timing"]
    assert "Access-Control-Allow-Credentials" not in h
    assert "Access-Control-Allow-Methods" not in h


def test_post_and_errors_carry_cors(cors):
    r = cors.post("/api/query/main", json={"sql": "SELECT 2"}, headers={"Origin": B})
    assert assert_ok(r)["rows"] == [[2]] and r.headers["Access-Control-Allow-Origin"] == B
    # Errors are readable by the page too.
    r = cors.post("/api/query/main", json={"sql": "SELEC 1"}, headers={"Origin": A})
    assert_error(r, 400, "SQL_ERROR")
    assert r.headers["Access-Control-Allow-Origin"] == A
    # Streams as well.
    r = cors.query("main", "SELECT 1", fmt="ndjson", headers={"Origin": A})
    assert r.status_code == 200 and r.headers["Access-Control-Allow-Origin"] == A


def test_simple_request_disallowed_or_no_origin(cors):
    r = cors.get("/api/query/main", params={"sql": "SELECT 1"},
                 headers={"Origin": "https://evil.example"})
    assert assert_ok(r)["rows"] == [[1]]
    assert no_cors(r), r.headers
    assert varies_on_origin(r), r.headers
    r = cors.get("/api/query/main", params={"sql": "SELECT 1"})
    assert no_cors(r), r.headers
    # The answer depends on Origin even without one: caches must keep them apart.
    assert varies_on_origin(r), r.headers
    for path in ("/health", "/nope"):
        assert varies_on_origin(cors.get(path)), path
    r = cors.query("main", "SELECT 1", fmt="ndjson")
    assert r.status_code == 200 and varies_on_origin(r) and no_cors(r)


def test_star(make_server):
    s = make_server(dbs=("main",), engines=1, slots=1, extra=["--cors-origins", "*"])
    r = preflight(s, "/api/query/main", "https://anything.example", method="GET")
    assert r.status_code == 204 and r.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in r.headers
    r = s.get("/api/query/main", params={"sql": "SELECT 1"}, headers={"Origin": "https://x.y"})
    assert r.status_code == 200 and r.headers["Access-Control-Allow-Origin"] == "*"
    s.close()


def test_credentials(make_server):
    s = make_server(dbs=("main",), engines=1, slots=1,
                    extra=["--cors-origins", A, "--cors-credentials", "1"])
    r = preflight(s, "/api/query/main", A, extra={"Cookie": "c=1"})
    assert r.status_code == 204
    assert r.headers["Access-Control-Allow-Origin"] == A
    assert r.headers["Access-Control-Allow-Credentials"] == "true"
    r = s.get("/api/query/main", params={"sql": "SELECT 1"}, headers={"Origin": A})
    assert r.status_code == 200 and r.headers["Access-Control-Allow-Credentials"] == "true"
    r = s.get("/api/query/main", params={"sql": "SELECT 1"}, headers={"Origin": B})
    assert no_cors(r)
    s.close()


def test_star_with_credentials_is_config_error(make_server, tmp_path):
    s = make_server(dbs=("main",), extra=["--cors-origins", "https://a.example, *",
                                          "--cors-credentials", "1"], start=False)
    p = subprocess.run(s.args, env=s.env, stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=60)
    assert p.returncode == 2, (p.returncode, p.stderr[-2000:])
    assert b"cors_credentials" in p.stderr + p.stdout


def test_cors_off_keeps_405(make_server):
    s = make_server(dbs=("main",), engines=1, slots=1)
    r = preflight(s, "/api/query/main", A)
    assert_error(r, 405, "METHOD_NOT_ALLOWED")
    assert r.headers["Allow"] and no_cors(r)
    r = s.get("/api/query/main", params={"sql": "SELECT 1"}, headers={"Origin": A})
    assert r.status_code == 200 and no_cors(r) and not varies_on_origin(r)
    s.close()
