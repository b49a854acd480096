"""Request limits: each cap is tested at, one under and one over its value, and answered in JSON
with its code; connection limits (max_connections, header_timeout_s, connection_max_s) and a
slowloris run that must not slow a normal client down (docs/security.md)."""

import json
import os
import select
import signal
import socket
import threading
import time

import pytest

from dgserver import assert_error, assert_ok, raw_http

BODY_CAP = 4096
SQL_CAP = 1024
URL_CAP = 2048
HEADERS_CAP = 20
HEADER_BYTES_CAP = 4096


@pytest.fixture(scope="module")
def capped(make_server):
    s = make_server(dbs=("main",), engines=1, slots=2, extra=[
        "--max-body-bytes", BODY_CAP, "--max-sql-bytes", SQL_CAP, "--max-url-bytes", URL_CAP,
        "--max-headers", HEADERS_CAP, "--max-header-bytes", HEADER_BYTES_CAP])
    yield s
    assert s.alive()
    s.close()


def raw(server, req):
    status, hdrs, body = raw_http(server.port, req)
    return status, hdrs, body


def json_code(hdrs, body):
    assert "json" in hdrs.get("content-type", ""), body[:200]
    return json.loads(body)["error"]["code"]


@pytest.mark.parametrize("delta", [-1, 0, 1])
def test_body_cap(capped, delta):
    base = b'{"sql":"SELECT 1"}'
    body = base + b" " * (BODY_CAP + delta - len(base))
    assert len(body) == BODY_CAP + delta
    r = capped.post("/api/query/main", data=body, headers={"Content-Type": "application/json"})
    if delta <= 0:
        assert assert_ok(r)["rows"] == [[1]]
    else:
        assert_error(r, 413, "BODY_TOO_LARGE")


@pytest.mark.parametrize("delta", [-1, 0, 1])
def test_sql_cap(capped, delta):
    sql = "SELECT 1" + " " * (SQL_CAP + delta - len("SELECT 1"))
    r = capped.query("main", sql)
    if delta <= 0:
        assert assert_ok(r)["rows"] == [[1]]
    else:
        assert_error(r, 413, "SQL_TOO_LARGE")


@pytest.mark.parametrize("delta", [-1, 0, 1])
def test_url_cap(capped, delta):
    prefix = "/health?pad="
    target = prefix + "a" * (URL_CAP + delta - len(prefix))
    assert len(target) == URL_CAP + delta
    status, hdrs, body = raw(capped, ("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                                      % target).encode())
    if delta <= 0:
        assert status == 200, body[:200]
    else:
        assert status == 414 and json_code(hdrs, body) == "URI_TOO_LONG", (status, body[:200])


@pytest.mark.parametrize("delta", [-1, 0, 1])
def test_header_count_cap(capped, delta):
    n = HEADERS_CAP + delta
    lines = ["Host: x", "Connection: close"] + ["X-H%d: v" % i for i in range(n - 2)]
    status, hdrs, body = raw(capped, ("GET /health HTTP/1.1\r\n%s\r\n\r\n"
                                      % "\r\n".join(lines)).encode())
    if delta <= 0:
        assert status == 200, body[:200]
    else:
        assert status == 431 and json_code(hdrs, body) == "HEADERS_TOO_LARGE", (status, body[:200])
        assert b"header fields" in body


@pytest.mark.parametrize("delta", [-1, 0, 1])
def test_header_bytes_cap(capped, delta):
    # Counted as name + value + 4 per field (": " and CRLF).
    fixed = len("Host") + len("x") + 4 + len("Connection") + len("close") + 4
    pad = HEADER_BYTES_CAP + delta - fixed - len("X-Pad") - 4
    status, hdrs, body = raw(capped, ("GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                      "X-Pad: %s\r\n\r\n" % ("p" * pad)).encode())
    if delta <= 0:
        assert status == 200, body[:200]
    else:
        assert status == 431 and json_code(hdrs, body) == "HEADERS_TOO_LARGE", (status, body[:200])


def test_limits_keep_server_usable(capped):
    assert assert_ok(capped.query("main", "SELECT 42"))["rows"] == [[42]]


def closed_within(sock, timeout):
    """True when the peer closes (EOF or reset) within timeout seconds, without answering."""
    sock.settimeout(timeout)
    try:
        data = sock.recv(4096)
    except socket.timeout:
        return False
    except OSError:
        return True
    return data == b""


def test_max_connections(make_server):
    cap = 8
    s = make_server(dbs=("main",), engines=1, slots=1, extra=["--max-connections", cap])
    s.session.close()
    time.sleep(0.5)
    held = [socket.create_connection(("127.0.0.1", s.port), timeout=5) for _ in range(cap)]
    try:
        # Each of them is served (the server accepted them all).
        time.sleep(0.5)
        over = socket.create_connection(("127.0.0.1", s.port), timeout=5)
        over.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        t0 = time.monotonic()
        assert closed_within(over, 3.0), "a connection over max_connections was not refused"
        assert time.monotonic() - t0 < 2.0
        over.close()
        # One held connection still works.
        held[0].sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        held[0].settimeout(5)
        assert held[0].recv(4096).startswith(b"HTTP/1.1 200")
    finally:
        for h in held:
            h.close()
    # Once connections close, new ones are served again.
    deadline = time.monotonic() + 5
    while True:
        try:
            r = raw_http(s.port, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                         timeout=2)
            if r[0] == 200:
                break
        except OSError:
            pass
        assert time.monotonic() < deadline, "not served after connections were released"
        time.sleep(0.1)
    assert s.alive()
    s.close()


def test_header_timeout_and_connection_age(make_server):
    s = make_server(dbs=("main",), engines=1, slots=1,
                    extra=["--header-timeout-s", 2, "--connection-max-s", 3])
    # A head trickling in is dropped after header_timeout_s, although bytes keep arriving.
    slow = socket.create_connection(("127.0.0.1", s.port), timeout=5)
    t0 = time.monotonic()
    slow.sendall(b"GET /health HTTP/1.1\r\n")
    closed = False
    while time.monotonic() - t0 < 6:
        try:
            slow.sendall(b"X")
        except OSError:
            closed = True
            break
        r, _, _ = select.select([slow], [], [], 0.3)
        if r:
            try:
                data = slow.recv(4096)
            except OSError:
                data = b""
            assert not data.startswith(b"HTTP/1.1 2"), data[:100]
            if not data:
                closed = True
                break
    elapsed = time.monotonic() - t0
    slow.close()
    assert closed and 1.5 < elapsed < 2 + 1.5, elapsed
    # A kept-alive connection answers normally, then with `Connection: close` once it is older
    # than connection_max_s (a head in progress keeps the watchdog off it).
    ka = socket.create_connection(("127.0.0.1", s.port), timeout=5)
    t0 = time.monotonic()
    ka.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    first = ka.recv(4096)
    assert first.startswith(b"HTTP/1.1 200") and b"close" not in first.lower(), first
    time.sleep(2.4 - (time.monotonic() - t0))
    ka.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
    time.sleep(1.0)
    ka.sendall(b"\r\n")
    second = ka.recv(4096)
    assert second.startswith(b"HTTP/1.1 200"), second
    assert b"connection: close" in second.lower(), second
    assert closed_within(ka, 3.0)
    ka.close()
    # An idle connection older than connection_max_s is closed by the server.
    idle = socket.create_connection(("127.0.0.1", s.port), timeout=5)
    idle.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    idle.settimeout(5)
    assert idle.recv(4096).startswith(b"HTTP/1.1 200")
    t0 = time.monotonic()
    assert closed_within(idle, 6.0), "an idle old connection was not closed"
    assert time.monotonic() - t0 < 4.5
    idle.close()
    assert s.alive()
    s.close()


def test_stalled_server_keeps_waiting_requests(make_server):
    """Time the server process did not run (a starved or paused machine) does not count against
    clients: requests that arrived while it was stopped are answered, not closed as late heads."""
    s = make_server(dbs=("main",), engines=1, slots=1, extra=["--header-timeout-s", 1])
    conns = [socket.create_connection(("127.0.0.1", s.port), timeout=10) for _ in range(4)]
    time.sleep(0.5)  # accepted: their head deadlines are running
    os.kill(s.proc.pid, signal.SIGSTOP)
    try:
        for c in conns:
            c.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        time.sleep(2.5)
    finally:
        os.kill(s.proc.pid, signal.SIGCONT)
    for c in conns:
        data = c.recv(4096)
        assert data.startswith(b"HTTP/1.1 200"), data[:100]
        c.close()
    assert "connection deadlines moved" in s.log()
    assert s.alive()
    s.close()


def test_slowloris(make_server):
    """500 connections trickling a request head do not slow a normal client down, and the
    server closes them within header_timeout_s + slack."""
    header_timeout = 3
    n_slow = 500
    s = make_server(dbs=("main",), engines=1, slots=2,
                    extra=["--header-timeout-s", header_timeout, "--access-log", "off"])
    # Baseline latency of the normal client.
    for _ in range(5):
        assert_ok(s.query("main", "SELECT 1"))
    slow, opened = [], []
    head = b"GET /api/query/main?sql=SELECT%201 HTTP/1.1\r\nHost: x\r\nX-Slow: "
    for _ in range(n_slow):
        c = socket.create_connection(("127.0.0.1", s.port), timeout=5)
        c.setblocking(False)
        c.send(head[:1])
        slow.append(c)
        opened.append(time.monotonic())
    latencies, failures = [], []
    stop = threading.Event()

    def normal_client():
        while not stop.is_set():
            t = time.monotonic()
            try:
                r = s.query("main", "SELECT 1", timeout=10)
                if r.status_code != 200:
                    failures.append(r.status_code)
            except Exception as ex:  # noqa: BLE001
                failures.append(repr(ex))
            latencies.append(time.monotonic() - t)
            time.sleep(0.02)

    th = threading.Thread(target=normal_client)
    th.start()
    closed_at = {}
    sent = [1] * n_slow
    deadline = time.monotonic() + header_timeout + 6
    try:
        while len(closed_at) < n_slow and time.monotonic() < deadline:
            tick = time.monotonic()
            for i, c in enumerate(slow):
                if i in closed_at:
                    continue
                try:
                    c.send(head[sent[i]:sent[i] + 1] if sent[i] < len(head) else b"a")
                    sent[i] += 1
                except BlockingIOError:
                    pass
                except OSError:
                    closed_at[i] = time.monotonic()
            # Watch for closes for about a second, then send the next byte.
            while time.monotonic() - tick < 1.0 and len(closed_at) < n_slow:
                live = [c for i, c in enumerate(slow) if i not in closed_at]
                r, _, _ = select.select(live, [], [], 0.1)
                for c in r:
                    i = slow.index(c)
                    try:
                        data = c.recv(4096)
                    except OSError:
                        data = b""
                    assert not data, "a slow head got an answer: %r" % data[:100]
                    closed_at[i] = time.monotonic()
    finally:
        stop.set()
        th.join()
        for c in slow:
            c.close()
    assert len(closed_at) == n_slow, "%d slow connections still open" % (n_slow - len(closed_at))
    late = [closed_at[i] - opened[i] for i in closed_at]
    assert max(late) < header_timeout + 3.0, max(late)
    assert min(late) > header_timeout - 0.5, min(late)
    assert not failures, failures[:5]
    assert len(latencies) >= 10
    lat = sorted(latencies)
    p95 = lat[int(0.95 * (len(lat) - 1))]
    assert p95 < 0.5, "p95 %.3fs over %d requests" % (p95, len(lat))
    assert s.alive()
    s.close()
