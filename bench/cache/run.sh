#!/usr/bin/env bash
# Result cache benchmarks (issue #5; run by hand, never part of the default test suite).
#
#  1. Cache-hit req/s / GET /health req/s at 16 and 64 connections, same server, same run,
#     interleaved (health, hit, hit_small, health, ...), median of RUNS runs each: goal >= 0.8.
#     hit: a 100-row aggregate (~1.9 KB JSON); hit_small: a one-value answer.
#  2. N (200) concurrent identical requests of a ~1 s query: how many ran on an engine
#     (goal 1) and the total wall time (goal <= 1.3 s), median of RUNS runs with a fresh key each.
#  3. A named point-lookup query (bench/point: one row by id, a random id per request) with the
#     cache off, req/s and p99 at LOOKUP_CONNS (16) connections, compared with the same SQL
#     (bound the same way) through /api/query; a second server started with --cache off, median
#     of RUNS runs each, interleaved.
#
# Environment: DUCKGATE_BIN (default build-h-cache-rel/duckgate, else build-release/duckgate),
# RUNS (5), DURATION (10s), CONNS ("16 64"), THREADS (2), ENGINES (2), SLOTS (2),
# FLIGHT_N (200), FLIGHT_S (1.0), LOOKUP_CONNS ("16"), KEEP=1 keeps the temp dir.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
. "$ROOT/bench/lib.sh"

BIN=${DUCKGATE_BIN:-}
if [ -z "$BIN" ]; then
    for b in build-h-cache-rel/duckgate build-release/duckgate build/duckgate; do
        [ -x "$b" ] && { BIN=$b; break; }
    done
fi
[ -n "$BIN" ] && [ -x "$BIN" ] || { echo "bench: no duckgate binary (build a release)" >&2; exit 1; }
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
command -v wrk >/dev/null || { echo "bench: wrk not installed (tools/setup.sh)" >&2; exit 1; }

RUNS=${RUNS:-5}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-"16 64"}
THREADS=${THREADS:-2}
ENGINES=${ENGINES:-2}
SLOTS=${SLOTS:-2}
FLIGHT_N=${FLIGHT_N:-200}
FLIGHT_S=${FLIGHT_S:-1.0}
LOOKUP_CONNS=${LOOKUP_CONNS:-16}

WORK=$(mktemp -d /tmp/dg-bench-cache.XXXXXX)
SERVER_PID=""
SERVER2_PID=""
stop_server() {
    local pid=$1
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    fi
}
cleanup() {
    stop_server "$SERVER_PID"
    stop_server "$SERVER2_PID"
    [ "${KEEP:-0}" = 1 ] && echo "bench: kept $WORK" >&2 || rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

mkdir -p "$WORK/data" "$WORK/state"
echo "bench: binary $BIN" >&2
"$BIN" exec "$WORK/data/bench.duckdb" "
CREATE TABLE t (id BIGINT PRIMARY KEY, name VARCHAR, score DOUBLE, cat INTEGER);
INSERT INTO t SELECT i, 'name_' || i, i * 0.5, CAST(i % 100 AS INTEGER) FROM range(100000) r(i);
CHECKPOINT;" >/dev/null

# The same flags for both scenarios: rate limits off (one client), no access log (both routes
# would pay for it alike; off measures the paths themselves).
dg_bench_serve "$WORK/server.log" "$BIN" --data-dir "$WORK/data" --state-dir "$WORK/state" \
    --engines "$ENGINES" --slots "$SLOTS" --rate-limit off --access-log off
SERVER_PID=$DG_PID
URL=$DG_URL

# A dashboard-sized answer (a 100-row aggregate as one JSON document, ~3 KB), stored by a
# first request; every later one must be a hit (hit.lua counts a miss as status 599).
HIT_PATH="/api/query/bench?sql=SELECT%20cat%2C%20count(*)%20AS%20n%2C%20avg(score)%20AS%20s%20FROM%20t%20GROUP%20BY%20cat%20ORDER%20BY%20cat"
# A tiny answer too (hit_small), to tell the cost of the hit path from the cost of moving and
# parsing a bigger body on this same machine.
SMALL_PATH="/api/query/bench?sql=SELECT%2042%20AS%20answer"
for p in "$HIT_PATH" "$SMALL_PATH"; do
    curl -s -o /dev/null "$URL$p"
    cs=$(curl -s -D - -o /dev/null "$URL$p" | tr -d '\r' | sed -n 's/^Cache-Status: //Ip')
    case "$cs" in "duckgate; hit"*) ;; *) echo "bench: the warm-up of $p did not give a hit: $cs" >&2; exit 1 ;; esac
done
size=$(curl -s "$URL$HIT_PATH" | wc -c)
echo "bench: server on $URL (engines=$ENGINES slots=$SLOTS); hit body $size bytes; $RUNS runs x $DURATION" >&2

RESULTS="$WORK/results.txt"
: >"$RESULTS"
cd "$ROOT/bench/cache"

# measure NAME CONNS RUN PID LUA URL: one measured wrk run (its script's environment comes from
# the caller), appended to RESULTS with the server's CPU time (user + system ticks of PID)
# during the run: per request it does not depend on what else the machine runs.
measure() {
    local name=$1 c=$2 r=$3 pid=$4 lua=$5 url=$6 cpu0 cpu1 line
    cpu0=$(awk '{print $14 + $15}' /proc/"$pid"/stat)
    line=$(wrk -t"$THREADS" -c"$c" -d"$DURATION" --latency -s "$lua" "$url" | grep '^DGBENCH' || true)
    cpu1=$(awk '{print $14 + $15}' /proc/"$pid"/stat)
    [ -n "$line" ] || { echo "bench: wrk gave no result for $name c=$c" >&2; return 0; }
    line="$line cpu_ticks=$((cpu1 - cpu0)) hz=$(getconf CLK_TCK) dur=${DURATION%s}"
    echo "bench: $name c=$c run $r: ${line#DGBENCH }" >&2
    echo "$name $c $line" >>"$RESULTS"
}
for c in $CONNS; do
    wrk -t"$THREADS" -c"$c" -d2s -s health.lua "$URL" >/dev/null 2>&1 || true # warm-up
    DG_HIT_PATH="$HIT_PATH" wrk -t"$THREADS" -c"$c" -d2s -s hit.lua "$URL" >/dev/null 2>&1 || true
    for r in $(seq 1 "$RUNS"); do
        for sc in health hit hit_small; do
            lua=hit.lua path=$HIT_PATH
            [ "$sc" = health ] && lua=health.lua
            [ "$sc" = hit_small ] && path=$SMALL_PATH
            DG_HIT_PATH="$path" measure "$sc" "$c" "$r" "$SERVER_PID" "$lua" "$URL"
        done
    done
done

# Single-flight: calibrate a query to about FLIGHT_S seconds (a counted range), then fire
# FLIGHT_N identical copies at once, with a fresh key (salt) per run.
n=2000000
for _ in 1 2 3 4 5 6; do
    sql="SELECT count(*) AS c FROM range($n) r(i) WHERE hash(i) % 7 <> 99"
    t=$(curl -s -o /dev/null -w '%{time_total}' -H 'Content-Type: application/json' \
        -d "{\"sql\":\"$sql\"}" "$URL/api/query/bench" || true)
    if awk "BEGIN{exit !($t > 0.2)}"; then
        n=$(awk "BEGIN{printf \"%d\", $n * $FLIGHT_S / $t}")
        break
    fi
    n=$((n * 8))
done
for r in $(seq 1 "$RUNS"); do
    line=$(/usr/bin/python3 flight.py "$URL/api/query/bench" "$FLIGHT_N" \
        "SELECT count(*) AS c FROM range($n) r(i) WHERE hash(i) % 7 <> {salt}" "$((1000 + r))")
    echo "bench: flight run $r: $line" >&2
    echo "flight $FLIGHT_N DGFLIGHT $line" >>"$RESULTS"
done
t=$(curl -s -o /dev/null -w '%{time_total}' -H 'Content-Type: application/json' \
    -d "{\"sql\":\"SELECT count(*) AS c FROM range($n) r(i) WHERE hash(i) % 7 <> 1\"}" \
    "$URL/api/query/bench")

# Named point lookup vs the same SQL, cache off: the first server stops (it would share the
# CPU), a second one serves the same file with --cache off and a queries dir.
stop_server "$SERVER_PID"
SERVER_PID=""
mkdir -p "$WORK/queries/bench" "$WORK/state2"
cat >"$WORK/queries/bench/point.sql" <<'SQL'
-- @description One row of t by id (the benchmark's point lookup)
-- @param id BIGINT required min=0 max=99999
SELECT id, name, score, cat FROM t WHERE id = $id
SQL
dg_bench_serve "$WORK/server2.log" "$BIN" --data-dir "$WORK/data" --state-dir "$WORK/state2" \
    --engines "$ENGINES" --slots "$SLOTS" --rate-limit off --access-log off --cache off \
    --queries-dir "$WORK/queries"
SERVER2_PID=$DG_PID
URL2=$DG_URL
# Both forms must answer the same row, uncached.
a=$(curl -s "$URL2/api/q/bench/point?id=4242&format=csv")
b=$(curl -s "$URL2/api/query/bench?sql=SELECT%20id%2C%20name%2C%20score%2C%20cat%20FROM%20t%20WHERE%20id%20%3D%20%3F&params=%5B4242%5D&format=csv")
cs=$(curl -s -D - -o /dev/null "$URL2/api/q/bench/point?id=4242" | tr -d '\r' | sed -n 's/^Cache-Status: //Ip')
if [ "$a" != "$b" ] || [ -z "$a" ] || [ "$cs" != "duckgate; fwd=bypass; detail=off" ]; then
    echo "bench: lookup warm-up failed: named [$a] sql [$b] cache-status [$cs]" >&2
    exit 1
fi
for c in $LOOKUP_CONNS; do
    for sc in named sql; do
        DG_LOOKUP=$sc wrk -t"$THREADS" -c"$c" -d2s -s lookup.lua "$URL2" >/dev/null 2>&1 || true
    done
    for r in $(seq 1 "$RUNS"); do
        for sc in named sql; do
            DG_LOOKUP=$sc measure "lookup_$sc" "$c" "$r" "$SERVER2_PID" lookup.lua "$URL2"
        done
    done
done

/usr/bin/python3 - "$RESULTS" "$RUNS" "$DURATION" "$(nproc)" "$t" <<'PY'
import statistics, sys
path, runs, dur, cpus, single = sys.argv[1:6]
rows = {}
for ln in open(path):
    sc, c, _tag, *kv = ln.split()
    d = dict(x.split("=", 1) for x in kv)
    rows.setdefault((sc, int(c)), []).append(d)

def med(ds, k):
    vals = [float(d[k]) for d in ds if d.get(k) not in (None, "NA")]
    return statistics.median(vals) if vals else None

print()
print("duckgate cache benchmark: median of %s runs x %s, wrk -t2, %s CPUs" % (runs, dur, cpus))
print()
def cpu_us(d):
    """Front CPU microseconds per request of one run."""
    reqs = float(d["rps"]) * float(d["dur"])
    return 1e6 * int(d["cpu_ticks"]) / int(d["hz"]) / reqs if reqs else None

print("| scenario | conns | req/s | p50 ms | p99 ms | front CPU us/request | non-2xx (599 = miss) |")
print("|---|---:|---:|---:|---:|---:|---:|")
cpu = {}
for (sc, c), ds in sorted(rows.items()):
    if sc == "flight":
        continue
    cpu[(sc, c)] = statistics.median(cpu_us(d) for d in ds)
    print("| %s | %d | %.0f | %.3f | %.3f | %.1f | %d |" % (
        sc, c, med(ds, "rps"), med(ds, "p50_ms"), med(ds, "p99_ms"), cpu[(sc, c)],
        sum(int(d["non2xx"]) for d in ds)))
print()
for (sc, c), ds in sorted(rows.items()):
    if sc.startswith("hit") and ("health", c) in rows:
        ratio = med(ds, "rps") / med(rows[("health", c)], "rps")
        print("- %s / health at %d connections: %.2f req/s (goal >= 0.8); front CPU per "
              "request health/%s: %.2f" % (sc, c, ratio, sc, cpu[("health", c)] / cpu[(sc, c)]))
for (sc, c), ds in sorted(rows.items()):
    if sc == "lookup_named" and ("lookup_sql", c) in rows:
        raw = rows[("lookup_sql", c)]
        print("- named point lookup (cache off) at %d connections: %.0f req/s, p99 %.3f ms; the "
              "same SQL through /api/query: %.0f req/s, p99 %.3f ms (named / SQL req/s: %.2f)" % (
                  c, med(ds, "rps"), med(ds, "p99_ms"), med(raw, "rps"), med(raw, "p99_ms"),
                  med(ds, "rps") / med(raw, "rps")))
for (sc, c), ds in sorted(rows.items()):
    if sc == "flight":
        print("- %d concurrent identical ~1 s queries: wall %.3f s median (goal <= 1.3 s), "
              "executed %s, shared %s, errors %s (per run); one uncached run of the query: "
              "%s s" % (c, med(ds, "wall_s"), [d["executed"] for d in ds],
                        [d["shared"] for d in ds], [d["errors"] for d in ds], single))
PY
