"""Access log line shapes (text, json, Apache/NCSA combined) and the request id rules: a client's
X-Request-Id is believed only from a trusted proxy (docs/observability.md "Access log")."""

import json
import os
import re
import time

import pytest

from dgserver import add_key

# host ident authuser [date] "request" status bytes "referer" "user-agent" "request id"
COMBINED = re.compile(
    r'^(?P<host>\S+) - (?P<user>\S+) \[(?P<day>\d{2})/(?P<mon>[A-Z][a-z]{2})/(?P<year>\d{4}):'
    r'(?P<hms>\d{2}:\d{2}:\d{2}) \+0000\] "(?P<method>[A-Z]+) (?P<path>\S+) (?P<ver>HTTP/1\.[01])"'
    r' (?P<status>\d{3}) (?P<bytes>\d+|-) "(?P<ref>[^"]*)" "(?P<ua>[^"]*)" "(?P<rid>[A-Za-z0-9._-]+)"$')
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def read_lines(path, n, timeout=10.0):
    """The access log's lines once it holds at least n (lines are written when a request ends),
    without those of the harness's start-up /ready polls."""
    end = time.monotonic() + timeout
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        lines = [ln for ln in lines if "/ready" not in ln]
        if len(lines) >= n or time.monotonic() > end:
            return lines
        time.sleep(0.05)


def serve_logged(make_server, tmp_path, fmt, extra=()):
    log = tmp_path / ("access-%s.log" % fmt)
    s = make_server(dbs=("main",), engines=1, slots=1,
                    extra=["--access-log", fmt, "--access-log-file", str(log)] + list(extra))
    return s, log


def test_combined_line_shape(make_server, tmp_path):
    s, log = serve_logged(make_server, tmp_path, "combined")
    ident = {"Accept-Encoding": "identity"}  # the bytes field counts what was sent
    r1 = s.get("/health", headers=dict(ident, **{
        "Referer": "https://app.example/page?token=SECRETTOKEN",
        "User-Agent": 'probe/1.0 "quoted"\\'}))
    r2 = s.get("/api/query/main", headers=ident,
               params={"sql": "SELECT ? AS secret", "params": json.dumps(["hunter2"])})
    r3 = s.get("/nope", headers=dict(ident, Authorization="Bearer TOPSECRET"))
    r4 = s.query("main", "SELECT 1", fmt="ndjson", headers=ident)
    lines = read_lines(log, 4)
    s.close()
    assert len(lines) == 4, lines
    text = "\n".join(lines)
    for secret in ("SECRETTOKEN", "hunter2", "TOPSECRET", "sql", "SELECT"):
        assert secret not in text, text
    m = [COMBINED.match(ln) for ln in lines]
    assert all(m), lines
    h, q, nf, post = m
    # /health: the bytes are the body's, the referer lost its query, quotes cannot break out.
    assert h["host"] == "127.0.0.1" and h["user"] == "-" and h["method"] == "GET"
    assert h["path"] == "/health" and h["ver"] == "HTTP/1.1" and h["status"] == "200"
    assert int(h["bytes"]) == len(r1.content) and h["rid"] == r1.headers["X-Request-Id"]
    assert h["ref"] == "https://app.example/page" and h["ua"] == "probe/1.0 ?quoted??"
    assert h["mon"] in MONTHS and 1 <= int(h["day"]) <= 31
    now = time.gmtime()
    assert int(h["year"]) == now.tm_year
    assert q["path"] == "/api/query/main" and q["status"] == "200" and q["ref"] == "-"
    assert q["rid"] == r2.headers["X-Request-Id"] and int(q["bytes"]) == len(r2.content)
    assert nf["status"] == "404" and nf["path"] == "/nope" and int(nf["bytes"]) == len(r3.content)
    # A streamed (chunked) body counts its payload bytes.
    assert post["method"] == "POST" and post["status"] == "200"
    assert int(post["bytes"]) == len(r4.content)


def test_combined_authuser_is_the_key_id(make_server, tmp_path, binary):
    keys = tmp_path / "keys.json"
    key = add_key(binary, str(keys), "analyst", "--name", "ana")
    s, log = serve_logged(make_server, tmp_path, "combined",
                          ["--auth", "on", "--keys-file", str(keys)])
    r = s.query("main", "SELECT 1", headers={"X-API-Key": key})
    assert r.status_code == 200, r.text
    lines = read_lines(log, 1)
    s.close()
    m = COMBINED.match(lines[0])
    assert m and m["user"].startswith("key:") and m["user"] != "key:", lines
    assert key not in lines[0] and key[4:] not in lines[0]


@pytest.mark.parametrize("fmt", ["text", "json", "combined"])
def test_each_format_one_line_per_request(make_server, tmp_path, fmt):
    s, log = serve_logged(make_server, tmp_path, fmt)
    ids = [s.get("/health").headers["X-Request-Id"] for _ in range(3)]
    ids.append(s.get("/api/query/main", params={"sql": "SELEC 1"}).headers["X-Request-Id"])
    lines = read_lines(log, 4)
    s.close()
    assert len(lines) == 4, lines
    for ln, rid in zip(lines, ids):
        if fmt == "text":
            assert re.fullmatch(r"\S+Z info access req=%s (GET) (/\S*) status=(\d{3}) ms=[0-9.]+"
                                r" route=\S+( aborted=1)?" % rid, ln), ln
        elif fmt == "json":
            d = json.loads(ln)
            assert set(d) == {"ts", "request_id", "method", "path", "route", "status",
                              "duration_ms", "aborted"}, d
            assert d["request_id"] == rid
        else:
            m = COMBINED.match(ln)
            assert m and m["rid"] == rid, ln
    assert (" status=400 " in lines[3]) or ('"status":400' in lines[3]) or (" 400 " in lines[3])


def test_request_id_believed_only_from_trusted_proxies(make_server):
    rid = "trace-77.A_b"
    # 127.0.0.1 is not a trusted proxy: the client's id is replaced by a generated one.
    s = make_server(dbs=("main",), engines=1, slots=1,
                    extra=["--trust-request-id", "1", "--trusted-proxies", "10.0.0.0/8, ::1/128"])
    r = s.get("/health", headers={"X-Request-Id": rid})
    assert r.headers["X-Request-Id"] != rid
    assert re.fullmatch(r"[0-9a-f]{16}", r.headers["X-Request-Id"])
    s.close()
    # The peer is a trusted proxy: its id is kept (and still validated).
    s = make_server(dbs=("main",), engines=1, slots=1,
                    extra=["--trust-request-id", "1", "--trusted-proxies", "127.0.0.1/32"])
    assert s.get("/health", headers={"X-Request-Id": rid}).headers["X-Request-Id"] == rid
    r = s.query("main", "SELECT 1", headers={"X-Request-Id": rid})
    assert r.headers["X-Request-Id"] == rid and r.headers["X-Query-Id"] == rid
    bad = s.get("/health", headers={"X-Request-Id": "has space"}).headers["X-Request-Id"]
    assert re.fullmatch(r"[0-9a-f]{16}", bad)
    s.close()
    # A trusted peer, but trust_request_id off: always generated.
    s = make_server(dbs=("main",), engines=1, slots=1, extra=["--trusted-proxies", "127.0.0.1/32"])
    assert s.get("/health", headers={"X-Request-Id": rid}).headers["X-Request-Id"] != rid
    s.close()


def test_timed_out_request_is_logged_408(make_server, tmp_path):
    import socket
    s, log = serve_logged(make_server, tmp_path, "combined", ["--request-timeout-s", 1])
    c = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    c.sendall(b"POST /api/query/main HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: 100\r\n\r\n{")
    data = b""
    while True:
        try:
            chunk = c.recv(4096)
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    c.close()
    assert data.startswith(b"HTTP/1.1 408 "), data[:200]
    rid = re.search(rb"X-Request-Id: (\S+)", data).group(1).decode()
    lines = read_lines(log, 1)
    s.close()
    m = COMBINED.match(lines[0])
    assert m and m["status"] == "408" and m["rid"] == rid and m["method"] == "POST", lines
    assert os.path.getsize(str(log)) > 0
