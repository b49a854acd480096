"""Admin jobs (docs/admin.md): POST /api/admin/jobs, GET/DELETE /api/admin/jobs/{id}, GET
/api/admin/jobs. Jobs run in the background on an engine slot with DuckDB's query progress, can
be cancelled, outlive the client that submitted them, run at most max_jobs at once, and report
their errors."""

import json
import os
import re
import socket
import time

import pytest

from dgserver import ENDLESS_SQL, add_key, assert_error, assert_ok

RW_DB_SQL = """
CREATE TABLE items (id INTEGER, name VARCHAR);
INSERT INTO items VALUES (1, 'one'), (2, 'two');
CHECKPOINT;
"""

MAX_JOBS = 2
FINAL = ("done", "failed", "cancelled")


def start_jobs_server(make_server, binary, fixtures):
    fixtures.build("jobsdb", RW_DB_SQL)
    s = make_server(dbs=("main", "jobsdb"), engines=2, slots=2, start=False,
                    extra=["--auth", "on", "--keys-file", "KEYS", "--max-jobs", str(MAX_JOBS),
                           "--read-write-databases", "jobsdb"])
    path = s.use_keys_file()
    s.keys = {"admin": add_key(binary, path, "admin"),
              "analyst": add_key(binary, path, "analyst"), "anonymous": None}
    return s.start()


@pytest.fixture(scope="module")
def srv(make_server, binary, fixtures):
    s = start_jobs_server(make_server, binary, fixtures)
    yield s
    s.close()


def h(s, who="admin"):
    k = s.keys[who]
    return {"Authorization": "Bearer " + k} if k else {}


def submit(s, db, sql, who="admin", **extra):
    body = dict({"db": db, "sql": sql}, **extra)
    return s.post("/api/admin/jobs", data=json.dumps(body), headers=h(s, who))


def submit_ok(s, db, sql):
    r = submit(s, db, sql)
    assert r.status_code == 202, r.text
    job = r.json()
    assert re.fullmatch(r"job_[0-9a-f]{24}", job["id"]), job
    assert r.headers["Location"] == "/api/admin/jobs/" + job["id"]
    assert job["state"] == "queued" and job["db"] == db and job["finished"] is None
    return job["id"]


def get(s, jid, who="admin"):
    return s.get("/api/admin/jobs/" + jid, headers=h(s, who))


def state(s, jid):
    r = get(s, jid)
    assert r.status_code == 200, r.text
    return r.json()


def wait_state(s, jid, states, timeout=60.0):
    return s.wait_job(jid, h(s), states, timeout, poll=0.05)


def cancel(s, jid):
    r = s.request("DELETE", "/api/admin/jobs/" + jid, headers=h(s))
    assert r.status_code == 200, r.text
    return r.json()


def slots_busy(s):
    m = re.search(r"^duckgate_slots_busy (\d+)", s.get("/metrics").text, re.M)
    return int(m.group(1))


def wait_slots_free(s, timeout=10.0):
    end = time.monotonic() + timeout
    while slots_busy(s) != 0:
        assert time.monotonic() < end, "engine slots still busy"
        time.sleep(0.05)


# ---- lifecycle and progress -----------------------------------------------------------------

def test_write_job_then_progress_over_a_slow_query(srv):
    jid = submit_ok(srv, "jobsdb", "CREATE OR REPLACE TABLE big AS SELECT range AS i, "
                                   "hash(range) AS h FROM range(6000000)")
    j = wait_state(srv, jid, FINAL, timeout=120)
    assert j["state"] == "done" and j["error"] is None, j
    assert j["progress"] == 100 and j["finished"] and j["elapsed_ms"] >= 0
    # The write is visible to the next read.
    r = srv.query("jobsdb", "SELECT count(*) FROM big", headers=h(srv, "analyst"))
    assert assert_ok(r)["rows"] == [[6000000]]

    jid = submit_ok(srv, "jobsdb", "SELECT i % 1000 AS g, sum(h), count(DISTINCT h % 100000) "
                                   "FROM big GROUP BY g")
    seen = []
    end = time.monotonic() + 300
    while True:
        j = state(srv, jid)
        if j["state"] == "running" and j["progress"] is not None:
            seen.append(j["progress"])
        if j["state"] in FINAL:
            break
        assert time.monotonic() < end
        time.sleep(0.05)
    assert j["state"] == "done" and j["rows"] == 1000 and j["progress"] == 100, j
    assert seen == sorted(seen), "progress went backwards: %r" % seen
    assert any(0 < p < 100 for p in seen), "no intermediate progress seen: %r" % seen
    assert len(set(seen)) >= 2, "progress did not move: %r" % seen
    assert j["elapsed_ms"] > 0 and j["created"] <= j["finished"]


def test_cancel_stops_the_query_and_frees_the_slot(srv):
    jid = submit_ok(srv, "main", ENDLESS_SQL)
    wait_state(srv, jid, ("running",))
    end = time.monotonic() + 30
    while slots_busy(srv) < 1:  # the worker leases its slot right after marking it running
        assert time.monotonic() < end, "the running job holds no engine slot"
        time.sleep(0.02)
    t0 = time.monotonic()
    j = cancel(srv, jid)
    assert j["state"] == "cancelled", j
    assert j["error"]["code"] == "CANCELLED" and j["finished"]
    assert time.monotonic() - t0 < 5
    wait_slots_free(srv)
    # Cancelling again changes nothing.
    assert cancel(srv, jid)["state"] == "cancelled"
    assert state(srv, jid)["state"] == "cancelled"


def counted_sql(n):
    return "SELECT count(*) AS c FROM range(%d) r(i) WHERE hash(i) %% 7 <> 99" % n


def job_sql_for_seconds(s, target_s):
    """A row count n such that counting range(n) as a job runs about target_s seconds here,
    scaled from the engine's own elapsed_ms of a measured job (not the wall time)."""
    n = 2_000_000
    for _ in range(8):
        j = wait_state(s, submit_ok(s, "main", counted_sql(n)), FINAL, timeout=120)
        assert j["state"] == "done", j
        if j["elapsed_ms"] > 200:
            return int(n * target_s * 1000 / j["elapsed_ms"])
        n *= 8
    return n


def test_job_survives_its_client_disconnecting(srv):
    # A job that runs for seconds: it must still be running after its client has gone, then
    # finish done with its rows.
    n = job_sql_for_seconds(srv, 5.0)
    before = {j["id"] for j in srv.get("/api/admin/jobs", headers=h(srv)).json()["jobs"]}
    body = json.dumps({"db": "jobsdb", "sql": "CREATE OR REPLACE TABLE after_hangup AS " +
                       counted_sql(n)})
    req = ("POST /api/admin/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
           "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
               srv.keys["admin"], len(body), body)).encode()
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    sock.sendall(req)
    sock.shutdown(socket.SHUT_WR)
    sock.close()  # without reading the answer
    end = time.monotonic() + 10
    new = set()
    while not new:
        assert time.monotonic() < end, "the job was not submitted"
        new = {j["id"] for j in srv.get("/api/admin/jobs", headers=h(srv)).json()["jobs"]} - before
        time.sleep(0.05)
    (jid,) = new
    # The connection is closed by now: the job is (or becomes) running, not cancelled.
    j = wait_state(srv, jid, ("running",) + FINAL, timeout=60)
    assert j["state"] == "running", j
    time.sleep(0.5)
    j = state(srv, jid)
    assert j["state"] == "running" and j["finished"] is None, j
    j = wait_state(srv, jid, FINAL, timeout=300)
    assert j["state"] == "done" and j["error"] is None, j
    assert j["rows"] == 1 and j["rows_written"] == 1, j
    assert j["elapsed_ms"] >= 500, j
    r = srv.query("jobsdb", "SELECT c FROM after_hangup", headers=h(srv, "analyst"))
    assert assert_ok(r)["rows"] == [[n]]


def test_at_most_max_jobs_run_at_once(srv):
    ids = [submit_ok(srv, "main", ENDLESS_SQL) for _ in range(MAX_JOBS + 1)]
    try:
        for jid in ids[:MAX_JOBS]:
            wait_state(srv, jid, ("running",))
        time.sleep(0.5)
        assert state(srv, ids[-1])["state"] == "queued"
        assert state(srv, ids[-1])["progress"] is None
        # A queued job is cancelled without ever running.
        j = cancel(srv, ids[-1])
        assert j["state"] == "cancelled" and j["elapsed_ms"] == 0, j
        # When a running job ends, the next queued one starts.
        extra = submit_ok(srv, "main", ENDLESS_SQL)
        time.sleep(0.3)
        assert state(srv, extra)["state"] == "queued"
        cancel(srv, ids[0])
        wait_state(srv, extra, ("running",))
        ids.append(extra)
    finally:
        for jid in ids:
            cancel(srv, jid)
    wait_slots_free(srv)


def test_list_newest_first(srv):
    a = submit_ok(srv, "main", "SELECT 1")
    b = submit_ok(srv, "main", "SELECT 2")
    wait_state(srv, a, FINAL)
    wait_state(srv, b, FINAL)
    r = srv.get("/api/admin/jobs", headers=h(srv))
    assert r.status_code == 200
    ids = [j["id"] for j in r.json()["jobs"]]
    assert ids.index(b) < ids.index(a)
    for j in r.json()["jobs"]:
        assert set(j) >= {"id", "db", "state", "progress", "rows", "elapsed_ms", "error",
                          "created", "finished"}


def test_error_job_reports_its_error(srv):
    j = wait_state(srv, submit_ok(srv, "main", "SELECT * FROM no_such_table"), FINAL)
    assert j["state"] == "failed" and j["error"]["code"] == "SQL_ERROR", j
    assert "no_such_table" in j["error"]["message"]
    j = wait_state(srv, submit_ok(srv, "main", "INSERT INTO t (id) VALUES (-1)"), FINAL)
    assert j["state"] == "failed" and j["error"]["code"] == "READ_ONLY_DATABASE", j
    assert "duckgate build" in j["error"]["message"]
    # An explicit timeout_ms bounds a job like a query.
    r = submit(srv, "main", ENDLESS_SQL, timeout_ms=200)
    assert r.status_code == 202, r.text
    j = wait_state(srv, r.json()["id"], FINAL)
    assert j["state"] == "failed" and j["error"]["code"] == "TIMEOUT", j


def test_unknown_job_is_404(srv):
    assert_error(get(srv, "job_000000000000000000000000"), 404, "NOT_FOUND")
    r = srv.request("DELETE", "/api/admin/jobs/nope", headers=h(srv))
    assert_error(r, 404, "NOT_FOUND")


@pytest.mark.parametrize("who,status", [("analyst", 403), ("anonymous", 401)])
def test_non_admin_refused(srv, who, status):
    code = "FORBIDDEN" if status == 403 else "UNAUTHORIZED"
    assert_error(submit(srv, "main", "SELECT 1", who=who), status, code)
    assert_error(srv.get("/api/admin/jobs", headers=h(srv, who)), status, code)
    jid = submit_ok(srv, "main", "SELECT 1")
    assert_error(get(srv, jid, who=who), status, code)
    assert_error(srv.request("DELETE", "/api/admin/jobs/" + jid, headers=h(srv, who)), status,
                 code)


@pytest.mark.parametrize("body,status,code", [
    ('{"sql": "SELECT 1"}', 400, "BAD_REQUEST"),
    ('{"db": "nope", "sql": "SELECT 1"}', 404, "UNKNOWN_DB"),
    ('{"db": "main"}', 400, "MISSING_SQL"),
    ('{"db": "main", "sql": ""}', 400, "MISSING_SQL"),
    ('{"db": "main", "sql": "SELECT 1", "x": 1}', 400, "BAD_REQUEST"),
    ('{"db": "main", "sql": "SELECT 1", "timeout_ms": -5}', 400, "BAD_REQUEST"),
    ('[1]', 400, "BAD_REQUEST"),
    ('{"db": "main", "sql": "SELECT 1\\u0000"}', 400, "BAD_JSON"),  # no NUL reaches the SQL
    ('{"db": ', 400, "BAD_JSON"),
])
def test_bad_submissions(srv, body, status, code):
    assert_error(srv.post("/api/admin/jobs", data=body, headers=h(srv)), status, code)


def test_sigterm_cancels_running_jobs(make_server, binary, fixtures):
    s = start_jobs_server(make_server, binary, fixtures)
    try:
        jid = submit_ok(s, "main", ENDLESS_SQL)
        wait_state(s, jid, ("running",))
        queued = [submit_ok(s, "main", ENDLESS_SQL) for _ in range(MAX_JOBS)]
        assert state(s, queued[-1])["state"] == "queued"
        t0 = time.monotonic()
        assert s.terminate(timeout=20) == 0
        assert time.monotonic() - t0 < 15
        assert "job finished id=%s state=cancelled" % jid in s.log()
    finally:
        s.close()


def test_finished_jobs_are_forgotten_after_their_retention(make_server, binary, fixtures):
    # job_retention_s = 2: a finished job is listed and GET-able, then 404 (GET first, so the
    # GET itself must forget it, not only the listing) and no longer listed.
    s = make_server(dbs=("main",), engines=1, slots=2, start=False,
                    extra=["--auth", "on", "--keys-file", "KEYS", "--job-retention-s", "2"])
    path = s.use_keys_file()
    s.keys = {"admin": add_key(binary, path, "admin")}
    s.start()
    try:
        t_submit = time.monotonic()
        jid = submit_ok(s, "main", "SELECT 42")
        j = wait_state(s, jid, FINAL)
        assert j["state"] == "done", j
        listed = [x["id"] for x in s.get("/api/admin/jobs", headers=h(s)).json()["jobs"]]
        assert jid in listed
        assert get(s, jid).status_code == 200
        # A running job is never forgotten, whatever its age.
        long_id = submit_ok(s, "main", ENDLESS_SQL)
        wait_state(s, long_id, ("running",))
        end = time.monotonic() + 60
        while get(s, jid).status_code == 200:
            assert time.monotonic() < end, "the finished job was never forgotten"
            time.sleep(0.2)
        # Kept for the retention: it finished after it was submitted, so it cannot be forgotten
        # less than 2 s after the submission.
        assert time.monotonic() - t_submit >= 1.9
        assert_error(get(s, jid), 404, "NOT_FOUND")
        listed = [x["id"] for x in s.get("/api/admin/jobs", headers=h(s)).json()["jobs"]]
        assert jid not in listed and long_id in listed
        assert state(s, long_id)["state"] == "running"
        cancel(s, long_id)
    finally:
        s.close()
