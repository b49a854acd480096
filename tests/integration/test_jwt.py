"""JWT credentials against the real server (docs/auth.md "JWT"): HS256 from a secret file,
RS256 and ES256 from a JWKS (kid) or a PEM key; the classic attacks (alg none, HS/RS
confusion, tampering, wrong key); exp/nbf with leeway, iss and aud, missing claims; the
database claim; rate limits keyed on the subject; tokens never logged; bad JWT settings stop
the start. Tokens are signed by the test (openssl CLI, Python hmac), not by duckgate."""

import json
import os
import subprocess
import time

import pytest

from dgserver import assert_error
from jwt_helpers import AUDIENCE, ISSUER, JwtKeys, b64u, bearer


@pytest.fixture(scope="module")
def jk(tmp_path_factory):
    return JwtKeys(str(tmp_path_factory.mktemp("jwtkeys")))


@pytest.fixture(scope="module")
def jwt_server(make_server, jk):
    return make_server(extra=jk.server_flags())


def q(s, token, db="main", sql="SELECT 42 AS x"):
    return s.query(db, sql, headers=bearer(token))


def refused(resp, reason=None):
    err = assert_error(resp, 401, "UNAUTHORIZED")
    # RFC 6750: a presented token that failed is an invalid_token.
    assert resp.headers.get("WWW-Authenticate", "") == \
        'Bearer realm="duckgate", error="invalid_token"', resp.headers
    if reason:
        assert reason in err["message"], err
    return err


def test_valid_tokens_each_algorithm(jwt_server, jk):
    c = jk.claims()
    for tok in (jk.hs256(c), jk.rs256(c), jk.es256(c), jk.es256(c, kid=None)):
        r = q(jwt_server, tok)
        assert r.status_code == 200, r.text
        assert r.json()["rows"] == [[42]]
    # X-API-Key carries a JWT as well.
    r = jwt_server.query("main", "SELECT 1", headers={"X-API-Key": jk.hs256(c)})
    assert r.status_code == 200, r.text


def test_roles_and_database_claim(jwt_server, jk):
    viewer = jk.hs256(jk.claims(role="viewer"))
    assert_error(q(jwt_server, viewer), 403, "FORBIDDEN")
    assert jwt_server.get("/api/databases", headers=bearer(viewer)).status_code == 200
    scoped = jk.rs256(jk.claims(role="analyst", dbs=["main"]))
    assert q(jwt_server, scoped).status_code == 200
    assert_error(q(jwt_server, scoped, db="other"), 403, "FORBIDDEN")
    names = [d["name"] for d in
             jwt_server.get("/api/databases", headers=bearer(scoped)).json()["databases"]]
    assert names == ["main"]
    admin = jk.es256(jk.claims(role="admin"))
    assert q(jwt_server, admin, db="other", sql="SELECT count(*) FROM private_t").status_code == 200


def test_time_claims(jwt_server, jk):
    now = int(time.time())
    refused(q(jwt_server, jk.hs256(jk.claims(exp=now - 120))), "expired")
    # Within the default 30 s leeway.
    assert q(jwt_server, jk.hs256(jk.claims(exp=now - 5))).status_code == 200
    refused(q(jwt_server, jk.hs256(jk.claims(nbf=now + 600))), "not valid yet")
    assert q(jwt_server, jk.hs256(jk.claims(nbf=now + 5))).status_code == 200
    refused(q(jwt_server, jk.hs256(jk.claims(exp=None))), "no exp")


def test_issuer_audience_and_claims(jwt_server, jk):
    refused(q(jwt_server, jk.hs256(jk.claims(iss="https://evil.test"))), "issuer")
    refused(q(jwt_server, jk.hs256(jk.claims(iss=None))), "issuer")
    refused(q(jwt_server, jk.hs256(jk.claims(aud="someone-else"))), "audience")
    assert q(jwt_server, jk.hs256(jk.claims(aud=["x", AUDIENCE]))).status_code == 200
    refused(q(jwt_server, jk.hs256(jk.claims(aud=["x", "y"]))), "audience")
    refused(q(jwt_server, jk.hs256(jk.claims(sub=None))), "sub")
    refused(q(jwt_server, jk.hs256(jk.claims(role=None))), "role")
    refused(q(jwt_server, jk.hs256(jk.claims(role="superuser"))), "role")
    refused(q(jwt_server, jk.hs256(jk.claims(dbs=[]))), "database claim")
    refused(q(jwt_server, jk.hs256(jk.claims(dbs=["../x"]))), "database claim")


def test_attacks(jwt_server, jk):
    c = jk.claims(role="admin")
    # alg none, with and without a signature.
    unsigned = b64u(json.dumps({"alg": "none"})) + "." + b64u(json.dumps(c))
    refused(q(jwt_server, unsigned + "."))
    refused(q(jwt_server, unsigned + ".c2ln"), "algorithm")
    # HS256 "signed" with the RSA public key (PEM bytes) as the HMAC secret.
    refused(q(jwt_server, jk.hs256(c, secret=jk.pem_text(jk.rsa))), "signature")
    # A token signed by a key the server does not have, under a known kid.
    refused(q(jwt_server, jk.rs256(c, key=jk.rsa2)), "signature")
    refused(q(jwt_server, jk.es256(c, key=jk.ec2)), "signature")
    refused(q(jwt_server, jk.rs256(c, kid="unknown")), "key id")
    # Tampered payload: a viewer token with its payload swapped for an admin one.
    tok = jk.hs256(jk.claims(role="viewer"))
    h, _, sig = tok.split(".")
    refused(q(jwt_server, h + "." + b64u(json.dumps(c)) + "." + sig), "signature")
    # Malformed encodings and oversized tokens.
    refused(q(jwt_server, tok.replace(".", "..", 1)))
    refused(q(jwt_server, h + ".e30=." + sig))
    refused(q(jwt_server, jk.hs256(json.dumps(c) + "x")), "JSON")
    big = jk.hs256(jk.claims(pad="x" * 9000))
    refused(q(jwt_server, big))
    # A bad token is refused even on routes the public role could use, and on /health only
    # nothing is checked.
    assert jwt_server.get("/health", headers=bearer(unsigned + ".")).status_code == 200


def test_hs_rs_confusion_pem_server(make_server, jk):
    """A server with only an RSA PEM key: RS256 works, HS256 is not even considered."""
    s = make_server(extra=jk.server_flags(jwks=False, secret=False, pem=jk.rsa))
    c = jk.claims()
    assert q(s, jk.rs256(c, kid=None)).status_code == 200
    refused(q(s, jk.hs256(c, secret=jk.pem_text(jk.rsa))), "algorithm")
    refused(q(s, jk.hs256(c)), "algorithm")
    refused(q(s, jk.es256(c)), "algorithm")


def test_jwks_rotation_without_restart(make_server, jk, tmp_path):
    """The identity provider publishes a new key: rewriting the JWKS file is enough."""
    jwks = tmp_path / "rotating.jwks"
    with open(jk.jwks_file) as f:
        doc = json.load(f)
    jwks.write_text(json.dumps(doc))
    s = make_server(extra=["--auth", "on", "--jwt-jwks-file", str(jwks)])
    new_tok = jk.rs256(jk.claims(), key=jk.rsa2, kid="r9")
    refused(q(s, new_tok), "key id")
    doc["keys"].append(dict(jk._jwk_rsa(jk.rsa2, "r9")))
    tmp = tmp_path / "rotating.jwks.tmp"
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, jwks)
    end = time.monotonic() + 10
    while q(s, new_tok).status_code != 200:
        assert time.monotonic() < end, s.log()[-2000:]
        time.sleep(0.2)
    assert q(s, jk.rs256(jk.claims(), kid="r1")).status_code == 200
    # A broken file keeps the keys in force.
    jwks.write_text("{broken")
    time.sleep(1.5)
    assert q(s, new_tok).status_code == 200
    assert "JWT key reload failed" in s.log()


def test_rate_limit_keys_on_subject(make_server, jk):
    s = make_server(extra=jk.server_flags() + ["--rate-limit", "on", "--rate-burst-per-s", "3",
                                               "--rate-per-min", "1000"])
    a, b = jk.hs256(jk.claims(sub="ann")), jk.hs256(jk.claims(sub="ben"))
    codes_a = [q(s, a).status_code for _ in range(5)]
    codes_b = [q(s, b).status_code for _ in range(2)]
    assert codes_a[:3] == [200, 200, 200] and 429 in codes_a[3:], codes_a
    assert codes_b == [200, 200], codes_b


def test_tokens_not_logged(make_server, jk):
    s = make_server(extra=jk.server_flags() + ["--log-level", "debug"])
    good = jk.hs256(jk.claims(sub="logcheck"))
    bad = jk.hs256(jk.claims(exp=1))
    q(s, good)
    q(s, bad)
    s.get("/api/databases", headers=bearer(bad))
    log = s.log()
    for tok in (good, bad):
        for part in tok.split("."):
            assert part not in log
    assert "principal=jwt:logcheck" in log or "refused" in log


def test_jwt_needs_auth_on_and_keys(make_server, jk):
    # auth off: credentials are ignored, every caller is public (analyst by default).
    s = make_server(extra=["--jwt-secret-file", jk.secret_file])
    assert q(s, "not.a.token").status_code == 200
    # auth on without JWT keys: a JWT is refused with a reason.
    s = make_server(extra=["--auth", "on"])
    refused(q(s, jk.hs256(jk.claims())), "not enabled")


@pytest.mark.parametrize("flags,words", [
    (["--jwt-algorithms", "HS256"], "jwt_algorithms"),
    (["--jwt-algorithms", "none"], "jwt_algorithms"),
    (["--jwt-secret-file", "SHORT"], "32 bytes"),
    (["--jwt-public-key-file", "/nonexistent/key.pem"], "/nonexistent/key.pem"),
    (["--jwt-jwks-file", "SHORT"], "JWKS"),
])
def test_bad_jwt_settings_stop_the_start(binary, jk, tmp_path, flags, words):
    short = tmp_path / "short"
    short.write_text("tooshort\n")
    flags = [str(short) if f == "SHORT" else f for f in flags]
    base = ["--auth", "on", "--jwt-public-key-file", jk.rsa["pub"]]
    if "--jwt-public-key-file" in flags:
        base = ["--auth", "on"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUCKGATE_")}
    p = subprocess.run([binary, "serve", "--data-dir", str(tmp_path), "--listen", "127.0.0.1:0",
                        "--state-dir", str(tmp_path / "st")] + base + flags,
                       capture_output=True, text=True, timeout=60, env=env)
    assert p.returncode == 2, p.stderr[-2000:]
    assert words in p.stderr, p.stderr[-2000:]
