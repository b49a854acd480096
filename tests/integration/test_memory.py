"""Constant memory: streaming 10M rows must not grow the front's or the engines' resident memory
by more than 64 MB over a 100k-row stream of the same query (a memory bound, not a timing).
Skipped under AddressSanitizer, whose quarantine and shadow memory make RSS meaningless."""

import json
import threading
import time

import pytest
import requests

from dgserver import is_asan

LIMIT = 64 * 1024 * 1024
SQL = "SELECT i, i * 2 AS j, 'row ' || i AS s FROM range(%d) r(i)"


def rss(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def total_rss(server):
    return rss(server.proc.pid) + sum(rss(p) for p in server.engine_pids())


def stream(server, n, fmt, coding):
    """Streams the query, discarding bytes, while sampling RSS; returns (bytes, peak RSS)."""
    peak = [total_rss(server)]
    done = threading.Event()

    def sample():
        while not done.wait(0.05):
            try:
                peak[0] = max(peak[0], total_rss(server))
            except OSError:
                pass
    th = threading.Thread(target=sample, daemon=True)
    th.start()
    r = requests.post(server.url("/api/query/main?format=" + fmt),
                      data=json.dumps({"sql": SQL % n, "timeout_ms": 300000}),
                      headers={"Content-Type": "application/json", "Accept-Encoding": coding},
                      stream=True, timeout=600)
    size = 0
    tail = b""
    for chunk in r.raw.stream(65536, decode_content=False):
        size += len(chunk)
        tail = (tail + chunk)[-4096:]
    done.set()
    th.join()
    assert r.status_code == 200
    return size, peak[0], tail


@pytest.mark.parametrize("fmt,coding", [("ndjson", ""), ("csv", "zstd")])
def test_stream_memory_is_constant(make_server, binary, fmt, coding):
    if is_asan(binary):
        pytest.skip("RSS is not meaningful under AddressSanitizer")
    s = make_server(engines=1, slots=1)
    stream(s, 100_000, fmt, coding)          # warm up: buffers, caches, DuckDB's pool
    base = total_rss(s)
    size, peak, tail = stream(s, 10_000_000, fmt, coding)
    assert size > 10_000_000 * (1 if coding else 10)
    if fmt == "ndjson":
        assert b'"type":"end","rows":10000000' in tail
    growth = peak - base
    assert growth < LIMIT, "RSS grew by %.1f MB while streaming 10M rows" % (growth / 2**20)
    s.close()
