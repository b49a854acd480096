"""Times every dashboard query of queries/imdb through a real `duckgate serve` (bench/dashboard/
run.sh prepares the database). Parameter values come from the database itself (a trusted
DuckDB, tests/integration/duckdb_reader.py) with a fixed seed; every request is sent one at a
time and timed on the client (request sent -> body received). Prints a Markdown table."""

import argparse
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import requests

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "integration"))
from duckdb_reader import DuckDB  # noqa: E402

ERAS = ["%ds" % y for y in range(1900, 2030, 10)]
GENRES = ["Drama", "Comedy", "Documentary", "Romance", "Action", "Family", "Crime", "Thriller",
          "Horror", "Sci-Fi"]
CATEGORIES = ["actor", "actress", "director", "writer", "producer", "self"]


def to_bytes(s):
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?", s)
    if not m:
        raise SystemExit("bad --memory %s" % s)
    return int(float(m.group(1)) * 1024 ** " KMGT".index(m.group(2) or " "))


def sample(db, n, rnd):
    """Random parameter values drawn from the built database (seeded)."""
    duck = DuckDB()
    try:
        duck.query("ATTACH '%s' AS d (READ_ONLY); USE d" % db)
        # The sample is taken from the filtered rows (a subquery: a table's USING SAMPLE would
        # sample before the WHERE).
        def pick_rows(sql, seed):
            return [r[0] for r in duck.query(
                "SELECT * FROM (%s) USING SAMPLE reservoir(%d ROWS) REPEATABLE (%d)"
                % (sql, n, seed))]
        people = pick_rows("SELECT nconst FROM person_stats WHERE credits > 0", 7)
        # Profiles are opened for people one finds: weight towards prolific ones too.
        smart = pick_rows("SELECT nconst FROM person_stats WHERE smart", 8)
        titles = pick_rows("SELECT tconst FROM titles WHERE numVotes > 0", 9)
        names = pick_rows("SELECT primaryName FROM person_stats WHERE primaryName IS NOT NULL",
                          10)
        tnames = pick_rows("SELECT primaryTitle FROM search_titles WHERE is_full", 11)
    finally:
        duck.close()
    people = [rnd.choice(people + smart) for _ in range(n)]
    # Type-ahead: what a user has typed so far, 1 to 6 characters of a name or a last name.
    def prefixes(src):
        out = []
        for s in src:
            words = s.split()
            w = words[-1] if len(words) > 1 and rnd.random() < 0.4 else s
            out.append(w[: rnd.randint(1, 6)])
        return out
    return people, smart, titles, prefixes(names), prefixes(tnames)


def cases(n, rnd, people, smart, titles, pprefix, tprefix):
    """{query: [params, ...]} with n parameter sets each."""
    def pick(xs):
        return xs[rnd.randrange(len(xs))]
    c = {
        "overview": [{} for _ in range(n)],
        "search_people": [{"q": pprefix[i], "smart": rnd.random() < 0.5,
                           **({"era": pick(ERAS)} if rnd.random() < 0.2 else {})}
                          for i in range(n)],
        "search_titles": [{"q": tprefix[i], **({"genre": pick(GENRES)} if rnd.random() < 0.3
                                               else {}),
                           **({"min_votes": 100} if rnd.random() < 0.3 else {})}
                          for i in range(n)],
        "person": [{"id": people[i]} for i in range(n)],
        "person_filmography": [{"id": people[i]} for i in range(n)],
        "person_decades": [{"id": people[i]} for i in range(n)],
        "compare_people": [{"ids": [pick(smart) for _ in range(rnd.randint(2, 4))]}
                           for _ in range(n)],
        "person_directors": [{"id": pick(smart)} for _ in range(n)],
        "person_costars": [{"id": pick(smart)} for _ in range(n)],
        "similar_titles": [{"id": titles[i]} for i in range(n)],
        "title": [{"id": titles[i]} for i in range(n)],
        "title_people": [{"id": titles[i]} for i in range(n)],
        "prolific": [{"era": pick(ERAS), "category": pick(CATEGORIES)} for _ in range(n)],
    }
    return c


class Server:
    def __init__(self, args):
        self.dir = tempfile.mkdtemp(prefix="dg-dash-srv-")
        self.log = os.path.join(self.dir, "stderr.log")
        data = os.path.dirname(args.db)
        cmd = [args.bin, "serve", "--data-dir", data, "--listen", "127.0.0.1:0",
               "--queries-dir", args.queries, "--cache", "off", "--rate-limit", "off",
               "--engines", str(args.engines), "--state-dir", self.dir,
               "--memory-limit", str(to_bytes(args.memory))]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("DUCKGATE_")}
        self.proc = subprocess.Popen(cmd, stdout=open(self.log, "wb"), stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        deadline = time.monotonic() + 120
        self.port = None
        while time.monotonic() < deadline and self.port is None:
            with open(self.log) as f:
                m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", f.read())
            if m:
                self.port = int(m.group(1))
            elif self.proc.poll() is not None:
                raise SystemExit("server exited:\n" + open(self.log).read())
            else:
                time.sleep(0.1)
        if self.port is None:
            self.stop()
            raise SystemExit("server did not start")

    def stop(self):
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--db", required=True)
    ap.add_argument("--queries", required=True)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--memory", default="7GB")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--engines", type=int, default=1)
    ap.add_argument("--times", default="")
    ap.add_argument("--scale", default="?")
    args = ap.parse_args()

    rnd = random.Random(42)
    plan = cases(args.n, rnd, *sample(args.db, args.n, rnd))
    srv = Server(args)
    base = "http://127.0.0.1:%d/api/q/imdb/" % srv.port
    session = requests.Session()
    results = []
    try:
        for name, plist in plan.items():
            times, rows, errors = [], [], 0
            # Warm-up: prepares the named query and loads its first blocks.
            session.post(base + name, json={"params": plist[0]}, timeout=60)
            for p in plist:
                t0 = time.perf_counter()
                r = session.post(base + name, json={"params": p}, timeout=60)
                dt = (time.perf_counter() - t0) * 1000
                if r.status_code != 200:
                    errors += 1
                    if errors == 1:
                        print("%s %s: %s %s" % (name, p, r.status_code, r.text[:300]),
                              file=sys.stderr)
                    continue
                times.append(dt)
                rows.append(r.json().get("row_count", 0))
            times.sort()
            q = statistics.quantiles(times, n=100) if len(times) > 1 else times * 99
            results.append((name, len(times), errors, q[49], q[94], times[-1],
                            statistics.mean(rows) if rows else 0))
    finally:
        srv.stop()

    times = {}
    if args.times and os.path.exists(args.times):
        for line in open(args.times):
            k, _, v = line.strip().partition("=")
            times[k] = v
    print("\nscale %s, %d requests per query, cache off, memory limit %s, engines %d"
          % (args.scale, args.n, args.memory, args.engines))
    if times:
        print("gen %s s, pipeline build %s s" % (times.get("gen_s", "?"), times.get("build_s", "?")))
    print("\n| query | ok | errors | p50 ms | p95 ms | max ms | avg rows |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print("| %s | %d | %d | %.1f | %.1f | %.1f | %.1f |" % r)


if __name__ == "__main__":
    main()
