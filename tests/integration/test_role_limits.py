"""Per-role policy against the real server (docs/auth.md "Per-role limits"): the deadline
ceiling, row and byte caps, the concurrent-query limit per principal (429
TOO_MANY_CONCURRENT, given back when the query ends or its client goes away), per-role rates,
and per-role databases intersected with a key's or a token's scope."""

import json
import os
import subprocess
import threading
import time

import pytest

from dgserver import ENDLESS_SQL, assert_error, assert_ok
from jwt_helpers import JwtKeys, bearer


def keys_add(binary, path, role, *extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUCKGATE_")}
    p = subprocess.run([binary, "keys", "add", "--file", path, "--role", role] + list(extra),
                       capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


@pytest.fixture(scope="module")
def jk(tmp_path_factory):
    return JwtKeys(str(tmp_path_factory.mktemp("jwtkeys")))


@pytest.fixture(scope="module")
def srv(make_server, binary, jk):
    flags = jk.server_flags(jwks=False) + [
        "--public-role", "viewer", "--public-databases", "main",
        "--analyst-timeout-ms", "1500", "--analyst-max-rows", "5",
        "--analyst-max-result-bytes", "4KiB", "--analyst-max-concurrent", "1",
        "--viewer-databases", "main,types", "--keys-file", "KEYS"]
    s = make_server(start=False, engines=2, slots=2, extra=flags)
    path = s.use_keys_file()
    s.k = {
        "viewer": keys_add(binary, path, "viewer"),
        "viewer_other": keys_add(binary, path, "viewer", "--db", "other"),
        "analyst": keys_add(binary, path, "analyst"),
        "analyst2": keys_add(binary, path, "analyst"),
        "admin": keys_add(binary, path, "admin"),
    }
    return s.start()


def h(s, who):
    return bearer(s.k[who])


def test_deadline_ceiling_per_role(srv):
    # The analyst asks for 20 s and gets its role's 1.5 s ceiling.
    t0 = time.monotonic()
    r = srv.query("main", ENDLESS_SQL, timeout_ms=20000, headers=h(srv, "analyst"))
    dt = time.monotonic() - t0
    assert_error(r, 504, "TIMEOUT")
    assert dt < 10, dt
    # The admin has no role override: the 3 s it asks for are honoured (the global ceiling is
    # 30 s), so the same query runs visibly longer than the analyst's ceiling.
    t0 = time.monotonic()
    r = srv.query("main", ENDLESS_SQL, timeout_ms=3000, headers=h(srv, "admin"))
    dt = time.monotonic() - t0
    assert_error(r, 504, "TIMEOUT")
    assert dt >= 2.8, dt


def test_row_and_byte_caps_per_role(srv):
    sql = "SELECT range AS i FROM range(100)"
    body = assert_ok(srv.query("main", sql, headers=h(srv, "analyst")))
    assert body["row_count"] == 5 and body["truncated"] is True, body
    body = assert_ok(srv.query("main", sql, headers=h(srv, "admin")))
    assert body["row_count"] == 100 and body["truncated"] is False, body
    # 4 KiB document cap for analysts (5 rows of 2 KB strings), none lower for the admin.
    big = "SELECT repeat('x', 2000) AS s FROM range(5)"
    assert_error(srv.query("main", big, headers=h(srv, "analyst")), 413, "RESULT_TOO_LARGE")
    assert_ok(srv.query("main", big, headers=h(srv, "admin")))


def test_concurrency_limit_per_principal(srv):
    first = {}

    def slow():
        first["r"] = srv.query("main", ENDLESS_SQL, timeout_ms=20000, headers=h(srv, "analyst"))

    t = threading.Thread(target=slow)
    t.start()
    try:
        time.sleep(0.5)  # the first query holds the analyst's only place (1.5 s ceiling)
        r = srv.query("main", "SELECT 1 AS x", headers=h(srv, "analyst"))
        err = assert_error(r, 429, "TOO_MANY_CONCURRENT")
        assert "1 queries" in err["message"]
        assert r.headers.get("Retry-After") == "1"
        # Another principal of the same role has its own place.
        assert_ok(srv.query("main", "SELECT 1 AS x", headers=h(srv, "analyst2")))
    finally:
        t.join(30)
    assert_error(first["r"], 504, "TIMEOUT")
    # The place came back when the response ended.
    assert_ok(srv.query("main", "SELECT 1 AS x", headers=h(srv, "analyst")))


def test_concurrency_place_returned_when_client_leaves(srv):
    import requests
    try:
        srv.query("main", ENDLESS_SQL, timeout_ms=20000, headers=h(srv, "analyst"), timeout=0.5)
    except requests.exceptions.RequestException:
        pass
    # The server notices the hang-up, interrupts the query and ends the request; the place is
    # free again well before the 1.5 s ceiling would have freed it on its own... or at the
    # latest right after. Either way a new query gets through within a few seconds.
    end = time.monotonic() + 10
    while True:
        r = srv.query("main", "SELECT 1 AS x", headers=h(srv, "analyst"))
        if r.status_code == 200 or time.monotonic() > end:
            break
        assert_error(r, 429, "TOO_MANY_CONCURRENT")
        time.sleep(0.1)
    assert_ok(r)


def test_global_concurrency_limit_for_anonymous_callers(make_server):
    """auth off: every caller is public; max_concurrent (no role override) holds each client
    address to one query at a time."""
    s = make_server(extra=["--max-concurrent", "1", "--timeout-ms", "1500"])
    first = {}
    t = threading.Thread(target=lambda: first.update(r=s.query("main", ENDLESS_SQL)))
    t.start()
    try:
        time.sleep(0.5)
        assert_error(s.query("main", "SELECT 2 AS y"), 429, "TOO_MANY_CONCURRENT")
    finally:
        t.join(30)
    assert_error(first["r"], 504, "TIMEOUT")
    assert_ok(s.query("main", "SELECT 2 AS y"))


def test_role_databases_intersect_scope(srv, jk):
    def names(headers):
        r = srv.get("/api/databases", headers=headers)
        assert r.status_code == 200, r.text
        return [d["name"] for d in r.json()["databases"]]

    # viewer_databases = main,types: a viewer key sees those; its key scope (other) and the
    # role's list do not meet, so that key sees nothing and is refused everywhere.
    assert names(h(srv, "viewer")) == ["main", "types"]
    assert srv.get("/api/databases/main", headers=h(srv, "viewer")).status_code == 200
    assert_error(srv.get("/api/databases/other", headers=h(srv, "viewer")), 403, "FORBIDDEN")
    assert names(h(srv, "viewer_other")) == []
    assert_error(srv.get("/api/databases/other", headers=h(srv, "viewer_other")), 403,
                 "FORBIDDEN")
    # A JWT viewer scoped to main and other keeps only main.
    tok = jk.hs256(jk.claims(role="viewer", dbs=["main", "other"]))
    assert names(bearer(tok)) == ["main"]
    # Analysts have no role list: every database.
    assert names(h(srv, "analyst")) == ["main", "other", "types"]
    # Anonymous callers (public_role viewer) are held to public_databases = main.
    assert names({}) == ["main"]
    assert_error(srv.get("/api/databases/types"), 403, "FORBIDDEN")


def test_rates_per_role(make_server, binary):
    s = make_server(start=False, extra=[
        "--auth", "on", "--rate-limit", "on", "--rate-burst-per-s", "50",
        "--viewer-rate-burst-per-s", "2", "--viewer-rate-per-min", "1000", "--keys-file", "KEYS"])
    path = s.use_keys_file()
    viewer = keys_add(binary, path, "viewer")
    analyst = keys_add(binary, path, "analyst")
    s.start()
    codes = [s.get("/api/databases", headers=bearer(viewer)).status_code for _ in range(4)]
    assert codes[:2] == [200, 200] and 429 in codes[2:], codes
    r = s.get("/api/databases", headers=bearer(viewer))
    if r.status_code == 429:
        assert r.headers["RateLimit-Policy"].startswith("2;w=1"), r.headers
        assert r.headers["RateLimit-Limit"] == "2"
    # The analyst is held to the global 50/s only.
    codes = [s.get("/api/databases", headers=bearer(analyst)).status_code for _ in range(10)]
    assert codes == [200] * 10, codes


def test_bad_role_settings(binary, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUCKGATE_")}
    for flags, words in ((["--viewer-databases", "main,../etc"], "viewer_databases"),
                         (["--analyst-max-rows", "-1"], "analyst_max_rows"),
                         (["--admin-timeout-ms", "soon"], "admin_timeout_ms")):
        p = subprocess.run([binary, "serve", "--data-dir", str(tmp_path), "--listen",
                            "127.0.0.1:0", "--state-dir", str(tmp_path / "st")] + flags,
                           capture_output=True, text=True, timeout=60, env=env)
        assert p.returncode == 2, p.stderr[-2000:]
        assert words in p.stderr, p.stderr[-2000:]


def test_capabilities_per_role(make_server, binary):
    # Capabilities narrow what a role may do (docs/auth.md "Capabilities"): an analyst without
    # sql, a viewer without the catalog, anonymous callers (public_role analyst) without raw
    # SQL, an admin without the catalog but always with its admin routes.
    s = make_server(start=False, extra=[
        "--auth", "on", "--public-role", "analyst", "--keys-file", "KEYS",
        "--analyst-capabilities", "named,catalog", "--viewer-capabilities", "named",
        "--public-capabilities", "catalog", "--admin-capabilities", "admin, sql"])
    path = s.use_keys_file()
    viewer = keys_add(binary, path, "viewer")
    analyst = keys_add(binary, path, "analyst")
    admin = keys_add(binary, path, "admin")
    s.start()
    try:
        err = assert_error(s.query("main", "SELECT 1", headers=bearer(analyst)), 403, "FORBIDDEN")
        assert "sql capability" in err["message"] and "analyst_capabilities" in err["message"]
        assert_error(s.get("/api/query/main?sql=SELECT%201", headers=bearer(analyst)), 403)
        assert s.get("/api/databases", headers=bearer(analyst)).status_code == 200
        assert s.get("/api/q/main", headers=bearer(analyst)).status_code == 200
        err = assert_error(s.get("/api/databases", headers=bearer(viewer)), 403, "FORBIDDEN")
        assert "catalog capability" in err["message"], err
        assert_error(s.get("/api/databases/main", headers=bearer(viewer)), 403, "FORBIDDEN")
        assert s.get("/api/q/main", headers=bearer(viewer)).status_code == 200
        # Anonymous callers: the public policy, narrowing public_role analyst.
        assert s.get("/api/databases").status_code == 200
        err = assert_error(s.query("main", "SELECT 1"), 403, "FORBIDDEN")
        assert "public_capabilities" in err["message"], err
        # The admin lost the catalog, kept raw SQL and its admin routes.
        assert_error(s.get("/api/databases", headers=bearer(admin)), 403, "FORBIDDEN")
        assert_ok(s.query("main", "SELECT 1", headers=bearer(admin)))
        r = s.post("/api/admin/query/main", data=json.dumps({"sql": "SELECT 2 AS x"}),
                   headers=bearer(admin))
        assert assert_ok(r)["rows"] == [[2]]
        assert s.get("/api/admin/jobs", headers=bearer(admin)).status_code == 200
    finally:
        s.close()


def test_bad_capabilities(binary, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUCKGATE_")}
    for flags, words in ((["--analyst-capabilities", "sql,write"], "unknown capability"),
                         (["--viewer-capabilities", "named,admin"], "only the admin role"),
                         (["--admin-capabilities", "sql,catalog"], "must include admin")):
        p = subprocess.run([binary, "serve", "--data-dir", str(tmp_path), "--listen",
                            "127.0.0.1:0", "--state-dir", str(tmp_path / "st")] + flags,
                           capture_output=True, text=True, timeout=60, env=env)
        assert p.returncode == 2, p.stderr[-2000:]
        assert words in p.stderr, p.stderr[-2000:]
