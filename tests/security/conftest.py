"""Fixtures of the security suite: one server over a data dir whose bytes must never change,
sentinel secrets outside it, and an output dir that COPY/EXPORT attacks must never write to.
Helpers come from tests/integration/dgserver.py (one implementation for both suites)."""

import os
import shutil
import sys
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
sys.path.insert(0, HERE)

import dgserver  # noqa: E402

from seclib import (OUTSIDE_DB_SENTINEL, SENTINEL,  # noqa: E402
                    SERVER_FLAGS, tree_digest)


class Env:
    pass


_failed = []


@pytest.fixture(scope="session")
def sec():
    """The environment and the running server. A setup failure is reported once and then
    repeated quickly (pytest would otherwise rebuild a failing session fixture per test)."""
    if _failed:
        pytest.fail("security environment failed to start: %s" % _failed[0], pytrace=False)
    gen = _make_env()
    try:
        e = next(gen)
    except Exception as ex:  # noqa: BLE001
        gen.close()
        _failed.append("%s: %s" % (type(ex).__name__, str(ex)[:2000]))
        raise
    yield e
    for _ in gen:
        pass


def _make_env():
    binary = dgserver.find_binary()
    if binary is None:
        if os.environ.get("DUCKGATE_BIN"):
            pytest.exit("DUCKGATE_BIN=%s is not an executable file" % os.environ["DUCKGATE_BIN"],
                        returncode=1)
        pytest.skip("no duckgate binary (set DUCKGATE_BIN or build build*/duckgate)")
    e = Env()
    e.root = tempfile.mkdtemp(prefix="dg-sec-")
    e.server = None
    try:
        yield from _setup(binary, e)
    finally:
        if e.server is not None:
            e.server.close()
        shutil.rmtree(e.root, ignore_errors=True)
    if e.server is not None and e.server.findings:
        pytest.fail("sanitizer reports in the server log:\n" + "\n".join(e.server.findings[:50]),
                    pytrace=False)


def _setup(binary, e):
    e.secret_dir = os.path.join(e.root, "secrets")
    e.out_dir = os.path.join(e.root, "out")
    os.makedirs(e.secret_dir)
    os.makedirs(e.out_dir)
    e.secret_csv = os.path.join(e.secret_dir, "secret.csv")
    e.secret_txt = os.path.join(e.secret_dir, "secret.txt")
    e.secret_json = os.path.join(e.secret_dir, "secret.json")
    e.secret_parquet = os.path.join(e.secret_dir, "secret.parquet")
    e.other_db = os.path.join(e.secret_dir, "outside.duckdb")
    with open(e.secret_csv, "w") as f:
        f.write("k,v\nsecret,%s\n" % SENTINEL)
    with open(e.secret_txt, "w") as f:
        f.write("the secret is %s\n" % SENTINEL)
    with open(e.secret_json, "w") as f:
        f.write('{"k": "secret", "v": "%s"}\n' % SENTINEL)
    # `duckgate exec` cannot write files (external access stays off even for trusted SQL), so
    # the Parquet secret is a checked-in 401-byte file: columns k, v = ('secret', SENTINEL).
    shutil.copy(os.path.join(HERE, "secret.parquet"), e.secret_parquet)
    with open(e.secret_parquet, "rb") as f:
        assert SENTINEL.encode() in f.read()
    dgserver.exec_sql(binary, e.other_db, "CREATE TABLE x (s VARCHAR); "
                      "INSERT INTO x VALUES ('%s'); CHECKPOINT;" % OUTSIDE_DB_SENTINEL)
    if os.path.exists(e.other_db + ".wal"):
        os.remove(e.other_db + ".wal")

    fx = dgserver.Fixtures(binary, os.path.join(e.root, "fixtures"))
    fx.build("main", dgserver.MAIN_DB_SQL)
    fx.build("other", dgserver.SECOND_DB_SQL)
    e.server = dgserver.Server(binary, fx, dbs=("main", "other"), engines=2, slots=2,
                               extra=SERVER_FLAGS, tmp_root=e.root, cwd=e.secret_dir)
    e.data_before = tree_digest(e.server.data_dir)
    e.secrets_before = tree_digest(e.secret_dir)
    e.server.start()
    e.env = {
        "SECRET_DIR": e.secret_dir, "SECRET_CSV": e.secret_csv, "SECRET_TXT": e.secret_txt,
        "SECRET_JSON": e.secret_json, "SECRET_PARQUET": e.secret_parquet,
        "OTHER_DB": e.other_db, "DATA_DIR": e.server.data_dir,
        "DB_FILE": os.path.join(e.server.data_dir, "main.duckdb"),
        "WAL_FILE": os.path.join(e.server.data_dir, "main.duckdb.wal"),
        "STATE_DIR": e.server.state_dir, "OUT_DIR": e.out_dir,
        "SECRET_REL": os.path.relpath(e.secret_csv, e.root),
    }
    e.server_paths = (e.server.data_dir, e.server.state_dir, e.server.dir)
    yield e
