"""Process lifecycle: SIGTERM drains, a killed engine fails only its own requests and is
restarted, the server process never dies."""

import json
import os
import signal
import threading
import time

import requests

from dgserver import assert_error, assert_ok, calibrated_sql, error_body, pid_alive


def test_sigterm_drains(make_server):
    """SIGTERM while a request is in flight: /ready answers 503 (on a connection opened before
    the signal; the listener itself may close), new queries get 503, the in-flight request
    completes in full, and the process exits 0."""
    s = make_server(engines=1, slots=2)
    n = 2000000
    # A keep-alive connection opened before the signal.
    sess = requests.Session()
    assert sess.get(s.url("/ready"), timeout=5).status_code == 200
    # The in-flight request: a stream the client reads slowly, so it is certainly still running
    # when the signal arrives.
    inflight = requests.post(s.url("/api/query/main?format=ndjson"),
                             json={"sql": "SELECT range AS i FROM range(%d)" % n},
                             stream=True, timeout=30)
    assert inflight.status_code == 200, inflight.text[:300]
    it = inflight.iter_content(chunk_size=65536)
    head = next(it)
    s.proc.send_signal(signal.SIGTERM)
    t_term = time.monotonic()

    ready_seen = []
    new_query = None
    while time.monotonic() - t_term < 3:
        try:
            r = sess.get(s.url("/ready"), timeout=2)
            ready_seen.append(r.status_code)
            if r.status_code == 503:
                error_body(r)
                new_query = sess.post(s.url("/api/query/main"), json={"sql": "SELECT 1"},
                                      timeout=5)
                break
        except requests.RequestException as e:
            ready_seen.append(type(e).__name__)
            sess = requests.Session()
        time.sleep(0.05)

    # Now read the rest of the in-flight stream: it must be complete.
    body = head + b"".join(it)
    lines = [json.loads(x) for x in body.decode("utf-8").splitlines() if x.strip()]
    assert lines[0]["type"] == "meta"
    assert lines[-1]["type"] == "end", "stream cut during drain: last line %r" % (lines[-1],)
    assert lines[-1]["rows"] == n
    assert sum(len(x["rows"]) for x in lines if x["type"] == "rows") == n

    assert 503 in ready_seen, "/ready never answered 503 while draining; saw %r" % (
        sorted(set(map(str, ready_seen))),)
    assert new_query is not None
    assert_error(new_query, 503, ("DRAINING", "NOT_READY"))
    try:
        rc = s.proc.wait(15)
    except Exception:  # noqa: BLE001
        rc = None
    log = s.log()
    s.close()
    assert rc == 0, "exit status %r after SIGTERM:\n%s" % (rc, log[-2000:])


def test_sigterm_idle_exits_zero(make_server):
    s = make_server(engines=2, slots=1)
    engines = s.engine_pids()
    assert engines, "no engine child processes found"
    t0 = time.monotonic()
    rc = s.terminate(timeout=15)
    assert rc == 0, "exit status %r:\n%s" % (rc, s.log()[-2000:])
    assert time.monotonic() - t0 < 5, "idle shutdown took %.1fs" % (time.monotonic() - t0)
    time.sleep(0.2)
    left = [p for p in engines if pid_alive(p)]
    assert not left, "engine processes outlived the server: %r" % left
    s.close()


def _engine_children(s):
    pids = s.engine_pids()
    eng = []
    for p in pids:
        try:
            with open("/proc/%d/cmdline" % p, "rb") as f:
                if b"engine" in f.read():
                    eng.append(p)
        except OSError:
            pass
    return set(eng) if eng else pids


def test_engine_crash_isolation(make_server):
    s = make_server(engines=2, slots=2)
    sql, n = calibrated_sql(s, "main", target_s=0.25)
    before = _engine_children(s)
    assert len(before) == 2, "expected 2 engine processes, found %r" % before

    results = []  # (t, kind, status, code)
    lock = threading.Lock()
    stop = threading.Event()

    def worker(i):
        k = 0
        while not stop.is_set() and k < 500:
            k += 1
            slow = (k + i) % 2 == 0
            q, want = (sql, n) if slow else ("SELECT %d AS v" % k, k)
            try:
                r = s.query("main", q, timeout=30)
            except requests.RequestException as e:
                with lock:
                    results.append((time.monotonic(), "exc", 0, repr(e)))
                continue
            if r.status_code == 200:
                ok = r.json()["rows"] == [[want]]
                code = "OK" if ok else "WRONG:" + r.text[:100]
            else:
                try:
                    code = assert_error(r, (r.status_code,))["code"]
                except AssertionError as e:
                    code = "BADBODY:" + str(e)[:200]
            with lock:
                results.append((time.monotonic(), "resp", r.status_code, code))

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(6)]
    for th in threads:
        th.start()
    time.sleep(1.5)
    victim = sorted(before)[0]
    os.kill(victim, signal.SIGKILL)
    t_kill = time.monotonic()
    # A replacement engine appears.
    replaced = False
    while time.monotonic() - t_kill < 10:
        now = _engine_children(s)
        if victim not in now and len(now) == 2:
            replaced = True
            break
        time.sleep(0.05)
    time.sleep(1.5)  # keep the load on the restarted pool for a while
    stop.set()
    for th in threads:
        th.join(40)
    assert not any(th.is_alive() for th in threads), "worker threads hang"
    assert s.alive(), "the server process died:\n" + s.log()[-2000:]
    assert replaced, "no replacement engine within 10s (children now %r)" % _engine_children(s)

    bad = [r for r in results if not (r[2] == 200 and r[3] == "OK")]
    print("crash isolation: %d requests, %d not OK (%r), victim %d, engines before %r after %r" % (
        len(results), len(bad), sorted(set((r[2], r[3]) for r in bad)), victim, sorted(before),
        sorted(_engine_children(s))))
    allowed = [r for r in results if r[2] == 502 and r[3] == "ENGINE_FAILED"]
    others = [r for r in bad if r not in allowed]
    assert not others, "requests failed other than the killed engine's in-flight ones: %r" % (
        others[:10],)
    # Only the requests in flight on the killed engine may fail: at most its slots.
    assert len(allowed) <= 2, "%d requests failed with ENGINE_FAILED (engine had 2 slots)" % len(
        allowed)
    assert len(results) > 10, "too little load: %d requests" % len(results)
    assert any(r[0] > t_kill + 1.0 and r[2] == 200 for r in results), "no success after the kill"
    # The server keeps answering on both engines.
    for i in range(20):
        assert assert_ok(s.query("main", "SELECT %d" % i))["rows"] == [[i]]
    s.close()
