"""The role x route matrix (issue #4, docs/auth.md): every kind of caller against every route,
with the status each must get. Callers: anonymous with public_role none, anonymous with
public_role viewer, viewer/analyst/admin API keys, a revoked key, a malformed key and a JWT
analyst. Admin routes answer 401 to anonymous or bad credentials and 403 to other roles.
Every route must exist: the admin key never gets 404 NOT_FOUND from the route table."""

import json
import os
import subprocess

import pytest

from dgserver import error_body
from jwt_helpers import JwtKeys, bearer

CALLERS = ["anon", "public_viewer", "viewer", "analyst", "admin", "revoked", "bad", "jwt"]
OK = "ok"  # any 2xx: routes whose success status is the handler's business (200/202/204)
# Past the gate: any answer but 401/403 or a 5xx. For admin routes whose success needs setup
# the matrix does not make (an import directory and file); the gate is what is tested here.
PASSES = "passes"

# Columns follow CALLERS.
OPEN = [200] * 8
VIEWER_PLUS = [401, 200, 200, 200, 200, 401, 401, 200]
ANALYST_PLUS = [401, 401, 403, 200, 200, 401, 401, 200]
ADMIN_ONLY = [401, 401, 403, 403, OK, 401, 401, 403]
ADMIN_GATE = [401, 401, 403, 403, PASSES, 401, 401, 403]
# Named query listing and `@roles public` queries: callers without credentials pass even with
# public_role none; presented credentials go through the gate (bad ones are refused).
PUBLIC_NAMED = [200, 200, 200, 200, 200, 401, 401, 200]

# (method, path, body, expected per caller). {job} is a job id created by the admin.
ROUTES = [
    ("GET", "/health", None, OPEN),
    ("GET", "/ready", None, OPEN),
    ("GET", "/metrics", None, OPEN),
    ("GET", "/api/openapi.json", None, OPEN),
    ("GET", "/api/databases", None, VIEWER_PLUS),
    ("GET", "/api/databases/main", None, VIEWER_PLUS),
    ("GET", "/api/query/main?sql=SELECT%201", None, ANALYST_PLUS),
    ("POST", "/api/query/main", {"sql": "SELECT 1"}, ANALYST_PLUS),
    ("GET", "/api/q/main", None, PUBLIC_NAMED),
    ("GET", "/api/q/main/top", None, VIEWER_PLUS),
    ("POST", "/api/q/main/top", {}, VIEWER_PLUS),
    ("GET", "/api/q/main/pub", None, PUBLIC_NAMED),
    ("GET", "/api/q/main/ana", None, ANALYST_PLUS),
    ("POST", "/api/admin/query/main", {"sql": "SELECT 1"}, ADMIN_ONLY),
    ("GET", "/api/admin/jobs", None, ADMIN_ONLY),
    ("POST", "/api/admin/jobs", {"db": "main", "sql": "SELECT 1"}, ADMIN_ONLY),
    ("GET", "/api/admin/jobs/{job}", None, ADMIN_ONLY),
    ("DELETE", "/api/admin/jobs/{job}", None, ADMIN_ONLY),
    ("GET", "/api/admin/queries", None, ADMIN_ONLY),
    ("GET", "/api/admin/cache", None, ADMIN_ONLY),
    ("DELETE", "/api/admin/cache", None, ADMIN_ONLY),
    ("GET", "/api/admin/cache/main", None, ADMIN_ONLY),
    ("DELETE", "/api/admin/cache/main", None, ADMIN_ONLY),
    ("POST", "/api/admin/reload/main", None, ADMIN_ONLY),
    ("POST", "/api/admin/query/_query_log", {"sql": "SELECT 1"}, ADMIN_GATE),
    ("POST", "/api/admin/import/main", {}, ADMIN_GATE),
    # The staging copy (made, then discarded: the reload above found none to swap in).
    ("POST", "/api/admin/stage/main", None, ADMIN_ONLY),
    ("DELETE", "/api/admin/stage/main", None, ADMIN_ONLY),
]

NAMED = {
    "top.sql": "-- @description first rows\n-- @roles viewer\n"
               "SELECT id, name FROM t ORDER BY id LIMIT 2\n",
    "pub.sql": "-- @description public count\n-- @roles public\nSELECT count(*) AS n FROM t\n",
    "ana.sql": "-- @description analysts only\n-- @roles analyst\nSELECT 1 AS one\n",
}


def keys(binary, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUCKGATE_")}
    return subprocess.run([binary, "keys"] + [str(a) for a in args], capture_output=True,
                          text=True, env=env, timeout=60)


def add_key(binary, path, role, *extra):
    p = keys(binary, "add", "--file", path, "--role", role, *extra)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


@pytest.fixture(scope="module")
def jk(tmp_path_factory):
    return JwtKeys(str(tmp_path_factory.mktemp("jwtkeys")))


def _start(make_server, binary, jk, public_role):
    s = make_server(start=False, extra=jk.server_flags(jwks=False) + [
        "--public-role", public_role, "--keys-file", "KEYS", "--queries-dir", "QDIR"])
    path = s.use_keys_file()
    qdir = os.path.join(s.dir, "queries")
    os.makedirs(os.path.join(qdir, "main"))
    for name, text in NAMED.items():
        with open(os.path.join(qdir, "main", name), "w") as f:
            f.write(text)
    s.args[s.args.index("QDIR")] = qdir
    creds = {
        "anon": None,
        "viewer": add_key(binary, path, "viewer"),
        "analyst": add_key(binary, path, "analyst"),
        "admin": add_key(binary, path, "admin"),
        "revoked": add_key(binary, path, "admin", "--name", "gone"),
        "bad": "dgk_" + "B" * 43,
        "jwt": jk.hs256(jk.claims(sub="matrix", role="analyst", ttl=3600)),
    }
    assert keys(binary, "revoke", "gone", "--file", path).returncode == 0
    s.start()
    s.creds = creds
    return s


@pytest.fixture(scope="module")
def servers(make_server, binary, jk):
    """public_role none (every credentialed caller uses it) and public_role viewer (for the
    anonymous public viewer only)."""
    main = _start(make_server, binary, jk, "none")
    pub = _start(make_server, binary, jk, "viewer")
    # A job to look at and cancel.
    r = main.post("/api/admin/jobs", data=json.dumps({"db": "main", "sql": "SELECT 1"}),
                  headers=dict(bearer(main.creds["admin"]), **{"Content-Type": "application/json"}))
    assert r.status_code == 202, r.text
    main.job = r.json()["id"]
    return main, pub


def send(s, method, path, body, cred):
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if cred:
        headers.update(bearer(cred))
    return s.request(method, path, data=json.dumps(body) if body is not None else None,
                     headers=headers)


def is_unbuilt(resp):
    if resp.status_code != 404:
        return False
    try:
        return error_body(resp)["code"] == "NOT_FOUND"
    except AssertionError:
        return False


@pytest.mark.parametrize("method,path,body,want", ROUTES,
                         ids=["%s %s" % (m, p) for m, p, _, _ in ROUTES])
def test_matrix(servers, method, path, body, want):
    main, pub = servers
    path = path.replace("{job}", main.job)
    probe = send(main, method, path, body, main.creds["admin"])
    assert not is_unbuilt(probe), "%s %s is not in the route table" % (method, path)
    bad = []
    for caller, expect in zip(CALLERS, want):
        s = pub if caller == "public_viewer" else main
        r = send(s, method, path, body, None if caller == "public_viewer" else
                 main.creds[caller])
        got = r.status_code
        if expect == OK:
            ok = 200 <= got < 300
        elif expect == PASSES:
            ok = got not in (401, 403) and got < 500
        else:
            ok = got == expect
        if ok and got in (401, 403):
            err = error_body(r)
            ok = err["code"] == ("UNAUTHORIZED" if got == 401 else "FORBIDDEN")
            ok = ok and (got != 401 or r.headers.get("WWW-Authenticate", "").startswith("Bearer"))
        # Every error answer, also the gate's, says how long it took (Server-Timing total).
        if ok and got >= 400 and "total;dur=" not in r.headers.get("Server-Timing", ""):
            ok = False
            got = "%d without Server-Timing total (%r)" % (got, r.headers.get("Server-Timing"))
        if not ok:
            bad.append("%s: want %s got %s %s" % (caller, expect, got, r.text[:160]))
    assert not bad, "%s %s\n" % (method, path) + "\n".join(bad)
