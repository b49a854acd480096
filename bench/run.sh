#!/usr/bin/env bash
# duckgate HTTP benchmarks (run by hand or `make bench`; never part of the default test suite).
#
# Measures with wrk (-t2, 16 and 64 connections, --latency) the req/s and p50/p99 latency of
#   health  GET /health                                   (the HTTP floor)
#   point   GET /api/query/bench?sql=SELECT * FROM t WHERE id = ?&params=[id]
#           on a 1M-row table with a primary key, sorted by id
# and, for queries, the server-side time (Server-Timing durations, else JSON elapsed_ms) next to
# the end-to-end latency. Every cell is the median of RUNS runs; prints a markdown table.
#
# Environment: DUCKGATE_BIN (default build-release/duckgate, else build/duckgate), RUNS (5),
# DURATION (10s), CONNS ("16 64"), THREADS (2), ENGINES (2), SLOTS (2), ROWS (1000000),
# SCENARIOS ("health point"), KEEP=1 keeps the temp dir.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
. "$ROOT/bench/lib.sh"

BIN=${DUCKGATE_BIN:-}
if [ -z "$BIN" ]; then
    if [ -x build-release/duckgate ]; then BIN=build-release/duckgate; else BIN=build/duckgate; fi
fi
[ -x "$BIN" ] || { echo "bench: no binary at $BIN (make release)" >&2; exit 1; }
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
# The streaming benchmark (bench/stream/run.sh) runs first, alone on the machine; STREAM=0 skips
# it, STREAM_ROWS sets its table size (default 10M).
if [ "${STREAM:-1}" = 1 ]; then
    DUCKGATE_BIN="$BIN" ROWS="${STREAM_ROWS:-10000000}" bash "$ROOT/bench/stream/run.sh"
fi
command -v wrk >/dev/null || { echo "bench: wrk not installed (tools/setup.sh)" >&2; exit 1; }

RUNS=${RUNS:-5}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-"16 64"}
THREADS=${THREADS:-2}
ENGINES=${ENGINES:-2}
SLOTS=${SLOTS:-2}
ROWS=${ROWS:-1000000}
SCENARIOS=${SCENARIOS:-"health point"}

WORK=$(mktemp -d /tmp/dg-bench.XXXXXX)
SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        local engines
        engines=$(cat /proc/"$SERVER_PID"/task/*/children 2>/dev/null || true)
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$SERVER_PID" 2>/dev/null; then
            # Did not stop in 10 s: kill it and the engines it had.
            kill -KILL "$SERVER_PID" 2>/dev/null || true
            for p in $engines; do kill -KILL "$p" 2>/dev/null || true; done
        fi
    fi
    [ "${KEEP:-0}" = 1 ] && echo "bench: kept $WORK" >&2 || rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

mkdir -p "$WORK/data" "$WORK/state"
echo "bench: binary $BIN" >&2
echo "bench: building the $ROWS-row table" >&2
"$BIN" exec "$WORK/data/bench.duckdb" "
CREATE TABLE t (id BIGINT PRIMARY KEY, name VARCHAR, score DOUBLE, cat INTEGER, created DATE);
INSERT INTO t SELECT i, 'name_' || i, i * 0.5, CAST(i % 100 AS INTEGER), DATE '2020-01-01' + CAST(i % 1000 AS INTEGER)
  FROM range($ROWS) r(i) ORDER BY i;
CHECKPOINT;" >/dev/null

dg_bench_serve "$WORK/server.log" "$BIN" --data-dir "$WORK/data" --state-dir "$WORK/state" \
    --engines "$ENGINES" --slots "$SLOTS"
SERVER_PID=$DG_PID
URL=$DG_URL
# Sanity: the lookup answers.
if [[ " $SCENARIOS " == *" point "* ]]; then
    code=$(curl -s -o "$WORK/sanity.json" -w '%{http_code}' \
        "$URL/api/query/bench?sql=SELECT%20*%20FROM%20t%20WHERE%20id%20%3D%20%3F&params=%5B42%5D")
    if [ "$code" != 200 ]; then
        echo "bench: the point query answered $code: $(head -c 300 "$WORK/sanity.json")" >&2
        exit 1
    fi
fi
echo "bench: server on $URL (engines=$ENGINES slots=$SLOTS), $RUNS runs x $DURATION" >&2

RESULTS="$WORK/results.txt"
: >"$RESULTS"
cd "$ROOT/bench/http"
for sc in $SCENARIOS; do
    for c in $CONNS; do
        wrk -t"$THREADS" -c"$c" -d2s "$URL" -s "$sc.lua" >/dev/null 2>&1 || true # warm-up
        for r in $(seq 1 "$RUNS"); do
            line=$(DG_BENCH_ROWS=$ROWS wrk -t"$THREADS" -c"$c" -d"$DURATION" --latency -s "$sc.lua" "$URL" \
                | grep '^DGBENCH' || true)
            [ -n "$line" ] || { echo "bench: wrk gave no result for $sc c=$c" >&2; continue; }
            echo "bench: $sc c=$c run $r: ${line#DGBENCH }" >&2
            echo "$sc $c $line" >>"$RESULTS"
        done
    done
done

/usr/bin/python3 - "$RESULTS" "$RUNS" "$DURATION" "$(nproc)" <<'PY'
import statistics, sys
path, runs, dur, cpus = sys.argv[1:5]
rows = {}
for ln in open(path):
    sc, c, _tag, *kv = ln.split()
    d = dict(x.split("=", 1) for x in kv)
    rows.setdefault((sc, int(c)), []).append(d)

def med(ds, k):
    vals = [float(d[k]) for d in ds if d.get(k) not in (None, "NA")]
    return statistics.median(vals) if vals else None

def f(v, fmt="%.2f"):
    return "—" if v is None else fmt % v

print()
print("duckgate HTTP benchmark: median of %s runs x %s, wrk -t2, %s CPUs" % (runs, dur, cpus))
print()
print("| scenario | conns | req/s | p50 ms | p99 ms | server exec p50 ms | server exec p99 ms | queue p50 ms | p50 outside the server ms | non-2xx | socket errors |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
health = {}
for (sc, c), ds in sorted(rows.items()):
    rps, p50, p99 = med(ds, "rps"), med(ds, "p50_ms"), med(ds, "p99_ms")
    e50, e99, q50, s50 = (med(ds, k) for k in ("exec_p50_ms", "exec_p99_ms", "queue_p50_ms",
                                                 "srv_p50_ms"))
    if sc == "health":
        health[c] = rps
    outside = (p50 - s50) if (p50 is not None and s50 is not None) else None
    print("| %s | %d | %s | %s | %s | %s | %s | %s | %s | %d | %d |" % (
        sc, c, f(rps, "%.0f"), f(p50, "%.3f"), f(p99, "%.3f"), f(e50, "%.3f"), f(e99, "%.3f"),
        f(q50, "%.3f"), f(outside, "%.3f"), sum(int(d["non2xx"]) for d in ds),
        sum(int(d["errors"]) for d in ds)))
print()
print("server exec = Server-Timing execute+encode (else JSON elapsed_ms); queue = Server-Timing "
      "queue; outside = end-to-end p50 minus the server-measured p50 (HTTP, relay, client).")
print()
for (sc, c), ds in sorted(rows.items()):
    if sc != "health" and health.get(c):
        print("- %s at %d connections: %.1f%% of the /health req/s floor" % (
            sc, c, 100.0 * med(ds, "rps") / health[c]))
PY
