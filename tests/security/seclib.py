"""Constants and helpers of the security suite (imported by conftest.py and the tests)."""

import hashlib
import os

SENTINEL = "DG-SENTINEL-SECRET-5f3a9c"          # in every secret file outside the data dir
OUTSIDE_DB_SENTINEL = "DG-OUTSIDE-DB-SECRET-91ab"  # in a database outside the data dir
OTHER_DB_SENTINEL = "OTHER-DB-SECRET-7c1f"      # in the served database `other`
# Short deadlines keep the resource attacks fast; the memory caps keep them from hurting the
# machine (engines killed at deadline + 1 s, 1 GiB DuckDB budget per engine, 8 GiB address space).
SERVER_FLAGS = ["--timeout-ms", "2000", "--kill-grace-ms", "1000", "--memory-limit", "2GiB",
                "--engine-as-limit", "8GiB", "--threads", "1"]
LEAK_MARKERS = (SENTINEL, OUTSIDE_DB_SENTINEL, OTHER_DB_SENTINEL, "root:x:0:0")


def tree_digest(root):
    """{relative path: sha256} of every regular file under root (symlinks listed as such)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, root)
            if os.path.islink(p):
                out[rel] = "symlink:" + os.readlink(p)
                continue
            h = hashlib.sha256()
            with open(p, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            out[rel] = h.hexdigest()
    return out
