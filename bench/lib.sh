# Helpers shared by the bench scripts (sourced, never run).

# dg_bench_serve LOG BIN SERVE_ARGS...: starts `BIN serve --listen 127.0.0.1:0 SERVE_ARGS...`
# in the background with its stderr in LOG, waits for its "listening on" line and for /ready,
# and sets DG_PID and DG_URL. Exits the calling script when the server does not come up.
dg_bench_serve() {
    local log=$1 bin=$2
    shift 2
    "$bin" serve --listen 127.0.0.1:0 "$@" 2>"$log" >/dev/null &
    DG_PID=$!
    local port=""
    for _ in $(seq 1 300); do
        port=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log" | head -n1)
        [ -n "$port" ] && break
        kill -0 "$DG_PID" 2>/dev/null || { echo "bench: the server exited" >&2; cat "$log" >&2; exit 1; }
        sleep 0.1
    done
    if [ -z "$port" ]; then
        echo "bench: the server did not start" >&2
        cat "$log" >&2
        kill "$DG_PID" 2>/dev/null || true
        exit 1
    fi
    DG_URL="http://127.0.0.1:$port"
    for _ in $(seq 1 300); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "$DG_URL/ready")" = 200 ] && break
        sleep 0.1
    done
}
