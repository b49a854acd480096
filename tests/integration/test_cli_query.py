"""`duckgate query` writes Arrow and Parquet locally through the same paths as the server; the
outputs are read back by apache-arrow and by DuckDB itself. Refusals leave no file behind."""

import json
import os
import subprocess

from duckdb_reader import DuckDB
from test_formats_binary import MIXED, read_arrow


def run_query(binary, db, sql, *args):
    return subprocess.run([binary, "query", db, sql, *args], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=120)


def test_cli_arrow_and_parquet(binary, fixtures, tmp_path):
    db = str(tmp_path / "main.duckdb")
    fixtures.populate(str(tmp_path), ["main"])
    p = run_query(binary, db, MIXED, "--format", "arrow")
    assert p.returncode == 0, p.stderr
    got = read_arrow(p.stdout)
    assert got["num_rows"] == 20000 and got["rows"][7]["name"] == "name 7"

    out = str(tmp_path / "out.parquet")
    p = run_query(binary, db, "SELECT * FROM t WHERE id > $1", "--params", "[50]",
                  "--format", "parquet", "-o", out)
    assert p.returncode == 0, p.stderr
    duck = DuckDB()
    try:
        duck.query("ATTACH '%s' AS src (READ_ONLY)" % db)
        diff = duck.query("SELECT count(*) FROM ((FROM read_parquet('%s') EXCEPT ALL "
                          "SELECT * FROM src.t WHERE id > 50) UNION ALL (SELECT * FROM src.t "
                          "WHERE id > 50 EXCEPT ALL FROM read_parquet('%s')))" % (out, out))
        assert diff == [["0"]]
    finally:
        duck.close()
    assert not os.path.exists(out + ".tmp")


def test_cli_refusal_leaves_nothing(binary, fixtures, tmp_path):
    db = str(tmp_path / "main.duckdb")
    fixtures.populate(str(tmp_path), ["main"])
    out = str(tmp_path / "x.parquet")
    p = run_query(binary, db, "SELECT * FROM read_text('/etc/passwd')", "--format", "parquet",
                  "-o", out)
    assert p.returncode == 1 and b"NOT_READ_ONLY" in p.stderr
    assert not os.path.exists(out) and not os.path.exists(out + ".tmp")
    p = run_query(binary, db, "SELECT 1", "--format", "xml")
    assert p.returncode == 2
