"""Response compression: Accept-Encoding negotiation, Content-Encoding/Vary headers, and every
coding decoded by its reference decoder (the zstd, brotli and gzip command-line tools), for each
streaming format, including a stream that fails mid-way."""

import json
import subprocess

import pytest
import requests

from dgserver import assert_error

BIG = "SELECT i, 'row ' || i AS s, i * 0.5 AS x FROM range(200000) r(i)"
DECODERS = {"zstd": ["zstd", "-d", "-c"], "br": ["brotli", "-d", "-c"], "gzip": ["gzip", "-d", "-c"]}


def fetch_raw(server, sql, fmt, accept_encoding):
    """POSTs a query and returns (response, body bytes exactly as sent on the wire)."""
    # requests would send its own default Accept-Encoding (gzip, deflate) when none is given;
    # an empty value asks for no coding, like a client without the header.
    headers = {"Content-Type": "application/json",
               "Accept-Encoding": accept_encoding if accept_encoding is not None else ""}
    r = requests.post(server.url("/api/query/main?format=" + fmt), data=json.dumps({"sql": sql}),
                      headers=headers, stream=True, timeout=60)
    body = r.raw.read(decode_content=False)
    r.close()
    return r, body


def decode(coding, data):
    p = subprocess.run(DECODERS[coding], input=data, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    assert p.returncode == 0, "%s could not decode the body: %s" % (coding, p.stderr[:300])
    return p.stdout


def strip_volatile(fmt, body):
    """Drops what differs between two runs of the same query (query id, timings)."""
    if fmt == "ndjson":
        lines = body.decode().splitlines()
        return [l for l in lines if '"type":"rows"' in l]
    if fmt == "json":
        doc = json.loads(body)
        return doc["columns"], doc["rows"], doc["row_count"]
    return body


@pytest.mark.parametrize("fmt", ["ndjson", "csv", "json"])
@pytest.mark.parametrize("coding", ["zstd", "br", "gzip"])
def test_coding_roundtrip(server, fmt, coding):
    plain_r, plain = fetch_raw(server, BIG, fmt, None)
    assert plain_r.status_code == 200
    assert "Content-Encoding" not in plain_r.headers
    r, wire = fetch_raw(server, BIG, fmt, coding)
    assert r.status_code == 200, wire[:300]
    assert r.headers.get("Content-Encoding") == coding
    assert "accept-encoding" in r.headers.get("Vary", "").lower()
    assert "compress;dur=" in r.headers.get("Server-Timing", "")
    decoded = decode(coding, wire)
    assert strip_volatile(fmt, decoded) == strip_volatile(fmt, plain)
    assert len(wire) * 2 < len(decoded), "compression should at least halve this result"


@pytest.mark.parametrize("header,want", [
    ("gzip;q=1.0, br;q=0.8, zstd;q=0.5", "gzip"),
    ("gzip, br, zstd", "zstd"),
    ("*", "zstd"),
    ("deflate", None),
    ("identity", None),
    ("", None),
])
def test_negotiation(server, header, want):
    r, wire = fetch_raw(server, "SELECT 1 AS one", "ndjson", header)
    assert r.status_code == 200
    assert r.headers.get("Content-Encoding") == want
    body = decode(want, wire) if want else wire
    assert b'"type":"end"' in body


def test_nothing_acceptable_is_406(server):
    r = server.query("main", "SELECT 1", headers={"Accept-Encoding": "identity;q=0, *;q=0"})
    assert_error(r, 406, "NOT_ACCEPTABLE")


def test_error_before_rows_is_plain_json(server):
    r, wire = fetch_raw(server, "SELECT * FROM no_such_table", "ndjson", "zstd")
    assert r.status_code == 400
    assert "Content-Encoding" not in r.headers
    assert json.loads(wire)["error"]["code"] == "SQL_ERROR"


@pytest.mark.parametrize("coding", ["zstd", "br", "gzip"])
def test_midstream_error_stays_decodable(server, coding):
    """A query that fails after rows were sent: the compressed NDJSON stream is still complete
    and decodable, and ends with the error line."""
    # Fails at input row 30M, after ~300k output rows, so the headers are usually committed.
    sql = ("SELECT CAST(CASE WHEN range = 30000000 THEN 'not-a-number' ELSE range::VARCHAR END "
           "AS INTEGER) AS v FROM range(40000000) WHERE range % 100 = 0")
    r, wire = fetch_raw(server, sql, "ndjson", coding)
    if r.status_code != 200:
        assert r.status_code == 400 and json.loads(wire)["error"]["code"] == "SQL_ERROR"
        return
    lines = decode(coding, wire).decode().splitlines()
    assert json.loads(lines[0])["type"] == "meta"
    last = json.loads(lines[-1])
    assert last["type"] == "error" and last["code"] == "SQL_ERROR", lines[-1]
    assert not any('"type":"end"' in l for l in lines)
