"""Reads corpus.txt (format described at its top) into Case records and expands placeholders."""

import json
import os
import re
from collections import namedtuple

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus.txt")

Case = namedtuple("Case", "id category sql expect codes timeout_ms resource rows line")

_ESC = re.compile(r"\\(n|t|r|\\|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8})")


def _unescape(s):
    def rep(m):
        e = m.group(1)
        if e == "n":
            return "\n"
        if e == "t":
            return "\t"
        if e == "r":
            return "\r"
        if e == "\\":
            return "\\"
        return chr(int(e[1:], 16))
    return _ESC.sub(rep, s)


def load(path=CORPUS):
    cases = []
    cur = None
    counts = {}
    with open(path, encoding="utf-8") as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.rstrip("\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            m = re.match(r"^\[([a-z_]+)\]\s*(.*)$", line)
            if m:
                opts = {"expect": None, "codes": None, "timeout_ms": None, "resource": False}
                for tok in m.group(2).split():
                    k, _, v = tok.partition("=")
                    if k == "expect":
                        opts["expect"] = tuple(int(x) for x in v.split(","))
                    elif k == "codes":
                        opts["codes"] = tuple(v.split(","))
                    elif k == "timeout_ms":
                        opts["timeout_ms"] = int(v)
                    elif k == "resource":
                        opts["resource"] = True
                    else:
                        raise ValueError("%s:%d: unknown option %r" % (path, lineno, tok))
                if not opts["expect"]:
                    raise ValueError("%s:%d: section without expect=" % (path, lineno))
                cur = (m.group(1), opts)
                continue
            if cur is None:
                raise ValueError("%s:%d: statement before any section" % (path, lineno))
            rows = None
            if " ==> " in line:
                line, _, want = line.partition(" ==> ")
                rows = json.loads(want)
            sql = _unescape(line[2:]) if line.startswith("~ ") else line
            cat, opts = cur
            counts[cat] = counts.get(cat, 0) + 1
            cases.append(Case("%s-%03d" % (cat, counts[cat]), cat, sql, opts["expect"],
                              opts["codes"], opts["timeout_ms"], opts["resource"], rows, lineno))
    return cases


# -- placeholders --------------------------------------------------------------------------------

def _gen(kind, n):
    if kind == "PARENS":
        return "(" * n + "1" + ")" * n
    if kind == "JSON_NEST":
        return "[" * n + "]" * n
    if kind == "CTE_CHAIN":
        parts = ["c0 AS (SELECT 1 AS x)"]
        parts += ["c%d AS (SELECT x + 1 AS x FROM c%d)" % (i, i - 1) for i in range(1, n)]
        return "WITH " + ", ".join(parts) + " SELECT x FROM c%d" % (n - 1)
    if kind == "IN_LIST":
        return ",".join(str(i) for i in range(n))
    if kind == "FUNC_NEST":
        return "abs(" * n + "1" + ")" * n
    if kind == "SUBQ_NEST":
        return "SELECT * FROM (" * n + "SELECT 1 AS x" + ") s" * n
    if kind == "LIST_NEST":
        return "[" * n + "1" + "]" * n
    if kind == "UNION_CHAIN":
        return " UNION ALL ".join("SELECT %d AS x" % i for i in range(n))
    raise ValueError("unknown generator " + kind)


def expand(sql, env):
    """Replaces ${NAME} from env and ${GEN:N} generators."""
    def rep(m):
        name, _, arg = m.group(1).partition(":")
        if arg:
            return _gen(name, int(arg))
        if name not in env:
            raise KeyError("unknown placeholder ${%s}" % name)
        return env[name]
    return re.sub(r"\$\{([A-Z_]+(?::\d+)?)\}", rep, sql)
