"""The result cache (docs/cache.md): hits answered from memory without an engine, the 304 flow,
Cache-Status / ETag / Cache-Control, role scope, volatile functions never cached, eviction by
entries, oversized results streaming through uncached, never stale after an admin write or a
snapshot swap, single-flight of 50 identical slow queries, the admin bypass, the admin routes
and the metrics."""

import concurrent.futures
import gzip
import itertools
import json
import os
import re
import signal
import subprocess
import tempfile
import time

import pytest

import dgserver
from dgserver import add_key, assert_error
from duckdb_reader import DuckDB

RW_SQL = """
CREATE TABLE items (id INTEGER, name VARCHAR);
INSERT INTO items VALUES (1, 'one'), (2, 'two');
CHECKPOINT;
"""


def swap_sql(v):
    return "CREATE TABLE t (v INTEGER); INSERT INTO t VALUES (%d); CHECKPOINT;" % v


# Named queries (docs/named-queries.md) the cache must handle like raw SQL.
NAMED = {
    "main/by_id.sql": "-- @roles viewer\n-- @cache public\n-- @cache_ttl 60\n"
                      "-- @param id INTEGER required min=1 max=100\n"
                      "SELECT id, name FROM t WHERE id = $id\n",
    "main/lucky.sql": "-- @roles viewer\n-- @param id INTEGER required\n"
                      "SELECT $id + random() AS r\n",
    "main/uncached.sql": "-- @roles viewer\n-- @cache_ttl 0\n"
                         "SELECT count(*) AS n FROM t\n",
    "crw/count.sql": "-- @roles viewer\nSELECT count(*) AS n, max(id) AS m FROM items\n",
    "crw/names.sql": "-- @roles viewer\n-- @param after INTEGER default=0\n"
                     "SELECT string_agg(name, ',' ORDER BY id) AS names FROM items "
                     "WHERE id > $after\n",
    "cswap/maxv.sql": "-- @roles viewer\n-- @param min INTEGER default=0\n"
                      "SELECT max(v) AS v FROM t WHERE v >= $min\n",
}


def start(make_server, binary, fixtures, extra=(), engines=2, slots=2):
    """Auth on, a key per role, databases main, other, crw (read-write) and cswap, the named
    queries of NAMED."""
    fixtures.build("crw", RW_SQL)
    fixtures.build("cswap", swap_sql(1))
    s = make_server(dbs=("main", "other", "crw", "cswap"), engines=engines, slots=slots,
                    start=False, extra=["--auth", "on", "--keys-file", "KEYS",
                                        "--read-write-databases", "crw",
                                        "--queries-dir", "QDIR"] + list(extra))
    qdir = os.path.join(s.dir, "queries")
    for rel, text in NAMED.items():
        os.makedirs(os.path.join(qdir, os.path.dirname(rel)), exist_ok=True)
        with open(os.path.join(qdir, rel), "w") as f:
            f.write(text)
    s.args[s.args.index("QDIR")] = qdir
    path = s.use_keys_file()
    s.keys = {
        "admin": add_key(binary, path, "admin"),
        "analyst": add_key(binary, path, "analyst"),
        "analyst2": add_key(binary, path, "analyst", "--name", "ana2"),
        "scoped": add_key(binary, path, "analyst", "--db", "main", "--name", "scoped"),
        "viewer": add_key(binary, path, "viewer"),
    }
    return s.start()


def hdr(s, role, **extra):
    h = {"Authorization": "Bearer " + s.keys[role]}
    h.update(extra)
    return h


def q(s, sql, role="analyst", db="main", fmt=None, headers=None, args=""):
    path = "/api/query/%s?format=%s%s" % (db, fmt or "json", args)
    h = hdr(s, role, **{"Content-Type": "application/json"})
    h.update(headers or {})
    return s.post(path, data=json.dumps({"sql": sql}), headers=h, timeout=120)


def status(r):
    return r.headers.get("Cache-Status", "")


def is_hit(r):
    return r.status_code == 200 and re.match(r"^duckgate; hit\b", status(r)) is not None


def is_stored_miss(r):
    """A miss whose response is deterministic and is being stored (if it fits): the head cannot
    promise "stored" (docs/cache.md), the ETag marks it storable."""
    return (r.status_code == 200 and status(r) == "duckgate; fwd=uri-miss"
            and "ETag" in r.headers)


def cache_stats(s, db=None):
    r = s.get("/api/admin/cache" + ("/" + db if db else ""), headers=hdr(s, "admin"))
    assert r.status_code == 200, r.text[:300]
    return r.json()


def metric(s, name):
    text = s.get("/metrics").text
    m = re.search(r"^%s (\S+)$" % re.escape(name), text, re.M)
    assert m, "metric %s missing" % name
    return float(m.group(1))


@pytest.fixture(scope="module")
def srv(make_server, binary, fixtures):
    s = start(make_server, binary, fixtures)
    yield s
    s.close()


@pytest.fixture(scope="module")
def small(make_server, binary, fixtures):
    """Tiny caps: 3 entries per database, 4 KiB per entry."""
    s = start(make_server, binary, fixtures, extra=["--cache-max-entries-per-db", "3",
                                                     "--cache-max-entry-bytes", "4096"])
    yield s
    s.close()


# ---- hits ---------------------------------------------------------------------------------------


def test_hit_replays_bytes_and_needs_no_engine(srv):
    sql = "SELECT grp, count(*) AS n, sum(score) AS s FROM t GROUP BY grp ORDER BY grp"
    a = q(srv, sql)
    assert is_stored_miss(a), a.headers
    etag = a.headers["ETag"]
    assert re.match(r'^"[0-9a-f]{32}"$', etag)
    assert a.headers["Cache-Control"] == "private"
    assert "cache;dur=" in a.headers["Server-Timing"]
    b = q(srv, sql)
    assert is_hit(b), b.headers
    assert b.content == a.content
    assert b.headers["ETag"] == etag
    assert b.headers["Cache-Control"] == "private"
    assert b.headers["Content-Type"] == a.headers["Content-Type"]
    assert int(b.headers["Age"]) >= 0
    assert b.headers["Server-Timing"].startswith("cache;dur=")
    # No engine work: with every engine stopped (SIGSTOP), a hit still answers at once; a miss
    # would wait for a slot until its deadline.
    pids = srv.engine_pids()
    assert pids
    for p in pids:
        os.kill(p, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        c = q(srv, sql)
        assert is_hit(c) and c.content == a.content
        assert time.monotonic() - t0 < 2.0
    finally:
        for p in pids:
            os.kill(p, signal.SIGCONT)


def test_not_modified(srv):
    # GET (a named query, the catalog): a matching If-None-Match answers 304 with no body.
    for path in ("/api/q/main/by_id?id=42", "/api/databases/other"):
        a = srv.get(path, headers=hdr(srv, "viewer"))
        assert a.status_code == 200, a.text[:300]
        etag = a.headers["ETag"]
        for inm in (etag, "W/" + etag, '"nope", W/"x",' + etag, "*", '"a" ,\t' + etag):
            r = srv.get(path, headers=hdr(srv, "viewer", **{"If-None-Match": inm}))
            assert r.status_code == 304, (path, inm, r.status_code)
            assert r.content == b""
            assert r.headers["ETag"] == etag
            assert r.headers["Cache-Status"].startswith("duckgate; hit")
            assert "Content-Encoding" not in r.headers
        for inm in ('"0000"', etag[:-2] + '"', "W/", '"a", "b"', etag + "x"):
            r = srv.get(path, headers=hdr(srv, "viewer", **{"If-None-Match": inm}))
            assert r.status_code == 200 and r.content == a.content, (path, inm)
        h = srv.request("HEAD", path, headers=hdr(srv, "viewer", **{"If-None-Match": etag}))
        assert h.status_code == 304
    # POST: a match means the precondition failed (RFC 9110 13.1.2): 412, never 304.
    sql = "SELECT id, name FROM t WHERE id < 5 ORDER BY id"
    a = q(srv, sql)
    assert a.status_code == 200
    etag = a.headers["ETag"]
    for inm in (etag, "W/" + etag, 'W/"nope", ' + etag, "*"):
        r = q(srv, sql, headers={"If-None-Match": inm})
        assert_error(r, 412, "PRECONDITION_FAILED")
    def post_named(**extra):
        return srv.post("/api/q/main/by_id", data=json.dumps({"params": {"id": 43}}),
                        headers=hdr(srv, "viewer", **dict({"Content-Type": "application/json"},
                                                          **extra)))
    n = post_named()
    assert n.status_code == 200
    assert_error(post_named(**{"If-None-Match": n.headers["ETag"]}), 412, "PRECONDITION_FAILED")
    assert post_named(**{"If-None-Match": etag}).content == n.content  # another key's tag
    r = q(srv, sql, headers={"If-None-Match": '"0000"'})
    assert r.status_code == 200 and r.content == a.content


def test_formats_and_encodings_are_separate_entries(srv):
    sql = "SELECT id, name FROM t ORDER BY id LIMIT 20"
    seen = set()
    for fmt, enc in (("json", None), ("csv", None), ("ndjson", None), ("ndjson", "gzip")):
        h = {"Accept-Encoding": enc or "identity"}
        a = q(srv, sql, fmt=fmt, headers=h)
        assert is_stored_miss(a), (fmt, enc, a.headers)
        b = q(srv, sql, fmt=fmt, headers=h)
        assert is_hit(b), (fmt, enc, b.headers)
        assert b.content == a.content  # decoded by requests when gzip
        assert b.headers.get("Content-Encoding") == a.headers.get("Content-Encoding") == enc
        seen.add(a.headers["ETag"])
    assert len(seen) == 4
    # The replayed gzip bytes are a valid gzip stream of the NDJSON lines.
    raw = srv.post("/api/query/main?format=ndjson", data=json.dumps({"sql": sql}),
                   headers=hdr(srv, "analyst", **{"Accept-Encoding": "gzip"}), stream=True)
    body = gzip.decompress(raw.raw.read())
    assert body.count(b'"type":"rows"') >= 1 and body.rstrip().endswith(b"}")


def test_whitespace_normalised_sql_shares_an_entry(srv):
    a = q(srv, "SELECT  name\n FROM t  WHERE id = 7")
    b = q(srv, " SELECT name FROM t WHERE id = 7 ")
    assert is_stored_miss(a) and is_hit(b)
    assert q(srv, "SELECT name FROM t WHERE name = 'name_7  '").headers["ETag"] != a.headers["ETag"]


# ---- role scope ------------------------------------------------------------------------------


def test_role_scope(srv):
    sql = "SELECT count(*) AS n FROM t WHERE id > 3"
    assert is_stored_miss(q(srv, sql, role="admin"))
    # Another scope never gets the admin's bytes: its first request is a miss of its own.
    assert is_stored_miss(q(srv, sql, role="analyst"))
    assert is_hit(q(srv, sql, role="analyst"))
    # The same role and database scope shares (another key of the same kind).
    assert is_hit(q(srv, sql, role="analyst2"))
    # A key limited to main is a narrower scope.
    assert is_stored_miss(q(srv, sql, role="scoped"))
    assert is_hit(q(srv, sql, role="scoped"))
    # The catalog route (viewer+): the admin's cached catalog is not the viewer's.
    a = srv.get("/api/databases/main", headers=hdr(srv, "admin"))
    assert is_stored_miss(a), a.headers
    v = srv.get("/api/databases/main", headers=hdr(srv, "viewer"))
    assert is_stored_miss(v), v.headers
    assert is_hit(srv.get("/api/databases/main", headers=hdr(srv, "viewer")))


# ---- volatile --------------------------------------------------------------------------------


@pytest.mark.parametrize("sql", [
    "SELECT random() AS r",
    "SELECT now() AS t",
    "SELECT current_date AS d",
    "SELECT CURRENT_TIMESTAMP AS t",
    "SELECT localtimestamp AS t",
    "SELECT uuid() AS u",
    "SELECT gen_random_uuid() AS u",
    "SELECT age(DATE '2000-01-01') AS a",
    "SELECT x FROM (SELECT id + random() AS x FROM t) WHERE x > 0 LIMIT 1",
    "SELECT count(*) AS n FROM t USING SAMPLE 10",
    "SELECT count(*) AS n FROM t TABLESAMPLE 5 ROWS",
])
def test_volatile_not_cached(srv, sql):
    for _ in range(2):
        r = q(srv, sql)
        assert r.status_code == 200, r.text[:300]
        assert status(r) == "duckgate; fwd=uri-miss; detail=volatile", (sql, r.headers)
        assert "ETag" not in r.headers


def test_deterministic_lookalikes_are_cached(srv):
    # Names inside strings, and a plain column, are not calls.
    for sql in ("SELECT 'now()' AS s, 'random' AS t", "SELECT d FROM t WHERE id = 3",
                "SELECT date_part('year', d) AS y FROM t WHERE id = 4"):
        assert is_stored_miss(q(srv, sql)), sql
        assert is_hit(q(srv, sql)), sql


# ---- errors and bypass --------------------------------------------------------------------------


def test_errors_are_not_cached(srv):
    for _ in range(2):
        r = q(srv, "SELECT nope FROM t")
        assert_error(r, 400, "SQL_ERROR")


def test_stream_that_fails_is_not_stored(srv):
    # Deterministic, but the cast fails far into the stream (past the rows DuckDB buffers before
    # the first chunk, so after HEAD): the NDJSON body ends with an error line, the response is
    # incomplete and must not be stored.
    sql = ("SELECT CAST(CASE WHEN i < 500000 THEN '1' ELSE 'x' END AS INTEGER) AS v "
           "FROM range(510000) r(i)")
    for _ in range(2):
        r = q(srv, sql, fmt="ndjson")
        assert r.status_code == 200, r.text[:300]
        assert not is_hit(r), r.headers
        last = json.loads(r.text.splitlines()[-1])
        assert last["type"] == "error", last


def test_admin_bypass(srv):
    sql = "SELECT max(id) AS m FROM t"
    assert is_stored_miss(q(srv, sql, role="admin"))
    assert is_hit(q(srv, sql, role="admin"))
    r = q(srv, sql, role="admin", args="&cache=bypass")
    assert r.status_code == 200 and status(r) == "duckgate; fwd=bypass"
    r = q(srv, sql, role="admin", headers={"Cache-Control": "no-cache"})
    assert r.status_code == 200 and status(r) == "duckgate; fwd=bypass"
    # Not an admin: the argument is refused, the header (a browser reload) is ignored.
    assert_error(q(srv, sql, role="analyst", args="&cache=bypass"), 403, "FORBIDDEN")
    assert_error(q(srv, sql, role="admin", args="&cache=nope"), 400, "BAD_REQUEST")
    q(srv, sql, role="analyst")
    assert is_hit(q(srv, sql, role="analyst", headers={"Cache-Control": "no-cache"}))


# ---- admin routes and metrics -------------------------------------------------------------------


def test_admin_routes(srv):
    sql = "SELECT count(*) AS n FROM t WHERE id < 50"
    q(srv, sql)
    assert is_hit(q(srv, sql))
    st = cache_stats(srv)
    assert st["enabled"] is True and st["max_bytes"] > 0
    main = [d for d in st["databases"] if d["db"] == "main"][0]
    assert main["entries"] >= 1 and main["bytes"] > 0 and main["hits"] >= 1
    assert 0 < main["hit_ratio"] <= 1
    one = cache_stats(srv, "main")
    assert [d["db"] for d in one["databases"]] == ["main"]
    assert_error(srv.get("/api/admin/cache", headers=hdr(srv, "analyst")), 403, "FORBIDDEN")
    assert_error(srv.get("/api/admin/cache"), 401, "UNAUTHORIZED")
    assert_error(srv.request("DELETE", "/api/admin/cache/nope", headers=hdr(srv, "admin")), 404,
                 "UNKNOWN_DB")
    assert_error(srv.post("/api/admin/cache", headers=hdr(srv, "admin")), 405)
    r = srv.request("DELETE", "/api/admin/cache/main", headers=hdr(srv, "admin"))
    assert r.status_code == 200 and r.json()["cleared"] >= 1
    assert cache_stats(srv, "main")["databases"][0]["entries"] == 0
    assert is_stored_miss(q(srv, sql))
    r = srv.request("DELETE", "/api/admin/cache", headers=hdr(srv, "admin"))
    assert r.status_code == 200
    assert cache_stats(srv)["total"]["entries"] == 0


def test_metrics(srv):
    sql = "SELECT count(*) AS n FROM t WHERE id < 60"
    q(srv, sql)
    q(srv, sql)
    assert metric(srv, "duckgate_cache_hits_total") >= 1
    assert metric(srv, "duckgate_cache_misses_total") >= 1
    assert metric(srv, "duckgate_cache_entries") >= 1
    assert metric(srv, "duckgate_cache_bytes") > 0
    assert metric(srv, "duckgate_cache_evictions_total") >= 0


# ---- never stale --------------------------------------------------------------------------------


def admin_sql(s, db, sql):
    r = s.post("/api/admin/query/" + db, data=json.dumps({"sql": sql}),
               headers=hdr(s, "admin", **{"Content-Type": "application/json"}), timeout=120)
    assert r.status_code == 200, r.text[:300]
    return r


@pytest.mark.parametrize("fmt", ["json", "ndjson", "csv"])
def test_never_stale_after_admin_write(srv, fmt):
    sql = "SELECT count(*) AS n, max(id) AS m FROM items"
    a = q(srv, sql, db="crw", fmt=fmt)
    assert is_stored_miss(a), a.headers
    assert is_hit(q(srv, sql, db="crw", fmt=fmt))
    admin_sql(srv, "crw", "INSERT INTO items SELECT max(id) + 1, 'new' FROM items")
    b = q(srv, sql, db="crw", fmt=fmt)
    assert is_stored_miss(b), b.headers
    assert b.content != a.content and b.headers["ETag"] != a.headers["ETag"]
    c = q(srv, sql, db="crw", fmt=fmt)
    assert is_hit(c) and c.content == b.content


def test_never_stale_after_snapshot_swap(srv):
    sql = "SELECT max(v) AS v FROM t"
    a = q(srv, sql, db="cswap")
    assert a.status_code == 200
    v0 = a.json()["rows"][0][0]
    assert is_hit(q(srv, sql, db="cswap"))
    nxt = os.path.join(srv.data_dir, "cswap.duckdb.next")
    dgserver.exec_sql(srv.binary, nxt, swap_sql(v0 + 1))
    r = srv.post("/api/admin/reload/cswap", headers=hdr(srv, "admin"), timeout=180)
    assert r.status_code == 200, r.text[:300]
    b = q(srv, sql, db="cswap")
    assert is_stored_miss(b), b.headers
    assert b.json()["rows"][0][0] == v0 + 1


# ---- named queries --------------------------------------------------------------------------------


def named(s, db, name, role="viewer", fmt="json", **params):
    qs = "&".join("%s=%s" % kv for kv in params.items())
    return s.get("/api/q/%s/%s?format=%s&%s" % (db, name, fmt, qs), headers=hdr(s, role))


def test_named_query_cached_with_its_options(srv):
    a = named(srv, "main", "by_id", id=7)
    assert is_stored_miss(a), (a.status_code, a.headers, a.text[:200])
    assert a.headers["Cache-Control"] == "public, max-age=60"
    # Shared caches may keep it, so the answer varies with the credential (the key's scope).
    assert "Authorization" in ", ".join(v for k, v in a.headers.items() if k.lower() == "vary")
    b = named(srv, "main", "by_id", id=7)
    assert is_hit(b) and b.content == a.content
    # Other values are other entries; the same values by another scope too.
    assert is_stored_miss(named(srv, "main", "by_id", id=8))
    assert is_stored_miss(named(srv, "main", "by_id", role="analyst", id=7))
    # @cache_ttl 0 and volatile statements are never cached.
    for _ in range(2):
        r = named(srv, "main", "uncached")
        assert r.status_code == 200 and status(r) == "duckgate; fwd=bypass; detail=uncacheable"
        r = named(srv, "main", "lucky", id=1)
        assert r.status_code == 200 and status(r) == "duckgate; fwd=uri-miss; detail=volatile"


@pytest.mark.parametrize("fmt", ["json", "ndjson", "csv"])
def test_named_query_never_stale_after_admin_write(srv, fmt):
    a = named(srv, "crw", "count", fmt=fmt)
    assert is_stored_miss(a), (a.status_code, a.headers, a.text[:200])
    assert is_hit(named(srv, "crw", "count", fmt=fmt))
    admin_sql(srv, "crw", "INSERT INTO items SELECT max(id) + 1, 'n' FROM items")
    b = named(srv, "crw", "count", fmt=fmt)
    assert is_stored_miss(b) and b.content != a.content


# ---- caps -----------------------------------------------------------------------------------------


def test_eviction_by_entries(small):
    sqls = ["SELECT %d AS k, count(*) AS n FROM t" % i for i in range(4)]
    for s in sqls[:3]:
        assert is_stored_miss(q(small, s))
    assert is_hit(q(small, sqls[0]))  # sqls[1] is now the least recently used
    assert is_stored_miss(q(small, sqls[3]))
    assert is_stored_miss(q(small, sqls[1]))  # evicted
    st = cache_stats(small, "main")
    assert st["max_entries_per_db"] == 3 and st["max_entry_bytes"] == 4096
    main = st["databases"][0]
    assert main["entries"] == 3 and main["evictions"] >= 2
    # Another database has its own cap.
    assert is_stored_miss(q(small, "SELECT 1 AS x", db="other"))
    assert cache_stats(small, "main")["databases"][0]["entries"] == 3
    assert metric(small, "duckgate_cache_evictions_total") >= 2


def test_oversized_result_streams_uncached(small):
    sql = "SELECT i, 'row ' || i AS s FROM range(20000) r(i) ORDER BY i"
    before = cache_stats(small, "main")["databases"][0]["too_big"]
    for _ in range(2):
        r = small.post("/api/query/main?format=ndjson", data=json.dumps({"sql": sql}),
                       headers=hdr(small, "analyst"), timeout=120)
        assert r.status_code == 200
        lines = r.text.splitlines()
        rows = sum(len(json.loads(ln)["rows"]) for ln in lines if '"type":"rows"' in ln)
        assert rows == 20000
        assert json.loads(lines[-1])["type"] == "end"
        assert not is_hit(r)
    assert cache_stats(small, "main")["databases"][0]["too_big"] >= before + 2


# ---- single-flight --------------------------------------------------------------------------------


def test_single_flight_50_identical_slow_queries(srv):
    # A query of about 1.5 s here, scaled from a measured run of a variant (another key, so
    # the measured query itself starts cold).
    h = hdr(srv, "analyst", **{"Content-Type": "application/json"})
    n = 2_000_000
    for _ in range(6):
        t0 = time.monotonic()
        r = q(srv, "SELECT count(*) AS c FROM range(%d) r(i) WHERE hash(i) %% 7 <> 99" % n)
        dt = time.monotonic() - t0
        assert r.status_code == 200, r.text[:300]
        if dt > 0.2:
            n = int(n * 1.5 / dt)
            break
        n *= 8
    sql = "SELECT count(*) AS c FROM range(%d) r(i) WHERE hash(i) %% 7 <> 98" % n
    before = cache_stats(srv, "main")["databases"][0]

    def one(_):
        return srv.post("/api/query/main", data=json.dumps({"sql": sql}), headers=h, timeout=120)

    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(50) as ex:
        rs = list(ex.map(one, range(50)))
    wall = time.monotonic() - t0
    assert all(r.status_code == 200 for r in rs), [r.text[:200] for r in rs if r.status_code != 200]
    assert len({r.content for r in rs}) == 1
    misses = [r for r in rs if is_stored_miss(r)]
    assert len(misses) == 1, [status(r) for r in rs]
    assert all(is_hit(r) for r in rs if r is not misses[0])
    after = cache_stats(srv, "main")["databases"][0]
    assert after["stored"] - before["stored"] == 1
    # 50 executions on 4 slots would take more than 12 times one run.
    single = float(re.search(r"execute;dur=([\d.]+)", misses[0].headers["Server-Timing"]).group(1))
    assert wall < max(3 * single / 1000.0, single / 1000.0 + 5.0), (wall, single)


# ---- cache off ------------------------------------------------------------------------------------


def test_cache_off(make_server):
    s = make_server(extra=["--cache", "off"])
    try:
        for _ in range(2):
            r = s.query("main", "SELECT count(*) AS n FROM t")
            assert r.status_code == 200
            assert r.headers["Cache-Status"] == "duckgate; fwd=bypass; detail=off"
            assert "ETag" not in r.headers
            assert r.headers["Cache-Control"] == "private"
        st = s.get("/api/admin/cache").json()  # auth off: public analyst is not admin
        assert "error" in st
    finally:
        s.close()


def test_bad_cache_setting(binary, fixtures, tmp_root):
    s = dgserver.Server(binary, fixtures, dbs=("main",), extra=["--cache", "maybe"],
                        tmp_root=tmp_root)
    with pytest.raises(dgserver.ServerError):
        s.start()
    assert "bad value \"maybe\" for cache: expected on or off" in s.log()
    s.close()


# ---- admin bypass on named queries ----------------------------------------------------------------


def test_admin_bypass_named(srv):
    a = named(srv, "main", "by_id", role="admin", id=11)
    assert is_stored_miss(a), (a.status_code, a.text[:300])
    assert is_hit(named(srv, "main", "by_id", role="admin", id=11))
    # ?cache=bypass is not a parameter of the query: an admin's GET runs it again.
    r = named(srv, "main", "by_id", role="admin", id=11, cache="bypass")
    assert r.status_code == 200 and status(r) == "duckgate; fwd=bypass", (r.status_code, r.text)
    assert r.json()["rows"] == a.json()["rows"]
    r = srv.get("/api/q/main/by_id?id=11", headers=hdr(srv, "admin", **{"Cache-Control": "no-cache"}))
    assert r.status_code == 200 and status(r) == "duckgate; fwd=bypass"
    r = srv.post("/api/q/main/by_id?cache=bypass", data=json.dumps({"params": {"id": 11}}),
                 headers=hdr(srv, "admin", **{"Content-Type": "application/json"}))
    assert r.status_code == 200 and status(r) == "duckgate; fwd=bypass"
    # Bypassing does not touch the entry.
    assert is_hit(named(srv, "main", "by_id", role="admin", id=11))
    # Anyone else: the argument is refused, the header (a browser reload) is ignored.
    assert_error(named(srv, "main", "by_id", role="viewer", id=11, cache="bypass"), 403,
                 "FORBIDDEN")
    r = srv.post("/api/q/main/by_id?cache=bypass", data=json.dumps({"params": {"id": 11}}),
                 headers=hdr(srv, "viewer", **{"Content-Type": "application/json"}))
    assert_error(r, 403, "FORBIDDEN")
    assert_error(named(srv, "main", "by_id", role="admin", id=11, cache="nope"), 400,
                 "BAD_REQUEST")
    named(srv, "main", "by_id", role="viewer", id=11)
    r = srv.get("/api/q/main/by_id?id=11", headers=hdr(srv, "viewer", **{"Cache-Control": "no-cache"}))
    assert is_hit(r), r.headers


# ---- never stale, every format and coding ---------------------------------------------------------

DECODERS = {"gzip": ["gzip", "-d", "-c"], "zstd": ["zstd", "-d", "-c"], "br": ["brotli", "-d", "-c"]}


def fetch(s, path, role="analyst", enc=None, body=None):
    """GET (body None) or POST path; returns (response, wire bytes, decoded bytes)."""
    h = hdr(s, role, **{"Accept-Encoding": enc or "identity"})
    if body is None:
        r = s.get(path, headers=h, stream=True, timeout=120)
    else:
        h["Content-Type"] = "application/json"
        r = s.post(path, data=json.dumps(body), headers=h, stream=True, timeout=120)
    wire = r.raw.read(decode_content=False)
    r.close()
    coding = r.headers.get("Content-Encoding")
    if r.status_code == 200:
        assert coding == (enc if enc else None) or (coding is None and "parquet" in path), \
            (path, enc, coding)
    data = wire
    if coding:
        p = subprocess.run(DECODERS[coding], input=wire, stdout=subprocess.PIPE, timeout=60)
        assert p.returncode == 0, (path, coding)
        data = p.stdout
    return r, wire, data


_marks = itertools.count(1)


def never_stale(s, path, body, enc, write):
    """The flow: a storable miss, a hit with the same wire bytes, write() (returns a marker the
    new data holds), then a miss whose decoded body holds the marker, then its hit."""
    a, wa, da = fetch(s, path, enc=enc, body=body)
    assert is_stored_miss(a), (path, enc, a.status_code, a.headers, wa[:300])
    b, wb, _ = fetch(s, path, enc=enc, body=body)
    assert is_hit(b) and wb == wa, (path, enc, b.headers)
    assert b.headers.get("ETag") == a.headers["ETag"]
    mark = write()
    assert mark not in da
    c, wc, dc = fetch(s, path, enc=enc, body=body)
    assert is_stored_miss(c), (path, enc, c.headers)
    assert c.headers["ETag"] != a.headers["ETag"]
    assert mark in dc, (path, enc, dc[:300])
    d, wd, _ = fetch(s, path, enc=enc, body=body)
    assert is_hit(d) and wd == wc, (path, enc, d.headers)


def insert_mark(s):
    mark = "mark%d_%d" % (os.getpid(), next(_marks))
    admin_sql(s, "crw", "INSERT INTO items SELECT max(id) + 1, '%s' FROM items" % mark)
    return mark.encode()


NAMES_SQL = "SELECT string_agg(name, ',' ORDER BY id) AS names FROM items WHERE id > 0"
FORMATS = ["json", "ndjson", "csv", "tsv", "arrow"]
CODINGS = [None, "gzip", "zstd", "br"]


@pytest.mark.parametrize("fmt,enc", [(f, e) for f in FORMATS for e in CODINGS])
def test_never_stale_every_format_and_coding_sql(srv, fmt, enc):
    never_stale(srv, "/api/query/crw?format=" + fmt, {"sql": NAMES_SQL}, enc,
                lambda: insert_mark(srv))


@pytest.mark.parametrize("fmt,enc", [(f, e) for f in FORMATS for e in CODINGS])
def test_never_stale_every_format_and_coding_named(srv, fmt, enc):
    never_stale(srv, "/api/q/crw/names?format=%s&after=0" % fmt, None, enc,
                lambda: insert_mark(srv))


def read_parquet_value(data, sql="SELECT max(v) FROM read_parquet('%s')"):
    with tempfile.NamedTemporaryFile(suffix=".parquet", delete=False) as f:
        f.write(data)
        path = f.name
    try:
        duck = DuckDB()
        try:
            return duck.query(sql % path)[0][0]
        finally:
            duck.close()
    finally:
        os.unlink(path)


def swap_to(s, v):
    nxt = os.path.join(s.data_dir, "cswap.duckdb.next")
    dgserver.exec_sql(s.binary, nxt, swap_sql(v))
    r = s.post("/api/admin/reload/cswap", headers=hdr(s, "admin"), timeout=180)
    assert r.status_code == 200, r.text[:300]


def test_never_stale_after_swap_parquet_and_named(srv):
    """Parquet (served only from read-only databases, so a swap is its data change) for raw SQL
    and a named query, and a named query in JSON: hit, swap, the next read has the new data."""
    reqs = [("/api/query/cswap?format=parquet", {"sql": "SELECT max(v) AS v FROM t"}, "gzip"),
            ("/api/q/cswap/maxv?format=parquet&min=0", None, None),
            ("/api/q/cswap/maxv?format=json&min=0", None, "zstd"),
            ("/api/q/cswap/maxv?format=csv&min=0", None, "br")]

    def value(path, data):
        if "parquet" in path:
            assert data[:4] == b"PAR1" and data[-4:] == b"PAR1"
            return int(read_parquet_value(data))
        if "json" in path:
            return json.loads(data)["rows"][0][0]
        return int(data.decode().splitlines()[1])

    before = []
    for path, body, enc in reqs:
        a, wa, da = fetch(srv, path, role="admin", enc=enc, body=body)
        assert is_stored_miss(a), (path, a.status_code, a.headers, wa[:300])
        b, wb, _ = fetch(srv, path, role="admin", enc=enc, body=body)
        assert is_hit(b) and wb == wa, (path, b.headers)
        before.append((a.headers["ETag"], value(path, da)))
    v0 = before[0][1]
    assert all(v == v0 for _, v in before), before
    swap_to(srv, v0 + 10)
    for (path, body, enc), (etag, _) in zip(reqs, before):
        c, wc, dc = fetch(srv, path, role="admin", enc=enc, body=body)
        assert is_stored_miss(c), (path, c.headers)
        assert c.headers["ETag"] != etag
        assert value(path, dc) == v0 + 10, path
        d, wd, _ = fetch(srv, path, role="admin", enc=enc, body=body)
        assert is_hit(d) and wd == wc, (path, d.headers)


def test_parquet_is_cached_with_the_volatile_rule(srv):
    sql = "SELECT v, v * 2 AS w FROM t"
    a, wa, _ = fetch(srv, "/api/query/cswap?format=parquet", body={"sql": sql})
    assert is_stored_miss(a), (a.status_code, a.headers, wa[:300])
    assert a.headers["Content-Type"] == "application/vnd.apache.parquet"
    b, wb, _ = fetch(srv, "/api/query/cswap?format=parquet", body={"sql": sql})
    assert is_hit(b) and wb == wa
    assert b.headers["Content-Type"] == "application/vnd.apache.parquet"
    for _ in range(2):
        r, w, _ = fetch(srv, "/api/query/cswap?format=parquet",
                        body={"sql": "SELECT v + random() AS r FROM t"})
        assert r.status_code == 200 and w[:4] == b"PAR1"
        assert status(r) == "duckgate; fwd=uri-miss; detail=volatile", r.headers
        assert "ETag" not in r.headers


def test_parquet_over_the_entry_cap_streams_uncached(small):
    # Incompressible strings: the file is well over the 4 KiB entry cap.
    sql = "SELECT i, md5(i::VARCHAR) AS h FROM range(2000) r(i)"
    before = cache_stats(small, "cswap")["databases"][0]
    for _ in range(2):
        r, w, _ = fetch(small, "/api/query/cswap?format=parquet", body={"sql": sql})
        assert r.status_code == 200 and w[:4] == b"PAR1" and w[-4:] == b"PAR1"
        assert len(w) > 4096
        assert status(r) == "duckgate; fwd=uri-miss" and not is_hit(r)
        assert int(read_parquet_value(w, "SELECT count(*) FROM read_parquet('%s')")) == 2000
    after = cache_stats(small, "cswap")["databases"][0]
    assert after["too_big"] >= before["too_big"] + 2
    assert after["stored"] == before["stored"]


def test_never_stale_after_write_job(srv):
    path = "/api/q/crw/names?format=ndjson&after=0"
    a, _, da = fetch(srv, path)
    b, _, _ = fetch(srv, path)
    assert is_hit(b), b.headers
    mark = "job%d_%d" % (os.getpid(), next(_marks))
    r = srv.post("/api/admin/jobs", data=json.dumps(
        {"db": "crw", "sql": "INSERT INTO items SELECT max(id) + 1, '%s' FROM items" % mark}),
        headers=hdr(srv, "admin", **{"Content-Type": "application/json"}))
    assert r.status_code == 202, r.text[:300]
    jid = r.json()["id"]
    end = time.monotonic() + 120
    while True:
        j = srv.get("/api/admin/jobs/" + jid, headers=hdr(srv, "admin")).json()
        if j["state"] in ("done", "failed", "cancelled"):
            break
        assert time.monotonic() < end, j
        time.sleep(0.05)
    assert j["state"] == "done", j
    assert mark.encode() not in da
    c, _, dc = fetch(srv, path)
    assert is_stored_miss(c), c.headers
    assert mark.encode() in dc


# ---- "stored" only when certain; too big under single-flight --------------------------------------


def test_too_big_miss_never_says_stored(small):
    sql = "SELECT i, 'row ' || i AS s FROM range(5000) r(i) ORDER BY i"
    r = q(small, sql, fmt="csv")
    assert r.status_code == 200 and len(r.content) > 4096
    # The head went out before the body outgrew the cap: it makes no promise.
    assert "stored" not in status(r) and status(r) == "duckgate; fwd=uri-miss"
    assert not is_hit(q(small, sql, fmt="csv"))
    # A small one is stored, and the next request is the proof.
    assert is_stored_miss(q(small, "SELECT 42 AS x"))
    assert is_hit(q(small, "SELECT 42 AS x"))


def test_single_flight_too_big_streams_to_every_caller(small):
    # 20 identical concurrent requests of a result over the entry cap: each gets the whole,
    # correct body (the leader streams; the followers run their own), nothing is stored.
    sql = "SELECT i, 'row ' || i AS s FROM range(30000) r(i) WHERE hash(i) %% 3 <> 7 ORDER BY i"
    before = cache_stats(small, "main")["databases"][0]

    def one(_):
        return small.post("/api/query/main?format=ndjson", data=json.dumps({"sql": sql % ()}),
                          headers=hdr(small, "analyst"), timeout=120)

    with concurrent.futures.ThreadPoolExecutor(20) as ex:
        rs = list(ex.map(one, range(20)))
    for r in rs:
        assert r.status_code == 200, r.text[:200]
        lines = r.text.splitlines()
        assert sum(len(json.loads(ln)["rows"]) for ln in lines if '"type":"rows"' in ln) == 30000
        assert json.loads(lines[-1])["type"] == "end"
        assert not is_hit(r)
    after = cache_stats(small, "main")["databases"][0]
    assert after["stored"] == before["stored"]
    assert after["too_big"] >= before["too_big"] + 1


# ---- defaults and admin rate limits -------------------------------------------------------------


def test_defaults(srv):
    # 10% of the memory budget the server computed at start (logged), 2000 entries per database,
    # a TTL of 30 days, as the admin view reports them.
    st = cache_stats(srv)
    budget = re.search(r"resources memory_budget=(\d+) ", srv.log())
    assert budget, srv.log()[-3000:]
    assert int(budget.group(1)) > 0
    assert st["max_bytes"] == int(budget.group(1)) // 10
    assert st["max_entries_per_db"] == 2000
    assert st["ttl_s"] == 30 * 86400
    assert st["max_entry_bytes"] > 0


def test_admin_cache_routes_are_rate_limited(make_server, binary, fixtures):
    s = start(make_server, binary, fixtures, engines=1, slots=1,
              extra=["--rate-limit", "on", "--admin-rate-burst-per-s", "100",
                     "--admin-rate-per-min", "3"])
    try:
        assert s.get("/api/admin/cache", headers=hdr(s, "admin")).status_code == 200
        assert s.request("DELETE", "/api/admin/cache/main",
                         headers=hdr(s, "admin")).status_code == 200
        assert s.get("/api/admin/cache/main", headers=hdr(s, "admin")).status_code == 200
        for r in (s.get("/api/admin/cache", headers=hdr(s, "admin")),
                  s.request("DELETE", "/api/admin/cache", headers=hdr(s, "admin"))):
            assert_error(r, 429, "RATE_LIMITED")
            assert int(r.headers["Retry-After"]) >= 1
    finally:
        s.close()


def test_named_ttl_bounded_by_server_ttl(make_server, binary, fixtures):
    # by_id says @cache_ttl 60; the server's backstop of 1 s is the smaller, so it wins.
    s = start(make_server, binary, fixtures, engines=1, slots=1, extra=["--cache-ttl-s", "1"])
    try:
        assert cache_stats(s)["ttl_s"] == 1
        t0 = time.monotonic()
        assert is_stored_miss(named(s, "main", "by_id", id=5))
        assert is_hit(named(s, "main", "by_id", id=5)) or time.monotonic() - t0 >= 1.0
        end = time.monotonic() + 30
        while is_hit(named(s, "main", "by_id", id=5)):
            assert time.monotonic() < end, "the entry outlived the server's cache_ttl_s"
            time.sleep(0.1)
        assert time.monotonic() - t0 >= 0.9
        assert cache_stats(s, "main")["databases"][0]["expired"] >= 1
    finally:
        s.close()
