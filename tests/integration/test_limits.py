"""Admission, deadlines and client disconnects: OVERLOADED, TIMEOUT, the timeout ceiling and
interrupting the query of a client that went away."""

import socket
import threading
import time

from dgserver import (ENDLESS_JOIN_SQL, ENDLESS_SQL, assert_error, assert_ok,
                      post_request_bytes, query_stream_checked)
import json


def _bg_query(server, sql, timeout_ms=None, out=None, timeout=60):
    out = out if out is not None else {}

    def run():
        t0 = time.monotonic()
        try:
            out["resp"] = server.query("main", sql, timeout_ms=timeout_ms, timeout=timeout)
        except Exception as e:  # noqa: BLE001 - reported by the test
            out["exc"] = e
        out["dt"] = time.monotonic() - t0
    th = threading.Thread(target=run, daemon=True)
    th.start()
    return th, out


def _wait_busy(server, deadline_s=5.0):
    """Polls until a query is refused with 503 (the single slot is held); returns that response."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        r = server.query("main", "SELECT 1")
        if r.status_code == 503:
            return r
        time.sleep(0.05)
    raise AssertionError("the slot never became busy: a slow query was expected to hold it")


# Servers with one slot and no queue run without the query log: its flusher borrows a free slot
# of engine 0 for a moment, and with queue_len 0 a query arriving then is refused.


def test_overloaded(make_server):
    s = make_server(engines=1, slots=1, extra=["--query-log", "off", "--queue-len", "0",
                                                 "--timeout-ms", "3000"])
    th, out = _bg_query(s, ENDLESS_SQL)
    time.sleep(0.3)
    r = _wait_busy(s)
    err = assert_error(r, 503, "OVERLOADED")
    ra = r.headers.get("Retry-After")
    assert ra is not None and ra.isdigit() and int(ra) >= 1, "Retry-After %r" % ra
    assert err["message"]
    th.join(15)
    assert not th.is_alive()
    assert "exc" not in out, out.get("exc")
    assert_error(out["resp"], 504, "TIMEOUT")
    # The slot comes back.
    assert assert_ok(s.query("main", "SELECT 1"))["rows"] == [[1]]
    assert s.alive()
    s.close()


def test_timeout(server):
    t0 = time.monotonic()
    r = server.query("main", ENDLESS_SQL, timeout_ms=500)
    dt = time.monotonic() - t0
    err = assert_error(r, 504, "TIMEOUT")
    assert err.get("query_id") is None or r.headers.get("X-Query-Id") in (None, err["query_id"])
    # Interrupted at the deadline (the engine is killed at deadline + kill grace at the latest).
    assert dt < 0.5 + 2.0 + 1.5, "timeout answered after %.2fs" % dt
    assert dt >= 0.4, "answered before the deadline (%.2fs)" % dt
    assert assert_ok(server.query("main", "SELECT 1"))


def test_timeout_cross_join(server):
    t0 = time.monotonic()
    r = server.query("main", ENDLESS_JOIN_SQL, timeout_ms=500)
    assert_error(r, 504, "TIMEOUT")
    assert time.monotonic() - t0 < 4.0
    assert assert_ok(server.query("main", "SELECT 2"))


def test_timeout_ceiling_clamps(make_server):
    s = make_server(engines=1, slots=2, extra=["--timeout-ms", "1000"])
    # A request asking for more than the ceiling is clamped down to it ...
    t0 = time.monotonic()
    r = s.query("main", ENDLESS_SQL, timeout_ms=60000, timeout=30)
    dt = time.monotonic() - t0
    assert_error(r, 504, "TIMEOUT")
    assert dt < 1.0 + 2.0 + 1.5, "timeout_ms above the ceiling was not clamped (%.2fs)" % dt
    # ... no timeout_ms means the ceiling too ...
    t0 = time.monotonic()
    assert_error(s.query("main", ENDLESS_SQL, timeout=30), 504, "TIMEOUT")
    assert time.monotonic() - t0 < 4.5
    # ... and a lower one is honoured.
    t0 = time.monotonic()
    assert_error(s.query("main", ENDLESS_SQL, timeout_ms=200), 504, "TIMEOUT")
    assert time.monotonic() - t0 < 0.2 + 2.0 + 1.0
    assert s.alive()
    s.close()


def test_disconnect_interrupts_query(make_server):
    s = make_server(engines=1, slots=1, extra=["--query-log", "off", "--queue-len", "0",
                                                 "--timeout-ms", "30000"])
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    sock.sendall(post_request_bytes("main", json.dumps({"sql": ENDLESS_SQL})))
    time.sleep(0.3)
    # Precondition: the slow query holds the only slot.
    assert_error(_wait_busy(s), 503, "OVERLOADED")
    sock.close()
    t_close = time.monotonic()
    last = None
    while time.monotonic() - t_close < 1.5:
        last = s.query("main", "SELECT 7", timeout=5)
        if last.status_code == 200:
            break
        time.sleep(0.05)
    assert last is not None and last.status_code == 200, (
        "1.5s after the client hung up the slot is still held: %d %s" % (
            last.status_code, last.text[:200]))
    assert last.json()["rows"] == [[7]]
    assert s.alive()
    s.close()


def test_disconnect_ndjson_stream(make_server):
    """A streaming client that stops reading and hangs up also frees its slot."""
    s = make_server(engines=1, slots=1, extra=["--query-log", "off", "--queue-len", "0",
                                                 "--timeout-ms", "30000"])
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    body = json.dumps({"sql": "SELECT range, repeat('x', 100) FROM range(1000000000000)"})
    req = post_request_bytes("main?format=ndjson", body)
    sock.sendall(req)
    sock.recv(4096)  # headers and the first bytes arrived: the stream is running
    assert_error(_wait_busy(s), 503, "OVERLOADED")
    sock.close()
    t_close = time.monotonic()
    ok = False
    while time.monotonic() - t_close < 1.5:
        r = s.query("main", "SELECT 1", timeout=5)
        if r.status_code == 200:
            ok = True
            break
        time.sleep(0.05)
    assert ok, "slot still held 1.5s after the streaming client hung up"
    assert s.alive()
    s.close()


def test_stalled_reader_is_dropped(make_server):
    """A client that stops reading a stream (without hanging up) is dropped after
    client_timeout_s without progress, and its query is interrupted: the slot frees up."""
    s = make_server(engines=1, slots=1, extra=["--query-log", "off", "--queue-len", "0",
                                                 "--timeout-ms", "60000",
                                               "--client-timeout-s", "2"])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", s.port))
    body = json.dumps({"sql": "SELECT range, repeat('x', 100) FROM range(1000000000000)"})
    sock.sendall(post_request_bytes("main?format=ndjson", body))
    sock.recv(1024)  # the stream started; from now on this client reads nothing
    assert_error(_wait_busy(s), 503, "OVERLOADED")
    t0 = time.monotonic()
    freed = None
    while time.monotonic() - t0 < 8.0:
        r = s.query("main", "SELECT 1", timeout=5)
        if r.status_code == 200:
            freed = time.monotonic() - t0
            break
        time.sleep(0.1)
    sock.close()
    assert freed is not None, "the stalled reader still held its slot after 8 s"
    assert freed >= 1.0, "dropped after %.2fs, before client_timeout_s" % freed
    assert s.alive()
    s.close()


def test_ndjson_timeout_mid_stream(server):
    """A deadline that strikes after the headers ends an NDJSON stream with an error line
    (code TIMEOUT) instead of an end line; before the headers it is a 504."""
    sql = "SELECT range FROM range(1000000000000) WHERE hash(range) % 100 = 0"
    t0 = time.monotonic()
    r = query_stream_checked(server, "main", sql, timeout_ms=1500, timeout=30)
    assert time.monotonic() - t0 < 1.5 + 2.0 + 1.5
    if r.status_code != 200:
        assert_error(r, 504, "TIMEOUT")
        return
    lines = [json.loads(x) for x in r.content.decode("utf-8").splitlines() if x.strip()]
    assert lines[0]["type"] == "meta"
    assert lines[-1]["type"] == "error" and lines[-1]["code"] == "TIMEOUT", lines[-1]
    assert not any(x["type"] == "end" for x in lines)
    assert assert_ok(server.query("main", "SELECT 1"))


def test_disconnect_while_queued_frees_queue_place(make_server):
    """A queued request whose client hung up gives its queue place back promptly: new requests
    are queued (and served once the slot frees) instead of refused with 503."""
    s = make_server(engines=1, slots=1, extra=["--queue-len", "2", "--timeout-ms", "3000"])
    hold = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    hold.sendall(post_request_bytes("main", json.dumps({"sql": ENDLESS_SQL})))
    time.sleep(0.3)
    dead = []
    for i in range(2):
        # Distinct SQL: identical requests would share one queue place (the result cache's
        # single-flight, docs/cache.md).
        c = socket.create_connection(("127.0.0.1", s.port), timeout=10)
        c.sendall(post_request_bytes("main", json.dumps({"sql": "SELECT %d" % (10 + i)})))
        dead.append(c)
    time.sleep(0.3)
    # Precondition: slot and queue are full.
    assert_error(s.query("main", "SELECT 1", timeout=10), 503, "OVERLOADED")
    for c in dead:
        c.close()
    time.sleep(1.0)
    outs = []
    ths = [threading.Thread(target=lambda: outs.append(s.query("main", "SELECT 2", timeout=20)),
                            daemon=True) for _ in range(2)]
    for th in ths:
        th.start()
    for th in ths:
        th.join(20)
    hold.close()
    codes = sorted(r.status_code for r in outs)
    assert codes == [200, 200], (
        "1 s after two queued clients hung up, new requests got %r (their queue places were "
        "still taken): %s" % (codes, [r.text[:120] for r in outs if r.status_code != 200]))
    assert s.alive()
    s.close()
