"""Shared helpers for the black-box suites (tests/integration, tests/security).

One implementation of: finding the binary, creating fixture databases with `duckgate exec`,
starting `duckgate serve` on port 0 in its own temporary directories (under an address-space cap
unless the binary is an ASan build), parsing the port from stderr, talking HTTP to it, and
tearing it down so that no process is ever left behind.

Only Debian's python3 stdlib + python3-pytest + python3-requests are used.
"""

import glob
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse

import requests

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Address-space cap for servers of non-ASan builds (engines inherit it unless they lower it).
AS_LIMIT_BYTES = 16 << 30
START_TIMEOUT_S = 30.0
LISTEN_RE = re.compile(r"listening on http://127\.0\.0\.1:(\d+)")


# --------------------------------------------------------------------------------------------
# The binary


def find_binary():
    """DUCKGATE_BIN, else the newest of build*/duckgate in the repository; None if none."""
    b = os.environ.get("DUCKGATE_BIN")
    if b:
        return b if os.path.isfile(b) and os.access(b, os.X_OK) else None
    cands = [p for p in glob.glob(os.path.join(REPO, "build*", "duckgate"))
             if os.path.isfile(p) and os.access(p, os.X_OK)]
    if not cands:
        return None
    return max(cands, key=os.path.getmtime)


_asan_cache = {}


def is_asan(binary):
    """True for ASan builds (DG_ASAN=1, or the binary references __asan_init)."""
    if os.environ.get("DG_ASAN") == "1":
        return True
    if binary in _asan_cache:
        return _asan_cache[binary]
    found = False
    for cmd in (["nm", "-D", binary], ["nm", binary]):
        try:
            out = subprocess.run(cmd, capture_output=True, timeout=60).stdout
        except (OSError, subprocess.TimeoutExpired):
            continue
        if b"__asan_init" in out:
            found = True
            break
    if not found:
        try:
            with open(binary, "rb") as f:
                found = b"__asan_init" in f.read()
        except OSError:
            pass
    _asan_cache[binary] = found
    return found


def exec_sql(binary, db_path, sql, timeout=120):
    """Runs trusted SQL with `duckgate exec FILE SQL` (creates FILE). Raises on failure."""
    p = subprocess.run([binary, "exec", db_path, sql], capture_output=True, timeout=timeout,
                       preexec_fn=_preexec(binary))
    if p.returncode != 0:
        raise RuntimeError("duckgate exec %s failed (rc=%d): %s %s" % (
            db_path, p.returncode, p.stdout.decode(errors="replace")[-2000:],
            p.stderr.decode(errors="replace")[-2000:]))
    return p


def _preexec(binary):
    asan = is_asan(binary)

    def fn():
        if not asan:
            resource.setrlimit(resource.RLIMIT_AS, (AS_LIMIT_BYTES, AS_LIMIT_BYTES))
    return fn


# --------------------------------------------------------------------------------------------
# Fixture databases

MAIN_DB_SQL = """
CREATE TABLE t (id INTEGER PRIMARY KEY, name VARCHAR, score DOUBLE, grp VARCHAR, d DATE);
INSERT INTO t SELECT i, 'name_' || i, i * 1.5,
       CASE WHEN i % 3 = 0 THEN 'a' WHEN i % 3 = 1 THEN 'b' ELSE 'c' END,
       DATE '2024-01-01' + CAST(i AS INTEGER) FROM range(1, 101) r(i);
CREATE TABLE sales (region VARCHAR, product VARCHAR, year INTEGER, amount DECIMAL(18,2));
INSERT INTO sales VALUES ('north','apple',2023,10.50),('north','pear',2023,20.00),
  ('south','apple',2023,5.25),
  ('south','pear',2024,7.75),('north','apple',2024,12.00),('east','plum',2024,3.00);
CREATE TABLE docs (id INTEGER, body JSON, tags VARCHAR[], meta STRUCT(k VARCHAR, v INTEGER));
INSERT INTO docs VALUES (1, '{"a":1,"b":[1,2,3],"c":{"d":"x"}}', ['x','y'], {'k':'one','v':1}),
  (2, '{"a":2,"b":[],"c":{"d":"y"}}', [], {'k':'two','v':2});
CREATE SCHEMA s2;
CREATE TABLE s2.other (x INTEGER NOT NULL, y VARCHAR);
INSERT INTO s2.other VALUES (1,'one'),(2,'two'),(3,'three');
CREATE VIEW v_t AS SELECT id, name FROM t WHERE id <= 10;
CREATE SEQUENCE seq1;
CREATE MACRO plus1(x) AS x + 1;
CHECKPOINT;
"""

SECOND_DB_SQL = """
CREATE TABLE private_t (secret VARCHAR);
INSERT INTO private_t VALUES ('OTHER-DB-SECRET-7c1f');
CHECKPOINT;
"""


class Fixtures:
    """Builds the fixture databases once per session into a template directory; every server
    gets its own copy of them."""

    def __init__(self, binary, root):
        self.binary = binary
        self.root = root
        self.template = os.path.join(root, "template")
        os.makedirs(self.template, exist_ok=True)
        self._built = set()
        self._lock = threading.Lock()

    def build(self, name, sql):
        with self._lock:
            if name not in self._built:
                exec_sql(self.binary, os.path.join(self.template, name + ".duckdb"), sql)
                self._built.add(name)
        return os.path.join(self.template, name + ".duckdb")

    def populate(self, data_dir, names):
        os.makedirs(data_dir, exist_ok=True)
        for n in names:
            shutil.copy2(os.path.join(self.template, n + ".duckdb"),
                         os.path.join(data_dir, n + ".duckdb"))


# --------------------------------------------------------------------------------------------
# Processes


def children_of(pid):
    """Direct child pids of pid (all threads)."""
    out = set()
    for f in glob.glob("/proc/%d/task/*/children" % pid):
        try:
            with open(f) as fh:
                out.update(int(x) for x in fh.read().split())
        except OSError:
            pass
    return out


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
    except OSError:
        return False
    # state after the ")" of comm; Z = zombie (dead, not reaped)
    state = st[st.rfind(")") + 2:].split()[0]
    return state not in ("Z", "X")


class ServerError(RuntimeError):
    pass


class Server:
    """One `duckgate serve` in its own temporary directory.

    start() launches it in a new session (so teardown can kill the whole process group, engines
    included), stderr goes to a file that is polled for the `listening on` line."""

    def __init__(self, binary, fixtures, dbs=("main",), engines=2, slots=2, extra=(), env=None,
                 tmp_root=None, state_dir=True, cwd=None, rate_limit=False):
        self.binary = binary
        self.cwd = cwd
        self.dir = tempfile.mkdtemp(prefix="dg-srv-", dir=tmp_root)
        self.data_dir = os.path.join(self.dir, "data")
        self.state_dir = os.path.join(self.dir, "state") if state_dir else None
        self.log_path = os.path.join(self.dir, "stderr.log")
        fixtures.populate(self.data_dir, dbs)
        if self.state_dir:
            os.makedirs(self.state_dir, exist_ok=True)
        self.args = [binary, "serve", "--data-dir", self.data_dir, "--listen", "127.0.0.1:0",
                     "--engines", str(engines), "--slots", str(slots)]
        if self.state_dir:
            self.args += ["--state-dir", self.state_dir]
        # Suites fire many requests from 127.0.0.1; rate limits are off unless a test asks
        # (rate_limit=True, or its own --rate-limit in extra, which comes later and wins).
        if not rate_limit:
            self.args += ["--rate-limit", "off"]
        self.args += [str(a) for a in extra]
        self.env = dict(os.environ)
        # Flags are what the tests choose; keep stray DUCKGATE_* settings of the caller out.
        for k in list(self.env):
            if k.startswith("DUCKGATE_"):
                del self.env[k]
        if env:
            self.env.update(env)
        self.proc = None
        self.port = None
        self._seen_engines = set()
        self.findings = []
        self.session = requests.Session()

    # lifecycle -------------------------------------------------------------------------------

    def start(self):
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, env=self.env, cwd=self.cwd,
                                     start_new_session=True, preexec_fn=_preexec(self.binary))
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            m = LISTEN_RE.search(self.log())
            if m:
                self.port = int(m.group(1))
                break
            if self.proc.poll() is not None:
                raise ServerError("server exited with %s before listening:\n%s" % (
                    self.proc.returncode, self.log()[-4000:]))
            time.sleep(0.02)
        else:
            self.kill()
            raise ServerError("no 'listening on' line within %.0fs:\n%s" % (
                START_TIMEOUT_S, self.log()[-4000:]))
        # Wait until the engines are up (ready), bounded.
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                if self.get("/ready", timeout=5).status_code == 200:
                    self.engine_pids()
                    return self
            except requests.RequestException:
                pass
            if self.proc.poll() is not None:
                raise ServerError("server exited with %s while starting:\n%s" % (
                    self.proc.returncode, self.log()[-4000:]))
            time.sleep(0.05)
        self.kill()
        raise ServerError("/ready never returned 200:\n%s" % self.log()[-4000:])

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def engine_pids(self):
        pids = children_of(self.proc.pid) if self.alive() else set()
        self._seen_engines |= pids
        return pids

    def terminate(self, timeout=15.0):
        """SIGTERM and wait; returns the exit status (None if it had to be killed)."""
        if not self.alive():
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self):
        """Kills the server's process group (engines included) and reaps the server."""
        if self.proc is None:
            return
        pgid = self.proc.pid  # new session: pgid == pid
        engines = self.engine_pids() | self._seen_engines
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        # Engines re-parented elsewhere but still in our group die with killpg above; make sure.
        for _ in range(50):
            try:
                os.killpg(pgid, 0)
            except (ProcessLookupError, PermissionError):
                break
            try:
                os.killpg(pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                break
            time.sleep(0.02)
        # Engines that left the group (their own session) but were seen as our children.
        for pid in engines:
            if pid_alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass

    SANITIZER_RE = re.compile(r"(ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|"
                              r"WARNING: ThreadSanitizer|AddressSanitizer:DEADLYSIGNAL)")

    def sanitizer_findings(self):
        """Lines of the server's stderr (engines included) where a sanitizer reported."""
        return [ln for ln in self.log().splitlines() if self.SANITIZER_RE.search(ln)]

    def close(self, remove=True):
        try:
            self.session.close()
        except Exception:
            pass
        if self.proc is not None and self.proc.poll() is None:
            self.terminate(timeout=5)
        self.kill()
        try:
            self._log.close()
        except Exception:
            pass
        self.findings = self.findings or self.sanitizer_findings()
        if remove:
            shutil.rmtree(self.dir, ignore_errors=True)

    # HTTP --------------------------------------------------------------------------------------

    @property
    def base(self):
        return "http://127.0.0.1:%d" % self.port

    def url(self, path):
        return self.base + path

    def get(self, path, timeout=30, **kw):
        return requests.get(self.url(path), timeout=timeout, **kw)

    def post(self, path, timeout=30, **kw):
        return requests.post(self.url(path), timeout=timeout, **kw)

    def request(self, method, path, timeout=30, **kw):
        return requests.request(method, self.url(path), timeout=timeout, **kw)

    def use_keys_file(self):
        """Points the `KEYS` placeholder of the server's arguments at <dir>/keys.json (before
        start()); returns that path for `add_key`."""
        path = os.path.join(self.dir, "keys.json")
        self.args[self.args.index("KEYS")] = path
        return path

    def wait_job(self, jid, headers, states=("done", "failed", "cancelled"), timeout=60.0,
                 poll=0.02):
        """Polls GET /api/admin/jobs/{jid} until its state is one of states; returns the job."""
        end = time.monotonic() + timeout
        while True:
            r = self.get("/api/admin/jobs/" + jid, headers=headers)
            assert r.status_code == 200, r.text
            j = r.json()
            if j["state"] in states:
                return j
            assert time.monotonic() < end, "job %s stayed %s (want %s)" % (jid, j["state"], states)
            time.sleep(poll)

    def query(self, db, sql, params=None, timeout_ms=None, fmt=None, timeout=60, headers=None):
        """POST /api/query/{db} with a JSON body."""
        body = {"sql": sql}
        if params is not None:
            body["params"] = params
        if timeout_ms is not None:
            body["timeout_ms"] = timeout_ms
        path = "/api/query/" + db
        if fmt:
            path += "?format=" + fmt
        return requests.post(self.url(path), data=json.dumps(body),
                             headers=dict({"Content-Type": "application/json"}, **(headers or {})),
                             timeout=timeout)

    def query_get(self, db, sql, params=None, fmt=None, timeout=60, extra=None):
        q = {"sql": sql}
        if params is not None:
            q["params"] = json.dumps(params)
        if fmt:
            q["format"] = fmt
        if extra:
            q.update(extra)
        return requests.get(self.url("/api/query/%s?%s" % (db, urllib.parse.urlencode(q))),
                            timeout=timeout)


# --------------------------------------------------------------------------------------------
# Assertions


def error_body(resp):
    """Parses and validates an error response body; returns the inner error object."""
    ctype = resp.headers.get("Content-Type", "")
    assert "json" in ctype, "error response is not JSON (Content-Type %r): %r" % (
        ctype, resp.text[:300])
    try:
        body = resp.json()
    except ValueError:
        raise AssertionError("error body is not valid JSON: %r" % resp.text[:300])
    assert isinstance(body, dict) and isinstance(body.get("error"), dict), \
        "error body lacks an error object: %r" % resp.text[:300]
    err = body["error"]
    assert isinstance(err.get("code"), str) and err["code"], "error has no code: %r" % body
    assert isinstance(err.get("message"), str) and err["message"], "error has no message: %r" % body
    if "query_id" in err:
        assert isinstance(err["query_id"], str)
    return err


def assert_error(resp, status, code=None):
    """Asserts an error response: HTTP status (int or collection), JSON body with code/message,
    and, when given, the code (str or collection). Returns the error object."""
    statuses = (status,) if isinstance(status, int) else tuple(status)
    assert resp.status_code in statuses, "expected HTTP %s%s, got %d: %s" % (
        "/".join(map(str, statuses)), (" " + str(code)) if code else "", resp.status_code,
        resp.text[:500])
    err = error_body(resp)
    if code is not None:
        codes = (code,) if isinstance(code, str) else tuple(code)
        assert err["code"] in codes, "expected code %s, got %s: %s" % (
            "/".join(codes), err["code"], err["message"][:300])
    return err


def assert_ok(resp):
    assert resp.status_code == 200, "expected 200, got %d: %s" % (resp.status_code,
                                                                     resp.text[:500])
    body = resp.json()
    for k in ("columns", "rows", "row_count", "truncated", "query_id", "elapsed_ms"):
        assert k in body, "result lacks %r: %s" % (k, resp.text[:300])
    return body


# --------------------------------------------------------------------------------------------
# Slow queries and raw sockets

# A query that never finishes in test time (interrupted by a deadline or a cancel): 1e15 rows
# take days (1e11 took ~35 s here, short enough to finish inside a slow test).
ENDLESS_SQL = "SELECT count(*) FROM range(1000000000000000) a"
# Cross join variant: the same without a single huge range.
ENDLESS_JOIN_SQL = ("SELECT count(*) FROM range(10000000) a, range(10000000) b "
                    "WHERE a.range + b.range = -1")


def calibrated_sql(server, db, target_s=1.5, limit_s=6.0):
    """SQL for a query that runs about target_s seconds on this machine (a counted range whose
    length is scaled from a measured run); returns (sql, expected_count)."""
    n = 2_000_000
    for _ in range(6):
        sql = "SELECT count(*) AS c FROM range(%d) r(i) WHERE hash(i) %% 7 <> 99" % n
        t0 = time.monotonic()
        r = server.query(db, sql, timeout=limit_s * 3)
        dt = time.monotonic() - t0
        assert r.status_code == 200, r.text[:300]
        if dt > 0.2:
            n = int(n * target_s / dt)
            break
        n *= 8
    sql = "SELECT count(*) AS c FROM range(%d) r(i) WHERE hash(i) %% 7 <> 99" % n
    return sql, n


def query_stream_checked(server, db, sql, timeout_ms=None, fmt="ndjson", timeout=60):
    """POST a query and read the whole body; a chunked body that is cut off (no terminating
    chunk) fails the test with a clear message instead of a ChunkedEncodingError."""
    try:
        return server.query(db, sql, timeout_ms=timeout_ms, fmt=fmt, timeout=timeout)
    except requests.exceptions.ChunkedEncodingError as e:
        raise AssertionError("the %s response body was cut off (chunked encoding not terminated "
                             "properly): %s" % (fmt, e))


def raw_http(port, request_bytes, read=True, timeout=10.0):
    """Sends raw bytes; returns (status, headers dict (lowercase), body bytes) or None when read
    is False (socket closed right away)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(request_bytes)
        if not read:
            return None
        data = b""
        end = time.monotonic() + 3 * timeout
        while time.monotonic() < end:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            data += chunk
            if b"\r\n\r\n" in data:
                head, _, rest = data.partition(b"\r\n\r\n")
                hdrs = _parse_head(head)[1]
                cl = hdrs.get("content-length")
                if cl is not None and len(rest) >= int(cl):
                    break
        head, _, body = data.partition(b"\r\n\r\n")
        status, hdrs = _parse_head(head)
        return status, hdrs, body
    finally:
        s.close()


def _parse_head(head):
    lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        status = 0
    hdrs = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return status, hdrs


def post_request_bytes(db, body, extra_headers=""):
    b = body.encode() if isinstance(body, str) else body
    head = ("POST /api/query/%s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            "Content-Length: %d\r\nConnection: close\r\n%s\r\n" % (db, len(b), extra_headers))
    return head.encode() + b


def add_key(binary, path, role, *extra):
    """`duckgate keys add --file path --role role [extra...]` without the caller's DUCKGATE_*
    environment; returns the new key (printed once)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUCKGATE_")}
    p = subprocess.run([binary, "keys", "add", "--file", path, "--role", role] + list(extra),
                       capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 0, p.stderr
    key = p.stdout.strip()
    assert key.startswith("dgk_"), p.stdout
    return key
