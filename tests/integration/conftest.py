"""Fixtures of the integration suite: the binary, the fixture databases (built once with
`duckgate exec`), a shared server and a factory for servers with their own flags.
The helpers live in dgserver.py (also used by tests/security)."""

import os
import shutil
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import dgserver  # noqa: E402


def _binary():
    b = dgserver.find_binary()
    if b is None:
        if os.environ.get("DUCKGATE_BIN"):
            pytest.exit("DUCKGATE_BIN=%s is not an executable file" % os.environ["DUCKGATE_BIN"],
                        returncode=1)
        pytest.skip("no duckgate binary (set DUCKGATE_BIN or build build*/duckgate)")
    return b


@pytest.fixture(scope="session")
def binary():
    return _binary()


@pytest.fixture(scope="session")
def tmp_root():
    d = tempfile.mkdtemp(prefix="dg-it-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


# Setup failures of shared fixtures, reported once: pytest would otherwise retry a failing
# session/module fixture for every test (slow when the server hangs at start).
_failed = {}


def _once(key, fn):
    if key in _failed:
        pytest.fail("%s failed earlier: %s" % (key, _failed[key]), pytrace=False)
    try:
        return fn()
    except Exception as ex:  # noqa: BLE001
        _failed[key] = "%s: %s" % (type(ex).__name__, str(ex)[:3000])
        raise


@pytest.fixture(scope="session")
def fixtures(binary, tmp_root):
    def build():
        from all_types_sql import ALL_TYPES_SQL
        fx = dgserver.Fixtures(binary, tmp_root)
        fx.build("main", dgserver.MAIN_DB_SQL)
        fx.build("other", dgserver.SECOND_DB_SQL)
        fx.build("types", ALL_TYPES_SQL)
        return fx
    return _once("fixture databases (duckgate exec)", build)


@pytest.fixture(scope="session")
def make_server(binary, fixtures, tmp_root):
    """Factory: make_server(engines=, slots=, extra=[flags], dbs=) -> started Server. Every server
    is killed at the end of the session at the latest (tests may close theirs earlier)."""
    servers = []

    def make(dbs=("main", "other", "types"), engines=2, slots=2, extra=(), env=None, start=True):
        s = dgserver.Server(binary, fixtures, dbs=dbs, engines=engines, slots=slots, extra=extra,
                            env=env, tmp_root=tmp_root)
        servers.append(s)
        return s.start() if start else s

    yield make
    findings = []
    for s in servers:
        s.close()
        findings += ["%s: %s" % (os.path.basename(s.dir), ln) for ln in s.findings]
    if findings:
        pytest.fail("sanitizer reports in server logs:\n" + "\n".join(findings[:50]),
                    pytrace=False)


@pytest.fixture(scope="module")
def server(make_server, request):
    """A server shared by the tests of one module; at the end it must still be alive."""
    s = _once("shared server of " + request.module.__name__, make_server)
    yield s
    alive = s.alive()
    log = s.log()
    s.close()
    assert alive, "server died during the module:\n" + log[-3000:]
