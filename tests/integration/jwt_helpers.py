"""JWT material for the black-box tests: keys made with the `openssl` CLI, tokens signed here
(HS256 with Python's hmac, RS256/ES256 with `openssl dgst -sign`), independent of duckgate's
own JWT code. Only the Python stdlib and the openssl binary are used."""

import base64
import hashlib
import hmac
import json
import os
import subprocess
import time

ISSUER = "https://issuer.duckgate.test"
AUDIENCE = "duckgate-test"


def b64u(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _openssl(*args, data=None):
    p = subprocess.run(["openssl"] + list(args), input=data, capture_output=True, timeout=60)
    if p.returncode != 0:
        raise RuntimeError("openssl %s failed: %s" % (" ".join(args), p.stderr.decode()[-500:]))
    return p.stdout


def _der_ecdsa_to_raw(der):
    """ECDSA-Sig-Value (DER SEQUENCE of two INTEGERs) -> JOSE r || s, 32 bytes each."""
    assert der[0] == 0x30
    i = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7F)
    out = b""
    for _ in range(2):
        assert der[i] == 0x02
        n = der[i + 1]
        v = der[i + 2:i + 2 + n].lstrip(b"\0")
        out += v.rjust(32, b"\0")
        i += 2 + n
    return out


class JwtKeys:
    """An HS256 secret, two RSA-2048 keys, two EC P-256 keys, a JWKS of the first RSA (kid
    "r1") and the first EC key (kid "e1"), all written as files under dir."""

    def __init__(self, directory):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self.secret = os.urandom(24).hex().encode()  # 48 ASCII bytes
        self.secret_file = self._path("hs.secret")
        with open(self.secret_file, "wb") as f:
            f.write(self.secret + b"\n")
        self.rsa = self._gen("rsa", ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"])
        self.rsa2 = self._gen("rsa2", ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"])
        self.ec = self._gen("ec", ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"])
        self.ec2 = self._gen("ec2", ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"])
        self.jwks_file = self._path("keys.jwks")
        with open(self.jwks_file, "w") as f:
            json.dump({"keys": [self._jwk_rsa(self.rsa, "r1"), self._jwk_ec(self.ec, "e1")]}, f)

    def _path(self, name):
        return os.path.join(self.dir, name)

    def _gen(self, name, args):
        priv, pub = self._path(name + ".key"), self._path(name + ".pub.pem")
        _openssl("genpkey", *args, "-out", priv)
        _openssl("pkey", "-in", priv, "-pubout", "-out", pub)
        return {"priv": priv, "pub": pub}

    def _jwk_rsa(self, k, kid):
        out = _openssl("rsa", "-pubin", "-in", k["pub"], "-noout", "-modulus").decode()
        n = bytes.fromhex(out.strip().split("=", 1)[1])
        return {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid, "n": b64u(n),
                "e": b64u((65537).to_bytes(3, "big"))}

    def _jwk_ec(self, k, kid):
        der = _openssl("pkey", "-pubin", "-in", k["pub"], "-outform", "DER")
        point = der[-65:]
        assert point[0] == 4
        return {"kty": "EC", "crv": "P-256", "use": "sig", "kid": kid, "x": b64u(point[1:33]),
                "y": b64u(point[33:])}

    def pem_text(self, k):
        with open(k["pub"], "rb") as f:
            return f.read()

    # tokens ------------------------------------------------------------------------------

    @staticmethod
    def claims(sub="alice", role="analyst", ttl=300, iss=ISSUER, aud=AUDIENCE, **extra):
        now = int(time.time())
        c = {"sub": sub, "role": role, "exp": now + ttl, "iat": now}
        if iss is not None:
            c["iss"] = iss
        if aud is not None:
            c["aud"] = aud
        c.update(extra)
        return {k: v for k, v in c.items() if v is not None}

    @staticmethod
    def _signing_input(header, claims):
        h = header if isinstance(header, str) else json.dumps(header, separators=(",", ":"))
        p = claims if isinstance(claims, str) else json.dumps(claims, separators=(",", ":"))
        return b64u(h) + "." + b64u(p)

    def hs256(self, claims, secret=None, header=None):
        msg = self._signing_input(header or {"alg": "HS256", "typ": "JWT"}, claims)
        sig = hmac.new(secret if secret is not None else self.secret, msg.encode(),
                       hashlib.sha256).digest()
        return msg + "." + b64u(sig)

    def rs256(self, claims, key=None, kid="r1", header=None):
        hdr = header or dict({"alg": "RS256"}, **({"kid": kid} if kid else {}))
        msg = self._signing_input(hdr, claims)
        sig = _openssl("dgst", "-sha256", "-sign", (key or self.rsa)["priv"], data=msg.encode())
        return msg + "." + b64u(sig)

    def es256(self, claims, key=None, kid="e1"):
        hdr = dict({"alg": "ES256"}, **({"kid": kid} if kid else {}))
        msg = self._signing_input(hdr, claims)
        der = _openssl("dgst", "-sha256", "-sign", (key or self.ec)["priv"], data=msg.encode())
        return msg + "." + b64u(_der_ecdsa_to_raw(der))

    def server_flags(self, jwks=True, secret=True, pem=None):
        """duckgate flags for these keys, with auth on and issuer/audience checks."""
        f = ["--auth", "on", "--jwt-issuer", ISSUER, "--jwt-audience", AUDIENCE]
        if secret:
            f += ["--jwt-secret-file", self.secret_file]
        if jwks:
            f += ["--jwt-jwks-file", self.jwks_file]
        if pem:
            f += ["--jwt-public-key-file", pem["pub"]]
        return f


def bearer(token):
    return {"Authorization": "Bearer " + token}
