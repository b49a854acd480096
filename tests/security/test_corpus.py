"""Runs every statement of corpus.txt against a read-only server: attacks get a clean JSON
4xx/5xx (never 2xx), legitimate analytics get 200, nothing leaks, the server survives, and at the
end not one byte changed on disk."""

import json
import os

import pytest
import requests

import corpus
from seclib import LEAK_MARKERS, SENTINEL, tree_digest
from dgserver import assert_error, assert_ok, error_body

CASES = corpus.load()


def check_no_leak(sec, sql, resp):
    text = resp.content.decode("utf-8", "replace")
    for m in LEAK_MARKERS:
        assert m not in text, "LEAK: response contains %r: %s" % (m, text[:500])
    for p in sec.server_paths:
        if p and p not in sql:
            assert p not in text, "server path %r in response: %s" % (p, text[:500])


def assert_alive(sec):
    srv = sec.server
    assert srv.alive(), "the server process died:\n" + srv.log()[-3000:]
    r = srv.get("/health", timeout=10)
    assert r.status_code == 200, "/health answered %d" % r.status_code


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_statement(sec, case):
    srv = sec.server
    assert srv.alive(), "server died earlier in the suite"
    sql = corpus.expand(case.sql, sec.env)
    try:
        resp = srv.query("main", sql, timeout_ms=case.timeout_ms, timeout=60)
    except requests.RequestException as e:
        assert_alive(sec)
        raise AssertionError("no HTTP answer for %s: %r" % (case.id, e))
    check_no_leak(sec, sql, resp)
    if resp.status_code == 200 and 200 in case.expect:
        body = assert_ok(resp)
        assert isinstance(body["rows"], list)
        if case.rows is not None:
            assert body["rows"] == case.rows, "rows %r, expected %r" % (body["rows"], case.rows)
    else:
        assert resp.status_code not in range(200, 300) or 200 in case.expect, (
            "ATTACK SUCCEEDED (%d): %s -> %s" % (resp.status_code, sql[:200], resp.text[:300]))
        assert_error(resp, case.expect, case.codes)
    if case.resource:
        assert_alive(sec)


GET_CASES = [c for c in CASES if not c.resource and len(c.sql) < 4000]


@pytest.mark.parametrize("case", GET_CASES, ids=[c.id for c in GET_CASES])
def test_statement_get(sec, case):
    """The same statements through GET /api/query/{db}?sql= (another parsing path)."""
    srv = sec.server
    assert srv.alive(), "server died earlier in the suite"
    sql = corpus.expand(case.sql, sec.env)
    resp = srv.query_get("main", sql, timeout=60)
    check_no_leak(sec, sql, resp)
    if resp.status_code == 200 and 200 in case.expect:
        body = assert_ok(resp)
        if case.rows is not None:
            assert body["rows"] == case.rows
    else:
        assert resp.status_code not in range(200, 300) or 200 in case.expect, (
            "ATTACK SUCCEEDED via GET (%d): %s -> %s" % (resp.status_code, sql[:200],
                                                        resp.text[:300]))
        assert_error(resp, case.expect, case.codes)


LAYER2_CASES = [c for c in CASES
                if c.category in ("file_read", "file_read_maybe_missing", "tricks_deny",
                                  "nested_sql", "introspection")]


@pytest.mark.parametrize("case", LAYER2_CASES, ids=[c.id for c in LAYER2_CASES])
def test_sandbox_parse_check_catches_file_access(sec, case):
    """DESIGN §4 layer 2 (the parse-only check) must refuse file readers, path-like relation
    names and nested SQL by itself; DuckDB's own "Permission Error" (layer 1,
    enable_external_access=false) showing up means layer 2 let the statement through."""
    sql = corpus.expand(case.sql, sec.env)
    resp = sec.server.query("main", sql, timeout=60)
    if resp.status_code in (400, 403):
        msg = error_body(resp)["message"]
        assert "Permission Error" not in msg, (
            "only DuckDB's external-access setting stopped this (the parse check let it "
            "through): %s -> %s" % (sql[:150], msg[:200]))


LEAK_PROBES = [
    "SELECT * FROM read_text('${SECRET_TXT}')",
    "SELECT * FROM read_csv('${SECRET_CSV}', header = false, all_varchar = true)",
    "SELECT * FROM '${SECRET_CSV}'",
    "SELECT * FROM read_json('${SECRET_JSON}')",
    "SELECT * FROM read_parquet('${SECRET_PARQUET}')",
    "SELECT * FROM sniff_csv('${SECRET_CSV}')",
    "SELECT * FROM query('SELECT * FROM read_text(''${SECRET_TXT}'')')",
    "SELECT * FROM other.private_t",
]


@pytest.mark.parametrize("fmt", ["json", "ndjson", "csv", "tsv"])
@pytest.mark.parametrize("probe", range(len(LEAK_PROBES)))
def test_file_contents_never_leak(sec, fmt, probe):
    """Reading a file (or another database) never returns its contents, in any format, by POST
    or GET."""
    srv = sec.server
    sql = corpus.expand(LEAK_PROBES[probe], sec.env)
    for resp in (srv.query("main", sql, fmt=fmt), srv.query_get("main", sql, fmt=fmt)):
        check_no_leak(sec, sql, resp)
        assert resp.status_code in (400, 403), (resp.status_code, resp.text[:300])
        assert_error(resp, (400, 403))


def test_params_cannot_smuggle_paths(sec):
    """A path passed as a bound parameter to a file reader is refused as well."""
    srv = sec.server
    for sql in ("SELECT * FROM read_text(?)", "SELECT * FROM read_csv($p)"):
        params = [sec.secret_txt] if "?" in sql else {"p": sec.secret_csv}
        r = srv.query("main", sql, params=params)
        check_no_leak(sec, sql, r)
        assert_error(r, (400, 403))


def test_other_db_is_served_only_by_name(sec):
    """The second database is readable through its own route only."""
    r = sec.server.query("other", "SELECT secret FROM private_t")
    assert assert_ok(r)["rows"] == [["OTHER-DB-SECRET-7c1f"]]
    r = sec.server.query("main", "SELECT * FROM private_t")
    assert_error(r, 400, "SQL_ERROR")
    assert "OTHER-DB-SECRET" not in r.text


def test_server_alive_after_corpus(sec):
    assert_alive(sec)
    assert assert_ok(sec.server.query("main", "SELECT count(*) FROM t"))["rows"] == [[100]]


def test_zz_nothing_changed_on_disk(sec):
    """Last: stop the server and compare every byte of the data dir, the secrets dir and the
    attack output dir with their state before the server started."""
    srv = sec.server
    rc = srv.terminate(timeout=20)
    assert rc == 0, "server exit status %r after SIGTERM:\n%s" % (rc, srv.log()[-2000:])
    after = tree_digest(srv.data_dir)
    assert after == sec.data_before, "data dir changed: before %s after %s" % (
        json.dumps(sec.data_before, indent=1), json.dumps(after, indent=1))
    assert tree_digest(sec.secret_dir) == sec.secrets_before, "files appeared or changed next to " \
        "the server's working directory: %s" % sorted(os.listdir(sec.secret_dir))
    leftovers = []
    for dirpath, dirnames, filenames in os.walk(sec.out_dir):
        leftovers += [os.path.join(dirpath, n) for n in dirnames + filenames]
    assert not leftovers, "COPY/EXPORT targets were written: %r" % leftovers
    assert SENTINEL not in srv.log(), "the secret reached the server log"
