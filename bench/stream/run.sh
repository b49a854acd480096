#!/usr/bin/env bash
# duckgate streaming benchmark (issue "Streaming results"; run by hand, `make bench` via
# bench/run.sh, or `bash bench/stream/run.sh`; never part of the default test suite).
#
# Builds a ROWS-row table (BIGINT, INTEGER, DOUBLE, VARCHAR ~12 chars, DATE, TIMESTAMP,
# DECIMAL(18,3)) with `duckgate exec`, starts the release server on port 0 and measures with curl
# (client discarding the bytes) SELECT * FROM t as NDJSON, CSV, NDJSON+zstd, Parquet and Arrow:
# rows/s and time to first byte. In the same run, bench/stream/duckdb_baseline.c measures DuckDB's
# own limit: COPY (SELECT * FROM t) TO '/dev/null' (FORMAT JSON|CSV|PARQUET) and a loop that only
# fetches every chunk. Every figure is the median of RUNS runs (DESIGN §12). Peak RSS growth
# (VmHWM of the front and of each engine) is read on a fresh server between a 100k-row and a
# ROWS-row NDJSON stream. A format the server does not serve yet (406, or no Content-Encoding:
# zstd) is reported as n/a; the run still completes.
#
# Environment: DUCKGATE_BIN (default build-release/duckgate, else build/duckgate), ROWS
# (10000000), RUNS (5), THREADS (1: DuckDB threads for the server and for the baseline alike),
# ENGINES (2), SLOTS (1), STREAM_DB (reuse/keep the table at this path), KEEP=1 keeps the temp dir.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
. "$ROOT/bench/lib.sh"

BIN=${DUCKGATE_BIN:-}
if [ -z "$BIN" ]; then
    if [ -x build-release/duckgate ]; then BIN=build-release/duckgate; else BIN=build/duckgate; fi
fi
[ -x "$BIN" ] || { echo "stream: no binary at $BIN (cmake --preset release && cmake --build build-release)" >&2; exit 1; }
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
command -v curl >/dev/null || { echo "stream: curl not installed" >&2; exit 1; }
command -v cc >/dev/null || { echo "stream: no C compiler (cc)" >&2; exit 1; }

ROWS=${ROWS:-10000000}
RUNS=${RUNS:-5}
THREADS=${THREADS:-1}
ENGINES=${ENGINES:-2}
SLOTS=${SLOTS:-1}
SMALL_ROWS=100000

WORK=$(mktemp -d /tmp/dg-stream.XXXXXX)
SERVER_PID=""
ENGINE_PIDS=""
stop_server() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        local engines
        engines=$(cat /proc/"$SERVER_PID"/task/*/children 2>/dev/null || true)
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$SERVER_PID" 2>/dev/null; then
            kill -KILL "$SERVER_PID" 2>/dev/null || true
        fi
        # Engines the front had: gone with it normally; killed by pid if not.
        for p in $engines $ENGINE_PIDS; do kill -KILL "$p" 2>/dev/null || true; done
    fi
    SERVER_PID=""
}
BASELINE_PID=""
cleanup() {
    if [ -n "$BASELINE_PID" ]; then kill "$BASELINE_PID" 2>/dev/null || true; fi
    stop_server
    [ "${KEEP:-0}" = 1 ] && echo "stream: kept $WORK" >&2 || rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

mkdir -p "$WORK/data" "$WORK/state"
DB="$WORK/data/bench.duckdb"
echo "stream: binary $BIN, $ROWS rows, $RUNS runs, threads=$THREADS engines=$ENGINES slots=$SLOTS" >&2

# ---- the table --------------------------------------------------------------------------
if [ -n "${STREAM_DB:-}" ] && [ -f "$STREAM_DB" ]; then
    echo "stream: reusing $STREAM_DB" >&2
    cp "$STREAM_DB" "$DB"
else
    echo "stream: building the $ROWS-row table" >&2
    t0=$(date +%s.%N)
    "$BIN" exec "$DB" "
CREATE TABLE t AS SELECT
    CAST(i AS BIGINT) AS id,
    CAST(i % 1000003 AS INTEGER) AS n,
    i * 0.37 + 0.001 AS x,
    'item_' || lpad(CAST(i % 10000000 AS VARCHAR), 7, '0') AS s,
    DATE '2000-01-01' + CAST(i % 9000 AS INTEGER) AS d,
    TIMESTAMP '2020-01-01 00:00:00' + to_microseconds(i * 1234567) AS ts,
    CAST(i * 1.234 AS DECIMAL(18,3)) AS amount
FROM range($ROWS) r(i);
CHECKPOINT;" >/dev/null
    echo "stream: table built in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}') s" >&2
    [ -n "${STREAM_DB:-}" ] && cp "$DB" "$STREAM_DB"
fi

# ---- DuckDB's baseline (built now, run interleaved with the HTTP runs below) ---------------
DUCKDB_ROOT="$ROOT/third_party/duckdb"
# The project's warnings; deprecation is allowed for duckdb_pending_prepared_streaming, the only
# streaming entry point of DuckDB 1.4 (STYLE.md).
cc -O2 -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes \
    -Wmissing-prototypes -Wformat=2 -Wcast-qual -Wvla -Wimplicit-fallthrough -Werror \
    -Wno-deprecated-declarations -isystem "$DUCKDB_ROOT/include" -o "$WORK/duckdb_baseline" \
    "$ROOT/bench/stream/duckdb_baseline.c" -L"$DUCKDB_ROOT/lib" -lduckdb -Wl,-rpath,"$DUCKDB_ROOT/lib"

RES="$WORK/results.txt"
: >"$RES"

# ---- the server -------------------------------------------------------------------------
dg_bench_serve "$WORK/server.log" "$BIN" --data-dir "$WORK/data" --state-dir "$WORK/state" \
    --engines "$ENGINES" --slots "$SLOTS" --threads "$THREADS" --timeout-ms 600000
SERVER_PID=$DG_PID
URL=$DG_URL
ENGINE_PIDS=$(cat /proc/"$SERVER_PID"/task/*/children 2>/dev/null || true)
echo "stream: server $URL pid $SERVER_PID engines $ENGINE_PIDS" >&2

SQL_ALL="SELECT%20*%20FROM%20t"
SQL_SMALL="SELECT%20*%20FROM%20t%20LIMIT%20$SMALL_ROWS"

# hwm PIDS...: "pid:kB" for each live process.
hwm() {
    local p
    for p in "$@"; do
        awk -v p="$p" '/^VmHWM:/ {print p ":" $2}' /proc/"$p"/status 2>/dev/null || true
    done
}

# One curl; prints "code ttfb total size encoding".
fetch() { # URL [curl args...]
    local url=$1
    shift
    local out
    out=$(curl -s -o /dev/null -D "$WORK/h.txt" --max-time 900 \
        -w '%{http_code} %{time_starttransfer} %{time_total} %{size_download}' "$@" "$url" || echo "000 0 0 0")
    local enc
    enc=$(tr -d '\r' <"$WORK/h.txt" 2>/dev/null | awk -F': *' 'tolower($1)=="content-encoding" {print tolower($2)}' | tail -n1)
    echo "$out ${enc:-identity}"
}

# Sanity: the small NDJSON stream ends with its end line.
curl -s "$URL/api/query/bench?format=ndjson&sql=$SQL_SMALL" | tail -n1 >"$WORK/last.txt"
grep -q '"type":"end"' "$WORK/last.txt" || {
    echo "stream: the NDJSON stream did not end properly: $(head -c 300 "$WORK/last.txt")" >&2
    exit 1
}

# ---- peak RSS growth: 100k rows, then all rows, on the fresh server ----------------------
ALL_PIDS="$SERVER_PID $ENGINE_PIDS"
hwm $ALL_PIDS >"$WORK/hwm0.txt"
fetch "$URL/api/query/bench?format=ndjson&sql=$SQL_SMALL" >/dev/null
hwm $ALL_PIDS >"$WORK/hwm_small.txt"
r=$(fetch "$URL/api/query/bench?format=ndjson&sql=$SQL_ALL")
echo "stream: rss big run: $r" >&2
hwm $ALL_PIDS >"$WORK/hwm_big.txt"
echo "rss_small $(tr '\n' ' ' <"$WORK/hwm_small.txt")" >>"$RES"
echo "rss_big $(tr '\n' ' ' <"$WORK/hwm_big.txt")" >>"$RES"

# ---- throughput -------------------------------------------------------------------------
# Each round runs every DuckDB baseline once (one warm instance, a coprocess) and every HTTP case
# once, so a busy machine slows both sides of each ratio alike.
coproc BASELINE { exec "$WORK/duckdb_baseline" "$DB" - 0 "$THREADS" 2>"$WORK/baseline.err"; }
BASELINE_PID=$!
baseline() { # MODE -> appends "MODE seconds rows" (or NA) to RES
    local line=""
    echo "$1" >&"${BASELINE[1]}"
    if ! read -r -t 900 line <&"${BASELINE[0]}" || [[ "$line" == *" -1."* ]]; then
        echo "stream: baseline $1 failed: $(head -c 300 "$WORK/baseline.err")" >&2
        line="$1 NA NA 0"
    fi
    echo "stream: baseline $line" >&2
    echo "$line" >>"$RES"
}
skip=" "
run_case() { # NAME URL [curl args...]: one run
    local name=$1 url=$2
    shift 2
    [[ "$skip" == *" $name "* ]] && return 0
    local r
    r=$(fetch "$url" "$@")
    echo "stream: $name: $r" >&2
    read -r code ttfb total size enc <<<"$r"
    if [ "$code" != 200 ]; then
        echo "$name NA NA 0 code=$code" >>"$RES"
        skip="$skip$name " # not served (yet): one try is enough
    elif [ "$name" = ndjson_zstd ] && [ "$enc" != zstd ]; then
        echo "$name NA NA $size enc=$enc" >>"$RES"
        skip="$skip$name "
    else
        echo "$name $total $ttfb $size" >>"$RES"
    fi
}
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
for i in $(seq 1 "$RUNS"); do
    echo "stream: round $i of $RUNS" >&2
    for mode in fetch copy-csv copy-json copy-parquet copy-parquet-zstd; do baseline "$mode"; done
    run_case ndjson "$URL/api/query/bench?format=ndjson&sql=$SQL_ALL"
    run_case csv "$URL/api/query/bench?format=csv&sql=$SQL_ALL"
    run_case ndjson_zstd "$URL/api/query/bench?format=ndjson&sql=$SQL_ALL" -H 'Accept-Encoding: zstd'
    run_case parquet "$URL/api/query/bench?format=parquet&sql=$SQL_ALL"
    run_case arrow "$URL/api/query/bench?format=arrow&sql=$SQL_ALL"
done
exec {BASELINE[1]}>&-
wait "$BASELINE_PID" 2>/dev/null || true
BASELINE_PID=""
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)
stop_server

/usr/bin/python3 - "$RES" "$ROWS" "$RUNS" "$(nproc)" "$THREADS" "$ENGINES" "$SLOTS" "$LOAD0" "$LOAD1" <<'PY'
import statistics, sys
path, rows, runs, cpus, threads, engines, slots, load0, load1 = sys.argv[1:10]
rows = int(rows)
t = {}     # name -> [seconds]
ttfb = {}  # name -> [seconds]
size = {}
note = {}
rss = {}
for ln in open(path):
    f = ln.split()
    if not f:
        continue
    if f[0] in ("rss_small", "rss_big"):
        rss[f[0]] = {int(p.split(":")[0]): int(p.split(":")[1]) for p in f[1:]}
        continue
    name = f[0]
    if f[1] == "NA":
        note[name] = " ".join(f[4:]) or "failed"
        continue
    t.setdefault(name, []).append(float(f[1]))
    if name.startswith(("fetch", "copy-")):
        continue
    ttfb.setdefault(name, []).append(float(f[2]))
    size.setdefault(name, []).append(int(f[3]))

def rps(name):
    v = t.get(name)
    return rows / statistics.median(v) if v else None

def fmt_rps(v):
    return "n/a" if v is None else "{:,.0f}".format(v)

print()
print("duckgate streaming benchmark: SELECT * FROM t, %s rows (BIGINT, INTEGER, DOUBLE, VARCHAR, "
      "DATE, TIMESTAMP, DECIMAL(18,3)); median of %s runs; %s CPUs; DuckDB threads=%s; "
      "engines=%s slots=%s; load average %s at the start, %s at the end" % (
          "{:,}".format(rows), runs, cpus, threads, engines, slots, load0, load1))
print()
print("| measure | duckgate rows/s | DuckDB baseline rows/s | ratio | goal | ok |")
print("|---|---:|---:|---:|---:|:-:|")
pairs = [
    ("NDJSON / COPY JSON", "ndjson", "copy-json", 3.0),
    ("CSV / COPY CSV", "csv", "copy-csv", 2.0),
    ("Parquet / COPY PARQUET", "parquet", "copy-parquet", 0.9),
    ("(Parquet / COPY PARQUET with ZSTD, the codec duckgate uses)", "parquet", "copy-parquet-zstd", 0.9),
    ("Arrow / fetch loop", "arrow", "fetch", 0.6),
    ("NDJSON+zstd / COPY JSON", "ndjson_zstd", "copy-json", 1.5),
]
for label, ours, base, goal in pairs:
    a, b = rps(ours), rps(base)
    ratio = a / b if a and b else None
    why = note.get(ours) if a is None else None
    print("| %s | %s | %s | %s | ≥ %.1f | %s |" % (
        label, fmt_rps(a) + (" (%s)" % why if why else ""), fmt_rps(b),
        "n/a" if ratio is None else "%.2f" % ratio, goal,
        "—" if ratio is None else ("yes" if ratio >= goal else "**no**")))
print()
print("| stream | median total s | median TTFB ms | MB/s | bytes |")
print("|---|---:|---:|---:|---:|")
for name in ("ndjson", "csv", "ndjson_zstd", "parquet", "arrow"):
    if name in t:
        tot = statistics.median(t[name])
        print("| %s | %.3f | %.2f | %.1f | %s |" % (
            name, tot, 1000 * statistics.median(ttfb[name]),
            statistics.median(size[name]) / tot / 1e6, "{:,}".format(int(statistics.median(size[name])))))
    else:
        print("| %s | n/a (%s) | | | |" % (name, note.get(name, "not run")))
for name in ("fetch", "copy-csv", "copy-json", "copy-parquet", "copy-parquet-zstd"):
    if name in t:
        print("| DuckDB %s | %.3f | | | |" % (name, statistics.median(t[name])))
print()
tt = ttfb.get("ndjson")
if tt:
    v = 1000 * statistics.median(tt)
    print("- TTFB of the NDJSON stream: %.2f ms (goal ≤ 20 ms): %s" % (v, "yes" if v <= 20 else "**no**"))
small, big = rss.get("rss_small", {}), rss.get("rss_big", {})
if small and big:
    growth = {p: big[p] - small.get(p, 0) for p in big}
    worst = max(growth.values())
    print("- peak RSS (VmHWM) growth from a %s-row to a %s-row NDJSON stream, per process: %s; "
          "largest %.1f MB, sum %.1f MB (goal ≤ 64 MB): %s" % (
              "{:,}".format(100000), "{:,}".format(rows),
              ", ".join("pid %d %+.1f MB (peak %.1f MB)" % (p, g / 1024, big[p] / 1024)
                        for p, g in sorted(growth.items())),
              worst / 1024, sum(growth.values()) / 1024,
              "yes" if worst <= 64 * 1024 else "**no**"))
print("- ratios are rows/s of duckgate (curl, bytes discarded) over rows/s of DuckDB's own "
      "writer to /dev/null (or fetch loop), the runs of both interleaved in one run; n/a = the "
      "server does not serve that format or "
      "encoding yet.")
PY
