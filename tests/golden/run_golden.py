#!/usr/bin/python3
"""Golden tests of the result encoders, through the real binary (`duckgate query`).

    run_golden.py --bin BUILD/duckgate [--libduckdb PATH/libduckdb.so] [--actual DIR] [CASE...]

1. Creates the fixture database (fixture.sql) with `duckgate exec` in a temporary directory.
2. For every cases/NAME.sql and every format (json, ndjson, csv, tsv) runs
   `duckgate query DB - --format F --query-id golden --no-timings [--params cases/NAME.params]`
   and compares the output byte for byte with cases/NAME.F. --no-timings makes every time field
   0.000 and --query-id fixes the id, so the bytes are reproducible. The expected files come from
   the hand-written tables in expect.py (see there); they are never copied from the output.
   --actual DIR writes the outputs there for review (it never touches cases/).
3. Round trips of the mixed-type table `mixed`: the CSV and NDJSON outputs read back equal the
   source. Python checks them against the JSON document (NDJSON rows = JSON rows; every CSV and
   TSV field = the text of the JSON value, NULL vs '' kept apart in CSV). With --libduckdb, a
   trusted DuckDB (the library the build links, loaded with ctypes in this test process only: a
   plain in-memory instance, not duckgate's sandbox) reads the CSV and NDJSON files back with
   read_csv/read_ndjson and compares every column with the source table.
4. The command's own contract: -o FILE equals stdout and leaves no FILE.tmp; a failing query
   with -o leaves neither FILE nor FILE.tmp; exit status 2 for bad usage and unsupported
   formats, 1 with the error code name on stderr for a refused query; --compress gzip output
   decompresses to the plain bytes.
Exit status 0 when everything matches, 1 otherwise. Standard library only.
"""
import argparse
import ctypes
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
CASES_DIR = os.path.join(HERE, "cases")
FORMATS = ("json", "ndjson", "csv", "tsv")
TIMEOUT_S = 120

failures = []


def fail(what, detail=""):
    failures.append(what)
    print("FAIL %s%s" % (what, ("\n     " + detail) if detail else ""))


def ok(what):
    print("ok   %s" % what)


def run(cmd, stdin=None):
    return subprocess.run(cmd, input=stdin, capture_output=True, timeout=TIMEOUT_S)


def query(binary, db, sql, fmt, params=None, extra=()):
    cmd = [binary, "query", db, "-", "--format", fmt, "--query-id", "golden", "--no-timings"]
    if params is not None:
        cmd += ["--params", params]
    cmd += list(extra)
    return run(cmd, stdin=sql.encode())


def first_diff(a, b):
    n = min(len(a), len(b))
    i = next((k for k in range(n) if a[k] != b[k]), n)
    lo = max(0, i - 60)
    return "at byte %d (expected %d bytes, got %d):\n     expected ...%r\n     actual   ...%r" % (
        i, len(a), len(b), a[lo:i + 60], b[lo:i + 60])


# ---- 2. golden cases ------------------------------------------------------------------------
def run_cases(binary, db, names, actual_dir):
    for name in names:
        with open(os.path.join(CASES_DIR, name + ".sql"), encoding="utf-8") as f:
            sql = f.read()
        params = None
        ppath = os.path.join(CASES_DIR, name + ".params")
        if os.path.exists(ppath):
            with open(ppath, encoding="utf-8") as f:
                params = f.read()
        for fmt in FORMATS:
            exp_path = os.path.join(CASES_DIR, "%s.%s" % (name, fmt))
            what = "golden %s.%s" % (name, fmt)
            if not os.path.exists(exp_path):
                fail(what, "no expected file")
                continue
            with open(exp_path, "rb") as f:
                expected = f.read()
            p = query(binary, db, sql, fmt, params)
            if actual_dir:
                with open(os.path.join(actual_dir, "%s.%s" % (name, fmt)), "wb") as f:
                    f.write(p.stdout)
            if p.returncode != 0:
                fail(what, "exit %d: %s" % (p.returncode, p.stderr.decode(errors="replace")[-500:]))
            elif p.stdout != expected:
                fail(what, first_diff(expected, p.stdout))
            else:
                ok(what)


# ---- 3. round trips -------------------------------------------------------------------------
def parse_csv(data, sep):
    """RFC 4180 (LF line ends) -> rows of (text, was_quoted). Strict: raises on bad quoting."""
    rows, row, i, n = [], [], 0, len(data)
    if not data:
        return rows
    while i <= n:
        if i < n and data[i] == '"':
            j, buf = i + 1, []
            while True:
                k = data.index('"', j)
                buf.append(data[j:k])
                if k + 1 < n and data[k + 1] == '"':
                    buf.append('"')
                    j = k + 2
                    continue
                i = k + 1
                break
            row.append(("".join(buf), True))
        else:
            j = i
            while j < n and data[j] not in (sep, "\n"):
                if data[j] == '"':
                    raise ValueError("quote inside an unquoted field at %d" % j)
                j += 1
            row.append((data[i:j], False))
            i = j
        if i >= n:
            rows.append(row)
            break
        if data[i] == sep:
            i += 1
            continue
        if data[i] == "\n":
            rows.append(row)
            row = []
            i += 1
            if i == n:
                break
            continue
        raise ValueError("junk after a quoted field at %d" % i)
    return rows


def raw_json(text):
    """JSON with numbers kept as their text, so that CSV text can be compared exactly."""
    return json.loads(text, parse_float=lambda s: ("num", s), parse_int=lambda s: ("num", s),
                      parse_constant=lambda s: ("num", s))


def json_text(v):
    if v is None:
        return "null"
    if isinstance(v, tuple):
        return v[1]
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ",".join(json_text(x) for x in v) + "]"
    return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + json_text(x)
                          for k, x in v.items()) + "}"


def roundtrip_python(outs):
    doc = raw_json(outs["json"].decode())
    cols, rows = doc["columns"], doc["rows"]
    # NDJSON: the same columns, the same rows, in order, and an end line with the count.
    lines = [raw_json(x) for x in outs["ndjson"].decode().splitlines()]
    nd_rows = [r for ln in lines if ln["type"] == "rows" for r in ln["rows"]]
    if lines[0].get("columns") != cols or nd_rows != rows or lines[-1].get("type") != "end" \
            or lines[-1].get("rows") != ("num", str(len(rows))):
        fail("roundtrip mixed: NDJSON rows equal the JSON document rows")
    else:
        ok("roundtrip mixed: NDJSON rows equal the JSON document rows")
    for fmt, sep in (("csv", ","), ("tsv", "\t")):
        text = outs[fmt].decode()
        if fmt == "csv":
            parsed = parse_csv(text, sep)
        else:
            parsed = [[(f, False) for f in ln.split("\t")] for ln in text.split("\n")[:-1]]
        bad = []
        if [t for t, _ in parsed[0]] != [c["name"] for c in cols] or len(parsed) != len(rows) + 1:
            bad.append("header or row count")
        for r, prow in zip(rows, parsed[1:]):
            for c, v, (t, quoted) in zip(cols, r, prow):
                if fmt == "tsv":
                    t = t.replace("\\\\", "\0esc").replace("\\t", "\t").replace("\\n", "\n") \
                         .replace("\\r", "\r").replace("\0esc", "\\")
                if v is None:
                    is_ok = t == "" and not quoted or (
                        c["type"] in ("FLOAT", "DOUBLE") and t in ("nan", "inf", "-inf"))
                elif isinstance(v, str):
                    is_ok = t == v and (fmt == "tsv" or v != "" or quoted)
                else:
                    is_ok = t == json_text(v)
                if not is_ok:
                    bad.append("%s=%r vs JSON %r" % (c["name"], t, v))
        if bad:
            fail("roundtrip mixed: %s fields equal the JSON values" % fmt.upper(), "; ".join(bad[:8]))
        else:
            ok("roundtrip mixed: %s fields equal the JSON values" % fmt.upper())


class DuckDB:
    """A trusted DuckDB (libduckdb.so via ctypes) for reading files back. Test-only."""

    def __init__(self, path):
        self.lib = lib = ctypes.CDLL(path)
        lib.duckdb_result_error.restype = ctypes.c_char_p
        lib.duckdb_value_varchar.restype = ctypes.c_void_p
        lib.duckdb_row_count.restype = ctypes.c_uint64
        lib.duckdb_column_count.restype = ctypes.c_uint64
        self.db, self.con = ctypes.c_void_p(), ctypes.c_void_p()
        if lib.duckdb_open(None, ctypes.byref(self.db)) != 0 or \
                lib.duckdb_connect(self.db, ctypes.byref(self.con)) != 0:
            raise RuntimeError("cannot open an in-memory DuckDB")

    def query(self, sql):
        res = ctypes.create_string_buffer(256)  # duckdb_result (48 bytes in 1.4), with room
        if self.lib.duckdb_query(self.con, sql.encode(), res) != 0:
            e = self.lib.duckdb_result_error(res)
            self.lib.duckdb_destroy_result(res)
            raise RuntimeError((e or b"failed").decode(errors="replace"))
        out = []
        for r in range(self.lib.duckdb_row_count(res)):
            row = []
            for c in range(self.lib.duckdb_column_count(res)):
                p = self.lib.duckdb_value_varchar(res, ctypes.c_uint64(c), ctypes.c_uint64(r))
                row.append(ctypes.string_at(p).decode() if p else None)
                if p:
                    self.lib.duckdb_free(ctypes.c_void_p(p))
            out.append(row)
        self.lib.duckdb_destroy_result(res)
        return out

    def close(self):
        self.lib.duckdb_disconnect(ctypes.byref(self.con))
        self.lib.duckdb_close(ctypes.byref(self.db))


def sql_str(s):
    return "'" + s.replace("'", "''") + "'"


# ISO 8601 duration text (docs/formats.md) -> DuckDB INTERVAL; DuckDB does not parse ISO 8601.
ISO_INTERVAL = (
    "(regexp_replace(regexp_replace(regexp_replace(split_part(substr({x}, 2), 'T', 1),"
    " '(-?[0-9]+)Y', '\\1 years ', 'g'), '(-?[0-9]+)M', '\\1 months ', 'g'),"
    " '(-?[0-9]+)D', '\\1 days ', 'g') ||"
    " regexp_replace(regexp_replace(regexp_replace(split_part({x}, 'T', 2),"
    " '(-?[0-9]+)H', '\\1 hours ', 'g'), '(-?[0-9]+)M', '\\1 minutes ', 'g'),"
    " '(-?[0-9.]+)S', '\\1 seconds ', 'g'))::INTERVAL")


def from_text(x, typ):
    """SQL turning the text of a value (as docs/formats.md writes it) back into typ."""
    if typ == "BLOB":
        return "from_base64(%s)" % x
    if typ == "INTERVAL":
        return ISO_INTERVAL.format(x=x)
    if typ.startswith("ENUM("):
        return x  # compared as text: the label
    if typ.endswith("]") or typ.startswith(("STRUCT", "MAP")):
        return "CAST(CAST(%s AS JSON) AS %s)" % (x, typ)
    return "CAST(%s AS %s)" % (x, typ)


def compare_table(dd, what, cols, back_sql, nan_is_null):
    """back_sql yields one VARCHAR column per source column, same names, from the file."""
    dd.query("CREATE OR REPLACE TABLE back AS " + back_sql)
    n_src = dd.query("SELECT count(*) FROM src.mixed")[0][0]
    n_back = dd.query("SELECT count(*) FROM back")[0][0]
    bad = [] if n_src == n_back else ["row count %s vs %s" % (n_back, n_src)]
    for name, typ in cols:
        if name == "id":
            continue
        lhs = "s.%s::VARCHAR" % name if typ.startswith("ENUM(") else "s.%s" % name
        cond = "%s IS DISTINCT FROM %s" % (lhs, from_text("b.%s" % name, typ))
        if nan_is_null and typ in ("FLOAT", "DOUBLE"):
            cond = "(%s) AND NOT ((isnan(s.%s) OR isinf(s.%s)) AND b.%s IS NULL)" % (
                cond, name, name, name)
        try:
            rows = dd.query("SELECT s.id FROM src.mixed s JOIN back b ON s.id = CAST(b.id AS "
                            "INTEGER) WHERE %s ORDER BY 1" % cond)
        except RuntimeError as e:
            bad.append("%s: %s" % (name, str(e).splitlines()[0]))
            continue
        if rows:
            bad.append("%s differs in rows %s" % (name, ",".join(r[0] for r in rows)))
    if bad:
        fail(what, "; ".join(bad))
    else:
        ok(what)


def roundtrip_duckdb(libduckdb, db, tmp, outs, cols):
    try:
        dd = DuckDB(libduckdb)
    except OSError as e:
        fail("roundtrip mixed: load %s" % libduckdb, str(e))
        return
    try:
        dd.query("ATTACH %s AS src (READ_ONLY)" % sql_str(db))
        csv_path = os.path.join(tmp, "mixed.csv")
        nd_path = os.path.join(tmp, "mixed.ndjson")
        with open(csv_path, "wb") as f:
            f.write(outs["csv"])
        with open(nd_path, "wb") as f:
            f.write(outs["ndjson"])
        names = ", ".join(sql_str(n) + ": 'VARCHAR'" for n, _ in cols)
        compare_table(dd, "roundtrip mixed: DuckDB read_csv of the CSV equals the source", cols,
                      "SELECT * FROM read_csv(%s, header = true, delim = ',', quote = '\"', "
                      "escape = '\"', nullstr = '', allow_quoted_nulls = false, "
                      "columns = {%s}, auto_detect = false)" % (sql_str(csv_path), names),
                      nan_is_null=False)
        sel = ", ".join("json_extract_string(r, '$[%d]') AS %s" % (i, n) if
                        not (t.endswith("]") or t.startswith(("STRUCT", "MAP"))) else
                        "CAST(json_extract(r, '$[%d]') AS VARCHAR) AS %s" % (i, n)
                        for i, (n, t) in enumerate(cols))
        compare_table(dd, "roundtrip mixed: DuckDB read_ndjson of the NDJSON equals the source",
                      cols, "SELECT %s FROM (SELECT unnest(CAST(rows AS JSON[])) AS r FROM "
                      "read_ndjson(%s, columns = {'type': 'VARCHAR', 'rows': 'JSON'}) "
                      "WHERE type = 'rows')" % (sel, sql_str(nd_path)), nan_is_null=True)
    except RuntimeError as e:
        fail("roundtrip mixed: DuckDB", str(e))
    finally:
        dd.close()


# ---- 4. the command's contract --------------------------------------------------------------
def check_cli(binary, db, tmp):
    sql = "SELECT * FROM mixed ORDER BY id"
    plain = query(binary, db, sql, "ndjson").stdout
    out = os.path.join(tmp, "o.ndjson")
    p = query(binary, db, sql, "ndjson", extra=("-o", out))
    with open(out, "rb") as f:
        same = f.read() == plain
    if p.returncode == 0 and same and p.stdout == b"" and not os.path.exists(out + ".tmp"):
        ok("cli: -o FILE equals stdout, no FILE.tmp left")
    else:
        fail("cli: -o FILE equals stdout, no FILE.tmp left", "rc=%d" % p.returncode)

    bad_out = os.path.join(tmp, "bad.csv")
    p = query(binary, db, "SELECT 1/0 AS x, error('boom') FROM range(10)", "csv",
              extra=("-o", bad_out))
    if p.returncode == 1 and not os.path.exists(bad_out) and not os.path.exists(bad_out + ".tmp"):
        ok("cli: a failing query with -o leaves no file")
    else:
        fail("cli: a failing query with -o leaves no file", "rc=%d files=%s" % (
            p.returncode, os.listdir(tmp)))

    p = query(binary, db, "SELECT * FROM read_csv('/etc/passwd')", "csv")
    err = p.stderr.decode(errors="replace")
    if p.returncode == 1 and "NOT_READ_ONLY" in err and p.stdout == b"":
        ok("cli: a refused query exits 1 with the code name")
    else:
        fail("cli: a refused query exits 1 with the code name", "rc=%d %s" % (p.returncode, err))

    # Binary formats: the bytes are checked by independent readers in
    # tests/integration/test_cli_query.py; here only their framing.
    for fmt, head, tail in (("arrow", b"\xff\xff\xff\xff", b"\xff\xff\xff\xff\x00\x00\x00\x00"),
                            ("parquet", b"PAR1", b"PAR1")):
        p = query(binary, db, "SELECT 1", fmt)
        if p.returncode == 0 and p.stdout.startswith(head) and p.stdout.endswith(tail):
            ok("cli: --format %s writes a framed stream" % fmt)
        else:
            fail("cli: --format %s writes a framed stream" % fmt, "rc=%d" % p.returncode)
    p = query(binary, db, "SELECT 1", "xml")
    if p.returncode == 2 and p.stdout == b"":
        ok("cli: --format xml exits 2")
    else:
        fail("cli: --format xml exits 2", "rc=%d" % p.returncode)

    p = query(binary, db, sql, "ndjson", extra=("--compress", "gzip"))
    if p.returncode == 0 and gzip.decompress(p.stdout) == plain:
        ok("cli: --compress gzip decompresses to the plain output")
    else:
        fail("cli: --compress gzip decompresses to the plain output", "rc=%d" % p.returncode)

    p = run([binary, "query", db])
    if p.returncode == 2:
        ok("cli: missing SQL exits 2")
    else:
        fail("cli: missing SQL exits 2", "rc=%d" % p.returncode)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default=os.environ.get("DUCKGATE_BIN"))
    ap.add_argument("--libduckdb", default=None)
    ap.add_argument("--actual", default=None, help="write the actual outputs to this directory")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("cases", nargs="*")
    a = ap.parse_args()
    if not a.bin or not os.access(a.bin, os.X_OK):
        sys.exit("run_golden: no duckgate binary (--bin or DUCKGATE_BIN)")
    names = a.cases or sorted(f[:-4] for f in os.listdir(CASES_DIR) if f.endswith(".sql"))
    if a.actual:
        os.makedirs(a.actual, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="dg-golden.")
    try:
        db = os.path.join(tmp, "golden.duckdb")
        with open(os.path.join(HERE, "fixture.sql"), "rb") as f:
            p = run([a.bin, "exec", db, "-"], stdin=f.read())
        if p.returncode != 0:
            sys.exit("run_golden: fixture failed: %s" % p.stderr.decode(errors="replace"))
        run_cases(a.bin, db, names, a.actual)
        if not a.cases:
            sql = "SELECT * FROM mixed ORDER BY id"
            outs = {fmt: query(a.bin, db, sql, fmt).stdout for fmt in FORMATS}
            roundtrip_python(outs)
            if a.libduckdb:
                cols = [(c["name"], c["type"]) for c in json.loads(outs["json"])["columns"]]
                roundtrip_duckdb(a.libduckdb, db, tmp, outs, cols)
            check_cli(a.bin, db, tmp)
    finally:
        if a.keep:
            print("run_golden: kept %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print("\nrun_golden: %d failure(s)%s" % (len(failures), "" if not failures else ":"))
    for f in failures:
        print("  - " + f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
