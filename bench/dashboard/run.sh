#!/usr/bin/env bash
# Dashboard benchmark (issue "IMDb demo data and the pipeline"; by hand, never in the default
# suite): generates the IMDb-shaped database at SCALE, builds pipelines/imdb on it (both timed),
# serves it with queries/ (result cache off, DuckDB memory limit MEMORY) and measures p50/p95 of
# every dashboard query over N random parameter values through HTTP (GET /api/q/imdb/NAME),
# one request at a time. Parameter values are drawn from the database itself with a fixed seed.
#
# Environment: SCALE (0.1; 1 is the reference case), N (200), MEMORY (7GB), THREADS (DuckDB
# threads per engine; 0 = from the CPU quota), ENGINES (1), DUCKGATE_BIN (build-release/duckgate,
# else build/duckgate), WORK (/tmp/dg-dash-SCALE: the database is kept there and reused when its
# scale matches; REBUILD=1 forces gen + build again).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)

BIN=${DUCKGATE_BIN:-}
if [ -z "$BIN" ]; then
    if [ -x build-release/duckgate ]; then BIN=build-release/duckgate; else BIN=build/duckgate; fi
fi
[ -x "$BIN" ] || { echo "dashboard: no binary at $BIN" >&2; exit 1; }
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")

SCALE=${SCALE:-0.1}
N=${N:-200}
MEMORY=${MEMORY:-7GB}
THREADS=${THREADS:-0}
ENGINES=${ENGINES:-1}
WORK=${WORK:-/tmp/dg-dash-$SCALE}
DB="$WORK/data/imdb.duckdb"
mkdir -p "$WORK/data"

if [ "${REBUILD:-0}" = 1 ] || [ ! -f "$DB" ] || [ "$(cat "$WORK/scale" 2>/dev/null)" != "$SCALE" ]; then
    rm -f "$WORK/scale" "$WORK/times"
    echo "dashboard: gen imdb --scale $SCALE" >&2
    # Wall and CPU seconds (user + sys): on a shared machine the CPU time is the stable figure.
    /usr/bin/time -f '%e %U %S' -o "$WORK/gen.time" \
        "$BIN" gen imdb --scale "$SCALE" --out "$WORK/imdb.build" --memory-limit "$MEMORY" --plain
    echo "dashboard: build pipelines/imdb" >&2
    /usr/bin/time -f '%e %U %S' -o "$WORK/build.time" \
        "$BIN" build "$WORK/imdb.build" pipelines/imdb --memory-limit "$MEMORY" --plain
    mv "$WORK/imdb.build" "$DB"
    read -r gw gu gs <"$WORK/gen.time"
    read -r bw bu bs <"$WORK/build.time"
    printf 'gen_s=%s (CPU %s s)\nbuild_s=%s (CPU %s s)\n' "$gw" "$(echo "$gu + $gs" | bc)" \
        "$bw" "$(echo "$bu + $bs" | bc)" >"$WORK/times"
    echo "$SCALE" >"$WORK/scale"
fi

exec /usr/bin/python3 "$ROOT/bench/dashboard/bench_dashboard.py" --bin "$BIN" --db "$DB" \
    --queries "$ROOT/queries" --n "$N" --memory "$MEMORY" --threads "$THREADS" \
    --engines "$ENGINES" --times "$WORK/times" --scale "$SCALE"
