"""Access control (docs/auth.md): roles, API keys managed by `duckgate keys`, the route gate
(401 with WWW-Authenticate / 403), key scope, expiry, revocation and key file reload without a
restart, and the refusal to serve auth = off on a non-loopback address."""

import json
import os
import subprocess
import time

import pytest

import dgserver
from dgserver import assert_error


def keys(binary, *args):
    """Runs `duckgate keys ...`; returns the CompletedProcess (text)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUCKGATE_")}
    return subprocess.run([binary, "keys"] + [str(a) for a in args], capture_output=True,
                          text=True, env=env, timeout=60)


def add_key(binary, path, role, *extra):
    p = keys(binary, "add", "--file", path, "--role", role, *extra)
    assert p.returncode == 0, p.stderr
    key = p.stdout.strip()
    assert key.startswith("dgk_") and len(key) == 47, p.stdout
    return key


def hdr(key, style="bearer"):
    if key is None:
        return {}
    return {"X-API-Key": key} if style == "x-api-key" else {"Authorization": "Bearer " + key}


def call(s, route, key, style="bearer"):
    h = hdr(key, style)
    if route.startswith("/api/query/"):
        return s.query(route.rsplit("/", 1)[1], "SELECT 1 AS x", headers=h)
    return s.get(route, headers=h)


def check_status(resp, want):
    assert resp.status_code == want, "%s: want %d got %d %s" % (
        resp.url, want, resp.status_code, resp.text[:200])
    if want == 401:
        assert resp.headers.get("WWW-Authenticate", "").startswith("Bearer"), resp.headers
        assert_error(resp, 401, "UNAUTHORIZED")
    elif want == 403:
        assert_error(resp, 403, "FORBIDDEN")


ROUTES = ["/health", "/ready", "/metrics", "/api/databases", "/api/databases/main",
          "/api/databases/other", "/api/query/main", "/api/query/other"]

# caller -> expected status per route (same order as ROUTES), with auth = on, public_role none.
MATRIX = {
    "anonymous": [200, 200, 200, 401, 401, 401, 401, 401],
    "bad":       [200, 200, 200, 401, 401, 401, 401, 401],
    "expired":   [200, 200, 200, 401, 401, 401, 401, 401],
    "admin":     [200, 200, 200, 200, 200, 200, 200, 200],
    "analyst":   [200, 200, 200, 200, 200, 200, 200, 200],
    "viewer":    [200, 200, 200, 200, 200, 200, 403, 403],
    "scoped":    [200, 200, 200, 200, 200, 403, 200, 403],  # analyst limited to main
}


@pytest.fixture(scope="module")
def auth_server(make_server, binary):
    s = make_server(start=False, extra=["--auth", "on", "--keys-file", "KEYS"])
    path = s.use_keys_file()
    ks = {
        "admin": add_key(binary, path, "admin"),
        "analyst": add_key(binary, path, "analyst", "--name", "ana"),
        "viewer": add_key(binary, path, "viewer"),
        "scoped": add_key(binary, path, "analyst", "--db", "main"),
        "expired": add_key(binary, path, "analyst", "--name", "old"),
        "bad": "dgk_" + "A" * 43,
        "anonymous": None,
    }
    # Backdate the expiry of "old" (the CLI only sets future expiries).
    with open(path) as f:
        doc = json.load(f)
    for k in doc["keys"]:
        if k["name"] == "old":
            k["expires"] = int(time.time()) - 10
    with open(path, "w") as f:
        json.dump(doc, f)
    s.start()
    s.keys, s.keys_path = ks, path
    return s


@pytest.mark.parametrize("caller", sorted(MATRIX))
def test_role_route_matrix(auth_server, caller):
    key = auth_server.keys[caller]
    for route, want in zip(ROUTES, MATRIX[caller]):
        check_status(call(auth_server, route, key), want)
        if key is not None:
            check_status(call(auth_server, route, key, "x-api-key"), want)


def test_scoped_key_lists_its_databases(auth_server):
    r = auth_server.get("/api/databases", headers=hdr(auth_server.keys["scoped"]))
    assert [d["name"] for d in r.json()["databases"]] == ["main"]
    r = auth_server.get("/api/databases", headers=hdr(auth_server.keys["viewer"]))
    assert [d["name"] for d in r.json()["databases"]] == ["main", "other", "types"]


def test_malformed_credentials(auth_server):
    for h in ({"Authorization": "Basic dXNlcjpwdw=="}, {"Authorization": "Bearer"},
              {"Authorization": "Bearer a b"}, {"X-API-Key": ""},
              {"Authorization": "Bearer " + "x" * 300}):
        check_status(auth_server.get("/api/databases", headers=h), 401)
    # The scheme is case-insensitive.
    r = auth_server.get("/api/databases",
                        headers={"Authorization": "bearer " + auth_server.keys["viewer"]})
    check_status(r, 200)


def test_secrets_not_logged(auth_server):
    for k in auth_server.keys.values():
        if k:
            call(auth_server, "/api/query/main", k)
    log = auth_server.log()
    for k in auth_server.keys.values():
        if k:
            assert k not in log
    assert "Bearer" not in log


def test_key_lifecycle_reload(make_server, binary):
    """Keys added, revoked or expiring while the server runs take effect without a restart."""
    s = make_server(start=False, extra=["--auth", "on", "--public-role", "viewer"])
    path = os.path.join(s.state_dir, "keys.json")  # the default keys_file
    first = add_key(binary, path, "analyst", "--name", "first")
    s.start()
    check_status(call(s, "/api/query/main", first), 200)
    # public_role = viewer: anonymous callers see the catalog but may not run SQL.
    check_status(call(s, "/api/databases", None), 200)
    check_status(call(s, "/api/query/main", None), 401)

    def eventually(key, want, route="/api/query/main"):
        end = time.monotonic() + 5
        while True:
            r = call(s, route, key)
            if r.status_code == want or time.monotonic() > end:
                check_status(r, want)
                return
            time.sleep(0.1)

    second = add_key(binary, path, "admin", "--name", "second")
    eventually(second, 200)
    assert keys(binary, "revoke", "first", "--file", path).returncode == 0
    eventually(first, 401)
    check_status(call(s, "/api/query/main", second), 200)
    short = add_key(binary, path, "analyst", "--expires", "3s")
    eventually(short, 200)
    time.sleep(3.2)
    check_status(call(s, "/api/query/main", short), 401)
    # A broken key file keeps the previous keys.
    with open(path, "w") as f:
        f.write("{not json")
    time.sleep(1.2)
    check_status(call(s, "/api/query/main", second), 200)
    listing = keys(binary, "list", "--file", os.path.join(s.dir, "none.json"))
    assert listing.returncode == 0 and "dgk_" not in listing.stdout


def test_keys_cli(binary, tmp_path):
    path = str(tmp_path / "k.json")
    key = add_key(binary, path, "viewer", "--name", "v1", "--db", "main", "--expires", "30d")
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    text = open(path).read()
    assert key not in text
    doc = json.loads(text)
    (k,) = doc["keys"]
    assert k["name"] == "v1" and k["role"] == "viewer" and k["dbs"] == ["main"]
    assert k["expires"] - k["created"] == 30 * 86400 and len(k["sha256"]) == 64
    lst = keys(binary, "list", "--file", path)
    assert lst.returncode == 0 and "v1" in lst.stdout and key not in lst.stdout
    assert keys(binary, "add", "--file", path, "--role", "viewer", "--name", "v1").returncode == 1
    assert keys(binary, "add", "--file", path, "--role", "root").returncode == 2
    assert keys(binary, "add", "--file", path, "--role", "viewer", "--expires", "5y").returncode == 2
    assert keys(binary, "revoke", "nope", "--file", path).returncode == 1
    assert keys(binary, "revoke", k["id"], "--file", path).returncode == 0
    assert json.load(open(path))["keys"] == []


def test_auth_off_is_public_analyst(server):
    """The default (auth off): anonymous callers are analysts; credentials are ignored."""
    check_status(call(server, "/api/query/main", None), 200)
    check_status(call(server, "/api/query/main", "garbage"), 200)


def test_auth_off_public_viewer_forbids_sql(make_server):
    s = make_server(extra=["--public-role", "viewer"])
    check_status(call(s, "/api/databases/main", None), 200)
    check_status(call(s, "/api/query/main", None), 403)


def test_auth_off_non_loopback_refused(make_server):
    s = make_server(start=False, extra=["--listen", "0.0.0.0:0"])
    with pytest.raises(dgserver.ServerError) as ex:
        s.start()
    assert "exited with 2" in str(ex.value)
    assert "auth = off" in s.log() and "--allow-public" in s.log()
    # Deliberately public, or auth on: it starts (listening on every address).
    for flags in (["--allow-public"], ["--auth", "on"]):
        s = make_server(start=False, extra=["--listen", "0.0.0.0:0"] + flags)
        s._log = open(s.log_path, "wb")
        s.proc = subprocess.Popen(s.args, stdin=subprocess.DEVNULL, stdout=s._log,
                                  stderr=subprocess.STDOUT, env=s.env, start_new_session=True,
                                  preexec_fn=dgserver._preexec(s.binary))
        end = time.monotonic() + 30
        while "listening on http://0.0.0.0:" not in s.log():
            assert s.proc.poll() is None and time.monotonic() < end, s.log()[-2000:]
            time.sleep(0.05)
        s.terminate()


def host_addresses():
    """The machine's own addresses (`hostname -I`), or [] when unknown."""
    try:
        out = subprocess.run(["hostname", "-I"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return []
    return out.stdout.split() if out.returncode == 0 else []


def test_auth_off_loopback_judged_by_resolved_address(make_server):
    """The refusal looks at what the listen host resolves to, not at its text."""
    import socket
    # A non-loopback address of this machine is refused (auth off, no --allow-public).
    public = [a for a in host_addresses() if not a.startswith("127.") and a != "::1"]
    if public:
        a = public[0]
        s = make_server(start=False, extra=["--listen", ("[%s]:0" if ":" in a else "%s:0") % a])
        with pytest.raises(dgserver.ServerError) as ex:
            s.start()
        assert "exited with 2" in str(ex.value) and "auth = off" in s.log(), s.log()[-2000:]
    # Names are resolved: "localhost", and this machine's name when it resolves to loopback,
    # are local (the old text check refused the latter).
    names = ["localhost"]
    try:
        me = socket.gethostname()
        if me and all(i[4][0].startswith("127.") or i[4][0] == "::1"
                      for i in socket.getaddrinfo(me, 0, type=socket.SOCK_STREAM)):
            names.append(me)
    except OSError:
        pass
    import re
    import requests
    for name in names:
        s = make_server(start=False, dbs=("main",), engines=1, slots=1,
                        extra=["--listen", name + ":0"])
        s._log = open(s.log_path, "wb")
        s.proc = subprocess.Popen(s.args, stdin=subprocess.DEVNULL, stdout=s._log,
                                  stderr=subprocess.STDOUT, env=s.env, start_new_session=True,
                                  preexec_fn=dgserver._preexec(s.binary))
        end = time.monotonic() + 30
        pat = re.compile(r"listening on http://%s:(\d+)" % re.escape(name))
        while not pat.search(s.log()):
            assert s.proc.poll() is None and time.monotonic() < end, s.log()[-2000:]
            time.sleep(0.05)
        port = int(pat.search(s.log()).group(1))
        assert requests.get("http://127.0.0.1:%d/health" % port, timeout=10).status_code == 200
        s.terminate()
    # A name that resolves to a non-loopback address is refused like the address itself.
    if public and ":" not in public[0]:
        try:
            rev = socket.gethostbyaddr(public[0])[0]
            infos = socket.getaddrinfo(rev, 0, type=socket.SOCK_STREAM)
        except OSError:
            rev, infos = None, []
        if rev and infos and not all(i[4][0].startswith("127.") for i in infos):
            s = make_server(start=False, extra=["--listen", rev + ":0"])
            with pytest.raises(dgserver.ServerError):
                s.start()
            assert "auth = off" in s.log()


def test_bad_auth_settings(binary, tmp_path):
    for flags in (["--auth", "maybe"], ["--public-role", "admin"]):
        p = subprocess.run([binary, "serve", "--data-dir", str(tmp_path)] + flags,
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 2 and "expected" in p.stderr, p.stderr
    bad = tmp_path / "bad.json"
    bad.write_text('{"keys":[{"id":"x"}]}')
    p = subprocess.run([binary, "serve", "--data-dir", str(tmp_path), "--listen", "127.0.0.1:0",
                        "--auth", "on", "--keys-file", str(bad)],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "keys_file" in p.stderr, p.stderr
