"""Atomic refresh (issue #7, docs/pipeline.md "Atomic refresh"): a database file replaced under
a read load, by a rename into the data directory and by POST /api/admin/reload/{db} with a
`.next` file. Zero failed requests; every response started after the swap reflects the new data;
queries already running finish on the old file; the old file is closed afterwards; a corrupt,
half-written or symlinked `.next` is refused while the old data keeps serving."""

import json
import os
import threading
import time

import pytest

import dgserver
from dgserver import add_key, assert_error

DB = "swap"


def table_sql(v, rows=1000):
    """A database whose table t holds `rows` rows, all with value v."""
    return ("CREATE TABLE t (v INTEGER, pad VARCHAR);"
            "INSERT INTO t SELECT %d, 'row ' || i FROM range(%d) r(i); CHECKPOINT;" % (v, rows))


@pytest.fixture(scope="module")
def srv(make_server, fixtures, binary):
    fixtures.build(DB, table_sql(1))
    s = make_server(dbs=(DB,), engines=2, slots=2, start=False,
                    extra=["--auth", "on", "--keys-file", "KEYS"])
    path = s.use_keys_file()
    s.admin = add_key(binary, path, "admin")
    s.analyst = add_key(binary, path, "analyst")
    s.start()
    s.live = os.path.join(s.data_dir, DB + ".duckdb")
    s.hdr = {"Authorization": "Bearer " + s.admin}
    return s


def make_db(srv, name, v, rows=1000):
    """Builds a database file with value v in the server's data directory (a name the server
    does not serve) and returns its path."""
    path = os.path.join(srv.data_dir, name)
    for p in (path, path + ".wal"):
        if os.path.exists(p):
            os.unlink(p)
    dgserver.exec_sql(srv.binary, path, table_sql(v, rows))
    assert not os.path.exists(path + ".wal")
    return path


def current_v(srv):
    r = srv.query(DB, "SELECT max(v) AS v, min(v) AS w FROM t", headers=srv.hdr)
    assert r.status_code == 200, r.text[:300]
    row = r.json()["rows"][0]
    assert row[0] == row[1]
    return row[0]


def reload(srv, key=None):
    return srv.post("/api/admin/reload/" + DB,
                    headers={"Authorization": "Bearer " + (key or srv.admin)}, timeout=180)


def version(srv):
    r = reload(srv)
    assert r.status_code == 200, r.text[:300]
    body = r.json()
    assert body["swapped"] is False and body["db"] == DB
    return body["version"]


def open_inodes(srv):
    """(dev, ino) of every file the engines have open."""
    out = set()
    for pid in srv.engine_pids():
        fd_dir = "/proc/%d/fd" % pid
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                st = os.stat(os.path.join(fd_dir, fd))
            except OSError:
                continue
            out.add((st.st_dev, st.st_ino))
    return out


def wait_closed(srv, ident, timeout=10.0):
    """True once no engine holds the file ident = (dev, ino) open."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if ident not in open_inodes(srv):
            return True
        time.sleep(0.05)
    return False


def file_ident(path):
    st = os.stat(path)
    return (st.st_dev, st.st_ino)


class Load:
    """Threads running `SELECT max(v), min(v) FROM t` in a loop; every response is recorded with
    the monotonic time its request started."""

    def __init__(self, srv, n_threads=4):
        self.srv = srv
        self.stop = threading.Event()
        self.results = []  # (t_start, status, v or error text, answered from the cache)
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(n_threads)]

    def run(self):
        import requests
        sess = requests.Session()
        body = json.dumps({"sql": "SELECT max(v) AS v, min(v) AS w FROM t"})
        hdr = dict(self.srv.hdr, **{"Content-Type": "application/json"})
        while not self.stop.is_set():
            t0 = time.monotonic()
            try:
                r = sess.post(self.srv.url("/api/query/" + DB), data=body, headers=hdr,
                              timeout=60)
                hit = "hit" in r.headers.get("Cache-Status", "")
                if r.status_code == 200:
                    row = r.json()["rows"][0]
                    rec = (t0, 200, row[0] if row[0] == row[1] else "mixed %r" % row, hit)
                else:
                    rec = (t0, r.status_code, r.text[:200], hit)
            except Exception as ex:  # noqa: BLE001 - any failure is a finding
                rec = (t0, 0, repr(ex)[:200], False)
            with self.lock:
                self.results.append(rec)
        sess.close()

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(60)

    def check(self, t_swap, old, new):
        """Zero failures; old data only before the swap; new data for every request started
        after it; both seen."""
        with self.lock:
            res = list(self.results)
        failed = [r for r in res if r[1] != 200]
        assert not failed, "failed requests during the swap: %r" % failed[:5]
        after = [r for r in res if r[0] > t_swap]
        before = [r for r in res if r[0] <= t_swap]
        assert len(after) >= 20 and len(before) >= 20, (len(before), len(after))
        stale = [r for r in after if r[2] != new]
        assert not stale, "responses started after the swap with old data: %r" % stale[:5]
        assert {r[2] for r in before} <= {old, new}, {r[2] for r in before}
        assert any(r[2] == old for r in before)
        return after


def test_rename_under_load(srv):
    assert current_v(srv) == 1
    v0 = version(srv)
    old = file_ident(srv.live)
    assert old in open_inodes(srv), "the engines do not hold the served file open"
    incoming = make_db(srv, "incoming-a.tmp", 2)
    with Load(srv) as load:
        time.sleep(1.0)
        os.rename(incoming, srv.live)
        t_swap = time.monotonic()
        time.sleep(1.5)
    after = load.check(t_swap, 1, 2)
    # The same query repeats, so the result cache answers most of it: the hits after the
    # rename carry the new data because the data version moved with the file.
    assert any(r[3] for r in after), "no cache hits: the cache path was not exercised"
    assert current_v(srv) == 2
    # The data version moved without any route being called for the swap.
    assert version(srv) > v0
    assert wait_closed(srv, old), "an engine still holds the replaced file open"
    assert file_ident(srv.live) in open_inodes(srv)
    # The database list describes the file now served, not the one found at the start.
    r = srv.get("/api/databases", headers=srv.hdr)
    assert r.status_code == 200, r.text[:300]
    (d,) = [d for d in r.json()["databases"] if d["name"] == DB]
    assert d["size_bytes"] == os.stat(srv.live).st_size and d["read_only"] is True
    assert d["version"] == version(srv)


def test_reload_route_under_load(srv):
    before = current_v(srv)
    v0 = version(srv)
    old = file_ident(srv.live)
    nxt = make_db(srv, DB + ".duckdb.next", before + 1)
    nxt_ident = file_ident(nxt)
    with Load(srv) as load:
        time.sleep(1.0)
        r = reload(srv)
        t_swap = time.monotonic()
        time.sleep(1.5)
    assert r.status_code == 200, r.text[:300]
    body = r.json()
    assert body["db"] == DB and body["swapped"] is True
    assert body["version"] > v0
    assert 0 <= body["engines_refreshed"] <= 2
    load.check(t_swap, before, before + 1)
    assert not os.path.exists(nxt)
    assert file_ident(srv.live) == nxt_ident
    assert wait_closed(srv, old)
    assert version(srv) == body["version"]


def long_sql(k):
    return ("SELECT max(v) AS v, count(*) AS c FROM t, range(%d) r(i) "
            "WHERE hash(i + length(pad)) %% 7 <> 99" % k)


def test_long_query_finishes_on_old_file(srv):
    # Calibrate a query over t (1000 rows) that runs about three seconds.
    rows = 1000
    k = 2000
    for _ in range(8):
        t0 = time.monotonic()
        r = srv.query(DB, long_sql(k), headers=srv.hdr, timeout=120)
        dt = time.monotonic() - t0
        assert r.status_code == 200, r.text[:300]
        if dt > 0.3:
            k = int(k * 3.0 / dt)
            break
        k *= 8
    # The machine is shared: when the query still ended before the swap was done, the attempt
    # proves nothing, and the next one runs longer.
    for attempt in range(4):
        before = current_v(srv)
        old = file_ident(srv.live)
        out = {}

        def long_query(sql=long_sql(k)):
            out["r"] = srv.query(DB, sql, headers=srv.hdr, timeout=300)
            out["t1"] = time.monotonic()

        th = threading.Thread(target=long_query)
        make_db(srv, DB + ".duckdb.next", before + 1)
        th.start()
        time.sleep(0.5)
        r = reload(srv)
        assert r.status_code == 200 and r.json()["swapped"] is True, r.text[:300]
        # New requests see the new file while the long query still runs on the old one.
        assert current_v(srv) == before + 1
        still_running = "t1" not in out
        if still_running:
            assert old in open_inodes(srv), "the old file was closed under a running query"
        th.join(300)
        res = out["r"]
        assert res.status_code == 200, res.text[:300]
        assert res.json()["rows"][0] == [before, rows * k]
        assert wait_closed(srv, old)
        if still_running:
            return
        k *= 3
    pytest.fail("the long query always ended before the swap was done")


def test_corrupt_next_is_refused(srv):
    before = current_v(srv)
    live = file_ident(srv.live)
    v0 = version(srv)
    nxt = os.path.join(srv.data_dir, DB + ".duckdb.next")
    good = make_db(srv, "good.tmp", 99, rows=200000)
    size = os.path.getsize(good)
    cases = {
        "garbage": os.urandom(1 << 20),
        "half-written": open(good, "rb").read()[:size // 2],
        "empty": b"",
    }
    for what, data in cases.items():
        with open(nxt, "wb") as f:
            f.write(data)
        r = reload(srv)
        err = assert_error(r, 422, "BAD_SNAPSHOT")
        assert srv.data_dir not in err["message"], err["message"]
        assert os.path.exists(nxt), what
        assert file_ident(srv.live) == live, what
        assert current_v(srv) == before, what
    os.unlink(nxt)
    # A symlink to a good file is refused too (only a regular file is swapped in).
    os.symlink(good, nxt)
    err = assert_error(reload(srv), 422, "BAD_SNAPSHOT")
    assert "regular file" in err["message"]
    os.unlink(nxt)
    # A .next with a write-ahead log would lose the log's changes.
    make_db(srv, DB + ".duckdb.next", 98)
    with open(nxt + ".wal", "wb") as f:
        f.write(b"x")
    err = assert_error(reload(srv), 422, "BAD_SNAPSHOT")
    assert "write-ahead log" in err["message"]
    os.unlink(nxt + ".wal")
    os.unlink(nxt)
    os.unlink(good)
    assert current_v(srv) == before
    assert version(srv) == v0


def test_corrupt_rename_keeps_old_data(srv):
    """A broken file renamed over the live one (no route): engines keep the old instance and
    log a warning; a good file renamed in afterwards is picked up."""
    before = current_v(srv)
    bad = os.path.join(srv.data_dir, "bad.tmp")
    with open(bad, "wb") as f:
        f.write(os.urandom(300000))
    os.rename(bad, srv.live)
    for _ in range(20):
        assert current_v(srv) == before
    assert "does not open, the old one keeps serving" in srv.log()
    good = make_db(srv, "good2.tmp", before + 7)
    os.rename(good, srv.live)
    assert current_v(srv) == before + 7


def test_reload_errors(srv):
    r = srv.post("/api/admin/reload/nope", headers=srv.hdr)
    assert_error(r, 404, "UNKNOWN_DB")
    assert_error(reload(srv, key=srv.analyst), 403, "FORBIDDEN")
    r = srv.post("/api/admin/reload/" + DB)
    assert_error(r, 401, "UNAUTHORIZED")
    r = srv.get("/api/admin/reload/" + DB, headers=srv.hdr)
    assert_error(r, 405)
    # Nothing to swap: nothing changes.
    v = version(srv)
    assert version(srv) == v
