"""Per-client rate limits (docs/security.md "Rate limits"): the burst and sustained buckets, the
429 RATE_LIMITED answer with Retry-After and RateLimit-* headers, recovery, unlimited health and
metrics routes, the duckgate_rate_limited_total counter, and forwarded headers believed only
from trusted proxies. Every request comes from 127.0.0.1, so one server trusts it as a proxy
and another does not."""

import re
import time

import pytest

import dgserver
from dgserver import assert_error, assert_ok

RL = ["--rate-limit", "on"]


def metric(server, name):
    text = server.get("/metrics").text
    m = re.search(r"^%s (\S+)$" % re.escape(name), text, re.M)
    assert m, "no %s in /metrics" % name
    return float(m.group(1))


def ok(resp):
    assert resp.status_code == 200, "expected 200, got %d: %s" % (resp.status_code,
                                                                 resp.text[:300])
    assert "databases" in resp.json()


def dbs(server, xff=None, header="X-Forwarded-For"):
    return server.get("/api/databases", headers={header: xff} if xff else None)


def test_burst_then_429_and_recovery(make_server):
    s = make_server(extra=RL + ["--rate-burst-per-s", "5", "--rate-per-min", "1000"])
    before = metric(s, "duckgate_rate_limited_total")
    # 5 tokens, refilled at 5/s: the first refusal comes after 5 requests (6 or 7 on a slow
    # machine, where some refill happens while they run).
    for n in range(20):
        r = dbs(s)
        if r.status_code != 200:
            break
    assert 5 <= n <= 7, n
    assert_error(r, 429, "RATE_LIMITED")
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.headers["Retry-After"] == "1"
    assert r.headers["RateLimit-Limit"] == "5"
    assert r.headers["RateLimit-Remaining"] == "0"
    assert 1 <= int(r.headers["RateLimit-Reset"]) <= 1
    assert r.headers["RateLimit-Policy"] == "5;w=1, 1000;w=60"
    # The query route is limited by the same bucket.
    assert_error(s.query("main", "SELECT 1"), 429, "RATE_LIMITED")
    # Health, readiness and metrics are never limited.
    for _ in range(10):
        assert s.get("/health").status_code == 200
        assert s.get("/ready").status_code == 200
    assert metric(s, "duckgate_rate_limited_total") >= before + 2
    # Recovery: after Retry-After seconds a token is back.
    time.sleep(int(r.headers["Retry-After"]) + 0.1)
    ok(dbs(s))
    assert_ok(s.query("main", "SELECT 1"))


def test_sustained_limit_retry_after(make_server):
    s = make_server(extra=RL + ["--rate-burst-per-s", "100", "--rate-per-min", "3"])
    for _ in range(3):
        ok(dbs(s))
    r = dbs(s)
    assert_error(r, 429, "RATE_LIMITED")
    # 3 per minute: one token every 20 s.
    assert 19 <= int(r.headers["Retry-After"]) <= 20
    assert r.headers["RateLimit-Limit"] == "3"
    assert r.headers["RateLimit-Remaining"] == "0"
    assert 55 <= int(r.headers["RateLimit-Reset"]) <= 60


def test_off_by_flag(make_server):
    s = make_server(extra=["--rate-limit", "off", "--rate-burst-per-s", "1"])
    for _ in range(10):
        ok(dbs(s))


def test_untrusted_peer_cannot_spoof(make_server):
    s = make_server(extra=RL + ["--rate-burst-per-s", "100", "--rate-per-min", "3"])
    for i in range(3):
        ok(dbs(s, xff="198.51.100.%d" % i))
    # A fresh X-Forwarded-For per request changes nothing: the peer is 127.0.0.1.
    for i in range(3):
        assert_error(dbs(s, xff="203.0.113.%d" % i), 429, "RATE_LIMITED")
    assert_error(dbs(s), 429, "RATE_LIMITED")


def test_trusted_proxy_forwarded_for(make_server):
    s = make_server(extra=RL + ["--rate-burst-per-s", "100", "--rate-per-min", "3",
                                "--trusted-proxies", "10.0.0.0/8, 127.0.0.1/32,::1"])
    for _ in range(3):
        ok(dbs(s, xff="198.51.100.1"))
    assert_error(dbs(s, xff="198.51.100.1"), 429, "RATE_LIMITED")
    # A spoofed left part does not help: the right-most untrusted address is the client.
    assert_error(dbs(s, xff="1.2.3.4, 198.51.100.1"), 429, "RATE_LIMITED")
    # Trusted hops on the right are skipped.
    assert_error(dbs(s, xff="198.51.100.1, 10.0.0.7"), 429, "RATE_LIMITED")
    # Another client behind the proxy has its own bucket.
    ok(dbs(s, xff="198.51.100.2"))
    ok(dbs(s, xff="[2001:db8::1]:443"))
    # The proxy itself, without a header, is a client of its own.
    for _ in range(3):
        ok(dbs(s))
    assert_error(dbs(s), 429, "RATE_LIMITED")


def test_repeated_forwarded_headers(make_server):
    """Every X-Forwarded-For line counts, in order: a client cannot hide behind its own first
    header line when the proxy adds another."""
    s = make_server(extra=RL + ["--rate-burst-per-s", "100", "--rate-per-min", "2",
                                "--trusted-proxies", "127.0.0.1/32"])
    req = ("GET /api/databases HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 6.6.6.%d\r\n"
           "X-Forwarded-For: 198.51.100.9\r\nConnection: close\r\n\r\n")
    codes = []
    for i in range(3):
        status, _, _ = dgserver.raw_http(s.port, (req % i).encode())
        codes.append(status)
    assert codes == [200, 200, 429], codes


def test_custom_forwarded_header(make_server):
    s = make_server(extra=RL + ["--rate-burst-per-s", "100", "--rate-per-min", "2",
                                "--trusted-proxies", "127.0.0.1/32",
                                "--forwarded-header", "X-Original-Client-IP"])
    h = "X-Original-Client-IP"
    ok(dbs(s, xff="192.0.2.1", header=h))
    ok(dbs(s, xff="192.0.2.1", header=h))
    assert_error(dbs(s, xff="192.0.2.1", header=h), 429, "RATE_LIMITED")
    ok(dbs(s, xff="192.0.2.2", header=h))
    # X-Forwarded-For is not the configured header: it is ignored (the peer is the client).
    ok(dbs(s, xff="192.0.2.1"))


@pytest.mark.parametrize("flags", [
    ["--trusted-proxies", "10.0.0.1/8"],
    ["--trusted-proxies", "not-an-ip"],
    ["--rate-limit", "maybe"],
    ["--rate-burst-per-s", "0"],
])
def test_bad_settings_refuse_to_start(make_server, flags):
    s = make_server(extra=RL + flags, start=False)
    with pytest.raises(dgserver.ServerError):
        s.start()
    assert s.proc.returncode == 2
