#!/usr/bin/python3
"""The expected results of the golden cases, written by hand from docs/formats.md and DuckDB's
semantics, and the format rules that turn them into the expected bytes (NAME.json, NAME.ndjson,
NAME.csv, NAME.tsv under cases/).

The expected files are derived from the value tables below, never from duckgate's output: to
change an expectation, change the table (with the reason) and run `python3 expect.py`. The format
rules here are an independent reading of docs/formats.md (JSON escaping, CSV quoting, TSV escaping,
NDJSON chunking, timing fields written as 0.000 by `duckgate query --no-timings`).

Values in the tables: None = NULL; str = a JSON string (CSV/TSV: its text); bool; int = a JSON
number; Num("1e+23") = a JSON number with exactly that text; Nf("nan") = a non-finite float
(JSON null, CSV/TSV text "nan"/"inf"/"-inf"); list/dict (dict with insertion order) = nested JSON.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
QUERY_ID = "golden"
CHUNK = 2048  # rows per DuckDB chunk = rows per NDJSON rows line


class Num:
    def __init__(self, text):
        self.text = text


class Nf:
    def __init__(self, text):
        self.text = text


def json_str(s):
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\b":
            out.append("\\b")
        elif ch == "\f":
            out.append("\\f")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif o < 0x20:
            out.append("\\u%04x" % o)
        elif o in (0x2028, 0x2029):
            out.append("\\u%04x" % o)
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def json_val(v):
    if v is None or isinstance(v, Nf):
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, Num):
        return v.text
    if isinstance(v, str):
        return json_str(v)
    if isinstance(v, list):
        return "[" + ",".join(json_val(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ",".join(json_str(k) + ":" + json_val(x) for k, x in v.items()) + "}"
    raise TypeError(v)


def text_val(v):
    """The unquoted text of a value in CSV/TSV; None for NULL."""
    if v is None:
        return None
    if isinstance(v, Nf):
        return v.text
    if isinstance(v, str):
        return v
    return json_val(v)


def csv_field(t):
    if t is None:
        return ""
    if t == "":
        return '""'
    if any(c in t for c in ',"\r\n') or t[0] == " " or t[-1] == " ":
        return '"' + t.replace('"', '""') + '"'
    return t


def tsv_field(t):
    if t is None:
        return ""
    return t.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def columns_json(cols):
    return "[" + ",".join('{"name":%s,"type":%s}' % (json_str(n), json_str(t)) for n, t in cols) + "]"


def render(cols, rows):
    rows_j = ["[" + ",".join(json_val(v) for v in r) + "]" for r in rows]
    doc = '{"columns":%s,"rows":[%s],"row_count":%d,"truncated":false,"query_id":%s,' \
          '"elapsed_ms":0.000}\n' % (columns_json(cols), ",".join(rows_j), len(rows),
                                     json_str(QUERY_ID))
    nd = ['{"type":"meta","columns":%s,"query_id":%s}\n' % (columns_json(cols), json_str(QUERY_ID))]
    for i in range(0, len(rows_j), CHUNK):
        nd.append('{"type":"rows","rows":[%s]}\n' % ",".join(rows_j[i:i + CHUNK]))
    nbytes = sum(len(x.encode()) for x in nd)
    nd.append('{"type":"end","rows":%d,"bytes":%d,"truncated":false,"elapsed_ms":0.000,'
              '"queue_ms":0.000,"execute_ms":0.000,"encode_ms":0.000,"compress_ms":0.000}\n'
              % (len(rows), nbytes))
    csv = [",".join(csv_field(n) for n, _ in cols) + "\n"]
    tsv = ["\t".join(tsv_field(n) for n, _ in cols) + "\n"]
    for r in rows:
        csv.append(",".join(csv_field(text_val(v)) for v in r) + "\n")
        tsv.append("\t".join(tsv_field(text_val(v)) for v in r) + "\n")
    return {"json": doc, "ndjson": "".join(nd), "csv": "".join(csv), "tsv": "".join(tsv)}


# ---- the cases ------------------------------------------------------------------------------
CASES = {}

CASES["nulls"] = (
    [("id", "INTEGER"), ("i", "INTEGER"), ("s", "VARCHAR"), ("d", "DOUBLE"), ("dt", "DATE"),
     ("l", "INTEGER[]"), ("st", "STRUCT(a INTEGER)")],
    [[1, None, None, None, None, None, None],
     [2, 0, "", Num("0"), "1970-01-01", [None], {"a": None}],
     [3, None, "NULL", None, None, [], None]])

CASES["floats"] = (
    [("id", "INTEGER"), ("d", "DOUBLE"), ("f", "FLOAT")],
    [[1, Nf("nan"), Nf("nan")],
     [2, Nf("inf"), Nf("inf")],
     [3, Nf("-inf"), Nf("-inf")],
     [4, Num("-0"), Num("-0")],
     [5, Num("0.1"), Num("0.1")],
     [6, Num("1e+23"), Num("3.4028235e+38")],
     [7, Num("1.5e-7"), Num("1e-45")],
     [8, Num("100"), Num("16777216")],
     [9, Num("5e-324"), Num("1.1754944e-38")],
     [10, Num("1.7976931348623157e+308"), Num("123456.7")],
     [11, Num("1e+18"), Num("0.3")],
     [12, Num("1.2345678901234568e+20"), Num("0.000001")],
     [13, Num("0.000001"), None],
     [14, Num("9.9e-7"), Num("-2.5")]])

CASES["decimals"] = (
    [("id", "INTEGER"), ("d38", "DECIMAL(38,10)"), ("d18", "DECIMAL(18,3)"),
     ("d4", "DECIMAL(4,0)"), ("d9", "DECIMAL(9,2)")],
    [[1, "1234567890123456789012345678.0123456789", "1.500", "5", "-0.05"],
     [2, "-9999999999999999999999999999.9999999999", "-0.001", "-9999", "0.00"],
     [3, "0.0000000001", "999999999999999.999", "0", None],
     [4, "0.0000000000", "0.000", None, "1234567.89"]])

CASES["integers"] = (
    [("id", "INTEGER"), ("i8", "TINYINT"), ("u8", "UTINYINT"), ("i32", "INTEGER"),
     ("u32", "UINTEGER"), ("i64", "BIGINT"), ("u64", "UBIGINT"), ("h", "HUGEINT"),
     ("uh", "UHUGEINT")],
    [[1, 127, 255, 2147483647, 4294967295, 9007199254740992, "18446744073709551615",
      "170141183460469231731687303715884105727", "340282366920938463463374607431768211455"],
     [2, -128, 0, -2147483648, 0, "9007199254740993", 9007199254740992,
      "-170141183460469231731687303715884105728", "0"],
     [3, 0, 1, 0, 1, -9007199254740992, "9007199254740993", "0", "1"],
     [4, None, None, None, None, "-9007199254740993", 0, "-1", None],
     [5, -1, None, -1, None, "-9223372036854775808", None, None, None],
     [6, None, None, None, None, "9223372036854775807", None, None, None]])

CASES["uuid_blob"] = (
    [("id", "INTEGER"), ("u", "UUID"), ("b", "BLOB")],
    [[1, "550e8400-e29b-41d4-a716-446655440000", "AAEC/w=="],
     [2, "00000000-0000-0000-0000-000000000000", ""],
     [3, "ffffffff-ffff-ffff-ffff-ffffffffffff", "YWJj"],
     [4, "7fffffff-ffff-ffff-8000-000000000001", "YWIKY2Q/"],
     [5, None, None],
     [6, "80000000-0000-0000-0000-000000000000", "+/+/"]])

CASES["intervals"] = (
    [("id", "INTEGER"), ("iv", "INTERVAL")],
    [[1, "P1Y2M3DT4H5M6.5S"],
     [2, "PT0S"],
     [3, "P-1Y-2M3DT-4H-5M-6.5S"],
     [4, "PT36H"],
     [5, "P1Y2M"],
     [6, "PT0.000001S"],
     [7, "P-1D"],
     [8, None],
     [9, "PT1H30M"],
     [10, "P400D"]])

CASES["temporal"] = (
    [("id", "INTEGER"), ("dt", "DATE"), ("tm", "TIME"), ("ts", "TIMESTAMP"),
     ("tz", "TIMESTAMP WITH TIME ZONE"), ("tns", "TIMESTAMP_NS"), ("ts_s", "TIMESTAMP_S"),
     ("ts_ms", "TIMESTAMP_MS"), ("ttz", "TIME WITH TIME ZONE")],
    [[1, "2024-02-29", "12:34:56.789", "2023-11-14T22:13:20.123456", "2024-01-01T10:00:00Z",
      "2024-01-01T00:00:00.000000001", "2024-01-01T00:00:01", "2024-01-01T00:00:00.5",
      "12:34:56+02:00"],
     [2, "1969-12-31", "00:00:00", "1969-12-31T23:59:59.999999", "1970-01-01T00:00:00Z",
      "1969-12-31T23:59:59.999999999", "1900-01-01T00:00:00", "1970-01-01T00:00:00.001",
      "12:34:56-05:30"],
     [3, "-0043-03-15", "24:00:00", "infinity", "-infinity", None, None, None, None],
     [4, "infinity", "23:59:59.999999", "+10000-01-01T00:00:00", None, None, None, None,
      "00:00:00+05:30:15"]])

# DuckDB spells a user ENUM type by its dictionary, not by its name: typeof(m) and DESCRIBE
# both say ENUM('sad', 'ok', 'happy') (checked with DuckDB 1.4.4).
MOOD = "ENUM('sad', 'ok', 'happy')"
CASES["enum"] = (
    [("id", "INTEGER"), ("m", MOOD), ("ml", MOOD + "[]")],
    [[1, "ok", ["ok", "sad"]],
     [2, None, [None, "sad"]],
     [3, "happy", ["happy", "sad"]],
     [4, "sad", ["sad", "sad"]]])

CASES["nested"] = (
    [("id", "INTEGER"), ("l", "INTEGER[]"), ("sl", "VARCHAR[]"),
     ("st", "STRUCT(a INTEGER, b VARCHAR)"), ("m", "MAP(VARCHAR, INTEGER)"),
     ("arr", "INTEGER[3]"), ("ls", "STRUCT(x INTEGER[])[]"), ("mi", "MAP(INTEGER, VARCHAR)")],
    [[1, [1, None, 3], ["a", "b,c", None], {"a": 1, "b": "x"}, {"k1": 1, "k2": None}, [1, 2, 3],
      [{"x": [1, 2]}, {"x": []}], {"1": "one", "2": "two"}],
     [2, [], [], {"a": None, "b": None}, {}, [None, None, 7], [], {}],
     [3, None, [""], None, None, None, None, None]])

CASES["nested_values"] = (
    [("dl", "DOUBLE[]"), ("dm", "MAP(DATE, DECIMAL(4,2))"),
     ("deep", "STRUCT(k MAP(VARCHAR, INTEGER[])[])"), ("ll", "INTEGER[][]"),
     ("sl", "VARCHAR[]"), ("fm", "MAP(DOUBLE, VARCHAR)"), ("bl", "BIGINT[]"),
     ("misc", "STRUCT(u UUID, h HUGEINT, b BLOB)")],
    [[[Num("1.5"), None, None], {"2024-01-01": "1.50"}, {"k": [{"a": [1]}]},
      [[1, 2], [], None, [3]], ['q"\nx', "é\\"], {"1.5": "x", "nan": "n"},
      ["9007199254740993", 1],
      {"u": "550e8400-e29b-41d4-a716-446655440000", "h": "1", "b": "/w=="}]])

CASES["strings"] = (
    [("id", "INTEGER"), ("s", "VARCHAR"), ("n", "BIGINT")],
    [[1, "plain", 5], [2, "comma, here", 11], [3, 'quote " inside', 14],
     [4, "line1\nline2", 11], [5, "cr\rlf\n", 6], [6, "tab\tsep", 7], [7, "nul\x00byte", 8],
     [8, "back\\slash", 10], [9, " lead", 5], [10, "trail ", 6], [11, "", 0],
     [12, "é日本🦆", 4], [13, "ctl\x01\x1f\x7f", 6], [14, "ls\u2028ps\u2029", 6],
     [15, None, None], [16, '"', 1], [17, "it's", 4], [18, "\b\f", 2]])

CASES["names"] = (
    [("a,b", "INTEGER"), ('q"t', "INTEGER"), (" lead", "INTEGER"), ("é", "INTEGER"),
     ("tab\tx", "INTEGER")],
    [[1, 2, 3, 4, 5]])

CASES["chunks"] = ([("i", "INTEGER")], [[i] for i in range(4100)])

CASES["empty"] = ([("a", "INTEGER"), ("b", "VARCHAR")], [])

CASES["params"] = (
    [("a", "INTEGER"), ("b", "VARCHAR"), ("c", "DOUBLE")],
    [[42, 'x"y', Num("2.5")]])

MIXED_COLS = [
    ("id", "INTEGER"), ("b", "BOOLEAN"), ("i8", "TINYINT"), ("i64", "BIGINT"),
    ("u64", "UBIGINT"), ("h", "HUGEINT"), ("f", "FLOAT"), ("d", "DOUBLE"),
    ("dec", "DECIMAL(18,3)"), ("dec38", "DECIMAL(38,10)"), ("s", "VARCHAR"), ("bl", "BLOB"),
    ("u", "UUID"), ("dt", "DATE"), ("t", "TIME"), ("ts", "TIMESTAMP"),
    ("tz", "TIMESTAMP WITH TIME ZONE"), ("iv", "INTERVAL"), ("e", MOOD), ("l", "INTEGER[]"),
    ("st", "STRUCT(a INTEGER, b VARCHAR)"), ("m", "MAP(VARCHAR, INTEGER)"), ("arr", "DOUBLE[2]")]
CASES["mixed"] = (MIXED_COLS, [
    [1, True, 1, "9007199254740993", "18446744073709551615",
     "-170141183460469231731687303715884105728", Num("0.1"), Num("0.1"), "1234.500",
     "-1.0000000001", 'a,b "c"\nd', "AP8=", "550e8400-e29b-41d4-a716-446655440000",
     "2024-02-29", "12:34:56.789", "2023-11-14T22:13:20.123456", "2024-01-01T10:00:00Z",
     "P1Y2M3DT4H5M6.5S", "happy", [1, None, 3], {"a": 1, "b": 'x,"y"'}, {"k": 1, "z": None},
     [Num("1.5"), Num("-0.25")]],
    [2, False, -128, -1, 0, "0", Nf("nan"), Nf("inf"), "-0.001", "0.0000000000", "", "",
     "00000000-0000-0000-0000-000000000000", "1969-12-31", "00:00:00",
     "1969-12-31T23:59:59.999999", "1970-01-01T00:00:00Z", "P-1D", "sad", [],
     {"a": None, "b": None}, {}, [Num("0"), Num("1e+300")]],
    [3] + [None] * 22,
    [4, True, 127, "9223372036854775807", 9007199254740992, "1", Nf("-inf"), Nf("-inf"),
     "999999999999999.999", "9999999999999999999999999999.9999999999", " é日本🦆 ", "QUI=",
     "ffffffff-ffff-ffff-ffff-ffffffffffff", "0001-01-01", "24:00:00", "infinity",
     "-infinity", "PT0S", "ok", [7], {"a": -1, "b": ""}, {"": 0}, [None, Num("2")]],
    [5, False, 0, 42, 42, "42", Num("1e-45"), Num("5e-324"), "0.500", "0.5000000000",
     "tab\tx\\y", None, None, "2000-01-01", "23:59:59.999999", "2000-01-01T00:00:00",
     "2000-01-01T00:00:00.5Z", "PT36H", None, [None], None, {"a": 2}, None]])


def main():
    out_dir = os.path.join(HERE, "cases")
    for name, (cols, rows) in CASES.items():
        if not os.path.exists(os.path.join(out_dir, name + ".sql")):
            sys.exit("expect.py: no cases/%s.sql" % name)
        for fmt, text in render(cols, rows).items():
            with open(os.path.join(out_dir, "%s.%s" % (name, fmt)), "wb") as f:
                f.write(text.encode("utf-8"))
    print("expect.py: wrote %d cases x 4 formats" % len(CASES))


if __name__ == "__main__":
    main()
