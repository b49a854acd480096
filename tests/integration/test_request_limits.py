"""Request limits: each cap is tested at, one under and one over its value, and answered in JSON
with its code; connection limits (max_connections, header_timeout_s, request_timeout_s,
connection_max_s, slow response readers) and a slowloris run that must not slow a normal client
down (docs/security.md)."""

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
        assert status == 431 and json_code(hdrs, body) == "TOO_MANY_HEADERS", (status, body[:200])
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


def read_timeout_answer(sock, timeout):
    """Reads until EOF (or reset) within timeout; returns (status, headers, body) of the answer
    found, or None when the peer closed without one."""
    sock.settimeout(timeout)
    data = b""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            chunk = sock.recv(65536)
        except (socket.timeout, OSError):
            break
        if not chunk:
            break
        data += chunk
    if not data:
        return None
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    hdrs = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    return int(lines[0].split()[1]), hdrs, body


def assert_408(answer, what):
    assert answer is not None, "closed without an answer"
    status, hdrs, body = answer
    assert status == 408, (status, body[:200])
    assert "json" in hdrs.get("content-type", "")
    assert hdrs.get("connection", "").lower() == "close"
    assert len(body) == int(hdrs["content-length"])
    err = json.loads(body)["error"]
    assert err["code"] == "REQUEST_TIMEOUT" and what in err["message"], err
    assert hdrs.get("x-request-id")


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
        # One more: its request is answered 503 TOO_MANY_CONNECTIONS and the connection ends.
        t0 = time.monotonic()
        status, hdrs, body = raw_http(s.port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
                                      timeout=5)
        assert time.monotonic() - t0 < 3.0
        assert status == 503, (status, body)
        err = json.loads(body)["error"]
        assert err["code"] == "TOO_MANY_CONNECTIONS" and str(cap) in err["message"], err
        assert hdrs.get("connection", "").lower() == "close" and hdrs.get("retry-after") == "1"
        # Past the headroom (max_connections / 8, at least 8) libmicrohttpd closes unanswered;
        # the held connections are all still served below.
        extra = [socket.create_connection(("127.0.0.1", s.port), timeout=5) for _ in range(8)]
        over = socket.create_connection(("127.0.0.1", s.port), timeout=5)
        over.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert closed_within(over, 3.0), "a connection past the headroom was not closed"
        over.close()
        for e in extra:
            e.close()
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
    answer = None
    while time.monotonic() - t0 < 6:
        try:
            slow.sendall(b"X")
        except OSError:
            break
        r, _, _ = select.select([slow], [], [], 0.3)
        if r:
            answer = read_timeout_answer(slow, 3)
            break
    elapsed = time.monotonic() - t0
    slow.close()
    assert 1.5 < elapsed < 2 + 1.5, elapsed
    assert_408(answer, "request head")
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


def test_slow_post_request_timeout(make_server):
    """A body trickled a byte at a time (each byte well inside the idle timeout) is cut off
    with 408 REQUEST_TIMEOUT once the whole request is older than request_timeout_s, while a
    normal client keeps getting answers; a body that arrives in time is served."""
    request_timeout = 3
    s = make_server(dbs=("main",), engines=1, slots=1,
                    extra=["--request-timeout-s", request_timeout, "--header-timeout-s", 2,
                           "--client-timeout-s", 30])
    body = b'{"sql":"SELECT 7"}' + b" " * 200
    head = ("POST /api/query/main HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Content-Length: %d\r\n\r\n" % len(body)).encode()
    normal, stop = [], threading.Event()

    def normal_client():
        while not stop.is_set():
            try:
                normal.append(s.query("main", "SELECT 1", timeout=10).status_code)
            except Exception as ex:  # noqa: BLE001
                normal.append(repr(ex))
            time.sleep(0.05)

    th = threading.Thread(target=normal_client)
    slow = socket.create_connection(("127.0.0.1", s.port), timeout=5)
    t0 = time.monotonic()
    slow.sendall(head)  # the head is in at once: header_timeout_s does not apply
    th.start()
    sent, answer = 0, None
    try:
        while time.monotonic() - t0 < request_timeout + 8 and sent < len(body) - 1:
            try:
                slow.sendall(body[sent:sent + 1])
                sent += 1
            except OSError:
                answer = read_timeout_answer(slow, 3)  # closed after its answer
                break
            r, _, _ = select.select([slow], [], [], 0.25)
            if r:
                answer = read_timeout_answer(slow, 3)
                break
        elapsed = time.monotonic() - t0
    finally:
        stop.set()
        th.join()
        slow.close()
    assert_408(answer, "request (head and body)")
    # Generous on a loaded machine; a byte every 0.25 s would take 50 s to finish the body.
    assert request_timeout - 0.5 < elapsed < request_timeout + 6, elapsed
    assert sent < len(body) - 1, "the whole body went in"
    assert normal and all(st == 200 for st in normal), normal
    # The cut request is logged as a 408.
    end = time.monotonic() + 5
    while "status=408" not in s.log() and time.monotonic() < end:
        time.sleep(0.05)
    assert "POST /api/query/main status=408" in s.log()
    # A body sent slowly but within the deadline is answered normally.
    ok = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    ok.sendall(head.replace(b"Host: x\r\n", b"Host: x\r\nConnection: close\r\n"))
    for i in range(0, len(body), 50):
        time.sleep(0.2)
        ok.sendall(body[i:i + 50])
    status, hdrs, resp = read_timeout_answer(ok, 10)
    ok.close()
    assert status == 200 and b'"rows":[[7]]' in resp, resp[:200]
    assert s.alive()
    s.close()


def test_slow_response_reader_is_cut(make_server):
    """A client that stops taking a streamed response, or takes it a trickle at a time, is cut
    off (reset) once client_timeout_s pass without the server getting a block out, and the engine
    slot its query held serves the next query (one slot and a long query deadline: only the cut
    can free it)."""
    client_timeout = 2
    s = make_server(dbs=("main",), engines=1, slots=1,
                    extra=["--client-timeout-s", client_timeout, "--timeout-ms", 600000,
                           "--queue-timeout-ms", 60000])
    req = ("GET /api/query/main?format=csv&sql=SELECT%20i%2C%20i%2A2%20AS%20j%20FROM%20"
           "range%281000000000%29%20t%28i%29 HTTP/1.1\r\nHost: x\r\n\r\n").encode()
    for mode in ("stalled", "trickle"):
        c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        c.connect(("127.0.0.1", s.port))
        c.sendall(req)
        c.settimeout(10)
        first = c.recv(4096)
        assert first.startswith(b"HTTP/1.1 200"), first[:200]
        t0 = time.monotonic()
        if mode == "stalled":
            # The next query needs the slot the stalled stream holds: answered after the cut.
            r = s.query("main", "SELECT 42", timeout=45)
            waited = time.monotonic() - t0
            assert r.status_code == 200 and r.json()["rows"] == [[42]], r.text[:200]
            assert client_timeout - 0.5 < waited < client_timeout + 10, waited
        got, cut = len(first), False
        while time.monotonic() - t0 < 30:
            time.sleep(0.1)
            try:
                chunk = c.recv(512)
            except OSError:
                cut = True
                break
            if not chunk:
                cut = True
                break
            got += len(chunk)
        elapsed = time.monotonic() - t0
        c.close()
        assert cut, "%s reader never cut (%d bytes taken)" % (mode, got)
        assert elapsed < client_timeout + 10, (mode, elapsed)
        assert got < 10 * 1024 * 1024, got  # cut, not finished
        if mode == "trickle":
            t1 = time.monotonic()
            r = s.query("main", "SELECT 43", timeout=45)
            assert r.status_code == 200 and r.json()["rows"] == [[43]], r.text[:200]
            assert time.monotonic() - t1 < 10
    assert "cutting connection" in s.log()
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


def p95(samples):
    lat = sorted(samples)
    return lat[int(0.95 * (len(lat) - 1))]


def test_slowloris(make_server):
    """500 connections trickling a request head do not slow a normal client down (its p95
    latency stays within a generous factor of its own baseline, measured just before), and the
    server answers them 408 and closes them within header_timeout_s + slack."""
    header_timeout = 3
    n_slow = 500
    s = make_server(dbs=("main",), engines=1, slots=2,
                    extra=["--header-timeout-s", header_timeout, "--access-log", "off"])
    # Baseline latency of the normal client, the same loop as during the attack.
    for _ in range(5):
        assert_ok(s.query("main", "SELECT 1"))  # warm-up (connections, engine)
    baseline = []
    for _ in range(40):
        t = time.monotonic()
        assert_ok(s.query("main", "SELECT 1", timeout=10))
        baseline.append(time.monotonic() - t)
        time.sleep(0.02)
    base_p95 = p95(baseline)
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
                    assert not data or data.startswith(b"HTTP/1.1 408 "), \
                        "a slow head got an answer: %r" % data[:100]
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
    # Generous for a loaded 2-core machine, yet a server whose threads the slow connections
    # held (a normal request waiting for a head deadline) would be seconds late.
    bound = max(10 * base_p95, base_p95 + 0.2)
    assert p95(latencies) <= bound, "p95 %.3fs over %d requests; baseline p95 %.3fs" % (
        p95(latencies), len(latencies), base_p95)
    assert s.alive()
    s.close()
