"""Routes, the JSON result shape, formats, parameters and the catalog."""

import csv
import io
import json

import pytest

from dgserver import assert_error, assert_ok, query_stream_checked


def test_health(server):
    r = server.get("/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


def test_ready(server):
    r = server.get("/ready")
    assert r.status_code == 200


def test_query_post_shape(server):
    r = server.query("main", "SELECT id, name FROM t WHERE id <= 3 ORDER BY id")
    body = assert_ok(r)
    assert body["columns"] == [{"name": "id", "type": "INTEGER"},
                               {"name": "name", "type": "VARCHAR"}]
    assert body["rows"] == [[1, "name_1"], [2, "name_2"], [3, "name_3"]]
    assert body["row_count"] == 3
    assert body["truncated"] is False
    assert isinstance(body["query_id"], str) and body["query_id"]
    assert isinstance(body["elapsed_ms"], (int, float)) and body["elapsed_ms"] >= 0
    assert r.headers.get("X-Query-Id") == body["query_id"]
    assert r.headers.get("Content-Type", "").startswith("application/json")


def test_query_ids_unique(server):
    # Distinct SQL: a repeated query is answered from the result cache, whose body keeps the
    # query_id it was computed with (docs/cache.md); the X-Query-Id header is per request.
    rs = [server.query("main", "SELECT %d" % i) for i in range(5)]
    assert len({assert_ok(r)["query_id"] for r in rs}) == 5
    again = [server.query("main", "SELECT 1") for _ in range(3)]
    assert len({r.headers["X-Query-Id"] for r in again}) == 3


def test_query_get(server):
    r = server.query_get("main", "SELECT count(*) AS n FROM t")
    body = assert_ok(r)
    assert body["rows"] == [[100]]
    assert r.headers.get("X-Query-Id") == body["query_id"]


def test_empty_result(server):
    body = assert_ok(server.query("main", "SELECT id FROM t WHERE id < 0"))
    assert body["rows"] == [] and body["row_count"] == 0
    assert body["columns"] == [{"name": "id", "type": "INTEGER"}]


def test_many_rows_over_chunks(server):
    # More than one DuckDB chunk (2048 rows) per result.
    body = assert_ok(server.query("main", "SELECT range AS i FROM range(10000)"))
    assert body["row_count"] == 10000
    assert [r[0] for r in body["rows"]] == list(range(10000))


def test_views_schemas_macros(server):
    assert assert_ok(server.query("main", "SELECT count(*) FROM v_t"))["rows"] == [[10]]
    r = server.query("main", "SELECT y FROM s2.other WHERE x = 2")
    assert assert_ok(r)["rows"] == [["two"]]
    assert assert_ok(server.query("main", "SELECT plus1(41)"))["rows"] == [[42]]
    assert assert_ok(server.query("main", "SELECT count(*) FROM main.t"))["rows"] == [[100]]


# -- params -----------------------------------------------------------------------------------

def test_params_positional(server):
    r = server.query("main", "SELECT id, name FROM t WHERE id = ? OR name = ? ORDER BY id",
                     params=[5, "name_7"])
    assert assert_ok(r)["rows"] == [[5, "name_5"], [7, "name_7"]]


def test_params_dollar_positional(server):
    r = server.query("main", "SELECT $2::VARCHAR || $1::VARCHAR AS s", params=["b", "a"])
    assert assert_ok(r)["rows"] == [["ab"]]


def test_params_named(server):
    r = server.query("main", "SELECT id FROM t WHERE id BETWEEN $lo AND $hi ORDER BY id",
                     params={"lo": 3, "hi": 5})
    assert assert_ok(r)["rows"] == [[3], [4], [5]]


def test_params_types(server):
    r = server.query("main", "SELECT ?::INTEGER + 1, ?::DOUBLE * 2, ?::VARCHAR, ?::BOOLEAN, "
                             "? IS NULL, ?::BIGINT",
                     params=[41, 1.25, "x'; DROP TABLE t; --", True, None, 9007199254740993])
    assert assert_ok(r)["rows"] == [[42, 2.5, "x'; DROP TABLE t; --", True, True,
                                     "9007199254740993"]]


def test_params_are_values_not_sql(server):
    r = server.query("main", "SELECT count(*) FROM t WHERE name = ?", params=["' OR 1=1 --"])
    assert assert_ok(r)["rows"] == [[0]]


def test_params_get(server):
    r = server.query_get("main", "SELECT name FROM t WHERE id = ?", params=[9])
    assert assert_ok(r)["rows"] == [["name_9"]]
    r = server.query_get("main", "SELECT name FROM t WHERE id = $id", params={"id": 10})
    assert assert_ok(r)["rows"] == [["name_10"]]


@pytest.mark.parametrize("sql,params", [
    ("SELECT ?", []),                         # too few
    ("SELECT ?", [1, 2]),                     # too many
    ("SELECT $a", {"b": 1}),                  # wrong name
    ("SELECT $a", [1]),                       # positional for a named query
    ("SELECT ?", {"x": {"nested": 1}}),       # named for a positional query
    ("SELECT ?::INTEGER", [{"obj": 1}]),      # unsupported value type
    ("SELECT ?", "not-an-array"),             # params neither array nor object
    ("SELECT ?", 42),
])
def test_params_bad(server, sql, params):
    assert_error(server.query("main", sql, params=params), 400, "BAD_PARAMS")


def test_params_bad_json_get(server):
    r = server.get("/api/query/main", params={"sql": "SELECT ?", "params": "[1,"})
    assert_error(r, 400, ("BAD_PARAMS", "BAD_JSON"))


# -- formats ------------------------------------------------------------------------------------

Q = "SELECT id, name, score FROM t WHERE id IN (1, 2) ORDER BY id"


def test_format_ndjson(server):
    r = server.query("main", Q, fmt="ndjson")
    assert r.status_code == 200, r.text[:300]
    assert "ndjson" in r.headers.get("Content-Type", "")
    lines = [json.loads(x) for x in r.content.decode("utf-8").splitlines() if x.strip()]
    assert lines[0]["type"] == "meta"
    assert [c["name"] for c in lines[0]["columns"]] == ["id", "name", "score"]
    assert lines[0]["query_id"] == r.headers.get("X-Query-Id")
    rows = [row for ln in lines if ln["type"] == "rows" for row in ln["rows"]]
    assert rows == [[1, "name_1", 1.5], [2, "name_2", 3.0]]
    assert lines[-1]["type"] == "end" and lines[-1]["rows"] == 2
    assert "elapsed_ms" in lines[-1]


def test_format_csv(server):
    r = server.query("main", Q, fmt="csv")
    assert r.status_code == 200, r.text[:300]
    assert r.headers.get("Content-Type", "").startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8"), newline="")))
    assert rows[0] == ["id", "name", "score"]
    assert rows[1][:2] == ["1", "name_1"] and float(rows[1][2]) == 1.5
    assert len(rows) == 3


def test_format_csv_quoting(server):
    r = server.query("main", "SELECT 'a,b' AS x, 'say \"hi\"' AS y, 'l1' || chr(10) || 'l2' AS z",
                     fmt="csv")
    assert r.status_code == 200, r.text[:300]
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8"), newline="")))
    assert rows[1] == ["a,b", 'say "hi"', "l1\nl2"]


def test_format_tsv(server):
    r = server.query("main", Q, fmt="tsv")
    assert r.status_code == 200, r.text[:300]
    assert "tab-separated-values" in r.headers.get("Content-Type", "")
    lines = r.content.decode("utf-8").splitlines()
    assert lines[0].split("\t") == ["id", "name", "score"]
    assert lines[1].split("\t")[:2] == ["1", "name_1"]


@pytest.mark.parametrize("accept,ctype", [
    ("application/x-ndjson", "ndjson"),
    ("text/csv", "text/csv"),
    ("text/tab-separated-values", "tab-separated-values"),
    ("application/json", "application/json"),
    ("*/*", "application/json"),
])
def test_format_accept(server, accept, ctype):
    r = server.query("main", Q, headers={"Accept": accept})
    assert r.status_code == 200, r.text[:300]
    assert ctype in r.headers.get("Content-Type", "")


def test_format_get(server):
    r = server.query_get("main", Q, fmt="csv")
    assert r.status_code == 200 and r.text.splitlines()[0] == "id,name,score"


def test_format_unknown_406(server):
    assert_error(server.query("main", Q, fmt="xml"), 406, "NOT_ACCEPTABLE")
    assert_error(server.query("main", Q, headers={"Accept": "image/png"}), 406, "NOT_ACCEPTABLE")


# -- catalog --------------------------------------------------------------------------------------

def test_databases_list(server):
    r = server.get("/api/databases")
    assert r.status_code == 200, r.text[:300]
    dbs = r.json()["databases"]
    names = [d["name"] for d in dbs]
    assert sorted(names) == ["main", "other", "types"]
    for d in dbs:
        assert isinstance(d["size_bytes"], int) and d["size_bytes"] > 0
        assert d["read_only"] is True


def test_database_catalog(server):
    r = server.get("/api/databases/main")
    assert r.status_code == 200, r.text[:300]
    cat = r.json()
    assert cat["name"] == "main"
    tables = {(x["schema"], x["name"]): x for x in cat["tables"]}
    t = tables[("main", "t")]
    assert t["type"] == "table"
    assert t["row_count"] == 100
    assert [c["name"] for c in t["columns"]] == ["id", "name", "score", "grp", "d"]
    c0, c1 = t["columns"][0], t["columns"][1]
    assert (c0["name"], c0["type"], c0["nullable"]) == ("id", "INTEGER", False), c0
    assert (c1["name"], c1["type"], c1["nullable"]) == ("name", "VARCHAR", True), c1
    other = tables[("s2", "other")]
    assert other["row_count"] == 3
    assert other["columns"][0]["nullable"] is False
    v = tables[("main", "v_t")]
    assert v["type"] == "view"
    assert [c["name"] for c in v["columns"]] == ["id", "name"]
    # Only this database: nothing of `other`.
    assert ("main", "private_t") not in tables
    assert "OTHER-DB-SECRET" not in r.text


def test_database_catalog_unknown(server):
    assert_error(server.get("/api/databases/nope"), 404, "UNKNOWN_DB")


def test_data_dir_only_plain_database_files(make_server):
    """Hidden files, symlinks, odd names and non-.duckdb files in the data dir are neither listed
    nor servable."""
    import os
    import shutil
    s = make_server(dbs=("main",), engines=1, slots=1, start=False)
    src = os.path.join(s.data_dir, "main.duckdb")
    shutil.copy(src, os.path.join(s.data_dir, ".hidden.duckdb"))
    shutil.copy(src, os.path.join(s.data_dir, "bad name.duckdb"))
    shutil.copy(src, os.path.join(s.data_dir, "notes.txt"))
    os.symlink(src, os.path.join(s.data_dir, "link.duckdb"))
    os.mkdir(os.path.join(s.data_dir, "sub.duckdb"))
    s.start()
    r = s.get("/api/databases")
    assert r.status_code == 200, r.text[:300]
    assert [d["name"] for d in r.json()["databases"]] == ["main"]
    for name in ("link", "notes", "sub", "bad%20name", ".hidden"):
        assert_error(s.query(name, "SELECT 1"), 404, "UNKNOWN_DB")
        assert_error(s.get("/api/databases/" + name), 404, "UNKNOWN_DB")
    s.close()


# -- failures after the first rows ---------------------------------------------------------------

# Fails at input row 30M, after ~300k output rows (several MB), so streams commit headers first.
FAIL_LATE = ("SELECT CAST(CASE WHEN range = 30000000 THEN 'not-a-number' ELSE range::VARCHAR END "
             "AS INTEGER) AS v FROM range(40000000) WHERE range % 100 = 0")


def test_json_error_late_is_clean(server):
    """A single JSON document is complete or an error: a failure after many rows is a clean
    400, never a truncated document."""
    assert_error(server.query("main", FAIL_LATE), 400, "SQL_ERROR")


def test_ndjson_error_late_has_error_line(server):
    """NDJSON: a failure after the headers ends the stream with an error line and no end line;
    a failure before them is a real 4xx (DESIGN §5)."""
    r = query_stream_checked(server, "main", FAIL_LATE)
    if r.status_code != 200:
        assert_error(r, 400, "SQL_ERROR")
        return
    lines = [json.loads(x) for x in r.content.decode("utf-8").splitlines() if x.strip()]
    assert lines[0]["type"] == "meta"
    assert lines[-1]["type"] == "error", "stream did not end with an error line: %r" % (
        lines[-1],)
    assert lines[-1]["code"] == "SQL_ERROR" and lines[-1]["message"]
    assert not any(x["type"] == "end" for x in lines)
    assert server.dir not in r.content.decode("utf-8")


# -- connections and concurrency ------------------------------------------------------------------

def test_keep_alive_mixed_requests(server):
    """One keep-alive connection carries results, errors and other routes in turn."""
    import requests
    with requests.Session() as sess:
        for i in range(30):
            kind = i % 3
            if kind == 0:
                r = sess.post(server.url("/api/query/main"), json={"sql": "SELECT %d AS v" % i})
                assert assert_ok(r)["rows"] == [[i]]
            elif kind == 1:
                r = sess.post(server.url("/api/query/main"), json={"sql": "SELEC %d" % i})
                assert_error(r, 400, "SQL_ERROR")
            else:
                assert sess.get(server.url("/health")).json() == {"status": "ok"}


def test_concurrent_results_not_mixed(server):
    """Parallel queries on all slots each get their own result (no cross-talk between slots)."""
    import random
    import threading
    errors = []

    def worker(seed):
        rnd = random.Random(seed)
        for _ in range(15):
            v, n = rnd.randint(0, 10 ** 9), rnd.choice([1, 10, 3000, 70000])
            r = server.query("main", "SELECT ?::INTEGER AS v, length(repeat('x', ?)) AS n, "
                                     "repeat(?::VARCHAR, 3) AS s", params=[v, n, str(v)])
            try:
                assert assert_ok(r)["rows"] == [[v, n, str(v) * 3]]
            except AssertionError as e:
                errors.append(str(e)[:300])
    ths = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(8)]
    for th in ths:
        th.start()
    for th in ths:
        th.join(60)
    assert not errors, errors[:3]
