"""Remote builds (docs/pipeline.md "Remote builds", docs/admin.md "Staging"):
`duckgate build --remote URL --key KEY DB PIPELINE_DIR` runs a pipeline's steps on a server as
admin jobs on a staging copy (POST /api/admin/stage/{db}, jobs with "target":"next") and swaps
it in (POST /api/admin/reload/{db}). A failed step leaves the served file byte-identical and no
staging copy behind. Also the routes' errors, cancel of a staging job, one writer per copy."""

import hashlib
import json
import os
import signal
import subprocess
import time

import pytest

from dgserver import ENDLESS_SQL, add_key, assert_error

DB = "rbuild"
BASE_SQL = """
CREATE TABLE base (id INTEGER, grp VARCHAR);
INSERT INTO base SELECT i, 'g' || (i % 3) FROM range(1000) r(i);
CHECKPOINT;
"""

GOOD = {
    "01_evens.sql": "CREATE OR REPLACE TABLE evens AS SELECT * FROM base WHERE id % 2 = 0;\n",
    "02_groups.sql": "CREATE OR REPLACE TABLE groups AS SELECT grp, count(*) AS n FROM evens "
                     "GROUP BY grp;\n",
    # Two statements; the summary counts the last one's rows.
    "03_flags.sql": "CREATE OR REPLACE TABLE flags (k INTEGER);\n"
                    "INSERT INTO flags SELECT * FROM range(7);\n",
    "README.txt": "not a step\n",
}
BAD = {
    "01_ok.sql": "CREATE OR REPLACE TABLE never_served AS SELECT 1 AS x;\n",
    "02_broken.sql": "SELECT no_such_column FROM base;\n",
    "03_after.sql": "CREATE OR REPLACE TABLE not_reached AS SELECT 1 AS x;\n",
}


@pytest.fixture(scope="module")
def srv(make_server, fixtures, binary):
    fixtures.build(DB, BASE_SQL)
    s = make_server(dbs=(DB, "main"), engines=2, slots=2, start=False,
                    extra=["--auth", "on", "--keys-file", "KEYS", "--max-jobs", "2"])
    path = s.use_keys_file()
    s.admin = add_key(binary, path, "admin")
    s.analyst = add_key(binary, path, "analyst")
    s.start()
    s.live = os.path.join(s.data_dir, DB + ".duckdb")
    return s


def hdr(key):
    return {"Authorization": "Bearer " + key} if key else {}


def pipeline(tmp_path, name, files):
    d = tmp_path / name
    d.mkdir()
    for fname, text in files.items():
        (d / fname).write_text(text)
    return str(d)


def build(srv, pdir, key=None, url=None, db=DB, extra=(), env=None):
    e = {k: v for k, v in os.environ.items() if not k.startswith("DUCKGATE_")}
    e.update(env or {})
    args = [srv.binary, "build", "--remote", url or srv.base]
    if key is not False:
        args += ["--key", key or srv.admin]
    args += [db, pdir, "--plain", "--poll-ms", "50"] + list(extra)
    return subprocess.run(args, capture_output=True, text=True, env=e, timeout=120)


def sql(srv, text):
    r = srv.query(DB, text, headers=hdr(srv.analyst))
    assert r.status_code == 200, r.text[:300]
    return r.json()["rows"]


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def no_staging_left(srv):
    return not any(os.path.exists(srv.live + suffix)
                   for suffix in (".next", ".next.wal", ".next.copying"))


def stage(srv, method="POST", key=None, db=DB):
    return srv.request(method, "/api/admin/stage/" + db, headers=hdr(key or srv.admin))


def submit(srv, sql_text, target="next", key=None):
    body = {"db": DB, "sql": sql_text}
    if target is not None:
        body["target"] = target
    return srv.post("/api/admin/jobs", data=json.dumps(body), headers=hdr(key or srv.admin))


def job(srv, jid):
    r = srv.get("/api/admin/jobs/" + jid, headers=hdr(srv.admin))
    assert r.status_code == 200, r.text
    return r.json()


def wait_job(srv, jid, states, timeout=30.0):
    return srv.wait_job(jid, hdr(srv.admin), states, timeout)


# ---- the command ----------------------------------------------------------------------------

def test_remote_build_changes_the_served_data(srv, tmp_path):
    v0 = srv.post("/api/admin/reload/" + DB, headers=hdr(srv.admin)).json()["version"]
    p = build(srv, pipeline(tmp_path, "good", GOOD))
    assert p.returncode == 0, p.stdout + p.stderr
    out = p.stdout + p.stderr
    # Plain progress lines per step, then the summary with every step and its rows.
    for step in ("01_evens.sql", "02_groups.sql", "03_flags.sql"):
        assert "step %s: started" % step in out, out
        assert "step %s: done" % step in out, out
    summary = out[out.index("\nstep "):] if "\nstep  " in out else out
    rows = {ln.split()[0]: int(ln.split()[1]) for ln in out.splitlines()
            if ln.split() and ln.split()[0].endswith(".sql") and len(ln.split()) == 3}
    assert rows == {"01_evens.sql": 500, "02_groups.sql": 3, "03_flags.sql": 7}, summary
    assert "total" in out and "README" not in out
    assert "data version" in out
    # After the command returned, every query sees the new tables.
    assert sql(srv, "SELECT count(*) FROM evens") == [[500]]
    assert sql(srv, "SELECT CAST(sum(n) AS INTEGER) FROM groups") == [[500]]
    assert sql(srv, "SELECT count(*) FROM flags") == [[7]]
    v1 = srv.post("/api/admin/reload/" + DB, headers=hdr(srv.admin)).json()["version"]
    assert v1 > v0
    assert no_staging_left(srv)


def test_failing_step_leaves_the_served_file_untouched(srv, tmp_path):
    before = digest(srv.live)
    p = build(srv, pipeline(tmp_path, "bad", BAD))
    out = p.stdout + p.stderr
    assert p.returncode == 1, out
    assert "step 02_broken.sql failed: SQL_ERROR" in out, out
    assert "no_such_column" in out
    assert "03_after.sql" not in out
    assert "discarded" in out
    assert digest(srv.live) == before
    assert no_staging_left(srv)
    # Still served, without the failed build's tables.
    assert sql(srv, "SELECT count(*) FROM base") == [[1000]]
    r = srv.query(DB, "SELECT * FROM never_served", headers=hdr(srv.analyst))
    assert_error(r, 400, "SQL_ERROR")


def test_wrong_key_and_non_admin_key(srv, tmp_path):
    pdir = pipeline(tmp_path, "p", GOOD)
    p = build(srv, pdir, key="dgk_" + "A" * 43)
    assert p.returncode == 1
    assert "refused the key" in p.stderr and "UNAUTHORIZED" in p.stderr, p.stderr
    p = build(srv, pdir, key=srv.analyst)
    assert p.returncode == 1
    assert "admin key" in p.stderr and "FORBIDDEN" in p.stderr, p.stderr
    # The key also comes from DUCKGATE_KEY; without any key the server asks for one.
    p = build(srv, pdir, key=False, env={"DUCKGATE_KEY": srv.analyst})
    assert p.returncode == 1 and "FORBIDDEN" in p.stderr, p.stderr
    p = build(srv, pdir, key=False)
    assert p.returncode == 1 and "UNAUTHORIZED" in p.stderr, p.stderr
    assert no_staging_left(srv)


def test_unreachable_unknown_db_and_usage(srv, tmp_path):
    pdir = pipeline(tmp_path, "p", GOOD)
    p = build(srv, pdir, url="http://127.0.0.1:1")
    assert p.returncode == 1 and "cannot reach http://127.0.0.1:1" in p.stderr, p.stderr
    p = build(srv, pdir, db="nope")
    assert p.returncode == 1 and "serves no database nope" in p.stderr, p.stderr
    p = build(srv, pdir, url="ftp://x")
    assert p.returncode == 2
    p = subprocess.run([srv.binary, "build", "--remote", srv.base, DB], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 2
    p = subprocess.run([srv.binary, "build", "--help"], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 0 and "--remote URL" in p.stdout


def test_sigint_cancels_the_running_step(srv, tmp_path):
    before = digest(srv.live)
    pdir = pipeline(tmp_path, "slow", {"01_forever.sql": ENDLESS_SQL + ";\n"})
    e = {k: v for k, v in os.environ.items() if not k.startswith("DUCKGATE_")}
    proc = subprocess.Popen([srv.binary, "build", "--remote", srv.base, "--key", srv.admin, DB,
                             pdir, "--plain", "--poll-ms", "50"], env=e,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        end = time.monotonic() + 20
        while True:
            jobs = srv.get("/api/admin/jobs", headers=hdr(srv.admin)).json()["jobs"]
            if any(j["state"] == "running" and j["target"] == "next" for j in jobs):
                break
            assert time.monotonic() < end and proc.poll() is None, "no running staging job"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1, out + err
    assert "CANCELLED" in err and "01_forever.sql" in err, err
    jobs = srv.get("/api/admin/jobs", headers=hdr(srv.admin)).json()["jobs"]
    assert all(j["state"] != "running" for j in jobs)
    assert digest(srv.live) == before
    assert no_staging_left(srv)


# ---- the routes -----------------------------------------------------------------------------

def test_stage_routes(srv):
    assert_error(stage(srv, key=srv.analyst), 403, "FORBIDDEN")
    r = srv.post("/api/admin/stage/" + DB)
    assert_error(r, 401, "UNAUTHORIZED")
    assert_error(stage(srv, db="nope"), 404, "UNKNOWN_DB")
    r = stage(srv, "DELETE")
    assert r.status_code == 200 and r.json() == {"db": DB, "discarded": False}, r.text
    r = stage(srv)
    assert r.status_code == 201, r.text
    assert r.json() == {"db": DB, "bytes": os.path.getsize(srv.live)}
    assert digest(srv.live + ".next") == digest(srv.live)
    r = stage(srv)  # again: a fresh copy replaces the old one
    assert r.status_code == 201, r.text
    r = stage(srv, "DELETE")
    assert r.status_code == 200 and r.json() == {"db": DB, "discarded": True}, r.text
    assert no_staging_left(srv)


def test_job_target_errors(srv):
    assert not os.path.exists(srv.live + ".next")
    err = assert_error(submit(srv, "SELECT 1"), 409, "NO_STAGING")
    assert "POST /api/admin/stage/%s" % DB in err["message"]
    assert_error(submit(srv, "SELECT 1", target="bogus"), 400, "BAD_REQUEST")
    assert_error(submit(srv, "SELECT 1", target=3), 400, "BAD_REQUEST")
    assert_error(submit(srv, "SELECT 1", key=srv.analyst), 403, "FORBIDDEN")
    # A job on the served read-only file still refuses writes.
    r = submit(srv, "CREATE TABLE x AS SELECT 1", target="served")
    assert r.status_code == 202, r.text
    j = wait_job(srv, r.json()["id"], ("done", "failed"))
    assert j["state"] == "failed" and j["error"]["code"] == "READ_ONLY_DATABASE", j
    assert j["target"] == "served"


def test_staging_job_writes_the_copy_only(srv):
    assert stage(srv).status_code == 201
    try:
        r = submit(srv, "CREATE OR REPLACE TABLE staged_only AS SELECT * FROM range(42)")
        assert r.status_code == 202, r.text
        assert r.json()["target"] == "next"
        j = wait_job(srv, r.json()["id"], ("done", "failed", "cancelled"))
        assert j["state"] == "done" and j["rows_written"] == 42 and j["progress"] == 100, j
        # Checkpointed and closed when the job ended: no write-ahead log, served file unchanged.
        assert not os.path.exists(srv.live + ".next.wal")
        r = srv.query(DB, "SELECT * FROM staged_only", headers=hdr(srv.analyst))
        assert_error(r, 400, "SQL_ERROR")
    finally:
        assert stage(srv, "DELETE").status_code == 200


def test_cancel_busy_and_one_writer(srv):
    assert stage(srv).status_code == 201
    try:
        r = submit(srv, ENDLESS_SQL)
        assert r.status_code == 202, r.text
        first = r.json()["id"]
        wait_job(srv, first, ("running",))
        # While a job writes the copy: a second staging job fails cleanly, and the copy can be
        # neither replaced, discarded nor swapped in.
        r = submit(srv, "CREATE TABLE y AS SELECT 1")
        assert r.status_code == 202, r.text
        second = wait_job(srv, r.json()["id"], ("done", "failed", "cancelled"))
        assert second["state"] == "failed", second
        assert second["error"]["code"] == "STAGING_BUSY", second
        assert "one at a time" in second["error"]["message"]
        assert_error(stage(srv), 409, "STAGING_BUSY")
        assert_error(stage(srv, "DELETE"), 409, "STAGING_BUSY")
        r = srv.post("/api/admin/reload/" + DB, headers=hdr(srv.admin))
        assert_error(r, 409, "STAGING_BUSY")
        r = srv.request("DELETE", "/api/admin/jobs/" + first, headers=hdr(srv.admin))
        assert r.status_code == 200 and r.json()["state"] == "cancelled", r.text
        # Free again: a new staging job runs.
        r = submit(srv, "CREATE OR REPLACE TABLE after_cancel AS SELECT 1 AS x")
        j = wait_job(srv, r.json()["id"], ("done", "failed", "cancelled"))
        assert j["state"] == "done", j
    finally:
        r = stage(srv, "DELETE")
        assert r.status_code == 200, r.text
    assert no_staging_left(srv)
    assert sql(srv, "SELECT count(*) FROM base") == [[1000]]
