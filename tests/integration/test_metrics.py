"""Observability: GET /metrics (exact counter deltas), request ids, the access log, the separate
metrics listener, and a real Prometheus (Debian's `prometheus` package) scraping duckgate every
second and answering PromQL about known traffic. Also checks the shipped alert rules with
promtool and that every metric the alerts and the Grafana dashboard reference is exposed.

Prometheus runs on loopback with its own temp config and data dir and is killed by pid."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest
import requests

import dgserver
from dgserver import ENDLESS_SQL, assert_error, assert_ok

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ALERTS = os.path.join(ROOT, "deploy", "prometheus", "alerts.yml")
DASHBOARD = os.path.join(ROOT, "deploy", "grafana", "duckgate.json")
SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
# Metrics Prometheus itself provides (not in duckgate's exposition).
PROMETHEUS_OWN = {"up"}


def tool(name):
    """Path of a Prometheus binary; fails in CI (CI=true) and skips elsewhere when missing."""
    path = shutil.which(name) or ("/usr/bin/" + name if os.path.exists("/usr/bin/" + name)
                                  else None)
    if path is None:
        msg = ("%s not found: install Debian's `prometheus` package (tools/setup.sh lists it)"
               % name)
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)
    return path


def parse_metrics(text):
    """Exposition text -> ({(name, frozenset(labels)): value}, {family: type})."""
    samples, types = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ", 3)
            types[name] = typ
            continue
        if not line or line.startswith("#"):
            continue
        m = SAMPLE_RE.match(line)
        assert m, "malformed sample line: %r" % line
        labels = frozenset(LABEL_RE.findall(m.group(3) or ""))
        samples[(m.group(1), labels)] = float(m.group(4))
    return samples, types


def scrape(server_or_url):
    url = server_or_url if isinstance(server_or_url, str) else server_or_url.url("/metrics")
    r = requests.get(url, timeout=10)
    assert r.status_code == 200, r.text[:300]
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return parse_metrics(r.text)


def val(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def msrv(make_server):
    # Not the fixture database "other": that name is also the label value of unknown databases.
    return make_server(dbs=("main", "types"), engines=2, slots=2,
                       extra=["--trust-request-id", "1", "--trusted-proxies", "127.0.0.1/32"])


# ---- /metrics directly ----------------------------------------------------------------------

def test_exact_counter_deltas(msrv):
    before, types = scrape(msrv)
    assert types["duckgate_query_duration_seconds"] == "histogram"
    assert types["duckgate_http_requests_total"] == "counter"
    assert types["duckgate_slots_busy"] == "gauge"
    for i in range(3):
        assert_ok(msrv.query("main", "SELECT %d AS x" % i))
    assert_error(msrv.query("main", "SELEC 1"), 400, "SQL_ERROR")
    assert_error(msrv.get("/no/such/path"), 404)
    assert_error(msrv.query("nope", "SELECT 1"), 404, "UNKNOWN_DB")
    after, _ = scrape(msrv)

    def delta(name, **labels):
        return val(after, name, **labels) - val(before, name, **labels)

    q = "/api/query/{db}"
    assert delta("duckgate_http_requests_total", route=q, method="POST", status="200") == 3
    assert delta("duckgate_http_requests_total", route=q, method="POST", status="400") == 1
    assert delta("duckgate_http_requests_total", route=q, method="POST", status="404") == 1
    assert delta("duckgate_http_requests_total", route="other", method="GET", status="404") == 1
    assert delta("duckgate_queries_total", db="main", kind="sql", status="200") == 3
    assert delta("duckgate_queries_total", db="main", kind="sql", status="400") == 1
    # Unknown database names never become label values.
    assert delta("duckgate_queries_total", db="other", kind="sql", status="404") == 1
    assert delta("duckgate_query_duration_seconds_count", db="main", kind="sql") == 4
    assert delta("duckgate_query_duration_seconds_bucket", db="main", kind="sql", le="+Inf") == 4
    assert delta("duckgate_rows_out_total") == 3
    # requests sends Accept-Encoding: gzip, deflate.
    assert delta("duckgate_bytes_out_total", encoding="gzip") > 0
    # Raw paths are never labels.
    assert not any("/no/such/path" in str(k) for k in after)
    assert val(after, "duckgate_build_info", version=msrv_version(after), duckdb=duckdb_version(after)) == 1
    for name in ("process_resident_memory_bytes", "process_open_fds",
                 "process_start_time_seconds", "process_cpu_seconds_total"):
        assert val(after, name) > 0 or name == "process_cpu_seconds_total", name
    assert val(after, "duckgate_slots_total") == 4
    assert val(after, "duckgate_engines_up") == 2
    for eng in ("0", "1"):
        for db in ("main", "types"):
            assert val(after, "duckgate_duckdb_memory_limit_bytes", db=db, engine=eng) > 0
            assert ("duckgate_duckdb_memory_bytes",
                    frozenset({("db", db), ("engine", eng)})) in after


def msrv_version(samples):
    return next(dict(k[1])["version"] for k in samples if k[0] == "duckgate_build_info")


def duckdb_version(samples):
    return next(dict(k[1])["duckdb"] for k in samples if k[0] == "duckgate_build_info")


def test_every_kind_is_precreated(msrv):
    samples, _ = scrape(msrv)
    for db in ("main", "types"):
        for kind in ("sql", "named", "admin", "job"):
            assert ("duckgate_queries_total",
                    frozenset({("db", db), ("kind", kind), ("status", "200")})) in samples, kind
            assert val(samples, "duckgate_query_duration_seconds_bucket", db=db, kind=kind,
                       le="+Inf") >= 0
            assert ("duckgate_query_duration_seconds_count",
                    frozenset({("db", db), ("kind", kind)})) in samples, kind


def test_histogram_is_consistent(msrv):
    assert_ok(msrv.query("main", "SELECT 1"))
    samples, _ = scrape(msrv)
    buckets = sorted(((float(dict(k[1])["le"]), v) for k, v in samples.items()
                      if k[0] == "duckgate_query_duration_seconds_bucket"
                      and dict(k[1])["db"] == "main" and dict(k[1])["kind"] == "sql"),
                     key=lambda t: t[0])
    les = [b[0] for b in buckets]
    assert les[0] == 0.001 and les[-2] == 60 and les[-1] == float("inf")
    counts = [b[1] for b in buckets]
    assert counts == sorted(counts), "buckets must be cumulative"
    assert counts[-1] == val(samples, "duckgate_query_duration_seconds_count", db="main",
                             kind="sql")


def test_timeout_counts_an_interrupt(msrv):
    before, _ = scrape(msrv)
    assert_error(msrv.query("main", ENDLESS_SQL, timeout_ms=300), 504, "TIMEOUT")
    after, _ = scrape(msrv)
    assert (val(after, "duckgate_interrupts_total", reason="deadline")
            - val(before, "duckgate_interrupts_total", reason="deadline")) == 1
    assert (val(after, "duckgate_queries_total", db="main", kind="sql", status="504")
            - val(before, "duckgate_queries_total", db="main", kind="sql", status="504")) == 1


def wait_metric(server, name, pred, timeout=60.0, **labels):
    """Polls /metrics until pred(value of name{labels}) holds; returns the value."""
    deadline = time.monotonic() + timeout
    while True:
        v = val(scrape(server)[0], name, **labels)
        if pred(v):
            return v
        assert time.monotonic() < deadline, "%s%r stayed at %r" % (name, labels, v)
        time.sleep(0.1)


def test_disconnect_counts_an_interrupt(msrv):
    before, _ = scrape(msrv)
    busy0 = val(before, "duckgate_slots_busy")
    sock = socket.create_connection(("127.0.0.1", msrv.port), timeout=10)
    try:
        sock.sendall(dgserver.post_request_bytes("main", json.dumps({"sql": ENDLESS_SQL})))
        # Running on an engine slot now: then the client goes away mid-query.
        wait_metric(msrv, "duckgate_slots_busy", lambda v: v >= busy0 + 1)
    finally:
        sock.close()
    wait_metric(msrv, "duckgate_interrupts_total",
                lambda v: v >= val(before, "duckgate_interrupts_total", reason="disconnect") + 1,
                reason="disconnect")
    wait_metric(msrv, "duckgate_slots_busy", lambda v: v <= busy0)
    after, _ = scrape(msrv)

    def delta(name, **labels):
        return val(after, name, **labels) - val(before, name, **labels)

    assert delta("duckgate_interrupts_total", reason="disconnect") == 1
    assert delta("duckgate_interrupts_total", reason="deadline") == 0
    assert delta("duckgate_interrupts_total", reason="cancel") == 0
    assert delta("duckgate_queries_total", db="main", kind="sql", status="499") == 1


def test_engine_restart_is_counted(msrv):
    before = val(scrape(msrv)[0], "duckgate_engine_restarts_total")
    pids = msrv.engine_pids()
    assert pids, "no engine processes"
    os.kill(sorted(pids)[0], signal.SIGKILL)
    wait_metric(msrv, "duckgate_engine_restarts_total", lambda v: v >= before + 1)
    # Back to full strength, and exactly one restart for one kill.
    wait_metric(msrv, "duckgate_engines_up", lambda v: v == 2)
    deadline = time.monotonic() + 60
    while msrv.query("main", "SELECT 1").status_code != 200:
        assert time.monotonic() < deadline, "queries never recovered after the restart"
        time.sleep(0.2)
    assert val(scrape(msrv)[0], "duckgate_engine_restarts_total") == before + 1


def timing_parts(resp):
    """Server-Timing as {name: {"dur": float|None, "desc": str|None}}."""
    parts = {}
    for item in resp.headers.get("Server-Timing", "").split(","):
        fields = [f.strip() for f in item.split(";") if f.strip()]
        if not fields:
            continue
        attrs = dict(f.split("=", 1) for f in fields[1:] if "=" in f)
        parts[fields[0]] = {"dur": float(attrs["dur"]) if "dur" in attrs else None,
                            "desc": attrs.get("desc")}
    return parts


def test_server_timing_on_success_and_errors(msrv):
    text = "SELECT %d AS fresh" % time.time_ns()
    miss = msrv.query("main", text)
    assert_ok(miss)
    t = timing_parts(miss)
    for name in ("queue", "execute", "encode"):
        assert t[name]["dur"] is not None and t[name]["dur"] >= 0, (name, t)
    assert t["cache"]["desc"] == "miss", t
    hit = msrv.query("main", text)
    assert timing_parts(hit)["cache"]["desc"] == "hit", hit.headers
    # A SQL error from the engine: queue, execute (the engine's part) and the cache lookup.
    err = msrv.query("main", "SELEC 1")
    assert_error(err, 400, "SQL_ERROR")
    t = timing_parts(err)
    assert {"queue", "execute", "total", "cache"} <= set(t), err.headers
    assert t["cache"]["desc"] == "miss"
    assert t["total"]["dur"] >= t["execute"]["dur"] >= 0
    # A deadline: execute covers at least most of it.
    slow = msrv.query("main", ENDLESS_SQL, timeout_ms=300)
    assert_error(slow, 504, "TIMEOUT")
    t = timing_parts(slow)
    assert t["execute"]["dur"] >= 200 and t["total"]["dur"] >= t["execute"]["dur"], t
    # Refused before any work (bad request): the total at least.
    bad = msrv.post("/api/query/main", data="{not json",
                    headers={"Content-Type": "application/json"})
    assert_error(bad, 400)
    assert timing_parts(bad)["total"]["dur"] >= 0, bad.headers
    assert_error(msrv.query("nope", "SELECT 1"), 404, "UNKNOWN_DB")
    assert "total" in timing_parts(msrv.query("nope", "SELECT 1"))


def test_server_timing_when_the_queue_is_full(make_server):
    s = make_server(dbs=("main",), engines=1, slots=1, extra=["--queue-len", "0"])
    try:
        sock = socket.create_connection(("127.0.0.1", s.port), timeout=10)
        try:
            sock.sendall(dgserver.post_request_bytes("main", json.dumps({"sql": ENDLESS_SQL})))
            # Once the endless query holds the only slot, the next query finds no queue room.
            deadline = time.monotonic() + 60
            while True:
                r = s.query("main", "SELECT 2 AS two -- %d" % time.time_ns())
                if r.status_code != 200 or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            assert_error(r, 503)
            t = timing_parts(r)
            assert t["queue"]["dur"] >= 0 and t["total"]["dur"] >= 0, r.headers
            assert t["cache"]["desc"] == "miss", r.headers
        finally:
            sock.close()
    finally:
        s.close()


# ---- request ids and the access log ---------------------------------------------------------

def test_request_id(msrv):
    r = msrv.get("/health", headers={"X-Request-Id": "trace-1.A_b"})
    assert r.headers["X-Request-Id"] == "trace-1.A_b"
    r = msrv.query("main", "SELECT 1", headers={"X-Request-Id": "q-42"})
    assert r.headers["X-Request-Id"] == "q-42" and r.headers["X-Query-Id"] == "q-42"
    for bad in ("a b", "x" * 65, "semi;colon", "ü"):
        r = msrv.get("/health", headers={"X-Request-Id": bad.encode("utf-8")})
        rid = r.headers["X-Request-Id"]
        assert rid != bad and re.fullmatch(r"[0-9a-f]{16}", rid), rid
    assert re.fullmatch(r"[0-9a-f]{16}", msrv.get("/nope").headers["X-Request-Id"])


def test_request_id_untrusted_by_default(make_server):
    s = make_server(dbs=("main",), engines=1, slots=1)
    r = s.get("/health", headers={"X-Request-Id": "client-chosen"})
    assert re.fullmatch(r"[0-9a-f]{16}", r.headers["X-Request-Id"])
    s.close()


def test_access_log_json(make_server, tmp_path):
    log = tmp_path / "access.log"
    s = make_server(dbs=("main",), engines=1, slots=1,
                    extra=["--access-log", "json", "--access-log-file", str(log),
                           "--trust-request-id", "1", "--trusted-proxies", "127.0.0.1/32"])
    s.query_get("main", "SELECT ? AS secret", params=["hunter2"])
    s.get("/health", headers={"Authorization": "Bearer TOPSECRET", "X-Request-Id": "rid-7"})
    s.get("/a\x7fb")
    s.close(remove=False)
    lines = [json.loads(ln) for ln in log.read_text().splitlines()]
    assert len(lines) >= 3
    text = log.read_text()
    assert "hunter2" not in text and "TOPSECRET" not in text and "sql" not in text
    q = next(ln for ln in lines if ln["route"] == "/api/query/{db}")
    assert q["path"] == "/api/query/main" and q["status"] == 200 and q["method"] == "GET"
    assert q["duration_ms"] >= 0 and q["aborted"] is False and len(q["request_id"]) == 16
    h = next(ln for ln in lines if ln["path"] == "/health")
    assert h["request_id"] == "rid-7" and h["route"] == "/health"


def test_access_log_text_and_off(make_server):
    s = make_server(dbs=("main",), engines=1, slots=1)
    s.get("/health")
    pat = re.compile(r" info access req=[0-9a-f]{16} GET /health status=200 ms=[0-9.]+ "
                     r"route=/health")
    deadline = time.monotonic() + 5
    while not pat.search(s.log()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pat.search(s.log()), s.log()[-2000:]
    s.close()
    s = make_server(dbs=("main",), engines=1, slots=1, extra=["--access-log", "off"])
    s.get("/health")
    assert " access req=" not in s.log()
    s.close()


def test_bad_settings_refused(binary, tmp_path):
    for flags in (["--access-log", "xml"], ["--metrics-listen", "nowhere"]):
        p = subprocess.run([binary, "serve", "--data-dir", str(tmp_path)] + flags,
                           capture_output=True, timeout=30)
        assert p.returncode != 0 and flags[0].lstrip("-").replace("-", "_").encode() in p.stderr


def test_metrics_listen_apart(make_server):
    s = make_server(dbs=("main",), engines=1, slots=1, extra=["--metrics-listen", "127.0.0.1:0"])
    m = re.search(r"metrics_port=(\d+)", s.log())
    assert m, s.log()[-2000:]
    assert s.get("/metrics").status_code == 404
    samples, _ = scrape("http://127.0.0.1:%s/metrics" % m.group(1))
    assert val(samples, "duckgate_engines_up") == 1
    s.close()


# ---- shipped rules and dashboard --------------------------------------------------------------

def test_promtool_check_rules():
    p = subprocess.run([tool("promtool"), "check", "rules", ALERTS], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr


def referenced_metrics():
    with open(ALERTS) as f:
        alerts = f.read()
    with open(DASHBOARD) as f:
        dash = json.load(f)
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    exprs += [v["query"] for v in dash.get("templating", {}).get("list", []) if "query" in v]
    names = set(re.findall(r"\b((?:duckgate|process)_[a-z0-9_]+)", alerts + "\n".join(exprs)))
    names |= set(re.findall(r"\b(up)\{", alerts)) & PROMETHEUS_OWN
    return names


def test_dashboard_and_alerts_reference_real_metrics(msrv):
    names = referenced_metrics()
    assert len(names) >= 15
    samples, types = scrape(msrv)
    missing = []
    for n in sorted(names - PROMETHEUS_OWN):
        base = re.sub(r"_(bucket|sum|count)$", "", n)
        if n in types or (base in types and types[base] == "histogram"):
            continue
        missing.append(n)
    assert not missing, "referenced but not exposed: %s" % missing


def error_selectors():
    """Every duckgate_queries_total / duckgate_http_requests_total selector of the alerts and
    the dashboard that filters on status, as (text, [(op, value)])."""
    with open(ALERTS) as f:
        text = f.read()
    with open(DASHBOARD) as f:
        dash = json.load(f)
    text += "\n".join(t["expr"] for p in dash["panels"] for t in p.get("targets", []))
    out = []
    for m in re.finditer(r"(duckgate_(?:queries|http_requests)_total)\{([^}]*)\}", text):
        ms = re.findall(r'status\s*(=~|!~|!=|=)\s*"([^"]*)"', m.group(2))
        if ms:
            out.append((m.group(0), ms))
    return out


def status_matches(matchers, status):
    for op, v in matchers:
        full = re.fullmatch(v, status) is not None  # PromQL regexes are anchored
        if (op == "=~" and not full) or (op == "!~" and full) or \
                (op == "=" and status != v) or (op == "!=" and status == v):
            return False
    return True


def test_error_expressions_skip_304_and_499():
    sels = error_selectors()
    assert len(sels) >= 3, sels  # error-rate alert, 5xx alert, dashboard error panel
    for text, matchers in sels:
        if "5.." in str(matchers) and "4" not in str(matchers):
            # The 5xx alert: server failures only.
            assert [s for s in ("500", "503", "504") if status_matches(matchers, s)] == \
                ["500", "503", "504"], text
            continue
        for ok in ("200", "204", "206", "304", "499"):
            assert not status_matches(matchers, ok), "%s counts %s as an error" % (text, ok)
        for bad in ("400", "401", "403", "404", "413", "429", "500", "503", "504"):
            assert status_matches(matchers, bad), "%s misses %s" % (text, bad)


# ---- a real Prometheus ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def psrv(make_server):
    """The server Prometheus scrapes: rate limits on (3 requests a minute per client) behind a
    trusted proxy, so each request of the test picks its client with X-Forwarded-For."""
    return make_server(dbs=("main", "types"), engines=2, slots=2,
                       extra=["--rate-limit", "on", "--rate-burst-per-s", "100",
                              "--rate-per-min", "3", "--trusted-proxies", "127.0.0.1/32"])


_client_no = [0]


def fresh_client():
    """A client address of its own (a full rate-limit bucket)."""
    _client_no[0] += 1
    return {"X-Forwarded-For": "10.1.%d.%d" % (_client_no[0] // 250, _client_no[0] % 250 + 1)}


@pytest.fixture(scope="module")
def prometheus(psrv, tmp_root):
    exe = tool("prometheus")
    d = tempfile.mkdtemp(prefix="dg-prom-", dir=tmp_root)
    port = free_port()
    cfg = os.path.join(d, "prometheus.yml")
    with open(cfg, "w") as f:
        f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                "rule_files:\n  - %s\n"
                "scrape_configs:\n  - job_name: duckgate\n    scrape_timeout: 900ms\n"
                "    static_configs:\n      - targets: ['127.0.0.1:%d']\n" % (ALERTS, psrv.port))
    log = open(os.path.join(d, "prometheus.log"), "wb")
    proc = subprocess.Popen([exe, "--config.file=" + cfg, "--storage.tsdb.path=" + d + "/data",
                             "--web.listen-address=127.0.0.1:%d" % port, "--log.level=warn"],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    base = "http://127.0.0.1:%d" % port
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if requests.get(base + "/-/ready", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("prometheus did not become ready:\n" +
                                   open(os.path.join(d, "prometheus.log")).read()[-3000:])
            time.sleep(0.1)
        yield base
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        log.close()
        shutil.rmtree(d, ignore_errors=True)


def promql(base, expr):
    r = requests.get(base + "/api/v1/query", params={"query": expr}, timeout=5)
    assert r.status_code == 200, r.text[:500]
    body = r.json()
    assert body["status"] == "success", body
    return body["data"]["result"]


def scalar(base, expr):
    res = promql(base, expr)
    return float(res[0]["value"][1]) if res else None


def wait_for(base, expr, pred, timeout=15.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = scalar(base, expr)
        if last is not None and pred(last):
            return last
        time.sleep(0.25)
    raise AssertionError("%s never satisfied the condition within %.0fs (last %r)"
                         % (expr, timeout, last))


def test_prometheus_scrapes_known_traffic(psrv, prometheus):
    base = prometheus
    srv = psrv
    wait_for(base, 'up{job="duckgate"}', lambda v: v == 1)
    ok_sel = 'duckgate_queries_total{job="duckgate",db="types",kind="sql",status="200"}'
    start_ok = wait_for(base, ok_sel, lambda v: v >= 0)
    start_err = scalar(base, 'sum(duckgate_queries_total{db="types",status="400"})') or 0
    start_404 = scalar(base, 'sum(duckgate_http_requests_total{route="other",status="404"})') or 0
    start_dl = scalar(base, 'duckgate_interrupts_total{reason="deadline"}') or 0
    for i in range(5):
        assert_ok(srv.query("types", "SELECT %d" % i, headers=fresh_client()))
    for _ in range(2):
        assert_error(srv.query("types", "SELEC 1", headers=fresh_client()), 400, "SQL_ERROR")
    assert_error(srv.get("/definitely/not/here", headers=fresh_client()), 404)
    assert_error(srv.query("types", ENDLESS_SQL, timeout_ms=300, headers=fresh_client()), 504,
                 "TIMEOUT")

    wait_for(base, ok_sel, lambda v: v == start_ok + 5)
    wait_for(base, 'sum(duckgate_queries_total{db="types",status="400"})',
             lambda v: v == start_err + 2)
    wait_for(base, 'sum(duckgate_http_requests_total{route="other",status="404"})',
             lambda v: v == start_404 + 1)
    wait_for(base, 'duckgate_interrupts_total{reason="deadline"}', lambda v: v == start_dl + 1)

    # Cache: the first run of a text is a miss, the next two are hits (nothing else touches
    # the cache meanwhile).
    hits0 = wait_for(base, 'duckgate_cache_hits_total', lambda v: v >= 0)
    misses0 = wait_for(base, 'duckgate_cache_misses_total', lambda v: v >= 0)
    text = "SELECT 42 AS answer -- %d" % time.time_ns()
    for _ in range(3):
        assert_ok(srv.query("main", text, headers=fresh_client()))
    wait_for(base, 'duckgate_cache_hits_total', lambda v: v == hits0 + 2)
    wait_for(base, 'duckgate_cache_misses_total', lambda v: v == misses0 + 1)

    # Rate limits: one client, 3 requests a minute: 3 answered, the next 2 refused (429).
    limited0 = wait_for(base, 'duckgate_rate_limited_total', lambda v: v >= 0)
    one = fresh_client()
    codes = [srv.query("main", "SELECT 1", headers=one).status_code for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429], codes
    wait_for(base, 'duckgate_rate_limited_total', lambda v: v == limited0 + 2)
    wait_for(base, 'sum(duckgate_http_requests_total{route="/api/query/{db}",status="429"})',
             lambda v: v == 2)

    # The series the dashboard and the alerts read are queryable through PromQL.
    assert scalar(base, 'sum(duckgate_slots_total)') == 4
    assert scalar(base, 'count(duckgate_duckdb_memory_limit_bytes > 0)') == 4
    p95 = wait_for(base, 'histogram_quantile(0.95, sum by (le) '
                   '(rate(duckgate_query_duration_seconds_bucket{db="types"}[1m])))',
                   lambda v: v == v)  # not NaN once rates exist
    assert 0 < p95 <= 60
    assert len(promql(base, 'duckgate_build_info == 1')) == 1
    rules = requests.get(base + "/api/v1/rules", timeout=5).json()
    loaded = {r["name"] for g in rules["data"]["groups"] for r in g["rules"]}
    assert {"DuckgateHighQueryErrorRate", "DuckgateDuckDBMemoryHigh",
            "DuckgateEngineRestarts"} <= loaded
