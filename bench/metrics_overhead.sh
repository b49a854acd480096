#!/usr/bin/env bash
# Cost of the observability hot path: point-lookup (or /health) req/s with request metrics and the
# query log on vs off (run by hand; never part of the default test suite).
#
# Configurations, each its own server on the same 1M-row table, measured in alternation
# (A B C A B C ...) so drift on the machine hits all of them alike:
# (all with --rate-limit off, so the one benchmark client is not refused with 429)
#   off      --metrics-listen off  --access-log off  --query-log off  (nothing per request)
#   metrics  --metrics-listen main --access-log off  --query-log off  (request + query metrics)
#   qlog     --metrics-listen main --access-log off  --query-log on   (metrics + query log: the
#            issue's "metrics + query log on vs off" pair is qlog vs off)
#   full     --metrics-listen main --access-log text --query-log on   (the defaults: metrics,
#            access log and query log)
# Every configuration has slow-query lines off (--slow-query-ms 0): a loaded machine would
# otherwise log some point lookups as slow in one configuration and not another.
# and, when BASE_BIN is set, that binary with its defaults (e.g. a build of the previous commit).
# A background scraper hits /metrics every SCRAPE_S seconds on the servers that serve it, as
# Prometheus would. Prints the median req/s of RUNS runs and the change against `off`.
#
# HOTPATH=1 (default) first times the metrics updates and the query log record of one request
# alone (no server noise).
# Environment: DUCKGATE_BIN (default build-release/duckgate), BASE_BIN, RUNS (5), DURATION (5s),
# CONNS (16), THREADS (2), ENGINES (2), SLOTS (2), ROWS (1000000), SCRAPE_S (1),
# SCENARIO (point; health = the front alone, where the per-request cost is most visible).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
. "$ROOT/bench/lib.sh"
BIN=${DUCKGATE_BIN:-build-release/duckgate}
[ -x "$BIN" ] || { echo "bench: no binary at $BIN" >&2; exit 1; }
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
command -v wrk >/dev/null || { echo "bench: wrk not installed (tools/setup.sh)" >&2; exit 1; }
RUNS=${RUNS:-5}
DURATION=${DURATION:-5s}
CONNS=${CONNS:-16}
THREADS=${THREADS:-2}
ENGINES=${ENGINES:-2}
SLOTS=${SLOTS:-2}
ROWS=${ROWS:-1000000}
SCRAPE_S=${SCRAPE_S:-1}
SCENARIO=${SCENARIO:-point}

# The metrics hot path alone (bench/metrics/hotpath.c), from the libraries next to the binary.
BUILD=$(dirname "$BIN")
if [ "${HOTPATH:-1}" = 1 ] && [ -f "$BUILD/src/metrics/libdg_metrics.a" ]; then
    cc -O2 -std=c11 -include src/core/dg_feat.h -Isrc bench/metrics/hotpath.c \
        "$BUILD/src/metrics/libdg_metrics.a" "$BUILD/src/core/libdg_core.a" -lpthread -lm \
        -o "${TMPDIR:-/tmp}/dg-hotpath.$$" && "${TMPDIR:-/tmp}/dg-hotpath.$$"
    rm -f "${TMPDIR:-/tmp}/dg-hotpath.$$"
fi
# The query log's per-request part alone (bench/qlog/hotpath.c): CPU per recorded row.
if [ "${HOTPATH:-1}" = 1 ] && [ -f "$BUILD/src/qlog/libdg_qlog.a" ]; then
    cc -O2 -std=c11 -include src/core/dg_feat.h -Isrc bench/qlog/hotpath.c \
        "$BUILD/src/qlog/libdg_qlog.a" "$BUILD/src/core/libdg_core.a" -lpthread \
        -o "${TMPDIR:-/tmp}/dg-qlog-hotpath.$$" && "${TMPDIR:-/tmp}/dg-qlog-hotpath.$$"
    rm -f "${TMPDIR:-/tmp}/dg-qlog-hotpath.$$"
fi

WORK=$(mktemp -d /tmp/dg-mbench.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do
        kill -TERM "$p" 2>/dev/null || true
    done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

mkdir -p "$WORK/data"
"$BIN" exec "$WORK/data/bench.duckdb" "
CREATE TABLE t (id BIGINT PRIMARY KEY, name VARCHAR, score DOUBLE, cat INTEGER, created DATE);
INSERT INTO t SELECT i, 'name_' || i, i * 0.5, CAST(i % 100 AS INTEGER), DATE '2020-01-01' + CAST(i % 1000 AS INTEGER)
  FROM range($ROWS) r(i) ORDER BY i;
CHECKPOINT;" >/dev/null

declare -A URL
start() { # name bin flags...
    local name=$1 bin=$2
    shift 2
    mkdir -p "$WORK/$name"
    dg_bench_serve "$WORK/$name.log" "$bin" --data-dir "$WORK/data" --state-dir "$WORK/$name" \
        --engines "$ENGINES" --slots "$SLOTS" "$@"
    PIDS+=("$DG_PID")
    URL[$name]=$DG_URL
}
NAMES="off metrics qlog full"
# Rate limits off: one benchmark client would otherwise measure 429s.
start off "$BIN" --rate-limit off --metrics-listen off --access-log off --query-log off \
    --slow-query-ms 0
start metrics "$BIN" --rate-limit off --metrics-listen main --access-log off --query-log off \
    --slow-query-ms 0
start qlog "$BIN" --rate-limit off --metrics-listen main --access-log off --query-log on \
    --slow-query-ms 0
start full "$BIN" --rate-limit off --metrics-listen main --access-log text --query-log on \
    --slow-query-ms 0
if [ -n "${BASE_BIN:-}" ]; then
    start base "$(cd "$(dirname "$BASE_BIN")" && pwd)/$(basename "$BASE_BIN")"
    NAMES="$NAMES base"
fi
# The access log of `full` goes to its stderr file, as it would to a journal.

scraper() { # url
    while :; do curl -s -o /dev/null "$1/metrics" || true; sleep "$SCRAPE_S"; done
}

RESULTS="$WORK/results.txt"
: >"$RESULTS"
cd "$ROOT/bench/http"
for name in $NAMES; do
    wrk -t"$THREADS" -c"$CONNS" -d2s -s "$SCENARIO.lua" "${URL[$name]}" >/dev/null 2>&1 || true
done
for r in $(seq 1 "$RUNS"); do
    for name in $NAMES; do
        scraper "${URL[$name]}" &
        SP=$!
        line=$(DG_BENCH_ROWS=$ROWS wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency \
            -s "$SCENARIO.lua" "${URL[$name]}" | grep '^DGBENCH' || true)
        kill "$SP" 2>/dev/null || true
        wait "$SP" 2>/dev/null || true
        echo "bench: $name run $r: ${line#DGBENCH }" >&2
        echo "$name $line" >>"$RESULTS"
    done
done

# The query log must keep up: rows it had to drop would make its cost look smaller than it is.
for name in qlog full; do
    d=$(curl -s "${URL[$name]}/metrics" | sed -n 's/^duckgate_query_log_dropped_total //p')
    echo "bench: $name query log rows dropped: ${d:-?}" >&2
done

/usr/bin/python3 - "$RESULTS" "$RUNS" "$DURATION" "$CONNS" "$SCENARIO" <<'PY'
import statistics, sys
path, runs, dur, conns, scenario = sys.argv[1:6]
rows = {}
for ln in open(path):
    name, _tag, *kv = ln.split()
    d = dict(x.split("=", 1) for x in kv)
    rows.setdefault(name, []).append(d)
med = lambda ds, k: statistics.median(float(d[k]) for d in ds)
print("\n%s, median of %s runs x %s, %s connections\n" % (scenario, runs, dur, conns))
print("| config | req/s | p50 ms | p99 ms | vs off | runs req/s |")
print("|---|---:|---:|---:|---:|---|")
off = med(rows["off"], "rps")
for name in ("off", "metrics", "qlog", "full", "base"):
    if name in rows:
        ds = rows[name]
        rps = med(ds, "rps")
        print("| %s | %.0f | %.3f | %.3f | %+.1f%% | %s |" % (
            name, rps, med(ds, "p50_ms"), med(ds, "p99_ms"), 100.0 * (rps / off - 1),
            " ".join("%.0f" % float(d["rps"]) for d in ds)))
PY
