"""The query log (docs/observability.md "Query log"): one row per query request, shipped by the
front to engine 0's DuckDB file in the state directory and read by admins through
GET /api/admin/queries.

Checked against the real binary: rows match the requests made (status, code, db, rows, kind,
principal, role, SQL text); filters and formats; retention by row count; nothing is lost when
engine 0 is killed or the server restarts; only admins can read it and it is invisible to every
other route; no API key, JWT, Authorization value or bound parameter value appears in the rows,
the server's log lines or /metrics; the slow-query WARN line; query_log = off."""

import csv
import hashlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.parse

import pytest

import dgserver
from dgserver import add_key, assert_error
from jwt_helpers import JwtKeys, bearer

HERE = os.path.dirname(os.path.abspath(__file__))

PARAM_SENTINEL = "PARAM-SENTINEL-51d2e7c4"
NAMED_SENTINEL = "NAMED-SENTINEL-0b9f33aa"
SHORT_SENTINEL = "SECRETq7Zx3"  # fits search's max_length=20
JWT_SENTINEL = ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJKV1QtU0VOVElORUwtN2E2MSJ9."
                "JWTSENTINELsig7a61")


def make_log_server(make_server, binary, extra=(), engines=2, more_keys=None, named=False):
    """A server with auth on and admin/analyst/viewer keys (s.keys), plus more_keys
    {name: (role, *add args)}; with named, a copy of tests/integration/named_queries."""
    more = ["--queries-dir", "QDIR"] if named else []
    s = make_server(start=False, engines=engines,
                    extra=["--auth", "on", "--keys-file", "KEYS"] + more + list(extra))
    if named:
        qdir = os.path.join(s.dir, "queries")
        shutil.copytree(os.path.join(HERE, "named_queries"), qdir)
        s.args[s.args.index("QDIR")] = qdir
    path = s.use_keys_file()
    s.keys = {
        "admin": add_key(binary, path, "admin"),
        "analyst": add_key(binary, path, "analyst"),
        "viewer": add_key(binary, path, "viewer"),
    }
    for name, (role, *args) in (more_keys or {}).items():
        s.keys[name] = add_key(binary, path, role, "--name", name, *args)
    s.keys_path = path
    return s.start()


def auth(key):
    return {"Authorization": "Bearer " + key}


def sql(s, text, key, params=None, timeout_ms=None, fmt=None):
    r = s.query("main", text, params=params, timeout_ms=timeout_ms, fmt=fmt, headers=auth(key))
    return r


def log_rows(s, timeout=30, **params):
    """The query log as a list of dicts (JSON format), newest first."""
    params.setdefault("limit", 10000)
    r = s.get("/api/admin/queries", params=params, headers=auth(s.keys["admin"]), timeout=timeout)
    assert r.status_code == 200, r.text[:500]
    doc = r.json()
    names = [c["name"] for c in doc["columns"]]
    return [dict(zip(names, row)) for row in doc["rows"]]


def wait_logged(s, rids, timeout=90):
    """Polls the log until every request id in rids is stored; returns all rows then (or the
    last listing when the time is up, for the caller's assertion to report). The log is written
    asynchronously (about once a second, later when engine 0 is busy or restarting), and rows are
    stored in the order they were recorded, so everything recorded before them is there too."""
    want = set(rids)
    deadline = time.monotonic() + timeout
    while True:
        rows = log_rows(s)
        if want <= {row["request_id"] for row in rows} or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def by_request(rows, ids):
    """Rows whose request_id is in ids: {request_id: [rows]}."""
    out = {}
    for row in rows:
        if row["request_id"] in ids:
            out.setdefault(row["request_id"], []).append(row)
    return out


def engine0_pid(s):
    for pid in dgserver.children_of(s.proc.pid):
        try:
            with open("/proc/%d/comm" % pid) as f:
                if f.read().strip() == "dg-engine-0":
                    return pid
        except OSError:
            pass
    return None


def wait_for(fn, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


@pytest.fixture(scope="module")
def jk(tmp_path_factory):
    return JwtKeys(str(tmp_path_factory.mktemp("qlog-jwt")))


@pytest.fixture(scope="module")
def qs(make_server, binary, jk):
    # Named queries and JWTs (HS256) as well as keys.
    jwt_flags = [f for f in jk.server_flags(jwks=False) if f not in ("--auth", "on")]
    return make_log_server(make_server, binary, extra=["--slow-query-ms", "1"] + jwt_flags,
                           named=True)


def named(s, name, params, key=None, headers=None):
    url = "/api/q/main/%s?%s" % (name, urllib.parse.urlencode(params))
    return s.get(url, headers=headers or auth(key))


def test_rows_match_requests(qs):
    admin, analyst = qs.keys["admin"], qs.keys["analyst"]
    made = {}  # request id -> expected fields

    def note(resp, kind, db, rows, text, role, cache="miss"):
        rid = resp.headers["X-Request-Id"]
        code = None if resp.status_code < 400 else resp.json()["error"]["code"]
        made[rid] = dict(kind=kind, db=db, status=resp.status_code, code=code, rows=rows,
                         query=text, role=role, cache=cache)

    for k in (1, 2, 3):
        text = "SELECT id FROM t WHERE id <= %d ORDER BY id" % k
        r = sql(qs, text, analyst)
        assert r.status_code == 200
        note(r, "sql", "main", k, text, "analyst")
    text = "SELECT id, name FROM t WHERE id <= 7"
    r = sql(qs, text, admin, fmt="ndjson")
    assert r.status_code == 200 and r.text.count("\n") >= 3
    note(r, "sql", "main", 7, text, "admin")
    r = sql(qs, "SELEC 1", analyst)
    assert_error(r, 400, "SQL_ERROR")
    note(r, "sql", "main", 0, "SELEC 1", "analyst")
    r = sql(qs, "DELETE FROM t", analyst)
    assert r.status_code in (400, 403)
    note(r, "sql", "main", 0, "DELETE FROM t", "analyst")
    r = sql(qs, "SELECT count(*) FROM range(1000000000000)", analyst, timeout_ms=200)
    assert_error(r, 504, "TIMEOUT")
    note(r, "sql", "main", 0, "SELECT count(*) FROM range(1000000000000)", "analyst")
    r = qs.query("nosuchdb", "SELECT 1", headers=auth(analyst))
    assert_error(r, 404, "UNKNOWN_DB")
    note(r, "sql", None, 0, None, "analyst", cache=None)
    r = qs.get("/api/databases/main", headers=auth(analyst))
    assert r.status_code == 200
    note(r, "catalog", "main", 0, None, "analyst")

    rows = wait_logged(qs, made)
    got = by_request(rows, made)
    assert set(got) == set(made), "missing rows for %s" % (set(made) - set(got))
    for rid, want in made.items():
        assert len(got[rid]) == 1, "request %s logged %d times" % (rid, len(got[rid]))
        row = got[rid][0]
        for field in ("kind", "db", "status", "code", "rows", "role", "cache"):
            assert row[field] == want[field], (rid, field, row, want)
        if want["query"] is not None:
            assert row["query"] == want["query"]
        assert row["principal"].startswith("key:"), row
        assert row["duration_ms"] >= 0 and row["queue_ms"] >= 0
        if want["status"] == 200 and want["kind"] == "sql":
            assert row["bytes"] > 0
    # The timeout took at least its deadline.
    slow = [got[rid][0] for rid, w in made.items() if w["code"] == "TIMEOUT"][0]
    assert slow["duration_ms"] >= 150
    # Newest first.
    ts = [row["ts"] for row in rows]
    assert ts == sorted(ts, reverse=True)


def test_cache_hits_are_logged(qs):
    """Requests the cache answers (a hit, a 304) are rows too, and every row says what the
    cache did: the first request is a miss, an admin's bypass a bypass."""
    analyst, admin = qs.keys["analyst"], qs.keys["admin"]
    text = "SELECT id FROM t WHERE id <= 4 ORDER BY id -- cache-%d" % time.time_ns()
    first = sql(qs, text, analyst)
    assert first.status_code == 200 and "uri-miss" in first.headers["Cache-Status"], \
        first.headers
    etag = first.headers["ETag"]
    hit = sql(qs, text, analyst)
    assert hit.status_code == 200 and "hit" in hit.headers["Cache-Status"], hit.headers
    assert hit.content == first.content
    # A conditional GET (for a POST a match is a 412, RFC 9110 §13.1.2).
    r = qs.get("/api/query/main", params={"sql": text},
               headers=dict(auth(analyst), **{"If-None-Match": etag}))
    assert r.status_code == 304, r.status_code
    not_modified = r
    r = qs.post("/api/query/main?cache=bypass", data=json.dumps({"sql": text}),
                headers=dict(auth(admin), **{"Content-Type": "application/json"}))
    assert r.status_code == 200 and "fwd=bypass" in r.headers["Cache-Status"], r.headers
    bypass = r
    resps = {"miss": first, "hit": hit, "304": not_modified, "bypass": bypass}
    ids = {name: resp.headers["X-Request-Id"] for name, resp in resps.items()}
    got = by_request(wait_logged(qs, ids.values()), set(ids.values()))
    assert set(got) == set(ids.values()), "missing rows: %s" % (set(ids.values()) - set(got))
    rows = {}
    for name, rid in ids.items():
        assert len(got[rid]) == 1, (name, got[rid])
        rows[name] = got[rid][0]
    want = {
        "miss": dict(status=200, cache="miss", rows=4, role="analyst"),
        "hit": dict(status=200, cache="hit", rows=4, role="analyst"),
        "304": dict(status=304, cache="hit", rows=0, bytes=0, role="analyst"),
        "bypass": dict(status=200, cache="bypass", rows=4, role="admin"),
    }
    for name, fields in want.items():
        row = rows[name]
        assert row["kind"] == "sql" and row["db"] == "main" and row["query"] == text, row
        assert row["code"] is None and row["principal"].startswith("key:"), row
        assert row["duration_ms"] >= 0 and row["queue_ms"] >= 0, row
        for field, value in fields.items():
            assert row[field] == value, (name, field, row)
    # The hit sent the stored body: the same bytes as the miss that filled it.
    assert rows["hit"]["bytes"] == rows["miss"]["bytes"] > 0
    assert rows["hit"]["queue_ms"] == 0


def wait_job(s, jid, timeout=60.0):
    return s.wait_job(jid, auth(s.keys["admin"]), timeout=timeout, poll=0.05)


def submit_job(s, text, db="main"):
    r = s.post("/api/admin/jobs", data=json.dumps({"db": db, "sql": text}),
               headers=auth(s.keys["admin"]))
    assert r.status_code == 202, r.text
    return r.json()["id"]


def cancel_running_job(s):
    """Submits an endless job, waits until it runs and cancels it; returns its id."""
    jid = submit_job(s, dgserver.ENDLESS_SQL)
    end = time.monotonic() + 30
    while s.get("/api/admin/jobs/" + jid, headers=auth(s.keys["admin"])).json()["state"] != "running":
        assert time.monotonic() < end, "the job never ran"
        time.sleep(0.02)
    r = s.request("DELETE", "/api/admin/jobs/" + jid, headers=auth(s.keys["admin"]))
    assert r.status_code == 200 and r.json()["state"] == "cancelled", r.text
    return jid


def test_jobs_are_logged(qs):
    """A finished job is a row of kind "job" keyed by the job id: done (200), failed (the
    error's status and code) and cancelled (499, CANCELLED)."""
    admin = qs.keys["admin"]
    done_sql = "SELECT id FROM t WHERE id <= 5 -- job-%d" % time.time_ns()
    done = submit_job(qs, done_sql)
    assert wait_job(qs, done)["state"] == "done"
    failed = submit_job(qs, "SELEC 5")
    assert wait_job(qs, failed)["state"] == "failed"
    cancelled = cancel_running_job(qs)
    ids = {done, failed, cancelled}
    got = by_request(wait_logged(qs, ids), ids)
    assert set(got) == ids, "missing rows for %s" % (ids - set(got))
    want = {
        done: dict(status=200, code=None, rows=5, query=done_sql),
        failed: dict(status=400, code="SQL_ERROR", rows=0, query="SELEC 5"),
        cancelled: dict(status=499, code="CANCELLED", rows=0, query=dgserver.ENDLESS_SQL),
    }
    admin_principal = None
    for jid, fields in want.items():
        assert len(got[jid]) == 1, got[jid]
        row = got[jid][0]
        assert row["kind"] == "job" and row["db"] == "main" and row["role"] == "admin", row
        assert row["cache"] is None and row["bytes"] == 0, row
        assert row["principal"].startswith("key:"), row
        admin_principal = admin_principal or row["principal"]
        assert row["principal"] == admin_principal, row
        assert row["duration_ms"] >= row["queue_ms"] >= 0, row
        for field, value in fields.items():
            assert row[field] == value, (jid, field, row)


def test_filters_and_formats(qs):
    analyst = qs.keys["analyst"]
    r1 = sql(qs, "SELECT 1 AS one", analyst)
    r2 = sql(qs, "SELEC 2", analyst)
    assert r1.status_code == 200 and r2.status_code == 400
    # Everything recorded so far is stored: the listings below see one fixed set of rows.
    wait_logged(qs, [r1.headers["X-Request-Id"], r2.headers["X-Request-Id"]])
    rows = log_rows(qs, status="4xx")
    assert rows and all(400 <= row["status"] < 500 for row in rows)
    rows = log_rows(qs, status="200")
    assert rows and all(row["status"] == 200 for row in rows)
    rows = log_rows(qs, status="error")
    assert all(row["status"] >= 400 for row in rows)
    rows = log_rows(qs, db="main")
    assert rows and all(row["db"] == "main" for row in rows)
    assert log_rows(qs, db="other") == []
    two = log_rows(qs, limit=2)
    assert len(two) == 2
    assert two == log_rows(qs)[:2]
    assert log_rows(qs, since="2999-01-01T00:00:00Z") == []
    assert len(log_rows(qs, since="2000-01-01")) == len(log_rows(qs))
    assert len(log_rows(qs, since=str(int(time.time()) - 3600))) == len(log_rows(qs))
    admin = auth(qs.keys["admin"])
    r = qs.get("/api/admin/queries", params={"format": "csv", "limit": 3}, headers=admin)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/csv")
    recs = list(csv.reader(io.StringIO(r.text)))
    assert recs[0][:3] == ["ts", "request_id", "kind"] and len(recs) == 4
    r = qs.get("/api/admin/queries", params={"format": "ndjson", "limit": 3}, headers=admin)
    lines = [json.loads(ln) for ln in r.text.splitlines()]
    assert lines[0]["type"] == "meta" and lines[-1]["type"] == "end" and lines[-1]["rows"] == 3
    r = qs.get("/api/admin/queries", params={"limit": 3},
               headers=dict(admin, **{"Accept-Encoding": "gzip"}))
    assert r.status_code == 200 and r.headers.get("Content-Encoding") == "gzip"
    assert len(r.json()["rows"]) == 3


@pytest.mark.parametrize("params", [
    {"limit": "0"}, {"limit": "10001"}, {"limit": "ten"}, {"status": "abc"}, {"status": "6xx"},
    {"db": "../etc"}, {"db": ""}, {"since": "yesterday"}, {"since": "2026-13-01"},
    {"format": "xml"}, {"sql": "SELECT 1"},
])
def test_bad_parameters(qs, params):
    r = qs.get("/api/admin/queries", params=params, headers=auth(qs.keys["admin"]))
    assert_error(r, (400, 406))


def test_only_admins_can_read(qs):
    check = {"admin": 200, "analyst": 403, "viewer": 403}
    for who, want in check.items():
        r = qs.get("/api/admin/queries", headers=auth(qs.keys[who]))
        assert r.status_code == want, (who, r.text[:200])
        if want == 403:
            assert_error(r, 403, "FORBIDDEN")
    assert_error(qs.get("/api/admin/queries"), 401, "UNAUTHORIZED")
    assert_error(qs.get("/api/admin/queries", headers=auth("dgk_" + "B" * 43)), 401)
    # Only GET.
    r = qs.post("/api/admin/queries", headers=auth(qs.keys["admin"]))
    assert_error(r, 405)


def test_invisible_to_everyone_else(qs):
    analyst, admin = auth(qs.keys["analyst"]), auth(qs.keys["admin"])
    r = sql(qs, "SELECT 1", qs.keys["analyst"])
    wait_logged(qs, [r.headers["X-Request-Id"]])  # the file exists and holds rows now
    assert os.path.exists(os.path.join(qs.state_dir, "query_log.duckdb"))
    names = [d["name"] for d in qs.get("/api/databases", headers=admin).json()["databases"]]
    assert "query_log" not in names and "_query_log" not in names
    for db in ("query_log", "_query_log"):
        assert_error(qs.query(db, "SELECT 1", headers=admin), 404)
        assert_error(qs.get("/api/databases/" + db, headers=admin), 404)
    r = qs.query("main", "SELECT * FROM query_log", headers=analyst)
    assert r.status_code == 400, r.text[:200]
    path = os.path.join(qs.state_dir, "query_log.duckdb")
    for text in ("SELECT * FROM '%s'" % path, "SELECT * FROM read_parquet('%s')" % path,
                 "ATTACH '%s' AS q" % path):
        r = qs.query("main", text, headers=analyst)
        assert r.status_code in (400, 403), (text, r.status_code)


def test_no_secrets_in_rows_logs_or_metrics(qs, jk):
    analyst, admin = qs.keys["analyst"], qs.keys["admin"]
    r = sql(qs, "SELECT $1 AS v, id FROM t WHERE id < 3", analyst, params=[PARAM_SENTINEL])
    assert r.status_code == 200 and PARAM_SENTINEL in r.text
    r = sql(qs, "SELECT $x AS v", analyst, params={"x": NAMED_SENTINEL}, fmt="ndjson")
    assert r.status_code == 200
    r = qs.query("main", "SELECT $1 AS v", params=[PARAM_SENTINEL],
                 headers={"X-API-Key": analyst})
    assert r.status_code == 200
    wait_logged(qs, [r.headers["X-Request-Id"]])
    # A named query with a secret value: its row has the values' hash, never the values.
    r = named(qs, "search", {"q": SHORT_SENTINEL}, key=analyst)
    assert r.status_code == 200, r.text[:300]
    named_rid = r.headers["X-Request-Id"]
    # An accepted JWT: the row names its subject, never the token.
    token = jk.hs256(jk.claims(sub="qlog-sub", role="analyst"))
    r = qs.query("main", "SELECT $1 AS v", params=[PARAM_SENTINEL], headers=bearer(token))
    assert r.status_code == 200, r.text[:300]
    jwt_rid = r.headers["X-Request-Id"]
    rows = by_request(wait_logged(qs, [named_rid, jwt_rid]), {named_rid, jwt_rid})
    assert rows[jwt_rid][0]["principal"] == "jwt:qlog-sub", rows[jwt_rid]
    assert re.fullmatch(r"[0-9a-f]{64}", rows[named_rid][0]["params_hash"] or ""), rows[named_rid]
    r = qs.query("main", "SELECT 1", headers=auth(JWT_SENTINEL))
    assert r.status_code == 401
    r = qs.query_get("main", "SELECT $1 AS v", params=[PARAM_SENTINEL])
    assert r.status_code == 401
    texts = []
    for fmt in ("json", "csv", "ndjson"):
        r = qs.get("/api/admin/queries", params={"format": fmt, "limit": 10000},
                   headers=auth(admin))
        assert r.status_code == 200
        texts.append(r.text)
    texts.append(qs.get("/metrics").text)
    texts.append(qs.log())
    for t in texts:
        for secret in (PARAM_SENTINEL, NAMED_SENTINEL, analyst, admin, qs.keys["viewer"],
                       JWT_SENTINEL, "JWT-SENTINEL", SHORT_SENTINEL, token,
                       token.split(".")[2]):
            assert secret not in t, "secret %r leaked" % secret[:20]
    # The SQL text itself (the caller's own) is logged, with its placeholders.
    assert any(row["query"] == "SELECT $1 AS v, id FROM t WHERE id < 3" for row in log_rows(qs))


def test_slow_query_warn_line(qs):
    r = sql(qs, "SELECT count(*) AS n FROM range(3000000) WHERE range > $1", qs.keys["analyst"],
            params=[7])
    assert r.status_code == 200
    rid = r.headers["X-Request-Id"]
    line = wait_for(lambda: [ln for ln in qs.log().splitlines()
                             if "req=%s" % rid in ln and "slow query" in ln],
                    what="slow query line")[0]
    assert " warn " in line and "db=main" in line and "rows=1" in line and "ms=" in line
    assert "range" not in line  # neither SQL nor parameters


def test_metrics_exposed(qs):
    text = qs.get("/metrics").text
    assert "\nduckgate_query_log_dropped_total 0\n" in text
    assert "duckgate_query_log_pending" in text


def test_retention_max_rows(make_server, binary):
    s = make_log_server(make_server, binary, extra=["--query-log-max-rows", "5"])
    try:
        rids = []
        for k in range(12):
            r = sql(s, "SELECT %d AS k" % k, s.keys["analyst"])
            assert r.status_code == 200
            rids.append(r.headers["X-Request-Id"])
        rows = wait_logged(s, rids[-1:])
        assert [row["request_id"] for row in rows] == list(reversed(rids[-5:]))
    finally:
        s.close()


def test_survives_engine_and_server_restart(make_server, binary):
    s = make_log_server(make_server, binary)
    s2 = None
    try:
        analyst = s.keys["analyst"]
        rids = []
        for k in range(5):
            rids.append(sql(s, "SELECT %d AS k" % k, analyst).headers["X-Request-Id"])
        # Killed before its first flush (every ~1 s): the rows are still in the front's ring.
        pid = engine0_pid(s)
        assert pid
        os.kill(pid, signal.SIGKILL)
        for k in range(5, 10):
            r = sql(s, "SELECT %d AS k" % k, analyst)
            # Requests that were in flight on the dying engine may fail with a retryable 502.
            assert r.status_code in (200, 502, 503), r.text[:200]
            rids.append(r.headers["X-Request-Id"])
        wait_for(lambda: engine0_pid(s) not in (None, pid), what="engine 0 restart")
        for k in range(10, 13):
            rids.append(sql(s, "SELECT %d AS k" % k, analyst).headers["X-Request-Id"])
        got = by_request(wait_logged(s, rids), set(rids))
        assert set(got) == set(rids), "lost: %s" % (set(rids) - set(got))
        assert all(len(v) == 1 for v in got.values())
        m = s.get("/metrics").text
        assert "\nduckgate_query_log_dropped_total 0\n" in m

        # SIGTERM ships what is left; a new server on the same state directory has it all.
        rids.append(sql(s, "SELECT 99 AS k", analyst).headers["X-Request-Id"])
        assert s.terminate() == 0
        s2 = make_server(start=False, extra=["--auth", "on", "--keys-file", s.keys_path,
                                             "--state-dir", s.state_dir])
        s2.keys = s.keys
        s2.start()
        got = by_request(wait_logged(s2, rids), set(rids))
        assert set(got) == set(rids), "lost: %s" % (set(rids) - set(got))
        assert all(len(v) == 1 for v in got.values())
    finally:
        s.close()
        if s2:
            s2.close()


def test_query_log_off(make_server, binary):
    s = make_log_server(make_server, binary, extra=["--query-log", "off"])
    try:
        assert sql(s, "SELECT 1", s.keys["analyst"]).status_code == 200
        r = s.get("/api/admin/queries", headers=auth(s.keys["admin"]))
        assert_error(r, 404, "NOT_FOUND")
        assert not os.path.exists(os.path.join(s.state_dir, "query_log.duckdb"))
    finally:
        s.close()


def test_bad_setting_refused(binary, tmp_path):
    p = subprocess.run([binary, "serve", "--data-dir", str(tmp_path), "--query-log", "maybe"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0
    assert "query_log" in p.stderr


def test_admin_sql_on_query_log(qs):
    admin = auth(qs.keys["admin"])
    r = sql(qs, "SELECT 42 AS answer", qs.keys["analyst"])
    rid = r.headers["X-Request-Id"]
    wait_logged(qs, [rid])
    r = qs.post("/api/admin/query/_query_log", headers=admin, json={
        "sql": "SELECT status, \"rows\", query FROM query_log WHERE request_id = $1",
        "params": [rid]})
    assert r.status_code == 200, r.text[:300]
    assert r.json()["rows"] == [[200, 1, "SELECT 42 AS answer"]]
    r = qs.post("/api/admin/query/_query_log?format=csv", headers=admin,
                json={"sql": "SELECT kind, count(*) AS n FROM query_log GROUP BY kind ORDER BY 1"})
    assert r.status_code == 200 and r.text.startswith("kind,n")
    # Read-only: the log cannot be changed through SQL, and files stay out of reach.
    for text in ("DELETE FROM query_log", "DROP TABLE query_log",
                 "SELECT * FROM read_csv('/etc/passwd')", "SELECT 1; SELECT 2"):
        r = qs.post("/api/admin/query/_query_log", headers=admin, json={"sql": text})
        assert r.status_code in (400, 403), (text, r.text[:200])
        dgserver.error_body(r)
    assert log_rows(qs, limit=1)
    # Only admins.
    r = qs.post("/api/admin/query/_query_log", headers=auth(qs.keys["analyst"]),
                json={"sql": "SELECT 1"})
    assert_error(r, 403, "FORBIDDEN")
    assert_error(qs.post("/api/admin/query/_query_log", json={"sql": "SELECT 1"}), 401)


def test_scoped_admin_key_cannot_read(make_server, binary):
    s = make_log_server(make_server, binary, more_keys={"scoped": ("admin", "--db", "main")})
    try:
        scoped = s.keys["scoped"]
        assert_error(s.get("/api/admin/queries", headers=auth(scoped)), 403, "FORBIDDEN")
        r = s.post("/api/admin/query/_query_log", headers=auth(scoped), json={"sql": "SELECT 1"})
        assert_error(r, 403, "FORBIDDEN")
    finally:
        s.close()


def test_state_dir_must_not_be_data_dir(make_server):
    s = make_server(start=False, extra=["--state-dir", "DATA"])
    s.args[s.args.index("DATA")] = s.data_dir
    with pytest.raises(dgserver.ServerError) as e:
        s.start()
    assert "the data directory" in str(e.value)
    s.close()


def metrics_of(s):
    """/metrics as {(name, frozenset(labels)): value}."""
    out = {}
    for line in s.get("/metrics").text.splitlines():
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$', line)
        if m:
            labels = frozenset(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"',
                                          m.group(2) or ""))
            out[(m.group(1), labels)] = float(m.group(3))
    return out


def test_named_admin_and_new_fields(qs, jk):
    """Named queries (kind named, the name and a hash of the values), admin SQL (kind admin) and
    the columns params_hash, execute_ms, encode_ms and client_addr, for key and JWT callers."""
    analyst, admin = qs.keys["analyst"], qs.keys["admin"]
    tag = str(time.time_ns())[-6:]
    n1 = named(qs, "search", {"q": "a" + tag}, key=analyst)
    n2 = named(qs, "search", {"q": "a" + tag}, key=analyst)  # the same values
    n3 = named(qs, "search", {"q": "b" + tag}, key=analyst)  # other values
    for r in (n1, n2, n3):
        assert r.status_code == 200, r.text[:300]
    adm_sql = "SELECT 7 AS seven -- %s" % tag
    a1 = qs.post("/api/admin/query/main", json={"sql": adm_sql}, headers=auth(admin))
    assert a1.status_code == 200, a1.text[:300]
    a2 = qs.post("/api/admin/query/main", json={"sql": "SELEC 7"}, headers=auth(admin))
    assert_error(a2, 400, "SQL_ERROR")
    token = jk.hs256(jk.claims(sub="field-sub", role="analyst"))
    slow_sql = "SELECT count(*) AS n FROM range(3000000) WHERE range > 7 -- %s" % tag
    j1 = qs.query("main", slow_sql, headers=bearer(token))
    assert j1.status_code == 200, j1.text[:300]
    resps = {"n1": n1, "n2": n2, "n3": n3, "a1": a1, "a2": a2, "j1": j1}
    ids = {k: r.headers["X-Request-Id"] for k, r in resps.items()}
    got = by_request(wait_logged(qs, ids.values()), set(ids.values()))
    rows = {}
    for k, rid in ids.items():
        assert len(got.get(rid, [])) == 1, (k, got.get(rid))
        rows[k] = got[rid][0]
    for k in ("n1", "n2", "n3"):
        row = rows[k]
        assert row["kind"] == "named" and row["db"] == "main" and row["query"] == "search", row
        assert row["role"] == "analyst" and row["principal"].startswith("key:"), row
        assert re.fullmatch(r"[0-9a-f]{64}", row["params_hash"] or ""), row
        assert tag not in json.dumps(row), row  # the values never appear
    assert rows["n1"]["params_hash"] == rows["n2"]["params_hash"]
    assert rows["n1"]["params_hash"] != rows["n3"]["params_hash"]
    assert rows["a1"]["kind"] == "admin" and rows["a1"]["query"] == adm_sql, rows["a1"]
    assert rows["a1"]["role"] == "admin" and rows["a1"]["rows"] == 1, rows["a1"]
    assert rows["a2"]["kind"] == "admin" and rows["a2"]["status"] == 400, rows["a2"]
    assert rows["a2"]["code"] == "SQL_ERROR", rows["a2"]
    assert rows["j1"]["principal"] == "jwt:field-sub" and rows["j1"]["kind"] == "sql", rows["j1"]
    for k, row in rows.items():
        # Every caller's address has its own column (keys and JWTs too).
        assert row["client_addr"] == "127.0.0.1", (k, row)
        if k not in ("n1", "n2", "n3"):
            assert row["params_hash"] is None, (k, row)
    # Engine timings: what ran on an engine has them, within its duration.
    for k in ("n1", "a1", "j1"):
        row = rows[k]
        assert row["execute_ms"] is not None and row["encode_ms"] is not None, (k, row)
        assert 0 <= row["execute_ms"] <= row["duration_ms"] + 1, (k, row)
        assert 0 <= row["encode_ms"] <= row["duration_ms"] + 1, (k, row)
    assert rows["j1"]["execute_ms"] > 0, rows["j1"]
    # The columns are there for admin SQL too.
    r = qs.post("/api/admin/query/_query_log", headers=auth(admin), json={
        "sql": "SELECT kind, params_hash, client_addr, execute_ms IS NOT NULL FROM query_log "
               "WHERE request_id = $1", "params": [ids["n1"]]})
    assert r.status_code == 200, r.text[:300]
    assert r.json()["rows"] == [["named", rows["n1"]["params_hash"], "127.0.0.1", True]]


def test_query_kinds_and_cancel_metrics(qs):
    """duckgate_queries_total and the duration histogram count every kind (sql, named, admin,
    job) with exact deltas; a cancelled job counts an interrupt with reason cancel."""
    analyst, admin = qs.keys["analyst"], qs.keys["admin"]
    before = metrics_of(qs)
    for kind in ("sql", "named", "admin", "job"):
        assert ("duckgate_queries_total",
                frozenset({("db", "main"), ("kind", kind), ("status", "200")})) in before, kind
    tag = time.time_ns()
    for i in range(2):
        assert sql(qs, "SELECT %d AS i -- %d" % (i, tag), analyst).status_code == 200
    assert named(qs, "search", {"q": "k%d" % (tag % 100000)}, key=analyst).status_code == 200
    assert qs.post("/api/admin/query/main", json={"sql": "SELECT 1"},
                   headers=auth(admin)).status_code == 200
    assert_error(qs.post("/api/admin/query/main", json={"sql": "SELEC 1"}, headers=auth(admin)),
                 400, "SQL_ERROR")
    done = submit_job(qs, "SELECT 5 AS five -- %d" % tag)
    assert wait_job(qs, done)["state"] == "done"
    cancelled = cancel_running_job(qs)
    after = metrics_of(qs)

    def delta(name, **labels):
        key = (name, frozenset(labels.items()))
        return after.get(key, 0) - before.get(key, 0)

    q = "duckgate_queries_total"
    assert delta(q, db="main", kind="sql", status="200") == 2
    assert delta(q, db="main", kind="named", status="200") == 1
    assert delta(q, db="main", kind="admin", status="200") == 1
    assert delta(q, db="main", kind="admin", status="400") == 1
    assert delta(q, db="main", kind="job", status="200") == 1
    assert delta(q, db="main", kind="job", status="499") == 1
    h = "duckgate_query_duration_seconds_count"
    assert delta(h, db="main", kind="sql") == 2
    assert delta(h, db="main", kind="named") == 1
    assert delta(h, db="main", kind="admin") == 2
    assert delta(h, db="main", kind="job") == 2
    assert delta("duckgate_interrupts_total", reason="cancel") == 1
    assert delta("duckgate_interrupts_total", reason="deadline") == 0


def test_retention_by_age(make_server, binary):
    """Rows older than query_log_retention_days go at the first store of a new process: rows
    written into the file while the server was stopped, 40 and 10 days old, with 30 days."""
    s = make_log_server(make_server, binary, extra=["--query-log-retention-days", "30"])
    s2 = None
    try:
        rid = sql(s, "SELECT 1 AS one", s.keys["analyst"]).headers["X-Request-Id"]
        wait_logged(s, [rid])
        assert s.terminate() == 0
        path = os.path.join(s.state_dir, "query_log.duckdb")
        dgserver.exec_sql(binary, path,
                          "INSERT INTO query_log (ts, request_id, kind, status, front, seq) VALUES "
                          "(now()::TIMESTAMP - INTERVAL 40 DAY, 'ancient-40d', 'sql', 200, "
                          "'old-front', 1), "
                          "(now()::TIMESTAMP - INTERVAL 10 DAY, 'recent-10d', 'sql', 200, "
                          "'old-front', 2)")
        s2 = make_server(start=False, extra=["--auth", "on", "--keys-file", s.keys_path,
                                             "--state-dir", s.state_dir,
                                             "--query-log-retention-days", "30"])
        s2.keys = s.keys
        s2.start()
        rid2 = sql(s2, "SELECT 2 AS two", s2.keys["analyst"]).headers["X-Request-Id"]
        ids = {row["request_id"] for row in wait_logged(s2, [rid2])}
        assert rid2 in ids and rid in ids and "recent-10d" in ids, ids
        assert "ancient-40d" not in ids, ids
    finally:
        s.close()
        if s2:
            s2.close()
