"""Named queries over HTTP (docs/named-queries.md): a query per parameter type, defaults, the 422
matrix listing every bad parameter, injection attempts through every parameter type, every
output format and content coding, role restriction, reload after an edit, a broken file keeping
the previous version serving, SIGHUP reload, the listing and openapi.json.

Every server gets its own copy of tests/integration/named_queries (the tests edit it)."""

import gzip
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.parse

import pytest
import requests

from dgserver import add_key, assert_error, assert_ok
from duckdb_reader import DuckDB

HERE = os.path.dirname(os.path.abspath(__file__))
QUERIES = os.path.join(HERE, "named_queries")
ROUTES = ["/health", "/ready", "/api/databases", "/api/databases/{db}", "/api/query/{db}",
          "/api/q/{db}", "/api/q/{db}/{name}", "/api/openapi.json", "/metrics"]
NAMED = ["search", "types", "by_ids", "scores", "admin_only", "capped"]


def start_named(make_server, extra=(), dbs=("main", "other")):
    """A server whose queries_dir is a private copy of named_queries; s.qdir is that copy."""
    s = make_server(dbs=dbs, start=False, extra=["--queries-dir", "QDIR"] + list(extra))
    s.qdir = os.path.join(s.dir, "queries")
    shutil.copytree(QUERIES, s.qdir)
    s.args[s.args.index("QDIR")] = s.qdir
    return s.start()


@pytest.fixture(scope="module")
def srv(make_server):
    s = start_named(make_server)
    yield s
    assert s.alive(), s.log()[-3000:]


def q(server, path, params=None, headers=None, timeout=60):
    url = "/api/q/" + path
    if params:
        url += "?" + urllib.parse.urlencode(params, doseq=True)
    return server.get(url, headers=headers, timeout=timeout)


def post(server, path, body, fmt=None, headers=None):
    url = "/api/q/" + path + ("?format=" + fmt if fmt else "")
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return server.post(url, data=data,
                       headers=dict({"Content-Type": "application/json"}, **(headers or {})))


def bad_params(resp):
    """Asserts a 422 INVALID_PARAMS answer; returns {name: reason}."""
    err = assert_error(resp, 422, "INVALID_PARAMS")
    assert isinstance(err.get("params"), list) and err["params"], err
    return {p["name"]: p["reason"] for p in err["params"]}


def count_t(server):
    return assert_ok(server.query("main", "SELECT count(*) FROM t"))["rows"][0][0]


def wait_for(fn, timeout=10.0):
    """Polls fn() until it returns a truthy value; returns it (fails after timeout)."""
    end = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() > end:
            assert v, "condition not met within %.0fs" % timeout
            return v
        time.sleep(0.1)


# --------------------------------------------------------------------------------------------
# Types and defaults


def test_types_defaults(srv):
    doc = assert_ok(q(srv, "main/types"))
    row = dict(zip([c["name"] for c in doc["columns"]], doc["rows"][0]))
    assert row["b"] is True and row["tb"] == "BOOLEAN"
    assert (row["i8"], row["ti8"]) == (1, "TINYINT")
    assert (row["i16"], row["ti16"]) == (2, "SMALLINT")
    assert (row["i32"], row["ti32"]) == (3, "INTEGER")
    assert (row["i64"], row["ti64"]) == (4, "BIGINT")
    assert (row["f"], row["tf"]) == (0.5, "DOUBLE")
    assert (row["s"], row["ts_"]) == ("x", "VARCHAR")
    assert (row["d"], row["td"]) == ("2024-02-29", "DATE")
    assert row["ts"].startswith("2024-02-29T12:34:56.789") and row["tts"] == "TIMESTAMP"


def test_types_values_get_and_post(srv):
    given = {"b": "false", "i8": "-128", "i16": "32767", "i32": "-2147483648",
             "i64": "9223372036854775807", "f": "-1.25e2", "s": "h\u00e9llo w\u00f6rld",
             "d": "1999-12-31", "ts": "2000-01-02 03:04:05.000006"}
    doc = assert_ok(q(srv, "main/types", given))
    row = dict(zip([c["name"] for c in doc["columns"]], doc["rows"][0]))
    assert row["b"] is False and row["i8"] == -128 and row["i16"] == 32767
    assert row["i32"] == -2147483648
    assert str(row["i64"]) == "9223372036854775807"  # beyond 2^53: a string, losslessly
    assert row["f"] == -125.0 and row["s"] == "h\u00e9llo w\u00f6rld"
    assert row["d"] == "1999-12-31" and row["ts"].startswith("2000-01-02T03:04:05.000006")
    body = {"params": {"b": False, "i8": -128, "i16": 32767, "i32": -2147483648,
                       "i64": 9223372036854775807, "f": -125, "s": "h\u00e9llo w\u00f6rld",
                       "d": "1999-12-31", "ts": "2000-01-02T03:04:05.000006"}}
    doc2 = assert_ok(post(srv, "main/types", body))
    assert doc2["rows"] == doc["rows"]


def test_search_defaults_and_filters(srv):
    doc = assert_ok(q(srv, "main/search", {"q": "name_1"}))
    assert [r[1] for r in doc["rows"]] == ["name_1", "name_10", "name_100", "name_11", "name_12"]
    doc = assert_ok(q(srv, "main/search", {"q": "name_1", "limit": "50", "grp": "a",
                                           "smart": "true"}))
    names = [r[1] for r in doc["rows"]]
    assert names and all(r[2] == "a" and r[0] % 3 == 0 for r in doc["rows"])
    expected = assert_ok(srv.query(
        "main", "SELECT count(*) FROM t WHERE name >= 'name_1' AND name < 'name_1~' "
        "AND grp = 'a' AND id % 3 = 0"))["rows"][0][0]
    assert len(names) == expected
    doc = assert_ok(q(srv, "main/search", {"q": "name_", "limit": "50", "since": "2024-04-01"}))
    assert doc["rows"] and all(r[3] >= "2024-04-01" for r in doc["rows"])


def test_lists(srv):
    doc = assert_ok(q(srv, "main/by_ids", [("ids", "7"), ("ids", "3"), ("ids", "99")]))
    assert doc["rows"] == [[3, "name_3"], [7, "name_7"], [99, "name_99"]]
    doc = assert_ok(q(srv, "main/by_ids", [("ids", "7"), ("ids", "3"), ("names", "name_7")]))
    assert doc["rows"] == [[7, "name_7"]]
    doc = assert_ok(post(srv, "main/by_ids", {"params": {"ids": [1, 2], "names": None}}))
    assert doc["rows"] == [[1, "name_1"], [2, "name_2"]]
    doc = assert_ok(post(srv, "main/by_ids", {"params": {"ids": []}}))
    assert doc["rows"] == []


def test_double_and_timestamp(srv):
    doc = assert_ok(q(srv, "main/scores", {"min_score": "149.5"}))
    assert doc["rows"] == [[1]]  # score = id * 1.5: only id 100
    doc = assert_ok(q(srv, "main/scores", {"min_score": "0", "after": "2024-04-09T00:00:00"}))
    assert doc["rows"] == [[1]]  # d = 2024-01-01 + id: only 2024-04-10 (id 100)


def test_max_rows_of_the_query(srv):
    doc = assert_ok(q(srv, "main/capped"))
    assert doc["rows"] == [[0], [1], [2]] and doc["truncated"] is True


# --------------------------------------------------------------------------------------------
# Validation: 422 listing every bad parameter


def test_422_lists_every_bad_param(srv):
    r = q(srv, "main/search", [("limit", "0"), ("grp", "d"), ("smart", "maybe"),
                               ("since", "1999-12-31"), ("q", "x" * 21), ("zz", "1"),
                               ("zz", "2")])
    bad = bad_params(r)
    assert bad == {"q": "must be at most 20 characters long", "limit": "must be >= 1",
                   "grp": "must be one of a|b|c", "smart": "must be true or false",
                   "since": "must be >= 2000-01-01", "zz": "unknown parameter"}
    err = r.json()["error"]
    assert err["query_id"] == r.headers["X-Query-Id"]
    for name in bad:
        assert name in err["message"]


@pytest.mark.parametrize("path,params,name,reason", [
    ("main/search", {}, "q", "is required"),
    ("main/search", {"q": "a%"}, "q", "must match"),
    ("main/search", {"q": "a", "limit": "51"}, "limit", "must be <= 50"),
    ("main/search", {"q": "a", "limit": "50", "format": "json", "limit ": "1"}, "limit ",
     "unknown parameter"),
    ("main/search", [("q", "a"), ("q", "b")], "q", "given more than once"),
    ("main/types", {"b": "yes"}, "b", "true or false"),
    ("main/types", {"i8": "128"}, "i8", "-128 to 127"),
    ("main/types", {"i16": "-32769"}, "i16", "SMALLINT"),
    ("main/types", {"i32": "2147483648"}, "i32", "INTEGER"),
    ("main/types", {"i64": "9223372036854775808"}, "i64", "BIGINT"),
    ("main/types", {"f": "inf"}, "f", "finite"),
    ("main/types", {"d": "2023-02-29"}, "d", "YYYY-MM-DD"),
    ("main/types", {"ts": "2024-01-01T25:00:00"}, "ts", "timestamp"),
    ("main/by_ids", [("ids", str(i)) for i in range(1, 7)], "ids", "at most 5 items"),
    ("main/by_ids", [("ids", "1"), ("ids", "101")], "ids", "item 2: must be <= 100"),
    ("main/by_ids", [("ids", "1"), ("names", "x" * 11)], "names", "at most 10 characters"),
    ("main/scores", {"min_score": "-0.5"}, "min_score", "must be >= 0"),
    ("main/scores", {"min_score": "1000.01"}, "min_score", "must be <= 1000"),
])
def test_422_matrix(srv, path, params, name, reason):
    bad = bad_params(q(srv, path, params))
    assert name in bad and reason in bad[name], bad


def test_post_validation(srv):
    bad = bad_params(post(srv, "main/types", {"params": {"b": "true", "i32": 1.5, "s": 5,
                                                         "d": 20240101, "f": "1", "x": 1}}))
    assert set(bad) == {"b", "i32", "s", "d", "f", "x"}
    bad = bad_params(post(srv, "main/search", {"params": {"q": None}}))
    assert "q" in bad
    assert_error(post(srv, "main/search", "{not json"), 400, "BAD_JSON")
    assert_error(post(srv, "main/search", {"q": "a"}), 400, "BAD_REQUEST")
    assert_error(post(srv, "main/search", {"params": [1]}), 400, "BAD_REQUEST")
    assert_error(post(srv, "main/search", "[1]"), 400, "BAD_REQUEST")
    doc = assert_ok(post(srv, "main/search", {"params": {"q": "name_9"}, "format": "json"}))
    assert doc["rows"][0][1] == "name_9"


def test_unknown_query_and_db(srv):
    assert_error(q(srv, "main/nope"), 404, "NOT_FOUND")
    assert_error(q(srv, "main/..%2Fsecret"), 404, "NOT_FOUND")
    assert_error(q(srv, "nodb/search", {"q": "a"}), 404, "UNKNOWN_DB")
    assert_error(srv.get("/api/q/nodb"), 404, "UNKNOWN_DB")
    # A query file of one database is not visible through another.
    assert_error(q(srv, "main/secret"), 404, "NOT_FOUND")
    assert_error(q(srv, "other/search", {"q": "a"}), 404, "NOT_FOUND")


# --------------------------------------------------------------------------------------------
# Injection attempts: values are bound, never spliced


INJECTIONS = ["'; DROP TABLE t; --", "1 OR 1=1", "name_1' OR '1'='1", "$q", "1; SELECT 1",
              "') UNION SELECT secret FROM other.private_t --", "\\'; DELETE FROM t; --"]


@pytest.mark.parametrize("payload", INJECTIONS)
def test_injection_through_every_type(srv, payload):
    before = count_t(srv)
    # VARCHAR: the text is a value, so it matches nothing and changes nothing.
    doc = assert_ok(q(srv, "main/search", {"q": payload[:20]}))
    for row in doc["rows"]:
        assert row[1].startswith(payload[:20])
    doc = assert_ok(q(srv, "main/by_ids", [("ids", "1"), ("names", payload[:10])]))
    assert doc["rows"] == []
    doc = assert_ok(post(srv, "main/types", {"params": {"s": payload}}))
    assert doc["rows"][0][12] == payload
    # Every other type refuses it.
    for name in ("b", "i8", "i16", "i32", "i64", "f", "d", "ts"):
        assert name in bad_params(q(srv, "main/types", {name: payload}))
    assert "ids" in bad_params(q(srv, "main/by_ids", {"ids": payload}))
    assert "limit" in bad_params(q(srv, "main/search", {"q": "a", "limit": payload}))
    assert count_t(srv) == before == 100
    assert "OTHER-DB-SECRET" not in json.dumps(doc)


# --------------------------------------------------------------------------------------------
# Formats and codings


def fetch(server, params, fmt, coding=None):
    h = {"Accept-Encoding": coding} if coding else {"Accept-Encoding": "identity"}
    url = "/api/q/main/by_ids?" + urllib.parse.urlencode(params + [("format", fmt)])
    r = requests.get(server.url(url), headers=h, stream=True, timeout=60)
    data = r.raw.read(decode_content=False)
    r.close()
    return r, data


def decode(data, coding):
    if coding == "gzip":
        return gzip.decompress(data)
    if coding == "zstd":
        return subprocess.run(["zstd", "-d", "-c"], input=data, stdout=subprocess.PIPE,
                              check=True).stdout
    if coding == "br":
        return subprocess.run(["brotli", "-d", "-c"], input=data, stdout=subprocess.PIPE,
                              check=True).stdout
    return data


@pytest.mark.parametrize("coding", [None, "gzip", "zstd", "br"])
@pytest.mark.parametrize("fmt", ["json", "ndjson", "csv", "tsv", "parquet", "arrow"])
def test_formats_and_codings(srv, fmt, coding):
    params = [("ids", "2"), ("ids", "4"), ("ids", "5")]
    r, data = fetch(srv, params, fmt, coding)
    assert r.status_code == 200, data[:300]
    if fmt != "parquet" and coding:
        assert r.headers.get("Content-Encoding") == coding
        data = decode(data, coding)
    else:
        assert "Content-Encoding" not in r.headers
    if fmt == "json":
        assert json.loads(data)["rows"] == [[2, "name_2"], [4, "name_4"], [5, "name_5"]]
    elif fmt == "ndjson":
        lines = [json.loads(x) for x in data.decode().splitlines()]
        assert lines[0]["type"] == "meta" and lines[-1]["type"] == "end"
        rows = [row for ln in lines if ln["type"] == "rows" for row in ln["rows"]]
        assert rows == [[2, "name_2"], [4, "name_4"], [5, "name_5"]]
    elif fmt in ("csv", "tsv"):
        sep = "," if fmt == "csv" else "\t"
        assert data.decode().splitlines() == ["id%sname" % sep] + [
            "%d%sname_%d" % (i, sep, i) for i in (2, 4, 5)]
    elif fmt == "parquet":
        with tempfile.NamedTemporaryFile(suffix=".parquet", delete=False) as f:
            f.write(data)
        try:
            d = DuckDB()
            rows = d.query("SELECT id, name FROM read_parquet('%s') ORDER BY id" % f.name)
            d.close()
        finally:
            os.unlink(f.name)
        assert rows == [["2", "name_2"], ["4", "name_4"], ["5", "name_5"]]
    else:
        from test_formats_binary import read_arrow
        got = read_arrow(data)
        assert got["num_rows"] == 3
        assert [row["name"] for row in got["rows"]] == ["name_2", "name_4", "name_5"]


def test_format_by_accept(srv):
    r = q(srv, "main/by_ids", {"ids": "3"}, headers={"Accept": "text/csv"})
    assert r.status_code == 200 and r.text.splitlines() == ["id,name", "3,name_3"]
    assert_error(q(srv, "main/by_ids", {"ids": "3", "format": "xml"}), 406, "NOT_ACCEPTABLE")


# --------------------------------------------------------------------------------------------
# Roles


def test_roles(make_server, binary):
    s = make_server(dbs=("main", "other"), start=False,
                    extra=["--auth", "on", "--keys-file", "KEYS", "--queries-dir", "QDIR"])
    keys = s.use_keys_file()
    s.qdir = os.path.join(s.dir, "queries")
    shutil.copytree(QUERIES, s.qdir)
    s.args[s.args.index("QDIR")] = s.qdir
    k = {role: add_key(binary, keys, role) for role in ("viewer", "analyst", "admin")}
    s.start()

    def h(role):
        return {"Authorization": "Bearer " + k[role]} if role else {}

    # @roles public: anyone, even with public_role = none.
    assert_ok(q(s, "main/search", {"q": "name_1"}))
    assert s.get("/api/q/main").status_code == 200
    assert s.get("/api/openapi.json").status_code == 200
    # default (viewer): anonymous callers are refused, every key passes.
    assert_error(q(s, "main/types"), 401, "UNAUTHORIZED")
    for role in ("viewer", "analyst", "admin"):
        assert_ok(q(s, "main/types", headers=h(role)))
    # @roles admin
    assert_error(q(s, "main/admin_only"), 401, "UNAUTHORIZED")
    for role in ("viewer", "analyst"):
        assert_error(q(s, "main/admin_only", headers=h(role)), 403, "FORBIDDEN")
    assert assert_ok(q(s, "main/admin_only", headers=h("admin")))["rows"] == [[100]]
    # Bad credentials are refused even on a public query.
    assert_error(q(s, "main/search", {"q": "a"}, headers={"Authorization": "Bearer dgk_nope"}),
                 401, "UNAUTHORIZED")
    # Unknown names too: bad credentials get 401 before any 404.
    assert_error(q(s, "main/nope", headers={"Authorization": "Bearer dgk_nope"}), 401,
                 "UNAUTHORIZED")
    assert_error(q(s, "main/nope"), 404, "NOT_FOUND")
    # The role is checked before the values: no 422 leaks to a refused caller.
    assert_error(q(s, "main/admin_only", {"bogus": "1"}, headers=h("viewer")), 403, "FORBIDDEN")


# --------------------------------------------------------------------------------------------
# Reload: edits, broken files, SIGHUP


def write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def test_reload_after_edit_and_broken_file(make_server):
    s = start_named(make_server)
    path = os.path.join(s.qdir, "main", "edit_me.sql")
    write(path, "-- @param n INTEGER default=1\nSELECT $n AS v\n")
    wait_for(lambda: q(s, "main/edit_me").status_code == 200)
    assert assert_ok(q(s, "main/edit_me"))["rows"] == [[1]]
    # A good edit is served after the next scan (at most a second later).
    write(path, "-- @param n INTEGER default=2\nSELECT $n * 10 AS v\n")
    wait_for(lambda: q(s, "main/edit_me").json().get("rows") == [[20]])
    # A broken edit: the previous version keeps serving; the listing and the log say why.
    write(path, "-- @param n INTEGER default=2\n-- @param m INTEGER default=1\nSELECT $n AS v\n")

    def listed_error():
        for e in s.get("/api/q/main").json()["queries"]:
            if e["name"] == "edit_me" and e.get("error"):
                return e
        return None
    e = wait_for(listed_error)
    assert e["status"] == "broken" and e["served"] is True
    assert e["error"].startswith("edit_me.sql:2: parameter m is declared but not used")
    assert assert_ok(q(s, "main/edit_me"))["rows"] == [[20]]
    assert "main/edit_me.sql:2:" in s.log()
    # Fixed again: served and no error.
    write(path, "-- @param n INTEGER default=3\nSELECT $n AS v\n")
    wait_for(lambda: q(s, "main/edit_me").json().get("rows") == [[3]])
    assert not listed_error()
    # A new broken file with no good version is listed but not served.
    write(os.path.join(s.qdir, "main", "never_good.sql"), "SELECT $x\n")
    e = wait_for(lambda: [x for x in s.get("/api/q/main").json()["queries"]
                          if x["name"] == "never_good"])[0]
    assert e["served"] is False and "x is used but not declared" in e["error"]
    err = assert_error(q(s, "main/never_good"), 404, "NOT_FOUND")
    assert "never_good.sql:1:" in err["message"]
    # Deleted: no longer served.
    os.unlink(path)
    wait_for(lambda: q(s, "main/edit_me").status_code == 404)
    s.close()


def test_sighup_reload(make_server):
    s = start_named(make_server)
    path = os.path.join(s.qdir, "main", "hup.sql")
    write(path, "SELECT 42 AS answer\n")
    # No request scans before the signal: the load line proves SIGHUP did it.
    assert "name=hup" not in s.log()
    s.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "loaded named query db=main name=hup" in s.log())
    assert assert_ok(q(s, "main/hup"))["rows"] == [[42]]
    assert s.alive()
    assert s.get("/ready").status_code == 200
    s.close()


def test_missing_queries_dir(make_server):
    s = make_server(dbs=("main",), extra=["--queries-dir", "/nonexistent/dg-queries"])
    assert s.get("/api/q/main").json() == {"db": "main", "queries": []}
    assert_error(q(s, "main/search", {"q": "a"}), 404, "NOT_FOUND")
    s.close()


# --------------------------------------------------------------------------------------------
# Listing and OpenAPI


def test_listing(srv):
    doc = srv.get("/api/q/main").json()
    assert doc["db"] == "main"
    by = {e["name"]: e for e in doc["queries"]}
    assert set(NAMED) <= set(by)
    s = by["search"]
    assert s["status"] == "ok" and s["served"] and s["roles"] == "public"
    assert s["cache_ttl"] == 60 and s["cache"] == "public" and s["path"] == "/api/q/main/search"
    p = {x["name"]: x for x in s["params"]}
    assert p["q"] == {"name": "q", "type": "VARCHAR", "required": True, "max_length": 20,
                      "regex": "^[^%]*$", "description": "name prefix"}
    assert p["limit"]["default"] == 5 and p["limit"]["min"] == "1" and p["limit"]["max"] == "50"
    assert p["grp"]["one_of"] == ["a", "b", "c"] and p["grp"]["default"] is None
    assert by["by_ids"]["params"][0]["type"] == "INTEGER[]"
    assert by["by_ids"]["params"][0]["max_items"] == 5
    assert by["capped"]["max_rows"] == 3 and by["capped"]["timeout_ms"] == 5000
    assert [e["name"] for e in srv.get("/api/q/other").json()["queries"]] == ["secret"]


def server_routes():
    """{pattern: {METHOD, ...}} of the route table in src/server/server.c (the source the binary
    was built from), with DG_SERVER_QLOG_DB resolved from server_int.h."""
    src = os.path.join(HERE, "..", "..", "src", "server")
    with open(os.path.join(src, "server.c")) as f:
        text = f.read()
    with open(os.path.join(src, "server_int.h")) as f:
        qlog_db = re.search(r'#define DG_SERVER_QLOG_DB "([^"]+)"', f.read()).group(1)
    block = re.search(r"static const dg_http_route_t routes\[\] = \{(.*?)\n\};", text, re.S).group(1)
    block = re.sub(r"/\*.*?\*/", "", block, flags=re.S)
    out = {}
    for m in re.finditer(r'\{\s*"([^"]+)"(\s*DG_SERVER_QLOG_DB)?\s*,\s*([^,]+),', block):
        path = m.group(1) + (qlog_db if m.group(2) else "")
        out.setdefault(path, set()).update(re.findall(r"DG_HTTP_M\(DG_HTTP_(\w+)\)", m.group(3)))
    assert out, "no routes parsed"
    return out


def test_openapi(srv):
    r = srv.get("/api/openapi.json")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")
    doc = r.json()
    assert doc["openapi"].startswith("3.1") and doc["info"]["title"] == "duckgate"
    paths = doc["paths"]
    for route in ROUTES:
        assert route in paths, route
    # Every route of the server's route table, with each of its methods (HEAD rides on GET).
    table = server_routes()
    assert len(table) >= len(ROUTES)
    for route, methods in table.items():
        assert route in paths, route
        for m in methods:
            op = paths[route].get(m.lower())
            assert op and op.get("summary") and op.get("responses"), (route, m)
        assert set(k.upper() for k in paths[route]) == set(methods), (route, methods)
    # And nothing but them and the named queries.
    extra = set(paths) - set(table)
    assert all(p.startswith("/api/q/") and p.count("/") == 4 for p in extra), extra
    assert "post" in paths["/api/query/{db}"] and "get" in paths["/api/query/{db}"]
    assert [p["name"] for p in paths["/api/q/{db}/{name}"]["get"]["parameters"]] == ["db", "name"]
    for name in NAMED:
        assert "/api/q/main/" + name in paths
    assert "/api/q/other/secret" in paths
    for item in paths.values():
        for op in item.values():
            assert "responses" in op
            for p in op.get("parameters", []):
                assert p["in"] in ("path", "query") and "schema" in p
    get = paths["/api/q/main/search"]["get"]
    params = {p["name"]: p for p in get["parameters"]}
    assert params["q"]["required"] is True
    assert params["q"]["schema"] == {"type": "string", "maxLength": 20, "pattern": "^[^%]*$",
                                     "description": "name prefix"}
    assert params["limit"]["schema"]["type"] == "integer"
    assert (params["limit"]["schema"]["minimum"], params["limit"]["schema"]["maximum"]) == (1, 50)
    assert params["grp"]["schema"]["enum"] == ["a", "b", "c", None]
    assert params["grp"]["schema"]["type"] == ["string", "null"]
    assert params["since"]["schema"]["format"] == "date"
    assert "format" in params
    assert set(get["responses"]) >= {"200", "422"}
    ids = {p["name"]: p for p in paths["/api/q/main/by_ids"]["get"]["parameters"]}["ids"]
    assert ids["schema"]["type"] == "array" and ids["schema"]["maxItems"] == 5
    assert ids["schema"]["items"] == {"type": "integer", "format": "int32", "minimum": 1,
                                      "maximum": 100}
    assert ids["explode"] is True
    tparams = {p["name"]: p["schema"] for p in paths["/api/q/main/types"]["get"]["parameters"]}
    assert tparams["b"]["type"] == "boolean" and tparams["f"]["type"] == "number"
    assert tparams["i8"]["maximum"] == 127 and tparams["i64"]["format"] == "int64"
    assert tparams["ts"]["format"] == "date-time"
    body = paths["/api/q/main/search"]["post"]["requestBody"]["content"]["application/json"]
    props = body["schema"]["properties"]["params"]
    assert props["required"] == ["q"] and set(props["properties"]) == {
        "q", "limit", "grp", "smart", "since"}
    assert doc["components"]["schemas"]["Error"]["type"] == "object"
    # Every $ref resolves.
    text = json.dumps(doc)
    assert text.count("#/components/schemas/Error") > 0


# --------------------------------------------------------------------------------------------
# The result cache sees named queries through their options


def test_cache_options(srv):
    first = q(srv, "main/search", {"q": "name_2"})
    second = q(srv, "main/search", {"q": "name_2"})
    assert first.json()["rows"] == second.json()["rows"]
    assert "hit" in second.headers.get("Cache-Status", ""), second.headers
    assert second.headers["Cache-Control"] == "public, max-age=60"
    # Other values are another entry.
    assert "hit" not in q(srv, "main/search", {"q": "name_3"}).headers.get("Cache-Status", "")
    # Without @cache public a response is private.
    q(srv, "main/types")
    r = q(srv, "main/types")
    assert r.headers["Cache-Control"] == "private" and "hit" in r.headers["Cache-Status"]
    # @cache_ttl 0 and volatile SQL are never answered from the cache.
    for name in ("nocache", "volatile"):
        q(srv, "main/" + name)
        r = q(srv, "main/" + name)
        assert r.status_code == 200 and "hit" not in r.headers.get("Cache-Status", ""), name


def test_rate_limited(make_server):
    s = start_named(make_server, extra=["--rate-limit", "on", "--rate-burst-per-s", "2"])
    codes = [q(s, "main/search", {"q": "name_1"}).status_code for _ in range(6)]
    assert codes[0] == 200 and 429 in codes, codes
    r = q(s, "main/nope")  # unknown names cost tokens too
    assert_error(r, 429, "RATE_LIMITED")
    s.close()


# --------------------------------------------------------------------------------------------
# A swapped database file: the cached connections and statements belong to the old instance


def test_swap_closes_cached_connections(make_server, fixtures, binary):
    import dgserver
    sql = ("CREATE TABLE t (v INTEGER); INSERT INTO t SELECT %d FROM range(100); CHECKPOINT;")
    fixtures.build("swapn", sql % 1)
    s = make_server(dbs=("swapn",), start=False, extra=["--queries-dir", "QDIR"])
    s.qdir = os.path.join(s.dir, "queries")
    os.makedirs(os.path.join(s.qdir, "swapn"))
    write(os.path.join(s.qdir, "swapn", "val.sql"),
          "-- @cache_ttl 0\n-- @param min INTEGER default=0\n"
          "SELECT max(v) AS v, min(v) AS w, count(*) AS n FROM t WHERE v >= $min\n")
    s.args[s.args.index("QDIR")] = s.qdir
    s.start()
    live = os.path.join(s.data_dir, "swapn.duckdb")
    old = os.stat(live)
    # Warm the pools of both engines (several slots each).
    for _ in range(8):
        assert assert_ok(q(s, "swapn/val"))["rows"] == [[1, 1, 100]]
    # Replace the file by a rename, as `duckgate build` does.
    tmp = os.path.join(s.data_dir, "swapn.build")
    dgserver.exec_sql(binary, tmp, sql % 2)
    os.replace(tmp, live)
    wait_for(lambda: q(s, "swapn/val").json().get("rows") == [[2, 2, 100]])
    for _ in range(8):
        assert assert_ok(q(s, "swapn/val", {"min": "2"}))["rows"] == [[2, 2, 100]]

    def old_closed():
        for pid in s.engine_pids():
            fd_dir = "/proc/%d/fd" % pid
            for fd in os.listdir(fd_dir):
                try:
                    st = os.stat(os.path.join(fd_dir, fd))
                except OSError:
                    continue
                if (st.st_dev, st.st_ino) == (old.st_dev, old.st_ino):
                    return False
        return True
    # No engine keeps the replaced file open through a cached named-query connection.
    wait_for(old_closed)
    s.close()


# --------------------------------------------------------------------------------------------
# @timeout_ms and @max_rows as behaviour, against the caller's role caps (the smaller wins)


def test_deadline_and_row_caps(make_server):
    s = make_server(dbs=("main",), start=False,
                    extra=["--queries-dir", "QDIR", "--public-max-rows", "4",
                           "--public-timeout-ms", "2500"])
    s.qdir = os.path.join(s.dir, "queries")
    os.makedirs(os.path.join(s.qdir, "main"))
    slow = "SELECT count(*) AS n FROM range(100000000000) r(i) WHERE hash(i) % 7 = 99\n"
    write(os.path.join(s.qdir, "main", "slow_own.sql"), "-- @timeout_ms 500\n" + slow)
    write(os.path.join(s.qdir, "main", "slow_role.sql"), "-- @timeout_ms 600000\n" + slow)
    write(os.path.join(s.qdir, "main", "rows_own.sql"),
          "-- @max_rows 2\nSELECT range AS i FROM range(100)\n")
    write(os.path.join(s.qdir, "main", "rows_role.sql"),
          "-- @max_rows 50\nSELECT range AS i FROM range(100)\n")
    s.args[s.args.index("QDIR")] = s.qdir
    s.start()
    try:
        # @timeout_ms below the role's deadline: 504 TIMEOUT after about 0.5 s.
        t0 = time.monotonic()
        assert_error(q(s, "main/slow_own"), 504, "TIMEOUT")
        own = time.monotonic() - t0
        # The role's deadline below @timeout_ms: 504 after about 2.5 s, not ten minutes.
        t0 = time.monotonic()
        assert_error(q(s, "main/slow_role", timeout=120), 504, "TIMEOUT")
        role = time.monotonic() - t0
        assert 0.45 <= own < 0.5 + 10, own
        assert 2.4 <= role < 2.5 + 10, role
        assert own < role
        # @max_rows below the role's cap wins, and the role's cap below @max_rows wins.
        doc = assert_ok(q(s, "main/rows_own"))
        assert doc["rows"] == [[0], [1]] and doc["truncated"] is True
        doc = assert_ok(q(s, "main/rows_role"))
        assert doc["rows"] == [[0], [1], [2], [3]] and doc["truncated"] is True
        lines = q(s, "main/rows_role", {"format": "ndjson"}).text.splitlines()
        rows = [r for ln in lines if '"type":"rows"' in ln for r in json.loads(ln)["rows"]]
        assert rows == [[0], [1], [2], [3]]
    finally:
        s.close()
