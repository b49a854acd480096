"""Lossless JSON values for every DuckDB type the all-types fixture holds (DESIGN §5)."""

import base64
import datetime
import decimal
import json
import re
import struct

import pytest

from all_types_sql import EXPECTED, EXPECTED_TYPES
from dgserver import assert_ok

ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
ISO_TIME = re.compile(r"^\d{2}:\d{2}:\d{2}(\.\d{1,6})?$")
ISO_TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?$")
ISO_TSTZ = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$")
ISO_DUR = re.compile(r"^P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?"
                     r"(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$")
DEC_RE = re.compile(r"^-?\d+(\.\d+)?$")


def parse_duration(s):
    """ISO 8601 duration -> (months, days, micros)."""
    m = ISO_DUR.match(s)
    assert m and s not in ("P", "PT") and not s.endswith("T"), "not an ISO 8601 duration: %r" % s
    y, mo, w, d, h, mi, sec = m.groups()
    months = int(y or 0) * 12 + int(mo or 0)
    days = int(w or 0) * 7 + int(d or 0)
    micros = (int(h or 0) * 3600 + int(mi or 0) * 60) * 1000000
    if sec:
        micros += int(decimal.Decimal(sec) * 1000000)
    return months, days, micros


def _ts(s):
    frac = ""
    if "." in s:
        s, frac = s.split(".")
    t = datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S")
    return t, int((frac + "000000")[:6]) if frac else 0


def check_value(col, got, want):
    if want is None:
        assert got is None, "%s: expected null, got %r" % (col, got)
        return
    if col in ("f", "f2"):
        assert isinstance(got, (int, float)) and not isinstance(got, bool), (col, got)
        assert struct.pack("<f", got) == struct.pack("<f", want), \
            "%s: %r does not round-trip to float32 %r" % (col, got, want)
    elif col in ("dbl", "dbl2"):
        assert isinstance(got, float) or isinstance(got, int), (col, got)
        assert float(got) == want, "%s: %r != %r (doubles must round-trip)" % (col, got, want)
    elif col in ("dec1", "dec2"):
        assert isinstance(got, str) and DEC_RE.match(got), \
            "%s: DECIMAL must be a plain decimal string, got %r" % (col, got)
        assert decimal.Decimal(got) == decimal.Decimal(want), "%s: %r != %r" % (col, got, want)
    elif col == "dt":
        assert isinstance(got, str) and ISO_DATE.match(got) and got == want, (col, got, want)
    elif col == "tm":
        assert isinstance(got, str) and ISO_TIME.match(got), "%s: not ISO time: %r" % (col, got)
        assert datetime.time.fromisoformat(got) == datetime.time.fromisoformat(want), (got, want)
    elif col == "ts":
        assert isinstance(got, str) and ISO_TS.match(got), \
            "%s: not an ISO 8601 timestamp (YYYY-MM-DDTHH:MM:SS[.f]): %r" % (col, got)
        assert _ts(got) == _ts(want), "%s: %r != %r" % (col, got, want)
    elif col == "tstz":
        assert isinstance(got, str) and ISO_TSTZ.match(got), \
            "%s: not an ISO 8601 UTC timestamp ending in Z: %r" % (col, got)
        assert _ts(got[:-1]) == _ts(want[:-1]), "%s: %r != %r" % (col, got, want)
    elif col == "iv":
        assert isinstance(got, str), (col, got)
        assert parse_duration(got) == want, "%s: %r means %r, expected %r" % (
            col, got, parse_duration(got), want)
    elif col == "bl":
        assert isinstance(got, str), (col, got)
        assert got == want, "%s: BLOB must be standard padded base64: %r != %r" % (col, got, want)
        base64.b64decode(got, validate=True)
    elif col == "mp":
        if isinstance(got, dict):
            pairs = list(got.items())
        else:
            assert isinstance(got, list), "%s: MAP must be a JSON object or a list: %r" % (col, got)
            pairs = []
            for kv in got:
                if isinstance(kv, dict):
                    pairs.append((kv.get("key"), kv.get("value")))
                else:
                    assert isinstance(kv, list) and len(kv) == 2, (col, got)
                    pairs.append(tuple(kv))
        assert pairs == want, "%s: %r != %r" % (col, got, want)
    else:
        assert type(got) is type(want) and got == want, "%s: got %r, expected %r" % (
            col, got, want)


@pytest.fixture(scope="module")
def result(server):
    r = server.query("types", "SELECT * FROM all_types ORDER BY id")
    body = assert_ok(r)
    # Strict JSON: no NaN/Infinity literals, no raw control characters.
    json.loads(r.content, parse_constant=lambda c: pytest.fail("non-JSON constant %s" % c))
    return body


def test_shape(result):
    assert result["row_count"] == 3
    assert result["truncated"] is False
    names = [c["name"] for c in result["columns"]]
    assert names == list(EXPECTED.keys())
    assert all(len(row) == len(names) for row in result["rows"])


@pytest.mark.parametrize("col", list(EXPECTED.keys()))
def test_value(result, col):
    idx = [c["name"] for c in result["columns"]].index(col)
    for row, want in zip(result["rows"], EXPECTED[col]):
        check_value(col, row[idx], want)


@pytest.mark.parametrize("col", list(EXPECTED_TYPES.keys()))
def test_column_type(result, col):
    c = [c for c in result["columns"] if c["name"] == col][0]
    assert c["type"] in EXPECTED_TYPES[col], "%s: type %r, expected one of %r" % (
        col, c["type"], EXPECTED_TYPES[col])


def test_nan_inf_expressions(server):
    r = server.query("main", "SELECT 'NaN'::DOUBLE AS a, 'inf'::DOUBLE AS b, '-inf'::FLOAT AS c, "
                             "[1.0, 'nan'::DOUBLE] AS d")
    body = assert_ok(r)
    assert body["rows"] == [[None, None, None, [1.0, None]]]
    assert [c["type"] for c in body["columns"]][:2] == ["DOUBLE", "DOUBLE"]


def test_bigint_boundaries(server):
    r = server.query("main", "SELECT 9007199254740992::BIGINT + 1 AS big, "
                             "-9007199254740991::BIGINT AS small, "
                             "170141183460469231731687303715884105727::HUGEINT AS h")
    row = assert_ok(r)["rows"][0]
    assert row[0] == "9007199254740993"
    assert row[1] == -9007199254740991
    assert row[2] == "170141183460469231731687303715884105727"


def test_ndjson_same_values(server, result):
    r = server.query("types", "SELECT * FROM all_types ORDER BY id", fmt="ndjson")
    assert r.status_code == 200, r.text[:300]
    lines = [json.loads(ln) for ln in r.content.decode("utf-8").splitlines() if ln.strip()]
    assert lines[0]["type"] == "meta"
    assert lines[-1]["type"] == "end" and lines[-1]["rows"] == 3
    rows = [row for ln in lines if ln["type"] == "rows" for row in ln["rows"]]
    assert rows == result["rows"]
