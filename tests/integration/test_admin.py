"""The admin path (docs/admin.md): POST /api/admin/query/{db} and read-write databases.

Admin SQL is trusted (no parse check) but runs inside the engine's locked settings, has no
default deadline, is refused with 409 READ_ONLY_DATABASE on a read-only database, and runs on
the owning engine (engine 0) of a database listed in read_write_databases, where its writes are
visible to the next read."""

import gzip
import json
import os
import re
import subprocess
import threading
import time

import pytest

from dgserver import ENDLESS_SQL, add_key, assert_error, assert_ok, pid_alive

RW_DB_SQL = """
CREATE TABLE items (id INTEGER, name VARCHAR);
INSERT INTO items VALUES (1, 'one'), (2, 'two');
CHECKPOINT;
"""


def hdr(key):
    return {"Authorization": "Bearer " + key} if key else {}


def start_admin_server(make_server, binary, fixtures, extra=(), engines=2, slots=2):
    """A server with auth on, keys for every role, databases main, other and rwdb (read-write);
    s.keys maps role -> key."""
    fixtures.build("rwdb", RW_DB_SQL)
    s = make_server(dbs=("main", "other", "rwdb"), engines=engines, slots=slots, start=False,
                    extra=["--auth", "on", "--keys-file", "KEYS",
                           "--read-write-databases", "rwdb"] + list(extra))
    path = s.use_keys_file()
    s.keys = {
        "admin": add_key(binary, path, "admin"),
        "admin_main": add_key(binary, path, "admin", "--db", "main", "--name", "adm-main"),
        "analyst": add_key(binary, path, "analyst"),
        "viewer": add_key(binary, path, "viewer"),
        "anonymous": None,
    }
    return s.start()


def admin(s, db, sql, key="admin", fmt=None, timeout_ms=None, params=None, timeout=60):
    body = {"sql": sql}
    if timeout_ms is not None:
        body["timeout_ms"] = timeout_ms
    if params is not None:
        body["params"] = params
    path = "/api/admin/query/" + db + ("?format=" + fmt if fmt else "")
    return s.post(path, data=json.dumps(body), timeout=timeout,
                  headers=dict({"Content-Type": "application/json"}, **hdr(s.keys[key])))


def read(s, db, sql, key="analyst"):
    return s.query(db, sql, headers=hdr(s.keys[key]))


@pytest.fixture(scope="module")
def srv(make_server, binary, fixtures):
    s = start_admin_server(make_server, binary, fixtures)
    yield s
    s.close()


def gauge(s, name):
    m = re.search(r"^%s (\d+)" % name, s.get("/metrics").text, re.M)
    return int(m.group(1))


def wait_gauge(s, name, want, timeout=30.0):
    end = time.monotonic() + timeout
    while gauge(s, name) != want:
        assert time.monotonic() < end, "%s never reached %d" % (name, want)
        time.sleep(0.02)


# ---- admin queries ------------------------------------------------------------------------------

def test_admin_select_every_format(srv):
    body = assert_ok(admin(srv, "main", "SELECT id, name FROM t WHERE id <= 3 ORDER BY id"))
    assert body["rows"] == [[1, "name_1"], [2, "name_2"], [3, "name_3"]]

    r = admin(srv, "main", "SELECT id FROM t WHERE id <= 2 ORDER BY id", fmt="ndjson")
    assert r.status_code == 200 and "ndjson" in r.headers["Content-Type"]
    lines = [json.loads(ln) for ln in r.text.splitlines()]
    assert lines[0]["type"] == "meta" and lines[-1]["type"] == "end" and lines[-1]["rows"] == 2
    assert [row for ln in lines if ln["type"] == "rows" for row in ln["rows"]] == [[1], [2]]

    r = admin(srv, "main", "SELECT id, grp FROM t WHERE id <= 2 ORDER BY id", fmt="csv")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/csv")
    assert r.text.splitlines() == ["id,grp", "1,b", "2,c"]

    r = admin(srv, "main", "SELECT id FROM t", fmt="arrow")
    assert r.status_code == 200 and "arrow" in r.headers["Content-Type"]
    assert r.content[:4] == b"\xff\xff\xff\xff"  # IPC stream: continuation marker first

    r = admin(srv, "main", "SELECT id FROM t", fmt="parquet")
    assert r.status_code == 200 and "parquet" in r.headers["Content-Type"]
    assert r.content[:4] == b"PAR1" and r.content[-4:] == b"PAR1"


def test_admin_sql_outside_the_read_only_sandbox(srv):
    # Not a SELECT, and several statements: both refused on /api/query, fine for an admin.
    assert_error(read(srv, "main", "SELECT 1; SELECT 2"), 400, "MULTIPLE_STATEMENTS")
    body = assert_ok(admin(srv, "main", "SELECT 1 AS a; SELECT 2 AS b"))
    assert body["columns"][0]["name"] == "b" and body["rows"] == [[2]]
    body = assert_ok(admin(srv, "main", "SELECT $1::INTEGER + 1 AS x", params=[41]))
    assert body["rows"] == [[42]]
    assert_error(admin(srv, "main", "SELECT 1; SELECT $1", params=[1]), 400, "BAD_PARAMS")
    body = assert_ok(admin(srv, "main", "SELECT count(*) AS n FROM duckdb_settings()"))
    assert body["rows"][0][0] > 10
    # Still inside the locked settings: no file access, no setting changes.
    err = assert_error(admin(srv, "main", "SELECT * FROM read_csv('/etc/passwd')"), (400, 403))
    assert "passwd" not in err["message"] or "disabled" in err["message"].lower()
    err = assert_error(admin(srv, "main", "SET enable_external_access = true"), 400)
    assert "locked" in err["message"]


def test_admin_has_no_default_deadline(make_server, binary, fixtures):
    # A short deadline ceiling for /api/query, so "no default deadline" is observable.
    srv = start_admin_server(make_server, binary, fixtures, extra=["--timeout-ms", "400"])
    # Calibrate on the engine's elapsed_ms (not the wall time of a loaded machine), then take a
    # query 8 times larger: it runs well past the 400 ms ceiling of /api/query even if the
    # calibration run was slowed down by other load.
    n = 1_000_000
    for _ in range(10):
        sql = "SELECT count(*) AS c FROM range(%d) r(i) WHERE hash(i) %% 7 <> 99" % n
        if assert_ok(admin(srv, "main", sql, timeout=180))["elapsed_ms"] > 300:
            break
        n *= 2
    sql = "SELECT count(*) AS c FROM range(%d) r(i) WHERE hash(i) %% 7 <> 99" % (n * 8)
    body = assert_ok(admin(srv, "main", sql, timeout=300))
    assert body["rows"] == [[n * 8]]
    assert body["elapsed_ms"] > 400, "the admin query ran %.0f ms: not past the ceiling" % (
        body["elapsed_ms"])
    assert_error(read(srv, "main", sql), 504, "TIMEOUT")
    # An explicit timeout_ms is honoured.
    assert_error(admin(srv, "main", sql, timeout_ms=150), 504, "TIMEOUT")
    srv.close()


def test_admin_role_caps_apply_to_admin_sql(make_server, binary, fixtures):
    # The admin role's own row and byte caps bind admin SQL like any query route, and its
    # admin_timeout_ms is a ceiling there (an admin query without timeout_ms stops at it too).
    srv = start_admin_server(make_server, binary, fixtures, extra=[
        "--admin-max-rows", "3", "--admin-max-result-bytes", "4KiB",
        "--admin-timeout-ms", "1500"])
    body = assert_ok(admin(srv, "main", "SELECT range AS i FROM range(100)"))
    assert body["row_count"] == 3 and body["truncated"] is True, body
    assert_error(admin(srv, "main", "SELECT repeat('x', 2000) AS s FROM range(3)"), 413,
                 "RESULT_TOO_LARGE")
    assert_ok(admin(srv, "main", "SELECT repeat('x', 100) AS s FROM range(3)"))
    t0 = time.monotonic()
    assert_error(admin(srv, "main", ENDLESS_SQL, timeout=120), 504, "TIMEOUT")
    assert_error(admin(srv, "main", ENDLESS_SQL, timeout_ms=600000, timeout=120), 504,
                 "TIMEOUT")
    assert time.monotonic() - t0 < 60
    # A lower timeout_ms than the ceiling still wins.
    t0 = time.monotonic()
    assert_error(admin(srv, "main", ENDLESS_SQL, timeout_ms=100, timeout=120), 504, "TIMEOUT")
    srv.close()


@pytest.mark.parametrize("sql", [
    "INSERT INTO t (id) VALUES (100000)",
    "UPDATE t SET name = 'x' WHERE id = 1",
    "DELETE FROM t WHERE id = 1",
    "CREATE TABLE newt (x INTEGER)",
    "DROP TABLE t",
    "ALTER TABLE t ADD COLUMN z INTEGER",
    "CREATE VIEW vv AS SELECT 1",
])
def test_write_on_read_only_database_points_to_build_and_swap(srv, sql):
    err = assert_error(admin(srv, "main", sql), 409, "READ_ONLY_DATABASE")
    msg = err["message"]
    assert "'main'" in msg and "read-only" in msg, msg
    assert "duckgate build" in msg and "docs/pipeline.md" in msg, msg
    body = assert_ok(read(srv, "main", "SELECT count(*), min(name) FROM t"))
    assert body["rows"] == [[100, "name_1"]]


def test_writes_on_read_write_database_are_visible(srv):
    r = srv.get("/api/databases", headers=hdr(srv.keys["analyst"]))
    assert r.status_code == 200, r.text
    listed = {d["name"]: d for d in r.json()["databases"]}
    assert listed["rwdb"]["read_only"] is False and listed["main"]["read_only"] is True
    v0 = listed["rwdb"]["version"]
    assert_ok(admin(srv, "rwdb", "INSERT INTO items VALUES (3, 'three')"))
    r = srv.get("/api/databases", headers=hdr(srv.keys["analyst"]))
    assert {d["name"]: d for d in r.json()["databases"]}["rwdb"]["version"] > v0
    body = assert_ok(read(srv, "rwdb", "SELECT id, name FROM items ORDER BY id"))
    assert body["rows"] == [[1, "one"], [2, "two"], [3, "three"]]

    assert_ok(admin(srv, "rwdb", "UPDATE items SET name = 'TWO' WHERE id = 2; "
                                  "DELETE FROM items WHERE id = 1"))
    body = assert_ok(read(srv, "rwdb", "SELECT id, name FROM items ORDER BY id"))
    assert body["rows"] == [[2, "TWO"], [3, "three"]]

    body = assert_ok(admin(srv, "rwdb", "CREATE TABLE made AS SELECT range AS x FROM range(5); "
                                        "SELECT CAST(sum(x) AS INTEGER) AS s FROM made"))
    assert body["rows"] == [[10]]
    assert assert_ok(read(srv, "rwdb", "SELECT count(*) FROM made"))["rows"] == [[5]]
    # The catalog (served by the owning engine too) sees the new table.
    r = srv.get("/api/databases/rwdb", headers=hdr(srv.keys["analyst"]))
    assert r.status_code == 200, r.text
    assert "made" in [t["name"] for t in r.json()["tables"]]
    # The read path stays read-only on a read-write database.
    assert_error(read(srv, "rwdb", "INSERT INTO items VALUES (9, 'nine')"), 403,
                 "NOT_READ_ONLY")
    # A failed write reports the SQL error and leaves the data as it was.
    assert_error(admin(srv, "rwdb", "INSERT INTO items VALUES ('not a number', 1)"), 400,
                 "SQL_ERROR")
    assert assert_ok(read(srv, "rwdb", "SELECT count(*) FROM items"))["rows"] == [[2]]


@pytest.mark.parametrize("caller,status", [
    ("analyst", 403), ("viewer", 403), ("anonymous", 401),
])
def test_non_admin_refused(srv, caller, status):
    r = admin(srv, "main", "SELECT 1", key=caller)
    assert_error(r, status, "FORBIDDEN" if status == 403 else "UNAUTHORIZED")


def test_admin_scoped_to_a_database(srv):
    assert_ok(admin(srv, "main", "SELECT 1", key="admin_main"))
    assert_error(admin(srv, "rwdb", "SELECT 1", key="admin_main"), 403, "FORBIDDEN")


def test_admin_bad_requests(srv):
    h = dict({"Content-Type": "application/json"}, **hdr(srv.keys["admin"]))
    assert_error(srv.post("/api/admin/query/nope", data='{"sql":"SELECT 1"}', headers=h), 404,
                 "UNKNOWN_DB")
    assert_error(srv.post("/api/admin/query/main", data='{"sql":', headers=h), 400, "BAD_JSON")
    assert_error(srv.post("/api/admin/query/main", data='{"q":"SELECT 1"}', headers=h), 400,
                 "BAD_REQUEST")
    assert_error(srv.post("/api/admin/query/main", data='{"sql":"  "}', headers=h), 400,
                 "MISSING_SQL")
    assert_error(srv.get("/api/admin/query/main", headers=h), 405, "METHOD_NOT_ALLOWED")
    assert_error(admin(srv, "main", "SELEC 1"), 400, "SQL_ERROR")


# ---- read-write routing -----------------------------------------------------------------------

def open_files(pid):
    out = set()
    try:
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                out.add(os.readlink("/proc/%d/fd/%s" % (pid, fd)))
            except OSError:
                pass
    except OSError:
        pass
    return out


def test_only_one_engine_opens_a_read_write_database(srv):
    pids = sorted(p for p in srv.engine_pids() if pid_alive(p))
    assert len(pids) == 2
    rw = os.path.realpath(os.path.join(srv.data_dir, "rwdb.duckdb"))
    main = os.path.realpath(os.path.join(srv.data_dir, "main.duckdb"))
    holders = [p for p in pids if rw in open_files(p)]
    assert len(holders) == 1, "rwdb.duckdb is open in %d engines" % len(holders)
    assert all(main in open_files(p) for p in pids)
    # Every request for it finds its engine (another engine would answer UNKNOWN_DB).
    results = []

    def one(i):
        results.append(read(srv, "rwdb", "SELECT %d AS i, count(*) FROM items" % i).status_code)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200] * 16


def test_waiter_for_one_engine_does_not_block_others(make_server, binary, fixtures):
    """engines=2, slots=1: engine 0's only slot is busy with a long rwdb query and a second rwdb
    query waits for it; a query on main behind that waiter still gets engine 1 at once."""
    s = start_admin_server(make_server, binary, fixtures, engines=2, slots=1)
    try:
        out = {}

        def run(name, fn):
            t0 = time.monotonic()
            r = fn()
            out[name] = (r.status_code, time.monotonic() - t0, r.text[:200])

        busy = threading.Thread(target=run, args=("busy", lambda: admin(
            s, "rwdb", ENDLESS_SQL, timeout_ms=6000)))
        busy.start()
        wait_gauge(s, "duckgate_slots_busy", 1)
        waiter = threading.Thread(target=run, args=("waiter", lambda: read(
            s, "rwdb", "SELECT count(*) FROM items")))
        waiter.start()
        wait_gauge(s, "duckgate_queue_depth", 1)
        t0 = time.monotonic()
        r = read(s, "main", "SELECT count(*) FROM t")
        assert_ok(r)
        # Answered while engine 0 is still busy and its waiter still queued (the busy query
        # runs 6 s): main did not wait behind the waiter.
        assert time.monotonic() - t0 < 4.0, "main waited behind the rwdb waiter"
        assert "waiter" not in out and "busy" not in out, out
        busy.join(30)
        waiter.join(30)
        assert out["busy"][0] == 504, out
        assert out["waiter"][0] == 200, out
    finally:
        s.close()


def test_unknown_read_write_database_is_a_start_error(make_server, binary, fixtures):
    s = make_server(dbs=("main",), start=False, extra=["--read-write-databases", "main,nope"])
    p = subprocess.run(s.args, capture_output=True, text=True, timeout=60, env=s.env)
    assert p.returncode != 0
    assert "read_write_databases" in p.stderr and "'nope'" in p.stderr, p.stderr[-1000:]


def test_read_write_database_survives_restart_of_the_server(make_server, binary, fixtures):
    """Committed admin writes are in the file (WAL included) for the next server."""
    s = start_admin_server(make_server, binary, fixtures)
    try:
        assert_ok(admin(s, "rwdb", "CREATE TABLE kept AS SELECT 42 AS v"))
        assert s.terminate() == 0
        s.start()
        assert assert_ok(read(s, "rwdb", "SELECT v FROM kept"))["rows"] == [[42]]
    finally:
        s.close()


# ---- imports ----------------------------------------------------------------------------------

def imp(s, db, body, key="admin"):
    return s.post("/api/admin/import/" + db, data=json.dumps(body), headers=hdr(s.keys[key]))


@pytest.fixture(scope="module")
def import_srv(make_server, binary, fixtures, tmp_path_factory):
    d = tmp_path_factory.mktemp("imports")
    (d / "sub").mkdir()
    (d / "people.csv").write_text("id,name\n1,ann\n2,bob\n")
    (d / "more.csv").write_text("id,name\n3,cy\n")
    (d / "sub" / "events.ndjson").write_text('{"k": 1, "tag": "a"}\n{"k": 2, "tag": "b"}\n')
    (d / ".hidden.csv").write_text("x\n1\n")
    # Sniffed as integers from the first rows; a bad value far beyond the sample fails the read
    # while rows are already being appended.
    (d / "late_bad.csv").write_text("i\n" + "".join("%d\n" % i for i in range(100000)) + "x\n")
    outside = tmp_path_factory.mktemp("outside") / "secret.csv"
    outside.write_text("secret\nOUTSIDE-7f3a\n")
    os.symlink(str(outside), str(d / "link.csv"))
    os.symlink(str(outside.parent), str(d / "linkdir"))
    os.mkfifo(str(d / "pipe.csv"))
    with gzip.open(str(d / "packed.csv.gz"), "wt") as f:
        f.write("id,name\n7,gus\n8,hal\n")
    pq = d / "nums.parquet"
    p = subprocess.run([binary, "query", os.path.join(fixtures.template, "main.duckdb"),
                        "SELECT id, score FROM t WHERE id <= 4 ORDER BY id", "--format",
                        "parquet", "-o", str(pq)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    s = start_admin_server(make_server, binary, fixtures, extra=["--import-dirs", str(d)])
    s.import_dir = d
    yield s
    s.close()


def test_import_modes_and_formats(import_srv):
    s = import_srv
    r = imp(s, "rwdb", {"table": "people", "file": "people.csv"})
    assert r.status_code == 200, r.text
    assert r.json() == {"table": "people", "file": "people.csv", "mode": "create", "rows": 2}
    assert_error(imp(s, "rwdb", {"table": "people", "file": "people.csv"}), 400, "SQL_ERROR")
    r = imp(s, "rwdb", {"table": "people", "file": "more.csv", "mode": "append"})
    assert r.status_code == 200 and r.json()["rows"] == 1, r.text
    body = assert_ok(read(s, "rwdb", "SELECT id, name FROM people ORDER BY id"))
    assert body["rows"] == [[1, "ann"], [2, "bob"], [3, "cy"]]
    r = imp(s, "rwdb", {"table": "people", "file": "more.csv", "mode": "replace"})
    assert r.status_code == 200 and r.json()["rows"] == 1, r.text
    assert assert_ok(read(s, "rwdb", "SELECT count(*) FROM people"))["rows"] == [[1]]

    r = imp(s, "rwdb", {"table": "events", "file": "sub/events.ndjson"})
    assert r.status_code == 200, r.text
    body = assert_ok(read(s, "rwdb", "SELECT k, tag FROM events ORDER BY k"))
    assert body["rows"] == [[1, "a"], [2, "b"]]
    r = imp(s, "rwdb", {"table": "nums", "file": "nums.parquet"})
    assert r.status_code == 200 and r.json()["rows"] == 4, r.text
    body = assert_ok(read(s, "rwdb", "SELECT id, score FROM nums ORDER BY id"))
    assert body["rows"] == [[1, 1.5], [2, 3.0], [3, 4.5], [4, 6.0]]
    # A read error deep into the file fails the import and leaves nothing behind.
    err = assert_error(imp(s, "rwdb", {"table": "late", "file": "late_bad.csv"}), 400)
    assert "late" not in [t["name"] for t in s.get(
        "/api/databases/rwdb", headers=hdr(s.keys["analyst"])).json()["tables"]], err
    # A failed append (types do not fit) leaves the table as it was.
    assert_error(imp(s, "rwdb", {"table": "nums", "file": "sub/events.ndjson",
                                 "mode": "append"}), 400)
    assert assert_ok(read(s, "rwdb", "SELECT count(*) FROM nums"))["rows"] == [[4]]


@pytest.mark.parametrize("file,status,code", [
    ("link.csv", 403, "FORBIDDEN"),          # symlink to a file outside
    ("linkdir/secret.csv", 403, "FORBIDDEN"),  # through a symlinked directory
    ("pipe.csv", 403, "FORBIDDEN"),          # not a regular file
    ("../outside/secret.csv", 400, "BAD_REQUEST"),
    ("sub/../people.csv", 400, "BAD_REQUEST"),
    ("/etc/passwd.csv", 400, "BAD_REQUEST"),
    (".hidden.csv", 400, "BAD_REQUEST"),
    ("sub//events.ndjson", 400, "BAD_REQUEST"),
    ("people.txt", 400, "BAD_REQUEST"),
    ("people.csv'); SELECT 1; --.csv", 400, "BAD_REQUEST"),
    ("missing.csv", 404, "NOT_FOUND"),
])
def test_import_refuses_path_tricks(import_srv, file, status, code):
    err = assert_error(imp(import_srv, "rwdb", {"table": "x", "file": file}), status, code)
    assert "OUTSIDE-7f3a" not in err["message"]


def test_import_checks(import_srv):
    s = import_srv
    err = assert_error(imp(s, "main", {"table": "x", "file": "people.csv"}), 409,
                       "READ_ONLY_DATABASE")
    assert "duckgate build" in err["message"]
    assert_error(imp(s, "rwdb", {"table": "x y", "file": "people.csv"}), 400, "BAD_REQUEST")
    assert_error(imp(s, "rwdb", {"table": "x", "file": "people.csv", "mode": "merge"}), 400,
                 "BAD_REQUEST")
    assert_error(imp(s, "rwdb", {"table": "x"}), 400, "BAD_REQUEST")
    assert_error(imp(s, "rwdb", {"table": "x", "file": "people.csv", "extra": 1}), 400,
                 "BAD_REQUEST")
    assert_error(imp(s, "nope", {"table": "x", "file": "people.csv"}), 404, "UNKNOWN_DB")
    assert_error(imp(s, "rwdb", {"table": "x", "file": "people.csv"}, key="analyst"), 403,
                 "FORBIDDEN")
    # Serving SQL still cannot read the import directory (only the loader can).
    path = os.path.join(str(s.import_dir), "people.csv")
    assert_error(read(s, "rwdb", "SELECT * FROM read_csv_auto('%s')" % path), (400, 403))


def test_import_without_import_dirs(srv):
    assert_error(imp(srv, "rwdb", {"table": "x", "file": "people.csv"}), 404, "NOT_FOUND")


# ---- admin SQL reading import files ----------------------------------------------------------

def tables_of(s, db):
    return [t["name"] for t in s.get("/api/databases/" + db,
                                     headers=hdr(s.keys["analyst"])).json()["tables"]]


def test_admin_sql_reads_import_files(import_srv):
    s = import_srv
    assert_ok(admin(s, "rwdb", "DROP TABLE IF EXISTS sq_people; DROP TABLE IF EXISTS sq_nums"))
    # CREATE TABLE AS from a CSV (relative name, options kept).
    body = assert_ok(admin(s, "rwdb", "CREATE TABLE sq_people AS SELECT * FROM "
                                      "read_csv('people.csv', header=true)"))
    assert body["rows"] == [[2]], body
    body = assert_ok(read(s, "rwdb", "SELECT id, name FROM sq_people ORDER BY id"))
    assert body["rows"] == [[1, "ann"], [2, "bob"]]
    # INSERT ... SELECT joining a file with a table, a gzipped CSV, an absolute path inside an
    # import directory, and two files in one script.
    assert_ok(admin(s, "rwdb", "INSERT INTO sq_people SELECT id, name FROM "
                               "read_csv_auto('packed.csv.gz')"))
    absolute = os.path.join(str(s.import_dir), "more.csv")
    assert_ok(admin(s, "rwdb", "INSERT INTO sq_people SELECT m.id, m.name FROM "
                               "read_csv('%s') AS m LEFT JOIN sq_people p USING (id) "
                               "WHERE p.id IS NULL" % absolute))
    body = assert_ok(read(s, "rwdb", "SELECT id, name FROM sq_people ORDER BY id"))
    assert body["rows"] == [[1, "ann"], [2, "bob"], [3, "cy"], [7, "gus"], [8, "hal"]]
    body = assert_ok(admin(s, "rwdb", "CREATE TABLE sq_nums AS SELECT * FROM "
                                      "read_parquet('nums.parquet'); "
                                      "SELECT n.id, e.tag FROM sq_nums n JOIN "
                                      "read_json_auto('sub/events.ndjson') e ON e.k = n.id "
                                      "ORDER BY n.id"))
    assert body["rows"] == [[1, "a"], [2, "b"]], body
    assert assert_ok(read(s, "rwdb", "SELECT sum(score) FROM sq_nums"))["rows"] == [[15.0]]
    # Strings and comments that merely mention a reader are left alone.
    body = assert_ok(admin(s, "rwdb", "SELECT 'read_csv(''x'')' AS a -- read_csv('y')\n"))
    assert body["rows"] == [["read_csv('x')"]]
    # The loaded tables are gone afterwards, and no file was written into the database.
    body = assert_ok(admin(s, "rwdb", "SELECT count(*) FROM duckdb_databases() "
                                      "WHERE database_name LIKE '_dg_files%'"))
    assert body["rows"] == [[0]]
    assert "sq_people" in tables_of(s, "rwdb")


@pytest.mark.parametrize("sql,status", [
    ("SELECT * FROM read_csv('link.csv')", 403),                  # symlink to a file outside
    ("SELECT * FROM read_csv('linkdir/secret.csv')", 403),        # through a symlinked dir
    ("SELECT * FROM read_csv('pipe.csv')", 403),                  # not a regular file
    ("SELECT * FROM read_csv('../outside/secret.csv')", 403),
    ("SELECT * FROM read_csv('sub/../people.csv')", 403),
    ("SELECT * FROM read_csv('.hidden.csv')", 403),
    ("SELECT * FROM read_csv('/etc/passwd')", 403),               # absolute, outside
    ("SELECT * FROM read_csv('IMPORT_DIR/../outside/secret.csv')", 403),
    ("SELECT * FROM read_csv('*.csv')", 403),                     # glob
    ("SELECT * FROM read_csv('sub/*.ndjson')", 403),
    ("SELECT * FROM read_csv('https://example.com/x.csv')", 403),  # URL
    ("SELECT * FROM read_parquet('s3://bucket/x.parquet')", 403),
    ("SELECT * FROM read_csv('people' || '.csv')", 403),          # not a constant
    ("SELECT * FROM read_csv(['people.csv', 'more.csv'])", 403),  # a list
    ("SELECT * FROM read_csv($1)", 403),
    ("SELECT * FROM read_csv('people.csv', names=(SELECT ['a']))", 403),
    ("SELECT * FROM read_text('people.csv')", 403),               # other file functions
    ("SELECT * FROM glob('*')", 403),
    ("SELECT * FROM sniff_csv('people.csv')", 403),
    ("COPY sq_people FROM 'people.csv'", 403),
    ("COPY sq_people TO 'out.csv'", 403),
    ("ATTACH 'x.duckdb' AS x", 403),
    ("SELECT 1; ATTACH ':memory:' AS x", 403),
    ("SELECT * FROM read_csv('missing.csv')", 404),
])
def test_admin_sql_file_refusals(import_srv, sql, status):
    sql = sql.replace("IMPORT_DIR", str(import_srv.import_dir))
    err = assert_error(admin(import_srv, "rwdb", sql), status)
    assert "OUTSIDE-7f3a" not in err["message"]
    if status == 403:
        assert "import" in err["message"] or "plain file" in err["message"], err


def test_admin_sql_files_only_where_allowed(import_srv, srv):
    s = import_srv
    # Serving SQL never reads files, whatever the name.
    for sql in ("SELECT * FROM read_csv('people.csv')",
                "SELECT * FROM read_csv('%s')" % os.path.join(str(s.import_dir), "people.csv")):
        err = assert_error(read(s, "rwdb", sql, key="admin"), (400, 403))
        assert "ann" not in err["message"]
    # A read-only database cannot hold the loaded rows: build-and-swap, or a staging job.
    assert_error(admin(s, "main", "SELECT * FROM read_csv('people.csv')"), 409,
                 "READ_ONLY_DATABASE")
    # Without import directories admin SQL reads no file at all.
    err = assert_error(admin(srv, "rwdb", "SELECT * FROM read_csv('people.csv')"), 403,
                       "FORBIDDEN")
    assert "import_dirs" in err["message"]


def run_job(s, body, timeout=120):
    r = s.post("/api/admin/jobs", data=json.dumps(body), headers=hdr(s.keys["admin"]))
    assert r.status_code == 202, r.text
    jid = r.json()["id"]
    end = time.monotonic() + timeout
    while True:
        j = s.get("/api/admin/jobs/" + jid, headers=hdr(s.keys["admin"])).json()
        if j["state"] in ("done", "failed", "cancelled"):
            return j
        assert time.monotonic() < end, j
        time.sleep(0.05)


def test_job_reads_import_files(import_srv):
    s = import_srv
    j = run_job(s, {"db": "rwdb", "sql": "CREATE OR REPLACE TABLE job_people AS SELECT * FROM "
                                         "read_csv('people.csv') UNION ALL SELECT * FROM "
                                         "read_csv('packed.csv.gz')"})
    assert j["state"] == "done" and j["rows_written"] == 4, j
    body = assert_ok(read(s, "rwdb", "SELECT id FROM job_people ORDER BY id"))
    assert body["rows"] == [[1], [2], [7], [8]]
    j = run_job(s, {"db": "rwdb", "sql": "SELECT * FROM read_csv('link.csv')"})
    assert j["state"] == "failed" and j["error"]["code"] == "FORBIDDEN", j
    # A staging job on a read-only database loads into its staging copy.
    r = s.post("/api/admin/stage/main", headers=hdr(s.keys["admin"]))
    assert r.status_code == 201, r.text
    try:
        j = run_job(s, {"db": "main", "target": "next",
                        "sql": "CREATE TABLE staged_people AS SELECT * FROM "
                               "read_csv('people.csv')"})
        assert j["state"] == "done" and j["rows_written"] == 2, j
    finally:
        s.request("DELETE", "/api/admin/stage/main", headers=hdr(s.keys["admin"]))
