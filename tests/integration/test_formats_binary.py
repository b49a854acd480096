"""Parquet and Arrow over HTTP, each read back by an implementation we share no code with:
Parquet by DuckDB itself (duckdb_reader.py), Arrow IPC by apache-arrow (tests/js)."""

import json
import os
import subprocess
import tempfile

import pytest
import requests

from dgserver import assert_error, assert_ok
from duckdb_reader import DuckDB

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
READ_ARROW = os.path.join(ROOT, "tests", "js", "read_arrow.mjs")

MIXED = ("SELECT i AS id, 'name ' || i AS name, i * 0.25 AS x, i % 7 = 0 AS flag, "
         "CASE WHEN i % 5 = 0 THEN NULL ELSE i END AS maybe, [i, i + 1] AS pair, "
         "{'k': 'v' || i, 'n': i} AS st, DATE '2020-01-01' + (i % 1000)::INT AS d "
         "FROM range(20000) r(i)")


def fetch(server, sql, fmt, params=None, headers=None):
    body = {"sql": sql}
    if params is not None:
        body["params"] = params
    h = {"Content-Type": "application/json", "Accept-Encoding": ""}
    h.update(headers or {})
    r = requests.post(server.url("/api/query/main?format=" + fmt), data=json.dumps(body),
                      headers=h, stream=True, timeout=120)
    data = r.raw.read(decode_content=False)
    r.close()
    return r, data


@pytest.fixture(scope="module")
def duck():
    d = DuckDB()
    yield d
    d.close()


def parquet_equals_source(duck, server, data, source_sql):
    """Compares a Parquet body with source_sql run by a trusted DuckDB on the served file."""
    with tempfile.NamedTemporaryFile(suffix=".parquet", delete=False) as f:
        f.write(data)
        path = f.name
    try:
        db_file = os.path.join(server.data_dir, "main.duckdb")
        duck.query("ATTACH IF NOT EXISTS '%s' AS src (READ_ONLY)" % db_file)
        src = source_sql.replace("FROM t", "FROM src.t")
        a = duck.query("SELECT count(*) FROM (FROM read_parquet('%s') EXCEPT ALL %s)" % (path, src))
        b = duck.query("SELECT count(*) FROM (%s EXCEPT ALL FROM read_parquet('%s'))" % (src, path))
        n = duck.query("SELECT count(*) FROM read_parquet('%s')" % path)
        codec = duck.query("SELECT DISTINCT compression FROM parquet_metadata('%s')" % path)
        return a[0][0], b[0][0], int(n[0][0]), [c[0] for c in codec]
    finally:
        os.unlink(path)


def test_parquet_roundtrip(server, duck):
    r, data = fetch(server, MIXED, "parquet")
    assert r.status_code == 200, data[:300]
    assert r.headers["Content-Type"] == "application/vnd.apache.parquet"
    assert data[:4] == b"PAR1" and data[-4:] == b"PAR1"
    extra, missing, n, codecs = parquet_equals_source(duck, server, data, MIXED)
    assert (extra, missing, n) == ("0", "0", 20000)
    assert codecs == ["ZSTD"]


def test_parquet_table_with_params(server, duck):
    sql = "SELECT * FROM t WHERE id > $1 AND grp = $2"
    r, data = fetch(server, sql, "parquet", params=[10, "a"])
    assert r.status_code == 200, data[:300]
    src = "SELECT * FROM t WHERE id > 10 AND grp = 'a'"
    extra, missing, n, _ = parquet_equals_source(duck, server, data, src)
    assert (extra, missing) == ("0", "0") and n > 0


def test_parquet_not_compressed_again(server):
    r, data = fetch(server, "SELECT * FROM t", "parquet", headers={"Accept-Encoding": "zstd"})
    assert r.status_code == 200
    assert "Content-Encoding" not in r.headers
    assert data[:4] == b"PAR1"


def test_parquet_refusals_and_no_temp_files(server):
    for sql, status, code in [
        ("SELECT * FROM read_text('/etc/passwd')", 403, "NOT_READ_ONLY"),
        ("SELECT 1) TO '/tmp/dg_pwn.csv' (FORMAT CSV); --", 400, None),
        ("SELECT 1; SELECT 2", 400, "MULTIPLE_STATEMENTS"),
        ("SELECT * FROM no_such_table", 400, "SQL_ERROR"),
    ]:
        r, data = fetch(server, sql, "parquet")
        assert r.status_code == status, (sql, data[:300])
        if code:
            assert json.loads(data)["error"]["code"] == code
    assert not os.path.exists("/tmp/dg_pwn.csv")
    leftovers = [os.path.join(d, f) for d, _, fs in os.walk(server.state_dir) for f in fs
                 if f.endswith(".parquet")]
    assert leftovers == []


def test_parquet_export_cap(make_server):
    s = make_server(extra=["--max-export-bytes", "1000"])
    r, data = fetch(s, MIXED, "parquet")
    assert r.status_code == 413
    err = json.loads(data)["error"]
    assert err["code"] == "RESULT_TOO_LARGE" and "max_export_bytes" in err["message"]


def read_arrow(data):
    p = subprocess.run(["node", READ_ARROW, "-"], input=data, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=120)
    assert p.returncode == 0, p.stderr[-1000:]
    return json.loads(p.stdout)


@pytest.mark.parametrize("coding", ["", "zstd"])
def test_arrow_roundtrip(server, coding):
    r, data = fetch(server, MIXED, "arrow", headers={"Accept-Encoding": coding})
    assert r.status_code == 200, data[:300]
    assert r.headers["Content-Type"] == "application/vnd.apache.arrow.stream"
    if coding:
        assert r.headers.get("Content-Encoding") == coding
        data = subprocess.run(["zstd", "-d", "-c"], input=data, stdout=subprocess.PIPE,
                              check=True).stdout
    got = read_arrow(data)
    assert got["num_rows"] == 20000 and got["batches"] >= 2
    types = {f["name"]: f["type"] for f in got["schema"]}
    assert types["id"] == "Int64" and types["name"] == "Utf8" and types["flag"] == "Bool"
    assert types["pair"] == "List<Int64>" and types["st"].startswith("Struct<")
    doc = assert_ok(server.query("main", MIXED + " LIMIT 300"))
    for want, row in zip(doc["rows"], got["rows"][:300]):
        i, name, x, flag, maybe, pair, st, d = want
        assert row["id"] == str(i) and row["name"] == name and row["flag"] == flag
        assert row["maybe"] == (None if maybe is None else str(maybe))
        assert row["pair"] == [str(v) for v in pair]
        assert row["st"] == {"k": st["k"], "n": str(st["n"])}


def test_arrow_error_before_rows_is_json(server):
    r, data = fetch(server, "SELECT * FROM no_such_table", "arrow")
    assert_error_json = json.loads(data)["error"]
    assert r.status_code == 400 and assert_error_json["code"] == "SQL_ERROR"


def test_formats_negotiated_by_accept(server):
    for accept, ctype in [("application/vnd.apache.arrow.stream", "application/vnd.apache.arrow.stream"),
                          ("application/vnd.apache.parquet", "application/vnd.apache.parquet")]:
        r = server.query("main", "SELECT 1 AS one", headers={"Accept": accept})
        assert r.status_code == 200 and r.headers["Content-Type"] == ctype
    assert_error(server.query("main", "SELECT 1", fmt="xls"), 406, "NOT_ACCEPTABLE")
